//! Live STT that survives a dropped connection: the replay, the timeline and the
//! finals across connections, fed frames as a server sends them.

use std::time::{Duration, Instant};

use smallest_core::retry::RetryPolicy;
use smallest_core::stt::SttLanguage;
use smallest_core::stt_live::{
    SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveSession, SttReconnect,
};
use smallest_core::ws::{CloseFrame, WsMessage};
use smallest_core::{Error, TimeoutPhase};

/// 16 kHz linear16: 32,000 bytes a second.
const PER_SECOND: usize = 32_000;

fn session(t0: Instant, reconnect: SttReconnect) -> SttLiveSession {
    let config = SttLiveConfig::new(SttLanguage::En).reconnect(reconnect);
    let mut s = SttLiveSession::new(config, t0).unwrap();
    s.set_retry_policy(&RetryPolicy::default(), 7);
    s
}

fn sent(s: &mut SttLiveSession) -> Vec<WsMessage> {
    std::iter::from_fn(|| s.poll_outgoing()).collect()
}

fn audio_bytes(frames: &[WsMessage]) -> Vec<u8> {
    frames
        .iter()
        .filter_map(|m| match m {
            WsMessage::Binary(b) => Some(b.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn events(s: &mut SttLiveSession) -> Vec<SttLiveEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn final_with(words: &[(&str, f64, f64)]) -> WsMessage {
    let text: Vec<&str> = words.iter().map(|w| w.0).collect();
    let words: Vec<String> = words
        .iter()
        .map(|(w, s, e)| format!(r#"{{"word":"{w}","start":{s},"end":{e}}}"#))
        .collect();
    WsMessage::Text(format!(
        r#"{{"type":"transcription","transcript":"{}","is_final":true,"is_last":false,"words":[{}]}}"#,
        text.join(" "),
        words.join(",")
    ))
}

/// Distinct audio: byte `i` of the stream is `i % 251`.
fn stream(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

/// Drives the session through a drop and a new connection; returns what it replays.
fn drop_and_reconnect(s: &mut SttLiveSession, now: Instant) -> Vec<WsMessage> {
    assert!(
        s.handle_connection_lost(None, now),
        "a drop starts a reconnect"
    );
    assert!(s.is_disconnected() && !s.wants_connection());
    let at = s.poll_timeout().expect("the backoff is a deadline");
    assert!(
        at > now && at <= now + Duration::from_secs(1),
        "{:?}",
        at - now
    );
    s.handle_timeout(at);
    assert!(s.wants_connection());
    s.handle_connected(at).unwrap();
    sent(s)
}

#[test]
fn the_query_asks_for_words_and_reconnect_needs_a_fixed_rate_encoding() {
    let config = SttLiveConfig::new(SttLanguage::En).reconnect(SttReconnect::default());
    assert!(
        config.query().contains("word_timestamps=true"),
        "{}",
        config.query()
    );
    let opus = SttLiveConfig::new(SttLanguage::En)
        .encoding(SttEncoding::Opus)
        .reconnect(SttReconnect::default());
    let err = opus.validate().unwrap_err().to_string();
    assert!(
        err.contains("encoding") && err.contains("linear16"),
        "{err}"
    );
    let zero =
        SttLiveConfig::new(SttLanguage::En).reconnect(SttReconnect::default().max_attempts(0));
    assert!(
        zero.validate()
            .unwrap_err()
            .to_string()
            .contains("max_attempts")
    );
    assert!(
        !SttLiveConfig::new(SttLanguage::En)
            .query()
            .contains("word_timestamps")
    );
}

#[test]
fn a_drop_replays_the_audio_after_the_last_final_word_and_shifts_the_times() {
    let t0 = Instant::now();
    let mut s = session(t0, SttReconnect::default());
    // 1.5 s of audio in 3 chunks.
    for i in 0..3 {
        s.send_audio(stream(i * 16_000, 16_000), t0).unwrap();
    }
    sent(&mut s);
    // A final whose last word ends at 0.7 s.
    s.handle_message(final_with(&[("hello", 0.1, 0.4), ("there", 0.45, 0.7)]), t0)
        .unwrap();
    let first = events(&mut s);
    let SttLiveEvent::Transcript(t) = &first[0] else {
        panic!("{first:?}")
    };
    assert!(t.words.is_empty(), "words are removed when not asked for");
    let replay = drop_and_reconnect(&mut s, t0);
    // From byte 0.7 × 32000 = 22400 to the end (48000).
    assert_eq!(audio_bytes(&replay), stream(22_400, 48_000 - 22_400));
    let got = events(&mut s);
    assert_eq!(
        got,
        [SttLiveEvent::Reconnected {
            reconnects: 1,
            replayed_bytes: 25_600,
            offset: 0.7
        }]
    );
    // The new connection's times start at 0.0 at 0.7 s of the session.
    s.handle_message(final_with(&[("how", 0.1, 0.3)]), t0)
        .unwrap();
    s.handle_message(
        WsMessage::Text(r#"{"type":"speech_started","timestamp":0.05}"#.into()),
        t0,
    )
    .unwrap();
    let got = events(&mut s);
    let SttLiveEvent::SpeechStarted { timestamp } = got[1] else {
        panic!("{got:?}")
    };
    assert!((timestamp - 0.75).abs() < 1e-9);
    // New audio goes straight out again.
    s.send_audio(vec![1u8; 100], t0).unwrap();
    assert_eq!(audio_bytes(&sent(&mut s)), vec![1u8; 100]);
}

#[test]
fn a_final_heard_before_the_drop_is_not_delivered_twice() {
    let t0 = Instant::now();
    let mut s = session(t0, SttReconnect::default());
    s.send_audio(stream(0, 2 * PER_SECOND), t0).unwrap();
    s.handle_message(final_with(&[("one", 0.0, 0.5)]), t0)
        .unwrap();
    s.handle_message(final_with(&[("two", 0.6, 1.0)]), t0)
        .unwrap();
    events(&mut s);
    let replay = drop_and_reconnect(&mut s, t0);
    assert_eq!(audio_bytes(&replay).len(), PER_SECOND);
    events(&mut s);
    // A server that re-sends a final ending at or before 1.0 s of the session: dropped.
    s.handle_message(final_with(&[("two", -0.4, 0.0)]), t0)
        .unwrap();
    assert!(events(&mut s).is_empty());
    s.handle_message(final_with(&[("three", 0.1, 0.6)]), t0)
        .unwrap();
    let got = events(&mut s);
    let [SttLiveEvent::Transcript(t)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(t.text, "three");
}

#[test]
fn retryable_closes_reconnect_and_a_normal_close_ends_the_session() {
    let t0 = Instant::now();
    let mut s = session(t0, SttReconnect::default());
    s.send_audio(stream(0, 1000), t0).unwrap();
    s.handle_message(WsMessage::Close(Some(CloseFrame::new(1011, "oops"))), t0)
        .unwrap();
    assert!(s.is_disconnected(), "1011 is retried");
    assert!(events(&mut s).is_empty(), "no error, no close event");
    // Audio sent while disconnected waits for the replay.
    s.send_audio(stream(1000, 500), t0).unwrap();
    s.finalize(t0).unwrap();
    assert!(sent(&mut s).is_empty());
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    s.handle_connected(at).unwrap();
    let replay = sent(&mut s);
    assert_eq!(audio_bytes(&replay), stream(0, 1500));
    assert_eq!(
        replay.last(),
        Some(&WsMessage::Text(r#"{"type":"finalize"}"#.into()))
    );
    // A transport error or a time limit is a drop too; a normal close is the end.
    let limit = Error::Timeout {
        phase: TimeoutPhase::Idle,
        limit: Duration::from_secs(1),
    };
    assert!(s.handle_connection_lost(Some(&limit), at));
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    s.handle_connected(at).unwrap();
    events(&mut s);
    s.handle_message(WsMessage::Close(Some(CloseFrame::new(1000, ""))), at)
        .unwrap();
    assert!(s.is_closed());
    assert!(matches!(
        &events(&mut s)[..],
        [SttLiveEvent::Closed {
            code: Some(1000),
            ..
        }]
    ));
}

#[test]
fn attempts_are_bounded_and_the_buffer_is_a_limit() {
    let t0 = Instant::now();
    let mut s = session(t0, SttReconnect::default().max_attempts(2));
    s.send_audio(stream(0, 100), t0).unwrap();
    assert!(s.handle_connection_lost(None, t0));
    let mut now = t0;
    for attempt in 1..=2 {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        assert!(s.wants_connection(), "attempt {attempt}");
        let refused = Error::transport(false, std::io::Error::other("refused"));
        let outcome = s.handle_connect_failed(refused, now);
        if attempt < 2 {
            assert!(outcome.is_ok());
        } else {
            let err = outcome.unwrap_err().to_string();
            assert!(err.contains("2 reconnect attempt"), "{err}");
        }
    }
    assert!(s.is_closed());
    assert!(matches!(&events(&mut s)[..], [SttLiveEvent::Closed { .. }]));
    let _ = now;

    // More audio since the last final than the buffer holds: a clear error.
    let mut s = session(t0, SttReconnect::default().buffer_bytes(8192));
    s.send_audio(stream(0, 10_000), t0).unwrap();
    assert!(s.handle_connection_lost(None, t0));
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    let err = s.handle_connected(at).unwrap_err().to_string();
    assert!(err.contains("buffer_bytes = 8192"), "{err}");
    assert!(s.is_closed());
}

#[test]
fn without_reconnect_a_drop_is_the_close_it_always_was() {
    let t0 = Instant::now();
    let mut s = SttLiveSession::new(SttLiveConfig::new(SttLanguage::En), t0).unwrap();
    assert!(!s.handle_connection_lost(None, t0));
    s.handle_message(WsMessage::Close(Some(CloseFrame::new(1011, ""))), t0)
        .unwrap();
    assert!(s.is_closed() && !s.is_disconnected());
}
