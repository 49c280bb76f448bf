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

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::config::{DatabaseSettings, ENV_DATABASE_PASSWORD, Settings};
use crate::exit::{EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE};
use crate::lock::{LockError, RunLock};
use crate::store::postgres::copy::copy_sqlite;
use crate::store::postgres::{
    PgConn, PgError, PgStore, RunLock as PgRunLock, Settings as PgSettings, migrate,
};
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

/// `cp-recon db copy --to URL`: copies the configured SQLite database into an empty
/// PostgreSQL database, holding the run lock of both (no run writes to either
/// meanwhile), and prints what it copied. Returns the exit code.
pub fn copy_cli(settings: &Settings, to: &str, password_file: Option<&Path>) -> u8 {
    match copy(settings, to, password_file) {
        Ok(text) => {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            EXIT_OK
        }
        Err(CopyCliError::Locked(msg)) => {
            crate::telemetry::fail(&format!("{msg}; nothing copied"));
            EXIT_LOCKED
        }
        Err(CopyCliError::Usage(msg)) => {
            crate::telemetry::fail(&format!("error: {msg}"));
            EXIT_USAGE
        }
        Err(CopyCliError::Failed(e)) => {
            crate::telemetry::fail(&format!("error: {e:#}"));
            EXIT_FAILED
        }
    }
}

enum CopyCliError {
    Locked(String),
    Usage(String),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for CopyCliError {
    fn from(e: E) -> Self {
        Self::Failed(e.into())
    }
}

fn copy(
    settings: &Settings,
    to: &str,
    password_file: Option<&Path>,
) -> Result<String, CopyCliError> {
    let Some(path) = settings.database.sqlite_path() else {
        return Err(CopyCliError::Usage(format!(
            "the configured {} is not an SQLite file: db copy copies an SQLite database into PostgreSQL",
            settings.database.describe()
        )));
    };
    if !path.exists() {
        return Err(CopyCliError::Usage(format!(
            "no database at {}: nothing to copy",
            path.display()
        )));
    }
    let password = match password_file {
        Some(f) => Some(
            crate::config::read_secret_file(f)
                .map_err(|e| CopyCliError::Usage(format!("--password-file: {e}")))?,
        ),
        None => std::env::var(ENV_DATABASE_PASSWORD)
            .ok()
            .filter(|p| !p.is_empty())
            .map(SecretString::from),
    };
    let target =
        PgSettings::parse("--to", to, password).map_err(|e| CopyCliError::Usage(e.to_string()))?;
    let (_lock, source) = match open_locked(&settings.database, Utc::now()) {
        Ok(opened) => opened,
        Err(OpenError::Locked(why)) => return Err(CopyCliError::Locked(why)),
        Err(e) => return Err(e.into()),
    };
    let conn = PgConn::connect(&target)?;
    migrate(&conn, Utc::now())?;
    let _target_lock = match PgRunLock::try_take(&conn) {
        Ok(l) => l,
        Err(e @ PgError::Held { .. }) => return Err(CopyCliError::Locked(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let started = std::time::Instant::now();
    let copied = copy_sqlite(source.connection(), &conn)
        .with_context(|| format!("cannot copy {} into the {}", path.display(), conn.target()))?;
    let mut text = format!(
        "copied {} into the {} in {:.1} s; every table's row count matches:\n",
        path.display(),
        conn.target(),
        started.elapsed().as_secs_f64()
    );
    for c in &copied {
        let _ = writeln!(text, "  {:<18} {:>10}", c.table, c.rows);
    }
    let _ = write!(
        text,
        "next: in config.toml, replace [database] path with url = \"{}\" (the password in {ENV_DATABASE_PASSWORD} or password_file), and keep {} as a backup",
        target,
        path.display()
    );
    Ok(text)
}
