//! The two bodies of the report e-mail, plain text and HTML: how the run went, what
//! needs a person per file (with totals per currency) and per reason (with a few words
//! saying what it means), what was reconciled, and where the files are.

use std::fmt::{self, Write as _};
use std::path::Path;

use rust_decimal::Decimal;

use super::MAX_MESSAGE_BYTES;
use crate::domain::{Currency, format_amount};
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
    if run.dry_run {
        lines.push("DRY RUN: nothing was changed at CryptoPocket.".to_owned());
    }
    lines
}

fn money(total: Decimal, currency: &impl fmt::Display) -> String {
    format!("{} {currency}", format_amount(total))
}

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
    if !s.urgent.is_empty() {
        let _ = writeln!(out, "{}", urgent_heading(s.urgent.len()));
        for line in &s.urgent {
            let _ = writeln!(out, "  {line}");
        }
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
        for line in sec.lines {
            let _ = writeln!(
                out,
                "    {:<24} {:>4}  {:>16}   {}",
                line.reason.as_str(),
                line.count,
                money(line.total, &line.currency),
                line.reason.label()
            );
        }
    }
    if s.dismissed > 0 {
        let _ = writeln!(out, "  {} dismissed items not shown", s.dismissed);
    }
    for w in &s.waived {
        let _ = writeln!(out, "  {w}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Reconciled: {}", s.reconciled_count);
    for t in &s.reconciled {
        let _ = writeln!(
            out,
            "    {:<24} {:>4}  {:>16}",
            "payments",
            t.count,
            money(t.total, &t.currency)
        );
    }
    if !s.decisions.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Decisions since the last report: {}",
            s.decisions.len()
        );
        for d in &s.decisions {
            let _ = writeln!(out, "    {d}");
        }
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

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML part. No tables: headings and lists wrap to any screen, so the summary
/// reads on a phone as on a desktop.
pub(super) fn html_body(s: &Summary, d: &Delivery<'_>) -> String {
    let e = html_escape;
    let bad = s.run.failed.is_some() || !s.run.sync_complete;
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:0 auto;padding:8px;\
         overflow-wrap:break-word\">\n",
    );
    if !s.urgent.is_empty() {
        let _ = writeln!(
            out,
            "<h3 style=\"color:#b00020\">{}</h3>\n<ul style=\"margin:0;padding-left:20px\">",
            e(&urgent_heading(s.urgent.len()))
        );
        for line in &s.urgent {
            let _ = writeln!(out, "<li style=\"margin:4px 0\">{}</li>", e(line));
        }
        out.push_str("</ul>\n");
    }
    for (i, line) in status_lines(s).iter().enumerate() {
        let style = if i == 0 && bad {
            " style=\"color:#b00020;font-weight:bold\""
        } else {
            ""
        };
        let _ = writeln!(out, "<p{style}>{}</p>", e(line));
    }
    let _ = writeln!(out, "<h3>Need attention: {}</h3>", s.attention_count);
    if let Some(line) = waiting_line(s) {
        let _ = writeln!(out, "<p>{}</p>", e(&line));
    }
    for sec in sections(s) {
        let _ = writeln!(
            out,
            "<h4 style=\"margin:12px 0 4px\">{} — {}</h4>\n\
             <ul style=\"margin:0;padding-left:20px\">",
            e(sec.kind.title()),
            e(&sec.headline())
        );
        for line in sec.lines {
            let _ = writeln!(
                out,
                "<li style=\"margin:4px 0\"><b>{} · {}</b> <code>{}</code>: {}</li>",
                line.count,
                e(&money(line.total, &line.currency)),
                e(line.reason.as_str()),
                e(line.reason.label())
            );
        }
        out.push_str("</ul>\n");
    }
    if s.dismissed > 0 {
        let _ = writeln!(out, "<p>{} dismissed items not shown</p>", s.dismissed);
    }
    for w in &s.waived {
        let _ = writeln!(out, "<p>{}</p>", e(w));
    }
    let _ = writeln!(out, "<h3>Reconciled: {}</h3>", s.reconciled_count);
    if !s.reconciled.is_empty() {
        out.push_str("<ul style=\"margin:0;padding-left:20px\">\n");
        for t in &s.reconciled {
            let _ = writeln!(
                out,
                "<li style=\"margin:4px 0\"><b>{} · {}</b></li>",
                t.count,
                e(&money(t.total, &t.currency))
            );
        }
        out.push_str("</ul>\n");
    }
    if !s.decisions.is_empty() {
        let _ = writeln!(
            out,
            "<h3>Decisions since the last report: {}</h3>\n<ul>",
            s.decisions.len()
        );
        for d in &s.decisions {
            let _ = writeln!(out, "<li>{}</li>", e(d));
        }
        out.push_str("</ul>\n");
    }
    let _ = writeln!(
        out,
        "<p>Run {}: {} to {}</p>",
        s.run.run_id,
        e(&timestamp(s.run.started_at)),
        e(&timestamp(s.run.finished_at))
    );
    let _ = writeln!(out, "<p>{}</p>\n</body></html>", e(&files_line(d)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_counts_dismissed_items_and_lists_decisions_and_waived_records() {
        let now = chrono::Utc::now();
        let s = crate::report::Summary {
            run: crate::report::RunInfo {
                run_id: 4,
                token: "7f3a9c".into(),
                started_at: now,
                finished_at: now,
                sync_complete: true,
                dry_run: false,
                failed: None,
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
            dismissed: 3,
            decisions: vec!["2026-12-02 08:44 ana dismissed payment P1 (<test>)".into()],
            waived: vec!["unreadable record X1 is dismissed (by ana)".into()],
        };
        let d = Delivery {
            attached: Attached::All,
            dir: std::path::Path::new("/tmp/r"),
        };
        let plain = plain_body(&s, &d);
        assert!(plain.contains("  3 dismissed items not shown\n"), "{plain}");
        assert!(
            plain.contains("Decisions since the last report: 1\n"),
            "{plain}"
        );
        assert!(plain.contains("    2026-12-02 08:44 ana dismissed payment P1 (<test>)\n"));
        assert!(plain.contains("  unreadable record X1 is dismissed (by ana)\n"));
        let html = html_body(&s, &d);
        assert!(html.contains("<li>2026-12-02 08:44 ana dismissed payment P1 (&lt;test&gt;)</li>"));
        assert!(html.contains("3 dismissed items not shown"));
        let none = crate::report::Summary {
            dismissed: 0,
            decisions: Vec::new(),
            waived: Vec::new(),
            ..s
        };
        assert!(!plain_body(&none, &d).contains("dismissed"));
        assert!(!plain_body(&none, &d).contains("Decisions"));
    }
}
