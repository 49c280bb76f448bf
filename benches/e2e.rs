//! End-to-end benchmark: the release binary against an in-process sandbox with the scale
//! data set, compared with the provider-bound limit.
//!
//! `cargo bench --bench e2e` (needs `curl`). Sizes: `CP_RECON_BENCH_PAYMENTS` (default
//! 100000; as many bank transactions, a tenth as many off-ramps, 2 accounts).
//!
//! Knobs, all optional: `CP_RECON_BENCH_CONCURRENCY` sets the runs' `concurrency`
//! (default 4); `CP_RECON_BENCH_BIN` runs another build of the binary (to compare two
//! builds on the same machine, alternately); `CP_RECON_BENCH_RUST_LOG` replaces the
//! runs' log filter (e.g. `info,cp_recon::sync=debug,cp_recon::reconcile=debug`);
//! `CP_RECON_BENCH_KEEP=1` keeps the runs' directory (database, `cold.log`,
//! `incremental.log`) and prints its path; `CP_RECON_BENCH_WORKBOOK` sets the runs'
//! `[reports] workbook` (`always` builds the workbook in every run, as a mailed report
//! does; by default the runs mail nothing and build none); `CP_RECON_BENCH_DATABASE_URL`
//! runs the job on that PostgreSQL database instead of an SQLite file (it must be empty:
//! drop and create it before each benchmark; the password, if any, in
//! `CP_RECON_DATABASE_PASSWORD`).
//!
//! Prints: the baseline (one keep-alive `curl` process fetching every page the run must
//! read and re-reading every confident payment, plus the reconcile POSTs costed at the
//! measured mean request time; after a warm-up pass, so that the sandbox serves it warm
//! as it serves the run, the median of three timed passes), the cold run's wall time and
//! its ratio to the baseline, the incremental run after adding 1 % new records and its
//! ratio to the cold run, each run's phases, and the peak RSS of each run.
//!
//! Peak RSS is the run's own `VmHWM`, which cp-recon logs with each phase. `wait4`'s
//! `ru_maxrss` would be wrong here: the child is spawned with vfork/posix_spawn, and
//! Linux folds the parent's high-water mark (this process, which holds the sandbox)
//! into the child's at exec.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use cp_recon::sandbox::{DataSpec, PaymentRecord, Sandbox, SandboxConfig, TransactionRecord};
use rust_decimal::Decimal;

struct Measured {
    wall: Duration,
    code: i32,
}

/// Runs a command and waits for it with `wait4`, which reports that child's own peak RSS.
fn run_measured(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is a child of this process that nothing else waits for.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    // (`usage.ru_maxrss` is not used: see the module comment.)
    assert_eq!(r, pid, "wait4 failed");
    let wall = start.elapsed();
    std::mem::forget(child);
    Measured {
        wall,
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
    }
}

fn write_config(dir: &Path, base_url: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let concurrency: u32 = std::env::var("CP_RECON_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let workbook = std::env::var("CP_RECON_BENCH_WORKBOOK")
        .map(|w| format!("workbook = \"{w}\"\n"))
        .unwrap_or_default();
    let database = match std::env::var("CP_RECON_BENCH_DATABASE_URL") {
        Ok(url) => format!("url = \"{url}\""),
        Err(_) => format!("path = \"{}\"", dir.join("recon.sqlite3").display()),
    };
    let text = format!(
        "[cryptopocket]\nbase_url = \"{base_url}\"\napi_key = \"sandbox-key\"\npage_size = 100\n\
         max_requests_per_second = 0\nconcurrency = {concurrency}\nbackoff_base_ms = 10\n\n\
         [database]\n{database}\n\n[reports]\ndir = \"{}\"\n{workbook}",
        dir.join("reports").display()
    );
    std::fs::write(&path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn cp_recon(config: &Path, log: &Path, args: &[&str]) -> Command {
    let bin = std::env::var_os("CP_RECON_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_cp-recon").into());
    let mut c = Command::new(bin);
    c.args(args)
        .arg("--config")
        .arg(config)
        .env("CP_RECON_API_SECRET", "sandbox-secret")
        .env("CP_RECON_LOG_FORMAT", "journal")
        .env(
            "RUST_LOG",
            std::env::var("CP_RECON_BENCH_RUST_LOG")
                .unwrap_or_else(|_| "warn,cp_recon::run=info".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    c
}

/// The largest `peak_rss_kb` the run logged (its own VmHWM), in MB.
fn peak_rss_mb(log: &Path) -> f64 {
    let text = std::fs::read_to_string(log).unwrap();
    let kb = text
        .lines()
        .filter_map(|l| l.split("peak_rss_kb=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .fold(0.0, f64::max);
    kb / 1024.0
}

/// The run's `phase done` lines, as `name=ms` pairs (where its time went).
fn phases(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .filter(|l| l.contains("phase done"))
        .filter_map(|l| {
            let name = l.split("phase=\"").nth(1)?.split('"').next()?;
            let ms = l.split(" ms=").nth(1)?.split_whitespace().next()?;
            Some(format!("{name} {ms} ms"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pages(items: usize, per_page: usize) -> usize {
    items.div_ceil(per_page).max(1)
}

fn main() {
    let n: usize = std::env::var("CP_RECON_BENCH_PAYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut spec = DataSpec::scaled(1, Utc::now(), n, n, n / 10);
        spec.accounts = 2;
        let t = Instant::now();
        let sandbox = Sandbox::start(SandboxConfig::new(spec)).await.unwrap();
        let generated = t.elapsed();
        let counts = sandbox.counts();
        let confident = sandbox.expected().confident.len();
        println!(
            "data set: {} payments, {} bank transactions over {} accounts, {} off-ramps; {} confident pairs (generated in {:.2}s)",
            counts.payments, counts.transactions, counts.accounts, counts.offramps, confident,
            generated.as_secs_f64()
        );

        // The provider-bound limit: every page a cold run must read, and a re-read per
        // confident pair, fetched by one keep-alive client.
        let base = sandbox.base_url();
        let http = reqwest::Client::new();
        let auth: serde_json::Value = http
            .post(format!("{base}/authenticate"))
            .json(&serde_json::json!({"api_key": "sandbox-key", "api_secret": "sandbox-secret"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = auth["data"]["token"].as_str().unwrap().to_owned();
        let mut urls = vec![format!("{base}/banking/accounts")];
        for p in 1..=pages(counts.payments, 100) {
            urls.push(format!("{base}/payments?page={p}&per_page=100"));
        }
        for p in 1..=pages(counts.offramps, 100) {
            urls.push(format!("{base}/rampoffs?page={p}&per_page=100"));
        }
        // Transactions per account: the `total` of a one-item page.
        let mut per_account = std::collections::BTreeMap::<String, usize>::new();
        for a in sandbox.accounts() {
            let v: serde_json::Value = http
                .get(format!(
                    "{base}/banking/accounts/{}/transactions?page=1&per_page=1",
                    a.iban
                ))
                .header("auth", &token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let total = v["pagination"]["total"].as_u64().unwrap_or(0) as usize;
            per_account.insert(a.iban.clone(), total);
        }
        let total_tx: usize = per_account.values().sum();
        assert_eq!(total_tx, counts.transactions);
        for (iban, items) in &per_account {
            for p in 1..=pages(*items, 100) {
                urls.push(format!("{base}/banking/accounts/{iban}/transactions?page={p}&per_page=100"));
            }
        }
        let page_requests = urls.len();
        // Before each call both sides are re-read: the payment by id, the credit in its
        // account's list at the microsecond it was booked.
        for (p, t) in &sandbox.expected().confident {
            urls.push(format!("{base}/payment/{p}"));
            let t = sandbox.transaction(t).unwrap();
            let at = t.booked_at;
            urls.push(format!(
                "{base}/banking/accounts/{}/transactions?from={}&to={}&page=1&per_page=100",
                t.iban,
                cp_recon::api::wire_time(at),
                cp_recon::api::wire_time(at + chrono::Duration::microseconds(1)),
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let curl_cfg = dir.path().join("curl.cfg");
        {
            let mut f = std::fs::File::create(&curl_cfg).unwrap();
            writeln!(f, "header = \"auth: {token}\"").unwrap();
            writeln!(f, "silent").unwrap();
            for u in &urls {
                writeln!(f, "url = \"{u}\"\noutput = \"/dev/null\"").unwrap();
            }
        }
        // A first pass warms the sandbox's caches, as the run will find them warm. Then
        // three timed passes; the median is the baseline (this machine's timings wander).
        let warm = run_measured(Command::new("curl").arg("-K").arg(&curl_cfg));
        assert_eq!(warm.code, 0, "curl failed");
        let mut passes: Vec<f64> = (0..3)
            .map(|_| {
                let pass = run_measured(Command::new("curl").arg("-K").arg(&curl_cfg));
                assert_eq!(pass.code, 0, "curl failed");
                pass.wall.as_secs_f64()
            })
            .collect();
        let shown: Vec<String> = passes.iter().map(|p| format!("{p:.2}")).collect();
        passes.sort_by(f64::total_cmp);
        let curl = passes[1];
        let gets = urls.len();
        let mean = curl / gets as f64;
        let baseline = curl + mean * confident as f64;
        println!(
            "baseline: curl made {gets} GETs ({page_requests} pages + 2 x {confident} re-reads) in {curl:.2}s (median of {}s; mean {:.3} ms/request); + {confident} reconcile POSTs at the mean = {baseline:.2}s",
            shown.join("/"),
            mean * 1000.0,
        );

        // The cold run.
        let requests_before = sandbox.request_count();
        let run_dir = tempfile::tempdir().unwrap();
        let config = write_config(run_dir.path(), &base);
        let cold_log = run_dir.path().join("cold.log");
        let cold = run_measured(&mut cp_recon(&config, &cold_log, &["--run-now"]));
        assert_eq!(cold.code, 0, "cold run failed");
        let calls = sandbox.reconcile_calls().len();
        let cold_requests = sandbox.request_count() - requests_before;
        println!(
            "cold run: {:.2}s, ratio to baseline {:.2}, peak RSS {:.1} MB, {calls} reconcile calls, {cold_requests} requests",
            cold.wall.as_secs_f64(),
            cold.wall.as_secs_f64() / baseline,
            peak_rss_mb(&cold_log)
        );
        println!("  phases: {}", phases(&cold_log));

        // 1 % new records, then an incremental run.
        let now = Utc::now();
        let iban = sandbox.accounts()[0].iban.clone();
        let new = (n / 100).max(1);
        for i in 0..new {
            let c = sandbox.fresh_concept();
            let cents = 1000 + (i as i64 % 5000);
            let pid = format!("BENCHNEWPAY{i:014}");
            sandbox
                .add_payment(PaymentRecord::transfer(&pid, c, cents, now - chrono::Duration::minutes(30)))
                .unwrap();
            sandbox
                .add_transaction(TransactionRecord::credit(
                    format!("BENCHNEWTX{i:010}"),
                    &iban,
                    Decimal::new(cents, 2),
                    format!("Ref {c}"),
                    now - chrono::Duration::minutes(10),
                ))
                .unwrap();
        }
        let inc_log = run_dir.path().join("incremental.log");
        let requests_before = sandbox.request_count();
        let inc = run_measured(&mut cp_recon(&config, &inc_log, &["--run-now"]));
        assert_eq!(inc.code, 0, "incremental run failed");
        println!(
            "incremental run (+{new} payments, +{new} credits): {:.2}s, {:.1} % of the cold run, peak RSS {:.1} MB, {} new reconcile calls, {} requests",
            inc.wall.as_secs_f64(),
            100.0 * inc.wall.as_secs_f64() / cold.wall.as_secs_f64(),
            peak_rss_mb(&inc_log),
            sandbox.reconcile_calls().len() - calls,
            sandbox.request_count() - requests_before
        );
        println!("  phases: {}", phases(&inc_log));
        if std::env::var_os("CP_RECON_BENCH_KEEP").is_some() {
            println!("kept: {}", run_dir.keep().display());
        }
        sandbox.shutdown().await;
    });
}
