//! Store benchmark: bulk upsert of bank transactions, as the sync writes them.
//!
//! `cargo bench --bench store`. Two shapes: one commit per page of 100 (the worst case),
//! and the sync writer's (64 pages per transaction, no WAL checkpoint until the end, which
//! then runs on a thread of its own), timed to its last commit and, separately, until its
//! checkpoint is done too. A second pass over the same ids measures the update path.

use std::hint::black_box;
use std::str::FromStr;

use chrono::{Duration, TimeZone, Utc};
use cp_recon::api::Record;
use cp_recon::domain::{BankTransaction, BankTxId, Currency, Direction, Iban, Money};
use cp_recon::store::Store;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rust_decimal::Decimal;

// The allocator the binary ships with (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 50_000;
const PAGE: usize = 100;

fn rows() -> Vec<Record<BankTransaction>> {
    let base = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let iban = Iban::parse("ES9121000418450200051332").unwrap();
    let eur = Currency::parse("EUR").unwrap();
    (0..ROWS)
        .map(|i| {
            let id = format!("TX{i:018}");
            let amount = Decimal::from_str(&format!("{}.{:02}", 10 + i % 5000, i % 100)).unwrap();
            let concept = format!("Ref {} J. Doe", 120_000 + i);
            let booked = base + Duration::seconds(i as i64 * 37);
            let raw = format!(
                r#"{{"id":"{id}","iban":"{iban}","amount":"{amount}","currency":"EUR","direction":"credit","concept":"{concept}","counterparty_name":"J. Doe","counterparty_iban":null,"booked_at":"{}","value_date":"{}","reconciled_payment_id":null}}"#,
                booked.to_rfc3339(),
                booked.date_naive()
            );
            Record {
                value: BankTransaction {
                    id: BankTxId::parse(id).unwrap(),
                    iban: iban.clone(),
                    amount: Money::from_units(amount, eur.clone()),
                    direction: Direction::Credit,
                    concept_text: concept,
                    counterparty_name: Some("J. Doe".into()),
                    counterparty_iban: None,
                    booked_at: booked,
                    value_date: Some(booked.date_naive()),
                    reconciled_payment_id: None,
                },
                raw,
            }
        })
        .collect()
}

/// Writes `data` as the sync writer does: 64 pages of 100 per transaction, no WAL
/// checkpoint until the end.
fn write_like_the_sync(store: &mut Store, run: i64, data: &[Record<BankTransaction>]) {
    let now = Utc::now();
    store.begin_bulk().unwrap();
    for batch in data.chunks(PAGE * 64) {
        store.begin_batch().unwrap();
        for page in batch.chunks(PAGE) {
            store
                .upsert_transactions(run, now, black_box(page))
                .unwrap();
        }
        store.commit_batch().unwrap();
    }
    store.end_bulk().unwrap();
}

fn fresh() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("bench.sqlite3")).unwrap();
    let run = store.begin_run(Utc::now(), false, "full").unwrap();
    (dir, store, run)
}

fn upsert(c: &mut Criterion) {
    let data = rows();
    let now = Utc::now();
    let mut g = c.benchmark_group("store_upsert");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));

    g.bench_function("insert, one commit per page of 100", |b| {
        b.iter_batched(
            fresh,
            |(dir, mut store, run)| {
                for page in data.chunks(PAGE) {
                    store
                        .upsert_transactions(run, now, black_box(page))
                        .unwrap();
                }
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("insert, 64 pages per commit (the sync writer)", |b| {
        b.iter_batched(
            fresh,
            |(dir, mut store, run)| {
                write_like_the_sync(&mut store, run, &data);
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });

    // The same, timed until the checkpoint that `end_bulk` starts in the background has
    // copied the WAL into the database file (dropping the store waits for it).
    g.bench_function("insert, the sync writer, including its checkpoint", |b| {
        b.iter_batched(
            fresh,
            |(dir, mut store, run)| {
                write_like_the_sync(&mut store, run, &data);
                drop(store);
                dir
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("update of existing rows, 64 pages per commit", |b| {
        b.iter_batched(
            || {
                let (dir, mut store, run) = fresh();
                for page in data.chunks(PAGE) {
                    store.upsert_transactions(run, now, page).unwrap();
                }
                (dir, store, run)
            },
            |(dir, mut store, run)| {
                write_like_the_sync(&mut store, run, &data);
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, upsert);
criterion_main!(benches);
