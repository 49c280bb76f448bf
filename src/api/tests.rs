//! Unit tests of the client: envelopes, record parsing, exact amounts, list paging and
//! request URLs.

use super::transport::{Answer, Envelope, error_code, is_success, laravel_message, token_from};
use super::wire::{DECIMAL_MAX_COEFFICIENT, exact_decimal, flex_decimal, flex_str};
use super::*;
use rust_decimal::Decimal;
use serde_json::json;
use std::borrow::Cow;

fn raw(v: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap()
}

#[test]
fn the_three_success_spellings_are_success() {
    for s in ["ok", "success", "sucess", "OK"] {
        assert!(is_success(&json!({ "status": s })), "{s}");
    }
    assert!(!is_success(&json!({ "status": "error" })));
    assert!(!is_success(&json!({ "data": [] })));
}

#[test]
fn the_error_code_is_read_from_error_or_message() {
    assert_eq!(
        error_code(&json!({"status":"error","error":"payment_not_pending"})).as_deref(),
        Some("payment_not_pending")
    );
    assert_eq!(
        error_code(&json!({"status":"error","message":"amount_mismatch"})).as_deref(),
        Some("amount_mismatch")
    );
}

#[test]
fn a_payment_parses_with_cents_as_number_or_string_and_ids_as_numbers() {
    let v: Value = serde_json::from_str(
        r#"{"id":"P1","user_id":100067,"status":"pending_bank","fiat_amount":"15050",
                "fiat_symbol":"EUR","created_at":"2026-06-26T10:30:00.000000Z","concept":120037,
                "payment_type":"TRANSFER","extra":{"x":1}}"#,
    )
    .unwrap();
    let p = parse_payment(&raw(&v)).unwrap();
    assert_eq!(p.amount.amount_str(), "150.50");
    assert_eq!(p.user_id.as_deref(), Some("100067"));
    assert_eq!(p.concept.unwrap().as_str(), "120037");
    assert_eq!(p.payment_type.as_deref(), Some("transfer"));
    assert!(p.status.is_open());
}

#[test]
fn an_item_is_read_in_one_pass_whatever_its_field_order_escapes_or_repeats() {
    // Unknown fields of any shape are skipped; an escaped key still names its field;
    // a repeated field keeps its last value; escaped text is decoded.
    let body = r#"{"extra":{"a":[1,{"b":"}"}]},"st\u0061tus":"pending_bank",
            "id":"P0","id":"P1","fiat_symbol":"EUR","fiat_amount":15050,
            "external_id":"order \"7\"","created_at":"2026-06-26T10:30:00Z","user_id":null}"#;
    let v: Box<RawValue> = serde_json::from_str(body).unwrap();
    let p = parse_payment(&v).unwrap();
    assert_eq!(p.id.as_str(), "P1");
    assert!(p.status.is_open());
    assert_eq!(p.external_id.as_deref(), Some("order \"7\""));
    assert_eq!(p.user_id, None);
    assert_eq!(p.amount.amount_str(), "150.50");
    // Not an object, or trailing garbage: a bad record, with a reason.
    for bad in [r#"[1,2]"#, r#""P1""#] {
        let v: Box<RawValue> = serde_json::from_str(bad).unwrap();
        assert_eq!(parse_payment(&v).unwrap_err(), WireError::NotAnObject);
    }
}

#[test]
fn a_string_is_borrowed_unless_it_has_escapes() {
    let plain: Box<RawValue> = serde_json::from_str(r#""SEPA CT 120037""#).unwrap();
    assert!(matches!(
        flex_str(&plain),
        Some(Cow::Borrowed("SEPA CT 120037"))
    ));
    let escaped: Box<RawValue> = serde_json::from_str(r#""caf\u00e9 \/ 1""#).unwrap();
    assert_eq!(flex_str(&escaped).as_deref(), Some("café / 1"));
    let number: Box<RawValue> = serde_json::from_str("120037").unwrap();
    assert_eq!(flex_str(&number).as_deref(), Some("120037"));
    let other: Box<RawValue> = serde_json::from_str("true").unwrap();
    assert_eq!(flex_str(&other), None);
}

#[test]
fn a_payment_amount_number_keeps_its_literal_digits() {
    let v: Value = serde_json::from_str(
        r#"{"id":"P1","status":"x","fiat_amount":123456789012345678,"fiat_symbol":"EUR","created_at":"2026-06-26T10:30:00Z"}"#,
    )
    .unwrap();
    let p = parse_payment(&raw(&v)).unwrap();
    assert_eq!(p.amount.amount_str(), "1234567890123456.78");
}

#[test]
fn fractional_cents_make_a_bad_record_naming_the_field() {
    let v = json!({"id":"P1","status":"x","fiat_amount":"150.5","fiat_symbol":"EUR","created_at":"2026-06-26T10:30:00Z"});
    let e = parse_payment(&raw(&v)).unwrap_err();
    assert!(
        matches!(
            e,
            WireError::Invalid {
                field: "fiat_amount",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("fiat_amount"), "{e}");
}

/// A payment and a credit as the provider writes them, every field of an allowed type.
fn payment_json() -> Value {
    json!({"id":"P123","external_id":null,"user_id":"100067","status":"pending_bank",
        "fiat_amount":15050,"fiat_symbol":"EUR","payment_type":"transfer","concept":120037,
        "created_at":"2026-06-26T10:30:00.000000Z","updated_at":"2026-06-26T10:30:00.000000Z"})
}

fn credit_json() -> Value {
    json!({"id":"T123","iban":"ES9121000418450200051332","amount":"150.50","currency":"EUR",
        "direction":"credit","concept":"Ref 120037","counterparty_name":null,
        "counterparty_iban":null,"booked_at":"2026-06-26T10:30:00.000000Z",
        "value_date":"2026-06-26","reconciled_payment_id":null})
}

fn with(mut v: Value, field: &str, value: Value) -> Box<RawValue> {
    v[field] = value;
    raw(&v)
}

#[test]
fn a_payment_whose_concept_is_an_object_is_unreadable_not_conceptless() {
    let e = parse_payment(&with(payment_json(), "concept", json!({"ref":120037}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"payment P123: field "concept" is an object, expected a string, number or null"#
    );
    // The tolerances stay: a concept as a number, a string, or null.
    for concept in [json!(120037), json!("0120037"), Value::Null] {
        parse_payment(&with(payment_json(), "concept", concept.clone()))
            .unwrap_or_else(|e| panic!("{concept}: {e}"));
    }
}

#[test]
fn a_credit_whose_concept_is_an_object_is_unreadable_not_empty_text() {
    let e = parse_transaction(&with(
        credit_json(),
        "concept",
        json!({"text":"Ref 120037"}),
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"transaction T123: field "concept" is an object, expected a string or number"#
    );
    // Text, or a number's digits (§4); absent is no text, as before.
    for (concept, text) in [
        (json!("Ref 120037"), "Ref 120037"),
        (json!(120037), "120037"),
    ] {
        let t = parse_transaction(&with(credit_json(), "concept", concept)).unwrap();
        assert_eq!(t.concept_text, text);
    }
    let mut v = credit_json();
    v.as_object_mut().unwrap().remove("concept");
    assert_eq!(parse_transaction(&raw(&v)).unwrap().concept_text, "");
}

#[test]
fn a_reconciled_payment_id_that_is_an_object_makes_the_credit_unreadable_not_open() {
    let tied = json!({"id":"P9"});
    let e = parse_transaction(&with(credit_json(), "reconciled_payment_id", tied)).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"transaction T123: field "reconciled_payment_id" is an object, expected a string, number or null"#
    );
    // An id as a string or a number is a tie; null is an open credit.
    for (id, tied) in [
        (json!("P9"), Some("P9")),
        (json!(9), Some("9")),
        (Value::Null, None),
    ] {
        let t = parse_transaction(&with(credit_json(), "reconciled_payment_id", id)).unwrap();
        assert_eq!(t.reconciled_payment_id.as_ref().map(|p| p.as_str()), tied);
    }
}

#[test]
fn a_reconciled_payment_id_that_is_an_array_makes_the_credit_unreadable() {
    let e = parse_transaction(&with(credit_json(), "reconciled_payment_id", json!(["P9"])))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"transaction T123: field "reconciled_payment_id" is an array, expected a string, number or null"#
    );
}

#[test]
fn an_amount_that_is_a_boolean_makes_the_record_unreadable() {
    let e = parse_transaction(&with(credit_json(), "amount", json!(true))).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"transaction T123: field "amount" is a boolean, expected a string or number"#
    );
    let e = parse_payment(&with(payment_json(), "fiat_amount", json!(false))).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"payment P123: field "fiat_amount" is a boolean, expected a string or number"#
    );
}

#[test]
fn a_number_where_only_text_is_allowed_or_null_where_none_is_makes_the_record_unreadable() {
    let e = parse_transaction(&with(credit_json(), "counterparty_name", json!(42))).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"transaction T123: field "counterparty_name" is a number, expected a string or null"#
    );
    let e = parse_payment(&with(payment_json(), "status", Value::Null)).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"payment P123: field "status" is null, expected a string"#
    );
    // An absent field is still read as before: required ones are missing.
    let mut v = payment_json();
    v.as_object_mut().unwrap().remove("status");
    assert_eq!(
        parse_payment(&raw(&v)).unwrap_err(),
        WireError::Missing { field: "status" }
    );
}

#[test]
fn a_record_whose_id_is_unreadable_is_named_without_one() {
    let e = parse_transaction(&with(credit_json(), "id", json!(["T123"]))).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"transaction: field "id" is an array, expected a string or number"#
    );
    let mut account = json!({"iban":"ES9121000418450200051332","bic":"CAIXESBBXXX",
        "holder_name":"CryptoPocket Integration SL","currency":"EUR","balance":"10.00"});
    parse_account(&raw(&account)).unwrap();
    account["bic"] = json!({});
    assert_eq!(
        parse_account(&raw(&account)).unwrap_err().to_string(),
        r#"account ES9121000418450200051332: field "bic" is an object, expected a string"#
    );
}

/// `text` read as a numeric string (`"150.50"`).
fn decimal_as_string(text: &str) -> Option<Decimal> {
    flex_decimal(&raw(&json!(text)))
}

/// `text` read as a JSON number (`150.50`); it must be valid JSON.
fn decimal_as_number(text: &str) -> Option<Decimal> {
    let v: Box<RawValue> = serde_json::from_str(text).expect("a JSON number");
    flex_decimal(&v)
}

fn dec(text: &str) -> Decimal {
    use std::str::FromStr;
    Decimal::from_str(text).expect("a decimal literal")
}

#[test]
fn plain_amounts_read_exactly_with_the_scale_they_were_written_with() {
    for (text, value) in [
        ("150.50", "150.50"),
        ("150", "150"),
        ("-1.25", "-1.25"),
        ("0", "0"),
        ("0.00", "0.00"),
        ("0150.50", "150.50"),
        (
            "0.0000000000000000000000000001",
            "0.0000000000000000000000000001",
        ),
        (
            "79228162514264337593543950335",
            "79228162514264337593543950335",
        ),
        (
            "-79228162514264337593543950335",
            "-79228162514264337593543950335",
        ),
        (
            "7922816251426433759354395033.5",
            "7922816251426433759354395033.5",
        ),
    ] {
        let d = decimal_as_string(text).unwrap_or_else(|| panic!("{text} refused"));
        assert_eq!(d.to_string(), value, "{text}");
        if serde_json::from_str::<Box<RawValue>>(text).is_ok() {
            let n = decimal_as_number(text).map(|d| d.to_string());
            assert_eq!(n.as_deref(), Some(value), "{text}");
        }
    }
}

#[test]
fn surrounding_whitespace_of_a_numeric_string_is_trimmed() {
    assert_eq!(decimal_as_string(" 150.50\t"), Some(dec("150.50")));
    assert_eq!(
        decimal_as_string("\n150.50 ")
            .map(|d| d.to_string())
            .as_deref(),
        Some("150.50")
    );
}

#[test]
fn trailing_zeros_past_what_a_decimal_holds_are_dropped_and_the_value_stays_exact() {
    for (text, value) in [
        ("150.50000000000000000000000000000", "150.5"),
        (
            "150.500000000000000000000000000000000000000000000000",
            "150.5",
        ),
        (
            "0.00000000000000000000000000010",
            "0.0000000000000000000000000001",
        ),
        (
            "79228162514264337593543950335.000",
            "79228162514264337593543950335",
        ),
    ] {
        let d = decimal_as_string(text).unwrap_or_else(|| panic!("{text} refused"));
        assert_eq!(d.normalize().to_string(), value, "{text}");
    }
    // The written zeros are kept as far as they fit: 1505 then 25 zeros is the
    // longest coefficient of 150.5 a decimal holds.
    let d = decimal_as_string("150.5000000000000000000000000000").expect("read");
    assert_eq!((d, d.scale()), (dec("150.5"), 26));
}

#[test]
fn an_amount_a_decimal_cannot_hold_exactly_is_refused_not_rounded() {
    for text in [
        "150.5000000000000000000000000001",
        "150.4999999999999999999999999999",
        "0.00000000000000000000000000001", // 29 decimals
        "0.00000000000000000000000000015",
        "79228162514264337593543950336", // 2^96
        "100000000000000000000000000000",
        "-79228162514264337593543950336",
        "7922816251426433759354395033.51",
        "12345678901234567890123456789012345",
    ] {
        assert_eq!(decimal_as_string(text), None, "{text}");
        assert_eq!(decimal_as_number(text), None, "{text}");
    }
}

#[test]
fn anything_but_sign_digits_and_one_inner_dot_is_refused() {
    for text in [
        "15_0.50",
        "150_",
        "_150",
        "+150.50",
        "150.",
        ".5",
        "-.5",
        "-",
        "",
        " ",
        "1.2.3",
        "150,50",
        "1 000",
        "0x10",
        "1e2",
        "1E2",
        "NaN",
        "inf",
        "-inf",
        "--1",
        "1-",
        "١٥٠",
        "１５０",
        "150.5o",
        "150.50 EUR",
        "€150.50",
    ] {
        assert_eq!(decimal_as_string(text), None, "{text:?}");
    }
}

#[test]
fn a_json_number_may_carry_an_exponent_that_keeps_it_exact() {
    for (text, value) in [
        ("1.5e2", "150"),
        ("15050e-2", "150.50"),
        ("15050E-2", "150.50"),
        ("1.505E+2", "150.5"),
        ("-1e0", "-1"),
        ("0e99999999999999999999", "0"),
        ("1e28", "10000000000000000000000000000"),
        ("1e-28", "0.0000000000000000000000000001"),
        ("100e-30", "0.0000000000000000000000000001"),
        (
            "7.9228162514264337593543950335e28",
            "79228162514264337593543950335",
        ),
        (
            "1.5000000000000000000000000001e2",
            "150.00000000000000000000000001",
        ),
    ] {
        let d = decimal_as_number(text).unwrap_or_else(|| panic!("{text} refused"));
        assert_eq!(d.to_string(), value, "{text}");
    }
    for text in [
        "1e29",
        "1e-29",
        "15e-29",
        "1e99999999999999999999",
        "1e-99999999999999999999",
        "1.50000000000000000000000000001e2",
        "7.9228162514264337593543950336e28",
    ] {
        assert_eq!(decimal_as_number(text), None, "{text}");
    }
}

proptest::proptest! {
    #[test]
    fn any_decimal_reads_back_exactly_from_its_text(
        coefficient in -(DECIMAL_MAX_COEFFICIENT as i128)..=(DECIMAL_MAX_COEFFICIENT as i128),
        scale in 0u32..=28,
    ) {
        let d = Decimal::from_i128_with_scale(coefficient, scale);
        let text = d.to_string();
        let read = decimal_as_string(&text);
        proptest::prop_assert_eq!(read, Some(d));
        proptest::prop_assert_eq!(read.map(|r| r.to_string()), Some(text));
    }

    #[test]
    fn any_amount_one_digit_past_what_a_decimal_holds_is_refused(
        whole in 0u64..1_000_000,
        fraction in "[0-9]{28}",
        last in 1u8..=9,
    ) {
        let text = format!("{whole}.{fraction}{last}");
        proptest::prop_assert_eq!(decimal_as_string(&text), None);
    }
}

#[test]
fn an_inexact_or_malformed_amount_makes_a_bad_record_naming_its_field() {
    let tx = |amount: Value| {
        json!({"id":"T1","iban":"ES91 2100 0418 4502 0005 1332","amount":amount,
            "currency":"EUR","direction":"credit","concept":"Ref 120037",
            "booked_at":"2026-06-26T10:30:00Z"})
    };
    for amount in [
        json!("150.5000000000000000000000000001"),
        json!("150.4999999999999999999999999999"),
        json!("15_0.50"),
        json!("1.505e2"),
    ] {
        let e = parse_transaction(&raw(&tx(amount.clone()))).unwrap_err();
        assert!(
            e.to_string().contains("`amount` is not a decimal"),
            "{amount}: {e}"
        );
    }
    let t = parse_transaction(&raw(&tx(json!("150.50000000000000000000000000000")))).unwrap();
    assert_eq!(t.amount.amount_str(), "150.50");

    let payment = |cents: &str| {
        let body = format!(
            r#"{{"id":"P1","status":"x","fiat_amount":{cents},"fiat_symbol":"EUR","created_at":"2026-06-26T10:30:00Z"}}"#
        );
        let v: Box<RawValue> = serde_json::from_str(&body).expect("JSON");
        parse_payment(&v)
    };
    for cents in [
        r#""15050.0000000000000000000000000001""#,
        r#""15_050""#,
        r#""1.505e4""#,
        "15050.0000000000000000000000000001",
        "1e30",
    ] {
        let e = payment(cents).unwrap_err();
        assert!(
            e.to_string().contains("`fiat_amount` is not a decimal"),
            "{cents}: {e}"
        );
    }
    for cents in [
        r#""15050.000000000000000000000000000000""#,
        "1.505e4",
        "15050",
    ] {
        let p = payment(cents).unwrap_or_else(|e| panic!("{cents}: {e}"));
        assert_eq!(p.amount.amount_str(), "150.50", "{cents}");
    }
}

#[test]
fn a_transaction_amount_stays_exact_and_must_be_positive() {
    let mut v = json!({"id":"T1","iban":"ES91 2100 0418 4502 0005 1332","amount":"150.50",
        "currency":"EUR","direction":"credit","concept":"Ref 120037","booked_at":"2026-06-26T10:30:00Z",
        "value_date":"2026-06-26","reconciled_payment_id":null});
    let t = parse_transaction(&raw(&v)).unwrap();
    assert_eq!(t.amount.amount_str(), "150.50");
    assert_eq!(t.iban.as_str(), "ES9121000418450200051332");
    v["amount"] = json!("-1.00");
    assert!(
        parse_transaction(&raw(&v))
            .unwrap_err()
            .to_string()
            .contains("positive")
    );
}

#[test]
fn the_token_is_found_in_the_documented_places() {
    assert!(token_from(&json!({"status":"ok","data":{"token":"abc","expires_in":60}})).is_ok());
    assert!(token_from(&json!({"status":"ok","token":"abc"})).is_ok());
    assert!(token_from(&json!({"status":"ok","data":"abc"})).is_ok());
    assert!(token_from(&json!({"status":"ok","access_token":"abc"})).is_ok());
    assert!(token_from(&json!({"status":"ok","data":{}})).is_err());
}

#[test]
fn a_laravel_body_is_summarised_with_its_fields() {
    let m = laravel_message(&json!({"message":"The given data was invalid.",
        "errors":{"per_page":["The per page must not be greater than 100."]}}))
    .unwrap();
    assert!(m.contains("per_page: The per page must not be greater than 100."));
}

fn page(current: u32, last: u32, total: u64, ids: &[&str]) -> Page<Payment> {
    let items = ids
        .iter()
        .map(|id| Record {
            value: parse_payment(&raw(&json!({"id":id,"status":"started","fiat_amount":1,
                "fiat_symbol":"EUR","created_at":"2026-01-01T00:00:00Z"})))
            .unwrap(),
            raw: String::new(),
        })
        .collect();
    Page {
        items,
        bad: vec![],
        info: PageInfo {
            current_page: current,
            per_page: 2,
            last_page: last,
            total,
            item_count: ids.len(),
        },
    }
}

#[test]
fn the_paginator_dedupes_repeated_items_and_stops_at_the_last_page() {
    let mut p = Paginator::new(2);
    let mut a = page(1, 2, 4, &["a", "b"]);
    p.accept("x", &mut a).unwrap();
    assert_eq!(p.next_page(), Some(2));
    let mut b = page(2, 2, 4, &["b", "c"]);
    p.accept("x", &mut b).unwrap();
    assert_eq!(b.items.len(), 1);
    assert_eq!(p.duplicates, 1);
    assert_eq!(p.next_page(), None);
}

#[test]
fn the_paginator_goes_on_after_a_short_page_that_is_not_the_last() {
    // A provider that serves one item where two were asked says so only in its numbers.
    let mut p = Paginator::new(2);
    let mut a = page(1, 2, 4, &["a"]);
    a.info.per_page = 1;
    a.info.last_page = 4;
    p.accept("x", &mut a).unwrap();
    assert_eq!(p.next_page(), Some(2));
}

#[test]
fn the_paginator_refuses_pages_whose_numbers_contradict_their_total() {
    // Claims more pages than the total fills.
    let mut p = Paginator::new(2);
    let mut a = page(1, u32::MAX, 4, &["a", "b"]);
    let err = p.accept("x", &mut a).unwrap_err();
    assert!(matches!(err, ApiError::Contradiction { .. }), "{err}");
    // The pages ran out with fewer items than the total.
    let mut p = Paginator::new(2);
    let mut b = page(2, 2, 4, &["c"]);
    let err = p.accept("x", &mut b).unwrap_err();
    assert!(err.to_string().contains("total 4 leaves 2"), "{err}");
}

/// The answer `decode` makes of a success body: with the envelope's parts found on the
/// way (`light`), or without them, as after the fallback through a full JSON tree.
fn answer(body: &str, light: bool) -> Answer {
    let parts = light.then(|| {
        serde_json::from_str::<Envelope<'_>>(body)
            .unwrap()
            .parts(body.as_bytes())
    });
    Answer {
        body: body.as_bytes().to_vec(),
        parts,
    }
}

#[test]
fn a_page_reads_the_same_whether_its_envelope_was_read_on_the_way_in_or_not() {
    let body = r#"{"status":"ok","meta":{"x":1},"data":[
            {"id":"P1","status":"pending_bank","fiat_amount":15050,"fiat_symbol":"EUR",
             "created_at":"2026-06-26T10:30:00Z","holder":"Jos\u00e9 Pe\u00f1a"},
            {"id":"P2","status":"pending_bank","fiat_amount":"1.5","fiat_symbol":"EUR",
             "created_at":"2026-06-26T10:30:00Z"}],
            "pagination":{"current_page":2,"per_page":2,"last_page":3,"total":6}}"#;
    let read = |light| {
        let page = parse_page("/payments", &answer(body, light), parse_payment).unwrap();
        let good: Vec<_> = page.items.iter().map(|r| r.raw.clone()).collect();
        let bad: Vec<_> = page
            .bad
            .iter()
            .map(|b| (b.id.clone(), b.error.clone()))
            .collect();
        (good, bad, format!("{:?}", page.info))
    };
    let (light, full) = (read(true), read(false));
    assert_eq!(light, full);
    assert_eq!(light.0.len(), 1);
    assert!(light.0[0].starts_with(r#"{"id":"P1""#), "{:?}", light.0);
    assert_eq!(light.1.len(), 1, "the fractional cents are a bad record");
    assert!(light.2.contains("current_page: 2"), "{}", light.2);
    // A `status` that is not a string is no success word, and leaves the page readable.
    let odd = r#"{"status":true,"data":[],"pagination":{"current_page":1,"per_page":2,"last_page":1,"total":0}}"#;
    let env = serde_json::from_str::<Envelope<'_>>(odd).unwrap();
    assert_eq!(env.status_text(), None);
    assert!(parse_page("/payments", &answer(odd, false), parse_payment).is_ok());
    // A page without its list or pagination is refused the same way too.
    // Without `total` no read of more than one page could be proven whole.
    for broken in [
        r#"{"status":"ok","data":{"id":"P1"},"pagination":{}}"#,
        r#"{"status":"ok","data":[]}"#,
        r#"{"status":"ok","data":[],"pagination":{"current_page":1,"per_page":2,"last_page":1}}"#,
    ] {
        let e = |light| {
            parse_page("/payments", &answer(broken, light), parse_payment)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(e(true), e(false), "{broken}");
    }
}

#[test]
fn request_urls_append_the_path_to_the_base_url_s_path() {
    let client = |base: &str| {
        Client::new(ClientConfig {
            base_url: BaseUrl::parse(base).unwrap(),
            api_key: "k".into(),
            api_secret: SecretString::from("s".to_owned()),
            timeout: Duration::from_secs(1),
            max_requests_per_second: 0,
            max_attempts: 1,
            backoff_base: Duration::from_millis(1),
            deadline: Duration::from_secs(1),
        })
    };
    let url = |base: &str, path: &str| client(base).unwrap().url(path).to_string();
    assert_eq!(
        url("https://sandbox.example/api", "/payments"),
        "https://sandbox.example/api/payments"
    );
    assert_eq!(
        url("http://127.0.0.1:8080/api/", "/payment/P%2F1"),
        "http://127.0.0.1:8080/api/payment/P%2F1"
    );
    assert_eq!(url("http://h", "/auth"), "http://h/auth");
}

#[test]
fn path_segments_are_percent_encoded() {
    assert_eq!(encode_path("ES91 21/00"), "ES91%2021%2F00");
}

#[test]
fn an_exponent_must_be_digits_after_an_optional_sign() {
    assert_eq!(exact_decimal("15e2", true), Some(Decimal::new(1500, 0)));
    assert_eq!(exact_decimal("15e-1", true), Some(Decimal::new(15, 1)));
    for text in ["15e", "15e+", "15e-", "15e2x", "15ex2"] {
        assert_eq!(exact_decimal(text, true), None, "{text:?}");
    }
    assert_eq!(
        exact_decimal("15e2", false),
        None,
        "no exponent in a string"
    );
}
