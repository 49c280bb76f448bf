//! The schema on PostgreSQL: the files of `migrations/postgres/`, numbered by the same
//! versions as SQLite's `migrations/*.sql`, applied in order by [`migrate`].
//!
//! Hosts may start at the same instant on an empty database. [`migrate`] runs in one
//! transaction that first takes `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`: the
//! first host creates the schema while the others wait for the lock; each of them then
//! finds the version already there and applies nothing. The lock goes with the
//! transaction, committed or not. A failed migration leaves nothing behind (PostgreSQL's
//! DDL is transactional).
//!
//! `schema_version` holds one row per version applied. A database at a version newer
//! than this build knows is refused ([`PgError::TooNew`]), as the SQLite store refuses
//! one: an older cp-recon must not write to a schema it does not know.

use chrono::{DateTime, Utc};

use super::{PgConn, PgError};
use crate::text::wire_time;

/// The advisory lock key of [`migrate`]: `cp-recmg` as big-endian bytes, apart from
/// the run lock's. Advisory locks are per database, so two cp-recon databases on one
/// server never contend.
pub const MIGRATION_LOCK_KEY: i64 = i64::from_be_bytes(*b"cp-recmg");

/// The newest version this build knows.
pub const SCHEMA_VERSION: i64 = 12;

/// Each version's SQL, in order. Version 10 is the whole schema as SQLite has it at 10;
/// each later version is the twin of SQLite's file of the same number.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        10,
        include_str!("../../../migrations/postgres/0010_schema.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/postgres/0011_report_folders.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/postgres/0012_intent_written_at.sql"),
    ),
];

/// How long a host waits for another host's migration (every statement of a migration
/// may take longer than a run's statement timeout: it may rewrite a table).
const WAIT_FOR_MIGRATION: &str = "15min";

/// Brings the database to [`SCHEMA_VERSION`]; returns the versions applied (none when
/// it was there already). `now` is written as each version's `applied_at`.
pub fn migrate(conn: &PgConn, now: DateTime<Utc>) -> Result<Vec<i64>, PgError> {
    let applied_at = wire_time(now);
    let outcome = conn.run(move |client| {
        let mut tx = client.transaction()?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '{WAIT_FOR_MIGRATION}'"
        ))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version     BIGINT PRIMARY KEY,
                 applied_at  TEXT NOT NULL
             )",
        )?;
        let found: i64 = tx
            .query_one("SELECT COALESCE(max(version), 0) FROM schema_version", &[])?
            .get(0);
        if found > SCHEMA_VERSION {
            // Dropped without commit: rolled back, nothing written.
            return Ok(Err(found));
        }
        let mut applied = Vec::new();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                &[version, &applied_at],
            )?;
            applied.push(*version);
        }
        tx.commit()?;
        Ok(Ok(applied))
    })?;
    outcome.map_err(|found| PgError::TooNew {
        target: conn.target().to_owned(),
        found,
        known: SCHEMA_VERSION,
    })
}

/// The database's schema version: 0 for a database without cp-recon's schema.
pub fn schema_version(conn: &PgConn) -> Result<i64, PgError> {
    conn.run(|client| {
        let exists: bool = client
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
            .get(0);
        if !exists {
            return Ok(0);
        }
        Ok(client
            .query_one("SELECT COALESCE(max(version), 0) FROM schema_version", &[])?
            .get(0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_in_order_and_end_at_the_known_one() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.last(), Some(&SCHEMA_VERSION));
    }

    /// Both backends are at the same version: a migration added to one is added to the
    /// other.
    #[test]
    fn postgresql_knows_the_version_sqlite_knows() {
        assert_eq!(
            usize::try_from(SCHEMA_VERSION).unwrap(),
            crate::store::sqlite::MIGRATIONS.len()
        );
    }

    /// Each PostgreSQL file is named by a version that SQLite has too, so the two
    /// backends cannot drift apart in numbering.
    #[test]
    fn each_file_is_named_by_a_version_sqlite_has() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let versions = |d: &std::path::Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.ends_with(".sql").then(|| name[..4].to_owned())
                })
                .collect();
            v.sort();
            v
        };
        let sqlite = versions(&dir);
        let pg = versions(&dir.join("postgres"));
        assert_eq!(pg.len(), MIGRATIONS.len());
        for (v, (n, _)) in pg.iter().zip(MIGRATIONS) {
            assert!(sqlite.contains(v), "postgres/{v}_* has no SQLite twin");
            assert_eq!(v.parse::<i64>().unwrap(), *n);
        }
    }
}
