//! §2: reading a concept out of free text.

use super::*;

#[test]
fn a_text_that_is_exactly_the_concept_matches() {
    let d = pair_with_text("120037").decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
    assert!(d.payments.is_empty() && d.transactions.is_empty(), "{d:#?}");
}

#[test]
fn a_concept_surrounded_by_words_and_punctuation_matches() {
    for text in [
        "Ref 120037 J. Doe",
        "concepto:120037.",
        "120037/2",
        "(120037)",
        "ref120037x",
    ] {
        let d = pair_with_text(text).decide();
        assert_reconciled_only(&d, &[("P1", "T1")]);
    }
}

#[test]
fn a_concept_followed_by_a_digit_does_not_match() {
    let d = pair_with_text("1200371").decide();
    assert!(d.reconcile.is_empty());
    assert_eq!(payment_finding(&d, "P1").reason, Reason::AwaitingTransfer);
    assert_eq!(tx_finding(&d, "T1").reason, Reason::NoConcept);
}

#[test]
fn a_concept_preceded_by_a_digit_does_not_match() {
    let d = pair_with_text("9120037").decide();
    assert!(d.reconcile.is_empty());
    assert_eq!(payment_finding(&d, "P1").reason, Reason::AwaitingTransfer);
    assert_eq!(tx_finding(&d, "T1").reason, Reason::NoConcept);
}

#[test]
fn a_leading_zero_in_the_text_is_not_stripped() {
    let d = pair_with_text("ref 0120037").decide();
    assert!(d.reconcile.is_empty());
    assert_eq!(payment_finding(&d, "P1").reason, Reason::AwaitingTransfer);
    assert_eq!(tx_finding(&d, "T1").reason, Reason::NoConcept);
}

#[test]
fn a_concept_with_a_leading_zero_needs_the_zero_in_the_text() {
    let world = |text: &str| {
        World::new()
            .with_payment(payment("P1", "0120037", eur("10"), 2))
            .with_tx(credit("T1", text, eur("10"), 1))
    };
    assert!(world("120037").decide().reconcile.is_empty());
    assert_reconciled_only(&world("x0120037").decide(), &[("P1", "T1")]);
}

#[test]
fn non_ascii_text_around_a_concept_is_read_byte_safely() {
    let d = pair_with_text("Transferencia nº120037 — señor Müller €").decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
}

#[test]
fn digits_of_other_scripts_do_not_form_the_concept() {
    // Full-width and Arabic-Indic digits are not the concept's ASCII digits.
    for text in ["１２００３７", "١٢٠٠٣٧"] {
        assert_reconciled_only(&pair_with_text(text).decide(), &[]);
    }
}

#[test]
fn a_digit_of_another_script_right_before_or_after_the_concept_breaks_the_match() {
    // Arabic-Indic three before, full-width one after: §2 reads them as digits.
    for text in [
        "Ref ٣120037",
        "120037１",
        "١120037١",
        "Ref ٣120037 J. Doe",
        "x120037٣y",
        "120037² ",
    ] {
        let d = pair_with_text(text).decide();
        assert!(d.reconcile.is_empty(), "{text}: {d:#?}");
        assert_eq!(
            payment_finding(&d, "P1").reason,
            Reason::AwaitingTransfer,
            "{text}"
        );
        assert_eq!(tx_finding(&d, "T1").reason, Reason::NoConcept, "{text}");
    }
}

#[test]
fn a_digit_of_another_script_apart_from_the_concept_does_not_break_the_match() {
    for text in [
        "Ref 120037 ٣",
        "٣ 120037",
        "１２ 120037 ３４",
        "120037/٣",
        "٣120037١ ref 120037",
    ] {
        assert_reconciled_only(&pair_with_text(text).decide(), &[("P1", "T1")]);
    }
}

/// Every character `char::is_numeric` holds, ASCII digits included.
fn numeric_chars() -> Vec<char> {
    (0..=u32::from(char::MAX))
        .filter_map(char::from_u32)
        .filter(|c| c.is_numeric())
        .collect()
}

proptest::proptest! {
    #[test]
    fn any_numeric_character_right_before_or_after_the_concept_prevents_the_match(
        digit in proptest::sample::select(numeric_chars()),
        after in proptest::bool::ANY,
        head in "[a-zñ :/.]{0,3}",
        tail in "[a-zñ :/.]{0,3}",
    ) {
        let text = if after {
            format!("{head}120037{digit}{tail}")
        } else {
            format!("{head}{digit}120037{tail}")
        };
        let d = pair_with_text(&text).decide();
        proptest::prop_assert!(d.reconcile.is_empty(), "{text:?}");
        proptest::prop_assert_eq!(payment_finding(&d, "P1").reason, Reason::AwaitingTransfer);
        proptest::prop_assert_eq!(tx_finding(&d, "T1").reason, Reason::NoConcept);
    }
}

#[test]
fn a_concept_repeated_in_one_text_counts_once() {
    let d = pair_with_text("120037 / 120037 (ref 120037)").decide();
    assert_reconciled_only(&d, &[("P1", "T1")]);
}

#[test]
fn two_concepts_in_one_text_make_both_payments_and_the_credit_ambiguous() {
    let d = World::new()
        .with_payment(payment("P1", "120037", eur("150.50"), 2))
        .with_payment(payment("P2", "120038", eur("150.50"), 2))
        .with_tx(credit("T1", "120037 and 120038", eur("150.50"), 1))
        .decide();
    assert!(d.reconcile.is_empty());
    let t = tx_finding(&d, "T1");
    assert_eq!(t.reason, Reason::Ambiguous);
    assert_eq!(pay_ids(&t.candidates), ["P1", "P2"]);
    for p in ["P1", "P2"] {
        let f = payment_finding(&d, p);
        assert_eq!(f.reason, Reason::Ambiguous);
        assert_eq!(tx_ids(&f.candidates), ["T1"]);
    }
}
