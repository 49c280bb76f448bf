//! Where the provider's API lives: checked and parsed once, when the configuration is
//! read, and never parsed again.

use std::fmt;

use thiserror::Error;

/// An `http://` or `https://` URL whose path ends without a slash (`.../api`). Its
/// `Debug` and `Display` withhold any user or password the URL carries.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(reqwest::Url);

/// Why a text is not a base URL. The messages never quote the text: a URL may carry
/// credentials.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BaseUrlError {
    #[error("expected an http(s) URL")]
    NotHttp,
    /// The parser's reason (`invalid port number`, ...), which never holds the input.
    #[error("not a valid URL ({reason})")]
    NotAUrl { reason: String },
}

impl BaseUrl {
    /// Accepts `http(s)://host[:port][/path]`; a trailing `/` is dropped.
    pub fn parse(text: &str) -> Result<Self, BaseUrlError> {
        let text = text.trim_end_matches('/');
        if !(text.starts_with("https://") || text.starts_with("http://")) {
            return Err(BaseUrlError::NotHttp);
        }
        reqwest::Url::parse(text)
            .map(Self)
            .map_err(|e| BaseUrlError::NotAUrl {
                reason: e.to_string(),
            })
    }

    pub fn as_url(&self) -> &reqwest::Url {
        &self.0
    }

    /// The URL as written, credentials included: for building requests only, never for
    /// a message.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }
}

impl fmt::Display for BaseUrl {
    /// The URL with any user and password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.username().is_empty() && self.0.password().is_none() {
            return f.write_str(self.as_str());
        }
        let mut shown = self.0.clone();
        // Both setters only fail for URLs that cannot have credentials at all.
        let _ = shown.set_username("***");
        let _ = shown.set_password(None);
        f.write_str(shown.as_str().trim_end_matches('/'))
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_or_https_url_is_kept_without_its_trailing_slash() {
        let u = BaseUrl::parse("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/api");
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/api");
        let u = BaseUrl::parse("https://sandbox.example").unwrap();
        assert_eq!(u.as_str(), "https://sandbox.example");
    }

    #[test]
    fn another_scheme_or_a_broken_url_is_refused_without_quoting_it() {
        assert_eq!(
            BaseUrl::parse("ftp://u:s3cret@h/api"),
            Err(BaseUrlError::NotHttp)
        );
        let e = BaseUrl::parse("http://u:s3cret@h:99999/api").unwrap_err();
        assert!(matches!(e, BaseUrlError::NotAUrl { .. }), "{e:?}");
        assert!(!format!("{e} {e:?}").contains("s3cret"), "{e:?}");
        let e = BaseUrl::parse("not a url with s3cret").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("s3cret"), "{e:?}");
    }

    #[test]
    fn credentials_in_the_url_never_reach_display_or_debug() {
        let u = BaseUrl::parse("https://user:s3cret@api.example/api").unwrap();
        let shown = format!("{u} {u:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("user"),
            "{shown}"
        );
        assert!(shown.contains("https://***@api.example/api"), "{shown}");
        assert_eq!(u.as_str(), "https://user:s3cret@api.example/api");
    }
}
