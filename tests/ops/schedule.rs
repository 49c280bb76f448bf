use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Madrid;
use chrono_tz::Tz;
use cp_recon::schedule::{
    Clock, CronSchedule, SchedulerStats, next_fire, run_scheduled, run_scheduled_with_clock,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::helpers::{VirtualClock, utc};

fn schedule(expr: &str) -> CronSchedule {
    CronSchedule::parse(expr).expect("valid expression")
}

#[test]
fn a_five_field_line_runs_at_second_zero() {
    assert_eq!(schedule("*/15 * * * *").as_str(), "0 */15 * * * *");
    assert_eq!(schedule("0 9 * * 1-5").as_str(), "0 0 9 * * 1-5");
}

#[test]
fn a_six_field_expression_is_kept_as_written() {
    assert_eq!(schedule("30 0 9 * * *").as_str(), "30 0 9 * * *");
    let s = schedule("30 0 9 * * *");
    let next = next_fire(&s, chrono_tz::UTC, utc("2026-05-01T00:00:00Z"));
    assert_eq!(next, Some(utc("2026-05-01T09:00:30Z")));
}

#[test]
fn bad_expressions_are_rejected_with_the_expression_and_the_reason() {
    for (expr, why) in [
        ("", "empty"),
        ("* * *", "found 3"),
        ("0 0 0 0 * * * *", "found 8"),
        ("0 61 * * * *", ""),
        ("0 0 25 * * *", ""),
        ("every day", "found 2"),
        ("0 0 0 31 2 *", "never matches"),
    ] {
        let err = CronSchedule::parse(expr).expect_err(expr).to_string();
        assert!(err.contains(&format!("{expr:?}")), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(
            err.len() > format!("invalid cron expression {expr:?}: ").len(),
            "{err}"
        );
    }
}

/// Fire times of `expr` in `tz` from `from`, as the scheduler would see them tick.
fn fires(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<DateTime<Utc>> {
    let s = schedule(expr);
    let mut at = utc(from);
    (0..n)
        .map(|_| {
            at = next_fire(&s, tz, at).expect("a next fire");
            at
        })
        .collect()
}

#[test]
fn nine_oclock_in_madrid_stays_at_nine_local_across_the_spring_change() {
    let got = fires("0 0 9 * * *", Madrid, "2026-03-27T12:00:00Z", 3);
    let want = [
        "2026-03-28T08:00:00Z",
        "2026-03-29T07:00:00Z",
        "2026-03-30T07:00:00Z",
    ];
    assert_eq!(got, want.map(utc));
}

#[test]
fn nine_oclock_in_madrid_stays_at_nine_local_across_the_autumn_change() {
    let got = fires("0 0 9 * * *", Madrid, "2026-10-23T12:00:00Z", 3);
    let want = [
        "2026-10-24T07:00:00Z",
        "2026-10-25T08:00:00Z",
        "2026-10-26T08:00:00Z",
    ];
    assert_eq!(got, want.map(utc));
}

#[test]
fn half_past_two_in_madrid_runs_at_the_end_of_the_spring_gap() {
    // 02:30 does not exist on 2026-03-29: it runs at 03:00 CEST, the first instant after.
    let got = fires("0 30 2 * * *", Madrid, "2026-03-28T12:00:00Z", 2);
    assert_eq!(
        got,
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"].map(utc)
    );
}

#[test]
fn half_past_two_in_madrid_runs_once_on_the_autumn_change() {
    // 02:30 happens twice on 2026-10-25 (00:30Z and 01:30Z): only the first fires.
    let got = fires("0 30 2 * * *", Madrid, "2026-10-24T12:00:00Z", 2);
    assert_eq!(
        got,
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"].map(utc)
    );
}

/// Runs the scheduler on a simulated clock from `start` and returns the wall-clock
/// times of its first `n` runs.
async fn simulated_runs(expr: &str, tz: Tz, start: &str, n: usize) -> Vec<DateTime<Utc>> {
    let clock = VirtualClock::starting_at(start);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let job_clock = clock.clone();
    let scheduler = tokio::spawn(run_scheduled_with_clock(
        schedule(expr),
        tz,
        async move {
            let _ = stopped.await;
        },
        move || {
            let _ = tx.send(job_clock.now());
            async {}
        },
        clock,
    ));
    let mut runs = Vec::new();
    while runs.len() < n {
        runs.push(rx.recv().await.expect("a run"));
    }
    let _ = stop.send(());
    scheduler.await.expect("scheduler returns");
    runs
}

#[tokio::test]
async fn the_scheduler_fires_at_nine_local_on_both_sides_of_the_spring_change() {
    let runs = simulated_runs("0 0 9 * * *", Madrid, "2026-03-27T12:00:00Z", 3).await;
    let want = [
        "2026-03-28T08:00:00Z",
        "2026-03-29T07:00:00Z",
        "2026-03-30T07:00:00Z",
    ];
    assert_eq!(runs, want.map(utc));
}

#[tokio::test]
async fn the_scheduler_fires_at_nine_local_on_both_sides_of_the_autumn_change() {
    let runs = simulated_runs("0 0 9 * * *", Madrid, "2026-10-23T12:00:00Z", 3).await;
    let want = [
        "2026-10-24T07:00:00Z",
        "2026-10-25T08:00:00Z",
        "2026-10-26T08:00:00Z",
    ];
    assert_eq!(runs, want.map(utc));
}

#[tokio::test]
async fn the_scheduler_runs_half_past_two_once_on_each_change_day() {
    let spring = simulated_runs("0 30 2 * * *", Madrid, "2026-03-28T12:00:00Z", 2).await;
    assert_eq!(
        spring,
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"].map(utc)
    );
    let autumn = simulated_runs("0 30 2 * * *", Madrid, "2026-10-24T12:00:00Z", 2).await;
    assert_eq!(
        autumn,
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"].map(utc)
    );
}

/// Starts the real-clock scheduler on an every-second cron with `job`; returns its
/// handle and the sender that shuts it down.
fn every_second<F, Fut>(job: F) -> (JoinHandle<SchedulerStats>, oneshot::Sender<()>)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(run_scheduled(
        schedule("* * * * * *"),
        chrono_tz::UTC,
        async move {
            let _ = stopped.await;
        },
        job,
    ));
    (handle, stop)
}

/// Bounds a wait that should end on its own; a broken test fails instead of hanging.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn a_run_fires_on_an_every_second_cron_with_the_real_clock() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (scheduler, stop) = every_second(move || {
        let _ = tx.send(());
        async {}
    });
    within("a run", rx.recv()).await.expect("a run");
    let _ = stop.send(());
    let stats = within("the scheduler", scheduler).await.expect("returns");
    assert!(stats.runs >= 1, "{stats:?}");
}

#[tokio::test]
async fn ticks_that_come_while_a_run_is_going_are_skipped() {
    let active = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (a, o) = (active.clone(), overlapped.clone());
    let (scheduler, stop) = every_second(move || {
        let (a, o, done) = (a.clone(), o.clone(), done_tx.clone());
        async move {
            if a.fetch_add(1, Ordering::SeqCst) > 0 {
                o.store(true, Ordering::SeqCst);
            }
            // A run slower than the one-second period: the job's own work time.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            a.fetch_sub(1, Ordering::SeqCst);
            let _ = done.send(());
        }
    });
    for _ in 0..2 {
        within("a run to end", done_rx.recv())
            .await
            .expect("a run ends");
    }
    let _ = stop.send(());
    let stats = within("the scheduler", scheduler).await.expect("returns");
    assert!(!overlapped.load(Ordering::SeqCst), "runs overlapped");
    assert!(stats.runs >= 2, "{stats:?}");
    assert!(stats.skipped >= 1, "{stats:?}");
}

#[tokio::test]
async fn shutdown_during_a_run_lets_the_run_finish_then_returns() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let (mut scheduler, stop) = every_second(move || {
        let (started, release, f) = (started_tx.clone(), release_rx.clone(), f.clone());
        async move {
            let _ = started.send(());
            if let Some(rx) = release.lock().await.take() {
                let _ = rx.await;
            }
            f.store(true, Ordering::SeqCst);
        }
    });
    within("the run to start", started_rx.recv())
        .await
        .expect("started");
    let _ = stop.send(());
    // Asserting an absence needs a window: in these 1.5 s the scheduler must neither
    // return (the run is still going) nor start another run (ticks every second).
    let early = tokio::time::timeout(Duration::from_millis(1500), &mut scheduler).await;
    assert!(early.is_err(), "returned while the run was still going");
    assert!(!finished.load(Ordering::SeqCst));
    let _ = release_tx.send(());
    let stats = within("the scheduler", scheduler).await.expect("returns");
    assert!(finished.load(Ordering::SeqCst), "the run was cut short");
    assert_eq!(stats.runs, 1, "no run starts after shutdown: {stats:?}");
    assert!(
        started_rx.try_recv().is_err(),
        "a run started after shutdown"
    );
}

#[tokio::test]
async fn shutdown_while_idle_returns_without_running() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let stats = run_scheduled_with_clock(
        schedule("0 0 9 * * *"),
        Madrid,
        std::future::ready(()),
        move || {
            r.store(true, Ordering::SeqCst);
            async {}
        },
        VirtualClock::starting_at("2026-06-01T00:00:00Z"),
    )
    .await;
    assert_eq!(stats, SchedulerStats::default());
    assert!(!ran.load(Ordering::SeqCst));
}

/// A simulated clock whose first sleep past `suspend_at` lasts an hour longer than asked:
/// the machine was suspended, or the wall clock stepped forward.
#[derive(Clone)]
struct SteppingClock {
    now: Arc<std::sync::Mutex<DateTime<Utc>>>,
    suspend_at: DateTime<Utc>,
    stepped: Arc<AtomicBool>,
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("not poisoned")
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        let mut now = self.now.lock().expect("not poisoned");
        *now += chrono::TimeDelta::from_std(d).expect("sleep fits");
        if *now >= self.suspend_at && !self.stepped.swap(true, Ordering::SeqCst) {
            *now += chrono::TimeDelta::hours(1);
        }
        tokio::task::yield_now()
    }
}

#[tokio::test]
async fn a_late_wake_up_runs_the_overdue_tick_once_and_never_replays_the_missed_ones() {
    let clock = SteppingClock {
        now: Arc::new(std::sync::Mutex::new(utc("2026-06-01T00:00:00Z"))),
        suspend_at: utc("2026-06-01T00:20:00Z"),
        stepped: Arc::new(AtomicBool::new(false)),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let job_clock = clock.clone();
    let scheduler = tokio::spawn(run_scheduled_with_clock(
        schedule("0 */15 * * * *"),
        chrono_tz::UTC,
        async move {
            let _ = stopped.await;
        },
        move || {
            let _ = tx.send(job_clock.now());
            async {}
        },
        clock,
    ));
    let mut runs = Vec::new();
    while runs.len() < 4 {
        runs.push(rx.recv().await.expect("a run"));
    }
    let _ = stop.send(());
    scheduler.await.expect("scheduler returns");
    // 00:15 runs; the sleep towards 00:30 wakes at 01:20: the 00:30 tick runs once,
    // late, and 00:45 and 01:00 (passed while asleep) are not replayed.
    assert_eq!(
        runs,
        [
            "2026-06-01T00:15:00Z",
            "2026-06-01T01:20:00Z",
            "2026-06-01T01:30:00Z",
            "2026-06-01T01:45:00Z"
        ]
        .map(utc)
    );
}
