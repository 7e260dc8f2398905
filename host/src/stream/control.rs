//! The control stream: ENet on the control port, every message wrapped in AES-GCM
//! (type 0x0001). It carries the client's IDR requests, reference-frame
//! invalidations, FEC statistics, keep-alive pings and input, and the host's rumble
//! and termination. ENet is rusty_enet, a port of ENet 1.3 whose wire format is the one
//! moonlight-common-c's ENet fork speaks.
//!
//! The control thread is the I/O driver of the stream's sans-IO session logic
//! ([`StreamSession`](punktfunk_core::gamestream::session::StreamSession)): it feeds it
//! control messages, rumble and the time, and acts on what it polls out: input to
//! inject, rumble to send, an IDR for the video thread, the end of the stream.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use punktfunk_core::gamestream::control::{self, ClientMessage, TERMINATION_GRACEFUL};
use punktfunk_core::gamestream::control_crypto::{ControlOpener, ControlSealer};
use punktfunk_core::gamestream::session::Event as SessionEvent;
use rusty_enet::{Event, Host, HostSettings, Packet, PeerID};

use super::session::{Shared, StreamContext};
use crate::input::{self, Feedback, InputSink};
use crate::session::router::{ControlInbox, RoutedSocket};

/// Channels the host accepts (moonlight-common-c opens 0x30).
const CHANNELS: usize = 0x30;
/// ENet peer slots. Only datagrams the router bound to this session reach ENet (the
/// launching client's address, by its connect data); a few slots leave room for its
/// reconnects while stale half-open peers time out.
const PEER_LIMIT: usize = 8;

/// A control stream, not yet running: its share of the shared control port.
#[derive(Debug)]
pub struct ControlStream {
    socket: RoutedSocket,
}

impl ControlStream {
    /// The control stream of `ctx`, receiving what the router queues in `inbox`.
    pub fn new(ctx: &StreamContext, inbox: ControlInbox) -> Result<Self> {
        let socket = ctx
            .sockets
            .control
            .try_clone()
            .context("cloning the control socket")?;
        Ok(Self {
            socket: RoutedSocket::new(socket, inbox),
        })
    }

    /// Serves the client until the stream stops, then says goodbye.
    pub fn run(self, ctx: &StreamContext, shared: &Shared) -> Result<()> {
        let mut host = Host::new(
            self.socket,
            HostSettings {
                peer_limit: PEER_LIMIT,
                channel_limit: CHANNELS,
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("starting ENet: {e:?}"))?;
        let opener = ControlOpener::from_client(&ctx.app.key)?;
        let mut sealer = ControlSealer::host(&ctx.app.key)?;
        let mut sink: Box<dyn InputSink> =
            input::open(&ctx.input, &ctx.input_target, ctx.input_recording.clone())?;
        let mut peer: Option<PeerID> = None;
        let mut out = Vec::new();
        let mut feedback = Vec::new();

        while !shared.stopping() {
            let mut busy = false;
            match host.service() {
                Ok(Some(event)) => {
                    busy = true;
                    match event {
                        Event::Connect { peer: p, data } => {
                            if data != ctx.params.connect_data {
                                tracing::warn!(
                                    data,
                                    "control connection with the wrong connect data refused"
                                );
                                p.disconnect_now(0);
                            } else {
                                tracing::info!(
                                    session = ctx.session_id,
                                    "control stream connected"
                                );
                                p.set_timeout(2, 10_000, 10_000);
                                peer = Some(p.id());
                                shared.session().handle_control_connected(Instant::now());
                            }
                        }
                        Event::Disconnect { peer: p, .. } => {
                            if Some(p.id()) == peer {
                                shared.session().handle_control_closed();
                            }
                        }
                        Event::Receive {
                            peer: p, packet, ..
                        } => {
                            if Some(p.id()) != peer {
                                shared.count_malformed();
                                continue;
                            }
                            handle_packet(packet.data(), &opener, shared);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("ENet: {e}"),
            }
            // Force feedback from the input devices goes in like any other rumble.
            sink.poll_feedback(&mut feedback);
            for Feedback::Rumble {
                controller,
                low,
                high,
            } in feedback.drain(..)
            {
                shared.session().handle_rumble(controller, low, high);
            }
            // Silence (no connect, no traffic) is the session logic's to judge.
            shared.session().handle_timeout(Instant::now());
            // One event per lock, released before acting on it: acting may lock the
            // session again (ending it), and input is never injected under the lock.
            loop {
                let Some(event) = shared.session().poll_event() else {
                    break;
                };
                match event {
                    SessionEvent::Input(event) => {
                        if let Err(e) = sink.handle(&event) {
                            tracing::warn!("input injection failed: {e:#}");
                        }
                    }
                    SessionEvent::Rumble {
                        controller,
                        low,
                        high,
                    } => {
                        if let Some(id) = peer {
                            let (t, payload) = control::rumble(controller, low, high);
                            sealer.seal(t, &payload, &mut out)?;
                            let _ = host.peer_mut(id).send(0, &Packet::reliable(out.as_slice()));
                        }
                    }
                    SessionEvent::IdrWanted => shared.idr.store(true, Ordering::Release),
                    SessionEvent::PeerLearned { channel, addr } => {
                        tracing::info!(%addr, ?channel, "client address learned from its ping");
                    }
                    SessionEvent::Ended(why) => shared.end(&why.to_string()),
                }
            }
            if !busy {
                host.flush();
                host.socket_mut().wait(Duration::from_millis(5));
            }
        }
        // Tell the client the stream is over, then let ENet deliver it.
        if let Some(id) = peer
            && host.get_peer(id).is_some_and(|p| p.connected())
        {
            let (t, payload) = control::termination(TERMINATION_GRACEFUL);
            sealer.seal(t, &payload, &mut out)?;
            let _ = host.peer_mut(id).send(0, &Packet::reliable(out.as_slice()));
            host.peer_mut(id).disconnect_later(0);
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline {
                match host.service() {
                    Ok(Some(Event::Disconnect { .. })) => break,
                    Ok(Some(_)) => {}
                    _ => host.socket_mut().wait(Duration::from_millis(5)),
                }
            }
        }
        Ok(())
    }
}

/// Decrypts and dispatches one control packet: the session logic hears it (its
/// input comes out as events), the loss reports are counted here. Malformed or
/// forged packets are counted in the log and dropped.
fn handle_packet(data: &[u8], opener: &ControlOpener, shared: &Shared) {
    let msg = match opener.open(data) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!("dropped a control packet: {e}");
            shared.count_malformed();
            return;
        }
    };
    let parsed = control::parse(msg.msg_type, &msg.payload);
    if let Ok(m) = &parsed {
        // Keep-alive, termination and input are the session logic's. IDR requests
        // are answered below (an invalidation an IDR already covers gets none), so
        // the session only hears that the client is alive.
        let idr = matches!(
            m,
            ClientMessage::RequestIdr | ClientMessage::InvalidateRefs { .. }
        );
        shared
            .session()
            .handle_control(Instant::now(), if idr { &ClientMessage::Ping } else { m });
    }
    match parsed {
        Ok(ClientMessage::RequestIdr) => {
            shared.stats().loss_requests += 1;
            shared.idr.store(true, Ordering::Release);
        }
        Ok(ClientMessage::InvalidateRefs { last, .. }) => {
            // The encoders here cannot drop references, so an invalidation is answered
            // with an IDR, unless one already went out after the lost frames: that
            // IDR repairs them, and another would only feed an IDR storm.
            let mut stats = shared.stats();
            stats.loss_requests += 1;
            if covered_by_idr(last, stats.last_idr_frame) {
                stats.covered_invalidations += 1;
            } else {
                shared.idr.store(true, Ordering::Release);
            }
        }
        Ok(ClientMessage::FecStatus(s)) => {
            let mut stats = shared.stats();
            stats.fec_recoveries += 1;
            let missing = s
                .missing
                .min(s.data_packets.saturating_add(s.parity_packets));
            stats.reported_missing += u64::from(missing);
            if s.data_packets > 0 {
                let share = (u32::from(missing) * 100).div_ceil(u32::from(s.data_packets));
                stats.repair_burst_percent = stats.repair_burst_percent.max(share.min(255) as u8);
            }
            stats.expected_packets += u64::from(s.data_packets) + u64::from(s.parity_packets);
            // Widened before adding: hostile u16 values must not overflow.
            stats.lost_packets += (u64::from(s.data_packets) + u64::from(s.parity_packets))
                .saturating_sub(u64::from(s.received_data) + u64::from(s.received_parity));
        }
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(
                msg_type = msg.msg_type,
                "malformed control message dropped: {e}"
            );
            shared.count_malformed();
        }
    }
}

/// Whether the IDR sent as frame `last_idr` already repairs the loss of frames
/// up to `last` (frame numbers are 32-bit on the wire and wrap; the client's range
/// is 64-bit). No IDR sent yet (0) covers nothing.
fn covered_by_idr(last: u64, last_idr: u32) -> bool {
    last_idr != 0 && (last_idr.wrapping_sub(last as u32) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use punktfunk_core::gamestream::control::types;
    use punktfunk_core::gamestream::input::{InputEvent, magic};

    #[test]
    fn invalidations_before_the_last_idr_are_covered() {
        assert!(covered_by_idr(20, 25));
        assert!(!covered_by_idr(25, 25), "the IDR itself was lost");
        assert!(!covered_by_idr(40, 25));
        assert!(!covered_by_idr(0, 0), "no IDR sent yet");
        // Across the 32-bit wrap.
        assert!(covered_by_idr(u64::from(u32::MAX), 2));
        // Hostile 64-bit ranges never panic.
        let _ = covered_by_idr(u64::MAX, 1);
    }

    #[test]
    fn a_hostile_fec_status_is_counted_without_overflow() {
        let key = [7u8; 16];
        let opener = ControlOpener::from_client(&key).unwrap();
        let mut sealer = ControlSealer::client(&key).unwrap();
        // Frame 42, 6 skipped bytes, then data and parity packets at u16::MAX and
        // nothing received: their sum overflowed u16 (a panic in debug builds).
        let mut fec = vec![0, 0, 0, 42, 0, 0, 0, 0, 0xff, 0xff];
        fec.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let mut packet = Vec::new();
        sealer.seal(types::FEC_STATUS, &fec, &mut packet).unwrap();
        let shared = Shared::new(Instant::now(), crate::stream::session::tests::test_params());
        handle_packet(&packet, &opener, &shared);
        let stats = shared.stats();
        assert_eq!(stats.expected_packets, 2 * 65_535);
        assert_eq!(stats.lost_packets, 2 * 65_535);
    }

    #[test]
    fn input_comes_out_of_the_session_logic_in_order() {
        let key = [9u8; 16];
        let opener = ControlOpener::from_client(&key).unwrap();
        let mut sealer = ControlSealer::client(&key).unwrap();
        let shared = Shared::new(Instant::now(), crate::stream::session::tests::test_params());
        let _ = shared.session().poll_event(); // the first IDR
        for (m, code) in [(magic::KEY_DOWN, 0x41u8), (magic::KEY_UP, 0x41)] {
            // `BE32 size | LE32 magic | NV_KEYBOARD_PACKET`.
            let mut input = 10u32.to_be_bytes().to_vec();
            input.extend_from_slice(&m.to_le_bytes());
            input.extend_from_slice(&[0, code, 0, 0, 0, 0]);
            let mut packet = Vec::new();
            sealer.seal(types::INPUT, &input, &mut packet).unwrap();
            handle_packet(&packet, &opener, &shared);
        }
        let events: Vec<_> = std::iter::from_fn(|| shared.session().poll_event()).collect();
        let key = |down| {
            SessionEvent::Input(InputEvent::Key {
                code: 0x41,
                down,
                modifiers: 0,
                flags: 0,
            })
        };
        assert_eq!(events, [key(true), key(false)]);
        assert_eq!(shared.malformed.load(Ordering::Relaxed), 0);
    }
}
