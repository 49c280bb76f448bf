//! Reconcile, exactly once (reconciliation rules §3.6 and §5).
//!
//! For each confident pair: re-read the payment (it must still be `pending_bank`), commit
//! the intent, call `POST /banking/reconcile`, record the outcome. A lost answer is never
//! retried blindly: the payment is re-read and the intent is settled from what it says,
//! now or by the next run ([`recover`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{ApiError, Client, ReconcileAnswer};
use crate::domain::{BankTransaction, BankTxId, Concept, Money, Payment, PaymentId, PaymentStatus};
use crate::report::Reconciled;
use crate::store::{MatchRow, MatchState, NewMatch, RunId, Settlement, SharedStore, StoreError};

/// A pair that was not reconciled, with what a person needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReconciled {
    pub payment: PaymentId,
    pub transaction: BankTxId,
    /// The provider's code, or what stopped the call.
    pub detail: String,
    /// Whether the payment is still open (`pending_bank`) as far as this run knows.
    pub payment_open: bool,
}

/// What the reconcile step did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reconciled: Vec<Reconciled>,
    pub not_reconciled: Vec<NotReconciled>,
    /// Confident pairs recorded without a call (dry run or reconcile disabled).
    pub dry_run: Vec<(PaymentId, BankTxId)>,
    pub calls: u64,
    /// Intents of earlier runs settled by this one.
    pub recovered: u64,
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

fn new_match<'a>(
    run: RunId,
    p: &'a Payment,
    t: &'a BankTransaction,
    now: DateTime<Utc>,
) -> NewMatch<'a> {
    NewMatch {
        run_id: run,
        payment: &p.id,
        transaction: &t.id,
        iban: &t.iban,
        amount: &p.amount,
        concept: p.concept.as_ref(),
        now,
    }
}

/// Calls for each confident pair. `pairs` carry the records as matched; `concurrency`
/// bounds the requests in flight (the client's rate limit applies on top).
///
/// Pairs go in batches through three stages at a time: while one batch's calls are
/// made, the next batch's payments are re-read and its intents committed, and the
/// previous batch's outcomes are recorded. Every request of every stage holds a permit
/// of one semaphore, so `concurrency` bounds them together, and a batch's intents are
/// always committed before any of its calls.
pub async fn execute(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    pairs: Vec<(Payment, BankTransaction)>,
    dry_run: bool,
    concurrency: usize,
) -> Result<Outcome, StoreError> {
    let mut out = Outcome::default();
    if dry_run {
        let now = Utc::now();
        let rows = pairs.clone();
        db.call(move |s| {
            let ms: Vec<_> = rows
                .iter()
                .map(|(p, t)| new_match(run, p, t, now))
                .collect();
            s.insert_dry_runs(&ms)
        })
        .await?;
        out.dry_run = pairs.into_iter().map(|(p, t)| (p.id, t.id)).collect();
        return Ok(out);
    }
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut stop: Option<String> = None;
    // Confirmed ties whose payment status and transaction tie are written at the end.
    let mut ties = Vec::new();
    let mut spent = Spent::default();
    let batch = batch_size(pairs.len());
    let mut rest = pairs.into_iter();
    let mut prepared: Option<Prepared> = None;
    let mut answered: Option<Answered> = None;
    loop {
        let chunk: Vec<_> = rest.by_ref().take(batch).collect();
        if chunk.is_empty() && prepared.is_none() && answered.is_none() {
            break;
        }
        let stage1 = async {
            if chunk.is_empty() {
                return Ok(None);
            }
            if let Some(why) = &stop {
                let not = chunk
                    .into_iter()
                    .map(|(p, t)| NotReconciled {
                        payment: p.id,
                        transaction: t.id,
                        detail: why.clone(),
                        payment_open: true,
                    })
                    .collect();
                return Ok(Some(Prepared {
                    calls: Vec::new(),
                    not,
                    stop: None,
                    spent: Spent::default(),
                }));
            }
            prepare(client, db, run, chunk, &sem).await.map(Some)
        };
        let stage2 = async {
            match prepared.take() {
                Some(p) => Some(call(client, p.calls, &sem, stop.clone()).await),
                None => None,
            }
        };
        let stage3 = async {
            match answered.take() {
                Some(a) => record(client, db, run, a, &sem).await.map(Some),
                None => Ok(None),
            }
        };
        let (next, called, recorded) = tokio::join!(stage1, stage2, stage3);
        if let Some(r) = recorded? {
            out.reconciled.extend(r.reconciled);
            out.not_reconciled.extend(r.not);
            ties.extend(r.confirmed);
            spent.add(&r.spent);
        }
        if let Some(c) = called {
            if c.answers.is_ok() {
                out.calls += c.calls.len() as u64;
            }
            spent.add(&c.spent);
            stop = stop.or(c.stop.clone());
            answered = Some(c);
        }
        if let Some(mut p) = next? {
            out.not_reconciled.append(&mut p.not);
            spent.add(&p.spent);
            stop = stop.or(p.stop.take());
            prepared = Some(p);
        }
    }
    let lap = Instant::now();
    if !ties.is_empty() {
        db.call(move |s| s.record_ties(&ties)).await?;
    }
    spent.ties = lap.elapsed();
    tracing::debug!(
        rereads_ms = spent.rereads.as_millis() as u64,
        intents_ms = spent.intents.as_millis() as u64,
        calls_ms = spent.calls.as_millis() as u64,
        settles_ms = spent.settles.as_millis() as u64,
        ties_ms = spent.ties.as_millis() as u64,
        "reconcile stages done (the stages overlap)"
    );
    Ok(out)
}

/// A batch whose intents are committed, waiting for its calls.
struct Prepared {
    /// (match id, payment, transaction) of each committed intent.
    calls: Vec<(i64, Payment, BankTransaction)>,
    /// Pairs of the batch that will not be called, and why.
    not: Vec<NotReconciled>,
    /// Set when no further call may be made (authentication rejected, deadline).
    stop: Option<String>,
    spent: Spent,
}

/// Stage 1 of a batch: re-read each payment right before its call (rules §3.6), and
/// commit durably the intents of those still `pending_bank`.
async fn prepare(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    chunk: Vec<(Payment, BankTransaction)>,
    sem: &Arc<Semaphore>,
) -> Result<Prepared, StoreError> {
    let mut spent = Spent::default();
    let mut stop = None;
    let mut not = Vec::new();
    let lap = Instant::now();
    let ids: Vec<PaymentId> = chunk.iter().map(|(p, _)| p.id.clone()).collect();
    let c = client.clone();
    let reads = bounded(ids, sem, move |id| {
        let c = c.clone();
        async move { c.payment(&id).await }
    })
    .await;
    let mut ready = Vec::with_capacity(chunk.len());
    let mut moved = Vec::new();
    for ((p, t), read) in chunk.into_iter().zip(reads) {
        let read = read.unwrap_or_else(|e| Err(task_failed("re-read", &e)));
        match read {
            Ok(Some(rec)) if rec.value.status.is_open() => ready.push((p, t)),
            Ok(Some(rec)) => {
                let status = rec.value.status.clone();
                tracing::info!(payment = %p.id, %status, "payment no longer pending_bank; not reconciled");
                not.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    detail: format!("payment_not_pending (now {status})"),
                    payment_open: false,
                });
                moved.push(rec);
            }
            Ok(None) => not.push(NotReconciled {
                payment: p.id,
                transaction: t.id,
                detail: "payment_not_found".into(),
                payment_open: false,
            }),
            Err(e) => {
                if matches!(e, ApiError::Auth { .. } | ApiError::Deadline { .. }) {
                    stop = Some(format!("not called: {e}"));
                }
                not.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    detail: format!("re-read failed: {e}"),
                    payment_open: true,
                });
            }
        }
    }
    spent.rereads = lap.elapsed();
    if !moved.is_empty() {
        db.call(move |s| s.upsert_payments(run, Utc::now(), &moved))
            .await?;
    }
    let mut calls = Vec::with_capacity(ready.len());
    if ready.is_empty() {
        return Ok(Prepared {
            calls,
            not,
            stop,
            spent,
        });
    }

    // The intents are committed, durably, before any call.
    let lap = Instant::now();
    let now = Utc::now();
    let rows = ready.clone();
    let ids = db
        .call(move |s| {
            let ms: Vec<_> = rows
                .iter()
                .map(|(p, t)| new_match(run, p, t, now))
                .collect();
            s.insert_intents(&ms)
        })
        .await?;
    for ((p, t), id) in ready.into_iter().zip(ids) {
        match id {
            Ok(id) => calls.push((id, p, t)),
            Err(StoreError::AlreadyTied { .. }) => not.push(NotReconciled {
                payment: p.id,
                transaction: t.id,
                detail: "already tied by an earlier run".into(),
                payment_open: true,
            }),
            Err(e) => return Err(e),
        }
    }
    spent.intents = lap.elapsed();
    Ok(Prepared {
        calls,
        not,
        stop,
        spent,
    })
}

/// A call's answer; `Err` when its task failed (panicked or was cancelled).
type CallAnswer = Result<Result<ReconcileAnswer, ApiError>, String>;

/// A batch after stage 2: its calls and their answers.
struct Answered {
    /// (match id, payment, transaction) of each committed intent.
    calls: Vec<(i64, Payment, BankTransaction)>,
    /// One answer per call, in order; or, when calls were stopped before this batch,
    /// why none was made.
    answers: Result<Vec<CallAnswer>, String>,
    /// Set when an answer says no further call may be made (authentication rejected,
    /// deadline).
    stop: Option<String>,
    spent: Spent,
}

/// Stage 2 of a batch: the calls, nothing else. No call is made once calls were stopped
/// (authentication rejected, deadline).
async fn call(
    client: &Arc<Client>,
    calls: Vec<(i64, Payment, BankTransaction)>,
    sem: &Arc<Semaphore>,
    stop: Option<String>,
) -> Answered {
    if let Some(why) = stop {
        return Answered {
            calls,
            answers: Err(why),
            stop: None,
            spent: Spent::default(),
        };
    }
    let lap = Instant::now();
    let targets: Vec<_> = calls
        .iter()
        .map(|(_, p, t)| (p.id.clone(), t.id.clone(), t.iban.clone()))
        .collect();
    let c = client.clone();
    let answers = bounded(targets, sem, move |(p, t, iban)| {
        let c = c.clone();
        async move { c.reconcile(&p, &t, &iban).await }
    })
    .await;
    let stop = answers.iter().find_map(|a| match a {
        Ok(Err(e @ (ApiError::Auth { .. } | ApiError::Deadline { .. }))) => {
            Some(format!("not called: {e}"))
        }
        _ => None,
    });
    Answered {
        calls,
        answers: Ok(answers),
        stop,
        spent: Spent {
            calls: lap.elapsed(),
            ..Spent::default()
        },
    }
}

/// What stage 3 recorded for a batch.
#[derive(Default)]
struct Recorded {
    reconciled: Vec<Reconciled>,
    not: Vec<NotReconciled>,
    /// Confirmed ties, for [`crate::store::Store::record_ties`] at the end of the phase.
    confirmed: Vec<(i64, PaymentId, BankTxId, PaymentStatus)>,
    spent: Spent,
}

/// Stage 3 of a batch: what became of each call. Intents whose calls were stopped
/// (authentication rejected, deadline) after they were committed, and calls the run's
/// deadline kept from being sent, are settled as `skipped`: no call was made for them. An answer that does not say for sure is settled
/// by re-reading the payment, holding a permit like every other request.
async fn record(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    batch: Answered,
    sem: &Arc<Semaphore>,
) -> Result<Recorded, StoreError> {
    let mut done = Recorded::default();
    let answers = match batch.answers {
        Ok(a) => a,
        Err(why) => {
            for (match_id, p, t) in batch.calls {
                let not = skipped(db, run, match_id, (p.id, t.id), why.clone(), Utc::now());
                done.not.push(not.await?);
            }
            return Ok(done);
        }
    };
    let lap = Instant::now();
    let now = Utc::now();
    for ((match_id, p, t), answer) in batch.calls.into_iter().zip(answers) {
        let answer = answer.unwrap_or_else(|e| Err(task_failed(PATH_LABEL, &e)));
        match answer {
            Ok(ReconcileAnswer::Reconciled { payment_status }) => {
                tracing::info!(payment = %p.id, transaction = %t.id, amount = %p.amount, "reconciled");
                done.reconciled.push(Reconciled {
                    payment_id: p.id.clone(),
                    transaction_id: t.id.clone(),
                    amount: p.amount.clone(),
                    concept: p.concept.clone(),
                    reconciled_at: now,
                });
                done.confirmed.push((match_id, p.id, t.id, payment_status));
            }
            // The run's deadline passed before the call was sent (the client starts no
            // request after it): nothing to re-read, nothing applied.
            Err(e @ ApiError::Deadline { .. }) => {
                let why = format!("not called: {e}");
                let not = skipped(db, run, match_id, (p.id, t.id), why, now);
                done.not.push(not.await?);
            }
            other => {
                let pair = Pair {
                    payment: &p.id,
                    transaction: &t.id,
                    amount: &p.amount,
                    concept: p.concept.as_ref(),
                };
                // The semaphore is never closed, so a permit always comes.
                let _permit = sem.acquire().await;
                match settle(client, db, run, match_id, pair, other).await? {
                    Settled::Reconciled(r) => done.reconciled.push(r),
                    Settled::Not(n) => done.not.push(n),
                }
            }
        }
    }
    if !done.confirmed.is_empty() {
        let batch = done.confirmed.clone();
        db.call(move |s| s.mark_reconciled(&batch, "ok", run, now))
            .await?;
    }
    done.spent.settles = lap.elapsed();
    Ok(done)
}

const PATH_LABEL: &str = "reconcile";

/// Where a reconcile phase spent its time (logged at debug level).
#[derive(Default)]
struct Spent {
    rereads: Duration,
    intents: Duration,
    calls: Duration,
    settles: Duration,
    ties: Duration,
}

impl Spent {
    /// Adds a stage's times (the final ties are timed once, by the phase itself).
    fn add(&mut self, o: &Spent) {
        self.rereads += o.rereads;
        self.intents += o.intents;
        self.calls += o.calls;
        self.settles += o.settles;
    }
}

/// A task that panicked or was cancelled: its outcome is unknown.
fn task_failed(what: &str, e: &str) -> ApiError {
    ApiError::OutcomeUnknown {
        endpoint: what.to_owned(),
        detail: format!("task failed: {e}"),
    }
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

/// Settles intents left without an outcome by a run that died mid-call, or whose answer
/// was lost: re-read the payment; call again only if it is still `pending_bank`.
pub async fn recover(
    client: &Client,
    db: &SharedStore,
    run: RunId,
    dry_run: bool,
) -> Result<Outcome, StoreError> {
    let mut out = Outcome::default();
    let open = db.call(|s| s.unsettled()).await?;
    for m in open {
        tracing::warn!(payment = %m.payment_id, transaction = %m.transaction_id, match_id = m.id,
            "found a reconcile intent without an outcome; re-reading the payment");
        let rec = match client.payment(&m.payment_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(payment = %m.payment_id, error = %e, "cannot re-read; the intent stays open");
                out.not_reconciled.push(NotReconciled {
                    payment: m.payment_id.clone(),
                    transaction: m.transaction_id.clone(),
                    detail: format!("outcome unknown; re-read failed: {e}"),
                    payment_open: true,
                });
                continue;
            }
        };
        let Some(rec) = rec else {
            settle_row(
                db,
                &m,
                MatchState::Failed,
                Some("payment_not_found"),
                None,
                run,
            )
            .await?;
            out.recovered += 1;
            continue;
        };
        let status = rec.value.status.clone();
        db.call(move |s| s.upsert_payment(run, Utc::now(), &rec))
            .await?;
        if status.is_open() {
            if dry_run {
                out.not_reconciled.push(NotReconciled {
                    payment: m.payment_id.clone(),
                    transaction: m.transaction_id.clone(),
                    detail: "outcome unknown; not called again in a dry run".into(),
                    payment_open: true,
                });
                continue;
            }
            // Still pending: the call did not take effect; make it again, once.
            out.calls += 1;
            let answer = client
                .reconcile(&m.payment_id, &m.transaction_id, &m.iban)
                .await;
            let pair = Pair {
                payment: &m.payment_id,
                transaction: &m.transaction_id,
                amount: &m.amount,
                concept: m.concept.as_ref(),
            };
            match settle(client, db, run, m.id, pair, answer).await? {
                Settled::Reconciled(r) => out.reconciled.push(r),
                Settled::Not(n) => out.not_reconciled.push(n),
            }
        } else {
            if moved_state(&status) == MatchState::Reconciled {
                let item = (
                    m.id,
                    m.payment_id.clone(),
                    m.transaction_id.clone(),
                    status.clone(),
                );
                let answer = "settled by re-reading the payment".to_owned();
                record_reconciled(db, item, answer, run, Utc::now()).await?;
                out.reconciled.push(Reconciled {
                    payment_id: m.payment_id.clone(),
                    transaction_id: m.transaction_id.clone(),
                    amount: m.amount.clone(),
                    concept: m.concept.clone(),
                    reconciled_at: Utc::now(),
                });
            } else {
                settle_row(
                    db,
                    &m,
                    MatchState::MovedOn,
                    None,
                    Some(status.as_str()),
                    run,
                )
                .await?;
            }
        }
        out.recovered += 1;
    }
    Ok(out)
}

/// The two sides of a match, as much as settling needs.
struct Pair<'a> {
    payment: &'a PaymentId,
    transaction: &'a BankTxId,
    amount: &'a Money,
    concept: Option<&'a Concept>,
}

enum Settled {
    Reconciled(Reconciled),
    Not(NotReconciled),
}

/// A payment that left `pending_bank` after our intent: `payment_received` / `coins_sent`
/// mean the money was tied (by our call, most likely); any other status means it moved on
/// some other way.
fn moved_state(status: &PaymentStatus) -> MatchState {
    match status {
        PaymentStatus::PaymentReceived | PaymentStatus::CoinsSent => MatchState::Reconciled,
        _ => MatchState::MovedOn,
    }
}

/// Records what a reconcile call produced; re-reads the payment whenever the answer does
/// not say for sure.
async fn settle(
    client: &Client,
    db: &SharedStore,
    run: RunId,
    match_id: i64,
    pair: Pair<'_>,
    answer: Result<ReconcileAnswer, ApiError>,
) -> Result<Settled, StoreError> {
    let (pid_ref, tid_ref) = (pair.payment, pair.transaction);
    let now = Utc::now();
    let done = |state: MatchState,
                code: Option<String>,
                answer: Option<String>,
                status: Option<String>| {
        record_fate(
            db,
            match_id,
            state,
            Texts {
                code,
                answer,
                status,
            },
            run,
            now,
        )
    };
    let reconciled = |at: DateTime<Utc>| Reconciled {
        payment_id: pid_ref.clone(),
        transaction_id: tid_ref.clone(),
        amount: pair.amount.clone(),
        concept: pair.concept.cloned(),
        reconciled_at: at,
    };
    match answer {
        Ok(ReconcileAnswer::Reconciled { payment_status }) => {
            let item = (match_id, pid_ref.clone(), tid_ref.clone(), payment_status);
            record_reconciled(db, item, "ok".into(), run, now).await?;
            tracing::info!(payment = %pid_ref, transaction = %tid_ref, amount = %pair.amount, "reconciled");
            Ok(Settled::Reconciled(reconciled(now)))
        }
        Ok(ReconcileAnswer::Refused { code }) => {
            // Not a crash: re-read and record what happened (rules §5).
            let status = reread_status(client, pid_ref).await;
            let open = status.as_ref().is_none_or(PaymentStatus::is_open);
            let state = match (&status, code.as_str()) {
                (Some(s), "payment_not_pending" | "transaction_already_reconciled")
                    if !s.is_open() =>
                {
                    MatchState::MovedOn
                }
                _ => MatchState::Failed,
            };
            done(
                state,
                Some(code.clone()),
                Some(format!("error: {code}")),
                status.as_ref().map(|s| s.as_str().to_owned()),
            )
            .await?;
            tracing::warn!(payment = %pid_ref, transaction = %tid_ref, %code, "reconcile refused");
            Ok(Settled::Not(NotReconciled {
                payment: pid_ref.clone(),
                transaction: tid_ref.clone(),
                detail: code,
                payment_open: open,
            }))
        }
        Err(e) => {
            // The answer was lost (or never came): the payment says what happened.
            tracing::warn!(payment = %pid_ref, transaction = %tid_ref, error = %e, "reconcile answer lost; re-reading the payment");
            match reread_status(client, pid_ref).await {
                Some(s) if !s.is_open() => {
                    if moved_state(&s) == MatchState::Reconciled {
                        let item = (match_id, pid_ref.clone(), tid_ref.clone(), s);
                        record_reconciled(db, item, format!("lost: {e}"), run, now).await?;
                        Ok(Settled::Reconciled(reconciled(now)))
                    } else {
                        done(
                            MatchState::MovedOn,
                            None,
                            Some(format!("lost: {e}")),
                            Some(s.as_str().to_owned()),
                        )
                        .await?;
                        Ok(Settled::Not(NotReconciled {
                            payment: pid_ref.clone(),
                            transaction: tid_ref.clone(),
                            detail: format!("payment moved on to {s}"),
                            payment_open: false,
                        }))
                    }
                }
                status => {
                    // Still pending, or unreadable: the next run settles it.
                    done(
                        MatchState::Unknown,
                        None,
                        Some(format!("lost: {e}")),
                        status.map(|s| s.as_str().to_owned()),
                    )
                    .await?;
                    Ok(Settled::Not(NotReconciled {
                        payment: pid_ref.clone(),
                        transaction: tid_ref.clone(),
                        detail: format!("outcome unknown, settled by the next run: {e}"),
                        payment_open: true,
                    }))
                }
            }
        }
    }
}

/// Records one confirmed reconcile (see [`crate::store::Store::settle_reconciled`]).
async fn record_reconciled(
    db: &SharedStore,
    item: (i64, PaymentId, BankTxId, PaymentStatus),
    answer: String,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.call(move |s| s.settle_reconciled(&[item], &answer, run, now))
        .await
}

async fn reread_status(client: &Client, id: &PaymentId) -> Option<PaymentStatus> {
    match client.payment(id).await {
        Ok(Some(r)) => Some(r.value.status),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(payment = %id, error = %e, "re-read failed");
            None
        }
    }
}

async fn settle_row(
    db: &SharedStore,
    m: &MatchRow,
    state: MatchState,
    code: Option<&str>,
    status: Option<&str>,
    run: RunId,
) -> Result<(), StoreError> {
    let texts = Texts {
        code: code.map(str::to_owned),
        answer: Some("settled by re-reading the payment".to_owned()),
        status: status.map(str::to_owned),
    };
    record_fate(db, m.id, state, texts, run, Utc::now()).await
}

/// What is recorded with a match's outcome.
struct Texts {
    /// The provider's error code.
    code: Option<String>,
    /// The provider's answer, or how the outcome was learnt.
    answer: Option<String>,
    /// The payment status read with the outcome.
    status: Option<String>,
}

/// Records an outcome that is not a confirmed tie (those go through
/// [`record_reconciled`]).
/// Settles an intent whose call was never made as `skipped`, saying why; its payment
/// stays open.
async fn skipped(
    db: &SharedStore,
    run: RunId,
    match_id: i64,
    (payment, transaction): (PaymentId, BankTxId),
    why: String,
    now: DateTime<Utc>,
) -> Result<NotReconciled, StoreError> {
    let texts = Texts {
        code: None,
        answer: Some(why.clone()),
        status: None,
    };
    record_fate(db, match_id, MatchState::Skipped, texts, run, now).await?;
    Ok(NotReconciled {
        payment,
        transaction,
        detail: why,
        payment_open: true,
    })
}

async fn record_fate(
    db: &SharedStore,
    match_id: i64,
    state: MatchState,
    texts: Texts,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Texts {
        code,
        answer,
        status,
    } = texts;
    db.call(move |s| {
        s.settle(
            match_id,
            &Settlement {
                state,
                provider_code: code.as_deref(),
                provider_answer: answer.as_deref(),
                payment_status: status.as_deref(),
                run,
                now,
            },
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClientConfig;
    use crate::domain::{Currency, Direction, Iban};
    use crate::store::Store;

    #[tokio::test]
    async fn calls_the_run_deadline_kept_from_being_sent_are_skipped_and_stop_the_calls() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("recon.sqlite3")).unwrap();
        let now = Utc::now();
        let run = store.begin_run(now, false, "full").unwrap();
        let amount = Money::from_units(
            rust_decimal::Decimal::new(15050, 2),
            Currency::parse("EUR").unwrap(),
        );
        let payment = Payment {
            id: PaymentId::parse("P1").unwrap(),
            external_id: None,
            user_id: None,
            status: PaymentStatus::PendingBank,
            amount: amount.clone(),
            payment_type: Some("transfer".into()),
            concept: Some(Concept::parse("120037").unwrap()),
            created_at: now,
            updated_at: None,
        };
        let transaction = BankTransaction {
            id: BankTxId::parse("T1").unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount,
            direction: Direction::Credit,
            concept_text: "Ref 120037".into(),
            counterparty_name: None,
            counterparty_iban: None,
            booked_at: now,
            value_date: None,
            reconciled_payment_id: None,
        };
        let ids = store
            .insert_intents(&[new_match(run, &payment, &transaction, now)])
            .unwrap();
        let id = ids.into_iter().next().unwrap().unwrap();
        let db = SharedStore::new(store);
        // The deadline has passed before anything starts: the client sends nothing (its
        // base URL is never reached).
        let client = Arc::new(
            Client::new(ClientConfig {
                base_url: "http://127.0.0.1:9/api".into(),
                api_key: "k".into(),
                api_secret: "s".to_owned().into(),
                timeout: Duration::from_secs(1),
                max_requests_per_second: 0,
                max_attempts: 1,
                backoff_base: Duration::from_millis(1),
                deadline: Duration::ZERO,
            })
            .unwrap(),
        );
        let sem = Arc::new(Semaphore::new(1));

        let answered = call(&client, vec![(id, payment, transaction)], &sem, None).await;
        assert!(
            answered
                .stop
                .as_deref()
                .is_some_and(|s| s.contains("deadline"))
        );
        let recorded = record(&client, &db, run, answered, &sem).await.unwrap();

        assert!(recorded.reconciled.is_empty() && recorded.confirmed.is_empty());
        assert_eq!(recorded.not.len(), 1);
        assert!(recorded.not[0].payment_open);
        assert!(recorded.not[0].detail.starts_with("not called:"));
        let store = db.into_inner().unwrap();
        let (state, holds): (String, Option<i64>) = store
            .connection()
            .query_row(
                "SELECT state, holds FROM matches WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((state.as_str(), holds), ("skipped", None));
        assert!(
            store.unsettled().unwrap().is_empty(),
            "nothing for the next run to settle"
        );
    }

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
