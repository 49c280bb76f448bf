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
    // The demo's earlier database and the report folders its runs wrote (by their
    // names, and `1`, as versions before named them), nothing else of the folder.
    let mut stale = vec![
        db.clone(),
        args.dir.join("recon.sqlite3-wal"),
        args.dir.join("recon.sqlite3-shm"),
        args.dir.join("1"),
    ];
    if let Ok(entries) = std::fs::read_dir(&args.dir) {
        stale.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| crate::report::is_folder_name(&e.file_name().to_string_lossy()))
                .map(|e| e.path()),
        );
    }
    for stale in stale {
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
    let mut settings = Settings::for_sandbox(base_url, &key, &secret, &db, &args.dir);
    // The file newcomers are told to open, whether or not the report is mailed.
    settings.reports.workbook = crate::report::WorkbookPolicy::Always;
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
    let sandbox_url = sandbox.base_url();
    sandbox.shutdown().await;

    let config = write_config(&args.dir, &sandbox_url, &key, &secret)?;
    println!("{}", summary.line());
    println!("  reconcile calls received by the sandbox: {calls}");
    if let Some(dir) = &summary.report_dir {
        println!("  reports:  {}", dir.display());
        // What was written, as it is: the workbook is the file people open.
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in files {
            println!("            {}", f.display());
        }
    }
    println!("  database: {}", db.display());
    println!("  config:   {} (for the commands below)", config.display());
    let c = config.display();
    println!("next, on what the demo made:");
    println!("  cp-recon status --config {c}    # the last run and what needs a person");
    println!("  cp-recon review --config {c}    # every open item, with the command to act");
    println!("  cp-recon history PAYMENT_OR_TRANSACTION_ID --config {c}");
    match summary.status {
        RunStatus::Completed => Ok(()),
        _ => anyhow::bail!(
            "the demo run did not complete: {}",
            summary.error.unwrap_or_default()
        ),
    }
}

/// Writes `config.toml` (and the sandbox's secret in `api_secret`, both readable by the
/// owner only) beside the demo's files, with absolute paths, so that the commands that
/// read a database (`status`, `review`, `history`) work on what the demo made. The
/// sandbox it names is gone once the demo ends: a run with it finds no provider.
fn write_config(
    dir: &std::path::Path,
    base_url: &str,
    key: &str,
    secret: &str,
) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let secret_file = dir.join("api_secret");
    let config = dir.join("config.toml");
    let text = format!(
        "# Written by `cp-recon demo` for trying the commands that read its database\n\
         # (status, review, history). The sandbox named below is gone once the demo ends.\n\
         [cryptopocket]\nbase_url = {}\napi_key = {}\napi_secret_file = {}\n\n\
         [database]\npath = {}\n\n[reports]\ndir = {}\nworkbook = \"always\"\n",
        quoted(base_url),
        quoted(key),
        quoted(&secret_file.to_string_lossy()),
        quoted(&dir.join("recon.sqlite3").to_string_lossy()),
        quoted(&dir.to_string_lossy()),
    );
    for (path, body) in [(&secret_file, format!("{secret}\n")), (&config, text)] {
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::io::Write::write_all(&mut f, body.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(config)
}
