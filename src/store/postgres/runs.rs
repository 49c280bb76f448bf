//! The runs part of the store on PostgreSQL (`store/runs.rs`): the same statements
//! as SQLite's, each one round trip, with `RETURNING id` for a new run and
//! `GREATEST` where SQLite takes the scalar `MAX` of two values.

use std::collections::HashMap;

use crate::store::*;
use chrono::{DateTime, Utc};

use super::PgStore;

impl RunStore for PgStore {
    fn begin_run(
        &mut self,
        started_at: DateTime<Utc>,
        dry_run: bool,
        sync_mode: &str,
    ) -> Result<RunId, StoreError> {
        let (started_at, dry_run, sync_mode) =
            (ts(started_at), i64::from(dry_run), sync_mode.to_owned());
        let pid = i64::from(std::process::id());
        self.run(move |c| {
            Ok(c.query_one(
                "INSERT INTO runs (started_at, dry_run, sync_mode, pid, version)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &started_at,
                    &dry_run,
                    &sync_mode,
                    &pid,
                    &env!("CARGO_PKG_VERSION"),
                ],
            )?
            .get(0))
        })
    }

    fn set_run_token(&mut self, run: RunId, token: &str) -> Result<(), StoreError> {
        let token = token.to_owned();
        self.run(move |c| {
            c.execute("UPDATE runs SET token = $2 WHERE id = $1", &[&run, &token])?;
            Ok(())
        })
    }

    fn finish_run(
        &mut self,
        run: RunId,
        finished_at: DateTime<Utc>,
        end: &RunEnd,
    ) -> Result<(), StoreError> {
        let finished_at = ts(finished_at);
        let outcome = end.outcome.clone();
        let sync_complete = i64::from(end.sync_complete);
        let counts: [i64; 9] = [
            end.payments_read,
            end.offramps_read,
            end.accounts_read,
            end.transactions_read,
            end.bad_records,
            end.reconcile_calls,
            end.reconciled,
            end.api_requests,
            end.api_errors,
        ]
        .map(|n| n as i64);
        let (summary_json, error) = (end.summary_json.clone(), end.error.clone());
        self.run(move |c| {
            let [pr, or, ar, tr, bad, calls, rec, req, errs] = &counts;
            c.execute(
                "UPDATE runs SET finished_at = $2, outcome = $3, sync_complete = $4,
                    payments_read = $5, offramps_read = $6, accounts_read = $7,
                    transactions_read = $8, bad_records = $9, reconcile_calls = $10,
                    reconciled = $11, api_requests = $12, api_errors = $13,
                    summary_json = $14, error = $15
                 WHERE id = $1",
                &[
                    &run,
                    &finished_at,
                    &outcome,
                    &sync_complete,
                    pr,
                    or,
                    ar,
                    tr,
                    bad,
                    calls,
                    rec,
                    req,
                    errs,
                    &summary_json,
                    &error,
                ],
            )?;
            Ok(())
        })
    }

    fn run(&self, run: RunId) -> Result<Option<RunRow>, StoreError> {
        let row = self.run(move |c| {
            c.query_opt(
                "SELECT id, outcome, sync_complete, sync_mode, dry_run, started_at,
                        finished_at, error
                 FROM runs WHERE id = $1",
                &[&run],
            )
        })?;
        Ok(row.map(|r| RunRow {
            id: r.get(0),
            outcome: r.get(1),
            sync_complete: r.get::<_, i64>(2) != 0,
            sync_mode: r.get(3),
            dry_run: r.get::<_, i64>(4) != 0,
            started_at: r.get(5),
            finished_at: r.get(6),
            error: r.get(7),
        }))
    }

    fn runs_since_full(&self) -> Result<u64, StoreError> {
        let n: i64 = self.run(|c| {
            Ok(c.query_one(
                "SELECT COUNT(*) FROM runs WHERE sync_mode <> 'approve' AND id > COALESCE(
                    (SELECT MAX(id) FROM runs WHERE sync_mode = 'full' AND outcome = 'completed'),
                    0)",
                &[],
            )?
            .get(0))
        })?;
        Ok(n as u64)
    }

    fn close_abandoned_runs(&mut self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let now = ts(now);
        let n = self.run(move |c| {
            c.execute(
                "UPDATE runs SET outcome = 'failed', finished_at = $1,
                    error = COALESCE(error, 'the process ended before the run finished')
                 WHERE outcome = 'running'",
                &[&now],
            )
        })?;
        Ok(n as usize)
    }

    fn record_list(&mut self, run: RunId, l: &ListRead) -> Result<(), StoreError> {
        let list = l.list.clone();
        let complete = i64::from(l.complete);
        let pages = i64::from(l.pages);
        let (items, duplicates) = (l.items as i64, l.duplicates as i64);
        let read_from = l.read_from.map(ts);
        let error = l.error.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO run_lists (run_id, list, complete, pages, items, duplicates,
                    read_from, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (run_id, list) DO UPDATE SET complete = excluded.complete,
                    pages = excluded.pages, items = excluded.items,
                    duplicates = excluded.duplicates, read_from = excluded.read_from,
                    error = excluded.error",
                &[
                    &run,
                    &list,
                    &complete,
                    &pages,
                    &items,
                    &duplicates,
                    &read_from,
                    &error,
                ],
            )?;
            Ok(())
        })
    }

    fn watermark(&self, list: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let name = list.to_owned();
        let v: Option<String> = self.run(move |c| {
            Ok(c.query_opt(
                "SELECT high_water FROM watermarks WHERE list = $1",
                &[&name],
            )?
            .map(|r| r.get(0)))
        })?;
        v.map(|s| parse_ts("watermarks", list, &s)).transpose()
    }

    fn watermarks(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows = self.run(|c| c.query("SELECT list, high_water FROM watermarks", &[]))?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let list: String = r.get(0);
            let t = parse_ts("watermarks", &list, r.get(1))?;
            out.insert(list, t);
        }
        Ok(out)
    }

    fn count_before(&self, list: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let at = ts(before);
        let iban = match list {
            "payments" | "rampoffs" => None,
            _ => match list.strip_prefix("transactions:") {
                Some(iban) => Some(iban.to_owned()),
                None => return Err(corrupt("watermarks", list, "not a list with a timestamp")),
            },
        };
        let payments = list == "payments";
        let n: i64 = self.run(move |c| {
            let row = match (&iban, payments) {
                (Some(iban), _) => c.query_one(
                    "SELECT COUNT(*) FROM bank_transactions WHERE iban = $1 AND booked_at < $2",
                    &[iban, &at],
                )?,
                (None, true) => c.query_one(
                    "SELECT COUNT(*) FROM payments WHERE created_at < $1 AND status <> 'vanished'",
                    &[&at],
                )?,
                (None, false) => c.query_one(
                    "SELECT COUNT(*) FROM offramps WHERE created_at < $1",
                    &[&at],
                )?,
            };
            Ok(row.get(0))
        })?;
        Ok(n as u64)
    }

    fn oldest_pending_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let since = ts(since);
        let oldest: Option<String> = self.run(move |c| {
            Ok(c.query_one(
                "SELECT MIN(created_at) FROM payments
                 WHERE status = 'pending_bank' AND created_at >= $1",
                &[&since],
            )?
            .get(0))
        })?;
        oldest
            .map(|t| parse_ts("payments", "oldest pending", &t))
            .transpose()
    }

    fn last_complete_sync(&self, run: RunId) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        let row: Option<(RunId, String)> = self.run(move |c| {
            Ok(c.query_opt(
                "SELECT id, started_at FROM runs WHERE sync_complete = 1 AND id < $1
                 ORDER BY id DESC LIMIT 1",
                &[&run],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })?;
        row.map(|(id, at)| Ok((id, parse_ts("runs", &id.to_string(), &at)?)))
            .transpose()
    }

    fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<String> = self.run(|c| {
            Ok(c.query_one(
                "SELECT MAX(finished_at) FROM runs
                 WHERE outcome = 'completed' AND sync_mode <> 'approve'",
                &[],
            )?
            .get(0))
        })?;
        v.map(|s| parse_ts("runs", "finished_at", &s)).transpose()
    }

    fn set_watermark(
        &mut self,
        list: &str,
        high_water: DateTime<Utc>,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (list, high_water, now) = (list.to_owned(), ts(high_water), ts(now));
        self.run(move |c| {
            c.execute(
                "INSERT INTO watermarks (list, high_water, run_id, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (list) DO UPDATE SET
                    high_water = GREATEST(watermarks.high_water, excluded.high_water),
                    run_id = excluded.run_id, updated_at = excluded.updated_at",
                &[&list, &high_water, &run, &now],
            )?;
            Ok(())
        })
    }
}
