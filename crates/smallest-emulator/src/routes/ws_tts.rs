//! `WSS /waves/v1/tts/live` — streaming synthesis over a WebSocket (API.md §3.5, §3.5.1, §8.4;
//! conflicts §11 #11–#16).
//!
//! Before the upgrade: authentication (`401`/`403` as on HTTP), `?timeout=N` (a positive integer
//! of seconds, default 60; anything else is `400`), and the key's connection limit, five sockets
//! per TTS concurrency unit (`429` beyond).
//!
//! # Legacy mode (messages without `context_id`)
//!
//! On the socket every client message is a full TTS body, validated like the HTTP route's (zod
//! issues become one error frame `{"status":"error","message":…}`; the socket stays open);
//! `output_format` is ignored (WS audio is PCM s16le mono) and `text` may be empty. Text is
//! buffered while `continue` is `true`; a message with `flush: true`, a message without
//! `continue` (the end of the request), or `max_buffer_flush_ms` without a new message synthesises
//! the buffer *as one text* — so pieces sent with `continue` give exactly the audio of the whole
//! text sent at once. Audio goes out as `chunk` frames of 4 KiB of PCM, interleaved in audio order
//! with `word_timestamp` frames (only with `word_timestamps: true` and one of the six voices that
//! support them). The end of the request sends `complete` after `complete_backoff_ms` (when the
//! client sent none: the builder's [`ws_complete_backoff`](crate::EmulatorBuilder::ws_complete_backoff),
//! default 0; the real service waits 4 s). Requests on one socket are served in order; the socket
//! stays open after `complete` unless the builder says otherwise.
//!
//! A keepalive — `text` whitespace-only, no `context_id`, `continue: true`, no `flush`, while no
//! legacy request is buffering text — does nothing but restart the idle timer (Pipecat sends
//! `{"text":" ",…}` every 30 s); it is not validated.
//!
//! # Continuations (messages with a string `context_id`)
//!
//! A fragment is a full TTS body (validated as above) plus `context_id`, `continue` (default
//! `false`) and optionally `max_buffer_delay_ms` (an integer 0–10000 — the range is the
//! emulator's choice, API.md states none; anything else gets the error frame
//! `Invalid request: max_buffer_delay_ms: Expected an integer from 0 to 10000, received <value>`).
//! The text of a context's fragments is joined verbatim into its buffer, and released:
//!
//! - up to and including the buffer's last sentence boundary (`.`, `!`, `?` followed by whitespace
//!   or at the end of the buffer) as soon as there is one;
//! - all of it once `max_buffer_delay_ms` (the latest value a fragment of the context gave) has
//!   passed since the fragment that brought the oldest unreleased text (`0`: at once);
//! - all of it on `flush: true`;
//! - the rest on `continue: false`, which closes the context (a whitespace-only rest is dropped).
//!
//! Each release is synthesised as a request of its own: `chunk`s, `word_timestamp`s (ids from 0
//! and times from 0.0 within the release), then one `complete` (none is marked final), all with a
//! `request_id` of the release and, unless [`ws_echo_context_id`](crate::EmulatorBuilder::ws_echo_context_id)
//! is off, `"context_id"`. The releases of a context in order concatenate into audio that
//! transcribes as the joined text (each release is one utterance of emulator speech; the leading
//! whitespace of a release is synthesised too). Contexts are served one at a time, in order of
//! their first fragment: the next starts once the current one is closed and its last `complete`
//! sent; fragments of queued contexts are buffered meanwhile. A fragment for a closed context whose
//! audio is still pending gets an error frame; once the context is finished its id may open a new
//! one. `ws_close_after_complete` closes the socket after a context's last `complete`.
//!
//! `{"context_id":"<id>","cancel_request":true}` (other fields ignored; the real shape is
//! unverified, API.md §3.5.1) drops the context at once: no further frame of it (a release stops
//! between two frames), its slot is freed, and later fragments with its id are ignored on this
//! socket. Unknown and finished contexts: nothing happens, no error frame.
//!
//! # Both modes
//!
//! A synthesis (a legacy flush or a release) holds one of the key's TTS slots — the same ones the
//! HTTP routes use — from its start (through the configured latency) to its last audio frame;
//! without a free slot the request gets the error frame `Too many concurrent requests: …` and its
//! buffered text is dropped (for a context: the whole context; unlike a cancelled one, its id may
//! be sent again, which a client does after a hard cancel). A legacy synthesis
//! is sent to its end before the socket reads on, so contexts wait meanwhile. The idle timeout
//! counts from the last client message or the end of the last synthesis, and does not run while a
//! release is being generated; on expiry the error frame of the real service is sent, then a close
//! (`1000`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{FutureExt, StreamExt};
use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Ctx;
use super::tts::{WsMessageParams, validate_ws_message};
use crate::auth::Caller;
use crate::body::Body;
use crate::errors;
use crate::library::Scope;
use crate::speech::Synthesizer;
use crate::state::{State, TtsSlot};
use crate::ws::{self, Handshake, Lease, Socket};

/// Idle timeout when the URL has no `timeout`.
const DEFAULT_IDLE_SECS: u64 = 60;
/// Largest incoming message.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest text buffered for one synthesis.
const MAX_BUFFERED_BYTES: usize = 1024 * 1024;
/// PCM bytes per `chunk` frame.
const CHUNK_BYTES: usize = 4096;
/// Sockets per TTS concurrency unit (API.md §8.4).
const SOCKETS_PER_UNIT: usize = 5;
/// Voices whose family emits `word_timestamp` frames (API.md §3.5).
const TIMESTAMP_VOICES: [&str; 6] = ["meher", "devansh", "kartik", "maithili", "liam", "avery"];
/// Share of a text byte's symbol that is tone (the rest is the gap before the next symbol).
const TONE_SHARE: f64 = 0.8;

fn json_error(status: StatusCode, error: &str, message: String) -> Response<Body> {
    errors::json(status, &json!({ "error": error, "message": message }))
}

/// Answers the upgrade of `GET /waves/v1/tts/live`.
pub(super) fn upgrade(ctx: &mut Ctx<'_>, caller: &Caller) -> Response<Body> {
    if let Err(resp) = caller.require_product_access(ctx.request_id) {
        return *resp;
    }
    let handshake = match Handshake::check(ctx.parts) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let query = ctx.query();
    let idle_secs = match query.iter().find(|(k, _)| k == "timeout") {
        None => DEFAULT_IDLE_SECS,
        Some((_, v)) => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => u64::from(n),
            _ => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    format!(
                        "Query parameter 'timeout' must be a positive integer number of seconds, got '{v}'."
                    ),
                );
            }
        },
    };
    let state = Arc::clone(ctx.state);
    let limit = state
        .settings
        .tts_concurrency
        .saturating_mul(SOCKETS_PER_UNIT);
    let Some(lease) = state.ws.try_open_tts(caller.key(), limit) else {
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many connections",
            format!(
                "This API key already has {limit} text-to-speech WebSocket connection(s) open, its limit \
                 ({SOCKETS_PER_UNIT} per concurrency unit). Close one before opening another."
            ),
        );
    };
    let session = Session {
        id: format!("ws_{}", state.new_id()),
        key: caller.key().to_owned(),
        idle: Duration::from_secs(idle_secs),
        idle_secs,
        state,
    };
    let hub = &ctx.state.ws;
    handshake.accept(hub, ws::config(MAX_MESSAGE_BYTES), move |socket| {
        session.run(socket, lease)
    })
}

/// One validated client message.
struct Request {
    text: String,
    voice_id: String,
    params: WsMessageParams,
    dicts: Vec<String>,
    word_timestamps: bool,
    max_buffer_flush: Duration,
    cont: bool,
    flush: bool,
    complete_backoff: Option<Duration>,
    /// `max_buffer_delay_ms` of a continuation fragment (ignored in the legacy mode).
    max_buffer_delay: Option<Duration>,
}

/// One zod-style issue, as `path: message`.
fn issue(field: &str, message: impl std::fmt::Display) -> String {
    format!("{field}: {message}")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn ws_bool(obj: &Map<String, Value>, field: &str, issues: &mut Vec<String>) -> bool {
    match obj.get(field) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            issues.push(issue(
                field,
                format_args!("Expected boolean, received {}", type_name(v)),
            ));
            false
        }
    }
}

/// An optional number field in `0..=max`; `integer` refuses fractions.
fn ws_number(
    obj: &Map<String, Value>,
    field: &str,
    max: f64,
    integer: bool,
    issues: &mut Vec<String>,
) -> Option<f64> {
    let v = obj.get(field)?;
    let Some(n) = v.as_f64().filter(|_| v.is_number()) else {
        issues.push(issue(
            field,
            format_args!("Expected number, received {}", type_name(v)),
        ));
        return None;
    };
    if integer && n.fract() != 0.0 {
        issues.push(issue(field, "Expected integer, received float"));
        None
    } else if n < 0.0 {
        issues.push(issue(field, "Number must be greater than or equal to 0"));
        None
    } else if n > max {
        issues.push(issue(
            field,
            format_args!("Number must be less than or equal to {max}"),
        ));
        None
    } else {
        Some(n)
    }
}

/// Largest `max_buffer_delay_ms` of a continuation fragment (the emulator's choice: API.md §3.5.1
/// states no range).
const MAX_BUFFER_DELAY_MS: u64 = 10_000;

/// `max_buffer_delay_ms`: an integer in `0..=MAX_BUFFER_DELAY_MS`, when present.
fn buffer_delay(obj: &Map<String, Value>, issues: &mut Vec<String>) -> Option<Duration> {
    let v = obj.get("max_buffer_delay_ms")?;
    if v.is_null() {
        return None;
    }
    match v.as_u64() {
        Some(ms) if ms <= MAX_BUFFER_DELAY_MS => Some(Duration::from_millis(ms)),
        _ => {
            issues.push(issue(
                "max_buffer_delay_ms",
                format_args!("Expected an integer from 0 to {MAX_BUFFER_DELAY_MS}, received {v}"),
            ));
            None
        }
    }
}

/// Parses and validates one client message; `Err` is the error frame's message. `continuation`:
/// the message carries a `context_id` (then `max_buffer_delay_ms` is read too).
fn parse_message(raw: &str, scope: &Scope<'_>, continuation: bool) -> Result<Request, String> {
    let value: Value =
        serde_json::from_str(raw).map_err(|e| format!("Invalid JSON message: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err(format!(
            "Invalid request: Expected object, received {}",
            type_name(&value)
        ));
    };
    let mut issues = Vec::new();
    // WS audio is always PCM: `output_format` is not part of the WS schema and is ignored.
    obj.remove("output_format");
    let text = match obj.get("text") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let mut shared = obj.clone();
    if text.as_deref() == Some("") {
        // An empty piece (typically with `flush: true`) is valid on WS; validate the rest of the
        // body as the HTTP route would, with a stand-in text.
        shared.insert("text".to_owned(), Value::from("-"));
    }
    let params = match validate_ws_message(&Value::Object(shared), scope) {
        Ok(p) => Some(p),
        Err(zod) => {
            for i in zod.as_array().into_iter().flatten() {
                let path = i["path"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|s| match s {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .unwrap_or_default();
                let message = i["message"].as_str().unwrap_or("Invalid");
                issues.push(if path.is_empty() {
                    message.to_owned()
                } else {
                    issue(&path, message)
                });
            }
            None
        }
    };
    let word_timestamps = ws_bool(&obj, "word_timestamps", &mut issues);
    let cont = ws_bool(&obj, "continue", &mut issues);
    let flush = ws_bool(&obj, "flush", &mut issues);
    let max_buffer_flush = ws_number(&obj, "max_buffer_flush_ms", 1000.0, true, &mut issues);
    let complete_backoff = ws_number(&obj, "complete_backoff_ms", 10_000.0, false, &mut issues);
    let max_buffer_delay = if continuation {
        buffer_delay(&obj, &mut issues)
    } else {
        None
    };
    let (Some(params), Some(text), true) = (params, text, issues.is_empty()) else {
        return Err(format!("Invalid request: {}", issues.join("; ")));
    };
    let dicts = obj
        .get("pronunciation_dicts")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Request {
        text,
        voice_id: obj
            .get("voice_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        params,
        dicts,
        word_timestamps,
        max_buffer_flush: Duration::from_millis(max_buffer_flush.unwrap_or(0.0) as u64),
        cont,
        flush,
        complete_backoff: complete_backoff.map(|ms| Duration::from_secs_f64(ms / 1000.0)),
        max_buffer_delay,
    })
}

/// The request in progress on a socket: text buffered since the last synthesis, the settings of
/// its latest message, and what was sent of it so far.
struct Pending {
    task: String,
    buffer: String,
    buffered_since: Option<Instant>,
    last: Request,
    next_word_id: usize,
    audio_secs: f64,
}

impl Pending {
    /// When `max_buffer_flush_ms` makes buffered text due.
    fn flush_at(&self) -> Option<Instant> {
        let ms = self.last.max_buffer_flush;
        if !self.last.cont || ms.is_zero() || self.buffer.is_empty() {
            return None;
        }
        self.buffered_since.map(|since| since + ms)
    }
}

/// Why a synthesis did not happen.
enum Abort {
    /// No TTS slot was free; the request was dropped (the error frame was sent).
    Refused,
    /// The connection is gone.
    Gone,
}

/// Whether the socket is still open after handling a message.
enum Flow {
    Open,
    Closed,
}

/// A server frame (`chunk`, `word_timestamp`, `complete`), in the service's field order.
#[derive(Serialize)]
struct Frame<'a> {
    session_id: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_id: Option<&'a str>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Audio {
        audio: String,
    },
    Word {
        id: usize,
        word: &'a str,
        start: f64,
        end: f64,
    },
}

/// A word whose timing is known, waiting for its audio to be sent.
struct TimedWord {
    id: usize,
    word: String,
    start: f64,
    end: f64,
    /// Sample (within this synthesis) where the word's last tone ends.
    end_sample: usize,
}

/// Byte ranges of the whitespace-separated words of `text`.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One frame's worth of a synthesis.
enum Out {
    Chunk(Vec<u8>),
    Word(TimedWord),
}

/// The frames of one synthesis, rendered lazily: 4 KiB PCM chunks, each word's timestamp right
/// after the chunk that completes its audio.
struct Render {
    synth: std::iter::Enumerate<Synthesizer>,
    rate: u32,
    spans: Vec<(usize, usize)>,
    labels: Vec<String>,
    next_span: usize,
    word_start: usize,
    /// Word ids and times are offset by these (legacy requests count across flushes).
    base_id: usize,
    base_secs: f64,
    ready: VecDeque<TimedWord>,
    out: VecDeque<Out>,
    pcm: Vec<u8>,
    samples: usize,
    sent_samples: usize,
    done: bool,
}

impl Render {
    /// `text` as the client sent it, `spoken` as it is synthesised (respelled by dictionaries).
    fn new(text: &str, spoken: &str, r: &Request, base_id: usize, base_secs: f64) -> Self {
        // Words to time: the spoken words, labelled with the input's words when they correspond
        // one to one (a dictionary may respell a word as several).
        let timed = r.word_timestamps && TIMESTAMP_VOICES.contains(&r.voice_id.as_str());
        let spans = if timed {
            word_spans(spoken)
        } else {
            Vec::new()
        };
        let input_spans = if timed { word_spans(text) } else { Vec::new() };
        let labels: Vec<String> = if input_spans.len() == spans.len() {
            input_spans
                .iter()
                .map(|&(s, e)| text[s..e].to_owned())
                .collect()
        } else {
            spans
                .iter()
                .map(|&(s, e)| spoken[s..e].to_owned())
                .collect()
        };
        let rate = r.params.sample_rate;
        Self {
            synth: Synthesizer::new(spoken, rate, r.params.speed).enumerate(),
            rate,
            spans,
            labels,
            next_span: 0,
            word_start: 0,
            base_id,
            base_secs,
            ready: VecDeque::new(),
            out: VecDeque::new(),
            pcm: Vec::with_capacity(CHUNK_BYTES * 2),
            samples: 0,
            sent_samples: 0,
            done: false,
        }
    }

    fn secs(&self, samples: usize) -> f64 {
        samples as f64 / f64::from(self.rate.max(1))
    }

    /// Words in this synthesis.
    fn word_count(&self) -> usize {
        self.spans.len()
    }

    /// Seconds of audio rendered so far (all of it, once [`Render::next`] returned `None`).
    fn audio_secs(&self) -> f64 {
        self.secs(self.samples)
    }

    fn release_words(&mut self, through: usize) {
        while self.ready.front().is_some_and(|w| w.end_sample <= through) {
            let Some(w) = self.ready.pop_front() else {
                break;
            };
            self.out.push_back(Out::Word(w));
        }
    }

    /// The next frame, or `None` at the end of the audio.
    fn next(&mut self) -> Option<Out> {
        loop {
            if let Some(out) = self.out.pop_front() {
                return Some(out);
            }
            if self.done {
                return None;
            }
            let Some((piece_index, piece)) = self.synth.next() else {
                self.done = true;
                if !self.pcm.is_empty() {
                    self.out
                        .push_back(Out::Chunk(std::mem::take(&mut self.pcm)));
                }
                self.release_words(usize::MAX);
                continue;
            };
            // Piece 0 is the lead-in and start marker; piece k ≥ 1 is text byte k − 1.
            if let Some(byte) = piece_index.checked_sub(1)
                && let Some(&(s, e)) = self.spans.get(self.next_span)
            {
                if byte == s {
                    self.word_start = self.samples;
                }
                if byte + 1 == e {
                    let tone = (piece.len() as f64 * TONE_SHARE).round() as usize;
                    let end_sample = self.samples + tone;
                    let word = TimedWord {
                        id: self.base_id + self.next_span,
                        word: self.labels.get(self.next_span).cloned().unwrap_or_default(),
                        start: round3(self.base_secs + self.secs(self.word_start)),
                        end: round3(self.base_secs + self.secs(end_sample)),
                        end_sample,
                    };
                    self.ready.push_back(word);
                    self.next_span += 1;
                }
            }
            self.samples += piece.len();
            for s in piece {
                self.pcm.extend_from_slice(&s.to_le_bytes());
            }
            while self.pcm.len() >= CHUNK_BYTES {
                let rest = self.pcm.split_off(CHUNK_BYTES);
                let chunk = std::mem::replace(&mut self.pcm, rest);
                self.sent_samples += chunk.len() / 2;
                self.out.push_back(Out::Chunk(chunk));
                self.release_words(self.sent_samples);
            }
        }
    }
}

/// One continuation context (API.md §3.5.1): the text of its fragments not released yet.
struct Context {
    id: String,
    buffer: String,
    /// Arrival of the fragment the oldest unreleased text came with (approximately: after a
    /// release at a sentence boundary, the latest fragment's).
    since: Option<Instant>,
    last_arrival: Instant,
    /// The settings of its latest fragment.
    last: Request,
    max_delay: Option<Duration>,
    /// A fragment with `continue: false` arrived.
    closed: bool,
    /// A fragment with `flush: true` asked for the whole buffer to be released now.
    flush: bool,
    /// Releases whose `complete` was sent.
    releases: usize,
}

/// The end (exclusive) of the last sentence of `text`: a `.`, `!` or `?` followed by whitespace or
/// at the end.
fn sentence_end(text: &str) -> Option<usize> {
    text.char_indices()
        .rev()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?')
                && text[i + 1..].chars().next().is_none_or(char::is_whitespace)
        })
        .map(|(i, _)| i + 1)
}

impl Context {
    /// How many bytes of the buffer are due for release at `now`.
    fn due(&self, now: Instant) -> Option<usize> {
        if let Some(end) = sentence_end(&self.buffer) {
            return Some(end);
        }
        if self.buffer.trim().is_empty() {
            return None;
        }
        if self.closed || self.flush {
            return Some(self.buffer.len());
        }
        self.deadline()
            .filter(|&at| now >= at)
            .map(|_| self.buffer.len())
    }

    /// When `max_buffer_delay_ms` releases the buffer.
    fn deadline(&self) -> Option<Instant> {
        if self.closed || self.buffer.trim().is_empty() {
            return None;
        }
        Some(self.since? + self.max_delay?)
    }

    /// Closed, with nothing left worth synthesising (a whitespace-only rest is dropped).
    fn finished(&self) -> bool {
        self.closed && self.buffer.trim().is_empty()
    }
}

/// Where a release is.
enum Phase {
    /// Holding its TTS slot through the configured latency.
    Latency(Instant),
    /// Sending its frames.
    Streaming,
    /// Audio sent, slot freed; `complete` is due at this instant.
    Backoff(Instant),
}

/// The synthesis of one release of the head context.
struct Release {
    context: String,
    task: String,
    render: Render,
    slot: Option<TtsSlot>,
    phase: Phase,
    backoff: Duration,
    session_id: Option<String>,
    request_id: Option<String>,
}

/// The continuation contexts of a socket: served one at a time, in order of their first fragment.
#[derive(Default)]
struct Live {
    queue: VecDeque<Context>,
    release: Option<Release>,
    /// Contexts cancelled (or dropped) on this socket, most recent last; their later fragments
    /// are ignored.
    cancelled: VecDeque<String>,
}

/// Cancelled context ids remembered per socket.
const REMEMBERED_CANCELS: usize = 1024;

impl Live {
    fn streaming(&self) -> bool {
        matches!(
            self.release.as_ref().map(|r| &r.phase),
            Some(Phase::Streaming)
        )
    }

    /// The next instant a timer moves the contexts on.
    fn deadline(&self) -> Option<Instant> {
        match &self.release {
            Some(r) => match r.phase {
                Phase::Latency(at) | Phase::Backoff(at) => Some(at),
                Phase::Streaming => None,
            },
            None => self.queue.front().and_then(Context::deadline),
        }
    }

    /// Drops a context (its release too, at once); remembers its id. `false` if it was unknown.
    fn remove(&mut self, id: &str) -> bool {
        let Some(index) = self.queue.iter().position(|c| c.id == id) else {
            return false;
        };
        self.queue.remove(index);
        if self.release.as_ref().is_some_and(|r| r.context == id) {
            // Frees the TTS slot, if still held.
            self.release = None;
        }
        if self.cancelled.len() >= REMEMBERED_CANCELS {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(id.to_owned());
        true
    }

    /// Drops a context that was refused (no free TTS slot) without remembering its id:
    /// the client may send it again, as after a finished context.
    fn refuse(&mut self, id: &str) {
        if let Some(index) = self.queue.iter().position(|c| c.id == id) {
            self.queue.remove(index);
        }
    }

    fn is_cancelled(&self, id: &str) -> bool {
        self.cancelled.iter().any(|c| c == id)
    }
}

struct Session {
    state: Arc<State>,
    key: String,
    id: String,
    idle: Duration,
    idle_secs: u64,
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What handling one incoming message did.
enum Handled {
    /// A client message was handled (the idle timer restarts).
    Message,
    /// A control frame (nothing to do).
    Control,
    /// The connection is gone or closed.
    Closed,
}

impl Session {
    async fn run(self, mut socket: Socket, _lease: Lease) {
        let mut shutdown = self.state.ws.shutdown_signal();
        let mut pending: Option<Pending> = None;
        let mut live = Live::default();
        let mut idle_deadline = Instant::now() + self.idle;
        loop {
            if *shutdown.borrow() {
                ws::close(&mut socket, CloseCode::Away, "server shutting down").await;
                return;
            }
            if let Flow::Closed = self.advance(&mut socket, &mut live).await {
                return;
            }
            if live.streaming() {
                // Between two frames of a release, handle whatever the client sent (a cancel
                // stops the release before its next frame).
                if let Some(message) = socket.next().now_or_never() {
                    match self
                        .on_message(&mut socket, &mut pending, &mut live, message)
                        .await
                    {
                        Handled::Closed => return,
                        Handled::Message => idle_deadline = Instant::now() + self.idle,
                        Handled::Control => {}
                    }
                    continue;
                }
                match self.step(&mut socket, &mut live).await {
                    Ok(true) => idle_deadline = Instant::now() + self.idle,
                    Ok(false) => {}
                    Err(()) => return,
                }
                continue;
            }
            let flush_at = pending.as_ref().and_then(Pending::flush_at);
            let live_at = live.deadline();
            // The idle timer does not run while a release is being generated.
            let idle_at = live.release.is_none().then_some(idle_deadline);
            let message = tokio::select! {
                message = socket.next() => message,
                () = sleep_until_some(idle_at) => {
                    let message = format!(
                        "Connection timed out after {} seconds of inactivity",
                        self.idle_secs
                    );
                    let frame = json!({ "status": "error", "message": message });
                    if ws::send_json(&mut socket, &frame).await.is_ok() {
                        ws::close(&mut socket, CloseCode::Normal, "idle timeout").await;
                    }
                    return;
                }
                () = sleep_until_some(flush_at) => {
                    if let Some(p) = pending.as_mut() {
                        match self.synthesize(&mut socket, p).await {
                            Ok(()) => {}
                            Err(Abort::Refused) => pending = None,
                            Err(Abort::Gone) => return,
                        }
                    }
                    idle_deadline = Instant::now() + self.idle;
                    continue;
                }
                () = sleep_until_some(live_at) => {
                    match self.on_timer(&mut socket, &mut live).await {
                        Ok(true) => idle_deadline = Instant::now() + self.idle,
                        Ok(false) => {}
                        Err(()) => return,
                    }
                    continue;
                }
                () = ws::shut_down(&mut shutdown) => {
                    ws::close(&mut socket, CloseCode::Away, "server shutting down").await;
                    return;
                }
            };
            match self
                .on_message(&mut socket, &mut pending, &mut live, message)
                .await
            {
                Handled::Closed => return,
                Handled::Message => idle_deadline = Instant::now() + self.idle,
                Handled::Control => {}
            }
        }
    }

    async fn on_message(
        &self,
        socket: &mut Socket,
        pending: &mut Option<Pending>,
        live: &mut Live,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Handled {
        let flow = match message {
            None | Some(Err(_)) => return Handled::Closed,
            Some(Ok(Message::Text(text))) => {
                self.dispatch(socket, pending, live, text.as_str()).await
            }
            Some(Ok(Message::Binary(_))) => {
                let frame = json!({
                    "status": "error",
                    "message": "Binary frames are not supported: send each request as a JSON text frame.",
                });
                match ws::send_json(socket, &frame).await {
                    Ok(()) => Flow::Open,
                    Err(()) => Flow::Closed,
                }
            }
            // Control frames: pings are answered by the protocol layer, and after a close the
            // next read flushes the reply and ends the stream.
            Some(Ok(_)) => return Handled::Control,
        };
        match flow {
            Flow::Open => Handled::Message,
            Flow::Closed => Handled::Closed,
        }
    }

    /// Routes one text message: a cancellation, a continuation fragment, a keepalive, or a
    /// legacy request.
    async fn dispatch(
        &self,
        socket: &mut Socket,
        pending: &mut Option<Pending>,
        live: &mut Live,
        raw: &str,
    ) -> Flow {
        let value = serde_json::from_str::<Value>(raw).ok();
        if let Some(obj) = value.as_ref().and_then(Value::as_object) {
            let context_id = obj.get("context_id");
            if obj.get("cancel_request") == Some(&Value::Bool(true)) {
                return match context_id {
                    Some(Value::String(id)) => {
                        // Unknown and finished contexts: nothing to do.
                        live.remove(id);
                        Flow::Open
                    }
                    _ => {
                        self.error_frame(
                            socket,
                            "Invalid request: context_id: a cancel_request needs the context_id \
                             (a string) of the context to cancel",
                        )
                        .await
                    }
                };
            }
            match context_id {
                Some(Value::String(id)) => return self.fragment(socket, live, id, raw).await,
                None | Some(Value::Null) => {}
                Some(other) => {
                    let message = format!(
                        "Invalid request: context_id: Expected string, received {}",
                        type_name(other)
                    );
                    return self.error_frame(socket, &message).await;
                }
            }
            // A keepalive (Pipecat sends `{"text":" ",…}` every 30 s): nothing but the idle
            // timer's restart, unless a legacy request is buffering text.
            let blank = obj
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| t.trim().is_empty());
            let cont = obj.get("continue") == Some(&Value::Bool(true));
            let flush = obj.get("flush") == Some(&Value::Bool(true));
            if blank && cont && !flush && pending.as_ref().is_none_or(|p| p.buffer.is_empty()) {
                return Flow::Open;
            }
        }
        self.handle(socket, pending, raw).await
    }

    /// An error frame about context `id` (carrying its `context_id` when echoing).
    async fn context_error(&self, socket: &mut Socket, id: &str, message: &str) -> Flow {
        let mut frame = json!({ "status": "error", "message": message });
        if self.state.settings.ws.echo_context_id {
            frame["context_id"] = Value::from(id);
        }
        match ws::send_json(socket, &frame).await {
            Ok(()) => Flow::Open,
            Err(()) => Flow::Closed,
        }
    }

    /// A continuation fragment: joins its text to its context (opening one, queued behind the
    /// others, for a new `context_id`).
    async fn fragment(&self, socket: &mut Socket, live: &mut Live, id: &str, raw: &str) -> Flow {
        if live.is_cancelled(id) {
            // A fragment that crossed its cancellation (or arrived after its context was dropped).
            return Flow::Open;
        }
        if id.is_empty() {
            return self
                .error_frame(socket, "Invalid request: context_id: must not be empty")
                .await;
        }
        let scope = Scope::of(&self.state, &self.key);
        let mut request = match parse_message(raw, &scope, true) {
            Ok(r) => r,
            Err(message) => return self.context_error(socket, id, &message).await,
        };
        let now = Instant::now();
        let text = std::mem::take(&mut request.text);
        let max_delay = request.max_buffer_delay;
        let closes = !request.cont;
        let flush = request.flush;
        let index = match live.queue.iter().position(|c| c.id == id) {
            Some(i) => {
                if live.queue[i].closed {
                    let message = format!(
                        "Invalid request: context_id: context '{id}' was closed by a fragment \
                         with continue: false; its audio is still being sent. Use a new \
                         context_id."
                    );
                    return self.context_error(socket, id, &message).await;
                }
                live.queue[i].last = request;
                i
            }
            None => {
                live.queue.push_back(Context {
                    id: id.to_owned(),
                    buffer: String::new(),
                    since: None,
                    last_arrival: now,
                    max_delay: None,
                    closed: false,
                    flush: false,
                    releases: 0,
                    last: request,
                });
                live.queue.len() - 1
            }
        };
        let Some(ctx) = live.queue.get_mut(index) else {
            return Flow::Open;
        };
        if ctx.buffer.len() + text.len() > MAX_BUFFERED_BYTES {
            live.remove(id);
            let message = format!(
                "Too much buffered text: a context may buffer at most {} KiB before it is \
                 released; the context was dropped.",
                MAX_BUFFERED_BYTES / 1024
            );
            return self.context_error(socket, id, &message).await;
        }
        if ctx.buffer.trim().is_empty() && !text.trim().is_empty() {
            ctx.since = Some(now);
        }
        ctx.buffer.push_str(&text);
        ctx.last_arrival = now;
        if max_delay.is_some() {
            ctx.max_delay = max_delay;
        }
        ctx.closed = closes;
        ctx.flush |= flush && !ctx.buffer.trim().is_empty();
        Flow::Open
    }

    /// Starts the head context's next release when one is due, and retires finished contexts.
    async fn advance(&self, socket: &mut Socket, live: &mut Live) -> Flow {
        while live.release.is_none() {
            let now = Instant::now();
            let Some(head) = live.queue.front_mut() else {
                break;
            };
            if let Some(end) = head.due(now) {
                let rest = head.buffer.split_off(end);
                let text = std::mem::replace(&mut head.buffer, rest);
                head.flush &= !head.buffer.trim().is_empty();
                head.since = (!head.buffer.trim().is_empty()).then_some(head.last_arrival);
                let id = head.id.clone();
                let Some(slot) = self.state.try_acquire_tts(&self.key) else {
                    live.refuse(&id);
                    let message = self.too_many_message();
                    return self.context_error(socket, &id, &message).await;
                };
                let spoken = self
                    .state
                    .library
                    .respell(&self.key, text.clone(), &head.last.dicts);
                let latency = self.state.settings.tts_latency;
                live.release = Some(Release {
                    context: id,
                    task: format!("task_{}", self.state.new_id()),
                    render: Render::new(&text, &spoken, &head.last, 0, 0.0),
                    slot: Some(slot),
                    phase: if latency.is_zero() {
                        Phase::Streaming
                    } else {
                        Phase::Latency(now + latency)
                    },
                    backoff: head
                        .last
                        .complete_backoff
                        .unwrap_or(self.state.settings.ws.complete_backoff),
                    session_id: head.last.params.session_id.clone(),
                    request_id: head.last.params.request_id.clone(),
                });
                break;
            }
            if !head.finished() {
                break;
            }
            let spoke = head.releases > 0;
            live.queue.pop_front();
            if spoke && self.state.settings.ws.close_after_complete {
                ws::close(socket, CloseCode::Normal, "").await;
                return Flow::Closed;
            }
        }
        Flow::Open
    }

    /// A release's timer fired: its latency is over, or its `complete` is due. `Ok(true)` when a
    /// `complete` was sent.
    async fn on_timer(&self, socket: &mut Socket, live: &mut Live) -> Result<bool, ()> {
        let now = Instant::now();
        let Some(release) = live.release.as_mut() else {
            // The head's `max_buffer_delay_ms`: `advance` releases it.
            return Ok(false);
        };
        match release.phase {
            Phase::Latency(at) if now >= at => {
                release.phase = Phase::Streaming;
                Ok(false)
            }
            Phase::Backoff(at) if now >= at => self.complete(socket, live).await.map(|()| true),
            _ => Ok(false),
        }
    }

    /// Sends the next frame of the streaming release. `Ok(true)` when its `complete` was sent.
    async fn step(&self, socket: &mut Socket, live: &mut Live) -> Result<bool, ()> {
        let Some(release) = live.release.as_mut() else {
            return Ok(false);
        };
        let echo = self.state.settings.ws.echo_context_id;
        let frame = |status, data| Frame {
            session_id: &self.id,
            request_id: &release.task,
            external_session_id: release.session_id.as_deref(),
            external_request_id: release.request_id.as_deref(),
            context_id: echo.then_some(release.context.as_str()),
            status,
            data,
        };
        match release.render.next() {
            Some(Out::Chunk(pcm)) => {
                let audio = base64::engine::general_purpose::STANDARD.encode(&pcm);
                ws::send_json(socket, &frame("chunk", Some(Data::Audio { audio }))).await?;
                Ok(false)
            }
            Some(Out::Word(w)) => {
                let data = Data::Word {
                    id: w.id,
                    word: &w.word,
                    start: w.start,
                    end: w.end,
                };
                ws::send_json(socket, &frame("word_timestamp", Some(data))).await?;
                Ok(false)
            }
            None => {
                // The last audio frame is out: the slot is free during the backoff.
                release.slot = None;
                if release.backoff.is_zero() {
                    self.complete(socket, live).await.map(|()| true)
                } else {
                    release.phase = Phase::Backoff(Instant::now() + release.backoff);
                    Ok(false)
                }
            }
        }
    }

    /// Sends the current release's `complete` and ends it.
    async fn complete(&self, socket: &mut Socket, live: &mut Live) -> Result<(), ()> {
        let Some(release) = live.release.take() else {
            return Ok(());
        };
        let frame = Frame {
            session_id: &self.id,
            request_id: &release.task,
            external_session_id: release.session_id.as_deref(),
            external_request_id: release.request_id.as_deref(),
            context_id: self
                .state
                .settings
                .ws
                .echo_context_id
                .then_some(release.context.as_str()),
            status: "complete",
            data: None,
        };
        ws::send_json(socket, &frame).await?;
        if let Some(ctx) = live.queue.iter_mut().find(|c| c.id == release.context) {
            ctx.releases += 1;
        }
        Ok(())
    }

    fn too_many_message(&self) -> String {
        format!(
            "Too many concurrent requests: this API key already has {} text-to-speech request(s) \
             in flight, its concurrency limit. Wait for one to finish before sending another.",
            self.state.settings.tts_concurrency
        )
    }

    async fn error_frame(&self, socket: &mut Socket, message: &str) -> Flow {
        let frame = json!({ "status": "error", "message": message });
        match ws::send_json(socket, &frame).await {
            Ok(()) => Flow::Open,
            Err(()) => Flow::Closed,
        }
    }

    async fn handle(&self, socket: &mut Socket, pending: &mut Option<Pending>, raw: &str) -> Flow {
        let scope = Scope::of(&self.state, &self.key);
        let request = match parse_message(raw, &scope, false) {
            Ok(r) => r,
            Err(message) => return self.error_frame(socket, &message).await,
        };
        let buffered = pending.as_ref().map_or(0, |p| p.buffer.len());
        if buffered + request.text.len() > MAX_BUFFERED_BYTES {
            *pending = None;
            let message = format!(
                "Too much buffered text: a request may buffer at most {} KiB before it is flushed; \
                 the buffered text was dropped.",
                MAX_BUFFERED_BYTES / 1024
            );
            return self.error_frame(socket, &message).await;
        }
        let p = match pending {
            Some(p) => {
                p.buffer.push_str(&request.text);
                p.last = request;
                p
            }
            None => pending.insert(Pending {
                task: format!("task_{}", self.state.new_id()),
                buffer: request.text.clone(),
                buffered_since: None,
                last: request,
                next_word_id: 0,
                audio_secs: 0.0,
            }),
        };
        if !p.buffer.is_empty() && p.buffered_since.is_none() {
            p.buffered_since = Some(Instant::now());
        }
        if p.last.flush || !p.last.cont {
            match self.synthesize(socket, p).await {
                Ok(()) => {}
                Err(Abort::Refused) => {
                    *pending = None;
                    return Flow::Open;
                }
                Err(Abort::Gone) => return Flow::Closed,
            }
        }
        if p.last.cont {
            return Flow::Open;
        }
        // The end of the request.
        let backoff = p
            .last
            .complete_backoff
            .unwrap_or(self.state.settings.ws.complete_backoff);
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
        let sent = ws::send_json(socket, &self.frame(p, "complete", None)).await;
        *pending = None;
        if sent.is_err() {
            return Flow::Closed;
        }
        if self.state.settings.ws.close_after_complete {
            ws::close(socket, CloseCode::Normal, "").await;
            return Flow::Closed;
        }
        Flow::Open
    }

    fn frame<'a>(
        &'a self,
        p: &'a Pending,
        status: &'static str,
        data: Option<Data<'a>>,
    ) -> Frame<'a> {
        Frame {
            session_id: &self.id,
            request_id: &p.task,
            external_session_id: p.last.params.session_id.as_deref(),
            external_request_id: p.last.params.request_id.as_deref(),
            context_id: None,
            status,
            data,
        }
    }

    /// Synthesises the buffered text of a legacy request as one utterance and sends its frames.
    async fn synthesize(&self, socket: &mut Socket, p: &mut Pending) -> Result<(), Abort> {
        let text = std::mem::take(&mut p.buffer);
        p.buffered_since = None;
        if text.is_empty() {
            return Ok(());
        }
        let Some(slot) = self.state.try_acquire_tts(&self.key) else {
            let message = self.too_many_message();
            return match self.error_frame(socket, &message).await {
                Flow::Open => Err(Abort::Refused),
                Flow::Closed => Err(Abort::Gone),
            };
        };
        let latency = self.state.settings.tts_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let spoken = self
            .state
            .library
            .respell(&self.key, text.clone(), &p.last.dicts);
        let mut render = Render::new(&text, &spoken, &p.last, p.next_word_id, p.audio_secs);
        while let Some(out) = render.next() {
            let sent = match out {
                Out::Chunk(pcm) => {
                    let audio = base64::engine::general_purpose::STANDARD.encode(&pcm);
                    ws::send_json(socket, &self.frame(p, "chunk", Some(Data::Audio { audio })))
                        .await
                }
                Out::Word(w) => {
                    let data = Data::Word {
                        id: w.id,
                        word: &w.word,
                        start: w.start,
                        end: w.end,
                    };
                    ws::send_json(socket, &self.frame(p, "word_timestamp", Some(data))).await
                }
            };
            sent.map_err(|()| Abort::Gone)?;
        }
        drop(slot);
        p.next_word_id += render.word_count();
        p.audio_secs += render.audio_secs();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_spans_split_on_whitespace() {
        let text = "  Hello,  wörld\t$100 ";
        let words: Vec<&str> = word_spans(text).iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(words, ["Hello,", "wörld", "$100"]);
        assert!(word_spans("   ").is_empty());
    }

    #[test]
    fn message_validation() {
        let scope = Scope::none();
        let ok = parse_message(
            r#"{"voice_id":"meher","text":"","flush":true,"output_format":"mulaw","word_timestamps":true}"#,
            &scope,
            false,
        );
        let ok = ok.ok();
        assert!(
            ok.as_ref()
                .is_some_and(|r| r.flush && !r.cont && r.word_timestamps)
        );
        let err = |raw: &str| parse_message(raw, &scope, false).err().unwrap_or_default();
        assert_eq!(
            err(r#"{"text":"hi"}"#),
            "Invalid request: voice_id: Required"
        );
        assert_eq!(
            err(r#"{"text":"hi","voice_id":"nobody"}"#),
            "Invalid request: voice_id: Invalid Voice ID"
        );
        assert_eq!(
            err(r#"{"text":"hi","voice_id":"magnus","max_buffer_flush_ms":1001,"continue":"yes"}"#),
            "Invalid request: continue: Expected boolean, received string; max_buffer_flush_ms: Number must be less than or equal to 1000"
        );
        assert_eq!(
            err(r#"{"text":"hi","voice_id":"magnus","complete_backoff_ms":-1}"#),
            "Invalid request: complete_backoff_ms: Number must be greater than or equal to 0"
        );
        assert!(err("nope").starts_with("Invalid JSON message"));
        assert_eq!(
            err("[1]"),
            "Invalid request: Expected object, received array"
        );
        // Continuation fragments: `max_buffer_delay_ms` is an integer in 0..=10000.
        let fragment = |raw: &str| parse_message(raw, &scope, true);
        let ok = fragment(
            r#"{"voice_id":"magnus","text":"a","context_id":"c","continue":true,"max_buffer_delay_ms":250}"#,
        );
        assert_eq!(
            ok.ok().and_then(|r| r.max_buffer_delay),
            Some(Duration::from_millis(250))
        );
        for bad in ["20000", "-1", "1.5", "\"5\""] {
            let raw = format!(
                r#"{{"voice_id":"magnus","text":"a","context_id":"c","max_buffer_delay_ms":{bad}}}"#
            );
            assert_eq!(
                fragment(&raw).err().unwrap_or_default(),
                format!(
                    "Invalid request: max_buffer_delay_ms: Expected an integer from 0 to 10000, received {bad}"
                )
            );
        }
        // The legacy mode ignores it.
        assert!(err(r#"{"text":"hi","voice_id":"magnus","max_buffer_delay_ms":-5}"#).is_empty());
    }

    #[test]
    fn sentence_boundaries() {
        assert_eq!(sentence_end("Hello world. How are"), Some(12));
        assert_eq!(sentence_end(" How are you?"), Some(13));
        assert_eq!(sentence_end("Pi is 3.14"), None);
        assert_eq!(sentence_end("Wow! Really? Yes. a"), Some(17));
        assert_eq!(sentence_end("no boundary"), None);
        assert_eq!(sentence_end("Done.\u{a0}x"), Some(5));
    }
}
