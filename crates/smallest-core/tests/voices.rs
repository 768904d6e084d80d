//! Voices (API.md §5): golden requests, the spec's JSON examples, tolerant parsing,
//! error bodies, the language-name map and the filter helpers.

mod common;

use common::{
    CANARY_KEY, USER_AGENT, api, config, header_pairs, json_response, loopback_config, prepared,
    response, validation,
};
use http::Method;
use proptest::prelude::*;
use smallest_core::voices::{
    CatalogVoice, GetVoiceCatalog, GetVoices, Voice, VoiceFilter, VoiceTags, language_from_name,
    language_name,
};
use smallest_core::{ApiErrorKind, Endpoint, Error, Language, TtsModel};

/// The headers `prepare` adds to a bodiless authenticated GET, sorted.
fn get_headers() -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {CANARY_KEY}")),
        ("user-agent".into(), USER_AGENT.into()),
        ("x-source".into(), "smallest-rs".into()),
    ]
}

const AVERY: &str = r#"{"voices":[{"voiceId":"avery","displayName":"Avery","tags":{"language":["english"],"accent":"american","gender":"female","age":"young","emotions":[],"usecases":["conversational"]}}]}"#;

const MISHKA: &str = r#"{"voices":[{"_id":"6a0b3c06e6e0b1a48dee8151","voiceId":"mishka","displayName":"Mishka","description":"A youthful Indian female voice with an inviting tone and smooth, expressive delivery.","audioPreview":"https://d4a5s42qh2351.cloudfront.net/waves-audio-previews/mishka.wav","tags":{"age":"young","emotions":[],"language":["english","hindi","marathi","gujarati","punjabi","bengali","odia","tamil","telugu"]}}]}"#;

// ---------------------------------------------------------------------------
// Golden requests
// ---------------------------------------------------------------------------

#[test]
fn get_voices_default_path_is_hyphenated_v3_1() {
    let http = prepared(&GetVoices::default());
    assert_eq!(http.method(), Method::GET);
    assert_eq!(
        http.uri(),
        "https://api.smallest.ai/waves/v1/lightning-v3.1/get_voices"
    );
    assert_eq!(header_pairs(&http), get_headers());
    assert!(http.headers()["authorization"].is_sensitive());
    assert!(http.body().is_empty());
    assert_eq!(GetVoices::new(), GetVoices::default());
    assert_eq!(GetVoices::new().model, TtsModel::LightningV31);
}

#[test]
fn get_voices_pro_path() {
    let http = prepared(&GetVoices::new().model(TtsModel::LightningV31Pro));
    assert_eq!(
        http.uri(),
        "https://api.smallest.ai/waves/v1/lightning-v3.1-pro/get_voices"
    );
    assert!(http.body().is_empty());
}

#[test]
fn get_voices_other_model_is_hyphenated_and_unsafe_names_refused() {
    let http = prepared(&GetVoices::new().model(TtsModel::Other("lightning_v4".into())));
    assert_eq!(
        http.uri(),
        "https://api.smallest.ai/waves/v1/lightning-v4/get_voices"
    );
    for bad in ["", "a/b", "..", "x?y=1", "sp ace"] {
        let request = GetVoices::new().model(TtsModel::Other(bad.into()));
        let v = validation(request.to_http_request(&config()));
        assert_eq!(v.field(), "model", "{bad:?}");
        assert!(v.allowed().contains("lightning-v3.1"), "{}", v.allowed());
    }
}

#[test]
fn get_voices_on_loopback_keeps_the_prefix() {
    let http = smallest_core::prepare(&GetVoices::new(), &loopback_config()).unwrap();
    assert_eq!(
        http.uri(),
        "http://127.0.0.1:8080/proxy/waves/v1/lightning-v3.1/get_voices"
    );
}

#[test]
fn voice_catalog_request() {
    let http = prepared(&GetVoiceCatalog);
    assert_eq!(http.method(), Method::GET);
    assert_eq!(
        http.uri(),
        "https://api.smallest.ai/waves/v1/voice/get-all-models"
    );
    assert_eq!(header_pairs(&http), get_headers());
    assert!(http.body().is_empty());
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

#[test]
fn voice_list_spec_example() {
    let voices = GetVoices::new()
        .from_http_response(json_response(200, AVERY))
        .unwrap();
    assert_eq!(voices.len(), 1);
    let avery = &voices[0];
    assert_eq!(avery.id, "avery");
    assert_eq!(avery.display_name, "Avery");
    assert_eq!(avery.tags.languages, ["english"]);
    assert_eq!(avery.tags.accent.as_deref(), Some("american"));
    assert_eq!(avery.tags.gender.as_deref(), Some("female"));
    assert_eq!(avery.tags.age.as_deref(), Some("young"));
    assert!(avery.tags.emotions.is_empty());
    assert_eq!(avery.tags.use_cases, ["conversational"]);
    let expected = Voice::new("avery", "Avery").with_tags(
        VoiceTags::new()
            .language("english")
            .accent("american")
            .gender("female")
            .age("young")
            .use_case("conversational"),
    );
    assert_eq!(*avery, expected);
}

#[test]
fn voice_list_round_trips_through_serde_with_wire_names() {
    let voices = GetVoices::new()
        .from_http_response(json_response(200, AVERY))
        .unwrap();
    let json = serde_json::to_value(&voices[0]).unwrap();
    assert_eq!(json["voiceId"], "avery");
    assert_eq!(json["tags"]["usecases"][0], "conversational");
    let back: Voice = serde_json::from_value(json).unwrap();
    assert_eq!(back, voices[0]);
}

#[test]
fn voice_list_tolerates_missing_null_and_empty_fields() {
    let body = r#"{"voices":[
        {"voiceId":"a"},
        {"voiceId":"b","displayName":null,"tags":null},
        {"voiceId":"c","displayName":"C","tags":{"language":null,"accent":"","gender":null,"age":"  ","emotions":null,"usecases":null}},
        {"voiceId":"d","displayName":"D","tags":{"language":"english, hindi","usecases":["", null, "narration", 3]},"extra":{"x":1}},
        {"voiceId":"e","tags":"not an object"}
    ]}"#;
    let voices = GetVoices::new()
        .from_http_response(json_response(200, body))
        .unwrap();
    let ids: Vec<&str> = voices.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    for v in &voices[..3] {
        assert_eq!(v.tags, VoiceTags::default(), "{}", v.id);
    }
    assert_eq!(voices[0].display_name, "");
    assert_eq!(voices[1].display_name, "");
    assert_eq!(voices[3].tags.languages, ["english", "hindi"]);
    assert_eq!(voices[3].tags.use_cases, ["narration", "3"]);
    assert_eq!(voices[4].tags, VoiceTags::default());
}

#[test]
fn voice_list_empty_and_null() {
    for body in [r#"{"voices":[]}"#, r#"{"voices":null}"#] {
        let voices = GetVoices::new()
            .from_http_response(json_response(200, body))
            .unwrap();
        assert!(voices.is_empty(), "{body}");
    }
}

#[test]
fn voice_list_without_voices_or_ids_is_a_decode_error() {
    for body in [
        "{}",
        r#"{"voices":[{"displayName":"no id"}]}"#,
        r#"{"voices":{}}"#,
        r#"[{"voiceId":"avery"}]"#,
        "[[]]",
        "not json",
        "",
    ] {
        let err = GetVoices::new()
            .from_http_response(json_response(200, body))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decode {
                    what: "voice list",
                    ..
                }
            ),
            "{body}: {err:?}"
        );
    }
}

#[test]
fn voice_catalog_spec_example() {
    let voices = GetVoiceCatalog
        .from_http_response(json_response(200, MISHKA))
        .unwrap();
    assert_eq!(voices.len(), 1);
    let mishka: &CatalogVoice = &voices[0];
    assert_eq!(
        mishka.object_id.as_deref(),
        Some("6a0b3c06e6e0b1a48dee8151")
    );
    assert_eq!(mishka.id, "mishka");
    assert_eq!(mishka.display_name, "Mishka");
    assert_eq!(
        mishka.description.as_deref(),
        Some(
            "A youthful Indian female voice with an inviting tone and smooth, expressive delivery."
        )
    );
    assert_eq!(
        mishka.audio_preview.as_deref(),
        Some("https://d4a5s42qh2351.cloudfront.net/waves-audio-previews/mishka.wav")
    );
    assert_eq!(mishka.tags.age.as_deref(), Some("young"));
    assert!(mishka.tags.emotions.is_empty());
    assert_eq!(
        mishka.tags.languages,
        [
            "english", "hindi", "marathi", "gujarati", "punjabi", "bengali", "odia", "tamil",
            "telugu"
        ]
    );
    assert_eq!(mishka.tags.gender, None);
    // The filter works on catalog tags too.
    assert!(
        VoiceFilter::new()
            .language("or")
            .age("young")
            .matches_tags(&mishka.tags)
    );
    assert!(!VoiceFilter::new().language("kn").matches_tags(&mishka.tags));
}

#[test]
fn voice_catalog_tolerates_missing_fields() {
    let voices = GetVoiceCatalog
        .from_http_response(json_response(200, r#"{"voices":[{"voiceId":"x"}]}"#))
        .unwrap();
    assert_eq!(voices[0].id, "x");
    assert_eq!(voices[0].object_id, None);
    assert_eq!(voices[0].description, None);
    assert_eq!(voices[0].audio_preview, None);
    let err = GetVoiceCatalog
        .from_http_response(json_response(200, r#"{"data":[]}"#))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Decode {
            what: "voice catalog",
            ..
        }
    ));
}

#[test]
fn voice_errors_go_through_check_status() {
    let e = api(GetVoices::new().from_http_response(json_response(
        401,
        r#"{"error":"Unauthorized","message":"Bearer token is missing or invalid."}"#,
    )));
    assert_eq!(e.status(), 401);
    assert_eq!(*e.kind(), ApiErrorKind::Unauthorized);
    assert_eq!(e.code(), Some("Unauthorized"));
    assert_eq!(e.message(), "Bearer token is missing or invalid.");
    assert!(e.is_auth());

    let e = api(GetVoices::new().from_http_response(json_response(
        400,
        r#"{"error":"Bad Request","message":"Invalid model"}"#,
    )));
    assert_eq!(*e.kind(), ApiErrorKind::InvalidRequest);
    assert!(e.message().contains("Invalid model"), "{}", e.message());

    let e =
        api(GetVoiceCatalog.from_http_response(response(500, &[("x-request-id", "req-9")], b"")));
    assert_eq!(*e.kind(), ApiErrorKind::Server);
    assert_eq!(e.request_id(), Some("req-9"));
    assert!(e.is_retryable());

    let e = api(GetVoiceCatalog.from_http_response(response(401, &[], b"")));
    assert!(e.is_auth());
}

// ---------------------------------------------------------------------------
// Language names and filters
// ---------------------------------------------------------------------------

#[test]
fn language_codes_map_to_the_api_names() {
    let pairs = [
        (Language::En, "english"),
        (Language::Hi, "hindi"),
        (Language::Ta, "tamil"),
        (Language::Te, "telugu"),
        (Language::Kn, "kannada"),
        (Language::Ml, "malayalam"),
        (Language::Mr, "marathi"),
        (Language::Gu, "gujarati"),
        (Language::Pa, "punjabi"),
        (Language::Bn, "bengali"),
        (Language::Or, "odia"),
        (Language::Es, "spanish"),
        (Language::De, "german"),
        (Language::Fr, "french"),
        (Language::Ja, "japanese"),
        (Language::Zh, "chinese"),
        (Language::Ar, "arabic"),
        (Language::El, "greek"),
        (Language::No, "norwegian"),
    ];
    for (code, name) in pairs {
        assert_eq!(language_name(&code), Some(name), "{code}");
        assert_eq!(language_from_name(name), Some(code.clone()), "{name}");
    }
    assert_eq!(language_from_name(" English "), Some(Language::En));
    assert_eq!(language_from_name("mandarin"), Some(Language::Zh));
    assert_eq!(language_name(&Language::Auto), None);
    assert_eq!(language_name(&Language::Other("xx".into())), None);
    assert_eq!(language_from_name("klingon"), None);
    // Every known language but `auto` has a name.
    for code in Language::ALL {
        if *code != Language::Auto {
            assert!(language_name(code).is_some(), "{code}");
        }
    }
}

fn sample_voices() -> Vec<Voice> {
    vec![
        Voice::new("avery", "Avery").with_tags(
            VoiceTags::new()
                .language("english")
                .accent("american")
                .gender("female")
                .age("young")
                .use_case("conversational"),
        ),
        Voice::new("devansh", "Devansh").with_tags(
            VoiceTags::new()
                .language("english")
                .language("hindi")
                .accent("indian")
                .gender("male")
                .age("middle aged")
                .use_case("narration")
                .emotion("happy"),
        ),
        Voice::new("rajeshwari", "Rajeshwari").with_tags(
            VoiceTags::new()
                .language("tamil")
                .accent("indian")
                .gender("female")
                .age("senior"),
        ),
        Voice::new("bare", "Bare"),
    ]
}

fn ids<'a>(it: impl Iterator<Item = &'a Voice>) -> Vec<&'a str> {
    it.map(|v| v.id.as_str()).collect()
}

#[test]
fn empty_filter_matches_everything() {
    let voices = sample_voices();
    assert_eq!(
        ids(VoiceFilter::new().filter(&voices)),
        ["avery", "devansh", "rajeshwari", "bare"]
    );
}

#[test]
fn language_filter_takes_codes_and_names() {
    let voices = sample_voices();
    for lang in ["en", "english", "EN", " English "] {
        assert_eq!(
            ids(VoiceFilter::new().language(lang).filter(&voices)),
            ["avery", "devansh"],
            "{lang}"
        );
    }
    for lang in ["hi", "hindi"] {
        assert_eq!(
            ids(VoiceFilter::new().language(lang).filter(&voices)),
            ["devansh"]
        );
    }
    assert_eq!(
        ids(VoiceFilter::new().language("ta").filter(&voices)),
        ["rajeshwari"]
    );
    assert!(ids(VoiceFilter::new().language("ja").filter(&voices)).is_empty());
    assert!(ids(VoiceFilter::new().language("klingon").filter(&voices)).is_empty());
    // The last value wins.
    assert_eq!(
        ids(VoiceFilter::new()
            .language("ta")
            .language("hi")
            .filter(&voices)),
        ["devansh"]
    );
}

#[test]
fn filters_combine_with_and() {
    let voices = sample_voices();
    assert_eq!(
        ids(VoiceFilter::new().gender("female").filter(&voices)),
        ["avery", "rajeshwari"]
    );
    assert_eq!(
        ids(VoiceFilter::new()
            .gender("female")
            .accent("Indian")
            .filter(&voices)),
        ["rajeshwari"]
    );
    assert_eq!(
        ids(VoiceFilter::new()
            .language("en")
            .gender("female")
            .filter(&voices)),
        ["avery"]
    );
    assert_eq!(
        ids(VoiceFilter::new().use_case("narration").filter(&voices)),
        ["devansh"]
    );
    assert_eq!(
        ids(VoiceFilter::new().emotion("HAPPY").filter(&voices)),
        ["devansh"]
    );
    assert_eq!(
        ids(VoiceFilter::new().age("middle-aged").filter(&voices)),
        ["devansh"]
    );
    assert_eq!(
        ids(VoiceFilter::new().age("middle_aged").filter(&voices)),
        ["devansh"]
    );
    assert!(
        ids(VoiceFilter::new()
            .gender("male")
            .language("ta")
            .filter(&voices))
        .is_empty()
    );
    // A voice without the tag never matches a filter on it.
    let bare = &voices[3];
    assert!(!VoiceFilter::new().gender("female").matches(bare));
    assert!(!VoiceFilter::new().use_case("narration").matches(bare));
    assert!(VoiceFilter::new().matches(bare));
}

#[test]
fn filter_works_on_any_iterator_of_references() {
    let voices = sample_voices();
    let filter = VoiceFilter::new().gender("male");
    let from_iter: Vec<&Voice> = filter.filter(voices.iter().rev()).collect();
    assert_eq!(from_iter.len(), 1);
    assert_eq!(from_iter[0].id, "devansh");
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn voice_parsers_never_panic_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512), status in 100u16..600) {
        let _ = GetVoices::new().from_http_response(response(status, &[], &body));
        let _ = GetVoiceCatalog.from_http_response(response(status, &[], &body));
    }

    #[test]
    fn voice_parsers_never_panic_on_voice_like_json(
        id in ".{0,10}",
        tags in prop_oneof![
            Just("null".to_owned()),
            Just("{}".to_owned()),
            Just("[1,2]".to_owned()),
            ".{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            (".{0,10}", any::<i64>(), any::<bool>()).prop_map(|(s, n, b)| format!(
                r#"{{"language":[{s:?},{n},null],"accent":{n},"gender":{b},"age":[],"emotions":{s:?},"usecases":{{}}}}"#
            )),
        ],
    ) {
        let body = format!(r#"{{"voices":[{{"voiceId":{id:?},"displayName":{id:?},"tags":{tags}}}]}}"#);
        let _ = GetVoices::new().from_http_response(json_response(200, &body));
        let _ = GetVoiceCatalog.from_http_response(json_response(200, &body));
    }

    #[test]
    fn filters_never_panic(lang in ".{0,12}", gender in ".{0,8}", age in ".{0,8}") {
        let voices = sample_voices();
        let filter = VoiceFilter::new().language(&lang).gender(&gender).age(&age).accent(&lang);
        let _ = filter.filter(&voices).count();
        let _ = language_from_name(&lang);
    }
}
