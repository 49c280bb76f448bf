//! What a digest reads about its period: the last digest delivered, the reconciles
//! listed since, and the items reported since that are no longer open.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::{RunId, Store, StoreError, corrupt, decimal, parse_ts};
use crate::domain::{BankTxId, Concept, Currency, Money, PaymentId};
use crate::report::period::{ClosedItem, PeriodReconcile};

impl Store {
    /// The last full report delivered (sent over SMTP, not merely queued) of a run
    /// before `run`: that run and when it started.
    pub fn last_delivered_digest(
        &self,
        run: RunId,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        let row: Option<(RunId, String)> = self
            .conn
            .query_row(
                "SELECT o.run_id, r.started_at FROM reports o JOIN runs r ON r.id = o.run_id
                 WHERE o.mail = 'full' AND o.state = 'sent' AND o.run_id < ?1
                 ORDER BY o.run_id DESC LIMIT 1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(id, at)| Ok((id, parse_ts("runs", &id.to_string(), &at)?)))
            .transpose()
    }

    /// The reconciles listed by the reports of runs after `after`, or by no report
    /// yet (the current one lists them), oldest first, with who approved each when a
    /// person did.
    pub fn reconciles_listed_after(
        &self,
        after: RunId,
    ) -> Result<Vec<PeriodReconcile>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT m.id, m.payment_id, m.transaction_id, m.amount, m.currency, m.concept,
                    COALESCE(m.settled_at, m.created_at), COALESCE(m.settled_run, m.run_id),
                    (SELECT d.by FROM decisions d
                     WHERE d.match_id = m.id AND d.action = 'approve' ORDER BY d.id LIMIT 1)
             FROM matches m
             WHERE m.state = 'reconciled' AND (m.reported_run > ?1 OR m.reported_run IS NULL)
             ORDER BY 7, m.id",
        )?;
        let mut rows = st.query([after])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let sid = id.to_string();
            let bad = |e: crate::domain::DomainError| corrupt("matches", &sid, e);
            let (p, t): (String, String) = (r.get(1)?, r.get(2)?);
            let concept: Option<String> = r.get(5)?;
            out.push(PeriodReconcile {
                payment_id: PaymentId::parse(p).map_err(bad)?,
                transaction_id: BankTxId::parse(t).map_err(bad)?,
                amount: money(
                    "matches",
                    &sid,
                    &r.get::<_, String>(3)?,
                    &r.get::<_, String>(4)?,
                )?,
                concept: concept.map(Concept::parse).transpose().map_err(bad)?,
                reconciled_at: parse_ts("matches", &sid, &r.get::<_, String>(6)?)?,
                run_id: r.get(7)?,
                approved_by: r.get(8)?,
            });
        }
        Ok(out)
    }

    /// The items the runs after `after` and before `run` reported that `run` does not
    /// report (its findings must be stored): each with its last reason, its amount,
    /// and the reconcile that tied it, if any.
    pub fn closed_items_after(
        &self,
        after: RunId,
        run: RunId,
    ) -> Result<Vec<ClosedItem>, StoreError> {
        let mut st = self.conn.prepare(
            "WITH period AS (
                 SELECT kind, item_id, MAX(run_id) AS last_run FROM findings
                 WHERE run_id > ?1 AND run_id < ?2 GROUP BY kind, item_id
             ),
             closed AS (
                 SELECT p.kind, p.item_id, p.last_run, f.reason,
                        (SELECT m.id FROM matches m WHERE m.state = 'reconciled'
                           AND ((p.kind = 'payment' AND m.payment_id = p.item_id)
                             OR (p.kind = 'transaction' AND m.transaction_id = p.item_id))
                         ORDER BY m.id DESC LIMIT 1) AS match_id
                 FROM period p
                 JOIN findings f ON f.run_id = p.last_run AND f.kind = p.kind
                                AND f.item_id = p.item_id
                 WHERE NOT EXISTS (SELECT 1 FROM findings n WHERE n.run_id = ?2
                                   AND n.kind = p.kind AND n.item_id = p.item_id)
             )
             SELECT c.kind, c.item_id, c.last_run, c.reason,
                    COALESCE(pa.amount, bt.amount, o.amount),
                    COALESCE(pa.currency, bt.currency, o.currency),
                    COALESCE(m.settled_run, m.run_id),
                    (SELECT d.by FROM decisions d
                     WHERE d.match_id = c.match_id AND d.action = 'approve'
                     ORDER BY d.id LIMIT 1)
             FROM closed c
             LEFT JOIN payments pa ON c.kind = 'payment' AND pa.id = c.item_id
             LEFT JOIN bank_transactions bt ON c.kind = 'transaction' AND bt.id = c.item_id
             LEFT JOIN offramps o ON c.kind = 'offramp' AND o.id = c.item_id
             LEFT JOIN matches m ON m.id = c.match_id
             ORDER BY c.kind, c.item_id",
        )?;
        let mut rows = st.query([after, run])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let (kind, item_id): (String, String) = (r.get(0)?, r.get(1)?);
            let (amount, currency): (Option<String>, Option<String>) = (r.get(4)?, r.get(5)?);
            let amount = match (amount, currency) {
                (Some(a), Some(c)) => Some(money("findings", &item_id, &a, &c)?),
                _ => None,
            };
            out.push(ClosedItem {
                last_run: r.get(2)?,
                reason: r.get(3)?,
                amount,
                reconciled_by_run: r.get(6)?,
                approved_by: r.get(7)?,
                kind,
                item_id,
            });
        }
        Ok(out)
    }
}

fn money(table: &'static str, id: &str, amount: &str, currency: &str) -> Result<Money, StoreError> {
    let amount = decimal(table, id, amount)?;
    let currency = Currency::parse(currency).map_err(|e| corrupt(table, id, e))?;
    Ok(Money::from_units(amount, currency))
}
