//! `WSS /waves/v1/stt/live` — live transcription (API.md §4.2, conflicts §11 #18–#24, #34, #47) —
//! and the legacy `WSS /waves/v1/pulse/get_text` (§4.3).
//!
//! Before the upgrade: authentication (`401`/`403` as on HTTP) and the query string, which holds the
//! whole session configuration. `400` for a missing or invalid `model` (only `pulse` streams;
//! `pulse-pro` gets the service's "no streaming transport" message), a missing or unknown
//! `language` (the 21 streaming codes and 3 aggregators), `sample_rate` outside 8000, 16000, 22050,
//! 24000, 44100, 48000 (default 16000), an unknown `encoding` (default `linear16`),
//! `eou_timeout_ms` outside 100–10000 (default 800), a boolean that is not `true`/`false`, a
//! `max_words` that is not a positive integer, malformed `keywords` (`Word:INTENSIFIER,…`, at most
//! 10 000) or `external_session_id`. The legacy path has no `model`, makes `language` optional
//! (default `en`) and turns `word_timestamps` on by default. A key over its session limit
//! ([`stt_ws_limit`](crate::EmulatorBuilder::stt_ws_limit)) is accepted, then closed with `1008`.
//!
//! Binary frames are audio in `encoding` at `sample_rate`: `linear16` (s16le), `linear32` (s32le,
//! as the legacy HTTP route reads it), `alaw`, `mulaw`; `opus`/`ogg_opus` are accepted and
//! transcribe as nothing. The audio feeds the emulator's incremental speech decoder. After each
//! audio frame whose decoded text grew, an interim (`is_final: false`) carries the text since the
//! last final. A final (`is_final: true`, with `language`, `languages`, and `words` /
//! `utterances` / `full_transcript` when asked for) is sent when an utterance of emulator speech
//! ends (its end tone; not with `endpointing=false`), after `eou_timeout_ms` of audio without new
//! text, after `max_words` words, on `{"type":"finalize"}` (always exactly one final, possibly
//! empty, with `from_finalize: true`) and on `{"type":"close_stream"}` (the terminal final with
//! `is_last: true`, then close `1000`). With `vad_events=true` (or its alias `vad`),
//! `speech_started` / `speech_ended` frames mark where each utterance's start and end tones are.
//! `format=false`, `punctuate=false` and `capitalize=false` shape every text; `diarize=true` labels
//! everything speaker 0. Any other text frame gets `{"type":"error",…}` and the socket stays open.
//!
//! Not emulated: region rules (the emulator is one host: `zh yue ja ko multi-asian`, which the
//! India host closes without a transcription frame, are served normally), ITN, redaction,
//! keyword boosting and word-count finalisation (`finalize_on_words` is accepted; use `max_words`).

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Ctx;
use crate::audio::g711;
use crate::auth::Caller;
use crate::body::Body;
use crate::errors;
use crate::speech::{Decoder, Word};
use crate::state::State;
use crate::ws::{self, Handshake, Lease, Socket};

/// The streaming `language` enum (API.md §4.2.2).
const LANGUAGES: [&str; 24] = [
    "en",
    "hi",
    "de",
    "es",
    "ru",
    "it",
    "fr",
    "nl",
    "pt",
    "zh",
    "yue",
    "ja",
    "ko",
    "gu",
    "mr",
    "or",
    "bn",
    "ta",
    "te",
    "kn",
    "ml",
    "north_indic",
    "multi-asian",
    "multi-south-indic",
];

/// Streaming sample rates.
const SAMPLE_RATES: [u32; 6] = [8000, 16000, 22050, 24000, 44100, 48000];

/// Largest incoming message (audio frames are 4 KiB by recommendation).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Most keywords per session.
const MAX_KEYWORDS: usize = 10_000;

/// The decoder is checked for new events after every this many milliseconds of audio.
const CHECK_MS: u32 = 10;

/// The message of the `400` for `model=pulse-pro`.
const PRO_HAS_NO_STREAMING: &str =
    "Pulse Pro has no streaming transport. Use POST /waves/v1/stt/?model=pulse-pro instead.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Linear16,
    Linear32,
    Alaw,
    Mulaw,
    /// `opus` and `ogg_opus`: accepted, not decoded.
    Opus,
}

/// The session configuration from the query string.
#[derive(Debug, Clone)]
struct Config {
    language: String,
    sample_rate: u32,
    encoding: Encoding,
    word_timestamps: bool,
    sentence_timestamps: bool,
    diarize: bool,
    vad_events: bool,
    endpointing: bool,
    eou_ms: u32,
    punctuate: bool,
    capitalize: bool,
    full_transcript: bool,
    max_words: Option<usize>,
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn flag(query: &[(String, String)], name: &str) -> Result<Option<bool>, String> {
    match param(query, name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(format!(
            "Invalid query param: {name} '{v}'. Supported values: true | false."
        )),
    }
}

fn integer(
    query: &[(String, String)],
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, String> {
    match param(query, name) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "Invalid query param: {name} '{v}'. Expected an integer from {} to {}.",
                range.start(),
                range.end()
            )),
        },
    }
}

fn check_keywords(value: &str) -> Result<(), String> {
    let keywords: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    if keywords.len() > MAX_KEYWORDS {
        return Err(format!(
            "Invalid query param: keywords. At most {MAX_KEYWORDS} keywords per session, got {}.",
            keywords.len()
        ));
    }
    for keyword in keywords {
        if let Some((word, intensifier)) = keyword.rsplit_once(':') {
            let ok = !word.trim().is_empty()
                && intensifier
                    .trim()
                    .parse::<f64>()
                    .is_ok_and(|x| x.is_finite() && x >= 0.0);
            if !ok {
                return Err(format!(
                    "Invalid query param: keywords. '{keyword}' is not `Word` or `Word:INTENSIFIER` \
                     with a non-negative intensifier."
                ));
            }
        }
    }
    Ok(())
}

/// Validates the query string of an upgrade; `Err` is the `400` message.
fn parse_config(query: &[(String, String)], legacy: bool) -> Result<Config, String> {
    if !legacy {
        match param(query, "model") {
            None => {
                return Err(
                    "Missing required query param: model. Supported values: pulse.".to_owned(),
                );
            }
            Some("pulse") => {}
            Some("pulse-pro") => return Err(PRO_HAS_NO_STREAMING.to_owned()),
            Some(m) => {
                return Err(format!(
                    "Invalid query param: model '{m}'. Supported values: pulse."
                ));
            }
        }
    }
    let languages = LANGUAGES.join(" | ");
    let language = match param(query, "language") {
        None if legacy => "en",
        None => {
            return Err(format!(
                "Missing required query param: language. Supported values: {languages}."
            ));
        }
        Some(l) if LANGUAGES.contains(&l) => l,
        Some(l) => {
            return Err(format!(
                "Invalid query param: language '{l}'. Supported values: {languages}."
            ));
        }
    };
    let sample_rate = match param(query, "sample_rate") {
        None => 16_000,
        Some(v) => match v.parse::<u32>() {
            Ok(r) if SAMPLE_RATES.contains(&r) => r,
            _ => {
                return Err(format!(
                    "Invalid query param: sample_rate '{v}'. Supported values: 8000 | 16000 | 22050 | 24000 | 44100 | 48000."
                ));
            }
        },
    };
    let encoding = match param(query, "encoding") {
        None | Some("linear16") => Encoding::Linear16,
        Some("linear32") => Encoding::Linear32,
        Some("alaw") => Encoding::Alaw,
        Some("mulaw") => Encoding::Mulaw,
        Some("opus" | "ogg_opus") => Encoding::Opus,
        Some(e) => {
            return Err(format!(
                "Invalid query param: encoding '{e}'. Supported values: linear16 | linear32 | alaw | mulaw | opus | ogg_opus."
            ));
        }
    };
    let eou_ms = integer(query, "eou_timeout_ms", 100..=10_000)?.unwrap_or(800);
    let max_words = integer(query, "max_words", 1..=u64::from(u32::MAX))?;
    for name in [
        "itn_normalize",
        "finalize_on_words",
        "redact_pii",
        "redact_pci",
        "numerals",
    ] {
        flag(query, name)?;
    }
    if let Some(keywords) = param(query, "keywords") {
        check_keywords(keywords)?;
    }
    if let Some(id) = param(query, "external_session_id") {
        let ok = id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(format!(
                "Invalid query param: external_session_id '{id}'. At most 128 characters of \
                 letters, digits, '_', '-' and '.'."
            ));
        }
    }
    let format = flag(query, "format")?.unwrap_or(true);
    let punctuate = flag(query, "punctuate")?.unwrap_or(true);
    let capitalize = flag(query, "capitalize")?.unwrap_or(true);
    let vad = flag(query, "vad")?;
    Ok(Config {
        language: language.to_owned(),
        sample_rate,
        encoding,
        word_timestamps: flag(query, "word_timestamps")?.unwrap_or(legacy),
        sentence_timestamps: flag(query, "sentence_timestamps")?.unwrap_or(false),
        diarize: flag(query, "diarize")?.unwrap_or(false),
        vad_events: flag(query, "vad_events")?.or(vad).unwrap_or(false),
        endpointing: flag(query, "endpointing")?.unwrap_or(true),
        eou_ms: u32::try_from(eou_ms).unwrap_or(800),
        punctuate: format && punctuate,
        capitalize: format && capitalize,
        full_transcript: flag(query, "full_transcript")?.unwrap_or(false),
        max_words: max_words.and_then(|n| usize::try_from(n).ok()),
    })
}

/// Answers the upgrade of `GET /waves/v1/stt/live` (`legacy`: `/waves/v1/pulse/get_text`).
pub(super) fn upgrade(ctx: &mut Ctx<'_>, caller: &Caller, legacy: bool) -> Response<Body> {
    if let Err(resp) = caller.require_product_access(ctx.request_id) {
        return *resp;
    }
    let handshake = match Handshake::check(ctx.parts) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let config = match parse_config(&ctx.query(), legacy) {
        Ok(c) => c,
        Err(message) if legacy => {
            return errors::json(
                StatusCode::BAD_REQUEST,
                &json!({ "errors": message, "status": "error", "message": "Invalid query parameters" }),
            );
        }
        Err(message) => {
            return errors::json(
                StatusCode::BAD_REQUEST,
                &json!({ "error": message, "request_id": ctx.request_id }),
            );
        }
    };
    let state = Arc::clone(ctx.state);
    let limit = state.settings.ws.stt_limit;
    let lease = state.ws.try_open_stt(caller.key(), limit);
    let transcriber = Transcriber::new(config, state.new_id());
    let hub = &ctx.state.ws;
    handshake.accept(hub, ws::config(MAX_MESSAGE_BYTES), move |socket| {
        run(state, socket, transcriber, lease, limit)
    })
}

async fn run(
    state: Arc<State>,
    mut socket: Socket,
    mut transcriber: Transcriber,
    lease: Option<Lease>,
    limit: usize,
) {
    let Some(_lease) = lease else {
        let reason = format!("Too many concurrent sessions: this key's limit is {limit}");
        ws::close(&mut socket, CloseCode::Policy, &reason).await;
        return;
    };
    let mut shutdown = state.ws.shutdown_signal();
    let mut out = Vec::new();
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = ws::shut_down(&mut shutdown) => {
                ws::close(&mut socket, CloseCode::Away, "server shutting down").await;
                return;
            }
        };
        let mut closing = false;
        match message {
            None | Some(Err(_)) => return,
            Some(Ok(Message::Binary(audio))) => transcriber.audio(&audio, &mut out),
            Some(Ok(Message::Text(text))) => {
                let kind = serde_json::from_str::<Value>(text.as_str())
                    .ok()
                    .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
                match kind.as_deref() {
                    Some("finalize") => transcriber.finalize(&mut out),
                    Some("close_stream") => {
                        transcriber.close(&mut out);
                        closing = true;
                    }
                    _ => {
                        let error = json!({
                            "type": "error",
                            "status": "error",
                            "message": "Unsupported message: send audio as binary frames, or the text frames {\"type\":\"finalize\"} and {\"type\":\"close_stream\"}.",
                        });
                        out.push(error.to_string());
                    }
                }
            }
            // Control frames: pings are answered by the protocol layer, and after a close the
            // next read flushes the reply and ends the stream.
            Some(Ok(_)) => continue,
        }
        for frame in out.drain(..) {
            if socket.send(Message::text(frame)).await.is_err() {
                return;
            }
        }
        if closing {
            ws::close(&mut socket, CloseCode::Normal, "").await;
            return;
        }
    }
}

/// What ended a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// End of an utterance, trailing silence, or `max_words`.
    Endpoint,
    /// The client's `finalize`.
    Finalize,
    /// The client's `close_stream`.
    Close,
}

#[derive(Serialize)]
struct WsWord {
    word: String,
    start: f64,
    end: f64,
    confidence: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker_confidence: Option<f64>,
}

#[derive(Serialize)]
struct WsUtterance {
    text: String,
    start: f64,
    end: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<u32>,
}

/// A `transcription` frame, in the service's field order.
#[derive(Serialize)]
struct Transcription<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    transcription: &'a str,
    transcript: &'a str,
    is_final: bool,
    is_last: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_finalize: Option<bool>,
    session_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    languages: Option<[&'a str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_transcript: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<Vec<WsWord>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    utterances: Option<Vec<WsUtterance>>,
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Byte length of the longest common prefix of `a` and `b`, on a character boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    if b.starts_with(a) {
        return a.len();
    }
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

/// Byte offsets where the whitespace-separated words of `text` start.
fn word_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            in_word = true;
            starts.push(i);
        }
    }
    starts
}

/// The language reported on finals: the pinned code, or for an aggregator the script's language
/// (English when nothing else shows).
fn language_of(configured: &str, text: &str) -> &'static str {
    if let Some(code) = LANGUAGES.iter().find(|l| **l == configured)
        && !matches!(*code, "north_indic" | "multi-asian" | "multi-south-indic")
    {
        return code;
    }
    let scripts: [(char, char, &'static str); 11] = [
        ('\u{0900}', '\u{097F}', "hi"),
        ('\u{0980}', '\u{09FF}', "bn"),
        ('\u{0A80}', '\u{0AFF}', "gu"),
        ('\u{0B00}', '\u{0B7F}', "or"),
        ('\u{0B80}', '\u{0BFF}', "ta"),
        ('\u{0C00}', '\u{0C7F}', "te"),
        ('\u{0C80}', '\u{0CFF}', "kn"),
        ('\u{0D00}', '\u{0D7F}', "ml"),
        ('\u{3040}', '\u{30FF}', "ja"),
        ('\u{AC00}', '\u{D7AF}', "ko"),
        ('\u{4E00}', '\u{9FFF}', "zh"),
    ];
    text.chars()
        .find_map(|c| {
            scripts
                .iter()
                .find(|(lo, hi, _)| (*lo..=*hi).contains(&c))
                .map(|(_, _, l)| *l)
        })
        .unwrap_or("en")
}

/// The transcription state of one session, independent of the socket: audio in, frames out.
struct Transcriber {
    cfg: Config,
    session_id: String,
    decoder: Decoder,
    /// Bytes of a sample split across audio frames.
    carry: Vec<u8>,
    /// Utterances whose start / end was handled.
    started: usize,
    ended: usize,
    /// Text bytes decoded, in all and at the last final.
    decoded: usize,
    final_decoded: usize,
    /// Sample index of the last decoded text byte.
    last_growth: u64,
    /// The decoder's transcript up to the last final.
    prefix: String,
    /// Words ending at or before this time (seconds) belong to earlier finals.
    boundary: f64,
    last_interim: String,
    /// Every final's text, joined (for `full_transcript`).
    full: String,
}

impl Transcriber {
    fn new(cfg: Config, session_id: String) -> Self {
        Self {
            decoder: Decoder::new(cfg.sample_rate),
            cfg,
            session_id,
            carry: Vec::new(),
            started: 0,
            ended: 0,
            decoded: 0,
            final_decoded: 0,
            last_growth: 0,
            prefix: String::new(),
            boundary: 0.0,
            last_interim: String::new(),
            full: String::new(),
        }
    }

    fn samples_of(&mut self, bytes: &[u8]) -> Vec<f32> {
        let width = match self.cfg.encoding {
            Encoding::Linear16 => 2,
            Encoding::Linear32 => 4,
            Encoding::Alaw | Encoding::Mulaw => 1,
            Encoding::Opus => return Vec::new(),
        };
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        let whole = data.len() / width * width;
        let samples = data[..whole]
            .chunks_exact(width)
            .map(|b| match (self.cfg.encoding, b) {
                (Encoding::Linear16, [x, y]) => f32::from(i16::from_le_bytes([*x, *y])),
                (Encoding::Linear32, [a, b, c, d]) => {
                    i32::from_le_bytes([*a, *b, *c, *d]) as f32 / 65536.0
                }
                (Encoding::Alaw, [x]) => f32::from(g711::alaw_to_linear(*x)),
                (Encoding::Mulaw, [x]) => f32::from(g711::ulaw_to_linear(*x)),
                _ => 0.0,
            })
            .collect();
        self.carry = data[whole..].to_vec();
        samples
    }

    fn shape(&self, text: &str) -> String {
        let text: String = if self.cfg.punctuate {
            text.to_owned()
        } else {
            text.chars()
                .filter(|c| !matches!(c, '.' | ',' | '?' | '!'))
                .collect()
        };
        if self.cfg.capitalize {
            text
        } else {
            text.to_lowercase()
        }
    }

    /// The decoder's transcript and where its not-yet-final part starts.
    fn rest(&self) -> (String, usize) {
        let transcript = self.decoder.transcript();
        let start = common_prefix_len(&self.prefix, &transcript);
        (transcript, start)
    }

    fn vad(&self, kind: &'static str, at: f64) -> String {
        json!({ "type": kind, "session_id": self.session_id, "timestamp": round(at, 3) })
            .to_string()
    }

    /// One binary frame of audio.
    fn audio(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let samples = self.samples_of(bytes);
        let step = (self.cfg.sample_rate * CHECK_MS / 1000).max(1) as usize;
        for slice in samples.chunks(step) {
            self.decoder.feed_f32(slice);
            self.check(out, true);
        }
        let (transcript, start) = self.rest();
        let interim = self.shape(transcript[start..].trim());
        if !interim.is_empty() && interim != self.last_interim {
            let full = self.cfg.full_transcript.then(|| {
                if self.full.is_empty() {
                    interim.clone()
                } else {
                    format!("{} {interim}", self.full)
                }
            });
            let frame = Transcription {
                kind: "transcription",
                status: "success",
                transcription: &interim,
                transcript: &interim,
                is_final: false,
                is_last: false,
                from_finalize: None,
                session_id: &self.session_id,
                language: None,
                languages: None,
                full_transcript: full.as_deref(),
                words: None,
                utterances: None,
            };
            out.push(serde_json::to_string(&frame).unwrap_or_default());
            self.last_interim = interim;
        }
    }

    /// Looks for utterance boundaries, trailing silence and the word limit.
    fn check(&mut self, out: &mut Vec<String>, utterance_finals: bool) {
        let now = self.decoder.samples_seen();
        let decoded = self.decoder.decoded_bytes();
        if decoded > self.decoded {
            self.decoded = decoded;
            self.last_growth = now;
        }
        let times = self.decoder.utterance_times();
        for (i, &(start, end)) in times.iter().enumerate() {
            if i >= self.started {
                self.started = i + 1;
                if self.cfg.vad_events {
                    out.push(self.vad("speech_started", start));
                }
            }
            if let Some(end) = end
                && i >= self.ended
            {
                self.ended = i + 1;
                if self.cfg.vad_events {
                    out.push(self.vad("speech_ended", end));
                }
                if utterance_finals && self.cfg.endpointing && self.decoded > self.final_decoded {
                    self.emit_final(out, None, Trigger::Endpoint);
                }
            }
        }
        let eou = u64::from(self.cfg.sample_rate) * u64::from(self.cfg.eou_ms) / 1000;
        if self.decoded > self.final_decoded && now.saturating_sub(self.last_growth) >= eou {
            self.emit_final(out, None, Trigger::Endpoint);
        }
        if let Some(max) = self.cfg.max_words {
            while self.decoded > self.final_decoded {
                let (transcript, start) = self.rest();
                let starts = word_starts(&transcript[start..]);
                match starts.get(max) {
                    Some(&cut) => self.emit_final(out, Some(cut), Trigger::Endpoint),
                    None => break,
                }
            }
        }
    }

    /// Sends the text since the last final (up to `cut` bytes of it) as a final. Empty endpoint
    /// finals are not sent.
    fn emit_final(&mut self, out: &mut Vec<String>, cut: Option<usize>, trigger: Trigger) {
        let (transcript, start) = self.rest();
        let rest = &transcript[start..];
        let (taken, prefix_len) = match cut {
            Some(c) if c <= rest.len() && rest.is_char_boundary(c) => (&rest[..c], start + c),
            _ => (rest, transcript.len()),
        };
        let text = taken.trim().to_owned();
        self.prefix = transcript[..prefix_len].to_owned();
        if prefix_len == transcript.len() {
            self.final_decoded = self.decoded;
        }
        self.last_interim.clear();
        if text.is_empty() && trigger == Trigger::Endpoint {
            return;
        }
        let count = text.split_whitespace().count();
        let offsets: Vec<Word> = if count == 0 {
            Vec::new()
        } else {
            self.decoder
                .words()
                .into_iter()
                .filter(|w| w.end > self.boundary + 1e-9)
                .take(count)
                .collect()
        };
        if let Some(last) = offsets.last() {
            self.boundary = last.end;
        }
        let shaped = self.shape(&text);
        if !shaped.is_empty() {
            if !self.full.is_empty() {
                self.full.push(' ');
            }
            self.full.push_str(&shaped);
        }
        let diarize = self.cfg.diarize;
        let words: Vec<WsWord> = offsets
            .iter()
            .map(|w| WsWord {
                word: self.shape(&w.text),
                start: round(w.start, 3),
                end: round(w.end, 3),
                confidence: round(w.confidence, 4),
                speaker: diarize.then_some(0),
                speaker_confidence: diarize.then_some(1.0),
            })
            .filter(|w| !w.word.is_empty())
            .collect();
        let utterances = self
            .cfg
            .sentence_timestamps
            .then(|| sentences(&words, diarize));
        let language = language_of(&self.cfg.language, &text);
        let frame = Transcription {
            kind: "transcription",
            status: "success",
            transcription: &shaped,
            transcript: &shaped,
            is_final: true,
            is_last: trigger == Trigger::Close,
            from_finalize: (trigger == Trigger::Finalize).then_some(true),
            session_id: &self.session_id,
            language: Some(language),
            languages: Some([language]),
            full_transcript: self.cfg.full_transcript.then_some(self.full.as_str()),
            words: self.cfg.word_timestamps.then_some(words),
            utterances,
        };
        out.push(serde_json::to_string(&frame).unwrap_or_default());
    }

    /// `{"type":"finalize"}`: one final, whatever is pending.
    fn finalize(&mut self, out: &mut Vec<String>) {
        self.emit_final(out, None, Trigger::Finalize);
    }

    /// `{"type":"close_stream"}`: the end of the audio and the terminal final.
    fn close(&mut self, out: &mut Vec<String>) {
        self.decoder.finish();
        self.check(out, false);
        self.emit_final(out, None, Trigger::Close);
    }
}

/// Sentences of the final's words: a word ending in `.`, `?` or `!` closes one.
fn sentences(words: &[WsWord], diarize: bool) -> Vec<WsUtterance> {
    let mut out = Vec::new();
    let mut current: Vec<&WsWord> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        current.push(w);
        let closes = w.word.ends_with(['.', '?', '!']) || i + 1 == words.len();
        if closes && let (Some(first), Some(last)) = (current.first(), current.last()) {
            out.push(WsUtterance {
                text: current
                    .iter()
                    .map(|w| w.word.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                start: first.start,
                end: last.end,
                speaker: diarize.then_some(0),
            });
            current.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::synthesize_pcm;

    fn q(s: &str) -> Vec<(String, String)> {
        super::super::parse_query(s)
    }

    fn frames(out: &[String]) -> Vec<Value> {
        out.iter()
            .map(|f| serde_json::from_str(f).unwrap_or(Value::Null))
            .collect()
    }

    fn pcm_bytes(pcm: &[i16]) -> Vec<u8> {
        pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn query_validation() {
        let err = |s: &str| parse_config(&q(s), false).err().unwrap_or_default();
        assert!(err("language=en").starts_with("Missing required query param: model"));
        assert_eq!(err("model=pulse-pro&language=en"), PRO_HAS_NO_STREAMING);
        assert!(err("model=pulse").starts_with("Missing required query param: language"));
        assert!(err("model=pulse&language=xx").starts_with("Invalid query param: language 'xx'"));
        assert!(err("model=pulse&language=en&sample_rate=11025").contains("sample_rate"));
        assert!(err("model=pulse&language=en&encoding=flac").contains("encoding"));
        assert!(err("model=pulse&language=en&eou_timeout_ms=99").contains("eou_timeout_ms"));
        assert!(err("model=pulse&language=en&vad_events=yes").contains("vad_events"));
        assert!(err("model=pulse&language=en&max_words=0").contains("max_words"));
        assert!(err("model=pulse&language=en&keywords=a:-1").contains("keywords"));
        assert!(
            err("model=pulse&language=en&external_session_id=a%20b")
                .contains("external_session_id")
        );
        let ok = parse_config(
            &q(
                "model=pulse&language=multi-asian&encoding=mulaw&sample_rate=8000&vad=true&format=false&keywords=Smallest:2,Waves",
            ),
            false,
        );
        let ok = ok.ok();
        let cfg = ok.as_ref();
        assert_eq!(cfg.map(|c| c.encoding), Some(Encoding::Mulaw));
        assert_eq!(
            cfg.map(|c| (c.vad_events, c.punctuate, c.capitalize)),
            Some((true, false, false))
        );
        assert_eq!(cfg.map(|c| c.word_timestamps), Some(false));
        assert_eq!(cfg.map(|c| c.eou_ms), Some(800));
        // The legacy path: no model, language optional, word timestamps on by default.
        let legacy = parse_config(&q("model=whatever"), true).ok();
        assert_eq!(
            legacy
                .as_ref()
                .map(|c| (c.language.as_str(), c.word_timestamps)),
            Some(("en", true))
        );
        // `vad_events` wins over `vad`.
        let both = parse_config(
            &q("model=pulse&language=en&vad=true&vad_events=false"),
            false,
        )
        .ok();
        assert_eq!(both.map(|c| c.vad_events), Some(false));
    }

    #[test]
    fn streams_interims_finals_and_vad() {
        let cfg = parse_config(
            &q(
                "model=pulse&language=en&word_timestamps=true&sentence_timestamps=true&vad_events=true&full_transcript=true",
            ),
            false,
        );
        let Ok(cfg) = cfg else { panic!("config") };
        let mut t = Transcriber::new(cfg, "s1".to_owned());
        let mut audio = synthesize_pcm("Hello there. Bye!", 16_000, 1.0);
        audio.extend(std::iter::repeat_n(0, 4000));
        audio.extend(synthesize_pcm("again", 16_000, 1.0));
        let mut out = Vec::new();
        // Odd-sized frames: samples split across frames must survive.
        for frame in pcm_bytes(&audio).chunks(4095) {
            t.audio(frame, &mut out);
        }
        t.close(&mut out);
        let frames = frames(&out);
        let kinds: Vec<String> = frames
            .iter()
            .map(|f| {
                let kind = f["type"].as_str().unwrap_or("?");
                if kind == "transcription" {
                    format!("{kind}:{}:{}", f["is_final"], f["is_last"])
                } else {
                    kind.to_owned()
                }
            })
            .collect();
        assert_eq!(kinds.first().map(String::as_str), Some("speech_started"));
        let finals: Vec<&Value> = frames.iter().filter(|f| f["is_final"] == true).collect();
        let texts: Vec<&str> = finals
            .iter()
            .map(|f| f["transcript"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(texts, ["Hello there. Bye!", "again", ""], "{kinds:?}");
        assert_eq!(finals[2]["is_last"], true);
        assert_eq!(finals[0]["language"], "en");
        assert_eq!(finals[0]["languages"], json!(["en"]));
        assert_eq!(finals[1]["full_transcript"], "Hello there. Bye! again");
        let words: Vec<&str> = finals[0]["words"]
            .as_array()
            .map(|w| {
                w.iter()
                    .map(|w| w["word"].as_str().unwrap_or("?"))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(words, ["Hello", "there.", "Bye!"]);
        assert_eq!(finals[0]["utterances"].as_array().map(Vec::len), Some(2));
        assert_eq!(finals[0]["utterances"][0]["text"], "Hello there.");
        // The second utterance's words are timed from the start of the stream.
        let again_start = finals[1]["words"][0]["start"].as_f64().unwrap_or(0.0);
        let first_len =
            (synthesize_pcm("Hello there. Bye!", 16_000, 1.0).len() + 4000) as f64 / 16_000.0;
        assert!(
            (again_start - (first_len + 0.11)).abs() < 0.01,
            "{again_start} {first_len}"
        );
        // VAD events: two utterances, each started and ended, in order.
        let vad: Vec<(&str, f64)> = frames
            .iter()
            .filter(|f| f["type"] != "transcription")
            .map(|f| {
                (
                    f["type"].as_str().unwrap_or("?"),
                    f["timestamp"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect();
        assert_eq!(vad.len(), 4, "{vad:?}");
        assert_eq!(vad[0].0, "speech_started");
        assert!((vad[0].1 - 0.01).abs() < 0.005);
        assert_eq!(vad[1].0, "speech_ended");
        assert_eq!(vad[2].0, "speech_started");
        assert!(vad[2].1 > vad[1].1);
        // Interims came first, and only grew.
        assert!(kinds.iter().any(|k| k == "transcription:false:false"));
    }

    #[test]
    fn finalize_max_words_shaping_and_encodings() {
        let cfg = parse_config(
            &q(
                "model=pulse&language=en&encoding=alaw&sample_rate=8000&max_words=2&punctuate=false&capitalize=false&endpointing=false",
            ),
            false,
        );
        let Ok(cfg) = cfg else { panic!("config") };
        let mut t = Transcriber::new(cfg, "s2".to_owned());
        let mut out = Vec::new();
        t.finalize(&mut out);
        let pcm = synthesize_pcm("One, two! Three four five", 8000, 1.0);
        let alaw: Vec<u8> = pcm.iter().map(|&s| g711::linear_to_alaw(s)).collect();
        for frame in alaw.chunks(1000) {
            t.audio(frame, &mut out);
        }
        t.finalize(&mut out);
        let finals: Vec<Value> = frames(&out)
            .into_iter()
            .filter(|f| f["is_final"] == true)
            .collect();
        let texts: Vec<(&str, bool)> = finals
            .iter()
            .map(|f| {
                (
                    f["transcript"].as_str().unwrap_or("?"),
                    f["from_finalize"] == true,
                )
            })
            .collect();
        assert_eq!(
            texts,
            [
                ("", true),
                ("one two", false),
                ("three four", false),
                ("five", true)
            ]
        );
        assert!(finals.iter().all(|f| f.get("words").is_none()));
    }
}
