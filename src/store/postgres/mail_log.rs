//! The mail log part of the store on PostgreSQL (`store/mail_log.rs`). The keys a
//! mail names are sent as arrays, so checking or recording a hundred of them is one
//! statement.

use crate::store::*;
use chrono::{DateTime, Utc};

use super::PgStore;

/// The keys as three parallel arrays (kind, item id, reason), for `UNNEST`.
fn columns(keys: &[AlertKey]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let kinds = keys.iter().map(|k| k.kind.clone()).collect();
    let items = keys.iter().map(|k| k.item_id.clone()).collect();
    let reasons = keys.iter().map(|k| k.reason.clone()).collect();
    (kinds, items, reasons)
}

impl MailLogStore for PgStore {
    fn last_digest_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = self.run(|c| {
            Ok(c.query_one(
                "SELECT MAX(created_at) FROM reports WHERE mail = 'full'",
                &[],
            )?
            .get(0))
        })?;
        at.map(|s| parse_ts("reports", "last digest", &s))
            .transpose()
    }

    fn already_alerted(&self, keys: &[AlertKey]) -> Result<Vec<AlertKey>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (kinds, items, reasons) = columns(keys);
        // The keys' positions (1-based), in the order they were given.
        let seen: Vec<i64> = self.run(move |c| {
            Ok(c.query(
                "SELECT k.n FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[])
                     WITH ORDINALITY AS k(kind, item_id, reason, n)
                 WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.kind = k.kind
                               AND a.item_id = k.item_id AND a.reason = k.reason)
                 ORDER BY k.n",
                &[&kinds, &items, &reasons],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        seen.into_iter()
            .map(|n| {
                usize::try_from(n - 1)
                    .ok()
                    .and_then(|i| keys.get(i))
                    .cloned()
                    .ok_or_else(|| corrupt("alerts", &n.to_string(), "not a key asked for"))
            })
            .collect()
    }

    fn record_mail(
        &mut self,
        run: RunId,
        mail: MailSent,
        named: &[AlertKey],
    ) -> Result<(), StoreError> {
        let mail = mail.as_str();
        let (kinds, items, reasons) = columns(named);
        self.in_tx(move |c| {
            c.execute(
                "UPDATE reports SET mail = $2 WHERE run_id = $1",
                &[&run, &mail],
            )?;
            if !kinds.is_empty() {
                c.execute(
                    "INSERT INTO alerts (kind, item_id, reason, run_id)
                     SELECT kind, item_id, reason, $4::BIGINT
                     FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS k(kind, item_id, reason)
                     ON CONFLICT (kind, item_id, reason) DO NOTHING",
                    &[&kinds, &items, &reasons, &run],
                )?;
            }
            Ok(())
        })
    }

    fn failing_since(&self, run: RunId) -> Result<Option<Failing>, StoreError> {
        let row: Option<(RunId, String)> = self.run(move |c| {
            Ok(c.query_opt(
                "SELECT id, started_at FROM runs
                 WHERE sync_mode <> 'approve' AND outcome <> 'completed' AND id <= $1
                   AND id > COALESCE((SELECT MAX(id) FROM runs
                                      WHERE outcome = 'completed' AND sync_mode <> 'approve'), 0)
                 ORDER BY id LIMIT 1",
                &[&run],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })?;
        row.map(|(first_run, at)| {
            Ok(Failing {
                first_run,
                since: parse_ts("runs", &first_run.to_string(), &at)?,
            })
        })
        .transpose()
    }
}
