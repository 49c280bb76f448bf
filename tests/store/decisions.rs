//! The store's decisions on both backends (`store/decisions.rs`).

use std::path::Path;
use std::str::FromStr;

use cp_recon::desk::{Action, Decision, ItemRef};
use cp_recon::domain::{BankTxId, PaymentStatus};
use cp_recon::matching::{Decisions, PaymentFinding, Reason, TransactionFinding};
use cp_recon::record::BadRecord;
use cp_recon::store::{MatchState, NewDecision, NewReport, RunEnd, RunId, Settlement, Store};
use rust_decimal::Decimal;

use crate::ledger::{Pair, credit, payment, pid, tid};
use crate::{at, each_backend};

fn dismiss<'a>(item: &'a ItemRef, note: &'a str, minutes: i64) -> NewDecision<'a> {
    NewDecision {
        at: at(minutes),
        by: "ana",
        action: Action::Dismiss,
        item,
        other: None,
        note: Some(note),
        source: "cli",
        run_id: None,
        outcome: Some("dismissed"),
    }
}

fn approve<'a>(item: &'a ItemRef, t: &'a BankTxId, run: RunId, minutes: i64) -> NewDecision<'a> {
    NewDecision {
        action: Action::Approve,
        other: Some(t),
        note: None,
        source: "apply decisions.csv:3",
        run_id: Some(run),
        outcome: None,
        ..dismiss(item, "", minutes)
    }
}

fn ids(ds: &[Decision]) -> Vec<i64> {
    ds.iter().map(|d| d.id).collect()
}

fn finish(s: &mut Store, run: RunId, outcome: &str) {
    let end = RunEnd {
        outcome: outcome.into(),
        ..RunEnd::default()
    };
    s.finish_run(run, at(30), &end).unwrap();
}

#[test]
fn decisions_are_recorded_in_order_and_read_back_exactly() {
    each_backend("decisions read back", |s| {
        let run = s.begin_run(at(0), false, "approve").unwrap();
        let (p1, p2) = (ItemRef::Payment(pid("P1")), ItemRef::Payment(pid("P2")));
        let t3 = ItemRef::Transaction(tid("T3"));
        let t2 = tid("T2");
        let mut reopen = dismiss(&p1, "not a fee after all", 2);
        reopen.action = Action::Reopen;
        reopen.outcome = Some("reopened");
        let made = s
            .insert_decisions(&[
                dismiss(&p1, "bank fee", 1),
                reopen,
                approve(&p2, &t2, run, 3),
                dismiss(&t3, "refund, handled by hand", 4),
            ])
            .unwrap();
        assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
        assert!(s.insert_decisions(&[]).unwrap().is_empty());

        let all = s.decisions_after(None).unwrap();
        assert_eq!(ids(&all), made);
        let d = &all[0];
        assert_eq!(
            (d.at, d.by.as_str(), d.action, &d.item, d.other.as_ref()),
            (at(1), "ana", Action::Dismiss, &p1, None)
        );
        assert_eq!(
            (d.note.as_deref(), d.source.as_str(), d.run_id, d.match_id),
            (Some("bank fee"), "cli", None, None)
        );
        assert_eq!(d.outcome.as_deref(), Some("dismissed"));
        let a = &all[2];
        assert_eq!(
            (a.action, &a.item, a.other.as_ref(), a.note.as_deref()),
            (Action::Approve, &p2, Some(&t2), None)
        );
        assert_eq!(
            (a.source.as_str(), a.run_id, a.outcome.as_deref()),
            ("apply decisions.csv:3", Some(run), None)
        );
        assert_eq!(all[3].item, t3);

        assert_eq!(ids(&s.dismissals().unwrap()), [made[0], made[1], made[3]]);
        assert_eq!(ids(&s.decisions_about("P1").unwrap()), [made[0], made[1]]);
        // As the item, or as an approve's bank transaction.
        assert_eq!(ids(&s.decisions_about("T2").unwrap()), [made[2]]);
        assert_eq!(ids(&s.decisions_about("T3").unwrap()), [made[3]]);
        assert!(s.decisions_about("p1").unwrap().is_empty());
        assert_eq!(ids(&s.decision_of_run(run).unwrap()), [made[2]]);
        assert!(s.decision_of_run(run + 1).unwrap().is_empty());
        // Strictly after.
        assert_eq!(
            ids(&s.decisions_after(Some(at(2))).unwrap()),
            [made[2], made[3]]
        );
        assert!(s.decisions_after(Some(at(4))).unwrap().is_empty());
    });
}

#[test]
fn a_batch_holding_a_decision_the_table_refuses_records_none_of_it() {
    each_backend("a refused decision", |s| {
        let p1 = ItemRef::Payment(pid("P1"));
        // A dismiss needs a note.
        assert!(
            s.insert_decisions(&[dismiss(&p1, "bank fee", 1), dismiss(&p1, " ", 2)])
                .is_err()
        );
        // An approve needs its bank transaction.
        let mut bare = dismiss(&p1, "n", 3);
        bare.action = Action::Approve;
        assert!(s.insert_decisions(&[bare]).is_err());
        assert!(s.decisions_after(None).unwrap().is_empty());
        // The store goes on.
        s.insert_decisions(&[dismiss(&p1, "bank fee", 4)]).unwrap();
        assert_eq!(s.dismissals().unwrap().len(), 1);
    });
}

#[test]
fn an_approve_outcome_and_its_match_are_written_once() {
    each_backend("an approve outcome is written once", |s| {
        let run = s.begin_run(at(0), false, "approve").unwrap();
        let pair = Pair::new("P1", "T1");
        let m = s.insert_intent(&pair.new_match(run, at(1))).unwrap();
        let item = ItemRef::Payment(pid("P1"));
        let made = s
            .insert_decisions(&[approve(&item, &pair.t, run, 1)])
            .unwrap();
        s.set_decision_outcome(made[0], "reconciled", Some(m))
            .unwrap();
        assert!(
            s.set_decision_outcome(made[0], "failed", None).is_err(),
            "a second outcome was written"
        );
        let d = &s.decisions_about("T1").unwrap()[0];
        assert_eq!(
            (d.outcome.as_deref(), d.match_id),
            (Some("reconciled"), Some(m))
        );
        // Without a match, the outcome alone.
        let made = s
            .insert_decisions(&[approve(&item, &pair.t, run, 2)])
            .unwrap();
        s.set_decision_outcome(made[0], "refused: already tied", None)
            .unwrap();
        let d = s.decisions_about("T1").unwrap().pop().unwrap();
        assert_eq!(
            (d.outcome.as_deref(), d.match_id),
            (Some("refused: already tied"), None)
        );
    });
}

#[test]
fn interrupted_approves_take_the_fate_of_their_match_or_stay_in_doubt() {
    each_backend("interrupted approves", |s| {
        let runs: Vec<RunId> = (0..4)
            .map(|i| s.begin_run(at(i), false, "approve").unwrap())
            .collect();
        let recovery = s.begin_run(at(10), false, "full").unwrap();
        let pairs = [
            Pair::new("P1", "T1"),
            Pair::new("P2", "T2"),
            Pair::new("P3", "T3"),
            Pair::new("P4", "T4"),
        ];
        let items: Vec<ItemRef> = pairs
            .iter()
            .map(|p| ItemRef::Payment(p.p.clone()))
            .collect();
        // P1's call failed, P2's was never made, P3's is still in doubt, P4's has its
        // outcome already.
        let m1 = s
            .insert_intent(&pairs[0].new_match(runs[0], at(1)))
            .unwrap();
        let m3 = s
            .insert_intent(&pairs[2].new_match(runs[2], at(1)))
            .unwrap();
        s.insert_intent(&pairs[3].new_match(runs[3], at(1)))
            .unwrap();
        let failed = Settlement {
            state: MatchState::Failed,
            provider_code: Some("amount_mismatch"),
            provider_answer: None,
            payment_status: None,
            run: recovery,
            now: at(11),
        };
        s.settle(m1, &failed).unwrap();
        let mut ds: Vec<_> = (0..4)
            .map(|i| approve(&items[i], &pairs[i].t, runs[i], i as i64))
            .collect();
        ds[3].outcome = Some("reconciled");
        let note = ItemRef::Payment(pid("P9"));
        ds.push(dismiss(&note, "duplicate", 5));
        let made = s.insert_decisions(&ds).unwrap();

        let closed = s.close_interrupted_approves(recovery).unwrap();
        let all = s.decisions_after(None).unwrap();
        assert_eq!(ids(&all), made);
        let fate: Vec<_> = all
            .iter()
            .map(|d| (d.outcome.clone(), d.match_id))
            .collect();
        assert_eq!(
            fate,
            [
                (Some(format!("settled by run {recovery}: failed")), Some(m1)),
                (
                    Some("interrupted before the call: nothing was called".into()),
                    None
                ),
                (None, Some(m3)),
                (Some("reconciled".into()), None),
                (Some("dismissed".into()), None),
            ]
        );
        // Two were closed; the one still in doubt is not counted.
        assert_eq!(closed, 2);
        // It waits for a later run, and is not counted then either.
        assert_eq!(s.close_interrupted_approves(recovery).unwrap(), 0);
    });
}

#[test]
fn an_id_names_every_item_stored_under_it() {
    each_backend("items named", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let other = s.begin_run(at(5), false, "full").unwrap();
        s.upsert_payments(run, at(1), &[payment("A1", PaymentStatus::PendingBank)])
            .unwrap();
        s.upsert_transactions(run, at(2), &[credit("A1"), credit("T2")])
            .unwrap();
        let bad = |id: Option<&str>| BadRecord {
            endpoint: "/banking/transactions".into(),
            id: id.map(str::to_owned),
            error: "amount: not a number".into(),
            raw: "{}".into(),
        };
        s.insert_bad_records(
            run,
            &[bad(Some("B2")), bad(Some("B1")), bad(None), bad(Some("B2"))],
        )
        .unwrap();
        s.insert_bad_records(other, &[bad(Some("B3")), bad(Some("B1"))])
            .unwrap();

        assert_eq!(
            s.items_named("A1").unwrap(),
            [ItemRef::Payment(pid("A1")), ItemRef::Transaction(tid("A1"))]
        );
        assert_eq!(
            s.items_named("T2").unwrap(),
            [ItemRef::Transaction(tid("T2"))]
        );
        assert_eq!(
            s.items_named("B1").unwrap(),
            [ItemRef::BadRecord("B1".into())]
        );
        assert!(s.items_named("a1").unwrap().is_empty());
        assert!(s.items_named("nothing").unwrap().is_empty());

        assert_eq!(s.bad_record_ids_of_run(run).unwrap(), ["B1", "B2"]);
        assert_eq!(s.bad_record_ids_of_run(other).unwrap(), ["B1", "B3"]);
        assert!(s.bad_record_ids_of_run(other + 1).unwrap().is_empty());

        // When the job first stored each: a record's first sync, an unreadable one's
        // first run.
        s.upsert_payments(other, at(6), &[payment("A1", PaymentStatus::Started)])
            .unwrap();
        assert_eq!(
            s.first_seen(&ItemRef::Payment(pid("A1"))).unwrap(),
            Some(at(1))
        );
        assert_eq!(
            s.first_seen(&ItemRef::Transaction(tid("T2"))).unwrap(),
            Some(at(2))
        );
        assert_eq!(
            s.first_seen(&ItemRef::BadRecord("B1".into())).unwrap(),
            Some(at(0))
        );
        assert_eq!(
            s.first_seen(&ItemRef::BadRecord("B3".into())).unwrap(),
            Some(at(5))
        );
        assert_eq!(s.first_seen(&ItemRef::Payment(pid("P404"))).unwrap(), None);
    });
}

#[test]
fn the_latest_completed_run_and_the_previous_report_bound_the_news() {
    each_backend("latest run and previous report", |s| {
        assert_eq!(s.latest_completed_run().unwrap(), None);
        let first = s.begin_run(at(0), false, "full").unwrap();
        let approve = s.begin_run(at(10), false, "approve").unwrap();
        let second = s.begin_run(at(20), false, "incremental").unwrap();
        let third = s.begin_run(at(40), false, "full").unwrap();
        assert_eq!(s.latest_completed_run().unwrap(), None);
        finish(s, first, "completed");
        finish(s, approve, "completed");
        finish(s, second, "failed");
        // A person's approve runs are not reports.
        assert_eq!(s.latest_completed_run().unwrap(), Some(first));

        let report = |s: &mut Store, run: RunId| {
            s.record_report(&NewReport {
                run,
                dir: Path::new("/reports/x"),
                state: "pending",
                subject: Some("cp-recon report"),
                listed: &[],
                mail: None,
                named: &[],
                now: at(50),
            })
            .unwrap();
        };
        report(s, first);
        report(s, second);
        assert_eq!(s.previous_report_start(first).unwrap(), None);
        assert_eq!(s.previous_report_start(second).unwrap(), Some(at(0)));
        assert_eq!(s.previous_report_start(third).unwrap(), Some(at(20)));
    });
}

#[test]
fn findings_are_read_back_by_run_and_by_item_in_byte_order() {
    each_backend("findings", |s| {
        let first = s.begin_run(at(0), false, "full").unwrap();
        let second = s.begin_run(at(10), false, "full").unwrap();
        let pf = |id: &str, reason, candidates: &[&str], difference: Option<&str>| PaymentFinding {
            payment: pid(id),
            reason,
            candidates: candidates.iter().map(|t| tid(t)).collect(),
            difference: difference.map(|d| Decimal::from_str(d).unwrap()),
            days_pending: 3,
            detail: None,
        };
        let tf = TransactionFinding {
            transaction: tid("T9"),
            reason: Reason::NoConcept,
            candidates: Vec::new(),
            suggested: vec![pid("P10"), pid("P2")],
            difference: None,
            detail: Some("no concept in the text".into()),
        };
        let d = Decisions {
            payments: vec![
                pf("P2", Reason::AmountMismatch, &["T1"], Some("-1.50")),
                pf("P10", Reason::Ambiguous, &["T1", "T2"], None),
                pf("p1", Reason::AwaitingTransfer, &[], None),
            ],
            transactions: vec![tf],
            ..Decisions::default()
        };
        s.insert_findings(first, &d).unwrap();
        s.insert_findings(
            second,
            &Decisions {
                payments: vec![pf("P2", Reason::AwaitingTransfer, &[], None)],
                ..Decisions::default()
            },
        )
        .unwrap();

        let found = s.findings_of_run(first).unwrap();
        let keys: Vec<_> = found
            .iter()
            .map(|f| format!("{} {}", f.kind, f.item_id))
            .collect();
        assert_eq!(
            keys,
            ["payment P10", "payment P2", "payment p1", "transaction T9"]
        );
        let p2 = &found[1];
        assert_eq!(
            (p2.run_id, p2.reason.as_str(), p2.candidates.clone()),
            (
                first,
                Reason::AmountMismatch.as_str(),
                vec!["T1".to_owned()]
            )
        );
        assert_eq!(
            (p2.difference.as_deref(), p2.detail.as_deref()),
            (Some("-1.50"), None)
        );
        assert_eq!(found[0].candidates, ["T1", "T2"]);
        assert!(found[2].candidates.is_empty());
        // A credit without a concept names the suggested payments.
        assert_eq!(found[3].candidates, ["P10", "P2"]);
        assert_eq!(found[3].difference, None);
        assert_eq!(found[3].detail.as_deref(), Some("no concept in the text"));

        let about: Vec<_> = s
            .findings_about("payment", "P2")
            .unwrap()
            .iter()
            .map(|f| (f.run_id, f.reason.clone()))
            .collect();
        assert_eq!(
            about,
            [
                (first, Reason::AmountMismatch.as_str().to_owned()),
                (second, Reason::AwaitingTransfer.as_str().to_owned()),
            ]
        );
        assert!(s.findings_about("transaction", "P2").unwrap().is_empty());
        assert!(s.findings_of_run(second + 1).unwrap().is_empty());
    });
}
