//! The desk commands' I/O: take the run lock, read what the pure decisions need from the
//! store, record what they decide, and make an approve's call through the job's own
//! reconcile pipeline. Each returns the text to print, or a [`DeskError`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::apply::{self, Place, Step};
use super::approve::{self, Facts, Hold, Verdict};
use super::dismiss::{self, Change};
use super::review;
use super::{Action, DeskError, ItemRef, Refusal};
use crate::config::Settings;
use crate::database::{Held, OpenError};
use crate::domain::{BankTransaction, BankTxId, OfframpId, Payment, PaymentId};
use crate::reconcile;
use crate::store::{MatchRow, MatchState, NewDecision, RunEnd, SharedStore, Store};

/// Takes the run lock (a run in progress: [`DeskError::Locked`], nothing done) and opens
/// the store. The lock is returned first so that the caller drops it last.
pub fn open(settings: &Settings) -> Result<(Held, Store), DeskError> {
    match crate::database::open_locked(&settings.database, Utc::now()) {
        Ok(opened) => Ok(opened),
        Err(OpenError::Locked(why)) => Err(DeskError::Locked(why)),
        Err(e) => Err(anyhow::Error::from(e).into()),
    }
}

fn db(e: crate::store::StoreError) -> DeskError {
    DeskError::Failed(anyhow::Error::from(e))
}

fn hold(m: MatchRow) -> Hold {
    Hold {
        match_id: m.id,
        payment: m.payment_id,
        transaction: m.transaction_id,
        state: m.state.as_str().to_owned(),
    }
}

/// Checks an approve against the store ([`approve::check`]).
pub fn check_approve(
    store: &Store,
    payment: &PaymentId,
    transaction: &BankTxId,
) -> Result<Verdict, DeskError> {
    let p = store.payments_by_ids(&[payment]).map_err(db)?.pop();
    let t = store.transactions_by_ids(&[transaction]).map_err(db)?.pop();
    let ph = store.hold_of_payment(payment).map_err(db)?.map(hold);
    let th = store
        .hold_of_transaction(transaction)
        .map_err(db)?
        .map(hold);
    let facts = Facts {
        payment: p.as_ref(),
        credit: t.as_ref(),
        payment_hold: ph.as_ref(),
        credit_hold: th.as_ref(),
    };
    Ok(approve::check(payment, transaction, &facts)?)
}

/// A pair a person approved, ready to be called.
pub struct Approved {
    pub payment: Payment,
    pub credit: BankTransaction,
    pub by: String,
    pub note: Option<String>,
    /// `cli`, or `apply <file>:<line>` (`apply <file>:<sheet>:<row>` for a workbook).
    pub source: String,
}

/// What became of one approved pair.
#[derive(Debug, Clone)]
pub struct Called {
    pub payment: PaymentId,
    pub transaction: BankTxId,
    pub decision: i64,
    pub match_id: Option<i64>,
    pub reconciled: bool,
    /// The answer was lost and the re-reads could not settle it: the match still holds
    /// both sides, and the next run settles it.
    pub in_doubt: bool,
    /// `reconciled`, or `not reconciled: why`.
    pub outcome: String,
}

/// Calls approved pairs exactly as the job calls its own confident ones: under a run of
/// their own (`sync_mode = 'approve'`), each decision is recorded first, then
/// [`reconcile::execute`] re-reads both sides, commits the intent durably, calls, and
/// settles with [`crate::matching::fate`]. A process killed mid-call leaves an intent the
/// next run's recovery settles, and a decision row without an outcome.
pub async fn call_approved(
    settings: &Settings,
    store: Store,
    approved: Vec<Approved>,
    now: DateTime<Utc>,
) -> Result<(Store, Vec<Called>), DeskError> {
    let mut store = store;
    if approved.is_empty() {
        return Ok((store, Vec::new()));
    }
    let run = store.begin_run(now, false, "approve").map_err(db)?;
    let items: Vec<ItemRef> = approved
        .iter()
        .map(|a| ItemRef::Payment(a.payment.id.clone()))
        .collect();
    let rows: Vec<NewDecision<'_>> = approved
        .iter()
        .zip(&items)
        .map(|(a, item)| NewDecision {
            at: now,
            by: &a.by,
            action: Action::Approve,
            item,
            other: Some(&a.credit.id),
            note: a.note.as_deref(),
            source: &a.source,
            run_id: Some(run),
            outcome: None,
        })
        .collect();
    let ids = store.insert_decisions(&rows).map_err(db)?;
    let pairs: Vec<(Payment, BankTransaction)> = approved
        .iter()
        .map(|a| (a.payment.clone(), a.credit.clone()))
        .collect();
    let client = Arc::new(
        crate::api::Client::from_settings(&settings.cryptopocket)
            .map_err(|e| anyhow::Error::from(e).context("cannot create the CryptoPocket client"))?,
    );
    let shared = SharedStore::new(store);
    let executed = reconcile::execute(
        &client,
        &shared,
        run,
        pairs,
        false,
        settings.cryptopocket.concurrency,
        // The person decided uniqueness and concept (rules §4).
        crate::matching::fate::Uniqueness::Approved,
    )
    .await;
    // Every task of the calls is awaited by now; a handle still held elsewhere would be
    // a task left running. An SQLite file can be opened again (the lock file is held);
    // a PostgreSQL session cannot be (the run lock is the session's).
    let mut store = match shared.into_inner() {
        Some(s) => s,
        None => match settings.database.sqlite_path() {
            Some(path) => Store::open(path).map_err(db)?,
            None => {
                return Err(anyhow::anyhow!(
                    "the approve's calls still hold the database session; run cp-recon status to see what was recorded"
                )
                .into());
            }
        },
    };
    // What the client did is counted whatever the calls came to: an approve that fails
    // after its calls records how many it made.
    let stats = &client.stats;
    let mut end = RunEnd {
        reconcile_calls: stats.reconcile_calls.load(Ordering::Relaxed),
        api_requests: stats.requests.load(Ordering::Relaxed),
        api_errors: stats.errors.load(Ordering::Relaxed),
        ..RunEnd::default()
    };
    let out = match executed {
        Ok(o) => o,
        Err(e) => {
            end.outcome = "failed".into();
            end.error = Some(e.to_string());
            store.finish_run(run, Utc::now(), &end).map_err(db)?;
            return Err(anyhow::Error::from(e)
                .context("the approve's reconcile step failed")
                .into());
        }
    };
    let matches: HashMap<PaymentId, (i64, bool)> = store
        .matches_of_run(run)
        .map_err(db)?
        .into_iter()
        .filter(|m| m.run_id == run)
        .map(|m| {
            let in_doubt = matches!(m.state, MatchState::Intent | MatchState::Unknown);
            (m.payment_id, (m.id, in_doubt))
        })
        .collect();
    let reconciled: HashSet<&PaymentId> = out.reconciled.iter().map(|r| &r.payment_id).collect();
    let mut called = Vec::with_capacity(approved.len());
    for (a, id) in approved.iter().zip(ids) {
        let pid = &a.payment.id;
        let ok = reconciled.contains(pid);
        let outcome = if ok {
            "reconciled".to_owned()
        } else {
            let why = out
                .not_reconciled
                .iter()
                .find(|n| &n.payment == pid)
                .and_then(|n| n.payment_detail.clone().or(n.credit_detail.clone()))
                .or_else(|| {
                    out.vanished
                        .contains(pid)
                        .then(|| "payment_not_found (gone at the provider)".to_owned())
                })
                .unwrap_or_else(|| "no answer".to_owned());
            format!("not reconciled: {why}")
        };
        let (match_id, in_doubt) = match matches.get(pid) {
            Some((m, doubt)) => (Some(*m), *doubt),
            None => (None, false),
        };
        // One in doubt gets its outcome from the run that settles its match.
        if !in_doubt {
            store
                .set_decision_outcome(id, &outcome, match_id)
                .map_err(db)?;
        }
        called.push(Called {
            payment: pid.clone(),
            transaction: a.credit.id.clone(),
            decision: id,
            match_id,
            reconciled: ok,
            in_doubt,
            outcome,
        });
    }
    end.outcome = "completed".into();
    end.reconciled = out.reconciled.len() as u64;
    store.finish_run(run, Utc::now(), &end).map_err(db)?;
    Ok((store, called))
}

/// `cp-recon approve`.
pub async fn approve(
    settings: &Settings,
    payment: &PaymentId,
    transaction: &BankTxId,
    by: &str,
    note: Option<&str>,
    dry_run: bool,
) -> Result<String, DeskError> {
    if by.trim().is_empty() {
        return Err(Refusal::NobodyDecides.into());
    }
    let (_lock, store) = open(settings)?;
    let (p, t) = match check_approve(&store, payment, transaction)? {
        Verdict::AlreadyDone { match_id } => {
            return Ok(format!(
                "payment {payment} is already reconciled with bank transaction {transaction} (match {match_id}); nothing done"
            ));
        }
        Verdict::Call(pair) => *pair,
    };
    if dry_run {
        return Ok(format!(
            "would reconcile payment {} with bank transaction {} ({}): both are re-read first and the call made only if the provider still shows them as stored; nothing called (--dry-run)",
            p.id, t.id, p.amount
        ));
    }
    let amount = p.amount.clone();
    let approved = vec![Approved {
        payment: p,
        credit: t,
        by: by.trim().to_owned(),
        note: note.map(str::to_owned),
        source: "cli".into(),
    }];
    let (_store, called) = call_approved(settings, store, approved, Utc::now()).await?;
    let c = called
        .into_iter()
        .next()
        .context("internal: the approve reported nothing")?;
    if c.reconciled {
        return Ok(format!(
            "reconciled payment {} with bank transaction {} ({amount}); decision {}, match {}",
            c.payment,
            c.transaction,
            c.decision,
            c.match_id.map_or("-".into(), |m| m.to_string())
        ));
    }
    if c.in_doubt {
        return Err(anyhow::anyhow!(
            "payment {} with bank transaction {}: {}; the next run settles it from fresh reads (never calling again)",
            c.payment,
            c.transaction,
            c.outcome
        )
        .into());
    }
    Err(Refusal::NotReconciled(format!(
        "payment {} with bank transaction {}: {}",
        c.payment, c.transaction, c.outcome
    ))
    .into())
}

/// `cp-recon dismiss` and `cp-recon reopen`.
pub fn dismiss_or_reopen(
    settings: &Settings,
    action: Action,
    id: &str,
    by: &str,
    note: Option<&str>,
) -> Result<String, DeskError> {
    let (_lock, mut store) = open(settings)?;
    let item = dismiss::resolve(id, store.items_named(id).map_err(db)?)?;
    let all = store.dismissals().map_err(db)?;
    let in_force = super::dismissed(&all);
    match dismiss::check(action, &item, by, note, in_force.get(&item).copied())? {
        Change::Nothing(why) => Ok(format!("{why}; nothing done")),
        Change::Record => {
            let outcome = match action {
                Action::Dismiss => "dismissed",
                _ => "reopened",
            };
            let note = note.map(str::trim).filter(|n| !n.is_empty());
            let ids = store
                .insert_decisions(&[NewDecision {
                    at: Utc::now(),
                    by: by.trim(),
                    action,
                    item: &item,
                    other: None,
                    note,
                    source: "cli",
                    run_id: None,
                    outcome: Some(outcome),
                }])
                .map_err(db)?;
            let then = match action {
                Action::Dismiss => "it is not reported until reopened",
                _ => "it is reported again from the next run",
            };
            Ok(format!(
                "{outcome} {item} (decision {}); {then}",
                ids.first().copied().unwrap_or_default()
            ))
        }
    }
}

/// The output formats of `review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// `cp-recon review`.
pub fn review(
    settings: &Settings,
    reason: Option<&str>,
    format: Format,
) -> Result<String, DeskError> {
    let reason = reason.map(review::check_reason).transpose()?;
    let (_lock, store) = open(settings)?;
    let Some(run) = store.latest_completed_run().map_err(db)? else {
        return Ok("no completed run yet: nothing to review".into());
    };
    let run_at = store
        .run(run)
        .map_err(db)?
        .and_then(|r| DateTime::parse_from_rfc3339(&r.started_at).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let findings = store.findings_of_run(run).map_err(db)?;
    let first_seen = store.first_seen_of_run(run).map_err(db)?;
    let (payments, transactions, offramps) = records_of(&store, &findings)?;
    let all = store.dismissals().map_err(db)?;
    let dismissed: HashSet<ItemRef> = super::dismissed(&all).into_keys().collect();
    let mut reconciled = HashSet::new();
    for p in payments.keys() {
        if store
            .hold_of_payment(p)
            .map_err(db)?
            .is_some_and(|m| m.state == MatchState::Reconciled)
        {
            reconciled.insert(ItemRef::Payment(p.clone()));
        }
    }
    for t in transactions.keys() {
        if store
            .hold_of_transaction(t)
            .map_err(db)?
            .is_some_and(|m| m.state == MatchState::Reconciled)
        {
            reconciled.insert(ItemRef::Transaction(t.clone()));
        }
    }
    let r = review::items(&review::Input {
        findings: &findings,
        payments: &payments,
        transactions: &transactions,
        offramps: &offramps,
        dismissed: &dismissed,
        reconciled: &reconciled,
        first_seen: &first_seen,
        reason,
        now: Utc::now(),
    });
    Ok(match format {
        Format::Table => review::table(run, run_at, &r, settings.schedule.timezone),
        Format::Csv => review::csv(&r).context("cannot write CSV")?,
        Format::Json => review::json(run, &r),
    })
}

type Records = (
    HashMap<PaymentId, Payment>,
    HashMap<BankTxId, BankTransaction>,
    HashMap<OfframpId, crate::domain::Offramp>,
);

/// The records the findings name, and those of their candidates.
fn records_of(store: &Store, findings: &[crate::store::FindingRow]) -> Result<Records, DeskError> {
    let mut pids = Vec::new();
    let mut tids = Vec::new();
    let mut oids = Vec::new();
    for f in findings {
        match f.kind.as_str() {
            "payment" => {
                pids.extend(PaymentId::parse(&f.item_id).ok());
                tids.extend(f.candidates.iter().filter_map(|c| BankTxId::parse(c).ok()));
            }
            "transaction" => {
                tids.extend(BankTxId::parse(&f.item_id).ok());
                pids.extend(f.candidates.iter().filter_map(|c| PaymentId::parse(c).ok()));
            }
            "offramp" => oids.extend(OfframpId::parse(&f.item_id).ok()),
            _ => {}
        }
    }
    let payments = store
        .payments_by_ids(&pids.iter().collect::<Vec<_>>())
        .map_err(db)?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let transactions = store
        .transactions_by_ids(&tids.iter().collect::<Vec<_>>())
        .map_err(db)?
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let offramps = store
        .offramps_by_ids(&oids.iter().collect::<Vec<_>>())
        .map_err(db)?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    Ok((payments, transactions, offramps))
}

/// `cp-recon apply`: every row checked first ([`apply::plan`]); any invalid row and
/// nothing is applied. Dismissals and reopens are recorded in one transaction, then the
/// approves are called together through the job's pipeline ([`call_approved`]).
pub async fn apply(
    settings: &Settings,
    file: &std::path::Path,
    by: &str,
    dry_run: bool,
) -> Result<String, DeskError> {
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let invalid = |errors: Vec<String>| DeskError::InvalidFile {
        file: file.display().to_string(),
        errors,
    };
    let (_lock, mut store) = open(settings)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let extension = file.extension().and_then(|e| e.to_str());
    let sheets = apply::read(&bytes, extension).map_err(invalid)?;
    let facts = apply_facts(&store, &sheets)?;
    let plan = apply::plan(&sheets, &facts, by).map_err(invalid)?;
    let mut lines: Vec<(Place, String)> = plan
        .unchanged
        .iter()
        .map(|(at, why)| (at.clone(), format!("nothing to do: {why}")))
        .collect();
    if dry_run {
        for step in &plan.steps {
            lines.push(match step {
                Step::Approve {
                    at,
                    payment,
                    credit,
                    ..
                } => (
                    at.clone(),
                    format!(
                        "would approve payment {} with bank transaction {} ({})",
                        payment.id, credit.id, payment.amount
                    ),
                ),
                Step::Record {
                    at, action, item, ..
                } => (at.clone(), format!("would {} {item}", action.as_str())),
            });
        }
        return Ok(apply_text(&name, lines, "nothing applied (--dry-run)"));
    }
    let now = Utc::now();
    let by = by.trim();
    let sources: Vec<(Place, String)> = plan
        .steps
        .iter()
        .map(|s| {
            let at = match s {
                Step::Approve { at, .. } | Step::Record { at, .. } => at,
            };
            (at.clone(), format!("apply {name}:{}", at.tag()))
        })
        .collect();
    let source_of = |at: &Place| {
        sources
            .iter()
            .find(|(l, _)| l == at)
            .map_or("apply", |(_, s)| s.as_str())
    };
    let mut records = Vec::new();
    let mut approved = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Record {
                at,
                action,
                item,
                note,
            } => records.push((at, *action, item, note.as_deref())),
            Step::Approve {
                at,
                payment,
                credit,
                note,
            } => approved.push((
                at.clone(),
                Approved {
                    payment: (**payment).clone(),
                    credit: (**credit).clone(),
                    by: by.to_owned(),
                    note: note.clone(),
                    source: source_of(at).to_owned(),
                },
            )),
        }
    }
    let rows: Vec<NewDecision<'_>> = records
        .iter()
        .map(|(at, action, item, note)| NewDecision {
            at: now,
            by,
            action: *action,
            item,
            other: None,
            note: *note,
            source: source_of(at),
            run_id: None,
            outcome: Some(match action {
                Action::Dismiss => "dismissed",
                _ => "reopened",
            }),
        })
        .collect();
    store.insert_decisions(&rows).map_err(db)?;
    for (at, action, item, _) in &records {
        let done = match action {
            Action::Dismiss => "dismissed",
            _ => "reopened",
        };
        lines.push(((*at).clone(), format!("{done} {item}")));
    }
    let (approve_lines, pairs): (Vec<Place>, Vec<Approved>) = approved.into_iter().unzip();
    let (_store, called) = call_approved(settings, store, pairs, now).await?;
    let mut failed = 0;
    for (line, c) in approve_lines.into_iter().zip(called) {
        if !c.reconciled {
            failed += 1;
        }
        lines.push((
            line,
            format!(
                "approve payment {} with bank transaction {}: {}",
                c.payment, c.transaction, c.outcome
            ),
        ));
    }
    let end = if plan.steps.is_empty() {
        "nothing applied: every decision in the file is already in place"
    } else {
        "applied"
    };
    let text = apply_text(&name, lines, end);
    if failed > 0 {
        return Err(DeskError::NotAllApplied(format!(
            "{text}\n{failed} approve(s) not reconciled: see above"
        )));
    }
    Ok(text)
}

fn apply_text(name: &str, mut lines: Vec<(Place, String)>, end: &str) -> String {
    lines.sort_by(|(a, _), (b, _)| a.cmp(b));
    let mut out = String::new();
    for (at, text) in &lines {
        out.push_str(&format!("{name}:{}: {text}\n", at.tag()));
    }
    if lines.is_empty() {
        out.push_str(&format!("{name}: no row has an action\n"));
    }
    out.push_str(end);
    out
}

/// What the store holds about every id the sheets name.
fn apply_facts(store: &Store, sheets: &[apply::Sheet]) -> Result<apply::Facts, DeskError> {
    let (pids, tids, oids) = apply::ids(sheets);
    let mut facts = apply::Facts::default();
    for p in store
        .payments_by_ids(&pids.iter().collect::<Vec<_>>())
        .map_err(db)?
    {
        if let Some(h) = store.hold_of_payment(&p.id).map_err(db)? {
            facts.payment_holds.insert(p.id.clone(), hold(h));
        }
        facts.payments.insert(p.id.clone(), p);
    }
    for t in store
        .transactions_by_ids(&tids.iter().collect::<Vec<_>>())
        .map_err(db)?
    {
        if let Some(h) = store.hold_of_transaction(&t.id).map_err(db)? {
            facts.credit_holds.insert(t.id.clone(), hold(h));
        }
        facts.transactions.insert(t.id.clone(), t);
    }
    facts.offramps = store
        .offramps_by_ids(&oids.iter().collect::<Vec<_>>())
        .map_err(db)?
        .into_iter()
        .map(|o| o.id)
        .collect();
    let all = store.dismissals().map_err(db)?;
    facts.dismissed = super::dismissed(&all)
        .into_iter()
        .map(|(k, d)| (k, d.clone()))
        .collect();
    Ok(facts)
}

/// `cp-recon history`: the life of an item ([`super::history::timeline`]).
pub fn history(settings: &Settings, id: &str) -> Result<String, DeskError> {
    use super::history::{self, RunFact};
    let (_lock, store) = open(settings)?;
    let item = dismiss::resolve(id, store.items_named(id).map_err(db)?)?;
    let first_seen = store.first_seen(&item).map_err(db)?;
    let findings = store.findings_about(item.kind(), item.id()).map_err(db)?;
    let decisions = store.decisions_about(item.id()).map_err(db)?;
    let matches = match &item {
        ItemRef::Payment(_) | ItemRef::Transaction(_) => {
            store.matches_naming(item.id()).map_err(db)?
        }
        _ => Vec::new(),
    };
    let mut runs = HashMap::new();
    let ids = findings
        .iter()
        .map(|f| f.run_id)
        .chain(matches.iter().map(|m| m.run_id));
    let (lo, hi) = ids.fold((i64::MAX, i64::MIN), |(lo, hi), r| (lo.min(r), hi.max(r)));
    for run in lo..=hi {
        if let Some(r) = store.run(run).map_err(db)?
            && let Ok(at) = DateTime::parse_from_rfc3339(&r.started_at)
        {
            runs.insert(
                run,
                RunFact {
                    started_at: at.with_timezone(&Utc),
                    mode: r.sync_mode,
                },
            );
        }
    }
    let entries = history::timeline(&history::Input {
        item: &item,
        first_seen,
        findings: &findings,
        decisions: &decisions,
        matches: &matches,
        runs: &runs,
    });
    Ok(history::render(&item, &entries, settings.schedule.timezone))
}
