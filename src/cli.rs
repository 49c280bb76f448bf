//! Command-line interface: the modes of the job and their exit codes.
//!
//! - `cp-recon [--config PATH]`: stay up and run on `[schedule] cron`;
//! - `cp-recon --run-now [--dry-run] [--full]`: one run, then exit;
//! - `cp-recon sandbox ...`: serve the local CryptoPocket simulator;
//! - `cp-recon demo`: the sandbox, one run against it, reports in `./cp-recon-demo/`;
//! - `cp-recon status`: the last runs, the open items and what blocks automation.
//! - `cp-recon review|approve|dismiss|reopen|apply|history`: a person's decisions
//!   (`crate::desk`).
//!
//! Exit codes: 0 the run completed; 1 the run failed (API unreachable, incomplete sync,
//! database error); 2 usage or configuration error, or a decision refused; 75 another
//! run is in progress; 143 (SIGTERM) or 130 (SIGINT) the run was stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, Settings};
use crate::run::{RunOptions, RunStatus, Stop, run_once};
use crate::sandbox::SandboxArgs;
use crate::schedule::run_scheduled;
use crate::telemetry::LogFormat;

pub use crate::exit::{
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE,
};

/// Reconciles CryptoPocket on-ramp bank-transfer payments with the integration's bank
/// transactions, and reports what needs a person.
#[derive(Debug, Parser)]
#[command(name = "cp-recon", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: $CP_RECON_CONFIG, else /etc/cp-recon/config.toml, else ./config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Run once now and exit (instead of staying up on the configured schedule).
    #[arg(long)]
    pub run_now: bool,

    /// Decide and record everything, but call nothing at the provider.
    #[arg(long, requires = "run_now")]
    pub dry_run: bool,

    /// Read every list from the beginning instead of incrementally.
    #[arg(long, requires = "run_now")]
    pub full: bool,

    /// Log format: auto (human on a terminal, one line per event otherwise), human, journal, json.
    #[arg(
        long,
        global = true,
        env = "CP_RECON_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the local CryptoPocket sandbox (a simulator of the API with generated data).
    Sandbox(SandboxArgs),
    /// Start a sandbox, run one reconciliation against it, and write the reports (no
    /// configuration, no credentials).
    Demo(crate::demo::DemoArgs),
    /// Show the last runs, the next one, the open items by reason with their oldest age,
    /// the reports not e-mailed yet and anything blocking automation. Reads only; works
    /// while a run is in progress.
    Status,
    /// What needs a person now, from the latest completed run, with the command that
    /// would act on each item.
    Review(ReviewArgs),
    /// Reconcile a payment with a bank credit the job would not tie by itself (through
    /// the same re-reads, intent journal and settle logic as the job's own calls).
    Approve(ApproveArgs),
    /// Stop reporting an item (payment, bank transaction, off-ramp, unreadable record).
    Dismiss(DismissArgs),
    /// Report a dismissed item again.
    Reopen(ReopenArgs),
    /// Apply the decisions written in the `action` and `note` columns of the report's
    /// workbook (`report.xlsx`) or of one of its CSVs (every row is checked first; any
    /// invalid row and nothing is applied).
    Apply(ApplyArgs),
    /// The life of an item: first seen, every run that reported it and why, every
    /// decision, its reconcile if any.
    History(HistoryArgs),
    /// The database itself.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Copy the configured SQLite database into an empty PostgreSQL database, in one
    /// transaction, and check the row count of every table. The password comes from
    /// CP_RECON_DATABASE_PASSWORD or --password-file, never from the URL.
    Copy(CopyArgs),
}

#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The target: postgresql://USER@HOST:PORT/DBNAME[?sslmode=...&sslrootcert=...]
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A file holding the target's password (else CP_RECON_DATABASE_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// A payment, bank transaction or off-ramp id, or an unreadable record's id.
    pub item_id: String,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The report's workbook (`report.xlsx`, every sheet with an `action` column) or
    /// one of its CSVs (`unmatched_payments.csv`, `unmatched_bank_transactions.csv`,
    /// `unmatched_payouts.csv`), with `action` (approve, dismiss, reopen) filled in.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Who decides (recorded with each decision).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Check every row and show what would be done; call and record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// Only items with this reason (e.g. `ambiguous`).
    #[arg(long, value_name = "R")]
    pub reason: Option<String>,
    /// `table` for a terminal (80 columns), `csv` or `json` for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::desk::commands::Format,
    /// Print everything at once. Otherwise, at a terminal, the output goes through
    /// `$PAGER` (`less -FRX` when unset; `PAGER=` or `PAGER=cat` also prints).
    #[arg(long)]
    pub no_pager: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The payment waiting for its transfer (`pending_bank`).
    pub payment_id: String,
    /// The bank credit that pays it.
    pub transaction_id: String,
    /// Who decides (recorded with the decision).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Why (recorded with the decision).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Check and show what would happen; call nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct DismissArgs {
    /// A payment, bank transaction or off-ramp id, or an unreadable record's id.
    pub item_id: String,
    /// Who decides (recorded with the decision).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Why it stops being reported (required).
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

#[derive(Debug, clap::Args)]
pub struct ReopenArgs {
    /// The dismissed item's id.
    pub item_id: String,
    /// Who decides (recorded with the decision).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Why (recorded with the decision).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// Runs the command and returns the process exit code. Errors are printed here, once,
/// with their whole chain.
pub async fn dispatch(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Some(Command::Sandbox(args)) => {
            report_err(crate::sandbox::serve_cli(args).await, EXIT_FAILED)
        }
        Some(Command::Demo(args)) => report_err(crate::demo::run(args).await, EXIT_FAILED),
        Some(Command::Status) => match settings_or_usage(cli.config.as_deref()) {
            Ok(settings) => report_err(status(&settings), EXIT_FAILED),
            Err(code) => code,
        },
        Some(Command::Db(DbCommand::Copy(args))) => {
            match settings_or_usage(cli.config.as_deref()) {
                Ok(settings) => {
                    crate::database::copy_cli(&settings, &args.to, args.password_file.as_deref())
                }
                Err(code) => code,
            }
        }
        Some(command) => match settings_or_usage(cli.config.as_deref()) {
            Ok(settings) => desk(&settings, command).await,
            Err(code) => code,
        },
        None => {
            let settings = match settings_or_usage(cli.config.as_deref()) {
                Ok(s) => s,
                Err(code) => return ExitCode::from(code),
            };
            log_hangups();
            if cli.run_now {
                let opts = RunOptions {
                    dry_run: cli.dry_run,
                    full: cli.full,
                    progress: crate::telemetry::is_interactive(),
                    write_eml: false,
                    stop: Stop::default(),
                };
                // SIGTERM (`systemctl stop`) or SIGINT: the run stops at its next safe
                // point, as a run of the daemon does, instead of dying mid-call.
                let stop = opts.stop.clone();
                let signalled = termination();
                let on_signal = tokio::spawn(async move {
                    let why = signalled.await;
                    tracing::warn!(
                        "{why} received; stopping: no new request, calls in flight get {} s to answer",
                        crate::stop::CALL_GRACE.as_secs()
                    );
                    stop.request(&format!("{why} received"));
                    why
                });
                let code = run_now(&settings, &opts).await;
                if on_signal.is_finished() {
                    match on_signal.await {
                        Ok("SIGINT") if code == EXIT_STOPPED => EXIT_INTERRUPTED,
                        _ => code,
                    }
                } else {
                    on_signal.abort();
                    code
                }
            } else {
                daemon(settings).await
            }
        }
    };
    ExitCode::from(code)
}

/// A desk command: prints what it did on stdout, or why not on stderr.
async fn desk(settings: &Settings, command: Command) -> u8 {
    use crate::desk::{Action, DeskError, commands};
    // Decided before the command runs; the pager starts once it has finished (and
    // released the run lock), so a person reading does not hold up a run.
    let pager = match &command {
        Command::Review(a) => crate::pager::for_stdout(a.no_pager),
        _ => None,
    };
    let result = match command {
        Command::Review(a) => commands::review(settings, a.reason.as_deref(), a.format),
        Command::Approve(a) => match (
            crate::domain::PaymentId::parse(&a.payment_id),
            crate::domain::BankTxId::parse(&a.transaction_id),
        ) {
            (Ok(p), Ok(t)) => {
                commands::approve(settings, &p, &t, &a.by, a.note.as_deref(), a.dry_run).await
            }
            _ => Err(anyhow::anyhow!("a payment id and a transaction id are required").into()),
        },
        Command::Dismiss(a) => {
            commands::dismiss_or_reopen(settings, Action::Dismiss, &a.item_id, &a.by, Some(&a.note))
        }
        Command::Reopen(a) => commands::dismiss_or_reopen(
            settings,
            Action::Reopen,
            &a.item_id,
            &a.by,
            a.note.as_deref(),
        ),
        Command::Apply(a) => commands::apply(settings, &a.file, &a.by, a.dry_run).await,
        Command::History(a) => commands::history(settings, &a.item_id),
        Command::Sandbox(_) | Command::Demo(_) | Command::Status | Command::Db(_) => {
            return EXIT_USAGE;
        }
    };
    match result {
        Ok(text) => {
            crate::pager::show(&text, pager.as_deref());
            EXIT_OK
        }
        Err(DeskError::Locked(msg)) => {
            tracing::warn!("{msg}; nothing done");
            if crate::telemetry::plain() {
                eprintln!("cp-recon: {msg}; nothing done");
            }
            EXIT_LOCKED
        }
        Err(e @ (DeskError::Refused(_) | DeskError::InvalidFile { .. })) => {
            crate::telemetry::fail(&format!("refused: {e}"));
            EXIT_USAGE
        }
        Err(DeskError::NotAllApplied(text)) => {
            print_out(&text);
            EXIT_FAILED
        }
        Err(DeskError::Failed(e)) => {
            crate::telemetry::fail(&format!("error: {e:#}"));
            EXIT_FAILED
        }
    }
}

/// Prints a command's text on stdout; a reader that went away (`review | head`) is not
/// an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end());
}

fn load_settings(flag: Option<&std::path::Path>) -> Result<Settings, ConfigError> {
    let path = config::locate(flag)?;
    config::load(&path)
}

/// The settings, or the usage exit code once the error is printed.
fn settings_or_usage(flag: Option<&std::path::Path>) -> Result<Settings, u8> {
    load_settings(flag).map_err(|e| {
        // With its cause (a `source`, not repeated in the message).
        let e = anyhow::Error::from(e);
        crate::telemetry::fail(&format!("configuration error: {e:#}"));
        EXIT_USAGE
    })
}

fn report_err(r: anyhow::Result<()>, code: u8) -> u8 {
    match r {
        Ok(()) => EXIT_OK,
        Err(e) => {
            crate::telemetry::fail(&format!("error: {e:#}"));
            code
        }
    }
}

/// Prints the status screen (`cp-recon status`).
fn status(settings: &Settings) -> anyhow::Result<()> {
    use anyhow::Context;
    let Some(store) = crate::database::open_to_read(&settings.database, chrono::Utc::now())? else {
        anyhow::bail!(
            "no {}: no run has been made with this configuration yet",
            settings.database.describe()
        );
    };
    let data = store.status(crate::status::RUNS_SHOWN).with_context(|| {
        format!(
            "cannot read the status from the {}",
            settings.database.describe()
        )
    })?;
    let now = chrono::Utc::now();
    let schedule = &settings.schedule;
    let digest = match (&settings.email, settings.reports.send) {
        (Some(email), crate::report::SendPolicy::Digest) => email
            .digest
            .as_ref()
            .and_then(|d| crate::schedule::next_fire(d, schedule.timezone, now)),
        _ => None,
    };
    let next = crate::status::Next {
        run: crate::schedule::next_fire(&schedule.cron, schedule.timezone, now),
        digest,
    };
    print!(
        "{}",
        crate::status::render(&data, next, schedule.timezone, now)
    );
    Ok(())
}

/// One run; prints the summary line; returns the exit code.
pub async fn run_now(settings: &Settings, opts: &RunOptions) -> u8 {
    match run_once(settings, opts).await {
        Ok(s) => {
            match s.status {
                RunStatus::Locked => {
                    let msg = s.error.as_deref().unwrap_or("another run is in progress");
                    tracing::warn!("{msg}; nothing done");
                    if crate::telemetry::plain() {
                        eprintln!("cp-recon: {msg}; nothing done");
                    }
                }
                RunStatus::Completed => tracing::info!(summary = %s.line(), "run finished"),
                RunStatus::Stopped => {
                    // Asked for (`systemctl stop`, Ctrl-C): a warning, not an error.
                    let msg = s.error.as_deref().unwrap_or("stopped");
                    tracing::warn!(summary = %s.line(), "{msg}");
                    if crate::telemetry::plain() {
                        eprintln!("cp-recon: {msg}");
                    }
                }
                RunStatus::Incomplete | RunStatus::Failed => {
                    tracing::error!(summary = %s.line(), error = s.error.as_deref().unwrap_or(""), "run did not complete");
                    if crate::telemetry::plain() {
                        eprintln!(
                            "cp-recon: error: {}",
                            s.error.as_deref().unwrap_or("run failed")
                        );
                    }
                }
            }
            if crate::telemetry::is_interactive() && s.status != RunStatus::Locked {
                println!("{}", s.line());
            }
            s.status.exit_code()
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "run failed");
            if crate::telemetry::plain() {
                eprintln!("cp-recon: error: {e:#}");
            }
            EXIT_FAILED
        }
    }
}

/// Stays up and runs on the schedule until SIGTERM or SIGINT.
async fn daemon(settings: Settings) -> u8 {
    // Checked when the configuration was read.
    let (schedule, tz) = (settings.schedule.cron.clone(), settings.schedule.timezone);
    let opts = RunOptions {
        progress: false,
        ..RunOptions::default()
    };
    let stop = opts.stop.clone();
    // No run starts after SIGTERM or SIGINT; the one in progress stops at its next
    // safe point (no new reconcile call, the calls in flight settled).
    let signalled = termination();
    let shutdown = async move {
        let why = signalled.await;
        tracing::info!("{why} received; shutting down");
        stop.request(&format!("{why} received"));
    };
    let settings = &settings;
    let opts = &opts;
    let stats = run_scheduled(schedule, tz, shutdown, || async move {
        // A failed run is logged by run_now and does not stop the schedule.
        let _ = run_now(settings, opts).await;
    })
    .await;
    tracing::info!(runs = stats.runs, skipped = stats.skipped, "stopped");
    EXIT_OK
}

/// Resolves on SIGTERM or SIGINT, logging which.
pub async fn shutdown_signal() {
    let why = termination().await;
    tracing::info!("{why} received; shutting down");
}

/// Logs each SIGHUP and otherwise ignores it (its default action would end the
/// process): the configuration is read once, at start.
fn log_hangups() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::warn!(
                            "SIGHUP received and ignored: the configuration is read only at start; restart cp-recon to apply a change"
                        );
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch for SIGHUP"),
        }
    }
}

/// Listens for SIGTERM and SIGINT from the moment it is called, and resolves with the
/// name of the first that comes. Called before anything awaits: a signal that came
/// before the listener was first polled would otherwise meet its default action and
/// end the process mid-run.
fn termination() -> impl std::future::Future<Output = &'static str> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async fn recv(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        async move {
            tokio::select! {
                () = recv(int) => "SIGINT",
                () = recv(term) => "SIGTERM",
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "SIGINT"
    }
}
