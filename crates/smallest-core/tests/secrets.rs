//! The API key never leaves through `Debug` or `Display`: not of the key, the
//! configuration, a prepared request, nor any error the core produces.

mod common;

use bytes::Bytes;
use common::{
    CANARY_KEY, api_error, api_error_with, assert_no_key, config, json_response, loopback_config,
    prepared,
};
use smallest_core::stt::WebhookMethod;
use smallest_core::tts::{OutputFormat, TtsRequest};
use smallest_core::{
    ApiKey, Config, Endpoint, Error, Health, LegacyTranscribeRequest, SttLanguage, SttModel,
    TranscribeRequest,
};

fn assert_debug_has_no_key<T: std::fmt::Debug>(value: &T) {
    let debug = format!("{value:?}");
    let pretty = format!("{value:#?}");
    assert!(!debug.contains("sk_canary"), "key in Debug: {debug}");
    assert!(
        !pretty.contains("sk_canary"),
        "key in pretty Debug: {pretty}"
    );
}

#[test]
fn api_key_debug_is_redacted() {
    let key = ApiKey::new(CANARY_KEY).unwrap();
    assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
    assert_debug_has_no_key(&key);
    assert_debug_has_no_key(&key.clone());
}

#[test]
fn authorization_header_is_sensitive_and_its_debug_hides_it() {
    let header = ApiKey::new(CANARY_KEY).unwrap().authorization_header();
    assert!(header.is_sensitive());
    assert_eq!(header.as_bytes(), format!("Bearer {CANARY_KEY}").as_bytes());
    assert_eq!(format!("{header:?}"), "Sensitive");
}

#[test]
fn config_debug_is_redacted() {
    for config in [
        config(),
        loopback_config(),
        config().allow_insecure_http(),
        config()
            .with_base_url("https://api.us.smallest.ai")
            .unwrap(),
    ] {
        assert_debug_has_no_key(&config);
        assert!(format!("{config:?}").contains("<redacted>"));
    }
}

#[test]
fn prepared_requests_debug_shows_sensitive_not_the_key() {
    let requests = [
        prepared(
            &TtsRequest::new("Hello from Smallest AI.", "meher")
                .output_format(OutputFormat::Wav)
                .expire_content(true),
        ),
        prepared(&TranscribeRequest::from_bytes(
            Bytes::from_static(b"RIFF"),
            SttLanguage::En,
        )),
        prepared(
            &TranscribeRequest::from_url("https://example.com/a.wav", SttLanguage::En)
                .webhook("https://h.example/cb", WebhookMethod::Post),
        ),
        prepared(&LegacyTranscribeRequest::from_url(
            "https://example.com/a.wav",
        )),
        smallest_core::prepare(&TtsRequest::new("a", "meher"), &loopback_config()).unwrap(),
    ];
    for request in &requests {
        assert_debug_has_no_key(request);
        assert_debug_has_no_key(request.headers());
        let debug = format!("{request:?}");
        assert!(debug.contains(r#""authorization": Sensitive"#), "{debug}");
    }
    // The health check carries no key at all.
    let health = prepared(&Health);
    assert!(health.headers().get("authorization").is_none());
    assert_debug_has_no_key(&health);
}

#[test]
fn upload_head_with_identity_headers_hides_the_key() {
    let head = TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::En)
        .prepare_upload(&config(), Some(10), None)
        .unwrap();
    assert_debug_has_no_key(&head);
}

#[test]
fn endpoints_never_see_the_key() {
    // Before `prepare`, nothing key-related is in the request at all.
    let raw = TtsRequest::new("a", "meher")
        .to_http_request(&config())
        .unwrap();
    assert!(raw.headers().get("authorization").is_none());
    let all = format!("{raw:?}{:?}", raw.body());
    assert!(!all.contains("sk_canary"));
}

#[test]
fn validation_errors_hide_the_key() {
    let errors: Vec<Error> = vec![
        TtsRequest::new("", "meher")
            .to_http_request(&config())
            .unwrap_err(),
        TtsRequest::new("a", "bad voice")
            .to_http_request(&config())
            .unwrap_err(),
        TtsRequest::new("a", "meher")
            .sample_rate(48000)
            .to_http_request(&config())
            .unwrap_err(),
        TranscribeRequest::from_url("https://example.com/a.wav", SttLanguage::En)
            .model(SttModel::PulsePro)
            .to_http_request(&config())
            .unwrap_err(),
        TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::Yue)
            .upload_head(&loopback_config(), Some(u64::MAX), None)
            .unwrap_err(),
        LegacyTranscribeRequest::from_url("not a url")
            .to_http_request(&config())
            .unwrap_err(),
        Error::Validation("mulaw".parse::<OutputFormat>().unwrap_err()),
    ];
    for err in &errors {
        assert_no_key(err);
    }
}

#[test]
fn api_and_decode_errors_hide_the_key() {
    let errors: Vec<Error> = vec![
        api_error(401, r#"{"message":"Unauthorized: No tokens provided"}"#).into(),
        api_error(401, r#"{"error":"unauthorized"}"#).into(),
        api_error_with(429, &[("retry-after", "3"), ("x-request-id", "r")], b"").into(),
        TtsRequest::new("a", "meher")
            .from_http_response(json_response(200, r#"{"status":"ok"}"#))
            .unwrap_err(),
        TranscribeRequest::from_bytes(Bytes::from_static(b"x"), SttLanguage::En)
            .from_http_response(json_response(200, "nope"))
            .unwrap_err(),
    ];
    for err in &errors {
        assert_no_key(err);
    }
}

#[test]
fn key_errors_never_repeat_the_key() {
    for bad in [
        format!("{CANARY_KEY} extra"),
        format!("sk_canary\u{e9}{CANARY_KEY}"),
        format!("{CANARY_KEY}\n{CANARY_KEY}"),
    ] {
        let err = ApiKey::new(bad).unwrap_err();
        assert_no_key(&err);
        assert!(matches!(err, Error::Config(_)));
    }
    assert!(
        ApiKey::new("")
            .unwrap_err()
            .to_string()
            .contains("SMALLEST_API_KEY")
    );
}

#[test]
fn base_url_errors_never_repeat_credentials() {
    for url in [
        format!("https://{CANARY_KEY}@api.smallest.ai"),
        format!("https://user:{CANARY_KEY}@api.smallest.ai/x"),
        format!("http://user:{CANARY_KEY}@127.0.0.1:9"),
        format!("https://user:{CANARY_KEY}@bad host/"),
        format!("ftp://user:{CANARY_KEY}@example.com"),
    ] {
        let err = config().with_base_url(&url).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert_no_key(&err);
    }
    // Other base-URL errors still quote the URL, which helps.
    let err = Config::new(ApiKey::new(CANARY_KEY).unwrap())
        .with_base_url("http://api.smallest.ai")
        .unwrap_err();
    assert!(err.to_string().contains("http://api.smallest.ai"), "{err}");
}
