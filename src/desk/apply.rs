//! `apply`: the decisions finance wrote into a report it hands back, a CSV or the
//! workbook. Pure: [`read`] reads the file's bytes ([`parse`] a CSV,
//! [`super::workbook::parse`] every sheet of a workbook that has an `action` column),
//! [`plan`] checks every row against the facts the store holds and either lists every
//! error (with its line, or its sheet and row) or gives the steps to take. Nothing is
//! applied unless every row is valid; a row that is already so (a dismiss of a
//! dismissed item, an approve of a pair already reconciled) is a step of nothing, so
//! the same file applied twice does nothing the second time.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::approve::{self, Facts as PairFacts, Hold, Verdict};
use super::dismiss::{self, Change};
use super::{Action, Decision, ItemRef};
use crate::domain::{BankTransaction, BankTxId, OfframpId, Payment, PaymentId};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Which report file a sheet is, by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `unmatched_payments.csv`
    Payments,
    /// `unmatched_bank_transactions.csv`
    Transactions,
    /// `unmatched_payouts.csv`
    Payouts,
}

/// A report CSV, or one sheet of the workbook, as handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    pub kind: Kind,
    pub rows: Vec<Row>,
}

/// Where a row is, as the person who filled it sees it: a CSV's line, or a workbook's
/// sheet and row number (both from 1, the header's being 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The sheet's position in the workbook and its name; `None` in a CSV.
    sheet: Option<(usize, String)>,
    row: u64,
}

impl Place {
    pub fn line(line: u64) -> Self {
        Self {
            sheet: None,
            row: line,
        }
    }

    pub fn cell(index: usize, sheet: &str, row: u64) -> Self {
        Self {
            sheet: Some((index, sheet.to_owned())),
            row,
        }
    }

    /// What follows the file's name to point at the row: `7` in a CSV,
    /// `unmatched_payments:7` in a workbook (`report.xlsx:unmatched_payments:7`).
    pub fn tag(&self) -> String {
        match &self.sheet {
            None => self.row.to_string(),
            Some((_, name)) => format!("{name}:{}", self.row),
        }
    }
}

/// `line 7`, or `sheet unmatched_payments, row 7`.
impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sheet {
            None => write!(f, "line {}", self.row),
            Some((_, name)) => write!(f, "sheet {name}, row {}", self.row),
        }
    }
}

/// One data row: where it is and its cells by column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub at: Place,
    pub cells: HashMap<String, String>,
}

/// The columns [`plan`] reads; a workbook's other cells (amounts, dates, names) are
/// not looked at.
pub const READ_COLUMNS: &[&str] = &[
    "action",
    "note",
    "payment_id",
    "transaction_id",
    "offramp_id",
    "candidates",
    "suggested_payment_ids",
];

/// The columns that hold ids, which must be text: a number there is an id a
/// spreadsheet turned into a number.
pub const ID_COLUMNS: &[&str] = &[
    "payment_id",
    "transaction_id",
    "offramp_id",
    "candidates",
    "suggested_payment_ids",
];

/// Which report file a header is, if it is one: the unmatched files by their id column.
/// `header` lower-case and trimmed.
pub fn kind_of(header: &[String]) -> Option<Kind> {
    let has = |c: &str| header.iter().any(|h| h == c);
    match header.first().map(String::as_str) {
        _ if has("offramp_id") => Some(Kind::Payouts),
        Some("transaction_id") => Some(Kind::Transactions),
        _ if has("payment_id") && !has("reconciled_at") => Some(Kind::Payments),
        _ => None,
    }
}

/// Reads a file handed back: a workbook (an `.xlsx`, `.ods` or `.xls`, known by its
/// first bytes) sheet by sheet, else a CSV. A file named as a workbook that is not one
/// is refused rather than read as a CSV. `extension` is the file name's, if any.
pub fn read(bytes: &[u8], extension: Option<&str>) -> Result<Vec<Sheet>, Vec<String>> {
    if super::workbook::is_workbook(bytes) {
        return super::workbook::parse(bytes);
    }
    let ext = extension.unwrap_or("").to_ascii_lowercase();
    if matches!(ext.as_str(), "xlsx" | "xlsm" | "xls" | "ods") {
        return Err(vec![format!(
            "the file is named .{ext} but is not a workbook (not a zip or an Excel 97 file): \
             save it again from the spreadsheet as .xlsx"
        )]);
    }
    parse(bytes).map(|s| vec![s])
}

impl Row {
    fn get(&self, column: &str) -> &str {
        self.cells.get(column).map_or("", |s| s.trim())
    }

    fn ids(&self, column: &str) -> Vec<&str> {
        self.get(column).split_whitespace().collect()
    }
}

/// Reads a report CSV: with or without a UTF-8 BOM, `,` or `;` as delimiter (whichever
/// the header row uses), any column order. The header must name the item's id column
/// and `action`. Every row must have as many fields as the header: a note typed with an
/// unquoted delimiter ("bank fee, November") makes one more, and its cells would
/// otherwise be read under the wrong columns (the note cut at the delimiter). On
/// failure, the errors by line: the header's, or every row of the wrong length.
pub fn parse(bytes: &[u8]) -> Result<Sheet, Vec<String>> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let count = |c: u8| first.iter().filter(|b| **b == c).count();
    let delimiter = if count(b';') > count(b',') {
        b';'
    } else {
        b','
    };
    // Flexible, so that a row of the wrong length is counted here (and every one is
    // listed with both counts) rather than stopping the reader at the first.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| vec![format!("line 1: cannot read the header: {e}")])?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let has = |c: &str| header.iter().any(|h| h == c);
    let kind = match kind_of(&header) {
        Some(k) => k,
        None if has("reconciled_at") => {
            return Err(vec![
                "reconciled.csv lists what is done: it has nothing to apply".into(),
            ]);
        }
        None => {
            return Err(vec![
                "line 1: not a report file: the header names no payment_id, transaction_id or offramp_id"
                    .into(),
            ]);
        }
    };
    if !has("action") {
        return Err(vec![
            "line 1: the header has no `action` column to apply".into(),
        ]);
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(bytes, p.byte()));
            vec![format!("line {line}: cannot read the row: {e}")]
        })?;
        let line = record.position().map_or(0, |p| line_at(bytes, p.byte()));
        if record.len() != header.len() {
            let hint = if record.len() > header.len() {
                format!(
                    "; a cell that holds a `{}` must be in double quotes",
                    char::from(delimiter)
                )
            } else {
                String::new()
            };
            errors.push(format!(
                "line {line}: {} fields where the header has {}{hint}",
                record.len(),
                header.len()
            ));
            continue;
        }
        let cells = header
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.clone(), v.to_owned()))
            .collect();
        rows.push(Row {
            at: Place::line(line),
            cells,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Sheet { kind, rows })
}

/// The line (from 1) a record starting at byte `at` is on. The reader may place a
/// record's start on the line ending before it (a CRLF file's `\n`), so line breaks at
/// `at` are skipped first.
fn line_at(bytes: &[u8], at: u64) -> u64 {
    let mut at = usize::try_from(at).unwrap_or(bytes.len()).min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
        at += 1;
    }
    1 + bytes[..at].iter().filter(|b| **b == b'\n').count() as u64
}

/// What the store holds about the items a sheet names.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub payments: HashMap<PaymentId, Payment>,
    pub transactions: HashMap<BankTxId, BankTransaction>,
    pub offramps: HashSet<OfframpId>,
    /// The match holding each payment or credit, if any.
    pub payment_holds: HashMap<PaymentId, Hold>,
    pub credit_holds: HashMap<BankTxId, Hold>,
    /// Dismissals in force.
    pub dismissed: HashMap<ItemRef, Decision>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Approve {
        at: Place,
        payment: Box<Payment>,
        credit: Box<BankTransaction>,
        note: Option<String>,
    },
    /// A dismiss or a reopen.
    Record {
        at: Place,
        action: Action,
        item: ItemRef,
        note: Option<String>,
    },
}

/// What a valid sheet comes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Rows that are already so, and why: nothing to do.
    pub unchanged: Vec<(Place, String)>,
}

/// The ids every row names (items and the other side of approves), for the store to
/// look up before [`plan`].
pub fn ids(sheets: &[Sheet]) -> (Vec<PaymentId>, Vec<BankTxId>, Vec<OfframpId>) {
    let (mut ps, mut ts, mut os) = (Vec::new(), Vec::new(), Vec::new());
    for r in sheets.iter().flat_map(|s| &s.rows) {
        ps.extend(
            ["payment_id", "candidates", "suggested_payment_ids"]
                .iter()
                .flat_map(|c| r.ids(c))
                .filter_map(|s| PaymentId::parse(s).ok()),
        );
        ts.extend(
            ["transaction_id", "candidates"]
                .iter()
                .flat_map(|c| r.ids(c))
                .filter_map(|s| BankTxId::parse(s).ok()),
        );
        os.extend(
            r.ids("offramp_id")
                .into_iter()
                .filter_map(|s| OfframpId::parse(s).ok()),
        );
    }
    (ps, ts, os)
}

/// Checks every row of every sheet; the steps to take, or every error with where its
/// row is.
pub fn plan(sheets: &[Sheet], facts: &Facts, by: &str) -> Result<Plan, Vec<String>> {
    if by.trim().is_empty() {
        return Err(vec![super::Refusal::NobodyDecides.to_string()]);
    }
    let mut out = Plan::default();
    let mut errors = Vec::new();
    // Each item, and each side of an approve, is decided once per file (across a
    // workbook's sheets): where, by id.
    let mut decided: HashMap<String, Place> = HashMap::new();
    for (sheet, row) in sheets
        .iter()
        .flat_map(|s| s.rows.iter().map(move |r| (s, r)))
    {
        let action = row.get("action").to_ascii_lowercase();
        if action.is_empty() {
            continue;
        }
        let note = Some(row.get("note"))
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let at = &row.at;
        let result = match Action::parse(&action) {
            None => Err(format!(
                "unknown action {action:?}: write approve, dismiss or reopen, or leave it empty"
            )),
            Some(Action::Approve) => approve_row(sheet.kind, row, facts).map(|v| (v, None)),
            Some(a) => record_row(sheet.kind, row, a, by, note.as_deref(), facts)
                .map(|c| (None, Some((a, c)))),
        };
        let (approved, recorded) = match result {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        let names: Vec<String> = match (&approved, &recorded) {
            (Some(Ok((p, t))), _) => vec![p.id.to_string(), t.id.to_string()],
            (Some(Err((p, t, _))), _) => vec![p.to_string(), t.to_string()],
            (_, Some((_, (item, _)))) => vec![item.id().to_owned()],
            _ => Vec::new(),
        };
        if let Some((name, earlier)) = names.iter().find_map(|n| decided.get(n).map(|l| (n, l))) {
            errors.push(format!(
                "{at}: {name} is already decided on {earlier}; one decision per item"
            ));
            continue;
        }
        for n in names {
            decided.insert(n, at.clone());
        }
        match (approved, recorded) {
            (Some(Ok((p, t))), _) => out.steps.push(Step::Approve {
                at: at.clone(),
                payment: Box::new(p),
                credit: Box::new(t),
                note,
            }),
            (Some(Err((_, _, why))), _) => out.unchanged.push((at.clone(), why)),
            (_, Some((action, (item, Change::Record)))) => out.steps.push(Step::Record {
                at: at.clone(),
                action,
                item,
                note,
            }),
            (_, Some((_, (_, Change::Nothing(why))))) => out.unchanged.push((at.clone(), why)),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// An approve row: the pair to call, or (payment, credit, why) when it is already done.
type Approval = Option<Result<(Payment, BankTransaction), (PaymentId, BankTxId, String)>>;

fn approve_row(kind: Kind, row: &Row, facts: &Facts) -> Result<Approval, String> {
    let one = |cols: &[&str], what: &str| -> Result<String, String> {
        for c in cols {
            let ids = row.ids(c);
            match ids.len() {
                0 => continue,
                1 => return Ok(ids[0].to_owned()),
                _ => {
                    return Err(format!(
                        "approve needs one {what}, and {c} names {}: write the one in a {} column",
                        ids.len(),
                        if what == "payment" {
                            "payment_id"
                        } else {
                            "transaction_id"
                        }
                    ));
                }
            }
        }
        Err(format!(
            "approve needs a {what}: fill a {} column or leave exactly one id in candidates",
            if what == "payment" {
                "payment_id"
            } else {
                "transaction_id"
            }
        ))
    };
    let (p, t) = match kind {
        Kind::Payments => (
            row.get("payment_id").to_owned(),
            one(&["transaction_id", "candidates"], "bank transaction")?,
        ),
        Kind::Transactions => (
            one(
                &["payment_id", "candidates", "suggested_payment_ids"],
                "payment",
            )?,
            row.get("transaction_id").to_owned(),
        ),
        Kind::Payouts => return Err("an off-ramp payout cannot be approved; dismiss it".into()),
    };
    let pid = PaymentId::parse(&p).map_err(|_| "approve needs a payment id".to_owned())?;
    let tid = BankTxId::parse(&t).map_err(|_| "approve needs a transaction id".to_owned())?;
    let pair = PairFacts {
        payment: facts.payments.get(&pid),
        credit: facts.transactions.get(&tid),
        payment_hold: facts.payment_holds.get(&pid),
        credit_hold: facts.credit_holds.get(&tid),
    };
    match approve::check(&pid, &tid, &pair).map_err(|e| e.to_string())? {
        Verdict::Call(pair) => {
            let (p, t) = *pair;
            Ok(Some(Ok((p, t))))
        }
        Verdict::AlreadyDone { match_id } => Ok(Some(Err((
            pid.clone(),
            tid.clone(),
            format!("payment {pid} is already reconciled with {tid} (match {match_id})"),
        )))),
    }
}

fn record_row(
    kind: Kind,
    row: &Row,
    action: Action,
    by: &str,
    note: Option<&str>,
    facts: &Facts,
) -> Result<(ItemRef, Change), String> {
    let (column, item) = match kind {
        Kind::Payments => (
            "payment_id",
            PaymentId::parse(row.get("payment_id"))
                .ok()
                .filter(|p| facts.payments.contains_key(p))
                .map(ItemRef::Payment),
        ),
        Kind::Transactions => (
            "transaction_id",
            BankTxId::parse(row.get("transaction_id"))
                .ok()
                .filter(|t| facts.transactions.contains_key(t))
                .map(ItemRef::Transaction),
        ),
        Kind::Payouts => (
            "offramp_id",
            OfframpId::parse(row.get("offramp_id"))
                .ok()
                .filter(|o| facts.offramps.contains(o))
                .map(ItemRef::Offramp),
        ),
    };
    let item = item.ok_or_else(|| {
        super::Refusal::UnknownItem(format!("{column} {:?}", row.get(column))).to_string()
    })?;
    let change = dismiss::check(action, &item, by, note, facts.dismissed.get(&item))
        .map_err(|e| e.to_string())?;
    Ok((item, change))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{Concept, Currency, Direction, Iban, Money, PaymentStatus};

    fn payment(id: &str) -> Payment {
        Payment {
            id: PaymentId::parse(id).unwrap(),
            external_id: None,
            user_id: None,
            status: PaymentStatus::PendingBank,
            amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
            payment_type: None,
            concept: Some(Concept::parse("120037").unwrap()),
            created_at: Utc::now(),
            updated_at: None,
        }
    }

    fn credit(id: &str, cents: i64) -> BankTransaction {
        BankTransaction {
            id: BankTxId::parse(id).unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount: Money::from_units(Decimal::new(cents, 2), Currency::parse("EUR").unwrap()),
            direction: Direction::Credit,
            concept_text: "120037".into(),
            counterparty_name: None,
            counterparty_iban: None,
            booked_at: Utc::now(),
            value_date: None,
            reconciled_payment_id: None,
        }
    }

    fn facts() -> Facts {
        Facts {
            payments: [payment("P1"), payment("P2"), payment("P3")]
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect(),
            transactions: [credit("T1", 15050), credit("T2", 15050), credit("T3", 100)]
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            ..Facts::default()
        }
    }

    const HEADER: &str = "payment_id,external_id,concept,amount,currency,created_at,days_pending,reason,candidates,difference,detail,action,note";

    fn sheet(rows: &[&str]) -> Sheet {
        let text = format!("{HEADER}\r\n{}\r\n", rows.join("\r\n"));
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_report_file_is_read_with_either_delimiter_and_with_or_without_a_bom() {
        let comma =
            format!("{HEADER}\r\nP1,,120037,150.50,EUR,,1,ambiguous,T1 T2,,,dismiss,fee\r\n");
        let semi = comma.replace(',', ";");
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(semi.as_bytes());
        for bytes in [comma.as_bytes(), semi.as_bytes(), &bom] {
            let s = parse(bytes).unwrap();
            assert_eq!(s.kind, Kind::Payments);
            assert_eq!(s.rows.len(), 1);
            assert_eq!(s.rows[0].at, Place::line(2));
            assert_eq!(s.rows[0].get("action"), "dismiss");
            assert_eq!(s.rows[0].ids("candidates"), ["T1", "T2"]);
        }
    }

    #[test]
    fn a_file_that_is_no_report_or_has_no_action_column_is_refused() {
        assert!(parse(b"a,b\r\n1,2\r\n").is_err());
        assert!(parse(b"payment_id,reason\r\nP1,x\r\n").unwrap_err()[0].contains("action"));
        let rec = parse(b"payment_id,transaction_id,amount,currency,concept,reconciled_at\r\n");
        assert!(rec.unwrap_err()[0].contains("nothing to apply"));
    }

    #[test]
    fn a_row_with_more_or_fewer_fields_than_the_header_is_refused_with_both_counts() {
        let text = format!(
            "{HEADER}\r\nP1,,,,,,,ambiguous,,,,dismiss,bank fee, November\r\n\
             P2,,,,,,,ambiguous,,,,dismiss,\"bank fee, November\"\r\n\
             P3,,,,,,,ambiguous,,,,dismiss\r\n"
        );
        let errors = parse(text.as_bytes()).unwrap_err();
        assert_eq!(
            errors,
            [
                "line 2: 14 fields where the header has 13; a cell that holds a `,` must be in double quotes",
                "line 4: 12 fields where the header has 13",
            ]
        );
    }

    #[test]
    fn an_approve_takes_its_credit_from_a_sole_candidate_or_an_explicit_column() {
        let s = sheet(&[
            "P1,,,,,,,ambiguous,T1,,,approve,",
            "P2,,,,,,,ambiguous,T2 T3,,,,",
            "P3,,,,,,,awaiting_transfer,,,,dismiss,test payment",
        ]);
        let p = plan(std::slice::from_ref(&s), &facts(), "ana").unwrap();
        assert_eq!(p.steps.len(), 2);
        assert!(
            matches!(&p.steps[0], Step::Approve { at, credit, .. } if *at == Place::line(2) && credit.id.as_str() == "T1")
        );
        assert!(matches!(
            &p.steps[1],
            Step::Record {
                at,
                action: Action::Dismiss,
                ..
            } if *at == Place::line(4)
        ));
    }

    #[test]
    fn every_invalid_row_is_listed_with_its_line_and_nothing_is_planned() {
        let s = sheet(&[
            "P1,,,,,,,ambiguous,T1 T2,,,approve,",
            "P2,,,,,,,ambiguous,T1,,,approve,",
            "P3,,,,,,,amount_mismatch,T3,,,approve,",
            "P1,,,,,,,ambiguous,,,,dismiss,",
            "NOPE,,,,,,,ambiguous,,,,dismiss,x",
            "P2,,,,,,,ambiguous,,,,frobnicate,",
        ]);
        let errors = plan(std::slice::from_ref(&s), &facts(), "ana").unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        for (e, line) in errors.iter().zip([2, 4, 5, 6, 7]) {
            assert!(e.starts_with(&format!("line {line}: ")), "{e}");
        }
        assert!(errors[0].contains("names 2"), "{}", errors[0]);
        assert!(errors[1].contains("amounts differ"), "{}", errors[1]);
        assert!(errors[2].contains("note"), "{}", errors[2]);
        assert!(errors[3].contains("NOPE"), "{}", errors[3]);
        assert!(errors[4].contains("frobnicate"), "{}", errors[4]);
    }

    #[test]
    fn one_credit_approved_for_two_payments_is_an_error() {
        let s = sheet(&[
            "P1,,,,,,,ambiguous,T1,,,approve,",
            "P2,,,,,,,ambiguous,T1,,,approve,",
        ]);
        let errors = plan(std::slice::from_ref(&s), &facts(), "ana").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("already decided on line 2"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn rows_that_are_already_so_are_steps_of_nothing() {
        let mut f = facts();
        let item = ItemRef::Payment(PaymentId::parse("P3").unwrap());
        f.dismissed.insert(
            item.clone(),
            Decision {
                id: 1,
                at: Utc::now(),
                by: "ana".into(),
                action: Action::Dismiss,
                item,
                other: None,
                note: Some("test".into()),
                source: "cli".into(),
                run_id: None,
                match_id: None,
                outcome: Some("dismissed".into()),
            },
        );
        f.payment_holds.insert(
            PaymentId::parse("P1").unwrap(),
            Hold {
                match_id: 4,
                payment: PaymentId::parse("P1").unwrap(),
                transaction: BankTxId::parse("T1").unwrap(),
                state: "reconciled".into(),
            },
        );
        let s = sheet(&[
            "P1,,,,,,,ambiguous,T1,,,approve,",
            "P3,,,,,,,awaiting_transfer,,,,dismiss,test payment",
            "P2,,,,,,,awaiting_transfer,,,,reopen,",
        ]);
        let p = plan(std::slice::from_ref(&s), &f, "ana").unwrap();
        assert!(p.steps.is_empty(), "{:?}", p.steps);
        assert_eq!(p.unchanged.len(), 3);
    }

    #[test]
    fn a_credit_row_approves_its_suggested_payment() {
        let text = "transaction_id;iban;direction;booked_at;amount;currency;concept;counterparty_name;reason;candidates;suggested_payment_ids;difference;detail;action;note\r\n\
                    T2;ES..;credit;;150.50;EUR;x;;no_concept;;P2;;;Approve;found the customer\r\n";
        let s = parse(text.as_bytes()).unwrap();
        assert_eq!(s.kind, Kind::Transactions);
        let p = plan(std::slice::from_ref(&s), &facts(), "ana").unwrap();
        assert!(
            matches!(&p.steps[0], Step::Approve { payment, note: Some(n), .. }
            if payment.id.as_str() == "P2" && n == "found the customer")
        );
    }

    #[test]
    fn one_item_decided_on_two_sheets_of_a_workbook_is_an_error_naming_both_places() {
        let mut payments = sheet(&["P1,,,,,,,ambiguous,T1,,,approve,"]);
        payments.rows[0].at = Place::cell(1, "unmatched_payments", 2);
        let cells = [
            ("transaction_id", "T1"),
            ("candidates", "P1"),
            ("action", "approve"),
        ];
        let credits = Sheet {
            kind: Kind::Transactions,
            rows: vec![Row {
                at: Place::cell(2, "unmatched_bank_transactions", 5),
                cells: cells
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
        };
        let errors = plan(&[payments, credits], &facts(), "ana").unwrap_err();
        assert_eq!(
            errors,
            [
                "sheet unmatched_bank_transactions, row 5: P1 is already decided on sheet unmatched_payments, row 2; one decision per item"
            ]
        );
    }
}
