//! Signals as systemd and a person send them: SIGTERM or SIGINT stops a `--run-now`
//! run at a safe point, as it does the daemon's; SIGHUP is logged and ignored.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cp_recon::sandbox::{DataSpec, Faults, SandboxConfig};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};

use crate::helpers::{TestEnv, findings, scalar};
use crate::smtp::spawn_smtp;

/// The exit code of a run stopped by SIGTERM (128 + 15).
const STOPPED: i32 = 143;

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("the process is running");
    let rc = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
}

/// Reads stderr until a line contains `needle` (a readiness check, never a sleep);
/// returns every line read.
async fn until(lines: &mut Lines<BufReader<ChildStderr>>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no line with {needle:?} within a minute: {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stderr ended before {needle:?}: {seen:#?}"));
        let found = line.contains(needle);
        seen.push(line);
        if found {
            return seen;
        }
    }
}

/// The rest of stderr, and the exit code.
async fn finish(mut child: Child, mut lines: Lines<BufReader<ChildStderr>>) -> (i32, Vec<String>) {
    let rest = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            v.push(l);
        }
        v
    });
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits within a minute")
        .unwrap();
    (status.code().unwrap_or(-1), rest.await.unwrap())
}

/// `--run-now` holding a reconcile call's answer in the sandbox, with its stderr.
async fn run_now_mid_call() -> (TestEnv, Child, Lines<BufReader<ChildStderr>>) {
    let mut config = crate::small();
    config.faults.hold_reconcile = true;
    let env = TestEnv::start(config).await;
    let mut child = env
        .command(&["--run-now"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Readiness: a reconcile call is in flight, its answer held.
    env.sandbox.wait_for_held_reconcile().await;
    (env, child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_run_now_call_settles_it_makes_no_new_call_and_records_the_run_as_stopped()
{
    let (env, child, mut lines) = run_now_mid_call().await;
    signal(&child, "TERM");
    until(&mut lines, "SIGTERM received; stopping").await;
    let sent = env.sandbox.reconcile_calls().len();
    // The call in flight gets its answer now; a new call would not be held.
    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();
    let (code, rest) = finish(child, lines).await;

    assert_eq!(code, STOPPED, "{rest:#?}");
    let made: BTreeSet<(String, String)> = env
        .sandbox
        .reconcile_calls()
        .into_iter()
        .map(|c| (c.payment_id, c.transaction_id))
        .collect();
    assert_eq!(made.len(), sent, "a reconcile call was made after SIGTERM");
    let confident = crate::confident(&env);
    assert!(
        made.len() < confident.len(),
        "the run did not stop early: {} of {} pairs called",
        made.len(),
        confident.len()
    );
    let store = env.store();
    let run = store.run(1).unwrap().unwrap();
    assert_eq!(run.outcome, "failed", "{run:?}");
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.starts_with("stopped: SIGTERM received")),
        "{run:?}"
    );
    let open: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'intent'",
    );
    assert_eq!(open, 0, "an intent was left open");
    let reconciled: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'reconciled'",
    );
    assert_eq!(
        reconciled as usize,
        made.len(),
        "the calls in flight were settled"
    );
    drop(store);

    // The next run calls the rest, each pair once.
    let again = env.run(&["--run-now"]).await;
    assert_eq!(
        crate::helpers::code(&again),
        0,
        "{}",
        crate::helpers::text(&again)
    );
    let calls = crate::calls(&env);
    let unique: BTreeSet<_> = calls.iter().cloned().collect();
    assert_eq!(unique.len(), calls.len(), "a pair was called twice");
    assert_eq!(unique, confident);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_during_a_run_now_call_is_logged_and_the_run_completes() {
    let (env, child, mut lines) = run_now_mid_call().await;
    signal(&child, "HUP");
    let seen = until(&mut lines, "SIGHUP received and ignored").await;
    let line = seen.last().unwrap();
    assert!(line.contains("restart cp-recon"), "{line}");
    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();
    let (code, rest) = finish(child, lines).await;
    assert_eq!(code, 0, "{rest:#?}");
    assert_eq!(
        crate::calls(&env).into_iter().collect::<BTreeSet<_>>(),
        crate::confident(&env)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_to_the_daemon_is_logged_and_it_stays_up_until_sigterm() {
    let env = TestEnv::start(crate::small()).await;
    // A schedule that does not fire during the test.
    env.write_config("\n[schedule]\ncron = \"0 0 0 1 1 *\"\n");
    let mut child = env
        .command(&[])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    until(&mut lines, "scheduler started").await;
    signal(&child, "HUP");
    until(&mut lines, "SIGHUP received and ignored").await;
    signal(&child, "HUP");
    until(&mut lines, "SIGHUP received and ignored").await;
    signal(&child, "TERM");
    let (code, rest) = finish(child, lines).await;
    assert_eq!(code, 0, "{rest:#?}");
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM received")),
        "{rest:#?}"
    );
}

/// Many confident pairs (a few hundred), so that a stop leaves most of them uncalled.
fn many_pairs() -> SandboxConfig {
    SandboxConfig::new(DataSpec::scaled(11, chrono::Utc::now(), 1000, 1200, 40))
}

/// Replaces `from` with `to` in the test's configuration file.
fn edit_config(env: &TestEnv, from: &str, to: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    assert!(text.contains(from), "{from:?} not in the configuration");
    std::fs::write(&env.config, text.replace(from, to)).unwrap();
}

/// `--run-now` with its stderr piped.
fn spawn_run(env: &TestEnv) -> (Child, Lines<BufReader<ChildStderr>>) {
    let mut child = env
        .command(&["--run-now"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

/// The plain-text body and the subject of a raw message.
fn subject_and_body(raw: &[u8]) -> (String, String) {
    let mail = mailparse::parse_mail(raw).unwrap();
    use mailparse::MailHeaderMap;
    let subject = mail.headers.get_first_value("Subject").unwrap_or_default();
    let mut stack = vec![&mail];
    while let Some(part) = stack.pop() {
        if part.ctype.mimetype == "text/plain" {
            return (subject, part.get_body().unwrap());
        }
        stack.extend(part.subparts.iter());
    }
    panic!("no text part")
}

/// Every confident pair reconciled, each called once and tied by one ledger row.
fn each_pair_reconciled_once(env: &TestEnv) {
    let calls = crate::calls(env);
    let unique: BTreeSet<_> = calls.iter().cloned().collect();
    assert_eq!(unique.len(), calls.len(), "a pair was called twice");
    let confident = crate::confident(env);
    assert_eq!(unique, confident);
    let store = env.store();
    let reconciled: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'reconciled'",
    );
    assert_eq!(
        reconciled as usize,
        confident.len(),
        "one ledger row per pair"
    );
    let twice: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM (SELECT payment_id FROM matches WHERE state = 'reconciled'
                                GROUP BY payment_id HAVING COUNT(*) > 1)",
    );
    assert_eq!(twice, 0, "a payment reconciled twice in the ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_mid_reconcile_defers_the_pairs_it_did_not_call_in_one_line_and_mails_no_alarm()
 {
    let smtp = spawn_smtp();
    let env = TestEnv::start(many_pairs()).await;
    env.write_config(&format!(
        "send = \"always\"\n\n[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n\
         from = \"cp-recon <recon@example.com>\"\nto = [\"finance@example.com\"]\ntimeout_secs = 5\n",
        smtp.addr.port()
    ));
    // A dry run first: it mails the data's own urgent items (unexplained debits), so that
    // anything urgent in the stopped run's mail would be the stop's.
    let dry = env.run(&["--run-now", "--dry-run"]).await;
    assert_eq!(
        crate::helpers::code(&dry),
        0,
        "{}",
        crate::helpers::text(&dry)
    );
    let confident = crate::confident(&env);
    assert!(confident.len() > 100, "{} confident pairs", confident.len());

    env.sandbox.set_faults(Faults {
        hold_reconcile: true,
        ..Faults::default()
    });
    let (child, mut lines) = spawn_run(&env);
    env.sandbox.wait_for_held_reconcile().await;
    signal(&child, "TERM");
    until(&mut lines, "SIGTERM received; stopping").await;
    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();
    let (code, rest) = finish(child, lines).await;
    assert_eq!(code, STOPPED, "{rest:#?}");

    let called = crate::calls(&env).len();
    assert!(
        called < confident.len() / 2,
        "the run did not stop early: {called} of {} pairs called",
        confident.len()
    );
    let store = env.store();
    // No finding for a pair that was never called: the pairs are open, not failed.
    for kind in ["payment", "transaction"] {
        let failed: Vec<_> = findings(&store, 2, kind)
            .into_iter()
            .filter(|(_, reason)| reason == "reconcile_failed")
            .collect();
        assert!(failed.is_empty(), "{kind}s reported failed: {failed:?}");
    }
    let open: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'intent'",
    );
    assert_eq!(open, 0, "the calls in flight answered within the grace");
    // The report waits in the outbox; its mail reads as no alarm, and says in one line
    // what the stop left.
    let dir: String = scalar(&store, "SELECT dir FROM reports WHERE run_id = 2");
    drop(store);
    let eml = std::fs::read(std::path::Path::new(&dir).join("report.eml")).unwrap();
    let (subject, body) = subject_and_body(&eml);
    assert!(
        !subject.contains("URGENT") && !subject.contains("RUN FAILED"),
        "{subject}"
    );
    let deferred = confident.len() - called;
    let line = format!(
        "{deferred} confident pairs not called: the run was stopped by SIGTERM; the next run calls them"
    );
    assert_eq!(body.matches(&line).count(), 1, "{line:?} once in:\n{body}");
    assert!(!body.contains("RUN FAILED"), "{body}");
    assert!(!body.contains("not called: SIGTERM"), "{body}");

    // The next run calls every deferred pair, once, and delivers the stopped run's mail.
    let again = env.run(&["--run-now"]).await;
    assert_eq!(
        crate::helpers::code(&again),
        0,
        "{}",
        crate::helpers::text(&again)
    );
    each_pair_reconciled_once(&env);
    let mails: Vec<(String, String)> = smtp
        .received()
        .iter()
        .map(|m| subject_and_body(m))
        .collect();
    let stopped: Vec<_> = mails.iter().filter(|(_, b)| b.contains(&line)).collect();
    assert_eq!(stopped.len(), 1, "{mails:#?}");
    for (subject, _) in &mails {
        assert!(!subject.contains("RUN FAILED"), "{subject}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_abandons_a_held_call_after_the_grace_and_the_next_run_settles_its_intent_once() {
    let env = TestEnv::start(crate::small()).await;
    // A per-request timeout far beyond the grace: only the grace can end the wait.
    edit_config(&env, "timeout_secs = 5", "timeout_secs = 90");
    env.sandbox.set_faults(Faults {
        hold_reconcile: true,
        ..Faults::default()
    });
    let (child, lines) = spawn_run(&env);
    env.sandbox.wait_for_held_reconcile().await;
    let signalled = Instant::now();
    signal(&child, "TERM");
    // The provider never answers the held calls.
    let (code, rest) = finish(child, lines).await;
    let took = signalled.elapsed();
    eprintln!("stop with the provider holding the calls took {took:?}");
    assert_eq!(code, STOPPED, "{rest:#?}");
    assert!(
        took < Duration::from_secs(30),
        "the stop took {took:?}, past the grace of 5 s and a margin"
    );
    let held = crate::calls(&env).len();
    assert!(held >= 1);
    let store = env.store();
    // Each call abandoned in flight is left as its intent: the provider applied it (the
    // sandbox applies a held call before it holds the answer), and nothing says so yet.
    let open: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state = 'intent'",
    );
    assert_eq!(open as usize, held, "{rest:#?}");
    let failed: Vec<_> = findings(&store, 1, "payment")
        .into_iter()
        .filter(|(_, reason)| reason == "reconcile_failed")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    drop(store);

    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();
    let again = env.run(&["--run-now"]).await;
    let text = crate::helpers::text(&again);
    assert_eq!(crate::helpers::code(&again), 0, "{text}");
    assert!(text.contains("earlier intent settled"), "{text}");
    each_pair_reconciled_once(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_rate_limited_first_sync_ends_it_at_once_and_reconciles_nothing() {
    // About 250 list pages at 5 requests a second: a minute of reading.
    let env = TestEnv::start(SandboxConfig::new(DataSpec::scaled(
        13,
        chrono::Utc::now(),
        2000,
        2500,
        40,
    )))
    .await;
    let metrics = env.reports.with_file_name("cp-recon.prom");
    env.write_config(&format!(
        "\n[monitoring]\ntextfile = \"{}\"\n",
        metrics.display()
    ));
    edit_config(
        &env,
        "max_requests_per_second = 0",
        "max_requests_per_second = 5",
    );
    let (child, lines) = spawn_run(&env);
    // Readiness: the sync is reading pages (a login, the accounts, list pages).
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.sandbox.request_count() < 8 {
        assert!(Instant::now() < deadline, "the sync did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    signal(&child, "TERM");
    let (code, rest) = finish(child, lines).await;
    let took = signalled.elapsed();
    eprintln!("stop during the sync took {took:?}");
    assert_eq!(code, STOPPED, "{rest:#?}");
    assert!(
        took < Duration::from_secs(20),
        "the stop took {took:?}: the sync did not look for it"
    );
    assert!(env.sandbox.reconcile_calls().is_empty(), "a call was made");
    // Not an error: nothing at error priority in the journal format.
    let errors: Vec<_> = rest.iter().filter(|l| l.starts_with("<3>")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let store = env.store();
    let run = store.run(1).unwrap().unwrap();
    assert!(!run.sync_complete, "{run:?}");
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.starts_with("stopped: SIGTERM received")
                && e.contains("the sync was cut short and nothing was reconciled")),
        "{run:?}"
    );
    let tied: i64 = scalar(&store, "SELECT COUNT(*) FROM matches");
    assert_eq!(tied, 0);
    drop(store);
    // The metrics say stopped, not failed.
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("cp_recon_last_run_outcome{outcome=\"stopped\"} 1")
            && prom.contains("cp_recon_last_run_outcome{outcome=\"failed\"} 0"),
        "{prom}"
    );

    edit_config(
        &env,
        "max_requests_per_second = 5",
        "max_requests_per_second = 0",
    );
    let again = env.run(&["--run-now"]).await;
    assert_eq!(
        crate::helpers::code(&again),
        0,
        "{}",
        crate::helpers::text(&again)
    );
    each_pair_reconciled_once(&env);
}
