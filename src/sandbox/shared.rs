//! What the sandbox's server and a test's hook share: the provider's state with its
//! counters, and the [`Hook`] a test installs with the [`Handle`] it is given.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use tokio::sync::watch;
use tokio::time::Instant;

use super::rng::Rng;
use super::store::State;
use super::{Faults, ListName, ReconcileCall};

/// Held reconcile calls: how many wait in the current generation; `release_held` moves
/// to the next generation, which lets every waiting call answer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HoldState {
    pub generation: u64,
    pub waiting: usize,
}

pub(super) struct Token {
    pub issued: Instant,
    pub uses: u32,
    /// Ended by a later login (`Faults::one_session`).
    pub ended: bool,
}

pub(crate) struct Shared {
    pub state: RwLock<State>,
    pub faults: RwLock<Faults>,
    pub api_key: String,
    pub api_secret: String,
    pub token_ttl: Duration,
    pub quirks: bool,
    pub(super) tokens: Mutex<FxHashMap<String, Token>>,
    pub(super) token_rng: Mutex<Rng>,
    pub requests: AtomicU64,
    pub(super) fault_counter: AtomicU64,
    pub(super) auth_errors: AtomicU64,
    pub per_path: Mutex<BTreeMap<&'static str, u64>>,
    pub calls: Mutex<Vec<ReconcileCall>>,
    pub hold: watch::Sender<HoldState>,
    pub hook: RwLock<Option<Arc<dyn Hook>>>,
    /// `GET /payment/{id}` requests being served now, and the most at once.
    pub payment_reads: AtomicU64,
    pub max_payment_reads: AtomicU64,
    /// Every first page of a narrow read of one account's instant served, in order.
    pub narrow_reads: Mutex<Vec<NarrowRead>>,
}

/// A first page of a transactions list asked for one microsecond, `[at, at + 1µs)`:
/// how a client re-reads a booking (§13.6). `added` is [`State::added`] when its answer
/// was built: every record added up to then and still there was in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NarrowRead {
    pub iban: String,
    pub at: i64,
    pub added: u64,
}

/// A poisoned lock only means another handler panicked mid-update; the sandbox keeps
/// serving what it has rather than failing every later request.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// A request, as a hook sees it before it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One page of a list (`iban` empty but for transactions).
    List {
        list: ListName,
        iban: String,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        page: u64,
        per_page: u64,
        status: Option<String>,
    },
    /// `GET /payment/{id}`.
    PaymentRead { id: String },
    /// `POST /banking/reconcile`, before it is applied.
    Reconcile {
        payment: String,
        transaction: String,
    },
}

/// How the sandbox answers the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// As it would anyway.
    #[default]
    Serve,
    /// HTTP 503 (an HTML page), nothing done.
    Unavailable,
    /// Reconcile only: applied as usual, then answered with an HTML 503 (a lost answer).
    ApplyAndLose,
    /// Reconcile only: HTTP 429 with `Retry-After: 0`, nothing done.
    RateLimit,
    /// Served after this many milliseconds (a slow provider).
    Slow(u64),
}

/// Called for every list page, payment read and reconcile call, before it is served.
/// Runs on the server's task: it must not block for long.
pub trait Hook: Send + Sync {
    fn on(&self, sandbox: &Handle, event: &Event) -> Action;
}

/// The sandbox's state, for hooks and tests: reads, changes, and the oracle.
#[derive(Clone)]
pub struct Handle(pub(crate) Arc<Shared>);
