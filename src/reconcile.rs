//! Reconcile, exactly once (reconciliation rules §3.6 and §5).
//!
//! For each confident pair: re-read the payment (it must still be `pending_bank`), commit
//! the intent, call `POST /banking/reconcile`, record the outcome. A lost answer is never
//! retried blindly: the payment is re-read and the intent is settled from what it says,
//! now or by the next run ([`recover`]).

use chrono::{DateTime, Utc};

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

/// Calls for each confident pair. `pairs` carry the records as matched.
pub async fn execute(
    client: &Client,
    db: &SharedStore,
    run: RunId,
    pairs: Vec<(Payment, BankTransaction)>,
    dry_run: bool,
) -> Result<Outcome, StoreError> {
    let mut out = Outcome::default();
    let mut stop: Option<String> = None;
    for (p, t) in pairs {
        if dry_run {
            let now = Utc::now();
            let (pp, tt) = (p.clone(), t.clone());
            db.call(move |s| {
                s.insert_dry_run(&NewMatch {
                    run_id: run,
                    payment: &pp.id,
                    transaction: &tt.id,
                    iban: &tt.iban,
                    amount: &pp.amount,
                    concept: pp.concept.as_ref(),
                    now,
                })
            })
            .await?;
            out.dry_run.push((p.id, t.id));
            continue;
        }
        if let Some(why) = &stop {
            out.not_reconciled.push(NotReconciled {
                payment: p.id,
                transaction: t.id,
                detail: why.clone(),
                payment_open: true,
            });
            continue;
        }
        // Rules §3.6: right before the call, the payment must still be pending_bank.
        match client.payment(&p.id).await {
            Ok(Some(rec)) if !rec.value.status.is_open() => {
                let status = rec.value.status.clone();
                db.call(move |s| s.upsert_payment(run, Utc::now(), &rec))
                    .await?;
                tracing::info!(payment = %p.id, %status, "payment no longer pending_bank; not reconciled");
                out.not_reconciled.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    detail: format!("payment_not_pending (now {status})"),
                    payment_open: false,
                });
                continue;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                out.not_reconciled.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    detail: "payment_not_found".into(),
                    payment_open: false,
                });
                continue;
            }
            Err(e) => {
                if matches!(e, ApiError::Auth { .. } | ApiError::Deadline { .. }) {
                    stop = Some(format!("not called: {e}"));
                }
                out.not_reconciled.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    detail: format!("re-read failed: {e}"),
                    payment_open: true,
                });
                continue;
            }
        }
        // The intent is committed before the call.
        let now = Utc::now();
        let (pp, tt) = (p.clone(), t.clone());
        let intent = db
            .call(move |s| {
                s.insert_intent(&NewMatch {
                    run_id: run,
                    payment: &pp.id,
                    transaction: &tt.id,
                    iban: &tt.iban,
                    amount: &pp.amount,
                    concept: pp.concept.as_ref(),
                    now,
                })
            })
            .await;
        let match_id = match intent {
            Ok(id) => id,
            Err(StoreError::AlreadyTied { .. }) => {
                out.not_reconciled.push(NotReconciled {
                    payment: p.id,
                    transaction: t.id,
                    detail: "already tied by an earlier run".into(),
                    payment_open: true,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        out.calls += 1;
        let answer = client.reconcile(&p.id, &t.id, &t.iban).await;
        if let Err(ApiError::Auth { .. }) = &answer {
            stop = Some("not called: authentication rejected".into());
        }
        let pair = Pair {
            payment: &p.id,
            transaction: &t.id,
            amount: &p.amount,
            concept: p.concept.as_ref(),
        };
        let settled = settle(client, db, run, match_id, pair, answer).await?;
        match settled {
            Settled::Reconciled(r) => out.reconciled.push(r),
            Settled::Not(n) => out.not_reconciled.push(n),
        }
    }
    Ok(out)
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
            let state = moved_state(&status);
            settle_row(db, &m, state, None, Some(status.as_str()), run).await?;
            if state == MatchState::Reconciled {
                let (pid, tid) = (m.payment_id.clone(), m.transaction_id.clone());
                let st = status.clone();
                db.call(move |s| s.mark_reconciled(&pid, &tid, &st)).await?;
                out.reconciled.push(Reconciled {
                    payment_id: m.payment_id.clone(),
                    transaction_id: m.transaction_id.clone(),
                    amount: m.amount.clone(),
                    concept: m.concept.clone(),
                    reconciled_at: Utc::now(),
                });
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
        let db = db.clone();
        async move {
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
            done(
                MatchState::Reconciled,
                None,
                Some("ok".into()),
                Some(payment_status.as_str().to_owned()),
            )
            .await?;
            let (pid, tid) = (pid_ref.clone(), tid_ref.clone());
            db.call(move |s| s.mark_reconciled(&pid, &tid, &payment_status))
                .await?;
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
                    let state = moved_state(&s);
                    done(
                        state,
                        None,
                        Some(format!("lost: {e}")),
                        Some(s.as_str().to_owned()),
                    )
                    .await?;
                    if state == MatchState::Reconciled {
                        let (pid, tid) = (pid_ref.clone(), tid_ref.clone());
                        db.call(move |st| st.mark_reconciled(&pid, &tid, &s))
                            .await?;
                        Ok(Settled::Reconciled(reconciled(now)))
                    } else {
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
    let (id, code, status) = (m.id, code.map(str::to_owned), status.map(str::to_owned));
    db.call(move |s| {
        s.settle(
            id,
            &Settlement {
                state,
                provider_code: code.as_deref(),
                provider_answer: Some("settled by re-reading the payment"),
                payment_status: status.as_deref(),
                run,
                now: Utc::now(),
            },
        )
    })
    .await
}
