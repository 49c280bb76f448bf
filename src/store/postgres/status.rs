//! The status part of the store on PostgreSQL (`store/status.rs`): the screen's
//! statements run in one job on the session's thread, and the rows are mapped here,
//! so that a bad stored timestamp is `Corrupt` as on SQLite.

use crate::store::*;
use ::postgres::Row;

use super::PgStore;

const RUN_COLUMNS: &str = "id, started_at, finished_at, outcome, sync_mode, dry_run, reconciled,
    (SELECT COUNT(*) FROM findings f WHERE f.run_id = runs.id), error";

fn run_line(r: &Row) -> Result<RunLine, StoreError> {
    const T: &str = "runs";
    let id: RunId = r.get(0);
    let sid = id.to_string();
    Ok(RunLine {
        id,
        started_at: parse_ts(T, &sid, r.get(1))?,
        finished_at: r
            .get::<_, Option<&str>>(2)
            .map(|s| parse_ts(T, &sid, s))
            .transpose()?,
        outcome: r.get(3),
        sync_mode: r.get(4),
        dry_run: r.get::<_, i64>(5) != 0,
        reconciled: r.get::<_, i64>(6).max(0) as u64,
        reported: r.get::<_, i64>(7).max(0) as u64,
        error: r.get(8),
    })
}

fn open_group(r: &Row) -> Result<OpenGroup, StoreError> {
    let kind: String = r.get(0);
    let reason: String = r.get(1);
    let oldest = r
        .get::<_, Option<&str>>(3)
        .map(|s| parse_ts("findings", &format!("{kind} {reason}"), s))
        .transpose()?;
    Ok(OpenGroup {
        count: r.get::<_, i64>(2).max(0) as u64,
        kind,
        reason,
        oldest,
    })
}

/// The screen's rows, as the server returned them.
struct Rows {
    recent: Vec<Row>,
    last_complete: Option<Row>,
    open: Vec<Row>,
    undelivered: Vec<Row>,
    blockers: Vec<Row>,
}

impl StatusStore for PgStore {
    fn status(&self, runs: usize) -> Result<StatusData, StoreError> {
        let limit = i64::try_from(runs).unwrap_or(i64::MAX);
        let rows = self.run(move |c| {
            let recent = c.query(
                &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1"),
                &[&limit],
            )?;
            let last_complete = c.query_opt(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE outcome = 'completed'
                     ORDER BY id DESC LIMIT 1"
                ),
                &[],
            )?;
            let open = match &last_complete {
                Some(run) => {
                    let id: RunId = run.try_get(0)?;
                    c.query(
                        "SELECT f.kind, f.reason, COUNT(*),
                                MIN(COALESCE(p.created_at, t.booked_at, o.updated_at, o.created_at))
                         FROM findings f
                         LEFT JOIN payments p ON f.kind = 'payment' AND p.id = f.item_id
                         LEFT JOIN bank_transactions t
                                ON f.kind = 'transaction' AND t.id = f.item_id
                         LEFT JOIN offramps o ON f.kind = 'offramp' AND o.id = f.item_id
                         WHERE f.run_id = $1
                         GROUP BY f.kind, f.reason
                         ORDER BY f.kind, COUNT(*) DESC, f.reason",
                        &[&id],
                    )?
                }
                None => Vec::new(),
            };
            let undelivered = c.query(
                "SELECT run_id, dir, attempts, last_error FROM reports
                 WHERE state = 'pending' AND written_at IS NOT NULL ORDER BY run_id",
                &[],
            )?;
            // The bad records in the order they were stored, then the lists not read
            // in full by name: the order SQLite's plan gives the same query.
            let blockers = c.query(
                "SELECT source, record, error FROM (
                     SELECT 0 AS part, id AS n, endpoint AS source, record_id AS record, error
                     FROM bad_records
                     WHERE run_id = (SELECT MAX(id) FROM runs WHERE outcome <> 'running')
                     UNION ALL
                     SELECT 1, 0, list, NULL, COALESCE(error, 'not read in full')
                     FROM run_lists
                     WHERE run_id = (SELECT MAX(id) FROM runs WHERE outcome <> 'running')
                       AND complete = 0
                 ) b
                 ORDER BY part, n, source",
                &[],
            )?;
            Ok(Rows {
                recent,
                last_complete,
                open,
                undelivered,
                blockers,
            })
        })?;
        Ok(StatusData {
            runs: rows.recent.iter().map(run_line).collect::<Result<_, _>>()?,
            last_complete: rows.last_complete.as_ref().map(run_line).transpose()?,
            open: rows.open.iter().map(open_group).collect::<Result<_, _>>()?,
            undelivered: rows
                .undelivered
                .iter()
                .map(|r| UndeliveredReport {
                    run_id: r.get(0),
                    dir: r.get(1),
                    attempts: r.get(2),
                    last_error: r.get(3),
                })
                .collect(),
            blockers: rows
                .blockers
                .iter()
                .map(|r| Blocker {
                    source: r.get(0),
                    record: r.get(1),
                    error: r.get(2),
                })
                .collect(),
        })
    }
}
