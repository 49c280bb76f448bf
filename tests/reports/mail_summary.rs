//! The e-mail's summary: totals per file, labels beside reason codes, and a layout
//! that reads on a phone.

use cp_recon::email::{self, TlsMode};
use mailparse::ParsedMail;

use super::helpers::*;
use super::{body_of, written};

/// The message as a mail client sees it.
fn message() -> Vec<u8> {
    let (report, _dir, files) = written(&Fixture::new());
    let settings = spawn_smtp().settings(TlsMode::None);
    email::build_message(&report, &files, &settings)
        .unwrap()
        .formatted()
}

fn parse(raw: &[u8]) -> ParsedMail<'_> {
    mailparse::parse_mail(raw).unwrap()
}

#[test]
fn the_plain_text_gives_each_file_its_count_and_amount_per_currency() {
    let raw = message();
    let text = body_of(&parse(&raw), "text/plain");
    for line in [
        "  Payments (unmatched_payments.csv): 5 items: 290.49 EUR, 10.00 USD",
        "  Bank transactions (unmatched_bank_transactions.csv): 4 items: 770.48 EUR",
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
fn the_html_has_no_table_and_fits_a_phone_screen() {
    let raw = message();
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
