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

/// A connection of the test's own to the store's database, beside the store.
pub enum Sql {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Sql {
    /// The rows of a query whose every column is text (or NULL): write `CAST(x AS TEXT)`
    /// for a number, which both backends read the same.
    pub fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Self::Sqlite(c) => {
                let mut st = c.prepare(sql).unwrap();
                let n = st.column_count();
                st.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            Self::Postgres(c) => c
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                .collect(),
        }
    }

    /// The rows of a query, each as its non-NULL columns joined by spaces (`-` for NULL).
    pub fn lines(&mut self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| v.unwrap_or_else(|| "-".into()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// A `SELECT`'s rows as psql prints them (`-A -t`): columns joined by `|`, rows by
    /// newlines, NULL as nothing, every value as the database writes it as text; any
    /// other statement is executed and gives nothing.
    pub fn text(&mut self, sql: &str) -> String {
        if !sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
            self.execute(sql);
            return String::new();
        }
        let rows: Vec<String> = match self {
            Self::Sqlite(c) => {
                use rusqlite::types::ValueRef;
                let mut st = c.prepare(sql).unwrap();
                let n = st.column_count();
                let mut rows = st.query([]).unwrap();
                let mut out = Vec::new();
                while let Some(r) = rows.next().unwrap() {
                    let cols: Vec<String> = (0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            ValueRef::Null => String::new(),
                            ValueRef::Integer(v) => v.to_string(),
                            ValueRef::Real(v) => v.to_string(),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                        })
                        .collect();
                    out.push(cols.join("|"));
                }
                out
            }
            Self::Postgres(c) => c
                .simple_query(sql)
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("").to_owned())
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    _ => None,
                })
                .collect(),
        };
        rows.join("\n")
    }

    pub fn execute(&mut self, sql: &str) {
        match self {
            Self::Sqlite(c) => {
                c.execute_batch(sql).unwrap();
            }
            Self::Postgres(c) => c.batch_execute(sql).unwrap(),
        }
    }
}

/// [`crate::each_backend`], with a connection of the test's own to the same database.
pub fn each_backend_sql(what: &str, test: impl Fn(&mut Store, &mut Sql)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recon.sqlite3");
    let mut sqlite = Store::open(&path).unwrap();
    let mut sql = Sql::Sqlite(rusqlite::Connection::open(&path).unwrap());
    test(&mut sqlite, &mut sql);
    drop((sqlite, sql));

    let Some(pg) = pg::TestPg::start(what) else {
        return;
    };
    pg.create_db("recon");
    let url = pg.url("postgres", "recon", "sslmode=disable");
    let settings = Settings::parse("[database] url", &url, None).unwrap();
    let mut postgres = Store::open_postgres(&settings, at(0)).unwrap();
    let client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    test(&mut postgres, &mut Sql::Postgres(Box::new(client)));
}
