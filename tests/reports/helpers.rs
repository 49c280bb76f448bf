//! Records and findings for the report and e-mail tests; the SMTP server is shared
//! with the other suites.

#[path = "../common/smtp.rs"]
mod smtp;
pub use smtp::*;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use cp_recon::domain::{
    BankTransaction, BankTxId, Concept, Currency, Direction, Iban, Money, Offramp, OfframpId,
    OfframpStatus, Payment, PaymentId, PaymentStatus,
};
use cp_recon::matching::{Decisions, PaymentFinding, PayoutFinding, Reason, TransactionFinding};
use cp_recon::report::{Reconciled, Report, ReportInput, ReportSettings, RunInfo};
use rust_decimal::Decimal;

pub const IBAN: &str = "ES9121000418450200051332";

pub fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn money(amount: &str, currency: &str) -> Money {
    Money::from_units(dec(amount), Currency::parse(currency).unwrap())
}

pub fn pid(s: &str) -> PaymentId {
    PaymentId::parse(s).unwrap()
}

pub fn tid(s: &str) -> BankTxId {
    BankTxId::parse(s).unwrap()
}

pub fn oid(s: &str) -> OfframpId {
    OfframpId::parse(s).unwrap()
}

pub fn payment(
    id: &str,
    external_id: &str,
    concept: &str,
    amount: Money,
    created: &str,
) -> Payment {
    Payment {
        id: pid(id),
        external_id: Some(external_id.to_owned()),
        user_id: None,
        status: PaymentStatus::PendingBank,
        amount,
        payment_type: Some("bank_transfer".into()),
        concept: Some(Concept::parse(concept).unwrap()),
        created_at: ts(created),
        updated_at: None,
    }
}

pub fn transaction(
    id: &str,
    direction: Direction,
    amount: Money,
    text: &str,
    counterparty: &str,
    booked: &str,
) -> BankTransaction {
    BankTransaction {
        id: tid(id),
        iban: Iban::parse(IBAN).unwrap(),
        amount,
        direction,
        concept_text: text.to_owned(),
        counterparty_name: Some(counterparty.to_owned()),
        counterparty_iban: None,
        booked_at: ts(booked),
        value_date: None,
        reconciled_payment_id: None,
    }
}

pub fn pay_finding(id: &str, reason: Reason, candidates: &[&str], days: i64) -> PaymentFinding {
    PaymentFinding {
        payment: pid(id),
        reason,
        candidates: candidates.iter().map(|c| tid(c)).collect(),
        difference: None,
        days_pending: days,
        detail: None,
    }
}

pub fn tx_finding(
    id: &str,
    reason: Reason,
    candidates: &[&str],
    suggested: &[&str],
) -> TransactionFinding {
    TransactionFinding {
        transaction: tid(id),
        reason,
        candidates: candidates.iter().map(|c| pid(c)).collect(),
        suggested: suggested.iter().map(|c| pid(c)).collect(),
        difference: None,
        detail: None,
    }
}

/// Records and findings for one run, covering every file, several reasons, two
/// currencies, formula payloads in every kind of outside text, and names that need
/// quoting.
pub struct Fixture {
    pub run: RunInfo,
    pub decisions: Decisions,
    pub payments: HashMap<PaymentId, Payment>,
    pub transactions: HashMap<BankTxId, BankTransaction>,
    pub offramps: HashMap<OfframpId, Offramp>,
    pub reconciled: Vec<Reconciled>,
    pub now: DateTime<Utc>,
}

pub const HYPERLINK: &str = r#"=HYPERLINK("http://evil.example/?x=1","click")"#;
pub const COMPANY: &str = "Smith, \"Bob\" & Sons\nLtd";

impl Fixture {
    pub fn new() -> Self {
        let payments = [
            payment(
                "pay_amount",
                HYPERLINK,
                "0120037",
                money("150.50", "EUR"),
                "2026-06-20T08:00:00Z",
            ),
            payment(
                "pay_amb1",
                "ext-amb1",
                "555",
                money("20.00", "EUR"),
                "2026-06-24T08:00:00Z",
            ),
            payment(
                "pay_amb2",
                "ext-amb2",
                "555",
                money("20", "EUR"),
                "2026-06-25T08:00:00Z",
            ),
            payment(
                "pay_await",
                "+SUM(1,2)",
                "0000042",
                money("99.99", "EUR"),
                "2026-06-20T09:00:00Z",
            ),
            payment(
                "-1+1",
                "ext-fail",
                "0077",
                money("10", "USD"),
                "2026-06-26T07:00:00Z",
            ),
        ];
        let transactions = [
            transaction(
                "tx_amount",
                Direction::Credit,
                money("150.49", "EUR"),
                "Pago 0120037",
                "José Muñoz",
                "2026-06-21T10:00:00Z",
            ),
            transaction(
                "tx_amb",
                Direction::Credit,
                money("20.00", "EUR"),
                "\t=1 555",
                "山田太郎",
                "2026-06-25T12:00:00Z",
            ),
            transaction(
                "tx_noconcept",
                Direction::Credit,
                money("99.99", "EUR"),
                HYPERLINK,
                COMPANY,
                "2026-06-25T13:00:00Z",
            ),
            transaction(
                "tx_debit",
                Direction::Debit,
                money("500", "EUR"),
                "\r=1",
                "@cmd",
                "2026-06-25T14:00:00Z",
            ),
        ];
        let offramps = [Offramp {
            id: oid("off_1"),
            user_id: Some("-1+1".into()),
            status: OfframpStatus::Finished,
            fiat: money("250.00", "EUR"),
            iban: None,
            created_at: ts("2026-06-19T09:00:00Z"),
            updated_at: Some(ts("2026-06-20T09:00:00Z")),
        }];

        let mut amount = pay_finding("pay_amount", Reason::AmountMismatch, &["tx_amount"], 6);
        amount.difference = Some(dec("-0.01"));
        let mut failed = pay_finding("-1+1", Reason::ReconcileFailed, &[], 0);
        failed.detail = Some("@cmd".into());
        let mut tx_amount = tx_finding("tx_amount", Reason::AmountMismatch, &["pay_amount"], &[]);
        tx_amount.difference = Some(dec("-0.01"));

        let decisions = Decisions {
            reconcile: vec![],
            payments: vec![
                amount,
                pay_finding("pay_amb1", Reason::Ambiguous, &["tx_amb"], 2),
                pay_finding("pay_amb2", Reason::Ambiguous, &["tx_amb"], 1),
                pay_finding("pay_await", Reason::AwaitingTransfer, &[], 6),
                failed,
            ],
            transactions: vec![
                tx_amount,
                tx_finding("tx_amb", Reason::Ambiguous, &["pay_amb1", "pay_amb2"], &[]),
                tx_finding("tx_noconcept", Reason::NoConcept, &[], &["pay_await"]),
                tx_finding("tx_debit", Reason::UnexplainedDebit, &[], &[]),
            ],
            payouts: vec![PayoutFinding {
                offramp: oid("off_1"),
                reason: Reason::PayoutNotSeen,
                days_since_finished: 6,
            }],
            paid_out: vec![],
        };

        let reconciled = vec![
            reconciled(
                "pay_ok1",
                "tx_ok1",
                money("100", "EUR"),
                "0001",
                "2026-06-26T10:31:00Z",
            ),
            reconciled(
                "pay_ok2",
                "tx_ok2",
                money("50.25", "EUR"),
                "0002",
                "2026-06-26T10:31:01Z",
            ),
            reconciled(
                "pay_ok3",
                "tx_ok3",
                money("10.00", "USD"),
                "0003",
                "2026-06-26T10:31:02Z",
            ),
        ];

        Self {
            run: RunInfo {
                run_id: 42,
                token: "7f3a9c".into(),
                started_at: ts("2026-06-26T10:30:00Z"),
                finished_at: ts("2026-06-26T10:31:05Z"),
                sync_complete: true,
                dry_run: false,
                failed: None,
                stopped: None,
                freshness: cp_recon::report::Freshness::Current,
            },
            decisions,
            payments: payments.into_iter().map(|p| (p.id.clone(), p)).collect(),
            transactions: transactions
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            offramps: offramps.into_iter().map(|o| (o.id.clone(), o)).collect(),
            reconciled,
            now: ts("2026-06-26T10:31:05Z"),
        }
    }

    /// Nothing unmatched, nothing reconciled.
    pub fn empty() -> Self {
        let mut f = Self::new();
        f.decisions = Decisions::default();
        f.reconciled.clear();
        f
    }

    pub fn input(&self) -> ReportInput<'_> {
        ReportInput {
            run: self.run.clone(),
            decisions: &self.decisions,
            payments: &self.payments,
            transactions: &self.transactions,
            offramps: &self.offramps,
            reconciled: &self.reconciled,
            now: self.now,
        }
    }

    pub fn report(&self) -> Report {
        Report::build(&self.input()).unwrap()
    }
}

pub fn reconciled(p: &str, t: &str, amount: Money, concept: &str, at: &str) -> Reconciled {
    Reconciled {
        payment_id: pid(p),
        transaction_id: tid(t),
        amount,
        concept: Some(Concept::parse(concept).unwrap()),
        reconciled_at: ts(at),
    }
}

/// A parsed CSV file: the header and each row as column name → value.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<HashMap<String, String>>,
}

impl Table {
    /// The row whose first column is `id`.
    pub fn row(&self, id: &str) -> &HashMap<String, String> {
        self.rows
            .iter()
            .find(|r| r[&self.header[0]] == id)
            .unwrap_or_else(|| panic!("no row {id:?}"))
    }

    pub fn column(&self, name: &str) -> Vec<&str> {
        self.rows.iter().map(|r| r[name].as_str()).collect()
    }
}

pub fn parse_csv(bytes: &[u8], delimiter: u8) -> Table {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(bytes);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), header.len());
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    Table { header, rows }
}

pub fn read_csv(path: &Path) -> Table {
    parse_csv(&std::fs::read(path).unwrap(), b',')
}

pub fn settings() -> ReportSettings {
    ReportSettings::default()
}

impl Fixture {
    /// The same fixture with every provider id made a formula payload: payment ids start
    /// with `=`, transaction ids with `+`, off-ramp ids with `@`, so every id column and
    /// every id list (candidates, suggestions) starts with a trigger.
    pub fn with_hostile_ids(mut self) -> Self {
        let p = |id: &PaymentId| pid(&format!("={}", id.as_str()));
        let t = |id: &BankTxId| tid(&format!("+{}", id.as_str()));
        let o = |id: &OfframpId| oid(&format!("@{}", id.as_str()));
        self.payments = (self.payments.into_values())
            .map(|mut x| {
                x.id = p(&x.id);
                (x.id.clone(), x)
            })
            .collect();
        self.transactions = (self.transactions.into_values())
            .map(|mut x| {
                x.id = t(&x.id);
                (x.id.clone(), x)
            })
            .collect();
        self.offramps = (self.offramps.into_values())
            .map(|mut x| {
                x.id = o(&x.id);
                (x.id.clone(), x)
            })
            .collect();
        for f in &mut self.decisions.payments {
            f.payment = p(&f.payment);
            f.candidates = f.candidates.iter().map(t).collect();
        }
        for f in &mut self.decisions.transactions {
            f.transaction = t(&f.transaction);
            f.candidates = f.candidates.iter().map(p).collect();
            f.suggested = f.suggested.iter().map(p).collect();
        }
        for f in &mut self.decisions.payouts {
            f.offramp = o(&f.offramp);
        }
        for r in &mut self.reconciled {
            r.payment_id = p(&r.payment_id);
            r.transaction_id = t(&r.transaction_id);
        }
        self
    }
}
