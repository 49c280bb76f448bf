//! How times, dates and amounts are written as text, and dates read back: one
//! format for the provider's wire, the store and the reports. Each is written from its
//! digits directly (the sync writer formats several per stored row) and is
//! property-tested against chrono's and rust_decimal's own printing.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};
use rust_decimal::Decimal;

/// ISO-8601 with microseconds and `Z`, as the provider writes its own timestamps.
pub fn wire_time(t: DateTime<Utc>) -> String {
    // What `to_rfc3339_opts(SecondsFormat::Micros, true)` writes, without the formatting
    // machinery: the sync writer formats two or three times per stored row.
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        // A leap second: rare enough for the general path.
        return t.to_rfc3339_opts(SecondsFormat::Micros, true);
    }
    let Some(mut s) = date_text(t.date_naive(), 27) else {
        return t.to_rfc3339_opts(SecondsFormat::Micros, true);
    };
    let secs = t.num_seconds_from_midnight();
    s.push('T');
    push_digits(&mut s, secs / 3600, 2);
    s.push(':');
    push_digits(&mut s, secs / 60 % 60, 2);
    s.push(':');
    push_digits(&mut s, secs % 60, 2);
    s.push('.');
    push_digits(&mut s, nanos / 1000, 6);
    s.push('Z');
    s
}

/// A date as `YYYY-MM-DD`, as `NaiveDate`'s `Display` writes it.
pub fn wire_date(d: NaiveDate) -> String {
    date_text(d, 10).unwrap_or_else(|| d.to_string())
}

/// A `YYYY-MM-DD` date, as `NaiveDate::parse_from_str(s, "%Y-%m-%d")` reads it; the
/// common ten-digit shape without the format machinery (the store reads one per credit
/// for every run's matching).
pub fn date_from_text(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10))
    {
        // Ten bytes of this shape that are no date are no date for chrono either.
        return NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// `YYYY-MM-DD` for years 0–9999 (beyond them `chrono` adds a sign and digits), in a
/// string with room for `capacity` bytes.
fn date_text(d: NaiveDate, capacity: usize) -> Option<String> {
    let year = u32::try_from(d.year()).ok().filter(|y| *y <= 9999)?;
    let mut s = String::with_capacity(capacity);
    push_digits(&mut s, year, 4);
    s.push('-');
    push_digits(&mut s, d.month(), 2);
    s.push('-');
    push_digits(&mut s, d.day(), 2);
    Some(s)
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(s: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = n / 10u32.pow(i) % 10;
        s.push(char::from(b'0' + digit as u8));
    }
}

/// Two decimals and a dot, more if the value needs them; never exponent notation.
pub fn format_amount(d: Decimal) -> String {
    // As `d.normalize()`, rescaled to at least two decimals, would print, written from the
    // digits directly (the sync writer formats an amount for every stored row).
    let (mut mantissa, mut scale) = (d.mantissa(), d.scale());
    while scale > 2 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    // A mantissa has at most 96 bits: times 100 it still fits an i128.
    while scale < 2 {
        mantissa *= 10;
        scale += 1;
    }
    let mut digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    if digits.len() <= scale {
        digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
    }
    let mut s = String::with_capacity(digits.len() + 2);
    if mantissa < 0 {
        s.push('-');
    }
    let point = digits.len() - scale;
    s.push_str(&digits[..point]);
    s.push('.');
    s.push_str(&digits[point..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn wire_times_and_dates_print_as_chrono_prints_them() {
        let at = |secs: i64, nanos: u32| DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
        for t in [
            at(1_782_469_800, 0),
            at(1_782_469_800, 123_456_789),
            at(0, 999),
            at(-62_167_219_200, 0),           // 0000-01-01
            at(-62_167_219_201, 0),           // one second before: year -1
            at(253_402_300_799, 999_999_999), // 9999-12-31T23:59:59.999999
            at(253_402_300_800, 0),           // 10000-01-01
            at(1_483_228_799, 1_500_000_000), // a leap second
        ] {
            assert_eq!(
                wire_time(t),
                t.to_rfc3339_opts(SecondsFormat::Micros, true),
                "{t:?}"
            );
            assert_eq!(wire_date(t.date_naive()), t.date_naive().to_string());
        }
        assert_eq!(
            wire_time(at(1_782_469_800, 5_000)),
            "2026-06-26T10:30:00.000005Z"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_wire_time_prints_as_chrono_prints_it(
            secs in -400_000_000_000i64..400_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
            proptest::prop_assert_eq!(wire_time(t), t.to_rfc3339_opts(SecondsFormat::Micros, true));
            proptest::prop_assert_eq!(wire_date(t.date_naive()), t.date_naive().to_string());
        }
    }

    #[test]
    fn dates_are_read_as_chrono_reads_them() {
        for s in [
            "2026-11-21",
            "0000-01-01",
            "9999-12-31",
            "2024-02-29",
            "2026-02-29", // not a leap year
            "2026-13-01",
            "2026-00-10",
            "2026-11-31",
            "2026-1-05",
            "2026-11-5",
            "+2026-11-21",
            "12026-11-21",
            "2026/11/21",
            "2026-11-2x",
            "2026-11-21T",
            " 2026-11-21",
            "",
        ] {
            assert_eq!(
                date_from_text(s),
                NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
                "{s:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_date_shaped_text_is_read_as_chrono_reads_it(s in "[0-9+ -]{0,4}[0-9]{0,5}-[0-9]{1,3}-[0-9]{1,3}") {
            proptest::prop_assert_eq!(date_from_text(&s), NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
        }

        #[test]
        fn any_date_reads_back_from_its_wire_text(days in -700_000i32..3_000_000) {
            let d = NaiveDate::from_num_days_from_ce_opt(days).unwrap();
            proptest::prop_assert_eq!(date_from_text(&wire_date(d)), Some(d));
        }
    }

    #[test]
    fn large_amounts_keep_every_digit() {
        let v = Decimal::from_str("12345678901234567.89").unwrap();
        assert_eq!(format_amount(v), "12345678901234567.89");
    }

    #[test]
    fn amounts_print_with_at_least_two_decimals_and_no_trailing_zeros_beyond() {
        for (v, text) in [
            ("0", "0.00"),
            ("-0.000", "0.00"),
            ("0.5", "0.50"),
            ("-0.05", "-0.05"),
            ("150.500", "150.50"),
            ("150.505", "150.505"),
            (
                "0.0000000000000000000000000001",
                "0.0000000000000000000000000001",
            ),
            (
                "79228162514264337593543950335",
                "79228162514264337593543950335.00",
            ),
            (
                "-79228162514264337593543950335",
                "-79228162514264337593543950335.00",
            ),
        ] {
            assert_eq!(format_amount(Decimal::from_str(v).unwrap()), text, "{v}");
        }
    }

    proptest::proptest! {
        /// The digits are written directly; `rust_decimal`'s own printing of the
        /// normalised value, padded to two decimals, is the reference. (Not its
        /// `rescale(2)`: above 2^96 / 100 that cannot add both zeros, and drops one.)
        #[test]
        fn amounts_print_as_the_normalised_decimal_does(
            mantissa in -(1i128 << 96) + 1..(1i128 << 96),
            scale in 0u32..=28,
        ) {
            let d = Decimal::from_i128_with_scale(mantissa, scale);
            let mut reference = d.normalize().to_string();
            match reference.find('.').map(|p| reference.len() - p - 1) {
                None => reference.push_str(".00"),
                Some(1) => reference.push('0'),
                Some(_) => {}
            }
            proptest::prop_assert_eq!(format_amount(d), reference);
        }
    }
}
