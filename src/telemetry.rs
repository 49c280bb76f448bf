//! Tracing setup in one place: the log format (human, journald, JSON), the `RUST_LOG`
//! filter, and a subscriber built over any writer so tests can capture its output.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human when stderr is a terminal, journal otherwise.
    #[default]
    Auto,
    /// Timestamps and colours, for a person at a terminal.
    Human,
    /// One plain line per event with a syslog priority prefix; journald adds the time.
    Journal,
    /// One JSON object per line.
    Json,
}

/// A log format name that is not one of `auto`, `human`, `journal`, `json`.
#[derive(Debug, thiserror::Error)]
#[error("unknown log format {0:?} (expected auto, human, journal or json)")]
pub struct UnknownLogFormat(String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "human" => Ok(Self::Human),
            "journal" => Ok(Self::Journal),
            "json" => Ok(Self::Json),
            _ => Err(UnknownLogFormat(s.to_owned())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Human => "human",
            Self::Journal => "journal",
            Self::Json => "json",
        })
    }
}

impl LogFormat {
    /// `Auto` decided for this process; the other formats as they are.
    pub fn resolve(self) -> Self {
        match self {
            Self::Auto if is_interactive() => Self::Human,
            Self::Auto => Self::Journal,
            other => other,
        }
    }
}

/// Whether stderr is a terminal (a person is watching), as opposed to journald, a pipe
/// or a file.
pub fn is_interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Tracing could not be installed (a global subscriber is already set).
#[derive(Debug, thiserror::Error)]
#[error("could not install the log subscriber: {0}")]
pub struct TelemetryError(#[from] tracing_subscriber::util::TryInitError);

/// Installs the global subscriber: `format` written through `make_writer`, filtered by
/// `RUST_LOG` (default `info`). Records from crates that use `log` are forwarded too.
pub fn init<W>(format: LogFormat, make_writer: W) -> Result<(), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber(format, make_writer).try_init()?;
    let _ = PLAIN.set(format.resolve() == LogFormat::Human);
    Ok(())
}

/// Whether the installed log format is the human one (a person at a terminal).
static PLAIN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether lines meant for a person may be written as they are: the human format is in
/// use (or no subscriber was installed).
pub fn plain() -> bool {
    PLAIN.get().copied().unwrap_or(true)
}

/// Tells whoever reads stderr that the job failed: a plain `cp-recon: error: …` line
/// for a person at a terminal; in the journal and JSON formats an error-level event
/// like every other line (so `journalctl -p err` and `jq` see it), the line a person
/// would have read in its `message`.
pub fn fail(message: &str) {
    if plain() {
        eprintln!("cp-recon: {message}");
    } else {
        tracing::error!("{message}");
    }
}

/// The subscriber [`init`] installs, filtered by `RUST_LOG` (default `info`; invalid
/// directives are reported on stderr and ignored rather than silencing all logs).
pub fn subscriber<W>(format: LogFormat, make_writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .with_default_directive(Level::INFO.into())
        .from_env_lossy();
    build(format, make_writer, filter)
}

/// Like [`subscriber`] with explicit filter directives (`RUST_LOG` syntax) instead of the
/// environment, so tests see the same output whatever the developer's `RUST_LOG` is.
pub fn subscriber_with_filter<W>(
    format: LogFormat,
    make_writer: W,
    directives: &str,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .with_default_directive(Level::INFO.into())
        .parse_lossy(directives);
    build(format, make_writer, filter)
}

fn build<W>(
    format: LogFormat,
    make_writer: W,
    filter: EnvFilter,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer: Box<dyn Layer<Registry> + Send + Sync> = match format.resolve() {
        // `resolve` never returns Auto; treating it as Human keeps the match total.
        LogFormat::Human | LogFormat::Auto => tracing_subscriber::fmt::layer()
            .with_writer(make_writer)
            .with_ansi(is_interactive() && std::env::var_os("NO_COLOR").is_none())
            .boxed(),
        LogFormat::Journal => tracing_subscriber::fmt::layer()
            .with_writer(make_writer)
            .with_ansi(false)
            .event_format(JournalFormat::default())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(make_writer)
            .boxed(),
    };
    tracing_subscriber::registry().with(layer).with(filter)
}

/// The standard line without a timestamp (journald stamps each line itself), prefixed
/// with the syslog priority `<N>` that journald reads from a service's stderr, so
/// `journalctl -p warning` works.
#[derive(Debug)]
struct JournalFormat {
    inner: Format<Full, ()>,
}

impl Default for JournalFormat {
    fn default() -> Self {
        Self {
            inner: format::format().without_time().with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps everything written to it, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().expect("not poisoned").clone();
            String::from_utf8(bytes)
                .expect("utf-8 logs")
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    fn capture(format: LogFormat) -> Vec<String> {
        let out = Captured::default();
        let writer = out.clone();
        let sub = subscriber_with_filter(format, move || writer.clone(), "info");
        tracing::subscriber::with_default(sub, || {
            tracing::info!(run_id = 7, "run finished");
            tracing::warn!("api slow");
            tracing::debug!("not shown at info");
        });
        out.lines()
    }

    #[test]
    fn journal_format_writes_one_plain_line_per_event_with_a_priority() {
        let lines = capture(LogFormat::Journal);
        assert_eq!(lines.len(), 2, "{lines:?}");
        // The priority, then the level: no timestamp, journald adds its own.
        let after_priority =
            |l: &str, p: &str| l.strip_prefix(p).map(|r| r.trim_start().to_owned());
        let first = after_priority(&lines[0], "<6>").expect("info priority");
        assert!(first.starts_with("INFO"), "{lines:?}");
        assert!(first.contains("run finished") && first.contains("run_id=7"));
        let second = after_priority(&lines[1], "<4>").expect("warning priority");
        assert!(second.starts_with("WARN") && second.contains("api slow"));
        assert!(
            lines.iter().all(|l| !l.contains('\u{1b}')),
            "no ANSI: {lines:?}"
        );
    }

    #[test]
    fn json_format_writes_one_parseable_object_per_event() {
        let lines = capture(LogFormat::Json);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "run finished");
        assert_eq!(first["run_id"], 7);
        let second: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
        assert_eq!(second["level"], "WARN");
    }

    #[test]
    fn human_format_writes_the_message() {
        let lines = capture(LogFormat::Human);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("run finished"));
    }

    #[test]
    fn log_format_names_parse_case_insensitively() {
        assert_eq!("JSON".parse::<LogFormat>().ok(), Some(LogFormat::Json));
        assert_eq!(
            "journal".parse::<LogFormat>().ok(),
            Some(LogFormat::Journal)
        );
        let e = "syslog".parse::<LogFormat>().expect_err("unknown");
        assert!(e.to_string().contains("syslog"));
    }

    #[test]
    fn explicit_formats_resolve_to_themselves() {
        assert_eq!(LogFormat::Json.resolve(), LogFormat::Json);
        assert_ne!(LogFormat::Auto.resolve(), LogFormat::Auto);
    }
}
