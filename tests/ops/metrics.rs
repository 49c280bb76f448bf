use std::collections::BTreeMap;
use std::io::Read;

use cp_recon::metrics::{RunMetrics, ping, render, write_textfile};
use cp_recon::telemetry::{LogFormat, subscriber_with_filter};
use prometheus_parse::{Scrape, Value};

use crate::helpers::{Captured, PingReceiver, utc};

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn run(success: bool, outcome: &str) -> RunMetrics {
    RunMetrics {
        run_id: 42,
        started_at: utc("2026-05-04T10:00:00Z"),
        finished_at: utc("2026-05-04T10:00:12.5Z"),
        success,
        outcome: outcome.to_owned(),
        decisions: counts(&[("reconciled", 3), ("dry_run", 1)]),
        reasons: counts(&[("amount_mismatch", 2), ("no_candidate", 5)]),
        reconcile_calls: 3,
        api_errors: 1,
        records_read: counts(&[("payments", 120), ("bank_transactions", 98)]),
        unmatched_as_of: Some((42, utc("2026-05-04T10:00:00Z"))),
        undelivered_reports: 0,
        oldest_undelivered: None,
    }
}

fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition text")
}

/// The value of the sample `name` whose labels include all of `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match sample.value {
        Value::Gauge(v) | Value::Untyped(v) | Value::Counter(v) => v,
        ref other => panic!("unexpected value {other:?}"),
    }
}

#[test]
fn the_rendered_text_parses_and_holds_every_sample() {
    let text = render(&run(true, "completed"), Some(utc("2026-05-04T09:45:00Z")));
    assert!(text.contains("# HELP cp_recon_last_run_success "));
    assert!(text.contains("# TYPE cp_recon_last_run_success gauge"));
    let s = scrape(&text);
    assert_eq!(
        value(&s, "cp_recon_last_run_start_timestamp_seconds", &[]),
        1_777_888_800.0
    );
    assert_eq!(
        value(&s, "cp_recon_last_run_end_timestamp_seconds", &[]),
        1_777_888_812.5
    );
    assert_eq!(
        value(&s, "cp_recon_last_success_timestamp_seconds", &[]),
        1_777_888_812.5
    );
    assert_eq!(value(&s, "cp_recon_last_run_success", &[]), 1.0);
    assert_eq!(value(&s, "cp_recon_last_run_duration_seconds", &[]), 12.5);
    assert_eq!(
        value(&s, "cp_recon_last_run_outcome", &[("outcome", "completed")]),
        1.0
    );
    assert_eq!(
        value(&s, "cp_recon_last_run_outcome", &[("outcome", "failed")]),
        0.0
    );
    // A stop is an outcome of its own, written 0 too, so an alert on it sees a value.
    assert_eq!(
        value(&s, "cp_recon_last_run_outcome", &[("outcome", "stopped")]),
        0.0
    );
    assert_eq!(
        value(&s, "cp_recon_decisions", &[("decision", "reconciled")]),
        3.0
    );
    assert_eq!(
        value(&s, "cp_recon_decisions", &[("decision", "dry_run")]),
        1.0
    );
    assert_eq!(
        value(&s, "cp_recon_unmatched", &[("reason", "no_candidate")]),
        5.0
    );
    assert_eq!(value(&s, "cp_recon_reconcile_calls", &[]), 3.0);
    assert_eq!(value(&s, "cp_recon_api_errors", &[]), 1.0);
    assert_eq!(
        value(&s, "cp_recon_records_read", &[("list", "payments")]),
        120.0
    );
    assert!(s.docs.contains_key("cp_recon_unmatched"));
}

#[test]
fn a_failed_run_keeps_the_previous_success_time() {
    let s = scrape(&render(
        &run(false, "failed"),
        Some(utc("2026-05-04T09:45:00Z")),
    ));
    assert_eq!(value(&s, "cp_recon_last_run_success", &[]), 0.0);
    assert_eq!(
        value(&s, "cp_recon_last_success_timestamp_seconds", &[]),
        1_777_887_900.0
    );
    assert_eq!(
        value(&s, "cp_recon_last_run_outcome", &[("outcome", "failed")]),
        1.0
    );
    assert_eq!(
        value(&s, "cp_recon_last_run_outcome", &[("outcome", "completed")]),
        0.0
    );
}

#[test]
fn a_run_that_never_succeeded_reports_a_zero_success_time() {
    let s = scrape(&render(&run(false, "failed"), None));
    assert_eq!(
        value(&s, "cp_recon_last_success_timestamp_seconds", &[]),
        0.0
    );
}

#[test]
fn reports_waiting_in_the_outbox_are_counted_with_the_age_of_the_oldest_at_the_run_end() {
    let s = scrape(&render(&run(true, "completed"), None));
    assert_eq!(value(&s, "cp_recon_reports_undelivered", &[]), 0.0);
    assert_eq!(
        value(&s, "cp_recon_reports_undelivered_oldest_age_seconds", &[]),
        0.0
    );
    let mut m = run(true, "completed");
    m.undelivered_reports = 3;
    m.oldest_undelivered = Some(utc("2026-05-04T08:00:00Z"));
    let text = render(&m, None);
    assert!(text.contains("# TYPE cp_recon_reports_undelivered_oldest_age_seconds gauge"));
    let s = scrape(&text);
    assert_eq!(value(&s, "cp_recon_reports_undelivered", &[]), 3.0);
    assert_eq!(
        value(&s, "cp_recon_reports_undelivered_oldest_age_seconds", &[]),
        7212.5
    );
    assert!(s.docs.contains_key("cp_recon_reports_undelivered"));
}

#[test]
fn label_values_are_escaped() {
    let mut m = run(true, "completed");
    m.reasons = counts(&[("quote\"back\\slash\nnewline", 1)]);
    let text = render(&m, None);
    assert!(
        text.contains(r#"cp_recon_unmatched{reason="quote\"back\\slash\nnewline"} 1"#),
        "{text}"
    );
}

#[test]
fn the_textfile_is_written_whole_and_no_temp_file_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cp-recon.prom");
    write_textfile(&path, &run(true, "completed"), None).expect("written");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["cp-recon.prom"]);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text, render(&run(true, "completed"), None));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "node_exporter must be able to read it");
}

#[test]
fn rewriting_the_textfile_replaces_it_rather_than_truncating_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cp-recon.prom");
    write_textfile(&path, &run(true, "completed"), None).expect("first");
    // A reader that opened the old file keeps seeing it whole: the new one is a new
    // file renamed into place, never the old one rewritten.
    let mut reader = std::fs::File::open(&path).expect("open");
    write_textfile(&path, &run(false, "failed"), None).expect("second");
    let mut old = String::new();
    reader.read_to_string(&mut old).expect("read old");
    assert_eq!(old, render(&run(true, "completed"), None));
    let new = std::fs::read_to_string(&path).expect("read new");
    assert_eq!(new, render(&run(false, "failed"), None));
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
}

#[test]
fn writing_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing").join("cp-recon.prom");
    assert!(write_textfile(&path, &run(true, "completed"), None).is_err());
}

#[tokio::test]
async fn a_successful_run_pings_the_url_itself() {
    let server = PingReceiver::spawn().await;
    ping(&reqwest::Client::new(), &server.url("/ping/abc-123"), true).await;
    assert_eq!(server.hits(), ["/ping/abc-123"]);
}

#[tokio::test]
async fn a_failed_run_pings_the_fail_endpoint_with_or_without_a_trailing_slash() {
    let server = PingReceiver::spawn().await;
    let client = reqwest::Client::new();
    ping(&client, &server.url("/ping/abc-123"), false).await;
    ping(&client, &server.url("/ping/abc-123/"), false).await;
    ping(&client, &server.url("/ping/abc-123?rid=7"), false).await;
    assert_eq!(
        server.hits(),
        [
            "/ping/abc-123/fail",
            "/ping/abc-123/fail",
            "/ping/abc-123/fail?rid=7"
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_ping_to_a_closed_port_warns_without_the_secret_and_does_not_fail() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(subscriber_with_filter(
        LogFormat::Journal,
        move || writer.clone(),
        "info",
    ));
    let url = format!("http://127.0.0.1:{port}/s3cr3t-check?token=hunter2");
    ping(&reqwest::Client::new(), &url, true).await;
    let text = logs.text();
    assert!(text.contains("monitoring ping failed"), "{text}");
    assert!(text.contains(&format!("http://127.0.0.1:{port}")), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("s3cr3t"),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_ping_url_that_does_not_parse_is_skipped_with_a_warning_that_hides_it() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(subscriber_with_filter(
        LogFormat::Journal,
        move || writer.clone(),
        "info",
    ));
    ping(&reqwest::Client::new(), "not a url hunter2", true).await;
    let text = logs.text();
    assert!(text.contains("monitoring ping skipped"), "{text}");
    assert!(text.contains("does not parse"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn unmatched_counts_say_which_complete_read_they_reflect_and_whether_it_is_stale() {
    let current = scrape(&render(&run(true, "completed"), None));
    assert_eq!(value(&current, "cp_recon_unmatched_as_of_run", &[]), 42.0);
    assert_eq!(value(&current, "cp_recon_unmatched_stale", &[]), 0.0);

    let mut incomplete = run(false, "incomplete");
    incomplete.unmatched_as_of = Some((40, utc("2026-05-04T09:30:00Z")));
    let s = scrape(&render(&incomplete, None));
    assert_eq!(value(&s, "cp_recon_unmatched_as_of_run", &[]), 40.0);
    assert_eq!(
        value(&s, "cp_recon_unmatched_as_of_timestamp_seconds", &[]),
        1_777_887_000.0
    );
    assert_eq!(value(&s, "cp_recon_unmatched_stale", &[]), 1.0);

    incomplete.unmatched_as_of = None;
    let s = scrape(&render(&incomplete, None));
    assert_eq!(value(&s, "cp_recon_unmatched_as_of_run", &[]), 0.0);
    assert_eq!(value(&s, "cp_recon_unmatched_stale", &[]), 1.0);
}

/// The samples of an exposition text, by series, with their values as numbers
/// (`0` and `0.0` are the same sample).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn the_textfile_keeps_every_name_type_help_text_label_and_value_alerts_rely_on() {
    // The textfile as alerts, dashboards and `promtool check metrics` know it.
    let before = include_str!("metrics.golden.prom");
    let mut m = run(true, "completed");
    m.undelivered_reports = 2;
    m.oldest_undelivered = Some(utc("2026-05-04T09:00:00Z"));
    let now = render(&m, Some(utc("2026-05-03T10:00:00Z")));

    let comments = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("# HELP") || l.starts_with("# TYPE"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(comments(&now), comments(before), "{now}");
    assert_eq!(samples(&now), samples(before), "{now}");
}
