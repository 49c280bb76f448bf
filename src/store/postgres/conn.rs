//! One PostgreSQL session, owned by a thread of its own.
//!
//! The store's API is synchronous and is called from blocking threads and, briefly,
//! from async worker threads; the blocking `postgres::Client` drives its own small
//! runtime and panics when used inside a tokio runtime. So the client lives on a
//! dedicated thread and [`PgConn::run`] sends it work, blocking the caller on a std
//! channel until the answer comes back (as SQLite's fsync blocks a caller today).
//!
//! **A session is never re-opened.** Once it is gone (the server restarted, the network
//! cut, the backend terminated), every [`PgConn::run`] fails with
//! [`PgError::SessionLost`], and the thread ends. This is what fences a host: its run
//! lock and the intents it writes belong to this one session (see `lock.rs`). A caller
//! that wants a database again opens a new `PgConn`, and with it takes the run lock
//! again, or learns that another host has it.
//!
//! Set at connect (as startup options, so they hold from the first statement):
//!
//! - `statement_timeout = 120s`: no statement of a run should take more than a
//!   fraction of a second (the largest, matching's read of every open record of a
//!   100k history, is read in well under one); two minutes stops a run stuck on a
//!   statement (a server stalled on I/O) with an error instead of holding the run lock
//!   forever, with room for a slow server. A migration sets its own (none).
//! - `lock_timeout = 10s`: the SQLite store's busy timeout: how long a statement waits
//!   for a row or table lock another session holds (a person's `psql` in an open
//!   transaction) before the run fails and says so.
//! - `TimeZone = UTC`: the store writes its own RFC 3339 UTC text; anything the server
//!   formats is UTC too.
//! - `client_min_messages = warning`: the server's notices (`relation ... already
//!   exists, skipping` at each start) are not news for the job's log.
//!
//! TCP keepalives (30 s idle, then 3 probes 10 s apart) and a TCP user timeout of 30 s
//! make a cut network end the session within about a minute, rather than after the
//! kernel's retransmissions (about 15 minutes): a write through a dead link fails, the
//! session is lost, and no reconcile call follows it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::Client;
use postgres::config::SslMode as ClientSslMode;
use postgres::error::{Severity, SqlState};
use secrecy::ExposeSecret;

use super::settings::{Settings, SslMode};
use super::{PgError, describe};

/// Server-side limit on one statement (see the module docs).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a statement waits for a lock another session holds.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a session may take, TCP and TLS and authentication.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a session that just failed a statement has to answer an empty query
/// before it is taken for gone.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A unit of work for the session's thread; returns whether the session goes on.
type Job = Box<dyn FnOnce(&mut Client) -> bool + Send>;

/// A handle on one session. Clones share it; the session ends (and every advisory lock
/// it holds is released by the server) when the last clone is dropped, or when it is
/// lost.
#[derive(Clone)]
pub struct PgConn {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    lost: Arc<AtomicBool>,
    /// `database D on H:P as U`, for messages.
    target: String,
    /// Whether this session holds the run lock (`lock.rs`): PostgreSQL's advisory
    /// locks stack within a session, so a second take here must be refused by us.
    pub(super) run_lock: AtomicBool,
}

impl Drop for Inner {
    /// Ends the session: the thread drops the client, which tells the server, and is
    /// waited for, so the session (and its locks) is gone when this returns.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            // The last handle may be dropped by work running on the session's own
            // thread; that thread ends once the job returns, and cannot wait for itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("target", &self.inner.target)
            .field("lost", &self.is_lost())
            .finish()
    }
}

/// What the session's thread hands back for one job.
enum Done<R> {
    Ok(R),
    Err(postgres::Error),
    Lost(String),
    Panicked(Box<dyn Any + Send>),
}

impl PgConn {
    /// Opens a session as `settings` say (TLS as its `sslmode`, the password if any),
    /// on a thread of its own. Blocks until the server has accepted it or refused.
    pub fn connect(settings: &Settings) -> Result<Self, PgError> {
        let target = settings.target();
        let tls = super::tls::connector(settings)?;
        let config = client_config(settings);

        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), postgres::Error>>(1);
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("postgres-session".into())
            .spawn(move || {
                let opened = match tls {
                    Some(tls) => config.connect(tls),
                    None => config.connect(postgres::NoTls),
                };
                let mut client = match opened {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = jobs_rx.recv() {
                    if !job(&mut client) {
                        break;
                    }
                }
                // Dropping the client ends the session.
            })
            .map_err(|e| PgError::Connect {
                target: target.clone(),
                detail: format!("cannot start the session's thread: {e}"),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                inner: Arc::new(Inner {
                    jobs: Some(jobs_tx),
                    thread: Some(thread),
                    lost: Arc::new(AtomicBool::new(false)),
                    target,
                    run_lock: AtomicBool::new(false),
                }),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                let detail = describe(&e);
                Err(PgError::Connect {
                    target,
                    detail: match hint(&detail) {
                        Some(h) => format!("{detail}; {h}"),
                        None => detail,
                    },
                })
            }
            Err(_) => {
                let _ = thread.join();
                Err(PgError::Connect {
                    target,
                    detail: "the session's thread ended before connecting".into(),
                })
            }
        }
    }

    /// Runs `f` on the session's thread and waits for its result.
    ///
    /// Fails with [`PgError::SessionLost`] without running `f` once the session is
    /// gone; when `f` fails and the session turns out to be gone (the error says so,
    /// or it does not answer an empty query within 5 s), with `SessionLost` too, and
    /// the session is never used again. Other errors of `f` come back as
    /// [`PgError::Sql`]. A panic in `f` ends the session and is resumed here.
    pub fn run<R, F>(&self, f: F) -> Result<R, PgError>
    where
        F: FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
        R: Send + 'static,
    {
        if self.is_lost() {
            return Err(self.lost("the session was lost earlier".into()));
        }
        let (tx, rx) = mpsc::sync_channel::<Done<R>>(1);
        let lost = Arc::clone(&self.inner.lost);
        let job: Job = Box::new(move |client: &mut Client| {
            let (done, goes_on) = match catch_unwind(AssertUnwindSafe(|| f(client))) {
                Ok(Ok(r)) => (Done::Ok(r), !client.is_closed()),
                Ok(Err(e)) => match gone(client, &e) {
                    Some(why) => (Done::Lost(why), false),
                    None => (Done::Err(e), true),
                },
                Err(panic) => (Done::Panicked(panic), false),
            };
            if !goes_on {
                lost.store(true, Ordering::SeqCst);
            }
            let _ = tx.send(done);
            goes_on
        });
        let sent = self.inner.jobs.as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            self.inner.lost.store(true, Ordering::SeqCst);
            return Err(self.lost("the session's thread has ended".into()));
        }
        match rx.recv() {
            Ok(Done::Ok(r)) => Ok(r),
            Ok(Done::Err(e)) => Err(PgError::Sql {
                target: self.inner.target.clone(),
                source: e,
            }),
            Ok(Done::Lost(why)) => Err(self.lost(why)),
            Ok(Done::Panicked(panic)) => resume_unwind(panic),
            Err(_) => {
                self.inner.lost.store(true, Ordering::SeqCst);
                Err(self.lost("the session's thread has ended".into()))
            }
        }
    }

    /// Whether the session is known to be gone: every [`PgConn::run`] fails from now on.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.load(Ordering::SeqCst)
    }

    /// `database D on H:P as U`.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    pub(super) fn run_lock_flag(&self) -> &AtomicBool {
        &self.inner.run_lock
    }

    fn lost(&self, detail: String) -> PgError {
        PgError::SessionLost {
            target: self.inner.target.clone(),
            detail,
        }
    }
}

/// The client's settings: where, who, TLS, and the session's timeouts.
fn client_config(settings: &Settings) -> postgres::Config {
    let mut c = postgres::Config::new();
    c.host(&settings.host)
        .port(settings.port)
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name("cp-recon")
        .ssl_mode(match settings.sslmode {
            SslMode::Disable => ClientSslMode::Disable,
            _ => ClientSslMode::Require,
        })
        .options(&format!(
            "-c statement_timeout={}s -c lock_timeout={}s -c TimeZone=UTC -c client_min_messages=warning",
            STATEMENT_TIMEOUT.as_secs(),
            LOCK_TIMEOUT.as_secs()
        ))
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30));
    if let Some(p) = settings.password() {
        c.password(p.expose_secret());
    }
    c
}

/// What to do about a failed connect whose cause is a common one.
fn hint(detail: &str) -> Option<&'static str> {
    if detail.contains("password missing") {
        Some(
            "the server asks for a password: set CP_RECON_DATABASE_PASSWORD or [database] password_file",
        )
    } else if detail.contains("password authentication failed") {
        Some(
            "check the password in CP_RECON_DATABASE_PASSWORD or [database] password_file, and the role's password on the server",
        )
    } else if detail.contains("invalid peer certificate") {
        Some(
            "the server's certificate is not trusted for this host: check sslrootcert (the CA that signed it) and that the URL's host is a name the certificate holds",
        )
    } else {
        None
    }
}

/// Why the session is gone after `e`, or `None` if it is still there.
fn gone(client: &mut Client, e: &postgres::Error) -> Option<String> {
    if e.is_closed() || client.is_closed() {
        return Some(describe(e));
    }
    if let Some(db) = e.as_db_error() {
        // FATAL and PANIC end the session; class 08 is a connection failure; 57P0x
        // the server shutting down or the backend terminated.
        let ends = matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        ) || db.code().code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(db.code());
        if ends {
            return Some(describe(e));
        }
        // A statement the server refused (a constraint, a timeout): the session is
        // there and said so.
        return None;
    }
    // Anything else (an I/O error, a message the client could not read) leaves the
    // session in doubt: it is kept only if it answers.
    match client.is_valid(PROBE_TIMEOUT) {
        Ok(()) => None,
        Err(probe) => Some(format!(
            "{}; then it did not answer: {}",
            describe(e),
            describe(&probe)
        )),
    }
}
