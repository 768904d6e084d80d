//! Every error body shape the Waves API sends (API.md §3.6, §4.1, §4.3, §6.1, §7, §8.2,
//! §8.3) parses into one `ApiError` with its status, kind, code, message, request id,
//! `Retry-After`, bounded raw body and the predicates transports decide on.

mod common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{api, api_error, api_error_with, json_response, response};
use smallest_core::error::{MAX_ERROR_BODY, ValidationIssue};
use smallest_core::tts::TtsRequest;
use smallest_core::{
    ApiErrorKind, Endpoint, Error, Health, LegacyTranscribeRequest, RetryAfter, SttLanguage,
    TranscribeRequest, check_status,
};

const REQUEST_ID: &str = "87dd36c1-4267-472d-96ee-4113e0a770a6";

// ---------------------------------------------------------------------------
// TTS bodies (§3.6)
// ---------------------------------------------------------------------------

#[test]
fn tts_spec_error_body_gives_code_and_message() {
    let e = api_error(
        400,
        r#"{"error":"InvalidRequest","message":"The 'text' field is required."}"#,
    );
    assert_eq!(e.status(), 400);
    assert_eq!(e.kind(), &ApiErrorKind::InvalidRequest);
    assert_eq!(e.code(), Some("InvalidRequest"));
    assert_eq!(e.message(), "The 'text' field is required.");
    assert!(e.issues().is_empty());
    assert_eq!(e.request_id(), None);
    assert_eq!(
        e.to_string(),
        "API error 400 (InvalidRequest): The 'text' field is required."
    );
}

#[test]
fn tts_spec_500_body() {
    let e = api_error(
        500,
        r#"{"error":"InternalServerError","message":"An unexpected error occurred."}"#,
    );
    assert_eq!(e.kind(), &ApiErrorKind::Server);
    assert_eq!(e.code(), Some("InternalServerError"));
    assert_eq!(e.message(), "An unexpected error occurred.");
    assert!(e.is_retryable());
    assert!(e.to_string().contains("quote the request id"), "{e}");
}

const MULAW_ZOD: &str = r#"{"error":[{"received":"mulaw","code":"invalid_enum_value","options":["wav","ulaw","alaw","pcm","mp3"],"path":["output_format"],"message":"Invalid enum value. Expected 'wav' | 'ulaw' | 'alaw' | 'pcm' | 'mp3', received 'mulaw'"}]}"#;

#[test]
fn zod_enum_issue_for_mulaw() {
    let e = api_error(400, MULAW_ZOD);
    assert_eq!(e.kind(), &ApiErrorKind::InvalidRequest);
    assert_eq!(e.code(), Some("invalid_enum_value"));
    assert_eq!(
        e.issues(),
        &[ValidationIssue {
            code: Some("invalid_enum_value".into()),
            path: "output_format".into(),
            message: "Invalid enum value. Expected 'wav' | 'ulaw' | 'alaw' | 'pcm' | 'mp3', received 'mulaw'".into(),
            options: vec![
                "wav".into(),
                "ulaw".into(),
                "alaw".into(),
                "pcm".into(),
                "mp3".into()
            ],
        }]
    );
    assert_eq!(
        e.message(),
        "output_format: Invalid enum value. Expected 'wav' | 'ulaw' | 'alaw' | 'pcm' | 'mp3', received 'mulaw'"
    );
    assert!(e.to_string().contains("(invalid_enum_value)"), "{e}");
}

#[test]
fn zod_custom_issue_for_an_unknown_voice() {
    let e = api_error(
        400,
        r#"{"error":[{"code":"custom","path":["voice_id"],"message":"Invalid Voice ID"}]}"#,
    );
    assert_eq!(e.code(), Some("custom"));
    assert_eq!(e.issues().len(), 1);
    assert_eq!(e.issues()[0].path, "voice_id");
    assert!(e.issues()[0].options.is_empty());
    assert_eq!(e.message(), "voice_id: Invalid Voice ID");
}

#[test]
fn zod_custom_issue_for_an_unsupported_language() {
    let message = "Language 'ja' is not supported on the lightning_v3.1 model. Supported languages: en, hi, mr, kn, ta, bn, gu, te, ml, pa, or, es, de, fr, it, nl, sv, pt, ru, pl, auto";
    let body = serde_json::json!({"error": [{"code": "custom", "path": ["language"], "message": message}]});
    let e = api_error(400, &body.to_string());
    assert_eq!(e.code(), Some("custom"));
    assert_eq!(e.issues()[0].path, "language");
    assert_eq!(e.message(), format!("language: {message}"));
}

#[test]
fn zod_several_issues_are_joined_and_have_no_single_code() {
    let e = api_error(
        400,
        r#"{"error":[
            {"code":"custom","path":["voice_id"],"message":"Invalid Voice ID"},
            {"code":"too_small","path":[],"message":"Body is empty"},
            {"code":"invalid_type","path":["items",0,"word"],"message":"Required"}]}"#,
    );
    assert_eq!(e.code(), None);
    assert_eq!(e.issues().len(), 3);
    assert_eq!(e.issues()[2].path, "items.0.word");
    assert_eq!(
        e.message(),
        "voice_id: Invalid Voice ID; Body is empty; items.0.word: Required"
    );
}

// ---------------------------------------------------------------------------
// Unified STT bodies (§4.1)
// ---------------------------------------------------------------------------

#[test]
fn stt_error_and_request_id_for_every_documented_status() {
    for (status, error, kind) in [
        (
            400,
            "Missing required query param: model. Supported values: pulse | pulse-pro.",
            ApiErrorKind::InvalidRequest,
        ),
        (
            403,
            "Your plan does not include pulse-pro.",
            ApiErrorKind::Forbidden,
        ),
        (
            413,
            "File size exceeds maximum limit of 250MB.",
            ApiErrorKind::PayloadTooLarge,
        ),
        (
            429,
            "Rate limit exceeded. Please retry after a short backoff.",
            ApiErrorKind::RateLimited,
        ),
        (503, "Worker temporarily unavailable.", ApiErrorKind::Server),
    ] {
        let body = serde_json::json!({"error": error, "request_id": REQUEST_ID}).to_string();
        let e = api(
            TranscribeRequest::from_bytes(Bytes::from_static(b"x"), SttLanguage::En)
                .from_http_response(json_response(status, &body)),
        );
        assert_eq!(e.status(), status);
        assert_eq!(e.kind(), &kind, "{status}");
        assert_eq!(e.message(), error);
        assert_eq!(e.code(), None, "{status}: a sentence is not a code");
        assert_eq!(e.request_id(), Some(REQUEST_ID));
        assert!(e.to_string().contains(REQUEST_ID), "{e}");
        assert_eq!(e.raw_body(), body.as_bytes());
        assert!(!e.body_truncated());
    }
}

#[test]
fn stt_413_display_names_the_limit() {
    let e = api_error(
        413,
        r#"{"error":"File size exceeds maximum limit of 250MB.","request_id":"r"}"#,
    );
    assert!(e.to_string().contains("250 MB"), "{e}");
    assert!(!e.is_retryable());
}

// ---------------------------------------------------------------------------
// Legacy STT bodies (§4.3)
// ---------------------------------------------------------------------------

#[test]
fn legacy_errors_field_is_appended_to_the_message() {
    for detail in [
        "Invalid file format. Supported formats: audio/*",
        "Audio data too large",
        "Invalid JSON data: missing or invalid 'url' field",
    ] {
        let body = serde_json::json!({"errors": detail, "status": "error", "message": "Error handling audio data"});
        let e = api(
            LegacyTranscribeRequest::from_url("https://example.com/a.wav")
                .from_http_response(json_response(400, &body.to_string())),
        );
        assert_eq!(e.kind(), &ApiErrorKind::InvalidRequest);
        assert_eq!(e.message(), format!("Error handling audio data: {detail}"));
        assert_eq!(e.code(), None);
    }
}

#[test]
fn legacy_errors_field_alone_is_the_message() {
    let e = api_error(400, r#"{"errors":"Audio data too large","status":"error"}"#);
    assert_eq!(e.message(), "Audio data too large");
}

#[test]
fn legacy_language_not_enabled_in_region() {
    let e = api_error(
        400,
        r#"{"status":"error","error_code":"LANGUAGE_NOT_ENABLED_IN_REGION","message":"Language 'multi-asian' has not been enabled in this region. Please contact support to request access.","language":"multi-asian","region":"ap-south-1"}"#,
    );
    assert_eq!(e.code(), Some("LANGUAGE_NOT_ENABLED_IN_REGION"));
    assert_eq!(
        e.message(),
        "Language 'multi-asian' has not been enabled in this region. Please contact support to request access."
    );
    assert!(
        e.to_string()
            .starts_with("API error 400 (LANGUAGE_NOT_ENABLED_IN_REGION): Language 'multi-asian'"),
        "{e}"
    );
}

#[test]
fn legacy_500_body() {
    let e = api_error(500, r#"{"error":"Internal server error"}"#);
    assert_eq!(e.message(), "Internal server error");
    assert_eq!(e.code(), None);
    assert_eq!(e.kind(), &ApiErrorKind::Server);
}

// ---------------------------------------------------------------------------
// Dictionaries (§7), cloning (§6.1), auth (§8.2), retired routes (§8.3)
// ---------------------------------------------------------------------------

#[test]
fn dict_validation_body_keeps_summary_and_details() {
    let e = api_error(
        400,
        r#"{"error":"Invalid request body","details":[{"code":"invalid_type","expected":"string","received":"undefined","path":["items",0,"word"],"message":"Required"}]}"#,
    );
    assert_eq!(e.issues().len(), 1);
    assert_eq!(e.issues()[0].code.as_deref(), Some("invalid_type"));
    assert_eq!(e.issues()[0].path, "items.0.word");
    assert_eq!(e.message(), "Invalid request body: items.0.word: Required");
    assert!(e.to_string().contains("items.0.word: Required"), "{e}");
}

#[test]
fn dict_401_body() {
    let e = api_error(401, r#"{"error":"Unauthorized"}"#);
    assert_eq!(e.kind(), &ApiErrorKind::Unauthorized);
    assert_eq!(e.message(), "Unauthorized");
}

#[test]
fn cloning_500_with_error_code() {
    for code in ["voice_clone_timeout", "voice_clone_error"] {
        let body = serde_json::json!({"error": "Voice cloning failed", "error_code": code});
        let e = api_error(500, &body.to_string());
        assert_eq!(e.code(), Some(code));
        assert_eq!(e.message(), "Voice cloning failed");
    }
}

#[test]
fn unauthorized_without_a_header() {
    let e = api_error(401, r#"{"message":"Unauthorized: No tokens provided"}"#);
    assert_eq!(e.kind(), &ApiErrorKind::Unauthorized);
    assert_eq!(e.message(), "Unauthorized: No tokens provided");
    assert_eq!(e.code(), None);
    assert!(e.is_auth());
}

#[test]
fn unauthorized_with_a_bad_key() {
    let e = api_error(401, r#"{"error":"unauthorized"}"#);
    assert_eq!(e.kind(), &ApiErrorKind::Unauthorized);
    assert_eq!(e.message(), "unauthorized");
    assert!(e.is_auth());
}

#[test]
fn unauthorized_tts_spec_shape() {
    let e = api_error(
        401,
        r#"{"error":"Unauthorized","message":"Bearer token is missing or invalid."}"#,
    );
    assert_eq!(e.code(), Some("Unauthorized"));
    assert_eq!(e.message(), "Bearer token is missing or invalid.");
}

#[test]
fn retired_route_410_names_the_recommended_endpoint() {
    let e = api(
        TtsRequest::new("a", "meher").from_http_response(json_response(
            410,
            r#"{
  "status": "error",
  "error_code": "MODEL_DEPRECATED",
  "message": "This model is retired. Please migrate to lightning-v3.1 via /waves/v1/lightning-v3.1/get_speech.",
  "recommended_endpoint": "/waves/v1/lightning-v3.1/get_speech"
}"#,
        )),
    );
    assert_eq!(
        e.kind(),
        &ApiErrorKind::ModelDeprecated {
            recommended_endpoint: Some("/waves/v1/lightning-v3.1/get_speech".into())
        }
    );
    assert_eq!(e.code(), Some("MODEL_DEPRECATED"));
    assert_eq!(
        e.recommended_endpoint(),
        Some("/waves/v1/lightning-v3.1/get_speech")
    );
    assert!(e.message().starts_with("This model is retired."));
    let shown = e.to_string();
    assert!(
        shown.starts_with("API error 410 (MODEL_DEPRECATED): This model is retired."),
        "{shown}"
    );
    assert!(
        shown.contains("[recommended endpoint: /waves/v1/lightning-v3.1/get_speech]"),
        "{shown}"
    );
    assert!(!e.is_retryable());
}

#[test]
fn a_410_without_a_body_is_still_deprecated() {
    let e = api_error(410, "");
    assert_eq!(
        e.kind(),
        &ApiErrorKind::ModelDeprecated {
            recommended_endpoint: None
        }
    );
    assert_eq!(e.recommended_endpoint(), None);
    assert_eq!(e.message(), "Gone");
}

// ---------------------------------------------------------------------------
// Bodies that are not JSON
// ---------------------------------------------------------------------------

#[test]
fn html_body_is_kept_as_the_message() {
    let html = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>";
    let e = api_error_with(502, &[("content-type", "text/html")], html.as_bytes());
    assert_eq!(e.kind(), &ApiErrorKind::Server);
    assert_eq!(e.code(), None);
    assert_eq!(e.message(), html);
    assert_eq!(e.raw_body(), html.as_bytes());
    assert!(e.is_retryable());
}

#[test]
fn empty_body_uses_the_reason_phrase() {
    for (status, reason) in [
        (400, "Bad Request"),
        (404, "Not Found"),
        (429, "Too Many Requests"),
        (504, "Gateway Timeout"),
    ] {
        let e = api_error(status, "");
        assert_eq!(e.message(), reason);
        assert!(e.raw_body().is_empty());
        assert!(!e.body_truncated());
    }
    assert_eq!(api_error(400, "  \n ").message(), "Bad Request");
    assert_eq!(api_error(599, "").message(), "no error message");
}

#[test]
fn non_utf8_body_is_shown_lossily() {
    let body = b"\xff\xfe bad \xc3\x28 bytes";
    let e = api_error_with(500, &[], body);
    assert!(e.message().contains("bad"), "{}", e.message());
    assert!(e.message().contains('\u{fffd}'));
    assert_eq!(e.raw_body(), body);
}

#[test]
fn one_megabyte_body_is_bounded() {
    let body = vec![b'x'; 1 << 20];
    let e = api_error_with(500, &[], &body);
    assert_eq!(e.raw_body().len(), MAX_ERROR_BODY);
    assert!(e.body_truncated());
    assert!(
        e.message().len() <= 200,
        "message {} bytes",
        e.message().len()
    );
    assert!(format!("{e:?}").len() < 2 * MAX_ERROR_BODY);
    // A body of exactly MAX_ERROR_BODY is kept whole.
    let exact = api_error_with(500, &[], &body[..MAX_ERROR_BODY]);
    assert!(!exact.body_truncated());
}

#[test]
fn one_megabyte_json_body_is_bounded_in_raw_body() {
    let body = serde_json::json!({"error": "y".repeat(1 << 20)}).to_string();
    let e = api_error(400, &body);
    assert_eq!(e.raw_body(), &body.as_bytes()[..MAX_ERROR_BODY]);
    assert!(e.body_truncated());
}

#[test]
fn multibyte_text_cut_at_200_bytes_does_not_panic() {
    let body = "é".repeat(300);
    let e = api_error(500, &body);
    assert!(e.message().starts_with("éé"));
}

#[test]
fn json_that_is_not_an_object_is_shown_raw() {
    for body in ["[]", "\"oops\"", "42", "null", "[{\"code\":\"custom\"}]"] {
        let e = api_error(400, body);
        assert_eq!(e.message(), body);
        assert!(e.issues().is_empty());
    }
}

#[test]
fn unknown_json_object_is_shown_raw() {
    let e = api_error(400, r#"{"detail":"something else"}"#);
    assert_eq!(e.message(), r#"{"detail":"something else"}"#);
    assert_eq!(e.code(), None);
}

// ---------------------------------------------------------------------------
// Request id and Retry-After
// ---------------------------------------------------------------------------

#[test]
fn request_id_comes_from_the_header_when_the_body_has_none() {
    let e = api_error_with(
        500,
        &[("x-request-id", "hdr-123")],
        br#"{"error":"InternalServerError","message":"An unexpected error occurred."}"#,
    );
    assert_eq!(e.request_id(), Some("hdr-123"));
    assert!(e.to_string().ends_with("(request id hdr-123)"), "{e}");
    let html = api_error_with(502, &[("X-Request-Id", "hdr-456")], b"<html></html>");
    assert_eq!(html.request_id(), Some("hdr-456"));
}

#[test]
fn request_id_in_the_body_wins_over_the_header() {
    let e = api_error_with(
        429,
        &[("x-request-id", "hdr-123")],
        format!(r#"{{"error":"Rate limit exceeded.","request_id":"{REQUEST_ID}"}}"#).as_bytes(),
    );
    assert_eq!(e.request_id(), Some(REQUEST_ID));
}

#[test]
fn retry_after_in_seconds() {
    let e = api_error_with(429, &[("retry-after", "7")], b"");
    assert_eq!(
        e.retry_after(),
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
    assert_eq!(
        e.retry_after().unwrap().delay_from(SystemTime::UNIX_EPOCH),
        Duration::from_secs(7)
    );
    assert_eq!(
        api_error_with(429, &[("retry-after", " 0 ")], b"").retry_after(),
        Some(RetryAfter::Delay(Duration::ZERO))
    );
}

#[test]
fn retry_after_as_an_http_date() {
    let e = api_error_with(
        503,
        &[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")],
        b"",
    );
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(e.retry_after(), Some(RetryAfter::At(at)));
    let now = at - Duration::from_secs(90);
    assert_eq!(
        e.retry_after().unwrap().delay_from(now),
        Duration::from_secs(90)
    );
    // A date in the past means no wait.
    assert_eq!(
        e.retry_after()
            .unwrap()
            .delay_from(at + Duration::from_secs(5)),
        Duration::ZERO
    );
}

#[test]
fn retry_after_garbage_is_ignored() {
    for value in ["soon", "-1", "1.5", "", "Wed, 99 Foo 2015"] {
        let e = api_error_with(429, &[("retry-after", value)], b"");
        assert_eq!(e.retry_after(), None, "{value:?}");
    }
    assert_eq!(api_error(429, "").retry_after(), None);
}

// ---------------------------------------------------------------------------
// Kinds and predicates per status
// ---------------------------------------------------------------------------

#[test]
fn kind_and_predicates_for_every_status() {
    // (status, kind, is_auth, is_rate_limited, is_retryable)
    let table = [
        (400, ApiErrorKind::InvalidRequest, false, false, false),
        (401, ApiErrorKind::Unauthorized, true, false, false),
        (403, ApiErrorKind::Forbidden, true, false, false),
        (404, ApiErrorKind::NotFound, false, false, false),
        (408, ApiErrorKind::Other, false, false, true),
        (
            410,
            ApiErrorKind::ModelDeprecated {
                recommended_endpoint: None,
            },
            false,
            false,
            false,
        ),
        (413, ApiErrorKind::PayloadTooLarge, false, false, false),
        (429, ApiErrorKind::RateLimited, false, true, true),
        (500, ApiErrorKind::Server, false, false, true),
        (502, ApiErrorKind::Server, false, false, true),
        (503, ApiErrorKind::Server, false, false, true),
        (504, ApiErrorKind::Server, false, false, true),
    ];
    for (status, kind, auth, limited, retryable) in table {
        let e = api_error(status, r#"{"error":"x"}"#);
        assert_eq!(e.kind(), &kind, "{status}");
        assert_eq!(e.is_auth(), auth, "{status} is_auth");
        assert_eq!(e.is_rate_limited(), limited, "{status} is_rate_limited");
        assert_eq!(e.is_retryable(), retryable, "{status} is_retryable");
        // `Error` forwards each predicate.
        let err = Error::from(e);
        assert_eq!(err.is_auth(), auth, "{status}");
        assert_eq!(err.is_rate_limited(), limited, "{status}");
        assert_eq!(err.is_retryable(), retryable, "{status}");
        assert!(!err.is_timeout());
        assert!(err.api().is_some() && err.validation().is_none());
    }
}

#[test]
fn check_status_passes_successes_and_refuses_the_rest() {
    for status in [200, 201, 204] {
        check_status(response(status, &[], b"")).unwrap();
    }
    for status in [301, 400, 500] {
        let err = check_status(response(status, &[], b"")).unwrap_err();
        assert_eq!(err.api().unwrap().status(), status);
    }
}

#[test]
fn every_endpoint_turns_an_error_status_into_an_api_error() {
    let resp = || json_response(401, r#"{"error":"unauthorized"}"#);
    assert!(
        TtsRequest::new("a", "m")
            .from_http_response(resp())
            .unwrap_err()
            .is_auth()
    );
    assert!(
        TranscribeRequest::from_bytes(Bytes::from_static(b"x"), SttLanguage::En)
            .from_http_response(resp())
            .unwrap_err()
            .is_auth()
    );
    assert!(
        LegacyTranscribeRequest::from_url("https://e.x/a")
            .from_http_response(resp())
            .unwrap_err()
            .is_auth()
    );
    assert!(Health.from_http_response(resp()).unwrap_err().is_auth());
}

// ---------------------------------------------------------------------------
// What the user is told
// ---------------------------------------------------------------------------

#[test]
fn display_of_401_says_how_to_set_the_key() {
    for body in [
        r#"{"message":"Unauthorized: No tokens provided"}"#,
        r#"{"error":"unauthorized"}"#,
    ] {
        let shown = api_error(401, body).to_string();
        assert!(shown.starts_with("API error 401: "), "{shown}");
        assert!(shown.contains("SMALLEST_API_KEY"), "{shown}");
        assert!(shown.contains("API Keys"), "{shown}");
    }
}

#[test]
fn display_of_403_says_the_key_lacks_access() {
    let shown = api_error(403, r#"{"error":"Forbidden"}"#).to_string();
    assert!(shown.contains("lacks access"), "{shown}");
    assert!(shown.contains("plan"), "{shown}");
}

#[test]
fn display_of_429_explains_tts_concurrency() {
    let shown = api_error_with(429, &[("retry-after", "2")], b"").to_string();
    assert!(shown.contains("concurrent"), "{shown}");
    assert!(shown.contains("TTS requests"), "{shown}");
    assert!(shown.contains("wait"), "{shown}");
}

#[test]
fn display_of_a_plain_400_has_no_hint() {
    assert_eq!(api_error(400, r#"{"error":"bad things"}"#).hint(), None);
    assert_eq!(
        api_error(400, r#"{"error":"bad things"}"#).to_string(),
        "API error 400: bad things"
    );
}
