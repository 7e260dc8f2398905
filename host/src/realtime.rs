//! Real-time scheduling for the threads that pace packets out and take them in.
//!
//! Why: on a busy box (a game, its compositor and the encoder all want the CPU) a
//! paced send thread that wakes a few hundred microseconds late, or a receive thread
//! that is scheduled out for a few milliseconds, turns into the whole tail of the
//! frame latency. Measured with `punktfunk-host loopback --bitrate-mbps 1000 --spread 1`
//! on the 2-core box beside a compile: added p99 1.8–6.8 ms at normal priority, about
//! 0.1 ms under SCHED_FIFO.
//!
//! Why it is safe: a thread is real-time only while it paces a frame out (it sleeps
//! between bursts, so it takes little CPU), or for a receive loop that blocks in
//! poll(2) between batches. The encoder never runs real-time: the send thread drops
//! back before it encodes the next frame, and `SCHED_RESET_ON_FORK` keeps any thread
//! created meanwhile (an encoder's workers) from inheriting the policy.
//!
//! Where the process may not (no `CAP_SYS_NICE`, `RLIMIT_RTPRIO` of 0, or systemd's
//! `RestrictRealtime=`), the first attempt fails with `EPERM`, is logged once, and the
//! thread runs at normal priority from then on: nothing else changes.

use std::sync::atomic::{AtomicBool, Ordering};

/// The SCHED_FIFO priority the packet threads ask for: low among real-time threads
/// (PipeWire's audio threads run at 20–88), above every normal one.
pub const PRIORITY: i32 = 10;

static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns real-time scheduling off for the whole process from now on (the loopback
/// bench's `--normal-priority`, to measure what it buys).
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Whether the calling thread runs SCHED_FIFO now.
pub fn is_realtime() -> bool {
    // SAFETY: sched_getscheduler(0) only reads the calling thread's policy.
    let policy = unsafe { libc::sched_getscheduler(0) };
    policy >= 0 && (policy & !libc::SCHED_RESET_ON_FORK) == libc::SCHED_FIFO
}

/// Puts the calling thread on SCHED_FIFO at [`PRIORITY`]. Returns whether it worked;
/// a refusal is logged once per process.
pub fn enter() -> bool {
    set(libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, PRIORITY)
}

/// Puts the calling thread back on the normal time-sharing policy.
pub fn leave() {
    set(libc::SCHED_OTHER, 0);
}

fn set(policy: libc::c_int, priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that lives
    // across the call.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error();
    if policy != libc::SCHED_OTHER && !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::info!(
            "packet threads run at normal priority: real-time scheduling was refused ({err}); \
             allow it with LimitRTPRIO={PRIORITY} or CAP_SYS_NICE for a steadier stream on a busy box"
        );
    }
    false
}

/// Real-time for as long as it lives, if the process may; remembers a refusal so a
/// per-frame caller makes no more system calls after the first.
#[derive(Debug)]
pub struct Realtime {
    allowed: bool,
}

impl Default for Realtime {
    fn default() -> Self {
        Self { allowed: true }
    }
}

impl Realtime {
    /// Runs `f` on SCHED_FIFO when allowed, at normal priority otherwise.
    pub fn run<T>(&mut self, f: impl FnOnce() -> T) -> T {
        if !self.allowed || DISABLED.load(Ordering::Relaxed) {
            return f();
        }
        if !enter() {
            self.allowed = false;
            return f();
        }
        let out = f();
        leave();
        out
    }

    /// Whether real-time was allowed so far.
    pub fn allowed(&self) -> bool {
        self.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_runs_real_time_when_allowed_and_the_thread_is_normal_after() {
        std::thread::spawn(|| {
            let mut rt = Realtime::default();
            let inside = rt.run(is_realtime);
            // Root (CI) may; an unprivileged run may not, and then nothing changed.
            assert_eq!(inside, rt.allowed());
            assert!(
                !is_realtime(),
                "the thread stays real-time after the section"
            );
            // A refusal is remembered: the next section makes no attempt.
            if !rt.allowed() {
                assert!(!rt.run(is_realtime));
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn threads_started_inside_a_section_do_not_inherit_it() {
        std::thread::spawn(|| {
            let mut rt = Realtime::default();
            let child = rt.run(|| std::thread::spawn(is_realtime).join().unwrap());
            assert!(!child, "SCHED_RESET_ON_FORK keeps new threads normal");
        })
        .join()
        .unwrap();
    }
}
