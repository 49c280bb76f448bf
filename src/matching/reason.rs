//! Why an item needs a person: the reasons, their names and their labels (rules §4).

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
    /// A debit carrying the concept of a payment this job reconciled, or its credit's
    /// id, with the same amount and currency: the money left again after the crypto was
    /// released. Urgent; never explained away by an off-ramp payout.
    ReturnedAfterReconcile,
    /// A stored open payment the provider no longer knows (set by the sync or the
    /// reconcile step, not the core); reported once, in the run that saw it go.
    Vanished,
}

impl Reason {
    /// Whether an item with this reason is mailed at once, between digests: money that
    /// left or did not arrive as the job expected, which a person must look at today.
    pub fn is_urgent(self) -> bool {
        matches!(
            self,
            Self::ReconcileFailed
                | Self::UnexplainedDebit
                | Self::ReturnedAfterReconcile
                | Self::Vanished
        )
    }

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
            Self::ReturnedAfterReconcile => "returned_after_reconcile",
            Self::Vanished => "vanished",
        }
    }

    /// A few words for a reader who does not know the rule names (the e-mail and the
    /// workbook show them next to the code).
    pub fn label(self) -> &'static str {
        match self {
            Self::AmountMismatch => "concept matches, amount differs",
            Self::CurrencyMismatch => "concept matches, currency differs",
            Self::Ambiguous => "more than one candidate",
            Self::TooEarly => "transfer booked before the payment was created",
            Self::OutsideLookback => "payment older than the look-back window",
            Self::NoConcept => "no open payment's concept in the transfer text",
            Self::AwaitingTransfer => "no transfer received yet",
            Self::ReconcileFailed => "the reconcile call failed",
            Self::SyncIncomplete => "match found, held back: incomplete sync",
            Self::UnexplainedDebit => "debit that pays out no finished off-ramp",
            Self::PayoutNotSeen => "finished off-ramp, payout not seen",
            Self::ReturnedAfterReconcile => "money sent back for a payment already reconciled",
            Self::Vanished => "payment no longer known to the provider",
        }
    }

    pub const ALL: [Reason; 13] = [
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
        Self::Vanished,
        Self::ReturnedAfterReconcile,
    ];
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
