//! Running it in production: the demo, logs without secrets, metrics and pings from a
//! real run, and the long-running mode under SIGTERM.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{SECRET, TestEnv, code, text};

fn small() -> cp_recon::sandbox::SandboxConfig {
    cp_recon::sandbox::SandboxConfig::new(cp_recon::sandbox::DataSpec::small(
        11,
        chrono::Utc::now(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lists_the_workbook_and_leaves_a_configuration_the_desk_commands_read() {
    let dir = tempfile::tempdir().unwrap();
    let cp = || {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"));
        c.current_dir(dir.path())
            .env_remove("CP_RECON_CONFIG")
            .env_remove("CP_RECON_API_SECRET");
        c
    };
    let out = cp().arg("demo").output().await.unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("report.xlsx"), "{stdout}");
    let config = dir.path().join("cp-recon-demo").join("config.toml");
    assert!(
        stdout.contains(&format!(
            "cp-recon review --config {}",
            std::fs::canonicalize(&config).unwrap().display()
        )),
        "{stdout}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    // From another directory, as a newcomer would paste the command.
    for args in [["status"], ["review"]] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(std::env::temp_dir())
            .env_remove("CP_RECON_CONFIG")
            .env_remove("CP_RECON_API_SECRET")
            .output()
            .await
            .unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_writes_the_four_csvs_and_the_eml_without_any_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"))
        .arg("demo")
        .current_dir(dir.path())
        .env_remove("CP_RECON_CONFIG")
        .env_remove("CP_RECON_API_SECRET")
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let demo = dir.path().join("cp-recon-demo");
    let run_dir = the_report_folder(&demo);
    for f in [
        "unmatched_payments.csv",
        "unmatched_bank_transactions.csv",
        "reconciled.csv",
        "unmatched_payouts.csv",
        "report.xlsx",
        "report.eml",
    ] {
        assert!(run_dir.join(f).is_file(), "{f} missing\n{}", text(&out));
    }
    let eml = std::fs::read(run_dir.join("report.eml")).unwrap();
    let parsed = mailparse::parse_mail(&eml).unwrap();
    let subject = parsed
        .headers
        .iter()
        .find(|h| h.get_key() == "Subject")
        .unwrap()
        .get_value();
    assert!(subject.contains("reconciled"), "{subject}");
    let reconciled = std::fs::read_to_string(run_dir.join("reconciled.csv")).unwrap();
    assert!(
        reconciled.lines().count() > 1,
        "nothing reconciled:\n{reconciled}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("cp-recon-demo"));
    // A second demo starts afresh.
    let again = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"))
        .arg("demo")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(code(&again), 0, "{}", text(&again));
    // Its report folder replaces the first demo's, not beside it.
    let second = the_report_folder(&demo);
    assert_ne!(second, run_dir);
    assert!(!run_dir.exists());
}

/// The one report folder the demo left in `demo`.
fn the_report_folder(demo: &std::path::Path) -> std::path::PathBuf {
    let folders: Vec<_> = std::fs::read_dir(demo)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| cp_recon::report::is_folder_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    folders.into_iter().next().unwrap()
}

async fn secrets_stay_out_of_the_logs_in(format: &str) {
    let env = TestEnv::start(small()).await;
    let smtp_password = "smtp-pa55w0rd-known";
    env.write_config(
        "\n[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = 9\ntls = \"none\"\nusername = \"u\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
    );
    let out = env
        .command(&["--run-now"])
        .env("CP_RECON_LOG_FORMAT", format)
        .env("CP_RECON_SMTP_PASSWORD", smtp_password)
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let all = text(&out);
    assert!(all.len() > 1000, "suspiciously little output:\n{all}");
    assert!(
        !all.contains(SECRET),
        "the API secret leaked in {format} logs"
    );
    assert!(
        !all.contains(smtp_password),
        "the SMTP password leaked in {format} logs"
    );
    // Tokens are issued by the sandbox; none may be logged either.
    let tokens = env.sandbox.issued_tokens();
    assert!(!tokens.is_empty(), "the run authenticated");
    for token in &tokens {
        assert!(
            !all.contains(token.as_str()),
            "token {token} leaked in {format} logs"
        );
    }
    if format == "json" {
        for line in String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.is_empty())
        {
            if line.starts_with('{') {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_journal_logs_even_at_trace_level() {
    secrets_stay_out_of_the_logs_in("journal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_json_logs_even_at_trace_level() {
    secrets_stay_out_of_the_logs_in("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_prometheus_metrics_and_pings_the_dead_mans_switch() {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = Router::new()
        .route("/ping/{*rest}", get(record))
        .route("/ping", get(record))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = TestEnv::start(small()).await;
    let prom = env
        .reports
        .parent()
        .unwrap()
        .join("metrics")
        .join("cp-recon.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    env.write_config(&format!(
        "\n[monitoring]\ntextfile = \"{}\"\nping_url = \"http://{addr}/ping\"\n",
        prom.display()
    ));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));

    let body = std::fs::read_to_string(&prom).unwrap();
    let lines: Vec<_> = body.lines().map(|l| Ok(l.to_owned())).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).unwrap();
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
    };
    assert_eq!(value("cp_recon_last_run_success"), 1.0);
    assert!(value("cp_recon_reconcile_calls") >= 1.0);
    assert!(value("cp_recon_last_success_timestamp_seconds") > 1.0e9);
    assert_eq!(hits.lock().unwrap().as_slice(), ["/ping"]);

    // A run that cannot complete pings /fail.
    env.sandbox.set_faults(cp_recon::sandbox::Faults {
        broken_page: Some(cp_recon::sandbox::BrokenPage {
            list: cp_recon::sandbox::ListName::Payments,
            page: 1,
        }),
        ..Default::default()
    });
    let out = env.run(&["--run-now", "--full"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert_eq!(hits.lock().unwrap().as_slice(), ["/ping", "/ping/fail"]);
    let body = std::fs::read_to_string(&prom).unwrap();
    assert!(body.contains("cp_recon_last_run_success 0"), "{body}");
}

async fn record(State(hits): State<Arc<Mutex<Vec<String>>>>, uri: axum::http::Uri) -> &'static str {
    hits.lock().unwrap().push(uri.path().to_owned());
    "OK"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_running_mode_runs_on_its_schedule_and_exits_0_on_sigterm() {
    // The first scheduled run's first reconcile call is held at the sandbox, so SIGTERM
    // always arrives while a run is in progress.
    let mut config = small();
    config.faults.hold_reconcile = true;
    let env = TestEnv::start(config).await;
    env.write_config("\n[schedule]\ncron = \"* * * * * *\"\ntimezone = \"Europe/Madrid\"\n");
    let mut child = env
        .command(&[])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    // Readiness: a scheduled run is mid-call.
    env.sandbox.wait_for_held_reconcile().await;
    let pid = child.id().unwrap() as i32;
    // SIGTERM, as systemd sends it.
    let rc = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
    // Wait until the daemon has seen the signal, then let the call in flight finish.
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("the signal is logged within a minute")
            .unwrap()
            .expect("the process is still logging");
        if line.contains("SIGTERM") {
            break;
        }
    }
    env.sandbox.set_faults(cp_recon::sandbox::Faults::default());
    env.sandbox.release_held();
    let rest = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            v.push(l);
        }
        v
    });
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    let rest = rest.await.unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    let store = env.store();
    let stopped: String = crate::helpers::scalar(&store, "SELECT error FROM runs WHERE id = 1");
    assert!(stopped.starts_with("stopped: SIGTERM"), "{stopped}");
    let running: i64 = crate::helpers::scalar(
        &store,
        "SELECT COUNT(*) FROM runs WHERE outcome = 'running'",
    );
    assert_eq!(running, 0, "a run was left half-done");
    let unsettled: i64 = crate::helpers::scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state IN ('intent','unknown')",
    );
    assert_eq!(unsettled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_runs_the_open_items_by_reason_and_what_blocks_automation() {
    let env = TestEnv::start(small()).await;
    let out = env.run(&["status"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("no database at"), "{}", text(&out));

    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env.run(&["status"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    let store = env.store();
    let open: i64 =
        crate::helpers::scalar(&store, "SELECT COUNT(*) FROM findings WHERE run_id = 1");
    assert!(
        screen.contains(&format!("Open items: {open}, as of run 1 (")),
        "{screen}"
    );
    let reasons: Vec<String> = {
        let mut st = store
            .connection()
            .prepare("SELECT DISTINCT reason FROM findings WHERE run_id = 1")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(!reasons.is_empty());
    for reason in &reasons {
        assert!(screen.contains(reason.as_str()), "{reason}: {screen}");
    }
    assert!(screen.contains("Blocking automation: nothing"), "{screen}");
    assert!(screen.lines().all(|l| l.chars().count() <= 80), "{screen}");

    // A run that cannot read a list: listed as incomplete, and the list blocks.
    env.sandbox.set_faults(cp_recon::sandbox::Faults {
        broken_page: Some(cp_recon::sandbox::BrokenPage {
            list: cp_recon::sandbox::ListName::Payments,
            page: 1,
        }),
        ..Default::default()
    });
    let out = env.run(&["--run-now", "--full"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let out = env.run(&["status"]).await;
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(screen.contains("incomplete"), "{screen}");
    assert!(
        screen.contains("Blocking automation: 1 (nothing is reconciled until"),
        "{screen}"
    );
    assert!(screen.contains("  payments: "), "{screen}");
    assert!(
        screen.contains("as of run 1 ("),
        "open items still come from the last complete run: {screen}"
    );
}
