//! A debit that sends back the money of a payment the job reconciled is reported
//! `returned_after_reconcile` by the next run.

use std::str::FromStr;

use chrono::{Duration, Utc};
use cp_recon::sandbox::{SandboxConfig, TransactionRecord};
use rust_decimal::Decimal;

use crate::helpers::{TestEnv, code, findings, text};

/// A EUR pair run 1 reconciled: payment, credit, IBAN, amount, concept.
type Pair = (String, String, String, String, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debit_returning_a_reconciled_payment_is_reported_returned_after_reconcile_next_run() {
    let env = TestEnv::start(SandboxConfig::default()).await;
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));

    let pairs: Vec<Pair> = {
        let store = env.store();
        let mut st = store
            .connection()
            .prepare(
                "SELECT payment_id, transaction_id, iban, amount, concept FROM matches
                 WHERE state = 'reconciled' AND currency = 'EUR' AND concept IS NOT NULL
                 ORDER BY id LIMIT 2",
            )
            .unwrap();
        st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    assert_eq!(pairs.len(), 2, "run 1 reconciled two EUR payments");
    let (p1, _, iban1, amount1, concept1) = &pairs[0];
    let (p2, credit2, iban2, amount2, _) = &pairs[1];
    let amount1 = Decimal::from_str(amount1).unwrap();
    let amount2 = Decimal::from_str(amount2).unwrap();

    // The bank books the money going back out: once naming the payment's concept, once
    // the reconciled credit's id; and a debit with the concept but another amount.
    let now = Utc::now();
    let sb = &env.sandbox;
    for (id, iban, amount, text) in [
        (
            "RETURNBYCONCEPT0001",
            iban1,
            amount1,
            format!("Devolución pedido {concept1}"),
        ),
        (
            "RETURNBYCREDITID001",
            iban2,
            amount2,
            format!("Return of {credit2}"),
        ),
        (
            "NOTARETURN000000001",
            iban1,
            amount1 + Decimal::new(1, 2),
            format!("Devolución pedido {concept1}"),
        ),
    ] {
        sb.add_transaction(TransactionRecord::debit(
            id,
            iban,
            amount,
            text,
            now - Duration::minutes(5),
        ))
        .unwrap();
    }

    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let store = env.store();
    let tx = findings(&store, 2, "transaction");
    assert_eq!(
        tx.get("RETURNBYCONCEPT0001").map(String::as_str),
        Some("returned_after_reconcile")
    );
    assert_eq!(
        tx.get("RETURNBYCREDITID001").map(String::as_str),
        Some("returned_after_reconcile")
    );
    assert_eq!(
        tx.get("NOTARETURN000000001").map(String::as_str),
        Some("unexplained_debit")
    );
    let (candidates, detail): (String, String) = store
        .connection()
        .query_row(
            "SELECT candidates, detail FROM findings
             WHERE run_id = 2 AND item_id = 'RETURNBYCONCEPT0001'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(candidates.contains(p1.as_str()), "{candidates}");
    assert!(detail.contains(p1.as_str()), "{detail}");

    // The report says so too, with the payment it returns.
    let csv =
        std::fs::read_to_string(env.report_dir(2).join("unmatched_bank_transactions.csv")).unwrap();
    let line = csv
        .lines()
        .find(|l| l.starts_with("RETURNBYCREDITID001,"))
        .unwrap_or_else(|| panic!("no row for the return:\n{csv}"));
    assert!(
        line.contains("returned_after_reconcile") && line.contains(p2.as_str()),
        "{line}"
    );
}
