//! PipeWire capture: frames from an existing Video/Source node (gamescope's, a desktop
//! portal's, a test producer's).
//!
//! The PipeWire loop runs on the caller's thread: [`PipeWireCapture::next_frame`]
//! iterates it until a buffer arrives or the timeout passes, so no thread hand-off sits
//! between the producer and the encoder.
//!
//! What it accepts, and why:
//! - formats BGRx, RGBx, BGRA and NV12, at any size and any frame rate, including the
//!   variable rate 0/1 that gamescope and xdg-desktop-portal-wlr announce;
//! - MemFd, MemPtr and DmaBuf buffers. MemFd (and linear DMA-BUF) memory is mapped
//!   here, sized by `fstat`, never by the buffer's `maxsize`: a compositor bug reports a
//!   larger maxsize than its fd holds, and reading past the end of a mapped file is a
//!   SIGBUS that would take the whole host down. DMA-BUFs are handed on as
//!   descriptors (the encoder maps linear ones or imports them);
//! - a format renegotiation (a mode change) switches to the new size on the next
//!   frame; the node going away, the daemon going away, or the stream failing ends the
//!   capture with [`CaptureError::Ended`] and the reason.

mod buffers;
pub mod select;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipewire as pw;
use pw::spa;
use pw::spa::pod::Pod;
use pw::stream::{StreamFlags, StreamState};

use self::buffers::{Lent, Negotiated};
use self::select::select_node;
use super::{CaptureError, Frame, NodeTarget, PixelFormat, VideoCapture};
use crate::pw_graph::{Connection, Graph, Pick, Watcher, lock, pod_bytes};

/// How long [`PipeWireCapture::open`] waits for the node to appear (a compositor
/// that was just started publishes its node a moment later).
pub const NODE_WAIT: Duration = Duration::from_secs(3);

/// How long a linked node may take to agree on a format before the capture fails.
pub const NEGOTIATE_WAIT: Duration = Duration::from_secs(5);

/// What the callbacks tell the capture.
#[derive(Debug, Default)]
struct State {
    /// The nodes there are, and the one being captured once chosen.
    graph: Graph,
    format: Option<Negotiated>,
    /// The newest buffer dequeued and not yet handed out, with when it came.
    pending: Option<(*mut pw::sys::pw_buffer, Instant)>,
    ended: Option<String>,
    failed: Option<String>,
    /// The producer's buffers claim more memory than their fds hold (said once).
    overclaim_reported: bool,
    /// The capture is being dropped: the disconnect that follows is ours.
    closing: bool,
    /// The NV12 colour (SPA matrix, range) asked of the producer, if any.
    nv12_asked: Option<(u32, u32)>,
}

impl Watcher for State {
    fn graph(&mut self) -> &mut Graph {
        &mut self.graph
    }

    fn end(&mut self, reason: String) {
        if self.ended.is_none() && !self.closing {
            tracing::info!(reason, "PipeWire capture ending");
            self.ended = Some(reason);
        }
    }

    fn object_error(&mut self, id: u32, res: i32, message: &str) {
        self.failed
            .get_or_insert_with(|| format!("PipeWire error on object {id}: {message} ({res})"));
    }

    fn stopped(&self) -> Option<String> {
        self.ended.clone().or_else(|| self.failed.clone())
    }
}

/// The state the callbacks share with the capture. A mutex, not a `RefCell`:
/// libpipewire may run stream callbacks on its data-loop thread.
type Shared = Arc<Mutex<State>>;

/// A running PipeWire capture. Fields drop in order: listeners before what they
/// listen to, the loop last.
pub struct PipeWireCapture {
    state: Shared,
    /// The buffer the last frame borrowed; queued back to the producer at the next
    /// [`VideoCapture::next_frame`] call or on drop.
    lent: Option<Lent>,
    opened: Instant,
    _stream_listener: pw::stream::StreamListener<()>,
    stream: pw::stream::StreamRc,
    connection: Connection,
}

impl std::fmt::Debug for PipeWireCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWireCapture")
            .field("state", &lock(&self.state))
            .finish_non_exhaustive()
    }
}

// SAFETY: the PipeWire objects here are reference-counted with `Rc` and tied to one
// loop, but every clone of every `Rc` (the callbacks' included) lives inside this
// struct, and libpipewire's main loop has no thread affinity. Moving the whole capture
// to another thread therefore moves all its handles together; it is only ever used
// through `&mut self`, from one thread at a time.
unsafe impl Send for PipeWireCapture {}

fn failed(what: &str, e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Failed(format!("{what}: {e}"))
}

impl PipeWireCapture {
    /// Connects to the PipeWire daemon (the one in `runtime_dir`, else the
    /// environment's), finds `node` (waiting up to [`NODE_WAIT`] for it to appear)
    /// and links a capture stream to it.
    pub fn open(node: &NodeTarget, runtime_dir: Option<&Path>) -> Result<Self, CaptureError> {
        let state: Shared = Arc::default();
        let connection = Connection::open(runtime_dir, &state).map_err(CaptureError::Failed)?;
        let target = connection
            .wait_for(&state, NODE_WAIT, |nodes| match select_node(nodes, node) {
                Ok(found) => Pick::Found(found.clone()),
                Err(e) if !e.may_appear() => Pick::Fail(e.to_string()),
                Err(e) => Pick::Missing(e.to_string()),
            })
            .map_err(CaptureError::Failed)?;
        tracing::info!(
            node = target.name,
            id = target.id,
            serial = target.serial,
            pid = target.pid,
            "capturing PipeWire node"
        );

        let mut props = pw::properties::PropertiesBox::new();
        props.insert(*pw::keys::MEDIA_TYPE, "Video");
        props.insert(*pw::keys::MEDIA_CATEGORY, "Capture");
        props.insert(*pw::keys::MEDIA_ROLE, "Screen");
        props.insert(*pw::keys::NODE_NAME, "punktfunk-capture");
        if let Some(serial) = target.serial {
            props.insert("target.object", serial.to_string().as_str());
        }
        let stream =
            pw::stream::StreamRc::new(connection.core().clone(), "punktfunk-capture", props)
                .map_err(|e| failed("creating a PipeWire stream", e))?;
        let stream_listener = Self::listen(&stream, &state)?;
        let formats: Vec<Vec<u8>> = buffers::FORMATS
            .iter()
            .map(|f| pod_bytes(buffers::enum_format(*f)))
            .collect::<Result<_, _>>()
            .map_err(CaptureError::Failed)?;
        let mut params: Vec<&Pod> = formats.iter().filter_map(|b| Pod::from_bytes(b)).collect();
        stream
            .connect(
                spa::utils::Direction::Input,
                Some(target.id),
                StreamFlags::AUTOCONNECT | StreamFlags::DONT_RECONNECT,
                &mut params,
            )
            .map_err(|e| failed(&format!("linking to PipeWire node {}", target.id), e))?;
        Ok(Self {
            state,
            lent: None,
            opened: Instant::now(),
            _stream_listener: stream_listener,
            stream,
            connection,
        })
    }

    fn listen(
        stream: &pw::stream::StreamRc,
        state: &Shared,
    ) -> Result<pw::stream::StreamListener<()>, CaptureError> {
        let on_state = state.clone();
        let on_param = state.clone();
        let on_process = state.clone();
        let on_remove = state.clone();
        let on_add = state.clone();
        stream
            .add_local_listener::<()>()
            .state_changed(move |_, _, old, new| {
                tracing::debug!(?old, ?new, "PipeWire capture stream state");
                let mut st = lock(&on_state);
                match new {
                    StreamState::Error(message) => {
                        st.end(format!("the PipeWire stream failed: {message}"));
                    }
                    StreamState::Unconnected => {
                        st.end("the PipeWire stream was disconnected".into());
                    }
                    _ => {}
                }
            })
            .param_changed(move |stream, _, id, param| {
                if id != spa::param::ParamType::Format.as_raw() {
                    return;
                }
                let mut st = lock(&on_param);
                let Some(param) = param else {
                    // The link went away; the node's removal (or a new format) follows.
                    st.format = None;
                    return;
                };
                match buffers::parse_format(param) {
                    Ok(format) => {
                        tracing::info!(
                            format = ?format.format,
                            width = format.width,
                            height = format.height,
                            framerate = format!("{}/{}", format.framerate.0, format.framerate.1),
                            colour = ?format.colour,
                            "PipeWire format negotiated"
                        );
                        if format.format == PixelFormat::Nv12 {
                            match st.nv12_asked {
                                Some(asked) if asked == format.colour => tracing::info!(
                                    "the PipeWire producer hands over NV12 in the encoder's matrix: no colour conversion"
                                ),
                                _ => tracing::warn!(
                                    asked = ?st.nv12_asked,
                                    got = ?format.colour,
                                    "the PipeWire producer's NV12 is not in the encoder's colour matrix; \
                                     colours may be slightly off"
                                ),
                            }
                        }
                        st.format = Some(format);
                        drop(st);
                        if let Ok(bytes) = pod_bytes(buffers::buffers_param())
                            && let Some(pod) = Pod::from_bytes(&bytes)
                            && let Err(e) = stream.update_params(&mut [pod])
                        {
                            tracing::warn!("PipeWire buffer parameters refused: {e}");
                        }
                    }
                    Err(e) => st.end(format!("the node changed to a format we cannot take: {e}")),
                }
            })
            .add_buffer(move |_, _, buffer| {
                // SAFETY: PipeWire hands us a live buffer that stays valid until its
                // remove_buffer callback.
                if let Some((claimed, holds)) = unsafe { buffers::map_buffer(buffer) } {
                    let mut st = lock(&on_add);
                    if !st.overclaim_reported {
                        st.overclaim_reported = true;
                        tracing::warn!(
                            claimed,
                            holds,
                            "the PipeWire producer's buffers claim more memory than their fds hold; \
                             reading only what the fds hold"
                        );
                    }
                }
            })
            .remove_buffer(move |_, _, buffer| {
                let mut st = lock(&on_remove);
                if st.pending.is_some_and(|(p, _)| p == buffer) {
                    st.pending = None;
                }
                // SAFETY: as in add_buffer; its mappings are released exactly once here.
                unsafe { buffers::unmap_buffer(buffer) };
            })
            .process(move |stream, _| {
                let mut st = lock(&on_process);
                // Keep only the newest picture; older ones go straight back.
                loop {
                    // SAFETY: dequeued buffers are ours until queued back; every one
                    // is queued back here, by next_frame, or on drop.
                    let buffer = unsafe { stream.dequeue_raw_buffer() };
                    if buffer.is_null() {
                        break;
                    }
                    if let Some((old, _)) = st.pending.replace((buffer, Instant::now())) {
                        // SAFETY: `old` was dequeued from this stream and not lent out.
                        unsafe { stream.queue_raw_buffer(old) };
                    }
                }
            })
            .register()
            .map_err(|e| failed("listening to the PipeWire stream", e))
    }

    /// Queues the lent buffer back to the producer.
    fn give_back(&mut self) {
        if let Some(lent) = self.lent.take() {
            // SAFETY: the buffer was dequeued from this stream; the frame that
            // borrowed it is gone (it borrowed `self`, which we now hold mutably).
            unsafe { self.stream.queue_raw_buffer(lent.buffer) };
        }
    }
}

impl VideoCapture for PipeWireCapture {
    /// The newest picture the node published since the last call.
    ///
    /// The frame borrows the PipeWire buffer itself (no copy): the buffer stays out
    /// of the producer's hands while the frame lives, and is queued back to it at the
    /// start of the next `next_frame` call (or when the capture is dropped). Older
    /// pictures that arrived meanwhile are queued back at once, unseen.
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame<'_>>, CaptureError> {
        self.give_back();
        let deadline = Instant::now() + timeout;
        let lent = loop {
            let pending = {
                let mut st = lock(&self.state);
                if let Some(reason) = &st.ended {
                    return Err(CaptureError::Ended(reason.clone()));
                }
                if let Some(reason) = &st.failed {
                    return Err(CaptureError::Failed(reason.clone()));
                }
                if st.format.is_none() && self.opened.elapsed() > NEGOTIATE_WAIT {
                    return Err(CaptureError::Failed(format!(
                        "PipeWire node {} agreed on no format we take (BGRx, RGBx, BGRA, NV12) in {} s",
                        st.graph.target.as_ref().map_or("?", |t| t.name.as_str()),
                        NEGOTIATE_WAIT.as_secs()
                    )));
                }
                // Without a format (a renegotiation under way) the buffer waits.
                match st.format {
                    Some(format) => st.pending.take().map(|p| (p, format)),
                    None => None,
                }
            };
            if let Some(((buffer, at), format)) = pending {
                // SAFETY: a buffer dequeued by the process callback and not queued back.
                match unsafe { buffers::lend(buffer, &format, at) } {
                    Ok(Some(lent)) => break lent,
                    Ok(None) => {}
                    Err(e) => tracing::debug!("skipping a PipeWire buffer: {e}"),
                }
                // SAFETY: as above; nothing borrows it.
                unsafe { self.stream.queue_raw_buffer(buffer) };
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.connection.iterate(deadline - now);
        };
        let lent = self.lent.insert(lent);
        // SAFETY: the buffer stays dequeued (ours) until the next call or drop, both of
        // which need `&mut self`, which the returned frame borrows; its mappings live
        // until remove_buffer, which only runs inside this loop's iterate (also under
        // `&mut self`).
        Ok(Some(unsafe { lent.frame() }))
    }

    /// Puts NV12 in `m`'s matrix and range first in the formats offered, the packed RGB
    /// ones after it (an NV12 in another matrix is no longer taken). Takes effect at
    /// the first negotiation, so the stream calls it right after opening, before the
    /// first frame (the loop has not run yet). Whether the producer agrees is known only
    /// then, and logged; so this answers `false`.
    fn offer_nv12(&mut self, m: &punktfunk_yuv::Matrix) -> bool {
        let Some(colour) = buffers::spa_colour_of(m) else {
            return false;
        };
        let formats = std::iter::once(buffers::enum_format_in(
            spa::param::video::VideoFormat::NV12,
            Some(colour),
        ))
        .chain(
            buffers::FORMATS
                .iter()
                .filter(|f| **f != spa::param::video::VideoFormat::NV12)
                .map(|f| buffers::enum_format(*f)),
        )
        .map(pod_bytes)
        .collect::<Result<Vec<_>, _>>();
        let formats = match formats {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("could not ask the PipeWire producer for NV12: {e}");
                return false;
            }
        };
        let mut params: Vec<&Pod> = formats.iter().filter_map(|b| Pod::from_bytes(b)).collect();
        match self.stream.update_params(&mut params) {
            Ok(()) => {
                lock(&self.state).nv12_asked = Some(colour);
                tracing::debug!(?colour, "asked the PipeWire producer for NV12 first");
            }
            Err(e) => tracing::warn!("could not ask the PipeWire producer for NV12: {e}"),
        }
        false
    }

    fn describe(&self) -> String {
        let st = lock(&self.state);
        match (&st.graph.target, &st.format) {
            (Some(t), Some(f)) => format!(
                "PipeWire node {} (id {}) {:?} {}x{}",
                t.name, t.id, f.format, f.width, f.height
            ),
            (Some(t), None) => format!("PipeWire node {} (id {})", t.name, t.id),
            _ => "a PipeWire node".into(),
        }
    }
}

impl Drop for PipeWireCapture {
    fn drop(&mut self) {
        self.give_back();
        let pending = {
            let mut st = lock(&self.state);
            st.closing = true;
            st.pending.take()
        };
        if let Some((buffer, _)) = pending {
            // SAFETY: dequeued by the process callback and never lent.
            unsafe { self.stream.queue_raw_buffer(buffer) };
        }
        // Disconnecting runs remove_buffer for every buffer (unmapping it) while our
        // listener is still registered.
        let _ = self.stream.disconnect();
    }
}

/// The layouts the encoder converts, in the order offered (the first is preferred).
pub fn pixel_format_of(format: spa::param::video::VideoFormat) -> Option<PixelFormat> {
    use spa::param::video::VideoFormat as V;
    match format {
        V::BGRx => Some(PixelFormat::Bgrx),
        V::RGBx => Some(PixelFormat::Rgbx),
        V::BGRA => Some(PixelFormat::Bgra),
        V::NV12 => Some(PixelFormat::Nv12),
        _ => None,
    }
}
