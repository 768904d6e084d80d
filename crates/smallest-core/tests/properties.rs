//! Property tests: the parsers never panic on arbitrary input, and request building
//! either succeeds or names a known field — never panics.

mod common;

use bytes::Bytes;
use common::{config, json_response, response};
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use serde_json::Value;
use smallest_core::audio::{WavEncoding, wav_data, wav_header, wav_info};
use smallest_core::error::MAX_ERROR_BODY;
use smallest_core::stt::WebhookMethod;
use smallest_core::tts::{Audio, OutputFormat, ResponseInfo, TtsModel, TtsRequest};
use smallest_core::{
    ApiError, Endpoint, Error, Language, LegacyTranscribeRequest, RetryAfter, SttLanguage,
    SttModel, TranscribeRequest,
};

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object whose keys are mostly the ones a parser looks for.
fn json_object_with(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => ".{0,8}",
    ];
    prop::collection::vec((key, json_value()), 0..8)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
}

const ERROR_KEYS: &[&str] = &[
    "error",
    "message",
    "errors",
    "error_code",
    "request_id",
    "details",
    "recommended_endpoint",
    "status",
    "code",
    "path",
    "options",
];

const TRANSCRIPTION_KEYS: &[&str] = &[
    "status",
    "transcription",
    "words",
    "utterances",
    "language",
    "metadata",
    "totalBytes",
    "request_id",
    "gender",
    "emotions",
    "audio_length",
    "speaker",
    "word",
    "start",
    "end",
];

fn status() -> impl Strategy<Value = StatusCode> {
    (100u16..=599).prop_map(|s| StatusCode::from_u16(s).unwrap())
}

/// Header values as a server might send them (visible ASCII and spaces).
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,40}", "[0-9]{1,25}"]
}

fn check_api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) {
    let e = ApiError::from_parts(status, headers, body);
    assert_eq!(e.status(), status);
    assert!(e.raw_body().len() <= MAX_ERROR_BODY);
    assert_eq!(e.raw_body(), &body[..body.len().min(MAX_ERROR_BODY)]);
    assert_eq!(e.body_truncated(), body.len() > MAX_ERROR_BODY);
    let _ = (e.to_string(), format!("{e:?}"), e.hint(), e.is_retryable());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn api_error_never_panics_on_bytes(
        status in status(),
        body in prop::collection::vec(any::<u8>(), 0..6000),
    ) {
        check_api_error(status, &HeaderMap::new(), &body);
    }

    #[test]
    fn api_error_never_panics_on_json_shapes(
        status in status(),
        body in json_object_with(ERROR_KEYS),
        request_id in header_text(),
        retry_after in header_text(),
    ) {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_str(&request_id).unwrap());
        headers.insert("retry-after", HeaderValue::from_str(&retry_after).unwrap());
        check_api_error(status, &headers, body.to_string().as_bytes());
    }

    #[test]
    fn retry_after_parse_never_panics(value in ".{0,40}") {
        if let Some(r) = RetryAfter::parse(&value) {
            let _ = r.delay_from(std::time::SystemTime::UNIX_EPOCH);
        }
    }

    #[test]
    fn transcription_parser_never_panics_on_bytes(
        body in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        let request = TranscribeRequest::from_bytes(Bytes::from_static(b"x"), SttLanguage::En);
        let answer = request.from_http_response(response(200, &[], &body));
        let parsed_or_decode_error = matches!(answer, Ok(_) | Err(Error::Decode { .. }));
        prop_assert!(parsed_or_decode_error, "{:?}", answer);
    }

    #[test]
    fn transcription_parser_never_panics_on_json_shapes(
        body in json_object_with(TRANSCRIPTION_KEYS),
        words in prop::collection::vec(json_object_with(TRANSCRIPTION_KEYS), 0..4),
    ) {
        let mut body = body;
        body["words"] = Value::Array(words.clone());
        body["utterances"] = Value::Array(words);
        for answer in [
            TranscribeRequest::from_bytes(Bytes::from_static(b"x"), SttLanguage::En)
                .from_http_response(json_response(200, &body.to_string())),
            LegacyTranscribeRequest::from_url("https://e.x/a")
                .from_http_response(json_response(200, &body.to_string())),
        ] {
            let parsed_or_decode_error = matches!(answer, Ok(_) | Err(Error::Decode { .. }));
        prop_assert!(parsed_or_decode_error, "{:?}", answer);
        }
    }

    #[test]
    fn wav_readers_never_panic_on_bytes(file in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = wav_info(&file);
        if let Some(data) = wav_data(&file) {
            prop_assert!(data.len() <= file.len());
        }
    }

    #[test]
    fn wav_readers_never_panic_on_riff_with_arbitrary_chunks(
        chunks in prop::collection::vec(
            (prop::sample::select(vec![*b"fmt ", *b"data", *b"LIST", *b"junk"]),
             any::<u32>(),
             prop::collection::vec(any::<u8>(), 0..40)),
            0..5),
        riff_len in any::<u32>(),
    ) {
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&riff_len.to_le_bytes());
        file.extend_from_slice(b"WAVE");
        for (id, len, payload) in chunks {
            file.extend_from_slice(&id);
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&payload);
        }
        let _ = wav_info(&file);
        if let Some(data) = wav_data(&file) {
            prop_assert!(data.len() <= file.len());
        }
    }

    #[test]
    fn to_wav_round_trips_every_sample_format(
        data in prop::collection::vec(any::<u8>(), 0..500),
        hz in prop::sample::select(vec![8000u32, 16000, 24000, 44100]),
        format in prop::sample::select(vec![OutputFormat::Pcm, OutputFormat::Ulaw, OutputFormat::Alaw]),
    ) {
        let audio = Audio::new(Bytes::from(data.clone()), format, hz, ResponseInfo::default());
        let wav = audio.to_wav().unwrap();
        let info = wav_info(&wav).unwrap();
        prop_assert_eq!(info.sample_rate, hz);
        prop_assert_eq!(info.channels, 1);
        prop_assert_eq!(wav_data(&wav).unwrap(), data.as_slice());
        let _ = audio.duration();
    }

    #[test]
    fn wav_header_never_panics(rate in any::<u32>(), len in any::<u64>()) {
        for encoding in [WavEncoding::Pcm16, WavEncoding::ALaw, WavEncoding::MuLaw] {
            let header = wav_header(encoding, rate, len);
            prop_assert_eq!(wav_info(&header).unwrap().sample_rate, rate);
        }
    }
}

/// The fields a TTS validation error may name.
const TTS_FIELDS: &[&str] = &[
    "text",
    "voice_id",
    "sample_rate",
    "speed",
    "language",
    "number_pronunciation_language",
    "pronunciation_dicts",
    "session_id",
    "request_id",
];

/// Floats with the special values over-represented.
fn speed() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        0.0f32..3.0,
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(0.5),
        Just(2.0)
    ]
}

fn sample_rate() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        prop::sample::select(vec![8000u32, 16000, 22050, 24000, 44100, 48000])
    ]
}

/// Short strings, often from the allowed alphabet of ids.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-zA-Z0-9_.-]{0,130}"]
}

fn language() -> impl Strategy<Value = Language> {
    prop_oneof![
        prop::sample::select(Language::ALL.to_vec()),
        "[a-z]{0,3}".prop_map(|s| Language::from_wire(&s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tts_request_validates_or_names_a_known_field(
        text in ".{0,30}",
        voice in id_text(),
        model in prop::option::of(prop_oneof![
            Just(TtsModel::LightningV31),
            Just(TtsModel::LightningV31Pro),
            ".{0,12}".prop_map(|s| TtsModel::parse(&s)),
        ]),
        hz in prop::option::of(sample_rate()),
        speed in prop::option::of(speed()),
        lang in prop::option::of(language()),
        number_lang in prop::option::of(language()),
        math in prop::option::of(any::<bool>()),
        format in prop::option::of(".{0,6}"),
        dicts in prop::collection::vec(".{0,6}", 0..3),
        session in prop::option::of(id_text()),
        request_id in prop::option::of(id_text()),
        expire in any::<bool>(),
    ) {
        let mut request = TtsRequest::new(text.clone(), voice);
        request.model = model;
        request.sample_rate = hz;
        request.speed = speed;
        request.language = lang;
        request.number_pronunciation_language = number_lang;
        request.math_notation = math;
        request.output_format = format.and_then(|f| f.parse().ok());
        request.pronunciation_dicts = dicts;
        request.session_id = session;
        request.request_id = request_id;
        request.expire_content = expire;

        match request.validate() {
            Ok(()) => {
                let http = smallest_core::prepare(&request, &config()).unwrap();
                let body: Value = serde_json::from_slice(http.body()).unwrap();
                prop_assert_eq!(body["text"].as_str(), Some(text.as_str()));
                prop_assert_eq!(
                    body["output_format"].as_str(),
                    Some(request.effective_format().as_str())
                );
            }
            Err(e) => {
                prop_assert!(TTS_FIELDS.contains(&e.field()), "unknown field {}", e.field());
                prop_assert!(!e.allowed().is_empty());
                let built = request.to_http_request(&config()).unwrap_err();
                prop_assert_eq!(built.validation(), Some(&e));
            }
        }
    }

    #[test]
    fn output_format_parse_never_panics(name in ".{0,10}") {
        if let Err(e) = name.parse::<OutputFormat>() {
            prop_assert_eq!(e.field(), "output_format");
        }
    }

    #[test]
    fn stt_request_validates_or_names_a_known_field(
        url in prop_oneof![".{0,20}", "https://[a-z]{1,8}\\.example/[ -~]{0,12}"],
        use_url in any::<bool>(),
        len in 0usize..4,
        language in prop_oneof![
            prop::sample::select(SttLanguage::ALL.to_vec()),
            "[a-z-]{0,8}".prop_map(|s| SttLanguage::from_wire(&s)),
        ],
        model in prop_oneof![Just(SttModel::Pulse), Just(SttModel::PulsePro), ".{0,8}".prop_map(|s| SttModel::from_wire(&s))],
        webhook in prop::option::of(".{0,20}"),
        extra in prop::option::of(".{0,20}"),
    ) {
        let mut request = if use_url {
            TranscribeRequest::from_url(url.clone(), language)
        } else {
            TranscribeRequest::from_bytes(Bytes::from(vec![0u8; len]), language)
        }
        .model(model);
        if let Some(webhook) = webhook {
            request = request.webhook(webhook, WebhookMethod::Post);
        }
        if let Some(extra) = extra {
            request = request.webhook_extra(extra);
        }
        match request.validate() {
            Ok(()) => {
                let http = smallest_core::prepare(&request, &config()).unwrap();
                prop_assert!(http.uri().to_string().starts_with("https://api.smallest.ai/waves/v1/stt/?model="));
            }
            Err(e) => {
                prop_assert!(
                    ["language", "model", "audio", "url", "webhook_url"].contains(&e.field()),
                    "unknown field {}", e.field()
                );
            }
        }
        let legacy = LegacyTranscribeRequest::from_url(url);
        if let Err(e) = legacy.to_http_request(&config()) {
            prop_assert!(e.validation().is_some_and(|v| v.field() == "url"), "{e}");
        }
    }

    #[test]
    fn query_values_round_trip_through_percent_encoding(extra in ".{0,40}") {
        let request = TranscribeRequest::from_bytes(Bytes::from_static(b"x"), SttLanguage::En)
            .webhook_extra(extra.clone());
        let query = request.query();
        let value = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("webhook_extra="))
            .unwrap();
        prop_assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        let decoded = percent_encoding::percent_decode_str(value).decode_utf8().unwrap();
        prop_assert_eq!(decoded, extra);
    }
}
