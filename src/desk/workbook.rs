//! `apply` on the workbook (`report.xlsx`, or the same saved as `.ods`): the file finance
//! already has open, whose cells are typed, so that no locale's import turns an amount
//! into text or an id into a number. Pure: the file's bytes in, [`Sheet`]s out.
//!
//! Every sheet whose header row (its first non-empty row) has an `action` column is
//! read; the others (Summary, reconciled) have nothing to apply. Only the columns
//! [`apply::plan`](super::apply::plan) reads are looked at ([`READ_COLUMNS`]), and only
//! in rows with an action: amounts, dates and names are not needed to decide, so they
//! are never turned back from a number into text. Each cell is turned into the text the
//! CSV would hold:
//!
//! - an id column ([`ID_COLUMNS`]) must hold text: a number there is an id a spreadsheet
//!   read as a number (typed without a leading `'`), which has lost any leading zeros,
//!   so it is an error naming the sheet, row and column, never a different id;
//! - `action` and `note`: text as typed; a number as its shortest decimal text (`12`,
//!   `1.5`), a date as `YYYY-MM-DD[ HH:MM:SS]`, a boolean as `TRUE`/`FALSE`;
//! - a cell holding a spreadsheet error (`#N/A`, `#REF!`) is an error.
//!
//! Rows are numbered as the spreadsheet shows them (the first row is 1).

use std::collections::HashMap;
use std::io::Cursor;

use calamine::{Data, DataType as _, Range, Reader, open_workbook_auto_from_rs};

use super::apply::{ID_COLUMNS, Place, READ_COLUMNS, Row, Sheet, kind_of};

/// Whether the bytes are a workbook: a zip archive (`.xlsx`, `.ods`) or an OLE compound
/// file (Excel 97 `.xls`).
pub fn is_workbook(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1")
}

/// The sheets that carry an `action` column, with the rows that have an action; on
/// failure every error, each naming its sheet and row (and column, for a cell).
pub fn parse(bytes: &[u8]) -> Result<Vec<Sheet>, Vec<String>> {
    let mut book = open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|e| vec![format!("cannot read the workbook: {e}")])?;
    let names = book.sheet_names();
    let mut sheets = Vec::new();
    let mut errors = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let range = book
            .worksheet_range(name)
            .map_err(|e| vec![format!("sheet {name}: cannot read it: {e}")])?;
        match sheet(index, name, &range) {
            Ok(Some(s)) => sheets.push(s),
            Ok(None) => {}
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if sheets.is_empty() {
        return Err(vec![format!(
            "no sheet has an `action` column to apply (sheets: {})",
            names.join(", ")
        )]);
    }
    Ok(sheets)
}

/// One sheet: `None` when it has no `action` column.
fn sheet(index: usize, name: &str, range: &Range<Data>) -> Result<Option<Sheet>, Vec<String>> {
    let (Some((top, left)), Some((bottom, right))) = (range.start(), range.end()) else {
        return Ok(None);
    };
    let header: Vec<(u32, String)> = (left..=right)
        .map(|c| {
            let h = match range.get_value((top, c)) {
                Some(Data::String(s)) => s.trim().to_ascii_lowercase(),
                _ => String::new(),
            };
            (c, h)
        })
        .collect();
    if !header.iter().any(|(_, h)| h == "action") {
        return Ok(None);
    }
    let names: Vec<String> = header.iter().map(|(_, h)| h.clone()).collect();
    let header_row = u64::from(top) + 1;
    let Some(kind) = kind_of(&names) else {
        return Err(vec![format!(
            "sheet {name}, row {header_row}: not a sheet of the report: its header has an \
             `action` column but names no payment_id, transaction_id or offramp_id"
        )]);
    };
    let read: Vec<&(u32, String)> = header
        .iter()
        .filter(|(_, h)| READ_COLUMNS.contains(&h.as_str()))
        .collect();
    let action_col = read
        .iter()
        .find(|(_, h)| h == "action")
        .map(|(c, _)| *c)
        .unwrap_or(left);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for r in top + 1..=bottom {
        let at = Place::cell(index, name, u64::from(r) + 1);
        let action = range.get_value((r, action_col)).unwrap_or(&Data::Empty);
        if is_blank(action) {
            continue;
        }
        let mut cells = HashMap::new();
        for (c, h) in &read {
            let value = range.get_value((r, *c)).unwrap_or(&Data::Empty);
            let id = ID_COLUMNS.contains(&h.as_str());
            match cell_text(value, id) {
                Ok(text) => {
                    cells.insert(h.clone(), text);
                }
                Err(why) => errors.push(format!("{at}, column {} ({h}): {why}", letters(*c))),
            }
        }
        rows.push(Row { at, cells });
    }
    if errors.is_empty() {
        Ok(Some(Sheet { kind, rows }))
    } else {
        Err(errors)
    }
}

fn is_blank(d: &Data) -> bool {
    match d {
        Data::Empty => true,
        Data::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The text of a cell as the CSV would hold it, or why it cannot be used.
fn cell_text(d: &Data, id: bool) -> Result<String, String> {
    match d {
        Data::Empty => Ok(String::new()),
        Data::String(s) => Ok(s.clone()),
        Data::Error(e) => Err(format!("the cell holds the error {e}")),
        Data::Int(_) | Data::Float(_) if id => Err(format!(
            "the cell holds the number {}, not an id as text: a spreadsheet reads an id typed \
             without a leading ' as a number and drops its leading zeros; type the id again \
             with a leading ' (as '0120016)",
            number_text(d)
        )),
        _ if id => Err(format!(
            "the cell holds {}, not an id as text; type the id again with a leading '",
            what(d)
        )),
        Data::Int(_) | Data::Float(_) => Ok(number_text(d)),
        Data::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.to_owned()),
        Data::DateTime(_) => Ok(d.as_datetime().map_or_else(
            || d.to_string(),
            |t| {
                if t.time() == chrono::NaiveTime::MIN {
                    t.format("%Y-%m-%d").to_string()
                } else {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                }
            },
        )),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Ok(s.clone()),
    }
}

/// A number as its shortest decimal text: `12`, `1.5`, `-0.01`.
fn number_text(d: &Data) -> String {
    match d {
        Data::Int(i) => i.to_string(),
        // `Display` of an f64 is its shortest round-trip text, without an exponent.
        Data::Float(f) => f.to_string(),
        other => other.to_string(),
    }
}

fn what(d: &Data) -> &'static str {
    match d {
        Data::Bool(_) => "a true/false value",
        Data::DateTime(_) | Data::DateTimeIso(_) => "a date",
        Data::DurationIso(_) => "a duration",
        _ => "a value",
    }
}

/// A column's letters as a spreadsheet shows them: 0 → `A`, 25 → `Z`, 26 → `AA`.
fn letters(col: u32) -> String {
    let mut n = col + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    out.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use rust_xlsxwriter::{Format, Workbook};

    use super::*;
    use crate::desk::apply::Kind;

    const PAYMENTS: &[&str] = &[
        "payment_id",
        "concept",
        "amount",
        "currency",
        "created_at",
        "reason",
        "candidates",
        "action",
        "note",
    ];

    /// A workbook with a Summary sheet, and `unmatched_payments` with these rows (a
    /// cell per column of [`PAYMENTS`]; `None` is left empty).
    fn book(rows: &[[Option<Value>; 9]]) -> Vec<u8> {
        let mut wb = Workbook::new();
        let summary = wb.add_worksheet();
        summary.set_name("Summary").unwrap();
        summary.write_string(0, 0, "run").unwrap();
        summary.write_number(0, 1, 42).unwrap();
        let ws = wb.add_worksheet();
        ws.set_name("unmatched_payments").unwrap();
        for (c, h) in PAYMENTS.iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        let date = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        for (r, row) in rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, v) in row.iter().enumerate() {
                let c = c as u16;
                match v {
                    None => {}
                    Some(Value::Text(s)) => {
                        ws.write_string(r, c, *s).unwrap();
                    }
                    Some(Value::Number(n)) => {
                        ws.write_number(r, c, *n).unwrap();
                    }
                    Some(Value::Date(d)) => {
                        let t =
                            chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M:%S").unwrap();
                        ws.write_datetime_with_format(r, c, t, &date).unwrap();
                    }
                    Some(Value::Bool(b)) => {
                        ws.write_boolean(r, c, *b).unwrap();
                    }
                }
            }
        }
        wb.save_to_buffer().unwrap()
    }

    #[derive(Clone, Copy)]
    enum Value {
        Text(&'static str),
        Number(f64),
        Date(&'static str),
        Bool(bool),
    }
    use Value::{Bool, Date, Number, Text};

    fn row(
        id: Value,
        amount: Value,
        candidates: Option<Value>,
        action: Option<Value>,
        note: Option<Value>,
    ) -> [Option<Value>; 9] {
        [
            Some(id),
            Some(Text("0120016")),
            Some(amount),
            Some(Text("EUR")),
            Some(Date("2026-11-20 08:00:00")),
            Some(Text("ambiguous")),
            candidates,
            action,
            note,
        ]
    }

    #[test]
    fn the_sheets_with_an_action_column_are_read_with_rows_numbered_as_shown() {
        let bytes = book(&[
            row(
                Text("P1"),
                Number(150.5),
                Some(Text("T1")),
                Some(Text("approve")),
                None,
            ),
            row(Text("P2"), Number(2.0), None, None, None),
            row(
                Text("P3"),
                Number(-0.01),
                None,
                Some(Text("dismiss")),
                Some(Text("comisión, noviembre")),
            ),
        ]);
        assert!(is_workbook(&bytes));
        let sheets = parse(&bytes).unwrap();
        assert_eq!(sheets.len(), 1, "Summary has no action column");
        let s = &sheets[0];
        assert_eq!(s.kind, Kind::Payments);
        // P2 has no action: not read.
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.rows[0].at, Place::cell(1, "unmatched_payments", 2));
        assert_eq!(s.rows[0].at.to_string(), "sheet unmatched_payments, row 2");
        assert_eq!(s.rows[0].at.tag(), "unmatched_payments:2");
        assert_eq!(s.rows[0].cells["candidates"], "T1");
        assert_eq!(s.rows[1].at, Place::cell(1, "unmatched_payments", 4));
        assert_eq!(s.rows[1].cells["payment_id"], "P3");
        assert_eq!(s.rows[1].cells["note"], "comisión, noviembre");
        // Amounts and dates are not read at all.
        assert!(!s.rows[0].cells.contains_key("amount"));
        assert!(!s.rows[0].cells.contains_key("created_at"));
    }

    #[test]
    fn a_number_in_an_id_column_is_an_error_naming_sheet_row_and_column() {
        let bytes = book(&[
            row(
                Text("P1"),
                Number(1.0),
                Some(Number(120016.0)),
                Some(Text("approve")),
                None,
            ),
            row(
                Number(42.0),
                Number(1.0),
                None,
                Some(Text("dismiss")),
                Some(Text("x")),
            ),
            row(
                Text("P3"),
                Number(1.0),
                Some(Bool(true)),
                Some(Text("approve")),
                None,
            ),
            // No action: its cells are not looked at.
            row(Number(7.0), Number(1.0), None, None, None),
        ]);
        let errors = parse(&bytes).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with(
                "sheet unmatched_payments, row 2, column G (candidates): the cell holds the number 120016, not an id as text"
            ),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("sheet unmatched_payments, row 3, column A (payment_id): "),
            "{}",
            errors[1]
        );
        assert!(errors[2].contains("row 4, column G"), "{}", errors[2]);
        assert!(errors[2].contains("true/false"), "{}", errors[2]);
    }

    #[test]
    fn an_action_or_note_typed_as_a_number_date_or_boolean_becomes_its_text() {
        let bytes = book(&[
            row(
                Text("P1"),
                Number(1.0),
                None,
                Some(Text("dismiss")),
                Some(Number(2024.0)),
            ),
            row(
                Text("P2"),
                Number(1.0),
                None,
                Some(Text("dismiss")),
                Some(Number(1.5)),
            ),
            row(
                Text("P3"),
                Number(1.0),
                None,
                Some(Text("dismiss")),
                Some(Date("2026-11-20 00:00:00")),
            ),
            row(
                Text("P4"),
                Number(1.0),
                None,
                Some(Number(1.0)),
                Some(Bool(false)),
            ),
        ]);
        let s = &parse(&bytes).unwrap()[0];
        let note = |i: usize| s.rows[i].cells["note"].as_str();
        assert_eq!(
            [note(0), note(1), note(2), note(3)],
            ["2024", "1.5", "2026-11-20", "FALSE"]
        );
        assert_eq!(
            s.rows[3].cells["action"], "1",
            "left for the planner to refuse"
        );
    }

    #[test]
    fn a_workbook_without_an_action_column_or_a_sheet_of_no_report_is_refused() {
        let mut wb = Workbook::new();
        wb.add_worksheet().write_string(0, 0, "run").unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        let e = parse(&bytes).unwrap_err();
        assert!(e[0].contains("no sheet has an `action` column"), "{e:?}");

        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("mine").unwrap();
        ws.write_string(0, 0, "id").unwrap();
        ws.write_string(0, 1, "action").unwrap();
        let e = parse(&wb.save_to_buffer().unwrap()).unwrap_err();
        assert!(
            e[0].starts_with("sheet mine, row 1: not a sheet of the report"),
            "{e:?}"
        );
    }

    #[test]
    fn a_file_is_a_workbook_by_its_first_bytes_and_a_named_workbook_that_is_not_is_refused() {
        use crate::desk::apply::read;
        let csv = b"payment_id,action,note\r\nP1,dismiss,x\r\n";
        assert!(!is_workbook(csv));
        assert_eq!(read(csv, Some("csv")).unwrap().len(), 1);
        let e = read(csv, Some("XLSX")).unwrap_err();
        assert!(e[0].contains("not a workbook"), "{e:?}");
        let bytes = book(&[row(
            Text("P1"),
            Number(1.0),
            None,
            Some(Text("dismiss")),
            Some(Text("x")),
        )]);
        // Told apart by content, whatever the name.
        assert_eq!(read(&bytes, Some("csv")).unwrap()[0].rows.len(), 1);
    }

    #[test]
    fn column_letters_are_as_a_spreadsheet_shows_them() {
        assert_eq!(
            [
                letters(0),
                letters(25),
                letters(26),
                letters(27),
                letters(701),
                letters(702)
            ],
            ["A", "Z", "AA", "AB", "ZZ", "AAA"]
        );
    }
}
