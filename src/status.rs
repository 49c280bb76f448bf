//! `cp-recon status`: one screen for a person at a terminal. The last runs (outcome,
//! duration, counts), the next scheduled run, the open items of the last complete run by
//! reason with their oldest age, the reports not e-mailed yet, and anything that blocks
//! automation. [`render`] is pure: the store reads the data, `now` is passed in.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::store::{RunLine, StatusData};

/// The screen is this wide at most, so it reads in an 80-column terminal.
pub const WIDTH: usize = 80;

/// How many of the last runs the screen lists.
pub const RUNS_SHOWN: usize = 8;

/// When the next run and the next digest are due, if they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Next {
    pub run: Option<DateTime<Utc>>,
    /// `None` when no digest is mailed (no `[email]`, or `send` is not `digest`).
    pub digest: Option<DateTime<Utc>>,
}

/// The screen, as text lines of at most [`WIDTH`] characters.
pub fn render(data: &StatusData, next: Next, tz: Tz, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let _ = writeln!(out, "cp-recon status at {} ({tz})", local(now));

    let _ = writeln!(out, "\nLast runs");
    if data.runs.is_empty() {
        let _ = writeln!(out, "  none yet");
    } else {
        let _ = writeln!(
            out,
            "  {:>6}  {:<16}  {:>7}  {:<10}  {:>10}  {:>8}",
            "run", "started", "took", "outcome", "reconciled", "reported"
        );
        for r in &data.runs {
            let _ = writeln!(out, "{}", run_row(r, &local, now));
            if let Some(e) = r.error.as_deref().filter(|_| r.outcome != "completed") {
                let _ = writeln!(out, "{}", fit(&format!("          {}", first_line(e))));
            }
        }
        if data.runs.iter().any(|r| r.dry_run) {
            let _ = writeln!(out, "  * a dry run: nothing was called");
        }
    }
    match next.run {
        Some(t) => {
            let _ = writeln!(
                out,
                "Next run: {} (in {})",
                local(t),
                duration((t - now).num_seconds())
            );
        }
        None => {
            let _ = writeln!(out, "Next run: none scheduled");
        }
    }
    if let Some(t) = next.digest {
        let _ = writeln!(
            out,
            "Next digest: {} (in {})",
            local(t),
            duration((t - now).num_seconds())
        );
    }

    match &data.last_complete {
        None => {
            let _ = writeln!(out, "\nOpen items: no run has read every list yet");
        }
        Some(run) => {
            let total: u64 = data.open.iter().map(|g| g.count).sum();
            let _ = writeln!(
                out,
                "\nOpen items: {total}, as of run {} ({})",
                run.id,
                local(run.started_at)
            );
            for g in &data.open {
                let oldest = g
                    .oldest
                    .map(|t| format!("oldest {}", days((now - t).num_days())))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{}",
                    fit(&format!(
                        "  {:<12} {:<26} {:>6}  {oldest}",
                        g.kind, g.reason, g.count
                    ))
                );
            }
        }
    }

    if data.undelivered.is_empty() {
        let _ = writeln!(out, "\nReports not e-mailed: none");
    } else {
        let _ = writeln!(out, "\nReports not e-mailed: {}", data.undelivered.len());
        for r in &data.undelivered {
            let error = r
                .last_error
                .as_deref()
                .map(first_line)
                .unwrap_or("not tried yet");
            let _ = writeln!(
                out,
                "{}",
                fit(&format!(
                    "  run {} ({} attempt(s)): {error}",
                    r.run_id, r.attempts
                ))
            );
            let _ = writeln!(out, "{}", fit(&format!("    {}", r.dir)));
        }
    }

    if data.blockers.is_empty() {
        let _ = writeln!(out, "\nBlocking automation: nothing");
    } else {
        let _ = writeln!(
            out,
            "\nBlocking automation: {} (nothing is reconciled until they are read)",
            data.blockers.len()
        );
        for b in &data.blockers {
            let record = b
                .record
                .as_deref()
                .map(|r| format!(" record {r}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}",
                fit(&format!("  {}{record}: {}", b.source, first_line(&b.error)))
            );
        }
    }
    out
}

fn run_row(r: &RunLine, local: &impl Fn(DateTime<Utc>) -> String, now: DateTime<Utc>) -> String {
    let took = match r.finished_at {
        Some(f) => seconds((f - r.started_at).num_milliseconds()),
        None => format!("{}…", duration((now - r.started_at).num_seconds())),
    };
    // The `runs` table records a stopped run as `failed`, its error saying it was
    // stopped: a stop is shown as what it is.
    let stopped = r.outcome == "failed"
        && r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("stopped: "));
    let mut outcome = if stopped {
        "stopped".to_owned()
    } else {
        r.outcome.clone()
    };
    if r.dry_run {
        outcome.push('*');
    }
    fit(&format!(
        "  {:>6}  {:<16}  {:>7}  {:<10}  {:>10}  {:>8}",
        r.id,
        local(r.started_at),
        took,
        outcome,
        r.reconciled,
        r.reported
    ))
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms.max(0) as f64 / 1000.0)
}

/// `45s`, `12 min`, `3 h`, `2 days`.
fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..7_200 => format!("{} min", secs / 60),
        7_200..172_800 => format!("{} h", secs / 3_600),
        _ => days(secs / 86_400),
    }
}

fn days(n: i64) -> String {
    match n {
        1 => "1 day".to_owned(),
        n => format!("{} days", n.max(0)),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Cut to [`WIDTH`] characters, with `…` where text was cut.
fn fit(s: &str) -> String {
    if s.chars().count() <= WIDTH {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(WIDTH - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Blocker, OpenGroup, UndeliveredReport};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn run(id: i64, outcome: &str, error: Option<&str>) -> RunLine {
        RunLine {
            id,
            started_at: t("2026-12-02T08:00:00Z"),
            finished_at: Some(t("2026-12-02T08:00:04.200Z")),
            outcome: outcome.to_owned(),
            sync_mode: "incremental".to_owned(),
            dry_run: false,
            reconciled: 3,
            reported: 27,
            error: error.map(str::to_owned),
        }
    }

    fn data() -> StatusData {
        StatusData {
            runs: vec![
                run(
                    413,
                    "incomplete",
                    Some(
                        "incomplete sync: nothing was reconciled: payments: page 3: HTTP 503 Service Unavailable from the provider, after 5 attempts\nmore",
                    ),
                ),
                run(412, "completed", None),
            ],
            last_complete: Some(run(412, "completed", None)),
            open: vec![
                OpenGroup {
                    kind: "payment".into(),
                    reason: "awaiting_transfer".into(),
                    count: 18,
                    oldest: Some(t("2026-11-20T07:00:00Z")),
                },
                OpenGroup {
                    kind: "transaction".into(),
                    reason: "unexplained_debit".into(),
                    count: 1,
                    oldest: Some(t("2026-12-01T07:00:00Z")),
                },
            ],
            undelivered: vec![UndeliveredReport {
                run_id: 410,
                dir: "/var/lib/cp-recon/reports/2026-12-06T053912Z-run410-7f3a9c".into(),
                attempts: 3,
                last_error: Some("SMTP: connection refused".into()),
            }],
            blockers: vec![Blocker {
                source: "/payments".into(),
                record: Some("P77".into()),
                error: "`fiat_amount` is not a decimal: \"1,5\"".into(),
            }],
        }
    }

    #[test]
    fn a_stopped_run_is_shown_as_stopped_and_a_failed_one_as_failed() {
        let rows = [
            run(
                9,
                "failed",
                Some("stopped: SIGTERM received: no request was started after it"),
            ),
            run(8, "failed", Some("sync failed: cannot write the database")),
        ];
        let now = t("2026-12-02T09:10:00Z");
        let local = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
        assert!(run_row(&rows[0], &local, now).contains("  stopped  "));
        assert!(run_row(&rows[1], &local, now).contains("  failed  "));
    }

    #[test]
    fn every_section_is_shown_with_its_numbers() {
        let now = t("2026-12-02T09:10:00Z");
        let next = Next {
            run: Some(t("2026-12-02T09:15:00Z")),
            digest: Some(t("2026-12-03T07:00:00Z")),
        };
        let text = render(&data(), next, chrono_tz::Europe::Madrid, now);
        assert!(
            text.starts_with("cp-recon status at 2026-12-02 10:10 (Europe/Madrid)"),
            "{text}"
        );
        assert!(
            text.contains("   413  2026-12-02 09:00     4.2s  incomplete           3        27"),
            "{text}"
        );
        assert!(
            text.contains("incomplete sync: nothing was reconciled: payments"),
            "{text}"
        );
        assert!(!text.contains("more"), "only an error's first line: {text}");
        assert!(
            text.contains("Next run: 2026-12-02 10:15 (in 5 min)"),
            "{text}"
        );
        assert!(
            text.contains("Next digest: 2026-12-03 08:00 (in 21 h)"),
            "{text}"
        );
        let no_digest = render(&data(), Next::default(), chrono_tz::UTC, now);
        assert!(!no_digest.contains("digest"), "{no_digest}");
        assert!(
            text.contains("Open items: 19, as of run 412 (2026-12-02 09:00)"),
            "{text}"
        );
        assert!(
            text.contains("payment      awaiting_transfer              18  oldest 12 days"),
            "{text}"
        );
        assert!(
            text.contains("unexplained_debit               1  oldest 1 day"),
            "{text}"
        );
        assert!(
            text.contains("run 410 (3 attempt(s)): SMTP: connection refused"),
            "{text}"
        );
        assert!(
            text.contains("/payments record P77: `fiat_amount` is not a decimal"),
            "{text}"
        );
    }

    #[test]
    fn the_screen_fits_an_80_column_terminal() {
        let text = render(
            &data(),
            Next::default(),
            chrono_tz::UTC,
            t("2026-12-02T09:10:00Z"),
        );
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?}");
        }
        assert!(text.contains('…'), "the long error is cut: {text}");
    }

    #[test]
    fn an_empty_database_says_what_is_missing() {
        let text = render(
            &StatusData::default(),
            Next::default(),
            chrono_tz::UTC,
            t("2026-12-02T09:10:00Z"),
        );
        assert!(text.contains("Last runs\n  none yet"), "{text}");
        assert!(text.contains("Next run: none scheduled"), "{text}");
        assert!(text.contains("no run has read every list yet"), "{text}");
        assert!(text.contains("Reports not e-mailed: none"), "{text}");
        assert!(text.contains("Blocking automation: nothing"), "{text}");
    }

    #[test]
    fn a_run_in_progress_shows_how_long_it_has_run() {
        let mut r = run(414, "running", None);
        r.finished_at = None;
        let d = StatusData {
            runs: vec![r],
            ..StatusData::default()
        };
        let text = render(
            &d,
            Next::default(),
            chrono_tz::UTC,
            t("2026-12-02T08:02:30Z"),
        );
        assert!(text.contains("2 min…  running"), "{text}");
        assert!(!text.contains("dry run"), "{text}");
    }

    #[test]
    fn a_dry_run_is_starred_and_the_star_explained() {
        let mut r = run(415, "completed", None);
        r.dry_run = true;
        let d = StatusData {
            runs: vec![r],
            ..StatusData::default()
        };
        let text = render(
            &d,
            Next::default(),
            chrono_tz::UTC,
            t("2026-12-02T08:02:30Z"),
        );
        assert!(text.contains("completed*"), "{text}");
        assert!(text.contains("* a dry run: nothing was called"), "{text}");
    }

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(300), "5 min");
        assert_eq!(duration(3 * 3_600), "3 h");
        assert_eq!(duration(3 * 86_400), "3 days");
        assert_eq!(days(1), "1 day");
    }
}
