//! Which e-mail a run sends, if any: pure decisions, `now` passed in.
//!
//! Under `send = "digest"` (the default) the full report goes out once per slot of
//! `[email] digest`, from a run that read every list; between digests a run mails only
//! what is urgent and new (each urgent item once), or an alert when runs have been
//! failing or incomplete for longer than `[email] alert_after`. `always`, `when_unmatched`
//! and `never` mail every run, every run that needs attention, and nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::SendPolicy;
use crate::domain::{Currency, Money, format_amount};
use crate::schedule::{CronSchedule, next_fire};

/// What a run mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mail {
    /// The whole report (a digest, or a run under `always` / `when_unmatched`).
    Full,
    /// Only what is urgent and new, or that runs keep failing.
    Urgent,
    /// Nothing; the report is on disk.
    Nothing,
}

/// What the decision needs to know about the run and the mails before it.
#[derive(Debug, Clone, Copy)]
pub struct MailFacts {
    pub policy: SendPolicy,
    /// The report lists something for a person, or the run did not complete.
    pub needs_attention: bool,
    /// This run read every list: only such a run sends a digest.
    pub sync_complete: bool,
    /// A digest slot began since the last digest (see [`digest_due`]).
    pub digest_due: bool,
    /// Urgent items no earlier mail named.
    pub new_urgent: usize,
    /// Runs have been failing or incomplete for longer than `alert_after`, and no mail
    /// has said so since they began to.
    pub outage_alert: bool,
}

pub fn decide(f: &MailFacts) -> Mail {
    match f.policy {
        SendPolicy::Never => Mail::Nothing,
        SendPolicy::Always => Mail::Full,
        SendPolicy::WhenUnmatched if f.needs_attention => Mail::Full,
        SendPolicy::WhenUnmatched => Mail::Nothing,
        SendPolicy::Digest if f.digest_due && f.sync_complete => Mail::Full,
        SendPolicy::Digest if f.new_urgent > 0 || f.outage_alert => Mail::Urgent,
        SendPolicy::Digest => Mail::Nothing,
    }
}

/// Whether a slot of `digest` (wall-clock times in `tz`) has begun after `last`, the
/// time of the last digest: one digest per slot, whatever the runs' schedule, across
/// daylight-saving changes. Before the first digest (`last` is `None`) one is due at
/// once, so a new installation sees its first report without waiting for a slot.
pub fn digest_due(
    digest: &CronSchedule,
    tz: Tz,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match last {
        None => true,
        Some(last) => next_fire(digest, tz, last).is_some_and(|slot| slot <= now),
    }
}

/// Whether runs failing since `failing_since` (the first run that did not complete
/// after the last one that did) call for an alert: they have failed for `alert_after`
/// and no mail said so since they began (`alerted_since`).
pub fn outage_alert(
    failing_since: Option<DateTime<Utc>>,
    alerted_since: bool,
    alert_after: Duration,
    now: DateTime<Utc>,
) -> bool {
    failing_since.is_some_and(|t| now - t >= alert_after) && !alerted_since
}

/// An urgent item of a report: who it is, why, and the line a mail shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrgentItem {
    /// `payment`, `transaction` or `bad_record`.
    pub kind: &'static str,
    pub id: String,
    pub reason: &'static str,
    /// `reconcile_failed: payment P1, 150.50 EUR (payment_not_pending)`.
    pub line: String,
    /// The money at stake, when the item has an amount.
    pub amount: Option<Money>,
}

/// How urgent a reason is, most urgent first: money leaving with nothing to explain
/// it, then money sent back for a payment whose coins went out, then a reconcile the
/// provider refused, a payment gone from the provider, and an unreadable record that
/// holds automation back.
fn rank(reason: &str) -> u8 {
    match reason {
        "unexplained_debit" => 0,
        "returned_after_reconcile" => 1,
        "reconcile_failed" => 2,
        "vanished" => 3,
        "blocks_automation" => 4,
        _ => 5,
    }
}

/// What an urgent reason is called in a subject: one, and several.
fn noun(reason: &str) -> (&str, &str) {
    match reason {
        "unexplained_debit" => ("unexplained debit", "unexplained debits"),
        "returned_after_reconcile" => (
            "reconciled payment sent back",
            "reconciled payments sent back",
        ),
        "reconcile_failed" => ("failed reconcile", "failed reconciles"),
        "vanished" => ("vanished payment", "vanished payments"),
        "blocks_automation" => (
            "unreadable record blocking automation",
            "unreadable records blocking automation",
        ),
        other => (other, other),
    }
}

/// What an urgent mail's subject says is urgent: the most urgent kind of item, counted,
/// with its amounts summed per currency, then how many other urgent items there are:
/// `1 unexplained debit, 999.99 EUR`, `2 unexplained debits, 1500.00 EUR, 20.00 USD
/// and 3 more urgent items`. `None` when there is no item.
pub fn urgent_subject(items: &[UrgentItem]) -> Option<String> {
    let first = items.iter().map(|i| i.reason).min_by_key(|r| rank(r))?;
    let of_first: Vec<&UrgentItem> = items.iter().filter(|i| i.reason == first).collect();
    let mut sums: BTreeMap<&Currency, Decimal> = BTreeMap::new();
    for m in of_first.iter().filter_map(|i| i.amount.as_ref()) {
        *sums.entry(m.currency()).or_default() += m.amount();
    }
    let (one, many) = noun(first);
    let mut s = format!(
        "{} {}",
        of_first.len(),
        if of_first.len() == 1 { one } else { many }
    );
    for (currency, total) in sums {
        s.push_str(&format!(", {} {currency}", format_amount(total)));
    }
    match items.len() - of_first.len() {
        0 => {}
        1 => s.push_str(" and 1 more urgent item"),
        n => s.push_str(&format!(" and {n} more urgent items")),
    }
    Some(s)
}

/// The report's urgent items (reasons that are [urgent](crate::matching::Reason::is_urgent),
/// and unreadable records that block automation), in the report's order.
pub fn urgent_items(report: &super::Report, blocking_records: &[String]) -> Vec<UrgentItem> {
    let detail = |d: &Option<String>| d.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
    let mut out = Vec::new();
    for r in report
        .unmatched_payments
        .iter()
        .filter(|r| r.reason.is_urgent())
    {
        out.push(UrgentItem {
            kind: "payment",
            id: r.payment_id.to_string(),
            reason: r.reason.as_str(),
            line: format!(
                "{}: payment {}, {}{}",
                r.reason.as_str(),
                r.payment_id,
                r.amount,
                detail(&r.detail)
            ),
            amount: Some(r.amount.clone()),
        });
    }
    for r in report
        .unmatched_transactions
        .iter()
        .filter(|r| r.reason.is_urgent())
    {
        out.push(UrgentItem {
            kind: "transaction",
            id: r.transaction_id.to_string(),
            reason: r.reason.as_str(),
            line: format!(
                "{}: {} {}, {}{}",
                r.reason.as_str(),
                r.direction.as_str(),
                r.transaction_id,
                r.amount,
                detail(&r.detail)
            ),
            amount: Some(r.amount.clone()),
        });
    }
    for id in blocking_records {
        out.push(UrgentItem {
            kind: "bad_record",
            id: id.clone(),
            reason: "blocks_automation",
            line: format!(
                "blocks_automation: record {id} cannot be read; nothing is reconciled until it can (or a person dismisses it)"
            ),
            amount: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn weekdays_at_8() -> CronSchedule {
        CronSchedule::parse("0 0 8 * * Mon-Fri").unwrap()
    }

    fn facts(policy: SendPolicy) -> MailFacts {
        MailFacts {
            policy,
            needs_attention: true,
            sync_complete: true,
            digest_due: false,
            new_urgent: 0,
            outage_alert: false,
        }
    }

    #[test]
    fn a_digest_run_mails_the_full_report_only_when_a_slot_began_and_it_read_everything() {
        let due = MailFacts {
            digest_due: true,
            ..facts(SendPolicy::Digest)
        };
        assert_eq!(decide(&due), Mail::Full);
        let partial = MailFacts {
            sync_complete: false,
            ..due
        };
        assert_eq!(
            decide(&partial),
            Mail::Nothing,
            "the next complete run sends it"
        );
        assert_eq!(decide(&facts(SendPolicy::Digest)), Mail::Nothing);
    }

    #[test]
    fn between_digests_only_new_urgent_items_or_an_outage_are_mailed() {
        let urgent = MailFacts {
            new_urgent: 1,
            ..facts(SendPolicy::Digest)
        };
        assert_eq!(decide(&urgent), Mail::Urgent);
        let outage = MailFacts {
            outage_alert: true,
            sync_complete: false,
            ..facts(SendPolicy::Digest)
        };
        assert_eq!(decide(&outage), Mail::Urgent);
        let due_and_urgent = MailFacts {
            digest_due: true,
            ..urgent
        };
        assert_eq!(decide(&due_and_urgent), Mail::Full, "the digest names them");
    }

    #[test]
    fn the_other_policies_keep_their_meaning() {
        assert_eq!(decide(&facts(SendPolicy::Always)), Mail::Full);
        assert_eq!(decide(&facts(SendPolicy::Never)), Mail::Nothing);
        assert_eq!(decide(&facts(SendPolicy::WhenUnmatched)), Mail::Full);
        let calm = MailFacts {
            needs_attention: false,
            new_urgent: 3,
            ..facts(SendPolicy::WhenUnmatched)
        };
        assert_eq!(decide(&calm), Mail::Nothing);
    }

    #[test]
    fn ninety_six_runs_a_day_with_standing_items_send_one_digest() {
        let tz = chrono_tz::Europe::Madrid;
        let d = weekdays_at_8();
        // Tuesday; the last digest went out on Monday at 08:00 local (06:00 UTC).
        let mut last = t("2026-12-07T07:00:10Z");
        let mut sent = Vec::new();
        let start = t("2026-12-08T00:00:00Z");
        for i in 0..96 {
            let now = start + Duration::minutes(15 * i);
            let f = MailFacts {
                digest_due: digest_due(&d, tz, Some(last), now),
                ..facts(SendPolicy::Digest)
            };
            if decide(&f) == Mail::Full {
                sent.push(now);
                last = now;
            }
        }
        assert_eq!(sent, [t("2026-12-08T07:00:00Z")], "08:00 in Madrid, once");
    }

    #[test]
    fn the_digest_fires_once_per_slot_across_a_daylight_saving_change() {
        // Every day at 02:30 in Madrid: on 2027-03-28 02:30 does not exist (clocks jump
        // from 02:00 to 03:00); on 2027-10-31 it happens twice.
        let tz = chrono_tz::Europe::Madrid;
        let d = CronSchedule::parse("0 30 2 * * *").unwrap();
        for (from, days) in [("2027-03-26T12:00:00Z", 3), ("2027-10-29T12:00:00Z", 3)] {
            let start = t(from);
            let mut last = start;
            let mut sent = 0;
            for i in 0..(days * 96) {
                let now = start + Duration::minutes(15 * i);
                if digest_due(&d, tz, Some(last), now) {
                    sent += 1;
                    last = now;
                }
            }
            assert_eq!(sent, days, "one digest a day from {from}");
        }
    }

    #[test]
    fn the_first_digest_is_due_at_once() {
        let now = t("2026-12-08T15:00:00Z");
        assert!(digest_due(&weekdays_at_8(), chrono_tz::UTC, None, now));
        assert!(!digest_due(
            &weekdays_at_8(),
            chrono_tz::UTC,
            Some(now),
            now
        ));
    }

    #[test]
    fn an_outage_is_alerted_once_it_has_lasted_alert_after_and_only_once() {
        let now = t("2026-12-08T10:00:00Z");
        let hour = Duration::hours(1);
        assert!(!outage_alert(None, false, hour, now));
        assert!(!outage_alert(
            Some(now - Duration::minutes(59)),
            false,
            hour,
            now
        ));
        assert!(outage_alert(Some(now - hour), false, hour, now));
        assert!(!outage_alert(Some(now - hour), true, hour, now));
    }

    fn item(reason: &'static str, amount: Option<&str>, currency: &str) -> UrgentItem {
        UrgentItem {
            kind: "transaction",
            id: "T".into(),
            reason,
            line: String::new(),
            amount: amount
                .map(|a| Money::from_units(a.parse().unwrap(), Currency::parse(currency).unwrap())),
        }
    }

    #[test]
    fn an_urgent_subject_counts_the_most_urgent_kind_with_its_money_per_currency() {
        assert_eq!(urgent_subject(&[]), None);
        assert_eq!(
            urgent_subject(&[item("unexplained_debit", Some("999.99"), "EUR")]).as_deref(),
            Some("1 unexplained debit, 999.99 EUR")
        );
        let several = [
            item("reconcile_failed", Some("10"), "EUR"),
            item("blocks_automation", None, "EUR"),
            item("unexplained_debit", Some("1000"), "EUR"),
            item("unexplained_debit", Some("500.00"), "EUR"),
            item("unexplained_debit", Some("20"), "USD"),
        ];
        assert_eq!(
            urgent_subject(&several).as_deref(),
            Some("3 unexplained debits, 1500.00 EUR, 20.00 USD and 2 more urgent items")
        );
        assert_eq!(
            urgent_subject(&several[..2]).as_deref(),
            Some("1 failed reconcile, 10.00 EUR and 1 more urgent item")
        );
        assert_eq!(
            urgent_subject(&several[1..2]).as_deref(),
            Some("1 unreadable record blocking automation")
        );
    }
}
