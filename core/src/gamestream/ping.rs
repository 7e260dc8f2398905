//! The UDP pings through which the host learns where to send video and audio
//! (moonlight-common-c `VideoStream.c`/`AudioStream.c`, `SS_PING`; Sunshine
//! `stream.cpp` `recv_ping`): the 16 ASCII characters of `X-SS-Ping-Payload` and a
//! big-endian sequence number, every 500 ms, from the client's receive socket.

/// The payload an RTSP SETUP reply hands the client, and the pings it then sends.
pub type PingPayload = [u8; 16];

/// A received ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// A Sunshine-style ping carrying the session's payload.
    Session {
        /// The payload.
        payload: PingPayload,
        /// Sequence number (from 1).
        seq: u32,
    },
    /// The legacy 4-byte `PING` of clients without `X-SS-Ping-Payload` support.
    Legacy,
}

/// Parses a datagram received on the video or audio port.
pub fn parse(datagram: &[u8]) -> Option<Ping> {
    if datagram == b"PING" {
        return Some(Ping::Legacy);
    }
    if datagram.len() != 20 {
        return None;
    }
    let mut payload = [0u8; 16];
    payload.copy_from_slice(&datagram[..16]);
    let seq = u32::from_be_bytes(datagram[16..20].try_into().expect("4 bytes"));
    Some(Ping::Session { payload, seq })
}

impl Ping {
    /// Whether this ping belongs to the session with `payload`.
    pub fn matches(&self, payload: &PingPayload) -> bool {
        match self {
            Ping::Session { payload: p, .. } => p == payload,
            // A legacy client has no payload; accepted only when the session expects
            // none (all zero).
            Ping::Legacy => payload.iter().all(|&b| b == 0),
        }
    }
}

/// A fresh ping payload: 16 hex characters from 8 random bytes, as Sunshine makes it.
pub fn payload_from(random: [u8; 8]) -> PingPayload {
    let hex = super::nvhttp::hex::encode_upper(&random);
    let mut p = [0u8; 16];
    p.copy_from_slice(hex.as_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_pings_match_their_payload() {
        let payload = payload_from([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&payload, b"0102030405060708");
        let mut d = payload.to_vec();
        d.extend_from_slice(&7u32.to_be_bytes());
        let ping = parse(&d).unwrap();
        assert_eq!(ping, Ping::Session { payload, seq: 7 });
        assert!(ping.matches(&payload));
        assert!(!ping.matches(b"FFFFFFFFFFFFFFFF"));
        assert_eq!(parse(b"PING"), Some(Ping::Legacy));
        assert!(!Ping::Legacy.matches(&payload));
        assert_eq!(parse(&d[..19]), None);
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(d in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse(&d);
        }
    }
}
