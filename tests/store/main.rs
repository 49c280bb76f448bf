//! The store's conformance suite: every test runs against both backends, a fresh SQLite
//! file and a fresh PostgreSQL database in a throwaway cluster (`tests/common/pg.rs`;
//! without the server the PostgreSQL half says SKIPPED, unless CP_RECON_REQUIRE_POSTGRES
//! is set). A test states what the store's interface promises, never how one backend
//! keeps it; each backend's own behaviour (SQLite's file checks, PostgreSQL's session
//! and lock) is tested beside it (`src/store/sqlite/`, `tests/postgres/`).

#[path = "../common/pg.rs"]
mod pg;

mod decisions;
mod findings;
mod ledger;
mod mail_log;
mod period;
mod records;
mod runs;
mod status;

use chrono::{DateTime, TimeZone, Utc};
use cp_recon::store::Store;
use cp_recon::store::postgres::Settings;

/// A fixed instant, 2026-12-06 06:00 UTC, plus `minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 6, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

/// Runs `test` on a new SQLite store, then on a new PostgreSQL database. `what` names
/// the test in a SKIPPED line.
pub fn each_backend(what: &str, test: impl Fn(&mut Store)) {
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = Store::open(&dir.path().join("recon.sqlite3")).unwrap();
    test(&mut sqlite);
    drop(sqlite);

    let Some(pg) = pg::TestPg::start(what) else {
        return;
    };
    pg.create_db("recon");
    let url = pg.url("postgres", "recon", "sslmode=disable");
    let settings = Settings::parse("[database] url", &url, None).unwrap();
    let mut postgres = Store::open_postgres(&settings, at(0)).unwrap();
    test(&mut postgres);
}
