//! The exactly-once ledger, the `matches` table: an intent committed before each
//! reconcile call, then what became of it. Its partial UNIQUE indexes make SQLite refuse
//! a second tie of a payment or a bank transaction.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{RunId, Store, StoreError, corrupt, decimal, parse_ts, ts};
use crate::domain::{BankTxId, Concept, Currency, Iban, Money, PaymentId, PaymentStatus};
use crate::matching::ReconciledPair;

/// The states of a `matches` row (see the migration for their meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchState {
    Intent,
    Reconciled,
    Unknown,
    Failed,
    MovedOn,
    Skipped,
    DryRun,
    /// A lost answer found by a later run with the payment still pending and the credit
    /// open: the call had no effect; the pair is released.
    NotApplied,
}

impl MatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Reconciled => "reconciled",
            Self::Unknown => "unknown",
            Self::Failed => "failed",
            Self::MovedOn => "moved_on",
            Self::Skipped => "skipped",
            Self::DryRun => "dry_run",
            Self::NotApplied => "not_applied",
        }
    }
    /// Whether a match in this state holds its payment and transaction (it is, or may
    /// be, applied): the `holds` column, which the exactly-once indexes count.
    fn holds(self) -> Option<i64> {
        matches!(self, Self::Intent | Self::Reconciled | Self::Unknown).then_some(1)
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "intent" => Self::Intent,
            "reconciled" => Self::Reconciled,
            "unknown" => Self::Unknown,
            "failed" => Self::Failed,
            "moved_on" => Self::MovedOn,
            "skipped" => Self::Skipped,
            "dry_run" => Self::DryRun,
            "not_applied" => Self::NotApplied,
            _ => return None,
        })
    }
}

/// A row of `matches`.
#[derive(Debug, Clone)]
pub struct MatchRow {
    pub id: i64,
    pub run_id: RunId,
    pub payment_id: PaymentId,
    pub transaction_id: BankTxId,
    pub iban: Iban,
    pub amount: Money,
    pub concept: Option<Concept>,
    pub state: MatchState,
    pub provider_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// What is about to be reconciled.
#[derive(Debug, Clone)]
pub struct NewMatch<'a> {
    pub run_id: RunId,
    pub payment: &'a PaymentId,
    pub transaction: &'a BankTxId,
    pub iban: &'a Iban,
    pub amount: &'a Money,
    pub concept: Option<&'a Concept>,
    pub now: DateTime<Utc>,
}

/// The outcome of a match, as [`Store::settle`] records it.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    pub state: MatchState,
    pub provider_code: Option<&'a str>,
    pub provider_answer: Option<&'a str>,
    /// The payment status read with the outcome.
    pub payment_status: Option<&'a str>,
    pub run: RunId,
    pub now: DateTime<Utc>,
}

impl Store {
    /// Commits the intent before the call. `AlreadyTied` when SQLite's UNIQUE indexes
    /// refuse it.
    pub fn insert_intent(&mut self, m: &NewMatch<'_>) -> Result<i64, StoreError> {
        self.insert_intents(std::slice::from_ref(m))?
            .pop()
            .unwrap_or(Err(StoreError::NoRowInserted))
    }

    /// Commits a batch of intents in one transaction, durably (`synchronous = FULL`: the
    /// intents survive a power cut, not only a killed process). Each intent succeeds or is
    /// refused (`AlreadyTied`) on its own.
    pub fn insert_intents(
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

    /// A dry-run decision: recorded, never tied.
    pub fn insert_dry_run(&mut self, m: &NewMatch<'_>) -> Result<(), StoreError> {
        self.insert_dry_runs(std::slice::from_ref(m))
    }

    /// Dry-run decisions, in one transaction.
    pub fn insert_dry_runs(&mut self, ms: &[NewMatch<'_>]) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            for m in ms {
                insert_match_in(tx, m, MatchState::DryRun)?;
            }
            Ok(())
        })
    }

    /// Records confirmed reconciles, in one transaction: each match becomes `reconciled`
    /// (with `answer`: the provider's `ok`, or how the outcome was learnt), and the
    /// payment's new status and the transaction's tie are written, so the store tells the
    /// truth before the next sync. The one way a tie is recorded as done.
    pub fn settle_reconciled(
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

    /// The ledger half of [`Store::settle_reconciled`] for a batch of calls: the matches
    /// become `reconciled` now; the payments' statuses and the transactions' ties follow
    /// in one [`Store::record_ties`] at the end of the phase. A stale status in between
    /// is harmless: matching excludes every payment and transaction the ledger ties, and
    /// the next sync re-reads any stored `pending_bank` payment the provider no longer
    /// lists as pending.
    pub fn mark_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| mark_reconciled_in(tx, items, answer, run, now))
    }

    /// Writes the new payment statuses and transaction ties of confirmed reconciles, in
    /// one transaction and in key order, so each database page is written once.
    pub fn record_ties(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| record_ties_in(tx, items))
    }

    /// Records what became of a match.
    pub fn settle(&mut self, match_id: i64, s: &Settlement<'_>) -> Result<(), StoreError> {
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

    /// Pairs the provider refused whose payment is, as stored, in the status the refusal
    /// left it in: they are not called again until the provider's state changes (rules
    /// §5). With the provider's code.
    pub fn refused_pairs(&self) -> Result<Vec<(PaymentId, BankTxId, String)>, StoreError> {
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

    /// The payment and transaction of a match.
    pub fn match_pair(&self, match_id: i64) -> Result<(PaymentId, BankTxId), StoreError> {
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

    /// Intents without an outcome (the process died mid-call) and lost answers.
    pub fn unsettled(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state IN ('intent', 'unknown')", [])
    }

    pub fn matches_of_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("run_id = ?1 OR settled_run = ?1", [run])
    }

    /// Reconciled pairs no written report has listed yet, whichever run tied them (a run
    /// that was killed or could not write its report leaves them here), oldest first.
    pub fn unreported_reconciles(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state = 'reconciled' AND reported_run IS NULL", [])
    }

    /// The pairs this run tied at the provider (its own calls and the earlier intents it
    /// settled as applied): what the run's summary counts, even when the run failed.
    pub fn reconciled_in_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state = 'reconciled' AND settled_run = ?1", [run])
    }

    /// Every pair this job reconciled, for the return check of the matching core
    /// (`returned_after_reconcile`).
    pub fn reconciled_pairs(&self) -> Result<Vec<ReconciledPair>, StoreError> {
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

    pub fn all_matches(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("1 = 1", [])
    }

    /// Every match naming this id as its payment or its bank transaction, oldest first.
    pub fn matches_naming(&self, id: &str) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("payment_id = ?1 OR transaction_id = ?1", [id])
    }

    /// The match holding this payment (state intent, unknown or reconciled), if any.
    pub fn hold_of_payment(&self, id: &PaymentId) -> Result<Option<MatchRow>, StoreError> {
        Ok(self
            .matches_where("payment_id = ?1 AND holds = 1", [id.as_str()])?
            .pop())
    }

    /// The match holding this bank transaction, if any.
    pub fn hold_of_transaction(&self, id: &BankTxId) -> Result<Option<MatchRow>, StoreError> {
        Ok(self
            .matches_where("transaction_id = ?1 AND holds = 1", [id.as_str()])?
            .pop())
    }

    /// Which of these bank transactions a match holds (state intent, unknown or
    /// reconciled): tied to a payment by this job, so not open (rules §1).
    pub fn held_transactions<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a BankTxId>,
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

    fn matches_where<P: rusqlite::Params>(
        &self,
        cond: &str,
        p: P,
    ) -> Result<Vec<MatchRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, run_id, payment_id, transaction_id, iban, amount, currency, concept, state,
                    provider_code, created_at, settled_at
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
                concept, rule, state, dry_run, created_at, holds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'confident', ?8, ?9, ?10, ?11)",
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{eur, open};

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
        s.conn
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
            let r = s.conn.execute(wrong, []);
            assert!(
                matches!(&r, Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_CHECK),
                "{wrong}: {r:?}"
            );
        }
    }
}
