//! The exactly-once ledger, the `matches` table: an intent committed before each
//! reconcile call, then what became of it. Its partial UNIQUE indexes make SQLite refuse
//! a second tie of a payment or a bank transaction.

use chrono::{DateTime, Utc};

use crate::domain::{BankTxId, Concept, Iban, Money, PaymentId, PaymentStatus};
use crate::matching::ReconciledPair;
use crate::store::{RunId, StoreError};

/// The states of a `matches` row (see the migration for their meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchState {
    Intent,
    Reconciled,
    Unknown,
    Failed,
    MovedOn,
    Skipped,
    DryRun,
    /// A lost answer found by a later run with the payment still pending and the credit
    /// open: the call had no effect; the pair is released.
    NotApplied,
}

impl MatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Reconciled => "reconciled",
            Self::Unknown => "unknown",
            Self::Failed => "failed",
            Self::MovedOn => "moved_on",
            Self::Skipped => "skipped",
            Self::DryRun => "dry_run",
            Self::NotApplied => "not_applied",
        }
    }
    /// Whether a match in this state holds its payment and transaction (it is, or may
    /// be, applied): the `holds` column, which the exactly-once indexes count.
    pub(in crate::store) fn holds(self) -> Option<i64> {
        matches!(self, Self::Intent | Self::Reconciled | Self::Unknown).then_some(1)
    }

    pub(in crate::store) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "intent" => Self::Intent,
            "reconciled" => Self::Reconciled,
            "unknown" => Self::Unknown,
            "failed" => Self::Failed,
            "moved_on" => Self::MovedOn,
            "skipped" => Self::Skipped,
            "dry_run" => Self::DryRun,
            "not_applied" => Self::NotApplied,
            _ => return None,
        })
    }
}

/// A row of `matches`.
#[derive(Debug, Clone)]
pub struct MatchRow {
    pub id: i64,
    pub run_id: RunId,
    pub payment_id: PaymentId,
    pub transaction_id: BankTxId,
    pub iban: Iban,
    pub amount: Money,
    pub concept: Option<Concept>,
    pub state: MatchState,
    pub provider_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    /// When the database wrote the row, by its own clock (`None` for rows written
    /// before schema version 12).
    pub written_at: Option<DateTime<Utc>>,
}

/// What is about to be reconciled.
#[derive(Debug, Clone)]
pub struct NewMatch<'a> {
    pub run_id: RunId,
    pub payment: &'a PaymentId,
    pub transaction: &'a BankTxId,
    pub iban: &'a Iban,
    pub amount: &'a Money,
    pub concept: Option<&'a Concept>,
    pub now: DateTime<Utc>,
}

/// The outcome of a match, as [`Store::settle`] records it.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    pub state: MatchState,
    pub provider_code: Option<&'a str>,
    pub provider_answer: Option<&'a str>,
    /// The payment status read with the outcome.
    pub payment_status: Option<&'a str>,
    pub run: RunId,
    pub now: DateTime<Utc>,
}

/// The ledger part of the store's interface (see `store/mod.rs`).
pub trait LedgerStore {
    /// Commits the intent before the call. `AlreadyTied` when SQLite's UNIQUE indexes
    /// refuse it.
    fn insert_intent(&mut self, m: &NewMatch<'_>) -> Result<i64, StoreError> {
        self.insert_intents(std::slice::from_ref(m))?
            .pop()
            .unwrap_or(Err(StoreError::NoRowInserted))
    }

    /// Commits a batch of intents in one transaction, durably (`synchronous = FULL`: the
    /// intents survive a power cut, not only a killed process). Each intent succeeds or is
    /// refused (`AlreadyTied`) on its own.
    fn insert_intents(
        &mut self,
        ms: &[NewMatch<'_>],
    ) -> Result<Vec<Result<i64, StoreError>>, StoreError>;

    /// A dry-run decision: recorded, never tied.
    fn insert_dry_run(&mut self, m: &NewMatch<'_>) -> Result<(), StoreError> {
        self.insert_dry_runs(std::slice::from_ref(m))
    }

    /// Dry-run decisions, in one transaction.
    fn insert_dry_runs(&mut self, ms: &[NewMatch<'_>]) -> Result<(), StoreError>;

    /// Records confirmed reconciles, in one transaction: each match becomes `reconciled`
    /// (with `answer`: the provider's `ok`, or how the outcome was learnt), and the
    /// payment's new status and the transaction's tie are written, so the store tells the
    /// truth before the next sync. The one way a tie is recorded as done.
    fn settle_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The ledger half of [`Store::settle_reconciled`] for a batch of calls: the matches
    /// become `reconciled` now; the payments' statuses and the transactions' ties follow
    /// in one [`Store::record_ties`] at the end of the phase. A stale status in between
    /// is harmless: matching excludes every payment and transaction the ledger ties, and
    /// the next sync re-reads any stored `pending_bank` payment the provider no longer
    /// lists as pending.
    fn mark_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Writes the new payment statuses and transaction ties of confirmed reconciles, in
    /// one transaction and in key order, so each database page is written once.
    fn record_ties(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
    ) -> Result<(), StoreError>;

    /// Records what became of a match.
    fn settle(&mut self, match_id: i64, s: &Settlement<'_>) -> Result<(), StoreError>;

    /// Pairs the provider refused whose payment is, as stored, in the status the refusal
    /// left it in: they are not called again until the provider's state changes (rules
    /// §5). With the provider's code.
    fn refused_pairs(&self) -> Result<Vec<(PaymentId, BankTxId, String)>, StoreError>;

    /// The payment and transaction of a match.
    fn match_pair(&self, match_id: i64) -> Result<(PaymentId, BankTxId), StoreError>;

    /// Intents without an outcome (the process died mid-call) and lost answers.
    fn unsettled(&self) -> Result<Vec<MatchRow>, StoreError>;

    fn matches_of_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError>;

    /// Reconciled pairs no written report has listed yet, whichever run tied them (a run
    /// that was killed or could not write its report leaves them here), oldest first.
    fn unreported_reconciles(&self) -> Result<Vec<MatchRow>, StoreError>;

    /// The pairs this run tied at the provider (its own calls and the earlier intents it
    /// settled as applied): what the run's summary counts, even when the run failed.
    fn reconciled_in_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError>;

    /// Every pair this job reconciled, for the return check of the matching core
    /// (`returned_after_reconcile`).
    fn reconciled_pairs(&self) -> Result<Vec<ReconciledPair>, StoreError>;

    fn all_matches(&self) -> Result<Vec<MatchRow>, StoreError>;

    /// Every match naming this id as its payment or its bank transaction, oldest first.
    fn matches_naming(&self, id: &str) -> Result<Vec<MatchRow>, StoreError>;

    /// The match holding this payment (state intent, unknown or reconciled), if any.
    fn hold_of_payment(&self, id: &PaymentId) -> Result<Option<MatchRow>, StoreError>;

    /// The match holding this bank transaction, if any.
    fn hold_of_transaction(&self, id: &BankTxId) -> Result<Option<MatchRow>, StoreError>;

    /// Which of these bank transactions a match holds (state intent, unknown or
    /// reconciled): tied to a payment by this job, so not open (rules §1).
    fn held_transactions(
        &self,
        ids: &[BankTxId],
    ) -> Result<std::collections::HashSet<BankTxId>, StoreError>;
}
