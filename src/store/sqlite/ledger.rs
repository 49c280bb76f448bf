//! The exactly-once ledger, the `matches` table: an intent committed before each
//! reconcile call, then what became of it. Its partial UNIQUE indexes make SQLite refuse
//! a second tie of a payment or a bank transaction.

use super::SqliteStore;
use crate::store::*;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::{BankTxId, Concept, Currency, Iban, Money, PaymentId, PaymentStatus};
use crate::matching::ReconciledPair;

impl LedgerStore for SqliteStore {
    fn insert_intents(
        &mut self,
        ms: &[NewMatch<'_>],
    ) -> Result<Vec<Result<i64, StoreError>>, StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| {
            let tx = self.conn.transaction()?;
            let out: Vec<_> = ms
                .iter()
                .map(|m| insert_match_in(&tx, m, MatchState::Intent))
                .collect();
            tx.commit()?;
            Ok(out)
        })();
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.checkpoint_soon();
        result
    }

    fn insert_dry_runs(&mut self, ms: &[NewMatch<'_>]) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            for m in ms {
                insert_match_in(tx, m, MatchState::DryRun)?;
            }
            Ok(())
        })
    }

    fn settle_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            mark_reconciled_in(tx, items, answer, run, now)?;
            record_ties_in(tx, items)
        })
    }

    fn mark_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| mark_reconciled_in(tx, items, answer, run, now))
    }

    fn record_ties(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| record_ties_in(tx, items))
    }

    fn settle(&mut self, match_id: i64, s: &Settlement<'_>) -> Result<(), StoreError> {
        let Settlement {
            state,
            provider_code,
            provider_answer,
            payment_status,
            run,
            now,
        } = *s;
        self.conn.execute(
            "UPDATE matches SET state = ?2, provider_code = ?3, provider_answer = ?4,
                payment_status = COALESCE(?5, payment_status), settled_at = ?6, settled_run = ?7,
                holds = ?8
             WHERE id = ?1",
            params![
                match_id,
                state.as_str(),
                provider_code,
                provider_answer,
                payment_status,
                ts(now),
                run,
                state.holds()
            ],
        )?;
        Ok(())
    }

    fn refused_pairs(&self) -> Result<Vec<(PaymentId, BankTxId, String)>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT m.payment_id, m.transaction_id, COALESCE(m.provider_code, '')
             FROM matches m JOIN payments p ON p.id = m.payment_id
             WHERE m.state = 'failed' AND m.payment_status IS p.status",
        )?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let (p, t, code): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            out.push((
                PaymentId::parse(&p).map_err(|e| corrupt("matches", &p, e))?,
                BankTxId::parse(&t).map_err(|e| corrupt("matches", &t, e))?,
                code,
            ));
        }
        Ok(out)
    }

    fn match_pair(&self, match_id: i64) -> Result<(PaymentId, BankTxId), StoreError> {
        let (p, t): (String, String) = self.conn.query_row(
            "SELECT payment_id, transaction_id FROM matches WHERE id = ?1",
            [match_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((
            PaymentId::parse(&p).map_err(|e| corrupt("matches", &p, e))?,
            BankTxId::parse(&t).map_err(|e| corrupt("matches", &t, e))?,
        ))
    }

    fn unsettled(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state IN ('intent', 'unknown')", [])
    }

    fn matches_of_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("run_id = ?1 OR settled_run = ?1", [run])
    }

    fn unreported_reconciles(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state = 'reconciled' AND reported_run IS NULL", [])
    }

    fn reconciled_in_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state = 'reconciled' AND settled_run = ?1", [run])
    }

    fn reconciled_pairs(&self) -> Result<Vec<ReconciledPair>, StoreError> {
        Ok(self
            .matches_where("state = 'reconciled'", [])?
            .into_iter()
            .map(|m| ReconciledPair {
                payment: m.payment_id,
                transaction: m.transaction_id,
                concept: m.concept,
                amount: m.amount,
            })
            .collect())
    }

    fn all_matches(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("1 = 1", [])
    }

    fn matches_naming(&self, id: &str) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("payment_id = ?1 OR transaction_id = ?1", [id])
    }

    fn hold_of_payment(&self, id: &PaymentId) -> Result<Option<MatchRow>, StoreError> {
        Ok(self
            .matches_where("payment_id = ?1 AND holds = 1", [id.as_str()])?
            .pop())
    }

    fn hold_of_transaction(&self, id: &BankTxId) -> Result<Option<MatchRow>, StoreError> {
        Ok(self
            .matches_where("transaction_id = ?1 AND holds = 1", [id.as_str()])?
            .pop())
    }

    fn held_transactions(
        &self,
        ids: &[BankTxId],
    ) -> Result<std::collections::HashSet<BankTxId>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM matches WHERE transaction_id = ?1 AND holds = 1")?;
        let mut held = std::collections::HashSet::new();
        for id in ids {
            if st.exists([id.as_str()])? {
                held.insert(id.clone());
            }
        }
        Ok(held)
    }
}

impl SqliteStore {
    fn matches_where<P: rusqlite::Params>(
        &self,
        cond: &str,
        p: P,
    ) -> Result<Vec<MatchRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, run_id, payment_id, transaction_id, iban, amount, currency, concept, state,
                    provider_code, created_at, settled_at, written_at
             FROM matches WHERE {cond} ORDER BY id"
        ))?;
        let mut rows = st.query(p)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(match_row(r)?);
        }
        Ok(out)
    }
}

/// Leaves `holds` alone: intents and unknowns hold already, and naming the column would
/// make SQLite rewrite the rows' entries in both exactly-once indexes (migration 0002).
fn mark_reconciled_in(
    tx: &Connection,
    items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
    answer: &str,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut m = tx.prepare_cached(
        "UPDATE matches SET state = 'reconciled', provider_answer = ?5,
            payment_status = ?2, settled_at = ?3, settled_run = ?4 WHERE id = ?1",
    )?;
    let now = ts(now);
    for (id, _, _, status) in items {
        m.execute(params![id, status.as_str(), now, run, answer])?;
    }
    Ok(())
}

/// Rows are written in the order they sit in their table (rowid), so each table page is
/// visited once and in file order; their rowids are found first through the id index,
/// in id order. A tie whose row is missing writes nothing, as the `UPDATE` by id did.
fn record_ties_in(
    tx: &Connection,
    items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
) -> Result<(), StoreError> {
    let mut ties: Vec<_> = items.iter().map(|(_, p, t, s)| (p, t, s)).collect();
    ties.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let rows = rowids(
        tx,
        "payments",
        ties.iter().map(|(p, _, s)| (p.as_str(), s.as_str())),
    )?;
    let mut p = tx.prepare_cached("UPDATE payments SET status = ?2 WHERE rowid = ?1")?;
    for (rowid, status) in rows {
        p.execute(params![rowid, status])?;
    }
    ties.sort_unstable_by(|a, b| a.1.as_str().cmp(b.1.as_str()));
    let rows = rowids(
        tx,
        "bank_transactions",
        ties.iter().map(|(p, t, _)| (t.as_str(), p.as_str())),
    )?;
    let mut t = tx.prepare_cached(
        "UPDATE bank_transactions SET reconciled_payment_id = ?2 WHERE rowid = ?1",
    )?;
    for (rowid, pid) in rows {
        t.execute(params![rowid, pid])?;
    }
    Ok(())
}

/// The rowids of `table`'s rows with the given ids, each with its value, in rowid order.
fn rowids<'v>(
    tx: &Connection,
    table: &str,
    ids: impl Iterator<Item = (&'v str, &'v str)>,
) -> Result<Vec<(i64, &'v str)>, StoreError> {
    let mut st = tx.prepare_cached(&format!("SELECT rowid FROM {table} WHERE id = ?1"))?;
    let mut out = Vec::new();
    for (id, value) in ids {
        if let Some(rowid) = st.query_row([id], |r| r.get(0)).optional()? {
            out.push((rowid, value));
        }
    }
    out.sort_unstable_by_key(|(rowid, _)| *rowid);
    Ok(out)
}

fn insert_match_in(
    tx: &Connection,
    m: &NewMatch<'_>,
    state: MatchState,
) -> Result<i64, StoreError> {
    let r = tx
        .prepare_cached(
            "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency,
                concept, rule, state, dry_run, created_at, holds, written_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'confident', ?8, ?9, ?10, ?11,
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        )
        .and_then(|mut st| {
            st.execute(params![
                m.run_id,
                m.payment.as_str(),
                m.transaction.as_str(),
                m.iban.as_str(),
                m.amount.amount_str(),
                m.amount.currency().as_str(),
                m.concept.map(Concept::as_str),
                state.as_str(),
                state == MatchState::DryRun,
                ts(m.now),
                state.holds(),
            ])
        });
    match r {
        Ok(_) => Ok(tx.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(StoreError::AlreadyTied {
                payment: m.payment.to_string(),
                transaction: m.transaction.to_string(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn match_row(r: &rusqlite::Row<'_>) -> Result<MatchRow, StoreError> {
    const T: &str = "matches";
    let id: i64 = r.get(0)?;
    let sid = id.to_string();
    let cur = Currency::parse(r.get::<_, String>(6)?).map_err(|e| corrupt(T, &sid, e))?;
    let state: String = r.get(8)?;
    Ok(MatchRow {
        id,
        run_id: r.get(1)?,
        payment_id: PaymentId::parse(r.get::<_, String>(2)?).map_err(|e| corrupt(T, &sid, e))?,
        transaction_id: BankTxId::parse(r.get::<_, String>(3)?).map_err(|e| corrupt(T, &sid, e))?,
        iban: Iban::parse(r.get::<_, String>(4)?).map_err(|e| corrupt(T, &sid, e))?,
        amount: Money::from_units(decimal(T, &sid, &r.get::<_, String>(5)?)?, cur),
        concept: r
            .get::<_, Option<String>>(7)?
            .map(|c| Concept::parse(c).map_err(|e| corrupt(T, &sid, e)))
            .transpose()?,
        state: MatchState::parse(&state)
            .ok_or_else(|| corrupt(T, &sid, format!("unknown state {state:?}")))?,
        provider_code: r.get(9)?,
        created_at: parse_ts(T, &sid, &r.get::<_, String>(10)?)?,
        settled_at: r
            .get::<_, Option<String>>(11)?
            .map(|s| parse_ts(T, &sid, &s))
            .transpose()?,
        written_at: r
            .get::<_, Option<String>>(12)?
            .map(|s| parse_ts(T, &sid, &s))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::tests::{eur, open};

    #[test]
    fn the_database_refuses_to_tie_a_transaction_or_a_payment_twice() {
        let (_d, mut s) = open();
        let now = Utc::now();
        let run = s.begin_run(now, false, "full").unwrap();
        let (p1, p2) = (
            PaymentId::parse("P1").unwrap(),
            PaymentId::parse("P2").unwrap(),
        );
        let (t1, t2) = (
            BankTxId::parse("T1").unwrap(),
            BankTxId::parse("T2").unwrap(),
        );
        let iban = Iban::parse("ES9121000418450200051332").unwrap();
        let m = eur("1.00");
        fn nm<'a>(
            run: RunId,
            p: &'a PaymentId,
            t: &'a BankTxId,
            iban: &'a Iban,
            m: &'a Money,
            now: DateTime<Utc>,
        ) -> NewMatch<'a> {
            NewMatch {
                run_id: run,
                payment: p,
                transaction: t,
                iban,
                amount: m,
                concept: None,
                now,
            }
        }
        let nm = |p, t| nm(run, p, t, &iban, &m, now);
        let (p1, p2, t1, t2) = (&p1, &p2, &t1, &t2);
        let id = s.insert_intent(&nm(p1, t1)).unwrap();
        assert!(matches!(
            s.insert_intent(&nm(p2, t1)),
            Err(StoreError::AlreadyTied { .. })
        ));
        assert!(matches!(
            s.insert_intent(&nm(p1, t2)),
            Err(StoreError::AlreadyTied { .. })
        ));
        // A refused call unties: the pair may be decided again later.
        let failed = Settlement {
            state: MatchState::Failed,
            provider_code: Some("amount_mismatch"),
            provider_answer: None,
            payment_status: None,
            run,
            now,
        };
        s.settle(id, &failed).unwrap();
        s.insert_intent(&nm(p2, t1)).unwrap();
        // Dry-run rows never tie anything.
        s.insert_dry_run(&nm(p1, t2)).unwrap();
        s.insert_dry_run(&nm(p1, t2)).unwrap();
        assert_eq!(s.unsettled().unwrap().len(), 1);
    }

    #[test]
    fn the_holds_column_cannot_disagree_with_the_state() {
        let (_d, s) = open();
        s.connection()
            .execute_batch(
                "INSERT INTO runs (id, started_at, version) VALUES (1, 't', 'v');
                 INSERT INTO matches (id, run_id, payment_id, transaction_id, iban, amount,
                     currency, rule, state, created_at, holds)
                 VALUES (7, 1, 'P1', 'T1', 'I', '1.00', 'EUR', 'confident', 'intent', 't', 1);",
            )
            .unwrap();
        for wrong in [
            "UPDATE matches SET state = 'failed' WHERE id = 7",
            "UPDATE matches SET holds = NULL WHERE id = 7",
            "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency,
                 rule, state, created_at)
             VALUES (1, 'P2', 'T2', 'I', '1.00', 'EUR', 'confident', 'intent', 't')",
            "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency,
                 rule, state, created_at, holds)
             VALUES (1, 'P2', 'T2', 'I', '1.00', 'EUR', 'confident', 'dry_run', 't', 1)",
        ] {
            let r = s.connection().execute(wrong, []);
            assert!(
                matches!(&r, Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_CHECK),
                "{wrong}: {r:?}"
            );
        }
    }
}
