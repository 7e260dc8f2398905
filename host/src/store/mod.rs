//! The host's persistent store: paired clients, user apps, host settings and the web
//! console's accounts, in one
//! SQLite database driven through sqlx.
//!
//! Why SQLite and these settings:
//! - Pairing records are security state (a lost record means a client must re-pair, a
//!   resurrected one means a revoked client gets back in), so a mutation that returned
//!   `Ok` must survive a crash *and* a power cut. Every mutation is one explicit
//!   transaction whose `COMMIT` error is reported, the journal is WAL (readers never
//!   block the writer; a torn write is rolled back on the next open), and
//!   `synchronous = FULL` fsyncs the WAL on every commit. With WAL the default
//!   `NORMAL` only fsyncs at checkpoints, which keeps the file consistent but can drop
//!   the last few committed transactions on power loss. Our write rate (pairings, app
//!   edits) is tiny, so the extra fsync per commit costs nothing that matters.
//! - The database holds client certificates, so the file is created `0600` (and the
//!   state directory `0700`); SQLite gives its `-wal`/`-shm` files the database's mode.
//! - Schema changes ship as embedded migrations (`host/migrations/`). A database that
//!   has migrations this binary does not know was written by a newer host: it is
//!   refused rather than guessed at ([`StoreError::NewerSchema`]).

mod admins;
mod apps;
mod clients;
mod settings;

#[cfg(test)]
mod crash_test;

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

pub use admins::NewSession;
pub use apps::{AppUpdate, FIRST_USER_APP_ID, NewApp};
pub use clients::{Client, NewClient, Protocol};

/// The schema history, compiled into the binary from `host/migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a connection waits for another writer before giving up with `SQLITE_BUSY`.
/// Writes are short; anything near this long means something is wedged.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool. WAL allows concurrent readers alongside the single writer;
/// the host's load is a handful of HTTP requests, so a few connections are plenty.
const MAX_CONNECTIONS: u32 = 4;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Preparing the database file or its directory failed (create, permissions).
    #[error("cannot prepare store file {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// SQLite could not open the database.
    #[error("cannot open store {path}: {source}", path = path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// The database records a migration this binary does not have: it was last opened
    /// by a newer punktfunk-host. Opening it would risk misreading or damaging data.
    #[error(
        "store {path} was written by a newer punktfunk-host (schema migration {version} is \
         unknown to this build); refusing to open it: upgrade punktfunk-host or move the \
         database aside",
        path = path.display()
    )]
    NewerSchema { path: PathBuf, version: i64 },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate store {path}: {source}", path = path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: MigrateError,
    },
    /// A query failed.
    #[error("store query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The write would violate a uniqueness rule (e.g. a duplicate app title).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller passed a value the store will not hold (e.g. a malformed fingerprint).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A row holds a value this build cannot interpret.
    #[error("corrupt store row: {0}")]
    Corrupt(String),
    /// A setting's stored JSON does not decode into the requested type.
    #[error("setting {key:?} does not decode: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A setting's value could not be encoded as JSON.
    #[error("setting {key:?} does not encode: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Handle to the store. Cloning is cheap (it shares one connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to
    /// date. The parent directory is created `0700` if missing; the file is kept `0600`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let io_err = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        // Create the file ourselves so it never exists with umask permissions, and
        // tighten a pre-existing one (and its WAL side files) in case it was loosened.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        restrict(path).map_err(io_err)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            match restrict(Path::new(&side)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other.map_err(io_err)?,
            }
        }

        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;

        MIGRATOR.run(&pool).await.map_err(|source| match source {
            MigrateError::VersionMissing(version) => StoreError::NewerSchema {
                path: path.to_owned(),
                version,
            },
            source => StoreError::Migrate {
                path: path.to_owned(),
                source,
            },
        })?;

        Ok(Store { pool })
    }

    /// Closes every connection (checkpointing the WAL). Other clones become unusable.
    /// Dropping the store is also safe; this just makes shutdown deterministic.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction that takes SQLite's write lock up front.
    ///
    /// A plain (deferred) `BEGIN` that reads before it writes can fail with
    /// `SQLITE_BUSY` immediately, without honouring the busy timeout, if another
    /// connection committed in between. Taking the lock at `BEGIN` makes concurrent
    /// writers queue on the busy timeout instead, and makes read-then-write sequences
    /// (like [`Store::get_or_insert_setting`]) atomic.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn restrict(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, Permissions::from_mode(0o600))
}

/// The current wall-clock time in unix seconds (0 if the clock is before 1970).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `err` is SQLite refusing a duplicate in a UNIQUE column.
fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Says so when the store at `path` is empty or missing although `state_dir` holds
/// the host's identity from an earlier start: the store was lost (a full disk, a bad
/// copy) and a fresh one is about to replace it, with every paired device gone. A
/// first start (no identity yet) says nothing.
pub fn lost_store_warning(state_dir: &Path, path: &Path) -> Option<String> {
    let identity = state_dir.join("host.key").exists() && state_dir.join("host.crt").exists();
    if !identity {
        return None;
    }
    let state = match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => "is empty (0 bytes)",
        Ok(_) => return None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => "is missing",
        Err(_) => return None,
    };
    Some(format!(
        "the pairing store {} {state} although this host has an identity from an earlier \
         start: every paired device, app and console account it held is gone, and a fresh \
         store starts now. Restore it from a backup (stop the service first), or pair your \
         devices again",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state/punktfunk.db"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn open_creates_private_file_and_dir() {
        let (dir, store) = temp_store().await;
        let db = dir.path().join("state/punktfunk.db");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        // The WAL is created by the first write; it must inherit the file's mode.
        store.set_setting("k", &1).await.unwrap();
        assert_eq!(mode(&dir.path().join("state/punktfunk.db-wal")), 0o600);
    }

    #[tokio::test]
    async fn open_tightens_loose_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        fs::write(&db, b"").unwrap();
        fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        Store::open(&db).await.unwrap();
        assert_eq!(
            fs::metadata(&db).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[tokio::test]
    async fn pragmas_are_applied() {
        let (_dir, store) = temp_store().await;
        let mut conn = store.pool.acquire().await.unwrap();
        let get = |sql| sqlx::query_scalar::<_, String>(sql);
        let journal: String = get("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        let int = |sql| sqlx::query_scalar::<_, i64>(sql);
        // FULL = 2.
        assert_eq!(
            int("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            int("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            int("PRAGMA busy_timeout")
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
            5000
        );
    }

    #[tokio::test]
    async fn reopen_keeps_data_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("punktfunk.db");
        let store = Store::open(&db).await.unwrap();
        let client = store
            .add_client(NewClient {
                name: "deck".into(),
                cert_pem: "PEM".into(),
                fingerprint: "ab".repeat(32),
                protocol: Protocol::GameStream,
            })
            .await
            .unwrap();
        let app = store
            .create_app(NewApp {
                title: "Steam".into(),
                command: Some("steam -bigpicture".into()),
                box_art: Some(vec![0x89, b'P', b'N', b'G']),
            })
            .await
            .unwrap();
        store.set_setting("hostname", &"rig").await.unwrap();
        drop(store);

        for _ in 0..2 {
            let store = Store::open(&db).await.unwrap();
            assert_eq!(store.list_clients().await.unwrap(), vec![client.clone()]);
            assert_eq!(store.app(app.id).await.unwrap(), Some(app.clone()));
            let host: Option<String> = store.get_setting("hostname").await.unwrap();
            assert_eq!(host.as_deref(), Some("rig"));
            let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(applied, MIGRATOR.iter().count() as i64);
            store.close().await;
        }
    }

    #[tokio::test]
    async fn refuses_database_from_newer_binary() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("punktfunk.db");
        let store = Store::open(&db).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, success, checksum, execution_time) \
             VALUES (99999999, 'from the future', TRUE, x'00', 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        store.close().await;

        let err = Store::open(&db).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NewerSchema {
                    version: 99999999,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer punktfunk-host"), "{err}");
    }

    #[test]
    fn now_unix_is_plausible() {
        // 2024-01-01; catches unit mistakes (ms vs s) in either direction.
        let now = now_unix();
        assert!(now > 1_704_067_200 && now < 10_000_000_000, "{now}");
    }

    #[test]
    fn an_empty_store_next_to_an_identity_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("punktfunk.db");
        // First start: no identity, nothing to say.
        assert_eq!(lost_store_warning(dir.path(), &db), None);
        fs::write(dir.path().join("host.key"), b"k").unwrap();
        fs::write(dir.path().join("host.crt"), b"c").unwrap();
        assert!(
            lost_store_warning(dir.path(), &db)
                .unwrap()
                .contains("is missing")
        );
        fs::write(&db, b"").unwrap();
        assert!(
            lost_store_warning(dir.path(), &db)
                .unwrap()
                .contains("is empty")
        );
        fs::write(&db, b"SQLite format 3\0").unwrap();
        assert_eq!(lost_store_warning(dir.path(), &db), None);
    }
}
