//! What a digest reads about its period: the last digest delivered, the reconciles
//! listed since, and the items reported since that are no longer open.

use chrono::{DateTime, Utc};

use crate::report::period::{ClosedItem, PeriodReconcile};
use crate::store::{RunId, StoreError};

/// The period part of the store's interface (see `store/mod.rs`).
pub trait PeriodStore {
    /// The last full report delivered (sent over SMTP, not merely queued) of a run
    /// before `run`: that run and when it started.
    fn last_delivered_digest(
        &self,
        run: RunId,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError>;

    /// The first run of the job (not a person's approve) that started at or after
    /// `at`, and when it started; `None` when the first run of the database is not
    /// older than `at` (or there is none).
    fn first_run_since_if_older(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError>;

    /// The reconciles listed by the reports of runs after `after`, or by no report
    /// yet (the current one lists them), oldest first, with who approved each when a
    /// person did.
    fn reconciles_listed_after(&self, after: RunId) -> Result<Vec<PeriodReconcile>, StoreError>;

    /// The items run `after` (the last digest's) and the runs after it up to `run`
    /// reported that `run` does not report (open when the digest was read, or opened
    /// since) (its findings must be stored): each with its last reason, its amount,
    /// and the reconcile that tied it, if any. A reconcile is found through the ledger's
    /// one-holder-per-side indexes (a reconciled match holds both sides), and who
    /// approved it through the decisions' index by item: a day of runs at 10,000 open
    /// items reads in well under a second.
    fn closed_items_after(&self, after: RunId, run: RunId) -> Result<Vec<ClosedItem>, StoreError>;
}
