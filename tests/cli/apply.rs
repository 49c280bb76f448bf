//! `cp-recon apply`: decisions written into a report CSV and handed back.

use std::path::{Path, PathBuf};

use crate::desk::{calls_for, job, paid_twice, reported, small, stdout};
use crate::helpers::{TestEnv, code, scalar, text};

/// Run 1's `unmatched_payments.csv` with `action` and `note` filled in for some rows,
/// written to `name` with this delimiter (and a BOM when asked). `fill` gets the row's
/// payment id and returns `(action, note)`, and may rewrite the row's candidates.
fn hand_back(
    env: &TestEnv,
    name: &str,
    delimiter: u8,
    bom: bool,
    fill: impl Fn(&str, &mut String) -> Option<(&'static str, &'static str)>,
) -> PathBuf {
    let src = env.report_dir(1).join("unmatched_payments.csv");
    let mut reader = csv::Reader::from_path(&src).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let (id, candidates, action, note) = (
        col("payment_id"),
        col("candidates"),
        col("action"),
        col("note"),
    );
    let dest = env.reports.join(name);
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    {
        // The report's own line ends (CRLF) with a comma; a spreadsheet's LF otherwise.
        let terminator = if delimiter == b',' {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        };
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(terminator)
            .from_writer(&mut out);
        w.write_record(&header).unwrap();
        for r in reader.records() {
            let mut r: Vec<String> = r.unwrap().iter().map(str::to_owned).collect();
            let mut c = r[candidates].clone();
            if let Some((a, n)) = fill(&r[id], &mut c) {
                r[action] = a.into();
                r[note] = n.into();
            }
            r[candidates] = c;
            w.write_record(&r).unwrap();
        }
    }
    std::fs::write(&dest, out).unwrap();
    dest
}

fn line_of(file: &Path, id: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().position(|l| l.contains(id)).unwrap() + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_one_bad_row_applies_nothing_and_names_every_error_by_line() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    let (waiting, _) = reported(&env, 1, "payment", "awaiting_transfer")[0].clone();
    let (mismatched, _) = reported(&env, 1, "payment", "amount_mismatch")[0].clone();
    let keep = credits[0].clone();
    let file = hand_back(&env, "bad.csv", b',', false, |id, candidates| {
        if id == payment {
            *candidates = keep.clone();
            Some(("approve", "first transfer"))
        } else if id == waiting {
            Some(("dismiss", "test payment"))
        } else if id == mismatched {
            Some(("approve", ""))
        } else {
            None
        }
    });
    let calls = env.sandbox.reconcile_calls().len();
    let out = env
        .run(&["apply", file.to_str().unwrap(), "--by", "ana"])
        .await;
    assert_eq!(code(&out), 2, "{}", text(&out));
    let said = format!("line {}: ", line_of(&file, &mismatched));
    assert!(text(&out).contains(&said), "{said:?} in {}", text(&out));
    assert!(text(&out).contains("amounts differ"), "{}", text(&out));
    assert!(text(&out).contains("nothing was applied"), "{}", text(&out));
    assert_eq!(env.sandbox.reconcile_calls().len(), calls);
    let decided: i64 = scalar(&env.store(), "SELECT COUNT(*) FROM decisions");
    assert_eq!(decided, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_applied_twice_does_nothing_the_second_time_whatever_its_delimiter_and_bom() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let (payment, credits) = paid_twice(&env);
    let (waiting, _) = reported(&env, 1, "payment", "awaiting_transfer")[0].clone();
    let keep = credits[0].clone();
    let file = hand_back(&env, "good.csv", b';', true, |id, candidates| {
        if id == payment {
            *candidates = keep.clone();
            Some(("approve", "first transfer"))
        } else if id == waiting {
            Some(("dismiss", "test payment"))
        } else {
            None
        }
    });
    let path = file.to_str().unwrap();

    let out = env.run(&["apply", path, "--by", "ana", "--dry-run"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("would approve"), "{}", text(&out));
    assert!(calls_for(&env, &payment).is_empty());

    let out = env.run(&["apply", path, "--by", "ana"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(calls_for(&env, &payment), [credits[0].clone()]);
    assert!(stdout(&out).contains("reconciled"), "{}", text(&out));
    let store = env.store();
    let decided: i64 = scalar(&store, "SELECT COUNT(*) FROM decisions");
    assert_eq!(decided, 2);
    let source: String = scalar(
        &store,
        "SELECT source FROM decisions WHERE action = 'dismiss'",
    );
    assert_eq!(
        source,
        format!("apply good.csv:{}", line_of(&file, &waiting))
    );

    let out = env.run(&["apply", path, "--by", "ana"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", text(&out));
    assert_eq!(calls_for(&env, &payment), [credits[0].clone()]);
    let decided: i64 = scalar(&store, "SELECT COUNT(*) FROM decisions");
    assert_eq!(decided, 2, "the second apply recorded nothing");

    job(&env).await;
    let run: i64 = scalar(&store, "SELECT MAX(id) FROM runs");
    let reported_now = crate::helpers::findings(&store, run, "payment");
    assert!(!reported_now.contains_key(&waiting));
    assert!(!reported_now.contains_key(&payment));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_with_an_unquoted_comma_in_its_note_is_refused_and_nothing_is_applied() {
    let env = TestEnv::start(small()).await;
    job(&env).await;
    let awaiting = reported(&env, 1, "payment", "awaiting_transfer");
    let (first, second) = (awaiting[0].0.clone(), awaiting[1].0.clone());
    let file = hand_back(&env, "fee.csv", b',', false, |id, _| {
        if id == first {
            Some(("dismiss", "test payment"))
        } else if id == second {
            Some(("dismiss", "bank fee"))
        } else {
            None
        }
    });
    // The note as typed in a text editor: its comma unquoted, one field too many.
    let typed = std::fs::read_to_string(&file)
        .unwrap()
        .replace(",dismiss,bank fee\r\n", ",dismiss,bank fee, November\r\n");
    std::fs::write(&file, typed).unwrap();
    let fields = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split(',')
        .count();

    let out = env
        .run(&["apply", file.to_str().unwrap(), "--by", "ana"])
        .await;
    assert_eq!(code(&out), 2, "{}", text(&out));
    let said = format!(
        "line {}: {} fields where the header has {fields}",
        line_of(&file, &second),
        fields + 1
    );
    assert!(text(&out).contains(&said), "{said:?} in {}", text(&out));
    assert!(text(&out).contains("nothing was applied"), "{}", text(&out));
    let decided: i64 = scalar(&env.store(), "SELECT COUNT(*) FROM decisions");
    assert_eq!(decided, 0, "not even the valid row is recorded");
}
