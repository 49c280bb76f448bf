//! A second transfer booked at the same instant as a matched credit, after the sync:
//! the narrow re-read right before the call returns it, and the pair is not called.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Duration;
use cp_recon::sandbox::hook::{Action, Event, Handle, Hook};
use cp_recon::sandbox::{DataSpec, ListName, SandboxConfig, TransactionRecord};

use crate::desk::reported;
use crate::helpers::{TestEnv, code, text};

/// When it sees the narrow read of `credit`'s instant (its account's list from
/// `booked_at` to `booked_at + 1µs`), books first, once, a second transfer just like it
/// under another id. With `rate_limit`, it answers the first reconcile call of that
/// payment with a 429 and books the twin only on the narrow read after it.
struct Twin {
    credit: TransactionRecord,
    twin_id: String,
    rate_limit: Option<String>,
    limited: AtomicBool,
    added: AtomicBool,
}

impl Twin {
    fn new(credit: TransactionRecord, twin_id: &str, rate_limit: Option<&str>) -> Arc<Self> {
        Arc::new(Self {
            credit,
            twin_id: twin_id.to_owned(),
            rate_limit: rate_limit.map(str::to_owned),
            limited: AtomicBool::new(false),
            added: AtomicBool::new(false),
        })
    }
}

impl Hook for Twin {
    fn on(&self, h: &Handle, event: &Event) -> Action {
        match event {
            Event::Reconcile { payment, .. }
                if self.rate_limit.as_ref() == Some(payment)
                    && !self.limited.swap(true, Ordering::SeqCst) =>
            {
                Action::RateLimit
            }
            Event::List {
                list: ListName::Transactions,
                iban,
                from: Some(from),
                to: Some(to),
                ..
            } if *to - *from == Duration::microseconds(1)
                && *iban == self.credit.iban
                && (*from..*to).contains(&self.credit.booked_at)
                && (self.rate_limit.is_none() || self.limited.load(Ordering::SeqCst))
                && !self.added.swap(true, Ordering::SeqCst) =>
            {
                h.add_transaction(TransactionRecord {
                    id: self.twin_id.clone(),
                    ..self.credit.clone()
                })
                .expect("the twin is booked");
                Action::Serve
            }
            _ => Action::Serve,
        }
    }
}

/// `id → (reason, candidates)` of one CSV of run `run`'s report.
fn report_rows(
    env: &TestEnv,
    run: i64,
    file: &str,
    id_column: &str,
) -> BTreeMap<String, (String, Vec<String>)> {
    let path = env.report_dir(run).join(file);
    let mut reader = csv::Reader::from_path(&path).expect("the CSV opens");
    let header = reader.headers().expect("a header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (id, reason, candidates) = (col(id_column), col("reason"), col("candidates"));
    reader
        .records()
        .map(|r| {
            let r = r.expect("a row");
            (
                r[id].to_owned(),
                (
                    r[reason].to_owned(),
                    r[candidates]
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect(),
                ),
            )
        })
        .collect()
}

/// Run `run`'s report lists `payment` as ambiguous with `credits` (in id order), and
/// each of them as ambiguous with the payment.
fn reported_ambiguous(env: &TestEnv, run: i64, payment: &str, credits: &[String]) {
    let payments = report_rows(env, run, "unmatched_payments.csv", "payment_id");
    assert_eq!(
        payments.get(payment),
        Some(&("ambiguous".to_owned(), credits.to_vec())),
        "{payments:?}"
    );
    let rows = report_rows(
        env,
        run,
        "unmatched_bank_transactions.csv",
        "transaction_id",
    );
    for id in credits {
        assert_eq!(
            rows.get(id),
            Some(&("ambiguous".to_owned(), vec![payment.to_owned()])),
            "{id}: {rows:?}"
        );
    }
}

/// The sandbox with a confident pair of its data set: `(env, payment, credit record)`.
async fn with_a_confident_pair() -> (TestEnv, String, TransactionRecord) {
    let env = TestEnv::start(SandboxConfig::new(DataSpec::small(7, chrono::Utc::now()))).await;
    let (payment, credit) = env
        .sandbox
        .expected()
        .confident
        .first()
        .cloned()
        .expect("a confident pair");
    let record = env.sandbox.transaction(&credit).expect("the credit");
    (env, payment, record)
}

fn calls(env: &TestEnv) -> Vec<(String, String, String)> {
    env.sandbox
        .reconcile_calls()
        .into_iter()
        .map(|c| (c.payment_id, c.transaction_id, c.answer))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_booked_at_the_matched_credits_instant_after_the_sync_stops_the_call_as_ambiguous() {
    let (env, payment, record) = with_a_confident_pair().await;
    let credit = record.id.clone();
    let twin = format!("{credit}TWIN");
    let hook = Twin::new(record, &twin, None);
    env.sandbox.set_hook(Some(hook.clone()));
    let out = env.run(&["--run-now"]).await;
    env.sandbox.set_hook(None);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        hook.added.load(Ordering::SeqCst),
        "the credit's instant was never re-read"
    );

    // No call for the payment; every other confident pair is reconciled as before.
    let called = calls(&env);
    assert!(
        called.iter().all(|(p, ..)| *p != payment),
        "the pair was called: {called:?}"
    );
    let mut made: Vec<(String, String)> = called.into_iter().map(|(p, t, _)| (p, t)).collect();
    let mut others = env.sandbox.expected().confident.clone();
    others.retain(|(p, _)| *p != payment);
    made.sort();
    others.sort();
    assert_eq!(made, others);

    // The report lists the payment and both credits as ambiguous.
    let mut both = vec![credit, twin];
    both.sort();
    reported_ambiguous(&env, 1, &payment, &both);

    // The next run reads the twin in its sync: the same, and still no call.
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(calls(&env).iter().all(|(p, ..)| *p != payment));
    reported_ambiguous(&env, 2, &payment, &both);
    assert!(
        reported(&env, 2, "payment", "ambiguous").contains(&(payment.clone(), both.clone())),
        "{:?}",
        reported(&env, 2, "payment", "ambiguous")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_booked_before_a_rate_limited_call_is_sent_again_stops_it_as_ambiguous() {
    let (env, payment, record) = with_a_confident_pair().await;
    let credit = record.id.clone();
    let twin = format!("{credit}TWIN");
    let hook = Twin::new(record, &twin, Some(&payment));
    env.sandbox.set_hook(Some(hook.clone()));
    let out = env.run(&["--run-now"]).await;
    env.sandbox.set_hook(None);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        hook.added.load(Ordering::SeqCst),
        "the twin was never booked"
    );

    // The one call the provider did not process, and no other.
    let mine: Vec<_> = calls(&env)
        .into_iter()
        .filter(|(p, ..)| *p == payment)
        .collect();
    assert_eq!(
        mine,
        [(payment.clone(), credit.clone(), "rate_limited".to_owned())]
    );
    let mut both = vec![credit, twin];
    both.sort();
    reported_ambiguous(&env, 1, &payment, &both);
}
