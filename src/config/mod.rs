//! Typed configuration: one TOML file, then environment overrides for secrets.
//!
//! Every error names the file and the key. Secrets are `SecretString`s, so `Debug`
//! never prints them.

mod base_url;

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use crate::email::EmailSettings;
use crate::matching::MatchParams;
use crate::report::ReportSettings;
pub use base_url::{BaseUrl, BaseUrlError};

/// Where the configuration file is looked for when `--config` is not given.
pub const ENV_CONFIG: &str = "CP_RECON_CONFIG";
pub const ENV_API_SECRET: &str = "CP_RECON_API_SECRET";
pub const ENV_SMTP_PASSWORD: &str = "CP_RECON_SMTP_PASSWORD";
/// A PostgreSQL URL that replaces `[database]` of the file (the store moves to it).
pub const ENV_DATABASE_URL: &str = "CP_RECON_DATABASE_URL";
pub const ENV_DATABASE_PASSWORD: &str = "CP_RECON_DATABASE_PASSWORD";
pub const SYSTEM_CONFIG: &str = "/etc/cp-recon/config.toml";
pub const LOCAL_CONFIG: &str = "config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no configuration file: none given with --config or {ENV_CONFIG}, and neither {SYSTEM_CONFIG} nor ./{LOCAL_CONFIG} exists"
    )]
    NotFound,
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// `[database] url` (or the URL of the environment) is not one the job can use;
    /// the error names the key and never the password.
    #[error("{path}: {source}")]
    Database {
        path: PathBuf,
        source: crate::store::postgres::SettingsError,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub cryptopocket: ApiSettings,
    pub database: DatabaseSettings,
    pub reconcile: ReconcileSettings,
    pub matching: MatchParams,
    pub sync: SyncSettings,
    pub reports: ReportSettings,
    pub email: Option<EmailSettings>,
    pub schedule: Schedule,
    pub monitoring: MonitoringSettings,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub base_url: BaseUrl,
    pub api_key: String,
    pub api_secret: SecretString,
    pub page_size: u32,
    pub timeout_secs: u64,
    /// 0 turns the client-side limit off (only sensible against the local sandbox).
    pub max_requests_per_second: u32,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub run_deadline_secs: u64,
    pub concurrency: usize,
}

/// Where the job keeps its state: one SQLite file on this host (the default), or a
/// PostgreSQL database that several hosts share.
#[derive(Debug, Clone)]
pub enum DatabaseSettings {
    Sqlite {
        path: PathBuf,
    },
    /// The URL and password, read once; neither `Debug` nor any message shows the
    /// password.
    Postgres(crate::store::postgres::Settings),
}

impl DatabaseSettings {
    /// The SQLite file, when the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite { path } => Some(path),
            Self::Postgres(_) => None,
        }
    }

    /// What the database is, for messages: its file, or `database D on H:P as U`.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("database at {}", path.display()),
            Self::Postgres(pg) => pg.target(),
        }
    }
}

/// `[database]` as written: `path` (SQLite) or `url` (PostgreSQL), never both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    path: Option<PathBuf>,
    url: Option<String>,
    /// Refused with what to do instead: the password is never written in the file.
    password: Option<toml::Value>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileSettings {
    /// `false` decides and records everything but calls nothing (like `--dry-run`).
    pub enabled: bool,
}
impl Default for ReconcileSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Incremental reads start this long before the last complete read's newest item.
    pub overlap_hours: u32,
    /// Every Nth run reads every list from the beginning (0 = only with `--full`).
    pub full_resync_every: u32,
}
impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            overlap_hours: 72,
            full_resync_every: 96,
        }
    }
}

/// `[schedule]` as written in the file; checked once into a [`Schedule`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScheduleSettings {
    cron: String,
    timezone: String,
}
impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            cron: DEFAULT_CRON.into(),
            timezone: "UTC".into(),
        }
    }
}

/// Every 15 minutes, at second 0.
const DEFAULT_CRON: &str = "0 */15 * * * *";

/// `[schedule]`, parsed once: when the long-running mode runs, and the time zone its
/// cron expression is read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: crate::schedule::CronSchedule,
    pub timezone: chrono_tz::Tz,
}

impl Default for Schedule {
    /// Every 15 minutes, UTC.
    fn default() -> Self {
        Self {
            // A constant of this file, checked by a test; never input.
            cron: crate::schedule::CronSchedule::parse(DEFAULT_CRON)
                .expect("the default cron expression parses"),
            timezone: chrono_tz::UTC,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSettings {
    pub textfile: Option<PathBuf>,
    pub ping_url: Option<String>,
}

impl Settings {
    /// The embedded default: a local sandbox, no credentials of any provider, no e-mail.
    /// Used by `cp-recon demo` and by tests.
    pub fn for_sandbox(
        base_url: BaseUrl,
        api_key: &str,
        api_secret: &str,
        database: &Path,
        reports_dir: &Path,
    ) -> Self {
        Self {
            path: PathBuf::from("<embedded>"),
            cryptopocket: ApiSettings {
                base_url,
                api_key: api_key.to_owned(),
                api_secret: SecretString::from(api_secret.to_owned()),
                page_size: 100,
                timeout_secs: 30,
                // The local sandbox needs no protection from us.
                max_requests_per_second: 0,
                max_attempts: d_attempts(),
                backoff_base_ms: 10,
                run_deadline_secs: d_deadline(),
                concurrency: d_concurrency(),
            },
            database: DatabaseSettings::Sqlite {
                path: database.to_path_buf(),
            },
            reconcile: ReconcileSettings::default(),
            matching: MatchParams::default(),
            sync: SyncSettings::default(),
            reports: ReportSettings {
                dir: reports_dir.to_path_buf(),
                ..ReportSettings::default()
            },
            email: None,
            schedule: Schedule::default(),
            monitoring: MonitoringSettings::default(),
        }
    }
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    cryptopocket: FileApi,
    database: FileDatabase,
    #[serde(default)]
    reconcile: ReconcileSettings,
    #[serde(default)]
    matching: FileMatching,
    #[serde(default)]
    sync: SyncSettings,
    #[serde(default)]
    reports: ReportSettings,
    email: Option<EmailSettings>,
    #[serde(default)]
    schedule: ScheduleSettings,
    #[serde(default)]
    monitoring: MonitoringSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApi {
    base_url: String,
    api_key: String,
    api_secret: Option<String>,
    api_secret_file: Option<PathBuf>,
    #[serde(default = "d_page_size")]
    page_size: u32,
    #[serde(default = "d_timeout")]
    timeout_secs: u64,
    #[serde(default = "d_rps")]
    max_requests_per_second: u32,
    #[serde(default = "d_attempts")]
    max_attempts: u32,
    #[serde(default = "d_backoff")]
    backoff_base_ms: u64,
    #[serde(default = "d_deadline")]
    run_deadline_secs: u64,
    #[serde(default = "d_concurrency")]
    concurrency: usize,
}
fn d_page_size() -> u32 {
    100
}
fn d_timeout() -> u64 {
    30
}
fn d_rps() -> u32 {
    5
}
fn d_attempts() -> u32 {
    5
}
fn d_backoff() -> u64 {
    500
}
fn d_deadline() -> u64 {
    1800
}
fn d_concurrency() -> usize {
    2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileMatching {
    booking_tolerance_hours: i64,
    lookback_days: i64,
    payout_grace_days: i64,
}
impl Default for FileMatching {
    fn default() -> Self {
        Self {
            booking_tolerance_hours: 24,
            lookback_days: 90,
            payout_grace_days: 3,
        }
    }
}

/// The config path: `--config`, else `$CP_RECON_CONFIG`, else the system file, else
/// `./config.toml`.
pub fn locate(flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ENV_CONFIG).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    for p in [SYSTEM_CONFIG, LOCAL_CONFIG] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(ConfigError::NotFound)
}

/// Reads, parses and validates the file, then reads secrets from the environment or
/// from `*_file` keys.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let world_readable = world_readable(path);
    parse(path, &text, world_readable, &|k| std::env::var(k).ok())
}

#[cfg(unix)]
fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o004 != 0)
        .unwrap_or(false)
}
#[cfg(not(unix))]
fn world_readable(_: &Path) -> bool {
    false
}

/// Pure parsing and validation; `env` stands in for the process environment.
pub fn parse(
    path: &Path,
    text: &str,
    world_readable: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_owned(),
        message,
    };
    let file: FileSettings = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe_toml_error(text, &e),
    })?;

    let api = file.cryptopocket;
    let base_url = BaseUrl::parse(&api.base_url).map_err(|e| {
        let shown = without_userinfo(api.base_url.trim_end_matches('/'));
        invalid(
            "cryptopocket.base_url",
            match e {
                BaseUrlError::NotHttp => format!("expected an http(s) URL, got {shown:?}"),
                BaseUrlError::NotAUrl { .. } => format!("not a valid URL: {shown:?}"),
            },
        )
    })?;
    if api.api_key.trim().is_empty() {
        return Err(invalid("cryptopocket.api_key", "must not be empty".into()));
    }
    if !(1..=100).contains(&api.page_size) {
        return Err(invalid(
            "cryptopocket.page_size",
            format!("must be between 1 and 100, got {}", api.page_size),
        ));
    }
    if !(1..=600).contains(&api.timeout_secs) {
        return Err(invalid(
            "cryptopocket.timeout_secs",
            format!("must be between 1 and 600, got {}", api.timeout_secs),
        ));
    }
    if !(1..=20).contains(&api.max_attempts) {
        return Err(invalid(
            "cryptopocket.max_attempts",
            format!("must be between 1 and 20, got {}", api.max_attempts),
        ));
    }
    if !(1..=60_000).contains(&api.backoff_base_ms) {
        return Err(invalid(
            "cryptopocket.backoff_base_ms",
            format!("must be between 1 and 60000, got {}", api.backoff_base_ms),
        ));
    }
    if api.run_deadline_secs < api.timeout_secs {
        return Err(invalid(
            "cryptopocket.run_deadline_secs",
            "must be at least timeout_secs".into(),
        ));
    }
    if !(1..=16).contains(&api.concurrency) {
        return Err(invalid(
            "cryptopocket.concurrency",
            format!("must be between 1 and 16, got {}", api.concurrency),
        ));
    }
    let api_secret = secret(
        path,
        "cryptopocket.api_secret",
        api.api_secret,
        api.api_secret_file.as_deref(),
        ENV_API_SECRET,
        world_readable,
        env,
    )?
    .ok_or_else(|| {
        invalid(
            "cryptopocket.api_secret",
            format!("missing: set env {ENV_API_SECRET}, or api_secret_file"),
        )
    })?;

    let m = file.matching;
    if !(0..=24 * 30).contains(&m.booking_tolerance_hours) {
        return Err(invalid(
            "matching.booking_tolerance_hours",
            format!(
                "must be between 0 and 720, got {}",
                m.booking_tolerance_hours
            ),
        ));
    }
    if !(1..=3650).contains(&m.lookback_days) {
        return Err(invalid(
            "matching.lookback_days",
            format!("must be between 1 and 3650, got {}", m.lookback_days),
        ));
    }
    if !(0..=365).contains(&m.payout_grace_days) {
        return Err(invalid(
            "matching.payout_grace_days",
            format!("must be between 0 and 365, got {}", m.payout_grace_days),
        ));
    }
    let matching = MatchParams {
        booking_tolerance: chrono::Duration::hours(m.booking_tolerance_hours),
        lookback: chrono::Duration::days(m.lookback_days),
        payout_grace: chrono::Duration::days(m.payout_grace_days),
    };

    let database = database(path, file.database, world_readable, env)?;

    let mut email = file.email;
    if let Some(e) = email.as_mut() {
        e.password = secret(
            path,
            "email.password",
            None,
            e.password_file.as_deref(),
            ENV_SMTP_PASSWORD,
            world_readable,
            env,
        )?;
        e.validate()
            .map_err(|err| invalid("email", err.to_string()))?;
    }

    file.reports
        .validate()
        .map_err(|e| invalid(ReportSettings::key_of(&e), e.to_string()))?;

    let cron = crate::schedule::CronSchedule::parse(&file.schedule.cron)
        .map_err(|e| invalid("schedule.cron", e.to_string()))?;
    let timezone = file
        .schedule
        .timezone
        .parse::<chrono_tz::Tz>()
        .map_err(|_| {
            invalid(
                "schedule.timezone",
                format!(
                    "unknown time zone {:?} (use an IANA name such as Europe/Madrid)",
                    file.schedule.timezone
                ),
            )
        })?;
    if let Some(url) = &file.monitoring.ping_url
        && reqwest::Url::parse(url).is_err()
    {
        return Err(invalid(
            "monitoring.ping_url",
            "not a valid URL".to_string(),
        ));
    }

    Ok(Settings {
        path: path.to_path_buf(),
        cryptopocket: ApiSettings {
            base_url,
            api_key: api.api_key,
            api_secret,
            page_size: api.page_size,
            timeout_secs: api.timeout_secs,
            max_requests_per_second: api.max_requests_per_second,
            max_attempts: api.max_attempts,
            backoff_base_ms: api.backoff_base_ms,
            run_deadline_secs: api.run_deadline_secs,
            concurrency: api.concurrency,
        },
        database,
        reconcile: file.reconcile,
        matching,
        sync: file.sync,
        reports: file.reports,
        email,
        schedule: Schedule { cron, timezone },
        monitoring: file.monitoring,
    })
}

/// A secret from, in order: the environment variable, the `*_file` key, the key itself
/// (only if the file is not world-readable).
/// `[database]`: a file path, or a PostgreSQL URL (from the file or
/// [`ENV_DATABASE_URL`], which wins) with its password from [`ENV_DATABASE_PASSWORD`]
/// or `password_file`. The password is never accepted in the file or in the URL.
fn database(
    path: &Path,
    file: FileDatabase,
    world_readable: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DatabaseSettings, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_owned(),
        message,
    };
    if file.password.is_some() {
        return Err(invalid(
            "database.password",
            format!(
                "the database password is never written in the configuration: set {ENV_DATABASE_PASSWORD}, or database.password_file (a systemd credential)"
            ),
        ));
    }
    let from_env = env(ENV_DATABASE_URL).filter(|u| !u.is_empty());
    let (key, url) = match (from_env, file.url, &file.path) {
        (Some(url), _, _) => (ENV_DATABASE_URL.to_owned(), url),
        (None, Some(_), Some(_)) => {
            return Err(invalid(
                "database",
                "set either path (an SQLite file) or url (a PostgreSQL database), not both".into(),
            ));
        }
        (None, Some(url), None) => ("database.url".to_owned(), url),
        (None, None, Some(p)) if p.as_os_str().is_empty() => {
            return Err(invalid("database.path", "must not be empty".into()));
        }
        (None, None, Some(p)) => {
            if file.password_file.is_some() {
                return Err(invalid(
                    "database.password_file",
                    "a password is for a PostgreSQL database (database.url); an SQLite file has none".into(),
                ));
            }
            return Ok(DatabaseSettings::Sqlite { path: p.clone() });
        }
        (None, None, None) => {
            return Err(invalid(
                "database",
                format!(
                    "missing: set path (an SQLite file) or url (a PostgreSQL database, or env {ENV_DATABASE_URL})"
                ),
            ));
        }
    };
    let password = secret(
        path,
        "database.password",
        None,
        file.password_file.as_deref(),
        ENV_DATABASE_PASSWORD,
        world_readable,
        env,
    )?;
    crate::store::postgres::Settings::parse(&key, &url, password)
        .map(DatabaseSettings::Postgres)
        .map_err(|source| ConfigError::Database {
            path: path.to_path_buf(),
            source,
        })
}

fn secret(
    path: &Path,
    key: &str,
    inline: Option<String>,
    file: Option<&Path>,
    env_var: &str,
    world_readable: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>, ConfigError> {
    let invalid = |k: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: k,
        message,
    };
    if inline.is_some() && world_readable {
        return Err(invalid(
            key.to_owned(),
            "a secret is written in a file that everyone can read: chmod o-r the file, or move the secret to the environment or a *_file".into(),
        ));
    }
    if let Some(v) = env(env_var).filter(|v| !v.is_empty()) {
        return Ok(Some(SecretString::from(v)));
    }
    if let Some(f) = file {
        let expanded = expand_env(f, env);
        return read_secret_file(&expanded)
            .map(Some)
            .map_err(|message| invalid(format!("{key}_file"), message));
    }
    Ok(inline.filter(|v| !v.is_empty()).map(SecretString::from))
}

/// A secret kept in a file of its own (a systemd credential): the file's text without
/// its final line ending. An unreadable or empty file is an error naming it, never
/// showing what it holds.
pub fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v = text.trim_end_matches(['\n', '\r']);
    if v.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(v.to_owned()))
}

/// Expands `$NAME` / `${NAME}` in a path (systemd's `$CREDENTIALS_DIRECTORY`).
fn expand_env(p: &Path, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let s = p.to_string_lossy();
    if !s.contains('$') {
        return p.to_path_buf();
    }
    let mut out = String::new();
    let mut rest = &*s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(j) => (&inner[..j], &inner[j + 1..]),
                None => ("", after),
            }
        } else {
            let j = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..j], &after[j..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&env(name).unwrap_or_default());
            rest = tail;
        }
    }
    out.push_str(rest);
    PathBuf::from(out)
}

/// A URL as an error may quote it: without a `user:password@` part.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..host_start].rfind('@') {
                Some(at) => format!("{scheme}://<credentials withheld>@{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => match url.rfind('@') {
            Some(_) => "<withheld: looks like it holds credentials>".to_owned(),
            None => url.to_owned(),
        },
    }
}

/// The keys whose values are never quoted: anything that names a secret.
const SECRET_WORDS: [&str; 7] = [
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "auth",
    "key",
];

/// Every key the file may hold, in any section.
const KNOWN_KEYS: [&str; 40] = [
    "base_url",
    "api_key",
    "api_secret",
    "api_secret_file",
    "page_size",
    "timeout_secs",
    "max_requests_per_second",
    "max_attempts",
    "backoff_base_ms",
    "run_deadline_secs",
    "concurrency",
    "path",
    "url",
    "enabled",
    "booking_tolerance_hours",
    "lookback_days",
    "payout_grace_days",
    "overlap_hours",
    "full_resync_every",
    "dir",
    "delimiter",
    "excel_bom",
    "decimal_separator",
    "mask_ibans",
    "send",
    "workbook",
    "smtp_host",
    "smtp_port",
    "tls",
    "username",
    "password_file",
    "from",
    "to",
    "subject_prefix",
    "digest",
    "alert_after",
    "cron",
    "timezone",
    "textfile",
    "ping_url",
];

/// What an error may show of the line it points at, and of toml's message about it.
/// A line whose key names a secret, or is not a key the file knows (a typo of
/// `api_secret` is still a secret), or a URL with a user part (`user:password@host`),
/// or that is not `key = value` at all (the inside of a string running over lines) is
/// shown as its key alone, and its value is cut out of the message too: configuration
/// errors go to the journal.
fn shown_line(line: &str, msg: String) -> (String, String) {
    if line.starts_with('[') || line.starts_with('#') || line.is_empty() {
        return (line.to_owned(), msg);
    }
    let Some((key, value)) = line.split_once('=') else {
        return ("<line withheld>".to_owned(), msg);
    };
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    let lower = key.to_ascii_lowercase();
    // A URL with a user part may carry a password there (`user:password@host`).
    let credentials = lower.ends_with("url") && value.contains('@');
    let secret =
        SECRET_WORDS.iter().any(|w| lower.contains(w)) || !KNOWN_KEYS.contains(&key) || credentials;
    if !secret {
        return (line.to_owned(), msg);
    }
    let mut msg = msg;
    let value = value.trim();
    let bare = value.trim_matches(|c: char| matches!(c, '"' | '\'' | '[' | ']' | '{' | '}'));
    for v in [value, bare] {
        if !v.is_empty() {
            msg = msg.replace(v, "<withheld>");
        }
    }
    (format!("{key} = <value withheld>"), msg)
}

/// One line: where in the file, which section, and what toml said.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let section = text[..span.start.min(text.len())]
                .lines()
                .rev()
                .find_map(|l| {
                    let t = l.trim();
                    (t.starts_with('[') && t.ends_with(']')).then(|| t.to_owned())
                });
            let raw = text
                .lines()
                .nth(line - 1)
                .map(str::trim)
                .unwrap_or_default();
            let (snippet, msg) = shown_line(raw, msg);
            match section {
                Some(sec) => format!("line {line} (in {sec}, `{snippet}`): {msg}"),
                None => format!("line {line} (`{snippet}`): {msg}"),
            }
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests;
