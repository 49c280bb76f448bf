//! The store's ledger on both backends (`store/ledger.rs`).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use cp_recon::domain::{
    BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Payment, PaymentId,
    PaymentStatus,
};
use cp_recon::record::Record;
use cp_recon::store::{MatchRow, MatchState, NewMatch, RunId, Settlement, Store, StoreError};
use rust_decimal::Decimal;

use crate::{at, each_backend};

pub const IBAN: &str = "ES9121000418450200051332";

pub fn eur(v: &str) -> Money {
    Money::from_units(
        Decimal::from_str(v).unwrap(),
        Currency::parse("EUR").unwrap(),
    )
}

pub fn pid(id: &str) -> PaymentId {
    PaymentId::parse(id).unwrap()
}

pub fn tid(id: &str) -> BankTxId {
    BankTxId::parse(id).unwrap()
}

/// A stored payment in `status`.
pub fn payment(id: &str, status: PaymentStatus) -> Record<Payment> {
    Record {
        value: Payment {
            id: pid(id),
            external_id: None,
            user_id: Some("u1".into()),
            status,
            amount: eur("150.50"),
            payment_type: Some("bank_transfer".into()),
            concept: Some(Concept::parse("0120037").unwrap()),
            created_at: at(0),
            updated_at: None,
        },
        raw: format!(r#"{{"id":"{id}"}}"#),
    }
}

/// A stored credit, not tied at the provider.
pub fn credit(id: &str) -> Record<BankTransaction> {
    Record {
        value: BankTransaction {
            id: tid(id),
            iban: Iban::parse(IBAN).unwrap(),
            amount: eur("150.50"),
            direction: Direction::Credit,
            concept_text: "0120037".into(),
            counterparty_name: Some("Ana".into()),
            counterparty_iban: None,
            booked_at: at(1),
            value_date: None,
            reconciled_payment_id: None,
        },
        raw: format!(r#"{{"id":"{id}"}}"#),
    }
}

/// The values of a new match of `p` and `t`.
pub struct Pair {
    pub p: PaymentId,
    pub t: BankTxId,
    iban: Iban,
    amount: Money,
    concept: Option<Concept>,
}

impl Pair {
    pub fn new(p: &str, t: &str) -> Self {
        Self {
            p: pid(p),
            t: tid(t),
            iban: Iban::parse(IBAN).unwrap(),
            amount: eur("150.50"),
            concept: Some(Concept::parse("0120037").unwrap()),
        }
    }

    pub fn without_concept(mut self) -> Self {
        self.concept = None;
        self
    }

    pub fn new_match(&self, run: RunId, now: DateTime<Utc>) -> NewMatch<'_> {
        NewMatch {
            run_id: run,
            payment: &self.p,
            transaction: &self.t,
            iban: &self.iban,
            amount: &self.amount,
            concept: self.concept.as_ref(),
            now,
        }
    }
}

fn settlement(state: MatchState, code: Option<&'static str>, run: RunId) -> Settlement<'static> {
    Settlement {
        state,
        provider_code: code,
        provider_answer: Some("answer"),
        payment_status: None,
        run,
        now: at(10),
    }
}

/// What a match says, without its id and the database's clock.
fn seen(m: &MatchRow) -> String {
    format!(
        "{} {} {} {}",
        m.payment_id,
        m.transaction_id,
        m.state.as_str(),
        m.provider_code.as_deref().unwrap_or("-")
    )
}

fn pairs(ms: &[MatchRow]) -> Vec<String> {
    ms.iter()
        .map(|m| format!("{} {}", m.payment_id, m.transaction_id))
        .collect()
}

fn intents(s: &mut Store, run: RunId, ps: &[Pair]) -> Vec<Result<i64, StoreError>> {
    let ms: Vec<_> = ps.iter().map(|p| p.new_match(run, at(2))).collect();
    s.insert_intents(&ms).unwrap()
}

#[test]
fn a_second_intent_for_a_held_payment_or_transaction_is_refused_and_the_rest_of_the_batch_is_committed()
 {
    each_backend("a second intent is refused", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let first = s
            .insert_intent(&Pair::new("P1", "T1").new_match(run, at(2)))
            .unwrap();
        let out = intents(
            s,
            run,
            &[
                Pair::new("P2", "T2"),
                Pair::new("P1", "T3"),
                Pair::new("P4", "T1"),
                Pair::new("P5", "T5"),
                Pair::new("P2", "T6"),
                Pair::new("P7", "T5"),
            ],
        );
        let refused: Vec<_> = out
            .iter()
            .map(|r| match r {
                Ok(_) => None,
                Err(StoreError::AlreadyTied {
                    payment,
                    transaction,
                }) => Some((payment.as_str(), transaction.as_str())),
                Err(e) => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            refused,
            [
                None,
                Some(("P1", "T3")),
                Some(("P4", "T1")),
                None,
                Some(("P2", "T6")),
                Some(("P7", "T5")),
            ]
        );
        let all = s.all_matches().unwrap();
        assert_eq!(pairs(&all), ["P1 T1", "P2 T2", "P5 T5"]);
        assert_eq!(all[0].id, first);
        assert_eq!(
            [all[1].id, all[2].id],
            [*out[0].as_ref().unwrap(), *out[3].as_ref().unwrap()]
        );
        assert!(all.iter().all(|m| m.state == MatchState::Intent));

        // One at a time, the same.
        assert!(matches!(
            s.insert_intent(&Pair::new("P9", "T2").new_match(run, at(3))),
            Err(StoreError::AlreadyTied { .. })
        ));
        assert_eq!(s.all_matches().unwrap().len(), 3);
        assert!(intents(s, run, &[]).is_empty());
        // Committed: a transaction opened and undone afterwards keeps them.
        s.begin_batch().unwrap();
        s.rollback_batch();
        assert_eq!(s.all_matches().unwrap().len(), 3);
    });
}

#[test]
fn an_intent_reads_back_as_it_was_written_with_the_database_clock_beside_it() {
    each_backend("an intent reads back", |s| {
        let before = Utc::now() - chrono::Duration::seconds(5);
        let run = s.begin_run(at(0), false, "full").unwrap();
        let ps = [
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2").without_concept(),
        ];
        let ids: Vec<i64> = intents(s, run, &ps)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let all = s.all_matches().unwrap();
        assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
        let m = &all[0];
        assert_eq!(m.run_id, run);
        assert_eq!(m.payment_id, pid("P1"));
        assert_eq!(m.transaction_id, tid("T1"));
        assert_eq!(m.iban.as_str(), IBAN);
        assert_eq!(m.amount, eur("150.50"));
        assert_eq!(m.amount.amount_str(), "150.50");
        assert_eq!(m.concept.as_ref().map(Concept::as_str), Some("0120037"));
        assert_eq!(all[1].concept, None);
        assert_eq!(m.state, MatchState::Intent);
        assert_eq!(m.provider_code, None);
        assert_eq!(m.created_at, at(2));
        assert_eq!(m.settled_at, None);
        let written = m.written_at.expect("written_at");
        assert!(
            written >= before && written <= Utc::now() + chrono::Duration::seconds(5),
            "{written}"
        );
        assert_eq!(s.match_pair(ids[1]).unwrap(), (pid("P2"), tid("T2")));
        assert!(s.match_pair(ids[1] + 100).is_err());
    });
}

#[test]
fn dry_runs_are_recorded_and_never_hold_anything() {
    each_backend("dry runs never hold", |s| {
        let run = s.begin_run(at(0), true, "full").unwrap();
        let p = Pair::new("P1", "T1");
        s.insert_dry_run(&p.new_match(run, at(2))).unwrap();
        s.insert_dry_runs(&[
            p.new_match(run, at(2)),
            Pair::new("P2", "T1").new_match(run, at(2)),
        ])
        .unwrap();
        s.insert_dry_runs(&[]).unwrap();
        let all = s.all_matches().unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|m| m.state == MatchState::DryRun));
        assert!(all.iter().all(|m| m.written_at.is_some()));
        assert!(s.unsettled().unwrap().is_empty());
        assert!(s.hold_of_payment(&pid("P1")).unwrap().is_none());
        assert!(s.hold_of_transaction(&tid("T1")).unwrap().is_none());
        // A dry run ties nothing: the real intent goes in.
        s.insert_intent(&p.new_match(run, at(3))).unwrap();
    });
}

#[test]
fn a_settled_outcome_is_recorded_and_only_a_call_that_may_have_applied_keeps_its_hold() {
    each_backend("settle", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let later = s.begin_run(at(5), false, "full").unwrap();
        let ps = [
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2"),
            Pair::new("P3", "T3"),
            Pair::new("P4", "T4"),
            Pair::new("P5", "T5"),
        ];
        let ids: Vec<i64> = intents(s, run, &ps)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        s.settle(
            ids[0],
            &settlement(MatchState::Failed, Some("amount_mismatch"), later),
        )
        .unwrap();
        s.settle(ids[1], &settlement(MatchState::Unknown, None, later))
            .unwrap();
        s.settle(ids[2], &settlement(MatchState::NotApplied, None, later))
            .unwrap();
        s.settle(ids[3], &settlement(MatchState::MovedOn, None, later))
            .unwrap();
        let all = s.all_matches().unwrap();
        assert_eq!(
            all.iter().map(seen).collect::<Vec<_>>(),
            [
                "P1 T1 failed amount_mismatch",
                "P2 T2 unknown -",
                "P3 T3 not_applied -",
                "P4 T4 moved_on -",
                "P5 T5 intent -",
            ]
        );
        assert_eq!(all[0].settled_at, Some(at(10)));
        assert_eq!(all[4].settled_at, None);

        // In doubt: the intent and the unknown, in id order.
        assert_eq!(pairs(&s.unsettled().unwrap()), ["P2 T2", "P5 T5"]);
        assert_eq!(s.hold_of_payment(&pid("P2")).unwrap().unwrap().id, ids[1]);
        assert_eq!(
            s.hold_of_transaction(&tid("T5")).unwrap().unwrap().id,
            ids[4]
        );
        for released in ["P1", "P3", "P4"] {
            assert!(s.hold_of_payment(&pid(released)).unwrap().is_none());
        }
        assert!(s.hold_of_transaction(&tid("T1")).unwrap().is_none());
        // The released pairs may be decided again; the held ones may not.
        let again = intents(s, later, &[Pair::new("P1", "T3"), Pair::new("P2", "T9")]);
        assert!(again[0].is_ok());
        assert!(matches!(again[1], Err(StoreError::AlreadyTied { .. })));
        // A run's matches: those it wrote and those it settled.
        assert_eq!(s.matches_of_run(run).unwrap().len(), 5);
        assert_eq!(
            s.matches_of_run(later)
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>(),
            [ids[0], ids[1], ids[2], ids[3], *again[0].as_ref().unwrap()]
        );
        // Settling an unknown as reconciled-by-settle keeps its hold.
        s.settle(ids[1], &settlement(MatchState::Reconciled, None, later))
            .unwrap();
        assert_eq!(
            s.hold_of_payment(&pid("P2")).unwrap().unwrap().state,
            MatchState::Reconciled
        );
    });
}

#[test]
fn marked_reconciles_are_read_back_by_run_unreported_and_as_pairs() {
    each_backend("mark reconciled", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let later = s.begin_run(at(5), false, "full").unwrap();
        let ps = [
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2").without_concept(),
            Pair::new("P3", "T3"),
        ];
        let ids: Vec<i64> = intents(s, run, &ps)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        s.mark_reconciled(
            &[(ids[0], pid("P1"), tid("T1"), PaymentStatus::CoinsSent)],
            "ok",
            run,
            at(3),
        )
        .unwrap();
        s.mark_reconciled(
            &[(ids[1], pid("P2"), tid("T2"), PaymentStatus::PaymentReceived)],
            "settled: the payment was found paid",
            later,
            at(6),
        )
        .unwrap();
        s.mark_reconciled(&[], "ok", later, at(6)).unwrap();
        let all = s.all_matches().unwrap();
        assert_eq!(
            all.iter()
                .map(|m| (m.state, m.settled_at))
                .collect::<Vec<_>>(),
            [
                (MatchState::Reconciled, Some(at(3))),
                (MatchState::Reconciled, Some(at(6))),
                (MatchState::Intent, None),
            ]
        );
        // Still held: a reconciled pair is done.
        assert_eq!(s.hold_of_payment(&pid("P1")).unwrap().unwrap().id, ids[0]);
        assert!(matches!(
            s.insert_intent(&Pair::new("P9", "T1").new_match(later, at(7))),
            Err(StoreError::AlreadyTied { .. })
        ));
        let ids_of = |ms: Vec<MatchRow>| ms.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids_of(s.reconciled_in_run(run).unwrap()), [ids[0]]);
        assert_eq!(ids_of(s.reconciled_in_run(later).unwrap()), [ids[1]]);
        assert_eq!(ids_of(s.unreported_reconciles().unwrap()), [ids[0], ids[1]]);
        assert_eq!(ids_of(s.unsettled().unwrap()), [ids[2]]);
        let rp = s.reconciled_pairs().unwrap();
        assert_eq!(
            rp.iter()
                .map(|r| format!(
                    "{} {} {} {} {}",
                    r.payment,
                    r.transaction,
                    r.concept.as_ref().map_or("-", Concept::as_str),
                    r.amount.amount_str(),
                    r.amount.currency().as_str()
                ))
                .collect::<Vec<_>>(),
            ["P1 T1 0120037 150.50 EUR", "P2 T2 - 150.50 EUR"]
        );
    });
}

#[test]
fn recorded_ties_write_the_payment_status_and_the_credit_tie_and_skip_missing_rows() {
    each_backend("record ties", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run,
            at(1),
            &[
                payment("P1", PaymentStatus::PendingBank),
                payment("P2", PaymentStatus::PendingBank),
                payment("P3", PaymentStatus::PendingBank),
            ],
        )
        .unwrap();
        s.upsert_transactions(run, at(1), &[credit("T1"), credit("T2"), credit("T3")])
            .unwrap();
        let ps = [
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2"),
            Pair::new("P8", "T8"),
        ];
        let ids: Vec<i64> = intents(s, run, &ps)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Settled in one: the match, the payment and the credit.
        s.settle_reconciled(
            &[(ids[0], pid("P1"), tid("T1"), PaymentStatus::CoinsSent)],
            "ok",
            run,
            at(3),
        )
        .unwrap();
        // Marked, then tied at the end of the phase; a pair whose rows the store does not
        // have writes nothing.
        let items = [
            (ids[1], pid("P2"), tid("T2"), PaymentStatus::PaymentReceived),
            (ids[2], pid("P8"), tid("T8"), PaymentStatus::CoinsSent),
        ];
        s.mark_reconciled(&items, "ok", run, at(4)).unwrap();
        assert_eq!(
            s.payments_by_ids(&[&pid("P2")]).unwrap()[0].status,
            PaymentStatus::PendingBank
        );
        s.record_ties(&items).unwrap();
        s.record_ties(&[]).unwrap();
        let statuses: Vec<_> = s
            .payments_by_ids(&[&pid("P1"), &pid("P2"), &pid("P3"), &pid("P8")])
            .unwrap()
            .into_iter()
            .map(|p| format!("{} {}", p.id, p.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            ["P1 coins_sent", "P2 payment_received", "P3 pending_bank"]
        );
        let ties: Vec<_> = s
            .transactions_by_ids(&[&tid("T1"), &tid("T2"), &tid("T3"), &tid("T8")])
            .unwrap()
            .into_iter()
            .map(|t| {
                let tied = t.reconciled_payment_id.map(|p| p.to_string());
                format!("{} {}", t.id, tied.as_deref().unwrap_or("-"))
            })
            .collect();
        assert_eq!(ties, ["T1 P1", "T2 P2", "T3 -"]);
        assert!(
            s.all_matches()
                .unwrap()
                .iter()
                .all(|m| m.state == MatchState::Reconciled)
        );
    });
}

#[test]
fn a_refused_pair_is_listed_while_its_payment_keeps_the_status_of_the_refusal() {
    each_backend("refused pairs", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run,
            at(1),
            &[
                payment("P1", PaymentStatus::PendingBank),
                payment("P2", PaymentStatus::PendingBank),
                payment("P3", PaymentStatus::PendingBank),
            ],
        )
        .unwrap();
        let ps = [
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2"),
            Pair::new("P3", "T3"),
            Pair::new("P4", "T4"),
        ];
        let ids: Vec<i64> = intents(s, run, &ps)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let failed = |code, status| Settlement {
            payment_status: status,
            ..settlement(MatchState::Failed, code, run)
        };
        s.settle(
            ids[0],
            &failed(Some("amount_mismatch"), Some("pending_bank")),
        )
        .unwrap();
        s.settle(ids[1], &failed(None, Some("pending_bank")))
            .unwrap();
        // Refused while the payment was in another status: not listed.
        s.settle(ids[2], &failed(Some("bad_state"), Some("started")))
            .unwrap();
        // No stored payment: not listed.
        s.settle(ids[3], &failed(Some("not_found"), Some("pending_bank")))
            .unwrap();
        let listed = |s: &mut Store| -> Vec<String> {
            let mut v: Vec<_> = s
                .refused_pairs()
                .unwrap()
                .into_iter()
                .map(|(p, t, c)| format!("{p} {t} {c}"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(listed(s), ["P1 T1 amount_mismatch", "P2 T2 "]);
        // The provider's state changed: the pair may be called again.
        s.upsert_payments(run, at(4), &[payment("P1", PaymentStatus::Started)])
            .unwrap();
        assert_eq!(listed(s), ["P2 T2 "]);
        // A settlement without a status keeps the one read before.
        s.settle(ids[1], &failed(Some("again"), None)).unwrap();
        assert_eq!(listed(s), ["P2 T2 again"]);
    });
}

#[test]
fn held_transactions_and_matches_naming_an_id_are_found() {
    each_backend("held transactions", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let ps = [
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2"),
            Pair::new("P3", "T3"),
        ];
        let ids: Vec<i64> = intents(s, run, &ps)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        s.settle(ids[1], &settlement(MatchState::Failed, Some("x"), run))
            .unwrap();
        s.settle(ids[2], &settlement(MatchState::Unknown, None, run))
            .unwrap();
        let later = intents(s, run, &[Pair::new("P1", "T2")]);
        assert!(matches!(later[0], Err(StoreError::AlreadyTied { .. })));
        let again = intents(s, run, &[Pair::new("P9", "T2")]);
        let held = s
            .held_transactions(&[tid("T1"), tid("T2"), tid("T3"), tid("T4")])
            .unwrap();
        let mut held: Vec<_> = held.into_iter().map(|t| t.to_string()).collect();
        held.sort();
        assert_eq!(held, ["T1", "T2", "T3"]);
        assert!(s.held_transactions(&[]).unwrap().is_empty());
        // Every match naming an id, on either side, oldest first.
        let naming = |s: &mut Store, id: &str| {
            s.matches_naming(id)
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(naming(s, "T2"), [ids[1], *again[0].as_ref().unwrap()]);
        assert_eq!(naming(s, "P1"), [ids[0]]);
        assert_eq!(naming(s, "p1"), Vec::<i64>::new());
        assert_eq!(naming(s, "X"), Vec::<i64>::new());
    });
}

#[test]
fn an_intent_the_database_refuses_for_another_reason_is_refused_alone() {
    each_backend("an intent of an unknown run", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let (a, b, c) = (
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2"),
            Pair::new("P3", "T3"),
        );
        let out = s
            .insert_intents(&[
                a.new_match(run, at(2)),
                b.new_match(run + 1000, at(2)),
                c.new_match(run, at(2)),
            ])
            .unwrap();
        assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
        let Err(e) = &out[1] else {
            panic!("an intent of a run that does not exist was written");
        };
        assert!(!matches!(e, StoreError::AlreadyTied { .. }), "{e:?}");
        assert_eq!(pairs(&s.all_matches().unwrap()), ["P1 T1", "P3 T3"]);
    });
}
