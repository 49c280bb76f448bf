//! Findings and the report outbox: every item a run reported, with its reason, and each
//! run's report until it is delivered.

use std::path::{Path, PathBuf};

use cp_recon::domain::{BankTxId, Iban, OfframpId, PaymentId};
use cp_recon::matching::{Decisions, PaymentFinding, PayoutFinding, Reason, TransactionFinding};
use cp_recon::store::{
    AlertKey, MailSent, MatchState, NewMatch, NewReport, Settlement, Store, StoreError,
};
use rust_decimal::Decimal;

use crate::records::eur;
use crate::{Sql, each_backend_sql};
use crate::{at, each_backend};

fn pay(id: &str, reason: Reason, detail: Option<&str>) -> PaymentFinding {
    PaymentFinding {
        payment: PaymentId::parse(id).unwrap(),
        reason,
        candidates: vec![
            BankTxId::parse("T1").unwrap(),
            BankTxId::parse("T2").unwrap(),
        ],
        difference: None,
        days_pending: 1,
        detail: detail.map(str::to_owned),
    }
}

/// A run's findings, one line each: `kind item reason [candidates] difference detail`.
fn findings_of(sql: &mut Sql, run: i64) -> Vec<String> {
    sql.lines(&format!(
        "SELECT kind || ' ' || item_id || ' ' || reason || ' [' || candidates || '] '
                || COALESCE(difference, '-') || ' ' || COALESCE(detail, '-')
         FROM findings WHERE run_id = {run} ORDER BY kind, item_id"
    ))
}

#[test]
fn a_finding_named_twice_in_a_run_is_stored_once_as_its_last_word() {
    each_backend_sql("findings", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let d = Decisions {
            payments: vec![
                pay("P1", Reason::Ambiguous, None),
                pay("P2", Reason::AmountMismatch, None),
                pay("P1", Reason::ReconcileFailed, Some("E_LOCKED")),
            ],
            transactions: vec![
                TransactionFinding {
                    // The same id as a payment: a different kind, so a different item.
                    transaction: BankTxId::parse("P1").unwrap(),
                    reason: Reason::NoConcept,
                    candidates: Vec::new(),
                    suggested: vec![PaymentId::parse("P2").unwrap()],
                    difference: Some(Decimal::new(-150, 2)),
                    detail: None,
                },
                TransactionFinding {
                    // Candidates, when there are any, rather than suggestions.
                    transaction: BankTxId::parse("T9").unwrap(),
                    reason: Reason::Ambiguous,
                    candidates: vec![
                        PaymentId::parse("P1").unwrap(),
                        PaymentId::parse("P2").unwrap(),
                    ],
                    suggested: vec![PaymentId::parse("P3").unwrap()],
                    difference: None,
                    detail: Some("two".into()),
                },
            ],
            payouts: vec![PayoutFinding {
                offramp: OfframpId::parse("O1").unwrap(),
                reason: Reason::PayoutNotSeen,
                days_since_finished: 4,
            }],
            ..Decisions::default()
        };
        s.insert_findings(run, &d).unwrap();
        assert_eq!(
            findings_of(sql, run),
            [
                "offramp O1 payout_not_seen [] - -",
                "payment P1 reconcile_failed [T1 T2] - E_LOCKED",
                "payment P2 amount_mismatch [T1 T2] - -",
                "transaction P1 no_concept [P2] -1.50 -",
                "transaction T9 ambiguous [P1 P2] - two",
            ]
        );
        // Nothing to report writes nothing.
        let quiet = s.begin_run(at(1), false, "full").unwrap();
        s.insert_findings(quiet, &Decisions::default()).unwrap();
        assert_eq!(s.count("findings").unwrap(), 5);
    });
}

#[test]
fn an_item_recorded_again_for_the_same_run_is_refused_and_the_batch_writes_nothing() {
    each_backend_sql("findings twice", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let first = Decisions {
            payments: vec![pay("P1", Reason::Ambiguous, None)],
            ..Decisions::default()
        };
        s.insert_findings(run, &first).unwrap();
        let again = Decisions {
            payments: vec![
                pay("P2", Reason::Ambiguous, None),
                pay("P1", Reason::AmountMismatch, None),
            ],
            ..Decisions::default()
        };
        let e = s.insert_findings(run, &again).unwrap_err();
        assert!(!matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert_eq!(findings_of(sql, run), ["payment P1 ambiguous [T1 T2] - -"]);
    });
}

#[test]
fn an_item_is_first_seen_at_the_start_of_the_earliest_run_that_reported_it() {
    each_backend("first seen", |s| {
        let run1 = s.begin_run(at(0), false, "full").unwrap();
        let run2 = s.begin_run(at(60), false, "incremental").unwrap();
        let run3 = s.begin_run(at(120), false, "incremental").unwrap();
        let with = |payments: &[&str]| Decisions {
            payments: payments
                .iter()
                .map(|p| pay(p, Reason::Ambiguous, None))
                .collect(),
            ..Decisions::default()
        };
        s.insert_findings(run1, &with(&["P1"])).unwrap();
        s.insert_findings(run2, &with(&["P2"])).unwrap();
        let mut d = with(&["P1", "P2", "P3"]);
        d.transactions.push(TransactionFinding {
            transaction: BankTxId::parse("P1").unwrap(),
            reason: Reason::NoConcept,
            candidates: Vec::new(),
            suggested: Vec::new(),
            difference: None,
            detail: None,
        });
        s.insert_findings(run3, &d).unwrap();

        let seen = s.first_seen_of_run(run3).unwrap();
        let mut seen: Vec<(String, String, String)> = seen
            .into_iter()
            .map(|((k, id), t)| (k, id, t.to_rfc3339()))
            .collect();
        seen.sort();
        let line = |k: &str, id: &str, m: i64| (k.to_owned(), id.to_owned(), at(m).to_rfc3339());
        assert_eq!(
            seen,
            [
                line("payment", "P1", 0),
                line("payment", "P2", 60),
                line("payment", "P3", 120),
                line("transaction", "P1", 120),
            ]
        );
        assert_eq!(s.first_seen_of_run(run2).unwrap().len(), 1);
        assert!(s.first_seen_of_run(run3 + 1).unwrap().is_empty());
    });
}

/// Reconciled matches of `run`, their ids in order.
fn reconciled(s: &mut Store, run: i64, pairs: &[(&str, &str)]) -> Vec<i64> {
    let iban = Iban::parse("ES9121000418450200051332").unwrap();
    let amount = eur("150.50");
    pairs
        .iter()
        .map(|(p, t)| {
            let (p, t) = (PaymentId::parse(*p).unwrap(), BankTxId::parse(*t).unwrap());
            let id = s
                .insert_intent(&NewMatch {
                    run_id: run,
                    payment: &p,
                    transaction: &t,
                    iban: &iban,
                    amount: &amount,
                    concept: None,
                    now: at(1),
                })
                .unwrap();
            s.settle(
                id,
                &Settlement {
                    state: MatchState::Reconciled,
                    provider_code: None,
                    provider_answer: Some("ok"),
                    payment_status: Some("payment_received"),
                    run,
                    now: at(2),
                },
            )
            .unwrap();
            id
        })
        .collect()
}

fn report<'a>(run: i64, dir: &'a Path, listed: &'a [i64], minute: i64) -> NewReport<'a> {
    NewReport {
        run,
        dir,
        state: "pending",
        subject: Some("2 reconciled"),
        listed,
        mail: None,
        named: &[],
        now: at(minute),
    }
}

fn unreported(s: &Store) -> Vec<i64> {
    s.unreported_reconciles()
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect()
}

fn key(kind: &str, item: &str, reason: &str) -> AlertKey {
    AlertKey {
        kind: kind.into(),
        item_id: item.into(),
        reason: reason.into(),
    }
}

#[test]
fn a_recorded_report_takes_its_reconciles_and_names_its_mail_and_urgent_items_at_once() {
    each_backend_sql("a recorded report", |s, sql| {
        let run1 = s.begin_run(at(0), false, "full").unwrap();
        let ids = reconciled(s, run1, &[("P1", "T1"), ("P2", "T2"), ("P3", "T3")]);
        let named = [
            key("payment", "P9", "amount_mismatch"),
            key("payment", "P9", "amount_mismatch"),
            key("outage", "1", "failing"),
        ];
        s.record_report(&NewReport {
            mail: Some(MailSent::Urgent),
            named: &named,
            ..report(run1, Path::new("/reports/one"), &ids[..2], 3)
        })
        .unwrap();
        assert_eq!(unreported(s), [ids[2]]);
        assert_eq!(
            s.unwritten_reports().unwrap(),
            [(run1, PathBuf::from("/reports/one"))]
        );
        assert_eq!(s.report_state(run1).unwrap(), Some(("pending".into(), 0)));
        assert_eq!(
            sql.lines(
                "SELECT dir, state, subject, created_at, COALESCE(written_at, '-'),
                        COALESCE(sent_at, '-'), mail FROM reports"
            ),
            ["/reports/one pending 2 reconciled 2026-12-06T06:03:00.000000Z - - urgent"]
        );
        let mut alerted = s.already_alerted(&named).unwrap();
        alerted.dedup();
        assert_eq!(alerted, named[1..]);

        // A later report takes what is left, never what an earlier one listed; an item
        // already named stays with the report that named it first.
        let run2 = s.begin_run(at(10), false, "full").unwrap();
        s.record_report(&NewReport {
            state: "not_needed",
            subject: None,
            mail: Some(MailSent::Full),
            named: &named[2..],
            ..report(run2, Path::new("/reports/two"), &ids, 11)
        })
        .unwrap();
        assert!(unreported(s).is_empty());
        let r = |id: i64| format!("SELECT CAST(reported_run AS TEXT) FROM matches WHERE id = {id}");
        assert_eq!(sql.lines(&r(ids[0])), [run1.to_string()]);
        assert_eq!(sql.lines(&r(ids[2])), [run2.to_string()]);
        assert_eq!(
            sql.lines("SELECT item_id, CAST(run_id AS TEXT) FROM alerts ORDER BY item_id"),
            [format!("1 {run1}"), format!("P9 {run1}")]
        );
        assert_eq!(
            sql.lines("SELECT COALESCE(mail, '-') FROM reports ORDER BY run_id"),
            ["urgent", "full"]
        );

        // A report without mail names none.
        let run3 = s.begin_run(at(20), false, "full").unwrap();
        let unmailed = key("payment", "P8", "ambiguous");
        s.record_report(&NewReport {
            named: std::slice::from_ref(&unmailed),
            ..report(run3, Path::new("/reports/three"), &[], 21)
        })
        .unwrap();
        assert!(s.already_alerted(&[unmailed]).unwrap().is_empty());
        assert_eq!(
            sql.lines(
                "SELECT COALESCE(mail, '-'), COALESCE(subject, '-') FROM reports ORDER BY run_id"
            ),
            ["urgent 2 reconciled", "full -", "- 2 reconciled"]
        );
    });
}

#[test]
fn a_second_report_of_a_run_is_refused_and_takes_none_of_its_reconciles() {
    each_backend("a second report of a run", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let ids = reconciled(s, run, &[("P1", "T1"), ("P2", "T2")]);
        s.record_report(&report(run, Path::new("/r"), &ids[..1], 3))
            .unwrap();
        let e = s
            .record_report(&NewReport {
                mail: Some(MailSent::Urgent),
                named: &[key("payment", "P2", "ambiguous")],
                ..report(run, Path::new("/r2"), &ids, 4)
            })
            .unwrap_err();
        assert!(!matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert_eq!(unreported(s), [ids[1]]);
        assert!(
            s.already_alerted(&[key("payment", "P2", "ambiguous")])
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.unwritten_reports().unwrap(), [(run, PathBuf::from("/r"))]);
    });
}

#[test]
fn a_report_is_delivered_once_written_and_marked_sent_only_once() {
    each_backend_sql("the outbox", |s, sql| {
        let run1 = s.begin_run(at(0), false, "full").unwrap();
        let run2 = s.begin_run(at(30), false, "full").unwrap();
        let run3 = s.begin_run(at(60), false, "full").unwrap();
        // Recorded out of order; one that needs no mail.
        s.record_report(&report(run2, Path::new("/r2"), &[], 31))
            .unwrap();
        s.record_report(&report(run1, Path::new("/r1"), &[], 1))
            .unwrap();
        s.record_report(&NewReport {
            state: "not_needed",
            ..report(run3, Path::new("/r3"), &[], 61)
        })
        .unwrap();
        // Not on disk yet: nothing to deliver.
        assert!(s.pending_reports().unwrap().is_empty());
        assert_eq!(s.undelivered_reports().unwrap(), (0, None));
        assert_eq!(
            s.unwritten_reports()
                .unwrap()
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            [run1, run2, run3]
        );

        for run in [run2, run1, run3] {
            assert!(s.mark_report_written(run, at(90)).unwrap());
            assert!(!s.mark_report_written(run, at(91)).unwrap());
        }
        assert!(!s.mark_report_written(run3 + 1, at(91)).unwrap());
        assert!(s.unwritten_reports().unwrap().is_empty());
        let pending = s.pending_reports().unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|r| (r.run_id, r.dir.clone(), r.attempts))
                .collect::<Vec<_>>(),
            [(run1, "/r1".into(), 0), (run2, "/r2".into(), 0)]
        );
        assert_eq!(s.undelivered_reports().unwrap(), (2, Some(at(1))));

        s.mark_report_failed(run1, "smtp: 451 try later").unwrap();
        s.mark_report_failed(run1, "smtp: timed out").unwrap();
        assert_eq!(s.report_state(run1).unwrap(), Some(("pending".into(), 2)));
        assert_eq!(s.pending_reports().unwrap()[0].attempts, 2);
        assert_eq!(
            sql.lines(&format!(
                "SELECT last_error FROM reports WHERE run_id = {run1}"
            )),
            ["smtp: timed out"]
        );

        assert!(s.mark_report_sent(run1, at(95)).unwrap());
        assert!(!s.mark_report_sent(run1, at(96)).unwrap());
        assert!(!s.mark_report_sent(run3, at(96)).unwrap());
        assert_eq!(s.report_state(run1).unwrap(), Some(("sent".into(), 3)));
        assert_eq!(
            sql.lines(&format!(
                "SELECT sent_at, COALESCE(last_error, '-') FROM reports WHERE run_id = {run1}"
            )),
            ["2026-12-06T07:35:00.000000Z -"]
        );
        assert_eq!(s.undelivered_reports().unwrap(), (1, Some(at(31))));
        assert!(s.mark_report_sent(run2, at(97)).unwrap());
        assert!(s.pending_reports().unwrap().is_empty());
        assert_eq!(s.undelivered_reports().unwrap(), (0, None));
        assert_eq!(
            s.report_state(run3).unwrap(),
            Some(("not_needed".into(), 0))
        );
        assert_eq!(s.report_state(run3 + 1).unwrap(), None);
    });
}

#[test]
fn a_report_never_written_is_voided_whole_and_its_reconciles_are_unreported_again() {
    each_backend("a voided report", |s| {
        let run1 = s.begin_run(at(0), false, "full").unwrap();
        let ids = reconciled(s, run1, &[("P1", "T1"), ("P2", "T2")]);
        let mine = key("outage", &run1.to_string(), "failing");
        s.record_report(&NewReport {
            mail: Some(MailSent::Full),
            named: std::slice::from_ref(&mine),
            ..report(run1, Path::new("/r1"), &ids[..1], 3)
        })
        .unwrap();
        s.mark_report_written(run1, at(4)).unwrap();
        let run2 = s.begin_run(at(10), false, "full").unwrap();
        let theirs = key("payment", "P7", "ambiguous");
        s.record_report(&NewReport {
            mail: Some(MailSent::Urgent),
            named: &[mine.clone(), theirs.clone()],
            ..report(run2, Path::new("/r2"), &ids, 11)
        })
        .unwrap();
        assert!(unreported(s).is_empty());

        // A report on disk is never voided; an unknown run has nothing to void.
        assert_eq!(s.void_report(run1).unwrap(), 0);
        assert_eq!(s.void_report(run2 + 1).unwrap(), 0);
        assert_eq!(s.void_report(run2).unwrap(), 1);
        assert_eq!(unreported(s), [ids[1]]);
        assert!(s.report_state(run2).unwrap().is_none());
        assert!(s.unwritten_reports().unwrap().is_empty());
        // Only what the voided mail named first is forgotten.
        assert_eq!(
            s.already_alerted(&[mine.clone(), theirs.clone()]).unwrap(),
            [mine]
        );
        assert_eq!(s.void_report(run2).unwrap(), 0);

        // Recorded again, it takes its reconciles again.
        s.record_report(&report(run2, Path::new("/r2"), &ids, 12))
            .unwrap();
        assert!(unreported(s).is_empty());
    });
}

#[test]
fn a_stored_time_edited_out_of_shape_is_a_corrupt_row() {
    each_backend_sql("corrupt outbox times", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.record_report(&report(run, Path::new("/r"), &[], 1))
            .unwrap();
        s.mark_report_written(run, at(2)).unwrap();
        s.insert_findings(
            run,
            &Decisions {
                payments: vec![pay("P1", Reason::Ambiguous, None)],
                ..Decisions::default()
            },
        )
        .unwrap();
        sql.execute("UPDATE reports SET created_at = 'today'");
        let e = s.undelivered_reports().unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("bad timestamp \"today\""), "{e}");
        sql.execute("UPDATE runs SET started_at = 'dawn'");
        let e = s.first_seen_of_run(run).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("runs row P1: bad timestamp \"dawn\""),
            "{e}"
        );
    });
}
