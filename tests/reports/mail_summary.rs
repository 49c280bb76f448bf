//! The e-mail's summary: totals per file, labels beside reason codes, a layout that
//! reads on a phone, and attachments kept under the relay's size limit.

use cp_recon::email::{self, TlsMode};
use mailparse::ParsedMail;

use super::helpers::*;
use super::{attachments, body_of, written};

/// The message as a mail client sees it, built with `limit` bytes at most.
fn message_within(limit: u64) -> (Vec<u8>, tempfile::TempDir, cp_recon::report::ReportFiles) {
    let (report, dir, files) = written(&Fixture::new());
    // A CSV far larger than the workbook, as after a first run over a big history.
    let mut csv = std::fs::read(&files.unmatched_payments).unwrap();
    csv.extend(std::iter::repeat_n(b'x', 200_000));
    std::fs::write(&files.unmatched_payments, csv).unwrap();
    let settings = spawn_smtp().settings(TlsMode::None);
    let message = email::build_message_within(&report, &files, &settings, limit).unwrap();
    (message.formatted(), dir, files)
}

fn parse(raw: &[u8]) -> ParsedMail<'_> {
    mailparse::parse_mail(raw).unwrap()
}

#[test]
fn the_plain_text_gives_each_file_its_count_and_amount_per_currency() {
    let (raw, _dir, _files) = message_within(email::MAX_MESSAGE_BYTES);
    let text = body_of(&parse(&raw), "text/plain");
    for line in [
        "  Payments (unmatched_payments.csv): 5 items: 290.49 EUR, 10.00 USD",
        "  Bank transactions (unmatched_bank_transactions.csv): 4 items: 270.48 EUR in (3 credits), 500.00 EUR out (1 debit)",
        "  Off-ramp payouts (unmatched_payouts.csv): 1 item: 250.00 EUR",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let reason = text
        .lines()
        .find(|l| l.trim_start().starts_with("amount_mismatch"))
        .unwrap();
    assert!(
        reason.contains("150.50 EUR") && reason.contains("concept matches, amount differs"),
        "{reason}"
    );
}

#[test]
fn bank_transactions_give_money_in_and_money_out_apart_per_currency() {
    let mut fixture = Fixture::new();
    // A second currency, with credits only.
    let usd = transaction(
        "tx_usd",
        cp_recon::domain::Direction::Credit,
        money("186.00", "USD"),
        "no concept here",
        "Ana",
        "2026-06-25T15:00:00Z",
    );
    fixture.transactions.insert(usd.id.clone(), usd);
    fixture.decisions.transactions.push(tx_finding(
        "tx_usd",
        cp_recon::matching::Reason::NoConcept,
        &[],
        &[],
    ));
    let (report, _dir, files) = written(&fixture);
    let settings = spawn_smtp().settings(TlsMode::None);
    let raw = email::build_message(&report, &files, &settings)
        .unwrap()
        .formatted();
    let mail = parse(&raw);
    let headline = "5 items: 270.48 EUR in (3 credits), 500.00 EUR out (1 debit); \
                    186.00 USD in (1 credit)";
    let text = body_of(&mail, "text/plain");
    let line = format!("  Bank transactions (unmatched_bank_transactions.csv): {headline}");
    assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    let html = body_of(&mail, "text/html");
    assert!(
        html.contains(&format!("Bank transactions — {headline}")),
        "{html}"
    );
}

#[test]
fn the_html_has_no_table_and_fits_a_phone_screen() {
    let (raw, _dir, _files) = message_within(email::MAX_MESSAGE_BYTES);
    let html = body_of(&parse(&raw), "text/html");
    assert!(!html.contains("<table"), "{html}");
    assert!(html.contains("name=\"viewport\" content=\"width=device-width"));
    assert!(!html.contains("width:") || html.contains("max-width:40em"));
    assert!(
        html.contains("Payments — 5 items: 290.49 EUR, 10.00 USD"),
        "{html}"
    );
    assert!(html.contains("<code>ambiguous</code>: more than one candidate"));
    assert!(html.contains("<code>payout_not_seen</code>: finished off-ramp, payout not seen"));
}

#[test]
fn everything_is_attached_when_it_fits() {
    let (raw, _dir, _files) = message_within(email::MAX_MESSAGE_BYTES);
    let mail = parse(&raw);
    let mut names: Vec<String> = attachments(&mail).into_keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "reconciled.csv",
            "report.xlsx",
            "unmatched_bank_transactions.csv",
            "unmatched_payments.csv",
            "unmatched_payouts.csv"
        ]
    );
    assert!(body_of(&mail, "text/plain").contains("attached workbook (report.xlsx) and CSV"));
}

#[test]
fn over_the_limit_only_the_workbook_is_attached_and_the_mail_says_where_the_csvs_are() {
    let limit = 100_000;
    let (raw, _dir, files) = message_within(limit);
    assert!(raw.len() as u64 <= limit, "{} bytes", raw.len());
    let mail = parse(&raw);
    let att = attachments(&mail);
    assert_eq!(att.keys().collect::<Vec<_>>(), ["report.xlsx"]);
    assert_eq!(
        att["report.xlsx"].1,
        std::fs::read(&files.workbook).unwrap()
    );
    let dir = files.dir.display().to_string();
    for body in [body_of(&mail, "text/plain"), body_of(&mail, "text/html")] {
        assert!(
            body.contains("The CSV files are not attached") && body.contains(&dir),
            "{body}"
        );
    }
}

#[test]
fn when_even_the_workbook_is_too_large_nothing_is_attached_and_the_mail_says_where() {
    let limit = 5_000;
    let (raw, _dir, files) = message_within(limit);
    let mail = parse(&raw);
    assert!(attachments(&mail).is_empty());
    let text = body_of(&mail, "text/plain");
    assert!(
        text.contains("too large to attach") && text.contains(&files.dir.display().to_string()),
        "{text}"
    );
    // The summary itself is still there.
    assert!(text.contains("Need attention: 10"));
}

#[test]
fn a_mail_with_hundreds_of_items_lists_twenty_of_each_and_counts_the_rest() {
    let (mut report, _dir, files) = written(&Fixture::new());
    report.urgent = (1..=432)
        .map(|i| format!("unexplained_debit: debit TX{i:05}, 10.00 EUR"))
        .collect();
    report.decisions = (1..=300)
        .map(|i| format!("2026-12-02 08:44 ana dismissed payment P{i:05} (bank fee)"))
        .collect();
    let settings = spawn_smtp().settings(TlsMode::None);
    let raw = email::build_message(&report, &files, &settings)
        .unwrap()
        .formatted();
    let mail = parse(&raw);
    let text = body_of(&mail, "text/plain");
    let html = body_of(&mail, "text/html");
    for (prefix, more) in [
        (
            "unexplained_debit: debit TX",
            "… and 412 more (in the workbook and the unmatched_*.csv files)",
        ),
        (
            "2026-12-02 08:44 ana dismissed payment P",
            "… and 280 more (`cp-recon history <id>` tells each)",
        ),
    ] {
        let shown = text
            .lines()
            .filter(|l| l.trim_start().starts_with(prefix))
            .count();
        assert_eq!(shown, 20, "{prefix}\n{text}");
        assert!(text.lines().any(|l| l.trim() == more), "{more} in\n{text}");
        assert_eq!(html.matches(prefix).count(), 20, "{prefix}\n{html}");
        let more = askama::filters::escape(more, askama::filters::Html)
            .unwrap()
            .to_string();
        assert!(html.contains(&more), "{more} in\n{html}");
    }
    // The counts above the lists are of every item.
    assert!(text.starts_with("NEEDS A PERSON TODAY: 432 new urgent items"));
    assert!(text.contains("Decisions since the last report: 300"));
    // The message stays short: the lists no longer grow it.
    assert!(text.lines().count() < 120, "{} lines", text.lines().count());
}
