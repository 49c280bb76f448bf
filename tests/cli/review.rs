//! `cp-recon review` as a person reads it: urgent items first, times in the schedule's
//! zone.

use crate::desk::{job, small, stdout};
use crate::helpers::{TestEnv, code, text};

const URGENT: &[&str] = &[
    "reconcile_failed",
    "unexplained_debit",
    "returned_after_reconcile",
    "vanished",
];

/// The item heads of a review table, in order: `(urgent mark, reason)`.
fn heads(table: &str) -> Vec<(bool, String)> {
    table
        .lines()
        .filter(|l| {
            !l.starts_with(' ')
                && (l.starts_with("URGENT ")
                    || ["payment ", "transaction ", "offramp ", "bad_record "]
                        .iter()
                        .any(|k| l.starts_with(k)))
        })
        .map(|l| {
            let reason = l.split(": ").nth(1).unwrap_or("");
            let reason = reason.split(',').next().unwrap_or("").trim().to_owned();
            (l.starts_with("URGENT "), reason)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_lists_urgent_items_first_with_times_in_the_schedules_zone() {
    let env = TestEnv::start(small()).await;
    env.write_config("\n[schedule]\ntimezone = \"Europe/Madrid\"\n");
    job(&env).await;

    let out = env.run(&["review"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let table = stdout(&out);
    let started = env.store().run(1).unwrap().unwrap().started_at;
    let started = chrono::DateTime::parse_from_rfc3339(&started)
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Madrid)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let first = table.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("Run 1 ({started}, times in Europe/Madrid): ")),
        "{table}"
    );
    assert!(!table.contains("UTC"), "{table}");
    assert!(
        table.contains(&format!("first reported {started}")),
        "{table}"
    );

    let heads = heads(&table);
    let urgent = heads.iter().filter(|(u, _)| *u).count();
    assert!(urgent > 0, "the data set has an urgent item: {table}");
    assert!(heads.len() > urgent, "and others: {table}");
    for (i, (marked, reason)) in heads.iter().enumerate() {
        assert_eq!(*marked, i < urgent, "urgent items first: {heads:?}");
        assert_eq!(*marked, URGENT.contains(&reason.as_str()), "{reason}");
    }
}
