//! The session user: who compositors and apps run as, and the environment they get.
//!
//! sway refuses to run as root, and games must never run as root or inside the host's
//! sandbox, so every session process runs as `[session] user` (default `punktfunk`):
//! - the host runs as root (a developer's `sudo`, CI): each child switches to the user
//!   (its groups, then gid, then uid) before `exec`;
//! - the host runs as that user (the appliance's service): nothing changes user;
//! - the host runs as someone else: sessions are refused with a clear error, since no
//!   unprivileged process can become another user.
//!
//! The user's `XDG_RUNTIME_DIR` is `/run/user/<uid>` where logind made one (the
//! appliance's lingering user), else a 0700 directory of its own that the host creates.
//! When no D-Bus session bus or PipeWire answers there, the first session starts
//! private ones ([`SessionUser::start_services`]). Every session of the user shares
//! them (two clients streaming at once: one PipeWire, a sink per session), so they
//! carry a marker of their own and end with the last session that uses them.

use std::ffi::{CStr, CString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::DisplayError;
use super::process::SESSION_ENV;

/// A resolved session user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Every group the user is in (video, render, input on the appliance).
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: PathBuf,
    /// Its 0700 `XDG_RUNTIME_DIR`.
    pub runtime_dir: PathBuf,
    /// Whether the host itself runs as this user (nothing changes user).
    pub is_host: bool,
}

struct Passwd {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

fn getpwnam(name: &str) -> Option<Passwd> {
    let cname = CString::new(name).ok()?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of the
    // strings `pw` points into (copied below before `buf` is dropped).
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: getpwnam_r succeeded, so pw_dir is a NUL-terminated string inside `buf`.
    let home = unsafe { CStr::from_ptr(pw.pw_dir) }
        .to_string_lossy()
        .into_owned();
    Some(Passwd {
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        home: PathBuf::from(home),
    })
}

fn group_list(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: `groups` holds `n` entries; getgrouplist writes at most that many and
        // stores the real count in `n`.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n as usize);
            return groups;
        }
        if n <= before {
            n = before * 2;
        }
        if n > 65_536 {
            return vec![gid];
        }
    }
}

impl SessionUser {
    /// Looks up `name` and prepares its runtime directory.
    pub fn resolve(name: &str) -> Result<Self, DisplayError> {
        let pw = getpwnam(name).ok_or_else(|| {
            DisplayError::User(format!(
                "the user \"{name}\" does not exist: create it (useradd --system --create-home {name}) \
                 or set [session] user"
            ))
        })?;
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let is_host = euid == pw.uid;
        if !is_host && euid != 0 {
            return Err(DisplayError::User(format!(
                "the host runs as uid {euid} and cannot start sessions as \"{name}\": run it as \
                 root or as \"{name}\", or set [session] user to the user the host runs as"
            )));
        }
        if pw.uid == 0 {
            return Err(DisplayError::User(
                "sessions never run as root: set [session] user to an unprivileged user".into(),
            ));
        }
        let runtime_dir = runtime_dir(pw.uid, pw.gid, is_host)?;
        Ok(Self {
            name: name.to_owned(),
            uid: pw.uid,
            gid: pw.gid,
            groups: group_list(name, pw.gid),
            home: pw.home,
            runtime_dir,
            is_host,
        })
    }

    /// Looks the user up without creating anything (for `doctor`): `(uid, runtime dir
    /// it would use, whether that exists)`.
    pub fn inspect(name: &str) -> Option<(u32, PathBuf, bool)> {
        let pw = getpwnam(name)?;
        let logind = PathBuf::from(format!("/run/user/{}", pw.uid));
        if owned_dir(&logind, pw.uid) {
            return Some((pw.uid, logind, true));
        }
        let own = fallback_runtime_dir(pw.uid);
        let exists = owned_dir(&own, pw.uid);
        Some((pw.uid, own, exists))
    }

    /// A command that runs `program` as this user in a new session and process group,
    /// with a clean environment marked with the session `id`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, id: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("SHELL", "/bin/sh")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", self.runtime_dir.join("bus").display()),
            )
            .env(SESSION_ENV, id)
            .current_dir(if self.home.is_dir() {
                self.home.as_path()
            } else {
                Path::new("/")
            })
            .stdin(Stdio::null());
        for key in ["LANG", "LC_ALL", "TZ"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        let (uid, gid, groups, switch) = (self.uid, self.gid, self.groups.clone(), !self.is_host);
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (setsid, setgroups, setgid, setuid) on data
        // prepared before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                // Its own session and process group: stopping the session signals the
                // whole group, and no terminal signal of the host reaches it.
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if switch
                    && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Hands a file or directory the host created to this user.
    pub fn give(&self, path: &Path) -> std::io::Result<()> {
        if self.is_host {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
    }

    /// The private D-Bus session bus and PipeWire (with WirePlumber) sessions of this
    /// user share, started for session `id` where none answers in the runtime
    /// directory; the last session to drop its lease ends them. With `wait_pipewire`
    /// it waits (up to 5 s) until PipeWire's socket answers (gamescope and a session
    /// sink need it; sway does not).
    pub fn start_services(&self, id: &str, wait_pipewire: bool) -> ServicesLease {
        let mut shared = SHARED_SERVICES.lock().unwrap_or_else(|e| e.into_inner());
        let key = self.runtime_dir.clone();
        if let Some(entry) = shared.get_mut(&key) {
            entry.users += 1;
            drop(shared);
            if wait_pipewire {
                wait_for_socket(&self.runtime_dir.join("pipewire-0"), Duration::from_secs(5));
            }
        } else {
            // Their own marker: ending one session must not end them under another.
            let marker = format!("{id}-services");
            let children = self.spawn_services(&marker, wait_pipewire);
            shared.insert(
                key.clone(),
                SharedServices {
                    users: 1,
                    children,
                    marker,
                },
            );
        }
        ServicesLease { key }
    }

    fn spawn_services(&self, id: &str, wait_pipewire: bool) -> Vec<Child> {
        let mut started = Vec::new();
        let bus = self.runtime_dir.join("bus");
        if UnixStream::connect(&bus).is_err() {
            let _ = std::fs::remove_file(&bus);
            let mut cmd = self.command("dbus-daemon", id);
            cmd.args(["--session", "--nofork", "--nopidfile"])
                .arg(format!("--address=unix:path={}", bus.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            match cmd.spawn() {
                Ok(child) => {
                    tracing::info!(user = self.name, "started a private D-Bus session bus");
                    started.push(child);
                    wait_for_socket(&bus, Duration::from_secs(2));
                }
                Err(e) => tracing::warn!("no D-Bus session bus for the session: dbus-daemon: {e}"),
            }
        }
        let pw = self.runtime_dir.join("pipewire-0");
        if UnixStream::connect(&pw).is_err() {
            let _ = std::fs::remove_file(&pw);
            let _ = std::fs::remove_file(self.runtime_dir.join("pipewire-0.lock"));
            for program in ["pipewire", "wireplumber", "pipewire-pulse"] {
                let mut cmd = self.command(program, id);
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
                match cmd.spawn() {
                    Ok(child) => started.push(child),
                    Err(e) => {
                        tracing::warn!("no {program} for the session: {e}");
                        break;
                    }
                }
                if program == "pipewire" {
                    wait_for_socket(&pw, Duration::from_secs(2));
                }
            }
            if !started.is_empty() {
                tracing::info!(
                    user = self.name,
                    "started a private PipeWire for the sessions"
                );
            }
            if wait_pipewire {
                wait_for_socket(&pw, Duration::from_secs(5));
            }
        }
        started
    }
}

/// Private services of one runtime directory and how many sessions use them.
struct SharedServices {
    users: usize,
    children: Vec<Child>,
    marker: String,
}

/// The private services of every runtime directory sessions run in.
static SHARED_SERVICES: std::sync::Mutex<std::collections::BTreeMap<PathBuf, SharedServices>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A session's use of its user's private services; dropping the last lease of a
/// runtime directory ends them (and every process with their marker).
#[derive(Debug)]
#[must_use = "the services end when the lease is dropped"]
pub struct ServicesLease {
    key: PathBuf,
}

impl Drop for ServicesLease {
    fn drop(&mut self) {
        let ended = {
            let mut shared = SHARED_SERVICES.lock().unwrap_or_else(|e| e.into_inner());
            let last = shared.get_mut(&self.key).is_some_and(|e| {
                e.users -= 1;
                e.users == 0
            });
            if last { shared.remove(&self.key) } else { None }
        };
        // Outside the lock: ending them waits for the processes to exit.
        if let Some(mut s) = ended {
            super::process::end_session(&s.marker, &mut s.children);
        }
    }
}

fn wait_for_socket(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if UnixStream::connect(path).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn owned_dir(path: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == uid)
}

/// The runtime directory the host makes where logind made none.
pub fn fallback_runtime_dir(uid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("punktfunk-runtime-{uid}"))
}

fn runtime_dir(uid: u32, gid: u32, is_host: bool) -> Result<PathBuf, DisplayError> {
    if is_host
        && let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && owned_dir(&dir, uid)
    {
        return Ok(dir);
    }
    let logind = PathBuf::from(format!("/run/user/{uid}"));
    if owned_dir(&logind, uid) {
        return Ok(logind);
    }
    let dir = fallback_runtime_dir(uid);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() && m.uid() == uid => {}
        Ok(_) => {
            return Err(DisplayError::User(format!(
                "{} exists but is not a directory of uid {uid}: remove it",
                dir.display()
            )));
        }
        Err(_) => {
            std::fs::create_dir(&dir)
                .and_then(|()| {
                    if is_host {
                        Ok(())
                    } else {
                        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                    }
                })
                .map_err(|e| {
                    DisplayError::User(format!("creating the runtime dir {}: {e}", dir.display()))
                })?;
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| DisplayError::User(format!("restricting {}: {e}", dir.display())))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_users_and_root() {
        let e = SessionUser::resolve("pf-no-such-user-xyz").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let e = SessionUser::resolve("root").unwrap_err();
            assert!(e.to_string().contains("never run as root"), "{e}");
        }
        assert_eq!(SessionUser::inspect("pf-no-such-user-xyz"), None);
    }

    #[test]
    fn lists_the_primary_group() {
        let pw = getpwnam("root").expect("root exists");
        assert!(group_list("root", pw.gid).contains(&pw.gid));
    }
}
