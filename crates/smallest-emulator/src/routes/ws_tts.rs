//! `WSS /waves/v1/tts/live` — streaming synthesis over a WebSocket (API.md §3.5, §8.4; conflicts
//! §11 #11–#16).
//!
//! Before the upgrade: authentication (`401`/`403` as on HTTP), `?timeout=N` (a positive integer
//! of seconds, default 60; anything else is `400`), and the key's connection limit, five sockets
//! per TTS concurrency unit (`429` beyond).
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
//! A synthesis holds one of the key's TTS slots — the same ones the HTTP routes use — from the
//! start of the synthesis (through the configured latency) to its last audio frame; without a free
//! slot the request gets the error frame `Too many concurrent requests: …` and its buffered text
//! is dropped. The idle timeout counts from the last client message or the end of the last
//! synthesis; on expiry the error frame of the real service is sent, then a close (`1000`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
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
use crate::state::State;
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

/// Parses and validates one client message; `Err` is the error frame's message.
fn parse_message(raw: &str, scope: &Scope<'_>) -> Result<Request, String> {
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

impl Session {
    async fn run(self, mut socket: Socket, _lease: Lease) {
        let mut shutdown = self.state.ws.shutdown_signal();
        let mut pending: Option<Pending> = None;
        let mut idle_deadline = Instant::now() + self.idle;
        loop {
            let flush_at = pending.as_ref().and_then(Pending::flush_at);
            let message = tokio::select! {
                message = socket.next() => message,
                () = tokio::time::sleep_until(idle_deadline) => {
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
                () = ws::shut_down(&mut shutdown) => {
                    ws::close(&mut socket, CloseCode::Away, "server shutting down").await;
                    return;
                }
            };
            let flow = match message {
                None | Some(Err(_)) => return,
                Some(Ok(Message::Text(text))) => {
                    self.handle(&mut socket, &mut pending, text.as_str()).await
                }
                Some(Ok(Message::Binary(_))) => {
                    let frame = json!({
                        "status": "error",
                        "message": "Binary frames are not supported: send each request as a JSON text frame.",
                    });
                    match ws::send_json(&mut socket, &frame).await {
                        Ok(()) => Flow::Open,
                        Err(()) => Flow::Closed,
                    }
                }
                // Control frames: pings are answered by the protocol layer, and after a close the
                // next read flushes the reply and ends the stream.
                Some(Ok(_)) => continue,
            };
            if let Flow::Closed = flow {
                return;
            }
            idle_deadline = Instant::now() + self.idle;
        }
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
        let request = match parse_message(raw, &scope) {
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
            status,
            data,
        }
    }

    async fn send_chunk(&self, socket: &mut Socket, p: &Pending, pcm: &[u8]) -> Result<(), Abort> {
        let audio = base64::engine::general_purpose::STANDARD.encode(pcm);
        let frame = self.frame(p, "chunk", Some(Data::Audio { audio }));
        ws::send_json(socket, &frame)
            .await
            .map_err(|()| Abort::Gone)
    }

    /// Sends the words whose audio has been sent (`through` samples of this synthesis).
    async fn send_words(
        &self,
        socket: &mut Socket,
        p: &Pending,
        ready: &mut std::collections::VecDeque<TimedWord>,
        through: usize,
    ) -> Result<(), Abort> {
        while ready.front().is_some_and(|w| w.end_sample <= through) {
            let Some(w) = ready.pop_front() else { break };
            let data = Data::Word {
                id: w.id,
                word: &w.word,
                start: w.start,
                end: w.end,
            };
            ws::send_json(socket, &self.frame(p, "word_timestamp", Some(data)))
                .await
                .map_err(|()| Abort::Gone)?;
        }
        Ok(())
    }

    /// Synthesises the buffered text as one utterance and sends its frames.
    async fn synthesize(&self, socket: &mut Socket, p: &mut Pending) -> Result<(), Abort> {
        let text = std::mem::take(&mut p.buffer);
        p.buffered_since = None;
        if text.is_empty() {
            return Ok(());
        }
        let Some(slot) = self.state.try_acquire_tts(&self.key) else {
            let message = format!(
                "Too many concurrent requests: this API key already has {} text-to-speech request(s) \
                 in flight, its concurrency limit. Wait for one to finish before sending another.",
                self.state.settings.tts_concurrency
            );
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
        let rate = p.last.params.sample_rate;
        let secs = |samples: usize| samples as f64 / f64::from(rate.max(1));

        // Words to time: the spoken words, labelled with the input's words when they correspond
        // one to one (a dictionary may respell a word as several).
        let timed = p.last.word_timestamps && TIMESTAMP_VOICES.contains(&p.last.voice_id.as_str());
        let spans = if timed {
            word_spans(&spoken)
        } else {
            Vec::new()
        };
        let input_spans = if timed { word_spans(&text) } else { Vec::new() };
        let labels: Vec<&str> = if input_spans.len() == spans.len() {
            input_spans.iter().map(|&(s, e)| &text[s..e]).collect()
        } else {
            spans.iter().map(|&(s, e)| &spoken[s..e]).collect()
        };
        let mut next_span = 0;
        let mut word_start = 0usize;
        let mut ready = std::collections::VecDeque::new();

        let mut pcm: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 2);
        let mut samples = 0usize;
        let mut sent_samples = 0usize;
        for (piece_index, piece) in Synthesizer::new(&spoken, rate, p.last.params.speed).enumerate()
        {
            // Piece 0 is the lead-in and start marker; piece k ≥ 1 is text byte k − 1.
            if let Some(byte) = piece_index.checked_sub(1)
                && let Some(&(s, e)) = spans.get(next_span)
            {
                if byte == s {
                    word_start = samples;
                }
                if byte + 1 == e {
                    let tone = (piece.len() as f64 * TONE_SHARE).round() as usize;
                    let end_sample = samples + tone;
                    ready.push_back(TimedWord {
                        id: p.next_word_id + next_span,
                        word: labels
                            .get(next_span)
                            .copied()
                            .unwrap_or_default()
                            .to_owned(),
                        start: round3(p.audio_secs + secs(word_start)),
                        end: round3(p.audio_secs + secs(end_sample)),
                        end_sample,
                    });
                    next_span += 1;
                }
            }
            samples += piece.len();
            for s in piece {
                pcm.extend_from_slice(&s.to_le_bytes());
            }
            while pcm.len() >= CHUNK_BYTES {
                let rest = pcm.split_off(CHUNK_BYTES);
                self.send_chunk(socket, p, &pcm).await?;
                sent_samples += pcm.len() / 2;
                pcm = rest;
                self.send_words(socket, p, &mut ready, sent_samples).await?;
            }
        }
        if !pcm.is_empty() {
            self.send_chunk(socket, p, &pcm).await?;
        }
        self.send_words(socket, p, &mut ready, usize::MAX).await?;
        drop(slot);
        p.next_word_id += spans.len();
        p.audio_secs += secs(samples);
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
        );
        let ok = ok.ok();
        assert!(
            ok.as_ref()
                .is_some_and(|r| r.flush && !r.cont && r.word_timestamps)
        );
        let err = |raw: &str| parse_message(raw, &scope).err().unwrap_or_default();
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
    }
}
