//! Shared set-up: a sandbox on 127.0.0.1 port 0, a temporary directory with a config
//! file and a database, and the built `cp-recon` binary run against them.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use cp_recon::sandbox::{Sandbox, SandboxConfig};
use cp_recon::store::Store;
use tempfile::TempDir;

pub const SECRET: &str = "sandbox-secret";

pub struct TestEnv {
    pub sandbox: Sandbox,
    /// Kept so the directory lives as long as the test.
    _dir: TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    pub reports: PathBuf,
}

impl TestEnv {
    pub async fn start(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let env = Self {
            config: dir.path().join("config.toml"),
            db: dir.path().join("state").join("recon.sqlite3"),
            reports: dir.path().join("reports"),
            sandbox,
            _dir: dir,
        };
        env.write_config("");
        env
    }

    /// A config for this sandbox; `extra` is appended (more sections).
    pub fn write_config(&self, extra: &str) {
        self.write_config_at(&self.config, &self.db, extra);
    }

    /// A config at `path` for this sandbox with its own database.
    pub fn write_config_at(&self, path: &std::path::Path, db: &std::path::Path, extra: &str) {
        let text = format!(
            r#"[cryptopocket]
base_url = "{}"
api_key = "sandbox-key"
page_size = 20
timeout_secs = 5
max_requests_per_second = 0
backoff_base_ms = 5

[database]
path = "{}"

[reports]
dir = "{}"
{extra}"#,
            self.sandbox.base_url(),
            db.display(),
            self.reports.display()
        );
        std::fs::write(path, text).expect("write config");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod config");
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.command_with(&self.config, args)
    }

    pub fn command_with(&self, config: &std::path::Path, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_cp-recon"));
        c.args(args)
            .arg("--config")
            .arg(config)
            .env("CP_RECON_API_SECRET", SECRET)
            .env("CP_RECON_LOG_FORMAT", "journal")
            .env("RUST_LOG", "info")
            .env_remove("CP_RECON_CONFIG")
            .kill_on_drop(true);
        c
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("cp-recon runs")
    }

    pub fn store(&self) -> Store {
        Store::open(&self.db).expect("database opens")
    }

    /// The folder of run `run`'s report, as the store recorded it.
    pub fn report_dir(&self, run: i64) -> PathBuf {
        let dir: String = self
            .store()
            .connection()
            .query_row("SELECT dir FROM reports WHERE run_id = ?1", [run], |r| {
                r.get(0)
            })
            .unwrap_or_else(|e| panic!("no report recorded for run {run}: {e}"));
        PathBuf::from(dir)
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `SELECT kind, item_id, reason FROM findings` of one run, by kind.
pub fn findings(store: &Store, run: i64, kind: &str) -> std::collections::BTreeMap<String, String> {
    let mut st = store
        .connection()
        .prepare("SELECT item_id, reason FROM findings WHERE run_id = ?1 AND kind = ?2")
        .unwrap();
    st.query_map(rusqlite::params![run, kind], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub fn scalar<T: rusqlite::types::FromSql>(store: &Store, sql: &str) -> T {
    store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
}
