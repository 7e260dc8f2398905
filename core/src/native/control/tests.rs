use proptest::prelude::*;

use super::*;
use crate::gamestream::input::{ControllerState, MouseButton};

fn caps() -> impl Strategy<Value = Capabilities> {
    (
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(
            |(codecs, max_width, max_height, max_fps, max_bitrate_kbps)| Capabilities {
                codecs,
                max_width,
                max_height,
                max_fps,
                max_bitrate_kbps,
            },
        )
}

fn mode() -> impl Strategy<Value = Mode> {
    (
        prop_oneof![Just(Codec::H264), Just(Codec::H265), Just(Codec::Av1)],
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<u8>(),
    )
        .prop_map(
            |(codec, width, height, fps, bitrate_kbps, fec_percent)| Mode {
                codec,
                width,
                height,
                fps,
                bitrate_kbps,
                fec_percent,
            },
        )
}

fn finite() -> impl Strategy<Value = f32> {
    -1.0e6f32..1.0e6
}

fn input() -> impl Strategy<Value = InputEvent> {
    prop_oneof![
        (any::<u16>(), any::<bool>(), any::<u8>(), any::<u8>()).prop_map(
            |(code, down, modifiers, flags)| InputEvent::Key {
                code,
                down,
                modifiers,
                flags
            }
        ),
        (any::<i16>(), any::<i16>()).prop_map(|(dx, dy)| InputEvent::MouseMove { dx, dy }),
        (any::<i16>(), any::<i16>(), any::<i16>(), any::<i16>()).prop_map(
            |(x, y, width, height)| InputEvent::MousePosition {
                x,
                y,
                width,
                height
            }
        ),
        (
            prop_oneof![
                Just(MouseButton::Left),
                Just(MouseButton::Middle),
                Just(MouseButton::Right),
                Just(MouseButton::X1),
                Just(MouseButton::X2)
            ],
            any::<bool>()
        )
            .prop_map(|(button, down)| InputEvent::MouseButton { button, down }),
        any::<i16>().prop_map(|amount| InputEvent::Scroll { amount }),
        any::<i16>().prop_map(|amount| InputEvent::HScroll { amount }),
        (
            any::<[u8; 3]>(),
            any::<u16>(),
            any::<u32>(),
            any::<[i16; 4]>()
        )
            .prop_map(|(b, active_mask, buttons, s)| InputEvent::Controller(
                ControllerState {
                    number: b[0],
                    active_mask,
                    buttons,
                    left_trigger: b[1],
                    right_trigger: b[2],
                    left_x: s[0],
                    left_y: s[1],
                    right_x: s[2],
                    right_y: s[3],
                }
            )),
        (any::<u8>(), any::<u8>(), any::<u16>(), any::<u32>()).prop_map(|(n, k, c, s)| {
            InputEvent::ControllerArrival {
                number: n,
                kind: k,
                capabilities: c,
                supported_buttons: s,
            }
        }),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            finite(),
            finite(),
            finite()
        )
            .prop_map(|(event, rotation, pointer, x, y, pressure)| {
                InputEvent::Touch {
                    event,
                    rotation,
                    pointer,
                    x,
                    y,
                    pressure,
                }
            }),
        (any::<[u8; 4]>(), finite(), finite(), finite(), any::<u16>()).prop_map(
            |(b, x, y, pressure, rotation)| InputEvent::Pen {
                event: b[0],
                tool: b[1],
                buttons: b[2],
                x,
                y,
                pressure,
                rotation,
                tilt: b[3],
            }
        ),
        (any::<[u8; 2]>(), any::<u32>(), finite(), finite(), finite()).prop_map(
            |(b, pointer, x, y, pressure)| InputEvent::ControllerTouch {
                number: b[0],
                event: b[1],
                pointer,
                x,
                y,
                pressure,
            }
        ),
        (any::<[u8; 2]>(), finite(), finite(), finite()).prop_map(|(b, x, y, z)| {
            InputEvent::Motion {
                number: b[0],
                kind: b[1],
                x,
                y,
                z,
            }
        }),
        any::<[u8; 3]>().prop_map(|b| InputEvent::Battery {
            number: b[0],
            state: b[1],
            percent: b[2],
        }),
        "\\PC{0,40}".prop_map(InputEvent::Text),
        Just(InputEvent::HapticsEnabled),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        ("\\PC{0,30}", caps()).prop_map(|(name, caps)| Message::Hello { name, caps }),
        ("\\PC{0,30}", any::<bool>(), any::<bool>(), caps()).prop_map(
            |(name, paired, tofu, caps)| Message::HostHello {
                name,
                paired,
                tofu,
                caps
            }
        ),
        bytes.clone().prop_map(|spake| Message::PairStart { spake }),
        (bytes, any::<[u8; 32]>())
            .prop_map(|(spake, confirm)| Message::PairReply { spake, confirm }),
        any::<[u8; 32]>().prop_map(|confirm| Message::PairConfirm { confirm }),
        Just(Message::PairOk),
        prop_oneof![
            Just(PairFailure::WrongPin),
            Just(PairFailure::NotArmed),
            Just(PairFailure::LockedOut),
            Just(PairFailure::Other)
        ]
        .prop_map(|reason| Message::PairFailed { reason }),
        mode().prop_map(Message::ModeRequest),
        (mode(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(mode, data_port, max_frame_bytes, epoch)| Message::ModeAck {
                mode,
                data_port,
                max_frame_bytes,
                epoch
            }
        ),
        "\\PC{0,30}".prop_map(|reason| Message::ModeRefused { reason }),
        Just(Message::RequestIdr),
        any::<[u32; 6]>().prop_map(|v| Message::Loss(LossReport {
            interval_ms: v[0],
            packets_expected: v[1],
            packets_lost: v[2],
            frames_delivered: v[3],
            frames_lost: v[4],
            frames_recovered: v[5],
        })),
        (any::<u32>(), any::<u32>())
            .prop_map(|(p50_us, p99_us)| Message::Latency(LatencyReport { p50_us, p99_us })),
        input().prop_map(Message::Input),
        "\\PC{0,30}".prop_map(|reason| Message::Goodbye { reason }),
    ]
}

#[test]
fn framing_is_fixed() {
    let bytes = Message::RequestIdr.to_bytes().unwrap();
    assert_eq!(bytes, [CONTROL_VERSION, 0x30, 0, 0]);
    let bytes = Message::Latency(LatencyReport {
        p50_us: 1,
        p99_us: 0x0102_0304,
    })
    .to_bytes()
    .unwrap();
    assert_eq!(bytes, [1, 0x32, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4]);
}

#[test]
fn errors_say_what_is_wrong() {
    assert_eq!(
        Message::decode(&[2, 0x30, 0, 0]),
        Err(ControlError::Version(2))
    );
    assert_eq!(Message::decode(&[9]), Err(ControlError::Version(9)));
    assert_eq!(
        Message::decode(&[1, 0x99, 0, 0]),
        Err(ControlError::UnknownType(0x99))
    );
    assert_eq!(
        Message::decode(&[1, 0x30, 0xff, 0xff]),
        Err(ControlError::TooLong(0xffff))
    );
    assert_eq!(
        Message::decode(&[1, 0x30, 0, 1, 7]),
        Err(ControlError::Trailing(1))
    );
    // Incomplete: wait for more.
    assert_eq!(Message::decode(&[1, 0x32, 0, 8, 0]), Ok(None));
    // An oversized string is refused on encode, leaving the buffer untouched.
    let mut out = vec![9];
    let long = Message::Goodbye {
        reason: "x".repeat(MAX_STRING + 1),
    };
    assert!(long.encode(&mut out).is_err());
    assert_eq!(out, [9]);
}

proptest! {
    #[test]
    fn every_message_roundtrips_through_a_split_stream(
        msgs in proptest::collection::vec(message(), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = Vec::new();
        for m in &msgs {
            m.encode(&mut wire).unwrap();
        }
        let cut = cut.index(wire.len() + 1);
        let mut dec = MessageDecoder::new();
        let mut got = Vec::new();
        for part in [&wire[..cut], &wire[cut..]] {
            dec.push(part);
            while let Some(m) = dec.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut dec = MessageDecoder::new();
        dec.push(&bytes);
        // Drain until error or need-more; at most one frame's worth stays buffered.
        while let Ok(Some(_)) = dec.next_message() {}
        prop_assert!(dec.buffered() <= bytes.len());
    }

    #[test]
    fn arbitrary_payloads_of_every_type_never_panic(
        t in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut framed = vec![CONTROL_VERSION, t];
        framed.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        framed.extend_from_slice(&payload);
        if let Ok(Some((m, used))) = Message::decode(&framed) {
            // Whatever parses re-encodes to the same bytes.
            prop_assert_eq!(used, framed.len());
            prop_assert_eq!(m.to_bytes().unwrap(), framed);
        }
    }
}
