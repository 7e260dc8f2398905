//! Unit tests of buffers.rs on hand-built pw_buffers.

use super::*;

/// A hand-built pw_buffer with one data per entry of `datas`.
struct FakeBuffer {
    pw: pw::sys::pw_buffer,
    _spa: Box<spa_sys::spa_buffer>,
    _datas: Vec<spa_sys::spa_data>,
    _chunks: Vec<spa_sys::spa_chunk>,
}

impl FakeBuffer {
    fn new(mut datas: Vec<spa_sys::spa_data>, mut chunks: Vec<spa_sys::spa_chunk>) -> Box<Self> {
        for (d, c) in datas.iter_mut().zip(chunks.iter_mut()) {
            d.chunk = c;
        }
        // SAFETY: plain C structs; all-zero is a valid (empty) value for each.
        let mut spa: Box<spa_sys::spa_buffer> = Box::new(unsafe { std::mem::zeroed() });
        spa.n_datas = datas.len() as u32;
        spa.datas = datas.as_mut_ptr();
        // SAFETY: as above.
        let mut pw: pw::sys::pw_buffer = unsafe { std::mem::zeroed() };
        pw.buffer = &mut *spa;
        Box::new(Self {
            pw,
            _spa: spa,
            _datas: datas,
            _chunks: chunks,
        })
    }

    fn ptr(&mut self) -> *mut pw::sys::pw_buffer {
        &mut self.pw
    }
}

fn data(kind: u32, fd: i64, maxsize: u32, ptr: *mut u8) -> spa_sys::spa_data {
    // SAFETY: a plain C struct.
    let mut d: spa_sys::spa_data = unsafe { std::mem::zeroed() };
    d.type_ = kind;
    d.fd = fd;
    d.maxsize = maxsize;
    d.data = ptr.cast();
    d
}

fn chunk(offset: u32, size: u32, stride: i32, flags: i32) -> spa_sys::spa_chunk {
    spa_sys::spa_chunk {
        offset,
        size,
        stride,
        flags,
    }
}

fn memfd(bytes: &[u8]) -> libc::c_int {
    // SAFETY: a fresh memfd filled with `bytes`.
    unsafe {
        let fd = libc::memfd_create(c"pf-test".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0);
        assert_eq!(
            libc::write(fd, bytes.as_ptr().cast(), bytes.len()),
            bytes.len() as isize
        );
        fd
    }
}

fn bgrx(w: u32, h: u32) -> Negotiated {
    Negotiated {
        format: PixelFormat::Bgrx,
        width: w,
        height: h,
        framerate: (0, 1),
        modifier: None,
        colour: (0, 0),
    }
}

#[test]
fn memfd_is_read_by_its_real_size_whatever_maxsize_claims() {
    let (w, h) = (16u32, 8u32);
    let pixels: Vec<u8> = (0..w * h * 4).map(|i| i as u8).collect();
    let fd = memfd(&pixels);
    // The producer claims 8 MiB more than the file holds.
    let lie = pixels.len() as u32 + (8 << 20);
    let mut buf = FakeBuffer::new(
        vec![data(
            spa_sys::SPA_DATA_MemFd,
            i64::from(fd),
            lie,
            std::ptr::null_mut(),
        )],
        vec![chunk(0, pixels.len() as u32, (w * 4) as i32, 0)],
    );
    // SAFETY: a live fake buffer, unmapped below.
    unsafe {
        let overclaim = map_buffer(buf.ptr());
        assert_eq!(overclaim, Some((u64::from(lie), pixels.len())));
        let lent = lend(buf.ptr(), &bgrx(w, h), Instant::now())
            .unwrap()
            .unwrap();
        let frame = lent.frame();
        let Pixels::Cpu(cpu) = frame.pixels else {
            panic!("a CPU frame")
        };
        assert_eq!(cpu.planes[0].data.len(), pixels.len(), "bounded by fstat");
        assert_eq!(cpu.planes[0].data, &pixels[..]);
        assert_eq!(cpu.planes[0].stride, (w * 4) as usize);
        unmap_buffer(buf.ptr());
        libc::close(fd);
    }
}

#[test]
fn empty_or_corrupted_chunks_are_no_picture_and_stride_zero_means_packed() {
    let mut pixels = vec![7u8; 4 * 4 * 4];
    for (size, flags, want) in [
        (0, 0, false),
        (64, spa_sys::SPA_CHUNK_FLAG_CORRUPTED as i32, false),
        (64, 0, true),
    ] {
        let mut buf = FakeBuffer::new(
            vec![data(spa_sys::SPA_DATA_MemPtr, -1, 64, pixels.as_mut_ptr())],
            vec![chunk(0, size, 0, flags)],
        );
        // SAFETY: a live fake buffer.
        unsafe {
            map_buffer(buf.ptr());
            let lent = lend(buf.ptr(), &bgrx(4, 4), Instant::now()).unwrap();
            assert_eq!(lent.is_some(), want, "size {size} flags {flags}");
            if let Some(lent) = lent
                && let Pixels::Cpu(cpu) = lent.frame().pixels
            {
                assert_eq!(cpu.planes[0].stride, 16, "GStreamer's stride 0");
            }
            unmap_buffer(buf.ptr());
        }
    }
}

#[test]
fn nv12_in_one_data_splits_after_the_luma_rows() {
    let (w, h) = (8u32, 4u32);
    let mut bytes = vec![1u8; (w * h) as usize];
    bytes.extend(vec![2u8; (w * h / 2) as usize]);
    let mut buf = FakeBuffer::new(
        vec![data(
            spa_sys::SPA_DATA_MemPtr,
            -1,
            bytes.len() as u32,
            bytes.as_mut_ptr(),
        )],
        vec![chunk(0, bytes.len() as u32, w as i32, 0)],
    );
    let format = Negotiated {
        format: PixelFormat::Nv12,
        ..bgrx(w, h)
    };
    // SAFETY: a live fake buffer.
    unsafe {
        map_buffer(buf.ptr());
        let lent = lend(buf.ptr(), &format, Instant::now()).unwrap().unwrap();
        let Pixels::Cpu(cpu) = lent.frame().pixels else {
            panic!("a CPU frame")
        };
        assert!(cpu.planes[0].data.starts_with(&[1; 32]));
        assert_eq!(cpu.planes[1].data, &[2u8; 16][..]);
        unmap_buffer(buf.ptr());
    }
}

#[test]
fn dmabufs_are_handed_on_as_descriptors() {
    let fd = memfd(&[0u8; 64]);
    let mut buf = FakeBuffer::new(
        vec![data(
            spa_sys::SPA_DATA_DmaBuf,
            i64::from(fd),
            64,
            std::ptr::null_mut(),
        )],
        vec![chunk(16, 0, 32, 0)],
    );
    // SAFETY: a live fake buffer.
    unsafe {
        map_buffer(buf.ptr());
        let lent = lend(buf.ptr(), &bgrx(8, 1), Instant::now())
            .unwrap()
            .unwrap();
        let Pixels::DmaBuf(d) = lent.frame().pixels else {
            panic!("a DMA-BUF frame")
        };
        assert_eq!(d.fourcc, PixelFormat::Bgrx.drm_fourcc());
        assert_eq!(d.modifier, MOD_INVALID);
        let p = d.planes[0].unwrap();
        assert_eq!((p.offset, p.stride), (16, 32));
        unmap_buffer(buf.ptr());
        libc::close(fd);
    }
}

#[test]
fn the_encoders_matrix_maps_to_the_spa_colour_a_producer_is_asked_for() {
    use punktfunk_yuv::Matrix;
    use spa_sys::*;
    assert_eq!(
        spa_colour_of(&Matrix::bt709(false)),
        Some((SPA_VIDEO_COLOR_MATRIX_BT709, SPA_VIDEO_COLOR_RANGE_16_235))
    );
    assert_eq!(
        spa_colour_of(&Matrix::bt601(true)),
        Some((SPA_VIDEO_COLOR_MATRIX_BT601, SPA_VIDEO_COLOR_RANGE_0_255))
    );
    assert_eq!(
        spa_colour_of(&Matrix::bt2020(false)),
        Some((SPA_VIDEO_COLOR_MATRIX_BT2020, SPA_VIDEO_COLOR_RANGE_16_235))
    );
    // A matrix no standard names is not asked for.
    assert_eq!(spa_colour_of(&Matrix::new(0.3, 0.1, false)), None);
}
