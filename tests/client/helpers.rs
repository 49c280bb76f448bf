//! Spawning sandboxes and mock servers, building clients pointed at them, and reading
//! whole lists the way the sync does.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cp_recon::api::{
    ApiError, BadRecord, BaseUrl, Client, ClientConfig, Identified, ListQuery, Page, Paginator,
    Record,
};
use cp_recon::domain::{BankTransaction, Iban, Offramp, Payment};
use cp_recon::sandbox::{DataSpec, Faults, Sandbox, SandboxConfig};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const KEY: &str = "sandbox-key";
pub const SECRET: &str = "sandbox-secret";

/// A fixed "now" so every test sees the same data set.
pub fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 26, 12, 0, 0)
        .single()
        .expect("a valid date")
}

/// The small data set, seed 42, quirks on (the sandbox default).
pub fn sandbox_config() -> SandboxConfig {
    SandboxConfig::new(DataSpec::small(42, anchor()))
}

pub async fn spawn_sandbox() -> Sandbox {
    spawn_sandbox_with(sandbox_config()).await
}

pub async fn spawn_sandbox_with(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("the sandbox starts")
}

pub async fn spawn_sandbox_with_faults(faults: Faults) -> Sandbox {
    spawn_sandbox_with(SandboxConfig {
        faults,
        ..sandbox_config()
    })
    .await
}

/// Short backoff, five attempts, no client-side rate limit.
pub fn client_config(base_url: String) -> ClientConfig {
    ClientConfig {
        base_url: BaseUrl::parse(&base_url).expect("a base URL"),
        api_key: KEY.to_owned(),
        api_secret: SecretString::from(SECRET.to_owned()),
        timeout: Duration::from_secs(3),
        max_requests_per_second: 0,
        max_attempts: 5,
        backoff_base: Duration::from_millis(5),
        deadline: Duration::from_secs(60),
    }
}

pub fn client_with(config: ClientConfig) -> Client {
    Client::new(config).expect("the client builds")
}

pub fn client_for(sandbox: &Sandbox) -> Client {
    client_with(client_config(sandbox.base_url()))
}

/// The base URL a client uses for a mock server (paths below `/api`, as in production).
pub fn mock_base(server: &MockServer) -> String {
    format!("{}/api", server.uri())
}

pub fn mock_client(server: &MockServer) -> Client {
    client_with(client_config(mock_base(server)))
}

/// A mock server whose `/authenticate` hands out `token` (with a lifetime).
pub async fn mock_server_with_token(token: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/authenticate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "status": "ok", "data": { "token": token, "expires_in": 86_400 } }),
        ))
        .mount(&server)
        .await;
    server
}

/// The §13.2 list envelope.
pub fn page_body(items: Vec<Value>, current: u32, per_page: u32, last: u32, total: u64) -> Value {
    json!({
        "status": "ok",
        "data": items,
        "pagination": {
            "current_page": current, "per_page": per_page, "last_page": last, "total": total,
        },
    })
}

/// A payment item as the provider writes it.
pub fn payment_item(id: &str, cents: Value) -> Value {
    json!({
        "id": id, "external_id": null, "user_id": "100067", "status": "pending_bank",
        "fiat_amount": cents, "fiat_symbol": "EUR", "coin_symbol": "USDC", "coin_amount": 150.5,
        "created_at": "2026-06-26T10:30:00.000000Z", "updated_at": "2026-06-26T10:30:00.000000Z",
        "payment_type": "transfer", "concept": 120037,
    })
}

/// Everything one list read produced.
#[derive(Debug)]
pub struct Listed<T> {
    pub items: Vec<Record<T>>,
    pub bad: Vec<BadRecord>,
    pub pages: u32,
    pub duplicates: u64,
}

/// Reads a whole list exactly as `sync` does: the paginator says which page is next,
/// `accept` dedupes it and decides when to stop.
pub async fn read_list<T: Identified>(
    endpoint: &str,
    per_page: u32,
    mut fetch: impl AsyncFnMut(u32) -> Result<Page<T>, ApiError>,
) -> Result<Listed<T>, ApiError> {
    let mut pager = Paginator::new(per_page);
    let mut items = Vec::new();
    let mut bad = Vec::new();
    while let Some(n) = pager.next_page() {
        let mut page = fetch(n).await?;
        pager.accept(endpoint, &mut page)?;
        items.append(&mut page.items);
        bad.append(&mut page.bad);
    }
    Ok(Listed {
        items,
        bad,
        pages: pager.pages_read,
        duplicates: pager.duplicates,
    })
}

pub async fn read_payments(
    client: &Client,
    q: &ListQuery,
    per_page: u32,
) -> Result<Listed<Payment>, ApiError> {
    read_list("payments", per_page, async |n| {
        client.payments_page(q, n, per_page).await
    })
    .await
}

pub async fn read_offramps(
    client: &Client,
    q: &ListQuery,
    per_page: u32,
) -> Result<Listed<Offramp>, ApiError> {
    read_list("rampoffs", per_page, async |n| {
        client.offramps_page(q, n, per_page).await
    })
    .await
}

pub async fn read_transactions(
    client: &Client,
    iban: &Iban,
    q: &ListQuery,
    per_page: u32,
) -> Result<Listed<BankTransaction>, ApiError> {
    read_list(&format!("transactions:{iban}"), per_page, async |n| {
        client.transactions_page(iban, q, n, per_page).await
    })
    .await
}

pub fn ids<T: Identified>(items: &[Record<T>]) -> Vec<String> {
    items.iter().map(|r| r.value.wire_id().to_owned()).collect()
}

/// Integer cents as the two-decimal text a statement prints (`15050` → `"150.50"`).
pub fn cents_text(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

/// A decimal in currency units as two-decimal text.
pub fn units_text(d: Decimal) -> String {
    let mut d = d;
    d.rescale(2);
    d.to_string()
}

/// The raw JSON a record kept, parsed back.
pub fn raw_json<T>(r: &Record<T>) -> Value {
    serde_json::from_str(&r.raw).unwrap_or_else(|e| panic!("raw JSON does not parse: {e}"))
}

/// The text of a JSON id, whether it came as a string or a number.
pub fn json_id(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("`{field}` is {other}"),
    }
}

/// A bare HTTP GET with a fresh token, for looking at the wire itself.
pub async fn raw_get(sandbox: &Sandbox, path: &str) -> Value {
    let http = reqwest::Client::new();
    let auth: Value = http
        .post(format!("{}/authenticate", sandbox.base_url()))
        .json(&json!({ "api_key": KEY, "api_secret": SECRET }))
        .send()
        .await
        .expect("authenticate sent")
        .json()
        .await
        .expect("a JSON body");
    let token = auth["data"]["token"].as_str().expect("a token").to_owned();
    http.get(format!("{}{path}", sandbox.base_url()))
        .header("auth", token)
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("a JSON body")
}

/// How many requests the sandbox received for one endpoint key.
pub fn hits(sandbox: &Sandbox, endpoint: &str) -> u64 {
    sandbox.request_counts().get(endpoint).copied().unwrap_or(0)
}

/// Runs a future that must finish quickly; a hang is a failure, not a stuck suite.
pub async fn within<F: std::future::IntoFuture>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f.into_future())
        .await
        .expect("finished in time")
}

/// A server that answers `/authenticate` and drops the connection of every other request
/// after reading it: the request arrived, its answer never leaves. Stops when dropped.
pub struct ResettingServer {
    pub base_url: String,
    /// Requests other than `/authenticate` received (and cut off).
    pub cut: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ResettingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn spawn_resetting_server() -> ResettingServer {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let addr = listener.local_addr().expect("an address");
    let cut = Arc::new(AtomicU64::new(0));
    let counter = cut.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                // Read the head and the body it announces.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if head.starts_with("post /api/authenticate ") {
                    let body = r#"{"status":"ok","data":{"token":"tok-1","expires_in":3600}}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                } else {
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Dropped without a byte of answer.
                }
            });
        }
    });
    ResettingServer {
        base_url: format!("http://{addr}/api"),
        cut,
        task,
    }
}
