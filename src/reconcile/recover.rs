//! Recovery, before the sync: intents an earlier run left without an outcome are
//! settled from fresh re-reads of both sides. Nothing is called here.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::{NotReconciled, Outcome, bounded, store_settled_reads, value, write_fate};
use crate::api::Client;
use crate::domain::BankTxId;
use crate::matching::fate::{self, Answer, Fate, Read};
use crate::matching::in_flight::{CallLimits, in_flight_until};
use crate::report::Reconciled;
use crate::store::{MatchRow, MatchState, RunId, SharedStore, StoreError};

/// An intent or a lost answer to settle, with when its credit was booked, if stored.
type Unsettled = (MatchRow, Option<DateTime<Utc>>);

/// Settles, before the sync, intents left without an outcome by a run that died
/// mid-call, and answers lost by an earlier run: both sides are re-read (side by side,
/// `concurrency` at a time) and the fate decided from what they show. It never calls: a
/// pair found not applied is released, and this run's matching decides it again with
/// everything else, so no pair is called twice in one run.
///
/// On a database other hosts share, an intent whose call may still be on its way
/// (`in_flight`: [`CallLimits`] of the client, by the database's clock) is not
/// re-read yet: it stays in doubt, holding its payment and credit, and is reported as
/// waiting; the first run after its bound settles it.
pub async fn recover(
    client: &Arc<Client>,
    db: &SharedStore,
    run: RunId,
    concurrency: usize,
    limits: CallLimits,
) -> Result<Outcome, StoreError> {
    let mut out = Outcome::default();
    let (open, waiting): (Vec<Unsettled>, Vec<_>) = db
        .call(move |s| {
            let mut rows = s.unsettled()?;
            let mut waiting = Vec::new();
            if s.shared_by_hosts() && !rows.is_empty() {
                let now = s.clock()?;
                let bound = limits.bound();
                // Only intents: an `unknown` match's call has ended at the host that
                // wrote it (its answer was lost, and that host re-read both sides
                // after it).
                rows.retain(|m| {
                    let until = (m.state == MatchState::Intent)
                        .then(|| in_flight_until(m.written_at, now, bound))
                        .flatten();
                    if let Some(until) = until {
                        waiting.push((m.payment_id.clone(), m.transaction_id.clone(), until));
                    }
                    until.is_none()
                });
            }
            let ids: Vec<&BankTxId> = rows.iter().map(|m| &m.transaction_id).collect();
            let stored = s.transactions_by_ids(&ids)?;
            let booked: std::collections::HashMap<_, _> =
                stored.into_iter().map(|t| (t.id, t.booked_at)).collect();
            let open = rows
                .into_iter()
                .map(|m| {
                    let at = booked.get(&m.transaction_id).copied();
                    (m, at)
                })
                .collect();
            Ok((open, waiting))
        })
        .await?;
    for (payment, transaction, until) in waiting {
        tracing::warn!(%payment, %transaction, until = %crate::text::wire_time(until),
            "an intent of another run may still have its call on its way; left in doubt");
        out.not_reconciled.push(NotReconciled::both(
            payment,
            transaction,
            format!(
                "in doubt: another run's call may still be on its way; settled by the first run after {}",
                crate::text::wire_time(until)
            ),
        ));
    }
    if open.is_empty() {
        return Ok(out);
    }
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let c = client.clone();
    let reads = bounded(open, &sem, move |(m, booked_at)| {
        let c = c.clone();
        async move {
            tracing::warn!(payment = %m.payment_id, transaction = %m.transaction_id, match_id = m.id,
                "found a reconcile intent without an outcome; re-reading both sides");
            let p = match c.payment(&m.payment_id).await {
                Ok(Some(r)) => Read::Found(r),
                Ok(None) => Read::Gone,
                Err(e) => Read::Failed(e.to_string()),
            };
            let t = match booked_at {
                None => Read::Failed("the credit is not stored".into()),
                Some(at) => match c.transaction(&m.iban, &m.transaction_id, at).await {
                    Ok(Some(r)) => Read::Found(r),
                    Ok(None) => Read::Gone,
                    Err(e) => Read::Failed(e.to_string()),
                },
            };
            (m, p, t)
        }
    })
    .await;
    if let Some(why) = client.stop_requested() {
        // Re-reads a stop cut short prove nothing: every intent stays as it was, for the
        // next run to settle.
        tracing::info!(
            intents = reads.len(),
            why,
            "earlier intents not settled: the run is stopping"
        );
        out.abandoned = reads.len() as u64;
        return Ok(out);
    }
    let now = Utc::now();
    for read in reads {
        let Ok((m, rp, rt)) = read else { continue };
        let fate = fate::settle(
            &Answer::NoAnswer,
            (&m.payment_id, &m.transaction_id),
            &value(&rp),
            &value(&rt),
        );
        store_settled_reads(db, run, &m.payment_id, &fate, (&rp, &rt)).await?;
        let status = match &rp {
            Read::Found(r) => Some(r.value.status.clone()),
            _ => None,
        };
        tracing::info!(payment = %m.payment_id, transaction = %m.transaction_id, fate = ?fate, "earlier intent settled");
        write_fate(db, run, m.id, &fate, status, now).await?;
        match fate {
            Fate::Reconciled { .. } => {
                out.recovered += 1;
                out.reconciled.push(Reconciled {
                    payment_id: m.payment_id.clone(),
                    transaction_id: m.transaction_id.clone(),
                    amount: m.amount.clone(),
                    concept: m.concept.clone(),
                    reconciled_at: now,
                });
            }
            // Still in doubt: the payment competes in this run's matching and is
            // reported with why it waits.
            Fate::Unknown { why } => {
                tracing::error!(payment = %m.payment_id, %why, "cannot settle; the intent stays open");
                out.not_reconciled.push(NotReconciled::both(
                    m.payment_id,
                    m.transaction_id,
                    format!("outcome unknown: {why}"),
                ));
            }
            Fate::Vanished => {
                out.recovered += 1;
                out.vanished.push(m.payment_id);
            }
            // Released: this run's matching decides both sides.
            _ => out.recovered += 1,
        }
    }
    Ok(out)
}
