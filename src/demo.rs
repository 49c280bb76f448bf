//! `cp-recon demo`: the embedded default. Starts the local sandbox in-process with a
//! generated data set, runs one reconciliation against it with a fresh database, and
//! writes the reports (and the e-mail as an `.eml` file) to `./cp-recon-demo/`.
//! No configuration, no credentials, nothing to install.

use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;

use crate::api::BaseUrl;
use crate::config::Settings;
use crate::run::{RunOptions, RunStatus, run_once};
use crate::sandbox::{DataSpec, Sandbox, SandboxConfig};

/// Options of `cp-recon demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the database, the reports and the e-mail go (recreated on each demo).
    #[arg(long, default_value = "cp-recon-demo")]
    pub dir: PathBuf,
    /// Seed of the generated data set.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of payments (default: the small set, every situation once or twice).
    #[arg(long)]
    pub payments: Option<usize>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let anchor = Utc::now();
    let data = match args.payments {
        Some(n) => DataSpec::scaled(args.seed, anchor, n, n, (n / 10).max(10)),
        None => DataSpec::small(args.seed, anchor),
    };
    let config = SandboxConfig::new(data);
    let (key, secret) = (config.api_key.clone(), config.api_secret.clone());
    let sandbox = Sandbox::start(config)
        .await
        .context("cannot start the local sandbox")?;

    let db = args.dir.join("recon.sqlite3");
    for stale in [
        db.clone(),
        args.dir.join("recon.sqlite3-wal"),
        args.dir.join("recon.sqlite3-shm"),
        args.dir.join("1"),
    ] {
        if stale.is_dir() {
            std::fs::remove_dir_all(&stale)
                .with_context(|| format!("cannot clear {}", stale.display()))?;
        } else if stale.exists() {
            std::fs::remove_file(&stale)
                .with_context(|| format!("cannot clear {}", stale.display()))?;
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;

    let base_url = BaseUrl::parse(&sandbox.base_url()).context("the sandbox's address")?;
    let settings = Settings::for_sandbox(base_url, &key, &secret, &db, &args.dir);
    println!(
        "cp-recon demo: local sandbox at {} (seed {})",
        sandbox.base_url(),
        args.seed
    );
    let summary = run_once(
        &settings,
        &RunOptions {
            full: true,
            write_eml: true,
            progress: crate::telemetry::is_interactive(),
            ..RunOptions::default()
        },
    )
    .await?;
    let calls = sandbox.reconcile_calls().len();
    sandbox.shutdown().await;

    println!("{}", summary.line());
    println!("  reconcile calls received by the sandbox: {calls}");
    if let Some(dir) = &summary.report_dir {
        println!("  reports:  {}", dir.display());
        let files = crate::report::ReportKind::ALL
            .iter()
            .map(|k| k.file_name())
            .chain(["report.eml"]);
        for f in files {
            println!("            {}", dir.join(f).display());
        }
    }
    println!("  database: {}", db.display());
    match summary.status {
        RunStatus::Completed => Ok(()),
        _ => anyhow::bail!(
            "the demo run did not complete: {}",
            summary.error.unwrap_or_default()
        ),
    }
}
