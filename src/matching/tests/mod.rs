//! One test per row of rules §2–§4, plus the traps each row hides.

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::domain::{
    BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp, OfframpId,
    OfframpStatus, Payment, PaymentId, PaymentStatus,
};

mod concepts;
mod confident;
mod output;
mod payouts;
mod returns;
mod unmatched;

// ---------------------------------------------------------------------------------------
// Record builders. Times are hours relative to `NOW`; amounts are decimal strings.

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .expect("valid literal")
        .with_timezone(&Utc)
}

fn hours_ago(h: i64) -> DateTime<Utc> {
    now() - Duration::hours(h)
}

fn money(units: &str, currency: &str) -> Money {
    Money::from_units(
        Decimal::from_str(units).expect("valid literal"),
        Currency::parse(currency).expect("valid literal"),
    )
}

fn eur(units: &str) -> Money {
    money(units, "EUR")
}

fn payment(id: &str, concept: &str, amount: Money, created_hours_ago: i64) -> Payment {
    Payment {
        id: PaymentId::parse(id).expect("valid literal"),
        external_id: None,
        user_id: None,
        status: PaymentStatus::PendingBank,
        amount,
        payment_type: Some("bank_transfer".into()),
        concept: Some(Concept::parse(concept).expect("valid literal")),
        created_at: hours_ago(created_hours_ago),
        updated_at: None,
    }
}

fn transaction(
    id: &str,
    direction: Direction,
    text: &str,
    amount: Money,
    booked_hours_ago: i64,
) -> BankTransaction {
    BankTransaction {
        id: BankTxId::parse(id).expect("valid literal"),
        iban: Iban::parse("ES9121000418450200051332").expect("valid literal"),
        amount,
        direction,
        concept_text: text.into(),
        counterparty_name: Some("J. Doe".into()),
        counterparty_iban: None,
        booked_at: hours_ago(booked_hours_ago),
        value_date: None,
        reconciled_payment_id: None,
    }
}

fn credit(id: &str, text: &str, amount: Money, booked_hours_ago: i64) -> BankTransaction {
    transaction(id, Direction::Credit, text, amount, booked_hours_ago)
}

fn debit(id: &str, text: &str, amount: Money, booked_hours_ago: i64) -> BankTransaction {
    transaction(id, Direction::Debit, text, amount, booked_hours_ago)
}

fn offramp(id: &str, status: &str, fiat: Money, updated_hours_ago: i64) -> Offramp {
    Offramp {
        id: OfframpId::parse(id).expect("valid literal"),
        user_id: None,
        status: OfframpStatus::parse(status),
        fiat,
        iban: None,
        created_at: hours_ago(updated_hours_ago + 1),
        updated_at: Some(hours_ago(updated_hours_ago)),
    }
}

const RAMP: &str = "A1b2C3d4E5f6G7h8I9j0K1l2M";
const RAMP2: &str = "Z9y8X7w6V5u4T3s2R1q0P9o8N";

#[derive(Default)]
struct World {
    payments: Vec<Payment>,
    transactions: Vec<BankTransaction>,
    offramps: Vec<Offramp>,
    tied_payments: HashSet<PaymentId>,
    tied_transactions: HashSet<BankTxId>,
    in_doubt_payments: HashSet<PaymentId>,
    reconciled: Vec<ReconciledPair>,
    sync_incomplete: bool,
}

impl World {
    fn new() -> Self {
        Self::default()
    }
    fn with_payment(mut self, p: Payment) -> Self {
        self.payments.push(p);
        self
    }
    fn with_tx(mut self, t: BankTransaction) -> Self {
        self.transactions.push(t);
        self
    }
    fn with_offramp(mut self, o: Offramp) -> Self {
        self.offramps.push(o);
        self
    }
    fn decide(&self) -> Decisions {
        decide(&MatchInput {
            payments: &self.payments,
            transactions: &self.transactions,
            offramps: &self.offramps,
            tied_payments: &self.tied_payments,
            tied_transactions: &self.tied_transactions,
            in_doubt_payments: &self.in_doubt_payments,
            reconciled: &self.reconciled,
            sync_complete: !self.sync_incomplete,
            now: now(),
            params: MatchParams::default(),
        })
    }
}

/// The usual pair: payment P1 (concept 120037, 150.50 EUR, created 2 h ago) and a credit
/// T1 for it booked 1 h ago, with `text` as its remittance text.
fn pair_with_text(text: &str) -> World {
    World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .with_tx(credit("T1", text, eur("150.5"), 1))
}

fn reconciled(d: &Decisions) -> Vec<(&str, &str)> {
    d.reconcile
        .iter()
        .map(|c| (c.payment.as_str(), c.transaction.as_str()))
        .collect()
}

fn payment_finding<'d>(d: &'d Decisions, id: &str) -> &'d PaymentFinding {
    d.payments
        .iter()
        .find(|f| f.payment.as_str() == id)
        .unwrap_or_else(|| panic!("no finding for payment {id}: {d:#?}"))
}

fn tx_finding<'d>(d: &'d Decisions, id: &str) -> &'d TransactionFinding {
    d.transactions
        .iter()
        .find(|f| f.transaction.as_str() == id)
        .unwrap_or_else(|| panic!("no finding for transaction {id}: {d:#?}"))
}

fn tx_ids(ids: &[BankTxId]) -> Vec<&str> {
    ids.iter().map(BankTxId::as_str).collect()
}

fn pay_ids(ids: &[PaymentId]) -> Vec<&str> {
    ids.iter().map(PaymentId::as_str).collect()
}

fn assert_reconciled_only(d: &Decisions, pairs: &[(&str, &str)]) {
    assert_eq!(reconciled(d), pairs, "{d:#?}");
}
