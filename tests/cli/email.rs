//! The report outbox across runs, against a real SMTP server; and the CSVs of a real run
//! against the sandbox's injection payloads.

use std::collections::BTreeMap;

use crate::helpers::{TestEnv, code, findings, text};
use crate::smtp::spawn_smtp;

fn small() -> cp_recon::sandbox::SandboxConfig {
    cp_recon::sandbox::SandboxConfig::new(cp_recon::sandbox::DataSpec::small(
        23,
        chrono::Utc::now(),
    ))
}

fn email_section(port: u16) -> String {
    format!(
        "\n[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"none\"\n\
         from = \"cp-recon <recon@example.com>\"\nto = [\"finance@example.com\"]\ntimeout_secs = 5\n"
    )
}

/// `[reports] send = "always"` and the `[email]` section: a mail every run.
fn every_run(port: u16) -> String {
    format!("send = \"always\"{}", email_section(port))
}

/// Under the default `send = "digest"`, with a digest slot only on 1 January at 00:00,
/// so that no slot begins while a test runs.
fn digest_yearly(port: u16) -> String {
    format!("{}digest = \"0 0 0 1 1 *\"\n", email_section(port))
}

fn report_state(env: &TestEnv, run: i64) -> (String, i64) {
    env.store().report_state(run).unwrap().expect("report row")
}

/// The attachment `name` of a raw message, parsed as CSV: first column → `reason`.
fn attached_reasons(raw: &[u8], name: &str) -> BTreeMap<String, String> {
    let mail = mailparse::parse_mail(raw).unwrap();
    let mut found = None;
    let mut stack = vec![&mail];
    while let Some(part) = stack.pop() {
        stack.extend(part.subparts.iter());
        let disposition = part.get_content_disposition();
        if disposition.params.get("filename").map(String::as_str) == Some(name) {
            found = Some(part.get_body_raw().unwrap());
        }
    }
    let bytes = found.unwrap_or_else(|| panic!("{name} not attached"));
    let mut rd = csv::Reader::from_reader(bytes.as_slice());
    let headers = rd.headers().unwrap().clone();
    let reason = headers.iter().position(|h| h == "reason").unwrap();
    rd.records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[reason].to_owned())
        })
        .collect()
}

fn body_text(raw: &[u8]) -> String {
    let mail = mailparse::parse_mail(raw).unwrap();
    let mut stack = vec![&mail];
    while let Some(part) = stack.pop() {
        if part.ctype.mimetype == "text/plain" {
            return part.get_body().unwrap();
        }
        stack.extend(part.subparts.iter());
    }
    panic!("no text part")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_could_not_be_mailed_stays_on_disk_and_the_next_run_delivers_it_once() {
    let env = TestEnv::start(small()).await;
    // SMTP down: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.write_config(&every_run(closed));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(
        code(&out),
        0,
        "mail failure must not fail the run\n{}",
        text(&out)
    );
    assert_eq!(report_state(&env, 1), ("pending".to_owned(), 1));
    let dir1 = env.report_dir(1);
    for f in [
        "unmatched_payments.csv",
        "unmatched_bank_transactions.csv",
        "reconciled.csv",
        "unmatched_payouts.csv",
        "report.eml",
    ] {
        assert!(dir1.join(f).is_file(), "{f} not on disk");
    }
    assert!(
        text(&out).contains("outbox"),
        "the failure is logged\n{}",
        text(&out)
    );

    // SMTP back: the next run delivers the pending report and its own.
    let smtp = spawn_smtp();
    env.write_config(&every_run(smtp.addr.port()));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let received = smtp.received();
    assert_eq!(received.len(), 2, "run 1's report and run 2's");
    assert_eq!(report_state(&env, 1).0, "sent");
    assert_eq!(report_state(&env, 2).0, "sent");
    assert!(body_text(&received[0]).contains("Run 1:"));
    assert!(body_text(&received[1]).contains("Run 2:"));

    // The attached CSVs say what the database says.
    let store = env.store();
    assert_eq!(
        attached_reasons(&received[1], "unmatched_payments.csv"),
        findings(&store, 2, "payment")
    );
    assert_eq!(
        attached_reasons(&received[1], "unmatched_bank_transactions.csv"),
        findings(&store, 2, "transaction")
    );

    // A third run sends only its own report: nothing delivered is sent again.
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(smtp.received().len(), 3);
    assert!(body_text(&smtp.received()[2]).contains("Run 3:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_report_says_it_is_auto_generated_so_that_no_automatic_reply_comes_back() {
    use mailparse::MailHeaderMap;
    let env = TestEnv::start(small()).await;
    let smtp = spawn_smtp();
    env.write_config(&every_run(smtp.addr.port()));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let mail = mailparse::parse_mail(&received[0]).unwrap();
    assert_eq!(
        mail.headers.get_first_value("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        mail.headers
            .get_first_value("X-Auto-Response-Suppress")
            .as_deref(),
        Some("All")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_not_yet_mailed_are_counted_in_the_metrics_with_the_age_of_the_oldest() {
    let env = TestEnv::start(small()).await;
    let prom = env.reports.with_file_name("cp-recon.prom");
    let with_metrics = |port: u16| {
        format!(
            "{}\n[monitoring]\ntextfile = \"{}\"\n",
            every_run(port),
            prom.display()
        )
    };
    let sample = || {
        let metrics = std::fs::read_to_string(&prom).unwrap();
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
                .parse()
                .unwrap()
        };
        assert!(
            metrics.contains("# TYPE cp_recon_reports_undelivered gauge"),
            "{metrics}"
        );
        (
            value("cp_recon_reports_undelivered"),
            value("cp_recon_reports_undelivered_oldest_age_seconds"),
        )
    };
    // SMTP down: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.write_config(&with_metrics(closed));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (waiting, first_age) = sample();
    assert_eq!(waiting, 1.0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (waiting, age) = sample();
    assert_eq!(waiting, 2.0);
    // Run 1's report, written more than a second before run 2 ended.
    let written = env.store().report_state(1).unwrap().unwrap();
    assert_eq!(written.0, "pending");
    assert!(age >= first_age + 1.0, "{age} after {first_age}");

    // SMTP back: both are delivered, nothing waits.
    let smtp = spawn_smtp();
    env.write_config(&with_metrics(smtp.addr.port()));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(smtp.received().len(), 3);
    assert_eq!(sample(), (0.0, 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_required_against_a_plain_server_fails_clearly_and_keeps_the_report_pending() {
    let env = TestEnv::start(small()).await;
    let smtp = spawn_smtp();
    env.write_config(
        &email_section(smtp.addr.port()).replace("tls = \"none\"", "tls = \"starttls\""),
    );
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        smtp.received().is_empty(),
        "sent in plain text despite starttls"
    );
    let (state, attempts) = report_state(&env, 1);
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    let err: String = env
        .store()
        .connection()
        .query_row("SELECT last_error FROM reports WHERE run_id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(err.to_lowercase().contains("tls"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injection_payload_of_the_data_set_comes_out_of_a_real_run_neutralised() {
    let env = TestEnv::start(small()).await;
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let path = env.report_dir(1).join("unmatched_bank_transactions.csv");
    let mut rd = csv::Reader::from_path(&path).unwrap();
    let cells: Vec<String> = rd
        .records()
        .flat_map(|r| r.unwrap().iter().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let payloads = env.sandbox.expected().injection_texts.clone();
    assert!(!payloads.is_empty());
    for p in &payloads {
        assert!(!cells.contains(p), "payload {p:?} written raw");
        assert!(
            cells.contains(&format!("'{p}")),
            "payload {p:?} missing from the report"
        );
    }
    for c in &cells {
        assert!(
            !c.starts_with(['=', '+', '@', '\t', '\r']),
            "a cell starts a formula: {c:?}"
        );
    }
    // Names in other scripts survive.
    assert!(cells.iter().any(|c| c == "山田太郎"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_run_reports_its_items_as_the_last_known_state_of_the_last_complete_run() {
    let env = TestEnv::start(small()).await;
    let smtp = spawn_smtp();
    let prom = env.reports.with_file_name("cp-recon.prom");
    env.write_config(&format!(
        "{}\n[monitoring]\ntextfile = \"{}\"\n",
        every_run(smtp.addr.port()),
        prom.display()
    ));
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    let started = env.store().run(1).unwrap().unwrap().started_at;
    let body = body_text(&smtp.received()[0]);
    assert!(!body.contains("last known state"), "{body}");

    // The next run cannot read a list in full.
    env.sandbox.set_faults(cp_recon::sandbox::Faults {
        broken_page: Some(cp_recon::sandbox::BrokenPage {
            list: cp_recon::sandbox::ListName::Transactions,
            page: 1,
        }),
        ..cp_recon::sandbox::Faults::default()
    });
    let second = env.run(&["--run-now", "--full"]).await;
    assert_eq!(code(&second), 1, "{}", text(&second));
    let said = format!("last known state as of run 1 at {started}");

    // The e-mail says it among its status lines, before any item.
    let received = smtp.received();
    assert_eq!(received.len(), 2);
    let body = body_text(&received[1]);
    let status: Vec<&str> = body.lines().take_while(|l| !l.is_empty()).collect();
    assert!(
        status
            .iter()
            .any(|l| l.starts_with(&format!("NOT CURRENT: {said}"))),
        "{body}"
    );
    // So does the run's summary line.
    let err = String::from_utf8_lossy(&second.stderr);
    let summary = err
        .lines()
        .find(|l| l.contains("run did not complete"))
        .unwrap_or_default();
    assert!(summary.contains(&said), "{err}");

    // And the metrics: the unmatched counts are marked as run 1's, stale.
    let metrics = std::fs::read_to_string(&prom).unwrap();
    let sample = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
            .to_owned()
    };
    assert_eq!(sample("cp_recon_last_run_id"), "2");
    assert_eq!(sample("cp_recon_unmatched_as_of_run"), "1");
    assert_eq!(sample("cp_recon_unmatched_stale"), "1");
    let at: f64 = sample("cp_recon_unmatched_as_of_timestamp_seconds")
        .parse()
        .unwrap();
    let started = chrono::DateTime::parse_from_rfc3339(&started).unwrap();
    assert_eq!(at, started.timestamp_millis() as f64 / 1000.0);
}

fn subject(raw: &[u8]) -> String {
    use mailparse::MailHeaderMap;
    mailparse::parse_mail(raw)
        .unwrap()
        .headers
        .get_first_value("Subject")
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_runs_with_standing_items_send_one_digest_and_no_other_mail() {
    let env = TestEnv::start(small()).await;
    let smtp = spawn_smtp();
    env.write_config(&digest_yearly(smtp.addr.port()));
    for run in 1..=6 {
        let out = env.run(&["--run-now"]).await;
        assert_eq!(code(&out), 0, "run {run}: {}", text(&out));
    }
    let received = smtp.received();
    assert_eq!(received.len(), 1, "the first digest only");
    assert!(body_text(&received[0]).contains("Run 1:"));
    // Every report is on disk all the same; the others were not needed.
    assert_eq!(report_state(&env, 1).0, "sent");
    for run in 2..=6 {
        assert!(env.report_dir(run).join("reconciled.csv").is_file());
        assert_eq!(report_state(&env, run).0, "not_needed", "run {run}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_urgent_item_between_digests_is_mailed_once_and_first() {
    let env = TestEnv::start(small()).await;
    let smtp = spawn_smtp();
    env.write_config(&digest_yearly(smtp.addr.port()));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(smtp.received().len(), 1, "the first digest");

    // Money leaves the account with nothing to explain it.
    let iban = env.sandbox.accounts()[0].iban.clone();
    env.sandbox
        .add_transaction(cp_recon::sandbox::TransactionRecord::debit(
            "TXURGENTDEBIT000000001",
            &iban,
            rust_decimal::Decimal::new(98_765, 2),
            "Transfer out",
            chrono::Utc::now() - chrono::Duration::minutes(5),
        ))
        .unwrap();
    for _ in 0..3 {
        let out = env.run(&["--run-now"]).await;
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let received = smtp.received();
    assert_eq!(received.len(), 2, "the digest, then one urgent mail");
    let urgent = &received[1];
    assert_eq!(
        subject(urgent),
        "[cp-recon] URGENT — 1 unexplained debit, 987.65 EUR"
    );
    let body = body_text(urgent);
    let first = body.lines().next().unwrap_or_default();
    assert_eq!(first, "NEEDS A PERSON TODAY: 1 new urgent item", "{body}");
    assert!(
        body.contains("unexplained_debit: debit TXURGENTDEBIT000000001, 987.65 EUR"),
        "{body}"
    );
    assert!(body_text(&received[0]).contains("Run 1:"));
    assert!(body.contains("Run 2:"), "the run that found it: {body}");
}
