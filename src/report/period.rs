//! What a full mail (a digest) tells about the whole period since the last digest that
//! was delivered: every pair reconciled in it (automatic or approved, and by whom),
//! every decision people made in it, and the items open at the last digest or
//! reported since that are no longer open, each with how it was resolved where that
//! is known. Pure: the store reads the
//! rows ([`PeriodReconcile`], [`ClosedItem`]), [`Period::assemble`] puts them together.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Total;
use crate::desk::{Decision, ItemRef};
use crate::domain::{BankTxId, Concept, Money, PaymentId};

/// A pair reconciled in the period, whichever run's `reconciled.csv` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodReconcile {
    pub payment_id: PaymentId,
    pub transaction_id: BankTxId,
    pub amount: Money,
    pub concept: Option<Concept>,
    pub reconciled_at: DateTime<Utc>,
    /// The run that tied it (a person's approve has a run of its own).
    pub run_id: i64,
    /// Who approved it, when a person did; `None` for the job's own reconciles.
    pub approved_by: Option<String>,
}

/// An item the last digest's run or a later one reported that the current run no
/// longer reports, with what the store knows of what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedItem {
    /// `payment`, `transaction` or `offramp`.
    pub kind: String,
    pub item_id: String,
    /// Its reason the last time it was reported.
    pub reason: String,
    /// The last run that reported it.
    pub last_run: i64,
    pub amount: Option<Money>,
    /// The run that reconciled it, if it was reconciled.
    pub reconciled_by_run: Option<i64>,
    /// Who approved that reconcile, when a person did.
    pub approved_by: Option<String>,
}

/// An item resolved in the period, as the mail and the workbook show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedItem {
    pub kind: String,
    pub item_id: String,
    pub reason: String,
    pub last_run: i64,
    pub amount: Option<Money>,
    /// `reconciled by run 7`, `approved by ana, reconciled by run 6`, `dismissed by
    /// luis: bank fee`, or `gone: …`.
    pub how: String,
}

/// The workbook's sheets of the period (under Excel's 31 characters).
pub const RECONCILED_SHEET: &str = "Reconciled since digest";
pub const DECISIONS_SHEET: &str = "Decisions since digest";
pub const RESOLVED_SHEET: &str = "Resolved since digest";

/// Where the period begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The last digest delivered: the report of run `run_id`, which started at `at`.
    Digest { run_id: i64, at: DateTime<Utc> },
    /// No digest was delivered yet: everything since the first run.
    FirstRun,
    /// No digest was delivered yet and the first run is older than [`MAX_FIRST_PERIOD`]:
    /// everything since run `run_id`, the first within it, which started at `at`.
    Bounded { run_id: i64, at: DateTime<Utc> },
}

/// How far back a mail reaches when no digest was ever delivered (mail never got
/// through, or the database predates the record of which mail a report was): a week,
/// what a person can still act on, so that such a mail does not grow with the whole
/// history of the database.
pub const MAX_FIRST_PERIOD: chrono::Duration = chrono::Duration::days(7);

/// The period a full mail covers, and what happened in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub since: Since,
    /// The zone people read times in (`[schedule] timezone`).
    pub tz: Tz,
    /// Oldest first.
    pub reconciled: Vec<PeriodReconcile>,
    /// Per currency, sorted by currency.
    pub totals: Vec<Total>,
    /// Decisions made in the period (who, what, note, outcome), oldest first.
    pub decisions: Vec<Decision>,
    /// By kind, then id.
    pub resolved: Vec<ResolvedItem>,
}

/// What [`Period::assemble`] is built from.
pub struct PeriodInput<'a> {
    pub since: Since,
    pub tz: Tz,
    pub reconciled: Vec<PeriodReconcile>,
    /// Decisions made in the period.
    pub decisions: &'a [Decision],
    pub closed: Vec<ClosedItem>,
    /// Every dismiss and reopen (to say who dismissed a closed item, and why).
    pub dismissals: &'a [Decision],
}

/// A time as people read it: `2026-12-05 07:00 CET`.
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

impl Period {
    pub fn assemble(input: PeriodInput<'_>) -> Period {
        let PeriodInput {
            since,
            tz,
            mut reconciled,
            decisions,
            closed,
            dismissals,
        } = input;
        reconciled.sort_by(|a, b| {
            (a.reconciled_at, &a.payment_id).cmp(&(b.reconciled_at, &b.payment_id))
        });
        let totals = Total::per_currency(reconciled.iter().map(|r| &r.amount));
        let dismissed: HashMap<ItemRef, &Decision> = crate::desk::dismissed(dismissals);
        let mut resolved: Vec<ResolvedItem> = closed
            .into_iter()
            .map(|c| {
                let how = how_resolved(&c, &dismissed);
                ResolvedItem {
                    kind: c.kind,
                    item_id: c.item_id,
                    reason: c.reason,
                    last_run: c.last_run,
                    amount: c.amount,
                    how,
                }
            })
            .collect();
        resolved.sort_by(|a, b| (&a.kind, &a.item_id).cmp(&(&b.kind, &b.item_id)));
        Period {
            since,
            tz,
            reconciled,
            totals,
            decisions: decisions.to_vec(),
            resolved,
        }
    }

    /// `since the digest of 2026-12-05 07:00 CET (run 12)`, or `since the first run (no
    /// digest delivered yet)`.
    pub fn heading(&self) -> String {
        match self.since {
            Since::Digest { run_id, at } => format!(
                "since the digest of {} (run {run_id})",
                local_time(at, self.tz)
            ),
            Since::FirstRun => "since the first run (no digest delivered yet)".to_owned(),
            Since::Bounded { run_id, at } => format!(
                "since run {run_id} of {} (no digest delivered yet; a week back at most)",
                local_time(at, self.tz)
            ),
        }
    }

    /// One line per decision, times in the period's zone.
    pub fn decision_lines(&self) -> Vec<String> {
        self.decisions.iter().map(|d| d.line_in(self.tz)).collect()
    }

    /// One line for a reconciled pair: `P1 with T1, 150.50 EUR, run 7` and who
    /// approved it, or `automatic`.
    pub fn reconcile_line(&self, r: &PeriodReconcile) -> String {
        let who = match &r.approved_by {
            Some(by) => format!("approved by {by}"),
            None => "automatic".to_owned(),
        };
        format!(
            "{} {} with bank transaction {}, {}, run {}, {who}",
            local_time(r.reconciled_at, self.tz),
            r.payment_id,
            r.transaction_id,
            r.amount,
            r.run_id
        )
    }

    /// One line for a resolved item: `payment P9 (ambiguous, 50.00 EUR): reconciled by
    /// run 7`.
    pub fn resolved_line(r: &ResolvedItem) -> String {
        let amount = r
            .amount
            .as_ref()
            .map(|m| format!(", {m}"))
            .unwrap_or_default();
        format!("{} {} ({}{amount}): {}", r.kind, r.item_id, r.reason, r.how)
    }
}

fn how_resolved(c: &ClosedItem, dismissed: &HashMap<ItemRef, &Decision>) -> String {
    if let Some(run) = c.reconciled_by_run {
        return match &c.approved_by {
            Some(by) => format!("approved by {by}, reconciled by run {run}"),
            None => format!("reconciled by run {run}"),
        };
    }
    if let Some(d) = ItemRef::from_parts(&c.kind, &c.item_id).and_then(|i| dismissed.get(&i)) {
        return match d.note.as_deref().filter(|n| !n.is_empty()) {
            Some(note) => format!("dismissed by {}: {note}", d.by),
            None => format!("dismissed by {}", d.by),
        };
    }
    "gone: no longer reported (its record changed at the provider)".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::Action;
    use crate::domain::Currency;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn eur(s: &str) -> Money {
        Money::from_units(s.parse().unwrap(), Currency::parse("EUR").unwrap())
    }

    fn reconcile(p: &str, at: &str, by: Option<&str>) -> PeriodReconcile {
        PeriodReconcile {
            payment_id: PaymentId::parse(p).unwrap(),
            transaction_id: BankTxId::parse(format!("T{p}")).unwrap(),
            amount: eur("150.50"),
            concept: None,
            reconciled_at: t(at),
            run_id: 7,
            approved_by: by.map(str::to_owned),
        }
    }

    fn closed(kind: &str, id: &str, run: Option<i64>, by: Option<&str>) -> ClosedItem {
        ClosedItem {
            kind: kind.to_owned(),
            item_id: id.to_owned(),
            reason: "ambiguous".to_owned(),
            last_run: 5,
            amount: Some(eur("50")),
            reconciled_by_run: run,
            approved_by: by.map(str::to_owned),
        }
    }

    #[test]
    fn the_period_says_who_reconciled_what_and_how_each_closed_item_was_resolved() {
        let dismiss = Decision {
            id: 1,
            at: t("2026-12-05T09:30:00Z"),
            by: "luis".into(),
            action: Action::Dismiss,
            item: ItemRef::from_parts("transaction", "TX9").unwrap(),
            other: None,
            note: Some("bank fee".into()),
            source: "cli".into(),
            run_id: None,
            match_id: None,
            outcome: Some("dismissed".into()),
        };
        let p = Period::assemble(PeriodInput {
            since: Since::Digest {
                run_id: 3,
                at: t("2026-12-05T07:00:00Z"),
            },
            tz: chrono_tz::Europe::Madrid,
            reconciled: vec![
                reconcile("P2", "2026-12-05T11:00:00Z", None),
                reconcile("P1", "2026-12-05T10:00:00Z", Some("ana")),
            ],
            decisions: std::slice::from_ref(&dismiss),
            closed: vec![
                closed("transaction", "TX9", None, None),
                closed("payment", "P1", Some(6), Some("ana")),
                closed("payment", "P2", Some(7), None),
                closed("offramp", "O1", None, None),
            ],
            dismissals: std::slice::from_ref(&dismiss),
        });
        assert_eq!(
            p.heading(),
            "since the digest of 2026-12-05 08:00 CET (run 3)"
        );
        assert_eq!(p.reconciled[0].payment_id.as_str(), "P1", "oldest first");
        assert_eq!(
            p.reconcile_line(&p.reconciled[0]),
            "2026-12-05 11:00 CET P1 with bank transaction TP1, 150.50 EUR, run 7, approved by ana"
        );
        assert!(p.reconcile_line(&p.reconciled[1]).ends_with(", automatic"));
        assert_eq!(p.totals.len(), 1);
        assert_eq!(
            (p.totals[0].count, p.totals[0].total),
            (2, "301.00".parse().unwrap())
        );
        let how: Vec<String> = p.resolved.iter().map(Period::resolved_line).collect();
        assert_eq!(
            how,
            [
                "offramp O1 (ambiguous, 50.00 EUR): gone: no longer reported (its record changed at the provider)",
                "payment P1 (ambiguous, 50.00 EUR): approved by ana, reconciled by run 6",
                "payment P2 (ambiguous, 50.00 EUR): reconciled by run 7",
                "transaction TX9 (ambiguous, 50.00 EUR): dismissed by luis: bank fee",
            ]
        );
        assert_eq!(
            p.decision_lines(),
            ["2026-12-05 10:30 CET luis dismissed bank transaction TX9 (bank fee)"]
        );
    }

    #[test]
    fn before_any_digest_the_period_starts_at_the_first_run() {
        let p = Period::assemble(PeriodInput {
            since: Since::FirstRun,
            tz: chrono_tz::UTC,
            reconciled: Vec::new(),
            decisions: &[],
            closed: Vec::new(),
            dismissals: &[],
        });
        assert_eq!(p.heading(), "since the first run (no digest delivered yet)");
        let bounded = Period {
            since: Since::Bounded {
                run_id: 412,
                at: t("2026-11-29T07:00:00Z"),
            },
            ..p
        };
        assert_eq!(
            bounded.heading(),
            "since run 412 of 2026-11-29 07:00 UTC (no digest delivered yet; a week back at most)"
        );
    }
}
