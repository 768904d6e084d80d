//! Helpers shared by the integration tests of smallest-core.
//!
//! Each file under `tests/` is its own crate and uses a different subset of these.
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use smallest_core::{ApiError, ApiKey, Config, Endpoint, Error, ValidationError};

/// The key every test uses. It must never show up in any `Debug` or `Display`.
pub(crate) const CANARY_KEY: &str = "sk_canary_7f3a9c21d4e8b605";

/// The `User-Agent` every prepared request carries.
pub(crate) const USER_AGENT: &str = concat!("smallest-rs/", env!("CARGO_PKG_VERSION"));

/// A production configuration holding the canary key.
pub(crate) fn config() -> Config {
    Config::new(ApiKey::new(CANARY_KEY).unwrap())
}

/// A loopback emulator configuration with a path prefix.
pub(crate) fn loopback_config() -> Config {
    config()
        .with_base_url("http://127.0.0.1:8080/proxy/")
        .unwrap()
}

/// `prepare`s an endpoint with the canary configuration.
pub(crate) fn prepared<E: Endpoint>(endpoint: &E) -> Request<Bytes> {
    smallest_core::prepare(endpoint, &config()).unwrap()
}

/// The request's headers as sorted `(name, value)` pairs, sensitive values included.
pub(crate) fn header_pairs<B>(request: &Request<B>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// The body as UTF-8 text.
pub(crate) fn body_text(request: &Request<Bytes>) -> &str {
    std::str::from_utf8(request.body()).unwrap()
}

/// The body parsed as JSON.
pub(crate) fn body_json(request: &Request<Bytes>) -> serde_json::Value {
    serde_json::from_slice(request.body()).unwrap()
}

/// A response with a status, headers and body.
pub(crate) fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response<Bytes> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::copy_from_slice(body)).unwrap()
}

/// A JSON response, `Content-Type: application/json; charset=utf-8`.
pub(crate) fn json_response(status: u16, body: &str) -> Response<Bytes> {
    response(
        status,
        &[("content-type", "application/json; charset=utf-8")],
        body.as_bytes(),
    )
}

/// Parses an error body with no headers.
pub(crate) fn api_error(status: u16, body: &str) -> ApiError {
    api_error_with(status, &[], body.as_bytes())
}

/// Parses an error body with headers.
pub(crate) fn api_error_with(status: u16, headers: &[(&str, &str)], body: &[u8]) -> ApiError {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    ApiError::from_parts(StatusCode::from_u16(status).unwrap(), &map, body)
}

/// The validation error inside an `Error`, or a panic naming what came instead.
pub(crate) fn validation(result: Result<impl std::fmt::Debug, Error>) -> ValidationError {
    match result {
        Err(Error::Validation(v)) => v,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// The API error inside an `Error`, or a panic naming what came instead.
pub(crate) fn api(result: Result<impl std::fmt::Debug, Error>) -> ApiError {
    match result {
        Err(Error::Api(e)) => *e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts that neither the `Debug` nor the `Display` of `value` holds the canary key.
pub(crate) fn assert_no_key<T: std::fmt::Debug + std::fmt::Display>(value: &T) {
    let debug = format!("{value:?}");
    let display = value.to_string();
    assert!(!debug.contains(CANARY_KEY), "key in Debug: {debug}");
    assert!(!display.contains(CANARY_KEY), "key in Display: {display}");
    assert!(!debug.contains("sk_canary"), "key prefix in Debug: {debug}");
    assert!(
        !display.contains("sk_canary"),
        "key prefix in Display: {display}"
    );
}
