//! How session processes start: as the host's children, or as transient services of
//! the session user's own systemd manager.
//!
//! On the appliance the host is a hardened system service running as the session user
//! (read-only file system, no new privileges, a syscall filter): a compositor started as
//! its child would inherit that sandbox and could not even create its Wayland socket,
//! and games must never run inside it. There the punktfunk user's lingering manager
//! runs them instead, each as `punktfunk-session-<id>-<role>.service` (`systemd-run
//! --user --wait`, so the host still sees the exit status through the `systemd-run`
//! child), and stopping the unit kills its whole cgroup. Anywhere else (a developer's
//! machine, CI: no user manager) they are children in their own process groups.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use super::sway::find_on_path;
use super::user::SessionUser;

/// One process of a session, as [`Launcher::command`] starts it.
#[derive(Debug, Clone, Copy)]
pub struct Spawn<'a> {
    /// "sway", "app": names its unit.
    pub role: &'a str,
    /// The program.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [OsString],
    /// Variables on top of the session environment.
    pub env: &'a [(String, String)],
    /// Where its output goes (appended).
    pub log: &'a Path,
}

/// Where session processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// Children of the host, each in its own process group.
    Child,
    /// Transient services of the session user's own manager.
    UserManager,
}

impl Launcher {
    /// The user manager when the host runs as the session user and that user's
    /// manager answers (`$XDG_RUNTIME_DIR/systemd/private`), else children.
    pub fn detect(user: &SessionUser) -> Self {
        if user.is_host
            && user.runtime_dir.join("systemd/private").exists()
            && find_on_path("systemd-run").is_some()
        {
            Self::UserManager
        } else {
            Self::Child
        }
    }

    /// The unit name of session `id`'s process `role` ("sway", "app").
    pub fn unit(id: &str, role: &str) -> String {
        format!("punktfunk-session-{id}-{role}.service")
    }

    /// The arguments of `systemd-run` for running `program args` as `unit` with `env`,
    /// its output appended to `log`.
    pub fn systemd_run_args(
        unit: &str,
        env: &[(String, String)],
        log: &Path,
        program: &Path,
        args: &[OsString],
    ) -> Vec<OsString> {
        let mut out: Vec<OsString> = [
            "--user",
            "--wait",
            "--collect",
            "--quiet",
            "--service-type=exec",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        out.push(format!("--unit={unit}").into());
        for p in ["StandardOutput", "StandardError"] {
            out.push(format!("--property={p}=append:{}", log.display()).into());
        }
        out.push("--property=KillMode=control-group".into());
        for (k, v) in env {
            out.push(format!("--setenv={k}={v}").into());
        }
        out.push("--".into());
        out.push(program.as_os_str().to_owned());
        out.extend(args.iter().cloned());
        out
    }

    /// A command that runs `what` for session `id`, with its environment on top of
    /// the session's and its output appended to its log.
    pub fn command(
        self,
        user: &SessionUser,
        id: &str,
        what: &Spawn<'_>,
    ) -> std::io::Result<Command> {
        let Spawn {
            role,
            program,
            args,
            env,
            log,
        } = *what;
        match self {
            Self::Child => {
                let mut cmd = user.command(program, id);
                cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)?;
                cmd.stdout(file.try_clone()?).stderr(file);
                Ok(cmd)
            }
            Self::UserManager => {
                let mut full = env.to_vec();
                for k in ["XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"] {
                    full.retain(|(key, _)| key != k);
                }
                full.push((super::process::SESSION_ENV.to_owned(), id.to_owned()));
                let mut cmd = user.command("systemd-run", id);
                cmd.args(Self::systemd_run_args(
                    &Self::unit(id, role),
                    &full,
                    log,
                    program,
                    args,
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
                Ok(cmd)
            }
        }
    }

    /// Stops session `id`'s units (the user manager kills each unit's cgroup).
    pub fn stop_units(self, user: &SessionUser, id: &str, roles: &[&str]) {
        if self != Self::UserManager {
            return;
        }
        let units: Vec<String> = roles.iter().map(|r| Self::unit(id, r)).collect();
        let _ = user
            .command("systemctl", id)
            .arg("--user")
            .arg("stop")
            .args(&units)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_run_names_the_unit_and_passes_the_environment() {
        let args = Launcher::systemd_run_args(
            &Launcher::unit("77-1", "sway"),
            &[("WLR_BACKENDS".into(), "headless".into())],
            Path::new("/run/punktfunk/session-77-1/sway.log"),
            Path::new("/usr/bin/sway"),
            &[
                "--config".into(),
                "/run/punktfunk/session-77-1/sway.config".into(),
            ],
        );
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = text.join(" ");
        assert!(joined.starts_with("--user --wait --collect"), "{joined}");
        assert!(text.contains(&"--unit=punktfunk-session-77-1-sway.service".to_owned()));
        assert!(text.contains(&"--setenv=WLR_BACKENDS=headless".to_owned()));
        assert!(text.contains(
            &"--property=StandardError=append:/run/punktfunk/session-77-1/sway.log".to_owned()
        ));
        let dashdash = text.iter().position(|a| a == "--").unwrap();
        assert_eq!(
            &text[dashdash + 1..],
            [
                "/usr/bin/sway",
                "--config",
                "/run/punktfunk/session-77-1/sway.config"
            ]
        );
    }
}
