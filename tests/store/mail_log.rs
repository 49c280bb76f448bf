//! What each report mailed: the digest's last slot, the urgent items already named,
//! and whether runs are failing.

use cp_recon::store::{AlertKey, Failing, MailSent, RunId, StoreError, outage_key};

use crate::runs::ended_run;
use crate::{Sql, each_backend_sql};
use crate::{at, each_backend};

fn key(kind: &str, item_id: &str, reason: &str) -> AlertKey {
    AlertKey {
        kind: kind.into(),
        item_id: item_id.into(),
        reason: reason.into(),
    }
}

/// Run `run`'s report row, queued at `created_at`, no mail recorded yet.
fn report(sql: &mut Sql, run: RunId, created_at: &str) {
    sql.text(&format!(
        "INSERT INTO reports (run_id, dir, state, created_at)
             VALUES ({run}, '/var/lib/cp-recon/reports/{run}', 'pending', '{created_at}')"
    ));
}

#[test]
fn the_last_digest_is_the_newest_report_recorded_as_a_full_mail() {
    each_backend_sql("last digest", |s, sql| {
        assert_eq!(s.last_digest_at().unwrap(), None);
        let r1 = s.begin_run(at(0), false, "full").unwrap();
        let r2 = s.begin_run(at(10), false, "incremental").unwrap();
        let r3 = s.begin_run(at(20), false, "incremental").unwrap();
        let r4 = s.begin_run(at(30), false, "incremental").unwrap();
        report(sql, r1, "2026-12-06T06:01:00.000000Z");
        report(sql, r2, "2026-12-06T06:11:00.000000Z");
        report(sql, r3, "2026-12-06T06:21:00.000000Z");
        report(sql, r4, "2026-12-06T06:31:00.000000Z");
        assert_eq!(s.last_digest_at().unwrap(), None, "no mail recorded yet");
        s.record_mail(r1, MailSent::Full, &[]).unwrap();
        s.record_mail(r2, MailSent::Full, &[]).unwrap();
        s.record_mail(r3, MailSent::Urgent, &[]).unwrap();
        assert_eq!(
            s.last_digest_at().unwrap(),
            Some(at(11)),
            "not the urgent mail"
        );
        assert_eq!(
            sql.text("SELECT run_id, mail FROM reports ORDER BY run_id"),
            format!("{r1}|full\n{r2}|full\n{r3}|urgent\n{r4}|")
        );
        sql.text(&format!(
            "UPDATE reports SET created_at = 'today' WHERE run_id = {r2}"
        ));
        assert!(matches!(
            s.last_digest_at(),
            Err(StoreError::Corrupt {
                table: "reports",
                ..
            })
        ));
    });
}

#[test]
fn a_mail_s_named_items_are_alerted_once_and_kept_with_the_run_that_first_named_them() {
    each_backend_sql("record mail", |s, sql| {
        let r1 = s.begin_run(at(0), false, "full").unwrap();
        let r2 = s.begin_run(at(10), false, "incremental").unwrap();
        // A run whose report row is not there: its alerts are recorded all the same.
        s.record_mail(
            r1,
            MailSent::Urgent,
            &[
                key("payment", "P1", "ambiguous"),
                key("transaction", "T1", "no_concept"),
                key("payment", "P1", "ambiguous"),
            ],
        )
        .unwrap();
        s.record_mail(
            r2,
            MailSent::Urgent,
            &[key("payment", "P1", "ambiguous"), outage_key(r1)],
        )
        .unwrap();
        assert_eq!(
            sql.text(
                "SELECT kind, item_id, reason, run_id FROM alerts ORDER BY kind, item_id, reason"
            ),
            format!(
                "outage|{r1}|failing|{r2}\n\
                 payment|P1|ambiguous|{r1}\n\
                 transaction|T1|no_concept|{r1}"
            )
        );
        assert_eq!(s.count("reports").unwrap(), 0);
    });
}

#[test]
fn already_alerted_returns_the_keys_a_mail_named_in_the_order_asked() {
    each_backend("already alerted", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        assert_eq!(
            s.already_alerted(&[key("payment", "P1", "ambiguous")])
                .unwrap(),
            []
        );
        assert_eq!(s.already_alerted(&[]).unwrap(), []);
        s.record_mail(
            run,
            MailSent::Full,
            &[
                key("payment", "P1", "ambiguous"),
                key("transaction", "T1", "no_concept"),
                outage_key(run),
            ],
        )
        .unwrap();
        let asked = [
            key("transaction", "T1", "no_concept"),
            // Every part of a key counts, byte for byte.
            key("payment", "P1", "amount_mismatch"),
            key("payment", "p1", "ambiguous"),
            key("transaction", "P1", "ambiguous"),
            outage_key(run + 1),
            key("payment", "P1", "ambiguous"),
            outage_key(run),
            key("transaction", "T1", "no_concept"),
        ];
        assert_eq!(
            s.already_alerted(&asked).unwrap(),
            [
                key("transaction", "T1", "no_concept"),
                key("payment", "P1", "ambiguous"),
                outage_key(run),
                key("transaction", "T1", "no_concept"),
            ]
        );
    });
}

#[test]
fn runs_are_failing_since_the_first_run_after_the_last_completed_one_approves_aside() {
    each_backend_sql("failing since", |s, sql| {
        let first = s.begin_run(at(0), false, "full").unwrap();
        assert_eq!(
            s.failing_since(first).unwrap(),
            Some(Failing {
                first_run: first,
                since: at(0)
            }),
            "a running run has not completed"
        );
        s.finish_run(
            first,
            at(1),
            &cp_recon::store::RunEnd {
                outcome: "completed".into(),
                sync_complete: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.failing_since(first).unwrap(), None);
        let approve = ended_run(s, 5, "approve", "failed", false);
        assert_eq!(
            s.failing_since(approve).unwrap(),
            None,
            "an approve is not the job"
        );
        let failed = ended_run(s, 10, "incremental", "failed", false);
        ended_run(s, 15, "approve", "completed", false);
        let incomplete = ended_run(s, 20, "incremental", "incomplete", false);
        let since = Some(Failing {
            first_run: failed,
            since: at(10),
        });
        assert_eq!(s.failing_since(failed).unwrap(), since);
        assert_eq!(s.failing_since(incomplete).unwrap(), since);
        assert_eq!(s.failing_since(first).unwrap(), None, "before the failures");
        let ok = ended_run(s, 30, "incremental", "completed", true);
        assert_eq!(s.failing_since(ok).unwrap(), None);
        assert_eq!(
            s.failing_since(incomplete).unwrap(),
            None,
            "a run has completed since"
        );
        let later = ended_run(s, 40, "incremental", "failed", false);
        sql.text(&format!(
            "UPDATE runs SET started_at = 'eve' WHERE id = {later}"
        ));
        assert!(matches!(
            s.failing_since(later),
            Err(StoreError::Corrupt { table: "runs", .. })
        ));
    });
}

#[test]
fn a_mail_recorded_in_a_batch_that_is_rolled_back_leaves_nothing() {
    each_backend_sql("record mail in a batch", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        report(sql, run, "2026-12-06T06:01:00.000000Z");
        s.begin_batch().unwrap();
        s.record_mail(run, MailSent::Full, &[key("payment", "P1", "ambiguous")])
            .unwrap();
        s.rollback_batch();
        assert_eq!(s.last_digest_at().unwrap(), None);
        assert_eq!(
            s.already_alerted(&[key("payment", "P1", "ambiguous")])
                .unwrap(),
            []
        );
        s.begin_batch().unwrap();
        s.record_mail(run, MailSent::Full, &[key("payment", "P1", "ambiguous")])
            .unwrap();
        s.commit_batch().unwrap();
        assert_eq!(s.last_digest_at().unwrap(), Some(at(1)));
        assert_eq!(
            s.already_alerted(&[key("payment", "P1", "ambiguous")])
                .unwrap(),
            [key("payment", "P1", "ambiguous")]
        );
    });
}
