//! Spawning sandboxes and talking to them over real HTTP, as a client would.

use chrono::{DateTime, TimeZone, Utc};
use cp_recon::sandbox::{DataSpec, Faults, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A fixed "now" so every test sees the same data set.
pub fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 26, 12, 0, 0)
        .single()
        .expect("a valid date")
}

pub fn config(seed: u64) -> SandboxConfig {
    SandboxConfig::new(DataSpec::small(seed, anchor()))
}

/// The contract without the provider's oddities, for exact shape assertions.
pub fn strict_config(seed: u64) -> SandboxConfig {
    SandboxConfig {
        quirks: false,
        ..config(seed)
    }
}

pub async fn spawn(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

pub async fn spawn_with_faults(faults: Faults) -> Sandbox {
    spawn(SandboxConfig {
        faults,
        ..strict_config(42)
    })
    .await
}

/// A minimal client: a token and JSON in, JSON out.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    pub async fn login(sandbox: &Sandbox) -> Api {
        let http = reqwest::Client::new();
        let base = sandbox.base_url();
        let token = authenticate(&http, &base, "sandbox-key", "sandbox-secret")
            .await
            .1["data"]["token"]
            .as_str()
            .expect("a token")
            .to_owned();
        Api { base, http, token }
    }

    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .header("auth", &self.token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get_raw(path).await;
        let status = r.status();
        let text = r.text().await.expect("a body");
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("auth", &self.token)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        (status, r.json().await.expect("a JSON body"))
    }

    pub async fn reconcile(&self, payment: &str, tx: &str, iban: &str) -> Value {
        let (status, v) = self
            .post(
                "/banking/reconcile",
                json!({ "payment_id": payment, "transaction_id": tx, "iban": iban }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        v
    }

    /// Every item of a list, page by page (`path` may carry a query already).
    pub async fn all(&self, path: &str, per_page: u32) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let (status, v) = self
                .get(&format!("{path}{sep}page={page}&per_page={per_page}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{v}");
            items.extend(v["data"].as_array().expect("data array").iter().cloned());
            let last = v["pagination"]["last_page"].as_u64().expect("last_page");
            if page >= last {
                return items;
            }
            page += 1;
        }
    }

    pub async fn all_transactions(&self) -> Vec<Value> {
        let (_, accounts) = self.get("/banking/accounts").await;
        let mut out = Vec::new();
        for a in accounts["data"].as_array().expect("accounts") {
            let iban = a["iban"].as_str().expect("iban");
            out.extend(
                self.all(&format!("/banking/accounts/{iban}/transactions"), 100)
                    .await,
            );
        }
        out
    }
}

pub async fn authenticate(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    secret: &str,
) -> (StatusCode, Value) {
    let r = http
        .post(format!("{base}/authenticate"))
        .json(&json!({ "api_key": key, "api_secret": secret }))
        .send()
        .await
        .expect("request sent");
    let status = r.status();
    (status, r.json().await.expect("a JSON body"))
}

/// The error code of an error body, wherever the provider put it.
pub fn error_code(v: &Value) -> Option<&str> {
    if v["status"] != "error" {
        return None;
    }
    v["error"].as_str().or_else(|| v["message"].as_str())
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}
