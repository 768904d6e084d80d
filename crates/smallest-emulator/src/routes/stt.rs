//! Pre-recorded speech-to-text: `POST /waves/v1/stt/` (API.md §4.1) and the legacy
//! `POST /waves/v1/pulse/get_text` (§4.3).
//!
//! Uploads are streamed into the decoder as they arrive and counted; an upload over the limit is
//! refused by its `Content-Length` before any byte is read, or as soon as the count passes the
//! limit. URL mode never touches the network: it resolves registered fixtures and this emulator's
//! own URLs only.

use std::time::Instant;

use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::Ctx;
use crate::audio::{RawEncoding, Transcript, UploadDecoder};
use crate::auth::Caller;
use crate::body::{Body, ReadError};
use crate::catalog;
use crate::errors;
use crate::speech::Word;

/// Largest JSON body (`{"url": …}`) read in URL mode.
const MAX_URL_JSON_BYTES: usize = 64 * 1024;

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn flag(query: &[(String, String)], name: &str) -> bool {
    query
        .iter()
        .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Where the audio came from.
struct Received {
    transcript: Transcript,
    bytes: u64,
    filename: Option<String>,
}

/// Why the audio could not be received, independent of the route's error shape.
enum Failure {
    TooLarge,
    Empty,
    BadUrlJson,
    UnknownUrl(String),
    Broken,
}

async fn receive(
    ctx: &mut Ctx<'_>,
    url_mode: bool,
    hint: Option<RawEncoding>,
) -> Result<Received, Failure> {
    let limit = ctx.state.settings.max_upload_bytes;
    if url_mode {
        let raw = match ctx.body.read_to_limit(MAX_URL_JSON_BYTES).await {
            Ok(raw) => raw,
            Err(ReadError::TooLarge) => return Err(Failure::BadUrlJson),
            Err(ReadError::Broken) => return Err(Failure::Broken),
        };
        let value: Value = serde_json::from_slice(&raw).map_err(|_| Failure::BadUrlJson)?;
        let Some(url) = value
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
        else {
            return Err(Failure::BadUrlJson);
        };
        let Some(audio) = ctx.state.lookup_url(url) else {
            return Err(Failure::UnknownUrl(url.to_owned()));
        };
        if audio.bytes.len() as u64 > limit {
            return Err(Failure::TooLarge);
        }
        let mut decoder = UploadDecoder::new(hint);
        decoder.feed(&audio.bytes);
        return Ok(Received {
            transcript: decoder.finish(),
            bytes: audio.bytes.len() as u64,
            filename: Some(audio.filename),
        });
    }
    if ctx.content_length().is_some_and(|n| n > limit) {
        return Err(Failure::TooLarge);
    }
    let mut decoder = UploadDecoder::new(hint);
    let mut total = 0u64;
    while let Some(chunk) = ctx.body.chunk().await {
        let chunk = chunk.map_err(|_| Failure::Broken)?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(Failure::TooLarge);
        }
        decoder.feed(&chunk);
    }
    if total == 0 {
        return Err(Failure::Empty);
    }
    Ok(Received {
        transcript: decoder.finish(),
        bytes: total,
        filename: None,
    })
}

#[derive(Serialize)]
struct PulseWord {
    start: f64,
    end: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker_confidence: Option<f64>,
    word: String,
    confidence: f64,
}

#[derive(Serialize)]
struct Utterance {
    start: f64,
    end: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<u32>,
    text: String,
}

#[derive(Serialize)]
struct PulseMetadata {
    duration: f64,
    #[serde(rename = "fileSize")]
    file_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
}

#[derive(Serialize)]
struct Emotions {
    happiness: f64,
    sadness: f64,
    disgust: f64,
    fear: f64,
    anger: f64,
}

#[derive(Serialize)]
struct PulseResponse {
    status: &'static str,
    transcription: String,
    words: Vec<PulseWord>,
    utterances: Vec<Utterance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio_length: Option<f64>,
    metadata: PulseMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emotions: Option<Emotions>,
}

#[derive(Serialize)]
struct ProWord {
    word: String,
    start: f64,
    end: f64,
    confidence: f64,
}

#[derive(Serialize)]
struct ProMetadata {
    duration: f64,
    processing_time_ms: f64,
    rtfx: f64,
    num_chunks: u64,
}

#[derive(Serialize)]
struct ProResponse {
    status: &'static str,
    transcription: String,
    words: Vec<ProWord>,
    language: &'static str,
    metadata: ProMetadata,
    #[serde(rename = "totalBytes")]
    total_bytes: u64,
    request_id: String,
}

/// Sentences: a word ending in `.`, `?` or `!` closes one.
fn utterances(words: &[Word], diarize: bool) -> Vec<Utterance> {
    let mut out = Vec::new();
    let mut current: Vec<&Word> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        current.push(w);
        let closes = w.text.ends_with(['.', '?', '!']) || i + 1 == words.len();
        if closes && let (Some(first), Some(last)) = (current.first(), current.last()) {
            out.push(Utterance {
                start: round(first.start, 3),
                end: round(last.end, 3),
                speaker: diarize.then_some(0),
                text: current
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            });
            current.clear();
        }
    }
    out
}

/// Deterministic stand-ins for the gender and emotion detectors.
fn gender_of(text: &str) -> &'static str {
    if text.bytes().map(u32::from).sum::<u32>().is_multiple_of(2) {
        "female"
    } else {
        "male"
    }
}

fn emotions_of(text: &str) -> Emotions {
    let excited = text.contains('!');
    Emotions {
        happiness: if excited { 0.72 } else { 0.31 },
        sadness: 0.04,
        disgust: 0.01,
        fear: 0.02,
        anger: if excited { 0.03 } else { 0.02 },
    }
}

fn pulse_response(received: Received, query: &[(String, String)], legacy: bool) -> PulseResponse {
    let t = received.transcript;
    let timestamps = flag(query, "word_timestamps");
    let diarize = flag(query, "diarize");
    let (words, utterances) = if timestamps {
        let words = t
            .words
            .iter()
            .map(|w| PulseWord {
                start: round(w.start, 3),
                end: round(w.end, 3),
                speaker: diarize.then_some(0),
                speaker_confidence: diarize.then_some(1.0),
                word: w.text.clone(),
                confidence: round(w.confidence, 4),
            })
            .collect();
        (words, utterances(&t.words, diarize))
    } else {
        (Vec::new(), Vec::new())
    };
    let duration = round(t.duration_secs, 3);
    PulseResponse {
        status: "success",
        gender: flag(query, "gender_detection").then(|| gender_of(&t.text)),
        emotions: flag(query, "emotion_detection").then(|| emotions_of(&t.text)),
        transcription: t.text,
        words,
        utterances,
        audio_length: legacy.then_some(duration),
        metadata: PulseMetadata {
            duration,
            file_size: received.bytes,
            filename: if legacy { received.filename } else { None },
        },
    }
}

fn stt_error(status: StatusCode, message: &str, request_id: &str) -> Response<Body> {
    errors::json(
        status,
        &json!({ "error": message, "request_id": request_id }),
    )
}

/// `POST /waves/v1/stt/?model=pulse|pulse-pro&language=…`
pub(super) async fn transcribe(ctx: &mut Ctx<'_>, caller: &Caller) -> Response<Body> {
    let started = Instant::now();
    let rid = ctx.request_id.to_owned();
    if let Err(resp) = caller.require_product_access(&rid) {
        return *resp;
    }
    let query = ctx.query();
    let bad = |message: String| stt_error(StatusCode::BAD_REQUEST, &message, &rid);
    let model = match param(&query, "model") {
        None | Some("") => {
            return bad(
                "Missing required query param: model. Supported values: pulse | pulse-pro."
                    .to_owned(),
            );
        }
        Some(m) if catalog::STT_MODELS.contains(&m) => m.to_owned(),
        Some(m) => {
            return bad(format!(
                "Invalid query param: model '{m}'. Supported values: pulse | pulse-pro."
            ));
        }
    };
    let languages = catalog::STT_LANGUAGES.join(" | ");
    match param(&query, "language") {
        None | Some("") => {
            return bad(format!(
                "Missing required query param: language. Supported values: {languages}."
            ));
        }
        Some(l) if catalog::STT_LANGUAGES.contains(&l) => {}
        Some(l) => {
            return bad(format!(
                "Invalid query param: language '{l}'. Supported values: {languages}."
            ));
        }
    }
    if let Err((limit, wait)) = ctx.state.take_stt_request(caller.key(), &model, started) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut resp = stt_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Rate limit exceeded: at most {limit} requests per minute for model {model}. \
                 Retry after {seconds} s."
            ),
            &rid,
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        return resp;
    }
    let pro = model == "pulse-pro";
    let url_mode = ctx.content_type().as_deref() == Some("application/json");
    if pro && url_mode {
        return bad(
            "URL input is not supported for pulse-pro. Send the audio bytes as the request body \
             (Content-Type: application/octet-stream)."
                .to_owned(),
        );
    }
    let received = match receive(ctx, url_mode, None).await {
        Ok(r) => r,
        Err(Failure::TooLarge) => {
            let limit = ctx.state.settings.max_upload_bytes;
            let shown = if limit.is_multiple_of(1024 * 1024) {
                format!("{}MB", limit / (1024 * 1024))
            } else {
                format!("{limit} bytes")
            };
            return stt_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("File size exceeds maximum limit of {shown}."),
                &rid,
            );
        }
        Err(Failure::Empty) => {
            return bad("No audio data provided. Send the audio bytes as the request body, or JSON {\"url\": \"…\"}.".to_owned());
        }
        Err(Failure::BadUrlJson) => {
            return bad("Invalid JSON body: expected {\"url\": \"<audio url>\"}.".to_owned());
        }
        Err(Failure::UnknownUrl(url)) => {
            return bad(format!(
                "Could not download audio from url '{url}'. The emulator never uses the network: \
                 register the URL as a fixture, or use its own /_emulator/speech.wav?text=… URL."
            ));
        }
        Err(Failure::Broken) => return bad("The request body could not be read.".to_owned()),
    };
    let expire = ctx.expire_content();
    let mut resp = transcribe_response(received, &query, pro, &rid, started);
    if expire && resp.status() == StatusCode::OK {
        resp.headers_mut().insert(
            "x-content-expiry",
            http::HeaderValue::from_static("applied"),
        );
    }
    resp
}

fn transcribe_response(
    received: Received,
    query: &[(String, String)],
    pro: bool,
    rid: &str,
    started: Instant,
) -> Response<Body> {
    if !pro {
        return errors::json(StatusCode::OK, &pulse_response(received, query, false));
    }
    if param(query, "webhook_url").is_some_and(|u| !u.is_empty()) {
        // Accepted for asynchronous processing; the emulator does not deliver webhooks.
        return errors::json(
            StatusCode::OK,
            &json!({ "status": "processing", "request_id": rid }),
        );
    }
    let t = received.transcript;
    let words = if flag(query, "word_timestamps") {
        t.words
            .iter()
            .map(|w| ProWord {
                word: w.text.clone(),
                start: round(w.start, 3),
                end: round(w.end, 3),
                confidence: round(w.confidence, 4),
            })
            .collect()
    } else {
        Vec::new()
    };
    let processing_ms = started.elapsed().as_secs_f64() * 1000.0;
    let duration = round(t.duration_secs, 3);
    let rtfx = if processing_ms > 0.0 {
        round(duration / (processing_ms / 1000.0), 1)
    } else {
        0.0
    };
    errors::json(
        StatusCode::OK,
        &ProResponse {
            status: "success",
            transcription: t.text,
            words,
            language: "en",
            metadata: ProMetadata {
                duration,
                processing_time_ms: round(processing_ms, 2),
                rtfx,
                num_chunks: (t.duration_secs / 30.0).ceil().max(1.0) as u64,
            },
            total_bytes: received.bytes,
            request_id: rid.to_owned(),
        },
    )
}

fn legacy_error(message: &str) -> Response<Body> {
    errors::json(
        StatusCode::BAD_REQUEST,
        &json!({
            "errors": message,
            "status": "error",
            "message": "Error handling audio data",
        }),
    )
}

/// `POST /waves/v1/pulse/get_text[?language=…]` (legacy; no `model`).
pub(super) async fn legacy_get_text(ctx: &mut Ctx<'_>, caller: &Caller) -> Response<Body> {
    if let Err(resp) = caller.require_product_access(ctx.request_id) {
        return *resp;
    }
    let query = ctx.query();
    if let Some(l) = param(&query, "language")
        && !l.is_empty()
        && !catalog::STT_LANGUAGES.contains(&l)
    {
        return legacy_error(&format!(
            "Invalid language '{l}'. Supported languages: {}",
            catalog::STT_LANGUAGES.join(", ")
        ));
    }
    let hint = match param(&query, "encoding") {
        None | Some("") => None,
        Some("linear16") => Some(RawEncoding::Linear16),
        Some("linear32") => Some(RawEncoding::Linear32),
        Some("mulaw") => Some(RawEncoding::Mulaw),
        Some("alaw") => Some(RawEncoding::Alaw),
        // Opus payloads are accepted and transcribe as nothing.
        Some("opus" | "ogg_opus") => None,
        Some(other) => {
            return legacy_error(&format!(
                "Invalid encoding '{other}'. Supported encodings: linear16, linear32, alaw, mulaw, opus, ogg_opus"
            ));
        }
    };
    let content_type = ctx.content_type();
    let url_mode = content_type.as_deref() == Some("application/json");
    let raw_ok = match content_type.as_deref() {
        None | Some("application/octet-stream") => true,
        Some(t) => t.starts_with("audio/") || t == "application/json",
    };
    if !raw_ok {
        return legacy_error("Invalid file format. Supported formats: audio/*");
    }
    match receive(ctx, url_mode, hint).await {
        Ok(received) => errors::json(StatusCode::OK, &pulse_response(received, &query, true)),
        Err(Failure::TooLarge) => legacy_error("Audio data too large"),
        Err(Failure::BadUrlJson) => {
            legacy_error("Invalid JSON data: missing or invalid 'url' field")
        }
        Err(Failure::Empty) => legacy_error("No audio data provided"),
        Err(Failure::UnknownUrl(url)) => legacy_error(&format!(
            "Failed to download audio from url '{url}' (the emulator never uses the network; register it as a fixture)"
        )),
        Err(Failure::Broken) => legacy_error("The request body could not be read"),
    }
}
