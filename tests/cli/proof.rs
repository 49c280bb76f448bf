//! A list read is complete only when the job can prove it holds every item that existed
//! throughout the read: a provider that removes, re-dates or clamps pages while the job
//! reads must never get a customer's second transfer missed, and so a pair reconciled
//! that has a rival.
//!
//! Each test books a paid-twice customer (two credits of the same amount naming the
//! same concept) and makes one of them disappear from a naive read, each time doing only
//! what the wire contract allows. The pair must never be called, and both credits must
//! be reported `ambiguous` once the job has read them.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use cp_recon::sandbox::hook::{Action, Event, Handle, Hook};
use cp_recon::sandbox::{Faults, ListName, PaymentRecord, SandboxConfig, TransactionRecord};
use rust_decimal::Decimal;

use crate::helpers::{TestEnv, code, findings, text};

const PAYMENT: &str = "PAIDTWICE000000000000001";
const CENTS: i64 = 73_917;

/// The paid-twice payment, created an hour ago, and its concept.
fn paid_twice_payment(env: &TestEnv) -> u64 {
    let concept = env.sandbox.fresh_concept();
    let created = Utc::now() - Duration::hours(1);
    env.sandbox
        .add_payment(PaymentRecord::transfer(PAYMENT, concept, CENTS, created))
        .expect("payment added");
    concept
}

fn credit(env: &TestEnv, id: &str, iban: &str, cents: i64, text: &str, at: DateTime<Utc>) {
    env.sandbox
        .add_transaction(TransactionRecord::credit(
            id,
            iban,
            Decimal::new(cents, 2),
            text,
            at,
        ))
        .expect("credit added");
}

/// Runs the job once and checks that the paid-twice payment was never called and that
/// it and both its credits are reported `ambiguous` by the last run.
async fn assert_never_called_and_reported_ambiguous(env: &TestEnv, twins: [&str; 2]) {
    assert_never_called_by(env, &["--run-now", "--full"], twins).await;
}

/// As [`assert_never_called_and_reported_ambiguous`], the first run with `args`.
async fn assert_never_called_by(env: &TestEnv, args: &[&str], twins: [&str; 2]) {
    let out = env.run(args).await;
    let calls: Vec<_> = env
        .sandbox
        .reconcile_calls()
        .into_iter()
        .filter(|c| c.payment_id == PAYMENT)
        .collect();
    assert!(
        calls.is_empty(),
        "the paid-twice payment was called: {calls:?}\n{}",
        text(&out)
    );
    // Whether this run proved its read or not, the next calm one does, and reports the
    // pair for a person.
    env.sandbox.set_hook(None);
    env.sandbox.set_faults(Faults::default());
    let out = env.run(&["--run-now", "--full"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        env.sandbox
            .reconcile_calls()
            .iter()
            .all(|c| c.payment_id != PAYMENT),
        "called on the calm run"
    );
    let store = env.store();
    let run: i64 = crate::helpers::scalar(&store, "SELECT MAX(id) FROM runs");
    let payments = findings(&store, run, "payment");
    assert_eq!(
        payments.get(PAYMENT).map(String::as_str),
        Some("ambiguous"),
        "{payments:?}"
    );
    let credits = findings(&store, run, "transaction");
    for t in twins {
        assert_eq!(
            credits.get(t).map(String::as_str),
            Some("ambiguous"),
            "{t}: {credits:?}"
        );
    }
}

/// Runs `act` once, at the first list request of transactions of `iban` that `when`
/// accepts.
struct Once<W, A> {
    iban: String,
    when: W,
    act: A,
    done: Mutex<bool>,
}

impl<W, A> Hook for Once<W, A>
where
    W: Fn(Option<DateTime<Utc>>, Option<DateTime<Utc>>, u64) -> bool + Send + Sync,
    A: Fn(&Handle) + Send + Sync,
{
    fn on(&self, sandbox: &Handle, event: &Event) -> Action {
        if let Event::List {
            list: ListName::Transactions,
            iban,
            from,
            to,
            page,
            ..
        } = event
            && *iban == self.iban
            && (self.when)(*from, *to, *page)
        {
            let mut done = self.done.lock().unwrap();
            if !*done {
                *done = true;
                (self.act)(sandbox);
            }
        }
        Action::Serve
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_inside_a_day_booked_at_one_instant_never_hides_a_second_transfer() {
    // A bank that books by date puts the day's credits at midnight: more than a page of
    // them share one instant, which a `from`/`to` window cannot split, so the reader
    // pages inside it by number. One booking already read is removed while it does: the
    // rest shift one place, and the first credit of the next page would never be seen.
    let env = TestEnv::start(SandboxConfig::default()).await;
    let iban = env.sandbox.accounts()[0].iban.clone();
    let concept = paid_twice_payment(&env);
    let midnight = (Utc::now() + Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    // page_size is 20: ids order the day, so DAY020 opens the instant's second page.
    for i in 0..45 {
        let id = format!("DAY{i:03}");
        if i == 20 {
            credit(
                &env,
                &id,
                &iban,
                CENTS,
                &format!("Pedido {concept}"),
                midnight,
            );
        } else {
            credit(&env, &id, &iban, 1_000 + i, "Transferencia", midnight);
        }
    }
    // The other transfer, booked an hour before, is read on its own.
    let first = "EARLIER0000000000000001";
    credit(
        &env,
        first,
        &iban,
        CENTS,
        &format!("Ref {concept}"),
        midnight - Duration::hours(1),
    );
    env.sandbox.set_hook(Some(std::sync::Arc::new(Once {
        iban: iban.clone(),
        when: move |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>, page| {
            from == Some(midnight) && to == Some(midnight + Duration::microseconds(1)) && page == 2
        },
        act: |h: &Handle| {
            assert!(h.remove_transaction("DAY000"));
        },
        done: Mutex::new(false),
    })));
    assert_never_called_and_reported_ambiguous(&env, [first, "DAY020"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_re_dated_behind_the_reader_with_one_removal_never_hides_a_second_transfer() {
    // Ordinary timestamps: once the reader is past the first transfer, a back-office
    // correction moves the second one (not read yet) behind it, and a booking already
    // read is removed. The provider's count of the window is what the reader received.
    let env = TestEnv::start(SandboxConfig::default()).await;
    let iban = env.sandbox.accounts()[0].iban.clone();
    let concept = paid_twice_payment(&env);
    let base = Utc::now() + Duration::days(1);
    let first = "TWINFIRST00000000000001";
    let second = "TWINSECOND0000000000001";
    credit(
        &env,
        "FILLER0000000000000000",
        &iban,
        1_000,
        "Alquiler",
        base,
    );
    credit(
        &env,
        first,
        &iban,
        CENTS,
        &format!("Pedido {concept}"),
        base + Duration::minutes(1),
    );
    for i in 1..60 {
        let at = base + Duration::minutes(1 + i);
        let id = format!("FILLER{i:016}");
        credit(&env, &id, &iban, 1_000 + i, "Nómina", at);
    }
    credit(
        &env,
        second,
        &iban,
        CENTS,
        &format!("Ref {concept}"),
        base + Duration::minutes(90),
    );
    let past_first = base + Duration::minutes(1);
    env.sandbox.set_hook(Some(std::sync::Arc::new(Once {
        iban: iban.clone(),
        when: move |from: Option<DateTime<Utc>>, _, _| from.is_some_and(|f| f > past_first),
        act: move |h: &Handle| {
            assert!(h.redate_transaction(second, past_first + Duration::seconds(1)));
            assert!(h.remove_transaction("FILLER0000000000000000"));
        },
        done: Mutex::new(false),
    })));
    assert_never_called_and_reported_ambiguous(&env, [first, second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_serves_fewer_items_per_page_than_asked_never_hides_a_second_transfer() {
    // The job asks for 20 a page; the provider serves 3 and says so in its answer
    // (`per_page: 3`, and a `last_page` and `total` to match). The provider holds only
    // this customer's records, the first transfer oldest, so the first page holds it.
    let env = TestEnv::start(SandboxConfig::default()).await;
    let iban = env.sandbox.accounts()[0].iban.clone();
    let handle = env.sandbox.handle();
    let (payments, txs) = handle.snapshot();
    for p in payments {
        assert!(handle.remove_payment(&p.id));
    }
    for t in txs {
        assert!(handle.remove_transaction(&t.id));
    }
    let concept = paid_twice_payment(&env);
    let (first, second) = ("CLAMPFIRST000000000001", "CLAMPSECOND00000000001");
    let text = format!("Pedido {concept}");
    let at = Utc::now() - Duration::minutes(30);
    credit(&env, first, &iban, CENTS, &text, at);
    for i in 1..5 {
        let id = format!("CLAMPFILLER{i:011}");
        credit(
            &env,
            &id,
            &iban,
            1_000 + i,
            "Nómina",
            at + Duration::minutes(i),
        );
    }
    credit(
        &env,
        second,
        &iban,
        CENTS,
        &text,
        at + Duration::minutes(10),
    );
    env.sandbox.set_faults(Faults {
        max_per_page: Some(3),
        ..Faults::default()
    });
    assert_never_called_and_reported_ambiguous(&env, [first, second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_back_dated_before_the_incremental_window_is_read_whatever_was_removed() {
    // After a complete run, the bank books a paid-twice customer's transfer back-dated
    // past the incremental overlap (72 h), and reverses an old booking of the same
    // account: the provider's count before the window is what the job has stored.
    let env = TestEnv::start(SandboxConfig::default()).await;
    let out = env.run(&["--run-now", "--full"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let iban = env.sandbox.accounts()[0].iban.clone();
    let concept = env.sandbox.fresh_concept();
    let created = Utc::now() - Duration::days(6);
    env.sandbox
        .add_payment(PaymentRecord::transfer(PAYMENT, concept, CENTS, created))
        .expect("payment added");
    let (recent, back_dated) = ("BACKRECENT000000000001", "BACKDATED0000000000001");
    let text = format!("Pedido {concept}");
    credit(
        &env,
        recent,
        &iban,
        CENTS,
        &text,
        Utc::now() - Duration::hours(1),
    );
    let at = Utc::now() - Duration::days(5);
    credit(&env, back_dated, &iban, CENTS, &text, at);
    let (_, txs) = env.sandbox.handle().snapshot();
    let old = txs
        .iter()
        .filter(|t| t.iban == iban && t.booked_at < at - Duration::days(1))
        .max_by_key(|t| t.booked_at)
        .expect("an old booking");
    assert!(env.sandbox.handle().remove_transaction(&old.id));
    assert_never_called_by(&env, &["--run-now"], [recent, back_dated]).await;
}

/// A provider that hides one booking from every read: whenever the reader's cursor is
/// past `mark`, it moves `hidden` from ahead of the cursor to just behind it (and, with
/// `remove`, reverses one booking already read, so that its count matches); whenever a
/// read starts over from the beginning, it moves `hidden` back ahead.
struct HideFromEveryRead {
    iban: String,
    hidden: String,
    mark: DateTime<Utc>,
    ahead: DateTime<Utc>,
    remove: Mutex<Vec<String>>,
}

impl Hook for HideFromEveryRead {
    fn on(&self, sandbox: &Handle, event: &Event) -> Action {
        let Event::List {
            list: ListName::Transactions,
            iban,
            from,
            to: None,
            ..
        } = event
        else {
            return Action::Serve;
        };
        if *iban != self.iban {
            return Action::Serve;
        }
        let at = sandbox.transaction(&self.hidden).map(|t| t.booked_at);
        match from {
            Some(f) if *f > self.mark => {
                if at.is_some_and(|t| t >= *f) {
                    sandbox.redate_transaction(&self.hidden, self.mark);
                    if let Some(r) = self.remove.lock().unwrap().pop() {
                        sandbox.remove_transaction(&r);
                    }
                }
            }
            _ => {
                if at.is_some_and(|t| t < self.ahead) {
                    sandbox.redate_transaction(&self.hidden, self.ahead);
                }
            }
        }
        Action::Serve
    }
}

/// A provider that re-dates the second transfer behind the reader in every read, with
/// (`removals`) or without a booking already read reversed each time.
async fn hidden_from_every_read(removals: bool) {
    let env = TestEnv::start(SandboxConfig::default()).await;
    // One slice per list, so that "behind the cursor" is behind the only cursor.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("page_size = 20\n", "page_size = 20\nconcurrency = 1\n"),
    )
    .unwrap();
    let iban = env.sandbox.accounts()[0].iban.clone();
    let concept = paid_twice_payment(&env);
    let base = Utc::now() + Duration::days(1);
    let (first, second) = ("EVERYFIRST000000000001", "EVERYSECOND00000000001");
    let text = format!("Pedido {concept}");
    credit(&env, first, &iban, CENTS, &text, base);
    let mut fillers = Vec::new();
    for i in 0..50 {
        let id = format!("EVERYFILLER{i:011}");
        credit(
            &env,
            &id,
            &iban,
            1_000 + i,
            "Nómina",
            base + Duration::minutes(2 * (i + 1)),
        );
        fillers.push(id);
    }
    let ahead = base + Duration::minutes(150);
    credit(&env, second, &iban, CENTS, &text, ahead);
    fillers.truncate(if removals { 10 } else { 0 });
    env.sandbox
        .set_hook(Some(std::sync::Arc::new(HideFromEveryRead {
            iban: iban.clone(),
            hidden: second.into(),
            mark: base + Duration::minutes(55),
            ahead,
            remove: Mutex::new(fillers),
        })));
    assert_never_called_and_reported_ambiguous(&env, [first, second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_hidden_from_every_read_leaves_the_list_unproven_when_counts_agree() {
    // Each read misses the second transfer and reverses a booking it read: the
    // provider's count always equals what the read received. Only the second read's
    // finding that an item of the first is gone tells.
    hidden_from_every_read(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_hidden_from_every_read_leaves_the_list_unproven_when_nothing_is_gone() {
    // Each read misses the second transfer and nothing is removed: every item of one
    // read is in the next. Only the provider's count between them tells.
    hidden_from_every_read(false).await;
}
