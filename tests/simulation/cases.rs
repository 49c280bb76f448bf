//! One test per way the job once acted on a stale or partial view, each a history the
//! simulation can play too, written out by hand.

use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use cp_recon::config::Settings;
use cp_recon::run::{RunOptions, RunStatus, RunSummary, run_once};
use cp_recon::sandbox::hook::{Action, Event, Handle, Hook};
use cp_recon::sandbox::{DataSpec, PaymentRecord, Sandbox, SandboxConfig, TransactionRecord};
use cp_recon::store::Store;
use rust_decimal::Decimal;

/// What a hook does with each reconcile call of the pair it watches, in turn.
type Script = Arc<Mutex<Vec<Action>>>;

/// Answers the reconcile calls of one payment as scripted (then serves them), and
/// counts every call that reached the provider, per (payment, transaction).
struct Scripted {
    payment: String,
    script: Script,
    calls: Mutex<Vec<(String, String, Action)>>,
}

impl Hook for Scripted {
    fn on(&self, _: &Handle, event: &Event) -> Action {
        let Event::Reconcile {
            payment,
            transaction,
        } = event
        else {
            return Action::Serve;
        };
        let action = if *payment == self.payment {
            let mut script = self.script.lock().unwrap();
            if script.is_empty() {
                Action::Serve
            } else {
                script.remove(0)
            }
        } else {
            Action::Serve
        };
        self.calls
            .lock()
            .unwrap()
            .push((payment.clone(), transaction.clone(), action));
        action
    }
}

struct Case {
    sb: Sandbox,
    cfg: Settings,
    _dir: tempfile::TempDir,
    iban: String,
}

impl Case {
    async fn start() -> Case {
        let sb = Sandbox::start(SandboxConfig::new(DataSpec::small(7, Utc::now())))
            .await
            .expect("the sandbox starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut cfg = Settings::for_sandbox(
            cp_recon::api::BaseUrl::parse(&sb.base_url()).unwrap(),
            "sandbox-key",
            "sandbox-secret",
            &dir.path().join("recon.sqlite3"),
            &dir.path().join("reports"),
        );
        cfg.cryptopocket.page_size = 10;
        cfg.cryptopocket.max_attempts = 2;
        cfg.cryptopocket.backoff_base_ms = 1;
        let iban = sb.accounts()[0].iban.clone();
        Case {
            sb,
            cfg,
            _dir: dir,
            iban,
        }
    }

    /// A pending payment of `cents` with a fresh concept, created `days` ago.
    fn payment(&self, id: &str, cents: i64, days: i64) -> u64 {
        let concept = self.sb.fresh_concept();
        let created = Utc::now() - Duration::days(days);
        self.sb
            .add_payment(PaymentRecord::transfer(id, concept, cents, created))
            .expect("added");
        concept
    }

    fn credit(&self, id: &str, cents: i64, text: &str, days: i64) {
        let at = Utc::now() - Duration::days(days) + Duration::hours(1);
        self.sb
            .add_transaction(TransactionRecord::credit(
                id,
                &self.iban,
                Decimal::new(cents, 2),
                text,
                at,
            ))
            .expect("added");
    }

    fn hook(&self, payment: &str, script: Vec<Action>) -> Arc<Scripted> {
        let h = Arc::new(Scripted {
            payment: payment.to_owned(),
            script: Arc::new(Mutex::new(script)),
            calls: Mutex::new(Vec::new()),
        });
        self.sb.set_hook(Some(h.clone()));
        h
    }

    async fn run(&self, full: bool) -> RunSummary {
        let opts = RunOptions {
            full,
            ..RunOptions::default()
        };
        run_once(&self.cfg, &opts)
            .await
            .expect("the run is recorded")
    }

    fn store(&self) -> Store {
        Store::open(self.cfg.database.sqlite_path().unwrap()).expect("the database opens")
    }

    fn state(&self, payment: &str) -> Vec<String> {
        let store = self.store();
        let mut st = store
            .connection()
            .prepare("SELECT state FROM matches WHERE payment_id = ?1 ORDER BY id")
            .unwrap();
        st.query_map([payment], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// `(reason, detail)` of each finding of `item` in run `run`.
    fn findings(&self, run: i64, item: &str) -> Vec<String> {
        let store = self.store();
        let mut st = store
            .connection()
            .prepare("SELECT reason FROM findings WHERE run_id = ?1 AND item_id = ?2")
            .unwrap();
        st.query_map(rusqlite::params![run, item], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The rows of one report CSV of run `run` that name `id`.
    fn csv_rows(&self, run: i64, file: &str, id: &str) -> usize {
        let dir: Option<String> = self
            .store()
            .connection()
            .query_row("SELECT dir FROM reports WHERE run_id = ?1", [run], |r| {
                r.get(0)
            })
            .ok();
        let Some(dir) = dir else {
            return 0;
        };
        std::fs::read_to_string(std::path::Path::new(&dir).join(file))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(id))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_not_recorded_as_ours_when_a_person_tied_the_payment_to_another_transfer()
{
    let case = Case::start().await;
    let concept = case.payment("PLOST0000000000000000000001", 15050, 2);
    case.credit(
        "TLOST00000000000000001",
        15050,
        &format!("Ref {concept}"),
        1,
    );
    case.credit("TOTHER0000000000000001", 15050, "Transferencia", 1);
    // The call is not applied and its answer is lost; the payment still waits, so the
    // intent stays in doubt for the next run (the provider may yet apply it).
    let hook = case.hook("PLOST0000000000000000000001", vec![Action::Unavailable]);
    let first = case.run(true).await;
    assert_eq!(first.status, RunStatus::Completed, "{:?}", first.error);
    assert_eq!(case.state("PLOST0000000000000000000001"), vec!["unknown"]);
    // A person ties the payment to the other transfer in the back office.
    assert!(
        case.sb
            .handle()
            .reconcile_by_hand("PLOST0000000000000000000001", "TOTHER0000000000000001")
    );

    let second = case.run(false).await;
    assert_eq!(second.status, RunStatus::Completed, "{:?}", second.error);
    assert_eq!(
        case.state("PLOST0000000000000000000001"),
        vec!["moved_on"],
        "our pair was never applied: not ours to record"
    );
    let run = second.run_id.unwrap();
    assert_eq!(
        case.csv_rows(run, "reconciled.csv", "PLOST0000000000000000000001"),
        0
    );
    // The credit our call was for is open again and reported.
    assert_eq!(case.findings(run, "TLOST00000000000000001").len(), 1);
    let ours = hook
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "PLOST0000000000000000000001")
        .count();
    assert_eq!(ours, 1, "never called again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_a_person_reconciled_is_never_called_with_the_other_payment_it_names() {
    let case = Case::start().await;
    // Older than the overlap window, so incremental runs do not read it again.
    let c1 = case.payment("PSHAREA000000000000000001", 4000, 20);
    let c2 = case.payment("PSHAREB000000000000000001", 4000, 20);
    case.credit(
        "TSHARE0000000000000001",
        4000,
        &format!("Pagos {c1} y {c2}"),
        19,
    );
    let hook = case.hook("PSHAREB000000000000000001", Vec::new());
    let first = case.run(true).await;
    let run = first.run_id.unwrap();
    assert_eq!(
        case.findings(run, "TSHARE0000000000000001"),
        vec!["ambiguous"]
    );
    // A person reconciles the credit with the first payment.
    assert!(
        case.sb
            .handle()
            .reconcile_by_hand("PSHAREA000000000000000001", "TSHARE0000000000000001")
    );
    for _ in 0..3 {
        let s = case.run(false).await;
        assert_eq!(s.status, RunStatus::Completed, "{:?}", s.error);
    }
    let calls = hook.calls.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .all(|(p, _, _)| p != "PSHAREB000000000000000001"),
        "the credit was offered to the other payment: {calls:?}"
    );
    let last = case
        .store()
        .connection()
        .query_row("SELECT MAX(id) FROM runs", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(
        case.findings(last, "PSHAREB000000000000000001"),
        vec!["awaiting_transfer"]
    );
    assert!(case.findings(last, "TSHARE0000000000000001").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_the_provider_forgot_is_reported_once_and_does_not_stop_the_other_pairs() {
    let case = Case::start().await;
    case.payment("PGONE0000000000000000000001", 2500, 3);
    let first = case.run(true).await;
    assert_eq!(first.status, RunStatus::Completed, "{:?}", first.error);
    assert!(
        case.sb
            .handle()
            .remove_payment("PGONE0000000000000000000001")
    );
    // A fresh clean pair arrives.
    let concept = case.payment("PFRESH000000000000000001", 7700, 0);
    case.credit("TFRESH0000000000000001", 7700, &format!("{concept}"), 0);

    let second = case.run(false).await;
    assert_eq!(second.status, RunStatus::Completed, "{:?}", second.error);
    let run = second.run_id.unwrap();
    assert_eq!(
        case.findings(run, "PGONE0000000000000000000001"),
        vec!["vanished"]
    );
    assert_eq!(
        case.csv_rows(run, "reconciled.csv", "PFRESH000000000000000001"),
        1,
        "the fresh pair waited"
    );
    let third = case.run(false).await;
    assert_eq!(third.status, RunStatus::Completed, "{:?}", third.error);
    assert!(
        case.findings(third.run_id.unwrap(), "PGONE0000000000000000000001")
            .is_empty(),
        "reported once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_call_is_waited_out_and_made_again_in_the_same_run() {
    let case = Case::start().await;
    let concept = case.payment("PBUSY0000000000000000000001", 9900, 1);
    case.credit("TBUSY00000000000000001", 9900, &format!("Ref {concept}"), 0);
    let hook = case.hook(
        "PBUSY0000000000000000000001",
        vec![Action::RateLimit, Action::RateLimit],
    );
    let s = case.run(true).await;
    assert_eq!(s.status, RunStatus::Completed, "{:?}", s.error);
    assert_eq!(
        case.state("PBUSY0000000000000000000001"),
        vec!["reconciled"]
    );
    let run = s.run_id.unwrap();
    assert!(case.findings(run, "PBUSY0000000000000000000001").is_empty());
    assert_eq!(
        case.sb
            .handle()
            .transaction("TBUSY00000000000000001")
            .unwrap()
            .reconciled_payment_id
            .as_deref(),
        Some("PBUSY0000000000000000000001")
    );
    let sent: Vec<_> = hook
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "PBUSY0000000000000000000001")
        .map(|(_, _, a)| *a)
        .collect();
    assert_eq!(
        sent,
        vec![Action::RateLimit, Action::RateLimit, Action::Serve]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_left_in_doubt_is_settled_and_called_again_at_most_once_and_reported_once() {
    let case = Case::start().await;
    let concept = case.payment("PAGAIN000000000000000001", 3100, 1);
    case.credit("TAGAIN0000000000000001", 3100, &format!("Ref {concept}"), 0);
    // The first call is lost before it is applied, and so is the re-read's answer: the
    // intent stays in doubt. The next run finds the payment still pending.
    let hook = case.hook("PAGAIN000000000000000001", vec![Action::Unavailable]);
    let first = case.run(true).await;
    assert_eq!(first.status, RunStatus::Completed, "{:?}", first.error);
    assert_eq!(case.state("PAGAIN000000000000000001"), vec!["unknown"]);
    let second = case.run(false).await;
    let run = second.run_id.unwrap();
    let sent: Vec<_> = hook
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "PAGAIN000000000000000001")
        .cloned()
        .collect();
    assert_eq!(sent.len(), 2, "called once per run: {sent:?}");
    assert_eq!(
        case.state("PAGAIN000000000000000001"),
        vec!["not_applied", "reconciled"]
    );
    assert_eq!(
        case.csv_rows(run, "reconciled.csv", "PAGAIN000000000000000001"),
        1
    );
    assert_eq!(
        case.csv_rows(run, "unmatched_payments.csv", "PAGAIN000000000000000001"),
        0
    );
}

/// Slows the re-reads of the payments it watches and notes, for those made before the
/// sync's first list request (the recovery), how many were being served at once.
struct SlowRecovery {
    payments: Vec<String>,
    synced: std::sync::atomic::AtomicBool,
    at_once: Mutex<Vec<u64>>,
}

impl Hook for SlowRecovery {
    fn on(&self, h: &Handle, event: &Event) -> Action {
        match event {
            // The sync's reads, not the narrow re-read of one credit.
            Event::List { from, to, .. } if !matches!((from, to), (Some(f), Some(t)) if *t - *f <= Duration::seconds(1)) =>
            {
                self.synced
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Action::Serve
            }
            Event::PaymentRead { id } if self.payments.contains(id) => {
                if !self.synced.load(std::sync::atomic::Ordering::Relaxed) {
                    self.at_once.lock().unwrap().push(h.payment_reads_now());
                }
                Action::Slow(150)
            }
            _ => Action::Serve,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_left_in_doubt_are_settled_side_by_side_at_the_runs_concurrency() {
    let case = Case::start().await;
    let ids: Vec<String> = (0..6).map(|i| format!("PSLOW{i:020}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let concept = case.payment(id, 5000 + i as i64, 1);
        case.credit(
            &format!("TSLOW{i:017}"),
            5000 + i as i64,
            &format!("Ref {concept}"),
            0,
        );
    }
    // Every call of these payments is lost before it is applied: six intents in doubt.
    struct LoseAll(Vec<String>);
    impl Hook for LoseAll {
        fn on(&self, _: &Handle, event: &Event) -> Action {
            match event {
                Event::Reconcile { payment, .. } if self.0.contains(payment) => Action::Unavailable,
                _ => Action::Serve,
            }
        }
    }
    case.sb.set_hook(Some(Arc::new(LoseAll(ids.clone()))));
    let first = case.run(true).await;
    assert_eq!(first.status, RunStatus::Completed, "{:?}", first.error);
    for id in &ids {
        assert_eq!(case.state(id), vec!["unknown"], "{id}");
    }

    let slow = Arc::new(SlowRecovery {
        payments: ids.clone(),
        synced: std::sync::atomic::AtomicBool::new(false),
        at_once: Mutex::new(Vec::new()),
    });
    case.sb.set_hook(Some(slow.clone()));
    let second = case.run(false).await;
    assert_eq!(second.status, RunStatus::Completed, "{:?}", second.error);
    let at_once = slow.at_once.lock().unwrap().clone();
    assert_eq!(
        at_once.len(),
        6,
        "each intent's payment re-read once: {at_once:?}"
    );
    let most = at_once.iter().copied().max().unwrap_or(0);
    assert_eq!(
        most, case.cfg.cryptopocket.concurrency as u64,
        "re-read side by side, never more than `concurrency` at once: {at_once:?}"
    );
    for id in &ids {
        assert_eq!(case.state(id), vec!["not_applied", "reconciled"], "{id}");
    }
}

/// Runs `effect` when a reconcile call of any pair arrives (before it is served), and
/// counts the calls.
struct OnCall {
    effect: Box<dyn Fn() + Send + Sync>,
    calls: Mutex<u32>,
}

impl Hook for OnCall {
    fn on(&self, _: &Handle, event: &Event) -> Action {
        if matches!(event, Event::Reconcile { .. }) {
            *self.calls.lock().unwrap() += 1;
            (self.effect)();
        }
        Action::Serve
    }
}

impl Case {
    fn on_call(&self, effect: impl Fn() + Send + Sync + 'static) -> Arc<OnCall> {
        let h = Arc::new(OnCall {
            effect: Box::new(effect),
            calls: Mutex::new(0),
        });
        self.sb.set_hook(Some(h.clone()));
        h
    }

    /// The `reconciled` column of run `run`'s row.
    fn runs_reconciled(&self, run: i64) -> i64 {
        self.store()
            .connection()
            .query_row("SELECT reconciled FROM runs WHERE id = ?1", [run], |r| {
                r.get(0)
            })
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_of_a_run_that_could_not_write_its_report_are_counted_and_reported_next_time() {
    let case = Case::start().await;
    let concept = case.payment("PUNREPORTED000000000000001", 12345, 2);
    case.credit(
        "TUNREPORTED00000000001",
        12345,
        &format!("Ref {concept}"),
        1,
    );
    // The reports directory turns into a file while the call is made: the run cannot
    // write its report after tying the pair.
    let reports = case.cfg.reports.dir.clone();
    let hook = case.on_call(move || {
        let _ = std::fs::remove_dir_all(&reports);
        std::fs::write(&reports, b"not a directory").unwrap();
    });
    let first = case.run(true).await;
    assert_eq!(first.status, RunStatus::Failed, "{first:?}");
    // The generated data has confident pairs of its own; every call is applied.
    let calls = *hook.calls.lock().unwrap();
    assert!(calls >= 1);
    let run1 = first.run_id.unwrap();
    assert_eq!(
        first.outcomes.reconciled,
        u64::from(calls),
        "the summary counts the ties"
    );
    assert_eq!(
        case.runs_reconciled(run1),
        i64::from(calls),
        "so does the runs row"
    );
    assert!(
        first.line().contains(&format!("{calls} reconciled (")),
        "{}",
        first.line()
    );

    std::fs::remove_file(&case.cfg.reports.dir).unwrap();
    let second = case.run(false).await;
    assert_eq!(second.status, RunStatus::Completed, "{:?}", second.error);
    let run2 = second.run_id.unwrap();
    assert_eq!(
        second.outcomes.reconciled, 0,
        "the second run tied nothing itself"
    );
    assert_eq!(
        case.csv_rows(run2, "reconciled.csv", "PUNREPORTED000000000000001"),
        1,
        "the next report lists the first run's reconcile"
    );
    let third = case.run(false).await;
    assert_eq!(
        case.csv_rows(third.run_id.unwrap(), "reconciled.csv", "PUNREPORTED"),
        0,
        "listed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fails_after_its_reconcile_calls_records_how_many_it_made() {
    let case = Case::start().await;
    let concept = case.payment("PTIESREFUSED00000000000001", 4200, 2);
    case.credit("TTIESREFUSED0000000001", 4200, &format!("Ref {concept}"), 1);
    // While the calls are made, the database starts refusing to tie a credit to its
    // payment (as a full disk would): the calls are applied and recorded as reconciled,
    // then the reconcile step fails writing the ties.
    let db = case.cfg.database.sqlite_path().unwrap().to_path_buf();
    let hook = case.on_call(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute_batch(
            "CREATE TRIGGER IF NOT EXISTS ties_refused
             BEFORE UPDATE OF reconciled_payment_id ON bank_transactions
             BEGIN SELECT RAISE(ABORT, 'the database refused the write'); END;",
        )
        .unwrap();
    });
    let run = case.run(true).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("the database refused the write")),
        "{run:?}"
    );
    let calls = *hook.calls.lock().unwrap();
    assert!(calls >= 1);
    let id = run.run_id.unwrap();
    let store = case.store();
    let (recorded_calls, recorded_reconciled): (i64, i64) = store
        .connection()
        .query_row(
            "SELECT reconcile_calls, reconciled FROM runs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        recorded_calls,
        i64::from(calls),
        "every call made is counted"
    );
    let tied: i64 = store
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM matches WHERE state = 'reconciled' AND settled_run = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tied >= 1, "the calls were recorded as reconciled");
    assert_eq!(recorded_reconciled, tied, "and so is what they reconciled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reports_directory_that_cannot_be_written_fails_the_run_before_any_call() {
    let case = Case::start().await;
    let concept = case.payment("PNODIR00000000000000000001", 5000, 2);
    case.credit("TNODIR0000000000000001", 5000, &format!("Ref {concept}"), 1);
    std::fs::write(&case.cfg.reports.dir, b"not a directory").unwrap();
    let hook = case.on_call(|| {});
    let run = case.run(true).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains(&case.cfg.reports.dir.display().to_string())
            && error.contains("nothing was called"),
        "{error}"
    );
    assert_eq!(*hook.calls.lock().unwrap(), 0);
    assert!(case.state("PNODIR00000000000000000001").is_empty());
}
