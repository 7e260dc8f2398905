//! `pf-pw-producer`: a PipeWire Video/Source node that paints punktfunk's colour bars
//! and frame barcode, standing in for gamescope's node in tests and benchmarks.
//!
//! It drives its own graph (a DRIVER node, a timer calling `trigger_process` at the
//! frame rate), publishes BGRx in MemFd buffers it allocates itself, and paints with
//! the host's own `TestPattern::draw_into`, so a client can check every pixel.
//! Options reproduce what real compositors get wrong: `--lie-maxsize` announces a
//! `maxsize` larger than the memfd (a known compositor bug that crashes consumers
//! trusting it), `--stop-after-frames` leaves mid-stream (the node goes away), and
//! `--resize-after-frames N --resize WxH` changes mode mid-stream (a renegotiation, as
//! gamescope does when the game changes resolution).
//!
//! Prints `node <id> <name>` once the node exists and `streaming` once a consumer
//! is linked; exits 0 after a clean stop (SIGTERM, SIGINT, or the frame limit).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use pipewire as pw;
use punktfunk_host::source::test_pattern::TestPattern;
use pw::spa;
use pw::spa::pod::{ChoiceValue, Object, Pod, Property, Value};
use pw::spa::sys as spa_sys;
use pw::spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle};
use pw::stream::{StreamFlags, StreamState};

mod nv12;

#[derive(Debug, Parser)]
#[command(
    name = "pf-pw-producer",
    about = "A PipeWire Video/Source painting colour bars and a frame barcode"
)]
struct Args {
    /// The node's name (what `--source pipewire:<name>` selects).
    #[arg(long, default_value = "pf-producer")]
    name: String,
    /// Width in pixels.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Frames a second.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Announce a maxsize larger than the memfd holds (by this many bytes).
    #[arg(long, value_name = "BYTES")]
    lie_maxsize: Option<u32>,
    /// Leave after this many frames: the node goes away mid-stream.
    #[arg(long, value_name = "N")]
    stop_after_frames: Option<u64>,
    /// Change to the `--resize` mode after this many frames (a renegotiation).
    #[arg(long, value_name = "N", requires = "resize")]
    resize_after_frames: Option<u64>,
    /// The mode to change to, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", value_parser = parse_mode)]
    resize: Option<(u32, u32)>,
    /// Buffers to allocate.
    #[arg(long, default_value_t = 4)]
    buffers: u32,
    /// Offer NV12 first (with a choice of matrix and range, as gamescope does), then
    /// BGRx; paint whichever the consumer picks.
    #[arg(long)]
    nv12: bool,
}

fn parse_mode(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("WIDTHxHEIGHT")?;
    Ok((
        w.parse().map_err(|_| "bad width")?,
        h.parse().map_err(|_| "bad height")?,
    ))
}

/// One memfd buffer, mapped for painting; kept in `pw_buffer.user_data`.
struct Memfd {
    fd: libc::c_int,
    ptr: *mut u8,
    len: usize,
}

fn serialize(value: Value) -> Result<Vec<u8>> {
    Ok(
        spa::pod::serialize::PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &value)
            .map_err(|e| anyhow::anyhow!("serializing a pod: {e:?}"))?
            .0
            .into_inner(),
    )
}

fn format_param(args: &Args, (width, height): (u32, u32)) -> Value {
    video_format(
        spa::param::video::VideoFormat::BGRx,
        width,
        height,
        args.fps,
    )
}

/// An EnumFormat of raw video in `format`, `width` x `height` at `fps`.
fn video_format(
    format: spa::param::video::VideoFormat,
    width: u32,
    height: u32,
    fps: u32,
) -> Value {
    use spa::param::format::{FormatProperties as F, MediaSubtype, MediaType};
    let prop = |key: F, value: Value| Property::new(key.as_raw(), value);
    Value::Object(Object {
        type_: spa_sys::SPA_TYPE_OBJECT_Format,
        id: spa_sys::SPA_PARAM_EnumFormat,
        properties: vec![
            prop(F::MediaType, Value::Id(Id(MediaType::Video.as_raw()))),
            prop(F::MediaSubtype, Value::Id(Id(MediaSubtype::Raw.as_raw()))),
            prop(F::VideoFormat, Value::Id(Id(format.as_raw()))),
            prop(F::VideoSize, Value::Rectangle(Rectangle { width, height })),
            prop(
                F::VideoFramerate,
                Value::Fraction(Fraction { num: fps, denom: 1 }),
            ),
        ],
    })
}

/// The EnumFormat pods for `mode`: NV12 first with `--nv12`, then BGRx.
fn format_pods(args: &Args, mode: (u32, u32)) -> Result<Vec<Vec<u8>>> {
    let mut pods = Vec::new();
    if args.nv12 {
        pods.push(serialize(nv12::format_param(mode.0, mode.1, args.fps))?);
    }
    pods.push(serialize(format_param(args, mode))?);
    Ok(pods)
}

fn buffers_param(count: u32, size: u32, stride: u32) -> Value {
    let int = |v: u32| Value::Int(v as i32);
    Value::Object(Object {
        type_: spa_sys::SPA_TYPE_OBJECT_ParamBuffers,
        id: spa_sys::SPA_PARAM_Buffers,
        properties: vec![
            Property::new(
                spa_sys::SPA_PARAM_BUFFERS_buffers,
                Value::Choice(ChoiceValue::Int(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Range {
                        default: count as i32,
                        min: 2,
                        max: 16,
                    },
                ))),
            ),
            Property::new(spa_sys::SPA_PARAM_BUFFERS_blocks, int(1)),
            Property::new(spa_sys::SPA_PARAM_BUFFERS_size, int(size)),
            Property::new(spa_sys::SPA_PARAM_BUFFERS_stride, int(stride)),
            Property::new(
                spa_sys::SPA_PARAM_BUFFERS_dataType,
                Value::Choice(ChoiceValue::Int(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Flags {
                        default: 1 << spa_sys::SPA_DATA_MemFd,
                        flags: vec![],
                    },
                ))),
            ),
        ],
    })
}

/// Creates, sizes and maps one memfd buffer and describes it in the buffer's data.
///
/// # Safety
/// `buffer` must be a live `pw_buffer` just added to our stream, with one data.
unsafe fn add_buffer(buffer: *mut pw::sys::pw_buffer, size: usize, lie: Option<u32>) -> Result<()> {
    // SAFETY: per the caller.
    let data = unsafe {
        let spa = (*buffer).buffer;
        if spa.is_null() || (*spa).n_datas < 1 {
            bail!("a buffer without data");
        }
        &mut *(*spa).datas
    };
    // SAFETY: plain syscalls on a descriptor we create here; the mapping is released
    // in remove_buffer.
    unsafe {
        let fd = libc::memfd_create(c"pf-pw-producer".as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            bail!("memfd_create: {}", std::io::Error::last_os_error());
        }
        if libc::ftruncate(fd, size as libc::off_t) != 0 {
            libc::close(fd);
            bail!("ftruncate: {}", std::io::Error::last_os_error());
        }
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        if ptr == libc::MAP_FAILED {
            libc::close(fd);
            bail!("mmap: {}", std::io::Error::last_os_error());
        }
        data.type_ = spa_sys::SPA_DATA_MemFd;
        data.flags = spa_sys::SPA_DATA_FLAG_READWRITE;
        data.fd = i64::from(fd);
        data.mapoffset = 0;
        // The lie: a consumer that maps `maxsize` bytes and reads them dies of SIGBUS
        // past the end of the file.
        data.maxsize = size as u32 + lie.unwrap_or(0);
        data.data = ptr;
        (*buffer).user_data = Box::into_raw(Box::new(Memfd {
            fd,
            ptr: ptr.cast(),
            len: size,
        }))
        .cast();
    }
    Ok(())
}

/// Releases what [`add_buffer`] made.
///
/// # Safety
/// `buffer` must be a live `pw_buffer` of our stream being removed.
unsafe fn remove_buffer(buffer: *mut pw::sys::pw_buffer) {
    // SAFETY: user_data is null or our Box; each buffer is removed once.
    unsafe {
        let m = (*buffer).user_data.cast::<Memfd>();
        (*buffer).user_data = std::ptr::null_mut();
        if !m.is_null() {
            let m = Box::from_raw(m);
            libc::munmap(m.ptr.cast(), m.len);
            libc::close(m.fd);
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.width == 0 || args.height == 0 || args.fps == 0 {
        bail!("width, height and fps must be positive");
    }
    pw::init();
    let main_loop = pw::main_loop::MainLoopRc::new(None).context("creating the loop")?;
    let context = pw::context::ContextRc::new(&main_loop, None).context("creating a context")?;
    let core = context
        .connect_rc(None)
        .context("connecting to PipeWire (is a session running in XDG_RUNTIME_DIR?)")?;
    let mut props = pw::properties::PropertiesBox::new();
    props.insert(*pw::keys::MEDIA_CLASS, "Video/Source");
    props.insert(*pw::keys::NODE_NAME, args.name.as_str());
    props.insert(*pw::keys::NODE_DESCRIPTION, "punktfunk test producer");
    props.insert(*pw::keys::MEDIA_TYPE, "Video");
    props.insert(*pw::keys::MEDIA_CATEGORY, "Source");
    props.insert(*pw::keys::MEDIA_ROLE, "Screen");
    let stream = pw::stream::StreamRc::new(core.clone(), &args.name, props)
        .context("creating the stream")?;

    // The current mode and its pattern: changed by a renegotiation.
    let mode = Rc::new(Cell::new((args.width, args.height)));
    let pattern = Rc::new(RefCell::new(TestPattern::new(args.width, args.height)));
    // Set while NV12 is the negotiated format.
    let nv12_pattern: Rc<RefCell<Option<punktfunk_host::source::test_pattern::Nv12Pattern>>> =
        Rc::default();
    let frames = Rc::new(Cell::new(0u64));
    let streaming = Rc::new(Cell::new(false));
    let failure: Rc<RefCell<Option<String>>> = Rc::default();
    let lie = args.lie_maxsize;
    let buffer_count = args.buffers;

    let _listener = {
        let (frames, streaming, failure) = (frames.clone(), streaming.clone(), failure.clone());
        let (on_format, on_add, on_process) = (mode.clone(), mode.clone(), mode.clone());
        let on_format_pattern = pattern.clone();
        let (on_format_nv12, on_process_nv12) = (nv12_pattern.clone(), nv12_pattern.clone());
        let quit = main_loop.downgrade();
        let on_state_quit = main_loop.downgrade();
        let stop_after = args.stop_after_frames;
        let printed_node = Cell::new(false);
        stream
            .add_local_listener::<()>()
            .state_changed(move |stream, _, _, new| {
                if !printed_node.get() && stream.node_id() != pw::constants::ID_ANY {
                    printed_node.set(true);
                    println!("node {} {}", stream.node_id(), stream.name());
                }
                match new {
                    StreamState::Streaming => {
                        streaming.set(true);
                        println!("streaming");
                    }
                    StreamState::Error(e) => {
                        *failure.borrow_mut() = Some(e);
                        if let Some(l) = on_state_quit.upgrade() {
                            l.quit();
                        }
                    }
                    _ => streaming.set(false),
                }
            })
            .param_changed(move |stream, _, id, param| {
                if id != spa::param::ParamType::Format.as_raw() {
                    return;
                }
                let Some(param) = param else { return };
                let mut info = spa::param::video::VideoInfoRaw::default();
                if info.parse(param).is_err() {
                    return;
                }
                let (w, h) = (info.size().width, info.size().height);
                if on_format.get() != (w, h) {
                    on_format.set((w, h));
                    *on_format_pattern.borrow_mut() = TestPattern::new(w, h);
                }
                let (size, stride) = if info.format() == spa::param::video::VideoFormat::NV12 {
                    println!(
                        "negotiated NV12 matrix {} range {}",
                        info.color_matrix(),
                        info.color_range()
                    );
                    *on_format_nv12.borrow_mut() = Some(nv12::pattern_for(&info));
                    (nv12::picture_len(w, h), w)
                } else {
                    *on_format_nv12.borrow_mut() = None;
                    (w * 4 * h, w * 4)
                };
                let Ok(buffers) = serialize(buffers_param(buffer_count, size, stride)) else {
                    return;
                };
                if let Some(pod) = Pod::from_bytes(&buffers)
                    && let Err(e) = stream.update_params(&mut [pod])
                {
                    eprintln!("pf-pw-producer: buffer parameters refused: {e}");
                }
            })
            .add_buffer(move |_, _, buffer| {
                // SAFETY: PipeWire hands us a buffer of our stream to fill in.
                let (w, h) = on_add.get();
                if let Err(e) = unsafe { add_buffer(buffer, (w * 4 * h) as usize, lie) } {
                    eprintln!("pf-pw-producer: {e:#}");
                }
            })
            .remove_buffer(|_, _, buffer| {
                // SAFETY: as above; removed once.
                unsafe { remove_buffer(buffer) };
            })
            .process(move |stream, _| {
                // SAFETY: a dequeued buffer is ours until queued back below.
                let buffer = unsafe { stream.dequeue_raw_buffer() };
                if buffer.is_null() {
                    return;
                }
                // SAFETY: our buffer; user_data is the Memfd made in add_buffer.
                unsafe {
                    let spa = (*buffer).buffer;
                    let memfd = (*buffer).user_data.cast::<Memfd>();
                    if !memfd.is_null() && (*spa).n_datas >= 1 {
                        let m = &*memfd;
                        let n = frames.get() + 1;
                        frames.set(n);
                        let unix_us = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros() as u64);
                        let pixels = std::slice::from_raw_parts_mut(m.ptr, m.len);
                        let (w, h) = on_process.get();
                        let chunk = &mut *(*(*spa).datas).chunk;
                        if let Some(nv) = on_process_nv12.borrow_mut().as_mut() {
                            let len = nv12::picture_len(w, h);
                            if m.len >= len as usize {
                                nv12::paint(nv, n, unix_us, pixels);
                                chunk.offset = 0;
                                chunk.size = len;
                                chunk.stride = w as i32;
                                chunk.flags = 0;
                            }
                            stream.queue_raw_buffer(buffer);
                            return;
                        }
                        let stride = w * 4;
                        if m.len < (stride * h) as usize {
                            // A buffer of the old mode, before the new ones arrive.
                            stream.queue_raw_buffer(buffer);
                            return;
                        }
                        pattern
                            .borrow()
                            .draw_into(n, unix_us, pixels, stride as usize);
                        chunk.offset = 0;
                        chunk.size = stride * h;
                        chunk.stride = stride as i32;
                        chunk.flags = 0;
                        if stop_after.is_some_and(|limit| n >= limit)
                            && let Some(l) = quit.upgrade()
                        {
                            l.quit();
                        }
                    }
                    stream.queue_raw_buffer(buffer);
                }
            })
            .register()
            .context("listening to the stream")?
    };

    let formats = format_pods(&args, (args.width, args.height))?;
    let mut params: Vec<&Pod> = formats
        .iter()
        .map(|f| Pod::from_bytes(f).context("a format pod"))
        .collect::<Result<_>>()?;
    stream
        .connect(
            spa::utils::Direction::Output,
            None,
            StreamFlags::DRIVER | StreamFlags::ALLOC_BUFFERS,
            &mut params,
        )
        .context("connecting the stream")?;

    // The clock of this little graph: one process cycle per frame while a consumer is
    // linked.
    let resize = args.resize_after_frames.zip(args.resize);
    let resize_format = match resize {
        Some((_, mode)) => Some(format_pods(&args, mode)?),
        None => None,
    };
    let resized = Cell::new(false);
    let timer = {
        let stream = stream.clone();
        let streaming = streaming.clone();
        let frames = frames.clone();
        main_loop.loop_().add_timer(move |_| {
            if let (Some((after, (w, h))), Some(pods)) = (resize, &resize_format)
                && !resized.get()
                && frames.get() >= after
            {
                resized.set(true);
                eprintln!("pf-pw-producer: changing to {w}x{h}");
                let mut pods: Vec<&Pod> = pods.iter().filter_map(|b| Pod::from_bytes(b)).collect();
                if let Err(e) = stream.update_params(&mut pods) {
                    eprintln!("pf-pw-producer: the new mode was refused: {e}");
                }
            }
            if streaming.get() {
                let _ = stream.trigger_process();
            }
        })
    };
    let interval = Duration::from_secs(1) / args.fps;
    let _ = timer.update_timer(Some(interval), Some(interval));
    let quit_on = |signal| {
        let l = main_loop.downgrade();
        main_loop.loop_().add_signal_local(signal, move || {
            if let Some(l) = l.upgrade() {
                l.quit();
            }
        })
    };
    let _term = quit_on(pw::loop_::Signal::TERM);
    let _int = quit_on(pw::loop_::Signal::INT);
    main_loop.run();

    let _ = stream.disconnect();
    eprintln!("pf-pw-producer: stopped after {} frames", frames.get());
    if let Some(e) = failure.borrow_mut().take() {
        bail!("the stream failed: {e}");
    }
    Ok(())
}
