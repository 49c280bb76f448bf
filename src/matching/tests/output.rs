//! Whole-answer properties that concern the shape of the output.

use super::*;

#[test]
fn every_list_is_sorted_by_id() {
    let d = World::new()
        .with_payment(payment("P3", "3", eur("1"), 2))
        .with_payment(payment("P1", "1", eur("1"), 2))
        .with_payment(payment("P2", "2", eur("1"), 2))
        .with_payment(payment("P9", "9", eur("1"), 2))
        .with_payment(payment("P8", "8", eur("1"), 2))
        .with_tx(credit("T9", "9", eur("1"), 1))
        .with_tx(credit("T8", "8", eur("1"), 1))
        .with_tx(credit("T3", "3", eur("2"), 1))
        .with_tx(debit("T5", "fee", eur("2"), 1))
        .with_tx(credit("T1", "none", eur("2"), 1))
        .decide();
    assert_reconciled_only(&d, &[("P8", "T8"), ("P9", "T9")]);
    let payments: Vec<&str> = d.payments.iter().map(|f| f.payment.as_str()).collect();
    assert_eq!(payments, ["P1", "P2", "P3"]);
    let txs: Vec<&str> = d
        .transactions
        .iter()
        .map(|f| f.transaction.as_str())
        .collect();
    assert_eq!(txs, ["T1", "T3", "T5"]);
}

#[test]
fn a_payment_listed_twice_counts_once() {
    let d = pair_with_text("120037")
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
    assert!(d.payments.is_empty() && d.transactions.is_empty(), "{d:#?}");
}

#[test]
fn a_credit_listed_twice_is_reported_once_and_never_reconciled() {
    let d = pair_with_text("120037")
        .with_tx(credit("T1", "120037", eur("150.50"), 1))
        .decide();
    assert!(d.reconcile.is_empty());
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::Ambiguous);
    assert_eq!(tx_ids(&p.candidates), ["T1"]);
    assert_eq!(d.transactions.len(), 1, "{d:#?}");
    assert_eq!(tx_finding(&d, "T1").reason, Reason::Ambiguous);
}

#[test]
fn a_debit_listed_twice_is_one_payout_not_a_double_one() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("10"), 100))
        .with_tx(debit("D1", RAMP, eur("10"), 90))
        .with_tx(debit("D1", RAMP, eur("10"), 90))
        .decide();
    assert_eq!(d.paid_out.len(), 1);
    assert!(d.transactions.is_empty(), "{d:#?}");
}

#[test]
fn the_answer_does_not_depend_on_input_order() {
    let world = World::new()
        .with_payment(payment("P1", "1", eur("1"), 2))
        .with_payment(payment("P2", "2", eur("2"), 2))
        .with_payment(payment("P3", "3", eur("3"), 2))
        .with_tx(credit("T1", "1", eur("1"), 1))
        .with_tx(credit("T2", "2 3", eur("2"), 1))
        .with_tx(credit("T3", "x", eur("3"), 1))
        .with_tx(debit("D1", "x", eur("3"), 1))
        .with_tx(debit("D2", "y", eur("3"), 2));
    let mut reversed = World::new();
    reversed.payments = world.payments.iter().rev().cloned().collect();
    reversed.transactions = world.transactions.iter().rev().cloned().collect();
    assert_eq!(world.decide(), reversed.decide());
}

#[test]
fn ids_sharing_a_long_prefix_are_still_sorted_and_deduplicated() {
    let mut world = World::new();
    for id in [
        "PAYMENT-000002",
        "PAYMENT-000010",
        "PAYMENT-000001",
        "PAYMENT-000002",
    ] {
        world = world.with_payment(payment(id, "7", eur("1"), 2));
    }
    let d = world.decide();
    let ids: Vec<&str> = d.payments.iter().map(|f| f.payment.as_str()).collect();
    assert_eq!(ids, ["PAYMENT-000001", "PAYMENT-000002", "PAYMENT-000010"]);
}

#[test]
fn suggestions_find_amounts_stored_at_another_scale() {
    let cents = |c: i64| {
        Money::from_cents(Decimal::from(c), Currency::parse("EUR").expect("ok")).expect("cents")
    };
    let d = World::new()
        .with_payment(payment("P1", "1", cents(15050), 2))
        .with_payment(payment("P2", "2", cents(15000), 2))
        .with_tx(credit("T1", "no ref", eur("150.5"), 1))
        .with_tx(credit("T2", "no ref", eur("150"), 1))
        .decide();
    assert_eq!(pay_ids(&tx_finding(&d, "T1").suggested), ["P1"]);
    assert_eq!(pay_ids(&tx_finding(&d, "T2").suggested), ["P2"]);
}
