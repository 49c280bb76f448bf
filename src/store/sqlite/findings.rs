//! Findings and the report outbox: every item a run reported, with its reason, and
//! each run's report until it is delivered.

use super::SqliteStore;
use crate::store::*;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::domain::{BankTxId, PaymentId};
use crate::matching::Decisions;

impl FindingStore for SqliteStore {
    fn insert_findings(&mut self, run: RunId, d: &Decisions) -> Result<(), StoreError> {
        type Row<'a> = (
            &'static str,
            &'a str,
            &'static str,
            String,
            Option<String>,
            Option<&'a str>,
        );
        let payments = d.payments.iter().map(|f| -> Row<'_> {
            (
                "payment",
                f.payment.as_str(),
                f.reason.as_str(),
                join(f.candidates.iter().map(BankTxId::as_str)),
                f.difference.map(|x| x.to_string()),
                f.detail.as_deref(),
            )
        });
        let transactions = d.transactions.iter().map(|f| -> Row<'_> {
            let ids = if f.candidates.is_empty() {
                &f.suggested
            } else {
                &f.candidates
            };
            (
                "transaction",
                f.transaction.as_str(),
                f.reason.as_str(),
                join(ids.iter().map(PaymentId::as_str)),
                f.difference.map(|x| x.to_string()),
                f.detail.as_deref(),
            )
        });
        let payouts = d.payouts.iter().map(|f| -> Row<'_> {
            (
                "offramp",
                f.offramp.as_str(),
                f.reason.as_str(),
                String::new(),
                None,
                None,
            )
        });
        let mut rows: Vec<Row<'_>> = payments.chain(transactions).chain(payouts).collect();
        // The last word per item wins; a plain INSERT then needs no statement journal,
        // which INSERT OR REPLACE keeps for every row.
        let mut seen = rustc_hash::FxHashSet::default();
        seen.reserve(rows.len());
        rows.reverse();
        rows.retain(|r| seen.insert((r.0, r.1)));
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO findings (run_id, kind, item_id, reason, candidates, difference, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (kind, item, reason, candidates, difference, detail) in rows.iter().rev() {
                st.execute(params![
                    run, kind, item, reason, candidates, difference, detail
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn record_report(&mut self, r: &NewReport<'_>) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| {
            self.begin_batch()?;
            self.conn.execute(
                "INSERT INTO reports (run_id, dir, state, subject, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.run, r.dir.to_string_lossy(), r.state, r.subject, ts(r.now)],
            )?;
            {
                let mut st = self.conn.prepare_cached(
                    "UPDATE matches SET reported_run = ?1 WHERE id = ?2 AND reported_run IS NULL",
                )?;
                for id in r.listed {
                    st.execute(params![r.run, id])?;
                }
            }
            if let Some(mail) = r.mail {
                self.record_mail(r.run, mail, r.named)?;
            }
            self.commit_batch()
        })();
        if result.is_err() {
            self.rollback_batch();
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.checkpoint_soon();
        result
    }

    fn mark_report_written(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE reports SET written_at = ?2 WHERE run_id = ?1 AND written_at IS NULL",
            params![run, ts(now)],
        )?;
        Ok(n == 1)
    }

    fn unwritten_reports(&self) -> Result<Vec<(RunId, PathBuf)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT run_id, dir FROM reports WHERE written_at IS NULL ORDER BY run_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, PathBuf::from(r.get::<_, String>(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn void_report(&mut self, run: RunId) -> Result<usize, StoreError> {
        self.in_tx(|tx| {
            let gone = tx.execute(
                "DELETE FROM reports WHERE run_id = ?1 AND written_at IS NULL",
                [run],
            )?;
            if gone == 0 {
                return Ok(0);
            }
            tx.execute("DELETE FROM alerts WHERE run_id = ?1", [run])?;
            Ok(tx.execute(
                "UPDATE matches SET reported_run = NULL WHERE reported_run = ?1",
                [run],
            )?)
        })
    }

    fn pending_reports(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT run_id, dir, attempts FROM reports
             WHERE state = 'pending' AND written_at IS NOT NULL ORDER BY run_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(OutboxRow {
                run_id: r.get(0)?,
                dir: PathBuf::from(r.get::<_, String>(1)?),
                attempts: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn undelivered_reports(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let (count, oldest): (i64, Option<String>) = self.conn.query_row(
            "SELECT COUNT(*), MIN(created_at) FROM reports
             WHERE state = 'pending' AND written_at IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let oldest = oldest
            .map(|s| parse_ts("reports", "created_at", &s))
            .transpose()?;
        Ok((count.max(0) as u64, oldest))
    }

    fn mark_report_sent(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE reports SET state = 'sent', sent_at = ?2, attempts = attempts + 1, last_error = NULL
             WHERE run_id = ?1 AND state = 'pending'",
            params![run, ts(now)],
        )?;
        Ok(n == 1)
    }

    fn mark_report_failed(&mut self, run: RunId, error: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE reports SET attempts = attempts + 1, last_error = ?2 WHERE run_id = ?1",
            params![run, error],
        )?;
        Ok(())
    }

    fn first_seen_of_run(
        &self,
        run: RunId,
    ) -> Result<std::collections::HashMap<(String, String), DateTime<Utc>>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT f.kind, f.item_id, r.started_at
             FROM findings f
             JOIN runs r ON r.id = (SELECT MIN(g.run_id) FROM findings g
                                    WHERE g.kind = f.kind AND g.item_id = f.item_id)
             WHERE f.run_id = ?1",
        )?;
        let mut rows = st.query([run])?;
        let mut out = std::collections::HashMap::new();
        while let Some(r) = rows.next()? {
            let (kind, id, at): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let at = parse_ts("runs", &id, &at)?;
            out.insert((kind, id), at);
        }
        Ok(out)
    }

    fn report_state(&self, run: RunId) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT state, attempts FROM reports WHERE run_id = ?1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

fn join<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::store::sqlite::tests::open;

    #[test]
    fn a_report_is_marked_sent_only_once() {
        let (_d, mut s) = open();
        let now = Utc::now();
        let run = s.begin_run(now, false, "full").unwrap();
        s.record_report(&report(run, &[], now)).unwrap();
        // Not on disk yet: nothing to deliver.
        assert!(s.pending_reports().unwrap().is_empty());
        assert_eq!(s.undelivered_reports().unwrap().0, 0);
        assert!(s.mark_report_written(run, now).unwrap());
        assert!(!s.mark_report_written(run, now).unwrap());
        assert_eq!(s.pending_reports().unwrap().len(), 1);
        assert_eq!(s.undelivered_reports().unwrap().0, 1);
        assert!(s.mark_report_sent(run, now).unwrap());
        assert!(!s.mark_report_sent(run, now).unwrap());
        assert!(s.pending_reports().unwrap().is_empty());
        assert_eq!(s.undelivered_reports().unwrap(), (0, None));
    }

    fn report<'a>(run: RunId, listed: &'a [i64], now: DateTime<Utc>) -> NewReport<'a> {
        NewReport {
            run,
            dir: Path::new("/tmp/r"),
            state: "pending",
            subject: None,
            listed,
            mail: Some(MailSent::Urgent),
            named: &[],
            now,
        }
    }

    #[test]
    fn a_report_never_written_is_voided_whole_and_its_reconciles_are_unreported_again() {
        use crate::domain::Iban;
        use crate::store::{MatchState, NewMatch, Settlement};
        let (_d, mut s) = open();
        let now = Utc::now();
        let run = s.begin_run(now, false, "full").unwrap();
        let (p, t) = (
            PaymentId::parse("P1").unwrap(),
            BankTxId::parse("T1").unwrap(),
        );
        let iban = Iban::parse("ES9121000418450200051332").unwrap();
        let amount = crate::store::sqlite::tests::eur("150.50");
        let id = s
            .insert_intent(&NewMatch {
                run_id: run,
                payment: &p,
                transaction: &t,
                iban: &iban,
                amount: &amount,
                concept: None,
                now,
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
                now,
            },
        )
        .unwrap();
        let key = crate::store::outage_key(run);
        s.record_report(&NewReport {
            named: std::slice::from_ref(&key),
            ..report(run, &[id], now)
        })
        .unwrap();
        assert!(s.unreported_reconciles().unwrap().is_empty());
        assert_eq!(s.unwritten_reports().unwrap(), [(run, "/tmp/r".into())]);
        assert_eq!(
            s.already_alerted(std::slice::from_ref(&key)).unwrap().len(),
            1
        );

        assert_eq!(s.void_report(run).unwrap(), 1);
        assert_eq!(s.unreported_reconciles().unwrap().len(), 1);
        assert!(s.unwritten_reports().unwrap().is_empty());
        assert!(s.report_state(run).unwrap().is_none());
        assert!(
            s.already_alerted(std::slice::from_ref(&key))
                .unwrap()
                .is_empty()
        );

        // A report on disk is never voided.
        s.record_report(&report(run, &[id], now)).unwrap();
        assert!(s.mark_report_written(run, now).unwrap());
        assert_eq!(s.void_report(run).unwrap(), 0);
        assert!(s.unreported_reconciles().unwrap().is_empty());
    }

    #[test]
    fn a_finding_named_twice_in_a_run_is_stored_once_as_its_last_word() {
        use crate::matching::{PaymentFinding, PayoutFinding, Reason, TransactionFinding};
        let (_d, mut s) = open();
        let run = s.begin_run(Utc::now(), false, "full").unwrap();
        let pay = |id: &str, reason, detail: Option<&str>| PaymentFinding {
            payment: PaymentId::parse(id).unwrap(),
            reason,
            candidates: vec![
                BankTxId::parse("T1").unwrap(),
                BankTxId::parse("T2").unwrap(),
            ],
            difference: None,
            days_pending: 1,
            detail: detail.map(str::to_owned),
        };
        let d = Decisions {
            payments: vec![
                pay("P1", Reason::Ambiguous, None),
                pay("P2", Reason::AmountMismatch, None),
                pay("P1", Reason::ReconcileFailed, Some("E_LOCKED")),
            ],
            transactions: vec![TransactionFinding {
                // The same id as a payment: a different kind, so a different item.
                transaction: BankTxId::parse("P1").unwrap(),
                reason: Reason::NoConcept,
                candidates: Vec::new(),
                suggested: vec![PaymentId::parse("P2").unwrap()],
                difference: Some(Decimal::new(-150, 2)),
                detail: None,
            }],
            payouts: vec![PayoutFinding {
                offramp: crate::domain::OfframpId::parse("O1").unwrap(),
                reason: Reason::PayoutNotSeen,
                days_since_finished: 4,
            }],
            ..Decisions::default()
        };
        s.insert_findings(run, &d).unwrap();
        let rows: Vec<String> = s
            .connection()
            .prepare(
                "SELECT kind || ' ' || item_id || ' ' || reason || ' [' || candidates || '] '
                        || IFNULL(difference, '-') || ' ' || IFNULL(detail, '-')
                 FROM findings WHERE run_id = ?1 ORDER BY kind, item_id",
            )
            .unwrap()
            .query_map([run], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                "offramp O1 payout_not_seen [] - -",
                "payment P1 reconcile_failed [T1 T2] - E_LOCKED",
                "payment P2 amount_mismatch [T1 T2] - -",
                "transaction P1 no_concept [P2] -1.50 -",
            ]
        );
    }
}
