//! What `cp-recon status` shows, read in one go: the last runs, the open items of the
//! last complete run by reason, the reports not delivered yet, and what blocks automation.

use chrono::{DateTime, Utc};

use crate::store::{RunId, StoreError};

/// One run, as the status screen lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLine {
    pub id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `completed`, `incomplete` or `failed`.
    pub outcome: String,
    pub sync_mode: String,
    pub dry_run: bool,
    pub reconciled: u64,
    /// Items the run reported for a person.
    pub reported: u64,
    pub error: Option<String>,
}

/// The open items of one kind and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGroup {
    /// `payment`, `transaction` or `offramp`.
    pub kind: String,
    pub reason: String,
    pub count: u64,
    /// When the oldest of them was created (a payment), booked (a transaction) or
    /// finished (an off-ramp payout).
    pub oldest: Option<DateTime<Utc>>,
}

/// A report written to disk and not e-mailed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeliveredReport {
    pub run_id: RunId,
    pub dir: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Something that keeps runs from reconciling: a record that cannot be read, or a list
/// that was not read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// An endpoint (`/payments`) or a list name (`transactions:ES91…`).
    pub source: String,
    /// The record's id, when known.
    pub record: Option<String>,
    pub error: String,
}

/// Everything the status screen shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusData {
    /// Newest first.
    pub runs: Vec<RunLine>,
    /// The last run that read every list (what the open items come from).
    pub last_complete: Option<RunLine>,
    pub open: Vec<OpenGroup>,
    pub undelivered: Vec<UndeliveredReport>,
    /// From the newest finished run.
    pub blockers: Vec<Blocker>,
}

/// The status part of the store's interface (see `store/mod.rs`).
pub trait StatusStore {
    /// The status screen's data; `runs` is how many of the last runs to list.
    fn status(&self, runs: usize) -> Result<StatusData, StoreError>;
}
