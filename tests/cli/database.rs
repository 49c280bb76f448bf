//! What the run says and does when its database is in another's hands, cannot be made,
//! or is damaged: each message names the file and what to do.

use std::time::{Duration, Instant};

use cp_recon::sandbox::{DataSpec, Faults, SandboxConfig};

use crate::helpers::{TestEnv, code, scalar, text};

fn small() -> SandboxConfig {
    SandboxConfig::new(DataSpec::small(7, chrono::Utc::now()))
}

/// The last line the job wrote to stderr.
fn last_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_by_another_process_mid_run_fails_the_run_after_the_busy_timeout_naming_the_file()
 {
    let mut config = small();
    config.faults.hold_reconcile = true;
    let env = TestEnv::start(config).await;
    let child = env
        .command(&["--run-now"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run is in its reconcile phase, holding a call's answer.
    env.sandbox.wait_for_held_reconcile().await;
    // A person's sqlite3 shell takes the write lock, and keeps it well past the timeout.
    let holder = rusqlite::Connection::open(&env.db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();
    let started = Instant::now();
    let out = child.wait_with_output().await.unwrap();
    let took = started.elapsed();
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    assert_eq!(code(&out), 1, "{}", text(&out));
    let last = last_line(&out);
    assert!(
        last.contains(&format!(
            "another process holds a write lock on {}",
            env.db.display()
        )),
        "{}",
        text(&out)
    );
    assert!(last.contains("the next run will continue"), "{last}");
    assert_eq!(last.matches("database is locked").count(), 1, "{last}");
    // The busy timeout (10 s) once, and a short wait to record the end: not once per
    // statement.
    assert!(
        took < Duration::from_secs(16),
        "the run waited {took:?} for the lock"
    );

    // With the lock gone, the next run settles what the failed one left and completes.
    let again = env.run(&["--run-now"]).await;
    assert_eq!(code(&again), 0, "{}", text(&again));
    let store = env.store();
    let open: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM matches WHERE state IN ('intent', 'unknown')",
    );
    assert_eq!(open, 0);
    let running: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM runs WHERE outcome = 'running'",
    );
    assert_eq!(running, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_directory_that_cannot_be_created_is_named_with_the_real_cause() {
    // /sys refuses new directories to everyone, root included (a read-only place that
    // chmod cannot make for a test running as root).
    if !std::path::Path::new("/sys/kernel").is_dir() {
        eprintln!("skipped: no /sys here to refuse a new directory");
        return;
    }
    let env = TestEnv::start(small()).await;
    let db = std::path::Path::new("/sys/cp-recon-test/state/recon.sqlite3");
    let config = env.config.with_file_name("sys.toml");
    env.write_config_at(&config, db, "");
    let out = env
        .command_with(&config, &["--run-now"])
        .output()
        .await
        .unwrap();

    assert_eq!(code(&out), 1, "{}", text(&out));
    let last = last_line(&out);
    assert!(
        last.contains("cannot create /sys/cp-recon-test/state, the directory of the database"),
        "{}",
        text(&out)
    );
    assert!(!last.contains("No such file or directory"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_lost_its_last_pages_is_refused_with_how_to_restore_it() {
    let env = TestEnv::start(small()).await;
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    // The file loses its last few KB, as on a disk that filled up mid-copy.
    let len = std::fs::metadata(&env.db).unwrap().len();
    assert!(len > 64 * 1024, "a database of {len} bytes");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&env.db)
        .unwrap();
    file.set_len(len - 12 * 1024).unwrap();
    drop(file);
    let calls_before = env.sandbox.reconcile_calls().len();

    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let last = last_line(&out);
    assert!(
        last.contains(&format!("database {} is damaged", env.db.display())),
        "{}",
        text(&out)
    );
    assert!(
        last.contains("put the last good backup in its place"),
        "{last}"
    );
    assert_eq!(env.sandbox.reconcile_calls().len(), calls_before);
    // Refused before anything was written: the file is as the truncation left it.
    assert_eq!(std::fs::metadata(&env.db).unwrap().len(), len - 12 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_whose_last_pages_were_zeroed_opens_but_a_full_resync_refuses_it() {
    let env = TestEnv::start(small()).await;
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    // The last 8 KB read back as zeros (a lost write): the file keeps its size, its
    // header and schema, so it opens and most reads still work.
    let len = std::fs::metadata(&env.db).unwrap().len();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&env.db)
            .unwrap();
        file.seek(SeekFrom::Start(len - 8 * 1024)).unwrap();
        file.write_all(&[0u8; 8 * 1024]).unwrap();
    }
    let runs: i64 = rusqlite::Connection::open(&env.db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1, "the damage is not in what a plain read sees");

    let out = env.run(&["--run-now", "--full"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let last = last_line(&out);
    assert!(
        last.contains(&format!("database {} is damaged", env.db.display())),
        "{}",
        text(&out)
    );
    assert!(
        last.contains("put the last good backup in its place"),
        "{last}"
    );
    let runs: i64 = rusqlite::Connection::open(&env.db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1, "a run was begun on the damaged file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_by_less_than_a_page_is_refused_at_the_next_open_before_anything_is_written()
{
    let env = TestEnv::start(small()).await;
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    // 3,000 bytes, not a whole page: SQLite counts the pages rounding up and would read
    // the lost tail of the last page as zeros.
    let len = std::fs::metadata(&env.db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&env.db)
        .unwrap()
        .set_len(len - 3000)
        .unwrap();
    let calls_before = env.sandbox.reconcile_calls().len();

    // An incremental run, which does not run the full check.
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let last = last_line(&out);
    assert!(
        last.contains(&format!("database {} is damaged", env.db.display())),
        "{}",
        text(&out)
    );
    assert!(
        last.contains("not a whole number of 4096-byte pages"),
        "{last}"
    );
    assert!(
        last.contains("put the last good backup in its place"),
        "{last}"
    );
    assert_eq!(env.sandbox.reconcile_calls().len(), calls_before);
    assert_eq!(std::fs::metadata(&env.db).unwrap().len(), len - 3000);
    // Every open refuses it, not only a run's.
    let status = env.run(&["status"]).await;
    assert_eq!(code(&status), 1, "{}", text(&status));
    assert!(
        last_line(&status).contains("is damaged"),
        "{}",
        text(&status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_left_by_a_killed_run_opens_and_the_next_run_completes() {
    let mut config = small();
    config.faults.hold_reconcile = true;
    let env = TestEnv::start(config).await;
    let mut child = env
        .command(&["--run-now"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Mid-write: the run has committed an intent and holds its call.
    env.sandbox.wait_for_held_reconcile().await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();

    // The killed writer left its WAL behind, not checkpointed into the file.
    let wal = std::fs::metadata(format!("{}-wal", env.db.display())).unwrap();
    assert!(wal.len() > 0, "no WAL was left");
    let status = env.run(&["status"]).await;
    assert!(!text(&status).contains("is damaged"), "{}", text(&status));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!text(&out).contains("is damaged"), "{}", text(&out));
}
