//! How the client talks to the provider: one loop that authenticates, paces and sends
//! a request, retries it when it is a read, and turns the answer into a success body or
//! an [`ApiError`]; and the envelope every answer comes in (§3).

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::{AUTH_HEADER, ApiError, CODE_AUTH, Client, PATH_AUTH};

/// The longest backoff between two attempts of a request.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Assumed token lifetime when `expires_in` is absent (§13.1).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How many characters of a body an error may quote.
const SNIPPET: usize = 200;
/// What errors say instead of quoting an authentication answer.
const WITHHELD: &str = "<body of the authentication answer withheld>";

pub(super) struct Token {
    value: SecretString,
    refresh_at: Instant,
    /// Which of this client's logins gave it (from 1): a request refused with a token
    /// renews it only while it is still this one (§13.1).
    generation: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Read,
    Write,
}

/// What one HTTP exchange produced, before retry decisions.
enum Outcome {
    /// A success envelope; the body as received, parsed by the endpoint that asked.
    Ok(Answer),
    /// The envelope said error with this code.
    Code(String, String),
    /// Retry a read (after `wait` if given); a write's outcome is unknown.
    Transient(String, Option<Duration>),
    /// The request never left this machine (connect refused, DNS): safe to retry even a write.
    NotSent(String),
    /// The provider said it did not process the request (HTTP 429, or 503 with
    /// `Retry-After`): a read is retried after `wait`; a write was not applied.
    NotProcessed(String, Option<Duration>),
    Fatal(ApiError),
}

impl Client {
    pub(super) async fn get(
        &self,
        path: &str,
        params: &[(&'static str, String)],
    ) -> Result<Answer, ApiError> {
        self.send(path, Kind::Read, |http, url| http.get(url).query(params))
            .await
    }

    /// The base URL with `path` (which starts with `/`, segments already encoded) appended
    /// to its path. The base was parsed once, with the configuration: only the path is
    /// parsed per request.
    pub(super) fn url(&self, path: &str) -> reqwest::Url {
        let base = self.cfg.base_url.as_url();
        let mut url = base.clone();
        let joined = format!("{}{path}", base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    /// One logical call: token, pacing, retries (reads only), envelope decoding, and one
    /// re-authentication on `authorization_incorrect`, shared with the other requests
    /// refused with the same token.
    pub(super) async fn send<F>(&self, path: &str, kind: Kind, build: F) -> Result<Answer, ApiError>
    where
        F: Fn(&reqwest::Client, reqwest::Url) -> reqwest::RequestBuilder,
    {
        let url = self.url(path);
        let mut attempt = 0u32;
        let mut reauthed = false;
        loop {
            attempt += 1;
            self.trusted(path)?;
            self.not_stopped(path)?;
            let (token, generation) = self.token(path).await?;
            self.pace(path).await?;
            let remaining = self.remaining(path)?;
            // Checked last, right before the request: a request paced or re-authenticated
            // while the stop came is not sent either.
            self.not_stopped(path)?;
            let req = build(&self.http, url.clone())
                .header(AUTH_HEADER, token.expose_secret())
                .timeout(self.cfg.timeout.min(remaining));
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let exchange = async {
                match req.send().await {
                    Ok(resp) => self.decode(path, resp).await,
                    Err(e) => self.failed(path, &e),
                }
            };
            // Once a stop is requested, a read in flight is abandoned at once, and a
            // write gets `CALL_GRACE` to answer: its intent is recorded, so a write
            // abandoned after that is settled by the next run, as after a kill.
            let abandon = async {
                match kind {
                    Kind::Read => self.stop.wait().await,
                    Kind::Write => self.stop.grace_over(crate::stop::CALL_GRACE).await,
                }
            };
            let outcome = tokio::select! {
                outcome = exchange => outcome,
                () = abandon => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::Abandoned {
                        endpoint: path.into(),
                        why: self.stop.requested().unwrap_or("stop requested").to_owned(),
                    });
                }
            };
            let (detail, wait) = match outcome {
                Outcome::Ok(v) => return Ok(v),
                Outcome::Code(code, _) if code == CODE_AUTH && !reauthed => {
                    // §13.1: the token expired: re-authenticate once, repeat once. Safe for
                    // writes too: an unauthenticated call was not executed.
                    reauthed = true;
                    attempt -= 1;
                    self.renew(path, generation).await?;
                    continue;
                }
                Outcome::Code(code, _) if code == CODE_AUTH => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::Auth {
                        endpoint: path.into(),
                        code,
                    });
                }
                Outcome::Code(code, body) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::Provider {
                        endpoint: path.into(),
                        code,
                        body,
                    });
                }
                Outcome::Fatal(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                Outcome::Transient(detail, _) if kind == Kind::Write => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::OutcomeUnknown {
                        endpoint: path.into(),
                        detail,
                    });
                }
                Outcome::NotProcessed(detail, wait) if kind == Kind::Write => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::NotProcessed {
                        endpoint: path.into(),
                        detail,
                        wait: wait.unwrap_or_else(|| self.backoff(attempt)),
                    });
                }
                Outcome::Transient(detail, wait) | Outcome::NotProcessed(detail, wait) => {
                    (detail, wait)
                }
                Outcome::NotSent(detail) => (detail, None),
            };
            self.before_retry(path, attempt, detail, wait).await?;
        }
    }

    /// After a failed attempt of a read: give up when the attempts or the deadline are
    /// spent, otherwise wait (`Retry-After`, or capped exponential backoff with jitter).
    async fn before_retry(
        &self,
        path: &str,
        attempt: u32,
        detail: String,
        wait: Option<Duration>,
    ) -> Result<(), ApiError> {
        if attempt >= self.cfg.max_attempts {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::Unavailable {
                endpoint: path.into(),
                attempts: attempt,
                detail,
            });
        }
        let backoff = wait.unwrap_or_else(|| self.backoff(attempt));
        if backoff >= self.remaining(path)? {
            return Err(ApiError::Deadline {
                endpoint: path.into(),
            });
        }
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(endpoint = path, attempt, ?backoff, %detail, "retrying");
        self.unless_stopped(path, tokio::time::sleep(backoff)).await
    }

    /// Fails with [`ApiError::Stopped`] once a stop is requested: no request starts
    /// after it.
    fn not_stopped(&self, endpoint: &str) -> Result<(), ApiError> {
        match self.stop.requested() {
            Some(why) => Err(ApiError::Stopped {
                endpoint: endpoint.into(),
                why: why.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Waits for `wait` (a backoff, a pacing slot), or fails with [`ApiError::Stopped`]
    /// as soon as a stop is requested: a stop never waits for a wait.
    async fn unless_stopped(
        &self,
        endpoint: &str,
        wait: impl std::future::Future<Output = ()>,
    ) -> Result<(), ApiError> {
        tokio::select! {
            () = wait => self.not_stopped(endpoint),
            () = self.stop.wait() => self.not_stopped(endpoint),
        }
    }

    /// HTTP status + body → outcome. Success is decided from the body, never from HTTP 200
    /// alone (§3.3).
    async fn decode(&self, path: &str, resp: reqwest::Response) -> Outcome {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|h| h.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|h| shown_location(resp.url(), h.as_bytes()))
                .unwrap_or_else(|| "nowhere (no Location header)".to_owned());
            return Outcome::Fatal(ApiError::Redirected {
                endpoint: path.into(),
                status: status.as_u16(),
                location,
            });
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Outcome::Transient(describe_reqwest(&e), None),
        };
        let code = status.as_u16();
        // An authentication answer may echo the secret or carry a token under a name we
        // do not know: nothing of its body is ever quoted, only its status and shape.
        let auth = path == PATH_AUTH;
        let quote_bytes = |b: &[u8]| {
            if auth {
                WITHHELD.to_owned()
            } else {
                snippet_bytes(b)
            }
        };
        let quote_json = |v: &Value| {
            if auth {
                WITHHELD.to_owned()
            } else {
                snippet(&v.to_string())
            }
        };
        if code == 429 {
            return Outcome::NotProcessed("HTTP 429 Too Many Requests".into(), retry_after);
        }
        // A 503 that says when to come back is the provider refusing work it has not
        // started, as a 429 is; any other 5xx may come after the work was done.
        if code == 503 && retry_after.is_some() {
            return Outcome::NotProcessed(format!("HTTP 503: {}", quote_bytes(&body)), retry_after);
        }
        if status.is_server_error() {
            return Outcome::Transient(format!("HTTP {code}: {}", quote_bytes(&body)), retry_after);
        }
        // The common case, a success envelope, is recognised without building a tree of
        // the whole body: a list page is parsed once, item by item, by its endpoint.
        if status.is_success()
            && let Ok(light) = serde_json::from_slice::<Envelope<'_>>(&body)
            && light.status_text().as_deref().is_some_and(success_word)
        {
            let parts = light.parts(&body);
            return Outcome::Ok(Answer {
                body: Vec::from(body),
                parts: Some(parts),
            });
        }
        let parsed: Result<Value, _> = serde_json::from_slice(&body);
        if status.is_client_error() {
            let message = match &parsed {
                Ok(_) if auth => WITHHELD.to_owned(),
                Ok(v) => laravel_message(v)
                    .or_else(|| error_code(v))
                    .unwrap_or_else(|| quote_json(v)),
                Err(_) => quote_bytes(&body),
            };
            return Outcome::Fatal(ApiError::Rejected {
                endpoint: path.into(),
                status: code,
                message,
            });
        }
        let v = match parsed {
            Ok(v) => v,
            // An HTML error page or a cut body with HTTP 200: a read may try again.
            Err(e) => {
                let why = if auth {
                    "not JSON".to_owned()
                } else {
                    format!("not JSON ({e})")
                };
                return Outcome::Transient(format!("{why}: {}", quote_bytes(&body)), None);
            }
        };
        if is_success(&v) {
            return Outcome::Ok(Answer {
                body: Vec::from(body),
                parts: None,
            });
        }
        if let Some(code) = error_code(&v) {
            // A code is a short identifier; anything else (free text that might echo a
            // value) is not repeated for an authentication answer.
            let is_code =
                code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let code = if auth && !is_code {
                "provider_error".to_owned()
            } else {
                code
            };
            return Outcome::Code(code, if auth { String::new() } else { quote_json(&v) });
        }
        if let Some(msg) = laravel_message(&v) {
            return Outcome::Fatal(ApiError::Rejected {
                endpoint: path.into(),
                status: code,
                message: if auth { WITHHELD.to_owned() } else { msg },
            });
        }
        Outcome::Fatal(ApiError::Malformed {
            endpoint: path.into(),
            why: "neither success nor error envelope".into(),
            snippet: quote_json(&v),
        })
    }

    /// A valid token and its generation, authenticating when there is none or it is
    /// about to expire.
    async fn token(&self, endpoint: &str) -> Result<(SecretString, u64), ApiError> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok((t.value.clone(), t.generation));
        }
        self.login(endpoint, &mut guard).await
    }

    /// The token of `refused` was refused. Several requests in flight are refused with
    /// the same token, and a second login can end the token the first one got (§13.1):
    /// only a request that finds that token still current logs in; the others find the
    /// new one and repeat with it.
    async fn renew(&self, endpoint: &str, refused: u64) -> Result<(), ApiError> {
        let mut guard = self.token.lock().await;
        if guard.as_ref().is_some_and(|t| t.generation != refused) {
            tracing::info!(
                endpoint,
                "token rejected; already renewed by another request, repeating once"
            );
            return Ok(());
        }
        tracing::info!(endpoint, "token rejected; re-authenticating once");
        self.login(endpoint, &mut guard).await.map(|_| ())
    }

    /// Authenticates and keeps the new token, under the token lock: every request that
    /// waited for it uses this one token. A failed login keeps the old one, so that
    /// generations only grow.
    async fn login(
        &self,
        endpoint: &str,
        slot: &mut Option<Token>,
    ) -> Result<(SecretString, u64), ApiError> {
        // Asked again by each request that waited for this lock.
        self.trusted(endpoint)?;
        let mut t = self.authenticate(endpoint).await?;
        t.generation = slot.as_ref().map_or(0, |old| old.generation) + 1;
        let got = (t.value.clone(), t.generation);
        *slot = Some(t);
        Ok(got)
    }

    async fn authenticate(&self, endpoint: &str) -> Result<Token, ApiError> {
        let url = self.url(PATH_AUTH);
        let body = serde_json::json!({
            "api_key": self.cfg.api_key,
            "api_secret": self.cfg.api_secret.expose_secret(),
        });
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pace(PATH_AUTH).await?;
            let remaining = self.remaining(PATH_AUTH)?;
            self.not_stopped(endpoint)?;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let exchange = async {
                match self
                    .http
                    .post(url.clone())
                    .json(&body)
                    .timeout(self.cfg.timeout.min(remaining))
                    .send()
                    .await
                {
                    Ok(resp) => self.decode(PATH_AUTH, resp).await,
                    Err(e) => self.failed(endpoint, &e),
                }
            };
            // A login changes nothing at the provider: abandoned at once on a stop.
            let outcome = tokio::select! {
                outcome = exchange => outcome,
                () = self.stop.wait() => {
                    return Err(ApiError::Stopped {
                        endpoint: endpoint.into(),
                        why: self.stop.requested().unwrap_or("stop requested").to_owned(),
                    });
                }
            };
            let (detail, wait) = match outcome {
                Outcome::Ok(answer) => {
                    return token_from(&json(PATH_AUTH, &answer.body).map_err(|_| {
                        ApiError::Malformed {
                            endpoint: PATH_AUTH.into(),
                            why: "the answer is not JSON".into(),
                            snippet: WITHHELD.into(),
                        }
                    })?);
                }
                Outcome::Code(code, _) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::Auth {
                        endpoint: endpoint.into(),
                        code,
                    });
                }
                Outcome::Fatal(e) => return Err(e),
                Outcome::Transient(d, w) | Outcome::NotProcessed(d, w) => (d, w),
                Outcome::NotSent(d) => (d, None),
            };
            self.before_retry(PATH_AUTH, attempt, detail, wait).await?;
        }
    }

    /// A request that got no answer: a certificate the verifier refused is permanent (it
    /// fails the same way until someone acts, and retrying only repeats the error), and
    /// is kept so that no later request tries again; a connection that was never made
    /// may be retried even for a write; anything else may have reached the provider.
    fn failed(&self, endpoint: &str, e: &reqwest::Error) -> Outcome {
        if let Some(cause) = untrusted_certificate(e) {
            *self.untrusted.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause.clone());
            return Outcome::Fatal(ApiError::UntrustedCertificate {
                endpoint: endpoint.to_owned(),
                cause,
            });
        }
        if e.is_connect() {
            Outcome::NotSent(describe_reqwest(e))
        } else {
            Outcome::Transient(describe_reqwest(e), None)
        }
    }

    /// Fails at once when an earlier request met an untrusted certificate.
    fn trusted(&self, endpoint: &str) -> Result<(), ApiError> {
        match self
            .untrusted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(cause) => Err(ApiError::UntrustedCertificate {
                endpoint: endpoint.to_owned(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Client-side rate limit: each request takes the next free slot.
    async fn pace(&self, endpoint: &str) -> Result<(), ApiError> {
        if self.cfg.max_requests_per_second == 0 {
            return self.remaining(endpoint).map(|_| ());
        }
        let interval = Duration::from_secs(1) / self.cfg.max_requests_per_second;
        let slot = {
            let mut next = self.pacer.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        if slot > self.deadline {
            return Err(ApiError::Deadline {
                endpoint: endpoint.into(),
            });
        }
        self.unless_stopped(endpoint, tokio::time::sleep_until(slot))
            .await
    }

    fn remaining(&self, endpoint: &str) -> Result<Duration, ApiError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(ApiError::Deadline {
                endpoint: endpoint.into(),
            });
        }
        Ok(self.deadline - now)
    }

    /// Full jitter: uniform in [0, min(cap, base·2^(attempt-1))].
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = BACKOFF_CAP;
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(cap);
        let r = {
            let mut s = self.jitter.lock().unwrap_or_else(|p| p.into_inner());
            // xorshift64*: jitter needs no cryptographic quality.
            *s ^= *s >> 12;
            *s ^= *s << 25;
            *s ^= *s >> 27;
            s.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
        exp.mul_f64(frac).max(Duration::from_millis(1))
    }
}

pub(super) fn is_success(v: &Value) -> bool {
    v.get("status")
        .and_then(Value::as_str)
        .is_some_and(success_word)
}

/// The three spellings of success (§3.1), in any case.
fn success_word(s: &str) -> bool {
    let s = s.trim();
    s.eq_ignore_ascii_case("ok")
        || s.eq_ignore_ascii_case("success")
        || s.eq_ignore_ascii_case("sucess")
}

/// The envelope of an answer: its `status`, and the list page's items and pagination kept
/// as raw JSON, so each item is parsed once, straight into its record, and stored byte for
/// byte as received. A success answer's envelope is read once, on the way in: the
/// [`Answer`] keeps where its parts sit, so a list page is not read twice.
#[derive(serde::Deserialize)]
pub(super) struct Envelope<'a> {
    /// Raw, so that a `status` of any type still leaves the rest of the envelope readable.
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    pagination: Option<&'a RawValue>,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
}

impl Envelope<'_> {
    /// `status` when it is a string.
    pub(super) fn status_text(&self) -> Option<Cow<'_, str>> {
        self.status
            .and_then(|r| serde_json::from_str::<Cow<'_, str>>(r.get()).ok())
    }

    /// The byte ranges of the parts in `body`, which they were borrowed from.
    pub(super) fn parts(&self, body: &[u8]) -> Parts {
        let span = |v: Option<&RawValue>| {
            v.map(|v| {
                let start = v.get().as_ptr() as usize - body.as_ptr() as usize;
                start..start + v.get().len()
            })
        };
        Parts {
            data: span(self.data),
            pagination: span(self.pagination),
            meta: span(self.meta),
        }
    }
}

/// Where an envelope's parts sit in a body.
#[derive(Debug)]
pub(super) struct Parts {
    data: Option<std::ops::Range<usize>>,
    pagination: Option<std::ops::Range<usize>>,
    meta: Option<std::ops::Range<usize>>,
}

/// A success answer: the body as received and, when its envelope was already read, where
/// the envelope's parts are.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) body: Vec<u8>,
    pub(super) parts: Option<Parts>,
}

/// An envelope's parts as JSON text borrowed from the body.
pub(super) struct PageParts<'a> {
    pub(super) data: Option<&'a str>,
    pub(super) pagination: Option<&'a str>,
    pub(super) meta: Option<&'a str>,
}

impl Answer {
    /// The envelope's parts: from the ranges found on the way in, or read now.
    pub(super) fn page_parts(&self) -> Result<PageParts<'_>, String> {
        let read;
        let parts = match &self.parts {
            Some(parts) => parts,
            None => {
                read = serde_json::from_slice::<Envelope<'_>>(&self.body)
                    .map_err(|e| format!("not a page ({e})"))?
                    .parts(&self.body);
                &read
            }
        };
        // The ranges came from `&str`s borrowed from this very body.
        let text = |r: &Option<std::ops::Range<usize>>| -> Result<Option<&str>, String> {
            r.clone()
                .map(|r| {
                    self.body
                        .get(r)
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .ok_or_else(|| "envelope out of step with its body".to_owned())
                })
                .transpose()
        };
        Ok(PageParts {
            data: text(&parts.data)?,
            pagination: text(&parts.pagination)?,
            meta: text(&parts.meta)?,
        })
    }
}

/// A string or number of a parsed value as text (small answers: accounts, reconcile,
/// authenticate).
pub(super) fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn value_u64(v: &Value) -> Option<u64> {
    value_string(v).and_then(|s| s.trim().parse().ok())
}

/// A body as JSON, for the endpoints whose answers are small.
pub(super) fn json(endpoint: &str, body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Malformed {
        endpoint: endpoint.to_owned(),
        why: format!("not JSON ({e})"),
        snippet: snippet_bytes(body),
    })
}

/// `error`, else `message` — but only when the status says error (§3.2).
pub(super) fn error_code(v: &Value) -> Option<String> {
    let status = v.get("status").and_then(Value::as_str)?;
    if !status.trim().eq_ignore_ascii_case("error") {
        return None;
    }
    v.get("error")
        .and_then(value_string)
        .or_else(|| v.get("message").and_then(value_string))
        .or_else(|| Some("provider_error".to_owned()))
}

/// A Laravel validation body: `{"message": ..., "errors": {field: [...]}}`.
pub(super) fn laravel_message(v: &Value) -> Option<String> {
    let errors = v.get("errors")?.as_object()?;
    let msg = v
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("invalid");
    let fields: Vec<String> = errors
        .iter()
        .map(|(k, e)| {
            let first = e
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{k}: {first}")
        })
        .collect();
    Some(format!("{msg} ({})", fields.join("; ")))
}

pub(super) fn token_from(v: &Value) -> Result<Token, ApiError> {
    // §2.1 defensive order: data.token, token, data (string), access_token.
    let data = v.get("data");
    let token = data
        .and_then(|d| d.get("token"))
        .and_then(Value::as_str)
        .or_else(|| v.get("token").and_then(Value::as_str))
        .or_else(|| data.and_then(Value::as_str))
        .or_else(|| v.get("access_token").and_then(Value::as_str))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Malformed {
            endpoint: PATH_AUTH.into(),
            why: "no token in the answer".into(),
            // The body may hold a token under an unexpected name: never quote it.
            snippet: String::new(),
        })?;
    let ttl = data
        .and_then(|d| d.get("expires_in"))
        .and_then(value_u64)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_TTL);
    // Refresh early: at 90 % of the lifetime, and at least a minute before it ends.
    let early = (ttl / 10).max(Duration::from_secs(60)).min(ttl / 2);
    Ok(Token {
        value: SecretString::from(token.to_owned()),
        refresh_at: Instant::now() + (ttl - early),
        // Numbered by the client when it keeps the token.
        generation: 0,
    })
}

pub(super) fn malformed(endpoint: &str, why: &str, v: &Value) -> ApiError {
    ApiError::Malformed {
        endpoint: endpoint.to_owned(),
        why: why.to_owned(),
        snippet: snippet(&v.to_string()),
    }
}

/// A redirect's target as shown in an error: resolved against the request's URL, with
/// no user, password, query or fragment (they may carry credentials).
fn shown_location(request: &reqwest::Url, header: &[u8]) -> String {
    let text = String::from_utf8_lossy(header);
    match request.join(text.trim()) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "an unreadable Location header".to_owned(),
    }
}

pub(super) fn snippet(s: &str) -> String {
    s.chars().take(SNIPPET).collect()
}

pub(super) fn snippet_bytes(b: &[u8]) -> String {
    snippet(&String::from_utf8_lossy(&b[..b.len().min(SNIPPET * 4)]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why the TLS verifier refused the provider's certificate, when that is what ended the
/// request. rustls's error sits in the source chain inside `io::Error`s (two, nested,
/// with hyper and tokio-rustls), whose `source()` skips the error they wrap, so each
/// `io::Error` is opened as well as followed.
fn untrusted_certificate(e: &reqwest::Error) -> Option<String> {
    fn find(err: &(dyn std::error::Error + 'static), depth: u8) -> Option<String> {
        if depth > 16 {
            return None;
        }
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(c.to_string());
        }
        let wrapped = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| find(inner, depth + 1));
        wrapped.or_else(|| err.source().and_then(|s| find(s, depth + 1)))
    }
    find(e, 0)
}

/// reqwest's error with its source chain, minus the URL's query (no secret lives there,
/// but filters make lines long).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "transport error".to_owned()
    };
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
