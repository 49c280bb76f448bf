//! The matching core: which open payment goes with which open credit, and a reason for
//! everything else. No I/O and no clock: records come in already parsed, `now` is an
//! argument, and the answer is a value (`Decisions`).
//!
//! The specification is `docs/matching-rules.md` §2–§4 (every bare `§` in this crate's
//! matching, reconcile and store code points there). Conditions 5 (complete sync) and 6
//! (re-read right before the call) are partly outside: the caller says whether the sync
//! was complete, and the reconcile step re-reads both sides before each call
//! ([`fate::before_call`]).
//!
//! [`decide`] and its steps are in this file; the parts with an interface of their own
//! are submodules: `index` (open payments by concept), `payouts` (debits against
//! finished off-ramps), `returns` (debits sending back a reconciled payment's money),
//! `suggestions` (same-money hints for a credit without a concept),
//! `id_order` (records in id order) and [`fate`] (what a re-read or a call's answer means
//! for a pair).

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::domain::{
    BankTransaction, BankTxId, Direction, Money, Offramp, OfframpId, Payment, PaymentId,
};

pub mod fate;
mod id_order;
pub mod in_flight;
mod index;
mod payouts;
mod reason;
mod returns;
mod suggestions;
#[cfg(test)]
mod tests;

use id_order::{ranks, unique_in_id_order};
use index::{ConceptIndex, RunKey, concept_runs, short_key};
use payouts::match_debits;
pub use reason::Reason;
pub use returns::ReconciledPair;
use suggestions::{money_key, same_money};

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
    /// Payments whose reconcile call is in doubt (an intent or a lost answer not settled
    /// yet). Rules §1: still open, so they compete with every other payment (a credit
    /// naming one of them and another payment is `ambiguous`), but never reconciled
    /// again until settled, and not reported here (the reconcile step reports them).
    pub in_doubt_payments: &'a HashSet<PaymentId>,
    /// Bank transactions already tied to a payment by this job.
    pub tied_transactions: &'a HashSet<BankTxId>,
    /// Every pair this job reconciled (the ledger's `reconciled` matches): a debit that
    /// sends one's money back is `returned_after_reconcile`.
    pub reconciled: &'a [ReconciledPair],
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
    /// For `reconcile_failed`: the provider's error code, or why the call was not made;
    /// for `ambiguous` found right before a call: what the re-read found. Otherwise
    /// `None`.
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
    /// As [`PaymentFinding::detail`].
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

/// Marks "no item" in index fields and at the end of a chain in [`ConceptIndex::next`].
const NONE: usize = usize::MAX;

/// Decides what to reconcile and why everything else needs a person (rules §2–§4).
///
/// Linear in the size of the input: every pairing goes through a hash lookup of the digit
/// runs of a credit's text, never through a scan of payment × credit pairs, so a million
/// payments against a million credits take about a second on one core
/// (`benches/matching.rs`).
///
/// How it works: open payments are indexed by concept; each open credit's text is cut
/// into maximal runs of ASCII digits and each run is looked up, giving `hits(T)`. While
/// reading the credits, each (payment, credit) edge is tallied on the payment: how many
/// credits carry its concept (`C1`), how many also satisfy §3.2–§3.3 (`F`), and whether
/// such a credit carries only this payment's concept. A pair is confident when
/// `F(P) = {T}` and `hits(T) = {P}`; every other open item gets exactly one reason.
/// Debits returning a reconciled payment's money are set apart first (by the digit runs
/// and alphanumeric tokens of their text); the rest are matched to finished off-ramps by
/// the alphanumeric tokens of their text.
///
/// Records are read in input order (the order they sit in memory) and only the output is
/// put in id order: at a million records, jumping around the inputs costs more than all
/// the matching.
///
/// A record listed twice (a page boundary shifting during the sync) is reported once.
/// A repeated payment or debit counts once, the first occurrence winning. A repeated
/// credit is read twice, so its payment sees two candidates and is `ambiguous`: the
/// safe side, and it spares sorting a million credit ids to find a rare glitch.
pub fn decide(input: &MatchInput<'_>) -> Decisions {
    // The caller's sets use the std hasher; a borrowed Fx copy makes the million lookups
    // below cheap, and an empty set costs nothing.
    let tied_payments: FxHashSet<&str> = input.tied_payments.iter().map(|id| id.as_str()).collect();
    let in_doubt: FxHashSet<&str> = input
        .in_doubt_payments
        .iter()
        .map(|id| id.as_str())
        .collect();
    let tied_transactions: FxHashSet<&str> = input
        .tied_transactions
        .iter()
        .map(|id| id.as_str())
        .collect();

    let rank = ranks(
        &unique_in_id_order(input.payments, |p| p.id.as_str()),
        input.payments.len(),
    );

    let limits = Limits::new(input);
    let (mut infos, index) =
        read_payments(input.payments, &rank, (&tied_payments, &in_doubt), &limits);
    let mut debits = Vec::new();
    let credits = read_credits(
        input.transactions,
        &tied_transactions,
        &index,
        &mut infos,
        &mut debits,
    );
    drop(index);
    let states = payment_states(&infos, input.sync_complete);

    let mut decisions = Decisions::default();
    let links = report_credits(input.payments, &credits, &infos, &states, &mut decisions);
    report_payments(input, &rank, &credits, &states, links, &mut decisions);
    // Returns first: a debit returning a reconciled payment is never a payout.
    let debits = returns::find_returns(debits, input.reconciled, &mut decisions);
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
    // A credit listed twice was read twice (see above); report it once.
    decisions
        .transactions
        .dedup_by(|later, first| later.transaction == first.transaction);
    decisions
}

/// The time limits of §3.3, fixed for the whole run. Out-of-range arithmetic saturates
/// to the earliest representable instant, which makes the limit always hold, as an
/// unbounded window would.
struct Limits {
    tolerance: Duration,
    oldest_created: DateTime<Utc>,
}

impl Limits {
    fn new(input: &MatchInput<'_>) -> Self {
        Self::of(input.params, input.now)
    }

    fn of(params: MatchParams, now: DateTime<Utc>) -> Self {
        Self {
            tolerance: params.booking_tolerance,
            oldest_created: now
                .checked_sub_signed(params.lookback)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }

    /// §3.3, first half: a credit may be booked no earlier than this.
    fn earliest_booking(&self, created_at: DateTime<Utc>) -> DateTime<Utc> {
        created_at
            .checked_sub_signed(self.tolerance)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// A currency as a number, so the hot loop compares integers instead of following two
/// heap pointers. Currencies are three ASCII letters by construction, so the packing is
/// exact.
fn currency_code(money: &Money) -> u64 {
    money
        .currency()
        .as_str()
        .bytes()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(b))
}

/// What the matching loop needs of one payment, and what it learns about it, side by
/// side in one cache line: the loop visits payments in whatever order credits name
/// them, so each visit should cost one memory access, not four.
#[derive(Clone, Copy)]
struct PaymentInfo {
    amount: Decimal,
    earliest_booking: DateTime<Utc>,
    currency: u64,
    /// Rules §1: open, and the first occurrence of its id.
    open: bool,
    /// Open, but its reconcile call is in doubt: it competes, it is never confident.
    in_doubt: bool,
    /// §3.3, second half: not older than the look-back window.
    recent: bool,
    /// |C1(P)|: credits whose text carries the concept.
    carrying: u32,
    /// |F(P)|: those that also satisfy §3.2–§3.3.
    fitting: u32,
    /// The last carrying credit; the only one when `carrying == 1`.
    carrier: usize,
    /// What the pair (P, `carrier`) fails first, if anything.
    carrier_failure: Option<Reason>,
    /// The last fitting credit; the only one when `fitting == 1`.
    fit: usize,
    /// Some carrying credit also carries another open payment's concept.
    shared: bool,
    /// `hits(fit) = {P}`.
    fit_alone: bool,
}

impl PaymentInfo {
    /// A payment as the matching loop starts with it: nothing learnt yet.
    fn new(p: &Payment, limits: &Limits, open: bool, in_doubt: bool) -> Self {
        Self {
            amount: p.amount.amount(),
            earliest_booking: limits.earliest_booking(p.created_at),
            currency: currency_code(&p.amount),
            open,
            in_doubt,
            recent: p.created_at >= limits.oldest_created,
            carrying: 0,
            fitting: 0,
            carrier: NONE,
            carrier_failure: None,
            fit: NONE,
            shared: false,
            fit_alone: false,
        }
    }
}

/// The facts of a credit that §3.2–§3.3 compare.
struct CreditFacts {
    amount: Decimal,
    currency: u64,
    booked_at: DateTime<Utc>,
}

impl CreditFacts {
    fn of(t: &BankTransaction) -> Self {
        Self {
            amount: t.amount.amount(),
            currency: currency_code(&t.amount),
            booked_at: t.booked_at,
        }
    }
}

/// The first of §3.2–§3.3 that the pair (P, T) fails, in the order a person should read
/// them: a different currency explains everything else, then the amount, then the dates.
/// `None` when all hold.
fn first_failure(p: &PaymentInfo, t: &CreditFacts) -> Option<Reason> {
    if p.currency != t.currency {
        Some(Reason::CurrencyMismatch)
    } else if p.amount != t.amount {
        Some(Reason::AmountMismatch)
    } else if t.booked_at < p.earliest_booking {
        Some(Reason::TooEarly)
    } else if !p.recent {
        Some(Reason::OutsideLookback)
    } else {
        None
    }
}

/// Whether credit `t` satisfies §3.1–§3.3 for payment `p`, read exactly as [`decide`]
/// reads them (the digit runs of §2, the checks of [`first_failure`], the limits at
/// `now`), for one pair outside the index: another credit met right before a call (the
/// re-read of [`fate::before_call`]). Openness (§1) is the caller's to know.
fn fits(p: &Payment, t: &BankTransaction, params: MatchParams, now: DateTime<Utc>) -> bool {
    let Some(concept) = &p.concept else {
        return false;
    };
    let digits = concept.as_str().as_bytes();
    t.direction == Direction::Credit
        && concept_runs(&t.concept_text).any(|run| run == digits)
        && first_failure(
            &PaymentInfo::new(p, &Limits::of(params, now), true, false),
            &CreditFacts::of(t),
        )
        .is_none()
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

/// One sequential pass over the payments: what each one needs for matching, and the
/// concept index of the open ones.
fn read_payments<'a>(
    payments: &'a [Payment],
    rank: &[usize],
    (tied, in_doubt): (&FxHashSet<&str>, &FxHashSet<&str>),
    limits: &Limits,
) -> (Vec<PaymentInfo>, ConceptIndex<'a>) {
    let mut index = ConceptIndex::with_capacity(payments.len());
    let mut infos = Vec::with_capacity(payments.len());
    // Inserted in a loop of their own, for the reason given on `read_credits`.
    let mut keyed: Vec<(u64, usize)> = Vec::with_capacity(payments.len());
    for (pi, p) in payments.iter().enumerate() {
        let open = rank[pi] != NONE
            && p.status.is_open()
            && (tied.is_empty() || !tied.contains(p.id.as_str()));
        let in_doubt = open && !in_doubt.is_empty() && in_doubt.contains(p.id.as_str());
        if open && let Some(concept) = &p.concept {
            let digits = concept.as_str().as_bytes();
            match short_key(digits) {
                Some(key) => keyed.push((key, pi)),
                None => index.insert_long(digits, pi),
            }
        }
        infos.push(PaymentInfo::new(p, limits, open, in_doubt));
    }
    for (key, pi) in keyed {
        index.insert_short(key, pi);
    }
    (infos, index)
}

/// The open credits, in input order, with `hits(T)` for each, flattened: credit `ti` hit
/// payments `hits[offsets[ti]..offsets[ti + 1]]` (input positions, without repeats).
struct OpenCredits<'a> {
    tx: Vec<&'a BankTransaction>,
    offsets: Vec<usize>,
    hits: Vec<usize>,
}

impl OpenCredits<'_> {
    fn hits_of(&self, ti: usize) -> &[usize] {
        &self.hits[self.offsets[ti]..self.offsets[ti + 1]]
    }
}

/// The bank transactions, in three passes over dense arrays: pick the open credits and
/// cut their texts into digit runs; look every run up; tally every (payment, credit)
/// edge on the payment. Debits are set aside.
///
/// Three tight loops instead of one: the lookups and the tallies each land on a random
/// cache line, and a short loop body lets the processor have many of those misses in
/// flight at once, where a long one (scanning text in between) waits for each in turn.
fn read_credits<'a>(
    transactions: &'a [BankTransaction],
    tied: &FxHashSet<&str>,
    index: &ConceptIndex<'_>,
    infos: &mut [PaymentInfo],
    debits: &mut Vec<&'a BankTransaction>,
) -> OpenCredits<'a> {
    let mut tx = Vec::with_capacity(transactions.len());
    let mut facts = Vec::with_capacity(transactions.len());
    let mut keys: Vec<RunKey<'a>> = Vec::with_capacity(transactions.len());
    let mut key_offsets = Vec::with_capacity(transactions.len() + 1);
    key_offsets.push(0);
    for t in transactions {
        match t.direction {
            Direction::Debit => {
                debits.push(t);
                continue;
            }
            Direction::Credit => {
                let open = t.reconciled_payment_id.is_none()
                    && (tied.is_empty() || !tied.contains(t.id.as_str()));
                if !open {
                    continue;
                }
            }
        }
        tx.push(t);
        facts.push(CreditFacts::of(t));
        for run in concept_runs(&t.concept_text) {
            keys.push(match short_key(run) {
                Some(key) => RunKey::Short(key),
                None => RunKey::Long(run),
            });
        }
        key_offsets.push(keys.len());
    }

    let mut offsets = Vec::with_capacity(tx.len() + 1);
    let mut hits = Vec::with_capacity(tx.len());
    offsets.push(0);
    for ti in 0..tx.len() {
        let start = hits.len();
        let mine = &keys[key_offsets[ti]..key_offsets[ti + 1]];
        for &key in mine {
            index.extend_with(key, &mut hits);
        }
        // One run yields one chain without repeats; several may repeat a concept
        // ("120037 / 120037"), and a payment is hit once however often it appears.
        if mine.len() > 1 && hits.len() - start > 1 {
            let found = &mut hits[start..];
            found.sort_unstable();
            let kept = dedup_sorted(found);
            hits.truncate(start + kept);
        }
        offsets.push(hits.len());
    }
    drop(keys);

    for (ti, facts) in facts.iter().enumerate() {
        let hit = &hits[offsets[ti]..offsets[ti + 1]];
        let alone = hit.len() == 1;
        for &pi in hit {
            let info = &mut infos[pi];
            info.carrying = info.carrying.saturating_add(1);
            info.carrier = ti;
            info.shared |= !alone;
            info.carrier_failure = first_failure(info, facts);
            if info.carrier_failure.is_none() {
                info.fitting = info.fitting.saturating_add(1);
                info.fit = ti;
                info.fit_alone = alone;
            }
        }
    }
    OpenCredits { tx, offsets, hits }
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

/// Where a payment stands once every credit has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaymentState {
    /// Not open (rules §1) or a repeat of an id already seen: not reported.
    NotOpen,
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
    /// Open, with a reconcile call in doubt: competes, never confident, not reported.
    InDoubt,
}

fn payment_states(infos: &[PaymentInfo], sync_complete: bool) -> Vec<PaymentState> {
    infos
        .iter()
        .map(|info| {
            if !info.open {
                return PaymentState::NotOpen;
            }
            if info.in_doubt {
                return PaymentState::InDoubt;
            }
            // §3.4: F(P) = {T} and hits(T) = {P}.
            if info.fitting == 1 && info.fit_alone {
                return if sync_complete {
                    PaymentState::Confident(info.fit)
                } else {
                    PaymentState::SyncPair(info.fit)
                };
            }
            match info.carrying {
                0 => PaymentState::Awaiting,
                1 if !info.shared => match info.carrier_failure {
                    Some(reason) => PaymentState::Unique(info.carrier, reason),
                    // Unreachable: a single carrier failing nothing is the confident case
                    // above. Never reconcile on an inconsistency; hand it to a person.
                    None => PaymentState::Ambiguous,
                },
                _ => PaymentState::Ambiguous,
            }
        })
        .collect()
}

/// Reconcile decisions and payment findings, both in id order.
///
/// Payments are visited in input order, where their records and strings lie next to
/// each other in memory, and each result is written straight to its place in id order:
/// at a million confident pairs, walking the payments in id order instead would make
/// every visit a cache miss.
fn report_payments(
    input: &MatchInput<'_>,
    rank: &[usize],
    credits: &OpenCredits<'_>,
    states: &[PaymentState],
    links: CreditLinks,
    decisions: &mut Decisions,
) {
    let CreditLinks {
        mut partners,
        mut carriers,
    } = links;
    let tx_ids = |tis: &[usize]| -> Vec<BankTxId> {
        let mut ids: Vec<BankTxId> = tis.iter().map(|&ti| credits.tx[ti].id.clone()).collect();
        ids.sort_unstable();
        // A credit listed twice is one candidate.
        ids.dedup();
        ids
    };
    let mut pairs: Vec<Option<ConfidentPair>> = Vec::new();
    pairs.resize_with(input.payments.len(), || None);
    let mut found: Vec<(usize, PaymentFinding)> = Vec::new();
    for (pi, p) in input.payments.iter().enumerate() {
        let (reason, candidates, diff) = match states[pi] {
            PaymentState::NotOpen | PaymentState::InDoubt => continue,
            PaymentState::Confident(_) => {
                // Every confident credit was visited (its only hit is this payment), so
                // its id is always there.
                if let Some(transaction) = partners[pi].take() {
                    pairs[rank[pi]] = Some(ConfidentPair {
                        payment: p.id.clone(),
                        transaction,
                    });
                }
                continue;
            }
            PaymentState::SyncPair(ti) => (Reason::SyncIncomplete, tx_ids(&[ti]), None),
            PaymentState::Unique(ti, reason) => {
                (reason, tx_ids(&[ti]), difference(reason, p, credits.tx[ti]))
            }
            PaymentState::Ambiguous => {
                let tis = carriers.remove(&pi).unwrap_or_default();
                (Reason::Ambiguous, tx_ids(&tis), None)
            }
            PaymentState::Awaiting => (Reason::AwaitingTransfer, Vec::new(), None),
        };
        let finding = PaymentFinding {
            payment: p.id.clone(),
            reason,
            candidates,
            difference: diff,
            days_pending: whole_days(p.created_at, input.now),
            detail: None,
        };
        found.push((rank[pi], finding));
    }
    // `filter_map` keeps the allocation (a `Option<ConfidentPair>` is as big as a
    // `ConfidentPair`); `flatten` would copy a million pairs into a new one.
    #[allow(clippy::filter_map_identity)]
    let reconcile = pairs.into_iter().filter_map(|pair| pair).collect();
    decisions.reconcile = reconcile;
    found.sort_unstable_by_key(|&(r, _)| r);
    decisions.payments = found.into_iter().map(|(_, f)| f).collect();
}

/// What reporting the credits learns for reporting the payments.
struct CreditLinks {
    /// The id of each confident payment's credit, by payment position. Cloned while the
    /// credits are read in their own order, so that no credit is looked up at random.
    partners: Vec<Option<BankTxId>>,
    /// `C1(P)` of every ambiguous payment, which lists all its candidates.
    carriers: FxHashMap<usize, Vec<usize>>,
}

fn report_credits(
    payments: &[Payment],
    credits: &OpenCredits<'_>,
    infos: &[PaymentInfo],
    states: &[PaymentState],
    decisions: &mut Decisions,
) -> CreditLinks {
    let mut carriers: FxHashMap<usize, Vec<usize>> = FxHashMap::default();
    let mut partners: Vec<Option<BankTxId>> = Vec::new();
    partners.resize_with(payments.len(), || None);
    let pay_ids = |pis: &[usize]| -> Vec<PaymentId> {
        let mut ids: Vec<PaymentId> = pis.iter().map(|&pi| payments[pi].id.clone()).collect();
        ids.sort_unstable();
        ids
    };
    // The state of each credit's only payment, gathered in a loop of its own for the
    // reason given on `read_credits`.
    let only: Vec<PaymentState> = (0..credits.tx.len())
        .map(|ti| match *credits.hits_of(ti) {
            [pi] => states[pi],
            _ => PaymentState::NotOpen,
        })
        .collect();
    let mut no_concept: Vec<(usize, &Money)> = Vec::new();
    for (ti, &t) in credits.tx.iter().enumerate() {
        let hit = credits.hits_of(ti);
        let (reason, diff) = match *hit {
            [] => {
                no_concept.push((decisions.transactions.len(), &t.amount));
                (Reason::NoConcept, None)
            }
            [pi] => {
                let p = &payments[pi];
                match only[ti] {
                    PaymentState::Confident(paired) if paired == ti => {
                        partners[pi] = Some(t.id.clone());
                        continue;
                    }
                    PaymentState::SyncPair(paired) if paired == ti => {
                        (Reason::SyncIncomplete, None)
                    }
                    PaymentState::Unique(paired, reason) if paired == ti => {
                        (reason, difference(reason, p, t))
                    }
                    PaymentState::Ambiguous => {
                        carriers.entry(pi).or_default().push(ti);
                        (Reason::Ambiguous, None)
                    }
                    // P's call with another credit is in doubt: P has two candidates.
                    PaymentState::InDoubt => (Reason::Ambiguous, None),
                    // P has a full match with another credit, so this one fails a
                    // condition of its own; say which.
                    _ => match first_failure(&infos[pi], &CreditFacts::of(t)) {
                        Some(reason) => (reason, difference(reason, p, t)),
                        None => (Reason::Ambiguous, None),
                    },
                }
            }
            _ => {
                for &pi in hit {
                    if states[pi] == PaymentState::Ambiguous {
                        carriers.entry(pi).or_default().push(ti);
                    }
                }
                (Reason::Ambiguous, None)
            }
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
        return CreditLinks { partners, carriers };
    }
    let suggestions = same_money(payments, infos, no_concept.iter().map(|&(_, m)| m));
    for (fi, money) in no_concept {
        if let Some(pis) = suggestions.get(&money_key(currency_code(money), money.amount())) {
            decisions.transactions[fi].suggested =
                pis.iter().map(|&pi| payments[pi].id.clone()).collect();
        }
    }
    CreditLinks { partners, carriers }
}
