//! The HTTP side of the sandbox: routes of §13, authentication, faults and quirks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::rng::{Rng, stable_hash};
use super::shared::{
    Action, Event, Handle, HoldState, NarrowRead, Shared, Token, lock, read, write,
};
use super::store::{ListKind, ListQuery, State, clamped, normalise_iban};
use super::{Faults, ListName, ReconcileCall};
use crate::domain::Direction;

impl Shared {
    pub fn new(
        state: State,
        faults: Faults,
        api_key: String,
        api_secret: String,
        token_ttl_secs: u64,
        quirks: bool,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            state: RwLock::new(state),
            faults: RwLock::new(faults),
            api_key,
            api_secret,
            token_ttl: Duration::from_secs(token_ttl_secs),
            quirks,
            tokens: Mutex::new(FxHashMap::default()),
            token_rng: Mutex::new(Rng::new(seed)),
            requests: AtomicU64::new(0),
            fault_counter: AtomicU64::new(0),
            auth_errors: AtomicU64::new(0),
            per_path: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
            hold: watch::Sender::new(HoldState::default()),
            hook: RwLock::new(None),
            payment_reads: AtomicU64::new(0),
            max_payment_reads: AtomicU64::new(0),
            narrow_reads: Mutex::new(Vec::new()),
        }
    }

    fn count(&self, endpoint: &'static str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *lock(&self.per_path).entry(endpoint).or_default() += 1;
    }

    /// Counting, transport faults, then the token: what every call but `/authenticate`
    /// goes through. A fault answers before the token is looked at, as a gateway would.
    fn gate(&self, endpoint: &'static str, headers: &HeaderMap) -> Result<(), Box<Response>> {
        self.count(endpoint);
        let faults = read(&self.faults).clone();
        let n = self.fault_counter.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(k) = faults.unavailable_every.filter(|k| *k > 0)
            && n.is_multiple_of(u64::from(k))
        {
            return Err(Box::new(unavailable(n / u64::from(k))));
        }
        if let Some(k) = faults.rate_limit_every.filter(|k| *k > 0)
            && n.is_multiple_of(u64::from(k))
        {
            return Err(Box::new(rate_limited(faults.retry_after_secs)));
        }
        if !self.token_ok(headers, faults.token_max_uses) {
            return Err(Box::new(self.auth_error()));
        }
        Ok(())
    }

    fn token_ok(&self, headers: &HeaderMap, max_uses: Option<u32>) -> bool {
        let Some(token) = headers.get("auth").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let mut tokens = lock(&self.tokens);
        let Some(t) = tokens.get_mut(token.trim()) else {
            return false;
        };
        if t.ended || t.issued.elapsed() >= self.token_ttl {
            return false;
        }
        t.uses = t.uses.saturating_add(1);
        max_uses.is_none_or(|max| t.uses <= max)
    }

    fn auth_error(&self) -> Response {
        let n = self.auth_errors.fetch_add(1, Ordering::Relaxed);
        error_body("authorization_incorrect", self.quirks && n % 3 == 2)
    }

    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.tokens).keys().cloned().collect()
    }

    fn issue_token(&self) -> String {
        let token = lock(&self.token_rng).alnum(30);
        let one_session = read(&self.faults).one_session;
        let mut tokens = lock(&self.tokens);
        if one_session {
            for t in tokens.values_mut() {
                t.ended = true;
            }
        }
        tokens.insert(
            token.clone(),
            Token {
                issued: Instant::now(),
                uses: 0,
                ended: false,
            },
        );
        token
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/authenticate", post(authenticate))
        .route("/api/payments", get(list_payments))
        .route("/api/payment/{id}", get(get_payment))
        .route("/api/rampoffs", get(list_rampoffs))
        .route("/api/banking/accounts", get(list_accounts))
        .route(
            "/api/banking/accounts/{iban}/transactions",
            get(list_transactions),
        )
        .route("/api/banking/reconcile", post(reconcile))
        .fallback(not_found)
        .with_state(shared)
}

// ---- response helpers ---------------------------------------------------------------

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `{"status":"error","error":code}` with HTTP 200; with `in_message` the code travels
/// in `message` instead, as some provider endpoints do (§3.2).
fn error_body(code: &str, in_message: bool) -> Response {
    let body = if in_message {
        json!({ "status": "error", "message": code })
    } else {
        json!({ "status": "error", "error": code })
    };
    json_response(StatusCode::OK, body.to_string())
}

fn html(status: StatusCode, title: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        format!("<html><body><h1>{title}</h1></body></html>"),
    )
        .into_response()
}

/// The k-th unavailable answer cycles 503 JSON, 502 HTML, 504 HTML, 503 HTML.
fn unavailable(k: u64) -> Response {
    match k % 4 {
        1 => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "message": "Service Unavailable" }).to_string(),
        ),
        2 => html(StatusCode::BAD_GATEWAY, "502 Bad Gateway"),
        3 => html(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out"),
        _ => html(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Temporarily Unavailable",
        ),
    }
}

fn rate_limited(retry_after: u64) -> Response {
    let mut r = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "message": "Too Many Attempts." }).to_string(),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Laravel's validation answer: HTTP 422, the first message on top, all per field.
fn unprocessable(errors: BTreeMap<&'static str, String>) -> Response {
    let first = errors.values().next().cloned().unwrap_or_default();
    let message = match errors.len() {
        0 | 1 => first,
        2 => format!("{first} (and 1 more error)"),
        n => format!("{first} (and {} more errors)", n - 1),
    };
    let fields: serde_json::Map<String, Value> = errors
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!([v])))
        .collect();
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "message": message, "errors": fields }).to_string(),
    )
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({ "message": "Not Found" }).to_string(),
    )
}

// ---- authenticate -------------------------------------------------------------------

fn string_field(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn authenticate(AxState(s): AxState<Arc<Shared>>, body: Bytes) -> Response {
    s.count("POST /authenticate");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = string_field(&v, "api_key").filter(|k| !k.is_empty());
    let secret = string_field(&v, "api_secret").filter(|k| !k.is_empty());
    let (Some(key), Some(secret)) = (key, secret) else {
        let mut errors = BTreeMap::new();
        if string_field(&v, "api_key").is_none_or(|k| k.is_empty()) {
            errors.insert("api_key", "The api key field is required.".to_owned());
        }
        if string_field(&v, "api_secret").is_none_or(|k| k.is_empty()) {
            errors.insert("api_secret", "The api secret field is required.".to_owned());
        }
        return unprocessable(errors);
    };
    if key != s.api_key || secret != s.api_secret {
        return s.auth_error();
    }
    let token = s.issue_token();
    json_response(
        StatusCode::OK,
        json!({
            "status": "ok",
            "data": { "token": token, "expires_in": s.token_ttl.as_secs() },
        })
        .to_string(),
    )
}

// ---- lists --------------------------------------------------------------------------

type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn parse_time(s: &str) -> Option<i64> {
    // A `+` offset sent unencoded arrives as a space.
    let s = s.trim().replace(' ', "+");
    DateTime::parse_from_rfc3339(&s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
}

/// §13.2 parameters; anything invalid is a 422 naming the field.
fn parse_list_query(q: RawQuery, with_status: bool) -> Result<ListQuery, Box<Response>> {
    let Ok(Query(pairs)) = q else {
        let mut e = BTreeMap::new();
        e.insert("query", "The query string is malformed.".to_owned());
        return Err(Box::new(unprocessable(e)));
    };
    let mut out = ListQuery {
        page: 1,
        per_page: 50,
        ..ListQuery::default()
    };
    let mut errors = BTreeMap::new();
    for (k, v) in pairs {
        match k.as_str() {
            "page" => match v.trim().parse::<u64>() {
                Ok(p) if p >= 1 => out.page = p,
                _ => {
                    errors.insert(
                        "page",
                        "The page field must be an integer of at least 1.".into(),
                    );
                }
            },
            "per_page" => match v.trim().parse::<u64>() {
                Ok(p) if (1..=100).contains(&p) => out.per_page = p,
                _ => {
                    errors.insert(
                        "per_page",
                        "The per page field must be an integer between 1 and 100.".into(),
                    );
                }
            },
            "from" => match parse_time(&v) {
                Some(t) => out.from = Some(t),
                None => {
                    errors.insert(
                        "from",
                        "The from field must be a valid ISO-8601 date.".into(),
                    );
                }
            },
            "to" => match parse_time(&v) {
                Some(t) => out.to = Some(t),
                None => {
                    errors.insert("to", "The to field must be a valid ISO-8601 date.".into());
                }
            },
            "status" if with_status => out.status = Some(v.trim().to_owned()),
            // Unknown parameters are ignored, as Laravel does.
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Box::new(unprocessable(errors)))
    }
}

/// Whether the broken-page fault hits this answer: it holds the item that starts page
/// `b.page` of the whole list at this `per_page`, however the request addressed it (by
/// page number, or by a `from` cursor).
fn broken(faults: &Faults, kind: ListKind, per_page: u64, span: (usize, usize)) -> bool {
    faults.broken_page.as_ref().is_some_and(|b| {
        let k = match b.list {
            ListName::Payments => ListKind::Payments,
            ListName::Rampoffs => ListKind::Rampoffs,
            ListName::Transactions => ListKind::Transactions,
        };
        let target = u64::from(b.page).saturating_sub(1).saturating_mul(per_page);
        k == kind && (span.0 as u64..span.1 as u64).contains(&target)
    })
}

/// What the test's hook, if any, makes of a request.
fn hooked(s: &Arc<Shared>, event: impl FnOnce() -> Event) -> Action {
    let hook = read(&s.hook).clone();
    match hook {
        Some(h) => h.on(&Handle(s.clone()), &event()),
        None => Action::Serve,
    }
}

fn micros_time(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(DateTime::<Utc>::from_timestamp_micros)
}

async fn serve_list(s: &Arc<Shared>, kind: ListKind, q: ListQuery, iban: &str) -> Response {
    let action = hooked(s, || Event::List {
        list: match kind {
            ListKind::Payments => ListName::Payments,
            ListKind::Rampoffs => ListName::Rampoffs,
            ListKind::Transactions => ListName::Transactions,
        },
        iban: iban.to_owned(),
        from: micros_time(q.from),
        to: micros_time(q.to),
        page: q.page,
        per_page: q.per_page,
        status: q.status.clone(),
    });
    match action {
        Action::Serve => {}
        Action::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Action::RateLimit => return rate_limited(0),
        Action::Unavailable | Action::ApplyAndLose => return unavailable(4),
    }
    let faults = read(&s.faults).clone();
    let q = clamped(&faults, q);
    if faults.shifting_pages {
        write(&s.state).shift(kind, &q, iban);
    }
    if let Some(ms) = faults.slow_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if q.status.is_some() && read(&s.state).status_index_stale() {
        write(&s.state).refresh_status_index();
    }
    let (page, added) = {
        let state = read(&s.state);
        (state.page(kind, &q, iban), state.added)
    };
    let body = page.render();
    if broken(&faults, kind, q.per_page, page.span) {
        // Cut mid-document: valid UTF-8, invalid JSON.
        let mut cut = body.len() / 2;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        return json_response(StatusCode::OK, body[..cut].to_owned());
    }
    if let (ListKind::Transactions, 1, Some(at), Some(to)) = (kind, q.page, q.from, q.to)
        && to - at == 1
    {
        lock(&s.narrow_reads).push(NarrowRead {
            iban: iban.to_owned(),
            at,
            added,
        });
    }
    json_response(StatusCode::OK, body)
}

async fn list_payments(
    AxState(s): AxState<Arc<Shared>>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    if let Err(r) = s.gate("GET /payments", &headers) {
        return *r;
    }
    match parse_list_query(q, true) {
        Ok(q) => serve_list(&s, ListKind::Payments, q, "").await,
        Err(r) => *r,
    }
}

async fn list_rampoffs(
    AxState(s): AxState<Arc<Shared>>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    if let Err(r) = s.gate("GET /rampoffs", &headers) {
        return *r;
    }
    match parse_list_query(q, false) {
        Ok(q) => serve_list(&s, ListKind::Rampoffs, q, "").await,
        Err(r) => *r,
    }
}

async fn list_transactions(
    AxState(s): AxState<Arc<Shared>>,
    Path(iban): Path<String>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    if let Err(r) = s.gate("GET /banking/accounts/{iban}/transactions", &headers) {
        return *r;
    }
    let iban = normalise_iban(&iban);
    if !read(&s.state).has_account(&iban) {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({ "status": "error", "error": "account_not_found" }).to_string(),
        );
    }
    match parse_list_query(q, false) {
        Ok(q) => serve_list(&s, ListKind::Transactions, q, &iban).await,
        Err(r) => *r,
    }
}

async fn list_accounts(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = s.gate("GET /banking/accounts", &headers) {
        return *r;
    }
    let body = read(&s.state).accounts_json();
    json_response(StatusCode::OK, body)
}

// ---- one payment --------------------------------------------------------------------

async fn get_payment(
    AxState(s): AxState<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = s.gate("GET /payment/{id}", &headers) {
        return *r;
    }
    let now = s.payment_reads.fetch_add(1, Ordering::Relaxed) + 1;
    s.max_payment_reads.fetch_max(now, Ordering::Relaxed);
    // Counted down however the request ends (the client may go away mid-answer).
    let _reading = Leaving(&s.payment_reads);
    let action = hooked(&s, || Event::PaymentRead { id: id.clone() });
    if let Action::Slow(ms) = action {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match action {
        Action::Serve | Action::Slow(_) => {}
        Action::RateLimit => return rate_limited(0),
        Action::Unavailable | Action::ApplyAndLose => return unavailable(4),
    }
    let h = stable_hash(&id);
    let item = read(&s.state).payment_json(&id);
    let Some(item) = item else {
        return error_body("payment_not_found", s.quirks && h.is_multiple_of(3));
    };
    // The provider spells success three ways (§3.1); pick one per id.
    let status = match (s.quirks, h % 5) {
        (true, 0) => "success",
        (true, 1) => "sucess",
        _ => "ok",
    };
    json_response(
        StatusCode::OK,
        format!(r#"{{"status":"{status}","data":{item}}}"#),
    )
}

// ---- reconcile ----------------------------------------------------------------------

/// Counts a request down when it ends.
struct Leaving<'a>(&'a AtomicU64);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the held count if a held call goes away (answered or client gone).
struct HeldGuard<'a> {
    hold: &'a watch::Sender<HoldState>,
    generation: u64,
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        let generation = self.generation;
        self.hold.send_modify(|h| {
            if h.generation == generation {
                h.waiting = h.waiting.saturating_sub(1);
            }
        });
    }
}

/// Applies a reconcile to the state; the answer code (`ok` or an error code).
fn apply_reconcile(state: &mut State, payment_id: &str, tx_id: &str, iban: &str) -> &'static str {
    let Some(payment) = state.payments.get(payment_id) else {
        return "payment_not_found";
    };
    let Some(tx) = state.txs.get(tx_id).filter(|t| t.rec.iban == iban) else {
        return "transaction_not_found";
    };
    if payment.rec.status != "pending_bank" {
        return "payment_not_pending";
    }
    if tx.rec.reconciled_payment_id.is_some() {
        return "transaction_already_reconciled";
    }
    let p = &payment.rec;
    let t = &tx.rec;
    // Money out cannot pay a payment: answered like any other amount difference.
    if t.direction != Direction::Credit
        || Decimal::new(p.fiat_cents, 2) != t.amount
        || p.fiat_symbol != t.currency
    {
        return "amount_mismatch";
    }
    state.set_payment_status(payment_id, "payment_received", Utc::now());
    if let Some(row) = state.txs.get_mut(tx_id) {
        row.rec.reconciled_payment_id = Some(payment_id.to_owned());
        row.touch();
    }
    "ok"
}

async fn reconcile(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = s.gate("POST /banking/reconcile", &headers) {
        return *r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let payment_id = string_field(&v, "payment_id").unwrap_or_default();
    let transaction_id = string_field(&v, "transaction_id").unwrap_or_default();
    let iban = string_field(&v, "iban").unwrap_or_default();

    let mut errors = BTreeMap::new();
    for (field, value) in [
        ("payment_id", &payment_id),
        ("transaction_id", &transaction_id),
        ("iban", &iban),
    ] {
        if value.trim().is_empty() {
            errors.insert(
                field,
                format!("The {} field is required.", field.replace('_', " ")),
            );
        }
    }
    let action = if errors.is_empty() {
        hooked(&s, || Event::Reconcile {
            payment: payment_id.trim().to_owned(),
            transaction: transaction_id.trim().to_owned(),
        })
    } else {
        Action::Serve
    };
    if let Action::Slow(ms) = action {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if matches!(action, Action::RateLimit | Action::Unavailable) {
        lock(&s.calls).push(ReconcileCall {
            payment_id,
            transaction_id,
            iban,
            answer: if action == Action::RateLimit {
                "rate_limited"
            } else {
                "unavailable"
            }
            .to_owned(),
            delivered: true,
        });
        return if action == Action::RateLimit {
            rate_limited(0)
        } else {
            unavailable(4)
        };
    }
    let (answer, response) = if errors.is_empty() {
        let code = apply_reconcile(
            &mut write(&s.state),
            payment_id.trim(),
            transaction_id.trim(),
            &normalise_iban(&iban),
        );
        let response = if code == "ok" {
            json_response(
                StatusCode::OK,
                json!({
                    "status": "ok",
                    "data": {
                        "payment_id": payment_id.trim(),
                        "transaction_id": transaction_id.trim(),
                        "payment_status": "payment_received",
                    },
                })
                .to_string(),
            )
        } else {
            let h = stable_hash(&format!("{payment_id}/{transaction_id}"));
            error_body(code, s.quirks && h.is_multiple_of(4))
        };
        (code.to_owned(), response)
    } else {
        ("unprocessable".to_owned(), unprocessable(errors))
    };
    let lost = action == Action::ApplyAndLose;
    lock(&s.calls).push(ReconcileCall {
        payment_id,
        transaction_id,
        iban,
        answer,
        delivered: !lost,
    });
    if lost {
        return unavailable(4);
    }

    if read(&s.faults).hold_reconcile {
        let mut rx = s.hold.subscribe();
        let mut generation = 0;
        s.hold.send_modify(|h| {
            h.waiting += 1;
            generation = h.generation;
        });
        let _guard = HeldGuard {
            hold: &s.hold,
            generation,
        };
        // Only an error if the sender is gone, i.e. the sandbox is shutting down.
        let _ = rx.wait_for(|h| h.generation > generation).await;
    }
    response
}
