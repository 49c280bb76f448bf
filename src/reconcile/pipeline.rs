//! The call pipeline behind [`execute`]: confident pairs go in batches through three
//! overlapping stages (re-read both sides and commit the intents, call, record), and an
//! answer that does not say for sure is settled from fresh re-reads.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::{
    NotReconciled, Outcome, batch_size, bounded, found, store_reads, store_settled_reads, value,
    write_fate,
};
use crate::api::{ApiError, Client, ReconcileAnswer, Record};
use crate::domain::{
    BankTransaction, BankTxId, Direction, Iban, Payment, PaymentId, PaymentStatus,
};
use crate::matching::fate::{self, Answer, Check, Fate, NarrowRead, Read, Uniqueness};
use crate::report::Reconciled;
use crate::store::{NewMatch, RunId, SharedStore, StoreError};

/// A call the provider did not process (429) is sent at most this many times in all.
const MAX_SENDS: u32 = 3;

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
/// bounds the requests in flight (the client's rate limit applies on top); `uniqueness`
/// says who found each pair unique, and so what is checked again right before its call.
///
/// Pairs go in batches through three stages at a time: while one batch's calls are
/// made, the next batch's records are re-read and its intents committed, and the
/// previous batch's outcomes are recorded. Every request of every stage holds a permit
/// of one semaphore, so `concurrency` bounds them together, and a batch's intents are
/// always committed before any of its calls. Each pair is called once (a call the
/// provider did not process is sent again, at most three times in all).
pub async fn execute(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    pairs: Vec<(Payment, BankTransaction)>,
    dry_run: bool,
    concurrency: usize,
    uniqueness: Uniqueness,
) -> Result<Outcome, StoreError> {
    execute_until(
        client,
        db,
        run,
        pairs,
        dry_run,
        concurrency,
        uniqueness,
        || None,
    )
    .await
}

/// [`execute`], asking `halt` before each batch: once it says why (SIGTERM, say), no
/// further call is made. The pairs not called are deferred ([`Outcome::deferred`]: the
/// intents committed for some of them are recorded as skipped), the calls already in
/// flight are recorded as they answer, and a call that does not answer within the
/// client's grace, or whose answer would need re-reads to settle, is left as an intent
/// for the next run ([`Outcome::abandoned`]).
#[allow(clippy::too_many_arguments)]
pub async fn execute_until(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    pairs: Vec<(Payment, BankTransaction)>,
    dry_run: bool,
    concurrency: usize,
    uniqueness: Uniqueness,
    halt: impl Fn() -> Option<String>,
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
    // Whether the calls stopped because a stop was requested (the pairs not called are
    // deferred), rather than for a failure (they are reported).
    let mut halted = false;
    // Confirmed ties whose payment status and transaction tie are written at the end.
    let mut ties = Vec::new();
    let mut spent = Spent::default();
    let batch = batch_size(pairs.len());
    let mut rest = pairs.into_iter();
    let mut prepared: Option<Prepared> = None;
    let mut answered: Option<Answered> = None;
    loop {
        if stop.is_none()
            && let Some(why) = halt()
        {
            stop = Some(format!("not called: {why}"));
            halted = true;
        }
        let chunk: Vec<_> = rest.by_ref().take(batch).collect();
        if chunk.is_empty() && prepared.is_none() && answered.is_none() {
            break;
        }
        let stage1 = async {
            if chunk.is_empty() {
                return Ok(None);
            }
            if let Some(why) = &stop {
                let mut unprepared = Prepared::default();
                if halted {
                    unprepared.deferred = chunk.into_iter().map(|(p, t)| (p.id, t.id)).collect();
                } else {
                    unprepared.not = chunk
                        .into_iter()
                        .map(|(p, t)| NotReconciled::both(p.id, t.id, why.clone()))
                        .collect();
                }
                return Ok(Some(unprepared));
            }
            prepare(client, db, run, chunk, &sem, uniqueness)
                .await
                .map(Some)
        };
        let stage2 = async {
            match prepared.take() {
                Some(p) => Some(call(client, p.calls, &sem, stop.clone(), halted).await),
                None => None,
            }
        };
        let stage3 = async {
            match answered.take() {
                Some(a) => record(client, db, run, a, &sem, uniqueness).await.map(Some),
                None => Ok(None),
            }
        };
        let (next, called, recorded) = tokio::join!(stage1, stage2, stage3);
        let stopped_before = stop.is_some();
        if let Some(r) = recorded? {
            out.reconciled.extend(r.reconciled);
            out.not_reconciled.extend(r.not);
            out.vanished.extend(r.vanished);
            out.deferred.extend(r.deferred);
            out.abandoned += r.abandoned;
            out.calls += r.calls;
            ties.extend(r.confirmed);
            spent.add(&r.spent);
            stop = stop.or(r.stop);
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
            out.vanished.append(&mut p.vanished);
            out.deferred.append(&mut p.deferred);
            spent.add(&p.spent);
            stop = stop.or(p.stop.take());
            prepared = Some(p);
        }
        // Calls that stopped because the client refused to send after a stop request
        // stopped for the stop too.
        if !stopped_before && stop.is_some() {
            halted = halt().is_some();
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

/// A pair being called: its intent's id and both records as matched.
type Call = (i64, Payment, BankTransaction);

/// A batch whose intents are committed, waiting for its calls.
#[derive(Default)]
struct Prepared {
    calls: Vec<Call>,
    /// Pairs of the batch that will not be called, and why.
    not: Vec<NotReconciled>,
    /// Pairs of the batch a stop kept from being called (no intent was committed).
    deferred: Vec<(PaymentId, BankTxId)>,
    vanished: Vec<PaymentId>,
    /// Set when no further call may be made (authentication rejected, deadline).
    stop: Option<String>,
    spent: Spent,
}

/// Fresh reads of one pair's sides.
struct Reread {
    payment: Read<Record<Payment>>,
    credit: Read<Record<BankTransaction>>,
    /// Everything the narrow read of the credit's instant returned, the credit among
    /// them (empty when the read failed), shared by the pairs whose credits share it.
    instant: Arc<[Record<BankTransaction>]>,
    /// The same records' values, for the check before the call.
    values: Arc<[BankTransaction]>,
}

/// Fresh reads of both sides of each pair, side by side, each holding a permit. Credits
/// booked at the same instant on the same account are re-read by one request.
async fn reread_pairs(
    client: &Arc<Client>,
    sem: &Arc<Semaphore>,
    pairs: Vec<(PaymentId, Iban, BankTxId, DateTime<Utc>)>,
) -> Vec<Reread> {
    let c = client.clone();
    let ids: Vec<PaymentId> = pairs.iter().map(|(p, ..)| p.clone()).collect();
    let payments = bounded(ids, sem, move |pid| {
        let c = c.clone();
        async move {
            match c.payment(&pid).await {
                Ok(Some(r)) => Read::Found(r),
                Ok(None) => Read::Gone,
                Err(e) => Read::Failed(e.to_string()),
            }
        }
    });
    let mut instants: Vec<(Iban, DateTime<Utc>)> =
        pairs.iter().map(|(_, i, _, at)| (i.clone(), *at)).collect();
    instants.sort();
    instants.dedup();
    let c = client.clone();
    let credits = bounded(instants.clone(), sem, move |(iban, at)| {
        let c = c.clone();
        async move { c.transactions_at(&iban, at).await }
    });
    let (payments, credits) = tokio::join!(payments, credits);
    // Each instant's records are kept once, however many pairs' credits share it.
    let by_instant: std::collections::HashMap<_, _> = instants
        .into_iter()
        .zip(credits.into_iter().map(|read| {
            read.map(|r| {
                r.map(|(found, bad)| {
                    let values: Arc<[BankTransaction]> =
                        found.iter().map(|r| r.value.clone()).collect();
                    (Arc::<[Record<BankTransaction>]>::from(found), values, bad)
                })
            })
        }))
        .collect();
    pairs
        .iter()
        .zip(payments)
        .map(|((_, iban, tid, at), p)| {
            let payment = p.unwrap_or_else(|e| Read::Failed(format!("task failed: {e}")));
            let none = || (Arc::from(Vec::new()), Arc::from(Vec::new()));
            let (credit, (instant, values)) = match by_instant.get(&(iban.clone(), *at)) {
                Some(Ok(Ok((found, values, bad)))) => {
                    let t = if let Some(b) =
                        bad.iter().find(|b| b.id.as_deref() == Some(tid.as_str()))
                    {
                        Read::Failed(b.to_string())
                    } else {
                        found
                            .iter()
                            .find(|r| r.value.id == *tid)
                            .map_or(Read::Gone, |r| Read::Found(r.clone()))
                    };
                    (t, (found.clone(), values.clone()))
                }
                Some(Ok(Err(e))) => (Read::Failed(e.to_string()), none()),
                Some(Err(e)) => (Read::Failed(format!("task failed: {e}")), none()),
                None => (Read::Failed("not read".into()), none()),
            };
            Reread {
                payment,
                credit,
                instant,
                values,
            }
        })
        .collect()
}

/// The credits a narrow read returned besides `own` that the provider shows open, of
/// the payment's amount and currency: those that could be its twins, whose hold by this
/// job the check before a call must know. (A crowded instant of other amounts asks the
/// store nothing.)
fn other_open_credits<'a>(
    p: &'a Payment,
    own: &'a BankTxId,
    instant: &'a [BankTransaction],
) -> impl Iterator<Item = &'a BankTxId> + 'a {
    instant
        .iter()
        .filter(move |o| {
            o.id != *own
                && o.direction == Direction::Credit
                && o.reconciled_payment_id.is_none()
                && o.amount == p.amount
        })
        .map(|o| &o.id)
}

/// Which of `ids` a match of this job holds, when uniqueness is checked again at all:
/// one store call, none when there is nothing to ask.
async fn held_among(
    db: &SharedStore,
    ids: Vec<BankTxId>,
    uniqueness: Uniqueness,
) -> Result<HashSet<BankTxId>, StoreError> {
    if ids.is_empty() || uniqueness == Uniqueness::Approved {
        return Ok(HashSet::new());
    }
    db.call(move |s| s.held_transactions(&ids)).await
}

/// What [`fate::before_call`] says on fresh reads of one pair.
fn check(
    (p, t): (&Payment, &BankTransaction),
    r: &Reread,
    held: &HashSet<BankTxId>,
    uniqueness: Uniqueness,
    now: DateTime<Utc>,
) -> Check {
    let narrow = NarrowRead {
        records: &r.values,
        held,
    };
    fate::before_call(
        (p, t),
        &value(&r.payment),
        &value(&r.credit),
        &narrow,
        uniqueness,
        now,
    )
}

/// The records of `twins` a narrow read returned, to be stored as the sync stores
/// transactions (the report lists them; the next run matches them).
fn twin_records(
    instant: &[Record<BankTransaction>],
    twins: &[BankTxId],
) -> Vec<Record<BankTransaction>> {
    instant
        .iter()
        .filter(|r| twins.contains(&r.value.id))
        .cloned()
        .collect()
}

/// Whether an error of a re-read means no further call may be made.
fn stops(e: &str) -> bool {
    e.contains("run deadline exceeded") || e.contains("authentication rejected")
}

/// Stage 1 of a batch: re-read both sides of each pair right before its call (rules
/// §3.6), store what the provider says, and commit durably the intents of the pairs
/// still confident.
async fn prepare(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    chunk: Vec<(Payment, BankTransaction)>,
    sem: &Arc<Semaphore>,
    uniqueness: Uniqueness,
) -> Result<Prepared, StoreError> {
    let mut spent = Spent::default();
    let mut stop = None;
    let mut not = Vec::new();
    let mut vanished = Vec::new();
    let lap = Instant::now();
    let targets = chunk
        .iter()
        .map(|(p, t)| (p.id.clone(), t.iban.clone(), t.id.clone(), t.booked_at))
        .collect();
    let reads = reread_pairs(client, sem, targets).await;
    if let Some(why) = client.stop_requested() {
        // A stop came while the batch was re-read: no intent is committed, and the
        // pairs wait for the next run, which re-reads them anyway.
        tracing::info!(pairs = chunk.len(), why, "not called: the run is stopping");
        return Ok(Prepared {
            deferred: chunk.into_iter().map(|(p, t)| (p.id, t.id)).collect(),
            spent,
            ..Prepared::default()
        });
    }
    let others: Vec<BankTxId> = chunk
        .iter()
        .zip(&reads)
        .flat_map(|((p, t), r)| other_open_credits(p, &t.id, &r.values))
        .cloned()
        .collect();
    let held = held_among(db, others, uniqueness).await?;
    let checked_at = Utc::now();
    let mut ready = Vec::with_capacity(chunk.len());
    let (mut payments, mut credits) = (Vec::new(), Vec::new());
    for ((p, t), r) in chunk.into_iter().zip(reads) {
        payments.extend(found(&r.payment));
        credits.extend(found(&r.credit));
        match check((&p, &t), &r, &held, uniqueness, checked_at) {
            Check::Call => ready.push((p, t)),
            Check::Ambiguous { why, twins } => {
                tracing::info!(payment = %p.id, transaction = %t.id, %why, "not called");
                credits.extend(twin_records(&r.instant, &twins));
                not.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    payment_detail: Some(why.clone()),
                    credit_detail: Some(why),
                    twins,
                });
            }
            Check::DontCall {
                why,
                payment_open,
                credit_open,
                vanished: gone,
            } => {
                if stops(&why) {
                    stop = Some(why.clone());
                }
                tracing::info!(payment = %p.id, transaction = %t.id, %why, "not called");
                if gone {
                    vanished.push(p.id.clone());
                }
                not.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    payment_detail: payment_open.then(|| why.clone()),
                    credit_detail: credit_open.then_some(why),
                    twins: Vec::new(),
                });
            }
        }
    }
    spent.rereads = lap.elapsed();
    store_reads(db, run, payments, credits, vanished.clone()).await?;
    let mut calls = Vec::with_capacity(ready.len());
    if ready.is_empty() {
        return Ok(Prepared {
            calls,
            not,
            vanished,
            stop,
            spent,
            ..Prepared::default()
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
            Err(StoreError::AlreadyTied { .. }) => not.push(NotReconciled::both(
                p.id,
                t.id,
                "already tied by an earlier run".into(),
            )),
            Err(e) => return Err(e),
        }
    }
    spent.intents = lap.elapsed();
    Ok(Prepared {
        calls,
        not,
        vanished,
        stop,
        spent,
        ..Prepared::default()
    })
}

/// A call's answer; `Err` when its task failed (panicked or was cancelled).
type CallAnswer = Result<Result<ReconcileAnswer, ApiError>, String>;

/// A batch after stage 2: its calls and their answers.
struct Answered {
    calls: Vec<Call>,
    /// One answer per call, in order; or, when calls were stopped before this batch,
    /// why none was made.
    answers: Result<Vec<CallAnswer>, String>,
    /// Set when an answer says no further call may be made (authentication rejected,
    /// deadline).
    stop: Option<String>,
    /// No call was made because a stop was requested: the pairs are deferred.
    halted: bool,
    spent: Spent,
}

/// Stage 2 of a batch: the calls, nothing else. No call is made once calls were stopped
/// (authentication rejected, deadline, or a stop requested: `halted`).
async fn call(
    client: &Arc<Client>,
    calls: Vec<Call>,
    sem: &Arc<Semaphore>,
    stop: Option<String>,
    halted: bool,
) -> Answered {
    if let Some(why) = stop {
        return Answered {
            calls,
            answers: Err(why),
            stop: None,
            halted,
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
        Ok(Err(
            e @ (ApiError::Auth { .. }
            | ApiError::Deadline { .. }
            | ApiError::UntrustedCertificate { .. }
            | ApiError::Stopped { .. }),
        )) => Some(format!("not called: {e}")),
        _ => None,
    });
    Answered {
        calls,
        answers: Ok(answers),
        stop,
        halted: false,
        spent: Spent {
            calls: lap.elapsed(),
            ..Spent::default()
        },
    }
}

/// What a call's result says, as the decision takes it, and how long to wait before
/// sending it again when it was not processed.
fn answer_of(result: Result<ReconcileAnswer, ApiError>) -> (Answer, Duration) {
    let none = Duration::ZERO;
    match result {
        Ok(ReconcileAnswer::Reconciled { payment_status }) => {
            (Answer::Applied(payment_status), none)
        }
        Ok(ReconcileAnswer::Refused { code }) => (Answer::Refused(code), none),
        Err(ApiError::NotProcessed { detail, wait, .. }) => (Answer::NotProcessed(detail), wait),
        // The deadline passed before the call was sent (the client starts no request
        // after it): nothing was applied.
        // A certificate the verifier refused ends the handshake before the request.
        Err(
            e @ (ApiError::Deadline { .. }
            | ApiError::UntrustedCertificate { .. }
            | ApiError::Stopped { .. }),
        ) => (Answer::NotSent(format!("not called: {e}")), none),
        Err(e) => (Answer::Lost(e.to_string()), none),
    }
}

/// What stage 3 recorded for a batch.
#[derive(Default)]
struct Recorded {
    reconciled: Vec<Reconciled>,
    not: Vec<NotReconciled>,
    vanished: Vec<PaymentId>,
    /// Confirmed ties, for [`crate::store::Store::record_ties`] at the end of the phase.
    confirmed: Vec<(i64, PaymentId, BankTxId, PaymentStatus)>,
    /// Calls sent again (after a 429).
    calls: u64,
    /// Pairs a stop kept from being called; their intents are recorded as skipped.
    deferred: Vec<(PaymentId, BankTxId)>,
    /// Calls left on a stop without an outcome, their intents for the next run.
    abandoned: u64,
    stop: Option<String>,
    spent: Spent,
}

/// Stage 3 of a batch: what became of each call. An answer that does not say for sure
/// is settled from fresh re-reads of both sides, each holding a permit like every other
/// request; a call not processed is sent again after the wait it asked for, while the
/// pair is still confident.
async fn record(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    batch: Answered,
    sem: &Arc<Semaphore>,
    uniqueness: Uniqueness,
) -> Result<Recorded, StoreError> {
    let mut done = Recorded::default();
    // What a stop did to each call: kept it from being sent (`Some(true)`: deferred), or
    // abandoned it in flight (`Some(false)`: its intent is left for the next run).
    let mut stopped: Vec<Option<bool>> = Vec::with_capacity(batch.calls.len());
    let answers: Vec<(Answer, Duration)> = match batch.answers {
        Ok(a) => a
            .into_iter()
            .map(|a| {
                let result = a.unwrap_or_else(|e| Err(task_failed(PATH_LABEL, &e)));
                stopped.push(match &result {
                    Err(ApiError::Stopped { .. }) => Some(true),
                    Err(ApiError::Abandoned { .. }) => Some(false),
                    _ => None,
                });
                answer_of(result)
            })
            .collect(),
        Err(why) => batch
            .calls
            .iter()
            .map(|_| {
                stopped.push(batch.halted.then_some(true));
                (Answer::NotSent(why.clone()), Duration::ZERO)
            })
            .collect(),
    };
    let lap = Instant::now();
    let now = Utc::now();
    let mut unsure = Vec::new();
    for (((match_id, p, t), (answer, wait)), stopped) in
        batch.calls.into_iter().zip(answers).zip(stopped)
    {
        match stopped {
            Some(true) => {
                // Never sent: the intent is closed as skipped, the pair deferred.
                let why = match &answer {
                    Answer::NotSent(why) => why.clone(),
                    _ => "not called: the run is stopping".to_owned(),
                };
                let fate = Fate::Skipped { why };
                write_fate(db, run, match_id, &fate, None, now).await?;
                done.deferred.push((p.id, t.id));
                continue;
            }
            Some(false) => {
                tracing::warn!(payment = %p.id, transaction = %t.id, match_id,
                    "reconcile call abandoned in flight on a stop; the next run settles its intent");
                done.abandoned += 1;
                continue;
            }
            None => {}
        }
        match &answer {
            Answer::Applied(status) => {
                tracing::info!(payment = %p.id, transaction = %t.id, amount = %p.amount, "reconciled");
                done.reconciled.push(reconciled_row(&p, &t, now));
                done.confirmed.push((match_id, p.id, t.id, status.clone()));
            }
            Answer::NotSent(why) => {
                let fate = Fate::Skipped { why: why.clone() };
                write_fate(db, run, match_id, &fate, None, now).await?;
                done.not.push(NotReconciled::both(p.id, t.id, why.clone()));
            }
            _ => unsure.push(((match_id, p, t), answer, wait)),
        }
    }
    if !done.confirmed.is_empty() {
        let batch = done.confirmed.clone();
        db.call(move |s| s.mark_reconciled(&batch, "ok", run, now))
            .await?;
    }
    // The unsure ones, side by side: each is re-read, settled, and sent again while the
    // provider did not process it and the pair is still confident. Their requests hold
    // permits of `sem`; the tasks themselves do not (a task holding a permit while its
    // requests wait for one could starve them all).
    let c = client.clone();
    let (db2, sem2) = (db.clone(), sem.clone());
    let unbounded = Arc::new(Semaphore::new(unsure.len().max(1)));
    let settled = bounded(unsure, &unbounded, move |(pair, answer, wait)| {
        let (c, db, sem) = (c.clone(), db2.clone(), sem2.clone());
        async move { settle_unsure(&c, &db, &sem, run, pair, answer, wait, uniqueness).await }
    })
    .await;
    for s in settled {
        let s = match s {
            Ok(s) => match s? {
                Some(s) => s,
                None => {
                    done.abandoned += 1;
                    continue;
                }
            },
            // A settling task that failed leaves its intent open: the next run settles it.
            Err(e) => {
                tracing::error!(error = %e, "a reconcile outcome could not be settled");
                continue;
            }
        };
        done.calls += s.resent;
        if let Some(why) = s.stop {
            done.stop.get_or_insert(why);
        }
        match s.fate {
            Fate::Reconciled { .. } => done.reconciled.push(s.row),
            Fate::Vanished => {
                done.vanished.push(s.row.payment_id.clone());
                done.not.extend(s.not);
            }
            _ => done.not.extend(s.not),
        }
    }
    done.spent.settles = lap.elapsed();
    Ok(done)
}

/// What became of one unsure call.
struct SettledCall {
    fate: Fate,
    row: Reconciled,
    not: Option<NotReconciled>,
    resent: u64,
    stop: Option<String>,
}

/// Settles one call whose answer did not say for sure: re-read both sides, decide, and
/// send it again (up to [`MAX_SENDS`] in all) while the provider did not process it and
/// the pair is still confident. The intent stays committed throughout: it is the same
/// call, made again. `None` when a stop came first: nothing more is read or sent, and
/// the intent is left for the next run to settle, as after a kill.
#[allow(clippy::too_many_arguments)]
async fn settle_unsure(
    client: &Arc<Client>,
    db: &SharedStore,
    sem: &Arc<Semaphore>,
    run: RunId,
    (match_id, p, t): Call,
    mut answer: Answer,
    mut wait: Duration,
    uniqueness: Uniqueness,
) -> Result<Option<SettledCall>, StoreError> {
    let mut sends = 1;
    let mut resent = 0;
    let mut stop = None;
    let left = |why: &str| {
        tracing::warn!(payment = %p.id, transaction = %t.id, match_id, why,
            "reconcile outcome not settled on a stop; the next run settles its intent");
        Ok(None)
    };
    loop {
        if let Answer::Lost(e) = &answer {
            tracing::warn!(payment = %p.id, transaction = %t.id, error = %e, "reconcile answer lost; re-reading both sides");
        }
        if !wait.is_zero() {
            // The wait the provider asked for ends at once on a stop.
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = client_stop(client) => {}
            }
        }
        if let Some(why) = client.stop_requested() {
            return left(why);
        }
        let target = vec![(p.id.clone(), t.iban.clone(), t.id.clone(), t.booked_at)];
        let r = reread_pairs(client, sem, target)
            .await
            .pop()
            .unwrap_or_else(|| Reread {
                payment: Read::Failed("no read".into()),
                credit: Read::Failed("no read".into()),
                instant: Arc::from(Vec::new()),
                values: Arc::from(Vec::new()),
            });
        if let Some(why) = client.stop_requested() {
            // Re-reads a stop cut short prove nothing either way.
            return left(why);
        }
        let (rp, rt) = (&r.payment, &r.credit);
        let mut fate = fate::settle(&answer, (&p.id, &t.id), &value(rp), &value(rt));
        // A call sent again must still be confident on what the re-reads show.
        let mut twins = Vec::new();
        if fate == Fate::CallAgain {
            let others = other_open_credits(&p, &t.id, &r.values).cloned().collect();
            let held = held_among(db, others, uniqueness).await?;
            let check = check((&p, &t), &r, &held, uniqueness, Utc::now());
            if check != Check::Call || sends >= MAX_SENDS {
                fate = Fate::NotApplied {
                    why: match check {
                        Check::DontCall { why, .. } => why,
                        Check::Ambiguous { why, twins: found } => {
                            twins = found;
                            why
                        }
                        Check::Call => format!("not processed after {sends} attempt(s)"),
                    },
                };
            }
        }
        store_settled_reads(db, run, &p.id, &fate, (rp, rt)).await?;
        if !twins.is_empty() {
            let records = twin_records(&r.instant, &twins);
            store_reads(db, run, Vec::new(), records, Vec::new()).await?;
        }
        if fate == Fate::CallAgain {
            sends += 1;
            resent += 1;
            let result = {
                // The semaphore is never closed, so a permit always comes.
                let _permit = sem.acquire().await;
                client.reconcile(&p.id, &t.id, &t.iban).await
            };
            if let Err(ApiError::Stopped { why, .. } | ApiError::Abandoned { why, .. }) = &result {
                return left(why);
            }
            (answer, wait) = answer_of(result);
            if let Answer::NotSent(why) = &answer {
                stop = Some(why.clone());
            }
            if let Answer::Applied(_) = answer {
                // Applied on a later send: settle without re-reading.
                let fate = fate::settle(&answer, (&p.id, &t.id), &Read::Gone, &Read::Gone);
                return finish(db, run, match_id, (&p, &t), fate, rt, resent, stop)
                    .await
                    .map(Some);
            }
            if let Answer::NotSent(_) = answer {
                let fate = fate::settle(&answer, (&p.id, &t.id), &Read::Gone, &Read::Gone);
                return finish(db, run, match_id, (&p, &t), fate, rt, resent, stop)
                    .await
                    .map(Some);
            }
            continue;
        }
        let payment_status = match rp {
            Read::Found(r) => Some(r.value.status.clone()),
            _ => None,
        };
        tracing::info!(payment = %p.id, transaction = %t.id, fate = ?fate, "reconcile settled");
        write_fate(db, run, match_id, &fate, payment_status, Utc::now()).await?;
        let mut settled = finish_written((&p, &t), fate, rt, resent, stop)?;
        // Not sent again because other credits fit the payment too: all are ambiguous.
        if let Some(not) = &mut settled.not {
            not.twins = twins;
        }
        return Ok(Some(settled));
    }
}

/// Resolves once the client's run is asked to stop.
async fn client_stop(client: &Client) {
    client.stopping().await
}

/// Writes a fate decided without re-reads (applied or not sent) and builds its result.
#[allow(clippy::too_many_arguments)]
async fn finish(
    db: &SharedStore,
    run: RunId,
    match_id: i64,
    pair: (&Payment, &BankTransaction),
    fate: Fate,
    credit: &Read<Record<BankTransaction>>,
    resent: u64,
    stop: Option<String>,
) -> Result<SettledCall, StoreError> {
    write_fate(db, run, match_id, &fate, None, Utc::now()).await?;
    finish_written(pair, fate, credit, resent, stop)
}

fn finish_written(
    (p, t): (&Payment, &BankTransaction),
    fate: Fate,
    credit: &Read<Record<BankTransaction>>,
    resent: u64,
    stop: Option<String>,
) -> Result<SettledCall, StoreError> {
    let credit = match &fate {
        // Applied on a later send: the credit is tied now, whatever the earlier read saw.
        Fate::Reconciled { .. } => Read::Gone,
        _ => value(credit),
    };
    let (payment_detail, credit_detail) = fate::report_of(&fate, &credit);
    let not = (payment_detail.is_some() || credit_detail.is_some()).then(|| NotReconciled {
        payment: p.id.clone(),
        transaction: t.id.clone(),
        payment_detail,
        credit_detail,
        twins: Vec::new(),
    });
    Ok(SettledCall {
        row: reconciled_row(p, t, Utc::now()),
        fate,
        not,
        resent,
        stop,
    })
}

fn reconciled_row(p: &Payment, t: &BankTransaction, at: DateTime<Utc>) -> Reconciled {
    Reconciled {
        payment_id: p.id.clone(),
        transaction_id: t.id.clone(),
        amount: p.amount.clone(),
        concept: p.concept.clone(),
        reconciled_at: at,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClientConfig;
    use crate::domain::{Concept, Currency, Direction, Iban, Money};
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
                base_url: crate::api::BaseUrl::parse("http://127.0.0.1:9/api").unwrap(),
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

        let answered = call(&client, vec![(id, payment, transaction)], &sem, None, false).await;
        assert!(
            answered
                .stop
                .as_deref()
                .is_some_and(|s| s.contains("deadline"))
        );
        let recorded = record(
            &client,
            &db,
            run,
            answered,
            &sem,
            Uniqueness::Matched(Default::default()),
        )
        .await
        .unwrap();

        assert!(recorded.reconciled.is_empty() && recorded.confirmed.is_empty());
        assert_eq!(recorded.not.len(), 1);
        assert!(recorded.not[0].payment_detail.is_some());
        assert!(
            recorded.not[0]
                .payment_detail
                .as_deref()
                .is_some_and(|d| d.starts_with("not called:"))
        );
        let store = db.lock();
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
}
