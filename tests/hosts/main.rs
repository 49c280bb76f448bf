//! More than one host on one PostgreSQL database, end to end: real `cp-recon` processes,
//! each a "host" with a config file and a report folder of its own, one sandbox over
//! real HTTP on 127.0.0.1, one throwaway PostgreSQL cluster (`tests/common/pg.rs`;
//! SKIPPED without the server unless CP_RECON_REQUIRE_POSTGRES is set).
//!
//! The oracle is the sandbox's own record of every reconcile call it received, which no
//! host can forge: no pair is ever sent twice, by one host or by two (a 429 is not a
//! send), and in the end every confident pair is applied exactly once.

#[path = "../common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use cp_recon::sandbox::hook::{Action, Event, Handle, Hook};
use cp_recon::sandbox::{DataSpec, PaymentRecord, Sandbox, SandboxConfig, TransactionRecord};
use pg::TestPg;
use rust_decimal::Decimal;

const SECRET: &str = "sandbox-secret";
/// The hosts' database password (their role logs in with it): no output of any host
/// may ever show it.
const DB_PASSWORD: &str = "Zq7-hosts-db-SECRET";
const BIN: &str = env!("CARGO_BIN_EXE_cp-recon");
const LOCKED: i32 = 75;

/// The hosts' request timeout and attempts: a call can be on its way for at most
/// 2 × 3 s + 5 s after its intent (`matching::in_flight`), so a test waits 11 s for
/// another host's intent to become settleable, not minutes.
const CLIENT: &str = "timeout_secs = 3\nmax_attempts = 1\n";

struct Hosts {
    sandbox: Sandbox,
    pg: TestPg,
    dir: tempfile::TempDir,
    url: String,
}

impl Hosts {
    async fn start(what: &str) -> Option<Self> {
        Self::start_with(what, DataSpec::small(7, Utc::now())).await
    }

    async fn start_with(what: &str, data: DataSpec) -> Option<Self> {
        let pg = TestPg::start(what)?;
        // A role of its own, with a password, owning the database the job creates its
        // schema in, as the README's grants say.
        pg.create_user("recon", DB_PASSWORD);
        let url = pg.url("recon", "recon", "sslmode=disable");
        let sandbox = Sandbox::start(SandboxConfig::new(data))
            .await
            .expect("sandbox starts");
        Some(Self {
            sandbox,
            pg,
            dir: tempfile::tempdir().unwrap(),
            url,
        })
    }

    /// `host`'s config: this sandbox, the shared database, its own report folder.
    fn config(&self, host: &str, extra: &str) -> PathBuf {
        let home = self.dir.path().join(host);
        std::fs::create_dir_all(&home).unwrap();
        let path = home.join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[cryptopocket]\nbase_url = \"{}\"\napi_key = \"sandbox-key\"\npage_size = 20\n\
                 max_requests_per_second = 0\nbackoff_base_ms = 5\n{CLIENT}\n\
                 [database]\nurl = \"{}\"\n\n[reports]\ndir = \"{}\"\n{extra}",
                self.sandbox.base_url(),
                self.url,
                home.join("reports").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn command(&self, host: &str, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(BIN);
        c.args(args)
            .arg("--config")
            .arg(self.config(host, ""))
            .env("CP_RECON_API_SECRET", SECRET)
            .env("CP_RECON_DATABASE_PASSWORD", DB_PASSWORD)
            .env("CP_RECON_LOG_FORMAT", "journal")
            .env("RUST_LOG", "info")
            .env_remove("CP_RECON_CONFIG")
            .env_remove("CP_RECON_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, host: &str) -> Output {
        shown(self.command(host, &["--run-now"]).output().await.unwrap())
    }

    fn sql(&self, sql: &str) -> String {
        self.pg.sql("recon", sql)
    }

    /// Runs on `host` until every confident pair of the sandbox is applied and the
    /// ledger says so (another host's intents wait out their in-flight bound first),
    /// at most for a minute.
    async fn calm_runs_until_all_applied(&self, host: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let confident = self.sandbox.expected().confident.len().to_string();
        loop {
            let out = self.run(host).await;
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            let reconciled = self.sql("SELECT COUNT(*) FROM matches WHERE state = 'reconciled'");
            if missing(&self.sandbox).is_empty() && reconciled == confident {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not applied after a minute of calm runs: {:?}, {reconciled} reconciled in the ledger",
                missing(&self.sandbox)
            );
            // Each run asks the provider again; pace them as a timer would, briefly.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A process's output, checked: it must not show the database password.
fn shown(o: Output) -> Output {
    let _ = text(&o);
    o
}

/// A process's exit and output, which must not show the database password.
fn text(o: &Output) -> String {
    let all = format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains(DB_PASSWORD), "the password was shown:\n{all}");
    all
}

/// Every pair the provider received, with how many times it was sent (429s and 503s
/// before processing are not sends).
fn sends(sandbox: &Sandbox) -> BTreeMap<(String, String), u32> {
    let mut out = BTreeMap::new();
    for c in sandbox.reconcile_calls() {
        if c.answer != "rate_limited" && c.answer != "unavailable" {
            *out.entry((c.payment_id, c.transaction_id)).or_default() += 1;
        }
    }
    out
}

fn assert_no_pair_sent_twice(sandbox: &Sandbox) {
    let twice: Vec<_> = sends(sandbox).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "pairs sent more than once: {twice:?}");
}

/// Confident pairs not applied (yet).
fn missing(sandbox: &Sandbox) -> Vec<(String, String)> {
    let applied: Vec<(String, String)> = sandbox
        .reconcile_calls()
        .into_iter()
        .filter(|c| c.answer == "ok")
        .map(|c| (c.payment_id, c.transaction_id))
        .collect();
    sandbox
        .expected()
        .confident
        .iter()
        .filter(|p| !applied.contains(p))
        .cloned()
        .collect()
}

/// Holds every reconcile call for `ms` before the provider applies it (a slow
/// provider: the call is on its way, not yet applied), and counts the calls seen.
struct Slow {
    ms: u64,
    seen: AtomicUsize,
}

impl Hook for Slow {
    fn on(&self, _: &Handle, event: &Event) -> Action {
        match event {
            Event::Reconcile { .. } => {
                self.seen.fetch_add(1, Ordering::SeqCst);
                Action::Slow(self.ms)
            }
            _ => Action::Serve,
        }
    }
}

impl Slow {
    fn install(sandbox: &Sandbox, ms: u64) -> Arc<Self> {
        let hook = Arc::new(Self {
            ms,
            seen: AtomicUsize::new(0),
        });
        sandbox.set_hook(Some(hook.clone()));
        hook
    }

    /// Waits until a reconcile call has reached the provider (polled, at most 60 s).
    async fn until_a_call(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.seen.load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no reconcile call came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_starting_a_run_at_the_same_instant_run_it_once_and_the_other_does_nothing() {
    let Some(h) = Hosts::start("two hosts at the same instant").await else {
        return;
    };
    let (a, b) = tokio::join!(h.run("a"), h.run("b"));
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(LOCKED)], "{}\n{}", text(&a), text(&b));
    let loser = if a.status.code() == Some(LOCKED) {
        &a
    } else {
        &b
    };
    assert!(
        text(loser).contains("another run is in progress"),
        "{}",
        text(loser)
    );
    // The other did nothing: one run is recorded, one report written.
    assert_eq!(h.sql("SELECT COUNT(*) FROM runs"), "1");
    assert_eq!(h.sql("SELECT COUNT(*) FROM reports"), "1");
    // Any host reads the shared status.
    let status = shown(h.command("b", &["status"]).output().await.unwrap());
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(text(&status).contains("completed"), "{}", text(&status));
    assert!(missing(&h.sandbox).is_empty());
    assert_no_pair_sent_twice(&h.sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_starting_at_once_on_an_empty_database_create_the_schema_once() {
    let Some(h) = Hosts::start("three hosts on an empty database").await else {
        return;
    };
    let (a, b, c) = tokio::join!(h.run("a"), h.run("b"), h.run("c"));
    let mut codes = [a.status.code(), b.status.code(), c.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(LOCKED), Some(LOCKED)],
        "{}\n{}\n{}",
        text(&a),
        text(&b),
        text(&c)
    );
    let versions =
        h.sql("SELECT string_agg(version::TEXT, ' ' ORDER BY version) FROM schema_version");
    let newest = cp_recon::store::postgres::SCHEMA_VERSION;
    let want: Vec<String> = (10..=newest).map(|v| v.to_string()).collect();
    assert_eq!(versions, want.join(" "));
    assert_eq!(h.sql("SELECT COUNT(*) FROM runs"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_run_is_followed_at_once_by_another_that_completes_and_every_pair_is_applied_once()
 {
    let Some(h) = Hosts::start("a host killed mid-run").await else {
        return;
    };
    let slow = Slow::install(&h.sandbox, 2_000);
    let mut a = h.command("a", &["--run-now"]).spawn().unwrap();
    slow.until_a_call().await;
    a.kill().await.unwrap();
    h.sandbox.set_hook(None);

    // Host B at once: it completes; host A's intents may still have their calls on
    // their way, so they wait in doubt rather than being called again.
    let b = h.run("b").await;
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    assert_no_pair_sent_twice(&h.sandbox);
    let outcomes = h.sql("SELECT outcome FROM runs ORDER BY id");
    assert_eq!(
        outcomes, "failed\ncompleted",
        "A is closed as failed, B completed"
    );

    h.calm_runs_until_all_applied("b").await;
    assert_no_pair_sent_twice(&h.sandbox);
    assert_eq!(
        h.sql("SELECT COUNT(*) FROM matches WHERE state = 'reconciled'"),
        h.sandbox.expected().confident.len().to_string()
    );
}

/// Without the in-flight rule (`matching::in_flight`), host B re-reads A's payments
/// while A's calls are still on their way, finds them pending and calls every one of
/// them again: this test fails with each of A's pairs sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_run_while_another_host_starts_never_has_a_pair_called_by_both() {
    // Enough confident pairs for several batches: A is cut off between them.
    let data = DataSpec::scaled(7, Utc::now(), 600, 600, 20);
    let Some(h) = Hosts::start_with("a database restart mid-run", data).await else {
        return;
    };
    // Host A's calls are on their way for 3 s before the provider applies them.
    let slow = Slow::install(&h.sandbox, 3_000);
    let a = h.command("a", &["--run-now"]).spawn().unwrap();
    slow.until_a_call().await;
    // The database restarts: A's session, and its run lock with it, are gone. Host B
    // starts at once and takes the lock while A's calls are still on their way.
    h.pg.restart();
    h.sandbox.set_hook(None);
    let b = h.run("b").await;
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    let a = shown(a.wait_with_output().await.unwrap());
    assert_ne!(a.status.code(), Some(0), "A lost its session: {}", text(&a));
    assert!(
        text(&a).contains("was lost"),
        "A says its session was lost: {}",
        text(&a)
    );
    assert_no_pair_sent_twice(&h.sandbox);
    // Fencing: every call either host made had its intent committed first, A's
    // through the session that held the lock; A wrote none after losing it.
    let sent = sends(&h.sandbox);
    let ledger = h.sql("SELECT payment_id || ' ' || transaction_id FROM matches");
    for (p, t) in sent.keys() {
        assert!(
            ledger.lines().any(|l| l == format!("{p} {t}")),
            "{p} / {t} was called without an intent"
        );
    }

    // A calm run afterwards (once A's calls can no longer be on their way) settles
    // A's intents from what the provider says, and calls nothing twice.
    h.calm_runs_until_all_applied("b").await;
    assert_no_pair_sent_twice(&h.sandbox);
    assert_eq!(
        h.sql("SELECT COUNT(*) FROM matches WHERE state = 'reconciled'"),
        h.sandbox.expected().confident.len().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_schedule_apply_each_new_pair_once() {
    let Some(h) = Hosts::start("two daemons").await else {
        return;
    };
    let schedule = "[schedule]\ncron = \"*/2 * * * * *\"\ntimezone = \"UTC\"\n";
    let daemon = |host: &str| {
        let mut c = tokio::process::Command::new(BIN);
        c.arg("--config")
            .arg(h.config(host, schedule))
            .env("CP_RECON_API_SECRET", SECRET)
            .env("CP_RECON_DATABASE_PASSWORD", DB_PASSWORD)
            .env("CP_RECON_LOG_FORMAT", "journal")
            .env("RUST_LOG", "info")
            .env_remove("CP_RECON_CONFIG")
            .env_remove("CP_RECON_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c.spawn().unwrap()
    };
    let a = daemon("a");
    let b = daemon("b");
    // New pairs arrive while both daemons run: one every second, for 12 s.
    let iban = h.sandbox.accounts()[0].iban.clone();
    let mut added = Vec::new();
    for i in 0..12 {
        let now = Utc::now();
        let c = h.sandbox.fresh_concept();
        let (p, t) = (format!("HOSTSPAYMENT{i:012}"), format!("HOSTSCREDIT{i:08}"));
        h.sandbox
            .add_payment(PaymentRecord::transfer(
                &p,
                c,
                1000 + i,
                now - chrono::Duration::minutes(5),
            ))
            .unwrap();
        h.sandbox
            .add_transaction(TransactionRecord::credit(
                &t,
                &iban,
                Decimal::new(1000 + i, 2),
                format!("Ref {c}"),
                now - chrono::Duration::minutes(1),
            ))
            .unwrap();
        added.push((p, t));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Until each new pair is applied (a run every 2 s on one host or the other).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sent = sends(&h.sandbox);
        if added.iter().all(|p| sent.contains_key(p)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all new pairs applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for child in [&a, &b] {
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
    }
    let (a, b) = (
        a.wait_with_output().await.unwrap(),
        b.wait_with_output().await.unwrap(),
    );
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    assert_no_pair_sent_twice(&h.sandbox);
    let applied: Vec<_> = h
        .sandbox
        .reconcile_calls()
        .into_iter()
        .filter(|c| c.answer == "ok")
        .map(|c| (c.payment_id, c.transaction_id))
        .collect();
    for pair in added.iter().chain(&h.sandbox.expected().confident) {
        assert_eq!(applied.iter().filter(|p| *p == pair).count(), 1, "{pair:?}");
    }
    // One run at a time, whichever host took the lock (both fire at the same instants;
    // which one wins each time is the race the lock decides).
    let overlapping = h.sql(
        "SELECT COUNT(*) FROM runs r1 JOIN runs r2 ON r1.id < r2.id
         WHERE r2.started_at < r1.finished_at",
    );
    assert_eq!(overlapping, "0", "two runs overlapped");
}
