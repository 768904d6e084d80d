//! Parsing of successful responses: TTS audio and its headers (API.md §2.3, §3.3),
//! STT transcriptions in every documented shape (§4.1, §4.3, §12.4) and health (§8.6).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{json_response, response};
use smallest_core::audio::{WAV_HEADER_LEN, WavEncoding, wav_data, wav_header, wav_info};
use smallest_core::tts::{Audio, ContentExpiry, OutputFormat, ResponseInfo, TtsRequest};
use smallest_core::{
    Endpoint, Error, Health, LegacyTranscribeRequest, SttLanguage, TranscribeRequest, Transcription,
};

// ---------------------------------------------------------------------------
// TTS
// ---------------------------------------------------------------------------

/// A 200 the way the service sends it: `Content-Type: audio/wav` whatever the format.
fn audio_response(body: &[u8], headers: &[(&str, &str)]) -> http::Response<Bytes> {
    let mut all = vec![("content-type", "audio/wav")];
    all.extend_from_slice(headers);
    response(200, &all, body)
}

const PCM: &[u8] = &[0xdf, 0xff, 0xd2, 0xff, 0xd3, 0xff, 0xf0, 0xff];

fn synthesize(request: &TtsRequest, body: &[u8]) -> Audio {
    request
        .from_http_response(audio_response(body, &[]))
        .unwrap()
}

#[test]
fn tts_every_format_keeps_its_format_and_rate() {
    for format in OutputFormat::ALL {
        for hz in [8000, 16000, 24000, 44100] {
            let request = TtsRequest::new("a", "meher")
                .output_format(format)
                .sample_rate(hz);
            // A body that looks like the format asked for (the core checks that).
            let body = match format {
                OutputFormat::Wav => [&b"RIFF\x24\0\0\0WAVEfmt "[..], PCM].concat(),
                OutputFormat::Mp3 => [&b"\xff\xf3\xc4\xc4"[..], PCM].concat(),
                _ => PCM.to_vec(),
            };
            let audio = synthesize(&request, &body);
            assert_eq!(audio.format(), format);
            assert_eq!(audio.sample_rate(), hz);
            assert_eq!(audio.bytes().as_ref(), &body[..]);
        }
    }
}

#[test]
fn tts_refuses_a_success_that_is_not_the_audio_asked_for() {
    type Case<'a> = (OutputFormat, &'a [(&'a str, &'a str)], &'a [u8], &'a str);
    let cases: [Case<'_>; 6] = [
        (
            OutputFormat::Wav,
            &[("content-type", "text/html")],
            b"<html>\x1b[31mLog in</html>",
            "text/html",
        ),
        (
            OutputFormat::Pcm,
            &[("content-type", "text/plain")],
            b"ok\r\n",
            "text/plain",
        ),
        (
            OutputFormat::Wav,
            &[("content-encoding", "gzip")],
            b"\x1f\x8b\x08\0RIFF",
            "gzip",
        ),
        (OutputFormat::Wav, &[], PCM, "RIFF/WAVE"),
        (OutputFormat::Mp3, &[], PCM, "frame sync"),
        (OutputFormat::Pcm, &[], &PCM[..7], "odd length"),
    ];
    for (format, headers, body, why) in cases {
        let e = TtsRequest::new("a", "meher")
            .output_format(format)
            .from_http_response(response(200, headers, body))
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Decode { .. }), "{format}: {e:?}");
        assert!(text.contains(why), "{format}: {text}");
        // The first bytes are quoted with control characters escaped.
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }
}

#[test]
fn tts_defaults_are_pcm_at_44100() {
    let audio = synthesize(&TtsRequest::new("a", "meher"), PCM);
    assert_eq!(audio.format(), OutputFormat::Pcm);
    assert_eq!(audio.sample_rate(), 44100);
    assert_eq!(audio.into_bytes().as_ref(), PCM);
}

#[test]
fn tts_whatever_the_content_type_the_request_decides_the_format() {
    for content_type in ["audio/wav", "audio/mpeg", "application/octet-stream"] {
        let audio = TtsRequest::new("a", "meher")
            .output_format(OutputFormat::Mp3)
            .from_http_response(response(
                200,
                &[("content-type", content_type)],
                b"\xff\xf3\xc4\xc4",
            ))
            .unwrap();
        assert_eq!(audio.format(), OutputFormat::Mp3);
    }
    // No Content-Type at all is still audio.
    let audio = TtsRequest::new("a", "meher")
        .from_http_response(response(200, &[], PCM))
        .unwrap();
    assert_eq!(audio.bytes().len(), PCM.len());
}

#[test]
fn tts_id_headers_are_parsed() {
    let audio = TtsRequest::new("a", "meher")
        .session_id("my-session-123")
        .request_id("my-request-456")
        .from_http_response(audio_response(
            PCM,
            &[
                ("X-Session-Id", "5b0a2f6e-6c8e-4b0a-9d0e-2f1c3a4b5c6d"),
                ("X-Request-Id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
                ("X-External-Session-Id", "my-session-123"),
                ("X-External-Request-Id", "my-request-456"),
            ],
        ))
        .unwrap();
    let info = audio.info();
    assert_eq!(
        info.session_id.as_deref(),
        Some("5b0a2f6e-6c8e-4b0a-9d0e-2f1c3a4b5c6d")
    );
    assert_eq!(
        info.request_id.as_deref(),
        Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    );
    assert_eq!(info.external_session_id.as_deref(), Some("my-session-123"));
    assert_eq!(info.external_request_id.as_deref(), Some("my-request-456"));
    assert_eq!(info.content_expiry, None);
}

#[test]
fn tts_empty_external_ids_are_none() {
    let audio = TtsRequest::new("a", "meher")
        .from_http_response(audio_response(
            PCM,
            &[
                ("x-session-id", "s"),
                ("x-request-id", "r"),
                ("x-external-session-id", ""),
                ("x-external-request-id", ""),
            ],
        ))
        .unwrap();
    assert_eq!(audio.info().external_session_id, None);
    assert_eq!(audio.info().external_request_id, None);
    assert_eq!(audio.info().session_id.as_deref(), Some("s"));
}

#[test]
fn tts_missing_headers_leave_info_empty() {
    let audio = synthesize(&TtsRequest::new("a", "meher"), PCM);
    assert_eq!(audio.info(), &ResponseInfo::default());
}

#[test]
fn tts_content_expiry_answers_are_parsed() {
    for (wire, expected) in [
        ("applied", ContentExpiry::Applied),
        ("not-entitled", ContentExpiry::NotEntitled),
        ("unavailable", ContentExpiry::Unavailable),
        ("later-value", ContentExpiry::Other("later-value".into())),
    ] {
        let audio = TtsRequest::new("a", "meher")
            .expire_content(true)
            .from_http_response(audio_response(PCM, &[("x-content-expiry", wire)]))
            .unwrap();
        assert_eq!(audio.info().content_expiry, Some(expected));
    }
}

#[test]
fn tts_pcm_to_wav_prepends_a_valid_header() {
    let audio = synthesize(&TtsRequest::new("a", "meher").sample_rate(24000), PCM);
    let wav = audio.to_wav().unwrap();
    assert_eq!(wav.len(), WAV_HEADER_LEN + PCM.len());
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    assert_eq!(
        u32::from_le_bytes(wav[4..8].try_into().unwrap()),
        36 + PCM.len() as u32
    );
    let info = wav_info(&wav).unwrap();
    assert_eq!(info.format_tag, 1);
    assert_eq!(info.channels, 1);
    assert_eq!(info.sample_rate, 24000);
    assert_eq!(info.bits_per_sample, 16);
    assert_eq!(&wav[28..32], &48000u32.to_le_bytes(), "byte rate");
    assert_eq!(&wav[32..34], &2u16.to_le_bytes(), "block align");
    assert_eq!(wav_data(&wav).unwrap(), PCM);
}

#[test]
fn tts_g711_to_wav_uses_tags_7_and_6() {
    for (format, tag) in [(OutputFormat::Ulaw, 7), (OutputFormat::Alaw, 6)] {
        let body = [0xffu8, 0x7f, 0x00, 0x80, 0x55];
        let audio = synthesize(
            &TtsRequest::new("a", "meher")
                .output_format(format)
                .sample_rate(8000),
            &body,
        );
        let wav = audio.to_wav().unwrap();
        let info = wav_info(&wav).unwrap();
        assert_eq!(info.format_tag, tag, "{format}");
        assert_eq!(info.bits_per_sample, 8);
        assert_eq!(info.channels, 1);
        assert_eq!(info.sample_rate, 8000);
        assert_eq!(&wav[28..32], &8000u32.to_le_bytes(), "byte rate");
        assert_eq!(wav_data(&wav).unwrap(), &body);
    }
}

#[test]
fn tts_wav_passes_through_unchanged() {
    let mut file = wav_header(WavEncoding::Pcm16, 24000, PCM.len() as u64).to_vec();
    file.extend_from_slice(PCM);
    let audio = synthesize(
        &TtsRequest::new("a", "meher")
            .output_format(OutputFormat::Wav)
            .sample_rate(24000),
        &file,
    );
    assert_eq!(audio.to_wav().unwrap().as_ref(), file.as_slice());
}

#[test]
fn tts_mp3_has_no_wav_form() {
    let audio = synthesize(
        &TtsRequest::new("a", "meher").output_format(OutputFormat::Mp3),
        b"\xff\xf3\xc4\xc4",
    );
    let err = audio.to_wav().unwrap_err();
    let validation = err.validation().expect("a validation error");
    assert_eq!(validation.field(), "output_format");
    assert!(validation.value().contains("mp3"));
    assert!(err.to_string().contains("pcm"), "{err}");
}

#[test]
fn tts_duration_of_sample_formats() {
    let one_second_pcm = vec![0u8; 2 * 24000];
    let audio = Audio::new(
        Bytes::from(one_second_pcm.clone()),
        OutputFormat::Pcm,
        24000,
        ResponseInfo::default(),
    );
    assert_eq!(audio.duration(), Some(Duration::from_secs(1)));
    let ulaw = Audio::new(
        Bytes::from(vec![0u8; 4000]),
        OutputFormat::Ulaw,
        8000,
        ResponseInfo::default(),
    );
    assert_eq!(ulaw.duration(), Some(Duration::from_millis(500)));
    let mut wav = wav_header(WavEncoding::Pcm16, 24000, one_second_pcm.len() as u64).to_vec();
    wav.extend_from_slice(&one_second_pcm);
    let wav = Audio::new(
        Bytes::from(wav),
        OutputFormat::Wav,
        24000,
        ResponseInfo::default(),
    );
    assert_eq!(wav.duration(), Some(Duration::from_secs(1)));
    let mp3 = Audio::new(
        Bytes::from_static(b"\xff\xf3"),
        OutputFormat::Mp3,
        24000,
        ResponseInfo::default(),
    );
    assert_eq!(mp3.duration(), None);
}

#[test]
fn tts_duration_at_a_zero_sample_rate_does_not_panic() {
    for data in [Bytes::new(), Bytes::from_static(PCM)] {
        let audio = Audio::new(data, OutputFormat::Pcm, 0, ResponseInfo::default());
        assert_eq!(audio.duration(), None);
    }
}

#[test]
fn tts_json_on_200_is_a_decode_error() {
    let err = TtsRequest::new("a", "meher")
        .from_http_response(json_response(200, r#"{"status":"ok"}"#))
        .unwrap_err();
    match &err {
        Error::Decode { what, message } => {
            assert_eq!(*what, "synthesis response");
            assert!(message.contains(r#"{"status":"ok"}"#), "{message}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn tts_empty_body_is_a_decode_error() {
    let err = TtsRequest::new("a", "meher")
        .from_http_response(audio_response(b"", &[]))
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn tts_error_status_is_an_api_error_not_audio() {
    let err = TtsRequest::new("a", "meher")
        .from_http_response(json_response(
            400,
            r#"{"error":"InvalidRequest","message":"The 'text' field is required."}"#,
        ))
        .unwrap_err();
    assert_eq!(err.api().unwrap().status(), 400);
}

// ---------------------------------------------------------------------------
// STT
// ---------------------------------------------------------------------------

fn transcribe(body: &str) -> Transcription {
    TranscribeRequest::from_bytes(Bytes::from_static(b"RIFF"), SttLanguage::En)
        .from_http_response(json_response(200, body))
        .unwrap()
}

fn transcribe_legacy(body: &str) -> Transcription {
    LegacyTranscribeRequest::from_url("https://example.com/a.wav")
        .from_http_response(json_response(200, body))
        .unwrap()
}

const PULSE_DEFAULT: &str = r#"{
  "status": "success",
  "transcription": "Hello, how are you doing today? This is a word timestamp test.",
  "words": [],
  "utterances": [],
  "metadata": {"duration": 5.28, "fileSize": 465740}
}"#;

const PULSE_FULL: &str = r#"{
  "status": "success",
  "transcription": "Hello, how are you doing today? This is a word timestamp test.",
  "words": [
    {"start": 0.16, "end": 1.12, "speaker": 0, "speaker_confidence": 1, "word": "Hello,", "confidence": 0.9975},
    {"start": 1.12, "end": 1.36, "speaker": 0, "speaker_confidence": 1, "word": "how", "confidence": 0.6402}
  ],
  "utterances": [
    {"start": 0.16, "end": 2.88, "speaker": 0, "text": "Hello, how are you doing today?"}
  ],
  "metadata": {"duration": 5.28, "fileSize": 465740}
}"#;

const PULSE_PRO: &str = r#"{
  "status": "success",
  "transcription": "Hello. How are you doing today? This is a word timestamp test.",
  "words": [
    {"word": "Hello.", "start": 0.24, "end": 1.2, "confidence": 0.9626},
    {"word": "How", "start": 1.2, "end": 1.28, "confidence": 0.9929}
  ],
  "language": "en",
  "metadata": {"duration": 5.28, "processing_time_ms": 172.11, "rtfx": 30.7, "num_chunks": 1},
  "totalBytes": 465740,
  "request_id": "36e977cf-d027-4fe2-b9ae-733d4f26c239"
}"#;

#[test]
fn stt_pulse_default_example() {
    let t = transcribe(PULSE_DEFAULT);
    assert_eq!(t.status, "success");
    assert!(!t.is_processing());
    assert_eq!(
        t.transcription,
        "Hello, how are you doing today? This is a word timestamp test."
    );
    assert!(t.words.is_empty());
    assert!(t.utterances.is_empty());
    let metadata = t.metadata.unwrap();
    assert_eq!(metadata.duration, Some(5.28));
    assert_eq!(metadata.file_size, Some(465740));
    assert_eq!(t.language, None);
    assert_eq!(t.request_id, None);
    assert_eq!(t.total_bytes, None);
}

#[test]
fn stt_pulse_full_example_with_integer_speakers() {
    let t = transcribe(PULSE_FULL);
    assert_eq!(t.words.len(), 2);
    let hello = &t.words[0];
    assert_eq!(hello.word, "Hello,");
    assert_eq!((hello.start, hello.end), (0.16, 1.12));
    assert_eq!(hello.confidence, Some(0.9975));
    assert_eq!(hello.speaker, Some(0));
    assert_eq!(hello.speaker_confidence, Some(1.0));
    assert_eq!(t.words[1].word, "how");
    assert_eq!(t.words[1].confidence, Some(0.6402));
    assert_eq!(t.utterances.len(), 1);
    let utterance = &t.utterances[0];
    assert_eq!(utterance.text, "Hello, how are you doing today?");
    assert_eq!((utterance.start, utterance.end), (0.16, 2.88));
    assert_eq!(utterance.speaker, Some(0));
}

#[test]
fn stt_pulse_pro_example() {
    let t = transcribe(PULSE_PRO);
    assert_eq!(
        t.transcription,
        "Hello. How are you doing today? This is a word timestamp test."
    );
    assert_eq!(t.words.len(), 2);
    assert_eq!(t.words[0].word, "Hello.");
    assert_eq!(t.words[0].speaker, None);
    assert_eq!(t.words[0].speaker_confidence, None);
    assert!(t.utterances.is_empty());
    assert_eq!(t.language.as_deref(), Some("en"));
    assert_eq!(t.total_bytes, Some(465740));
    assert_eq!(
        t.request_id.as_deref(),
        Some("36e977cf-d027-4fe2-b9ae-733d4f26c239")
    );
    let metadata = t.metadata.unwrap();
    assert_eq!(metadata.duration, Some(5.28));
    assert_eq!(metadata.processing_time_ms, Some(172.11));
    assert_eq!(metadata.rtfx, Some(30.7));
    assert_eq!(metadata.num_chunks, Some(1));
    assert_eq!(metadata.file_size, None);
}

#[test]
fn stt_processing_answer_of_a_webhook_request() {
    let t = transcribe(
        r#"{"status": "processing", "request_id": "f3a1c2e0-09c3-43e2-8d8e-cb1f3b1b8f7d"}"#,
    );
    assert!(t.is_processing());
    assert_eq!(
        t.request_id.as_deref(),
        Some("f3a1c2e0-09c3-43e2-8d8e-cb1f3b1b8f7d")
    );
    assert!(t.transcription.is_empty());
    assert!(t.words.is_empty());
    assert_eq!(t.metadata, None);
}

#[test]
fn stt_legacy_seed_answer_is_a_bare_transcription() {
    let t = transcribe_legacy(
        r#"{
 "transcription": "This is a sample audio file for testing speech to text transcription with the Pulse API."
}"#,
    );
    assert_eq!(
        t.transcription,
        "This is a sample audio file for testing speech to text transcription with the Pulse API."
    );
    assert_eq!(t.status, "");
    assert!(!t.is_processing());
    assert_eq!(t.metadata, None);
}

#[test]
fn stt_legacy_audio_length_and_filename() {
    let t = transcribe_legacy(
        r#"{"status":"success","transcription":"hi","words":[],"utterances":[],
            "audio_length":3.52,"metadata":{"duration":3.52,"fileSize":112684,"filename":"audio.wav"}}"#,
    );
    assert_eq!(t.audio_length, Some(3.52));
    let metadata = t.metadata.unwrap();
    assert_eq!(metadata.filename.as_deref(), Some("audio.wav"));
    assert_eq!(metadata.file_size, Some(112684));
}

#[test]
fn stt_string_speakers_are_numbers() {
    let t = transcribe(
        r#"{"status":"success","transcription":"a b","words":[
            {"word":"a","start":0,"end":0.5,"speaker":"speaker_1","speaker_confidence":0.9},
            {"word":"b","start":0.5,"end":1,"speaker":"3"},
            {"word":"c","start":1,"end":2,"speaker":"speaker_x"},
            {"word":"d","start":2,"end":3,"speaker":2.0},
            {"word":"e","start":3,"end":4,"speaker":-1},
            {"word":"f","start":4,"end":5,"speaker":null}],
           "utterances":[{"text":"a b","start":0,"end":1,"speaker":"speaker_0"}]}"#,
    );
    let speakers: Vec<Option<u32>> = t.words.iter().map(|w| w.speaker).collect();
    assert_eq!(speakers, [Some(1), Some(3), None, Some(2), None, None]);
    assert_eq!(t.utterances[0].speaker, Some(0));
}

#[test]
fn stt_emotions_and_gender() {
    let t = transcribe(
        r#"{"status":"success","transcription":"x","words":[],"utterances":[],
            "metadata":{"duration":1.0,"fileSize":10},
            "gender":"female",
            "emotions":{"happiness":0.8,"sadness":0.05,"disgust":0.0,"fear":0.1,"anger":0}}"#,
    );
    assert_eq!(t.gender.as_deref(), Some("female"));
    let emotions = t.emotions.unwrap();
    assert_eq!(emotions.len(), 5);
    assert_eq!(emotions["happiness"], 0.8);
    assert_eq!(emotions["anger"], 0.0);
    // The unified spec's open map with other labels.
    let open = transcribe(
        r#"{"status":"success","transcription":"x","emotions":{"neutral":0.7,"happy":0.2,"calm":0.1}}"#,
    );
    assert_eq!(open.emotions.unwrap()["calm"], 0.1);
}

#[test]
fn stt_unknown_fields_are_ignored() {
    let t = transcribe(
        r#"{"status":"success","transcription":"x","future_field":{"a":[1,2]},
            "words":[{"word":"x","start":0,"end":1,"confidence":0.5,"new":"y"}],
            "metadata":{"duration":1,"fileSize":2,"codec":"opus"},
            "redacted_entities":["[FIRSTNAME_1]"],"webhook_extra":"k:v"}"#,
    );
    assert_eq!(t.transcription, "x");
    assert_eq!(t.words.len(), 1);
    assert_eq!(t.metadata.unwrap().duration, Some(1.0));
}

#[test]
fn stt_body_that_is_not_a_transcription_is_a_decode_error() {
    for body in [
        "",
        "not json",
        "[]",
        r#"{"transcription": 5}"#,
        "<html></html>",
    ] {
        let err = TranscribeRequest::from_bytes(Bytes::from_static(b"x"), SttLanguage::En)
            .from_http_response(json_response(200, body))
            .unwrap_err();
        match err {
            Error::Decode { what, .. } => assert_eq!(what, "transcription response"),
            other => panic!("{body:?}: expected a decode error, got {other:?}"),
        }
    }
}

#[test]
fn stt_error_status_is_an_api_error() {
    let err = LegacyTranscribeRequest::from_url("https://example.com/a.wav")
        .from_http_response(json_response(500, r#"{"error":"Internal server error"}"#))
        .unwrap_err();
    assert_eq!(err.api().unwrap().message(), "Internal server error");
}

// ---------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------

const HEALTHY: &str = r#"{"status":"ok","mongo":{"status":"connected"},"redis":{"status":"connected"},"rabbitmq":{"status":"connected"}}"#;

#[test]
fn health_200_is_healthy_with_every_service() {
    let status = Health
        .from_http_response(json_response(200, HEALTHY))
        .unwrap();
    assert!(status.healthy);
    assert_eq!(status.status, "ok");
    let services: Vec<(&str, &str)> = status
        .services
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        services,
        [
            ("mongo", "connected"),
            ("rabbitmq", "connected"),
            ("redis", "connected")
        ]
    );
}

#[test]
fn health_503_is_a_report_not_an_error() {
    let status = Health
        .from_http_response(json_response(
            503,
            r#"{"status":"error","mongo":{"status":"connected"},"redis":{"status":"disconnected"},"rabbitmq":{"status":"connected"}}"#,
        ))
        .unwrap();
    assert!(!status.healthy);
    assert_eq!(status.status, "error");
    assert_eq!(status.services["redis"], "disconnected");
    // Even a 503 that says "ok" is not healthy.
    let odd = Health
        .from_http_response(json_response(503, HEALTHY))
        .unwrap();
    assert!(!odd.healthy);
}

#[test]
fn health_other_failures_are_errors() {
    let err = Health
        .from_http_response(json_response(500, r#"{"error":"Internal server error"}"#))
        .unwrap_err();
    assert_eq!(err.api().unwrap().status(), 500);
    let err = Health
        .from_http_response(response(
            503,
            &[("content-type", "text/html")],
            b"<h1>503</h1>",
        ))
        .unwrap_err();
    assert_eq!(err.api().unwrap().status(), 503);
    let err = Health
        .from_http_response(response(200, &[], b"OK"))
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}
