//! The last few hundred log lines, kept in memory for the web console's log page.
//!
//! A `tracing` layer copies every event that passes the log filter into a bounded ring,
//! so the console can show what the service just said without reading the journal
//! (which the service user may not be allowed to read, and which a sysext box may not
//! persist). Lines get a sequence number so the console can ask for "what is new since
//! line N" while it polls.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept; older ones are dropped.
pub const CAPACITY: usize = 1000;
/// Longest line kept, in bytes (a runaway message must not eat memory).
const MAX_LINE: usize = 2000;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Increases by one per line, from 1, for the life of the process.
    pub seq: u64,
    /// Unix milliseconds.
    pub unix_ms: i64,
    /// "ERROR", "WARN", "INFO", "DEBUG" or "TRACE".
    pub level: &'static str,
    /// The module that logged it.
    pub target: String,
    /// The message with its fields (`key=value`).
    pub message: String,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    last_seq: u64,
}

/// A shared ring of recent lines. Cloning shares it.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    ring: Arc<Mutex<Ring>>,
    capacity: usize,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl LogBuffer {
    /// An empty buffer holding at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            ring: Arc::new(Mutex::new(Ring::default())),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a line.
    pub fn push(&self, level: &'static str, target: &str, mut message: String) {
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut ring = self.lock();
        ring.last_seq += 1;
        let line = LogLine {
            seq: ring.last_seq,
            unix_ms,
            level,
            target: target.to_owned(),
            message,
        };
        if ring.lines.len() == self.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line);
    }

    /// Up to `limit` of the newest lines with `seq > after`, oldest first.
    pub fn since(&self, after: u64, limit: usize) -> Vec<LogLine> {
        let ring = self.lock();
        let newer: Vec<_> = ring.lines.iter().filter(|l| l.seq > after).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }

    /// The layer that feeds this buffer.
    pub fn layer(&self) -> LogLayer {
        LogLayer { buf: self.clone() }
    }
}

/// The process-wide buffer the service logs into.
pub fn global() -> &'static LogBuffer {
    static GLOBAL: OnceLock<LogBuffer> = OnceLock::new();
    GLOBAL.get_or_init(LogBuffer::default)
}

/// A `tracing` layer that copies events into a [`LogBuffer`].
#[derive(Debug)]
pub struct LogLayer {
    buf: LogBuffer,
}

struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut fields);
        fields.message.push_str(&fields.rest);
        let meta = event.metadata();
        self.buf
            .push(level_name(meta.level()), meta.target(), fields.message);
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::prelude::*;

    use super::*;

    #[test]
    fn keeps_the_newest_lines_in_order() {
        let buf = LogBuffer::new(3);
        for i in 1..=5 {
            buf.push("INFO", "t", format!("line {i}"));
        }
        let all = buf.since(0, 100);
        let msgs: Vec<_> = all.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, ["line 3", "line 4", "line 5"]);
        assert_eq!(all[0].seq, 3);
        assert_eq!(buf.since(4, 100).len(), 1);
        assert_eq!(buf.since(0, 2)[0].message, "line 4");
        assert!(buf.since(5, 100).is_empty());
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let buf = LogBuffer::new(2);
        buf.push("INFO", "t", "é".repeat(MAX_LINE));
        let line = &buf.since(0, 1)[0].message;
        assert!(line.len() <= MAX_LINE + 3);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn the_layer_records_message_fields_and_level() {
        let buf = LogBuffer::new(10);
        let subscriber = tracing_subscriber::registry().with(buf.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(port = 47990, "cannot listen");
            tracing::info!(name = %"deck", "paired");
        });
        let lines = buf.since(0, 10);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].level, "WARN");
        assert_eq!(lines[0].message, "cannot listen port=47990");
        assert_eq!(lines[1].message, "paired name=deck");
        assert!(lines[1].target.contains("logbuf"));
    }
}
