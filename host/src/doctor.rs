//! `punktfunk-host doctor`: what this box can do for real game sessions, each row OK or
//! missing with what to do about it. The console's Dashboard shows the same rows
//! (`GET /api/v1/status`, `checks`).
//!
//! A real session needs a compositor that runs here (gamescope with a headless backend
//! and a GPU, or sway) and a session user the host can act as; without them launches
//! stream the test pattern, and `doctor` exits non-zero.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::display::{self, Backend, SessionUser, gamescope, sway};

/// One row of the table.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// What is checked ("sway", "session user", ...).
    pub name: String,
    /// Whether it is there and works.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do when it is missing.
    pub fix: Option<String>,
    /// Whether a real session needs this row to be OK.
    pub required: bool,
}

fn row(name: &str, ok: bool, detail: String, fix: Option<&str>, required: bool) -> Check {
    Check {
        name: name.to_owned(),
        ok,
        detail,
        fix: if ok { None } else { fix.map(str::to_owned) },
        required,
    }
}

fn version_of(program: &Path) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The display rows: backend choice, gamescope, sway, Xwayland, session user, PipeWire.
/// Cheap (no encoder probing), for the console too.
pub fn session_checks(config: &Config) -> Vec<Check> {
    let mut rows = Vec::new();
    let (backend, why) = display::resolve(&config.display);
    rows.push(row(
        "display backend",
        backend != Backend::None,
        format!(
            "{} (configured {}): {why}",
            backend.name(),
            config.display.backend.name()
        ),
        Some(
            "install sway (apt install sway xwayland), or gamescope 3.12+ on a machine with a GPU",
        ),
        true,
    ));
    let g = gamescope::probe(config.display.compositor_path.as_deref());
    let gpu = !crate::sysinfo::gpus().is_empty();
    rows.push(match &g {
        Some(info) => row(
            "gamescope",
            info.headless.is_some() && gpu,
            format!(
                "{} version {}, headless backend: {}, GPU: {}",
                info.path.display(),
                info.version,
                match info.headless {
                    Some(gamescope::HeadlessFlag::Backend) => "--backend headless",
                    Some(gamescope::HeadlessFlag::Legacy) => "--headless",
                    None => "no",
                },
                if gpu { "yes" } else { "no" }
            ),
            Some("gamescope needs version 3.12 or newer (headless backend) and a GPU"),
            false,
        ),
        None => row(
            "gamescope",
            false,
            "not installed".into(),
            Some("install gamescope 3.12+ (the appliance ships it)"),
            false,
        ),
    });
    let sway_path = sway::installed(config.display.compositor_path.as_deref());
    rows.push(row(
        "sway",
        sway_path.is_some(),
        sway_path.as_deref().map_or_else(
            || "not installed".to_owned(),
            |p| format!("{} ({})", p.display(), version_of(p)),
        ),
        Some("apt install sway xwayland"),
        false,
    ));
    let x11 = std::fs::metadata("/tmp/.X11-unix");
    let x11_ok = x11
        .as_ref()
        .is_ok_and(|m| m.uid() == 0 && m.mode() & 0o1777 == 0o1777);
    let xwayland = sway::find_on_path("Xwayland");
    rows.push(row(
        "Xwayland",
        xwayland.is_some() && x11_ok,
        format!(
            "{}; /tmp/.X11-unix {}",
            xwayland.map_or("not installed".into(), |p| p.display().to_string()),
            match &x11 {
                Ok(m) => format!("owner uid {} mode {:o}", m.uid(), m.mode() & 0o7777),
                Err(_) => "missing".into(),
            }
        ),
        Some("apt install xwayland; as root: scripts/session-user (makes /tmp/.X11-unix root-owned 1777)"),
        false,
    ));
    let user = &config.session.user;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    rows.push(match SessionUser::inspect(user) {
        Some((uid, runtime, exists)) => row(
            "session user",
            uid != 0 && (euid == 0 || euid == uid),
            format!(
                "{user} (uid {uid}), runtime dir {}{}; host runs as uid {euid}",
                runtime.display(),
                if exists {
                    ""
                } else {
                    " (created at the first launch)"
                }
            ),
            Some("run the host as root or as the session user, or set [session] user"),
            true,
        ),
        None => row(
            "session user",
            false,
            format!("{user} does not exist"),
            Some("as root: scripts/session-user (or useradd --system --create-home punktfunk)"),
            true,
        ),
    });
    let pipewire = sway::find_on_path("pipewire");
    let socket = SessionUser::inspect(user)
        .map(|(_, rt, _)| rt.join("pipewire-0"))
        .filter(|s| UnixStream::connect(s).is_ok());
    rows.push(row(
        "PipeWire",
        pipewire.is_some(),
        match (&pipewire, &socket) {
            (None, _) => "not installed".into(),
            (Some(_), Some(s)) => format!("running for the session user ({})", s.display()),
            (Some(p), None) => format!(
                "{} installed; none runs for the session user, sessions start a private one",
                p.display()
            ),
        },
        Some("apt install pipewire wireplumber (gamescope's video and the session's audio)"),
        backend == Backend::Gamescope,
    ));
    rows
}

/// Every row: the session rows, GPUs, each encoder, uinput and the ports.
pub fn checks(config: &Config) -> Vec<Check> {
    let mut rows = session_checks(config);
    let gpus = crate::sysinfo::gpus();
    rows.push(row(
        "GPU",
        !gpus.is_empty(),
        if gpus.is_empty() {
            "none found in /sys/class/drm".into()
        } else {
            gpus.iter()
                .map(|g| {
                    format!(
                        "{} ({})",
                        g.name,
                        g.driver.as_deref().unwrap_or("no driver")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
        Some(
            "software encoding and sway work without one; gamescope and hardware encoders need one",
        ),
        false,
    ));
    for (codec, name, outcome) in crate::encode::probe::probe_all() {
        rows.push(row(
            &format!("encoder {name}"),
            outcome.is_ok(),
            format!(
                "{codec:?}: {}",
                match &outcome {
                    Ok(()) => "opens".to_owned(),
                    Err(e) => format!("does not open ({e})"),
                }
            ),
            None,
            false,
        ));
    }
    let ten: Vec<_> = crate::encode::probe::probe_all_ten_bit()
        .into_iter()
        .filter(|(_, _, outcome)| outcome.is_ok())
        .map(|(codec, name, _)| format!("{codec:?} by {name}"))
        .collect();
    rows.push(row(
        "10-bit (HDR)",
        !ten.is_empty(),
        if ten.is_empty() {
            "no encoder encodes 10-bit: clients get 8-bit streams and no HDR offer".into()
        } else {
            format!(
                "{}: offered to clients as 10-bit (IsHdrSupported); the desktop is SDR, so streams are 10-bit SDR",
                ten.join(", ")
            )
        },
        Some("x265 encodes HEVC Main10 on the CPU; AV1 10-bit needs a hardware encoder (SVT-AV1 1.4's is not offered)"),
        false,
    ));
    let cuda = crate::encode::cuda::driver();
    rows.push(row(
        "NVENC DMA-BUF import",
        cuda.is_ok(),
        match &cuda {
            Ok(()) => "the CUDA driver loads: NVENC takes captured DMA-BUFs without a copy".into(),
            Err(e) => format!("{e:#}: NVENC (where present) gets frames the CPU read"),
        },
        Some("only NVIDIA GPUs need it; VAAPI and software encoding do not"),
        false,
    ));
    let uinput = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/uinput");
    rows.push(row(
        "uinput",
        uinput.is_ok(),
        match &uinput {
            Ok(_) => "/dev/uinput opens: input is injected".into(),
            Err(e) => format!("/dev/uinput: {e}; input is recorded instead"),
        },
        Some("modprobe uinput and grant the input group /dev/uinput (the appliance's udev rule)"),
        false,
    ));
    let p = config.ports;
    let mut busy = Vec::new();
    for port in [p.http, p.https, p.web, p.rtsp] {
        if std::net::TcpListener::bind((config.bind, port)).is_err() {
            busy.push(format!("{port}/tcp"));
        }
    }
    for port in [p.video, p.control, p.audio] {
        if std::net::UdpSocket::bind((config.bind, port)).is_err() {
            busy.push(format!("{port}/udp"));
        }
    }
    rows.push(row(
        "ports",
        busy.is_empty(),
        if busy.is_empty() {
            format!("{} to {} free on {}", p.https, p.rtsp, config.bind)
        } else {
            format!("in use: {} (is the host already running?)", busy.join(", "))
        },
        Some("stop the other streaming host, or choose another --port-base"),
        false,
    ));
    rows
}

/// Whether a real session (a compositor with the app in it) can run.
pub fn real_session_possible(rows: &[Check]) -> bool {
    rows.iter().filter(|r| r.required).all(|r| r.ok)
}

/// The rows as a table for a terminal.
pub fn table(rows: &[Check]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in rows {
        let mark = if r.ok {
            "OK"
        } else if r.required {
            "MISSING"
        } else {
            "missing"
        };
        out.push_str(&format!("{:<width$}  {mark:<7}  {}\n", r.name, r.detail));
        if let Some(fix) = &r.fix {
            out.push_str(&format!("{:<width$}  {:<7}  -> {fix}\n", "", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_rows_decide() {
        let rows = vec![
            row("a", true, "x".into(), None, true),
            row("b", false, "y".into(), Some("do z"), false),
        ];
        assert!(real_session_possible(&rows));
        let t = table(&rows);
        assert!(t.contains("a  OK") && t.contains("-> do z"), "{t}");
        let rows = vec![row("a", false, "x".into(), Some("fix"), true)];
        assert!(!real_session_possible(&rows));
        assert!(table(&rows).contains("MISSING"));
    }
}
