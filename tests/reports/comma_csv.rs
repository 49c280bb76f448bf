//! `[reports] decimal_separator = ","`: CSVs a comma-decimal spreadsheet imports with
//! every amount a number.

use calamine::{Data, Reader, Xlsx, open_workbook};
use cp_recon::report::{ReportKind, ReportSettings};

use super::helpers::*;
use super::libreoffice::LibreOffice;

fn comma_settings() -> ReportSettings {
    ReportSettings {
        delimiter: ';',
        decimal_separator: ',',
        excel_bom: true,
        ..ReportSettings::default()
    }
}

#[test]
fn amounts_and_differences_use_the_configured_decimal_comma() {
    let dir = tempfile::tempdir().unwrap();
    let files = Fixture::new()
        .report()
        .write_dir(dir.path(), &comma_settings())
        .unwrap();
    let bytes = std::fs::read(&files.unmatched_payments).unwrap();
    let t = parse_csv(&bytes[3..], b';');
    let r = t.row("pay_amount");
    assert_eq!(r["amount"], "150,50");
    assert_eq!(r["difference"], "-0,01");
    // Only amounts change: times and ids keep their text.
    assert_eq!(r["created_at"], "2026-06-20T08:00:00Z");
    assert_eq!(r["concept"], "0120037");
    let t = parse_csv(
        &std::fs::read(&files.unmatched_bank_transactions).unwrap()[3..],
        b';',
    );
    assert_eq!(t.row("tx_debit")["amount"], "500,00");
    let t = parse_csv(&std::fs::read(&files.reconciled).unwrap()[3..], b';');
    assert_eq!(t.row("pay_ok2")["amount"], "50,25");
    let t = parse_csv(&std::fs::read(&files.unmatched_payouts).unwrap()[3..], b';');
    assert_eq!(t.row("off_1")["amount"], "250,00");
}

#[test]
fn a_decimal_comma_with_a_comma_delimiter_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let settings = ReportSettings {
        decimal_separator: ',',
        ..ReportSettings::default()
    };
    assert!(
        Fixture::new()
            .report()
            .write_dir(dir.path(), &settings)
            .is_err()
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The `amount` cells of a sheet LibreOffice saved from an imported CSV.
fn imported_amounts(lo: &LibreOffice, settings: &ReportSettings, name: &str) -> Vec<Data> {
    let dir = tempfile::tempdir().unwrap();
    let files = Fixture::new()
        .report()
        .write_dir(dir.path(), settings)
        .unwrap();
    let csv = dir.path().join(format!("{name}.csv"));
    std::fs::copy(files.path(ReportKind::UnmatchedPayments), &csv).unwrap();
    let xlsx = lo.csv_to_workbook(&csv, settings.delimiter, &dir.path().join("lo"));
    let mut wb: Xlsx<_> = open_workbook(&xlsx).unwrap();
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    let mut rows = range.rows();
    let header = rows.next().unwrap();
    let col = header
        .iter()
        .position(|h| h == &Data::String("amount".into()))
        .unwrap();
    rows.map(|r| r[col].clone()).collect()
}

#[test]
fn libreoffice_in_a_spanish_locale_imports_the_semicolon_comma_csv_amounts_as_numbers() {
    let Some(lo) = LibreOffice::find("`;` + `,` CSV import") else {
        return;
    };
    let amounts = imported_amounts(&lo, &comma_settings(), "comma");
    assert_eq!(
        amounts,
        [150.5, 20.0, 20.0, 99.99, 10.0].map(Data::Float),
        "every amount a number, in the file's order"
    );
    // The same file with decimal dots does not: that is what the setting is for.
    let dots = ReportSettings {
        decimal_separator: '.',
        ..comma_settings()
    };
    let amounts = imported_amounts(&lo, &dots, "dots");
    assert_ne!(amounts[0], Data::Float(150.5), "{amounts:?}");
}
