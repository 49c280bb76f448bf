//! The configuration loader's tests: each key, each error path, and no secret in any
//! message.

use super::*;
use secrecy::ExposeSecret;

const MINIMAL: &str = r#"
[cryptopocket]
base_url = "http://127.0.0.1:8080/api/"
api_key = "k"

[database]
path = "/tmp/x.sqlite3"
"#;

fn env_with_secret(k: &str) -> Option<String> {
    (k == ENV_API_SECRET).then(|| "s3cret".to_owned())
}
fn no_env(_: &str) -> Option<String> {
    None
}
fn err(text: &str, wr: bool, env: &dyn Fn(&str) -> Option<String>) -> String {
    parse(Path::new("c.toml"), text, wr, env)
        .unwrap_err()
        .to_string()
}

/// The error with its whole chain, as `main` prints it.
fn chain(text: &str) -> String {
    let e = parse(Path::new("c.toml"), text, false, &env_with_secret).unwrap_err();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

#[test]
fn a_secret_on_a_line_that_fails_to_parse_never_reaches_the_message() {
    const S: &str = "Zq7-very-SECRET-value";
    let base = "[cryptopocket]\nbase_url = \"http://127.0.0.1:8080/api\"\napi_key = \"k\"\n";
    let db = "[database]\npath = \"/tmp/x.sqlite3\"\n";
    let cases = [
        // A typo in the key: unknown, so its value is withheld.
        format!("{base}api_secert = \"{S}\"\n{db}"),
        // An unterminated string.
        format!("{base}api_secret = \"{S}\n{db}"),
        // A list where a string is expected.
        format!("{base}api_secret = [\"{S}\"]\n{db}"),
        // A number where a string is expected.
        format!("{base}api_secret = 7{S}\n{db}"),
        // A key the [email] section does not take.
        format!("{base}{db}[email]\nsmtp_host = \"h\"\npassword = \"{S}\"\n"),
        // A multi-line string that breaks off.
        format!("{base}api_secret = \"\"\"\n{S}\n{db}"),
        // Credentials inside the URL.
        format!("[cryptopocket]\nbase_url = \"ftp://u:{S}@h/api\"\napi_key = \"k\"\n{db}"),
        format!("[cryptopocket]\nbase_url = \"http://u:{S}@h:99999/api\"\napi_key = \"k\"\n{db}"),
    ];
    for text in &cases {
        let e = chain(text);
        assert!(!e.contains(S), "the secret leaked:\n{text}\n=> {e}");
        assert!(e.starts_with("c.toml"), "{e}");
    }
}

#[test]
fn a_comma_decimal_separator_with_a_comma_delimiter_is_an_error_naming_the_key() {
    let e = err(
        &format!("{MINIMAL}\n[reports]\ndecimal_separator = \",\"\n"),
        true,
        &env_with_secret,
    );
    assert!(e.contains("reports.decimal_separator"), "{e}");
    assert!(e.contains("delimiter = \";\""), "{e}");
    let ok = format!("{MINIMAL}\n[reports]\ndelimiter = \";\"\ndecimal_separator = \",\"\n");
    let s = parse(Path::new("c.toml"), &ok, true, &env_with_secret).unwrap();
    assert_eq!(
        (s.reports.delimiter, s.reports.decimal_separator),
        (';', ',')
    );
    let e = err(
        &format!("{MINIMAL}\n[reports]\ndecimal_separator = \"x\"\n"),
        true,
        &env_with_secret,
    );
    assert!(e.contains("decimal_separator"), "{e}");
}

#[test]
fn a_line_with_no_secret_is_still_quoted() {
    let e = err(
        &format!("{MINIMAL}\n[schedule]\ntimezone = 5\n"),
        true,
        &env_with_secret,
    );
    assert!(e.contains("timezone = 5"), "{e}");
}

#[test]
fn every_key_of_the_example_config_is_known() {
    let example = include_str!("../../config.toml");
    for line in example.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some((key, _)) = line.split_once(" =") {
            let key = key.trim();
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                assert!(KNOWN_KEYS.contains(&key), "{key}");
            }
        }
    }
}

#[test]
fn a_minimal_file_with_the_secret_in_the_environment_loads_with_defaults() {
    let s = parse(Path::new("c.toml"), MINIMAL, true, &env_with_secret).unwrap();
    assert_eq!(
        s.cryptopocket.base_url.as_str(),
        "http://127.0.0.1:8080/api"
    );
    assert_eq!(s.cryptopocket.page_size, 100);
    assert_eq!(s.cryptopocket.api_secret.expose_secret(), "s3cret");
    assert!(s.reconcile.enabled);
    assert_eq!(s.matching, MatchParams::default());
    assert!(s.email.is_none());
}

#[test]
fn the_secret_never_appears_in_debug_output() {
    let s = parse(Path::new("c.toml"), MINIMAL, true, &env_with_secret).unwrap();
    assert!(!format!("{s:?}").contains("s3cret"));
}

#[test]
fn an_unknown_key_is_named_with_its_line_and_section() {
    let e = err(
        &MINIMAL.replace("api_key = \"k\"", "api_key = \"k\"\nbogus = 1"),
        false,
        &env_with_secret,
    );
    assert!(e.contains("bogus"), "{e}");
    assert!(e.contains("[cryptopocket]"), "{e}");
    assert!(e.starts_with("c.toml: line 5"), "{e}");
}

#[test]
fn a_missing_required_key_is_named() {
    let e = err(
        &MINIMAL.replace("api_key = \"k\"", ""),
        false,
        &env_with_secret,
    );
    assert!(e.contains("api_key"), "{e}");
}

#[test]
fn a_missing_secret_is_named() {
    let e = err(MINIMAL, false, &no_env);
    assert!(e.contains("cryptopocket.api_secret"), "{e}");
    assert!(e.contains(ENV_API_SECRET), "{e}");
}

#[test]
fn a_secret_in_a_world_readable_file_is_refused() {
    let text = MINIMAL.replace("api_key = \"k\"", "api_key = \"k\"\napi_secret = \"x\"");
    let e = err(&text, true, &no_env);
    assert!(e.contains("cryptopocket.api_secret"), "{e}");
    assert!(e.contains("everyone can read"), "{e}");
    let ok = parse(Path::new("c.toml"), &text, false, &no_env).unwrap();
    assert_eq!(ok.cryptopocket.api_secret.expose_secret(), "x");
}

#[test]
fn a_page_size_out_of_range_is_named() {
    let e = err(
        &MINIMAL.replace("api_key = \"k\"", "api_key = \"k\"\npage_size = 500"),
        false,
        &env_with_secret,
    );
    assert!(e.contains("cryptopocket.page_size"), "{e}");
}

#[test]
fn a_secret_file_path_may_use_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api_secret"), "from-file\n").unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let env = move |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| d.clone());
    let text = MINIMAL.replace(
        "api_key = \"k\"",
        "api_key = \"k\"\napi_secret_file = \"${CREDENTIALS_DIRECTORY}/api_secret\"",
    );
    let s = parse(Path::new("c.toml"), &text, true, &env).unwrap();
    assert_eq!(s.cryptopocket.api_secret.expose_secret(), "from-file");
}

#[test]
fn the_example_config_in_the_repository_is_complete_and_valid() {
    let text = include_str!("../../config.toml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smtp_password"), "pw").unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let env = move |k: &str| match k {
        ENV_API_SECRET => Some("s".to_owned()),
        "CREDENTIALS_DIRECTORY" => Some(d.clone()),
        _ => None,
    };
    let s = parse(Path::new("config.toml"), text, true, &env).unwrap();
    assert_eq!(s.schedule.timezone, chrono_tz::Europe::Madrid);
    assert!(s.email.is_some());
}

#[test]
fn the_default_schedule_is_every_fifteen_minutes_in_utc() {
    let d = Schedule::default();
    assert_eq!(d.timezone, chrono_tz::UTC);
    assert_eq!(
        format!("{:?}", d.cron),
        format!(
            "{:?}",
            crate::schedule::CronSchedule::parse("0 */15 * * * *").unwrap()
        )
    );
}

#[test]
fn a_bad_time_zone_is_named() {
    let e = err(
        &format!("{MINIMAL}\n[schedule]\ntimezone = \"Mars/Olympus\"\n"),
        false,
        &env_with_secret,
    );
    assert!(e.contains("schedule.timezone"), "{e}");
}

#[test]
fn the_digest_and_alert_after_are_parsed_once_and_a_bad_one_names_its_key() {
    let email = "[email]\nsmtp_host = \"h\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n";
    let s = parse(
        Path::new("c.toml"),
        &format!("{MINIMAL}\n{email}"),
        true,
        &env_with_secret,
    )
    .unwrap();
    let e = s.email.unwrap();
    assert_eq!(
        e.digest.map(|d| d.to_string()).as_deref(),
        Some("0 0 8 * * Mon-Fri")
    );
    assert_eq!(e.alert_after, chrono::Duration::hours(1));
    assert_eq!(s.reports.send, crate::report::SendPolicy::Digest);

    let s = parse(
        Path::new("c.toml"),
        &format!("{MINIMAL}\n{email}digest = \"0 30 7 * * *\"\nalert_after = \"90m\"\n"),
        true,
        &env_with_secret,
    )
    .unwrap();
    let e = s.email.unwrap();
    assert_eq!(e.alert_after, chrono::Duration::minutes(90));

    for (text, seconds) in [
        ("45s", 45),
        ("90m", 90 * 60),
        (" 90 m ", 90 * 60),
        ("1h", 3600),
        ("2d", 2 * 86_400),
        ("1h 30m", 90 * 60),
        ("1h30m", 90 * 60),
        ("90min", 90 * 60),
    ] {
        let s = parse(
            Path::new("c.toml"),
            &format!("{MINIMAL}\n{email}alert_after = \"{text}\"\n"),
            true,
            &env_with_secret,
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        let got = s.email.unwrap().alert_after;
        assert_eq!(got, chrono::Duration::seconds(seconds), "{text}");
    }

    for (line, key) in [
        ("digest = \"every morning\"", "email.digest"),
        ("alert_after = \"soon\"", "email.alert_after"),
        ("alert_after = \"0h\"", "email.alert_after"),
        ("alert_after = \"-1h\"", "email.alert_after"),
        ("alert_after = \"90\"", "email.alert_after"),
        ("alert_after = \"90M\"", "email.alert_after"),
    ] {
        let e = err(
            &format!("{MINIMAL}\n{email}{line}\n"),
            true,
            &env_with_secret,
        );
        assert!(e.contains(key), "{line}: {e}");
        let value = line.split('"').nth(1).unwrap();
        assert!(e.contains(&format!("{value:?}")), "{line}: {e}");
    }
}

const PG_BASE: &str = r#"
[cryptopocket]
base_url = "http://127.0.0.1:8080/api/"
api_key = "k"
"#;

fn pg_env(
    url: Option<&'static str>,
    password: Option<&'static str>,
) -> impl Fn(&str) -> Option<String> {
    move |k: &str| match k {
        ENV_API_SECRET => Some("s".to_owned()),
        ENV_DATABASE_URL => url.map(str::to_owned),
        ENV_DATABASE_PASSWORD => password.map(str::to_owned),
        _ => None,
    }
}

#[test]
fn a_database_url_selects_postgresql_with_the_password_from_the_environment() {
    let text = format!(
        "{PG_BASE}[database]\nurl = \"postgresql://recon@db1:5433/cp_recon?sslmode=require\"\n"
    );
    let env = pg_env(None, Some("Zq7-db-SECRET"));
    let s = parse(Path::new("c.toml"), &text, false, &env).unwrap();
    let DatabaseSettings::Postgres(pg) = &s.database else {
        panic!("not PostgreSQL: {:?}", s.database);
    };
    assert_eq!(pg.target(), "database cp_recon on db1:5433 as recon");
    assert_eq!(s.database.sqlite_path(), None);
    let shown = format!("{s:?}");
    assert!(!shown.contains("Zq7-db-SECRET"), "{shown}");
}

#[test]
fn the_database_url_of_the_environment_replaces_the_file_s_database() {
    let env = pg_env(Some("postgresql://recon@db2/cp_recon"), None);
    let s = parse(Path::new("c.toml"), MINIMAL, false, &env).unwrap();
    assert_eq!(
        s.database.describe(),
        "database cp_recon on db2:5432 as recon"
    );
}

#[test]
fn a_database_password_is_read_from_its_file_in_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("database_password"), "from-file\n").unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let env = move |k: &str| match k {
        ENV_API_SECRET => Some("s".to_owned()),
        "CREDENTIALS_DIRECTORY" => Some(d.clone()),
        _ => None,
    };
    let text = format!(
        "{PG_BASE}[database]\nurl = \"postgresql://recon@db1/cp_recon\"\npassword_file = \"${{CREDENTIALS_DIRECTORY}}/database_password\"\n"
    );
    let s = parse(Path::new("c.toml"), &text, true, &env).unwrap();
    let DatabaseSettings::Postgres(pg) = &s.database else {
        panic!("not PostgreSQL");
    };
    assert_eq!(pg.password().map(|p| p.expose_secret()), Some("from-file"));
}

#[test]
fn a_database_password_in_the_file_or_in_the_url_is_refused_without_being_shown() {
    const S: &str = "Zq7-db-SECRET";
    let env = pg_env(None, None);
    let in_file = format!(
        "{PG_BASE}[database]\nurl = \"postgresql://recon@db1/cp_recon\"\npassword = \"{S}\"\n"
    );
    let e = err(&in_file, false, &env);
    assert!(e.contains("database.password"), "{e}");
    assert!(e.contains(ENV_DATABASE_PASSWORD), "{e}");
    assert!(!e.contains(S), "{e}");
    let in_url = format!("{PG_BASE}[database]\nurl = \"postgresql://recon:{S}@db1/cp_recon\"\n");
    let e = err(&in_url, false, &env);
    assert!(e.contains("database.url"), "{e}");
    assert!(!e.contains(S), "{e}");
    let env_url = pg_env(Some("postgresql://recon:Zq7-db-SECRET@db1/cp_recon"), None);
    let e = err(MINIMAL, false, &env_url);
    assert!(e.contains(ENV_DATABASE_URL), "{e}");
    assert!(!e.contains(S), "{e}");
}

#[test]
fn a_database_section_with_both_a_path_and_a_url_or_neither_is_refused() {
    let env = pg_env(None, None);
    let both = format!(
        "{PG_BASE}[database]\npath = \"/tmp/x.sqlite3\"\nurl = \"postgresql://recon@db1/cp_recon\"\n"
    );
    let e = err(&both, false, &env);
    assert!(e.contains("not both"), "{e}");
    let neither = format!("{PG_BASE}[database]\n");
    let e = err(&neither, false, &env);
    assert!(e.contains("database: missing"), "{e}");
}

#[test]
fn an_empty_database_path_is_refused_naming_the_key() {
    let text = MINIMAL.replace("path = \"/tmp/x.sqlite3\"", "path = \"\"");
    let e = err(&text, false, &env_with_secret);
    assert!(e.contains("database.path: must not be empty"), "{e}");
}

#[test]
fn a_database_url_on_a_line_that_fails_to_parse_is_withheld() {
    const S: &str = "Zq7-url-SECRET";
    let text = format!("{PG_BASE}[database]\nurl = \"postgresql://recon:{S}@db1/cp_recon\nx = 1\n");
    let e = err(&text, false, &pg_env(None, None));
    assert!(e.contains("url = <value withheld>"), "{e}");
    assert!(!e.contains(S), "{e}");
    // Without a user part, the line is shown as written.
    let e = err(
        &format!("{PG_BASE}[database]\nurl = \"postgresql://db1/cp_recon\nx = 1\n"),
        false,
        &pg_env(None, None),
    );
    assert!(e.contains("url = \"postgresql://db1/cp_recon"), "{e}");
}
