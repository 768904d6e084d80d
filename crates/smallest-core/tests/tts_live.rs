//! TTS over WebSocket: session transcripts with a hand-advanced clock (API.md §3.5,
//! §12.2). No test sleeps: `t0` is captured once and everything else is an offset.

use std::time::{Duration, Instant};

use bytes::Bytes;
use smallest_core::Error;
use smallest_core::tts::{Language, TtsModel};
use smallest_core::tts_live::{CloseReason, TtsLiveConfig, TtsLiveEvent, TtsLiveSession};
use smallest_core::ws::{CloseFrame, WsMessage};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The §12.2 request example's settings.
fn magnus() -> TtsLiveConfig {
    TtsLiveConfig::new("magnus")
        .sample_rate(24000)
        .language(Language::En)
        .speed(1.0)
}

fn session(config: TtsLiveConfig, t0: Instant) -> TtsLiveSession {
    TtsLiveSession::new(config, t0).unwrap()
}

fn outgoing(s: &mut TtsLiveSession) -> Vec<WsMessage> {
    std::iter::from_fn(|| s.poll_outgoing()).collect()
}

fn texts(s: &mut TtsLiveSession) -> Vec<String> {
    outgoing(s)
        .into_iter()
        .map(|m| match m {
            WsMessage::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        })
        .collect()
}

/// The events, audio positions left out (the timeline tests check them).
fn events(s: &mut TtsLiveSession) -> Vec<TtsLiveEvent> {
    std::iter::from_fn(|| s.poll_event())
        .map(|mut e| {
            if let TtsLiveEvent::Audio { position, .. } = &mut e {
                *position = Duration::ZERO;
            }
            e
        })
        .collect()
}

fn text(s: &str) -> WsMessage {
    WsMessage::Text(s.to_owned())
}

fn close(code: u16) -> WsMessage {
    WsMessage::Close(Some(CloseFrame::new(code, "")))
}

fn chunk(request_id: &str, audio_b64: &str) -> WsMessage {
    text(&format!(
        r#"{{"session_id":"ws_1","request_id":"{request_id}","status":"chunk","data":{{"audio":"{audio_b64}"}}}}"#
    ))
}

fn complete(request_id: &str) -> WsMessage {
    text(&format!(
        r#"{{"session_id":"ws_1","request_id":"{request_id}","status":"complete"}}"#
    ))
}

fn audio(index: u64, data: &[u8], sample_rate: u32) -> TtsLiveEvent {
    TtsLiveEvent::Audio {
        request_index: index,
        context: None,
        data: Bytes::copy_from_slice(data),
        sample_rate,
        position: Duration::ZERO,
    }
}

fn completed(index: u64, request_id: &str) -> TtsLiveEvent {
    TtsLiveEvent::Complete {
        context: None,
        request_index: index,
        session_id: Some("ws_1".into()),
        request_id: Some(request_id.into()),
    }
}

// ---------------------------------------------------------------------------
// Outgoing JSON (golden strings)
// ---------------------------------------------------------------------------

#[test]
fn pieces_flush_and_finish_golden() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    assert_eq!(s.send_text("Hello, ", t0).unwrap(), 0);
    assert_eq!(s.send_text("world.", t0).unwrap(), 0);
    assert_eq!(s.flush(t0).unwrap(), 0);
    assert_eq!(s.send_text(" Bye.", t0).unwrap(), 0);
    assert_eq!(s.finish_request(t0).unwrap(), 0);
    assert_eq!(
        texts(&mut s),
        [
            r#"{"text":"Hello, ","voice_id":"magnus","sample_rate":24000,"speed":1.0,"language":"en","continue":true,"flush":false}"#,
            r#"{"text":"world.","voice_id":"magnus","sample_rate":24000,"speed":1.0,"language":"en","continue":true,"flush":false}"#,
            r#"{"text":"","voice_id":"magnus","sample_rate":24000,"speed":1.0,"language":"en","continue":true,"flush":true}"#,
            r#"{"text":" Bye.","voice_id":"magnus","sample_rate":24000,"speed":1.0,"language":"en","continue":true,"flush":false}"#,
            r#"{"text":"","voice_id":"magnus","sample_rate":24000,"speed":1.0,"language":"en","continue":false,"flush":true}"#,
        ]
    );
    assert_eq!(s.open_requests(), 1);
}

#[test]
fn every_field_is_repeated_in_every_message_golden() {
    let t0 = Instant::now();
    let config = TtsLiveConfig::new("meher")
        .model(TtsModel::LightningV31Pro)
        .sample_rate(16000)
        .speed(1.25)
        .language(Language::Hi)
        .number_pronunciation_language(Language::En)
        .math_notation(true)
        .pronunciation_dict("dict_1")
        .pronunciation_dict("dict_2")
        .word_timestamps(true)
        .max_buffer_flush_ms(250)
        .complete_backoff_ms(1000)
        .timeout_secs(30)
        .session_id("my-session-123")
        .request_id("my-request-456")
        .expire_content(true);
    let mut s = session(config, t0);
    s.send_text("नमस्ते", t0).unwrap();
    s.finish_request(t0).unwrap();
    let full = |text: &str, more: bool, flush: bool| {
        format!(
            r#"{{"text":"{text}","voice_id":"meher","model":"lightning_v3.1_pro","sample_rate":16000,"speed":1.25,"language":"hi","number_pronunciation_language":"en","math_notation":true,"pronunciation_dicts":["dict_1","dict_2"],"session_id":"my-session-123","request_id":"my-request-456","word_timestamps":true,"max_buffer_flush_ms":250,"complete_backoff_ms":1000,"continue":{more},"flush":{flush}}}"#
        )
    };
    assert_eq!(
        texts(&mut s),
        [full("नमस्ते", true, false), full("", false, true)]
    );
}

#[test]
fn speak_is_a_whole_request_or_the_last_piece() {
    let t0 = Instant::now();
    let mut s = session(TtsLiveConfig::new("magnus"), t0);
    assert_eq!(s.speak("One shot.", t0).unwrap(), 0);
    assert_eq!(s.send_text("Two ", t0).unwrap(), 1);
    assert_eq!(s.speak("pieces.", t0).unwrap(), 1);
    assert_eq!(
        texts(&mut s),
        [
            r#"{"text":"One shot.","voice_id":"magnus","sample_rate":44100,"continue":false,"flush":true}"#,
            r#"{"text":"Two ","voice_id":"magnus","sample_rate":44100,"continue":true,"flush":false}"#,
            r#"{"text":"pieces.","voice_id":"magnus","sample_rate":44100,"continue":false,"flush":true}"#,
        ]
    );
    assert_eq!(s.open_requests(), 2);
}

#[test]
fn misuse_is_refused_locally_and_sends_nothing() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    // Nothing to flush or finish yet.
    let err = s.flush(t0).unwrap_err();
    assert_eq!(err.validation().unwrap().field(), "flush");
    let err = s.finish_request(t0).unwrap_err();
    assert_eq!(err.validation().unwrap().field(), "finish_request");
    let err = s.speak("   ", t0).unwrap_err();
    assert_eq!(err.validation().unwrap().field(), "text");
    // An empty piece sends nothing and opens nothing.
    assert_eq!(s.send_text("", t0).unwrap(), 0);
    assert_eq!(s.poll_outgoing(), None);
    assert_eq!(s.open_requests(), 0);
    // After a request is finished, flush needs a new one.
    s.speak("Hi.", t0).unwrap();
    assert!(s.flush(t0).is_err());
    assert_eq!(outgoing(&mut s).len(), 1);
}

#[test]
fn set_config_changes_the_next_messages_but_not_the_connection() {
    let t0 = Instant::now();
    let mut s = session(magnus().timeout_secs(5), t0);
    s.speak("First.", t0).unwrap();
    s.set_config(
        TtsLiveConfig::new("meher")
            .model(TtsModel::LightningV31Pro)
            .sample_rate(8000),
    )
    .unwrap();
    assert_eq!(s.config().timeout_secs, Some(5));
    s.speak("Second.", t0).unwrap();
    let sent = texts(&mut s);
    assert!(sent[0].contains(r#""voice_id":"magnus""#));
    assert_eq!(
        sent[1],
        r#"{"text":"Second.","voice_id":"meher","model":"lightning_v3.1_pro","sample_rate":8000,"continue":false,"flush":true}"#
    );
    // The idle deadline is still 5 s.
    assert_eq!(s.poll_timeout(), Some(t0 + secs(5)));
    // Invalid settings are refused and the old ones kept.
    let err = s
        .set_config(TtsLiveConfig::new("meher").speed(3.0))
        .unwrap_err();
    assert_eq!(err.field(), "speed");
    assert_eq!(s.config().voice_id, "meher");
    // Audio of each request carries its own sample rate.
    s.handle_message(chunk("a", "AAA="), t0).unwrap();
    s.handle_message(complete("a"), t0).unwrap();
    s.handle_message(chunk("b", "AAA="), t0).unwrap();
    let ev = events(&mut s);
    assert_eq!(ev[0], audio(0, &[0, 0], 24000));
    assert_eq!(ev[2], audio(1, &[0, 0], 8000));
}

#[test]
fn config_validation_names_the_field() {
    let cases: Vec<(TtsLiveConfig, &str)> = vec![
        (TtsLiveConfig::new(""), "voice_id"),
        (TtsLiveConfig::new("bad voice"), "voice_id"),
        (magnus().sample_rate(22050), "sample_rate"),
        (magnus().speed(0.4), "speed"),
        (magnus().speed(f32::NAN), "speed"),
        (
            magnus()
                .model(TtsModel::LightningV31)
                .language(Language::Ja),
            "language",
        ),
        (
            magnus().number_pronunciation_language(Language::Ko),
            "number_pronunciation_language",
        ),
        (magnus().pronunciation_dict(" "), "pronunciation_dicts"),
        (magnus().max_buffer_flush_ms(1001), "max_buffer_flush_ms"),
        (magnus().complete_backoff_ms(10_001), "complete_backoff_ms"),
        (magnus().timeout_secs(0), "timeout"),
        (magnus().session_id("has space"), "session_id"),
        (magnus().request_id("x".repeat(129)), "request_id"),
    ];
    for (config, field) in cases {
        let err = config.validate().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        let err = TtsLiveSession::new(config, Instant::now()).unwrap_err();
        assert_eq!(err.validation().unwrap().field(), field);
    }
    // The bounds themselves are fine.
    let ok = magnus()
        .max_buffer_flush_ms(1000)
        .complete_backoff_ms(10_000)
        .timeout_secs(999)
        .model(TtsModel::LightningV31Pro)
        .language(Language::Ja);
    ok.validate().unwrap();
    assert_eq!(ok.idle_timeout(), secs(999));
    assert_eq!(magnus().idle_timeout(), secs(60));
}

// ---------------------------------------------------------------------------
// Server frames
// ---------------------------------------------------------------------------

#[test]
fn spec_example_frames_become_audio_and_complete() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.speak("Hello World", t0).unwrap();
    // §12.2, verbatim.
    s.handle_message(
        text(r#"{"session_id": "ws_550e8400-e29b", "request_id": "task_6ba7b810-9dad", "external_session_id": "my-session-123", "external_request_id": "my-request-456", "status": "chunk", "data": {"audio": "SGVsbG8gV29ybGQ="}}"#),
        t0 + Duration::from_millis(200),
    )
    .unwrap();
    s.handle_message(
        text(r#"{"session_id": "ws_550e8400-e29b", "request_id": "task_6ba7b810-9dad", "external_session_id": "my-session-123", "external_request_id": "my-request-456", "status": "complete"}"#),
        t0 + Duration::from_millis(300),
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        [
            audio(0, b"Hello World", 24000),
            TtsLiveEvent::Complete {
                context: None,
                request_index: 0,
                session_id: Some("ws_550e8400-e29b".into()),
                request_id: Some("task_6ba7b810-9dad".into()),
            }
        ]
    );
    assert_eq!(s.open_requests(), 0);
}

#[test]
fn word_timestamps_are_events() {
    let t0 = Instant::now();
    let mut s = session(magnus().word_timestamps(true), t0);
    s.speak("It costs $100.", t0).unwrap();
    s.handle_message(
        text(r#"{"session_id":"ws_1","request_id":"task_1","status":"word_timestamp","data":{"id":2,"word":"$100","start":1.12,"end":1.92}}"#),
        t0,
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        [TtsLiveEvent::WordTimestamp {
            request_index: 0,
            context: None,
            id: 2,
            word: "$100".into(),
            start: 1.12,
            end: 1.92,
            timeline_start: 1.12,
            timeline_end: 1.92,
        }]
    );
}

#[test]
fn several_requests_on_one_connection_complete_in_order() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    assert_eq!(s.speak("One.", t0).unwrap(), 0);
    assert_eq!(s.speak("Two.", t0).unwrap(), 1);
    assert_eq!(s.send_text("Three", t0).unwrap(), 2);
    assert_eq!(s.finish_request(t0).unwrap(), 2);
    assert_eq!(s.open_requests(), 3);
    for (id, bytes) in [("task_a", "AQA="), ("task_b", "AgA="), ("task_c", "AwA=")] {
        s.handle_message(chunk(id, bytes), t0).unwrap();
        s.handle_message(complete(id), t0).unwrap();
    }
    assert_eq!(
        events(&mut s),
        [
            audio(0, &[1, 0], 24000),
            completed(0, "task_a"),
            audio(1, &[2, 0], 24000),
            completed(1, "task_b"),
            audio(2, &[3, 0], 24000),
            completed(2, "task_c"),
        ]
    );
    assert_eq!(s.open_requests(), 0);
}

#[test]
fn frames_without_request_ids_are_attributed_fifo() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.speak("One.", t0).unwrap();
    s.speak("Two.", t0).unwrap();
    for frame in [
        r#"{"status":"chunk","data":{"audio":"AQA="}}"#,
        r#"{"status":"complete"}"#,
        r#"{"status":"chunk","data":{"audio":"AgA="}}"#,
        r#"{"status":"complete"}"#,
    ] {
        s.handle_message(text(frame), t0).unwrap();
    }
    let indexes: Vec<u64> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            TtsLiveEvent::Audio { request_index, .. }
            | TtsLiveEvent::Complete { request_index, .. } => request_index,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(indexes, [0, 0, 1, 1]);
}

#[test]
fn interleaved_requests_are_told_apart_by_request_id() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.speak("One.", t0).unwrap();
    s.speak("Two.", t0).unwrap();
    s.handle_message(chunk("task_a", "AQA="), t0).unwrap();
    s.handle_message(chunk("task_b", "AgA="), t0).unwrap();
    s.handle_message(chunk("task_a", "AwA="), t0).unwrap();
    // The second request finishes first.
    s.handle_message(complete("task_b"), t0).unwrap();
    s.handle_message(complete("task_a"), t0).unwrap();
    assert_eq!(
        events(&mut s),
        [
            audio(0, &[1, 0], 24000),
            audio(1, &[2, 0], 24000),
            audio(0, &[3, 0], 24000),
            completed(1, "task_b"),
            completed(0, "task_a"),
        ]
    );
}

#[test]
fn audio_may_arrive_while_the_request_is_still_being_written() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.send_text("A long ", t0).unwrap();
    s.handle_message(chunk("task_a", "AQA="), t0).unwrap();
    assert_eq!(s.send_text("sentence.", t0).unwrap(), 0);
    s.finish_request(t0).unwrap();
    s.handle_message(complete("task_a"), t0).unwrap();
    assert_eq!(s.send_text("Next.", t0).unwrap(), 1);
    assert_eq!(
        events(&mut s),
        [audio(0, &[1, 0], 24000), completed(0, "task_a")]
    );
}

#[test]
fn error_frames_of_both_shapes() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.speak("One.", t0).unwrap();
    s.speak("Two.", t0).unwrap();
    s.speak("Three.", t0).unwrap();
    // Flat shape (prose, the SDK, the idle message).
    s.handle_message(
        text(r#"{"status": "error", "message": "Invalid Voice ID"}"#),
        t0,
    )
    .unwrap();
    // asyncapi `ErrorResponse` shape.
    s.handle_message(
        text(r#"{"status":"error","error":{"message":"Too many concurrent requests","code":"CONCURRENCY_LIMIT"}}"#),
        t0,
    )
    .unwrap();
    // A bare `error` string with no status.
    s.handle_message(text(r#"{"error":"Internal error"}"#), t0)
        .unwrap();
    assert_eq!(
        events(&mut s),
        [
            TtsLiveEvent::Error {
                context: None,
                request_index: Some(0),
                code: None,
                message: "Invalid Voice ID".into(),
            },
            TtsLiveEvent::Error {
                context: None,
                request_index: Some(1),
                code: Some("CONCURRENCY_LIMIT".into()),
                message: "Too many concurrent requests".into(),
            },
            TtsLiveEvent::Error {
                context: None,
                request_index: Some(2),
                code: None,
                message: "Internal error".into(),
            },
        ]
    );
    assert_eq!(s.open_requests(), 0);
    // An error with no request open fails nothing.
    s.handle_message(text(r#"{"status":"error","message":"late"}"#), t0)
        .unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(TtsLiveEvent::Error {
            context: None,
            request_index: None,
            ..
        })
    ));
}

#[test]
fn an_error_naming_a_request_id_fails_that_request() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.speak("One.", t0).unwrap();
    s.speak("Two.", t0).unwrap();
    s.handle_message(chunk("task_a", "AQA="), t0).unwrap();
    s.handle_message(chunk("task_b", "AQA="), t0).unwrap();
    s.handle_message(
        text(r#"{"status":"error","request_id":"task_b","message":"synthesis failed"}"#),
        t0,
    )
    .unwrap();
    s.handle_message(complete("task_a"), t0).unwrap();
    let ev = events(&mut s);
    assert_eq!(
        ev[2],
        TtsLiveEvent::Error {
            context: None,
            request_index: Some(1),
            code: None,
            message: "synthesis failed".into()
        }
    );
    assert_eq!(ev[3], completed(0, "task_a"));
}

#[test]
fn unknown_statuses_are_events_not_errors() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.speak("Hi.", t0).unwrap();
    for raw in [
        r#"{"status":"queued","position":3}"#,
        r#"{"session_id":"ws_1"}"#,
        r#"[1,2,3]"#,
        r#""hello""#,
        r#"{"status":42}"#,
    ] {
        s.handle_message(text(raw), t0).unwrap();
        assert_eq!(
            s.poll_event(),
            Some(TtsLiveEvent::Unknown { raw: raw.into() })
        );
    }
    assert_eq!(s.open_requests(), 1);
}

#[test]
fn malformed_frames_are_decode_errors_and_the_session_goes_on() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.speak("Hi.", t0).unwrap();
    let bad = [
        text("not json"),
        text(r#"{"status":"chunk"}"#),
        text(r#"{"status":"chunk","data":{"audio":"***"}}"#),
        text(r#"{"status":"word_timestamp","data":{"id":1,"word":"x","start":0.1}}"#),
        WsMessage::Binary(Bytes::from_static(b"\x00\x01")),
    ];
    for frame in bad {
        let err = s.handle_message(frame, t0).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }
    assert_eq!(s.poll_event(), None);
    // Pings and pongs are the transport's business.
    s.handle_message(WsMessage::Ping(Bytes::from_static(b"p")), t0)
        .unwrap();
    s.handle_message(WsMessage::Pong(Bytes::new()), t0).unwrap();
    assert_eq!(s.poll_outgoing().map(|_| ()), Some(()));
    assert_eq!(s.poll_outgoing(), None);
    s.handle_message(chunk("t", "AQA="), t0).unwrap();
    s.handle_message(complete("t"), t0).unwrap();
    assert_eq!(events(&mut s).len(), 2);
}

// ---------------------------------------------------------------------------
// Time: idle timeout and keepalive
// ---------------------------------------------------------------------------

#[test]
fn idle_deadline_moves_with_client_messages_and_is_reported() {
    let t0 = Instant::now();
    let mut s = session(magnus().timeout_secs(5), t0);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(5)));
    s.speak("Hi.", t0 + secs(2)).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + secs(7)));
    // Server traffic does not reset the client-inactivity timer.
    s.handle_message(chunk("t", "AQA="), t0 + secs(3)).unwrap();
    s.handle_message(complete("t"), t0 + secs(4)).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + secs(7)));
    // Too early: nothing happens.
    s.handle_timeout(t0 + secs(6));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(7)));
    // The deadline passes: no busy loop on a past deadline.
    s.handle_timeout(t0 + secs(7));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_outgoing(), Some(text(&texts_of_speak("Hi."))));
    s.handle_message(close(1000), t0 + secs(7) + Duration::from_millis(5))
        .unwrap();
    let ev = events(&mut s);
    assert_eq!(
        ev.last(),
        Some(&TtsLiveEvent::Closed {
            code: Some(1000),
            reason: String::new(),
            why: CloseReason::IdleTimeout,
        })
    );
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
}

fn texts_of_speak(t: &str) -> String {
    format!(
        r#"{{"text":"{t}","voice_id":"magnus","sample_rate":24000,"speed":1.0,"language":"en","continue":false,"flush":true}}"#
    )
}

#[test]
fn sending_after_the_idle_deadline_revives_the_session() {
    let t0 = Instant::now();
    let mut s = session(magnus().timeout_secs(5), t0);
    s.handle_timeout(t0 + secs(5));
    assert_eq!(s.poll_timeout(), None);
    // The server had not closed yet; a new message restarts its timer.
    s.speak("Still here.", t0 + secs(6)).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + secs(11)));
    s.handle_message(close(1000), t0 + secs(7)).unwrap();
    assert!(matches!(
        after_incomplete(&mut s),
        Some(TtsLiveEvent::Closed {
            why: CloseReason::Normal,
            ..
        })
    ));
}

#[test]
fn the_servers_idle_error_frame_is_recognised() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.handle_message(
        text(r#"{"status": "error", "message": "Connection timed out after 60 seconds of inactivity"}"#),
        t0 + secs(60),
    )
    .unwrap();
    s.handle_message(WsMessage::Close(None), t0 + secs(60))
        .unwrap();
    assert_eq!(
        events(&mut s),
        [
            TtsLiveEvent::Error {
                context: None,
                request_index: None,
                code: None,
                message: "Connection timed out after 60 seconds of inactivity".into(),
            },
            TtsLiveEvent::Closed {
                code: None,
                reason: String::new(),
                why: CloseReason::IdleTimeout,
            },
        ]
    );
}

#[test]
fn keepalive_messages_at_the_interval_count_as_activity() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.set_keepalive(Some(secs(20)));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(20)));
    s.handle_timeout(t0 + secs(20));
    // A whitespace text message without a context: the server counts it (API.md §3.5).
    let sent = texts(&mut s);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let v: serde_json::Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(v["text"], " ");
    assert_eq!(v["continue"], true);
    assert!(
        v.get("flush").is_none() && v.get("context_id").is_none(),
        "{v}"
    );
    assert_eq!(s.open_requests(), 0, "a keepalive opens no request");
    assert_eq!(s.poll_timeout(), Some(t0 + secs(40)));
    // A message counts as traffic: the next keepalive moves.
    s.speak("Hi.", t0 + secs(30)).unwrap();
    outgoing(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(50)));
    s.handle_timeout(t0 + secs(50));
    s.handle_timeout(t0 + secs(70));
    assert_eq!(texts(&mut s).len(), 2);
    // Keepalives move the idle deadline: it never passes while they go out.
    assert_eq!(s.poll_timeout(), Some(t0 + secs(90)));
    s.handle_timeout(t0 + secs(90));
    assert_eq!(texts(&mut s).len(), 1);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(110)));
    // A close now is not an idle timeout.
    s.handle_message(close(1000), t0 + secs(95)).unwrap();
    assert!(matches!(
        after_incomplete(&mut s),
        Some(TtsLiveEvent::Closed {
            why: CloseReason::Normal,
            ..
        })
    ));
    // Keepalive off, and a zero interval is off.
    let mut s = session(magnus(), t0);
    s.set_keepalive(Some(Duration::ZERO));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(60)));
    s.set_keepalive(Some(secs(10)));
    s.set_keepalive(None);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(60)));
}

#[test]
fn a_huge_interval_never_overflows() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.set_keepalive(Some(Duration::MAX));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(60)));
    s.handle_timeout(t0 + secs(61));
    assert_eq!(s.poll_outgoing(), None);
}

// ---------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------

#[test]
fn close_codes_are_typed() {
    let t0 = Instant::now();
    let cases: Vec<(Vec<WsMessage>, Option<u16>, CloseReason)> = vec![
        (vec![close(1000)], Some(1000), CloseReason::Normal),
        (vec![close(1008)], Some(1008), CloseReason::PolicyViolation),
        (vec![close(1011)], Some(1011), CloseReason::ServerError),
        (vec![close(4000)], Some(4000), CloseReason::Other(4000)),
        (vec![WsMessage::Close(None)], None, CloseReason::NoStatus),
        (
            vec![text(r#"{"status":"error","message":"boom"}"#), close(1000)],
            Some(1000),
            CloseReason::ServerError,
        ),
        (
            vec![
                text(r#"{"status":"error","message":"boom"}"#),
                chunk("t", "AQA="),
                close(1000),
            ],
            Some(1000),
            CloseReason::Normal,
        ),
    ];
    for (frames, code, why) in cases {
        let mut s = session(magnus(), t0);
        for frame in frames {
            s.handle_message(frame, t0).unwrap();
        }
        let last = events(&mut s).pop();
        assert_eq!(
            last,
            Some(TtsLiveEvent::Closed {
                code,
                reason: String::new(),
                why
            })
        );
    }
}

#[test]
fn client_close_then_server_close_is_normal_and_nothing_more_is_sent() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.set_keepalive(Some(secs(1)));
    s.speak("Bye.", t0).unwrap();
    s.close(t0).unwrap();
    assert_eq!(
        outgoing(&mut s).last(),
        Some(&WsMessage::Close(Some(CloseFrame::new(1000, ""))))
    );
    assert_eq!(s.poll_timeout(), None);
    let err = s.send_text("more", t0).unwrap_err();
    assert!(matches!(err, Error::Stream { .. }), "{err:?}");
    assert!(s.close(t0).is_err());
    s.handle_message(WsMessage::Close(None), t0).unwrap();
    assert!(matches!(
        after_incomplete(&mut s),
        Some(TtsLiveEvent::Closed {
            why: CloseReason::Normal,
            ..
        })
    ));
}

#[test]
fn after_the_close_everything_is_refused_or_ignored() {
    let t0 = Instant::now();
    let mut s = session(magnus(), t0);
    s.send_text("queued but never sent", t0).unwrap();
    s.handle_message(WsMessage::Close(Some(CloseFrame::new(1000, "bye"))), t0)
        .unwrap();
    assert!(s.is_closed());
    assert_eq!(s.poll_outgoing(), None, "queued frames are dropped");
    assert_eq!(
        events(&mut s),
        [
            TtsLiveEvent::Error {
                context: None,
                request_index: Some(0),
                code: None,
                message: "the connection closed before this request's `complete`: its audio \
                          is incomplete"
                    .into(),
            },
            TtsLiveEvent::Closed {
                code: Some(1000),
                reason: "bye".into(),
                why: CloseReason::Normal
            }
        ]
    );
    for result in [
        s.send_text("x", t0),
        s.speak("x", t0),
        s.flush(t0),
        s.finish_request(t0),
    ] {
        assert!(matches!(result, Err(Error::Stream { .. })), "{result:?}");
    }
    // Late frames change nothing.
    s.handle_message(chunk("t", "AQA="), t0).unwrap();
    s.handle_message(text("garbage"), t0).unwrap();
    s.handle_message(close(1011), t0).unwrap();
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(t0 + secs(3600));
    assert_eq!(s.poll_outgoing(), None);
}

/// The next event after the errors that flag requests left incomplete by a close.
fn after_incomplete(s: &mut TtsLiveSession) -> Option<TtsLiveEvent> {
    loop {
        match s.poll_event() {
            Some(TtsLiveEvent::Error { message, .. }) if message.contains("incomplete") => {}
            other => return other,
        }
    }
}
