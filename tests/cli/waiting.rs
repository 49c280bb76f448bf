//! What is new and what has waited: each report says when the job first reported every
//! open item, how many days ago, and whether it is new since the previous report.

use std::collections::HashMap;

use crate::helpers::{TestEnv, code, text};

/// `unmatched_payments.csv` of run `run`, as payment id → (first_seen, days_open, new).
fn seen(env: &TestEnv, run: i64) -> HashMap<String, (String, String, String)> {
    let path = env.report_dir(run).join("unmatched_payments.csv");
    let mut reader = csv::Reader::from_path(&path).expect("the CSV opens");
    let header = reader.headers().expect("a header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (id, first, days, new) = (
        col("payment_id"),
        col("first_seen"),
        col("days_open"),
        col("new"),
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("a row");
            (
                r[id].to_owned(),
                (r[first].to_owned(), r[days].to_owned(), r[new].to_owned()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_say_when_they_were_first_reported_and_whether_they_are_new_across_three_runs() {
    let env = TestEnv::start(cp_recon::sandbox::SandboxConfig::new(
        cp_recon::sandbox::DataSpec::small(31, chrono::Utc::now()),
    ))
    .await;
    env.write_config("");
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let started1 = env.store().run(1).unwrap().unwrap().started_at;
    let first = seen(&env, 1);
    assert!(!first.is_empty());
    for (id, (at, days, new)) in &first {
        assert_eq!(at.get(..19), started1.get(..19), "{id}");
        assert_eq!((days.as_str(), new.as_str()), ("0", "yes"), "{id}");
    }

    // A payment appears, waiting for its transfer.
    let concept = env.sandbox.fresh_concept();
    env.sandbox
        .add_payment(cp_recon::sandbox::PaymentRecord::transfer(
            "PWAITINGNEW0000000000001",
            concept,
            4_200,
            chrono::Utc::now(),
        ))
        .unwrap();
    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let second = seen(&env, 2);
    let started2 = env.store().run(2).unwrap().unwrap().started_at;
    let (at, _, new) = &second["PWAITINGNEW0000000000001"];
    assert_eq!((at.get(..19), new.as_str()), (started2.get(..19), "yes"));
    for (id, (at, _, new)) in second.iter().filter(|(id, _)| first.contains_key(*id)) {
        assert_eq!(
            (at.as_str(), new.as_str()),
            (first[id].0.as_str(), "no"),
            "{id} was reported by run 1"
        );
    }

    let out = env.run(&["--run-now"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let third = seen(&env, 3);
    assert!(third.values().all(|(_, _, new)| new == "no"), "{third:?}");
    assert_eq!(
        third["PWAITINGNEW0000000000001"].0,
        second["PWAITINGNEW0000000000001"].0
    );
}
