//! Which app is running, and what `/launch`, `/resume` and `/cancel` do to it.
//!
//! GameStream runs one app at a time (Sunshine `nvhttp.cpp`): launching while an app
//! runs is refused with status 400, resuming with nothing running with 503, and cancel
//! always succeeds. Each launch or resume carries fresh stream keys (`rikey`), so the
//! state records a generation that the streaming side uses to pick up the newest keys.

use std::net::IpAddr;

use thiserror::Error;

use super::nvhttp::requests::{DisplayMode, LaunchRequest};

/// The app that is running and the keys its stream uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchedApp {
    /// The app's id.
    pub app_id: u32,
    /// Fingerprint of the client that launched or last resumed it.
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
    /// Bumped by every launch and resume.
    pub generation: u64,
}

/// Why a launch, resume or cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AppError {
    /// Another app (or this one) is already running.
    #[error("An app is already running on this host")]
    AlreadyRunning {
        /// The running app.
        app_id: u32,
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
            AppError::NotRunning => 503,
            AppError::UnknownApp(_) => 404,
            AppError::NotOwner => 403,
            AppError::Downgrade => 400,
        }
    }
}

/// The running app, if any.
#[derive(Debug, Clone, Default)]
pub struct AppState {
    running: Option<LaunchedApp>,
    generation: u64,
}

impl AppState {
    /// Nothing running.
    pub fn new() -> Self {
        Self::default()
    }

    /// The running app.
    pub fn current(&self) -> Option<&LaunchedApp> {
        self.running.as_ref()
    }

    /// `currentgame` for `/serverinfo`: the running app's id, or 0.
    pub fn current_game(&self) -> u32 {
        self.running.as_ref().map_or(0, |a| a.app_id)
    }

    /// `/launch` by the client with certificate fingerprint `owner`, asking from
    /// `owner_ip`. `known_app` says whether the catalog has `req.app_id`.
    pub fn launch(
        &mut self,
        req: &LaunchRequest,
        owner: &str,
        owner_ip: IpAddr,
        known_app: bool,
    ) -> Result<&LaunchedApp, AppError> {
        if let Some(app) = &self.running {
            return Err(AppError::AlreadyRunning { app_id: app.app_id });
        }
        let app_id = req.app_id.unwrap_or(0);
        if !known_app || app_id == 0 {
            return Err(AppError::UnknownApp(app_id));
        }
        self.generation += 1;
        Ok(self.running.insert(LaunchedApp {
            app_id,
            owner: owner.to_owned(),
            owner_ip: canonical(owner_ip),
            key: req.key,
            key_id: req.key_id,
            mode: req.mode,
            audio_channels: req.audio_channels(),
            encrypted_rtsp: req.core_version >= 1,
            generation: self.generation,
        }))
    }

    /// `/resume`: the device that launched the app re-attaches to it, from wherever
    /// it is now, with the request's new keys. Another device is refused, and so is a
    /// resume that would turn an encrypted session into a plaintext one.
    pub fn resume(
        &mut self,
        req: &LaunchRequest,
        owner: &str,
        owner_ip: IpAddr,
    ) -> Result<&LaunchedApp, AppError> {
        let app = self.running.as_mut().ok_or(AppError::NotRunning)?;
        if app.owner != owner {
            return Err(AppError::NotOwner);
        }
        if app.encrypted_rtsp && req.core_version < 1 {
            return Err(AppError::Downgrade);
        }
        self.generation += 1;
        app.owner_ip = canonical(owner_ip);
        app.key = req.key;
        app.key_id = req.key_id;
        if req.mode.is_some() {
            app.mode = req.mode;
        }
        app.audio_channels = req.audio_channels();
        app.encrypted_rtsp = req.core_version >= 1;
        app.generation = self.generation;
        Ok(app)
    }

    /// `/cancel` by the client `owner`: stops the app it launched and returns it.
    /// Nothing running is a success (`None`); another device's app is refused.
    pub fn cancel_owned(&mut self, owner: &str) -> Result<Option<LaunchedApp>, AppError> {
        match &self.running {
            Some(app) if app.owner != owner => Err(AppError::NotOwner),
            _ => Ok(self.running.take()),
        }
    }

    /// The host stops whatever runs (revoke, shutdown) and returns it.
    pub fn cancel(&mut self) -> Option<LaunchedApp> {
        self.running.take()
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

    #[test]
    fn launch_resume_cancel_lifecycle() {
        let mut s = AppState::new();
        assert_eq!(s.current_game(), 0);
        assert_eq!(
            s.resume(&req(KEY, true), "a", A).unwrap_err(),
            AppError::NotRunning
        );
        let launched = s
            .launch(
                &req(&format!("appid=1&mode=1280x720x60&{KEY}"), false),
                "a",
                A,
                true,
            )
            .unwrap()
            .clone();
        assert_eq!((launched.app_id, launched.generation), (1, 1));
        assert!(launched.encrypted_rtsp);
        assert_eq!(s.current_game(), 1);
        // A second launch, by anyone, is refused with the GameStream code.
        let err = s
            .launch(&req(&format!("appid=2&{KEY}"), false), "b", B, true)
            .unwrap_err();
        assert_eq!(
            (err.clone(), err.status_code()),
            (AppError::AlreadyRunning { app_id: 1 }, 400)
        );
        // Resume re-attaches with new keys, from a new address, and keeps the mode.
        let resumed = s
            .resume(
                &req(
                    "rikey=ffeeddccbbaa99887766554433221100&rikeyid=9&corever=1",
                    true,
                ),
                "a",
                B,
            )
            .unwrap();
        assert_eq!(
            (resumed.key_id, resumed.generation, resumed.owner.as_str()),
            (9, 2, "a")
        );
        assert_eq!(resumed.owner_ip, B);
        assert_eq!(resumed.mode, launched.mode);
        assert!(resumed.encrypted_rtsp);
        assert_eq!(s.cancel_owned("a").unwrap().map(|a| a.app_id), Some(1));
        assert_eq!(s.current_game(), 0);
        assert_eq!(s.cancel_owned("a"), Ok(None));
        assert_eq!(s.cancel(), None);
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
        assert_eq!(s.current(), None);
    }

    #[test]
    fn only_the_launching_device_resumes_or_quits_and_never_in_plaintext() {
        let mut s = AppState::new();
        s.launch(&req(&format!("appid=1&{KEY}"), false), "a", A, true)
            .unwrap();
        // Another paired device can neither take the session over nor end it.
        let other = req(
            "rikey=ffeeddccbbaa99887766554433221100&rikeyid=9&corever=1",
            true,
        );
        assert_eq!(s.resume(&other, "b", B).unwrap_err(), AppError::NotOwner);
        assert_eq!(s.cancel_owned("b").unwrap_err(), AppError::NotOwner);
        // The owner without encrypted RTSP would downgrade the session: refused.
        let plain = req("rikey=ffeeddccbbaa99887766554433221100&rikeyid=9", true);
        assert_eq!(s.resume(&plain, "a", A).unwrap_err(), AppError::Downgrade);
        let app = s.current().unwrap();
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
        assert!(p.resume(&other, "a", A).unwrap().encrypted_rtsp);
    }

    #[test]
    fn mapped_ipv4_is_the_same_client() {
        let mapped: IpAddr = "::ffff:192.168.1.10".parse().unwrap();
        assert_eq!(canonical(mapped), A);
    }
}
