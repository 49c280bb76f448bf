//! The sync: reads every list from the provider into the store.
//!
//! Pages stream through a bounded channel to one writer that holds the run's store,
//! so network reads overlap with batched writes and memory does not grow with history.
//! A list counts as complete only when every page was read and every item parsed; a run
//! whose lists are not all complete reconciles nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::api::{BadRecord, Client, Record};
use crate::domain::{
    BankAccount, BankTransaction, Iban, Offramp, Payment, PaymentId, PaymentStatus,
};
use crate::store::{ListRead, RunId, SharedStore, Store, StoreError};

mod reader;
use reader::{Kind, Progress, Reader};

/// Full: every list from the beginning. Incremental: from each list's watermark less the
/// overlap, plus every `pending_bank` payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Full,
    Incremental,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub mode: SyncMode,
    pub per_page: u32,
    pub overlap: Duration,
    pub concurrency: usize,
    /// Print pages read per list to stderr (interactive runs).
    pub progress: bool,
    /// Ids of unreadable records a person dismissed (`cp-recon dismiss`): still stored
    /// in `bad_records` and logged, but they no longer make their list incomplete.
    pub waived: Arc<HashSet<String>>,
    /// The matching's booking tolerance and look-back (rules §3.3): an incremental read
    /// of an account's transactions reaches back to every credit that can compete for
    /// an open payment.
    pub booking_tolerance: Duration,
    pub lookback: Duration,
}

/// What the sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub complete: bool,
    pub lists: Vec<ListRead>,
    pub payments: u64,
    pub offramps: u64,
    pub accounts: u64,
    pub transactions: u64,
    pub bad_records: u64,
    pub refreshed: u64,
    /// Stored `pending_bank` payments the provider no longer knows, marked `vanished`.
    pub vanished: Vec<PaymentId>,
    /// The first error of each incomplete list, for the run's error text.
    pub errors: Vec<ListError>,
}

/// Why a list was not read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    pub list: String,
    pub cause: String,
}

impl ListError {
    fn new(list: &str, cause: impl ToString) -> Self {
        Self {
            list: list.to_owned(),
            cause: cause.to_string(),
        }
    }
}

impl SyncReport {
    /// Why lists were not read in full, each cause once with the lists it stopped: when
    /// the provider is down or refuses the credentials, every list fails the same way.
    pub fn errors_text(&self) -> String {
        let mut causes: Vec<(&str, Vec<&str>)> = Vec::new();
        for e in &self.errors {
            match causes.iter_mut().find(|(c, _)| *c == e.cause) {
                Some((_, lists)) => lists.push(&e.list),
                None => causes.push((&e.cause, vec![&e.list])),
            }
        }
        causes
            .into_iter()
            .map(|(cause, mut lists)| {
                lists.sort_unstable();
                format!("{}: {cause}", lists.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store writer stopped unexpectedly: {0}")]
    Writer(String),
}

const LIST_PAYMENTS: &str = "payments";
const LIST_PENDING: &str = "pending_payments";
const LIST_RAMPOFFS: &str = "rampoffs";
const LIST_ACCOUNTS: &str = "accounts";
/// Not a list: the check that the transactions read reach back to every credit that
/// can compete for an open payment.
const LIST_COMPETITORS: &str = "competitors";

/// Why an incremental sync did not read every credit that can compete for an open
/// payment, if it did not: `oldest` is the creation of the oldest open payment inside
/// the look-back, `starts` where each account's transactions were read from (`None`:
/// from the beginning). A credit booked earlier than that payment's creation less the
/// tolerance competes for nothing (rules §3.3); one booked later must have been read.
pub(crate) fn competitors_unread(
    oldest: Option<DateTime<Utc>>,
    tolerance: Duration,
    starts: &[Option<DateTime<Utc>>],
) -> Option<String> {
    let reach = oldest? - tolerance;
    let latest = starts.iter().flatten().max()?;
    (*latest > reach).then(|| {
        format!(
            "an open payment created at {} can be paid by a credit booked from {reach}, but transactions were read from {latest} only; the next run reads from there",
            oldest.map(|t| t.to_rfc3339()).unwrap_or_default()
        )
    })
}

fn transactions_list(iban: &Iban) -> String {
    format!("transactions:{iban}")
}

enum Write {
    Payments(Vec<Record<Payment>>),
    Offramps(Vec<Record<Offramp>>),
    Accounts(Vec<Record<BankAccount>>),
    Transactions(Vec<Record<BankTransaction>>),
    Bad(Vec<BadRecord>),
    List(ListRead),
    Watermark(String, DateTime<Utc>),
    Vanished(Vec<PaymentId>),
}

/// Reads every list into the store. The sync's writer holds the store for the whole
/// read, on a blocking thread; the store is the caller's again when this returns, even
/// when the writer failed or panicked (its open batch is undone).
pub async fn sync_all(
    client: Arc<Client>,
    db: &SharedStore,
    run: RunId,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let now = Utc::now();
    // Watermarks are read before the writer takes the store.
    let (marks, pending_before) = {
        let store = db.lock();
        let marks = Watermarks::load(&store, opts, now)?;
        let pending = match opts.mode {
            SyncMode::Incremental => store.pending_payment_ids()?,
            SyncMode::Full => Vec::new(),
        };
        (marks, pending)
    };

    let (tx, rx) = mpsc::channel::<Write>(32);
    let writer_db = db.clone();
    let writer =
        tokio::task::spawn_blocking(move || writer_loop(&mut writer_db.lock(), rx, run, now));

    let counters = Arc::new(Counters::default());
    let mut report = SyncReport::default();
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let reader = Reader {
        client: client.clone(),
        tx: tx.clone(),
        per_page: opts.per_page,
        sem,
        read_ahead: opts.concurrency.max(1),
        started: now,
        counters: counters.clone(),
        progress: opts.progress.then(|| Arc::new(Progress::default())),
        waived: opts.waived.clone(),
    };

    // Accounts first: the transaction lists depend on them.
    let accounts = reader.accounts().await;
    let mut tasks: JoinSet<ListRead> = JoinSet::new();
    let pending_seen: Arc<std::sync::Mutex<HashSet<PaymentId>>> = Arc::default();

    {
        let (r, window) = (reader.clone(), marks.window(LIST_PAYMENTS));
        tasks.spawn(async move {
            r.list(LIST_PAYMENTS, window, None, Kind::Payments, None)
                .await
        });
    }
    if opts.mode == SyncMode::Incremental {
        let (r, seen) = (reader.clone(), pending_seen.clone());
        tasks.spawn(async move {
            let status = Some(PaymentStatus::PendingBank);
            r.list(LIST_PENDING, None, status, Kind::Payments, Some(seen))
                .await
        });
    }
    {
        let (r, window) = (reader.clone(), marks.window(LIST_RAMPOFFS));
        tasks.spawn(async move {
            r.list(LIST_RAMPOFFS, window, None, Kind::Offramps, None)
                .await
        });
    }
    let ibans = match &accounts {
        Ok(ibans) => ibans.clone(),
        Err(_) => Vec::new(),
    };
    match accounts {
        Ok(_) => {}
        Err(l) => {
            report
                .errors
                .extend(l.error.as_ref().map(|e| ListError::new(&l.list, e)));
            report.lists.push(l);
        }
    }
    for iban in ibans {
        let name = transactions_list(&iban);
        let (r, window) = (reader.clone(), marks.window(&name));
        tasks.spawn(async move {
            r.list(&name, window, None, Kind::Transactions(iban), None)
                .await
        });
    }
    let mut readers_ok = true;
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(l) => {
                if let Some(e) = &l.error {
                    report.errors.push(ListError::new(&l.list, e));
                }
                report.lists.push(l);
            }
            Err(e) => {
                readers_ok = false;
                report
                    .errors
                    .push(ListError::new("a list reader", format!("stopped: {e}")));
            }
        }
    }

    if let Some(p) = &reader.progress {
        p.finish();
    }
    // Incremental: payments stored as pending that the provider no longer lists as
    // pending are re-read one by one, so a status change of an old payment is never missed.
    if opts.mode == SyncMode::Incremental {
        let pending_list_ok = report
            .lists
            .iter()
            .any(|l| l.list == LIST_PENDING && l.complete);
        let seen = pending_seen.lock().map(|s| s.clone()).unwrap_or_default();
        if pending_list_ok {
            let gone: Vec<PaymentId> = pending_before
                .into_iter()
                .filter(|id| !seen.contains(id))
                .collect();
            let mut refresh = ListRead {
                list: "refresh_pending".into(),
                complete: true,
                pages: 0,
                items: 0,
                duplicates: 0,
                read_from: None,
                error: None,
            };
            for id in gone {
                match client.payment(&id).await {
                    Ok(Some(rec)) => {
                        refresh.items += 1;
                        if tx.send(Write::Payments(vec![rec])).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        // The provider no longer knows it: it is recorded as gone and
                        // reported once. It is not open any more, so it competes with
                        // nothing, and every other list is still read in full.
                        tracing::warn!(payment = %id, "payment no longer known to the provider; recorded as vanished");
                        if tx.send(Write::Vanished(vec![id.clone()])).await.is_err() {
                            break;
                        }
                        report.vanished.push(id);
                    }
                    Err(e) => {
                        refresh.complete = false;
                        refresh.error.get_or_insert(e.to_string());
                        break;
                    }
                }
            }
            report.refreshed = refresh.items;
            if let Some(e) = &refresh.error {
                report.errors.push(ListError::new("refresh_pending", e));
            }
            let _ = tx.send(Write::List(refresh.clone())).await;
            report.lists.push(refresh);
        }
    }

    drop(reader);
    drop(tx);
    match writer.await {
        Ok(written) => written?,
        Err(e) => {
            let mut store = db.lock();
            store.rollback_batch();
            let _ = store.end_bulk();
            return Err(SyncError::Writer(e.to_string()));
        }
    }
    if opts.mode == SyncMode::Incremental {
        let mut store = db.lock();
        let oldest = store.oldest_pending_since(now - opts.lookback)?;
        let starts: Vec<Option<DateTime<Utc>>> = report
            .lists
            .iter()
            .filter(|l| l.list.starts_with("transactions:"))
            .map(|l| l.read_from)
            .collect();
        if let Some(why) = competitors_unread(oldest, opts.booking_tolerance, &starts) {
            tracing::warn!(why = %why, "an open payment's competitors were not all read");
            let l = ListRead {
                list: LIST_COMPETITORS.into(),
                complete: false,
                pages: 0,
                items: 0,
                duplicates: 0,
                read_from: oldest.map(|t| t - opts.booking_tolerance),
                error: Some(why.clone()),
            };
            store.record_list(run, &l)?;
            report.errors.push(ListError::new(LIST_COMPETITORS, &why));
            report.lists.push(l);
        }
    }

    report.payments = counters.payments.load(Ordering::Relaxed);
    report.offramps = counters.offramps.load(Ordering::Relaxed);
    report.accounts = counters.accounts.load(Ordering::Relaxed);
    report.transactions = counters.transactions.load(Ordering::Relaxed);
    report.bad_records = counters.bad.load(Ordering::Relaxed);
    report.complete = readers_ok && report.lists.iter().all(|l| l.complete);
    report.lists.sort_by(|a, b| a.list.cmp(&b.list));
    Ok(report)
}

#[derive(Default)]
struct Counters {
    payments: AtomicU64,
    offramps: AtomicU64,
    accounts: AtomicU64,
    transactions: AtomicU64,
    bad: AtomicU64,
}

struct Watermarks {
    mode: SyncMode,
    overlap: Duration,
    marks: std::collections::HashMap<String, DateTime<Utc>>,
    /// Per list, the items stored from before its window.
    stored_before: std::collections::HashMap<String, u64>,
    /// How far back a credit that competes for an open payment can be booked: the
    /// oldest stored open payment inside the look-back, less the booking tolerance.
    competitors_from: Option<DateTime<Utc>>,
}

impl Watermarks {
    fn load(store: &Store, opts: &SyncOptions, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let (marks, competitors_from) = match opts.mode {
            SyncMode::Incremental => (
                store.watermarks()?,
                store
                    .oldest_pending_since(now - opts.lookback)?
                    .map(|t| t - opts.booking_tolerance),
            ),
            SyncMode::Full => (std::collections::HashMap::new(), None),
        };
        let mut w = Self {
            mode: opts.mode,
            overlap: opts.overlap,
            marks,
            stored_before: std::collections::HashMap::new(),
            competitors_from,
        };
        let lists: Vec<String> = w.marks.keys().cloned().collect();
        for list in lists {
            let timed =
                list == LIST_PAYMENTS || list == LIST_RAMPOFFS || list.starts_with("transactions:");
            if timed && let Some(from) = w.from(&list) {
                let n = store.count_before(&list, from)?;
                w.stored_before.insert(list, n);
            }
        }
        Ok(w)
    }

    /// `(from, items stored before it)` of an incremental read.
    fn window(&self, list: &str) -> Option<(DateTime<Utc>, u64)> {
        Some((self.from(list)?, *self.stored_before.get(list)?))
    }

    /// `None` (read from the beginning) in full mode or for a list never read completely.
    /// An account's transactions are read from early enough to hold every credit that
    /// can compete for an open payment.
    fn from(&self, list: &str) -> Option<DateTime<Utc>> {
        match self.mode {
            SyncMode::Full => None,
            SyncMode::Incremental => {
                let from = *self.marks.get(list)? - self.overlap;
                Some(match self.competitors_from {
                    Some(c) if list.starts_with("transactions:") => from.min(c),
                    _ => from,
                })
            }
        }
    }
}

/// Pages queued at once are written in one transaction.
const WRITES_PER_COMMIT: usize = 64;

fn writer_loop(
    store: &mut Store,
    mut rx: mpsc::Receiver<Write>,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.begin_bulk()?;
    let mut busy = std::time::Duration::ZERO;
    let mut commits = 0u64;
    while let Some(first) = rx.blocking_recv() {
        let started = std::time::Instant::now();
        commits += 1;
        let r = (|| {
            store.begin_batch()?;
            apply(store, first, run, now)?;
            for _ in 1..WRITES_PER_COMMIT {
                match rx.try_recv() {
                    Ok(w) => apply(store, w, run, now)?,
                    Err(_) => break,
                }
            }
            store.commit_batch()
        })();
        busy += started.elapsed();
        if let Err(e) = r {
            store.rollback_batch();
            let _ = store.end_bulk();
            return Err(e);
        }
    }
    store.end_bulk()?;
    tracing::debug!(
        busy_ms = busy.as_millis() as u64,
        commits,
        "store writer done"
    );
    Ok(())
}

fn apply(store: &mut Store, w: Write, run: RunId, now: DateTime<Utc>) -> Result<(), StoreError> {
    match w {
        Write::Payments(b) => store.upsert_payments(run, now, &b),
        Write::Offramps(b) => store.upsert_offramps(run, now, &b),
        Write::Accounts(b) => store.upsert_accounts(run, now, &b),
        Write::Transactions(b) => store.upsert_transactions(run, now, &b),
        Write::Bad(b) => store.insert_bad_records(run, &b),
        Write::List(l) => store.record_list(run, &l),
        Write::Watermark(list, t) => store.set_watermark(&list, t, run, now),
        Write::Vanished(ids) => store.mark_vanished(run, &ids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_of_an_incomplete_sync_is_said_once_with_the_lists_it_stopped() {
        let report = SyncReport {
            errors: vec![
                ListError::new("rampoffs", "/authenticate: HTTP 503"),
                ListError::new("transactions:ES91", "page 3: malformed"),
                ListError::new("accounts", "/authenticate: HTTP 503"),
            ],
            ..SyncReport::default()
        };
        assert_eq!(
            report.errors_text(),
            "accounts, rampoffs: /authenticate: HTTP 503; transactions:ES91: page 3: malformed"
        );
    }

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(days)
    }

    #[test]
    fn an_incremental_read_must_reach_back_to_every_credit_that_competes_for_an_open_payment() {
        let tol = Duration::days(1);
        // Read from before the oldest open payment's reach: covered.
        assert_eq!(
            competitors_unread(Some(at(10)), tol, &[Some(at(9)), None]),
            None
        );
        assert_eq!(competitors_unread(Some(at(10)), tol, &[Some(at(8))]), None);
        // No open payment, or every account read from its beginning: covered.
        assert_eq!(competitors_unread(None, tol, &[Some(at(20))]), None);
        assert_eq!(competitors_unread(Some(at(10)), tol, &[None, None]), None);
        // One account read from later than the reach: not covered.
        let why = competitors_unread(
            Some(at(10)),
            tol,
            &[Some(at(8)), Some(at(9) + Duration::seconds(1))],
        )
        .expect("not covered");
        assert!(why.contains("the next run reads from there"), "{why}");
    }
}
