//! The records part of the store on PostgreSQL (`store/records.rs`).

#![allow(unused_imports, unused_variables)]

use crate::domain::{
    BankAccount, BankTransaction, BankTxId, Offramp, OfframpId, Payment, PaymentId,
};
use crate::store::*;
use crate::store::{BadRecord, Record};
use crate::store::{RunId, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

use super::PgStore;

impl RecordStore for PgStore {
    fn upsert_payments(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Payment>],
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL upsert_payments")
    }

    fn upsert_payment(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        p: &Record<Payment>,
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL upsert_payment")
    }

    fn upsert_offramps(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Offramp>],
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL upsert_offramps")
    }

    fn upsert_accounts(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankAccount>],
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL upsert_accounts")
    }

    fn upsert_transactions(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankTransaction>],
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL upsert_transactions")
    }

    fn insert_bad_records(&mut self, run: RunId, bad: &[BadRecord]) -> Result<(), StoreError> {
        todo!("PostgreSQL insert_bad_records")
    }

    fn pending_payment_ids(&self) -> Result<Vec<PaymentId>, StoreError> {
        todo!("PostgreSQL pending_payment_ids")
    }

    fn matching_data(&self) -> Result<MatchingData, StoreError> {
        todo!("PostgreSQL matching_data")
    }

    fn payments_by_ids(&self, ids: &[&PaymentId]) -> Result<Vec<Payment>, StoreError> {
        todo!("PostgreSQL payments_by_ids")
    }

    fn transactions_by_ids(&self, ids: &[&BankTxId]) -> Result<Vec<BankTransaction>, StoreError> {
        todo!("PostgreSQL transactions_by_ids")
    }

    fn offramps_by_ids(&self, ids: &[&OfframpId]) -> Result<Vec<Offramp>, StoreError> {
        todo!("PostgreSQL offramps_by_ids")
    }

    fn mark_vanished(&mut self, run: RunId, ids: &[PaymentId]) -> Result<(), StoreError> {
        todo!("PostgreSQL mark_vanished")
    }
}
