//! punktfunk-painter: a small Wayland client that stands in for a game in session tests.
//!
//! It opens one fullscreen xdg toplevel and paints the host's test pattern (moving
//! colour bars, and the frame barcode: paint time in µs and frame number) with
//! `TestPattern::draw_into`, exactly as the host's own test pattern, so the interop
//! tests' barcode reader works on what a client decodes. A third barcode row (below the
//! two the tests read for timing) carries a hash of the session id, so a test can tell
//! one session's picture from another's.
//!
//! It paints one frame per `wl_surface.frame` callback: at the output's refresh, as a
//! game with vsync would. It follows configure events (a mode change resizes it).
//! `--exit-after SECS --exit-code N` makes it exit by itself, for the app-exit tests.
//! With `$PF_INPUT_LOG` set it reports the input it receives there (see [`input`]).

mod input;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use punktfunk_host::shm::SharedMemory;
use punktfunk_host::source::test_pattern::{CELL, TestPattern};
use wayland_client::protocol::{
    wl_buffer, wl_callback, wl_compositor, wl_registry, wl_seat, wl_shm, wl_shm_pool, wl_surface,
};
use wayland_client::{Connection, Dispatch, QueueHandle, delegate_noop};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

#[derive(Debug, Parser)]
#[command(name = "punktfunk-painter")]
struct Args {
    /// Exit by itself after this many seconds.
    #[arg(long)]
    exit_after: Option<f64>,
    /// The exit code when exiting by itself.
    #[arg(long, default_value_t = 0)]
    exit_code: i32,
    /// The session id to show [default: $PF_SESSION_ID].
    #[arg(long)]
    session_id: Option<String>,
}

/// FNV-1a: a stable 64-bit tag of the session id for the third barcode row.
pub fn session_tag(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Paints `value` as a barcode row `row` (64 cells, most significant bit first).
fn paint_row(pixels: &mut [u8], stride: usize, width: usize, row: usize, value: u64) {
    let cell = CELL as usize;
    for bit in 0..64usize {
        let x0 = bit * cell;
        if x0 + cell > width {
            break;
        }
        let px = if (value >> (63 - bit)) & 1 == 1 {
            255
        } else {
            0
        };
        for y in row * cell..(row + 1) * cell {
            for p in pixels[y * stride + x0 * 4..y * stride + (x0 + cell) * 4].chunks_exact_mut(4) {
                p.copy_from_slice(&[px, px, px, 255]);
            }
        }
    }
}

#[derive(Debug)]
struct Buffer {
    mem: SharedMemory,
    width: u32,
    height: u32,
    buffer: wl_buffer::WlBuffer,
    busy: bool,
}

impl Buffer {
    fn new(
        shm: &wl_shm::WlShm,
        qh: &QueueHandle<App>,
        width: u32,
        height: u32,
        index: usize,
    ) -> Result<Self> {
        let stride = width as usize * 4;
        let len = stride * height as usize;
        let mem = SharedMemory::create(c"punktfunk-painter", len).context("a wl_shm buffer")?;
        let pool = shm.create_pool(mem.fd(), len as i32, qh, ());
        let buffer = pool.create_buffer(
            0,
            width as i32,
            height as i32,
            stride as i32,
            wl_shm::Format::Xrgb8888,
            qh,
            index,
        );
        pool.destroy();
        Ok(Self {
            mem,
            width,
            height,
            buffer,
            busy: false,
        })
    }

    /// The pixels to paint: the compositor reads them only while `busy`, and only
    /// buffers that are not busy are painted.
    fn pixels(&mut self) -> &mut [u8] {
        self.mem.as_mut_slice()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.buffer.destroy();
    }
}

#[derive(Debug, Default)]
struct App {
    compositor: Option<wl_compositor::WlCompositor>,
    shm: Option<wl_shm::WlShm>,
    wm_base: Option<xdg_wm_base::XdgWmBase>,
    size: (u32, u32),
    configured: bool,
    frame_due: bool,
    /// The frame-callback chain that paces painting: a resize paints at once and
    /// starts a new chain, and callbacks of older chains are ignored, so the painter
    /// never paints more than once a refresh.
    chain: u64,
    closed: bool,
    buffers: Vec<Buffer>,
    /// The input report.
    input: input::InputLog,
}

impl Dispatch<wl_registry::WlRegistry, ()> for App {
    fn event(
        app: &mut Self,
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
                "wl_compositor" => app.compositor = Some(registry.bind(name, 4, qh, ())),
                "wl_shm" => app.shm = Some(registry.bind(name, 1, qh, ())),
                "xdg_wm_base" => app.wm_base = Some(registry.bind(name, 1, qh, ())),
                // Version 5: axis sources and discrete scroll steps.
                "wl_seat" => {
                    let _: wl_seat::WlSeat = registry.bind(name, version.min(5), qh, ());
                }
                _ => {}
            }
        }
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for App {
    fn event(
        _: &mut Self,
        base: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            base.pong(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for App {
    fn event(
        app: &mut Self,
        surface: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
            if !app.configured {
                app.frame_due = true;
            }
            app.configured = true;
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for App {
    fn event(
        app: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            xdg_toplevel::Event::Configure { width, height, .. } if width > 0 && height > 0 => {
                let size = (width as u32, height as u32);
                if app.configured && size != app.size {
                    // A mode change: paint the new size now rather than at a frame
                    // callback sway may hold back until a buffer of that size arrives.
                    app.frame_due = true;
                    app.chain += 1;
                }
                app.size = size;
            }
            xdg_toplevel::Event::Close => app.closed = true,
            _ => {}
        }
    }
}

impl Dispatch<wl_callback::WlCallback, u64> for App {
    fn event(
        app: &mut Self,
        _: &wl_callback::WlCallback,
        event: wl_callback::Event,
        chain: &u64,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event
            && *chain == app.chain
        {
            app.frame_due = true;
        }
    }
}

impl Dispatch<wl_buffer::WlBuffer, usize> for App {
    fn event(
        app: &mut Self,
        _: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        index: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event
            && let Some(b) = app.buffers.get_mut(*index)
        {
            b.busy = false;
        }
    }
}

delegate_noop!(App: ignore wl_compositor::WlCompositor);
delegate_noop!(App: ignore wl_shm::WlShm);
delegate_noop!(App: ignore wl_shm_pool::WlShmPool);
delegate_noop!(App: ignore wl_surface::WlSurface);

fn env_size() -> (u32, u32) {
    let get = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (get("PF_WIDTH", 1280), get("PF_HEIGHT", 720))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let session = args
        .session_id
        .clone()
        .or_else(|| std::env::var("PF_SESSION_ID").ok())
        .unwrap_or_default();
    let tag = session_tag(&session);
    let conn = Connection::connect_to_env().context("connecting to the Wayland compositor")?;
    let mut queue = conn.new_event_queue();
    let qh = queue.handle();
    conn.display().get_registry(&qh, ());
    let mut app = App {
        input: input::InputLog::from_env(),
        ..App::default()
    };
    queue.roundtrip(&mut app)?;
    let (Some(compositor), Some(wm_base), Some(shm)) =
        (app.compositor.clone(), app.wm_base.clone(), app.shm.clone())
    else {
        bail!("the compositor lacks wl_compositor, xdg_wm_base or wl_shm");
    };
    let surface = compositor.create_surface(&qh, ());
    let xdg = wm_base.get_xdg_surface(&surface, &qh, ());
    let toplevel = xdg.get_toplevel(&qh, ());
    toplevel.set_title("punktfunk painter".into());
    toplevel.set_app_id("punktfunk-painter".into());
    toplevel.set_fullscreen(None);
    surface.commit();

    let started = Instant::now();
    let exit_at = args
        .exit_after
        .map(|s| started + Duration::from_secs_f64(s));
    let mut pattern: Option<TestPattern> = None;
    let mut number: u64 = 0;
    eprintln!("punktfunk-painter: session {session:?} (tag {tag:#018x})");
    while !app.closed {
        if exit_at.is_some_and(|t| Instant::now() >= t) {
            eprintln!(
                "punktfunk-painter: exiting by itself with code {} after {number} frames",
                args.exit_code
            );
            std::process::exit(args.exit_code);
        }
        queue.blocking_dispatch(&mut app)?;
        if !app.configured || !app.frame_due {
            continue;
        }
        let (w, h) = if app.size.0 > 0 { app.size } else { env_size() };
        if pattern.as_ref().is_none_or(|_| {
            app.buffers
                .first()
                .is_some_and(|b| (b.width, b.height) != (w, h))
        }) {
            app.buffers.clear();
            pattern = Some(TestPattern::new(w, h));
        }
        let idx = match app.buffers.iter().position(|b| !b.busy) {
            Some(i) => i,
            None if app.buffers.len() < 4 => {
                let i = app.buffers.len();
                app.buffers.push(Buffer::new(&shm, &qh, w, h, i)?);
                i
            }
            None => continue, // all four held by the compositor: wait for a release
        };
        number += 1;
        let unix_us = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as u64;
        let buf = &mut app.buffers[idx];
        let stride = w as usize * 4;
        let pixels = buf.pixels();
        pattern
            .as_ref()
            .expect("made above")
            .draw_into(number, unix_us, pixels, stride);
        if h as usize >= 3 * CELL as usize {
            paint_row(pixels, stride, w as usize, 2, tag);
        }
        buf.busy = true;
        surface.attach(Some(&buf.buffer), 0, 0);
        surface.damage_buffer(0, 0, w as i32, h as i32);
        surface.frame(&qh, app.chain);
        surface.commit();
        app.frame_due = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tags_differ_and_rows_read_back() {
        assert_ne!(session_tag("1-1"), session_tag("1-2"));
        let (w, h) = (1280usize, 64usize);
        let mut px = vec![0u8; w * 4 * h];
        paint_row(&mut px, w * 4, w, 2, 0x8000_0000_0000_0001);
        let y = 2 * CELL as usize + 8;
        assert_eq!(px[y * w * 4 + 8 * 4 + 1], 255, "first cell is 1");
        assert_eq!(px[y * w * 4 + (16 + 8) * 4 + 1], 0, "second cell is 0");
        assert_eq!(px[y * w * 4 + (63 * 16 + 8) * 4 + 1], 255, "last cell is 1");
    }
}
