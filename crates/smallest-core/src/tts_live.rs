//! `WSS /waves/v1/tts/live[?timeout=N]`: Lightning text-to-speech over a WebSocket
//! (API.md §3.5, §12.2).
//!
//! [`TtsLiveConfig`] holds the synthesis settings and builds the upgrade request;
//! [`TtsLiveSession`] is the sans-IO state machine of one connection. Text goes up in
//! JSON messages that each repeat the full configuration (the server needs it); audio
//! comes back as base64 PCM in `chunk` frames, optionally with `word_timestamp` frames,
//! and each request ends with one `complete` frame.
//!
//! Several requests may be sent on one connection; they are tracked in order, and each
//! `complete` of the legacy mode finishes the oldest open one (or the one whose server `request_id` it
//! names). For exact attribution when the account's concurrency is exceeded, keep one
//! request in flight at a time: the server rejects an extra request with an error frame
//! that does not say which request it refused.
//!
//! # Idle timeout
//!
//! The server closes the connection after `timeout` seconds (default 60) without a
//! client message, after sending `{"status":"error","message":"Connection timed out
//! after 60 seconds of inactivity"}`. The session knows the deadline:
//! [`poll_timeout`](TtsLiveSession::poll_timeout) returns it, and once
//! [`handle_timeout`](TtsLiveSession::handle_timeout) has seen it pass, the close that
//! follows is reported as [`CloseReason::IdleTimeout`] (so is the close after the
//! server's idle error frame).
//!
//! [`set_keepalive`](TtsLiveSession::set_keepalive) makes the session send
//! `{…settings…, "text": " ", "continue": true}` (no context) after each `interval`
//! without a client message. API.md §3.5 says the idle timer resets on every client
//! message and leaves open whether a WebSocket ping counts; a text message does, and
//! whitespace adds nothing to hear (Pipecat's plugin sends the same every 30 s). The
//! keepalive therefore moves the idle deadline like any message.
//!
//! # Continuation contexts (API.md §3.5.1)
//!
//! [`push_context`](TtsLiveSession::push_context) sends a fragment with `context_id`
//! and `continue: true`; the server joins a context's fragments into one generation and
//! releases it at sentence boundaries (or after `max_buffer_delay_ms`), so prosody does
//! not reset per fragment. [`finish_context`](TtsLiveSession::finish_context) sends
//! `continue: false`. A context gets **one `complete` per release, none final**: the
//! session ends it ([`TtsLiveEvent::ContextDone`]) once it was finished, at least one
//! `complete` came after that, and then either a frame of another context arrived (the
//! server speaks one context at a time) or
//! [`context_drain`](TtsLiveConfig::context_drain) (500 ms) passed without a frame of
//! it. Frames are matched to contexts by the `context_id` they echo; a frame without
//! one belongs to the oldest context in flight (the sources do not say whether the
//! server echoes it). Contexts are spoken in the order they were opened.
//!
//! [`cancel_context`](TtsLiveSession::cancel_context) is barge-in: it sends
//! [`cancel_message`] — `{"context_id":"…","cancel_request":true}`, a shape **no
//! stored source confirms** (API.md marks it unverified) — and guarantees locally that
//! no event of the context is delivered once it returns, whatever the server still
//! sends. [`cancel_context_hard`](TtsLiveSession::cancel_context_hard) replaces the
//! connection for a server that ignores the message.
//!
//! # The connection's timeline
//!
//! The server's word timings restart at zero with every request (and every release of
//! a context). Each [`TtsLiveEvent::Audio`] also carries its `position` on the
//! connection's timeline (all audio delivered before it), and each word its
//! `timeline_start`/`timeline_end`, so captions stay in sync across requests. Cancelled
//! audio is never delivered and takes no time on it.
//!
//! # Connection lifecycle
//!
//! A connection opened before the first text (warm-up) is reused for every request
//! and context. With [`max_connection_age`](TtsLiveConfig::max_connection_age), the
//! next request or context that begins on an older connection, when nothing is in
//! flight, is sent on a fresh one ([`wants_connection`](TtsLiveSession::wants_connection),
//! [`TtsLiveEvent::Reconnected`]).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use smallest_core::tts_live::{TtsLiveConfig, TtsLiveEvent, TtsLiveSession};
//! use smallest_core::ws::WsMessage;
//!
//! # fn main() -> Result<(), smallest_core::Error> {
//! let t0 = Instant::now();
//! let live = TtsLiveConfig::new("magnus").sample_rate(24000);
//! let mut session = TtsLiveSession::new(live, t0)?;
//! session.send_text("Hello, ", t0)?;
//! session.send_text("world.", t0)?;
//! session.finish_request(t0)?;
//! let mut sent = 0;
//! while let Some(WsMessage::Text(_json)) = session.poll_outgoing() {
//!     sent += 1;
//! }
//! assert_eq!(sent, 3);
//!
//! let t1 = t0 + Duration::from_millis(300);
//! session.handle_message(
//!     WsMessage::Text(r#"{"status":"chunk","request_id":"task_1","data":{"audio":"AAABAA=="}}"#.into()),
//!     t1,
//! )?;
//! session.handle_message(WsMessage::Text(r#"{"status":"complete","request_id":"task_1"}"#.into()), t1)?;
//! assert!(matches!(session.poll_event(), Some(TtsLiveEvent::Audio { request_index: 0, .. })));
//! assert!(matches!(session.poll_event(), Some(TtsLiveEvent::Complete { request_index: 0, .. })));
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::Request;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{Error, ValidationError};
use crate::tts::{
    DEFAULT_SAMPLE_RATE, Language, TtsBody, TtsModel, validate_correlation_id, validate_language,
    validate_sample_rate, validate_voice_id,
};
use crate::ws::{
    CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CloseFrame, Upgrade, WsMessage,
    deadline, error_fields, handshake_request,
};

/// The path of TTS over WebSocket (the same path as SSE; the upgrade selects WebSocket).
pub const TTS_LIVE_PATH: &str = "/waves/v1/tts/live";

/// The server's idle timeout when `timeout` is not given: 60 seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 60;

/// The silence after a finished context's `complete` that ends it, by default.
pub const DEFAULT_CONTEXT_DRAIN: Duration = Duration::from_millis(500);

/// The largest `max_buffer_flush_ms`.
pub const MAX_BUFFER_FLUSH_MS: u32 = 1000;

/// The largest `complete_backoff_ms`.
pub const MAX_COMPLETE_BACKOFF_MS: u32 = 10_000;

/// The settings of a TTS WebSocket connection and of every message sent on it.
///
/// Everything but [`timeout_secs`](Self::timeout_secs) and
/// [`expire_content`](Self::expire_content) (which belong to the upgrade request) is
/// repeated in every message.
///
/// ```
/// use smallest_core::tts::{Language, TtsModel};
/// use smallest_core::tts_live::TtsLiveConfig;
/// let live = TtsLiveConfig::new("magnus")
///     .model(TtsModel::LightningV31)
///     .language(Language::En)
///     .sample_rate(24000)
///     .word_timestamps(true)
///     .timeout_secs(120);
/// assert!(live.validate().is_ok());
/// assert_eq!(live.path_and_query(), "/waves/v1/tts/live?timeout=120");
/// assert!(live.clone().max_buffer_flush_ms(5000).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TtsLiveConfig {
    /// A catalog voice id or a clone id. Required.
    pub voice_id: String,
    /// The model; the server's default is `lightning_v3.1`.
    pub model: Option<TtsModel>,
    /// 8000, 16000, 24000 or 44100. Always sent (44100 when unset), so the audio's rate
    /// is known.
    pub sample_rate: Option<u32>,
    /// 0.5 to 2.0.
    pub speed: Option<f32>,
    /// The synthesis language, checked against the model's list.
    pub language: Option<Language>,
    /// The language numbers, currency, times and years are read in.
    pub number_pronunciation_language: Option<Language>,
    /// Read digit-flanked operators as words.
    pub math_notation: Option<bool>,
    /// Pronunciation dictionary ids.
    pub pronunciation_dicts: Vec<String>,
    /// Ask for `word_timestamp` frames (only some voices emit them).
    pub word_timestamps: bool,
    /// 0–1000: the longest the server waits for more text before synthesizing.
    pub max_buffer_flush_ms: Option<u32>,
    /// 0–10000: the wait after the last audio chunk before `complete` (default 4000).
    pub complete_backoff_ms: Option<u32>,
    /// The idle timeout in seconds (`?timeout=`, ≥ 1; the server's default is 60).
    pub timeout_secs: Option<u32>,
    /// Your session correlation id, echoed as `external_session_id`.
    pub session_id: Option<String>,
    /// Your request correlation id, echoed as `external_request_id`.
    pub request_id: Option<String>,
    /// Send `x-expire-content: true` on the upgrade (Enterprise).
    pub expire_content: bool,
    /// Continuation contexts: the server's buffering window before it releases text
    /// without a sentence boundary (`max_buffer_delay_ms`, sent on context messages
    /// only, and only when set: API.md states no range or default).
    pub max_buffer_delay_ms: Option<u32>,
    /// Continuation contexts: the silence after a finished context's `complete` that
    /// ends it (local; 500 ms when unset). See [`TtsLiveSession::finish_context`].
    pub context_drain: Option<Duration>,
    /// A connection older than this is replaced when the next request or context
    /// begins (local; `None`: never).
    pub max_connection_age: Option<Duration>,
}

impl TtsLiveConfig {
    /// Settings for `voice_id`, everything else at the server's defaults.
    pub fn new(voice_id: impl Into<String>) -> Self {
        TtsLiveConfig {
            voice_id: voice_id.into(),
            model: None,
            sample_rate: None,
            speed: None,
            language: None,
            number_pronunciation_language: None,
            math_notation: None,
            pronunciation_dicts: Vec::new(),
            word_timestamps: false,
            max_buffer_flush_ms: None,
            complete_backoff_ms: None,
            timeout_secs: None,
            session_id: None,
            request_id: None,
            expire_content: false,
            max_buffer_delay_ms: None,
            context_drain: None,
            max_connection_age: None,
        }
    }

    /// Sets the continuation contexts' `max_buffer_delay_ms`.
    pub fn max_buffer_delay_ms(mut self, ms: u32) -> Self {
        self.max_buffer_delay_ms = Some(ms);
        self
    }

    /// Sets the silence that ends a finished context (see
    /// [`TtsLiveSession::finish_context`]).
    pub fn context_drain(mut self, quiet: Duration) -> Self {
        self.context_drain = Some(quiet);
        self
    }

    /// Replaces a connection older than `age` when the next request or context
    /// begins (warm connections are reused across turns until then).
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = Some(age);
        self
    }

    /// The silence that ends a finished context.
    pub fn effective_context_drain(&self) -> Duration {
        self.context_drain.unwrap_or(DEFAULT_CONTEXT_DRAIN)
    }

    /// Sets the voice.
    pub fn voice_id(mut self, voice_id: impl Into<String>) -> Self {
        self.voice_id = voice_id.into();
        self
    }

    /// Sets the model.
    pub fn model(mut self, model: TtsModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Sets the sample rate in Hz.
    pub fn sample_rate(mut self, hz: u32) -> Self {
        self.sample_rate = Some(hz);
        self
    }

    /// Sets the speed (0.5–2.0).
    pub fn speed(mut self, speed: f32) -> Self {
        self.speed = Some(speed);
        self
    }

    /// Sets the language.
    pub fn language(mut self, language: Language) -> Self {
        self.language = Some(language);
        self
    }

    /// Sets the language for numbers, currency, times and years.
    pub fn number_pronunciation_language(mut self, language: Language) -> Self {
        self.number_pronunciation_language = Some(language);
        self
    }

    /// Reads math operators between digits as words.
    pub fn math_notation(mut self, on: bool) -> Self {
        self.math_notation = Some(on);
        self
    }

    /// Adds a pronunciation dictionary.
    pub fn pronunciation_dict(mut self, id: impl Into<String>) -> Self {
        self.pronunciation_dicts.push(id.into());
        self
    }

    /// Asks for word timestamps.
    pub fn word_timestamps(mut self, on: bool) -> Self {
        self.word_timestamps = on;
        self
    }

    /// Sets `max_buffer_flush_ms` (0–1000).
    pub fn max_buffer_flush_ms(mut self, ms: u32) -> Self {
        self.max_buffer_flush_ms = Some(ms);
        self
    }

    /// Sets `complete_backoff_ms` (0–10000).
    pub fn complete_backoff_ms(mut self, ms: u32) -> Self {
        self.complete_backoff_ms = Some(ms);
        self
    }

    /// Sets the server's idle timeout in seconds (`?timeout=`).
    pub fn timeout_secs(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// Sets your session correlation id (`^[a-zA-Z0-9_\-.]+$`, ≤128 characters).
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Sets your request correlation id (`^[a-zA-Z0-9_\-.]+$`, ≤128 characters).
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Asks the server to delete the text after 7 days (Enterprise).
    pub fn expire_content(mut self, on: bool) -> Self {
        self.expire_content = on;
        self
    }

    /// The sample rate of the audio that will come back.
    pub fn effective_sample_rate(&self) -> u32 {
        self.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    /// The server's idle timeout for this connection.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(
            self.timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
        ))
    }

    /// Checks every field against what the API accepts.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_voice_id(&self.voice_id)?;
        if let Some(hz) = self.sample_rate {
            validate_sample_rate("sample_rate", hz)?;
        }
        if let Some(speed) = self.speed
            && !(speed.is_finite() && (0.5..=2.0).contains(&speed))
        {
            return Err(ValidationError::new(
                "speed",
                speed,
                "allowed: a number from 0.5 to 2.0",
            ));
        }
        let model = self.model.clone().unwrap_or_default();
        if let Some(language) = &self.language {
            validate_language("language", &model, language)?;
        }
        if let Some(language) = &self.number_pronunciation_language {
            validate_language("number_pronunciation_language", &model, language)?;
        }
        if let Some(id) = self
            .pronunciation_dicts
            .iter()
            .find(|d| d.trim().is_empty())
        {
            return Err(ValidationError::new(
                "pronunciation_dicts",
                id,
                "each dictionary id must be non-empty",
            ));
        }
        if let Some(ms) = self.max_buffer_flush_ms
            && ms > MAX_BUFFER_FLUSH_MS
        {
            return Err(ValidationError::new(
                "max_buffer_flush_ms",
                ms,
                "allowed: 0 to 1000 milliseconds",
            ));
        }
        if let Some(ms) = self.complete_backoff_ms
            && ms > MAX_COMPLETE_BACKOFF_MS
        {
            return Err(ValidationError::new(
                "complete_backoff_ms",
                ms,
                "allowed: 0 to 10000 milliseconds",
            ));
        }
        if self.timeout_secs == Some(0) {
            return Err(ValidationError::new(
                "timeout",
                0,
                "a positive number of seconds (the server's default is 60)",
            ));
        }
        if let Some(id) = &self.session_id {
            validate_correlation_id("session_id", id)?;
        }
        if let Some(id) = &self.request_id {
            validate_correlation_id("request_id", id)?;
        }
        Ok(())
    }

    /// `/waves/v1/tts/live`, with `?timeout=N` when a timeout is set.
    pub fn path_and_query(&self) -> String {
        match self.timeout_secs {
            Some(secs) => format!("{TTS_LIVE_PATH}?timeout={secs}"),
            None => TTS_LIVE_PATH.to_owned(),
        }
    }

    /// Validates the settings and builds the upgrade request, with the [`Upgrade`] that
    /// checks the server's answer to it (see
    /// [`ws::handshake_request`](crate::ws::handshake_request)); `key` is 16 random
    /// bytes from the transport, given here only.
    pub fn handshake(
        &self,
        config: &Config,
        key: [u8; 16],
    ) -> Result<(Request<()>, Upgrade), Error> {
        self.validate()?;
        handshake_request(config, &self.path_and_query(), key, self.expire_content)
    }

    /// One message: the full configuration plus `text`, `continue` and `flush`.
    /// A message: `flush` is sent when given (the legacy mode); a context's messages
    /// carry its id and `max_buffer_delay_ms`, not the legacy `max_buffer_flush_ms`.
    fn message(
        &self,
        text: &str,
        more: bool,
        flush: Option<bool>,
        context: Option<&str>,
    ) -> Result<WsMessage, Error> {
        let body = WsBody {
            base: TtsBody {
                text,
                voice_id: &self.voice_id,
                model: self.model.as_ref(),
                sample_rate: Some(self.effective_sample_rate()),
                speed: self.speed,
                language: self.language.as_ref(),
                number_pronunciation_language: self.number_pronunciation_language.as_ref(),
                math_notation: self.math_notation,
                // WebSocket audio is always PCM s16le; the field is not in the WS schema.
                output_format: None,
                pronunciation_dicts: &self.pronunciation_dicts,
                session_id: self.session_id.as_deref(),
                request_id: self.request_id.as_deref(),
            },
            word_timestamps: self.word_timestamps,
            max_buffer_flush_ms: self.max_buffer_flush_ms.filter(|_| context.is_none()),
            complete_backoff_ms: self.complete_backoff_ms,
            context_id: context,
            max_buffer_delay_ms: self.max_buffer_delay_ms.filter(|_| context.is_some()),
            more,
            flush,
        };
        serde_json::to_string(&body)
            .map(WsMessage::Text)
            .map_err(|e| Error::decode("TTS WebSocket message", e))
    }
}

/// A client message: the shared TTS body plus the WebSocket-only fields.
#[derive(Serialize)]
struct WsBody<'a> {
    #[serde(flatten)]
    base: TtsBody<'a>,
    #[serde(skip_serializing_if = "is_false")]
    word_timestamps: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_buffer_flush_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    complete_backoff_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_buffer_delay_ms: Option<u32>,
    #[serde(rename = "continue")]
    more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    flush: Option<bool>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The cancellation message of a context (API.md §3.5.1). Its shape is not in any
/// source the project can read: `{"context_id":"…","cancel_request":true}` is this
/// SDK's choice, built here only. A server that ignores it is handled by
/// [`TtsLiveSession::cancel_context_hard`].
pub fn cancel_message(context: &str) -> WsMessage {
    WsMessage::Text(
        serde_json::json!({ "context_id": context, "cancel_request": true }).to_string(),
    )
}

/// The id of a continuation context: chosen by the client, cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextId(Arc<str>);

impl ContextId {
    /// Checks `id`: 1 to 128 characters, none of them a control character.
    pub fn new(id: impl AsRef<str>) -> Result<Self, ValidationError> {
        let id = id.as_ref();
        if id.is_empty() || id.chars().count() > 128 || id.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "context_id",
                id,
                "1 to 128 characters, no control characters",
            ));
        }
        Ok(ContextId(id.into()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContextId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ContextId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// What happened on a TTS WebSocket connection.
///
/// Every event of a request or context carries its `request_index`, and its
/// `context` when it belongs to a continuation context. Audio and word timings also
/// come on the **connection's timeline**: the audio delivered on this connection
/// end to end (cancelled audio is never delivered and takes no time on it), so
/// captions stay in sync across requests, whose own timings restart at zero.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TtsLiveEvent {
    /// A chunk of audio: signed 16-bit little-endian PCM, mono.
    Audio {
        /// Which request it belongs to (0 for the first request of the session).
        request_index: u64,
        /// The continuation context it belongs to.
        context: Option<ContextId>,
        /// The PCM bytes (base64-decoded).
        data: Bytes,
        /// Samples per second, as requested.
        sample_rate: u32,
        /// Where the chunk starts on the connection's timeline.
        position: Duration,
    },
    /// When a word is spoken (only with `word_timestamps` and a voice that supports it).
    WordTimestamp {
        /// Which request it belongs to.
        request_index: u64,
        /// The continuation context it belongs to.
        context: Option<ContextId>,
        /// The 0-based index of the word in the input text.
        id: u64,
        /// The word as written in the input (`"$100"`, not "one hundred dollars").
        word: String,
        /// Start, seconds from the start of this request's audio (as the server sent
        /// it: it restarts at zero with each request, and with each release of a
        /// context).
        start: f64,
        /// End, seconds, like `start`.
        end: f64,
        /// Start on the connection's timeline, seconds.
        timeline_start: f64,
        /// End on the connection's timeline, seconds.
        timeline_end: f64,
    },
    /// A request finished: all its audio has been delivered. For a continuation
    /// context this is one release of its text (a context has several, none final):
    /// [`ContextDone`](Self::ContextDone) says when the context is over.
    Complete {
        /// Which request finished.
        request_index: u64,
        /// The continuation context.
        context: Option<ContextId>,
        /// The server's id of the connection (`ws_…`).
        session_id: Option<String>,
        /// The server's id of the request (`task_…`).
        request_id: Option<String>,
    },
    /// A continuation context is over: it was finished and its last audio came, or it
    /// was cancelled (then it comes at once, and none of its audio after it).
    ContextDone {
        /// The context's request index.
        request_index: u64,
        /// The context.
        context: ContextId,
        /// Whether it was cancelled.
        cancelled: bool,
    },
    /// The server reported an error (an `error` frame of either documented shape).
    ///
    /// An error other than the idle timeout fails one open request: the one whose
    /// server `request_id` the frame names, or else the oldest.
    Error {
        /// The request the error failed, if one was open.
        request_index: Option<u64>,
        /// Its continuation context.
        context: Option<ContextId>,
        /// The server's code, when it sent one (`error.code`, `error_code`).
        code: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The session moved to a new connection (the timeline goes on).
    Reconnected {
        /// Why.
        why: Redial,
    },
    /// The connection closed. Nothing more will happen on this session.
    Closed {
        /// The close code, if the close frame had one.
        code: Option<u16>,
        /// The close reason (may be empty).
        reason: String,
        /// Why, as far as the session can tell.
        why: CloseReason,
    },
    /// A frame with a `status` this SDK does not know (never an error).
    Unknown {
        /// The frame as received.
        raw: String,
    },
}

/// Why a TTS session opened a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Redial {
    /// The connection was older than [`TtsLiveConfig::max_connection_age`] when a new
    /// request or context began.
    MaxAge,
    /// [`TtsLiveSession::cancel_context_hard`].
    HardCancel,
}

/// Why a TTS WebSocket connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// A normal close (1000, or a close frame without a code): after the client's own
    /// close, or the server ending the connection.
    Normal,
    /// The server closed an idle connection: the idle deadline had passed, or it sent
    /// its "timed out … of inactivity" error frame.
    IdleTimeout,
    /// The close came right after a server error frame, or had code 1011.
    ServerError,
    /// 1008: the server refused by policy (e.g. too many connections).
    PolicyViolation,
    /// The connection ended without a close status (a bare close frame, or a transport
    /// that reports a dropped connection as `Close(None)`).
    NoStatus,
    /// Any other close code.
    Other(u16),
}

/// The state of the connection, from the client's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// The client sent a close frame; waiting for the server's.
    Closing,
    Closed,
}

/// A continuation context in flight.
#[derive(Debug)]
struct Context {
    id: ContextId,
    /// `continue: false` was sent.
    closed: bool,
    /// `complete` frames received.
    completes: u32,
    /// Cancelled: its frames are dropped until the server has moved on.
    cancelled: bool,
    /// A frame of it arrived.
    heard: bool,
    /// Its messages, kept until it is heard: sent again on a new connection.
    sent: Vec<WsMessage>,
}

/// A request (or context) that was sent and has not completed.
#[derive(Debug)]
struct InFlight {
    index: u64,
    sample_rate: u32,
    /// The server's `request_id`, once a frame of this request named it.
    server_id: Option<String>,
    context: Option<Context>,
    /// The releases completed so far (word timings restart with each).
    segment: u32,
    /// When its last frame arrived (or it was closed or cancelled).
    last_frame: Option<Instant>,
}

impl InFlight {
    fn context_id(&self) -> Option<&ContextId> {
        self.context.as_ref().map(|c| &c.id)
    }

    fn is_cancelled(&self) -> bool {
        self.context.as_ref().is_some_and(|c| c.cancelled)
    }

    /// A finished context whose audio has come and then gone quiet.
    fn drained_at(&self, drain: Duration) -> Option<Instant> {
        let c = self.context.as_ref()?;
        let ready = if c.cancelled {
            true
        } else {
            c.closed && c.completes > 0
        };
        if !ready {
            return None;
        }
        self.last_frame.and_then(|t| t.checked_add(drain))
    }
}

/// Where a server frame goes: the position of its request in flight (`None`: nothing
/// was open), the request's index and sample rate.
struct Target {
    p: Option<usize>,
    index: u64,
    sample_rate: u32,
}

/// An event, with the request release it belongs to (for the timeline).
#[derive(Debug)]
struct Queued {
    event: TtsLiveEvent,
    segment: Option<(u64, u32)>,
}

impl From<TtsLiveEvent> for Queued {
    fn from(event: TtsLiveEvent) -> Self {
        Queued {
            event,
            segment: None,
        }
    }
}

/// The connection under the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Up,
    /// The transport must open a new connection.
    Wanted(Redial),
}

/// Contexts remembered as cancelled (their late frames are dropped).
const CANCELLED_KEPT: usize = 64;

/// The sans-IO state machine of one TTS WebSocket connection.
///
/// Feed it the user's text (`send_text`, `flush`, `finish_request`, `speak`, or the
/// context verbs `push_context`, `finish_context`, `cancel_context`) and the
/// server's messages (`handle_message`); take what to send from `poll_outgoing` and
/// what happened from `poll_event`; sleep until `poll_timeout` and then call
/// `handle_timeout`. It never blocks and never reads a clock.
#[derive(Debug)]
pub struct TtsLiveSession {
    config: TtsLiveConfig,
    idle_timeout: Duration,
    keepalive: Option<Duration>,
    state: State,
    in_flight: VecDeque<InFlight>,
    /// The back of `in_flight` still takes text (`continue: true` was sent last).
    writing: bool,
    next_index: u64,
    last_message: Instant,
    /// The idle deadline passed without a client message since.
    idle_expired: bool,
    /// The server's idle error frame arrived.
    idle_error: bool,
    /// The last server frame was an error frame.
    last_was_error: bool,
    outgoing: VecDeque<WsMessage>,
    events: VecDeque<Queued>,
    cancelled: VecDeque<ContextId>,
    /// A frame named its context: the server echoes `context_id`.
    echoes: bool,
    /// Audio delivered on this session's connections, and the release it ended in.
    timeline: Duration,
    segment: Option<(u64, u32)>,
    segment_start: Duration,
    link: Link,
    connected_at: Instant,
    /// After `cancel_context_hard`: until this instant, a context that the server refuses
    /// for concurrency before it was heard is sent again (the abandoned request on the
    /// old connection may still count against the account for a moment).
    regrace: Option<Instant>,
    /// Contexts to send again, and when.
    resend: Option<(Instant, Vec<ContextId>)>,
    /// Resends since the last hard cancel.
    resends: u32,
}

/// How long after a hard cancel a refused context is sent again.
const HARD_CANCEL_GRACE: Duration = Duration::from_secs(3);
/// The wait before a refused context is sent again.
const RESEND_DELAY: Duration = Duration::from_millis(100);
/// The most resends after one hard cancel.
const MAX_RESENDS: u32 = 20;

impl TtsLiveSession {
    /// A session on a connection that opened at `now` with these settings.
    pub fn new(config: TtsLiveConfig, now: Instant) -> Result<Self, Error> {
        config.validate()?;
        Ok(TtsLiveSession {
            idle_timeout: config.idle_timeout(),
            config,
            keepalive: None,
            state: State::Open,
            in_flight: VecDeque::new(),
            writing: false,
            next_index: 0,
            last_message: now,
            idle_expired: false,
            idle_error: false,
            last_was_error: false,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
            cancelled: VecDeque::new(),
            echoes: false,
            timeline: Duration::ZERO,
            segment: None,
            segment_start: Duration::ZERO,
            link: Link::Up,
            connected_at: now,
            regrace: None,
            resend: None,
            resends: 0,
        })
    }

    /// The settings every message repeats.
    pub fn config(&self) -> &TtsLiveConfig {
        &self.config
    }

    /// Replaces the settings for the messages sent from now on (another voice, model or
    /// request id for the next request). The idle timeout and `expire_content` were
    /// fixed by the upgrade request and keep their values.
    pub fn set_config(&mut self, config: TtsLiveConfig) -> Result<(), ValidationError> {
        config.validate()?;
        let timeout_secs = self.config.timeout_secs;
        let expire_content = self.config.expire_content;
        self.config = TtsLiveConfig {
            timeout_secs,
            expire_content,
            ..config
        };
        Ok(())
    }

    /// Sends a keepalive message after every `interval` without client messages;
    /// `None` (or a zero interval) turns keepalive off. The keepalive is
    /// `{…settings…, "text": " ", "continue": true}` without a context: a text
    /// message, which the server counts against its idle timeout (API.md §3.5: the
    /// timer resets on every client message; a WebSocket ping may not count), and
    /// whitespace, which adds nothing to hear. Pipecat's plugin sends the same every
    /// 30 s. It resets the session's idle deadline like any message.
    pub fn set_keepalive(&mut self, interval: Option<Duration>) {
        self.keepalive = interval.filter(|d| !d.is_zero());
    }

    /// Queues one piece of text of the current request (`"continue": true`), opening a
    /// request if none is being written. Returns the request's index. An empty piece
    /// sends nothing.
    pub fn send_text(&mut self, text: &str, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        if text.is_empty() {
            return Ok(self.writing_index().unwrap_or(self.next_index));
        }
        let message = self.config.message(text, true, Some(false), None)?;
        Ok(self.push(message, true, now))
    }

    /// Forces synthesis of the text buffered so far, keeping the request open
    /// (`"text": "", "continue": true, "flush": true`).
    pub fn flush(&mut self, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        if !self.writing {
            return Err(nothing_open("flush"));
        }
        let message = self.config.message("", true, Some(true), None)?;
        Ok(self.push(message, true, now))
    }

    /// Ends the request being written: `"text": "", "continue": false, "flush": true`.
    /// Its audio and `complete` follow.
    pub fn finish_request(&mut self, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        if !self.writing {
            return Err(nothing_open("finish_request"));
        }
        let message = self.config.message("", false, Some(true), None)?;
        Ok(self.push(message, false, now))
    }

    /// Sends `text` as the last piece of the request being written, or, when none is,
    /// as a whole request in one message (`"continue": false, "flush": true`).
    pub fn speak(&mut self, text: &str, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        if !self.writing && text.trim().is_empty() {
            return Err(ValidationError::new(
                "text",
                text,
                "the text must contain at least one non-whitespace character",
            )
            .into());
        }
        let message = self.config.message(text, false, Some(true), None)?;
        Ok(self.push(message, false, now))
    }

    /// Checks that `id` can open a context now: a valid id, not cancelled earlier on
    /// this session, and not a context that is still in flight and finished.
    pub fn check_context(&self, id: &str) -> Result<ContextId, Error> {
        let id = ContextId::new(id)?;
        if self.cancelled.contains(&id) {
            return Err(ValidationError::new(
                "context_id",
                id.as_str(),
                "this context was cancelled on this connection: use a new id",
            )
            .into());
        }
        if let Some(c) = self.context(&id)
            && c.context.as_ref().is_some_and(|c| c.closed)
        {
            return Err(ValidationError::new(
                "context_id",
                id.as_str(),
                "this context was finished and its audio is still coming: use a new id",
            )
            .into());
        }
        Ok(id)
    }

    /// Sends a fragment of context `id` (`"context_id"`, `"continue": true`), opening
    /// the context if it is new. The server joins the fragments of a context into one
    /// generation, released at sentence boundaries (or after the config's
    /// `max_buffer_delay_ms`). Contexts are spoken in the order they were opened.
    /// Returns the context's request index. An empty fragment sends nothing.
    pub fn push_context(&mut self, id: &str, text: &str, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        let id = self.check_context(id)?;
        if text.is_empty()
            && let Some(r) = self.context(&id)
        {
            return Ok(r.index);
        }
        let message = self.config.message(text, true, None, Some(id.as_str()))?;
        Ok(self.push_to_context(id, message, false, now))
    }

    /// Closes context `id` (`"text": "", "continue": false`): the rest of its text is
    /// released. Its audio follows, in one or more releases each ending in a
    /// `complete`; [`TtsLiveEvent::ContextDone`] comes once the last `complete` has
    /// been followed by the config's `context_drain` of silence from it, or by a frame
    /// of another context (the server speaks one context at a time). A context that
    /// was never opened is opened and closed (nothing to say: no audio comes).
    pub fn finish_context(&mut self, id: &str, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        let id = self.check_context(id)?;
        let message = self.config.message("", false, None, Some(id.as_str()))?;
        Ok(self.push_to_context(id, message, true, now))
    }

    /// Cancels context `id` (barge-in): sends [`cancel_message`], and from now on no
    /// event of the context is delivered, even if the server keeps sending its audio;
    /// [`TtsLiveEvent::ContextDone`] `{cancelled: true}` is queued at once. Other
    /// contexts go on. A context that is not in flight (unknown, done) is left alone.
    /// Returns whether the context was in flight.
    pub fn cancel_context(&mut self, id: &str, now: Instant) -> Result<bool, Error> {
        self.ensure_open()?;
        let id = ContextId::new(id)?;
        if !self.cancel_locally(&id, now) {
            return Ok(false);
        }
        self.outgoing.push_back(cancel_message(id.as_str()));
        self.touch(now);
        Ok(true)
    }

    /// Cancels context `id` like [`cancel_context`](Self::cancel_context), for a
    /// server that ignores the cancellation message: the session drops the connection
    /// and asks the transport for a new one. Contexts that have not been heard yet are
    /// sent again on it; requests and contexts whose audio had begun end with an
    /// [`TtsLiveEvent::Error`] (they were spoken on the old connection). Meant for the
    /// context being spoken.
    pub fn cancel_context_hard(&mut self, id: &str, now: Instant) -> Result<bool, Error> {
        self.ensure_open()?;
        let id = ContextId::new(id)?;
        if !self.cancel_locally(&id, now) {
            return Ok(false);
        }
        self.redial(Redial::HardCancel);
        Ok(true)
    }

    /// Starts closing the connection: queues a close frame (1000). The server's close
    /// then ends the session with [`CloseReason::Normal`].
    pub fn close(&mut self, now: Instant) -> Result<(), Error> {
        let _ = now;
        self.ensure_open()?;
        if self.link != Link::Up {
            // No connection to close: the session ends here.
            self.link = Link::Up;
            self.state = State::Closing;
            self.handle_close(Some(CloseFrame::new(CLOSE_NORMAL, "")));
            return Ok(());
        }
        self.outgoing
            .push_back(WsMessage::Close(Some(CloseFrame::new(CLOSE_NORMAL, ""))));
        self.state = State::Closing;
        Ok(())
    }

    /// Requests sent and not yet completed (including one still being written), and
    /// contexts not yet done.
    pub fn open_requests(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the server owes an answer: audio and `complete` of an open request.
    pub fn awaiting_answer(&self) -> bool {
        self.link == Link::Up
            && !self.is_closed()
            && self.in_flight.iter().any(|r| !r.is_cancelled())
    }

    /// Whether the connection has closed ([`TtsLiveEvent::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the session waits for a new connection (see
    /// [`wants_connection`](Self::wants_connection)).
    pub fn is_disconnected(&self) -> bool {
        self.link != Link::Up && !self.is_closed()
    }

    /// Whether the transport must open a new connection now (the same handshake) and
    /// then call [`handle_connected`](Self::handle_connected): after
    /// [`cancel_context_hard`](Self::cancel_context_hard), or when a request or
    /// context begins on a connection older than the config's `max_connection_age`.
    pub fn wants_connection(&self) -> bool {
        self.is_disconnected()
    }

    /// The new connection is up: what was queued for it goes out.
    pub fn handle_connected(&mut self, now: Instant) -> Result<(), Error> {
        let Link::Wanted(why) = self.link else {
            return Ok(());
        };
        self.link = Link::Up;
        self.connected_at = now;
        self.last_message = now;
        self.idle_expired = false;
        self.idle_error = false;
        self.last_was_error = false;
        for r in &mut self.in_flight {
            r.server_id = None;
        }
        if why == Redial::HardCancel {
            self.regrace = now.checked_add(HARD_CANCEL_GRACE);
            self.resends = 0;
        }
        tracing::debug!(target: "smallest", ?why, "TTS session on a new connection");
        self.events
            .push_back(TtsLiveEvent::Reconnected { why }.into());
        Ok(())
    }

    /// Opening the new connection failed: the session ends with `error`.
    pub fn handle_connect_failed(&mut self, error: Error, now: Instant) -> Result<(), Error> {
        let _ = now;
        self.link = Link::Up;
        self.handle_close(None);
        Err(error)
    }

    /// A TTS session does not reconnect on its own after a drop: `false`.
    pub fn handle_connection_lost(&mut self, error: Option<&Error>, now: Instant) -> bool {
        let _ = (error, now);
        false
    }

    /// Not used by a TTS session (it redials at once, without backoff).
    pub fn set_retry_policy(&mut self, policy: &crate::retry::RetryPolicy, seed: u64) {
        let _ = (policy, seed);
    }

    /// Handles one message from the server.
    ///
    /// A frame that is not JSON, a binary frame (the server never sends one) or a
    /// known frame missing its fields is an [`Error::Decode`]; the session stays usable.
    /// Server error frames are events, not errors. Pings and pongs are ignored (the
    /// transport answers pings).
    pub fn handle_message(&mut self, message: WsMessage, now: Instant) -> Result<(), Error> {
        if self.state == State::Closed || self.link != Link::Up {
            return Ok(());
        }
        match message {
            WsMessage::Text(text) => self.handle_text(text, now),
            WsMessage::Binary(data) => Err(Error::decode(
                "TTS WebSocket message",
                format!(
                    "unexpected binary frame of {} bytes (the server sends JSON text)",
                    data.len()
                ),
            )),
            WsMessage::Ping(_) | WsMessage::Pong(_) => Ok(()),
            WsMessage::Close(frame) => {
                self.handle_close(frame);
                Ok(())
            }
        }
    }

    /// The next message to send, if any.
    pub fn poll_outgoing(&mut self) -> Option<WsMessage> {
        if self.link != Link::Up {
            return None;
        }
        self.outgoing.pop_front()
    }

    /// The next event, if any. Events of a cancelled context are dropped here, so none
    /// is delivered after [`cancel_context`](Self::cancel_context) returns.
    pub fn poll_event(&mut self) -> Option<TtsLiveEvent> {
        loop {
            let Queued { event, segment } = self.events.pop_front()?;
            if event_context(&event).is_some_and(|c| self.cancelled.contains(c)) {
                continue;
            }
            if segment.is_some() && segment != self.segment {
                self.segment = segment;
                self.segment_start = self.timeline;
            }
            let start = self.segment_start.as_secs_f64();
            return Some(match event {
                TtsLiveEvent::Audio {
                    request_index,
                    context,
                    data,
                    sample_rate,
                    ..
                } => {
                    let position = self.timeline;
                    self.timeline += pcm_duration(data.len(), sample_rate);
                    TtsLiveEvent::Audio {
                        request_index,
                        context,
                        data,
                        sample_rate,
                        position,
                    }
                }
                TtsLiveEvent::WordTimestamp {
                    request_index,
                    context,
                    id,
                    word,
                    start: s,
                    end: e,
                    ..
                } => TtsLiveEvent::WordTimestamp {
                    request_index,
                    context,
                    id,
                    word,
                    start: s,
                    end: e,
                    timeline_start: start + s,
                    timeline_end: start + e,
                },
                other => other,
            });
        }
    }

    /// Audio delivered so far: the connection's timeline.
    pub fn timeline(&self) -> Duration {
        self.timeline
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the next keepalive, the
    /// idle deadline, or the end of a finished context's drain, whichever comes
    /// first. `None` when nothing is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state != State::Open || self.link != Link::Up {
            return None;
        }
        let idle = if self.idle_expired {
            None
        } else {
            deadline(self.last_message, self.idle_timeout)
        };
        let keepalive = self
            .keepalive
            .and_then(|interval| deadline(self.last_message, interval));
        let drain = self.config.effective_context_drain();
        let drained = self
            .in_flight
            .iter()
            .filter_map(|r| r.drained_at(drain))
            .min();
        let resend = self.resend.as_ref().map(|(at, _)| *at);
        [idle, keepalive, drained, resend]
            .into_iter()
            .flatten()
            .min()
    }

    /// Acts on the deadlines that have passed at `now`: queues a keepalive, ends the
    /// contexts that have drained, or records that the server's idle timeout has run
    /// out, so that the close that follows is reported as [`CloseReason::IdleTimeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != State::Open || self.link != Link::Up {
            return;
        }
        let drain = self.config.effective_context_drain();
        while let Some(p) = self
            .in_flight
            .iter()
            .position(|r| r.drained_at(drain).is_some_and(|at| at <= now))
        {
            self.context_done(p);
        }
        if self.resend.as_ref().is_some_and(|(at, _)| *at <= now)
            && let Some((_, ids)) = self.resend.take()
        {
            for id in ids {
                let messages = self
                    .in_flight
                    .iter()
                    .find(|r| r.context_id() == Some(&id) && !r.is_cancelled())
                    .and_then(|r| r.context.as_ref())
                    .filter(|c| !c.heard)
                    .map(|c| c.sent.clone())
                    .unwrap_or_default();
                tracing::debug!(target: "smallest", context = id.as_str(), "sending a refused context again");
                self.outgoing.extend(messages);
            }
            self.touch(now);
        }
        if let Some(interval) = self.keepalive
            && deadline(self.last_message, interval).is_some_and(|d| d <= now)
            && let Ok(message) = self.config.message(" ", true, None, None)
        {
            self.outgoing.push_back(message);
            self.touch(now);
        }
        if !self.idle_expired
            && deadline(self.last_message, self.idle_timeout).is_some_and(|d| d <= now)
        {
            self.idle_expired = true;
        }
    }

    /// A concurrency refusal of a context not heard yet, shortly after a hard cancel:
    /// the account still counted the request abandoned on the old connection. The
    /// context is sent again after [`RESEND_DELAY`] (at most [`MAX_RESENDS`] times)
    /// instead of failing; `true` when the frame was taken care of so.
    fn resend_refused(&mut self, named: Option<&str>, lower: &str, now: Instant) -> bool {
        let concurrency = lower.contains("concurren") || lower.contains("too many");
        if !concurrency
            || self.regrace.is_none_or(|until| now >= until)
            || self.resends >= MAX_RESENDS
        {
            return false;
        }
        let unheard = |r: &InFlight| {
            r.context
                .as_ref()
                .is_some_and(|c| !c.heard && !c.cancelled && !c.sent.is_empty())
        };
        let target = match named {
            Some(name) => self
                .in_flight
                .iter()
                .find(|r| r.context_id().is_some_and(|c| c.as_str() == name) && unheard(r)),
            None => self.in_flight.iter().find(|r| unheard(r)),
        };
        let Some(id) = target.and_then(|r| r.context_id().cloned()) else {
            return false;
        };
        let (_, ids) = self
            .resend
            .get_or_insert_with(|| (now + RESEND_DELAY, Vec::new()));
        if !ids.contains(&id) {
            ids.push(id);
            self.resends += 1;
        }
        true
    }

    fn ensure_open(&self) -> Result<(), Error> {
        match self.state {
            State::Open => Ok(()),
            State::Closing | State::Closed => Err(Error::Stream {
                code: None,
                message: "the TTS WebSocket session is closed (or closing): open a new \
                          connection to send more text"
                    .into(),
            }),
        }
    }

    fn touch(&mut self, now: Instant) {
        self.last_message = now;
        self.idle_expired = false;
    }

    fn writing_index(&self) -> Option<u64> {
        if self.writing {
            self.in_flight
                .iter()
                .rev()
                .find(|r| r.context.is_none())
                .map(|r| r.index)
        } else {
            None
        }
    }

    fn context(&self, id: &ContextId) -> Option<&InFlight> {
        self.in_flight.iter().find(|r| r.context_id() == Some(id))
    }

    /// A new request or context begins: on a connection past its age, redial first.
    fn begin(&mut self, now: Instant) -> u64 {
        if let Some(age) = self.config.max_connection_age
            && self.link == Link::Up
            && self.in_flight.is_empty()
            && now.saturating_duration_since(self.connected_at) >= age
        {
            self.redial(Redial::MaxAge);
        }
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// Queues a message of the current request (opening one if needed) and returns
    /// the request's index. `more` is its `continue`.
    fn push(&mut self, message: WsMessage, more: bool, now: Instant) -> u64 {
        let index = match self.writing_index() {
            Some(index) => index,
            None => {
                let index = self.begin(now);
                self.in_flight.push_back(InFlight {
                    index,
                    sample_rate: self.config.effective_sample_rate(),
                    server_id: None,
                    context: None,
                    segment: 0,
                    last_frame: None,
                });
                index
            }
        };
        self.writing = more;
        self.outgoing.push_back(message);
        self.touch(now);
        index
    }

    fn push_to_context(
        &mut self,
        id: ContextId,
        message: WsMessage,
        close: bool,
        now: Instant,
    ) -> u64 {
        let position = self
            .in_flight
            .iter()
            .position(|r| r.context_id() == Some(&id));
        let position = if let Some(p) = position {
            p
        } else {
            let index = self.begin(now);
            self.in_flight.push_back(InFlight {
                index,
                sample_rate: self.config.effective_sample_rate(),
                server_id: None,
                context: Some(Context {
                    id: id.clone(),
                    closed: false,
                    completes: 0,
                    cancelled: false,
                    heard: false,
                    sent: Vec::new(),
                }),
                segment: 0,
                last_frame: None,
            });
            self.in_flight.len() - 1
        };
        let mut index = 0;
        if let Some(r) = self.in_flight.get_mut(position) {
            index = r.index;
            if let Some(c) = r.context.as_mut() {
                if !c.heard {
                    c.sent.push(message.clone());
                }
                if close {
                    c.closed = true;
                    r.last_frame = Some(now);
                }
            }
        }
        self.outgoing.push_back(message);
        self.touch(now);
        index
    }

    /// Marks context `id` cancelled: `false` when it is not in flight.
    fn cancel_locally(&mut self, id: &ContextId, now: Instant) -> bool {
        let Some(p) = self
            .in_flight
            .iter()
            .position(|r| r.context_id() == Some(id) && !r.is_cancelled())
        else {
            return false;
        };
        if self.cancelled.len() == CANCELLED_KEPT {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(id.clone());
        let r = &mut self.in_flight[p];
        let index = r.index;
        let heard = r.context.as_ref().is_some_and(|c| c.heard);
        // Frames without a `context_id` go to the oldest context: a cancelled one
        // that was being spoken stays there, dropping them, until the server moves on.
        if self.echoes || !heard || p > 0 {
            self.in_flight.remove(p);
        } else {
            if let Some(c) = r.context.as_mut() {
                c.cancelled = true;
                c.sent.clear();
            }
            r.last_frame = Some(now);
        }
        // Its messages not yet written are not sent.
        self.outgoing.retain(|m| !message_of(m, id.as_str()));
        self.events.push_back(
            TtsLiveEvent::ContextDone {
                request_index: index,
                context: id.clone(),
                cancelled: true,
            }
            .into(),
        );
        tracing::debug!(target: "smallest", context = id.as_str(), "context cancelled");
        true
    }

    /// Drops the connection and asks for a new one; what was not heard is sent again.
    fn redial(&mut self, why: Redial) {
        self.link = Link::Wanted(why);
        // What waited to be sent again goes out on the new connection anyway.
        self.resend = None;
        self.outgoing.clear();
        self.writing = false;
        let mut kept = VecDeque::new();
        for mut r in std::mem::take(&mut self.in_flight) {
            match &mut r.context {
                Some(c) if c.cancelled => {}
                Some(c) if !c.heard => {
                    self.outgoing.extend(c.sent.iter().cloned());
                    kept.push_back(r);
                }
                _ => self.events.push_back(
                    TtsLiveEvent::Error {
                        request_index: Some(r.index),
                        context: r.context_id().cloned(),
                        code: None,
                        message: "the connection was replaced (cancel_context_hard) while \
                                  this request's audio was coming: its audio is incomplete"
                            .to_owned(),
                    }
                    .into(),
                ),
            }
        }
        self.in_flight = kept;
    }

    /// Context at `p` is over.
    fn context_done(&mut self, p: usize) {
        let Some(r) = self.in_flight.remove(p) else {
            return;
        };
        if let Some(c) = r.context
            && !c.cancelled
        {
            self.events.push_back(
                TtsLiveEvent::ContextDone {
                    request_index: r.index,
                    context: c.id,
                    cancelled: false,
                }
                .into(),
            );
        }
    }

    fn handle_text(&mut self, text: String, now: Instant) -> Result<(), Error> {
        const WHAT: &str = "TTS WebSocket message";
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::decode(WHAT, e))?;
        let Some(obj) = value.as_object() else {
            self.last_was_error = false;
            self.events
                .push_back(TtsLiveEvent::Unknown { raw: text }.into());
            return Ok(());
        };
        let status = obj.get("status").and_then(Value::as_str);
        let server_id = obj
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let named = obj.get("context_id").and_then(Value::as_str);
        if named.is_some() {
            self.echoes = true;
        }
        match status {
            Some(kind @ ("chunk" | "word_timestamp")) => {
                let event = if kind == "chunk" {
                    let audio = data_field(obj, "audio")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            Error::decode(WHAT, "a `chunk` frame without `data.audio`")
                        })?;
                    let data = BASE64.decode(audio).map_err(|e| {
                        Error::decode(WHAT, format!("`data.audio` is not base64: {e}"))
                    })?;
                    Some(data)
                } else {
                    None
                };
                let word = match event {
                    Some(_) => None,
                    None => Some(word_fields(obj)?),
                };
                self.last_was_error = false;
                let Some(target) = self.attribute(named, server_id.as_deref(), now) else {
                    return Ok(());
                };
                let (request_index, sample_rate) = (target.index, target.sample_rate);
                let (context, segment) = match target.p.map(|p| &self.in_flight[p]) {
                    Some(r) => (r.context_id().cloned(), Some((r.index, r.segment))),
                    None => (None, None),
                };
                let p_event = match (event, word) {
                    (Some(data), _) if data.is_empty() => return Ok(()),
                    (Some(data), _) => TtsLiveEvent::Audio {
                        request_index,
                        context,
                        data: Bytes::from(data),
                        sample_rate,
                        position: Duration::ZERO,
                    },
                    (None, Some((id, word, start, end))) => TtsLiveEvent::WordTimestamp {
                        request_index,
                        context,
                        id,
                        word,
                        start,
                        end,
                        timeline_start: 0.0,
                        timeline_end: 0.0,
                    },
                    (None, None) => return Ok(()),
                };
                self.events.push_back(Queued {
                    event: p_event,
                    segment,
                });
            }
            Some("complete") => {
                self.last_was_error = false;
                let session_id = obj
                    .get("session_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let Some(target) = self.attribute(named, server_id.as_deref(), now) else {
                    return Ok(());
                };
                let request_index = target.index;
                let mut context = None;
                if let Some(p) = target.p {
                    let r = &mut self.in_flight[p];
                    context = r.context_id().cloned();
                    r.segment += 1;
                    if let Some(c) = &mut r.context {
                        // One release of the context: it goes on until it drains.
                        c.completes += 1;
                    } else {
                        self.take_at(p);
                    }
                }
                self.events.push_back(
                    TtsLiveEvent::Complete {
                        request_index,
                        context,
                        session_id,
                        request_id: server_id,
                    }
                    .into(),
                );
            }
            Some("error") | None if status.is_some() || obj.contains_key("error") => {
                let (code, message) = error_fields(obj, &text);
                let lower = message.to_ascii_lowercase();
                if self.resend_refused(named, &lower, now) {
                    return Ok(());
                }
                let (request_index, context) =
                    if lower.contains("inactivity") || lower.contains("timed out") {
                        self.idle_error = true;
                        (None, None)
                    } else {
                        match self
                            .attribute(named, server_id.as_deref(), now)
                            .and_then(|t| t.p)
                            .and_then(|p| self.take_at(p))
                        {
                            Some(r) => (Some(r.index), r.context.map(|c| c.id)),
                            None => (None, None),
                        }
                    };
                self.last_was_error = true;
                self.events.push_back(
                    TtsLiveEvent::Error {
                        request_index,
                        context,
                        code,
                        message,
                    }
                    .into(),
                );
            }
            _ => {
                self.last_was_error = false;
                self.events
                    .push_back(TtsLiveEvent::Unknown { raw: text }.into());
            }
        }
        Ok(())
    }

    /// The request a frame belongs to (its position, index and sample rate), or `None`
    /// when the frame is to be dropped (a cancelled context's). A frame naming its
    /// context belongs to it; else to the open request the server's `request_id`
    /// names, else the oldest one not yet named (which the id then names), else the
    /// oldest. A frame of one context means the finished contexts before it are done.
    fn attribute(
        &mut self,
        named: Option<&str>,
        server_id: Option<&str>,
        now: Instant,
    ) -> Option<Target> {
        if let Some(name) = named {
            if self.cancelled.iter().any(|c| c.as_str() == name) {
                return None;
            }
            if let Some(p) = self
                .in_flight
                .iter()
                .position(|r| r.context_id().is_some_and(|c| c.as_str() == name))
            {
                // The server speaks one context at a time: those before it are over.
                let drain = self.config.effective_context_drain();
                let mut p = p;
                while p > 0 && self.in_flight[0].drained_at(drain).is_some() {
                    self.context_done(0);
                    p -= 1;
                }
                return Some(self.heard(p, now));
            }
            tracing::debug!(target: "smallest", context = name, "a frame of a context not in flight: dropped");
            return None;
        }
        if self.in_flight.is_empty() {
            // A frame with nothing open: the last request's, at the current rate.
            return Some(Target {
                p: None,
                index: self.next_index.saturating_sub(1),
                sample_rate: self.config.effective_sample_rate(),
            });
        }
        if self.in_flight[0].context.is_some() {
            if self.in_flight[0].is_cancelled() {
                self.in_flight[0].last_frame = Some(now);
                return None;
            }
            return Some(self.heard(0, now));
        }
        let position = server_id
            .and_then(|id| {
                self.in_flight
                    .iter()
                    .position(|r| r.server_id.as_deref() == Some(id))
                    .or_else(|| {
                        let p = self
                            .in_flight
                            .iter()
                            .position(|r| r.server_id.is_none() && r.context.is_none())?;
                        self.in_flight[p].server_id = Some(id.to_owned());
                        Some(p)
                    })
            })
            .unwrap_or(0);
        Some(self.heard(position, now))
    }

    fn heard(&mut self, p: usize, now: Instant) -> Target {
        let r = &mut self.in_flight[p];
        r.last_frame = Some(now);
        if let Some(c) = &mut r.context
            && !c.heard
        {
            c.heard = true;
            c.sent = Vec::new();
        }
        Target {
            p: Some(p),
            index: r.index,
            sample_rate: r.sample_rate,
        }
    }

    /// Removes the request at `p` (a `complete` or an error finished it).
    fn take_at(&mut self, p: usize) -> Option<InFlight> {
        let request = self.in_flight.remove(p)?;
        if !self.in_flight.iter().any(|r| r.context.is_none()) {
            self.writing = false;
        }
        Some(request)
    }

    fn handle_close(&mut self, frame: Option<CloseFrame>) {
        let (code, reason) = match frame {
            Some(f) => (Some(f.code), f.reason),
            None => (None, String::new()),
        };
        let why = if self.idle_expired || self.idle_error {
            CloseReason::IdleTimeout
        } else if code == Some(CLOSE_POLICY_VIOLATION) {
            CloseReason::PolicyViolation
        } else if self.last_was_error || code == Some(CLOSE_INTERNAL_ERROR) {
            CloseReason::ServerError
        } else {
            match code {
                Some(CLOSE_NORMAL) => CloseReason::Normal,
                None if self.state == State::Closing => CloseReason::Normal,
                None => CloseReason::NoStatus,
                Some(other) => CloseReason::Other(other),
            }
        };
        self.state = State::Closed;
        self.writing = false;
        self.outgoing.clear();
        // A request the server never completed must not pass for a finished one, however
        // clean the close: each gets its own error before `Closed`. A finished context
        // whose audio came is done.
        let drain = self.config.effective_context_drain();
        for request in std::mem::take(&mut self.in_flight) {
            if request.is_cancelled() {
                continue;
            }
            if request.drained_at(drain).is_some()
                && let Some(c) = request.context
            {
                self.events.push_back(
                    TtsLiveEvent::ContextDone {
                        request_index: request.index,
                        context: c.id,
                        cancelled: false,
                    }
                    .into(),
                );
                continue;
            }
            self.events.push_back(
                TtsLiveEvent::Error {
                    request_index: Some(request.index),
                    context: request.context_id().cloned(),
                    code: None,
                    message: "the connection closed before this request's `complete`: its \
                              audio is incomplete"
                        .to_owned(),
                }
                .into(),
            );
        }
        self.events
            .push_back(TtsLiveEvent::Closed { code, reason, why }.into());
    }
}

fn event_context(event: &TtsLiveEvent) -> Option<&ContextId> {
    match event {
        TtsLiveEvent::Audio { context, .. }
        | TtsLiveEvent::WordTimestamp { context, .. }
        | TtsLiveEvent::Complete { context, .. } => context.as_ref(),
        _ => None,
    }
}

/// Whether `message` is a message of context `id`.
fn message_of(message: &WsMessage, id: &str) -> bool {
    let WsMessage::Text(text) = message else {
        return false;
    };
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("context_id").and_then(Value::as_str).map(|c| c == id))
        .unwrap_or(false)
}

/// The length of `bytes` of 16-bit mono PCM at `sample_rate`.
fn pcm_duration(bytes: usize, sample_rate: u32) -> Duration {
    let samples = (bytes / 2) as u64;
    let rate = u64::from(sample_rate.max(1));
    Duration::from_secs(samples / rate)
        + Duration::from_nanos((samples % rate) * 1_000_000_000 / rate)
}

fn word_fields(obj: &Map<String, Value>) -> Result<(u64, String, f64, f64), Error> {
    const WHAT: &str = "TTS WebSocket message";
    let missing = |field: &str| {
        Error::decode(
            WHAT,
            format!("a `word_timestamp` frame without `data.{field}`"),
        )
    };
    let id = data_field(obj, "id")
        .and_then(Value::as_u64)
        .ok_or_else(|| missing("id"))?;
    let word = data_field(obj, "word")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("word"))?
        .to_owned();
    let start = data_field(obj, "start")
        .and_then(Value::as_f64)
        .ok_or_else(|| missing("start"))?;
    let end = data_field(obj, "end")
        .and_then(Value::as_f64)
        .ok_or_else(|| missing("end"))?;
    Ok((id, word, start, end))
}

fn data_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    obj.get("data")?.as_object()?.get(field)
}

fn nothing_open(verb: &'static str) -> Error {
    ValidationError::new(
        verb,
        "no request is being written",
        "call send_text first (or speak for a one-message request)",
    )
    .into()
}
