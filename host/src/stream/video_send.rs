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
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use punktfunk_core::pacing::{Pacer, Release};

use super::session::Shared;
use super::stats::FrameTiming;
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
#[derive(Debug)]
pub struct VideoSender {
    frames: Option<mpsc::SyncSender<Outgoing>>,
    spare: mpsc::Receiver<Vec<u8>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl VideoSender {
    /// Starts the send thread for a stream on `sockets`' video socket, pacing with
    /// `pacer`, recording each frame in `shared`'s stats.
    pub fn start(sockets: Arc<MediaSockets>, shared: Arc<Shared>, pacer: Pacer) -> Result<Self> {
        let (frames, queued) = mpsc::sync_channel::<Outgoing>(1);
        let (give_back, spare) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            give_back
                .send(Vec::new())
                .expect("the channel holds BUFFERS");
        }
        let thread = thread::Builder::new()
            .name("pf-video-tx".into())
            .spawn(move || send_loop(&sockets, &shared, pacer, &queued, &give_back))
            .context("starting the video send thread")?;
        Ok(Self {
            frames: Some(frames),
            spare,
            thread: Some(thread),
        })
    }

    /// A packet buffer to fill: waits while both are in flight (the link is behind
    /// the encoder).
    pub fn buffer(&mut self) -> Result<Vec<u8>> {
        match self.spare.recv() {
            Ok(buffer) => Ok(buffer),
            Err(_) => Err(self.died()),
        }
    }

    /// Hands a frame to the send thread.
    pub fn send(&mut self, frame: Outgoing) -> Result<()> {
        let sent = self.frames.as_ref().is_some_and(|f| f.send(frame).is_ok());
        if sent { Ok(()) } else { Err(self.died()) }
    }

    /// The send thread is gone: re-raises its panic on this thread (so the stream's
    /// panic record names it), or says it stopped.
    fn died(&mut self) -> anyhow::Error {
        self.frames = None;
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
        anyhow!("the video send thread stopped")
    }
}

impl Drop for VideoSender {
    /// Lets the send thread finish the frame it has and end.
    fn drop(&mut self) {
        self.frames = None;
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
            && !thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

fn send_loop(
    sockets: &MediaSockets,
    shared: &Shared,
    mut pacer: Pacer,
    queued: &mpsc::Receiver<Outgoing>,
    give_back: &mpsc::SyncSender<Vec<u8>>,
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
        if give_back.send(std::mem::take(&mut frame.wire)).is_err() {
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
    pacer.begin_frame(Instant::now(), frame.wire.len() / len);
    let mut sent = 0;
    let mut first = None;
    loop {
        match pacer.poll(Instant::now()) {
            Release::Send(n) => {
                let bytes = &frame.wire[sent * len..(sent + n) * len];
                if let Err(e) = sockets.video.send_packets(frame.peer, bytes, len, stats) {
                    // A full or unreachable path loses this burst; FEC or an IDR recovers.
                    tracing::debug!("video send failed: {e}");
                }
                first.get_or_insert_with(Instant::now);
                pacer.sent(n);
                sent += n;
            }
            Release::WaitUntil(t) => {
                let now = Instant::now();
                if t > now {
                    thread::sleep(t - now);
                }
            }
            Release::Idle => return first,
        }
    }
}
