//! Opening the configured store with the run lock: one run or desk command at a time.
//!
//! - SQLite: the lock file beside the database (`lock.rs`), taken before the file is
//!   opened.
//! - PostgreSQL: the advisory lock of the store's own session (`store/postgres/lock.rs`),
//!   taken right after the session opens and the schema is brought up to date. Every
//!   statement of the run, each intent first, goes through that session: a host whose
//!   session is gone (and its lock with it) can write nothing more, so it calls nothing
//!   more.
//!
//! Either way a second run, on this host or another, is refused at once
//! ([`OpenError::Locked`]: the CLI's exit 75), never made to wait.

use chrono::{DateTime, Utc};

use crate::config::DatabaseSettings;
use crate::lock::{LockError, RunLock};
use crate::store::postgres::{PgError, PgStore};
use crate::store::{Store, StoreError};

/// What holds the run lock while it lives. Bind it before the store so that it is
/// dropped after it (the file lock's descriptor must outlive every SQLite connection;
/// PostgreSQL's lock lives in the store's session itself).
#[derive(Debug)]
pub enum Held {
    File(RunLock),
    /// The store's PostgreSQL session holds it.
    Session,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another run or desk command holds the run lock.
    #[error("{0}")]
    Locked(String),
    #[error("cannot take the run lock")]
    Lock(#[source] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes the run lock and opens the store, migrated to this build's schema.
pub fn open_locked(db: &DatabaseSettings, now: DateTime<Utc>) -> Result<(Held, Store), OpenError> {
    match db {
        DatabaseSettings::Sqlite { path } => {
            let lock = match RunLock::acquire(path) {
                Ok(l) => l,
                Err(e @ LockError::Held { .. }) => return Err(OpenError::Locked(e.to_string())),
                Err(e) => return Err(OpenError::Lock(e)),
            };
            Ok((Held::File(lock), Store::open(path)?))
        }
        DatabaseSettings::Postgres(settings) => {
            let mut store = PgStore::open(settings, now)?;
            match store.take_run_lock() {
                Ok(()) => Ok((Held::Session, Store::from_backend(store))),
                Err(StoreError::Postgres(e @ PgError::Held { .. })) => {
                    Err(OpenError::Locked(e.to_string()))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Opens the store without the run lock, to read it while a run may be writing
/// (`status`). `None` for an SQLite file that does not exist yet.
pub fn open_to_read(
    db: &DatabaseSettings,
    now: DateTime<Utc>,
) -> Result<Option<Store>, StoreError> {
    match db {
        DatabaseSettings::Sqlite { path } if !path.exists() => Ok(None),
        DatabaseSettings::Sqlite { path } => Store::open(path).map(Some),
        DatabaseSettings::Postgres(settings) => Store::open_postgres(settings, now).map(Some),
    }
}
