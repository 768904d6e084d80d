//! Golden requests: method, URI, every header and the exact body bytes of every
//! request the core builds (API.md §2–§4, §8.6, seeds/authentication.txt).

mod common;

use bytes::Bytes;
use common::{
    CANARY_KEY, USER_AGENT, body_json, body_text, config, header_pairs, loopback_config, prepared,
};
use http::{Method, Request};
use serde_json::json;
use smallest_core::stt::WebhookMethod;
use smallest_core::tts::{OutputFormat, SAMPLE_RATES, TtsModel, TtsRequest};
use smallest_core::{
    Endpoint, Health, Language, LegacyTranscribeRequest, SttLanguage, SttModel, TranscribeRequest,
};

/// The three headers `prepare` adds to an authenticated request, as sorted pairs.
fn auth_headers() -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {CANARY_KEY}")),
        ("user-agent".into(), USER_AGENT.into()),
        ("x-source".into(), "smallest-rs".into()),
    ]
}

/// Sorted expected header pairs: the endpoint's own plus `prepare`'s.
fn expected_headers(own: &[(&str, &str)], authenticated: bool) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = own
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    if authenticated {
        all.extend(auth_headers());
    } else {
        all.push(("user-agent".into(), USER_AGENT.into()));
        all.push(("x-source".into(), "smallest-rs".into()));
    }
    all.sort();
    all
}

fn assert_authorization_is_sensitive<B>(request: &Request<B>) {
    let value = &request.headers()["authorization"];
    assert!(
        value.is_sensitive(),
        "Authorization must be marked sensitive"
    );
    assert_eq!(value.as_bytes(), format!("Bearer {CANARY_KEY}").as_bytes());
    assert_eq!(request.headers().get_all("authorization").iter().count(), 1);
}

// ---------------------------------------------------------------------------
// TTS: POST /waves/v1/tts
// ---------------------------------------------------------------------------

/// The TTS headers without x-expire-content.
const TTS_HEADERS: &[(&str, &str)] = &[
    ("accept", "audio/wav"),
    ("content-type", "application/json"),
];

fn assert_tts_golden(request: &TtsRequest, body: &str) {
    let http = prepared(request);
    assert_eq!(http.method(), Method::POST);
    assert_eq!(http.uri(), "https://api.smallest.ai/waves/v1/tts");
    let mut own = TTS_HEADERS.to_vec();
    if request.expire_content {
        own.push(("x-expire-content", "true"));
    }
    assert_eq!(header_pairs(&http), expected_headers(&own, true));
    assert_authorization_is_sensitive(&http);
    assert_eq!(body_text(&http), body);
    // The exact string is also valid JSON with the same content.
    let reparsed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body_json(&http), reparsed);
}

#[test]
fn tts_seed_call_from_the_authentication_page() {
    let request = TtsRequest::new("Hello from Smallest AI.", "meher")
        .model(TtsModel::LightningV31Pro)
        .sample_rate(24000)
        .output_format(OutputFormat::Wav);
    assert_tts_golden(
        &request,
        r#"{"text":"Hello from Smallest AI.","voice_id":"meher","model":"lightning_v3.1_pro","sample_rate":24000,"output_format":"wav"}"#,
    );
    // Byte for byte the seed's `-d` payload once its cosmetic spaces are dropped.
    let seed = r#"{"text": "Hello from Smallest AI.", "voice_id": "meher", "model": "lightning_v3.1_pro", "sample_rate": 24000, "output_format": "wav"}"#;
    let http = prepared(&request);
    assert_eq!(
        body_json(&http),
        serde_json::from_str::<serde_json::Value>(seed).unwrap()
    );
}

#[test]
fn tts_spec_example_standard_keeps_its_values() {
    // API.md §12.1, in the SDK's field order (§3.1).
    let request = TtsRequest::new("Hello from Waves TTS.", "jordan")
        .model(TtsModel::LightningV31)
        .language(Language::En)
        .output_format(OutputFormat::Mp3)
        .sample_rate(44100)
        .speed(1.0);
    assert_tts_golden(
        &request,
        r#"{"text":"Hello from Waves TTS.","voice_id":"jordan","model":"lightning_v3.1","sample_rate":44100,"speed":1.0,"language":"en","output_format":"mp3"}"#,
    );
    let spec = json!({
        "text": "Hello from Waves TTS.",
        "voice_id": "jordan",
        "model": "lightning_v3.1",
        "language": "en",
        "output_format": "mp3",
        "sample_rate": 44100,
        "speed": 1.0
    });
    assert_eq!(body_json(&prepared(&request)), spec);
}

#[test]
fn tts_minimal_request_states_format_and_rate_explicitly() {
    assert_tts_golden(
        &TtsRequest::new("Hi", "magnus"),
        r#"{"text":"Hi","voice_id":"magnus","sample_rate":44100,"output_format":"pcm"}"#,
    );
}

#[test]
fn tts_every_option_in_spec_order() {
    let request = TtsRequest::new("Pay ₹100 × 2", "voice_dLP5T67Qw7")
        .model(TtsModel::LightningV31Pro)
        .sample_rate(8000)
        .speed(1.25)
        .language(Language::Hi)
        .number_pronunciation_language(Language::Mr)
        .math_notation(true)
        .output_format(OutputFormat::Ulaw)
        .pronunciation_dict("64f1234567890abcdef12345")
        .pronunciation_dict("64f1234567890abcdef67890")
        .session_id("my-session-123")
        .request_id("my.request_456")
        .expire_content(true);
    assert_tts_golden(
        &request,
        concat!(
            r#"{"text":"Pay ₹100 × 2","voice_id":"voice_dLP5T67Qw7","model":"lightning_v3.1_pro","#,
            r#""sample_rate":8000,"speed":1.25,"language":"hi","number_pronunciation_language":"mr","#,
            r#""math_notation":true,"output_format":"ulaw","#,
            r#""pronunciation_dicts":["64f1234567890abcdef12345","64f1234567890abcdef67890"],"#,
            r#""session_id":"my-session-123","request_id":"my.request_456"}"#
        ),
    );
}

#[test]
fn tts_each_output_format_is_sent_by_its_wire_name() {
    for (format, wire) in [
        (OutputFormat::Wav, "wav"),
        (OutputFormat::Ulaw, "ulaw"),
        (OutputFormat::Alaw, "alaw"),
        (OutputFormat::Pcm, "pcm"),
        (OutputFormat::Mp3, "mp3"),
    ] {
        assert_tts_golden(
            &TtsRequest::new("a", "meher").output_format(format),
            &format!(
                r#"{{"text":"a","voice_id":"meher","sample_rate":44100,"output_format":"{wire}"}}"#
            ),
        );
    }
}

#[test]
fn tts_each_sample_rate_is_sent_as_an_integer() {
    assert_eq!(SAMPLE_RATES, [8000, 16000, 24000, 44100]);
    for hz in SAMPLE_RATES {
        assert_tts_golden(
            &TtsRequest::new("a", "meher").sample_rate(hz),
            &format!(
                r#"{{"text":"a","voice_id":"meher","sample_rate":{hz},"output_format":"pcm"}}"#
            ),
        );
    }
}

#[test]
fn tts_speed_bounds_and_fractions_are_sent_as_json_numbers() {
    for (speed, wire) in [(0.5, "0.5"), (1.0, "1.0"), (1.1, "1.1"), (2.0, "2.0")] {
        assert_tts_golden(
            &TtsRequest::new("a", "meher").speed(speed),
            &format!(
                r#"{{"text":"a","voice_id":"meher","sample_rate":44100,"speed":{wire},"output_format":"pcm"}}"#
            ),
        );
    }
}

#[test]
fn tts_each_model_is_sent_with_underscores() {
    for (model, wire) in [
        (TtsModel::LightningV31, "lightning_v3.1"),
        (TtsModel::LightningV31Pro, "lightning_v3.1_pro"),
        (TtsModel::Other("lightning_v4".into()), "lightning_v4"),
    ] {
        assert_tts_golden(
            &TtsRequest::new("a", "meher").model(model),
            &format!(
                r#"{{"text":"a","voice_id":"meher","model":"{wire}","sample_rate":44100,"output_format":"pcm"}}"#
            ),
        );
    }
}

#[test]
fn tts_languages_and_number_language_are_sent_verbatim() {
    assert_tts_golden(
        &TtsRequest::new("a", "meher").language(Language::Auto),
        r#"{"text":"a","voice_id":"meher","sample_rate":44100,"language":"auto","output_format":"pcm"}"#,
    );
    assert_tts_golden(
        &TtsRequest::new("a", "meher").number_pronunciation_language(Language::Ta),
        r#"{"text":"a","voice_id":"meher","sample_rate":44100,"number_pronunciation_language":"ta","output_format":"pcm"}"#,
    );
    assert_tts_golden(
        &TtsRequest::new("a", "meher")
            .model(TtsModel::Other("lightning_v4".into()))
            .language(Language::Other("he".into())),
        r#"{"text":"a","voice_id":"meher","model":"lightning_v4","sample_rate":44100,"language":"he","output_format":"pcm"}"#,
    );
}

#[test]
fn tts_math_notation_false_is_sent_when_set() {
    assert_tts_golden(
        &TtsRequest::new("a", "meher").math_notation(false),
        r#"{"text":"a","voice_id":"meher","sample_rate":44100,"math_notation":false,"output_format":"pcm"}"#,
    );
}

#[test]
fn tts_correlation_ids_are_sent_alone() {
    assert_tts_golden(
        &TtsRequest::new("a", "meher").session_id("s.1"),
        r#"{"text":"a","voice_id":"meher","sample_rate":44100,"output_format":"pcm","session_id":"s.1"}"#,
    );
    assert_tts_golden(
        &TtsRequest::new("a", "meher").request_id("r-1"),
        r#"{"text":"a","voice_id":"meher","sample_rate":44100,"output_format":"pcm","request_id":"r-1"}"#,
    );
}

#[test]
fn tts_text_is_json_escaped_and_unicode_kept() {
    assert_tts_golden(
        &TtsRequest::new("Say \"hi\"\\ — नमस्ते\n\t</script>", "meher"),
        r#"{"text":"Say \"hi\"\\ — नमस्ते\n\t</script>","voice_id":"meher","sample_rate":44100,"output_format":"pcm"}"#,
    );
}

#[test]
fn tts_expire_content_adds_exactly_one_header() {
    let on = prepared(&TtsRequest::new("a", "meher").expire_content(true));
    assert_eq!(on.headers()["x-expire-content"], "true");
    assert_eq!(on.headers().get_all("x-expire-content").iter().count(), 1);
    let off = prepared(&TtsRequest::new("a", "meher").expire_content(false));
    assert!(off.headers().get("x-expire-content").is_none());
}

#[test]
fn tts_unprepared_request_has_no_identity_headers() {
    let raw = TtsRequest::new("a", "meher")
        .to_http_request(&config())
        .unwrap();
    assert_eq!(
        header_pairs(&raw),
        vec![
            ("accept".to_owned(), "audio/wav".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ]
    );
}

#[test]
fn tts_base_url_variants() {
    let request = TtsRequest::new("a", "meher");
    let uri = |config| {
        smallest_core::prepare(&request, &config)
            .unwrap()
            .uri()
            .to_string()
    };
    assert_eq!(uri(config()), "https://api.smallest.ai/waves/v1/tts");
    assert_eq!(
        uri(loopback_config()),
        "http://127.0.0.1:8080/proxy/waves/v1/tts"
    );
    assert_eq!(
        uri(config()
            .with_base_url("https://api.us.smallest.ai")
            .unwrap()),
        "https://api.us.smallest.ai/waves/v1/tts"
    );
    assert_eq!(
        uri(config().with_base_url("http://localhost:9000").unwrap()),
        "http://localhost:9000/waves/v1/tts"
    );
    assert_eq!(
        uri(config().with_base_url("http://[::1]:9000/a/b/").unwrap()),
        "http://[::1]:9000/a/b/waves/v1/tts"
    );
    // The loopback request carries the same headers and body as the production one.
    let local = smallest_core::prepare(&request, &loopback_config()).unwrap();
    let remote = prepared(&request);
    assert_eq!(header_pairs(&local), header_pairs(&remote));
    assert_eq!(local.body(), remote.body());
}

// ---------------------------------------------------------------------------
// STT: POST /waves/v1/stt/?model=…&language=…
// ---------------------------------------------------------------------------

fn assert_stt_golden(
    request: &TranscribeRequest,
    uri: &str,
    own_headers: &[(&str, &str)],
    body: &[u8],
) {
    let http = prepared(request);
    assert_eq!(http.method(), Method::POST);
    assert_eq!(http.uri(), uri);
    assert_eq!(header_pairs(&http), expected_headers(own_headers, true));
    assert_authorization_is_sensitive(&http);
    assert_eq!(http.body().as_ref(), body);
}

const OCTET: &[(&str, &str)] = &[("content-type", "application/octet-stream")];
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const AUDIO: &[u8] = b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0";

#[test]
fn stt_bytes_default_query_is_model_then_language() {
    assert_stt_golden(
        &TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En),
        "https://api.smallest.ai/waves/v1/stt/?model=pulse&language=en",
        OCTET,
        AUDIO,
    );
}

#[test]
fn stt_bytes_with_an_audio_content_type() {
    assert_stt_golden(
        &TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::Hi)
            .content_type("audio/wav"),
        "https://api.smallest.ai/waves/v1/stt/?model=pulse&language=hi",
        &[("content-type", "audio/wav")],
        AUDIO,
    );
}

#[test]
fn stt_url_is_a_json_body() {
    assert_stt_golden(
        &TranscribeRequest::from_url("https://example.com/calls/1.wav?sig=a%2Fb", SttLanguage::En),
        "https://api.smallest.ai/waves/v1/stt/?model=pulse&language=en",
        JSON,
        br#"{"url":"https://example.com/calls/1.wav?sig=a%2Fb"}"#,
    );
}

#[test]
fn stt_pulse_pro_upload() {
    assert_stt_golden(
        &TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En)
            .model(SttModel::PulsePro)
            .word_timestamps(true),
        "https://api.smallest.ai/waves/v1/stt/?model=pulse-pro&language=en&word_timestamps=true",
        OCTET,
        AUDIO,
    );
}

#[test]
fn stt_each_flag_is_the_string_true_and_absent_when_off() {
    type Set = fn(TranscribeRequest) -> TranscribeRequest;
    let cases: [(Set, &str); 6] = [
        (|r| r.word_timestamps(true), "word_timestamps=true"),
        (|r| r.diarize(true), "diarize=true"),
        (|r| r.redact_pii(true), "redact_pii=true"),
        (|r| r.redact_pci(true), "redact_pci=true"),
        (|r| r.emotion_detection(true), "emotion_detection=true"),
        (|r| r.gender_detection(true), "gender_detection=true"),
    ];
    for (set, param) in cases {
        let base = TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En);
        assert_stt_golden(
            &set(base),
            &format!("https://api.smallest.ai/waves/v1/stt/?model=pulse&language=en&{param}"),
            OCTET,
            AUDIO,
        );
    }
    let off = TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En)
        .word_timestamps(false)
        .diarize(false)
        .redact_pii(false)
        .redact_pci(false)
        .emotion_detection(false)
        .gender_detection(false);
    assert_eq!(off.query(), "model=pulse&language=en");
}

#[test]
fn stt_webhook_parameters_are_percent_encoded() {
    assert_stt_golden(
        &TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En)
            .model(SttModel::PulsePro)
            .webhook(
                "https://hooks.example.com/stt?a=1&b=two%20words",
                WebhookMethod::Get,
            )
            .webhook_extra("case_id:42,region:us-east"),
        concat!(
            "https://api.smallest.ai/waves/v1/stt/?model=pulse-pro&language=en",
            "&webhook_url=https%3A%2F%2Fhooks.example.com%2Fstt%3Fa%3D1%26b%3Dtwo%2520words",
            "&webhook_method=GET&webhook_extra=case_id%3A42%2Cregion%3Aus-east"
        ),
        OCTET,
        AUDIO,
    );
    let post = TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En)
        .model(SttModel::PulsePro)
        .webhook("https://h.example/x", WebhookMethod::Post);
    assert_eq!(
        post.query(),
        "model=pulse-pro&language=en&webhook_url=https%3A%2F%2Fh.example%2Fx&webhook_method=POST"
    );
}

#[test]
fn stt_every_option_in_spec_order() {
    assert_stt_golden(
        &TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En)
            .model(SttModel::PulsePro)
            .content_type("audio/mpeg")
            .word_timestamps(true)
            .diarize(true)
            .webhook("https://h.example/cb", WebhookMethod::Post)
            .webhook_extra("k:v")
            .redact_pii(true)
            .redact_pci(true)
            .emotion_detection(true)
            .gender_detection(true)
            .expire_content(true),
        concat!(
            "https://api.smallest.ai/waves/v1/stt/?model=pulse-pro&language=en",
            "&word_timestamps=true&diarize=true",
            "&webhook_url=https%3A%2F%2Fh.example%2Fcb&webhook_method=POST&webhook_extra=k%3Av",
            "&redact_pii=true&redact_pci=true&emotion_detection=true&gender_detection=true"
        ),
        &[("content-type", "audio/mpeg"), ("x-expire-content", "true")],
        AUDIO,
    );
}

#[test]
fn stt_every_prerecorded_language_is_sent_by_its_code() {
    let codes = [
        "en",
        "hi",
        "de",
        "es",
        "ru",
        "it",
        "fr",
        "nl",
        "pt",
        "uk",
        "pl",
        "cs",
        "sk",
        "lv",
        "et",
        "ro",
        "fi",
        "sv",
        "bg",
        "hu",
        "da",
        "lt",
        "mt",
        "zh",
        "ja",
        "ko",
        "multi-eu",
        "multi-asian",
        "multi-indic",
    ];
    for code in codes {
        let language = SttLanguage::from_wire(code);
        assert!(language.is_known(), "{code}");
        let request = TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), language);
        assert_eq!(
            prepared(&request).uri().to_string(),
            format!("https://api.smallest.ai/waves/v1/stt/?model=pulse&language={code}")
        );
    }
}

#[test]
fn stt_unknown_model_is_sent_verbatim_and_encoded() {
    let request = TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En)
        .model(SttModel::Other("pulse next".into()));
    assert_eq!(request.query(), "model=pulse%20next&language=en");
}

#[test]
fn stt_has_no_accept_header() {
    let http = prepared(&TranscribeRequest::from_bytes(
        Bytes::from_static(AUDIO),
        SttLanguage::En,
    ));
    assert!(http.headers().get("accept").is_none());
}

#[test]
fn stt_base_url_variants() {
    let request = TranscribeRequest::from_bytes(Bytes::from_static(AUDIO), SttLanguage::En);
    assert_eq!(
        smallest_core::prepare(&request, &loopback_config())
            .unwrap()
            .uri(),
        "http://127.0.0.1:8080/proxy/waves/v1/stt/?model=pulse&language=en"
    );
    assert_eq!(
        smallest_core::prepare(
            &request,
            &config()
                .with_base_url("https://api.us.smallest.ai/")
                .unwrap()
        )
        .unwrap()
        .uri(),
        "https://api.us.smallest.ai/waves/v1/stt/?model=pulse&language=en"
    );
}

#[test]
fn stt_upload_head_describes_a_streamed_body() {
    let request = TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::En)
        .word_timestamps(true)
        .expire_content(true);
    let head = request
        .upload_head(&config(), Some(465_740), Some("audio/wav"))
        .unwrap();
    assert_eq!(head.method(), Method::POST);
    assert_eq!(
        head.uri(),
        "https://api.smallest.ai/waves/v1/stt/?model=pulse&language=en&word_timestamps=true"
    );
    assert_eq!(
        header_pairs(&head),
        vec![
            ("content-length".to_owned(), "465740".to_owned()),
            ("content-type".to_owned(), "audio/wav".to_owned()),
            ("x-expire-content".to_owned(), "true".to_owned()),
        ]
    );
}

#[test]
fn stt_upload_head_of_unknown_length_defaults_to_octet_stream() {
    let request = TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::En);
    let head = request.upload_head(&config(), None, None).unwrap();
    assert_eq!(
        header_pairs(&head),
        vec![(
            "content-type".to_owned(),
            "application/octet-stream".to_owned()
        )]
    );
    // The prepared head carries the identity headers, added the same way.
    let head = request.prepare_upload(&config(), None, None).unwrap();
    assert_authorization_is_sensitive(&head);
    assert_eq!(head.headers()["user-agent"], USER_AGENT);
    assert_eq!(head.headers()["x-source"], "smallest-rs");
}

#[test]
fn stt_upload_head_at_exactly_250_mb_is_accepted() {
    let request = TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::En);
    let head = request
        .upload_head(&config(), Some(250 * 1024 * 1024), None)
        .unwrap();
    assert_eq!(head.headers()["content-length"], "262144000");
}

// ---------------------------------------------------------------------------
// Legacy STT: POST /waves/v1/pulse/get_text
// ---------------------------------------------------------------------------

const SEED_URL: &str = "https://github.com/smallest-inc/cookbook/raw/main/speech-to-text/getting-started/samples/audio.wav";

#[test]
fn legacy_seed_call_from_the_authentication_page() {
    let request = LegacyTranscribeRequest::from_url(SEED_URL).language(SttLanguage::En);
    let http = prepared(&request);
    assert_eq!(http.method(), Method::POST);
    assert_eq!(
        http.uri(),
        "https://api.smallest.ai/waves/v1/pulse/get_text?language=en"
    );
    assert_eq!(header_pairs(&http), expected_headers(JSON, true));
    assert_authorization_is_sensitive(&http);
    assert_eq!(
        body_text(&http),
        r#"{"url":"https://github.com/smallest-inc/cookbook/raw/main/speech-to-text/getting-started/samples/audio.wav"}"#
    );
    let seed = r#"{"url": "https://github.com/smallest-inc/cookbook/raw/main/speech-to-text/getting-started/samples/audio.wav"}"#;
    assert_eq!(
        body_json(&http),
        serde_json::from_str::<serde_json::Value>(seed).unwrap()
    );
}

#[test]
fn legacy_without_language_has_no_query() {
    let http = prepared(&LegacyTranscribeRequest::from_url(SEED_URL));
    assert_eq!(
        http.uri(),
        "https://api.smallest.ai/waves/v1/pulse/get_text"
    );
}

#[test]
fn legacy_options_follow_the_language() {
    let http = prepared(
        &LegacyTranscribeRequest::from_bytes(Bytes::from_static(AUDIO))
            .language(SttLanguage::MultiEu)
            .word_timestamps(true)
            .diarize(true),
    );
    assert_eq!(
        http.uri(),
        "https://api.smallest.ai/waves/v1/pulse/get_text?language=multi-eu&word_timestamps=true&diarize=true"
    );
    assert_eq!(header_pairs(&http), expected_headers(OCTET, true));
    assert_eq!(http.body().as_ref(), AUDIO);
    let only_flags = prepared(&LegacyTranscribeRequest::from_url(SEED_URL).diarize(true));
    assert_eq!(
        only_flags.uri(),
        "https://api.smallest.ai/waves/v1/pulse/get_text?diarize=true"
    );
}

#[test]
fn legacy_loopback_base_url() {
    let request = LegacyTranscribeRequest::from_url(SEED_URL).language(SttLanguage::En);
    assert_eq!(
        smallest_core::prepare(&request, &loopback_config())
            .unwrap()
            .uri(),
        "http://127.0.0.1:8080/proxy/waves/v1/pulse/get_text?language=en"
    );
}

// ---------------------------------------------------------------------------
// Health: GET /waves/v1/health
// ---------------------------------------------------------------------------

#[test]
fn health_is_an_unauthenticated_get() {
    let http = prepared(&Health);
    assert_eq!(http.method(), Method::GET);
    assert_eq!(http.uri(), "https://api.smallest.ai/waves/v1/health");
    assert_eq!(header_pairs(&http), expected_headers(&[], false));
    assert!(http.headers().get("authorization").is_none());
    assert!(http.body().is_empty());
}

#[test]
fn health_on_loopback_with_prefix() {
    let http = smallest_core::prepare(&Health, &loopback_config()).unwrap();
    assert_eq!(http.uri(), "http://127.0.0.1:8080/proxy/waves/v1/health");
    assert!(http.headers().get("authorization").is_none());
}
