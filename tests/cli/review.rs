//! `cp-recon review` as a person reads it: urgent items first, times in the schedule's
//! zone, long output through a pager only at a terminal.

use std::io::Read as _;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use crate::desk::{job, small, stdout};
use crate::helpers::{TestEnv, code, text};

const URGENT: &[&str] = &[
    "reconcile_failed",
    "unexplained_debit",
    "returned_after_reconcile",
    "vanished",
];

/// The item heads of a review table, in order: `(urgent mark, reason)`.
fn heads(table: &str) -> Vec<(bool, String)> {
    table
        .lines()
        .filter(|l| {
            !l.starts_with(' ')
                && (l.starts_with("URGENT ")
                    || ["payment ", "transaction ", "offramp ", "bad_record "]
                        .iter()
                        .any(|k| l.starts_with(k)))
        })
        .map(|l| {
            let reason = l.split(": ").nth(1).unwrap_or("");
            let reason = reason.split(',').next().unwrap_or("").trim().to_owned();
            (l.starts_with("URGENT "), reason)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_lists_urgent_items_first_with_times_in_the_schedules_zone() {
    let env = TestEnv::start(small()).await;
    env.write_config("\n[schedule]\ntimezone = \"Europe/Madrid\"\n");
    job(&env).await;

    let out = env.run(&["review"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let table = stdout(&out);
    let started = env.store().run(1).unwrap().unwrap().started_at;
    let started = chrono::DateTime::parse_from_rfc3339(&started)
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Madrid)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let first = table.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("Run 1 ({started}, times in Europe/Madrid): ")),
        "{table}"
    );
    assert!(!table.contains("UTC"), "{table}");
    assert!(
        table.contains(&format!("first reported {started}")),
        "{table}"
    );

    let heads = heads(&table);
    let urgent = heads.iter().filter(|(u, _)| *u).count();
    assert!(urgent > 0, "the data set has an urgent item: {table}");
    assert!(heads.len() > urgent, "and others: {table}");
    for (i, (marked, reason)) in heads.iter().enumerate() {
        assert_eq!(*marked, i < urgent, "urgent items first: {heads:?}");
        assert_eq!(*marked, URGENT.contains(&reason.as_str()), "{reason}");
    }
}

/// A pager that leaves a mark it ran, then shows its input.
fn marking_pager(mark: &Path) -> String {
    format!("touch '{}'; cat", mark.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_never_starts_a_pager_when_its_output_is_not_a_terminal() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let mark = env.reports.join("pager-ran");
    let out = env
        .command(&["review"])
        .env("PAGER", marking_pager(&mark))
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("need a person"), "{}", text(&out));
    assert!(!mark.exists(), "a pager ran for a pipe");
}

/// Runs `review` with its stdout on a pseudo-terminal; returns the exit code and what
/// the terminal received.
async fn review_at_a_terminal(env: &TestEnv, args: &[&str], pager: &str) -> (i32, String) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors into the integers given, which are
    // then owned here; no name, termios or window size is passed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        // EIO once every process holding the terminal's other side has closed it.
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).replace("\r\n", "\n")
    });
    let mut all = vec!["review"];
    all.extend_from_slice(args);
    let child = env
        .command(&all)
        .env("PAGER", pager)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    (code, reader.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_at_a_terminal_goes_through_the_pager_unless_told_not_to() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let mark = env.reports.join("pager-ran");

    let (_, shown) = review_at_a_terminal(&env, &[], &marking_pager(&mark)).await;
    assert!(mark.exists(), "no pager ran at a terminal: {shown}");
    assert!(shown.contains("need a person"), "{shown}");

    std::fs::remove_file(&mark).unwrap();
    let (_, shown) = review_at_a_terminal(&env, &["--no-pager"], &marking_pager(&mark)).await;
    assert!(!mark.exists(), "a pager ran with --no-pager");
    assert!(shown.contains("need a person"), "{shown}");

    let (_, shown) = review_at_a_terminal(&env, &[], "cat").await;
    assert!(shown.contains("need a person"), "{shown}");

    // A pager that cannot start: the text is printed all the same.
    let (_, shown) = review_at_a_terminal(&env, &[], "/nonexistent/pager").await;
    assert!(shown.contains("need a person"), "{shown}");
}
