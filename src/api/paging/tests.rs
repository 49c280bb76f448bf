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
fn a_cursor_page_repeats_its_last_instant_and_the_repeats_are_counted_not_kept() {
    // Pages of 4 over instants 0,0,1,1,2,2,...: each cursor page starts at the last
    // instant of the one before, so its first two items are repeats.
    let list: Vec<(String, i64)> = (0..12).map(|i| (format!("T{i:02}"), i / 2)).collect();
    let mut k = Keyset::new(None, None, 4);
    let mut seen = FxHashSet::default();
    let mut kept = 0;
    while let Some(r) = k.next_request() {
        let view: Vec<(&str, i64)> = list.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        let mut page = serve(&view, r, 4);
        k.accept("test", &mut page, stamp, &mut seen).unwrap();
        kept += page.items.len();
    }
    assert_eq!((kept, seen.len()), (12, 12));
    assert_eq!(k.duplicates, 2 * u64::from(k.requests() - 1));
}

#[test]
fn an_instant_read_by_page_number_at_the_end_of_a_slice_ends_the_slice_only_there() {
    // 23 items at instant 5, 4 at instant 9, and a slice that ends at 20: the instant
    // is read by page number, then the cursor goes on after it to the rest.
    let mut list: Vec<(String, i64)> = (0..23).map(|i| (format!("T{i:02}"), 5)).collect();
    list.extend((0..4).map(|i| (format!("U{i}"), 9)));
    list.push(("LATE".into(), 30));
    let mut k = Keyset::new(None, Some(at(20)), 10);
    let mut seen = FxHashSet::default();
    while let Some(r) = k.next_request() {
        let view: Vec<(&str, i64)> = list.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        let mut page = serve(&view, r, 10);
        k.accept("test", &mut page, stamp, &mut seen).unwrap();
    }
    assert_eq!(seen.len(), 27);
    assert!(!seen.contains("LATE"), "past the slice's end");
    // An instant that is the slice's last microsecond ends the slice with it.
    let list: Vec<(String, i64)> = (0..15).map(|i| (format!("T{i:02}"), 5)).collect();
    let end = at(5) + Duration::microseconds(1);
    let mut k = Keyset::new(None, Some(end), 10);
    let mut seen = FxHashSet::default();
    let mut requests = 0;
    while let Some(r) = k.next_request() {
        requests += 1;
        let view: Vec<(&str, i64)> = list.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        let mut page = serve(&view, r, 10);
        k.accept("test", &mut page, stamp, &mut seen).unwrap();
    }
    assert_eq!((seen.len(), requests), (15, 3));
}

#[test]
fn pages_of_unreadable_records_are_followed_by_page_number_to_the_end() {
    // No readable item says where a page ended: the rest is read by number.
    let mut k = Keyset::new(None, None, 2);
    let mut seen = FxHashSet::default();
    let mut asked = Vec::new();
    while let Some(r) = k.next_request() {
        asked.push(r.page);
        assert!(asked.len() < 10, "never ended: {asked:?}");
        let n = asked.len() as u32;
        let mut page: Page<BankTransaction> = Page {
            items: Vec::new(),
            bad: Vec::new(),
            info: PageInfo {
                current_page: r.page,
                per_page: 2,
                last_page: 3,
                total: 6,
                item_count: 2,
            },
        };
        if n == 3 {
            page.info.current_page = 3;
        }
        k.accept("test", &mut page, stamp, &mut seen).unwrap();
    }
    assert_eq!(asked, vec![1, 2, 3]);
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

fn info(current_page: u32, per_page: u32, last_page: u32, total: u64, n: usize) -> PageInfo {
    PageInfo {
        current_page,
        per_page,
        last_page,
        total,
        item_count: n,
    }
}

#[test]
fn a_page_ends_its_window_only_when_its_own_numbers_say_so() {
    assert_eq!(more_after(&info(1, 50, 3, 120, 50)), Ok(true));
    assert_eq!(more_after(&info(3, 50, 3, 120, 20)), Ok(false));
    assert_eq!(more_after(&info(1, 50, 1, 0, 0)), Ok(false));
    // Clamped: three served where more were asked, and the answer says so.
    assert_eq!(more_after(&info(1, 3, 2, 6, 3)), Ok(true));
    // Short, but not the last page: not the end.
    assert_eq!(more_after(&info(1, 3, 2, 6, 2)), Ok(true));
    // Past the last page: empty, as the contract says.
    assert_eq!(more_after(&info(4, 50, 3, 120, 0)), Ok(false));
}

#[test]
fn a_page_whose_numbers_contradict_each_other_or_its_items_is_refused() {
    for (i, why) in [
        (info(1, 0, 1, 0, 0), "per_page is 0"),
        (info(1, 3, 2, 6, 4), "4 items on a page of 3"),
        (info(1, 3, 1, 6, 3), "last_page is 1 but 6 items"),
        (info(1, 3, 3, 6, 3), "last_page is 3 but 6 items"),
        (info(1, 3, 2, 6, 0), "page 1 of 2 is empty"),
        (
            info(2, 3, 2, 6, 2),
            "carries 2 items where total 6 leaves 3",
        ),
        (info(1, 50, 1, 5, 6), "6 items where total 5 leaves 5"),
        (
            info(3, 50, 2, 60, 1),
            "carries 1 items where total 60 leaves 0",
        ),
    ] {
        let err = more_after(&i).unwrap_err();
        assert!(err.contains(why), "{i:?}: {err}");
    }
}

fn ids(v: &[&str]) -> FxHashSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn two_collects_prove_a_read_only_if_the_second_kept_the_first_and_the_count_agrees() {
    let a = ids(&["a", "b", "c"]);
    assert_eq!(proven(&a, 3, &ids(&["a", "b", "c"])), Ok(()));
    // Items that arrived after the count are the second collect's own business.
    assert_eq!(proven(&a, 3, &ids(&["a", "b", "c", "new"])), Ok(()));
    // One item removed after it was read, one never read: the count alone agrees.
    let err = proven(&a, 3, &ids(&["a", "c", "missed"])).unwrap_err();
    assert!(
        err.contains("1 item(s) received by one read were gone"),
        "{err}"
    );
    // The count says an item existed that the first collect did not receive.
    let err = proven(&a, 4, &ids(&["a", "b", "c", "missed"])).unwrap_err();
    assert!(
        err.contains("counted 4 item(s) between two reads that received 3"),
        "{err}"
    );
    let err = proven(&a, 2, &a).unwrap_err();
    assert!(err.contains("counted 2"), "{err}");
}

#[test]
fn a_clamped_provider_is_read_whole_by_the_cursor() {
    // The provider serves 3 where 10 are asked, and says so.
    let list: Vec<(String, i64)> = (0..11).map(|i| (format!("T{i:02}"), i / 2)).collect();
    let mut k = Keyset::new(None, None, 10);
    let mut seen = FxHashSet::default();
    while let Some(r) = k.next_request() {
        let view: Vec<(&str, i64)> = list.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        let mut page = serve(&view, r, 3);
        k.accept("test", &mut page, stamp, &mut seen).unwrap();
    }
    assert_eq!(seen.len(), 11);
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

/// A provider that changes its list before every request it answers, as the contract
/// allows: inserts anywhere, removals of anything, re-dated items, many items at one
/// instant, and fewer items per page than asked.
mod adversary {
    use super::*;
    use proptest::prelude::*;

    /// One change to the list, drawn before a request.
    #[derive(Debug, Clone)]
    enum Change {
        None,
        Insert(i64),
        /// Removes the item at this position (modulo the list's length).
        Remove(usize),
        /// Moves the item at this position to this instant.
        Redate(usize, i64),
        /// Moves an item ahead of the request's `from` (the one at this position among
        /// them) behind it: the re-date a cursor cannot see.
        Behind(usize),
        /// Removes an item behind the request's `from` (most likely read already): the
        /// removal that offsets a miss in a count.
        RemoveBehind(usize),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            2 => Just(Change::None),
            1 => (0..12i64).prop_map(Change::Insert),
            1 => any::<usize>().prop_map(Change::Remove),
            1 => (any::<usize>(), 0..12i64).prop_map(|(i, t)| Change::Redate(i, t)),
            2 => any::<usize>().prop_map(Change::Behind),
            1 => any::<usize>().prop_map(Change::RemoveBehind),
        ]
    }

    struct Provider {
        /// `(id, instant)`; ids are never reused.
        list: Vec<(String, i64)>,
        changes: Vec<Change>,
        next_change: usize,
        next_id: u32,
        served: u32,
        removed: FxHashSet<String>,
        requests: u32,
    }

    impl Provider {
        fn change(&mut self, from: Option<DateTime<Utc>>) {
            let c = self.changes.get(self.next_change).cloned();
            self.next_change += 1;
            let n = self.list.len();
            match c {
                Some(Change::Insert(t)) => {
                    self.next_id += 1;
                    self.list.push((format!("N{:04}", self.next_id), t));
                }
                Some(Change::Remove(i)) if n > 0 => {
                    let (id, _) = self.list.remove(i % n);
                    self.removed.insert(id);
                }
                Some(Change::Redate(i, t)) if n > 0 => self.list[i % n].1 = t,
                Some(Change::RemoveBehind(i)) => {
                    let from = from.map_or(0, |f| f.timestamp() - 1_800_000_000);
                    let behind: Vec<usize> = (0..n).filter(|&j| self.list[j].1 <= from).collect();
                    if !behind.is_empty() {
                        let (id, _) = self.list.remove(behind[i % behind.len()]);
                        self.removed.insert(id);
                    }
                }
                Some(Change::Behind(i)) => {
                    let from = from.map_or(0, |f| f.timestamp() - 1_800_000_000);
                    let ahead: Vec<usize> = (0..n).filter(|&j| self.list[j].1 > from).collect();
                    if !ahead.is_empty() && from > 0 {
                        let j = ahead[i % ahead.len()];
                        self.list[j].1 = from - 1;
                    }
                }
                _ => {}
            }
        }

        fn answer(&mut self, r: Request) -> Page<BankTransaction> {
            self.change(r.from);
            self.requests += 1;
            let view: Vec<(&str, i64)> = self.list.iter().map(|(i, s)| (i.as_str(), *s)).collect();
            serve(&view, r, self.served)
        }

        fn count(&mut self) -> u64 {
            self.change(None);
            self.requests += 1;
            self.list.len() as u64
        }

        /// One collect of the whole list, as one slice: the ids received, or `None`
        /// when the reader refused an answer.
        fn collect(&mut self, asked: u32) -> Option<(FxHashSet<String>, u32)> {
            let mut k = Keyset::new(None, None, asked);
            let mut got = FxHashSet::default();
            let before = self.requests;
            while let Some(r) = k.next_request() {
                let mut page = self.answer(r);
                k.accept("test", &mut page, stamp, &mut got).ok()?;
            }
            Some((got, self.requests - before))
        }
    }

    /// The reader's proof (`crate::sync`'s `collect_proven`): whether the read is
    /// complete, and every id it received.
    fn read(p: &mut Provider, asked: u32) -> (bool, FxHashSet<String>) {
        let mut all = FxHashSet::default();
        let Some((mut first, requests)) = p.collect(asked) else {
            return (false, all);
        };
        all.extend(first.iter().cloned());
        if requests == 1 {
            return (true, all);
        }
        for _ in 0..3 {
            let count = p.count();
            let Some((second, _)) = p.collect(asked) else {
                return (false, all);
            };
            all.extend(second.iter().cloned());
            if proven(&first, count, &second).is_ok() {
                return (true, all);
            }
            first = second;
        }
        (false, all)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Whatever the provider does between requests, a read the reader calls complete
        /// holds every item that was in the list from the read's start to its end.
        #[test]
        fn a_read_called_complete_holds_every_item_that_existed_throughout(
            instants in proptest::collection::vec(0..12i64, 0..40),
            changes in proptest::collection::vec(change(), 0..120),
            asked in 2..8u32,
            clamp in 1..8u32,
        ) {
            let mut p = Provider {
                list: instants.iter().enumerate().map(|(i, t)| (format!("T{i:04}"), *t)).collect(),
                changes,
                next_change: 0,
                next_id: 0,
                served: clamp.min(asked),
                removed: FxHashSet::default(),
                requests: 0,
            };
            let original: Vec<String> = p.list.iter().map(|(id, _)| id.clone()).collect();
            let (complete, got) = read(&mut p, asked);
            if complete {
                for id in &original {
                    prop_assert!(
                        got.contains(id) || p.removed.contains(id),
                        "{id} existed throughout and was missed"
                    );
                }
            }
        }

        /// A list nobody changes is read complete, whole, however the provider pages.
        #[test]
        fn a_quiet_list_is_read_complete_and_whole(
            instants in proptest::collection::vec(0..12i64, 0..60),
            asked in 1..8u32,
            clamp in 1..8u32,
        ) {
            let mut p = Provider {
                list: instants.iter().enumerate().map(|(i, t)| (format!("T{i:04}"), *t)).collect(),
                changes: Vec::new(),
                next_change: 0,
                next_id: 0,
                served: clamp.min(asked),
                removed: FxHashSet::default(),
                requests: 0,
            };
            let (complete, got) = read(&mut p, asked);
            prop_assert!(complete);
            prop_assert_eq!(got.len(), instants.len());
        }
    }
}
