//! Report folders on disk: never overwritten by a run that did not write them (a database
//! restored from a backup hands out run ids again), and each reconcile listed by exactly
//! one report even when the process is killed between writing a report and recording it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{TestEnv, code, scalar, text};

/// Every report folder under `reports` (hidden staging folders left out), by name.
fn report_folders(reports: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(reports)
        .expect("the reports directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            (!name.starts_with('.')).then_some((name, p))
        })
        .collect()
}

/// Every file of a folder, by name, with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// For each reconciled payment in the database, the report folders whose
/// `reconciled.csv` lists it.
fn listings(env: &TestEnv) -> BTreeMap<String, Vec<String>> {
    let store = env.store();
    let mut st = store
        .connection()
        .prepare("SELECT payment_id FROM matches WHERE state = 'reconciled'")
        .unwrap();
    let mut out: BTreeMap<String, Vec<String>> = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| (p.unwrap(), Vec::new()))
        .collect();
    for (name, dir) in report_folders(&env.reports) {
        let csv = std::fs::read_to_string(dir.join("reconciled.csv")).unwrap();
        for line in csv.lines().skip(1) {
            let payment = line.split(',').next().unwrap();
            out.entry(payment.to_owned())
                .or_default()
                .push(name.clone());
        }
    }
    out
}

/// Runs `--run-now` until it logs that it reached the test pause point `point` (a
/// readiness check, never a sleep), then kills it with SIGKILL.
async fn run_killed_at(env: &TestEnv, point: &str) {
    let mut child = env
        .command(&["--run-now"])
        .env("CP_RECON_TEST_PAUSE_AT", point)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no pause at {point} within a minute: {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stderr ended before the pause at {point}: {seen:#?}"));
        let reached = line.contains("test pause point reached");
        seen.push(line);
        if reached {
            break;
        }
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// The pause points exist only in debug builds.
fn pause_points_missing() -> bool {
    if cfg!(debug_assertions) {
        return false;
    }
    eprintln!("SKIPPED: test pause points exist only in debug builds");
    true
}

/// The plain-text body of each message an SMTP server received, in order.
fn bodies(smtp: &crate::smtp::TestSmtp) -> Vec<String> {
    smtp.received()
        .iter()
        .map(|raw| {
            let mail = mailparse::parse_mail(raw).unwrap();
            let mut stack = vec![&mail];
            while let Some(part) = stack.pop() {
                if part.ctype.mimetype == "text/plain" {
                    return part.get_body().unwrap();
                }
                stack.extend(part.subparts.iter());
            }
            panic!("no text part")
        })
        .collect()
}

/// A run mailing its report every time (to a real SMTP server) killed at `point`, what
/// it left checked by `left`, then the next run: each reconcile is in exactly one
/// report, and every report on disk is mailed once.
async fn killed_then_run_again(
    point: &str,
    left: impl FnOnce(&TestEnv),
) -> (TestEnv, BTreeMap<String, Vec<String>>, Vec<String>) {
    let env = TestEnv::start(crate::small()).await;
    let smtp = crate::smtp::spawn_smtp();
    env.write_config(&format!(
        "send = \"always\"\n[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         tls = \"none\"\nfrom = \"recon@example.com\"\nto = [\"finance@example.com\"]\n",
        smtp.addr.port()
    ));
    run_killed_at(&env, point).await;
    left(&env);
    assert!(smtp.received().is_empty(), "the killed run mailed");
    let again = env.run(&["--run-now"]).await;
    assert_eq!(code(&again), 0, "{}", text(&again));
    let listed = listings(&env);
    assert_eq!(
        listed.len(),
        env.sandbox.expected().confident.len(),
        "every confident pair was reconciled"
    );
    let twice: Vec<_> = listed.iter().filter(|(_, f)| f.len() != 1).collect();
    assert!(
        twice.is_empty(),
        "reconciles not listed by exactly one report: {twice:#?}"
    );
    let store = env.store();
    assert_eq!(
        scalar::<i64>(
            &store,
            "SELECT COUNT(*) FROM reports WHERE written_at IS NULL OR state <> 'sent'"
        ),
        0,
        "a report is left unwritten or unsent"
    );
    let mailed = bodies(&smtp);
    assert_eq!(
        mailed.len(),
        report_folders(&env.reports).len(),
        "one mail per report on disk: {mailed:#?}"
    );
    (env, listed, mailed)
}

fn unwritten(env: &TestEnv) -> i64 {
    scalar(
        &env.store(),
        "SELECT COUNT(*) FROM reports WHERE written_at IS NULL",
    )
}

fn staging_folders(env: &TestEnv) -> Vec<String> {
    std::fs::read_dir(&env.reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_a_report_is_on_disk_leaves_each_reconcile_in_that_report_alone() {
    if pause_points_missing() {
        return;
    }
    let (env, listed, mailed) = killed_then_run_again("report-on-disk", |env| {
        assert_eq!(report_folders(&env.reports).len(), 1);
        assert_eq!(unwritten(env), 1);
    })
    .await;
    // The killed run's folder stands as its report: it lists every reconcile (all were
    // made by that run), the next run's lists none again, and both are mailed.
    let folders = report_folders(&env.reports);
    assert_eq!(folders.len(), 2, "{folders:#?}");
    let first = folders.keys().next().unwrap();
    assert!(first.contains("-run1-"), "{first}");
    assert!(listed.values().all(|f| &f[0] == first), "{listed:#?}");
    assert!(
        mailed[0].contains("Run 1:") && mailed[1].contains("Run 2:"),
        "{mailed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_a_recorded_report_is_on_disk_lists_its_reconciles_in_the_next_report() {
    if pause_points_missing() {
        return;
    }
    let (env, listed, _) = killed_then_run_again("report-recorded", |env| {
        assert!(report_folders(&env.reports).is_empty());
        assert_eq!(unwritten(env), 1);
    })
    .await;
    // The killed run wrote no folder: its record is voided, and the next run's report
    // lists what it would have, and is the one mail.
    let folders = report_folders(&env.reports);
    assert_eq!(folders.len(), 1, "{folders:#?}");
    assert!(staging_folders(&env).is_empty());
    let store = env.store();
    assert!(
        store.report_state(1).unwrap().is_none(),
        "run 1's report is still recorded"
    );
    assert_eq!(
        scalar::<i64>(
            &store,
            "SELECT COUNT(*) FROM matches WHERE state = 'reconciled' AND reported_run = 2"
        ) as usize,
        listed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_a_report_is_staged_removes_the_staging_folder_and_lists_its_reconciles_next()
{
    if pause_points_missing() {
        return;
    }
    let (env, _, _) = killed_then_run_again("report-staged", |env| {
        assert!(report_folders(&env.reports).is_empty());
        assert_eq!(staging_folders(env).len(), 1);
    })
    .await;
    assert_eq!(report_folders(&env.reports).len(), 1);
    assert!(
        staging_folders(&env).is_empty(),
        "staging folders left behind: {:?}",
        staging_folders(&env)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restored_from_a_backup_leaves_the_report_folders_written_since_intact() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::start(crate::small()).await;
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    // Yesterday's backup: the database as run 1 left it.
    let backup = env.db.with_file_name("backup.sqlite3");
    std::fs::copy(&env.db, &backup).unwrap();
    let wal = |p: &Path| PathBuf::from(format!("{}-wal", p.display()));
    assert!(!wal(&env.db).exists(), "the run left a WAL behind");

    let second = env.run(&["--run-now"]).await;
    assert_eq!(code(&second), 0, "{}", text(&second));
    let before = report_folders(&env.reports);
    assert_eq!(before.len(), 2, "{before:#?}");
    let (name, dir) = before.iter().next_back().unwrap();
    let inode = std::fs::metadata(dir).unwrap().ino();
    let files = contents(dir);
    assert!(files.contains_key("reconciled.csv"), "{files:?}");

    // The backup put in place, as the README advises for a damaged file: the next run
    // is numbered 2 again.
    std::fs::copy(&backup, &env.db).unwrap();
    for extra in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{extra}", env.db.display()));
    }
    let third = env.run(&["--run-now"]).await;
    assert_eq!(code(&third), 0, "{}", text(&third));
    assert_eq!(
        scalar::<i64>(&env.store(), "SELECT MAX(run_id) FROM reports"),
        2,
        "the restored database numbered the run again"
    );

    let after = report_folders(&env.reports);
    assert_eq!(after.len(), 3, "{after:#?}");
    let kept = after
        .get(name)
        .unwrap_or_else(|| panic!("{name} is gone: {after:#?}"));
    assert_eq!(
        std::fs::metadata(kept).unwrap().ino(),
        inode,
        "{name} was replaced"
    );
    assert!(contents(kept) == files, "the files of {name} changed");
}

/// The files of run `run`'s report folder, by name.
fn file_names(env: &TestEnv, run: i64) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.report_dir(run))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbook_is_written_for_a_mailed_report_or_when_asked_and_the_csvs_always() {
    const CSVS: [&str; 4] = [
        "reconciled.csv",
        "unmatched_bank_transactions.csv",
        "unmatched_payments.csv",
        "unmatched_payouts.csv",
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<String> = CSVS.iter().chain(extra).map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let env = TestEnv::start(crate::small()).await;
    let smtp = crate::smtp::spawn_smtp();
    let email = format!(
        "[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n\
         from = \"recon@example.com\"\nto = [\"finance@example.com\"]\n\
         digest = \"0 0 0 1 1 *\"\n",
        smtp.addr.port()
    );
    // 1: the first digest, mailed: the workbook goes with it.
    env.write_config(&email);
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(file_names(&env, 1), with(&["report.eml", "report.xlsx"]));
    // 2: nothing new to mail between digests: the CSVs alone.
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(
        env.store().report_state(2).unwrap().unwrap().0,
        "not_needed"
    );
    assert_eq!(file_names(&env, 2), with(&[]));
    // 3: asked for on every report.
    env.write_config(&format!("workbook = \"always\"\n{email}"));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(file_names(&env, 3), with(&["report.xlsx"]));
    // 4: no e-mail at all: the CSVs alone.
    env.write_config("");
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(file_names(&env, 4), with(&[]));
}
