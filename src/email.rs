//! The report e-mail: settings, the MIME message (plain text + HTML summary with the
//! workbook and the CSVs attached, within the relay's size limit) and its delivery over SMTP. This module makes one attempt per call and
//! never retries: the outbox (`crate::run`) sends each pending report's `report.eml`
//! with [`send_eml`] once per run, oldest first, stops at the first failure, and keeps
//! the unsent ones pending for the next run. [`EmailError::is_retryable`] says whether
//! waiting can help at all.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::schedule::CronSchedule;
use serde::Deserialize;

mod body;

use self::body::{Attached, Delivery, html_body, plain_body};
use crate::report::{Report, ReportFiles, WORKBOOK_FILE};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain text: only for a relay on the same host or a test server.
    None,
    /// STARTTLS, required: a server that does not offer it is an error, never a silent
    /// downgrade to plain text (the e-mail carries payment data).
    #[default]
    Starttls,
    /// Implicit TLS from the first byte (SMTPS).
    Tls,
}

impl TlsMode {
    /// The customary port: 25 for plain relays, 587 for submission, 465 for SMTPS.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Starttls => "starttls",
            Self::Tls => "tls",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[email]` section of the configuration. `Debug` shows the password as redacted.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawEmailSettings")]
pub struct EmailSettings {
    pub smtp_host: String,
    /// Defaults by `tls`: 25, 587 or 465.
    pub smtp_port: u16,
    pub tls: TlsMode,
    /// Credentials are sent only when this is set.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Filled by the configuration loader from `CP_RECON_SMTP_PASSWORD` or
    /// `password_file`; never read from the file itself.
    pub password: Option<SecretString>,
    pub from: String,
    pub to: Vec<String>,
    pub subject_prefix: String,
    pub timeout_secs: u64,
    /// Under `send = "digest"`: when the full report goes out, once per slot, as
    /// wall-clock times in `[schedule] timezone` (default weekdays at 08:00). Always set
    /// from a configuration file; `None` only in [`EmailSettings::local_preview`].
    pub digest: Option<CronSchedule>,
    /// Under `send = "digest"`: how long runs may fail or stay incomplete before a mail
    /// says so (default one hour).
    pub alert_after: chrono::Duration,
}

/// The default digest: weekdays at 08:00.
pub const DEFAULT_DIGEST: &str = "0 0 8 * * Mon-Fri";

/// The file's shape: the port is optional so that its default can follow `tls`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmailSettings {
    smtp_host: String,
    smtp_port: Option<u16>,
    #[serde(default)]
    tls: TlsMode,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: String,
    to: Vec<String>,
    #[serde(default = "default_subject_prefix")]
    subject_prefix: String,
    #[serde(default = "default_timeout_secs")]
    timeout_secs: u64,
    digest: Option<String>,
    alert_after: Option<String>,
}

fn default_subject_prefix() -> String {
    "[cp-recon]".to_owned()
}

fn default_timeout_secs() -> u64 {
    30
}

impl TryFrom<RawEmailSettings> for EmailSettings {
    type Error = String;

    fn try_from(r: RawEmailSettings) -> Result<Self, String> {
        let digest = CronSchedule::parse(r.digest.as_deref().unwrap_or(DEFAULT_DIGEST))
            .map_err(|e| format!("email.digest: {e}"))?;
        let alert_after = match r.alert_after.as_deref() {
            None => chrono::Duration::hours(1),
            Some(text) => parse_duration(text).ok_or_else(|| {
                format!(
                    "email.alert_after: {text:?} is not a duration such as \"90m\", \"1h\", \"2d\" or \"1h 30m\""
                )
            })?,
        };
        Ok(Self {
            digest: Some(digest),
            smtp_port: r.smtp_port.unwrap_or(r.tls.default_port()),
            smtp_host: r.smtp_host,
            tls: r.tls,
            username: r.username,
            password_file: r.password_file,
            password: None,
            from: r.from,
            to: r.to,
            subject_prefix: r.subject_prefix,
            timeout_secs: r.timeout_secs,
            alert_after,
        })
    }
}

/// A duration as humantime spells it: `45s`, `90m`, `1h`, `2d`, or several units
/// together (`1h 30m`, `1day 2h`); zero is not a duration. A bare `M` (humantime's
/// month) is refused: `90M` is far more likely a typo for minutes than 7½ years.
pub fn parse_duration(text: &str) -> Option<chrono::Duration> {
    let bare_month = text
        .split(|c: char| c.is_ascii_digit() || c.is_whitespace())
        .any(|unit| unit == "M");
    if bare_month {
        return None;
    }
    let d = humantime::parse_duration(text.trim()).ok()?;
    chrono::Duration::from_std(d)
        .ok()
        .filter(|d| *d > chrono::Duration::zero())
}

/// What went wrong with the report e-mail, by what the caller does about it. The text
/// carries the whole cause (the outbox stores it as text) and never the password.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The settings are wrong (a bad address, a missing password): fix the config;
    /// retrying will not help.
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    /// The message could not be put together (an attachment could not be read): a bug or
    /// a lost report directory; retrying will not help.
    #[error("could not build the report e-mail: {reason}")]
    Build { reason: String },
    /// The SMTP exchange failed (connection, TLS, rejected): retry later. `cause` is
    /// the whole chain of causes, each said once; `hint` what to change, when a setting
    /// cannot work.
    #[error("sending the report e-mail via {host}:{port} (tls = {tls}) failed: {cause}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Transport {
        host: String,
        port: u16,
        tls: TlsMode,
        cause: String,
        hint: Option<&'static str>,
    },
}

impl EmailError {
    /// True for the errors worth retrying later (the outbox keeps the message).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transport { .. })
    }
}

fn config_err(key: impl Into<String>, reason: impl fmt::Display) -> EmailError {
    EmailError::Config {
        key: key.into(),
        reason: reason.to_string(),
    }
}

fn build_err(reason: impl fmt::Display) -> EmailError {
    EmailError::Build {
        reason: reason.to_string(),
    }
}

impl EmailSettings {
    /// Checks every value the transport and the message builder will need, naming the
    /// key of the first bad one (`email.to[1]: ...`).
    pub fn validate(&self) -> Result<(), EmailError> {
        if self.smtp_host.trim().is_empty() {
            return Err(config_err("email.smtp_host", "must not be empty"));
        }
        if self.smtp_port == 0 {
            return Err(config_err("email.smtp_port", "must not be 0"));
        }
        if self.timeout_secs == 0 {
            return Err(config_err("email.timeout_secs", "must be at least 1"));
        }
        self.sender_mailbox()?;
        self.recipient_mailboxes()?;
        if self.subject_prefix.chars().any(char::is_control) {
            return Err(config_err(
                "email.subject_prefix",
                "must not contain control characters",
            ));
        }
        self.credentials()?;
        Ok(())
    }

    fn sender_mailbox(&self) -> Result<Mailbox, EmailError> {
        self.from.parse::<Mailbox>().map_err(|e| {
            config_err(
                "email.from",
                format!("{:?} is not a mailbox: {e}", self.from),
            )
        })
    }

    fn recipient_mailboxes(&self) -> Result<Vec<Mailbox>, EmailError> {
        if self.to.is_empty() {
            return Err(config_err("email.to", "needs at least one recipient"));
        }
        self.to
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<Mailbox>().map_err(|e| {
                    config_err(
                        format!("email.to[{i}]"),
                        format!("{s:?} is not a mailbox: {e}"),
                    )
                })
            })
            .collect()
    }

    fn envelope(&self) -> Result<Envelope, EmailError> {
        let from = self.sender_mailbox()?.email;
        let to = self
            .recipient_mailboxes()?
            .into_iter()
            .map(|m| m.email)
            .collect();
        Envelope::new(Some(from), to).map_err(|e| config_err("email.to", e))
    }

    /// Settings for building a message that is only written to disk (a preview `.eml`
    /// when no `[email]` section is configured); never used to connect.
    pub fn local_preview() -> Self {
        Self {
            smtp_host: "localhost".to_owned(),
            smtp_port: TlsMode::None.default_port(),
            tls: TlsMode::None,
            username: None,
            password_file: None,
            password: None,
            from: "cp-recon <cp-recon@localhost>".to_owned(),
            to: vec!["finance@localhost".to_owned()],
            subject_prefix: default_subject_prefix(),
            timeout_secs: default_timeout_secs(),
            digest: None,
            alert_after: chrono::Duration::hours(1),
        }
    }

    fn credentials(&self) -> Result<Option<Credentials>, EmailError> {
        let Some(user) = &self.username else {
            return Ok(None);
        };
        let Some(password) = &self.password else {
            return Err(config_err(
                "email.password",
                "email.username is set but no password was given \
                 (set CP_RECON_SMTP_PASSWORD or email.password_file)",
            ));
        };
        Ok(Some(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        )))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
        let host = self.smtp_host.as_str();
        let builder = match self.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            // `starttls_relay` sets `Tls::Required`: no STARTTLS, no mail.
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| config_err("email.smtp_host", e))?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| config_err("email.smtp_host", e))?,
        };
        let mut builder = builder
            .port(self.smtp_port)
            .timeout(Some(Duration::from_secs(self.timeout_secs)));
        if let Some(creds) = self.credentials()? {
            builder = builder.credentials(creds);
        }
        Ok(builder.build())
    }
}

/// The longest subject, in characters: mail clients show about this much, and a
/// subject that long is cut with `…`.
pub const MAX_SUBJECT_CHARS: usize = 120;

/// The subject line: `[cp-recon] 2026-06-26: 3 reconciled, 5 need attention`, led by
/// what is wrong when something is: `URGENT — 1 unexplained debit, 999.99 EUR` (new
/// urgent items, the most urgent kind first), `RUN FAILED: <the failure, briefly>`,
/// `INCOMPLETE SYNC`, `DRY RUN`, joined with ` — `. An urgent mail (not a full report)
/// leaves out the run's totals; a digest counts the pairs reconciled in its period.
/// The date is the run's start, in UTC. At most [`MAX_SUBJECT_CHARS`] characters.
pub fn subject(report: &Report, prefix: &str) -> String {
    let run = &report.run;
    let mut parts: Vec<String> = Vec::new();
    if !report.urgent.is_empty() {
        let what = crate::report::mail_plan::urgent_subject(&report.urgent_items)
            .unwrap_or_else(|| "runs are not completing".to_owned());
        parts.push(format!("URGENT — {what}"));
    }
    if let Some(err) = &run.failed {
        parts.push(format!("RUN FAILED: {}", brief(err)));
    }
    if !run.sync_complete {
        parts.push("INCOMPLETE SYNC".to_owned());
    }
    if run.dry_run {
        parts.push("DRY RUN".to_owned());
    }
    if !report.urgent_only || parts.is_empty() {
        let reconciled = report
            .period
            .as_ref()
            .map_or(report.reconciled.len(), |p| p.reconciled.len());
        parts.push(format!(
            "{}: {reconciled} reconciled, {} need attention",
            run.started_at.format("%Y-%m-%d"),
            report.attention_count()
        ));
    }
    let mut s = String::new();
    if !prefix.is_empty() {
        s.push_str(prefix);
        s.push(' ');
    }
    s.push_str(&parts.join(" — "));
    cut(&s, MAX_SUBJECT_CHARS)
}

/// A failure in a few words: its first line, as the outermost context and the root
/// cause (`sync failed: connection refused`), at most 60 characters.
fn brief(err: &str) -> String {
    let line = err.lines().next().unwrap_or_default();
    let segments: Vec<&str> = line.split(": ").filter(|s| !s.trim().is_empty()).collect();
    let short = match segments.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [first, .., last] => format!("{first}: {last}"),
    };
    cut(&short, 60)
}

/// `s` cut to `max` characters, the last one `…` when it was longer.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// The usual relay limit on a whole message; [`build_message`] stays under it.
pub const MAX_MESSAGE_BYTES: u64 = 10 * 1024 * 1024;

/// Size of `n` bytes in a base64 part: 4 for every 3, a CRLF every 76, and room for
/// the part's headers.
fn encoded_len(n: u64) -> u64 {
    let b64 = n.div_ceil(3) * 4;
    b64 + b64.div_ceil(76) * 2 + 512
}

fn file_len(path: &Path) -> Result<u64, EmailError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| build_err(format_args!("reading {}: {e}", path.display())))
}

/// Builds the e-mail: a plain-text and an HTML summary, then the workbook and the four
/// CSV files as attachments, all within [`MAX_MESSAGE_BYTES`].
pub fn build_message(
    report: &Report,
    files: &ReportFiles,
    settings: &EmailSettings,
) -> Result<Message, EmailError> {
    build_message_within(report, files, settings, MAX_MESSAGE_BYTES)
}

/// [`build_message`] with a size limit of `limit` bytes: when the CSVs would take the
/// message over it, only the workbook is attached, and when the workbook alone would,
/// nothing is; the bodies then say where the files are on disk.
pub fn build_message_within(
    report: &Report,
    files: &ReportFiles,
    settings: &EmailSettings,
    limit: u64,
) -> Result<Message, EmailError> {
    let from = settings.sender_mailbox()?;
    let to = settings.recipient_mailboxes()?;
    let summary = report.summary();

    let mut builder = Message::builder()
        .from(from)
        .subject(subject(report, &settings.subject_prefix))
        .date(SystemTime::from(report.generated_at))
        // A Message-ID (generated from the host name) keeps spam filters calm and lets
        // a resent message be recognised as the same report.
        .message_id(None)
        // Machine-sent, so that out-of-office and other automatic replies are not
        // sent back to the report's sender: RFC 3834's header, and Exchange's own.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".into(),
        ));
    for mailbox in to {
        builder = builder.to(mailbox);
    }

    // The bodies are the same size whatever they say about attachments, within a few
    // hundred bytes: measure them once with the longest wording.
    let probe = Delivery {
        attached: Attached::Nothing,
        dir: &files.dir,
    };
    let bodies = encoded_len(
        (plain_body(&summary, &probe).len() + html_body(&summary, &probe).len()) as u64,
    ) + 4096;
    let workbook = encoded_len(file_len(&files.workbook)?);
    let mut csvs = 0;
    for (_, path) in files.iter() {
        csvs += encoded_len(file_len(path)?);
    }
    let attached = if bodies + workbook + csvs <= limit {
        Attached::All
    } else if bodies + workbook <= limit {
        Attached::WorkbookOnly
    } else {
        Attached::Nothing
    };
    if attached != Attached::All {
        tracing::warn!(
            limit,
            workbook_only = attached == Attached::WorkbookOnly,
            dir = %files.dir.display(),
            "report files too large to attach in full; the e-mail says where they are"
        );
    }
    let delivery = Delivery {
        attached,
        dir: &files.dir,
    };

    let mut body = MultiPart::mixed().multipart(MultiPart::alternative_plain_html(
        plain_body(&summary, &delivery),
        html_body(&summary, &delivery),
    ));
    let read = |name: &str, path: &Path, mime: &ContentType| -> Result<SinglePart, EmailError> {
        let bytes = fs::read(path)
            .map_err(|e| build_err(format_args!("reading {}: {e}", path.display())))?;
        // Base64 keeps the file byte for byte (CRLF record ends, BOM, quoted newlines);
        // a text encoding could rewrite line ends inside quoted cells.
        let content = Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
            .map_err(|_| build_err(format_args!("encoding {}", path.display())))?;
        Ok(Attachment::new(name.to_owned()).body(content, mime.clone()))
    };
    if attached != Attached::Nothing {
        let xlsx =
            ContentType::parse("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
                .map_err(build_err)?;
        body = body.singlepart(read(WORKBOOK_FILE, &files.workbook, &xlsx)?);
    }
    if attached == Attached::All {
        let csv_type = ContentType::parse("text/csv; charset=utf-8").map_err(build_err)?;
        for (kind, path) in files.iter() {
            body = body.singlepart(read(kind.file_name(), path, &csv_type)?);
        }
    }
    builder.multipart(body).map_err(build_err)
}

/// Sends one message. Each call opens its own connection: the job sends one e-mail per
/// run, so a pool kept between calls would only hold a socket open.
#[tracing::instrument(skip_all, fields(host = %settings.smtp_host, port = settings.smtp_port, tls = %settings.tls))]
pub async fn send(message: Message, settings: &EmailSettings) -> Result<(), EmailError> {
    let transport = settings.transport()?;
    delivered(settings, transport.send(message).await)
}

/// Sends a message saved earlier with [`write_eml`] (the outbox keeps that copy), byte
/// for byte. The envelope (sender and recipients) comes from the current `settings`, so
/// a recipient list fixed in the config applies to reports still waiting.
#[tracing::instrument(skip_all, fields(path = %path.display(), host = %settings.smtp_host, port = settings.smtp_port, tls = %settings.tls))]
pub async fn send_eml(path: &Path, settings: &EmailSettings) -> Result<(), EmailError> {
    let raw = tokio::fs::read(path)
        .await
        .map_err(|e| build_err(format_args!("reading {}: {e}", path.display())))?;
    let envelope = settings.envelope()?;
    let transport = settings.transport()?;
    delivered(settings, transport.send_raw(&envelope, &raw).await)
}

/// An error and its sources as one line, each cause said once: lettre's messages repeat
/// their source's text ("Connection error: Connection error: …"), so a cause already
/// said is not said again.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        for part in err.to_string().split(": ") {
            let part = part.trim();
            if !part.is_empty() && parts.last().map(String::as_str) != Some(part) {
                parts.push(part.to_owned());
            }
        }
        next = err.source();
    }
    // A source already quoted whole inside the text before it adds nothing.
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        if !out.iter().any(|o| o == &p) {
            out.push(p);
        }
    }
    out.join(": ")
}

fn delivered(
    settings: &EmailSettings,
    result: Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error>,
) -> Result<(), EmailError> {
    match result {
        Ok(response) => {
            tracing::info!(code = %response.code(), "report e-mail accepted");
            Ok(())
        }
        Err(error) => {
            let cause = causes(&error);
            // A server that offers AUTH only once the connection is encrypted answers a
            // plain-text EHLO without any mechanism.
            let hint = (settings.tls == TlsMode::None
                && settings.username.is_some()
                && cause.contains("No compatible authentication mechanism"))
            .then_some(
                "the server offers AUTH only after STARTTLS, and tls = \"none\" never starts it: set tls = \"starttls\"",
            );
            let err = EmailError::Transport {
                host: settings.smtp_host.clone(),
                port: settings.smtp_port,
                tls: settings.tls,
                cause,
                hint,
            };
            tracing::warn!(error = %err, "report e-mail not sent");
            Err(err)
        }
    }
}

/// Writes the message as it would go on the wire (an `.eml` file any mail client opens).
pub fn write_eml(message: &Message, path: &Path) -> std::io::Result<()> {
    fs::write(path, message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EmailSettings {
        toml::from_str(
            r#"
            smtp_host = "smtp.example.com"
            from = "cp-recon <recon@example.com>"
            to = ["finance@example.com"]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_follow_the_tls_mode() {
        let s = settings();
        assert_eq!((s.tls, s.smtp_port), (TlsMode::Starttls, 587));
        assert_eq!(s.subject_prefix, "[cp-recon]");
        assert_eq!(s.timeout_secs, 30);
        let s: EmailSettings =
            toml::from_str("smtp_host = 'h'\nfrom = 'a@b.c'\nto = ['d@e.f']\ntls = 'tls'").unwrap();
        assert_eq!(s.smtp_port, 465);
        let s: EmailSettings = toml::from_str(
            "smtp_host = 'h'\nfrom = 'a@b.c'\nto = ['d@e.f']\ntls = 'none'\nsmtp_port = 2525",
        )
        .unwrap();
        assert_eq!(s.smtp_port, 2525);
    }

    #[test]
    fn unknown_keys_and_a_password_in_the_file_are_rejected() {
        let r = toml::from_str::<EmailSettings>(
            "smtp_host = 'h'\nfrom = 'a@b.c'\nto = ['d@e.f']\npassword = 'hunter2'",
        );
        assert!(r.is_err());
    }

    #[test]
    fn a_bad_recipient_is_named_by_its_index() {
        let mut s = settings();
        s.to.push("not an address".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.starts_with("email.to[1]: "), "{err}");
    }

    #[test]
    fn a_username_without_a_password_is_a_config_error() {
        let mut s = settings();
        s.username = Some("recon".into());
        assert!(matches!(s.validate(), Err(EmailError::Config { .. })));
        s.password = Some(SecretString::from("hunter2"));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let mut s = settings();
        s.password = Some(SecretString::from("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_local_preview_settings_are_valid() {
        EmailSettings::local_preview().validate().unwrap();
    }

    #[test]
    fn a_failure_is_told_briefly_as_its_context_and_its_cause() {
        assert_eq!(brief("database is locked"), "database is locked");
        assert_eq!(
            brief("sync failed: reading payments: page 3: connection refused\nmore"),
            "sync failed: connection refused"
        );
        let long = brief(&"x".repeat(200));
        assert_eq!(long.chars().count(), 60);
        assert!(long.ends_with('…'));
    }
}
