//! The second decision: what the provider's answers and fresh re-reads mean for a pair
//! the core found confident (matching rules §3.6 and §5). Pure: the answers come in as
//! values, a [`Fate`] or a [`Check`] comes out; `crate::reconcile` does the I/O and
//! writes what is decided here.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::domain::{BankTransaction, BankTxId, Direction, Payment, PaymentId, PaymentStatus};
use crate::matching::{Decisions, MatchParams, PaymentFinding, Reason, TransactionFinding};

/// A pair that was not reconciled, and what each side is reported with
/// (`reconcile_failed` with this detail, or `ambiguous` when `twins` has any), for the
/// sides that are still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReconciled {
    pub payment: PaymentId,
    pub transaction: BankTxId,
    /// `None` when the payment is not open any more (it moved on, or is gone).
    pub payment_detail: Option<String>,
    /// `None` when the credit is not open any more.
    pub credit_detail: Option<String>,
    /// Other open credits found fitting the payment right before the call
    /// ([`Check::Ambiguous`]): the payment, the credit and each of these are reported
    /// `ambiguous`, each payment listing every credit. Empty otherwise.
    pub twins: Vec<BankTxId>,
}

impl NotReconciled {
    /// Both sides still open, reported with the same detail.
    pub fn both(payment: PaymentId, transaction: BankTxId, detail: String) -> Self {
        Self {
            payment,
            transaction,
            payment_detail: Some(detail.clone()),
            credit_detail: Some(detail),
            twins: Vec::new(),
        }
    }
}

/// Adds what the reconcile step learnt to the core's decisions, so that every item is
/// reported with exactly one reason: a pair not reconciled is `reconcile_failed` on each
/// side still open (`ambiguous`, with every candidate, when other credits were found
/// fitting the payment right before the call), a payment gone at the provider is
/// `vanished`; each replaces any finding the item had (the latest word wins).
/// `days_pending` gives a payment's age.
pub fn add_outcomes(
    d: &mut Decisions,
    not_reconciled: &[NotReconciled],
    vanished: &[PaymentId],
    days_pending: impl Fn(&PaymentId) -> i64,
) {
    let mut payments: Vec<PaymentFinding> = Vec::new();
    let mut credits: Vec<TransactionFinding> = Vec::new();
    for n in not_reconciled {
        let reason = if n.twins.is_empty() {
            Reason::ReconcileFailed
        } else {
            Reason::Ambiguous
        };
        if let Some(detail) = &n.payment_detail {
            let mut candidates: Vec<BankTxId> = std::iter::once(&n.transaction)
                .chain(&n.twins)
                .cloned()
                .collect();
            candidates.sort_unstable();
            candidates.dedup();
            payments.push(PaymentFinding {
                payment: n.payment.clone(),
                reason,
                candidates,
                difference: None,
                days_pending: days_pending(&n.payment),
                detail: Some(detail.clone()),
            });
        }
        let credit = |transaction: &BankTxId, detail: &String| TransactionFinding {
            transaction: transaction.clone(),
            reason,
            candidates: vec![n.payment.clone()],
            suggested: Vec::new(),
            difference: None,
            detail: Some(detail.clone()),
        };
        if let Some(detail) = &n.credit_detail {
            credits.push(credit(&n.transaction, detail));
        }
        // Twins are open credits by definition, whatever became of the matched one.
        if let Some(detail) = n.credit_detail.as_ref().or(n.payment_detail.as_ref()) {
            credits.extend(n.twins.iter().map(|t| credit(t, detail)));
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

/// Who decided that a pair is unique, and so what is checked again right before its
/// call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// The matching core, with these limits (rules §3.4): everything the narrow read of
    /// the credit's instant returns counts, and another open credit there that satisfies
    /// §3.1–§3.3 for the payment makes the pair ambiguous.
    Matched(MatchParams),
    /// A person who approved the pair (rules §4): they decided uniqueness and concept,
    /// so only the pair's own records are checked.
    Approved,
}

/// What the narrow read of the credit's instant returned (its account's list from
/// `booked_at` to `booked_at + 1µs`, every page), for the check right before a call.
#[derive(Debug, Clone, Copy)]
pub struct NarrowRead<'a> {
    /// Every record the read returned, the matched credit among them.
    pub records: &'a [BankTransaction],
    /// Those of them this job already tied to a payment (a match holds them): not open
    /// (rules §1), whatever the provider shows.
    pub held: &'a HashSet<BankTxId>,
}

/// Whether a confident pair may be called, on fresh reads of both records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Call,
    /// Not called: other open credits the narrow read returned at the credit's instant
    /// satisfy §3.1–§3.3 for the payment too (a second transfer booked at the same
    /// instant, seen or not by the sync). Both sides are still open; the payment, the
    /// credit and these `twins` are all `ambiguous` (rules §3.6, §4).
    Ambiguous {
        why: String,
        twins: Vec<BankTxId>,
    },
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
///
/// Everything the narrow read returned counts: for a pair the matching core found
/// unique, any other open credit in `narrow` (a credit, unreconciled at the provider,
/// not held by this job) that satisfies §3.1–§3.3 for the payment, with `now` for the
/// look-back, makes the pair [`Check::Ambiguous`].
pub fn before_call(
    matched: (&Payment, &BankTransaction),
    payment: &Read<Payment>,
    credit: &Read<BankTransaction>,
    narrow: &NarrowRead<'_>,
    uniqueness: Uniqueness,
    now: DateTime<Utc>,
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
    if let Uniqueness::Matched(params) = uniqueness {
        let twins = twins(p, t, narrow, params, now);
        if !twins.is_empty() {
            let ids: Vec<&str> = twins.iter().map(BankTxId::as_str).collect();
            return Check::Ambiguous {
                why: format!(
                    "not called: another open credit booked at the same instant fits this \
                     payment too ({})",
                    ids.join(", ")
                ),
                twins,
            };
        }
    }
    Check::Call
}

/// The open credits of `narrow`, other than `t`, that satisfy §3.1–§3.3 for `p`, in id
/// order, each once.
fn twins(
    p: &Payment,
    t: &BankTransaction,
    narrow: &NarrowRead<'_>,
    params: MatchParams,
    now: DateTime<Utc>,
) -> Vec<BankTxId> {
    let mut ids: Vec<BankTxId> = narrow
        .records
        .iter()
        .filter(|o| {
            o.id != t.id
                && o.reconciled_payment_id.is_none()
                && !narrow.held.contains(&o.id)
                && super::fits(p, o, params, now)
        })
        .map(|o| o.id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
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
