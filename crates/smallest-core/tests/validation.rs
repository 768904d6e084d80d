//! Local validation: every rule of API.md §3.1, §3.2, §4.1, §4.4 and §8.5 refuses a
//! bad request before anything is sent, with an error that names the field, shows the
//! value and says what is allowed.

mod common;

use bytes::Bytes;
use common::{config, validation};
use smallest_core::stt::{AudioSource, WebhookMethod};
use smallest_core::tts::{OutputFormat, TtsModel, TtsRequest};
use smallest_core::{
    Endpoint, Error, Language, LegacyTranscribeRequest, SttLanguage, SttModel, TranscribeRequest,
    ValidationError,
};

/// Validates a TTS request both ways (`validate` and `to_http_request`) and returns the
/// error, checking that both agree.
fn tts_error(request: &TtsRequest) -> ValidationError {
    let direct = request.validate().unwrap_err();
    let built = validation(request.to_http_request(&config()));
    assert_eq!(direct, built);
    built
}

fn assert_tts_ok(request: &TtsRequest) {
    request.validate().unwrap();
    request.to_http_request(&config()).unwrap();
}

/// The error names `field`, quotes `value` and the message shows all three parts.
fn assert_names(err: &ValidationError, field: &str, value: &str) {
    assert_eq!(err.field(), field, "{err}");
    // Values are shown Debug-quoted, so control characters stay visible.
    let shown = format!("{value:?}");
    let shown = shown.trim_matches('"');
    assert!(err.value().contains(shown), "value {shown:?} in {err}");
    assert!(!err.allowed().is_empty());
    let text = err.to_string();
    assert!(text.contains(&format!("`{field}`")), "{text}");
    assert!(text.contains(err.value()), "{text}");
    assert!(text.contains(err.allowed()), "{text}");
}

// ---------------------------------------------------------------------------
// TTS text and voice
// ---------------------------------------------------------------------------

#[test]
fn tts_empty_or_whitespace_text_is_refused() {
    for text in ["", " ", "\n\t ", "\u{3000}\u{a0}"] {
        let err = tts_error(&TtsRequest::new(text, "meher"));
        assert_eq!(err.field(), "text");
        assert_eq!(err.value(), format!("{text:?}"));
        assert!(err.allowed().contains("non-whitespace"), "{err}");
    }
}

#[test]
fn tts_long_text_is_shown_shortened() {
    // Long text is allowed (no documented hard limit) …
    assert_tts_ok(&TtsRequest::new("a".repeat(5000), "meher"));
    // … and a long rejected value is cut to 80 characters in the error.
    let err = tts_error(&TtsRequest::new("a", "x".repeat(500)));
    assert_eq!(err.value().chars().count(), 80);
    assert!(err.value().ends_with("..."));
}

#[test]
fn tts_bad_voice_ids_are_refused() {
    let long = "v".repeat(129);
    for id in [
        "",
        " meher",
        "meher ",
        "me her",
        "meher\n",
        "../meher",
        "meher/../x",
        "voice;drop",
        "\"meher\"",
        long.as_str(),
    ] {
        let err = tts_error(&TtsRequest::new("Hello", id));
        assert_names(&err, "voice_id", &id.chars().take(20).collect::<String>());
        assert!(err.allowed().contains("voice"), "{err}");
    }
}

#[test]
fn tts_catalog_and_clone_voice_ids_are_accepted() {
    for id in [
        "meher",
        "magnus",
        "voice_dLP5T67Qw7",
        "henry.v2-x",
        &"v".repeat(128),
    ] {
        assert_tts_ok(&TtsRequest::new("Hello", id));
    }
}

// ---------------------------------------------------------------------------
// TTS sample rate and speed
// ---------------------------------------------------------------------------

#[test]
fn tts_sample_rates_outside_the_four_are_refused() {
    for hz in [0, 1, 22050, 32000, 48000, 96000, u32::MAX] {
        let err = tts_error(&TtsRequest::new("a", "meher").sample_rate(hz));
        assert_names(&err, "sample_rate", &hz.to_string());
        assert!(err.allowed().contains("8000, 16000, 24000, 44100"), "{err}");
    }
}

#[test]
fn tts_the_four_sample_rates_are_accepted() {
    for hz in [8000, 16000, 24000, 44100] {
        assert_tts_ok(&TtsRequest::new("a", "meher").sample_rate(hz));
    }
}

#[test]
fn tts_speeds_outside_half_to_double_are_refused() {
    for (speed, shown) in [
        (0.49, "0.49"),
        (2.01, "2.01"),
        (0.0, "0.0"),
        (-1.0, "-1.0"),
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ] {
        let err = tts_error(&TtsRequest::new("a", "meher").speed(speed));
        assert_names(&err, "speed", shown);
        assert!(err.allowed().contains("0.5 to 2.0"), "{err}");
    }
}

#[test]
fn tts_speed_bounds_are_inclusive() {
    for speed in [0.5, 1.0, 1.999, 2.0] {
        assert_tts_ok(&TtsRequest::new("a", "meher").speed(speed));
    }
}

// ---------------------------------------------------------------------------
// TTS languages per model (API.md §3.2)
// ---------------------------------------------------------------------------

/// `lightning_v3.1`: `auto` + 20, written out from API.md §3.2 rather than taken from
/// the core, so a wrong table in the core fails here.
const V31: &[&str] = &[
    "auto", "en", "es", "fr", "de", "it", "nl", "sv", "pt", "pl", "ru", "hi", "mr", "gu", "pa",
    "bn", "or", "ta", "te", "kn", "ml",
];

/// `lightning_v3.1_pro`: the v3.1 set + `el fi no` + `zh ja ko id ms vi tr ar`.
const PRO_EXTRA: &[&str] = &[
    "el", "fi", "no", "zh", "ja", "ko", "id", "ms", "vi", "tr", "ar",
];

#[test]
fn tts_language_enum_is_the_32_spec_codes_in_order() {
    let spec = "auto en hi mr kn ta bn gu te ml pa or es de fr it nl sv pt ru el fi no pl ar zh id ja ko ms tr vi";
    let ours: Vec<&str> = Language::ALL.iter().map(Language::as_str).collect();
    assert_eq!(ours.join(" "), spec);
    assert_eq!(V31.len(), 21);
    assert_eq!(V31.len() + PRO_EXTRA.len(), 32);
}

#[test]
fn tts_every_language_on_every_model() {
    for language in Language::ALL {
        let code = language.as_str();
        let on_v31 = V31.contains(&code);
        let on_pro = on_v31 || PRO_EXTRA.contains(&code);
        assert!(on_pro, "{code} is in the enum but on no model");
        for (model, accepted) in [
            (None, on_v31),
            (Some(TtsModel::LightningV31), on_v31),
            (Some(TtsModel::LightningV31Pro), on_pro),
        ] {
            for field in ["language", "number_pronunciation_language"] {
                let mut request = TtsRequest::new("a", "meher");
                request.model = model.clone();
                if field == "language" {
                    request = request.language(language.clone());
                } else {
                    request = request.number_pronunciation_language(language.clone());
                }
                if accepted {
                    assert_tts_ok(&request);
                } else {
                    let err = tts_error(&request);
                    assert_names(&err, field, code);
                    assert!(err.allowed().contains("lightning_v3.1"), "{err}");
                    assert!(err.allowed().contains("auto, en"), "{err}");
                    assert!(!err.allowed().contains(&format!(" {code},")), "{err}");
                }
            }
        }
    }
}

#[test]
fn tts_japanese_is_pro_only() {
    assert_tts_ok(
        &TtsRequest::new("こんにちは", "aria")
            .model(TtsModel::LightningV31Pro)
            .language(Language::Ja),
    );
    let err = tts_error(
        &TtsRequest::new("こんにちは", "aria")
            .model(TtsModel::LightningV31)
            .language(Language::Ja),
    );
    assert_names(&err, "language", "ja");
    assert!(
        err.allowed().contains("the lightning_v3.1 model accepts"),
        "{err}"
    );
    assert!(!err.allowed().contains("ja"), "{err}");
}

#[test]
fn tts_unknown_language_is_refused_on_known_models_and_passed_on_unknown_ones() {
    for model in [TtsModel::LightningV31, TtsModel::LightningV31Pro] {
        let err = tts_error(
            &TtsRequest::new("a", "meher")
                .model(model.clone())
                .language(Language::Other("xx".into())),
        );
        assert_names(&err, "language", "xx");
        assert!(err.allowed().contains(model.as_str()), "{err}");
    }
    assert_tts_ok(
        &TtsRequest::new("a", "meher")
            .model(TtsModel::Other("lightning_v4".into()))
            .language(Language::Other("xx".into())),
    );
}

#[test]
fn tts_language_is_reported_before_number_pronunciation_language() {
    let err = tts_error(
        &TtsRequest::new("a", "meher")
            .language(Language::Ko)
            .number_pronunciation_language(Language::Vi),
    );
    assert_eq!(err.field(), "language");
}

// ---------------------------------------------------------------------------
// TTS output format, dictionaries, correlation ids
// ---------------------------------------------------------------------------

#[test]
fn output_format_mulaw_is_refused_pointing_at_ulaw() {
    for name in ["mulaw", "MULAW", " mu-law ", "u-law"] {
        let err = name.parse::<OutputFormat>().unwrap_err();
        assert_eq!(err.field(), "output_format");
        assert_eq!(err.value(), format!("{name:?}"));
        assert!(err.allowed().contains("`ulaw`"), "{err}");
        assert!(err.to_string().contains("ulaw"), "{err}");
    }
}

#[test]
fn output_format_unknown_names_list_the_five() {
    for name in ["", "mp4", "flac", "pcm16", "wave"] {
        let err = name.parse::<OutputFormat>().unwrap_err();
        assert_names(&err, "output_format", name);
        assert!(err.allowed().contains("wav, ulaw, alaw, pcm, mp3"), "{err}");
    }
}

#[test]
fn output_format_parses_the_five_in_any_case() {
    for format in OutputFormat::ALL {
        assert_eq!(format.as_str().parse::<OutputFormat>().unwrap(), format);
        assert_eq!(
            format
                .as_str()
                .to_ascii_uppercase()
                .parse::<OutputFormat>()
                .unwrap(),
            format
        );
    }
}

#[test]
fn tts_empty_pronunciation_dict_id_is_refused() {
    for id in ["", "  "] {
        let err = tts_error(&TtsRequest::new("a", "meher").pronunciation_dict(id));
        assert_names(&err, "pronunciation_dicts", id);
    }
}

#[test]
fn tts_correlation_ids_follow_the_pattern_and_length() {
    let max = "a".repeat(128);
    let over = "a".repeat(129);
    for id in ["a", "my-session-123", "A.b_C-9", max.as_str()] {
        assert_tts_ok(&TtsRequest::new("a", "meher").session_id(id).request_id(id));
    }
    for id in [
        "",
        over.as_str(),
        "has space",
        "ümlaut",
        "a/b",
        "a+b",
        "a:b",
        "id\n",
    ] {
        let err = tts_error(&TtsRequest::new("a", "meher").session_id(id));
        assert_names(&err, "session_id", &id.chars().take(20).collect::<String>());
        assert!(err.allowed().contains("1–128"), "{err}");
        let err = tts_error(&TtsRequest::new("a", "meher").request_id(id));
        assert_names(&err, "request_id", &id.chars().take(20).collect::<String>());
    }
}

// ---------------------------------------------------------------------------
// STT (unified and legacy)
// ---------------------------------------------------------------------------

fn stt_error(request: &TranscribeRequest) -> ValidationError {
    let direct = request.validate().unwrap_err();
    let built = validation(request.to_http_request(&config()));
    assert_eq!(direct, built);
    built
}

fn upload(language: SttLanguage) -> TranscribeRequest {
    TranscribeRequest::from_bytes(Bytes::from_static(b"RIFF"), language)
}

/// Pre-recorded codes from API.md §4.1 (spec enum 26 + 3 aggregators).
const PRERECORDED: &[&str] = &[
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

/// Streaming-only codes from API.md §4.4.
const STREAMING_ONLY: &[&str] = &[
    "yue",
    "gu",
    "mr",
    "or",
    "bn",
    "ta",
    "te",
    "kn",
    "ml",
    "north_indic",
    "multi-south-indic",
];

#[test]
fn stt_every_prerecorded_language_is_accepted() {
    for code in PRERECORDED {
        let language = SttLanguage::from_wire(code);
        upload(language.clone()).validate().unwrap();
        LegacyTranscribeRequest::from_url("https://example.com/a.wav")
            .language(language)
            .to_http_request(&config())
            .unwrap();
    }
}

#[test]
fn stt_streaming_only_languages_are_refused_for_files() {
    for code in STREAMING_ONLY {
        let language = SttLanguage::from_wire(code);
        assert!(language.is_known() && !language.is_prerecorded(), "{code}");
        let err = stt_error(&upload(language.clone()));
        assert_names(&err, "language", code);
        assert!(err.allowed().contains("multi-eu"), "{err}");
        assert!(
            err.allowed().starts_with("pre-recorded STT accepts: en"),
            "{err}"
        );
        let legacy = validation(
            LegacyTranscribeRequest::from_url("https://example.com/a.wav")
                .language(language)
                .to_http_request(&config()),
        );
        assert_eq!(legacy, err);
    }
}

#[test]
fn stt_language_enum_covers_prerecorded_and_streaming_exactly() {
    for language in SttLanguage::ALL {
        let code = language.as_str();
        assert_eq!(
            language.is_prerecorded(),
            PRERECORDED.contains(&code),
            "{code}"
        );
        assert!(
            PRERECORDED.contains(&code) || STREAMING_ONLY.contains(&code),
            "{code}"
        );
    }
    assert_eq!(
        SttLanguage::ALL.len(),
        PRERECORDED.len() + STREAMING_ONLY.len()
    );
}

#[test]
fn stt_pulse_pro_cannot_take_a_url() {
    let err = stt_error(
        &TranscribeRequest::from_url("https://example.com/a.wav", SttLanguage::En)
            .model(SttModel::PulsePro),
    );
    assert_names(&err, "model", "pulse-pro");
    assert!(err.allowed().contains("pulse"), "{err}");
    assert!(err.allowed().contains("upload"), "{err}");
    // Pulse takes the same URL.
    TranscribeRequest::from_url("https://example.com/a.wav", SttLanguage::En)
        .validate()
        .unwrap();
}

#[test]
fn stt_empty_upload_is_refused() {
    let err = stt_error(&TranscribeRequest::from_bytes(
        Bytes::new(),
        SttLanguage::En,
    ));
    assert_names(&err, "audio", "0 bytes");
    let legacy =
        validation(LegacyTranscribeRequest::from_bytes(Bytes::new()).to_http_request(&config()));
    assert_eq!(legacy.field(), "audio");
    let head = validation(
        TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::En).upload_head(
            &config(),
            Some(0),
            None,
        ),
    );
    assert_eq!(head.field(), "audio");
}

#[test]
fn stt_uploads_over_250_mb_are_refused() {
    let request = TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::En);
    let limit = 250 * 1024 * 1024;
    request.upload_head(&config(), Some(limit), None).unwrap();
    for len in [limit + 1, 1 << 40, u64::MAX] {
        let err = validation(request.upload_head(&config(), Some(len), None));
        assert_names(&err, "audio", &format!("{len} bytes"));
        assert!(err.allowed().contains("250 MB"), "{err}");
    }
}

#[test]
fn stt_upload_head_still_checks_the_parameters() {
    let err = validation(
        TranscribeRequest::from_bytes(Bytes::new(), SttLanguage::Ta).upload_head(
            &config(),
            Some(10),
            None,
        ),
    );
    assert_eq!(err.field(), "language");
}

#[test]
fn stt_bad_urls_are_refused() {
    for url in [
        "",
        "example.com/a.wav",
        "/relative/a.wav",
        "ftp://example.com/a.wav",
        "file:///etc/passwd",
        "https://",
        "https://exa mple.com/a.wav",
        "javascript:alert(1)",
    ] {
        let err = stt_error(&TranscribeRequest::from_url(url, SttLanguage::En));
        assert_names(&err, "url", url);
        assert!(err.allowed().contains("http"), "{err}");
        let legacy = validation(LegacyTranscribeRequest::from_url(url).to_http_request(&config()));
        assert_eq!(legacy, err);
    }
}

#[test]
fn stt_bad_webhook_urls_are_refused() {
    for url in ["", "hooks.example.com", "ws://hooks.example.com/x"] {
        let err = stt_error(
            &upload(SttLanguage::En)
                .model(SttModel::PulsePro)
                .webhook(url, WebhookMethod::Post),
        );
        assert_names(&err, "webhook_url", url);
    }
}

#[test]
fn stt_empty_model_name_is_refused() {
    for name in ["", "  "] {
        let err = stt_error(&upload(SttLanguage::En).model(SttModel::Other(name.into())));
        assert_names(&err, "model", name);
        assert!(err.allowed().contains("pulse, pulse-pro"), "{err}");
    }
}

#[test]
fn stt_unknown_model_skips_the_language_table() {
    upload(SttLanguage::Yue)
        .model(SttModel::Other("pulse-next".into()))
        .validate()
        .unwrap();
}

#[test]
fn stt_bytes_source_with_content_type_debug_shows_length_not_bytes() {
    let source = AudioSource::Bytes {
        data: Bytes::from(vec![7u8; 1000]),
        content_type: Some("audio/wav".into()),
    };
    let debug = format!("{source:?}");
    assert!(debug.contains("len: 1000"), "{debug}");
    assert!(debug.len() < 100, "{debug}");
}

#[test]
fn validation_errors_convert_into_error_validation() {
    let err: Error = tts_error(&TtsRequest::new("", "meher")).into();
    assert!(err.validation().is_some());
    assert!(err.api().is_none());
    assert!(!err.is_retryable() && !err.is_auth() && !err.is_rate_limited());
    assert!(err.to_string().starts_with("invalid `text`"), "{err}");
}
