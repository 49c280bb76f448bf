//! The built binary against a local sandbox over real HTTP, with a real SQLite file.

mod apply;
mod apply_workbook;
mod database;
mod desk;
mod digest;
mod email;
mod helpers;
mod incremental;
mod ops;
mod proof;
mod reports;
mod returned;
mod review;
mod same_instant;
mod signals;
mod tls;
mod waiting;
// Shared with the reports suite, which uses all of it.
#[allow(dead_code)]
#[path = "../common/smtp.rs"]
mod smtp;
// Shared with the reports suite; here for `apply` on a workbook LibreOffice saved.
#[allow(dead_code)]
#[path = "../reports/libreoffice.rs"]
mod libreoffice;

use std::collections::{BTreeMap, BTreeSet};

use cp_recon::sandbox::{BrokenPage, DataSpec, Faults, ListName, SandboxConfig};
use helpers::{TestEnv, code, findings, scalar, text};

fn small() -> SandboxConfig {
    SandboxConfig::new(DataSpec::small(7, chrono::Utc::now()))
}

fn confident(env: &TestEnv) -> BTreeSet<(String, String)> {
    env.sandbox.expected().confident.iter().cloned().collect()
}

fn calls(env: &TestEnv) -> Vec<(String, String)> {
    env.sandbox
        .reconcile_calls()
        .into_iter()
        .map(|c| (c.payment_id, c.transaction_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_stores_every_record_exactly_to_the_cent_with_its_raw_json() {
    let env = TestEnv::start(small()).await;
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));

    let store = env.store();
    let counts = env.sandbox.counts();
    assert_eq!(store.count("payments").unwrap() as usize, counts.payments);
    assert_eq!(store.count("offramps").unwrap() as usize, counts.offramps);
    assert_eq!(
        store.count("bank_accounts").unwrap() as usize,
        counts.accounts
    );
    assert_eq!(
        store.count("bank_transactions").unwrap() as usize,
        counts.transactions
    );
    assert_eq!(store.count("bad_records").unwrap(), 0);

    // Every payment amount equals the sandbox's cents / 100, written with two decimals.
    let mut st = store
        .connection()
        .prepare("SELECT id, amount, currency, raw_json FROM payments")
        .unwrap();
    let rows: Vec<(String, String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, amount, currency, raw) in rows {
        let rec = env.sandbox.payment(&id).expect("known payment");
        let cents = rec.fiat_cents;
        assert_eq!(
            amount,
            format!("{}.{:02}", cents / 100, cents % 100),
            "payment {id}"
        );
        assert_eq!(currency, rec.fiat_symbol);
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["id"], serde_json::Value::String(id.clone()));
    }
    let mut st = store
        .connection()
        .prepare("SELECT id, amount FROM bank_transactions")
        .unwrap();
    let rows: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, amount) in rows {
        let rec = env.sandbox.transaction(&id).expect("known transaction");
        assert_eq!(
            amount.parse::<rust_decimal::Decimal>().unwrap(),
            rec.amount,
            "transaction {id}"
        );
    }
    let run = store.run(1).unwrap().unwrap();
    assert_eq!(run.outcome, "completed");
    assert!(run.sync_complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_calls_are_exactly_the_confident_pairs_of_the_data_set() {
    let env = TestEnv::start(small()).await;
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));

    let made = calls(&env);
    let unique: BTreeSet<_> = made.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        made.len(),
        "a pair was called twice: {made:?}"
    );
    assert_eq!(unique, confident(&env));
    assert!(!unique.is_empty());
    for (p, _) in &unique {
        assert_eq!(
            env.sandbox.payment_status(p).as_deref(),
            Some("payment_received")
        );
    }
    let store = env.store();
    let reconciled: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'reconciled'",
    );
    assert_eq!(reconciled as usize, unique.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_needing_a_person_gets_the_reason_the_data_set_expects() {
    let env = TestEnv::start(small()).await;
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let store = env.store();
    let exp = env.sandbox.expected();
    assert_eq!(findings(&store, 1, "payment"), exp.payment_reasons);
    assert_eq!(findings(&store, 1, "transaction"), exp.transaction_reasons);
    assert_eq!(findings(&store, 1, "offramp"), exp.payout_reasons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_adds_no_duplicates_and_makes_no_new_calls() {
    let env = TestEnv::start(small()).await;
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    let calls_after_first = calls(&env).len();
    let second = env.run(&["--run-now"]).await;
    assert_eq!(code(&second), 0, "{}", text(&second));
    assert_eq!(calls(&env).len(), calls_after_first);

    let store = env.store();
    let counts = env.sandbox.counts();
    assert_eq!(store.count("payments").unwrap() as usize, counts.payments);
    assert_eq!(
        store.count("bank_transactions").unwrap() as usize,
        counts.transactions
    );
    assert_eq!(store.count("runs").unwrap(), 2);
    let matches: i64 = scalar(&store, "SELECT COUNT(*) FROM matches");
    assert_eq!(matches as usize, calls_after_first);
    // The second run reports the same items for the same reasons.
    assert_eq!(
        findings(&store, 2, "payment"),
        findings(&store, 1, "payment")
    );
    assert_eq!(
        findings(&store, 2, "transaction"),
        findings(&store, 1, "transaction")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_broken_page_fails_the_run_which_is_recorded_incomplete_and_reconciles_nothing()
 {
    let mut config = small();
    config.faults.broken_page = Some(BrokenPage {
        list: ListName::Transactions,
        page: 2,
    });
    let env = TestEnv::start(config).await;
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("incomplete"), "{}", text(&out));
    assert!(
        calls(&env).is_empty(),
        "reconciled after an incomplete sync"
    );

    let store = env.store();
    let run = store.run(1).unwrap().unwrap();
    assert_eq!(run.outcome, "incomplete");
    assert!(!run.sync_complete);
    let incomplete: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM run_lists WHERE run_id = 1 AND complete = 0",
    );
    assert!(incomplete >= 1);
    // The pairs that would have been reconciled (both sides read) are reported as
    // sync_incomplete; the others lack their credit, which was on the unread page.
    let reasons = findings(&store, 1, "payment");
    let mut seen_pairs = 0;
    for (p, t) in confident(&env) {
        let read: i64 = store
            .connection()
            .query_row(
                "SELECT COUNT(*) FROM bank_transactions WHERE id = ?1",
                [&t],
                |r| r.get(0),
            )
            .unwrap();
        if read == 1 {
            seen_pairs += 1;
            assert_eq!(
                reasons.get(&p).map(String::as_str),
                Some("sync_incomplete"),
                "{p}"
            );
        }
    }
    assert!(
        seen_pairs > 0,
        "no confident pair was fully read; the test proves nothing"
    );
    // Nothing read by it counts as complete: no watermark for the broken lists.
    let marks: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM watermarks w JOIN run_lists l ON l.list = w.list AND l.run_id = 1 WHERE l.complete = 0",
    );
    assert_eq!(marks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_calls_nothing_and_records_its_decisions_as_dry_run() {
    let env = TestEnv::start(small()).await;
    let out = env.run(&["--run-now", "--dry-run"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(calls(&env).is_empty());
    let store = env.store();
    let dry: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'dry_run' AND dry_run = 1",
    );
    assert_eq!(dry as usize, confident(&env).len());
    let tied: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state <> 'dry_run'",
    );
    assert_eq!(tied, 0);
    assert!(store.run(1).unwrap().unwrap().dry_run);

    // A real run afterwards still reconciles every confident pair, once.
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let sent = calls(&env);
    let made: BTreeSet<_> = sent.iter().cloned().collect();
    assert_eq!(made.len(), sent.len(), "a pair was sent twice: {sent:?}");
    assert_eq!(made, confident(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_disabled_in_the_config_behaves_like_a_dry_run() {
    let env = TestEnv::start(small()).await;
    env.write_config("\n[reconcile]\nenabled = false\n");
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(calls(&env).is_empty());
    let store = env.store();
    let dry: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'dry_run'",
    );
    assert_eq!(dry as usize, confident(&env).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_while_another_holds_the_lock_exits_75_and_changes_nothing() {
    let env = TestEnv::start(small()).await;
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let held = cp_recon::lock::RunLock::acquire(&env.db).unwrap();
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 75, "{}", text(&out));
    assert!(
        text(&out).contains("another run is in progress"),
        "{}",
        text(&out)
    );
    assert_eq!(env.sandbox.request_count(), 0, "the provider was called");
    // The lock created the database empty, to lock the file itself; nothing wrote to it.
    assert_eq!(
        std::fs::metadata(&env.db).unwrap().len(),
        0,
        "the database was written"
    );
    drop(held);
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reaching_a_held_database_through_a_symlink_exits_75_and_changes_nothing() {
    let mut config = small();
    config.faults.hold_reconcile = true;
    let env = TestEnv::start(config).await;
    // The first run, through the real path, holds the database while its reconcile
    // call waits for an answer.
    let first = env
        .command(&["--run-now"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    env.sandbox.wait_for_held_reconcile().await;

    let alias = env.db.with_file_name("alias.sqlite3");
    std::os::unix::fs::symlink(&env.db, &alias).unwrap();
    let alias_config = env.config.with_file_name("alias.toml");
    env.write_config_at(&alias_config, &alias, "");
    let authentications = || {
        env.sandbox
            .request_counts()
            .get("POST /authenticate")
            .copied()
            .unwrap_or(0)
    };
    let before = authentications();
    let out = env
        .command_with(&alias_config, &["--run-now"])
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 75, "{}", text(&out));
    let real = std::fs::canonicalize(&env.db).unwrap();
    for said in [
        format!(
            "another run is in progress: it holds the database {}",
            alias.display()
        ),
        format!("the file {}", real.display()),
    ] {
        assert!(text(&out).contains(&said), "{said:?} in {}", text(&out));
    }
    assert_eq!(
        authentications(),
        before,
        "the second run called the provider"
    );

    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();
    let first = first.wait_with_output().await.unwrap();
    assert_eq!(code(&first), 0, "{}", text(&first));
    let store = env.store();
    let runs: i64 = scalar(&store, "SELECT COUNT(*) FROM runs");
    assert_eq!(runs, 1, "the second run was recorded");
    let completed: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM runs WHERE outcome = 'completed'",
    );
    assert_eq!(completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_during_a_reconcile_call_is_settled_by_the_next_run_without_a_second_call() {
    let mut config = small();
    config.faults.hold_reconcile = true;
    let env = TestEnv::start(config).await;
    let mut child = env.command(&["--run-now"]).spawn().unwrap();
    // The sandbox applied the first reconcile and is holding its answer.
    env.sandbox.wait_for_held_reconcile().await;
    child.kill().await.unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();

    {
        let store = env.store();
        let open: i64 = scalar(
            &store,
            "SELECT COUNT(*) FROM matches WHERE state = 'intent'",
        );
        assert!(open >= 1, "the intent was committed before the call");
    }
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));

    let made = calls(&env);
    let mut per_payment: BTreeMap<&str, usize> = BTreeMap::new();
    for (p, _) in &made {
        *per_payment.entry(p).or_default() += 1;
    }
    assert!(
        per_payment.values().all(|n| *n == 1),
        "a payment was called twice: {made:?}"
    );
    let unique: BTreeSet<_> = made.iter().cloned().collect();
    assert_eq!(unique, confident(&env));

    let store = env.store();
    let reconciled: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'reconciled'",
    );
    assert_eq!(reconciled as usize, unique.len());
    let unsettled: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state IN ('intent','unknown')",
    );
    assert_eq!(unsettled, 0);
    let abandoned = store.run(1).unwrap().unwrap();
    assert_eq!(
        abandoned.outcome, "failed",
        "the killed run is marked as such"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_through_rate_limits_outages_token_expiry_and_shifting_pages_still_reconciles_exactly_the_confident_pairs()
 {
    let mut config = small();
    config.faults = Faults {
        unavailable_every: Some(7),
        rate_limit_every: Some(11),
        retry_after_secs: 0,
        token_max_uses: Some(9),
        shifting_pages: true,
        ..Faults::default()
    };
    let env = TestEnv::start(config).await;
    // A reconcile call that meets a 503 or 429 has an unknown outcome: it is not retried
    // blindly but settled (re-read, called again if still pending) by the next run.
    // Full runs: the shifting-pages fault books a back-dated item before every request
    // past a list's first item, and an incremental read's count of its window is such a
    // request, so an incremental read of more than a page could never be proven whole
    // (which `tests/cli/proof.rs` and the simulation test); a full read's count is not.
    for _ in 0..4 {
        let out = env.run(&["--run-now", "--full"]).await;
        assert_eq!(code(&out), 0, "{}", text(&out));
        let unsettled: i64 = scalar(
            &env.store(),
            "SELECT COUNT(*) FROM matches WHERE state IN ('intent', 'unknown')",
        );
        if unsettled == 0 {
            break;
        }
    }
    // Every call that reached the reconcile handler counts, whatever it was answered:
    // a fault that answers at the gateway (503, 429) never reaches it.
    let sent = calls(&env);
    let made: BTreeSet<_> = sent.iter().cloned().collect();
    assert_eq!(made.len(), sent.len(), "a pair was sent twice: {sent:?}");
    let applied: BTreeSet<_> = env
        .sandbox
        .reconcile_calls()
        .into_iter()
        .filter(|c| c.answer == "ok")
        .map(|c| (c.payment_id, c.transaction_id))
        .collect();
    assert_eq!(applied, confident(&env));
    assert_eq!(made, applied, "a call was refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_fails_the_run_with_exit_1_and_records_it() {
    let env = TestEnv::start(small()).await;
    let text_cfg = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(&env.sandbox.base_url(), "http://127.0.0.1:9/api");
    std::fs::write(&env.config, text_cfg).unwrap();
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let store = env.store();
    let run = store.run(1).unwrap().unwrap();
    assert_ne!(run.outcome, "completed");
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("provider unavailable") && error.contains("Connection refused"),
        "runs.error says what happened: {error:?}"
    );
    assert!(text(&out).contains("Connection refused"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_gone_between_runs_is_named_once_with_every_list_it_stopped() {
    let env = TestEnv::start(small()).await;
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    let text_cfg = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(&env.sandbox.base_url(), "http://127.0.0.1:9/api");
    std::fs::write(&env.config, text_cfg).unwrap();

    // An incremental run: four lists, each stopped by the same refused connection.
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let error = env
        .store()
        .run(2)
        .unwrap()
        .unwrap()
        .error
        .unwrap_or_default();
    assert_eq!(
        error,
        "incomplete sync: nothing was reconciled: accounts, payments, pending_payments, rampoffs: \
         /authenticate: provider unavailable after 5 attempt(s): connection failed: client error \
         (Connect): tcp connect error: Connection refused (os error 111)"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(last.matches("Connection refused").count(), 1, "{last}");
}

mod config_errors {
    use super::*;

    async fn run_with(config: &str, env_secret: bool) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"));
        c.args(["--run-now", "--config"])
            .arg(&path)
            .env_remove("CP_RECON_API_SECRET");
        if env_secret {
            c.env("CP_RECON_API_SECRET", "x");
        }
        c.output().await.unwrap()
    }

    const GOOD: &str = "[cryptopocket]\nbase_url = \"http://127.0.0.1:1/api\"\napi_key = \"k\"\n\n[database]\npath = \"/tmp/never-used.sqlite3\"\n";

    async fn fails_naming(config: &str, env_secret: bool, key: &str) {
        let out = run_with(config, env_secret).await;
        assert_eq!(code(&out), 2, "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "error does not name {key}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }

    #[tokio::test]
    async fn a_secret_on_a_line_that_fails_never_appears_in_the_output() {
        const SECRET: &str = "Kx9-the-real-SECRET";
        let cases = [
            GOOD.replace(
                "api_key = \"k\"",
                &format!("api_key = \"k\"\napi_secert = \"{SECRET}\""),
            ),
            GOOD.replace(
                "api_key = \"k\"",
                &format!("api_key = \"k\"\napi_secret = \"{SECRET}"),
            ),
            GOOD.replace(
                "api_key = \"k\"",
                &format!("api_key = \"k\"\napi_secret = [\"{SECRET}\"]"),
            ),
            format!("{GOOD}\n[email]\nsmtp_host = \"h\"\npassword = \"{SECRET}\"\n"),
        ];
        for config in &cases {
            let out = run_with(config, true).await;
            assert_eq!(code(&out), 2, "{}", text(&out));
            assert!(
                !text(&out).contains(SECRET),
                "the secret was printed:\n{}",
                text(&out)
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_key_exits_2_naming_it() {
        fails_naming(
            &GOOD.replace("api_key = \"k\"", "api_key = \"k\"\npage_sise = 5"),
            true,
            "page_sise",
        )
        .await;
    }

    #[tokio::test]
    async fn a_missing_required_key_exits_2_naming_it() {
        fails_naming(&GOOD.replace("api_key = \"k\"\n", ""), true, "api_key").await;
    }

    #[tokio::test]
    async fn a_missing_secret_exits_2_naming_it() {
        fails_naming(GOOD, false, "cryptopocket.api_secret").await;
    }

    #[tokio::test]
    async fn a_secret_in_a_world_readable_file_exits_2_naming_it() {
        fails_naming(
            &GOOD.replace("api_key = \"k\"", "api_key = \"k\"\napi_secret = \"s\""),
            false,
            "cryptopocket.api_secret",
        )
        .await;
    }

    #[tokio::test]
    async fn a_bad_value_exits_2_naming_the_key() {
        fails_naming(
            &GOOD.replace("api_key = \"k\"", "api_key = \"k\"\npage_size = 0"),
            true,
            "cryptopocket.page_size",
        )
        .await;
    }

    #[tokio::test]
    async fn a_wrongly_typed_value_exits_2_naming_the_key() {
        fails_naming(
            &GOOD.replace(
                "api_key = \"k\"",
                "api_key = \"k\"\ntimeout_secs = \"soon\"",
            ),
            true,
            "timeout_secs",
        )
        .await;
    }

    #[tokio::test]
    async fn a_missing_config_file_exits_2_naming_the_path() {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"))
            .args(["--run-now", "--config", "/nonexistent/cp-recon.toml"])
            .output()
            .await
            .unwrap();
        assert_eq!(code(&out), 2, "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cp-recon.toml"));
    }

    #[tokio::test]
    async fn a_config_path_that_cannot_be_read_exits_2_with_the_cause_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"))
            .args(["--run-now", "--config"])
            .arg(dir.path())
            .output()
            .await
            .unwrap();
        assert_eq!(code(&out), 2, "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{}: cannot read: ", dir.path().display())),
            "{err}"
        );
        assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
    }

    /// A run whose database path lies under a plain file (so the run fails at once),
    /// in the given log format; with that file's path.
    async fn run_on_a_database_under_a_file(
        format: &str,
    ) -> (std::process::Output, std::path::PathBuf) {
        let env = TestEnv::start(small()).await;
        let file = env.reports.with_file_name("a-file");
        std::fs::write(&file, "").unwrap();
        let blocked = env.config.with_file_name("blocked.toml");
        env.write_config_at(&blocked, &file.join("recon.sqlite3"), "");
        let out = env
            .command_with(&blocked, &["--run-now"])
            .env("CP_RECON_LOG_FORMAT", format)
            .output()
            .await
            .unwrap();
        (out, file)
    }

    #[tokio::test]
    async fn a_database_directory_that_cannot_be_used_fails_the_run_with_the_cause_said_once() {
        let (out, file) = run_on_a_database_under_a_file("journal").await;

        assert_eq!(code(&out), 1, "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        // The journal format, at error priority, like every other line.
        assert!(last.starts_with("<3>"), "{err}");
        assert!(last.contains(&file.display().to_string()), "{err}");
        assert_eq!(last.matches("Not a directory").count(), 1, "{err}");
    }

    #[tokio::test]
    async fn every_line_of_a_failed_run_follows_the_log_format_errors_at_error_priority() {
        let (out, _) = run_on_a_database_under_a_file("json").await;
        assert_eq!(code(&out), 1, "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        for line in err.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(v.get("level").is_some(), "{line}");
        }
        let last: serde_json::Value =
            serde_json::from_str(err.lines().last().unwrap_or_default()).unwrap();
        assert_eq!(last["level"], "ERROR", "{last}");

        // A configuration error, in the journal format: at error priority.
        let out = run_with("[cryptopocket]\npage_sise = 5\n", true).await;
        assert_eq!(code(&out), 2);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.trim().starts_with("<3>"), "{err}");
        assert!(err.contains("configuration error"), "{err}");
    }

    #[tokio::test]
    async fn a_usage_error_exits_2() {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"))
            .args(["--no-such-flag"])
            .output()
            .await
            .unwrap();
        assert_eq!(code(&out), 2, "{}", text(&out));
    }
}
