//! A report as CSV: the optional BOM, the header and rows of each file, and the formula
//! guard on every text cell that came from outside. The columns are listed in the
//! module above.

use std::borrow::Cow;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Report, ReportError, ReportKind, ReportSettings, Seen, delimiter_byte};
use rust_decimal::Decimal;

use crate::domain::{BankTxId, Concept, Money, PaymentId, format_amount};

/// The UTF-8 byte-order mark: lets Excel on Windows open the file as UTF-8 instead of
/// the local code page (which would garble `José` and `山田`).
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

impl Report {
    /// Writes one file to `w`: optional BOM, header row, rows.
    pub fn write_csv<W: Write>(
        &self,
        which: ReportKind,
        mut w: W,
        settings: &ReportSettings,
    ) -> Result<(), ReportError> {
        settings.validate()?;
        let delimiter = delimiter_byte(settings.delimiter)?;
        let sep = settings.decimal_separator;
        let amount = |m: &Money| ours(with_separator(m.amount_str(), sep));
        let difference = |d: Option<Decimal>| {
            ours(with_separator(
                d.map(format_amount).unwrap_or_default(),
                sep,
            ))
        };
        if settings.excel_bom {
            w.write_all(UTF8_BOM).map_err(csv::Error::from)?;
        }
        let mut out = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(csv::Terminator::CRLF)
            .from_writer(w);
        out.write_record(which.header())?;
        match which {
            ReportKind::UnmatchedPayments => {
                for r in &self.unmatched_payments {
                    write_row(
                        &mut out,
                        &[
                            text(r.payment_id.as_str()),
                            opt_text(r.external_id.as_deref()),
                            opt_text(r.concept.as_ref().map(Concept::as_str)),
                            amount(&r.amount),
                            text(r.amount.currency().as_str()),
                            ours(timestamp(r.created_at)),
                            ours(r.days_pending.to_string()),
                            ours(r.reason.as_str()),
                            ids(r.candidates.iter().map(BankTxId::as_str)),
                            difference(r.difference),
                            opt_text(r.detail.as_deref()),
                            first_seen(&r.seen),
                            days_open(&r.seen, self.generated_at),
                            new(&r.seen),
                            DECISION,
                            DECISION,
                        ],
                    )?;
                }
            }
            ReportKind::UnmatchedBankTransactions => {
                for r in &self.unmatched_transactions {
                    let iban = if settings.mask_ibans {
                        r.iban.masked()
                    } else {
                        r.iban.as_str().to_owned()
                    };
                    write_row(
                        &mut out,
                        &[
                            text(r.transaction_id.as_str()),
                            text(&iban),
                            ours(r.direction.as_str()),
                            ours(timestamp(r.booked_at)),
                            amount(&r.amount),
                            text(r.amount.currency().as_str()),
                            text(&r.concept),
                            opt_text(r.counterparty_name.as_deref()),
                            ours(r.reason.as_str()),
                            ids(r.candidates.iter().map(PaymentId::as_str)),
                            ids(r.suggested_payment_ids.iter().map(PaymentId::as_str)),
                            difference(r.difference),
                            opt_text(r.detail.as_deref()),
                            first_seen(&r.seen),
                            days_open(&r.seen, self.generated_at),
                            new(&r.seen),
                            DECISION,
                            DECISION,
                        ],
                    )?;
                }
            }
            ReportKind::Reconciled => {
                for r in &self.reconciled {
                    write_row(
                        &mut out,
                        &[
                            text(r.payment_id.as_str()),
                            text(r.transaction_id.as_str()),
                            amount(&r.amount),
                            text(r.amount.currency().as_str()),
                            opt_text(r.concept.as_ref().map(Concept::as_str)),
                            ours(timestamp(r.reconciled_at)),
                        ],
                    )?;
                }
            }
            ReportKind::UnmatchedPayouts => {
                for r in &self.unmatched_payouts {
                    write_row(
                        &mut out,
                        &[
                            text(r.offramp_id.as_str()),
                            opt_text(r.user_id.as_deref()),
                            amount(&r.amount),
                            text(r.amount.currency().as_str()),
                            text(r.status.as_str()),
                            ours(r.finished_at.map(timestamp).unwrap_or_default()),
                            ours(r.days_since_finished.to_string()),
                            ours(r.reason.as_str()),
                            first_seen(&r.seen),
                            days_open(&r.seen, self.generated_at),
                            new(&r.seen),
                            DECISION,
                            DECISION,
                        ],
                    )?;
                }
            }
        }
        out.flush().map_err(csv::Error::from)?;
        Ok(())
    }
}

/// When the job first reported the item (empty until the run says).
fn first_seen(s: &Seen) -> Cow<'static, str> {
    ours(s.first_seen.map(timestamp).unwrap_or_default())
}

/// Whole days since the item was first reported.
fn days_open(s: &Seen, now: DateTime<Utc>) -> Cow<'static, str> {
    ours(s.days_open(now).map(|d| d.to_string()).unwrap_or_default())
}

/// `yes` for an item first reported since the previous report, else `no`.
fn new(s: &Seen) -> Cow<'static, str> {
    ours(if s.new { "yes" } else { "no" })
}

/// The `action` and `note` cells, left empty for finance to fill in.
const DECISION: Cow<'static, str> = Cow::Borrowed("");

fn write_row<W: Write>(out: &mut csv::Writer<W>, cells: &[Cow<'_, str>]) -> csv::Result<()> {
    out.write_record(cells.iter().map(|c| c.as_bytes()))
}

/// An amount as [`format_amount`] writes it, with `sep` as its decimal separator. The
/// text has no other dot (no thousands separator), so the swap is exact.
fn with_separator(s: String, sep: char) -> String {
    if sep == '.' {
        s
    } else {
        s.replacen('.', &sep.to_string(), 1)
    }
}

/// ISO-8601 UTC to the second: `2026-06-26T10:30:00Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Makes a cell that came from outside inert in a spreadsheet: a value starting with
/// `=`, `+`, `-`, `@`, tab, carriage return or NUL gets a leading `'`, which spreadsheets
/// show as text instead of evaluating (OWASP "CSV injection", CWE-1236; ASVS lists the NUL). The rest of the
/// value is kept byte for byte; quoting is the CSV writer's job.
pub fn neutralize_formula(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r' | b'\0') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// A cell whose content came from outside: guarded.
fn text(s: &str) -> Cow<'_, str> {
    neutralize_formula(s)
}

fn opt_text(s: Option<&str>) -> Cow<'_, str> {
    s.map(neutralize_formula).unwrap_or_default()
}

/// A cell this module wrote itself (numbers, timestamps, reason names): written as is,
/// so `-0.50` stays a number.
fn ours<'a>(s: impl Into<Cow<'a, str>>) -> Cow<'a, str> {
    s.into()
}

/// Ids joined with a space; only the first can start the cell, so one guard suffices.
fn ids<'a>(list: impl IntoIterator<Item = &'a str>) -> Cow<'static, str> {
    let joined = list.into_iter().collect::<Vec<_>>().join(" ");
    Cow::Owned(neutralize_formula(&joined).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[test]
    fn formula_triggers_get_a_leading_apostrophe() {
        for s in ["=1+1", "+SUM(1,2)", "-1+1", "@cmd", "\t=1", "\r=1", "\0=1"] {
            assert_eq!(neutralize_formula(s), format!("'{s}"), "{s:?}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for s in [
            "",
            "José Muñoz",
            "山田太郎",
            "0120037",
            "a=b",
            "O'Brien, \"Ann\"\nLtd",
        ] {
            assert_eq!(neutralize_formula(s), s);
            assert!(matches!(neutralize_formula(s), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn amounts_have_two_decimals_and_a_dot_without_floats() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(format_amount(d("150.5")), "150.50");
        assert_eq!(format_amount(d("-0.01")), "-0.01");
        assert_eq!(format_amount(d("7")), "7.00");
        assert_eq!(format_amount(d("0.10000")), "0.10");
        assert_eq!(
            format_amount(d("79228162514264337593543950.33")),
            "79228162514264337593543950.33"
        );
    }

    #[test]
    fn a_comma_separator_replaces_only_the_decimal_point() {
        assert_eq!(with_separator("-1234.50".into(), ','), "-1234,50");
        assert_eq!(with_separator("7.00".into(), '.'), "7.00");
        assert_eq!(with_separator(String::new(), ','), "");
    }

    #[test]
    fn our_numbers_bypass_the_guard() {
        let d = Decimal::from_str("-0.50").unwrap();
        assert_eq!(ours(format_amount(d)), "-0.50");
    }

    #[test]
    fn timestamps_are_utc_to_the_second() {
        let t = DateTime::parse_from_rfc3339("2026-06-26T12:30:00.123+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(t), "2026-06-26T10:30:00Z");
    }
}
