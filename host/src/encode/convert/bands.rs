//! Splits an encoder picture's 4:2:0 planes into horizontal bands that convert at
//! once, one on the converter's helper thread: the one place that turns the picture's
//! plane pointers into disjoint row slices, for the 8-bit converter (`u8` samples:
//! NV12, YUV420P) and the 10-bit one (`u16` samples: P010, YUV420P10LE) alike.

use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use crate::encode::slices::SliceWorker;

/// A picture sample: `u8` for 8-bit layouts, `u16` (little-endian) for 10-bit ones.
pub(crate) trait Sample: Copy + Send + Sync + 'static {
    /// Whether `format` is a 4:2:0 layout of this sample, and its chroma interleaved
    /// (NV12, P010) rather than planar; `None` for any other format.
    fn layout(format: Pixel) -> Option<bool>;
}

impl Sample for u8 {
    fn layout(format: Pixel) -> Option<bool> {
        match format {
            Pixel::NV12 => Some(true),
            Pixel::YUV420P => Some(false),
            _ => None,
        }
    }
}

impl Sample for u16 {
    fn layout(format: Pixel) -> Option<bool> {
        match format {
            Pixel::P010LE => Some(true),
            Pixel::YUV420P10LE => Some(false),
            _ => None,
        }
    }
}

/// One band's chroma rows.
pub(crate) enum BandChroma<'a, T> {
    /// U and V interleaved in one plane (NV12, P010).
    Interleaved(&'a mut [T]),
    /// Separate U and V planes (YUV420P, YUV420P10LE).
    Planar {
        /// The U plane's rows.
        u: &'a mut [T],
        /// The V plane's rows.
        v: &'a mut [T],
    },
}

/// Rows `y0..y0 + rows` of a picture (and the matching chroma rows), in samples.
pub(crate) struct BandPlanes<'a, T> {
    /// The band's first luma row in the picture (even).
    pub y0: usize,
    /// Its luma rows (even, at least 2).
    pub rows: usize,
    /// The picture's width.
    pub width: usize,
    /// Luma rows, `y_stride` samples apart (the last one `width` long).
    pub y: &'a mut [T],
    /// Samples between luma rows.
    pub y_stride: usize,
    /// Chroma rows, `c_stride` samples apart.
    pub chroma: BandChroma<'a, T>,
    /// Samples between chroma rows (U's and V's are the same in FFmpeg's pictures).
    pub c_stride: usize,
}

/// A picture's plane pointers and strides (in samples), to cut bands from.
struct Planes<T> {
    data: [*mut T; 3],
    stride: [usize; 3],
    width: usize,
    interleaved: bool,
}

// SAFETY: the pointers are only turned into slices of disjoint row ranges, one per
// thread, while `in_bands` holds the picture's `&mut` and both threads finish
// (SliceWorker::join) before it returns.
unsafe impl<T: Send> Send for Planes<T> {}
unsafe impl<T: Send> Sync for Planes<T> {}

impl<T> Planes<T> {
    /// Rows `y0..y0 + rows` of every plane.
    ///
    /// # Safety
    /// `y0` and `rows` even, `rows >= 2`, `y0 + rows` at most the picture's height,
    /// and no other live band overlapping these rows.
    unsafe fn band(&self, y0: usize, rows: usize) -> BandPlanes<'_, T> {
        let (w, ls, d) = (self.width, self.stride, self.data);
        let (c0, crows) = (y0 / 2, rows / 2);
        // SAFETY: the caller's rows lie inside the picture; FFmpeg's planes hold
        // `height` rows of `linesize` bytes (chroma: half as many), each at least the
        // row's samples long.
        unsafe {
            let y = std::slice::from_raw_parts_mut(d[0].add(y0 * ls[0]), (rows - 1) * ls[0] + w);
            let chroma = if self.interleaved {
                BandChroma::Interleaved(std::slice::from_raw_parts_mut(
                    d[1].add(c0 * ls[1]),
                    (crows - 1) * ls[1] + w,
                ))
            } else {
                BandChroma::Planar {
                    u: std::slice::from_raw_parts_mut(
                        d[1].add(c0 * ls[1]),
                        (crows - 1) * ls[1] + w / 2,
                    ),
                    v: std::slice::from_raw_parts_mut(
                        d[2].add(c0 * ls[2]),
                        (crows - 1) * ls[2] + w / 2,
                    ),
                }
            };
            BandPlanes {
                y0,
                rows,
                width: w,
                y,
                y_stride: ls[0],
                chroma,
                c_stride: ls[1],
            }
        }
    }
}

/// Runs `convert` over `picture` (a 4:2:0 layout of `T`, even width and height of at
/// least 2): in two bands at once when `worker` is given (the lower one on the helper
/// thread) and the picture is at least 4 rows high, else in one band.
///
/// # Panics
/// When the picture's format is not a layout of `T`, its size is odd or under 2 rows,
/// or a plane is not aligned for `T` (FFmpeg aligns them to far more).
pub(crate) fn in_bands<T: Sample>(
    picture: &mut ffmpeg::frame::Video,
    worker: Option<&SliceWorker>,
    convert: impl Fn(BandPlanes<'_, T>) + Sync,
) {
    let interleaved = T::layout(picture.format()).unwrap_or_else(|| {
        panic!(
            "{:?} is not a 4:2:0 layout of this sample",
            picture.format()
        )
    });
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    assert!(
        w.is_multiple_of(2) && h.is_multiple_of(2) && h >= 2,
        "{w}x{h} cannot be cut into 4:2:0 bands"
    );
    let size = std::mem::size_of::<T>();
    // SAFETY: plane pointers and line sizes of our own allocated picture, which the
    // `&mut` borrow keeps alive and untouched by anyone else until we return.
    let (data, linesize) = unsafe {
        let f = picture.as_mut_ptr();
        ((*f).data, (*f).linesize)
    };
    let planes = if interleaved { 2 } else { 3 };
    for i in 0..planes {
        assert!(
            (data[i] as usize).is_multiple_of(size) && (linesize[i] as usize).is_multiple_of(size),
            "plane {i} is not aligned for its samples"
        );
    }
    let planes = Planes::<T> {
        data: [data[0].cast(), data[1].cast(), data[2].cast()],
        stride: [0, 1, 2].map(|i| linesize[i] as usize / size),
        width: w,
        interleaved,
    };
    let band = |y0: usize, rows: usize| {
        // SAFETY: the two calls below cover 0..top and top..h, disjoint, even and
        // at least 2 rows each (h >= 4 there); a single call covers 0..h.
        convert(unsafe { planes.band(y0, rows) })
    };
    match worker {
        Some(worker) if h >= 4 => {
            let top = (h / 2).next_multiple_of(2);
            let band = &band;
            worker.join(|| band(top, h - top), || band(0, top));
        }
        _ => band(0, h),
    }
}
