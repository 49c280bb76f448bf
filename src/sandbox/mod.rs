//! A local simulator of the CryptoPocket API (wire contract §13).
//!
//! It serves a generated, deterministic data set containing every situation of the
//! reconciliation rules, knows the expected outcome of each (`Expected`), and can be made
//! to misbehave on purpose (`Faults`). Tests, the demo and the benchmarks run against it,
//! and `cp-recon sandbox` exposes it to integrators who have no credentials yet.
//!
//! Layout: `data` generates records and ground truth, `store` keeps them sorted and
//! paginates, `server` speaks HTTP, `cli` is the subcommand.

mod cli;
mod connections;
mod data;
pub mod hook;
mod rng;
mod server;
mod shared;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use cli::{SandboxArgs, serve_cli, serve_until};
pub use data::{
    AccountRecord, DataSpec, Expected, OfframpRecord, PaymentRecord, TransactionRecord,
};
pub use store::SandboxError;

use shared::{Shared, lock, read, write};

/// A list (the broken-page fault and wire overrides name one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListName {
    Payments,
    Rampoffs,
    Transactions,
}

/// A page that always answers a malformed body (HTTP 200). For transactions it applies
/// to every account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenPage {
    pub list: ListName,
    pub page: u32,
}

/// Misbehaviour on demand; everything off by default. Settable from JSON
/// (`cp-recon sandbox --faults '{"rate_limit_every":5}'`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Every Nth API request (counted over all calls but `/authenticate`) answers a
    /// server error: 503 JSON, 502 HTML, 504 HTML, 503 HTML, in turn.
    pub unavailable_every: Option<u32>,
    /// Every Nth API request answers 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_every: Option<u32>,
    pub retry_after_secs: u64,
    /// A token stops working after this many authenticated requests.
    pub token_max_uses: Option<u32>,
    /// Every list page waits this long before answering.
    pub slow_ms: Option<u64>,
    /// Each list request after a read's first (a page 2 or later, or a `from` cursor
    /// past the list's first item) first inserts one item at the start of the requested
    /// window, ordered before the items there: numbered pages then repeat an item, and a
    /// cursor read finds one more.
    pub shifting_pages: bool,
    /// The answer holding the item that starts this page of this list (at the request's
    /// `per_page`, counted from the list's start) is always truncated JSON with HTTP 200,
    /// whether the page was asked for by number or by a `from` cursor.
    pub broken_page: Option<BrokenPage>,
    /// A reconcile call applies its change, then waits for `release_held` to answer.
    pub hold_reconcile: bool,
    /// Serves at most this many items per page whatever the request asks (a provider
    /// that clamps `per_page`), and says so in `pagination.per_page`; `last_page` is
    /// computed with it.
    pub max_per_page: Option<u64>,
    /// Each login ends every token issued before it (`authorization_incorrect` from then
    /// on), as a provider that allows one session per key does.
    pub one_session: bool,
}

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub data: DataSpec,
    pub faults: Faults,
    pub api_key: String,
    pub api_secret: String,
    /// `expires_in` of issued tokens; tokens stop working after it.
    pub token_ttl_secs: u64,
    /// Wire oddities the client must tolerate (numbers as strings, `"sucess"`, codes in
    /// `message`, extra fields, upper-case payment types). On by default.
    pub quirks: bool,
}

impl SandboxConfig {
    /// Default credentials, no faults, quirks on.
    pub fn new(data: DataSpec) -> Self {
        Self {
            data,
            faults: Faults::default(),
            api_key: "sandbox-key".to_owned(),
            api_secret: "sandbox-secret".to_owned(),
            token_ttl_secs: 86_400,
            quirks: true,
        }
    }
}

impl Default for SandboxConfig {
    /// The small data set, seed 42, anchored at the current time.
    fn default() -> Self {
        Self::new(DataSpec::small(42, Utc::now()))
    }
}

/// One `POST /banking/reconcile` as received, with the code it was answered
/// (`ok`, an error code, or `unprocessable` for a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileCall {
    pub payment_id: String,
    pub transaction_id: String,
    pub iban: String,
    pub answer: String,
    /// False when a hook made the answer get lost (the call was applied as `answer`
    /// says, and the client got an HTML 503 instead).
    pub delivered: bool,
}

/// How many records the sandbox holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub payments: usize,
    pub offramps: usize,
    pub accounts: usize,
    pub transactions: usize,
}

/// A running sandbox server. Stops on `shutdown` or when dropped.
pub struct Sandbox {
    shared: Arc<Shared>,
    /// Connections the server holds open now (`connections.rs`).
    connections: Arc<std::sync::atomic::AtomicUsize>,
    addr: SocketAddr,
    expected: Expected,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Generates the data set and serves it on 127.0.0.1 on a free port. The listener is
    /// bound before this returns, so requests can be made at once.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(config: SandboxConfig, addr: SocketAddr) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let seed = config.data.seed;
        // Generating 100k items is CPU work; keep it off the async workers.
        let spec = config.data.clone();
        let generated = tokio::task::spawn_blocking(move || data::generate(&spec))
            .await
            .map_err(std::io::Error::other)?;
        let expected = generated.expected.clone();
        let state = store::State::new(generated, config.quirks, seed, config.data.anchor);
        let shared = Arc::new(Shared::new(
            state,
            config.faults,
            config.api_key,
            config.api_secret,
            config.token_ttl_secs,
            config.quirks,
        ));
        let (stop, mut stop_rx) = watch::channel(false);
        let app = server::router(shared.clone());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = connections::Counted {
            listener,
            open: Arc::clone(&connections),
        };
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Sandbox {
            shared,
            connections,
            addr,
            expected,
            stop,
            task: Some(task),
        })
    }

    /// How many client connections the server holds open now. Zero once every client
    /// has closed its connections and the server has finished with what they sent.
    pub fn open_connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/api` (what a client is configured with).
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Lets a test see, change and answer every request (see [`hook`]).
    pub fn set_hook(&self, hook: Option<Arc<dyn hook::Hook>>) {
        *write(&self.shared.hook) = hook;
    }

    /// The state, for reads, changes and the oracle.
    pub fn handle(&self) -> hook::Handle {
        hook::Handle(self.shared.clone())
    }

    pub fn set_faults(&self, faults: Faults) {
        *write(&self.shared.faults) = faults;
    }

    pub fn faults(&self) -> Faults {
        read(&self.shared.faults).clone()
    }

    /// Every reconcile call received, in order.
    pub fn reconcile_calls(&self) -> Vec<ReconcileCall> {
        lock(&self.shared.calls).clone()
    }

    /// Every token issued so far (for tests that check none was written anywhere).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.issued_tokens()
    }

    /// API requests received (including `/authenticate` and faulted ones).
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Requests per endpoint, keyed like `"GET /payments"`, `"POST /banking/reconcile"`,
    /// `"GET /banking/accounts/{iban}/transactions"`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.per_path)
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect()
    }

    /// The ground truth of the generated data set (records added later are not in it).
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    pub fn payment_status(&self, id: &str) -> Option<String> {
        read(&self.shared.state)
            .payments
            .get(id)
            .map(|r| r.rec.status.clone())
    }

    pub fn payment(&self, id: &str) -> Option<PaymentRecord> {
        read(&self.shared.state)
            .payments
            .get(id)
            .map(|r| r.rec.clone())
    }

    pub fn transaction(&self, id: &str) -> Option<TransactionRecord> {
        read(&self.shared.state).txs.get(id).map(|r| r.rec.clone())
    }

    pub fn offramp(&self, id: &str) -> Option<OfframpRecord> {
        read(&self.shared.state)
            .offramps
            .get(id)
            .map(|r| r.rec.clone())
    }

    pub fn accounts(&self) -> Vec<AccountRecord> {
        read(&self.shared.state).accounts.clone()
    }

    /// Resolves once a reconcile call is being held (`Faults::hold_reconcile`): its state
    /// change is applied and it waits for `release_held`.
    pub async fn wait_for_held_reconcile(&self) {
        let mut rx = self.shared.hold.subscribe();
        let _ = rx.wait_for(|h| h.waiting > 0).await;
    }

    /// Lets every held reconcile call answer.
    pub fn release_held(&self) {
        self.shared.hold.send_modify(|h| {
            h.generation += 1;
            h.waiting = 0;
        });
    }

    pub fn add_payment(&self, payment: PaymentRecord) -> Result<(), SandboxError> {
        write(&self.shared.state).add_payment(payment)
    }

    /// The transaction's `iban` must be one of the sandbox's accounts.
    pub fn add_transaction(&self, transaction: TransactionRecord) -> Result<(), SandboxError> {
        write(&self.shared.state).add_transaction(transaction)
    }

    pub fn add_offramp(&self, offramp: OfframpRecord) -> Result<(), SandboxError> {
        write(&self.shared.state).add_offramp(offramp)
    }

    /// Changes a payment's status (`updated_at` becomes now). False if unknown.
    pub fn set_payment_status(&self, id: &str, status: &str) -> bool {
        write(&self.shared.state).set_payment_status(id, status, Utc::now())
    }

    /// A concept no payment uses yet (for records added at runtime).
    pub fn fresh_concept(&self) -> u64 {
        let mut s = write(&self.shared.state);
        let c = s.next_concept;
        s.next_concept += 1;
        c
    }

    pub fn counts(&self) -> Counts {
        let s = read(&self.shared.state);
        Counts {
            payments: s.payments.len(),
            offramps: s.offramps.len(),
            accounts: s.accounts.len(),
            transactions: s.txs.len(),
        }
    }

    /// The anchor ("now") the data set was generated around.
    pub fn anchor(&self) -> DateTime<Utc> {
        read(&self.shared.state).anchor
    }

    fn signal_stop(&self) {
        // Held calls would keep their connections open and stall a graceful stop.
        self.release_held();
        self.stop.send_replace(true);
    }

    /// Stops accepting, lets in-flight requests finish (at most 5 s), then returns.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish()
    }
}
