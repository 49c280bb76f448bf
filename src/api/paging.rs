//! How a list is read so that a read marked complete misses nothing (provider API §13.2,
//! matching rules §5): which request comes next, decided from the pages received, and
//! the proof that a read holds everything. No I/O: the sync's reader sends the requests
//! and feeds the answers back.
//!
//! # Reading
//!
//! A list is cut into disjoint time windows (*slices*, `[from, to)` on the item's own
//! timestamp), read side by side. Within a slice, pages are not addressed by number but
//! by a moving cursor: every request asks for page 1 of `[cursor, to)`, and the next
//! cursor is the timestamp of the last item of the page. When a whole page shares the
//! cursor's instant, that instant (`[t, t + 1µs)`, which no window can split) is read
//! by page number. Every number is the answer's own ([`more_after`]): a provider may
//! serve fewer items per page than asked, and a page whose numbers contradict each
//! other or its items is never taken for the end of the list.
//!
//! While the list is quiet this reads every item once. While it changes, a reader
//! alone can miss an item: a removal inside an instant read by page number shifts the
//! items after it one place back, and a booking re-dated behind the cursor is never
//! under it. Counting does not catch either when a removal of an item already read
//! offsets the miss. So a read is not trusted because it ended; it is *proven*.
//!
//! # The proof
//!
//! Item ids are never reused (§13.6: unique per integration), so an item received by two
//! reads existed at every instant between them. The reader collects the window whole
//! (set `A`), asks the provider's `total` of the window once (`n`, at instant `q`), and
//! collects it whole again (set `B`). If every id of `A` is in `B`, each item of `A`
//! existed at `q`; if moreover `n = |A|`, the window held exactly `A` at `q`. An item
//! that existed throughout the read existed at `q`, so it is in `A`, however items were
//! inserted, removed or re-dated meanwhile, however many share an instant and however
//! many a page holds ([`proven`]). Otherwise the read collects once more and checks
//! `B` against that, a few times at most, and is incomplete if no pair agrees.
//!
//! A read that took one answer needs no second collect: a page that ends the list with
//! as many items as its `total` is the whole window at one instant.
//!
//! What the proof assumes: the window's `total` counts what its pages list, and an
//! item that is in both collects did not leave the window and come back around the
//! count (re-dated out of an incremental read's window and back, or a payment that left
//! `pending_bank` and returned). A full read's window is the whole list, so there only
//! the second can happen.
//!
//! The page the client returns ([`Page`]) and [`Paginator`], which reads a list by page
//! number, live here too.

use chrono::{DateTime, Duration, Utc};
use rustc_hash::FxHashSet;

use crate::api::ApiError;
use crate::domain::{BankTransaction, Offramp, Payment};
use crate::record::{BadRecord, Record};

/// One page of a list, items parsed one by one.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<Record<T>>,
    pub bad: Vec<BadRecord>,
    pub info: PageInfo,
}

/// The pagination block (§13.2), plus how many items the page carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageInfo {
    pub current_page: u32,
    pub per_page: u32,
    pub last_page: u32,
    pub total: u64,
    pub item_count: usize,
}

/// Records that carry the provider's id (for dedupe).
pub trait Identified {
    fn wire_id(&self) -> &str;
}
impl Identified for Payment {
    fn wire_id(&self) -> &str {
        self.id.as_str()
    }
}
impl Identified for Offramp {
    fn wire_id(&self) -> &str {
        self.id.as_str()
    }
}
impl Identified for BankTransaction {
    fn wire_id(&self) -> &str {
        self.id.as_str()
    }
}

/// The ids a collect has received, for dropping repeats.
pub trait Received {
    /// Notes that `id` was received; true the first time.
    fn first(&mut self, id: &str) -> bool;
}

impl<S: std::hash::BuildHasher> Received for std::collections::HashSet<String, S> {
    fn first(&mut self, id: &str) -> bool {
        !self.contains(id) && self.insert(id.to_owned())
    }
}

/// One request of a slice: page `page` of `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub page: u32,
}

/// How the next request of a slice is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Page 1 of `[cursor, end)`.
    Cursor,
    /// Page `n` of the one microsecond starting at the cursor: more than a page of items
    /// share that instant.
    Instant(u32),
    /// Page `n` of `[cursor, end)`: a full page held no readable item, so no timestamp
    /// says where it ended. Its records are bad records, which make the list incomplete
    /// anyway; numbered pages still store the rest of them for a person to see.
    Numbered(u32),
}

/// One slice of a list read by a moving cursor (see the module docs).
#[derive(Debug)]
pub struct Keyset {
    /// The smallest page size the provider's answers said they served (§13.2: a
    /// provider may serve fewer items per page than asked).
    served: u32,
    /// The slice's end (exclusive); `None` for the last slice.
    end: Option<DateTime<Utc>>,
    cursor: Option<DateTime<Utc>>,
    mode: Mode,
    done: bool,
    requests: u32,
    max_total: u64,
    /// Items received again (a cursor page repeats the items of its first instant).
    pub duplicates: u64,
}

/// How many requests a slice may take before the provider is judged to be paging
/// without end: three per page of the largest `total` seen, plus a few. The cursor
/// repeats the items sharing a page's last instant, so a page may bring fewer than
/// `per_page` new items; a threefold margin covers that and still stops a server that
/// never ends a list.
fn request_cap(max_total: u64, per_page: u32) -> u64 {
    3 * (max_total / u64::from(per_page.max(1)) + 2)
}

impl Keyset {
    pub fn new(from: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, per_page: u32) -> Self {
        Self {
            served: per_page.max(1),
            end,
            cursor: from,
            mode: Mode::Cursor,
            done: false,
            requests: 0,
            max_total: 0,
            duplicates: 0,
        }
    }

    /// The same slice, ending at `end` instead: the first slice of a list is started
    /// before the list's length is known, and cut once its first page tells it.
    pub fn with_end(mut self, end: Option<DateTime<Utc>>) -> Self {
        self.end = end;
        if let (Some(c), Some(e)) = (self.cursor, end)
            && c >= e
        {
            self.done = true;
        }
        self
    }

    /// The next request, or `None` when the slice is read to its end.
    pub fn next_request(&self) -> Option<Request> {
        if self.done {
            return None;
        }
        Some(match self.mode {
            Mode::Instant(page) => {
                let t = self.cursor.unwrap_or(DateTime::<Utc>::MIN_UTC);
                Request {
                    from: Some(t),
                    to: Some(one_microsecond_after(t).min_or(self.end)),
                    page,
                }
            }
            Mode::Cursor | Mode::Numbered(_) => Request {
                from: self.cursor,
                to: self.end,
                page: match self.mode {
                    Mode::Numbered(page) => page,
                    _ => 1,
                },
            },
        })
    }

    /// Takes the answer to [`Keyset::next_request`]: drops items already received (by
    /// id, with `seen` shared by every slice of the collect) and moves the cursor.
    /// `stamp` is the list's timestamp. Fails when the provider keeps answering full
    /// pages past any plausible end.
    pub fn accept<T: Identified>(
        &mut self,
        endpoint: &str,
        page: &mut Page<T>,
        stamp: fn(&T) -> DateTime<Utc>,
        seen: &mut impl Received,
    ) -> Result<(), ApiError> {
        self.requests += 1;
        let info = page.info;
        self.max_total = self.max_total.max(info.total);
        // The last timestamp is read before deduplication: a repeated item still says
        // where the page ended.
        let last = page.items.iter().map(|r| stamp(&r.value)).max();
        let before = page.items.len();
        page.items.retain(|r| seen.first(r.value.wire_id()));
        self.duplicates += (before - page.items.len()) as u64;

        self.served = self.served.min(info.per_page.max(1));
        let full = more_after(&info).map_err(|why| ApiError::Contradiction {
            endpoint: endpoint.to_owned(),
            why,
        })?;
        match self.mode {
            Mode::Instant(p) if full => self.mode = Mode::Instant(p + 1),
            Mode::Instant(_) => {
                // The instant is read; go on after it.
                let next = one_microsecond_after(self.cursor.unwrap_or(DateTime::<Utc>::MIN_UTC));
                self.mode = Mode::Cursor;
                self.cursor = Some(next);
                if self.end.is_some_and(|e| next >= e) {
                    self.done = true;
                }
            }
            Mode::Numbered(p) if full => self.mode = Mode::Numbered(p + 1),
            _ if !full => self.done = true,
            Mode::Cursor | Mode::Numbered(_) => match last {
                Some(l) if self.cursor.is_none_or(|c| l > c) => self.cursor = Some(l),
                // A full page at one instant: read that instant by page number.
                Some(_) => self.mode = Mode::Instant(2),
                None => self.mode = Mode::Numbered(2),
            },
        }
        if !self.done && u64::from(self.requests) > request_cap(self.max_total, self.served) {
            return Err(ApiError::Runaway {
                endpoint: endpoint.to_owned(),
                pages: self.requests,
                total: self.max_total,
                per_page: self.served,
            });
        }
        Ok(())
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }
}

/// What a page's own pagination block says of its request's window (§13.2): `Ok(true)`
/// when pages follow, `Ok(false)` when the window ends on this page, `Err` naming the
/// contradiction when the numbers disagree with each other or with the items carried.
///
/// Every number is the answer's own: a provider may serve fewer items per page than
/// asked and says so in `per_page`. A short page before `last_page` is not the end, and
/// a last page must carry every item `total` leaves for it.
pub fn more_after(info: &PageInfo) -> Result<bool, String> {
    let per_page = u64::from(info.per_page);
    let count = info.item_count as u64;
    if per_page == 0 {
        return Err("per_page is 0".into());
    }
    if count > per_page {
        return Err(format!("{count} items on a page of {per_page}"));
    }
    let pages = info.total.div_ceil(per_page).max(1);
    if u64::from(info.last_page) != pages {
        return Err(format!(
            "last_page is {} but {} items at {per_page} a page make {pages}",
            info.last_page, info.total
        ));
    }
    if info.current_page < info.last_page {
        if count == 0 {
            return Err(format!(
                "page {} of {} is empty",
                info.current_page, info.last_page
            ));
        }
        return Ok(true);
    }
    let before = u64::from(info.current_page.saturating_sub(1)) * per_page;
    let left = info.total.saturating_sub(before).min(per_page);
    if count != left {
        return Err(format!(
            "page {} of {} carries {count} items where total {} leaves {left}",
            info.current_page, info.last_page, info.total
        ));
    }
    Ok(false)
}

fn one_microsecond_after(t: DateTime<Utc>) -> DateTime<Utc> {
    t + Duration::microseconds(1)
}

trait MinOr {
    fn min_or(self, other: Option<DateTime<Utc>>) -> DateTime<Utc>;
}

impl MinOr for DateTime<Utc> {
    fn min_or(self, other: Option<DateTime<Utc>>) -> DateTime<Utc> {
        other.map_or(self, |o| self.min(o))
    }
}

/// A time window `[from, to)`; `None` is unbounded on that side.
pub type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Cuts `[first, until)` into at most `n` slices of equal length, the last one open
/// (`None`: to the list's end, so that items stamped after `until` are read too). The
/// first slice starts at `from` (the read's own start, `None` for the beginning).
pub fn slices(
    from: Option<DateTime<Utc>>,
    first: DateTime<Utc>,
    until: DateTime<Utc>,
    n: usize,
) -> Vec<Window> {
    let n = n.max(1);
    let span = until.signed_duration_since(first);
    if n == 1 || span <= Duration::microseconds(n as i64) {
        return vec![(from, None)];
    }
    let step = span / n as i32;
    let mut out = Vec::with_capacity(n);
    let mut start = from;
    for i in 1..n {
        let cut = first + step * i as i32;
        out.push((start, Some(cut)));
        start = Some(cut);
    }
    out.push((start, None));
    out
}

/// The proof that a list read holds every item that existed from its start to its end
/// (matching rules §5), from two collects of the whole window and one count between
/// them (the module docs say why it holds). `first`: the ids the earlier collect
/// received; `count`: the provider's `total` of the window, asked after that collect
/// ended and before the next began; `second`: the ids the next collect received.
///
/// `Ok` when every item of the first collect was received again and the count equals
/// them; otherwise `Err` says what did not agree, and the read must collect again.
pub fn proven<S: std::hash::BuildHasher>(
    first: &std::collections::HashSet<String, S>,
    count: u64,
    second: &std::collections::HashSet<String, S>,
) -> Result<(), String> {
    let gone = first.iter().filter(|id| !second.contains(*id)).count();
    verdict(first.len() as u64, count, gone)
}

/// [`proven`] on figures alone: the items the first collect received, the count between
/// the collects, and how many of the first collect's items the second did not receive.
pub fn verdict(received: u64, count: u64, gone: usize) -> Result<(), String> {
    if gone > 0 {
        return Err(format!(
            "{gone} item(s) received by one read were gone from the next"
        ));
    }
    if count != received {
        return Err(format!(
            "the provider counted {count} item(s) between two reads that received {received}"
        ));
    }
    Ok(())
}

/// Keeps a list read honest: dedupes items by id across pages, decides when to stop,
/// and refuses to follow a server that never stops (§13.2).
#[derive(Debug)]
pub struct Paginator {
    /// The page size asked for, lowered to the smallest an answer said it served.
    per_page: u32,
    next: u32,
    done: bool,
    max_total: u64,
    /// Ids come from the authenticated provider, so a fast hash without flooding
    /// protection is fine here.
    seen: FxHashSet<String>,
    pub pages_read: u32,
    pub duplicates: u64,
}

impl Paginator {
    pub fn new(per_page: u32) -> Self {
        Self {
            per_page,
            next: 1,
            done: false,
            max_total: 0,
            seen: FxHashSet::default(),
            pages_read: 0,
            duplicates: 0,
        }
    }

    /// The next page to read, or `None` when the list is complete.
    pub fn next_page(&self) -> Option<u32> {
        (!self.done).then_some(self.next)
    }

    /// Takes a page: drops items already seen (by id), updates the stop state. Fails when
    /// the page's numbers contradict each other or its items ([`more_after`]).
    pub fn accept<T: Identified>(
        &mut self,
        endpoint: &str,
        page: &mut Page<T>,
    ) -> Result<(), ApiError> {
        self.pages_read += 1;
        let info = page.info;
        self.max_total = self.max_total.max(info.total);
        let before = page.items.len();
        page.items
            .retain(|r| self.seen.insert(r.value.wire_id().to_owned()));
        self.duplicates += (before - page.items.len()) as u64;
        self.per_page = self.per_page.min(info.per_page.max(1));
        let more = more_after(&info).map_err(|why| ApiError::Contradiction {
            endpoint: endpoint.to_owned(),
            why,
        })?;
        if !more {
            self.done = true;
            return Ok(());
        }
        // A page before `last_page` was checked against `total`: the next page number
        // is at most `total / per_page + 1`, so a server cannot lead it on forever.
        self.next += 1;
        Ok(())
    }

    pub fn items_seen(&self) -> u64 {
        self.seen.len() as u64
    }

    /// The last page the largest `total` seen so far implies (1 before any page): how far
    /// a reader may read ahead. [`Paginator::accept`] still decides where the list ends.
    pub fn last_known_page(&self) -> u32 {
        let pages = self.max_total.div_ceil(u64::from(self.per_page.max(1)));
        u32::try_from(pages).unwrap_or(u32::MAX).max(1)
    }
}

#[cfg(test)]
mod tests;
