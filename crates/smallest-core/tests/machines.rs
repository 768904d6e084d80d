//! Property tests of the call machines ([`Call`], [`StreamState`], [`UploadCounter`],
//! [`LiveDriver`]): random interleavings of what a transport can report — heads of any
//! status and length, bodies of any size, transport failures before and after the
//! request went out, timeouts, time passing, slots granted late or never, and calls
//! made at the wrong moment — never panic, never retry once something was delivered,
//! never keep the TTS slot past the end and never exceed the retry budget.
//!
//! Time is `Instant::now()` plus generated offsets; nothing sleeps. Every machine
//! shares one [`TtsLimiter`] of concurrency 1 with its options, so a slot that is kept
//! (or taken twice) shows up in [`TtsLimiter::available`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::response::Parts;
use proptest::prelude::*;
use smallest_core::call::{
    Call, Next, Operation, ProgressHook, StreamEvent, StreamState, UPLOAD_CHUNK, UploadCounter,
    UploadOp,
};
use smallest_core::limiter::{TtsLimiter, TtsPermit};
use smallest_core::limits::LimitWait;
use smallest_core::live::{LiveDriver, LiveItem};
use smallest_core::retry::RetryPolicy;
use smallest_core::ws::{CloseFrame, LiveSession, WsMessage};
use smallest_core::{
    ApiKey, ClientBuilder, ClientOptions, Config, Error, FromOptions, GetVoiceCatalog, Health,
    OutputFormat, SttLanguage, SttLiveConfig, SttLiveEvent, SttLiveSession, TimeoutPhase,
    TranscribeRequest, TtsLiveConfig, TtsLiveEvent, TtsLiveSession, TtsRequest,
};

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// Captures the options a [`ClientBuilder`] makes.
struct Probe(ClientOptions);

impl FromOptions for Probe {
    fn from_options(_: Config, options: ClientOptions) -> Result<Self, Error> {
        Ok(Probe(options))
    }
}

fn config() -> Config {
    Config::new(ApiKey::new("sk_machines_0123456789abcdef").unwrap())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Retry, time and body settings of one case.
#[derive(Clone, Debug)]
struct Settings {
    max_retries: u32,
    backoff_ms: u64,
    budget_ms: Option<u64>,
    total_ms: Option<u64>,
    idle_ms: Option<u64>,
    max_json: u64,
    max_audio: u64,
    close_ms: u64,
    seed: u64,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        0u32..5,
        0u64..1500,
        prop::option::of(0u64..20_000),
        prop::option::of(0u64..20_000),
        prop::option::of(prop_oneof![Just(0u64), 1u64..5_000]),
        0u64..300,
        0u64..300,
        0u64..3_000,
        any::<u64>(),
    )
        .prop_map(
            |(
                max_retries,
                backoff_ms,
                budget_ms,
                total_ms,
                idle_ms,
                max_json,
                max_audio,
                close_ms,
                seed,
            )| Settings {
                max_retries,
                backoff_ms,
                budget_ms,
                total_ms,
                idle_ms,
                max_json,
                max_audio,
                close_ms,
                seed,
            },
        )
}

/// The options of `s`, queueing TTS on `limiter`.
fn options(s: &Settings, limiter: &TtsLimiter) -> ClientOptions {
    let mut policy = RetryPolicy::default().with_max_retries(s.max_retries);
    policy.initial_backoff = ms(s.backoff_ms);
    policy.budget = s.budget_ms.map(ms);
    let mut builder = ClientBuilder::<Probe>::new(config())
        .retry_policy(policy)
        .tts_limiter(limiter.clone())
        .max_json_bytes(s.max_json)
        .max_audio_bytes(s.max_audio)
        .close_timeout(ms(s.close_ms));
    if let Some(total) = s.total_ms {
        builder = builder.total_timeout(ms(total));
    }
    if let Some(idle) = s.idle_ms {
        builder = builder.idle_timeout(ms(idle));
    }
    builder.build().unwrap().0
}

/// Time passing: a moment, a while, longer than any limit.
fn advance() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..50, 3 => 0u64..5_000, 1 => 10_000u64..200_000]
}

// ---------------------------------------------------------------------------
// What a server answers
// ---------------------------------------------------------------------------

/// A response head.
#[derive(Clone, Debug)]
struct HeadGen {
    status: u16,
    content_length: Option<String>,
    content_type: Option<&'static str>,
    retry_after: Option<&'static str>,
}

impl HeadGen {
    fn parts(&self) -> Parts {
        let mut b = http::Response::builder().status(self.status);
        if let Some(v) = &self.content_length {
            b = b.header("content-length", v.as_str());
        }
        if let Some(v) = self.content_type {
            b = b.header("content-type", v);
        }
        if let Some(v) = self.retry_after {
            b = b.header("retry-after", v);
        }
        b.body(()).unwrap().into_parts().0
    }
}

fn head() -> impl Strategy<Value = HeadGen> {
    let status = prop_oneof![
        2 => 100u16..=599,
        3 => prop::sample::select(vec![
            200u16, 200, 201, 204, 400, 401, 404, 408, 413, 429, 500, 502, 503, 504,
        ]),
    ];
    let length = prop_oneof![
        2 => Just(None),
        3 => (0u64..400).prop_map(|n| Some(n.to_string())),
        1 => any::<u64>().prop_map(|n| Some(n.to_string())),
        1 => prop::sample::select(vec!["", "-1", "abc", "18446744073709551616", " 12"])
            .prop_map(|s| Some(s.to_owned())),
    ];
    let content_type = prop::sample::select(vec![
        None,
        Some("text/event-stream"),
        Some("text/event-stream; charset=utf-8"),
        Some("audio/wav"),
        Some("audio/mpeg"),
        Some("application/json"),
    ]);
    let retry_after = prop::sample::select(vec![
        None,
        Some("0"),
        Some("1"),
        Some("30"),
        Some("100000"),
        Some("soon"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT"),
    ]);
    (status, length, content_type, retry_after).prop_map(
        |(status, content_length, content_type, retry_after)| HeadGen {
            status,
            content_length,
            content_type,
            retry_after,
        },
    )
}

/// A body: what the server sent, and whether the transport (wrongly) hands over more
/// than the head allowed.
#[derive(Clone, Debug)]
struct BodyGen {
    bytes: Vec<u8>,
    overshoot: bool,
}

fn body() -> impl Strategy<Value = BodyGen> {
    let content = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..600),
        1 => Just(br#"{"status":"ok"}"#.to_vec()),
        1 => Just(
            br#"{"message":"Too many concurrent requests","error_code":"CONCURRENCY_LIMIT"}"#
                .to_vec()
        ),
        1 => Just(br#"{"message":"quota exhausted, upgrade your plan"}"#.to_vec()),
        1 => Just(br#"{"status":"success","transcription":"Hello."}"#.to_vec()),
        1 => Just(b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\xc0\x5d\0\0\x80\xbb\0\0\x02\0\x10\0data\0\0\0\0".to_vec()),
        1 => Just(b"data: {\"audio\":\"AQID\"}\n\n".to_vec()),
    ];
    (content, prop::bool::weighted(0.1)).prop_map(|(bytes, overshoot)| BodyGen { bytes, overshoot })
}

// ---------------------------------------------------------------------------
// Call
// ---------------------------------------------------------------------------

/// What a transport (or a confused one) does to a [`Call`].
#[derive(Clone, Debug)]
enum CallInput {
    /// Ask what next, and do it: keep a slot wait, note a request, sleep the delay.
    Poll,
    /// Poll the slot wait the machine handed out.
    Wait,
    /// Another caller takes the only slot.
    Hog,
    /// … and gives it back.
    Unhog,
    /// Hand the machine a slot (asked for or not).
    StraySlot,
    /// A response head (at any moment: the machine ignores it unless a request is out).
    Head(HeadGen),
    /// A body (likewise).
    Body(BodyGen),
    /// The connection failed.
    Failure { request_sent: bool },
    /// A time limit of the attempt ran out.
    Timeout(u8),
    /// Time passes.
    Advance(u64),
}

fn call_input() -> impl Strategy<Value = CallInput> {
    prop_oneof![
        6 => Just(CallInput::Poll),
        2 => Just(CallInput::Wait),
        1 => Just(CallInput::Hog),
        1 => Just(CallInput::Unhog),
        1 => Just(CallInput::StraySlot),
        4 => head().prop_map(CallInput::Head),
        3 => body().prop_map(CallInput::Body),
        2 => any::<bool>().prop_map(|request_sent| CallInput::Failure { request_sent }),
        1 => (0u8..4).prop_map(CallInput::Timeout),
        2 => advance().prop_map(CallInput::Advance),
    ]
}

/// Where the transport is in an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Nothing out: poll next.
    Idle,
    /// A request is out: its head (or a failure) is due.
    Head,
    /// The head asked for at most this many body bytes.
    Body(u64),
}

/// What the next `poll` must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Must {
    Anything,
    /// The head decided the call.
    End,
    /// A failure that is not retryable was reported.
    Fail,
}

/// An interpreter of a [`Call`] that checks the machine at every step.
struct CallHarness<'l, O: Operation> {
    call: Call<O>,
    limiter: &'l TtsLimiter,
    uses_slot: bool,
    max_attempts: u32,
    now: Instant,
    wall: SystemTime,
    wait: Option<LimitWait>,
    hog: Option<TtsPermit>,
    expect: Expect,
    asked_slot: bool,
    must: Must,
    /// When the last attempt was reported failed (a retry is decided then).
    failed_at: Option<Instant>,
    sends: u32,
    ended: bool,
    output: Option<O::Output>,
}

fn timeout(phase: u8) -> Error {
    let phase = match phase % 4 {
        0 => TimeoutPhase::Connect,
        1 => TimeoutPhase::ResponseHead,
        2 => TimeoutPhase::Idle,
        _ => TimeoutPhase::Total,
    };
    Error::Timeout {
        phase,
        limit: Duration::from_secs(1),
    }
}

fn poll_now<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

impl<'l, O: Operation> CallHarness<'l, O> {
    fn new(call: Call<O>, limiter: &'l TtsLimiter, max_attempts: u32, now: Instant) -> Self {
        let uses_slot = call.operation().uses_tts_slot();
        CallHarness {
            call,
            limiter,
            uses_slot,
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

    /// Slots held outside the machine.
    fn outside(&self) -> usize {
        usize::from(self.hog.is_some())
    }

    fn apply(&mut self, input: &CallInput) -> Result<(), TestCaseError> {
        match input {
            CallInput::Poll => self.poll()?,
            CallInput::Wait => self.wait_slot(),
            CallInput::Hog => {
                if self.hog.is_none() {
                    self.hog = self.limiter.try_acquire();
                }
            }
            CallInput::Unhog => self.hog = None,
            CallInput::StraySlot => {
                if let Some(permit) = self.limiter.try_acquire() {
                    let before = self.limiter.available() + 1;
                    self.call.slot_taken(permit);
                    if self.asked_slot {
                        // What it asked for, by another road: it keeps it.
                        self.asked_slot = false;
                        self.wait = None;
                    } else {
                        prop_assert_eq!(
                            self.limiter.available(),
                            before,
                            "a slot the machine did not ask for must be given straight back"
                        );
                    }
                }
            }
            CallInput::Head(head) => {
                let answer = self.call.handle_head(head.parts());
                if self.expect == Expect::Head {
                    match answer {
                        Some(max) => self.expect = Expect::Body(max),
                        None => {
                            self.expect = Expect::Idle;
                            self.must = Must::End;
                        }
                    }
                } else {
                    prop_assert!(answer.is_none(), "a head with no request out was read");
                }
            }
            CallInput::Body(body) => {
                let mut bytes = body.bytes.clone();
                if let Expect::Body(max) = self.expect {
                    if !body.overshoot {
                        bytes.truncate(usize::try_from(max).unwrap_or(usize::MAX));
                    }
                    self.expect = Expect::Idle;
                    self.failed_at = Some(self.now);
                }
                self.call
                    .handle_body(Bytes::from(bytes), self.now, self.wall);
            }
            CallInput::Failure { request_sent } => self.fail(
                Error::transport(*request_sent, "connection reset"),
                !*request_sent,
            ),
            // Only a connect timeout is safe to retry: nothing reached the server.
            CallInput::Timeout(phase) => self.fail(timeout(*phase), *phase % 4 == 0),
            CallInput::Advance(n) => self.pass(ms(*n)),
        }
        Ok(())
    }

    /// Reports a failed attempt; `retryable` is what API.md §8.4 says of it.
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

    fn poll(&mut self) -> Result<(), TestCaseError> {
        let next = self.call.poll(self.now, self.wall);
        if self.expect != Expect::Idle {
            // Asked before reporting the attempt: refused, and the report is still due.
            prop_assert!(
                matches!(next, Next::Fail(_)),
                "polled mid-attempt: {next:?}"
            );
            return Ok(());
        }
        if self.ended {
            // (b) Nothing follows the end, least of all another request.
            prop_assert!(matches!(next, Next::Fail(_)), "after the end: {next:?}");
            return Ok(());
        }
        match self.must {
            Must::Anything => {}
            Must::End => prop_assert!(
                matches!(next, Next::Done(_) | Next::Fail(_)),
                "the head decided the call, yet: {next:?}"
            ),
            Must::Fail => prop_assert!(
                matches!(next, Next::Fail(_)),
                "a failure that is not retryable was retried: {next:?}"
            ),
        }
        self.must = Must::Anything;
        match next {
            Next::TakeSlot(wait) => {
                prop_assert!(self.uses_slot, "a call without a TTS slot asked for one");
                // The machine asks only when it holds none (or it would wait for itself).
                prop_assert_eq!(self.limiter.available() + self.outside(), 1);
                self.wait = Some(wait);
                self.asked_slot = true;
            }
            Next::Send(_) => {
                self.sends += 1;
                // (d) The retry budget.
                prop_assert!(
                    self.sends <= self.max_attempts,
                    "attempt {} of at most {}",
                    self.sends,
                    self.max_attempts
                );
                prop_assert_eq!(self.call.attempts(), self.sends);
                if self.uses_slot {
                    prop_assert!(self.hog.is_none() && self.limiter.available() == 0);
                } else {
                    prop_assert_eq!(self.limiter.available() + self.outside(), 1);
                }
                self.expect = Expect::Head;
            }
            Next::Sleep(delay) => {
                prop_assert!(self.sends > 0, "a backoff before any attempt");
                if let (Some(deadline), Some(at)) = (self.call.limits().deadline, self.failed_at) {
                    prop_assert!(at + delay < deadline.at, "a retry past the total deadline");
                }
                self.pass(delay);
            }
            Next::Done(output) => {
                self.ended = true;
                self.output = Some(output);
            }
            Next::Fail(_) => self.ended = true,
        }
        Ok(())
    }

    /// A transport that only ever fails before sending: the call must end, soon.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..64 {
            if self.ended {
                return Ok(());
            }
            if self.expect != Expect::Idle {
                self.fail(Error::transport(false, "connection refused"), true);
            }
            self.hog = None;
            self.poll()?;
            if self.asked_slot {
                self.wait_slot();
                prop_assert!(!self.asked_slot, "a free slot was not granted");
            }
        }
        prop_assert!(false, "the call never ended");
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum OpKind {
    Tts,
    Catalog,
    Health,
    Upload { rewindable: bool, len: Option<u64> },
    Stream,
}

fn op_kind() -> impl Strategy<Value = OpKind> {
    prop_oneof![
        1 => Just(OpKind::Tts),
        1 => Just(OpKind::Catalog),
        1 => Just(OpKind::Health),
        1 => (any::<bool>(), prop::option::of(0u64..1_000_000))
            .prop_map(|(rewindable, len)| OpKind::Upload { rewindable, len }),
        2 => Just(OpKind::Stream),
    ]
}

/// Runs a call through `inputs`, then to its end.
fn run_call<'l, O: Operation>(
    call: Call<O>,
    limiter: &'l TtsLimiter,
    max_attempts: u32,
    now: Instant,
    inputs: &[CallInput],
) -> Result<CallHarness<'l, O>, TestCaseError> {
    let mut h = CallHarness::new(call, limiter, max_attempts, now);
    for input in inputs {
        h.apply(input)?;
    }
    h.finish()?;
    h.wait = None;
    h.hog = None;
    Ok(h)
}

/// (c) Once everything is dropped, every slot is free and nobody waits.
fn all_free(limiter: &TtsLimiter) -> Result<(), TestCaseError> {
    prop_assert_eq!(limiter.available(), limiter.concurrency());
    prop_assert_eq!(limiter.waiting(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------
// StreamState
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum StreamInput {
    Poll,
    Data(Vec<u8>),
    End,
    Error,
    Advance(u64),
    /// Sleep until the instant the last `Read` named.
    Wake,
}

fn sse_piece() -> impl Strategy<Value = Vec<u8>> {
    let audio = prop::collection::vec(any::<u8>(), 0..9).prop_map(|pcm| {
        format!(
            "event: audio\ndata: {{\"audio\": \"{}\", \"done\": false, \"status\": \"206\"}}\n\n",
            BASE64.encode(pcm)
        )
        .into_bytes()
    });
    prop_oneof![
        6 => audio.clone(),
        2 => Just(b"data: {\"status\": \"200\", \"done\": true}\n\n".to_vec()),
        1 => Just(b"event: error\ndata: {\"message\": \"boom\", \"code\": \"E1\"}\n\n".to_vec()),
        1 => Just(b"data: {\"status\": \"500\", \"message\": \"internal\"}\n\n".to_vec()),
        1 => Just(b": keepalive\n\n".to_vec()),
        1 => Just(b"event: ping\ndata: {}\n\n".to_vec()),
        1 => Just(b"data: not json\n\n".to_vec()),
        1 => Just(b"data: {\"audio\": \"***\"}\n\n".to_vec()),
        1 => (audio, any::<prop::sample::Index>()).prop_map(|(frame, cut)| {
            frame[..cut.index(frame.len() + 1)].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn stream_input() -> impl Strategy<Value = StreamInput> {
    prop_oneof![
        6 => Just(StreamInput::Poll),
        6 => sse_piece().prop_map(StreamInput::Data),
        1 => Just(StreamInput::End),
        1 => Just(StreamInput::Error),
        2 => advance().prop_map(StreamInput::Advance),
        2 => Just(StreamInput::Wake),
    ]
}

struct StreamHarness<'l> {
    state: StreamState,
    limiter: &'l TtsLimiter,
    now: Instant,
    wake: Option<Instant>,
    chunks: u64,
    bytes: u64,
    ended: bool,
}

impl StreamHarness<'_> {
    fn apply(&mut self, input: &StreamInput) -> Result<(), TestCaseError> {
        match input {
            StreamInput::Poll => self.poll()?,
            StreamInput::Data(data) => self.state.handle_data(data),
            StreamInput::End => self.state.handle_end(),
            StreamInput::Error => {
                self.state
                    .handle_error(Error::transport(true, "connection reset"));
                if !self.ended {
                    // (b) A broken body fails the stream at once, chunks or not: it is
                    // never read again, nor hidden behind the chunks still buffered.
                    let event = self.state.poll(self.now);
                    prop_assert!(matches!(event, StreamEvent::Fail(_)), "{event:?}");
                    self.ended = true;
                    self.check_end()?;
                }
            }
            StreamInput::Advance(n) => self.now += ms(*n),
            StreamInput::Wake => {
                if let Some(at) = self.wake.take() {
                    self.now = self.now.max(at);
                }
                self.poll()?;
            }
        }
        Ok(())
    }

    fn poll(&mut self) -> Result<(), TestCaseError> {
        let event = self.state.poll(self.now);
        if self.ended {
            prop_assert!(
                matches!(event, StreamEvent::End),
                "after the end: {event:?}"
            );
            return Ok(());
        }
        match event {
            StreamEvent::Chunk(chunk) => {
                // (b) Each byte once, in order: nothing is fetched again.
                prop_assert_eq!(chunk.index(), self.chunks);
                prop_assert_eq!(chunk.offset_bytes(), self.bytes);
                prop_assert!(!chunk.is_empty());
                self.chunks += 1;
                self.bytes += chunk.len() as u64;
            }
            StreamEvent::Read(wake) => {
                if let Some(at) = wake {
                    prop_assert!(at > self.now, "a wake-up that is already due");
                }
                self.wake = wake;
            }
            StreamEvent::End => {
                // A cut stream is an error, never an early end.
                prop_assert!(self.state.is_complete(), "ended without `done`");
                self.ended = true;
            }
            StreamEvent::Fail(e) => {
                // Complete and failed only when the `done` frame arrived but the body
                // then did not end in time (or broke): the limits still apply.
                prop_assert!(
                    !self.state.is_complete()
                        || matches!(e, Error::Timeout { .. } | Error::Transport { .. }),
                    "a complete stream failed with {e}"
                );
                self.ended = true;
            }
        }
        prop_assert_eq!(self.state.chunks(), self.chunks);
        prop_assert_eq!(self.state.audio_bytes(), self.bytes);
        self.check_end()
    }

    fn check_end(&self) -> Result<(), TestCaseError> {
        if self.ended {
            prop_assert!(self.state.is_done());
            // (c) The slot goes back at the end, not when the stream is dropped.
            prop_assert!(!self.state.holds_slot());
            prop_assert_eq!(self.limiter.available(), 1);
        } else {
            prop_assert!(self.state.holds_slot(), "the slot went back mid-stream");
            prop_assert_eq!(self.limiter.available(), 0);
        }
        Ok(())
    }

    /// The body ends: the stream must end too, within its buffered chunks.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.state.handle_end();
        for _ in 0..10_000 {
            if self.ended {
                return Ok(());
            }
            self.poll()?;
        }
        prop_assert!(false, "the stream never ended");
        Ok(())
    }
}

fn format() -> impl Strategy<Value = OutputFormat> {
    prop::sample::select(vec![
        OutputFormat::Pcm,
        OutputFormat::Wav,
        OutputFormat::Mp3,
        OutputFormat::Ulaw,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Call: (a) no panic, (b) no request after the end, (c) the slot is free once the
    /// call is dropped, (d) at most `max_retries + 1` attempts; a head that decides the
    /// call and a failure that is not retryable end it; the slot is asked for once
    /// and held for every TTS attempt; no backoff reaches past the total deadline.
    #[test]
    fn call_machine(
        s in settings(),
        kind in op_kind(),
        inputs in prop::collection::vec(call_input(), 0..48),
    ) {
        let limiter = TtsLimiter::new(1);
        let options = options(&s, &limiter);
        let config = config();
        let bound = s.max_retries + 1;
        let t0 = Instant::now();
        match kind {
            OpKind::Tts => {
                let request = TtsRequest::new("Hello there.", "meher");
                let call = Call::new(&request, &config, &options, s.seed);
                drop(run_call(call, &limiter, bound, t0, &inputs)?);
            }
            OpKind::Catalog => {
                let call = Call::new(&GetVoiceCatalog, &config, &options, s.seed);
                drop(run_call(call, &limiter, bound, t0, &inputs)?);
            }
            OpKind::Health => {
                let call = Call::new(&Health, &config, &options, s.seed);
                drop(run_call(call, &limiter, bound, t0, &inputs)?);
            }
            OpKind::Upload { rewindable, len } => {
                let template = TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En);
                let call = UploadOp::new(&template, len, "audio/wav")
                    .call(&config, &options, rewindable, s.seed);
                // A reader cannot be read twice: one attempt, whatever the policy.
                let bound = if rewindable { bound } else { 1 };
                drop(run_call(call, &limiter, bound, t0, &inputs)?);
            }
            OpKind::Stream => {
                let request = TtsRequest::new("Hello there.", "meher");
                let call = Call::stream(&request, &config, &options, s.seed);
                drop(run_call(call, &limiter, bound, t0, &inputs)?);
            }
        }
        all_free(&limiter)?;
    }

    /// SSE synthesis, opened by its call and then streamed: (a) no panic, (b) once
    /// the head said 2xx nothing is sent again and no byte is delivered twice,
    /// (c) the slot is held exactly while the stream runs and goes back at its end;
    /// the end is `End` only for a complete stream; wake-ups are in the future.
    #[test]
    fn stream_machine(
        s in settings(),
        format in format(),
        opening in prop::collection::vec(call_input(), 0..24),
        inputs in prop::collection::vec(stream_input(), 0..64),
    ) {
        let limiter = TtsLimiter::new(1);
        let options = options(&s, &limiter);
        let config = config();
        let request = TtsRequest::new("Hello there.", "meher").output_format(format);
        let t0 = Instant::now();
        let call = Call::stream(&request, &config, &options, s.seed);
        // A head that opens the stream, so that most cases get to the body.
        let mut opening = opening;
        opening.extend([
            CallInput::Poll,
            CallInput::Wait,
            CallInput::Poll,
            CallInput::Head(HeadGen {
                status: 200,
                content_length: None,
                content_type: Some("text/event-stream"),
                retry_after: None,
            }),
            CallInput::Poll,
        ]);
        let mut h = run_call(call, &limiter, s.max_retries + 1, t0, &opening)?;
        let now = h.now;
        if let Some(decoder) = h.output.take() {
            prop_assert_eq!(limiter.available(), 0, "the opened stream holds the slot");
            let state = h.call.into_stream(decoder, t0);
            let mut sh = StreamHarness {
                state,
                limiter: &limiter,
                now,
                wake: None,
                chunks: 0,
                bytes: 0,
                ended: false,
            };
            for input in &inputs {
                sh.apply(input)?;
            }
            sh.finish()?;
            drop(sh);
        } else {
            drop(h);
        }
        all_free(&limiter)?;
    }

    /// UploadCounter: reads of at most `want()` bytes are counted and reported in
    /// order, `want()` is 0 exactly when the body is complete, and a source that ends
    /// before its declared length is an error.
    #[test]
    fn upload_counter(
        total in prop::option::of(prop_oneof![Just(0u64), 0u64..300_000]),
        reads in prop::collection::vec((any::<u8>(), prop::bool::weighted(0.05)), 0..16),
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let hook: ProgressHook = Arc::new(move |p| log.lock().unwrap().push((p.sent, p.total)));
        let mut c = UploadCounter::new(total, Some(hook));
        let mut sent = 0u64;
        let mut reported = Vec::new();
        for (fraction, eof) in reads {
            let want = c.want();
            prop_assert!(want <= UPLOAD_CHUNK);
            prop_assert_eq!(want == 0, c.is_done());
            if let Some(total) = total {
                prop_assert!(sent <= total);
                if !c.is_done() {
                    prop_assert_eq!(want as u64, (total - sent).min(UPLOAD_CHUNK as u64));
                }
            }
            if c.is_done() {
                break;
            }
            let n = if eof { 0 } else { want * usize::from(fraction) / 255 };
            let result = c.handle_read(n);
            if n == 0 {
                prop_assert!(c.is_done());
                prop_assert_eq!(result.is_err(), total.is_some_and(|t| sent < t));
            } else {
                prop_assert!(result.is_ok());
                sent += n as u64;
                reported.push((sent, total));
            }
            prop_assert_eq!(c.progress().sent, sent);
        }
        prop_assert_eq!(&*seen.lock().unwrap(), &reported);
    }
}

// ---------------------------------------------------------------------------
// LiveDriver
// ---------------------------------------------------------------------------

/// A session with sender verbs the harness can call by number.
trait Live: LiveSession<Event: std::fmt::Debug> + Sized {
    fn open(now: Instant, keepalive: Option<Duration>) -> Self;
    fn act(&mut self, op: u8, now: Instant);
    fn is_closed_event(event: &Self::Event) -> bool;
}

impl Live for TtsLiveSession {
    fn open(now: Instant, keepalive: Option<Duration>) -> Self {
        let mut s = TtsLiveSession::new(TtsLiveConfig::new("magnus"), now).unwrap();
        s.set_keepalive(keepalive);
        s
    }

    fn act(&mut self, op: u8, now: Instant) {
        let _ = match op % 5 {
            0 => self.speak("Hello there.", now).map(drop),
            1 => self.send_text("Hello ", now).map(drop),
            2 => self.flush(now).map(drop),
            3 => self.finish_request(now).map(drop),
            _ => self.close(now),
        };
    }

    fn is_closed_event(event: &TtsLiveEvent) -> bool {
        matches!(event, TtsLiveEvent::Closed { .. })
    }
}

impl Live for SttLiveSession {
    fn open(now: Instant, keepalive: Option<Duration>) -> Self {
        let mut s = SttLiveSession::new(SttLiveConfig::new(SttLanguage::En), now).unwrap();
        s.set_keepalive(keepalive);
        s
    }

    fn act(&mut self, op: u8, now: Instant) {
        let _ = match op % 4 {
            0 => self
                .send_audio(Bytes::from_static(&[0u8; 640]), now)
                .map(drop),
            1 => self.finalize(now),
            2 => self.close_stream(now),
            _ => self.close(now),
        };
    }

    fn is_closed_event(event: &SttLiveEvent) -> bool {
        matches!(event, SttLiveEvent::Closed { .. })
    }
}

#[derive(Clone, Debug)]
enum LiveInput {
    Frame(WsMessage),
    Dropped,
    Failure(u8),
    PollTimeout,
    /// Reach the instant `poll_timeout` names (`jump`), or call `handle_timeout` now.
    Timeout {
        jump: bool,
    },
    Advance(u64),
    Transmit,
    HasOutgoing,
    Items(u8),
    Act(u8),
}

fn text(s: impl Into<String>) -> WsMessage {
    WsMessage::Text(s.into())
}

/// Frames of both live protocols (each is garbage to the other session), and garbage.
fn frame() -> impl Strategy<Value = WsMessage> {
    let id = prop::sample::select(vec![
        "",
        r#""request_id":"task_a","#,
        r#""request_id":"task_b","#,
    ]);
    let b64 = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| BASE64.encode(b)),
        1 => Just("***".to_owned()),
    ];
    let word = r#"{"status":"word_timestamp","data":{"id":1,"word":"Hi","start":0.1,"end":0.3}}"#;
    prop_oneof![
        4 => (id.clone(), b64).prop_map(|(id, audio)| text(format!(
            r#"{{{id}"session_id":"ws_1","status":"chunk","data":{{"audio":"{audio}"}}}}"#
        ))),
        2 => id.clone().prop_map(|id| text(format!(
            r#"{{{id}"session_id":"ws_1","status":"complete"}}"#
        ))),
        1 => Just(text(word)),
        1 => (id, prop::sample::select(vec![
            "boom",
            "Connection timed out after 60 seconds of inactivity",
        ])).prop_map(|(id, m)| text(format!(r#"{{{id}"status":"error","message":"{m}"}}"#))),
        1 => Just(text(r#"{"status":"error","error":{"message":"Too many","code":"CONCURRENCY_LIMIT"}}"#)),
        1 => Just(text(r#"{"status":"queued","position":3}"#)),
        3 => (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(fin, last, fz)| text(format!(
            r#"{{"type":"transcription","transcript":"hi","is_final":{fin},"is_last":{last},"from_finalize":{fz}}}"#
        ))),
        1 => Just(text(r#"{"type":"speech_started","timestamp":1.5}"#)),
        1 => Just(text(r#"{"type":"speech_ended"}"#)),
        1 => Just(text(r#"{"type":"error","message":"Audio decode failed"}"#)),
        1 => Just(text(r#"{"type":"utterance_end","last_word_end":3.2}"#)),
        2 => ".{0,24}".prop_map(text),
        1 => Just(text("[1,2,3]")),
        1 => prop::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| WsMessage::Binary(Bytes::from(b))),
        1 => Just(WsMessage::Ping(Bytes::new())),
        1 => Just(WsMessage::Pong(Bytes::new())),
        1 => Just(WsMessage::Close(None)),
        2 => (prop::sample::select(vec![1000u16, 1001, 1006, 1008, 1011, 4000]), ".{0,8}")
            .prop_map(|(code, reason)| WsMessage::Close(Some(CloseFrame::new(code, reason)))),
    ]
}

fn live_input() -> impl Strategy<Value = LiveInput> {
    prop_oneof![
        8 => frame().prop_map(LiveInput::Frame),
        1 => Just(LiveInput::Dropped),
        1 => any::<u8>().prop_map(LiveInput::Failure),
        2 => Just(LiveInput::PollTimeout),
        3 => any::<bool>().prop_map(|jump| LiveInput::Timeout { jump }),
        2 => advance().prop_map(LiveInput::Advance),
        3 => Just(LiveInput::Transmit),
        1 => Just(LiveInput::HasOutgoing),
        4 => any::<u8>().prop_map(LiveInput::Items),
        4 => any::<u8>().prop_map(LiveInput::Act),
    ]
}

fn live_failure(kind: u8) -> Error {
    match kind % 3 {
        0 => Error::transport(true, "connection reset"),
        1 => Error::Timeout {
            phase: TimeoutPhase::Idle,
            limit: Duration::from_secs(1),
        },
        _ => Error::Stream {
            code: None,
            message: "protocol error".into(),
        },
    }
}

struct LiveHarness<'l, S: Live> {
    driver: LiveDriver<S>,
    limiter: &'l TtsLimiter,
    now: Instant,
    closed_events: u32,
    ended: bool,
}

impl<S: Live> LiveHarness<'_, S> {
    fn apply(&mut self, input: &LiveInput) -> Result<(), TestCaseError> {
        match input {
            LiveInput::Frame(frame) => self.driver.handle_frame(frame.clone(), self.now),
            LiveInput::Dropped => self.driver.handle_dropped(self.now),
            LiveInput::Failure(kind) => self.driver.handle_failure(live_failure(*kind), self.now),
            LiveInput::PollTimeout => {
                let _ = self.driver.poll_timeout(self.now);
            }
            LiveInput::Timeout { jump: false } => self.driver.handle_timeout(self.now),
            LiveInput::Timeout { jump: true } => {
                if let Some(due) = self.driver.poll_timeout(self.now) {
                    self.now = self.now.max(due);
                    self.driver.handle_timeout(self.now);
                    // No busy loop: a timer that fired moves on (one spare wake-up at most,
                    // when two limits end at the same instant).
                    for _ in 0..2 {
                        match self.driver.poll_timeout(self.now) {
                            Some(due) if due <= self.now => self.driver.handle_timeout(self.now),
                            _ => break,
                        }
                    }
                    let due = self.driver.poll_timeout(self.now);
                    prop_assert!(
                        due.is_none_or(|due| due > self.now),
                        "a timer that keeps firing at the same instant"
                    );
                }
            }
            LiveInput::Advance(n) => self.now += ms(*n),
            LiveInput::Transmit => self.transmit()?,
            LiveInput::HasOutgoing => {
                let _ = self.driver.has_outgoing();
            }
            LiveInput::Items(n) => {
                for _ in 0..=(*n % 8) {
                    if !self.item()? {
                        break;
                    }
                }
            }
            LiveInput::Act(op) => self.driver.session_mut().act(*op, self.now),
        }
        self.check_slot()
    }

    fn transmit(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            match self.driver.poll_transmit(self.now) {
                Some(frame) => {
                    prop_assert!(!self.ended, "a frame to send after the end: {frame:?}")
                }
                None => return Ok(()),
            }
        }
        prop_assert!(false, "poll_transmit never ran dry");
        Ok(())
    }

    /// Takes one item; `false` when there was none.
    fn item(&mut self) -> Result<bool, TestCaseError> {
        let item = self.driver.poll_item();
        if self.ended {
            // (e) Nothing after the end but the end.
            prop_assert!(
                matches!(item, Some(LiveItem::End)),
                "after the end: {item:?}"
            );
            return Ok(true);
        }
        match item {
            None => {
                // A closed connection is never waited on.
                prop_assert!(!self.driver.is_closed(), "closed, yet no end");
                return Ok(false);
            }
            Some(LiveItem::Event(event)) => {
                prop_assert_eq!(self.closed_events, 0, "an event after Closed: {:?}", event);
                if S::is_closed_event(&event) {
                    self.closed_events += 1;
                }
            }
            Some(LiveItem::Error(_)) => {}
            Some(LiveItem::Connect) => {
                // These sessions neither reconnect nor redial.
                prop_assert!(false, "a new connection asked for");
            }
            Some(LiveItem::End) => {
                prop_assert_eq!(self.closed_events, 1, "the end without one Closed event");
                prop_assert!(self.driver.is_closed());
                self.ended = true;
            }
        }
        Ok(true)
    }

    /// (c)/(e) The slot is held until the end, and free from the end on.
    fn check_slot(&self) -> Result<(), TestCaseError> {
        if self.ended {
            prop_assert!(!self.driver.holds_slot());
            prop_assert_eq!(self.limiter.available(), 1);
        } else {
            prop_assert!(
                self.driver.holds_slot(),
                "the slot went back before the end"
            );
            prop_assert_eq!(self.limiter.available(), 0);
        }
        Ok(())
    }

    /// The connection fails: the receiver reaches the end.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.driver
            .handle_failure(Error::transport(true, "connection reset"), self.now);
        for _ in 0..100_000 {
            self.item()?;
            if self.ended {
                break;
            }
        }
        prop_assert!(self.ended, "the receiver never reached the end");
        for _ in 0..3 {
            self.item()?;
        }
        self.transmit()?;
        self.check_slot()
    }
}

fn run_live<S: Live>(
    s: &Settings,
    keepalive: Option<u64>,
    inputs: &[LiveInput],
) -> Result<(), TestCaseError> {
    let limiter = TtsLimiter::new(1);
    let options = options(s, &limiter);
    let t0 = Instant::now();
    let slot = limiter.try_acquire();
    prop_assert!(slot.is_some());
    let session = S::open(t0, keepalive.map(ms));
    let mut h = LiveHarness {
        driver: LiveDriver::new(session, slot, &options),
        limiter: &limiter,
        now: t0,
        closed_events: 0,
        ended: false,
    };
    for input in inputs {
        h.apply(input)?;
    }
    h.finish()?;
    drop(h);
    all_free(&limiter)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// LiveDriver over a TTS session: (a) no panic on any frame, drop, failure or
    /// timeout, (e) after `End` only `End`, no frame to send, the slot free; exactly
    /// one `Closed` event, last; a closed connection always reaches `End`; timers do
    /// not spin.
    #[test]
    fn live_driver_tts(
        s in settings(),
        keepalive in prop::option::of(1u64..10_000),
        inputs in prop::collection::vec(live_input(), 0..64),
    ) {
        run_live::<TtsLiveSession>(&s, keepalive, &inputs)?;
    }

    /// The same over an STT session.
    #[test]
    fn live_driver_stt(
        s in settings(),
        keepalive in prop::option::of(1u64..10_000),
        inputs in prop::collection::vec(live_input(), 0..64),
    ) {
        run_live::<SttLiveSession>(&s, keepalive, &inputs)?;
    }
}
