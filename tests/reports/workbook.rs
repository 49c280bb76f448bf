//! `report.xlsx`, read back with a reader crate (`calamine`) and, where it is installed,
//! opened by LibreOffice in a Spanish locale.

use std::io::Read;
use std::path::Path;

use calamine::{Data, DataType, Reader, Xlsx, open_workbook};
use chrono::NaiveDateTime;
use cp_recon::report::{ReportKind, ReportSettings, WORKBOOK_FILE, sheet_name};

use super::helpers::*;
use super::libreoffice::{LibreOffice, read_exported};

/// A sheet as a header and rows of typed cells.
struct Sheet {
    header: Vec<String>,
    rows: Vec<Vec<Data>>,
}

impl Sheet {
    fn read(path: &Path, name: &str) -> Sheet {
        let mut wb: Xlsx<_> = open_workbook(path).unwrap();
        let range = wb.worksheet_range(name).unwrap();
        let mut rows = range.rows().map(<[Data]>::to_vec);
        let header = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
        Sheet {
            header,
            rows: rows.collect(),
        }
    }

    /// The cell in column `name` of the row whose first cell is the string `id`.
    fn cell(&self, id: &str, name: &str) -> &Data {
        let col = self
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        let row = self
            .rows
            .iter()
            .find(|r| r[0] == Data::String(id.to_owned()))
            .unwrap_or_else(|| panic!("no row {id}"));
        &row[col]
    }
}

fn time(s: &str) -> NaiveDateTime {
    ts(s).naive_utc()
}

fn as_time(d: &Data) -> NaiveDateTime {
    d.as_datetime()
        .unwrap_or_else(|| panic!("{d:?} is not a date"))
}

fn written_workbook(settings: &ReportSettings) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let files = Fixture::new()
        .report()
        .write_dir(dir.path(), settings)
        .unwrap();
    assert_eq!(files.workbook, files.dir.join(WORKBOOK_FILE));
    (dir, files.workbook)
}

/// The XML of one sheet part, e.g. `xl/worksheets/sheet2.xml`.
fn part(path: &Path, name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut xml = String::new();
    zip.by_name(name).unwrap().read_to_string(&mut xml).unwrap();
    xml
}

#[test]
fn the_workbook_has_a_summary_then_one_sheet_per_csv_with_the_same_header() {
    let (_dir, path) = written_workbook(&settings());
    let wb: Xlsx<_> = open_workbook(&path).unwrap();
    let mut expected = vec!["Summary".to_owned()];
    expected.extend(ReportKind::ALL.iter().map(|k| sheet_name(*k).to_owned()));
    assert_eq!(wb.sheet_names(), expected);
    for kind in ReportKind::ALL {
        assert_eq!(
            Sheet::read(&path, sheet_name(kind)).header,
            kind.header(),
            "{kind:?}"
        );
    }
}

#[test]
fn amounts_are_numbers_ids_and_concepts_are_text_and_times_are_dates() {
    let (_dir, path) = written_workbook(&settings());
    let p = Sheet::read(&path, "unmatched_payments");
    assert_eq!(p.rows.len(), 5);
    assert_eq!(p.cell("pay_amount", "amount"), &Data::Float(150.5));
    assert_eq!(p.cell("pay_amount", "difference"), &Data::Float(-0.01));
    assert_eq!(
        p.cell("pay_amount", "currency"),
        &Data::String("EUR".into())
    );
    // Leading zeros kept: a concept is text, never a number.
    assert_eq!(
        p.cell("pay_amount", "concept"),
        &Data::String("0120037".into())
    );
    assert_eq!(
        p.cell("pay_await", "concept"),
        &Data::String("0000042".into())
    );
    assert_eq!(p.cell("pay_amb2", "amount"), &Data::Float(20.0));
    assert_eq!(p.cell("pay_amount", "days_pending"), &Data::Float(6.0));
    assert_eq!(
        as_time(p.cell("pay_amount", "created_at")),
        time("2026-06-20T08:00:00Z")
    );
    assert_eq!(p.cell("pay_await", "difference"), &Data::Empty);

    let t = Sheet::read(&path, "unmatched_bank_transactions");
    assert_eq!(t.cell("tx_amount", "amount"), &Data::Float(150.49));
    assert_eq!(
        t.cell("tx_amount", "concept"),
        &Data::String("Pago 0120037".into())
    );
    assert_eq!(
        as_time(t.cell("tx_amount", "booked_at")),
        time("2026-06-21T10:00:00Z")
    );
    assert_eq!(t.cell("tx_debit", "amount"), &Data::Float(500.0));

    let r = Sheet::read(&path, "reconciled");
    assert_eq!(r.cell("pay_ok2", "amount"), &Data::Float(50.25));
    assert_eq!(r.cell("pay_ok2", "concept"), &Data::String("0002".into()));
    assert_eq!(
        as_time(r.cell("pay_ok2", "reconciled_at")),
        time("2026-06-26T10:31:01Z")
    );

    let o = Sheet::read(&path, "unmatched_payouts");
    assert_eq!(o.cell("off_1", "amount"), &Data::Float(250.0));
    assert_eq!(o.cell("off_1", "days_since_finished"), &Data::Float(6.0));
    assert_eq!(
        as_time(o.cell("off_1", "finished_at")),
        time("2026-06-20T09:00:00Z")
    );
}

#[test]
fn formula_looking_text_is_stored_as_the_plain_string_without_an_apostrophe() {
    let (_dir, path) = written_workbook(&settings());
    let p = Sheet::read(&path, "unmatched_payments");
    assert_eq!(
        p.cell("pay_amount", "external_id"),
        &Data::String(HYPERLINK.into())
    );
    assert_eq!(
        p.cell("-1+1", "detail"),
        &Data::String("@cmd".into()),
        "an id starting with '-' is found as text too"
    );
    let t = Sheet::read(&path, "unmatched_bank_transactions");
    assert_eq!(
        t.cell("tx_noconcept", "concept"),
        &Data::String(HYPERLINK.into())
    );
    assert_eq!(t.cell("tx_debit", "concept"), &Data::String("\r=1".into()));
    assert_eq!(
        t.cell("tx_noconcept", "counterparty_name"),
        &Data::String(COMPANY.into())
    );
    // Not a formula cell anywhere, and the cells carry the quote-prefix style.
    for n in 1..=5 {
        let xml = part(&path, &format!("xl/worksheets/sheet{n}.xml"));
        assert!(!xml.contains("<f>"), "sheet{n} has a formula");
    }
    assert!(part(&path, "xl/styles.xml").contains("quotePrefix=\"1\""));
}

#[test]
fn every_data_sheet_has_its_header_frozen_and_filtered() {
    let (_dir, path) = written_workbook(&settings());
    for (n, kind) in ReportKind::ALL.iter().enumerate() {
        let xml = part(&path, &format!("xl/worksheets/sheet{}.xml", n + 2));
        assert!(
            xml.contains(r#"ySplit="1""#) && xml.contains(r#"state="frozen""#),
            "{kind:?} header not frozen"
        );
        assert!(
            xml.contains("<autoFilter ref=\"A1:"),
            "{kind:?} has no filter"
        );
    }
}

#[test]
fn the_summary_sheet_totals_each_reason_as_numbers_with_its_label() {
    let (_dir, path) = written_workbook(&settings());
    let mut wb: Xlsx<_> = open_workbook(&path).unwrap();
    let range = wb.worksheet_range("Summary").unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    let find = |sheet: &str, reason: &str, currency: &str| {
        rows.iter()
            .find(|r| {
                r.len() >= 6
                    && r[0] == Data::String(sheet.into())
                    && r[1] == Data::String(reason.into())
                    && r[5] == Data::String(currency.into())
            })
            .unwrap_or_else(|| panic!("no summary line {sheet} {reason} {currency}"))
            .clone()
    };
    let amb = find("unmatched_payments", "ambiguous", "EUR");
    assert_eq!(amb[2], Data::String("more than one candidate".into()));
    assert_eq!((&amb[3], &amb[4]), (&Data::Float(2.0), &Data::Float(40.0)));
    let rec = find("reconciled", "reconciled", "EUR");
    assert_eq!(
        (&rec[3], &rec[4]),
        (&Data::Float(2.0), &Data::Float(150.25))
    );
    let need = rows
        .iter()
        .find(|r| r[0] == Data::String("need_attention".into()))
        .unwrap();
    assert_eq!(need[1], Data::Float(10.0));
}

#[test]
fn an_amount_beyond_what_a_cell_number_shows_exactly_is_written_as_its_exact_text() {
    let mut f = Fixture::new();
    let r = &mut f.reconciled[0];
    r.amount = money("12345678901234567.89", "EUR");
    let dir = tempfile::tempdir().unwrap();
    let files = f.report().write_dir(dir.path(), &settings()).unwrap();
    let rec = Sheet::read(&files.workbook, "reconciled");
    assert_eq!(
        rec.cell("pay_ok1", "amount"),
        &Data::String("12345678901234567.89".into())
    );
    assert_eq!(rec.cell("pay_ok2", "amount"), &Data::Float(50.25));
}

#[test]
fn libreoffice_in_a_spanish_locale_reads_amounts_as_numbers_and_ids_as_text() {
    let Some(lo) = LibreOffice::find("workbook round trip") else {
        return;
    };
    let (dir, path) = written_workbook(&settings());
    let out = dir.path().join("lo");
    let csvs = lo.workbook_to_csvs(&path, &out);
    let p = read_exported(&csvs, "unmatched_payments");
    // Numbers are unquoted and shown as a Spanish-locale user sees them; every text
    // cell is quoted (text kept as text, leading zeros included).
    let row = p.row("pay_amount");
    assert_eq!(row.field("amount"), ("150,50", false));
    assert_eq!(row.field("difference"), ("-0,01", false));
    assert_eq!(row.field("concept"), ("0120037", true));
    assert_eq!(row.field("external_id"), (HYPERLINK, true));
    assert_eq!(row.field("days_pending"), ("6", false));
    assert_eq!(row.field("created_at"), ("2026-06-20 08:00:00", false));
    assert_eq!(p.row("pay_amb2").field("amount"), ("20,00", false));
    let r = read_exported(&csvs, "reconciled");
    assert_eq!(r.row("pay_ok1").field("amount"), ("100,00", false));
    assert_eq!(r.row("pay_ok1").field("concept"), ("0001", true));
    let t = read_exported(&csvs, "unmatched_bank_transactions");
    assert_eq!(t.row("tx_amount").field("amount"), ("150,49", false));
}

/// A day's report: the fixture's findings and 200 reconciled pairs.
fn typical_day() -> Fixture {
    let mut f = Fixture::new();
    f.reconciled = (0..200)
        .map(|i| {
            reconciled(
                &format!("pay_day{i:03}"),
                &format!("tx_day{i:03}"),
                money("125.50", "EUR"),
                &format!("{i:07}"),
                "2026-06-26T10:31:00Z",
            )
        })
        .collect();
    f
}

#[test]
fn every_sheet_prints_landscape_one_page_wide_with_its_header_row_on_each_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = typical_day().report();
    report.period = Some(a_period());
    let files = report.write_dir(dir.path(), &settings()).unwrap();
    let path = files.workbook;
    let book = part(&path, "xl/workbook.xml");
    let period = [
        "Reconciled since digest",
        "Decisions since digest",
        "Resolved since digest",
    ];
    for (n, name) in std::iter::once("Summary")
        .chain(ReportKind::ALL.iter().map(|k| sheet_name(*k)))
        .chain(period)
        .enumerate()
    {
        assert!(
            book.contains(&format!(r#"<sheet name="{name}""#)),
            "{name}: {book}"
        );
        let xml = part(&path, &format!("xl/worksheets/sheet{}.xml", n + 1));
        assert!(
            xml.contains(r#"<pageSetUpPr fitToPage="1"/>"#),
            "{name}: {xml}"
        );
        assert!(xml.contains(r#"orientation="landscape""#), "{name}");
        assert!(
            xml.contains(r#"fitToHeight="0""#),
            "{name}: one page wide, any tall"
        );
        assert!(
            !xml.contains("fitToWidth="),
            "{name}: fitToWidth is 1, the default"
        );
        assert!(
            xml.contains("<oddFooter>&amp;L&amp;A&amp;RPage &amp;P of &amp;N</oddFooter>"),
            "{name}"
        );
        assert!(
            book.contains(&format!(
                r#"<definedName name="_xlnm.Print_Titles" localSheetId="{n}">"#
            )),
            "{name} repeats no header row: {book}"
        );
        assert!(
            book.contains(&format!(
                r#"<definedName name="_xlnm.Print_Area" localSheetId="{n}">"#
            )),
            "{name} has no print area: {book}"
        );
    }
    // The data sheets repeat their header row, the Summary its table's.
    assert!(book.contains("<definedName name=\"_xlnm.Print_Titles\" localSheetId=\"1\">unmatched_payments!$1:$1</definedName>"), "{book}");
    let reconciled = ReportKind::ALL
        .iter()
        .position(|k| *k == ReportKind::Reconciled)
        .unwrap()
        + 1;
    assert!(
        book.contains(&format!(
            "localSheetId=\"{reconciled}\">reconciled!$A$1:$F$201</definedName>"
        )),
        "the print area is the rows written: {book}"
    );
}

#[test]
fn a_long_error_on_the_summary_is_wrapped_over_the_table_in_a_row_tall_enough() {
    let mut f = Fixture::new();
    let error = format!(
        "incomplete sync: nothing was reconciled: {}\nsecond line",
        "payments: /authenticate: provider unavailable after 5 attempt(s) ".repeat(4)
    );
    f.run.failed = Some(error.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = f.report().write_dir(dir.path(), &settings()).unwrap();
    let xml = part(&files.workbook, "xl/worksheets/sheet1.xml");
    let mut wb: Xlsx<_> = open_workbook(&files.workbook).unwrap();
    let range = wb.worksheet_range("Summary").unwrap();
    let row = range
        .rows()
        .position(|r| r[0] == Data::String("run_failed".into()))
        .expect("a run_failed line");
    assert_eq!(range.rows().nth(row).unwrap()[1], Data::String(error));
    let excel_row = row + 1;
    assert!(
        xml.contains(&format!(r#"<mergeCell ref="B{excel_row}:F{excel_row}"/>"#)),
        "the error spans the table's columns: {xml}"
    );
    // 305 characters at 99 a line (4 lines), then a second line: 5 lines of 15 points.
    assert!(
        xml.contains(&format!(
            r#"<row r="{excel_row}" spans="1:6" ht="75" customHeight="1">"#
        )),
        "the row is not as tall as its lines: {xml}"
    );
    assert!(part(&files.workbook, "xl/styles.xml").contains(r#"wrapText="1""#));
}

#[test]
fn libreoffice_prints_a_days_workbook_in_a_few_pages() {
    let Some(lo) = LibreOffice::find("workbook printed to PDF") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = typical_day()
        .report()
        .write_dir(dir.path(), &settings())
        .unwrap();
    let pages = lo.printed_pages(&files.workbook, &dir.path().join("pdf"));
    // A page for each short sheet, five for the 200 reconciled pairs (31 before the
    // sheets had a page setup).
    assert!(pages <= 10, "{pages} pages");
}

#[test]
fn libreoffice_in_a_spanish_locale_reads_the_digest_period_s_amounts_as_numbers() {
    let Some(lo) = LibreOffice::find("digest period sheets") else {
        return;
    };
    let mut report = Fixture::new().report();
    report.period = Some(a_period());
    let dir = tempfile::tempdir().unwrap();
    let files = report.write_dir(dir.path(), &settings()).unwrap();
    let csvs = lo.workbook_to_csvs(&files.workbook, &dir.path().join("lo"));
    let r = read_exported(&csvs, "Reconciled since digest");
    let row = r.row("pay_period");
    assert_eq!(row.field("amount"), ("1.234,50", false));
    assert_eq!(row.field("currency"), ("EUR", true));
    assert_eq!(row.field("run"), ("5", false));
    assert_eq!(row.field("approved_by"), ("ana", true));
    let c = read_exported(&csvs, "Resolved since digest");
    let row = c.row("transaction");
    assert_eq!(row.field("item_id"), ("0120016", true));
    assert_eq!(row.field("amount"), ("-0,01", false));
}

/// A digest's period: one approved reconcile and one item no longer open.
fn a_period() -> cp_recon::report::period::Period {
    use cp_recon::report::period::{ClosedItem, Period, PeriodInput, PeriodReconcile, Since};
    Period::assemble(PeriodInput {
        since: Since::Digest {
            run_id: 3,
            at: ts("2026-06-25T06:00:00Z"),
        },
        tz: chrono_tz::Europe::Madrid,
        reconciled: vec![PeriodReconcile {
            payment_id: pid("pay_period"),
            transaction_id: tid("tx_period"),
            amount: money("1234.50", "EUR"),
            concept: None,
            reconciled_at: ts("2026-06-25T10:00:00Z"),
            run_id: 5,
            approved_by: Some("ana".into()),
        }],
        decisions: &[],
        closed: vec![ClosedItem {
            kind: "transaction".into(),
            item_id: "0120016".into(),
            reason: "no_concept".into(),
            last_run: 4,
            amount: Some(money("-0.01", "EUR")),
            reconciled_by_run: None,
            approved_by: None,
        }],
        dismissals: &[],
    })
}
