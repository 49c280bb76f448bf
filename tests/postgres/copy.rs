//! `cp-recon db copy --to URL`, run as a user runs it, on the database a demo run made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::pg::TestPg;

const BIN: &str = env!("CARGO_BIN_EXE_cp-recon");

/// A demo run's database (every table the job writes has rows), and a config naming it.
fn demo_database(dir: &Path) -> (PathBuf, PathBuf) {
    let out = Command::new(BIN)
        .args(["demo", "--dir"])
        .arg(dir.join("demo"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = dir.join("demo").join("recon.sqlite3");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[cryptopocket]\nbase_url = \"http://127.0.0.1:9/api/\"\napi_key = \"k\"\n\n[database]\npath = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    (db, config)
}

fn copy(config: &Path, url: &str, password: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(["db", "copy", "--to", url])
        .env("CP_RECON_API_SECRET", "s")
        .env_remove("CP_RECON_DATABASE_URL")
        .env_remove("CP_RECON_DATABASE_PASSWORD");
    if let Some(p) = password {
        cmd.env("CP_RECON_DATABASE_PASSWORD", p);
    }
    cmd.output().unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sqlite_count(db: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_demo_database_is_copied_into_an_empty_postgresql_database_whole_and_checked() {
    let Some(pg) = TestPg::start("db copy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, config) = demo_database(dir.path());
    pg.create_user("recon", "Zq7-copy-SECRET");
    let url = pg.url("recon", "recon", "sslmode=disable");

    let out = copy(&config, &url, Some("Zq7-copy-SECRET"));
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("every table's row count matches"), "{text}");
    assert!(!text.contains("Zq7-copy-SECRET"), "{text}");
    for table in cp_recon::store::postgres::copy::TABLES {
        let n = sqlite_count(&db, table);
        let copied: i64 = pg
            .sql("recon", &format!("SELECT COUNT(*) FROM {table}"))
            .parse()
            .unwrap();
        assert_eq!(copied, n, "{table}");
        assert!(
            text.contains(&format!("{table} ")),
            "{table} not listed: {text}"
        );
    }
    assert!(sqlite_count(&db, "payments") > 0 && sqlite_count(&db, "matches") > 0);
    // The values themselves, not only the counts: the ledger and the payments.
    let conn = rusqlite::Connection::open(&db).unwrap();
    for (table, columns) in [
        (
            "matches",
            "id, payment_id, transaction_id, amount, currency, state, holds, created_at, settled_at, written_at",
        ),
        (
            "payments",
            "id, status, amount, currency, concept, created_at, raw_json",
        ),
    ] {
        let sql = format!("SELECT {columns} FROM {table} ORDER BY 1, 2");
        let sqlite: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map([], |r| {
                let n = r.as_ref().column_count();
                Ok((0..n)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(x) => x.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        other => panic!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let copied = pg.sql("recon", &sql);
        assert_eq!(copied, sqlite.join("\n"), "{table}");
    }
    // The next id continues past the largest copied.
    let max: i64 = pg.sql("recon", "SELECT MAX(id) FROM runs").parse().unwrap();
    let next: i64 = pg
        .sql(
            "recon",
            "INSERT INTO runs (started_at, version) VALUES ('2026-12-06T07:00:00.000000Z', 'x') RETURNING id",
        )
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next, max + 1);

    // A second copy into the same database is refused, and changes nothing.
    let again = copy(&config, &url, Some("Zq7-copy-SECRET"));
    assert_eq!(again.status.code(), Some(1), "{}", said(&again));
    assert!(said(&again).contains("is not empty"), "{}", said(&again));
    let runs: i64 = pg
        .sql("recon", "SELECT COUNT(*) FROM runs")
        .parse()
        .unwrap();
    assert_eq!(runs, sqlite_count(&db, "runs") + 1);
}

#[test]
fn a_value_of_the_wrong_type_stops_the_copy_naming_it_and_leaves_the_target_empty() {
    let Some(pg) = TestPg::start("db copy refused") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, config) = demo_database(dir.path());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rowid: i64 = conn
        .query_row("SELECT MAX(rowid) FROM runs", [], |r| r.get(0))
        .unwrap();
    conn.execute(
        "UPDATE runs SET payments_read = 'many' WHERE rowid = ?1",
        [rowid],
    )
    .unwrap();
    drop(conn);
    pg.create_db("recon");
    let out = copy(
        &config,
        &pg.url("postgres", "recon", "sslmode=disable"),
        None,
    );
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "SQLite table runs, row {rowid}, column payments_read: text where the column holds integers"
        )),
        "{text}"
    );
    for table in cp_recon::store::postgres::copy::TABLES {
        assert_eq!(
            pg.sql("recon", &format!("SELECT COUNT(*) FROM {table}")),
            "0",
            "{table}"
        );
    }
}

#[test]
fn a_password_in_the_target_url_is_refused_without_being_shown() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let db = dir.path().join("recon.sqlite3");
    std::fs::write(
        &config,
        format!(
            "[cryptopocket]\nbase_url = \"http://127.0.0.1:9/api/\"\napi_key = \"k\"\n\n[database]\npath = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    rusqlite::Connection::open(&db).unwrap();
    let out = copy(&config, "postgresql://recon:Zq7-url-SECRET@db1/recon", None);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--to"), "{text}");
    assert!(!text.contains("Zq7-url-SECRET"), "{text}");
}

#[test]
fn a_target_that_does_not_keep_every_row_fails_the_count_check_and_keeps_nothing() {
    let Some(pg) = TestPg::start("db copy count check") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, config) = demo_database(dir.path());
    pg.create_db("recon");
    let url = pg.url("postgres", "recon", "sslmode=disable");
    // The schema as the job makes it, then a trigger that silently drops every other
    // payment: the inserts succeed, the table holds fewer rows than SQLite.
    let conn = cp_recon::store::postgres::PgConn::connect(
        &cp_recon::store::postgres::Settings::parse("--to", &url, None).unwrap(),
    )
    .unwrap();
    cp_recon::store::postgres::migrate(&conn, chrono::Utc::now()).unwrap();
    drop(conn);
    pg.sql(
        "recon",
        "CREATE FUNCTION drop_some() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF hashtext(NEW.id) % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$;
         CREATE TRIGGER drop_some BEFORE INSERT ON payments
         FOR EACH ROW EXECUTE FUNCTION drop_some()",
    );
    let out = copy(&config, &url, None);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let n = sqlite_count(&db, "payments");
    assert!(
        text.contains(&format!("table payments: {n} rows in SQLite, ")),
        "{text}"
    );
    assert!(text.contains("nothing was committed"), "{text}");
    for table in cp_recon::store::postgres::copy::TABLES {
        assert_eq!(
            pg.sql("recon", &format!("SELECT COUNT(*) FROM {table}")),
            "0",
            "{table}"
        );
    }
}
