//! The findings part of the store on PostgreSQL (`store/findings.rs`).

#![allow(unused_imports, unused_variables)]

use crate::matching::Decisions;
use crate::store::*;
use crate::store::{AlertKey, MailSent, RunId, StoreError};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

use super::PgStore;

impl FindingStore for PgStore {
    fn insert_findings(&mut self, run: RunId, d: &Decisions) -> Result<(), StoreError> {
        todo!("PostgreSQL insert_findings")
    }

    fn record_report(&mut self, r: &NewReport<'_>) -> Result<(), StoreError> {
        todo!("PostgreSQL record_report")
    }

    fn mark_report_written(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        todo!("PostgreSQL mark_report_written")
    }

    fn unwritten_reports(&self) -> Result<Vec<(RunId, PathBuf)>, StoreError> {
        todo!("PostgreSQL unwritten_reports")
    }

    fn void_report(&mut self, run: RunId) -> Result<usize, StoreError> {
        todo!("PostgreSQL void_report")
    }

    fn pending_reports(&self) -> Result<Vec<OutboxRow>, StoreError> {
        todo!("PostgreSQL pending_reports")
    }

    fn undelivered_reports(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        todo!("PostgreSQL undelivered_reports")
    }

    fn mark_report_sent(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        todo!("PostgreSQL mark_report_sent")
    }

    fn mark_report_failed(&mut self, run: RunId, error: &str) -> Result<(), StoreError> {
        todo!("PostgreSQL mark_report_failed")
    }

    fn first_seen_of_run(
        &self,
        run: RunId,
    ) -> Result<std::collections::HashMap<(String, String), DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL first_seen_of_run")
    }

    fn report_state(&self, run: RunId) -> Result<Option<(String, i64)>, StoreError> {
        todo!("PostgreSQL report_state")
    }
}
