//! The shared ports' router with real loopback sockets: each session's pings reach
//! it alone, and a stranger's reach nobody.

use std::net::UdpSocket;
use std::time::Instant;

use punktfunk_core::gamestream::session::{Channel, SessionParams};

use super::*;

fn shared(payload: &[u8; 16]) -> Arc<Shared> {
    Arc::new(Shared::new(
        Instant::now(),
        SessionParams {
            ping_payload: *payload,
            client_ip: "127.0.0.1".parse().unwrap(),
            timeout: Duration::from_secs(10),
        },
    ))
}

fn ping(payload: &[u8; 16]) -> Vec<u8> {
    let mut d = payload.to_vec();
    d.extend_from_slice(&1u32.to_be_bytes());
    d
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An ENet CONNECT as ENet 1.3 lays it out, with `data` and a sent time.
fn enet_connect(data: u32) -> Vec<u8> {
    let mut d = vec![0x8f, 0xff, 0x12, 0x34]; // peer id 0xFFF | sent-time flag, time
    d.extend_from_slice(&[0x82, 0xff, 0, 1]); // CONNECT (acknowledge flag), channel, seq
    d.extend_from_slice(&[0; 40]); // peer id, session ids, mtu ... connect id
    d.extend_from_slice(&data.to_be_bytes());
    d
}

#[test]
fn connect_data_is_read_from_an_enet_connect_only() {
    assert_eq!(
        enet_connect_data(&enet_connect(0xdead_beef)),
        Some(0xdead_beef)
    );
    // Without the sent time the command starts two bytes earlier.
    let mut short = enet_connect(7);
    short.drain(2..4);
    short[0] = 0x0f;
    assert_eq!(enet_connect_data(&short), Some(7));
    // Another command, a truncated one, a compressed one: nothing.
    let mut other = enet_connect(7);
    other[4] = 0x86;
    assert_eq!(enet_connect_data(&other), None);
    assert_eq!(enet_connect_data(&enet_connect(7)[..40]), None);
    let mut compressed = enet_connect(7);
    compressed[0] |= 0x40;
    assert_eq!(enet_connect_data(&compressed), None);
    assert_eq!(enet_connect_data(&[]), None);
}

#[test]
fn each_sessions_pings_reach_it_alone_and_a_strangers_reach_nobody() {
    let sockets = MediaSockets::bind_ephemeral().unwrap();
    let ports = sockets.ports().unwrap();
    let router = Router::start(&sockets).unwrap();
    let (a, b) = (shared(b"AAAAAAAAAAAAAAAA"), shared(b"BBBBBBBBBBBBBBBB"));
    let ip = "127.0.0.1".parse().unwrap();
    let (_ra, _ia) = router.add(1, ip, 11, a.clone());
    let (rb, ib) = router.add(2, ip, 22, b.clone());
    let video = SocketAddr::from(([127, 0, 0, 1], ports.video));
    let audio = SocketAddr::from(([127, 0, 0, 1], ports.audio));
    let control = SocketAddr::from(([127, 0, 0, 1], ports.control));

    // A stranger pings first, with a guessed payload and with none.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(&ping(b"0000000000000000"), video).unwrap();
    stranger.send_to(b"PING", audio).unwrap();
    wait_until("the stranger's pings to be counted", || {
        let u = router.unmatched();
        u.video == 1 && u.audio == 1
    });
    assert_eq!(
        (a.peer(Channel::Video), b.peer(Channel::Video)),
        (None, None)
    );

    // Each client's pings teach its own session only.
    let (ca, cb) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    ca.send_to(&ping(b"AAAAAAAAAAAAAAAA"), video).unwrap();
    cb.send_to(&ping(b"BBBBBBBBBBBBBBBB"), video).unwrap();
    cb.send_to(&ping(b"BBBBBBBBBBBBBBBB"), audio).unwrap();
    // Every ping that teaches a peer, not only the last of each socket: the reader
    // threads of the two ports run apart, so b's video ping may land after its audio.
    wait_until("both peers", || {
        a.peer(Channel::Video).is_some()
            && b.peer(Channel::Video).is_some()
            && b.peer(Channel::Audio).is_some()
    });
    assert_eq!(a.peer(Channel::Video), Some(ca.local_addr().unwrap()));
    assert_eq!(b.peer(Channel::Video), Some(cb.local_addr().unwrap()));
    assert_eq!(a.peer(Channel::Audio), None);

    // Control: a CONNECT with b's connect data binds the sender to b; its later
    // datagrams follow. A stranger's CONNECT with a guess reaches nobody.
    stranger.send_to(&enet_connect(33), control).unwrap();
    cb.send_to(&enet_connect(22), control).unwrap();
    cb.send_to(b"later", control).unwrap();
    let mut inbox = RoutedSocket::new(sockets.control.try_clone().unwrap(), ib);
    let mut buf = [0u8; MTU_MAX];
    let mut got = Vec::new();
    wait_until("b's control datagrams", || {
        inbox.wait(Duration::from_millis(10));
        while let Some((from, PacketReceived::Complete(n))) = inbox.receive(&mut buf).unwrap() {
            got.push((from, buf[..n].to_vec()));
        }
        got.len() == 2
    });
    assert_eq!(got[0], (cb.local_addr().unwrap(), enet_connect(22)));
    assert_eq!(got[1].1, b"later");
    wait_until("the stranger's connect to be counted", || {
        router.unmatched().control == 1
    });

    // A removed session's pings (an old payload) reach nobody.
    router.remove(&rb);
    assert_eq!(router.len(), 1);
    cb.send_to(&ping(b"BBBBBBBBBBBBBBBB"), video).unwrap();
    wait_until("the old payload to be counted", || {
        router.unmatched().video == 2
    });
}
