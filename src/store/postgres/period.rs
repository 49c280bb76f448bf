//! The period part of the store on PostgreSQL (`store/period.rs`): SQLite's
//! statements, each one round trip, with the rows mapped here so that a bad stored id,
//! amount or timestamp is `Corrupt` as on SQLite.

use crate::domain::{BankTxId, Concept, Currency, Money, PaymentId};
use crate::report::period::{ClosedItem, PeriodReconcile};
use crate::store::*;
use chrono::{DateTime, Utc};

use super::PgStore;

impl PeriodStore for PgStore {
    fn last_delivered_digest(
        &self,
        run: RunId,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        let row: Option<(RunId, String)> = self.run(move |c| {
            Ok(c.query_opt(
                "SELECT o.run_id, r.started_at FROM reports o JOIN runs r ON r.id = o.run_id
                 WHERE o.mail = 'full' AND o.state = 'sent' AND o.run_id < $1
                 ORDER BY o.run_id DESC LIMIT 1",
                &[&run],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })?;
        row.map(|(id, at)| Ok((id, parse_ts("runs", &id.to_string(), &at)?)))
            .transpose()
    }

    fn first_run_since_if_older(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        let at = ts(at);
        let row: Option<(RunId, String)> = self.run(move |c| {
            Ok(c.query_opt(
                "SELECT id, started_at FROM runs
                 WHERE started_at >= $1 AND sync_mode <> 'approve'
                   AND (SELECT MIN(started_at) FROM runs) < $1
                 ORDER BY id LIMIT 1",
                &[&at],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })?;
        row.map(|(id, t)| Ok((id, parse_ts("runs", &id.to_string(), &t)?)))
            .transpose()
    }

    fn reconciles_listed_after(&self, after: RunId) -> Result<Vec<PeriodReconcile>, StoreError> {
        let rows = self.run(move |c| {
            c.query(
                "SELECT m.id, m.payment_id, m.transaction_id, m.amount, m.currency, m.concept,
                        COALESCE(m.settled_at, m.created_at), COALESCE(m.settled_run, m.run_id),
                        (SELECT d.by FROM decisions d
                         WHERE d.kind = 'payment' AND d.item_id = m.payment_id
                           AND d.match_id = m.id AND d.action = 'approve'
                         ORDER BY d.id LIMIT 1)
                 FROM matches m
                 WHERE m.state = 'reconciled' AND (m.reported_run > $1 OR m.reported_run IS NULL)
                 ORDER BY 7, m.id",
                &[&after],
            )
        })?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let sid = id.to_string();
                let bad = |e: crate::domain::DomainError| corrupt("matches", &sid, e);
                let concept: Option<String> = r.get(5);
                Ok(PeriodReconcile {
                    payment_id: PaymentId::parse(r.get::<_, String>(1)).map_err(bad)?,
                    transaction_id: BankTxId::parse(r.get::<_, String>(2)).map_err(bad)?,
                    amount: money("matches", &sid, r.get(3), r.get(4))?,
                    concept: concept.map(Concept::parse).transpose().map_err(bad)?,
                    reconciled_at: parse_ts("matches", &sid, r.get(6))?,
                    run_id: r.get(7),
                    approved_by: r.get(8),
                })
            })
            .collect()
    }

    fn closed_items_after(&self, after: RunId, run: RunId) -> Result<Vec<ClosedItem>, StoreError> {
        let rows = self.run(move |c| {
            c.query(
                "WITH period AS (
                     SELECT kind, item_id, MAX(run_id) AS last_run FROM findings
                     WHERE run_id >= $1 AND run_id < $2 GROUP BY kind, item_id
                 ),
                 closed AS (
                     SELECT p.kind, p.item_id, p.last_run, f.reason,
                            CASE p.kind
                              WHEN 'payment' THEN (SELECT m.id FROM matches m
                                  WHERE m.holds = 1 AND m.state = 'reconciled'
                                    AND m.payment_id = p.item_id)
                              WHEN 'transaction' THEN (SELECT m.id FROM matches m
                                  WHERE m.holds = 1 AND m.state = 'reconciled'
                                    AND m.transaction_id = p.item_id)
                            END AS match_id
                     FROM period p
                     JOIN findings f ON f.run_id = p.last_run AND f.kind = p.kind
                                    AND f.item_id = p.item_id
                     WHERE NOT EXISTS (SELECT 1 FROM findings n WHERE n.run_id = $2
                                       AND n.kind = p.kind AND n.item_id = p.item_id)
                 )
                 SELECT c.kind, c.item_id, c.last_run, c.reason,
                        COALESCE(pa.amount, bt.amount, o.amount),
                        COALESCE(pa.currency, bt.currency, o.currency),
                        COALESCE(m.settled_run, m.run_id),
                        (SELECT d.by FROM decisions d
                         WHERE d.kind = 'payment' AND d.item_id = m.payment_id
                           AND d.match_id = m.id AND d.action = 'approve'
                         ORDER BY d.id LIMIT 1)
                 FROM closed c
                 LEFT JOIN payments pa ON c.kind = 'payment' AND pa.id = c.item_id
                 LEFT JOIN bank_transactions bt ON c.kind = 'transaction' AND bt.id = c.item_id
                 LEFT JOIN offramps o ON c.kind = 'offramp' AND o.id = c.item_id
                 LEFT JOIN matches m ON m.id = c.match_id
                 ORDER BY c.kind, c.item_id",
                &[&after, &run],
            )
        })?;
        rows.iter()
            .map(|r| {
                let (kind, item_id): (String, String) = (r.get(0), r.get(1));
                let amount = match (r.get::<_, Option<&str>>(4), r.get::<_, Option<&str>>(5)) {
                    (Some(a), Some(c)) => Some(money("findings", &item_id, a, c)?),
                    _ => None,
                };
                Ok(ClosedItem {
                    last_run: r.get(2),
                    reason: r.get(3),
                    amount,
                    reconciled_by_run: r.get(6),
                    approved_by: r.get(7),
                    kind,
                    item_id,
                })
            })
            .collect()
    }
}

fn money(table: &'static str, id: &str, amount: &str, currency: &str) -> Result<Money, StoreError> {
    let amount = decimal(table, id, amount)?;
    let currency = Currency::parse(currency).map_err(|e| corrupt(table, id, e))?;
    Ok(Money::from_units(amount, currency))
}
