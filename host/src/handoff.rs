//! A worker thread fed in order by the per-frame thread, with byte buffers that travel
//! back for reuse: how the video threads hand a frame to their send threads, so that
//! pacing one frame out overlaps capturing and encoding the next.
//!
//! A fixed number of buffers circulate (one being filled, the others queued or being
//! sent), so steady state allocates nothing, and a producer faster than the worker
//! waits for a buffer instead of queueing frames without bound. A worker that panics
//! re-raises its panic on the producer's thread, whose panic record then names it.

use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, anyhow};

/// Gives a worker's buffers back to the producer.
#[derive(Debug, Clone)]
pub struct Recycler(mpsc::SyncSender<Vec<u8>>);

impl Recycler {
    /// Returns `buffer` for the producer to fill again; false once the producer is gone.
    pub fn give_back(&self, buffer: Vec<u8>) -> bool {
        self.0.send(buffer).is_ok()
    }
}

/// The producer's end of a worker thread taking messages `M` and ending with `R`.
#[derive(Debug)]
pub struct Handoff<M: Send + 'static, R: Send + 'static> {
    tx: Option<mpsc::SyncSender<M>>,
    spare: mpsc::Receiver<Vec<u8>>,
    thread: Option<thread::JoinHandle<R>>,
}

impl<M: Send + 'static, R: Send + 'static> Handoff<M, R> {
    /// Starts thread `name` running `body` over the messages sent to it, with `buffers`
    /// buffers in circulation. `body` ends when the receiver says the producer is gone.
    pub fn start(
        name: &str,
        buffers: usize,
        body: impl FnOnce(mpsc::Receiver<M>, Recycler) -> R + Send + 'static,
    ) -> Result<Self> {
        let buffers = buffers.max(1);
        // One message queued while the worker handles another.
        let (tx, rx) = mpsc::sync_channel::<M>(1);
        let (give_back, spare) = mpsc::sync_channel::<Vec<u8>>(buffers);
        for _ in 0..buffers {
            give_back
                .send(Vec::new())
                .expect("the channel holds every buffer");
        }
        let recycler = Recycler(give_back);
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(rx, recycler))
            .with_context(|| format!("starting thread {name}"))?;
        Ok(Self {
            tx: Some(tx),
            spare,
            thread: Some(thread),
        })
    }

    /// A buffer to fill: waits while every buffer is with the worker.
    pub fn buffer(&mut self) -> Result<Vec<u8>> {
        match self.spare.recv() {
            Ok(buffer) => Ok(buffer),
            Err(_) => Err(self.died()),
        }
    }

    /// Hands `message` to the worker (waits while one is already queued).
    pub fn send(&mut self, message: M) -> Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(message).is_ok());
        if sent { Ok(()) } else { Err(self.died()) }
    }

    /// Lets the worker finish what it has and returns what it ended with.
    pub fn finish(mut self) -> Result<R> {
        self.tx = None;
        match self.thread.take().map(thread::JoinHandle::join) {
            Some(Ok(r)) => Ok(r),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(anyhow!("the worker thread already ended")),
        }
    }

    /// The worker is gone: re-raises its panic here, or says it stopped.
    fn died(&mut self) -> anyhow::Error {
        self.tx = None;
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
        anyhow!("the worker thread stopped")
    }
}

impl<M: Send + 'static, R: Send + 'static> Drop for Handoff<M, R> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
            && !thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_in_order_and_buffers_come_back() {
        let mut h = Handoff::start("t-handoff", 2, |rx: mpsc::Receiver<Vec<u8>>, back| {
            let mut seen = Vec::new();
            while let Ok(buf) = rx.recv() {
                seen.push(buf[0]);
                back.give_back(buf);
            }
            seen
        })
        .unwrap();
        for i in 0..10u8 {
            let mut b = h.buffer().unwrap();
            b.clear();
            b.push(i);
            h.send(b).unwrap();
        }
        assert_eq!(h.finish().unwrap(), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_worker_that_panics_raises_it_on_the_producer() {
        let mut h = Handoff::start("t-handoff-panic", 1, |rx: mpsc::Receiver<u8>, _| {
            let _ = rx.recv();
            panic!("worker failed");
        })
        .unwrap();
        h.send(1).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Its only buffer is still here; the second wait finds the worker gone.
            let _ = h.buffer();
            h.buffer()
        }));
        assert!(caught.is_err(), "the panic must reach the producer");
    }
}
