//! The digest tells the whole period since the last digest delivered, over real runs of
//! the built binary against the sandbox and a real SMTP server.

use calamine::{Data, Reader, Xlsx};
use cp_recon::sandbox::{PaymentRecord, TransactionRecord};
use rust_decimal::Decimal;

use crate::desk::{job, paid_twice, small};
use crate::helpers::{TestEnv, code, scalar, text};
use crate::smtp::spawn_smtp;

/// The `[email]` section with a digest slot of `digest`, in Madrid's time.
fn digest_config(port: u16, digest: &str) -> String {
    format!(
        "\n[schedule]\ntimezone = \"Europe/Madrid\"\n\n[email]\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = {port}\ntls = \"none\"\nfrom = \"cp-recon <recon@example.com>\"\n\
         to = [\"finance@example.com\"]\ntimeout_secs = 5\ndigest = \"{digest}\"\n"
    )
}

/// A slot only on 1 January at 00:00: no digest falls due while the test runs.
const YEARLY: &str = "0 0 0 1 1 *";
/// A slot every second: the next run sends the digest.
const EVERY_SECOND: &str = "* * * * * *";

fn part(raw: &[u8], mimetype: &str) -> String {
    let mail = mailparse::parse_mail(raw).unwrap();
    let mut stack = vec![&mail];
    while let Some(p) = stack.pop() {
        if p.ctype.mimetype == mimetype {
            return p.get_body().unwrap();
        }
        stack.extend(p.subparts.iter());
    }
    panic!("no {mimetype} part")
}

fn workbook(raw: &[u8]) -> Vec<u8> {
    let mail = mailparse::parse_mail(raw).unwrap();
    let mut stack = vec![&mail];
    while let Some(p) = stack.pop() {
        if p.get_content_disposition()
            .params
            .get("filename")
            .map(String::as_str)
            == Some("report.xlsx")
        {
            return p.get_body_raw().unwrap();
        }
        stack.extend(p.subparts.iter());
    }
    panic!("no workbook attached")
}

fn payment_ids(env: &TestEnv, run: i64) -> Vec<String> {
    let path = env.report_dir(run).join("reconciled.csv");
    let mut rd = csv::Reader::from_path(&path).unwrap();
    rd.records().map(|r| r.unwrap()[0].to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_lists_every_reconcile_decision_and_resolved_item_since_the_last_delivered_digest()
{
    let env = TestEnv::start(small()).await;
    let smtp = spawn_smtp();
    let port = smtp.addr.port();
    env.write_config(&digest_config(port, YEARLY));

    // Run 1: the first digest goes out at once.
    job(&env).await;
    assert_eq!(smtp.received().len(), 1, "the first digest");
    let digest_start = env.store().run(1).unwrap().unwrap().started_at;

    // A person approves a pair at the desk.
    let (approved, credits) = paid_twice(&env);
    let out = env
        .run(&[
            "approve",
            &approved,
            &credits[0],
            "--by",
            "ana",
            "--note",
            "first transfer",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A new payment waits for its transfer for one run, then the transfer arrives and
    // the next run reconciles it by itself.
    let sb = &env.sandbox;
    let now = chrono::Utc::now();
    let concept = sb.fresh_concept();
    sb.add_payment(PaymentRecord::transfer(
        "DIGESTPAYMENT00000000001",
        concept,
        12_345,
        now - chrono::Duration::hours(2),
    ))
    .unwrap();
    job(&env).await;
    let waited: i64 = scalar(
        &env.store(),
        "SELECT MAX(run_id) FROM findings WHERE item_id = 'DIGESTPAYMENT00000000001'",
    );
    let iban = sb.accounts()[0].iban.clone();
    sb.add_transaction(TransactionRecord::credit(
        "DIGESTCREDIT0000001",
        &iban,
        Decimal::new(12_345, 2),
        format!("Ref {concept}"),
        now - chrono::Duration::hours(1),
    ))
    .unwrap();
    job(&env).await;
    let auto_run: i64 = scalar(
        &env.store(),
        "SELECT settled_run FROM matches WHERE payment_id = 'DIGESTPAYMENT00000000001'
         AND state = 'reconciled'",
    );
    assert_eq!(smtp.received().len(), 1, "no mail between digests");

    // The next digest slot begins: a slot every second, due once a second has passed
    // since the first digest was written.
    env.write_config(&digest_config(port, EVERY_SECOND));
    let written: String = scalar(
        &env.store(),
        "SELECT created_at FROM reports WHERE run_id = 1",
    );
    let due =
        written.parse::<chrono::DateTime<chrono::Utc>>().unwrap() + chrono::Duration::seconds(1);
    while chrono::Utc::now() <= due {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let received = smtp.received();
    assert_eq!(received.len(), 2, "the second digest: {}", text(&out));
    let digest_run: i64 = scalar(&env.store(), "SELECT MAX(id) FROM runs");
    let raw = &received[1];
    use mailparse::MailHeaderMap;
    let subject = mailparse::parse_mail(raw)
        .unwrap()
        .headers
        .get_first_value("Subject")
        .unwrap();
    assert!(
        subject.contains(": 2 reconciled, "),
        "the period's: {subject}"
    );
    let body = part(raw, "text/plain");
    let html = part(raw, "text/html");

    let since = format!(
        "Since the digest of {} (run 1):",
        digest_start
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .with_timezone(&chrono_tz::Europe::Madrid)
            .format("%Y-%m-%d %H:%M %Z")
    );
    assert!(body.contains(&since), "{since} in\n{body}");
    assert!(body.lines().any(|l| l == "  Reconciled: 2"), "{body}");
    let approved_line = body
        .lines()
        .find(|l| l.contains(&format!(" {approved} with bank transaction {}", credits[0])))
        .unwrap_or_else(|| panic!("the approved pair in\n{body}"));
    assert!(
        approved_line.ends_with(", approved by ana"),
        "{approved_line}"
    );
    let auto_line = body
        .lines()
        .find(|l| l.contains(" DIGESTPAYMENT00000000001 with bank transaction DIGESTCREDIT0000001"))
        .unwrap_or_else(|| panic!("the automatic reconcile in\n{body}"));
    assert!(
        auto_line.ends_with(&format!(", 123.45 EUR, run {auto_run}, automatic")),
        "{auto_line}"
    );
    assert!(body.lines().any(|l| l == "  Decisions: 1"), "{body}");
    assert!(
        body.lines().any(|l| l.contains(&format!(
            "ana approved payment {approved} with bank transaction {} (first transfer): reconciled",
            credits[0]
        ))),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "payment DIGESTPAYMENT00000000001 (awaiting_transfer, 123.45 EUR): reconciled by run {auto_run}"
        )),
        "the item that appeared in run {waited} and was resolved: {body}"
    );
    // Open when the first digest was read, reconciled at the desk since.
    let approve_run: i64 = scalar(
        &env.store(),
        &format!(
            "SELECT run_id FROM matches WHERE payment_id = '{approved}' AND state = 'reconciled'"
        ),
    );
    let resolved = body
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with(&format!("payment {approved} (ambiguous, "))
        })
        .unwrap_or_else(|| panic!("the approved payment among those no longer open:\n{body}"));
    assert!(
        resolved.ends_with(&format!(
            ": approved by ana, reconciled by run {approve_run}"
        )),
        "{resolved}"
    );
    for needle in [
        "DIGESTPAYMENT00000000001",
        approved.as_str(),
        "approved by ana",
        "first transfer",
    ] {
        assert!(html.contains(needle), "{needle} in the HTML part:\n{html}");
    }

    // Each reconcile stays in exactly one run's reconciled.csv: the run after the
    // approve lists both, the digest's own lists neither.
    let listed_then = payment_ids(&env, auto_run);
    let listed_by_digest = payment_ids(&env, digest_run);
    for p in [approved.as_str(), "DIGESTPAYMENT00000000001"] {
        let reported: Vec<i64> = {
            let store = env.store();
            let mut st = store
                .connection()
                .prepare("SELECT run_id FROM reports WHERE written_at IS NOT NULL")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let runs: Vec<i64> = reported
            .into_iter()
            .filter(|r| payment_ids(&env, *r).iter().any(|x| x == p))
            .collect();
        assert_eq!(runs.len(), 1, "{p} listed by runs {runs:?}");
    }
    assert!(listed_then.contains(&"DIGESTPAYMENT00000000001".to_owned()));
    assert!(!listed_by_digest.contains(&approved));

    // The workbook it carries has the period's reconciles, amounts as numbers.
    let mut wb = Xlsx::new(std::io::Cursor::new(workbook(raw))).unwrap();
    let sheet = wb.worksheet_range("Reconciled since digest").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    assert_eq!(rows.len(), 3, "header and two pairs");
    let auto = rows
        .iter()
        .find(|r| r[0] == Data::String("DIGESTPAYMENT00000000001".into()))
        .unwrap();
    assert_eq!(auto[2], Data::Float(123.45));
    assert_eq!(auto[3], Data::String("EUR".into()));
    assert_eq!(auto[7], Data::String("automatic".into()));
    let by_ana = rows
        .iter()
        .find(|r| r[0] == Data::String(approved.clone()))
        .unwrap();
    assert_eq!(by_ana[7], Data::String("ana".into()));
    let decisions = wb.worksheet_range("Decisions since digest").unwrap();
    let rows: Vec<&[Data]> = decisions.rows().collect();
    assert_eq!(rows.len(), 2, "header and the approve");
    assert!(matches!(rows[1][0], Data::DateTime(_)), "{:?}", rows[1][0]);
    assert_eq!(rows[1][1], Data::String("ana".into()));
    assert_eq!(rows[1][6], Data::String("first transfer".into()));
    let resolved = wb.worksheet_range("Resolved since digest").unwrap();
    let row = resolved
        .rows()
        .find(|r| r[1] == Data::String("DIGESTPAYMENT00000000001".into()))
        .expect("the payment that waited, then was reconciled");
    assert_eq!(row[3], Data::Float(123.45));
    assert_eq!(row[4], Data::String("EUR".into()));
    assert_eq!(row[5], Data::Float(waited as f64));
    assert_eq!(
        row[6],
        Data::String(format!("reconciled by run {auto_run}"))
    );
}
