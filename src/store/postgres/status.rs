//! The status part of the store on PostgreSQL (`store/status.rs`).

#![allow(unused_imports, unused_variables)]

use crate::store::*;
use crate::store::{RunId, StoreError};
use chrono::{DateTime, Utc};

use super::PgStore;

impl StatusStore for PgStore {
    fn status(&self, runs: usize) -> Result<StatusData, StoreError> {
        todo!("PostgreSQL status")
    }
}
