//! The decisions part of the store on PostgreSQL (`store/decisions.rs`): what people
//! decided (`decisions`, append-only: its triggers refuse a delete and any rewrite but
//! an approve's outcome, written once), and what the desk commands read to decide.

use chrono::{DateTime, Utc};
use postgres::types::ToSql;

use super::PgStore;
use crate::desk::{Action, Decision, ItemRef};
use crate::domain::BankTxId;
use crate::store::{
    DecisionStore, FindingRow, NewDecision, RunId, StoreError, corrupt, parse_ts, ts,
};

const DECISION_COLUMNS: &str =
    "id, at, by, action, kind, item_id, other_id, note, source, run_id, match_id, outcome";

/// A query parameter moved onto the session's thread.
type Arg = Box<dyn ToSql + Sync + Send>;

/// New decisions as columns, owned so they can be moved onto the session's thread.
#[derive(Default)]
struct DecisionArrays {
    at: Vec<String>,
    by: Vec<String>,
    action: Vec<String>,
    kind: Vec<String>,
    item_id: Vec<String>,
    other_id: Vec<Option<String>>,
    note: Vec<Option<String>>,
    source: Vec<String>,
    run_id: Vec<Option<i64>>,
    outcome: Vec<Option<String>>,
}

impl DecisionArrays {
    fn of(ds: &[NewDecision<'_>]) -> Self {
        let mut a = Self::default();
        for d in ds {
            a.at.push(ts(d.at));
            a.by.push(d.by.to_owned());
            a.action.push(d.action.as_str().to_owned());
            a.kind.push(d.item.kind().to_owned());
            a.item_id.push(d.item.id().to_owned());
            a.other_id.push(d.other.map(|t| t.as_str().to_owned()));
            a.note.push(d.note.map(str::to_owned));
            a.source.push(d.source.to_owned());
            a.run_id.push(d.run_id);
            a.outcome.push(d.outcome.map(str::to_owned));
        }
        a
    }
}

impl DecisionStore for PgStore {
    fn insert_decisions(&mut self, ds: &[NewDecision<'_>]) -> Result<Vec<i64>, StoreError> {
        if ds.is_empty() {
            return Ok(Vec::new());
        }
        let a = DecisionArrays::of(ds);
        // The rows are inserted in the order given, each taking the next id, so the ids
        // in ascending order are the decisions' in order.
        let mut ids: Vec<i64> = self.in_tx(move |c| {
            Ok(c.query(
                "INSERT INTO decisions (at, by, action, kind, item_id, other_id, note, source,
                    run_id, outcome)
                 SELECT u.at, u.by, u.action, u.kind, u.item_id, u.other_id, u.note, u.source,
                        u.run_id, u.outcome
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                             $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[], $10::TEXT[])
                      WITH ORDINALITY AS u(at, by, action, kind, item_id, other_id, note,
                                           source, run_id, outcome, ord)
                 ORDER BY u.ord
                 RETURNING id",
                &[
                    &a.at,
                    &a.by,
                    &a.action,
                    &a.kind,
                    &a.item_id,
                    &a.other_id,
                    &a.note,
                    &a.source,
                    &a.run_id,
                    &a.outcome,
                ],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        ids.sort_unstable();
        Ok(ids)
    }

    fn set_decision_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        match_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let outcome = outcome.to_owned();
        self.run(move |c| {
            c.execute(
                "UPDATE decisions SET outcome = $2, match_id = COALESCE($3, match_id)
                 WHERE id = $1",
                &[&id, &outcome, &match_id],
            )
        })?;
        Ok(())
    }

    /// A payment's match in the approve's run is its first one there, by id (SQLite's
    /// scalar subquery takes the first row it finds, in id order).
    fn close_interrupted_approves(&mut self, run: RunId) -> Result<usize, StoreError> {
        const MATCH: &str = "FROM matches m WHERE m.run_id = decisions.run_id
                             AND m.payment_id = decisions.item_id";
        let sql = format!(
            "UPDATE decisions SET
                match_id = COALESCE(match_id, (SELECT m.id {MATCH} ORDER BY m.id LIMIT 1)),
                outcome = COALESCE(
                    (SELECT 'settled by run ' || $1::BIGINT || ': ' || m.state
                     {MATCH} AND m.state NOT IN ('intent', 'unknown') ORDER BY m.id LIMIT 1),
                    CASE WHEN NOT EXISTS (SELECT 1 {MATCH})
                         THEN 'interrupted before the call: nothing was called' END)
             WHERE action = 'approve' AND outcome IS NULL
             RETURNING outcome IS NOT NULL"
        );
        // Every approve without an outcome gets its match; only those whose match is
        // settled (or that have none) get an outcome, and are counted.
        let closed: Vec<bool> =
            self.run(move |c| Ok(c.query(&sql, &[&run])?.iter().map(|r| r.get(0)).collect()))?;
        Ok(closed.into_iter().filter(|c| *c).count())
    }

    fn dismissals(&self) -> Result<Vec<Decision>, StoreError> {
        self.decisions_where("action IN ('dismiss', 'reopen')", Vec::new())
    }

    fn decisions_about(&self, id: &str) -> Result<Vec<Decision>, StoreError> {
        self.decisions_where(
            "item_id = $1 OR other_id = $1",
            vec![Box::new(id.to_owned())],
        )
    }

    fn decisions_after(&self, at: Option<DateTime<Utc>>) -> Result<Vec<Decision>, StoreError> {
        match at {
            Some(at) => self.decisions_where("at > $1", vec![Box::new(ts(at))]),
            None => self.decisions_where("TRUE", Vec::new()),
        }
    }

    fn decision_of_run(&self, run: RunId) -> Result<Vec<Decision>, StoreError> {
        self.decisions_where("run_id = $1", vec![Box::new(run)])
    }

    fn items_named(&self, id: &str) -> Result<Vec<ItemRef>, StoreError> {
        let owned = id.to_owned();
        let found: [bool; 4] = self.run(move |c| {
            let r = c.query_one(
                "SELECT EXISTS (SELECT 1 FROM payments WHERE id = $1),
                        EXISTS (SELECT 1 FROM bank_transactions WHERE id = $1),
                        EXISTS (SELECT 1 FROM offramps WHERE id = $1),
                        EXISTS (SELECT 1 FROM bad_records WHERE record_id = $1)",
                &[&owned],
            )?;
            Ok([r.get(0), r.get(1), r.get(2), r.get(3)])
        })?;
        let mut out: Vec<ItemRef> = ["payment", "transaction", "offramp"]
            .into_iter()
            .zip(found)
            .filter(|(_, f)| *f)
            .filter_map(|(kind, _)| ItemRef::from_parts(kind, id))
            .collect();
        if found[3] {
            out.push(ItemRef::BadRecord(id.to_owned()));
        }
        Ok(out)
    }

    fn bad_record_ids_of_run(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        self.run(move |c| {
            Ok(c.query(
                "SELECT DISTINCT record_id FROM bad_records
                 WHERE run_id = $1 AND record_id IS NOT NULL ORDER BY record_id",
                &[&run],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn latest_completed_run(&self) -> Result<Option<RunId>, StoreError> {
        self.run(|c| {
            Ok(c.query_one(
                "SELECT MAX(id) FROM runs WHERE outcome = 'completed' AND sync_mode <> 'approve'",
                &[],
            )?
            .get(0))
        })
    }

    fn previous_report_start(&self, run: RunId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<String> = self.run(move |c| {
            Ok(c.query_opt(
                "SELECT r.started_at FROM reports o JOIN runs r ON r.id = o.run_id
                 WHERE o.run_id < $1 ORDER BY o.run_id DESC LIMIT 1",
                &[&run],
            )?
            .map(|r| r.get(0)))
        })?;
        v.map(|s| parse_ts("runs", "started_at", &s)).transpose()
    }

    fn findings_of_run(&self, run: RunId) -> Result<Vec<FindingRow>, StoreError> {
        self.findings_where("run_id = $1", vec![Box::new(run)])
    }

    fn findings_about(&self, kind: &str, id: &str) -> Result<Vec<FindingRow>, StoreError> {
        self.findings_where(
            "kind = $1 AND item_id = $2",
            vec![Box::new(kind.to_owned()), Box::new(id.to_owned())],
        )
    }

    fn first_seen(&self, item: &ItemRef) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = match item {
            ItemRef::Payment(_) => "SELECT first_seen_at FROM payments WHERE id = $1",
            ItemRef::Transaction(_) => "SELECT first_seen_at FROM bank_transactions WHERE id = $1",
            ItemRef::Offramp(_) => "SELECT first_seen_at FROM offramps WHERE id = $1",
            ItemRef::BadRecord(_) => {
                "SELECT r.started_at FROM bad_records b JOIN runs r ON r.id = b.run_id
                 WHERE b.record_id = $1 ORDER BY b.id LIMIT 1"
            }
        };
        let id = item.id().to_owned();
        let v: Option<String> =
            self.run(move |c| Ok(c.query_opt(sql, &[&id])?.map(|r| r.get(0))))?;
        v.map(|s| parse_ts("records", item.id(), &s)).transpose()
    }
}

impl PgStore {
    /// The decisions meeting `cond` (over `args`, `$1`...), in id order.
    fn decisions_where(
        &self,
        cond: &'static str,
        args: Vec<Arg>,
    ) -> Result<Vec<Decision>, StoreError> {
        let sql = format!("SELECT {DECISION_COLUMNS} FROM decisions WHERE {cond} ORDER BY id");
        let rows = self.run(move |c| c.query(&sql, &params(&args)))?;
        rows.iter().map(decision_row).collect()
    }

    /// The findings meeting `cond`, run by run, then by kind and item (byte order).
    fn findings_where(
        &self,
        cond: &'static str,
        args: Vec<Arg>,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let sql = format!(
            "SELECT run_id, kind, item_id, reason, candidates, difference, detail
             FROM findings WHERE {cond} ORDER BY run_id, kind, item_id"
        );
        let rows = self.run(move |c| c.query(&sql, &params(&args)))?;
        Ok(rows
            .iter()
            .map(|r| FindingRow {
                run_id: r.get(0),
                kind: r.get(1),
                item_id: r.get(2),
                reason: r.get(3),
                candidates: r
                    .get::<_, &str>(4)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                difference: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }
}

fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect()
}

fn decision_row(r: &postgres::Row) -> Result<Decision, StoreError> {
    const T: &str = "decisions";
    let id: i64 = r.get(0);
    let sid = id.to_string();
    let action: String = r.get(3);
    let (kind, item_id): (String, String) = (r.get(4), r.get(5));
    Ok(Decision {
        id,
        at: parse_ts(T, &sid, r.get(1))?,
        by: r.get(2),
        action: Action::parse(&action)
            .ok_or_else(|| corrupt(T, &sid, format!("unknown action {action:?}")))?,
        item: ItemRef::from_parts(&kind, &item_id)
            .ok_or_else(|| corrupt(T, &sid, format!("bad item {kind} {item_id:?}")))?,
        other: r
            .get::<_, Option<String>>(6)
            .map(|t| BankTxId::parse(t).map_err(|e| corrupt(T, &sid, e)))
            .transpose()?,
        note: r.get(7),
        source: r.get(8),
        run_id: r.get(9),
        match_id: r.get(10),
        outcome: r.get(11),
    })
}
