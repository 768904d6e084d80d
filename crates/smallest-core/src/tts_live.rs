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
//! `complete` finishes the oldest open one (or the one whose server `request_id` it
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
//! [`set_keepalive`](TtsLiveSession::set_keepalive) makes the session send a WebSocket
//! `Ping` after each `interval` without client traffic. Whether the server counts a
//! ping as a "client message" is **not documented** (API.md §3.5 says the timer resets
//! on every client message; a ping is a control frame, not a message). The session
//! therefore never assumes that a ping resets the idle timer: the idle deadline is
//! computed from the last JSON message only. A no-op JSON message does not exist in
//! this protocol (any text message opens or continues a synthesis), so a ping is the
//! only safe keepalive. If pings do not count on the real service, raise `timeout`
//! instead (verified up to 999 s).
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
        }
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
    fn message(&self, text: &str, more: bool, flush: bool) -> Result<WsMessage, Error> {
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
            max_buffer_flush_ms: self.max_buffer_flush_ms,
            complete_backoff_ms: self.complete_backoff_ms,
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
    #[serde(rename = "continue")]
    more: bool,
    flush: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What happened on a TTS WebSocket connection.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TtsLiveEvent {
    /// A chunk of audio: signed 16-bit little-endian PCM, mono.
    Audio {
        /// Which request it belongs to (0 for the first request of the session).
        request_index: u64,
        /// The PCM bytes (base64-decoded).
        data: Bytes,
        /// Samples per second, as requested.
        sample_rate: u32,
    },
    /// When a word is spoken (only with `word_timestamps` and a voice that supports it).
    WordTimestamp {
        /// Which request it belongs to.
        request_index: u64,
        /// The 0-based index of the word in the input text.
        id: u64,
        /// The word as written in the input (`"$100"`, not "one hundred dollars").
        word: String,
        /// Start, seconds from the start of this request's audio.
        start: f64,
        /// End, seconds.
        end: f64,
    },
    /// A request finished: all its audio has been delivered.
    Complete {
        /// Which request finished.
        request_index: u64,
        /// The server's id of the connection (`ws_…`).
        session_id: Option<String>,
        /// The server's id of the request (`task_…`).
        request_id: Option<String>,
    },
    /// The server reported an error (an `error` frame of either documented shape).
    ///
    /// An error other than the idle timeout fails one open request: the one whose
    /// server `request_id` the frame names, or else the oldest.
    Error {
        /// The request the error failed, if one was open.
        request_index: Option<u64>,
        /// The server's code, when it sent one (`error.code`, `error_code`).
        code: Option<String>,
        /// The server's message.
        message: String,
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

/// A request that was sent and has not completed.
#[derive(Debug)]
struct InFlight {
    index: u64,
    sample_rate: u32,
    /// The server's `request_id`, once a frame of this request named it.
    server_id: Option<String>,
}

/// The sans-IO state machine of one TTS WebSocket connection.
///
/// Feed it the user's text (`send_text`, `flush`, `finish_request`, `speak`) and the
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
    last_ping: Option<Instant>,
    /// The idle deadline passed without a client message since.
    idle_expired: bool,
    /// The server's idle error frame arrived.
    idle_error: bool,
    /// The last server frame was an error frame.
    last_was_error: bool,
    outgoing: VecDeque<WsMessage>,
    events: VecDeque<TtsLiveEvent>,
}

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
            last_ping: None,
            idle_expired: false,
            idle_error: false,
            last_was_error: false,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
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

    /// Sends a WebSocket `Ping` after every `interval` without client traffic; `None`
    /// (or a zero interval) turns keepalive off. See the module docs for why a ping
    /// may not reset the server's idle timer.
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
        let message = self.config.message(text, true, false)?;
        Ok(self.push(message, true, now))
    }

    /// Forces synthesis of the text buffered so far, keeping the request open
    /// (`"text": "", "continue": true, "flush": true`).
    pub fn flush(&mut self, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        if !self.writing {
            return Err(nothing_open("flush"));
        }
        let message = self.config.message("", true, true)?;
        Ok(self.push(message, true, now))
    }

    /// Ends the request being written: `"text": "", "continue": false, "flush": true`.
    /// Its audio and `complete` follow.
    pub fn finish_request(&mut self, now: Instant) -> Result<u64, Error> {
        self.ensure_open()?;
        if !self.writing {
            return Err(nothing_open("finish_request"));
        }
        let message = self.config.message("", false, true)?;
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
        let message = self.config.message(text, false, true)?;
        Ok(self.push(message, false, now))
    }

    /// Starts closing the connection: queues a close frame (1000). The server's close
    /// then ends the session with [`CloseReason::Normal`].
    pub fn close(&mut self, now: Instant) -> Result<(), Error> {
        let _ = now;
        self.ensure_open()?;
        self.outgoing
            .push_back(WsMessage::Close(Some(CloseFrame::new(CLOSE_NORMAL, ""))));
        self.state = State::Closing;
        Ok(())
    }

    /// Requests sent and not yet completed (including one still being written).
    pub fn open_requests(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the server owes an answer: audio and `complete` of an open request.
    pub fn awaiting_answer(&self) -> bool {
        !self.in_flight.is_empty() && !self.is_closed()
    }

    /// Whether the connection has closed ([`TtsLiveEvent::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Handles one message from the server.
    ///
    /// A frame that is not JSON, a binary frame (the server never sends one) or a
    /// known frame missing its fields is an [`Error::Decode`]; the session stays usable.
    /// Server error frames are events, not errors. Pings and pongs are ignored (the
    /// transport answers pings).
    pub fn handle_message(&mut self, message: WsMessage, now: Instant) -> Result<(), Error> {
        let _ = now;
        if self.state == State::Closed {
            return Ok(());
        }
        match message {
            WsMessage::Text(text) => self.handle_text(text),
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
        self.outgoing.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TtsLiveEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the next keepalive ping
    /// or the idle deadline, whichever comes first. `None` when nothing is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state != State::Open {
            return None;
        }
        let idle = if self.idle_expired {
            None
        } else {
            deadline(self.last_message, self.idle_timeout)
        };
        let ping = self.keepalive.and_then(|interval| {
            let last = self
                .last_ping
                .map_or(self.last_message, |p| p.max(self.last_message));
            deadline(last, interval)
        });
        match (idle, ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on the deadlines that have passed at `now`: queues a keepalive ping, or
    /// records that the server's idle timeout has run out, so that the close that
    /// follows is reported as [`CloseReason::IdleTimeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != State::Open {
            return;
        }
        if !self.idle_expired
            && deadline(self.last_message, self.idle_timeout).is_some_and(|d| d <= now)
        {
            self.idle_expired = true;
        }
        if let Some(interval) = self.keepalive {
            let last = self
                .last_ping
                .map_or(self.last_message, |p| p.max(self.last_message));
            if deadline(last, interval).is_some_and(|d| d <= now) {
                self.outgoing.push_back(WsMessage::Ping(Bytes::new()));
                self.last_ping = Some(now);
            }
        }
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

    fn writing_index(&self) -> Option<u64> {
        if self.writing {
            self.in_flight.back().map(|r| r.index)
        } else {
            None
        }
    }

    /// Queues a message of the current request (opening one if needed) and returns
    /// the request's index. `more` is its `continue`.
    fn push(&mut self, message: WsMessage, more: bool, now: Instant) -> u64 {
        let index = match self.writing_index() {
            Some(index) => index,
            None => {
                let index = self.next_index;
                self.next_index += 1;
                self.in_flight.push_back(InFlight {
                    index,
                    sample_rate: self.config.effective_sample_rate(),
                    server_id: None,
                });
                index
            }
        };
        self.writing = more;
        self.outgoing.push_back(message);
        self.last_message = now;
        self.idle_expired = false;
        index
    }

    fn handle_text(&mut self, text: String) -> Result<(), Error> {
        const WHAT: &str = "TTS WebSocket message";
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::decode(WHAT, e))?;
        let Some(obj) = value.as_object() else {
            self.last_was_error = false;
            self.events.push_back(TtsLiveEvent::Unknown { raw: text });
            return Ok(());
        };
        let status = obj.get("status").and_then(Value::as_str);
        let server_id = obj
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match status {
            Some("chunk") => {
                let audio = data_field(obj, "audio")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::decode(WHAT, "a `chunk` frame without `data.audio`"))?;
                let data = BASE64
                    .decode(audio)
                    .map_err(|e| Error::decode(WHAT, format!("`data.audio` is not base64: {e}")))?;
                self.last_was_error = false;
                let (request_index, sample_rate) = self.attribute(server_id.as_deref());
                if !data.is_empty() {
                    self.events.push_back(TtsLiveEvent::Audio {
                        request_index,
                        data: Bytes::from(data),
                        sample_rate,
                    });
                }
            }
            Some("word_timestamp") => {
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
                self.last_was_error = false;
                let (request_index, _) = self.attribute(server_id.as_deref());
                self.events.push_back(TtsLiveEvent::WordTimestamp {
                    request_index,
                    id,
                    word,
                    start,
                    end,
                });
            }
            Some("complete") => {
                self.last_was_error = false;
                let request_index = match self.take(server_id.as_deref()) {
                    Some(request) => request.index,
                    // A `complete` for nothing we sent: report it against the last request.
                    None => self.next_index.saturating_sub(1),
                };
                self.events.push_back(TtsLiveEvent::Complete {
                    request_index,
                    session_id: obj
                        .get("session_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    request_id: server_id,
                });
            }
            Some("error") | None if status.is_some() || obj.contains_key("error") => {
                let (code, message) = error_fields(obj, &text);
                let lower = message.to_ascii_lowercase();
                let request_index = if lower.contains("inactivity") || lower.contains("timed out") {
                    self.idle_error = true;
                    None
                } else {
                    self.take(server_id.as_deref()).map(|r| r.index)
                };
                self.last_was_error = true;
                self.events.push_back(TtsLiveEvent::Error {
                    request_index,
                    code,
                    message,
                });
            }
            _ => {
                self.last_was_error = false;
                self.events.push_back(TtsLiveEvent::Unknown { raw: text });
            }
        }
        Ok(())
    }

    /// The request a frame belongs to, and its sample rate: the open request the
    /// server's `request_id` names, else the oldest one not yet named (which the id
    /// then names), else the oldest.
    fn attribute(&mut self, server_id: Option<&str>) -> (u64, u32) {
        let position = server_id.and_then(|id| {
            self.in_flight
                .iter()
                .position(|r| r.server_id.as_deref() == Some(id))
                .or_else(|| {
                    let p = self.in_flight.iter().position(|r| r.server_id.is_none())?;
                    self.in_flight[p].server_id = Some(id.to_owned());
                    Some(p)
                })
        });
        match position
            .and_then(|p| self.in_flight.get(p))
            .or(self.in_flight.front())
        {
            Some(r) => (r.index, r.sample_rate),
            // Audio with nothing open: the last request's, at the current rate.
            None => (
                self.next_index.saturating_sub(1),
                self.config.effective_sample_rate(),
            ),
        }
    }

    /// Removes the request a `complete` or error frame finishes: the one the server's
    /// `request_id` names, else the oldest.
    fn take(&mut self, server_id: Option<&str>) -> Option<InFlight> {
        let position = server_id
            .and_then(|id| {
                self.in_flight
                    .iter()
                    .position(|r| r.server_id.as_deref() == Some(id))
            })
            .unwrap_or(0);
        let request = self.in_flight.remove(position)?;
        if self.in_flight.is_empty() {
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
        // clean the close: each gets its own error before `Closed`.
        for request in std::mem::take(&mut self.in_flight) {
            self.events.push_back(TtsLiveEvent::Error {
                request_index: Some(request.index),
                code: None,
                message: "the connection closed before this request's `complete`: its audio \
                          is incomplete"
                    .to_owned(),
            });
        }
        self.events
            .push_back(TtsLiveEvent::Closed { code, reason, why });
    }
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
