//! The second decision: what the provider's answers and fresh re-reads mean for a pair
//! the core found confident (matching rules §3.6 and §5). Pure: the answers come in as
//! values, a [`Fate`] or a [`Check`] comes out; `crate::reconcile` does the I/O and
//! writes what is decided here.

use crate::domain::{BankTransaction, BankTxId, Direction, Payment, PaymentId, PaymentStatus};
use crate::matching::{Decisions, PaymentFinding, Reason, TransactionFinding};

/// A pair that was not reconciled, and what each side is reported with
/// (`reconcile_failed` with this detail), for the sides that are still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReconciled {
    pub payment: PaymentId,
    pub transaction: BankTxId,
    /// `None` when the payment is not open any more (it moved on, or is gone).
    pub payment_detail: Option<String>,
    /// `None` when the credit is not open any more.
    pub credit_detail: Option<String>,
}

impl NotReconciled {
    /// Both sides still open, reported with the same detail.
    pub fn both(payment: PaymentId, transaction: BankTxId, detail: String) -> Self {
        Self {
            payment,
            transaction,
            payment_detail: Some(detail.clone()),
            credit_detail: Some(detail),
        }
    }
}

/// Adds what the reconcile step learnt to the core's decisions, so that every item is
/// reported with exactly one reason: a pair not reconciled is `reconcile_failed` on each
/// side still open, a payment gone at the provider is `vanished`; each replaces any
/// finding the item had (the latest word wins). `days_pending` gives a payment's age.
pub fn add_outcomes(
    d: &mut Decisions,
    not_reconciled: &[NotReconciled],
    vanished: &[PaymentId],
    days_pending: impl Fn(&PaymentId) -> i64,
) {
    let mut payments: Vec<PaymentFinding> = Vec::new();
    let mut credits: Vec<TransactionFinding> = Vec::new();
    for n in not_reconciled {
        if let Some(detail) = &n.payment_detail {
            payments.push(PaymentFinding {
                payment: n.payment.clone(),
                reason: Reason::ReconcileFailed,
                candidates: vec![n.transaction.clone()],
                difference: None,
                days_pending: days_pending(&n.payment),
                detail: Some(detail.clone()),
            });
        }
        if let Some(detail) = &n.credit_detail {
            credits.push(TransactionFinding {
                transaction: n.transaction.clone(),
                reason: Reason::ReconcileFailed,
                candidates: vec![n.payment.clone()],
                suggested: Vec::new(),
                difference: None,
                detail: Some(detail.clone()),
            });
        }
    }
    for id in vanished {
        payments.push(PaymentFinding {
            payment: id.clone(),
            reason: Reason::Vanished,
            candidates: Vec::new(),
            difference: None,
            days_pending: days_pending(id),
            detail: Some("the provider no longer knows this payment (payment_not_found)".into()),
        });
    }
    for f in payments {
        d.payments.retain(|e| e.payment != f.payment);
        d.payments.push(f);
    }
    for f in credits {
        d.transactions.retain(|e| e.transaction != f.transaction);
        d.transactions.push(f);
    }
}

/// What a fresh read of one record said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read<T> {
    /// The provider's record now.
    Found(T),
    /// The provider says it does not know it (a payment's `payment_not_found`; a credit
    /// absent from the instant its account's list should show it at).
    Gone,
    /// The read itself failed (network, provider down): nothing is known.
    Failed(String),
}

/// What a reconcile call came back with, or that none came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Applied; the payment's new status.
    Applied(PaymentStatus),
    /// Refused with this code.
    Refused(String),
    /// Not processed: rate-limited (HTTP 429, or 503 with `Retry-After`).
    NotProcessed(String),
    /// Sent, answer lost (timeout, reset, 5xx, garbage): it may have been applied.
    Lost(String),
    /// Found as an intent without an outcome by a later run (the process died mid-call).
    NoAnswer,
    /// Never sent (authentication rejected, run deadline).
    NotSent(String),
}

/// What became of a pair that was, or may have been, called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The provider tied this credit to this payment. `how`: `ok`, or how it was learnt.
    Reconciled { status: PaymentStatus, how: String },
    /// The payment left `pending_bank` without this credit (someone else tied it).
    MovedOn { status: PaymentStatus },
    /// Refused, and the re-reads confirm it cannot be applied as things stand: the pair
    /// is not called again while the payment's status stays what it is.
    Failed { code: String },
    /// The payment is gone at the provider.
    Vanished,
    /// Cannot be told yet (a re-read failed, or an answer was lost while the payment is
    /// still pending): the pair stays held; the next run re-reads it.
    Unknown { why: String },
    /// The call provably had no effect (the payment is still pending and the credit is
    /// open): the pair is released and decided again like any other.
    NotApplied { why: String },
    /// Not processed and still confident on fresh reads: call once more.
    CallAgain,
    /// Never called.
    Skipped { why: String },
}

/// Whether a confident pair may be called, on fresh reads of both records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Call,
    /// Not called; why, and what the reads show about each side.
    DontCall {
        why: String,
        /// The payment is still open (`pending_bank`) as far as anyone knows.
        payment_open: bool,
        /// The credit is still open (not tied to any payment at the provider).
        credit_open: bool,
        /// The payment is gone at the provider.
        vanished: bool,
    },
}

/// Whether the pair the core matched is still confident on what the provider says now
/// (rules §3.6): the payment is `pending_bank`, the credit is an unreconciled credit,
/// and every fact the match was made on (amounts, currencies, the concept, the texts,
/// the times) is unchanged. Anything else means the view the match was made on is
/// stale: no call, and the next run decides on the new records.
pub fn before_call(
    matched: (&Payment, &BankTransaction),
    payment: &Read<Payment>,
    credit: &Read<BankTransaction>,
) -> Check {
    let (mp, mt) = matched;
    let credit_open = match credit {
        Read::Found(t) => t.direction == Direction::Credit && t.reconciled_payment_id.is_none(),
        Read::Gone => false,
        Read::Failed(_) => true,
    };
    let dont = |why: String, payment_open: bool, vanished: bool| Check::DontCall {
        why,
        payment_open,
        credit_open,
        vanished,
    };
    let p = match payment {
        Read::Failed(e) => return dont(format!("not called: re-read failed: {e}"), true, false),
        Read::Gone => {
            return dont(
                "payment_not_found (gone at the provider)".into(),
                false,
                true,
            );
        }
        Read::Found(p) => p,
    };
    if !p.status.is_open() {
        return dont(
            format!("payment_not_pending (now {})", p.status),
            false,
            false,
        );
    }
    let t = match credit {
        Read::Failed(e) => return dont(format!("not called: re-read failed: {e}"), true, false),
        Read::Gone => {
            return dont(
                "transaction_not_found (not at its booking time any more)".into(),
                true,
                false,
            );
        }
        Read::Found(t) => t,
    };
    if let Some(other) = &t.reconciled_payment_id {
        return dont(
            format!("transaction_already_reconciled (with payment {other})"),
            true,
            false,
        );
    }
    let same_payment = p.amount == mp.amount
        && p.concept == mp.concept
        && p.created_at == mp.created_at
        && p.id == mp.id;
    let same_credit = t.amount == mt.amount
        && t.direction == mt.direction
        && t.concept_text == mt.concept_text
        && t.booked_at == mt.booked_at
        && t.iban == mt.iban
        && t.id == mt.id;
    if !same_payment || !same_credit {
        let which = match (same_payment, same_credit) {
            (false, false) => "the payment and the credit",
            (false, true) => "the payment",
            _ => "the credit",
        };
        return dont(
            format!("not called: {which} changed at the provider since the sync"),
            true,
            false,
        );
    }
    Check::Call
}

/// What an answer means once the payment and the credit were re-read (the re-reads are
/// ignored for [`Answer::Applied`] and [`Answer::NotSent`], which say for sure).
///
/// A tie is recorded only when the provider shows it: the answer `ok`, or a credit whose
/// `reconciled_payment_id` names this payment. A payment that left `pending_bank` with
/// another credit moved on; a re-read that failed leaves the pair held; a payment still
/// pending with its credit open after a lost answer is left held until the next run
/// (the provider may still be working on the call), while one found so by a later run
/// (or after a call that was not processed) had no effect.
pub fn settle(
    answer: &Answer,
    pair: (&PaymentId, &BankTxId),
    payment: &Read<Payment>,
    credit: &Read<BankTransaction>,
) -> Fate {
    let (pid, _) = pair;
    match answer {
        Answer::Applied(status) => {
            return Fate::Reconciled {
                status: status.clone(),
                how: "ok".into(),
            };
        }
        Answer::NotSent(why) => return Fate::Skipped { why: why.clone() },
        _ => {}
    }
    let lost = match answer {
        Answer::Lost(e) => format!("lost: {e}"),
        Answer::Refused(code) => format!("refused: {code}"),
        Answer::NotProcessed(e) => format!("not processed: {e}"),
        _ => "no answer recorded".into(),
    };
    // The tie, whoever made it, is the one fact that says the money was matched here.
    if let Read::Found(t) = credit
        && t.reconciled_payment_id.as_ref() == Some(pid)
    {
        let status = match payment {
            Read::Found(p) => p.status.clone(),
            _ => PaymentStatus::PaymentReceived,
        };
        return Fate::Reconciled {
            status,
            how: format!("{lost}; settled by re-reading: the credit names this payment"),
        };
    }
    let p = match payment {
        Read::Failed(e) => {
            return Fate::Unknown {
                why: format!("{lost}; re-read failed: {e}"),
            };
        }
        Read::Gone => return Fate::Vanished,
        Read::Found(p) => p,
    };
    if !p.status.is_open() {
        return match credit {
            // The payment moved, the credit did not say with what: ask again next run.
            Read::Failed(e) => Fate::Unknown {
                why: format!(
                    "{lost}; payment now {}; credit re-read failed: {e}",
                    p.status
                ),
            },
            _ => Fate::MovedOn {
                status: p.status.clone(),
            },
        };
    }
    // The payment is still pending_bank.
    let credit_open = match credit {
        Read::Found(t) => t.reconciled_payment_id.is_none(),
        Read::Gone => false,
        Read::Failed(e) => {
            return Fate::Unknown {
                why: format!("{lost}; credit re-read failed: {e}"),
            };
        }
    };
    match answer {
        Answer::Refused(code) => Fate::Failed { code: code.clone() },
        Answer::Lost(_) if credit_open => Fate::Unknown {
            why: format!("{lost}; the payment is still pending_bank: the next run re-reads it"),
        },
        Answer::NotProcessed(_) if credit_open => Fate::CallAgain,
        _ if credit_open => Fate::NotApplied {
            why: format!("{lost}; the payment is still pending_bank and the credit open"),
        },
        // The credit went elsewhere (or is gone) while the payment still waits: this
        // pair cannot be applied.
        _ => Fate::NotApplied {
            why: format!("{lost}; the credit is no longer open"),
        },
    }
}

/// For a pair that was not reconciled, what each side is reported with (always
/// `reconcile_failed`, with this detail), if it is still open. `None` for a side that
/// is not open any more, or that the next matching decides (a released pair).
pub fn report_of(fate: &Fate, credit: &Read<BankTransaction>) -> (Option<String>, Option<String>) {
    let credit_open = match credit {
        Read::Found(t) => t.reconciled_payment_id.is_none(),
        Read::Gone => false,
        Read::Failed(_) => true,
    };
    let both = |d: String| (Some(d.clone()), credit_open.then_some(d));
    match fate {
        Fate::Reconciled { .. } | Fate::CallAgain => (None, None),
        Fate::MovedOn { status } => (
            None,
            credit_open.then(|| format!("payment moved on to {status} without this credit")),
        ),
        Fate::Vanished => (
            None,
            credit_open.then(|| "payment gone at the provider (payment_not_found)".to_owned()),
        ),
        Fate::Failed { code } => both(code.clone()),
        Fate::Unknown { why } => both(format!("outcome unknown: {why}")),
        Fate::NotApplied { why } => both(format!("not applied: {why}")),
        Fate::Skipped { why } => both(why.clone()),
    }
}

#[cfg(test)]
mod tests;
