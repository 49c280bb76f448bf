//! The store: every statement of the job and all row mapping, behind one interface
//! with two implementations.
//!
//! - `sqlite/`: the embedded default, one file on one host (WAL mode, migrations in
//!   `migrations/`).
//! - `postgres/`: one database shared by hosts, for teams whose job runs on more than one
//!   (migrations in `migrations/postgres/`, versioned together with SQLite's).
//!
//! The interface is [`Backend`]: one trait per group of tables, each in a file of its
//! own here with the rows it reads and writes, implemented by the file of the same name
//! in each backend's folder:
//!
//! - `runs.rs`: runs, the lists each run read, and the watermarks;
//! - `records.rs`: the provider's records as the sync writes them, and matching's input;
//! - `ledger.rs`: the exactly-once ledger (`matches`);
//! - `findings.rs`: findings and the report outbox;
//! - `decisions.rs`: what people decided (`decisions`), and what the desk commands read;
//! - `mail_log.rs`, `status.rs`, `period.rs`: what was mailed, the status screen, and a
//!   digest's period.
//!
//! The run, matching and reports hold a [`Store`] and never know which backend it is.
//! The `matches` table is the exactly-once ledger on both: its partial UNIQUE indexes
//! make the database, not only code, refuse a second tie of a payment or a bank
//! transaction.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use sqlite::{Problem, open_message, sql_message};

use crate::record::{BadRecord, Record};
use crate::text::{date_from_text, wire_date, wire_time};

mod decisions;
mod findings;
mod ledger;
mod mail_log;
mod period;
pub mod postgres;
mod records;
mod runs;
pub mod sqlite;
mod status;

pub use decisions::{DecisionStore, FindingRow, NewDecision};
pub use findings::{FindingStore, NewReport, OutboxRow};
pub use ledger::{LedgerStore, MatchRow, MatchState, NewMatch, Settlement};
pub use mail_log::{AlertKey, Failing, MailLogStore, MailSent, outage_key};
pub use period::PeriodStore;
pub use records::{MatchingData, RecordStore};
pub use runs::{ListRead, RunEnd, RunId, RunRow, RunStore};
pub use sqlite::SqliteStore;
pub use status::{Blocker, OpenGroup, RunLine, StatusData, StatusStore, UndeliveredReport};

/// What every backend does besides its groups' statements: say what it is, check
/// itself, and let a writer (the sync) commit many batches as one transaction.
pub trait CoreStore {
    /// The database file, for a backend that is one.
    fn file(&self) -> Option<&Path>;

    /// Checks the database's structure and refuses a damaged one (SQLite's
    /// `PRAGMA quick_check`: a file that lost its last pages still opens, and silently
    /// lacks rows). A server keeps its own pages; there it checks nothing.
    fn check(&self) -> Result<(), StoreError>;

    /// How long a statement waits for a lock another connection or session holds
    /// before it fails and says so.
    fn set_busy_timeout(&mut self, wait: std::time::Duration) -> Result<(), StoreError>;

    /// Opens a transaction that the following writes join, so a writer can commit many
    /// pages at once: one commit, and each touched database page written once.
    fn begin_batch(&mut self) -> Result<(), StoreError>;

    /// A sync is about to write many batches: the backend may defer work that each
    /// commit would otherwise do (SQLite's checkpoints) until [`CoreStore::end_bulk`].
    fn begin_bulk(&mut self) -> Result<(), StoreError>;

    /// Ends a bulk write, and does what it deferred.
    fn end_bulk(&mut self) -> Result<(), StoreError>;

    fn commit_batch(&mut self) -> Result<(), StoreError>;

    /// Undoes an open batch (after a failed write), so the connection stays usable.
    fn rollback_batch(&mut self);

    /// The rows of one of the store's tables.
    fn count(&self, table: &str) -> Result<u64, StoreError>;

    /// Whether hosts other than this one may run against this database (PostgreSQL):
    /// recovery then leaves another run's fresh intent in doubt until its call can no
    /// longer be on its way (`matching::in_flight`).
    fn shared_by_hosts(&self) -> bool {
        false
    }

    /// The database's clock: the server's on PostgreSQL, the one clock every host
    /// shares; this host's on SQLite.
    fn clock(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(Utc::now())
    }

    /// This store, when it is SQLite's.
    fn as_sqlite(&self) -> Option<&SqliteStore> {
        None
    }
}

/// The store's whole interface: what a backend implements.
pub trait Backend:
    CoreStore
    + RunStore
    + RecordStore
    + LedgerStore
    + FindingStore
    + DecisionStore
    + MailLogStore
    + StatusStore
    + PeriodStore
    + Send
    + std::fmt::Debug
{
}

impl<T> Backend for T where
    T: CoreStore
        + RunStore
        + RecordStore
        + LedgerStore
        + FindingStore
        + DecisionStore
        + MailLogStore
        + StatusStore
        + PeriodStore
        + Send
        + std::fmt::Debug
{
}

/// The tables the store counts ([`CoreStore::count`]): table names cannot be bound,
/// so only these are accepted.
pub(crate) const TABLES: [&str; 12] = [
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

/// The job's store, on whichever backend the configuration names. Its methods are the
/// [`Backend`]'s.
#[derive(Debug)]
pub struct Store {
    inner: Box<dyn Backend>,
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.inner
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.inner
    }
}

impl Store {
    /// Opens (creating it and its directory if needed) and migrates an SQLite database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        SqliteStore::open(path).map(Self::from_backend)
    }

    /// Connects to a PostgreSQL database and brings its schema to this build's version.
    pub fn open_postgres(
        settings: &postgres::Settings,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        postgres::PgStore::open(settings, now).map(Self::from_backend)
    }

    pub fn from_backend(backend: impl Backend + 'static) -> Self {
        Self {
            inner: Box::new(backend),
        }
    }

    /// The SQLite connection, for tests and ad-hoc checks of an SQLite store.
    ///
    /// # Panics
    /// On another backend.
    pub fn connection(&self) -> &rusqlite::Connection {
        self.inner
            .as_sqlite()
            .expect("Store::connection on a store that is not SQLite")
            .connection()
    }
}

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
    /// A PostgreSQL error (the session, the server, or a statement it refused).
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
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
            let path = guard.file().map(Path::to_path_buf);
            f(&mut guard).map_err(|e| match &path {
                Some(p) => e.in_file(p),
                None => e,
            })
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

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    wire_time(t)
}

pub(crate) fn corrupt(table: &'static str, id: &str, why: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_owned(),
        why: why.to_string(),
    }
}

pub(crate) fn parse_ts(
    table: &'static str,
    id: &str,
    s: &str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(table, id, format!("bad timestamp {s:?}: {e}")))
}

pub(crate) fn decimal(table: &'static str, id: &str, s: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(s).map_err(|e| corrupt(table, id, format!("bad amount {s:?}: {e}")))
}
