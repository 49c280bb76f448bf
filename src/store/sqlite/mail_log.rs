//! What each report mailed: the digest's last slot, the urgent items already named, and
//! whether a mail has said that runs are failing (`migrations/0009_mail_log.sql`).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{RunId, Store, StoreError, parse_ts};

/// An item a mail named as urgent: `kind` (`payment`, `transaction`, `offramp`,
/// `bad_record`, or `outage`), its id, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub kind: String,
    pub item_id: String,
    pub reason: String,
}

/// Which mail a report was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailSent {
    Full,
    Urgent,
}

impl MailSent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Urgent => "urgent",
        }
    }
}

/// Runs that did not complete since the last one that did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The first of them.
    pub first_run: RunId,
    pub since: DateTime<Utc>,
}

impl Store {
    /// When the last full report (digest) was queued, if ever.
    pub fn last_digest_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = self
            .conn
            .query_row(
                "SELECT MAX(created_at) FROM reports WHERE mail = 'full'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        at.map(|s| parse_ts("reports", "last digest", &s))
            .transpose()
    }

    /// Of `keys`, those an earlier mail already named.
    pub fn already_alerted(&self, keys: &[AlertKey]) -> Result<Vec<AlertKey>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT 1 FROM alerts WHERE kind = ?1 AND item_id = ?2 AND reason = ?3",
        )?;
        let mut seen = Vec::new();
        for k in keys {
            if st.exists(params![k.kind, k.item_id, k.reason])? {
                seen.push(k.clone());
            }
        }
        Ok(seen)
    }

    /// Records which mail run `run`'s report was, and the urgent items it named, in one
    /// transaction.
    pub fn record_mail(
        &mut self,
        run: RunId,
        mail: MailSent,
        named: &[AlertKey],
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            tx.execute(
                "UPDATE reports SET mail = ?2 WHERE run_id = ?1",
                params![run, mail.as_str()],
            )?;
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO alerts (kind, item_id, reason, run_id) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for k in named {
                st.execute(params![k.kind, k.item_id, k.reason, run])?;
            }
            Ok(())
        })
    }

    /// The runs since the last completed one, if `run` is among runs that did not
    /// complete: the first of them and when it started. Approve runs do not count.
    pub fn failing_since(&self, run: RunId) -> Result<Option<Failing>, StoreError> {
        let row: Option<(RunId, String)> = self
            .conn
            .query_row(
                "SELECT id, started_at FROM runs
                 WHERE sync_mode <> 'approve' AND outcome <> 'completed' AND id <= ?1
                   AND id > COALESCE((SELECT MAX(id) FROM runs
                                      WHERE outcome = 'completed' AND sync_mode <> 'approve'), 0)
                 ORDER BY id LIMIT 1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(first_run, at)| {
            Ok(Failing {
                first_run,
                since: parse_ts("runs", &first_run.to_string(), &at)?,
            })
        })
        .transpose()
    }
}

/// The key that records an outage alert for runs failing since `first_run`.
pub fn outage_key(first_run: RunId) -> AlertKey {
    AlertKey {
        kind: "outage".to_owned(),
        item_id: first_run.to_string(),
        reason: "failing".to_owned(),
    }
}
