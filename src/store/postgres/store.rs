//! [`PgStore`]: the store's interface on one PostgreSQL session.
//!
//! Every statement of a run goes through one session, the one that holds the run lock
//! (`lock.rs`), so a host whose session is gone can write nothing more: not an intent,
//! not a settlement. Each method sends its statements to the session's thread as one
//! job ([`PgStore::run`], [`PgStore::in_tx`]): a method costs one hop to that thread,
//! and its statements one round trip each to the server; batches are sent as arrays
//! (`UNNEST`) so that a batch of a thousand rows is one statement, not a thousand.
//!
//! Values are those of the SQLite store: timestamps as RFC 3339 UTC text, amounts as
//! decimal text, flags as 0/1 `BIGINT`, every integer `BIGINT` (`i64`), so the row
//! types and their checks are shared. Text columns use the "C" collation, so text
//! sorts and compares byte by byte, as on SQLite, whatever the database's locale.

use chrono::{DateTime, Utc};
use postgres::Client;

use super::{PgConn, RunLock, Settings, migrate};
use crate::store::{CoreStore, StoreError, TABLES};

/// The store on PostgreSQL. See the module docs.
#[derive(Debug)]
pub struct PgStore {
    conn: PgConn,
    /// Held from [`PgStore::take_run_lock`] until the store is dropped.
    lock: Option<RunLock>,
    /// Between [`CoreStore::begin_batch`] and its commit or rollback.
    batch: bool,
}

impl PgStore {
    /// Connects and brings the schema to this build's version (once, however many
    /// hosts start at the same time).
    pub fn open(settings: &Settings, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let conn = PgConn::connect(settings)?;
        migrate(&conn, now)?;
        Ok(Self {
            conn,
            lock: None,
            batch: false,
        })
    }

    /// Takes the run lock on this store's session, without waiting
    /// ([`PgError::Held`] when another session has it). Held until the store is
    /// dropped, or its session is lost.
    pub fn take_run_lock(&mut self) -> Result<(), StoreError> {
        if self.lock.is_none() {
            self.lock = Some(RunLock::try_take(&self.conn)?);
        }
        Ok(())
    }

    pub fn conn(&self) -> &PgConn {
        &self.conn
    }

    /// Runs `f` with the session's client, on the session's thread: reads, and a
    /// write that is one statement (inside the open batch, if there is one).
    pub(crate) fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
        R: Send + 'static,
    {
        Ok(self.conn.run(f)?)
    }

    /// Runs `f` in a transaction: the open batch's if there is one, else one of its
    /// own, committed when `f` succeeds and rolled back when it fails, all in one job
    /// on the session's thread.
    pub(crate) fn in_tx<R, F>(&mut self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
        R: Send + 'static,
    {
        if self.batch {
            return self.run(f);
        }
        self.run(move |c| {
            c.batch_execute("BEGIN")?;
            match f(c) {
                Ok(r) => {
                    c.batch_execute("COMMIT")?;
                    Ok(r)
                }
                Err(e) => {
                    // The statement's error is the one to report; a failed rollback
                    // means the session is gone, which `PgConn::run` finds out itself.
                    let _ = c.batch_execute("ROLLBACK");
                    Err(e)
                }
            }
        })
    }

    /// The database server's clock: the one clock every host shares.
    fn server_now(&self) -> Result<DateTime<Utc>, StoreError> {
        let text: String = self.run(|c| {
            Ok(c.query_one(
                "SELECT to_char(statement_timestamp() AT TIME ZONE 'UTC',
                                'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                &[],
            )?
            .get(0))
        })?;
        crate::store::parse_ts("now()", "server", &text)
    }
}

impl CoreStore for PgStore {
    fn file(&self) -> Option<&std::path::Path> {
        None
    }

    /// The server keeps its own pages (and checksums, where the cluster has them).
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn set_busy_timeout(&mut self, wait: std::time::Duration) -> Result<(), StoreError> {
        let ms = wait.as_millis();
        self.run(move |c| c.batch_execute(&format!("SET lock_timeout = {ms}")))
    }

    /// A batch holds provider records, which the next run reads again: its commit does
    /// not wait for the server's WAL flush (`synchronous_commit = off`, as SQLite's
    /// `synchronous = NORMAL`); a server crash can lose the last batches, never leave
    /// one half-written. Intents are committed with the flush whatever this says.
    fn begin_batch(&mut self) -> Result<(), StoreError> {
        self.run(|c| c.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"))?;
        self.batch = true;
        Ok(())
    }

    fn begin_bulk(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn end_bulk(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn commit_batch(&mut self) -> Result<(), StoreError> {
        self.batch = false;
        self.run(|c| c.batch_execute("COMMIT"))
    }

    fn rollback_batch(&mut self) {
        if std::mem::take(&mut self.batch) {
            let _ = self.run(|c| c.batch_execute("ROLLBACK"));
        }
    }

    fn count(&self, table: &str) -> Result<u64, StoreError> {
        let t = TABLES
            .iter()
            .find(|t| **t == table)
            .ok_or_else(|| StoreError::UnknownTable {
                name: table.to_owned(),
            })?;
        let sql = format!("SELECT COUNT(*) FROM {t}");
        let n: i64 = self.run(move |c| Ok(c.query_one(&sql, &[])?.get(0)))?;
        Ok(n as u64)
    }

    fn shared_by_hosts(&self) -> bool {
        true
    }

    fn clock(&self) -> Result<DateTime<Utc>, StoreError> {
        self.server_now()
    }
}

/// `sql` prepared on this session, once: the server parses and plans it the first
/// time, and each later execution only binds (the statements a sync runs a thousand
/// times). The cache lives on the session's own thread (`conn.rs`), so it holds this
/// session's statements only and ends with it.
pub(crate) fn prepared(
    c: &mut Client,
    sql: &str,
    types: &[postgres::types::Type],
) -> Result<postgres::Statement, postgres::Error> {
    thread_local! {
        static PREPARED: std::cell::RefCell<std::collections::HashMap<String, postgres::Statement>> =
            std::cell::RefCell::default();
    }
    if let Some(st) = PREPARED.with(|p| p.borrow().get(sql).cloned()) {
        return Ok(st);
    }
    let st = c.prepare_typed(sql, types)?;
    PREPARED.with(|p| p.borrow_mut().insert(sql.to_owned(), st.clone()));
    Ok(st)
}
