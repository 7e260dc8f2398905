//! The Wayland connection of the input sink: the globals it binds, and a roundtrip that
//! gives up, so that a hung compositor cannot hang the stream's control thread.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use wayland_client::protocol::{wl_callback, wl_registry, wl_seat};
use wayland_client::{Connection, Dispatch, EventQueue, QueueHandle, delegate_noop};
use wayland_protocols_misc::zwp_virtual_keyboard_v1::client::{
    zwp_virtual_keyboard_manager_v1::ZwpVirtualKeyboardManagerV1,
    zwp_virtual_keyboard_v1::ZwpVirtualKeyboardV1,
};
use wayland_protocols_wlr::virtual_pointer::v1::client::{
    zwlr_virtual_pointer_manager_v1::ZwlrVirtualPointerManagerV1,
    zwlr_virtual_pointer_v1::ZwlrVirtualPointerV1,
};

/// How long opening waits for the compositor's answers: a hung compositor must not
/// hang the stream's control thread, which also serves the client's keep-alives.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Globals {
    /// Roundtrips answered (`wl_display.sync` callbacks done).
    synced: u32,
    /// The first seat.
    pub seat: Option<wl_seat::WlSeat>,
    /// The virtual keyboard manager.
    pub keyboards: Option<ZwpVirtualKeyboardManagerV1>,
    /// The virtual pointer manager.
    pub pointers: Option<ZwlrVirtualPointerManagerV1>,
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

impl Dispatch<wl_callback::WlCallback, ()> for Globals {
    fn event(
        g: &mut Self,
        _: &wl_callback::WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            g.synced += 1;
        }
    }
}

/// A roundtrip that gives up at `deadline`, unlike `EventQueue::roundtrip`.
pub fn roundtrip(
    conn: &Connection,
    queue: &mut EventQueue<Globals>,
    globals: &mut Globals,
    deadline: Instant,
) -> Result<()> {
    let want = globals.synced + 1;
    conn.display().sync(&queue.handle(), ());
    loop {
        queue.dispatch_pending(globals)?;
        if globals.synced >= want {
            return Ok(());
        }
        conn.flush()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the compositor did not answer within {OPEN_TIMEOUT:?}");
        }
        let Some(guard) = queue.prepare_read() else {
            continue;
        };
        let mut pfd = libc::pollfd {
            fd: guard.connection_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, 60_000) as i32) };
        if n > 0 {
            guard.read()?;
        }
    }
}

delegate_noop!(Globals: ignore wl_seat::WlSeat);
delegate_noop!(Globals: ignore ZwpVirtualKeyboardManagerV1);
delegate_noop!(Globals: ignore ZwpVirtualKeyboardV1);
delegate_noop!(Globals: ignore ZwlrVirtualPointerManagerV1);
delegate_noop!(Globals: ignore ZwlrVirtualPointerV1);
