//! `ApiError::from_parts` on arbitrary bodies and headers: no panic, bounded evidence.
#![no_main]

use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use smallest_core::ApiError;

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.len().min(8));
    let status = StatusCode::from_u16(400 + u16::from(head.first().copied().unwrap_or(0)) % 200)
        .unwrap_or(StatusCode::BAD_REQUEST);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(head) {
        headers.insert("retry-after", v.clone());
        headers.insert("x-request-id", v);
    }
    let e = ApiError::from_parts(status, &headers, body);
    assert!(e.raw_body().len() <= 4096);
    let _ = (e.to_string(), format!("{e:?}"), e.is_retryable(), e.hint());
});
