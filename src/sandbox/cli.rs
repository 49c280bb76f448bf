//! `cp-recon sandbox`: serve a sandbox until interrupted.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use chrono::Utc;

use super::{DataSpec, Faults, Sandbox, SandboxConfig};

/// Options of `cp-recon sandbox`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Seed of the generated data set (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of payments (default: the small set of about 60).
    #[arg(long)]
    pub payments: Option<usize>,
    /// Approximate number of bank transactions.
    #[arg(long)]
    pub transactions: Option<usize>,
    /// Number of off-ramps.
    #[arg(long)]
    pub offramps: Option<usize>,
    /// Faults as JSON, e.g. '{"rate_limit_every":5,"retry_after_secs":1}'.
    #[arg(long)]
    pub faults: Option<String>,
    #[arg(long, default_value = "sandbox-key")]
    pub api_key: String,
    #[arg(long, default_value = "sandbox-secret")]
    pub api_secret: String,
    /// Serve the contract strictly, without the provider's wire oddities.
    #[arg(long)]
    pub no_quirks: bool,
}

impl SandboxArgs {
    /// The sandbox configuration these options describe, anchored at the current time.
    pub fn config(&self) -> anyhow::Result<SandboxConfig> {
        let anchor = Utc::now();
        let small = DataSpec::small(self.seed, anchor);
        let data =
            if self.payments.is_some() || self.transactions.is_some() || self.offramps.is_some() {
                let payments = self.payments.unwrap_or(small.payments);
                DataSpec::scaled(
                    self.seed,
                    anchor,
                    payments,
                    self.transactions.unwrap_or(payments),
                    self.offramps.unwrap_or((payments / 10).max(small.offramps)),
                )
            } else {
                small
            };
        let faults = match &self.faults {
            Some(json) => serde_json::from_str::<Faults>(json)
                .with_context(|| format!("--faults is not a valid faults object: {json}"))?,
            None => Faults::default(),
        };
        Ok(SandboxConfig {
            faults,
            api_key: self.api_key.clone(),
            api_secret: self.api_secret.clone(),
            quirks: !self.no_quirks,
            ..SandboxConfig::new(data)
        })
    }
}

/// Serves until Ctrl-C (or SIGTERM), printing one line with the base URL and credentials.
pub async fn serve_cli(args: SandboxArgs) -> anyhow::Result<()> {
    serve_until(args, crate::cli::shutdown_signal(), |line| {
        println!("{line}")
    })
    .await
}

/// Serves until `shutdown` resolves; `announce` receives the line describing where and
/// how to connect once the sandbox is ready.
pub async fn serve_until(
    args: SandboxArgs,
    shutdown: impl Future<Output = ()>,
    announce: impl FnOnce(&str),
) -> anyhow::Result<()> {
    let config = args.config()?;
    let (key, secret) = (config.api_key.clone(), config.api_secret.clone());
    let sandbox = Sandbox::start_on(config, SocketAddr::new(args.bind, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let c = sandbox.counts();
    announce(&format!(
        "sandbox ready: base_url={} api_key={key} api_secret={secret} ({} payments, {} transactions, {} off-ramps, {} accounts)",
        sandbox.base_url(),
        c.payments,
        c.transactions,
        c.offramps,
        c.accounts
    ));
    shutdown.await;
    sandbox.shutdown().await;
    Ok(())
}
