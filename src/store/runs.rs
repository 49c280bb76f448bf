//! Runs and watermarks: each run's row in `runs` and how it read each list
//! (`run_lists`), and the high-water mark up to which a list was read completely
//! (`watermarks`), where the next incremental run starts.

use chrono::{DateTime, Utc};

use crate::store::StoreError;

pub type RunId = i64;

/// How a list was read in a run (`run_lists`).
#[derive(Debug, Clone)]
pub struct ListRead {
    pub list: String,
    pub complete: bool,
    pub pages: u32,
    pub items: u64,
    pub duplicates: u64,
    pub read_from: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// The end of a run (`runs`).
#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    pub outcome: String,
    pub sync_complete: bool,
    pub payments_read: u64,
    pub offramps_read: u64,
    pub accounts_read: u64,
    pub transactions_read: u64,
    pub bad_records: u64,
    pub reconcile_calls: u64,
    pub reconciled: u64,
    pub api_requests: u64,
    pub api_errors: u64,
    pub summary_json: Option<String>,
    pub error: Option<String>,
}

/// A row of `runs`, as tests and the report read it back.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: RunId,
    pub outcome: String,
    pub sync_complete: bool,
    pub sync_mode: String,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// The runs part of the store's interface (see `store/mod.rs`).
pub trait RunStore {
    fn begin_run(
        &mut self,
        started_at: DateTime<Utc>,
        dry_run: bool,
        sync_mode: &str,
    ) -> Result<RunId, StoreError>;

    /// Records the run's random token, which names its report folder with its id and
    /// start (`report::folder_name`).
    fn set_run_token(&mut self, run: RunId, token: &str) -> Result<(), StoreError>;

    fn finish_run(
        &mut self,
        run: RunId,
        finished_at: DateTime<Utc>,
        end: &RunEnd,
    ) -> Result<(), StoreError>;

    fn run(&self, run: RunId) -> Result<Option<RunRow>, StoreError>;

    /// Runs recorded so far (to decide when the next full resync is due).
    fn runs_since_full(&self) -> Result<u64, StoreError>;

    /// Runs left `running` by a process that died: mark them failed so they do not look
    /// alive. Called with the run lock held, so no live run is touched.
    fn close_abandoned_runs(&mut self, now: DateTime<Utc>) -> Result<usize, StoreError>;

    fn record_list(&mut self, run: RunId, l: &ListRead) -> Result<(), StoreError>;

    fn watermark(&self, list: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Every list's watermark, in one query (incremental runs start from them).
    fn watermarks(&self) -> Result<std::collections::HashMap<String, DateTime<Utc>>, StoreError>;

    /// How many items of a list (named as in `watermarks`) are stored with a timestamp
    /// before `before`: what the provider's `total` of `[.., before)` should be, unless
    /// something was inserted there since (a back-dated booking). Payments recorded
    /// `vanished` are not counted: the provider no longer lists them.
    fn count_before(&self, list: &str, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// When the oldest payment stored as `pending_bank` and created at or after `since`
    /// was created: how far back a credit that competes for an open payment can be
    /// booked (matching rules §3.3).
    fn oldest_pending_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// When the last completed run finished (for the metrics' staleness alert).
    /// The last run before `run` that read every list in full, and when it started:
    /// what a report of an incomplete run is as of.
    fn last_complete_sync(&self, run: RunId) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError>;

    fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Only called after a complete read of `list`.
    fn set_watermark(
        &mut self,
        list: &str,
        high_water: DateTime<Utc>,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}
