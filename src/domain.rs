//! Domain types: ids, money, and the three records the job reconciles.
//!
//! Everything here is parsed once, at the edge (the API client, the store), through
//! constructors that can fail; the rest of the crate cannot hold an invalid value.
//! No I/O, no clock.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use crate::text::format_amount;

/// Why a value could not become a domain type. Names the kind of value and shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("empty {0}")]
    Empty(&'static str),
    #[error("invalid {kind}: {value:?} ({why})")]
    Invalid {
        kind: &'static str,
        value: String,
        why: &'static str,
    },
}

fn invalid(kind: &'static str, value: &str, why: &'static str) -> DomainError {
    DomainError::Invalid {
        kind,
        value: value.chars().take(80).collect(),
        why,
    }
}

macro_rules! opaque_id {
    ($(#[$m:meta])* $name:ident, $kind:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts any non-empty string without surrounding whitespace.
            pub fn parse(s: impl Into<String>) -> Result<Self, DomainError> {
                let s = s.into();
                let t = s.trim();
                if t.is_empty() {
                    return Err(DomainError::Empty($kind));
                }
                if t.len() != s.len() {
                    return Ok(Self(t.to_owned()));
                }
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, DomainError> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

opaque_id!(
    /// A CryptoPocket on-ramp payment id (25-char alphanumeric in practice; opaque here).
    PaymentId,
    "payment id"
);
opaque_id!(
    /// A bank transaction id, unique per integration.
    BankTxId,
    "bank transaction id"
);
opaque_id!(
    /// A CryptoPocket off-ramp id.
    OfframpId,
    "off-ramp id"
);

/// An IBAN, normalised: spaces removed, upper-case. Checked for shape, not checksum
/// (the provider is the authority on its own accounts; a checksum failure would only
/// hide records from the report).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iban(String);

impl Iban {
    pub fn parse(s: impl AsRef<str>) -> Result<Self, DomainError> {
        let raw = s.as_ref();
        let norm: String = if raw
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            // Already in the stored form (the store reads one per credit every run).
            raw.to_owned()
        } else {
            raw.chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        if norm.is_empty() {
            return Err(DomainError::Empty("IBAN"));
        }
        let b = norm.as_bytes();
        if !(5..=34).contains(&b.len())
            || !b[..2].iter().all(u8::is_ascii_uppercase)
            || !b[2..4].iter().all(u8::is_ascii_digit)
            || !b.iter().all(u8::is_ascii_alphanumeric)
        {
            return Err(invalid(
                "IBAN",
                raw,
                "expected 2 letters, 2 digits, then up to 30 letters or digits",
            ));
        }
        Ok(Self(norm))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Country code and last four characters, e.g. `ES…1234`, for reports that leave the
    /// building.
    pub fn masked(&self) -> String {
        let s = &self.0;
        format!("{}…{}", &s[..2], &s[s.len() - 4..])
    }
}
impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for Iban {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(s)
    }
}
impl From<Iban> for String {
    fn from(v: Iban) -> String {
        v.0
    }
}

/// A payment's transfer reference: a non-empty string of ASCII digits, kept exactly as
/// issued (leading zeros are significant; it may not fit an integer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Concept(String);

impl Concept {
    pub fn parse(s: impl AsRef<str>) -> Result<Self, DomainError> {
        let t = s.as_ref().trim();
        if t.is_empty() {
            return Err(DomainError::Empty("concept"));
        }
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("concept", t, "expected digits only"));
        }
        Ok(Self(t.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Concept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for Concept {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(s)
    }
}
impl From<Concept> for String {
    fn from(v: Concept) -> String {
        v.0
    }
}

/// An ISO-4217-like currency code: three ASCII letters, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(s: impl AsRef<str>) -> Result<Self, DomainError> {
        let t = s.as_ref().trim();
        if t.len() != 3 || !t.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(invalid("currency", t, "expected three letters"));
        }
        Ok(Self(t.to_ascii_uppercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(s)
    }
}
impl From<Currency> for String {
    fn from(v: Currency) -> String {
        v.0
    }
}

/// An amount of money in currency units, with its currency. Never a float.
///
/// The unit is explicit in the constructor: [`Money::from_cents`] for the provider's
/// integer-cents fields, [`Money::from_units`] for decimal-units fields.
///
/// ```
/// use std::str::FromStr;
/// use cp_recon::domain::{Currency, Money};
/// use rust_decimal::Decimal;
///
/// let eur = Currency::parse("EUR").unwrap();
/// // A payment's `fiat_amount` (cents) against a bank transaction's `amount` (units).
/// let expected = Money::from_cents(Decimal::from(15050), eur.clone()).unwrap();
/// let received = Money::from_units(Decimal::from_str("150.50").unwrap(), eur);
/// assert!(expected.same_as(&received));
/// assert_eq!(expected.to_string(), "150.50 EUR");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// `cents` must be a whole number (`15050` → 150.50).
    pub fn from_cents(cents: Decimal, currency: Currency) -> Result<Self, DomainError> {
        if !cents.fract().is_zero() {
            return Err(invalid(
                "amount in cents",
                &cents.to_string(),
                "not a whole number of cents",
            ));
        }
        let mut amount = cents / Decimal::ONE_HUNDRED;
        amount.rescale(2);
        Ok(Self { amount, currency })
    }
    /// A decimal amount in currency units (`"150.50"` → 150.50).
    pub fn from_units(amount: Decimal, currency: Currency) -> Self {
        Self {
            amount: amount.normalize(),
            currency,
        }
    }
    pub fn amount(&self) -> Decimal {
        self.amount
    }
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
    /// Exact equality of value and currency (`150.5 EUR == 150.50 EUR`).
    pub fn same_as(&self, other: &Money) -> bool {
        self.currency == other.currency && self.amount == other.amount
    }
    /// The amount with two decimals and a dot, as reports and the provider write it
    /// (more decimals are kept when the value has them).
    pub fn amount_str(&self) -> String {
        format_amount(self.amount)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_str(), self.currency)
    }
}

/// On-ramp payment status. An open set: unknown values are kept, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Started,
    PendingBank,
    PaymentReceived,
    CoinsSent,
    Other(String),
}

impl PaymentStatus {
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "started" => Self::Started,
            "pending_bank" => Self::PendingBank,
            "payment_received" => Self::PaymentReceived,
            "coins_sent" => Self::CoinsSent,
            _ => Self::Other(s.trim().to_owned()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Started => "started",
            Self::PendingBank => "pending_bank",
            Self::PaymentReceived => "payment_received",
            Self::CoinsSent => "coins_sent",
            Self::Other(s) => s,
        }
    }
    pub fn is_open(&self) -> bool {
        matches!(self, Self::PendingBank)
    }
}
impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Off-ramp status: `pending`, `crypto_received`, `finished`, `failed`, or anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OfframpStatus {
    Pending,
    CryptoReceived,
    Finished,
    Failed,
    Other(String),
}

impl OfframpStatus {
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "pending" => Self::Pending,
            "crypto_received" => Self::CryptoReceived,
            "finished" => Self::Finished,
            "failed" => Self::Failed,
            _ => Self::Other(s.trim().to_owned()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::CryptoReceived => "crypto_received",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Other(s) => s,
        }
    }
}
impl fmt::Display for OfframpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Money in (`credit`) or out (`debit`) of one of the integration's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Credit,
    Debit,
}

impl Direction {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "credit" => Ok(Self::Credit),
            "debit" => Ok(Self::Debit),
            _ => Err(invalid("direction", s, "expected credit or debit")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Debit => "debit",
        }
    }
}
impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An on-ramp payment (`GET /payments`, `GET /payment/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub external_id: Option<String>,
    pub user_id: Option<String>,
    pub status: PaymentStatus,
    /// What the customer must transfer (the provider's `fiat_amount`, in cents on the wire).
    pub amount: Money,
    pub payment_type: Option<String>,
    /// The transfer reference; `None` for non-transfer payments.
    pub concept: Option<Concept>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A transaction booked on one of the integration's bank accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankTransaction {
    pub id: BankTxId,
    pub iban: Iban,
    /// Always positive; `direction` says which way it went.
    pub amount: Money,
    pub direction: Direction,
    /// Free remittance text typed by the sender: attacker-controlled.
    pub concept_text: String,
    pub counterparty_name: Option<String>,
    pub counterparty_iban: Option<String>,
    pub booked_at: DateTime<Utc>,
    pub value_date: Option<NaiveDate>,
    /// Set by the provider once the transaction is reconciled with a payment.
    pub reconciled_payment_id: Option<PaymentId>,
}

/// An off-ramp (crypto sold, fiat paid out from one of the integration's accounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offramp {
    pub id: OfframpId,
    pub user_id: Option<String>,
    pub status: OfframpStatus,
    /// The fiat payout, in currency units.
    pub fiat: Money,
    pub iban: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One of the integration's bank accounts (`GET /banking/accounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    pub iban: Iban,
    pub bic: Option<String>,
    pub holder_name: Option<String>,
    pub currency: Option<Currency>,
    pub balance: Option<Decimal>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_concept_is_written_back_as_the_digits_it_was_read_from() {
        let c = Concept::parse("0120037").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"0120037\"");
        assert_eq!(String::from(c), "0120037");
    }

    fn eur() -> Currency {
        Currency::parse("eur").unwrap()
    }

    #[test]
    fn cents_become_units_with_two_decimals() {
        let m = Money::from_cents(Decimal::from(15050), eur()).unwrap();
        assert_eq!(m.amount_str(), "150.50");
        assert_eq!(m.to_string(), "150.50 EUR");
    }

    #[test]
    fn fractional_cents_are_rejected() {
        assert!(Money::from_cents(Decimal::from_str("150.5").unwrap(), eur()).is_err());
    }

    #[test]
    fn cents_and_units_compare_exactly() {
        let a = Money::from_cents(Decimal::from(15050), eur()).unwrap();
        let b = Money::from_units(Decimal::from_str("150.5").unwrap(), eur());
        let c = Money::from_units(Decimal::from_str("150.51").unwrap(), eur());
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
    }

    #[test]
    fn different_currencies_are_never_the_same_money() {
        let a = Money::from_units(Decimal::ONE, eur());
        let b = Money::from_units(Decimal::ONE, Currency::parse("USD").unwrap());
        assert!(!a.same_as(&b));
    }

    #[test]
    fn ibans_are_normalised_and_masked() {
        let i = Iban::parse("es91 2100 0418 4502 0005 1332").unwrap();
        assert_eq!(i.as_str(), "ES9121000418450200051332");
        assert_eq!(i.masked(), "ES…1332");
        assert!(Iban::parse("1234").is_err());
        assert!(Iban::parse("ES91-2100").is_err());
    }

    proptest::proptest! {
        #[test]
        fn an_iban_in_any_spacing_and_case_reads_as_its_normal_form(
            s in "[A-Za-z]{0,3}[0-9]{0,3}[A-Za-z0-9 \t]{0,36}",
        ) {
            let normal: String = s
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            let (spaced, plain) = (Iban::parse(&s), Iban::parse(&normal));
            proptest::prop_assert_eq!(spaced.is_ok(), plain.is_ok());
            if let (Ok(a), Ok(b)) = (spaced, plain) {
                proptest::prop_assert_eq!(a.as_str(), normal.as_str());
                proptest::prop_assert_eq!(b.as_str(), normal.as_str());
            }
        }
    }

    #[test]
    fn concepts_keep_leading_zeros_and_reject_non_digits() {
        assert_eq!(Concept::parse("0120037").unwrap().as_str(), "0120037");
        assert!(Concept::parse("12a").is_err());
        assert!(Concept::parse("").is_err());
    }

    #[test]
    fn unknown_statuses_are_kept_not_rejected() {
        let s = PaymentStatus::parse("payment_rejected");
        assert_eq!(s, PaymentStatus::Other("payment_rejected".into()));
        assert!(!s.is_open());
        assert!(PaymentStatus::parse("PENDING_BANK").is_open());
    }
}
