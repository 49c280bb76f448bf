//! Where the PostgreSQL database is and how to reach it: a `postgresql://` URL read once
//! into [`Settings`]. Pure: the caller reads the environment and any password file and
//! passes what it found.
//!
//! Accepted: `postgresql://USER@HOST[:PORT]/DBNAME[?sslmode=...&sslrootcert=PATH]`
//! (`postgres://` too), one host, percent-encoding as libpq reads it, IPv6 hosts in
//! brackets. The port defaults to 5432. The user name and the database name are
//! required (libpq would fall back to the operating system's user name: a shared
//! database is named, not guessed).
//!
//! `sslmode`, as libpq means it, except that it defaults to `verify-full`:
//!
//! - `disable`: no TLS (a server on the same host, or a network the team trusts);
//! - `require`: encrypted, but the server's certificate is **not** verified (libpq's
//!   meaning: it protects from listening, not from a server impersonated on the way);
//! - `verify-ca`: the certificate chains to a trusted root; the host name is not checked;
//! - `verify-full`: the certificate chains to a trusted root and names the host.
//!
//! The trusted roots are the system's (`sslrootcert` absent, or `system` as in libpq 16),
//! or the certificates of the PEM file `sslrootcert` names. `allow` and `prefer`, which
//! fall back to an unencrypted session without saying so, are refused, as is an
//! `sslrootcert` with a mode that verifies nothing.
//!
//! The password is never written in the URL: one there (`user:secret@`, or a
//! `password=` parameter) is refused, and no error quotes the URL or any part of it a
//! password could have been typed into. `Display` and `Debug` of [`Settings`] never show
//! the password; [`redacted`] shows a raw URL with any password withheld.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// PostgreSQL's port when the URL names none.
pub const DEFAULT_PORT: u16 = 5432;

/// How the session is encrypted, and what of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked against trusted roots.
    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

/// The roots a verified certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The operating system's trusted roots, as HTTP and SMTP use them.
    System,
    /// The certificates of this PEM file (`sslrootcert`).
    File(PathBuf),
}

/// Everything needed to open a session. `Display` is the URL without a password.
#[derive(Clone)]
pub struct Settings {
    pub user: String,
    /// A host name or an IP address (an IPv6 one without its brackets).
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub sslmode: SslMode,
    /// Meaningful for the verifying modes only.
    pub roots: Roots,
    password: Option<SecretString>,
}

/// Why a database URL was refused. Each names the key it came from (`[database] url`,
/// `CP_RECON_DATABASE_URL`) and never quotes text a password could be in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{key}: expected a postgresql:// URL (postgresql://USER@HOST:PORT/DBNAME)")]
    NotPostgres { key: String },
    #[error(
        "{key}: the URL holds a password; a password is never written in the configuration: set CP_RECON_DATABASE_PASSWORD, or [database] password_file (a systemd credential), and remove it from the URL"
    )]
    PasswordInUrl { key: String },
    #[error("{key}: the URL names no {part} (postgresql://USER@HOST:PORT/DBNAME)")]
    Missing { key: String, part: &'static str },
    #[error("{key}: the URL's port is not a number from 1 to 65535")]
    BadPort { key: String },
    #[error("{key}: the URL's {part} is not valid percent-encoded UTF-8")]
    BadEncoding { key: String, part: &'static str },
    #[error(
        "{key}: the URL's {part} holds a character that must be percent-encoded (@ as %40, / as %2F, : as %3A)"
    )]
    Unencoded { key: String, part: &'static str },
    #[error(
        "{key}: {what}; cp-recon connects to one host over TCP (postgresql://USER@HOST:PORT/DBNAME)"
    )]
    Unsupported { key: String, what: &'static str },
    /// `name` is said only when it is one of libpq's parameter names.
    #[error("{key}: {}; the parameters read are sslmode and sslrootcert", unknown_parameter(.name.as_deref()))]
    UnknownParameter { key: String, name: Option<String> },
    /// `value` is said only when it is one of libpq's modes.
    #[error("{key}: {}; use disable, require, verify-ca or verify-full", bad_mode(.value.as_deref()))]
    BadSslMode { key: String, value: Option<String> },
    #[error(
        "{key}: sslrootcert is given but sslmode={mode} does not verify the server's certificate: use sslmode=verify-full (or verify-ca)"
    )]
    RootsUnused { key: String, mode: &'static str },
    #[error("{key}: sslrootcert is empty: name a PEM file, or `system` for the system's roots")]
    EmptyRoots { key: String },
    #[error("{key}: the database password is empty")]
    EmptyPassword { key: String },
}

fn unknown_parameter(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("the URL's parameter {n} is not supported here"),
        None => {
            "the URL holds a parameter that is not supported here (not shown: it may hold a secret)"
                .into()
        }
    }
}

fn bad_mode(value: Option<&str>) -> String {
    match value {
        Some(v @ ("allow" | "prefer")) => {
            format!(
                "sslmode={v} is refused: it falls back to an unencrypted session without saying so"
            )
        }
        Some(v) => format!("sslmode={v} is not supported"),
        None => "sslmode is not one of libpq's modes (not shown)".into(),
    }
}

/// libpq's connection parameter names: an unknown one that is one of these is named in
/// the error; anything else is not quoted.
const LIBPQ_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

const LIBPQ_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

impl Settings {
    /// Reads `url`, found under `key` (named by every error), with the password the
    /// caller found (`CP_RECON_DATABASE_PASSWORD`, or the contents of `password_file`
    /// without its final line break), if any: a server with `trust` or certificate
    /// authentication needs none.
    pub fn parse(
        key: &str,
        url: &str,
        password: Option<SecretString>,
    ) -> Result<Self, SettingsError> {
        let key = key.to_owned();
        let err_key = || key.clone();
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| SettingsError::NotPostgres { key: err_key() })?;

        // The authority ends at the first `/`, `?` or `#` (RFC 3986, as libpq reads it).
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (&authority[..at], &authority[at + 1..]),
            None => ("", authority),
        };
        if userinfo.contains(':') {
            return Err(SettingsError::PasswordInUrl { key });
        }
        // An `@` left in the user part is a password's or a user name's that must be
        // encoded; either way the text is not quoted.
        if userinfo.contains('@') {
            return Err(SettingsError::Unencoded {
                key,
                part: "user name",
            });
        }
        if tail.contains('#') {
            return Err(SettingsError::Unsupported {
                key,
                what: "the URL has a #fragment",
            });
        }
        let user = decode(userinfo).ok_or_else(|| SettingsError::BadEncoding {
            key: err_key(),
            part: "user name",
        })?;
        if user.is_empty() {
            return Err(SettingsError::Missing {
                key,
                part: "user name",
            });
        }

        let (host, port) = split_host_port(hostport, &key)?;

        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.contains(['/', '@', ':']) {
            return Err(SettingsError::Unencoded {
                key,
                part: "database name",
            });
        }
        let dbname = decode(path).ok_or_else(|| SettingsError::BadEncoding {
            key: err_key(),
            part: "database name",
        })?;
        if dbname.is_empty() {
            return Err(SettingsError::Missing {
                key,
                part: "database name",
            });
        }

        let mut sslmode = None;
        let mut rootcert: Option<String> = None;
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let Some((name, value)) = pair.split_once('=') else {
                return Err(SettingsError::UnknownParameter { key, name: None });
            };
            let name = decode(name).ok_or_else(|| SettingsError::UnknownParameter {
                key: err_key(),
                name: None,
            })?;
            match name.as_str() {
                "password" => return Err(SettingsError::PasswordInUrl { key }),
                "sslmode" => {
                    let value = decode(value).unwrap_or_default();
                    sslmode = Some(match value.as_str() {
                        "disable" => SslMode::Disable,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        v => {
                            let value = LIBPQ_MODES.contains(&v).then(|| v.to_owned());
                            return Err(SettingsError::BadSslMode { key, value });
                        }
                    });
                }
                "sslrootcert" => {
                    rootcert = Some(decode(value).ok_or_else(|| SettingsError::BadEncoding {
                        key: err_key(),
                        part: "sslrootcert",
                    })?);
                }
                other => {
                    let name = LIBPQ_PARAMETERS.contains(&other).then(|| other.to_owned());
                    return Err(SettingsError::UnknownParameter { key, name });
                }
            }
        }
        let sslmode = sslmode.unwrap_or(SslMode::VerifyFull);
        let roots = match rootcert.as_deref() {
            None | Some("system") => Roots::System,
            Some("") => return Err(SettingsError::EmptyRoots { key }),
            Some(path) => Roots::File(PathBuf::from(path)),
        };
        if rootcert.is_some() && !sslmode.verifies() {
            return Err(SettingsError::RootsUnused {
                key,
                mode: sslmode.as_str(),
            });
        }
        if password
            .as_ref()
            .is_some_and(|p| p.expose_secret().is_empty())
        {
            return Err(SettingsError::EmptyPassword { key });
        }
        Ok(Self {
            user,
            host,
            port,
            dbname,
            sslmode,
            roots,
            password,
        })
    }

    /// The password, to hand to the client only.
    pub fn password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// `host:port` (`[v6]:port`), for messages.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `dbname on host:port as user`, for messages.
    pub fn target(&self) -> String {
        format!(
            "database {} on {} as {}",
            self.dbname,
            self.endpoint(),
            self.user
        )
    }
}

impl fmt::Display for Settings {
    /// The URL, without a password (there never is one in it) and with the mode spelled.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgresql://{}@{}/{}?sslmode={}",
            self.user,
            self.endpoint(),
            self.dbname,
            self.sslmode.as_str()
        )?;
        if let Roots::File(path) = &self.roots {
            write!(f, "&sslrootcert={}", path.display())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("user", &self.user)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("roots", &self.roots)
            .field("password", &self.password.as_ref().map(|_| "<withheld>"))
            .finish()
    }
}

/// A raw database URL as a message may show it: a password in its user part or in a
/// `password=` parameter is replaced by `***`. For quoting what a person wrote (a URL
/// [`Settings::parse`] refused is never quoted by it).
pub fn redacted(url: &str) -> String {
    let (head, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    // The user part ends at the last `@`, wherever it is: a password may hold an
    // unencoded `/`, `?` or `#` that would end the authority early.
    let (user, after) = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            (shown, &rest[at..])
        }
        None => (String::new(), rest),
    };
    // `text:text` where the port should be is a password written without a host (or
    // in the wrong place): a port is digits.
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(end);
    let authority = match authority.rsplit_once(':') {
        Some((host, port))
            if !authority.ends_with(']') && !port.chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("{host}:***")
        }
        _ => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                        format!("{name}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{head}{user}{authority}{tail}")
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(hostport: &str, key: &str) -> Result<(String, u16), SettingsError> {
    let key = || key.to_owned();
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(SettingsError::Missing {
            key: key(),
            part: "closing ] of the IPv6 host",
        })?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(SettingsError::BadPort { key: key() })?,
            ),
        };
        (host.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.contains(',') {
        return Err(SettingsError::Unsupported {
            key: key(),
            what: "the URL names several hosts",
        });
    }
    let host = decode(&host).ok_or(SettingsError::BadEncoding {
        key: key(),
        part: "host",
    })?;
    if host.starts_with('/') {
        return Err(SettingsError::Unsupported {
            key: key(),
            what: "the URL names a Unix socket directory",
        });
    }
    if host.is_empty() {
        return Err(SettingsError::Missing {
            key: key(),
            part: "host",
        });
    }
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(SettingsError::BadPort { key: key() })?,
    };
    Ok((host, port))
}

/// Percent-decoding as libpq does it; `None` for a bad escape or bytes that are not
/// UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "[database] url";

    fn parse(url: &str) -> Result<Settings, SettingsError> {
        Settings::parse(KEY, url, None)
    }

    #[test]
    fn a_url_gives_user_host_port_database_and_verify_full_by_default() {
        let s = parse("postgresql://recon@db.example:6432/ledger").unwrap();
        assert_eq!(s.user, "recon");
        assert_eq!(s.host, "db.example");
        assert_eq!(s.port, 6432);
        assert_eq!(s.dbname, "ledger");
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.roots, Roots::System);
        assert!(s.password().is_none());
        assert_eq!(
            s.to_string(),
            "postgresql://recon@db.example:6432/ledger?sslmode=verify-full"
        );
    }

    #[test]
    fn the_port_defaults_to_5432_and_postgres_scheme_is_accepted() {
        let s = parse("postgres://recon@db.example/ledger").unwrap();
        assert_eq!(s.port, DEFAULT_PORT);
    }

    #[test]
    fn an_ipv6_host_is_read_from_its_brackets() {
        let s = parse("postgresql://recon@[::1]:5433/ledger?sslmode=disable").unwrap();
        assert_eq!(s.host, "::1");
        assert_eq!(s.port, 5433);
        assert_eq!(s.endpoint(), "[::1]:5433");
    }

    #[test]
    fn every_mode_and_a_root_file_are_read() {
        for (text, mode) in [
            ("disable", SslMode::Disable),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let s = parse(&format!("postgresql://u@h/d?sslmode={text}")).unwrap();
            assert_eq!(s.sslmode, mode);
        }
        let s =
            parse("postgresql://u@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(s.roots, Roots::File(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            s.to_string(),
            "postgresql://u@h:5432/d?sslmode=verify-full&sslrootcert=/etc/ca.pem"
        );
        let s = parse("postgresql://u@h/d?sslrootcert=system").unwrap();
        assert_eq!(s.roots, Roots::System);
    }

    #[test]
    fn names_are_percent_decoded() {
        let s = parse("postgresql://recon%40corp@h/my%20db?sslmode=disable").unwrap();
        assert_eq!(s.user, "recon@corp");
        assert_eq!(s.dbname, "my db");
    }

    #[test]
    fn prefer_and_allow_are_refused_for_falling_back_to_plain_text() {
        for mode in ["prefer", "allow"] {
            let e = parse(&format!("postgresql://u@h/d?sslmode={mode}")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("[database] url: sslmode="), "{msg}");
            assert!(msg.contains("unencrypted"), "{msg}");
        }
    }

    #[test]
    fn a_root_file_with_a_mode_that_verifies_nothing_is_refused() {
        let e = parse("postgresql://u@h/d?sslmode=require&sslrootcert=/ca.pem").unwrap_err();
        assert_eq!(
            e,
            SettingsError::RootsUnused {
                key: KEY.into(),
                mode: "require"
            }
        );
    }

    #[test]
    fn missing_parts_are_named() {
        for (url, part) in [
            ("postgresql://h/d", "user name"),
            ("postgresql://u@/d", "host"),
            ("postgresql://u@h", "database name"),
            ("postgresql://u@h:5432/", "database name"),
        ] {
            assert_eq!(
                parse(url).unwrap_err(),
                SettingsError::Missing {
                    key: KEY.into(),
                    part
                },
                "{url}"
            );
        }
    }

    #[test]
    fn other_shapes_are_refused_with_the_key_named() {
        for url in [
            "mysql://u@h/d",
            "postgresql://u@h:0/d",
            "postgresql://u@h:99999/d",
            "postgresql://u@h1,h2/d",
            "postgresql://u@%2Fvar%2Frun%2Fpostgresql/d",
            "postgresql://u@h/d?connect_timeout=3",
            "postgresql://u@h/d?sslmode=bogus",
            "postgresql://u@h/d#x",
            "postgresql://u@h/d/e",
            "postgresql://u@h/d?sslrootcert=",
        ] {
            let msg = parse(url).unwrap_err().to_string();
            assert!(msg.starts_with("[database] url: "), "{url}: {msg}");
        }
        let msg = parse("postgresql://u@h/d?connect_timeout=3")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("connect_timeout is not supported"), "{msg}");
    }

    #[test]
    fn a_url_with_a_password_is_refused() {
        for url in [
            "postgresql://recon:hunter2@db/ledger",
            "postgresql://recon:@db/ledger",
            "postgresql://recon:hun@ter2@db/ledger",
            "postgresql://recon@db/ledger?password=hunter2",
        ] {
            assert_eq!(
                parse(url).unwrap_err(),
                SettingsError::PasswordInUrl { key: KEY.into() },
                "{url}"
            );
        }
    }

    #[test]
    fn an_empty_password_is_refused() {
        let e =
            Settings::parse(KEY, "postgresql://u@h/d", Some(SecretString::from(""))).unwrap_err();
        assert_eq!(e, SettingsError::EmptyPassword { key: KEY.into() });
    }

    /// Every way a password could be typed into the URL, or handed over, and every
    /// error and rendering that follows: the password's text appears in none of them.
    #[test]
    fn no_error_or_rendering_ever_shows_the_password() {
        const PW: &str = "Sup3rS3cretPw";
        // (url, whether the password is where `redacted` looks for one: the user
        // part, the port's place, a `password=` parameter)
        let urls = [
            (format!("postgresql://recon:{PW}@db:5432/ledger"), true),
            (
                format!("postgresql://recon:{PW}@db/ledger?sslmode=disable"),
                true,
            ),
            (format!("postgresql://recon:{PW}"), true),
            (format!("postgresql://recon:a/{PW}@db/ledger"), true),
            (format!("postgresql://recon:a?{PW}@db/ledger"), true),
            (format!("postgresql://recon:a#{PW}@db/ledger"), true),
            (format!("postgresql://recon:{PW}@@db/ledger"), true),
            (format!("postgresql://recon@db:{PW}/ledger"), true),
            (format!("postgresql://recon@db/ledger?password={PW}"), true),
            (format!("recon:{PW}@db/ledger"), true),
            (format!("postgres:/recon:{PW}@db/ledger"), true),
            (format!("postgresql://{PW}@db:notaport/ledger"), false),
            (format!("postgresql://recon@db/ledger?{PW}"), false),
            (format!("postgresql://recon@db/ledger?{PW}=1"), false),
            (format!("postgresql://recon@db/ledger?sslmode={PW}"), false),
            (
                format!("postgresql://recon@db/ledger?sslmode=disable&passfile={PW}"),
                false,
            ),
            (format!("postgresql://recon@db/le%ZZ{PW}"), false),
            (format!("postgresql://recon@db/{PW}@x"), false),
        ];
        for (url, redactable) in &urls {
            if *redactable {
                let shown = redacted(url);
                assert!(!shown.contains(PW), "redacted {url}: {shown}");
            }
            match Settings::parse(KEY, url, None) {
                Ok(s) => panic!("{url} was accepted: {s}"),
                Err(e) => {
                    for text in [e.to_string(), format!("{e:?}")] {
                        assert!(!text.contains(PW), "{url}: {text}");
                        assert!(text.contains(KEY), "{url}: {text}");
                    }
                }
            }
        }
        let s = Settings::parse(
            KEY,
            "postgresql://recon@db/ledger?sslmode=verify-full&sslrootcert=/ca.pem",
            Some(SecretString::from(PW)),
        )
        .unwrap();
        assert_eq!(s.password().unwrap().expose_secret(), PW);
        for text in [s.to_string(), format!("{s:?}"), s.target(), s.endpoint()] {
            assert!(!text.contains(PW), "{text}");
        }
        assert!(format!("{s:?}").contains("<withheld>"));
    }

    #[test]
    fn redacting_keeps_everything_but_the_password() {
        assert_eq!(
            redacted("postgresql://recon:pw@db:5432/ledger?sslmode=require&password=pw"),
            "postgresql://recon:***@db:5432/ledger?sslmode=require&password=***"
        );
        assert_eq!(
            redacted("postgresql://recon@db/ledger"),
            "postgresql://recon@db/ledger"
        );
    }
}
