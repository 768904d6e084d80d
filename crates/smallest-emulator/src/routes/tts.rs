//! `POST /waves/v1/tts` — synchronous synthesis (API.md §3.1–3.3, §3.6).
//!
//! Validation reproduces the service's zod issues: first every schema issue, in field order; only
//! when the body fits the schema, the per-model language check and the voice lookup. A valid
//! request takes one of the key's concurrency slots (429 when none is free), holds it through the
//! configured latency and the whole response body, and streams the audio as it is rendered.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Ctx;
use crate::audio::{OutputEncoder, OutputFormat};
use crate::auth::Caller;
use crate::body::{Body, ReadError};
use crate::catalog;
use crate::errors;
use crate::library::Scope;
use crate::speech::Synthesizer;
use crate::state::TtsSlot;

/// Largest JSON body read (the service recommends ≤ 250 characters of text per request).
const MAX_JSON_BYTES: usize = 1024 * 1024;
/// Size of each response body chunk.
const CHUNK_BYTES: usize = 16 * 1024;

/// One zod issue, with the fields in the order zod emits them.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Issue {
    InvalidType {
        code: &'static str,
        expected: String,
        received: &'static str,
        path: Vec<Value>,
        message: String,
    },
    InvalidEnum {
        received: Value,
        code: &'static str,
        options: Vec<Value>,
        path: Vec<Value>,
        message: String,
    },
    Bound {
        code: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        minimum: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        maximum: Option<Value>,
        #[serde(rename = "type")]
        kind: &'static str,
        inclusive: bool,
        exact: bool,
        path: Vec<Value>,
        message: String,
    },
    InvalidString {
        validation: &'static str,
        code: &'static str,
        path: Vec<Value>,
        message: &'static str,
    },
    Custom {
        code: &'static str,
        path: Vec<Value>,
        message: String,
    },
}

/// The `400` body: `{"error": [issue, …]}` (serialised in field order, unlike a `json!` map).
#[derive(Serialize)]
struct ZodError<'a> {
    error: &'a [Issue],
}

fn path(field: &str) -> Vec<Value> {
    vec![Value::from(field)]
}

/// zod's name for the type of a JSON value (`undefined` when absent).
fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

fn invalid_type(field: &str, expected: &str, got: Option<&Value>) -> Issue {
    let received = type_name(got);
    let message = if got.is_none() {
        "Required".to_owned()
    } else {
        format!("Expected {expected}, received {received}")
    };
    Issue::InvalidType {
        code: "invalid_type",
        expected: expected.to_owned(),
        received,
        path: path(field),
        message,
    }
}

fn join_options(options: &[Value]) -> String {
    options
        .iter()
        .map(|o| match o {
            Value::String(s) => format!("'{s}'"),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn invalid_enum(field: &str, received: &Value, options: Vec<Value>) -> Issue {
    let shown = match received {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let message = format!(
        "Invalid enum value. Expected {}, received '{shown}'",
        join_options(&options)
    );
    Issue::InvalidEnum {
        received: received.clone(),
        code: "invalid_enum_value",
        options,
        path: path(field),
        message,
    }
}

/// A string enum field: `Some(value)` when present and valid.
fn string_enum(
    obj: &Map<String, Value>,
    field: &str,
    options: &[&str],
    issues: &mut Vec<Issue>,
) -> Option<String> {
    let v = obj.get(field)?;
    let opts: Vec<Value> = options.iter().map(|o| Value::from(*o)).collect();
    match v {
        Value::String(s) if options.contains(&s.as_str()) => Some(s.clone()),
        Value::String(_) => {
            issues.push(invalid_enum(field, v, opts));
            None
        }
        _ => {
            issues.push(invalid_type(field, &join_options(&opts), Some(v)));
            None
        }
    }
}

fn required_string(
    obj: &Map<String, Value>,
    field: &str,
    min_len: usize,
    issues: &mut Vec<Issue>,
) -> Option<String> {
    match obj.get(field) {
        Some(Value::String(s)) if s.chars().count() >= min_len => Some(s.clone()),
        Some(Value::String(_)) => {
            issues.push(Issue::Bound {
                code: "too_small",
                minimum: Some(Value::from(min_len)),
                maximum: None,
                kind: "string",
                inclusive: true,
                exact: false,
                path: path(field),
                message: format!("String must contain at least {min_len} character(s)"),
            });
            None
        }
        other => {
            issues.push(invalid_type(field, "string", other));
            None
        }
    }
}

fn optional_bool(obj: &Map<String, Value>, field: &str, issues: &mut Vec<Issue>) {
    if let Some(v) = obj.get(field)
        && !v.is_boolean()
    {
        issues.push(invalid_type(field, "boolean", Some(v)));
    }
}

fn correlation_id(
    obj: &Map<String, Value>,
    field: &str,
    issues: &mut Vec<Issue>,
) -> Option<String> {
    let v = obj.get(field)?;
    let Value::String(s) = v else {
        issues.push(invalid_type(field, "string", Some(v)));
        return None;
    };
    let mut ok = true;
    if s.chars().count() > 128 {
        ok = false;
        issues.push(Issue::Bound {
            code: "too_big",
            minimum: None,
            maximum: Some(Value::from(128)),
            kind: "string",
            inclusive: true,
            exact: false,
            path: path(field),
            message: "String must contain at most 128 character(s)".to_owned(),
        });
    }
    let pattern_ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !pattern_ok {
        ok = false;
        issues.push(Issue::InvalidString {
            validation: "regex",
            code: "invalid_string",
            path: path(field),
            message: "Invalid",
        });
    }
    ok.then(|| s.clone())
}

/// A validated TTS request.
#[derive(Debug)]
pub(super) struct TtsParams {
    text: String,
    pub(super) sample_rate: u32,
    speed: f32,
    pub(super) format: OutputFormat,
    session_id: Option<String>,
    request_id: Option<String>,
}

/// [`validate_for`] with no clones and no dictionaries.
#[cfg(test)]
fn validate(body: &Value) -> Result<TtsParams, Vec<Issue>> {
    validate_for(body, &Scope::none())
}

/// Validates a TTS body for a caller (`scope`): the caller's clones are valid voices, its
/// dictionaries may be named in `pronunciation_dicts`, and they respell the returned `text`.
/// Every transport (sync, SSE, WebSocket) should validate through here.
fn validate_for(body: &Value, scope: &Scope<'_>) -> Result<TtsParams, Vec<Issue>> {
    let Value::Object(obj) = body else {
        return Err(vec![Issue::InvalidType {
            code: "invalid_type",
            expected: "object".to_owned(),
            received: type_name(Some(body)),
            path: Vec::new(),
            message: format!("Expected object, received {}", type_name(Some(body))),
        }]);
    };
    let mut issues = Vec::new();
    let text = required_string(obj, "text", 1, &mut issues);
    let voice_id = required_string(obj, "voice_id", 0, &mut issues);
    let model = string_enum(obj, "model", &catalog::TTS_MODELS, &mut issues);
    let sample_rate = match obj.get("sample_rate") {
        None => Some(44_100),
        Some(v @ (Value::Number(_) | Value::String(_))) => {
            match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(rate) if catalog::TTS_SAMPLE_RATES.contains(&rate) => Some(rate),
                _ => {
                    let options = catalog::TTS_SAMPLE_RATES
                        .iter()
                        .map(|r| Value::from(*r))
                        .collect();
                    issues.push(invalid_enum("sample_rate", v, options));
                    None
                }
            }
        }
        Some(v) => {
            let options: Vec<Value> = catalog::TTS_SAMPLE_RATES
                .iter()
                .map(|r| Value::from(*r))
                .collect();
            issues.push(invalid_type(
                "sample_rate",
                &join_options(&options),
                Some(v),
            ));
            None
        }
    };
    let speed = match obj.get("speed") {
        None => Some(1.0),
        Some(v) => match v.as_f64() {
            None => {
                issues.push(invalid_type("speed", "number", Some(v)));
                None
            }
            Some(s) if s < 0.5 => {
                issues.push(Issue::Bound {
                    code: "too_small",
                    minimum: Some(Value::from(0.5)),
                    maximum: None,
                    kind: "number",
                    inclusive: true,
                    exact: false,
                    path: path("speed"),
                    message: "Number must be greater than or equal to 0.5".to_owned(),
                });
                None
            }
            Some(s) if s > 2.0 => {
                issues.push(Issue::Bound {
                    code: "too_big",
                    minimum: None,
                    maximum: Some(Value::from(2)),
                    kind: "number",
                    inclusive: true,
                    exact: false,
                    path: path("speed"),
                    message: "Number must be less than or equal to 2".to_owned(),
                });
                None
            }
            Some(s) => Some(s as f32),
        },
    };
    let language = string_enum(obj, "language", &catalog::TTS_LANGUAGES, &mut issues);
    let number_language = string_enum(
        obj,
        "number_pronunciation_language",
        &catalog::TTS_LANGUAGES,
        &mut issues,
    );
    optional_bool(obj, "math_notation", &mut issues);
    let format = string_enum(obj, "output_format", &OutputFormat::NAMES, &mut issues);
    let mut dict_ids: Vec<String> = Vec::new();
    if let Some(v) = obj.get("pronunciation_dicts") {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_string() {
                        let mut issue = invalid_type("pronunciation_dicts", "string", Some(item));
                        if let Issue::InvalidType { path, .. } = &mut issue {
                            path.push(Value::from(i));
                        }
                        issues.push(issue);
                    }
                    if let Some(id) = item.as_str() {
                        dict_ids.push(id.to_owned());
                    }
                }
            }
            other => issues.push(invalid_type("pronunciation_dicts", "array", Some(other))),
        }
    }
    optional_bool(obj, "word_timestamps", &mut issues);
    let session_id = correlation_id(obj, "session_id", &mut issues);
    let request_id = correlation_id(obj, "request_id", &mut issues);

    let (Some(text), Some(voice_id), Some(sample_rate), Some(speed), true) =
        (text, voice_id, sample_rate, speed, issues.is_empty())
    else {
        return Err(issues);
    };

    // Refinements, once the shape is right.
    let model = model.unwrap_or_else(|| catalog::TTS_MODELS[0].to_owned());
    for (field, value) in [
        ("language", &language),
        ("number_pronunciation_language", &number_language),
    ] {
        if let Some(lang) = value
            && !catalog::tts_language_supported(&model, lang)
        {
            issues.push(Issue::Custom {
                code: "custom",
                path: path(field),
                message: format!(
                    "Language '{lang}' is not supported on the {model} model. Supported languages: {}",
                    catalog::tts_languages_of(&model).join(", ")
                ),
            });
        }
    }
    if !catalog::voice_exists(&voice_id) && !scope.has_clone(&voice_id) {
        issues.push(Issue::Custom {
            code: "custom",
            path: path("voice_id"),
            message: "Invalid Voice ID".to_owned(),
        });
    }
    for (i, id) in dict_ids.iter().enumerate() {
        if !scope.has_dict(id) {
            issues.push(Issue::Custom {
                code: "custom",
                path: vec![Value::from("pronunciation_dicts"), Value::from(i)],
                message: format!("Pronunciation dictionary '{id}' not found"),
            });
        }
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    let text = scope.respell(text, &dict_ids);
    Ok(TtsParams {
        text,
        sample_rate,
        speed,
        format: format
            .as_deref()
            .and_then(OutputFormat::from_name)
            .unwrap_or(OutputFormat::Pcm),
        session_id,
        request_id,
    })
}

/// What the WebSocket route (`routes::ws_tts`) takes from one validated message; it buffers the
/// raw `text` itself and respells the whole buffer at flush.
pub(super) struct WsMessageParams {
    pub(super) sample_rate: u32,
    pub(super) speed: f32,
    pub(super) session_id: Option<String>,
    pub(super) request_id: Option<String>,
}

/// [`validate_for`] for one WebSocket message: its settings, or its zod issues as JSON.
pub(super) fn validate_ws_message(
    body: &Value,
    scope: &Scope<'_>,
) -> Result<WsMessageParams, Value> {
    match validate_for(body, scope) {
        Ok(p) => Ok(WsMessageParams {
            sample_rate: p.sample_rate,
            speed: p.speed,
            session_id: p.session_id,
            request_id: p.request_id,
        }),
        Err(issues) => Err(serde_json::to_value(&issues).unwrap_or(Value::Null)),
    }
}

fn invalid_request(message: String) -> Response<Body> {
    errors::json(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "InvalidRequest", "message": message }),
    )
}

pub(super) fn too_many_concurrent(limit: usize) -> Response<Body> {
    errors::json(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "error": "Too many concurrent requests",
            "message": format!(
                "This API key already has {limit} text-to-speech request(s) in flight, its concurrency limit. \
                 Wait for one to finish before sending another, or raise the plan's concurrency."
            ),
        }),
    )
}

/// A valid TTS request that holds one of its key's concurrency slots, with its audio ready to be
/// rendered lazily (shared by the sync route and the SSE route, `routes::tts_live`).
pub(super) struct TtsJob {
    pub(super) params: TtsParams,
    pub(super) audio: AudioBody,
}

/// Everything the sync and SSE routes do before their first byte: product access, the body limit,
/// JSON, validation, the concurrency slot, the configured latency, and the synthesizer (with the
/// builder's `text_repeat`). `Err` is the error response to send instead.
pub(super) async fn prepare(
    ctx: &mut Ctx<'_>,
    caller: &Caller,
) -> Result<TtsJob, Box<Response<Body>>> {
    caller.require_product_access(ctx.request_id)?;
    if ctx
        .content_length()
        .is_some_and(|n| n > MAX_JSON_BYTES as u64)
    {
        return Err(Box::new(errors::json_body_too_large(MAX_JSON_BYTES)));
    }
    let raw = match ctx.body.read_to_limit(MAX_JSON_BYTES).await {
        Ok(raw) => raw,
        Err(ReadError::TooLarge) => {
            return Err(Box::new(errors::json_body_too_large(MAX_JSON_BYTES)));
        }
        Err(ReadError::Broken) => {
            return Err(Box::new(invalid_request(
                "The request body could not be read.".to_owned(),
            )));
        }
    };
    let value: Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(e) => {
            return Err(Box::new(invalid_request(format!(
                "The request body is not valid JSON: {e}."
            ))));
        }
    };
    let params = match validate_for(&value, &Scope::of(ctx.state, caller.key())) {
        Ok(p) => p,
        Err(issues) => {
            return Err(Box::new(errors::json(
                StatusCode::BAD_REQUEST,
                &ZodError { error: &issues },
            )));
        }
    };
    let Some(slot) = ctx.state.try_acquire_tts(caller.key()) else {
        return Err(Box::new(too_many_concurrent(
            ctx.state.settings.tts_concurrency,
        )));
    };
    let latency = ctx.state.settings.tts_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let text = repeated(&params.text, ctx.state.settings.text_repeat);
    let synth = Synthesizer::new(&text, params.sample_rate, params.speed);
    let total = synth.total_samples();
    let Some(encoder) = OutputEncoder::new(params.format, params.sample_rate, total) else {
        return Err(Box::new(errors::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": "InternalServerError", "message": "An unexpected error occurred." }),
        )));
    };
    let remaining = params.format.exact_len(total);
    let body = AudioBody {
        synth,
        encoder,
        remaining,
        done: false,
        slot: Some(slot),
    };
    Ok(TtsJob {
        params,
        audio: body,
    })
}

/// The four `X-*Id` headers of a TTS response (external ids empty when not given), and
/// `x-content-expiry: applied` when the request asked for content expiry.
pub(super) fn put_id_headers(ctx: &Ctx<'_>, params: &TtsParams, headers: &mut HeaderMap) {
    let session = ctx.state.new_id();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-session-id", &session);
    put("x-request-id", ctx.request_id);
    put(
        "x-external-session-id",
        params.session_id.as_deref().unwrap_or(""),
    );
    put(
        "x-external-request-id",
        params.request_id.as_deref().unwrap_or(""),
    );
    if ctx.expire_content() {
        put("x-content-expiry", "applied");
    }
}

/// Largest text the builder's `text_repeat` makes (bytes); fewer repetitions are made beyond.
const MAX_REPEATED_TEXT: usize = 256 * 1024 * 1024;

/// `text` repeated `n` times, back to back (`EmulatorBuilder::text_repeat`).
fn repeated(text: &str, n: usize) -> std::borrow::Cow<'_, str> {
    if n <= 1 || text.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.repeat(n.min(MAX_REPEATED_TEXT / text.len()).max(1)))
}

pub(super) async fn synthesize(ctx: &mut Ctx<'_>, caller: &Caller) -> Response<Body> {
    let job = match prepare(ctx, caller).await {
        Ok(job) => job,
        Err(resp) => return *resp,
    };
    let remaining = job.audio.remaining;
    let mut resp = Response::new(job.audio.boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    if let Some(len) = remaining {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    put_id_headers(ctx, &job.params, headers);
    resp
}

/// The audio of one TTS response, rendered and encoded chunk by chunk as the client reads it.
/// Holds the key's concurrency slot until the last byte is produced or the client goes away.
pub(super) struct AudioBody {
    synth: Synthesizer,
    encoder: OutputEncoder,
    remaining: Option<u64>,
    done: bool,
    slot: Option<TtsSlot>,
}

impl AudioBody {
    /// Takes the concurrency slot out, for a wrapper that must hold it longer (SSE framing).
    pub(super) fn take_slot(&mut self) -> Option<TtsSlot> {
        self.slot.take()
    }
}

impl hyper::body::Body for AudioBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut out = Vec::with_capacity(CHUNK_BYTES + 8192);
        while out.len() < CHUNK_BYTES {
            match this.synth.next() {
                Some(pcm) => this.encoder.encode(&pcm, &mut out),
                None => {
                    this.encoder.finish(&mut out);
                    this.done = true;
                    this.slot = None;
                    break;
                }
            }
        }
        if let Some(remaining) = this.remaining.as_mut() {
            *remaining = remaining.saturating_sub(out.len() as u64);
        }
        if out.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(body: Value) -> Value {
        match validate(&body) {
            Ok(p) => panic!("expected issues, got {p:?}"),
            Err(issues) => serde_json::to_value(&issues).unwrap_or_default(),
        }
    }

    #[test]
    fn mulaw_issue_matches_the_recorded_probe() {
        let issues =
            issues_of(json!({"text": "hi", "voice_id": "magnus", "output_format": "mulaw"}));
        let expected = json!([{
            "received": "mulaw",
            "code": "invalid_enum_value",
            "options": ["wav", "ulaw", "alaw", "pcm", "mp3"],
            "path": ["output_format"],
            "message": "Invalid enum value. Expected 'wav' | 'ulaw' | 'alaw' | 'pcm' | 'mp3', received 'mulaw'"
        }]);
        assert_eq!(issues, expected);
        // Field order too, as the service sends it.
        let text = serde_json::to_string(
            &validate(&json!({"text": "x", "voice_id": "magnus", "output_format": "mulaw"})).err(),
        )
        .unwrap_or_default();
        assert!(
            text.starts_with(r#"[{"received":"mulaw","code":"invalid_enum_value","options""#),
            "{text}"
        );
    }

    #[test]
    fn unknown_voice_and_language() {
        assert_eq!(
            issues_of(json!({"text": "hi", "voice_id": "nobody"})),
            json!([{"code": "custom", "path": ["voice_id"], "message": "Invalid Voice ID"}])
        );
        let issues = issues_of(json!({"text": "hi", "voice_id": "magnus", "language": "ja"}));
        let message = issues[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Language 'ja' is not supported on the lightning_v3.1 model. Supported languages: en, hi, mr, "),
            "{message}"
        );
        assert!(validate(&json!({"text": "hi", "voice_id": "magnus", "language": "ja", "model": "lightning_v3.1_pro"})).is_ok());
        // A Pro voice on the base model is not rejected.
        assert!(validate(&json!({"text": "hi", "voice_id": "meher"})).is_ok());
    }

    #[test]
    fn schema_issues_in_field_order() {
        let issues = issues_of(json!({
            "text": "", "model": "lightning", "sample_rate": 22050, "speed": 3,
            "session_id": "bad id!", "request_id": "x".repeat(129)
        }));
        let codes: Vec<(&str, &str)> = issues
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| {
                        (
                            i["path"][0].as_str().unwrap_or(""),
                            i["code"].as_str().unwrap_or(""),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            codes,
            [
                ("text", "too_small"),
                ("voice_id", "invalid_type"),
                ("model", "invalid_enum_value"),
                ("sample_rate", "invalid_enum_value"),
                ("speed", "too_big"),
                ("session_id", "invalid_string"),
                ("request_id", "too_big"),
            ]
        );
        assert_eq!(issues[1]["message"], "Required");
        assert_eq!(
            issues[3]["message"],
            "Invalid enum value. Expected 8000 | 16000 | 24000 | 44100, received '22050'"
        );
        assert_eq!(
            issues_of(json!([1]))[0]["message"],
            "Expected object, received array"
        );
    }

    #[test]
    fn defaults() {
        let p = validate(&json!({"text": "hi", "voice_id": "magnus", "extra": true})).ok();
        let p = p.as_ref();
        assert_eq!(p.map(|p| p.sample_rate), Some(44_100));
        assert_eq!(p.map(|p| p.format), Some(OutputFormat::Pcm));
        assert_eq!(p.map(|p| p.speed), Some(1.0));
    }
}
