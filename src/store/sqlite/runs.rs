//! Runs and watermarks: each run's row in `runs` and how it read each list
//! (`run_lists`), and the high-water mark up to which a list was read completely
//! (`watermarks`), where the next incremental run starts.

use super::SqliteStore;
use crate::store::*;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

impl RunStore for SqliteStore {
    fn begin_run(
        &mut self,
        started_at: DateTime<Utc>,
        dry_run: bool,
        sync_mode: &str,
    ) -> Result<RunId, StoreError> {
        self.conn.execute(
            "INSERT INTO runs (started_at, dry_run, sync_mode, pid, version)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                ts(started_at),
                dry_run,
                sync_mode,
                std::process::id(),
                env!("CARGO_PKG_VERSION")
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn set_run_token(&mut self, run: RunId, token: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET token = ?2 WHERE id = ?1",
            params![run, token],
        )?;
        Ok(())
    }

    fn finish_run(
        &mut self,
        run: RunId,
        finished_at: DateTime<Utc>,
        end: &RunEnd,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, sync_complete = ?4,
                payments_read = ?5, offramps_read = ?6, accounts_read = ?7, transactions_read = ?8,
                bad_records = ?9, reconcile_calls = ?10, reconciled = ?11, api_requests = ?12,
                api_errors = ?13, summary_json = ?14, error = ?15
             WHERE id = ?1",
            params![
                run,
                ts(finished_at),
                end.outcome,
                end.sync_complete,
                end.payments_read as i64,
                end.offramps_read as i64,
                end.accounts_read as i64,
                end.transactions_read as i64,
                end.bad_records as i64,
                end.reconcile_calls as i64,
                end.reconciled as i64,
                end.api_requests as i64,
                end.api_errors as i64,
                end.summary_json,
                end.error,
            ],
        )?;
        Ok(())
    }

    fn run(&self, run: RunId) -> Result<Option<RunRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, outcome, sync_complete, sync_mode, dry_run, started_at, finished_at, error
                 FROM runs WHERE id = ?1",
                [run],
                |r| {
                    Ok(RunRow {
                        id: r.get(0)?,
                        outcome: r.get(1)?,
                        sync_complete: r.get(2)?,
                        sync_mode: r.get(3)?,
                        dry_run: r.get(4)?,
                        started_at: r.get(5)?,
                        finished_at: r.get(6)?,
                        error: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }

    fn runs_since_full(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM runs WHERE sync_mode <> 'approve' AND id > COALESCE(
                (SELECT MAX(id) FROM runs WHERE sync_mode = 'full' AND outcome = 'completed'), 0)",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn close_abandoned_runs(&mut self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE runs SET outcome = 'failed', finished_at = ?1,
                error = COALESCE(error, 'the process ended before the run finished')
             WHERE outcome = 'running'",
            [ts(now)],
        )?)
    }

    fn record_list(&mut self, run: RunId, l: &ListRead) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO run_lists (run_id, list, complete, pages, items, duplicates, read_from, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (run_id, list) DO UPDATE SET complete = excluded.complete,
                pages = excluded.pages, items = excluded.items, duplicates = excluded.duplicates,
                read_from = excluded.read_from, error = excluded.error",
            params![
                run,
                l.list,
                l.complete,
                l.pages,
                l.items as i64,
                l.duplicates as i64,
                l.read_from.map(ts),
                l.error
            ],
        )?;
        Ok(())
    }

    fn watermark(&self, list: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT high_water FROM watermarks WHERE list = ?1",
                [list],
                |r| r.get(0),
            )
            .optional()?;
        v.map(|s| parse_ts("watermarks", list, &s)).transpose()
    }

    fn watermarks(&self) -> Result<std::collections::HashMap<String, DateTime<Utc>>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT list, high_water FROM watermarks")?;
        let mut rows = st.query([])?;
        let mut out = std::collections::HashMap::new();
        while let Some(r) = rows.next()? {
            let list: String = r.get(0)?;
            let t = parse_ts("watermarks", &list, &r.get::<_, String>(1)?)?;
            out.insert(list, t);
        }
        Ok(out)
    }

    fn count_before(&self, list: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let at = ts(before);
        let n: i64 = match list {
            "payments" => self.conn.query_row(
                "SELECT COUNT(*) FROM payments WHERE created_at < ?1 AND status <> 'vanished'",
                [&at],
                |r| r.get(0),
            )?,
            "rampoffs" => self.conn.query_row(
                "SELECT COUNT(*) FROM offramps WHERE created_at < ?1",
                [&at],
                |r| r.get(0),
            )?,
            _ => match list.strip_prefix("transactions:") {
                Some(iban) => self.conn.query_row(
                    "SELECT COUNT(*) FROM bank_transactions WHERE iban = ?1 AND booked_at < ?2",
                    [iban, &at],
                    |r| r.get(0),
                )?,
                None => return Err(corrupt("watermarks", list, "not a list with a timestamp")),
            },
        };
        Ok(n as u64)
    }

    fn oldest_pending_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let oldest: Option<String> = self.conn.query_row(
            "SELECT MIN(created_at) FROM payments
             WHERE status = 'pending_bank' AND created_at >= ?1",
            [ts(since)],
            |r| r.get(0),
        )?;
        oldest
            .map(|t| parse_ts("payments", "oldest pending", &t))
            .transpose()
    }

    fn last_complete_sync(&self, run: RunId) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        let row: Option<(RunId, String)> = self
            .conn
            .query_row(
                "SELECT id, started_at FROM runs WHERE sync_complete = 1 AND id < ?1
                 ORDER BY id DESC LIMIT 1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(id, at)| Ok((id, parse_ts("runs", &id.to_string(), &at)?)))
            .transpose()
    }

    fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<String> = self.conn.query_row(
            "SELECT MAX(finished_at) FROM runs WHERE outcome = 'completed' AND sync_mode <> 'approve'",
            [],
            |r| r.get(0),
        )?;
        v.map(|s| parse_ts("runs", "finished_at", &s)).transpose()
    }

    fn set_watermark(
        &mut self,
        list: &str,
        high_water: DateTime<Utc>,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO watermarks (list, high_water, run_id, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (list) DO UPDATE SET high_water = MAX(high_water, excluded.high_water),
                run_id = excluded.run_id, updated_at = excluded.updated_at",
            params![list, ts(high_water), run, ts(now)],
        )?;
        Ok(())
    }
}
