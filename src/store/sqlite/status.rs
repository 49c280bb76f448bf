//! What `cp-recon status` shows, read in one go: the last runs, the open items of the
//! last complete run by reason, the reports not delivered yet, and what blocks automation.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::{RunId, Store, StoreError, parse_ts};

/// One run, as the status screen lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLine {
    pub id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `completed`, `incomplete` or `failed`.
    pub outcome: String,
    pub sync_mode: String,
    pub dry_run: bool,
    pub reconciled: u64,
    /// Items the run reported for a person.
    pub reported: u64,
    pub error: Option<String>,
}

/// The open items of one kind and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGroup {
    /// `payment`, `transaction` or `offramp`.
    pub kind: String,
    pub reason: String,
    pub count: u64,
    /// When the oldest of them was created (a payment), booked (a transaction) or
    /// finished (an off-ramp payout).
    pub oldest: Option<DateTime<Utc>>,
}

/// A report written to disk and not e-mailed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeliveredReport {
    pub run_id: RunId,
    pub dir: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Something that keeps runs from reconciling: a record that cannot be read, or a list
/// that was not read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// An endpoint (`/payments`) or a list name (`transactions:ES91…`).
    pub source: String,
    /// The record's id, when known.
    pub record: Option<String>,
    pub error: String,
}

/// Everything the status screen shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusData {
    /// Newest first.
    pub runs: Vec<RunLine>,
    /// The last run that read every list (what the open items come from).
    pub last_complete: Option<RunLine>,
    pub open: Vec<OpenGroup>,
    pub undelivered: Vec<UndeliveredReport>,
    /// From the newest finished run.
    pub blockers: Vec<Blocker>,
}

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

impl Store {
    /// The status screen's data; `runs` is how many of the last runs to list.
    pub fn status(&self, runs: usize) -> Result<StatusData, StoreError> {
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
