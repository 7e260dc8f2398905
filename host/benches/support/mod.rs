//! What the bench binaries share: CPU time of the process and of the calling thread,
//! and percentiles of microsecond samples. Each bench includes it with `mod support;`
//! (a folder, so cargo does not take it for a bench of its own).

// Not every bench uses every helper.
#![allow(dead_code)]

use std::time::Duration;

/// User plus system CPU time of this process, all threads together.
pub fn process_cpu() -> Duration {
    // SAFETY: rusage is plain integers and timevals, for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, exclusively borrowed rusage for getrusage to fill;
    // RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    // SAFETY: timespec is two integers, for which all-zero bytes are valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; the clock id is valid.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The `p`-th percentile (0..=1, nearest rank) of samples in microseconds, in
/// milliseconds; NaN without samples (the table then shows it had none).
pub fn percentile(v: &[u64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}
