//! A persistent helper thread for splitting per-frame work in two: the colour
//! conversion runs half its rows here while the calling thread does the other half.
//!
//! Why a persistent thread rather than `std::thread::scope` per frame: spawning costs a
//! stack mapping and a clone per frame, and the frame path allocates nothing in steady
//! state. Why only two halves: the host's reference machine has 2 cores, and x264's
//! own threads are idle while a frame is being converted (it encodes synchronously).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A borrowed job with its lifetime erased; only ever run while [`SliceWorker::join`]
/// waits for it, so what it borrows outlives the run.
struct Job(*mut (dyn FnMut() + Send + 'static));

// SAFETY: the closure behind the pointer is `Send`, and the pointer is used by one
// thread at a time (the worker runs it while the caller blocks in `join`).
unsafe impl Send for Job {}

#[derive(Default)]
struct State {
    job: Option<Job>,
    /// The worker finished the job (`Some(true)` if it panicked).
    done: Option<bool>,
    quit: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// One helper thread that runs half of a frame's work.
pub struct SliceWorker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SliceWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SliceWorker").finish_non_exhaustive()
    }
}

impl SliceWorker {
    /// Starts the helper thread (named `name`).
    pub fn spawn(name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || worker(&s))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `a` on the helper thread and `b` on this one, and returns when both ended.
    /// A panic in either is resumed here.
    pub fn join<A: FnOnce() + Send, B: FnOnce()>(&self, a: A, b: B) {
        let mut a = Some(a);
        let mut call = move || {
            if let Some(a) = a.take() {
                a();
            }
        };
        let ptr: *mut (dyn FnMut() + Send + '_) = &mut call;
        // SAFETY: only the lifetime is erased; `Wait` below blocks (even while
        // unwinding) until the worker is done with the closure, which lives on this
        // stack frame until then.
        let ptr: *mut (dyn FnMut() + Send + 'static) = unsafe { std::mem::transmute(ptr) };
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.job = Some(Job(ptr));
            st.done = None;
        }
        self.shared.cv.notify_all();
        let wait = Wait(&self.shared);
        b();
        let panicked = wait.finish();
        if panicked {
            panic!("the slice worker panicked");
        }
    }
}

/// Blocks until the worker finished the current job, also when dropped by a panic.
struct Wait<'a>(&'a Shared);

impl Wait<'_> {
    fn wait(&self) -> bool {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(p) = st.done.take() {
                return p;
            }
            st = self.0.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn finish(self) -> bool {
        let p = self.wait();
        std::mem::forget(self);
        p
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.wait();
    }
}

fn worker(s: &Shared) {
    loop {
        let job = {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if st.quit {
                    return;
                }
                if let Some(job) = st.job.take() {
                    break job;
                }
                st = s.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        // SAFETY: the submitting `join` keeps the closure alive and untouched until
        // `done` is set below.
        let panicked = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)() })).is_err();
        s.state.lock().unwrap_or_else(|e| e.into_inner()).done = Some(panicked);
        s.cv.notify_all();
    }
}

impl Drop for SliceWorker {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .quit = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_borrow_the_callers_data() {
        let w = SliceWorker::spawn("pf-test-slices").unwrap();
        let mut data = vec![0u32; 1000];
        for round in 1..=50u32 {
            let (lo, hi) = data.split_at_mut(500);
            w.join(
                || hi.iter_mut().for_each(|v| *v += round),
                || lo.iter_mut().for_each(|v| *v += round),
            );
        }
        let want: u32 = (1..=50).sum();
        assert!(data.iter().all(|&v| v == want));
    }

    #[test]
    fn a_panicking_half_is_reported_and_the_worker_keeps_serving() {
        let w = SliceWorker::spawn("pf-test-slices").unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| w.join(|| panic!("boom"), || {})));
        assert!(r.is_err());
        let mut ran = false;
        w.join(|| {}, || ran = true);
        assert!(ran);
    }
}
