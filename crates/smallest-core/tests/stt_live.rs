//! Live STT over WebSocket: query parameters, validation, and session transcripts with
//! a hand-advanced clock (API.md §4.2, §4.3, §12.5). No test sleeps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use smallest_core::Error;
use smallest_core::stt::{SttLanguage, SttModel};
use smallest_core::stt_live::{
    CloseOutcome, STT_LIVE_SAMPLE_RATES, SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveRoute,
    SttLiveSession, Transcript,
};
use smallest_core::ws::{CloseFrame, WsMessage};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn en() -> SttLiveConfig {
    SttLiveConfig::new(SttLanguage::En)
}

fn session(config: SttLiveConfig, t0: Instant) -> SttLiveSession {
    SttLiveSession::new(config, t0).unwrap()
}

fn outgoing(s: &mut SttLiveSession) -> Vec<WsMessage> {
    std::iter::from_fn(|| s.poll_outgoing()).collect()
}

fn events(s: &mut SttLiveSession) -> Vec<SttLiveEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn text(s: &str) -> WsMessage {
    WsMessage::Text(s.to_owned())
}

fn close(code: u16) -> WsMessage {
    WsMessage::Close(Some(CloseFrame::new(code, "")))
}

fn transcript(event: SttLiveEvent) -> Transcript {
    match event {
        SttLiveEvent::Transcript(t) => t,
        other => panic!("expected a transcript, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Query string and validation
// ---------------------------------------------------------------------------

#[test]
fn query_has_every_parameter_in_a_fixed_order() {
    let live = en()
        .sample_rate(48000)
        .encoding(SttEncoding::OggOpus)
        .word_timestamps(false)
        .sentence_timestamps(true)
        .diarize(false)
        .vad_events(true)
        .vad(true)
        .endpointing(true)
        .eou_timeout_ms(100)
        .format(false)
        .punctuate(true)
        .capitalize(true)
        .itn_normalize(false)
        .finalize_on_words(true)
        .max_words(1)
        .redact_pii(false)
        .redact_pci(true)
        .full_transcript(false)
        .keyword("Dr. Smith", None)
        .keyword("O'Neil", Some(0.0))
        .external_session_id("A.b-c_9");
    assert_eq!(
        live.query(),
        "model=pulse&language=en&sample_rate=48000&encoding=ogg_opus&word_timestamps=false\
         &sentence_timestamps=true&diarize=false&vad_events=true&vad=true&endpointing=true\
         &eou_timeout_ms=100&format=false&punctuate=true&capitalize=true&itn_normalize=false\
         &finalize_on_words=true&max_words=1&redact_pii=false&redact_pci=true\
         &full_transcript=false&keywords=Dr.%20Smith%2CO%27Neil%3A0&external_session_id=A.b-c_9"
    );
    assert_eq!(live.keywords_param(), "Dr. Smith,O'Neil:0");
    assert_eq!(
        live.path_and_query(),
        format!("/waves/v1/stt/live?{}", live.query())
    );
}

#[test]
fn defaults_send_only_what_the_server_cannot_guess() {
    assert_eq!(
        en().query(),
        "model=pulse&language=en&sample_rate=16000&encoding=linear16"
    );
    for (language, code) in [
        (SttLanguage::NorthIndic, "north_indic"),
        (SttLanguage::MultiAsian, "multi-asian"),
        (SttLanguage::MultiSouthIndic, "multi-south-indic"),
        (SttLanguage::Yue, "yue"),
    ] {
        let live = SttLiveConfig::new(language);
        live.validate().unwrap();
        assert!(live.query().contains(&format!("&language={code}&")));
    }
    for hz in STT_LIVE_SAMPLE_RATES {
        en().sample_rate(hz).validate().unwrap();
    }
    for encoding in SttEncoding::ALL {
        let live = en().encoding(encoding.clone());
        live.validate().unwrap();
        assert!(
            live.query()
                .ends_with(&format!("encoding={}", encoding.as_str()))
        );
    }
}

#[test]
fn the_legacy_route_has_no_model_and_defaults_word_timestamps_on() {
    let legacy = SttLiveConfig::legacy(SttLanguage::Hi);
    assert_eq!(legacy.route, SttLiveRoute::LegacyGetText);
    assert_eq!(
        legacy.path_and_query(),
        "/waves/v1/pulse/get_text?language=hi&sample_rate=16000&encoding=linear16"
    );
    assert!(legacy.effective_word_timestamps());
    assert!(
        !legacy
            .clone()
            .word_timestamps(false)
            .effective_word_timestamps()
    );
    assert!(!en().effective_word_timestamps());
    // No way to reach Pulse Pro there either.
    assert_eq!(
        legacy
            .model(SttModel::PulsePro)
            .validate()
            .unwrap_err()
            .field(),
        "model"
    );
}

#[test]
fn validation_names_the_field() {
    let cases: Vec<(SttLiveConfig, &str, &str)> = vec![
        (
            en().model(SttModel::PulsePro),
            "model",
            "POST /waves/v1/stt/?model=pulse-pro",
        ),
        (en().model(SttModel::Other(" ".into())), "model", "pulse"),
        (
            SttLiveConfig::new(SttLanguage::MultiEu),
            "language",
            "north_indic",
        ),
        (
            SttLiveConfig::new(SttLanguage::Uk),
            "language",
            "multi-south-indic",
        ),
        (
            SttLiveConfig::new(SttLanguage::Other(String::new())),
            "language",
            "en",
        ),
        (en().sample_rate(32000), "sample_rate", "22050"),
        (
            en().encoding(SttEncoding::Other("".into())),
            "encoding",
            "ogg_opus",
        ),
        (en().eou_timeout_ms(99), "eou_timeout_ms", "100 to 10000"),
        (
            en().eou_timeout_ms(10_001),
            "eou_timeout_ms",
            "100 to 10000",
        ),
        (en().max_words(0), "max_words", "at least 1"),
        (en().keyword("a,b", None), "keywords", ","),
        (en().keyword("a:b", Some(1.0)), "keywords", ":"),
        (en().keyword("  ", None), "keywords", "non-empty"),
        (en().keyword("word", Some(-1.0)), "keywords", "≥ 0"),
        (
            en().keyword("word", Some(f32::INFINITY)),
            "keywords",
            "finite",
        ),
        (
            en().external_session_id("no spaces"),
            "external_session_id",
            "a-z",
        ),
        (
            en().external_session_id("x".repeat(129)),
            "external_session_id",
            "1–128",
        ),
    ];
    for (config, field, allowed) in cases {
        let err = config.validate().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.allowed().contains(allowed), "{err}");
        let err = SttLiveSession::new(config, Instant::now()).unwrap_err();
        assert_eq!(err.validation().unwrap().field(), field);
    }
    let mut many = en();
    many.keywords = (0..10_001).map(|i| (format!("w{i}"), None)).collect();
    assert_eq!(many.validate().unwrap_err().field(), "keywords");
    many.keywords.pop();
    many.validate().unwrap();
    // Bounds and unknown future values are accepted.
    en().eou_timeout_ms(100).validate().unwrap();
    en().eou_timeout_ms(10_000).validate().unwrap();
    en().model(SttModel::Other("pulse-2".into()))
        .validate()
        .unwrap();
    SttLiveConfig::new(SttLanguage::Other("th".into()))
        .validate()
        .unwrap();
}

// ---------------------------------------------------------------------------
// Outgoing frames
// ---------------------------------------------------------------------------

#[test]
fn audio_is_split_into_4096_byte_binary_frames_without_copying() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    let audio = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    s.send_audio(audio.clone(), t0).unwrap();
    s.send_audio(Vec::new(), t0).unwrap();
    let frames = outgoing(&mut s);
    let lens: Vec<usize> = frames
        .iter()
        .map(|f| match f {
            WsMessage::Binary(b) => b.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lens, [4096, 4096, 1808]);
    let joined: Vec<u8> = frames
        .into_iter()
        .flat_map(|f| match f {
            WsMessage::Binary(b) => b.to_vec(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(joined, audio);

    // The frame length is the caller's choice.
    s.set_max_frame_len(Some(3));
    s.send_audio(&b"abcdefg"[..], t0).unwrap();
    assert_eq!(
        outgoing(&mut s),
        [
            WsMessage::Binary(Bytes::from_static(b"abc")),
            WsMessage::Binary(Bytes::from_static(b"def")),
            WsMessage::Binary(Bytes::from_static(b"g")),
        ]
    );
    s.set_max_frame_len(None);
    s.send_audio(vec![0u8; 9000], t0).unwrap();
    assert_eq!(outgoing(&mut s).len(), 1);
}

#[test]
fn opus_packets_are_never_split() {
    let t0 = Instant::now();
    let mut s = session(en().encoding(SttEncoding::Opus), t0);
    s.send_audio(vec![1u8; 5000], t0).unwrap();
    assert_eq!(
        outgoing(&mut s),
        [WsMessage::Binary(Bytes::from(vec![1u8; 5000]))]
    );
}

#[test]
fn control_messages_golden() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    s.send_audio(vec![0u8; 10], t0).unwrap();
    s.finalize(t0).unwrap();
    s.send_audio(vec![0u8; 10], t0).unwrap();
    s.close_stream(t0).unwrap();
    assert_eq!(
        outgoing(&mut s),
        [
            WsMessage::Binary(Bytes::from(vec![0u8; 10])),
            text(r#"{"type":"finalize"}"#),
            WsMessage::Binary(Bytes::from(vec![0u8; 10])),
            text(r#"{"type":"close_stream"}"#),
        ]
    );
}

// ---------------------------------------------------------------------------
// Session transcripts
// ---------------------------------------------------------------------------

#[test]
fn interims_then_finalize_gives_a_final_from_finalize() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    s.send_audio(vec![0u8; 4096], t0).unwrap();
    s.handle_message(
        text(r#"{"type": "transcription", "status": "success", "transcription": "Hi, how are you", "is_final": false, "is_last": false, "session_id": "4b5ae9cb-1234-5678-9abc-def012345678"}"#),
        t0 + Duration::from_millis(80),
    )
    .unwrap();
    s.finalize(t0 + Duration::from_millis(100)).unwrap();
    s.handle_message(
        text(r#"{"type":"transcription","status":"success","transcription":"Hi, how are you doing?","transcript":"Hi, how are you doing?","is_final":true,"is_last":false,"from_finalize":true,"session_id":"4b5ae9cb-1234-5678-9abc-def012345678","language":"en","languages":["en"]}"#),
        t0 + Duration::from_millis(300),
    )
    .unwrap();
    let ev = events(&mut s);
    let interim = transcript(ev[0].clone());
    assert_eq!(interim.text, "Hi, how are you");
    assert!(!interim.is_final && !interim.is_last && !interim.from_finalize);
    assert_eq!(
        interim.session_id.as_deref(),
        Some("4b5ae9cb-1234-5678-9abc-def012345678")
    );
    assert_eq!(interim.language, None);
    let last = transcript(ev[1].clone());
    assert_eq!(last.text, "Hi, how are you doing?");
    assert!(last.is_final && last.from_finalize && !last.is_last);
    assert_eq!(last.language, Some(SttLanguage::En));
    assert_eq!(last.languages, [SttLanguage::En]);
    // The stream stays open after a finalize.
    s.send_audio(vec![0u8; 2], t0 + secs(1)).unwrap();
    assert!(!s.is_finished());
}

#[test]
fn close_stream_then_is_last_then_close_1000() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    s.send_audio(vec![0u8; 100], t0).unwrap();
    s.close_stream(t0 + secs(1)).unwrap();
    // No audio after close_stream.
    let err = s.send_audio(vec![0u8; 1], t0 + secs(1)).unwrap_err();
    assert!(matches!(err, Error::Stream { .. }), "{err:?}");
    assert!(err.to_string().contains("close_stream"), "{err}");
    assert!(s.finalize(t0 + secs(1)).is_err());
    assert!(s.close_stream(t0 + secs(1)).is_err());
    s.handle_message(
        text(r#"{"type":"transcription","status":"success","transcription":"Bye.","transcript":"Bye.","is_final":true,"is_last":true,"session_id":"s1"}"#),
        t0 + secs(2),
    )
    .unwrap();
    assert!(s.is_finished());
    assert!(!s.is_closed());
    s.handle_message(close(1000), t0 + secs(2)).unwrap();
    let ev = events(&mut s);
    let last = transcript(ev[0].clone());
    assert!(last.is_final && last.is_last);
    assert_eq!(
        ev[1],
        SttLiveEvent::Closed {
            code: Some(1000),
            reason: String::new(),
            outcome: CloseOutcome::Normal,
            after_last: true,
        }
    );
    assert!(s.is_closed());
    let err = s.send_audio(vec![0u8; 1], t0 + secs(3)).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert!(s.close(t0 + secs(3)).is_err());
}

#[test]
fn over_the_concurrency_limit_closes_with_1008() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    s.send_audio(vec![0u8; 100], t0).unwrap();
    s.handle_message(
        WsMessage::Close(Some(CloseFrame::new(1008, "too many sessions"))),
        t0,
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        [SttLiveEvent::Closed {
            code: Some(1008),
            reason: "too many sessions".into(),
            outcome: CloseOutcome::PolicyViolation,
            after_last: false,
        }]
    );
    assert_eq!(s.poll_outgoing(), None, "queued audio is dropped");
    assert!(s.send_audio(vec![0u8; 1], t0).is_err());
}

#[test]
fn close_outcomes_are_typed() {
    assert_eq!(CloseOutcome::from_code(Some(1000)), CloseOutcome::Normal);
    assert_eq!(
        CloseOutcome::from_code(Some(1008)),
        CloseOutcome::PolicyViolation
    );
    assert_eq!(
        CloseOutcome::from_code(Some(1011)),
        CloseOutcome::Other(1011)
    );
    assert_eq!(CloseOutcome::from_code(None), CloseOutcome::NoStatus);
    // A silent close with no transcript at all (East Asian language on the India host).
    let t0 = Instant::now();
    let mut s = session(SttLiveConfig::new(SttLanguage::Ja), t0);
    s.send_audio(vec![0u8; 10], t0).unwrap();
    s.handle_message(WsMessage::Close(None), t0).unwrap();
    assert_eq!(
        events(&mut s),
        [SttLiveEvent::Closed {
            code: None,
            reason: String::new(),
            outcome: CloseOutcome::NoStatus,
            after_last: false,
        }]
    );
}

#[test]
fn client_close_abandons_the_stream() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    s.send_audio(vec![0u8; 10], t0).unwrap();
    s.close(t0).unwrap();
    assert_eq!(
        outgoing(&mut s).last(),
        Some(&WsMessage::Close(Some(CloseFrame::new(1000, ""))))
    );
    assert!(s.send_audio(vec![0u8; 1], t0).is_err());
    s.handle_message(close(1000), t0).unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(SttLiveEvent::Closed {
            outcome: CloseOutcome::Normal,
            after_last: false,
            ..
        })
    ));
}

#[test]
fn error_messages_of_every_shape() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    for raw in [
        r#"{ "type": "error", "status": "error", "message": "Audio decode failed" }"#,
        r#"{ "type": "error", "error_code": "LANGUAGE_NOT_ENABLED_IN_REGION", "message": "Language 'multi-south-indic' has not been enabled in this region. Please contact support to request access." }"#,
        r#"{"status":"error","error_code":"LANGUAGE_NOT_ENABLED_IN_REGION","message":"Language 'multi-asian' has not been enabled in this region. Please contact support to request access.","language":"multi-asian","region":"ap-south-1"}"#,
        r#"{"type":"error","error":{"message":"nested","code":"E42"}}"#,
    ] {
        s.handle_message(text(raw), t0).unwrap();
    }
    assert_eq!(
        events(&mut s),
        [
            SttLiveEvent::Error {
                code: None,
                message: "Audio decode failed".into()
            },
            SttLiveEvent::Error {
                code: Some("LANGUAGE_NOT_ENABLED_IN_REGION".into()),
                message: "Language 'multi-south-indic' has not been enabled in this region. \
                          Please contact support to request access."
                    .into()
            },
            SttLiveEvent::Error {
                code: Some("LANGUAGE_NOT_ENABLED_IN_REGION".into()),
                message: "Language 'multi-asian' has not been enabled in this region. Please \
                          contact support to request access."
                    .into()
            },
            SttLiveEvent::Error {
                code: Some("E42".into()),
                message: "nested".into()
            },
        ]
    );
    // An error does not end the stream by itself.
    s.send_audio(vec![0u8; 1], t0).unwrap();
}

#[test]
fn vad_events() {
    let t0 = Instant::now();
    let mut s = session(en().vad_events(true), t0);
    s.handle_message(
        text(r#"{ "type": "speech_started", "session_id": "a1b2c3d4", "timestamp": 1.84 }"#),
        t0,
    )
    .unwrap();
    s.handle_message(
        text(r#"{ "type": "speech_ended",   "session_id": "a1b2c3d4", "timestamp": 4.52 }"#),
        t0,
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        [
            SttLiveEvent::SpeechStarted { timestamp: 1.84 },
            SttLiveEvent::SpeechEnded { timestamp: 4.52 },
        ]
    );
}

#[test]
fn unknown_message_types_are_events_not_errors() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    for raw in [
        r#"{"type":"utterance_end","last_word_end":3.2}"#,
        r#"{"type":"metadata","request_id":"x"}"#,
        r#"{"session_id":"s"}"#,
        r#"42"#,
        r#"null"#,
    ] {
        s.handle_message(text(raw), t0).unwrap();
        assert_eq!(
            s.poll_event(),
            Some(SttLiveEvent::Unknown { raw: raw.into() })
        );
    }
}

#[test]
fn a_rich_final_parses_words_utterances_and_redactions() {
    let t0 = Instant::now();
    let mut s = session(en().word_timestamps(true).diarize(true), t0);
    // The legacy example of §12.5 (no `type`).
    s.handle_message(
        text(r#"{"session_id": "session_id_12346abcde", "transcript": "I paid using my card [CREDITCARDCVV_1] with expiry [TIME_2].", "is_final": true, "is_last": true, "language": "en", "languages": ["en"],
 "words": [{"word": "I", "start": 0.0, "end": 0.2, "confidence": 0.98, "speaker": 0, "speaker_confidence": 0.95},
           {"word": "[creditcardcvv_1]", "start": 1.3, "end": 1.8, "confidence": 0.99, "speaker": 0, "speaker_confidence": 0.85}],
 "utterances": [{"text": "I paid using my card [CREDITCARDCVV_1] with expiry [TIME_2].", "start": 2.2, "end": 5.0, "speaker": 0}],
 "redacted_entities": ["[FIRSTNAME_1]", "[FIRSTNAME_2]", "[CREDITCARDCVV_1]", "[TIME_2]"]}"#),
        t0,
    )
    .unwrap();
    let t = transcript(s.poll_event().unwrap());
    assert_eq!(
        t.text,
        "I paid using my card [CREDITCARDCVV_1] with expiry [TIME_2]."
    );
    assert!(t.is_final && t.is_last && !t.from_finalize);
    assert_eq!(t.words.len(), 2);
    assert_eq!(t.words[1].word, "[creditcardcvv_1]");
    assert_eq!(t.words[1].speaker, Some(0));
    assert_eq!(t.words[1].speaker_confidence, Some(0.85));
    assert_eq!((t.words[0].start, t.words[0].end), (0.0, 0.2));
    assert_eq!(t.utterances.len(), 1);
    assert_eq!(t.utterances[0].speaker, Some(0));
    assert_eq!(t.redacted_entities.len(), 4);
    assert!(s.is_finished());
}

#[test]
fn string_speakers_nulls_and_full_transcript() {
    let t0 = Instant::now();
    let mut s = session(en().full_transcript(true), t0);
    s.handle_message(
        text(r#"{"type":"transcription","transcript":"b","transcription":"b","is_final":true,"is_last":null,"from_finalize":null,"language":null,"languages":null,"full_transcript":"a b","words":[{"word":"b","start":0.5,"end":0.7,"speaker":"speaker_1"}],"utterances":null,"redacted_entities":null}"#),
        t0,
    )
    .unwrap();
    let t = transcript(s.poll_event().unwrap());
    assert_eq!(t.text, "b");
    assert_eq!(t.full_transcript.as_deref(), Some("a b"));
    assert_eq!(t.words[0].speaker, Some(1));
    assert!(t.is_final && !t.is_last);
    assert_eq!(t.language, None);
    assert!(t.languages.is_empty() && t.utterances.is_empty());
    // Only `transcription` (the unified schema's field).
    s.handle_message(
        text(r#"{"type":"transcription","transcription":"only this","is_final":false}"#),
        t0,
    )
    .unwrap();
    assert_eq!(transcript(s.poll_event().unwrap()).text, "only this");
}

#[test]
fn malformed_messages_are_decode_errors_and_the_session_goes_on() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    for frame in [
        text("{"),
        text(r#"{"type":"transcription","is_final":"yes"}"#),
        text(r#"{"type":"speech_started"}"#),
        WsMessage::Binary(Bytes::from_static(b"RIFF")),
    ] {
        let err = s.handle_message(frame, t0).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }
    s.handle_message(WsMessage::Ping(Bytes::from_static(b"x")), t0)
        .unwrap();
    s.handle_message(WsMessage::Pong(Bytes::new()), t0).unwrap();
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_outgoing(), None);
    s.send_audio(vec![0u8; 1], t0).unwrap();
}

// ---------------------------------------------------------------------------
// Time: keepalive
// ---------------------------------------------------------------------------

#[test]
fn no_timer_without_keepalive() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + secs(3600));
    assert_eq!(s.poll_outgoing(), None);
}

#[test]
fn keepalive_pings_at_the_interval_until_the_stream_finishes() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    s.set_keepalive(Some(secs(5)));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(5)));
    s.handle_timeout(t0 + secs(4));
    assert_eq!(s.poll_outgoing(), None);
    s.handle_timeout(t0 + secs(5));
    assert_eq!(s.poll_outgoing(), Some(WsMessage::Ping(Bytes::new())));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(10)));
    // Audio is traffic: the ping moves.
    s.send_audio(vec![0u8; 4], t0 + secs(8)).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + secs(13)));
    // A late wake-up sends one ping, not a burst.
    s.handle_timeout(t0 + secs(30));
    assert_eq!(
        outgoing(&mut s),
        [
            WsMessage::Binary(Bytes::from(vec![0u8; 4])),
            WsMessage::Ping(Bytes::new())
        ]
    );
    assert_eq!(s.poll_timeout(), Some(t0 + secs(35)));
    // Still pinging while waiting for is_last …
    s.close_stream(t0 + secs(31)).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + secs(36)));
    // … but not after it.
    s.handle_message(
        text(r#"{"type":"transcription","transcript":"","is_final":true,"is_last":true}"#),
        t0 + secs(32),
    )
    .unwrap();
    assert_eq!(s.poll_timeout(), None);
    s.set_keepalive(Some(Duration::MAX));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_huge_or_zero_interval_is_harmless() {
    let t0 = Instant::now();
    let mut s = session(en(), t0);
    s.set_keepalive(Some(Duration::MAX));
    assert_eq!(s.poll_timeout(), None);
    s.set_keepalive(Some(Duration::ZERO));
    assert_eq!(s.poll_timeout(), None);
}
