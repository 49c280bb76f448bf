//! The two bodies of the report e-mail, plain text and HTML: how the run went, what
//! needs a person per file (with totals per currency) and per reason (with a few words
//! saying what it means), what was reconciled, and where the files are.

use std::fmt::{self, Write as _};
use std::path::Path;

use rust_decimal::Decimal;

use super::MAX_MESSAGE_BYTES;
use crate::domain::{Currency, format_amount};
use crate::report::period::{DECISIONS_SHEET, Period, RECONCILED_SHEET, RESOLVED_SHEET};
use crate::report::{AttentionLine, InOut, ReportKind, Summary, WORKBOOK_FILE, timestamp};

/// Which report files the message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attached {
    /// The workbook and the four CSVs.
    All,
    /// The workbook alone: with the CSVs the message would be too large.
    WorkbookOnly,
    /// Nothing: even the workbook alone would be too large.
    Nothing,
}

/// What the bodies say about the attachments.
pub(super) struct Delivery<'a> {
    pub(super) attached: Attached,
    pub(super) dir: &'a Path,
}

/// `5 new since the last report, 12 still open; waiting since 2026-11-20 at the longest`.
fn waiting_line(s: &Summary) -> Option<String> {
    if s.attention_count == 0 {
        return None;
    }
    let still = s.attention_count.saturating_sub(s.new_items);
    let mut line = format!(
        "{} new since the last report, {still} still open",
        s.new_items
    );
    if let Some(t) = s.oldest_first_seen {
        let _ = write!(
            line,
            "; waiting since {} at the longest",
            t.format("%Y-%m-%d")
        );
    }
    Some(line)
}

/// What leads a mail that names urgent items.
fn urgent_heading(n: usize) -> String {
    match n {
        1 => "NEEDS A PERSON TODAY: 1 new urgent item".to_owned(),
        n => format!("NEEDS A PERSON TODAY: {n} new urgent items"),
    }
}

/// The status lines, worst first. The first line always says how the run went.
fn status_lines(s: &Summary) -> Vec<String> {
    let run = &s.run;
    let mut lines = Vec::new();
    if let Some(err) = &run.failed {
        lines.push(format!("RUN FAILED: {err}"));
    }
    if !run.sync_complete {
        lines.push(
            "INCOMPLETE SYNC: a list could not be read in full, so nothing was \
             reconciled automatically."
                .to_owned(),
        );
    }
    if let Some(caveat) = run.freshness.caveat() {
        lines.push(format!("NOT CURRENT: {caveat}."));
    }
    if lines.is_empty() {
        lines.push("Sync complete: every list was read in full.".to_owned());
    }
    if let Some(stopped) = &run.stopped {
        lines.push(format!("Stopped: {stopped}."));
    }
    if run.dry_run {
        lines.push("DRY RUN: nothing was changed at CryptoPocket.".to_owned());
    }
    lines
}

fn money(total: Decimal, currency: &impl fmt::Display) -> String {
    format!("{} {currency}", format_amount(total))
}

/// At most this many lines per list in a mail. A list is read on a phone: twenty lines
/// are about one screen, enough to see what kind of items a list holds and the largest
/// of them, and a digest of several lists stays a few screens long. The rest is in the
/// workbook and the CSV files, which have every row.
pub const MAX_LIST_LINES: usize = 20;

/// The first [`MAX_LIST_LINES`] of a list, and how many are left out.
fn capped<T>(items: &[T]) -> (&[T], usize) {
    let shown = items.len().min(MAX_LIST_LINES);
    (&items[..shown], items.len() - shown)
}

/// `… and 412 more (in the workbook's Summary sheet)`.
fn more_line(more: usize, place: &str) -> String {
    format!("… and {more} more ({place})")
}

/// Where the rest of the urgent items are.
const URGENT_REST: &str = "in the workbook and the unmatched_*.csv files";
/// Where the rest of the reason lines are.
const REASONS_REST: &str = "in the workbook's Summary sheet";
/// Where the rest of the dismissed unreadable records are.
const WAIVED_REST: &str = "`cp-recon history <id>` tells each";
/// Where the rest of the decisions since the last report are.
const DECISIONS_REST: &str = "`cp-recon history <id>` tells each";

/// One file's part of the summary: its items and their amounts per currency.
struct Section<'a> {
    kind: ReportKind,
    count: usize,
    totals: Vec<(&'a Currency, Decimal)>,
    /// Bank transactions only: per currency, credits and debits apart.
    in_out: &'a [InOut],
    lines: Vec<&'a AttentionLine>,
}

/// `3 credits`, `1 debit`.
fn counted(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `270.48 EUR in (3 credits), 500.00 EUR out (1 debit)`: a side with no items is left
/// out.
fn in_out(flow: &InOut) -> String {
    let mut sides = Vec::new();
    if flow.credits > 0 {
        sides.push(format!(
            "{} in ({})",
            money(flow.credited, &flow.currency),
            counted(flow.credits, "credit")
        ));
    }
    if flow.debits > 0 {
        sides.push(format!(
            "{} out ({})",
            money(flow.debited, &flow.currency),
            counted(flow.debits, "debit")
        ));
    }
    sides.join(", ")
}

impl Section<'_> {
    /// `5 items: 290.49 EUR, 10.00 USD`. Bank transactions give money in and money out
    /// apart, currencies separated by `;`: `4 items: 270.48 EUR in (3 credits), 500.00
    /// EUR out (1 debit)`; one sum of both would be no amount anyone could check.
    fn headline(&self) -> String {
        let amounts = if self.in_out.is_empty() {
            let amounts: Vec<String> = self.totals.iter().map(|(c, t)| money(*t, c)).collect();
            amounts.join(", ")
        } else {
            let amounts: Vec<String> = self.in_out.iter().map(in_out).collect();
            amounts.join("; ")
        };
        let items = if self.count == 1 { "item" } else { "items" };
        format!("{} {items}: {amounts}", self.count)
    }
}

/// The attention lines grouped by file (they come sorted by file, reason, currency).
fn sections(s: &Summary) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    for line in &s.attention {
        if out.last().is_none_or(|sec| sec.kind != line.kind) {
            let in_out = match line.kind {
                ReportKind::UnmatchedBankTransactions => s.transactions_in_out.as_slice(),
                _ => &[],
            };
            out.push(Section {
                kind: line.kind,
                count: 0,
                totals: Vec::new(),
                in_out,
                lines: Vec::new(),
            });
        }
        let Some(sec) = out.last_mut() else { continue };
        sec.count += line.count;
        sec.lines.push(line);
        match sec.totals.iter_mut().find(|(c, _)| *c == &line.currency) {
            Some((_, t)) => *t += line.total,
            None => sec.totals.push((&line.currency, line.total)),
        }
    }
    for sec in &mut out {
        sec.totals.sort_by(|a, b| a.0.cmp(b.0));
    }
    out
}

/// The closing line: what is attached, or where the files are when they are not.
fn files_line(d: &Delivery<'_>) -> String {
    let csvs: Vec<&str> = ReportKind::ALL.iter().map(|k| k.file_name()).collect();
    let limit_mb = MAX_MESSAGE_BYTES / (1024 * 1024);
    match d.attached {
        Attached::All => format!(
            "Details in the attached workbook ({WORKBOOK_FILE}) and CSV files ({}).",
            csvs.join(", ")
        ),
        Attached::WorkbookOnly => format!(
            "Details in the attached workbook ({WORKBOOK_FILE}). The CSV files are not \
             attached, to keep this message under {limit_mb} MB: they are in {} on the \
             host that runs cp-recon.",
            d.dir.display()
        ),
        Attached::Nothing => format!(
            "The workbook and the CSV files are too large to attach (over {limit_mb} MB): \
             they are in {} on the host that runs cp-recon.",
            d.dir.display()
        ),
    }
}

pub(super) fn plain_body(s: &Summary, d: &Delivery<'_>) -> String {
    let mut out = String::new();
    let list = |out: &mut String, indent: &str, lines: &[String], rest: &str| {
        let (shown, more) = capped(lines);
        for line in shown {
            let _ = writeln!(out, "{indent}{line}");
        }
        if more > 0 {
            let _ = writeln!(out, "{indent}{}", more_line(more, rest));
        }
    };
    if !s.urgent.is_empty() {
        let _ = writeln!(out, "{}", urgent_heading(s.urgent.len()));
        list(&mut out, "  ", &s.urgent, URGENT_REST);
        let _ = writeln!(out);
    }
    for line in status_lines(s) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Need attention: {}", s.attention_count);
    if let Some(line) = waiting_line(s) {
        let _ = writeln!(out, "  {line}");
    }
    for sec in sections(s) {
        let _ = writeln!(
            out,
            "  {} ({}): {}",
            sec.kind.title(),
            sec.kind.file_name(),
            sec.headline()
        );
        let lines: Vec<String> = sec
            .lines
            .iter()
            .map(|line| {
                format!(
                    "{:<24} {:>4}  {:>16}   {}",
                    line.reason.as_str(),
                    line.count,
                    money(line.total, &line.currency),
                    line.reason.label()
                )
            })
            .collect();
        list(&mut out, "    ", &lines, REASONS_REST);
    }
    if s.dismissed > 0 {
        let _ = writeln!(out, "  {} dismissed items not shown", s.dismissed);
    }
    list(&mut out, "  ", &s.waived, WAIVED_REST);
    let _ = writeln!(out);
    let _ = writeln!(out, "{}: {}", reconciled_heading(s), s.reconciled_count);
    for t in &s.reconciled {
        let _ = writeln!(
            out,
            "    {:<24} {:>4}  {:>16}",
            "payments",
            t.count,
            money(t.total, &t.currency)
        );
    }
    match &s.period {
        Some(p) => {
            let _ = writeln!(out);
            let _ = writeln!(out, "{}:", capitalized(&p.heading()));
            let _ = writeln!(out, "  Reconciled: {}", p.reconciled.len());
            for t in &p.totals {
                let _ = writeln!(
                    out,
                    "    {:<24} {:>4}  {:>16}",
                    "payments",
                    t.count,
                    money(t.total, &t.currency)
                );
            }
            let lines: Vec<String> = p.reconciled.iter().map(|r| p.reconcile_line(r)).collect();
            list(&mut out, "    ", &lines, &rest_in_sheet(RECONCILED_SHEET));
            let _ = writeln!(out, "  Decisions: {}", p.decisions.len());
            list(
                &mut out,
                "    ",
                &p.decision_lines(),
                &rest_in_sheet(DECISIONS_SHEET),
            );
            let _ = writeln!(out, "  No longer open: {}", p.resolved.len());
            let lines: Vec<String> = p.resolved.iter().map(Period::resolved_line).collect();
            list(&mut out, "    ", &lines, &rest_in_sheet(RESOLVED_SHEET));
        }
        None if !s.decisions.is_empty() => {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Decisions since the last report: {}",
                s.decisions.len()
            );
            list(&mut out, "    ", &s.decisions, DECISIONS_REST);
        }
        None => {}
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Run {}: {} to {}",
        s.run.run_id,
        timestamp(s.run.started_at),
        timestamp(s.run.finished_at)
    );
    let _ = writeln!(out, "{}", files_line(d));
    out
}

/// `Reconciled`, or, in a mail that also tells the period, what this run's
/// `reconciled.csv` holds, so that the two counts are not read as one.
fn reconciled_heading(s: &Summary) -> &'static str {
    if s.period.is_some() {
        "Reconciled in this report's reconciled.csv"
    } else {
        "Reconciled"
    }
}

/// `in the workbook, sheet Reconciled since digest`.
fn rest_in_sheet(sheet: &str) -> String {
    format!("in the workbook, sheet {sheet}")
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A list as a mail shows it: its first [`MAX_LIST_LINES`] lines, and the line that
/// says how many more there are and where.
struct ListView {
    shown: Vec<String>,
    more: Option<String>,
}

impl ListView {
    fn new(lines: &[String], rest: &str) -> Self {
        let (shown, more) = capped(lines);
        Self {
            shown: shown.to_vec(),
            more: (more > 0).then(|| more_line(more, rest)),
        }
    }
}

/// One reason line of a file's section.
struct ReasonView {
    count: usize,
    amount: String,
    code: &'static str,
    label: &'static str,
}

struct SectionView {
    title: &'static str,
    headline: String,
    reasons: Vec<ReasonView>,
    more: Option<String>,
}

struct PeriodView {
    heading: String,
    reconciled_count: usize,
    totals: ListView,
    reconciled: ListView,
    decisions_count: usize,
    decisions: ListView,
    resolved_count: usize,
    resolved: ListView,
}

/// What the HTML part shows, each value as text: the markup is in
/// `templates/report_mail.html`, which escapes every value it writes.
#[derive(askama::Template)]
#[template(path = "report_mail.html")]
struct HtmlMail {
    urgent_heading: Option<String>,
    urgent: ListView,
    status: Vec<String>,
    /// The first status line says the run failed or its sync is incomplete.
    alarm: bool,
    attention_count: usize,
    waiting: Option<String>,
    sections: Vec<SectionView>,
    dismissed: usize,
    waived: ListView,
    reconciled_heading: &'static str,
    reconciled_count: usize,
    reconciled: ListView,
    period: Option<PeriodView>,
    decisions_count: usize,
    decisions: ListView,
    run_id: i64,
    started: String,
    finished: String,
    files: String,
}

/// `3 · 270.48 EUR` per currency.
fn total_lines(t: &[crate::report::Total]) -> Vec<String> {
    t.iter()
        .map(|t| format!("{} · {}", t.count, money(t.total, &t.currency)))
        .collect()
}

/// The HTML part (`templates/report_mail.html`).
pub(super) fn html_body(s: &Summary, d: &Delivery<'_>) -> String {
    let sections = sections(s)
        .into_iter()
        .map(|sec| {
            let (shown, more) = capped(&sec.lines);
            SectionView {
                title: sec.kind.title(),
                headline: sec.headline(),
                reasons: shown
                    .iter()
                    .map(|line| ReasonView {
                        count: line.count,
                        amount: money(line.total, &line.currency),
                        code: line.reason.as_str(),
                        label: line.reason.label(),
                    })
                    .collect(),
                more: (more > 0).then(|| more_line(more, REASONS_REST)),
            }
        })
        .collect();
    let period = s.period.as_ref().map(|p| {
        let reconciled: Vec<String> = p.reconciled.iter().map(|r| p.reconcile_line(r)).collect();
        let resolved: Vec<String> = p.resolved.iter().map(Period::resolved_line).collect();
        PeriodView {
            heading: capitalized(&p.heading()),
            reconciled_count: p.reconciled.len(),
            totals: ListView::new(&total_lines(&p.totals), &rest_in_sheet(RECONCILED_SHEET)),
            reconciled: ListView::new(&reconciled, &rest_in_sheet(RECONCILED_SHEET)),
            decisions_count: p.decisions.len(),
            decisions: ListView::new(&p.decision_lines(), &rest_in_sheet(DECISIONS_SHEET)),
            resolved_count: p.resolved.len(),
            resolved: ListView::new(&resolved, &rest_in_sheet(RESOLVED_SHEET)),
        }
    });
    let mail = HtmlMail {
        urgent_heading: (!s.urgent.is_empty()).then(|| urgent_heading(s.urgent.len())),
        urgent: ListView::new(&s.urgent, URGENT_REST),
        status: status_lines(s),
        alarm: s.run.failed.is_some() || !s.run.sync_complete,
        attention_count: s.attention_count,
        waiting: waiting_line(s),
        sections,
        dismissed: s.dismissed,
        waived: ListView::new(&s.waived, WAIVED_REST),
        reconciled_heading: reconciled_heading(s),
        reconciled_count: s.reconciled_count,
        reconciled: ListView::new(&total_lines(&s.reconciled), REASONS_REST),
        period,
        decisions_count: s.decisions.len(),
        decisions: ListView::new(&s.decisions, DECISIONS_REST),
        run_id: s.run.run_id,
        started: timestamp(s.run.started_at),
        finished: timestamp(s.run.finished_at),
        files: files_line(d),
    };
    askama::Template::render(&mail).unwrap_or_else(|e| {
        // The template is checked when the crate is built; rendering into a String
        // fails only if a value's Display does, which none of these does.
        unreachable!("the report mail's template failed to render: {e}")
    })
}

#[cfg(test)]
mod tests {
    /// `text` as the template writes it.
    fn escaped(text: &str) -> String {
        askama::filters::escape(text, askama::filters::Html)
            .unwrap()
            .to_string()
    }
    use super::*;

    /// A summary of a run with nothing in it.
    fn empty_summary() -> Summary {
        let now = chrono::Utc::now();
        Summary {
            run: crate::report::RunInfo {
                run_id: 4,
                token: "7f3a9c".into(),
                started_at: now,
                finished_at: now,
                sync_complete: true,
                dry_run: false,
                failed: None,
                stopped: None,
                freshness: crate::report::Freshness::Current,
            },
            urgent: Vec::new(),
            new_items: 0,
            oldest_first_seen: None,
            attention_count: 0,
            attention: Vec::new(),
            transactions_in_out: Vec::new(),
            reconciled_count: 0,
            reconciled: Vec::new(),
            dismissed: 0,
            decisions: Vec::new(),
            waived: Vec::new(),
            period: None,
        }
    }

    fn delivery() -> Delivery<'static> {
        Delivery {
            attached: Attached::All,
            dir: Path::new("/tmp/r"),
        }
    }

    #[test]
    fn the_body_counts_dismissed_items_and_lists_decisions_and_waived_records() {
        let s = Summary {
            dismissed: 3,
            decisions: vec!["2026-12-02 08:44 ana dismissed payment P1 (<test>)".into()],
            waived: vec!["unreadable record X1 is dismissed (by ana)".into()],
            ..empty_summary()
        };
        let d = delivery();
        let plain = plain_body(&s, &d);
        assert!(plain.contains("  3 dismissed items not shown\n"), "{plain}");
        assert!(
            plain.contains("Decisions since the last report: 1\n"),
            "{plain}"
        );
        assert!(plain.contains("    2026-12-02 08:44 ana dismissed payment P1 (<test>)\n"));
        assert!(plain.contains("  unreadable record X1 is dismissed (by ana)\n"));
        let html = html_body(&s, &d);
        let decision = escaped("2026-12-02 08:44 ana dismissed payment P1 (<test>)");
        assert!(
            html.contains(&format!("<li style=\"margin:4px 0\">{decision}</li>")),
            "{html}"
        );
        assert!(html.contains("3 dismissed items not shown"));
        let none = Summary {
            dismissed: 0,
            decisions: Vec::new(),
            waived: Vec::new(),
            ..s
        };
        assert!(!plain_body(&none, &d).contains("dismissed"));
        assert!(!plain_body(&none, &d).contains("Decisions"));
    }

    #[test]
    fn every_list_in_a_mail_shows_twenty_lines_then_says_how_many_more_and_where() {
        let lines = |what: &str, n: usize| -> Vec<String> {
            (1..=n).map(|i| format!("{what} {i:04}")).collect()
        };
        let s = Summary {
            urgent: lines("unexplained_debit: debit", 432),
            decisions: lines("ana dismissed payment", 300),
            waived: lines("unreadable record", 21),
            ..empty_summary()
        };
        let plain = plain_body(&s, &delivery());
        let html = html_body(&s, &delivery());
        for (what, total, rest) in [
            ("unexplained_debit: debit", 432, URGENT_REST),
            ("ana dismissed payment", 300, DECISIONS_REST),
            ("unreadable record", 21, WAIVED_REST),
        ] {
            let shown = plain
                .lines()
                .filter(|l| l.trim_start().starts_with(what))
                .count();
            assert_eq!(shown, MAX_LIST_LINES, "{what}\n{plain}");
            assert!(plain.contains(&format!("{what} 0020\n")), "{plain}");
            assert!(!plain.contains(&format!("{what} 0021")), "{plain}");
            let more = format!("… and {} more ({rest})", total - MAX_LIST_LINES);
            assert!(
                plain.lines().any(|l| l.trim() == more),
                "{more} in\n{plain}"
            );
            assert_eq!(
                html.matches(&format!(">{}", escaped(what))).count(),
                MAX_LIST_LINES
            );
            assert!(html.contains(&escaped(&more)), "{more} in\n{html}");
        }
        // The heading still counts them all.
        assert!(plain.starts_with("NEEDS A PERSON TODAY: 432 new urgent items\n"));
        assert!(plain.contains("Decisions since the last report: 300\n"));
        // A list of exactly twenty is shown whole, with no "more" line.
        let twenty = Summary {
            urgent: lines("reconcile_failed: payment", MAX_LIST_LINES),
            ..empty_summary()
        };
        let plain = plain_body(&twenty, &delivery());
        assert!(plain.contains("reconcile_failed: payment 0020\n"));
        assert!(!plain.contains("more ("), "{plain}");
    }

    #[test]
    fn the_period_of_a_digest_is_told_with_its_lists_capped() {
        use crate::domain::{BankTxId, Currency, Money, PaymentId};
        use crate::report::period::{PeriodInput, PeriodReconcile, Since};
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-05T07:00:00Z")
            .unwrap()
            .to_utc();
        let reconciled = (1..=300)
            .map(|i| PeriodReconcile {
                payment_id: PaymentId::parse(format!("P{i:04}")).unwrap(),
                transaction_id: BankTxId::parse(format!("T{i:04}")).unwrap(),
                amount: Money::from_units(Decimal::new(1050, 2), Currency::parse("EUR").unwrap()),
                concept: None,
                reconciled_at: at + chrono::Duration::minutes(i),
                run_id: 9,
                approved_by: None,
            })
            .collect();
        let period = Period::assemble(PeriodInput {
            since: Since::Digest { run_id: 3, at },
            tz: chrono_tz::Europe::Madrid,
            reconciled,
            decisions: &[],
            closed: Vec::new(),
            dismissals: &[],
        });
        let s = Summary {
            period: Some(period),
            decisions: vec!["not shown: the period's decisions are".into()],
            ..empty_summary()
        };
        let plain = plain_body(&s, &delivery());
        for line in [
            "Reconciled in this report's reconciled.csv: 0",
            "Since the digest of 2026-12-05 08:00 CET (run 3):",
            "  Reconciled: 300",
            "    payments                  300       3150.00 EUR",
            "    … and 280 more (in the workbook, sheet Reconciled since digest)",
            "  Decisions: 0",
            "  No longer open: 0",
        ] {
            assert!(plain.lines().any(|l| l == line), "{line:?} in\n{plain}");
        }
        assert_eq!(plain.matches(", run 9, automatic").count(), MAX_LIST_LINES);
        assert!(!plain.contains("not shown"), "{plain}");
        let html = html_body(&s, &delivery());
        assert_eq!(html.matches(", run 9, automatic").count(), MAX_LIST_LINES);
        assert!(html.contains("Since the digest of 2026-12-05 08:00 CET (run 3)"));
    }
}
