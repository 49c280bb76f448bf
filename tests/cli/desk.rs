//! A person's decisions (`review`, `approve`, `dismiss`, `reopen`) through the built
//! binary, against the sandbox over HTTP and a real SQLite file.

use cp_recon::sandbox::{DataSpec, Faults, SandboxConfig};

use crate::helpers::{TestEnv, code, findings, scalar, text};

pub(crate) fn small() -> SandboxConfig {
    SandboxConfig::new(DataSpec::small(7, chrono::Utc::now()))
}

/// A run of the job that must complete.
pub(crate) async fn job(env: &TestEnv) {
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// `(item_id, candidates)` of a run's findings of this kind and reason.
pub(crate) fn reported(
    env: &TestEnv,
    run: i64,
    kind: &str,
    reason: &str,
) -> Vec<(String, Vec<String>)> {
    let store = env.store();
    let mut st = store
        .connection()
        .prepare(
            "SELECT item_id, candidates FROM findings
             WHERE run_id = ?1 AND kind = ?2 AND reason = ?3 ORDER BY item_id",
        )
        .unwrap();
    st.query_map(rusqlite::params![run, kind, reason], |r| {
        let c: String = r.get(1)?;
        Ok((r.get(0)?, c.split_whitespace().map(str::to_owned).collect()))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The payment of the data set that was paid twice: `(payment, [credit1, credit2])`.
pub(crate) fn paid_twice(env: &TestEnv) -> (String, Vec<String>) {
    reported(env, 1, "payment", "ambiguous")
        .into_iter()
        .find(|(_, c)| c.len() == 2)
        .expect("an ambiguous payment with two credits")
}

pub(crate) fn calls_for(env: &TestEnv, payment: &str) -> Vec<String> {
    env.sandbox
        .reconcile_calls()
        .into_iter()
        .filter(|c| c.payment_id == payment)
        .map(|c| c.transaction_id)
        .collect()
}

pub(crate) fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_an_ambiguous_pair_reconciles_it_once_and_the_other_credit_stays_reported() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    let before = env.sandbox.reconcile_calls().len();

    let out = env
        .run(&[
            "approve",
            &payment,
            &credits[0],
            "--by",
            "ana",
            "--note",
            "first transfer",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("reconciled payment"),
        "{}",
        text(&out)
    );
    assert_eq!(calls_for(&env, &payment), [credits[0].clone()]);
    assert_eq!(env.sandbox.reconcile_calls().len(), before + 1);
    assert_eq!(
        env.sandbox.payment_status(&payment).as_deref(),
        Some("payment_received")
    );

    // The same approve again does nothing; the next run calls nothing for it.
    let out = env
        .run(&["approve", &payment, &credits[0], "--by", "ana"])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("already reconciled"),
        "{}",
        text(&out)
    );
    job(&env).await;
    assert_eq!(calls_for(&env, &payment), [credits[0].clone()]);

    let store = env.store();
    let last: i64 = scalar(&store, "SELECT MAX(id) FROM runs");
    let payments = findings(&store, last, "payment");
    let transactions = findings(&store, last, "transaction");
    assert!(!payments.contains_key(&payment), "{payments:?}");
    assert!(!transactions.contains_key(&credits[0]));
    assert!(
        transactions.contains_key(&credits[1]),
        "the other credit is still reported: {transactions:?}"
    );
    let (outcome, by, matched): (String, String, String) = store
        .connection()
        .query_row(
            "SELECT d.outcome, d.by, m.state FROM decisions d JOIN matches m ON m.id = d.match_id
             WHERE d.action = 'approve'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (outcome.as_str(), by.as_str(), matched.as_str()),
        ("reconciled", "ana", "reconciled")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_refuses_what_cannot_be_right_with_exit_2_naming_the_id_and_calls_nothing() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    let store = env.store();
    let reconciled_payment: String = scalar(
        &store,
        "SELECT payment_id FROM matches WHERE state = 'reconciled' LIMIT 1",
    );
    let tied_credit: String = scalar(
        &store,
        "SELECT transaction_id FROM matches WHERE state = 'reconciled' LIMIT 1",
    );
    let debit: String = scalar(
        &store,
        "SELECT id FROM bank_transactions WHERE direction = 'debit' LIMIT 1",
    );
    let (mismatched, mismatched_credit) = reported(&env, 1, "payment", "amount_mismatch")
        .into_iter()
        .next()
        .map(|(p, c)| (p, c[0].clone()))
        .expect("an amount_mismatch pair");
    let (other_currency, other_currency_credit) = reported(&env, 1, "payment", "currency_mismatch")
        .into_iter()
        .next()
        .map(|(p, c)| (p, c[0].clone()))
        .expect("a currency_mismatch pair");
    let not_waiting: String = scalar(
        &store,
        "SELECT id FROM payments WHERE status <> 'pending_bank'
         AND id NOT IN (SELECT payment_id FROM matches) LIMIT 1",
    );
    drop(store);
    let calls = env.sandbox.reconcile_calls().len();

    for (p, t, says) in [
        ("NO-SUCH-PAYMENT", credits[0].as_str(), "NO-SUCH-PAYMENT"),
        (payment.as_str(), "NO-SUCH-CREDIT", "NO-SUCH-CREDIT"),
        (
            reconciled_payment.as_str(),
            credits[0].as_str(),
            reconciled_payment.as_str(),
        ),
        (payment.as_str(), tied_credit.as_str(), tied_credit.as_str()),
        (payment.as_str(), debit.as_str(), "debit"),
        (
            mismatched.as_str(),
            mismatched_credit.as_str(),
            "amounts differ",
        ),
        (
            other_currency.as_str(),
            other_currency_credit.as_str(),
            "currencies differ",
        ),
        (
            not_waiting.as_str(),
            credits[0].as_str(),
            "not pending_bank",
        ),
    ] {
        let out = env.run(&["approve", p, t, "--by", "ana"]).await;
        assert_eq!(code(&out), 2, "{p} {t}: {}", text(&out));
        assert!(text(&out).contains(says), "{says:?} in {}", text(&out));
    }
    let out = env
        .run(&["approve", &payment, &credits[0], "--by", "ana", "--dry-run"])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("would reconcile"), "{}", text(&out));
    assert_eq!(
        env.sandbox.reconcile_calls().len(),
        calls,
        "something was called"
    );
    let decided: i64 = scalar(&env.store(), "SELECT COUNT(*) FROM decisions");
    assert_eq!(decided, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approve_killed_mid_call_is_settled_by_the_next_run_exactly_once() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    env.sandbox.set_faults(Faults {
        hold_reconcile: true,
        ..Faults::default()
    });
    let mut child = env
        .command(&["approve", &payment, &credits[1], "--by", "ana"])
        .spawn()
        .unwrap();
    // The sandbox applied the call and holds its answer.
    env.sandbox.wait_for_held_reconcile().await;
    child.kill().await.unwrap(); // SIGKILL
    assert!(!child.wait().await.unwrap().success());
    env.sandbox.set_faults(Faults::default());
    env.sandbox.release_held();
    {
        let store = env.store();
        let open: i64 = scalar(
            &store,
            "SELECT COUNT(*) FROM matches WHERE state = 'intent'",
        );
        assert_eq!(open, 1, "the intent was committed before the call");
        let pending: i64 = scalar(
            &store,
            "SELECT COUNT(*) FROM decisions WHERE action = 'approve' AND outcome IS NULL",
        );
        assert_eq!(pending, 1);
    }

    job(&env).await;
    job(&env).await;
    assert_eq!(calls_for(&env, &payment), [credits[1].clone()]);
    let store = env.store();
    let state: String = scalar(
        &store,
        &format!("SELECT state FROM matches WHERE payment_id = '{payment}'"),
    );
    assert_eq!(state, "reconciled");
    let outcome: String = scalar(&store, "SELECT outcome FROM decisions");
    assert!(outcome.contains("settled by run"), "{outcome}");
    assert!(outcome.ends_with("reconciled"), "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dismissed_item_leaves_the_report_and_comes_back_after_reopen() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (debit, _) = reported(&env, 1, "transaction", "unexplained_debit")
        .into_iter()
        .next()
        .expect("an unexplained debit");

    let out = env
        .run(&["dismiss", &debit, "--by", "ana", "--note", " "])
        .await;
    assert_eq!(code(&out), 2, "a note is required: {}", text(&out));
    let out = env
        .run(&["dismiss", "NO-SUCH-ITEM", "--by", "ana", "--note", "x"])
        .await;
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("NO-SUCH-ITEM"), "{}", text(&out));

    let out = env
        .run(&["dismiss", &debit, "--by", "ana", "--note", "bank fee"])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env
        .run(&["dismiss", &debit, "--by", "bo", "--note", "again"])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("already dismissed"), "{}", text(&out));

    job(&env).await;
    let store = env.store();
    let run: i64 = scalar(&store, "SELECT MAX(id) FROM runs");
    assert!(!findings(&store, run, "transaction").contains_key(&debit));
    let out = env.run(&["review"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!stdout(&out).contains(&debit), "{}", text(&out));
    assert!(stdout(&out).contains("1 dismissed"), "{}", text(&out));

    let out = env.run(&["reopen", &debit, "--by", "ana"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env.run(&["reopen", &debit, "--by", "ana"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("not dismissed"), "{}", text(&out));
    job(&env).await;
    let run: i64 = scalar(&store, "SELECT MAX(id) FROM runs");
    assert_eq!(
        findings(&store, run, "transaction")
            .get(&debit)
            .map(String::as_str),
        Some("unexplained_debit")
    );
    let actions: i64 = scalar(&store, "SELECT COUNT(*) FROM decisions");
    assert_eq!(actions, 2, "a dismiss and a reopen, never an update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_lists_what_needs_a_person_with_the_command_to_act_in_80_columns() {
    let env = TestEnv::start(small()).await;
    let out = env.run(&["review"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("no completed run"), "{}", text(&out));
    job(&env).await;
    let (payment, credits) = paid_twice(&env);

    let out = env.run(&["review"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let table = stdout(&out);
    for line in table.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    for c in &credits {
        let approve = format!("cp-recon approve {payment} {c} --by NAME");
        assert!(table.contains(&approve), "{approve} in {table}");
    }
    let out = env
        .run(&["review", "--reason", "ambiguous", "--format", "json"])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = v["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["reason"] == "ambiguous"));
    let out = env.run(&["review", "--reason", "ambigous"]).await;
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("unknown reason"), "{}", text(&out));
    let out = env.run(&["review", "--format", "csv"]).await;
    assert!(stdout(&out).starts_with("kind,item_id,reason,amount"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_desk_command_exits_75_and_does_nothing_while_a_run_holds_the_lock() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    let held = cp_recon::lock::RunLock::acquire(&env.db).unwrap();
    let calls = env.sandbox.reconcile_calls().len();
    for args in [
        vec!["review"],
        vec!["approve", &payment, &credits[0], "--by", "ana"],
        vec!["dismiss", &payment, "--by", "ana", "--note", "x"],
        vec!["reopen", &payment, "--by", "ana"],
        vec!["apply", "unmatched_payments.csv", "--by", "ana"],
        vec!["history", &payment],
    ] {
        let out = env.run(&args).await;
        assert_eq!(code(&out), 75, "{args:?}: {}", text(&out));
        assert!(text(&out).contains("another run is in progress"));
    }
    drop(held);
    assert_eq!(env.sandbox.reconcile_calls().len(), calls);
    let decided: i64 = scalar(&env.store(), "SELECT COUNT(*) FROM decisions");
    assert_eq!(decided, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_a_pair_reconciled_by_a_person_end_to_end() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    let out = env
        .run(&[
            "approve",
            &payment,
            &credits[0],
            "--by",
            "ana",
            "--note",
            "first transfer",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    job(&env).await;

    let out = env.run(&["history", &payment]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let h = stdout(&out);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines[0], format!("payment {payment} (times in UTC)"));
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} in {h}"))
    };
    let order = [
        at("first seen"),
        at("runs 1-2: reported ambiguous"),
        at(&format!(
            "ana approved payment {payment} with bank transaction {}",
            credits[0]
        )),
        at("by a person's approve (run 3)"),
        at("  match "),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{h}");
    assert!(h.contains("(first transfer): reconciled"), "{h}");
    assert!(lines[order[4]].ends_with(": reconciled"), "{h}");

    let out = env.run(&["history", &credits[1]]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("run 4: reported no_concept"),
        "{}",
        text(&out)
    );
    let out = env.run(&["history", "NO-SUCH-ITEM"]).await;
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("NO-SUCH-ITEM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dismissed_unreadable_record_no_longer_blocks_the_run_until_reopened() {
    use cp_recon::sandbox::TransactionRecord;
    let env = TestEnv::start(small()).await;
    let iban = env.sandbox.accounts()[0].iban.clone();
    let mut odd = TransactionRecord::credit(
        "UNREADABLE-1",
        iban,
        rust_decimal::Decimal::new(1000, 2),
        "refund",
        chrono::Utc::now() - chrono::Duration::hours(1),
    );
    odd.currency = "EURO".into();
    env.sandbox.add_transaction(odd).unwrap();

    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(env.sandbox.reconcile_calls().is_empty());
    let out = env
        .run(&[
            "dismiss",
            "UNREADABLE-1",
            "--by",
            "ana",
            "--note",
            "test transfer, refunded",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("unreadable record UNREADABLE-1"),
        "{}",
        text(&out)
    );

    job(&env).await;
    assert!(
        !env.sandbox.reconcile_calls().is_empty(),
        "the run reconciled"
    );
    let store = env.store();
    let kept: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM bad_records WHERE record_id = 'UNREADABLE-1'
         AND run_id = (SELECT MAX(id) FROM runs)",
    );
    assert_eq!(kept, 1, "still stored, never dropped");

    let out = env.run(&["reopen", "UNREADABLE-1", "--by", "ana"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 1, "it blocks again: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approve_whose_answer_is_lost_is_settled_by_re_reading_without_a_second_call() {
    use cp_recon::sandbox::hook::{Action, Event, Handle, Hook};
    struct Lose;
    impl Hook for Lose {
        fn on(&self, _: &Handle, event: &Event) -> Action {
            match event {
                Event::Reconcile { .. } => Action::ApplyAndLose,
                _ => Action::Serve,
            }
        }
    }
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    env.sandbox.set_hook(Some(std::sync::Arc::new(Lose)));
    let out = env
        .run(&["approve", &payment, &credits[1], "--by", "ana"])
        .await;
    env.sandbox.set_hook(None);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("reconciled payment"),
        "{}",
        text(&out)
    );
    assert_eq!(calls_for(&env, &payment), [credits[1].clone()]);
    job(&env).await;
    assert_eq!(calls_for(&env, &payment), [credits[1].clone()]);
    let store = env.store();
    let outcome: String = scalar(&store, "SELECT outcome FROM decisions");
    assert_eq!(outcome, "reconciled");
    let answer: String = scalar(
        &store,
        "SELECT m.provider_answer FROM matches m JOIN decisions d ON d.match_id = m.id",
    );
    assert!(answer.contains("settled by re-reading"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approve_left_in_doubt_exits_1_and_the_next_run_settles_it_without_calling() {
    use cp_recon::sandbox::hook::{Action, Event, Handle, Hook};
    // The call is answered with a 503 and not applied: its outcome cannot be told.
    struct Down;
    impl Hook for Down {
        fn on(&self, _: &Handle, event: &Event) -> Action {
            match event {
                Event::Reconcile { .. } => Action::Unavailable,
                _ => Action::Serve,
            }
        }
    }
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    env.sandbox.set_hook(Some(std::sync::Arc::new(Down)));
    let out = env
        .run(&["approve", &payment, &credits[0], "--by", "ana"])
        .await;
    env.sandbox.set_hook(None);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("the next run settles it"),
        "{}",
        text(&out)
    );
    {
        let store = env.store();
        let state: String = scalar(
            &store,
            &format!("SELECT state FROM matches WHERE payment_id = '{payment}'"),
        );
        assert_eq!(state, "unknown");
        let open: i64 = scalar(
            &store,
            "SELECT COUNT(*) FROM decisions WHERE outcome IS NULL",
        );
        assert_eq!(open, 1, "in doubt: no outcome yet");
    }
    let calls = calls_for(&env, &payment).len();

    job(&env).await;
    assert_eq!(
        calls_for(&env, &payment).len(),
        calls,
        "the next run called again"
    );
    assert_eq!(
        env.sandbox.payment_status(&payment).as_deref(),
        Some("pending_bank")
    );
    let store = env.store();
    let outcome: String = scalar(&store, "SELECT outcome FROM decisions");
    assert!(
        outcome.starts_with("settled by run 3: not_applied"),
        "{outcome}"
    );
    let run: i64 = scalar(&store, "SELECT MAX(id) FROM runs");
    assert_eq!(
        findings(&store, run, "payment")
            .get(&payment)
            .map(String::as_str),
        Some("ambiguous"),
        "released, and reported again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approve_records_its_run_s_calls_and_requests_in_the_runs_table() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    let before = env.sandbox.request_count();

    let out = env
        .run(&["approve", &payment, &credits[0], "--by", "ana"])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let requests = env.sandbox.request_count() - before;

    let store = env.store();
    let (calls, api_requests): (i64, i64) = store
        .connection()
        .query_row(
            "SELECT reconcile_calls, api_requests FROM runs WHERE sync_mode = 'approve'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(
        api_requests as u64, requests,
        "the approve's run counts every request it made"
    );
}
