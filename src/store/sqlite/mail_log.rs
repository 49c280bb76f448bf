//! What each report mailed: the digest's last slot, the urgent items already named, and
//! whether a mail has said that runs are failing (`migrations/0009_mail_log.sql`).

use super::SqliteStore;
use crate::store::*;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

impl MailLogStore for SqliteStore {
    fn last_digest_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
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

    fn already_alerted(&self, keys: &[AlertKey]) -> Result<Vec<AlertKey>, StoreError> {
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

    fn record_mail(
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

    fn failing_since(&self, run: RunId) -> Result<Option<Failing>, StoreError> {
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
