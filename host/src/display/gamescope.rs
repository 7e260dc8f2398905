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

use serde_json::Value;

use super::process::end_session;
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

/// A PipeWire node as `pw-dump` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PwNode {
    /// Object id.
    pub id: u32,
    /// `node.name`.
    pub name: String,
    /// `media.class`.
    pub media_class: String,
    /// The owning process: the node's `application.process.id`, else its client's
    /// (`application.process.id` or `pipewire.sec.pid`).
    pub pid: Option<u32>,
}

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .or_else(|| v.as_str()?.parse().ok())
}

/// The nodes in `pw-dump`'s JSON, with their owning process.
pub fn parse_pw_dump(json: &str) -> Vec<PwNode> {
    let Ok(Value::Array(objects)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let props = |o: &Value| o.pointer("/info/props").cloned().unwrap_or(Value::Null);
    let client_pid: std::collections::HashMap<u32, u32> = objects
        .iter()
        .filter(|o| o["type"] == "PipeWire:Interface:Client")
        .filter_map(|o| {
            let p = props(o);
            let pid =
                as_u32(&p["application.process.id"]).or_else(|| as_u32(&p["pipewire.sec.pid"]))?;
            Some((as_u32(&o["id"])?, pid))
        })
        .collect();
    objects
        .iter()
        .filter(|o| o["type"] == "PipeWire:Interface:Node")
        .filter_map(|o| {
            let p = props(o);
            Some(PwNode {
                id: as_u32(&o["id"])?,
                name: p["node.name"].as_str().unwrap_or("").to_owned(),
                media_class: p["media.class"].as_str().unwrap_or("").to_owned(),
                pid: as_u32(&p["application.process.id"])
                    .or_else(|| as_u32(&p["client.id"]).and_then(|c| client_pid.get(&c).copied())),
            })
        })
        .collect()
}

/// This gamescope's video node among `nodes`: a Video/Source owned by `pid`. Never a
/// node of another gamescope, whatever its name.
pub fn select_node(nodes: &[PwNode], pid: u32) -> Option<u32> {
    nodes
        .iter()
        .find(|n| n.media_class == "Video/Source" && n.pid == Some(pid))
        .map(|n| n.id)
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
    services: Vec<Child>,
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
            services: Vec::new(),
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
                "PF_WIDTH={}\nPF_HEIGHT={}\nPF_FPS={}\nPF_COMMAND={}\nPF_GAMESCOPE_ARGS={}\n",
                mode.width,
                mode.height,
                mode.fps,
                self.command.as_deref().unwrap_or("sleep infinity"),
                self.extra.join(" ")
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
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| DisplayError::CompositorFailed(format!("{}: {e}", info.path.display())))?;
        self.child = Some(child);
        Ok(())
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
        self.services = self.user.start_services(&spec.id, true);
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

    fn stop(&mut self) {
        self.end();
        let mut services: Vec<Child> = self.services.drain(..).collect();
        if !self.id.is_empty() {
            end_session(&self.id, &mut services);
        }
        self.id.clear();
    }

    fn pids(&self) -> (Option<u32>, Option<u32>) {
        (self.child.as_ref().map(Child::id), None)
    }
}

impl Drop for GamescopeSession {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP_CURRENT: &str = "usage: gamescope [options...] -- [app...]\n\
Options:\n  --help                         show help message\n\
  -W, --output-width             output width\n\
  --backend                      select rendering backend\n\
                                     auto => autodetect (default)\n\
                                     drm => use DRM backend (standalone display session)\n\
                                     sdl => use SDL backend (nested sessions)\n\
                                     headless => use headless backend (no window, no DRM output)\n\
                                     wayland => use Wayland backend\n";
    const HELP_312: &str = "usage: gamescope [options...] -- [app...]\n\
  -W, --output-width             output width\n\
  --headless                     use headless backend (no window, no DRM output)\n\
  --nested-refresh               game refresh rate (frames per second)\n";
    const HELP_311: &str = "usage: gamescope [options...] -- [app...]\n\
  -W, --output-width             output width\n\
  -e, --steam                    enable Steam integration\n";

    fn mode() -> Mode {
        Mode {
            width: 1920,
            height: 1080,
            fps: 60,
        }
    }

    #[test]
    fn command_line_for_each_help_variant() {
        assert_eq!(headless_flag(HELP_CURRENT), Some(HeadlessFlag::Backend));
        assert_eq!(headless_flag(HELP_312), Some(HeadlessFlag::Legacy));
        assert_eq!(headless_flag(HELP_311), None);
        let extra = vec!["--prefer-vk-device".to_owned(), "1002:73bf".to_owned()];
        assert_eq!(
            command_line(
                HeadlessFlag::Backend,
                mode(),
                &extra,
                Some("steam -gamepadui")
            )
            .join(" "),
            "--backend headless -W 1920 -H 1080 -w 1920 -h 1080 -r 60 \
             --prefer-vk-device 1002:73bf -- /bin/sh -c steam -gamepadui"
        );
        let legacy = command_line(HeadlessFlag::Legacy, mode(), &[], Some("vkcube"));
        assert_eq!(legacy[0], "--headless");
        assert_eq!(
            legacy.last().unwrap(),
            "vkcube",
            "the command is one argument of sh -c"
        );
        assert!(!command_line(HeadlessFlag::Legacy, mode(), &[], None).contains(&"--".to_owned()));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("gamescope version 3.14.2 (gcc 13.2.1)").as_deref(),
            Some("3.14.2")
        );
        assert_eq!(
            parse_version("[gamescope] [Info]  console: gamescope version v3.12.5").as_deref(),
            Some("3.12.5")
        );
        assert_eq!(
            parse_version("gamescope: unrecognized option '--version'"),
            None
        );
    }

    const DUMP: &str = r#"[
      {"id": 30, "type": "PipeWire:Interface:Client", "info": {"props": {"application.process.id": 4000, "pipewire.sec.pid": 4000}}},
      {"id": 31, "type": "PipeWire:Interface:Client", "info": {"props": {"pipewire.sec.pid": 5000}}},
      {"id": 32, "type": "PipeWire:Interface:Client", "info": {"props": {"application.process.id": "6000"}}},
      {"id": 50, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Video/Source", "client.id": 30}}},
      {"id": 51, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Video/Source", "client.id": 31}}},
      {"id": 52, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Stream/Input/Audio", "client.id": 32}}},
      {"id": 53, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Video/Source", "application.process.id": 6000}}},
      {"id": 54, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "xdg-desktop-portal-wlr", "media.class": "Video/Source", "client.id": 99}}}
    ]"#;

    #[test]
    fn picks_this_gamescopes_node_among_several() {
        let nodes = parse_pw_dump(DUMP);
        assert_eq!(nodes.len(), 5);
        assert_eq!(select_node(&nodes, 4000), Some(50));
        assert_eq!(
            select_node(&nodes, 5000),
            Some(51),
            "pid from pipewire.sec.pid"
        );
        assert_eq!(
            select_node(&nodes, 6000),
            Some(53),
            "audio nodes are skipped"
        );
        assert_eq!(
            select_node(&nodes, 7000),
            None,
            "never just the first gamescope node"
        );
        assert!(parse_pw_dump("not json").is_empty());
    }
}
