//! The sandbox over real HTTP: the §13 contract, its faults, and its ground truth.

mod helpers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cp_recon::sandbox::hook::Rules;
use cp_recon::sandbox::{
    BrokenPage, DataSpec, Faults, ListName, OfframpRecord, PaymentRecord, SandboxArgs,
    SandboxConfig, TransactionRecord, serve_until,
};
use helpers::*;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn time_of(v: &Value, field: &str) -> DateTime<Utc> {
    v[field]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

// ---- authentication -----------------------------------------------------------------

#[tokio::test]
async fn authenticating_with_the_right_credentials_gives_a_token_and_its_lifetime() {
    let sb = spawn(config(42)).await;
    let (status, v) = authenticate(
        &reqwest::Client::new(),
        &sb.base_url(),
        "sandbox-key",
        "sandbox-secret",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    let token = v["data"]["token"].as_str().expect("token");
    assert_eq!(token.len(), 30);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(v["data"]["expires_in"].as_u64(), Some(86_400));
}

#[tokio::test]
async fn wrong_credentials_answer_authorization_incorrect_with_http_200() {
    let sb = spawn(strict_config(42)).await;
    let (status, v) = authenticate(
        &reqwest::Client::new(),
        &sb.base_url(),
        "sandbox-key",
        "nope",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"status": "error", "error": "authorization_incorrect"})
    );
}

#[tokio::test]
async fn missing_credentials_answer_422_laravel_style() {
    let sb = spawn(config(42)).await;
    let r = reqwest::Client::new()
        .post(format!("{}/authenticate", sb.base_url()))
        .json(&json!({"api_key": "sandbox-key"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.expect("json");
    assert!(v["message"].is_string());
    assert!(v["errors"]["api_secret"][0].is_string());
}

#[tokio::test]
async fn a_call_without_a_token_or_with_an_unknown_token_is_refused() {
    let sb = spawn(strict_config(42)).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/payments", sb.base_url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(error_code(&v), Some("authorization_incorrect"));

    let mut api = Api::login(&sb).await;
    api.token = "x".repeat(30);
    let (status, v) = api.get("/banking/accounts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&v), Some("authorization_incorrect"));
}

#[tokio::test]
async fn a_token_stops_working_when_its_lifetime_is_over() {
    let sb = spawn(SandboxConfig {
        token_ttl_secs: 0,
        ..strict_config(42)
    })
    .await;
    let api = Api::login(&sb).await;
    let (_, v) = api.get("/payments").await;
    assert_eq!(error_code(&v), Some("authorization_incorrect"));
}

#[tokio::test]
async fn a_token_stops_working_after_its_maximum_uses_and_a_new_one_works() {
    let sb = spawn_with_faults(Faults {
        token_max_uses: Some(3),
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    for _ in 0..3 {
        let (_, v) = api.get("/banking/accounts").await;
        assert_eq!(v["status"], "ok");
    }
    let (status, v) = api.get("/banking/accounts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&v), Some("authorization_incorrect"));

    let fresh = Api::login(&sb).await;
    let (_, v) = fresh.get("/banking/accounts").await;
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn with_one_session_a_login_ends_every_token_issued_before_it() {
    let sb = spawn_with_faults(Faults {
        one_session: true,
        ..Faults::default()
    })
    .await;
    let first = Api::login(&sb).await;
    let (_, v) = first.get("/banking/accounts").await;
    assert_eq!(v["status"], "ok");

    let second = Api::login(&sb).await;

    let (status, v) = first.get("/banking/accounts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&v), Some("authorization_incorrect"));
    let (_, v) = second.get("/banking/accounts").await;
    assert_eq!(v["status"], "ok");
}

// ---- pagination ---------------------------------------------------------------------

#[tokio::test]
async fn payments_are_listed_oldest_first_with_pagination_numbers() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (_, first) = api.get("/payments?per_page=7").await;
    let total = sb.counts().payments as u64;
    assert_eq!(first["pagination"]["total"].as_u64(), Some(total));
    assert_eq!(first["pagination"]["per_page"].as_u64(), Some(7));
    assert_eq!(first["pagination"]["current_page"].as_u64(), Some(1));
    assert_eq!(
        first["pagination"]["last_page"].as_u64(),
        Some(total.div_ceil(7))
    );

    let all = api.all("/payments", 7).await;
    assert_eq!(all.len() as u64, total);
    let keys: Vec<(DateTime<Utc>, String)> = all
        .iter()
        .map(|p| (time_of(p, "created_at"), id(p)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "oldest first, ties by id");
    let unique: HashSet<_> = keys.iter().map(|k| &k.1).collect();
    assert_eq!(unique.len(), all.len());
}

#[tokio::test]
async fn the_default_page_size_is_50() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (_, v) = api.get("/payments").await;
    assert_eq!(v["pagination"]["per_page"].as_u64(), Some(50));
    assert_eq!(v["data"].as_array().map(Vec::len), Some(50));
}

#[tokio::test]
async fn a_page_past_the_last_page_is_empty() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (status, v) = api.get("/payments?page=999&per_page=100").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["pagination"]["current_page"].as_u64(), Some(999));
    assert_eq!(v["pagination"]["last_page"].as_u64(), Some(1));
}

#[tokio::test]
async fn an_empty_list_still_has_one_last_page() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (_, v) = api.get("/payments?status=no_such_status").await;
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["pagination"]["total"].as_u64(), Some(0));
    assert_eq!(v["pagination"]["last_page"].as_u64(), Some(1));
}

#[tokio::test]
async fn invalid_paging_and_time_parameters_answer_422_naming_the_field() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    for (query, field) in [
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=ten", "per_page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
    ] {
        for list in [
            "/payments",
            "/rampoffs",
            "/banking/accounts/ES9121000418450200051332/transactions",
        ] {
            let (status, v) = api.get(&format!("{list}?{query}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{list}?{query}");
            assert!(v["message"].is_string(), "{v}");
            assert!(v["errors"][field][0].is_string(), "{list}?{query}: {v}");
            assert!(v.get("status").is_none());
        }
    }
}

// ---- filters ------------------------------------------------------------------------

#[tokio::test]
async fn the_status_filter_returns_exactly_the_payments_of_that_status() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let all = api.all("/payments", 100).await;
    let pending = api.all("/payments?status=pending_bank", 5).await;
    let want: HashSet<String> = all
        .iter()
        .filter(|p| p["status"] == "pending_bank")
        .map(id)
        .collect();
    let got: HashSet<String> = pending.iter().map(id).collect();
    assert!(!got.is_empty());
    assert_eq!(got, want);
    assert_eq!(got.len(), pending.len());
}

#[tokio::test]
async fn from_is_inclusive_and_to_is_exclusive_on_created_at() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let all = api.all("/payments", 100).await;
    let pivot = &all[all.len() / 2];
    let at = pivot["created_at"].as_str().expect("created_at");
    let later = api.all(&format!("/payments?from={at}"), 100).await;
    let earlier = api.all(&format!("/payments?to={at}"), 100).await;
    assert_eq!(later[0]["id"], pivot["id"]);
    assert!(
        earlier
            .iter()
            .all(|p| time_of(p, "created_at") < time_of(pivot, "created_at"))
    );
    assert_eq!(later.len() + earlier.len(), all.len());

    // An offset other than Z means the same instant.
    let t = time_of(pivot, "created_at")
        .with_timezone(&chrono::FixedOffset::east_opt(7200).expect("offset"));
    let shifted = t
        .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
        .to_string()
        .replace('+', "%2B");
    let same = api.all(&format!("/payments?from={shifted}"), 100).await;
    assert_eq!(same.len(), later.len());
}

#[tokio::test]
async fn transactions_are_listed_per_account_and_filtered_on_booked_at() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let all = api.all_transactions().await;
    assert_eq!(all.len(), sb.counts().transactions);
    let iban = "DE89370400440532013000";
    let mine = api
        .all(&format!("/banking/accounts/{iban}/transactions"), 10)
        .await;
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|t| t["iban"] == iban));
    let pivot = &mine[mine.len() / 2];
    let at = pivot["booked_at"].as_str().expect("booked_at");
    let from = api
        .all(
            &format!("/banking/accounts/{iban}/transactions?from={at}"),
            10,
        )
        .await;
    assert_eq!(from[0]["id"], pivot["id"]);
    // Spaces and lower case in the IBAN are tolerated.
    let (status, _) = api
        .get("/banking/accounts/de89%203704%200044%200532%200130%2000/transactions")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn off_ramps_are_filtered_on_created_at() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let all = api.all("/rampoffs", 4).await;
    assert_eq!(all.len(), sb.counts().offramps);
    let pivot = &all[all.len() / 2];
    let at = pivot["created_at"].as_str().expect("created_at");
    let before = api.all(&format!("/rampoffs?to={at}"), 100).await;
    assert!(
        before
            .iter()
            .all(|o| time_of(o, "created_at") < time_of(pivot, "created_at"))
    );
    for o in &all {
        assert!(o["fiat_amount"].is_string());
        assert!(o["amount"].is_string());
        assert!(o["decimals"].is_u64());
    }
}

#[tokio::test]
async fn an_unknown_account_answers_404_account_not_found() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (status, v) = api
        .get("/banking/accounts/FR7630006000011234567890189/transactions")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v, json!({"status": "error", "error": "account_not_found"}));
}

#[tokio::test]
async fn bank_accounts_carry_decimal_string_balances() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (_, v) = api.get("/banking/accounts").await;
    let accounts = v["data"].as_array().expect("accounts");
    assert_eq!(accounts.len(), 3);
    for a in accounts {
        for f in ["iban", "bic", "holder_name", "currency"] {
            assert!(a[f].is_string(), "{f}");
        }
        let balance = a["balance"].as_str().expect("balance string");
        assert!(balance.parse::<Decimal>().is_ok());
    }
    assert!(accounts.iter().any(|a| a["currency"] == "USD"));
}

// ---- one payment --------------------------------------------------------------------

#[tokio::test]
async fn a_payment_is_read_by_id_in_the_documented_shape() {
    let sb = spawn(strict_config(42)).await;
    let api = Api::login(&sb).await;
    let all = api.all("/payments", 100).await;
    let sent = all
        .iter()
        .find(|p| p["status"] == "coins_sent")
        .expect("a coins_sent payment");
    let (status, v) = api.get(&format!("/payment/{}", id(sent))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    let p = &v["data"];
    assert_eq!(&v["data"], sent);
    assert_eq!(id(p).len(), 25);
    assert!(p["fiat_amount"].is_i64());
    assert!(p["user_id"].is_string());
    assert!(p["coin_amount"].is_number());
    assert!(p["txid"].is_string());
    assert!(p.get("holder").is_some());
    let created = p["created_at"].as_str().expect("created_at");
    assert_eq!(created.len(), "2026-06-26T10:30:00.000000Z".len());
    assert!(created.ends_with('Z'));

    let open = all
        .iter()
        .find(|p| p["status"] == "pending_bank")
        .expect("open");
    assert!(open.get("txid").is_none());
    assert!(open["concept"].is_u64());
}

#[tokio::test]
async fn an_unknown_payment_answers_payment_not_found() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (status, v) = api.get("/payment/NoSuchPaymentAAAAAAAAAAAA").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&v), Some("payment_not_found"));
}

// ---- reconcile ----------------------------------------------------------------------

#[tokio::test]
async fn reconcile_moves_the_payment_to_payment_received_and_ties_the_transaction() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (pid, tid) = sb.expected().confident[0].clone();
    let iban = sb.transaction(&tid).expect("tx").iban;
    let v = api.reconcile(&pid, &tid, &iban).await;
    assert_eq!(
        v,
        json!({"status": "ok", "data": {"payment_id": pid, "transaction_id": tid, "payment_status": "payment_received"}})
    );
    assert_eq!(sb.payment_status(&pid).as_deref(), Some("payment_received"));

    let (_, p) = api.get(&format!("/payment/{pid}")).await;
    assert_eq!(p["data"]["status"], "payment_received");
    assert!(time_of(&p["data"], "updated_at") > anchor() - chrono::Duration::days(1));
    let pending = api.all("/payments?status=pending_bank", 100).await;
    assert!(pending.iter().all(|p| p["id"] != pid.as_str()));
    let received = api.all("/payments?status=payment_received", 100).await;
    assert!(received.iter().any(|p| p["id"] == pid.as_str()));
    let txs = api
        .all(&format!("/banking/accounts/{iban}/transactions"), 100)
        .await;
    let t = txs
        .iter()
        .find(|t| t["id"] == tid.as_str())
        .expect("tx listed");
    assert_eq!(t["reconciled_payment_id"], pid.as_str());

    let calls = sb.reconcile_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].payment_id, pid);
    assert_eq!(calls[0].transaction_id, tid);
    assert_eq!(calls[0].iban, iban);
    assert_eq!(calls[0].answer, "ok");
}

#[tokio::test]
async fn reconciling_the_same_pair_twice_answers_payment_not_pending() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (pid, tid) = sb.expected().confident[1].clone();
    let iban = sb.transaction(&tid).expect("tx").iban;
    assert_eq!(api.reconcile(&pid, &tid, &iban).await["status"], "ok");
    let again = api.reconcile(&pid, &tid, &iban).await;
    assert_eq!(error_code(&again), Some("payment_not_pending"));
    let answers: Vec<String> = sb.reconcile_calls().into_iter().map(|c| c.answer).collect();
    assert_eq!(answers, ["ok", "payment_not_pending"]);
}

#[tokio::test]
async fn reconcile_answers_each_error_code_without_changing_anything() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let e = sb.expected().clone();
    let (pid, tid) = e.confident[0].clone();
    let iban = sb.transaction(&tid).expect("tx").iban;
    let other_iban = sb
        .accounts()
        .into_iter()
        .map(|a| a.iban)
        .find(|i| *i != iban)
        .expect("another account");
    let mismatch_p = e
        .payment_reasons
        .iter()
        .find(|(_, r)| *r == "amount_mismatch")
        .map(|(p, _)| p.clone())
        .expect("an amount_mismatch payment");
    let mismatch_t = e
        .transaction_reasons
        .iter()
        .find(|(t, r)| {
            *r == "amount_mismatch"
                && sb.transaction(t).is_some_and(|t| {
                    t.concept.contains(
                        &sb.payment(&mismatch_p)
                            .and_then(|p| p.concept)
                            .unwrap_or(0)
                            .to_string(),
                    )
                })
        })
        .map(|(t, _)| t.clone())
        .expect("its credit");
    let mismatch_iban = sb.transaction(&mismatch_t).expect("tx").iban;
    // A credit already reconciled remotely, offered for an open payment.
    let state = api.all_transactions().await;
    let taken = state
        .iter()
        .find(|t| !t["reconciled_payment_id"].is_null())
        .expect("a reconciled credit");

    let cases = [
        (
            "NoSuchPaymentAAAAAAAAAAAA",
            tid.as_str(),
            iban.as_str(),
            "payment_not_found",
        ),
        (
            pid.as_str(),
            "NoSuchTransaction",
            iban.as_str(),
            "transaction_not_found",
        ),
        (
            pid.as_str(),
            tid.as_str(),
            other_iban.as_str(),
            "transaction_not_found",
        ),
        (
            pid.as_str(),
            taken["id"].as_str().expect("id"),
            taken["iban"].as_str().expect("iban"),
            "transaction_already_reconciled",
        ),
        (
            mismatch_p.as_str(),
            mismatch_t.as_str(),
            mismatch_iban.as_str(),
            "amount_mismatch",
        ),
    ];
    for (p, t, i, code) in cases {
        let v = api.reconcile(p, t, i).await;
        assert_eq!(error_code(&v), Some(code), "{v}");
    }
    // A payment that is not pending.
    let received = api.all("/payments?status=coins_sent", 100).await;
    let v = api.reconcile(&id(&received[0]), &tid, &iban).await;
    assert_eq!(error_code(&v), Some("payment_not_pending"));

    assert_eq!(sb.payment_status(&pid).as_deref(), Some("pending_bank"));
    assert_eq!(
        sb.payment_status(&mismatch_p).as_deref(),
        Some("pending_bank")
    );
    assert!(
        sb.transaction(&tid)
            .expect("tx")
            .reconciled_payment_id
            .is_none()
    );
    let answers: Vec<String> = sb.reconcile_calls().into_iter().map(|c| c.answer).collect();
    assert_eq!(
        answers,
        [
            "payment_not_found",
            "transaction_not_found",
            "transaction_not_found",
            "transaction_already_reconciled",
            "amount_mismatch",
            "payment_not_pending"
        ]
    );
}

#[tokio::test]
async fn a_reconcile_without_its_fields_answers_422_and_is_recorded() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let (status, v) = api
        .post("/banking/reconcile", json!({"payment_id": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["errors"]["transaction_id"][0].is_string());
    assert!(v["errors"]["iban"][0].is_string());
    assert_eq!(sb.reconcile_calls()[0].answer, "unprocessable");
}

#[tokio::test]
async fn a_held_reconcile_has_applied_its_change_before_it_answers() {
    let sb = spawn_with_faults(Faults {
        hold_reconcile: true,
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    let (pid, tid) = sb.expected().confident[0].clone();
    let iban = sb.transaction(&tid).expect("tx").iban;
    let call = {
        let (pid, tid) = (pid.clone(), tid.clone());
        tokio::spawn(async move { api.reconcile(&pid, &tid, &iban).await })
    };
    sb.wait_for_held_reconcile().await;
    assert_eq!(sb.payment_status(&pid).as_deref(), Some("payment_received"));
    assert_eq!(
        sb.transaction(&tid)
            .expect("tx")
            .reconciled_payment_id
            .as_deref(),
        Some(pid.as_str())
    );
    assert!(!call.is_finished());
    sb.release_held();
    let v = call.await.expect("the call answers");
    assert_eq!(v["status"], "ok");
}

// ---- faults -------------------------------------------------------------------------

#[tokio::test]
async fn every_nth_request_answers_a_server_error_some_as_html() {
    let sb = spawn_with_faults(Faults {
        unavailable_every: Some(2),
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    let mut seen = Vec::new();
    for i in 1..=8 {
        let r = api.get_raw("/banking/accounts").await;
        let status = r.status();
        let html = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/html"));
        let body = r.text().await.expect("body");
        if i % 2 == 1 {
            assert_eq!(status, StatusCode::OK, "request {i}");
        } else {
            assert!(status.is_server_error(), "request {i}: {status}");
            if html {
                assert!(body.starts_with("<html>"));
            }
            seen.push((status.as_u16(), html));
        }
    }
    assert_eq!(seen, [(503, false), (502, true), (504, true), (503, true)]);
}

#[tokio::test]
async fn every_nth_request_is_rate_limited_with_retry_after() {
    let sb = spawn_with_faults(Faults {
        rate_limit_every: Some(3),
        retry_after_secs: 7,
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = api.get_raw("/payments").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(
                r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                Some("7")
            );
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
}

#[tokio::test]
async fn authenticate_is_never_faulted() {
    let sb = spawn_with_faults(Faults {
        unavailable_every: Some(1),
        ..Faults::default()
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let (status, v) =
            authenticate(&http, &sb.base_url(), "sandbox-key", "sandbox-secret").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["status"], "ok");
    }
}

#[tokio::test]
async fn slow_pages_take_at_least_the_configured_time() {
    let sb = spawn_with_faults(Faults {
        slow_ms: Some(300),
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    let started = Instant::now();
    let (status, _) = api.get("/rampoffs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn shifting_pages_make_later_pages_repeat_an_item() {
    let sb = spawn_with_faults(Faults {
        shifting_pages: true,
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    let before = sb.counts();
    let (_, p1) = api.get("/payments?page=1&per_page=10").await;
    let (_, p2) = api.get("/payments?page=2&per_page=10").await;
    assert_eq!(
        p1["data"][9]["id"], p2["data"][0]["id"],
        "the last item of page 1 repeats"
    );
    assert_eq!(sb.counts().payments, before.payments + 1);

    let iban = "ES9121000418450200051332";
    let path = format!("/banking/accounts/{iban}/transactions");
    let (_, t1) = api.get(&format!("{path}?page=1&per_page=5")).await;
    let (_, t2) = api.get(&format!("{path}?page=2&per_page=5")).await;
    assert_eq!(t1["data"][4]["id"], t2["data"][0]["id"]);
    // What the fault inserts is never open: it cannot change the expected outcome.
    let inserted = api.all(&path, 100).await;
    let new = inserted
        .iter()
        .find(|t| t["id"].as_str().is_some_and(|s| s.starts_with("00")))
        .expect("the inserted transaction");
    assert!(!new["reconciled_payment_id"].is_null());

    let (_, o1) = api.get("/rampoffs?page=1&per_page=3").await;
    let (_, o2) = api.get("/rampoffs?page=2&per_page=3").await;
    assert_eq!(o1["data"][2]["id"], o2["data"][0]["id"]);
}

#[tokio::test]
async fn a_clamped_page_size_is_what_the_answer_says_it_served() {
    let sb = spawn_with_faults(Faults {
        max_per_page: Some(3),
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    let (_, p) = api.get("/payments?page=1&per_page=100").await;
    let total = p["pagination"]["total"].as_u64().expect("total");
    assert_eq!(p["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(p["pagination"]["per_page"], 3);
    assert_eq!(
        p["pagination"]["last_page"].as_u64(),
        Some(total.div_ceil(3))
    );
    assert_eq!(api.all("/payments", 100).await.len() as u64, total);
}

#[tokio::test]
async fn a_removed_or_re_dated_booking_leaves_or_moves_in_its_accounts_list() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let iban = "DE89370400440532013000";
    let path = format!("/banking/accounts/{iban}/transactions");
    let before = api.all(&path, 100).await;
    let (first, last) = (id(&before[0]), id(&before[before.len() - 1]));
    let handle = sb.handle();

    // The last booking moves to before the first one.
    let earlier = time_of(&before[0], "booked_at") - chrono::Duration::seconds(1);
    assert!(handle.redate_transaction(&last, earlier));
    let moved = api.all(&path, 100).await;
    assert_eq!(id(&moved[0]), last);
    assert_eq!(time_of(&moved[0], "booked_at"), earlier);
    assert_eq!(moved.len(), before.len());

    assert!(handle.remove_transaction(&first));
    assert!(!handle.remove_transaction(&first), "removed once");
    let after = api.all(&path, 100).await;
    assert_eq!(after.len(), before.len() - 1);
    assert!(after.iter().all(|t| id(t) != first));
    assert!(sb.transaction(&first).is_none());
}

#[tokio::test]
async fn a_field_set_to_the_wrong_type_is_served_so_in_lists_and_reads_until_cleared() {
    let sb = spawn(strict_config(42)).await;
    let api = Api::login(&sb).await;
    let h = sb.handle();
    let now = anchor();
    let concept = sb.fresh_concept();
    let pid = "WrongTypePaymentAAAAAAAA";
    sb.add_payment(PaymentRecord::transfer(pid, concept, 2_500, now))
        .expect("added");
    let iban = "ES9121000418450200051332";
    sb.add_transaction(TransactionRecord::credit(
        "WrongTypeTx",
        iban,
        Decimal::new(2_500, 2),
        format!("Ref {concept}"),
        now,
    ))
    .expect("added");
    let listed = |v: &Value, id: &str| {
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} listed in {v}"))
    };
    let at = "from=2026-06-26T12:00:00Z&to=2026-06-26T12:00:00.000001Z";
    let txs = format!("/banking/accounts/{iban}/transactions?{at}");

    let object = json!({ "value": concept });
    assert!(h.set_wire_override(ListName::Payments, pid, "concept", object.clone()));
    assert!(h.set_wire_override(
        ListName::Transactions,
        "WrongTypeTx",
        "amount",
        json!(false)
    ));
    assert!(h.set_wire_override(
        ListName::Transactions,
        "WrongTypeTx",
        "reconciled_payment_id",
        json!([pid])
    ));
    assert!(!h.set_wire_override(ListName::Payments, "NoSuchPayment", "concept", json!(1)));
    let (_, v) = api.get(&format!("/payments?{at}")).await;
    assert_eq!(listed(&v, pid)["concept"], object);
    let (_, v) = api.get(&format!("/payment/{pid}")).await;
    assert_eq!(v["data"]["concept"], object, "the read by id too");
    let (_, v) = api.get(&txs).await;
    let t = listed(&v, "WrongTypeTx");
    assert_eq!(t["amount"], json!(false));
    assert_eq!(t["reconciled_payment_id"], json!([pid]));
    assert_eq!(
        t["concept"],
        format!("Ref {concept}"),
        "other fields as recorded"
    );
    assert_eq!(
        sb.payment(pid).and_then(|p| p.concept),
        Some(concept),
        "the record itself is unchanged"
    );

    // A change to the record keeps the override; clearing it serves the record again.
    assert!(sb.set_payment_status(pid, "started"));
    let (_, v) = api.get(&format!("/payment/{pid}")).await;
    assert_eq!(
        (v["data"]["status"].clone(), v["data"]["concept"].clone()),
        (json!("started"), object)
    );
    assert!(h.clear_wire_override(ListName::Payments, pid, "concept"));
    assert!(h.clear_wire_override(ListName::Transactions, "WrongTypeTx", "amount"));
    let (_, v) = api.get(&format!("/payment/{pid}")).await;
    assert_eq!(v["data"]["concept"], json!(concept));
    let (_, v) = api.get(&txs).await;
    let t = listed(&v, "WrongTypeTx");
    assert_eq!(t["amount"], "25.00");
    assert_eq!(
        t["reconciled_payment_id"],
        json!([pid]),
        "only what was cleared"
    );
}

#[tokio::test]
async fn a_hook_is_told_which_items_a_list_request_would_be_served() {
    let sb = spawn_with_faults(Faults {
        max_per_page: Some(4),
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    let iban = "DE89370400440532013000";
    let path = format!("/banking/accounts/{iban}/transactions");
    let (_, v) = api.get(&format!("{path}?page=2&per_page=10")).await;
    let served: Vec<String> = v["data"].as_array().expect("data").iter().map(id).collect();
    assert_eq!(served.len(), 4, "clamped");
    let event = cp_recon::sandbox::hook::Event::List {
        list: ListName::Transactions,
        iban: iban.to_owned(),
        from: None,
        to: None,
        page: 2,
        per_page: 10,
        status: None,
    };
    assert_eq!(sb.handle().would_serve(&event), served);
}

/// `[at, at + 1µs)` of one account's list: a narrow read, as a client re-reads a booking.
async fn read_instant(api: &Api, iban: &str, at: DateTime<Utc>) -> Vec<String> {
    let wire = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let to = at + chrono::Duration::microseconds(1);
    let path = format!(
        "/banking/accounts/{iban}/transactions?from={}&to={}",
        wire(at),
        wire(to)
    );
    api.all(&path, 100).await.iter().map(id).collect()
}

#[tokio::test]
async fn the_oracle_counts_a_twin_the_re_read_of_the_credits_instant_returned_and_forgives_a_later_one()
 {
    let sb = spawn(strict_config(42)).await;
    let api = Api::login(&sb).await;
    let h = sb.handle();
    let (iban, now) = ("ES9121000418450200051332", anchor());
    let at = now - chrono::Duration::hours(2);
    let concept = sb.fresh_concept();
    let credit = |id: &str, t: DateTime<Utc>| {
        TransactionRecord::credit(
            id,
            iban,
            Decimal::new(4_200, 2),
            format!("Ref {concept}"),
            t,
        )
    };
    sb.add_payment(PaymentRecord::transfer(
        "OraclePaymentAAAAAAAAAAA",
        concept,
        4_200,
        at,
    ))
    .expect("added");
    sb.add_transaction(credit("OracleTx", at)).expect("added");
    let judge = |since| {
        h.judge(
            "OraclePaymentAAAAAAAAAAA",
            "OracleTx",
            since,
            now,
            Rules::default(),
        )
    };
    let run = h.mark();
    assert_eq!(judge(run), Ok(()));

    // A twin booked during the run, before any re-read of the instant: forgiven.
    sb.add_transaction(credit("OracleTwinA", at))
        .expect("added");
    assert_eq!(judge(run), Ok(()));
    // The re-read of the instant returns it: no longer forgiven.
    assert_eq!(read_instant(&api, iban, at).await.len(), 2);
    let why = judge(run).expect_err("a twin the re-read returned");
    assert!(
        why.contains("OracleTwinA") && why.contains("re-read"),
        "{why}"
    );

    // A twin booked after that first re-read is forgiven, even if a later one saw it.
    let run = h.mark();
    assert_eq!(read_instant(&api, iban, at).await.len(), 2);
    assert!(
        h.remove_transaction("OracleTwinA"),
        "a removed twin competes with nothing"
    );
    sb.add_transaction(credit("OracleTwinB", at))
        .expect("added");
    assert_eq!(read_instant(&api, iban, at).await.len(), 2);
    assert_eq!(judge(run), Ok(()));

    // Anything there when the run started counts, wherever it is booked; a re-dated
    // record competes at its new instant.
    let run = h.mark();
    let why = judge(run).expect_err("a twin from before the run");
    assert!(
        why.contains("OracleTwinB") && why.contains("started"),
        "{why}"
    );
    assert!(h.redate_transaction("OracleTwinB", at - chrono::Duration::days(3)));
    assert_eq!(judge(run), Ok(()), "booked too early for the payment now");
}

#[tokio::test]
async fn a_broken_page_always_answers_malformed_json_with_http_200() {
    let sb = spawn_with_faults(Faults {
        broken_page: Some(BrokenPage {
            list: ListName::Payments,
            page: 2,
        }),
        ..Faults::default()
    })
    .await;
    let api = Api::login(&sb).await;
    for _ in 0..2 {
        let r = api.get_raw("/payments?page=2&per_page=10").await;
        assert_eq!(r.status(), StatusCode::OK);
        let text = r.text().await.expect("body");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
    let (status, v) = api.get("/payments?page=1&per_page=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    let (_, v) = api.get("/rampoffs?page=2&per_page=1").await;
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn faults_are_read_from_json_and_changed_at_runtime() {
    let faults: Faults = serde_json::from_str(
        r#"{"rate_limit_every":1,"retry_after_secs":2,"broken_page":{"list":"transactions","page":3}}"#,
    )
    .expect("valid faults");
    assert_eq!(faults.rate_limit_every, Some(1));
    assert_eq!(
        faults.broken_page,
        Some(BrokenPage {
            list: ListName::Transactions,
            page: 3
        })
    );
    assert!(serde_json::from_str::<Faults>(r#"{"no_such_fault":true}"#).is_err());

    let sb = spawn(strict_config(42)).await;
    let api = Api::login(&sb).await;
    assert_eq!(api.get_raw("/payments").await.status(), StatusCode::OK);
    sb.set_faults(faults);
    assert_eq!(
        api.get_raw("/payments").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    sb.set_faults(Faults::default());
    assert_eq!(api.get_raw("/payments").await.status(), StatusCode::OK);
}

// ---- quirks -------------------------------------------------------------------------

#[tokio::test]
async fn quirks_appear_when_enabled_and_never_when_disabled() {
    let quirky = spawn(config(42)).await;
    let api = Api::login(&quirky).await;
    let all = api.all("/payments", 100).await;
    let any = |f: &dyn Fn(&Value) -> bool| all.iter().any(f);
    assert!(any(&|p| p["fiat_amount"].is_string()));
    assert!(any(&|p| p["user_id"].is_u64()));
    assert!(any(&|p| p["concept"].is_string()));
    assert!(any(&|p| p["coin_amount"].is_string()));
    assert!(any(&|p| p.get("extra_field").is_some()));
    assert!(any(&|p| p["payment_type"] == "TRANSFER"));
    assert!(any(&|p| p["status"] == "payment_rejected"));
    let mut spellings = HashSet::new();
    for p in &all {
        let (_, v) = api.get(&format!("/payment/{}", id(p))).await;
        spellings.insert(v["status"].as_str().expect("status").to_owned());
    }
    assert_eq!(
        spellings,
        HashSet::from(["ok".to_owned(), "success".to_owned(), "sucess".to_owned()])
    );

    let strict = spawn(strict_config(42)).await;
    let api = Api::login(&strict).await;
    for p in api.all("/payments", 100).await {
        assert!(p["fiat_amount"].is_i64());
        assert!(p["user_id"].is_string());
        assert!(p["concept"].is_u64() || p["concept"].is_null());
        assert!(p["coin_amount"].is_number());
        assert!(p.get("extra_field").is_none());
        assert_eq!(
            p["payment_type"].as_str(),
            p["payment_type"].as_str().map(str::to_lowercase).as_deref()
        );
        let (_, v) = api.get(&format!("/payment/{}", id(&p))).await;
        assert_eq!(v["status"], "ok");
    }
}

#[tokio::test]
async fn quirky_error_codes_may_travel_in_message() {
    let sb = spawn(config(42)).await;
    let api = Api::login(&sb).await;
    let mut in_message = 0;
    for i in 0..30 {
        let (_, v) = api.get(&format!("/payment/Missing{i:018}")).await;
        assert_eq!(error_code(&v), Some("payment_not_found"));
        if v.get("error").is_none() {
            in_message += 1;
        }
    }
    assert!(in_message > 0 && in_message < 30);
}

// ---- ground truth -------------------------------------------------------------------

#[tokio::test]
async fn the_same_seed_serves_the_same_data() {
    let a = spawn(config(7)).await;
    let b = spawn(config(7)).await;
    let c = spawn(config(8)).await;
    let (api_a, api_b, api_c) = (
        Api::login(&a).await,
        Api::login(&b).await,
        Api::login(&c).await,
    );
    assert_eq!(
        api_a.all("/payments", 100).await,
        api_b.all("/payments", 100).await
    );
    assert_eq!(
        api_a.all("/rampoffs", 100).await,
        api_b.all("/rampoffs", 100).await
    );
    assert_eq!(
        api_a.all_transactions().await,
        api_b.all_transactions().await
    );
    assert_eq!(a.expected(), b.expected());
    assert_ne!(
        api_a.all("/payments", 100).await,
        api_c.all("/payments", 100).await
    );
}

#[tokio::test]
async fn expected_names_every_open_payment_and_open_credit_exactly_once() {
    for config in [
        config(42),
        SandboxConfig::new(DataSpec::scaled(3, anchor(), 2_500, 3_000, 300)),
    ] {
        let sb = spawn(config).await;
        let api = Api::login(&sb).await;
        let e = sb.expected();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (p, t) in &e.confident {
            *seen.entry(p.clone()).or_default() += 1;
            *seen.entry(t.clone()).or_default() += 1;
        }
        for k in e.payment_reasons.keys().chain(e.transaction_reasons.keys()) {
            *seen.entry(k.clone()).or_default() += 1;
        }
        assert!(seen.values().all(|n| *n == 1), "each id once");

        let open: HashSet<String> = api
            .all("/payments?status=pending_bank", 100)
            .await
            .iter()
            .map(id)
            .collect();
        let named: HashSet<String> = e
            .confident
            .iter()
            .map(|(p, _)| p.clone())
            .chain(e.payment_reasons.keys().cloned())
            .collect();
        assert_eq!(open, named);

        let txs = api.all_transactions().await;
        let by_id: BTreeMap<String, &Value> = txs.iter().map(|t| (id(t), t)).collect();
        let open_credits: HashSet<String> = txs
            .iter()
            .filter(|t| t["direction"] == "credit" && t["reconciled_payment_id"].is_null())
            .map(id)
            .collect();
        let named_credits: HashSet<String> = e
            .confident
            .iter()
            .map(|(_, t)| t.clone())
            .chain(
                e.transaction_reasons
                    .keys()
                    .filter(|t| by_id[*t]["direction"] == "credit")
                    .cloned(),
            )
            .collect();
        assert_eq!(open_credits, named_credits);
        for (t, reason) in &e.transaction_reasons {
            if by_id[t]["direction"] == "debit" {
                assert_eq!(reason, "unexplained_debit");
            }
        }
        let offramps: BTreeMap<String, Value> = api
            .all("/rampoffs", 100)
            .await
            .into_iter()
            .map(|o| (id(&o), o))
            .collect();
        for (o, reason) in &e.payout_reasons {
            assert_eq!(reason, "payout_not_seen");
            assert_eq!(offramps[o]["status"], "finished");
        }
        for reason in [
            "too_early",
            "ambiguous",
            "awaiting_transfer",
            "outside_lookback",
            "amount_mismatch",
            "currency_mismatch",
        ] {
            assert!(e.payment_reasons.values().any(|r| r == reason), "{reason}");
        }
        // Every injection payload sits in a reported credit or debit.
        for text in &e.injection_texts {
            assert!(
                e.transaction_reasons.keys().any(|t| {
                    by_id[t]["concept"] == text.as_str()
                        || by_id[t]["counterparty_name"] == text.as_str()
                }),
                "{text:?}"
            );
        }
    }
}

// ---- runtime changes and counting ---------------------------------------------------

#[tokio::test]
async fn records_added_at_runtime_appear_in_lists() {
    let sb = spawn(strict_config(42)).await;
    let api = Api::login(&sb).await;
    let before = sb.counts();
    let now = anchor();
    let concept = sb.fresh_concept();
    sb.add_payment(PaymentRecord::transfer(
        "NewPaymentAAAAAAAAAAAAAAA",
        concept,
        12_345,
        now,
    ))
    .expect("added");
    sb.add_transaction(TransactionRecord::credit(
        "NewTx",
        "ES91 2100 0418 4502 0005 1332",
        Decimal::new(12_345, 2),
        format!("Ref {concept}"),
        now,
    ))
    .expect("added");
    sb.add_offramp(OfframpRecord::new(
        "NewOfframpAAAAAAAAAAAAAAA",
        "finished",
        Decimal::new(5000, 2),
        now,
        now,
    ))
    .expect("added");
    assert!(
        sb.add_payment(PaymentRecord::transfer(
            "NewPaymentAAAAAAAAAAAAAAA",
            1,
            1,
            now
        ))
        .is_err()
    );
    assert!(
        sb.add_transaction(TransactionRecord::credit(
            "X",
            "XX00",
            Decimal::ONE,
            "",
            now
        ))
        .is_err()
    );
    let after = sb.counts();
    assert_eq!(after.payments, before.payments + 1);
    assert_eq!(after.transactions, before.transactions + 1);
    assert_eq!(after.offramps, before.offramps + 1);

    let pending = api.all("/payments?status=pending_bank", 100).await;
    let p = pending.last().expect("newest last");
    assert_eq!(p["id"], "NewPaymentAAAAAAAAAAAAAAA");
    assert_eq!(p["fiat_amount"].as_i64(), Some(12_345));
    let v = api
        .reconcile(
            "NewPaymentAAAAAAAAAAAAAAA",
            "NewTx",
            "ES9121000418450200051332",
        )
        .await;
    assert_eq!(v["status"], "ok");

    assert!(sb.set_payment_status("NewPaymentAAAAAAAAAAAAAAA", "coins_sent"));
    assert!(!sb.set_payment_status("Nope", "coins_sent"));
    let (_, v) = api.get("/payment/NewPaymentAAAAAAAAAAAAAAA").await;
    assert_eq!(v["data"]["status"], "coins_sent");
    let (_, v) = api.get("/rampoffs?from=2026-06-26T12:00:00Z").await;
    assert_eq!(v["data"][0]["id"], "NewOfframpAAAAAAAAAAAAAAA");
}

#[tokio::test]
async fn requests_are_counted_per_endpoint() {
    let sb = spawn(config(42)).await;
    assert_eq!(sb.request_count(), 0);
    let api = Api::login(&sb).await;
    api.get("/payments").await;
    api.get("/payments?page=2").await;
    api.get("/banking/accounts").await;
    assert_eq!(sb.request_count(), 4);
    let counts = sb.request_counts();
    assert_eq!(counts.get("POST /authenticate"), Some(&1));
    assert_eq!(counts.get("GET /payments"), Some(&2));
    assert_eq!(counts.get("GET /banking/accounts"), Some(&1));
    assert_eq!(counts.get("POST /banking/reconcile"), None);
}

#[tokio::test]
async fn the_cli_serves_until_shutdown() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }
    let cli = Cli::try_parse_from([
        "sandbox",
        "--port",
        "0",
        "--seed",
        "5",
        "--payments",
        "200",
        "--faults",
        r#"{"retry_after_secs":1}"#,
    ])
    .expect("valid arguments");
    let (line_tx, line_rx) = tokio::sync::oneshot::channel::<String>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_until(
        cli.args,
        async {
            let _ = stop_rx.await;
        },
        move |line| {
            let _ = line_tx.send(line.to_owned());
        },
    ));
    let line = line_rx.await.expect("announced");
    assert!(line.contains("api_key=sandbox-key"));
    let base = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("base_url="))
        .expect("a base URL")
        .to_owned();
    let http = reqwest::Client::new();
    let (_, v) = authenticate(&http, &base, "sandbox-key", "sandbox-secret").await;
    let token = v["data"]["token"].as_str().expect("token");
    let r: Value = http
        .get(format!("{base}/payments?per_page=1"))
        .header("auth", token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(r["pagination"]["total"].as_u64(), Some(200));
    stop_tx.send(()).expect("server waiting");
    server.await.expect("joined").expect("clean exit");

    let bad = Cli::try_parse_from(["sandbox", "--faults", "{nope"]).expect("parses");
    assert!(bad.args.config().is_err());
}

/// Correctness at scale only: how fast the sandbox serves is measured by the benches
/// (`BENCHMARKS.md`), never by a test's clock.
#[tokio::test]
async fn a_large_data_set_is_generated_and_paged_whole_without_a_duplicate() {
    let sb = spawn(SandboxConfig::new(DataSpec::scaled(
        1,
        anchor(),
        20_000,
        20_000,
        2_000,
    )))
    .await;
    let api = Api::login(&sb).await;
    let all = api.all("/payments", 100).await;
    assert_eq!(all.len(), 20_000);
    let ids: HashSet<&str> = all.iter().map(|p| p["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), all.len(), "a payment was served twice");
    let txs = api.all_transactions().await;
    assert!(txs.len() >= 20_000);
    let tx_ids: HashSet<&str> = txs.iter().map(|t| t["id"].as_str().expect("id")).collect();
    assert_eq!(tx_ids.len(), txs.len(), "a transaction was served twice");
    // The raw pages are the parsed ones: every page full, none empty.
    for page in 1..=200 {
        let r = api
            .get_raw(&format!("/payments?page={page}&per_page=100"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("json");
        assert_eq!(
            body["data"].as_array().map(Vec::len),
            Some(100),
            "page {page}"
        );
    }
}
