//! CPU time a frame of the converter on a 1920x1080 BGRx picture to NV12, one band on
//! one thread: the build this CPU runs (AVX2 where it has it) against the portable
//! loop, measured in the same run.
//!
//!   cargo run --release -p punktfunk-yuv --example speed
use punktfunk_yuv::{Band, Chroma, Matrix, Order, convert_band, convert_band_portable};

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

type Convert = fn(Band<'_>, Order, &Matrix);

fn main() {
    let (w, h) = (1920usize, 1080usize);
    let src: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
    let mut y = vec![0u8; w * h];
    let mut uv = vec![0u8; w * h / 2];
    let m = Matrix::bt709(false);
    let paths: [(&str, Convert); 2] = [
        ("portable loop (auto-vectorised)", convert_band_portable),
        ("this CPU's build", convert_band),
    ];
    let mut per = [0.0f64; 2];
    // Alternate the two, so load from others on the box falls on both alike.
    for _ in 0..10 {
        for (i, (_, convert)) in paths.iter().enumerate() {
            let c0 = cpu();
            for _ in 0..10 {
                convert(
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
            per[i] += (cpu() - c0) / 100.0;
        }
    }
    for (i, (name, _)) in paths.iter().enumerate() {
        println!(
            "1080p BGRx to NV12, {name:<33} {:.3} ms a frame, {:.2} ns a pixel, {:.2}x the portable loop's time",
            per[i] * 1e3,
            per[i] * 1e9 / (w * h) as f64,
            per[i] / per[0]
        );
    }
}
