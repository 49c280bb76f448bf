//! The provider's records as they come over the wire, read tolerantly (§3, §4): ids
//! as strings or numbers, amounts as exact decimals in cents or units, times with or
//! without offset. Each item is read in one pass from its raw JSON; one that cannot be
//! read becomes a bad record, never an error of the whole list. Also the query and path
//! of a list request.
//!
//! Tolerant of the spellings, strict on the types (§13): each field a record kind reads
//! has a shape, the JSON types it may arrive as. A field of another type (an object
//! where a concept is expected, a boolean for an amount) makes the record unreadable;
//! it is never read as absent or empty.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use serde_json::value::RawValue;

use super::transport::{Answer, snippet, snippet_bytes};
use super::{ApiError, ListQuery, PATH_ACCOUNTS, Page, PageInfo};
use crate::domain::{
    BankAccount, BankTransaction, BankTxId, Concept, Currency, Direction, DomainError, Iban, Money,
    Offramp, OfframpId, OfframpStatus, Payment, PaymentId, PaymentStatus,
};
use crate::record::{BadRecord, Record};
use crate::text::{date_from_text, wire_time};

/// Why one record could not be read. The message names the field; it becomes the bad
/// record's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("`{field}` is missing")]
    Missing { field: &'static str },
    #[error("`{field}` is not a string or number")]
    NotText { field: &'static str },
    #[error("`{field}` is not a decimal: {snippet}")]
    NotDecimal {
        field: &'static str,
        snippet: String,
    },
    #[error("`{field}` is not an ISO-8601 time: {text:?}")]
    NotTime { field: &'static str, text: String },
    #[error("`{field}` is not a date: {text:?}")]
    NotDate { field: &'static str, text: String },
    #[error("`{field}` must be positive, got {amount}")]
    NotPositive {
        field: &'static str,
        amount: Decimal,
    },
    /// An id the domain refuses (empty, say).
    #[error("{0}")]
    BadId(DomainError),
    /// A value the domain refuses (a currency, an IBAN, cents with a fraction...).
    #[error("`{field}`: {source}")]
    Invalid {
        field: &'static str,
        source: DomainError,
    },
    /// A field of a JSON type its shape does not allow (§13, rules §1). `id` is the
    /// record's id when that one is readable.
    #[error("{record}{}: field \"{field}\" is {found}, expected {expected}", named(.id))]
    WrongType {
        record: &'static str,
        id: Option<String>,
        field: &'static str,
        found: JsonType,
        expected: &'static str,
    },
}

fn named(id: &Option<String>) -> String {
    id.as_ref().map(|id| format!(" {id}")).unwrap_or_default()
}

/// The type of a JSON value, as a [`WireError::WrongType`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    /// The type of a value, from its first byte (a raw value starts at the value).
    fn of(v: &RawValue) -> Self {
        match v.get().as_bytes().first() {
            Some(b'"') => Self::String,
            Some(b'{') => Self::Object,
            Some(b'[') => Self::Array,
            Some(b't' | b'f') => Self::Boolean,
            Some(b'n') => Self::Null,
            _ => Self::Number,
        }
    }
}

impl std::fmt::Display for JsonType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Boolean => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        })
    }
}

/// The JSON types a field may arrive as; null, where allowed, reads as absent.
#[derive(Clone, Copy)]
struct Shape {
    types: &'static [JsonType],
    expected: &'static str,
}

/// Text: statuses, currencies, IBANs, times, dates, names.
const STR: Shape = Shape {
    types: &[JsonType::String],
    expected: "a string",
};
const STR_OR_NULL: Shape = Shape {
    types: &[JsonType::String, JsonType::Null],
    expected: "a string or null",
};
/// Ids, concepts and amounts: a string or a number (§4).
const STR_OR_NUM: Shape = Shape {
    types: &[JsonType::String, JsonType::Number],
    expected: "a string or number",
};
const STR_NUM_OR_NULL: Shape = Shape {
    types: &[JsonType::String, JsonType::Number, JsonType::Null],
    expected: "a string, number or null",
};

fn invalid(field: &'static str) -> impl FnOnce(DomainError) -> WireError {
    move |source| WireError::Invalid { field, source }
}

pub(super) fn transactions_path(iban: &Iban) -> String {
    format!(
        "{PATH_ACCOUNTS}/{}/transactions",
        encode_path(iban.as_str())
    )
}

pub(super) fn list_params(
    q: &ListQuery,
    page: u32,
    per_page: u32,
    with_status: bool,
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("page", page.to_string()),
        ("per_page", per_page.to_string()),
    ];
    if let Some(f) = q.from {
        v.push(("from", wire_time(f)));
    }
    if let Some(t) = q.to {
        v.push(("to", wire_time(t)));
    }
    if with_status && let Some(s) = &q.status {
        v.push(("status", s.as_str().to_owned()));
    }
    v
}

pub(super) fn encode_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(super) fn parse_page<T>(
    endpoint: &str,
    answer: &Answer,
    parse: fn(&RawValue) -> Result<T, WireError>,
) -> Result<Page<T>, ApiError> {
    let bad_page = |why: &str| ApiError::Malformed {
        endpoint: endpoint.to_owned(),
        why: why.to_owned(),
        snippet: snippet_bytes(&answer.body),
    };
    let env = answer.page_parts().map_err(|why| bad_page(&why))?;
    let items: Vec<&RawValue> = env
        .data
        .and_then(|d| serde_json::from_str(d).ok())
        .ok_or_else(|| bad_page("`data` is not a list"))?;
    let pag: Option<Obj<'_>> = env
        .pagination
        .or(env.meta)
        .and_then(|p| obj(p, PAGINATION_FIELDS).ok());
    let field = |name: &str| pag.as_ref().and_then(|p| p.get(name)).and_then(flex_u64);
    // `total` is required: without it no read of more than one page can be proven whole.
    let (Some(current_page), Some(per_page), Some(last_page), Some(total)) = (
        field("current_page"),
        field("per_page"),
        field("last_page"),
        field("total"),
    ) else {
        return Err(bad_page(
            "missing or invalid `pagination` (current_page, per_page, last_page and total)",
        ));
    };
    let info = PageInfo {
        current_page: u32::try_from(current_page).unwrap_or(u32::MAX),
        per_page: u32::try_from(per_page).unwrap_or(u32::MAX),
        last_page: u32::try_from(last_page).unwrap_or(u32::MAX),
        total,
        item_count: items.len(),
    };
    let mut good = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for item in items {
        match parse(item) {
            Ok(value) => good.push(Record {
                value,
                raw: item.get().to_owned(),
            }),
            Err(error) => bad.push(BadRecord {
                endpoint: endpoint.to_owned(),
                id: obj(item.get(), ID_FIELD)
                    .ok()
                    .and_then(|o| o.get("id").and_then(flex_string)),
                raw: item.get().to_owned(),
                error: error.to_string(),
            }),
        }
    }
    Ok(Page {
        items: good,
        bad,
        info,
    })
}

pub(super) fn find_array<'a>(v: &'a Value, paths: &[&str]) -> Option<&'a Vec<Value>> {
    paths.iter().find_map(|p| {
        let mut cur = v;
        for part in p.split('.') {
            cur = cur.get(part)?;
        }
        cur.as_array()
    })
}

/// Most fields any parser reads from one object.
const MAX_FIELDS: usize = 16;

/// The fields a parser reads from one JSON object, each kept as raw JSON text borrowed
/// from the body. The object is read in one pass: other fields are skipped, no key is
/// copied, and a field given twice keeps its last value.
struct Obj<'a> {
    names: &'static [Field],
    values: [Option<&'a RawValue>; MAX_FIELDS],
}

impl<'a> Obj<'a> {
    /// `k` must be one of the names the object was read with.
    fn get(&self, k: &str) -> Option<&'a RawValue> {
        let i = self.names.iter().position(|(n, _)| *n == k);
        debug_assert!(i.is_some(), "field `{k}` was not asked for");
        self.values[i?]
    }
}

fn obj<'a>(text: &'a str, names: &'static [Field]) -> Result<Obj<'a>, WireError> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    ObjSeed(names)
        .deserialize(&mut de)
        .and_then(|o| de.end().map(|()| o))
        .map_err(|_| WireError::NotAnObject)
}

/// Reads an object into an [`Obj`] of the given fields.
struct ObjSeed(&'static [Field]);

impl<'de> serde::de::DeserializeSeed<'de> for ObjSeed {
    type Value = Obj<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Obj<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ObjSeed {
    type Value = Obj<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Obj<'de>, A::Error> {
        debug_assert!(self.0.len() <= MAX_FIELDS);
        let mut values = [None; MAX_FIELDS];
        while let Some(slot) = map.next_key_seed(KeySeed(self.0))? {
            match slot {
                Some(i) => values[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Obj {
            names: self.0,
            values,
        })
    }
}

/// A key, as its index among the wanted fields (`None`: not wanted).
struct KeySeed(&'static [Field]);

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for KeySeed {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Option<usize>, E> {
        Ok(self
            .0
            .iter()
            .position(|(n, _)| *n == k)
            .filter(|&i| i < MAX_FIELDS))
    }
}

/// A field that must be there: absent or null, it is missing ([`record`] has already
/// refused a null where the field's shape does not allow one).
fn req<'a>(o: &Obj<'a>, k: &'static str) -> Result<&'a RawValue, WireError> {
    match o.get(k) {
        Some(v) if v.get() != "null" => Ok(v),
        _ => Err(WireError::Missing { field: k }),
    }
}

fn req_str<'a>(o: &Obj<'a>, k: &'static str) -> Result<Cow<'a, str>, WireError> {
    flex_str(req(o, k)?).ok_or(WireError::NotText { field: k })
}

fn req_string(o: &Obj<'_>, k: &'static str) -> Result<String, WireError> {
    req_str(o, k).map(Cow::into_owned)
}

fn opt_str<'a>(o: &Obj<'a>, k: &str) -> Option<Cow<'a, str>> {
    o.get(k).and_then(flex_str).filter(|s| !s.is_empty())
}

fn opt_string(o: &Obj<'_>, k: &str) -> Option<String> {
    opt_str(o, k).map(Cow::into_owned)
}

/// A string, or a number's literal text (ids and concepts come both ways, §4). Borrowed
/// from the body unless the string has escapes.
pub(super) fn flex_str(v: &RawValue) -> Option<Cow<'_, str>> {
    let text = v.get();
    match text.as_bytes().first()? {
        b'"' if !text.contains('\\') => text.get(1..text.len() - 1).map(Cow::Borrowed),
        b'"' => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        b'-' | b'0'..=b'9' => Some(Cow::Borrowed(text)),
        _ => None,
    }
}

fn flex_string(v: &RawValue) -> Option<String> {
    flex_str(v).map(Cow::into_owned)
}

fn flex_u64(v: &RawValue) -> Option<u64> {
    flex_str(v).and_then(|s| s.trim().parse().ok())
}

/// A decimal from a JSON number's literal text or a numeric string, trimmed; never
/// through f64 and never rounded ([`exact_decimal`]). Only a JSON number may carry an
/// exponent.
pub(super) fn flex_decimal(v: &RawValue) -> Option<Decimal> {
    let number = matches!(v.get().as_bytes().first(), Some(b'-' | b'0'..=b'9'));
    exact_decimal(flex_str(v)?.trim(), number)
}

/// The largest coefficient a [`Decimal`] holds: 2^96 - 1, 29 digits.
pub(super) const DECIMAL_MAX_COEFFICIENT: u128 = (1 << 96) - 1;
/// The most decimals a [`Decimal`] holds.
const DECIMAL_MAX_SCALE: i128 = 28;

/// The exact value `text` writes, or `None`.
///
/// The grammar is an optional `-`, one or more ASCII digits, optionally a `.` followed
/// by one or more ASCII digits, and, when `exponent` is true (a JSON number), `e` or
/// `E`, an optional sign and one or more ASCII digits. Nothing else is a number here:
/// no `+` sign, no `_` or space between digits, no other digits than ASCII, and no
/// `150.` or `.5` (a dot needs digits on both sides; the provider writes neither).
///
/// The value is never rounded. Trailing zeros of the fraction are dropped only as far
/// as needed for the value to fit (`150.50000000000000000000000000000` is 150.5); a
/// value a [`Decimal`] cannot hold exactly once they are gone (more than 28 decimals,
/// a coefficient above 2^96 - 1, an exponent that leads to either) is refused. The
/// scale written is kept when it fits (`150.50` reads as 150.50).
pub(super) fn exact_decimal(text: &str, exponent: bool) -> Option<Decimal> {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let zeros = |s: &mut dyn Iterator<Item = &u8>| s.take_while(|&&b| b == b'0').count();
    let b = text.as_bytes();
    let (negative, b) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let (int, b) = b.split_at(digits(b));
    if int.is_empty() {
        return None; // `.5`, `-`, or no digits at all
    }
    let (frac, b) = match b.split_first() {
        Some((b'.', rest)) => match rest.split_at(digits(rest)) {
            ([], _) => return None, // `150.`
            split => split,
        },
        _ => (&b[..0], b),
    };
    let exp: i128 = match b.split_first() {
        None => 0,
        Some((b'e' | b'E', rest)) if exponent => {
            let (sign, rest) = match rest.split_first() {
                Some((b'-', r)) => (-1, r),
                Some((b'+', r)) => (1, r),
                _ => (1, rest),
            };
            if rest.is_empty() || digits(rest) != rest.len() {
                return None;
            }
            // Saturates far beyond any exponent that could still give a Decimal.
            sign * rest.iter().fold(0i128, |n, d| {
                (n * 10 + i128::from(d - b'0')).min(i128::from(u32::MAX))
            })
        }
        _ => return None,
    };
    // The value is the digits of `int` then `frac`, as one integer, times 10^-scale.
    let scale = i128::try_from(frac.len()).ok()? - exp;
    let len = int.len() + frac.len();
    let leading = zeros(&mut int.iter().chain(frac));
    if leading == len {
        let scale = scale.clamp(0, DECIMAL_MAX_SCALE);
        return Some(Decimal::new(0, u32::try_from(scale).ok()?));
    }
    let trailing = zeros(&mut frac.iter().rev().chain(int.iter().rev()));
    // The significant digits, without the zeros on either side.
    let significant = len - leading - trailing;
    if significant > 29 {
        return None;
    }
    let mut coefficient = int
        .iter()
        .chain(frac)
        .skip(leading)
        .take(significant)
        .fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
    let mut kept = scale - i128::try_from(trailing).ok()?;
    if kept > DECIMAL_MAX_SCALE {
        return None;
    }
    if kept < 0 {
        let power = 10u128.checked_pow(u32::try_from(-kept).ok()?)?;
        coefficient = coefficient.checked_mul(power)?;
        kept = 0;
    }
    if coefficient > DECIMAL_MAX_COEFFICIENT {
        return None;
    }
    // Give back the trailing zeros that were written, as far as they fit.
    while kept < scale.min(DECIMAL_MAX_SCALE) && coefficient * 10 <= DECIMAL_MAX_COEFFICIENT {
        coefficient *= 10;
        kept += 1;
    }
    let coefficient = i128::try_from(coefficient).ok()?;
    let signed = if negative { -coefficient } else { coefficient };
    Decimal::try_from_i128_with_scale(signed, u32::try_from(kept).ok()?).ok()
}

fn req_decimal(o: &Obj<'_>, k: &'static str) -> Result<Decimal, WireError> {
    let v = req(o, k)?;
    flex_decimal(v).ok_or_else(|| WireError::NotDecimal {
        field: k,
        snippet: snippet(v.get()),
    })
}

fn req_time(o: &Obj<'_>, k: &'static str) -> Result<DateTime<Utc>, WireError> {
    let s = req_str(o, k)?;
    parse_time(&s).ok_or_else(|| WireError::NotTime {
        field: k,
        text: s.into_owned(),
    })
}

fn opt_time(o: &Obj<'_>, k: &'static str) -> Result<Option<DateTime<Utc>>, WireError> {
    match opt_str(o, k) {
        None => Ok(None),
        Some(s) => parse_time(&s).map(Some).ok_or_else(|| WireError::NotTime {
            field: k,
            text: s.into_owned(),
        }),
    }
}

/// ISO-8601 with or without offset, fraction or time (§7.2: accept all).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    date_from_text(s)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn currency(o: &Obj<'_>, k: &'static str) -> Result<Currency, WireError> {
    Currency::parse(req_str(o, k)?).map_err(invalid(k))
}

/// A field a parser reads, and the JSON types it may arrive as.
type Field = (&'static str, Shape);

/// A record kind: its name in messages, the field that names one record, and the fields
/// read, with their types (§13.3–§13.6).
struct Kind {
    name: &'static str,
    id: &'static str,
    fields: &'static [Field],
}

const PAYMENT: Kind = Kind {
    name: "payment",
    id: "id",
    fields: &[
        ("id", STR_OR_NUM),
        ("external_id", STR_NUM_OR_NULL),
        ("user_id", STR_NUM_OR_NULL),
        ("status", STR),
        ("fiat_amount", STR_OR_NUM),
        ("fiat_symbol", STR),
        ("payment_type", STR),
        ("concept", STR_NUM_OR_NULL),
        ("created_at", STR),
        ("updated_at", STR),
    ],
};
const OFFRAMP: Kind = Kind {
    name: "off-ramp",
    id: "id",
    fields: &[
        ("id", STR_OR_NUM),
        ("user_id", STR_NUM_OR_NULL),
        ("status", STR),
        ("fiat_amount", STR_OR_NUM),
        ("fiat_symbol", STR),
        ("iban", STR_OR_NULL),
        ("created_at", STR),
        ("updated_at", STR),
    ],
};
const TRANSACTION: Kind = Kind {
    name: "transaction",
    id: "id",
    fields: &[
        ("id", STR_OR_NUM),
        ("iban", STR),
        ("amount", STR_OR_NUM),
        ("currency", STR),
        ("direction", STR),
        ("concept", STR_OR_NUM),
        ("counterparty_name", STR_OR_NULL),
        ("counterparty_iban", STR_OR_NULL),
        ("booked_at", STR),
        ("value_date", STR_OR_NULL),
        ("reconciled_payment_id", STR_NUM_OR_NULL),
    ],
};
const ACCOUNT: Kind = Kind {
    name: "account",
    id: "iban",
    fields: &[
        ("iban", STR),
        ("bic", STR),
        ("holder_name", STR),
        ("currency", STR),
        ("balance", STR_OR_NUM),
    ],
};
/// Read without [`record`]'s check: a pagination block that does not read fails the page,
/// and the id of a bad record is only a label.
const PAGINATION_FIELDS: &[Field] = &[
    ("current_page", STR_OR_NUM),
    ("per_page", STR_OR_NUM),
    ("last_page", STR_OR_NUM),
    ("total", STR_OR_NUM),
];
const ID_FIELD: &[Field] = &[("id", STR_OR_NUM)];

/// One record of `kind`: an object whose every field present has a type its shape
/// allows. An absent field is left to the parser (required or not).
fn record<'a>(text: &'a str, kind: &Kind) -> Result<Obj<'a>, WireError> {
    let o = obj(text, kind.fields)?;
    for (&(field, shape), value) in kind.fields.iter().zip(o.values) {
        let Some(found) = value.map(JsonType::of) else {
            continue;
        };
        if !shape.types.contains(&found) {
            return Err(WireError::WrongType {
                record: kind.name,
                id: o.get(kind.id).and_then(flex_string),
                field,
                found,
                expected: shape.expected,
            });
        }
    }
    Ok(o)
}

/// One item of `GET /payments` (§13.3), or the `data` of `GET /payment/{id}` (§5.3), read
/// as the client reads it. Public for the decoders' property tests.
pub fn parse_payment(v: &RawValue) -> Result<Payment, WireError> {
    let o = &record(v.get(), &PAYMENT)?;
    let id = PaymentId::parse(req_string(o, "id")?).map_err(WireError::BadId)?;
    let cur = currency(o, "fiat_symbol")?;
    // `fiat_amount` is integer cents here (§5.3, §13.3).
    let amount =
        Money::from_cents(req_decimal(o, "fiat_amount")?, cur).map_err(invalid("fiat_amount"))?;
    let concept = match opt_string(o, "concept") {
        None => None,
        Some(c) => Some(Concept::parse(&c).map_err(invalid("concept"))?),
    };
    Ok(Payment {
        id,
        external_id: opt_string(o, "external_id"),
        user_id: opt_string(o, "user_id"),
        status: PaymentStatus::parse(&req_str(o, "status")?),
        amount,
        payment_type: opt_string(o, "payment_type").map(|s| s.to_ascii_lowercase()),
        concept,
        created_at: req_time(o, "created_at")?,
        updated_at: opt_time(o, "updated_at")?,
    })
}

/// One item of `GET /rampoffs` (§13.4), read as the client reads it. Public for the
/// decoders' property tests.
pub fn parse_offramp(v: &RawValue) -> Result<Offramp, WireError> {
    let o = &record(v.get(), &OFFRAMP)?;
    let id = OfframpId::parse(req_string(o, "id")?).map_err(WireError::BadId)?;
    // `fiat_amount` is a decimal string in currency units here (§13.4).
    let fiat = Money::from_units(req_decimal(o, "fiat_amount")?, currency(o, "fiat_symbol")?);
    Ok(Offramp {
        id,
        user_id: opt_string(o, "user_id"),
        status: OfframpStatus::parse(&req_str(o, "status")?),
        fiat,
        iban: opt_string(o, "iban"),
        created_at: req_time(o, "created_at")?,
        updated_at: opt_time(o, "updated_at")?,
    })
}

/// One item of `GET /banking/accounts/{iban}/transactions` (§13.6), read as the client
/// reads it. Public for the decoders' property tests.
pub fn parse_transaction(v: &RawValue) -> Result<BankTransaction, WireError> {
    let o = &record(v.get(), &TRANSACTION)?;
    let id = BankTxId::parse(req_string(o, "id")?).map_err(WireError::BadId)?;
    let iban = Iban::parse(req_string(o, "iban")?).map_err(invalid("iban"))?;
    let amount = req_decimal(o, "amount")?;
    if amount.is_sign_negative() || amount.is_zero() {
        return Err(WireError::NotPositive {
            field: "amount",
            amount,
        });
    }
    let direction = Direction::parse(&req_str(o, "direction")?).map_err(invalid("direction"))?;
    let value_date =
        match opt_string(o, "value_date") {
            None => None,
            Some(s) => Some(date_from_text(s.get(..10).unwrap_or(&s)).ok_or_else(|| {
                WireError::NotDate {
                    field: "value_date",
                    text: s.clone(),
                }
            })?),
        };
    let reconciled_payment_id = match opt_string(o, "reconciled_payment_id") {
        None => None,
        Some(p) => Some(PaymentId::parse(p).map_err(WireError::BadId)?),
    };
    Ok(BankTransaction {
        id,
        iban,
        amount: Money::from_units(amount, currency(o, "currency")?),
        direction,
        concept_text: o.get("concept").and_then(flex_string).unwrap_or_default(),
        counterparty_name: opt_string(o, "counterparty_name"),
        counterparty_iban: opt_string(o, "counterparty_iban"),
        booked_at: req_time(o, "booked_at")?,
        value_date,
        reconciled_payment_id,
    })
}

/// One item of `GET /banking/accounts` (§13.5), read as the client reads it. Public for
/// the decoders' property tests.
pub fn parse_account(v: &RawValue) -> Result<BankAccount, WireError> {
    let o = &record(v.get(), &ACCOUNT)?;
    let iban = Iban::parse(req_string(o, "iban")?).map_err(invalid("iban"))?;
    let currency = match opt_string(o, "currency") {
        None => None,
        Some(c) => Some(Currency::parse(c).map_err(invalid("currency"))?),
    };
    Ok(BankAccount {
        iban,
        bic: opt_string(o, "bic"),
        holder_name: opt_string(o, "holder_name"),
        currency,
        balance: o.get("balance").and_then(flex_decimal),
    })
}
