//! The finance desk: what people decide about the items the job reports.
//!
//! - `approve`: a person ties a payment to a credit the job would not; checked here
//!   against what the store holds, then called through the job's own pipeline
//!   ([`crate::reconcile::execute`]: fresh re-reads, intent journal, the same
//!   [`crate::matching::fate`]), exactly once.
//! - `dismiss` / `reopen`: an item stops being reported, or comes back.
//! - `review`: what needs a person now, with the command that would act on it.
//! - `apply`: the same decisions in bulk, from a report handed back: the workbook
//!   ([`workbook`]) or a CSV.
//! - `history`: the life of one item.
//!
//! The decisions themselves are pure functions with no I/O (the clock, where one is
//! needed, is an argument): [`approve::check`], [`dismiss::check`], [`review::items`],
//! [`apply::plan`], [`history::timeline`]. `commands` moves data between them, the
//! store and the provider; `cli.rs` only parses arguments. Every decision is a row of
//! the append-only `decisions` table (`migrations/0007_decisions.sql`).

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::{BankTxId, OfframpId, PaymentId};
use crate::matching::Decisions;

pub mod apply;
pub mod approve;
pub mod commands;
pub mod dismiss;
pub mod history;
pub mod review;
pub mod workbook;

/// What a decision is about: one item of a report, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemRef {
    Payment(PaymentId),
    /// A bank transaction: a credit or a debit.
    Transaction(BankTxId),
    Offramp(OfframpId),
    /// A record the job could not parse, by the id it carried (`bad_records.record_id`).
    BadRecord(String),
}

impl ItemRef {
    /// The `decisions.kind` (and `findings.kind`) of the item.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Payment(_) => "payment",
            Self::Transaction(_) => "transaction",
            Self::Offramp(_) => "offramp",
            Self::BadRecord(_) => "bad_record",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Payment(p) => p.as_str(),
            Self::Transaction(t) => t.as_str(),
            Self::Offramp(o) => o.as_str(),
            Self::BadRecord(r) => r,
        }
    }

    /// From a stored `kind` and id; `None` for a kind or id that does not parse.
    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        Some(match kind {
            "payment" => Self::Payment(PaymentId::parse(id).ok()?),
            "transaction" => Self::Transaction(BankTxId::parse(id).ok()?),
            "offramp" => Self::Offramp(OfframpId::parse(id).ok()?),
            "bad_record" if !id.is_empty() => Self::BadRecord(id.to_owned()),
            _ => return None,
        })
    }
}

impl fmt::Display for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Payment(_) => "payment",
            Self::Transaction(_) => "bank transaction",
            Self::Offramp(_) => "off-ramp",
            Self::BadRecord(_) => "unreadable record",
        };
        write!(f, "{kind} {}", self.id())
    }
}

/// The `decisions.action` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Dismiss,
    Reopen,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Dismiss => "dismiss",
            Self::Reopen => "reopen",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Self::Approve),
            "dismiss" => Some(Self::Dismiss),
            "reopen" => Some(Self::Reopen),
            _ => None,
        }
    }
}

/// A row of `decisions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub by: String,
    pub action: Action,
    pub item: ItemRef,
    /// For an approve: the bank transaction tied to the payment.
    pub other: Option<BankTxId>,
    pub note: Option<String>,
    /// `cli`, or `apply <file>:<line>` (`apply <file>:<sheet>:<row>` for a workbook).
    pub source: String,
    /// For an approve: the run row its call was made under.
    pub run_id: Option<i64>,
    pub match_id: Option<i64>,
    /// `None` only for an approve interrupted mid-call (its match tells the rest).
    pub outcome: Option<String>,
}

impl Decision {
    /// One line for people: `2026-06-26 10:30 ana dismissed payment P1: bank fee`.
    pub fn line(&self) -> String {
        self.line_with_time(self.at.format("%Y-%m-%d %H:%M").to_string())
    }

    /// [`Self::line`] with the time in `tz`, naming the zone: `2026-06-26 12:30 CEST
    /// ana dismissed payment P1 (bank fee)`.
    pub fn line_in(&self, tz: chrono_tz::Tz) -> String {
        self.line_with_time(crate::report::period::local_time(self.at, tz))
    }

    fn line_with_time(&self, time: String) -> String {
        let verb = match self.action {
            Action::Approve => "approved",
            Action::Dismiss => "dismissed",
            Action::Reopen => "reopened",
        };
        let what = match (&self.action, &self.other) {
            (Action::Approve, Some(t)) => format!("{} with bank transaction {t}", self.item),
            _ => self.item.to_string(),
        };
        let mut s = format!("{time} {} {verb} {what}", self.by);
        if let Some(note) = self.note.as_deref().filter(|n| !n.is_empty()) {
            s.push_str(&format!(" ({note})"));
        }
        if self.action == Action::Approve {
            let outcome = self
                .outcome
                .as_deref()
                .unwrap_or("interrupted; see its match");
            s.push_str(&format!(": {outcome}"));
        }
        s
    }
}

/// The dismissals in force: for each item, its latest `dismiss` unless a `reopen` came
/// after it. `decisions` in any order.
pub fn dismissed(decisions: &[Decision]) -> HashMap<ItemRef, &Decision> {
    let mut sorted: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.action != Action::Approve)
        .collect();
    sorted.sort_by_key(|d| d.id);
    let mut out = HashMap::new();
    for d in sorted {
        match d.action {
            Action::Dismiss => {
                out.insert(d.item.clone(), d);
            }
            Action::Reopen => {
                out.remove(&d.item);
            }
            Action::Approve => {}
        }
    }
    out
}

/// Takes the dismissed items out of a run's findings; returns how many were taken out.
/// The matching itself is untouched: a dismissed item still competes (a dismissed
/// duplicate transfer still makes its payment `ambiguous`), it is only not reported.
pub fn hide_dismissed<V>(d: &mut Decisions, dismissed: &HashMap<ItemRef, V>) -> usize {
    let before = d.payments.len() + d.transactions.len() + d.payouts.len();
    d.payments
        .retain(|f| !dismissed.contains_key(&ItemRef::Payment(f.payment.clone())));
    d.transactions
        .retain(|f| !dismissed.contains_key(&ItemRef::Transaction(f.transaction.clone())));
    d.payouts
        .retain(|f| !dismissed.contains_key(&ItemRef::Offramp(f.offramp.clone())));
    before - (d.payments.len() + d.transactions.len() + d.payouts.len())
}

/// Why a desk command did nothing, or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The decision cannot be right; nothing was done (exit 2).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Several rows of a file handed back are invalid; nothing was applied (exit 2).
    #[error("{file}: nothing was applied ({} error(s)):\n{}", errors.len(), errors.join("\n"))]
    InvalidFile { file: String, errors: Vec<String> },
    /// A file was applied, but some of its approves were not reconciled (exit 1); the
    /// text says which, row by row.
    #[error("{0}")]
    NotAllApplied(String),
    /// A run holds the database (exit 75).
    #[error("{0}")]
    Locked(String),
    /// Anything else: the database, the provider, the file system (exit 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A decision refused before anything is done, with what makes it wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown payment {0}: not in the database (has a run read it yet?)")]
    UnknownPayment(PaymentId),
    #[error("unknown bank transaction {0}: not in the database (has a run read it yet?)")]
    UnknownTransaction(BankTxId),
    #[error(
        "unknown item {0}: no payment, bank transaction, off-ramp or unreadable record has this id"
    )]
    UnknownItem(String),
    #[error("item id {id} names more than one item ({kinds}); cannot tell which")]
    AmbiguousItem { id: String, kinds: String },
    #[error(
        "payment {payment} is {status}, not pending_bank: only a payment waiting for its transfer can be approved"
    )]
    PaymentNotPending { payment: PaymentId, status: String },
    #[error("payment {payment} is already tied to bank transaction {transaction} ({state})")]
    PaymentTied {
        payment: PaymentId,
        transaction: BankTxId,
        state: String,
    },
    #[error("bank transaction {0} is a debit: money out is never reconciled to a payment")]
    Debit(BankTxId),
    #[error("bank transaction {transaction} is not open: {why}")]
    CreditTied { transaction: BankTxId, why: String },
    #[error(
        "payment {payment} is {expected} but bank transaction {transaction} is {received}: the amounts differ (the provider would refuse)"
    )]
    AmountDiffers {
        payment: PaymentId,
        transaction: BankTxId,
        expected: String,
        received: String,
    },
    #[error(
        "payment {payment} is in {expected} but bank transaction {transaction} is in {received}: the currencies differ (the provider would refuse)"
    )]
    CurrencyDiffers {
        payment: PaymentId,
        transaction: BankTxId,
        expected: String,
        received: String,
    },
    #[error("a note is required to dismiss {0}: say why it stops being reported")]
    NoteRequired(ItemRef),
    #[error("--by is required: say who decides")]
    NobodyDecides,
    #[error("the pair was not reconciled: {0}")]
    NotReconciled(String),
    #[error("unknown reason {given:?}: one of {known}")]
    UnknownReason { given: String, known: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(id: i64, action: Action, item: &str) -> Decision {
        Decision {
            id,
            at: Utc::now(),
            by: "ana".into(),
            action,
            item: ItemRef::Payment(PaymentId::parse(item).unwrap()),
            other: None,
            note: Some("why".into()),
            source: "cli".into(),
            run_id: None,
            match_id: None,
            outcome: None,
        }
    }

    #[test]
    fn a_dismissal_holds_until_a_later_reopen() {
        let ds = vec![
            decision(1, Action::Dismiss, "P1"),
            decision(2, Action::Dismiss, "P2"),
            decision(3, Action::Reopen, "P1"),
        ];
        let d = dismissed(&ds);
        assert_eq!(d.len(), 1);
        assert_eq!(d[&ItemRef::Payment(PaymentId::parse("P2").unwrap())].id, 2);
    }

    #[test]
    fn a_dismissal_after_a_reopen_counts_whatever_order_the_rows_come_in() {
        let ds = vec![
            decision(3, Action::Dismiss, "P1"),
            decision(2, Action::Reopen, "P1"),
            decision(1, Action::Dismiss, "P1"),
        ];
        assert_eq!(dismissed(&ds).len(), 1);
    }

    #[test]
    fn an_item_kind_and_id_round_trip_through_their_stored_form() {
        for item in [
            ItemRef::Payment(PaymentId::parse("P1").unwrap()),
            ItemRef::Transaction(BankTxId::parse("T1").unwrap()),
            ItemRef::Offramp(OfframpId::parse("O1").unwrap()),
            ItemRef::BadRecord("X1".into()),
        ] {
            assert_eq!(ItemRef::from_parts(item.kind(), item.id()), Some(item));
        }
        assert_eq!(ItemRef::from_parts("card", "P1"), None);
    }
}
