//! Fault injection on the request path, and the control endpoint `/_emulator/faults`.
//!
//! [`dispatch`] sits between the request log and the router: the control endpoint is answered
//! here (and never faulted); any other request that a [`FaultRule`] chose is handled according to
//! its [`Fault`] (see `crate::faults` for the mechanisms).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::Ctx;
use crate::body::{Body, ReadError, full};
use crate::errors;
use crate::faults::{AppliedFault, ConnControl, Fault, FaultRule, PatternBody, Shape, ShapedBody};
use crate::state::State;

/// Path of the control endpoint.
pub(crate) const FAULTS_PATH: &str = "/_emulator/faults";

/// Largest JSON body the control endpoint reads.
const MAX_CONTROL_JSON: usize = 1024 * 1024;

/// Largest route JSON body [`Fault::MalformedJson`] reads in order to truncate it.
const MAX_TRUNCATED_JSON: usize = 4 * 1024 * 1024;

/// How long a request whose connection was reset lingers before its (unsendable) answer.
const AFTER_RESET: Duration = Duration::from_secs(1);

fn is_control(path: &str) -> bool {
    path == FAULTS_PATH || path.strip_suffix('/') == Some(FAULTS_PATH)
}

/// The fault for this request, if a rule chose it (never for the control endpoint).
pub(super) fn select(state: &State, parts: &Parts) -> Option<Fault> {
    let path = parts.uri.path();
    if is_control(path) {
        return None;
    }
    state
        .faults
        .select(parts.method.as_str(), path, crate::ws::is_upgrade(parts))
}

/// Handles a request: the control endpoint, or the router under the request's fault.
pub(super) async fn dispatch(ctx: &mut Ctx<'_>) -> Response<Body> {
    if is_control(ctx.parts.uri.path()) {
        return endpoint(ctx).await;
    }
    let Some(AppliedFault(fault)) = ctx.parts.extensions.get::<AppliedFault>().cloned() else {
        return super::route(ctx).await;
    };
    let conn = ctx.parts.extensions.get::<Arc<ConnControl>>().cloned();
    match fault {
        Fault::Latency(delay) => {
            tokio::time::sleep(delay).await;
            super::route(ctx).await
        }
        Fault::Status {
            status,
            retry_after,
            body,
        } => status_response(ctx.state, status, retry_after.as_deref(), body),
        Fault::ResetBeforeHead => {
            if let Some(conn) = conn {
                conn.kill();
                // The connection task drops the connection (and, on HTTP/1, this future with it).
                tokio::time::sleep(AFTER_RESET).await;
            }
            default_error(ctx.state, StatusCode::BAD_GATEWAY)
        }
        Fault::ResetMidBody { after_bytes } => {
            let resp = super::route(ctx).await;
            shaped(resp, Shape::ResetAfter(after_bytes), conn)
        }
        // Acted on by the SSE route and the live sessions, which find the fault in the request
        // extensions.
        Fault::SseCutBeforeDone | Fault::WsDrop { .. } | Fault::WsClose { .. } | Fault::WsStall => {
            super::route(ctx).await
        }
        Fault::StallHead(delay) => {
            let resp = super::route(ctx).await;
            tokio::time::sleep(delay).await;
            resp
        }
        Fault::StallBody {
            after_bytes,
            duration,
        } => {
            let resp = super::route(ctx).await;
            shaped(
                resp,
                Shape::StallAfter {
                    after: after_bytes,
                    duration,
                },
                conn,
            )
        }
        Fault::MalformedJson => {
            let resp = super::route(ctx).await;
            malformed_json(resp).await
        }
        Fault::WrongContentType => wrong_content_type(ctx.parts.uri.path()),
        Fault::HugeErrorBody { status, bytes } => huge_error_body(status, bytes),
        Fault::TrickleBody {
            chunk_bytes,
            interval,
        } => {
            let resp = super::route(ctx).await;
            shaped(
                resp,
                Shape::Trickle {
                    chunk: chunk_bytes,
                    interval,
                },
                conn,
            )
        }
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The emulator's JSON error body for `status`.
fn default_error(state: &State, status: StatusCode) -> Response<Body> {
    let (error, message) = match status.as_u16() {
        429 => return super::tts::too_many_concurrent(state.settings.tts_concurrency),
        500 => ("InternalServerError", "An unexpected error occurred."),
        502 => (
            "BadGateway",
            "The upstream service returned an invalid response.",
        ),
        503 => (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Try again later.",
        ),
        504 => (
            "GatewayTimeout",
            "The upstream service did not answer in time.",
        ),
        _ => (
            status.canonical_reason().unwrap_or("Error"),
            "An injected fault answered this request.",
        ),
    };
    errors::json(status, &json!({ "error": error, "message": message }))
}

fn status_response(
    state: &State,
    status: u16,
    retry_after: Option<&str>,
    body: Option<String>,
) -> Response<Body> {
    let status = status_code(status);
    let mut resp = match body {
        None => default_error(state, status),
        Some(text) => {
            let media = if serde_json::from_str::<Value>(&text).is_ok() {
                errors::JSON
            } else {
                "text/plain; charset=utf-8"
            };
            let mut resp = Response::new(full(text));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(media));
            resp
        }
    };
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        resp.headers_mut().insert(RETRY_AFTER, value);
    }
    resp
}

fn shaped(resp: Response<Body>, shape: Shape, conn: Option<Arc<ConnControl>>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, ShapedBody::new(body, shape, conn).boxed_unsync())
}

/// A truncated object for routes that do not answer JSON.
const CANNED_TRUNCATED_JSON: &str =
    r#"{"status": "success", "transcription": "This response was cut"#;

async fn malformed_json(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let mut text = Bytes::from_static(CANNED_TRUNCATED_JSON.as_bytes());
    if is_json_parts(&parts) {
        let limited = http_body_util::Limited::new(body, MAX_TRUNCATED_JSON);
        if let Ok(collected) = limited.collect().await {
            let whole = collected.to_bytes();
            if whole.len() >= 2 {
                text = whole.slice(..whole.len() / 2);
            }
        }
    }
    parts.status = StatusCode::OK;
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(errors::JSON));
    Response::from_parts(parts, full(text))
}

fn is_json_parts(parts: &http::response::Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

fn wrong_content_type(path: &str) -> Response<Body> {
    let (media, body): (&'static str, &'static str) = if path.starts_with("/waves/v1/tts") {
        (errors::JSON, r#"{"ok":true}"#)
    } else {
        (
            "text/html; charset=utf-8",
            "<!DOCTYPE html>\n<html><head><title>Service notice</title></head>\
             <body><h1>We&rsquo;ll be right back</h1></body></html>\n",
        )
    };
    let mut resp = Response::new(full(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media));
    resp
}

fn huge_error_body(status: u16, bytes: u64) -> Response<Body> {
    let status = status_code(status);
    let error = match status.as_u16() {
        500 => "InternalServerError",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let prefix = format!(r#"{{"error":"{error}","message":""#);
    let mut resp = Response::new(PatternBody::new(prefix, &b"\"}"[..], bytes).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(errors::JSON));
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes));
    resp
}

fn invalid(message: String) -> Response<Body> {
    errors::json(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "InvalidRequest", "message": message }),
    )
}

fn listing(state: &State) -> Value {
    json!({ "faults": state.faults.listed() })
}

/// `GET` lists the rules (with `matched` / `applied` counters), `POST` adds one rule (a JSON
/// object) or several (an array), `DELETE` removes them all. Loopback clients only; no auth.
async fn endpoint(ctx: &mut Ctx<'_>) -> Response<Body> {
    let loopback = ctx
        .parts
        .extensions
        .get::<Arc<ConnControl>>()
        .and_then(|c| c.peer())
        .is_none_or(|peer| peer.ip().is_loopback());
    if !loopback {
        return errors::json(
            StatusCode::FORBIDDEN,
            &json!({
                "error": "Forbidden",
                "message": "The emulator's control endpoint answers loopback clients only.",
            }),
        );
    }
    let method = ctx.parts.method.clone();
    match method {
        Method::GET => errors::json(StatusCode::OK, &listing(ctx.state)),
        Method::DELETE => {
            let cleared = ctx.state.faults.clear();
            errors::json(StatusCode::OK, &json!({ "cleared": cleared }))
        }
        Method::POST => {
            let raw = match ctx.body.read_to_limit(MAX_CONTROL_JSON).await {
                Ok(raw) => raw,
                Err(ReadError::TooLarge) => return errors::json_body_too_large(MAX_CONTROL_JSON),
                Err(ReadError::Broken) => {
                    return invalid("The request body could not be read.".to_owned());
                }
            };
            let value: Value = match serde_json::from_slice(&raw) {
                Ok(v) => v,
                Err(e) => return invalid(format!("The request body is not valid JSON: {e}.")),
            };
            let rules: Result<Vec<FaultRule>, _> = match value {
                Value::Array(_) => serde_json::from_value(value),
                other => serde_json::from_value::<FaultRule>(other).map(|r| vec![r]),
            };
            let rules = match rules {
                Ok(rules) => rules,
                Err(e) => return invalid(format!("Not a fault rule: {e}.")),
            };
            let added = rules.len();
            for rule in rules {
                ctx.state.faults.push(rule);
            }
            let mut body = listing(ctx.state);
            body["added"] = Value::from(added);
            errors::json(StatusCode::OK, &body)
        }
        _ => errors::method_not_allowed(&method, FAULTS_PATH, "GET, POST, DELETE"),
    }
}
