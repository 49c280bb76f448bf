//! The SQLite backend, the embedded default: one file, WAL mode, migrations in
//! `migrations/` embedded and applied on open.
//!
//! The `matches` table is the exactly-once ledger: its partial UNIQUE indexes make SQLite,
//! not only code, refuse a second tie of a payment or a bank transaction.
//!
//! This file opens and migrates the database and holds what the other files share:
//! transactions and checkpoints and the row helpers. Each group of tables has a file of
//! its own, implementing its part of the store's interface (`store/<group>.rs`), with
//! its tests.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use super::{CoreStore, StoreError, TABLES};

mod decisions;
mod findings;
mod ledger;
mod length;
mod mail_log;
mod period;
mod records;
mod runs;
mod status;

pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_initial.sql"),
    include_str!("../../../migrations/0002_match_holds.sql"),
    include_str!("../../../migrations/0003_matching_indexes.sql"),
    include_str!("../../../migrations/0004_time_ordered_indexes.sql"),
    include_str!("../../../migrations/0005_pending_payments_index.sql"),
    include_str!("../../../migrations/0006_not_applied_and_vanished.sql"),
    include_str!("../../../migrations/0007_decisions.sql"),
    include_str!("../../../migrations/0008_reported_reconciles.sql"),
    include_str!("../../../migrations/0009_mail_log.sql"),
    include_str!("../../../migrations/0010_findings_by_item.sql"),
    include_str!("../../../migrations/0011_report_folders.sql"),
    include_str!("../../../migrations/0012_intent_written_at.sql"),
];

/// How long a statement waits for a lock another process holds on the database (a
/// person's `sqlite3` shell, a backup) before the run fails and says who to ask.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The SQLite failures a person can act on, each with what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Problem {
    Busy,
    ReadOnly,
    Full,
    Io,
    CannotOpen,
    Damaged,
}

impl Problem {
    pub(in crate::store) fn of(e: &rusqlite::Error) -> Option<Self> {
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
pub(in crate::store) fn open_message(path: &Path, e: &rusqlite::Error) -> String {
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
pub(in crate::store) fn sql_message(path: Option<&Path>, e: &rusqlite::Error) -> String {
    let cause = e.to_string();
    match (path, Problem::of(e)) {
        (Some(p), Some(problem)) => problem.describe(&p.display().to_string(), &cause),
        (Some(p), None) => format!("database {}: {cause}", p.display()),
        (None, _) => format!("database: {cause}"),
    }
}

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Checkpoints on a connection of its own, from [`Store::end_bulk`] on.
    checkpointer: Option<Checkpointer>,
    /// Between [`Store::begin_bulk`] and [`Store::end_bulk`].
    bulk: bool,
}

impl Drop for SqliteStore {
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

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// The store shared by async code: each call runs on the blocking pool so SQLite work
impl SqliteStore {
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

    /// Asks the background checkpoint (if there is one, and no sync is writing) to copy
    /// what was committed so far.
    fn checkpoint_soon(&self) {
        if let Some(c) = self.checkpointer.as_ref().filter(|_| !self.bulk) {
            c.ask();
        }
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

    /// Read-only access for tests and ad-hoc checks.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl CoreStore for SqliteStore {
    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn check(&self) -> Result<(), StoreError> {
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

    fn set_busy_timeout(&mut self, wait: std::time::Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(wait)?;
        Ok(())
    }

    fn begin_batch(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn begin_bulk(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        self.bulk = true;
        Ok(())
    }

    fn end_bulk(&mut self) -> Result<(), StoreError> {
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

    fn commit_batch(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn rollback_batch(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn count(&self, table: &str) -> Result<u64, StoreError> {
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

    fn as_sqlite(&self) -> Option<&SqliteStore> {
        Some(self)
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
pub(super) fn read_rows(
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

pub(super) fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    let v = r.get_ref(i)?;
    v.as_str().map_err(|_| {
        let name = r.as_ref().column_name(i).unwrap_or("?").to_owned();
        StoreError::from(rusqlite::Error::InvalidColumnType(i, name, v.data_type()))
    })
}

/// An optional text column, borrowed.
pub(super) fn opt_text<'r>(
    r: &'r rusqlite::Row<'_>,
    i: usize,
) -> Result<Option<&'r str>, StoreError> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => text(r, i).map(Some),
    }
}

#[cfg(test)]
mod tests;
