//! What `cp-recon status` shows, read in one go: the last runs, the open items of the
//! last complete run by reason, the reports not delivered yet, and what blocks automation.

use super::SqliteStore;
use crate::store::*;
use rusqlite::OptionalExtension;

const RUN_COLUMNS: &str = "id, started_at, finished_at, outcome, sync_mode, dry_run, reconciled,
    (SELECT COUNT(*) FROM findings f WHERE f.run_id = runs.id), error";

fn run_line(r: &rusqlite::Row<'_>) -> Result<RunLine, StoreError> {
    const T: &str = "runs";
    let id: RunId = r.get(0)?;
    let sid = id.to_string();
    Ok(RunLine {
        id,
        started_at: parse_ts(T, &sid, &r.get::<_, String>(1)?)?,
        finished_at: r
            .get::<_, Option<String>>(2)?
            .map(|s| parse_ts(T, &sid, &s))
            .transpose()?,
        outcome: r.get(3)?,
        sync_mode: r.get(4)?,
        dry_run: r.get(5)?,
        reconciled: r.get::<_, i64>(6)?.max(0) as u64,
        reported: r.get::<_, i64>(7)?.max(0) as u64,
        error: r.get(8)?,
    })
}

impl StatusStore for SqliteStore {
    fn status(&self, runs: usize) -> Result<StatusData, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
        ))?;
        let mut rows = st.query([runs as i64])?;
        let mut recent = Vec::new();
        while let Some(r) = rows.next()? {
            recent.push(run_line(r)?);
        }
        let last_complete = self
            .conn
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE outcome = 'completed'
                     ORDER BY id DESC LIMIT 1"
                ),
                [],
                |r| Ok(run_line(r)),
            )
            .optional()?
            .transpose()?;
        let open = match &last_complete {
            Some(run) => self.open_groups(run.id)?,
            None => Vec::new(),
        };
        let finished: Option<RunId> = self
            .conn
            .query_row(
                "SELECT MAX(id) FROM runs WHERE outcome <> 'running'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let blockers = match finished {
            Some(run) => self.blockers(run)?,
            None => Vec::new(),
        };
        Ok(StatusData {
            runs: recent,
            last_complete,
            open,
            undelivered: self.undelivered()?,
            blockers,
        })
    }
}

impl SqliteStore {
    fn open_groups(&self, run: RunId) -> Result<Vec<OpenGroup>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT f.kind, f.reason, COUNT(*),
                    MIN(COALESCE(p.created_at, t.booked_at, o.updated_at, o.created_at))
             FROM findings f
             LEFT JOIN payments p ON f.kind = 'payment' AND p.id = f.item_id
             LEFT JOIN bank_transactions t ON f.kind = 'transaction' AND t.id = f.item_id
             LEFT JOIN offramps o ON f.kind = 'offramp' AND o.id = f.item_id
             WHERE f.run_id = ?1
             GROUP BY f.kind, f.reason
             ORDER BY f.kind, COUNT(*) DESC, f.reason",
        )?;
        let mut rows = st.query([run])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let kind: String = r.get(0)?;
            let reason: String = r.get(1)?;
            let oldest = r
                .get::<_, Option<String>>(3)?
                .map(|s| parse_ts("findings", &format!("{kind} {reason}"), &s))
                .transpose()?;
            out.push(OpenGroup {
                count: r.get::<_, i64>(2)?.max(0) as u64,
                kind,
                reason,
                oldest,
            });
        }
        Ok(out)
    }

    fn undelivered(&self) -> Result<Vec<UndeliveredReport>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT run_id, dir, attempts, last_error FROM reports
             WHERE state = 'pending' AND written_at IS NOT NULL ORDER BY run_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(UndeliveredReport {
                run_id: r.get(0)?,
                dir: r.get(1)?,
                attempts: r.get(2)?,
                last_error: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn blockers(&self, run: RunId) -> Result<Vec<Blocker>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT endpoint, record_id, error FROM bad_records WHERE run_id = ?1
             UNION ALL
             SELECT list, NULL, COALESCE(error, 'not read in full') FROM run_lists
             WHERE run_id = ?1 AND complete = 0",
        )?;
        let rows = st.query_map([run], |r| {
            Ok(Blocker {
                source: r.get(0)?,
                record: r.get(1)?,
                error: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
