//! Packets laid out by hand from moonlight-common-c's `Input.h` structs, byte by byte.

use proptest::prelude::*;

use super::*;

/// `BE32 size | LE32 magic | body`.
fn packet(m: u32, body: &[u8]) -> Vec<u8> {
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&m.to_le_bytes());
    p.extend_from_slice(body);
    p
}

#[test]
fn keyboard_with_modifiers() {
    // NV_KEYBOARD_PACKET: flags, LE16 keyCode, modifiers, LE16 zero. 'A' with Shift.
    let p = packet(magic::KEY_DOWN, &[0x00, 0x41, 0x80, modifiers::SHIFT, 0, 0]);
    assert_eq!(p.len(), 14);
    assert_eq!(
        parse(&p).unwrap(),
        Some(InputEvent::Key {
            code: 0x8041,
            down: true,
            modifiers: modifiers::SHIFT,
            flags: 0
        })
    );
    let up = packet(magic::KEY_UP, &[0x01, 0x0D, 0x00, 0, 0, 0]);
    assert_eq!(
        parse(&up).unwrap(),
        Some(InputEvent::Key {
            code: 0x0D,
            down: false,
            modifiers: 0,
            flags: 1
        })
    );
}

#[test]
fn mouse_move_position_buttons_and_scroll() {
    // Relative: BE16 dx, BE16 dy.
    let rel = packet(magic::MOUSE_REL, &[0xFF, 0xF6, 0x00, 0x14]);
    assert_eq!(
        parse(&rel).unwrap(),
        Some(InputEvent::MouseMove { dx: -10, dy: 20 })
    );
    // Absolute: BE16 x, BE16 y, 2 unused, BE16 width-1, BE16 height-1.
    let abs = packet(
        magic::MOUSE_ABS,
        &[0x02, 0x80, 0x01, 0x68, 0, 0, 0x04, 0xFF, 0x02, 0xCF],
    );
    assert_eq!(
        parse(&abs).unwrap(),
        Some(InputEvent::MousePosition {
            x: 640,
            y: 360,
            width: 1279,
            height: 719
        })
    );
    let btn = packet(magic::MOUSE_BUTTON_DOWN, &[3]);
    assert_eq!(
        parse(&btn).unwrap(),
        Some(InputEvent::MouseButton {
            button: MouseButton::Right,
            down: true
        })
    );
    assert!(parse(&packet(magic::MOUSE_BUTTON_UP, &[9])).is_err());
    // Scroll: BE16 amount, BE16 amount again, 2 zero bytes. One notch down = -120.
    let scroll = packet(magic::SCROLL, &[0xFF, 0x88, 0xFF, 0x88, 0, 0]);
    assert_eq!(
        parse(&scroll).unwrap(),
        Some(InputEvent::Scroll { amount: -120 })
    );
    let hscroll = packet(magic::HSCROLL, &[0x00, 0x78]);
    assert_eq!(
        parse(&hscroll).unwrap(),
        Some(InputEvent::HScroll { amount: 120 })
    );
}

#[test]
fn controller_state_arrival_and_sensors() {
    // NV_MULTI_CONTROLLER_PACKET body: headerB 0x1A, controllerNumber, activeGamepadMask,
    // midB 0x14, LE16 buttonFlags, LT, RT, LSX, LSY, RSX, RSY, tailA 0x9C,
    // buttonFlags2, tailB 0x55.
    let mut body = Vec::new();
    for v in [0x001Au16, 1, 0b11, 0x0014, 0x1000 /* A */] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&[200, 0]);
    for v in [-32768i16, 32767, 0, -5] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0x009Cu16, 0x0001 /* paddle 1 */, 0x0055] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let p = packet(magic::MULTI_CONTROLLER, &body);
    assert_eq!(p.len(), 34);
    assert_eq!(
        parse(&p).unwrap(),
        Some(InputEvent::Controller(ControllerState {
            number: 1,
            active_mask: 0b11,
            buttons: 0x0001_1000,
            left_trigger: 200,
            right_trigger: 0,
            left_x: -32768,
            left_y: 32767,
            right_x: 0,
            right_y: -5
        }))
    );
    let arrival = packet(
        magic::CONTROLLER_ARRIVAL,
        &[2, 1, 0x02, 0x00, 0xFF, 0xF0, 0x00, 0x00],
    );
    assert_eq!(
        parse(&arrival).unwrap(),
        Some(InputEvent::ControllerArrival {
            number: 2,
            kind: 1,
            capabilities: 0x0002,
            supported_buttons: 0xF0FF
        })
    );
    let mut motion = vec![0, 2, 0, 0];
    for v in [1.5f32, -2.0, 9.81] {
        motion.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        parse(&packet(magic::CONTROLLER_MOTION, &motion)).unwrap(),
        Some(InputEvent::Motion {
            number: 0,
            kind: 2,
            x: 1.5,
            y: -2.0,
            z: 9.81
        })
    );
    assert_eq!(
        parse(&packet(magic::CONTROLLER_BATTERY, &[0, 2, 80, 0])).unwrap(),
        Some(InputEvent::Battery {
            number: 0,
            state: 2,
            percent: 80
        })
    );
    // Controller 16 does not exist.
    assert!(parse(&packet(magic::CONTROLLER_BATTERY, &[16, 2, 80, 0])).is_err());
}

#[test]
fn touch_pen_text_and_haptics() {
    let mut touch = vec![1, 0, 0xFF, 0xFF, 7, 0, 0, 0];
    for v in [0.25f32, 0.75, 1.0, 0.0, 0.0] {
        touch.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        parse(&packet(magic::TOUCH, &touch)).unwrap(),
        Some(InputEvent::Touch {
            event: 1,
            rotation: 0xFFFF,
            pointer: 7,
            x: 0.25,
            y: 0.75,
            pressure: 1.0
        })
    );
    let mut nan = touch.clone();
    nan[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(parse(&packet(magic::TOUCH, &nan)).is_err());
    let mut pen = vec![1, 1, 1, 0];
    for v in [0.5f32, 0.5, 0.3] {
        pen.extend_from_slice(&v.to_le_bytes());
    }
    pen.extend_from_slice(&[0x5A, 0x00, 45, 0]);
    pen.extend_from_slice(&[0; 8]);
    assert!(matches!(
        parse(&packet(magic::PEN, &pen)).unwrap(),
        Some(InputEvent::Pen {
            tool: 1,
            tilt: 45,
            rotation: 90,
            ..
        })
    ));
    assert_eq!(
        parse(&packet(magic::UTF8_TEXT, "é".as_bytes())).unwrap(),
        Some(InputEvent::Text("é".into()))
    );
    assert!(parse(&packet(magic::UTF8_TEXT, &[0xC3])).is_err());
    assert_eq!(
        parse(&packet(magic::HAPTICS, &[1, 0])).unwrap(),
        Some(InputEvent::HapticsEnabled)
    );
    assert_eq!(
        parse(&packet(0x1234_5678, &[1, 2, 3])).unwrap(),
        None,
        "unknown kinds are ignored"
    );
}

#[test]
fn size_field_must_match() {
    let mut p = packet(magic::SCROLL, &[0, 120, 0, 120, 0, 0]);
    p[3] += 1;
    assert!(matches!(parse(&p), Err(InputError::Size { .. })));
    assert!(
        parse(&packet(magic::KEY_DOWN, &[0, 1])).is_err(),
        "truncated body"
    );
    assert!(parse(&[]).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn any_known_magic_with_any_body_never_panics(
        m in prop::sample::select(vec![3u32, 4, 5, 7, 8, 9, 10, 12, 13, 0x17, 0x5500_0001, 0x5500_0002, 0x5500_0003, 0x5500_0004, 0x5500_0005, 0x5500_0006, 0x5500_0007]),
        body in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        let _ = parse(&packet(m, &body));
    }
}
