//! Whether a person's approve of a pair can be right, on what the store holds. Pure: the
//! records and the ledger's holds come in, a verdict comes out. What passes here is
//! then called through the job's own pipeline, which re-reads both sides first and
//! calls only if the provider still shows them as stored (rules §3.6).

use crate::domain::{BankTransaction, BankTxId, Direction, Payment, PaymentId, PaymentStatus};

use super::Refusal;

/// A `matches` row that holds a payment or a credit (state intent, unknown or
/// reconciled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub match_id: i64,
    pub payment: PaymentId,
    pub transaction: BankTxId,
    /// `intent`, `unknown` or `reconciled`.
    pub state: String,
}

/// What the store holds about the two sides of an approve.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub payment: Option<&'a Payment>,
    pub credit: Option<&'a BankTransaction>,
    /// The match holding the payment, if any.
    pub payment_hold: Option<&'a Hold>,
    /// The match holding the credit, if any.
    pub credit_hold: Option<&'a Hold>,
}

/// An approve that may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Call it: the pair as stored, to be re-read before the call.
    Call(Box<(Payment, BankTransaction)>),
    /// This very pair is already reconciled (by this match): nothing to do. Applying the
    /// same decision twice does nothing the second time.
    AlreadyDone { match_id: i64 },
}

/// Checks an approve of `payment` with `transaction` against the stored records, in the
/// order a person would want to hear about it: unknown ids, a debit, this very pair
/// already done, the payment not waiting or tied elsewhere, the credit tied, then
/// currency and amount (the provider would refuse a difference).
pub fn check(
    payment: &PaymentId,
    transaction: &BankTxId,
    facts: &Facts<'_>,
) -> Result<Verdict, Refusal> {
    let p = facts
        .payment
        .ok_or_else(|| Refusal::UnknownPayment(payment.clone()))?;
    let t = facts
        .credit
        .ok_or_else(|| Refusal::UnknownTransaction(transaction.clone()))?;
    if t.direction == Direction::Debit {
        return Err(Refusal::Debit(t.id.clone()));
    }
    if let Some(h) = facts.payment_hold {
        if h.transaction == t.id && h.state == "reconciled" {
            return Ok(Verdict::AlreadyDone {
                match_id: h.match_id,
            });
        }
        return Err(Refusal::PaymentTied {
            payment: p.id.clone(),
            transaction: h.transaction.clone(),
            state: match h.state.as_str() {
                "reconciled" => "reconciled".into(),
                s => format!("{s}: a call is in doubt; the next run settles it"),
            },
        });
    }
    if p.status != PaymentStatus::PendingBank {
        return Err(Refusal::PaymentNotPending {
            payment: p.id.clone(),
            status: p.status.to_string(),
        });
    }
    if let Some(other) = &t.reconciled_payment_id {
        return Err(Refusal::CreditTied {
            transaction: t.id.clone(),
            why: format!("the provider shows it reconciled with payment {other}"),
        });
    }
    if let Some(h) = facts.credit_hold {
        return Err(Refusal::CreditTied {
            transaction: t.id.clone(),
            why: format!("tied to payment {} ({})", h.payment, h.state),
        });
    }
    if p.amount.currency() != t.amount.currency() {
        return Err(Refusal::CurrencyDiffers {
            payment: p.id.clone(),
            transaction: t.id.clone(),
            expected: p.amount.currency().to_string(),
            received: t.amount.currency().to_string(),
        });
    }
    if p.amount.amount() != t.amount.amount() {
        return Err(Refusal::AmountDiffers {
            payment: p.id.clone(),
            transaction: t.id.clone(),
            expected: p.amount.to_string(),
            received: t.amount.to_string(),
        });
    }
    Ok(Verdict::Call(Box::new((p.clone(), t.clone()))))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{Concept, Currency, Iban, Money};

    fn money(cents: i64, cur: &str) -> Money {
        Money::from_units(Decimal::new(cents, 2), Currency::parse(cur).unwrap())
    }

    fn payment() -> Payment {
        Payment {
            id: PaymentId::parse("P1").unwrap(),
            external_id: None,
            user_id: None,
            status: PaymentStatus::PendingBank,
            amount: money(15050, "EUR"),
            payment_type: Some("transfer".into()),
            concept: Some(Concept::parse("120037").unwrap()),
            created_at: Utc::now(),
            updated_at: None,
        }
    }

    fn credit() -> BankTransaction {
        BankTransaction {
            id: BankTxId::parse("T1").unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount: money(15050, "EUR"),
            direction: Direction::Credit,
            concept_text: "Ref 120037".into(),
            counterparty_name: None,
            counterparty_iban: None,
            booked_at: Utc::now(),
            value_date: None,
            reconciled_payment_id: None,
        }
    }

    fn ids() -> (PaymentId, BankTxId) {
        (
            PaymentId::parse("P1").unwrap(),
            BankTxId::parse("T1").unwrap(),
        )
    }

    fn hold(p: &str, t: &str, state: &str) -> Hold {
        Hold {
            match_id: 9,
            payment: PaymentId::parse(p).unwrap(),
            transaction: BankTxId::parse(t).unwrap(),
            state: state.into(),
        }
    }

    fn verdict(p: &Payment, t: &BankTransaction) -> Result<Verdict, Refusal> {
        let (pid, tid) = ids();
        check(
            &pid,
            &tid,
            &Facts {
                payment: Some(p),
                credit: Some(t),
                ..Facts::default()
            },
        )
    }

    #[test]
    fn an_open_payment_and_an_open_credit_of_the_same_amount_are_called() {
        let (p, t) = (payment(), credit());
        assert_eq!(
            verdict(&p, &t),
            Ok(Verdict::Call(Box::new((p.clone(), t.clone()))))
        );
    }

    #[test]
    fn the_credit_text_need_not_name_the_payment_a_person_decides_that() {
        let p = payment();
        let t = BankTransaction {
            concept_text: "J. Doe transfer".into(),
            ..credit()
        };
        assert!(matches!(verdict(&p, &t), Ok(Verdict::Call(_))));
    }

    #[test]
    fn unknown_ids_are_refused_by_name() {
        let (pid, tid) = ids();
        let (p, t) = (payment(), credit());
        let none = Facts {
            credit: Some(&t),
            ..Facts::default()
        };
        assert_eq!(
            check(&pid, &tid, &none),
            Err(Refusal::UnknownPayment(pid.clone()))
        );
        let no_credit = Facts {
            payment: Some(&p),
            ..Facts::default()
        };
        let e = check(&pid, &tid, &no_credit).unwrap_err();
        assert_eq!(e, Refusal::UnknownTransaction(tid.clone()));
        assert!(e.to_string().contains("T1"));
    }

    #[test]
    fn a_payment_not_pending_bank_is_refused() {
        let p = Payment {
            status: PaymentStatus::PaymentReceived,
            ..payment()
        };
        let e = verdict(&p, &credit()).unwrap_err();
        assert!(matches!(e, Refusal::PaymentNotPending { .. }), "{e}");
        assert!(e.to_string().contains("P1"));
    }

    #[test]
    fn a_debit_is_refused() {
        let t = BankTransaction {
            direction: Direction::Debit,
            ..credit()
        };
        assert_eq!(
            verdict(&payment(), &t),
            Err(Refusal::Debit(BankTxId::parse("T1").unwrap()))
        );
    }

    #[test]
    fn a_credit_reconciled_at_the_provider_or_held_by_a_match_is_refused() {
        let t = BankTransaction {
            reconciled_payment_id: Some(PaymentId::parse("P9").unwrap()),
            ..credit()
        };
        let e = verdict(&payment(), &t).unwrap_err();
        assert!(matches!(e, Refusal::CreditTied { .. }));
        assert!(e.to_string().contains("P9"));

        let (pid, tid) = ids();
        let (p, t) = (payment(), credit());
        let h = hold("P9", "T1", "reconciled");
        let facts = Facts {
            payment: Some(&p),
            credit: Some(&t),
            credit_hold: Some(&h),
            ..Facts::default()
        };
        assert!(matches!(
            check(&pid, &tid, &facts),
            Err(Refusal::CreditTied { .. })
        ));
    }

    #[test]
    fn a_payment_tied_or_in_doubt_with_another_credit_is_refused() {
        let (pid, tid) = ids();
        let (p, t) = (payment(), credit());
        for state in ["reconciled", "intent", "unknown"] {
            let h = hold("P1", "T7", state);
            let facts = Facts {
                payment: Some(&p),
                credit: Some(&t),
                payment_hold: Some(&h),
                ..Facts::default()
            };
            let e = check(&pid, &tid, &facts).unwrap_err();
            assert!(matches!(e, Refusal::PaymentTied { .. }), "{state}: {e}");
        }
    }

    #[test]
    fn the_same_pair_already_reconciled_is_done_not_refused() {
        let (pid, tid) = ids();
        let p = Payment {
            status: PaymentStatus::PaymentReceived,
            ..payment()
        };
        let t = BankTransaction {
            reconciled_payment_id: Some(pid.clone()),
            ..credit()
        };
        let h = hold("P1", "T1", "reconciled");
        let facts = Facts {
            payment: Some(&p),
            credit: Some(&t),
            payment_hold: Some(&h),
            credit_hold: Some(&h),
        };
        assert_eq!(
            check(&pid, &tid, &facts),
            Ok(Verdict::AlreadyDone { match_id: 9 })
        );
    }

    #[test]
    fn a_different_amount_or_currency_is_refused() {
        let t = BankTransaction {
            amount: money(15049, "EUR"),
            ..credit()
        };
        let e = verdict(&payment(), &t).unwrap_err();
        assert!(matches!(e, Refusal::AmountDiffers { .. }), "{e}");
        assert!(e.to_string().contains("150.49"), "{e}");
        let t = BankTransaction {
            amount: money(15050, "USD"),
            ..credit()
        };
        assert!(matches!(
            verdict(&payment(), &t),
            Err(Refusal::CurrencyDiffers { .. })
        ));
    }

    #[test]
    fn an_amount_written_with_more_zeros_is_the_same_amount() {
        let t = BankTransaction {
            amount: Money::from_units(Decimal::new(1505000, 4), Currency::parse("EUR").unwrap()),
            ..credit()
        };
        assert!(matches!(verdict(&payment(), &t), Ok(Verdict::Call(_))));
    }
}
