//! Incremental runs reach the same decisions as a cold run on the same data.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use cp_recon::sandbox::{OfframpRecord, PaymentRecord, SandboxConfig, TransactionRecord};
use cp_recon::store::Store;
use rust_decimal::Decimal;

use crate::helpers::{TestEnv, code, findings, scalar, text};

fn dry_run_pairs(store: &Store, run: i64) -> BTreeSet<(String, String)> {
    let mut st = store
        .connection()
        .prepare("SELECT payment_id, transaction_id FROM matches WHERE run_id = ?1 AND state = 'dry_run'")
        .unwrap();
    st.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_reaches_the_same_decisions_as_a_cold_run_including_status_changes_of_old_payments()
 {
    let env = TestEnv::start(SandboxConfig::new(cp_recon::sandbox::DataSpec::scaled(
        5,
        Utc::now(),
        400,
        400,
        40,
    )))
    .await;
    // Run 1: a full run that really reconciles.
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));

    // New work arrives, and old payments change status behind our back.
    let now = Utc::now();
    let sb = &env.sandbox;
    let iban = sb.accounts()[0].iban.clone();
    let exp = sb.expected().clone();
    let mut awaiting = exp
        .payment_reasons
        .iter()
        .filter(|(_, r)| *r == "awaiting_transfer")
        .map(|(p, _)| p.clone());
    // An old waiting payment is reconciled in the back office (leaves pending_bank).
    let gone = awaiting.next().expect("an awaiting payment");
    assert!(sb.set_payment_status(&gone, "payment_received"));
    // Another old waiting payment finally gets its transfer.
    let paid = awaiting.next().expect("a second awaiting payment");
    let rec = sb.payment(&paid).unwrap();
    sb.add_transaction(TransactionRecord::credit(
        "NEWCREDITFOROLD0001",
        &iban,
        Decimal::new(rec.fiat_cents, 2),
        format!("Transferencia {}", rec.concept.unwrap()),
        now - Duration::minutes(30),
    ))
    .unwrap();
    // A brand-new payment and its transfer.
    let c = sb.fresh_concept();
    sb.add_payment(PaymentRecord::transfer(
        "NEWPAYMENT00000000000001",
        c,
        12345,
        now - Duration::hours(2),
    ))
    .unwrap();
    sb.add_transaction(TransactionRecord::credit(
        "NEWCREDIT0000000001",
        &iban,
        Decimal::new(12345, 2),
        format!("Ref {c}"),
        now - Duration::hours(1),
    ))
    .unwrap();
    // A brand-new payment still waiting, a stray credit and a debit nobody explains.
    let c2 = sb.fresh_concept();
    sb.add_payment(PaymentRecord::transfer(
        "NEWPAYMENT00000000000002",
        c2,
        500,
        now - Duration::hours(3),
    ))
    .unwrap();
    sb.add_transaction(TransactionRecord::credit(
        "NEWSTRAYCREDIT00001",
        &iban,
        Decimal::new(777, 2),
        "gift",
        now - Duration::minutes(10),
    ))
    .unwrap();
    // A new finished off-ramp and its payout.
    sb.add_offramp(OfframpRecord::new(
        "NEWOFFRAMP000000000000001",
        "finished",
        Decimal::new(25000, 2),
        now - Duration::hours(5),
        now - Duration::hours(4),
    ))
    .unwrap();
    sb.add_transaction(TransactionRecord::debit(
        "NEWPAYOUT0000000001",
        &iban,
        Decimal::new(25000, 2),
        "Payout NEWOFFRAMP000000000000001",
        now - Duration::hours(3),
    ))
    .unwrap();
    sb.add_transaction(TransactionRecord::debit(
        "NEWFEE0000000000001",
        &iban,
        Decimal::new(150, 2),
        "Bank fee",
        now - Duration::hours(3),
    ))
    .unwrap();

    // Run 2, incremental, decides without calling.
    let out = env.run(&["--run-now", "--dry-run"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let a = env.store();
    assert_eq!(a.run(2).unwrap().unwrap().sync_mode, "incremental");
    let payments_read: i64 = scalar(
        &a,
        "SELECT items FROM run_lists WHERE run_id = 2 AND list = 'payments'",
    );
    assert!(
        (payments_read as usize) < env.sandbox.counts().payments / 2,
        "the incremental run re-read the history: {payments_read}"
    );

    // A cold run on a fresh database, on the same data, also without calling.
    let cold_db = env.db.with_file_name("cold.sqlite3");
    let cold_cfg = env.db.with_file_name("cold.toml");
    env.write_config_at(&cold_cfg, &cold_db, "");
    let out = env
        .command_with(&cold_cfg, &["--run-now", "--dry-run"])
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let b = Store::open(&cold_db).unwrap();
    assert_eq!(b.run(1).unwrap().unwrap().sync_mode, "full");

    assert_eq!(dry_run_pairs(&a, 2), dry_run_pairs(&b, 1));
    assert!(dry_run_pairs(&a, 2).contains(&(
        "NEWPAYMENT00000000000001".to_owned(),
        "NEWCREDIT0000000001".to_owned()
    )));
    assert!(dry_run_pairs(&a, 2).contains(&(paid.clone(), "NEWCREDITFOROLD0001".to_owned())));
    for kind in ["payment", "transaction", "offramp"] {
        assert_eq!(
            findings(&a, 2, kind),
            findings(&b, 1, kind),
            "{kind} findings differ"
        );
    }
    let fa = findings(&a, 2, "payment");
    assert!(
        !fa.contains_key(&gone),
        "a payment reconciled elsewhere is still reported"
    );
    assert_eq!(
        fa.get("NEWPAYMENT00000000000002").map(String::as_str),
        Some("awaiting_transfer")
    );
    let ta = findings(&a, 2, "transaction");
    assert_eq!(
        ta.get("NEWFEE0000000000001").map(String::as_str),
        Some("unexplained_debit")
    );
    assert!(!ta.contains_key("NEWPAYOUT0000000001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_resyncs_happen_every_n_runs_and_on_demand() {
    let env = TestEnv::start(SandboxConfig::default()).await;
    env.write_config("\n[sync]\nfull_resync_every = 3\n");
    for _ in 0..4 {
        let out = env.run(&["--run-now"]).await;
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let out = env.run(&["--run-now", "--full"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let store = env.store();
    let modes: Vec<String> = (1..=5)
        .map(|r| store.run(r).unwrap().unwrap().sync_mode)
        .collect();
    assert_eq!(
        modes,
        ["full", "incremental", "incremental", "full", "full"]
    );
}
