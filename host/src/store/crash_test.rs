//! Crash test: SIGKILL a process in the middle of a write burst, then check that the
//! database is intact and that every write the process saw commit is still there.
//!
//! Integration tests cannot reach into a binary crate, so the test re-executes its own
//! test binary as the writer: run with `--exact` and `CHILD_ENV` naming a database,
//! the same test becomes the writer ([`child_burst`]). The child is no test of its
//! own, so a normal run counts exactly one test here, the one that checks something.
//!
//! This proves process-crash safety (journal recovery, no torn rows, `Ok` means
//! committed). Power-loss safety additionally rests on `synchronous = FULL`, which a
//! killed process cannot exercise; the pragma itself is asserted in the mod tests.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{NewClient, Protocol, Store};

/// Set (to a database path) only in the child process.
const CHILD_ENV: &str = "PUNKTFUNK_STORE_CRASH_CHILD";
const ROUNDS: usize = 3;
/// Concurrent writers in the child, so commits also race for the write lock.
const WRITERS: u64 = 2;

/// The child's write burst, until it is killed.
async fn child_burst(db: &Path) {
    let store = Store::open(db).await.expect("child: open");
    let pid = u64::from(std::process::id());
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                // Bounded so an orphaned child cannot run forever.
                for n in 0..1_000_000u64 {
                    let fingerprint = format!("{pid:016x}{writer:016x}{n:032x}");
                    store
                        .add_client(NewClient {
                            name: format!("crash {writer}/{n}"),
                            cert_pem: "x".repeat(600 + (n % 7) as usize * 100),
                            fingerprint: fingerprint.clone(),
                            protocol: Protocol::Native,
                        })
                        .await
                        .expect("child: add_client");
                    // Only now, after COMMIT returned, may the parent count on it. One
                    // write per line (< PIPE_BUF), so lines never interleave.
                    let mut out = std::io::stdout().lock();
                    out.write_all(format!("committed {fingerprint}\n").as_bytes())
                        .and_then(|()| out.flush())
                        .expect("child: stdout");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

/// Kills the child if the parent panics before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This test as libtest names it (`store::crash_test::kill_mid_burst_...`).
fn test_name() -> String {
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{module}::kill_mid_burst_loses_nothing_committed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_mid_burst_loses_nothing_committed() {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        // Re-executed by the parent below: be the writer it kills.
        child_burst(Path::new(&db)).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut all_committed = HashSet::new();

    for round in 0..ROUNDS {
        let mut child = KillOnDrop(
            Command::new(&exe)
                .args(["--exact", &test_name(), "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &db)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let mut committed = Vec::new();
            loop {
                line.clear();
                match stdout.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A line cut short by the kill proves nothing; skip it.
                let Some(fp) = line
                    .strip_suffix('\n')
                    .and_then(|l| l.strip_prefix("committed "))
                else {
                    continue;
                };
                if committed.is_empty() {
                    let _ = tx.send(());
                }
                committed.push(fp.to_owned());
            }
            committed
        });

        // Start the clock at the first commit, so startup time on a slow box cannot
        // turn the round into "killed before it wrote anything".
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: child never committed anything"));
        let burst = Duration::from_millis(rand::random_range(200..=800));
        tokio::time::sleep(burst).await;
        child.0.kill().unwrap(); // SIGKILL: no destructors, no WAL checkpoint.
        child.0.wait().unwrap();
        let committed = reader.join().unwrap();
        assert!(!committed.is_empty());

        let store = Store::open(&db).await.unwrap();
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(integrity, ["ok"], "round {round}");
        // Every row must decode, and every reported commit must be present.
        let present: HashSet<String> = store
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.fingerprint)
            .collect();
        all_committed.extend(committed.iter().cloned());
        let lost: Vec<_> = all_committed.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} committed clients lost, e.g. {:?}",
            lost.len(),
            all_committed.len(),
            lost.first()
        );
        eprintln!(
            "crash round {round}: killed after {burst:?}, {} commits reported, {} rows",
            committed.len(),
            present.len()
        );
        store.close().await;
    }
}
