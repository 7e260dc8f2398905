//! The painter's input report: every key, pointer, button and scroll event its
//! surface receives, one JSON object per line appended to the file `$PF_INPUT_LOG`
//! names, so a test sees exactly what a real app in the session got, in order.
//!
//! Keys are read as an app reads them: through the keymap the compositor sends and
//! the modifier state it reports (libxkbcommon), so a line carries the keysym and the
//! text the key types, not only its code.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use serde_json::{Value, json};
use wayland_client::protocol::{wl_keyboard, wl_pointer, wl_seat};
use wayland_client::{Connection, Dispatch, QueueHandle, WEnum};
use xkbcommon::xkb;

use crate::App;

/// The report file and the keyboard state that reading keys needs.
#[derive(Default)]
pub struct InputLog {
    file: Option<File>,
    keyboard: Option<wl_keyboard::WlKeyboard>,
    pointer: Option<wl_pointer::WlPointer>,
    xkb: Option<(xkb::Keymap, xkb::State)>,
}

impl std::fmt::Debug for InputLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputLog")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl InputLog {
    /// Appends to `$PF_INPUT_LOG` when it is set; reports nothing otherwise.
    pub fn from_env() -> Self {
        let file = std::env::var_os("PF_INPUT_LOG").and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| eprintln!("punktfunk-painter: cannot open {p:?}: {e}"))
                .ok()
        });
        Self {
            file,
            ..Self::default()
        }
    }

    fn write(&mut self, line: Value) {
        if let Some(f) = &mut self.file {
            let mut text = line.to_string();
            text.push('\n');
            // One write per line: the test may read while the painter writes.
            let _ = f.write_all(text.as_bytes());
        }
    }

    fn keymap(&mut self, fd: OwnedFd, size: u32) {
        let file = File::from(fd);
        let mut buf = vec![0u8; size as usize];
        if let Err(e) = file.read_exact_at(&mut buf, 0) {
            eprintln!("punktfunk-painter: reading the keymap: {e}");
            return;
        }
        while buf.last() == Some(&0) {
            buf.pop();
        }
        let ctx = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let Some(keymap) = xkb::Keymap::new_from_string(
            &ctx,
            String::from_utf8_lossy(&buf).into_owned(),
            xkb::KEYMAP_FORMAT_TEXT_V1,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        ) else {
            eprintln!("punktfunk-painter: the compositor's keymap does not compile");
            return;
        };
        let state = xkb::State::new(&keymap);
        self.xkb = Some((keymap, state));
        self.write(json!({"kind": "keymap", "size": size}));
    }

    fn key(&mut self, key: u32, pressed: bool) {
        let (sym, text, mods) = match &self.xkb {
            Some((_, state)) => {
                let code = xkb::Keycode::new(key + 8);
                (
                    xkb::keysym_get_name(state.key_get_one_sym(code)),
                    state.key_get_utf8(code),
                    state.serialize_mods(xkb::STATE_MODS_EFFECTIVE),
                )
            }
            None => (String::new(), String::new(), 0),
        };
        self.write(json!({
            "kind": "key", "key": key, "down": pressed, "sym": sym, "text": text, "mods": mods,
        }));
    }
}

fn axis_name(axis: WEnum<wl_pointer::Axis>) -> &'static str {
    match axis {
        WEnum::Value(wl_pointer::Axis::HorizontalScroll) => "horizontal",
        _ => "vertical",
    }
}

impl Dispatch<wl_seat::WlSeat, ()> for App {
    fn event(
        app: &mut Self,
        seat: &wl_seat::WlSeat,
        event: wl_seat::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        // The host's virtual keyboard and pointer appear after the painter starts:
        // take each as the seat announces it.
        if let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        {
            let log = &mut app.input;
            if caps.contains(wl_seat::Capability::Keyboard) && log.keyboard.is_none() {
                log.keyboard = Some(seat.get_keyboard(qh, ()));
            }
            if caps.contains(wl_seat::Capability::Pointer) && log.pointer.is_none() {
                log.pointer = Some(seat.get_pointer(qh, ()));
            }
        }
    }
}

impl Dispatch<wl_keyboard::WlKeyboard, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_keyboard::WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let log = &mut app.input;
        match event {
            wl_keyboard::Event::Keymap { fd, size, .. } => log.keymap(fd, size),
            wl_keyboard::Event::Enter { .. } => log.write(json!({"kind": "keyboard_enter"})),
            wl_keyboard::Event::Key { key, state, .. } => {
                log.key(key, state == WEnum::Value(wl_keyboard::KeyState::Pressed));
            }
            wl_keyboard::Event::Modifiers {
                mods_depressed,
                mods_latched,
                mods_locked,
                group,
                ..
            } => {
                if let Some((_, state)) = &mut log.xkb {
                    state.update_mask(mods_depressed, mods_latched, mods_locked, 0, 0, group);
                }
                log.write(json!({
                    "kind": "modifiers", "depressed": mods_depressed, "locked": mods_locked,
                }));
            }
            _ => {}
        }
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let log = &mut app.input;
        match event {
            wl_pointer::Event::Enter {
                surface_x,
                surface_y,
                ..
            } => log.write(json!({"kind": "enter", "x": surface_x, "y": surface_y})),
            wl_pointer::Event::Motion {
                surface_x,
                surface_y,
                ..
            } => log.write(json!({"kind": "motion", "x": surface_x, "y": surface_y})),
            wl_pointer::Event::Button { button, state, .. } => log.write(json!({
                "kind": "button", "button": button,
                "down": state == WEnum::Value(wl_pointer::ButtonState::Pressed),
            })),
            wl_pointer::Event::Axis { axis, value, .. } => {
                log.write(json!({"kind": "axis", "axis": axis_name(axis), "value": value}));
            }
            wl_pointer::Event::AxisDiscrete { axis, discrete } => log.write(json!({
                "kind": "axis_discrete", "axis": axis_name(axis), "discrete": discrete,
            })),
            _ => {}
        }
    }
}
