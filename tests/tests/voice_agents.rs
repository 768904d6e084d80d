//! What voice agents need from live sessions, on every transport over `ws://` and
//! `wss://`, against the emulator: TTS continuation contexts (one generation from many
//! fragments, several contexts in order, barge-in), and live STT that survives a
//! dropped connection.

use std::time::{Duration, Instant};

use smallest_core::stt_live::SttReconnect;
use smallest_core::tts_live::ContextId;
use smallest_core::{
    SttLanguage, SttLiveConfig, SttLiveEvent, TtsLiveConfig, TtsLiveEvent, TtsModel,
};
use smallest_emulator::{Fault, FaultRule};
use smallest_tests::emulator;
use smallest_tests::live::{LiveSetup, TtsRx, on_every_live_transport};

const VOICE: &str = "meher";
const RATE: u32 = 24000;
const LIMIT: Duration = Duration::from_secs(120);

fn config() -> TtsLiveConfig {
    TtsLiveConfig::new(VOICE)
        .model(TtsModel::LightningV31Pro)
        .sample_rate(RATE)
        .word_timestamps(true)
}

/// What the receiver heard of one context, up to its `ContextDone`.
#[derive(Debug, Default)]
struct Heard {
    pcm: Vec<u8>,
    completes: usize,
    /// Positions of its chunks on the connection's timeline, with their lengths.
    chunks: Vec<(Duration, usize)>,
    /// Timeline start and end of its words.
    words: Vec<(f64, f64)>,
}

/// Reads events until context `id` is done (not cancelled); events of other contexts
/// fail the test.
fn until_done(s: &LiveSetup<'_>, rx: &mut dyn TtsRx, id: &str) -> Heard {
    let mut heard = Heard::default();
    loop {
        let event = rx
            .recv()
            .unwrap_or_else(|| panic!("{s}: the session ended before {id} was done"))
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        match event {
            TtsLiveEvent::Audio {
                context,
                data,
                position,
                sample_rate,
                ..
            } => {
                assert_eq!(context.as_ref().map(ContextId::as_str), Some(id), "{s}");
                assert_eq!(sample_rate, RATE);
                heard.chunks.push((position, data.len()));
                heard.pcm.extend_from_slice(&data);
            }
            TtsLiveEvent::WordTimestamp {
                context,
                timeline_start,
                timeline_end,
                ..
            } => {
                assert_eq!(context.as_ref().map(ContextId::as_str), Some(id), "{s}");
                heard.words.push((timeline_start, timeline_end));
            }
            TtsLiveEvent::Complete { context, .. } => {
                assert_eq!(context.as_ref().map(ContextId::as_str), Some(id), "{s}");
                heard.completes += 1;
            }
            TtsLiveEvent::ContextDone {
                context, cancelled, ..
            } => {
                assert_eq!((context.as_str(), cancelled), (id, false), "{s}");
                return heard;
            }
            other => panic!("{s}: while {id} plays: {other:?}"),
        }
    }
}

/// What the emulator's listener hears in 16-bit PCM at `RATE`.
fn transcript(pcm: &[u8]) -> String {
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    smallest_emulator::speech::transcribe_pcm(&samples, RATE)
}

fn pcm_len(d: Duration) -> usize {
    (d.as_secs_f64() * f64::from(RATE)).round() as usize * 2
}

#[test]
fn fragments_of_one_context_are_one_continuous_generation() {
    on_every_live_transport(emulator(), LIMIT, |s| {
        let (tx, mut rx) = s.api.tts_live(config()).unwrap();
        // An LLM's tokens, cut anywhere (mid-word too).
        for piece in ["Hel", "lo wor", "ld. How are", " you to", "day?"] {
            assert_eq!(tx.push("turn-1", piece).unwrap(), 0, "{s}");
        }
        tx.finish_context("turn-1").unwrap();
        let heard = until_done(s, rx.as_mut(), "turn-1");
        assert_eq!(
            transcript(&heard.pcm),
            "Hello world. How are you today?",
            "{s}: one generation of the joined text"
        );
        assert!(
            heard.completes >= 2,
            "{s}: a release per sentence: {heard:?}"
        );
        // The chunks follow each other on the connection's timeline without a gap.
        let mut at = 0usize;
        for (position, len) in &heard.chunks {
            assert!(
                pcm_len(*position).abs_diff(at) <= 2,
                "{s}: {position:?} vs {at}"
            );
            at += len;
        }
        // Word timings on the timeline only go forward, across the releases too.
        assert!(heard.words.len() >= 6, "{s}: {:?}", heard.words);
        for pair in heard.words.windows(2) {
            assert!(pair[1].0 >= pair[0].0 - 1e-6, "{s}: {:?}", heard.words);
        }
        let last = heard.words.last().unwrap().1;
        assert!(
            last <= heard.pcm.len() as f64 / 2.0 / f64::from(RATE) + 0.05,
            "{s}"
        );
        // The legacy mode still works on the same connection.
        tx.speak("Legacy.").unwrap();
        loop {
            match rx.recv().unwrap().unwrap() {
                TtsLiveEvent::Complete { context: None, .. } => break,
                TtsLiveEvent::Audio { context: None, .. }
                | TtsLiveEvent::WordTimestamp { context: None, .. } => {}
                other => panic!("{s}: {other:?}"),
            }
        }
        tx.close().unwrap();
    });
}

#[test]
fn three_contexts_in_flight_finish_in_order() {
    const TURNS: [(&str, &str); 3] = [
        ("a", "The first answer."),
        ("b", "Then a second one."),
        ("c", "And the third."),
    ];
    on_every_live_transport(emulator(), LIMIT, |s| {
        let (tx, mut rx) = s.api.tts_live(config()).unwrap();
        for (index, (id, text)) in TURNS.iter().enumerate() {
            let (head, tail) = text.split_at(text.len() / 2);
            assert_eq!(tx.push(id, head).unwrap(), index as u64);
            tx.push(id, tail).unwrap();
            tx.finish_context(id).unwrap();
        }
        let mut end = Duration::ZERO;
        for (id, text) in TURNS {
            let heard = until_done(s, rx.as_mut(), id);
            assert_eq!(transcript(&heard.pcm), text, "{s}: {id}");
            // Each context starts where the one before ended.
            assert!(
                pcm_len(heard.chunks[0].0).abs_diff(pcm_len(end)) <= 2,
                "{s}"
            );
            let (last, len) = *heard.chunks.last().unwrap();
            end = last + Duration::from_secs_f64(len as f64 / 2.0 / f64::from(RATE));
        }
        tx.close().unwrap();
    });
}

#[test]
fn a_cancelled_context_is_silent_at_once_and_the_next_is_clean() {
    const LONG: &str = "This answer is long. It has many sentences. The user will \
                        interrupt it. Nobody hears the end of it. It goes on and on.";
    const NEXT: &str = "Sure, I can help with that.";
    // Paced like the real service, so the cancel lands mid-generation.
    let builder = emulator().realtime_factor(1.0);
    on_every_live_transport(builder, LIMIT, |s| {
        for hard in [false, true] {
            let (tx, mut rx) = s.api.tts_live(config()).unwrap();
            tx.push("long", LONG).unwrap();
            tx.finish_context("long").unwrap();
            // Audio of it plays ...
            let mut chunks = 0;
            while chunks < 2 {
                if let TtsLiveEvent::Audio { .. } = rx.recv().unwrap().unwrap() {
                    chunks += 1;
                }
            }
            // ... until the user barges in.
            let cancelled = if hard {
                tx.cancel_hard("long")
            } else {
                tx.cancel("long")
            };
            assert!(cancelled.unwrap(), "{s}: the context was in flight");
            tx.push("next", NEXT).unwrap();
            tx.finish_context("next").unwrap();
            let mut saw_done = false;
            let mut pcm = Vec::new();
            loop {
                match rx.recv().unwrap().unwrap() {
                    TtsLiveEvent::ContextDone {
                        context, cancelled, ..
                    } if context.as_str() == "long" => {
                        assert!(cancelled && !saw_done, "{s}");
                        saw_done = true;
                    }
                    TtsLiveEvent::ContextDone { context, .. } => {
                        assert_eq!(context.as_str(), "next");
                        break;
                    }
                    TtsLiveEvent::Audio { context, data, .. } => {
                        assert_eq!(
                            context.as_ref().map(ContextId::as_str),
                            Some("next"),
                            "{s} (hard: {hard}): audio of a cancelled context"
                        );
                        pcm.extend_from_slice(&data);
                    }
                    TtsLiveEvent::WordTimestamp { context, .. }
                    | TtsLiveEvent::Complete { context, .. } => {
                        assert_eq!(context.as_ref().map(ContextId::as_str), Some("next"));
                    }
                    TtsLiveEvent::Reconnected { .. } => assert!(hard, "{s}"),
                    other => panic!("{s}: {other:?}"),
                }
            }
            assert!(saw_done, "{s}: ContextDone of the cancelled context");
            assert_eq!(transcript(&pcm), NEXT, "{s} (hard: {hard})");
            tx.close().unwrap();
        }
    });
}

#[test]
fn live_stt_survives_two_dropped_connections() {
    const TEXT: &str = "The quick brown fox jumps over the lazy dog. A second sentence \
                        follows the first one. And the third sentence ends the file.";
    let drops = FaultRule::new(
        "/waves/v1/stt/live",
        Fault::WsDrop {
            after_messages: 30,
            after_ms: None,
        },
    )
    .times(2);
    on_every_live_transport(emulator(), LIMIT, move |s| {
        // The transports share the emulator: each gets its own drops.
        s.emulator.clear_faults();
        s.emulator.inject(drops.clone());
        let audio: Vec<u8> = smallest_emulator::speech::synthesize_pcm(TEXT, 16000, 1.0)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        // A final every six words: the replay is cut at the last one's end.
        let config = SttLiveConfig::new(SttLanguage::En)
            .max_words(6)
            .reconnect(SttReconnect::default());
        let (tx, mut rx) = s.api.stt_live(config).unwrap();
        let writer = std::thread::spawn(move || {
            for frame in audio.chunks(3200) {
                tx.send_audio(frame).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            tx.close_stream().unwrap();
            tx
        });
        let started = Instant::now();
        let mut finals = Vec::new();
        let mut reconnects = 0;
        let mut last_end = 0.0f64;
        while let Some(event) = rx.recv() {
            assert!(started.elapsed() < LIMIT, "{s}");
            match event.unwrap_or_else(|e| panic!("{s}: a drop must not be an error: {e}")) {
                SttLiveEvent::Transcript(t) if t.is_final => {
                    assert!(t.words.is_empty(), "{s}: words not asked for");
                    if !t.text.trim().is_empty() {
                        finals.push(t.text.trim().to_owned());
                    }
                }
                SttLiveEvent::Reconnected {
                    reconnects: n,
                    offset,
                    ..
                } => {
                    finals.push(format!("<reconnected at {offset:.2} s>"));
                    reconnects = n;
                    assert!(offset >= last_end, "{s}: the timeline goes forward");
                    last_end = offset;
                }
                SttLiveEvent::Closed { .. } => break,
                _ => {}
            }
        }
        writer.join().unwrap();
        eprintln!("{s}: {reconnects} reconnects, finals: {finals:?}");
        assert_eq!(reconnects, 2, "{s}: one Reconnected per drop");
        let text: Vec<&str> = finals
            .iter()
            .map(String::as_str)
            .filter(|f| !f.starts_with('<'))
            .collect();
        assert!(text.len() > 3, "{s}: finals along the way: {finals:?}");
        // Each drop came after a final: the replays were cut, not whole.
        assert!(
            !finals.iter().any(|f| f == "<reconnected at 0.00 s>"),
            "{s}: {finals:?}"
        );
        assert_eq!(text.join(" "), TEXT, "{s}: the whole transcript, once");
    });
}

#[test]
fn live_stt_word_times_are_on_the_session_timeline_across_drops() {
    const TEXT: &str = "One two three four five six seven eight nine ten eleven twelve.";
    let drops = FaultRule::new(
        "/waves/v1/stt/live",
        Fault::WsDrop {
            after_messages: 8,
            after_ms: None,
        },
    )
    .times(1);
    on_every_live_transport(emulator(), LIMIT, move |s| {
        // The transports share the emulator: each gets its own drops.
        s.emulator.clear_faults();
        s.emulator.inject(drops.clone());
        let audio: Vec<u8> = smallest_emulator::speech::synthesize_pcm(TEXT, 16000, 1.0)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let seconds = audio.len() as f64 / 32_000.0;
        let config = SttLiveConfig::new(SttLanguage::En)
            .word_timestamps(true)
            .reconnect(SttReconnect::default());
        let (tx, mut rx) = s.api.stt_live(config).unwrap();
        for frame in audio.chunks(3200) {
            tx.send_audio(frame).unwrap();
        }
        tx.close_stream().unwrap();
        let mut words = Vec::new();
        let mut reconnected = false;
        while let Some(event) = rx.recv() {
            match event.unwrap() {
                SttLiveEvent::Transcript(t) if t.is_final => {
                    words.extend(t.words.iter().map(|w| (w.word.clone(), w.start, w.end)));
                }
                SttLiveEvent::Reconnected { .. } => reconnected = true,
                SttLiveEvent::Closed { .. } => break,
                _ => {}
            }
        }
        assert!(reconnected, "{s}");
        let text: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(text.join(" "), TEXT, "{s}");
        for pair in words.windows(2) {
            assert!(
                pair[1].1 >= pair[0].2 - 1e-6,
                "{s}: not monotonic: {words:?}"
            );
        }
        assert!(words.last().unwrap().2 <= seconds + 0.01, "{s}: {words:?}");
    });
}

#[test]
fn live_stt_reconnects_after_a_1011_close_and_a_1000_is_the_end() {
    const TEXT: &str = "Closed with an internal error, then resumed on a new connection.";
    let close = FaultRule::new(
        "/waves/v1/stt/live",
        Fault::WsClose {
            code: 1011,
            after_messages: 25,
        },
    )
    .times(1);
    on_every_live_transport(emulator(), LIMIT, move |s| {
        s.emulator.clear_faults();
        s.emulator.inject(close.clone());
        let audio: Vec<u8> = smallest_emulator::speech::synthesize_pcm(TEXT, 16000, 1.0)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let config = SttLiveConfig::new(SttLanguage::En)
            .max_words(5)
            .reconnect(SttReconnect::default());
        let (tx, mut rx) = s.api.stt_live(config).unwrap();
        for frame in audio.chunks(3200) {
            tx.send_audio(frame).unwrap();
        }
        tx.close_stream().unwrap();
        let mut finals = Vec::new();
        let mut reconnects = 0;
        let mut closed = None;
        while let Some(event) = rx.recv() {
            match event.unwrap_or_else(|e| panic!("{s}: {e}")) {
                SttLiveEvent::Transcript(t) if t.is_final && !t.text.trim().is_empty() => {
                    finals.push(t.text.trim().to_owned());
                }
                SttLiveEvent::Reconnected { reconnects: n, .. } => reconnects = n,
                SttLiveEvent::Closed { code, .. } => closed = Some(code),
                _ => {}
            }
        }
        assert_eq!(reconnects, 1, "{s}");
        assert_eq!(finals.join(" "), TEXT, "{s}");
        // The session's own end (after is_last) is a normal close, not a reconnect.
        assert_eq!(closed, Some(Some(1000)), "{s}");
    });
}
