//! The concept index: open payments by concept, and the cutting of a credit's text into
//! the digit runs that are looked up in it (rules §2).

use rustc_hash::FxHashMap;

/// The maximal runs of ASCII digits of a credit's text that may be a concept's
/// occurrence (§2): a concept appears only with no digit right before or after it, and
/// a digit of any script counts, so a run touching a non-ASCII digit (`٣120037`,
/// `120037１`) is none. "Digit" is read as [`char::is_numeric`], a superset of the
/// Unicode decimal digits (it also takes `²`, `½`, `Ⅻ`…): a wider reading only ever
/// leaves more credits to a person, never reconciles one more.
///
/// Only a run whose neighbouring byte is ≥ 0x80 has its neighbour decoded: ASCII text,
/// the common case, is cut exactly as before. A run's ends are character boundaries,
/// since the run and the byte after it (not an ASCII digit, yet after one) start
/// characters of their own.
pub(super) fn concept_runs(text: &str) -> impl Iterator<Item = &[u8]> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let rest = bytes.get(at..)?;
            let start = at + rest.iter().position(u8::is_ascii_digit)?;
            let len = bytes[start..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(bytes.len() - start);
            let end = start + len;
            at = end;
            let numeric_before = start > 0
                && bytes[start - 1] >= 0x80
                && text[..start]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_numeric);
            let numeric_after = bytes.get(end).is_some_and(|&b| b >= 0x80)
                && text[end..].chars().next().is_some_and(char::is_numeric);
            if !numeric_before && !numeric_after {
                return Some(&bytes[start..end]);
            }
        }
    })
}

/// A digit string of up to [`SHORT_DIGITS`] digits as a number, length included, so that
/// `"0120037"` and `"120037"` differ: strings are numbered by length, then by value.
/// Hashing and comparing a `u64` avoids touching the concept's heap string on every
/// lookup. Longer strings (no real concept is) go through a map of byte slices.
pub(super) fn short_key(digits: &[u8]) -> Option<u64> {
    let shorter = *SHORTER.get(digits.len())?;
    let value = digits
        .iter()
        .fold(0u64, |v, &d| v * 10 + u64::from(d.wrapping_sub(b'0')));
    Some(shorter + value)
}

/// Digit strings up to this length get a numeric key (10^18 + shorter ones < 2^64).
const SHORT_DIGITS: usize = 18;

/// `SHORTER[n]`: how many non-empty digit strings are shorter than `n` digits.
const SHORTER: [u64; SHORT_DIGITS + 1] = {
    let mut table = [0u64; SHORT_DIGITS + 1];
    let mut n = 2;
    let mut power = 10u64;
    while n <= SHORT_DIGITS {
        table[n] = table[n - 1] + power;
        power *= 10;
        n += 1;
    }
    table
};

/// Marks an empty slot of the concept table.
const EMPTY: usize = usize::MAX;
/// Set on a slot's head when more payments share the concept (their chain is in `next`).
/// Payment positions never reach this bit: a slice holds at most `isize::MAX` bytes.
const SHARED: usize = 1 << (usize::BITS - 1);

/// One slot of the concept table: a concept key and the first open payment with it.
#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    head: usize,
}

/// Open payments by concept.
///
/// A hand-rolled open-addressing table, because at a million payments the lookups are
/// the run time and each is a cache miss: key and value share one 16-byte slot, so a
/// lookup costs one miss where a general-purpose map costs two (control bytes, then
/// the bucket). A concept may belong to several open payments (the provider does not
/// promise uniqueness); those chain through `next`, which a concept held by a single
/// payment never touches.
pub(super) struct ConceptIndex<'a> {
    slots: Vec<Slot>,
    /// log2 of `slots.len()`.
    bits: u32,
    long: FxHashMap<&'a [u8], usize>,
    next: Vec<usize>,
}

impl<'a> ConceptIndex<'a> {
    pub(super) fn with_capacity(payments: usize) -> Self {
        // At most half full, so probes stay short.
        let len = (payments * 2).max(2).next_power_of_two();
        Self {
            slots: vec![
                Slot {
                    key: 0,
                    head: EMPTY
                };
                len
            ],
            bits: len.trailing_zeros(),
            long: FxHashMap::default(),
            next: vec![EMPTY; payments],
        }
    }

    /// Fibonacci hashing: the high bits of the product spread consecutive concepts
    /// (the provider issues them in sequence) evenly over the table.
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize
    }

    pub(super) fn insert_long(&mut self, digits: &'a [u8], pi: usize) {
        if let Some(head) = self.long.insert(digits, pi) {
            self.next[pi] = head;
        }
    }

    pub(super) fn insert_short(&mut self, key: u64, pi: usize) {
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            let slot = &mut self.slots[at];
            if slot.head == EMPTY {
                *slot = Slot { key, head: pi };
                return;
            }
            if slot.key == key {
                self.next[pi] = slot.head & !SHARED;
                slot.head = pi | SHARED;
                return;
            }
            at = (at + 1) & mask;
        }
    }

    /// Appends the open payments whose concept is exactly this run of digits.
    pub(super) fn extend_with(&self, run: RunKey<'_>, out: &mut Vec<usize>) {
        let mut pi = match run {
            RunKey::Short(key) => {
                let mask = self.slots.len() - 1;
                let mut at = self.home(key);
                loop {
                    let slot = self.slots[at];
                    if slot.head == EMPTY {
                        return;
                    }
                    if slot.key == key {
                        if slot.head & SHARED == 0 {
                            out.push(slot.head);
                            return;
                        }
                        break slot.head & !SHARED;
                    }
                    at = (at + 1) & mask;
                }
            }
            RunKey::Long(digits) => match self.long.get(digits) {
                Some(&head) => head,
                None => return,
            },
        };
        while pi != EMPTY {
            out.push(pi);
            pi = self.next[pi];
        }
    }
}

/// A run of digits from a credit's text, as the concept index looks it up.
#[derive(Clone, Copy)]
pub(super) enum RunKey<'t> {
    Short(u64),
    Long(&'t [u8]),
}
