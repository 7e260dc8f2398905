//! wlr-screencopy capture of a wlroots compositor's output (headless sway).
//!
//! The host is a Wayland client of the session's compositor: it binds
//! `zwlr_screencopy_manager_v1` and asks for each frame with `copy_with_damage`, so the
//! compositor copies its output into our buffer only when something changed, and the
//! capture runs at the rate the app draws (never faster than the output's refresh).
//!
//! Buffers are wl_shm memfds we map ourselves (XRGB8888, what the pixman renderer
//! offers). Two of them alternate: while the encoder converts frame N straight from
//! one mapping, the compositor already copies frame N+1 into the other, so a slow
//! encode costs no capture. The compositor may also offer DMA-BUF (`linux_dmabuf`,
//! screencopy v3) on a GPU; allocating those needs GBM and belongs with the hardware
//! encoder, so this backend always asks for wl_shm, which wlroots always offers.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wayland_client::protocol::{wl_buffer, wl_output, wl_registry, wl_shm, wl_shm_pool};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle, WEnum, delegate_noop};
use wayland_protocols_wlr::screencopy::v1::client::{
    zwlr_screencopy_frame_v1::{self, ZwlrScreencopyFrameV1},
    zwlr_screencopy_manager_v1::ZwlrScreencopyManagerV1,
};

use super::{CaptureError, CpuFrame, Frame, PixelFormat, Pixels, Plane, VideoCapture};
use crate::shm::SharedMemory;

/// What one frame request has heard so far.
#[derive(Debug, Default)]
struct FrameEvents {
    shm: Option<(wl_shm::Format, u32, u32, u32)>,
    buffer_done: bool,
    y_invert: bool,
    ready: bool,
    failed: bool,
}

#[derive(Debug, Default)]
struct State {
    shm: Option<wl_shm::WlShm>,
    manager: Option<ZwlrScreencopyManagerV1>,
    outputs: Vec<(wl_output::WlOutput, Option<String>)>,
    frame: FrameEvents,
}

impl Dispatch<wl_registry::WlRegistry, ()> for State {
    fn event(
        state: &mut Self,
        registry: &wl_registry::WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_registry::Event::Global {
            name,
            interface,
            version,
        } = event
        {
            match interface.as_str() {
                "wl_shm" => state.shm = Some(registry.bind(name, 1, qh, ())),
                "zwlr_screencopy_manager_v1" => {
                    state.manager = Some(registry.bind(name, version.min(3), qh, ()));
                }
                // Version 4 names the output ("HEADLESS-1"); older ones are taken in order.
                "wl_output" => state
                    .outputs
                    .push((registry.bind(name, version.min(4), qh, ()), None)),
                _ => {}
            }
        }
    }
}

impl Dispatch<wl_output::WlOutput, ()> for State {
    fn event(
        state: &mut Self,
        output: &wl_output::WlOutput,
        event: wl_output::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_output::Event::Name { name } = event
            && let Some(o) = state.outputs.iter_mut().find(|(o, _)| o == output)
        {
            o.1 = Some(name);
        }
    }
}

impl Dispatch<ZwlrScreencopyFrameV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &ZwlrScreencopyFrameV1,
        event: zwlr_screencopy_frame_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwlr_screencopy_frame_v1::Event;
        let f = &mut state.frame;
        match event {
            Event::Buffer {
                format: WEnum::Value(format),
                width,
                height,
                stride,
            } => f.shm = Some((format, width, height, stride)),
            Event::BufferDone => f.buffer_done = true,
            Event::Flags {
                flags: WEnum::Value(flags),
            } => f.y_invert = flags.contains(zwlr_screencopy_frame_v1::Flags::YInvert),
            Event::Ready { .. } => f.ready = true,
            Event::Failed => f.failed = true,
            _ => {}
        }
    }
}

delegate_noop!(State: ignore wl_shm::WlShm);
delegate_noop!(State: ignore wl_shm_pool::WlShmPool);
delegate_noop!(State: ignore wl_buffer::WlBuffer);
delegate_noop!(State: ZwlrScreencopyManagerV1);

/// One wl_shm buffer: a memfd mapped into the host and shared with the compositor.
#[derive(Debug)]
struct ShmBuffer {
    mem: SharedMemory,
    pool: wl_shm_pool::WlShmPool,
    buffer: wl_buffer::WlBuffer,
    layout: (wl_shm::Format, u32, u32, u32),
}

impl ShmBuffer {
    fn new(
        shm: &wl_shm::WlShm,
        qh: &QueueHandle<State>,
        layout: (wl_shm::Format, u32, u32, u32),
    ) -> Result<Self, CaptureError> {
        let (format, width, height, stride) = layout;
        let len = stride as usize * height as usize;
        let mem = SharedMemory::create(c"punktfunk-screencopy", len)
            .map_err(|e| CaptureError::Failed(format!("the capture buffer: {e}")))?;
        let pool = shm.create_pool(mem.fd(), len as i32, qh, ());
        let buffer = pool.create_buffer(
            0,
            width as i32,
            height as i32,
            stride as i32,
            format,
            qh,
            (),
        );
        Ok(Self {
            mem,
            pool,
            buffer,
            layout,
        })
    }

    /// The pixels. The compositor writes only while a copy into this buffer is
    /// pending, and the capture never hands out a frame of a buffer with a pending copy.
    fn bytes(&self) -> &[u8] {
        self.mem.as_slice()
    }
}

impl Drop for ShmBuffer {
    fn drop(&mut self) {
        self.buffer.destroy();
        self.pool.destroy();
    }
}

fn pixel_format(f: wl_shm::Format) -> Option<PixelFormat> {
    match f {
        wl_shm::Format::Xrgb8888 => Some(PixelFormat::Bgrx),
        wl_shm::Format::Argb8888 => Some(PixelFormat::Bgra),
        wl_shm::Format::Xbgr8888 | wl_shm::Format::Abgr8888 => Some(PixelFormat::Rgbx),
        _ => None,
    }
}

/// A copy in flight: the frame object and which buffer it fills.
#[derive(Debug)]
struct Pending {
    frame: ZwlrScreencopyFrameV1,
    buffer: Option<usize>,
}

/// wlr-screencopy capture of one output.
#[derive(Debug)]
pub struct Screencopy {
    conn: Connection,
    queue: EventQueue<State>,
    state: State,
    output: wl_output::WlOutput,
    output_name: String,
    buffers: [Option<ShmBuffer>; 2],
    pending: Option<Pending>,
    /// The buffer the last returned frame lives in.
    shown: usize,
    warned_invert: bool,
}

impl Screencopy {
    /// Connects to the compositor at `socket` and picks `output` (by name where the
    /// compositor names outputs, else the first one).
    pub fn open(socket: &Path, output: Option<&str>) -> Result<Self, CaptureError> {
        let stream = UnixStream::connect(socket).map_err(|e| {
            CaptureError::Failed(format!("connecting to {}: {e}", socket.display()))
        })?;
        let conn = Connection::from_socket(stream)
            .map_err(|e| CaptureError::Failed(format!("Wayland connection: {e}")))?;
        let mut queue = conn.new_event_queue();
        let qh = queue.handle();
        conn.display().get_registry(&qh, ());
        let mut state = State::default();
        // Globals, then the outputs' names.
        for _ in 0..2 {
            queue
                .roundtrip(&mut state)
                .map_err(|e| CaptureError::Failed(format!("Wayland roundtrip: {e}")))?;
        }
        if state.manager.is_none() {
            return Err(CaptureError::Failed(
                "the compositor offers no wlr-screencopy (zwlr_screencopy_manager_v1)".into(),
            ));
        }
        if state.shm.is_none() {
            return Err(CaptureError::Failed(
                "the compositor offers no wl_shm".into(),
            ));
        }
        let chosen = match output {
            Some(name) => state
                .outputs
                .iter()
                .find(|(_, n)| n.as_deref() == Some(name))
                .or_else(|| state.outputs.iter().find(|(_, n)| n.is_none())),
            None => state.outputs.first(),
        };
        let (output, name) = chosen
            .map(|(o, n)| (o.clone(), n.clone()))
            .ok_or_else(|| CaptureError::Failed(format!("no output {output:?} to capture")))?;
        Ok(Self {
            conn,
            queue,
            state,
            output,
            output_name: name.unwrap_or_else(|| "the first output".into()),
            buffers: [None, None],
            pending: None,
            shown: 1,
            warned_invert: false,
        })
    }

    fn lost(e: impl std::fmt::Display) -> CaptureError {
        CaptureError::Ended(format!("the compositor went away: {e}"))
    }

    /// Reads and dispatches events until `done` or `deadline`.
    fn pump(
        &mut self,
        deadline: Instant,
        done: impl Fn(&State) -> bool,
    ) -> Result<bool, CaptureError> {
        loop {
            self.queue
                .dispatch_pending(&mut self.state)
                .map_err(Self::lost)?;
            if done(&self.state) {
                return Ok(true);
            }
            self.conn.flush().map_err(Self::lost)?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let Some(guard) = self.queue.prepare_read() else {
                continue;
            };
            let wait_ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: guard.connection_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, wait_ms) };
            if n > 0 {
                guard.read().map_err(Self::lost)?;
            } else {
                drop(guard);
            }
        }
    }

    /// Asks for the next frame into the buffer not shown.
    fn request(&mut self) {
        self.state.frame = FrameEvents::default();
        let qh = self.queue.handle();
        let manager = self.state.manager.as_ref().expect("checked at open");
        let frame = manager.capture_output(0, &self.output, &qh, ());
        self.pending = Some(Pending {
            frame,
            buffer: None,
        });
    }

    /// Once the compositor described the buffer it wants, attaches ours and copies.
    fn attach(&mut self) -> Result<(), CaptureError> {
        let Some(pending) = self.pending.as_mut() else {
            return Ok(());
        };
        if pending.buffer.is_some() {
            return Ok(());
        }
        let Some(layout) = self.state.frame.shm else {
            return Ok(());
        };
        let idx = 1 - self.shown;
        if self.buffers[idx]
            .as_ref()
            .is_none_or(|b| b.layout != layout)
        {
            // A new size (a mode change) or the first frame: a buffer that fits.
            let qh = self.queue.handle();
            let shm = self.state.shm.as_ref().expect("checked at open");
            self.buffers[idx] = Some(ShmBuffer::new(shm, &qh, layout)?);
        }
        let buffer = &self.buffers[idx].as_ref().expect("just made").buffer;
        pending.frame.copy_with_damage(buffer);
        pending.buffer = Some(idx);
        Ok(())
    }
}

impl VideoCapture for Screencopy {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame<'_>>, CaptureError> {
        let deadline = Instant::now() + timeout;
        if self.pending.is_none() {
            self.request();
        }
        // The description: wl_shm layout, and (v3) buffer_done once all are listed.
        let version = self.state.manager.as_ref().map_or(1, |m| m.version());
        let described = self.pump(deadline, |s| {
            s.frame.failed || (s.frame.shm.is_some() && (version < 3 || s.frame.buffer_done))
        })?;
        if !described {
            return Ok(None);
        }
        self.attach()?;
        if !self.pump(deadline, |s| s.frame.ready || s.frame.failed)? {
            return Ok(None);
        }
        let pending = self.pending.take().expect("a request is pending");
        pending.frame.destroy();
        if self.state.frame.failed {
            // The output went away or changed under the copy; the next request tells.
            if self.state.outputs.is_empty() {
                return Err(CaptureError::Ended("the output is gone".into()));
            }
            return Ok(None);
        }
        if self.state.frame.y_invert && !self.warned_invert {
            tracing::warn!("the compositor hands out upside-down frames (y_invert)");
            self.warned_invert = true;
        }
        let idx = pending.buffer.expect("attached before ready");
        self.shown = idx;
        // Ask for the next one now, into the other buffer, so it is copied while this
        // one is encoded (the compositor describes its buffer within a millisecond).
        self.request();
        let soon = Instant::now() + Duration::from_millis(3);
        if self.pump(soon, |s| {
            s.frame.failed || (s.frame.shm.is_some() && (version < 3 || s.frame.buffer_done))
        })? {
            self.attach()?;
        }
        let _ = self.conn.flush();
        let captured_at = Instant::now();
        let captured_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let buf = self.buffers[idx].as_ref().expect("attached");
        let (format, width, height, stride) = buf.layout;
        let format = pixel_format(format).ok_or_else(|| {
            CaptureError::Failed(format!("the compositor offers only {format:?} buffers"))
        })?;
        Ok(Some(Frame {
            width,
            height,
            captured_at,
            captured_unix_us,
            pixels: Pixels::Cpu(CpuFrame {
                format,
                planes: [
                    Plane {
                        data: buf.bytes(),
                        stride: stride as usize,
                    },
                    Plane::EMPTY,
                ],
            }),
        }))
    }

    fn describe(&self) -> String {
        format!("wlr-screencopy of {}", self.output_name)
    }
}
