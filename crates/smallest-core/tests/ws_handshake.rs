//! WebSocket upgrade requests (golden: method, URI, every header) and the check of the
//! server's answer (API.md §2.2, §2.3, §3.5, §4.2.1; RFC 6455 §4).

use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use smallest_core::stt::{SttLanguage, SttModel};
use smallest_core::stt_live::{SttEncoding, SttLiveConfig};
use smallest_core::tts::{Language, TtsModel};
use smallest_core::tts_live::TtsLiveConfig;
use smallest_core::ws::{self, Upgrade, accept_key, handshake_request, sec_websocket_key};
use smallest_core::{ApiErrorKind, ApiKey, Config, Error};

const CANARY_KEY: &str = "sk_canary_ws_5d1e9b7c02a4";
const USER_AGENT: &str = concat!("smallest-rs/", env!("CARGO_PKG_VERSION"));
/// 16 key bytes and their base64.
const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODw==";

fn config() -> Config {
    Config::new(ApiKey::new(CANARY_KEY).unwrap())
}

fn header_pairs<B>(request: &Request<B>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// The headers of every upgrade request, for `host`, sorted, plus `extra`.
fn upgrade_headers(host: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = [
        ("authorization", format!("Bearer {CANARY_KEY}").as_str()),
        ("connection", "Upgrade"),
        ("host", host),
        ("sec-websocket-key", KEY_B64),
        ("sec-websocket-version", "13"),
        ("upgrade", "websocket"),
        ("user-agent", USER_AGENT),
        ("x-source", "smallest-rs"),
    ]
    .iter()
    .chain(extra)
    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
    .collect();
    all.sort();
    all
}

fn assert_sensitive_auth(request: &Request<()>) {
    let value = &request.headers()["authorization"];
    assert!(
        value.is_sensitive(),
        "Authorization must be marked sensitive"
    );
    assert_eq!(request.headers().get_all("authorization").iter().count(), 1);
    let shown = format!("{request:?}");
    assert!(!shown.contains(CANARY_KEY), "{shown}");
}

#[test]
fn key_is_base64_of_the_16_input_bytes() {
    assert_eq!(sec_websocket_key(KEY), KEY_B64);
    // RFC 6455 §1.3: the nonce "the sample nonce".
    assert_eq!(
        sec_websocket_key(*b"the sample nonce"),
        "dGhlIHNhbXBsZSBub25jZQ=="
    );
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// The upgrade expected for `KEY`.
fn upgrade() -> Upgrade {
    handshake_request(&config(), "/waves/v1/tts/live", KEY, false)
        .unwrap()
        .1
}

#[test]
fn generic_handshake_golden() {
    let (request, upgrade) =
        handshake_request(&config(), "/waves/v1/tts/live", KEY, false).unwrap();
    // The key is given once: the upgrade expects the accept value of the key sent.
    assert_eq!(upgrade.expected_accept(), accept_key(KEY_B64));
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri(), "wss://api.smallest.ai/waves/v1/tts/live");
    assert_eq!(
        header_pairs(&request),
        upgrade_headers("api.smallest.ai", &[])
    );
    assert_sensitive_auth(&request);
}

#[test]
fn tts_handshake_golden_default_and_with_timeout_and_expiry() {
    let live = TtsLiveConfig::new("magnus");
    let (request, upgrade) = live.handshake(&config(), KEY).unwrap();
    assert_eq!(upgrade, self::upgrade());
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri(), "wss://api.smallest.ai/waves/v1/tts/live");
    assert_eq!(
        header_pairs(&request),
        upgrade_headers("api.smallest.ai", &[])
    );
    assert_sensitive_auth(&request);

    let live = TtsLiveConfig::new("magnus")
        .timeout_secs(5)
        .expire_content(true);
    let (request, _) = live.handshake(&config(), KEY).unwrap();
    assert_eq!(
        request.uri(),
        "wss://api.smallest.ai/waves/v1/tts/live?timeout=5"
    );
    assert_eq!(
        header_pairs(&request),
        upgrade_headers("api.smallest.ai", &[("x-expire-content", "true")])
    );
    assert_sensitive_auth(&request);
}

#[test]
fn stt_handshake_golden_with_every_parameter() {
    let live = SttLiveConfig::new(SttLanguage::En)
        .model(SttModel::Pulse)
        .sample_rate(8000)
        .encoding(SttEncoding::Mulaw)
        .word_timestamps(true)
        .sentence_timestamps(true)
        .diarize(true)
        .vad_events(true)
        .vad(false)
        .endpointing(false)
        .eou_timeout_ms(1200)
        .format(true)
        .punctuate(false)
        .capitalize(false)
        .itn_normalize(true)
        .finalize_on_words(false)
        .max_words(12)
        .redact_pii(true)
        .redact_pci(false)
        .full_transcript(true)
        .keyword("Smallest AI", Some(2.0))
        .keyword("Waves", None)
        .keyword("Pulse", Some(1.5))
        .external_session_id("call-42.a_b")
        .expire_content(true);
    let (request, upgrade) = live.handshake(&config(), KEY).unwrap();
    assert_eq!(upgrade, self::upgrade());
    assert_eq!(request.method(), Method::GET);
    assert_eq!(
        request.uri().to_string(),
        "wss://api.smallest.ai/waves/v1/stt/live?model=pulse&language=en&sample_rate=8000\
         &encoding=mulaw&word_timestamps=true&sentence_timestamps=true&diarize=true\
         &vad_events=true&vad=false&endpointing=false&eou_timeout_ms=1200&format=true\
         &punctuate=false&capitalize=false&itn_normalize=true&finalize_on_words=false\
         &max_words=12&redact_pii=true&redact_pci=false&full_transcript=true\
         &keywords=Smallest%20AI%3A2%2CWaves%2CPulse%3A1.5&external_session_id=call-42.a_b"
    );
    assert_eq!(
        header_pairs(&request),
        upgrade_headers("api.smallest.ai", &[("x-expire-content", "true")])
    );
    assert_sensitive_auth(&request);
}

#[test]
fn stt_handshake_minimal_and_legacy_and_regional_hosts() {
    let (request, _) = SttLiveConfig::new(SttLanguage::Hi)
        .handshake(&config(), KEY)
        .unwrap();
    assert_eq!(
        request.uri(),
        "wss://api.smallest.ai/waves/v1/stt/live?model=pulse&language=hi&sample_rate=16000&encoding=linear16"
    );
    assert_eq!(
        header_pairs(&request),
        upgrade_headers("api.smallest.ai", &[])
    );

    let us = config()
        .with_base_url("https://api.us.smallest.ai")
        .unwrap();
    let (request, _) = SttLiveConfig::legacy(SttLanguage::Ja)
        .handshake(&us, KEY)
        .unwrap();
    assert_eq!(
        request.uri(),
        "wss://api.us.smallest.ai/waves/v1/pulse/get_text?language=ja&sample_rate=16000&encoding=linear16"
    );
    assert_eq!(request.headers()["host"], "api.us.smallest.ai");
}

#[test]
fn loopback_base_url_uses_ws_and_keeps_port_and_prefix() {
    let emulator = config()
        .with_base_url("http://127.0.0.1:8080/proxy/")
        .unwrap();
    let (request, _) = TtsLiveConfig::new("magnus")
        .handshake(&emulator, KEY)
        .unwrap();
    assert_eq!(request.uri(), "ws://127.0.0.1:8080/proxy/waves/v1/tts/live");
    assert_eq!(
        header_pairs(&request),
        upgrade_headers("127.0.0.1:8080", &[])
    );
}

#[test]
fn handshake_validates_before_building() {
    let err = TtsLiveConfig::new("magnus")
        .model(TtsModel::LightningV31)
        .language(Language::Ja)
        .handshake(&config(), KEY)
        .unwrap_err();
    assert_eq!(err.validation().unwrap().field(), "language");

    let err = SttLiveConfig::new(SttLanguage::En)
        .model(SttModel::PulsePro)
        .handshake(&config(), KEY)
        .unwrap_err();
    let v = err.validation().unwrap();
    assert_eq!(v.field(), "model");
    assert!(
        v.allowed().contains("POST /waves/v1/stt/?model=pulse-pro"),
        "{v}"
    );
}

fn upgrade_response(accept: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("upgrade", HeaderValue::from_static("websocket"));
    headers.insert("connection", HeaderValue::from_static("Upgrade"));
    headers.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(accept).unwrap(),
    );
    headers
}

#[test]
fn upgrade_check_accepts_the_right_accept_value() {
    let (_, sample) =
        handshake_request(&config(), "/waves/v1/tts/live", *b"the sample nonce", false).unwrap();
    let headers = upgrade_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    sample
        .check(StatusCode::SWITCHING_PROTOCOLS, &headers, b"")
        .unwrap();

    // Header values are case-insensitive tokens; Connection may list several.
    let mut headers = upgrade_response(&accept_key(KEY_B64));
    headers.insert("upgrade", HeaderValue::from_static("WebSocket"));
    headers.insert(
        "connection",
        HeaderValue::from_static("keep-alive, upgrade"),
    );
    upgrade()
        .check(StatusCode::SWITCHING_PROTOCOLS, &headers, b"")
        .unwrap();
}

#[test]
fn upgrade_check_rejects_a_wrong_or_missing_accept() {
    let headers = upgrade_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let err = upgrade()
        .check(StatusCode::SWITCHING_PROTOCOLS, &headers, b"")
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("Sec-WebSocket-Accept"), "{err}");
    assert!(err.to_string().contains(&accept_key(KEY_B64)), "{err}");

    let mut headers = upgrade_response("x");
    headers.remove("sec-websocket-accept");
    let err = upgrade()
        .check(StatusCode::SWITCHING_PROTOCOLS, &headers, b"")
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");

    let mut headers = upgrade_response(&accept_key(KEY_B64));
    headers.remove("upgrade");
    let err = upgrade()
        .check(StatusCode::SWITCHING_PROTOCOLS, &headers, b"")
        .unwrap_err();
    assert!(err.to_string().contains("Upgrade"), "{err}");

    let mut headers = upgrade_response(&accept_key(KEY_B64));
    headers.insert("connection", HeaderValue::from_static("keep-alive"));
    let err = upgrade()
        .check(StatusCode::SWITCHING_PROTOCOLS, &headers, b"")
        .unwrap_err();
    assert!(err.to_string().contains("Connection"), "{err}");
}

#[test]
fn upgrade_check_turns_a_pre_upgrade_400_into_an_api_error() {
    let body = br#"{"error":"Pulse Pro has no streaming transport. Use POST /waves/v1/stt/?model=pulse-pro instead.","request_id":"87dd36c1-4267-472d-96ee-4113e0a770a6"}"#;
    let err = upgrade()
        .check(StatusCode::BAD_REQUEST, &HeaderMap::new(), body)
        .unwrap_err();
    let api = err.api().expect("an API error");
    assert_eq!(api.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api.kind(), &ApiErrorKind::InvalidRequest);
    assert_eq!(
        api.message(),
        "Pulse Pro has no streaming transport. Use POST /waves/v1/stt/?model=pulse-pro instead."
    );
    assert_eq!(
        api.request_id(),
        Some("87dd36c1-4267-472d-96ee-4113e0a770a6")
    );
    assert_eq!(api.raw_body(), body);

    let body =
        br#"{"error":"Missing required query param: model. Supported values: pulse | pulse-pro."}"#;
    let err = upgrade()
        .check(StatusCode::BAD_REQUEST, &HeaderMap::new(), body)
        .unwrap_err();
    assert!(
        err.api()
            .unwrap()
            .message()
            .starts_with("Missing required query param")
    );
}

#[test]
fn upgrade_check_turns_a_401_into_an_auth_error() {
    for body in [
        &br#"{"error":"unauthorized"}"#[..],
        br#"{"message":"Unauthorized: No tokens provided"}"#,
        b"",
    ] {
        let err = upgrade()
            .check(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body)
            .unwrap_err();
        assert!(err.is_auth(), "{err:?}");
        let api = err.api().unwrap();
        assert_eq!(api.kind(), &ApiErrorKind::Unauthorized);
        assert!(!api.message().is_empty());
        assert!(!err.to_string().contains(CANARY_KEY));
    }
}

#[test]
fn upgrade_check_treats_any_other_status_as_an_api_error() {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("3"));
    let err = upgrade()
        .check(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            br#"{"error":"Rate limit exceeded. Please retry after a short backoff."}"#,
        )
        .unwrap_err();
    assert!(err.is_rate_limited());
    // A 200 is not an upgrade either (e.g. a proxy that answered the SSE route).
    let err = upgrade()
        .check(StatusCode::OK, &HeaderMap::new(), b"data: {}\n\n")
        .unwrap_err();
    assert_eq!(err.api().unwrap().status(), StatusCode::OK);
    // The constants used by the sessions.
    assert_eq!((ws::CLOSE_NORMAL, ws::CLOSE_POLICY_VIOLATION), (1000, 1008));
}
