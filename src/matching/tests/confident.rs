//! §3: confident matches.

use super::*;

#[test]
fn a_unique_exact_pair_is_reconciled() {
    let d = pair_with_text("Ref 120037 J. Doe").decide();
    assert_eq!(
        d.reconcile,
        [ConfidentPair {
            payment: PaymentId::parse("P1").expect("valid literal"),
            transaction: BankTxId::parse("T1").expect("valid literal"),
        }]
    );
}

#[test]
fn amounts_compare_as_exact_decimals_not_as_text() {
    let cents = Money::from_cents(Decimal::from(15050), Currency::parse("EUR").expect("ok"))
        .expect("whole cents");
    let d = World::new()
        .with_payment(payment("P1", "120037", cents, 2))
        .with_tx(credit("T1", "120037", eur("150.500"), 1))
        .decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
}

#[test]
fn a_customer_who_paid_twice_makes_everything_involved_ambiguous() {
    let d = pair_with_text("120037")
        .with_tx(credit("T2", "120037 again", eur("150.50"), 0))
        .decide();
    assert!(d.reconcile.is_empty());
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::Ambiguous);
    assert_eq!(tx_ids(&p.candidates), ["T1", "T2"]);
    for t in ["T1", "T2"] {
        let f = tx_finding(&d, t);
        assert_eq!(f.reason, Reason::Ambiguous);
        assert_eq!(pay_ids(&f.candidates), ["P1"]);
    }
}

#[test]
fn a_second_transfer_of_the_wrong_amount_does_not_block_the_right_one() {
    let d = pair_with_text("120037")
        .with_tx(credit("T2", "120037", eur("15.05"), 0))
        .decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
    let t2 = tx_finding(&d, "T2");
    assert_eq!(t2.reason, Reason::AmountMismatch);
    assert_eq!(
        t2.difference,
        Some(Decimal::from_str("-135.45").expect("ok"))
    );
    assert_eq!(pay_ids(&t2.candidates), ["P1"]);
    assert!(d.payments.is_empty());
}

#[test]
fn two_open_payments_sharing_a_concept_are_ambiguous() {
    let d = pair_with_text("120037")
        .with_payment(payment("P2", "120037", eur("99"), 3))
        .decide();
    assert!(d.reconcile.is_empty());
    assert_eq!(payment_finding(&d, "P1").reason, Reason::Ambiguous);
    assert_eq!(payment_finding(&d, "P2").reason, Reason::Ambiguous);
    let t = tx_finding(&d, "T1");
    assert_eq!(t.reason, Reason::Ambiguous);
    assert_eq!(pay_ids(&t.candidates), ["P1", "P2"]);
}

#[test]
fn a_concept_of_another_payment_in_the_text_blocks_the_match() {
    // §3.4: the text names a second open payment, even one of another amount.
    let d = pair_with_text("120037 120099")
        .with_payment(payment("P2", "120099", eur("1"), 3))
        .decide();
    assert!(d.reconcile.is_empty());
    assert_eq!(tx_finding(&d, "T1").reason, Reason::Ambiguous);
    assert_eq!(payment_finding(&d, "P1").reason, Reason::Ambiguous);
    assert_eq!(payment_finding(&d, "P2").reason, Reason::Ambiguous);
}

#[test]
fn a_payment_no_longer_pending_bank_is_not_matched_nor_reported() {
    for status in [
        "started",
        "payment_received",
        "coins_sent",
        "payment_rejected",
    ] {
        let mut world = pair_with_text("120037");
        world.payments[0].status = PaymentStatus::parse(status);
        let d = world.decide();
        assert!(d.reconcile.is_empty());
        assert!(d.payments.is_empty(), "{status}: {d:#?}");
        let t = tx_finding(&d, "T1");
        assert_eq!(t.reason, Reason::NoConcept, "{status}");
        assert!(t.candidates.is_empty() && t.suggested.is_empty());
    }
}

#[test]
fn a_payment_tied_locally_is_not_open() {
    let mut world = pair_with_text("120037");
    world
        .tied_payments
        .insert(PaymentId::parse("P1").expect("ok"));
    let d = world.decide();
    assert!(d.reconcile.is_empty() && d.payments.is_empty());
    assert_eq!(tx_finding(&d, "T1").reason, Reason::NoConcept);
}

#[test]
fn a_credit_reconciled_remotely_is_neither_reported_nor_a_candidate() {
    let mut world = pair_with_text("120037");
    world.transactions[0].reconciled_payment_id = Some(PaymentId::parse("PX").expect("ok"));
    let d = world.decide();
    assert!(
        d.reconcile.is_empty() && d.transactions.is_empty(),
        "{d:#?}"
    );
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::AwaitingTransfer);
    assert!(p.candidates.is_empty());
}

#[test]
fn a_credit_tied_locally_is_neither_reported_nor_a_candidate() {
    let mut world = pair_with_text("120037");
    world
        .tied_transactions
        .insert(BankTxId::parse("T1").expect("ok"));
    let d = world.decide();
    assert!(
        d.reconcile.is_empty() && d.transactions.is_empty(),
        "{d:#?}"
    );
    assert_eq!(payment_finding(&d, "P1").reason, Reason::AwaitingTransfer);
}

#[test]
fn a_credit_tied_locally_does_not_make_a_second_transfer_ambiguous() {
    let mut world = pair_with_text("120037").with_tx(credit("T2", "120037", eur("150.5"), 0));
    world
        .tied_transactions
        .insert(BankTxId::parse("T1").expect("ok"));
    assert_reconciled_only(&world.decide(), &[("P1", "T2")]);
}

#[test]
fn a_payment_in_doubt_competes_a_credit_naming_it_and_another_is_ambiguous() {
    // P1's call with T1 is in doubt (answer lost, re-read failing): T1 is held, P1 is
    // still pending_bank as far as anyone knows. A new credit naming P1 and P2 must
    // not be reconciled with P2.
    let mut world = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 10))
        .with_payment(payment("P2", "120038", eur("80.00"), 10))
        .with_tx(credit("T2", "Pagos 120037 y 120038", eur("80.00"), 0));
    world
        .in_doubt_payments
        .insert(PaymentId::parse("P1").expect("ok"));
    let d = world.decide();
    assert!(d.reconcile.is_empty(), "{:?}", d.reconcile);
    assert_eq!(tx_finding(&d, "T2").reason, Reason::Ambiguous);
    assert_eq!(pay_ids(&tx_finding(&d, "T2").candidates), vec!["P1", "P2"]);
    assert_eq!(payment_finding(&d, "P2").reason, Reason::Ambiguous);
    // The reconcile step reports the payment in doubt; the core does not.
    assert!(d.payments.iter().all(|f| f.payment.as_str() != "P1"));
}

#[test]
fn a_payment_in_doubt_is_never_reconciled_again_and_its_second_credit_is_ambiguous() {
    let mut world = pair_with_text("120037");
    world
        .in_doubt_payments
        .insert(PaymentId::parse("P1").expect("ok"));
    let d = world.decide();
    assert!(d.reconcile.is_empty() && d.payments.is_empty(), "{d:#?}");
    assert_eq!(tx_finding(&d, "T1").reason, Reason::Ambiguous);
}

#[test]
fn a_payment_in_doubt_is_never_suggested_for_a_credit_without_concept() {
    let mut world = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 10))
        .with_tx(credit("T9", "no reference", eur("150.50"), 0));
    world
        .in_doubt_payments
        .insert(PaymentId::parse("P1").expect("ok"));
    let d = world.decide();
    assert_eq!(tx_finding(&d, "T9").reason, Reason::NoConcept);
    assert!(tx_finding(&d, "T9").suggested.is_empty());
}

#[test]
fn a_credit_booked_before_the_payment_beyond_tolerance_is_too_early() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 10))
        .with_tx(credit("T1", "120037", eur("150.50"), 10 + 25))
        .decide();
    assert!(d.reconcile.is_empty());
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::TooEarly);
    assert_eq!(tx_ids(&p.candidates), ["T1"]);
    let t = tx_finding(&d, "T1");
    assert_eq!(t.reason, Reason::TooEarly);
    assert_eq!(pay_ids(&t.candidates), ["P1"]);
}

#[test]
fn a_credit_booked_before_the_payment_within_tolerance_is_still_confident() {
    for before in [1, 23, 24] {
        let d = World::new()
            .with_payment(payment("P1", "120037", eur("150.50"), 10))
            .with_tx(credit("T1", "120037", eur("150.50"), 10 + before))
            .decide();
        assert_reconciled_only(&d, &[("P1", "T1")]);
    }
}

#[test]
fn a_payment_older_than_the_lookback_is_outside_lookback() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 91 * 24))
        .with_tx(credit("T1", "120037", eur("150.50"), 1))
        .decide();
    assert!(d.reconcile.is_empty());
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::OutsideLookback);
    assert_eq!(p.days_pending, 91);
    assert_eq!(tx_finding(&d, "T1").reason, Reason::OutsideLookback);
}

#[test]
fn a_payment_exactly_at_the_lookback_edge_is_still_confident() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 90 * 24))
        .with_tx(credit("T1", "120037", eur("150.50"), 1))
        .decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
}

#[test]
fn an_incomplete_sync_reconciles_nothing_and_says_so_on_both_sides() {
    let mut world = pair_with_text("120037");
    world.sync_incomplete = true;
    let d = world.decide();
    assert!(d.reconcile.is_empty());
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::SyncIncomplete);
    assert_eq!(tx_ids(&p.candidates), ["T1"]);
    let t = tx_finding(&d, "T1");
    assert_eq!(t.reason, Reason::SyncIncomplete);
    assert_eq!(pay_ids(&t.candidates), ["P1"]);
}

#[test]
fn an_incomplete_sync_keeps_the_specific_reason_of_a_failing_pair() {
    let mut world = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .with_tx(credit("T1", "120037", eur("150"), 1));
    world.sync_incomplete = true;
    let d = world.decide();
    assert_eq!(payment_finding(&d, "P1").reason, Reason::AmountMismatch);
    assert_eq!(tx_finding(&d, "T1").reason, Reason::AmountMismatch);
}

#[test]
fn a_currency_mismatch_is_reported_on_both_sides() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .with_tx(credit("T1", "120037", money("150.50", "USD"), 1))
        .decide();
    assert!(d.reconcile.is_empty());
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::CurrencyMismatch);
    assert_eq!(p.difference, None);
    assert_eq!(tx_finding(&d, "T1").reason, Reason::CurrencyMismatch);
}

#[test]
fn a_currency_mismatch_is_named_before_an_amount_mismatch() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .with_tx(credit("T1", "120037", money("99", "USD"), 1))
        .decide();
    assert_eq!(payment_finding(&d, "P1").reason, Reason::CurrencyMismatch);
    assert_eq!(tx_finding(&d, "T1").reason, Reason::CurrencyMismatch);
}

#[test]
fn an_amount_mismatch_shows_received_minus_expected_on_both_sides() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .with_tx(credit("T1", "120037", eur("150.49"), 1))
        .decide();
    assert!(d.reconcile.is_empty());
    let expected = Some(Decimal::from_str("-0.01").expect("ok"));
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::AmountMismatch);
    assert_eq!(p.difference, expected);
    let t = tx_finding(&d, "T1");
    assert_eq!(t.reason, Reason::AmountMismatch);
    assert_eq!(t.difference, expected);
}

#[test]
fn a_concept_longer_than_eighteen_digits_is_matched_like_a_short_one() {
    let long = "12345678901234567890123";
    let d = World::new()
        .with_payment(payment("P1", long, eur("150.50"), 2))
        .with_tx(credit("T1", &format!("Ref {long}"), eur("150.50"), 1))
        .decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
    // One digit more or less is another concept.
    let d = World::new()
        .with_payment(payment("P1", long, eur("150.50"), 2))
        .with_tx(credit("T1", &format!("Ref {long}4"), eur("150.50"), 1))
        .decide();
    assert!(d.reconcile.is_empty());
}
