//! Errors: one [`Error`] for everything an operation can report, and [`ApiError`] for
//! what the server said.
//!
//! Every error body shape the Waves API is known to send (API.md §3.6, §4.1, §4.3, §7,
//! §8.2, §8.3) is parsed into the same [`ApiError`], which keeps the evidence: status,
//! code, message, request id, `Retry-After` and a bounded copy of the raw body. Nothing
//! here can hold the API key: the key never enters a request the core parses, and
//! error messages are built from server bodies and user-supplied field values only.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// A boxed error from a transport (hyper, ureq, tungstenite, an I/O error …).
///
/// Boxed so that a major version of a transport library is never a breaking change
/// of this crate's error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// At most this many bytes of an error body are kept in [`ApiError::raw_body`].
pub const MAX_ERROR_BODY: usize = 4096;

/// Everything that can go wrong between building a request and handing back its result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request was refused locally, before anything was sent.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] Box<ApiError>),
    /// The configuration is unusable (bad base URL, missing key, TLS roots …).
    #[error("configuration error: {0}")]
    Config(Cow<'static, str>),
    /// The server answered with a success status, but the body is not what the API
    /// documents (not JSON, missing fields, truncated stream …).
    #[error("could not decode the {what}: {message}")]
    Decode {
        /// What was being decoded, e.g. "transcription response".
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// The transport failed: connection refused, TLS failure, reset, I/O error.
    #[error("{}: {source}", if *.request_sent { "the connection failed after the request was sent" } else { "could not send the request" })]
    Transport {
        /// Whether any part of the request may have reached the server. A request that
        /// was not sent is always safe to retry.
        request_sent: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The server reported an error inside a stream (an SSE error frame, a WebSocket
    /// `error` message) or the stream broke its protocol (ended before its terminal
    /// frame, sent data that is not what the API documents).
    #[error("stream error{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Stream {
        /// The server's code, when it sent one (e.g. `LANGUAGE_NOT_ENABLED_IN_REGION`).
        code: Option<String>,
        /// What happened.
        message: String,
    },
    /// A response body was larger than the operation allows ([`BodyLimits`]): nothing
    /// more of it was read, so a hostile or broken server cannot fill the memory.
    ///
    /// [`BodyLimits`]: crate::options::BodyLimits
    #[error("the {what} is larger than the limit of {limit} bytes; {alternative}")]
    BodyLimit {
        /// What was being read, e.g. "synthesized audio".
        what: &'static str,
        /// The limit that was hit, in bytes.
        limit: u64,
        /// What to do instead (a streaming call, or a larger limit).
        alternative: &'static str,
    },
    /// The account's limits kept outside this process (a fleet's Redis) could not be
    /// used: nothing was sent to the API, and no limit was taken blindly.
    #[error("the account's limits at {backend} could not be used: {message}; {remedy}")]
    Limits {
        /// Where the limits live, e.g. `redis://127.0.0.1:6379/0` (never a password).
        backend: String,
        /// What went wrong.
        message: String,
        /// What to do about it.
        remedy: Cow<'static, str>,
    },
    /// A phase of the exchange took longer than its configured limit.
    #[error("timed out: {phase} took longer than {limit:?}")]
    Timeout {
        /// Which phase ran out of time.
        phase: TimeoutPhase,
        /// The limit that was exceeded.
        limit: Duration,
    },
}

/// The phases of an exchange that have their own time limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Opening the connection: TCP and TLS, and for a WebSocket the whole upgrade.
    Connect,
    /// From the end of the request to the complete response head.
    ResponseHead,
    /// Silence between two reads of the connection while an answer is due (the body,
    /// or the audio and transcripts of a live session), or a write that stalled.
    Idle,
    /// The whole call, retries and their waits included, to the last byte.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::ResponseHead => "waiting for the response head",
            TimeoutPhase::Idle => "waiting for the server's next bytes (or a stalled write)",
            TimeoutPhase::Total => "the whole call",
        })
    }
}

impl Error {
    /// A decoding error.
    pub(crate) fn decode(what: &'static str, message: impl fmt::Display) -> Self {
        Error::Decode {
            what,
            message: message.to_string(),
        }
    }

    /// A transport error, for the transport crates.
    pub fn transport(request_sent: bool, source: impl Into<BoxError>) -> Self {
        Error::Transport {
            request_sent,
            source: source.into(),
        }
    }

    /// The server's error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The validation failure, if the request was refused locally.
    pub fn validation(&self) -> Option<&ValidationError> {
        match self {
            Error::Validation(e) => Some(e),
            _ => None,
        }
    }

    /// The key was missing, rejected (401) or lacks access (403).
    pub fn is_auth(&self) -> bool {
        self.api().is_some_and(ApiError::is_auth)
    }

    /// The server refused for rate or concurrency (429).
    pub fn is_rate_limited(&self) -> bool {
        self.api().is_some_and(ApiError::is_rate_limited)
    }

    /// A phase of the call ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// A response body was larger than the operation allows.
    pub fn is_body_limit(&self) -> bool {
        matches!(self, Error::BodyLimit { .. })
    }

    /// Trying the same request again may succeed: a momentary status (408, 429 that is
    /// not a plan refusal, 500, 502, 503, 504), or a failure before the request was sent.
    /// The rules are those of [`crate::retry`].
    pub fn is_retryable(&self) -> bool {
        crate::retry::is_retryable(self)
    }
}

/// An [`Error`] as an [`std::io::Error`] that carries it, for `Read`/`AsyncRead` views of
/// audio streams: a timeout is `TimedOut`, a stream that ended before its terminal frame
/// is `UnexpectedEof`, anything else `Other`.
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Timeout { .. } => std::io::ErrorKind::TimedOut,
            Error::Stream { .. } => std::io::ErrorKind::UnexpectedEof,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(Box::new(e))
    }
}

/// A request refused locally: names the field, the value and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {value}; {allowed}")]
pub struct ValidationError {
    field: Cow<'static, str>,
    value: String,
    allowed: Cow<'static, str>,
}

impl ValidationError {
    /// A new validation error. The value is quoted and shortened to 80 characters.
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        value: impl fmt::Debug,
        allowed: impl Into<Cow<'static, str>>,
    ) -> Self {
        let mut value = format!("{value:?}");
        if value.chars().count() > 80 {
            value = value.chars().take(77).collect::<String>() + "...";
        }
        ValidationError {
            field: field.into(),
            value,
            allowed: allowed.into(),
        }
    }

    /// The JSON field or query parameter that is wrong, e.g. `sample_rate`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rejected value, as written (shortened when long).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What would have been accepted.
    pub fn allowed(&self) -> &str {
        &self.allowed
    }
}

/// What kind of refusal an [`ApiError`] is, derived from the status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// 400: the server rejected the request's content.
    InvalidRequest,
    /// 401: the key is missing or invalid.
    Unauthorized,
    /// 403: the key is valid but lacks access (plan, workspace, product scope, limit).
    Forbidden,
    /// 404: no such route (removed surfaces answer 404 too).
    NotFound,
    /// 410 `MODEL_DEPRECATED`: a retired model route.
    ModelDeprecated {
        /// Where the server says to go instead, when it says.
        recommended_endpoint: Option<String>,
    },
    /// 413: the upload is larger than the server accepts (250 MB for STT).
    PayloadTooLarge,
    /// 429: too many concurrent or per-minute requests.
    RateLimited,
    /// 5xx: the server failed.
    Server,
    /// Any other status.
    Other,
}

/// One issue of a zod-style validation body (`{"error":[{code, path, message, …}]}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationIssue {
    /// The zod code, e.g. `invalid_enum_value`, `custom`, `invalid_type`.
    pub code: Option<String>,
    /// The JSON path, joined with `.`, e.g. `output_format` or `items.0.word`.
    pub path: String,
    /// The server's message.
    pub message: String,
    /// The allowed values, for `invalid_enum_value`.
    pub options: Vec<String>,
}

/// The `Retry-After` header of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Delay(Duration),
    /// `Retry-After: <HTTP-date>`.
    At(SystemTime),
}

impl RetryAfter {
    /// Parses the header value; `None` when it is neither form.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(RetryAfter::Delay(Duration::from_secs(secs)));
        }
        httpdate::parse_http_date(value).ok().map(RetryAfter::At)
    }

    /// How long to wait, measured from `now` (a date in the past means no wait).
    pub fn delay_from(&self, now: SystemTime) -> Duration {
        match *self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(t) => t.duration_since(now).unwrap_or(Duration::ZERO),
        }
    }
}

/// An error status from the server, with everything it said.
#[derive(Clone)]
pub struct ApiError {
    status: StatusCode,
    kind: ApiErrorKind,
    code: Option<String>,
    message: String,
    issues: Vec<ValidationIssue>,
    request_id: Option<String>,
    retry_after: Option<RetryAfter>,
    raw_body: Bytes,
    body_truncated: bool,
}

impl ApiError {
    /// Parses an error response: status, headers and body, whatever the body's shape.
    pub fn from_parts(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<Value>(body).ok();
        let mut code = None;
        let mut message = None;
        let mut issues = Vec::new();
        let mut request_id = None;
        let mut recommended_endpoint = None;
        // §7: `{"error":"Invalid request body","details":[issue…]}`.
        let mut details = Vec::new();

        if let Some(Value::Object(obj)) = &parsed {
            let str_field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
            request_id = str_field("request_id");
            recommended_endpoint = str_field("recommended_endpoint");
            // `error_code` is the explicit machine code (§4.3, §6.1, §8.3).
            code = str_field("error_code");
            match obj.get("error") {
                // zod issue array (§3.6).
                Some(Value::Array(list)) => issues = list.iter().filter_map(parse_issue).collect(),
                Some(Value::String(e)) => {
                    // `{"error":"InvalidRequest","message":…}`: an identifier-like `error`
                    // is a code; a sentence is the message.
                    if obj.contains_key("message") && !e.contains(' ') {
                        code.get_or_insert_with(|| e.clone());
                    } else {
                        message = Some(e.clone());
                    }
                }
                _ => {}
            }
            if let Some(Value::Array(list)) = obj.get("details") {
                details = list.iter().filter_map(parse_issue).collect();
            }
            if let Some(m) = str_field("message") {
                message = Some(match (message.take(), str_field("errors")) {
                    (Some(e), _) => format!("{e}: {m}"),
                    // Legacy STT: `{"errors":"<detail>","status":"error","message":"Error handling audio data"}`.
                    (None, Some(detail)) => format!("{m}: {detail}"),
                    (None, None) => m,
                });
            } else if let Some(detail) = str_field("errors") {
                message.get_or_insert(detail);
            }
        }
        if message.is_none() && !issues.is_empty() {
            message = Some(join_issues(&issues));
            if code.is_none() && issues.len() == 1 {
                code = issues[0].code.clone();
            }
        }
        if !details.is_empty() {
            // The summary alone ("Invalid request body") does not say what is wrong.
            let joined = join_issues(&details);
            message = Some(match message.take() {
                Some(m) => format!("{m}: {joined}"),
                None => joined,
            });
            issues.extend(details);
        }
        let message = message.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            let text = text.trim();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned()
            } else {
                text.to_owned()
            }
        });
        let message = bounded(message, MAX_MESSAGE_CHARS);
        if request_id.is_none() {
            request_id = header_str(headers, "x-request-id");
        }
        let retry_after = header_str(headers, "retry-after").and_then(|v| RetryAfter::parse(&v));
        let kind = match status.as_u16() {
            400 => ApiErrorKind::InvalidRequest,
            401 => ApiErrorKind::Unauthorized,
            403 => ApiErrorKind::Forbidden,
            404 => ApiErrorKind::NotFound,
            410 => ApiErrorKind::ModelDeprecated {
                recommended_endpoint,
            },
            413 => ApiErrorKind::PayloadTooLarge,
            429 => ApiErrorKind::RateLimited,
            500..=599 => ApiErrorKind::Server,
            _ => ApiErrorKind::Other,
        };
        let keep = body.len().min(MAX_ERROR_BODY);
        ApiError {
            status,
            kind,
            code,
            message,
            issues,
            request_id,
            retry_after,
            raw_body: Bytes::copy_from_slice(&body[..keep]),
            body_truncated: body.len() > keep,
        }
    }

    /// Parses an error from a whole response.
    pub fn from_response(response: &http::Response<Bytes>) -> Self {
        Self::from_parts(response.status(), response.headers(), response.body())
    }

    /// The same error with `text` applied to every string the server wrote and `body`
    /// to the raw body (for [`Redact`](crate::redact::Redact)).
    pub(crate) fn map_text(
        mut self,
        text: impl Fn(String) -> String,
        body: impl Fn(Bytes) -> Bytes,
    ) -> ApiError {
        self.message = text(self.message);
        self.code = self.code.map(&text);
        self.request_id = self.request_id.map(&text);
        for issue in &mut self.issues {
            issue.message = text(std::mem::take(&mut issue.message));
            issue.path = text(std::mem::take(&mut issue.path));
        }
        if let ApiErrorKind::ModelDeprecated {
            recommended_endpoint: Some(endpoint),
        } = &mut self.kind
        {
            *endpoint = text(std::mem::take(endpoint));
        }
        self.raw_body = body(self.raw_body);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> &ApiErrorKind {
        &self.kind
    }

    /// The machine-readable code, when the body had one (`error_code`, an identifier
    /// in `error`, or the code of a single validation issue).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The server's message (for validation bodies, the issues joined).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The individual issues of a validation body.
    pub fn issues(&self) -> &[ValidationIssue] {
        &self.issues
    }

    /// The request id, from the body or the `x-request-id` header. Quote it to support.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The `Retry-After` header, if the server sent one.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        self.retry_after
    }

    /// The first [`MAX_ERROR_BODY`] bytes of the body, as received.
    pub fn raw_body(&self) -> &[u8] {
        &self.raw_body
    }

    /// Whether the body was longer than [`raw_body`](Self::raw_body).
    pub fn body_truncated(&self) -> bool {
        self.body_truncated
    }

    /// For a retired route (410), the endpoint the server recommends instead.
    pub fn recommended_endpoint(&self) -> Option<&str> {
        match &self.kind {
            ApiErrorKind::ModelDeprecated {
                recommended_endpoint,
            } => recommended_endpoint.as_deref(),
            _ => None,
        }
    }

    /// 401 or 403: the key is missing, invalid, or lacks access.
    pub fn is_auth(&self) -> bool {
        matches!(self.status.as_u16(), 401 | 403)
    }

    /// 429: too many requests at once, or per minute.
    pub fn is_rate_limited(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS
    }

    /// The same request may succeed later: 408, 429, 500, 502, 503, 504.
    pub fn is_retryable(&self) -> bool {
        matches!(self.status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
    }

    /// What the user can do about this error, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.status.as_u16() {
            401 => {
                "the API key is missing or was rejected: set SMALLEST_API_KEY to a key from the \
                 Smallest AI console (API Keys page)"
            }
            403 => {
                "the API key is valid but lacks access to this resource: check the key's \
                 workspace, its product scope and the plan's entitlements and usage limits"
            }
            429 => {
                "rate limited: the account allows a limited number of concurrent TTS requests \
                 (1 by default) — wait for the running request to finish or raise the account's \
                 concurrency; STT allows a number of requests per minute per model — honour \
                 Retry-After"
            }
            413 => "the upload is too large: the API accepts files of at most 250 MB",
            410 => "this route was retired: use the current endpoint the server names",
            500..=599 => "the server failed: retry once, and quote the request id to support",
            _ => return None,
        })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "API error {}", self.status.as_u16())?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(endpoint) = self.recommended_endpoint() {
            write!(f, " [recommended endpoint: {endpoint}]")?;
        }
        if let Some(hint) = self.hint() {
            write!(f, " — {hint}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status)
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("issues", &self.issues)
            .field("request_id", &self.request_id)
            .field("retry_after", &self.retry_after)
            .field("raw_body", &String::from_utf8_lossy(&self.raw_body))
            .finish()
    }
}

impl std::error::Error for ApiError {}

/// `path: message` of each issue, joined with `; `.
fn join_issues(issues: &[ValidationIssue]) -> String {
    issues
        .iter()
        .map(|i| {
            if i.path.is_empty() {
                i.message.clone()
            } else {
                format!("{}: {}", i.path, i.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// At most this many characters of a server message are kept in [`ApiError::message`].
const MAX_MESSAGE_CHARS: usize = 1000;

fn bounded(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text,
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

fn parse_issue(v: &Value) -> Option<ValidationIssue> {
    let obj = v.as_object()?;
    let path = match obj.get("path") {
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("."),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Some(ValidationIssue {
        code: obj.get("code").and_then(Value::as_str).map(str::to_owned),
        path,
        message: obj
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        options: match obj.get("options") {
            Some(Value::Array(o)) => o
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect(),
            _ => Vec::new(),
        },
    })
}

pub(crate) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
