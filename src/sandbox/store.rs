//! The sandbox's in-memory state: records kept sorted by (timestamp, id) so a page is a
//! slice, per-status indexes for the payment filter, and each item's JSON cached.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Value, json};

use super::Faults;
use super::data::{
    AccountRecord, Generated, OfframpRecord, PaymentRecord, Quirks, TransactionRecord,
};
use super::rng::Rng;
use crate::domain::Direction;

/// Sort key of every list: the item's own timestamp (µs) then its id (§13.2).
pub(crate) type Key = (i64, Arc<str>);

/// A record, its quirks, and its wire JSON built on first use (reset on every change).
pub(crate) struct Row<T> {
    pub rec: T,
    pub quirks: Quirks,
    /// Fields served with this value instead of the record's, whatever its type: a
    /// provider that sends a field of the wrong type (see [`State::set_wire_override`]).
    overrides: Vec<(String, Value)>,
    json: OnceLock<Arc<str>>,
}

impl<T> Row<T> {
    fn new(rec: T, quirks: Quirks) -> Self {
        Self {
            rec,
            quirks,
            overrides: Vec::new(),
            json: OnceLock::new(),
        }
    }

    /// Call after changing `rec`.
    pub fn touch(&mut self) {
        self.json = OnceLock::new();
    }

    fn json(&self, build: impl FnOnce(&T, Quirks) -> String) -> Arc<str> {
        self.json
            .get_or_init(|| {
                let text = build(&self.rec, self.quirks);
                Arc::from(overridden(text, &self.overrides))
            })
            .clone()
    }

    /// Serves `field` as `value` from now on (`None`: as the record says again).
    fn set_override(&mut self, field: &str, value: Option<Value>) {
        self.overrides.retain(|(f, _)| f != field);
        if let Some(v) = value {
            self.overrides.push((field.to_owned(), v));
        }
        self.touch();
    }
}

/// An item's JSON with `overrides` written over its fields (added where absent).
fn overridden(text: String, overrides: &[(String, Value)]) -> String {
    if overrides.is_empty() {
        return text;
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut m)) => {
            for (field, value) in overrides {
                m.insert(field.clone(), value.clone());
            }
            Value::Object(m).to_string()
        }
        _ => text,
    }
}

/// Which list a page comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    Payments,
    Rampoffs,
    Transactions,
}

/// A page's worth of item JSON plus its pagination numbers.
pub(crate) struct Page {
    pub items: Vec<Arc<str>>,
    pub current_page: u64,
    pub per_page: u64,
    pub last_page: u64,
    pub total: u64,
    /// Where the page's items sit in the whole list (without `from`/`to`): the index of
    /// its first item, and one past its last.
    pub span: (usize, usize),
}

impl Page {
    /// The §13.2 envelope, written directly: items are already JSON.
    pub fn render(&self) -> String {
        let len: usize = self.items.iter().map(|s| s.len() + 1).sum();
        let mut out = String::with_capacity(len + 128);
        out.push_str(r#"{"status":"ok","data":["#);
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(item);
        }
        out.push_str(&format!(
            r#"],"pagination":{{"current_page":{},"per_page":{},"last_page":{},"total":{}}}}}"#,
            self.current_page, self.per_page, self.last_page, self.total
        ));
        out
    }
}

/// Filters and paging of one list request, already validated.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub page: u64,
    pub per_page: u64,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub status: Option<String>,
}

/// The index range `[lo, hi)` of `keys` whose timestamp is in `[from, to)`.
fn window(keys: &[Key], from: Option<i64>, to: Option<i64>) -> (usize, usize) {
    let lo = from.map_or(0, |f| keys.partition_point(|k| k.0 < f));
    let hi = to.map_or(keys.len(), |t| keys.partition_point(|k| k.0 < t));
    (lo, hi.max(lo))
}

/// The window `[lo, hi)` a request covers, and the span of it its page holds (empty,
/// at `hi`, past the last page).
fn page_span(keys: &[Key], q: &ListQuery) -> (usize, usize, (usize, usize)) {
    let (lo, hi) = window(keys, q.from, q.to);
    let start = q
        .page
        .saturating_sub(1)
        .saturating_mul(q.per_page)
        .saturating_add(lo as u64);
    if start >= hi as u64 {
        return (lo, hi, (hi, hi));
    }
    let start = start as usize;
    (lo, hi, (start, (start + q.per_page as usize).min(hi)))
}

/// Two sorted key lists as one.
fn merge_sorted(a: Vec<Key>, b: Vec<Key>) -> Vec<Key> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}

fn insert_sorted(keys: &mut Vec<Key>, key: Key) {
    let pos = keys.partition_point(|k| *k < key);
    keys.insert(pos, key);
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The wire form of a timestamp: microseconds and `Z`, as the provider writes them.
pub(crate) fn wire_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A decimal as a JSON number literal, exact (serde_json keeps the digits verbatim).
fn number(d: Decimal) -> Value {
    serde_json::Number::from_str(&d.normalize().to_string())
        .map(Value::Number)
        .unwrap_or_else(|_| Value::String(d.to_string()))
}

/// Two decimals, as bank statements print amounts.
pub(crate) fn money_text(d: Decimal) -> String {
    let mut d = d;
    d.rescale(2);
    d.to_string()
}

fn extra_field() -> Value {
    json!({ "source": "sandbox", "flags": [1, 2], "nested": { "ok": true } })
}

fn payment_json(p: &PaymentRecord, q: Quirks, quirks: bool) -> String {
    let q = if quirks { q } else { Quirks::default() };
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("external_id".into(), json!(p.external_id));
    let user_id = match (q.user_id_as_int, p.user_id.parse::<u64>()) {
        (true, Ok(n)) => json!(n),
        _ => json!(p.user_id),
    };
    m.insert("user_id".into(), user_id);
    m.insert("status".into(), json!(p.status));
    let fiat = if q.fiat_as_string {
        json!(p.fiat_cents.to_string())
    } else {
        json!(p.fiat_cents)
    };
    m.insert("fiat_amount".into(), fiat);
    m.insert("fiat_symbol".into(), json!(p.fiat_symbol));
    m.insert("coin_symbol".into(), json!(p.coin_symbol));
    let coin = if q.coin_as_string {
        json!(p.coin_amount.normalize().to_string())
    } else {
        number(p.coin_amount)
    };
    m.insert("coin_amount".into(), coin);
    m.insert("created_at".into(), json!(wire_time(p.created_at)));
    m.insert("updated_at".into(), json!(wire_time(p.updated_at)));
    m.insert("holder".into(), json!(p.holder));
    if p.status == "coins_sent" {
        m.insert("txid".into(), json!(p.txid));
    }
    let payment_type = match q.type_case {
        1 => p.payment_type.to_ascii_uppercase(),
        2 => {
            let mut c = p.payment_type.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
        _ => p.payment_type.clone(),
    };
    m.insert("payment_type".into(), json!(payment_type));
    let concept = match (p.concept, q.concept_as_string) {
        (Some(c), true) => json!(c.to_string()),
        (Some(c), false) => json!(c),
        (None, _) => Value::Null,
    };
    m.insert("concept".into(), concept);
    if q.extra_field {
        m.insert("extra_field".into(), extra_field());
    }
    Value::Object(m).to_string()
}

fn transaction_json(t: &TransactionRecord, q: Quirks, quirks: bool) -> String {
    let mut v = json!({
        "id": t.id,
        "iban": t.iban,
        "amount": money_text(t.amount),
        "currency": t.currency,
        "direction": t.direction.as_str(),
        "concept": t.concept,
        "counterparty_name": t.counterparty_name,
        "counterparty_iban": t.counterparty_iban,
        "booked_at": wire_time(t.booked_at),
        "value_date": t.value_date.map(|d| d.format("%Y-%m-%d").to_string()),
        "reconciled_payment_id": t.reconciled_payment_id,
    });
    if quirks && q.extra_field {
        v["extra_field"] = extra_field();
    }
    v.to_string()
}

fn offramp_json(o: &OfframpRecord, q: Quirks, quirks: bool) -> String {
    let mut v = json!({
        "id": o.id,
        "user_id": o.user_id,
        "status": o.status,
        "blockchain": o.blockchain,
        "crypto": o.crypto,
        "amount": o.amount,
        "decimals": o.decimals,
        "fiat_amount": money_text(o.fiat_amount),
        "fiat_symbol": o.fiat_symbol,
        "iban": o.iban,
        "created_at": wire_time(o.created_at),
        "updated_at": wire_time(o.updated_at),
    });
    if quirks && q.extra_field {
        v["extra_field"] = extra_field();
    }
    v.to_string()
}

/// Why a record could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("an item with id {0:?} already exists")]
    DuplicateId(String),
    #[error("no bank account with IBAN {0:?}")]
    UnknownAccount(String),
}

pub(crate) struct State {
    pub quirks: bool,
    pub anchor: DateTime<Utc>,
    pub accounts: Vec<AccountRecord>,
    pub payments: FxHashMap<Arc<str>, Row<PaymentRecord>>,
    pub payment_order: Vec<Key>,
    pub payment_by_status: FxHashMap<String, Vec<Key>>,
    /// Payments whose status changed since `payment_by_status` was brought up to date,
    /// each with its key and the status it is still filed under there. Status changes
    /// (one per reconcile) are only noted here; the next status-filtered read moves them
    /// all at once, instead of every change shifting a sorted vector of up to every
    /// payment, or every read rebuilding the index from every payment.
    status_moves: FxHashMap<Arc<str>, (Key, String)>,
    pub offramps: FxHashMap<Arc<str>, Row<OfframpRecord>>,
    pub offramp_order: Vec<Key>,
    pub txs: FxHashMap<Arc<str>, Row<TransactionRecord>>,
    /// Per account IBAN, that account's transactions.
    pub tx_order: FxHashMap<String, Vec<Key>>,
    pub next_concept: u64,
    /// Ids and amounts for items the shifting-pages fault inserts.
    pub shift_rng: Rng,
    /// Records added after generation, and when (the count of additions then).
    pub added: u64,
    pub added_seq: FxHashMap<String, u64>,
}

pub(crate) fn normalise_iban(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl State {
    pub fn new(g: Generated, quirks: bool, seed: u64, anchor: DateTime<Utc>) -> Self {
        let mut s = Self {
            quirks,
            anchor,
            tx_order: g
                .accounts
                .iter()
                .map(|a| (a.iban.clone(), Vec::new()))
                .collect(),
            accounts: g.accounts,
            payments: FxHashMap::default(),
            payment_order: Vec::with_capacity(g.payments.len()),
            payment_by_status: FxHashMap::default(),
            status_moves: FxHashMap::default(),
            offramps: FxHashMap::default(),
            offramp_order: Vec::with_capacity(g.offramps.len()),
            txs: FxHashMap::default(),
            next_concept: g.next_concept,
            shift_rng: Rng::new(seed ^ 0x5EED_5A1F),
            added: 0,
            added_seq: FxHashMap::default(),
        };
        // Bulk load: push, then sort each index once.
        for (p, q) in g.payments {
            let id: Arc<str> = Arc::from(p.id.as_str());
            let key = (micros(p.created_at), id.clone());
            s.payment_order.push(key.clone());
            s.payment_by_status
                .entry(p.status.clone())
                .or_default()
                .push(key);
            s.payments.insert(id, Row::new(p, q));
        }
        for (o, q) in g.offramps {
            let id: Arc<str> = Arc::from(o.id.as_str());
            s.offramp_order.push((micros(o.created_at), id.clone()));
            s.offramps.insert(id, Row::new(o, q));
        }
        for (t, q) in g.transactions {
            let id: Arc<str> = Arc::from(t.id.as_str());
            if let Some(v) = s.tx_order.get_mut(&t.iban) {
                v.push((micros(t.booked_at), id.clone()));
            }
            s.txs.insert(id, Row::new(t, q));
        }
        s.payment_order.sort_unstable();
        s.offramp_order.sort_unstable();
        for v in s.payment_by_status.values_mut() {
            v.sort_unstable();
        }
        for v in s.tx_order.values_mut() {
            v.sort_unstable();
        }
        s
    }

    fn keys(&self, kind: ListKind, q: &ListQuery, iban: &str) -> &[Key] {
        match kind {
            ListKind::Payments => match &q.status {
                Some(st) => self
                    .payment_by_status
                    .get(st)
                    .map_or(&[][..], Vec::as_slice),
                None => &self.payment_order,
            },
            ListKind::Rampoffs => &self.offramp_order,
            ListKind::Transactions => self.tx_order.get(iban).map_or(&[][..], Vec::as_slice),
        }
    }

    /// One page of a list. `iban` is only read for transactions. A status filter reads
    /// the per-status index: call [`State::refresh_status_index`] first.
    pub fn page(&self, kind: ListKind, q: &ListQuery, iban: &str) -> Page {
        let keys = self.keys(kind, q, iban);
        let (lo, hi, span) = page_span(keys, q);
        let total = (hi - lo) as u64;
        let last_page = total.div_ceil(q.per_page).max(1);
        let items = keys[span.0..span.1]
            .iter()
            .filter_map(|(_, id)| self.item_json(kind, id))
            .collect();
        Page {
            items,
            current_page: q.page,
            per_page: q.per_page,
            last_page,
            total,
            span,
        }
    }

    /// The ids of the items one page of a list holds now (what [`State::page`] would
    /// serve). A status filter reads the per-status index, as there.
    pub fn page_ids(&self, kind: ListKind, q: &ListQuery, iban: &str) -> Vec<Arc<str>> {
        let keys = self.keys(kind, q, iban);
        let (.., span) = page_span(keys, q);
        keys[span.0..span.1]
            .iter()
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Serves `field` of the item `id` of the list `kind` as `value` (`None`: as the
    /// record says again), in lists and in `GET /payment/{id}` alike. False if there is
    /// no such item.
    pub fn set_wire_override(
        &mut self,
        kind: ListKind,
        id: &str,
        field: &str,
        value: Option<Value>,
    ) -> bool {
        let found = match kind {
            ListKind::Payments => self
                .payments
                .get_mut(id)
                .map(|r| r.set_override(field, value)),
            ListKind::Rampoffs => self
                .offramps
                .get_mut(id)
                .map(|r| r.set_override(field, value)),
            ListKind::Transactions => self.txs.get_mut(id).map(|r| r.set_override(field, value)),
        };
        found.is_some()
    }

    fn item_json(&self, kind: ListKind, id: &str) -> Option<Arc<str>> {
        let quirks = self.quirks;
        match kind {
            ListKind::Payments => self
                .payments
                .get(id)
                .map(|r| r.json(|p, q| payment_json(p, q, quirks))),
            ListKind::Rampoffs => self
                .offramps
                .get(id)
                .map(|r| r.json(|o, q| offramp_json(o, q, quirks))),
            ListKind::Transactions => self
                .txs
                .get(id)
                .map(|r| r.json(|t, q| transaction_json(t, q, quirks))),
        }
    }

    pub fn payment_json(&self, id: &str) -> Option<Arc<str>> {
        self.item_json(ListKind::Payments, id)
    }

    pub fn accounts_json(&self) -> String {
        let data: Vec<Value> = self
            .accounts
            .iter()
            .map(|a| {
                json!({
                    "iban": a.iban,
                    "bic": a.bic,
                    "holder_name": a.holder_name,
                    "currency": a.currency,
                    "balance": money_text(a.balance),
                })
            })
            .collect();
        json!({ "status": "ok", "data": data }).to_string()
    }

    pub fn has_account(&self, iban: &str) -> bool {
        self.tx_order.contains_key(iban)
    }

    pub fn set_payment_status(&mut self, id: &str, status: &str, now: DateTime<Utc>) -> bool {
        let Some((id, row)) = self.payments.get_key_value(id) else {
            return false;
        };
        let id = id.clone();
        if row.rec.status != status && !self.status_moves.contains_key(&id) {
            let key = (micros(row.rec.created_at), id.clone());
            self.status_moves
                .insert(id.clone(), (key, row.rec.status.clone()));
        }
        let Some(row) = self.payments.get_mut(&id) else {
            return false;
        };
        row.rec.status = status.to_owned();
        row.rec.updated_at = now;
        row.touch();
        true
    }

    /// Whether a status-filtered read must call [`State::refresh_status_index`] first.
    pub fn status_index_stale(&self) -> bool {
        !self.status_moves.is_empty()
    }

    /// Files the payments whose status changed under their new status: out of the old
    /// status's keys, merged into the new one's (linear in the statuses touched).
    pub fn refresh_status_index(&mut self) {
        let mut leaving: FxHashMap<String, FxHashSet<Arc<str>>> = FxHashMap::default();
        let mut arriving: FxHashMap<String, Vec<Key>> = FxHashMap::default();
        for (id, (key, filed)) in std::mem::take(&mut self.status_moves) {
            let Some(row) = self.payments.get(&id) else {
                continue;
            };
            if row.rec.status != filed {
                match arriving.get_mut(&row.rec.status) {
                    Some(keys) => keys.push(key),
                    None => {
                        arriving.insert(row.rec.status.clone(), vec![key]);
                    }
                }
                leaving.entry(filed).or_default().insert(id);
            }
        }
        for (status, ids) in leaving {
            if let Some(keys) = self.payment_by_status.get_mut(&status) {
                keys.retain(|k| !ids.contains(&k.1));
            }
        }
        for (status, mut new) in arriving {
            new.sort_unstable();
            let keys = self.payment_by_status.entry(status).or_default();
            *keys = merge_sorted(std::mem::take(keys), new);
        }
    }

    pub fn add_payment(&mut self, p: PaymentRecord) -> Result<(), SandboxError> {
        if self.payments.contains_key(p.id.as_str()) {
            return Err(SandboxError::DuplicateId(p.id));
        }
        if let Some(c) = p.concept {
            self.next_concept = self.next_concept.max(c + 1);
        }
        let id: Arc<str> = Arc::from(p.id.as_str());
        let key = (micros(p.created_at), id.clone());
        insert_sorted(&mut self.payment_order, key.clone());
        insert_sorted(
            self.payment_by_status.entry(p.status.clone()).or_default(),
            key,
        );
        self.note_added(&id);
        self.payments.insert(id, Row::new(p, Quirks::default()));
        Ok(())
    }

    fn note_added(&mut self, id: &str) {
        self.added += 1;
        self.added_seq.insert(id.to_owned(), self.added);
    }

    /// Forgets a payment, as a provider that answers `payment_not_found` for it.
    pub fn remove_payment(&mut self, id: &str) -> bool {
        self.refresh_status_index();
        let Some((id, row)) = self.payments.remove_entry(id) else {
            return false;
        };
        let key = (micros(row.rec.created_at), id);
        self.payment_order.retain(|k| *k != key);
        if let Some(keys) = self.payment_by_status.get_mut(&row.rec.status) {
            keys.retain(|k| *k != key);
        }
        true
    }

    /// Takes a bank transaction off its account's list (a reversed booking), as if it
    /// had never been booked: the balance is restored.
    pub fn remove_transaction(&mut self, id: &str) -> bool {
        let Some((id, row)) = self.txs.remove_entry(id) else {
            return false;
        };
        let t = &row.rec;
        if let Some(keys) = self.tx_order.get_mut(&t.iban) {
            let key = (micros(t.booked_at), id);
            keys.retain(|k| *k != key);
        }
        if let Some(a) = self.accounts.iter_mut().find(|a| a.iban == t.iban) {
            match t.direction {
                Direction::Credit => a.balance -= t.amount,
                Direction::Debit => a.balance += t.amount,
            }
        }
        true
    }

    /// Moves a bank transaction to another booking instant (a back-office correction):
    /// it leaves its place in the list's order and takes the new one.
    pub fn redate_transaction(&mut self, id: &str, booked_at: DateTime<Utc>) -> bool {
        let Some((key, row)) = self.txs.get_key_value(id) else {
            return false;
        };
        let (key, iban, old) = (key.clone(), row.rec.iban.clone(), row.rec.booked_at);
        if let Some(keys) = self.tx_order.get_mut(&iban) {
            keys.retain(|k| *k != (micros(old), key.clone()));
            insert_sorted(keys, (micros(booked_at), key.clone()));
        }
        if let Some(row) = self.txs.get_mut(&key) {
            row.rec.booked_at = booked_at;
            row.touch();
        }
        true
    }

    /// Moves a payment to another creation instant, in every index it is filed in.
    pub fn redate_payment(&mut self, id: &str, created_at: DateTime<Utc>) -> bool {
        self.refresh_status_index();
        let Some((key, row)) = self.payments.get_key_value(id) else {
            return false;
        };
        let (key, status, old) = (key.clone(), row.rec.status.clone(), row.rec.created_at);
        let (was, now) = (
            (micros(old), key.clone()),
            (micros(created_at), key.clone()),
        );
        self.payment_order.retain(|k| *k != was);
        insert_sorted(&mut self.payment_order, now.clone());
        if let Some(keys) = self.payment_by_status.get_mut(&status) {
            keys.retain(|k| *k != was);
            insert_sorted(keys, now);
        }
        if let Some(row) = self.payments.get_mut(&key) {
            row.rec.created_at = created_at;
            row.touch();
        }
        true
    }

    pub fn add_offramp(&mut self, o: OfframpRecord) -> Result<(), SandboxError> {
        if self.offramps.contains_key(o.id.as_str()) {
            return Err(SandboxError::DuplicateId(o.id));
        }
        let id: Arc<str> = Arc::from(o.id.as_str());
        insert_sorted(&mut self.offramp_order, (micros(o.created_at), id.clone()));
        self.note_added(&id);
        self.offramps.insert(id, Row::new(o, Quirks::default()));
        Ok(())
    }

    pub fn add_transaction(&mut self, t: TransactionRecord) -> Result<(), SandboxError> {
        let mut t = t;
        t.iban = normalise_iban(&t.iban);
        if self.txs.contains_key(t.id.as_str()) {
            return Err(SandboxError::DuplicateId(t.id));
        }
        let Some(keys) = self.tx_order.get_mut(&t.iban) else {
            return Err(SandboxError::UnknownAccount(t.iban));
        };
        let id: Arc<str> = Arc::from(t.id.as_str());
        insert_sorted(keys, (micros(t.booked_at), id.clone()));
        if let Some(a) = self.accounts.iter_mut().find(|a| a.iban == t.iban) {
            match t.direction {
                Direction::Credit => a.balance += t.amount,
                Direction::Debit => a.balance -= t.amount,
            }
        }
        self.note_added(&id);
        self.txs.insert(id, Row::new(t, Quirks::default()));
        Ok(())
    }

    /// The shifting-pages fault: put one new item in front of the first item the
    /// request's window covers, so every later page starts one item earlier than the
    /// client expects and repeats an item. The new item is never open (or is a fresh
    /// payment of the filtered status), and it is absent from `Expected`.
    pub fn shift(&mut self, kind: ListKind, q: &ListQuery, iban: &str) {
        let keys = self.keys(kind, q, iban);
        let (lo, hi) = window(keys, q.from, q.to);
        // The first request of a read (page 1 from the list's start) sees the list as it
        // is; any later one (a numbered page, or a cursor past the first item) finds a
        // new item.
        let later = q.page >= 2 || (lo > 0 && q.from.is_some());
        if lo >= hi || !later {
            return;
        }
        let first = keys[lo].0;
        let at = DateTime::<Utc>::from_timestamp_micros(first).unwrap_or_default();
        // Same timestamp, and an id starting "00" sorts before generated ids (which
        // start with a letter).
        let id = format!("00{}", self.shift_rng.alnum(23));
        let cents = self.shift_rng.range(1_000, 50_000);
        match kind {
            ListKind::Payments => {
                let status = q.status.clone().unwrap_or_else(|| "started".to_owned());
                let concept = self.next_concept;
                let mut p = PaymentRecord::transfer(id, concept, cents, at);
                p.status = status;
                let _ = self.add_payment(p);
            }
            ListKind::Rampoffs => {
                let o = OfframpRecord::new(id, "pending", Decimal::new(cents, 2), at, at);
                let _ = self.add_offramp(o);
            }
            ListKind::Transactions => {
                let mut t = TransactionRecord::credit(
                    id,
                    iban,
                    Decimal::new(cents, 2),
                    "Transferencia SEPA",
                    at,
                );
                t.reconciled_payment_id = Some(format!("00{}", self.shift_rng.alnum(23)));
                let _ = self.add_transaction(t);
            }
        }
    }
}

/// The request as the provider serves it: `per_page` clamped by the fault, if set.
pub(crate) fn clamped(faults: &Faults, q: ListQuery) -> ListQuery {
    let mut q = q;
    if let Some(max) = faults.max_per_page {
        q.per_page = q.per_page.min(max.max(1));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ts: &[i64]) -> Vec<Key> {
        ts.iter()
            .enumerate()
            .map(|(i, t)| (*t, Arc::from(format!("id{i}").as_str())))
            .collect()
    }

    /// The status index as a full rebuild from every payment would make it.
    fn rebuilt(s: &State) -> Vec<(String, Vec<Key>)> {
        let mut by: FxHashMap<String, Vec<Key>> = FxHashMap::default();
        for key in &s.payment_order {
            let status = s.payments[&key.1].rec.status.clone();
            by.entry(status).or_default().push(key.clone());
        }
        let mut v: Vec<_> = by.into_iter().collect();
        v.sort();
        v
    }

    fn filed(s: &State) -> Vec<(String, Vec<Key>)> {
        let mut v: Vec<_> = s
            .payment_by_status
            .iter()
            .filter(|(_, keys)| !keys.is_empty())
            .map(|(st, keys)| (st.clone(), keys.clone()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_status_index_after_any_status_changes_and_additions_is_what_a_rebuild_gives() {
        let anchor = DateTime::<Utc>::from_timestamp(1_782_469_800, 0).unwrap_or_default();
        let spec = crate::sandbox::DataSpec::small(7, anchor);
        let mut s = State::new(super::super::data::generate(&spec), true, 7, anchor);
        let mut rng = Rng::new(11);
        let statuses = ["pending_bank", "payment_received", "coins_sent", "started"];
        for round in 0..30 {
            let ids: Vec<Arc<str>> = s.payment_order.iter().map(|k| k.1.clone()).collect();
            // Some payments change status, some twice, some back to where they were.
            for _ in 0..rng.range(0, 25) {
                let id = &ids[rng.range(0, ids.len() as i64) as usize];
                let st = statuses[rng.range(0, statuses.len() as i64) as usize];
                assert!(s.set_payment_status(id, st, anchor));
            }
            if round % 3 == 0 {
                let at = anchor - chrono::Duration::minutes(rng.range(0, 10_000));
                let st = statuses[rng.range(0, statuses.len() as i64) as usize];
                let mut p =
                    PaymentRecord::transfer(format!("NEW{round:04}"), 900_000 + round, 1500, at);
                p.status = st.to_owned();
                s.add_payment(p).unwrap();
            }
            if round % 2 == 1 {
                s.refresh_status_index();
                assert!(!s.status_index_stale());
                assert_eq!(filed(&s), rebuilt(&s), "round {round}");
            }
        }
    }

    #[test]
    fn the_window_is_inclusive_from_and_exclusive_to() {
        let k = keys(&[10, 20, 20, 30, 40]);
        assert_eq!(window(&k, Some(20), Some(40)), (1, 4));
        assert_eq!(window(&k, None, None), (0, 5));
        assert_eq!(window(&k, Some(50), None), (5, 5));
        assert_eq!(window(&k, Some(30), Some(10)), (3, 3));
    }

    #[test]
    fn money_is_written_with_two_decimals() {
        assert_eq!(money_text(Decimal::new(15050, 2)), "150.50");
        assert_eq!(money_text(Decimal::new(15, 0)), "15.00");
    }

    #[test]
    fn decimals_become_exact_json_numbers() {
        let v = number(Decimal::new(148_320_001, 7));
        assert_eq!(v.to_string(), "14.8320001");
    }

    #[test]
    fn wire_times_carry_microseconds_and_z() {
        let t = DateTime::<Utc>::from_timestamp(1_782_469_800, 0).unwrap_or_default();
        assert_eq!(wire_time(t), "2026-06-26T10:30:00.000000Z");
    }
}
