//! What the run says and does when its database is in another's hands, cannot be made,
//! or is damaged: each message names the file and what to do.

use cp_recon::sandbox::{DataSpec, SandboxConfig};

use crate::helpers::{TestEnv, code, text};

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
