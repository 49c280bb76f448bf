//! The runs part of the store on PostgreSQL (`store/runs.rs`).

#![allow(unused_imports, unused_variables)]

use crate::store::StoreError;
use crate::store::*;
use chrono::{DateTime, Utc};

use super::PgStore;

impl RunStore for PgStore {
    fn begin_run(
        &mut self,
        started_at: DateTime<Utc>,
        dry_run: bool,
        sync_mode: &str,
    ) -> Result<RunId, StoreError> {
        todo!("PostgreSQL begin_run")
    }

    fn set_run_token(&mut self, run: RunId, token: &str) -> Result<(), StoreError> {
        todo!("PostgreSQL set_run_token")
    }

    fn finish_run(
        &mut self,
        run: RunId,
        finished_at: DateTime<Utc>,
        end: &RunEnd,
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL finish_run")
    }

    fn run(&self, run: RunId) -> Result<Option<RunRow>, StoreError> {
        todo!("PostgreSQL run")
    }

    fn runs_since_full(&self) -> Result<u64, StoreError> {
        todo!("PostgreSQL runs_since_full")
    }

    fn close_abandoned_runs(&mut self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        todo!("PostgreSQL close_abandoned_runs")
    }

    fn record_list(&mut self, run: RunId, l: &ListRead) -> Result<(), StoreError> {
        todo!("PostgreSQL record_list")
    }

    fn watermark(&self, list: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL watermark")
    }

    fn watermarks(&self) -> Result<std::collections::HashMap<String, DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL watermarks")
    }

    fn count_before(&self, list: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        todo!("PostgreSQL count_before")
    }

    fn oldest_pending_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL oldest_pending_since")
    }

    fn last_complete_sync(&self, run: RunId) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        todo!("PostgreSQL last_complete_sync")
    }

    fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL last_success")
    }

    fn set_watermark(
        &mut self,
        list: &str,
        high_water: DateTime<Utc>,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL set_watermark")
    }
}
