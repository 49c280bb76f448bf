//! How a list is read so that a read marked complete misses nothing (provider API §13.2,
//! matching rules §5): which request comes next, decided from the pages received. No
//! I/O: the sync's reader sends the requests and feeds the answers back.
//!
//! # Why no item is missed
//!
//! A list is cut into disjoint time windows (*slices*, `[from, to)` on the item's own
//! timestamp), read side by side. Within a slice, pages are not addressed by number but
//! by a moving cursor: every request asks for page 1 of `[cursor, to)`, and the next
//! cursor is the timestamp of the last item of a full page.
//!
//! Let `x` be an item that is in the list during the whole read of its slice. Before
//! each request, either `x` was already received or `cursor ≤ ts(x)`: true at the start
//! (`cursor = from`). A request returns the first `per_page` items of `[cursor, to)` in
//! the list's order (timestamp, then id) *as the provider holds them when it answers*;
//! `x` is one of the candidates. A short page holds every candidate, so it holds `x`.
//! A full page without `x` holds only items ordered before `x`, so its last timestamp,
//! the next cursor, is `≤ ts(x)`. Inserts and removals anywhere, at any moment, only
//! change which *other* items a page holds. So when a slice ends (a short page, or the
//! last page), every item that existed throughout the read has been received: no page
//! boundary can drop an item, as numbered pages do when the list shifts between two
//! requests.
//!
//! The cursor moves strictly forward (a full page whose last timestamp is the cursor
//! itself means at least `per_page` items share one instant; those are read by page
//! number within that one microsecond, `[t, t + 1µs)`, the one place where a removal
//! inside the same microsecond between two pages could shift an item: the provider
//! would need more than `per_page` items stamped in one microsecond and a removal among
//! them during the read).
//!
//! Items *inserted* during the read at a position already passed are not covered by the
//! argument (the contract says such an item may be missed). The reader catches them
//! where it can: after the read it asks the list's `total` for `[from, started)` once
//! more; more items than were received means something was inserted behind the cursor,
//! and the list is read again (see `crate::sync`).
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
    per_page: u32,
    /// The slice's end (exclusive); `None` for the last slice.
    end: Option<DateTime<Utc>>,
    cursor: Option<DateTime<Utc>>,
    mode: Mode,
    done: bool,
    requests: u32,
    max_total: u64,
    /// Items received, without repeats.
    pub items: u64,
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
            per_page,
            end,
            cursor: from,
            mode: Mode::Cursor,
            done: false,
            requests: 0,
            max_total: 0,
            items: 0,
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

    /// Takes the answer to [`Keyset::next_request`]: drops items already seen (by id,
    /// with `seen` shared by every slice and pass of the list) and moves the cursor.
    /// `stamp` is the list's timestamp. Fails when the provider keeps answering full
    /// pages past any plausible end.
    pub fn accept<T: Identified>(
        &mut self,
        endpoint: &str,
        page: &mut Page<T>,
        stamp: fn(&T) -> DateTime<Utc>,
        seen: &mut FxHashSet<String>,
    ) -> Result<(), ApiError> {
        self.requests += 1;
        let info = page.info;
        self.max_total = self.max_total.max(info.total);
        // The last timestamp is read before deduplication: a repeated item still says
        // where the page ended.
        let last = page.items.iter().map(|r| stamp(&r.value)).max();
        let before = page.items.len();
        page.items
            .retain(|r| seen.insert(r.value.wire_id().to_owned()));
        let kept = page.items.len() as u64;
        self.items += kept;
        self.duplicates += (before as u64) - kept;

        let full = info.item_count as u64 >= u64::from(self.per_page)
            && info.current_page < info.last_page;
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
        if !self.done && u64::from(self.requests) > request_cap(self.max_total, self.per_page) {
            return Err(ApiError::Runaway {
                endpoint: endpoint.to_owned(),
                pages: self.requests,
                total: self.max_total,
                per_page: self.per_page,
            });
        }
        Ok(())
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }
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

/// Keeps a list read honest: dedupes items by id across pages, decides when to stop,
/// and refuses to follow a server that never stops (§13.2).
#[derive(Debug)]
pub struct Paginator {
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
    /// the server keeps claiming pages past the cap `total / per_page + 2`.
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
        let short = (info.item_count as u64) < u64::from(self.per_page);
        if info.current_page >= info.last_page || short {
            self.done = true;
            return Ok(());
        }
        self.next += 1;
        let cap = self.max_total / u64::from(self.per_page.max(1)) + 2;
        if u64::from(self.next) > cap {
            return Err(ApiError::Runaway {
                endpoint: endpoint.to_owned(),
                pages: self.pages_read,
                total: self.max_total,
                per_page: self.per_page,
            });
        }
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
mod tests {
    use super::*;
    use crate::api::{PageInfo, Record};
    use crate::domain::{BankTransaction, BankTxId, Currency, Direction, Iban, Money};
    use rust_decimal::Decimal;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn tx(id: &str, s: i64) -> Record<BankTransaction> {
        Record {
            value: BankTransaction {
                id: BankTxId::parse(id).unwrap(),
                iban: Iban::parse("ES9121000418450200051332").unwrap(),
                amount: Money::from_units(Decimal::ONE, Currency::parse("EUR").unwrap()),
                direction: Direction::Credit,
                concept_text: String::new(),
                counterparty_name: None,
                counterparty_iban: None,
                booked_at: at(s),
                value_date: None,
                reconciled_payment_id: None,
            },
            raw: String::new(),
        }
    }

    /// A list as a provider holds it, answering one request.
    fn serve(list: &[(&str, i64)], r: Request, per_page: u32) -> Page<BankTransaction> {
        let mut items: Vec<_> = list
            .iter()
            .filter(|(_, s)| r.from.is_none_or(|f| at(*s) >= f) && r.to.is_none_or(|t| at(*s) < t))
            .map(|(id, s)| (at(*s), id.to_string()))
            .collect();
        items.sort();
        let total = items.len() as u64;
        let last_page = total.div_ceil(u64::from(per_page)).max(1) as u32;
        let skip = ((r.page - 1) * per_page) as usize;
        let page: Vec<_> = items
            .into_iter()
            .skip(skip)
            .take(per_page as usize)
            .map(|(t, id)| tx(&id, t.timestamp() - 1_800_000_000))
            .collect();
        Page {
            info: PageInfo {
                current_page: r.page,
                per_page,
                last_page,
                total,
                item_count: page.len(),
            },
            items: page,
            bad: Vec::new(),
        }
    }

    fn stamp(t: &BankTransaction) -> DateTime<Utc> {
        t.booked_at
    }

    /// Reads the whole list with one slice; `between` may change the list before each
    /// request (given the request's number).
    fn read_all(
        list: &mut Vec<(String, i64)>,
        per_page: u32,
        mut between: impl FnMut(u32, &mut Vec<(String, i64)>),
    ) -> FxHashSet<String> {
        let mut k = Keyset::new(None, None, per_page);
        let mut seen = FxHashSet::default();
        while let Some(r) = k.next_request() {
            between(k.requests(), list);
            let view: Vec<(&str, i64)> = list.iter().map(|(i, s)| (i.as_str(), *s)).collect();
            let mut page = serve(&view, r, per_page);
            k.accept("test", &mut page, stamp, &mut seen).unwrap();
        }
        seen
    }

    #[test]
    fn a_quiet_list_is_read_whole_with_one_request_per_page_and_a_little() {
        let mut list: Vec<(String, i64)> = (0..25).map(|i| (format!("T{i:02}"), i)).collect();
        let seen = read_all(&mut list, 10, |_, _| {});
        assert_eq!(seen.len(), 25);
    }

    #[test]
    fn items_sharing_one_instant_beyond_a_page_are_read_by_page_number_within_it() {
        let mut list: Vec<(String, i64)> = (0..23).map(|i| (format!("T{i:02}"), 5)).collect();
        list.extend((0..4).map(|i| (format!("U{i}"), 9)));
        let seen = read_all(&mut list, 10, |_, _| {});
        assert_eq!(seen.len(), 27);
    }

    #[test]
    fn inserts_and_removals_before_the_cursor_never_hide_an_item_that_was_there_all_along() {
        // Every request is preceded by an insert at the very start of the list and the
        // removal of the oldest original item not yet removed: numbered pages would
        // skip an item at every page boundary.
        let original: Vec<(String, i64)> = (0..60).map(|i| (format!("T{i:02}"), 100 + i)).collect();
        let mut list = original.clone();
        let mut removed = Vec::new();
        let seen = read_all(&mut list, 7, |n, l| {
            l.push((format!("NEW{n}"), i64::from(n)));
            if let Some(pos) = l.iter().position(|(id, _)| id.starts_with('T')) {
                removed.push(l.remove(pos).0);
            }
        });
        for (id, _) in &original {
            assert!(
                seen.contains(id) || removed.contains(id),
                "{id} existed throughout and was missed"
            );
        }
    }

    #[test]
    fn a_provider_that_never_ends_a_list_is_stopped() {
        let mut k = Keyset::new(None, None, 2);
        let mut seen = FxHashSet::default();
        let mut n = 0;
        let err = loop {
            let Some(_) = k.next_request() else {
                panic!("ended")
            };
            n += 1;
            let mut page = Page {
                items: vec![tx(&format!("A{n}"), n), tx(&format!("B{n}"), n + 1)],
                bad: Vec::new(),
                info: PageInfo {
                    current_page: 1,
                    per_page: 2,
                    last_page: 3,
                    total: 6,
                    item_count: 2,
                },
            };
            if let Err(e) = k.accept("test", &mut page, stamp, &mut seen) {
                break e;
            }
        };
        assert!(matches!(err, ApiError::Runaway { .. }), "{err}");
        assert!(n <= 16, "{n} requests");
    }

    #[test]
    fn slices_cover_the_window_without_overlap_and_the_last_is_open() {
        let s = slices(Some(at(0)), at(10), at(110), 4);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].0, Some(at(0)));
        for w in s.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        assert_eq!(s[3].1, None);
        assert_eq!(slices(None, at(10), at(10), 4), vec![(None, None)]);
        assert_eq!(slices(None, at(10), at(100), 1), vec![(None, None)]);
    }
}
