//! The period part of the store on PostgreSQL (`store/period.rs`).

#![allow(unused_imports, unused_variables)]

use crate::report::period::{ClosedItem, PeriodReconcile};
use crate::store::*;
use crate::store::{RunId, StoreError};
use chrono::{DateTime, Utc};

use super::PgStore;

impl PeriodStore for PgStore {
    fn last_delivered_digest(
        &self,
        run: RunId,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        todo!("PostgreSQL last_delivered_digest")
    }

    fn first_run_since_if_older(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        todo!("PostgreSQL first_run_since_if_older")
    }

    fn reconciles_listed_after(&self, after: RunId) -> Result<Vec<PeriodReconcile>, StoreError> {
        todo!("PostgreSQL reconciles_listed_after")
    }

    fn closed_items_after(&self, after: RunId, run: RunId) -> Result<Vec<ClosedItem>, StoreError> {
        todo!("PostgreSQL closed_items_after")
    }
}
