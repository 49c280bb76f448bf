//! The sync: reads every list from the provider into the store.
//!
//! Pages stream through a bounded channel to one writer that owns the SQLite connection,
//! so network reads overlap with batched writes and memory does not grow with history.
//! A list counts as complete only when every page was read and every item parsed; a run
//! whose lists are not all complete reconciles nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::api::{ApiError, BadRecord, Client, ListQuery, Page, Paginator, Record};
use crate::domain::{
    BankAccount, BankTransaction, Iban, Offramp, Payment, PaymentId, PaymentStatus,
};
use crate::store::{ListRead, RunId, Store, StoreError};

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
    /// The first error of each incomplete list, for the run's error text.
    pub errors: Vec<String>,
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
}

/// Reads every list into the store. Returns the store (it is owned by the writer while
/// the sync runs) with the report; the store comes back even when the sync failed, unless
/// the writer itself crashed (then the caller reopens the database).
pub async fn sync_all(
    client: Arc<Client>,
    store: Store,
    run: RunId,
    opts: &SyncOptions,
) -> (Option<Store>, Result<SyncReport, SyncError>) {
    let now = Utc::now();
    // Watermarks are read before the writer takes the store.
    let marks = match Watermarks::load(&store, opts) {
        Ok(m) => m,
        Err(e) => return (Some(store), Err(e.into())),
    };
    let pending_before = match opts.mode {
        SyncMode::Incremental => match store.pending_payment_ids() {
            Ok(ids) => ids,
            Err(e) => return (Some(store), Err(e.into())),
        },
        SyncMode::Full => Vec::new(),
    };

    let (tx, rx) = mpsc::channel::<Write>(32);
    let writer = tokio::task::spawn_blocking(move || writer_loop(store, rx, run, now));

    let counters = Arc::new(Counters::default());
    let mut report = SyncReport::default();
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let reader = Reader {
        client: client.clone(),
        tx: tx.clone(),
        per_page: opts.per_page,
        sem,
        read_ahead: opts.concurrency.max(1),
        counters: counters.clone(),
        progress: opts.progress.then(|| Arc::new(Progress::default())),
    };

    // Accounts first: the transaction lists depend on them.
    let accounts = reader.accounts().await;
    let mut tasks: JoinSet<ListRead> = JoinSet::new();
    let pending_seen: Arc<std::sync::Mutex<HashSet<PaymentId>>> = Arc::default();

    {
        let (r, from) = (reader.clone(), marks.from(LIST_PAYMENTS));
        tasks.spawn(async move {
            let q = ListQuery {
                from,
                ..ListQuery::default()
            };
            r.list(LIST_PAYMENTS, q, Kind::Payments, None).await
        });
    }
    if opts.mode == SyncMode::Incremental {
        let (r, seen) = (reader.clone(), pending_seen.clone());
        tasks.spawn(async move {
            let q = ListQuery {
                status: Some(PaymentStatus::PendingBank),
                ..ListQuery::default()
            };
            r.list(LIST_PENDING, q, Kind::Payments, Some(seen)).await
        });
    }
    {
        let (r, from) = (reader.clone(), marks.from(LIST_RAMPOFFS));
        tasks.spawn(async move {
            let q = ListQuery {
                from,
                ..ListQuery::default()
            };
            r.list(LIST_RAMPOFFS, q, Kind::Offramps, None).await
        });
    }
    let ibans = match &accounts {
        Ok(ibans) => ibans.clone(),
        Err(_) => Vec::new(),
    };
    match accounts {
        Ok(_) => {}
        Err(l) => {
            report.errors.extend(l.error.clone());
            report.lists.push(l);
        }
    }
    for iban in ibans {
        let name = transactions_list(&iban);
        let (r, from) = (reader.clone(), marks.from(&name));
        tasks.spawn(async move {
            let q = ListQuery {
                from,
                ..ListQuery::default()
            };
            r.list(&name, q, Kind::Transactions(iban), None).await
        });
    }
    let mut readers_ok = true;
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(l) => {
                if let Some(e) = &l.error {
                    report.errors.push(format!("{}: {e}", l.list));
                }
                report.lists.push(l);
            }
            Err(e) => {
                readers_ok = false;
                report.errors.push(format!("a list reader stopped: {e}"));
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
                        // The provider no longer knows it: keep it as stored, and say so.
                        let msg = format!("payment {id} is no longer known to the provider");
                        tracing::warn!(payment = %id, "payment no longer known to the provider");
                        refresh.complete = false;
                        refresh.error.get_or_insert(msg);
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
                report.errors.push(format!("refresh_pending: {e}"));
            }
            let _ = tx.send(Write::List(refresh.clone())).await;
            report.lists.push(refresh);
        }
    }

    drop(reader);
    drop(tx);
    let (store, written) = match writer.await {
        Ok(v) => v,
        Err(e) => return (None, Err(SyncError::Writer(e.to_string()))),
    };
    if let Err(e) = written {
        return (Some(store), Err(e.into()));
    }

    report.payments = counters.payments.load(Ordering::Relaxed);
    report.offramps = counters.offramps.load(Ordering::Relaxed);
    report.accounts = counters.accounts.load(Ordering::Relaxed);
    report.transactions = counters.transactions.load(Ordering::Relaxed);
    report.bad_records = counters.bad.load(Ordering::Relaxed);
    report.complete = readers_ok && report.lists.iter().all(|l| l.complete);
    report.lists.sort_by(|a, b| a.list.cmp(&b.list));
    (Some(store), Ok(report))
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
}

impl Watermarks {
    fn load(store: &Store, opts: &SyncOptions) -> Result<Self, StoreError> {
        let marks = match opts.mode {
            SyncMode::Incremental => store.watermarks()?,
            SyncMode::Full => std::collections::HashMap::new(),
        };
        Ok(Self {
            mode: opts.mode,
            overlap: opts.overlap,
            marks,
        })
    }

    /// `None` (read from the beginning) in full mode or for a list never read completely.
    fn from(&self, list: &str) -> Option<DateTime<Utc>> {
        match self.mode {
            SyncMode::Full => None,
            SyncMode::Incremental => self.marks.get(list).map(|t| *t - self.overlap),
        }
    }
}

#[derive(Clone)]
enum Kind {
    Payments,
    Offramps,
    Transactions(Iban),
}

#[derive(Clone)]
struct Reader {
    client: Arc<Client>,
    tx: mpsc::Sender<Write>,
    per_page: u32,
    /// Every page request holds one permit: all lists together stay within `concurrency`.
    sem: Arc<Semaphore>,
    /// Pages of one list requested at once.
    read_ahead: usize,
    counters: Arc<Counters>,
    progress: Option<Arc<Progress>>,
}

/// Pages read per list, for a person at a terminal: one compact line at most once a
/// second (lists are read concurrently and log lines may come in between, so each
/// update is a line of its own rather than a redraw).
struct Progress {
    state: std::sync::Mutex<ProgressState>,
}

/// Pages and items per list, and when the last line was printed.
type ProgressState = (
    std::collections::BTreeMap<String, (u32, u64)>,
    std::time::Instant,
);

impl Default for Progress {
    fn default() -> Self {
        Self {
            state: std::sync::Mutex::new((Default::default(), std::time::Instant::now())),
        }
    }
}

impl Progress {
    fn update(&self, list: &str, pages: u32, items: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.0.insert(list.to_owned(), (pages, items));
        if state.1.elapsed() >= std::time::Duration::from_secs(1) {
            state.1 = std::time::Instant::now();
            eprintln!("{}", Self::line(&state.0));
        }
    }

    fn finish(&self) {
        if let Ok(state) = self.state.lock() {
            eprintln!("{}", Self::line(&state.0));
        }
    }

    /// `read: payments 27 pages/2700, tx ES…1332 15/1465, ...`
    fn line(lists: &std::collections::BTreeMap<String, (u32, u64)>) -> String {
        let parts: Vec<String> = lists
            .iter()
            .map(|(l, (p, i))| {
                let name = match l.strip_prefix("transactions:") {
                    Some(iban) => format!("tx …{}", &iban[iban.len().saturating_sub(4)..]),
                    None => l.clone(),
                };
                format!("{name} {p}/{i}")
            })
            .collect();
        format!("read (pages/items): {}", parts.join(", "))
    }
}

impl Reader {
    async fn accounts(&self) -> Result<Vec<Iban>, ListRead> {
        let mut l = ListRead {
            list: LIST_ACCOUNTS.into(),
            complete: false,
            pages: 1,
            items: 0,
            duplicates: 0,
            read_from: None,
            error: None,
        };
        match self.client.accounts().await {
            Ok((good, bad)) => {
                l.items = good.len() as u64;
                self.counters
                    .accounts
                    .fetch_add(good.len() as u64, Ordering::Relaxed);
                let ibans = good.iter().map(|r| r.value.iban.clone()).collect();
                if !bad.is_empty() {
                    self.counters
                        .bad
                        .fetch_add(bad.len() as u64, Ordering::Relaxed);
                    l.error = Some(format!("{} unreadable account(s): {}", bad.len(), bad[0]));
                    let _ = self.tx.send(Write::Bad(bad)).await;
                }
                l.complete = l.error.is_none();
                let _ = self.tx.send(Write::Accounts(good)).await;
                let _ = self.tx.send(Write::List(l.clone())).await;
                if l.complete { Ok(ibans) } else { Err(l) }
            }
            Err(e) => {
                l.pages = 0;
                l.error = Some(e.to_string());
                let _ = self.tx.send(Write::List(l.clone())).await;
                Err(l)
            }
        }
    }

    /// Reads one list to its end (or its first unrecoverable error), streaming pages to
    /// the writer. Sets the watermark only after a complete read.
    async fn list(
        &self,
        name: &str,
        q: ListQuery,
        kind: Kind,
        seen: Option<Arc<std::sync::Mutex<HashSet<PaymentId>>>>,
    ) -> ListRead {
        let (client, per_page, counters) =
            (self.client.clone(), self.per_page, self.counters.clone());
        let read_from = q.from;
        match kind {
            Kind::Payments => {
                let fetch = move |no| {
                    let (c, q) = (client.clone(), q.clone());
                    async move { c.payments_page(&q, no, per_page).await }
                };
                let wrap = move |items: Vec<Record<Payment>>| {
                    if let Some(s) = &seen
                        && let Ok(mut s) = s.lock()
                    {
                        s.extend(items.iter().map(|r| r.value.id.clone()));
                    }
                    counters
                        .payments
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    Write::Payments(items)
                };
                self.read_pages(name, read_from, fetch, |p| p.created_at, wrap)
                    .await
            }
            Kind::Offramps => {
                let fetch = move |no| {
                    let (c, q) = (client.clone(), q.clone());
                    async move { c.offramps_page(&q, no, per_page).await }
                };
                let wrap = move |items: Vec<Record<Offramp>>| {
                    counters
                        .offramps
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    Write::Offramps(items)
                };
                self.read_pages(name, read_from, fetch, |o| o.created_at, wrap)
                    .await
            }
            Kind::Transactions(iban) => {
                let fetch = move |no| {
                    let (c, q, iban) = (client.clone(), q.clone(), iban.clone());
                    async move { c.transactions_page(&iban, &q, no, per_page).await }
                };
                let wrap = move |items: Vec<Record<BankTransaction>>| {
                    counters
                        .transactions
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    Write::Transactions(items)
                };
                self.read_pages(name, read_from, fetch, |t| t.booked_at, wrap)
                    .await
            }
        }
    }

    /// The page loop of [`Reader::list`]. Once the first page has told the list's size,
    /// up to `read_ahead` later pages are requested at once (each request holds a permit
    /// of the shared semaphore, so all lists together stay within `concurrency`); pages
    /// are still taken in order, so the [`Paginator`] decides where the list ends exactly
    /// as it would reading one page at a time, and pages read past that end are dropped.
    async fn read_pages<T, F, Fut>(
        &self,
        name: &str,
        read_from: Option<DateTime<Utc>>,
        fetch: F,
        stamp: fn(&T) -> DateTime<Utc>,
        wrap: impl Fn(Vec<Record<T>>) -> Write,
    ) -> ListRead
    where
        T: crate::api::Identified + Send + 'static,
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, ApiError>> + Send + 'static,
    {
        let mut pager = Paginator::new(self.per_page);
        let mut high: Option<DateTime<Utc>> = None;
        let mut error: Option<String> = None;
        let mut bad_count = 0u64;
        let mut in_flight = std::collections::VecDeque::new();
        let mut requested = 0u32;
        let ahead = u32::try_from(self.read_ahead.max(1)).unwrap_or(u32::MAX);
        while let Some(page_no) = pager.next_page() {
            let until = pager
                .last_known_page()
                .max(page_no)
                .min(page_no.saturating_add(ahead - 1));
            while requested < until {
                requested += 1;
                let (sem, fut) = (self.sem.clone(), fetch(requested));
                in_flight.push_back(tokio::spawn(async move {
                    // The semaphore is never closed, so a permit always comes.
                    let _permit = sem.acquire_owned().await;
                    fut.await
                }));
            }
            // Pages are requested in order and taken in order: the oldest is `page_no`.
            let Some(handle) = in_flight.pop_front() else {
                error = Some(format!("internal: page {page_no} was never requested"));
                break;
            };
            let page = handle.await.unwrap_or_else(|e| {
                Err(ApiError::Unavailable {
                    endpoint: name.to_owned(),
                    attempts: 0,
                    detail: format!("page {page_no}: task failed: {e}"),
                })
            });
            match self.page(name, &mut pager, page, stamp).await {
                Ok((items, (page_high, bad))) => {
                    high = high.max(page_high);
                    bad_count += bad;
                    if self.tx.send(wrap(items)).await.is_err() {
                        error = Some("the store writer stopped".into());
                        break;
                    }
                    if let Some(p) = &self.progress {
                        p.update(name, pager.pages_read, pager.items_seen());
                    }
                }
                Err(e) => {
                    tracing::error!(list = name, page = page_no, error = %e, "list read failed");
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        // Pages read ahead past the end (or past an error) are not needed.
        for h in in_flight {
            h.abort();
        }
        if error.is_none() && bad_count > 0 {
            error = Some(format!(
                "{bad_count} record(s) could not be read (see table bad_records)"
            ));
        }
        let l = ListRead {
            list: name.to_owned(),
            complete: error.is_none(),
            pages: pager.pages_read,
            items: pager.items_seen(),
            duplicates: pager.duplicates,
            read_from,
            error,
        };
        tracing::info!(
            list = name,
            pages = l.pages,
            items = l.items,
            duplicates = l.duplicates,
            complete = l.complete,
            "list read"
        );
        let _ = self.tx.send(Write::List(l.clone())).await;
        if l.complete
            && let Some(h) = high
        {
            let _ = self.tx.send(Write::Watermark(name.to_owned(), h)).await;
        }
        l
    }

    /// Dedupes a page, reports its bad records, and returns its items with the newest
    /// timestamp and the number of bad records.
    async fn page<T: crate::api::Identified>(
        &self,
        name: &str,
        pager: &mut Paginator,
        page: Result<Page<T>, ApiError>,
        stamp: fn(&T) -> DateTime<Utc>,
    ) -> Result<(Vec<Record<T>>, (Option<DateTime<Utc>>, u64)), ApiError> {
        let mut page = page?;
        pager.accept(name, &mut page)?;
        let bad = page.bad.len() as u64;
        if bad > 0 {
            for b in &page.bad {
                tracing::error!(list = name, record = %b, "unreadable record");
            }
            self.counters.bad.fetch_add(bad, Ordering::Relaxed);
            let _ = self
                .tx
                .send(Write::Bad(std::mem::take(&mut page.bad)))
                .await;
        }
        let high = page.items.iter().map(|r| stamp(&r.value)).max();
        Ok((page.items, (high, bad)))
    }
}

/// Pages queued at once are written in one transaction.
const WRITES_PER_COMMIT: usize = 64;

fn writer_loop(
    mut store: Store,
    mut rx: mpsc::Receiver<Write>,
    run: RunId,
    now: DateTime<Utc>,
) -> (Store, Result<(), StoreError>) {
    if let Err(e) = store.begin_bulk() {
        return (store, Err(e));
    }
    let mut busy = std::time::Duration::ZERO;
    let mut commits = 0u64;
    while let Some(first) = rx.blocking_recv() {
        let started = std::time::Instant::now();
        commits += 1;
        let r = (|| {
            store.begin_batch()?;
            apply(&mut store, first, run, now)?;
            for _ in 1..WRITES_PER_COMMIT {
                match rx.try_recv() {
                    Ok(w) => apply(&mut store, w, run, now)?,
                    Err(_) => break,
                }
            }
            store.commit_batch()
        })();
        busy += started.elapsed();
        if let Err(e) = r {
            store.rollback_batch();
            let _ = store.end_bulk();
            return (store, Err(e));
        }
    }
    if let Err(e) = store.end_bulk() {
        return (store, Err(e));
    }
    tracing::debug!(
        busy_ms = busy.as_millis() as u64,
        commits,
        "store writer done"
    );
    (store, Ok(()))
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
    }
}
