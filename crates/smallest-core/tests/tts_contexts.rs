//! Continuation contexts, barge-in, the connection's timeline and redials of the TTS
//! WebSocket session (API.md §3.5.1), fed frames as the server sends them.

use std::time::{Duration, Instant};

use smallest_core::tts_live::{
    ContextId, Redial, TtsLiveConfig, TtsLiveEvent, TtsLiveSession, cancel_message,
};
use smallest_core::ws::WsMessage;

const RATE: u32 = 24000;

fn session(t0: Instant) -> TtsLiveSession {
    TtsLiveSession::new(TtsLiveConfig::new("magnus").sample_rate(RATE), t0).unwrap()
}

fn sent(s: &mut TtsLiveSession) -> Vec<serde_json::Value> {
    std::iter::from_fn(|| s.poll_outgoing())
        .map(|m| match m {
            WsMessage::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("expected text, got {other:?}"),
        })
        .collect()
}

fn events(s: &mut TtsLiveSession) -> Vec<TtsLiveEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A chunk of `samples` zero samples, of context `ctx` when given.
fn chunk(ctx: Option<&str>, samples: usize) -> WsMessage {
    use base64::Engine as _;
    let audio = base64::engine::general_purpose::STANDARD.encode(vec![0u8; samples * 2]);
    let ctx = ctx.map_or(String::new(), |c| format!(r#","context_id":"{c}""#));
    WsMessage::Text(format!(
        r#"{{"status":"chunk","request_id":"task_1"{ctx},"data":{{"audio":"{audio}"}}}}"#
    ))
}

fn word(ctx: Option<&str>, id: u64, start: f64, end: f64) -> WsMessage {
    let ctx = ctx.map_or(String::new(), |c| format!(r#","context_id":"{c}""#));
    WsMessage::Text(format!(
        r#"{{"status":"word_timestamp"{ctx},"data":{{"id":{id},"word":"w{id}","start":{start},"end":{end}}}}}"#
    ))
}

fn complete(ctx: Option<&str>) -> WsMessage {
    let ctx = ctx.map_or(String::new(), |c| format!(r#","context_id":"{c}""#));
    WsMessage::Text(format!(r#"{{"status":"complete"{ctx}}}"#))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn id(s: &str) -> ContextId {
    ContextId::new(s).unwrap()
}

#[test]
fn fragments_carry_the_context_and_the_close_says_continue_false() {
    let t0 = Instant::now();
    let mut s = TtsLiveSession::new(
        TtsLiveConfig::new("magnus")
            .max_buffer_flush_ms(100)
            .max_buffer_delay_ms(250),
        t0,
    )
    .unwrap();
    assert_eq!(s.push_context("turn-1", "Hel", t0).unwrap(), 0);
    assert_eq!(s.push_context("turn-1", "lo.", t0).unwrap(), 0);
    assert_eq!(
        s.push_context("turn-1", "", t0).unwrap(),
        0,
        "empty: nothing"
    );
    assert_eq!(s.finish_context("turn-1", t0).unwrap(), 0);
    let sent = sent(&mut s);
    assert_eq!(sent.len(), 3, "{sent:?}");
    for (m, (text, more)) in sent.iter().zip([("Hel", true), ("lo.", true), ("", false)]) {
        assert_eq!(m["context_id"], "turn-1");
        assert_eq!(m["text"], text);
        assert_eq!(m["continue"], more);
        assert_eq!(m["voice_id"], "magnus", "the settings are repeated");
        assert_eq!(m["max_buffer_delay_ms"], 250);
        assert!(m.get("flush").is_none(), "flush is the legacy mode's: {m}");
        assert!(m.get("max_buffer_flush_ms").is_none(), "legacy only: {m}");
    }
    // The legacy mode keeps its fields and none of the context's.
    s.speak("Legacy.", t0).unwrap();
    let legacy = &self::sent(&mut s)[0];
    assert_eq!(legacy["flush"], true);
    assert_eq!(legacy["max_buffer_flush_ms"], 100);
    assert!(legacy.get("context_id").is_none() && legacy.get("max_buffer_delay_ms").is_none());
    // Ids are checked.
    let err = s.push_context("", "x", t0).unwrap_err().to_string();
    assert!(err.contains("context_id"), "{err}");
    assert!(s.push_context("a\nb", "x", t0).is_err());
    assert!(s.push_context(&"x".repeat(129), "x", t0).is_err());
    // A finished context still draining refuses more text.
    let err = s
        .push_context("turn-1", "more", t0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("finished"), "{err}");
}

#[test]
fn several_completes_end_a_context_only_after_the_drain() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.push_context("a", "One. Two", t0).unwrap();
    sent(&mut s);
    // The first release arrives while the context is open: not done.
    s.handle_message(chunk(Some("a"), 240), t0).unwrap();
    s.handle_message(complete(Some("a")), t0).unwrap();
    assert!(s.poll_timeout().is_none_or(|t| t > t0 + ms(10_000)));
    s.finish_context("a", t0 + ms(10)).unwrap();
    s.handle_message(chunk(Some("a"), 240), t0 + ms(20))
        .unwrap();
    s.handle_message(complete(Some("a")), t0 + ms(30)).unwrap();
    // Two completes, neither final: done after 500 ms of quiet from the last frame.
    assert_eq!(s.poll_timeout(), Some(t0 + ms(530)));
    s.handle_timeout(t0 + ms(529));
    let before: Vec<_> = events(&mut s);
    assert!(
        !before
            .iter()
            .any(|e| matches!(e, TtsLiveEvent::ContextDone { .. })),
        "{before:?}"
    );
    assert_eq!(
        before
            .iter()
            .filter(|e| matches!(e, TtsLiveEvent::Complete { context: Some(c), .. } if c.as_str() == "a"))
            .count(),
        2
    );
    s.handle_timeout(t0 + ms(530));
    assert_eq!(
        events(&mut s),
        [TtsLiveEvent::ContextDone {
            request_index: 0,
            context: id("a"),
            cancelled: false
        }]
    );
    assert_eq!(s.open_requests(), 0);
}

#[test]
fn contexts_in_flight_finish_in_order_and_a_frame_of_the_next_ends_the_last() {
    let t0 = Instant::now();
    let mut s = session(t0);
    for (i, c) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(s.push_context(c, "Hi.", t0).unwrap(), i as u64);
        s.finish_context(c, t0).unwrap();
    }
    sent(&mut s);
    let mut done = Vec::new();
    for c in ["a", "b", "c"] {
        s.handle_message(chunk(Some(c), 100), t0).unwrap();
        s.handle_message(complete(Some(c)), t0).unwrap();
        for e in events(&mut s) {
            if let TtsLiveEvent::ContextDone { context, .. } = e {
                done.push(context.as_str().to_owned());
            }
        }
    }
    // `a` and `b` ended when the next one's audio came; `c` after its drain.
    assert_eq!(done, ["a", "b"]);
    s.handle_timeout(t0 + ms(500));
    assert!(
        matches!(&events(&mut s)[..], [TtsLiveEvent::ContextDone { context, .. }] if context.as_str() == "c")
    );
}

#[test]
fn no_event_of_a_cancelled_context_is_delivered_after_cancel() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.push_context("a", "A long answer.", t0).unwrap();
    s.push_context("b", "Next.", t0).unwrap();
    s.finish_context("b", t0).unwrap();
    sent(&mut s);
    // Audio of `a` is queued (not yet taken by the user) when the user barges in.
    for _ in 0..3 {
        s.handle_message(chunk(Some("a"), 240), t0).unwrap();
    }
    assert!(s.cancel_context("a", t0).unwrap());
    assert_eq!(
        sent(&mut s),
        [serde_json::json!({"context_id": "a", "cancel_request": true})]
    );
    assert_eq!(
        cancel_message("a"),
        WsMessage::Text(r#"{"cancel_request":true,"context_id":"a"}"#.into())
    );
    // The server keeps sending `a` for a while; then `b`.
    s.handle_message(chunk(Some("a"), 240), t0 + ms(5)).unwrap();
    s.handle_message(complete(Some("a")), t0 + ms(5)).unwrap();
    s.handle_message(chunk(Some("b"), 100), t0 + ms(6)).unwrap();
    let got = events(&mut s);
    assert_eq!(
        got[0],
        TtsLiveEvent::ContextDone {
            request_index: 0,
            context: id("a"),
            cancelled: true
        }
    );
    for e in &got[1..] {
        match e {
            TtsLiveEvent::Audio {
                context, position, ..
            } => {
                assert_eq!(context.as_ref().map(ContextId::as_str), Some("b"));
                // Cancelled audio takes no time on the timeline.
                assert_eq!(*position, Duration::ZERO);
            }
            other => panic!("only b's audio after the cancel: {other:?}"),
        }
    }
    assert_eq!(got.len(), 2);
    // Cancelling again, or an unknown context, is a no-op; the id is spent.
    assert!(!s.cancel_context("a", t0).unwrap());
    assert!(!s.cancel_context("zzz", t0).unwrap());
    assert!(sent(&mut s).is_empty());
    assert!(s.push_context("a", "again", t0).is_err());
}

#[test]
fn without_echo_frames_go_to_the_oldest_context_and_a_cancelled_one_drains() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.push_context("a", "First.", t0).unwrap();
    s.finish_context("a", t0).unwrap();
    s.push_context("b", "Second.", t0).unwrap();
    s.finish_context("b", t0).unwrap();
    sent(&mut s);
    s.handle_message(chunk(None, 100), t0).unwrap();
    assert!(
        matches!(&events(&mut s)[..], [TtsLiveEvent::Audio { context: Some(c), .. }] if c.as_str() == "a")
    );
    s.cancel_context("a", t0 + ms(10)).unwrap();
    assert!(matches!(
        &events(&mut s)[..],
        [TtsLiveEvent::ContextDone {
            cancelled: true,
            ..
        }]
    ));
    // Late frames of `a` (no id): dropped while `a` drains.
    s.handle_message(chunk(None, 100), t0 + ms(100)).unwrap();
    assert!(events(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + ms(600)));
    s.handle_timeout(t0 + ms(600));
    assert!(
        events(&mut s).is_empty(),
        "a cancelled context ends silently"
    );
    // Then frames are `b`'s.
    s.handle_message(chunk(None, 100), t0 + ms(700)).unwrap();
    assert!(
        matches!(&events(&mut s)[..], [TtsLiveEvent::Audio { context: Some(c), request_index: 1, .. }] if c.as_str() == "b")
    );
}

#[test]
fn audio_and_words_sit_on_the_connection_timeline() {
    let t0 = Instant::now();
    let mut s = TtsLiveSession::new(
        TtsLiveConfig::new("meher")
            .sample_rate(RATE)
            .word_timestamps(true),
        t0,
    )
    .unwrap();
    s.speak("One two.", t0).unwrap();
    s.speak("Three.", t0).unwrap();
    sent(&mut s);
    // Request 0: 0.5 s of audio, words at 0.0 and 0.3.
    s.handle_message(word(None, 0, 0.0, 0.25), t0).unwrap();
    s.handle_message(chunk(None, 6000), t0).unwrap();
    s.handle_message(word(None, 1, 0.3, 0.5), t0).unwrap();
    s.handle_message(chunk(None, 6000), t0).unwrap();
    s.handle_message(complete(None), t0).unwrap();
    // Request 1: its timings restart at zero on the server.
    s.handle_message(word(None, 0, 0.0, 0.4), t0).unwrap();
    s.handle_message(chunk(None, 12000), t0).unwrap();
    s.handle_message(complete(None), t0).unwrap();
    let mut audio = Vec::new();
    let mut words = Vec::new();
    for e in events(&mut s) {
        match e {
            TtsLiveEvent::Audio {
                request_index,
                position,
                ..
            } => audio.push((request_index, position)),
            TtsLiveEvent::WordTimestamp {
                request_index,
                start,
                timeline_start,
                timeline_end,
                ..
            } => words.push((request_index, start, timeline_start, timeline_end)),
            _ => {}
        }
    }
    assert_eq!(audio, [(0, ms(0)), (0, ms(250)), (1, ms(500))]);
    assert_eq!(
        words,
        [(0, 0.0, 0.0, 0.25), (0, 0.3, 0.3, 0.5), (1, 0.0, 0.5, 0.9)]
    );
    assert_eq!(s.timeline(), ms(1000));
}

#[test]
fn a_hard_cancel_redials_and_sends_the_unheard_contexts_again() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.push_context("a", "Being spoken.", t0).unwrap();
    s.push_context("b", "Queued.", t0).unwrap();
    s.finish_context("b", t0).unwrap();
    sent(&mut s);
    s.handle_message(chunk(Some("a"), 100), t0).unwrap();
    events(&mut s);
    assert!(s.cancel_context_hard("a", t0).unwrap());
    assert!(s.wants_connection() && s.is_disconnected());
    assert!(
        s.poll_outgoing().is_none(),
        "nothing goes out on the old connection"
    );
    // Frames still read from the old connection are ignored.
    s.handle_message(chunk(Some("a"), 100), t0).unwrap();
    s.handle_connected(t0 + ms(50)).unwrap();
    assert!(!s.wants_connection());
    let resent = sent(&mut s);
    assert_eq!(resent.len(), 2, "{resent:?}");
    assert!(resent.iter().all(|m| m["context_id"] == "b"));
    assert_eq!(resent[1]["continue"], false);
    let got = events(&mut s);
    assert!(
        matches!(
            got[0],
            TtsLiveEvent::ContextDone {
                cancelled: true,
                ..
            }
        ),
        "{got:?}"
    );
    assert_eq!(
        got[1],
        TtsLiveEvent::Reconnected {
            why: Redial::HardCancel
        }
    );
    s.handle_message(chunk(Some("b"), 100), t0 + ms(60))
        .unwrap();
    assert!(
        matches!(&events(&mut s)[..], [TtsLiveEvent::Audio { context: Some(c), .. }] if c.as_str() == "b")
    );
}

/// After a hard cancel the account may still count the abandoned request for a moment:
/// a context refused for concurrency before it was heard is sent again, not failed.
#[test]
fn after_a_hard_cancel_a_context_refused_for_concurrency_is_sent_again() {
    let refused = |ctx: &str| {
        WsMessage::Text(format!(
            r#"{{"status":"error","context_id":"{ctx}","message":"Too many concurrent requests: wait for one to finish."}}"#
        ))
    };
    let t0 = Instant::now();
    let mut s = session(t0);
    s.push_context("a", "Being spoken.", t0).unwrap();
    sent(&mut s);
    s.handle_message(chunk(Some("a"), 100), t0).unwrap();
    assert!(s.cancel_context_hard("a", t0).unwrap());
    s.handle_connected(t0 + ms(10)).unwrap();
    events(&mut s);
    s.push_context("next", "Okay.", t0 + ms(11)).unwrap();
    s.finish_context("next", t0 + ms(11)).unwrap();
    assert_eq!(sent(&mut s).len(), 2);
    s.handle_message(refused("next"), t0 + ms(20)).unwrap();
    // A second refusal (of the closing message) is the same episode.
    s.handle_message(refused("next"), t0 + ms(21)).unwrap();
    assert!(
        events(&mut s).is_empty(),
        "no error for a refusal that is retried"
    );
    assert!(sent(&mut s).is_empty(), "not at once");
    let at = s.poll_timeout().unwrap();
    assert_eq!(at, t0 + ms(120));
    s.handle_timeout(at);
    let again = sent(&mut s);
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|m| m["context_id"] == "next"));
    assert_eq!(again[0]["text"], "Okay.");
    assert_eq!(again[1]["continue"], false);
    s.handle_message(chunk(Some("next"), 100), at + ms(5))
        .unwrap();
    assert!(
        matches!(&events(&mut s)[..], [TtsLiveEvent::Audio { context: Some(c), .. }] if c.as_str() == "next")
    );
    // Without a hard cancel before it, the same refusal is the server's error.
    let mut plain = session(t0);
    plain.push_context("x", "Hello.", t0).unwrap();
    sent(&mut plain);
    plain.handle_message(refused("x"), t0 + ms(5)).unwrap();
    assert!(
        matches!(&events(&mut plain)[..], [TtsLiveEvent::Error { context: Some(c), .. }] if c.as_str() == "x")
    );
}

#[test]
fn a_connection_past_its_age_is_replaced_at_the_next_turn_only() {
    let t0 = Instant::now();
    let mut s = TtsLiveSession::new(
        TtsLiveConfig::new("magnus").max_connection_age(Duration::from_secs(60)),
        t0,
    )
    .unwrap();
    s.push_context("a", "Hi.", t0).unwrap();
    // In the middle of a turn the age does not matter.
    s.finish_context("a", t0 + Duration::from_secs(61)).unwrap();
    assert!(!s.wants_connection());
    sent(&mut s);
    s.handle_message(chunk(Some("a"), 10), t0 + Duration::from_secs(61))
        .unwrap();
    s.handle_message(complete(Some("a")), t0 + Duration::from_secs(61))
        .unwrap();
    s.handle_timeout(t0 + Duration::from_secs(62));
    events(&mut s);
    // The next turn begins on a new connection; its text waits for it.
    s.push_context("b", "Hello again.", t0 + Duration::from_secs(63))
        .unwrap();
    assert!(s.wants_connection());
    assert!(s.poll_outgoing().is_none());
    s.handle_connected(t0 + Duration::from_secs(63)).unwrap();
    assert_eq!(sent(&mut s)[0]["context_id"], "b");
    assert_eq!(
        events(&mut s),
        [TtsLiveEvent::Reconnected {
            why: Redial::MaxAge
        }]
    );
}
