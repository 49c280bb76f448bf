//! Provider records: payments, off-ramps, bank accounts and bank transactions as the
//! sync writes them, the records that did not parse, and the reads matching and
//! reconciling make of them.

use super::{SqliteStore, opt_text, read_rows, text};
use crate::store::records::{BANK_TRANSACTIONS, Listed, OFFRAMPS, PAYMENTS};
use crate::store::*;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::domain::{
    BankAccount, BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp,
    OfframpId, OfframpStatus, Payment, PaymentId, PaymentStatus,
};

/// The matching input. Each query reads the open rows from a covering index (migrations
/// 0003–0005, whose WHERE clauses these repeat exactly),
/// and asks the exactly-once indexes whether this job already ties the row.
const MATCHING_PAYMENTS: &str = "
    SELECT id, external_id, user_id, status, amount, currency, payment_type, concept,
           created_at, updated_at,
           EXISTS (SELECT 1 FROM matches m WHERE m.payment_id = payments.id AND m.holds = 1)
    FROM payments WHERE status = 'pending_bank'";
/// Payments whose call is in doubt, from the small partial index of migration 0006.
const IN_DOUBT_PAYMENTS: &str =
    "SELECT payment_id FROM matches WHERE state IN ('intent', 'unknown')";
const MATCHING_TRANSACTIONS: &str = "
    SELECT id, iban, direction, amount, currency, concept, counterparty_name,
           counterparty_iban, booked_at, value_date, reconciled_payment_id,
           EXISTS (SELECT 1 FROM matches m
                   WHERE m.transaction_id = bank_transactions.id AND m.holds = 1)
    FROM bank_transactions WHERE direction = 'debit' OR reconciled_payment_id IS NULL";
/// The payments stored as pending, for [`Store::pending_payment_ids`] (same index).
const PENDING_PAYMENT_IDS: &str = "SELECT id FROM payments WHERE status = 'pending_bank'";
const MATCHING_OFFRAMPS: &str = "
    SELECT id, user_id, status, amount, currency, iban, created_at, updated_at
    FROM offramps WHERE status = 'finished'";

impl RecordStore for SqliteStore {
    fn upsert_payments(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Payment>],
    ) -> Result<(), StoreError> {
        let now = ts(now);
        self.in_tx(|tx| {
            let mut upsert = Upsert::new(tx, &PAYMENTS)?;
            for r in batch {
                let p = &r.value;
                upsert.row(params![
                    p.id.as_str(),
                    p.external_id,
                    p.user_id,
                    p.status.as_str(),
                    p.amount.amount_str(),
                    p.amount.currency().as_str(),
                    p.payment_type,
                    p.concept.as_ref().map(Concept::as_str),
                    ts(p.created_at),
                    p.updated_at.map(ts),
                    r.raw,
                    now,
                    run,
                ])?;
            }
            Ok(())
        })
    }

    fn upsert_offramps(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<Offramp>],
    ) -> Result<(), StoreError> {
        let now = ts(now);
        self.in_tx(|tx| {
            let mut upsert = Upsert::new(tx, &OFFRAMPS)?;
            for r in batch {
                let o = &r.value;
                upsert.row(params![
                    o.id.as_str(),
                    o.user_id,
                    o.status.as_str(),
                    o.fiat.amount_str(),
                    o.fiat.currency().as_str(),
                    o.iban,
                    ts(o.created_at),
                    o.updated_at.map(ts),
                    r.raw,
                    now,
                    run,
                ])?;
            }
            Ok(())
        })
    }

    fn upsert_accounts(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankAccount>],
    ) -> Result<(), StoreError> {
        let now = ts(now);
        self.in_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO bank_accounts (iban, bic, holder_name, currency, balance, raw_json,
                    first_seen_at, last_seen_at, first_seen_run, last_seen_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?8)
                 ON CONFLICT (iban) DO UPDATE SET bic = excluded.bic, holder_name = excluded.holder_name,
                    currency = excluded.currency, balance = excluded.balance, raw_json = excluded.raw_json,
                    last_seen_at = excluded.last_seen_at, last_seen_run = excluded.last_seen_run",
            )?;
            for r in batch {
                let a = &r.value;
                st.execute(params![
                    a.iban.as_str(),
                    a.bic,
                    a.holder_name,
                    a.currency.as_ref().map(Currency::as_str),
                    a.balance.map(|b| b.to_string()),
                    r.raw,
                    now,
                    run,
                ])?;
            }
            Ok(())
        })
    }

    fn upsert_transactions(
        &mut self,
        run: RunId,
        now: DateTime<Utc>,
        batch: &[Record<BankTransaction>],
    ) -> Result<(), StoreError> {
        let now = ts(now);
        self.in_tx(|tx| upsert_transactions_in(tx, run, &now, batch))
    }

    fn insert_bad_records(&mut self, run: RunId, bad: &[BadRecord]) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO bad_records (run_id, endpoint, record_id, error, raw_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for b in bad {
                st.execute(params![run, b.endpoint, b.id, b.error, b.raw])?;
            }
            Ok(())
        })
    }

    fn pending_payment_ids(&self) -> Result<Vec<PaymentId>, StoreError> {
        let mut st = self.conn.prepare_cached(PENDING_PAYMENT_IDS)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let id = r?;
            out.push(PaymentId::parse(&id).map_err(|e| corrupt("payments", &id, e))?);
        }
        Ok(out)
    }

    fn matching_data(&self) -> Result<MatchingData, StoreError> {
        let mut d = MatchingData::default();
        let mut in_doubt = HashSet::new();
        read_rows(&self.conn, IN_DOUBT_PAYMENTS, |r| {
            in_doubt.insert(r.get::<_, String>(0)?);
            Ok(())
        })?;
        read_rows(&self.conn, MATCHING_PAYMENTS, |r| {
            let p = payment_row(r)?;
            // A match that holds the payment is either done (`reconciled`) or in doubt.
            if r.get::<_, bool>(10)? {
                if in_doubt.contains(p.id.as_str()) {
                    d.in_doubt_payments.insert(p.id.clone());
                } else {
                    d.tied_payments.insert(p.id.clone());
                }
            }
            d.payments.push(p);
            Ok(())
        })?;
        read_rows(&self.conn, MATCHING_TRANSACTIONS, |r| {
            let t = transaction_row(r)?;
            if r.get::<_, bool>(11)? {
                d.tied_transactions.insert(t.id.clone());
            }
            d.transactions.push(t);
            Ok(())
        })?;
        read_rows(&self.conn, MATCHING_OFFRAMPS, |r| {
            d.offramps.push(offramp_row(r)?);
            Ok(())
        })?;
        Ok(d)
    }

    fn payments_by_ids(&self, ids: &[&PaymentId]) -> Result<Vec<Payment>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, external_id, user_id, status, amount, currency, payment_type, concept,
                    created_at, updated_at FROM payments WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = st.query([id.as_str()])?;
            if let Some(r) = rows.next()? {
                out.push(payment_row(r)?);
            }
        }
        Ok(out)
    }

    fn transactions_by_ids(&self, ids: &[&BankTxId]) -> Result<Vec<BankTransaction>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, iban, direction, amount, currency, concept, counterparty_name,
                    counterparty_iban, booked_at, value_date, reconciled_payment_id
             FROM bank_transactions WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = st.query([id.as_str()])?;
            if let Some(r) = rows.next()? {
                out.push(transaction_row(r)?);
            }
        }
        Ok(out)
    }

    fn offramps_by_ids(&self, ids: &[&OfframpId]) -> Result<Vec<Offramp>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, user_id, status, amount, currency, iban, created_at, updated_at
             FROM offramps WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = st.query([id.as_str()])?;
            if let Some(r) = rows.next()? {
                out.push(offramp_row(r)?);
            }
        }
        Ok(out)
    }

    fn mark_vanished(&mut self, run: RunId, ids: &[PaymentId]) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            let mut st = tx.prepare_cached(
                "UPDATE payments SET status = 'vanished', vanished_run = ?1 WHERE id = ?2",
            )?;
            for id in ids {
                st.execute(params![run, id.as_str()])?;
            }
            Ok(())
        })
    }
}

impl Listed {
    /// The three statements of [`Upsert`], all taking the same parameters.
    fn statements(&self) -> [String; 3] {
        let (t, key, cols) = (self.table, self.key, self.columns);
        let (now, run) = (cols.len() + 2, cols.len() + 3);
        let each = |f: &dyn Fn(usize, &str) -> String, sep: &str| {
            cols.iter()
                .enumerate()
                .map(|(i, c)| f(i + 2, c))
                .collect::<Vec<_>>()
                .join(sep)
        };
        let seen = format!(
            "UPDATE {t} SET last_seen_at = ?{now}, last_seen_run = ?{run} WHERE {key} = ?1 AND {}",
            each(&|i, c| format!("{c} IS ?{i}"), " AND ")
        );
        let update = format!(
            "UPDATE {t} SET {}, last_seen_at = ?{now}, last_seen_run = ?{run} WHERE {key} = ?1",
            each(&|i, c| format!("{c} = ?{i}"), ", ")
        );
        let insert = format!(
            "INSERT INTO {t} ({key}, {}, first_seen_at, last_seen_at, first_seen_run, last_seen_run)
             VALUES (?1, {}, ?{now}, ?{now}, ?{run}, ?{run})",
            cols.join(", "),
            each(&|i, _| format!("?{i}"), ", ")
        );
        [seen, update, insert]
    }
}

/// An upsert as plain statements that take the same parameters: `UPDATE` of the
/// `last_seen_*` columns of a row whose every other column already holds what the
/// provider sent (the common case when the overlap window re-reads a list), `UPDATE` of
/// the whole row by id, and `INSERT`. (`INSERT … ON CONFLICT DO UPDATE` makes SQLite keep
/// a statement journal, a copy of every page each statement touches, so that a failing
/// statement can be undone inside the open transaction; these statements need none, and
/// a failure rolls the writer's whole transaction back anyway. Measured in
/// BENCHMARKS.md.) The first `UPDATE` leaves the indexes alone: none of them holds a
/// `last_seen_*` column. A row is compared column by column, not by its raw JSON alone,
/// so a column this job changed itself (a tie) or parsed differently in an earlier
/// version is still rewritten.
///
/// Rows come in runs: a cold sync's are all new, an incremental sync's mostly known. So
/// each row is first tried the way the previous row succeeded: a new row costs one
/// `INSERT` after a new row, and a known row one `UPDATE` after a known row. A
/// single-row `INSERT` refused by the primary key has written nothing.
struct Upsert<'c> {
    seen: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
    /// Whether the previous row was new.
    last_new: bool,
}

impl<'c> Upsert<'c> {
    fn new(tx: &'c Connection, listed: &Listed) -> Result<Self, StoreError> {
        let [seen, update, insert] = listed.statements();
        Ok(Self {
            seen: tx.prepare_cached(&seen)?,
            update: tx.prepare_cached(&update)?,
            insert: tx.prepare_cached(&insert)?,
            last_new: false,
        })
    }

    fn row(&mut self, p: impl rusqlite::Params + Copy) -> Result<(), StoreError> {
        if self.last_new {
            match self.insert.execute(p) {
                Ok(_) => return Ok(()),
                Err(e) if is_key_conflict(&e) => {
                    self.last_new = false;
                    if !self.known(p)? {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        } else if !self.known(p)? {
            self.last_new = true;
            self.insert.execute(p)?;
        }
        Ok(())
    }

    /// Updates the row if it exists; whether it did.
    fn known(&mut self, p: impl rusqlite::Params + Copy) -> Result<bool, StoreError> {
        Ok(self.seen.execute(p)? == 1 || self.update.execute(p)? == 1)
    }
}

fn is_key_conflict(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn upsert_transactions_in(
    tx: &Connection,
    run: RunId,
    now: &str,
    batch: &[Record<BankTransaction>],
) -> Result<(), StoreError> {
    let mut upsert = Upsert::new(tx, &BANK_TRANSACTIONS)?;
    for r in batch {
        let t = &r.value;
        upsert.row(params![
            t.id.as_str(),
            t.iban.as_str(),
            t.direction.as_str(),
            t.amount.amount_str(),
            t.amount.currency().as_str(),
            t.concept_text,
            t.counterparty_name,
            t.counterparty_iban,
            ts(t.booked_at),
            t.value_date.map(wire_date),
            t.reconciled_payment_id.as_ref().map(PaymentId::as_str),
            r.raw,
            now,
            run,
        ])?;
    }
    Ok(())
}

fn payment_row(r: &rusqlite::Row<'_>) -> Result<Payment, StoreError> {
    const T: &str = "payments";
    let id: String = r.get(0)?;
    let cur = Currency::parse(text(r, 5)?).map_err(|e| corrupt(T, &id, e))?;
    let amount = Money::from_units(decimal(T, &id, text(r, 4)?)?, cur);
    let concept = opt_text(r, 7)?
        .map(|c| Concept::parse(c).map_err(|e| corrupt(T, &id, e)))
        .transpose()?;
    Ok(Payment {
        external_id: r.get(1)?,
        user_id: r.get(2)?,
        status: PaymentStatus::parse(text(r, 3)?),
        amount,
        payment_type: r.get(6)?,
        concept,
        created_at: parse_ts(T, &id, text(r, 8)?)?,
        updated_at: opt_text(r, 9)?.map(|s| parse_ts(T, &id, s)).transpose()?,
        // Moved last: the fields above name the row by it.
        id: PaymentId::parse(id).map_err(|e| corrupt(T, "''", e))?,
    })
}

fn transaction_row(r: &rusqlite::Row<'_>) -> Result<BankTransaction, StoreError> {
    const T: &str = "bank_transactions";
    let id: String = r.get(0)?;
    let cur = Currency::parse(text(r, 4)?).map_err(|e| corrupt(T, &id, e))?;
    Ok(BankTransaction {
        iban: Iban::parse(text(r, 1)?).map_err(|e| corrupt(T, &id, e))?,
        direction: Direction::parse(text(r, 2)?).map_err(|e| corrupt(T, &id, e))?,
        amount: Money::from_units(decimal(T, &id, text(r, 3)?)?, cur),
        concept_text: r.get(5)?,
        counterparty_name: r.get(6)?,
        counterparty_iban: r.get(7)?,
        booked_at: parse_ts(T, &id, text(r, 8)?)?,
        value_date: opt_text(r, 9)?
            .map(|s| {
                date_from_text(s).ok_or_else(|| corrupt(T, &id, format!("bad value_date {s:?}")))
            })
            .transpose()?,
        reconciled_payment_id: opt_text(r, 10)?
            .map(|p| PaymentId::parse(p).map_err(|e| corrupt(T, &id, e)))
            .transpose()?,
        // Moved last: the fields above name the row by it.
        id: BankTxId::parse(id).map_err(|e| corrupt(T, "''", e))?,
    })
}

fn offramp_row(r: &rusqlite::Row<'_>) -> Result<Offramp, StoreError> {
    const T: &str = "offramps";
    let id: String = r.get(0)?;
    let cur = Currency::parse(text(r, 4)?).map_err(|e| corrupt(T, &id, e))?;
    Ok(Offramp {
        user_id: r.get(1)?,
        status: OfframpStatus::parse(text(r, 2)?),
        fiat: Money::from_units(decimal(T, &id, text(r, 3)?)?, cur),
        iban: r.get(5)?,
        created_at: parse_ts(T, &id, text(r, 6)?)?,
        updated_at: opt_text(r, 7)?.map(|s| parse_ts(T, &id, s)).transpose()?,
        // Moved last: the fields above name the row by it.
        id: OfframpId::parse(id).map_err(|e| corrupt(T, "''", e))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::tests::{eur, open};

    /// The rows of a five-column query.
    fn five_columns<A, B, C, D, E>(s: &Store, sql: &str) -> Vec<(A, B, C, D, E)>
    where
        A: rusqlite::types::FromSql,
        B: rusqlite::types::FromSql,
        C: rusqlite::types::FromSql,
        D: rusqlite::types::FromSql,
        E: rusqlite::types::FromSql,
    {
        s.connection()
            .prepare(sql)
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_transaction_seen_again_unchanged_only_moves_its_last_seen_and_a_local_tie_is_undone() {
        let (_d, mut s) = open();
        let t0 = Utc::now();
        let run1 = s.begin_run(t0, false, "full").unwrap();
        let credit = |id: &str| Record {
            value: BankTransaction {
                id: BankTxId::parse(id).unwrap(),
                iban: Iban::parse("ES9121000418450200051332").unwrap(),
                amount: eur("12.50"),
                direction: Direction::Credit,
                concept_text: format!("Ref 1234 {id}"),
                // NULL columns must compare as unchanged too.
                counterparty_name: None,
                counterparty_iban: None,
                booked_at: t0,
                value_date: None,
                reconciled_payment_id: None,
            },
            raw: format!(r#"{{"id":"{id}"}}"#),
        };
        let both = [credit("T1"), credit("T2")];
        s.upsert_transactions(run1, t0, &both).unwrap();
        // This job tied T2 since; the provider has not (yet) said so.
        s.record_ties(&[(
            1,
            PaymentId::parse("P2").unwrap(),
            BankTxId::parse("T2").unwrap(),
            PaymentStatus::PaymentReceived,
        )])
        .unwrap();
        let before: Vec<String> = s
            .transactions_by_ids(&[&both[0].value.id])
            .unwrap()
            .iter()
            .map(|t| format!("{t:?}"))
            .collect();

        let t1 = t0 + chrono::Duration::minutes(15);
        let run2 = s.begin_run(t1, false, "incremental").unwrap();
        s.upsert_transactions(run2, t1, &both).unwrap();

        let rows: Vec<(String, Option<String>, i64, i64, String)> = five_columns(
            &s,
            "SELECT id, reconciled_payment_id, first_seen_run, last_seen_run, last_seen_at
             FROM bank_transactions ORDER BY id",
        );
        assert_eq!(
            rows,
            [
                ("T1".to_owned(), None, run1, run2, ts(t1)),
                ("T2".to_owned(), None, run1, run2, ts(t1)),
            ]
        );
        let after: Vec<String> = s
            .transactions_by_ids(&[&both[0].value.id])
            .unwrap()
            .iter()
            .map(|t| format!("{t:?}"))
            .collect();
        assert_eq!(after, before, "nothing but the last sighting changed");
        // Both are open credits again, in the matching input's index too.
        let open: Vec<String> = s
            .matching_data()
            .unwrap()
            .transactions
            .iter()
            .map(|t| t.id.to_string())
            .collect();
        assert_eq!(open, ["T1", "T2"]);
    }

    #[test]
    fn an_upsert_batch_of_new_changed_and_unchanged_rows_in_any_order_ends_as_the_provider_says() {
        let (_d, mut s) = open();
        let t0 = Utc::now();
        let run1 = s.begin_run(t0, false, "full").unwrap();
        let pay = |id: &str, status: &str| Record {
            value: Payment {
                id: PaymentId::parse(id).unwrap(),
                external_id: None,
                user_id: None,
                status: PaymentStatus::parse(status),
                amount: eur("1.00"),
                payment_type: None,
                concept: None,
                created_at: t0,
                updated_at: None,
            },
            raw: format!(r#"{{"id":"{id}","status":"{status}"}}"#),
        };
        let first = [
            pay("A", "pending_bank"),
            pay("B", "pending_bank"),
            pay("F", "pending_bank"),
        ];
        s.upsert_payments(run1, t0, &first).unwrap();
        // A tie written since changed a column but not the raw JSON.
        s.connection()
            .execute(
                "UPDATE payments SET status = 'payment_received' WHERE id = 'B'",
                [],
            )
            .unwrap();
        let t1 = t0 + chrono::Duration::minutes(15);
        let run2 = s.begin_run(t1, false, "incremental").unwrap();
        // Changed, new, new, known with the same raw JSON, new, unchanged: each switch of
        // kind is a first try that misses.
        let batch = [
            pay("A", "payment_received"),
            pay("C", "pending_bank"),
            pay("D", "pending_bank"),
            pay("B", "pending_bank"),
            pay("E", "pending_bank"),
            pay("F", "pending_bank"),
        ];
        s.upsert_payments(run2, t1, &batch).unwrap();
        let rows: Vec<(String, String, i64, i64, String)> = five_columns(
            &s,
            "SELECT id, status, first_seen_run, last_seen_run, raw_json FROM payments
             ORDER BY id",
        );
        let (r1, r2) = (run1, run2);
        // The provider still says B is pending: the store says so again.
        let expected: Vec<(String, String, i64, i64, String)> = [
            ("A", "payment_received", r1),
            ("B", "pending_bank", r1),
            ("C", "pending_bank", r2),
            ("D", "pending_bank", r2),
            ("E", "pending_bank", r2),
            ("F", "pending_bank", r1),
        ]
        .into_iter()
        .map(|(id, st, first)| {
            let raw = format!(r#"{{"id":"{id}","status":"{st}"}}"#);
            (id.to_owned(), st.to_owned(), first, r2, raw)
        })
        .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn the_matching_input_and_the_pending_ids_are_read_from_covering_indexes_alone() {
        let (_d, s) = open();
        for sql in [
            MATCHING_PAYMENTS,
            MATCHING_TRANSACTIONS,
            MATCHING_OFFRAMPS,
            PENDING_PAYMENT_IDS,
            IN_DOUBT_PAYMENTS,
        ] {
            let plan: Vec<String> = s
                .connection()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            // Each table is read from an index that holds every column asked for.
            for step in &plan {
                let reads = step.starts_with("SCAN ") || step.starts_with("SEARCH ");
                let covered = step.contains("COVERING INDEX");
                assert!(!reads || covered, "{sql}\nreads a table: {plan:?}");
            }
        }
    }

    #[test]
    fn a_stored_row_edited_into_a_wrong_type_is_an_error_naming_the_column() {
        let (_d, mut s) = open();
        let t0 = Utc::now();
        let run = s.begin_run(t0, false, "full").unwrap();
        let credit = Record {
            value: BankTransaction {
                id: BankTxId::parse("T1").unwrap(),
                iban: Iban::parse("ES9121000418450200051332").unwrap(),
                amount: eur("12.50"),
                direction: Direction::Credit,
                concept_text: "Ref 1234".into(),
                counterparty_name: None,
                counterparty_iban: None,
                booked_at: t0,
                value_date: Some(t0.date_naive()),
                reconciled_payment_id: None,
            },
            raw: r#"{"id":"T1"}"#.into(),
        };
        s.upsert_transactions(run, t0, &[credit]).unwrap();
        let d = s.matching_data().unwrap();
        assert_eq!(d.transactions[0].amount, eur("12.50"));
        assert_eq!(d.transactions[0].value_date, Some(t0.date_naive()));
        s.connection()
            // TEXT affinity turns a number into text; a blob stays a blob.
            .execute(
                "UPDATE bank_transactions SET amount = x'3132' WHERE id = 'T1'",
                [],
            )
            .unwrap();
        let e = s.matching_data().unwrap_err().to_string();
        assert!(e.contains("amount") && e.contains("Blob"), "{e}");
        s.connection()
            .execute(
                "UPDATE bank_transactions SET amount = '12.50', value_date = '21.11.2026' WHERE id = 'T1'",
                [],
            )
            .unwrap();
        let e = s.matching_data().unwrap_err().to_string();
        assert!(
            e.contains("bank_transactions row T1: bad value_date \"21.11.2026\""),
            "{e}"
        );
    }
}
