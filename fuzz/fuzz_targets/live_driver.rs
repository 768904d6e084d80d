//! The live-session driver over a TTS and an STT session, driven by opcodes read from
//! the input: frames (both protocols' messages with fuzzed fields, and raw bytes),
//! drops, failures, timeouts, time passing, sender verbs. No panic; after `End` only
//! `End` and nothing to send; exactly one `Closed` event before it; the slot held
//! until the end and free after it; a failed connection always reaches the end;
//! timers do not spin.
#![no_main]

use std::fmt::Debug;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use smallest_core::limiter::TtsLimiter;
use smallest_core::live::{LiveDriver, LiveItem};
use smallest_core::ws::{CloseFrame, LiveSession, WsMessage};
use smallest_core::{
    ApiKey, ClientBuilder, Config, Error, SttLanguage, SttLiveConfig, SttLiveEvent, SttLiveSession,
    TimeoutPhase, TtsLiveConfig, TtsLiveEvent, TtsLiveSession,
};

mod common;

use common::{Input, Probe};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const IDS: [&str; 3] = ["", r#""request_id":"task_a","#, r#""request_id":"task_b","#];
const B64: [&str; 6] = ["AQID", "AQIDBA==", "AA==", "", "***", "AQ"];

fn frame(input: &mut Input<'_>) -> WsMessage {
    let text = |s: String| WsMessage::Text(s);
    let id = IDS[usize::from(input.byte()) % IDS.len()];
    match input.byte() % 20 {
        0 | 1 => {
            let audio = B64[usize::from(input.byte()) % B64.len()];
            text(format!(
                r#"{{{id}"session_id":"ws_1","status":"chunk","data":{{"audio":"{audio}"}}}}"#
            ))
        }
        2 => text(format!(
            r#"{{{id}"session_id":"ws_1","status":"complete"}}"#
        )),
        3 => {
            let word = json_string(&input.text());
            let (a, b) = (input.byte(), input.byte());
            text(format!(
                r#"{{{id}"status":"word_timestamp","data":{{"id":{a},"word":{word},"start":{a}.5,"end":{b}}}}}"#
            ))
        }
        4 => {
            let m = if input.byte() & 1 == 0 {
                "Connection timed out after 60 seconds of inactivity".to_owned()
            } else {
                input.text()
            };
            text(format!(
                r#"{{{id}"status":"error","message":{}}}"#,
                json_string(&m)
            ))
        }
        5 => text(
            r#"{"status":"error","error":{"message":"Too many","code":"CONCURRENCY_LIMIT"}}"#
                .into(),
        ),
        6 => text(format!(r#"{{"status":{}}}"#, json_string(&input.text()))),
        7 | 8 => {
            let flags = input.byte();
            let (fin, last, fz) = (flags & 1 == 1, flags & 2 == 2, flags & 4 == 4);
            let t = json_string(&input.text());
            text(format!(
                r#"{{"type":"transcription","transcript":{t},"is_final":{fin},"is_last":{last},"from_finalize":{fz}}}"#
            ))
        }
        9 => text(format!(
            r#"{{"type":"speech_started","timestamp":{}}}"#,
            input.byte()
        )),
        10 => text(r#"{"type":"speech_ended"}"#.into()),
        11 => text(format!(
            r#"{{"type":"error","message":{}}}"#,
            json_string(&input.text())
        )),
        12 => text(format!(r#"{{"type":{}}}"#, json_string(&input.text()))),
        13 | 14 => text(input.text()),
        15 => {
            let n = usize::from(input.byte() % 32);
            WsMessage::Binary(Bytes::copy_from_slice(input.bytes(n)))
        }
        16 => WsMessage::Ping(Bytes::new()),
        17 => WsMessage::Pong(Bytes::new()),
        18 => WsMessage::Close(None),
        _ => WsMessage::Close(Some(CloseFrame::new(input.u16(), input.text()))),
    }
}

trait Live: LiveSession<Event: Debug> + Sized {
    fn open(now: Instant) -> Self;
    fn act(&mut self, op: u8, now: Instant);
    fn is_closed_event(event: &Self::Event) -> bool;
}

impl Live for TtsLiveSession {
    fn open(now: Instant) -> Self {
        TtsLiveSession::new(TtsLiveConfig::new("magnus"), now).unwrap()
    }

    fn act(&mut self, op: u8, now: Instant) {
        let _ = match op % 6 {
            0 => self.speak("Hello there.", now).map(drop),
            1 => self.send_text("Hello ", now).map(drop),
            2 => self.flush(now).map(drop),
            3 => self.finish_request(now).map(drop),
            4 => self.close(now),
            _ => {
                self.set_keepalive(Some(Duration::from_millis(u64::from(op))));
                Ok(())
            }
        };
    }

    fn is_closed_event(event: &TtsLiveEvent) -> bool {
        matches!(event, TtsLiveEvent::Closed { .. })
    }
}

impl Live for SttLiveSession {
    fn open(now: Instant) -> Self {
        SttLiveSession::new(SttLiveConfig::new(SttLanguage::En), now).unwrap()
    }

    fn act(&mut self, op: u8, now: Instant) {
        let _ = match op % 5 {
            0 => self
                .send_audio(Bytes::from_static(&[0u8; 640]), now)
                .map(drop),
            1 => self.finalize(now),
            2 => self.close_stream(now),
            3 => self.close(now),
            _ => {
                self.set_keepalive(Some(Duration::from_millis(u64::from(op))));
                Ok(())
            }
        };
    }

    fn is_closed_event(event: &SttLiveEvent) -> bool {
        matches!(event, SttLiveEvent::Closed { .. })
    }
}

struct Harness<'l, S: Live> {
    driver: LiveDriver<S>,
    limiter: &'l TtsLimiter,
    now: Instant,
    closed_events: u32,
    ended: bool,
}

impl<S: Live> Harness<'_, S> {
    fn step(&mut self, input: &mut Input<'_>) {
        match input.byte() % 12 {
            0 | 1 | 2 => {
                let frame = frame(input);
                self.driver.handle_frame(frame, self.now);
            }
            3 => self.driver.handle_dropped(self.now),
            4 => {
                let error = match input.byte() % 3 {
                    0 => Error::transport(true, "connection reset"),
                    1 => Error::Timeout {
                        phase: TimeoutPhase::Idle,
                        limit: Duration::from_secs(1),
                    },
                    _ => Error::Stream {
                        code: None,
                        message: "protocol error".into(),
                    },
                };
                self.driver.handle_failure(error, self.now);
            }
            5 => {
                let _ = self.driver.poll_timeout(self.now);
            }
            6 => {
                if input.byte() & 1 == 0 {
                    self.driver.handle_timeout(self.now);
                } else if let Some(due) = self.driver.poll_timeout(self.now) {
                    self.now = self.now.max(due);
                    self.driver.handle_timeout(self.now);
                    for _ in 0..2 {
                        match self.driver.poll_timeout(self.now) {
                            Some(due) if due <= self.now => self.driver.handle_timeout(self.now),
                            _ => break,
                        }
                    }
                    let due = self.driver.poll_timeout(self.now);
                    assert!(
                        due.is_none_or(|due| due > self.now),
                        "a timer that keeps firing"
                    );
                }
            }
            7 => {
                let n = u64::from(input.u16());
                self.now += if n & 1 == 0 { ms(n % 100) } else { ms(n * 4) };
            }
            8 => self.transmit(),
            9 => {
                let _ = self.driver.has_outgoing();
            }
            10 => {
                for _ in 0..=(input.byte() % 8) {
                    if !self.item() {
                        break;
                    }
                }
            }
            _ => {
                let op = input.byte();
                self.driver.session_mut().act(op, self.now);
            }
        }
        self.check_slot();
    }

    fn transmit(&mut self) {
        for _ in 0..100_000 {
            match self.driver.poll_transmit(self.now) {
                Some(frame) => assert!(!self.ended, "a frame to send after the end: {frame:?}"),
                None => return,
            }
        }
        panic!("poll_transmit never ran dry");
    }

    fn item(&mut self) -> bool {
        let item = self.driver.poll_item();
        if self.ended {
            assert!(
                matches!(item, Some(LiveItem::End)),
                "after the end: {item:?}"
            );
            return true;
        }
        match item {
            None => {
                assert!(!self.driver.is_closed(), "closed, yet no end");
                return false;
            }
            Some(LiveItem::Event(event)) => {
                assert_eq!(self.closed_events, 0, "an event after Closed: {event:?}");
                if S::is_closed_event(&event) {
                    self.closed_events += 1;
                }
            }
            Some(LiveItem::Error(_)) => {}
            Some(LiveItem::End) => {
                assert_eq!(self.closed_events, 1, "the end without one Closed event");
                assert!(self.driver.is_closed());
                self.ended = true;
            }
        }
        true
    }

    fn check_slot(&self) {
        if self.ended {
            assert!(!self.driver.holds_slot());
            assert_eq!(self.limiter.available(), 1);
        } else {
            assert!(
                self.driver.holds_slot(),
                "the slot went back before the end"
            );
            assert_eq!(self.limiter.available(), 0);
        }
    }

    fn finish(&mut self) {
        self.driver
            .handle_failure(Error::transport(true, "connection reset"), self.now);
        for _ in 0..1_000_000 {
            self.item();
            if self.ended {
                break;
            }
        }
        assert!(self.ended, "the receiver never reached the end");
        self.item();
        self.transmit();
        self.check_slot();
    }
}

fn run<S: Live>(input: &mut Input<'_>) {
    let limiter = TtsLimiter::new(1);
    let mut builder = ClientBuilder::<Probe>::new(Config::new(
        ApiKey::new("sk_fuzz_0123456789abcdef").unwrap(),
    ))
    .tts_limiter(limiter.clone())
    .close_timeout(ms(u64::from(input.u16() % 3000)));
    let idle = input.u16();
    if idle & 1 == 1 {
        builder = builder.idle_timeout(ms(u64::from(idle >> 3)));
    }
    let options = builder.build().unwrap().0;
    let now = Instant::now();
    let slot = limiter.try_acquire();
    assert!(slot.is_some());
    let mut h = Harness {
        driver: LiveDriver::new(S::open(now), slot, &options),
        limiter: &limiter,
        now,
        closed_events: 0,
        ended: false,
    };
    while !input.is_empty() {
        h.step(input);
    }
    h.finish();
    drop(h);
    assert_eq!(limiter.available(), 1, "a slot was kept after the end");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    if input.byte() & 1 == 0 {
        run::<TtsLiveSession>(&mut input);
    } else {
        run::<SttLiveSession>(&mut input);
    }
});
