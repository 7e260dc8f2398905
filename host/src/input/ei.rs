//! Input into a gamescope session through its libei (EIS) server, with the `reis`
//! crate as the client.
//!
//! Why libei and not uinput for gamescope: `gamescope --backend headless` opens no
//! input devices at all (no libinput, no seat), so uinput keyboards and mice reach no
//! gamescope session; and uinput devices belong to the whole machine, so with two
//! sessions both would see them. gamescope's EIS server, whose socket it exports to
//! its children as `LIBEI_SOCKET`, feeds exactly that gamescope and dies with it.
//! Gamepads stay uinput: games read pads from `/dev/input` themselves.
//!
//! The server owns the keymap (EIS has no way for a sender to upload one), so keys are
//! the evdev codes of the US table and text uses the server's `ei_text` interface
//! where it has one, else the US keys for the characters they type (others are
//! skipped and logged).
//!
//! Not run in CI: this machine has no gamescope (Debian 12's 3.11 has no headless
//! backend or EIS, and gamescope needs a GPU). It compiles and its pure parts
//! (keys, scaling, scroll) are shared with the sway backend, which CI runs for real.

use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use punktfunk_core::gamestream::input::{InputEvent, modifiers};
use reis::PendingRequestResult;
use reis::ei;
use reis::enumflags2::BitFlags;
use reis::event::{DeviceCapability, EiEvent, EiEventConverter};
use reis::handshake::EiHandshaker;

use super::InputSink;
use super::uinput::keymap::linux_key;
use super::uinput::translate::mouse_button;
use super::wayland::{keymap as xkbmap, pointer};

/// How long opening waits for gamescope's handshake and devices.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until `fd` is readable or `timeout` passes; true when readable.
fn readable(fd: &impl AsFd, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    n > 0
}

/// Microseconds of `CLOCK_MONOTONIC`, the clock EI frame times use.
fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// The evdev modifier keys GameStream's flags stand for, pressed around a key whose
/// flags carry modifiers the client never pressed.
fn flag_keys(flags: u8) -> impl Iterator<Item = u16> {
    [
        (modifiers::SHIFT, 42u16),
        (modifiers::CTRL, 29),
        (modifiers::ALT, 56),
        (modifiers::META, 125),
    ]
    .into_iter()
    .filter(move |(f, _)| flags & f != 0)
    .map(|(_, k)| k)
}

/// gamescope's EIS socket as a process environment (`/proc/PID/environ`, NUL
/// separated) names it: `LIBEI_SOCKET`, which gamescope sets for its children only
/// (so it is read from the app's environment, never gamescope's own), and which libei
/// resolves against `XDG_RUNTIME_DIR` when it is not absolute.
pub fn socket_from_environ(environ: &[u8], runtime_dir: &Path) -> Option<PathBuf> {
    let value = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"LIBEI_SOCKET="))?;
    if value.is_empty() {
        return None;
    }
    let path = Path::new(std::ffi::OsStr::from_bytes(value));
    Some(if path.is_absolute() {
        path.to_owned()
    } else {
        runtime_dir.join(path)
    })
}

/// reis's event converter, made `Send` so the sink can sit behind `InputSink`.
struct Converter(EiEventConverter);

// SAFETY: the converter's only field that is not `Send` is its map of boxed
// `FnOnce(u64)` callbacks, filled only by `add_callback_handler`, which this module
// never calls: the map stays empty, so no non-`Send` closure ever crosses a thread.
// Every other field is plain data or `Arc`/`Mutex`-shared protocol objects.
unsafe impl Send for Converter {}

/// A libei sender connected to one gamescope.
pub struct EiSink {
    socket: PathBuf,
    context: ei::Context,
    events: Converter,
    /// Devices the server resumed (may emulate), with their capabilities.
    devices: Vec<reis::event::Device>,
    sequence: u32,
    /// The output's size, used when a device announces no region.
    output: (u32, u32),
    /// Modifier keys held (evdev codes).
    held: Vec<u16>,
    gone: bool,
}

impl std::fmt::Debug for EiSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EiSink")
            .field("socket", &self.socket)
            .field("devices", &self.devices.len())
            .field("gone", &self.gone)
            .finish_non_exhaustive()
    }
}

impl EiSink {
    /// Connects to the EIS server at `socket`, binds its seat's pointer, keyboard,
    /// button, scroll and text capabilities and waits (at most [`OPEN_TIMEOUT`]) for
    /// the devices the server then offers.
    pub fn open(socket: &Path, output: (u32, u32)) -> Result<Self> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to gamescope's EIS at {}", socket.display()))?;
        let context = ei::Context::new(stream).context("an EI context")?;
        let deadline = Instant::now() + OPEN_TIMEOUT;
        let mut handshaker = EiHandshaker::new("punktfunk", ei::handshake::ContextType::Sender);
        let resp = 'handshake: loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !readable(&context, left) {
                bail!("gamescope's EIS did not answer the handshake");
            }
            context.read().context("reading from EIS")?;
            while let Some(pending) = context.pending_event() {
                let PendingRequestResult::Request(event) = pending else {
                    bail!("a malformed EIS handshake message");
                };
                if let Some(resp) = handshaker
                    .handle_event(event)
                    .map_err(|e| anyhow!("EIS handshake: {e}"))?
                {
                    break 'handshake resp;
                }
            }
        };
        let events = Converter(EiEventConverter::new(&context, resp));
        let mut sink = Self {
            socket: socket.to_owned(),
            context,
            events,
            devices: Vec::new(),
            sequence: 0,
            output,
            held: Vec::new(),
            gone: false,
        };
        while Instant::now() < deadline && !sink.ready() {
            sink.pump(deadline.saturating_duration_since(Instant::now()))?;
        }
        if !sink.ready() {
            bail!("gamescope's EIS offered no keyboard or pointer");
        }
        tracing::info!(
            socket = %socket.display(),
            devices = sink.devices.len(),
            "client input goes to gamescope's EIS"
        );
        Ok(sink)
    }

    fn ready(&self) -> bool {
        self.device(DeviceCapability::Keyboard).is_some()
            && self.device(DeviceCapability::Pointer).is_some()
    }

    fn device(&self, cap: DeviceCapability) -> Option<&reis::event::Device> {
        self.devices.iter().find(|d| d.has_capability(cap))
    }

    /// Handles what the server sent: messages already read first (the handshake's
    /// read may have brought the seat along), else what arrives within `timeout`.
    fn pump(&mut self, timeout: Duration) -> Result<()> {
        if !self.dispatch()? && readable(&self.context, timeout) {
            if self.context.read().context("reading from EIS")? == 0 {
                bail!("gamescope closed its EIS connection");
            }
            self.dispatch()?;
        }
        let _ = self.context.flush();
        Ok(())
    }

    /// Handles the messages read so far; whether there were any.
    fn dispatch(&mut self) -> Result<bool> {
        let mut any = false;
        while let Some(pending) = self.context.pending_event() {
            any = true;
            match pending {
                PendingRequestResult::Request(event) => {
                    self.events
                        .0
                        .handle_event(event)
                        .map_err(|e| anyhow!("EIS: {e}"))?;
                }
                PendingRequestResult::ParseError(e) => bail!("a malformed EIS message: {e}"),
                PendingRequestResult::InvalidObject(_) => {}
            }
        }
        while let Some(event) = self.events.0.next_event() {
            self.on_event(event)?;
        }
        Ok(any)
    }

    fn on_event(&mut self, event: EiEvent) -> Result<()> {
        match event {
            EiEvent::SeatAdded(s) => {
                s.seat.bind_capabilities(
                    BitFlags::from(DeviceCapability::Pointer)
                        | DeviceCapability::PointerAbsolute
                        | DeviceCapability::Keyboard
                        | DeviceCapability::Button
                        | DeviceCapability::Scroll
                        | DeviceCapability::Text,
                );
            }
            EiEvent::DeviceResumed(d) => {
                d.device.device().start_emulating(d.serial, self.sequence);
                self.sequence = self.sequence.wrapping_add(1);
                self.devices.retain(|x| x != &d.device);
                self.devices.push(d.device);
            }
            EiEvent::DevicePaused(d) => self.devices.retain(|x| x != &d.device),
            EiEvent::DeviceRemoved(d) => self.devices.retain(|x| x != &d.device),
            EiEvent::Disconnected(_) => bail!("gamescope disconnected the EI client"),
            _ => {}
        }
        Ok(())
    }

    /// Sends one frame of `cap`'s device, built by `emit`. Dropped (and logged at
    /// debug) while the server has no such device resumed.
    fn frame(&mut self, cap: DeviceCapability, emit: impl FnOnce(&reis::event::Device)) {
        let serial = self.events.0.connection().serial();
        let Some(device) = self.device(cap) else {
            tracing::debug!(?cap, "gamescope offers no such device now: event dropped");
            return;
        };
        emit(device);
        device.device().frame(serial, now_us());
    }

    fn key(&mut self, key: u16, down: bool) {
        let state = if down {
            ei::keyboard::KeyState::Press
        } else {
            ei::keyboard::KeyState::Released
        };
        self.frame(DeviceCapability::Keyboard, |d| {
            if let Some(k) = d.interface::<ei::Keyboard>() {
                k.key(u32::from(key), state);
            }
        });
    }

    fn apply(&mut self, event: &InputEvent) {
        match event {
            InputEvent::Key {
                code,
                down,
                modifiers,
                ..
            } => {
                let Some(key) = linux_key(code & 0xFF) else {
                    return;
                };
                if xkbmap::modifier_bit(key).is_some() {
                    self.held.retain(|k| *k != key);
                    if *down {
                        self.held.push(key);
                    }
                    self.key(key, *down);
                    return;
                }
                // The server keeps the modifier state from the keys it sees: press
                // the modifiers the flags carry but the client never pressed.
                // (Either side's key counts as held.)
                let held = self
                    .held
                    .iter()
                    .filter_map(|k| xkbmap::modifier_bit(*k))
                    .fold(0, |a, b| a | b);
                let extra: Vec<u16> = flag_keys(*modifiers)
                    .filter(|k| xkbmap::modifier_bit(*k).is_some_and(|b| held & b == 0))
                    .collect();
                if *down {
                    extra.iter().for_each(|k| self.key(*k, true));
                }
                self.key(key, *down);
                if *down {
                    extra.iter().rev().for_each(|k| self.key(*k, false));
                }
            }
            InputEvent::MouseMove { dx, dy } => {
                self.frame(DeviceCapability::Pointer, |d| {
                    if let Some(p) = d.interface::<ei::Pointer>() {
                        p.motion_relative(f32::from(*dx), f32::from(*dy));
                    }
                });
            }
            InputEvent::MousePosition {
                x,
                y,
                width,
                height,
            } => {
                let Some(dev) = self.device(DeviceCapability::PointerAbsolute) else {
                    return;
                };
                // Within the device's first region (gamescope's output), else the
                // session's output size.
                let (ox, oy, size) = dev
                    .regions()
                    .first()
                    .map_or((0, 0, self.output), |r| (r.x, r.y, (r.width, r.height)));
                let Some(a) = pointer::scale_absolute(*x, *y, *width, *height, size) else {
                    return;
                };
                self.frame(DeviceCapability::PointerAbsolute, |d| {
                    if let Some(p) = d.interface::<ei::PointerAbsolute>() {
                        p.motion_absolute((ox + a.x) as f32, (oy + a.y) as f32);
                    }
                });
            }
            InputEvent::MouseButton { button, down } => {
                let state = if *down {
                    ei::button::ButtonState::Press
                } else {
                    ei::button::ButtonState::Released
                };
                self.frame(DeviceCapability::Button, |d| {
                    if let Some(b) = d.interface::<ei::Button>() {
                        b.button(u32::from(mouse_button(*button)), state);
                    }
                });
            }
            // EI's discrete scroll is in 1/120 notches, positive down and right, as
            // Wayland's axes.
            InputEvent::Scroll { amount } => self.frame(DeviceCapability::Scroll, |d| {
                if let Some(s) = d.interface::<ei::Scroll>() {
                    s.scroll_discrete(0, -i32::from(*amount));
                }
            }),
            InputEvent::HScroll { amount } => self.frame(DeviceCapability::Scroll, |d| {
                if let Some(s) = d.interface::<ei::Scroll>() {
                    s.scroll_discrete(i32::from(*amount), 0);
                }
            }),
            InputEvent::Text(text) => self.text(text),
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if self.device(DeviceCapability::Text).is_some() {
            self.frame(DeviceCapability::Text, |d| {
                if let Some(t) = d.interface::<ei::Text>() {
                    t.utf8(text);
                }
            });
            return;
        }
        for c in text.chars() {
            let Some((key, shift)) = xkbmap::us_key(c) else {
                tracing::debug!("gamescope has no ei_text: {c:?} cannot be typed");
                continue;
            };
            if shift {
                self.key(42, true);
            }
            self.key(key, true);
            self.key(key, false);
            if shift {
                self.key(42, false);
            }
        }
    }
}

impl InputSink for EiSink {
    /// Sends one event; once gamescope is gone, every later event goes nowhere.
    fn handle(&mut self, event: &InputEvent) -> Result<()> {
        if self.gone {
            return Ok(());
        }
        let result = self.pump(Duration::ZERO).and_then(|()| {
            self.apply(event);
            self.context
                .flush()
                .map_err(|e| anyhow!("sending to EIS: {e}"))
        });
        if let Err(e) = result {
            self.gone = true;
            tracing::warn!(
                socket = %self.socket.display(),
                "gamescope's EIS is gone ({e:#}); client input now goes nowhere"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "ei_tests.rs"]
mod tests;
