//! The session logic in virtual time: no sockets, no clock.

use super::*;

const T: Duration = Duration::from_secs(10);
const PAYLOAD: &PingPayload = b"0102030405060708";

fn client() -> SocketAddr {
    "192.168.1.10:50000".parse().unwrap()
}

fn ping(payload: &PingPayload, seq: u32) -> Vec<u8> {
    let mut d = payload.to_vec();
    d.extend_from_slice(&seq.to_be_bytes());
    d
}

fn session(now: Instant) -> StreamSession {
    StreamSession::new(
        now,
        SessionParams {
            ping_payload: *PAYLOAD,
            client_ip: client().ip(),
            timeout: T,
        },
    )
}

fn events(s: &mut StreamSession) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Jumps to the session's next timeout and handles it (str0m's `progress`).
fn progress(s: &mut StreamSession) -> Option<Instant> {
    let at = s.poll_timeout()?;
    s.handle_timeout(at);
    Some(at)
}

#[test]
fn peers_are_learned_from_the_clients_own_pings_only() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert_eq!(
        events(&mut s),
        [Event::IdrWanted],
        "the stream starts with an IDR"
    );
    // A stranger with the right payload, and the client with a wrong one: nothing.
    let stranger: SocketAddr = "192.168.1.66:50000".parse().unwrap();
    assert!(!s.handle_ping(t0, stranger, Channel::Video, &ping(PAYLOAD, 1)));
    assert!(!s.handle_ping(t0, client(), Channel::Video, &ping(b"FFFFFFFFFFFFFFFF", 1)));
    assert!(!s.handle_ping(t0, client(), Channel::Video, b"PING"));
    assert_eq!(s.peer(Channel::Video), None);
    assert!(events(&mut s).is_empty());
    // The client's ping: the video peer is learned and wants an IDR.
    assert!(s.handle_ping(t0, client(), Channel::Video, &ping(PAYLOAD, 1)));
    assert_eq!(
        events(&mut s),
        [
            Event::PeerLearned {
                channel: Channel::Video,
                addr: client()
            },
            Event::IdrWanted
        ]
    );
    // Audio is learned separately and needs no IDR; a repeat ping changes nothing.
    let audio: SocketAddr = "192.168.1.10:50001".parse().unwrap();
    assert!(s.handle_ping(t0, audio, Channel::Audio, &ping(PAYLOAD, 1)));
    assert!(s.handle_ping(t0, client(), Channel::Video, &ping(PAYLOAD, 2)));
    assert_eq!(
        events(&mut s),
        [Event::PeerLearned {
            channel: Channel::Audio,
            addr: audio
        }]
    );
    assert_eq!(s.peer(Channel::Audio), Some(audio));
    // An IPv4 client seen through an IPv6 socket is the same client.
    let mapped: SocketAddr = "[::ffff:192.168.1.10]:50002".parse().unwrap();
    assert!(s.accepts(mapped, &ping(PAYLOAD, 3)));
}

#[test]
fn a_client_that_never_pings_times_out() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let _ = events(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + T + Duration::from_millis(1)));
    s.handle_timeout(t0 + T);
    assert!(s.ended().is_none(), "exactly the timeout is not yet silent");
    let at = progress(&mut s).unwrap();
    assert!(at > t0 + T);
    assert_eq!(events(&mut s), [Event::Ended(Ended::NoPing)]);
    assert!(Ended::NoPing.is_client_timeout());
    assert_eq!(s.poll_timeout(), None, "an ended session has no timer");
}

#[test]
fn pings_and_control_traffic_keep_the_stream_alive_until_they_stop() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_control_connected(t0);
    // Ten minutes of pings every 500 ms and control keep-alives every second.
    let mut now = t0;
    for n in 0..1200u32 {
        now += Duration::from_millis(500);
        assert!(s.handle_ping(now, client(), Channel::Video, &ping(PAYLOAD, n)));
        if n % 2 == 0 {
            s.handle_control(now, &ClientMessage::Ping);
        }
        s.handle_timeout(now);
    }
    assert!(s.ended().is_none());
    let _ = events(&mut s);
    // The pings stop, control goes on: the stream ends when the pings are overdue.
    let last_ping = now;
    while s.ended().is_none() {
        now += Duration::from_secs(1);
        s.handle_control(now, &ClientMessage::Ping);
        s.handle_timeout(now);
    }
    assert!(now > last_ping + T && now <= last_ping + T + Duration::from_secs(1));
    assert_eq!(events(&mut s), [Event::Ended(Ended::StoppedPinging)]);
}

#[test]
fn a_silent_or_absent_control_stream_ends_the_stream() {
    let t0 = Instant::now();
    let mut never = session(t0);
    let mut silent = session(t0);
    silent.handle_control_connected(t0 + Duration::from_secs(1));
    let mut now = t0;
    for n in 0..30 {
        now += Duration::from_millis(500);
        for s in [&mut never, &mut silent] {
            // Pings keep coming; an ended session no longer takes them.
            let _ = s.handle_ping(now, client(), Channel::Video, &ping(PAYLOAD, n));
            s.handle_timeout(now);
        }
    }
    assert_eq!(never.ended(), Some(&Ended::ControlNeverConnected));
    assert_eq!(silent.ended(), Some(&Ended::ControlSilent));
    assert!(silent.ended().unwrap().is_client_timeout());
}

#[test]
fn idr_requests_are_coalesced_until_served() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert_eq!(events(&mut s), [Event::IdrWanted]);
    s.handle_control(t0, &ClientMessage::RequestIdr);
    s.handle_control(t0, &ClientMessage::InvalidateRefs { first: 3, last: 9 });
    assert_eq!(events(&mut s), [Event::IdrWanted], "one IDR serves both");
    s.handle_control(t0, &ClientMessage::RequestIdr);
    assert_eq!(events(&mut s), [Event::IdrWanted]);
    s.handle_control(t0, &ClientMessage::LtrAck { frame: 1 });
    assert!(events(&mut s).is_empty());
}

#[test]
fn termination_wins_once_and_silences_the_session() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let _ = events(&mut s);
    s.handle_control(t0, &ClientMessage::Termination);
    s.end(Ended::Host("the client quit the app".into()));
    s.handle_control_closed();
    assert_eq!(events(&mut s), [Event::Ended(Ended::ClientEnded)]);
    assert!(!Ended::ClientEnded.is_client_timeout());
    assert_eq!(
        Ended::ClientEnded.to_string(),
        "the client ended the stream"
    );
    // An ended session takes no pings and asks for nothing more: no IDR, no input
    // injected, no rumble sent.
    assert!(!s.handle_ping(t0, client(), Channel::Video, &ping(PAYLOAD, 1)));
    s.handle_control(t0, &ClientMessage::RequestIdr);
    s.handle_control(t0, &ClientMessage::Input(Some(key(0x41, true))));
    assert!(!s.handle_rumble(0, 100, 100));
    s.handle_timeout(t0 + 10 * T);
    assert!(events(&mut s).is_empty());
}

fn key(code: u16, down: bool) -> crate::gamestream::input::InputEvent {
    crate::gamestream::input::InputEvent::Key {
        code,
        down,
        modifiers: 0,
        flags: 0,
    }
}

#[test]
fn input_goes_out_in_order_and_rumble_comes_in() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_control_connected(t0);
    let t1 = t0 + T / 2;
    assert!(s.handle_ping(t1, client(), Channel::Video, &ping(PAYLOAD, 1)));
    let _ = events(&mut s);
    // The client's input comes out as events, in the order it was sent, between the
    // other things its control messages ask for; it also counts as the client alive.
    s.handle_control(t1, &ClientMessage::Input(Some(key(0x41, true))));
    s.handle_control(t1, &ClientMessage::RequestIdr);
    s.handle_control(t1, &ClientMessage::Input(Some(key(0x41, false))));
    // An input message the parser skipped (an unknown kind) injects nothing.
    s.handle_control(t1, &ClientMessage::Input(None));
    assert_eq!(
        events(&mut s),
        [
            Event::Input(key(0x41, true)),
            Event::IdrWanted,
            Event::Input(key(0x41, false)),
        ]
    );
    // Rumble from the host's side goes out to be sent.
    assert!(s.handle_rumble(2, 0x8000, 0x4000));
    assert_eq!(
        events(&mut s),
        [Event::Rumble {
            controller: 2,
            low: 0x8000,
            high: 0x4000
        }]
    );
    // Input kept the control stream alive: no timeout a whole T after the connect.
    s.handle_timeout(t0 + T + Duration::from_millis(10));
    assert_eq!(s.ended(), None);
}
