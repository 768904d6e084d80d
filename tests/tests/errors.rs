//! Every error status on both transports, over HTTP and TLS: 400, 401, 403, 404, 410,
//! 413 and 429, each as a typed `ApiError` whose message says what to do.

use std::time::Duration;

use serde_json::json;
use smallest_core::{
    ApiErrorKind, Error, LegacyTranscribeRequest, SttLanguage, TranscribeRequest, TtsModel,
    TtsRequest,
};
use smallest_tests::{
    FORBIDDEN_KEY, KEY, RawCall, api_error, clients, emulator, on_every_transport,
};

#[test]
fn an_unknown_voice_is_a_400_naming_the_field() {
    on_every_transport(emulator(), |s| {
        let e = api_error(
            s,
            s.api.synthesize(&TtsRequest::new("Hi.", "no_such_voice")),
        );
        assert_eq!(e.status(), 400, "{s}");
        assert_eq!(e.kind(), &ApiErrorKind::InvalidRequest, "{s}");
        assert_eq!(e.issues()[0].path, "voice_id", "{s}");
        assert!(e.message().contains("Invalid Voice ID"), "{s}: {e}");
        assert!(!e.is_retryable(), "{s}");
    });
}

#[test]
fn a_model_the_server_does_not_know_is_a_zod_enum_error() {
    on_every_transport(emulator(), |s| {
        let request =
            TtsRequest::new("Hi.", "magnus").model(TtsModel::Other("lightning_v9".into()));
        let e = api_error(s, s.api.synthesize(&request));
        assert_eq!(e.status(), 400, "{s}");
        let issue = &e.issues()[0];
        assert_eq!(
            (issue.code.as_deref(), issue.path.as_str()),
            (Some("invalid_enum_value"), "model"),
            "{s}"
        );
        assert!(
            issue.options.contains(&"lightning_v3.1_pro".to_owned()),
            "{s}: {issue:?}"
        );
    });
}

#[test]
fn a_bad_key_is_a_401_that_says_to_set_the_key() {
    let emulator = emulator().spawn().unwrap();
    for api in clients(&emulator, "sk_not_a_valid_key") {
        let e = match api.synthesize(&TtsRequest::new("Hi.", "magnus")) {
            Err(Error::Api(e)) => e,
            other => panic!("{}: {other:?}", api.name()),
        };
        assert_eq!(e.status(), 401, "{}", api.name());
        assert!(e.is_auth());
        assert!(e.to_string().contains("SMALLEST_API_KEY"), "{e}");
        let stt = api.transcribe(&TranscribeRequest::from_url(
            "https://example.com/a.wav",
            SttLanguage::En,
        ));
        assert!(stt.unwrap_err().is_auth(), "{}", api.name());
    }
}

#[test]
fn a_forbidden_key_is_a_403_that_says_it_lacks_access() {
    let emulator = emulator().spawn().unwrap();
    for api in clients(&emulator, FORBIDDEN_KEY) {
        let err = api
            .synthesize(&TtsRequest::new("Hi.", "magnus"))
            .unwrap_err();
        let e = err
            .api()
            .unwrap_or_else(|| panic!("{}: {err:?}", api.name()));
        assert_eq!(e.status(), 403, "{}", api.name());
        assert!(e.is_auth() && !e.is_retryable());
        assert!(e.to_string().contains("lacks access"), "{e}");
    }
}

#[test]
fn removed_routes_are_404_and_retired_models_are_410_with_the_new_endpoint() {
    on_every_transport(emulator(), |s| {
        let body = json!({"text": "Hi.", "voice_id": "magnus"});
        let e = api_error(
            s,
            s.api.call(&RawCall::post(
                "/waves/v1/lightning-v3.1/get_speech",
                body.clone(),
            )),
        );
        assert_eq!(
            (e.status().as_u16(), e.kind()),
            (404, &ApiErrorKind::NotFound),
            "{s}"
        );

        let e = api_error(
            s,
            s.api
                .call(&RawCall::post("/waves/v1/lightning-large/get_speech", body)),
        );
        assert_eq!(e.status(), 410, "{s}");
        assert_eq!(e.code(), Some("MODEL_DEPRECATED"), "{s}");
        assert_eq!(
            e.recommended_endpoint(),
            Some("/waves/v1/lightning-v3.1/get_speech"),
            "{s}"
        );
        assert!(e.to_string().contains("recommended endpoint"), "{s}: {e}");
    });
}

#[test]
fn an_upload_over_the_limit_is_413_on_the_unified_path_and_400_on_the_legacy_one() {
    on_every_transport(emulator().max_upload_bytes(4096), |s| {
        let big = vec![0u8; 8192];
        let e = api_error(
            s,
            s.api
                .transcribe(&TranscribeRequest::from_bytes(big.clone(), SttLanguage::En)),
        );
        assert_eq!(
            (e.status().as_u16(), e.kind()),
            (413, &ApiErrorKind::PayloadTooLarge),
            "{s}"
        );
        assert!(e.message().contains("exceeds maximum limit"), "{s}: {e}");
        assert!(e.request_id().is_some(), "{s}");

        let e = api_error(
            s,
            s.api
                .transcribe_legacy(&LegacyTranscribeRequest::from_bytes(big)),
        );
        assert_eq!(e.status(), 400, "{s}");
        assert!(e.message().contains("Audio data too large"), "{s}: {e}");
    });
}

#[test]
fn a_second_concurrent_synthesis_from_another_client_is_a_429_that_explains_the_rule() {
    // Two clients with their own TTS limiters, as two processes of one account would be:
    // the server's one-request rule answers the second with 429.
    for tls in [false, true] {
        let emulator = emulator()
            .tts_latency(Duration::from_millis(600))
            .tls(tls)
            .spawn()
            .unwrap();
        let (first_clients, second_clients) = (clients(&emulator, KEY), clients(&emulator, KEY));
        for (a, b) in first_clients.iter().zip(&second_clients) {
            let request = TtsRequest::new("One at a time.", "magnus");
            let [first, second] = std::thread::scope(|scope| {
                let first = scope.spawn(|| a.synthesize(&request));
                std::thread::sleep(Duration::from_millis(150));
                let second = scope.spawn(|| b.synthesize(&request));
                [first.join().unwrap(), second.join().unwrap()]
            });
            assert!(first.is_ok(), "{}: {first:?}", a.name());
            let e = match second {
                Err(Error::Api(e)) => e,
                other => panic!("{}: expected 429, got {other:?}", b.name()),
            };
            assert!(e.is_rate_limited() && e.is_retryable(), "{}", b.name());
            assert!(e.to_string().contains("concurrent"), "{}: {e}", b.name());
            // The slot is released: the next request succeeds.
            assert!(b.synthesize(&request).is_ok(), "{}", b.name());
        }
    }
}

#[test]
fn local_validation_refuses_before_sending() {
    on_every_transport(emulator(), |s| {
        let before = s.emulator.requests().len();
        let err = s
            .api
            .synthesize(&TtsRequest::new("Hi.", "magnus").sample_rate(22050))
            .unwrap_err();
        let v = err.validation().unwrap_or_else(|| panic!("{s}: {err:?}"));
        assert_eq!(v.field(), "sample_rate");
        assert!(v.allowed().contains("24000"));
        assert_eq!(
            s.emulator.requests().len(),
            before,
            "{s}: an invalid request was sent"
        );
    });
}

#[test]
fn every_request_identifies_the_sdk_and_health_carries_no_key() {
    on_every_transport(emulator(), |s| {
        s.api.synthesize(&TtsRequest::new("Hi.", "magnus")).unwrap();
        s.api.health().unwrap();
        let seen = s.emulator.requests();
        let header = |r: &smallest_emulator::RecordedRequest, name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let tts = seen
            .iter()
            .rev()
            .find(|r| r.path == "/waves/v1/tts")
            .unwrap();
        assert!(
            header(tts, "user-agent")
                .unwrap()
                .starts_with("smallest-rs/"),
            "{s}"
        );
        assert_eq!(
            header(tts, "x-source").as_deref(),
            Some("smallest-rs"),
            "{s}"
        );
        assert!(header(tts, "authorization").is_some(), "{s}");
        let health = seen
            .iter()
            .rev()
            .find(|r| r.path == "/waves/v1/health")
            .unwrap();
        assert_eq!(header(health, "authorization"), None, "{s}");
    });
}
