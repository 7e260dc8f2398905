//! Sound from a PipeWire node: the monitor of an Audio/Sink (the session's own sink,
//! `stream.capture.sink=true`), or an Audio/Source.
//!
//! The PipeWire loop runs on the stream's audio thread: [`PipeWireAudio::read`] runs
//! it until the packet is due, so no extra thread sits between the app and the
//! encoder. Its process callback appends what the graph delivers to a FIFO; `read`
//! takes one packet from it, after a short prefill that absorbs the graph's
//! delivery rhythm:
//! - the prefill is the largest delivery plus one packet (at least two packets), so
//!   a graph cycle ([`CAPTURE_QUANTUM`], or what the app asks for) never runs dry
//!   halfway;
//! - when the FIFO runs dry (nothing plays: a null sink that nobody feeds is
//!   suspended and delivers nothing; or the graph's rhythm wobbled on a busy CPU),
//!   the packet is silence, the prefill grows by one packet (up to
//!   [`MAX_EXTRA_PACKETS`]) and starts over: a wobbly machine settles at the latency
//!   it needs instead of crackling for ever;
//! - when it holds more than the prefill plus [`SLACK_PACKETS`], the oldest samples
//!   go, so latency cannot creep up over a long session.
//!
//! A node that goes away (the session's sink removed, the daemon gone) is logged
//! once and the capture sends silence from then on: the client keeps getting its
//! packets and the video goes on.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipewire as pw;
use pw::spa;
use pw::spa::pod::{Pod, Value};
use pw::stream::{StreamFlags, StreamState};

use super::AudioCapture;
use super::layout;
use crate::capture::NodeTarget;
use crate::pw_graph::{Connection, Graph, Node, Pick, Watcher, lock, pod_bytes};

/// How long [`PipeWireAudio::open`] waits for the node to appear.
pub const NODE_WAIT: Duration = Duration::from_secs(3);

/// The graph cycle the capture asks for: 1024 samples (21 ms). One packet per cycle
/// (240) would save ~15 ms, but PipeWire's timer-driven null sink loses a cycle's
/// samples whenever its daemon wakes late, and 200 wake-ups a second on a busy
/// 2-core machine lost 5 to 40% of the sound here (load average 10: 12 underruns in
/// 5 s, 40 to 45 kHz delivered), where 1024 lost 2 to 5% (2 to 6 underruns). An app
/// that asks for a shorter cycle still gets it, and the capture follows.
pub const CAPTURE_QUANTUM: &str = "1024/48000";

/// Packets the FIFO may hold beyond the prefill before the oldest are dropped.
pub const SLACK_PACKETS: usize = 6;

/// Packets the prefill may grow by after underruns (40 ms at 5 ms packets).
pub const MAX_EXTRA_PACKETS: usize = 8;

/// The node `target` names among `nodes`: an Audio/Sink or Audio/Source. `Err` says
/// what there is instead; `Ok(None)` means it may still appear.
pub fn select(nodes: &[Node], target: &NodeTarget) -> Result<Option<Node>, String> {
    let found: Vec<&Node> = nodes
        .iter()
        .filter(|n| match target {
            NodeTarget::Id(id) => n.id == *id,
            NodeTarget::Name(name) => n.name == *name,
        })
        .collect();
    let audio: Vec<&&Node> = found.iter().filter(|n| n.is_audio()).collect();
    match (audio.as_slice(), found.first()) {
        ([one], _) => Ok(Some((**one).clone())),
        ([], Some(other)) => Err(format!(
            "PipeWire node {} (id {}) is {}, not an Audio/Sink or Audio/Source",
            other.name, other.id, other.media_class
        )),
        ([], None) => Ok(None),
        (many, _) => Err(format!(
            "{} PipeWire audio nodes are named {target}; name one by id",
            many.len()
        )),
    }
}

/// Why the node wanted is not there, with what is.
fn missing(nodes: &[Node], target: &NodeTarget) -> String {
    let mut available: Vec<String> = nodes
        .iter()
        .filter(|n| n.is_audio())
        .map(|n| format!("{} (id {})", n.name, n.id))
        .collect();
    if available.is_empty() {
        available.push("none".into());
    }
    format!(
        "no PipeWire audio node {target}; audio nodes here: {}",
        available.join(", ")
    )
}

/// The FIFO between the graph and the packets, with its prefill rule.
#[derive(Debug, Default)]
pub struct Fifo {
    samples: VecDeque<f32>,
    /// Interleaved samples in one packet.
    packet: usize,
    /// The largest delivery seen, in interleaved samples.
    largest: usize,
    /// Waiting for the prefill before handing out sound.
    priming: bool,
    /// Packets added to the prefill after underruns.
    extra: usize,
    /// Packets that found it dry after sound had flowed (underruns).
    pub underruns: u64,
    /// Samples dropped because the FIFO ran too far ahead.
    pub dropped: u64,
    /// Samples received in all.
    pub received: u64,
}

impl Fifo {
    /// A FIFO for packets of `packet` interleaved samples.
    pub fn new(packet: usize) -> Self {
        Self {
            packet,
            priming: true,
            ..Self::default()
        }
    }

    fn prefill(&self) -> usize {
        (2 * self.packet).max(self.largest + self.packet) + self.extra * self.packet
    }

    /// The prefill, in interleaved samples (for logs).
    pub fn prefill_samples(&self) -> usize {
        self.prefill()
    }

    /// Appends one delivery.
    pub fn push(&mut self, samples: impl ExactSizeIterator<Item = f32>) {
        self.largest = self.largest.max(samples.len());
        self.received += samples.len() as u64;
        self.samples.extend(samples);
        let cap = self.prefill() + SLACK_PACKETS * self.packet;
        if self.samples.len() > cap {
            let excess = self.samples.len() - self.prefill();
            self.samples.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Fills `out` (one packet) with the oldest sound, or silence while priming or
    /// dry. Returns whether it was sound.
    pub fn pop(&mut self, out: &mut [f32]) -> bool {
        if self.priming && self.samples.len() >= self.prefill() {
            self.priming = false;
        }
        if !self.priming && self.samples.len() >= out.len() {
            let n = out.len();
            for (o, s) in out.iter_mut().zip(self.samples.drain(..n)) {
                *o = s;
            }
            return true;
        }
        if !self.priming {
            // Dry: whatever is left is too little for a packet; start over with a
            // deeper prefill.
            self.underruns += 1;
            self.priming = true;
            self.extra = (self.extra + 1).min(MAX_EXTRA_PACKETS);
        }
        out.fill(0.0);
        false
    }
}

/// What the callbacks tell the capture.
#[derive(Debug, Default)]
struct State {
    /// The nodes there are, and the one captured once chosen.
    graph: Graph,
    fifo: Fifo,
    channels: usize,
    ended: Option<String>,
    /// The capture is being dropped: the disconnect that follows is ours.
    closing: bool,
}

impl Watcher for State {
    fn graph(&mut self) -> &mut Graph {
        &mut self.graph
    }

    fn end(&mut self, reason: String) {
        if self.ended.is_none() && !self.closing {
            self.ended = Some(reason);
        }
    }

    fn stopped(&self) -> Option<String> {
        self.ended.clone()
    }
}

type Shared = Arc<Mutex<State>>;

/// A running capture of a PipeWire audio node. Fields drop in order: listeners
/// before what they listen to, the loop last.
pub struct PipeWireAudio {
    state: Shared,
    /// Said in the log once the node is gone.
    gone_reported: bool,
    /// Whether sound came at least once (for the log).
    heard: bool,
    opened: Instant,
    _stream_listener: pw::stream::StreamListener<()>,
    stream: pw::stream::StreamRc,
    connection: Connection,
}

impl std::fmt::Debug for PipeWireAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWireAudio")
            .field("state", &lock(&self.state))
            .finish_non_exhaustive()
    }
}

/// The one format the capture takes: 48 kHz float, the stream's channels at
/// Moonlight's positions. The stream's own converter mixes whatever the node has
/// into it.
fn format_param(channels: usize) -> Result<Vec<u8>, String> {
    let mut info = spa::param::audio::AudioInfoRaw::new();
    info.set_format(spa::param::audio::AudioFormat::F32LE);
    info.set_rate(48_000);
    info.set_channels(channels as u32);
    info.set_flags(spa::param::audio::AudioInfoRawFlags::empty());
    let mut position = [0u32; spa::sys::SPA_AUDIO_MAX_CHANNELS as usize];
    for (p, id) in position.iter_mut().zip(layout::positions(channels)) {
        *p = id;
    }
    info.set_position(position);
    pod_bytes(Value::Object(spa::pod::Object {
        type_: spa::utils::SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: info.into(),
    }))
}

impl PipeWireAudio {
    /// Connects to the PipeWire daemon (the one in `runtime_dir`, else the
    /// environment's), finds `node` (waiting up to [`NODE_WAIT`]) and links a capture
    /// stream of `channels` channels to it (its monitor, for a sink).
    pub fn open(
        node: &NodeTarget,
        runtime_dir: Option<&Path>,
        channels: usize,
        samples_per_packet: usize,
    ) -> Result<Self, String> {
        let state: Shared = Arc::new(Mutex::new(State {
            fifo: Fifo::new(samples_per_packet * channels),
            channels,
            ..State::default()
        }));
        let connection = Connection::open(runtime_dir, &state)?;
        let target = connection.wait_for(&state, NODE_WAIT, |nodes| match select(nodes, node) {
            Ok(Some(found)) => Pick::Found(found),
            Ok(None) => Pick::Missing(missing(nodes, node)),
            Err(why) => Pick::Fail(why),
        })?;

        let mut props = pw::properties::PropertiesBox::new();
        props.insert(*pw::keys::MEDIA_TYPE, "Audio");
        props.insert(*pw::keys::MEDIA_CATEGORY, "Capture");
        props.insert(*pw::keys::MEDIA_ROLE, "Game");
        props.insert(*pw::keys::NODE_NAME, "punktfunk-audio-capture");
        // The graph's cycle this capture asks for (the graph runs at the smallest any
        // of its nodes asks for).
        props.insert("node.latency", CAPTURE_QUANTUM);
        if target.is_audio_sink() {
            props.insert("stream.capture.sink", "true");
        }
        let target_key = target
            .serial
            .map_or_else(|| target.name.clone(), |s| s.to_string());
        props.insert("target.object", target_key.as_str());
        let stream =
            pw::stream::StreamRc::new(connection.core().clone(), "punktfunk-audio-capture", props)
                .map_err(|e| format!("creating a PipeWire stream: {e}"))?;
        let stream_listener = Self::listen(&stream, &state)?;
        let format = format_param(channels)?;
        let mut params: Vec<&Pod> = Pod::from_bytes(&format).into_iter().collect();
        stream
            .connect(
                spa::utils::Direction::Input,
                Some(target.id),
                StreamFlags::AUTOCONNECT | StreamFlags::MAP_BUFFERS | StreamFlags::DONT_RECONNECT,
                &mut params,
            )
            .map_err(|e| format!("linking to PipeWire node {}: {e}", target.id))?;
        tracing::info!(
            node = target.name,
            id = target.id,
            class = target.media_class,
            channels,
            "audio: capturing PipeWire node{}",
            if target.is_audio_sink() {
                " (its monitor)"
            } else {
                ""
            }
        );
        Ok(Self {
            state,
            gone_reported: false,
            heard: false,
            opened: Instant::now(),
            _stream_listener: stream_listener,
            stream,
            connection,
        })
    }

    fn listen(
        stream: &pw::stream::StreamRc,
        state: &Shared,
    ) -> Result<pw::stream::StreamListener<()>, String> {
        let on_state = state.clone();
        let on_process = state.clone();
        stream
            .add_local_listener::<()>()
            .state_changed(move |_, _, old, new| {
                tracing::debug!(?old, ?new, "PipeWire audio capture state");
                let mut st = lock(&on_state);
                match new {
                    StreamState::Error(message) => {
                        st.end(format!("the PipeWire audio stream failed: {message}"));
                    }
                    StreamState::Unconnected => {
                        st.end("the PipeWire audio stream was disconnected".into());
                    }
                    _ => {}
                }
            })
            .process(move |stream, _| {
                while let Some(mut buffer) = stream.dequeue_buffer() {
                    let mut st = lock(&on_process);
                    if st.ended.is_some() {
                        continue;
                    }
                    let Some(data) = buffer.datas_mut().first_mut() else {
                        continue;
                    };
                    let chunk = data.chunk();
                    let (offset, size) = (chunk.offset() as usize, chunk.size() as usize);
                    let channels = st.channels;
                    if let Some(bytes) = data.data() {
                        let end = (offset + size).min(bytes.len());
                        let bytes = &bytes[offset.min(end)..end];
                        // Whole frames only: a torn frame would swap channels.
                        let whole = bytes.len() / (4 * channels) * (4 * channels);
                        let samples = bytes[..whole]
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                        st.fifo.push(samples);
                    }
                }
            })
            .register()
            .map_err(|e| format!("listening to the PipeWire audio stream: {e}"))
    }
}

impl AudioCapture for PipeWireAudio {
    fn read(&mut self, out: &mut [f32], deadline: Instant) {
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let left = deadline - now;
            // The loop's timeout is whole milliseconds: under one left it would poll
            // without waiting, spinning a core for the rest of every packet.
            if left < Duration::from_millis(1) {
                std::thread::sleep(left);
                continue;
            }
            self.connection.iterate(left);
        }
        let mut st = lock(&self.state);
        if let Some(reason) = &st.ended {
            if !self.gone_reported {
                self.gone_reported = true;
                tracing::warn!("audio source gone: {reason}; sending silence, the stream goes on");
            }
            out.fill(0.0);
            return;
        }
        if st.fifo.pop(out) && !self.heard {
            self.heard = true;
            tracing::info!("audio: the PipeWire node delivers samples");
        }
    }

    fn describe(&self) -> String {
        let st = lock(&self.state);
        match &st.graph.target {
            Some(t) if t.is_audio_sink() => {
                format!("the monitor of PipeWire sink {} (id {})", t.name, t.id)
            }
            Some(t) => format!("PipeWire source {} (id {})", t.name, t.id),
            None => "a PipeWire audio node".into(),
        }
    }
}

impl Drop for PipeWireAudio {
    fn drop(&mut self) {
        let (underruns, dropped, prefill_ms, rate) = {
            let mut st = lock(&self.state);
            st.closing = true;
            let channels = st.channels.max(1);
            let frames = st.fifo.prefill_samples() / channels;
            let rate = st.fifo.received as f64
                / channels as f64
                / self.opened.elapsed().as_secs_f64().max(0.001);
            (
                st.fifo.underruns,
                st.fifo.dropped,
                frames as f64 / 48.0,
                rate,
            )
        };
        // The delivered rate says whether underruns were a slow graph (under 48000)
        // or a late reader.
        tracing::info!(
            underruns,
            dropped_samples = dropped,
            prefill_ms,
            delivered_hz = rate.round(),
            "audio capture closed"
        );
        let _ = self.stream.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, name: &str, class: &str) -> Node {
        Node {
            id,
            serial: Some(u64::from(id) + 1000),
            name: name.into(),
            media_class: class.into(),
            pid: None,
        }
    }

    #[test]
    fn selects_audio_nodes_only_and_never_guesses() {
        let nodes = [
            node(30, "punktfunk.session-1-1", "Audio/Sink"),
            node(31, "mic", "Audio/Source"),
            node(32, "gamescope", "Video/Source"),
            node(33, "twin", "Audio/Sink"),
            node(34, "twin", "Audio/Sink"),
        ];
        let pick = |t: NodeTarget| select(&nodes, &t);
        assert_eq!(
            pick(NodeTarget::Name("punktfunk.session-1-1".into()))
                .unwrap()
                .map(|n| n.id),
            Some(30)
        );
        assert_eq!(pick(NodeTarget::Id(31)).unwrap().map(|n| n.id), Some(31));
        assert!(
            pick(NodeTarget::Id(32))
                .unwrap_err()
                .contains("Video/Source")
        );
        assert!(
            pick(NodeTarget::Name("twin".into()))
                .unwrap_err()
                .contains("by id")
        );
        assert_eq!(pick(NodeTarget::Name("later".into())), Ok(None));
        let why = missing(&nodes, &NodeTarget::Name("later".into()));
        assert!(
            why.contains("mic (id 31)") && !why.contains("gamescope"),
            "{why}"
        );
    }

    #[test]
    fn the_fifo_primes_hands_out_packets_and_goes_silent_when_dry() {
        let mut f = Fifo::new(4);
        let mut out = [9.0f32; 4];
        f.push([1.0, 2.0, 3.0, 4.0].into_iter());
        assert!(!f.pop(&mut out), "priming: one packet is not enough");
        assert_eq!(out, [0.0; 4]);
        f.push([5.0, 6.0, 7.0, 8.0].into_iter());
        assert!(f.pop(&mut out));
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
        assert!(f.pop(&mut out));
        assert_eq!(out, [5.0, 6.0, 7.0, 8.0]);
        assert!(!f.pop(&mut out), "dry");
        assert_eq!((out, f.underruns), ([0.0; 4], 1));
        // After an underrun it waits for one packet more than before.
        f.push([1.0; 4].into_iter());
        f.push([1.0; 4].into_iter());
        assert!(!f.pop(&mut out), "two packets no longer suffice");
        f.push([2.0; 4].into_iter());
        assert!(f.pop(&mut out));
        assert_eq!(f.prefill(), 12);
    }

    #[test]
    fn big_quanta_prefill_more_and_runaway_fifos_are_trimmed() {
        let mut f = Fifo::new(4);
        let mut out = [0.0f32; 4];
        // One delivery of three packets: the prefill is that plus one packet.
        f.push((0..12).map(|v| v as f32));
        assert!(!f.pop(&mut out));
        f.push((12..24).map(|v| v as f32));
        for want in [0.0, 4.0, 8.0, 12.0, 16.0, 20.0] {
            assert!(f.pop(&mut out));
            assert_eq!(out[0], want);
        }
        // A reader that stalls: the FIFO never holds more than prefill + slack, and
        // what it keeps is the newest sound.
        let mut g = Fifo::new(4);
        for n in 0..20 {
            g.push((0..4).map(|v| (n * 4 + v) as f32));
            assert!(g.samples.len() <= g.prefill() + SLACK_PACKETS * 4);
        }
        assert!(g.dropped > 0);
        assert_eq!(g.samples.back(), Some(&79.0));
    }
}
