//! The long-running mode's cron schedule: parsing, the next fire time in a time zone
//! (right across daylight-saving changes), and a loop that runs the job on it.
//!
//! The job does not depend on tokio-cron-scheduler; it keeps only that crate's syntax
//! (six fields, seconds first, parsed by the same `croner` configuration). A job
//! created there with a time zone is pinned to that zone's UTC offset at creation, so after a
//! daylight-saving change it fires an hour off until it is re-created. Here every next
//! fire time is computed afresh in the zone after each tick, so no offset is ever kept.
//!
//! Daylight-saving rules (see [`next_fire`]):
//! - spring forward: a wall-clock time that does not exist that day fires once, at the
//!   first instant after the gap (a daily "02:30" in Europe/Madrid runs at 03:00 CEST
//!   on the day the clocks go forward), so a daily job is never lost;
//! - fall back: a wall-clock time that happens twice fires once, at its first
//!   occurrence; only a schedule that matches every hour of the day (a period such as
//!   "every 15 minutes") also fires in the repeated hour, because it describes an
//!   interval in real time rather than a time of day.

use std::future::Future;
use std::pin::{Pin, pin};
use std::str::FromStr;
use std::time::Duration as StdDuration;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A validated cron expression: `sec min hour day-of-month month day-of-week`.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    cron: Cron,
    /// Whether the hours field matches all 24 hours; decides the fall-back rule.
    every_hour: bool,
}

/// Why an expression is not a schedule.
#[derive(Debug, thiserror::Error)]
#[error("invalid cron expression {expr:?}: {reason}")]
pub struct ScheduleError {
    expr: String,
    reason: String,
}

impl CronSchedule {
    /// Parses six fields (`sec min hour dom mon dow`, as tokio-cron-scheduler takes them)
    /// or a classic five-field crontab line, which runs at second 0.
    ///
    /// As in tokio-cron-scheduler, when both day-of-month and day-of-week are
    /// restricted, a day must match both.
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let err = |reason: String| ScheduleError {
            expr: expr.to_owned(),
            reason,
        };
        let trimmed = expr.trim();
        let fields = trimmed.split_whitespace().count();
        let six = match fields {
            // Nicknames such as "@daily" are expanded by the parser itself.
            1 if trimmed.starts_with('@') => trimmed.to_owned(),
            5 => format!("0 {trimmed}"),
            6 => trimmed.to_owned(),
            0 => return Err(err("it is empty".into())),
            n => {
                return Err(err(format!(
                    "expected 6 fields (sec min hour day-of-month month day-of-week) \
                     or 5 (min hour day-of-month month day-of-week), found {n}"
                )));
            }
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&six)
            .map_err(|e| err(e.to_string()))?;
        let every_hour = (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false));
        // An expression that parses but can never fire (say, 30 February) would make
        // the scheduler sleep forever; refuse it here, where the user sees why.
        if Self::find_naive(&cron, NaiveDateTime::default()).is_none() {
            return Err(err("it never matches any date".into()));
        }
        Ok(Self {
            expr: six,
            cron,
            every_hour,
        })
    }

    /// The expression in its six-field form.
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The first wall-clock time at or after `from` that matches, with no time zone.
    ///
    /// Naive times are searched as if they were UTC, which has no daylight saving, so
    /// the parser's own gap handling never applies and [`next_fire`] decides it.
    fn find_naive(cron: &Cron, from: NaiveDateTime) -> Option<NaiveDateTime> {
        cron.find_next_occurrence(&from.and_utc(), true)
            .ok()
            .map(|dt| dt.naive_utc())
    }
}

impl FromStr for CronSchedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.expr)
    }
}

/// The UTC offset of `tz` at the instant `at`.
fn offset_at(tz: Tz, at: DateTime<Utc>) -> TimeDelta {
    TimeDelta::seconds(i64::from(
        at.with_timezone(&tz).offset().fix().local_minus_utc(),
    ))
}

/// Real UTC offsets stay within ±14 h; a window of 15 h either side brackets any
/// instant whose local time is a given wall-clock time.
const MAX_OFFSET: TimeDelta = TimeDelta::hours(15);

/// The first instant whose local time in `tz` is at or after the naive time `n`, for an
/// `n` that falls in a spring-forward gap: that is the instant the clocks jumped.
fn end_of_gap(tz: Tz, n: NaiveDateTime) -> DateTime<Utc> {
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).naive_local();
    // Invariant: local(lo) < n <= local(hi). Local time only moves forward across a
    // gap, so the boundary found by bisection is the transition itself.
    // Whole seconds, as cron times are.
    let mut lo = (n.and_utc() - MAX_OFFSET).timestamp();
    let mut hi = (n.and_utc() + MAX_OFFSET).timestamp();
    let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local(at(mid)) < n {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    at(hi)
}

/// The next instant strictly after `after` at which `s` fires, read as wall-clock time
/// in `tz`; `None` when the schedule has no further match within the parser's search
/// horizon.
///
/// Daylight saving: a wall-clock time skipped by a spring-forward change fires at the
/// first instant after the gap (once, even when several matches fall in the gap); a
/// wall-clock time repeated by a fall-back change fires at its first occurrence only,
/// unless the schedule matches every hour of the day, in which case it keeps its period
/// through the repeated hour.
pub fn next_fire(s: &CronSchedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Candidate wall-clock times are scanned in local order, which is not instant order
    // in a repeated hour; so keep the earliest instant found and stop once no later
    // wall-clock time can map to an instant before it.
    let start =
        after.naive_utc() + offset_at(tz, after).min(offset_at(tz, after + TimeDelta::hours(3)));
    let mut candidate = CronSchedule::find_naive(&s.cron, start)?;
    let mut best: Option<DateTime<Utc>> = None;
    loop {
        if let Some(b) = best {
            let max_offset = offset_at(tz, b).max(offset_at(tz, b - TimeDelta::hours(3)));
            if candidate >= b.naive_utc() + max_offset {
                return best;
            }
        }
        let instants: [Option<DateTime<Utc>>; 2] = match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) => [Some(t.to_utc()), None],
            LocalResult::Ambiguous(first, second) => {
                [Some(first.to_utc()), s.every_hour.then(|| second.to_utc())]
            }
            LocalResult::None => [Some(end_of_gap(tz, candidate)), None],
        };
        for t in instants.into_iter().flatten() {
            if t > after && best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        }
        let next = candidate.checked_add_signed(TimeDelta::seconds(1))?;
        match CronSchedule::find_naive(&s.cron, next) {
            Some(n) => candidate = n,
            None => return best,
        }
    }
}

/// What a scheduler loop did before it returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Runs started.
    pub runs: u64,
    /// Ticks skipped because the previous run was still going.
    pub skipped: u64,
}

/// The wall clock and the timer the scheduler uses; replaced in tests by a simulated
/// clock that crosses days (and daylight-saving changes) without waiting for them.
pub trait Clock {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// Waits for `d` to pass.
    fn sleep(&self, d: StdDuration) -> impl Future<Output = ()> + Send;
}

/// The system clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, d: StdDuration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

/// Runs `job` at every fire time of `s` in `tz` until `shutdown` resolves.
///
/// Runs never overlap: a tick that comes while the job is still running is skipped
/// with a warning. When `shutdown` resolves no further run starts; a run in progress
/// is awaited (the job watches for shutdown itself), then this returns. A failed run
/// does not stop the schedule: the job reports its own failures.
pub async fn run_scheduled<F, Fut>(
    s: CronSchedule,
    tz: Tz,
    shutdown: impl Future<Output = ()>,
    job: F,
) -> SchedulerStats
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send,
{
    run_scheduled_with_clock(s, tz, shutdown, job, SystemClock).await
}

/// Longest single sleep. Waking at least this often re-reads the wall clock, so a
/// clock step (NTP, suspend and resume) delays a run by at most this much.
const MAX_SLEEP: StdDuration = StdDuration::from_secs(60);

/// [`run_scheduled`] on a given [`Clock`].
pub async fn run_scheduled_with_clock<F, Fut, C>(
    s: CronSchedule,
    tz: Tz,
    shutdown: impl Future<Output = ()>,
    mut job: F,
    clock: C,
) -> SchedulerStats
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send,
    C: Clock,
{
    let mut stats = SchedulerStats::default();
    let mut shutdown = pin!(shutdown);
    // The run in progress, polled here rather than spawned so the job need not be
    // 'static; that also makes "is a run going?" a plain check.
    let mut running: Option<Pin<Box<Fut>>> = None;
    let mut next = next_fire(&s, tz, clock.now());
    tracing::info!(schedule = %s, timezone = %tz, next = ?next, "scheduler started");
    if next.is_none() {
        tracing::warn!(schedule = %s, "the schedule has no further fire time");
    }

    loop {
        // Sleeps are short and the clock re-read after each, rather than one sleep
        // to the fire time: the timer is monotonic, the schedule is wall-clock.
        let wait = next.map(|at| {
            (at - clock.now())
                .to_std()
                .unwrap_or_default()
                .min(MAX_SLEEP)
        });
        let sleep = async {
            match wait {
                Some(d) => clock.sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let run_in_progress = async {
            match running.as_mut() {
                Some(run) => run.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = run_in_progress => {
                running = None;
                continue;
            }
            () = sleep => {}
        }
        let Some(at) = next else { continue };
        let current = clock.now();
        if current < at {
            // Woke to re-read the clock, not for the tick.
            continue;
        }
        if running.is_some() {
            stats.skipped += 1;
            tracing::warn!(scheduled_for = %at, "previous run still in progress; skipping this tick");
        } else {
            stats.runs += 1;
            tracing::info!(scheduled_for = %at, "starting scheduled run");
            running = Some(Box::pin(job()));
        }
        // From the later of the tick and the clock, so a late wake-up never replays
        // ticks that have passed.
        next = next_fire(&s, tz, current.max(at));
    }

    if let Some(run) = running {
        tracing::info!("shutdown requested; waiting for the run in progress to finish");
        run.await;
    }
    tracing::info!(
        runs = stats.runs,
        skipped = stats.skipped,
        "scheduler stopped"
    );
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Madrid;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("test timestamp")
    }

    fn fires(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let s = CronSchedule::parse(expr).expect("valid");
        let mut out = Vec::new();
        let mut at = utc(from);
        for _ in 0..n {
            at = next_fire(&s, tz, at).expect("a next fire");
            out.push(at);
        }
        out
    }

    #[test]
    fn a_time_in_the_spring_gap_fires_once_at_the_end_of_the_gap() {
        // 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00Z); 02:30 does not exist.
        let got = fires("0 30 2 * * *", Madrid, "2026-03-27T12:00:00Z", 4);
        let want = [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // gap: first instant after it, 03:00 CEST
            "2026-03-30T00:30:00Z", // 02:30 CEST
            "2026-03-31T00:30:00Z",
        ];
        assert_eq!(got, want.map(utc));
    }

    #[test]
    fn a_time_in_the_repeated_autumn_hour_fires_once() {
        // 2026-10-25 03:00 CEST goes back to 02:00 CET (01:00Z); 02:30 happens twice.
        let got = fires("0 30 2 * * *", Madrid, "2026-10-23T12:00:00Z", 4);
        let want = [
            "2026-10-24T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // first 02:30, CEST; not again at 01:30Z
            "2026-10-26T01:30:00Z", // 02:30 CET
            "2026-10-27T01:30:00Z",
        ];
        assert_eq!(got, want.map(utc));
    }

    #[test]
    fn an_hourly_period_keeps_running_through_the_repeated_hour() {
        let got = fires("0 0 * * * *", Madrid, "2026-10-24T23:30:00Z", 4);
        let want = [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET, the repeated hour
            "2026-10-25T02:00:00Z", // 03:00 CET
            "2026-10-25T03:00:00Z",
        ];
        assert_eq!(got, want.map(utc));
    }

    #[test]
    fn a_quarter_hour_period_starting_inside_the_repeated_hour_stays_in_order() {
        // 01:10Z is 02:10 CET, the second pass through 02:xx.
        let got = fires("0 */15 * * * *", Madrid, "2026-10-25T01:10:00Z", 2);
        assert_eq!(
            got,
            ["2026-10-25T01:15:00Z", "2026-10-25T01:30:00Z"].map(utc)
        );
        // 00:50Z is 02:50 CEST; the next quarter is 02:00 CET, ten minutes later.
        let got = fires("0 */15 * * * *", Madrid, "2026-10-25T00:50:00Z", 1);
        assert_eq!(got, ["2026-10-25T01:00:00Z"].map(utc));
    }

    #[test]
    fn a_quarter_hour_period_skips_the_spring_gap_without_firing_twice() {
        let got = fires("0 */15 * * * *", Madrid, "2026-03-29T00:40:00Z", 3);
        let want = [
            "2026-03-29T00:45:00Z", // 01:45 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST; 02:00-02:45 do not exist
            "2026-03-29T01:15:00Z",
        ];
        assert_eq!(got, want.map(utc));
    }

    #[test]
    fn next_fire_is_strictly_after_the_given_instant() {
        let s = CronSchedule::parse("0 0 9 * * *").expect("valid");
        let at = utc("2026-01-10T08:00:00Z"); // 09:00 CET exactly
        assert_eq!(next_fire(&s, Madrid, at), Some(utc("2026-01-11T08:00:00Z")));
    }

    #[test]
    fn an_expression_that_never_matches_is_rejected() {
        let e = CronSchedule::parse("0 0 0 30 2 *").expect_err("30 February");
        assert!(e.to_string().contains("never matches"), "{e}");
    }
}
