//! §4, second table: debits and off-ramps.

use super::*;

#[test]
fn a_debit_carrying_a_finished_offramp_id_and_amount_pays_it_out() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("4800.24"), 100))
        .with_tx(debit(
            "D1",
            &format!("Payout {RAMP}/CryptoPocket"),
            eur("4800.24"),
            90,
        ))
        .decide();
    assert_eq!(d.paid_out.len(), 1);
    assert_eq!(d.paid_out[0].offramp.as_str(), RAMP);
    assert_eq!(d.paid_out[0].transaction.as_str(), "D1");
    assert!(d.transactions.is_empty() && d.payouts.is_empty(), "{d:#?}");
}

#[test]
fn an_offramp_id_inside_a_longer_token_does_not_pay_it_out() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("10"), 100))
        .with_tx(debit("D1", &format!("x{RAMP}"), eur("10"), 90))
        .decide();
    assert!(d.paid_out.is_empty());
    assert_eq!(tx_finding(&d, "D1").reason, Reason::UnexplainedDebit);
    assert_eq!(d.payouts[0].reason, Reason::PayoutNotSeen);
}

#[test]
fn a_debit_of_another_amount_is_unexplained_and_the_payout_not_seen() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("10"), 5 * 24))
        .with_tx(debit("D1", RAMP, eur("10.01"), 90))
        .decide();
    assert!(d.paid_out.is_empty());
    assert_eq!(tx_finding(&d, "D1").reason, Reason::UnexplainedDebit);
    assert_eq!(
        d.payouts,
        [PayoutFinding {
            offramp: OfframpId::parse(RAMP).expect("ok"),
            reason: Reason::PayoutNotSeen,
            days_since_finished: 5,
        }]
    );
}

#[test]
fn a_debit_for_an_offramp_not_finished_is_unexplained() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "crypto_received", eur("10"), 100))
        .with_tx(debit("D1", RAMP, eur("10"), 90))
        .decide();
    assert!(d.paid_out.is_empty() && d.payouts.is_empty());
    assert_eq!(tx_finding(&d, "D1").reason, Reason::UnexplainedDebit);
}

#[test]
fn a_debit_without_any_offramp_id_is_unexplained() {
    let d = World::new()
        .with_tx(debit("D1", "bank fees", eur("2"), 1))
        .decide();
    let f = tx_finding(&d, "D1");
    assert_eq!(f.reason, Reason::UnexplainedDebit);
    assert!(f.candidates.is_empty() && f.suggested.is_empty());
}

#[test]
fn a_double_payout_leaves_the_later_debit_unexplained() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("10"), 100))
        .with_tx(debit("D0-later", RAMP, eur("10"), 80))
        .with_tx(debit("D9-earlier", RAMP, eur("10"), 90))
        .decide();
    assert_eq!(d.paid_out.len(), 1);
    assert_eq!(d.paid_out[0].transaction.as_str(), "D9-earlier");
    assert_eq!(tx_finding(&d, "D0-later").reason, Reason::UnexplainedDebit);
    assert!(d.payouts.is_empty());
}

#[test]
fn one_debit_naming_two_offramps_pays_out_the_one_with_its_amount() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("10"), 100))
        .with_offramp(offramp(RAMP2, "finished", eur("20"), 100))
        .with_tx(debit("D1", &format!("{RAMP} {RAMP2}"), eur("20"), 90))
        .decide();
    assert_eq!(d.paid_out.len(), 1);
    assert_eq!(d.paid_out[0].offramp.as_str(), RAMP2);
    assert_eq!(d.payouts.len(), 1);
    assert_eq!(d.payouts[0].offramp.as_str(), RAMP);
}

#[test]
fn a_debit_is_considered_even_when_marked_reconciled() {
    let mut world = World::new().with_tx(debit("D1", "fees", eur("2"), 1));
    world.transactions[0].reconciled_payment_id = Some(PaymentId::parse("PX").expect("ok"));
    let d = world.decide();
    assert_eq!(tx_finding(&d, "D1").reason, Reason::UnexplainedDebit);
}

#[test]
fn a_finished_offramp_without_a_debit_within_grace_is_not_reported() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("10"), 3 * 24))
        .decide();
    assert!(
        d.payouts.is_empty(),
        "exactly at the grace limit is still within it"
    );
}

#[test]
fn a_finished_offramp_without_a_debit_past_grace_is_payout_not_seen() {
    let d = World::new()
        .with_offramp(offramp(RAMP, "finished", eur("10"), 3 * 24 + 1))
        .with_offramp(offramp(RAMP2, "pending", eur("10"), 30 * 24))
        .decide();
    assert_eq!(d.payouts.len(), 1);
    assert_eq!(d.payouts[0].offramp.as_str(), RAMP);
    assert_eq!(d.payouts[0].days_since_finished, 3);
}
