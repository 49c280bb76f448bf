//! Reconcile, exactly once (matching rules §3.6 and §5). This module does the I/O; what
//! each answer and re-read means is decided by [`crate::matching::fate`].
//!
//! For each confident pair: re-read both sides (the payment by id, the credit in its
//! account's list at the instant it was booked), call only if both are still open and
//! unchanged and no other open credit that read returned fits the payment too, commit
//! the intent durably, call `POST /banking/reconcile`, and record the
//! fate. An answer that does not say for sure is settled from fresh re-reads of both
//! sides; a call the provider did not process (429) is made again after the wait it
//! asks for, if the pair is still confident. [`recover`] settles, before the sync,
//! intents an earlier run left without an outcome; it never calls.
//!
//! [`execute`] and its stages are in `pipeline`, [`recover`] in `recover`; this file
//! holds what both share: the outcome, reading a re-read, storing what it found, writing
//! a fate to the ledger, and running requests under one concurrency bound.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::Record;
use crate::domain::{BankTransaction, BankTxId, Payment, PaymentId, PaymentStatus};
use crate::matching::fate::{Fate, Read};
use crate::report::Reconciled;
use crate::store::{MatchState, RunId, Settlement, SharedStore, StoreError};

mod pipeline;
mod recover;

pub use crate::matching::fate::NotReconciled;
pub use pipeline::{execute, execute_until};
pub use recover::recover;

/// What the reconcile step did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reconciled: Vec<Reconciled>,
    pub not_reconciled: Vec<NotReconciled>,
    /// Confident pairs recorded without a call (dry run or reconcile disabled).
    pub dry_run: Vec<(PaymentId, BankTxId)>,
    /// Payments found gone at the provider (`payment_not_found`), now `vanished`.
    pub vanished: Vec<PaymentId>,
    pub calls: u64,
    /// Intents of earlier runs settled by this one.
    pub recovered: u64,
    /// Confident pairs a stop (SIGTERM) kept from being called. Not a failure and
    /// nothing for a person: they stay open and the next run calls them.
    pub deferred: Vec<(PaymentId, BankTxId)>,
    /// Calls (or intents being settled) left on a stop without an outcome: each intent
    /// is recorded, and the next run settles it by re-reading, as after a kill.
    pub abandoned: u64,
}

/// Pairs handled together: re-read together, intents committed in one transaction,
/// calls made concurrently, successes settled in one transaction. A run cuts its pairs
/// into about [`BATCHES`] batches of this many at most and [`MIN_BATCH`] at least: big
/// batches spare commits (each batch's intents cost one fsync), and a small run still
/// gets enough batches for its three stages to overlap.
const MAX_BATCH: usize = 512;
const MIN_BATCH: usize = 64;
const BATCHES: usize = 8;

/// How many pairs go in each batch when a run has `pairs` to reconcile.
pub fn batch_size(pairs: usize) -> usize {
    pairs.div_ceil(BATCHES).clamp(MIN_BATCH, MAX_BATCH)
}

/// The records a re-read found, to be stored (the provider's truth).
fn found<T: Clone>(read: &Read<Record<T>>) -> Option<Record<T>> {
    match read {
        Read::Found(r) => Some(r.clone()),
        _ => None,
    }
}

/// A read of a record as the decision sees it (the value without its raw JSON).
fn value<T: Clone>(read: &Read<Record<T>>) -> Read<T> {
    match read {
        Read::Found(r) => Read::Found(r.value.clone()),
        Read::Gone => Read::Gone,
        Read::Failed(e) => Read::Failed(e.clone()),
    }
}

/// Stores what fresh reads found: the provider's records, and payments gone.
async fn store_reads(
    db: &SharedStore,
    run: RunId,
    payments: Vec<Record<Payment>>,
    credits: Vec<Record<BankTransaction>>,
    vanished: Vec<PaymentId>,
) -> Result<(), StoreError> {
    if payments.is_empty() && credits.is_empty() && vanished.is_empty() {
        return Ok(());
    }
    db.call(move |s| {
        let now = Utc::now();
        if !payments.is_empty() {
            s.upsert_payments(run, now, &payments)?;
        }
        if !credits.is_empty() {
            s.upsert_transactions(run, now, &credits)?;
        }
        if !vanished.is_empty() {
            s.mark_vanished(run, &vanished)?;
        }
        Ok(())
    })
    .await
}

/// Stores what the re-reads behind a fate found, and the payment as gone if it is.
async fn store_settled_reads(
    db: &SharedStore,
    run: RunId,
    payment: &PaymentId,
    fate: &Fate,
    (rp, rt): (&Read<Record<Payment>>, &Read<Record<BankTransaction>>),
) -> Result<(), StoreError> {
    let vanished = if *fate == Fate::Vanished {
        vec![payment.clone()]
    } else {
        Vec::new()
    };
    let (p, t) = (
        found(rp).into_iter().collect(),
        found(rt).into_iter().collect(),
    );
    store_reads(db, run, p, t, vanished).await
}

/// The one place a fate is written to the ledger. A confirmed tie goes through
/// [`crate::store::Store::settle_reconciled`], which writes the payment's status and the
/// credit's tie with it; every other fate through [`crate::store::Store::settle`].
async fn write_fate(
    db: &SharedStore,
    run: RunId,
    match_id: i64,
    fate: &Fate,
    payment_status: Option<PaymentStatus>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (state, code, answer): (MatchState, Option<String>, String) = match fate {
        Fate::Reconciled { status, how } => {
            let (how, status) = (how.clone(), status.clone());
            return db
                .call(move |s| {
                    let items = s.match_pair(match_id)?;
                    let item = (match_id, items.0, items.1, status);
                    s.settle_reconciled(&[item], &how, run, now)
                })
                .await;
        }
        Fate::MovedOn { .. } => (MatchState::MovedOn, None, "settled by re-reading".into()),
        Fate::Failed { code } => (
            MatchState::Failed,
            Some(code.clone()),
            format!("error: {code}"),
        ),
        Fate::Vanished => (
            MatchState::Failed,
            Some("payment_not_found".into()),
            "the payment is gone at the provider".into(),
        ),
        Fate::Unknown { why } => (MatchState::Unknown, None, why.clone()),
        Fate::NotApplied { why } => (MatchState::NotApplied, None, why.clone()),
        Fate::Skipped { why } => (MatchState::Skipped, None, why.clone()),
        // Decided again by the caller before anything is written.
        Fate::CallAgain => return Ok(()),
    };
    let status = match fate {
        Fate::MovedOn { status } => Some(status.as_str().to_owned()),
        _ => payment_status.map(|s| s.as_str().to_owned()),
    };
    db.call(move |s| {
        s.settle(
            match_id,
            &Settlement {
                state,
                provider_code: code.as_deref(),
                provider_answer: Some(&answer),
                payment_status: status.as_deref(),
                run,
                now,
            },
        )
    })
    .await
}

/// Runs `f` on every item, each holding a permit of `sem` while it runs; results in
/// input order.
async fn bounded<T, R, F, Fut>(items: Vec<T>, sem: &Arc<Semaphore>, f: F) -> Vec<Result<R, String>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut index = std::collections::HashMap::with_capacity(items.len());
    let n = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let fut = f(item);
        let sem = sem.clone();
        let handle = set.spawn(async move {
            // The semaphore is never closed, so a permit always comes.
            let _permit = sem.acquire_owned().await;
            fut.await
        });
        index.insert(handle.id(), i);
    }
    let mut slots: Vec<Option<Result<R, String>>> = (0..n).map(|_| None).collect();
    while let Some(res) = set.join_next_with_id().await {
        let (id, r) = match res {
            Ok((id, r)) => (id, Ok(r)),
            Err(e) => (e.id(), Err(e.to_string())),
        };
        if let Some(&i) = index.get(&id) {
            slots[i] = Some(r);
        }
    }
    // One entry per item, in order, whatever happened: callers zip these with their items.
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err("the task reported nothing".to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_cut_into_about_eight_batches_of_64_to_512_pairs() {
        assert_eq!(batch_size(0), MIN_BATCH);
        assert_eq!(batch_size(10), MIN_BATCH);
        assert_eq!(batch_size(1000), 125);
        assert_eq!(batch_size(14_176), MAX_BATCH);
        for n in [1, 63, 64, 511, 512, 513, 4095, 4096, 4097, 1_000_000] {
            let b = batch_size(n);
            assert!((MIN_BATCH..=MAX_BATCH).contains(&b), "{n}: {b}");
            assert!(n.div_ceil(b) <= BATCHES || b == MAX_BATCH, "{n}: {b}");
        }
    }
}
