//! Properties of `matching::decide` over random payments and bank transactions, checked
//! against a naive O(n²) reading of rules §2–§3 written independently of the core.
//!
//! The concept space is tiny and full of prefixes of one another (`12`, `120`, `1200`…),
//! amounts and currencies come from a handful of values, and times straddle the
//! tolerance and look-back limits, so collisions, ambiguity and every reason show up.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use cp_recon::domain::{
    BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Payment, PaymentId,
    PaymentStatus,
};
use cp_recon::matching::{Decisions, MatchInput, MatchParams, Reason, decide};

const CONCEPTS: &[&str] = &["7", "12", "120", "1200", "120037", "0120037", "77"];
const CENTS: &[i64] = &[100, 250, 1000];
const UNITS: &[&str] = &["1", "2.5", "2.50", "10", "10.01"];

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .expect("valid literal")
        .with_timezone(&Utc)
}

fn currency(usd: bool) -> Currency {
    Currency::parse(if usd { "USD" } else { "EUR" }).expect("valid literal")
}

/// Hours before `now`: mostly recent, some around the 90-day look-back edge.
fn hours_ago() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -2i64..80, 1 => 2150i64..2170]
}

#[derive(Debug, Clone)]
struct PaymentSpec {
    concept: Option<usize>,
    cents: usize,
    usd: bool,
    hours_ago: i64,
    status: usize,
    tied: bool,
}

fn payment_spec() -> impl Strategy<Value = PaymentSpec> {
    (
        prop::option::weighted(0.95, 0..CONCEPTS.len()),
        0..CENTS.len(),
        prop::bool::weighted(0.2),
        hours_ago(),
        prop_oneof![8 => Just(0usize), 1 => 1usize..4],
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(concept, cents, usd, hours_ago, status, tied)| PaymentSpec {
                concept,
                cents,
                usd,
                hours_ago,
                status,
                tied,
            },
        )
}

/// One piece of remittance text.
#[derive(Debug, Clone)]
enum Piece {
    Concept(usize),
    DigitBefore(usize, char),
    DigitAfter(usize, char),
    Word(&'static str),
}

/// A digit next to a concept: ASCII, or of another script (Arabic-Indic, full-width,
/// superscript).
fn digit() -> impl Strategy<Value = char> {
    prop::sample::select(vec!['9', '1', '٣', '１', '²'])
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (0..CONCEPTS.len()).prop_map(Piece::Concept),
        1 => (0..CONCEPTS.len(), digit()).prop_map(|(c, d)| Piece::DigitBefore(c, d)),
        1 => (0..CONCEPTS.len(), digit()).prop_map(|(c, d)| Piece::DigitAfter(c, d)),
        2 => prop::sample::select(vec!["Ref", "J. Doe", "señor", "/", "nº", "x"]).prop_map(Piece::Word),
    ]
}

#[derive(Debug, Clone)]
struct TxSpec {
    pieces: Vec<(Piece, &'static str)>,
    units: usize,
    usd: bool,
    hours_ago: i64,
    debit: bool,
    reconciled_remotely: bool,
    tied: bool,
}

fn tx_spec() -> impl Strategy<Value = TxSpec> {
    (
        prop::collection::vec(
            (
                piece(),
                prop::sample::select(vec![" ", "/", ":", "", "—", "."]),
            ),
            0..4,
        ),
        0..UNITS.len(),
        prop::bool::weighted(0.2),
        hours_ago(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(pieces, units, usd, hours_ago, debit, reconciled_remotely, tied)| TxSpec {
                pieces,
                units,
                usd,
                hours_ago,
                debit,
                reconciled_remotely,
                tied,
            },
        )
}

#[derive(Debug, Clone)]
struct World {
    payments: Vec<Payment>,
    transactions: Vec<BankTransaction>,
    tied_payments: HashSet<PaymentId>,
    tied_transactions: HashSet<BankTxId>,
    /// Payments whose call is in doubt: open competitors, never confident.
    in_doubt: HashSet<PaymentId>,
    sync_complete: bool,
}

fn build(payments: &[PaymentSpec], txs: &[TxSpec], sync_complete: bool) -> World {
    let mut world = World {
        payments: Vec::new(),
        transactions: Vec::new(),
        tied_payments: HashSet::new(),
        tied_transactions: HashSet::new(),
        in_doubt: HashSet::new(),
        sync_complete,
    };
    for (i, s) in payments.iter().enumerate() {
        let id = PaymentId::parse(format!("P{i:03}")).expect("non-empty");
        if s.tied {
            world.tied_payments.insert(id.clone());
        }
        let status = ["pending_bank", "started", "coins_sent", "payment_rejected"][s.status];
        world.payments.push(Payment {
            id,
            external_id: None,
            user_id: None,
            status: PaymentStatus::parse(status),
            amount: Money::from_cents(Decimal::from(CENTS[s.cents]), currency(s.usd))
                .expect("whole cents"),
            payment_type: None,
            concept: s
                .concept
                .map(|c| Concept::parse(CONCEPTS[c]).expect("digits")),
            created_at: now() - Duration::hours(s.hours_ago),
            updated_at: None,
        });
    }
    for (i, s) in txs.iter().enumerate() {
        let id = BankTxId::parse(format!("T{i:03}")).expect("non-empty");
        if s.tied {
            world.tied_transactions.insert(id.clone());
        }
        let mut text = String::new();
        for (piece, sep) in &s.pieces {
            match piece {
                Piece::Concept(c) => text.push_str(CONCEPTS[*c]),
                Piece::DigitBefore(c, d) => {
                    text.push(*d);
                    text.push_str(CONCEPTS[*c]);
                }
                Piece::DigitAfter(c, d) => {
                    text.push_str(CONCEPTS[*c]);
                    text.push(*d);
                }
                Piece::Word(w) => text.push_str(w),
            }
            text.push_str(sep);
        }
        world.transactions.push(BankTransaction {
            id,
            iban: Iban::parse("ES9121000418450200051332").expect("valid literal"),
            amount: Money::from_units(
                Decimal::from_str(UNITS[s.units]).expect("valid literal"),
                currency(s.usd),
            ),
            direction: if s.debit {
                Direction::Debit
            } else {
                Direction::Credit
            },
            concept_text: text,
            counterparty_name: None,
            counterparty_iban: None,
            booked_at: now() - Duration::hours(s.hours_ago),
            value_date: None,
            reconciled_payment_id: s
                .reconciled_remotely
                .then(|| PaymentId::parse("PREMOTE").expect("non-empty")),
        });
    }
    world
}

fn run(world: &World) -> Decisions {
    decide(&MatchInput {
        payments: &world.payments,
        transactions: &world.transactions,
        offramps: &[],
        tied_payments: &world.tied_payments,
        tied_transactions: &world.tied_transactions,
        in_doubt_payments: &world.in_doubt,
        reconciled: &[],
        sync_complete: world.sync_complete,
        now: now(),
        params: MatchParams::default(),
    })
}

// ---------------------------------------------------------------------------------------
// The naive oracle: rules §1–§3 read literally, pair by pair.

fn is_open_payment(w: &World, p: &Payment) -> bool {
    p.status == PaymentStatus::PendingBank && !w.tied_payments.contains(&p.id)
}

fn is_open_credit(w: &World, t: &BankTransaction) -> bool {
    t.direction == Direction::Credit
        && t.reconciled_payment_id.is_none()
        && !w.tied_transactions.contains(&t.id)
}

/// §2: the digit string occurs with no digit of any script right before or after it
/// (`char::is_numeric`, as the core reads "digit").
fn appears(concept: &str, text: &str) -> bool {
    text.match_indices(concept).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + concept.len()..].chars().next();
        !before.is_some_and(char::is_numeric) && !after.is_some_and(char::is_numeric)
    })
}

fn concept_in(p: &Payment, t: &BankTransaction) -> bool {
    p.concept
        .as_ref()
        .is_some_and(|c| appears(c.as_str(), &t.concept_text))
}

/// §3.1–§3.3.
fn fits(p: &Payment, t: &BankTransaction) -> bool {
    let params = MatchParams::default();
    concept_in(p, t)
        && p.amount.same_as(&t.amount)
        && t.booked_at >= p.created_at - params.booking_tolerance
        && p.created_at >= now() - params.lookback
}

fn open_payments(w: &World) -> Vec<&Payment> {
    w.payments
        .iter()
        .filter(|p| is_open_payment(w, p))
        .collect()
}

fn open_credits(w: &World) -> Vec<&BankTransaction> {
    w.transactions
        .iter()
        .filter(|t| is_open_credit(w, t))
        .collect()
}

/// §3.1–§3.5 for one pair.
fn confident(w: &World, p: &Payment, t: &BankTransaction) -> bool {
    let payments = open_payments(w);
    let credits = open_credits(w);
    w.sync_complete
        && !w.in_doubt.contains(&p.id)
        && is_open_payment(w, p)
        && is_open_credit(w, t)
        && fits(p, t)
        && payments.iter().all(|q| q.id == p.id || !concept_in(q, t))
        && credits.iter().all(|u| u.id == t.id || !fits(p, u))
        && payments.iter().all(|q| q.id == p.id || !fits(q, t))
}

fn oracle(w: &World) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for p in open_payments(w) {
        for t in open_credits(w) {
            if confident(w, p, t) {
                out.insert((p.id.to_string(), t.id.to_string()));
            }
        }
    }
    out
}

fn reconciled(d: &Decisions) -> BTreeSet<(String, String)> {
    d.reconcile
        .iter()
        .map(|c| (c.payment.to_string(), c.transaction.to_string()))
        .collect()
}

fn payment_reason(d: &Decisions, id: &PaymentId) -> Option<Reason> {
    d.payments
        .iter()
        .find(|f| &f.payment == id)
        .map(|f| f.reason)
}

fn tx_reason(d: &Decisions, id: &BankTxId) -> Option<Reason> {
    d.transactions
        .iter()
        .find(|f| &f.transaction == id)
        .map(|f| f.reason)
}

fn worlds() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(payment_spec(), 0..12),
        prop::collection::vec(tx_spec(), 0..12),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(p, t, sync)| build(&p, &t, sync))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn no_payment_and_no_transaction_is_reconciled_twice(w in worlds()) {
        let d = run(&w);
        let payments: BTreeSet<_> = d.reconcile.iter().map(|c| &c.payment).collect();
        let txs: BTreeSet<_> = d.reconcile.iter().map(|c| &c.transaction).collect();
        prop_assert_eq!(payments.len(), d.reconcile.len());
        prop_assert_eq!(txs.len(), d.reconcile.len());
    }

    #[test]
    fn every_reconcile_decision_satisfies_all_conditions(w in worlds()) {
        let d = run(&w);
        for pair in &d.reconcile {
            let p = w.payments.iter().find(|p| p.id == pair.payment).expect("known payment");
            let t = w.transactions.iter().find(|t| t.id == pair.transaction).expect("known tx");
            prop_assert!(confident(&w, p, t), "{:?} is not confident", pair);
        }
    }

    #[test]
    fn the_naive_oracle_agrees_exactly_with_decide(w in worlds()) {
        prop_assert_eq!(reconciled(&run(&w)), oracle(&w));
    }

    #[test]
    fn every_open_item_gets_exactly_one_outcome(w in worlds()) {
        let d = run(&w);
        let mut payments: BTreeMap<String, usize> = BTreeMap::new();
        let mut txs: BTreeMap<String, usize> = BTreeMap::new();
        for c in &d.reconcile {
            *payments.entry(c.payment.to_string()).or_default() += 1;
            *txs.entry(c.transaction.to_string()).or_default() += 1;
        }
        for f in &d.payments {
            *payments.entry(f.payment.to_string()).or_default() += 1;
        }
        for f in &d.transactions {
            *txs.entry(f.transaction.to_string()).or_default() += 1;
        }
        for p in &w.payments {
            let expected = usize::from(is_open_payment(&w, p));
            prop_assert_eq!(payments.get(p.id.as_str()).copied().unwrap_or(0), expected, "{}", p.id);
        }
        for t in &w.transactions {
            // Every debit is either unexplained or pays out an off-ramp (none here).
            let expected = usize::from(is_open_credit(&w, t) || t.direction == Direction::Debit);
            prop_assert_eq!(txs.get(t.id.as_str()).copied().unwrap_or(0), expected, "{}", t.id);
        }
    }

    #[test]
    fn every_list_comes_out_sorted_by_id(w in worlds()) {
        let d = run(&w);
        prop_assert!(d.reconcile.windows(2).all(|x| x[0].payment < x[1].payment));
        prop_assert!(d.payments.windows(2).all(|x| x[0].payment < x[1].payment));
        prop_assert!(d.transactions.windows(2).all(|x| x[0].transaction < x[1].transaction));
        for f in &d.payments {
            prop_assert!(f.candidates.windows(2).all(|x| x[0] < x[1]));
        }
        for f in &d.transactions {
            prop_assert!(f.candidates.windows(2).all(|x| x[0] < x[1]));
            prop_assert!(f.suggested.windows(2).all(|x| x[0] < x[1]));
            prop_assert!(f.suggested.len() <= 5);
        }
    }

    #[test]
    fn a_second_fitting_credit_makes_a_confident_pair_ambiguous(w in worlds()) {
        let d = run(&w);
        for pair in &d.reconcile {
            let p = w.payments.iter().find(|p| p.id == pair.payment).expect("known payment");
            let concept = p.concept.as_ref().expect("a matched payment has a concept");
            let mut more = w.clone();
            let extra = BankTxId::parse("TEXTRA").expect("non-empty");
            more.transactions.push(BankTransaction {
                id: extra.clone(),
                iban: Iban::parse("ES9121000418450200051332").expect("valid literal"),
                amount: p.amount.clone(),
                direction: Direction::Credit,
                concept_text: format!("again {concept}"),
                counterparty_name: None,
                counterparty_iban: None,
                booked_at: p.created_at + Duration::hours(1),
                value_date: None,
                reconciled_payment_id: None,
            });
            let d2 = run(&more);
            prop_assert!(!d2.reconcile.iter().any(|c| c.payment == pair.payment));
            prop_assert_eq!(payment_reason(&d2, &pair.payment), Some(Reason::Ambiguous));
            prop_assert_eq!(tx_reason(&d2, &pair.transaction), Some(Reason::Ambiguous));
            prop_assert_eq!(tx_reason(&d2, &extra), Some(Reason::Ambiguous));
        }
    }

    #[test]
    fn a_second_fitting_payment_makes_a_confident_pair_ambiguous(w in worlds()) {
        let d = run(&w);
        for pair in &d.reconcile {
            let p = w.payments.iter().find(|p| p.id == pair.payment).expect("known payment");
            let mut more = w.clone();
            let extra = PaymentId::parse("PEXTRA").expect("non-empty");
            more.payments.push(Payment { id: extra.clone(), ..p.clone() });
            let d2 = run(&more);
            prop_assert!(!d2.reconcile.iter().any(|c| c.transaction == pair.transaction));
            prop_assert_eq!(payment_reason(&d2, &pair.payment), Some(Reason::Ambiguous));
            prop_assert_eq!(payment_reason(&d2, &extra), Some(Reason::Ambiguous));
            prop_assert_eq!(tx_reason(&d2, &pair.transaction), Some(Reason::Ambiguous));
        }
    }

    #[test]
    fn both_sides_of_a_unique_failing_pair_share_the_reason(w in worlds()) {
        let d = run(&w);
        for f in &d.payments {
            if let [t] = f.candidates.as_slice()
                && f.reason != Reason::Ambiguous
            {
                let tf = d.transactions.iter().find(|x| &x.transaction == t).expect("reported");
                prop_assert_eq!(tf.reason, f.reason);
                prop_assert_eq!(tf.difference, f.difference);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Worlds built around confident pairs, so that the properties above run on the cases
// they are about: random worlds rarely hold one confident pair, almost never two.

/// What is done to a clean pair (payment + its exact credit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Twist {
    /// Nothing: confident.
    Clean,
    /// A second credit that fits the payment too (a customer who paid twice).
    TwinCredit,
    /// A second open payment with the same concept and amount.
    TwinPayment,
    /// The credit's text names another open payment's concept as well.
    SharedText,
    /// Booked exactly at the tolerance's edge (still confident).
    EdgeOfTolerance,
    /// Booked one second before the tolerance's edge (too early).
    PastTolerance,
    /// Created exactly at the look-back's edge (still confident).
    EdgeOfLookback,
    /// Created one second before the look-back's edge (outside).
    PastLookback,
    /// Another payment naming the same credit is in doubt.
    InDoubtCompetitor,
    /// A digit of another script right after the concept.
    ForeignDigit,
}

const TWISTS: [Twist; 10] = [
    Twist::Clean,
    Twist::TwinCredit,
    Twist::TwinPayment,
    Twist::SharedText,
    Twist::EdgeOfTolerance,
    Twist::PastTolerance,
    Twist::EdgeOfLookback,
    Twist::PastLookback,
    Twist::InDoubtCompetitor,
    Twist::ForeignDigit,
];

/// One to five pairs with distinct concepts, each given a twist; the world records
/// which twists it holds.
fn pair_worlds() -> impl Strategy<Value = (World, Vec<Twist>)> {
    prop::collection::vec((0..TWISTS.len(), 0..CENTS.len(), 1i64..2000), 1..6).prop_map(|pairs| {
        let mut w = build(&[], &[], true);
        let eur = || currency(false);
        let mut twists = Vec::new();
        let params = MatchParams::default();
        for (i, (twist, cents, hours)) in pairs.into_iter().enumerate() {
            let twist = TWISTS[twist];
            twists.push(twist);
            let concept = format!("{}", 310_000 + i * 10);
            let money = Money::from_cents(Decimal::from(CENTS[cents]), eur()).expect("cents");
            let mut created = now() - Duration::hours(hours);
            match twist {
                Twist::EdgeOfLookback => created = now() - params.lookback,
                Twist::PastLookback => created = now() - params.lookback - Duration::seconds(1),
                _ => {}
            }
            let booked = match twist {
                Twist::EdgeOfTolerance => created - params.booking_tolerance,
                Twist::PastTolerance => created - params.booking_tolerance - Duration::seconds(1),
                _ => created + Duration::minutes(30),
            };
            let payment = |id: String, concept: &str| Payment {
                id: PaymentId::parse(id).expect("id"),
                external_id: None,
                user_id: None,
                status: PaymentStatus::PendingBank,
                amount: money.clone(),
                payment_type: None,
                concept: Some(Concept::parse(concept).expect("digits")),
                created_at: created,
                updated_at: None,
            };
            let credit = |id: String, text: String| BankTransaction {
                id: BankTxId::parse(id).expect("id"),
                iban: Iban::parse("ES9121000418450200051332").expect("valid literal"),
                amount: money.clone(),
                direction: Direction::Credit,
                concept_text: text,
                counterparty_name: None,
                counterparty_iban: None,
                booked_at: booked,
                value_date: None,
                reconciled_payment_id: None,
            };
            w.payments.push(payment(format!("P{i}"), &concept));
            let text = match twist {
                Twist::SharedText => format!("Ref {concept} y {}", 310_000 + i * 10 + 1),
                Twist::ForeignDigit => format!("Ref {concept}١"),
                _ => format!("Ref {concept}"),
            };
            w.transactions.push(credit(format!("T{i}"), text));
            match twist {
                Twist::TwinCredit => {
                    w.transactions
                        .push(credit(format!("T{i}b"), format!("concepto:{concept}.")));
                }
                Twist::TwinPayment => w.payments.push(payment(format!("P{i}b"), &concept)),
                Twist::SharedText => w.payments.push(payment(
                    format!("P{i}s"),
                    &format!("{}", 310_000 + i * 10 + 1),
                )),
                Twist::InDoubtCompetitor => {
                    w.payments.push(payment(format!("P{i}d"), &concept));
                    w.in_doubt
                        .insert(PaymentId::parse(format!("P{i}d")).expect("id"));
                }
                _ => {}
            }
        }
        (w, twists)
    })
}

#[test]
fn worlds_built_around_confident_pairs_agree_with_the_oracle_in_every_twist() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 2048,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(BTreeMap::<Twist, usize>::new());
    let confident_pairs = std::cell::Cell::new(0usize);
    let several = std::cell::Cell::new(0usize);
    runner
        .run(&pair_worlds(), |(w, twists)| {
            let d = run(&w);
            let got = reconciled(&d);
            prop_assert_eq!(&got, &oracle(&w));
            let payments: BTreeSet<_> = d.reconcile.iter().map(|c| &c.payment).collect();
            let txs: BTreeSet<_> = d.reconcile.iter().map(|c| &c.transaction).collect();
            prop_assert_eq!(payments.len(), d.reconcile.len());
            prop_assert_eq!(txs.len(), d.reconcile.len());
            // Each twist decides its own pair, whatever the others do.
            for (i, t) in twists.iter().enumerate() {
                let pair = (format!("P{i}"), format!("T{i}"));
                let want = matches!(
                    t,
                    Twist::Clean | Twist::EdgeOfTolerance | Twist::EdgeOfLookback
                );
                prop_assert_eq!(got.contains(&pair), want, "{:?}: {:?}", t, d);
            }
            for t in &twists {
                *seen.borrow_mut().entry(*t).or_default() += 1;
            }
            confident_pairs.set(confident_pairs.get() + got.len());
            if got.len() >= 2 {
                several.set(several.get() + 1);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner();
    eprintln!(
        "pair worlds: {} confident pairs, {} worlds with two or more; twists {seen:?}",
        confident_pairs.get(),
        several.get()
    );
    for t in TWISTS {
        assert!(
            seen.get(&t).copied().unwrap_or(0) >= 200,
            "{t:?} ran too rarely: {seen:?}"
        );
    }
    assert!(
        several.get() >= 300,
        "{} worlds with two confident pairs",
        several.get()
    );
}
