//! Throughput of the matching core on a day far bigger than any real one: by default a
//! million open payments against a million open credits, almost all of them confident
//! pairs, with a little of every kind of noise so that no branch is skipped.
//!
//! `CP_RECON_BENCH_N=10000 cargo bench --bench matching` runs a smaller size.

use std::collections::HashSet;
use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rust_decimal::Decimal;

use cp_recon::domain::{
    BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp, OfframpId,
    OfframpStatus, Payment, PaymentId, PaymentStatus,
};
use cp_recon::matching::{MatchInput, MatchParams, decide};

// The allocator the binary ships with (see src/main.rs), so the core is measured as it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_N: usize = 1_000_000;

/// A small deterministic generator, so every run measures the same input.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A 25-character alphanumeric id, like the provider's.
    fn id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..25)
            .map(|_| char::from(ALPHABET[self.below(ALPHABET.len() as u64) as usize]))
            .collect()
    }
}

struct Data {
    payments: Vec<Payment>,
    transactions: Vec<BankTransaction>,
    offramps: Vec<Offramp>,
    tied_payments: HashSet<PaymentId>,
    tied_transactions: HashSet<BankTxId>,
    now: DateTime<Utc>,
}

fn generate(n: usize) -> Data {
    let mut rng = SplitMix(0x5EED);
    let now = DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .expect("valid literal")
        .with_timezone(&Utc);
    let eur = Currency::parse("EUR").expect("valid literal");
    let usd = Currency::parse("USD").expect("valid literal");
    let iban = Iban::parse("ES9121000418450200051332").expect("valid literal");

    let mut payments = Vec::with_capacity(n);
    for i in 0..n {
        let cents = 1_000 + rng.below(500_000);
        let currency = if i % 10 == 0 {
            usd.clone()
        } else {
            eur.clone()
        };
        payments.push(Payment {
            id: PaymentId::parse(rng.id()).expect("non-empty"),
            external_id: None,
            user_id: None,
            status: PaymentStatus::PendingBank,
            amount: Money::from_cents(Decimal::from(cents), currency).expect("whole cents"),
            payment_type: Some("bank_transfer".into()),
            concept: Some(Concept::parse(format!("{}", 10_000_000 + i)).expect("digits")),
            created_at: now - Duration::minutes(rng.below(60 * 24 * 60) as i64),
            updated_at: None,
        });
    }

    // Credits arrive in booking order, unrelated to the payments' order: visit the
    // payments shuffled. Each record is built in list order, as a parser would, so that
    // its strings sit in memory in the same order as the records.
    let mut visit: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        visit.swap(i, j);
    }
    let mut transactions = Vec::with_capacity(n + n / 100);
    for i in visit {
        let p = &payments[i];
        let concept = p.concept.as_ref().map(|c| c.as_str()).unwrap_or_default();
        let expected = p.amount.amount();
        let cent = Decimal::new(1, 2);
        // Noise, by position: every kind of finding shows up, ~2% of the whole.
        let (text, units) = match i % 200 {
            0 => continue, // no transfer yet: awaiting_transfer
            1 => (format!("Ref {concept} J. Doe"), expected + cent), // amount_mismatch
            2 => (String::from("payment for my order"), expected), // no_concept
            3 => (format!("{concept} and {}", 10_000_000 + i + 1), expected), // ambiguous
            4 => (format!("{concept}1"), expected), // a digit after: no_concept
            _ => (format!("Transferencia {concept} J. Doe Müller"), expected),
        };
        transactions.push(BankTransaction {
            id: BankTxId::parse(rng.id()).expect("non-empty"),
            iban: iban.clone(),
            amount: Money::from_units(units, p.amount.currency().clone()),
            direction: Direction::Credit,
            concept_text: text,
            counterparty_name: Some("J. Doe".into()),
            counterparty_iban: None,
            booked_at: p.created_at + Duration::minutes(1 + rng.below(60 * 24) as i64),
            value_date: None,
            reconciled_payment_id: None,
        });
    }

    // A few off-ramps and debits, paid out or not.
    let mut offramps = Vec::new();
    for i in 0..(n / 1_000).max(1) {
        let id = rng.id();
        let fiat = Money::from_units(Decimal::from(100 + i), eur.clone());
        if i % 3 != 0 {
            transactions.push(BankTransaction {
                id: BankTxId::parse(rng.id()).expect("non-empty"),
                iban: iban.clone(),
                amount: fiat.clone(),
                direction: Direction::Debit,
                concept_text: format!("Payout {id} CryptoPocket"),
                counterparty_name: None,
                counterparty_iban: None,
                booked_at: now - Duration::hours(2),
                value_date: None,
                reconciled_payment_id: None,
            });
        }
        offramps.push(Offramp {
            id: OfframpId::parse(id).expect("non-empty"),
            user_id: None,
            status: OfframpStatus::Finished,
            fiat,
            iban: None,
            created_at: now - Duration::days(6),
            updated_at: Some(now - Duration::days(5)),
        });
    }

    let tied_payments = payments.iter().step_by(997).map(|p| p.id.clone()).collect();
    let tied_transactions = transactions
        .iter()
        .step_by(1_009)
        .map(|t| t.id.clone())
        .collect();
    Data {
        payments,
        transactions,
        offramps,
        tied_payments,
        tied_transactions,
        now,
    }
}

fn bench_decide(c: &mut Criterion) {
    let n = std::env::var("CP_RECON_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_N);
    let data = generate(n);
    let input = MatchInput {
        payments: &data.payments,
        transactions: &data.transactions,
        offramps: &data.offramps,
        tied_payments: &data.tied_payments,
        tied_transactions: &data.tied_transactions,
        in_doubt_payments: &HashSet::new(),
        reconciled: &[],
        sync_complete: true,
        now: data.now,
        params: MatchParams::default(),
    };
    let sample = decide(&input);
    eprintln!(
        "{n} payments x {} transactions: {} reconciled, {} payment findings, {} transaction findings, {} payouts not seen",
        data.transactions.len(),
        sample.reconcile.len(),
        sample.payments.len(),
        sample.transactions.len(),
        sample.payouts.len(),
    );
    drop(sample);

    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    // Elements: payments plus bank transactions read.
    group.throughput(Throughput::Elements(
        (data.payments.len() + data.transactions.len()) as u64,
    ));
    group.bench_function(format!("{n}_payments_x_{n}_credits"), |b| {
        // Freeing two million output strings is the caller's cost, not the core's.
        b.iter_with_large_drop(|| decide(black_box(&input)))
    });
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
