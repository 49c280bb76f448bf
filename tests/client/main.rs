//! The CryptoPocket API client over real HTTP: every endpoint against the sandbox, the
//! provider's quirks and transport faults, and shapes only a mock server produces.

mod helpers;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use cp_recon::api::{ApiError, Client, ClientConfig, ListQuery, ReconcileAnswer};
use cp_recon::domain::{BankTxId, Direction, Iban, OfframpStatus, PaymentId, PaymentStatus};
use cp_recon::sandbox::{BrokenPage, Faults, ListName, PaymentRecord, Sandbox, TransactionRecord};
use helpers::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn all() -> ListQuery {
    ListQuery::default()
}

fn iban(s: &str) -> Iban {
    Iban::parse(s).expect("a valid IBAN")
}

async fn account_ibans(client: &Client) -> Vec<Iban> {
    let (accounts, bad) = client.accounts().await.expect("accounts read");
    assert!(bad.is_empty(), "{bad:?}");
    accounts.into_iter().map(|r| r.value.iban).collect()
}

/// A pair the sandbox expects to be reconciled, with the IBAN of its transaction.
fn confident_pair(sb: &Sandbox) -> (PaymentId, BankTxId, Iban) {
    let (p, t) = sb
        .expected()
        .confident
        .first()
        .expect("a confident pair")
        .clone();
    let tx = sb.transaction(&t).expect("the transaction exists");
    (
        PaymentId::parse(p).expect("a payment id"),
        BankTxId::parse(t).expect("a transaction id"),
        iban(&tx.iban),
    )
}

// ---- every endpoint against the sandbox ---------------------------------------------

#[tokio::test]
async fn every_payment_is_read_once_with_its_amount_exact_to_the_cent_and_its_raw_json_kept() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);

    let list = read_payments(&client, &all(), 7)
        .await
        .expect("payments read");

    assert!(list.bad.is_empty(), "{:?}", list.bad);
    assert_eq!(list.items.len(), sb.counts().payments);
    assert!(list.pages > 1, "the list spans several pages");
    let unique: HashSet<String> = ids(&list.items).into_iter().collect();
    assert_eq!(unique.len(), list.items.len());
    for r in &list.items {
        let p = &r.value;
        let rec = sb
            .payment(p.id.as_str())
            .expect("a payment the sandbox holds");
        assert_eq!(
            p.amount.amount_str(),
            cents_text(rec.fiat_cents),
            "{}",
            p.id
        );
        assert_eq!(p.amount.currency().as_str(), rec.fiat_symbol);
        assert_eq!(p.status, PaymentStatus::parse(&rec.status));
        assert_eq!(p.user_id.as_deref(), Some(rec.user_id.as_str()));
        assert_eq!(
            p.concept.as_ref().map(|c| c.as_str().to_owned()),
            rec.concept.map(|c| c.to_string())
        );
        assert_eq!(p.payment_type.as_deref(), Some(rec.payment_type.as_str()));
        assert_eq!(
            p.created_at.timestamp_micros(),
            rec.created_at.timestamp_micros()
        );
        let raw = raw_json(r);
        assert_eq!(json_id(&raw, "id"), p.id.as_str());
        assert!(
            raw.get("fiat_amount").is_some(),
            "the raw item is whole: {raw}"
        );
    }
    // Oldest first, as the contract orders them.
    assert!(
        list.items
            .windows(2)
            .all(|w| w[0].value.created_at <= w[1].value.created_at)
    );
}

#[tokio::test]
async fn the_status_filter_reads_exactly_the_payments_in_that_status() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let everything = read_payments(&client, &all(), 100).await.expect("payments");

    for status in [
        PaymentStatus::PendingBank,
        PaymentStatus::PaymentReceived,
        PaymentStatus::CoinsSent,
        PaymentStatus::parse("payment_rejected"),
    ] {
        let q = ListQuery {
            status: Some(status.clone()),
            ..all()
        };
        let list = read_payments(&client, &q, 4).await.expect("filtered read");
        assert!(list.bad.is_empty());
        let got: BTreeSet<String> = ids(&list.items).into_iter().collect();
        let want: BTreeSet<String> = everything
            .items
            .iter()
            .filter(|r| {
                sb.payment(r.value.id.as_str())
                    .is_some_and(|rec| rec.status == status.as_str())
            })
            .map(|r| r.value.id.as_str().to_owned())
            .collect();
        assert!(!want.is_empty(), "the data set has {status} payments");
        assert_eq!(got, want, "status {status}");
        assert!(list.items.iter().all(|r| r.value.status == status));
    }
}

#[tokio::test]
async fn a_from_to_window_reads_the_payments_created_from_its_start_up_to_but_not_at_its_end() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let everything = read_payments(&client, &all(), 100).await.expect("payments");
    let times: Vec<_> = everything
        .items
        .iter()
        .map(|r| r.value.created_at)
        .collect();
    let (from, to) = (times[5], times[times.len() - 6]);
    assert!(from < to);

    let q = ListQuery {
        from: Some(from),
        to: Some(to),
        ..all()
    };
    let list = read_payments(&client, &q, 6).await.expect("window read");

    let got: BTreeSet<String> = ids(&list.items).into_iter().collect();
    let want: BTreeSet<String> = everything
        .items
        .iter()
        .filter(|r| r.value.created_at >= from && r.value.created_at < to)
        .map(|r| r.value.id.as_str().to_owned())
        .collect();
    assert_eq!(got, want);
    assert!(
        got.contains(everything.items[5].value.id.as_str()),
        "from is inclusive"
    );
    let at_end = &everything.items[times.len() - 6].value.id;
    assert!(!got.contains(at_end.as_str()), "to is exclusive");
    assert!(got.len() < everything.items.len());
}

#[tokio::test]
async fn every_offramp_is_read_with_its_fiat_amount_exact_and_its_raw_json_kept() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);

    let list = read_offramps(&client, &all(), 5)
        .await
        .expect("rampoffs read");

    assert!(list.bad.is_empty(), "{:?}", list.bad);
    assert_eq!(list.items.len(), sb.counts().offramps);
    for r in &list.items {
        let o = &r.value;
        let rec = sb
            .offramp(o.id.as_str())
            .expect("an off-ramp the sandbox holds");
        assert_eq!(o.fiat.amount_str(), units_text(rec.fiat_amount), "{}", o.id);
        assert_eq!(o.fiat.currency().as_str(), rec.fiat_symbol);
        assert_eq!(o.status, OfframpStatus::parse(&rec.status));
        assert_eq!(o.iban, rec.iban);
        assert_eq!(json_id(&raw_json(r), "id"), o.id.as_str());
    }
}

#[tokio::test]
async fn every_bank_account_is_read_with_its_exact_balance_and_its_raw_json_kept() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);

    let (accounts, bad) = client.accounts().await.expect("accounts read");

    assert!(bad.is_empty(), "{bad:?}");
    let records = sb.accounts();
    assert_eq!(accounts.len(), sb.counts().accounts);
    for (r, rec) in accounts.iter().zip(&records) {
        assert_eq!(r.value.iban, iban(&rec.iban));
        assert_eq!(r.value.balance, Some(rec.balance));
        assert_eq!(
            r.value.currency.as_ref().map(|c| c.as_str()),
            Some(rec.currency.as_str())
        );
        assert_eq!(raw_json(r)["iban"], json!(rec.iban));
    }
}

#[tokio::test]
async fn every_transaction_of_every_account_is_read_with_its_amount_exact() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let mut total = 0;

    for account in account_ibans(&client).await {
        let list = read_transactions(&client, &account, &all(), 6)
            .await
            .expect("transactions read");
        assert!(list.bad.is_empty(), "{:?}", list.bad);
        for r in &list.items {
            let t = &r.value;
            let rec = sb
                .transaction(t.id.as_str())
                .expect("a transaction it holds");
            assert_eq!(t.iban, account, "booked on the account it was listed under");
            assert_eq!(t.amount.amount_str(), units_text(rec.amount), "{}", t.id);
            assert_eq!(t.amount.currency().as_str(), rec.currency);
            assert_eq!(t.direction, rec.direction);
            assert_eq!(t.concept_text, rec.concept);
            assert_eq!(
                t.reconciled_payment_id.as_ref().map(|p| p.as_str()),
                rec.reconciled_payment_id.as_deref()
            );
            assert_eq!(t.value_date, rec.value_date);
            assert_eq!(json_id(&raw_json(r), "id"), t.id.as_str());
        }
        total += list.items.len();
    }
    assert_eq!(total, sb.counts().transactions);
}

#[tokio::test]
async fn the_counts_read_in_pages_of_one_hundred_equal_the_sandboxs_own_counts() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let counts = sb.counts();

    let payments = read_payments(&client, &all(), 100).await.expect("payments");
    let offramps = read_offramps(&client, &all(), 100).await.expect("rampoffs");
    let ibans = account_ibans(&client).await;
    let mut transactions = 0;
    for i in &ibans {
        transactions += read_transactions(&client, i, &all(), 100)
            .await
            .expect("transactions")
            .items
            .len();
    }

    assert_eq!(payments.items.len(), counts.payments);
    assert_eq!(offramps.items.len(), counts.offramps);
    assert_eq!(ibans.len(), counts.accounts);
    assert_eq!(transactions, counts.transactions);
}

#[tokio::test]
async fn a_known_payment_is_read_by_id_whatever_the_success_spelling() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let everything = read_payments(&client, &all(), 100).await.expect("payments");
    let mut spellings = BTreeSet::new();

    for listed in &everything.items {
        let id = &listed.value.id;
        let one = client
            .payment(id)
            .await
            .expect("payment read")
            .expect("the payment is known");
        assert_eq!(one.value, listed.value, "the same payment either way");
        assert_eq!(json_id(&raw_json(&one), "id"), id.as_str());
        let wire = raw_get(&sb, &format!("/payment/{id}")).await;
        spellings.insert(wire["status"].as_str().unwrap_or_default().to_owned());
    }

    let all_three: BTreeSet<String> = ["ok", "success", "sucess"].map(String::from).into();
    assert_eq!(spellings, all_three, "every spelling was seen and parsed");
}

#[tokio::test]
async fn an_unknown_payment_id_reads_as_none_wherever_the_code_is_written() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let mut in_message = 0;

    for n in 0..9 {
        let id = PaymentId::parse(format!("nosuchpayment{n}")).expect("an id");
        assert!(
            client.payment(&id).await.expect("answered").is_none(),
            "{id}"
        );
        let wire = raw_get(&sb, &format!("/payment/{id}")).await;
        if wire["message"] == "payment_not_found" {
            in_message += 1;
        }
    }
    assert!(in_message > 0, "some answers carried the code in `message`");
}

// ---- reconcile ----------------------------------------------------------------------

#[tokio::test]
async fn a_pending_pair_reconciles_and_a_second_call_for_it_is_refused_as_not_pending() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let (p, t, i) = confident_pair(&sb);

    let first = client.reconcile(&p, &t, &i).await.expect("answered");
    let second = client.reconcile(&p, &t, &i).await.expect("answered");

    assert_eq!(
        first,
        ReconcileAnswer::Reconciled {
            payment_status: PaymentStatus::PaymentReceived
        }
    );
    assert_eq!(
        second,
        ReconcileAnswer::Refused {
            code: "payment_not_pending".into()
        }
    );
    assert_eq!(
        sb.payment_status(p.as_str()).as_deref(),
        Some("payment_received")
    );
    let answers: Vec<String> = sb.reconcile_calls().into_iter().map(|c| c.answer).collect();
    assert_eq!(answers, ["ok", "payment_not_pending"]);
    let reread = client.payment(&p).await.expect("read").expect("known");
    assert_eq!(reread.value.status, PaymentStatus::PaymentReceived);
}

#[tokio::test]
async fn reconciling_an_unknown_payment_is_refused_as_payment_not_found() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let (_, t, i) = confident_pair(&sb);
    let unknown = PaymentId::parse("nosuchpayment").expect("an id");

    let answer = client.reconcile(&unknown, &t, &i).await.expect("answered");

    assert_eq!(
        answer,
        ReconcileAnswer::Refused {
            code: "payment_not_found".into()
        }
    );
    assert!(
        sb.transaction(t.as_str())
            .expect("tx")
            .reconciled_payment_id
            .is_none()
    );
}

#[tokio::test]
async fn reconciling_a_transaction_already_reconciled_is_refused() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let (p, t, i) = confident_pair(&sb);
    let cents = sb.payment(p.as_str()).expect("payment").fiat_cents;
    let first = client.reconcile(&p, &t, &i).await.expect("answered");
    assert!(matches!(first, ReconcileAnswer::Reconciled { .. }));
    // A second pending payment of the same amount, pointed at the same transaction.
    let other = PaymentRecord::transfer(
        "ZZSECONDPAYMENT000000001",
        sb.fresh_concept(),
        cents,
        anchor(),
    );
    sb.add_payment(other).expect("added");
    let other = PaymentId::parse("ZZSECONDPAYMENT000000001").expect("an id");

    let answer = client.reconcile(&other, &t, &i).await.expect("answered");

    assert_eq!(
        answer,
        ReconcileAnswer::Refused {
            code: "transaction_already_reconciled".into()
        }
    );
    assert_eq!(
        sb.payment_status(other.as_str()).as_deref(),
        Some("pending_bank")
    );
}

#[tokio::test]
async fn reconciling_a_transaction_of_another_amount_is_refused_as_amount_mismatch() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let account = sb.accounts()[0].iban.clone();
    let concept = sb.fresh_concept();
    sb.add_payment(PaymentRecord::transfer(
        "ZZMISMATCH00000000000001",
        concept,
        15_050,
        anchor(),
    ))
    .expect("payment added");
    sb.add_transaction(TransactionRecord::credit(
        "TXMISMATCH1",
        account.clone(),
        Decimal::new(15_051, 2),
        concept.to_string(),
        anchor(),
    ))
    .expect("transaction added");

    let answer = client
        .reconcile(
            &PaymentId::parse("ZZMISMATCH00000000000001").expect("id"),
            &BankTxId::parse("TXMISMATCH1").expect("id"),
            &iban(&account),
        )
        .await
        .expect("answered");

    assert_eq!(
        answer,
        ReconcileAnswer::Refused {
            code: "amount_mismatch".into()
        }
    );
    assert_eq!(
        sb.payment_status("ZZMISMATCH00000000000001").as_deref(),
        Some("pending_bank")
    );
}

// ---- the provider's quirks ----------------------------------------------------------

#[tokio::test]
async fn every_provider_quirk_is_parsed_without_a_single_bad_record() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let payments = read_payments(&client, &all(), 100).await.expect("payments");
    let mut transactions = Vec::new();
    for i in account_ibans(&client).await {
        let list = read_transactions(&client, &i, &all(), 100)
            .await
            .expect("txs");
        assert!(list.bad.is_empty(), "{:?}", list.bad);
        transactions.extend(list.items);
    }
    assert!(payments.bad.is_empty(), "{:?}", payments.bad);

    let raws: Vec<Value> = payments.items.iter().map(raw_json).collect();
    let seen = |what: &str, f: &dyn Fn(&Value) -> bool| {
        assert!(raws.iter().any(f), "no payment with {what} on the wire");
    };
    seen("cents as a string", &|v| v["fiat_amount"].is_string());
    seen("cents as a number", &|v| v["fiat_amount"].is_number());
    seen("user_id as an integer", &|v| v["user_id"].is_number());
    seen("concept as a string", &|v| v["concept"].is_string());
    seen("concept as an integer", &|v| v["concept"].is_number());
    seen("an unknown field", &|v| v.get("extra_field").is_some());
    seen("an upper-case payment type", &|v| {
        v["payment_type"]
            .as_str()
            .is_some_and(|s| s.chars().any(|c| c.is_ascii_uppercase()))
    });
    assert!(
        payments
            .items
            .iter()
            .any(|r| r.value.status == PaymentStatus::Other("payment_rejected".into())),
        "an unknown status is kept as an opaque string"
    );
    assert!(
        transactions
            .iter()
            .any(|r| raw_json(r).get("extra_field").is_some()),
        "a transaction with an unknown field"
    );
    // Every quirky item still carries the sandbox's exact values.
    for r in &payments.items {
        let rec = sb.payment(r.value.id.as_str()).expect("known");
        assert_eq!(r.value.amount.amount_str(), cents_text(rec.fiat_cents));
        assert_eq!(r.value.user_id.as_deref(), Some(rec.user_id.as_str()));
    }
}

// ---- transport faults (sandbox) -------------------------------------------------------

#[tokio::test]
async fn server_errors_and_html_pages_are_retried_and_the_whole_list_still_reads() {
    let sb = spawn_sandbox_with_faults(Faults {
        unavailable_every: Some(2),
        ..Faults::default()
    })
    .await;
    let client = client_for(&sb);

    let list = read_payments(&client, &all(), 5)
        .await
        .expect("payments read");

    assert_eq!(list.items.len(), sb.counts().payments);
    assert!(list.bad.is_empty());
    let faulted = hits(&sb, "GET /payments") - u64::from(list.pages);
    // 503 JSON, 502 HTML, 504 HTML and 503 HTML each came back at least once.
    assert!(faulted >= 4, "only {faulted} faults");
    assert_eq!(
        client
            .stats
            .retries
            .load(std::sync::atomic::Ordering::Relaxed),
        faulted
    );
    let offramps = read_offramps(&client, &all(), 3)
        .await
        .expect("rampoffs read");
    assert_eq!(offramps.items.len(), sb.counts().offramps);
}

#[tokio::test]
async fn a_429_with_retry_after_zero_is_retried_at_once_and_the_list_completes() {
    let sb = spawn_sandbox_with_faults(Faults {
        rate_limit_every: Some(2),
        retry_after_secs: 0,
        ..Faults::default()
    })
    .await;
    let client = client_for(&sb);
    let started = Instant::now();

    let list = read_payments(&client, &all(), 5)
        .await
        .expect("payments read");

    assert_eq!(list.items.len(), sb.counts().payments);
    let limited = hits(&sb, "GET /payments") - u64::from(list.pages);
    assert!(limited >= u64::from(list.pages) - 1, "{limited} 429s");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_429_with_retry_after_one_second_is_waited_out_before_the_retry() {
    let sb = spawn_sandbox_with_faults(Faults {
        rate_limit_every: Some(2),
        retry_after_secs: 1,
        ..Faults::default()
    })
    .await;
    let client = client_for(&sb);
    client.accounts().await.expect("first call passes");
    let started = Instant::now();

    let (accounts, _) = client
        .accounts()
        .await
        .expect("second call waits, then passes");

    let waited = started.elapsed();
    assert_eq!(accounts.len(), sb.counts().accounts);
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(hits(&sb, "GET /banking/accounts"), 3);
}

#[tokio::test]
async fn a_token_that_expires_mid_list_is_renewed_once_per_expiry_and_the_list_completes() {
    let sb = spawn_sandbox_with_faults(Faults {
        token_max_uses: Some(3),
        ..Faults::default()
    })
    .await;
    let client = client_for(&sb);

    let list = read_payments(&client, &all(), 5)
        .await
        .expect("payments read");

    assert_eq!(list.items.len(), sb.counts().payments);
    let pages = u64::from(list.pages);
    // Each token serves three pages; the fourth use is refused, then repeated once with
    // a fresh token.
    let tokens = pages.div_ceil(3);
    assert!(tokens >= 3, "the token expired several times");
    assert_eq!(hits(&sb, "POST /authenticate"), tokens);
    assert_eq!(hits(&sb, "GET /payments"), pages + tokens - 1);
}

#[tokio::test]
async fn pages_in_flight_together_share_one_login_per_token_expiry_and_the_list_completes() {
    // A token serves six calls, and each login ends the tokens before it: a client that
    // logged in once per refused request would end the token its other requests just got.
    const USES: u32 = 6;
    const PER_PAGE: u32 = 3;
    let sb = spawn_sandbox_with_faults(Faults {
        token_max_uses: Some(USES),
        one_session: true,
        ..Faults::default()
    })
    .await;
    let client = client_for(&sb);
    let first = client
        .payments_page(&all(), 1, PER_PAGE)
        .await
        .expect("page 1 read");
    let last = first.info.last_page;
    let mut read_ids = ids(&first.items);

    // Four pages at a time, all asked for in the same poll: they leave with the same
    // token, so when it runs out mid-batch several of them are refused together.
    let rest: Vec<u32> = (2..=last).collect();
    for batch in rest.chunks(4) {
        let page = |i: usize| {
            let n = batch.get(i).copied();
            let client = &client;
            async move {
                match n {
                    Some(n) => Some(client.payments_page(&all(), n, PER_PAGE).await),
                    None => None,
                }
            }
        };
        let (a, b, c, d) = tokio::join!(page(0), page(1), page(2), page(3));
        for read in [a, b, c, d].into_iter().flatten() {
            let read = read.unwrap_or_else(|e| panic!("a page of {batch:?}: {e}"));
            read_ids.extend(ids(&read.items));
        }
    }

    assert_eq!(read_ids.len(), sb.counts().payments);
    assert_eq!(
        read_ids.iter().collect::<HashSet<_>>().len(),
        read_ids.len()
    );
    let pages = u64::from(last);
    // Every token serves its six calls before the next login: one login per expiry.
    let tokens = pages.div_ceil(u64::from(USES));
    assert!(tokens >= 3, "the token expired several times");
    assert_eq!(sb.issued_tokens().len() as u64, tokens, "logins");
    assert_eq!(hits(&sb, "POST /authenticate"), tokens);
    // Some expiry met more than one request in flight (each was refused, then repeated).
    let refused = hits(&sb, "GET /payments") - pages;
    assert!(
        refused > tokens - 1,
        "{refused} refused for {tokens} tokens"
    );
}

#[tokio::test]
async fn answers_slower_than_the_timeout_are_retried_then_reported_unavailable() {
    let sb = spawn_sandbox_with_faults(Faults {
        slow_ms: Some(3_000),
        ..Faults::default()
    })
    .await;
    let client = client_with(ClientConfig {
        timeout: Duration::from_millis(400),
        max_attempts: 3,
        ..client_config(sb.base_url())
    });

    let err = within(10, client.payments_page(&all(), 1, 10))
        .await
        .expect_err("every attempt timed out");

    match &err {
        ApiError::Unavailable {
            endpoint,
            attempts,
            detail,
        } => {
            assert_eq!(endpoint, "/payments");
            assert_eq!(*attempts, 3);
            assert!(detail.contains("timed out"), "{detail}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(hits(&sb, "GET /payments"), 3);
    // Not a list page: not slowed, and the client is still usable.
    assert!(client.accounts().await.is_ok());
}

#[tokio::test]
async fn a_list_read_while_pages_shift_loses_nothing_and_repeats_nothing() {
    let sb = spawn_sandbox().await;
    let client = client_for(&sb);
    let account = account_ibans(&client).await.remove(0);
    let before_p = ids(&read_payments(&client, &all(), 5).await.expect("p").items);
    let before_o = ids(&read_offramps(&client, &all(), 3).await.expect("o").items);
    let before_t = ids(&read_transactions(&client, &account, &all(), 4)
        .await
        .expect("t")
        .items);
    sb.set_faults(Faults {
        shifting_pages: true,
        ..Faults::default()
    });

    let p = read_payments(&client, &all(), 5)
        .await
        .expect("payments read");
    let o = read_offramps(&client, &all(), 3)
        .await
        .expect("rampoffs read");
    let t = read_transactions(&client, &account, &all(), 4)
        .await
        .expect("transactions read");

    for (name, before, after, duplicates) in [
        ("payments", before_p, ids(&p.items), p.duplicates),
        ("rampoffs", before_o, ids(&o.items), o.duplicates),
        ("transactions", before_t, ids(&t.items), t.duplicates),
    ] {
        assert!(duplicates > 0, "{name}: the pages did shift");
        let read: HashSet<&String> = after.iter().collect();
        assert_eq!(read.len(), after.len(), "{name}: an item was kept twice");
        let lost: Vec<&String> = before.iter().filter(|id| !read.contains(id)).collect();
        assert!(lost.is_empty(), "{name}: lost {lost:?}");
    }
}

#[tokio::test]
async fn a_broken_page_fails_that_list_only_and_the_others_still_read() {
    let sb = spawn_sandbox_with_faults(Faults {
        broken_page: Some(BrokenPage {
            list: ListName::Payments,
            page: 2,
        }),
        ..Faults::default()
    })
    .await;
    let client = client_with(ClientConfig {
        max_attempts: 3,
        ..client_config(sb.base_url())
    });

    let err = read_payments(&client, &all(), 5)
        .await
        .expect_err("page 2 never parses");

    match &err {
        ApiError::Unavailable { endpoint, .. } | ApiError::Malformed { endpoint, .. } => {
            assert_eq!(endpoint, "/payments");
        }
        other => panic!("expected Unavailable or Malformed, got {other:?}"),
    }
    assert_eq!(
        hits(&sb, "GET /payments"),
        1 + 3,
        "page 1, then page 2 three times"
    );
    let offramps = read_offramps(&client, &all(), 5)
        .await
        .expect("rampoffs read");
    assert_eq!(offramps.items.len(), sb.counts().offramps);
    let mut transactions = 0;
    for i in account_ibans(&client).await {
        transactions += read_transactions(&client, &i, &all(), 5)
            .await
            .expect("transactions read")
            .items
            .len();
    }
    assert_eq!(transactions, sb.counts().transactions);
}

// ---- a reconcile whose answer is lost -----------------------------------------------

#[tokio::test]
async fn a_reconcile_held_past_the_timeout_is_outcome_unknown_sent_once_and_the_reread_tells() {
    let sb = spawn_sandbox_with_faults(Faults {
        hold_reconcile: true,
        ..Faults::default()
    })
    .await;
    let client = client_with(ClientConfig {
        timeout: Duration::from_millis(500),
        ..client_config(sb.base_url())
    });
    let (p, t, i) = confident_pair(&sb);

    let err = within(10, client.reconcile(&p, &t, &i))
        .await
        .expect_err("the answer never came");

    assert!(matches!(err, ApiError::OutcomeUnknown { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(sb.reconcile_calls().len(), 1, "never retried");
    assert_eq!(hits(&sb, "POST /banking/reconcile"), 1);
    // The change was applied although the answer was lost: only a re-read can tell.
    sb.release_held();
    let reread = client.payment(&p).await.expect("read").expect("known");
    assert_eq!(reread.value.status, PaymentStatus::PaymentReceived);
}

async fn reconcile_against(
    answer: ResponseTemplate,
) -> (MockServer, Result<ReconcileAnswer, ApiError>) {
    let server = mock_server_with_token("tok-1").await;
    Mock::given(method("POST"))
        .and(path("/api/banking/reconcile"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    let client = client_with(ClientConfig {
        timeout: Duration::from_millis(500),
        ..client_config(mock_base(&server))
    });
    let result = within(
        10,
        client.reconcile(
            &PaymentId::parse("P1").expect("id"),
            &BankTxId::parse("T1").expect("id"),
            &iban("ES9121000418450200051332"),
        ),
    )
    .await;
    (server, result)
}

#[tokio::test]
async fn a_reconcile_answered_by_a_server_error_or_garbage_is_outcome_unknown_and_sent_once() {
    let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    for (name, answer) in [
        (
            "503 JSON",
            ResponseTemplate::new(503).set_body_json(json!({"message": "Service Unavailable"})),
        ),
        (
            "502 HTML",
            ResponseTemplate::new(502).set_body_raw(html, "text/html"),
        ),
        ("504 empty", ResponseTemplate::new(504)),
        (
            "200 HTML",
            ResponseTemplate::new(200).set_body_raw(html, "text/html"),
        ),
        (
            "200 cut JSON",
            ResponseTemplate::new(200).set_body_raw(r#"{"status":"ok","da"#, "application/json"),
        ),
    ] {
        let (server, result) = reconcile_against(answer).await;
        match result {
            Err(ApiError::OutcomeUnknown { endpoint, .. }) => {
                assert_eq!(endpoint, "/banking/reconcile", "{name}");
            }
            other => panic!("{name}: expected OutcomeUnknown, got {other:?}"),
        }
        server.verify().await;
    }
}

#[tokio::test]
async fn a_reconcile_answer_gives_the_payments_new_status_and_one_that_does_not_say_means_received()
{
    for (name, body, expected) in [
        (
            "status given",
            json!({"status": "success", "data": {"payment_id": "P1", "payment_status": "coins_sent"}}),
            PaymentStatus::CoinsSent,
        ),
        (
            "unknown status kept",
            json!({"status": "ok", "data": {"payment_status": "settled_elsewhere"}}),
            PaymentStatus::Other("settled_elsewhere".into()),
        ),
        (
            "no status",
            json!({"status": "ok", "data": {"payment_id": "P1"}}),
            PaymentStatus::PaymentReceived,
        ),
        (
            "data not an object",
            json!({"status": "ok", "data": "done"}),
            PaymentStatus::PaymentReceived,
        ),
        (
            "no data",
            json!({"status": "ok"}),
            PaymentStatus::PaymentReceived,
        ),
    ] {
        let (server, result) =
            reconcile_against(ResponseTemplate::new(200).set_body_json(body)).await;
        assert_eq!(
            result.expect(name),
            ReconcileAnswer::Reconciled {
                payment_status: expected
            },
            "{name}"
        );
        let sent = server.received_requests().await.unwrap_or_default();
        let call = sent
            .iter()
            .find(|r| r.url.path() == "/api/banking/reconcile")
            .expect("the call was sent");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&call.body).expect("a JSON body"),
            json!({"payment_id": "P1", "transaction_id": "T1", "iban": "ES9121000418450200051332"}),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_reconcile_answer_slower_than_the_timeout_is_outcome_unknown_and_sent_once() {
    let slow = ResponseTemplate::new(200)
        .set_body_json(json!({"status": "ok", "data": {"payment_status": "payment_received"}}))
        .set_delay(Duration::from_secs(3));

    let (server, result) = reconcile_against(slow).await;

    assert!(
        matches!(result, Err(ApiError::OutcomeUnknown { .. })),
        "{result:?}"
    );
    server.verify().await;
}

// ---- authentication -------------------------------------------------------------------

#[tokio::test]
async fn wrong_credentials_are_an_auth_error_and_no_list_request_is_sent() {
    let sb = spawn_sandbox().await;
    let client = client_with(ClientConfig {
        api_secret: "not-the-secret".to_owned().into(),
        ..client_config(sb.base_url())
    });

    let err = client
        .payments_page(&all(), 1, 10)
        .await
        .expect_err("rejected");

    match &err {
        ApiError::Auth { endpoint, code } => {
            assert_eq!(endpoint, "/payments");
            assert_eq!(code, "authorization_incorrect");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(hits(&sb, "POST /authenticate"), 1, "not retried");
    assert_eq!(
        hits(&sb, "GET /payments"),
        0,
        "nothing sent without a token"
    );
}

#[tokio::test]
async fn a_redirect_of_the_authentication_is_not_followed_so_the_secret_goes_nowhere_else() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/authenticate"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "Location",
            format!("{}/collect?key=leaked#frag", elsewhere.uri()).as_str(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = client
        .payments_page(&all(), 1, 10)
        .await
        .expect_err("a redirect is an error");

    match &err {
        ApiError::Redirected {
            endpoint,
            status,
            location,
        } => {
            assert_eq!(endpoint, "/authenticate");
            assert_eq!(*status, 307);
            assert_eq!(location, &format!("{}/collect", elsewhere.uri()));
        }
        other => panic!("expected Redirected, got {other:?}"),
    }
    assert!(!err.is_transient(), "a configuration problem");
    let shown = err.to_string();
    assert!(shown.contains("check base_url"), "{shown}");
    assert!(!shown.contains("leaked"), "{shown}");
    server.verify().await;
    elsewhere.verify().await;
}

#[tokio::test]
async fn a_redirected_list_read_is_not_retried_and_names_where_it_pointed() {
    let server = mock_server_with_token("tok-1").await;
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .respond_with(ResponseTemplate::new(301).insert_header("Location", "/v2/payments"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/payments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page_body(vec![], 1, 10, 1, 0)))
        .expect(0)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = client
        .payments_page(&all(), 1, 10)
        .await
        .expect_err("a redirect is an error");

    assert!(
        matches!(&err, ApiError::Redirected { endpoint, status: 301, location }
            if endpoint == "/payments" && *location == format!("{}/v2/payments", server.uri())),
        "{err:?}"
    );
    server.verify().await;
}

#[tokio::test]
async fn a_reconcile_answered_by_a_redirect_is_sent_once_and_never_turned_into_a_read() {
    for status in [301, 302, 303, 307, 308] {
        let server = mock_server_with_token("tok-1").await;
        Mock::given(method("POST"))
            .and(path("/api/banking/reconcile"))
            .respond_with(
                ResponseTemplate::new(status).insert_header("Location", "/api/payment/P1"),
            )
            .expect(1)
            .mount(&server)
            .await;
        // Followed, the redirect would read the payment, whose success envelope would be
        // taken for the reconcile's answer.
        Mock::given(method("GET"))
            .and(path("/api/payment/P1"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"status": "ok", "data": payment_item("P1", json!(15050))}),
                ),
            )
            .expect(0)
            .mount(&server)
            .await;
        let client = mock_client(&server);

        let result = client
            .reconcile(
                &PaymentId::parse("P1").expect("id"),
                &BankTxId::parse("T1").expect("id"),
                &iban("ES9121000418450200051332"),
            )
            .await;

        match result {
            Err(ApiError::Redirected {
                endpoint,
                status: s,
                ..
            }) => {
                assert_eq!(endpoint, "/banking/reconcile", "{status}");
                assert_eq!(s, status);
            }
            other => panic!("{status}: expected Redirected, got {other:?}"),
        }
        server.verify().await;
    }
}

#[tokio::test]
async fn a_token_rejected_even_after_reauthentication_is_an_auth_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/authenticate"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"status": "ok", "data": {"token": "tok-1", "expires_in": 3600}}),
            ),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "error", "error": "authorization_incorrect"})),
        )
        .expect(2)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = client
        .payments_page(&all(), 1, 10)
        .await
        .expect_err("rejected");

    assert!(
        matches!(&err, ApiError::Auth { code, .. } if code == "authorization_incorrect"),
        "{err:?}"
    );
    server.verify().await;
}

#[tokio::test]
async fn a_token_without_expires_in_is_kept_and_reused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/authenticate"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "ok", "data": {"token": "tok-no-ttl"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .and(header("auth", "tok-no-ttl"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page_body(
            vec![payment_item("P1", json!(15050))],
            1,
            10,
            1,
            1,
        )))
        .expect(2)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    for _ in 0..2 {
        let page = client.payments_page(&all(), 1, 10).await.expect("read");
        assert_eq!(page.items[0].value.amount.amount_str(), "150.50");
    }
    server.verify().await;
}

// ---- shapes only a mock server produces -------------------------------------------------

#[tokio::test]
async fn an_html_page_with_http_200_on_a_list_is_retried_then_names_the_endpoint_with_a_snippet() {
    let server = mock_server_with_token("tok-1").await;
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "<html>\n<head><title>Scheduled Maintenance</title></head>\n<body>Back soon</body></html>",
            "text/html",
        ))
        .expect(5)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = client
        .payments_page(&all(), 1, 10)
        .await
        .expect_err("not JSON");

    assert!(
        matches!(&err, ApiError::Unavailable { endpoint, attempts: 5, .. } if endpoint == "/payments"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("/payments"), "{text}");
    assert!(text.contains("Scheduled Maintenance"), "{text}");
    server.verify().await;
}

#[tokio::test]
async fn a_laravel_422_is_rejected_with_its_field_and_not_retried() {
    let server = mock_server_with_token("tok-1").await;
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "The per page field must be an integer between 1 and 100.",
            "errors": {"per_page": ["The per page field must be an integer between 1 and 100."]},
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = client
        .payments_page(&all(), 1, 500)
        .await
        .expect_err("rejected");

    match &err {
        ApiError::Rejected {
            endpoint,
            status,
            message,
        } => {
            assert_eq!(endpoint, "/payments");
            assert_eq!(*status, 422);
            assert!(message.contains("per_page"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_transient());
    server.verify().await;
}

#[tokio::test]
async fn a_non_json_body_is_retried_then_reported_with_a_snippet() {
    let server = mock_server_with_token("tok-1").await;
    Mock::given(method("GET"))
        .and(path("/api/rampoffs"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "upstream connect error or disconnect/reset before headers",
            "text/plain",
        ))
        .expect(5)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = client
        .offramps_page(&all(), 1, 10)
        .await
        .expect_err("not JSON");

    assert!(matches!(err, ApiError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("upstream connect error"), "{err}");
    server.verify().await;
}

#[tokio::test]
async fn a_json_body_that_is_no_envelope_is_malformed_and_not_retried() {
    let server = mock_server_with_token("tok-1").await;
    Mock::given(method("GET"))
        .and(path("/api/rampoffs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [], "next": null})))
        .expect(1)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = client
        .offramps_page(&all(), 1, 10)
        .await
        .expect_err("no envelope");

    assert!(
        matches!(&err, ApiError::Malformed { endpoint, .. } if endpoint == "/rampoffs"),
        "{err:?}"
    );
    server.verify().await;
}

#[tokio::test]
async fn a_huge_page_of_long_concepts_is_parsed_whole() {
    let server = mock_server_with_token("tok-1").await;
    let account = "ES9121000418450200051332";
    let concept = |n: usize| format!("Ref {n} {}", "x".repeat(50_000));
    let items: Vec<Value> = (0..100)
        .map(|n| {
            json!({
                "id": format!("T{n}"), "iban": account, "amount": "150.50", "currency": "EUR",
                "direction": "credit", "concept": concept(n), "counterparty_name": null,
                "counterparty_iban": null, "booked_at": "2026-06-26T10:30:00.000000Z",
                "value_date": "2026-06-26", "reconciled_payment_id": null,
            })
        })
        .collect();
    Mock::given(method("GET"))
        .and(path(format!(
            "/api/banking/accounts/{account}/transactions"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(page_body(items, 1, 100, 1, 100)))
        .expect(1)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let list = read_transactions(&client, &iban(account), &all(), 100)
        .await
        .expect("read");

    assert!(list.bad.is_empty(), "{:?}", list.bad);
    assert_eq!(list.items.len(), 100);
    for (n, r) in list.items.iter().enumerate() {
        assert_eq!(r.value.concept_text, concept(n));
        assert_eq!(r.value.direction, Direction::Credit);
    }
    server.verify().await;
}

#[tokio::test]
async fn a_malformed_item_becomes_a_bad_record_naming_its_id_and_field_while_the_rest_parse() {
    let server = mock_server_with_token("tok-1").await;
    let items = vec![
        payment_item("P1", json!(15050)),
        payment_item("P2", json!("150.5")),
        payment_item("P3", json!("20000")),
    ];
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page_body(items, 1, 10, 1, 3)))
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let page = client
        .payments_page(&all(), 1, 10)
        .await
        .expect("the page reads");

    assert_eq!(ids(&page.items), ["P1", "P3"]);
    assert_eq!(page.items[1].value.amount.amount_str(), "200.00");
    assert_eq!(page.bad.len(), 1);
    let bad = &page.bad[0];
    assert_eq!(bad.id.as_deref(), Some("P2"));
    assert!(bad.error.contains("fiat_amount"), "{}", bad.error);
    assert_eq!(
        serde_json::from_str::<Value>(&bad.raw).expect("raw")["id"],
        "P2"
    );
    assert_eq!(
        page.info.item_count, 3,
        "the bad item still counts towards the page"
    );
}

#[tokio::test]
async fn a_transaction_amount_with_more_digits_than_a_decimal_holds_is_a_bad_record_not_rounded() {
    let server = mock_server_with_token("tok-1").await;
    let account = "ES9121000418450200051332";
    let item = |id: &str, amount: &str| {
        json!({
            "id": id, "iban": account, "amount": amount, "currency": "EUR",
            "direction": "credit", "concept": "Ref 120037", "counterparty_name": null,
            "counterparty_iban": null, "booked_at": "2026-06-26T10:30:00.000000Z",
            "value_date": "2026-06-26", "reconciled_payment_id": null,
        })
    };
    let items = vec![
        item("T1", "150.50"),
        item("T2", "150.5000000000000000000000000001"),
        item("T3", "150.50000000000000000000000000000"),
    ];
    Mock::given(method("GET"))
        .and(path(format!(
            "/api/banking/accounts/{account}/transactions"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(page_body(items, 1, 10, 1, 3)))
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let page = client
        .transactions_page(&iban(account), &all(), 1, 10)
        .await
        .expect("the page reads");

    assert_eq!(ids(&page.items), ["T1", "T3"]);
    for r in &page.items {
        assert_eq!(r.value.amount.amount_str(), "150.50", "{}", r.raw);
    }
    assert_eq!(page.bad.len(), 1, "{:?}", page.bad);
    let bad = &page.bad[0];
    assert_eq!(bad.id.as_deref(), Some("T2"));
    assert!(bad.error.contains("`amount`"), "{}", bad.error);
    assert!(
        bad.error.contains("150.5000000000000000000000000001"),
        "{}",
        bad.error
    );
}

/// Answers every page with two new items and claims there are always more.
struct EndlessPages;

impl Respond for EndlessPages {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let page: u32 = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        let items = vec![
            payment_item(&format!("P{page}a"), json!(100)),
            payment_item(&format!("P{page}b"), json!(200)),
        ];
        ResponseTemplate::new(200).set_body_json(page_body(items, page, 2, u32::MAX, 6))
    }
}

#[tokio::test]
async fn a_server_that_claims_more_pages_than_its_total_fills_is_refused_at_once() {
    let server = mock_server_with_token("tok-1").await;
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .respond_with(EndlessPages)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let err = within(10, read_payments(&client, &all(), 2))
        .await
        .expect_err("stopped");

    match &err {
        ApiError::Contradiction { why, .. } => {
            assert!(why.contains("last_page is 4294967295 but 6 items"), "{why}");
        }
        other => panic!("expected Contradiction, got {other:?}"),
    }
    let requests = server.received_requests().await.expect("recording");
    let pages_asked = requests
        .iter()
        .filter(|r| r.url.path() == "/api/payments")
        .count();
    assert_eq!(pages_asked, 1, "{pages_asked} page requests");
}

#[tokio::test]
async fn a_pagination_block_under_meta_is_understood() {
    let server = mock_server_with_token("tok-1").await;
    let meta_page = |n: u32, items: Vec<Value>| {
        json!({
            "status": "success",
            "data": items,
            "meta": {"current_page": n, "per_page": 2, "last_page": 2, "total": 3},
        })
    };
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(meta_page(
            1,
            vec![
                payment_item("P1", json!(100)),
                payment_item("P2", json!(200)),
            ],
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/payments"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(meta_page(2, vec![payment_item("P3", json!(300))])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = mock_client(&server);

    let list = read_payments(&client, &all(), 2).await.expect("read");

    assert_eq!(ids(&list.items), ["P1", "P2", "P3"]);
    assert_eq!(list.pages, 2);
    server.verify().await;
}

// ---- secrets ----------------------------------------------------------------------------

const TOKEN: &str = "tok-5ecret-7f3a9c";

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "{what} shows the api secret: {text}"
    );
    assert!(!text.contains(TOKEN), "{what} shows the token: {text}");
}

fn assert_error_keeps_secrets(what: &str, e: &ApiError) {
    assert_no_secret(what, &e.to_string());
    assert_no_secret(what, &format!("{e:?}"));
}

#[tokio::test]
async fn the_secret_and_the_token_never_appear_in_errors_or_in_the_clients_debug() {
    let server = mock_server_with_token(TOKEN).await;
    let html = "<html><body><h1>Oops</h1></body></html>";
    for (m, p, answer) in [
        (
            "GET",
            "/api/payments",
            ResponseTemplate::new(503).set_body_raw(html, "text/html"),
        ),
        (
            "GET",
            "/api/rampoffs",
            ResponseTemplate::new(422)
                .set_body_json(json!({"message": "invalid", "errors": {"from": ["bad date"]}})),
        ),
        (
            "GET",
            "/api/banking/accounts",
            ResponseTemplate::new(200).set_body_raw(html, "text/html"),
        ),
        ("POST", "/api/banking/reconcile", ResponseTemplate::new(503)),
        (
            "GET",
            "/api/payment/P1",
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "error", "error": "user_banned"})),
        ),
        (
            "GET",
            "/api/payment/P2",
            ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
        ),
    ] {
        Mock::given(method(m))
            .and(path(p))
            .respond_with(answer)
            .mount(&server)
            .await;
    }
    let client = client_with(ClientConfig {
        timeout: Duration::from_millis(500),
        max_attempts: 2,
        ..client_config(mock_base(&server))
    });

    let mut errors = vec![
        client.payments_page(&all(), 1, 10).await.expect_err("503"),
        client.offramps_page(&all(), 1, 10).await.expect_err("422"),
        client.accounts().await.expect_err("HTML"),
        client
            .reconcile(
                &PaymentId::parse("P1").expect("id"),
                &BankTxId::parse("T1").expect("id"),
                &iban("ES9121000418450200051332"),
            )
            .await
            .expect_err("503"),
        client
            .payment(&PaymentId::parse("P1").expect("id"))
            .await
            .expect_err("provider error"),
        within(10, client.payment(&PaymentId::parse("P2").expect("id")))
            .await
            .expect_err("timeout"),
    ];
    // Credentials rejected, and a token in a place the client does not know.
    for auth_answer in [
        json!({"status": "error", "error": "authorization_incorrect"}),
        json!({"status": "ok", "data": {"jwt": TOKEN}}),
    ] {
        let other = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/authenticate"))
            .respond_with(ResponseTemplate::new(200).set_body_json(auth_answer))
            .mount(&other)
            .await;
        let c = mock_client(&other);
        errors.push(c.payments_page(&all(), 1, 10).await.expect_err("no token"));
        assert_no_secret("a client's Debug", &format!("{c:?}"));
    }

    assert_eq!(errors.len(), 8);
    for e in &errors {
        assert_error_keeps_secrets("an error", e);
    }
    assert!(
        matches!(errors[6], ApiError::Auth { .. }),
        "{:?}",
        errors[6]
    );
    assert!(
        matches!(errors[7], ApiError::Malformed { .. }),
        "{:?}",
        errors[7]
    );
    assert_no_secret("the client's Debug", &format!("{client:?}"));
    assert_no_secret("the config's Debug", &format!("{:?}", client.config()));
}

/// What `/authenticate` answers may hold the secret (a debug error page echoing the
/// request) or the token (under a name the client does not know): no error may quote it.
#[tokio::test]
async fn an_authenticate_answer_echoing_the_secret_or_the_token_is_never_quoted_in_an_error() {
    let echo = json!({
        "message": "Server Error",
        "exception": "ErrorException",
        "request": {"api_key": KEY, "api_secret": SECRET},
    });
    let mut leaks = Vec::new();
    for (name, answer) in [
        (
            "500 debug page",
            ResponseTemplate::new(500).set_body_json(echo.clone()),
        ),
        (
            "422 naming the value",
            ResponseTemplate::new(422).set_body_json(json!({
                "message": "invalid",
                "errors": {"api_secret": [format!("The api secret {SECRET} is not valid.")]},
            })),
        ),
        (
            "200 HTML echo",
            ResponseTemplate::new(200)
                .set_body_raw(format!("<html>api_secret={SECRET}</html>"), "text/html"),
        ),
        (
            "error envelope echo",
            ResponseTemplate::new(200).set_body_json(json!({
                "status": "error", "error": "authorization_incorrect", "api_secret": SECRET,
            })),
        ),
        (
            "a token without a status",
            ResponseTemplate::new(200).set_body_json(json!({"data": {"token": TOKEN}})),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/authenticate"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let client = client_with(ClientConfig {
            max_attempts: 2,
            ..client_config(mock_base(&server))
        });

        let err = client.payments_page(&all(), 1, 10).await.expect_err(name);

        let text = format!("{err} / {err:?}");
        if text.contains(SECRET) || text.contains(TOKEN) {
            leaks.push(format!("{name}: {err}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "a credential is quoted:\n{}",
        leaks.join("\n")
    );
}

// ---- connections cut, deadline ------------------------------------------------------

#[tokio::test]
async fn a_read_whose_connection_is_cut_is_retried_then_reported_unavailable() {
    let server = spawn_resetting_server().await;
    let client = client_with(ClientConfig {
        max_attempts: 3,
        ..client_config(server.base_url.clone())
    });

    let err = within(10, client.payments_page(&all(), 1, 10))
        .await
        .expect_err("no answer ever");

    assert!(
        matches!(&err, ApiError::Unavailable { attempts: 3, endpoint, .. } if endpoint == "/payments"),
        "{err:?}"
    );
    assert_eq!(server.cut.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_reconcile_whose_connection_is_cut_is_outcome_unknown_and_sent_once() {
    let server = spawn_resetting_server().await;
    let client = client_with(client_config(server.base_url.clone()));

    let err = within(
        10,
        client.reconcile(
            &PaymentId::parse("P1").expect("id"),
            &BankTxId::parse("T1").expect("id"),
            &iban("ES9121000418450200051332"),
        ),
    )
    .await
    .expect_err("no answer ever");

    assert!(matches!(err, ApiError::OutcomeUnknown { .. }), "{err:?}");
    assert_eq!(server.cut.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_client_past_its_deadline_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_with(ClientConfig {
        deadline: Duration::ZERO,
        ..client_config(mock_base(&server))
    });

    let err = client
        .payments_page(&all(), 1, 10)
        .await
        .expect_err("too late");

    assert!(matches!(err, ApiError::Deadline { .. }), "{err:?}");
    server.verify().await;
}

// ---- the reconcile phase: calls stop when authentication is rejected ------------------

/// Answers every reconcile call with an authentication error and counts the calls per
/// payment id.
struct RejectAuth(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Respond for RejectAuth {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        if let Ok(mut calls) = self.0.lock() {
            calls.push(body);
        }
        ResponseTemplate::new(200)
            .set_body_json(json!({"status": "error", "error": "authorization_incorrect"}))
    }
}

/// Answers the re-reads of pair `i` of the test below (payment `P{i:05}`, transaction
/// `T{i:05}` booked `i` seconds after the anchor) with the records as they were matched.
struct PendingPair;

impl Respond for PendingPair {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        if let Some(id) = path.strip_prefix("/api/payment/") {
            let i: i64 = id.trim_start_matches('P').parse().unwrap_or(0);
            let mut item = payment_item(id, json!(1000 + i));
            item["concept"] = json!(200_000 + i);
            item["created_at"] = json!(cp_recon::api::wire_time(anchor()));
            return ResponseTemplate::new(200).set_body_json(json!({"status": "ok", "data": item}));
        }
        let from = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "from")
            .and_then(|(_, v)| chrono::DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let i = from.map_or(0, |t| (t - anchor()).num_seconds());
        let item = json!({
            "id": format!("T{i:05}"), "iban": "ES9121000418450200051332",
            "amount": format!("{}.{:02}", (1000 + i) / 100, (1000 + i) % 100),
            "currency": "EUR", "direction": "credit", "concept": format!("Ref {}", 200_000 + i),
            "counterparty_name": null, "counterparty_iban": null,
            "booked_at": from.map(cp_recon::api::wire_time), "value_date": null,
            "reconciled_payment_id": null,
        });
        ResponseTemplate::new(200).set_body_json(json!({
            "status": "ok", "data": [item],
            "pagination": {"current_page": 1, "per_page": 100, "last_page": 1, "total": 1},
        }))
    }
}

#[tokio::test]
async fn once_authentication_is_rejected_no_later_pair_is_called_and_committed_intents_are_settled_as_skipped()
 {
    use cp_recon::domain::{BankTransaction, Concept, Currency, Money, Payment};
    use cp_recon::store::{SharedStore, Store};

    let server = mock_server_with_token("tok-1").await;
    // Both re-reads before a call show the pair as it was matched.
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/api/payment/"))
        .respond_with(PendingPair)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            "^/api/banking/accounts/[^/]+/transactions$",
        ))
        .respond_with(PendingPair)
        .mount(&server)
        .await;
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/api/banking/reconcile"))
        .respond_with(RejectAuth(calls.clone()))
        .mount(&server)
        .await;
    let client = std::sync::Arc::new(mock_client(&server));

    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = Store::open(&dir.path().join("recon.sqlite3")).expect("the store opens");
    let run = store
        .begin_run(anchor(), false, "full")
        .expect("a run starts");
    let db = SharedStore::new(store);

    // Several batches' worth of pairs: the first batch's calls are rejected while the
    // second batch is being prepared.
    let eur = Currency::parse("EUR").expect("a currency");
    let account = iban("ES9121000418450200051332");
    let pairs: Vec<(Payment, BankTransaction)> = (0..1100)
        .map(|i| {
            let amount = Money::from_units(Decimal::new(1000 + i, 2), eur.clone());
            let payment = Payment {
                id: PaymentId::parse(format!("P{i:05}")).expect("an id"),
                external_id: None,
                user_id: None,
                status: PaymentStatus::PendingBank,
                amount: amount.clone(),
                payment_type: Some("transfer".into()),
                concept: Some(Concept::parse(format!("{}", 200_000 + i)).expect("a concept")),
                created_at: anchor(),
                updated_at: None,
            };
            let transaction = BankTransaction {
                id: BankTxId::parse(format!("T{i:05}")).expect("an id"),
                iban: account.clone(),
                amount,
                direction: Direction::Credit,
                concept_text: format!("Ref {}", 200_000 + i),
                counterparty_name: None,
                counterparty_iban: None,
                booked_at: anchor() + chrono::Duration::seconds(i),
                value_date: None,
                reconciled_payment_id: None,
            };
            (payment, transaction)
        })
        .collect();
    let batch = cp_recon::reconcile::batch_size(pairs.len()) as i64;
    assert!(batch < 1100 / 2, "at least three batches");
    let first_batch: HashSet<String> = (0..batch).map(|i| format!("P{i:05}")).collect();

    let out = cp_recon::reconcile::execute(
        &client,
        &db,
        run,
        pairs,
        false,
        4,
        cp_recon::matching::fate::Uniqueness::Matched(Default::default()),
    )
    .await
    .expect("the phase ends");

    assert!(out.reconciled.is_empty());
    assert_eq!(out.not_reconciled.len(), 1100, "every pair is reported");
    let called = calls.lock().expect("the call log").clone();
    assert!(!called.is_empty(), "the first batch was called");
    for body in &called {
        let id = body
            .split('"')
            .find(|s| s.starts_with('P') && s.len() == 6)
            .unwrap_or_default()
            .to_owned();
        assert!(first_batch.contains(&id), "a later pair was called: {body}");
    }
    let store = db.lock();
    let states: Vec<(String, i64)> = store
        .connection()
        .prepare("SELECT state, count(*) FROM matches GROUP BY state ORDER BY state")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("the ledger reads");
    assert_eq!(
        states,
        vec![("skipped".to_owned(), batch), ("unknown".to_owned(), batch)],
        "the first batch is unknown (re-read next run), the second was never called, later ones have no intent"
    );
}

/// Removes `remove` the first time page 2 of one instant of `iban` is asked for.
struct RemoveOnPageTwo {
    iban: String,
    remove: String,
    done: std::sync::Mutex<bool>,
}

impl cp_recon::sandbox::hook::Hook for RemoveOnPageTwo {
    fn on(
        &self,
        sandbox: &cp_recon::sandbox::hook::Handle,
        event: &cp_recon::sandbox::hook::Event,
    ) -> cp_recon::sandbox::hook::Action {
        if let cp_recon::sandbox::hook::Event::List {
            list: ListName::Transactions,
            iban,
            page: 2,
            ..
        } = event
            && *iban == self.iban
            && !std::mem::replace(&mut *self.done.lock().unwrap(), true)
        {
            assert!(sandbox.remove_transaction(&self.remove));
        }
        cp_recon::sandbox::hook::Action::Serve
    }
}

#[tokio::test]
async fn a_narrow_read_of_an_instant_beyond_a_page_misses_nothing_when_a_booking_is_removed() {
    // A date-only bank books 150 credits at one instant: the narrow read takes two
    // pages. Between them a booking of the first page is reversed, and every later item
    // moves one place forward: the first item of page 2 would never be read.
    let sb = spawn_sandbox().await;
    let iban = sb.accounts()[0].iban.clone();
    let at = anchor() + chrono::Duration::days(2);
    for i in 0..150 {
        sb.add_transaction(TransactionRecord::credit(
            format!("DAY{i:03}"),
            &iban,
            Decimal::new(1_000 + i, 2),
            "Transferencia",
            at,
        ))
        .expect("added");
    }
    sb.set_hook(Some(std::sync::Arc::new(RemoveOnPageTwo {
        iban: iban.clone(),
        remove: "DAY000".into(),
        done: std::sync::Mutex::new(false),
    })));
    let client = client_for(&sb);
    let (items, bad) = client
        .transactions_at(&Iban::parse(&iban).unwrap(), at)
        .await
        .expect("read");
    assert!(bad.is_empty());
    let got: HashSet<String> = items
        .iter()
        .map(|r| r.value.id.as_str().to_owned())
        .collect();
    for i in 1..150 {
        assert!(got.contains(&format!("DAY{i:03}")), "DAY{i:03} was missed");
    }
    assert!(
        !got.contains("DAY000"),
        "the reversed booking is not returned"
    );
}

#[tokio::test]
async fn a_narrow_read_of_an_instant_that_fits_one_page_is_one_request() {
    // One answer that ends the list is a snapshot: nothing to prove by reading again.
    let sb = spawn_sandbox().await;
    let iban = sb.accounts()[0].iban.clone();
    let at = anchor() + chrono::Duration::days(3);
    for i in 0..3 {
        sb.add_transaction(TransactionRecord::credit(
            format!("ONE{i:03}"),
            &iban,
            Decimal::new(1_000 + i, 2),
            "Transferencia",
            at,
        ))
        .expect("added");
    }
    let client = client_for(&sb);
    let iban = Iban::parse(&iban).unwrap();
    client.transactions_at(&iban, at).await.expect("warm-up");
    let before = sb.request_count();
    let (items, _) = client.transactions_at(&iban, at).await.expect("read");
    assert_eq!(items.len(), 3);
    assert_eq!(sb.request_count() - before, 1);
}

/// Resolves once `server` has received a request whose path ends with `suffix`.
async fn received(server: &MockServer, suffix: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = server.received_requests().await.unwrap_or_default();
        if got.iter().any(|r| r.url.path().ends_with(suffix)) {
            return;
        }
        assert!(Instant::now() < deadline, "no request to {suffix}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_stop_ends_a_read_s_retry_wait_at_once() {
    let server = mock_server_with_token("tok").await;
    // The provider asks to come back in half a minute.
    Mock::given(method("GET"))
        .and(path("/api/payment/P1"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "30"))
        .mount(&server)
        .await;
    let stop = cp_recon::stop::Stop::default();
    let client = std::sync::Arc::new(mock_client(&server).with_stop(stop.clone()));
    let read = tokio::spawn({
        let client = client.clone();
        async move { client.payment(&PaymentId::parse("P1").unwrap()).await }
    });
    received(&server, "/payment/P1").await;
    let asked = Instant::now();
    stop.request("SIGTERM received");
    let result = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the retry wait ends on the stop")
        .unwrap();
    assert!(
        matches!(result, Err(ApiError::Stopped { .. })),
        "{result:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_reconcile_call_the_provider_holds_is_abandoned_once_the_grace_after_a_stop_is_over() {
    let server = mock_server_with_token("tok").await;
    Mock::given(method("POST"))
        .and(path("/api/banking/reconcile"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "status": "ok", "data": { "status": "payment_received" } }))
                .set_delay(Duration::from_secs(120)),
        )
        .mount(&server)
        .await;
    let stop = cp_recon::stop::Stop::default();
    let mut config = client_config(mock_base(&server));
    config.timeout = Duration::from_secs(100);
    let client = std::sync::Arc::new(client_with(config).with_stop(stop.clone()));
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .reconcile(
                    &PaymentId::parse("P1").unwrap(),
                    &BankTxId::parse("T1").unwrap(),
                    &Iban::parse("ES9121000418450200051332").unwrap(),
                )
                .await
        }
    });
    received(&server, "/banking/reconcile").await;
    let asked = Instant::now();
    stop.request("SIGTERM received");
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call is abandoned after the grace")
        .unwrap();
    let took = asked.elapsed();
    assert!(
        matches!(result, Err(ApiError::Abandoned { .. })),
        "{result:?}"
    );
    // The call was given its grace, and no more than a margin beyond it.
    assert!(
        took >= cp_recon::stop::CALL_GRACE - Duration::from_millis(100)
            && took < cp_recon::stop::CALL_GRACE + Duration::from_secs(10),
        "{took:?}"
    );
}
