//! §4, second table, last row: a debit sending back a reconciled payment's money.

use proptest::prelude::*;

use super::*;

const CREDIT: &str = "AY0ZKd23nGbnTDcC7aSc";

/// Payment P1 (concept 120037, 150.50 EUR), reconciled by this job with CREDIT.
fn reconciled_world() -> World {
    let mut w = World::new();
    w.reconciled.push(ReconciledPair {
        payment: PaymentId::parse("P1").expect("ok"),
        transaction: BankTxId::parse(CREDIT).expect("ok"),
        concept: Some(Concept::parse("120037").expect("ok")),
        amount: eur("150.50"),
    });
    w
}

#[test]
fn a_debit_with_a_reconciled_concept_and_the_same_amount_is_returned_after_reconcile() {
    let d = reconciled_world()
        .with_tx(debit("D1", "Devolución 120037", eur("150.5"), 1))
        .decide();
    let f = tx_finding(&d, "D1");
    assert_eq!(f.reason, Reason::ReturnedAfterReconcile);
    assert_eq!(pay_ids(&f.candidates), ["P1"]);
    let detail = f.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("P1") && detail.contains(CREDIT) && detail.contains("150.50 EUR"),
        "{detail}"
    );
    assert_eq!(
        Reason::ReturnedAfterReconcile.as_str(),
        "returned_after_reconcile"
    );
}

#[test]
fn a_debit_naming_the_reconciled_credit_id_is_returned_after_reconcile() {
    let d = reconciled_world()
        .with_tx(debit(
            "D1",
            &format!("Return of {CREDIT}."),
            eur("150.50"),
            1,
        ))
        .decide();
    assert_eq!(tx_finding(&d, "D1").reason, Reason::ReturnedAfterReconcile);
}

#[test]
fn the_concept_follows_the_credit_digit_rules() {
    for text in [
        "1200371",
        "9120037",
        "0120037",
        "٣120037",
        "120037１",
        "ref 12003",
    ] {
        let d = reconciled_world()
            .with_tx(debit("D1", text, eur("150.50"), 1))
            .decide();
        assert_eq!(
            tx_finding(&d, "D1").reason,
            Reason::UnexplainedDebit,
            "{text:?}"
        );
    }
    for text in [
        "120037/2",
        "concepto:120037.",
        "x120037y",
        "Ref 120037 J. Doe",
    ] {
        let d = reconciled_world()
            .with_tx(debit("D1", text, eur("150.50"), 1))
            .decide();
        assert_eq!(
            tx_finding(&d, "D1").reason,
            Reason::ReturnedAfterReconcile,
            "{text:?}"
        );
    }
}

#[test]
fn a_credit_id_inside_a_longer_token_is_not_a_return() {
    let d = reconciled_world()
        .with_tx(debit("D1", &format!("x{CREDIT}"), eur("150.50"), 1))
        .decide();
    assert_eq!(tx_finding(&d, "D1").reason, Reason::UnexplainedDebit);
}

#[test]
fn another_amount_or_currency_is_not_a_return() {
    let d = reconciled_world()
        .with_tx(debit("D1", "120037", eur("150.49"), 1))
        .with_tx(debit("D2", "120037", money("150.50", "USD"), 1))
        .decide();
    assert_eq!(tx_finding(&d, "D1").reason, Reason::UnexplainedDebit);
    assert_eq!(tx_finding(&d, "D2").reason, Reason::UnexplainedDebit);
}

#[test]
fn an_offramp_payout_never_explains_a_return_away() {
    let d = reconciled_world()
        .with_offramp(offramp(RAMP, "finished", eur("150.50"), 5 * 24))
        .with_tx(debit("D1", &format!("{RAMP} 120037"), eur("150.50"), 1))
        .decide();
    assert_eq!(tx_finding(&d, "D1").reason, Reason::ReturnedAfterReconcile);
    assert!(d.paid_out.is_empty(), "{d:#?}");
    assert_eq!(d.payouts.len(), 1, "the off-ramp's payout is still missing");
    assert_eq!(d.payouts[0].reason, Reason::PayoutNotSeen);
}

#[test]
fn a_credit_with_a_reconciled_concept_is_not_a_return() {
    let d = reconciled_world()
        .with_tx(credit("T9", "120037", eur("150.50"), 1))
        .decide();
    assert_eq!(tx_finding(&d, "T9").reason, Reason::NoConcept);
}

#[test]
fn a_debit_returning_two_reconciled_payments_lists_both_once() {
    let mut w = reconciled_world();
    w.reconciled.push(ReconciledPair {
        payment: PaymentId::parse("P2").expect("ok"),
        transaction: BankTxId::parse("T2").expect("ok"),
        concept: Some(Concept::parse("555").expect("ok")),
        amount: eur("150.50"),
    });
    let d = w
        .with_tx(debit(
            "D1",
            &format!("120037 555 120037 {CREDIT}"),
            eur("150.50"),
            1,
        ))
        .decide();
    let f = tx_finding(&d, "D1");
    assert_eq!(f.reason, Reason::ReturnedAfterReconcile);
    assert_eq!(pay_ids(&f.candidates), ["P1", "P2"]);
    assert_eq!(d.transactions.len(), 1);
}

/// The rule read literally over characters: the concept occurs with no numeric
/// character right before or after it.
fn carries_concept(text: &str, concept: &str) -> bool {
    text.match_indices(concept).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + concept.len()..].chars().next();
        !before.is_some_and(char::is_numeric) && !after.is_some_and(char::is_numeric)
    })
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("120037".to_owned()),
        Just("0".to_owned()),
        Just("7".to_owned()),
        Just("٣".to_owned()),
        Just("１".to_owned()),
        Just(" ".to_owned()),
        Just("/".to_owned()),
        Just("x".to_owned()),
        Just("é".to_owned()),
        Just(RAMP.to_owned()),
        Just(CREDIT.to_owned()),
    ]
}

proptest! {
    /// Whatever surrounds the concept or the credit id, a debit of the pair's money is a
    /// return exactly when the text carries either by the rules, and every debit is
    /// reported or paid out exactly once.
    #[test]
    fn a_debit_is_a_return_exactly_when_its_text_carries_the_pair(
        pieces in proptest::collection::vec(piece(), 0..6),
        same_amount in any::<bool>(),
    ) {
        let text: String = pieces.concat();
        let amount = if same_amount { eur("150.50") } else { eur("150.51") };
        let d = reconciled_world()
            .with_offramp(offramp(RAMP, "finished", eur("150.50"), 1))
            .with_tx(debit("D1", &text, amount, 1))
            .decide();
        let credit_token = text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|t| t == CREDIT);
        let expected = same_amount && (carries_concept(&text, "120037") || credit_token);
        let found = d.transactions.iter().filter(|f| f.transaction.as_str() == "D1").count();
        prop_assert_eq!(found + d.paid_out.len(), 1, "{:#?}", d);
        let returned = d
            .transactions
            .iter()
            .any(|f| f.reason == Reason::ReturnedAfterReconcile);
        prop_assert_eq!(returned, expected, "{:?}", text);
    }
}
