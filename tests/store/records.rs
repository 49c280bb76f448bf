//! Provider records as the sync writes them, the records that did not parse, and the
//! reads matching and reconciling make of them.
//!
//! Some promises are about columns the interface does not read back (when a row was
//! first and last seen): those tests look at the table through a connection of their
//! own ([`crate::Sql`]), with statements that read the same on both backends.

use std::str::FromStr;

use chrono::NaiveDate;
use cp_recon::domain::{
    BankAccount, BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp,
    OfframpId, OfframpStatus, Payment, PaymentId, PaymentStatus,
};
use cp_recon::record::{BadRecord, Record};
use cp_recon::store::{MatchState, NewMatch, Settlement, Store, StoreError};
use rust_decimal::Decimal;

use crate::{at, each_backend, each_backend_sql};

pub fn eur(v: &str) -> Money {
    Money::from_units(
        Decimal::from_str(v).unwrap(),
        Currency::parse("EUR").unwrap(),
    )
}

pub fn payment(id: &str, status: &str, created: i64) -> Record<Payment> {
    Record {
        value: Payment {
            id: PaymentId::parse(id).unwrap(),
            external_id: None,
            user_id: None,
            status: PaymentStatus::parse(status),
            amount: eur("150.50"),
            payment_type: None,
            concept: None,
            created_at: at(created),
            updated_at: None,
        },
        raw: format!(r#"{{"id":"{id}","status":"{status}"}}"#),
    }
}

pub fn credit(id: &str, booked: i64) -> Record<BankTransaction> {
    Record {
        value: BankTransaction {
            id: BankTxId::parse(id).unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount: eur("150.50"),
            direction: Direction::Credit,
            concept_text: format!("Ref 1234 {id}"),
            counterparty_name: None,
            counterparty_iban: None,
            booked_at: at(booked),
            value_date: None,
            reconciled_payment_id: None,
        },
        raw: format!(r#"{{"id":"{id}"}}"#),
    }
}

pub fn offramp(id: &str, status: &str, created: i64) -> Record<Offramp> {
    Record {
        value: Offramp {
            id: OfframpId::parse(id).unwrap(),
            user_id: None,
            status: OfframpStatus::parse(status),
            fiat: eur("99.00"),
            iban: None,
            created_at: at(created),
            updated_at: None,
        },
        raw: format!(r#"{{"id":"{id}"}}"#),
    }
}

/// Every field set, with text a byte-wise comparison would tell apart.
fn full_payment() -> Record<Payment> {
    Record {
        value: Payment {
            id: PaymentId::parse("P-full").unwrap(),
            external_id: Some("ext-Ä1".into()),
            user_id: Some("user 7".into()),
            status: PaymentStatus::parse("pending_bank"),
            amount: eur("1234567.891"),
            payment_type: Some("bank_transfer".into()),
            concept: Some(Concept::parse("0012345").unwrap()),
            created_at: at(1),
            updated_at: Some(at(2) + chrono::Duration::microseconds(123_456)),
        },
        raw: r#"{"id":"P-full","note":"it's \"quoted\""}"#.into(),
    }
}

fn full_transaction() -> Record<BankTransaction> {
    Record {
        value: BankTransaction {
            id: BankTxId::parse("T-full").unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount: eur("0.07"),
            direction: Direction::Debit,
            concept_text: "Devolución 0012345 'x'".into(),
            counterparty_name: Some("Zoë O'Brien".into()),
            counterparty_iban: Some("DE89370400440532013000".into()),
            booked_at: at(3),
            value_date: Some(NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()),
            reconciled_payment_id: Some(PaymentId::parse("P-full").unwrap()),
        },
        raw: r#"{"id":"T-full"}"#.into(),
    }
}

fn full_offramp() -> Record<Offramp> {
    Record {
        value: Offramp {
            id: OfframpId::parse("O-full").unwrap(),
            user_id: Some("user 7".into()),
            status: OfframpStatus::parse("finished"),
            fiat: Money::from_units(
                Decimal::from_str("10.5").unwrap(),
                Currency::parse("USD").unwrap(),
            ),
            iban: Some("ES9121000418450200051332".into()),
            created_at: at(4),
            updated_at: Some(at(5)),
        },
        raw: r#"{"id":"O-full"}"#.into(),
    }
}

fn ids<T: ToString>(v: impl IntoIterator<Item = T>) -> Vec<String> {
    v.into_iter().map(|x| x.to_string()).collect()
}

fn sorted<T: ToString>(v: impl IntoIterator<Item = T>) -> Vec<String> {
    let mut v = ids(v);
    v.sort();
    v
}

#[test]
fn records_read_back_exactly_as_written_with_their_nulls() {
    each_backend("records read back", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let (p, t, o) = (full_payment(), full_transaction(), full_offramp());
        let (bare_p, bare_t, bare_o) = (
            payment("P-bare", "started", 1),
            credit("T-bare", 1),
            offramp("O-bare", "pending", 1),
        );
        s.upsert_payments(run, at(10), &[p.clone(), bare_p.clone()])
            .unwrap();
        s.upsert_transactions(run, at(10), &[t.clone(), bare_t.clone()])
            .unwrap();
        s.upsert_offramps(run, at(10), &[o.clone(), bare_o.clone()])
            .unwrap();

        let read = s.payments_by_ids(&[&p.value.id, &bare_p.value.id]).unwrap();
        assert_eq!(read, [p.value, bare_p.value]);
        let read = s
            .transactions_by_ids(&[&t.value.id, &bare_t.value.id])
            .unwrap();
        assert_eq!(read, [t.value, bare_t.value]);
        let read = s.offramps_by_ids(&[&o.value.id, &bare_o.value.id]).unwrap();
        assert_eq!(read, [o.value, bare_o.value]);
    });
}

#[test]
fn a_read_by_ids_follows_the_order_asked_repeats_a_repeated_id_and_skips_an_unknown_one() {
    each_backend("reads by ids", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run,
            at(1),
            &[
                payment("A", "pending_bank", 1),
                payment("B", "pending_bank", 2),
            ],
        )
        .unwrap();
        s.upsert_transactions(run, at(1), &[credit("TA", 1), credit("TB", 2)])
            .unwrap();
        s.upsert_offramps(
            run,
            at(1),
            &[offramp("OA", "finished", 1), offramp("OB", "finished", 2)],
        )
        .unwrap();
        let p = |id: &str| PaymentId::parse(id).unwrap();
        let t = |id: &str| BankTxId::parse(id).unwrap();
        let o = |id: &str| OfframpId::parse(id).unwrap();

        let read = s
            .payments_by_ids(&[&p("B"), &p("nope"), &p("A"), &p("B")])
            .unwrap();
        assert_eq!(ids(read.iter().map(|x| &x.id)), ["B", "A", "B"]);
        let read = s
            .transactions_by_ids(&[&t("TB"), &t("nope"), &t("TA"), &t("TB")])
            .unwrap();
        assert_eq!(ids(read.iter().map(|x| &x.id)), ["TB", "TA", "TB"]);
        let read = s
            .offramps_by_ids(&[&o("OB"), &o("nope"), &o("OA"), &o("OB")])
            .unwrap();
        assert_eq!(ids(read.iter().map(|x| &x.id)), ["OB", "OA", "OB"]);
        assert!(s.payments_by_ids(&[]).unwrap().is_empty());
        assert!(s.transactions_by_ids(&[]).unwrap().is_empty());
        assert!(s.offramps_by_ids(&[]).unwrap().is_empty());
    });
}

/// What the store keeps of each payment's sightings: `id status first_seen_at
/// first_seen_run last_seen_at last_seen_run`.
const PAYMENT_SIGHTINGS: &str = "SELECT id, status, first_seen_at, CAST(first_seen_run AS TEXT),
        last_seen_at, CAST(last_seen_run AS TEXT) FROM payments ORDER BY id";

#[test]
fn a_re_upsert_rewrites_each_row_as_the_provider_says_keeps_its_first_sighting_and_moves_its_last()
{
    each_backend_sql("a re-upsert", |s, sql| {
        let run1 = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run1,
            at(1),
            &[
                payment("A", "pending_bank", 1),
                payment("B", "pending_bank", 1),
                payment("F", "pending_bank", 1),
            ],
        )
        .unwrap();
        // A tie written since changed a column but not the raw JSON.
        sql.execute("UPDATE payments SET status = 'payment_received' WHERE id = 'B'");
        let run2 = s.begin_run(at(15), false, "incremental").unwrap();
        // Changed, new, known with the same raw JSON, unchanged: each kept as sent.
        s.upsert_payments(
            run2,
            at(16),
            &[
                payment("A", "payment_received", 1),
                payment("C", "pending_bank", 1),
                payment("B", "pending_bank", 1),
                payment("F", "pending_bank", 1),
            ],
        )
        .unwrap();
        let (t1, t16) = ("2026-12-06T06:01:00.000000Z", "2026-12-06T06:16:00.000000Z");
        let (r1, r2) = (run1.to_string(), run2.to_string());
        assert_eq!(
            sql.lines(PAYMENT_SIGHTINGS),
            [
                format!("A payment_received {t1} {r1} {t16} {r2}"),
                format!("B pending_bank {t1} {r1} {t16} {r2}"),
                format!("C pending_bank {t16} {r2} {t16} {r2}"),
                format!("F pending_bank {t1} {r1} {t16} {r2}"),
            ]
        );
        assert_eq!(
            sql.lines("SELECT raw_json FROM payments WHERE id = 'A'"),
            [r#"{"id":"A","status":"payment_received"}"#]
        );
    });
}

#[test]
fn every_list_keeps_a_rows_first_sighting_and_moves_its_last_even_when_nothing_changed() {
    each_backend_sql("sightings of every list", |s, sql| {
        let run1 = s.begin_run(at(0), false, "full").unwrap();
        let account = |balance: &str| Record {
            value: BankAccount {
                iban: Iban::parse("ES9121000418450200051332").unwrap(),
                bic: None,
                holder_name: Some("CryptoPocket SL".into()),
                currency: Some(Currency::parse("EUR").unwrap()),
                balance: Some(Decimal::from_str(balance).unwrap()),
            },
            raw: format!(r#"{{"balance":"{balance}"}}"#),
        };
        s.upsert_transactions(run1, at(1), &[credit("T1", 1)])
            .unwrap();
        s.upsert_offramps(run1, at(1), &[offramp("O1", "pending", 1)])
            .unwrap();
        s.upsert_accounts(run1, at(1), &[account("10.00")]).unwrap();
        let run2 = s.begin_run(at(15), false, "incremental").unwrap();
        s.upsert_transactions(run2, at(16), &[credit("T1", 1)])
            .unwrap();
        s.upsert_offramps(run2, at(16), &[offramp("O1", "finished", 1)])
            .unwrap();
        s.upsert_accounts(run2, at(16), &[account("12.50")])
            .unwrap();

        let (t1, t16) = ("2026-12-06T06:01:00.000000Z", "2026-12-06T06:16:00.000000Z");
        let (r1, r2) = (run1.to_string(), run2.to_string());
        let seen = |table: &str, key: &str, col: &str| {
            format!(
                "SELECT {key}, {col}, first_seen_at, CAST(first_seen_run AS TEXT), last_seen_at,
                        CAST(last_seen_run AS TEXT) FROM {table}"
            )
        };
        assert_eq!(
            sql.lines(&seen("bank_transactions", "id", "amount")),
            [format!("T1 150.50 {t1} {r1} {t16} {r2}")]
        );
        assert_eq!(
            sql.lines(&seen("offramps", "id", "status")),
            [format!("O1 finished {t1} {r1} {t16} {r2}")]
        );
        assert_eq!(
            sql.lines(&seen("bank_accounts", "iban", "balance")),
            [format!(
                "ES9121000418450200051332 12.50 {t1} {r1} {t16} {r2}"
            )]
        );
        assert_eq!(
            sql.lines("SELECT bic, holder_name, currency, raw_json FROM bank_accounts"),
            [r#"- CryptoPocket SL EUR {"balance":"12.50"}"#]
        );
    });
}

#[test]
fn a_key_repeated_in_one_batch_is_stored_once_as_its_last_occurrence() {
    each_backend_sql("a repeated key", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run,
            at(1),
            &[
                payment("A", "pending_bank", 1),
                payment("B", "pending_bank", 1),
                payment("A", "payment_received", 1),
            ],
        )
        .unwrap();
        let mut moved = credit("T1", 1);
        moved.value.concept_text = "second".into();
        s.upsert_transactions(run, at(1), &[credit("T1", 1), moved])
            .unwrap();
        s.upsert_offramps(
            run,
            at(1),
            &[offramp("O1", "pending", 1), offramp("O1", "finished", 1)],
        )
        .unwrap();
        let account = |bic: &str| Record {
            value: BankAccount {
                iban: Iban::parse("ES9121000418450200051332").unwrap(),
                bic: Some(bic.into()),
                holder_name: None,
                currency: None,
                balance: None,
            },
            raw: "{}".into(),
        };
        s.upsert_accounts(run, at(1), &[account("FIRST"), account("LAST")])
            .unwrap();
        assert_eq!(
            sql.lines("SELECT id, status FROM payments ORDER BY id"),
            ["A payment_received", "B pending_bank"]
        );
        assert_eq!(
            sql.lines("SELECT id, concept FROM bank_transactions"),
            ["T1 second"]
        );
        assert_eq!(
            sql.lines("SELECT id, status FROM offramps"),
            ["O1 finished"]
        );
        assert_eq!(
            sql.lines("SELECT bic, holder_name, currency, balance FROM bank_accounts"),
            ["LAST - - -"]
        );
    });
}

#[test]
fn an_empty_batch_writes_nothing() {
    each_backend("an empty batch", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(run, at(1), &[]).unwrap();
        s.upsert_transactions(run, at(1), &[]).unwrap();
        s.upsert_offramps(run, at(1), &[]).unwrap();
        s.upsert_accounts(run, at(1), &[]).unwrap();
        s.insert_bad_records(run, &[]).unwrap();
        s.mark_vanished(run, &[]).unwrap();
        for table in ["payments", "bank_transactions", "offramps", "bank_accounts"] {
            assert_eq!(s.count(table).unwrap(), 0, "{table}");
        }
    });
}

#[test]
fn bad_records_are_kept_in_the_order_given_with_their_run() {
    each_backend_sql("bad records", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let bad = |id: Option<&str>, error: &str| BadRecord {
            endpoint: "payments".into(),
            id: id.map(str::to_owned),
            raw: format!(r#"{{"id":{id:?}}}"#),
            error: error.into(),
        };
        s.insert_bad_records(
            run,
            &[
                bad(Some("P9"), "bad amount"),
                bad(None, "no id"),
                bad(Some("P1"), "x"),
            ],
        )
        .unwrap();
        assert_eq!(
            sql.lines(
                "SELECT CAST(run_id AS TEXT), endpoint, record_id, error FROM bad_records
                 ORDER BY id"
            ),
            [
                format!("{run} payments P9 bad amount"),
                format!("{run} payments - no id"),
                format!("{run} payments P1 x"),
            ]
        );
    });
}

#[test]
fn the_pending_ids_are_the_payments_stored_as_pending_in_time_order() {
    each_backend("pending ids", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run,
            at(1),
            &[
                payment("P3", "pending_bank", 1),
                payment("P1", "pending_bank", 2),
                payment("P2", "payment_received", 0),
                payment("P0", "pending_bank", 1),
                payment("p4", "PENDING_BANK", 0),
            ],
        )
        .unwrap();
        // Read as an open status, stored in its canonical spelling.
        assert_eq!(
            ids(s.pending_payment_ids().unwrap()),
            ["p4", "P0", "P3", "P1"]
        );
    });
}

#[test]
fn a_vanished_payment_is_no_longer_pending_and_keeps_its_mark_when_listed_again() {
    each_backend_sql("vanished payments", |s, sql| {
        let run1 = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run1,
            at(1),
            &[
                payment("P1", "pending_bank", 1),
                payment("P2", "pending_bank", 1),
            ],
        )
        .unwrap();
        let run2 = s.begin_run(at(15), false, "full").unwrap();
        let gone = PaymentId::parse("P1").unwrap();
        // An id the store does not hold changes nothing.
        s.mark_vanished(run2, &[gone.clone(), PaymentId::parse("P9").unwrap()])
            .unwrap();
        assert_eq!(ids(s.pending_payment_ids().unwrap()), ["P2"]);
        assert_eq!(
            s.payments_by_ids(&[&gone]).unwrap()[0].status.as_str(),
            "vanished"
        );
        assert_eq!(
            sql.lines("SELECT id, status, CAST(vanished_run AS TEXT) FROM payments ORDER BY id"),
            [format!("P1 vanished {run2}"), "P2 pending_bank -".into()]
        );
        let run3 = s.begin_run(at(30), false, "full").unwrap();
        s.upsert_payments(run3, at(31), &[payment("P1", "payment_received", 1)])
            .unwrap();
        assert_eq!(
            sql.lines("SELECT id, status, CAST(vanished_run AS TEXT) FROM payments ORDER BY id"),
            [
                format!("P1 payment_received {run2}"),
                "P2 pending_bank -".into()
            ]
        );
    });
}

fn new_match<'a>(
    run: i64,
    p: &'a PaymentId,
    t: &'a BankTxId,
    iban: &'a Iban,
    amount: &'a Money,
) -> NewMatch<'a> {
    NewMatch {
        run_id: run,
        payment: p,
        transaction: t,
        iban,
        amount,
        concept: None,
        now: at(20),
    }
}

fn settle(s: &mut Store, id: i64, state: MatchState, run: i64) {
    s.settle(
        id,
        &Settlement {
            state,
            provider_code: None,
            provider_answer: None,
            payment_status: None,
            run,
            now: at(21),
        },
    )
    .unwrap();
}

#[test]
fn the_matching_input_holds_the_open_records_in_time_order_and_what_the_ledger_ties() {
    each_backend("the matching input", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        s.upsert_payments(
            run,
            at(1),
            &[
                payment("P-tied", "pending_bank", 3),
                payment("P-doubt", "pending_bank", 2),
                payment("P-unknown", "pending_bank", 2),
                payment("P-failed", "pending_bank", 1),
                payment("P-open", "pending_bank", 4),
                payment("P-done", "payment_received", 0),
            ],
        )
        .unwrap();
        let mut tied_at_provider = credit("T-closed", 0);
        tied_at_provider.value.reconciled_payment_id = Some(PaymentId::parse("P-done").unwrap());
        let mut debit = credit("T-debit", 5);
        debit.value.direction = Direction::Debit;
        debit.value.reconciled_payment_id = Some(PaymentId::parse("P-done").unwrap());
        s.upsert_transactions(
            run,
            at(1),
            &[
                credit("T-tied", 4),
                credit("T-doubt", 3),
                credit("T-unknown", 3),
                credit("T-failed", 2),
                credit("T-open", 1),
                tied_at_provider,
                debit,
            ],
        )
        .unwrap();
        s.upsert_offramps(
            run,
            at(1),
            &[
                offramp("O2", "finished", 2),
                offramp("O1", "finished", 2),
                offramp("O0", "pending", 0),
                offramp("O3", "failed", 0),
            ],
        )
        .unwrap();
        let iban = Iban::parse("ES9121000418450200051332").unwrap();
        let amount = eur("150.50");
        for (p, t, state) in [
            ("P-tied", "T-tied", Some(MatchState::Reconciled)),
            ("P-doubt", "T-doubt", None),
            ("P-unknown", "T-unknown", Some(MatchState::Unknown)),
            ("P-failed", "T-failed", Some(MatchState::Failed)),
        ] {
            let (p, t) = (PaymentId::parse(p).unwrap(), BankTxId::parse(t).unwrap());
            let id = s
                .insert_intent(&new_match(run, &p, &t, &iban, &amount))
                .unwrap();
            if let Some(state) = state {
                settle(s, id, state, run);
            }
        }

        let d = s.matching_data().unwrap();
        assert_eq!(
            ids(d.payments.iter().map(|p| &p.id)),
            ["P-failed", "P-doubt", "P-unknown", "P-tied", "P-open"]
        );
        assert_eq!(
            ids(d.transactions.iter().map(|t| &t.id)),
            [
                "T-open",
                "T-failed",
                "T-doubt",
                "T-unknown",
                "T-tied",
                "T-debit"
            ]
        );
        assert_eq!(ids(d.offramps.iter().map(|o| &o.id)), ["O1", "O2"]);
        assert_eq!(sorted(&d.tied_payments), ["P-tied"]);
        assert_eq!(sorted(&d.in_doubt_payments), ["P-doubt", "P-unknown"]);
        assert_eq!(
            sorted(&d.tied_transactions),
            ["T-doubt", "T-tied", "T-unknown"]
        );
        // Values read back whole, as by id.
        let by_id = s.payments_by_ids(&[&d.payments[0].id]).unwrap();
        assert_eq!(by_id[0], d.payments[0]);
        let debit = &d.transactions[5];
        assert_eq!(
            debit.reconciled_payment_id.as_ref().map(PaymentId::as_str),
            Some("P-done")
        );
    });
}

#[test]
fn the_matching_input_of_an_empty_store_is_empty() {
    each_backend("an empty matching input", |s| {
        let d = s.matching_data().unwrap();
        assert!(d.payments.is_empty() && d.transactions.is_empty() && d.offramps.is_empty());
        assert!(d.tied_payments.is_empty() && d.in_doubt_payments.is_empty());
        assert!(d.tied_transactions.is_empty());
        assert!(s.pending_payment_ids().unwrap().is_empty());
    });
}

fn corrupt_message(e: StoreError) -> String {
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    e.to_string()
}

#[test]
fn a_stored_value_edited_out_of_shape_is_a_corrupt_row_naming_its_table_and_id() {
    each_backend_sql("corrupt rows", |s, sql| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let mut t = credit("T1", 1);
        t.value.value_date = Some(NaiveDate::from_ymd_opt(2026, 12, 6).unwrap());
        s.upsert_transactions(run, at(1), &[t]).unwrap();
        s.upsert_payments(run, at(1), &[payment("P1", "pending_bank", 1)])
            .unwrap();
        s.upsert_offramps(run, at(1), &[offramp("O1", "finished", 1)])
            .unwrap();
        assert_eq!(
            s.matching_data().unwrap().transactions[0].value_date,
            NaiveDate::from_ymd_opt(2026, 12, 6)
        );

        sql.execute("UPDATE bank_transactions SET value_date = '21.11.2026' WHERE id = 'T1'");
        let e = corrupt_message(s.matching_data().unwrap_err());
        assert!(
            e.contains("bank_transactions row T1: bad value_date \"21.11.2026\""),
            "{e}"
        );
        let e = corrupt_message(
            s.transactions_by_ids(&[&BankTxId::parse("T1").unwrap()])
                .unwrap_err(),
        );
        assert!(e.contains("bank_transactions row T1"), "{e}");

        sql.execute("UPDATE bank_transactions SET value_date = NULL WHERE id = 'T1'");
        sql.execute("UPDATE payments SET amount = '12,50' WHERE id = 'P1'");
        let e = corrupt_message(s.matching_data().unwrap_err());
        assert!(e.contains("payments row P1: bad amount \"12,50\""), "{e}");
        sql.execute(
            "UPDATE payments SET amount = '12.50', created_at = 'yesterday' WHERE id = 'P1'",
        );
        let e = corrupt_message(
            s.payments_by_ids(&[&PaymentId::parse("P1").unwrap()])
                .unwrap_err(),
        );
        assert!(
            e.contains("payments row P1: bad timestamp \"yesterday\""),
            "{e}"
        );

        sql.execute("UPDATE payments SET created_at = '2026-12-06T06:01:00.000000Z'");
        sql.execute("UPDATE offramps SET currency = 'EURO' WHERE id = 'O1'");
        let e = corrupt_message(s.matching_data().unwrap_err());
        assert!(e.contains("offramps row O1"), "{e}");
        sql.execute("UPDATE offramps SET currency = 'EUR'");
        sql.execute("UPDATE payments SET id = ' ' WHERE id = 'P1'");
        let e = corrupt_message(s.pending_payment_ids().unwrap_err());
        assert!(e.contains("payments row  "), "{e}");
    });
}
