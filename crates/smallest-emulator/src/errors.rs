//! JSON responses and the error bodies shared by several routes (API.md §8).

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::body::{Body, full};

/// The content type the real service sends with JSON.
pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// A JSON response with `status`.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// `404` for routes the API does not have (including retired-and-removed ones, API.md §1.3).
pub(crate) fn not_found(method: &Method, path: &str) -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        &json!({
            "error": "Not Found",
            "message": format!("Cannot {method} {path}"),
        }),
    )
}

/// `405` for a known route called with the wrong method.
pub(crate) fn method_not_allowed(
    method: &Method,
    path: &str,
    allowed: &'static str,
) -> Response<Body> {
    let mut resp = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({
            "error": "Method Not Allowed",
            "message": format!("{method} is not supported on {path}; use {allowed}."),
        }),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    resp
}

/// `410` with the exact `MODEL_DEPRECATED` body of API.md §8.3.
pub(crate) fn model_retired() -> Response<Body> {
    json(
        StatusCode::GONE,
        &json!({
            "status": "error",
            "error_code": "MODEL_DEPRECATED",
            "message": "This model is retired. Please migrate to lightning-v3.1 via /waves/v1/lightning-v3.1/get_speech.",
            "recommended_endpoint": "/waves/v1/lightning-v3.1/get_speech",
        }),
    )
}

/// `401` without an `Authorization` header (gateway shape, API.md §8.2).
pub(crate) fn no_token() -> Response<Body> {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({ "message": "Unauthorized: No tokens provided" }),
    )
}

/// `401` for a key the emulator does not accept (gateway shape, API.md §8.2).
pub(crate) fn bad_token() -> Response<Body> {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({ "error": "unauthorized" }),
    )
}

/// `403` for a valid key that may not use the product.
pub(crate) fn forbidden(request_id: &str) -> Response<Body> {
    json(
        StatusCode::FORBIDDEN,
        &json!({
            "error": "Forbidden",
            "message": "This API key lacks access to this resource. Check the key's workspace, product scope and plan.",
            "request_id": request_id,
        }),
    )
}

/// `413` for a JSON request body far larger than any valid request.
pub(crate) fn json_body_too_large(limit: usize) -> Response<Body> {
    json(
        StatusCode::PAYLOAD_TOO_LARGE,
        &json!({
            "error": "PayloadTooLarge",
            "message": format!("The JSON request body exceeds {} KiB.", limit / 1024),
        }),
    )
}
