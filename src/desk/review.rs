//! What needs a person now: the latest completed run's findings, less what was dismissed
//! or reconciled since, each with the command that would act on it. Urgent items come
//! first, then the longest waiting. Pure: the findings, the records, the time zone and
//! `now` come in; items and their text come out.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::ItemRef;
use crate::domain::{BankTransaction, BankTxId, Money, Offramp, OfframpId, Payment, PaymentId};
use crate::store::FindingRow;

/// The width `review` keeps to (a terminal of 80 columns).
pub const WIDTH: usize = 80;

/// Reasons for which a person may tie the item to one of its candidates.
const APPROVABLE: &[&str] = &[
    "ambiguous",
    "too_early",
    "outside_lookback",
    "no_concept",
    "reconcile_failed",
    "sync_incomplete",
];

/// Everything [`items`] looks at.
pub struct Input<'a> {
    pub findings: &'a [FindingRow],
    pub payments: &'a HashMap<PaymentId, Payment>,
    pub transactions: &'a HashMap<BankTxId, BankTransaction>,
    pub offramps: &'a HashMap<OfframpId, Offramp>,
    /// Items dismissed now (not shown, counted).
    pub dismissed: &'a HashSet<ItemRef>,
    /// Items tied by a reconciled match now (settled since the run: not shown).
    pub reconciled: &'a HashSet<ItemRef>,
    /// When the job first reported each item (`kind`, id): the start of the earliest
    /// run whose findings name it, as the report's `first_seen` column.
    pub first_seen: &'a HashMap<(String, String), DateTime<Utc>>,
    /// Only this reason, if given.
    pub reason: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// One item that needs a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: &'static str,
    pub id: String,
    pub reason: String,
    /// Money that left or did not arrive as the job expected (the reasons mailed at once).
    pub urgent: bool,
    pub amount: Option<String>,
    pub currency: Option<String>,
    /// Whole days since the payment was created, the transfer booked, the off-ramp
    /// finished.
    pub age_days: Option<i64>,
    /// When the job first reported it.
    pub first_seen: Option<DateTime<Utc>>,
    pub candidates: Vec<String>,
    pub detail: Option<String>,
    /// The commands that would act on it (an `approve` per candidate, or a `dismiss`).
    pub commands: Vec<String>,
}

/// What [`items`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Review {
    pub items: Vec<Item>,
    /// Dismissals in force: items not shown (whether the run listed them or, already
    /// dismissed then, left them out).
    pub dismissed: usize,
    /// Items of the run not shown because they were reconciled since.
    pub settled: usize,
}

/// A `--reason` filter, checked against the reasons the job reports.
pub fn check_reason(given: &str) -> Result<&str, super::Refusal> {
    use crate::matching::Reason;
    if Reason::ALL.iter().any(|r| r.as_str() == given) {
        return Ok(given);
    }
    Err(super::Refusal::UnknownReason {
        given: given.to_owned(),
        known: Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Whether a finding's reason is urgent ([`crate::matching::Reason::is_urgent`]).
fn urgent(reason: &str) -> bool {
    crate::matching::Reason::ALL
        .iter()
        .any(|r| r.as_str() == reason && r.is_urgent())
}

/// The items of a run's findings that still need a person: urgent ones first, then the
/// longest reported first (an item with no first report last), then by reason, kind, id.
pub fn items(input: &Input<'_>) -> Review {
    let mut out = Review {
        dismissed: input.dismissed.len(),
        ..Review::default()
    };
    for f in input.findings {
        if input.reason.is_some_and(|r| r != f.reason) {
            continue;
        }
        let Some(item) = ItemRef::from_parts(&f.kind, &f.item_id) else {
            continue;
        };
        if input.dismissed.contains(&item) {
            continue;
        }
        if input.reconciled.contains(&item) {
            out.settled += 1;
            continue;
        }
        let (money, since) = facts(&item, input);
        let age_days = since.map(|t| (input.now - t).num_days().max(0));
        out.items.push(Item {
            kind: item.kind(),
            id: f.item_id.clone(),
            reason: f.reason.clone(),
            urgent: urgent(&f.reason),
            amount: money.map(Money::amount_str),
            currency: money.map(|m| m.currency().to_string()),
            age_days,
            first_seen: input
                .first_seen
                .get(&(f.kind.clone(), f.item_id.clone()))
                .copied(),
            candidates: f.candidates.clone(),
            detail: f.detail.clone(),
            commands: commands(&item, f, input),
        });
    }
    out.items.sort_by(|a, b| {
        let key = |i: &Item| (!i.urgent, i.first_seen.is_none(), i.first_seen);
        key(a)
            .cmp(&key(b))
            .then_with(|| (&a.reason, a.kind, &a.id).cmp(&(&b.reason, b.kind, &b.id)))
    });
    out
}

fn facts<'a>(item: &ItemRef, input: &'a Input<'_>) -> (Option<&'a Money>, Option<DateTime<Utc>>) {
    match item {
        ItemRef::Payment(id) => input
            .payments
            .get(id)
            .map_or((None, None), |p| (Some(&p.amount), Some(p.created_at))),
        ItemRef::Transaction(id) => input
            .transactions
            .get(id)
            .map_or((None, None), |t| (Some(&t.amount), Some(t.booked_at))),
        ItemRef::Offramp(id) => input.offramps.get(id).map_or((None, None), |o| {
            (Some(&o.fiat), o.updated_at.or(Some(o.created_at)))
        }),
        ItemRef::BadRecord(_) => (None, None),
    }
}

/// An `approve` line per candidate the reason allows tying to (only a credit: a debit
/// is never approved), else a `dismiss` line.
fn commands(item: &ItemRef, f: &FindingRow, input: &Input<'_>) -> Vec<String> {
    let credit = |id: &str| {
        BankTxId::parse(id)
            .ok()
            .and_then(|t| input.transactions.get(&t))
            .is_none_or(|t| t.direction == crate::domain::Direction::Credit)
    };
    let approvable = APPROVABLE.contains(&f.reason.as_str());
    let lines: Vec<String> = match item {
        ItemRef::Payment(p) if approvable => f
            .candidates
            .iter()
            .filter(|t| credit(t))
            .map(|t| format!("cp-recon approve {p} {t} --by NAME"))
            .collect(),
        ItemRef::Transaction(t) if approvable && credit(t.as_str()) => f
            .candidates
            .iter()
            .map(|p| format!("cp-recon approve {p} {t} --by NAME"))
            .collect(),
        _ => Vec::new(),
    };
    if lines.is_empty() {
        vec![format!(
            "cp-recon dismiss {} --by NAME --note \"WHY\"",
            item.id()
        )]
    } else {
        lines
    }
}

/// The items as text for a terminal: one block per item, no line over [`WIDTH`], every
/// time in `tz` (the schedule's zone, as `status` shows them), named in the first line.
pub fn table(run: i64, run_at: DateTime<Utc>, review: &Review, tz: Tz) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run {run} ({}, times in {tz}): {} item(s) need a person.",
        local(run_at),
        review.items.len()
    );
    let urgent = review.items.iter().filter(|i| i.urgent).count();
    if urgent > 0 {
        let _ = writeln!(out, "{urgent} urgent, listed first.");
    }
    if review.dismissed > 0 {
        let _ = writeln!(out, "{} dismissed item(s) not shown.", review.dismissed);
    }
    if review.settled > 0 {
        let _ = writeln!(out, "{} reconciled since the run.", review.settled);
    }
    for i in &review.items {
        out.push('\n');
        let mut head = format!(
            "{}{} {}: {}",
            if i.urgent { "URGENT " } else { "" },
            i.kind,
            i.id,
            i.reason
        );
        if let (Some(a), Some(c)) = (&i.amount, &i.currency) {
            head.push_str(&format!(", {a} {c}"));
        }
        match i.age_days {
            Some(1) => head.push_str(", 1 day old"),
            Some(d) => head.push_str(&format!(", {d} days old")),
            None => {}
        }
        push_wrapped(&mut out, &head, "");
        if let Some(t) = i.first_seen {
            push_wrapped(&mut out, &format!("  first reported {}", local(t)), "    ");
        }
        if !i.candidates.is_empty() {
            push_wrapped(
                &mut out,
                &format!("  candidates: {}", i.candidates.join(" ")),
                "    ",
            );
        }
        if let Some(d) = &i.detail {
            push_wrapped(&mut out, &format!("  detail: {d}"), "    ");
        }
        for c in &i.commands {
            push_wrapped(&mut out, &format!("  $ {c}"), "      ");
        }
    }
    out
}

/// Appends `line`, cut at spaces into lines of at most [`WIDTH`] characters, the
/// continuations indented by `indent`. A word longer than a line is cut.
fn push_wrapped(out: &mut String, line: &str, indent: &str) {
    let mut current = String::new();
    let lead: String = line.chars().take_while(|c| *c == ' ').collect();
    current.push_str(&lead);
    let mut fresh = true;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let len = current.chars().count();
        let wlen = word.chars().count();
        if !fresh && len + 1 + wlen > WIDTH {
            out.push_str(&current);
            out.push('\n');
            current = indent.to_owned();
            fresh = true;
        }
        if !fresh {
            current.push(' ');
        }
        let room = WIDTH.saturating_sub(current.chars().count()).max(1);
        let mut rest: Vec<char> = word.chars().collect();
        while rest.len() > room && current.trim().is_empty() {
            let head: String = rest.drain(..room).collect();
            out.push_str(&current);
            out.push_str(&head);
            out.push('\n');
            current = indent.to_owned();
        }
        current.extend(rest);
        fresh = false;
    }
    out.push_str(&current);
    out.push('\n');
}

/// The items as CSV (`,`, a header row; commands joined with ` | `; times in UTC, as in
/// the report's CSVs).
pub fn csv(review: &Review) -> Result<String, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "kind",
        "item_id",
        "reason",
        "amount",
        "currency",
        "age_days",
        "candidates",
        "detail",
        "command",
        "urgent",
        "first_seen",
    ])?;
    for i in &review.items {
        w.write_record([
            i.kind,
            &i.id,
            &i.reason,
            i.amount.as_deref().unwrap_or(""),
            i.currency.as_deref().unwrap_or(""),
            &i.age_days.map(|d| d.to_string()).unwrap_or_default(),
            &i.candidates.join(" "),
            &crate::report::neutralize_formula(i.detail.as_deref().unwrap_or("")),
            &i.commands.join(" | "),
            if i.urgent { "yes" } else { "no" },
            &i.first_seen
                .map(crate::report::timestamp)
                .unwrap_or_default(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The items as JSON: `{"run": N, "dismissed": N, "items": [...]}` (times in UTC).
pub fn json(run: i64, review: &Review) -> String {
    serde_json::json!({
        "run": run,
        "dismissed": review.dismissed,
        "reconciled_since": review.settled,
        "items": review.items,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{Concept, Currency, Direction, Iban, PaymentStatus};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-26T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn payment(id: &str, days: i64) -> Payment {
        Payment {
            id: PaymentId::parse(id).unwrap(),
            external_id: None,
            user_id: None,
            status: PaymentStatus::PendingBank,
            amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
            payment_type: None,
            concept: Some(Concept::parse("120037").unwrap()),
            created_at: now() - Duration::days(days),
            updated_at: None,
        }
    }

    fn transaction(id: &str, direction: Direction) -> BankTransaction {
        BankTransaction {
            id: BankTxId::parse(id).unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
            direction,
            concept_text: "120037".into(),
            counterparty_name: None,
            counterparty_iban: None,
            booked_at: now() - Duration::days(1),
            value_date: None,
            reconciled_payment_id: None,
        }
    }

    fn finding(kind: &str, id: &str, reason: &str, candidates: &[&str]) -> FindingRow {
        FindingRow {
            run_id: 3,
            kind: kind.into(),
            item_id: id.into(),
            reason: reason.into(),
            candidates: candidates.iter().map(|s| s.to_string()).collect(),
            difference: None,
            detail: None,
        }
    }

    struct World {
        payments: HashMap<PaymentId, Payment>,
        transactions: HashMap<BankTxId, BankTransaction>,
        offramps: HashMap<OfframpId, Offramp>,
    }

    fn world() -> World {
        let ps = [payment("P1", 12), payment("P2", 3)];
        let ts = [
            transaction("T1", Direction::Credit),
            transaction("T2", Direction::Credit),
            transaction("D1", Direction::Debit),
        ];
        World {
            payments: ps.into_iter().map(|p| (p.id.clone(), p)).collect(),
            transactions: ts.into_iter().map(|t| (t.id.clone(), t)).collect(),
            offramps: HashMap::new(),
        }
    }

    fn review(findings: &[FindingRow], dismissed: &HashSet<ItemRef>) -> Review {
        review_seen(findings, dismissed, &HashMap::new())
    }

    fn review_seen(
        findings: &[FindingRow],
        dismissed: &HashSet<ItemRef>,
        first_seen: &HashMap<(String, String), DateTime<Utc>>,
    ) -> Review {
        let w = world();
        items(&Input {
            findings,
            payments: &w.payments,
            transactions: &w.transactions,
            offramps: &w.offramps,
            dismissed,
            reconciled: &HashSet::new(),
            first_seen,
            reason: None,
            now: now(),
        })
    }

    fn seen(kind: &str, id: &str, days_ago: i64) -> ((String, String), DateTime<Utc>) {
        ((kind.into(), id.into()), now() - Duration::days(days_ago))
    }

    #[test]
    fn urgent_items_come_first_then_the_longest_reported() {
        let findings = [
            finding("payment", "P1", "ambiguous", &["T1", "T2"]),
            finding("payment", "P2", "awaiting_transfer", &[]),
            finding("transaction", "T2", "no_concept", &[]),
            finding("transaction", "D1", "unexplained_debit", &[]),
            finding("transaction", "T1", "ambiguous", &["P1"]),
        ];
        let first_seen = HashMap::from([
            seen("payment", "P1", 2),
            seen("payment", "P2", 9),
            seen("transaction", "T2", 30),
            seen("transaction", "D1", 1),
        ]);
        let r = review_seen(&findings, &HashSet::new(), &first_seen);
        let order: Vec<&str> = r.items.iter().map(|i| i.id.as_str()).collect();
        // The debit is urgent though reported last; T1 has no first report: last.
        assert_eq!(order, ["D1", "T2", "P2", "P1", "T1"]);
        assert!(r.items[0].urgent && r.items[1..].iter().all(|i| !i.urgent));
        let text = table(3, now(), &r, chrono_tz::UTC);
        assert!(text.contains("1 urgent, listed first."), "{text}");
        assert!(
            text.contains("\nURGENT transaction D1: unexplained_debit"),
            "{text}"
        );
    }

    #[test]
    fn every_time_is_shown_in_the_configured_zone_which_is_named() {
        let findings = [finding("payment", "P2", "awaiting_transfer", &[])];
        let first_seen = HashMap::from([seen("payment", "P2", 9)]);
        let r = review_seen(&findings, &HashSet::new(), &first_seen);
        // 2026-06-26 10:30 UTC is 12:30 in Madrid (summer time).
        let text = table(3, now(), &r, chrono_tz::Europe::Madrid);
        assert!(
            text.starts_with("Run 3 (2026-06-26 12:30, times in Europe/Madrid): 1 item(s)"),
            "{text}"
        );
        assert!(text.contains("first reported 2026-06-17 12:30"), "{text}");
        assert!(!text.contains("UTC"), "{text}");
        // Machines get UTC.
        assert!(csv(&r).unwrap().contains("2026-06-17T10:30:00Z"));
        assert!(json(3, &r).contains("2026-06-17T10:30:00Z"));
    }

    #[test]
    fn an_ambiguous_payment_shows_an_approve_line_per_candidate() {
        let r = review(
            &[finding("payment", "P1", "ambiguous", &["T1", "T2"])],
            &HashSet::new(),
        );
        let i = &r.items[0];
        assert_eq!(i.age_days, Some(12));
        assert_eq!(i.amount.as_deref(), Some("150.50"));
        assert_eq!(
            i.commands,
            [
                "cp-recon approve P1 T1 --by NAME",
                "cp-recon approve P1 T2 --by NAME"
            ]
        );
    }

    #[test]
    fn a_no_concept_credit_suggests_approving_its_suggested_payment() {
        let r = review(
            &[finding("transaction", "T1", "no_concept", &["P2"])],
            &HashSet::new(),
        );
        assert_eq!(r.items[0].commands, ["cp-recon approve P2 T1 --by NAME"]);
    }

    #[test]
    fn what_cannot_be_approved_is_offered_a_dismiss() {
        let r = review(
            &[
                finding("transaction", "D1", "unexplained_debit", &[]),
                finding("payment", "P1", "amount_mismatch", &["T1"]),
            ],
            &HashSet::new(),
        );
        for i in &r.items {
            assert!(i.commands[0].starts_with("cp-recon dismiss "), "{i:?}");
        }
    }

    #[test]
    fn dismissed_items_are_counted_not_shown() {
        let dismissed = HashSet::from([ItemRef::Payment(PaymentId::parse("P1").unwrap())]);
        let r = review(
            &[
                finding("payment", "P1", "awaiting_transfer", &[]),
                finding("payment", "P2", "awaiting_transfer", &[]),
            ],
            &dismissed,
        );
        assert_eq!(r.dismissed, 1);
        assert_eq!(r.items.len(), 1);
        assert_eq!(r.items[0].id, "P2");
    }

    #[test]
    fn the_table_fits_an_80_column_terminal() {
        let long = "x".repeat(200);
        let mut f = finding(
            "payment",
            "P1",
            "ambiguous",
            &[
                "T1", "T2", "T1", "T2", "T1", "T2", "T1", "T2", "T1", "T2", "T1",
            ],
        );
        f.detail = Some(format!("a very long detail {long} and more words after it"));
        let r = review(&[f], &HashSet::new());
        let text = table(3, now(), &r, chrono_tz::UTC);
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?}");
        }
        assert!(text.contains("$ cp-recon approve P1 T1 --by NAME"));
    }

    #[test]
    fn an_unknown_reason_is_refused_with_the_known_ones() {
        assert_eq!(check_reason("ambiguous"), Ok("ambiguous"));
        let e = check_reason("ambigous").unwrap_err().to_string();
        assert!(
            e.contains("\"ambigous\"") && e.contains("no_concept"),
            "{e}"
        );
    }

    #[test]
    fn a_reason_filter_keeps_only_that_reason() {
        let w = world();
        let findings = [
            finding("payment", "P1", "ambiguous", &["T1"]),
            finding("payment", "P2", "awaiting_transfer", &[]),
        ];
        let r = items(&Input {
            findings: &findings,
            payments: &w.payments,
            transactions: &w.transactions,
            offramps: &w.offramps,
            dismissed: &HashSet::new(),
            reconciled: &HashSet::new(),
            first_seen: &HashMap::new(),
            reason: Some("awaiting_transfer"),
            now: now(),
        });
        assert_eq!(r.items.len(), 1);
        assert!(json(3, &r).contains("\"awaiting_transfer\""));
        assert!(csv(&r).unwrap().starts_with("kind,item_id,reason"));
    }
}
