//! The status screen: the last runs, the open items of the last completed run by
//! reason, the reports not delivered yet, and what blocks automation.

use cp_recon::store::{
    Blocker, ListRead, OpenGroup, RunEnd, RunId, RunLine, StatusData, StoreError, UndeliveredReport,
};

use crate::at;
use crate::runs::ended_run;
use crate::{Sql, each_backend_sql};

fn finding(sql: &mut Sql, run: RunId, kind: &str, id: &str, reason: &str) {
    sql.text(&format!(
        "INSERT INTO findings (run_id, kind, item_id, reason)
             VALUES ({run}, '{kind}', '{id}', '{reason}')"
    ));
}

fn seen(run: RunId) -> String {
    format!("'{{}}', '2026-12-06T06:00:00Z', '2026-12-06T06:00:00Z', {run}, {run}")
}

fn payment(sql: &mut Sql, run: RunId, id: &str, created_at: &str) {
    let seen = seen(run);
    sql.text(&format!(
        "INSERT INTO payments (id, status, amount, currency, created_at, raw_json,
                first_seen_at, last_seen_at, first_seen_run, last_seen_run)
             VALUES ('{id}', 'pending_bank', '1.00', 'EUR', '{created_at}', {seen})"
    ));
}

fn line(id: RunId, start: i64, end: Option<i64>, outcome: &str, mode: &str) -> RunLine {
    RunLine {
        id,
        started_at: at(start),
        finished_at: end.map(at),
        outcome: outcome.into(),
        sync_mode: mode.into(),
        dry_run: false,
        reconciled: 0,
        reported: 0,
        error: None,
    }
}

#[test]
fn an_empty_store_has_an_empty_status() {
    each_backend_sql("empty status", |s, _| {
        assert_eq!(s.status(10).unwrap(), StatusData::default());
    });
}

#[test]
fn the_status_lists_the_last_runs_newest_first_with_what_each_reconciled_and_reported() {
    each_backend_sql("status runs", |s, sql| {
        let r1 = s.begin_run(at(0), false, "full").unwrap();
        s.finish_run(
            r1,
            at(1),
            &RunEnd {
                outcome: "completed".into(),
                sync_complete: true,
                reconciled: 4,
                ..RunEnd::default()
            },
        )
        .unwrap();
        finding(sql, r1, "payment", "P1", "ambiguous");
        finding(sql, r1, "transaction", "T1", "no_concept");
        let r2 = s.begin_run(at(10), true, "incremental").unwrap();
        s.finish_run(
            r2,
            at(12),
            &RunEnd {
                outcome: "failed".into(),
                error: Some("the provider answered 503".into()),
                ..RunEnd::default()
            },
        )
        .unwrap();
        let r3 = s.begin_run(at(20), false, "approve").unwrap();
        let status = s.status(2).unwrap();
        let mut second = line(r2, 10, Some(12), "failed", "incremental");
        second.dry_run = true;
        second.error = Some("the provider answered 503".into());
        assert_eq!(
            status.runs,
            [line(r3, 20, None, "running", "approve"), second]
        );
        let mut first = line(r1, 0, Some(1), "completed", "full");
        first.reconciled = 4;
        first.reported = 2;
        assert_eq!(status.last_complete, Some(first.clone()));
        assert_eq!(s.status(10).unwrap().runs.len(), 3);
        assert_eq!(s.status(10).unwrap().runs[2], first);
        assert_eq!(s.status(0).unwrap().runs, []);
    });
}

#[test]
fn open_items_are_the_last_completed_run_s_findings_by_kind_and_reason_with_the_oldest() {
    each_backend_sql("status open items", |s, sql| {
        let old = ended_run(s, 0, "full", "completed", true);
        finding(sql, old, "payment", "P9", "stale");
        let last = ended_run(s, 10, "incremental", "completed", true);
        // A later failed run's findings are not what is open.
        let failed = ended_run(s, 20, "incremental", "failed", false);
        finding(sql, failed, "payment", "P8", "stale");
        for (id, at) in [
            ("P1", "2026-12-06T05:00:00.000000Z"),
            ("P2", "2026-12-06T04:00:00.000000Z"),
            ("P3", "2026-12-06T03:00:00.000000Z"),
        ] {
            payment(sql, last, id, at);
        }
        finding(sql, last, "payment", "P1", "ambiguous");
        finding(sql, last, "payment", "P2", "ambiguous");
        finding(sql, last, "payment", "P3", "amount_mismatch");
        // An item no longer stored counts, with no date.
        finding(sql, last, "payment", "PGONE", "also_gone");
        let seen = seen(last);
        sql.text(&format!(
            "INSERT INTO bank_transactions (id, iban, direction, amount, currency, concept,
                    booked_at, raw_json, first_seen_at, last_seen_at, first_seen_run,
                    last_seen_run)
                 VALUES ('T1', 'ES01', 'credit', '1.00', 'EUR', 'x',
                    '2026-12-06T02:00:00.000000Z', {seen});
                 INSERT INTO offramps (id, status, amount, currency, created_at, updated_at,
                    raw_json, first_seen_at, last_seen_at, first_seen_run, last_seen_run)
                 VALUES ('O1', 'finished', '1.00', 'EUR', '2026-12-06T01:00:00.000000Z',
                    '2026-12-06T01:30:00.000000Z', {seen}),
                 ('O2', 'finished', '1.00', 'EUR', '2026-12-06T01:10:00.000000Z', NULL, {seen})"
        ));
        finding(sql, last, "transaction", "T1", "no_concept");
        finding(sql, last, "offramp", "O1", "payout_not_seen");
        finding(sql, last, "offramp", "O2", "payout_not_seen");
        let status = s.status(1).unwrap();
        assert_eq!(status.last_complete.map(|r| r.id), Some(last));
        let t = |h: u32, m: u32| {
            use chrono::TimeZone;
            Some(chrono::Utc.with_ymd_and_hms(2026, 12, 6, h, m, 0).unwrap())
        };
        let group = |kind: &str, reason: &str, count, oldest| OpenGroup {
            kind: kind.into(),
            reason: reason.into(),
            count,
            oldest,
        };
        assert_eq!(
            status.open,
            [
                // The payout's time is when it finished, else when it was created.
                group("offramp", "payout_not_seen", 2, t(1, 10)),
                group("payment", "ambiguous", 2, t(4, 0)),
                group("payment", "also_gone", 1, None),
                group("payment", "amount_mismatch", 1, t(3, 0)),
                group("transaction", "no_concept", 1, t(2, 0)),
            ]
        );
        sql.text("UPDATE payments SET created_at = 'long ago' WHERE id = 'P3'");
        assert!(matches!(
            s.status(1),
            Err(StoreError::Corrupt {
                table: "findings",
                ..
            })
        ));
    });
}

#[test]
fn undelivered_reports_are_those_written_and_still_pending_by_run() {
    each_backend_sql("status undelivered", |s, sql| {
        let runs: Vec<RunId> = (0..4)
            .map(|i| ended_run(s, i * 10, "incremental", "completed", true))
            .collect();
        let report = |run: RunId, state: &str, written: &str, attempts: i64, error: &str| {
            format!(
                "INSERT INTO reports (run_id, dir, state, created_at, written_at, attempts,
                    last_error)
                 VALUES ({run}, '/r/{run}', '{state}', '2026-12-06T07:00:00Z', {written},
                    {attempts}, {error});"
            )
        };
        sql.text(
            &[
                report(runs[3], "pending", "'2026-12-06T07:00:01Z'", 0, "NULL"),
                report(
                    runs[0],
                    "pending",
                    "'2026-12-06T07:00:01Z'",
                    3,
                    "'SMTP 451'",
                ),
                report(runs[1], "pending", "NULL", 0, "NULL"),
                report(runs[2], "sent", "'2026-12-06T07:00:01Z'", 1, "NULL"),
            ]
            .concat(),
        );
        assert_eq!(
            s.status(1).unwrap().undelivered,
            [
                UndeliveredReport {
                    run_id: runs[0],
                    dir: format!("/r/{}", runs[0]),
                    attempts: 3,
                    last_error: Some("SMTP 451".into()),
                },
                UndeliveredReport {
                    run_id: runs[3],
                    dir: format!("/r/{}", runs[3]),
                    attempts: 0,
                    last_error: None,
                },
            ]
        );
    });
}

#[test]
fn blockers_are_the_newest_finished_run_s_bad_records_then_its_lists_not_read_in_full() {
    each_backend_sql("status blockers", |s, sql| {
        let list = |name: &str, complete: bool, error: Option<&str>| ListRead {
            list: name.into(),
            complete,
            pages: 1,
            items: 1,
            duplicates: 0,
            read_from: None,
            error: error.map(Into::into),
        };
        let older = ended_run(s, 0, "full", "incomplete", false);
        s.record_list(older, &list("payments", false, None))
            .unwrap();
        let run = s.begin_run(at(10), false, "incremental").unwrap();
        s.record_list(run, &list("transactions:ES02", false, Some("HTTP 500")))
            .unwrap();
        s.record_list(run, &list("rampoffs", true, None)).unwrap();
        s.record_list(run, &list("payments", false, None)).unwrap();
        sql.text(&format!(
            "INSERT INTO bad_records (run_id, endpoint, record_id, error, raw_json)
                 VALUES ({run}, '/payments', 'P7', 'bad amount', '{{}}');
                 INSERT INTO bad_records (run_id, endpoint, record_id, error, raw_json)
                 VALUES ({run}, '/bank/accounts', NULL, 'not an object', '[]');
                 INSERT INTO bad_records (run_id, endpoint, record_id, error, raw_json)
                 VALUES ({older}, '/payments', 'P1', 'bad date', '{{}}');"
        ));
        let blocker = |source: &str, record: Option<&str>, error: &str| Blocker {
            source: source.into(),
            record: record.map(Into::into),
            error: error.into(),
        };
        // The run still running is not the one that says what blocks.
        assert_eq!(
            s.status(5).unwrap().blockers,
            [
                blocker("/payments", Some("P1"), "bad date"),
                blocker("payments", None, "not read in full"),
            ]
        );
        s.finish_run(
            run,
            at(11),
            &RunEnd {
                outcome: "incomplete".into(),
                ..RunEnd::default()
            },
        )
        .unwrap();
        assert_eq!(
            s.status(5).unwrap().blockers,
            [
                blocker("/payments", Some("P7"), "bad amount"),
                blocker("/bank/accounts", None, "not an object"),
                blocker("payments", None, "not read in full"),
                blocker("transactions:ES02", None, "HTTP 500"),
            ]
        );
    });
}

#[test]
fn a_run_stored_with_an_unreadable_start_makes_the_status_corrupt() {
    each_backend_sql("status corrupt run", |s, sql| {
        let run = ended_run(s, 0, "full", "completed", true);
        sql.text(&format!(
            "UPDATE runs SET started_at = 'dawn' WHERE id = {run}"
        ));
        assert!(matches!(
            s.status(5),
            Err(StoreError::Corrupt { table: "runs", .. })
        ));
    });
}
