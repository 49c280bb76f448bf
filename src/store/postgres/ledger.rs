//! The ledger part of the store on PostgreSQL (`store/ledger.rs`): the `matches` table,
//! whose partial unique indexes (`matches_one_per_payment`, `matches_one_per_transaction`)
//! make the server refuse a second tie of a payment or a bank transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use postgres::Client;
use postgres::error::SqlState;
use postgres::types::ToSql;

use super::{PgError, PgStore};
use crate::domain::{BankTxId, Concept, Currency, Iban, Money, PaymentId, PaymentStatus};
use crate::matching::ReconciledPair;
use crate::store::{
    LedgerStore, MatchRow, MatchState, NewMatch, RunId, Settlement, StoreError, corrupt, decimal,
    parse_ts, ts,
};

/// Inserts matches given as arrays, in the order given, with the server's clock as
/// `written_at` (the one clock every host shares). `rule` is always `confident` here,
/// as on SQLite. Returns each row's id and payment.
const INSERT_MATCHES: &str = r#"
    INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency, concept,
        rule, state, dry_run, created_at, holds, written_at)
    SELECT u.run_id, u.payment_id, u.transaction_id, u.iban, u.amount, u.currency, u.concept,
           'confident', $9::TEXT, $10::BIGINT, u.created_at, $11::BIGINT,
           to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                $7::TEXT[], $8::TEXT[]) WITH ORDINALITY
         AS u(run_id, payment_id, transaction_id, iban, amount, currency, concept, created_at, ord)
    ORDER BY u.ord
    RETURNING id, payment_id"#;

const MATCH_COLUMNS: &str = "id, run_id, payment_id, transaction_id, iban, amount, currency,
    concept, state, provider_code, created_at, settled_at, written_at";

/// A query parameter moved onto the session's thread.
type Arg = Box<dyn ToSql + Sync + Send>;

/// New matches as the columns of [`INSERT_MATCHES`], owned so they can be moved onto
/// the session's thread.
#[derive(Clone, Default)]
struct MatchArrays {
    run_id: Vec<i64>,
    payment: Vec<String>,
    transaction: Vec<String>,
    iban: Vec<String>,
    amount: Vec<String>,
    currency: Vec<String>,
    concept: Vec<Option<String>>,
    created_at: Vec<String>,
}

impl MatchArrays {
    fn of(ms: &[NewMatch<'_>]) -> Self {
        let mut a = Self::default();
        for m in ms {
            a.run_id.push(m.run_id);
            a.payment.push(m.payment.as_str().to_owned());
            a.transaction.push(m.transaction.as_str().to_owned());
            a.iban.push(m.iban.as_str().to_owned());
            a.amount.push(m.amount.amount_str());
            a.currency.push(m.amount.currency().as_str().to_owned());
            a.concept.push(m.concept.map(|c| c.as_str().to_owned()));
            a.created_at.push(ts(m.now));
        }
        a
    }

    fn len(&self) -> usize {
        self.run_id.len()
    }

    /// The `i`th match alone.
    fn one(&self, i: usize) -> Self {
        Self {
            run_id: vec![self.run_id[i]],
            payment: vec![self.payment[i].clone()],
            transaction: vec![self.transaction[i].clone()],
            iban: vec![self.iban[i].clone()],
            amount: vec![self.amount[i].clone()],
            currency: vec![self.currency[i].clone()],
            concept: vec![self.concept[i].clone()],
            created_at: vec![self.created_at[i].clone()],
        }
    }

    /// Runs [`INSERT_MATCHES`] (prepared as `st`) for these matches in `state`.
    fn insert(
        &self,
        c: &mut Client,
        st: &postgres::Statement,
        state: MatchState,
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let dry_run = i64::from(state == MatchState::DryRun);
        c.query(
            st,
            &[
                &self.run_id,
                &self.payment,
                &self.transaction,
                &self.iban,
                &self.amount,
                &self.currency,
                &self.concept,
                &self.created_at,
                &state.as_str(),
                &dry_run,
                &state.holds(),
            ],
        )
    }
}

/// What became of one intent of a batch, on the session's thread.
enum Inserted {
    Id(i64),
    /// The exactly-once indexes refused it.
    Tied,
    /// The server refused it for another reason (the rest of the batch went on).
    Refused(postgres::Error),
}

/// Inserts intents in the open transaction. The whole batch is tried as one statement
/// inside a savepoint; when the exactly-once indexes refuse it, it is rolled back to
/// the savepoint and each intent is inserted inside a savepoint of its own, so a refused
/// one is undone alone and the rest go on (a refusal outside a savepoint would abort
/// the whole transaction).
fn insert_intents_in(c: &mut Client, a: &MatchArrays) -> Result<Vec<Inserted>, postgres::Error> {
    let st = c.prepare(INSERT_MATCHES)?;
    // The commit waits for the server's WAL flush even where the server or the role
    // has synchronous_commit off: an intent lost in a server crash would let the pair
    // be called twice.
    c.batch_execute("SET LOCAL synchronous_commit = on; SAVEPOINT intents")?;
    match a.insert(c, &st, MatchState::Intent) {
        Ok(rows) => {
            c.batch_execute("RELEASE SAVEPOINT intents")?;
            // Every row holds its payment, so the payments of a batch the indexes
            // accepted are all different: each names its intent.
            let ids: HashMap<String, i64> = rows.iter().map(|r| (r.get(1), r.get(0))).collect();
            return Ok(a
                .payment
                .iter()
                .map(|p| ids.get(p).map_or(Inserted::Tied, |id| Inserted::Id(*id)))
                .collect());
        }
        // Refused by the server (the exactly-once indexes, or a constraint): find
        // which intents, one by one.
        Err(e) if e.as_db_error().is_some() => {
            c.batch_execute("ROLLBACK TO SAVEPOINT intents; RELEASE SAVEPOINT intents")?;
            if a.len() == 1 {
                return Ok(vec![refusal(e)]);
            }
        }
        Err(e) => return Err(e),
    }
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        c.batch_execute("SAVEPOINT intent")?;
        match a.one(i).insert(c, &st, MatchState::Intent) {
            Ok(rows) => {
                c.batch_execute("RELEASE SAVEPOINT intent")?;
                out.push(
                    rows.first()
                        .map_or(Inserted::Tied, |r| Inserted::Id(r.get(0))),
                );
            }
            Err(e) => {
                c.batch_execute("ROLLBACK TO SAVEPOINT intent; RELEASE SAVEPOINT intent")?;
                out.push(refusal(e));
            }
        }
    }
    Ok(out)
}

/// What a refused insert says about its intent.
fn refusal(e: postgres::Error) -> Inserted {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        Inserted::Tied
    } else {
        Inserted::Refused(e)
    }
}

/// The ids and payment statuses of `items`, the last one of an id winning (as when
/// SQLite updates them one after another).
fn reconciled_arrays(
    items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
) -> (Vec<i64>, Vec<String>) {
    let mut last: HashMap<i64, &str> = HashMap::new();
    for (id, _, _, status) in items {
        last.insert(*id, status.as_str());
    }
    let mut pairs: Vec<_> = last.into_iter().collect();
    pairs.sort_unstable();
    pairs.into_iter().map(|(id, s)| (id, s.to_owned())).unzip()
}

/// Leaves `holds` alone: intents and unknowns hold already (the CHECK refuses a
/// reconciled row that does not).
fn mark_reconciled_in(
    c: &mut Client,
    ids: &[i64],
    statuses: &[String],
    answer: &str,
    run: RunId,
    now: &str,
) -> Result<(), postgres::Error> {
    c.execute(
        "UPDATE matches SET state = 'reconciled', provider_answer = $3,
            payment_status = u.status, settled_at = $4, settled_run = $5
         FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS u(id, status)
         WHERE matches.id = u.id",
        &[&ids, &statuses, &answer, &now, &run],
    )?;
    Ok(())
}

/// The payments' new statuses and the transactions' ties, each table in one statement.
/// A tie whose row is missing writes nothing.
#[derive(Default)]
struct Ties {
    payments: Vec<String>,
    statuses: Vec<String>,
    transactions: Vec<String>,
    tied_to: Vec<String>,
}

impl Ties {
    /// In key order, the last tie of a key winning.
    fn of(items: &[(i64, PaymentId, BankTxId, PaymentStatus)]) -> Self {
        let mut p = std::collections::BTreeMap::new();
        let mut t = std::collections::BTreeMap::new();
        for (_, pid, tid, status) in items {
            p.insert(pid.as_str(), status.as_str());
            t.insert(tid.as_str(), pid.as_str());
        }
        let mut ties = Self::default();
        for (pid, status) in p {
            ties.payments.push(pid.to_owned());
            ties.statuses.push(status.to_owned());
        }
        for (tid, pid) in t {
            ties.transactions.push(tid.to_owned());
            ties.tied_to.push(pid.to_owned());
        }
        ties
    }

    fn write(&self, c: &mut Client) -> Result<(), postgres::Error> {
        if !self.payments.is_empty() {
            c.execute(
                "UPDATE payments SET status = u.status
                 FROM UNNEST($1::TEXT[], $2::TEXT[]) AS u(id, status)
                 WHERE payments.id = u.id",
                &[&self.payments, &self.statuses],
            )?;
        }
        if !self.transactions.is_empty() {
            c.execute(
                "UPDATE bank_transactions SET reconciled_payment_id = u.payment_id
                 FROM UNNEST($1::TEXT[], $2::TEXT[]) AS u(id, payment_id)
                 WHERE bank_transactions.id = u.id",
                &[&self.transactions, &self.tied_to],
            )?;
        }
        Ok(())
    }
}

impl LedgerStore for PgStore {
    /// Committed before it returns, durably (`synchronous_commit` on for its
    /// transaction), unless a batch is open, which it then joins.
    fn insert_intents(
        &mut self,
        ms: &[NewMatch<'_>],
    ) -> Result<Vec<Result<i64, StoreError>>, StoreError> {
        if ms.is_empty() {
            return Ok(Vec::new());
        }
        let a = MatchArrays::of(ms);
        let done = self.in_tx(move |c| insert_intents_in(c, &a))?;
        let target = self.conn().target().to_owned();
        Ok(done
            .into_iter()
            .zip(ms)
            .map(|(d, m)| match d {
                Inserted::Id(id) => Ok(id),
                Inserted::Tied => Err(StoreError::AlreadyTied {
                    payment: m.payment.to_string(),
                    transaction: m.transaction.to_string(),
                }),
                Inserted::Refused(source) => Err(StoreError::Postgres(PgError::Sql {
                    target: target.clone(),
                    source,
                })),
            })
            .collect())
    }

    fn insert_dry_runs(&mut self, ms: &[NewMatch<'_>]) -> Result<(), StoreError> {
        if ms.is_empty() {
            return Ok(());
        }
        let a = MatchArrays::of(ms);
        self.in_tx(move |c| {
            let st = c.prepare(INSERT_MATCHES)?;
            a.insert(c, &st, MatchState::DryRun).map(drop)
        })
    }

    fn settle_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (ids, statuses) = reconciled_arrays(items);
        let ties = Ties::of(items);
        let (answer, now) = (answer.to_owned(), ts(now));
        self.in_tx(move |c| {
            mark_reconciled_in(c, &ids, &statuses, &answer, run, &now)?;
            ties.write(c)
        })
    }

    fn mark_reconciled(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
        answer: &str,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (ids, statuses) = reconciled_arrays(items);
        let (answer, now) = (answer.to_owned(), ts(now));
        self.in_tx(move |c| mark_reconciled_in(c, &ids, &statuses, &answer, run, &now))
    }

    fn record_ties(
        &mut self,
        items: &[(i64, PaymentId, BankTxId, PaymentStatus)],
    ) -> Result<(), StoreError> {
        let ties = Ties::of(items);
        self.in_tx(move |c| ties.write(c))
    }

    fn settle(&mut self, match_id: i64, s: &Settlement<'_>) -> Result<(), StoreError> {
        let state = s.state;
        let code = s.provider_code.map(str::to_owned);
        let answer = s.provider_answer.map(str::to_owned);
        let status = s.payment_status.map(str::to_owned);
        let (now, run) = (ts(s.now), s.run);
        self.run(move |c| {
            c.execute(
                "UPDATE matches SET state = $2, provider_code = $3, provider_answer = $4,
                    payment_status = COALESCE($5, payment_status), settled_at = $6,
                    settled_run = $7, holds = $8
                 WHERE id = $1",
                &[
                    &match_id,
                    &state.as_str(),
                    &code,
                    &answer,
                    &status,
                    &now,
                    &run,
                    &state.holds(),
                ],
            )
        })?;
        Ok(())
    }

    fn refused_pairs(&self) -> Result<Vec<(PaymentId, BankTxId, String)>, StoreError> {
        let rows: Vec<(String, String, String)> = self.run(|c| {
            Ok(c.query(
                "SELECT m.payment_id, m.transaction_id, COALESCE(m.provider_code, '')
                 FROM matches m JOIN payments p ON p.id = m.payment_id
                 WHERE m.state = 'failed' AND m.payment_status IS NOT DISTINCT FROM p.status
                 ORDER BY m.id",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
        })?;
        rows.into_iter()
            .map(|(p, t, code)| {
                Ok((
                    PaymentId::parse(&p).map_err(|e| corrupt("matches", &p, e))?,
                    BankTxId::parse(&t).map_err(|e| corrupt("matches", &t, e))?,
                    code,
                ))
            })
            .collect()
    }

    fn match_pair(&self, match_id: i64) -> Result<(PaymentId, BankTxId), StoreError> {
        let (p, t): (String, String) = self.run(move |c| {
            let r = c.query_one(
                "SELECT payment_id, transaction_id FROM matches WHERE id = $1",
                &[&match_id],
            )?;
            Ok((r.get(0), r.get(1)))
        })?;
        Ok((
            PaymentId::parse(&p).map_err(|e| corrupt("matches", &p, e))?,
            BankTxId::parse(&t).map_err(|e| corrupt("matches", &t, e))?,
        ))
    }

    fn unsettled(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state IN ('intent', 'unknown')", Vec::new())
    }

    fn matches_of_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("run_id = $1 OR settled_run = $1", vec![Box::new(run)])
    }

    fn unreported_reconciles(&self) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where("state = 'reconciled' AND reported_run IS NULL", Vec::new())
    }

    fn reconciled_in_run(&self, run: RunId) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where(
            "state = 'reconciled' AND settled_run = $1",
            vec![Box::new(run)],
        )
    }

    fn reconciled_pairs(&self) -> Result<Vec<ReconciledPair>, StoreError> {
        Ok(self
            .matches_where("state = 'reconciled'", Vec::new())?
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
        self.matches_where("TRUE", Vec::new())
    }

    fn matches_naming(&self, id: &str) -> Result<Vec<MatchRow>, StoreError> {
        self.matches_where(
            "payment_id = $1 OR transaction_id = $1",
            vec![Box::new(id.to_owned())],
        )
    }

    fn hold_of_payment(&self, id: &PaymentId) -> Result<Option<MatchRow>, StoreError> {
        Ok(self
            .matches_where(
                "payment_id = $1 AND holds = 1",
                vec![Box::new(id.as_str().to_owned())],
            )?
            .pop())
    }

    fn hold_of_transaction(&self, id: &BankTxId) -> Result<Option<MatchRow>, StoreError> {
        Ok(self
            .matches_where(
                "transaction_id = $1 AND holds = 1",
                vec![Box::new(id.as_str().to_owned())],
            )?
            .pop())
    }

    fn held_transactions(&self, ids: &[BankTxId]) -> Result<HashSet<BankTxId>, StoreError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let wanted: Vec<String> = ids.iter().map(|t| t.as_str().to_owned()).collect();
        let held: HashSet<String> = self.run(move |c| {
            Ok(c.query(
                "SELECT transaction_id FROM matches
                 WHERE transaction_id = ANY($1::TEXT[]) AND holds = 1",
                &[&wanted],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        Ok(ids
            .iter()
            .filter(|t| held.contains(t.as_str()))
            .cloned()
            .collect())
    }
}

impl PgStore {
    /// The matches meeting `cond` (over `args`, `$1`...), in id order.
    fn matches_where(
        &self,
        cond: &'static str,
        args: Vec<Arg>,
    ) -> Result<Vec<MatchRow>, StoreError> {
        let sql = format!("SELECT {MATCH_COLUMNS} FROM matches WHERE {cond} ORDER BY id");
        let rows = self.run(move |c| {
            let params: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
            c.query(&sql, &params)
        })?;
        rows.iter().map(match_row).collect()
    }
}

fn match_row(r: &postgres::Row) -> Result<MatchRow, StoreError> {
    const T: &str = "matches";
    let id: i64 = r.get(0);
    let sid = id.to_string();
    let cur = Currency::parse(r.get::<_, String>(6)).map_err(|e| corrupt(T, &sid, e))?;
    let state: String = r.get(8);
    Ok(MatchRow {
        id,
        run_id: r.get(1),
        payment_id: PaymentId::parse(r.get::<_, String>(2)).map_err(|e| corrupt(T, &sid, e))?,
        transaction_id: BankTxId::parse(r.get::<_, String>(3)).map_err(|e| corrupt(T, &sid, e))?,
        iban: Iban::parse(r.get::<_, String>(4)).map_err(|e| corrupt(T, &sid, e))?,
        amount: Money::from_units(decimal(T, &sid, r.get(5))?, cur),
        concept: r
            .get::<_, Option<String>>(7)
            .map(|c| Concept::parse(c).map_err(|e| corrupt(T, &sid, e)))
            .transpose()?,
        state: MatchState::parse(&state)
            .ok_or_else(|| corrupt(T, &sid, format!("unknown state {state:?}")))?,
        provider_code: r.get(9),
        created_at: parse_ts(T, &sid, r.get(10))?,
        settled_at: r
            .get::<_, Option<&str>>(11)
            .map(|s| parse_ts(T, &sid, s))
            .transpose()?,
        written_at: r
            .get::<_, Option<&str>>(12)
            .map(|s| parse_ts(T, &sid, s))
            .transpose()?,
    })
}
