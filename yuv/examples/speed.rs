//! ns per pixel of the converter on a 1920x1080 BGRx picture, one band on one thread.
//!
//!   cargo run --release -p punktfunk-yuv --example speed
use punktfunk_yuv::{Band, Chroma, Matrix, Order, convert_band};
use std::time::Instant;

/// This thread's CPU time, seconds (the box is shared: wall time is not ours).
fn cpu() -> f64 {
    let mut ts = std::mem::MaybeUninit::<[i64; 2]>::uninit();
    // SAFETY: clock_gettime writes a timespec (two longs on x86_64 Linux).
    unsafe { clock_gettime(3, ts.as_mut_ptr().cast()) };
    // SAFETY: written above.
    let [s, ns] = unsafe { ts.assume_init() };
    s as f64 + ns as f64 * 1e-9
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut i64) -> i32;
}

fn main() {
    let (w, h) = (1920usize, 1080usize);
    let src: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
    let mut y = vec![0u8; w * h];
    let mut uv = vec![0u8; w * h / 2];
    let m = Matrix::bt709(false);
    let n = 100;
    let t = Instant::now();
    let c0 = cpu();
    for _ in 0..n {
        convert_band(
            Band {
                src: &src,
                src_stride: w * 4,
                y: &mut y,
                y_stride: w,
                chroma: Chroma::Interleaved(&mut uv),
                c_stride: w,
                width: w,
                rows: h,
            },
            Order::Bgrx,
            &m,
        );
    }
    let _ = t;
    let per = (cpu() - c0) / f64::from(n);
    println!(
        "1080p NV12: {:.3} ms a frame, {:.2} ns a pixel (CPU time)",
        per * 1e3,
        per * 1e9 / (w * h) as f64
    );
}
