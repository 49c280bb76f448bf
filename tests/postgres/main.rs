//! The PostgreSQL backend's foundation against a real server: sessions, TLS, the
//! password kept out of every message, the schema created once by hosts starting
//! together, a newer schema refused, and the run lock across sessions, lost with its
//! session. Each test starts a throwaway cluster of its own (`tests/common/pg.rs`) and
//! says SKIPPED when PostgreSQL is not installed, unless CP_RECON_REQUIRE_POSTGRES is
//! set.

#[path = "../common/pg.rs"]
mod pg;

use cp_recon::store::postgres::{PgConn, PgError, Settings};
use pg::TestPg;
use secrecy::SecretString;

fn settings(url: &str) -> Settings {
    Settings::parse("[database] url", url, None).unwrap()
}

fn connect(pg: &TestPg, db: &str) -> PgConn {
    PgConn::connect(&settings(&pg.url("postgres", db, "sslmode=disable"))).unwrap()
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
        // Without a password at all.
        let e = PgConn::connect(&settings(&url)).unwrap_err();
        assert!(matches!(e, PgError::Connect { .. }), "{e:?}");
    }
}
