//! The matching core: which open payment goes with which open credit, and a reason for
//! everything else. No I/O and no clock: records come in already parsed, `now` is an
//! argument, and the answer is a value (`Decisions`).
//!
//! The specification is `reconciliation-rules.md` §2–§4. Conditions 5 (complete sync)
//! and 6 (re-read right before the call) are partly outside: the caller says whether the
//! sync was complete, and the reconcile step re-reads each payment before its call.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::domain::{BankTransaction, BankTxId, Offramp, OfframpId, Payment, PaymentId};

/// Why an item needs a person. Exactly one per unreconciled open payment, open credit,
/// unexplained debit and unpaid finished off-ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The concept matches uniquely; the amount differs.
    AmountMismatch,
    /// The concept matches uniquely; the currency differs.
    CurrencyMismatch,
    /// More than one candidate on either side.
    Ambiguous,
    /// Concept and amount match, but the credit was booked before the payment was created
    /// (beyond the tolerance).
    TooEarly,
    /// Concept, amount and dates match, but the payment is older than the look-back window.
    OutsideLookback,
    /// A credit whose text contains no open payment's concept.
    NoConcept,
    /// An open payment with no candidate credit yet.
    AwaitingTransfer,
    /// The reconcile call answered an error (set by the reconcile step, not the core).
    ReconcileFailed,
    /// A confident match that was not reconciled because the sync was incomplete.
    SyncIncomplete,
    /// A debit that pays out no finished off-ramp.
    UnexplainedDebit,
    /// A finished off-ramp with no debit once its grace period is over.
    PayoutNotSeen,
}

impl Reason {
    /// The stable name used in the database, the CSVs and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AmountMismatch => "amount_mismatch",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::Ambiguous => "ambiguous",
            Self::TooEarly => "too_early",
            Self::OutsideLookback => "outside_lookback",
            Self::NoConcept => "no_concept",
            Self::AwaitingTransfer => "awaiting_transfer",
            Self::ReconcileFailed => "reconcile_failed",
            Self::SyncIncomplete => "sync_incomplete",
            Self::UnexplainedDebit => "unexplained_debit",
            Self::PayoutNotSeen => "payout_not_seen",
        }
    }

    pub const ALL: [Reason; 11] = [
        Self::AmountMismatch,
        Self::CurrencyMismatch,
        Self::Ambiguous,
        Self::TooEarly,
        Self::OutsideLookback,
        Self::NoConcept,
        Self::AwaitingTransfer,
        Self::ReconcileFailed,
        Self::SyncIncomplete,
        Self::UnexplainedDebit,
        Self::PayoutNotSeen,
    ];
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tunables of rules §3–§4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchParams {
    /// A credit may be booked this long before the payment's creation (default 24 h).
    pub booking_tolerance: Duration,
    /// Payments older than this are never reconciled automatically (default 90 days).
    pub lookback: Duration,
    /// A finished off-ramp's payout must be seen within this time (default 3 days).
    pub payout_grace: Duration,
}

impl Default for MatchParams {
    fn default() -> Self {
        Self {
            booking_tolerance: Duration::hours(24),
            lookback: Duration::days(90),
            payout_grace: Duration::days(3),
        }
    }
}

/// What the core is given. Slices hold whatever the caller has; the core itself decides
/// which items are open (rules §1) and ignores the rest.
pub struct MatchInput<'a> {
    /// All payments known; only `pending_bank` ones not in `tied_payments` are open.
    pub payments: &'a [Payment],
    /// All bank transactions known, credits and debits.
    pub transactions: &'a [BankTransaction],
    /// All off-ramps known.
    pub offramps: &'a [Offramp],
    /// Payments already tied to a bank transaction by this job (the `matches` table).
    pub tied_payments: &'a HashSet<PaymentId>,
    /// Bank transactions already tied to a payment by this job.
    pub tied_transactions: &'a HashSet<BankTxId>,
    /// Rules §3.5: every page of every list was read in this run.
    pub sync_complete: bool,
    pub now: DateTime<Utc>,
    pub params: MatchParams,
}

/// A confident match (rules §3.1–§3.5 hold): reconcile it, after re-reading the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfidentPair {
    pub payment: PaymentId,
    pub transaction: BankTxId,
}

/// An open payment that needs a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFinding {
    pub payment: PaymentId,
    pub reason: Reason,
    /// Credits whose text contains this payment's concept (for `ambiguous` all of them;
    /// for a unique pair, the one credit).
    pub candidates: Vec<BankTxId>,
    /// For `amount_mismatch`: `received - expected` (currency units).
    pub difference: Option<Decimal>,
    /// Whole days since the payment was created, at `now`.
    pub days_pending: i64,
    /// For `reconcile_failed`: the provider's error code. Otherwise `None`.
    pub detail: Option<String>,
}

/// A bank transaction (open credit or debit) that needs a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionFinding {
    pub transaction: BankTxId,
    pub reason: Reason,
    /// Open payments whose concept appears in the text (for `ambiguous`, all of them; for
    /// a unique pair, the one payment).
    pub candidates: Vec<PaymentId>,
    /// For `no_concept` credits: open payments of the same amount and currency. A hint for
    /// a person, never acted on.
    pub suggested: Vec<PaymentId>,
    /// For `amount_mismatch`: `received - expected` (currency units).
    pub difference: Option<Decimal>,
    /// For `reconcile_failed`: the provider's error code. Otherwise `None`.
    pub detail: Option<String>,
}

/// A finished off-ramp whose payout was not seen after the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutFinding {
    pub offramp: OfframpId,
    pub reason: Reason,
    pub days_since_finished: i64,
}

/// A debit that pays out a finished off-ramp (nothing to do; kept for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutMatch {
    pub offramp: OfframpId,
    pub transaction: BankTxId,
}

/// The core's answer: every open item appears exactly once across these lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    pub reconcile: Vec<ConfidentPair>,
    pub payments: Vec<PaymentFinding>,
    pub transactions: Vec<TransactionFinding>,
    pub payouts: Vec<PayoutFinding>,
    pub paid_out: Vec<PayoutMatch>,
}
