//! The SQLite store: every SQL statement of the job and all row mapping. Migrations in
//! `migrations/` are embedded and applied on open; the database runs in WAL mode.
//!
//! The `matches` table is the exactly-once ledger: its partial UNIQUE indexes make SQLite,
//! not only code, refuse a second tie of a payment or a bank transaction.
//!
//! This file opens and migrates the database and holds what the other files share:
//! transactions and checkpoints, [`SharedStore`] for async callers, and the row
//! helpers. Each group of tables has a file of its own, with its `impl Store` block and
//! its tests:
//!
//! - `runs.rs`: runs, the lists each run read, and the watermarks;
//! - `records.rs`: the provider's records as the sync writes them, and matching's input;
//! - `ledger.rs`: the exactly-once ledger (`matches`);
//! - `findings.rs`: findings and the report outbox;
//! - `decisions.rs`: what people decided (`decisions`), and what the desk commands read.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use rust_decimal::Decimal;

use crate::record::{BadRecord, Record};
use crate::text::{date_from_text, wire_date, wire_time};

mod decisions;
mod findings;
mod ledger;
mod length;
mod mail_log;
mod period;
pub mod postgres;
mod records;
mod runs;
mod status;

pub use decisions::{FindingRow, NewDecision};
pub use findings::{NewReport, OutboxRow};
pub use ledger::{MatchRow, MatchState, NewMatch, Settlement};
pub use mail_log::{AlertKey, Failing, MailSent, outage_key};
pub use records::MatchingData;
pub use runs::{ListRead, RunEnd, RunId, RunRow};
pub use status::{Blocker, OpenGroup, RunLine, StatusData, UndeliveredReport};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_match_holds.sql"),
    include_str!("../../migrations/0003_matching_indexes.sql"),
    include_str!("../../migrations/0004_time_ordered_indexes.sql"),
    include_str!("../../migrations/0005_pending_payments_index.sql"),
    include_str!("../../migrations/0006_not_applied_and_vanished.sql"),
    include_str!("../../migrations/0007_decisions.sql"),
    include_str!("../../migrations/0008_reported_reconciles.sql"),
    include_str!("../../migrations/0009_mail_log.sql"),
    include_str!("../../migrations/0010_findings_by_item.sql"),
    include_str!("../../migrations/0011_report_folders.sql"),
];

/// How long a statement waits for a lock another process holds on the database (a
/// person's `sqlite3` shell, a backup) before the run fails and says who to ask.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or set up; the cause is said once, in the message.
    #[error("{}", open_message(.path, .error))]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("database {path}: migration failed")]
    Migrate {
        path: PathBuf,
        source: rusqlite_migration::Error,
    },
    /// The file was migrated by a newer version (after a rollback, say).
    #[error(
        "database {path}: schema version {found} is newer than this version of cp-recon knows ({known}): a newer cp-recon has upgraded it; run that version, or restore the copy backed up before the upgrade"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    /// An SQLite error, said once (rusqlite's error and its source repeat the same
    /// text), with the database file once a caller that knows it has named it
    /// ([`StoreError::in_file`]) and what to do about the common causes.
    #[error("{}", sql_message(.path.as_deref(), .error))]
    Sql {
        path: Option<PathBuf>,
        error: rusqlite::Error,
    },
    /// `PRAGMA quick_check` found the file damaged (it lost pages, or was cut short).
    #[error(
        "database {path} is damaged ({detail}); cp-recon will not run on it: stop the job, move the file (and any {path}-wal, {path}-shm) aside, put the last good backup in its place (see README, Troubleshooting), and run again: a full resync re-reads every record from the provider"
    )]
    Damaged { path: PathBuf, detail: String },
    /// The UNIQUE constraint refused a second tie of this payment or transaction.
    #[error(
        "database refused the tie: payment {payment} or transaction {transaction} is already tied"
    )]
    AlreadyTied {
        payment: String,
        transaction: String,
    },
    /// A stored row no longer parses (edited by hand?). Names the table and the row.
    #[error("database: {table} row {id}: {why}")]
    Corrupt {
        table: &'static str,
        id: String,
        why: String,
    },
    /// The blocking task that ran a [`SharedStore::call`] panicked or was cancelled.
    #[error("database task failed: {detail}")]
    TaskFailed { detail: String },
    /// [`Store::count`] was asked for a name that is not one of the store's tables.
    #[error("database: cannot count {name:?}: not one of the store's tables")]
    UnknownTable { name: String },
    /// [`Store::insert_intent`] got no outcome back for the one intent it asked for.
    #[error("database: no matches row was inserted for the intent")]
    NoRowInserted,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sql { path: None, error }
    }
}

impl StoreError {
    /// Names the database file in an SQLite error that does not say it yet (most
    /// statements only know their connection). Other errors are returned as they are.
    pub fn in_file(self, file: &Path) -> Self {
        match self {
            Self::Sql { path: None, error } => match Problem::of(&error) {
                Some(Problem::Damaged) => Self::Damaged {
                    path: file.to_path_buf(),
                    detail: error.to_string(),
                },
                _ => Self::Sql {
                    path: Some(file.to_path_buf()),
                    error,
                },
            },
            other => other,
        }
    }

    /// Whether another connection held the database past the busy timeout.
    pub fn is_busy(&self) -> bool {
        match self {
            Self::Sql { error, .. } | Self::Open { error, .. } => {
                Problem::of(error) == Some(Problem::Busy)
            }
            _ => false,
        }
    }
}

/// The SQLite failures a person can act on, each with what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Busy,
    ReadOnly,
    Full,
    Io,
    CannotOpen,
    Damaged,
}

impl Problem {
    fn of(e: &rusqlite::Error) -> Option<Self> {
        use rusqlite::ErrorCode as C;
        Some(match e.sqlite_error_code()? {
            C::DatabaseBusy | C::DatabaseLocked => Self::Busy,
            C::ReadOnly => Self::ReadOnly,
            C::DiskFull => Self::Full,
            C::SystemIoFailure => Self::Io,
            C::CannotOpen => Self::CannotOpen,
            C::DatabaseCorrupt | C::NotADatabase => Self::Damaged,
            _ => return None,
        })
    }

    /// What happened to the file at `path`, and what to do.
    fn describe(self, path: &str, cause: &str) -> String {
        match self {
            Self::Busy => format!(
                "another process holds a write lock on {path} ({cause}); close it (a sqlite3 shell, a backup) and the next run will continue"
            ),
            Self::ReadOnly => format!(
                "cannot write {path} ({cause}): give the job's user write access to the file and to its directory, which SQLite writes {path}-wal and {path}-shm into"
            ),
            Self::Full => format!(
                "cannot write {path}: its filesystem is full ({cause}); free space there and the next run will continue"
            ),
            Self::Io => format!(
                "cannot read or write {path} or {path}-shm ({cause}): the disk is full or failing; check `df` and the kernel log for that filesystem"
            ),
            Self::CannotOpen => format!(
                "cannot open {path} ({cause}): check that its directory exists and the job's user may write there"
            ),
            Self::Damaged => format!(
                "database {path} is damaged ({cause}); restore it from a backup (see README, Troubleshooting)"
            ),
        }
    }
}

/// Why a database could not be opened, with what to do when the cause is a known one.
fn open_message(path: &Path, e: &rusqlite::Error) -> String {
    let cause = e.to_string();
    match Problem::of(e) {
        Some(problem) => format!(
            "cannot open the database: {}",
            problem.describe(&path.display().to_string(), &cause)
        ),
        None => format!("database {}: cannot open: {cause}", path.display()),
    }
}

/// An SQLite error's text, once, with the file and what to do when they are known.
fn sql_message(path: Option<&Path>, e: &rusqlite::Error) -> String {
    let cause = e.to_string();
    match (path, Problem::of(e)) {
        (Some(p), Some(problem)) => problem.describe(&p.display().to_string(), &cause),
        (Some(p), None) => format!("database {}: {cause}", p.display()),
        (None, _) => format!("database: {cause}"),
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Checkpoints on a connection of its own, from [`Store::end_bulk`] on.
    checkpointer: Option<Checkpointer>,
    /// Between [`Store::begin_bulk`] and [`Store::end_bulk`].
    bulk: bool,
}

impl Drop for Store {
    /// Waits for the background checkpoint, so the connection's own checkpoint at close
    /// (SQLite's, when the last connection closes) finds the WAL already copied.
    fn drop(&mut self) {
        if let Some(c) = self.checkpointer.take() {
            c.finish();
        }
    }
}

/// Copies the WAL into the database file on a thread and connection of its own, when
/// asked, so that no commit of the run waits for it: a passive checkpoint never blocks
/// the writer, and the writer's own connection does not checkpoint once this exists.
/// Asking while a checkpoint runs queues one more, which then copies everything
/// committed by the time it starts.
struct Checkpointer {
    ask: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> std::io::Result<Self> {
        let (ask, asked) = std::sync::mpsc::sync_channel::<()>(1);
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let conn = Connection::open(&path).and_then(|c| {
                    c.busy_timeout(std::time::Duration::from_secs(10))?;
                    Ok(c)
                });
                let conn = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        // Not an error of the run: closing the store checkpoints.
                        tracing::warn!(path = %path.display(), error = %e, "background checkpoint failed");
                        return;
                    }
                };
                while asked.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(path = %path.display(), error = %e, "background checkpoint failed");
                    }
                }
            })?;
        Ok(Self { ask, thread })
    }

    /// Asks for a checkpoint, unless one is already queued.
    fn ask(&self) {
        let _ = self.ask.try_send(());
    }

    /// Waits for the queued checkpoint, then closes the connection.
    fn finish(self) {
        drop(self.ask);
        let _ = self.thread.join();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// The store shared by async code: each call runs on the blocking pool so SQLite work
/// (an fsync per committed intent) never stalls the runtime.
#[derive(Clone, Debug)]
pub struct SharedStore(std::sync::Arc<std::sync::Mutex<Store>>);

impl SharedStore {
    pub fn new(store: Store) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(store)))
    }

    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock();
            let path = guard.path.clone();
            f(&mut guard).map_err(|e| e.in_file(&path))
        })
        .await
        .map_err(|e| StoreError::TaskFailed {
            detail: e.to_string(),
        })?
    }

    /// The store itself, for short synchronous work (a few reads or one small write) or
    /// inside a blocking task, such as the sync's writer. Never held across an `.await`.
    /// A handle whose holder panicked is handed on as it is: every caller that opens a
    /// transaction ends it, and the sync undoes a writer's open batch.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the store back, once every other handle is gone.
    pub fn into_inner(self) -> Option<Store> {
        std::sync::Arc::try_unwrap(self.0)
            .ok()
            .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
    }
}

fn ts(t: DateTime<Utc>) -> String {
    wire_time(t)
}

impl Store {
    /// Opens (creating it and its directory if needed) and migrates to the latest schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing directory is created; any other problem surfaces from open below.
            let _ = std::fs::create_dir_all(dir);
        }
        let open_err = |error: rusqlite::Error| match Problem::of(&error) {
            Some(Problem::Damaged) => StoreError::Damaged {
                path: path.to_path_buf(),
                detail: error.to_string(),
            },
            _ => StoreError::Open {
                path: path.to_path_buf(),
                error,
            },
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        refuse_missing_pages(&conn, path).map_err(open_err)??;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        // NORMAL in WAL mode: a commit survives the process being killed; only an OS crash
        // can lose the last ones, and records are re-read by the next run anyway. Intents
        // are the exception: they are committed with FULL (`insert_intents`).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        // 32 MiB of page cache (the default is 2 MiB): a sync's batch of pages stays in
        // memory until its commit instead of spilling to the WAL page by page.
        conn.pragma_update(None, "cache_size", -32_768)
            .map_err(open_err)?;
        // An upsert inside an open transaction gets a statement journal; in memory it
        // costs a copy, in a temp file a write() per page.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // rusqlite_migration keeps the version in `user_version`; its own refusal of a
        // newer one does not say what to do.
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        if usize::try_from(found).is_ok_and(|v| v > MIGRATIONS.len()) {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                known: MIGRATIONS.len(),
            });
        }
        let migrations = Migrations::new(MIGRATIONS.iter().map(|s| M::up(s)).collect());
        migrations
            .to_latest(&mut conn)
            .map_err(|source| match &source {
                rusqlite_migration::Error::RusqliteError { err, .. }
                    if Problem::of(err) == Some(Problem::Damaged) =>
                {
                    StoreError::Damaged {
                        path: path.to_path_buf(),
                        detail: err.to_string(),
                    }
                }
                _ => StoreError::Migrate {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            checkpointer: None,
            bulk: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file's structure (`PRAGMA quick_check`: every page and record is
    /// well formed, without comparing indexes to their tables) and refuses a damaged
    /// one: a file that lost its last pages still opens, and silently lacks rows.
    pub fn check(&self) -> Result<(), StoreError> {
        let damaged = |detail: String| StoreError::Damaged {
            path: self.path.clone(),
            detail,
        };
        let found = (|| -> rusqlite::Result<Vec<String>> {
            let mut st = self.conn.prepare("PRAGMA quick_check(3)")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })();
        match found {
            Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(()),
            Ok(rows) => Err(damaged(
                rows.iter()
                    .flat_map(|r| r.lines())
                    .filter(|l| !l.starts_with("*** in database"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
            Err(e) if Problem::of(&e) == Some(Problem::Damaged) => Err(damaged(e.to_string())),
            Err(e) => Err(StoreError::from(e).in_file(&self.path)),
        }
    }

    /// How long a statement waits for another connection's lock before it fails with
    /// "database is locked" ([`BUSY_TIMEOUT`] from [`Store::open`]).
    pub fn set_busy_timeout(&mut self, wait: std::time::Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(wait)?;
        Ok(())
    }

    // ---- batches and transactions ----------------------------------------------------

    /// Opens a transaction that the following writes join, so a writer can commit many
    /// pages at once: one commit, and each touched database page written once.
    pub fn begin_batch(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// While a sync writes, the WAL is not checkpointed after every commit (each
    /// checkpoint copies and fsyncs); [`Store::end_bulk`] checkpoints once at the end.
    /// Foreign keys are not enforced meanwhile: the only ones the sync writes are the
    /// current run's id (`first_seen_run`, `last_seen_run`), which exists, and checking
    /// them would make every update keep a statement journal.
    pub fn begin_bulk(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        self.bulk = true;
        Ok(())
    }

    /// Ends a bulk write: the WAL the sync wrote is copied into the database file by a
    /// passive checkpoint on a thread and connection of its own, which runs alongside
    /// matching and reconciling instead of before them. From here on this connection
    /// never checkpoints itself: each later transaction asks that thread for another
    /// checkpoint, and closing the store waits for it.
    pub fn end_bulk(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.bulk = false;
        if self.checkpointer.is_none() {
            match Checkpointer::start(&self.path) {
                Ok(c) => self.checkpointer = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the background checkpoint; checkpointing now");
                    self.conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
                    self.conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
                    return Ok(());
                }
            }
        }
        self.checkpoint_soon();
        Ok(())
    }

    /// Asks the background checkpoint (if there is one, and no sync is writing) to copy
    /// what was committed so far.
    fn checkpoint_soon(&self) {
        if let Some(c) = self.checkpointer.as_ref().filter(|_| !self.bulk) {
            c.ask();
        }
    }

    pub fn commit_batch(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Runs `f` inside the open batch if there is one, else in a transaction of its own.
    /// (Not a savepoint: a savepoint copies every page it touches to a sub-journal.)
    fn in_tx<R>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if !self.conn.is_autocommit() {
            return f(&self.conn);
        }
        let tx = self.conn.transaction()?;
        let r = f(&tx)?;
        tx.commit()?;
        self.checkpoint_soon();
        Ok(r)
    }

    /// Undoes an open batch (after a failed write), so the connection stays usable.
    pub fn rollback_batch(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    pub fn count(&self, table: &str) -> Result<u64, StoreError> {
        // Table names cannot be bound; only known names are accepted.
        const TABLES: [&str; 12] = [
            "runs",
            "run_lists",
            "payments",
            "offramps",
            "bank_accounts",
            "bank_transactions",
            "bad_records",
            "matches",
            "findings",
            "reports",
            "watermarks",
            "decisions",
        ];
        let t = TABLES
            .iter()
            .find(|t| **t == table)
            .ok_or_else(|| StoreError::UnknownTable {
                name: table.to_owned(),
            })?;
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Read-only access for tests and ad-hoc checks.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Refuses a database file that lacks pages it needs (cut short by a full disk or a
/// copy): SQLite reads the missing part of a page as zeros and loses its rows silently.
/// The file and its WAL are read inside a read transaction, which keeps any other
/// connection's checkpoint from reusing the WAL meanwhile (see `length.rs` for what is
/// damage and what a WAL or a checkpoint in progress explains).
fn refuse_missing_pages(
    conn: &Connection,
    path: &Path,
) -> rusqlite::Result<Result<(), StoreError>> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let found = conn
        .query_row("PRAGMA schema_version", [], |_| Ok(()))
        .map(|()| length::missing_pages(path));
    conn.execute_batch("COMMIT")?;
    Ok(match found? {
        Some(detail) => Err(StoreError::Damaged {
            path: path.to_path_buf(),
            detail,
        }),
        None => Ok(()),
    })
}

/// Runs a query without parameters and hands each row to `each`.
fn read_rows(
    conn: &Connection,
    sql: &str,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        each(r)?;
    }
    Ok(())
}

fn corrupt(table: &'static str, id: &str, why: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_owned(),
        why: why.to_string(),
    }
}

fn parse_ts(table: &'static str, id: &str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(table, id, format!("bad timestamp {s:?}: {e}")))
}

fn decimal(table: &'static str, id: &str, s: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(s).map_err(|e| corrupt(table, id, format!("bad amount {s:?}: {e}")))
}

/// A text column borrowed from the row, for values converted on the spot. Anything but
/// text is refused as `Row::get::<String>` refuses it, naming the column.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    let v = r.get_ref(i)?;
    v.as_str().map_err(|_| {
        let name = r.as_ref().column_name(i).unwrap_or("?").to_owned();
        StoreError::from(rusqlite::Error::InvalidColumnType(i, name, v.data_type()))
    })
}

/// An optional text column, borrowed.
fn opt_text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>, StoreError> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => text(r, i).map(Some),
    }
}

#[cfg(test)]
mod tests;
