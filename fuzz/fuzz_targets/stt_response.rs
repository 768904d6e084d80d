//! The transcription parsers (both pre-recorded paths) on arbitrary bodies: no panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use smallest_core::{Endpoint, LegacyTranscribeRequest, SttLanguage, TranscribeRequest};

fuzz_target!(|data: &[u8]| {
    let status = if data.first().is_some_and(|b| b & 1 == 1) { 200 } else { 400 };
    let response = || {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Bytes::copy_from_slice(data))
            .unwrap()
    };
    let _ = TranscribeRequest::from_url("https://example.com/a.wav", SttLanguage::En)
        .from_http_response(response());
    let _ = LegacyTranscribeRequest::from_url("https://example.com/a.wav").from_http_response(response());
});
