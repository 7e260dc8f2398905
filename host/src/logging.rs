//! Where the host's log lines go: the systemd journal when the service manager connected
//! stderr to it, plain text on stderr otherwise.
//!
//! The host logs with `tracing`. Under systemd (`JOURNAL_STREAM` names our stderr) every
//! event becomes a `log::Record` handed to `systemd-journal-logger`, so journald gets
//! real fields rather than one formatted line: `PRIORITY` from the level, `TARGET`,
//! `CODE_FILE`/`CODE_LINE`/`CODE_MODULE`, and each of the event's own fields upper-cased
//! (`hostname = ...` becomes `HOSTNAME=...`), which `journalctl -o json` and
//! `journalctl HOSTNAME=living-room` can use. Anywhere else (a terminal, the tests, a
//! container) it stays the human-readable `fmt` output on stderr.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The syslog identifier the journal shows (`journalctl -t punktfunk-host`).
const IDENTIFIER: &str = "punktfunk-host";

/// Sets the global subscriber: journald if stderr is the journal, stderr otherwise,
/// and in both cases the in-memory ring the web console's log page reads
/// ([`crate::logbuf`]). `RUST_LOG` filters all of them (default `info`).
pub fn init() {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if systemd_journal_logger::connected_to_journal() {
        match systemd_journal_logger::JournalLog::new() {
            Ok(journal) => {
                let journal = journal.with_syslog_identifier(IDENTIFIER.to_owned());
                tracing_subscriber::registry()
                    .with(LogBridge::new(journal))
                    .with(crate::logbuf::global().layer())
                    .with(filter())
                    .init();
                return;
            }
            // No journal socket after all (a chroot, a container without journald):
            // stderr still reaches whoever collects it.
            Err(e) => say(format_args!(
                "{IDENTIFIER}: journald unreachable ({e}), logging to stderr"
            )),
        }
    }
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Its report of a failed write is an `eprintln!`, which panics when
                // stderr is unwritable: a log line lost there is not worth the host.
                .log_internal_errors(false)
                // Colour codes only for a person at a terminal, not in log files.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(crate::logbuf::global().layer())
        .with(filter())
        .init();
}

/// A `tracing` layer that hands every event to a `log::Log` as a record whose key-values
/// are the event's fields.
#[derive(Debug)]
pub struct LogBridge<L> {
    logger: L,
}

impl<L: log::Log> LogBridge<L> {
    /// Forwards events to `logger`.
    pub fn new(logger: L) -> Self {
        Self { logger }
    }
}

impl<S: Subscriber, L: log::Log + 'static> Layer<S> for LogBridge<L> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        // `log` carries key-values as a borrowed source; field names are 'static.
        let kvs: Vec<(&'static str, &str)> =
            fields.pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.logger.log(
            &log::Record::builder()
                .args(format_args!("{}", fields.message))
                .level(log_level(*meta.level()))
                .target(meta.target())
                .module_path(meta.module_path())
                .file(meta.file())
                .line(meta.line())
                .key_values(&kvs)
                .build(),
        );
    }
}

fn log_level(level: Level) -> log::Level {
    match level {
        Level::ERROR => log::Level::Error,
        Level::WARN => log::Level::Warn,
        Level::INFO => log::Level::Info,
        Level::DEBUG => log::Level::Debug,
        Level::TRACE => log::Level::Trace,
    }
}

/// An event's message and its other fields, as text.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.pairs.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.pairs.push((field.name(), format!("{value:?}")));
        }
    }
}

/// Writes one line to stderr, ignoring a closed or full stderr. `eprintln!` panics
/// when stderr cannot be written (a closed pipe, a full disk); a message lost there
/// must not end the host.
pub fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a `log::Log` received, field by field.
    #[derive(Debug, Clone, PartialEq)]
    struct Seen {
        level: log::Level,
        target: String,
        message: String,
        file: Option<String>,
        line: Option<u32>,
        kvs: Vec<(String, String)>,
    }

    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Seen>>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            struct Collect(Vec<(String, String)>);
            impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
                fn visit_pair(
                    &mut self,
                    key: log::kv::Key<'kvs>,
                    value: log::kv::Value<'kvs>,
                ) -> Result<(), log::kv::Error> {
                    self.0.push((key.to_string(), value.to_string()));
                    Ok(())
                }
            }
            let mut kvs = Collect(Vec::new());
            record.key_values().visit(&mut kvs).unwrap();
            self.0.lock().unwrap().push(Seen {
                level: record.level(),
                target: record.target().to_owned(),
                message: record.args().to_string(),
                file: record.file().map(str::to_owned),
                line: record.line(),
                kvs: kvs.0,
            });
        }
        fn flush(&self) {}
    }

    #[test]
    fn events_become_records_with_their_fields_level_and_location() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(LogBridge::new(capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(hostname = "living-room", http = 47989, "host ready");
            tracing::warn!(target: "punktfunk::pairing", peer = %"10.0.0.7", "wrong PIN");
            tracing::error!("no fields at all");
        });
        let seen = capture.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].level, log::Level::Info);
        assert_eq!(seen[0].message, "host ready");
        assert_eq!(seen[0].target, module_path!());
        assert_eq!(seen[0].file.as_deref(), Some(file!()));
        assert!(seen[0].line.is_some());
        assert_eq!(
            seen[0].kvs,
            vec![
                ("hostname".into(), "living-room".into()),
                ("http".into(), "47989".into())
            ]
        );
        assert_eq!(seen[1].level, log::Level::Warn);
        assert_eq!(seen[1].target, "punktfunk::pairing");
        assert_eq!(seen[1].kvs, vec![("peer".into(), "10.0.0.7".into())]);
        assert_eq!(seen[2].level, log::Level::Error);
        assert!(seen[2].kvs.is_empty());
    }

    #[test]
    fn every_tracing_level_maps_to_the_same_log_level() {
        // systemd-journal-logger turns these into PRIORITY 3 (err) .. 7 (debug).
        assert_eq!(log_level(Level::ERROR), log::Level::Error);
        assert_eq!(log_level(Level::WARN), log::Level::Warn);
        assert_eq!(log_level(Level::INFO), log::Level::Info);
        assert_eq!(log_level(Level::DEBUG), log::Level::Debug);
        assert_eq!(log_level(Level::TRACE), log::Level::Trace);
    }
}
