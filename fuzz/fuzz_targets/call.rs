//! The call machines (`Call` for one-shot, upload and SSE calls, then `StreamState`)
//! driven by opcodes read from the input: heads of any status and length, bodies,
//! failures, timeouts, time passing, slots granted late or never, calls made at the
//! wrong moment. No panic, no request after the end, at most `max_retries + 1`
//! attempts, no byte delivered twice, and the TTS slot free at the end.
#![no_main]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use smallest_core::call::{Call, Next, Operation, StreamEvent, StreamState, UploadOp};
use smallest_core::limiter::{Acquire, TtsLimiter, TtsPermit};
use smallest_core::retry::RetryPolicy;
use smallest_core::{
    ApiKey, ClientBuilder, Config, Error, GetVoiceCatalog, Health, OutputFormat, SttLanguage,
    TimeoutPhase, TranscribeRequest, TtsRequest,
};

mod common;

use common::{Input, Probe};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn poll_now<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// Time passing: a moment, a while, longer than any limit.
fn advance(input: &mut Input<'_>) -> Duration {
    let n = u64::from(input.u16());
    match n % 3 {
        0 => ms(n % 50),
        1 => ms(n % 5_000),
        _ => ms(n * 4),
    }
}

const STATUSES: [u16; 14] = [
    200, 200, 201, 204, 400, 401, 404, 408, 413, 429, 500, 502, 503, 504,
];
const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("text/event-stream"),
    Some("text/event-stream; charset=utf-8"),
    Some("audio/wav"),
    Some("audio/mpeg"),
    Some("application/json"),
];
const RETRY_AFTER: [Option<&str>; 7] = [
    None,
    Some("0"),
    Some("1"),
    Some("30"),
    Some("100000"),
    Some("soon"),
    Some("Wed, 21 Oct 2015 07:28:00 GMT"),
];
const BODIES: [&[u8]; 6] = [
    br#"{"status":"ok"}"#,
    br#"{"message":"Too many concurrent requests","error_code":"CONCURRENCY_LIMIT"}"#,
    br#"{"message":"quota exhausted, upgrade your plan"}"#,
    br#"{"status":"success","transcription":"Hello."}"#,
    b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\xc0\x5d\0\0\x80\xbb\0\0\x02\0\x10\0data\0\0\0\0",
    b"data: {\"audio\":\"AQID\"}\n\n",
];

fn head(input: &mut Input<'_>) -> http::response::Parts {
    let pick = input.byte();
    let status = if pick & 1 == 0 {
        STATUSES[usize::from(pick >> 1) % STATUSES.len()]
    } else {
        100 + input.u16() % 500
    };
    let mut b = http::Response::builder().status(status);
    let length = input.byte();
    let length = match length % 6 {
        0 | 1 => None,
        2 | 3 => Some(u64::from(input.u16() % 400).to_string()),
        4 => Some(u64::from_le_bytes(std::array::from_fn(|_| input.byte())).to_string()),
        _ => Some(
            ["", "-1", "abc", "18446744073709551616", " 12"][usize::from(length) % 5].to_owned(),
        ),
    };
    if let Some(v) = length {
        b = b.header("content-length", v);
    }
    if let Some(v) = CONTENT_TYPES[usize::from(input.byte()) % CONTENT_TYPES.len()] {
        b = b.header("content-type", v);
    }
    if let Some(v) = RETRY_AFTER[usize::from(input.byte()) % RETRY_AFTER.len()] {
        b = b.header("retry-after", v);
    }
    b.body(()).unwrap().into_parts().0
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Idle,
    Head,
    Body(u64),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Must {
    Anything,
    End,
    Fail,
}

struct Harness<'l, O: Operation> {
    call: Call<O>,
    limiter: &'l TtsLimiter,
    uses_slot: bool,
    max_attempts: u32,
    now: Instant,
    wall: SystemTime,
    wait: Option<Acquire>,
    hog: Option<TtsPermit>,
    expect: Expect,
    asked_slot: bool,
    must: Must,
    failed_at: Option<Instant>,
    sends: u32,
    ended: bool,
    output: Option<O::Output>,
}

impl<'l, O: Operation> Harness<'l, O> {
    fn new(call: Call<O>, limiter: &'l TtsLimiter, max_attempts: u32, now: Instant) -> Self {
        Harness {
            uses_slot: call.operation().uses_tts_slot(),
            call,
            limiter,
            max_attempts,
            now,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            wait: None,
            hog: None,
            expect: Expect::Idle,
            asked_slot: false,
            must: Must::Anything,
            failed_at: None,
            sends: 0,
            ended: false,
            output: None,
        }
    }

    fn pass(&mut self, d: Duration) {
        self.now += d;
        self.wall += d;
    }

    fn outside(&self) -> usize {
        usize::from(self.hog.is_some())
    }

    /// One opcode; `false` when it asks to go on to the stream.
    fn step(&mut self, input: &mut Input<'_>) -> bool {
        match input.byte() % 12 {
            0 | 1 => self.poll(),
            2 => self.wait_slot(),
            3 => {
                if self.hog.is_none() {
                    self.hog = self.limiter.try_acquire();
                }
            }
            4 => self.hog = None,
            5 => {
                if let Some(permit) = self.limiter.try_acquire() {
                    let before = self.limiter.available() + 1;
                    self.call.slot_taken(permit);
                    if self.asked_slot {
                        self.asked_slot = false;
                        self.wait = None;
                    } else {
                        assert_eq!(self.limiter.available(), before, "a stray slot was kept");
                    }
                }
            }
            6 => {
                let answer = self.call.handle_head(head(input));
                if self.expect == Expect::Head {
                    match answer {
                        Some(max) => self.expect = Expect::Body(max),
                        None => {
                            self.expect = Expect::Idle;
                            self.must = Must::End;
                        }
                    }
                } else {
                    assert!(answer.is_none(), "a head with no request out was read");
                }
            }
            7 => {
                let kind = input.byte();
                let mut body = match kind % 4 {
                    0 => BODIES[usize::from(kind >> 2) % BODIES.len()].to_vec(),
                    _ => {
                        let n = usize::from(input.u16() % 1024);
                        input.bytes(n).to_vec()
                    }
                };
                if let Expect::Body(max) = self.expect {
                    // A transport hands over at most what the head allowed, mostly.
                    if kind & 0x80 == 0 {
                        body.truncate(usize::try_from(max).unwrap_or(usize::MAX));
                    }
                    self.expect = Expect::Idle;
                    self.failed_at = Some(self.now);
                }
                self.call
                    .handle_body(Bytes::from(body), self.now, self.wall);
            }
            8 => {
                let sent = input.byte() & 1 == 1;
                self.fail(Error::transport(sent, "connection reset"), !sent);
            }
            9 => {
                let (phase, retryable) = match input.byte() % 4 {
                    0 => (TimeoutPhase::Connect, true),
                    1 => (TimeoutPhase::ResponseHead, false),
                    2 => (TimeoutPhase::Idle, false),
                    _ => (TimeoutPhase::Total, false),
                };
                let limit = Duration::from_secs(1);
                self.fail(Error::Timeout { phase, limit }, retryable);
            }
            10 => {
                let d = advance(input);
                self.pass(d);
            }
            _ => return false,
        }
        true
    }

    fn fail(&mut self, error: Error, retryable: bool) {
        if self.expect != Expect::Idle {
            self.expect = Expect::Idle;
            self.failed_at = Some(self.now);
            if !retryable {
                self.must = Must::Fail;
            }
        }
        self.call.handle_failure(error, self.now, self.wall);
    }

    fn wait_slot(&mut self) {
        if let Some(wait) = &mut self.wait
            && let Poll::Ready(permit) = poll_now(wait)
        {
            self.wait = None;
            self.asked_slot = false;
            self.call.slot_taken(permit);
        }
    }

    fn poll(&mut self) {
        let next = self.call.poll(self.now, self.wall);
        if self.expect != Expect::Idle {
            assert!(
                matches!(next, Next::Fail(_)),
                "polled mid-attempt: {next:?}"
            );
            return;
        }
        if self.ended {
            assert!(matches!(next, Next::Fail(_)), "after the end: {next:?}");
            return;
        }
        match self.must {
            Must::Anything => {}
            Must::End => assert!(
                matches!(next, Next::Done(_) | Next::Fail(_)),
                "the head decided the call, yet: {next:?}"
            ),
            Must::Fail => assert!(
                matches!(next, Next::Fail(_)),
                "a failure that is not retryable was retried: {next:?}"
            ),
        }
        self.must = Must::Anything;
        match next {
            Next::TakeSlot(wait) => {
                assert!(self.uses_slot);
                assert_eq!(self.limiter.available() + self.outside(), 1);
                self.wait = Some(wait);
                self.asked_slot = true;
            }
            Next::Send(_) => {
                self.sends += 1;
                assert!(
                    self.sends <= self.max_attempts,
                    "attempt {} of {}",
                    self.sends,
                    self.max_attempts
                );
                assert_eq!(self.call.attempts(), self.sends);
                if self.uses_slot {
                    assert!(self.hog.is_none() && self.limiter.available() == 0);
                } else {
                    assert_eq!(self.limiter.available() + self.outside(), 1);
                }
                self.expect = Expect::Head;
            }
            Next::Sleep(delay) => {
                assert!(self.sends > 0);
                if let (Some(deadline), Some(at)) = (self.call.limits().deadline, self.failed_at) {
                    assert!(at + delay < deadline.at, "a retry past the total deadline");
                }
                self.pass(delay);
            }
            Next::Done(output) => {
                self.ended = true;
                self.output = Some(output);
            }
            Next::Fail(_) => self.ended = true,
        }
    }

    /// A transport that only fails before sending: the call ends, soon.
    fn finish(&mut self) {
        for _ in 0..64 {
            if self.ended {
                break;
            }
            if self.expect != Expect::Idle {
                self.fail(Error::transport(false, "connection refused"), true);
            }
            self.hog = None;
            self.poll();
            if self.asked_slot {
                self.wait_slot();
                assert!(!self.asked_slot, "a free slot was not granted");
            }
        }
        assert!(self.ended, "the call never ended");
        self.wait = None;
        self.hog = None;
    }
}

fn run<'l, O: Operation>(
    call: Call<O>,
    limiter: &'l TtsLimiter,
    max_attempts: u32,
    input: &mut Input<'_>,
) -> Harness<'l, O> {
    let mut h = Harness::new(call, limiter, max_attempts, Instant::now());
    while !input.is_empty() && h.step(input) {}
    h.finish();
    h
}

const SSE: [&[u8]; 8] = [
    b"event: audio\ndata: {\"audio\": \"AQIDBA==\", \"done\": false, \"status\": \"206\"}\n\n",
    b"event: audio\ndata: {\"audio\": \"AQID\", \"done\": false, \"status\": \"206\"}\n\n",
    b"data: {\"status\": \"200\", \"done\": true}\n\n",
    b"event: error\ndata: {\"message\": \"boom\", \"code\": \"E1\"}\n\n",
    b"data: {\"status\": \"500\", \"message\": \"internal\"}\n\n",
    b": keepalive\n\n",
    b"event: ping\ndata: {}\n\n",
    b"data: {\"audio\": \"***\"}\n\n",
];

struct Stream<'l> {
    state: StreamState,
    limiter: &'l TtsLimiter,
    now: Instant,
    wake: Option<Instant>,
    chunks: u64,
    bytes: u64,
    ended: bool,
}

impl Stream<'_> {
    fn step(&mut self, input: &mut Input<'_>) {
        match input.byte() % 8 {
            0 | 1 => self.poll(),
            2 => {
                let pick = input.byte();
                let frame = SSE[usize::from(pick) % SSE.len()];
                // Whole frames, or cut anywhere.
                let cut = if pick & 0x80 == 0 {
                    frame.len()
                } else {
                    usize::from(input.byte()) % (frame.len() + 1)
                };
                self.state.handle_data(&frame[..cut]);
            }
            3 => {
                let n = usize::from(input.byte());
                let data = input.bytes(n).to_vec();
                self.state.handle_data(&data);
            }
            4 => self.state.handle_end(),
            5 => {
                self.state
                    .handle_error(Error::transport(true, "connection reset"));
                if !self.ended {
                    let event = self.state.poll(self.now);
                    assert!(matches!(event, StreamEvent::Fail(_)), "{event:?}");
                    self.ended = true;
                    self.check_end();
                }
            }
            6 => self.now += advance(input),
            _ => {
                if let Some(at) = self.wake.take() {
                    self.now = self.now.max(at);
                }
                self.poll();
            }
        }
    }

    fn poll(&mut self) {
        let event = self.state.poll(self.now);
        if self.ended {
            assert!(
                matches!(event, StreamEvent::End),
                "after the end: {event:?}"
            );
            return;
        }
        match event {
            StreamEvent::Chunk(chunk) => {
                assert_eq!(chunk.index(), self.chunks);
                assert_eq!(chunk.offset_bytes(), self.bytes);
                assert!(!chunk.is_empty());
                self.chunks += 1;
                self.bytes += chunk.len() as u64;
            }
            StreamEvent::Read(wake) => {
                if let Some(at) = wake {
                    assert!(at > self.now, "a wake-up that is already due");
                }
                self.wake = wake;
            }
            StreamEvent::End => {
                assert!(self.state.is_complete(), "ended without `done`");
                self.ended = true;
            }
            StreamEvent::Fail(e) => {
                assert!(
                    !self.state.is_complete()
                        || matches!(e, Error::Timeout { .. } | Error::Transport { .. }),
                    "a complete stream failed with {e}"
                );
                self.ended = true;
            }
        }
        assert_eq!(self.state.chunks(), self.chunks);
        assert_eq!(self.state.audio_bytes(), self.bytes);
        self.check_end();
    }

    fn check_end(&self) {
        if self.ended {
            assert!(self.state.is_done());
            assert!(!self.state.holds_slot());
            assert_eq!(self.limiter.available(), 1);
        } else {
            assert!(self.state.holds_slot(), "the slot went back mid-stream");
            assert_eq!(self.limiter.available(), 0);
        }
    }

    fn finish(&mut self) {
        self.state.handle_end();
        for _ in 0..100_000 {
            if self.ended {
                return;
            }
            self.poll();
        }
        panic!("the stream never ended");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let limiter = TtsLimiter::new(1);
    let max_retries = u32::from(input.byte() % 5);
    let mut policy = RetryPolicy::default().with_max_retries(max_retries);
    policy.initial_backoff = ms(u64::from(input.u16() % 1500));
    let budget = input.u16();
    policy.budget = (budget & 1 == 1).then(|| ms(u64::from(budget >> 1)));
    let mut builder = ClientBuilder::<Probe>::new(Config::new(
        ApiKey::new("sk_fuzz_0123456789abcdef").unwrap(),
    ))
    .retry_policy(policy)
    .tts_limiter(limiter.clone())
    .max_json_bytes(u64::from(input.byte()))
    .max_audio_bytes(u64::from(input.byte()));
    let total = input.u16();
    if total & 1 == 1 {
        builder = builder.total_timeout(ms(u64::from(total >> 1)));
    }
    let idle = input.u16();
    if idle & 1 == 1 {
        builder = builder.idle_timeout(ms(u64::from(idle >> 3)));
    }
    let options = builder.build().unwrap().0;
    let config = Config::new(ApiKey::new("sk_fuzz_0123456789abcdef").unwrap());
    let seed = u64::from(input.u16());
    let bound = max_retries + 1;
    let kind = input.byte();
    match kind % 6 {
        0 => {
            let request = TtsRequest::new("Hello there.", "meher");
            drop(run(
                Call::new(&request, &config, &options, seed),
                &limiter,
                bound,
                &mut input,
            ));
        }
        1 => drop(run(
            Call::new(&GetVoiceCatalog, &config, &options, seed),
            &limiter,
            bound,
            &mut input,
        )),
        2 => drop(run(
            Call::new(&Health, &config, &options, seed),
            &limiter,
            bound,
            &mut input,
        )),
        3 => {
            let template = TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En);
            let rewindable = kind & 0x80 == 0;
            let len = (kind & 0x40 == 0).then(|| u64::from(input.u16()));
            let call = UploadOp::new(&template, len, "audio/wav")
                .call(&config, &options, rewindable, seed);
            let bound = if rewindable { bound } else { 1 };
            drop(run(call, &limiter, bound, &mut input));
        }
        _ => {
            let format = OutputFormat::ALL[usize::from(kind >> 3) % OutputFormat::ALL.len()];
            let request = TtsRequest::new("Hello there.", "meher").output_format(format);
            let t0 = Instant::now();
            let call = Call::stream(&request, &config, &options, seed);
            let mut h = run(call, &limiter, bound, &mut input);
            if let Some(decoder) = h.output.take() {
                assert_eq!(limiter.available(), 0, "the opened stream holds the slot");
                let now = h.now;
                let state = h.call.into_stream(decoder, t0);
                let mut s = Stream {
                    state,
                    limiter: &limiter,
                    now,
                    wake: None,
                    chunks: 0,
                    bytes: 0,
                    ended: false,
                };
                while !input.is_empty() {
                    s.step(&mut input);
                }
                s.finish();
            }
        }
    }
    assert_eq!(limiter.available(), 1, "a slot was kept after the end");
    assert_eq!(limiter.waiting(), 0);
});
