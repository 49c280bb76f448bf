//! The report as one workbook, `report.xlsx`, for people: a Summary sheet, then one
//! sheet per CSV file with the same columns in the same order.
//!
//! Cells are typed, so that a spreadsheet in any locale shows them right without an
//! import dialog: amounts are numbers with two decimals (the currency in its own
//! column), ids, concepts, references and every text from outside are strings (a
//! concept `0120037` keeps its leading zero), times are dates (UTC), day counts are
//! whole numbers. The header row is frozen and carries a filter.
//!
//! Every sheet prints: landscape, scaled to one page wide, its header row repeated at the
//! top of each page, the print area the rows written, and a footer naming the sheet and
//! the page. A long text on the Summary (a failed run's error, the closing note) spans
//! the table's columns, wrapped, in a row tall enough for its lines.
//!
//! An xlsx string cell is never evaluated, so a text starting with `=` needs no visible
//! apostrophe as in the CSV: it is written as the plain text, with the cell's
//! "quote prefix" flag set so that editing it in a spreadsheet keeps it text.
//!
//! Amounts leave `Decimal` only for the cell itself: the value goes through its decimal
//! text to the nearest `f64`, and is written as a number only if that `f64` prints back
//! to the same text with two decimals (always so up to 10^12 with cents; checked by a
//! test). An amount that would not (more decimals, or too large) is written as text, so
//! the workbook never shows a value that differs from the CSV.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_xlsxwriter::{Format, FormatAlign, Workbook, Worksheet, XlsxError};

use super::period::{DECISIONS_SHEET, Period, RECONCILED_SHEET, RESOLVED_SHEET};
use super::{Report, ReportKind, ReportSettings, Seen, Summary, timestamp};
use crate::desk::ItemRef;
use crate::domain::{BankTxId, Concept, Money, PaymentId, format_amount};

/// The workbook's file name, next to the CSVs.
pub const WORKBOOK_FILE: &str = "report.xlsx";

/// Excel's limit on the characters of one cell; longer text is cut (the CSV keeps it).
const MAX_CELL_CHARS: usize = 32_767;
/// Excel's limit on rows per sheet, header included.
const MAX_ROWS: usize = 1_048_576;

/// One cell, typed.
#[derive(Debug, Clone, PartialEq)]
enum Cell<'a> {
    /// Text from outside or from the provider: always a string cell.
    Text(Cow<'a, str>),
    Money(Decimal),
    Count(i64),
    Time(DateTime<Utc>),
    Empty,
}

fn text<'a>(s: impl Into<Cow<'a, str>>) -> Cell<'a> {
    Cell::Text(s.into())
}

fn opt_text(s: Option<&str>) -> Cell<'_> {
    s.map_or(Cell::Empty, |s| Cell::Text(Cow::Borrowed(s)))
}

fn seen_time(s: &Seen) -> Cell<'static> {
    s.first_seen.map_or(Cell::Empty, Cell::Time)
}

fn seen_days(s: &Seen, now: DateTime<Utc>) -> Cell<'static> {
    s.days_open(now).map_or(Cell::Empty, Cell::Count)
}

fn seen_new(s: &Seen) -> Cell<'static> {
    text(if s.new { "yes" } else { "no" })
}

fn ids<'a>(list: impl IntoIterator<Item = &'a str>) -> Cell<'static> {
    let joined = list.into_iter().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        Cell::Empty
    } else {
        Cell::Text(Cow::Owned(joined))
    }
}

/// The amount as the number a cell holds, when that number shows exactly the amount
/// with two decimals; `None` otherwise (the caller writes the text instead).
pub fn amount_as_f64(d: Decimal) -> Option<f64> {
    let exact = format_amount(d);
    let f: f64 = exact.parse().ok()?;
    (f.is_finite() && format!("{f:.2}") == exact).then_some(f)
}

/// The formats the sheets use, made once.
struct Formats {
    header: Format,
    text: Format,
    /// Text that a spreadsheet would otherwise take for a formula if edited.
    guarded: Format,
    money: Format,
    count: Format,
    time: Format,
    /// Long text over merged cells: wrapped, from the top.
    wrap: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold(),
            text: Format::new().set_num_format("@"),
            guarded: Format::new().set_num_format("@").set_quote_prefix(),
            money: Format::new().set_num_format("#,##0.00"),
            count: Format::new().set_num_format("0"),
            time: Format::new()
                .set_num_format("yyyy-mm-dd hh:mm:ss")
                .set_align(FormatAlign::Left),
            wrap: Format::new()
                .set_num_format("@")
                .set_text_wrap()
                .set_align(FormatAlign::Top),
        }
    }
}

/// Whether a spreadsheet would read the text as a formula if a person typed it.
fn formula_like(s: &str) -> bool {
    matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

fn write_cell(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    cell: &Cell<'_>,
    f: &Formats,
) -> Result<(), XlsxError> {
    match cell {
        Cell::Text(s) => {
            let s: Cow<'_, str> = if s.chars().count() > MAX_CELL_CHARS {
                let cut: String = s.chars().take(MAX_CELL_CHARS - 1).collect();
                Cow::Owned(format!("{cut}…"))
            } else {
                Cow::Borrowed(s.as_ref())
            };
            let format = if formula_like(&s) {
                &f.guarded
            } else {
                &f.text
            };
            ws.write_string_with_format(row, col, s.as_ref(), format)?;
        }
        Cell::Money(d) => match amount_as_f64(*d) {
            Some(n) => {
                ws.write_number_with_format(row, col, n, &f.money)?;
            }
            None => {
                ws.write_string_with_format(row, col, format_amount(*d), &f.text)?;
            }
        },
        Cell::Count(n) => {
            // Day counts: far below 2^53, exact as f64.
            ws.write_number_with_format(row, col, *n as f64, &f.count)?;
        }
        Cell::Time(t) => {
            ws.write_datetime_with_format(row, col, t.naive_utc(), &f.time)?;
        }
        Cell::Empty => {}
    }
    Ok(())
}

/// The page setup of every sheet: landscape, one page wide (as many tall as it takes),
/// `header_row` repeated on each page, the print area the cells written, and a footer
/// with the sheet's name and the page number.
fn print_setup(
    ws: &mut Worksheet,
    header_row: u32,
    last_row: u32,
    last_col: u16,
) -> Result<(), XlsxError> {
    ws.set_landscape();
    ws.set_print_fit_to_pages(1, 0);
    ws.set_repeat_rows(header_row, header_row)?;
    ws.set_print_area(0, 0, last_row, last_col)?;
    ws.set_footer("&L&A&RPage &P of &N");
    Ok(())
}

/// Lines a text takes wrapped in a cell `width` characters wide (each of its own lines
/// wraps on its own).
fn wrapped_lines(text: &str, width: usize) -> usize {
    text.lines()
        .map(|l| l.chars().count().div_ceil(width.max(1)).max(1))
        .sum::<usize>()
        .max(1)
}

/// Points per line of the default font (Calibri 11).
const LINE_HEIGHT: f64 = 15.0;

/// Writes `text` over columns `first_col..=last_col` of `row`, merged and wrapped, and
/// makes the row tall enough for the lines it wraps to in `width` characters.
fn long_text(
    ws: &mut Worksheet,
    row: u32,
    (first_col, last_col): (u16, u16),
    width: usize,
    text: &str,
    f: &Formats,
) -> Result<(), XlsxError> {
    let text = if text.chars().count() > MAX_CELL_CHARS {
        let cut: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
        Cow::Owned(format!("{cut}…"))
    } else {
        Cow::Borrowed(text)
    };
    let lines = wrapped_lines(&text, width);
    ws.merge_range(row, first_col, row, last_col, &text, &f.wrap)?;
    // Excel's limit on a row's height is 409 points.
    ws.set_row_height(row, (lines as f64 * LINE_HEIGHT).min(409.0))?;
    Ok(())
}

/// Column widths by what the column holds, so that the sheet reads without resizing.
fn width(name: &str) -> f64 {
    match name {
        "amount" | "difference" | "days_pending" | "days_since_finished" | "days_open" => 12.0,
        "currency" | "direction" | "status" | "new" => 10.0,
        "created_at" | "booked_at" | "reconciled_at" | "finished_at" | "first_seen" | "at" => 20.0,
        "run" | "last_run" => 10.0,
        "note" | "outcome" | "resolved" => 36.0,
        "concept" | "counterparty_name" | "detail" | "candidates" | "suggested_payment_ids" => 36.0,
        "reason" => 20.0,
        _ => 28.0,
    }
}

impl Report {
    /// The rows of one file as typed cells, in the order of [`ReportKind::header`].
    fn cells(&self, kind: ReportKind, settings: &ReportSettings) -> Vec<Vec<Cell<'_>>> {
        let opt_money = |d: Option<Decimal>| d.map_or(Cell::Empty, Cell::Money);
        match kind {
            ReportKind::UnmatchedPayments => self
                .unmatched_payments
                .iter()
                .map(|r| {
                    vec![
                        text(r.payment_id.as_str()),
                        opt_text(r.external_id.as_deref()),
                        opt_text(r.concept.as_ref().map(Concept::as_str)),
                        Cell::Money(r.amount.amount()),
                        text(r.amount.currency().as_str()),
                        Cell::Time(r.created_at),
                        Cell::Count(r.days_pending),
                        text(r.reason.as_str()),
                        ids(r.candidates.iter().map(BankTxId::as_str)),
                        opt_money(r.difference),
                        opt_text(r.detail.as_deref()),
                        seen_time(&r.seen),
                        seen_days(&r.seen, self.generated_at),
                        seen_new(&r.seen),
                    ]
                })
                .collect(),
            ReportKind::UnmatchedBankTransactions => self
                .unmatched_transactions
                .iter()
                .map(|r| {
                    let iban = if settings.mask_ibans {
                        r.iban.masked()
                    } else {
                        r.iban.as_str().to_owned()
                    };
                    vec![
                        text(r.transaction_id.as_str()),
                        text(iban),
                        text(r.direction.as_str()),
                        Cell::Time(r.booked_at),
                        Cell::Money(r.amount.amount()),
                        text(r.amount.currency().as_str()),
                        text(r.concept.as_str()),
                        opt_text(r.counterparty_name.as_deref()),
                        text(r.reason.as_str()),
                        ids(r.candidates.iter().map(PaymentId::as_str)),
                        ids(r.suggested_payment_ids.iter().map(PaymentId::as_str)),
                        opt_money(r.difference),
                        opt_text(r.detail.as_deref()),
                        seen_time(&r.seen),
                        seen_days(&r.seen, self.generated_at),
                        seen_new(&r.seen),
                    ]
                })
                .collect(),
            ReportKind::Reconciled => self
                .reconciled
                .iter()
                .map(|r| {
                    reconciled_cells(
                        &r.payment_id,
                        &r.transaction_id,
                        &r.amount,
                        r.concept.as_ref(),
                        r.reconciled_at,
                    )
                })
                .collect(),
            ReportKind::UnmatchedPayouts => self
                .unmatched_payouts
                .iter()
                .map(|r| {
                    vec![
                        text(r.offramp_id.as_str()),
                        opt_text(r.user_id.as_deref()),
                        Cell::Money(r.amount.amount()),
                        text(r.amount.currency().as_str()),
                        text(r.status.as_str()),
                        r.finished_at.map_or(Cell::Empty, Cell::Time),
                        Cell::Count(r.days_since_finished),
                        text(r.reason.as_str()),
                        seen_time(&r.seen),
                        seen_days(&r.seen, self.generated_at),
                        seen_new(&r.seen),
                    ]
                })
                .collect(),
        }
    }

    /// The whole workbook as the bytes of an `.xlsx` file.
    pub fn workbook_bytes(&self, settings: &ReportSettings) -> Result<Vec<u8>, XlsxError> {
        let f = Formats::new();
        let mut wb = Workbook::new();
        let summary = self.summary();
        let mut cut = Vec::new();
        // Filled in last, once it is known whether a sheet had to be cut.
        wb.add_worksheet().set_name("Summary")?;
        for kind in ReportKind::ALL {
            // Rows go to a temporary file as they are written, not into memory: a cold
            // run's report holds tens of thousands of rows.
            let ws = wb.add_worksheet_with_constant_memory()?;
            ws.set_name(sheet_name(kind))?;
            let header = kind.header();
            for (col, name) in header.iter().enumerate() {
                let col = column(col)?;
                ws.write_string_with_format(0, col, *name, &f.header)?;
                ws.set_column_width(col, width(name))?;
            }
            let rows = self.cells(kind, settings);
            let kept = rows.len().min(MAX_ROWS - 1);
            if kept < rows.len() {
                cut.push((kind, rows.len()));
            }
            for (i, cells) in rows.iter().take(kept).enumerate() {
                let row = u32::try_from(i + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
                for (col, cell) in cells.iter().enumerate() {
                    write_cell(ws, row, column(col)?, cell, &f)?;
                }
            }
            let last_row = u32::try_from(kept).map_err(|_| XlsxError::RowColumnLimitError)?;
            let last_col = column(header.len().saturating_sub(1))?;
            ws.set_freeze_panes(1, 0)?;
            ws.autofilter(0, 0, last_row, last_col)?;
            print_setup(ws, 0, last_row, last_col)?;
        }
        if let Some(p) = &self.period {
            write_period(&mut wb, p, &f)?;
        }
        let ws = wb.worksheet_from_name("Summary")?;
        write_summary(ws, &summary, &cut, &f)?;
        wb.save_to_buffer()
    }
}

/// A reconciled pair's cells, as the Reconciled sheet and the period's sheet of
/// reconciles both begin.
fn reconciled_cells<'a>(
    payment: &'a PaymentId,
    transaction: &'a BankTxId,
    amount: &'a Money,
    concept: Option<&'a Concept>,
    at: DateTime<Utc>,
) -> Vec<Cell<'a>> {
    vec![
        text(payment.as_str()),
        text(transaction.as_str()),
        Cell::Money(amount.amount()),
        text(amount.currency().as_str()),
        opt_text(concept.map(Concept::as_str)),
        Cell::Time(at),
    ]
}

/// The period's three sheets: what was reconciled in it (automatic or approved, and
/// by whom), the decisions made in it, and the items open at the last digest or
/// reported since that are no longer open, with how each was resolved. Every row,
/// however many the mail shows.
fn write_period(wb: &mut Workbook, p: &Period, f: &Formats) -> Result<(), XlsxError> {
    let reconciled: Vec<Vec<Cell<'_>>> = p
        .reconciled
        .iter()
        .map(|r| {
            let mut cells = reconciled_cells(
                &r.payment_id,
                &r.transaction_id,
                &r.amount,
                r.concept.as_ref(),
                r.reconciled_at,
            );
            cells.push(Cell::Count(r.run_id));
            cells.push(text(r.approved_by.as_deref().unwrap_or("automatic")));
            cells
        })
        .collect();
    period_sheet(
        wb,
        RECONCILED_SHEET,
        &[
            "payment_id",
            "transaction_id",
            "amount",
            "currency",
            "concept",
            "reconciled_at",
            "run",
            "approved_by",
        ],
        &reconciled,
        f,
    )?;
    let decisions: Vec<Vec<Cell<'_>>> = p
        .decisions
        .iter()
        .map(|d| {
            let (kind, id) = match &d.item {
                ItemRef::Payment(_) => ("payment", d.item.id()),
                ItemRef::Transaction(_) => ("transaction", d.item.id()),
                ItemRef::Offramp(_) => ("offramp", d.item.id()),
                ItemRef::BadRecord(_) => ("bad_record", d.item.id()),
            };
            vec![
                Cell::Time(d.at),
                text(d.by.as_str()),
                text(d.action.as_str()),
                text(kind),
                text(id),
                opt_text(d.other.as_ref().map(BankTxId::as_str)),
                opt_text(d.note.as_deref()),
                opt_text(d.outcome.as_deref()),
            ]
        })
        .collect();
    period_sheet(
        wb,
        DECISIONS_SHEET,
        &[
            "at", "by", "action", "kind", "item_id", "other_id", "note", "outcome",
        ],
        &decisions,
        f,
    )?;
    let resolved: Vec<Vec<Cell<'_>>> = p
        .resolved
        .iter()
        .map(|r| {
            vec![
                text(r.kind.as_str()),
                text(r.item_id.as_str()),
                text(r.reason.as_str()),
                r.amount
                    .as_ref()
                    .map_or(Cell::Empty, |m| Cell::Money(m.amount())),
                opt_text(r.amount.as_ref().map(|m| m.currency().as_str())),
                Cell::Count(r.last_run),
                text(r.how.as_str()),
            ]
        })
        .collect();
    period_sheet(
        wb,
        RESOLVED_SHEET,
        &[
            "kind", "item_id", "reason", "amount", "currency", "last_run", "resolved",
        ],
        &resolved,
        f,
    )
}

/// One sheet of the period: a frozen header with a filter, then the rows.
fn period_sheet(
    wb: &mut Workbook,
    name: &str,
    header: &[&str],
    rows: &[Vec<Cell<'_>>],
    f: &Formats,
) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet_with_constant_memory()?;
    ws.set_name(name)?;
    for (col, h) in header.iter().enumerate() {
        let col = column(col)?;
        ws.write_string_with_format(0, col, *h, &f.header)?;
        ws.set_column_width(col, width(h))?;
    }
    let kept = rows.len().min(MAX_ROWS - 1);
    for (i, cells) in rows.iter().take(kept).enumerate() {
        let row = u32::try_from(i + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        for (col, cell) in cells.iter().enumerate() {
            write_cell(ws, row, column(col)?, cell, f)?;
        }
    }
    let last_row = u32::try_from(kept).map_err(|_| XlsxError::RowColumnLimitError)?;
    let last_col = column(header.len().saturating_sub(1))?;
    ws.set_freeze_panes(1, 0)?;
    ws.autofilter(0, 0, last_row, last_col)?;
    print_setup(ws, 0, last_row, last_col)
}

/// A sheet's name: its CSV file's name without `.csv` (all under Excel's 31 characters).
pub fn sheet_name(kind: ReportKind) -> &'static str {
    let name = kind.file_name();
    name.strip_suffix(".csv").unwrap_or(name)
}

fn column(i: usize) -> Result<u16, XlsxError> {
    u16::try_from(i).map_err(|_| XlsxError::RowColumnLimitError)
}

/// The Summary sheet: how the run went, what needs a person by file, reason and
/// currency, and what was reconciled per currency.
fn write_summary(
    ws: &mut Worksheet,
    s: &Summary,
    cut: &[(ReportKind, usize)],
    f: &Formats,
) -> Result<(), XlsxError> {
    // Wide enough for the longest reason's label (what it means) on one line.
    const WIDTHS: [f64; 6] = [30.0, 22.0, 52.0, 10.0, 16.0, 10.0];
    for (col, w) in WIDTHS.iter().enumerate() {
        ws.set_column_width(column(col)?, *w)?;
    }
    // The characters a line of merged columns holds, rounded down for wide letters.
    let span = |cols: std::ops::RangeInclusive<usize>| -> usize {
        (WIDTHS[cols].iter().sum::<f64>() * 0.9) as usize
    };
    let run = &s.run;
    let mut row = 0u32;
    // A key and its value; a text that can run long (`wrap`) spans the table's columns,
    // wrapped.
    let mut line = |ws: &mut Worksheet, key: &str, value: Cell<'_>, wrap: bool| {
        ws.write_string_with_format(row, 0, key, &f.header)?;
        match value {
            Cell::Text(t) if wrap => long_text(ws, row, (1, 5), span(1..=5), &t, f)?,
            value => write_cell(ws, row, 1, &value, f)?,
        }
        row += 1;
        Ok::<_, XlsxError>(())
    };
    line(ws, "run", Cell::Count(run.run_id), false)?;
    line(ws, "started_at (UTC)", Cell::Time(run.started_at), false)?;
    line(ws, "finished_at (UTC)", Cell::Time(run.finished_at), false)?;
    let yes_no = |b: bool| text(if b { "yes" } else { "no" });
    line(ws, "sync_complete", yes_no(run.sync_complete), false)?;
    line(ws, "dry_run", yes_no(run.dry_run), false)?;
    if let Some(err) = &run.failed {
        line(ws, "run_failed", text(err.as_str()), true)?;
    }
    if let Some(stopped) = &run.stopped {
        line(ws, "run_stopped", text(stopped.as_str()), true)?;
    }
    for (kind, total) in cut {
        let what = format!(
            "{}: {} rows, the first {} shown; all are in {}",
            sheet_name(*kind),
            total,
            MAX_ROWS - 1,
            kind.file_name()
        );
        line(ws, "sheet_cut", text(what), true)?;
    }
    line(
        ws,
        "need_attention",
        Cell::Count(count(s.attention_count)),
        false,
    )?;
    line(
        ws,
        "reconciled",
        Cell::Count(count(s.reconciled_count)),
        false,
    )?;
    if let Some(p) = &s.period {
        line(ws, "period", text(p.heading()), true)?;
        line(
            ws,
            "reconciled_in_period",
            Cell::Count(count(p.reconciled.len())),
            false,
        )?;
        line(
            ws,
            "decisions_in_period",
            Cell::Count(count(p.decisions.len())),
            false,
        )?;
        line(
            ws,
            "resolved_in_period",
            Cell::Count(count(p.resolved.len())),
            false,
        )?;
    }

    let mut row = row + 1;
    let header = [
        "sheet",
        "reason",
        "what it means",
        "count",
        "amount",
        "currency",
    ];
    for (col, name) in header.iter().enumerate() {
        ws.write_string_with_format(row, column(col)?, *name, &f.header)?;
    }
    let table_top = row;
    for l in &s.attention {
        row += 1;
        let cells = [
            text(sheet_name(l.kind)),
            text(l.reason.as_str()),
            text(l.reason.label()),
            Cell::Count(count(l.count)),
            Cell::Money(l.total),
            text(l.currency.as_str()),
        ];
        for (col, cell) in cells.iter().enumerate() {
            write_cell(ws, row, column(col)?, cell, f)?;
        }
    }
    for t in &s.reconciled {
        row += 1;
        let cells = [
            text(sheet_name(ReportKind::Reconciled)),
            text("reconciled"),
            text(if run.dry_run {
                "would be reconciled (dry run)"
            } else {
                "reconciled by this run"
            }),
            Cell::Count(count(t.count)),
            Cell::Money(t.total),
            text(t.currency.as_str()),
        ];
        for (col, cell) in cells.iter().enumerate() {
            write_cell(ws, row, column(col)?, cell, f)?;
        }
    }
    ws.autofilter(table_top, 0, row, 5)?;
    row += 2;
    long_text(
        ws,
        row,
        (0, 5),
        span(0..=5),
        &format!(
            "Written for run {} at {}. Times are UTC; amounts are exact to the cent. The \
             CSV files beside this workbook hold the same rows, for machines.",
            run.run_id,
            timestamp(run.finished_at)
        ),
        f,
    )?;
    print_setup(ws, table_top, row, 5)?;
    Ok(())
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    #[test]
    fn amounts_with_cents_up_to_a_trillion_become_the_same_number_with_two_decimals() {
        for s in [
            "0",
            "0.01",
            "-0.01",
            "150.5",
            "999999999999.99",
            "-999999999999.99",
            "1000000000000",
            "0.10",
            "2.00",
        ] {
            let d = Decimal::from_str(s).unwrap();
            let f = amount_as_f64(d).unwrap_or_else(|| panic!("{s} is not a number cell"));
            assert_eq!(format!("{f:.2}"), format_amount(d), "{s}");
        }
    }

    #[test]
    fn an_amount_a_float_cannot_show_exactly_stays_text() {
        for s in [
            "0.005",
            "12345678901234567.89",
            "79228162514264337593543950.33",
        ] {
            assert_eq!(amount_as_f64(Decimal::from_str(s).unwrap()), None, "{s}");
        }
    }

    proptest! {
        /// Every amount in cents with |amount| ≤ 10^12 is a number cell whose value,
        /// shown with two decimals, is the amount: Decimal → f64 never changes it.
        #[test]
        fn every_cent_amount_up_to_ten_to_the_twelve_round_trips_through_the_cell(
            cents in -100_000_000_000_000i64..=100_000_000_000_000i64
        ) {
            let d = Decimal::new(cents, 2);
            let f = amount_as_f64(d);
            prop_assert!(f.is_some(), "{d} not a number cell");
            let f = f.unwrap_or_default();
            prop_assert_eq!(format!("{f:.2}"), format_amount(d));
            // The shortest text of the f64 (what the file stores) reads back as the same f64.
            prop_assert_eq!(f.to_string().parse::<f64>().ok(), Some(f));
        }
    }

    #[test]
    fn sheet_names_are_the_file_names_and_fit_excel() {
        for kind in ReportKind::ALL {
            let name = sheet_name(kind);
            assert!(name.len() <= 31 && !name.ends_with(".csv"), "{name}");
        }
    }

    #[test]
    fn text_is_formula_like_only_at_the_start() {
        assert!(formula_like("=1+1") && formula_like("-5") && formula_like("@x"));
        assert!(!formula_like("a=b") && !formula_like("0120037") && !formula_like(""));
    }
}
