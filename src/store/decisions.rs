//! What people decided (`decisions`, append-only: its triggers refuse a delete and any
//! rewrite but an approve's outcome, written once), and what the desk commands read to
//! decide: which item an id names, the latest run's findings, the reports' window.

use chrono::{DateTime, Utc};

use crate::desk::{Action, Decision, ItemRef};
use crate::domain::BankTxId;
use crate::store::{RunId, StoreError};

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    pub at: DateTime<Utc>,
    pub by: &'a str,
    pub action: Action,
    pub item: &'a ItemRef,
    pub other: Option<&'a BankTxId>,
    pub note: Option<&'a str>,
    pub source: &'a str,
    pub run_id: Option<RunId>,
    pub outcome: Option<&'a str>,
}

/// A row of `findings`, as the desk reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    pub run_id: RunId,
    /// `payment`, `transaction` or `offramp`.
    pub kind: String,
    pub item_id: String,
    pub reason: String,
    /// Ids of the other side (for a `no_concept` credit: the suggested payments).
    pub candidates: Vec<String>,
    pub difference: Option<String>,
    pub detail: Option<String>,
}

/// The decisions part of the store's interface (see `store/mod.rs`).
pub trait DecisionStore {
    /// Records decisions in one transaction; their ids, in order.
    fn insert_decisions(&mut self, ds: &[NewDecision<'_>]) -> Result<Vec<i64>, StoreError>;

    /// Writes an approve's outcome and the match it made (once: the table's trigger
    /// refuses a second write).
    fn set_decision_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        match_id: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Gives each approve left without an outcome (its process was killed mid-call, or
    /// its answer was lost and could not be settled then) the fate its match was
    /// settled with, now that `run`'s recovery has settled it; or, when it has no
    /// match, says that nothing was called (the intent is written before the call). One
    /// still in doubt keeps a NULL outcome for a later run. Called with the run lock
    /// held, so no approve is in progress. Returns how many were closed.
    fn close_interrupted_approves(&mut self, run: RunId) -> Result<usize, StoreError>;

    /// Every dismiss and reopen, oldest first (what [`crate::desk::dismissed`] folds).
    fn dismissals(&self) -> Result<Vec<Decision>, StoreError>;

    /// Every decision naming this id, as its item or as an approve's bank transaction.
    fn decisions_about(&self, id: &str) -> Result<Vec<Decision>, StoreError>;

    /// Decisions made after `at` (the start of the previous report's run), oldest first.
    fn decisions_after(&self, at: Option<DateTime<Utc>>) -> Result<Vec<Decision>, StoreError>;

    /// The decision an approve run was made for, if any.
    fn decision_of_run(&self, run: RunId) -> Result<Vec<Decision>, StoreError>;

    /// Every item this id names: a payment, a bank transaction, an off-ramp, an
    /// unreadable record (usually one; several only when ids collide across kinds).
    fn items_named(&self, id: &str) -> Result<Vec<ItemRef>, StoreError>;

    /// The ids of the unreadable records a run stored.
    fn bad_record_ids_of_run(&self, run: RunId) -> Result<Vec<String>, StoreError>;

    /// The latest completed run of the job (a person's approve runs are not reports).
    fn latest_completed_run(&self) -> Result<Option<RunId>, StoreError>;

    /// When the run of the report before `run`'s started: decisions after it are news
    /// to `run`'s report. `None` when `run`'s is the first report.
    fn previous_report_start(&self, run: RunId) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// What a run reported, item by item.
    fn findings_of_run(&self, run: RunId) -> Result<Vec<FindingRow>, StoreError>;

    /// Every finding about this item, run by run.
    fn findings_about(&self, kind: &str, id: &str) -> Result<Vec<FindingRow>, StoreError>;

    /// When the job first stored this item (`first_seen_at` of its table), if it has.
    fn first_seen(&self, item: &ItemRef) -> Result<Option<DateTime<Utc>>, StoreError>;
}
