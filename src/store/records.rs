//! Provider records: payments, off-ramps, bank accounts and bank transactions as the
//! sync writes them, the records that did not parse, and the reads matching and
//! reconciling make of them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::domain::{
    BankAccount, BankTransaction, BankTxId, Offramp, OfframpId, Payment, PaymentId,
};
use crate::store::{BadRecord, Record};
use crate::store::{RunId, StoreError};

/// A provider list's table as the sync writes it: its key, then the record's columns
/// in the order both backends bind them (after the key, before the time and the run).
pub(crate) struct Listed {
    pub(crate) table: &'static str,
    pub(crate) key: &'static str,
    pub(crate) columns: &'static [&'static str],
}

pub(crate) const PAYMENTS: Listed = Listed {
    table: "payments",
    key: "id",
    columns: &[
        "external_id",
        "user_id",
        "status",
        "amount",
        "currency",
        "payment_type",
        "concept",
        "created_at",
        "updated_at",
        "raw_json",
    ],
};

pub(crate) const OFFRAMPS: Listed = Listed {
    table: "offramps",
    key: "id",
    columns: &[
        "user_id",
        "status",
        "amount",
        "currency",
        "iban",
        "created_at",
        "updated_at",
        "raw_json",
    ],
};

pub(crate) const BANK_ACCOUNTS: Listed = Listed {
    table: "bank_accounts",
    key: "iban",
    columns: &["bic", "holder_name", "currency", "balance", "raw_json"],
};

pub(crate) const BANK_TRANSACTIONS: Listed = Listed {
    table: "bank_transactions",
    key: "id",
    columns: &[
        "iban",
        "direction",
        "amount",
        "currency",
        "concept",
        "counterparty_name",
        "counterparty_iban",
        "booked_at",
        "value_date",
        "reconciled_payment_id",
        "raw_json",
    ],
};

/// What matching needs from the store.
#[derive(Debug, Default)]
pub struct MatchingData {
    pub payments: Vec<Payment>,
    pub transactions: Vec<BankTransaction>,
    pub offramps: Vec<Offramp>,
    /// Pending payments this job has tied (a `reconciled` match).
    pub tied_payments: HashSet<PaymentId>,
    /// Pending payments whose reconcile call is in doubt (an `intent` or `unknown`
    /// match): they compete, but are never reconciled again until settled.
    pub in_doubt_payments: HashSet<PaymentId>,
    pub tied_transactions: HashSet<BankTxId>,
}

/// The records part of the store's interface (see `store/mod.rs`).
pub trait RecordStore {
    /// Upserts a batch in one transaction.
    fn upsert_payments(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Payment>],
    ) -> Result<(), StoreError>;

    /// Updates one payment's status after a re-read (`GET /payment/{id}`).
    fn upsert_payment(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        p: &Record<Payment>,
    ) -> Result<(), StoreError> {
        self.upsert_payments(run, now, std::slice::from_ref(p))
    }

    fn upsert_offramps(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Offramp>],
    ) -> Result<(), StoreError>;

    fn upsert_accounts(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankAccount>],
    ) -> Result<(), StoreError>;

    fn upsert_transactions(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankTransaction>],
    ) -> Result<(), StoreError>;

    fn insert_bad_records(&mut self, run: RunId, bad: &[BadRecord]) -> Result<(), StoreError>;

    /// Ids of payments stored as `pending_bank` (incremental runs re-read those that are
    /// no longer in the provider's pending list).
    fn pending_payment_ids(&self) -> Result<Vec<PaymentId>, StoreError>;

    /// Everything the matching core looks at: open candidates only (payments stored as
    /// `pending_bank`, credits not reconciled at the provider, every debit, finished
    /// off-ramps) and what this job has already tied.
    fn matching_data(&self) -> Result<MatchingData, StoreError>;

    fn payments_by_ids(&self, ids: &[&PaymentId]) -> Result<Vec<Payment>, StoreError>;

    fn transactions_by_ids(&self, ids: &[&BankTxId]) -> Result<Vec<BankTransaction>, StoreError>;

    fn offramps_by_ids(&self, ids: &[&OfframpId]) -> Result<Vec<Offramp>, StoreError>;

    /// Marks stored payments the provider no longer knows as `vanished`, by this run.
    fn mark_vanished(&mut self, run: RunId, ids: &[PaymentId]) -> Result<(), StoreError>;
}
