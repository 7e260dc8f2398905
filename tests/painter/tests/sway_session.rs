//! A real headless sway session as the session user, with the painter inside, read
//! back through the host's wlr-screencopy capture: the barcodes the painter drew come
//! back in order, a mode change resizes the frames, and ending the session leaves no
//! process behind. Also the failures `/launch` must report within 5 s.
//!
//! Needs root (to act as the session user, created by scripts/session-user) and sway.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use punktfunk_host::capture::screencopy::Screencopy;
use punktfunk_host::capture::{CaptureSpec, Pixels, VideoCapture};
use punktfunk_host::display::{
    Backend, DisplayConfig, DisplayError, DisplayManager, Mode, SessionConfig, SessionState,
    process,
};
use punktfunk_host::source::test_pattern::read_barcode;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The painter, copied where the session user can run it (the build tree may sit in
/// root's home).
fn painter() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("punktfunk-painter-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("punktfunk-painter");
    std::fs::copy(env!("CARGO_BIN_EXE_punktfunk-painter"), &dst).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst
}

fn prepare() -> DisplayManager {
    let status = Command::new(repo().join("scripts/session-user"))
        .status()
        .expect("scripts/session-user runs");
    assert!(
        status.success(),
        "scripts/session-user failed: the session user is needed"
    );
    DisplayManager::new(
        &DisplayConfig {
            backend: Backend::Sway,
            ..DisplayConfig::default()
        },
        &SessionConfig::default(),
    )
}

fn mode(width: u32, height: u32) -> Mode {
    Mode {
        width,
        height,
        fps: 60,
    }
}

/// Reads `n` frames: (width, height, frame number, paint-to-capture µs).
fn frames(cap: &mut Screencopy, n: usize) -> Vec<(u32, u32, u64, i64)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n && Instant::now() < deadline {
        let Some(f) = cap.next_frame(Duration::from_millis(500)).unwrap() else {
            continue;
        };
        let Pixels::Cpu(cpu) = f.pixels else {
            panic!("screencopy gives CPU frames here")
        };
        if let Some((painted_us, number)) =
            read_barcode(cpu.planes[0].data, cpu.planes[0].stride, 4)
        {
            out.push((
                f.width,
                f.height,
                number,
                f.captured_unix_us as i64 - painted_us as i64,
            ));
        }
    }
    out
}

#[test]
fn sway_session_with_the_painter() {
    let mgr = prepare();
    let painter = painter();
    let t0 = Instant::now();
    let (spec, first) = mgr
        .launch(
            1,
            mode(1280, 720),
            Some(format!("{} --session-id test", painter.display())),
            0,
        )
        .expect("the session starts");
    eprintln!("session ready in {:?}", t0.elapsed());
    let CaptureSpec::Screencopy {
        wayland_socket,
        output,
    } = spec
    else {
        panic!("sway sessions are captured with screencopy: {spec:?}")
    };
    let mut cap = Screencopy::open(&wayland_socket, output.as_deref()).expect("screencopy opens");
    let got = frames(&mut cap, 120);
    first.mark();
    eprintln!("launch to first frame: {:?}", first.elapsed());
    assert!(got.len() >= 100, "only {} readable frames", got.len());
    assert!(got.iter().all(|f| (f.0, f.1) == (1280, 720)));
    let numbers: Vec<u64> = got.iter().map(|f| f.2).collect();
    // Never backwards; sway may hand out the same picture twice when it repaints
    // for its own reasons (a fullscreen transition), which only repeats a number.
    assert!(
        numbers.windows(2).all(|w| w[1] >= w[0]),
        "frame numbers increase: {numbers:?}"
    );
    let mut distinct = numbers.clone();
    distinct.dedup();
    let span = numbers.last().unwrap() - numbers[0] + 1;
    eprintln!(
        "captured {} of {} painted frames; paint-to-capture median {} µs",
        numbers.len(),
        span,
        {
            let mut l: Vec<i64> = got.iter().map(|f| f.3).collect();
            l.sort();
            l[l.len() / 2]
        }
    );
    assert!(
        distinct.len() as f64 >= span as f64 * 0.8,
        "captured {} of {span}",
        distinct.len()
    );
    // Status shows the session with both processes.
    let st = mgr.status().unwrap();
    assert_eq!(st.state, SessionState::Running);
    assert!(
        st.compositor_pid.is_some() && st.app_pid.is_some(),
        "{st:?}"
    );

    // A resume at another mode: the same session, resized.
    mgr.resume(1, mode(1920, 1080)).expect("mode change");
    let got = frames(&mut cap, 30);
    let big: Vec<_> = got.iter().filter(|f| (f.0, f.1) == (1920, 1080)).collect();
    assert!(
        big.len() >= 10,
        "frames after the mode change: {:?}",
        got.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>()
    );

    let id = st.id.clone();
    assert!(!process::marked(&id).is_empty());
    drop(cap);
    mgr.stop(1, "test over");
    let left: Vec<i32> = process::marked(&id);
    assert!(left.is_empty(), "processes of the session remain: {left:?}");
    assert_eq!(mgr.status().unwrap().state, SessionState::Ended);

    // The app exiting by itself ends the session with its exit code.
    mgr.launch(
        2,
        mode(640, 480),
        Some(format!(
            "{} --exit-after 1 --exit-code 7",
            painter.display()
        )),
        0,
    )
    .expect("the second session starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        if let Some((2, r)) = mgr.poll().pop() {
            break r;
        }
        assert!(Instant::now() < deadline, "the app never exited");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(reason.contains("exit code 7"), "{reason}");
    let st = mgr.status().unwrap();
    assert_eq!((st.state, st.exit_code), (SessionState::AppExited, Some(7)));
    assert!(process::marked(&st.id).is_empty());
    let _ = std::fs::remove_dir_all(painter.parent().unwrap());
}

#[test]
fn launch_failures_are_reported_quickly() {
    let mgr = prepare();
    let t0 = Instant::now();
    let err = mgr
        .launch(
            1,
            mode(1280, 720),
            Some("punktfunk-no-such-command --flag".into()),
            0,
        )
        .unwrap_err();
    assert!(matches!(err, DisplayError::AppFailed(_)), "{err}");
    assert!(err.to_string().contains("command not found"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let st = mgr.status().unwrap();
    assert_eq!(st.state, SessionState::Failed);
    assert!(
        process::marked(&st.id).is_empty(),
        "a failed launch leaves nothing behind"
    );

    let missing = DisplayManager::new(
        &DisplayConfig {
            backend: Backend::Sway,
            compositor_path: Some("/nonexistent/sway".into()),
            ..DisplayConfig::default()
        },
        &SessionConfig::default(),
    );
    let err = missing.launch(1, mode(1280, 720), None, 0).unwrap_err();
    assert!(matches!(err, DisplayError::MissingCompositor(_)), "{err}");

    // A compositor that fails: sway refuses a config it cannot parse... here, a
    // "compositor" that exits at once.
    let failing = DisplayManager::new(
        &DisplayConfig {
            backend: Backend::Sway,
            compositor_path: Some("/bin/false".into()),
            ..DisplayConfig::default()
        },
        &SessionConfig::default(),
    );
    let t0 = Instant::now();
    let err = failing.launch(1, mode(1280, 720), None, 0).unwrap_err();
    assert!(matches!(err, DisplayError::CompositorFailed(_)), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}
