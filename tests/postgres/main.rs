//! The PostgreSQL backend's foundation against a real server: sessions, TLS, the
//! password kept out of every message, the schema created once by hosts starting
//! together, a newer schema refused, and the run lock across sessions, lost with its
//! session. Each test starts a throwaway cluster of its own (`tests/common/pg.rs`) and
//! says SKIPPED when PostgreSQL is not installed, unless CP_RECON_REQUIRE_POSTGRES is
//! set.

#[path = "../common/pg.rs"]
mod pg;

mod copy;

use std::sync::{Arc, Barrier};

use chrono::{TimeZone, Utc};
use cp_recon::store::postgres::{
    PgConn, PgError, RunLock, SCHEMA_VERSION, Settings, migrate, schema_version,
};
use pg::TestPg;
use secrecy::SecretString;

fn settings(url: &str) -> Settings {
    Settings::parse("[database] url", url, None).unwrap()
}

fn connect(pg: &TestPg, db: &str) -> PgConn {
    PgConn::connect(&settings(&pg.url("postgres", db, "sslmode=disable"))).unwrap()
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 6, 0, 0).unwrap()
}

/// Whether the session is encrypted, as the server sees it.
fn encrypted(conn: &PgConn) -> bool {
    conn.run(|c| {
        Ok(c.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )?
        .get(0))
    })
    .unwrap()
}

#[test]
fn three_hosts_migrating_an_empty_database_at_the_same_instant_create_the_schema_once() {
    let Some(pg) = TestPg::start("schema created once") else {
        return;
    };
    pg.create_db("ledger");
    let url = pg.url("postgres", "ledger", "sslmode=disable");
    let start = Arc::new(Barrier::new(3));
    let hosts: Vec<_> = (0..3)
        .map(|_| {
            let start = Arc::clone(&start);
            let s = settings(&url);
            std::thread::spawn(move || {
                let conn = PgConn::connect(&s).unwrap();
                start.wait();
                migrate(&conn, now())
            })
        })
        .collect();
    let mut applied: Vec<Vec<i64>> = hosts
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap()
                .expect("every host migrates without error")
        })
        .collect();
    applied.sort();
    assert_eq!(
        applied,
        vec![vec![], vec![], (10..=SCHEMA_VERSION).collect()]
    );
    assert_eq!(
        pg.sql(
            "ledger",
            "SELECT version, applied_at FROM schema_version ORDER BY version"
        ),
        "10|2026-12-06T06:00:00.000000Z\n11|2026-12-06T06:00:00.000000Z\n12|2026-12-06T06:00:00.000000Z"
    );
    // The whole schema is there: the ledger's tables and its exactly-once indexes.
    let tables = pg.sql(
        "ledger",
        "SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
    );
    assert_eq!(
        tables,
        "alerts bad_records bank_accounts bank_transactions decisions findings matches \
         offramps payments reports run_lists runs schema_version watermarks"
    );
    assert_eq!(
        schema_version(&connect(&pg, "ledger")).unwrap(),
        SCHEMA_VERSION
    );
}

#[test]
fn the_database_refuses_a_second_tie_and_a_rewritten_decision() {
    let Some(pg) = TestPg::start("schema constraints") else {
        return;
    };
    pg.create_db("ledger");
    migrate(&connect(&pg, "ledger"), now()).unwrap();
    pg.sql(
        "ledger",
        "INSERT INTO runs (started_at, version) VALUES ('2026-12-06T06:00:00.000000Z', 't');
         INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency, rule,
             state, created_at, holds)
         VALUES (1, 'p1', 't1', 'ES00', '10.00', 'EUR', 'confident', 'intent', 'x', 1),
                (1, 'p2', 't2', 'ES00', '10.00', 'EUR', 'confident', 'failed', 'x', NULL),
                (1, 'p2', 't9', 'ES00', '10.00', 'EUR', 'confident', 'reconciled', 'x', 1);
         INSERT INTO decisions (at, by, action, kind, item_id, source)
         VALUES ('x', 'ana', 'reopen', 'payment', 'p3', 'cli')",
    );
    for (sql, refused) in [
        // A second hold on a payment or on a transaction.
        (
            "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency, rule, state, created_at, holds) VALUES (1, 'p1', 't3', 'ES00', '1', 'EUR', 'confident', 'intent', 'x', 1)",
            "matches_one_per_payment",
        ),
        (
            "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency, rule, state, created_at, holds) VALUES (1, 'p4', 't1', 'ES00', '1', 'EUR', 'confident', 'unknown', 'x', 1)",
            "matches_one_per_transaction",
        ),
        // A holding state without its hold.
        (
            "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency, rule, state, created_at, holds) VALUES (1, 'p5', 't5', 'ES00', '1', 'EUR', 'confident', 'intent', 'x', NULL)",
            "matches_check",
        ),
        ("UPDATE decisions SET by = 'eve'", "append-only"),
        ("DELETE FROM decisions", "append-only"),
        ("TRUNCATE decisions", "append-only"),
    ] {
        let out = pg.psql("ledger", sql);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sql} was accepted");
        assert!(said.contains(refused), "{sql}: {said}");
    }
    // An approve's outcome and match are written once each.
    pg.sql(
        "ledger",
        "INSERT INTO decisions (at, by, action, kind, item_id, other_id, source, run_id)
         VALUES ('x', 'ana', 'approve', 'payment', 'p1', 't1', 'cli', 1);
         UPDATE decisions SET outcome = 'reconciled', match_id = 1 WHERE action = 'approve'",
    );
    let again = pg.psql(
        "ledger",
        "UPDATE decisions SET outcome = 'failed' WHERE action = 'approve'",
    );
    assert!(!again.status.success());
    // A released hold frees the pair for another tie.
    pg.sql(
        "ledger",
        "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency, rule, state, created_at, holds) VALUES (1, 'p6', 't2', 'ES00', '1', 'EUR', 'confident', 'intent', 'x', 1)",
    );
}

#[test]
fn a_database_at_a_newer_schema_version_is_refused_and_left_as_it_is() {
    let Some(pg) = TestPg::start("newer schema refused") else {
        return;
    };
    pg.create_db("ledger");
    let conn = connect(&pg, "ledger");
    migrate(&conn, now()).unwrap();
    pg.sql(
        "ledger",
        &format!(
            "INSERT INTO schema_version VALUES ({}, 'later'); CREATE TABLE from_the_future (x int)",
            SCHEMA_VERSION + 1
        ),
    );
    let e = migrate(&conn, now()).unwrap_err();
    assert!(
        matches!(
            e,
            PgError::TooNew { found, known, .. }
                if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION
        ),
        "{e:?}"
    );
    let newer = SCHEMA_VERSION + 1;
    assert!(
        e.to_string()
            .contains(&format!("schema version {newer}, newer than")),
        "{e}"
    );
    // The versions applied, and the newer one: nothing removed, nothing added.
    assert_eq!(
        pg.sql("ledger", "SELECT count(*) FROM schema_version"),
        (SCHEMA_VERSION - 10 + 2).to_string()
    );
    assert_eq!(schema_version(&conn).unwrap(), newer);
}

#[test]
fn the_run_lock_is_exclusive_across_sessions_and_free_again_when_its_holder_ends() {
    let Some(pg) = TestPg::start("run lock") else {
        return;
    };
    pg.create_db("ledger");
    let host_a = connect(&pg, "ledger");
    let host_b = connect(&pg, "ledger");

    let lock_a = RunLock::try_take(&host_a).unwrap();
    lock_a.check().unwrap();
    let refused = RunLock::try_take(&host_b).unwrap_err();
    assert!(matches!(refused, PgError::Held { .. }), "{refused:?}");
    assert!(
        refused
            .to_string()
            .starts_with("another run is in progress"),
        "{refused}"
    );
    // Advisory locks stack within a session; a second take on it is refused here.
    assert!(matches!(
        RunLock::try_take(&host_a).unwrap_err(),
        PgError::AlreadyHeld { .. }
    ));

    // Released by unlock: the other session takes it at once.
    lock_a.unlock().unwrap();
    let lock_b = RunLock::try_take(&host_b).unwrap();
    assert!(matches!(
        RunLock::try_take(&host_a).unwrap_err(),
        PgError::Held { .. }
    ));

    // The holder's session ends without unlocking (its host died): the lock is free.
    pg.sql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'",
    );
    let _lock_a = RunLock::try_take(&host_a).unwrap();
    let lost = lock_b.check().unwrap_err();
    assert!(lost.is_session_lost(), "{lost:?}");
    drop(lock_b);

    // Dropping a lock releases it.
    drop(_lock_a);
    let host_c = connect(&pg, "ledger");
    RunLock::try_take(&host_c).unwrap();
}

#[test]
fn after_a_server_restart_the_holder_has_lost_its_session_for_good_and_another_takes_the_lock() {
    let Some(pg) = TestPg::start("fencing on restart") else {
        return;
    };
    pg.create_db("ledger");
    let host_a = connect(&pg, "ledger");
    migrate(&host_a, now()).unwrap();
    let lock_a = RunLock::try_take(&host_a).unwrap();
    let write_intent = |conn: &PgConn| {
        conn.run(|c| {
            c.batch_execute(
                "INSERT INTO runs (started_at, version) VALUES ('2026-12-06T06:00:00.000000Z', 't')",
            )
        })
    };
    write_intent(lock_a.conn()).unwrap();

    pg.restart();

    // Every write through the lost session fails, now and later: never re-opened.
    for _ in 0..3 {
        let e = write_intent(lock_a.conn()).unwrap_err();
        assert!(e.is_session_lost(), "{e:?}");
    }
    assert!(host_a.is_lost());
    assert!(lock_a.check().unwrap_err().is_session_lost());
    let said = write_intent(&host_a).unwrap_err().to_string();
    assert!(said.contains("was lost"), "{said}");

    // Another host takes the lock while the first still holds its `RunLock` value.
    let host_b = connect(&pg, "ledger");
    let lock_b = RunLock::try_take(&host_b).unwrap();
    write_intent(lock_b.conn()).unwrap();
    drop(lock_a);
    lock_b.check().unwrap();
    assert_eq!(pg.sql("ledger", "SELECT count(*) FROM runs"), "2");
}

#[test]
fn a_refused_statement_keeps_the_session_and_a_session_works_inside_a_tokio_runtime() {
    let Some(pg) = TestPg::start("statement errors") else {
        return;
    };
    let conn = connect(&pg, "postgres");
    let e = conn
        .run(|c| c.query_one("SELECT 1 / 0", &[]).map(|_| ()))
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&postgres::error::SqlState::DIVISION_BY_ZERO),
        "{e:?}"
    );
    assert!(e.to_string().contains("division by zero"), "{e}");
    assert!(!conn.is_lost());

    // The blocking client would panic if it ran on a runtime's thread; the session's
    // own thread does not care where the caller is.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let inside = conn.clone();
    let n: i32 = rt
        .block_on(async move {
            tokio::spawn(
                async move { inside.run(|c| Ok(c.query_one("SELECT 41 + 1", &[])?.get(0))) },
            )
            .await
            .unwrap()
        })
        .unwrap();
    assert_eq!(n, 42);
    // The timeouts set at connect.
    let timeouts: String = conn
        .run(|c| {
            Ok(c.query_one(
                "SELECT current_setting('statement_timeout') || ' ' || current_setting('lock_timeout') || ' ' || current_setting('TimeZone')",
                &[],
            )?
            .get(0))
        })
        .unwrap();
    assert_eq!(timeouts, "2min 10s UTC");
}

#[test]
fn tls_require_encrypts_and_verify_full_trusts_only_the_given_root_for_the_host_named() {
    let Some(pg) = TestPg::start("TLS") else {
        return;
    };
    let root = pg.root_cert.display().to_string();

    let plain = connect(&pg, "postgres");
    assert!(!encrypted(&plain));

    // require: encrypted, certificate not verified (it is self-signed).
    let require = PgConn::connect(&settings(&pg.url(
        "postgres",
        "postgres",
        "sslmode=require",
    )))
    .unwrap();
    assert!(encrypted(&require));

    // verify-full with the server's own certificate as the root, for 127.0.0.1.
    let full = PgConn::connect(&settings(&pg.url(
        "postgres",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    )))
    .unwrap();
    assert!(encrypted(&full));

    // A root that did not sign the server's certificate.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let wrong_root = pg.dir().join("other.crt");
    std::fs::write(&wrong_root, other.cert.pem()).unwrap();
    let e = PgConn::connect(&settings(&pg.url(
        "postgres",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={}", wrong_root.display()),
    )))
    .unwrap_err();
    assert!(matches!(e, PgError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("certificate"), "{e}");

    // The right root, but a host name the certificate does not name.
    let by_name = format!(
        "postgresql://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={root}",
        pg.port
    );
    let e = PgConn::connect(&settings(&by_name)).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(
        e.to_string().contains("not valid for name") || e.to_string().contains("NotValidForName"),
        "{e}"
    );

    // verify-ca checks the chain only: the same name is accepted, a wrong root is not.
    let ca = by_name.replace("verify-full", "verify-ca");
    assert!(encrypted(&PgConn::connect(&settings(&ca)).unwrap()));
    let ca_wrong = pg.url(
        "postgres",
        "postgres",
        &format!("sslmode=verify-ca&sslrootcert={}", wrong_root.display()),
    );
    assert!(PgConn::connect(&settings(&ca_wrong)).is_err());

    // verify-full without sslrootcert trusts the system's roots, which did not sign
    // the test's self-signed certificate.
    let system = pg.url("postgres", "postgres", "sslmode=verify-full");
    let e = PgConn::connect(&settings(&system)).unwrap_err();
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");

    // A root file that cannot be read is named.
    let missing = pg.url(
        "postgres",
        "postgres",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    let e = PgConn::connect(&settings(&missing)).unwrap_err();
    assert!(matches!(e, PgError::RootCert { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

#[test]
fn a_wrong_password_is_refused_and_no_error_shows_it() {
    let Some(pg) = TestPg::start("password kept out of errors") else {
        return;
    };
    const RIGHT: &str = "Right-Passw0rd-7f3a";
    const WRONG: &str = "Wr0ng-Passw0rd-91c4";
    pg.create_user("recon", RIGHT);
    for mode in ["sslmode=disable", "sslmode=require"] {
        let url = pg.url("recon", "recon", mode);
        let with = |pw: &str| {
            Settings::parse(
                "[database] url",
                &url,
                Some(SecretString::from(pw.to_owned())),
            )
            .unwrap()
        };
        let conn = PgConn::connect(&with(RIGHT)).unwrap();
        let user: String = conn
            .run(|c| Ok(c.query_one("SELECT current_user::text", &[])?.get(0)))
            .unwrap();
        assert_eq!(user, "recon");

        let s = with(WRONG);
        let e = PgConn::connect(&s).unwrap_err();
        let shown = [
            e.to_string(),
            format!("{e:?}"),
            s.to_string(),
            format!("{s:?}"),
        ];
        assert!(
            shown[0].contains("password authentication failed"),
            "{mode}: {}",
            shown[0]
        );
        for text in &shown {
            assert!(!text.contains(WRONG), "{mode}: {text}");
            assert!(!text.contains(RIGHT), "{mode}: {text}");
        }
        assert!(
            shown[0].contains("CP_RECON_DATABASE_PASSWORD"),
            "{}",
            shown[0]
        );
        // Without a password at all.
        let e = PgConn::connect(&settings(&url)).unwrap_err();
        assert!(matches!(e, PgError::Connect { .. }), "{e:?}");
        assert!(
            e.to_string().contains("the server asks for a password"),
            "{e}"
        );
    }
}

/// The PostgreSQL schema has SQLite's tables, columns (in order, with their
/// nullability and type: INTEGER as BIGINT, TEXT as TEXT), indexes and triggers at the
/// newest version, so rows carry over unchanged. Compared with every one of SQLite's own
/// migrations applied to an empty database.
#[test]
fn the_schema_has_sqlites_tables_columns_indexes_and_triggers_at_the_newest_version() {
    let Some(pg) = TestPg::start("schema parity") else {
        return;
    };
    pg.create_db("ledger");
    migrate(&connect(&pg, "ledger"), now()).unwrap();

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        usize::try_from(cp_recon::store::postgres::SCHEMA_VERSION).unwrap(),
        "{files:?}"
    );
    let lite = rusqlite::Connection::open_in_memory().unwrap();
    for f in &files {
        lite.execute_batch(&std::fs::read_to_string(dir.join(f)).unwrap())
            .unwrap();
    }
    let lite_list = |sql: &str| -> Vec<String> {
        let mut st = lite.prepare(sql).unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };

    let tables = lite_list("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    let mut pg_tables: Vec<String> = pg
        .sql(
            "ledger",
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_version' ORDER BY tablename",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    pg_tables.sort();
    assert_eq!(pg_tables, tables);

    for table in &tables {
        // name|nullable|type, in column order.
        let mut st = lite
            .prepare(&format!(
                "SELECT name, \"notnull\", pk, type FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .unwrap();
        let lite_cols: Vec<String> = st
            .query_map([], |r| {
                let name: String = r.get(0)?;
                let not_null = r.get::<_, i64>(1)? == 1 || r.get::<_, i64>(2)? > 0;
                let ty = match r.get::<_, String>(3)?.as_str() {
                    "INTEGER" => "bigint",
                    "TEXT" => "text",
                    other => panic!("{table}.{name}: type {other}"),
                };
                Ok(format!(
                    "{name}|{}|{ty}",
                    if not_null { "NO" } else { "YES" }
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let pg_cols: Vec<String> = pg
            .sql(
                "ledger",
                &format!(
                    "SELECT column_name || '|' || is_nullable || '|' || data_type FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
                ),
            )
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(pg_cols, lite_cols, "columns of {table}");
    }

    // Every named index (the primary keys' are implicit on both sides), unique where
    // SQLite's is, partial where SQLite's is.
    let mut st = lite
        .prepare(
            "SELECT m.name, l.\"unique\", l.partial FROM sqlite_master m
             JOIN pragma_index_list(m.tbl_name) l ON l.name = m.name
             WHERE m.type = 'index' AND m.sql IS NOT NULL ORDER BY m.name",
        )
        .unwrap();
    let lite_indexes: Vec<String> = st
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let pg_indexes: Vec<String> = pg
        .sql(
            "ledger",
            "SELECT c.relname || '|' || i.indisunique::int || '|' || (i.indpred IS NOT NULL)::int
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND NOT i.indisprimary AND c.relname NOT LIKE 'schema_version%'
             ORDER BY c.relname COLLATE \"C\"",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(pg_indexes, lite_indexes);

    let lite_triggers =
        lite_list("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name");
    let pg_triggers: Vec<String> = pg
        .sql(
            "ledger",
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname <> 'decisions_never_truncated' ORDER BY tgname",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(pg_triggers, lite_triggers);
}
