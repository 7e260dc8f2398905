//! Which app is running, and what `/launch`, `/resume` and `/cancel` do to it.
//!
//! GameStream runs one app at a time (Sunshine `nvhttp.cpp`): launching while an app
//! runs is refused with status 400, resuming with nothing running with 503, and cancel
//! always succeeds. Each launch or resume carries fresh stream keys (`rikey`), so the
//! state records a generation that the streaming side uses to pick up the newest keys.

use thiserror::Error;

use super::nvhttp::requests::{DisplayMode, LaunchRequest};

/// The app that is running and the keys its stream uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchedApp {
    /// The app's id.
    pub app_id: u32,
    /// Fingerprint of the client that launched or last resumed it.
    pub owner: String,
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
}

impl AppError {
    /// The `status_code` GameStream clients expect for this error.
    pub fn status_code(&self) -> u32 {
        match self {
            AppError::AlreadyRunning { .. } => 400,
            AppError::NotRunning => 503,
            AppError::UnknownApp(_) => 404,
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

    /// `/launch` by the client with certificate fingerprint `owner`. `known_app` says
    /// whether the catalog has `req.app_id`.
    pub fn launch(
        &mut self,
        req: &LaunchRequest,
        owner: &str,
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
            key: req.key,
            key_id: req.key_id,
            mode: req.mode,
            audio_channels: req.audio_channels(),
            encrypted_rtsp: req.core_version >= 1,
            generation: self.generation,
        }))
    }

    /// `/resume`: re-attaches to the running app with the request's new keys.
    pub fn resume(&mut self, req: &LaunchRequest, owner: &str) -> Result<&LaunchedApp, AppError> {
        let app = self.running.as_mut().ok_or(AppError::NotRunning)?;
        self.generation += 1;
        app.owner = owner.to_owned();
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

    /// `/cancel` (or the app exiting): stops whatever runs and returns it.
    pub fn cancel(&mut self) -> Option<LaunchedApp> {
        self.running.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gamestream::nvhttp::query::Query;

    fn req(q: &str, resume: bool) -> LaunchRequest {
        LaunchRequest::from_query(&Query::parse(q).unwrap(), resume).unwrap()
    }

    const KEY: &str = "rikey=00112233445566778899aabbccddeeff&rikeyid=5&corever=1";

    #[test]
    fn launch_resume_cancel_lifecycle() {
        let mut s = AppState::new();
        assert_eq!(s.current_game(), 0);
        assert_eq!(
            s.resume(&req(KEY, true), "a").unwrap_err(),
            AppError::NotRunning
        );
        let launched = s
            .launch(
                &req(&format!("appid=1&mode=1280x720x60&{KEY}"), false),
                "a",
                true,
            )
            .unwrap()
            .clone();
        assert_eq!((launched.app_id, launched.generation), (1, 1));
        assert!(launched.encrypted_rtsp);
        assert_eq!(s.current_game(), 1);
        // A second launch, by anyone, is refused with the GameStream code.
        let err = s
            .launch(&req(&format!("appid=2&{KEY}"), false), "b", true)
            .unwrap_err();
        assert_eq!(
            (err.clone(), err.status_code()),
            (AppError::AlreadyRunning { app_id: 1 }, 400)
        );
        // Resume re-attaches with new keys and keeps the launch's mode.
        let resumed = s
            .resume(
                &req("rikey=ffeeddccbbaa99887766554433221100&rikeyid=9", true),
                "b",
            )
            .unwrap();
        assert_eq!(
            (resumed.key_id, resumed.generation, resumed.owner.as_str()),
            (9, 2, "b")
        );
        assert_eq!(resumed.mode, launched.mode);
        assert!(!resumed.encrypted_rtsp);
        assert_eq!(s.cancel().map(|a| a.app_id), Some(1));
        assert_eq!(s.current_game(), 0);
        assert_eq!(s.cancel(), None);
    }

    #[test]
    fn unknown_apps_are_refused() {
        let mut s = AppState::new();
        let err = s
            .launch(&req(&format!("appid=77&{KEY}"), false), "a", false)
            .unwrap_err();
        assert_eq!(
            (err.clone(), err.status_code()),
            (AppError::UnknownApp(77), 404)
        );
        assert!(
            s.launch(&req(&format!("appid=0&{KEY}"), false), "a", true)
                .is_err()
        );
        assert_eq!(s.current(), None);
    }
}
