//! Reading one list: the reader that slices a list in time, follows a cursor through
//! each slice, checks the provider's totals afterwards, and streams pages to the
//! writer; and the progress line a person sees at a terminal.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::{Counters, LIST_ACCOUNTS, Write};
use crate::api::paging::Keyset;
use crate::api::{ApiError, BadRecord, Client, ListQuery, Page, Record};
use crate::domain::{BankTransaction, Iban, Offramp, Payment, PaymentId, PaymentStatus};
use crate::store::ListRead;

#[derive(Clone)]
pub(super) enum Kind {
    Payments,
    Offramps,
    Transactions(Iban),
}

#[derive(Clone)]
pub(super) struct Reader {
    pub(super) client: Arc<Client>,
    pub(super) tx: mpsc::Sender<Write>,
    pub(super) per_page: u32,
    /// Every page request holds one permit: all lists together stay within `concurrency`.
    pub(super) sem: Arc<Semaphore>,
    /// Slices of one list read at once.
    pub(super) read_ahead: usize,
    /// When the sync started: the end of the window a list's `total` is checked on.
    pub(super) started: DateTime<Utc>,
    pub(super) counters: Arc<Counters>,
    pub(super) progress: Option<Arc<Progress>>,
    /// Unreadable records a person dismissed: they do not make a list incomplete.
    pub(super) waived: Arc<HashSet<String>>,
}

impl Reader {
    /// Whether a person dismissed this unreadable record (by the id it carried).
    fn waives(&self, b: &BadRecord) -> bool {
        b.id.as_ref().is_some_and(|id| self.waived.contains(id))
    }
}

/// Pages read per list, for a person at a terminal: one compact line at most once a
/// second (lists are read concurrently and log lines may come in between, so each
/// update is a line of its own rather than a redraw).
pub(super) struct Progress {
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

    pub(super) fn finish(&self) {
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
    pub(super) async fn accounts(&self) -> Result<Vec<Iban>, ListRead> {
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
                    let blocking: Vec<&BadRecord> =
                        bad.iter().filter(|b| !self.waives(b)).collect();
                    if let Some(first) = blocking.first() {
                        l.error =
                            Some(format!("{} unreadable account(s): {first}", blocking.len()));
                    }
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
    /// the writer. Sets the watermark only after a complete read. `window`: an
    /// incremental read's start, with the number of items stored from before it.
    pub(super) async fn list(
        &self,
        name: &str,
        window: Option<(DateTime<Utc>, u64)>,
        status: Option<PaymentStatus>,
        kind: Kind,
        seen: Option<Arc<std::sync::Mutex<HashSet<PaymentId>>>>,
    ) -> ListRead {
        let (client, counters) = (self.client.clone(), self.counters.clone());
        let q = ListQuery {
            from: window.map(|(from, _)| from),
            to: None,
            status,
        };
        let stored_before = window.map(|(_, n)| n);
        match kind {
            Kind::Payments => {
                let fetch: Fetch<Payment> = Arc::new(move |q, no, per_page| {
                    let c = client.clone();
                    Box::pin(async move { c.payments_page(&q, no, per_page).await })
                });
                let wrap: Wrap<Payment> = Arc::new(move |items: Vec<Record<Payment>>| {
                    if let Some(s) = &seen
                        && let Ok(mut s) = s.lock()
                    {
                        s.extend(items.iter().map(|r| r.value.id.clone()));
                    }
                    counters
                        .payments
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    Write::Payments(items)
                });
                self.read_list(name, q, stored_before, fetch, |p| p.created_at, wrap)
                    .await
            }
            Kind::Offramps => {
                let fetch: Fetch<Offramp> = Arc::new(move |q, no, per_page| {
                    let c = client.clone();
                    Box::pin(async move { c.offramps_page(&q, no, per_page).await })
                });
                let wrap: Wrap<Offramp> = Arc::new(move |items: Vec<Record<Offramp>>| {
                    counters
                        .offramps
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    Write::Offramps(items)
                });
                self.read_list(name, q, stored_before, fetch, |o| o.created_at, wrap)
                    .await
            }
            Kind::Transactions(iban) => {
                let fetch: Fetch<BankTransaction> = Arc::new(move |q, no, per_page| {
                    let (c, iban) = (client.clone(), iban.clone());
                    Box::pin(async move { c.transactions_page(&iban, &q, no, per_page).await })
                });
                let wrap: Wrap<BankTransaction> =
                    Arc::new(move |items: Vec<Record<BankTransaction>>| {
                        counters
                            .transactions
                            .fetch_add(items.len() as u64, Ordering::Relaxed);
                        Write::Transactions(items)
                    });
                self.read_list(name, q, stored_before, fetch, |t| t.booked_at, wrap)
                    .await
            }
        }
    }

    /// Reads a list so that a read marked complete provably holds every item that
    /// existed from the read's start to its end ([`crate::api::paging`] says why): the
    /// list is collected whole (cut into time slices read side by side, each by a
    /// moving cursor); unless that took one answer, which is a snapshot by itself, the
    /// provider's `total` of the window is asked, and the list is collected again. The
    /// read is complete when the second collect received every item of the first and
    /// the count equals them ([`crate::api::paging::proven`]); otherwise the later
    /// collect is checked the same way against one more, at most [`PROOFS`] times.
    ///
    /// An incremental read starts at its watermark less the overlap; an item booked
    /// before that (a booking back-dated further than the overlap) would never be read.
    /// So the provider's `total` before the window is asked first and compared with
    /// what is stored from before it: more at the provider, and the list is read whole.
    async fn read_list<T>(
        &self,
        name: &str,
        mut q: ListQuery,
        stored_before: Option<u64>,
        fetch: Fetch<T>,
        stamp: fn(&T) -> DateTime<Utc>,
        wrap: Wrap<T>,
    ) -> ListRead
    where
        T: crate::api::Identified + Send + 'static,
    {
        let mut tally = Tally::default();
        let mut error = None;
        if let (Some(from), Some(stored)) = (q.from, stored_before) {
            let before = ListQuery {
                from: None,
                to: Some(from),
                ..q.clone()
            };
            tally.requests += 1;
            match self.permit_fetch(&fetch, before, 1, 1).await {
                Ok(page) if page.info.total > stored => {
                    tracing::warn!(
                        list = name,
                        provider = page.info.total,
                        stored,
                        "items appeared before the incremental window (back-dated); reading the whole list"
                    );
                    q.from = None;
                }
                Ok(_) => {}
                Err(e) => error = Some(e.to_string()),
            }
        }
        let from = q.from;
        let seen: Arc<std::sync::Mutex<Seen>> = Arc::default();
        if error.is_none() {
            error = self
                .collect_proven(name, &q, &fetch, stamp, &wrap, &seen, &mut tally)
                .await
                .err();
            if let Some(e) = &error {
                match self.client.stop_requested() {
                    // Asked for: not an error, the next run reads the list.
                    Some(why) => {
                        tracing::info!(list = name, why, "list read stopped; the next run reads it")
                    }
                    None => tracing::error!(list = name, error = %e, "list read failed"),
                }
            }
        }
        if error.is_none() && tally.bad > 0 {
            error = Some(format!(
                "{} record(s) could not be read (see table bad_records)",
                tally.bad
            ));
        }
        let items = seen.lock().map(|s| s.items()).unwrap_or(0);
        let l = ListRead {
            list: name.to_owned(),
            complete: error.is_none(),
            pages: tally.requests,
            items,
            duplicates: tally.duplicates,
            read_from: from,
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
            && let Some(h) = tally.high
        {
            let _ = self.tx.send(Write::Watermark(name.to_owned(), h)).await;
        }
        l
    }

    /// Collects the list until two collects and the count between them prove it whole
    /// (see [`Reader::read_list`]). `Err` says why it could not be proven.
    #[allow(clippy::too_many_arguments)]
    async fn collect_proven<T>(
        &self,
        name: &str,
        q: &ListQuery,
        fetch: &Fetch<T>,
        stamp: fn(&T) -> DateTime<Utc>,
        wrap: &Wrap<T>,
        seen: &Arc<std::sync::Mutex<Seen>>,
        tally: &mut Tally,
    ) -> Result<(), String>
    where
        T: crate::api::Identified + Send + 'static,
    {
        let before = tally.requests;
        self.read_pass(name, q, fetch, stamp, wrap, seen, tally)
            .await?;
        if tally.requests - before == 1 || tally.bad > 0 {
            // A list with an unreadable record is incomplete whatever a proof says.
            // One answer that ended the list (its numbers checked against its items by
            // `more_after`) is a snapshot of the whole window at one instant.
            return Ok(());
        }
        let mut why = String::new();
        for attempt in 1..=PROOFS {
            let first = seen
                .lock()
                .map(|s| s.received)
                .map_err(|_| "internal: seen set poisoned".to_owned())?;
            let count = ListQuery {
                to: None,
                ..q.clone()
            };
            tally.requests += 1;
            let count = self
                .permit_fetch(fetch, count, 1, 1)
                .await
                .map_err(|e| e.to_string())?
                .info
                .total;
            seen.lock()
                .map(|mut s| s.next_collect())
                .map_err(|_| "internal: seen set poisoned".to_owned())?;
            self.read_pass(name, q, fetch, stamp, wrap, seen, tally)
                .await?;
            let verdict = seen
                .lock()
                .map(|s| crate::api::paging::verdict(first, count, s.gone()))
                .map_err(|_| "internal: seen set poisoned".to_owned())?;
            match verdict {
                Ok(()) => return Ok(()),
                Err(w) => {
                    tracing::warn!(list = name, attempt, why = %w,
                        "the list changed while it was read; collecting it again");
                    why = w;
                }
            }
        }
        Err(format!(
            "the list kept changing while it was read and could not be proven whole: {why}"
        ))
    }

    /// One pass over the whole list: the first slice's first page tells how long the
    /// list is; the rest of the window is then cut into up to `read_ahead` slices read
    /// side by side (each request holds a permit of the shared semaphore, so all lists
    /// together stay within `concurrency`).
    #[allow(clippy::too_many_arguments)]
    async fn read_pass<T>(
        &self,
        name: &str,
        q: &ListQuery,
        fetch: &Fetch<T>,
        stamp: fn(&T) -> DateTime<Utc>,
        wrap: &Wrap<T>,
        seen: &Arc<std::sync::Mutex<Seen>>,
        tally: &mut Tally,
    ) -> Result<(), String>
    where
        T: crate::api::Identified + Send + 'static,
    {
        let mut first = Keyset::new(q.from, None, self.per_page);
        let Some(r) = first.next_request() else {
            return Ok(());
        };
        let page = self
            .take_page(name, &mut first, q, r, fetch, stamp, wrap, seen, tally)
            .await?;
        let Some(after) = page else {
            return Ok(());
        };
        let pages_left = after.total.div_ceil(u64::from(after.per_page.max(1)));
        let n = usize::try_from(pages_left)
            .unwrap_or(usize::MAX)
            .min(self.read_ahead);
        let cuts = crate::api::paging::slices(
            after.cursor,
            after.cursor.unwrap_or(self.started),
            self.started,
            n,
        );
        let mut set = JoinSet::new();
        let mut first = Some(first);
        for (lo, hi) in cuts {
            // The first slice goes on from where the first page ended.
            let slice = match first.take() {
                Some(k) => k.with_end(hi),
                None => Keyset::new(lo, hi, self.per_page),
            };
            let (me, name, q) = (self.clone(), name.to_owned(), q.clone());
            let (fetch, wrap, seen) = (fetch.clone(), wrap.clone(), seen.clone());
            set.spawn(async move {
                let mut tally = Tally::default();
                let mut k = slice;
                while let Some(r) = k.next_request() {
                    me.take_page(
                        &name, &mut k, &q, r, &fetch, stamp, &wrap, &seen, &mut tally,
                    )
                    .await?;
                }
                Ok::<_, String>(tally)
            });
        }
        let mut failed = None;
        while let Some(res) = set.join_next().await {
            match res {
                Ok(Ok(t)) => tally.add(&t),
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                    // The other slices are of no use once one failed.
                    set.abort_all();
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    failed.get_or_insert(format!("a slice reader stopped: {e}"));
                    set.abort_all();
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Requests one page of a slice, takes it (dedupe, cursor), stores its items and
    /// bad records. Returns, after a full page, the slice's cursor and the list's total.
    #[allow(clippy::too_many_arguments)]
    async fn take_page<T>(
        &self,
        name: &str,
        k: &mut Keyset,
        q: &ListQuery,
        r: crate::api::paging::Request,
        fetch: &Fetch<T>,
        stamp: fn(&T) -> DateTime<Utc>,
        wrap: &Wrap<T>,
        seen: &Arc<std::sync::Mutex<Seen>>,
        tally: &mut Tally,
    ) -> Result<Option<AfterPage>, String>
    where
        T: crate::api::Identified + Send + 'static,
    {
        let query = ListQuery {
            from: r.from,
            to: r.to,
            ..q.clone()
        };
        tally.requests += 1;
        let mut page = self
            .permit_fetch(fetch, query, r.page, self.per_page)
            .await
            .map_err(|e| e.to_string())?;
        {
            let mut s = seen
                .lock()
                .map_err(|_| "internal: seen set poisoned".to_owned())?;
            let before = k.duplicates;
            k.accept(name, &mut page, stamp, &mut *s)
                .map_err(|e| e.to_string())?;
            tally.duplicates += k.duplicates - before;
            // An item an earlier collect received is written again only if it changed.
            page.items.retain(|r| s.changed(r.value.wire_id(), &r.raw));
        }
        let high = page.items.iter().map(|r| stamp(&r.value)).max();
        tally.high = tally.high.max(high);
        if !page.bad.is_empty() {
            {
                let mut s = seen
                    .lock()
                    .map_err(|_| "internal: seen set poisoned".to_owned())?;
                // Received, if unreadable: it counts against the provider's total. A
                // later collect meets it again; it is logged and stored once a read.
                for b in &page.bad {
                    if let Some(id) = &b.id {
                        crate::api::paging::Received::first(&mut *s, id);
                    }
                }
                page.bad.retain(|b| s.bad.insert(fingerprint(&b.raw)));
            }
            let mut blocking = 0;
            for b in &page.bad {
                if self.waives(b) {
                    tracing::warn!(list = name, record = %b,
                        "unreadable record, dismissed by a person: it does not block the run");
                } else {
                    tracing::error!(list = name, record = %b, "unreadable record");
                    blocking += 1;
                }
            }
            tally.bad += blocking;
            let bad = page.bad.len() as u64;
            self.counters.bad.fetch_add(bad, Ordering::Relaxed);
            if !page.bad.is_empty() {
                let _ = self
                    .tx
                    .send(Write::Bad(std::mem::take(&mut page.bad)))
                    .await;
            }
        }
        let (total, per_page) = (page.info.total, page.info.per_page);
        if self.tx.send(wrap(page.items)).await.is_err() {
            return Err("the store writer stopped".into());
        }
        if let Some(p) = &self.progress {
            let items = seen.lock().map(|s| s.items()).unwrap_or(0);
            p.update(name, tally.requests, items);
        }
        Ok(k.next_request().map(|next| AfterPage {
            cursor: next.from,
            total,
            per_page,
        }))
    }

    /// One request, holding a permit of the shared semaphore.
    async fn permit_fetch<T>(
        &self,
        fetch: &Fetch<T>,
        q: ListQuery,
        page: u32,
        per_page: u32,
    ) -> Result<Page<T>, ApiError> {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.sem.acquire().await;
        fetch(q, page, per_page).await
    }
}

/// How many times a list is collected again, at most, to prove it whole.
const PROOFS: u32 = 3;

type PageFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Page<T>, ApiError>> + Send>>;
/// Requests one page: `(filters, page, per_page)`.
type Fetch<T> = Arc<dyn Fn(ListQuery, u32, u32) -> PageFuture<T> + Send + Sync>;
/// Turns a page's new items into the writer's message.
type Wrap<T> = Arc<dyn Fn(Vec<Record<T>>) -> Write + Send + Sync>;

/// What a list read has received, kept small however long the list: an item is known
/// by a 128-bit digest of its id, keyed at random for each read (no provider can make
/// two ids collide), with a fingerprint of the record as last received and which
/// collects received it.
#[derive(Default)]
struct Seen {
    keys: (std::hash::RandomState, std::hash::RandomState),
    all: FxHashMap<u128, Entry>,
    /// The collect under way, from 0.
    collect: u32,
    /// How many ids the collect under way received: its readable items, and the ids its
    /// unreadable records carried (the provider's `total` counts them too).
    received: u64,
    /// Fingerprints of the unreadable records met by any collect.
    bad: FxHashSet<u64>,
}

#[derive(Clone, Copy)]
struct Entry {
    /// `None` for an id only an unreadable record carried.
    fingerprint: Option<u64>,
    /// Bit `n`: collect `n` received it.
    collects: u32,
}

impl Seen {
    fn key(&self, id: &str) -> u128 {
        use std::hash::BuildHasher;
        (u128::from(self.keys.0.hash_one(id)) << 64) | u128::from(self.keys.1.hash_one(id))
    }

    /// Starts the next collect.
    fn next_collect(&mut self) {
        self.collect += 1;
        self.received = 0;
    }

    /// Notes the record as received now; true when no collect received it as it is.
    fn changed(&mut self, id: &str, raw: &str) -> bool {
        let (key, now) = (self.key(id), fingerprint(raw));
        self.all
            .get_mut(&key)
            .is_none_or(|e| e.fingerprint.replace(now) != Some(now))
    }

    /// How many ids the previous collect received that the one under way did not.
    fn gone(&self) -> usize {
        let (before, now) = (1 << (self.collect - 1), 1 << self.collect);
        self.all
            .values()
            .filter(|e| e.collects & before != 0 && e.collects & now == 0)
            .count()
    }

    /// Readable items received by any collect.
    fn items(&self) -> u64 {
        self.all
            .values()
            .filter(|e| e.fingerprint.is_some())
            .count() as u64
    }
}

impl crate::api::paging::Received for Seen {
    fn first(&mut self, id: &str) -> bool {
        let (key, bit) = (self.key(id), 1u32 << self.collect);
        let e = self.all.entry(key).or_insert(Entry {
            fingerprint: None,
            collects: 0,
        });
        if e.collects & bit != 0 {
            return false;
        }
        e.collects |= bit;
        self.received += 1;
        true
    }
}

/// A record's fingerprint, to tell whether a later collect received it changed.
fn fingerprint(raw: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(raw)
}

/// Where a slice stands after its first full page.
struct AfterPage {
    cursor: Option<DateTime<Utc>>,
    total: u64,
    /// The page size the answer said it served.
    per_page: u32,
}

/// What a read (or one slice of it) did.
#[derive(Default)]
struct Tally {
    requests: u32,
    duplicates: u64,
    bad: u64,
    high: Option<DateTime<Utc>>,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.duplicates += o.duplicates;
        self.bad += o.bad;
        self.high = self.high.max(o.high);
    }
}
