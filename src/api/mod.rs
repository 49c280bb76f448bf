//! The CryptoPocket API client. It owns every wire detail: paths, query names, field
//! names, units, envelopes and the provider's quirks (`docs/provider-api.md` §3, §4, §13;
//! every bare `§` in this module and the sandbox points there).
//! Nothing outside this module knows that `fiat_amount` is cents in one place and units
//! in another, or that success is spelled three ways.
//!
//! Reads are retried with capped exponential backoff and jitter; writes (reconcile) never
//! are: a write whose answer was lost comes back as [`ApiError::OutcomeUnknown`] and the
//! caller re-reads the payment before deciding anything (§13.7).

mod error;
pub mod paging;
#[cfg(test)]
mod tests;
mod transport;

use rustc_hash::FxHashSet;
use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::domain::{
    BankAccount, BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp,
    OfframpId, OfframpStatus, Payment, PaymentId, PaymentStatus,
};
pub use crate::record::{BadRecord, Record};
pub use crate::text::{date_from_text, wire_date, wire_time};
pub use error::ApiError;
use transport::{Answer, Kind, Token, json, malformed, snippet, snippet_bytes};

// ---- wire constants: the one place paths and names live ----------------------------

const PATH_AUTH: &str = "/authenticate";
const PATH_PAYMENTS: &str = "/payments";
const PATH_PAYMENT: &str = "/payment";
const PATH_RAMPOFFS: &str = "/rampoffs";
const PATH_ACCOUNTS: &str = "/banking/accounts";
const PATH_RECONCILE: &str = "/banking/reconcile";
const AUTH_HEADER: &str = "auth";
const CODE_AUTH: &str = "authorization_incorrect";

/// How the client talks to the provider.
#[derive(Clone)]
pub struct ClientConfig {
    /// Ends in `/api`; no trailing slash.
    pub base_url: String,
    pub api_key: String,
    pub api_secret: SecretString,
    /// Per request.
    pub timeout: Duration,
    /// Client-side rate limit; 0 = none.
    pub max_requests_per_second: u32,
    /// Attempts per read, including the first.
    pub max_attempts: u32,
    /// First retry waits up to this long; doubles per attempt, capped at 30 s.
    pub backoff_base: Duration,
    /// Hard overall deadline from the client's creation: no request starts after it.
    pub deadline: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Counters a run reports (metrics, the `runs` table).
#[derive(Debug, Default)]
pub struct ApiStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub errors: AtomicU64,
}

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

/// Filters of a list read. Timestamps are the list's own (§13.3, §13.4, §13.6).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only for payments.
    pub status: Option<PaymentStatus>,
}

/// The answer of a reconcile call that reached the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileAnswer {
    /// Applied; the payment's new status.
    Reconciled { payment_status: PaymentStatus },
    /// Refused with this code (`payment_not_pending`, `transaction_already_reconciled`,
    /// `amount_mismatch`, `payment_not_found`, `transaction_not_found`, or other).
    Refused { code: String },
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

/// The client. Cheap to share behind an `Arc`; safe to use from concurrent tasks.
pub struct Client {
    http: reqwest::Client,
    /// `cfg.base_url`, parsed once.
    base: reqwest::Url,
    cfg: ClientConfig,
    token: tokio::sync::Mutex<Option<Token>>,
    pacer: Mutex<Instant>,
    deadline: Instant,
    jitter: Mutex<u64>,
    pub stats: ApiStats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            // A redirect comes back as an answer (`ApiError::Redirected`), never followed.
            .redirect(reqwest::redirect::Policy::none())
            // This client decides about every retry itself (reads only, see `send`);
            // reqwest's own layer could only retry HTTP/2 refusals, which this HTTP/1.1
            // client never gets, yet it copies every request in case.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("cp-recon/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Malformed {
                endpoint: "client".into(),
                why: format!("cannot build HTTP client: {e}"),
                snippet: String::new(),
            })?;
        let base = reqwest::Url::parse(&cfg.base_url).map_err(|e| ApiError::Malformed {
            endpoint: "client".into(),
            why: format!("base_url {:?} is not a URL: {e}", cfg.base_url),
            snippet: String::new(),
        })?;
        let now = Instant::now();
        let seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9);
        Ok(Self {
            http,
            base,
            deadline: now + cfg.deadline,
            cfg,
            token: tokio::sync::Mutex::new(None),
            pacer: Mutex::new(now),
            jitter: Mutex::new(seed | 1),
            stats: ApiStats::default(),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    // ---- endpoints -----------------------------------------------------------------

    /// `GET /payments`, one page (§13.3).
    pub async fn payments_page(
        &self,
        q: &ListQuery,
        page: u32,
        per_page: u32,
    ) -> Result<Page<Payment>, ApiError> {
        let body = self
            .get(PATH_PAYMENTS, &list_params(q, page, per_page, true))
            .await?;
        parse_page(PATH_PAYMENTS, &body, parse_payment)
    }

    /// `GET /rampoffs`, one page (§13.4).
    pub async fn offramps_page(
        &self,
        q: &ListQuery,
        page: u32,
        per_page: u32,
    ) -> Result<Page<Offramp>, ApiError> {
        let body = self
            .get(PATH_RAMPOFFS, &list_params(q, page, per_page, false))
            .await?;
        parse_page(PATH_RAMPOFFS, &body, parse_offramp)
    }

    /// `GET /banking/accounts/{iban}/transactions`, one page (§13.6).
    pub async fn transactions_page(
        &self,
        iban: &Iban,
        q: &ListQuery,
        page: u32,
        per_page: u32,
    ) -> Result<Page<BankTransaction>, ApiError> {
        let path = transactions_path(iban);
        let body = self
            .get(&path, &list_params(q, page, per_page, false))
            .await?;
        parse_page(&path, &body, parse_transaction)
    }

    /// One transaction, re-read (§13.6 has no endpoint for one): its account's list for
    /// the one microsecond it was booked at, picked by id. `Ok(None)` when it is not
    /// there (any more).
    pub async fn transaction(
        &self,
        iban: &Iban,
        id: &BankTxId,
        booked_at: DateTime<Utc>,
    ) -> Result<Option<Record<BankTransaction>>, ApiError> {
        let (found, bad) = self.transactions_at(iban, booked_at).await?;
        if let Some(bad) = bad.iter().find(|b| b.id.as_deref() == Some(id.as_str())) {
            return Err(ApiError::Malformed {
                endpoint: bad.endpoint.clone(),
                why: bad.error.clone(),
                snippet: snippet(&bad.raw),
            });
        }
        Ok(found.into_iter().find(|r| r.value.id == *id))
    }

    /// Every transaction of an account booked at one microsecond (the window
    /// `[at, at + 1µs)` of §13.6), with the records that could not be read: one request,
    /// or numbered pages of that one instant if it holds more than a page.
    pub async fn transactions_at(
        &self,
        iban: &Iban,
        at: DateTime<Utc>,
    ) -> Result<(Vec<Record<BankTransaction>>, Vec<BadRecord>), ApiError> {
        let q = ListQuery {
            from: Some(at),
            to: Some(at + chrono::Duration::microseconds(1)),
            status: None,
        };
        let (mut items, mut bad) = (Vec::new(), Vec::new());
        let mut page_no = 1;
        loop {
            let mut page = self.transactions_page(iban, &q, page_no, 100).await?;
            items.append(&mut page.items);
            bad.append(&mut page.bad);
            if page.info.current_page >= page.info.last_page || page.info.item_count < 100 {
                return Ok((items, bad));
            }
            page_no += 1;
        }
    }

    /// `GET /banking/accounts` (§13.5): not paginated.
    pub async fn accounts(&self) -> Result<(Vec<Record<BankAccount>>, Vec<BadRecord>), ApiError> {
        let v = json(PATH_ACCOUNTS, &self.get(PATH_ACCOUNTS, &[]).await?.body)?;
        let items = find_array(&v, &["data", "data.accounts", "accounts"])
            .ok_or_else(|| malformed(PATH_ACCOUNTS, "no list of accounts in `data`", &v))?;
        let mut good = Vec::with_capacity(items.len());
        let mut bad = Vec::new();
        for item in items {
            let raw = item.to_string();
            let parsed = serde_json::value::to_raw_value(item)
                .map_err(|e| e.to_string())
                .and_then(|r| parse_account(&r));
            match parsed {
                Ok(a) => good.push(Record { value: a, raw }),
                Err(error) => bad.push(BadRecord {
                    endpoint: PATH_ACCOUNTS.into(),
                    id: item.get("iban").and_then(value_string),
                    raw,
                    error,
                }),
            }
        }
        Ok((good, bad))
    }

    /// `GET /payment/{id}` (§5.3). `Ok(None)` when the provider says it does not know it.
    pub async fn payment(&self, id: &PaymentId) -> Result<Option<Record<Payment>>, ApiError> {
        let path = format!("{PATH_PAYMENT}/{}", encode_path(id.as_str()));
        match self.get(&path, &[]).await {
            Ok(answer) => {
                let data = answer
                    .page_parts()
                    .ok()
                    .and_then(|p| p.data)
                    .filter(|d| d.starts_with('{'))
                    .and_then(|d| serde_json::from_str::<&RawValue>(d).ok())
                    .ok_or_else(|| ApiError::Malformed {
                        endpoint: path.clone(),
                        why: "no payment object in `data`".into(),
                        snippet: snippet_bytes(&answer.body),
                    })?;
                let p = parse_payment(data).map_err(|why| ApiError::Malformed {
                    endpoint: path.clone(),
                    why,
                    snippet: snippet(data.get()),
                })?;
                Ok(Some(Record {
                    value: p,
                    raw: data.get().to_owned(),
                }))
            }
            Err(ApiError::Provider { code, .. }) if code == "payment_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /banking/reconcile` (§13.7). Never retried once it may have reached the
    /// provider: a lost answer is [`ApiError::OutcomeUnknown`].
    pub async fn reconcile(
        &self,
        payment: &PaymentId,
        transaction: &BankTxId,
        iban: &Iban,
    ) -> Result<ReconcileAnswer, ApiError> {
        /// The request body of §13.7.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            payment_id: &'a str,
            transaction_id: &'a str,
            iban: &'a str,
        }
        /// What is read of the answer's `data`: the payment's new status, if it says.
        #[derive(serde::Deserialize)]
        struct Data {
            payment_status: Option<Value>,
        }
        let body = Body {
            payment_id: payment.as_str(),
            transaction_id: transaction.as_str(),
            iban: iban.as_str(),
        };
        match self
            .send(PATH_RECONCILE, Kind::Write, |http, url| {
                http.post(url).json(&body)
            })
            .await
        {
            Ok(answer) => {
                // The call was applied: an answer we cannot read does not change that.
                let status = answer
                    .page_parts()
                    .ok()
                    .and_then(|p| p.data)
                    .and_then(|d| serde_json::from_str::<Data>(d).ok())
                    .and_then(|d| d.payment_status)
                    .as_ref()
                    .and_then(value_string)
                    .map(|s| PaymentStatus::parse(&s))
                    .unwrap_or(PaymentStatus::PaymentReceived);
                Ok(ReconcileAnswer::Reconciled {
                    payment_status: status,
                })
            }
            Err(ApiError::Provider { code, .. }) => Ok(ReconcileAnswer::Refused { code }),
            Err(e) => Err(e),
        }
    }
}

// ---- wire parsing (tolerant, §3–§4) ------------------------------------------------

fn transactions_path(iban: &Iban) -> String {
    format!(
        "{PATH_ACCOUNTS}/{}/transactions",
        encode_path(iban.as_str())
    )
}

fn list_params(
    q: &ListQuery,
    page: u32,
    per_page: u32,
    with_status: bool,
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("page", page.to_string()),
        ("per_page", per_page.to_string()),
    ];
    if let Some(f) = q.from {
        v.push(("from", wire_time(f)));
    }
    if let Some(t) = q.to {
        v.push(("to", wire_time(t)));
    }
    if with_status && let Some(s) = &q.status {
        v.push(("status", s.as_str().to_owned()));
    }
    v
}

fn encode_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn parse_page<T>(
    endpoint: &str,
    answer: &Answer,
    parse: fn(&RawValue) -> Result<T, String>,
) -> Result<Page<T>, ApiError> {
    let bad_page = |why: &str| ApiError::Malformed {
        endpoint: endpoint.to_owned(),
        why: why.to_owned(),
        snippet: snippet_bytes(&answer.body),
    };
    let env = answer.page_parts().map_err(|why| bad_page(&why))?;
    let items: Vec<&RawValue> = env
        .data
        .and_then(|d| serde_json::from_str(d).ok())
        .ok_or_else(|| bad_page("`data` is not a list"))?;
    let pag: Option<Obj<'_>> = env
        .pagination
        .or(env.meta)
        .and_then(|p| obj(p, PAGINATION_FIELDS).ok());
    let field = |name: &str| pag.as_ref().and_then(|p| p.get(name)).and_then(flex_u64);
    let (Some(current_page), Some(per_page), Some(last_page)) =
        (field("current_page"), field("per_page"), field("last_page"))
    else {
        return Err(bad_page("missing or invalid `pagination`"));
    };
    let info = PageInfo {
        current_page: u32::try_from(current_page).unwrap_or(u32::MAX),
        per_page: u32::try_from(per_page).unwrap_or(u32::MAX),
        last_page: u32::try_from(last_page).unwrap_or(u32::MAX),
        total: field("total").unwrap_or(0),
        item_count: items.len(),
    };
    let mut good = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for item in items {
        match parse(item) {
            Ok(value) => good.push(Record {
                value,
                raw: item.get().to_owned(),
            }),
            Err(error) => bad.push(BadRecord {
                endpoint: endpoint.to_owned(),
                id: obj(item.get(), ID_FIELD)
                    .ok()
                    .and_then(|o| o.get("id").and_then(flex_string)),
                raw: item.get().to_owned(),
                error,
            }),
        }
    }
    Ok(Page {
        items: good,
        bad,
        info,
    })
}

fn find_array<'a>(v: &'a Value, paths: &[&str]) -> Option<&'a Vec<Value>> {
    paths.iter().find_map(|p| {
        let mut cur = v;
        for part in p.split('.') {
            cur = cur.get(part)?;
        }
        cur.as_array()
    })
}

/// Most fields any parser reads from one object.
const MAX_FIELDS: usize = 16;

/// The fields a parser reads from one JSON object, each kept as raw JSON text borrowed
/// from the body. The object is read in one pass: other fields are skipped, no key is
/// copied, and a field given twice keeps its last value.
struct Obj<'a> {
    names: &'static [&'static str],
    values: [Option<&'a RawValue>; MAX_FIELDS],
}

impl<'a> Obj<'a> {
    /// `k` must be one of the names the object was read with.
    fn get(&self, k: &str) -> Option<&'a RawValue> {
        let i = self.names.iter().position(|n| *n == k);
        debug_assert!(i.is_some(), "field `{k}` was not asked for");
        self.values[i?]
    }
}

fn obj<'a>(text: &'a str, names: &'static [&'static str]) -> Result<Obj<'a>, String> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    ObjSeed(names)
        .deserialize(&mut de)
        .and_then(|o| de.end().map(|()| o))
        .map_err(|_| "not a JSON object".to_owned())
}

/// Reads an object into an [`Obj`] of the given field names.
struct ObjSeed(&'static [&'static str]);

impl<'de> serde::de::DeserializeSeed<'de> for ObjSeed {
    type Value = Obj<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Obj<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ObjSeed {
    type Value = Obj<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Obj<'de>, A::Error> {
        debug_assert!(self.0.len() <= MAX_FIELDS);
        let mut values = [None; MAX_FIELDS];
        while let Some(slot) = map.next_key_seed(KeySeed(self.0))? {
            match slot {
                Some(i) => values[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Obj {
            names: self.0,
            values,
        })
    }
}

/// A key, as its index among the wanted names (`None`: not wanted).
struct KeySeed(&'static [&'static str]);

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for KeySeed {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Option<usize>, E> {
        Ok(self
            .0
            .iter()
            .position(|n| *n == k)
            .filter(|&i| i < MAX_FIELDS))
    }
}

fn req<'a>(o: &Obj<'a>, k: &str) -> Result<&'a RawValue, String> {
    match o.get(k) {
        Some(v) if v.get() != "null" => Ok(v),
        _ => Err(format!("`{k}` is missing")),
    }
}

fn req_str<'a>(o: &Obj<'a>, k: &str) -> Result<Cow<'a, str>, String> {
    flex_str(req(o, k)?).ok_or_else(|| format!("`{k}` is not a string or number"))
}

fn req_string(o: &Obj<'_>, k: &str) -> Result<String, String> {
    req_str(o, k).map(Cow::into_owned)
}

fn opt_str<'a>(o: &Obj<'a>, k: &str) -> Option<Cow<'a, str>> {
    o.get(k).and_then(flex_str).filter(|s| !s.is_empty())
}

fn opt_string(o: &Obj<'_>, k: &str) -> Option<String> {
    opt_str(o, k).map(Cow::into_owned)
}

/// A string, or a number's literal text (ids and concepts come both ways, §4). Borrowed
/// from the body unless the string has escapes.
fn flex_str(v: &RawValue) -> Option<Cow<'_, str>> {
    let text = v.get();
    match text.as_bytes().first()? {
        b'"' if !text.contains('\\') => text.get(1..text.len() - 1).map(Cow::Borrowed),
        b'"' => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        b'-' | b'0'..=b'9' => Some(Cow::Borrowed(text)),
        _ => None,
    }
}

fn flex_string(v: &RawValue) -> Option<String> {
    flex_str(v).map(Cow::into_owned)
}

/// The same for a parsed value (small answers: accounts, reconcile, authenticate).
fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn flex_u64(v: &RawValue) -> Option<u64> {
    flex_str(v).and_then(|s| s.trim().parse().ok())
}

fn value_u64(v: &Value) -> Option<u64> {
    value_string(v).and_then(|s| s.trim().parse().ok())
}

/// A decimal from a JSON number's literal text or a numeric string, trimmed; never
/// through f64 and never rounded ([`exact_decimal`]). Only a JSON number may carry an
/// exponent.
fn flex_decimal(v: &RawValue) -> Option<Decimal> {
    let number = matches!(v.get().as_bytes().first(), Some(b'-' | b'0'..=b'9'));
    exact_decimal(flex_str(v)?.trim(), number)
}

/// The largest coefficient a [`Decimal`] holds: 2^96 - 1, 29 digits.
const DECIMAL_MAX_COEFFICIENT: u128 = (1 << 96) - 1;
/// The most decimals a [`Decimal`] holds.
const DECIMAL_MAX_SCALE: i128 = 28;

/// The exact value `text` writes, or `None`.
///
/// The grammar is an optional `-`, one or more ASCII digits, optionally a `.` followed
/// by one or more ASCII digits, and, when `exponent` is true (a JSON number), `e` or
/// `E`, an optional sign and one or more ASCII digits. Nothing else is a number here:
/// no `+` sign, no `_` or space between digits, no other digits than ASCII, and no
/// `150.` or `.5` (a dot needs digits on both sides; the provider writes neither).
///
/// The value is never rounded. Trailing zeros of the fraction are dropped only as far
/// as needed for the value to fit (`150.50000000000000000000000000000` is 150.5); a
/// value a [`Decimal`] cannot hold exactly once they are gone (more than 28 decimals,
/// a coefficient above 2^96 - 1, an exponent that leads to either) is refused. The
/// scale written is kept when it fits (`150.50` reads as 150.50).
fn exact_decimal(text: &str, exponent: bool) -> Option<Decimal> {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let zeros = |s: &mut dyn Iterator<Item = &u8>| s.take_while(|&&b| b == b'0').count();
    let b = text.as_bytes();
    let (negative, b) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let (int, b) = b.split_at(digits(b));
    if int.is_empty() {
        return None; // `.5`, `-`, or no digits at all
    }
    let (frac, b) = match b.split_first() {
        Some((b'.', rest)) => match rest.split_at(digits(rest)) {
            ([], _) => return None, // `150.`
            split => split,
        },
        _ => (&b[..0], b),
    };
    let exp: i128 = match b.split_first() {
        None => 0,
        Some((b'e' | b'E', rest)) if exponent => {
            let (sign, rest) = match rest.split_first() {
                Some((b'-', r)) => (-1, r),
                Some((b'+', r)) => (1, r),
                _ => (1, rest),
            };
            if rest.is_empty() || digits(rest) != rest.len() {
                return None;
            }
            // Saturates far beyond any exponent that could still give a Decimal.
            sign * rest.iter().fold(0i128, |n, d| {
                (n * 10 + i128::from(d - b'0')).min(i128::from(u32::MAX))
            })
        }
        _ => return None,
    };
    // The value is the digits of `int` then `frac`, as one integer, times 10^-scale.
    let scale = i128::try_from(frac.len()).ok()? - exp;
    let len = int.len() + frac.len();
    let leading = zeros(&mut int.iter().chain(frac));
    if leading == len {
        let scale = scale.clamp(0, DECIMAL_MAX_SCALE);
        return Some(Decimal::new(0, u32::try_from(scale).ok()?));
    }
    let trailing = zeros(&mut frac.iter().rev().chain(int.iter().rev()));
    // The significant digits, without the zeros on either side.
    let significant = len - leading - trailing;
    if significant > 29 {
        return None;
    }
    let mut coefficient = int
        .iter()
        .chain(frac)
        .skip(leading)
        .take(significant)
        .fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
    let mut kept = scale - i128::try_from(trailing).ok()?;
    if kept > DECIMAL_MAX_SCALE {
        return None;
    }
    if kept < 0 {
        let power = 10u128.checked_pow(u32::try_from(-kept).ok()?)?;
        coefficient = coefficient.checked_mul(power)?;
        kept = 0;
    }
    if coefficient > DECIMAL_MAX_COEFFICIENT {
        return None;
    }
    // Give back the trailing zeros that were written, as far as they fit.
    while kept < scale.min(DECIMAL_MAX_SCALE) && coefficient * 10 <= DECIMAL_MAX_COEFFICIENT {
        coefficient *= 10;
        kept += 1;
    }
    let coefficient = i128::try_from(coefficient).ok()?;
    let signed = if negative { -coefficient } else { coefficient };
    Decimal::try_from_i128_with_scale(signed, u32::try_from(kept).ok()?).ok()
}

fn req_decimal(o: &Obj<'_>, k: &str) -> Result<Decimal, String> {
    let v = req(o, k)?;
    flex_decimal(v).ok_or_else(|| format!("`{k}` is not a decimal: {}", snippet(v.get())))
}

fn req_time(o: &Obj<'_>, k: &str) -> Result<DateTime<Utc>, String> {
    let s = req_str(o, k)?;
    parse_time(&s).ok_or_else(|| format!("`{k}` is not an ISO-8601 time: {s:?}"))
}

fn opt_time(o: &Obj<'_>, k: &str) -> Result<Option<DateTime<Utc>>, String> {
    match opt_str(o, k) {
        None => Ok(None),
        Some(s) => parse_time(&s)
            .map(Some)
            .ok_or_else(|| format!("`{k}` is not an ISO-8601 time: {s:?}")),
    }
}

/// ISO-8601 with or without offset, fraction or time (§7.2: accept all).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    date_from_text(s)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn currency(o: &Obj<'_>, k: &str) -> Result<Currency, String> {
    Currency::parse(req_str(o, k)?).map_err(|e| format!("`{k}`: {e}"))
}

/// The fields each parser reads.
const PAYMENT_FIELDS: &[&str] = &[
    "id",
    "external_id",
    "user_id",
    "status",
    "fiat_amount",
    "fiat_symbol",
    "payment_type",
    "concept",
    "created_at",
    "updated_at",
];
const OFFRAMP_FIELDS: &[&str] = &[
    "id",
    "user_id",
    "status",
    "fiat_amount",
    "fiat_symbol",
    "iban",
    "created_at",
    "updated_at",
];
const TRANSACTION_FIELDS: &[&str] = &[
    "id",
    "iban",
    "amount",
    "currency",
    "direction",
    "concept",
    "counterparty_name",
    "counterparty_iban",
    "booked_at",
    "value_date",
    "reconciled_payment_id",
];
const ACCOUNT_FIELDS: &[&str] = &["iban", "bic", "holder_name", "currency", "balance"];
const PAGINATION_FIELDS: &[&str] = &["current_page", "per_page", "last_page", "total"];
const ID_FIELD: &[&str] = &["id"];

fn parse_payment(v: &RawValue) -> Result<Payment, String> {
    let o = &obj(v.get(), PAYMENT_FIELDS)?;
    let id = PaymentId::parse(req_string(o, "id")?).map_err(|e| e.to_string())?;
    let cur = currency(o, "fiat_symbol")?;
    // `fiat_amount` is integer cents here (§5.3, §13.3).
    let amount = Money::from_cents(req_decimal(o, "fiat_amount")?, cur)
        .map_err(|e| format!("`fiat_amount`: {e}"))?;
    let concept = match opt_string(o, "concept") {
        None => None,
        Some(c) => Some(Concept::parse(&c).map_err(|e| format!("`concept`: {e}"))?),
    };
    Ok(Payment {
        id,
        external_id: opt_string(o, "external_id"),
        user_id: opt_string(o, "user_id"),
        status: PaymentStatus::parse(&req_str(o, "status")?),
        amount,
        payment_type: opt_string(o, "payment_type").map(|s| s.to_ascii_lowercase()),
        concept,
        created_at: req_time(o, "created_at")?,
        updated_at: opt_time(o, "updated_at")?,
    })
}

fn parse_offramp(v: &RawValue) -> Result<Offramp, String> {
    let o = &obj(v.get(), OFFRAMP_FIELDS)?;
    let id = OfframpId::parse(req_string(o, "id")?).map_err(|e| e.to_string())?;
    // `fiat_amount` is a decimal string in currency units here (§13.4).
    let fiat = Money::from_units(req_decimal(o, "fiat_amount")?, currency(o, "fiat_symbol")?);
    Ok(Offramp {
        id,
        user_id: opt_string(o, "user_id"),
        status: OfframpStatus::parse(&req_str(o, "status")?),
        fiat,
        iban: opt_string(o, "iban"),
        created_at: req_time(o, "created_at")?,
        updated_at: opt_time(o, "updated_at")?,
    })
}

fn parse_transaction(v: &RawValue) -> Result<BankTransaction, String> {
    let o = &obj(v.get(), TRANSACTION_FIELDS)?;
    let id = BankTxId::parse(req_string(o, "id")?).map_err(|e| e.to_string())?;
    let iban = Iban::parse(req_string(o, "iban")?).map_err(|e| format!("`iban`: {e}"))?;
    let amount = req_decimal(o, "amount")?;
    if amount.is_sign_negative() || amount.is_zero() {
        return Err(format!("`amount` must be positive, got {amount}"));
    }
    let direction =
        Direction::parse(&req_str(o, "direction")?).map_err(|e| format!("`direction`: {e}"))?;
    let value_date = match opt_string(o, "value_date") {
        None => None,
        Some(s) => Some(
            date_from_text(s.get(..10).unwrap_or(&s))
                .ok_or_else(|| format!("`value_date` is not a date: {s:?}"))?,
        ),
    };
    let reconciled_payment_id = match opt_string(o, "reconciled_payment_id") {
        None => None,
        Some(p) => Some(PaymentId::parse(p).map_err(|e| e.to_string())?),
    };
    Ok(BankTransaction {
        id,
        iban,
        amount: Money::from_units(amount, currency(o, "currency")?),
        direction,
        concept_text: o.get("concept").and_then(flex_string).unwrap_or_default(),
        counterparty_name: opt_string(o, "counterparty_name"),
        counterparty_iban: opt_string(o, "counterparty_iban"),
        booked_at: req_time(o, "booked_at")?,
        value_date,
        reconciled_payment_id,
    })
}

fn parse_account(v: &RawValue) -> Result<BankAccount, String> {
    let o = &obj(v.get(), ACCOUNT_FIELDS)?;
    let iban = Iban::parse(req_string(o, "iban")?).map_err(|e| format!("`iban`: {e}"))?;
    let currency = match opt_string(o, "currency") {
        None => None,
        Some(c) => Some(Currency::parse(c).map_err(|e| format!("`currency`: {e}"))?),
    };
    Ok(BankAccount {
        iban,
        bic: opt_string(o, "bic"),
        holder_name: opt_string(o, "holder_name"),
        currency,
        balance: o.get("balance").and_then(flex_decimal),
    })
}
