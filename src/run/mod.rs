//! One run of the job, end to end: lock, settle earlier intents, sync, match, reconcile,
//! record, report, e-mail, metrics. The scheduler and `--run-now` both call [`run_once`].
//! What a run did, [`RunSummary`] and its parts, is in `summary`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::api::Client;
use crate::config::Settings;
use crate::database::OpenError;
use crate::domain::{BankTransaction, BankTxId, Offramp, OfframpId, Payment, PaymentId};
use crate::matching::in_flight::CallLimits;
use crate::matching::{self, Decisions, MatchInput};
use crate::reconcile;
use crate::report::mail_plan::Mail;
use crate::report::period::{MAX_FIRST_PERIOD, Period, PeriodInput, Since};
use crate::report::{
    Freshness, Reconciled, Report, ReportFiles, ReportInput, RunInfo, SendPolicy, Unwritten,
    WorkbookPolicy,
};
pub use crate::stop::Stop;
use crate::store::{MatchRow, NewReport, RunEnd, SharedStore, Store, StoreError};
use crate::sync::{self, SyncMode, SyncOptions};

mod mail;
pub mod pause;
mod summary;

pub use summary::{EmailState, Outcomes, RecordsRead, RunStatus, RunSummary};
use summary::{metrics_of, summary_json, tally};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop at the next safe point once requested.
    pub stop: Stop,
    /// Decide and record everything, call nothing.
    pub dry_run: bool,
    /// Read every list from the beginning.
    pub full: bool,
    /// Show pages read per list on stderr.
    pub progress: bool,
    /// Write the e-mail as `report.eml` in the report directory too (the demo does).
    pub write_eml: bool,
}

/// One run. `Err` only when the run could not even be recorded (lock I/O, database
/// cannot be opened); every other failure is recorded in `runs` and returned as a
/// summary with status `Failed` or `Incomplete`. An error of the database names its file.
pub async fn run_once(settings: &Settings, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    run_once_inner(settings, opts)
        .await
        .map_err(|e| name_database(e, &settings.database))
}

/// Names the database file in an SQLite error that does not say it yet: statements
/// know their connection, not the file, and this is where the file is known.
/// (PostgreSQL's errors name their database themselves.)
fn name_database(mut e: anyhow::Error, db: &crate::config::DatabaseSettings) -> anyhow::Error {
    let Some(path) = db.sqlite_path() else {
        return e;
    };
    if let Some(se) = e.downcast_mut::<StoreError>() {
        let taken = std::mem::replace(se, StoreError::NoRowInserted);
        *se = taken.in_file(path);
    }
    e
}

/// How long the end of a run that failed on a held database may wait for it again, so
/// that a lock held for long delays the run (and the daemon's schedule) by about the
/// busy timeout once, not once per statement.
const FINISH_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

async fn run_once_inner(settings: &Settings, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    let started = Utc::now();
    let mut summary = RunSummary::new(started, opts.dry_run || !settings.reconcile.enabled);
    // The lock is bound before the store so that it is dropped after it: the lock
    // file's descriptor must be closed only once every SQLite connection of the run is
    // (see `RunLock`). The run's one store handle lives inside this function, and every
    // blocking task holding a clone of it is awaited before the function returns. On
    // PostgreSQL the store's own session holds the lock (`database`).
    let (_lock, store) = match crate::database::open_locked(&settings.database, started) {
        Ok(opened) => opened,
        Err(OpenError::Locked(why)) => {
            summary.status = RunStatus::Locked;
            summary.error = Some(why);
            summary.finished_at = Utc::now();
            return Ok(summary);
        }
        Err(e) => return Err(e.into()),
    };

    // The run's one handle on the database, from here to the end of the run.
    let db = SharedStore::new(store);
    let token = crate::report::new_token()?;
    let (mode, run_id) = {
        let mut store = db.lock();
        begin(
            &mut store,
            settings,
            opts.full,
            started,
            summary.dry_run,
            &token,
        )?
    };
    summary.sync_mode = Some(mode);
    summary.run_id = Some(run_id);
    summary.token = token;
    tracing::info!(
        run = run_id,
        token = %summary.token,
        mode = mode.as_str(),
        dry_run = summary.dry_run,
        "run started"
    );

    let result = run_inner(settings, opts, &db, run_id, mode, &mut summary)
        .await
        .map_err(|e| name_database(e, &settings.database));
    summary.finished_at = Utc::now();
    let busy = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<StoreError>())
        .is_some_and(StoreError::is_busy);
    if let Err(e) = &result {
        summary.status = RunStatus::Failed;
        summary.error = Some(format!("{e:#}"));
    }
    // Record the end, whatever happened; a failure here is the run's failure. What the
    // run reconciled is counted from the ledger, so a run that failed after its calls
    // still says what it did.
    let (last_success, undelivered) = {
        let mut store = db.lock();
        if busy {
            store.set_busy_timeout(FINISH_BUSY_TIMEOUT)?;
        }
        let recorded = store.reconciled_in_run(run_id).and_then(|rows| {
            summary.count_reconciled(&rows);
            store.finish_run(run_id, summary.finished_at, &run_end(&summary))
        });
        match recorded {
            Ok(()) => {}
            Err(e) if busy && e.is_busy() => {
                // Still held: the run's own error says so; the next run closes this one.
                tracing::warn!(
                    run = run_id,
                    "the database is still locked; the run's end is not recorded, the next run marks it failed"
                );
            }
            Err(e) => return Err(e.into()),
        }
        (store.last_success()?, store.undelivered_reports()?)
    };
    if let Some(path) = &settings.monitoring.textfile {
        let m = metrics_of(&summary, undelivered);
        if let Err(e) = crate::metrics::write_textfile(path, &m, last_success) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the metrics file");
        }
    }
    // A stopped run pings neither way: it did not fail, and it did not complete (the
    // next run's ping says how that one went).
    if let Some(url) = settings
        .monitoring
        .ping_url
        .as_ref()
        .filter(|_| summary.status != RunStatus::Stopped)
    {
        let http = reqwest::Client::new();
        crate::metrics::ping(&http, url, summary.status == RunStatus::Completed).await;
    }
    Ok(summary)
}

/// Chooses the sync mode, checks the database before a full resync, closes what a killed
/// process left open and records the run's start, with its token.
fn begin(
    store: &mut Store,
    settings: &Settings,
    full: bool,
    started: DateTime<Utc>,
    dry_run: bool,
    token: &str,
) -> anyhow::Result<(SyncMode, i64)> {
    let mode = if full {
        SyncMode::Full
    } else {
        let first = store.watermark("payments")?.is_none();
        let every = u64::from(settings.sync.full_resync_every);
        if first || (every > 0 && store.runs_since_full()? + 1 >= every) {
            SyncMode::Full
        } else {
            SyncMode::Incremental
        }
    };
    // The whole file is checked before a full resync writes to it (`PRAGMA quick_check`,
    // 0.3 s at 100k: on every run it would be 30-60 % of an incremental one, see
    // BENCHMARKS.md); between them, every open refuses a file cut short (`Store::open`)
    // and SQLite's own reads refuse a damaged page.
    if mode == SyncMode::Full {
        let checking = std::time::Instant::now();
        store.check()?;
        tracing::info!(
            ms = checking.elapsed().as_millis() as u64,
            "database checked"
        );
    }
    let abandoned = store.close_abandoned_runs(started)?;
    if abandoned > 0 {
        tracing::warn!(
            runs = abandoned,
            "marked runs left unfinished by a killed process as failed"
        );
    }
    for (run, dir) in store.unwritten_reports()? {
        settle_unwritten(store, run, &dir).with_context(|| {
            format!("cannot settle the report of run {run}, recorded but not written")
        })?;
    }
    let run_id = store.begin_run(started, dry_run, mode.as_str())?;
    store.set_run_token(run_id, token)?;
    Ok((mode, run_id))
}

/// The `runs` row's end: how the run ended and what it counted.
fn run_end(summary: &RunSummary) -> RunEnd {
    let read = summary.records_read.unwrap_or_default();
    RunEnd {
        // The `runs` table knows no `stopped`: a stopped run is a failed one whose error
        // says it was stopped.
        outcome: match summary.status {
            RunStatus::Locked | RunStatus::Stopped => "failed".into(),
            s => s.as_str().into(),
        },
        sync_complete: summary.sync_complete,
        payments_read: read.payments,
        offramps_read: read.offramps,
        accounts_read: read.accounts,
        transactions_read: read.transactions,
        bad_records: read.bad_records,
        reconcile_calls: summary.reconcile_calls,
        reconciled: summary.outcomes.reconciled,
        api_requests: summary.api_requests,
        api_errors: summary.api_errors,
        summary_json: Some(summary_json(summary)),
        error: summary.error.clone(),
    }
}

/// The run's client, then its steps. What the client did is counted whatever the
/// steps came to: a run that fails after its reconcile calls records how many it made.
async fn run_inner(
    settings: &Settings,
    opts: &RunOptions,
    db: &SharedStore,
    run_id: i64,
    mode: SyncMode,
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let client = Arc::new(client(settings, opts)?);
    let result = steps(settings, opts, &client, db, run_id, mode, summary).await;
    summary.reconcile_calls = client.stats.reconcile_calls.load(Ordering::Relaxed);
    summary.api_requests = client.stats.requests.load(Ordering::Relaxed);
    summary.api_errors = client.stats.errors.load(Ordering::Relaxed);
    result
}

/// The run's steps, in order; each phase is a function below.
async fn steps(
    settings: &Settings,
    opts: &RunOptions,
    client: &Arc<Client>,
    db: &SharedStore,
    run_id: i64,
    mode: SyncMode,
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let mut laps = Laps::new();

    // 1. Intents left without an outcome by an earlier run (rules §5).
    let recovered = recover_phase(settings, client, db, run_id).await?;
    laps.lap("recover");
    if stopped(opts, summary) {
        return Ok(());
    }

    // 2. Sync every list.
    let synced = sync_phase(settings, opts, client, db, run_id, mode).await?;
    summary.sync_complete = synced.complete;
    summary.freshness = freshness(db, run_id, synced.complete)?;
    summary.records_read = Some(RecordsRead::of(&synced));
    laps.lap("sync");
    // A stop during the sync ends the list reads at once: what was read is stored, the
    // lists not read in full are recorded incomplete, and nothing is matched or called.
    if stopped(opts, summary) {
        return Ok(());
    }

    // 3. Match.
    let now = Utc::now();
    let mut view = View::decide(&db.lock(), settings, synced.complete, now)?;
    laps.lap("match");

    // 4. Reconcile the confident pairs, then fold what happened into the findings.
    let executed = reconcile_phase(
        settings,
        client,
        db,
        run_id,
        summary.dry_run,
        &mut view,
        &opts.stop,
    )
    .await?;
    let mut not_reconciled = recovered.not_reconciled;
    not_reconciled.append(&mut view.blocked);
    not_reconciled.extend(executed.not_reconciled);
    let vanished: Vec<PaymentId> = synced
        .vanished
        .iter()
        .chain(&recovered.vanished)
        .chain(&executed.vanished)
        .cloned()
        .collect();
    view.add_outcomes(&db.lock(), &not_reconciled, &vanished)?;
    // Items a person dismissed are not reported, only counted (`cp-recon dismiss`).
    view.desk = desk_news(&db.lock(), run_id, &mut view.decisions)?;
    tally(summary, &view.decisions, executed.dry_run.len());
    conclude(summary, client, &synced);
    summary.deferred = executed.deferred.len() as u64;
    summary.abandoned = executed.abandoned;
    stopped(opts, summary);
    laps.lap("reconcile");

    // 5. Record what was reported, then the report itself (disk first, then e-mail).
    db.lock().insert_findings(run_id, &view.decisions)?;
    let would_be = Reconciled::would_be(&executed.dry_run, &view.payments, now);
    report_phase(settings, opts, db, run_id, &view, would_be, summary).await?;
    laps.lap("report");
    Ok(())
}

/// What people decided, as the report tells it.
#[derive(Default)]
struct DeskNews {
    /// Items dismissed, taken out of the findings.
    dismissed: usize,
    /// Decisions since the previous report, one line each.
    decisions: Vec<String>,
    /// Dismissed unreadable records this run met, one line each.
    waived: Vec<String>,
    /// Unreadable records this run met that nobody dismissed: they block automation.
    blocking: Vec<String>,
}

/// The reports directory checked writable (before any call: a pair is never tied
/// without a report to list it), then the API client, which stops when asked.
fn client(settings: &Settings, opts: &RunOptions) -> anyhow::Result<Client> {
    let reports = &settings.reports.dir;
    crate::report::check_writable(reports).with_context(|| {
        format!(
            "the reports directory {} cannot be written; nothing was called",
            reports.display()
        )
    })?;
    Ok(Client::from_settings(&settings.cryptopocket)
        .context("cannot create the CryptoPocket client")?
        .with_stop(opts.stop.clone()))
}

/// What bounds one reconcile call of the client these settings make.
fn call_limits(api: &crate::config::ApiSettings) -> CallLimits {
    let secs = std::time::Duration::from_secs;
    CallLimits {
        timeout: secs(api.timeout_secs),
        attempts: api.max_attempts,
        backoff_base: std::time::Duration::from_millis(api.backoff_base_ms),
        backoff_cap: crate::api::BACKOFF_CAP,
        // Every concurrent request may be ahead of this one for a slot.
        pacing: match api.max_requests_per_second {
            0 => std::time::Duration::ZERO,
            rps => std::time::Duration::from_secs_f64(api.concurrency as f64 / f64::from(rps)),
        },
    }
}

/// Settles the intents an earlier run left without an outcome, and the decisions of
/// approves killed mid-call with them.
async fn recover_phase(
    settings: &Settings,
    client: &Arc<Client>,
    db: &SharedStore,
    run_id: i64,
) -> anyhow::Result<reconcile::Outcome> {
    let recovered = reconcile::recover(
        client,
        db,
        run_id,
        settings.cryptopocket.concurrency,
        call_limits(&settings.cryptopocket),
    )
    .await
    .context("cannot settle earlier reconcile intents")?;
    if recovered.recovered > 0 {
        tracing::info!(
            settled = recovered.recovered,
            "settled intents of earlier runs"
        );
    }
    // A person's approve killed mid-call: its decision gets the fate just settled.
    let closed = db
        .call(move |s| s.close_interrupted_approves(run_id))
        .await
        .context("cannot close interrupted approves")?;
    if closed > 0 {
        tracing::info!(decisions = closed, "closed approves interrupted mid-call");
    }
    Ok(recovered)
}

/// Whose reads the report's items come from: this run's, or those of the last run that
/// read every list.
fn freshness(db: &SharedStore, run_id: i64, complete: bool) -> anyhow::Result<Freshness> {
    if complete {
        return Ok(Freshness::Current);
    }
    Ok(match db.lock().last_complete_sync(run_id)? {
        Some((run_id, started_at)) => Freshness::AsOf { run_id, started_at },
        None => Freshness::NeverComplete,
    })
}

/// Takes the items a person dismissed out of the findings, and says what people decided
/// since the previous report.
fn desk_news(store: &Store, run_id: i64, decisions: &mut Decisions) -> anyhow::Result<DeskNews> {
    let dismissals = store.dismissals()?;
    let dismissed = crate::desk::dismissed(&dismissals);
    let hidden = crate::desk::hide_dismissed(decisions, &dismissed);
    let decided = store.decisions_after(store.previous_report_start(run_id)?)?;
    let (mut waived, mut blocking) = (Vec::new(), Vec::new());
    for id in store.bad_record_ids_of_run(run_id)? {
        match dismissed.get(&crate::desk::ItemRef::BadRecord(id.clone())) {
            Some(d) => waived.push(format!(
                "unreadable record {id} is dismissed (by {} on {}: {}); it does not block automation",
                d.by,
                d.at.format("%Y-%m-%d"),
                d.note.as_deref().unwrap_or("")
            )),
            None => blocking.push(id),
        }
    }
    Ok(DeskNews {
        dismissed: hidden,
        decisions: decided.iter().map(crate::desk::Decision::line).collect(),
        waived,
        blocking,
    })
}

/// Builds the report, writes it to disk, and sends it with any earlier one pending.
/// The report lists every reconcile no earlier report listed, whichever run made it
/// (one killed, or one that could not write its report); a dry run lists the pairs it
/// would call instead, and leaves the real ones to the next real report.
async fn report_phase(
    settings: &Settings,
    opts: &RunOptions,
    db: &SharedStore,
    run_id: i64,
    view: &View,
    would_be: Vec<Reconciled>,
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let listed = if summary.dry_run {
        Vec::new()
    } else {
        db.lock().unreported_reconciles()?
    };
    let mut reconciled: Vec<Reconciled> = listed.iter().map(reconciled_row).collect();
    reconciled.extend(would_be);
    let listed: Vec<i64> = listed.iter().map(|m| m.id).collect();
    let mut report = Report::build(&ReportInput {
        run: RunInfo {
            run_id,
            token: summary.token.clone(),
            started_at: summary.started_at,
            finished_at: Utc::now(),
            sync_complete: summary.sync_complete,
            dry_run: summary.dry_run,
            // A stopped run did not fail: the report says in one line what it left.
            failed: summary
                .error
                .clone()
                .filter(|_| summary.status != RunStatus::Stopped),
            stopped: (summary.status == RunStatus::Stopped).then(|| {
                stop_line(
                    opts.stop.requested().unwrap_or("a stop request"),
                    summary.deferred,
                    summary.abandoned,
                )
            }),
            freshness: summary.freshness,
        },
        decisions: &view.decisions,
        payments: &view.payments,
        transactions: &view.transactions,
        offramps: &view.offramps,
        reconciled: &reconciled,
        now: view.now,
    })
    .context("cannot build the report")?;
    report.dismissed = view.desk.dismissed;
    report.decisions = view.desk.decisions.clone();
    report.waived = view.desk.waived.clone();
    report.blocking = view.desk.blocking.clone();
    {
        let store = db.lock();
        report.mark_seen(
            &store.first_seen_of_run(run_id)?,
            store.previous_report_start(run_id)?,
        );
    }
    deliver(settings, opts, db, run_id, report, &listed, summary).await
}

/// A reconcile from the ledger, as the report lists it.
fn reconciled_row(m: &MatchRow) -> Reconciled {
    Reconciled {
        payment_id: m.payment_id.clone(),
        transaction_id: m.transaction_id.clone(),
        amount: m.amount.clone(),
        concept: m.concept.clone(),
        reconciled_at: m.settled_at.unwrap_or(m.created_at),
    }
}

/// The run's request counters and how it ended: completed, or incomplete (nothing was
/// reconciled) when a list was not read in full.
fn conclude(summary: &mut RunSummary, client: &Client, synced: &sync::SyncReport) {
    summary.status = if let Some(e) = client.untrusted_certificate() {
        // The cause of every list's failure, said once and first.
        summary.error = Some(format!("{e}; nothing was reconciled"));
        RunStatus::Failed
    } else if synced.complete {
        RunStatus::Completed
    } else {
        summary.error = Some(format!(
            "incomplete sync: nothing was reconciled: {}",
            synced.errors_text()
        ));
        RunStatus::Incomplete
    };
}

/// Whether a stop was requested; if so the run ends as stopped, saying by what and
/// what it left for the next run.
fn stopped(opts: &RunOptions, summary: &mut RunSummary) -> bool {
    let Some(why) = opts.stop.requested() else {
        return false;
    };
    summary.status = RunStatus::Stopped;
    let sync = if summary.records_read.is_some() && !summary.sync_complete {
        "the sync was cut short and nothing was reconciled; "
    } else {
        ""
    };
    summary.error = Some(format!(
        "stopped: {why}: no request was started after it; {sync}{}",
        stop_line(why, summary.deferred, summary.abandoned)
    ));
    true
}

/// The one line a stopped run's report and log give: `412 confident pairs not called:
/// the run was stopped by SIGTERM; the next run calls them`, and the calls left in
/// flight, if any. `why` is what asked (`SIGTERM received`).
fn stop_line(why: &str, deferred: u64, abandoned: u64) -> String {
    let by = why.strip_suffix(" received").unwrap_or(why);
    let mut line = match deferred {
        0 => format!("the run was stopped by {by}; the next run goes on from here"),
        1 => format!(
            "1 confident pair not called: the run was stopped by {by}; the next run calls it"
        ),
        n => format!(
            "{n} confident pairs not called: the run was stopped by {by}; the next run calls them"
        ),
    };
    match abandoned {
        0 => {}
        1 => line.push_str(&format!(
            "; 1 call in flight got no answer within {} s and was left as an intent, which the next run settles",
            crate::stop::CALL_GRACE.as_secs()
        )),
        n => line.push_str(&format!(
            "; {n} calls in flight got no answer within {} s and were left as intents, which the next run settles",
            crate::stop::CALL_GRACE.as_secs()
        )),
    }
    line
}

/// Logs how long each phase took, and the peak memory so far.
struct Laps(std::time::Instant);

impl Laps {
    fn new() -> Self {
        Self(std::time::Instant::now())
    }

    fn lap(&mut self, name: &str) {
        tracing::info!(
            phase = name,
            ms = self.0.elapsed().as_millis() as u64,
            peak_rss_kb = peak_rss_kb(),
            "phase done"
        );
        self.0 = std::time::Instant::now();
    }
}

/// Reads every list into the store (the sync's writer holds the store meanwhile).
async fn sync_phase(
    settings: &Settings,
    opts: &RunOptions,
    client: &Arc<Client>,
    db: &SharedStore,
    run_id: i64,
    mode: SyncMode,
) -> anyhow::Result<sync::SyncReport> {
    // Unreadable records a person dismissed no longer make the run incomplete.
    let waived = crate::desk::dismissed(&db.lock().dismissals()?)
        .into_keys()
        .filter_map(|item| match item {
            crate::desk::ItemRef::BadRecord(id) => Some(id),
            _ => None,
        })
        .collect();
    let sync_opts = SyncOptions {
        mode,
        per_page: settings.cryptopocket.page_size,
        overlap: chrono::Duration::hours(i64::from(settings.sync.overlap_hours)),
        concurrency: settings.cryptopocket.concurrency,
        progress: opts.progress,
        waived: Arc::new(waived),
        booking_tolerance: settings.matching.booking_tolerance,
        lookback: settings.matching.lookback,
    };
    // A store error stays a `StoreError` under the context, so the run can name the file.
    sync::sync_all(client.clone(), db, run_id, &sync_opts)
        .await
        .map_err(|e| match e {
            sync::SyncError::Store(e) => anyhow::Error::new(e),
            other => anyhow::Error::new(other),
        })
        .context("sync failed")
}

/// What the run decided, with every record the report names.
struct View {
    decisions: Decisions,
    payments: HashMap<PaymentId, Payment>,
    transactions: HashMap<BankTxId, BankTransaction>,
    offramps: HashMap<OfframpId, Offramp>,
    /// Confident pairs the provider refused before, as the run reports them.
    blocked: Vec<reconcile::NotReconciled>,
    /// What people decided: items dismissed, decisions since the last report.
    desk: DeskNews,
    now: DateTime<Utc>,
}

impl View {
    /// Runs the matching core over what the store holds.
    fn decide(
        store: &Store,
        settings: &Settings,
        sync_complete: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        let data = store.matching_data()?;
        let reconciled = store.reconciled_pairs()?;
        let decisions = matching::decide(&MatchInput {
            payments: &data.payments,
            transactions: &data.transactions,
            offramps: &data.offramps,
            tied_payments: &data.tied_payments,
            tied_transactions: &data.tied_transactions,
            in_doubt_payments: &data.in_doubt_payments,
            reconciled: &reconciled,
            sync_complete,
            now,
            params: settings.matching,
        });
        Ok(Self {
            decisions,
            payments: data
                .payments
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect(),
            transactions: data
                .transactions
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            offramps: data
                .offramps
                .into_iter()
                .map(|o| (o.id.clone(), o))
                .collect(),
            blocked: Vec::new(),
            desk: DeskNews::default(),
            now,
        })
    }

    /// The confident pairs to call, with their records: all but those the provider
    /// refused while their payment stays as the refusal left it (rules §5), which are
    /// kept in `blocked` to be reported.
    fn pairs_to_call(
        &mut self,
        refused: &HashMap<(PaymentId, BankTxId), String>,
    ) -> anyhow::Result<Vec<(Payment, BankTransaction)>> {
        let mut pairs = Vec::with_capacity(self.decisions.reconcile.len());
        for c in std::mem::take(&mut self.decisions.reconcile) {
            if let Some(code) = refused.get(&(c.payment.clone(), c.transaction.clone())) {
                self.blocked.push(reconcile::NotReconciled::both(
                    c.payment,
                    c.transaction,
                    format!(
                        "refused earlier ({code}); not called again until the provider's records change"
                    ),
                ));
                continue;
            }
            match (
                self.payments.get(&c.payment),
                self.transactions.get(&c.transaction),
            ) {
                (Some(p), Some(t)) => pairs.push((p.clone(), t.clone())),
                _ => anyhow::bail!(
                    "internal: matched pair {} / {} has no record",
                    c.payment,
                    c.transaction
                ),
            }
        }
        Ok(pairs)
    }

    /// Folds what the reconcile step learnt into the findings (one reason per item),
    /// reading from the store the records the matching input does not hold (a payment
    /// gone at the provider is no longer pending).
    fn add_outcomes(
        &mut self,
        store: &Store,
        not_reconciled: &[reconcile::NotReconciled],
        vanished: &[PaymentId],
    ) -> anyhow::Result<()> {
        let missing: Vec<&PaymentId> = vanished
            .iter()
            .chain(not_reconciled.iter().map(|n| &n.payment))
            .filter(|id| !self.payments.contains_key(*id))
            .collect();
        for p in store.payments_by_ids(&missing)? {
            self.payments.insert(p.id.clone(), p);
        }
        let missing: Vec<&BankTxId> = not_reconciled
            .iter()
            .flat_map(|n| std::iter::once(&n.transaction).chain(&n.twins))
            .filter(|id| !self.transactions.contains_key(*id))
            .collect();
        for t in store.transactions_by_ids(&missing)? {
            self.transactions.insert(t.id.clone(), t);
        }
        let (payments, now) = (&self.payments, self.now);
        matching::fate::add_outcomes(&mut self.decisions, not_reconciled, vanished, |id| {
            payments
                .get(id)
                .map(|p| (now - p.created_at).num_days().max(0))
                .unwrap_or(0)
        });
        Ok(())
    }
}

/// Calls the confident pairs (or records them, in a dry run).
async fn reconcile_phase(
    settings: &Settings,
    client: &Arc<Client>,
    db: &SharedStore,
    run_id: i64,
    dry_run: bool,
    view: &mut View,
    stop: &Stop,
) -> anyhow::Result<reconcile::Outcome> {
    let refused: HashMap<(PaymentId, BankTxId), String> = db
        .lock()
        .refused_pairs()?
        .into_iter()
        .map(|(p, t, code)| ((p, t), code))
        .collect();
    let pairs = view.pairs_to_call(&refused)?;
    let executed = reconcile::execute_until(
        client,
        db,
        run_id,
        pairs,
        dry_run,
        settings.cryptopocket.concurrency,
        matching::fate::Uniqueness::Matched(settings.matching),
        || stop.requested().map(str::to_owned),
    )
    .await
    .context("reconcile step failed")?;
    Ok(executed)
}

/// Writes the report's folder: its CSVs; the e-mail that is `mailed` (or the preview
/// the demo asks for) and the workbook it attaches, or the workbook alone when
/// `[reports] workbook = "always"`; then the folder under its name.
fn write_report(
    settings: &Settings,
    opts: &RunOptions,
    report: &Report,
    target: &ReportFiles,
    mailed: bool,
) -> anyhow::Result<ReportFiles> {
    let rs = &settings.reports;
    let preview = crate::email::EmailSettings::local_preview();
    let eml_settings = match &settings.email {
        Some(email) if mailed => Some(email),
        None if opts.write_eml => Some(&preview),
        _ => None,
    };
    let workbook = eml_settings.is_some() || rs.workbook == WorkbookPolicy::Always;
    let staged = report
        .stage(target, rs, workbook)
        .with_context(|| format!("cannot write the report under {}", rs.dir.display()))?;
    if let Some(email) = eml_settings {
        let message = crate::email::build_message(report, &staged.files(), email)
            .context("cannot build the report e-mail")?;
        staged
            .put(EML_FILE, &message.formatted())
            .context("cannot write the report e-mail")?;
    }
    pause::at("report-staged");
    staged
        .publish()
        .with_context(|| format!("cannot write the report under {}", rs.dir.display()))
}

/// Settles a report a run recorded but did not see written (see `Store::record_report`):
/// a folder complete on disk is the report; without one, the record is voided and the
/// reconciles it listed wait for the next report.
fn settle_unwritten(store: &mut Store, run: i64, dir: &std::path::Path) -> anyhow::Result<()> {
    let files = ReportFiles::at(dir.to_path_buf());
    match files.settle_unwritten()? {
        Unwritten::Complete => {
            store.mark_report_written(run, Utc::now())?;
            tracing::warn!(
                report_run = run,
                dir = %dir.display(),
                "a run ended after writing its report and before recording it as written; the report stands"
            );
        }
        Unwritten::Absent => {
            let unlisted = store.void_report(run)?;
            tracing::warn!(
                report_run = run,
                dir = %dir.display(),
                reconciles = unlisted,
                "a run ended before its report was written; the next report lists what it would have"
            );
        }
    }
    Ok(())
}

/// Voids this run's report after its folder could not be written, removing its
/// staging folder.
fn void_unwritten(store: &mut Store, run: i64, target: &ReportFiles) -> anyhow::Result<()> {
    if let Err(e) = target.remove_staging() {
        tracing::warn!(error = %e, "cannot remove the report's staging folder");
    }
    store.void_report(run)?;
    Ok(())
}

/// The report e-mail as it goes on the wire, in the report's folder: the outbox sends it.
const EML_FILE: &str = "report.eml";

/// Writes the report to disk, queues it, and sends every queued report.
async fn deliver(
    settings: &Settings,
    opts: &RunOptions,
    db: &SharedStore,
    run_id: i64,
    mut report: Report,
    listed: &[i64],
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let rs = &settings.reports;
    let plan = mail::plan(settings, db, run_id, &report, summary, Utc::now())?;
    report.urgent = plan.lines.clone();
    report.urgent_items = plan.items.clone();
    report.urgent_only = plan.mail == Mail::Urgent;
    if plan.mail == Mail::Full {
        report.period = Some(period_of(&db.lock(), settings, run_id, Utc::now())?);
    }
    let report = &report;
    let state = match (&settings.email, rs.send, plan.mail) {
        (None, _, _) | (_, SendPolicy::Never, _) => EmailState::Disabled,
        (_, _, Mail::Nothing) => EmailState::NotNeeded,
        _ => EmailState::Pending,
    };
    let target = ReportFiles::of_run(&rs.dir, &report.run);
    let mail = plan.sent().filter(|_| state == EmailState::Pending);
    let subject = settings
        .email
        .as_ref()
        .map(|email| crate::email::subject(report, &email.subject_prefix));
    // Recorded before it is written (see `Store::record_report`): a kill from here on
    // leaves a record the next run settles, and each reconcile in exactly one report.
    db.lock().record_report(&NewReport {
        run: run_id,
        dir: &target.dir,
        state: state.as_str(),
        subject: subject.as_deref(),
        listed,
        mail,
        named: &plan.named,
        now: Utc::now(),
    })?;
    pause::at("report-recorded");
    let mailed = state == EmailState::Pending;
    let files = match write_report(settings, opts, report, &target, mailed) {
        Ok(files) => files,
        Err(e) => {
            // Not written: the next report lists what this one would have.
            void_unwritten(&mut db.lock(), run_id, &target)?;
            return Err(e);
        }
    };
    summary.report_dir = Some(files.dir.clone());
    pause::at("report-on-disk");
    db.lock().mark_report_written(run_id, Utc::now())?;
    summary.email = Some(state);

    let Some(email) = &settings.email else {
        return Ok(());
    };
    if opts.stop.requested().is_some() {
        // Asked to stop: the report waits in the outbox for the next run.
        return Ok(());
    }
    // The outbox: this run's report and any earlier one not delivered yet.
    let pending_reports = db.lock().pending_reports()?;
    for pending in pending_reports {
        let path = pending.dir.join(EML_FILE);
        match crate::email::send_eml(&path, email).await {
            Ok(()) => {
                db.lock().mark_report_sent(pending.run_id, Utc::now())?;
                if pending.run_id == run_id {
                    summary.email = Some(EmailState::Sent);
                }
                tracing::info!(report_run = pending.run_id, "report e-mailed");
            }
            Err(e) => {
                let msg = format!("{e}");
                db.lock().mark_report_failed(pending.run_id, &msg)?;
                tracing::warn!(report_run = pending.run_id, attempts = pending.attempts + 1, error = %msg,
                    "report not e-mailed; it stays in the outbox for the next run");
                // The server is down or refusing: the rest would fail the same way.
                break;
            }
        }
    }
    Ok(())
}

/// What a full mail tells about the period since the last digest delivered (before
/// any: since the first run, a week back at most): read from the store, put together
/// by [`Period::assemble`]. Run `run_id`'s findings are stored, so that what it no
/// longer reports is known.
fn period_of(
    store: &Store,
    settings: &Settings,
    run_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<Period> {
    let last = store
        .last_delivered_digest(run_id)
        .context("cannot read the last digest delivered")?;
    let since = match last {
        Some((run_id, at)) => Since::Digest { run_id, at },
        None => match store.first_run_since_if_older(now - MAX_FIRST_PERIOD)? {
            Some((run_id, at)) => Since::Bounded { run_id, at },
            None => Since::FirstRun,
        },
    };
    // Reconciles listed by the reports after `listed_after`; items reported by runs
    // from `reported_from` on; decisions after `decided_after`.
    let (listed_after, reported_from, decided_after) = match since {
        Since::Digest { run_id, at } => (run_id, run_id, Some(at)),
        Since::Bounded { run_id, at } => (run_id - 1, run_id, Some(at)),
        Since::FirstRun => (0, 0, None),
    };
    let decided = store.decisions_after(decided_after)?;
    Ok(Period::assemble(PeriodInput {
        since,
        tz: settings.schedule.timezone,
        reconciled: store.reconciles_listed_after(listed_after)?,
        decisions: &decided,
        closed: store.closed_items_after(reported_from, run_id)?,
        dismissals: &store.dismissals()?,
    }))
}

/// The process's peak resident set so far (Linux `VmHWM`), for the phase log lines.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_line_counts_the_pairs_deferred_and_the_calls_left_in_flight() {
        assert_eq!(
            stop_line("SIGTERM received", 412, 0),
            "412 confident pairs not called: the run was stopped by SIGTERM; the next run calls them"
        );
        assert_eq!(
            stop_line("SIGINT received", 1, 0),
            "1 confident pair not called: the run was stopped by SIGINT; the next run calls it"
        );
        assert_eq!(
            stop_line("SIGTERM received", 0, 0),
            "the run was stopped by SIGTERM; the next run goes on from here"
        );
        assert_eq!(
            stop_line("SIGTERM received", 3, 2),
            "3 confident pairs not called: the run was stopped by SIGTERM; the next run calls them; \
             2 calls in flight got no answer within 5 s and were left as intents, which the next run settles"
        );
    }
}
