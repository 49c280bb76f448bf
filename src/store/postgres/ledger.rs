//! The ledger part of the store on PostgreSQL (`store/ledger.rs`).

#![allow(unused_imports, unused_variables)]

use crate::domain::{BankTxId, Concept, Iban, Money, PaymentId, PaymentStatus};
use crate::matching::ReconciledPair;
use crate::store::*;
use crate::store::{RunId, StoreError};
use chrono::{DateTime, Utc};

use super::PgStore;

impl LedgerStore for PgStore {
    fn insert_intent(&mut self, m: &NewMatch<'_>) -> Result<i64, StoreError> {
        todo!("PostgreSQL insert_intent")
    }

    fn insert_intents(
        &mut self,
        ms: &[NewMatch<'_>],
    ) -> Result<Vec<Result<i64, StoreError>>, StoreError> {
        todo!("PostgreSQL insert_intents")
    }

    fn insert_dry_run(&mut self, m: &NewMatch<'_>) -> Result<(), StoreError> {
        todo!("PostgreSQL insert_dry_run")
    }

    fn insert_dry_runs(&mut self, ms: &[NewMatch<'_>]) -> Result<(), StoreError> {
        todo!("PostgreSQL insert_dry_runs")
    }

    fn settle_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL settle_reconciled")
    }

    fn mark_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL mark_reconciled")
    }

    fn record_ties(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL record_ties")
    }

    fn settle(&mut self, match_id: i64, s: &Settlement<'_>) -> Result<(), StoreError> {
        todo!("PostgreSQL settle")
    }

    fn refused_pairs(&self) -> Result<Vec<(PaymentId, BankTxId, String)>, StoreError> {
        todo!("PostgreSQL refused_pairs")
    }

    fn match_pair(&self, match_id: i64) -> Result<(PaymentId, BankTxId), StoreError> {
        todo!("PostgreSQL match_pair")
    }

    fn unsettled(&self) -> Result<Vec<MatchRow>, StoreError> {
        todo!("PostgreSQL unsettled")
    }

    fn matches_of_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        todo!("PostgreSQL matches_of_run")
    }

    fn unreported_reconciles(&self) -> Result<Vec<MatchRow>, StoreError> {
        todo!("PostgreSQL unreported_reconciles")
    }

    fn reconciled_in_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        todo!("PostgreSQL reconciled_in_run")
    }

    fn reconciled_pairs(&self) -> Result<Vec<ReconciledPair>, StoreError> {
        todo!("PostgreSQL reconciled_pairs")
    }

    fn all_matches(&self) -> Result<Vec<MatchRow>, StoreError> {
        todo!("PostgreSQL all_matches")
    }

    fn matches_naming(&self, id: &str) -> Result<Vec<MatchRow>, StoreError> {
        todo!("PostgreSQL matches_naming")
    }

    fn hold_of_payment(&self, id: &PaymentId) -> Result<Option<MatchRow>, StoreError> {
        todo!("PostgreSQL hold_of_payment")
    }

    fn hold_of_transaction(&self, id: &BankTxId) -> Result<Option<MatchRow>, StoreError> {
        todo!("PostgreSQL hold_of_transaction")
    }

    fn held_transactions(
        &self,
        ids: &[BankTxId],
    ) -> Result<std::collections::HashSet<BankTxId>, StoreError> {
        todo!("PostgreSQL held_transactions")
    }
}
