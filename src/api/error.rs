//! The client's errors, in the terms a caller acts on: retry later, fix the
//! configuration, or re-read before deciding.

use std::time::Duration;

/// What went wrong, in the terms a caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Worth retrying later (the provider was unavailable, rate-limited us, or timed out),
    /// after this client already retried.
    #[error("{endpoint}: provider unavailable after {attempts} attempt(s): {detail}")]
    Unavailable {
        endpoint: String,
        attempts: u32,
        detail: String,
    },
    /// Credentials rejected even after a fresh token: wrong key/secret, or this machine's
    /// IP is not whitelisted. A configuration problem, not a transient one.
    #[error(
        "{endpoint}: authentication rejected ({code}): check api_key/api_secret and that this machine's IP is whitelisted"
    )]
    Auth { endpoint: String, code: String },
    /// The provider answered with an error code in its envelope.
    #[error("{endpoint}: provider error `{code}`")]
    Provider {
        endpoint: String,
        code: String,
        /// The raw body, cut to a snippet.
        body: String,
    },
    /// An HTTP 4xx (e.g. a Laravel 422 validation body).
    #[error("{endpoint}: HTTP {status}: {message}")]
    Rejected {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// The answer could not be understood.
    #[error("{endpoint}: malformed response ({why}); body starts: {snippet:?}")]
    Malformed {
        endpoint: String,
        why: String,
        snippet: String,
    },
    /// A list kept claiming more pages past the page cap (§13.2).
    #[error(
        "{endpoint}: pagination did not end after {pages} pages (total {total}, per_page {per_page})"
    )]
    Runaway {
        endpoint: String,
        pages: u32,
        total: u64,
        per_page: u32,
    },
    /// A list kept changing while it was read, and no two reads of it agreed (matching
    /// rules §5): what was read is not proven whole.
    #[error(
        "{endpoint}: the list kept changing while it was read and could not be proven whole: {why}"
    )]
    Unproven { endpoint: String, why: String },
    /// A page's own pagination numbers contradict each other or its items (§13.2): the
    /// list cannot be said to have ended there.
    #[error("{endpoint}: the page contradicts itself: {why}")]
    Contradiction { endpoint: String, why: String },
    /// The provider answered with a redirect, which is never followed: a write must not
    /// turn into a read of another address, and credentials must not be sent to one. The
    /// documented API does not redirect, so `base_url` is wrong (most often `http://` for
    /// `https://`, or a missing path).
    #[error(
        "{endpoint}: HTTP {status} redirect to {location}, not followed: the API does not redirect; check base_url"
    )]
    Redirected {
        endpoint: String,
        status: u16,
        /// Where the answer pointed, without its query string or credentials.
        location: String,
    },
    /// A write the provider declined to process (HTTP 429, or 503 with `Retry-After`):
    /// it was not applied. The caller may re-check and send it again after `wait`.
    #[error("{endpoint}: not processed ({detail}); may be sent again after {wait:?}")]
    NotProcessed {
        endpoint: String,
        detail: String,
        wait: Duration,
    },
    /// The provider's TLS certificate did not verify (an unknown issuer, expired, for
    /// another name): permanent until someone changes the trust store or the server, so
    /// nothing is retried. Nothing was sent: the request never left the handshake.
    #[error(
        "the provider's certificate is not trusted: {cause}; see README, Troubleshooting (calling {endpoint})"
    )]
    UntrustedCertificate { endpoint: String, cause: String },
    /// A request asked for after the run was asked to stop (SIGTERM), or a wait (a
    /// backoff, a pacing slot, a login) a stop cut short: it was not sent.
    #[error("{endpoint}: not sent: {why}")]
    Stopped { endpoint: String, why: String },
    /// A request in flight when the run was asked to stop, given up before its answer
    /// came (at once for a read, after [`crate::stop::CALL_GRACE`] for a write): a
    /// write's outcome is unknown, and its intent is left for the next run to settle.
    #[error("{endpoint}: abandoned in flight: {why}")]
    Abandoned { endpoint: String, why: String },
    /// The HTTP client could not be set up (its TLS configuration, say): nothing was
    /// sent.
    #[error("cannot set up the HTTP client: {detail}")]
    ClientSetup { detail: String },
    /// The run's overall deadline passed. No request starts after it, so for a write
    /// this means the call was not made.
    #[error("{endpoint}: run deadline exceeded")]
    Deadline { endpoint: String },
    /// A write whose answer was lost (timeout, reset, 5xx, garbage): it may or may not
    /// have been applied. Re-read before deciding anything.
    #[error("{endpoint}: outcome unknown: {detail}")]
    OutcomeUnknown { endpoint: String, detail: String },
}

impl ApiError {
    /// Whether a later run may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Deadline { .. }
                | Self::OutcomeUnknown { .. }
                | Self::NotProcessed { .. }
        )
    }
    /// The provider's error code, when it answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Provider { code, .. } | Self::Auth { code, .. } => Some(code),
            _ => None,
        }
    }
}
