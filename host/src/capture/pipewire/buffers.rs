//! PipeWire buffers: the formats and buffer types offered, mapping MemFd memory by
//! its real size, and turning a dequeued buffer into a [`Frame`] that borrows it.

use std::os::fd::BorrowedFd;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pipewire as pw;
use pw::spa;
use pw::spa::pod::{ChoiceValue, Object, Pod, Property, Value};
use pw::spa::sys as spa_sys;
use pw::spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle};
use spa::param::video::VideoFormat;

use super::pixel_format_of;
use crate::capture::{CpuFrame, DmaBufFrame, DmaBufPlane, Frame, PixelFormat, Pixels, Plane};

/// The formats offered, preferred first: the packed RGB layouts compositors render
/// to, then NV12 (what some hardware paths and cameras give).
pub const FORMATS: [VideoFormat; 4] = [
    VideoFormat::BGRx,
    VideoFormat::RGBx,
    VideoFormat::BGRA,
    VideoFormat::NV12,
];

/// `DRM_FORMAT_MOD_INVALID`: the modifier of a DMA-BUF whose format named none.
const MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;

/// The format both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The layout.
    pub format: PixelFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame rate (0/1 is variable: frames come when something changed).
    pub framerate: (u32, u32),
    /// The DMA-BUF modifier, where the format carried one.
    pub modifier: Option<u64>,
    /// SPA colour matrix and range (`SPA_VIDEO_COLOR_MATRIX_*`, `SPA_VIDEO_COLOR_RANGE_*`)
    /// the format names; 0 (unknown) where it names none.
    pub colour: (u32, u32),
}

/// The SPA colour matrix and range of `m`, for the ones a producer can be asked for
/// (BT.601, BT.709, BT.2020, either range).
pub fn spa_colour_of(m: &punktfunk_yuv::Matrix) -> Option<(u32, u32)> {
    use punktfunk_yuv::Matrix;
    [false, true].into_iter().find_map(|full| {
        let range = if full {
            spa_sys::SPA_VIDEO_COLOR_RANGE_0_255
        } else {
            spa_sys::SPA_VIDEO_COLOR_RANGE_16_235
        };
        [
            (Matrix::bt601(full), spa_sys::SPA_VIDEO_COLOR_MATRIX_BT601),
            (Matrix::bt709(full), spa_sys::SPA_VIDEO_COLOR_MATRIX_BT709),
            (Matrix::bt2020(full), spa_sys::SPA_VIDEO_COLOR_MATRIX_BT2020),
        ]
        .into_iter()
        .find(|(candidate, _)| candidate == m)
        .map(|(_, matrix)| (matrix, range))
    })
}

/// One EnumFormat parameter: raw video in `format`, any size, any rate (variable
/// included).
pub fn enum_format(format: VideoFormat) -> Value {
    enum_format_in(format, None)
}

/// [`enum_format`] with the colour matrix and range fixed to `colour` (SPA ids): how
/// a YUV format is asked for in the encoder's own matrix, so the picture needs no
/// conversion (gamescope offers NV12 in BT.601 or BT.709, either range).
pub fn enum_format_in(format: VideoFormat, colour: Option<(u32, u32)>) -> Value {
    use spa::param::format::FormatProperties as F;
    let prop = |key: F, value: Value| Property::new(key.as_raw(), value);
    let mut object = enum_format_object(format);
    if let (Value::Object(o), Some((matrix, range))) = (&mut object, colour) {
        o.properties
            .push(prop(F::VideoColorMatrix, Value::Id(Id(matrix))));
        o.properties
            .push(prop(F::VideoColorRange, Value::Id(Id(range))));
    }
    object
}

fn enum_format_object(format: VideoFormat) -> Value {
    use spa::param::format::{FormatProperties as F, MediaSubtype, MediaType};
    let prop = |key: F, value: Value| Property::new(key.as_raw(), value);
    Value::Object(Object {
        type_: spa_sys::SPA_TYPE_OBJECT_Format,
        id: spa_sys::SPA_PARAM_EnumFormat,
        properties: vec![
            prop(F::MediaType, Value::Id(Id(MediaType::Video.as_raw()))),
            prop(F::MediaSubtype, Value::Id(Id(MediaSubtype::Raw.as_raw()))),
            prop(F::VideoFormat, Value::Id(Id(format.as_raw()))),
            prop(
                F::VideoSize,
                Value::Choice(ChoiceValue::Rectangle(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Range {
                        default: Rectangle {
                            width: 1920,
                            height: 1080,
                        },
                        min: Rectangle {
                            width: 1,
                            height: 1,
                        },
                        max: Rectangle {
                            width: 16384,
                            height: 16384,
                        },
                    },
                ))),
            ),
            prop(
                F::VideoFramerate,
                Value::Choice(ChoiceValue::Fraction(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Range {
                        default: Fraction { num: 60, denom: 1 },
                        min: Fraction { num: 0, denom: 1 },
                        max: Fraction {
                            num: 1000,
                            denom: 1,
                        },
                    },
                ))),
            ),
        ],
    })
}

/// The Buffers parameter: the buffer types we take (MemFd, MemPtr, DmaBuf).
pub fn buffers_param() -> Value {
    let types = (1 << spa_sys::SPA_DATA_MemFd)
        | (1 << spa_sys::SPA_DATA_MemPtr)
        | (1 << spa_sys::SPA_DATA_DmaBuf);
    Value::Object(Object {
        type_: spa_sys::SPA_TYPE_OBJECT_ParamBuffers,
        id: spa_sys::SPA_PARAM_Buffers,
        properties: vec![Property::new(
            spa_sys::SPA_PARAM_BUFFERS_dataType,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Flags {
                    default: types,
                    flags: vec![],
                },
            ))),
        )],
    })
}

/// Reads the negotiated format.
pub fn parse_format(param: &Pod) -> Result<Negotiated, String> {
    let mut info = spa::param::video::VideoInfoRaw::default();
    info.parse(param)
        .map_err(|e| format!("unreadable video format: {e}"))?;
    let format = pixel_format_of(info.format())
        .ok_or_else(|| format!("{:?} is not BGRx, RGBx, BGRA or NV12", info.format()))?;
    let size = info.size();
    if size.width == 0 || size.height == 0 {
        return Err(format!("an empty {}x{} picture", size.width, size.height));
    }
    let modifier =
        (info.flags().bits() & spa_sys::SPA_VIDEO_FLAG_MODIFIER != 0).then(|| info.modifier());
    let rate = info.framerate();
    Ok(Negotiated {
        format,
        width: size.width,
        height: size.height,
        framerate: (rate.num, rate.denom),
        modifier,
        colour: (info.color_matrix(), info.color_range()),
    })
}

/// A read-only mapping of a whole MemFd, as long as the file really is.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

/// The mappings of one buffer's datas, kept in `pw_buffer.user_data`.
#[derive(Debug, Default)]
struct Maps(Vec<Option<Mapping>>);

/// The datas of a buffer.
///
/// # Safety
/// `buffer` must be a live `pw_buffer`.
unsafe fn datas<'b>(buffer: *mut pw::sys::pw_buffer) -> &'b [spa_sys::spa_data] {
    // SAFETY: the caller vouches for the pw_buffer; its spa_buffer lists n_datas datas.
    unsafe {
        let spa = (*buffer).buffer;
        if spa.is_null() || (*spa).datas.is_null() {
            return &[];
        }
        std::slice::from_raw_parts((*spa).datas, (*spa).n_datas as usize)
    }
}

/// Maps every MemFd data of a newly added buffer, sized by `fstat`. Returns the
/// (maxsize, file size) of a data that claims more than its fd holds, if one does.
///
/// # Safety
/// `buffer` must be a live `pw_buffer` whose `user_data` we do not use otherwise.
pub unsafe fn map_buffer(buffer: *mut pw::sys::pw_buffer) -> Option<(u64, usize)> {
    let mut maps = Maps::default();
    let mut overclaim = None;
    // SAFETY: per the caller.
    for d in unsafe { datas(buffer) } {
        let mapping = if d.type_ == spa_sys::SPA_DATA_MemFd && d.fd >= 0 {
            match map_fd(d.fd as libc::c_int) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!("cannot map a PipeWire buffer: {e}");
                    None
                }
            }
        } else {
            None
        };
        if let Some(m) = &mapping {
            let claimed = u64::from(d.mapoffset) + u64::from(d.maxsize);
            if claimed > m.len as u64 {
                overclaim = Some((claimed, m.len));
            }
        }
        maps.0.push(mapping);
    }
    // SAFETY: per the caller; freed in unmap_buffer.
    unsafe { (*buffer).user_data = Box::into_raw(Box::new(maps)).cast() };
    overclaim
}

/// Releases what [`map_buffer`] mapped.
///
/// # Safety
/// `buffer` must be a live `pw_buffer` passed to [`map_buffer`] before, and not used
/// by a frame any more.
pub unsafe fn unmap_buffer(buffer: *mut pw::sys::pw_buffer) {
    // SAFETY: per the caller; user_data is null or our Box.
    unsafe {
        let maps = (*buffer).user_data.cast::<Maps>();
        (*buffer).user_data = std::ptr::null_mut();
        if maps.is_null() {
            return;
        }
        for m in Box::from_raw(maps).0.into_iter().flatten() {
            libc::munmap(m.ptr.cast(), m.len);
        }
    }
}

fn map_fd(fd: libc::c_int) -> Result<Mapping, String> {
    // SAFETY: fstat into a zeroed struct, on a descriptor PipeWire owns and keeps open
    // while the buffer exists.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(format!("fstat: {}", std::io::Error::last_os_error()));
    }
    let len = usize::try_from(st.st_size).unwrap_or(0);
    if len == 0 {
        return Err("the buffer's fd is empty".into());
    }
    // SAFETY: a fresh read-only shared mapping of exactly the file's size.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    Ok(Mapping {
        ptr: ptr.cast(),
        len,
    })
}

/// A plane's memory: a pointer, how many bytes are readable from it, the stride.
#[derive(Debug, Clone, Copy)]
struct RawPlane {
    ptr: *const u8,
    len: usize,
    stride: usize,
}

#[derive(Debug, Clone, Copy)]
enum RawPixels {
    Cpu(PixelFormat, [Option<RawPlane>; 2]),
    DmaBuf(u32, u64, [Option<(i32, u32, u32)>; 4]),
}

/// A dequeued buffer lent to the encoder as a frame.
#[derive(Debug)]
pub struct Lent {
    /// The buffer, queued back when the capture takes the next one.
    pub buffer: *mut pw::sys::pw_buffer,
    width: u32,
    height: u32,
    at: Instant,
    unix_us: u64,
    pixels: RawPixels,
}

/// The bytes of data `d` (index `i` of `buffer`) readable from its chunk's offset on:
/// for MemFd within our fstat-sized mapping, for MemPtr within its maxsize (memory
/// libpipewire mapped itself).
///
/// # Safety
/// `buffer` must be live and mapped by [`map_buffer`].
unsafe fn cpu_bytes(
    buffer: *mut pw::sys::pw_buffer,
    i: usize,
    d: &spa_sys::spa_data,
) -> Result<(*const u8, usize), String> {
    // SAFETY: the chunk pointer of a live buffer's data.
    let chunk = unsafe { d.chunk.as_ref() }.ok_or("a data without a chunk")?;
    let (base, len) = match d.type_ {
        spa_sys::SPA_DATA_MemFd => {
            // SAFETY: user_data is our Maps (per the caller).
            let maps = unsafe { (*buffer).user_data.cast::<Maps>().as_ref() }
                .ok_or("an unmapped buffer")?;
            let m = maps
                .0
                .get(i)
                .and_then(Option::as_ref)
                .ok_or("an unmapped MemFd")?;
            let start = (d.mapoffset as usize).min(m.len);
            let end = (d.mapoffset as usize)
                .saturating_add(d.maxsize as usize)
                .min(m.len);
            // SAFETY: start <= m.len, inside the mapping.
            (unsafe { m.ptr.add(start) }.cast_const(), end - start)
        }
        spa_sys::SPA_DATA_MemPtr => {
            if d.data.is_null() {
                return Err("a MemPtr data without memory".into());
            }
            (d.data.cast::<u8>().cast_const(), d.maxsize as usize)
        }
        other => return Err(format!("data type {other} is not CPU memory")),
    };
    let offset = (chunk.offset as usize).min(len);
    // SAFETY: offset <= len, inside the region.
    Ok((unsafe { base.add(offset) }, len - offset))
}

/// Describes a dequeued buffer as a frame of `format`. `Ok(None)` for a buffer with
/// no picture (an empty or corrupted chunk: the producer had nothing new).
///
/// # Safety
/// `buffer` must have been dequeued from the stream and not queued back.
pub unsafe fn lend(
    buffer: *mut pw::sys::pw_buffer,
    format: &Negotiated,
    at: Instant,
) -> Result<Option<Lent>, String> {
    // SAFETY: per the caller.
    let ds = unsafe { datas(buffer) };
    let d0 = ds.first().ok_or("a buffer without data")?;
    // SAFETY: the chunk pointer of a live buffer's data.
    let c0 = unsafe { d0.chunk.as_ref() }.ok_or("a data without a chunk")?;
    if c0.flags & spa_sys::SPA_CHUNK_FLAG_CORRUPTED as i32 != 0 {
        return Ok(None);
    }
    let (w, h) = (format.width as usize, format.height as usize);
    let default_stride = match format.format {
        PixelFormat::Nv12 => w,
        _ => w * 4,
    };
    let stride_of = |c: &spa_sys::spa_chunk| {
        usize::try_from(c.stride)
            .ok()
            .filter(|s| *s > 0)
            .unwrap_or(default_stride)
    };
    let pixels = if d0.type_ == spa_sys::SPA_DATA_DmaBuf {
        let mut planes = [None; 4];
        for (slot, d) in planes.iter_mut().zip(ds) {
            // SAFETY: as above.
            let c = unsafe { d.chunk.as_ref() }.ok_or("a data without a chunk")?;
            *slot = Some((d.fd as i32, c.offset, stride_of(c) as u32));
        }
        RawPixels::DmaBuf(
            format.format.drm_fourcc(),
            format.modifier.unwrap_or(MOD_INVALID),
            planes,
        )
    } else {
        if c0.size == 0 {
            return Ok(None);
        }
        // SAFETY: per the caller (mapped in add_buffer).
        let (p0, len0) = unsafe { cpu_bytes(buffer, 0, d0) }?;
        let y = RawPlane {
            ptr: p0,
            len: len0,
            stride: stride_of(c0),
        };
        let uv = match (format.format, ds.get(1)) {
            (PixelFormat::Nv12, Some(d1)) => {
                // SAFETY: as above.
                let (p1, len1) = unsafe { cpu_bytes(buffer, 1, d1) }?;
                // SAFETY: as above.
                let c1 = unsafe { d1.chunk.as_ref() }.ok_or("a data without a chunk")?;
                Some(RawPlane {
                    ptr: p1,
                    len: len1,
                    stride: stride_of(c1),
                })
            }
            (PixelFormat::Nv12, None) => {
                // Both planes in one data: UV right after h rows of Y.
                let skip = (y.stride * h).min(y.len);
                Some(RawPlane {
                    // SAFETY: skip <= len, inside the region.
                    ptr: unsafe { y.ptr.add(skip) },
                    len: y.len - skip,
                    stride: y.stride,
                })
            }
            _ => None,
        };
        RawPixels::Cpu(format.format, [Some(y), uv])
    };
    Ok(Some(Lent {
        buffer,
        width: format.width,
        height: format.height,
        at,
        unix_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
        pixels,
    }))
}

impl Lent {
    /// The frame, borrowing the buffer's memory.
    ///
    /// # Safety
    /// The buffer must stay dequeued and mapped for the frame's lifetime `'a`.
    pub unsafe fn frame<'a>(&'a self) -> Frame<'a> {
        let pixels = match self.pixels {
            RawPixels::Cpu(format, planes) => {
                let plane = |p: Option<RawPlane>| {
                    p.map_or(Plane::EMPTY, |p| Plane {
                        // SAFETY: `len` bytes from `ptr` are inside a live mapping
                        // (or libpipewire's MemPtr memory) for `'a`, per the caller.
                        data: unsafe { std::slice::from_raw_parts(p.ptr, p.len) },
                        stride: p.stride,
                    })
                };
                Pixels::Cpu(CpuFrame {
                    format,
                    planes: [plane(planes[0]), plane(planes[1])],
                })
            }
            RawPixels::DmaBuf(fourcc, modifier, planes) => Pixels::DmaBuf(DmaBufFrame {
                fourcc,
                modifier,
                planes: planes.map(|p| {
                    p.filter(|(fd, _, _)| *fd >= 0)
                        .map(|(fd, offset, stride)| DmaBufPlane {
                            // SAFETY: PipeWire keeps the buffer's fds open while it exists,
                            // which outlives `'a` per the caller.
                            fd: unsafe { BorrowedFd::borrow_raw(fd) },
                            offset,
                            stride,
                        })
                }),
            }),
        };
        Frame {
            width: self.width,
            height: self.height,
            captured_at: self.at,
            captured_unix_us: self.unix_us,
            pixels,
        }
    }
}

#[cfg(test)]
#[path = "buffers_tests.rs"]
mod tests;
