//! Signals as systemd and a person send them: SIGTERM or SIGINT stops a `--run-now`
//! run at a safe point, as it does the daemon's; SIGHUP is logged and ignored.

use std::collections::BTreeSet;
use std::time::Duration;

use cp_recon::sandbox::Faults;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};

use crate::helpers::{TestEnv, scalar};

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
