//! What a run did: how it ended, what it read, what became of its e-mail, and the
//! summary line, JSON and metrics built from them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::matching::Decisions;
use crate::store::MatchRow;
use crate::sync::{self, SyncMode};

/// How a run ended; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every list was read and every decision carried out (whatever was left unmatched).
    Completed,
    /// A list could not be read completely: nothing was reconciled.
    Incomplete,
    /// The run could not do its work (API unreachable, credentials refused, database).
    Failed,
    /// Another run holds the lock: nothing was touched.
    Locked,
    /// SIGTERM or SIGINT came during the run: no request was started after it, the
    /// calls in flight were recorded (or, given no answer within the grace, left as
    /// intents for the next run), and the run ended there. Not a failure: the pairs it
    /// did not call are deferred to the next run. (The `runs` table records it as
    /// `failed`, its error saying it was stopped: its outcome column knows no other.)
    Stopped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Incomplete => "incomplete",
            Self::Failed => "failed",
            Self::Locked => "skipped_locked",
            Self::Stopped => "stopped",
        }
    }
    /// The process's exit code for a run that ended so (a run stopped by SIGINT rather
    /// than SIGTERM exits `EXIT_INTERRUPTED`).
    pub fn exit_code(self) -> u8 {
        use crate::exit::{EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_STOPPED};
        match self {
            Self::Completed => EXIT_OK,
            Self::Incomplete | Self::Failed => EXIT_FAILED,
            Self::Stopped => EXIT_STOPPED,
            Self::Locked => EXIT_LOCKED,
        }
    }
}

/// Records read per list in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordsRead {
    pub accounts: u64,
    pub bad_records: u64,
    pub payments: u64,
    /// Off-ramps (the list is `rampoffs`).
    pub offramps: u64,
    pub transactions: u64,
}

impl RecordsRead {
    pub(super) fn of(s: &sync::SyncReport) -> Self {
        Self {
            accounts: s.accounts,
            bad_records: s.bad_records,
            payments: s.payments,
            offramps: s.offramps,
            transactions: s.transactions,
        }
    }

    /// `(name, count)` per list, by name, as the summary line, `summary_json` and the
    /// metrics name them.
    pub fn by_name(&self) -> [(&'static str, u64); 5] {
        [
            ("accounts", self.accounts),
            ("bad_records", self.bad_records),
            ("payments", self.payments),
            ("rampoffs", self.offramps),
            ("transactions", self.transactions),
        ]
    }
}

/// What the run did with what it decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Pairs the provider tied in this run (recovered intents included).
    pub reconciled: u64,
    /// Confident pairs a dry run would have called.
    pub dry_run: u64,
    /// Items reported for a person.
    pub reported: u64,
    /// Debits that pay out a finished off-ramp.
    pub paid_out: u64,
}

impl Outcomes {
    /// `(name, count)` as `summary_json` and the metrics name them; `dry_run` only in a
    /// dry run that had something to call.
    pub fn by_name(&self) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("paid_out", self.paid_out),
            ("reconciled", self.reconciled),
            ("reported", self.reported),
        ];
        if self.dry_run > 0 {
            v.insert(0, ("dry_run", self.dry_run));
        }
        v
    }
}

/// What became of a run's report e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailState {
    /// Delivered.
    Sent,
    /// Queued; the next run sends it again.
    Pending,
    /// Nothing to report under `send = "when_unmatched"`.
    NotNeeded,
    /// No `[email]`, or `send = "never"`.
    Disabled,
}

impl EmailState {
    /// The name in the `reports` table and the summary line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Pending => "pending",
            Self::NotNeeded => "not_needed",
            Self::Disabled => "disabled",
        }
    }
}

/// What a run did, for the summary line, metrics and tests.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: Option<i64>,
    /// The run's random token, which names its report folder with its id and start
    /// (empty until the run is recorded).
    pub token: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub sync_mode: Option<SyncMode>,
    pub sync_complete: bool,
    pub dry_run: bool,
    /// `None` until the sync has run.
    pub records_read: Option<RecordsRead>,
    /// Whose reads the decisions and reasons come from (`Current` until the sync says
    /// otherwise).
    pub freshness: crate::report::Freshness,
    pub outcomes: Outcomes,
    pub reasons: BTreeMap<String, u64>,
    pub reconciled_totals: BTreeMap<String, Decimal>,
    pub reconcile_calls: u64,
    /// Confident pairs a stop kept from being called: the next run calls them.
    pub deferred: u64,
    /// Calls in flight a stop abandoned: their intents wait for the next run.
    pub abandoned: u64,
    pub api_requests: u64,
    pub api_errors: u64,
    pub report_dir: Option<PathBuf>,
    pub email: Option<EmailState>,
    pub error: Option<String>,
}

impl RunSummary {
    pub(super) fn new(started_at: DateTime<Utc>, dry_run: bool) -> Self {
        Self {
            run_id: None,
            token: String::new(),
            status: RunStatus::Failed,
            started_at,
            finished_at: started_at,
            sync_mode: None,
            sync_complete: false,
            dry_run,
            records_read: None,
            freshness: crate::report::Freshness::Current,
            outcomes: Outcomes::default(),
            reasons: BTreeMap::new(),
            reconciled_totals: BTreeMap::new(),
            reconcile_calls: 0,
            deferred: 0,
            abandoned: 0,
            api_requests: 0,
            api_errors: 0,
            report_dir: None,
            email: None,
            error: None,
        }
    }

    /// One line for the log and the terminal.
    pub fn line(&self) -> String {
        let run = self
            .run_id
            .map(|r| format!("run {r}"))
            .unwrap_or_else(|| "run".into());
        let mut s = format!(
            "{run} {}{} in {:.1}s: ",
            self.status.as_str(),
            if self.dry_run { " (dry run)" } else { "" },
            (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0
        );
        let reconciled = self.outcomes.reconciled;
        let totals: Vec<String> = self
            .reconciled_totals
            .iter()
            .map(|(c, v)| format!("{} {c}", crate::domain::format_amount(*v)))
            .collect();
        s.push_str(&format!("{reconciled} reconciled"));
        if !totals.is_empty() {
            s.push_str(&format!(" ({})", totals.join(", ")));
        }
        if let n @ 1.. = self.outcomes.dry_run {
            s.push_str(&format!(", {n} would be reconciled"));
        }
        if let n @ 1.. = self.deferred {
            s.push_str(&format!(", {n} left for the next run"));
        }
        let attention: u64 = self.reasons.values().sum();
        s.push_str(&format!(", {attention} need attention"));
        if !self.reasons.is_empty() {
            let r: Vec<String> = self
                .reasons
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!(" [{}]", r.join(" ")));
        }
        if let Some(caveat) = self.freshness.caveat() {
            s.push_str(&format!(" ({caveat})"));
        }
        if let Some(records) = &self.records_read {
            let read: Vec<String> = records
                .by_name()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("; read {}", read.join(" ")));
        }
        if let Some(d) = &self.report_dir {
            s.push_str(&format!("; report {}", d.display()));
        }
        if let Some(e) = self.email {
            s.push_str(&format!("; e-mail {}", e.as_str()));
        }
        s
    }
}

/// Counts the findings of the run's decisions, and the pairs a dry run would call.
pub(super) fn tally(summary: &mut RunSummary, d: &Decisions, dry: usize) {
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for r in d
        .payments
        .iter()
        .map(|f| f.reason)
        .chain(d.transactions.iter().map(|f| f.reason))
        .chain(d.payouts.iter().map(|f| f.reason))
    {
        *reasons.entry(r.as_str().to_owned()).or_default() += 1;
    }
    summary.outcomes.dry_run = dry as u64;
    summary.outcomes.reported = reasons.values().sum();
    summary.outcomes.paid_out = d.paid_out.len() as u64;
    summary.reasons = reasons;
}

impl RunSummary {
    /// The pairs the run tied at the provider, as the ledger has them: counted and
    /// totalled per currency.
    pub(super) fn count_reconciled(&mut self, rows: &[MatchRow]) {
        let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
        for m in rows {
            *totals
                .entry(m.amount.currency().as_str().to_owned())
                .or_default() += m.amount.amount();
        }
        self.outcomes.reconciled = rows.len() as u64;
        self.reconciled_totals = totals;
    }
}

/// Records read per list by name; empty before the sync ran.
fn records_read(s: &RunSummary) -> BTreeMap<String, u64> {
    s.records_read
        .iter()
        .flat_map(|r| r.by_name())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn by_name(counts: &[(&'static str, u64)]) -> BTreeMap<String, u64> {
    counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

pub(super) fn summary_json(s: &RunSummary) -> String {
    let totals: BTreeMap<&String, String> = s
        .reconciled_totals
        .iter()
        .map(|(c, v)| (c, crate::domain::format_amount(*v)))
        .collect();
    serde_json::json!({
        "decisions": by_name(&s.outcomes.by_name()),
        "reasons": s.reasons,
        "reconciled_totals": totals,
        "records_read": records_read(s),
    })
    .to_string()
}

/// The run's metrics; `undelivered` is the outbox as the run left it (how many reports
/// are not yet e-mailed, and when the oldest was written).
pub(super) fn metrics_of(
    s: &RunSummary,
    undelivered: (u64, Option<DateTime<Utc>>),
) -> crate::metrics::RunMetrics {
    crate::metrics::RunMetrics {
        run_id: s.run_id.unwrap_or(0),
        started_at: s.started_at,
        finished_at: s.finished_at,
        success: s.status == RunStatus::Completed,
        outcome: s.status.as_str().to_owned(),
        decisions: by_name(&s.outcomes.by_name()),
        reasons: s.reasons.clone(),
        reconcile_calls: s.reconcile_calls,
        api_errors: s.api_errors,
        records_read: records_read(s),
        unmatched_as_of: match s.freshness {
            crate::report::Freshness::Current => s.run_id.map(|r| (r, s.started_at)),
            crate::report::Freshness::AsOf { run_id, started_at } => Some((run_id, started_at)),
            crate::report::Freshness::NeverComplete => None,
        },
        undelivered_reports: undelivered.0,
        oldest_undelivered: undelivered.1,
    }
}
