//! The CryptoPocket API client. It owns every wire detail: paths, query names, field
//! names, units, envelopes and the provider's quirks (`docs/provider-api.md` §3, §4, §13;
//! every bare `§` in this module and the sandbox points there).
//! Nothing outside this module knows that `fiat_amount` is cents in one place and units
//! in another, or that success is spelled three ways.
//!
//! Reads are retried with capped exponential backoff and jitter; writes (reconcile) never
//! are: a write whose answer was lost comes back as [`ApiError::OutcomeUnknown`] and the
//! caller re-reads the payment before deciding anything (§13.7).
//!
//! Files: this one holds the client and one method per endpoint; `transport.rs` the one
//! loop that authenticates, paces, sends and retries, and the answer's envelope;
//! `wire.rs` how each record is read from its JSON; `paging.rs` how a list is read page
//! by page; `error.rs` the errors a caller acts on.

mod error;
pub mod paging;
#[cfg(test)]
mod tests;
mod transport;

pub use transport::BACKOFF_CAP;
mod wire;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::config::ApiSettings;
pub use crate::config::{BaseUrl, BaseUrlError};
use crate::domain::{
    BankAccount, BankTransaction, BankTxId, Iban, Offramp, Payment, PaymentId, PaymentStatus,
};
pub use crate::record::{BadRecord, Record};
pub use crate::text::{date_from_text, wire_date, wire_time};
pub use error::ApiError;
pub use paging::{Identified, Page, PageInfo, Paginator};
use transport::{Kind, Token, json, malformed, snippet, snippet_bytes, value_string};
pub use wire::{
    JsonType, WireError, parse_account, parse_offramp, parse_payment, parse_transaction,
};
use wire::{encode_path, find_array, list_params, parse_page, transactions_path};

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
    /// Ends in `/api`; parsed once, from the configuration.
    pub base_url: BaseUrl,
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
    /// Reconcile calls made: one per [`Client::reconcile`], a call sent again after the
    /// provider did not process it included. Counted here, as they are made, so that a
    /// run that fails after its calls still says how many it made.
    pub reconcile_calls: AtomicU64,
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

/// The client. Cheap to share behind an `Arc`; safe to use from concurrent tasks.
pub struct Client {
    http: reqwest::Client,
    cfg: ClientConfig,
    token: tokio::sync::Mutex<Option<Token>>,
    pacer: Mutex<Instant>,
    deadline: Instant,
    jitter: Mutex<u64>,
    /// Why the provider's certificate was refused, once it was: every later request
    /// would fail the same way, so none is tried.
    untrusted: Mutex<Option<String>>,
    /// Once requested, no request is sent and no wait is waited for.
    stop: crate::stop::Stop,
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
            .map_err(|e| ApiError::ClientSetup {
                detail: e.to_string(),
            })?;
        let now = Instant::now();
        let seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9);
        Ok(Self {
            http,
            deadline: now + cfg.deadline,
            cfg,
            token: tokio::sync::Mutex::new(None),
            pacer: Mutex::new(now),
            jitter: Mutex::new(seed | 1),
            untrusted: Mutex::new(None),
            stop: crate::stop::Stop::default(),
            stats: ApiStats::default(),
        })
    }

    /// The client for the configured provider; the run's deadline counts from now.
    pub fn from_settings(settings: &ApiSettings) -> Result<Self, ApiError> {
        Self::new(ClientConfig {
            base_url: settings.base_url.clone(),
            api_key: settings.api_key.clone(),
            api_secret: settings.api_secret.clone(),
            timeout: Duration::from_secs(settings.timeout_secs),
            max_requests_per_second: settings.max_requests_per_second,
            max_attempts: settings.max_attempts,
            backoff_base: Duration::from_millis(settings.backoff_base_ms),
            deadline: Duration::from_secs(settings.run_deadline_secs),
        })
    }

    /// From the moment `stop` is requested, no request is sent (one asked for fails
    /// with [`ApiError::Stopped`], which says it was not sent), every wait (backoff,
    /// pacing, a login) ends at once, a read in flight is abandoned at once and a
    /// reconcile call in flight after [`crate::stop::CALL_GRACE`]
    /// ([`ApiError::Abandoned`]).
    pub fn with_stop(mut self, stop: crate::stop::Stop) -> Self {
        self.stop = stop;
        self
    }

    /// Why the run was asked to stop, once it was.
    pub fn stop_requested(&self) -> Option<&str> {
        self.stop.requested()
    }

    /// Resolves once the run is asked to stop.
    pub async fn stopping(&self) {
        self.stop.wait().await
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The refusal of the provider's certificate, when a request met one: the run's
    /// real cause, whatever each list or call reports.
    pub fn untrusted_certificate(&self) -> Option<ApiError> {
        self.untrusted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|cause| ApiError::UntrustedCertificate {
                endpoint: PATH_AUTH.into(),
                cause,
            })
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
    /// `[at, at + 1µs)` of §13.6), with the records that could not be read. One request
    /// when the instant fits a page; otherwise numbered pages of the instant, which a
    /// removal between two of them shifts, so the read is proven as a list read is
    /// ([`paging::proven`]: collected twice with the provider's count in between).
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
        let (mut items, mut bad, pages) = self.instant_pages(iban, &q).await?;
        if pages == 1 {
            return Ok((items, bad));
        }
        let mut why = String::new();
        for _ in 0..3 {
            let first = received_ids(&items, &bad);
            let count = self.transactions_page(iban, &q, 1, 1).await?.info.total;
            (items, bad, _) = self.instant_pages(iban, &q).await?;
            match paging::proven(&first, count, &received_ids(&items, &bad)) {
                Ok(()) => return Ok((items, bad)),
                Err(w) => why = w,
            }
        }
        Err(ApiError::Unproven {
            endpoint: format!("banking/accounts/{iban}/transactions"),
            why,
        })
    }

    /// Every page of one instant of an account's transactions, by page number, and how
    /// many pages that took.
    async fn instant_pages(
        &self,
        iban: &Iban,
        q: &ListQuery,
    ) -> Result<(Vec<Record<BankTransaction>>, Vec<BadRecord>, u32), ApiError> {
        let (mut items, mut bad) = (Vec::new(), Vec::new());
        let mut pager = Paginator::new(100);
        while let Some(n) = pager.next_page() {
            let mut page = self.transactions_page(iban, q, n, 100).await?;
            pager.accept("banking/accounts/transactions", &mut page)?;
            items.append(&mut page.items);
            bad.append(&mut page.bad);
        }
        Ok((items, bad, pager.pages_read))
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
                .map_err(|_| WireError::NotAnObject)
                .and_then(|r| parse_account(&r));
            match parsed {
                Ok(a) => good.push(Record { value: a, raw }),
                Err(error) => bad.push(BadRecord {
                    endpoint: PATH_ACCOUNTS.into(),
                    id: item.get("iban").and_then(value_string),
                    raw,
                    error: error.to_string(),
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
                    why: why.to_string(),
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
        self.stats.reconcile_calls.fetch_add(1, Ordering::Relaxed);
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

/// The ids a read received: its items', and those its unreadable records carried.
fn received_ids(
    items: &[Record<BankTransaction>],
    bad: &[BadRecord],
) -> std::collections::HashSet<String> {
    items
        .iter()
        .map(|r| r.value.id.as_str().to_owned())
        .chain(bad.iter().filter_map(|b| b.id.clone()))
        .collect()
}
