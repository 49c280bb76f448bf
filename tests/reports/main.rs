//! The CSV reports and the report e-mail, end to end: real files in a temporary
//! directory, a real SMTP server on 127.0.0.1.

mod comma_csv;
mod helpers;
mod libreoffice;
mod mail_summary;
mod workbook;

use std::collections::HashMap;

use cp_recon::email::{self, EmailError, TlsMode};
use cp_recon::matching::Reason;
use cp_recon::report::{Report, ReportError, ReportKind, ReportSettings, SendPolicy};
use mailparse::{MailHeaderMap, ParsedMail};

use helpers::*;

const INJECTIONS: [&str; 6] = [HYPERLINK, "+SUM(1,2)", "-1+1", "@cmd", "\t=1", "\r=1"];

fn csv_bytes(report: &Report, kind: ReportKind, settings: &ReportSettings) -> Vec<u8> {
    let mut out = Vec::new();
    report.write_csv(kind, &mut out, settings).unwrap();
    out
}

fn table(report: &Report, kind: ReportKind) -> Table {
    parse_csv(&csv_bytes(report, kind, &settings()), b',')
}

// ---------------------------------------------------------------- CSV files

/// The folder of the fixture's run 42, started 2026-06-26T10:30:00Z, token `7f3a9c`.
const FOLDER: &str = "2026-06-26T103000Z-run42-7f3a9c";

#[test]
fn the_four_files_and_the_workbook_are_written_in_the_runs_own_folder_with_nothing_left_over() {
    let dir = tempfile::tempdir().unwrap();
    let files = Fixture::new()
        .report()
        .write_dir(dir.path(), &settings())
        .unwrap();
    assert_eq!(files.dir, dir.path().join(FOLDER));
    let mut names: Vec<String> = std::fs::read_dir(&files.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
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
    for (kind, path) in files.iter() {
        assert_eq!(path.file_name().unwrap(), kind.file_name());
    }
    let top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(top, [FOLDER], "no staging folder is left");
}

#[test]
fn a_report_folder_that_exists_is_never_written_over_and_the_error_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = Fixture::new()
        .report()
        .write_dir(dir.path(), &settings())
        .unwrap();
    let before = std::fs::read(&first.unmatched_payments).unwrap();
    let err = Fixture::empty()
        .report()
        .write_dir(dir.path(), &settings())
        .unwrap_err();
    assert!(
        matches!(&err, ReportError::FolderExists { path } if *path == first.dir),
        "{err:?}"
    );
    assert!(err.to_string().contains(FOLDER), "{err}");
    assert_eq!(std::fs::read(&first.unmatched_payments).unwrap(), before);
    assert_eq!(read_csv(&first.unmatched_payments).rows.len(), 5);
    let top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(top, [FOLDER], "nothing else was written");
}

#[test]
fn a_half_written_report_of_this_run_is_replaced_and_another_runs_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    // What this run killed while writing its report would have left: its staging folder
    // with one file cut short. No folder of the report's name exists, so nothing looks
    // finished. Another run's staging folder (a version that named folders by run id)
    // is not this run's to remove.
    let partial = dir.path().join(format!(".{FOLDER}.partial"));
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("unmatched_payments.csv"), "payment_id,ext").unwrap();
    let other = dir.path().join(".42.partial");
    std::fs::create_dir_all(&other).unwrap();
    assert!(!dir.path().join(FOLDER).exists());

    let files = Fixture::new()
        .report()
        .write_dir(dir.path(), &settings())
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".42.partial", FOLDER],
        "this run's staging folder is gone"
    );
    assert_eq!(read_csv(&files.unmatched_payments).rows.len(), 5);
}

#[test]
fn every_file_has_its_header_even_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let files = Fixture::empty()
        .report()
        .write_dir(dir.path(), &settings())
        .unwrap();
    let expected: [(ReportKind, &[&str]); 4] = [
        (
            ReportKind::UnmatchedPayments,
            &[
                "payment_id",
                "external_id",
                "concept",
                "amount",
                "currency",
                "created_at",
                "days_pending",
                "reason",
                "candidates",
                "difference",
                "detail",
                "first_seen",
                "days_open",
                "new",
                "action",
                "note",
            ],
        ),
        (
            ReportKind::UnmatchedBankTransactions,
            &[
                "transaction_id",
                "iban",
                "direction",
                "booked_at",
                "amount",
                "currency",
                "concept",
                "counterparty_name",
                "reason",
                "candidates",
                "suggested_payment_ids",
                "difference",
                "detail",
                "first_seen",
                "days_open",
                "new",
                "action",
                "note",
            ],
        ),
        (
            ReportKind::Reconciled,
            &[
                "payment_id",
                "transaction_id",
                "amount",
                "currency",
                "concept",
                "reconciled_at",
            ],
        ),
        (
            ReportKind::UnmatchedPayouts,
            &[
                "offramp_id",
                "user_id",
                "amount",
                "currency",
                "status",
                "finished_at",
                "days_since_finished",
                "reason",
                "first_seen",
                "days_open",
                "new",
                "action",
                "note",
            ],
        ),
    ];
    for (kind, header) in expected {
        let t = read_csv(files.path(kind));
        assert_eq!(t.header, header, "{kind:?}");
        assert!(t.rows.is_empty());
    }
}

#[test]
fn unmatched_payments_carry_reason_candidates_and_exact_amounts() {
    let t = table(&Fixture::new().report(), ReportKind::UnmatchedPayments);
    assert_eq!(t.rows.len(), 5);

    let r = t.row("pay_amount");
    assert_eq!(r["reason"], "amount_mismatch");
    assert_eq!(r["amount"], "150.50");
    assert_eq!(r["currency"], "EUR");
    assert_eq!(r["difference"], "-0.01");
    assert_eq!(r["candidates"], "tx_amount");
    assert_eq!(r["concept"], "0120037");
    assert_eq!(r["created_at"], "2026-06-20T08:00:00Z");
    assert_eq!(r["days_pending"], "6");

    assert_eq!(t.row("pay_amb2")["amount"], "20.00");
    assert_eq!(t.row("pay_amb2")["reason"], "ambiguous");
    assert_eq!(t.row("pay_await")["reason"], "awaiting_transfer");
    assert_eq!(t.row("pay_await")["difference"], "");

    let failed = t.row("'-1+1");
    assert_eq!(failed["reason"], "reconcile_failed");
    assert_eq!(failed["detail"], "'@cmd");
    assert_eq!(failed["amount"], "10.00");
    assert_eq!(failed["currency"], "USD");
}

#[test]
fn ambiguous_credits_list_candidates_and_no_concept_credits_list_suggestions() {
    let t = table(
        &Fixture::new().report(),
        ReportKind::UnmatchedBankTransactions,
    );
    assert_eq!(t.rows.len(), 4);
    let amb = t.row("tx_amb");
    assert_eq!(amb["reason"], "ambiguous");
    assert_eq!(amb["candidates"], "pay_amb1 pay_amb2");
    assert_eq!(amb["suggested_payment_ids"], "");
    let nc = t.row("tx_noconcept");
    assert_eq!(nc["reason"], "no_concept");
    assert_eq!(nc["candidates"], "");
    assert_eq!(nc["suggested_payment_ids"], "pay_await");
    let debit = t.row("tx_debit");
    assert_eq!(debit["direction"], "debit");
    assert_eq!(debit["reason"], "unexplained_debit");
    assert_eq!(debit["amount"], "500.00");
    let am = t.row("tx_amount");
    assert_eq!(
        (am["amount"].as_str(), am["difference"].as_str()),
        ("150.49", "-0.01")
    );
    assert_eq!(am["booked_at"], "2026-06-21T10:00:00Z");
}

#[test]
fn ibans_are_masked_to_country_and_last_four_by_default() {
    let t = table(
        &Fixture::new().report(),
        ReportKind::UnmatchedBankTransactions,
    );
    assert!(t.column("iban").iter().all(|i| *i == "ES…1332"));
    let all = String::from_utf8(csv_bytes(
        &Fixture::new().report(),
        ReportKind::UnmatchedBankTransactions,
        &settings(),
    ))
    .unwrap();
    assert!(!all.contains("2100041845"));
}

#[test]
fn full_ibans_are_written_when_masking_is_off() {
    let s = ReportSettings {
        mask_ibans: false,
        ..settings()
    };
    let bytes = csv_bytes(
        &Fixture::new().report(),
        ReportKind::UnmatchedBankTransactions,
        &s,
    );
    let t = parse_csv(&bytes, b',');
    assert!(t.column("iban").iter().all(|i| *i == IBAN));
}

#[test]
fn reconciled_lists_each_pair_with_amount_and_time() {
    let t = table(&Fixture::new().report(), ReportKind::Reconciled);
    assert_eq!(t.column("payment_id"), ["pay_ok1", "pay_ok2", "pay_ok3"]);
    let r = t.row("pay_ok2");
    assert_eq!(r["transaction_id"], "tx_ok2");
    assert_eq!(r["amount"], "50.25");
    assert_eq!(r["currency"], "EUR");
    assert_eq!(r["concept"], "0002");
    assert_eq!(r["reconciled_at"], "2026-06-26T10:31:01Z");
    assert_eq!(t.row("pay_ok1")["amount"], "100.00");
}

#[test]
fn unmatched_payouts_show_when_they_finished_and_days_since() {
    let t = table(&Fixture::new().report(), ReportKind::UnmatchedPayouts);
    assert_eq!(t.rows.len(), 1);
    let r = t.row("off_1");
    assert_eq!(r["user_id"], "'-1+1");
    assert_eq!(r["amount"], "250.00");
    assert_eq!(r["status"], "finished");
    assert_eq!(r["finished_at"], "2026-06-20T09:00:00Z");
    assert_eq!(r["days_since_finished"], "6");
    assert_eq!(r["reason"], "payout_not_seen");
}

#[test]
fn every_formula_payload_is_neutralised_but_our_negative_difference_stays_a_number() {
    let report = Fixture::new().report();
    let p = table(&report, ReportKind::UnmatchedPayments);
    let t = table(&report, ReportKind::UnmatchedBankTransactions);

    assert_eq!(p.row("pay_amount")["external_id"], format!("'{HYPERLINK}"));
    assert_eq!(p.row("pay_await")["external_id"], "'+SUM(1,2)");
    assert_eq!(t.row("tx_noconcept")["concept"], format!("'{HYPERLINK}"));
    assert_eq!(t.row("tx_amb")["concept"], "'\t=1 555");
    assert_eq!(t.row("tx_debit")["concept"], "'\r=1");
    assert_eq!(t.row("tx_debit")["counterparty_name"], "'@cmd");

    // No cell of any file may start with a trigger, except the numbers we wrote.
    for kind in ReportKind::ALL {
        let tab = table(&report, kind);
        for row in &tab.rows {
            for (col, cell) in row {
                if matches!(col.as_str(), "difference" | "amount") {
                    continue;
                }
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{kind:?}.{col} = {cell:?}"
                );
            }
        }
    }
    // Every payload is still there, readable, behind the apostrophe.
    let cells: Vec<String> = ReportKind::ALL
        .iter()
        .flat_map(|k| table(&report, *k).rows)
        .flat_map(|r| r.into_values())
        .collect();
    for payload in INJECTIONS {
        let guarded = format!("'{payload}");
        assert!(cells.iter().any(|c| c.starts_with(&guarded)), "{payload:?}");
    }
    assert_eq!(p.row("pay_amount")["difference"], "-0.01");
    assert_eq!(t.row("tx_amount")["difference"], "-0.01");
}

/// Every cell of every file that is not one of our numbers starts with no trigger: with
/// ids that are payloads themselves, this covers the id columns and the id lists.
fn assert_no_cell_starts_a_formula(report: &Report) -> usize {
    let mut guarded = 0;
    for kind in ReportKind::ALL {
        let tab = table(report, kind);
        for row in &tab.rows {
            for (col, cell) in row {
                if matches!(col.as_str(), "difference" | "amount") {
                    continue;
                }
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\0']),
                    "{kind:?}.{col} = {cell:?}"
                );
                guarded += usize::from(cell.starts_with('\''));
            }
        }
    }
    guarded
}

#[test]
fn ids_and_id_lists_that_look_like_formulas_are_neutralised_in_every_file() {
    let report = Fixture::new().with_hostile_ids().report();
    assert_no_cell_starts_a_formula(&report);

    let p = table(&report, ReportKind::UnmatchedPayments);
    assert_eq!(p.row("'=pay_amb1")["candidates"], "'+tx_amb");
    let t = table(&report, ReportKind::UnmatchedBankTransactions);
    assert_eq!(t.row("'+tx_amb")["candidates"], "'=pay_amb1 =pay_amb2");
    assert_eq!(
        t.row("'+tx_noconcept")["suggested_payment_ids"],
        "'=pay_await"
    );
    let r = table(&report, ReportKind::Reconciled);
    assert_eq!(r.row("'=pay_ok1")["transaction_id"], "'+tx_ok1");
    let o = table(&report, ReportKind::UnmatchedPayouts);
    assert_eq!(o.rows[0]["offramp_id"], "'@off_1");
}

#[test]
fn a_leading_nul_is_neutralised_like_any_other_trigger() {
    let mut f = Fixture::new();
    let tx = f.transactions.get_mut(&tid("tx_amb")).unwrap();
    tx.counterparty_name = Some("\0=1+1".into());
    let report = f.report();
    assert_no_cell_starts_a_formula(&report);
    let t = table(&report, ReportKind::UnmatchedBankTransactions);
    assert_eq!(t.row("tx_amb")["counterparty_name"], "'\0=1+1");
}

#[test]
fn non_ascii_names_and_names_with_commas_quotes_and_newlines_round_trip() {
    let t = table(
        &Fixture::new().report(),
        ReportKind::UnmatchedBankTransactions,
    );
    assert_eq!(t.row("tx_amount")["counterparty_name"], "José Muñoz");
    assert_eq!(t.row("tx_amb")["counterparty_name"], "山田太郎");
    assert_eq!(t.row("tx_noconcept")["counterparty_name"], COMPANY);
}

#[test]
fn files_have_no_bom_unless_asked_and_the_bom_comes_first_when_asked() {
    let report = Fixture::new().report();
    let plain = csv_bytes(&report, ReportKind::Reconciled, &settings());
    assert!(plain.starts_with(b"payment_id,"));
    let s = ReportSettings {
        excel_bom: true,
        ..settings()
    };
    let bom = csv_bytes(&report, ReportKind::Reconciled, &s);
    assert_eq!(&bom[..3], b"\xEF\xBB\xBF");
    assert_eq!(&bom[3..], &plain[..]);
}

#[test]
fn records_end_in_crlf() {
    let bytes = csv_bytes(
        &Fixture::new().report(),
        ReportKind::Reconciled,
        &settings(),
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(
        "payment_id,transaction_id,amount,currency,concept,reconciled_at\r\n\
         pay_ok1,tx_ok1,100.00,EUR,0001,2026-06-26T10:31:00Z\r\n"
    ));
}

#[test]
fn a_semicolon_delimiter_is_used_when_configured() {
    let s = ReportSettings {
        delimiter: ';',
        ..settings()
    };
    let dir = tempfile::tempdir().unwrap();
    let files = Fixture::new().report().write_dir(dir.path(), &s).unwrap();
    let bytes = std::fs::read(&files.unmatched_payments).unwrap();
    assert!(bytes.starts_with(b"payment_id;external_id;concept;"));
    let t = parse_csv(&bytes, b';');
    assert_eq!(t.row("pay_amount")["amount"], "150.50");
    // A comma inside a cell no longer needs quoting; a semicolon would.
    assert_eq!(t.row("pay_await")["external_id"], "'+SUM(1,2)");
}

#[test]
fn other_delimiters_are_rejected_before_anything_is_written() {
    let s = ReportSettings {
        delimiter: '\t',
        ..settings()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = Fixture::new()
        .report()
        .write_dir(dir.path(), &s)
        .unwrap_err();
    assert!(matches!(err, ReportError::Delimiter('\t')));
    assert!(!dir.path().join("42").exists());
}

#[test]
fn a_finding_whose_record_is_missing_is_an_error_naming_the_id() {
    let mut f = Fixture::new();
    f.transactions.remove(&tid("tx_noconcept"));
    let err = Report::build(&f.input()).unwrap_err();
    assert!(matches!(err, ReportError::MissingRecord { .. }));
    assert!(err.to_string().contains("tx_noconcept"), "{err}");

    let mut f = Fixture::new();
    f.offramps.clear();
    assert!(
        Report::build(&f.input())
            .unwrap_err()
            .to_string()
            .contains("off_1")
    );
}

#[test]
fn the_summary_counts_and_totals_per_file_reason_and_currency() {
    let s = Fixture::new().report().summary();
    assert_eq!(s.attention_count, 10);
    let lines: Vec<(ReportKind, Reason, String, usize, String)> = s
        .attention
        .iter()
        .map(|l| {
            (
                l.kind,
                l.reason,
                l.currency.to_string(),
                l.count,
                cp_recon::domain::format_amount(l.total),
            )
        })
        .collect();
    let l = |k, r, c: &str, n, t: &str| (k, r, c.to_owned(), n, t.to_owned());
    use ReportKind::*;
    assert_eq!(
        lines,
        [
            l(
                UnmatchedPayments,
                Reason::AmountMismatch,
                "EUR",
                1,
                "150.50"
            ),
            l(UnmatchedPayments, Reason::Ambiguous, "EUR", 2, "40.00"),
            l(
                UnmatchedPayments,
                Reason::AwaitingTransfer,
                "EUR",
                1,
                "99.99"
            ),
            l(
                UnmatchedPayments,
                Reason::ReconcileFailed,
                "USD",
                1,
                "10.00"
            ),
            l(
                UnmatchedBankTransactions,
                Reason::AmountMismatch,
                "EUR",
                1,
                "150.49"
            ),
            l(
                UnmatchedBankTransactions,
                Reason::Ambiguous,
                "EUR",
                1,
                "20.00"
            ),
            l(
                UnmatchedBankTransactions,
                Reason::NoConcept,
                "EUR",
                1,
                "99.99"
            ),
            l(
                UnmatchedBankTransactions,
                Reason::UnexplainedDebit,
                "EUR",
                1,
                "500.00"
            ),
            l(UnmatchedPayouts, Reason::PayoutNotSeen, "EUR", 1, "250.00"),
        ]
    );
    assert_eq!(s.reconciled_count, 3);
    let rec: Vec<(String, usize, String)> = s
        .reconciled
        .iter()
        .map(|t| {
            (
                t.currency.to_string(),
                t.count,
                cp_recon::domain::format_amount(t.total),
            )
        })
        .collect();
    assert_eq!(
        rec,
        [
            ("EUR".into(), 2, "150.25".into()),
            ("USD".into(), 1, "10.00".into())
        ]
    );
}

#[test]
fn an_incomplete_sync_or_a_failed_run_needs_attention_even_with_empty_files() {
    let mut f = Fixture::empty();
    assert!(!f.report().needs_attention());
    assert!(!mails(SendPolicy::WhenUnmatched, &f.report()));
    assert!(mails(SendPolicy::Always, &f.report()));
    f.run.sync_complete = false;
    assert!(f.report().needs_attention());
    f.run.sync_complete = true;
    f.run.failed = Some("boom".into());
    assert!(f.report().needs_attention());
    assert!(!mails(SendPolicy::Never, &Fixture::new().report()));
}

/// Whether a run with nothing urgent and no digest due mails its report.
fn mails(policy: SendPolicy, report: &Report) -> bool {
    use cp_recon::report::mail_plan::{Mail, MailFacts, decide};
    decide(&MailFacts {
        policy,
        needs_attention: report.needs_attention(),
        sync_complete: report.run.sync_complete,
        digest_due: false,
        new_urgent: 0,
        outage_alert: false,
    }) == Mail::Full
}

// ---------------------------------------------------------------- e-mail

fn written(f: &Fixture) -> (Report, tempfile::TempDir, cp_recon::report::ReportFiles) {
    let report = f.report();
    let dir = tempfile::tempdir().unwrap();
    let files = report.write_dir(dir.path(), &settings()).unwrap();
    (report, dir, files)
}

fn parts<'a>(m: &'a ParsedMail<'a>, out: &mut Vec<&'a ParsedMail<'a>>) {
    out.push(m);
    for p in &m.subparts {
        parts(p, out);
    }
}

fn attachments(m: &ParsedMail) -> HashMap<String, (String, Vec<u8>)> {
    let mut all = Vec::new();
    parts(m, &mut all);
    all.iter()
        .filter_map(|p| {
            let disp = p.get_content_disposition();
            let name = disp.params.get("filename")?.clone();
            Some((name, (p.ctype.mimetype.clone(), p.get_body_raw().unwrap())))
        })
        .collect()
}

fn body_of(m: &ParsedMail, mimetype: &str) -> String {
    let mut all = Vec::new();
    parts(m, &mut all);
    all.iter()
        .find(|p| p.ctype.mimetype == mimetype && p.get_content_disposition().params.is_empty())
        .unwrap_or_else(|| panic!("no {mimetype} part"))
        .get_body()
        .unwrap()
}

#[tokio::test]
async fn the_report_email_arrives_with_subject_both_bodies_the_workbook_and_the_csvs() {
    let smtp = spawn_smtp();
    let (report, _dir, files) = written(&Fixture::new());
    let settings = smtp.settings(TlsMode::None);
    settings.validate().unwrap();
    let message = email::build_message(&report, &files, &settings).unwrap();
    email::send(message, &settings).await.unwrap();

    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let mail = mailparse::parse_mail(&received[0]).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/mixed");
    assert_eq!(
        mail.headers.get_first_value("Subject").unwrap(),
        "[cp-recon] 2026-06-26: 3 reconciled, 10 need attention"
    );
    assert!(mail.headers.get_first_value("Message-ID").is_some());
    let to = mail.headers.get_first_value("To").unwrap();
    assert!(
        to.contains("finance@example.com") && to.contains("ana@example.com"),
        "{to}"
    );

    let text = body_of(&mail, "text/plain");
    assert!(text.starts_with("Sync complete"), "{text}");
    assert!(text.contains("Need attention: 10"));
    assert!(text.contains("amount_mismatch"));
    assert!(text.contains("150.50 EUR"));
    assert!(text.contains("Reconciled: 3"));
    assert!(text.contains("150.25 EUR") && text.contains("10.00 USD"));
    assert!(text.contains("Run 42"));
    let html = body_of(&mail, "text/html");
    assert!(html.contains("Need attention: 10") && html.contains("payout_not_seen"));

    let att = attachments(&mail);
    assert_eq!(att.len(), 5);
    for kind in ReportKind::ALL {
        let (mime, _) = &att[kind.file_name()];
        assert_eq!(mime, "text/csv");
    }
    let (mime, bytes) = &att["report.xlsx"];
    assert_eq!(
        mime,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(bytes, &std::fs::read(&files.workbook).unwrap());
}

#[tokio::test]
async fn the_attached_csvs_are_the_written_files_byte_for_byte() {
    let smtp = spawn_smtp();
    let (report, _dir, files) = written(&Fixture::new());
    let settings = smtp.settings(TlsMode::None);
    email::send(
        email::build_message(&report, &files, &settings).unwrap(),
        &settings,
    )
    .await
    .unwrap();
    let received = smtp.received();
    let mail = mailparse::parse_mail(&received[0]).unwrap();
    let att = attachments(&mail);
    for (kind, path) in files.iter() {
        let (_, bytes) = &att[kind.file_name()];
        assert_eq!(bytes, &std::fs::read(path).unwrap(), "{kind:?}");
    }
    let t = parse_csv(&att["unmatched_bank_transactions.csv"].1, b',');
    assert_eq!(t.row("tx_noconcept")["counterparty_name"], COMPANY);
    assert_eq!(t.row("tx_amb")["counterparty_name"], "山田太郎");
    assert_eq!(t.row("tx_amount")["difference"], "-0.01");
    let p = parse_csv(&att["unmatched_payments.csv"].1, b',');
    assert_eq!(p.row("pay_amount")["amount"], "150.50");
}

#[tokio::test]
async fn starttls_against_a_server_without_starttls_fails_and_delivers_nothing() {
    let smtp = spawn_smtp();
    let (report, _dir, files) = written(&Fixture::new());
    let settings = smtp.settings(TlsMode::Starttls);
    let message = email::build_message(&report, &files, &settings).unwrap();
    let err = email::send(message, &settings).await.unwrap_err();
    assert!(matches!(err, EmailError::Transport { .. }));
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("tls = starttls") && text.contains("STARTTLS"),
        "{text}"
    );
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn implicit_tls_against_a_plaintext_server_fails_and_delivers_nothing() {
    let smtp = spawn_smtp();
    let (report, _dir, files) = written(&Fixture::new());
    let settings = smtp.settings(TlsMode::Tls);
    let message = email::build_message(&report, &files, &settings).unwrap();
    let err = email::send(message, &settings).await.unwrap_err();
    assert!(matches!(err, EmailError::Transport { .. }));
    let text = err.to_string();
    // rustls reads the server's plain "220" greeting as a corrupt TLS record.
    assert!(
        text.contains("tls = tls") && text.contains("corrupt message"),
        "{text}"
    );
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_that_never_shows_the_password() {
    // Bind and drop: the port is very likely closed for the next instant.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (report, _dir, files) = written(&Fixture::new());
    let mut settings = spawn_smtp().settings(TlsMode::None);
    settings.smtp_port = port;
    settings.username = Some("recon".into());
    settings.password = Some("hunter2-secret".into());
    let message = email::build_message(&report, &files, &settings).unwrap();
    let err = email::send(message, &settings).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?} {settings:?}").contains("hunter2-secret"));
}

#[tokio::test]
async fn an_smtp_error_says_each_cause_once() {
    // Refused, and a TLS handshake with a plain-text server: both chains once said
    // "Connection error: Connection error: …".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (report, _dir, files) = written(&Fixture::new());
    let smtp = spawn_smtp();
    let mut refused = smtp.settings(TlsMode::None);
    refused.smtp_port = port;
    for (settings, says) in [
        (refused, "Connection refused"),
        (smtp.settings(TlsMode::Tls), "corrupt message"),
    ] {
        let message = email::build_message(&report, &files, &settings).unwrap();
        let text = email::send(message, &settings)
            .await
            .unwrap_err()
            .to_string();
        assert!(text.contains(says), "{text}");
        let parts: Vec<&str> = text.split(": ").collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{p:?} said twice: {text}");
        }
    }
}

#[tokio::test]
async fn a_username_without_tls_is_told_that_auth_comes_after_starttls() {
    let smtp = spawn_smtp();
    let (report, _dir, files) = written(&Fixture::new());
    let mut settings = smtp.settings(TlsMode::None);
    settings.username = Some("recon".into());
    settings.password = Some("pw".into());
    let message = email::build_message(&report, &files, &settings).unwrap();
    let text = email::send(message, &settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("offers AUTH only after STARTTLS") && text.contains("tls = \"starttls\""),
        "{text}"
    );
    assert!(smtp.received().is_empty());
}

#[test]
fn the_subject_flags_a_failed_run_an_incomplete_sync_and_a_dry_run() {
    let mut f = Fixture::new();
    f.run.sync_complete = false;
    assert_eq!(
        email::subject(&f.report(), "[cp-recon]"),
        "[cp-recon] INCOMPLETE SYNC — 2026-06-26: 3 reconciled, 10 need attention"
    );
    f.run.failed = Some("database is locked".into());
    f.run.dry_run = true;
    assert_eq!(
        email::subject(&f.report(), "[cp-recon]"),
        "[cp-recon] RUN FAILED: database is locked — INCOMPLETE SYNC — DRY RUN — 2026-06-26: 3 reconciled, 10 need attention"
    );
}

#[test]
fn a_failed_run_s_subject_names_the_failure_briefly_within_120_characters() {
    let mut f = Fixture::new();
    f.run.failed = Some(format!(
        "reconcile step failed: writing intent {}: database disk image is malformed",
        "x".repeat(300)
    ));
    let subject = email::subject(&f.report(), "[cp-recon]");
    assert!(
        subject.starts_with(
            "[cp-recon] RUN FAILED: reconcile step failed: database disk image is malformed — "
        ),
        "{subject}"
    );
    assert!(
        subject.chars().count() <= email::MAX_SUBJECT_CHARS,
        "{subject}"
    );
}

#[test]
fn an_urgent_mail_s_subject_names_what_is_urgent_and_not_the_run_s_totals() {
    use cp_recon::report::mail_plan;
    let mut report = Fixture::new().report();
    let items = mail_plan::urgent_items(&report, &["BADRECORD1".to_owned()]);
    report.urgent = items.iter().map(|i| i.line.clone()).collect();
    report.urgent_items = items;
    report.urgent_only = true;
    let subject = email::subject(&report, "[cp-recon]");
    assert_eq!(
        subject, "[cp-recon] URGENT — 1 unexplained debit, 500.00 EUR and 2 more urgent items",
        "the most urgent kind first, whatever the order of the items"
    );
    // Only the unexplained debit: its count and amount, nothing else.
    report
        .urgent_items
        .retain(|i| i.reason == "unexplained_debit");
    assert_eq!(
        email::subject(&report, "[cp-recon]"),
        "[cp-recon] URGENT — 1 unexplained debit, 500.00 EUR"
    );
    // A digest that also names urgent items keeps its totals.
    report.urgent_only = false;
    assert_eq!(
        email::subject(&report, "[cp-recon]"),
        "[cp-recon] URGENT — 1 unexplained debit, 500.00 EUR — 2026-06-26: 3 reconciled, 10 need attention"
    );
}

#[test]
fn a_failed_run_is_the_first_line_and_outside_text_is_escaped_in_html() {
    let mut f = Fixture::empty();
    f.run.failed = Some("<script>alert('x')</script> & more".into());
    f.run.sync_complete = false;
    let (report, dir, files) = written(&f);
    let settings = spawn_smtp().settings(TlsMode::None);
    let message = email::build_message(&report, &files, &settings).unwrap();
    let eml = dir.path().join("report.eml");
    email::write_eml(&message, &eml).unwrap();
    let raw = std::fs::read(&eml).unwrap();
    let mail = mailparse::parse_mail(&raw).unwrap();
    let text = body_of(&mail, "text/plain");
    assert!(text.starts_with("RUN FAILED: <script>"), "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("INCOMPLETE SYNC"));
    let html = body_of(&mail, "text/html");
    assert!(!html.contains("<script>"));
    // Every character HTML gives a meaning to is written as a character reference.
    let escaped =
        askama::filters::escape("<script>alert('x')</script> & more", askama::filters::Html)
            .unwrap()
            .to_string();
    assert!(!escaped.contains(['<', '>', '\'']), "{escaped}");
    assert!(html.contains(&escaped), "{html}");
    assert!(
        mail.headers
            .get_first_value("Subject")
            .unwrap()
            .starts_with(
                "[cp-recon] RUN FAILED: <script>alert('x')</script> & more — INCOMPLETE SYNC — "
            )
    );
}

#[test]
fn bad_addresses_are_named_by_their_key() {
    let mut s = spawn_smtp().settings(TlsMode::None);
    s.to = vec!["ok@example.com".into(), "nope".into()];
    let err = s.validate().unwrap_err();
    assert!(matches!(err, EmailError::Config { .. }));
    assert!(err.to_string().starts_with("email.to[1]: "), "{err}");
    s.to = vec![];
    assert!(
        s.validate()
            .unwrap_err()
            .to_string()
            .starts_with("email.to: ")
    );
    s.to = vec!["ok@example.com".into()];
    s.from = "not a mailbox".into();
    assert!(
        s.validate()
            .unwrap_err()
            .to_string()
            .starts_with("email.from: ")
    );
}

#[tokio::test]
async fn a_saved_eml_is_sent_later_exactly_as_it_was_written() {
    let smtp = spawn_smtp();
    let (report, dir, files) = written(&Fixture::new());
    let settings = smtp.settings(TlsMode::None);
    let message = email::build_message(&report, &files, &settings).unwrap();
    let eml = dir.path().join("report.eml");
    email::write_eml(&message, &eml).unwrap();
    email::send_eml(&eml, &settings).await.unwrap();

    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let sent = mailparse::parse_mail(&received[0]).unwrap();
    let saved = std::fs::read(&eml).unwrap();
    let saved = mailparse::parse_mail(&saved).unwrap();
    assert_eq!(
        sent.headers.get_first_value("Message-ID"),
        saved.headers.get_first_value("Message-ID")
    );
    assert_eq!(attachments(&sent), attachments(&saved));
    assert_eq!(body_of(&sent, "text/plain"), body_of(&saved, "text/plain"));
}

#[tokio::test]
async fn a_missing_eml_is_a_build_error_and_nothing_is_sent() {
    let smtp = spawn_smtp();
    let dir = tempfile::tempdir().unwrap();
    let err = email::send_eml(&dir.path().join("gone.eml"), &smtp.settings(TlsMode::None))
        .await
        .unwrap_err();
    assert!(matches!(err, EmailError::Build { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(smtp.received().is_empty());
}
