//! The run lock across hosts: `pg_try_advisory_lock(RUN_LOCK_KEY)`, taken on the
//! store's own session, held for the whole run (and for each desk command), released
//! by [`RunLock::unlock`], on drop, or by the server when the session ends however it
//! ends (a host killed, a network cut, the server restarted). A second session, on
//! this host or another, is refused at once ([`PgError::Held`]: the CLI's exit 75);
//! it never waits, as ShedLock's and Quartz's nodes skip a job another node runs.
//!
//! The lock must be taken on the session that writes the run's intents, never on a
//! pooled connection: a session returned to a pool keeps its advisory locks, and a lock
//! on a session of its own would not fence the writes of another.
//!
//! # Fencing
//!
//! The exactly-once ledger writes each reconcile call's intent, and commits it, before
//! the call. On PostgreSQL that write goes through the session that holds this lock.
//! If the session is gone, the lock is gone with it (another host may hold it now),
//! and so is the write: [`PgConn::run`] fails with [`PgError::SessionLost`] and no
//! call follows. The session is never re-opened behind the run's back, so a run that
//! lost its lock cannot write another intent under it. The run stops; the next run, on
//! any host, settles what it left in doubt, as after a kill today.
//! [`RunLock::check`] asks the server whether this session still holds the lock, for
//! a caller that wants to check before a call as well; it narrows the window below but
//! cannot close it.
//!
//! ## Between an intent's commit and its call
//!
//! The lock can be lost after an intent is committed and before (or while) its HTTP
//! call is sent: host A commits the intent, the database restarts, host B takes the
//! lock, and A's call, already on its way, still reaches the provider. A learns of the
//! loss only at its next write (the call's settlement), which fails. So a call can
//! land after another host has started.
//!
//! So recovery leaves an `intent` another run wrote **in doubt and holding** (nothing
//! calls that payment or that credit, and it is not re-read yet) until it is older, by
//! the database server's clock (`matches.written_at` against the server's `now`), than
//! the longest its call can still take to reach the provider: `matching::in_flight`
//! decides it, `reconcile::recover` applies it. The hosts' clocks may differ; the
//! server's is the one clock they share.

use std::sync::atomic::Ordering;

use super::{PgConn, PgError};

/// The run lock's key: `cp-recon` as big-endian bytes. The server shows it in
/// `pg_locks` as `classid` 1668296050 and `objid` 1701015406 (`locktype = 'advisory'`,
/// `objsubid = 1`). Advisory locks are per database: two cp-recon databases on one
/// server have a lock each.
pub const RUN_LOCK_KEY: i64 = i64::from_be_bytes(*b"cp-recon");

/// Held while it lives, on the session of the [`PgConn`] it was taken on.
#[derive(Debug)]
pub struct RunLock {
    conn: PgConn,
    held: bool,
}

impl RunLock {
    /// Takes the run lock on `conn`'s session without waiting: [`PgError::Held`] when
    /// another session holds it, [`PgError::AlreadyHeld`] when this one does.
    pub fn try_take(conn: &PgConn) -> Result<Self, PgError> {
        if conn.run_lock_flag().swap(true, Ordering::SeqCst) {
            return Err(PgError::AlreadyHeld {
                target: conn.target().to_owned(),
            });
        }
        let taken = conn.run(|client| {
            Ok(client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY])?
                .get::<_, bool>(0))
        });
        match taken {
            Ok(true) => Ok(Self {
                conn: conn.clone(),
                held: true,
            }),
            Ok(false) => {
                conn.run_lock_flag().store(false, Ordering::SeqCst);
                Err(PgError::Held {
                    target: conn.target().to_owned(),
                })
            }
            Err(e) => {
                conn.run_lock_flag().store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// The session the lock is held on: the one to write intents through.
    pub fn conn(&self) -> &PgConn {
        &self.conn
    }

    /// Asks the server whether this session still holds the lock:
    /// [`PgError::SessionLost`] when the session is gone or the lock is not held.
    pub fn check(&self) -> Result<(), PgError> {
        let held = self.conn.run(|client| {
            Ok(client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks
                      WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid
                        AND objsubid = 1)",
                    &[&RUN_LOCK_KEY],
                )?
                .get::<_, bool>(0))
        })?;
        if held {
            Ok(())
        } else {
            Err(PgError::SessionLost {
                target: self.conn.target().to_owned(),
                detail: "the run lock is no longer held by this session".into(),
            })
        }
    }

    /// Releases the lock now. When the session is already gone, so is the lock.
    pub fn unlock(mut self) -> Result<(), PgError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), PgError> {
        if !self.held {
            return Ok(());
        }
        self.held = false;
        self.conn.run_lock_flag().store(false, Ordering::SeqCst);
        if self.conn.is_lost() {
            return Ok(());
        }
        match self.conn.run(|client| {
            client.execute("SELECT pg_advisory_unlock($1)", &[&RUN_LOCK_KEY])?;
            Ok(())
        }) {
            Err(e) if e.is_session_lost() => Ok(()),
            other => other,
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!(error = %e, "could not release the run lock; it goes when the session ends");
        }
    }
}
