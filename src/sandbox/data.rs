//! The sandbox's records and its deterministic data set: every situation of the
//! reconciliation rules, with the expected outcome recorded by construction.
//!
//! `Expected` is written down while each situation is built, never computed by matching
//! code: it is the ground truth the job is tested against.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashSet;

use super::rng::Rng;
use crate::domain::Direction;

/// What data set to generate. Everything is relative to `anchor`, the "now" of the data:
/// a run a few minutes (or hours) after `anchor` sees the same outcomes, because every
/// timestamp that decides an outcome sits hours or days away from its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    pub seed: u64,
    /// Target number of payments (at least one block of special situations is always
    /// generated, so tiny targets are exceeded).
    pub payments: usize,
    /// Fraction of ordinary transfer payments left `pending_bank` (with their credit
    /// waiting to be reconciled), 0..=1.
    pub pending_share: f64,
    /// Approximate number of bank transactions across all accounts (a floor is set by
    /// what the payments and off-ramps need).
    pub transactions: usize,
    pub offramps: usize,
    /// Number of bank accounts, at least 2 (the third one, if any, is a USD account).
    pub accounts: usize,
    pub anchor: DateTime<Utc>,
}

impl DataSpec {
    /// About 60 payments; every situation of the rules is present.
    pub fn small(seed: u64, anchor: DateTime<Utc>) -> Self {
        Self {
            seed,
            payments: 60,
            pending_share: 0.2,
            transactions: 70,
            offramps: 12,
            accounts: 3,
            anchor,
        }
    }

    /// A larger set with the same mix of situations in proportion (one block of special
    /// situations per 1,000 payments); most items are ordinary.
    pub fn scaled(
        seed: u64,
        anchor: DateTime<Utc>,
        payments: usize,
        transactions: usize,
        offramps: usize,
    ) -> Self {
        Self {
            seed,
            payments,
            pending_share: 0.2,
            transactions,
            offramps,
            accounts: 3,
            anchor,
        }
    }
}

/// The ground truth of a generated data set, by the reconciliation rules with default
/// parameters (24 h tolerance, 90-day look-back, 3-day payout grace) at `anchor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// (payment id, transaction id) pairs the job must reconcile.
    pub confident: Vec<(String, String)>,
    /// Every open payment not in `confident` → reason name (rules §4).
    pub payment_reasons: BTreeMap<String, String>,
    /// Every open credit not in `confident`, and every unexplained debit → reason name.
    pub transaction_reasons: BTreeMap<String, String>,
    /// Off-ramp id → `payout_not_seen`.
    pub payout_reasons: BTreeMap<String, String>,
    /// Every formula-injection payload placed in a concept text or counterparty name
    /// (each once).
    pub injection_texts: Vec<String>,
}

/// An on-ramp payment as the sandbox stores it (wire form: §5.3 + §13.3).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRecord {
    pub id: String,
    pub external_id: Option<String>,
    pub user_id: String,
    pub status: String,
    /// Integer cents, as on the wire.
    pub fiat_cents: i64,
    pub fiat_symbol: String,
    pub coin_symbol: String,
    pub coin_amount: Decimal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub holder: Option<String>,
    /// Only written on the wire when `status` is `coins_sent`.
    pub txid: Option<String>,
    /// Canonical lower-case type; quirks may vary its case on the wire.
    pub payment_type: String,
    pub concept: Option<u64>,
}

impl PaymentRecord {
    /// A `pending_bank` EUR bank-transfer payment.
    pub fn transfer(
        id: impl Into<String>,
        concept: u64,
        fiat_cents: i64,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            external_id: None,
            user_id: "100001".to_owned(),
            status: "pending_bank".to_owned(),
            fiat_cents,
            fiat_symbol: "EUR".to_owned(),
            coin_symbol: "USDC".to_owned(),
            coin_amount: Decimal::new(fiat_cents, 2),
            created_at,
            updated_at: created_at,
            holder: None,
            txid: None,
            payment_type: "transfer".to_owned(),
            concept: Some(concept),
        }
    }
}

/// A bank transaction (§13.6).
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionRecord {
    pub id: String,
    pub iban: String,
    /// Currency units, always positive.
    pub amount: Decimal,
    pub currency: String,
    pub direction: Direction,
    pub concept: String,
    pub counterparty_name: Option<String>,
    pub counterparty_iban: Option<String>,
    pub booked_at: DateTime<Utc>,
    pub value_date: Option<NaiveDate>,
    pub reconciled_payment_id: Option<String>,
}

impl TransactionRecord {
    /// An unreconciled EUR credit.
    pub fn credit(
        id: impl Into<String>,
        iban: impl Into<String>,
        amount: Decimal,
        concept: impl Into<String>,
        booked_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            iban: iban.into(),
            amount,
            currency: "EUR".to_owned(),
            direction: Direction::Credit,
            concept: concept.into(),
            counterparty_name: None,
            counterparty_iban: None,
            booked_at,
            value_date: Some(booked_at.date_naive()),
            reconciled_payment_id: None,
        }
    }

    /// A EUR debit.
    pub fn debit(
        id: impl Into<String>,
        iban: impl Into<String>,
        amount: Decimal,
        concept: impl Into<String>,
        booked_at: DateTime<Utc>,
    ) -> Self {
        Self {
            direction: Direction::Debit,
            ..Self::credit(id, iban, amount, concept, booked_at)
        }
    }
}

/// An off-ramp (§13.4).
#[derive(Debug, Clone, PartialEq)]
pub struct OfframpRecord {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub blockchain: String,
    pub crypto: String,
    /// Token base units, as a digit string.
    pub amount: String,
    pub decimals: u32,
    /// Currency units.
    pub fiat_amount: Decimal,
    pub fiat_symbol: String,
    pub iban: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OfframpRecord {
    /// A EUR off-ramp of USDC on polygon (6 decimals).
    pub fn new(
        id: impl Into<String>,
        status: impl Into<String>,
        fiat_amount: Decimal,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            user_id: "100001".to_owned(),
            status: status.into(),
            blockchain: "polygon".to_owned(),
            crypto: "USDC".to_owned(),
            amount: base_units(fiat_amount, 6),
            decimals: 6,
            fiat_amount,
            fiat_symbol: "EUR".to_owned(),
            iban: None,
            created_at,
            updated_at,
        }
    }
}

/// One of the integration's bank accounts (§13.5).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub iban: String,
    pub bic: String,
    pub holder_name: String,
    pub currency: String,
    pub balance: Decimal,
}

/// Per-item wire oddities, drawn once at generation and applied only when quirks are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Quirks {
    pub fiat_as_string: bool,
    pub user_id_as_int: bool,
    pub concept_as_string: bool,
    pub coin_as_string: bool,
    pub extra_field: bool,
    /// 0 lower-case, 1 upper-case, 2 capitalised.
    pub type_case: u8,
}

/// Token base units for a stable coin worth one currency unit.
fn base_units(fiat: Decimal, decimals: u32) -> String {
    let mut d = fiat;
    for _ in 0..decimals {
        d *= Decimal::TEN;
    }
    d.trunc().normalize().to_string()
}

pub(crate) struct Generated {
    pub accounts: Vec<AccountRecord>,
    pub payments: Vec<(PaymentRecord, Quirks)>,
    pub transactions: Vec<(TransactionRecord, Quirks)>,
    pub offramps: Vec<(OfframpRecord, Quirks)>,
    pub expected: Expected,
    /// The next unused concept (for records the sandbox inserts later).
    pub next_concept: u64,
}

/// Concepts start here and are handed out in sequence. The "trap" texts built around a
/// concept `c` (`c` followed by a digit, `9` followed by `c`) are 7-digit numbers of at
/// least 1,200,001, so they never equal a real concept while fewer than 1,080,000
/// transfer payments exist.
const FIRST_CONCEPT: u64 = 120_000;

const H: i64 = 3600;
const D: i64 = 86_400;

/// The payloads a spreadsheet would execute if a report wrote them unescaped.
const INJECTION_TEXTS: [&str; 6] = [
    "=HYPERLINK(\"http://x\",\"click\")",
    "+SUM(1,2)",
    "-1+1",
    "@cmd",
    "\t=1",
    "\r=1",
];
const INJECTION_NAMES: [&str; 4] = ["=cmd|' /C calc'!A0", "+SUM(A1:A2)", "-Mallory", "@Eve"];
const INJECTION_DEBIT_TEXT: &str = "=2+5 Comisión";
const AWKWARD_NAMES: [&str; 5] = [
    "José Muñoz",
    "Zoë Ångström",
    "山田太郎",
    "O'Brien, \"Pat\"",
    "Line one\nLine two",
];
const PLAIN_NAMES: [&str; 8] = [
    "Ana García",
    "John Smith",
    "Marie Dubois",
    "Luca Rossi",
    "Emma Müller",
    "Pedro Sánchez",
    "Sofia Kowalska",
    "J. Doe",
];
const NO_DIGIT_TEXTS: [&str; 4] = [
    "Transferencia recibida",
    "PAGO CRIPTO",
    "gracias!",
    "Bizum de MAMA",
];

pub(crate) fn generate(spec: &DataSpec) -> Generated {
    let mut g = Gen::new(spec);
    let blocks = (spec.payments / 1000).max(1);
    for _ in 0..blocks {
        g.special_block();
    }
    g.ordinary(spec);
    g.finish()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transfer,
    Card,
    Psd2,
}

struct Gen {
    rng: Rng,
    anchor: DateTime<Utc>,
    accounts: Vec<AccountRecord>,
    eur: Vec<usize>,
    usd: Option<usize>,
    payments: Vec<(PaymentRecord, Quirks)>,
    txs: Vec<(TransactionRecord, Quirks)>,
    offramps: Vec<(OfframpRecord, Quirks)>,
    expected: Expected,
    next_concept: u64,
    ids: FxHashSet<String>,
}

impl Gen {
    fn new(spec: &DataSpec) -> Self {
        let mut rng = Rng::new(spec.seed);
        let mut accounts = vec![
            account("ES9121000418450200051332", "CAIXESBBXXX", "EUR"),
            account("DE89370400440532013000", "COBADEFFXXX", "EUR"),
        ];
        if spec.accounts >= 3 {
            accounts.push(account("GB29NWBK60161331926819", "NWBKGB2LXXX", "USD"));
        }
        while accounts.len() < spec.accounts {
            let iban = format!(
                "ES{:02}{:010}{:010}",
                rng.range(10, 99),
                rng.range(0, 9_999_999_999),
                rng.range(0, 9_999_999_999)
            );
            accounts.push(account(&iban, "BSCHESMMXXX", "EUR"));
        }
        let eur = (0..accounts.len())
            .filter(|&i| accounts[i].currency == "EUR")
            .collect();
        let usd = accounts.iter().position(|a| a.currency == "USD");
        Self {
            rng,
            anchor: spec.anchor,
            accounts,
            eur,
            usd,
            payments: Vec::new(),
            txs: Vec::new(),
            offramps: Vec::new(),
            expected: Expected::default(),
            next_concept: FIRST_CONCEPT,
            ids: FxHashSet::default(),
        }
    }

    fn finish(mut self) -> Generated {
        for (t, _) in &self.txs {
            if let Some(a) = self.accounts.iter_mut().find(|a| a.iban == t.iban) {
                match t.direction {
                    Direction::Credit => a.balance += t.amount,
                    Direction::Debit => a.balance -= t.amount,
                }
            }
        }
        Generated {
            accounts: self.accounts,
            payments: self.payments,
            transactions: self.txs,
            offramps: self.offramps,
            expected: self.expected,
            next_concept: self.next_concept,
        }
    }

    // ---- primitives -------------------------------------------------------------

    /// A moment between `from_ago` and `to_ago` seconds before the anchor, with
    /// microseconds (the wire format carries them).
    fn ago(&mut self, from_ago: i64, to_ago: i64) -> DateTime<Utc> {
        let (lo, hi) = (to_ago.min(from_ago), to_ago.max(from_ago));
        let secs = self.rng.range(lo, hi + 1);
        let micros = self.rng.range(0, 1_000_000);
        self.anchor - Duration::seconds(secs) + Duration::microseconds(micros)
    }

    /// `t` plus between `lo` and `hi` seconds, never later than 10 minutes before the
    /// anchor (bank data is never from the future).
    fn after(&mut self, t: DateTime<Utc>, lo: i64, hi: i64) -> DateTime<Utc> {
        let latest = self.anchor - Duration::minutes(10);
        let room = (latest - t).num_seconds().max(0);
        let hi = hi.min(room).max(lo.min(room));
        let lo = lo.min(hi);
        let secs = self.rng.range(lo, hi + 1);
        t + Duration::seconds(secs) + Duration::microseconds(self.rng.range(0, 1_000_000))
    }

    fn unique_id(&mut self, len: usize) -> String {
        loop {
            let id = self.rng.alnum(len);
            if self.ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn cents(&mut self) -> i64 {
        // Half round amounts (people type "150"), half with cents.
        if self.rng.chance(0.5) {
            self.rng.range(2, 200) * 100
        } else {
            self.rng.range(1_000, 200_000)
        }
    }

    fn quirks(&mut self) -> Quirks {
        Quirks {
            fiat_as_string: self.rng.chance(0.15),
            user_id_as_int: self.rng.chance(0.2),
            concept_as_string: self.rng.chance(0.15),
            coin_as_string: self.rng.chance(0.25),
            extra_field: self.rng.chance(0.12),
            type_case: if self.rng.chance(0.2) {
                1 + self.rng.below(2) as u8
            } else {
                0
            },
        }
    }

    fn eur_iban(&mut self) -> String {
        let i = self.eur[self.rng.below(self.eur.len())];
        self.accounts[i].iban.clone()
    }

    /// The account a credit in `currency` lands on: the USD account for USD if there is
    /// one, else a EUR account (booking a foreign-currency credit there).
    fn iban_for(&mut self, currency: &str) -> String {
        match (currency, self.usd) {
            ("USD", Some(i)) => self.accounts[i].iban.clone(),
            _ => self.eur_iban(),
        }
    }

    fn customer_iban(&mut self) -> Option<String> {
        if self.rng.chance(0.15) {
            return None;
        }
        Some(format!(
            "ES{:02}{:010}{:010}",
            self.rng.range(10, 99),
            self.rng.range(0, 9_999_999_999),
            self.rng.range(0, 9_999_999_999)
        ))
    }

    fn plain_name(&mut self) -> String {
        (*self.rng.pick(&PLAIN_NAMES)).to_owned()
    }

    fn payment(
        &mut self,
        kind: Kind,
        status: &str,
        cents: i64,
        currency: &str,
        created_at: DateTime<Utc>,
    ) -> usize {
        let id = self.unique_id(25);
        let concept = (kind == Kind::Transfer).then(|| {
            let c = self.next_concept;
            self.next_concept += 1;
            c
        });
        let payment_type = match kind {
            Kind::Transfer => "transfer",
            Kind::Card => "card",
            Kind::Psd2 => "psd2",
        };
        let settled = matches!(status, "payment_received" | "coins_sent");
        let updated_at = if settled {
            self.after(created_at, 30 * 60, 2 * D)
        } else {
            self.after(created_at, 0, 15 * 60)
        };
        let holder = (settled && self.rng.chance(0.7)).then(|| self.plain_name());
        let txid = (status == "coins_sent").then(|| {
            let mut h = String::from("0x");
            for _ in 0..4 {
                h.push_str(&format!("{:016x}", self.rng.next_u64()));
            }
            h
        });
        let ratio = self.rng.range(9_700, 10_000);
        let record = PaymentRecord {
            external_id: (!self.rng.chance(0.1)).then(|| format!("order-{}", self.rng.alnum(10))),
            user_id: self.rng.range(100_001, 109_999).to_string(),
            status: status.to_owned(),
            fiat_cents: cents,
            fiat_symbol: currency.to_owned(),
            coin_symbol: (*self.rng.pick(&["USDC", "USDT", "ETH"])).to_owned(),
            coin_amount: Decimal::new(cents * ratio, 6).normalize(),
            created_at,
            updated_at,
            holder,
            txid,
            payment_type: payment_type.to_owned(),
            concept,
            id,
        };
        let q = self.quirks();
        self.payments.push((record, q));
        self.payments.len() - 1
    }

    fn pid(&self, p: usize) -> String {
        self.payments[p].0.id.clone()
    }

    fn concept(&self, p: usize) -> u64 {
        self.payments[p].0.concept.unwrap_or_default()
    }

    #[allow(clippy::too_many_arguments)]
    fn tx(
        &mut self,
        direction: Direction,
        iban: String,
        amount: Decimal,
        currency: &str,
        text: String,
        name: Option<String>,
        booked_at: DateTime<Utc>,
        reconciled: Option<String>,
    ) -> String {
        let id = self.unique_id(20);
        let value_date = (!self.rng.chance(0.1)).then(|| booked_at.date_naive());
        let counterparty_iban = self.customer_iban();
        let record = TransactionRecord {
            id: id.clone(),
            iban,
            amount,
            currency: currency.to_owned(),
            direction,
            concept: text,
            counterparty_name: name,
            counterparty_iban,
            booked_at,
            value_date,
            reconciled_payment_id: reconciled,
        };
        let extra = self.rng.chance(0.1);
        self.txs.push((
            record,
            Quirks {
                extra_field: extra,
                ..Quirks::default()
            },
        ));
        id
    }

    /// A credit paying payment `p` (its amount and currency unless overridden).
    fn credit_for(
        &mut self,
        p: usize,
        text: String,
        booked_at: DateTime<Utc>,
        reconciled: bool,
    ) -> String {
        let (cents, currency) = {
            let r = &self.payments[p].0;
            (r.fiat_cents, r.fiat_symbol.clone())
        };
        let iban = self.iban_for(&currency);
        let name = Some(self.plain_name());
        let reconciled = reconciled.then(|| self.pid(p));
        self.tx(
            Direction::Credit,
            iban,
            Decimal::new(cents, 2),
            &currency,
            text,
            name,
            booked_at,
            reconciled,
        )
    }

    /// Remittance text carrying concept `c` in one of the shapes people type.
    fn text_with(&mut self, c: u64) -> String {
        match self.rng.below(9) {
            0 => format!("{c}"),
            1 => format!("Ref {c} J. Doe"),
            2 => format!("concepto:{c}."),
            3 => format!("{c}/2"),
            4 => format!("TRANSFERENCIA {c} COMPRA USDC"),
            5 => format!("Pago ref.{c}"),
            6 => format!("cp{c}x"),
            7 => format!("\"{c}\" cryptopocket"),
            _ => format!("SEPA CT {c}"),
        }
    }

    fn offramp(
        &mut self,
        status: &str,
        fiat: Decimal,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> usize {
        let id = self.unique_id(25);
        let (blockchain, crypto, decimals) = if self.rng.chance(0.7) {
            ("polygon", "USDC", 6)
        } else {
            ("bsc", "BUSD", 18)
        };
        let record = OfframpRecord {
            id,
            user_id: self.rng.range(100_001, 109_999).to_string(),
            status: status.to_owned(),
            blockchain: blockchain.to_owned(),
            crypto: crypto.to_owned(),
            amount: base_units(fiat, decimals),
            decimals,
            fiat_amount: fiat,
            fiat_symbol: "EUR".to_owned(),
            iban: self.customer_iban(),
            created_at,
            updated_at,
        };
        let extra = self.rng.chance(0.1);
        self.offramps.push((
            record,
            Quirks {
                extra_field: extra,
                ..Quirks::default()
            },
        ));
        self.offramps.len() - 1
    }

    /// A debit paying out off-ramp `o` (text carries its id), booked after it finished.
    fn payout_debit(&mut self, o: usize, amount: Decimal) -> String {
        let (oid, updated) = {
            let r = &self.offramps[o].0;
            (r.id.clone(), r.updated_at)
        };
        let text = match self.rng.below(3) {
            0 => format!("Payout {oid}"),
            1 => format!("RAMPOFF {oid} USDC"),
            _ => oid,
        };
        let iban = self.eur_iban();
        let name = Some(self.plain_name());
        let booked = self.after(updated, H, 20 * H);
        self.tx(
            Direction::Debit,
            iban,
            amount,
            "EUR",
            text,
            name,
            booked,
            None,
        )
    }

    fn fiat(&mut self) -> Decimal {
        Decimal::new(self.rng.range(2_000, 500_000), 2)
    }

    fn expect_payment(&mut self, p: usize, reason: &str) {
        let id = self.pid(p);
        self.expected.payment_reasons.insert(id, reason.to_owned());
    }

    fn expect_tx(&mut self, t: &str, reason: &str) {
        self.expected
            .transaction_reasons
            .insert(t.to_owned(), reason.to_owned());
    }

    fn note_injection(&mut self, s: &str) {
        if !self.expected.injection_texts.iter().any(|x| x == s) {
            self.expected.injection_texts.push(s.to_owned());
        }
    }

    /// A `no_concept` credit with the given text and name.
    fn stray_credit(&mut self, text: String, name: Option<String>, cents: i64) -> String {
        let iban = self.eur_iban();
        let booked = self.ago(20 * D, 2 * H);
        let t = self.tx(
            Direction::Credit,
            iban,
            Decimal::new(cents, 2),
            "EUR",
            text,
            name,
            booked,
            None,
        );
        self.expect_tx(&t, "no_concept");
        t
    }

    // ---- situations -------------------------------------------------------------

    /// One copy of every situation of the rules.
    fn special_block(&mut self) {
        // Confident pairs, one per text shape, one with an awkward payer name.
        let mut first_confident = None;
        for i in 0..6usize {
            let cents = self.cents();
            let created = self.ago(30 * D, 2 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
            let text = self.text_with(self.concept(p));
            let booked = self.after(created, H, 30 * H);
            let t = self.credit_for(p, text, booked, false);
            // The first three get the awkward names a report must carry intact.
            if let Some(name) = AWKWARD_NAMES[..3].get(i) {
                self.set_name(&t, name);
            }
            self.expected.confident.push((self.pid(p), t));
            first_confident.get_or_insert(p);
        }
        // Confident although booked 6 h before the payment was created (inside the 24 h
        // tolerance: customers sometimes pay before confirming in the app).
        {
            let cents = self.cents();
            let created = self.ago(6 * D, 4 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
            let text = format!("Ref {} J. Doe", self.concept(p));
            let t = self.credit_for(p, text, created - Duration::hours(6), false);
            self.expected.confident.push((self.pid(p), t));
        }
        // Confident in USD, when there is a USD account.
        if self.usd.is_some() {
            let cents = self.cents();
            let created = self.ago(15 * D, 2 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "USD", created);
            let text = format!("{}", self.concept(p));
            let booked = self.after(created, 2 * H, 20 * H);
            let t = self.credit_for(p, text, booked, false);
            self.expected.confident.push((self.pid(p), t));
        }
        // A trap around a confident payment's concept: a digit glued on either side.
        if let Some(p) = first_confident {
            let cents = self.payments[p].0.fiat_cents;
            self.stray_credit(format!("Ref {}1", self.concept(p)), None, cents);
        }

        // amount_mismatch: a few cents short, and ten euros over.
        for delta in [-5i64, 1000] {
            let cents = self.cents().max(2_000);
            let created = self.ago(20 * D, 2 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
            let text = self.text_with(self.concept(p));
            let booked = self.after(created, H, 30 * H);
            let t = self.credit_for(p, text, booked, false);
            if let Some((r, _)) = self.txs.last_mut() {
                r.amount = Decimal::new(cents + delta, 2);
            }
            if delta > 0 {
                self.set_name(&t, INJECTION_NAMES[0]);
            }
            self.expect_payment(p, "amount_mismatch");
            self.expect_tx(&t, "amount_mismatch");
        }

        // currency_mismatch: EUR payment paid in USD, USD payment paid in EUR.
        for (pay_cur, paid_cur) in [("EUR", "USD"), ("USD", "EUR")] {
            let cents = self.cents();
            let created = self.ago(20 * D, 2 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, pay_cur, created);
            let text = self.text_with(self.concept(p));
            let booked = self.after(created, H, 30 * H);
            let iban = self.iban_for(paid_cur);
            let name = Some(self.plain_name());
            let t = self.tx(
                Direction::Credit,
                iban,
                Decimal::new(cents, 2),
                paid_cur,
                text,
                name,
                booked,
                None,
            );
            self.expect_payment(p, "currency_mismatch");
            self.expect_tx(&t, "currency_mismatch");
        }

        // too_early: concept and amount match, booked 3 days before the payment existed.
        {
            let cents = self.cents();
            let created = self.ago(6 * D, 5 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
            let text = self.text_with(self.concept(p));
            let booked = created - Duration::days(3) - Duration::hours(self.rng.range(0, 6));
            let t = self.credit_for(p, text, booked, false);
            self.set_name(&t, INJECTION_NAMES[2]);
            self.expect_payment(p, "too_early");
            self.expect_tx(&t, "too_early");
        }

        // ambiguous: the customer paid twice.
        {
            let cents = self.cents();
            let created = self.ago(8 * D, 6 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
            let c = self.concept(p);
            let b1 = self.after(created, 2 * H, 5 * H);
            let b2 = self.after(created, 26 * H, 40 * H);
            let t1 = self.credit_for(p, format!("{c}"), b1, false);
            let t2 = self.credit_for(p, format!("Ref {c} (2)"), b2, false);
            self.set_name(&t2, AWKWARD_NAMES[3]);
            self.expect_payment(p, "ambiguous");
            self.expect_tx(&t1, "ambiguous");
            self.expect_tx(&t2, "ambiguous");
        }
        // ambiguous: one credit names two open payments of the same amount.
        {
            let cents = self.cents();
            let c1 = self.ago(9 * D, 8 * D);
            let c2 = self.ago(8 * D, 7 * D);
            let p1 = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", c1);
            let p2 = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", c2);
            let text = format!("Pagos {} y {}", self.concept(p1), self.concept(p2));
            let booked = self.after(c2, 3 * H, 20 * H);
            let t = self.credit_for(p1, text, booked, false);
            self.set_name(&t, AWKWARD_NAMES[4]);
            self.expect_payment(p1, "ambiguous");
            self.expect_payment(p2, "ambiguous");
            self.expect_tx(&t, "ambiguous");
        }

        // awaiting_transfer: open payments with no credit; around the first one, traps
        // that a substring search would take for its concept.
        for i in 0..3 {
            let cents = self.cents();
            let created = self.ago(20 * D, 3 * H);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
            self.expect_payment(p, "awaiting_transfer");
            if i == 0 {
                let c = self.concept(p);
                let n1 = Some(self.plain_name());
                self.stray_credit(format!("{c}1"), n1, cents);
                let n2 = Some(self.plain_name());
                self.stray_credit(format!("Ref 9{c}"), n2, cents);
                self.stray_credit(format!("0{c}"), None, cents);
            }
        }

        // outside_lookback: open, 100 days old, with a credit that would otherwise match.
        {
            let cents = self.cents();
            let created = self.ago(101 * D, 100 * D);
            let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
            let text = self.text_with(self.concept(p));
            let booked = self.after(created, 3 * H, D);
            let t = self.credit_for(p, text, booked, false);
            self.expect_payment(p, "outside_lookback");
            self.expect_tx(&t, "outside_lookback");
        }

        // Payments that are not open, with and without credits naming them.
        {
            // Reconciled remotely: not open on either side, not reported.
            let cents = self.cents();
            let created = self.ago(40 * D, 10 * D);
            let p = self.payment(Kind::Transfer, "payment_received", cents, "EUR", created);
            let text = self.text_with(self.concept(p));
            let booked = self.after(created, H, 20 * H);
            self.credit_for(p, text, booked, true);

            // Received, reconciled, and paid a second time: the duplicate is no_concept.
            let cents = self.cents();
            let created = self.ago(30 * D, 10 * D);
            let p = self.payment(Kind::Transfer, "payment_received", cents, "EUR", created);
            let c = self.concept(p);
            let booked = self.after(created, H, 20 * H);
            self.credit_for(p, format!("{c}"), booked, true);
            let t = self.credit_for(p, format!("{c} again"), booked + Duration::days(2), false);
            self.set_name(&t, AWKWARD_NAMES[0]);
            self.expect_tx(&t, "no_concept");

            // Coins sent, reconciled long ago.
            let cents = self.cents();
            let created = self.ago(80 * D, 30 * D);
            let p = self.payment(Kind::Transfer, "coins_sent", cents, "EUR", created);
            let text = self.text_with(self.concept(p));
            let booked = self.after(created, H, 20 * H);
            self.credit_for(p, text, booked, true);

            // Received, no credit visible.
            let cents = self.cents();
            let created = self.ago(30 * D, 5 * D);
            self.payment(Kind::Transfer, "payment_received", cents, "EUR", created);

            // Started (not open) but a credit names it: no_concept.
            let cents = self.cents();
            let created = self.ago(10 * D, 2 * D);
            let p = self.payment(Kind::Transfer, "started", cents, "EUR", created);
            let text = format!("Ref {} J. Doe", self.concept(p));
            let booked = self.after(created, H, 20 * H);
            let t = self.credit_for(p, text, booked, false);
            self.expect_tx(&t, "no_concept");

            // Started, nothing else.
            let cents = self.cents();
            let created = self.ago(10 * D, H);
            self.payment(Kind::Transfer, "started", cents, "EUR", created);

            // A status the contract does not list, with a credit naming it: no_concept.
            let cents = self.cents();
            let created = self.ago(10 * D, 2 * D);
            let p = self.payment(Kind::Transfer, "payment_rejected", cents, "EUR", created);
            let text = format!("concepto:{}.", self.concept(p));
            let booked = self.after(created, H, 20 * H);
            let t = self.credit_for(p, text, booked, false);
            self.set_name(&t, AWKWARD_NAMES[1]);
            self.expect_tx(&t, "no_concept");
        }

        // Card and PSD2 payments: no concept, never open.
        for (kind, status) in [
            (Kind::Card, "coins_sent"),
            (Kind::Card, "payment_received"),
            (Kind::Psd2, "started"),
            (Kind::Card, "payment_rejected"),
            (Kind::Psd2, "coins_sent"),
        ] {
            let cents = self.cents();
            let created = self.ago(60 * D, H);
            self.payment(kind, status, cents, "EUR", created);
        }

        // no_concept credits: no digits at all, and formula-injection payloads.
        for (i, text) in NO_DIGIT_TEXTS.iter().enumerate() {
            let name = Some(AWKWARD_NAMES[i % AWKWARD_NAMES.len()].to_owned());
            let cents = self.cents();
            self.stray_credit((*text).to_owned(), name, cents);
        }
        for (i, text) in INJECTION_TEXTS.iter().enumerate() {
            let name = match i {
                0 => Some(INJECTION_NAMES[1].to_owned()),
                1 => Some(AWKWARD_NAMES[2].to_owned()),
                _ => Some(self.plain_name()),
            };
            let cents = self.cents();
            self.stray_credit((*text).to_owned(), name, cents);
            self.note_injection(text);
        }
        for n in [INJECTION_NAMES[0], INJECTION_NAMES[1], INJECTION_NAMES[2]] {
            self.note_injection(n);
        }

        self.special_offramps();
    }

    fn set_name(&mut self, tx_id: &str, name: &str) {
        if let Some((r, _)) = self.txs.iter_mut().rev().find(|(r, _)| r.id == tx_id) {
            r.counterparty_name = Some(name.to_owned());
        }
    }

    fn special_offramps(&mut self) {
        // Paid out: finished, with a debit naming it (same amount and currency).
        for _ in 0..2 {
            let fiat = self.fiat();
            let created = self.ago(40 * D, 6 * D);
            let updated = self.after(created, 2 * H, 2 * D);
            let o = self.offramp("finished", fiat, created, updated);
            self.payout_debit(o, fiat);
        }
        // Finished 10 days ago, no debit: payout_not_seen.
        {
            let fiat = self.fiat();
            let updated = self.ago(10 * D + 6 * H, 10 * D);
            let created = updated - Duration::hours(5);
            let o = self.offramp("finished", fiat, created, updated);
            let id = self.offramps[o].0.id.clone();
            self.expected
                .payout_reasons
                .insert(id, "payout_not_seen".to_owned());
        }
        // Finished a day ago, no debit yet: still inside the grace period, not reported.
        {
            let fiat = self.fiat();
            let updated = self.ago(D + 4 * H, D);
            let created = updated - Duration::hours(3);
            self.offramp("finished", fiat, created, updated);
        }
        // Not finished: never reported.
        for status in ["pending", "crypto_received", "failed"] {
            let fiat = self.fiat();
            let created = self.ago(5 * D, 2 * H);
            let updated = self.after(created, 0, H);
            self.offramp(status, fiat, created, updated);
        }
        // Finished 8 days ago; a debit names it but for one euro more: the debit explains
        // nothing and the payout is still missing.
        {
            let fiat = self.fiat();
            let updated = self.ago(8 * D + 6 * H, 8 * D);
            let created = updated - Duration::hours(2);
            let o = self.offramp("finished", fiat, created, updated);
            let t = self.payout_debit(o, fiat + Decimal::ONE);
            let id = self.offramps[o].0.id.clone();
            self.expected
                .payout_reasons
                .insert(id, "payout_not_seen".to_owned());
            self.expect_tx(&t, "unexplained_debit");
        }
        // Unexplained debits: a bank fee, a refund, a formula-injection text.
        let fees: [(&str, Option<&str>, i64); 3] = [
            ("Comisión mantenimiento cuenta", None, 1_200),
            ("Devolución transferencia", Some(AWKWARD_NAMES[1]), 5_000),
            (INJECTION_DEBIT_TEXT, Some(INJECTION_NAMES[3]), 700),
        ];
        for (text, name, cents) in fees {
            let iban = self.eur_iban();
            let booked = self.ago(20 * D, 3 * H);
            let t = self.tx(
                Direction::Debit,
                iban,
                Decimal::new(cents, 2),
                "EUR",
                text.to_owned(),
                name.map(str::to_owned),
                booked,
                None,
            );
            self.expect_tx(&t, "unexplained_debit");
        }
        self.note_injection(INJECTION_DEBIT_TEXT);
        self.note_injection(INJECTION_NAMES[3]);
    }

    /// Ordinary items up to the requested counts.
    fn ordinary(&mut self, spec: &DataSpec) {
        let mut settled: Vec<usize> = Vec::new();
        while self.payments.len() < spec.payments {
            let roll = self.rng.below(100);
            let kind = match roll {
                0..70 => Kind::Transfer,
                70..90 => Kind::Card,
                _ => Kind::Psd2,
            };
            let cents = self.cents();
            if kind != Kind::Transfer {
                let status = *self.rng.pick(&[
                    "coins_sent",
                    "coins_sent",
                    "coins_sent",
                    "payment_received",
                    "started",
                    "payment_rejected",
                ]);
                let created = self.ago(180 * D, 10 * 60);
                self.payment(kind, status, cents, "EUR", created);
                continue;
            }
            if self.rng.chance(spec.pending_share) {
                // A confident pair waiting for the job.
                let created = self.ago(60 * D, 6 * H);
                let p = self.payment(Kind::Transfer, "pending_bank", cents, "EUR", created);
                let text = self.text_with(self.concept(p));
                let booked = self.after(created, 20 * 60, 3 * D);
                let t = self.credit_for(p, text, booked, false);
                self.expected.confident.push((self.pid(p), t));
                continue;
            }
            let r = self.rng.below(100);
            if r < 15 {
                let created = self.ago(30 * D, 10 * 60);
                self.payment(Kind::Transfer, "started", cents, "EUR", created);
            } else {
                let status = if r < 50 {
                    "payment_received"
                } else {
                    "coins_sent"
                };
                let created = self.ago(180 * D, 2 * D);
                let p = self.payment(Kind::Transfer, status, cents, "EUR", created);
                settled.push(p);
            }
        }

        let special_offramps = self.offramps.len();
        for _ in special_offramps..spec.offramps {
            let fiat = self.fiat();
            match self.rng.below(100) {
                0..80 => {
                    let created = self.ago(120 * D, 5 * D);
                    let updated = self.after(created, H, 2 * D);
                    let o = self.offramp("finished", fiat, created, updated);
                    self.payout_debit(o, fiat);
                }
                80..88 => {
                    let created = self.ago(3 * D, H);
                    self.offramp("pending", fiat, created, created);
                }
                88..94 => {
                    let created = self.ago(2 * D, H);
                    let updated = self.after(created, 0, 30 * 60);
                    self.offramp("crypto_received", fiat, created, updated);
                }
                _ => {
                    let created = self.ago(60 * D, 2 * D);
                    let updated = self.after(created, H, 3 * H);
                    self.offramp("failed", fiat, created, updated);
                }
            }
        }

        // Settled payments show their reconciled credit while the transaction budget
        // lasts; older ones predate the visible account history.
        for p in settled {
            if self.txs.len() >= spec.transactions {
                break;
            }
            let created = self.payments[p].0.created_at;
            let text = self.text_with(self.concept(p));
            let booked = self.after(created, 20 * 60, D);
            self.credit_for(p, text, booked, true);
        }
        // Filler: credits reconciled long ago with payments outside this data set.
        while self.txs.len() < spec.transactions {
            let iban = self.eur_iban();
            let booked = self.ago(200 * D, D);
            let cents = self.cents();
            let name = Some(self.plain_name());
            let foreign = self.rng.alnum(25);
            self.tx(
                Direction::Credit,
                iban,
                Decimal::new(cents, 2),
                "EUR",
                "Transferencia SEPA".to_owned(),
                name,
                booked,
                Some(foreign),
            );
        }
    }
}

fn account(iban: &str, bic: &str, currency: &str) -> AccountRecord {
    AccountRecord {
        iban: iban.to_owned(),
        bic: bic.to_owned(),
        holder_name: "CryptoPocket Integration SL".to_owned(),
        currency: currency.to_owned(),
        balance: Decimal::new(25_000_000, 2),
    }
}

#[cfg(test)]
mod tests {
    //! An independent, brute-force reading of the rules over the generated set, used
    //! only to check that what was written down by construction is right.
    use super::*;
    use chrono::TimeZone;

    fn anchor() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 26, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn runs(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit() {
                let s = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                out.push(&text[s..i]);
            } else {
                i += 1;
            }
        }
        out
    }

    /// Reasons by the rules, pairwise, for open payments and open credits.
    fn brute_force(g: &Generated, now: DateTime<Utc>) -> Expected {
        let open: Vec<&PaymentRecord> = g
            .payments
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.status == "pending_bank")
            .collect();
        let credits: Vec<&TransactionRecord> = g
            .transactions
            .iter()
            .map(|(t, _)| t)
            .filter(|t| t.direction == Direction::Credit && t.reconciled_payment_id.is_none())
            .collect();
        let appears = |p: &PaymentRecord, t: &TransactionRecord| {
            let c = p.concept.map(|c| c.to_string()).unwrap_or_default();
            runs(&t.concept).contains(&c.as_str())
        };
        let fits = |p: &PaymentRecord, t: &TransactionRecord| {
            appears(p, t)
                && Decimal::new(p.fiat_cents, 2) == t.amount
                && p.fiat_symbol == t.currency
                && t.booked_at >= p.created_at - Duration::hours(24)
                && p.created_at >= now - Duration::days(90)
        };
        let mut e = Expected::default();
        for t in &credits {
            let cands: Vec<&&PaymentRecord> = open.iter().filter(|p| appears(p, t)).collect();
            if cands.is_empty() {
                e.transaction_reasons
                    .insert(t.id.clone(), "no_concept".into());
            }
        }
        for p in &open {
            let cands: Vec<&&TransactionRecord> =
                credits.iter().filter(|t| appears(p, t)).collect();
            let reason = match cands.as_slice() {
                [] => "awaiting_transfer",
                [t] => {
                    let t_cands = open.iter().filter(|q| appears(q, t)).count();
                    if t_cands > 1 {
                        "ambiguous"
                    } else if fits(p, t) {
                        e.confident.push((p.id.clone(), t.id.clone()));
                        continue;
                    } else if p.fiat_symbol != t.currency {
                        "currency_mismatch"
                    } else if Decimal::new(p.fiat_cents, 2) != t.amount {
                        "amount_mismatch"
                    } else if t.booked_at < p.created_at - Duration::hours(24) {
                        "too_early"
                    } else {
                        "outside_lookback"
                    }
                }
                _ => "ambiguous",
            };
            e.payment_reasons.insert(p.id.clone(), reason.into());
            for t in cands {
                let prev = e
                    .transaction_reasons
                    .insert(t.id.clone(), reason.to_owned());
                assert!(prev.is_none_or(|p| p == reason), "{} has two reasons", t.id);
            }
        }
        // Debits and payouts.
        let finished: Vec<&OfframpRecord> = g
            .offramps
            .iter()
            .map(|(o, _)| o)
            .filter(|o| o.status == "finished")
            .collect();
        let mut paid = FxHashSet::default();
        for (t, _) in &g.transactions {
            if t.direction != Direction::Debit {
                continue;
            }
            match finished
                .iter()
                .find(|o| t.concept.contains(&o.id) && o.fiat_amount == t.amount)
            {
                Some(o) => {
                    paid.insert(o.id.clone());
                }
                None => {
                    e.transaction_reasons
                        .insert(t.id.clone(), "unexplained_debit".into());
                }
            }
        }
        for o in finished {
            if !paid.contains(&o.id) && o.updated_at < now - Duration::days(3) {
                e.payout_reasons
                    .insert(o.id.clone(), "payout_not_seen".into());
            }
        }
        e
    }

    fn check(spec: &DataSpec) {
        let g = generate(spec);
        for now in [spec.anchor, spec.anchor + Duration::minutes(30)] {
            let b = brute_force(&g, now);
            let mut want = g.expected.confident.clone();
            let mut got = b.confident.clone();
            want.sort();
            got.sort();
            assert_eq!(got, want, "confident pairs");
            assert_eq!(b.payment_reasons, g.expected.payment_reasons);
            assert_eq!(b.transaction_reasons, g.expected.transaction_reasons);
            assert_eq!(b.payout_reasons, g.expected.payout_reasons);
        }
    }

    #[test]
    fn the_small_set_matches_an_independent_reading_of_the_rules() {
        check(&DataSpec::small(42, anchor()));
        check(&DataSpec::small(7, anchor()));
    }

    #[test]
    fn a_scaled_set_matches_an_independent_reading_of_the_rules() {
        check(&DataSpec::scaled(5, anchor(), 3_000, 3_000, 300));
    }

    #[test]
    fn two_accounts_are_enough_for_every_situation() {
        let mut spec = DataSpec::small(9, anchor());
        spec.accounts = 2;
        check(&spec);
    }

    #[test]
    fn every_reason_is_present_in_the_small_set() {
        let g = generate(&DataSpec::small(42, anchor()));
        let e = &g.expected;
        for r in [
            "amount_mismatch",
            "currency_mismatch",
            "too_early",
            "ambiguous",
            "awaiting_transfer",
            "outside_lookback",
        ] {
            assert!(e.payment_reasons.values().any(|v| v == r), "{r}");
        }
        for r in ["no_concept", "unexplained_debit", "ambiguous"] {
            assert!(e.transaction_reasons.values().any(|v| v == r), "{r}");
        }
        assert!(!e.payout_reasons.is_empty());
        assert!(e.confident.len() >= 6);
        assert_eq!(e.injection_texts.len(), 11);
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a = generate(&DataSpec::small(11, anchor()));
        let b = generate(&DataSpec::small(11, anchor()));
        assert_eq!(a.payments, b.payments);
        assert_eq!(a.transactions, b.transactions);
        assert_eq!(a.offramps, b.offramps);
        assert_eq!(a.expected, b.expected);
        let c = generate(&DataSpec::small(12, anchor()));
        assert_ne!(a.payments, c.payments);
    }

    #[test]
    fn scaled_counts_are_met() {
        let spec = DataSpec::scaled(1, anchor(), 5_000, 6_000, 500);
        let g = generate(&spec);
        assert_eq!(g.payments.len(), 5_000);
        assert_eq!(g.offramps.len(), 500);
        assert!(g.transactions.len() >= 6_000);
    }
}
