//! The faults of list reads that a complete read must prove it survived (rules §1, §3.6,
//! §5; API §13.2), each chosen per history. They draw from a generator of their own, so
//! that with them switched off (`CP_RECON_SIM_FAULTS=old`) the older faults draw what
//! they drew before them:
//!
//! - `removals`: at a list request, an item the client already received in this read
//!   is removed (an open credit, a pending payment); inside one instant read page by
//!   page, one received on an earlier page of it, so the later pages shift;
//! - `redates`: at a list request, an item not read yet is re-dated behind the page
//!   being read, and sometimes one already read is re-dated ahead of it;
//! - `date_only`: a bank that books by date puts a day's credits at one midnight, more
//!   than a page of them, among them a customer who paid twice (two credits of one
//!   amount naming one concept): that pair must never be reconciled;
//! - `clamp`: the provider serves fewer items per page than the job asks, and says so;
//! - `wrong_type`: for one run, a record is served with a field of a type the contract
//!   does not allow (a payment's or a credit's `concept` as an object, a reconciled
//!   credit's `reconciled_payment_id` as an object or an array, an amount as a
//!   boolean): its list is incomplete, so no call may be made in that run, and the
//!   reconciled credit is never called;
//! - `twins`: when the job re-reads one credit's instant before a call, a second credit
//!   of the same amount naming the same concept is booked at that instant first: the
//!   re-read returns both, so the pair is ambiguous and must not be called.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use cp_recon::domain::Direction;
use cp_recon::sandbox::hook::{Event, Handle, contains_concept};
use cp_recon::sandbox::{ListName, PaymentRecord, TransactionRecord};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{Rng, SimState};

/// The names `CP_RECON_SIM_FAULTS` takes, one per newer fault.
pub const NEWER: [&str; 6] = [
    "removals",
    "redates",
    "date_only",
    "clamp",
    "wrong_type",
    "twins",
];

/// Which newer faults the histories may play.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enabled(BTreeSet<&'static str>);

impl Enabled {
    /// `CP_RECON_SIM_FAULTS`: unset or `all`, every fault; `old`, none of the newer
    /// ones (the histories as they were before them); else a comma-separated list of
    /// [`NEWER`] names, played on top of the older faults.
    pub fn from_env() -> Enabled {
        let spec = std::env::var("CP_RECON_SIM_FAULTS").unwrap_or_else(|_| "all".into());
        let mut on = BTreeSet::new();
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "all" => on.extend(NEWER),
                "old" => {}
                _ => match NEWER.iter().find(|n| **n == name) {
                    Some(n) => {
                        on.insert(*n);
                    }
                    None => panic!(
                        "CP_RECON_SIM_FAULTS: unknown fault {name:?}; use all, old, or some of {NEWER:?}"
                    ),
                },
            }
        }
        Enabled(on)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().copied().collect()
    }
}

/// A field served with a type the contract does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrongType {
    PaymentConcept,
    CreditConcept,
    ReconciledId,
    Amount,
}

/// The newer faults one history plays.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Per list request of a run but the calm one: a received item is removed.
    pub remove: f64,
    /// Per list request: an unread item is re-dated behind the page.
    pub redate: f64,
    /// Per instant re-read for the first time in a run: a twin is booked there first.
    pub twins: f64,
    /// The run before which a date-only day is booked.
    pub day_before: Option<u32>,
    /// The provider's largest page.
    pub clamp: Option<u64>,
    /// The run during which a record is served with a field of the wrong type.
    pub wrong_type: Option<(u32, WrongType)>,
}

impl Plan {
    /// `runs`: the runs before the calm one; `per_page`: the job's page size.
    pub fn draw(rng: &mut Rng, on: &Enabled, runs: u32, per_page: u64) -> Plan {
        let mut plan = Plan::default();
        if on.has("removals") && rng.chance(0.5) {
            plan.remove = 0.08;
        }
        if on.has("redates") && rng.chance(0.5) {
            plan.redate = 0.08;
        }
        if on.has("twins") && rng.chance(0.4) {
            plan.twins = 0.5;
        }
        if on.has("date_only") && rng.chance(0.4) {
            plan.day_before = Some(1 + rng.below(u64::from(runs)) as u32);
        }
        if on.has("clamp") && rng.chance(0.2) {
            plan.clamp = Some(2 + rng.below(per_page.saturating_sub(2).max(1)));
        }
        if on.has("wrong_type") && rng.chance(0.3) {
            let kind = match rng.below(4) {
                0 => WrongType::PaymentConcept,
                1 => WrongType::CreditConcept,
                2 => WrongType::ReconciledId,
                _ => WrongType::Amount,
            };
            plan.wrong_type = Some((1 + rng.below(u64::from(runs)) as u32, kind));
        }
        plan
    }

    /// One line for a failing history's report.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.remove > 0.0 {
            parts.push("removals".to_owned());
        }
        if self.redate > 0.0 {
            parts.push("redates".to_owned());
        }
        if let Some(run) = self.day_before {
            parts.push(format!("date_only (before run {run})"));
        }
        if let Some(n) = self.clamp {
            parts.push(format!("clamp (at most {n} per page)"));
        }
        if let Some((run, kind)) = self.wrong_type {
            parts.push(format!("wrong_type ({kind:?}, run {run})"));
        }
        if self.twins > 0.0 {
            parts.push("twins".to_owned());
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// A record served with a field of the wrong type during the current run.
pub struct Bad {
    pub list: ListName,
    pub id: String,
    pub field: &'static str,
    pub value: Value,
    /// Counted when a list serves it.
    pub kind: &'static str,
}

/// The list a request reads, as the served sets key it: list, account, status filter.
pub type ListKey = (String, String, Option<String>);

fn key_of(list: ListName, iban: &str, status: &Option<String>) -> ListKey {
    (format!("{list:?}"), iban.to_owned(), status.clone())
}

/// The instant a request asks for, when it asks for one microsecond.
pub fn one_instant(
    from: &Option<DateTime<Utc>>,
    to: &Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (from, to) {
        (Some(f), Some(t)) if *t - *f == Duration::microseconds(1) => Some(*f),
        _ => None,
    }
}

/// Whether a list request is a narrow re-read of one credit's instant (§13.6): the
/// first page of one microsecond. The sync reads an instant from its second page on.
pub fn is_reread(event: &Event) -> bool {
    matches!(event, Event::List { list: ListName::Transactions, from, to, page: 1, .. }
        if one_instant(from, to).is_some())
}

/// A list item as the newer faults pick it: id, timestamp, whether it takes part in
/// the matching (an open credit that fits a pending payment, a pending payment with a
/// concept), and whether it may be removed (an open credit, a pending payment).
struct Item {
    id: String,
    at: DateTime<Utc>,
    matters: bool,
    removable: bool,
}

fn fits(p: &PaymentRecord, t: &TransactionRecord) -> bool {
    p.status == "pending_bank"
        && p.concept
            .is_some_and(|c| contains_concept(&t.concept, &c.to_string()))
        && Decimal::new(p.fiat_cents, 2) == t.amount
        && p.fiat_symbol == t.currency
}

fn open_credit(t: &TransactionRecord) -> bool {
    t.direction == Direction::Credit && t.reconciled_payment_id.is_none()
}

/// The items of the list `event` reads, as the provider holds them now.
fn items(h: &Handle, event: &Event) -> Vec<Item> {
    let Event::List {
        list, iban, status, ..
    } = event
    else {
        return Vec::new();
    };
    let (payments, txs) = h.snapshot();
    match list {
        ListName::Transactions => txs
            .iter()
            .filter(|t| t.iban == *iban)
            .map(|t| Item {
                id: t.id.clone(),
                at: t.booked_at,
                matters: open_credit(t) && payments.iter().any(|p| fits(p, t)),
                removable: open_credit(t),
            })
            .collect(),
        ListName::Payments => payments
            .iter()
            .filter(|p| status.as_ref().is_none_or(|s| p.status == *s))
            .map(|p| Item {
                id: p.id.clone(),
                at: p.created_at,
                matters: p.status == "pending_bank" && p.concept.is_some(),
                removable: p.status == "pending_bank",
            })
            .collect(),
        ListName::Rampoffs => Vec::new(),
    }
}

impl SimState {
    /// A fresh id and a fresh concept, drawn from the newer faults' generator.
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:05}{}", self.next_id, self.rng2.below(1_000_000))
    }

    fn new_concept(&mut self) -> u64 {
        self.next_id += 1;
        700_000 + self.next_id
    }

    fn count(&mut self, kind: &'static str) {
        *self.kinds.entry(kind).or_default() += 1;
    }

    /// Before a list request is answered: a narrow re-read may get a twin first; a read
    /// of a list may lose a received item, or see an unread one re-dated behind it.
    pub fn before_list(&mut self, h: &Handle, event: &Event) {
        let Event::List {
            iban,
            from,
            to,
            page,
            ..
        } = event
        else {
            return;
        };
        if is_reread(event) {
            if let Some(at) = one_instant(from, to)
                && self.narrowed.insert((iban.clone(), at.timestamp_micros()))
                && self.rng2.chance(self.chaos.twins)
            {
                self.twin_at(h, iban, at);
            }
            return;
        }
        if let (Some(at), Some((day_iban, day))) = (one_instant(from, to), &self.day)
            && *page >= 2
            && at == *day
            && iban == day_iban
        {
            self.count("day_paged_inside_instant");
        }
        if self.chaos.remove > 0.0 {
            self.remove_received(h, event);
        }
        if self.rng2.chance(self.chaos.redate) {
            self.redate(h, event);
        }
    }

    /// The request is answered: what it serves is received in this run's read of its
    /// list, and an unreadable record served makes the run's lists incomplete.
    pub fn served(&mut self, h: &Handle, event: &Event) {
        let Event::List {
            list, iban, status, ..
        } = event
        else {
            return;
        };
        if is_reread(event) {
            return;
        }
        let ids = h.would_serve(event);
        if let (Some(max), Event::List { per_page, .. }) = (self.clamp, event)
            && *per_page > max
            && ids.len() as u64 == max
        {
            self.count("clamped_page_served");
        }
        if self.bad_served.is_none()
            && let Some(b) = self
                .bad
                .iter()
                .find(|b| b.list == *list && ids.contains(&b.id))
        {
            let what = format!("{:?} {} with {} = {}", b.list, b.id, b.field, b.value);
            let kind = b.kind;
            self.bad_served = Some(what);
            self.count("wrong_type_served");
            self.count(kind);
        }
        self.received
            .entry(key_of(*list, iban, status))
            .or_default()
            .extend(ids);
    }

    /// Removes an item the client already received in this read of the list. Inside one
    /// instant read page by page, one of that instant, more often: the pages after it
    /// shift by one.
    fn remove_received(&mut self, h: &Handle, event: &Event) {
        let Event::List {
            list,
            iban,
            from,
            to,
            page,
            status,
            ..
        } = event
        else {
            return;
        };
        let instant = one_instant(from, to).filter(|_| *page >= 2);
        let p = if instant.is_some() {
            0.5
        } else {
            self.chaos.remove
        };
        if !self.rng2.chance(p) {
            return;
        }
        let Some(received) = self.received.get(&key_of(*list, iban, status)) else {
            return;
        };
        let candidates: Vec<Item> = items(h, event)
            .into_iter()
            .filter(|i| i.removable && received.contains(&i.id) && !self.protected.contains(&i.id))
            .collect();
        let inside: Vec<&Item> = candidates
            .iter()
            .filter(|i| Some(i.at) == instant)
            .collect();
        let all: Vec<&Item> = candidates.iter().collect();
        let pool = if inside.is_empty() { all } else { inside };
        let Some(item) = self.rng2.pick(&pool).copied() else {
            return;
        };
        let removed = match list {
            ListName::Transactions => h.remove_transaction(&item.id),
            ListName::Payments => h.remove_payment(&item.id),
            ListName::Rampoffs => false,
        };
        if removed {
            self.count("removed_read_item");
            if instant.is_some_and(|at| at == item.at) {
                self.count("removed_inside_instant");
            }
            let line = format!(
                "run {}: {:?} {} removed after it was read (request {event:?})",
                self.run, list, item.id
            );
            self.log.push(line);
        }
    }

    /// Re-dates an item not read yet to behind the page being read (a back-office
    /// correction), preferring one that takes part in the matching; sometimes also one
    /// already read, to ahead of the page.
    fn redate(&mut self, h: &Handle, event: &Event) {
        let Event::List {
            list,
            iban,
            from,
            page,
            status,
            ..
        } = event
        else {
            return;
        };
        if from.is_none() && *page < 2 {
            // The start of the list: nothing is behind it.
            return;
        }
        let coming = h.would_serve(event);
        let all = items(h, event);
        let at_of = |id: &String| all.iter().find(|i| i.id == *id).map(|i| i.at);
        let first = coming.first().and_then(at_of);
        let behind = match (*from, first) {
            (Some(f), Some(s)) => f.min(s),
            (Some(f), None) => f,
            (None, Some(s)) => s,
            (None, None) => return,
        };
        let received = self
            .received
            .get(&key_of(*list, iban, status))
            .cloned()
            .unwrap_or_default();
        let unread: Vec<&Item> = all
            .iter()
            .filter(|i| i.at >= behind && !received.contains(&i.id) && !coming.contains(&i.id))
            .collect();
        let mattering: Vec<&Item> = unread.iter().copied().filter(|i| i.matters).collect();
        let pool = if !mattering.is_empty() && self.rng2.chance(0.7) {
            mattering
        } else {
            unread
        };
        let move_to = |h: &Handle, id: &str, at: DateTime<Utc>| match list {
            ListName::Transactions => h.redate_transaction(id, at),
            ListName::Payments => h.redate_payment(id, at),
            ListName::Rampoffs => false,
        };
        if let Some(item) = self.rng2.pick(&pool).copied() {
            let at = behind - Duration::microseconds(1 + self.rng2.below(600_000_000) as i64);
            if move_to(h, &item.id, at) {
                self.count("redated_unread_behind");
                let line = format!(
                    "run {}: {:?} {} not read yet, re-dated from {} to {at} (request {event:?})",
                    self.run, list, item.id, item.at
                );
                self.log.push(line);
            }
        }
        if self.rng2.chance(0.3) {
            // Not a credit that names a waiting payment with its amount: read before the
            // move, the job holds it at its old instant, and the oracle judges it at its
            // new one; a move across the booking tolerance would make them disagree.
            let read: Vec<&Item> = all
                .iter()
                .filter(|i| {
                    received.contains(&i.id) && !(*list == ListName::Transactions && i.matters)
                })
                .collect();
            let last = coming.last().and_then(at_of).unwrap_or(behind);
            if let Some(item) = self.rng2.pick(&read).copied() {
                let ahead = last + Duration::microseconds(1 + self.rng2.below(600_000_000) as i64);
                let at = ahead.min(Utc::now());
                if at > item.at && move_to(h, &item.id, at) {
                    self.count("redated_read_ahead");
                    let line = format!(
                        "run {}: {:?} {} already read, re-dated from {} to {at}",
                        self.run, list, item.id, item.at
                    );
                    self.log.push(line);
                }
            }
        }
    }

    /// Books a second credit of a credit's amount naming its payment's concept at the
    /// instant being re-read, before the re-read is answered.
    fn twin_at(&mut self, h: &Handle, iban: &str, at: DateTime<Utc>) {
        let (payments, txs) = h.snapshot();
        let pairs: Vec<(&PaymentRecord, &TransactionRecord)> = txs
            .iter()
            .filter(|t| {
                t.iban == iban
                    && t.booked_at.timestamp_micros() == at.timestamp_micros()
                    && open_credit(t)
            })
            .flat_map(|t| payments.iter().filter(|p| fits(p, t)).map(move |p| (p, t)))
            .collect();
        let Some((p, t)) = self.rng2.pick(&pairs).copied() else {
            return;
        };
        let id = self.new_id("TR");
        let text = format!("Ref {}", p.concept.unwrap_or_default());
        if h.add_transaction(TransactionRecord::credit(&id, iban, t.amount, text, at))
            .is_ok()
        {
            self.protected.insert(id.clone());
            self.count("twin_at_reread");
            let line = format!(
                "run {}: twin {id} of {} (for {}) booked at {at} as its instant is re-read",
                self.run, t.id, p.id
            );
            self.log.push(line);
        }
    }

    /// A bank that books by date: more credits than a page at one midnight, among them
    /// a customer who paid twice, a few clean pairs and credits naming nothing. Ids sort
    /// by position, and the second of the paid-twice credits is often the first item of
    /// the instant's second page: the item a removal on the first page pushes onto it.
    pub fn add_day(&mut self, h: &Handle, per_page: u64) {
        let Some(iban) = self.rng2.pick(&self.ibans).cloned() else {
            return;
        };
        let now = Utc::now();
        let mut midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now);
        if now - midnight < Duration::hours(1) {
            midnight -= Duration::days(1);
        }
        let n = per_page + 2 + self.rng2.below(2 * per_page);
        let first = self.rng2.below(per_page);
        let second = if self.rng2.chance(0.5) {
            per_page
        } else {
            let other = self.rng2.below(n - 1);
            if other >= first { other + 1 } else { other }
        };
        let clean = 2 + self.rng2.below(3);
        let created = |rng: &mut Rng| midnight - Duration::minutes(30 + rng.below(20 * 60) as i64);
        // The customer who paid twice.
        let twice_id = self.new_id("PD");
        let twice_concept = self.new_concept();
        let twice_cents = 1_000 + self.rng2.below(90_000) as i64;
        let at = created(&mut self.rng2);
        let _ = h.add_payment(PaymentRecord::transfer(
            &twice_id,
            twice_concept,
            twice_cents,
            at,
        ));
        let mut credits = Vec::new();
        let (mut t1, mut t2) = (String::new(), String::new());
        let mut pairs_left = clean;
        for pos in 0..n {
            let id = format!("TD{pos:02}{}", self.new_id(""));
            let (cents, text) = if pos == first || pos == second {
                if pos == first {
                    t1 = id.clone();
                } else {
                    t2 = id.clone();
                }
                (twice_cents, format!("Ref {twice_concept}"))
            } else if pairs_left > 0 && self.rng2.chance(0.5) {
                pairs_left -= 1;
                let pid = self.new_id("PD");
                let concept = self.new_concept();
                let cents = 1_000 + self.rng2.below(90_000) as i64;
                let at = created(&mut self.rng2);
                let _ = h.add_payment(PaymentRecord::transfer(&pid, concept, cents, at));
                (cents, format!("concepto:{concept}."))
            } else {
                let cents = 1_000 + self.rng2.below(90_000) as i64;
                (cents, format!("Transferencia SEPA {pos}"))
            };
            credits.push(TransactionRecord::credit(
                &id,
                &iban,
                Decimal::new(cents, 2),
                text,
                midnight,
            ));
        }
        for t in credits {
            let _ = h.add_transaction(t);
        }
        self.protected
            .extend([twice_id.clone(), t1.clone(), t2.clone()]);
        self.paid_twice
            .insert(twice_id.clone(), (t1.clone(), t2.clone()));
        self.day = Some((iban.clone(), midnight));
        self.count("date_only_day");
        let line = format!(
            "run {}: {n} credits booked at {midnight} on {iban}; {twice_id} paid twice ({t1} at {first}, {t2} at {second})",
            self.run
        );
        self.log.push(line);
    }

    /// For this run, a record served with a field of the wrong type, and a clean pair
    /// beside it that a job reading the lists as complete would call.
    pub fn add_wrong_type(&mut self, h: &Handle, kind: WrongType) {
        let Some(iban) = self.rng2.pick(&self.ibans).cloned() else {
            return;
        };
        let recent = |rng: &mut Rng| Utc::now() - Duration::minutes(1 + rng.below(600) as i64);
        let pair = |s: &mut SimState| {
            let pid = s.new_id("PB");
            let concept = s.new_concept();
            let cents = 1_000 + s.rng2.below(90_000) as i64;
            let created = recent(&mut s.rng2);
            let _ = h.add_payment(PaymentRecord::transfer(&pid, concept, cents, created));
            let tid = s.new_id("TB");
            let text = format!("Ref {concept}");
            let at = created + Duration::seconds(1 + s.rng2.below(600) as i64);
            let _ = h.add_transaction(TransactionRecord::credit(
                &tid,
                &iban,
                Decimal::new(cents, 2),
                text,
                at.min(Utc::now()),
            ));
            (pid, concept, cents, tid)
        };
        let _bait = pair(self);
        let (list, id, field, value, name) = match kind {
            WrongType::PaymentConcept => {
                let (pid, concept, ..) = pair(self);
                let v = json!({ "value": concept });
                (
                    ListName::Payments,
                    pid,
                    "concept",
                    v,
                    "wrong_payment_concept",
                )
            }
            WrongType::CreditConcept => {
                let (_, concept, _, tid) = pair(self);
                let v = json!({ "text": format!("Ref {concept}") });
                (
                    ListName::Transactions,
                    tid,
                    "concept",
                    v,
                    "wrong_credit_concept",
                )
            }
            WrongType::ReconciledId => {
                // A credit naming two waiting payments, tied by a person to the first:
                // read as open, it would be the second one's only candidate.
                let (p1, c1, cents, _) = pair(self);
                let second = self.new_id("PB");
                let c2 = self.new_concept();
                let _ = h.add_payment(PaymentRecord::transfer(
                    &second,
                    c2,
                    cents,
                    recent(&mut self.rng2),
                ));
                let tid = self.new_id("TB");
                let _ = h.add_transaction(TransactionRecord::credit(
                    &tid,
                    &iban,
                    Decimal::new(cents, 2),
                    format!("Pagos {c1} y {c2}"),
                    Utc::now() - Duration::seconds(1 + self.rng2.below(600) as i64),
                ));
                h.reconcile_by_hand(&p1, &tid);
                self.protected.insert(second);
                let v = if self.rng2.chance(0.5) {
                    json!({ "id": p1 })
                } else {
                    json!([p1])
                };
                (
                    ListName::Transactions,
                    tid,
                    "reconciled_payment_id",
                    v,
                    "wrong_reconciled_id",
                )
            }
            WrongType::Amount => {
                let (pid, _, _, tid) = pair(self);
                if self.rng2.chance(0.5) {
                    (
                        ListName::Payments,
                        pid,
                        "fiat_amount",
                        json!(true),
                        "wrong_amount",
                    )
                } else {
                    (
                        ListName::Transactions,
                        tid,
                        "amount",
                        json!(false),
                        "wrong_amount",
                    )
                }
            }
        };
        if h.set_wire_override(list, &id, field, value.clone()) {
            self.protected.insert(id.clone());
            self.count("wrong_type");
            let line = format!(
                "run {}: {list:?} {id} served with {field} = {value} for this run",
                self.run
            );
            self.log.push(line);
            self.bad.push(Bad {
                list,
                id,
                field,
                value,
                kind: name,
            });
        }
    }

    /// After the run: every record is served as its record says again.
    pub fn clear_wrong_types(&mut self, h: &Handle) {
        for b in std::mem::take(&mut self.bad) {
            h.clear_wire_override(b.list, &b.id, b.field);
        }
    }

    /// A reconcile call arrives: none may be made once the run's sync received an
    /// unreadable record, and a credit the provider shows reconciled is never called.
    pub fn on_call(&mut self, h: &Handle, payment: &str, transaction: &str) {
        let run = self.run;
        if let Some(what) = &self.bad_served {
            let line = format!(
                "run {run}: {payment} / {transaction} called although this run's sync received an unreadable record ({what}): its list is incomplete, so nothing may be called (rules §1, §3.5)"
            );
            self.violations.push(line);
        }
        if let Some(b) = self
            .bad
            .iter()
            .find(|b| b.field == "reconciled_payment_id" && b.id == transaction)
            && let Some(tie) = h
                .transaction(transaction)
                .and_then(|t| t.reconciled_payment_id)
        {
            let line = format!(
                "run {run}: {payment} / {transaction} called, but the credit is reconciled at the provider (to {tie}); its reconciled_payment_id was served as {}",
                b.value
            );
            self.violations.push(line);
        }
    }
}
