//! Property tests: the live session machines never panic on anything a server (or a
//! broken proxy) could send, and keep their invariants while doing so.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use smallest_core::stt::SttLanguage;
use smallest_core::stt_live::{SttLiveConfig, SttLiveEvent, SttLiveSession};
use smallest_core::tts_live::{TtsLiveConfig, TtsLiveEvent, TtsLiveSession};
use smallest_core::ws::{CloseFrame, WsMessage};

/// Any JSON value, a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        // Base64-looking strings, some valid, some not.
        "[A-Za-z0-9+/=]{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys the parsers look at, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "status",
            "type",
            "data",
            "audio",
            "id",
            "word",
            "start",
            "end",
            "message",
            "error",
            "error_code",
            "code",
            "request_id",
            "session_id",
            "transcript",
            "transcription",
            "is_final",
            "is_last",
            "from_finalize",
            "language",
            "languages",
            "words",
            "utterances",
            "speaker",
            "timestamp",
            "redacted_entities",
            "full_transcript",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

/// A frame whose discriminator is one the parsers know, with arbitrary fields.
fn arb_known_frame() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            ("status", "chunk"),
            ("status", "word_timestamp"),
            ("status", "complete"),
            ("status", "error"),
            ("type", "transcription"),
            ("type", "speech_started"),
            ("type", "speech_ended"),
            ("type", "error"),
        ]),
        prop::collection::vec((key(), arb_json()), 0..6),
        arb_json(),
    )
        .prop_map(|((k, v), fields, data)| {
            let mut obj: Map<String, Value> = fields.into_iter().collect();
            obj.insert("data".into(), data);
            obj.insert(k.into(), Value::String(v.into()));
            Value::Object(obj).to_string()
        })
}

fn arb_message() -> impl Strategy<Value = WsMessage> {
    prop_oneof![
        any::<String>().prop_map(WsMessage::Text),
        arb_json().prop_map(|v| WsMessage::Text(v.to_string())),
        arb_known_frame().prop_map(WsMessage::Text),
        arb_known_frame().prop_map(WsMessage::Text),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| WsMessage::Binary(Bytes::from(b))),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| WsMessage::Ping(Bytes::from(b))),
        Just(WsMessage::Pong(Bytes::new())),
        (any::<u16>(), ".{0,8}")
            .prop_map(|(code, reason)| WsMessage::Close(Some(CloseFrame::new(code, reason)))),
        Just(WsMessage::Close(None)),
    ]
}

/// What the user (or the clock) does between server messages.
#[derive(Clone, Debug)]
enum Step {
    Server(WsMessage),
    Text(String),
    Speak(String),
    Flush,
    Finish,
    Audio(Vec<u8>),
    Finalize,
    CloseStream,
    Close,
    Tick(u64),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => arb_message().prop_map(Step::Server),
        1 => ".{0,10}".prop_map(Step::Text),
        1 => ".{0,10}".prop_map(Step::Speak),
        1 => Just(Step::Flush),
        1 => Just(Step::Finish),
        1 => prop::collection::vec(any::<u8>(), 0..6000).prop_map(Step::Audio),
        1 => Just(Step::Finalize),
        1 => Just(Step::CloseStream),
        1 => Just(Step::Close),
        2 => (0u64..120_000).prop_map(Step::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tts_handle_message_never_panics(messages in prop::collection::vec(arb_message(), 0..24)) {
        let t0 = Instant::now();
        let mut s = TtsLiveSession::new(TtsLiveConfig::new("magnus"), t0).unwrap();
        s.speak("Hello.", t0).unwrap();
        for (i, m) in messages.into_iter().enumerate() {
            let _ = s.handle_message(m, t0 + Duration::from_millis(i as u64));
        }
        while s.poll_event().is_some() {}
        while s.poll_outgoing().is_some() {}
    }

    #[test]
    fn stt_handle_message_never_panics(messages in prop::collection::vec(arb_message(), 0..24)) {
        let t0 = Instant::now();
        let mut s = SttLiveSession::new(SttLiveConfig::new(SttLanguage::En), t0).unwrap();
        for (i, m) in messages.into_iter().enumerate() {
            let _ = s.handle_message(m, t0 + Duration::from_millis(i as u64));
        }
        while s.poll_event().is_some() {}
    }

    /// Any interleaving of user verbs, server frames and clock ticks: no panic, the
    /// timer never points into the past after `handle_timeout` (no busy loop), and
    /// after `Closed` nothing is sent and no second `Closed` appears.
    #[test]
    fn tts_random_sessions_keep_their_invariants(steps in prop::collection::vec(arb_step(), 0..40),
                                                  keepalive in prop::option::of(1u64..30)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut s = TtsLiveSession::new(TtsLiveConfig::new("magnus").timeout_secs(10), t0).unwrap();
        s.set_keepalive(keepalive.map(Duration::from_secs));
        let mut closed = 0;
        for step in steps {
            match step {
                Step::Server(m) => { let _ = s.handle_message(m, now); }
                Step::Text(t) => { let _ = s.send_text(&t, now); }
                Step::Speak(t) => { let _ = s.speak(&t, now); }
                Step::Flush => { let _ = s.flush(now); }
                Step::Finish => { let _ = s.finish_request(now); }
                Step::Close => { let _ = s.close(now); }
                Step::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    s.handle_timeout(now);
                    if let Some(t) = s.poll_timeout() {
                        prop_assert!(t > now, "timer {t:?} not after now {now:?}");
                    }
                }
                _ => {}
            }
            while let Some(e) = s.poll_event() {
                if matches!(e, TtsLiveEvent::Closed { .. }) { closed += 1; }
            }
            if s.is_closed() {
                prop_assert_eq!(s.poll_outgoing(), None);
                prop_assert_eq!(s.poll_timeout(), None);
            } else {
                while s.poll_outgoing().is_some() {}
            }
        }
        prop_assert!(closed <= 1);
        prop_assert_eq!(closed == 1, s.is_closed());
    }

    #[test]
    fn stt_random_sessions_keep_their_invariants(steps in prop::collection::vec(arb_step(), 0..40),
                                                  keepalive in prop::option::of(1u64..30)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut s = SttLiveSession::new(SttLiveConfig::new(SttLanguage::En), t0).unwrap();
        s.set_keepalive(keepalive.map(Duration::from_secs));
        let mut closed = 0;
        for step in steps {
            match step {
                Step::Server(m) => { let _ = s.handle_message(m, now); }
                Step::Audio(a) => {
                    let len = a.len();
                    if s.send_audio(a, now).is_ok() {
                        let mut sent = 0;
                        while let Some(m) = s.poll_outgoing() {
                            if let WsMessage::Binary(b) = m {
                                prop_assert!(b.len() <= 4096);
                                sent += b.len();
                            }
                        }
                        prop_assert_eq!(sent, len);
                    }
                }
                Step::Finalize => { let _ = s.finalize(now); }
                Step::CloseStream => { let _ = s.close_stream(now); }
                Step::Close => { let _ = s.close(now); }
                Step::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    s.handle_timeout(now);
                    if let Some(t) = s.poll_timeout() {
                        prop_assert!(t > now);
                    }
                }
                _ => {}
            }
            while let Some(e) = s.poll_event() {
                if matches!(e, SttLiveEvent::Closed { .. }) { closed += 1; }
            }
            if s.is_closed() {
                prop_assert_eq!(s.poll_outgoing(), None);
                prop_assert_eq!(s.poll_timeout(), None);
                prop_assert!(s.send_audio(vec![1u8], now).is_err());
            } else {
                while s.poll_outgoing().is_some() {}
            }
        }
        prop_assert!(closed <= 1);
        prop_assert_eq!(closed == 1, s.is_closed());
    }
}
