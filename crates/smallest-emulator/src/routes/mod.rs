//! Request dispatch: one `match` on (method, path), then one module per API area.
//!
//! Every request is logged (secrets scrubbed), gets an `x-request-id`, and is authenticated unless
//! it is the health probe or one of the emulator's own unauthenticated helpers (fixtures served by
//! path, `/_emulator/speech.wav`). A body a route did not read is drained in the background.

mod cloning;
mod control;
mod dicts;
mod stt;
mod tts;
mod tts_live;
mod voices;
mod ws_stt;
mod ws_tts;

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::RecordedRequest;
use crate::auth::{self, Caller};
use crate::body::{Body, RequestBody, full};
use crate::errors;
use crate::state::State;

/// What a route handler gets.
pub(crate) struct Ctx<'a> {
    pub(crate) state: &'a Arc<State>,
    pub(crate) parts: &'a Parts,
    pub(crate) body: &'a mut RequestBody,
    pub(crate) request_id: &'a str,
}

impl Ctx<'_> {
    /// The parsed query string.
    pub(crate) fn query(&self) -> Vec<(String, String)> {
        parse_query(self.parts.uri.query().unwrap_or(""))
    }

    /// The media type of the body, lowercased, without parameters.
    pub(crate) fn content_type(&self) -> Option<String> {
        let value = self.parts.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next().unwrap_or("").trim();
        (!media.is_empty()).then(|| media.to_ascii_lowercase())
    }

    /// The declared `Content-Length`, if any.
    pub(crate) fn content_length(&self) -> Option<u64> {
        content_length(self.parts)
    }

    /// Whether the request asked for content expiry (`x-expire-content: true`).
    pub(crate) fn expire_content(&self) -> bool {
        self.parts
            .headers
            .get("x-expire-content")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Parses `a=1&b=x%20y` (`+` is a space).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let spaced = s.replace('+', " ");
                percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// Handles one request.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let request_id = state.new_id();
    let (mut parts, incoming) = req.into_parts();
    let fault = control::select(&state, &parts);
    let mut record = record_of(&parts);
    record.fault.clone_from(&fault);
    if let Some(fault) = fault {
        parts.extensions.insert(crate::faults::AppliedFault(fault));
    }
    record.request_id.clone_from(&request_id);
    let seq = state.record(record);
    let mut body = RequestBody::new(incoming);
    let mut resp = {
        let mut ctx = Ctx {
            state: &state,
            parts: &parts,
            body: &mut body,
            request_id: &request_id,
        };
        control::dispatch(&mut ctx).await
    };
    let body_len = match body.consumed() {
        0 => content_length(&parts).unwrap_or(0),
        n => n,
    };
    state.finish_record(
        seq,
        resp.status().as_u16(),
        usize::try_from(body_len).unwrap_or(usize::MAX),
    );
    body.drain_in_background();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().entry("x-request-id").or_insert(value);
    }
    resp
}

/// Paths answered with `410 MODEL_DEPRECATED` (API.md §1.3).
fn is_retired(path: &str) -> bool {
    path == "/waves/v1/lightning-v2"
        || path.starts_with("/waves/v1/lightning-v2/")
        || path.starts_with("/waves/v1/lightning-large")
        || path == "/waves/v1/prof-voice-cloning"
        || path.starts_with("/waves/v1/prof-voice-cloning/")
}

async fn route(ctx: &mut Ctx<'_>) -> Response<Body> {
    let method = ctx.parts.method.clone();
    let raw_path = ctx.parts.uri.path().to_owned();
    // `/waves/v1/stt/` is the documented spelling; accept every route with or without the slash.
    let path = match raw_path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped,
        _ => raw_path.as_str(),
    };

    if path == "/waves/v1/health" {
        return match method {
            Method::GET => health(),
            _ => errors::method_not_allowed(&method, &raw_path, "GET"),
        };
    }
    if !path.starts_with("/waves/") {
        // The emulator's own helpers: fixtures registered by path, the speech generator.
        if method == Method::GET {
            let path_and_query = ctx.parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            if let Some(bytes) = ctx.state.local_resource(path_and_query) {
                let mut resp = Response::new(full(bytes));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
                return resp;
            }
        }
        return errors::not_found(&method, &raw_path);
    }

    let caller: Caller = match auth::authenticate(ctx.state, &ctx.parts.headers) {
        Ok(caller) => caller,
        Err(resp) => return *resp,
    };
    if is_retired(path) {
        return errors::model_retired();
    }
    // WebSocket upgrades (`GET` + `Upgrade: websocket`); a POST to `/tts/live` is the SSE route.
    if crate::ws::is_upgrade(ctx.parts) {
        match path {
            "/waves/v1/tts/live" => return ws_tts::upgrade(ctx, &caller),
            "/waves/v1/stt/live" => return ws_stt::upgrade(ctx, &caller, false),
            "/waves/v1/pulse/get_text" => return ws_stt::upgrade(ctx, &caller, true),
            _ => {}
        }
    }
    match (path, &method) {
        ("/waves/v1/tts/live", &Method::GET) | ("/waves/v1/stt/live", _) => {
            crate::ws::upgrade_required()
        }
        ("/waves/v1/tts", &Method::POST) => tts::synthesize(ctx, &caller).await,
        ("/waves/v1/tts", _) => errors::method_not_allowed(&method, &raw_path, "POST"),
        ("/waves/v1/tts/live", &Method::POST) => tts_live::stream(ctx, &caller).await,
        ("/waves/v1/stt", &Method::POST) => stt::transcribe(ctx, &caller).await,
        ("/waves/v1/stt", _) => errors::method_not_allowed(&method, &raw_path, "POST"),
        ("/waves/v1/pulse/get_text", &Method::POST) => stt::legacy_get_text(ctx, &caller).await,
        ("/waves/v1/pulse/get_text", _) => errors::method_not_allowed(&method, &raw_path, "POST"),
        ("/waves/v1/voice/get-all-models", &Method::GET) => voices::get_all_models(ctx),
        ("/waves/v1/voice/get-all-models", _) => {
            errors::method_not_allowed(&method, &raw_path, "GET")
        }
        ("/waves/v1/voice-cloning", &Method::POST) => cloning::create(ctx, &caller).await,
        ("/waves/v1/voice-cloning", &Method::GET) => cloning::list(ctx, &caller),
        ("/waves/v1/voice-cloning", _) => {
            errors::method_not_allowed(&method, &raw_path, "GET, POST")
        }
        ("/waves/v1/voice-cloning/delete", &Method::POST) => cloning::delete_needs_session(),
        ("/waves/v1/voice-cloning/delete", _) => {
            errors::method_not_allowed(&method, &raw_path, "POST")
        }
        ("/waves/v1/pronunciation-dicts", _) => dicts::handle(ctx, &caller).await,
        (p, _) if voices::get_voices_model(p).is_some() => {
            let model = voices::get_voices_model(p).unwrap_or_default();
            voices::get_voices(ctx, &caller, model)
        }
        _ => errors::not_found(&method, &raw_path),
    }
}

fn health() -> Response<Body> {
    errors::json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "mongo": { "status": "connected" },
            "redis": { "status": "connected" },
            "rabbitmq": { "status": "connected" },
        }),
    )
}

/// Query parameters whose values are secrets (browser-style auth fallbacks).
const SECRET_PARAMS: [&str; 3] = ["token", "api_key", "key"];

fn record_of(parts: &Parts) -> RecordedRequest {
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            let shown = match name.as_str() {
                "authorization" | "proxy-authorization" => {
                    let is_bearer = value
                        .get(..7)
                        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "));
                    if is_bearer {
                        "Bearer <redacted>"
                    } else {
                        "<redacted>"
                    }
                    .to_owned()
                }
                "cookie" | "x-api-key" => "<redacted>".to_owned(),
                _ => value.into_owned(),
            };
            (name.as_str().to_owned(), shown)
        })
        .collect();
    let query = parts.uri.query().map(|q| {
        q.split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k) => format!("{k}=<redacted>"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query,
        headers,
        body_len: 0,
        status: 0,
        request_id: String::new(),
        fault: None,
        received: std::time::Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query("model=pulse&language=en&x=a%20b+c&flag&=v");
        assert_eq!(q[0], ("model".into(), "pulse".into()));
        assert_eq!(q[2], ("x".into(), "a b c".into()));
        assert_eq!(q[3], ("flag".into(), String::new()));
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn retired_paths() {
        assert!(is_retired("/waves/v1/lightning-v2/get_speech"));
        assert!(is_retired("/waves/v1/lightning-large"));
        assert!(is_retired("/waves/v1/lightning-large/add_voice"));
        assert!(is_retired("/waves/v1/prof-voice-cloning/x"));
        assert!(!is_retired("/waves/v1/lightning-v3.1/get_speech"));
        assert!(!is_retired("/waves/v1/lightning-v2x"));
    }
}
