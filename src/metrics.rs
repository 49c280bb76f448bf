//! Run monitoring: the Prometheus textfile (for node_exporter's textfile collector)
//! and the dead-man's-switch ping (healthchecks.io convention).
//!
//! The textfile is written here rather than encoded by `prometheus-client`: its
//! `Family` keeps series in a hash map, so the file's lines would change order from run
//! to run unless a metric type of our own kept them, its registry appends a period to
//! every help text, and counts would need converting to `i64` gauges; the result was no
//! smaller than the few lines below that write and escape the text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What one run did, as exported after it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMetrics {
    pub run_id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub success: bool,
    /// "completed" | "incomplete" | "failed" | "stopped" | "skipped_locked".
    pub outcome: String,
    /// Decision name ("reconciled", "dry_run", ...) -> count.
    pub decisions: BTreeMap<String, u64>,
    /// Unmatched reason name -> count.
    pub reasons: BTreeMap<String, u64>,
    pub reconcile_calls: u64,
    pub api_errors: u64,
    /// List name -> records read.
    pub records_read: BTreeMap<String, u64>,
    /// The run whose complete read `reasons` reflect, and when it started: this run
    /// when its sync was complete, an earlier one when it was not (the counts are then
    /// the last known state), `None` when no run has read every list in full.
    pub unmatched_as_of: Option<(i64, DateTime<Utc>)>,
    /// Reports written but not yet e-mailed once the run ended (the outbox), and when
    /// the oldest of them was written.
    pub undelivered_reports: u64,
    pub oldest_undelivered: Option<DateTime<Utc>>,
}

/// Outcomes always written (0 or 1), so an alert on one of them sees 0 rather than a
/// missing series when the last run ended otherwise.
const KNOWN_OUTCOMES: [&str; 5] = [
    "completed",
    "incomplete",
    "failed",
    "stopped",
    "skipped_locked",
];

/// Seconds since the epoch, with millisecond precision, as Prometheus expects.
fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// A label value escaped per the text exposition format: `\`, `"` and newline.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Accumulates the exposition text; each metric family is written once with its
/// HELP and TYPE lines (all are gauges: they describe the last run, not a running total).
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP cp_recon_{name} {help}");
        let _ = writeln!(self.0, "# TYPE cp_recon_{name} gauge");
    }

    fn sample(&mut self, name: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "cp_recon_{name} {value}");
    }

    fn labelled(
        &mut self,
        name: &str,
        label: &str,
        label_value: &str,
        value: impl std::fmt::Display,
    ) {
        let _ = writeln!(
            self.0,
            "cp_recon_{name}{{{label}=\"{}\"}} {value}",
            escape_label(label_value)
        );
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, help);
        self.sample(name, value);
    }

    fn by_label(&mut self, name: &str, help: &str, label: &str, values: &BTreeMap<String, u64>) {
        self.family(name, help);
        for (k, v) in values {
            self.labelled(name, label, k, v);
        }
    }
}

/// The run as Prometheus text exposition format.
///
/// `last_success` is the end of the last successful run before this one (from the
/// store); when this run succeeded its own end is used. With no success ever, the
/// timestamp is 0, so a "no success for too long" alert fires instead of seeing nothing.
pub fn render(m: &RunMetrics, last_success: Option<DateTime<Utc>>) -> String {
    let last_success = if m.success {
        Some(last_success.map_or(m.finished_at, |t| t.max(m.finished_at)))
    } else {
        last_success
    };
    let duration = (m.finished_at - m.started_at).num_milliseconds().max(0) as f64 / 1000.0;

    let mut e = Exposition(String::new());
    e.gauge("last_run_id", "Id of the last run.", m.run_id);
    e.gauge(
        "last_run_start_timestamp_seconds",
        "When the last run started, seconds since the epoch.",
        seconds(m.started_at),
    );
    e.gauge(
        "last_run_end_timestamp_seconds",
        "When the last run ended, seconds since the epoch.",
        seconds(m.finished_at),
    );
    e.gauge(
        "last_success_timestamp_seconds",
        "When the last successful run ended, seconds since the epoch (0: never).",
        last_success.map_or(0.0, seconds),
    );
    e.gauge(
        "last_run_success",
        "1 if the last run succeeded, else 0.",
        u8::from(m.success),
    );
    e.family(
        "last_run_outcome",
        "Outcome of the last run (1 for the outcome it had).",
    );
    for known in KNOWN_OUTCOMES {
        e.labelled(
            "last_run_outcome",
            "outcome",
            known,
            u8::from(m.outcome == known),
        );
    }
    if !KNOWN_OUTCOMES.contains(&m.outcome.as_str()) {
        e.labelled("last_run_outcome", "outcome", &m.outcome, 1);
    }
    e.gauge(
        "last_run_duration_seconds",
        "How long the last run took.",
        duration,
    );
    e.by_label(
        "decisions",
        "Decisions taken in the last run, by kind.",
        "decision",
        &m.decisions,
    );
    e.by_label(
        "unmatched",
        "Records left unmatched, by reason, as the last run reported them: the state as of cp_recon_unmatched_as_of_timestamp_seconds, the last known state when that is older than the last run (its sync was incomplete).",
        "reason",
        &m.reasons,
    );
    e.gauge(
        "unmatched_as_of_run",
        "Id of the run whose complete read cp_recon_unmatched reflects (0: no run has read every list in full).",
        m.unmatched_as_of.map_or(0, |(run, _)| run),
    );
    e.gauge(
        "unmatched_as_of_timestamp_seconds",
        "When the run whose complete read cp_recon_unmatched reflects started, seconds since the epoch (0: never).",
        m.unmatched_as_of.map_or(0.0, |(_, at)| seconds(at)),
    );
    e.gauge(
        "unmatched_stale",
        "1 if cp_recon_unmatched is the last known state from an earlier run (the last run's sync was incomplete), else 0.",
        u8::from(m.unmatched_as_of.is_none_or(|(run, _)| run != m.run_id)),
    );
    e.gauge(
        "reconcile_calls",
        "Reconcile calls made to the CryptoPocket API in the last run.",
        m.reconcile_calls,
    );
    e.gauge(
        "api_errors",
        "CryptoPocket API errors in the last run.",
        m.api_errors,
    );
    e.by_label(
        "records_read",
        "Records read in the last run, by list.",
        "list",
        &m.records_read,
    );
    e.gauge(
        "reports_undelivered",
        "Reports written but not yet e-mailed when the last run ended (the outbox; each run retries them).",
        m.undelivered_reports,
    );
    e.gauge(
        "reports_undelivered_oldest_age_seconds",
        "Age of the oldest report not yet e-mailed when the last run ended (0: none).",
        m.oldest_undelivered.map_or(0.0, |t| {
            (m.finished_at - t).num_milliseconds().max(0) as f64 / 1000.0
        }),
    );
    e.0
}

/// Writes the textfile atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over `path`, so the collector never reads a half-written file.
///
/// The temporary name does not end in `.prom`, so the collector ignores it. The file is
/// made world-readable (0644) whatever the process umask, because node_exporter runs
/// as another user.
pub fn write_textfile(
    path: &Path,
    m: &RunMetrics,
    last_success: Option<DateTime<Utc>>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "textfile path has no file name",
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write_and_rename(&tmp, path, dir, render(m, last_success).as_bytes());
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temp file.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_and_rename(tmp: &Path, path: &Path, dir: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    f.set_permissions(fs::Permissions::from_mode(0o644))?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, path)?;
    // The rename itself is durable only once the directory is synced.
    fs::File::open(dir)?.sync_all()
}

/// Timeout for one ping; a slow monitoring service must not hold up the run.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Tells the dead-man's switch how the run ended: `GET url` on success, `GET url/fail`
/// on failure. Never fails: a problem is logged as a warning, because monitoring being
/// down must not turn a good run into a failed one. Logs name only the scheme and host,
/// because the path or query usually carries the check's secret.
pub async fn ping(client: &reqwest::Client, url: &str, success: bool) {
    let Ok(mut target) = reqwest::Url::parse(url) else {
        tracing::warn!("monitoring ping skipped: the ping URL does not parse");
        return;
    };
    let host = redacted(&target);
    if !success {
        let path = format!("{}/fail", target.path().trim_end_matches('/'));
        target.set_path(&path);
    }
    let sent = client.get(target).timeout(PING_TIMEOUT).send().await;
    match sent.and_then(reqwest::Response::error_for_status) {
        Ok(_) => tracing::debug!(host = %host, success, "monitoring ping sent"),
        // reqwest puts the full URL in its errors; strip it before logging.
        Err(e) => tracing::warn!(host = %host, error = %e.without_url(), "monitoring ping failed"),
    }
}

/// `scheme://host[:port]`, nothing that could hold a secret.
fn redacted(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn the_redacted_ping_target_keeps_only_scheme_host_and_port() {
        let u = reqwest::Url::parse("https://user:pw@hc-ping.com:8443/uuid-secret?token=x")
            .expect("url");
        assert_eq!(redacted(&u), "https://hc-ping.com:8443");
    }
}
