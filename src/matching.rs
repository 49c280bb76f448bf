//! The matching core: which open payment goes with which open credit, and a reason for
//! everything else. No I/O and no clock: records come in already parsed, `now` is an
//! argument, and the answer is a value (`Decisions`).
//!
//! The specification is `reconciliation-rules.md` §2–§4. Conditions 5 (complete sync)
//! and 6 (re-read right before the call) are partly outside: the caller says whether the
//! sync was complete, and the reconcile step re-reads each payment before its call.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::domain::{
    BankTransaction, BankTxId, Direction, Money, Offramp, OfframpId, OfframpStatus, Payment,
    PaymentId,
};

#[cfg(test)]
mod tests;

/// Why an item needs a person. Exactly one per unreconciled open payment, open credit,
/// unexplained debit and unpaid finished off-ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The concept matches uniquely; the amount differs.
    AmountMismatch,
    /// The concept matches uniquely; the currency differs.
    CurrencyMismatch,
    /// More than one candidate on either side.
    Ambiguous,
    /// Concept and amount match, but the credit was booked before the payment was created
    /// (beyond the tolerance).
    TooEarly,
    /// Concept, amount and dates match, but the payment is older than the look-back window.
    OutsideLookback,
    /// A credit whose text contains no open payment's concept.
    NoConcept,
    /// An open payment with no candidate credit yet.
    AwaitingTransfer,
    /// The reconcile call answered an error (set by the reconcile step, not the core).
    ReconcileFailed,
    /// A confident match that was not reconciled because the sync was incomplete.
    SyncIncomplete,
    /// A debit that pays out no finished off-ramp.
    UnexplainedDebit,
    /// A finished off-ramp with no debit once its grace period is over.
    PayoutNotSeen,
}

impl Reason {
    /// The stable name used in the database, the CSVs and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AmountMismatch => "amount_mismatch",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::Ambiguous => "ambiguous",
            Self::TooEarly => "too_early",
            Self::OutsideLookback => "outside_lookback",
            Self::NoConcept => "no_concept",
            Self::AwaitingTransfer => "awaiting_transfer",
            Self::ReconcileFailed => "reconcile_failed",
            Self::SyncIncomplete => "sync_incomplete",
            Self::UnexplainedDebit => "unexplained_debit",
            Self::PayoutNotSeen => "payout_not_seen",
        }
    }

    pub const ALL: [Reason; 11] = [
        Self::AmountMismatch,
        Self::CurrencyMismatch,
        Self::Ambiguous,
        Self::TooEarly,
        Self::OutsideLookback,
        Self::NoConcept,
        Self::AwaitingTransfer,
        Self::ReconcileFailed,
        Self::SyncIncomplete,
        Self::UnexplainedDebit,
        Self::PayoutNotSeen,
    ];
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tunables of rules §3–§4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchParams {
    /// A credit may be booked this long before the payment's creation (default 24 h).
    pub booking_tolerance: Duration,
    /// Payments older than this are never reconciled automatically (default 90 days).
    pub lookback: Duration,
    /// A finished off-ramp's payout must be seen within this time (default 3 days).
    pub payout_grace: Duration,
}

impl Default for MatchParams {
    fn default() -> Self {
        Self {
            booking_tolerance: Duration::hours(24),
            lookback: Duration::days(90),
            payout_grace: Duration::days(3),
        }
    }
}

/// What the core is given. Slices hold whatever the caller has; the core itself decides
/// which items are open (rules §1) and ignores the rest.
pub struct MatchInput<'a> {
    /// All payments known; only `pending_bank` ones not in `tied_payments` are open.
    pub payments: &'a [Payment],
    /// All bank transactions known, credits and debits.
    pub transactions: &'a [BankTransaction],
    /// All off-ramps known.
    pub offramps: &'a [Offramp],
    /// Payments already tied to a bank transaction by this job (the `matches` table).
    pub tied_payments: &'a HashSet<PaymentId>,
    /// Bank transactions already tied to a payment by this job.
    pub tied_transactions: &'a HashSet<BankTxId>,
    /// Rules §3.5: every page of every list was read in this run.
    pub sync_complete: bool,
    pub now: DateTime<Utc>,
    pub params: MatchParams,
}

/// A confident match (rules §3.1–§3.5 hold): reconcile it, after re-reading the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfidentPair {
    pub payment: PaymentId,
    pub transaction: BankTxId,
}

/// An open payment that needs a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFinding {
    pub payment: PaymentId,
    pub reason: Reason,
    /// Credits whose text contains this payment's concept (for `ambiguous` all of them;
    /// for a unique pair, the one credit).
    pub candidates: Vec<BankTxId>,
    /// For `amount_mismatch`: `received - expected` (currency units).
    pub difference: Option<Decimal>,
    /// Whole days since the payment was created, at `now`.
    pub days_pending: i64,
    /// For `reconcile_failed`: the provider's error code. Otherwise `None`.
    pub detail: Option<String>,
}

/// A bank transaction (open credit or debit) that needs a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionFinding {
    pub transaction: BankTxId,
    pub reason: Reason,
    /// Open payments whose concept appears in the text (for `ambiguous`, all of them; for
    /// a unique pair, the one payment).
    pub candidates: Vec<PaymentId>,
    /// For `no_concept` credits: open payments of the same amount and currency. A hint for
    /// a person, never acted on.
    pub suggested: Vec<PaymentId>,
    /// For `amount_mismatch`: `received - expected` (currency units).
    pub difference: Option<Decimal>,
    /// For `reconcile_failed`: the provider's error code. Otherwise `None`.
    pub detail: Option<String>,
}

/// A finished off-ramp whose payout was not seen after the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutFinding {
    pub offramp: OfframpId,
    pub reason: Reason,
    pub days_since_finished: i64,
}

/// A debit that pays out a finished off-ramp (nothing to do; kept for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutMatch {
    pub offramp: OfframpId,
    pub transaction: BankTxId,
}

/// The core's answer: every open item appears exactly once across these lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    pub reconcile: Vec<ConfidentPair>,
    pub payments: Vec<PaymentFinding>,
    pub transactions: Vec<TransactionFinding>,
    pub payouts: Vec<PayoutFinding>,
    pub paid_out: Vec<PayoutMatch>,
}

/// At most this many same-amount payments are suggested for a `no_concept` credit: a hint
/// for a person, not a list to work through.
const MAX_SUGGESTED: usize = 5;

/// Marks the end of a chain in [`ConceptIndex::next`].
const NONE: usize = usize::MAX;

/// Decides what to reconcile and why everything else needs a person (rules §2–§4).
///
/// Linear in the size of the input: every pairing goes through a hash lookup of the digit
/// runs of a credit's text, never through a scan of payment × credit pairs, so a run with
/// a million payments and a million credits stays well under a second.
///
/// How it works: open payments are indexed by concept; each open credit's text is cut
/// into maximal runs of ASCII digits and each run is looked up, giving `hits(T)`. One pass
/// over those (payment, credit) edges counts, per payment, the credits carrying its
/// concept (`C1`) and those that also satisfy §3.2–§3.3 (`F`). A pair is confident when
/// `F(P) = {T}` and `hits(T) = {P}`; every other open item gets exactly one reason.
/// Debits are matched to finished off-ramps by the alphanumeric tokens of their text.
///
/// Duplicate ids in the input (a record listed on two pages) count once: the first
/// occurrence wins, so no item is ever reported twice.
pub fn decide(input: &MatchInput<'_>) -> Decisions {
    let window = Window {
        now: input.now,
        tolerance: input.params.booking_tolerance,
        lookback: input.params.lookback,
    };

    // The caller's sets use the std hasher; a borrowed Fx copy makes the million lookups
    // below cheap, and an empty set costs nothing.
    let tied_payments: FxHashSet<&str> = input.tied_payments.iter().map(|id| id.as_str()).collect();
    let tied_transactions: FxHashSet<&str> = input
        .tied_transactions
        .iter()
        .map(|id| id.as_str())
        .collect();

    // Open payments, in id order, so that a payment's position is also its sort key.
    let payments: Vec<&Payment> = unique_in_id_order(input.payments, |p| p.id.as_str())
        .into_iter()
        .map(|i| &input.payments[i])
        .filter(|p| p.status.is_open() && !tied_payments.contains(p.id.as_str()))
        .collect();

    // Open credits (in id order, same reason) and every debit.
    let mut credits: Vec<&BankTransaction> = Vec::with_capacity(input.transactions.len());
    let mut debits: Vec<&BankTransaction> = Vec::new();
    for i in unique_in_id_order(input.transactions, |t| t.id.as_str()) {
        let t = &input.transactions[i];
        match t.direction {
            Direction::Credit => {
                if t.reconciled_payment_id.is_none() && !tied_transactions.contains(t.id.as_str()) {
                    credits.push(t);
                }
            }
            Direction::Debit => debits.push(t),
        }
    }

    let index = ConceptIndex::new(&payments);
    let hits = Hits::collect(&credits, &index);
    let states = payment_states(&payments, &credits, &hits, &window, input.sync_complete);

    let mut decisions = Decisions::default();
    report_payments(&payments, &credits, &hits, &states, &window, &mut decisions);
    report_credits(&payments, &credits, &hits, &states, &window, &mut decisions);
    match_debits(
        &debits,
        input.offramps,
        input.now,
        input.params.payout_grace,
        &mut decisions,
    );
    decisions
        .transactions
        .sort_by(|a, b| a.transaction.cmp(&b.transaction));
    decisions
}

/// The time conditions of §3.3, with `now` fixed for the whole run.
struct Window {
    now: DateTime<Utc>,
    tolerance: Duration,
    lookback: Duration,
}

/// The first of §3.2–§3.3 that the pair (P, T) fails, in the order a person should read
/// them: a different currency explains everything else, then the amount, then the dates.
/// `None` when all hold. Differences of two instants cannot overflow, so neither can this.
fn first_failure(p: &Payment, t: &BankTransaction, w: &Window) -> Option<Reason> {
    if p.amount.currency() != t.amount.currency() {
        Some(Reason::CurrencyMismatch)
    } else if p.amount.amount() != t.amount.amount() {
        Some(Reason::AmountMismatch)
    } else if p.created_at.signed_duration_since(t.booked_at) > w.tolerance {
        Some(Reason::TooEarly)
    } else if w.now.signed_duration_since(p.created_at) > w.lookback {
        Some(Reason::OutsideLookback)
    } else {
        None
    }
}

/// `received - expected`, shown on `amount_mismatch` findings.
fn difference(reason: Reason, p: &Payment, t: &BankTransaction) -> Option<Decimal> {
    (reason == Reason::AmountMismatch).then(|| t.amount.amount() - p.amount.amount())
}

/// Whole days from `since` to `now`, floored, never negative (clock skew between the
/// provider and this host must not show as "-1 days").
fn whole_days(since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    now.signed_duration_since(since).num_days().max(0)
}

/// Positions of `items` sorted by id, keeping only the first occurrence of each id.
///
/// Sorting a million string ids through pointers is cache-hostile; sorting on the first
/// eight bytes packed into a `u64` settles almost every comparison without touching the
/// heap, and full strings are compared only on a tie. Byte order of the packed prefix
/// (zero-padded) agrees with the lexicographic order of the strings.
fn unique_in_id_order<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<usize> {
    let mut keys: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (prefix_key(id(item).as_bytes()), i))
        .collect();
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| id(&items[a.1]).cmp(id(&items[b.1])))
            .then(a.1.cmp(&b.1))
    });
    let mut out: Vec<usize> = Vec::with_capacity(keys.len());
    let mut last: Option<(u64, usize)> = None;
    for (key, i) in keys {
        if let Some((last_key, j)) = last
            && last_key == key
            && id(&items[j]) == id(&items[i])
        {
            continue;
        }
        last = Some((key, i));
        out.push(i);
    }
    out
}

fn prefix_key(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

/// Maximal runs of bytes satisfying `keep`. Runs of ASCII classes never split a UTF-8
/// character: bytes of multibyte characters are all ≥ 0x80 and never ASCII.
fn runs(text: &[u8], keep: fn(&u8) -> bool) -> impl Iterator<Item = &[u8]> {
    text.split(move |b| !keep(b)).filter(|run| !run.is_empty())
}

/// Open payments by concept. A concept may belong to several open payments (the
/// provider does not promise uniqueness), so each map entry heads a chain through `next`
/// instead of owning a `Vec`: one allocation for the whole index, not one per concept.
struct ConceptIndex<'a> {
    heads: FxHashMap<&'a [u8], usize>,
    next: Vec<usize>,
}

impl<'a> ConceptIndex<'a> {
    fn new(payments: &[&'a Payment]) -> Self {
        let mut heads: FxHashMap<&'a [u8], usize> =
            FxHashMap::with_capacity_and_hasher(payments.len(), Default::default());
        let mut next = vec![NONE; payments.len()];
        // Inserting from the back leaves every chain in ascending (id) order.
        for (pi, p) in payments.iter().enumerate().rev() {
            if let Some(concept) = &p.concept {
                let head = heads.entry(concept.as_str().as_bytes()).or_insert(NONE);
                next[pi] = *head;
                *head = pi;
            }
        }
        Self { heads, next }
    }

    /// Appends the open payments whose concept is exactly `run`.
    fn extend_with(&self, run: &[u8], out: &mut Vec<usize>) {
        let mut pi = self.heads.get(run).copied().unwrap_or(NONE);
        while pi != NONE {
            out.push(pi);
            pi = self.next[pi];
        }
    }
}

/// `hits(T)` for every open credit, flattened: credit `ti` hit
/// `list[offsets[ti]..offsets[ti + 1]]`, ascending and without repeats.
struct Hits {
    offsets: Vec<usize>,
    list: Vec<usize>,
}

impl Hits {
    fn collect(credits: &[&BankTransaction], index: &ConceptIndex<'_>) -> Self {
        let mut offsets = Vec::with_capacity(credits.len() + 1);
        let mut list = Vec::with_capacity(credits.len());
        offsets.push(0);
        for t in credits {
            let start = list.len();
            let mut found_runs = 0;
            for run in runs(t.concept_text.as_bytes(), u8::is_ascii_digit) {
                let before = list.len();
                index.extend_with(run, &mut list);
                found_runs += usize::from(list.len() > before);
            }
            // One run yields an ascending chain; several may overlap or repeat a concept
            // ("120037 / 120037"), and a payment is hit once however often it appears.
            if found_runs > 1 {
                let mine = &mut list[start..];
                mine.sort_unstable();
                let kept = dedup_sorted(mine);
                list.truncate(start + kept);
            }
            offsets.push(list.len());
        }
        Self { offsets, list }
    }

    fn of(&self, ti: usize) -> &[usize] {
        &self.list[self.offsets[ti]..self.offsets[ti + 1]]
    }
}

/// Moves the distinct values of a sorted slice to its front; returns how many there are.
fn dedup_sorted(v: &mut [usize]) -> usize {
    let mut kept = 0;
    for i in 0..v.len() {
        if kept == 0 || v[kept - 1] != v[i] {
            v[kept] = v[i];
            kept += 1;
        }
    }
    kept
}

/// Where an open payment stands once every credit has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaymentState {
    /// §3.1–§3.5 hold with this credit.
    Confident(usize),
    /// §3.1–§3.4 hold with this credit, but the sync was incomplete.
    SyncPair(usize),
    /// Exactly one credit carries the concept, and only this payment's; the pair fails
    /// the given condition.
    Unique(usize, Reason),
    /// Several candidates on one side or the other.
    Ambiguous,
    /// No credit carries the concept.
    Awaiting,
}

/// Per-payment tallies over the (payment, credit) edges.
#[derive(Clone, Copy)]
struct Tally {
    /// |C1(P)|: credits whose text carries the concept.
    carrying: u32,
    /// |F(P)|: those that also satisfy §3.2–§3.3.
    fitting: u32,
    /// The last fitting credit; the only one when `fitting == 1`.
    fit: usize,
    /// The last carrying credit; the only one when `carrying == 1`.
    carrier: usize,
    /// Some carrying credit also carries another open payment's concept.
    shared: bool,
}

fn payment_states(
    payments: &[&Payment],
    credits: &[&BankTransaction],
    hits: &Hits,
    window: &Window,
    sync_complete: bool,
) -> Vec<PaymentState> {
    let mut tally = vec![
        Tally {
            carrying: 0,
            fitting: 0,
            fit: NONE,
            carrier: NONE,
            shared: false,
        };
        payments.len()
    ];
    for (ti, t) in credits.iter().enumerate() {
        let hit = hits.of(ti);
        let shared = hit.len() > 1;
        for &pi in hit {
            let tl = &mut tally[pi];
            tl.carrying = tl.carrying.saturating_add(1);
            tl.carrier = ti;
            tl.shared |= shared;
            if first_failure(payments[pi], t, window).is_none() {
                tl.fitting = tl.fitting.saturating_add(1);
                tl.fit = ti;
            }
        }
    }
    tally
        .iter()
        .enumerate()
        .map(|(pi, tl)| {
            // §3.4: F(P) = {T} and hits(T) = {P} (P is in hits(T) because T fits P).
            if tl.fitting == 1 && hits.of(tl.fit).len() == 1 {
                return if sync_complete {
                    PaymentState::Confident(tl.fit)
                } else {
                    PaymentState::SyncPair(tl.fit)
                };
            }
            match tl.carrying {
                0 => PaymentState::Awaiting,
                1 if !tl.shared => match first_failure(payments[pi], credits[tl.carrier], window) {
                    Some(reason) => PaymentState::Unique(tl.carrier, reason),
                    // Unreachable: a fitting unique pair was handled above. Never reconcile
                    // on an inconsistency; hand it to a person.
                    None => PaymentState::Ambiguous,
                },
                _ => PaymentState::Ambiguous,
            }
        })
        .collect()
}

/// `C1(P)` for the payments that need it (ambiguous ones list every candidate), in id
/// order. Built only when some payment is ambiguous, which is rare.
fn carriers_of_ambiguous(
    states: &[PaymentState],
    hits: &Hits,
    credits: usize,
) -> FxHashMap<usize, Vec<usize>> {
    let mut out: FxHashMap<usize, Vec<usize>> = FxHashMap::default();
    if !states.contains(&PaymentState::Ambiguous) {
        return out;
    }
    // Credits are visited in id order, so each list comes out sorted.
    for ti in 0..credits {
        for &pi in hits.of(ti) {
            if states[pi] == PaymentState::Ambiguous {
                out.entry(pi).or_default().push(ti);
            }
        }
    }
    out
}

fn report_payments(
    payments: &[&Payment],
    credits: &[&BankTransaction],
    hits: &Hits,
    states: &[PaymentState],
    window: &Window,
    decisions: &mut Decisions,
) {
    let mut carriers = carriers_of_ambiguous(states, hits, credits.len());
    let confident = states
        .iter()
        .filter(|s| matches!(s, PaymentState::Confident(_)))
        .count();
    decisions.reconcile.reserve_exact(confident);
    decisions.payments.reserve_exact(states.len() - confident);
    let tx_ids =
        |tis: &[usize]| -> Vec<BankTxId> { tis.iter().map(|&ti| credits[ti].id.clone()).collect() };
    for (pi, (p, state)) in payments.iter().zip(states).enumerate() {
        let (reason, candidates, diff) = match *state {
            PaymentState::Confident(ti) => {
                decisions.reconcile.push(ConfidentPair {
                    payment: p.id.clone(),
                    transaction: credits[ti].id.clone(),
                });
                continue;
            }
            PaymentState::SyncPair(ti) => (Reason::SyncIncomplete, tx_ids(&[ti]), None),
            PaymentState::Unique(ti, reason) => {
                (reason, tx_ids(&[ti]), difference(reason, p, credits[ti]))
            }
            PaymentState::Ambiguous => {
                let tis = carriers.remove(&pi).unwrap_or_default();
                (Reason::Ambiguous, tx_ids(&tis), None)
            }
            PaymentState::Awaiting => (Reason::AwaitingTransfer, Vec::new(), None),
        };
        decisions.payments.push(PaymentFinding {
            payment: p.id.clone(),
            reason,
            candidates,
            difference: diff,
            days_pending: whole_days(p.created_at, window.now),
            detail: None,
        });
    }
}

fn report_credits(
    payments: &[&Payment],
    credits: &[&BankTransaction],
    hits: &Hits,
    states: &[PaymentState],
    window: &Window,
    decisions: &mut Decisions,
) {
    let pay_ids = |pis: &[usize]| -> Vec<PaymentId> {
        pis.iter().map(|&pi| payments[pi].id.clone()).collect()
    };
    let mut no_concept: Vec<(usize, &Money)> = Vec::new();
    for (ti, t) in credits.iter().enumerate() {
        let hit = hits.of(ti);
        let (reason, diff) = match *hit {
            [] => {
                no_concept.push((decisions.transactions.len(), &t.amount));
                (Reason::NoConcept, None)
            }
            [pi] => {
                let p = payments[pi];
                match states[pi] {
                    PaymentState::Confident(paired) if paired == ti => continue,
                    PaymentState::SyncPair(paired) if paired == ti => {
                        (Reason::SyncIncomplete, None)
                    }
                    PaymentState::Unique(paired, reason) if paired == ti => {
                        (reason, difference(reason, p, t))
                    }
                    PaymentState::Ambiguous => (Reason::Ambiguous, None),
                    // P has a full match with another credit, so this one fails a
                    // condition of its own; say which.
                    _ => match first_failure(p, t, window) {
                        Some(reason) => (reason, difference(reason, p, t)),
                        None => (Reason::Ambiguous, None),
                    },
                }
            }
            _ => (Reason::Ambiguous, None),
        };
        decisions.transactions.push(TransactionFinding {
            transaction: t.id.clone(),
            reason,
            candidates: pay_ids(hit),
            suggested: Vec::new(),
            difference: diff,
            detail: None,
        });
    }
    if no_concept.is_empty() {
        return;
    }
    let suggestions = same_money(payments, no_concept.iter().map(|&(_, m)| m));
    for (fi, money) in no_concept {
        if let Some(pis) = suggestions.get(money) {
            decisions.transactions[fi].suggested = pay_ids(pis);
        }
    }
}

/// For each wanted amount, the open payments of exactly that money (amount and
/// currency), lowest ids first, at most [`MAX_SUGGESTED`]. Only the amounts asked for are
/// kept, and the scan stops as soon as every list is full.
fn same_money<'m>(
    payments: &[&Payment],
    wanted: impl Iterator<Item = &'m Money>,
) -> FxHashMap<&'m Money, Vec<usize>> {
    let mut found: FxHashMap<&Money, Vec<usize>> = wanted.map(|m| (m, Vec::new())).collect();
    let mut unfilled = found.len();
    for (pi, p) in payments.iter().enumerate() {
        if unfilled == 0 {
            break;
        }
        if let Some(pis) = found.get_mut(&p.amount)
            && pis.len() < MAX_SUGGESTED
        {
            pis.push(pi);
            unfilled -= usize::from(pis.len() == MAX_SUGGESTED);
        }
    }
    found
}

/// Rules §4, second table: which debits pay out which finished off-ramps, and what is
/// left over.
///
/// Off-ramp ids are alphanumeric, so an id "appears" in a debit's text when it is a whole
/// token there (a maximal run of ASCII letters and digits): one hash lookup per token.
/// Each off-ramp is paid out at most once; debits are taken oldest first so the first
/// payout is the one kept and a second one is reported — a double payout must reach a
/// person.
fn match_debits(
    debits: &[&BankTransaction],
    offramps: &[Offramp],
    now: DateTime<Utc>,
    grace: Duration,
    decisions: &mut Decisions,
) {
    let mut finished: FxHashMap<&[u8], usize> = FxHashMap::default();
    for (oi, o) in offramps.iter().enumerate() {
        if o.status == OfframpStatus::Finished {
            // First occurrence wins, as for every other record.
            finished.entry(o.id.as_str().as_bytes()).or_insert(oi);
        }
    }

    let mut ordered = debits.to_vec();
    ordered.sort_by(|a, b| a.booked_at.cmp(&b.booked_at).then_with(|| a.id.cmp(&b.id)));
    let mut paid = vec![false; offramps.len()];
    for d in ordered {
        let payout = runs(d.concept_text.as_bytes(), u8::is_ascii_alphanumeric)
            .filter_map(|token| finished.get(token).copied())
            .find(|&oi| !paid[oi] && offramps[oi].fiat.same_as(&d.amount));
        match payout {
            Some(oi) => {
                paid[oi] = true;
                decisions.paid_out.push(PayoutMatch {
                    offramp: offramps[oi].id.clone(),
                    transaction: d.id.clone(),
                });
            }
            None => decisions.transactions.push(TransactionFinding {
                transaction: d.id.clone(),
                reason: Reason::UnexplainedDebit,
                candidates: Vec::new(),
                suggested: Vec::new(),
                difference: None,
                detail: None,
            }),
        }
    }
    decisions.paid_out.sort_by(|a, b| a.offramp.cmp(&b.offramp));

    for &oi in finished.values() {
        if paid[oi] {
            continue;
        }
        let o = &offramps[oi];
        // The list gives no finishing time; the last update is when it became finished.
        let finished_at = o.updated_at.unwrap_or(o.created_at);
        if now.signed_duration_since(finished_at) > grace {
            decisions.payouts.push(PayoutFinding {
                offramp: o.id.clone(),
                reason: Reason::PayoutNotSeen,
                days_since_finished: whole_days(finished_at, now),
            });
        }
    }
    decisions.payouts.sort_by(|a, b| a.offramp.cmp(&b.offramp));
}
