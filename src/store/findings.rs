//! Findings and the report outbox: every item a run reported, with its reason, and
//! each run's report until it is delivered.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::matching::Decisions;
use crate::store::{AlertKey, MailSent, RunId, StoreError};

/// A report about to be written, as [`Store::record_report`] records it.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    pub run: RunId,
    /// The report's folder.
    pub dir: &'a Path,
    /// `pending` (to be mailed), `not_needed` or `disabled`.
    pub state: &'a str,
    pub subject: Option<&'a str>,
    /// The reconciles it lists (matches by id).
    pub listed: &'a [i64],
    /// Which mail it is, when it is mailed, and the urgent items that mail names.
    pub mail: Option<MailSent>,
    pub named: &'a [AlertKey],
    pub now: DateTime<Utc>,
}

/// A row of the report outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub run_id: RunId,
    pub dir: PathBuf,
    pub attempts: i64,
}

/// The findings part of the store's interface (see `store/mod.rs`).
pub trait FindingStore {
    /// Every item a run reported, with its reason. An item named twice (a payment the core
    /// reported whose earlier intent then failed) is stored once, as its last word.
    fn insert_findings(&mut self, run: RunId, d: &Decisions) -> Result<(), StoreError>;

    /// Records a run's report before its folder is written, durably and in one
    /// transaction: the report (with `written_at` NULL), the reconciles it lists
    /// (matches by id) as reported by it, and, for a report that is mailed, which mail
    /// it is and the urgent items it names.
    ///
    /// Why first: recorded after the folder, a process killed in between left a folder
    /// listing reconciles the store still had as unreported, and the next report listed
    /// them again. Recorded first, a kill leaves a record whose folder is complete or
    /// absent, and the next run settles it ([`Store::mark_report_written`] or
    /// [`Store::void_report`]): each reconcile is listed by exactly one report. Whether
    /// the folder is written is a column of its own, apart from `state`, so that a
    /// report adopted after a kill keeps the delivery decided when it was recorded.
    /// `synchronous = FULL`: the record survives a power cut too, as the folder does.
    fn record_report(&mut self, r: &NewReport<'_>) -> Result<(), StoreError>;

    /// The report of `run` is complete on disk. `false` when it was already so
    /// recorded (or is not recorded at all).
    fn mark_report_written(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Reports recorded but not known to be on disk: the runs that recorded them were
    /// killed (or failed) before their folders were complete, or are writing them now.
    fn unwritten_reports(&self) -> Result<Vec<(RunId, PathBuf)>, StoreError>;

    /// Undoes the record of a report whose folder was never written, in one
    /// transaction: the report is deleted, the reconciles it listed are unreported
    /// again (the next report lists them) and the urgent items only its mail named are
    /// no longer taken as mailed. Returns how many reconciles it had listed. A report
    /// marked written is left as it is.
    fn void_report(&mut self, run: RunId) -> Result<usize, StoreError>;

    /// Reports written but not yet delivered, oldest first.
    fn pending_reports(&self) -> Result<Vec<OutboxRow>, StoreError>;

    /// How many reports are written but not yet delivered, and when the oldest of them
    /// was written.
    fn undelivered_reports(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError>;

    /// Marks a report delivered; only a pending one (never "sent" twice).
    fn mark_report_sent(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    fn mark_report_failed(&mut self, run: RunId, error: &str) -> Result<(), StoreError>;

    /// For each item run `run` reported (`kind`, id): when the job first reported it,
    /// the start of the earliest run whose findings name it.
    fn first_seen_of_run(
        &self,
        run: RunId,
    ) -> Result<std::collections::HashMap<(String, String), DateTime<Utc>>, StoreError>;

    fn report_state(&self, run: RunId) -> Result<Option<(String, i64)>, StoreError>;
}
