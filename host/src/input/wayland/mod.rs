//! Input into a wlroots session (headless sway): a virtual keyboard
//! (`zwp_virtual_keyboard_v1`) and a virtual pointer (`zwlr_virtual_pointer_v1`) on
//! the session compositor's own Wayland socket.
//!
//! Why this and not uinput: uinput devices belong to the whole machine, and a headless
//! sway (`WLR_LIBINPUT_NO_DEVICES=1`) reads none of them, so keys sent there reach the
//! box's own seat, never the session a client watches. Virtual devices made on the
//! session's socket exist only in that compositor, go to the window it focuses, and
//! vanish with it: when the session ends the connection breaks and later input is
//! dropped (see [`WaylandSink::handle`]).
//!
//! The compositor runs as the session user; the host connects to the socket path in
//! that user's runtime directory (as root it may; on the appliance it is that user).

pub mod keymap;
pub mod pointer;
pub mod text;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use punktfunk_core::gamestream::input::{InputEvent, modifiers};
use wayland_client::protocol::{wl_pointer, wl_registry, wl_seat};
use wayland_client::{Connection, Dispatch, EventQueue, QueueHandle, delegate_noop};
use wayland_protocols_misc::zwp_virtual_keyboard_v1::client::{
    zwp_virtual_keyboard_manager_v1::ZwpVirtualKeyboardManagerV1,
    zwp_virtual_keyboard_v1::ZwpVirtualKeyboardV1,
};
use wayland_protocols_wlr::virtual_pointer::v1::client::{
    zwlr_virtual_pointer_manager_v1::ZwlrVirtualPointerManagerV1,
    zwlr_virtual_pointer_v1::ZwlrVirtualPointerV1,
};

use super::InputSink;
use super::uinput::keymap::linux_key;
use super::uinput::translate::mouse_button;
use crate::shm::SharedMemory;
use keymap::mods;
use text::{Step, TextKeys};

/// `wl_keyboard.keymap_format.xkb_v1`.
const KEYMAP_FORMAT_XKB_V1: u32 = 1;

#[derive(Debug, Default)]
struct Globals {
    seat: Option<wl_seat::WlSeat>,
    keyboards: Option<ZwpVirtualKeyboardManagerV1>,
    pointers: Option<ZwlrVirtualPointerManagerV1>,
}

impl Dispatch<wl_registry::WlRegistry, ()> for Globals {
    fn event(
        g: &mut Self,
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
                "wl_seat" if g.seat.is_none() => {
                    g.seat = Some(registry.bind(name, version.min(5), qh, ()));
                }
                "zwp_virtual_keyboard_manager_v1" => {
                    g.keyboards = Some(registry.bind(name, 1, qh, ()));
                }
                "zwlr_virtual_pointer_manager_v1" => {
                    g.pointers = Some(registry.bind(name, version.min(2), qh, ()));
                }
                _ => {}
            }
        }
    }
}

delegate_noop!(Globals: ignore wl_seat::WlSeat);
delegate_noop!(Globals: ignore ZwpVirtualKeyboardManagerV1);
delegate_noop!(Globals: ignore ZwpVirtualKeyboardV1);
delegate_noop!(Globals: ignore ZwlrVirtualPointerManagerV1);
delegate_noop!(Globals: ignore ZwlrVirtualPointerV1);

/// GameStream's modifier flags as real modifier bits.
fn flag_mods(flags: u8) -> u32 {
    let mut m = 0;
    for (flag, bit) in [
        (modifiers::SHIFT, mods::SHIFT),
        (modifiers::CTRL, mods::CONTROL),
        (modifiers::ALT, mods::ALT),
        (modifiers::META, mods::SUPER),
    ] {
        if flags & flag != 0 {
            m |= bit;
        }
    }
    m
}

/// A virtual keyboard and pointer in one session's compositor.
pub struct WaylandSink {
    socket: PathBuf,
    conn: Connection,
    queue: EventQueue<Globals>,
    globals: Globals,
    keyboard: ZwpVirtualKeyboardV1,
    pointer: ZwlrVirtualPointerV1,
    /// The output's size, which absolute positions are scaled to.
    output: (u32, u32),
    start: Instant,
    /// Modifier bits of the modifier keys held now.
    held: u32,
    /// Caps Lock and Num Lock.
    locked: u32,
    /// The (depressed, locked) masks last sent.
    sent: (u32, u32),
    text: TextKeys,
    steps: Vec<Step>,
    /// Set once the compositor is gone; input is then dropped.
    gone: bool,
}

impl std::fmt::Debug for WaylandSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaylandSink")
            .field("socket", &self.socket)
            .field("output", &self.output)
            .field("gone", &self.gone)
            .finish_non_exhaustive()
    }
}

impl WaylandSink {
    /// Connects to the compositor at `socket` (absolute path) and creates the virtual
    /// keyboard and pointer. `output` is the session output's size in pixels.
    pub fn open(socket: &Path, output: (u32, u32)) -> Result<Self> {
        let stream = UnixStream::connect(socket).with_context(|| {
            format!(
                "connecting to the session's compositor at {}",
                socket.display()
            )
        })?;
        let conn = Connection::from_socket(stream).context("a Wayland connection")?;
        let mut queue = conn.new_event_queue();
        let qh = queue.handle();
        conn.display().get_registry(&qh, ());
        let mut globals = Globals::default();
        queue
            .roundtrip(&mut globals)
            .context("listing the compositor's globals")?;
        let (Some(seat), Some(keyboards), Some(pointers)) = (
            globals.seat.clone(),
            globals.keyboards.clone(),
            globals.pointers.clone(),
        ) else {
            bail!(
                "the compositor at {} offers no wl_seat, zwp_virtual_keyboard_manager_v1 or \
                 zwlr_virtual_pointer_manager_v1",
                socket.display()
            );
        };
        let keyboard = keyboards.create_virtual_keyboard(&seat, &qh, ());
        let pointer = pointers.create_virtual_pointer(Some(&seat), &qh, ());
        let mut sink = Self {
            socket: socket.to_owned(),
            conn,
            queue,
            globals,
            keyboard,
            pointer,
            output,
            start: Instant::now(),
            held: 0,
            locked: 0,
            sent: (0, 0),
            text: TextKeys::default(),
            steps: Vec::new(),
            gone: false,
        };
        sink.upload_keymap(&[])?;
        // A compositor that refuses the keymap or the devices says so here.
        sink.queue
            .roundtrip(&mut sink.globals)
            .context("creating the virtual keyboard and pointer")?;
        tracing::info!(
            socket = %socket.display(),
            width = output.0,
            height = output.1,
            "client input goes to the session's compositor (virtual keyboard and pointer)"
        );
        Ok(sink)
    }

    fn time(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    fn upload_keymap(&mut self, extra: &[(u16, char)]) -> Result<()> {
        let text = keymap::keymap(extra);
        // The size includes the terminating NUL, as libxkbcommon reads a C string.
        let mut mem = SharedMemory::create(c"punktfunk-keymap", text.len() + 1)
            .context("a memfd for the keymap")?;
        let slice = mem.as_mut_slice();
        slice[..text.len()].copy_from_slice(text.as_bytes());
        slice[text.len()] = 0;
        self.keyboard
            .keymap(KEYMAP_FORMAT_XKB_V1, mem.fd(), (text.len() + 1) as u32);
        // The fd is duplicated into the message when it is sent: flush before the
        // memfd closes.
        self.conn.flush().context("sending the keymap")?;
        Ok(())
    }

    fn send_mods(&mut self, depressed: u32, locked: u32) {
        if self.sent != (depressed, locked) {
            self.keyboard.modifiers(depressed, 0, locked, 0);
            self.sent = (depressed, locked);
        }
    }

    fn key(&mut self, vk: u16, down: bool, flags: u8) {
        let Some(key) = linux_key(vk & 0xFF) else {
            return;
        };
        let state = u32::from(down);
        let time = self.time();
        if let Some(bit) = keymap::modifier_bit(key) {
            if down {
                self.held |= bit;
            } else {
                self.held &= !bit;
            }
        } else if let Some(bit) = keymap::lock_bit(key) {
            if down {
                self.locked ^= bit;
            }
        } else {
            // A plain key: its flags may carry modifiers whose keys the client never
            // sent (an on-screen keyboard's Shift), held for this key only.
            self.send_mods(self.held | flag_mods(flags), self.locked);
            self.keyboard.key(time, u32::from(key), state);
            return;
        }
        // A modifier key: the key first, then the state it changed, as a keyboard does.
        self.keyboard.key(time, u32::from(key), state);
        self.send_mods(self.held, self.locked);
    }

    fn type_text(&mut self, text: &str) -> Result<()> {
        let mut steps = std::mem::take(&mut self.steps);
        steps.clear();
        self.text.plan(text, &mut steps);
        for step in &steps {
            match step {
                Step::Upload(bound) => {
                    let bound = bound.clone();
                    self.upload_keymap(&bound)?;
                    // A new keymap starts from a clean state in the compositor.
                    self.sent = (u32::MAX, u32::MAX);
                }
                Step::Type { key, shift } => {
                    // Text is typed as is: Shift only where the character needs it,
                    // and no Caps Lock or held Control to change or hijack it.
                    self.send_mods(if *shift { mods::SHIFT } else { 0 }, 0);
                    let time = self.time();
                    self.keyboard.key(time, u32::from(*key), 1);
                    self.keyboard.key(time, u32::from(*key), 0);
                }
            }
        }
        self.send_mods(self.held, self.locked);
        self.steps = steps;
        Ok(())
    }

    fn apply(&mut self, event: &InputEvent) -> Result<()> {
        let time = self.time();
        match event {
            InputEvent::Key {
                code,
                down,
                modifiers,
                ..
            } => self.key(*code, *down, *modifiers),
            InputEvent::MouseMove { dx, dy } => {
                self.pointer.motion(time, f64::from(*dx), f64::from(*dy));
                self.pointer.frame();
            }
            InputEvent::MousePosition {
                x,
                y,
                width,
                height,
            } => {
                if let Some(a) = pointer::scale_absolute(*x, *y, *width, *height, self.output) {
                    self.pointer
                        .motion_absolute(time, a.x, a.y, a.extent_x, a.extent_y);
                    self.pointer.frame();
                }
            }
            InputEvent::MouseButton { button, down } => {
                let state = if *down {
                    wl_pointer::ButtonState::Pressed
                } else {
                    wl_pointer::ButtonState::Released
                };
                self.pointer
                    .button(time, u32::from(mouse_button(*button)), state);
                self.pointer.frame();
            }
            InputEvent::Scroll { amount } => {
                self.scroll(wl_pointer::Axis::VerticalScroll, pointer::vertical(*amount));
            }
            InputEvent::HScroll { amount } => {
                self.scroll(
                    wl_pointer::Axis::HorizontalScroll,
                    pointer::horizontal(*amount),
                );
            }
            InputEvent::Text(text) => self.type_text(text)?,
            // Pads go through uinput (see `SessionSink`); touch and pen have no
            // wlroots virtual device, and DESCRIBE does not offer them.
            _ => return Ok(()),
        }
        self.conn
            .flush()
            .context("sending input to the compositor")?;
        Ok(())
    }

    fn scroll(&mut self, axis: wl_pointer::Axis, s: pointer::Scroll) {
        if s.value == 0.0 {
            return;
        }
        let time = self.time();
        self.pointer.axis_source(wl_pointer::AxisSource::Wheel);
        if s.discrete != 0 {
            self.pointer.axis_discrete(time, axis, s.value, s.discrete);
        } else {
            self.pointer.axis(time, axis, s.value);
        }
        self.pointer.frame();
    }

    /// Whether the compositor went away (the session ended).
    pub fn gone(&self) -> bool {
        self.gone
    }
}

impl InputSink for WaylandSink {
    /// Sends one event. Once the compositor is gone (its session ended under a stream
    /// still running) the error is logged once and every later event goes nowhere:
    /// nothing else could receive it, and the stream ends with the session anyway.
    fn handle(&mut self, event: &InputEvent) -> Result<()> {
        if self.gone {
            return Ok(());
        }
        if let Err(e) = self.apply(event) {
            self.gone = true;
            tracing::warn!(
                socket = %self.socket.display(),
                "the session's compositor is gone ({e:#}); client input now goes nowhere"
            );
        }
        // Read what the compositor said (errors, pings of the registry), without
        // waiting, so its messages never pile up on the socket.
        if !self.gone
            && let Some(guard) = self.conn.prepare_read()
        {
            let _ = guard.read();
            let _ = self.queue.dispatch_pending(&mut self.globals);
        }
        Ok(())
    }
}

impl Drop for WaylandSink {
    fn drop(&mut self) {
        if !self.gone {
            self.keyboard.destroy();
            self.pointer.destroy();
            let _ = self.conn.flush();
        }
    }
}
