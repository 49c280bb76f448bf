//! `history`: the life of one item, oldest first: when the job first stored it, the runs
//! that reported it and why (consecutive runs with the same reason as one line), every
//! decision about it, and every reconcile of it (the job's or a person's). Pure: the
//! rows come in, dated lines come out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Decision, ItemRef};
use crate::store::{FindingRow, MatchRow, MatchState, RunId};

/// A run as the history names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFact {
    pub started_at: DateTime<Utc>,
    /// `full`, `incremental`, or `approve` (a person's approve).
    pub mode: String,
}

/// Everything known about one item.
pub struct Input<'a> {
    pub item: &'a ItemRef,
    pub first_seen: Option<DateTime<Utc>>,
    pub findings: &'a [FindingRow],
    pub decisions: &'a [Decision],
    pub matches: &'a [MatchRow],
    pub runs: &'a HashMap<RunId, RunFact>,
}

/// One dated line of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub text: String,
}

/// The item's life, oldest first.
pub fn timeline(input: &Input<'_>) -> Vec<Entry> {
    let mut out = Vec::new();
    let started = |run: RunId| input.runs.get(&run).map(|r| r.started_at);
    // Consecutive runs reporting the same reason, candidates and detail: one line.
    let mut spans: Vec<(RunId, RunId, &FindingRow)> = Vec::new();
    for f in input.findings {
        match spans.last_mut() {
            Some((_, last, g))
                if g.reason == f.reason
                    && g.candidates == f.candidates
                    && g.detail == f.detail
                    && !ran_between(input.runs, *last, f.run_id) =>
            {
                *last = f.run_id;
            }
            _ => spans.push((f.run_id, f.run_id, f)),
        }
    }
    for (from, to, f) in spans {
        let runs = if from == to {
            format!("run {from}")
        } else {
            format!("runs {from}-{to}")
        };
        let mut text = format!("{runs}: reported {}", f.reason);
        if !f.candidates.is_empty() {
            text.push_str(&format!("; candidates {}", f.candidates.join(" ")));
        }
        if let Some(d) = &f.difference {
            text.push_str(&format!("; difference {d}"));
        }
        if let Some(d) = &f.detail {
            text.push_str(&format!("; {d}"));
        }
        if let Some(at) = started(from) {
            out.push(Entry { at, text });
        }
    }
    for d in input.decisions {
        let mut text = d.line();
        // `line` starts with the date, which the entry shows already.
        if let Some((_, rest)) = text.split_once(' ')
            && let Some((_, rest)) = rest.split_once(' ')
        {
            text = rest.to_owned();
        }
        text.push_str(&format!(" [decision {}, {}]", d.id, d.source));
        out.push(Entry { at: d.at, text });
    }
    for m in input.matches {
        let by = match input.runs.get(&m.run_id) {
            Some(r) if r.mode == "approve" => "a person's approve",
            _ => "the job",
        };
        let pair = match input.item {
            ItemRef::Transaction(_) => format!("with payment {}", m.payment_id),
            _ => format!("with bank transaction {}", m.transaction_id),
        };
        if m.state == MatchState::DryRun {
            out.push(Entry {
                at: m.created_at,
                text: format!(
                    "dry run {}: would reconcile {pair} ({}); nothing called",
                    m.run_id, m.amount
                ),
            });
            continue;
        }
        out.push(Entry {
            at: m.created_at,
            text: format!(
                "reconcile {pair} ({}) by {by} (run {}): intent written, call made",
                m.amount, m.run_id
            ),
        });
        if let Some(at) = m.settled_at {
            let mut text = format!("match {}: {}", m.id, m.state.as_str());
            if let Some(code) = &m.provider_code {
                text.push_str(&format!(" ({code})"));
            }
            out.push(Entry { at, text });
        } else {
            out.push(Entry {
                at: m.created_at,
                text: format!(
                    "match {}: {} (the next run settles it)",
                    m.id,
                    m.state.as_str()
                ),
            });
        }
    }
    // Stable: same-instant lines keep the order above (reported, decided, called).
    out.sort_by_key(|e| e.at);
    // First, whatever the clocks say: the run that first stored it started just before.
    if let Some(at) = input.first_seen {
        out.insert(
            0,
            Entry {
                at,
                text: "first seen".into(),
            },
        );
    }
    out
}

/// Whether a job run (not an approve) started strictly between runs `a` and `b`: a
/// run that did not report the item breaks a span.
fn ran_between(runs: &HashMap<RunId, RunFact>, a: RunId, b: RunId) -> bool {
    runs.iter()
        .any(|(id, r)| *id > a && *id < b && r.mode != "approve")
}

/// The history as text: a heading naming the time zone, then one line per entry dated
/// in `tz` (the schedule's zone, as `status` and `review` show times).
pub fn render(item: &ItemRef, entries: &[Entry], tz: chrono_tz::Tz) -> String {
    let mut out = format!("{item} (times in {tz})\n");
    if entries.is_empty() {
        out.push_str("  nothing recorded\n");
    }
    for e in entries {
        let at = e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M");
        out.push_str(&format!("{at}  {}\n", e.text));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use rust_decimal::Decimal;

    use super::*;
    use crate::desk::Action;
    use crate::domain::{BankTxId, Currency, Iban, Money, PaymentId};

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn finding(run: RunId, reason: &str) -> FindingRow {
        FindingRow {
            run_id: run,
            kind: "payment".into(),
            item_id: "P1".into(),
            reason: reason.into(),
            candidates: vec!["T1".into(), "T2".into()],
            difference: None,
            detail: None,
        }
    }

    fn runs() -> HashMap<RunId, RunFact> {
        (1..=5)
            .map(|i| {
                let mode = if i == 3 { "approve" } else { "incremental" };
                (
                    i,
                    RunFact {
                        started_at: t0() + Duration::hours(i),
                        mode: mode.into(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_pair_reconciled_by_a_person_reads_from_first_seen_to_the_tie() {
        let item = ItemRef::Payment(PaymentId::parse("P1").unwrap());
        let findings = [finding(1, "ambiguous"), finding(2, "ambiguous")];
        let decision = Decision {
            id: 1,
            at: t0() + Duration::hours(3),
            by: "ana".into(),
            action: Action::Approve,
            item: item.clone(),
            other: Some(BankTxId::parse("T1").unwrap()),
            note: Some("first transfer".into()),
            source: "cli".into(),
            run_id: Some(3),
            match_id: Some(7),
            outcome: Some("reconciled".into()),
        };
        let m = MatchRow {
            id: 7,
            run_id: 3,
            payment_id: PaymentId::parse("P1").unwrap(),
            transaction_id: BankTxId::parse("T1").unwrap(),
            iban: Iban::parse("ES9121000418450200051332").unwrap(),
            amount: Money::from_units(Decimal::new(15050, 2), Currency::parse("EUR").unwrap()),
            concept: None,
            state: MatchState::Reconciled,
            provider_code: None,
            created_at: t0() + Duration::hours(3),
            settled_at: Some(t0() + Duration::hours(3)),
            written_at: None,
        };
        let runs = runs();
        let entries = timeline(&Input {
            item: &item,
            first_seen: Some(t0()),
            findings: &findings,
            decisions: std::slice::from_ref(&decision),
            matches: std::slice::from_ref(&m),
            runs: &runs,
        });
        let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts[0], "first seen");
        assert_eq!(texts[1], "runs 1-2: reported ambiguous; candidates T1 T2");
        assert!(
            texts[2].starts_with(
                "ana approved payment P1 with bank transaction T1 (first transfer): reconciled"
            ),
            "{}",
            texts[2]
        );
        assert!(
            texts[3].contains("by a person's approve (run 3)"),
            "{}",
            texts[3]
        );
        assert_eq!(texts[4], "match 7: reconciled");
        let text = render(&item, &entries, chrono_tz::UTC);
        assert!(
            text.starts_with("payment P1 (times in UTC)\n2026-06-26 10:00  first seen\n"),
            "{text}"
        );
        let text = render(&item, &entries, chrono_tz::Europe::Madrid);
        assert!(
            text.starts_with("payment P1 (times in Europe/Madrid)\n2026-06-26 12:00  first seen\n"),
            "{text}"
        );
    }

    #[test]
    fn a_run_that_did_not_report_the_item_breaks_a_span() {
        let item = ItemRef::Payment(PaymentId::parse("P1").unwrap());
        let findings = [finding(1, "ambiguous"), finding(4, "ambiguous")];
        let runs = runs();
        let entries = timeline(&Input {
            item: &item,
            first_seen: None,
            findings: &findings,
            decisions: &[],
            matches: &[],
            runs: &runs,
        });
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert!(entries[1].text.starts_with("run 4: "));
    }
}
