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
mod tests {
    use super::*;
    use crate::domain::{Concept, Currency, Iban, Money};
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn payment(status: PaymentStatus) -> Payment {
        Payment {
            id: PaymentId::parse("P1").unwrap(),
            external_id: None,
            user_id: None,
            status,
            amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
            payment_type: Some("transfer".into()),
            concept: Some(Concept::parse("120037").unwrap()),
            created_at: now(),
            updated_at: None,
        }
    }

    fn credit(tied: Option<&str>) -> BankTransaction {
        BankTransaction {
            id: BankTxId::parse("T1").unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
            direction: Direction::Credit,
            concept_text: "Ref 120037".into(),
            counterparty_name: None,
            counterparty_iban: None,
            booked_at: now(),
            value_date: None,
            reconciled_payment_id: tied.map(|p| PaymentId::parse(p).unwrap()),
        }
    }

    fn ids() -> (PaymentId, BankTxId) {
        (
            PaymentId::parse("P1").unwrap(),
            BankTxId::parse("T1").unwrap(),
        )
    }

    fn fate(answer: Answer, p: Read<Payment>, t: Read<BankTransaction>) -> Fate {
        let (pid, tid) = ids();
        settle(&answer, (&pid, &tid), &p, &t)
    }

    use PaymentStatus::{PaymentReceived, PendingBank};

    #[test]
    fn an_applied_answer_is_a_reconcile_whatever_the_reads_say() {
        let f = fate(
            Answer::Applied(PaymentReceived),
            Read::Failed("down".into()),
            Read::Failed("down".into()),
        );
        assert!(matches!(f, Fate::Reconciled { how, .. } if how == "ok"));
    }

    #[test]
    fn a_lost_answer_is_a_reconcile_only_when_the_credit_names_the_payment() {
        let f = fate(
            Answer::Lost("reset".into()),
            Read::Found(payment(PaymentReceived)),
            Read::Found(credit(Some("P1"))),
        );
        assert!(
            matches!(
                f,
                Fate::Reconciled {
                    status: PaymentReceived,
                    ..
                }
            ),
            "{f:?}"
        );
        // A person tied the payment to another transfer: ours was never applied.
        let f = fate(
            Answer::Lost("reset".into()),
            Read::Found(payment(PaymentReceived)),
            Read::Found(credit(None)),
        );
        assert_eq!(
            f,
            Fate::MovedOn {
                status: PaymentReceived
            }
        );
    }

    #[test]
    fn a_lost_answer_with_the_payment_still_pending_stays_held_for_the_next_run() {
        let f = fate(
            Answer::Lost("timeout".into()),
            Read::Found(payment(PendingBank)),
            Read::Found(credit(None)),
        );
        assert!(matches!(f, Fate::Unknown { .. }), "{f:?}");
    }

    #[test]
    fn a_later_run_that_finds_the_payment_pending_and_the_credit_open_releases_the_pair() {
        let f = fate(
            Answer::NoAnswer,
            Read::Found(payment(PendingBank)),
            Read::Found(credit(None)),
        );
        assert!(matches!(f, Fate::NotApplied { .. }), "{f:?}");
    }

    #[test]
    fn a_failed_re_read_never_frees_the_pair() {
        for answer in [
            Answer::Lost("x".into()),
            Answer::NoAnswer,
            Answer::Refused("payment_not_pending".into()),
            Answer::NotProcessed("429".into()),
        ] {
            let f = fate(
                answer.clone(),
                Read::Failed("down".into()),
                Read::Found(credit(None)),
            );
            assert!(matches!(f, Fate::Unknown { .. }), "{answer:?}: {f:?}");
            let f = fate(
                answer.clone(),
                Read::Found(payment(PaymentReceived)),
                Read::Failed("down".into()),
            );
            assert!(matches!(f, Fate::Unknown { .. }), "{answer:?}: {f:?}");
        }
    }

    #[test]
    fn a_payment_the_provider_no_longer_knows_has_vanished() {
        for answer in [
            Answer::NoAnswer,
            Answer::Refused("payment_not_found".into()),
        ] {
            let f = fate(answer, Read::Gone, Read::Found(credit(None)));
            assert_eq!(f, Fate::Vanished);
        }
    }

    #[test]
    fn a_refusal_whose_payment_moved_on_is_moved_on_and_one_whose_payment_waits_is_failed() {
        let f = fate(
            Answer::Refused("payment_not_pending".into()),
            Read::Found(payment(PaymentReceived)),
            Read::Found(credit(None)),
        );
        assert_eq!(
            f,
            Fate::MovedOn {
                status: PaymentReceived
            }
        );
        let f = fate(
            Answer::Refused("amount_mismatch".into()),
            Read::Found(payment(PendingBank)),
            Read::Found(credit(None)),
        );
        assert_eq!(
            f,
            Fate::Failed {
                code: "amount_mismatch".into()
            }
        );
        let f = fate(
            Answer::Refused("transaction_already_reconciled".into()),
            Read::Found(payment(PendingBank)),
            Read::Found(credit(Some("P9"))),
        );
        assert_eq!(
            f,
            Fate::Failed {
                code: "transaction_already_reconciled".into()
            }
        );
    }

    #[test]
    fn a_call_not_processed_is_made_again_only_while_both_sides_are_open() {
        let f = fate(
            Answer::NotProcessed("429".into()),
            Read::Found(payment(PendingBank)),
            Read::Found(credit(None)),
        );
        assert_eq!(f, Fate::CallAgain);
        let f = fate(
            Answer::NotProcessed("429".into()),
            Read::Found(payment(PaymentReceived)),
            Read::Found(credit(None)),
        );
        assert_eq!(
            f,
            Fate::MovedOn {
                status: PaymentReceived
            }
        );
    }

    #[test]
    fn a_pair_is_called_only_when_both_fresh_reads_show_it_open_and_unchanged() {
        let (p, t) = (payment(PendingBank), credit(None));
        let call = |rp: Read<Payment>, rt: Read<BankTransaction>| before_call((&p, &t), &rp, &rt);
        assert_eq!(
            call(Read::Found(p.clone()), Read::Found(t.clone())),
            Check::Call
        );
        let moved = call(
            Read::Found(payment(PaymentReceived)),
            Read::Found(t.clone()),
        );
        assert!(matches!(
            moved,
            Check::DontCall {
                payment_open: false,
                credit_open: true,
                ..
            }
        ));
        let taken = call(Read::Found(p.clone()), Read::Found(credit(Some("P2"))));
        assert!(matches!(
            taken,
            Check::DontCall {
                payment_open: true,
                credit_open: false,
                ..
            }
        ));
        let gone = call(Read::Gone, Read::Found(t.clone()));
        assert!(matches!(gone, Check::DontCall { vanished: true, .. }));
        let unreadable = call(Read::Found(p.clone()), Read::Failed("down".into()));
        assert!(matches!(unreadable, Check::DontCall { .. }));
        let mut changed = t.clone();
        changed.amount = Money::from_units(Decimal::new(15051, 2), Currency::parse("EUR").unwrap());
        assert!(matches!(
            call(Read::Found(p.clone()), Read::Found(changed)),
            Check::DontCall { .. }
        ));
        let mut text = t.clone();
        text.concept_text = "Ref 120037 and 120038".into();
        assert!(matches!(
            call(Read::Found(p.clone()), Read::Found(text)),
            Check::DontCall { .. }
        ));
    }

    #[test]
    fn the_recorded_fate_says_what_the_answer_was() {
        let read_failed = || Read::Failed("down".to_owned());
        let cases = [
            (Answer::Lost("timeout".into()), "lost: timeout"),
            (
                Answer::Refused("amount_mismatch".into()),
                "refused: amount_mismatch",
            ),
            (Answer::NotProcessed("429".into()), "not processed: 429"),
            (Answer::NoAnswer, "no answer recorded"),
        ];
        for (answer, said) in cases {
            match fate(answer, read_failed(), Read::Found(credit(None))) {
                Fate::Unknown { why } => assert!(why.starts_with(said), "{why}"),
                other => panic!("{said}: {other:?}"),
            }
        }
        match fate(
            Answer::Lost("reset".into()),
            Read::Found(payment(PaymentReceived)),
            Read::Found(credit(Some("P1"))),
        ) {
            Fate::Reconciled { how, .. } => assert!(how.starts_with("lost: reset; "), "{how}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_tie_found_by_re_reading_keeps_the_payments_status_as_read() {
        match fate(
            Answer::NoAnswer,
            Read::Found(payment(PaymentStatus::CoinsSent)),
            Read::Found(credit(Some("P1"))),
        ) {
            Fate::Reconciled { status, .. } => assert_eq!(status, PaymentStatus::CoinsSent),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pending_payment_whose_credit_went_elsewhere_is_released_saying_so() {
        for answer in [
            Answer::NoAnswer,
            Answer::Lost("timeout".into()),
            Answer::NotProcessed("429".into()),
        ] {
            match fate(
                answer,
                Read::Found(payment(PendingBank)),
                Read::Found(credit(Some("P2"))),
            ) {
                Fate::NotApplied { why } => {
                    assert!(why.ends_with("the credit is no longer open"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
        match fate(
            Answer::NoAnswer,
            Read::Found(payment(PendingBank)),
            Read::Found(credit(None)),
        ) {
            Fate::NotApplied { why } => assert!(why.ends_with("the credit open"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stale_pair_says_which_side_changed_and_an_unsent_call_is_skipped() {
        let (p, t) = (payment(PendingBank), credit(None));
        let mut p2 = p.clone();
        p2.amount = Money::from_units(Decimal::new(15051, 2), Currency::parse("EUR").unwrap());
        let mut t2 = t.clone();
        t2.booked_at = now() + chrono::Duration::seconds(1);
        let why = |rp: Payment, rt: BankTransaction| match before_call(
            (&p, &t),
            &Read::Found(rp),
            &Read::Found(rt),
        ) {
            Check::DontCall { why, .. } => why,
            Check::Call => panic!("called"),
        };
        let changed =
            |which: &str| format!("not called: {which} changed at the provider since the sync");
        assert_eq!(why(p2.clone(), t.clone()), changed("the payment"));
        assert_eq!(why(p.clone(), t2.clone()), changed("the credit"));
        assert_eq!(why(p2, t2), changed("the payment and the credit"));
        assert_eq!(
            fate(
                Answer::NotSent("run deadline".into()),
                Read::Found(payment(PendingBank)),
                Read::Found(credit(None))
            ),
            Fate::Skipped {
                why: "run deadline".into()
            }
        );
    }

    /// A named change to one fact of a record.
    type Change<'a, T> = (&'static str, Box<dyn Fn(&mut T) + 'a>);

    #[test]
    fn a_change_to_any_one_fact_of_either_side_stops_the_call() {
        let (p, t) = (payment(PendingBank), credit(None));
        let eur =
            |cents| Money::from_units(Decimal::new(cents, 2), Currency::parse("EUR").unwrap());
        let later = now() + chrono::Duration::seconds(1);
        let payments: Vec<Change<'_, Payment>> = vec![
            ("amount", Box::new(|x| x.amount = eur(15051))),
            (
                "currency",
                Box::new(|x| {
                    x.amount =
                        Money::from_units(Decimal::new(15050, 2), Currency::parse("USD").unwrap())
                }),
            ),
            (
                "concept",
                Box::new(|x| x.concept = Some(Concept::parse("120038").unwrap())),
            ),
            ("no concept", Box::new(|x| x.concept = None)),
            ("created_at", Box::new(move |x| x.created_at = later)),
            ("id", Box::new(|x| x.id = PaymentId::parse("P2").unwrap())),
        ];
        for (what, change) in &payments {
            let mut fresh = p.clone();
            change(&mut fresh);
            assert!(
                matches!(
                    before_call((&p, &t), &Read::Found(fresh), &Read::Found(t.clone())),
                    Check::DontCall {
                        payment_open: true,
                        credit_open: true,
                        ..
                    }
                ),
                "payment {what} changed, yet the pair would be called"
            );
        }
        let credits: Vec<Change<'_, BankTransaction>> = vec![
            ("amount", Box::new(|x| x.amount = eur(15049))),
            ("text", Box::new(|x| x.concept_text = "Ref 1200370".into())),
            ("booked_at", Box::new(move |x| x.booked_at = later)),
            (
                "iban",
                Box::new(|x| x.iban = Iban::parse("DE89370400440532013000").unwrap()),
            ),
            ("id", Box::new(|x| x.id = BankTxId::parse("T2").unwrap())),
            ("direction", Box::new(|x| x.direction = Direction::Debit)),
        ];
        for (what, change) in &credits {
            let mut fresh = t.clone();
            change(&mut fresh);
            assert!(
                matches!(
                    before_call((&p, &t), &Read::Found(p.clone()), &Read::Found(fresh)),
                    Check::DontCall { .. }
                ),
                "credit {what} changed, yet the pair would be called"
            );
        }
    }

    #[test]
    fn outcomes_replace_earlier_findings_so_each_item_has_one_reason() {
        let (pid, tid) = ids();
        let mut d = Decisions::default();
        d.payments.push(PaymentFinding {
            payment: pid.clone(),
            reason: Reason::AwaitingTransfer,
            candidates: Vec::new(),
            difference: None,
            days_pending: 1,
            detail: None,
        });
        let not = NotReconciled::both(pid.clone(), tid.clone(), "payment_not_pending".into());
        // Named twice (by recovery and by the calls): still one finding per item.
        add_outcomes(&mut d, &[not.clone(), not], &[], |_| 3);
        assert_eq!(d.payments.len(), 1);
        assert_eq!(d.payments[0].reason, Reason::ReconcileFailed);
        assert_eq!(d.payments[0].days_pending, 3);
        assert_eq!(d.transactions.len(), 1);
        add_outcomes(&mut d, &[], std::slice::from_ref(&pid), |_| 3);
        assert_eq!(d.payments.len(), 1);
        assert_eq!(d.payments[0].reason, Reason::Vanished);
    }

    #[test]
    fn each_side_that_is_still_open_is_reported_once_with_the_fate() {
        let open = Read::Found(credit(None));
        let tied = Read::Found(credit(Some("P9")));
        assert_eq!(
            report_of(
                &Fate::MovedOn {
                    status: PaymentReceived
                },
                &open
            )
            .0,
            None
        );
        assert!(
            report_of(
                &Fate::MovedOn {
                    status: PaymentReceived
                },
                &open
            )
            .1
            .is_some()
        );
        assert_eq!(report_of(&Fate::Failed { code: "x".into() }, &tied).1, None);
        assert!(
            report_of(&Fate::Failed { code: "x".into() }, &tied)
                .0
                .is_some()
        );
        let r = Fate::Reconciled {
            status: PaymentReceived,
            how: "ok".into(),
        };
        assert_eq!(report_of(&r, &open), (None, None));
    }
}
