//! Ending a session so that none of its processes remain.
//!
//! Every process the host starts for a session gets its own process group and the
//! environment variable [`SESSION_ENV`]`=<id>`. Ending a session signals those groups,
//! then sweeps `/proc` for any process still carrying the marker: a game that
//! daemonised a helper into a new session of its own still inherited the variable.
//! On the appliance the session's unit cgroup does the same job (see the gamescope
//! backend); this is the path everywhere else, CI included.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// The environment variable that marks a session's processes.
pub const SESSION_ENV: &str = "PUNKTFUNK_SESSION";

/// How long processes get to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Process ids whose environment carries `SESSION_ENV=id` (readable ones: all of them
/// for root, the user's own otherwise).
pub fn marked(id: &str) -> Vec<i32> {
    marked_in(Path::new("/proc"), id)
}

/// [`marked`] under another procfs root (tests).
pub fn marked_in(proc_root: &Path, id: &str) -> Vec<i32> {
    let needle = format!("{SESSION_ENV}={id}");
    let own = std::process::id() as i32;
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills the processes of sessions whose host is gone (killed, crashed): their marker
/// `<host pid>-<n>` names a process that no longer exists. Called at start-up, so a
/// host that died without ending its session leaves nothing running for long.
/// Returns how many were killed.
pub fn reap_orphans() -> usize {
    reap_orphans_in(Path::new("/proc"))
}

fn reap_orphans_in(proc_root: &Path) -> usize {
    let prefix = format!("{SESSION_ENV}=");
    let mut killed = 0;
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return 0;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let Some(id) = env
            .split(|b| *b == 0)
            .find_map(|v| v.strip_prefix(prefix.as_bytes()))
        else {
            continue;
        };
        let owner = std::str::from_utf8(id)
            .ok()
            .and_then(|id| id.split('-').next())
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(owner) = owner
            && !proc_root.join(owner.to_string()).exists()
        {
            signal(pid, libc::SIGKILL);
            killed += 1;
        }
    }
    if killed > 0 {
        tracing::warn!(
            killed,
            "ended processes left by a host that died during a session"
        );
    }
    killed
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill has no memory preconditions; a negative pid names the group.
        unsafe { libc::kill(-pgid, sig) };
    }
}

fn signal(pid: i32, sig: i32) {
    if pid > 1 {
        // SAFETY: as above, for one process.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Ends `children` (each the leader of its own process group) and every process
/// marked with session `id`: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL.
/// Reaps the children. Returns how many marked processes had to be killed.
pub fn end_session(id: &str, children: &mut Vec<Child>) -> usize {
    for c in children.iter() {
        signal_group(c.id() as i32, libc::SIGTERM);
    }
    for pid in marked(id) {
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        let left = marked(id);
        // Zombies of processes that are not ours still show up until init reaps them;
        // they hold nothing, so only living ones count.
        let living: Vec<i32> = left.into_iter().filter(|p| !is_zombie(*p)).collect();
        if children.is_empty() && living.is_empty() {
            return 0;
        }
        if Instant::now() >= deadline {
            for c in children.iter() {
                signal_group(c.id() as i32, libc::SIGKILL);
                let _ = c.id();
            }
            for pid in &living {
                signal(*pid, libc::SIGKILL);
            }
            for mut c in children.drain(..) {
                let _ = c.kill();
                let _ = c.wait();
            }
            if !living.is_empty() {
                tracing::warn!(
                    session = id,
                    count = living.len(),
                    "killed session processes that ignored SIGTERM"
                );
            }
            return living.len();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st == "Z"))
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_processes_by_their_marker() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, env) in [
            ("100", "A=1\0PUNKTFUNK_SESSION=s1\0"),
            ("101", "PUNKTFUNK_SESSION=s10\0"),
            ("102", "X=PUNKTFUNK_SESSION=s1\0"),
        ] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("environ"), env).unwrap();
        }
        std::fs::create_dir(dir.path().join("self")).unwrap();
        assert_eq!(marked_in(dir.path(), "s1"), vec![100]);
    }

    #[test]
    fn orphans_are_sessions_of_hosts_that_are_gone() {
        // Pids above any pid_max, so the kill that follows reaches no real process.
        let dir = tempfile::tempdir().unwrap();
        for (pid, env) in [
            ("1073741800", "PUNKTFUNK_SESSION=1073741899-1\0"),
            ("1073741801", "PUNKTFUNK_SESSION=1073741800-2\0"),
            ("1073741802", "HOME=/\0"),
        ] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("environ"), env).unwrap();
        }
        assert_eq!(
            reap_orphans_in(dir.path()),
            1,
            "only the one whose host is gone"
        );
    }

    #[test]
    fn ends_a_group_and_its_escaped_children() {
        use std::os::unix::process::CommandExt;
        let id = format!("unit-{}", std::process::id());
        let mut cmd = std::process::Command::new("sh");
        // A child that leaves the group (setsid) still carries the marker.
        cmd.args(["-c", "setsid sleep 60 & sleep 60"])
            .env(SESSION_ENV, &id);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut children = vec![cmd.spawn().unwrap()];
        let deadline = Instant::now() + Duration::from_secs(5);
        while marked(&id).len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(marked(&id).len() >= 2, "{:?}", marked(&id));
        end_session(&id, &mut children);
        let left: Vec<_> = marked(&id).into_iter().filter(|p| !is_zombie(*p)).collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
