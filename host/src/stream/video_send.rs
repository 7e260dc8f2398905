//! The video send thread: paces one frame's packets out while the video thread
//! captures and encodes the next.
//!
//! Why a thread of its own: pacing spreads a frame over `[stream] pacing_spread` of the
//! frame interval (a quarter by default, 4.2 ms at 60 fps). Paced from the video
//! thread, that window was time in which nothing was captured or encoded, and a
//! picture the compositor finished meanwhile waited it out before its capture began:
//! latency the user sees although the frame header (which starts at capture) does not.
//! Here the video thread hands the packets over and goes straight back to the capture.
//!
//! Two packet buffers travel between the threads (one being filled, one being sent), so
//! steady state allocates nothing; when the link is slower than the encoder, the video
//! thread waits for a buffer to come back rather than queueing frames without bound.
//! The thread paces on SCHED_FIFO where the process may ([`crate::realtime`]): it
//! sleeps between bursts and does nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;
use punktfunk_core::pacing::Pacer;

use super::session::Shared;
use super::stats::FrameTiming;
use crate::handoff::{Handoff, Recycler};
use crate::net::pace::release_paced;
use crate::net::udp_batch::SendStats;
use crate::session::router::MediaSockets;

/// Buffers in rotation: one filled by the video thread while one is paced out.
const BUFFERS: usize = 2;

/// One frame's packets, handed to the send thread.
#[derive(Debug)]
pub struct Outgoing {
    /// The packets back to back (sealed where the stream is encrypted).
    pub wire: Vec<u8>,
    /// Bytes of each packet.
    pub len: usize,
    /// Where they go.
    pub peer: SocketAddr,
    /// When the frame was captured.
    pub captured_at: Instant,
    /// The stage timings so far (conversion, encoding, packetization); the send
    /// thread adds the sending.
    pub timing: FrameTiming,
    /// Packets, parity included.
    pub packets: usize,
    /// Whether the frame is an IDR.
    pub keyframe: bool,
    /// Its frame number.
    pub frame_index: u32,
    /// The parity percentage it was sent with.
    pub fec_percent: u8,
}

/// The video thread's end of the send thread.
pub type VideoSender = Handoff<Outgoing, ()>;

/// Starts the send thread for a stream on `sockets`' video socket, pacing with
/// `pacer`, recording each frame in `shared`'s stats.
pub fn start(sockets: Arc<MediaSockets>, shared: Arc<Shared>, pacer: Pacer) -> Result<VideoSender> {
    Handoff::start("pf-video-tx", BUFFERS, move |queued, recycler| {
        send_loop(&sockets, &shared, pacer, &queued, &recycler);
    })
}

fn send_loop(
    sockets: &MediaSockets,
    shared: &Shared,
    mut pacer: Pacer,
    queued: &mpsc::Receiver<Outgoing>,
    recycler: &Recycler,
) {
    crate::realtime::enter();
    let mut stats = SendStats::default();
    while let Ok(mut frame) = queued.recv() {
        let t_send = Instant::now();
        let first = send_paced(sockets, &mut pacer, &frame, &mut stats);
        frame.timing.send_us = t_send.elapsed().as_micros() as u64;
        frame.timing.first_packet_us =
            first.map_or(0, |f| (f - frame.captured_at).as_micros() as u64);
        frame.timing.bytes = frame.wire.len() as u64;
        {
            let mut s = shared.stats();
            s.record(frame.timing, frame.packets, frame.keyframe);
            if frame.keyframe {
                s.last_idr_frame = frame.frame_index;
            }
            // The controller's share (a tiny frame's block may carry more, to reach
            // the client's minimum parity packets).
            s.fec_percent = frame.fec_percent;
        }
        if !recycler.give_back(std::mem::take(&mut frame.wire)) {
            break;
        }
    }
}

/// Sends `frame` under the pacer; returns when the first packet left.
fn send_paced(
    sockets: &MediaSockets,
    pacer: &mut Pacer,
    frame: &Outgoing,
    stats: &mut SendStats,
) -> Option<Instant> {
    let len = frame.len.max(1);
    let total = frame.wire.len() / len;
    pacer.begin_frame(Instant::now(), total);
    let mut first = None;
    release_paced(pacer, total, |burst| {
        let bytes = &frame.wire[burst.start * len..burst.end * len];
        if let Err(e) = sockets.video.send_packets(frame.peer, bytes, len, stats) {
            // A full or unreachable path loses this burst; FEC or an IDR recovers.
            tracing::debug!("video send failed: {e}");
        }
        first.get_or_insert_with(Instant::now);
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {});
    first
}
