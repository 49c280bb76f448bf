//! CSV reports for the finance team: what was reconciled and what needs a person, one
//! directory of four files per run, plus the summary the e-mail is built from.
//!
//! Files in `<dir>/<start>-run<id>-<token>/` ([`folder_name`]; a header row is always
//! written, even with no rows):
//!
//! - `unmatched_payments.csv`: `payment_id, external_id, concept, amount, currency,
//!   created_at, days_pending, reason, candidates, difference, detail, action, note`
//! - `unmatched_bank_transactions.csv`: `transaction_id, iban, direction, booked_at,
//!   amount, currency, concept, counterparty_name, reason, candidates,
//!   suggested_payment_ids, difference, detail, action, note`. `candidates` are the open payments whose
//!   concept appears in the transfer text (evidence: all of them for `ambiguous`);
//!   `suggested_payment_ids` are open payments of the same amount and currency for a
//!   `no_concept` credit (a hint only). They are kept apart because they mean different
//!   things to the person reading them.
//! - `reconciled.csv`: `payment_id, transaction_id, amount, currency, concept,
//!   reconciled_at`
//! - `unmatched_payouts.csv`: `offramp_id, user_id, amount, currency, status,
//!   finished_at, days_since_finished, reason, action, note`
//! - `report.xlsx`: the same rows as a workbook for people, typed cells (`xlsx`), for a
//!   report that is mailed or with `workbook = "always"` ([`WorkbookPolicy`])
//!
//! `action` and `note` are always empty: finance fills them in (`approve`, `dismiss`,
//! `reopen`) and hands the file back to `cp-recon apply`.
//!
//! Lists of ids are joined with a single space. Amounts have two decimals (more only
//! when the value has them) and a dot, or a comma with `decimal_separator = ","`;
//! `difference` is `received - expected`;
//! timestamps are ISO-8601 UTC to the second (`2026-06-26T10:30:00Z`). Records end in
//! CRLF (RFC 4180).
//!
//! Every text cell is passed through [`neutralize_formula`] (OWASP "CSV injection",
//! CWE-1236): the bank transfer text and the counterparty name are typed by strangers,
//! and ids, codes and statuses come from the provider. Numbers this module formats
//! itself (amounts, differences, day counts) are written as-is so a spreadsheet still
//! sees a negative difference as a number.
//!
//! The report's model, how it is built and written to disk are in this file; the CSV
//! writing itself, formula guard included, is in `csv`, the workbook in `xlsx`.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::domain::{
    BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp, OfframpId,
    OfframpStatus, Payment, PaymentId,
};
use crate::matching::{Decisions, Reason};

mod csv;
mod files;
pub mod mail_plan;
pub mod period;
mod xlsx;

pub use self::csv::{neutralize_formula, timestamp};
pub use self::files::{
    ReportFiles, Staged, Unwritten, check_writable, folder_name, is_folder_name, new_token,
};
pub use self::xlsx::{WORKBOOK_FILE, amount_as_f64, sheet_name};

/// Default directory for the per-run report folders.
pub const DEFAULT_REPORT_DIR: &str = "/var/lib/cp-recon/reports";

/// The `[reports]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// Where the runs' report folders are created ([`folder_name`]).
    pub dir: PathBuf,
    /// Field delimiter: `,` (default) or `;` (for spreadsheets set to a locale whose
    /// decimal separator is a comma). Anything else is rejected.
    #[serde(deserialize_with = "deserialize_delimiter")]
    pub delimiter: char,
    /// Start each file with the UTF-8 BOM, for Excel.
    pub excel_bom: bool,
    /// The decimal separator of amounts in the CSVs: `.` (default) or `,` (so that a
    /// spreadsheet in a comma-decimal locale imports them as numbers; needs
    /// `delimiter = ";"`). The workbook's amounts are numbers and need neither.
    #[serde(deserialize_with = "deserialize_decimal_separator")]
    pub decimal_separator: char,
    /// Write IBANs as country code + last four (`ES…1332`) instead of in full.
    pub mask_ibans: bool,
    /// When the report e-mail goes out.
    pub send: SendPolicy,
    /// When `report.xlsx` is written (the CSVs always are).
    pub workbook: WorkbookPolicy,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_REPORT_DIR),
            delimiter: ',',
            excel_bom: false,
            decimal_separator: '.',
            mask_ibans: true,
            send: SendPolicy::default(),
            workbook: WorkbookPolicy::default(),
        }
    }
}

impl ReportSettings {
    /// Checks what serde cannot see when the struct is built by hand.
    pub fn validate(&self) -> Result<(), ReportError> {
        delimiter_byte(self.delimiter)?;
        match (self.decimal_separator, self.delimiter) {
            ('.', _) | (',', ';') => Ok(()),
            (',', _) => Err(ReportError::SeparatorClash),
            (other, _) => Err(ReportError::DecimalSeparator(other)),
        }
    }

    /// The `[reports]` key a [`ReportError`] from [`Self::validate`] is about.
    pub fn key_of(e: &ReportError) -> &'static str {
        match e {
            ReportError::Delimiter(_) => "reports.delimiter",
            _ => "reports.decimal_separator",
        }
    }
}

fn deserialize_decimal_separator<'de, D: Deserializer<'de>>(d: D) -> Result<char, D::Error> {
    let s = String::deserialize(d)?;
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ ('.' | ',')), None) => Ok(c),
        _ => Err(serde::de::Error::custom(format!(
            "decimal_separator must be \".\" or \",\", got {s:?}"
        ))),
    }
}

fn delimiter_byte(c: char) -> Result<u8, ReportError> {
    match c {
        ',' => Ok(b','),
        ';' => Ok(b';'),
        other => Err(ReportError::Delimiter(other)),
    }
}

fn deserialize_delimiter<'de, D: Deserializer<'de>>(d: D) -> Result<char, D::Error> {
    let s = String::deserialize(d)?;
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ (',' | ';')), None) => Ok(c),
        _ => Err(serde::de::Error::custom(format!(
            "delimiter must be \",\" or \";\", got {s:?}"
        ))),
    }
}

/// When the report e-mail is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendPolicy {
    /// The full report once per `[email] digest` slot, from a run that read every list;
    /// between digests, only urgent items not mailed before, and runs failing for longer
    /// than `[email] alert_after` (see [`mail_plan`]).
    #[default]
    Digest,
    /// Every run whose report [needs attention](Report::needs_attention) (something
    /// unmatched, an incomplete sync, or a failed run).
    WhenUnmatched,
    /// Every run.
    Always,
    Never,
}

/// When a report's workbook (`report.xlsx`) is written. Building it is the largest
/// part of a run's report, in time and memory (every open item as typed cells, held
/// until the file is zipped), and most reports are never opened: under the default
/// digest, every fifteen-minute run writes one and a person reads the one mailed each
/// day. The CSVs are always written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkbookPolicy {
    /// Only for a report that is mailed (a full or an urgent mail), which attaches it.
    #[default]
    WhenMailed,
    /// For every report (the demo asks for this: newcomers are told to open it).
    Always,
}

/// Why a report could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A finding names a record the caller did not pass: a bug upstream. Reported rather
    /// than skipped, so an item that needs a person never silently drops off the report.
    #[error("the report lists {kind} {id} but its record was not provided")]
    MissingRecord { kind: &'static str, id: String },
    #[error("report delimiter must be ',' or ';', got {0:?}")]
    Delimiter(char),
    #[error("decimal separator must be '.' or ',', got {0:?}")]
    DecimalSeparator(char),
    #[error(
        "decimal_separator = \",\" needs delimiter = \";\": with a comma delimiter every amount would split in two"
    )]
    SeparatorClash,
    /// The run's report folder exists already: another run wrote it (a database put
    /// back from a backup numbers runs again). It is left as it is.
    #[error(
        "report folder {path} already exists: it was written by another run and is left as it is; this run's report is not written"
    )]
    FolderExists { path: PathBuf },
    /// The operating system gave no random bytes for the run's token.
    #[error("cannot draw the run's random token: {0}")]
    Token(String),
    #[error("could not write report file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not write CSV")]
    Csv(#[from] ::csv::Error),
    #[error("could not build the workbook")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

/// Facts about the run, shown at the top of the e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: i64,
    /// The run's random token: with its id and start, it names the run's report folder
    /// ([`files::folder_name`]).
    pub token: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Every page of every list was read (rules §3.5).
    pub sync_complete: bool,
    /// Nothing was changed at the provider.
    pub dry_run: bool,
    /// The error text if the run failed.
    pub failed: Option<String>,
    /// When a stop (SIGTERM) ended the run early, the one line saying what it left for
    /// the next run. A stop is not a failure: nothing here is urgent.
    pub stopped: Option<String>,
    /// Whose reads the items are: this run's, or (after an incomplete sync) the last
    /// run's that read every list in full.
    pub freshness: Freshness,
}

/// How current a report's items are. A run that could not read every list reports from
/// what is stored; that must not pass for the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// This run read every list in full.
    Current,
    /// This run did not: the items are the last known state, as read in full by run
    /// `run_id`, which started at `started_at` (lists this run did read are newer).
    AsOf {
        run_id: i64,
        started_at: DateTime<Utc>,
    },
    /// No run has read every list in full yet: the items come from partial reads.
    NeverComplete,
}

impl Freshness {
    /// What a reader must know about the items, or `None` when they are current.
    pub fn caveat(self) -> Option<String> {
        match self {
            Self::Current => None,
            Self::AsOf { run_id, started_at } => Some(format!(
                "last known state as of run {run_id} at {}, the last run that read every list in full; items may have changed since",
                crate::text::wire_time(started_at)
            )),
            Self::NeverComplete => Some(
                "no run has read every list in full yet; items come from partial reads and may be wrong or missing".to_owned(),
            ),
        }
    }
}

/// A payment this run reconciled with a bank transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub payment_id: PaymentId,
    pub transaction_id: BankTxId,
    pub amount: Money,
    pub concept: Option<Concept>,
    pub reconciled_at: DateTime<Utc>,
}

impl Reconciled {
    /// The rows a dry run lists as what *would* be reconciled: one per pair decided and
    /// not called, with its payment's amount and concept.
    pub fn would_be(
        pairs: &[(crate::domain::PaymentId, crate::domain::BankTxId)],
        payments: &HashMap<crate::domain::PaymentId, crate::domain::Payment>,
        at: DateTime<Utc>,
    ) -> Vec<Reconciled> {
        pairs
            .iter()
            .filter_map(|(pid, tid)| {
                payments.get(pid).map(|p| Reconciled {
                    payment_id: pid.clone(),
                    transaction_id: tid.clone(),
                    amount: p.amount.clone(),
                    concept: p.concept.clone(),
                    reconciled_at: at,
                })
            })
            .collect()
    }
}

/// Everything a report is built from. `reconciled` is what this run actually reconciled;
/// `decisions.reconcile` (pairs still to be attempted) is not reported by itself.
pub struct ReportInput<'a> {
    pub run: RunInfo,
    pub decisions: &'a Decisions,
    pub payments: &'a HashMap<PaymentId, Payment>,
    pub transactions: &'a HashMap<BankTxId, BankTransaction>,
    pub offramps: &'a HashMap<OfframpId, Offramp>,
    pub reconciled: &'a [Reconciled],
    pub now: DateTime<Utc>,
}

/// One of the four files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportKind {
    UnmatchedPayments,
    UnmatchedBankTransactions,
    Reconciled,
    UnmatchedPayouts,
}

impl ReportKind {
    pub const ALL: [ReportKind; 4] = [
        Self::UnmatchedPayments,
        Self::UnmatchedBankTransactions,
        Self::Reconciled,
        Self::UnmatchedPayouts,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Self::UnmatchedPayments => "unmatched_payments.csv",
            Self::UnmatchedBankTransactions => "unmatched_bank_transactions.csv",
            Self::Reconciled => "reconciled.csv",
            Self::UnmatchedPayouts => "unmatched_payouts.csv",
        }
    }

    /// A heading for people (the e-mail).
    pub fn title(self) -> &'static str {
        match self {
            Self::UnmatchedPayments => "Payments",
            Self::UnmatchedBankTransactions => "Bank transactions",
            Self::Reconciled => "Reconciled",
            Self::UnmatchedPayouts => "Off-ramp payouts",
        }
    }

    pub fn header(self) -> &'static [&'static str] {
        match self {
            Self::UnmatchedPayments => &[
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
            Self::UnmatchedBankTransactions => &[
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
            Self::Reconciled => &[
                "payment_id",
                "transaction_id",
                "amount",
                "currency",
                "concept",
                "reconciled_at",
            ],
            Self::UnmatchedPayouts => &[
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
        }
    }
}

/// A row of `unmatched_payments.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPaymentRow {
    pub payment_id: PaymentId,
    pub external_id: Option<String>,
    pub concept: Option<Concept>,
    pub amount: Money,
    pub created_at: DateTime<Utc>,
    pub days_pending: i64,
    pub reason: Reason,
    pub candidates: Vec<BankTxId>,
    pub difference: Option<Decimal>,
    pub detail: Option<String>,
    pub seen: Seen,
}

/// A row of `unmatched_bank_transactions.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedTransactionRow {
    pub transaction_id: BankTxId,
    pub iban: Iban,
    pub direction: Direction,
    pub booked_at: DateTime<Utc>,
    pub amount: Money,
    /// The transfer text as the sender typed it.
    pub concept: String,
    pub counterparty_name: Option<String>,
    pub reason: Reason,
    pub candidates: Vec<PaymentId>,
    pub suggested_payment_ids: Vec<PaymentId>,
    pub difference: Option<Decimal>,
    pub detail: Option<String>,
    pub seen: Seen,
}

/// A row of `unmatched_payouts.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPayoutRow {
    pub offramp_id: OfframpId,
    pub user_id: Option<String>,
    pub amount: Money,
    pub status: OfframpStatus,
    /// The off-ramp's `updated_at`: when it became `finished`.
    pub finished_at: Option<DateTime<Utc>>,
    pub days_since_finished: i64,
    pub reason: Reason,
    pub seen: Seen,
}

/// When the job first reported an item, and whether that was after the previous report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// The start of the first run that reported it (`None` until [`Report::mark_seen`]).
    pub first_seen: Option<DateTime<Utc>>,
    /// First reported since the previous report: new to its reader.
    pub new: bool,
}

impl Seen {
    /// Whole days since the item was first reported, at `now`.
    pub fn days_open(&self, now: DateTime<Utc>) -> Option<i64> {
        self.first_seen.map(|t| (now - t).num_days().max(0))
    }
}

/// Count and sum of one group of items in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Total {
    pub currency: Currency,
    pub count: usize,
    pub total: Decimal,
}

impl Total {
    /// Count and sum of `amounts` per currency, in currency order.
    pub fn per_currency<'a>(amounts: impl IntoIterator<Item = &'a Money>) -> Vec<Total> {
        let mut per_currency: BTreeMap<Currency, (usize, Decimal)> = BTreeMap::new();
        for m in amounts {
            let e = per_currency
                .entry(m.currency().clone())
                .or_insert((0, Decimal::ZERO));
            e.0 += 1;
            e.1 += m.amount();
        }
        per_currency
            .into_iter()
            .map(|(currency, (count, total))| Total {
                currency,
                count,
                total,
            })
            .collect()
    }
}

/// The unmatched bank transactions of one currency, money in and money out apart (the
/// two added together would be a sum of nothing: a credit and a debit do not add up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InOut {
    pub currency: Currency,
    pub credits: usize,
    /// What the credits brought in.
    pub credited: Decimal,
    pub debits: usize,
    /// What the debits took out (amounts are positive either way).
    pub debited: Decimal,
}

/// Items that need a person, grouped by file, reason and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionLine {
    pub kind: ReportKind,
    pub reason: Reason,
    pub currency: Currency,
    pub count: usize,
    pub total: Decimal,
}

/// What the e-mail says, in numbers. Lines are sorted by file, reason, currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub run: RunInfo,
    /// Number of rows across the three `unmatched_*` files.
    pub attention_count: usize,
    pub attention: Vec<AttentionLine>,
    /// The unmatched bank transactions per currency, credits and debits apart, sorted
    /// by currency.
    pub transactions_in_out: Vec<InOut>,
    pub reconciled_count: usize,
    /// Reconciled amounts per currency.
    pub reconciled: Vec<Total>,
    /// Items a person dismissed, not listed in the files.
    pub dismissed: usize,
    /// Decisions people made since the previous report, one line each.
    pub decisions: Vec<String>,
    /// Unreadable records this run met that a person dismissed (they did not block
    /// it), one line each: which, by whom, why.
    pub waived: Vec<String>,
    /// Urgent items no earlier mail named, one line each, shown first (see
    /// [`mail_plan`]).
    pub urgent: Vec<String>,
    /// Open items first reported since the previous report.
    pub new_items: usize,
    /// When the longest-waiting open item was first reported.
    pub oldest_first_seen: Option<DateTime<Utc>>,
    /// For a full mail (a digest): what happened since the last digest delivered.
    pub period: Option<period::Period>,
}

/// The rows of the four files of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub run: RunInfo,
    pub generated_at: DateTime<Utc>,
    pub unmatched_payments: Vec<UnmatchedPaymentRow>,
    pub unmatched_transactions: Vec<UnmatchedTransactionRow>,
    pub reconciled: Vec<Reconciled>,
    pub unmatched_payouts: Vec<UnmatchedPayoutRow>,
    /// Items a person dismissed (`cp-recon dismiss`): not listed, only counted.
    pub dismissed: usize,
    /// Decisions people made since the previous report, one line each.
    pub decisions: Vec<String>,
    /// Unreadable records this run met that a person dismissed (they did not block
    /// it), one line each: which, by whom, why.
    pub waived: Vec<String>,
    /// Urgent items no earlier mail named, one line each: what the mail leads with.
    pub urgent: Vec<String>,
    /// Ids of the unreadable records this run met that nobody dismissed: they block
    /// automation.
    pub blocking: Vec<String>,
    /// For a full mail (a digest): what happened since the last digest delivered.
    pub period: Option<period::Period>,
    /// The urgent items no earlier mail named, as the subject counts them.
    pub urgent_items: Vec<mail_plan::UrgentItem>,
    /// The mail is an urgent one, not a full report: its subject says what is urgent
    /// (or what failed), not the run's totals.
    pub urgent_only: bool,
}

fn missing(kind: &'static str, id: &impl ToString) -> ReportError {
    ReportError::MissingRecord {
        kind,
        id: id.to_string(),
    }
}

impl Report {
    /// Joins each finding with its record. Rows are sorted (by reason, then date, then
    /// id) so that two runs over the same data give the same files.
    pub fn build(input: &ReportInput) -> Result<Report, ReportError> {
        let d = input.decisions;

        let mut unmatched_payments = d
            .payments
            .iter()
            .map(|f| {
                let p = input
                    .payments
                    .get(&f.payment)
                    .ok_or_else(|| missing("payment", &f.payment))?;
                Ok(UnmatchedPaymentRow {
                    payment_id: p.id.clone(),
                    external_id: p.external_id.clone(),
                    concept: p.concept.clone(),
                    amount: p.amount.clone(),
                    created_at: p.created_at,
                    days_pending: f.days_pending,
                    reason: f.reason,
                    candidates: f.candidates.clone(),
                    difference: f.difference,
                    detail: f.detail.clone(),
                    seen: Seen::default(),
                })
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        unmatched_payments.sort_by(|a, b| {
            (a.reason, a.created_at, &a.payment_id).cmp(&(b.reason, b.created_at, &b.payment_id))
        });

        let mut unmatched_transactions = d
            .transactions
            .iter()
            .map(|f| {
                let t = input
                    .transactions
                    .get(&f.transaction)
                    .ok_or_else(|| missing("bank transaction", &f.transaction))?;
                Ok(UnmatchedTransactionRow {
                    transaction_id: t.id.clone(),
                    iban: t.iban.clone(),
                    direction: t.direction,
                    booked_at: t.booked_at,
                    amount: t.amount.clone(),
                    concept: t.concept_text.clone(),
                    counterparty_name: t.counterparty_name.clone(),
                    reason: f.reason,
                    candidates: f.candidates.clone(),
                    suggested_payment_ids: f.suggested.clone(),
                    difference: f.difference,
                    detail: f.detail.clone(),
                    seen: Seen::default(),
                })
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        unmatched_transactions.sort_by(|a, b| {
            (a.reason, a.booked_at, &a.transaction_id).cmp(&(
                b.reason,
                b.booked_at,
                &b.transaction_id,
            ))
        });

        let mut unmatched_payouts = d
            .payouts
            .iter()
            .map(|f| {
                let o = input
                    .offramps
                    .get(&f.offramp)
                    .ok_or_else(|| missing("off-ramp", &f.offramp))?;
                Ok(UnmatchedPayoutRow {
                    offramp_id: o.id.clone(),
                    user_id: o.user_id.clone(),
                    amount: o.fiat.clone(),
                    status: o.status.clone(),
                    finished_at: o.updated_at,
                    days_since_finished: f.days_since_finished,
                    reason: f.reason,
                    seen: Seen::default(),
                })
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        unmatched_payouts.sort_by(|a, b| {
            (a.reason, a.finished_at, &a.offramp_id).cmp(&(b.reason, b.finished_at, &b.offramp_id))
        });

        let mut reconciled = input.reconciled.to_vec();
        reconciled.sort_by(|a, b| {
            (a.reconciled_at, &a.payment_id).cmp(&(b.reconciled_at, &b.payment_id))
        });

        Ok(Report {
            run: input.run.clone(),
            generated_at: input.now,
            unmatched_payments,
            unmatched_transactions,
            reconciled,
            unmatched_payouts,
            dismissed: 0,
            decisions: Vec::new(),
            waived: Vec::new(),
            urgent: Vec::new(),
            blocking: Vec::new(),
            period: None,
            urgent_items: Vec::new(),
            urgent_only: false,
        })
    }

    /// Rows across the three `unmatched_*` files.
    pub fn attention_count(&self) -> usize {
        self.unmatched_payments.len()
            + self.unmatched_transactions.len()
            + self.unmatched_payouts.len()
    }

    /// True when a person should look: something is unmatched, or the run itself went
    /// wrong (an incomplete sync or a failed run is news even with empty files).
    /// Says for each open item when the job first reported it (`first_seen`: by kind and
    /// id, from the store) and whether that was after the previous report (`previous`,
    /// when it was written; `None`: this is the first report, so everything is new).
    pub fn mark_seen(
        &mut self,
        first_seen: &HashMap<(String, String), DateTime<Utc>>,
        previous: Option<DateTime<Utc>>,
    ) {
        let seen = |kind: &str, id: &str| {
            let first = first_seen.get(&(kind.to_owned(), id.to_owned())).copied();
            Seen {
                first_seen: first,
                new: match (first, previous) {
                    (Some(f), Some(p)) => f > p,
                    _ => true,
                },
            }
        };
        for r in &mut self.unmatched_payments {
            r.seen = seen("payment", r.payment_id.as_str());
        }
        for r in &mut self.unmatched_transactions {
            r.seen = seen("transaction", r.transaction_id.as_str());
        }
        for r in &mut self.unmatched_payouts {
            r.seen = seen("offramp", r.offramp_id.as_str());
        }
    }

    /// Every open item's [`Seen`], across the three `unmatched_*` files.
    fn seen_all(&self) -> impl Iterator<Item = &Seen> {
        self.unmatched_payments
            .iter()
            .map(|r| &r.seen)
            .chain(self.unmatched_transactions.iter().map(|r| &r.seen))
            .chain(self.unmatched_payouts.iter().map(|r| &r.seen))
    }

    pub fn needs_attention(&self) -> bool {
        self.attention_count() > 0 || !self.run.sync_complete || self.run.failed.is_some()
    }

    pub fn summary(&self) -> Summary {
        let mut groups: BTreeMap<(ReportKind, Reason, Currency), (usize, Decimal)> =
            BTreeMap::new();
        let mut add = |kind, reason, m: &Money| {
            let e = groups
                .entry((kind, reason, m.currency().clone()))
                .or_insert((0, Decimal::ZERO));
            e.0 += 1;
            e.1 += m.amount();
        };
        for r in &self.unmatched_payments {
            add(ReportKind::UnmatchedPayments, r.reason, &r.amount);
        }
        for r in &self.unmatched_transactions {
            add(ReportKind::UnmatchedBankTransactions, r.reason, &r.amount);
        }
        for r in &self.unmatched_payouts {
            add(ReportKind::UnmatchedPayouts, r.reason, &r.amount);
        }
        let attention = groups
            .into_iter()
            .map(|((kind, reason, currency), (count, total))| AttentionLine {
                kind,
                reason,
                currency,
                count,
                total,
            })
            .collect();

        let mut in_out: BTreeMap<Currency, InOut> = BTreeMap::new();
        for r in &self.unmatched_transactions {
            let e = in_out
                .entry(r.amount.currency().clone())
                .or_insert_with(|| InOut {
                    currency: r.amount.currency().clone(),
                    credits: 0,
                    credited: Decimal::ZERO,
                    debits: 0,
                    debited: Decimal::ZERO,
                });
            match r.direction {
                Direction::Credit => {
                    e.credits += 1;
                    e.credited += r.amount.amount();
                }
                Direction::Debit => {
                    e.debits += 1;
                    e.debited += r.amount.amount();
                }
            }
        }

        let reconciled = Total::per_currency(self.reconciled.iter().map(|r| &r.amount));

        Summary {
            run: self.run.clone(),
            attention_count: self.attention_count(),
            attention,
            transactions_in_out: in_out.into_values().collect(),
            reconciled_count: self.reconciled.len(),
            reconciled,
            dismissed: self.dismissed,
            decisions: self.decisions.clone(),
            urgent: self.urgent.clone(),
            new_items: self.seen_all().filter(|s| s.new).count(),
            oldest_first_seen: self.seen_all().filter_map(|s| s.first_seen).min(),
            waived: self.waived.clone(),
            period: self.period.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_comma_and_semicolon_are_accepted_as_delimiters() {
        #[derive(Deserialize)]
        struct W {
            report: ReportSettings,
        }
        let parse = |s: &str| toml::from_str::<W>(s).map(|w| w.report);
        assert_eq!(parse("[report]").unwrap(), ReportSettings::default());
        assert_eq!(parse("[report]\ndelimiter = ';'").unwrap().delimiter, ';');
        assert!(parse("[report]\ndelimiter = '\t'").is_err());
        assert!(parse("[report]\ndelimiter = ',;'").is_err());
        assert!(parse("[report]\ndelimitr = ','").is_err());
        assert!(parse("[report]\nsend = 'sometimes'").is_err());
        assert_eq!(
            parse("[report]").unwrap().workbook,
            WorkbookPolicy::WhenMailed
        );
        assert_eq!(
            parse("[report]\nworkbook = 'always'").unwrap().workbook,
            WorkbookPolicy::Always
        );
        assert!(parse("[report]\nworkbook = 'never'").is_err());
        let s = parse("[report]\nsend = 'always'\nmask_ibans = false").unwrap();
        assert_eq!(s.send, SendPolicy::Always);
        assert!(!s.mask_ibans);
        let bad = ReportSettings {
            delimiter: '|',
            ..ReportSettings::default()
        };
        assert!(matches!(bad.validate(), Err(ReportError::Delimiter('|'))));
    }

    #[test]
    fn a_comma_decimal_separator_needs_the_semicolon_delimiter() {
        #[derive(Deserialize)]
        struct W {
            report: ReportSettings,
        }
        let parse = |s: &str| toml::from_str::<W>(s).map(|w| w.report);
        assert_eq!(parse("[report]").unwrap().decimal_separator, '.');
        let s = parse("[report]\ndelimiter = ';'\ndecimal_separator = ','").unwrap();
        assert_eq!(s.decimal_separator, ',');
        s.validate().unwrap();
        assert!(parse("[report]\ndecimal_separator = ';'").is_err());
        assert!(parse("[report]\ndecimal_separator = ''").is_err());
        let clash = parse("[report]\ndecimal_separator = ','").unwrap();
        let err = clash.validate().unwrap_err();
        assert!(matches!(err, ReportError::SeparatorClash));
        assert_eq!(ReportSettings::key_of(&err), "reports.decimal_separator");
    }
}
