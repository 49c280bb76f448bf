use super::*;
use crate::domain::{Concept, Currency, Iban, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

fn payment(status: PaymentStatus) -> Payment {
    Payment {
        id: PaymentId::parse("P1").unwrap(),
        external_id: None,
        user_id: None,
        status,
        amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
        payment_type: Some("transfer".into()),
        concept: Some(Concept::parse("120037").unwrap()),
        created_at: now(),
        updated_at: None,
    }
}

fn credit(tied: Option<&str>) -> BankTransaction {
    BankTransaction {
        id: BankTxId::parse("T1").unwrap(),
        iban: Iban::parse("ES9121000418450200051332").unwrap(),
        amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
        direction: Direction::Credit,
        concept_text: "Ref 120037".into(),
        counterparty_name: None,
        counterparty_iban: None,
        booked_at: now(),
        value_date: None,
        reconciled_payment_id: tied.map(|p| PaymentId::parse(p).unwrap()),
    }
}

fn ids() -> (PaymentId, BankTxId) {
    (
        PaymentId::parse("P1").unwrap(),
        BankTxId::parse("T1").unwrap(),
    )
}

fn fate(answer: Answer, p: Read<Payment>, t: Read<BankTransaction>) -> Fate {
    let (pid, tid) = ids();
    settle(&answer, (&pid, &tid), &p, &t)
}

use PaymentStatus::{PaymentReceived, PendingBank};

/// [`before_call`] for a pair the matching core found, when the narrow read of the
/// credit's instant returned the credit as read and nothing else.
fn check(
    matched: (&Payment, &BankTransaction),
    rp: &Read<Payment>,
    rt: &Read<BankTransaction>,
) -> Check {
    let records: Vec<BankTransaction> = match rt {
        Read::Found(t) => vec![t.clone()],
        _ => Vec::new(),
    };
    let narrow = NarrowRead {
        records: &records,
        held: &HashSet::new(),
    };
    before_call(
        matched,
        rp,
        rt,
        &narrow,
        Uniqueness::Matched(MatchParams::default()),
        now(),
    )
}

#[test]
fn an_applied_answer_is_a_reconcile_whatever_the_reads_say() {
    let f = fate(
        Answer::Applied(PaymentReceived),
        Read::Failed("down".into()),
        Read::Failed("down".into()),
    );
    assert!(matches!(f, Fate::Reconciled { how, .. } if how == "ok"));
}

#[test]
fn a_lost_answer_is_a_reconcile_only_when_the_credit_names_the_payment() {
    let f = fate(
        Answer::Lost("reset".into()),
        Read::Found(payment(PaymentReceived)),
        Read::Found(credit(Some("P1"))),
    );
    assert!(
        matches!(
            f,
            Fate::Reconciled {
                status: PaymentReceived,
                ..
            }
        ),
        "{f:?}"
    );
    // A person tied the payment to another transfer: ours was never applied.
    let f = fate(
        Answer::Lost("reset".into()),
        Read::Found(payment(PaymentReceived)),
        Read::Found(credit(None)),
    );
    assert_eq!(
        f,
        Fate::MovedOn {
            status: PaymentReceived
        }
    );
}

#[test]
fn a_lost_answer_with_the_payment_still_pending_stays_held_for_the_next_run() {
    let f = fate(
        Answer::Lost("timeout".into()),
        Read::Found(payment(PendingBank)),
        Read::Found(credit(None)),
    );
    assert!(matches!(f, Fate::Unknown { .. }), "{f:?}");
}

#[test]
fn a_later_run_that_finds_the_payment_pending_and_the_credit_open_releases_the_pair() {
    let f = fate(
        Answer::NoAnswer,
        Read::Found(payment(PendingBank)),
        Read::Found(credit(None)),
    );
    assert!(matches!(f, Fate::NotApplied { .. }), "{f:?}");
}

#[test]
fn a_failed_re_read_never_frees_the_pair() {
    for answer in [
        Answer::Lost("x".into()),
        Answer::NoAnswer,
        Answer::Refused("payment_not_pending".into()),
        Answer::NotProcessed("429".into()),
    ] {
        let f = fate(
            answer.clone(),
            Read::Failed("down".into()),
            Read::Found(credit(None)),
        );
        assert!(matches!(f, Fate::Unknown { .. }), "{answer:?}: {f:?}");
        let f = fate(
            answer.clone(),
            Read::Found(payment(PaymentReceived)),
            Read::Failed("down".into()),
        );
        assert!(matches!(f, Fate::Unknown { .. }), "{answer:?}: {f:?}");
    }
}

#[test]
fn a_payment_the_provider_no_longer_knows_has_vanished() {
    for answer in [
        Answer::NoAnswer,
        Answer::Refused("payment_not_found".into()),
    ] {
        let f = fate(answer, Read::Gone, Read::Found(credit(None)));
        assert_eq!(f, Fate::Vanished);
    }
}

#[test]
fn a_refusal_whose_payment_moved_on_is_moved_on_and_one_whose_payment_waits_is_failed() {
    let f = fate(
        Answer::Refused("payment_not_pending".into()),
        Read::Found(payment(PaymentReceived)),
        Read::Found(credit(None)),
    );
    assert_eq!(
        f,
        Fate::MovedOn {
            status: PaymentReceived
        }
    );
    let f = fate(
        Answer::Refused("amount_mismatch".into()),
        Read::Found(payment(PendingBank)),
        Read::Found(credit(None)),
    );
    assert_eq!(
        f,
        Fate::Failed {
            code: "amount_mismatch".into()
        }
    );
    let f = fate(
        Answer::Refused("transaction_already_reconciled".into()),
        Read::Found(payment(PendingBank)),
        Read::Found(credit(Some("P9"))),
    );
    assert_eq!(
        f,
        Fate::Failed {
            code: "transaction_already_reconciled".into()
        }
    );
}

#[test]
fn a_call_not_processed_is_made_again_only_while_both_sides_are_open() {
    let f = fate(
        Answer::NotProcessed("429".into()),
        Read::Found(payment(PendingBank)),
        Read::Found(credit(None)),
    );
    assert_eq!(f, Fate::CallAgain);
    let f = fate(
        Answer::NotProcessed("429".into()),
        Read::Found(payment(PaymentReceived)),
        Read::Found(credit(None)),
    );
    assert_eq!(
        f,
        Fate::MovedOn {
            status: PaymentReceived
        }
    );
}

#[test]
fn a_pair_is_called_only_when_both_fresh_reads_show_it_open_and_unchanged() {
    let (p, t) = (payment(PendingBank), credit(None));
    let call = |rp: Read<Payment>, rt: Read<BankTransaction>| check((&p, &t), &rp, &rt);
    assert_eq!(
        call(Read::Found(p.clone()), Read::Found(t.clone())),
        Check::Call
    );
    let moved = call(
        Read::Found(payment(PaymentReceived)),
        Read::Found(t.clone()),
    );
    assert!(matches!(
        moved,
        Check::DontCall {
            payment_open: false,
            credit_open: true,
            ..
        }
    ));
    let taken = call(Read::Found(p.clone()), Read::Found(credit(Some("P2"))));
    assert!(matches!(
        taken,
        Check::DontCall {
            payment_open: true,
            credit_open: false,
            ..
        }
    ));
    let gone = call(Read::Gone, Read::Found(t.clone()));
    assert!(matches!(gone, Check::DontCall { vanished: true, .. }));
    let unreadable = call(Read::Found(p.clone()), Read::Failed("down".into()));
    assert!(matches!(unreadable, Check::DontCall { .. }));
    let mut changed = t.clone();
    changed.amount = Money::from_units(Decimal::new(15051, 2), Currency::parse("EUR").unwrap());
    assert!(matches!(
        call(Read::Found(p.clone()), Read::Found(changed)),
        Check::DontCall { .. }
    ));
    let mut text = t.clone();
    text.concept_text = "Ref 120037 and 120038".into();
    assert!(matches!(
        call(Read::Found(p.clone()), Read::Found(text)),
        Check::DontCall { .. }
    ));
}

#[test]
fn the_recorded_fate_says_what_the_answer_was() {
    let read_failed = || Read::Failed("down".to_owned());
    let cases = [
        (Answer::Lost("timeout".into()), "lost: timeout"),
        (
            Answer::Refused("amount_mismatch".into()),
            "refused: amount_mismatch",
        ),
        (Answer::NotProcessed("429".into()), "not processed: 429"),
        (Answer::NoAnswer, "no answer recorded"),
    ];
    for (answer, said) in cases {
        match fate(answer, read_failed(), Read::Found(credit(None))) {
            Fate::Unknown { why } => assert!(why.starts_with(said), "{why}"),
            other => panic!("{said}: {other:?}"),
        }
    }
    match fate(
        Answer::Lost("reset".into()),
        Read::Found(payment(PaymentReceived)),
        Read::Found(credit(Some("P1"))),
    ) {
        Fate::Reconciled { how, .. } => assert!(how.starts_with("lost: reset; "), "{how}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tie_found_by_re_reading_keeps_the_payments_status_as_read() {
    match fate(
        Answer::NoAnswer,
        Read::Found(payment(PaymentStatus::CoinsSent)),
        Read::Found(credit(Some("P1"))),
    ) {
        Fate::Reconciled { status, .. } => assert_eq!(status, PaymentStatus::CoinsSent),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pending_payment_whose_credit_went_elsewhere_is_released_saying_so() {
    for answer in [
        Answer::NoAnswer,
        Answer::Lost("timeout".into()),
        Answer::NotProcessed("429".into()),
    ] {
        match fate(
            answer,
            Read::Found(payment(PendingBank)),
            Read::Found(credit(Some("P2"))),
        ) {
            Fate::NotApplied { why } => {
                assert!(why.ends_with("the credit is no longer open"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
    match fate(
        Answer::NoAnswer,
        Read::Found(payment(PendingBank)),
        Read::Found(credit(None)),
    ) {
        Fate::NotApplied { why } => assert!(why.ends_with("the credit open"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stale_pair_says_which_side_changed_and_an_unsent_call_is_skipped() {
    let (p, t) = (payment(PendingBank), credit(None));
    let mut p2 = p.clone();
    p2.amount = Money::from_units(Decimal::new(15051, 2), Currency::parse("EUR").unwrap());
    let mut t2 = t.clone();
    t2.booked_at = now() + chrono::Duration::seconds(1);
    let why = |rp: Payment, rt: BankTransaction| match check(
        (&p, &t),
        &Read::Found(rp),
        &Read::Found(rt),
    ) {
        Check::DontCall { why, .. } => why,
        other => panic!("{other:?}"),
    };
    let changed =
        |which: &str| format!("not called: {which} changed at the provider since the sync");
    assert_eq!(why(p2.clone(), t.clone()), changed("the payment"));
    assert_eq!(why(p.clone(), t2.clone()), changed("the credit"));
    assert_eq!(why(p2, t2), changed("the payment and the credit"));
    assert_eq!(
        fate(
            Answer::NotSent("run deadline".into()),
            Read::Found(payment(PendingBank)),
            Read::Found(credit(None))
        ),
        Fate::Skipped {
            why: "run deadline".into()
        }
    );
}

/// A named change to one fact of a record.
type Change<'a, T> = (&'static str, Box<dyn Fn(&mut T) + 'a>);

#[test]
fn a_change_to_any_one_fact_of_either_side_stops_the_call() {
    let (p, t) = (payment(PendingBank), credit(None));
    let eur = |cents| Money::from_units(Decimal::new(cents, 2), Currency::parse("EUR").unwrap());
    let later = now() + chrono::Duration::seconds(1);
    let payments: Vec<Change<'_, Payment>> = vec![
        ("amount", Box::new(|x| x.amount = eur(15051))),
        (
            "currency",
            Box::new(|x| {
                x.amount =
                    Money::from_units(Decimal::new(15050, 2), Currency::parse("USD").unwrap())
            }),
        ),
        (
            "concept",
            Box::new(|x| x.concept = Some(Concept::parse("120038").unwrap())),
        ),
        ("no concept", Box::new(|x| x.concept = None)),
        ("created_at", Box::new(move |x| x.created_at = later)),
        ("id", Box::new(|x| x.id = PaymentId::parse("P2").unwrap())),
    ];
    for (what, change) in &payments {
        let mut fresh = p.clone();
        change(&mut fresh);
        assert!(
            matches!(
                check((&p, &t), &Read::Found(fresh), &Read::Found(t.clone())),
                Check::DontCall {
                    payment_open: true,
                    credit_open: true,
                    ..
                }
            ),
            "payment {what} changed, yet the pair would be called"
        );
    }
    let credits: Vec<Change<'_, BankTransaction>> = vec![
        ("amount", Box::new(|x| x.amount = eur(15049))),
        ("text", Box::new(|x| x.concept_text = "Ref 1200370".into())),
        ("booked_at", Box::new(move |x| x.booked_at = later)),
        (
            "iban",
            Box::new(|x| x.iban = Iban::parse("DE89370400440532013000").unwrap()),
        ),
        ("id", Box::new(|x| x.id = BankTxId::parse("T2").unwrap())),
        ("direction", Box::new(|x| x.direction = Direction::Debit)),
    ];
    for (what, change) in &credits {
        let mut fresh = t.clone();
        change(&mut fresh);
        assert!(
            matches!(
                check((&p, &t), &Read::Found(p.clone()), &Read::Found(fresh)),
                Check::DontCall { .. }
            ),
            "credit {what} changed, yet the pair would be called"
        );
    }
}

#[test]
fn a_second_open_credit_at_the_instant_naming_the_concept_makes_the_pair_ambiguous() {
    let (p, t) = (payment(PendingBank), credit(None));
    let twin = |change: &dyn Fn(&mut BankTransaction)| {
        let mut o = credit(None);
        o.id = BankTxId::parse("T2").unwrap();
        change(&mut o);
        o
    };
    let decide = |others: &[BankTransaction], held: &HashSet<BankTxId>, who: Uniqueness| {
        let mut records = vec![t.clone()];
        records.extend_from_slice(others);
        let narrow = NarrowRead {
            records: &records,
            held,
        };
        before_call(
            (&p, &t),
            &Read::Found(p.clone()),
            &Read::Found(t.clone()),
            &narrow,
            who,
            now(),
        )
    };
    let matched = Uniqueness::Matched(MatchParams::default());
    let none = HashSet::new();

    // Booked at the same instant after the sync, same amount, naming the concept.
    let same = twin(&|o| o.concept_text = "120037 J. Doe".into());
    match decide(std::slice::from_ref(&same), &none, matched) {
        Check::Ambiguous { why, twins } => {
            assert_eq!(twins, [BankTxId::parse("T2").unwrap()]);
            assert!(why.contains("T2"), "{why}");
        }
        other => panic!("a twin was not counted: {other:?}"),
    }
    // Listed twice (a page shifting) and with a second twin: each named once, in order.
    let third = twin(&|o| o.id = BankTxId::parse("T0").unwrap());
    assert!(matches!(
        decide(&[same.clone(), same.clone(), third], &none, matched),
        Check::Ambiguous { twins, .. } if twins == [
            BankTxId::parse("T0").unwrap(),
            BankTxId::parse("T2").unwrap(),
        ]
    ));

    // Records at the instant that are no candidate for the payment change nothing.
    let eur = |cents| Money::from_units(Decimal::new(cents, 2), Currency::parse("EUR").unwrap());
    let not_twins: Vec<(&str, BankTransaction)> = vec![
        (
            "reconciled",
            twin(&|o| o.reconciled_payment_id = Some(PaymentId::parse("P9").unwrap())),
        ),
        ("a debit", twin(&|o| o.direction = Direction::Debit)),
        ("another amount", twin(&|o| o.amount = eur(15051))),
        (
            "another currency",
            twin(&|o| {
                o.amount =
                    Money::from_units(Decimal::new(15050, 2), Currency::parse("USD").unwrap())
            }),
        ),
        (
            "another concept",
            twin(&|o| o.concept_text = "Ref 120038".into()),
        ),
        (
            "the concept inside a longer number",
            twin(&|o| o.concept_text = "Ref 1200371".into()),
        ),
        ("no concept", twin(&|o| o.concept_text = "J. Doe".into())),
    ];
    for (what, other) in &not_twins {
        assert_eq!(
            decide(std::slice::from_ref(other), &none, matched),
            Check::Call,
            "{what}"
        );
    }
    assert_eq!(
        decide(
            &not_twins.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
            &none,
            matched
        ),
        Check::Call
    );
    // Tied to a payment by this job already (a match holds it): not open.
    let held: HashSet<BankTxId> = [same.id.clone()].into();
    assert_eq!(
        decide(std::slice::from_ref(&same), &held, matched),
        Check::Call
    );
    // A person approved the pair: they decided uniqueness.
    assert_eq!(
        decide(std::slice::from_ref(&same), &none, Uniqueness::Approved),
        Check::Call
    );
}

#[test]
fn a_pair_found_ambiguous_before_its_call_reports_the_payment_and_every_credit_ambiguous() {
    let (pid, tid) = ids();
    let twin = BankTxId::parse("T0").unwrap();
    let mut d = Decisions::default();
    let mut not = NotReconciled::both(pid.clone(), tid.clone(), "two credits".into());
    not.twins = vec![twin.clone()];
    add_outcomes(&mut d, &[not], &[], |_| 3);
    assert_eq!(d.payments.len(), 1);
    assert_eq!(d.payments[0].reason, Reason::Ambiguous);
    assert_eq!(d.payments[0].candidates, [twin.clone(), tid.clone()]);
    let credits: Vec<(BankTxId, Reason, Vec<PaymentId>)> = d
        .transactions
        .iter()
        .map(|f| (f.transaction.clone(), f.reason, f.candidates.clone()))
        .collect();
    assert_eq!(
        credits,
        [
            (tid, Reason::Ambiguous, vec![pid.clone()]),
            (twin, Reason::Ambiguous, vec![pid]),
        ]
    );
}

#[test]
fn outcomes_replace_earlier_findings_so_each_item_has_one_reason() {
    let (pid, tid) = ids();
    let mut d = Decisions::default();
    d.payments.push(PaymentFinding {
        payment: pid.clone(),
        reason: Reason::AwaitingTransfer,
        candidates: Vec::new(),
        difference: None,
        days_pending: 1,
        detail: None,
    });
    let not = NotReconciled::both(pid.clone(), tid.clone(), "payment_not_pending".into());
    // Named twice (by recovery and by the calls): still one finding per item.
    add_outcomes(&mut d, &[not.clone(), not], &[], |_| 3);
    assert_eq!(d.payments.len(), 1);
    assert_eq!(d.payments[0].reason, Reason::ReconcileFailed);
    assert_eq!(d.payments[0].days_pending, 3);
    assert_eq!(d.transactions.len(), 1);
    add_outcomes(&mut d, &[], std::slice::from_ref(&pid), |_| 3);
    assert_eq!(d.payments.len(), 1);
    assert_eq!(d.payments[0].reason, Reason::Vanished);
}

#[test]
fn each_side_that_is_still_open_is_reported_once_with_the_fate() {
    let open = Read::Found(credit(None));
    let tied = Read::Found(credit(Some("P9")));
    assert_eq!(
        report_of(
            &Fate::MovedOn {
                status: PaymentReceived
            },
            &open
        )
        .0,
        None
    );
    assert!(
        report_of(
            &Fate::MovedOn {
                status: PaymentReceived
            },
            &open
        )
        .1
        .is_some()
    );
    assert_eq!(report_of(&Fate::Failed { code: "x".into() }, &tied).1, None);
    assert!(
        report_of(&Fate::Failed { code: "x".into() }, &tied)
            .0
            .is_some()
    );
    let r = Fate::Reconciled {
        status: PaymentReceived,
        how: "ok".into(),
    };
    assert_eq!(report_of(&r, &open), (None, None));
}
