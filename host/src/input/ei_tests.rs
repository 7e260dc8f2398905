//! The EI sink against a stand-in for gamescope's EIS server, built with reis's server
//! half: gamescope cannot run on this machine (no GPU, and Debian 12's gamescope has
//! no EIS), so this checks the client's side of the protocol: the handshake, binding
//! the seat, emulating on resumed devices, and what each GameStream event becomes.

use std::sync::mpsc;
use std::thread;

use reis::eis;
use reis::handshake::EisHandshaker;
use reis::request::{DeviceCapability as Cap, EisRequest, EisRequestConverter};

use super::*;
use punktfunk_core::gamestream::input::MouseButton;

/// Serves one EI client at `path` until it has sent `want` input requests, then
/// reports them as text.
fn fake_gamescope(path: PathBuf, want: usize) -> mpsc::Receiver<Vec<String>> {
    let listener = eis::Listener::bind(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctx = loop {
            if let Some(c) = listener.accept().unwrap() {
                break c;
            }
            assert!(Instant::now() < deadline, "no client");
            thread::sleep(Duration::from_millis(5));
        };
        let mut handshaker = EisHandshaker::new(&ctx, 1);
        let mut conv: Option<EisRequestConverter> = None;
        let mut devices = Vec::new();
        let mut seats = Vec::new();
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            if !readable(&ctx, Duration::from_millis(50)) {
                continue;
            }
            if ctx.read().unwrap_or(0) == 0 {
                break;
            }
            while let Some(pending) = ctx.pending_request() {
                let PendingRequestResult::Request(request) = pending else {
                    continue;
                };
                match &mut conv {
                    None => {
                        if let Some(resp) = handshaker.handle_request(request).unwrap() {
                            let c = EisRequestConverter::new(&ctx, resp, 1);
                            // Kept: a seat whose handle drops is gone.
                            seats.push(c.handle().add_seat(
                                Some("default"),
                                Cap::Pointer
                                    | Cap::PointerAbsolute
                                    | Cap::Keyboard
                                    | Cap::Scroll
                                    | Cap::Button,
                            ));
                            conv = Some(c);
                        }
                    }
                    Some(c) => c.handle_request(request).unwrap(),
                }
            }
            if let Some(c) = &mut conv {
                while let Some(request) = c.next_request() {
                    match request {
                        EisRequest::Bind(b) => {
                            for caps in [
                                BitFlags::from(Cap::Keyboard),
                                Cap::Pointer | Cap::Button | Cap::Scroll,
                                BitFlags::from(Cap::PointerAbsolute),
                            ] {
                                let d = b.seat.add_device(
                                    None,
                                    eis::device::DeviceType::Virtual,
                                    caps,
                                    |_| {},
                                );
                                d.resumed();
                                devices.push(d);
                            }
                        }
                        EisRequest::KeyboardKey(k) => {
                            got.push(format!("key {} {:?}", k.key, k.state))
                        }
                        EisRequest::PointerMotion(m) => got.push(format!("rel {} {}", m.dx, m.dy)),
                        EisRequest::PointerMotionAbsolute(m) => {
                            got.push(format!("abs {} {}", m.dx_absolute, m.dy_absolute));
                        }
                        EisRequest::Button(b) => {
                            got.push(format!("button {} {:?}", b.button, b.state))
                        }
                        EisRequest::ScrollDiscrete(s) => {
                            got.push(format!("scroll {} {}", s.discrete_dx, s.discrete_dy));
                        }
                        _ => {}
                    }
                }
            }
            let _ = ctx.flush();
        }
        let _ = tx.send(got);
    });
    rx
}

#[test]
fn events_reach_a_gamescope_eis_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gamescope-0-ei");
    let server = fake_gamescope(path.clone(), 9);
    let mut sink = EiSink::open(&path, (1280, 720)).unwrap();
    for e in [
        // 'a' with Shift only in the flags: Shift is pressed around it.
        InputEvent::Key {
            code: 0x41,
            down: true,
            modifiers: modifiers::SHIFT,
            flags: 0,
        },
        InputEvent::Key {
            code: 0x41,
            down: false,
            modifiers: 0,
            flags: 0,
        },
        InputEvent::MouseMove { dx: 5, dy: -3 },
        InputEvent::MousePosition {
            x: 960,
            y: 540,
            width: 1920,
            height: 1080,
        },
        InputEvent::MouseButton {
            button: MouseButton::Right,
            down: true,
        },
        InputEvent::Scroll { amount: 120 },
        InputEvent::HScroll { amount: -240 },
    ] {
        sink.handle(&e).unwrap();
    }
    let got = server.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        got,
        [
            "key 42 Press",
            "key 30 Press",
            "key 42 Released",
            "key 30 Released",
            "rel 5 -3",
            "abs 640 360",
            "button 273 Press",
            "scroll 0 -120",
            "scroll -240 0",
        ]
        .map(String::from)
        .to_vec()
    );
}

#[test]
fn flags_press_the_modifier_keys_they_stand_for() {
    assert_eq!(flag_keys(0).count(), 0);
    assert_eq!(
        flag_keys(modifiers::SHIFT | modifiers::CTRL).collect::<Vec<_>>(),
        vec![42, 29]
    );
    assert_eq!(flag_keys(modifiers::META).collect::<Vec<_>>(), vec![125]);
}

#[test]
fn the_socket_is_read_from_the_apps_environment() {
    let run = Path::new("/run/user/990");
    let env = b"HOME=/x\0LIBEI_SOCKET=gamescope-0-ei\0WAYLAND_DISPLAY=gamescope-0\0";
    assert_eq!(
        socket_from_environ(env, run),
        Some(run.join("gamescope-0-ei"))
    );
    assert_eq!(
        socket_from_environ(b"LIBEI_SOCKET=/tmp/ei\0", run),
        Some(PathBuf::from("/tmp/ei"))
    );
    assert_eq!(socket_from_environ(b"LIBEI_SOCKET=\0A=b", run), None);
    assert_eq!(socket_from_environ(b"XLIBEI_SOCKET=a\0", run), None);
}

#[test]
fn a_missing_eis_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = EiSink::open(&dir.path().join("gamescope-0-ei"), (1280, 720)).unwrap_err();
    assert!(format!("{err:#}").contains("gamescope's EIS"), "{err:#}");
}
