//! What a digest reads about its period: the last digest delivered, the reconciles
//! listed since, and the items reported since that are no longer open.

use cp_recon::domain::{Currency, Money};
use cp_recon::store::{RunId, StoreError};

use crate::at;
use crate::runs::ended_run;
use crate::{Sql, each_backend_sql};

fn report(sql: &mut Sql, run: RunId, state: &str, mail: &str) {
    sql.text(&format!(
        "INSERT INTO reports (run_id, dir, state, created_at, mail)
             VALUES ({run}, '/r/{run}', '{state}', '2026-12-06T07:00:00Z', {mail})"
    ));
}

/// A reconciled match of `p` and `t` settled in `run` at `settled_at`, listed by the
/// report of `reported` (`NULL` when none has listed it yet). Returns its id.
fn reconciled(
    sql: &mut Sql,
    run: RunId,
    (p, t): (&str, &str),
    settled_at: &str,
    reported: &str,
) -> i64 {
    sql.text(&format!(
        "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency,
                concept, rule, state, holds, created_at, settled_at, settled_run, reported_run)
             VALUES ({run}, '{p}', '{t}', 'ES00', '150.50', 'EUR', '0042', 'confident',
                'reconciled', 1, '2026-12-05T10:00:00Z', '{settled_at}', {run}, {reported})"
    ));
    sql.text(&format!(
        "SELECT id FROM matches WHERE payment_id = '{p}' AND state = 'reconciled'"
    ))
    .parse()
    .unwrap()
}

fn approve(sql: &mut Sql, by: &str, (p, t): (&str, &str), match_id: &str) {
    sql.text(&format!(
        "INSERT INTO decisions (at, by, action, kind, item_id, other_id, source, match_id,
                outcome)
             VALUES ('2026-12-05T07:30:00Z', '{by}', 'approve', 'payment', '{p}', '{t}', 'cli',
                {match_id}, 'reconciled')"
    ));
}

fn finding(sql: &mut Sql, run: RunId, kind: &str, id: &str, reason: &str) {
    sql.text(&format!(
        "INSERT INTO findings (run_id, kind, item_id, reason)
             VALUES ({run}, '{kind}', '{id}', '{reason}')"
    ));
}

fn eur(amount: &str) -> Money {
    Money::from_units(amount.parse().unwrap(), Currency::parse("EUR").unwrap())
}

#[test]
fn the_period_starts_at_the_last_full_report_delivered_not_at_one_queued_or_urgent() {
    each_backend_sql("last delivered digest", |s, sql| {
        let r1 = s.begin_run(at(0), false, "full").unwrap();
        let r2 = s.begin_run(at(10), false, "incremental").unwrap();
        let r3 = s.begin_run(at(20), false, "incremental").unwrap();
        let r4 = s.begin_run(at(30), false, "incremental").unwrap();
        let r5 = s.begin_run(at(40), false, "incremental").unwrap();
        assert_eq!(s.last_delivered_digest(r5).unwrap(), None);
        report(sql, r1, "sent", "'full'");
        report(sql, r2, "sent", "'urgent'");
        report(sql, r3, "pending", "'full'");
        report(sql, r4, "sent", "NULL");
        assert_eq!(s.last_delivered_digest(r5).unwrap(), Some((r1, at(0))));
        assert_eq!(s.last_delivered_digest(r2).unwrap(), Some((r1, at(0))));
        assert_eq!(
            s.last_delivered_digest(r1).unwrap(),
            None,
            "only runs before it"
        );
        sql.text(&format!(
            "UPDATE reports SET state = 'sent' WHERE run_id = {r3}"
        ));
        assert_eq!(s.last_delivered_digest(r5).unwrap(), Some((r3, at(20))));
        sql.text(&format!(
            "UPDATE runs SET started_at = 'noon' WHERE id = {r3}"
        ));
        assert!(matches!(
            s.last_delivered_digest(r5),
            Err(StoreError::Corrupt { table: "runs", .. })
        ));
    });
}

#[test]
fn the_first_run_since_a_time_is_named_only_when_the_database_is_older_than_that_time() {
    each_backend_sql("first run since", |s, sql| {
        assert_eq!(s.first_run_since_if_older(at(0)).unwrap(), None, "no runs");
        ended_run(s, 0, "full", "completed", true);
        ended_run(s, 10, "approve", "completed", false);
        let r3 = ended_run(s, 20, "incremental", "failed", false);
        let r4 = s.begin_run(at(30), false, "incremental").unwrap();
        assert_eq!(
            s.first_run_since_if_older(at(0)).unwrap(),
            None,
            "not older"
        );
        assert_eq!(s.first_run_since_if_older(at(-5)).unwrap(), None);
        assert_eq!(
            s.first_run_since_if_older(at(5)).unwrap(),
            Some((r3, at(20))),
            "not the approve"
        );
        assert_eq!(
            s.first_run_since_if_older(at(20)).unwrap(),
            Some((r3, at(20)))
        );
        assert_eq!(
            s.first_run_since_if_older(at(21)).unwrap(),
            Some((r4, at(30)))
        );
        assert_eq!(
            s.first_run_since_if_older(at(31)).unwrap(),
            None,
            "none since"
        );
        sql.text(&format!(
            "UPDATE runs SET started_at = '2026-12-06T06:30' WHERE id = {r4}"
        ));
        assert!(matches!(
            s.first_run_since_if_older(at(21)),
            Err(StoreError::Corrupt { table: "runs", .. })
        ));
    });
}

#[test]
fn the_reconciles_listed_after_a_run_are_oldest_first_with_who_approved_each() {
    each_backend_sql("reconciles listed after", |s, sql| {
        let r1 = ended_run(s, 0, "full", "completed", true);
        let r2 = ended_run(s, 10, "incremental", "completed", true);
        let r3 = ended_run(s, 20, "incremental", "completed", true);
        assert_eq!(s.reconciles_listed_after(r1).unwrap(), []);
        // Listed by the digest's own report: not in the period.
        reconciled(
            sql,
            r1,
            ("P0", "T0"),
            "2026-12-06T06:00:30Z",
            &r1.to_string(),
        );
        let approved = reconciled(
            sql,
            r2,
            ("P1", "T1"),
            "2026-12-06T06:10:30Z",
            &r2.to_string(),
        );
        // Not listed yet: the current report lists it. Settled before P1.
        let unlisted = reconciled(sql, r3, ("P2", "T2"), "2026-12-06T06:05:00Z", "NULL");
        // A pair that did not reconcile is no reconcile.
        sql.text(&format!(
            "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency,
                    rule, state, created_at, settled_at, settled_run)
                 VALUES ({r3}, 'P3', 'T3', 'ES00', '1.00', 'EUR', 'confident', 'failed',
                    '2026-12-06T06:20:00Z', '2026-12-06T06:20:01Z', {r3})"
        ));
        // A dismissal, and an approve of another match of the same payment, name no one.
        sql.text(
            "INSERT INTO decisions (at, by, action, kind, item_id, source, note)
             VALUES ('2026-12-05T07:00:00Z', 'bo', 'dismiss', 'payment', 'P2', 'cli', 'dup')",
        );
        approve(sql, "cy", ("P2", "T9"), "NULL");
        approve(sql, "ana", ("P1", "T1"), &approved.to_string());
        approve(sql, "dee", ("P1", "T1"), &approved.to_string());
        let listed = s.reconciles_listed_after(r1).unwrap();
        let got: Vec<_> = listed
            .iter()
            .map(|r| {
                (
                    r.payment_id.as_str(),
                    r.transaction_id.as_str(),
                    r.run_id,
                    r.approved_by.as_deref(),
                )
            })
            .collect();
        assert_eq!(got, [("P2", "T2", r3, None), ("P1", "T1", r2, Some("ana"))]);
        assert_eq!(listed[0].amount, eur("150.50"));
        assert_eq!(listed[0].concept.as_ref().map(|c| c.as_str()), Some("0042"));
        assert_eq!(listed[0].reconciled_at, at(5));
        assert_eq!(s.reconciles_listed_after(r2).unwrap().len(), 1);
        sql.text(&format!(
            "UPDATE matches SET currency = 'EURO' WHERE id = {unlisted}"
        ));
        assert!(matches!(
            s.reconciles_listed_after(r1),
            Err(StoreError::Corrupt {
                table: "matches",
                ..
            })
        ));
    });
}

#[test]
fn the_items_closed_since_the_digest_carry_their_last_reason_amount_and_reconcile() {
    each_backend_sql("closed items after", |s, sql| {
        let r0 = ended_run(s, 0, "full", "completed", true);
        let r1 = ended_run(s, 10, "incremental", "completed", true);
        let r2 = ended_run(s, 20, "incremental", "completed", true);
        let r3 = ended_run(s, 30, "incremental", "completed", true);
        let seen = format!("'{{}}', '2026-12-06T06:00:00Z', '2026-12-06T06:00:00Z', {r0}, {r0}");
        sql.text(&format!(
            "INSERT INTO payments (id, status, amount, currency, created_at, raw_json,
                    first_seen_at, last_seen_at, first_seen_run, last_seen_run)
                 VALUES ('P1', 'completed', '150.50', 'EUR', '2026-12-05T10:00:00Z', {seen});
                 INSERT INTO bank_transactions (id, iban, direction, amount, currency, concept,
                    booked_at, raw_json, first_seen_at, last_seen_at, first_seen_run,
                    last_seen_run)
                 VALUES ('T5', 'ES00', 'credit', '20.00', 'EUR', '7', '2026-12-05T10:00:00Z',
                    {seen});
                 INSERT INTO offramps (id, status, amount, currency, created_at, raw_json,
                    first_seen_at, last_seen_at, first_seen_run, last_seen_run)
                 VALUES ('O1', 'finished', '3.10', 'EUR', '2026-12-05T10:00:00Z', {seen});"
        ));
        let m1 = reconciled(sql, r2, ("P1", "T1"), "2026-12-06T06:20:30Z", "NULL");
        approve(sql, "ana", ("P1", "T1"), &m1.to_string());
        reconciled(sql, r2, ("P6", "T5"), "2026-12-06T06:20:30Z", "NULL");
        // Before the digest's run only: not the period's.
        finding(sql, r0, "payment", "POLD", "ambiguous");
        finding(sql, r1, "payment", "PX", "ambiguous");
        finding(sql, r1, "payment", "P1", "no_transaction");
        finding(sql, r2, "payment", "P1", "ambiguous");
        finding(sql, r2, "transaction", "TOPEN", "no_concept");
        finding(sql, r2, "transaction", "T5", "no_concept");
        finding(sql, r2, "offramp", "O1", "payout_not_seen");
        finding(sql, r3, "transaction", "TOPEN", "no_concept");
        let closed = s.closed_items_after(r1, r3).unwrap();
        let got: Vec<_> = closed
            .iter()
            .map(|c| {
                (
                    c.kind.as_str(),
                    c.item_id.as_str(),
                    c.last_run,
                    c.reason.as_str(),
                    c.reconciled_by_run,
                    c.approved_by.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("offramp", "O1", r2, "payout_not_seen", None, None),
                ("payment", "P1", r2, "ambiguous", Some(r2), Some("ana")),
                ("payment", "PX", r1, "ambiguous", None, None),
                ("transaction", "T5", r2, "no_concept", Some(r2), None),
            ]
        );
        let amounts: Vec<_> = closed.iter().map(|c| c.amount.clone()).collect();
        assert_eq!(
            amounts,
            [
                Some(eur("3.10")),
                Some(eur("150.50")),
                None,
                Some(eur("20.00"))
            ]
        );
        assert_eq!(s.closed_items_after(r3, r3).unwrap(), []);
        sql.text("UPDATE offramps SET amount = 'three' WHERE id = 'O1'");
        assert!(matches!(
            s.closed_items_after(r1, r3),
            Err(StoreError::Corrupt {
                table: "findings",
                ..
            })
        ));
    });
}
