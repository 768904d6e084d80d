//! Voice cloning (API.md §6): the multipart body byte for byte, validation, MIME
//! sniffing, boundary checks, the spec's JSON examples and error bodies.

mod common;

use bytes::Bytes;
use common::{
    CANARY_KEY, USER_AGENT, api, config, header_pairs, json_response, prepared, response,
    validation,
};
use http::Method;
use proptest::prelude::*;
use smallest_core::cloning::{
    CLONE_AUDIO_TYPES, CloneStatus, ClonedVoice, CloningType, CreateVoiceClone, ListVoiceClones,
    MAX_CLONE_FILE_BYTES, boundary_from_random, sniff_audio_type,
};
use smallest_core::{ApiErrorKind, Endpoint, Error, Language, TtsModel};

/// A tiny WAV-looking file with bytes that are not UTF-8.
const WAV: &[u8] = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\xff\xfe\x00";

/// An MP3 starting with an ID3 tag.
const MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00";

fn headers_with(content_type: &str) -> Vec<(String, String)> {
    let mut all = vec![
        ("authorization".to_owned(), format!("Bearer {CANARY_KEY}")),
        ("content-type".to_owned(), content_type.to_owned()),
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
        ("x-source".to_owned(), "smallest-rs".to_owned()),
    ];
    all.sort();
    all
}

fn full_request() -> CreateVoiceClone {
    CreateVoiceClone::new("my-custom-voice", WAV.to_vec(), "sample.wav")
        .description("Warm narrator")
        .accent("indian")
        .tags(["en", "tone-test"])
        .language(Language::Hi)
        .model(TtsModel::LightningV31Pro)
        .boundary("X-BOUNDARY-42")
}

// ---------------------------------------------------------------------------
// Golden requests
// ---------------------------------------------------------------------------

#[test]
fn create_clone_full_multipart_body_byte_for_byte() {
    let http = prepared(&full_request());
    assert_eq!(http.method(), Method::POST);
    assert_eq!(http.uri(), "https://api.smallest.ai/waves/v1/voice-cloning");
    assert_eq!(
        header_pairs(&http),
        headers_with("multipart/form-data; boundary=X-BOUNDARY-42")
    );
    assert!(http.headers()["authorization"].is_sensitive());

    let mut expected = b"--X-BOUNDARY-42\r\n\
Content-Disposition: form-data; name=\"displayName\"\r\n\
\r\n\
my-custom-voice\r\n\
--X-BOUNDARY-42\r\n\
Content-Disposition: form-data; name=\"description\"\r\n\
\r\n\
Warm narrator\r\n\
--X-BOUNDARY-42\r\n\
Content-Disposition: form-data; name=\"accent\"\r\n\
\r\n\
indian\r\n\
--X-BOUNDARY-42\r\n\
Content-Disposition: form-data; name=\"tags\"\r\n\
\r\n\
en,tone-test\r\n\
--X-BOUNDARY-42\r\n\
Content-Disposition: form-data; name=\"language\"\r\n\
\r\n\
hi\r\n\
--X-BOUNDARY-42\r\n\
Content-Disposition: form-data; name=\"model\"\r\n\
\r\n\
lightning-v3.1-pro\r\n\
--X-BOUNDARY-42\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"sample.wav\"\r\n\
Content-Type: audio/wav\r\n\
\r\n"
        .to_vec();
    expected.extend_from_slice(WAV);
    expected.extend_from_slice(b"\r\n--X-BOUNDARY-42--\r\n");
    assert_eq!(
        http.body().as_ref(),
        expected.as_slice(),
        "\n got: {:?}\nwant: {:?}",
        String::from_utf8_lossy(http.body()),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn create_clone_minimal_body_sniffs_mp3() {
    let request = CreateVoiceClone::new("Ann", MP3.to_vec(), "ann.mp3").boundary("b0undary");
    let http = prepared(&request);
    assert_eq!(
        header_pairs(&http),
        headers_with("multipart/form-data; boundary=b0undary")
    );
    let mut expected = b"--b0undary\r\n\
Content-Disposition: form-data; name=\"displayName\"\r\n\
\r\n\
Ann\r\n\
--b0undary\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"ann.mp3\"\r\n\
Content-Type: audio/mpeg\r\n\
\r\n"
        .to_vec();
    expected.extend_from_slice(MP3);
    expected.extend_from_slice(b"\r\n--b0undary--\r\n");
    assert_eq!(http.body().as_ref(), expected.as_slice());
}

#[test]
fn create_clone_default_model_is_sent_hyphenated_when_set() {
    let request = CreateVoiceClone::new("n", WAV.to_vec(), "s.wav")
        .model(TtsModel::LightningV31)
        .boundary("B");
    let body = prepared(&request).into_body();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("name=\"model\"\r\n\r\nlightning-v3.1\r\n--B\r\n"),
        "{text}"
    );
    // A model given in the TTS spelling is sent in the cloning spelling.
    let request = CreateVoiceClone::new("n", WAV.to_vec(), "s.wav")
        .model(TtsModel::parse("lightning_v3.1_pro"))
        .boundary("B");
    let text = String::from_utf8_lossy(prepared(&request).body()).into_owned();
    assert!(text.contains("\r\n\r\nlightning-v3.1-pro\r\n"), "{text}");
    assert!(!text.contains("lightning_v3.1"), "{text}");
}

#[test]
fn create_clone_explicit_content_type_is_sent_as_its_lowercase_essence() {
    let request = CreateVoiceClone::new("n", b"opaque bytes".to_vec(), "clip.m4a")
        .content_type("Audio/MPEG-3; foo=bar")
        .boundary("B");
    let text = String::from_utf8_lossy(prepared(&request).body()).into_owned();
    assert!(
        text.contains(
            "filename=\"clip.m4a\"\r\nContent-Type: audio/mpeg-3\r\n\r\nopaque bytes\r\n--B--\r\n"
        ),
        "{text}"
    );
    // Each accepted type is accepted whatever the bytes are.
    for ty in CLONE_AUDIO_TYPES {
        let request = CreateVoiceClone::new("n", b"xyz".to_vec(), "f")
            .content_type(ty)
            .boundary("B");
        let text = String::from_utf8_lossy(prepared(&request).body()).into_owned();
        assert!(text.contains(&format!("Content-Type: {ty}\r\n")), "{ty}");
    }
}

#[test]
fn create_clone_boundary_with_separators_is_quoted_in_the_header() {
    let request = CreateVoiceClone::new("n", WAV.to_vec(), "s.wav").boundary("a:b=c (d)");
    let http = prepared(&request);
    assert_eq!(
        http.headers()["content-type"],
        "multipart/form-data; boundary=\"a:b=c (d)\""
    );
    assert!(http.body().starts_with(b"--a:b=c (d)\r\n"));
    assert!(http.body().ends_with(b"\r\n--a:b=c (d)--\r\n"));
}

#[test]
fn create_clone_text_values_are_sent_verbatim() {
    let request = CreateVoiceClone::new("Ünïcødé “voice” 🎙", WAV.to_vec(), "été.wav")
        .description("line one\r\nline two")
        .boundary("B");
    let text = String::from_utf8_lossy(prepared(&request).body()).into_owned();
    assert!(text.contains("\r\n\r\nÜnïcødé “voice” 🎙\r\n"), "{text}");
    assert!(
        text.contains("\r\n\r\nline one\r\nline two\r\n--B"),
        "{text}"
    );
    assert!(text.contains("filename=\"été.wav\""), "{text}");
}

#[test]
fn boundary_from_random_is_hex_and_valid() {
    let random: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
    let boundary = boundary_from_random(random);
    assert_eq!(boundary, "smallest-rs-00112233445566778899aabbccddeeff");
    let request = CreateVoiceClone::new("n", WAV.to_vec(), "s.wav").boundary(boundary.clone());
    let http = prepared(&request);
    assert_eq!(
        http.headers()["content-type"],
        format!("multipart/form-data; boundary={boundary}").as_str()
    );
    assert_ne!(boundary_from_random([0; 16]), boundary_from_random([1; 16]));
}

#[test]
fn list_clones_request() {
    let http = prepared(&ListVoiceClones);
    assert_eq!(http.method(), Method::GET);
    assert_eq!(http.uri(), "https://api.smallest.ai/waves/v1/voice-cloning");
    let mut expected = headers_with("x");
    expected.retain(|(n, _)| n != "content-type");
    assert_eq!(header_pairs(&http), expected);
    assert!(http.body().is_empty());
}

#[test]
fn debug_does_not_dump_the_file() {
    let request = CreateVoiceClone::new("n", vec![0xAB; 4096], "s.wav").boundary("B");
    let debug = format!("{request:?}");
    assert!(debug.contains("<4096 bytes>"), "{debug}");
    assert!(debug.len() < 400, "{debug}");
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

fn refused(request: CreateVoiceClone) -> smallest_core::ValidationError {
    validation(request.to_http_request(&config()))
}

fn base() -> CreateVoiceClone {
    CreateVoiceClone::new("voice", WAV.to_vec(), "s.wav").boundary("B")
}

#[test]
fn display_name_is_1_to_500_characters() {
    for bad in [String::new(), "   ".to_owned(), "x".repeat(501)] {
        let mut r = base();
        r.display_name = bad.clone();
        let v = refused(r);
        assert_eq!(v.field(), "displayName", "{bad:?}");
        assert!(v.allowed().contains("1–500"), "{}", v.allowed());
    }
    // 500 characters are fine, counted as characters, not bytes.
    for ok in ["x".repeat(500), "é".repeat(500)] {
        let mut r = base();
        r.display_name = ok;
        r.to_http_request(&config()).unwrap();
    }
}

#[test]
fn file_must_be_non_empty_and_at_most_5_mb() {
    let v = refused(CreateVoiceClone::new("v", Vec::new(), "s.wav").boundary("B"));
    assert_eq!(v.field(), "file");
    assert!(v.allowed().contains("5 MB"), "{}", v.allowed());

    let mut big = WAV.to_vec();
    big.resize(MAX_CLONE_FILE_BYTES + 1, 0);
    let v = refused(CreateVoiceClone::new("v", big.clone(), "s.wav").boundary("B"));
    assert_eq!(v.field(), "file");
    assert_eq!(v.value(), "\"5242881 bytes\"");
    assert!(v.allowed().contains("5242880"), "{}", v.allowed());

    big.truncate(MAX_CLONE_FILE_BYTES);
    let http = CreateVoiceClone::new("v", big, "s.wav")
        .boundary("smallest-rs-0123456789abcdef")
        .to_http_request(&config())
        .unwrap();
    assert!(http.body().len() > MAX_CLONE_FILE_BYTES);
}

#[test]
fn file_name_cannot_break_the_header() {
    for bad in [
        "",
        "  ",
        "a\"b.wav",
        "a\r\nX: y.wav",
        "a\nb",
        "a\\b.wav",
        "a\0b",
    ] {
        let v = refused(CreateVoiceClone::new("v", WAV.to_vec(), bad).boundary("B"));
        assert_eq!(v.field(), "file_name", "{bad:?}");
        assert!(v.allowed().contains("CR"), "{}", v.allowed());
    }
}

#[test]
fn content_type_must_be_an_accepted_one() {
    for bad in ["audio/mp3", "audio/ogg", "application/octet-stream", ""] {
        let v = refused(base().content_type(bad));
        assert_eq!(v.field(), "content_type", "{bad:?}");
        for ty in CLONE_AUDIO_TYPES {
            assert!(v.allowed().contains(ty), "{} lacks {ty}", v.allowed());
        }
    }
}

#[test]
fn unrecognised_bytes_without_a_content_type_are_refused_listing_the_types() {
    let v =
        refused(CreateVoiceClone::new("v", b"OggS\x00\x02rest".to_vec(), "a.ogg").boundary("B"));
    assert_eq!(v.field(), "file");
    assert!(v.value().contains("4f, 67, 67, 53"), "{}", v.value());
    for ty in CLONE_AUDIO_TYPES {
        assert!(v.allowed().contains(ty), "{} lacks {ty}", v.allowed());
    }
}

#[test]
fn tags_cannot_be_empty_or_hold_commas() {
    for bad in ["", " ", "a,b"] {
        let v = refused(base().tag("ok").tag(bad));
        assert_eq!(v.field(), "tags", "{bad:?}");
    }
}

#[test]
fn model_must_be_a_v3_1_model() {
    for v2 in ["lightning-v2", "lightning_v2"] {
        let v = refused(base().model(TtsModel::Other(v2.into())));
        assert_eq!(v.field(), "model");
        assert!(
            v.allowed().contains(
                "Voice cloning for lightning-v2 is deprecated. Please use lightning-v3.1"
            ),
            "{}",
            v.allowed()
        );
    }
    for other in ["lightning-large", "lightning", "pulse"] {
        let v = refused(base().model(TtsModel::Other(other.into())));
        assert_eq!(v.field(), "model");
        assert!(
            v.allowed()
                .contains("lightning-v3.1 (default), lightning-v3.1-pro"),
            "{}",
            v.allowed()
        );
        assert!(!v.allowed().contains("deprecated"));
    }
}

#[test]
fn language_must_be_spoken_by_the_model() {
    let v = refused(base().language(Language::Ja));
    assert_eq!(v.field(), "language");
    assert!(v.allowed().contains("en, es"), "{}", v.allowed());
    let v = refused(base().language(Language::Ja).model(TtsModel::LightningV31));
    assert_eq!(v.field(), "language");
    base()
        .language(Language::Ja)
        .model(TtsModel::LightningV31Pro)
        .to_http_request(&config())
        .unwrap();
    for lang in [Language::En, Language::Hi, Language::Ta, Language::Es] {
        base().language(lang).to_http_request(&config()).unwrap();
    }
    let v = refused(base().language(Language::Other("xx".into())));
    assert_eq!(v.field(), "language");
}

#[test]
fn boundary_is_required_and_follows_rfc_2046() {
    let v = refused(CreateVoiceClone::new("v", WAV.to_vec(), "s.wav"));
    assert_eq!(v.field(), "boundary");
    assert!(v.allowed().contains("random"), "{}", v.allowed());
    for bad in [
        String::new(),
        "x".repeat(71),
        "ends with space ".to_owned(),
        "quote\"".to_owned(),
        "semi;colon".to_owned(),
        "ünï".to_owned(),
        "cr\r\nlf".to_owned(),
    ] {
        let v = refused(base().boundary(bad.clone()));
        assert_eq!(v.field(), "boundary", "{bad:?}");
        assert!(v.allowed().contains("1–70"), "{}", v.allowed());
    }
    for ok in ["x".repeat(70), "'()+_,-./:=? x".to_owned(), "1".to_owned()] {
        base().boundary(ok).to_http_request(&config()).unwrap();
    }
}

#[test]
fn boundary_inside_the_file_is_refused() {
    let mut file = WAV.to_vec();
    file.extend_from_slice(b"...--smallest-rs-feed...");
    let v = refused(CreateVoiceClone::new("v", file.clone(), "s.wav").boundary("smallest-rs-feed"));
    assert_eq!(v.field(), "boundary");
    assert!(v.allowed().contains("inside the file"), "{}", v.allowed());
    // At the very end too.
    let v = refused(CreateVoiceClone::new("v", file.clone(), "s.wav").boundary("feed..."));
    assert_eq!(v.field(), "boundary");
    // A near miss is fine.
    CreateVoiceClone::new("v", file, "s.wav")
        .boundary("smallest-rs-feee")
        .to_http_request(&config())
        .unwrap();
}

#[test]
fn boundary_inside_a_text_part_is_refused() {
    let v = refused(base().description("see --B for details"));
    assert_eq!(v.field(), "boundary");
    assert!(v.allowed().contains("`description`"), "{}", v.allowed());
    let v = refused(base().tag("xBx"));
    assert!(v.allowed().contains("`tags`"), "{}", v.allowed());
}

// ---------------------------------------------------------------------------
// MIME sniffing
// ---------------------------------------------------------------------------

#[test]
fn sniffing_recognises_each_container() {
    let mp4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00";
    let m4a = b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00";
    let cases: &[(&[u8], Option<&str>)] = &[
        (WAV, Some("audio/wav")),
        (b"RIFF\x00\x00\x00\x00WAVE", Some("audio/wav")),
        (MP3, Some("audio/mpeg")),
        (b"ID3", Some("audio/mpeg")),
        (b"\xff\xfb\x90\x64", Some("audio/mpeg")), // MPEG-1 Layer III
        (b"\xff\xf3\x90\x64", Some("audio/mpeg")), // MPEG-2 Layer III
        (b"\xff\xe3\x90\x64", Some("audio/mpeg")), // MPEG-2.5 Layer III
        (b"\xff\xfd\x90\x64", Some("audio/mpeg")), // MPEG-1 Layer II
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", Some("audio/webm")),
        (mp4, Some("audio/mp4")),
        (m4a, Some("audio/mp4")),
        // Not accepted, or not recognised.
        (b"\xff\xf1\x50\x80", None), // AAC ADTS (layer 00)
        (b"\xff\xeb\x90\x64", None), // reserved MPEG version 01
        (b"\xff\x1b", None),
        (b"OggS\x00\x02", None),
        (b"fLaC\x00\x00", None),
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),
        (b"RIFF\x00\x00\x00\x00WAV", None),
        (b"\x00\x00\x00\x20ftyp"[..7].as_ref(), None),
        (b"", None),
        (b"\xff", None),
        (b"hello world", None),
    ];
    for (bytes, want) in cases {
        assert_eq!(sniff_audio_type(bytes), *want, "{bytes:02x?}");
    }
}

#[test]
fn sniffed_types_are_sent_and_accepted() {
    let files: [(&[u8], &str); 4] = [
        (WAV, "audio/wav"),
        (b"\xff\xfb\x90\x64rest", "audio/mpeg"),
        (b"\x1a\x45\xdf\xa3rest", "audio/webm"),
        (b"\x00\x00\x00\x20ftypisom", "audio/mp4"),
    ];
    for (file, ty) in files {
        assert!(CLONE_AUDIO_TYPES.contains(&ty));
        let request = CreateVoiceClone::new("v", file.to_vec(), "f").boundary("B");
        assert_eq!(request.effective_content_type().unwrap(), ty);
        let text = String::from_utf8_lossy(prepared(&request).body()).into_owned();
        assert!(
            text.contains(&format!("Content-Type: {ty}\r\n\r\n")),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

const CREATED_OBJECT_MODEL: &str = r#"{"message":"Voice clone created successfully","data":{"voiceId":"voice_dLP5T67Qw7","displayName":"my-custom-voice","status":"completed","language":"en","model":{"_id":"...","modelName":"lightning-v3.1"},"audioFileNames":["sample.wav"],"createdAt":"2026-04-20T09:42:17.103Z","organizationId":"69561896a37fd214b9a8d33c","samples":[{"text":"Hello! This is a sample of what I sound like.","audioUrl":"https://..."}]}}"#;

#[test]
fn create_response_with_model_object_spec_example() {
    let clone = full_request()
        .from_http_response(json_response(200, CREATED_OBJECT_MODEL))
        .unwrap();
    assert_eq!(
        clone.message.as_deref(),
        Some("Voice clone created successfully")
    );
    assert_eq!(clone.id, "voice_dLP5T67Qw7");
    assert_eq!(clone.display_name, "my-custom-voice");
    assert_eq!(clone.status, Some(CloneStatus::Completed));
    assert_eq!(clone.language.as_deref(), Some("en"));
    let model = clone.model.as_ref().unwrap();
    assert_eq!(model.model, TtsModel::LightningV31);
    assert_eq!(model.model.as_str(), "lightning_v3.1");
    assert_eq!(model.object_id.as_deref(), Some("..."));
    assert_eq!(clone.audio_file_names, ["sample.wav"]);
    assert_eq!(
        clone.created_at.as_deref(),
        Some("2026-04-20T09:42:17.103Z")
    );
    assert_eq!(
        clone.organization_id.as_deref(),
        Some("69561896a37fd214b9a8d33c")
    );
    assert_eq!(clone.samples.len(), 1);
    assert_eq!(
        clone.samples[0].text.as_deref(),
        Some("Hello! This is a sample of what I sound like.")
    );
    assert_eq!(clone.samples[0].audio_url.as_deref(), Some("https://..."));
}

#[test]
fn create_response_with_model_string() {
    for (wire, model) in [
        ("lightning-v3.1", TtsModel::LightningV31),
        ("lightning-v3.1-pro", TtsModel::LightningV31Pro),
        ("lightning_v3.1_pro", TtsModel::LightningV31Pro),
        ("lightning-v9", TtsModel::Other("lightning-v9".into())),
    ] {
        let body = CREATED_OBJECT_MODEL.replace(
            r#"{"_id":"...","modelName":"lightning-v3.1"}"#,
            &format!("{wire:?}"),
        );
        assert!(body.contains(&format!(r#""model":"{wire}""#)));
        let clone = full_request()
            .from_http_response(json_response(200, &body))
            .unwrap();
        let m = clone.model.unwrap();
        assert_eq!(m.model, model, "{wire}");
        assert_eq!(m.object_id, None);
    }
    // Absent, null, empty or unreadable: no model.
    for replacement in ["null", r#""""#, "{}", "42", r#"{"_id":"x"}"#] {
        let body = CREATED_OBJECT_MODEL
            .replace(r#"{"_id":"...","modelName":"lightning-v3.1"}"#, replacement);
        let clone = full_request()
            .from_http_response(json_response(200, &body))
            .unwrap();
        assert_eq!(clone.model, None, "{replacement}");
    }
}

#[test]
fn create_response_statuses_and_minimal_data() {
    for (wire, status) in [
        ("pending", CloneStatus::Pending),
        ("processing", CloneStatus::Processing),
        ("completed", CloneStatus::Completed),
        ("failed", CloneStatus::Failed),
        ("queued", CloneStatus::Other("queued".into())),
    ] {
        let body = format!(r#"{{"data":{{"voiceId":"voice_x","status":"{wire}"}}}}"#);
        let clone = base()
            .from_http_response(json_response(200, &body))
            .unwrap();
        assert_eq!(clone.status, Some(status));
        assert_eq!(clone.message, None);
        assert!(clone.samples.is_empty());
        assert!(clone.audio_file_names.is_empty());
    }
    for bad in [
        "{}",
        r#"{"data":null}"#,
        r#"{"data":{"displayName":"x"}}"#,
        "[]",
        "nope",
    ] {
        let err = base()
            .from_http_response(json_response(200, bad))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decode {
                    what: "voice clone response",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn create_errors_from_the_spec() {
    for message in [
        "No file provided",
        "clone limit exceeded, consider upgrading",
        "Voice cloning for lightning-v2 is deprecated. Please use lightning-v3.1",
        "Invalid language. Supported: en, hi",
    ] {
        let body = serde_json::json!({ "error": message }).to_string();
        let e = api(base().from_http_response(json_response(400, &body)));
        assert_eq!(*e.kind(), ApiErrorKind::InvalidRequest);
        assert_eq!(e.message(), message);
    }
    for code in ["voice_clone_timeout", "voice_clone_error"] {
        let body = format!(r#"{{"error":"Voice cloning failed","error_code":"{code}"}}"#);
        let e = api(base().from_http_response(json_response(500, &body)));
        assert_eq!(*e.kind(), ApiErrorKind::Server);
        assert_eq!(e.code(), Some(code));
        assert_eq!(e.message(), "Voice cloning failed");
    }
    let e = api(base().from_http_response(json_response(401, r#"{"error":"unauthorized"}"#)));
    assert!(e.is_auth());
    let e = api(ListVoiceClones.from_http_response(response(500, &[], b"")));
    assert_eq!(*e.kind(), ApiErrorKind::Server);
}

#[test]
fn list_response_spec_shape() {
    let body = r#"{"data":[
        {"_id":"6620aa00bb11cc22dd33ee44","voiceId":"voice_dLP5T67Qw7","displayName":"my-custom-voice","description":"Warm","accent":"indian","tags":["en","tone-test"],"language":"en","status":"completed","cloningType":"instant","modelIds":["lightning-v3.1"],"createdAt":"2026-04-20T09:42:17.103Z"},
        {"_id":"5f00","voiceId":"voice_old","displayName":"old","tags":[],"status":"failed","cloningType":"professional","modelIds":["lightning-large"],"createdAt":"2025-01-01T00:00:00.000Z"},
        {"voiceId":"voice_min"}
    ]}"#;
    let clones = ListVoiceClones
        .from_http_response(json_response(200, body))
        .unwrap();
    assert_eq!(clones.len(), 3);
    let c: &ClonedVoice = &clones[0];
    assert_eq!(c.object_id.as_deref(), Some("6620aa00bb11cc22dd33ee44"));
    assert_eq!(c.id, "voice_dLP5T67Qw7");
    assert_eq!(c.display_name, "my-custom-voice");
    assert_eq!(c.description.as_deref(), Some("Warm"));
    assert_eq!(c.accent.as_deref(), Some("indian"));
    assert_eq!(c.tags, ["en", "tone-test"]);
    assert_eq!(c.language.as_deref(), Some("en"));
    assert_eq!(c.status, Some(CloneStatus::Completed));
    assert_eq!(c.cloning_type, Some(CloningType::Instant));
    assert_eq!(c.model_ids, ["lightning-v3.1"]);
    assert_eq!(c.created_at.as_deref(), Some("2026-04-20T09:42:17.103Z"));
    assert_eq!(c.tts_model(), Some(TtsModel::LightningV31));

    assert_eq!(clones[1].cloning_type, Some(CloningType::Professional));
    assert_eq!(clones[1].status, Some(CloneStatus::Failed));
    assert_eq!(clones[1].tts_model(), None);

    let min = &clones[2];
    assert_eq!(min.id, "voice_min");
    assert_eq!(min.display_name, "");
    assert_eq!((min.status.clone(), min.cloning_type.clone()), (None, None));
    assert!(min.tags.is_empty() && min.model_ids.is_empty());

    // Tags sent as one comma-separated string are split like the server splits them.
    let clones = ListVoiceClones
        .from_http_response(json_response(
            200,
            r#"{"data":[{"voiceId":"v","tags":"en, tone-test"}]}"#,
        ))
        .unwrap();
    assert_eq!(clones[0].tags, ["en", "tone-test"]);
}

#[test]
fn list_response_empty_null_and_malformed() {
    for body in [r#"{"data":[]}"#, r#"{"data":null}"#] {
        assert!(
            ListVoiceClones
                .from_http_response(json_response(200, body))
                .unwrap()
                .is_empty()
        );
    }
    for body in ["{}", "[]", r#"{"data":{}}"#, ""] {
        let err = ListVoiceClones
            .from_http_response(json_response(200, body))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decode {
                    what: "voice clone list",
                    ..
                }
            ),
            "{body}"
        );
    }
}

#[test]
fn clone_status_enum() {
    assert_eq!(
        CloneStatus::ALL
            .iter()
            .map(CloneStatus::as_str)
            .collect::<Vec<_>>(),
        ["pending", "processing", "completed", "failed"]
    );
    assert_eq!(
        CloneStatus::from_wire("done"),
        CloneStatus::Other("done".into())
    );
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Splits a multipart body into its parts' raw bytes (between delimiters).
fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    assert!(rest.starts_with(delim.as_bytes()));
    rest = &rest[delim.len()..];
    loop {
        if rest.starts_with(b"--\r\n") {
            assert_eq!(rest.len(), 4, "trailing bytes after the close delimiter");
            return out;
        }
        assert!(rest.starts_with(b"\r\n"));
        rest = &rest[2..];
        let next = format!("\r\n--{boundary}");
        let at = rest
            .windows(next.len())
            .position(|w| w == next.as_bytes())
            .expect("a delimiter");
        out.push(&rest[..at]);
        rest = &rest[at + next.len()..];
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn clone_parsers_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), status in 100u16..600) {
        let _ = base().from_http_response(response(status, &[], &body));
        let _ = ListVoiceClones.from_http_response(response(status, &[], &body));
    }

    #[test]
    fn clone_parsers_never_panic_on_clone_like_json(
        model in prop_oneof![Just("null".to_owned()), Just("{}".to_owned()), Just("[]".to_owned()), ".{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()), ".{0,12}".prop_map(|s| format!(r#"{{"_id":1,"modelName":{}}}"#, serde_json::to_string(&s).unwrap()))],
        status in prop_oneof![Just("null".to_owned()), Just("1".to_owned()), ".{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap())],
        tags in prop_oneof![Just("null".to_owned()), Just("[1,null,\"a\"]".to_owned()), Just("{}".to_owned()), ".{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap())],
    ) {
        let create = format!(r#"{{"data":{{"voiceId":"v","model":{model},"status":{status},"samples":[{{"text":{tags}}}],"audioFileNames":{tags}}}}}"#);
        let _ = base().from_http_response(json_response(200, &create));
        let list = format!(r#"{{"data":[{{"voiceId":"v","status":{status},"cloningType":{status},"tags":{tags},"modelIds":{tags}}}]}}"#);
        let _ = ListVoiceClones.from_http_response(json_response(200, &list));
    }

    #[test]
    fn building_never_panics_and_the_file_part_is_exact(
        file in prop::collection::vec(any::<u8>(), 0..2048),
        name in ".{0,20}",
        file_name in ".{0,12}",
        random in any::<[u8; 16]>(),
        sniff in any::<bool>(),
    ) {
        let mut request = CreateVoiceClone::new(name.clone(), file.clone(), file_name.clone())
            .boundary(boundary_from_random(random));
        if !sniff {
            request = request.content_type("audio/wav");
        }
        match request.to_http_request(&config()) {
            Ok(http) => {
                let boundary = boundary_from_random(random);
                let parts = parts(http.body(), &boundary);
                prop_assert_eq!(parts.len(), 2);
                let head = format!(
                    "Content-Disposition: form-data; name=\"displayName\"\r\n\r\n{name}"
                );
                prop_assert_eq!(parts[0], head.as_bytes());
                let file_part = parts[1];
                prop_assert!(file_part.ends_with(&file));
                let header_len = file_part.len() - file.len();
                let header = std::str::from_utf8(&file_part[..header_len]).unwrap();
                let expected_prefix = format!("Content-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: audio/");
                prop_assert!(header.starts_with(&expected_prefix), "{}", header);
            }
            Err(Error::Validation(v)) => {
                prop_assert!(
                    ["displayName", "file", "file_name", "boundary"].contains(&v.field()),
                    "{:?}", v
                );
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn a_boundary_taken_from_the_file_is_always_refused(
        file in prop::collection::vec(any::<u8>(), 1..512),
        start in any::<prop::sample::Index>(),
        len in 1usize..20,
    ) {
        let mut file = file;
        let mut wav = WAV.to_vec();
        wav.append(&mut file);
        // Put a valid boundary somewhere inside.
        let boundary: String = "abc'()+_,-./:=?XYZ0123456789".chars().cycle().take(len).collect();
        let at = start.index(wav.len());
        let mut with = wav[..at].to_vec();
        with.extend_from_slice(boundary.as_bytes());
        with.extend_from_slice(&wav[at..]);
        let r = CreateVoiceClone::new("v", Bytes::from(with), "s.wav")
            .content_type("audio/wav")
            .boundary(boundary);
        let v = validation(r.to_http_request(&config()));
        prop_assert_eq!(v.field(), "boundary");
    }
}
