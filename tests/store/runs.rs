//! Runs, the lists each run read, and the watermarks.

use cp_recon::store::{ListRead, RunEnd, RunId, Store, StoreError};

use crate::{Sql, at, each_backend, each_backend_sql};

/// A run that started at `at(minutes)` and ended as `outcome`.
pub fn ended_run(
    s: &mut Store,
    minutes: i64,
    mode: &str,
    outcome: &str,
    sync_complete: bool,
) -> RunId {
    let run = s.begin_run(at(minutes), false, mode).unwrap();
    s.finish_run(
        run,
        at(minutes + 1),
        &RunEnd {
            outcome: outcome.into(),
            sync_complete,
            ..RunEnd::default()
        },
    )
    .unwrap();
    run
}

fn is_corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>, table: &str) -> bool {
    matches!(r, Err(StoreError::Corrupt { table: t, .. }) if t == table)
}

#[test]
fn a_run_is_recorded_running_then_with_how_it_ended() {
    each_backend("a run is recorded", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let row = s.run(run).unwrap().unwrap();
        assert_eq!((row.outcome.as_str(), row.finished_at), ("running", None));
        s.finish_run(
            run,
            at(1),
            &RunEnd {
                outcome: "completed".into(),
                sync_complete: true,
                ..RunEnd::default()
            },
        )
        .unwrap();
        let row = s.run(run).unwrap().unwrap();
        assert_eq!(row.outcome, "completed");
        assert!(row.sync_complete);
        assert_eq!(
            row.finished_at.as_deref(),
            Some("2026-12-06T06:01:00.000000Z")
        );
    });
}

#[test]
fn a_new_run_reads_back_its_start_mode_and_dry_run_and_takes_the_next_id() {
    each_backend("a new run reads back", |s| {
        let first = s.begin_run(at(0), false, "incremental").unwrap();
        let second = s.begin_run(at(5), true, "approve").unwrap();
        assert!(second > first, "{second} after {first}");
        let row = s.run(second).unwrap().unwrap();
        assert_eq!(row.id, second);
        assert_eq!(row.started_at, "2026-12-06T06:05:00.000000Z");
        assert_eq!(row.sync_mode, "approve");
        assert!(row.dry_run);
        assert!(!row.sync_complete);
        assert_eq!((row.outcome.as_str(), row.error), ("running", None));
        let row = s.run(first).unwrap().unwrap();
        assert_eq!(
            (row.sync_mode.as_str(), row.dry_run),
            ("incremental", false)
        );
        assert!(s.run(second + 100).unwrap().is_none(), "no such run");
    });
}

#[test]
fn finishing_a_run_records_every_count_its_summary_and_its_error() {
    each_backend_sql("finishing a run", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let other = s.begin_run(at(1), false, "full").unwrap();
        s.finish_run(
            run,
            at(2),
            &RunEnd {
                outcome: "incomplete".into(),
                sync_complete: false,
                payments_read: 1,
                offramps_read: 2,
                accounts_read: 3,
                transactions_read: 4,
                bad_records: 5,
                reconcile_calls: 6,
                reconciled: 7,
                api_requests: 8,
                // Past 32 bits: every count is 64-bit on both backends.
                api_errors: 5_000_000_000,
                summary_json: Some(r#"{"reasons": {"ambiguous": 2}}"#.into()),
                error: Some("the bank's list failed: HTTP 503".into()),
            },
        )
        .unwrap();
        let row = s.run(run).unwrap().unwrap();
        assert_eq!(row.outcome, "incomplete");
        assert_eq!(
            row.finished_at.as_deref(),
            Some("2026-12-06T06:02:00.000000Z")
        );
        assert_eq!(
            row.error.as_deref(),
            Some("the bank's list failed: HTTP 503")
        );
        assert_eq!(
            sql.text(&format!(
                "SELECT payments_read, offramps_read, accounts_read, transactions_read,
                        bad_records, reconcile_calls, reconciled, api_requests, api_errors,
                        summary_json FROM runs WHERE id = {run}"
            )),
            r#"1|2|3|4|5|6|7|8|5000000000|{"reasons": {"ambiguous": 2}}"#
        );
        let untouched = s.run(other).unwrap().unwrap();
        assert_eq!(
            (untouched.outcome.as_str(), untouched.finished_at),
            ("running", None)
        );
    });
}

#[test]
fn a_token_is_recorded_on_its_own_run_and_on_no_other() {
    each_backend_sql("a run's token", |s, sql| {
        let first = s.begin_run(at(0), false, "full").unwrap();
        let second = s.begin_run(at(1), false, "full").unwrap();
        s.set_run_token(second, "k3x9").unwrap();
        s.set_run_token(second + 100, "nobody").unwrap();
        assert_eq!(
            sql.text("SELECT id, token FROM runs ORDER BY id"),
            format!("{first}|\n{second}|k3x9")
        );
    });
}

#[test]
fn runs_since_full_counts_the_runs_after_the_last_completed_full_one_but_not_approves() {
    each_backend("runs since full", |s| {
        assert_eq!(s.runs_since_full().unwrap(), 0);
        ended_run(s, 0, "incremental", "completed", true);
        assert_eq!(
            s.runs_since_full().unwrap(),
            1,
            "no full run yet: every run"
        );
        ended_run(s, 10, "full", "completed", true);
        assert_eq!(s.runs_since_full().unwrap(), 0);
        ended_run(s, 20, "full", "failed", false);
        ended_run(s, 30, "approve", "completed", false);
        ended_run(s, 40, "incremental", "completed", true);
        s.begin_run(at(50), false, "incremental").unwrap();
        assert_eq!(
            s.runs_since_full().unwrap(),
            3,
            "a failed full run, an incremental and a running one; not the approve"
        );
    });
}

#[test]
fn abandoned_runs_are_failed_keeping_an_error_they_had_and_finished_runs_are_left_alone() {
    each_backend_sql("abandoned runs", |s, sql| {
        let done = ended_run(s, 0, "full", "completed", true);
        let quiet = s.begin_run(at(10), false, "incremental").unwrap();
        let said = s.begin_run(at(20), false, "incremental").unwrap();
        sql.text(&format!(
            "UPDATE runs SET error = 'killed by the OOM killer' WHERE id = {said}"
        ));
        assert_eq!(s.close_abandoned_runs(at(30)).unwrap(), 2);
        let row = s.run(quiet).unwrap().unwrap();
        assert_eq!(row.outcome, "failed");
        assert_eq!(
            row.finished_at.as_deref(),
            Some("2026-12-06T06:30:00.000000Z")
        );
        assert_eq!(
            row.error.as_deref(),
            Some("the process ended before the run finished")
        );
        let row = s.run(said).unwrap().unwrap();
        assert_eq!(
            (row.outcome.as_str(), row.error.as_deref()),
            ("failed", Some("killed by the OOM killer"))
        );
        let row = s.run(done).unwrap().unwrap();
        assert_eq!(
            (row.outcome.as_str(), row.finished_at.as_deref(), row.error),
            ("completed", Some("2026-12-06T06:01:00.000000Z"), None)
        );
        assert_eq!(s.close_abandoned_runs(at(40)).unwrap(), 0, "none left");
    });
}

#[test]
fn a_list_read_is_recorded_and_recording_it_again_in_the_same_run_replaces_it() {
    each_backend_sql("a list read", |s, sql| {
        let first = s.begin_run(at(0), false, "incremental").unwrap();
        let second = s.begin_run(at(10), false, "incremental").unwrap();
        let read = ListRead {
            list: "transactions:ES9121000418450200051332".into(),
            complete: false,
            pages: 3,
            items: 5_000_000_000,
            duplicates: 2,
            read_from: Some(at(-60)),
            error: Some("page 4: HTTP 500".into()),
        };
        s.record_list(first, &read).unwrap();
        s.record_list(second, &read).unwrap();
        s.record_list(
            first,
            &ListRead {
                complete: true,
                pages: 4,
                items: 7,
                duplicates: 0,
                read_from: None,
                error: None,
                ..read.clone()
            },
        )
        .unwrap();
        assert_eq!(
            sql.text(
                "SELECT run_id, list, complete, pages, items, duplicates, read_from, error
                 FROM run_lists ORDER BY run_id, list"
            ),
            format!(
                "{first}|transactions:ES9121000418450200051332|1|4|7|0||\n\
                 {second}|transactions:ES9121000418450200051332|0|3|5000000000|2|\
                 2026-12-06T05:00:00.000000Z|page 4: HTTP 500"
            )
        );
    });
}

#[test]
fn a_watermark_never_moves_back_and_names_the_run_and_time_that_last_set_it() {
    each_backend_sql("watermarks", |s, sql| {
        let first = s.begin_run(at(0), false, "full").unwrap();
        let second = s.begin_run(at(10), false, "incremental").unwrap();
        assert_eq!(s.watermark("payments").unwrap(), None);
        assert!(s.watermarks().unwrap().is_empty());
        s.set_watermark("payments", at(-5), first, at(1)).unwrap();
        s.set_watermark("rampoffs", at(-30), first, at(1)).unwrap();
        s.set_watermark("payments", at(-20), second, at(11))
            .unwrap();
        assert_eq!(
            s.watermark("payments").unwrap(),
            Some(at(-5)),
            "not moved back"
        );
        assert_eq!(
            sql.text("SELECT list, run_id, updated_at FROM watermarks ORDER BY list"),
            format!(
                "payments|{second}|2026-12-06T06:11:00.000000Z\n\
                 rampoffs|{first}|2026-12-06T06:01:00.000000Z"
            )
        );
        s.set_watermark("payments", at(9), second, at(12)).unwrap();
        assert_eq!(
            s.watermark("payments").unwrap(),
            Some(at(9)),
            "moved forward"
        );
        assert_eq!(s.watermark("Payments").unwrap(), None, "names are exact");
        let all = s.watermarks().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["payments"], at(9));
        assert_eq!(all["rampoffs"], at(-30));
    });
}

#[test]
fn a_watermark_stored_unreadable_is_corrupt_not_ignored() {
    each_backend_sql("a corrupt watermark", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.set_watermark("payments", at(-5), run, at(1)).unwrap();
        sql.text("UPDATE watermarks SET high_water = 'yesterday' WHERE list = 'payments'");
        assert!(is_corrupt(s.watermark("payments"), "watermarks"));
        assert!(is_corrupt(s.watermarks(), "watermarks"));
    });
}

/// Payments, off-ramps and bank transactions stored by run `run`, by hand.
fn records(sql: &mut Sql, run: RunId) {
    let seen = format!("'2026-12-06T06:00:00Z', '2026-12-06T06:00:00Z', {run}, {run}");
    sql.text(&format!(
        "INSERT INTO payments (id, status, amount, currency, created_at, raw_json,
                first_seen_at, last_seen_at, first_seen_run, last_seen_run) VALUES
             ('P1', 'pending_bank', '10.00', 'EUR', '2026-12-06T05:00:00.000000Z', '{{}}', {seen}),
             ('P2', 'completed', '10.00', 'EUR', '2026-12-06T05:10:00.000000Z', '{{}}', {seen}),
             ('P3', 'vanished', '10.00', 'EUR', '2026-12-06T05:20:00.000000Z', '{{}}', {seen}),
             ('P4', 'pending_bank', '10.00', 'EUR', '2026-12-06T05:30:00.000000Z', '{{}}', {seen}),
             ('P5', 'pending_bank', '10.00', 'EUR', '2026-12-06T05:40:00.000000Z', '{{}}', {seen})"
    ));
    sql.text(&format!(
        "INSERT INTO offramps (id, status, amount, currency, created_at, raw_json,
                first_seen_at, last_seen_at, first_seen_run, last_seen_run) VALUES
             ('O1', 'finished', '5.00', 'EUR', '2026-12-06T05:00:00.000000Z', '{{}}', {seen}),
             ('O2', 'pending', '5.00', 'EUR', '2026-12-06T05:30:00.000000Z', '{{}}', {seen})"
    ));
    sql.text(&format!(
            "INSERT INTO bank_transactions (id, iban, direction, amount, currency, concept,
                booked_at, raw_json, first_seen_at, last_seen_at, first_seen_run,
                last_seen_run) VALUES
             ('T1', 'ES01', 'credit', '10.00', 'EUR', 'P1', '2026-12-06T05:00:00.000000Z', '{{}}', {seen}),
             ('T2', 'ES01', 'debit', '10.00', 'EUR', 'x', '2026-12-06T05:30:00.000000Z', '{{}}', {seen}),
             ('T3', 'ES02', 'credit', '10.00', 'EUR', 'y', '2026-12-06T05:00:00.000000Z', '{{}}', {seen})"
        ),
    );
}

#[test]
fn count_before_counts_a_list_s_items_strictly_before_the_time_without_vanished_payments() {
    each_backend_sql("count before", |s, sql| {
        assert_eq!(s.count_before("payments", at(0)).unwrap(), 0);
        let run = s.begin_run(at(0), false, "full").unwrap();
        records(sql, run);
        // 05:30 itself is not before 05:30.
        assert_eq!(
            s.count_before("payments", at(-30)).unwrap(),
            2,
            "P1, P2; P3 vanished"
        );
        assert_eq!(s.count_before("payments", at(0)).unwrap(), 4);
        assert_eq!(s.count_before("rampoffs", at(-30)).unwrap(), 1);
        assert_eq!(
            s.count_before("rampoffs", at(0)).unwrap(),
            2,
            "whatever status"
        );
        assert_eq!(s.count_before("transactions:ES01", at(-30)).unwrap(), 1);
        assert_eq!(s.count_before("transactions:ES01", at(0)).unwrap(), 2);
        assert_eq!(s.count_before("transactions:ES02", at(0)).unwrap(), 1);
        assert_eq!(s.count_before("transactions:es01", at(0)).unwrap(), 0);
        assert_eq!(s.count_before("transactions:ES99", at(0)).unwrap(), 0);
        assert!(is_corrupt(s.count_before("accounts", at(0)), "watermarks"));
    });
}

#[test]
fn the_oldest_pending_payment_since_a_time_counts_only_pending_payments_created_from_it() {
    each_backend_sql("oldest pending since", |s, sql| {
        assert_eq!(s.oldest_pending_since(at(-120)).unwrap(), None);
        let run = s.begin_run(at(0), false, "full").unwrap();
        records(sql, run);
        assert_eq!(s.oldest_pending_since(at(-120)).unwrap(), Some(at(-60)));
        assert_eq!(
            s.oldest_pending_since(at(-60)).unwrap(),
            Some(at(-60)),
            "at counts"
        );
        // P2 (completed) and P3 (vanished) in between are not pending.
        assert_eq!(s.oldest_pending_since(at(-59)).unwrap(), Some(at(-30)));
        assert_eq!(s.oldest_pending_since(at(-19)).unwrap(), None);
        sql.text("UPDATE payments SET created_at = '2026-12-06T05:00:00' WHERE id = 'P1'");
        assert!(is_corrupt(s.oldest_pending_since(at(-120)), "payments"));
    });
}

#[test]
fn the_last_complete_sync_is_the_newest_run_before_this_one_that_read_every_list() {
    each_backend_sql("last complete sync", |s, sql| {
        let first = s.begin_run(at(0), false, "full").unwrap();
        assert_eq!(s.last_complete_sync(first).unwrap(), None);
        s.finish_run(
            first,
            at(1),
            &RunEnd {
                outcome: "completed".into(),
                sync_complete: true,
                ..RunEnd::default()
            },
        )
        .unwrap();
        // Complete reads whatever the outcome; an incomplete read is passed over.
        let failed_late = ended_run(s, 10, "incremental", "failed", true);
        let partial = ended_run(s, 20, "incremental", "incomplete", false);
        let now = s.begin_run(at(30), false, "incremental").unwrap();
        assert_eq!(
            s.last_complete_sync(now).unwrap(),
            Some((failed_late, at(10)))
        );
        assert_eq!(
            s.last_complete_sync(partial).unwrap(),
            Some((failed_late, at(10)))
        );
        assert_eq!(
            s.last_complete_sync(failed_late).unwrap(),
            Some((first, at(0)))
        );
        assert_eq!(
            s.last_complete_sync(first).unwrap(),
            None,
            "only runs before it"
        );
        sql.text(&format!(
            "UPDATE runs SET started_at = 'eve' WHERE id = {failed_late}"
        ));
        assert!(is_corrupt(s.last_complete_sync(now), "runs"));
    });
}

#[test]
fn the_last_success_is_when_the_newest_completed_run_of_the_job_finished() {
    each_backend_sql("last success", |s, sql| {
        assert_eq!(s.last_success().unwrap(), None);
        ended_run(s, 0, "full", "completed", true);
        ended_run(s, 10, "incremental", "failed", false);
        ended_run(s, 20, "approve", "completed", false);
        assert_eq!(
            s.last_success().unwrap(),
            Some(at(1)),
            "not a failure, not an approve"
        );
        let late = ended_run(s, 30, "incremental", "completed", true);
        assert_eq!(s.last_success().unwrap(), Some(at(31)));
        sql.text(&format!(
            "UPDATE runs SET finished_at = 'then' WHERE id = {late}"
        ));
        assert!(is_corrupt(s.last_success(), "runs"));
    });
}
