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

#[derive(Default)]
struct World {
    payments: Vec<Payment>,
    transactions: Vec<BankTransaction>,
    offramps: Vec<Offramp>,
    tied_payments: HashSet<PaymentId>,
    tied_transactions: HashSet<BankTxId>,
    in_doubt_payments: HashSet<PaymentId>,
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

// ---------------------------------------------------------------------------------------
// §2: reading a concept out of free text.

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

// ---------------------------------------------------------------------------------------
// §3: confident matches.

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

// ---------------------------------------------------------------------------------------
// §4: everything else.

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

// §4, second table: debits and off-ramps.

const RAMP: &str = "A1b2C3d4E5f6G7h8I9j0K1l2M";
const RAMP2: &str = "Z9y8X7w6V5u4T3s2R1q0P9o8N";

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

// ---------------------------------------------------------------------------------------
// Whole-answer properties that concern the shape of the output.

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
