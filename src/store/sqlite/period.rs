//! What a digest reads about its period: the last digest delivered, the reconciles
//! listed since, and the items reported since that are no longer open.

use super::SqliteStore;
use crate::store::*;
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use crate::domain::{BankTxId, Concept, Currency, Money, PaymentId};
use crate::report::period::{ClosedItem, PeriodReconcile};

impl PeriodStore for SqliteStore {
    fn last_delivered_digest(
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

    fn first_run_since_if_older(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Option<(RunId, DateTime<Utc>)>, StoreError> {
        let row: Option<(RunId, String)> = self
            .conn
            .query_row(
                "SELECT id, started_at FROM runs
                 WHERE started_at >= ?1 AND sync_mode <> 'approve'
                   AND (SELECT MIN(started_at) FROM runs) < ?1
                 ORDER BY id LIMIT 1",
                [crate::store::ts(at)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(id, t)| Ok((id, parse_ts("runs", &id.to_string(), &t)?)))
            .transpose()
    }

    fn reconciles_listed_after(&self, after: RunId) -> Result<Vec<PeriodReconcile>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT m.id, m.payment_id, m.transaction_id, m.amount, m.currency, m.concept,
                    COALESCE(m.settled_at, m.created_at), COALESCE(m.settled_run, m.run_id),
                    (SELECT d.by FROM decisions d
                     WHERE d.kind = 'payment' AND d.item_id = m.payment_id
                       AND d.match_id = m.id AND d.action = 'approve'
                     ORDER BY d.id LIMIT 1)
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

    fn closed_items_after(&self, after: RunId, run: RunId) -> Result<Vec<ClosedItem>, StoreError> {
        let mut st = self.conn.prepare(
            "WITH period AS (
                 SELECT kind, item_id, MAX(run_id) AS last_run FROM findings
                 WHERE run_id >= ?1 AND run_id < ?2 GROUP BY kind, item_id
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
                 WHERE NOT EXISTS (SELECT 1 FROM findings n WHERE n.run_id = ?2
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

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::store::sqlite::tests::open;

    fn run(s: &mut Store, at: &str) -> RunId {
        s.begin_run(at.parse().unwrap(), false, "full").unwrap()
    }

    fn finding(s: &Store, run: RunId, kind: &str, id: &str, reason: &str) {
        s.connection()
            .execute(
                "INSERT INTO findings (run_id, kind, item_id, reason) VALUES (?1, ?2, ?3, ?4)",
                params![run, kind, id, reason],
            )
            .unwrap();
    }

    fn reconciled(s: &Store, run: RunId, p: &str, t: &str, reported: Option<RunId>) -> i64 {
        s.connection()
            .execute(
                "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency,
                    rule, state, holds, created_at, settled_at, settled_run, reported_run)
                 VALUES (?1, ?2, ?3, 'ES00', '150.50', 'EUR', 'confident', 'reconciled', 1,
                    '2026-12-05T10:00:00Z', '2026-12-05T10:00:01Z', ?1, ?4)",
                params![run, p, t, reported],
            )
            .unwrap();
        s.connection().last_insert_rowid()
    }

    fn report(s: &Store, run: RunId, state: &str, mail: Option<&str>) {
        s.connection()
            .execute(
                "INSERT INTO reports (run_id, dir, state, created_at, mail)
                 VALUES (?1, '/r', ?2, '2026-12-05T07:00:00Z', ?3)",
                params![run, state, mail],
            )
            .unwrap();
    }

    #[test]
    fn the_period_starts_at_the_last_digest_delivered_and_not_at_one_merely_queued() {
        let (_d, mut s) = open();
        let r1 = run(&mut s, "2026-12-04T07:00:00Z");
        let r2 = run(&mut s, "2026-12-05T07:00:00Z");
        let r3 = run(&mut s, "2026-12-05T08:00:00Z");
        let r4 = run(&mut s, "2026-12-06T07:00:00Z");
        assert_eq!(s.last_delivered_digest(r4).unwrap(), None);
        report(&s, r1, "sent", Some("full"));
        report(&s, r2, "sent", Some("urgent"));
        report(&s, r3, "pending", Some("full"));
        let (run_id, at) = s.last_delivered_digest(r4).unwrap().unwrap();
        assert_eq!((run_id, at), (r1, "2026-12-04T07:00:00Z".parse().unwrap()));
        assert_eq!(s.last_delivered_digest(r1).unwrap(), None, "before run 1");
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            s.first_run_since_if_older(at("2026-12-05T07:30:00Z"))
                .unwrap(),
            Some((r3, at("2026-12-05T08:00:00Z")))
        );
        assert_eq!(
            s.first_run_since_if_older(at("2026-12-04T07:00:00Z"))
                .unwrap(),
            None,
            "the first run is within the bound"
        );
    }

    #[test]
    fn the_period_lists_reconciles_reported_after_the_digest_and_items_no_longer_open() {
        let (_d, mut s) = open();
        let r0 = run(&mut s, "2026-12-03T07:00:00Z");
        let r1 = run(&mut s, "2026-12-04T07:00:00Z");
        let r2 = run(&mut s, "2026-12-05T07:00:00Z");
        let r3 = run(&mut s, "2026-12-05T08:00:00Z");
        // Listed by the digest's own report: not in the period.
        reconciled(&s, r1, "P0", "T0", Some(r1));
        // Listed by a later report, and not listed yet (the current report lists it).
        let approved = reconciled(&s, r2, "P1", "T1", Some(r2));
        reconciled(&s, r3, "P2", "T2", None);
        s.connection()
            .execute(
                "INSERT INTO decisions (at, by, action, kind, item_id, other_id, source, match_id, outcome)
                 VALUES ('2026-12-05T07:30:00Z', 'ana', 'approve', 'payment', 'P1', 'T1', 'cli', ?1, 'reconciled')",
                [approved],
            )
            .unwrap();
        let listed = s.reconciles_listed_after(r1).unwrap();
        let got: Vec<(&str, Option<&str>)> = listed
            .iter()
            .map(|r| (r.payment_id.as_str(), r.approved_by.as_deref()))
            .collect();
        assert_eq!(got, [("P1", Some("ana")), ("P2", None)]);

        // Reported by the digest's run or since, and gone now: closed. Still open: not.
        // Before the digest's run only: not the period's.
        finding(&s, r0, "payment", "POLD", "ambiguous");
        finding(&s, r1, "payment", "PX", "ambiguous");
        finding(&s, r2, "payment", "P1", "ambiguous");
        finding(&s, r2, "transaction", "TOPEN", "no_concept");
        finding(&s, r2, "offramp", "O1", "payout_not_seen");
        finding(&s, r3, "transaction", "TOPEN", "no_concept");
        let closed = s.closed_items_after(r1, r3).unwrap();
        let got: Vec<(&str, &str, Option<i64>, Option<&str>)> = closed
            .iter()
            .map(|c| {
                (
                    c.kind.as_str(),
                    c.item_id.as_str(),
                    c.reconciled_by_run,
                    c.approved_by.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("offramp", "O1", None, None),
                ("payment", "P1", Some(r2), Some("ana")),
                ("payment", "PX", None, None),
            ]
        );
        assert_eq!(closed[1].reason, "ambiguous");
        assert_eq!(closed[1].last_run, r2);
        assert_eq!(closed[2].last_run, r1);
    }
}
