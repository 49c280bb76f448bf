//! §4: everything else.

use super::*;

#[test]
fn a_credit_with_no_concept_suggests_open_payments_of_the_same_money() {
    let d = World::new()
        .with_payment(payment("P3", "3", eur("150.50"), 2))
        .with_payment(payment("P1", "1", eur("150.5"), 2))
        .with_payment(payment("P2", "2", money("150.50", "USD"), 2))
        .with_payment(payment("P4", "4", eur("150.51"), 2))
        .with_tx(credit("T1", "J. Doe, thanks", eur("150.50"), 1))
        .decide();
    let t = tx_finding(&d, "T1");
    assert_eq!(t.reason, Reason::NoConcept);
    assert!(t.candidates.is_empty());
    assert_eq!(pay_ids(&t.suggested), ["P1", "P3"]);
    assert!(d.reconcile.is_empty(), "a suggestion is never acted on");
}

#[test]
fn no_concept_suggestions_are_capped_at_five_lowest_ids() {
    let mut world = World::new().with_tx(credit("T1", "no ref", eur("10"), 1));
    for i in (0..8).rev() {
        world = world.with_payment(payment(&format!("P{i}"), &format!("{i}00"), eur("10"), 2));
    }
    let d = world.decide();
    assert_eq!(
        pay_ids(&tx_finding(&d, "T1").suggested),
        ["P0", "P1", "P2", "P3", "P4"]
    );
}

#[test]
fn a_payment_with_no_credit_is_awaiting_transfer_with_days_pending() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 3 * 24 + 5))
        .decide();
    let p = payment_finding(&d, "P1");
    assert_eq!(p.reason, Reason::AwaitingTransfer);
    assert_eq!(p.days_pending, 3);
    assert!(p.candidates.is_empty() && p.difference.is_none() && p.detail.is_none());
}

#[test]
fn a_payment_created_in_the_future_has_zero_days_pending() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("1"), -30))
        .decide();
    assert_eq!(payment_finding(&d, "P1").days_pending, 0);
}

#[test]
fn a_payment_without_a_concept_is_awaiting_transfer_and_never_matches() {
    let mut world = pair_with_text("120037");
    world.payments[0].concept = None;
    let d = world.decide();
    assert!(d.reconcile.is_empty());
    assert_eq!(payment_finding(&d, "P1").reason, Reason::AwaitingTransfer);
    let t = tx_finding(&d, "T1");
    assert_eq!(t.reason, Reason::NoConcept);
    assert_eq!(pay_ids(&t.suggested), ["P1"]);
}

#[test]
fn a_debit_is_never_a_candidate_for_a_payment() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .with_tx(debit("D1", "120037", eur("150.50"), 1))
        .decide();
    assert!(d.reconcile.is_empty());
    assert_eq!(payment_finding(&d, "P1").reason, Reason::AwaitingTransfer);
    assert_eq!(tx_finding(&d, "D1").reason, Reason::UnexplainedDebit);
}
