//! Which app each client runs, and what `/launch`, `/resume` and `/cancel` do to it.
//!
//! Every paired client has its own session: launching while another client streams
//! gives the launcher a session of its own, up to a limit (`[session] max_sessions`);
//! beyond it the launch is refused with a message Moonlight shows. A client that
//! launches again while its own app runs re-attaches to it (as `/resume` does);
//! launching a *different* app while its own runs is refused with status 400, as
//! Sunshine does (`nvhttp.cpp`). Resuming with nothing running is 503, and cancel
//! always succeeds. Each launch or resume carries fresh stream keys (`rikey`), so an
//! app records a generation that the streaming side uses to pick up the newest keys,
//! and a session id that stays the same across resumes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use thiserror::Error;

use super::nvhttp::requests::{DisplayMode, LaunchRequest};

/// How many clients may stream at once unless configured otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 2;

/// The app a client runs and the keys its stream uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchedApp {
    /// The session this app runs in: set at launch, kept by resumes, unique while
    /// the process runs. Streams, display sessions and routes are keyed by it.
    pub session: u64,
    /// The app's id.
    pub app_id: u32,
    /// Fingerprint of the client that launched it (and alone may resume or quit it).
    pub owner: String,
    /// The address that client's `/launch` or `/resume` came from: the RTSP handshake
    /// and the media streams are served to this address only.
    pub owner_ip: IpAddr,
    /// The stream key (`rikey`).
    pub key: [u8; 16],
    /// The stream key id (`rikeyid`).
    pub key_id: u32,
    /// The display mode from `/launch` (a resume leaves the launch's mode).
    pub mode: Option<DisplayMode>,
    /// Audio channels the client asked for.
    pub audio_channels: u32,
    /// Whether RTSP is encrypted (`corever >= 1`, answered with `rtspenc://`).
    pub encrypted_rtsp: bool,
    /// Bumped by every launch and resume (unique across clients).
    pub generation: u64,
}

/// Why a launch, resume or cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AppError {
    /// This client already runs another app.
    #[error("An app is already running on this host")]
    AlreadyRunning {
        /// The running app.
        app_id: u32,
    },
    /// As many clients stream as the host allows.
    #[error(
        "This host already streams to {max} devices, its limit; quit the app on one of them first"
    )]
    SessionLimit {
        /// The limit (`[session] max_sessions`).
        max: usize,
    },
    /// Nothing is running to resume.
    #[error("No running app to resume")]
    NotRunning,
    /// The app id is not in the catalog.
    #[error("Unknown app id {0}")]
    UnknownApp(u32),
    /// Another device launched the running app: only it may resume or quit it.
    #[error("The running app was started by another device")]
    NotOwner,
    /// A resume without encrypted RTSP (`corever` < 1) of a session that was
    /// launched encrypted: a downgrade is never allowed.
    #[error("This session is encrypted; resume it with a client that supports encryption")]
    Downgrade,
}

impl AppError {
    /// The `status_code` GameStream clients expect for this error.
    pub fn status_code(&self) -> u32 {
        match self {
            AppError::AlreadyRunning { .. } => 400,
            AppError::SessionLimit { .. } => 503,
            AppError::NotRunning => 503,
            AppError::UnknownApp(_) => 404,
            AppError::NotOwner => 403,
            AppError::Downgrade => 400,
        }
    }
}

/// Whether a launch started a new session or re-attached to the client's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launched {
    /// A new session.
    New,
    /// The client's running session, with the request's new keys.
    Resumed,
}

/// The running app of every client, keyed by the client's fingerprint.
#[derive(Debug, Clone)]
pub struct AppState {
    running: BTreeMap<String, LaunchedApp>,
    max_sessions: usize,
    generation: u64,
    sessions: u64,
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

impl AppState {
    /// Nothing running; [`DEFAULT_MAX_SESSIONS`] clients may stream at once.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_SESSIONS)
    }

    /// Nothing running; `max_sessions` (at least 1) clients may stream at once.
    pub fn with_limit(max_sessions: usize) -> Self {
        Self {
            running: BTreeMap::new(),
            max_sessions: max_sessions.max(1),
            generation: 0,
            sessions: 0,
        }
    }

    /// The limit on sessions at once.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// The app the client `owner` runs.
    pub fn current(&self, owner: &str) -> Option<&LaunchedApp> {
        self.running.get(owner)
    }

    /// Every running app, by owner.
    pub fn running(&self) -> impl Iterator<Item = &LaunchedApp> {
        self.running.values()
    }

    /// The running app of session `session`.
    pub fn by_session(&self, session: u64) -> Option<&LaunchedApp> {
        self.running.values().find(|a| a.session == session)
    }

    /// `currentgame` for `/serverinfo` asked by `owner` (`None`: an unpaired
    /// request): the id of the app that client runs, or 0. Each client sees only its
    /// own app, so Moonlight resumes its own session and launches beside others.
    pub fn current_game(&self, owner: Option<&str>) -> u32 {
        owner
            .and_then(|o| self.running.get(o))
            .map_or(0, |a| a.app_id)
    }

    /// Whether no further client may launch.
    pub fn full(&self) -> bool {
        self.full_beside(0)
    }

    /// Whether no further session may start while `others` sessions of another
    /// protocol (punktfunk/1) run beside these: the limit is one for both kinds.
    pub fn full_beside(&self, others: usize) -> bool {
        self.running.len() + others >= self.max_sessions
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// `/launch` by the client with certificate fingerprint `owner`, asking from
    /// `owner_ip`. `known_app` says whether the catalog has `req.app_id`. A client
    /// launching the app it already runs re-attaches to its session.
    pub fn launch(
        &mut self,
        req: &LaunchRequest,
        owner: &str,
        owner_ip: IpAddr,
        known_app: bool,
    ) -> Result<(&LaunchedApp, Launched), AppError> {
        self.launch_beside(req, owner, owner_ip, known_app, 0)
    }

    /// [`Self::launch`] while `others` sessions of another protocol (punktfunk/1) run:
    /// they count against the same limit, so a new session is refused when the two
    /// kinds together reach it. Re-attaching to the client's own session never is.
    pub fn launch_beside(
        &mut self,
        req: &LaunchRequest,
        owner: &str,
        owner_ip: IpAddr,
        known_app: bool,
        others: usize,
    ) -> Result<(&LaunchedApp, Launched), AppError> {
        let app_id = req.app_id.unwrap_or(0);
        if let Some(app) = self.running.get(owner) {
            if app.app_id != app_id {
                return Err(AppError::AlreadyRunning { app_id: app.app_id });
            }
            return self
                .resume(req, owner, owner_ip)
                .map(|a| (a, Launched::Resumed));
        }
        if !known_app || app_id == 0 {
            return Err(AppError::UnknownApp(app_id));
        }
        if self.full_beside(others) {
            return Err(AppError::SessionLimit {
                max: self.max_sessions,
            });
        }
        let generation = self.next_generation();
        self.sessions += 1;
        let app = LaunchedApp {
            session: self.sessions,
            app_id,
            owner: owner.to_owned(),
            owner_ip: canonical(owner_ip),
            key: req.key,
            key_id: req.key_id,
            mode: req.mode,
            audio_channels: req.audio_channels(),
            encrypted_rtsp: req.core_version >= 1,
            generation,
        };
        // The owner has no entry (checked above): this inserts.
        let slot = self.running.entry(owner.to_owned()).or_insert(app);
        Ok((slot, Launched::New))
    }

    /// `/resume`: the device that launched its app re-attaches to it, from wherever
    /// it is now, with the request's new keys. A device with nothing running gets
    /// [`AppError::NotRunning`] (another device's session is not its to take), and a
    /// resume that would turn an encrypted session into a plaintext one is refused.
    pub fn resume(
        &mut self,
        req: &LaunchRequest,
        owner: &str,
        owner_ip: IpAddr,
    ) -> Result<&LaunchedApp, AppError> {
        let Some(app) = self.running.get(owner) else {
            return Err(if self.running.is_empty() {
                AppError::NotRunning
            } else {
                AppError::NotOwner
            });
        };
        if app.encrypted_rtsp && req.core_version < 1 {
            return Err(AppError::Downgrade);
        }
        let generation = self.next_generation();
        let app = self.running.get_mut(owner).expect("checked above");
        app.owner_ip = canonical(owner_ip);
        app.key = req.key;
        app.key_id = req.key_id;
        if req.mode.is_some() {
            app.mode = req.mode;
        }
        app.audio_channels = req.audio_channels();
        app.encrypted_rtsp = req.core_version >= 1;
        app.generation = generation;
        Ok(app)
    }

    /// `/cancel` by the client `owner`: stops the app it launched and returns it.
    /// Nothing running is a success (`None`); other devices' apps are left alone.
    pub fn cancel_owned(&mut self, owner: &str) -> Option<LaunchedApp> {
        self.running.remove(owner)
    }

    /// Ends session `session` (its app exited, its client timed out), returning its app.
    pub fn end_session(&mut self, session: u64) -> Option<LaunchedApp> {
        let owner = self.by_session(session)?.owner.clone();
        self.running.remove(&owner)
    }

    /// The host stops every app (shutdown) and returns them.
    pub fn cancel_all(&mut self) -> Vec<LaunchedApp> {
        std::mem::take(&mut self.running).into_values().collect()
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is the IPv4 client.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gamestream::nvhttp::query::Query;

    fn req(q: &str, resume: bool) -> LaunchRequest {
        LaunchRequest::from_query(&Query::parse(q).unwrap(), resume).unwrap()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 10));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 66));

    const KEY: &str = "rikey=00112233445566778899aabbccddeeff&rikeyid=5&corever=1";

    const OTHER: &str = "rikey=ffeeddccbbaa99887766554433221100&rikeyid=9&corever=1";

    #[test]
    fn launch_resume_cancel_lifecycle() {
        let mut s = AppState::new();
        assert_eq!(s.current_game(Some("a")), 0);
        assert_eq!(
            s.resume(&req(KEY, true), "a", A).unwrap_err(),
            AppError::NotRunning
        );
        let (launched, how) = s
            .launch(
                &req(&format!("appid=1&mode=1280x720x60&{KEY}"), false),
                "a",
                A,
                true,
            )
            .unwrap();
        let launched = launched.clone();
        assert_eq!(how, Launched::New);
        assert_eq!((launched.app_id, launched.generation), (1, 1));
        assert!(launched.encrypted_rtsp);
        assert_eq!(s.current_game(Some("a")), 1);
        // Another client, and an anonymous request, see nothing of a's app.
        assert_eq!(s.current_game(Some("b")), 0);
        assert_eq!(s.current_game(None), 0);
        // Another app by the same client is refused with the GameStream code.
        let err = s
            .launch(&req(&format!("appid=2&{KEY}"), false), "a", A, true)
            .unwrap_err();
        assert_eq!(
            (err.clone(), err.status_code()),
            (AppError::AlreadyRunning { app_id: 1 }, 400)
        );
        // Resume re-attaches with new keys, from a new address, and keeps the mode
        // and the session.
        let resumed = s.resume(&req(OTHER, true), "a", B).unwrap();
        assert_eq!(
            (resumed.key_id, resumed.generation, resumed.owner.as_str()),
            (9, 2, "a")
        );
        assert_eq!(resumed.session, launched.session);
        assert_eq!(resumed.owner_ip, B);
        assert_eq!(resumed.mode, launched.mode);
        assert!(resumed.encrypted_rtsp);
        // Launching the same app again is a resume of the client's own session.
        let (again, how) = s
            .launch(&req(&format!("appid=1&{KEY}"), false), "a", A, true)
            .unwrap();
        assert_eq!(
            (how, again.session, again.key_id),
            (Launched::Resumed, launched.session, 5)
        );
        assert_eq!(s.cancel_owned("a").map(|a| a.app_id), Some(1));
        assert_eq!(s.current_game(Some("a")), 0);
        assert_eq!(s.cancel_owned("a"), None);
        assert!(s.cancel_all().is_empty());
    }

    #[test]
    fn each_client_gets_its_own_session_up_to_the_limit() {
        let mut s = AppState::with_limit(2);
        let a = s
            .launch(&req(&format!("appid=1&{KEY}"), false), "a", A, true)
            .unwrap()
            .0
            .clone();
        let b = s
            .launch(&req(&format!("appid=2&{KEY}"), false), "b", B, true)
            .unwrap()
            .0
            .clone();
        assert_ne!(a.session, b.session);
        assert_ne!(a.generation, b.generation);
        assert_eq!(
            (s.current_game(Some("a")), s.current_game(Some("b"))),
            (1, 2)
        );
        assert!(s.full());
        // A third client is refused with a message Moonlight shows; both go on.
        let err = s
            .launch(&req(&format!("appid=1&{KEY}"), false), "c", A, true)
            .unwrap_err();
        assert_eq!(err, AppError::SessionLimit { max: 2 });
        assert_eq!(err.status_code(), 503);
        assert!(err.to_string().contains("2 devices"), "{err}");
        assert_eq!(s.running().count(), 2);
        // Neither client may resume or quit the other's session.
        assert_eq!(
            s.resume(&req(OTHER, true), "c", A).unwrap_err(),
            AppError::NotOwner
        );
        assert_eq!(s.by_session(b.session).map(|x| x.owner.as_str()), Some("b"));
        // Ending one session frees a place; the other is untouched.
        assert_eq!(
            s.end_session(a.session).map(|x| x.owner),
            Some("a".to_owned())
        );
        assert_eq!(s.current("b"), Some(&b));
        let c = s
            .launch(&req(&format!("appid=1&{KEY}"), false), "c", A, true)
            .unwrap()
            .0
            .clone();
        assert!(c.session > b.session, "session ids are never reused");
        assert_eq!(s.cancel_all().len(), 2);
    }

    #[test]
    fn sessions_of_another_protocol_count_against_the_limit() {
        let mut s = AppState::with_limit(2);
        s.launch_beside(&req(&format!("appid=1&{KEY}"), false), "a", A, true, 1)
            .unwrap();
        // One GameStream and one punktfunk/1 session: the host is full.
        assert!(s.full_beside(1));
        assert!(!s.full());
        let err = s
            .launch_beside(&req(&format!("appid=1&{KEY}"), false), "b", B, true, 1)
            .unwrap_err();
        assert_eq!(err, AppError::SessionLimit { max: 2 });
        // The client already streaming re-attaches whatever else runs.
        let (_, how) = s
            .launch_beside(&req(&format!("appid=1&{OTHER}"), false), "a", A, true, 5)
            .unwrap();
        assert_eq!(how, Launched::Resumed);
        // Once the other session ends there is room again.
        s.launch_beside(&req(&format!("appid=1&{KEY}"), false), "b", B, true, 0)
            .unwrap();
    }

    #[test]
    fn unknown_apps_are_refused() {
        let mut s = AppState::new();
        let err = s
            .launch(&req(&format!("appid=77&{KEY}"), false), "a", A, false)
            .unwrap_err();
        assert_eq!(
            (err.clone(), err.status_code()),
            (AppError::UnknownApp(77), 404)
        );
        assert!(
            s.launch(&req(&format!("appid=0&{KEY}"), false), "a", A, true)
                .is_err()
        );
        assert_eq!(s.current("a"), None);
    }

    #[test]
    fn only_the_launching_device_resumes_and_never_in_plaintext() {
        let mut s = AppState::new();
        s.launch(&req(&format!("appid=1&{KEY}"), false), "a", A, true)
            .unwrap();
        // Another paired device cannot take the session over, nor end it.
        assert_eq!(
            s.resume(&req(OTHER, true), "b", B).unwrap_err(),
            AppError::NotOwner
        );
        assert_eq!(s.cancel_owned("b"), None);
        assert!(s.current("a").is_some());
        // The owner without encrypted RTSP would downgrade the session: refused.
        let plain = req("rikey=ffeeddccbbaa99887766554433221100&rikeyid=9", true);
        assert_eq!(s.resume(&plain, "a", A).unwrap_err(), AppError::Downgrade);
        let app = s.current("a").unwrap();
        assert_eq!(
            (app.generation, app.owner_ip, app.encrypted_rtsp),
            (1, A, true)
        );
        // A plaintext session may be resumed in plaintext, or upgraded.
        let mut p = AppState::new();
        p.launch(
            &req(
                "appid=1&rikey=00112233445566778899aabbccddeeff&rikeyid=1",
                false,
            ),
            "a",
            A,
            true,
        )
        .unwrap();
        assert!(!p.resume(&plain, "a", A).unwrap().encrypted_rtsp);
        assert!(p.resume(&req(OTHER, true), "a", A).unwrap().encrypted_rtsp);
    }

    #[test]
    fn mapped_ipv4_is_the_same_client() {
        let mapped: IpAddr = "::ffff:192.168.1.10".parse().unwrap();
        assert_eq!(canonical(mapped), A);
    }
}
