//! `cp-recon apply report.xlsx`: decisions written into the workbook the job produced,
//! as the file is, and as LibreOffice in an es-ES locale saves it again.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use calamine::{Data, Reader};

use crate::desk::{calls_for, job, paid_twice, reported, small, stdout};
use crate::helpers::{TestEnv, code, scalar, text};
use crate::libreoffice::LibreOffice;

/// A cell to write: text, or a number.
enum Put<'a> {
    Text(&'a str),
    Number(&'a str),
}

/// One change to the workbook: in `sheet`, the row whose first cell is `id`, the column
/// named `column` gets `value`.
struct Edit<'a> {
    sheet: &'a str,
    id: &'a str,
    column: &'a str,
    value: Put<'a>,
}

fn letters(col: usize) -> String {
    let mut n = col + 1;
    let mut out = Vec::new();
    while n > 0 {
        out.push(char::from(b'A' + ((n - 1) % 26) as u8));
        n = (n - 1) / 26;
    }
    out.iter().rev().collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where an edit lands: the sheet's part in the zip (the job's workbook numbers its
/// parts in sheet order), the row number and the cell reference.
fn locate(bytes: &[u8], e: &Edit<'_>) -> (String, u32, String) {
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let index = book
        .sheet_names()
        .iter()
        .position(|n| n == e.sheet)
        .unwrap_or_else(|| panic!("no sheet {}", e.sheet));
    let range = book.worksheet_range(e.sheet).unwrap();
    let rows: Vec<&[Data]> = range.rows().collect();
    let col = rows[0]
        .iter()
        .position(|h| *h == e.column)
        .unwrap_or_else(|| panic!("no column {} in {}", e.column, e.sheet));
    let row = rows
        .iter()
        .position(|r| r[0] == e.id)
        .unwrap_or_else(|| panic!("no row {} in {}", e.id, e.sheet)) as u32
        + 1;
    (
        format!("xl/worksheets/sheet{}.xml", index + 1),
        row,
        format!("{}{row}", letters(col)),
    )
}

/// The column number (from 0) of a cell reference such as `AB12`.
fn column_of(reference: &str) -> usize {
    reference
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .fold(0, |n, c| n * 26 + (c as usize - 'A' as usize + 1))
        - 1
}

/// Sets one cell in a worksheet's XML: the cell replaced if it is there, else put in
/// its place among the row's cells.
fn set_cell(xml: &str, row: u32, reference: &str, value: &Put<'_>) -> String {
    let cell = match value {
        Put::Text(s) => format!(
            r#"<c r="{reference}" t="inlineStr"><is><t>{}</t></is></c>"#,
            escape(s)
        ),
        Put::Number(n) => format!(r#"<c r="{reference}"><v>{n}</v></c>"#),
    };
    let open = format!(r#"<row r="{row}""#);
    let start = xml.find(&open).expect("the row is in the sheet");
    let body = start + xml[start..].find('>').unwrap() + 1;
    let end = start + xml[start..].find("</row>").unwrap();
    // The row's cells, each `<c .../>` or `<c ...>...</c>`.
    let mut cells: Vec<String> = Vec::new();
    let mut rest = &xml[body..end];
    while let Some(at) = rest.find("<c ") {
        rest = &rest[at..];
        let tag_end = rest.find('>').unwrap();
        let len = if rest[..tag_end].ends_with('/') {
            tag_end + 1
        } else {
            rest.find("</c>").unwrap() + 4
        };
        cells.push(rest[..len].to_owned());
        rest = &rest[len..];
    }
    let refer = |c: &str| {
        let at = c.find(" r=\"").unwrap() + 4;
        c[at..at + c[at..].find('"').unwrap()].to_owned()
    };
    cells.retain(|c| refer(c) != reference);
    let col = column_of(reference);
    let at = cells
        .iter()
        .position(|c| column_of(&refer(c)) > col)
        .unwrap_or(cells.len());
    cells.insert(at, cell);
    format!("{}{}{}", &xml[..body], cells.concat(), &xml[end..])
}

/// A copy of `src` at `dest` with the edits made in its XML; every other part is
/// copied as it is. Returns each edit's row number.
fn edit_workbook(src: &Path, dest: &Path, edits: &[Edit<'_>]) -> Vec<u32> {
    let bytes = std::fs::read(src).unwrap();
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        parts.push((f.name().unwrap().into_owned(), data));
    }
    let mut rows = Vec::new();
    for e in edits {
        let (part, row, reference) = locate(&bytes, e);
        let (_, data) = parts.iter_mut().find(|(n, _)| *n == part).unwrap();
        let xml = String::from_utf8(std::mem::take(data)).unwrap();
        *data = set_cell(&xml, row, &reference, &e.value).into_bytes();
        rows.push(row);
    }
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in &parts {
        out.start_file(name.as_str(), options).unwrap();
        out.write_all(data).unwrap();
    }
    std::fs::write(dest, out.finish().unwrap().into_inner()).unwrap();
    rows
}

/// The decisions recorded: `(action, item_id, note, source)` by id.
fn decisions(env: &TestEnv) -> Vec<(String, String, Option<String>, String)> {
    let store = env.store();
    let mut st = store
        .connection()
        .prepare("SELECT action, item_id, note, source FROM decisions ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What the edited workbook asks: approve the payment paid twice with its first
/// credit (from the credit's row, whose sole candidate is the payment), and dismiss a
/// payment awaiting its transfer with a note holding a comma.
struct Asked {
    payment: String,
    credit: String,
    waiting: String,
}

const NOTE: &str = "comisión, noviembre";

fn ask(env: &TestEnv) -> Asked {
    let (payment, credits) = paid_twice(env);
    let credit = credits[0].clone();
    let candidates = reported(env, 1, "transaction", "ambiguous")
        .into_iter()
        .find(|(t, _)| *t == credit)
        .map(|(_, c)| c)
        .unwrap();
    assert_eq!(
        candidates,
        std::slice::from_ref(&payment),
        "the credit names one payment"
    );
    let (waiting, _) = reported(env, 1, "payment", "awaiting_transfer")[0].clone();
    Asked {
        payment,
        credit,
        waiting,
    }
}

fn edits(a: &Asked) -> Vec<Edit<'_>> {
    vec![
        Edit {
            sheet: "unmatched_bank_transactions",
            id: &a.credit,
            column: "action",
            value: Put::Text("approve"),
        },
        Edit {
            sheet: "unmatched_bank_transactions",
            id: &a.credit,
            column: "note",
            value: Put::Text("first of two transfers"),
        },
        Edit {
            sheet: "unmatched_payments",
            id: &a.waiting,
            column: "action",
            value: Put::Text("dismiss"),
        },
        Edit {
            sheet: "unmatched_payments",
            id: &a.waiting,
            column: "note",
            value: Put::Text(NOTE),
        },
    ]
}

/// Applies `file` (dry run, then for real, then again) and checks what was done.
async fn applies(env: &TestEnv, file: &Path, a: &Asked, credit_row: u32, waiting_row: u32) {
    let path = file.to_str().unwrap();
    let out = env.run(&["apply", path, "--by", "ana", "--dry-run"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "report.xlsx:unmatched_bank_transactions:{credit_row}: would approve payment {}",
            a.payment
        )),
        "{}",
        text(&out)
    );
    assert!(calls_for(env, &a.payment).is_empty());

    let out = env.run(&["apply", path, "--by", "ana"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(calls_for(env, &a.payment), std::slice::from_ref(&a.credit));
    let said = format!(
        "report.xlsx:unmatched_payments:{waiting_row}: dismissed payment {}",
        a.waiting
    );
    assert!(stdout(&out).contains(&said), "{said:?} in {}", text(&out));
    let mut done = decisions(env);
    done.sort();
    assert_eq!(
        done,
        [
            (
                "approve".to_owned(),
                a.payment.clone(),
                Some("first of two transfers".to_owned()),
                format!("apply report.xlsx:unmatched_bank_transactions:{credit_row}"),
            ),
            (
                "dismiss".to_owned(),
                a.waiting.clone(),
                Some(NOTE.to_owned()),
                format!("apply report.xlsx:unmatched_payments:{waiting_row}"),
            ),
        ]
    );

    let out = env.run(&["apply", path, "--by", "ana"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", text(&out));
    assert_eq!(calls_for(env, &a.payment), std::slice::from_ref(&a.credit));
    assert_eq!(decisions(env).len(), 2, "the second apply recorded nothing");
}

fn workbook_of_run(env: &TestEnv, run: i64) -> PathBuf {
    env.report_dir(run).join("report.xlsx")
}

/// The sandbox's environment with every report's workbook written (no e-mail here, so
/// none would be mailed).
async fn start() -> TestEnv {
    let env = TestEnv::start(small()).await;
    env.write_config("workbook = \"always\"\n");
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_workbook_with_actions_filled_in_is_applied_across_its_sheets() {
    let env = start().await;
    job(&env).await;
    let a = ask(&env);
    let dir = env.reports.join("handed-back");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.xlsx");
    let rows = edit_workbook(&workbook_of_run(&env, 1), &file, &edits(&a));
    applies(&env, &file, &a, rows[0], rows[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_where_an_id_belongs_applies_nothing_and_names_sheet_row_and_column() {
    let env = start().await;
    job(&env).await;
    let a = ask(&env);
    let mut e = edits(&a);
    // The credit's candidate retyped without a leading ': the cell became a number.
    e.push(Edit {
        sheet: "unmatched_bank_transactions",
        id: &a.credit,
        column: "candidates",
        value: Put::Number("120016"),
    });
    let file = env.reports.join("report.xlsx");
    let rows = edit_workbook(&workbook_of_run(&env, 1), &file, &e);
    let calls = env.sandbox.reconcile_calls().len();
    let out = env
        .run(&["apply", file.to_str().unwrap(), "--by", "ana"])
        .await;
    assert_eq!(code(&out), 2, "{}", text(&out));
    let said = format!(
        "sheet unmatched_bank_transactions, row {}, column J (candidates): the cell holds the number 120016, not an id as text",
        rows[0]
    );
    assert!(text(&out).contains(&said), "{said:?} in {}", text(&out));
    assert!(text(&out).contains("nothing was applied"), "{}", text(&out));
    assert_eq!(env.sandbox.reconcile_calls().len(), calls);
    let decided: i64 = scalar(&env.store(), "SELECT COUNT(*) FROM decisions");
    assert_eq!(decided, 0, "not even the valid dismiss is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbook_saved_again_by_libreoffice_in_es_es_is_applied_the_same() {
    let Some(office) = LibreOffice::find("applying a workbook saved by LibreOffice") else {
        return;
    };
    let env = start().await;
    job(&env).await;
    let a = ask(&env);
    let edited = env.reports.join("edited");
    std::fs::create_dir_all(&edited).unwrap();
    let rows = edit_workbook(
        &workbook_of_run(&env, 1),
        &edited.join("report.xlsx"),
        &edits(&a),
    );
    let saved = env.reports.join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    let file = office.resave_workbook(&edited.join("report.xlsx"), &saved);
    assert_ne!(
        std::fs::read(&file).unwrap(),
        std::fs::read(edited.join("report.xlsx")).unwrap(),
        "LibreOffice wrote its own file"
    );
    // As LibreOffice saved it: the amounts are still numbers, the ids still text.
    let mut book = calamine::open_workbook_auto(&file).unwrap();
    let range = book.worksheet_range("unmatched_payments").unwrap();
    let header: Vec<String> = range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|h| h.to_string())
        .collect();
    let amount = header.iter().position(|h| h == "amount").unwrap();
    let row = range.rows().nth(1).unwrap();
    assert!(matches!(row[0], Data::String(_)), "{:?}", row[0]);
    assert!(
        matches!(row[amount], Data::Float(_) | Data::Int(_)),
        "{:?}",
        row[amount]
    );
    applies(&env, &file, &a, rows[0], rows[2]).await;
}
