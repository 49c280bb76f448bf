//! The decisions part of the store on PostgreSQL (`store/decisions.rs`).

#![allow(unused_imports, unused_variables)]

use crate::desk::{Action, Decision, ItemRef};
use crate::domain::BankTxId;
use crate::store::*;
use crate::store::{RunId, StoreError};
use chrono::{DateTime, Utc};

use super::PgStore;

impl DecisionStore for PgStore {
    fn insert_decisions(&mut self, ds: &[NewDecision<'_>]) -> Result<Vec<i64>, StoreError> {
        todo!("PostgreSQL insert_decisions")
    }

    fn set_decision_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        match_id: Option<i64>,
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL set_decision_outcome")
    }

    fn close_interrupted_approves(&mut self, run: RunId) -> Result<usize, StoreError> {
        todo!("PostgreSQL close_interrupted_approves")
    }

    fn dismissals(&self) -> Result<Vec<Decision>, StoreError> {
        todo!("PostgreSQL dismissals")
    }

    fn decisions_about(&self, id: &str) -> Result<Vec<Decision>, StoreError> {
        todo!("PostgreSQL decisions_about")
    }

    fn decisions_after(&self, at: Option<DateTime<Utc>>) -> Result<Vec<Decision>, StoreError> {
        todo!("PostgreSQL decisions_after")
    }

    fn decision_of_run(&self, run: RunId) -> Result<Vec<Decision>, StoreError> {
        todo!("PostgreSQL decision_of_run")
    }

    fn items_named(&self, id: &str) -> Result<Vec<ItemRef>, StoreError> {
        todo!("PostgreSQL items_named")
    }

    fn bad_record_ids_of_run(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        todo!("PostgreSQL bad_record_ids_of_run")
    }

    fn latest_completed_run(&self) -> Result<Option<RunId>, StoreError> {
        todo!("PostgreSQL latest_completed_run")
    }

    fn previous_report_start(&self, run: RunId) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL previous_report_start")
    }

    fn findings_of_run(&self, run: RunId) -> Result<Vec<FindingRow>, StoreError> {
        todo!("PostgreSQL findings_of_run")
    }

    fn findings_about(&self, kind: &str, id: &str) -> Result<Vec<FindingRow>, StoreError> {
        todo!("PostgreSQL findings_about")
    }

    fn first_seen(&self, item: &ItemRef) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL first_seen")
    }
}
