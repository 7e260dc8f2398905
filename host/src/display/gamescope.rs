//! Headless gamescope: the appliance's compositor, captured from its PipeWire node.
//!
//! - The headless flag depends on the version: `--backend headless` on current
//!   gamescope, `--headless` on 3.12 to 3.13, none before (Debian 12's 3.11 cannot run
//!   headless at all). [`probe`] reads `gamescope --help` to tell which.
//! - Capture finds *this* gamescope's node: the Video/Source node whose owning process
//!   is this gamescope ([`select_node`]), never "the first node named gamescope", since
//!   two sessions may run.
//! - On the appliance the session runs as `punktfunk-session@ID.service` in the
//!   punktfunk user's lingering manager (bootc/README.md, "The session"): the unit's
//!   cgroup takes the game with it. Where that manager is missing (a developer machine)
//!   gamescope runs as a child with the same arguments.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::end_session;
pub use super::pw_nodes::{PwNode, parse_pw_dump, select_node};
use super::sway::find_on_path;
use super::user::SessionUser;
use super::{AppExit, Backend, Display, DisplayConfig, DisplayError, LaunchSpec, Mode};
use crate::capture::{CaptureSpec, NodeTarget};

/// How this gamescope is told to run headless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadlessFlag {
    /// `--backend headless` (current gamescope).
    Backend,
    /// `--headless` (3.12, 3.13).
    Legacy,
}

/// What `gamescope --help` told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GamescopeInfo {
    /// The program.
    pub path: PathBuf,
    /// "3.14.2", or "unknown".
    pub version: String,
    /// How to run headless, if it can.
    pub headless: Option<HeadlessFlag>,
}

/// Which headless flag a `--help` text offers.
pub fn headless_flag(help: &str) -> Option<HeadlessFlag> {
    let backend_headless = help
        .lines()
        .any(|l| l.trim_start().starts_with("--backend"))
        && help
            .lines()
            .any(|l| l.trim_start().starts_with("headless") || l.contains("headless =>"));
    if backend_headless {
        Some(HeadlessFlag::Backend)
    } else if help
        .lines()
        .any(|l| l.trim_start().starts_with("--headless"))
    {
        Some(HeadlessFlag::Legacy)
    } else {
        None
    }
}

/// The version in `gamescope --version` output ("gamescope version 3.14.2 (gcc ...)").
pub fn parse_version(text: &str) -> Option<String> {
    let rest = text.split("version").nth(1)?;
    let v = rest.split_whitespace().next()?.trim_start_matches('v');
    v.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
        .then(|| v.to_owned())
}

fn output_of(path: &Path, arg: &str) -> String {
    Command::new(path)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        })
        .unwrap_or_default()
}

/// gamescope's program, version and headless flag, if installed.
pub fn probe(configured: Option<&Path>) -> Option<GamescopeInfo> {
    let path = match configured {
        Some(p)
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("gamescope")) =>
        {
            p.is_file().then(|| p.to_owned())?
        }
        _ => find_on_path("gamescope")?,
    };
    let help = output_of(&path, "--help");
    let version = parse_version(&output_of(&path, "--version"))
        .or_else(|| parse_version(&help))
        .unwrap_or_else(|| "unknown".to_owned());
    Some(GamescopeInfo {
        headless: headless_flag(&help),
        path,
        version,
    })
}

/// gamescope's arguments for a session at `mode` running `command` (after `--`).
pub fn command_line(
    flag: HeadlessFlag,
    mode: Mode,
    extra: &[String],
    command: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = match flag {
        HeadlessFlag::Backend => vec!["--backend".into(), "headless".into()],
        HeadlessFlag::Legacy => vec!["--headless".into()],
    };
    let (w, h, r) = (
        mode.width.to_string(),
        mode.height.to_string(),
        mode.fps.to_string(),
    );
    for (flag, value) in [("-W", &w), ("-H", &h), ("-w", &w), ("-h", &h), ("-r", &r)] {
        args.push(flag.into());
        args.push(value.clone());
    }
    args.extend(extra.iter().cloned());
    if let Some(cmd) = command {
        args.extend(["--".into(), "/bin/sh".into(), "-c".into(), cmd.into()]);
    }
    args
}

/// A headless gamescope session.
#[derive(Debug)]
pub struct GamescopeSession {
    info: Option<GamescopeInfo>,
    extra: Vec<String>,
    user: SessionUser,
    id: String,
    mode: Option<Mode>,
    command: Option<String>,
    child: Option<Child>,
    unit: Option<String>,
    /// The user's private D-Bus and PipeWire, shared with its other sessions.
    services: Option<super::user::ServicesLease>,
    /// The session's audio sink (see [`crate::audio::sink`]).
    sink: Option<crate::audio::sink::SessionSink>,
    node: Option<u32>,
    exit: Option<AppExit>,
}

impl GamescopeSession {
    /// A session that will run gamescope as `user`.
    pub fn new(config: &DisplayConfig, user: SessionUser) -> Result<Self, DisplayError> {
        Ok(Self {
            info: probe(config.compositor_path.as_deref()),
            extra: config.gamescope_args.clone(),
            user,
            id: String::new(),
            mode: None,
            command: None,
            child: None,
            unit: None,
            services: None,
            sink: None,
            node: None,
            exit: None,
        })
    }

    /// Whether the punktfunk user's own manager runs (the appliance): the session is
    /// then a unit of it.
    fn user_manager(&self) -> bool {
        self.user.is_host && self.user.runtime_dir.join("systemd/private").exists()
    }

    /// `systemctl --user` for the session user's manager: the host service has no
    /// session environment of its own, so the manager's addresses are set here.
    fn systemctl(&self) -> Command {
        let mut cmd = Command::new("systemctl");
        cmd.env("XDG_RUNTIME_DIR", &self.user.runtime_dir)
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", self.user.runtime_dir.join("bus").display()),
            )
            .stdin(Stdio::null());
        cmd
    }

    fn main_pid(&mut self) -> Option<u32> {
        if let Some(c) = &self.child {
            return Some(c.id());
        }
        let unit = self.unit.as_ref()?;
        let out = self
            .systemctl()
            .args(["--user", "show", "-p", "MainPID", "--value", unit])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
    }

    fn find_node(&mut self, deadline: Instant) -> Result<u32, DisplayError> {
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(DisplayError::CompositorFailed(format!(
                    "gamescope exited ({status})"
                )));
            }
            if let Some(pid) = self.main_pid() {
                let out = Command::new("pw-dump")
                    .env("PIPEWIRE_RUNTIME_DIR", &self.user.runtime_dir)
                    .stderr(Stdio::null())
                    .output();
                if let Ok(out) = out
                    && let Some(id) =
                        select_node(&parse_pw_dump(&String::from_utf8_lossy(&out.stdout)), pid)
                {
                    return Ok(id);
                }
            }
            if Instant::now() >= deadline {
                return Err(DisplayError::CompositorFailed(
                    "gamescope published no PipeWire video node in time".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn(&mut self, mode: Mode) -> Result<(), DisplayError> {
        let info = self
            .info
            .clone()
            .ok_or_else(|| DisplayError::MissingCompositor("gamescope".into()))?;
        let flag = info.headless.ok_or_else(|| {
            DisplayError::CompositorFailed(format!(
                "gamescope {} has no headless backend (3.12 or newer is needed)",
                info.version
            ))
        })?;
        if self.user_manager() {
            let env = format!(
                "PF_WIDTH={}\nPF_HEIGHT={}\nPF_FPS={}\nPF_COMMAND={}\nPF_GAMESCOPE_ARGS={}\n{}",
                mode.width,
                mode.height,
                mode.fps,
                self.command.as_deref().unwrap_or("sleep infinity"),
                self.extra.join(" "),
                self.sink_env()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect::<String>()
            );
            let path = PathBuf::from(format!("/run/punktfunk/session-{}.env", self.id));
            std::fs::write(&path, env)
                .map_err(|e| DisplayError::Other(format!("{}: {e}", path.display())))?;
            let unit = format!("punktfunk-session@{}.service", self.id);
            let status = self
                .systemctl()
                .args(["--user", "start", &unit])
                .status()
                .map_err(|e| DisplayError::Other(format!("systemctl: {e}")))?;
            if !status.success() {
                return Err(DisplayError::CompositorFailed(format!(
                    "{unit} failed to start"
                )));
            }
            self.unit = Some(unit);
            return Ok(());
        }
        let args = command_line(flag, mode, &self.extra, self.command.as_deref());
        let mut cmd = self.user.command(&info.path, &self.id);
        cmd.args(&args)
            .env("ENABLE_GAMESCOPE_WSI", "1")
            .env("PIPEWIRE_RUNTIME_DIR", &self.user.runtime_dir)
            .envs(self.sink_env())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| DisplayError::CompositorFailed(format!("{}: {e}", info.path.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// What the app gets to play into the session's sink (gamescope passes its
    /// environment on to the app it starts).
    fn sink_env(&self) -> Vec<(String, String)> {
        self.sink
            .as_ref()
            .map(crate::audio::sink::SessionSink::app_env)
            .unwrap_or_default()
    }

    fn end(&mut self) {
        if let Some(unit) = self.unit.take() {
            let _ = self.systemctl().args(["--user", "stop", &unit]).status();
            let _ = std::fs::remove_file(format!("/run/punktfunk/session-{}.env", self.id));
        }
        let mut children: Vec<Child> = self.child.take().into_iter().collect();
        if !self.id.is_empty() {
            end_session(&self.id, &mut children);
        }
        self.node = None;
    }
}

impl Display for GamescopeSession {
    fn backend(&self) -> Backend {
        Backend::Gamescope
    }

    fn start(&mut self, spec: &LaunchSpec) -> Result<(), DisplayError> {
        self.id = spec.id.clone();
        self.mode = Some(spec.mode);
        self.command = spec.command.clone();
        let deadline = Instant::now() + super::START_TIMEOUT;
        self.services = Some(self.user.start_services(&spec.id, true));
        self.sink = crate::audio::sink::SessionSink::for_session(
            &self.user.runtime_dir,
            &spec.id,
            spec.audio_channels,
        );
        let result = self
            .spawn(spec.mode)
            .and_then(|()| self.find_node(deadline));
        match result {
            Ok(node) => {
                self.node = Some(node);
                Ok(())
            }
            Err(e) => {
                self.stop();
                Err(e)
            }
        }
    }

    fn capture(&self) -> CaptureSpec {
        CaptureSpec::PipeWire {
            node: NodeTarget::Id(self.node.unwrap_or(0)),
            runtime_dir: Some(self.user.runtime_dir.clone()),
        }
    }

    fn set_mode(&mut self, mode: Mode) -> Result<(), DisplayError> {
        if self.mode == Some(mode) {
            return Ok(());
        }
        // gamescope cannot change its output size at run time: restart it (the game
        // restarts with it, as on any console when the display mode changes).
        self.end();
        self.mode = Some(mode);
        self.spawn(mode)?;
        self.node = Some(self.find_node(Instant::now() + super::START_TIMEOUT)?);
        Ok(())
    }

    fn app_exit(&mut self) -> Option<AppExit> {
        if self.exit.is_none()
            && let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            self.exit = Some(status.into());
            self.child = None;
        }
        if self.exit.is_none()
            && let Some(unit) = self.unit.clone()
            && let Ok(out) = self
                .systemctl()
                .args([
                    "--user",
                    "show",
                    "-p",
                    "ActiveState",
                    "-p",
                    "ExecMainStatus",
                    &unit,
                ])
                .output()
        {
            // gamescope exits with its app; the unit then stops being active.
            let text = String::from_utf8_lossy(&out.stdout);
            let prop = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap_or("")
                    .to_owned()
            };
            if matches!(prop("ActiveState=").as_str(), "inactive" | "failed") {
                self.exit = Some(AppExit::Code(prop("ExecMainStatus=").parse().unwrap_or(-1)));
            }
        }
        self.exit
    }

    fn compositor_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
            || self.unit.is_some()
    }

    fn audio(&self) -> Option<crate::audio::AudioSpec> {
        self.sink
            .as_ref()
            .map(|s| s.capture_spec(&self.user.runtime_dir))
    }

    fn stop(&mut self) {
        self.end();
        self.sink = None;
        if !self.id.is_empty() {
            end_session(&self.id, &mut Vec::new());
        }
        // Last: the sink lives in the PipeWire these are (when no other session
        // still uses them).
        self.services = None;
        self.id.clear();
    }

    fn pids(&self) -> (Option<u32>, Option<u32>) {
        (self.child.as_ref().map(Child::id), None)
    }

    /// gamescope's own libei server: the `LIBEI_SOCKET` it gave the session's app
    /// (read from the environment of a process carrying this session's marker).
    /// Nowhere until the app runs.
    fn input(&self) -> crate::input::SessionInput {
        let (Some(mode), false) = (self.mode, self.id.is_empty()) else {
            return crate::input::SessionInput::NoSession;
        };
        let socket = super::process::marked(&self.id)
            .into_iter()
            .find_map(|pid| {
                let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                crate::input::ei::socket_from_environ(&env, &self.user.runtime_dir)
            });
        match socket {
            Some(ei_socket) => crate::input::SessionInput::Gamescope {
                ei_socket,
                output: (mode.width, mode.height),
            },
            None => {
                tracing::warn!(session = self.id, "gamescope gave its app no LIBEI_SOCKET");
                crate::input::SessionInput::NoSession
            }
        }
    }
}

impl Drop for GamescopeSession {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
#[path = "gamescope_tests.rs"]
mod tests;
