//! The records part of the store on PostgreSQL (`store/records.rs`).
//!
//! A sync writes its lists in batches of about a thousand rows, a hundred thousand in a
//! cold run: each batch is one statement, its columns sent as arrays (`UNNEST`), so a
//! batch costs one round trip to the server whatever its size. Reads by id are one
//! statement too (`UNNEST ... WITH ORDINALITY`), in the order the ids were asked.

use std::collections::HashSet;
use std::sync::LazyLock;

use ::postgres::Row;
use ::postgres::types::{ToSql, Type};
use chrono::{DateTime, Utc};

use crate::domain::{
    BankAccount, BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp,
    OfframpId, OfframpStatus, Payment, PaymentId, PaymentStatus,
};
use crate::store::records::{BANK_ACCOUNTS, BANK_TRANSACTIONS, Listed, OFFRAMPS, PAYMENTS};
use crate::store::*;

use super::PgStore;

/// The matching input, in the order SQLite reads it (its covering indexes are keyed by
/// time, then id). A holding match (`holds = 1`, at most one per payment and one per
/// transaction: the exactly-once indexes) ties the row; one in state `intent` or
/// `unknown` (which always holds) leaves the payment in doubt.
const MATCHING_PAYMENTS: &str = "
    SELECT p.id, p.external_id, p.user_id, p.status, p.amount, p.currency, p.payment_type,
           p.concept, p.created_at, p.updated_at,
           m.id IS NOT NULL, COALESCE(m.state IN ('intent', 'unknown'), FALSE)
    FROM payments p LEFT JOIN matches m ON m.payment_id = p.id AND m.holds = 1
    WHERE p.status = 'pending_bank'
    ORDER BY p.created_at, p.id";
const MATCHING_TRANSACTIONS: &str = "
    SELECT t.id, t.iban, t.direction, t.amount, t.currency, t.concept, t.counterparty_name,
           t.counterparty_iban, t.booked_at, t.value_date, t.reconciled_payment_id,
           m.id IS NOT NULL
    FROM bank_transactions t LEFT JOIN matches m ON m.transaction_id = t.id AND m.holds = 1
    WHERE t.direction = 'debit' OR t.reconciled_payment_id IS NULL
    ORDER BY t.booked_at, t.id";
const MATCHING_OFFRAMPS: &str = "
    SELECT id, user_id, status, amount, currency, iban, created_at, updated_at
    FROM offramps WHERE status = 'finished'
    ORDER BY created_at, id";
const PENDING_PAYMENT_IDS: &str =
    "SELECT id FROM payments WHERE status = 'pending_bank' ORDER BY created_at, id";

const PAYMENTS_BY_IDS: &str = "
    SELECT p.id, p.external_id, p.user_id, p.status, p.amount, p.currency, p.payment_type,
           p.concept, p.created_at, p.updated_at
    FROM UNNEST($1::TEXT[]) WITH ORDINALITY AS q (id, n) JOIN payments p ON p.id = q.id
    ORDER BY q.n";
const TRANSACTIONS_BY_IDS: &str = "
    SELECT t.id, t.iban, t.direction, t.amount, t.currency, t.concept, t.counterparty_name,
           t.counterparty_iban, t.booked_at, t.value_date, t.reconciled_payment_id
    FROM UNNEST($1::TEXT[]) WITH ORDINALITY AS q (id, n)
    JOIN bank_transactions t ON t.id = q.id
    ORDER BY q.n";
const OFFRAMPS_BY_IDS: &str = "
    SELECT o.id, o.user_id, o.status, o.amount, o.currency, o.iban, o.created_at, o.updated_at
    FROM UNNEST($1::TEXT[]) WITH ORDINALITY AS q (id, n) JOIN offramps o ON o.id = q.id
    ORDER BY q.n";

impl RecordStore for PgStore {
    fn upsert_payments(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Payment>],
    ) -> Result<(), StoreError> {
        let rows = last_of_each(batch, |p| p.id.as_str());
        let columns = vec![
            text(&rows, |r| r.value.id.as_str().to_owned()),
            opt_text(&rows, |r| r.value.external_id.clone()),
            opt_text(&rows, |r| r.value.user_id.clone()),
            text(&rows, |r| r.value.status.as_str().to_owned()),
            text(&rows, |r| r.value.amount.amount_str()),
            text(&rows, |r| r.value.amount.currency().as_str().to_owned()),
            opt_text(&rows, |r| r.value.payment_type.clone()),
            opt_text(&rows, |r| {
                r.value.concept.as_ref().map(|c| c.as_str().to_owned())
            }),
            text(&rows, |r| ts(r.value.created_at)),
            opt_text(&rows, |r| r.value.updated_at.map(ts)),
            text(&rows, |r| r.raw.clone()),
        ];
        self.upsert(&UPSERT_PAYMENTS, columns, now, run)
    }

    fn upsert_offramps(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Offramp>],
    ) -> Result<(), StoreError> {
        let rows = last_of_each(batch, |o| o.id.as_str());
        let columns = vec![
            text(&rows, |r| r.value.id.as_str().to_owned()),
            opt_text(&rows, |r| r.value.user_id.clone()),
            text(&rows, |r| r.value.status.as_str().to_owned()),
            text(&rows, |r| r.value.fiat.amount_str()),
            text(&rows, |r| r.value.fiat.currency().as_str().to_owned()),
            opt_text(&rows, |r| r.value.iban.clone()),
            text(&rows, |r| ts(r.value.created_at)),
            opt_text(&rows, |r| r.value.updated_at.map(ts)),
            text(&rows, |r| r.raw.clone()),
        ];
        self.upsert(&UPSERT_OFFRAMPS, columns, now, run)
    }

    fn upsert_accounts(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankAccount>],
    ) -> Result<(), StoreError> {
        let rows = last_of_each(batch, |a| a.iban.as_str());
        let columns = vec![
            text(&rows, |r| r.value.iban.as_str().to_owned()),
            opt_text(&rows, |r| r.value.bic.clone()),
            opt_text(&rows, |r| r.value.holder_name.clone()),
            opt_text(&rows, |r| {
                r.value.currency.as_ref().map(|c| c.as_str().to_owned())
            }),
            opt_text(&rows, |r| r.value.balance.map(|b| b.to_string())),
            text(&rows, |r| r.raw.clone()),
        ];
        self.upsert(&UPSERT_ACCOUNTS, columns, now, run)
    }

    fn upsert_transactions(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankTransaction>],
    ) -> Result<(), StoreError> {
        let rows = last_of_each(batch, |t| t.id.as_str());
        let columns = vec![
            text(&rows, |r| r.value.id.as_str().to_owned()),
            text(&rows, |r| r.value.iban.as_str().to_owned()),
            text(&rows, |r| r.value.direction.as_str().to_owned()),
            text(&rows, |r| r.value.amount.amount_str()),
            text(&rows, |r| r.value.amount.currency().as_str().to_owned()),
            text(&rows, |r| r.value.concept_text.clone()),
            opt_text(&rows, |r| r.value.counterparty_name.clone()),
            opt_text(&rows, |r| r.value.counterparty_iban.clone()),
            text(&rows, |r| ts(r.value.booked_at)),
            opt_text(&rows, |r| r.value.value_date.map(wire_date)),
            opt_text(&rows, |r| {
                r.value
                    .reconciled_payment_id
                    .as_ref()
                    .map(|p| p.as_str().to_owned())
            }),
            text(&rows, |r| r.raw.clone()),
        ];
        self.upsert(&UPSERT_TRANSACTIONS, columns, now, run)
    }

    fn insert_bad_records(&mut self, run: RunId, bad: &[BadRecord]) -> Result<(), StoreError> {
        if bad.is_empty() {
            return Ok(());
        }
        let endpoints: Vec<String> = bad.iter().map(|b| b.endpoint.clone()).collect();
        let ids: Vec<Option<String>> = bad.iter().map(|b| b.id.clone()).collect();
        let errors: Vec<String> = bad.iter().map(|b| b.error.clone()).collect();
        let raws: Vec<String> = bad.iter().map(|b| b.raw.clone()).collect();
        // In the order given, so the ids are assigned as SQLite's one insert per row does.
        self.in_tx(move |c| {
            c.execute_typed(
                "INSERT INTO bad_records (run_id, endpoint, record_id, error, raw_json)
                 SELECT $1, u.endpoint, u.record_id, u.error, u.raw_json
                 FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[])
                      WITH ORDINALITY AS u (endpoint, record_id, error, raw_json, n)
                 ORDER BY u.n",
                &[
                    (&run, Type::INT8),
                    (&endpoints, Type::TEXT_ARRAY),
                    (&ids, Type::TEXT_ARRAY),
                    (&errors, Type::TEXT_ARRAY),
                    (&raws, Type::TEXT_ARRAY),
                ],
            )?;
            Ok(())
        })
    }

    fn pending_payment_ids(&self) -> Result<Vec<PaymentId>, StoreError> {
        let ids: Vec<String> = self.run(|c| {
            c.query_typed(PENDING_PAYMENT_IDS, &[])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })?;
        ids.into_iter()
            .map(|id| PaymentId::parse(id.as_str()).map_err(|e| corrupt("payments", &id, e)))
            .collect()
    }

    fn matching_data(&self) -> Result<MatchingData, StoreError> {
        let (payments, transactions, offramps) = self.run(|c| {
            Ok((
                c.query_typed(MATCHING_PAYMENTS, &[])?,
                c.query_typed(MATCHING_TRANSACTIONS, &[])?,
                c.query_typed(MATCHING_OFFRAMPS, &[])?,
            ))
        })?;
        let mut d = MatchingData {
            payments: Vec::with_capacity(payments.len()),
            transactions: Vec::with_capacity(transactions.len()),
            offramps: Vec::with_capacity(offramps.len()),
            tied_payments: HashSet::new(),
            in_doubt_payments: HashSet::new(),
            tied_transactions: HashSet::new(),
        };
        for r in &payments {
            let p = payment_row(r)?;
            // A match that holds the payment is either done (`reconciled`) or in doubt.
            if get::<bool>(r, 10, "payments", p.id.as_str())? {
                if get::<bool>(r, 11, "payments", p.id.as_str())? {
                    d.in_doubt_payments.insert(p.id.clone());
                } else {
                    d.tied_payments.insert(p.id.clone());
                }
            }
            d.payments.push(p);
        }
        for r in &transactions {
            let t = transaction_row(r)?;
            if get::<bool>(r, 11, "bank_transactions", t.id.as_str())? {
                d.tied_transactions.insert(t.id.clone());
            }
            d.transactions.push(t);
        }
        for r in &offramps {
            d.offramps.push(offramp_row(r)?);
        }
        Ok(d)
    }

    fn payments_by_ids(&self, ids: &[&PaymentId]) -> Result<Vec<Payment>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        by_ids(self, PAYMENTS_BY_IDS, ids)?
            .iter()
            .map(payment_row)
            .collect()
    }

    fn transactions_by_ids(&self, ids: &[&BankTxId]) -> Result<Vec<BankTransaction>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        by_ids(self, TRANSACTIONS_BY_IDS, ids)?
            .iter()
            .map(transaction_row)
            .collect()
    }

    fn offramps_by_ids(&self, ids: &[&OfframpId]) -> Result<Vec<Offramp>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        by_ids(self, OFFRAMPS_BY_IDS, ids)?
            .iter()
            .map(offramp_row)
            .collect()
    }

    fn mark_vanished(&mut self, run: RunId, ids: &[PaymentId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        self.in_tx(move |c| {
            c.execute_typed(
                "UPDATE payments SET status = 'vanished', vanished_run = $1
                 WHERE id = ANY($2::TEXT[])",
                &[(&run, Type::INT8), (&ids, Type::TEXT_ARRAY)],
            )?;
            Ok(())
        })
    }
}

/// A column of a batch, as the array bound for it.
type Column = Vec<Option<String>>;

fn text<T>(rows: &[&Record<T>], f: impl Fn(&Record<T>) -> String) -> Column {
    rows.iter().map(|r| Some(f(r))).collect()
}

fn opt_text<T>(rows: &[&Record<T>], f: impl Fn(&Record<T>) -> Option<String>) -> Column {
    rows.iter().map(|r| f(r)).collect()
}

/// The batch with each key once, at its last occurrence: what SQLite's row-by-row
/// upsert leaves (the later row overwrites the earlier), and what one `INSERT ... ON
/// CONFLICT DO UPDATE` needs (it refuses to update a row twice). A batch without a
/// repeated key (the usual one) is kept in its order.
fn last_of_each<T>(batch: &[Record<T>], key: impl Fn(&T) -> &str) -> Vec<&Record<T>> {
    let mut seen = rustc_hash::FxHashSet::default();
    seen.reserve(batch.len());
    let mut rows: Vec<&Record<T>> = batch
        .iter()
        .rev()
        .filter(|r| seen.insert(key(&r.value)))
        .collect();
    rows.reverse();
    rows
}

impl Listed {
    /// One `INSERT ... SELECT FROM UNNEST ... ON CONFLICT DO UPDATE` for a whole batch:
    /// parameters `$1..$n` are the columns' arrays (the key first), `$n+1` the time and
    /// `$n+2` the run. A new row is first and last seen now; a known row has every
    /// column rewritten and its last sighting moved, its first sighting kept, whether
    /// or not any column changed (as SQLite's upsert does).
    fn upsert_sql(&self) -> String {
        let cols: Vec<&str> = std::iter::once(self.key)
            .chain(self.columns.iter().copied())
            .collect();
        let t = self.table;
        let (now, run) = (cols.len() + 1, cols.len() + 2);
        let arrays: Vec<String> = (1..=cols.len()).map(|i| format!("${i}::TEXT[]")).collect();
        let sets: Vec<String> = cols[1..]
            .iter()
            .chain(&["last_seen_at", "last_seen_run"])
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        format!(
            "INSERT INTO {t} ({}, first_seen_at, last_seen_at, first_seen_run, last_seen_run)
             SELECT u.*, ${now}::TEXT, ${now}::TEXT, ${run}::BIGINT, ${run}::BIGINT
             FROM UNNEST({}) AS u
             ON CONFLICT ({}) DO UPDATE SET {}",
            cols.join(", "),
            arrays.join(", "),
            cols[0],
            sets.join(", ")
        )
    }
}

static UPSERT_PAYMENTS: LazyLock<(String, usize)> = LazyLock::new(|| listed(&PAYMENTS));
static UPSERT_OFFRAMPS: LazyLock<(String, usize)> = LazyLock::new(|| listed(&OFFRAMPS));
static UPSERT_ACCOUNTS: LazyLock<(String, usize)> = LazyLock::new(|| listed(&BANK_ACCOUNTS));
static UPSERT_TRANSACTIONS: LazyLock<(String, usize)> =
    LazyLock::new(|| listed(&BANK_TRANSACTIONS));

/// The upsert's text and how many column arrays it takes.
fn listed(l: &Listed) -> (String, usize) {
    (l.upsert_sql(), l.columns.len() + 1)
}

impl PgStore {
    /// Runs one table's upsert for a batch, in one statement and one round trip (the
    /// statement is prepared once per session), inside the open batch or a transaction
    /// of its own.
    fn upsert(
        &mut self,
        upsert: &'static LazyLock<(String, usize)>,
        columns: Vec<Column>,
        now: DateTime<Utc>,
        run: RunId,
    ) -> Result<(), StoreError> {
        let (sql, width) = (&upsert.0, upsert.1);
        debug_assert_eq!(columns.len(), width);
        if columns.first().is_none_or(Vec::is_empty) {
            return Ok(());
        }
        let now = ts(now);
        self.in_tx(move |c| {
            let mut types = vec![Type::TEXT_ARRAY; columns.len()];
            types.extend([Type::TEXT, Type::INT8]);
            let st = super::store::prepared(c, sql, &types)?;
            let mut params: Vec<&(dyn ToSql + Sync)> = columns
                .iter()
                .map(|col| col as &(dyn ToSql + Sync))
                .collect();
            params.push(&now);
            params.push(&run);
            c.execute(&st, &params)?;
            Ok(())
        })
    }
}

/// The rows of a read by ids, in the order of `ids` (a repeated id is read again, an
/// unknown one is left out), as SQLite's read of one id after another.
fn by_ids(s: &PgStore, sql: &'static str, ids: Vec<String>) -> Result<Vec<Row>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    s.run(move |c| c.query_typed(sql, &[(&ids, Type::TEXT_ARRAY)]))
}

/// A column of a stored row; a value of another type than the schema's is a corrupt
/// row (the schema types every column, so only a changed schema gets here).
fn get<'r, V: ::postgres::types::FromSql<'r>>(
    r: &'r Row,
    i: usize,
    table: &'static str,
    id: &str,
) -> Result<V, StoreError> {
    r.try_get(i).map_err(|e| {
        let name = r.columns().get(i).map_or("?", |c| c.name());
        corrupt(table, id, format!("column {name}: {e}"))
    })
}

fn payment_row(r: &Row) -> Result<Payment, StoreError> {
    const T: &str = "payments";
    let id: String = get(r, 0, T, "''")?;
    let cur = Currency::parse(get::<&str>(r, 5, T, &id)?).map_err(|e| corrupt(T, &id, e))?;
    let amount = Money::from_units(decimal(T, &id, get(r, 4, T, &id)?)?, cur);
    let concept = get::<Option<&str>>(r, 7, T, &id)?
        .map(|c| Concept::parse(c).map_err(|e| corrupt(T, &id, e)))
        .transpose()?;
    Ok(Payment {
        external_id: get(r, 1, T, &id)?,
        user_id: get(r, 2, T, &id)?,
        status: PaymentStatus::parse(get(r, 3, T, &id)?),
        amount,
        payment_type: get(r, 6, T, &id)?,
        concept,
        created_at: parse_ts(T, &id, get(r, 8, T, &id)?)?,
        updated_at: get::<Option<&str>>(r, 9, T, &id)?
            .map(|s| parse_ts(T, &id, s))
            .transpose()?,
        // Moved last: the fields above name the row by it.
        id: PaymentId::parse(id).map_err(|e| corrupt(T, "''", e))?,
    })
}

fn transaction_row(r: &Row) -> Result<BankTransaction, StoreError> {
    const T: &str = "bank_transactions";
    let id: String = get(r, 0, T, "''")?;
    let cur = Currency::parse(get::<&str>(r, 4, T, &id)?).map_err(|e| corrupt(T, &id, e))?;
    Ok(BankTransaction {
        iban: Iban::parse(get::<&str>(r, 1, T, &id)?).map_err(|e| corrupt(T, &id, e))?,
        direction: Direction::parse(get(r, 2, T, &id)?).map_err(|e| corrupt(T, &id, e))?,
        amount: Money::from_units(decimal(T, &id, get(r, 3, T, &id)?)?, cur),
        concept_text: get(r, 5, T, &id)?,
        counterparty_name: get(r, 6, T, &id)?,
        counterparty_iban: get(r, 7, T, &id)?,
        booked_at: parse_ts(T, &id, get(r, 8, T, &id)?)?,
        value_date: get::<Option<&str>>(r, 9, T, &id)?
            .map(|s| {
                date_from_text(s).ok_or_else(|| corrupt(T, &id, format!("bad value_date {s:?}")))
            })
            .transpose()?,
        reconciled_payment_id: get::<Option<&str>>(r, 10, T, &id)?
            .map(|p| PaymentId::parse(p).map_err(|e| corrupt(T, &id, e)))
            .transpose()?,
        // Moved last: the fields above name the row by it.
        id: BankTxId::parse(id).map_err(|e| corrupt(T, "''", e))?,
    })
}

fn offramp_row(r: &Row) -> Result<Offramp, StoreError> {
    const T: &str = "offramps";
    let id: String = get(r, 0, T, "''")?;
    let cur = Currency::parse(get::<&str>(r, 4, T, &id)?).map_err(|e| corrupt(T, &id, e))?;
    Ok(Offramp {
        user_id: get(r, 1, T, &id)?,
        status: OfframpStatus::parse(get(r, 2, T, &id)?),
        fiat: Money::from_units(decimal(T, &id, get(r, 3, T, &id)?)?, cur),
        iban: get(r, 5, T, &id)?,
        created_at: parse_ts(T, &id, get(r, 6, T, &id)?)?,
        updated_at: get::<Option<&str>>(r, 7, T, &id)?
            .map(|s| parse_ts(T, &id, s))
            .transpose()?,
        // Moved last: the fields above name the row by it.
        id: OfframpId::parse(id).map_err(|e| corrupt(T, "''", e))?,
    })
}
