//! What people decided (`decisions`, append-only: its triggers refuse a delete and any
//! rewrite but an approve's outcome, written once), and what the desk commands read to
//! decide: which item an id names, the latest run's findings, the reports' window.

use super::SqliteStore;
use crate::store::*;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::desk::{Action, Decision, ItemRef};
use crate::domain::BankTxId;

const DECISION_COLUMNS: &str =
    "id, at, by, action, kind, item_id, other_id, note, source, run_id, match_id, outcome";

impl DecisionStore for SqliteStore {
    fn insert_decisions(&mut self, ds: &[NewDecision<'_>]) -> Result<Vec<i64>, StoreError> {
        self.in_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO decisions (at, by, action, kind, item_id, other_id, note, source,
                    run_id, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut ids = Vec::with_capacity(ds.len());
            for d in ds {
                st.execute(params![
                    ts(d.at),
                    d.by,
                    d.action.as_str(),
                    d.item.kind(),
                    d.item.id(),
                    d.other.map(BankTxId::as_str),
                    d.note,
                    d.source,
                    d.run_id,
                    d.outcome,
                ])?;
                ids.push(tx.last_insert_rowid());
            }
            Ok(ids)
        })
    }

    fn set_decision_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        match_id: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE decisions SET outcome = ?2, match_id = COALESCE(?3, match_id) WHERE id = ?1",
            params![id, outcome, match_id],
        )?;
        Ok(())
    }

    fn close_interrupted_approves(&mut self, run: RunId) -> Result<usize, StoreError> {
        const MATCH: &str = "FROM matches m WHERE m.run_id = decisions.run_id
                             AND m.payment_id = decisions.item_id";
        // Every approve without an outcome gets its match; only those whose match is
        // settled (or that have none) get an outcome, and are counted.
        let mut st = self.conn.prepare(&format!(
            "UPDATE decisions SET
                match_id = COALESCE(match_id, (SELECT m.id {MATCH})),
                outcome = COALESCE(
                    (SELECT 'settled by run ' || ?1 || ': ' || m.state
                     {MATCH} AND m.state NOT IN ('intent', 'unknown')),
                    CASE WHEN NOT EXISTS (SELECT 1 {MATCH})
                         THEN 'interrupted before the call: nothing was called' END)
             WHERE action = 'approve' AND outcome IS NULL
             RETURNING outcome IS NOT NULL"
        ))?;
        let closed = st
            .query_map([run], |r| r.get::<_, bool>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(closed.into_iter().filter(|c| *c).count())
    }

    fn dismissals(&self) -> Result<Vec<Decision>, StoreError> {
        self.decisions_where("action IN ('dismiss', 'reopen')", [])
    }

    fn decisions_about(&self, id: &str) -> Result<Vec<Decision>, StoreError> {
        self.decisions_where("item_id = ?1 OR other_id = ?1", [id])
    }

    fn decisions_after(&self, at: Option<DateTime<Utc>>) -> Result<Vec<Decision>, StoreError> {
        match at {
            Some(at) => self.decisions_where("at > ?1", [ts(at)]),
            None => self.decisions_where("1 = 1", []),
        }
    }

    fn decision_of_run(&self, run: RunId) -> Result<Vec<Decision>, StoreError> {
        self.decisions_where("run_id = ?1", [run])
    }

    fn items_named(&self, id: &str) -> Result<Vec<ItemRef>, StoreError> {
        let mut out = Vec::new();
        for (table, kind) in [
            ("payments", "payment"),
            ("bank_transactions", "transaction"),
            ("offramps", "offramp"),
        ] {
            let found: Option<i64> = self
                .conn
                .query_row(&format!("SELECT 1 FROM {table} WHERE id = ?1"), [id], |r| {
                    r.get(0)
                })
                .optional()?;
            if found.is_some()
                && let Some(item) = ItemRef::from_parts(kind, id)
            {
                out.push(item);
            }
        }
        let bad: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM bad_records WHERE record_id = ?1 LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if bad.is_some() {
            out.push(ItemRef::BadRecord(id.to_owned()));
        }
        Ok(out)
    }

    fn bad_record_ids_of_run(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT DISTINCT record_id FROM bad_records
             WHERE run_id = ?1 AND record_id IS NOT NULL ORDER BY record_id",
        )?;
        let rows = st.query_map([run], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn latest_completed_run(&self) -> Result<Option<RunId>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MAX(id) FROM runs WHERE outcome = 'completed' AND sync_mode <> 'approve'",
            [],
            |r| r.get(0),
        )?)
    }

    fn previous_report_start(&self, run: RunId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT r.started_at FROM reports o JOIN runs r ON r.id = o.run_id
                 WHERE o.run_id < ?1 ORDER BY o.run_id DESC LIMIT 1",
                [run],
                |r| r.get(0),
            )
            .optional()?;
        v.map(|s| parse_ts("runs", "started_at", &s)).transpose()
    }

    fn findings_of_run(&self, run: RunId) -> Result<Vec<FindingRow>, StoreError> {
        self.findings_where("run_id = ?1", [run])
    }

    fn findings_about(&self, kind: &str, id: &str) -> Result<Vec<FindingRow>, StoreError> {
        self.findings_where("kind = ?1 AND item_id = ?2", [kind, id])
    }

    fn first_seen(&self, item: &ItemRef) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = match item {
            ItemRef::Payment(_) => "SELECT first_seen_at FROM payments WHERE id = ?1",
            ItemRef::Transaction(_) => "SELECT first_seen_at FROM bank_transactions WHERE id = ?1",
            ItemRef::Offramp(_) => "SELECT first_seen_at FROM offramps WHERE id = ?1",
            ItemRef::BadRecord(_) => {
                "SELECT r.started_at FROM bad_records b JOIN runs r ON r.id = b.run_id
                 WHERE b.record_id = ?1 ORDER BY b.id LIMIT 1"
            }
        };
        let v: Option<String> = self
            .conn
            .query_row(sql, [item.id()], |r| r.get(0))
            .optional()?;
        v.map(|s| parse_ts("records", item.id(), &s)).transpose()
    }
}

impl SqliteStore {
    fn decisions_where<P: rusqlite::Params>(
        &self,
        cond: &str,
        p: P,
    ) -> Result<Vec<Decision>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE {cond} ORDER BY id"
        ))?;
        let mut rows = st.query(p)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(decision_row(r)?);
        }
        Ok(out)
    }

    fn findings_where<P: rusqlite::Params>(
        &self,
        cond: &str,
        p: P,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT run_id, kind, item_id, reason, candidates, difference, detail
             FROM findings WHERE {cond} ORDER BY run_id, kind, item_id"
        ))?;
        let rows = st.query_map(p, |r| {
            let candidates: String = r.get(4)?;
            Ok(FindingRow {
                run_id: r.get(0)?,
                kind: r.get(1)?,
                item_id: r.get(2)?,
                reason: r.get(3)?,
                candidates: candidates.split_whitespace().map(str::to_owned).collect(),
                difference: r.get(5)?,
                detail: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn decision_row(r: &rusqlite::Row<'_>) -> Result<Decision, StoreError> {
    const T: &str = "decisions";
    let id: i64 = r.get(0)?;
    let sid = id.to_string();
    let action: String = r.get(3)?;
    let (kind, item_id): (String, String) = (r.get(4)?, r.get(5)?);
    Ok(Decision {
        id,
        at: parse_ts(T, &sid, &r.get::<_, String>(1)?)?,
        by: r.get(2)?,
        action: Action::parse(&action)
            .ok_or_else(|| corrupt(T, &sid, format!("unknown action {action:?}")))?,
        item: ItemRef::from_parts(&kind, &item_id)
            .ok_or_else(|| corrupt(T, &sid, format!("bad item {kind} {item_id:?}")))?,
        other: r
            .get::<_, Option<String>>(6)?
            .map(|t| BankTxId::parse(t).map_err(|e| corrupt(T, &sid, e)))
            .transpose()?,
        note: r.get(7)?,
        source: r.get(8)?,
        run_id: r.get(9)?,
        match_id: r.get(10)?,
        outcome: r.get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentId;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("recon.sqlite3")).unwrap();
        (dir, s)
    }

    fn dismiss<'a>(item: &'a ItemRef, note: &'a str) -> NewDecision<'a> {
        NewDecision {
            at: Utc::now(),
            by: "ana",
            action: Action::Dismiss,
            item,
            other: None,
            note: Some(note),
            source: "cli",
            run_id: None,
            outcome: Some("dismissed"),
        }
    }

    #[test]
    fn decisions_are_never_deleted_nor_rewritten() {
        let (_d, mut s) = open();
        let item = ItemRef::Payment(PaymentId::parse("P1").unwrap());
        let ids = s
            .insert_decisions(&[dismiss(&item, "test payment")])
            .unwrap();
        let c = s.connection();
        assert!(c.execute("DELETE FROM decisions", []).is_err());
        assert!(
            c.execute(
                "UPDATE decisions SET note = 'other' WHERE id = ?1",
                [ids[0]]
            )
            .is_err()
        );
        assert!(
            c.execute("UPDATE decisions SET outcome = 'x' WHERE id = ?1", [ids[0]])
                .is_err(),
            "an outcome is written once"
        );
        assert_eq!(s.dismissals().unwrap().len(), 1);
    }

    #[test]
    fn a_dismiss_without_a_note_is_refused_by_the_table_too() {
        let (_d, mut s) = open();
        let item = ItemRef::Payment(PaymentId::parse("P1").unwrap());
        assert!(s.insert_decisions(&[dismiss(&item, " ")]).is_err());
    }

    #[test]
    fn an_approve_outcome_is_written_once() {
        let (_d, mut s) = open();
        let item = ItemRef::Payment(PaymentId::parse("P1").unwrap());
        let t = BankTxId::parse("T1").unwrap();
        let ids = s
            .insert_decisions(&[NewDecision {
                action: Action::Approve,
                other: Some(&t),
                note: None,
                outcome: None,
                ..dismiss(&item, "n")
            }])
            .unwrap();
        s.set_decision_outcome(ids[0], "reconciled", None).unwrap();
        assert!(s.set_decision_outcome(ids[0], "other", None).is_err());
        let d = s.decisions_about("T1").unwrap();
        assert_eq!(d[0].outcome.as_deref(), Some("reconciled"));
        assert_eq!(d[0].other.as_ref(), Some(&t));
    }
}
