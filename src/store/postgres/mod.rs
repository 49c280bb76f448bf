//! The PostgreSQL backend, for teams whose job runs on more than one host: one shared
//! database, one run at a time across hosts.
//!
//! - `store`: [`PgStore`], the store's interface on one session, and its files, one
//!   per group of tables as in `store/sqlite/`;
//! - `settings`: the `postgresql://` URL and the password, read once; nothing shows a
//!   password;
//! - `tls`: `sslmode` `require`, `verify-ca`, `verify-full` with rustls;
//! - `conn`: [`PgConn`], one session on a thread of its own, never re-opened once lost;
//! - `migrate`: the schema (`migrations/postgres/`), created once however many hosts
//!   start at the same time on an empty database;
//! - `lock`: [`RunLock`], the run lock across hosts, and how it fences a host that lost
//!   it;
//! - `copy`: `cp-recon db copy`, an SQLite database into an empty PostgreSQL one.
//!
//! The tests start a throwaway cluster (`tests/common/pg.rs`, `tests/postgres/`); see
//! TESTING.md.

use std::error::Error as _;
use std::path::PathBuf;

mod conn;
pub mod copy;
mod decisions;
mod findings;
mod ledger;
mod lock;
mod mail_log;
mod migrate;
mod period;
mod records;
mod runs;
pub mod settings;
mod status;
mod store;
mod tls;

pub use conn::{CONNECT_TIMEOUT, LOCK_TIMEOUT, PgConn, STATEMENT_TIMEOUT};
pub use lock::{RUN_LOCK_KEY, RunLock};
pub use migrate::{MIGRATION_LOCK_KEY, SCHEMA_VERSION, migrate, schema_version};
pub use settings::{Roots, Settings, SettingsError, SslMode};
pub use store::PgStore;

/// What went wrong with the PostgreSQL database. No variant holds or shows a password:
/// the server's messages name the user, never the password, and the settings are shown
/// without it.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot connect to the {target}: {detail}")]
    Connect { target: String, detail: String },
    /// The `sslrootcert` file cannot be read or holds no usable certificate.
    #[error("database url: sslrootcert {}: {detail}", .path.display())]
    RootCert { path: PathBuf, detail: String },
    #[error("database TLS: {detail}")]
    Tls { detail: String },
    /// The session ended (the server restarted, the network was cut, the backend was
    /// terminated). It is never re-opened: whatever this session held, the run lock
    /// first, is gone, so the run stops here and the next run (on any host) settles
    /// what it left in doubt.
    #[error(
        "the session with the {target} was lost ({detail}); nothing more is done on it: the run stops, and the next run, on any host, settles what this one left in doubt"
    )]
    SessionLost { target: String, detail: String },
    /// A statement the server refused; the session is still there.
    #[error("{target}: {}", describe(.source))]
    Sql {
        target: String,
        source: postgres::Error,
    },
    /// Another session (another host's run, or a desk command) holds the run lock.
    #[error(
        "another run is in progress: a session of another cp-recon (on this host or another) holds the run lock of the {target}"
    )]
    Held { target: String },
    /// This session already holds the run lock.
    #[error("the run lock of the {target} is already held by this session")]
    AlreadyHeld { target: String },
    /// The database was migrated by a newer cp-recon.
    #[error(
        "the {target} is at schema version {found}, newer than this version of cp-recon knows ({known}): a newer cp-recon has upgraded it; run that version, or restore the dump taken before the upgrade"
    )]
    TooNew {
        target: String,
        found: i64,
        known: i64,
    },
}

impl PgError {
    /// Whether the session is gone (and the run lock with it).
    pub fn is_session_lost(&self) -> bool {
        matches!(self, Self::SessionLost { .. })
    }

    /// The server's error code, for a statement it refused.
    pub fn code(&self) -> Option<&postgres::error::SqlState> {
        match self {
            Self::Sql { source, .. } => source.code(),
            _ => None,
        }
    }
}

/// A client error with its causes, once each: the client's own text is only its kind
/// ("db error"); the server's message or the I/O error is in its source.
pub(crate) fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
