//! Call machines: every decision of a call, for a transport that only moves bytes.
//!
//! A transport asks a machine "what next?" and does what it is told, in the shape of
//! ureq-proto's `Call` and quinn-proto's poll verbs. A [`Call`] answers one of
//! [`Next`]: take a TTS slot, send this request, sleep this long (then ask again),
//! done, or fail. While a request is out, the transport reports what happened:
//! [`Call::handle_head`] (which answers how much of the body to read, if any),
//! [`Call::handle_body`], or [`Call::handle_failure`]. Retry classification and
//! backoff, the retry budget, the total deadline, body limits and TTS slot accounting
//! are all decided here, once, for every transport.
//!
//! Time and randomness are inputs: `now` (an [`Instant`]) and `wall` (a
//! [`SystemTime`], only for `Retry-After` dates) on every verb, and a 64-bit seed for
//! the retry jitter when the machine is made (transports draw it from the OS).
//!
//! The loop a transport writes, in full (an async one awaits instead of blocking):
//!
//! ```
//! # use std::time::{Instant, SystemTime};
//! # use bytes::Bytes;
//! # use smallest_core::{Config, ApiKey, Error, Health, HealthStatus};
//! # use smallest_core::call::{Call, Next};
//! # use smallest_core::options::ClientOptions;
//! # fn exchange(_: http::Request<Bytes>) -> Result<http::Response<Bytes>, Error> {
//! #     Ok(http::Response::builder().status(200).body(Bytes::from_static(br#"{"status":"ok"}"#)).unwrap())
//! # }
//! # fn main() -> Result<(), Error> {
//! # let config = Config::new(ApiKey::new("sk_example")?);
//! # let options = ClientOptions::default();
//! let mut call = Call::new(&Health, &config, &options, 0x5eed);
//! let status: HealthStatus = loop {
//!     match call.poll(Instant::now(), SystemTime::now()) {
//!         Next::TakeSlot(wait) => {
//!             let slot = block_on(wait); // or `.await`
//!             call.slot_taken(slot);
//!         }
//!         Next::Send(request) => match exchange(request) {
//!             // Within call.limits(): connect, response head, idle, the deadline.
//!             Ok(response) => {
//!                 let (head, body) = response.into_parts();
//!                 if let Some(max) = call.handle_head(head) {
//!                     let body = Bytes::copy_from_slice(&body[..body.len().min(max as usize)]);
//!                     call.handle_body(body, Instant::now(), SystemTime::now());
//!                 }
//!             }
//!             Err(e) => call.handle_failure(e, Instant::now(), SystemTime::now()),
//!         },
//!         Next::Sleep(delay) => std::thread::sleep(delay),
//!         Next::Done(output) => break output,
//!         Next::Fail(error) => return Err(error),
//!     }
//! };
//! assert!(status.healthy);
//! # Ok(()) }
//! # fn block_on<F: std::future::Future>(_: F) -> F::Output { unreachable!() }
//! ```

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::response::Parts;
use http::{Request, Response};

use crate::config::Config;
use crate::endpoint::{BodyKind, Endpoint, prepare};
use crate::error::{Error, MAX_ERROR_BODY, TimeoutPhase};
use crate::limiter::TtsPermit;
use crate::limits::{Grant, LimitWait, Rate};
use crate::options::{ClientOptions, RetryNotice, TimeLimits};
use crate::retry::{RetryDecision, jitter_from_seed};

mod stream;
mod upload;

pub use stream::{StreamEvent, StreamState};
pub use upload::{ProgressHook, UPLOAD_CHUNK, UploadCounter, UploadOp, file_error, output_error};

/// What a call machine tells its transport to do next.
#[must_use]
pub enum Next<T> {
    /// Wait for this limit (a TTS slot, or an STT request token before each attempt),
    /// then hand what it gives to [`Call::slot_taken`].
    TakeSlot(LimitWait),
    /// Send this request (complete, headers included) within [`Call::limits`], then
    /// report the outcome with `handle_head` + `handle_body`, or `handle_failure`.
    Send(Request<Bytes>),
    /// Sleep this long, then ask again.
    Sleep(Duration),
    /// The call succeeded.
    Done(T),
    /// The call failed for good.
    Fail(Error),
}

impl<T> fmt::Debug for Next<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Next::TakeSlot(_) => f.write_str("TakeSlot"),
            Next::Send(r) => write!(f, "Send({} {})", r.method(), r.uri().path()),
            Next::Sleep(d) => write!(f, "Sleep({d:?})"),
            Next::Done(_) => f.write_str("Done"),
            Next::Fail(e) => write!(f, "Fail({e})"),
        }
    }
}

/// What a transport's interpreter of a [`Call`] returns: the output, the body it did
/// not read (a stream that started) and the machine (which may hold a TTS slot).
pub type Driven<O, B> = (<O as Operation>::Output, Option<B>, Call<O>);

/// A limit that ends at an instant: the total deadline of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// When it is reached.
    pub at: Instant,
    /// The configured limit, for the error.
    pub limit: Duration,
}

impl Deadline {
    /// The error of a call that reached this deadline.
    pub fn error(&self) -> Error {
        Error::Timeout {
            phase: TimeoutPhase::Total,
            limit: self.limit,
        }
    }

    /// What is left of it at `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }
}

/// The limits a transport enforces on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptLimits {
    /// TCP + TLS (+ the WebSocket upgrade): [`TimeoutPhase::Connect`].
    pub connect: Option<Duration>,
    /// From the end of the request to the complete head: [`TimeoutPhase::ResponseHead`].
    pub response_head: Option<Duration>,
    /// Silence between reads, a stalled write: [`TimeoutPhase::Idle`].
    pub idle: Option<Duration>,
    /// The end of the whole call: [`TimeoutPhase::Total`].
    pub deadline: Option<Deadline>,
}

impl AttemptLimits {
    /// The limits of `options` for an exchange outside a call (no total deadline).
    pub fn of(options: &ClientOptions) -> Self {
        let time = options.time_limits();
        AttemptLimits {
            connect: time.connect,
            response_head: time.response_head,
            idle: time.idle,
            deadline: None,
        }
    }

    /// The error for an exceeded `phase`, with its configured limit (`Total` uses the
    /// deadline's). A phase without a limit cannot time out; its error says so.
    pub fn timeout(&self, phase: TimeoutPhase) -> Error {
        let limit = match phase {
            TimeoutPhase::Connect => self.connect,
            TimeoutPhase::ResponseHead => self.response_head,
            TimeoutPhase::Idle => self.idle,
            _ => self.deadline.map(|d| d.limit),
        };
        match limit {
            Some(limit) => Error::Timeout { phase, limit },
            None => Error::transport(true, format!("{phase} timed out without a limit")),
        }
    }
}

/// The retry state every machine shares: attempts, the budget, the total deadline,
/// jitter drawn from the seed, the retry hook.
pub(crate) struct Retries {
    options: ClientOptions,
    attempts: u32,
    started: Option<Instant>,
    rng: u64,
}

impl Retries {
    pub(crate) fn new(options: &ClientOptions, seed: u64) -> Self {
        Retries {
            options: options.clone(),
            attempts: 0,
            started: None,
            rng: seed,
        }
    }

    pub(crate) fn time(&self) -> &TimeLimits {
        self.options.time_limits()
    }

    /// An attempt starts (the first one starts the total limit).
    pub(crate) fn begin(&mut self, now: Instant) {
        self.started.get_or_insert(now);
        self.attempts = self.attempts.saturating_add(1);
    }

    pub(crate) fn deadline(&self) -> Option<Deadline> {
        let limit = self.time().total?;
        // A limit too large to add to the clock is no limit.
        Some(Deadline {
            at: self.started?.checked_add(limit)?,
            limit,
        })
    }

    pub(crate) fn limits(&self) -> AttemptLimits {
        let time = self.time();
        AttemptLimits {
            connect: time.connect,
            response_head: time.response_head,
            idle: time.idle,
            deadline: self.deadline(),
        }
    }

    /// After a failed attempt: how long to wait before the next one, or the error to
    /// return. Never retries past the total deadline.
    pub(crate) fn after(
        &mut self,
        error: Error,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Duration, Error> {
        let elapsed = self
            .started
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let jitter = jitter_from_seed(self.rng);
        let policy = self.options.retry_policy();
        let RetryDecision::RetryAfter(delay) =
            policy.decide(self.attempts, &error, elapsed, wall, jitter)
        else {
            return Err(error);
        };
        if let Some(deadline) = self.deadline()
            && now.checked_add(delay).is_none_or(|at| at >= deadline.at)
        {
            return Err(error);
        }
        if let Some(hook) = self.options.retry_hook() {
            hook(&RetryNotice {
                attempt: self.attempts,
                delay,
                error: &error,
            });
        }
        Ok(delay)
    }
}

/// What a [`Call`] needs of an operation. Implemented for every [`Endpoint`] (by
/// reference) and for the openers of streams and uploads.
pub trait Operation {
    /// What the call returns.
    type Output;
    /// Whether the call occupies a TTS slot.
    fn uses_tts_slot(&self) -> bool;
    /// The STT model whose request rate each attempt counts against, if any.
    fn stt_model(&self) -> Option<&str> {
        None
    }
    /// The complete request of one attempt (validated; headers and auth added).
    fn request(&self, config: &Config) -> Result<Request<Bytes>, Error>;
    /// The output from the head alone (a stream that starts), or `None` to read the body.
    fn decide_from_head(&self, _head: &Parts) -> Option<Self::Output> {
        None
    }
    /// What a successful body is, for its limit.
    fn body_kind(&self) -> BodyKind;
    /// Parses the whole response.
    fn parse_response(&self, response: Response<Bytes>) -> Result<Self::Output, Error>;
}

impl<E: Endpoint + ?Sized> Operation for &E {
    type Output = E::Output;
    fn uses_tts_slot(&self) -> bool {
        E::USES_TTS_SLOT
    }
    fn stt_model(&self) -> Option<&str> {
        E::stt_model(self)
    }
    fn request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        prepare(*self, config)
    }
    fn body_kind(&self) -> BodyKind {
        E::BODY_KIND
    }
    fn parse_response(&self, response: Response<Bytes>) -> Result<E::Output, Error> {
        self.from_http_response(response)
    }
}

/// The machine of a call whose answer is read whole (and of the opening of a stream).
pub struct Call<O: Operation> {
    op: O,
    config: Config,
    retries: Retries,
    slot: Option<TtsPermit>,
    /// An STT request token is held for the next attempt.
    token: bool,
    state: State<O::Output>,
    /// `smallest.call`: method, path; its events carry attempt, status, durations.
    span: tracing::Span,
    started: Option<Instant>,
}

enum State<T> {
    Start,
    NeedSlot(Request<Bytes>),
    /// Before an attempt of an STT call: a request token of its model.
    NeedToken(Option<Request<Bytes>>),
    /// The model's rate is used up: sleep, then ask for a token again.
    TokenBackoff(Option<Request<Bytes>>, Duration),
    Ready(Option<Request<Bytes>>),
    Sent,
    Reading {
        head: Parts,
        /// The most bytes a success may have; `None` for an error body (kept bounded).
        limit: Option<u64>,
    },
    Backoff(Duration),
    Finished(Option<Result<T, Error>>),
}

impl<'e, E: Endpoint + ?Sized> Call<&'e E> {
    /// A call of `endpoint`. `seed` is 64 random bits for the retry jitter.
    pub fn new(endpoint: &'e E, config: &Config, options: &ClientOptions, seed: u64) -> Self {
        Call::of(endpoint, config, options, seed)
    }
}

impl<O: Operation> Call<O> {
    /// A call of any [`Operation`].
    pub fn of(op: O, config: &Config, options: &ClientOptions, seed: u64) -> Self {
        Call {
            op,
            config: config.clone(),
            retries: Retries::new(options, seed),
            slot: None,
            token: false,
            state: State::Start,
            span: tracing::Span::none(),
            started: None,
        }
    }

    /// The operation.
    pub fn operation(&self) -> &O {
        &self.op
    }

    /// What to do next.
    pub fn poll(&mut self, now: Instant, _wall: SystemTime) -> Next<O::Output> {
        self.started.get_or_insert(now);
        loop {
            match std::mem::replace(&mut self.state, State::Sent) {
                State::Start => match self.op.request(&self.config) {
                    // Refused before queueing for a slot: nothing waits for a bad request.
                    Err(e) => self.finish(Err(e)),
                    Ok(request) => {
                        // The call's span: never the key, the text or the audio, only the
                        // method and the path. Its events name it as their parent.
                        self.span = tracing::debug_span!(
                            target: "smallest",
                            "smallest.call",
                            method = %request.method(),
                            path = request.uri().path(),
                        );
                        self.state = if self.op.uses_tts_slot() && self.slot.is_none() {
                            State::NeedSlot(request)
                        } else {
                            State::Ready(Some(request))
                        };
                    }
                },
                State::NeedSlot(request) => {
                    tracing::debug!(target: "smallest", parent: &self.span, "waiting for a TTS slot");
                    let wait = LimitWait::slot(self.retries.options.limits().tts_slot());
                    self.state = State::NeedSlot(request);
                    return Next::TakeSlot(wait);
                }
                State::NeedToken(request) => {
                    let Some(model) = self.op.stt_model() else {
                        self.token = true;
                        self.state = State::Ready(request);
                        continue;
                    };
                    tracing::debug!(target: "smallest", parent: &self.span, model, "taking an STT request token");
                    let mut wait =
                        LimitWait::rate(self.retries.options.limits().stt_request(model, now));
                    self.state = State::NeedToken(request);
                    // A decision that needs no waiting (local limits, unlimited STT) is
                    // taken here: the transport sees a wait only when there is one.
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    match std::pin::Pin::new(&mut wait).poll(&mut cx) {
                        std::task::Poll::Ready(outcome) => self.slot_taken(outcome),
                        std::task::Poll::Pending => return Next::TakeSlot(wait),
                    }
                }
                State::TokenBackoff(request, delay) => {
                    self.state = State::NeedToken(request);
                    return Next::Sleep(delay);
                }
                State::Ready(request) if !self.token && self.op.stt_model().is_some() => {
                    self.state = State::NeedToken(request);
                }
                State::Ready(request) => {
                    let request = match request {
                        Some(request) => request,
                        None => match self.op.request(&self.config) {
                            Ok(request) => request,
                            Err(e) => {
                                self.finish(Err(e));
                                continue;
                            }
                        },
                    };
                    self.retries.begin(now);
                    // Each attempt spends its own token.
                    self.token = false;
                    tracing::debug!(target: "smallest", parent: &self.span, attempt = self.retries.attempts, "sending");
                    self.state = State::Sent;
                    return Next::Send(request);
                }
                State::Backoff(delay) => {
                    self.state = State::Ready(None);
                    return Next::Sleep(delay);
                }
                State::Finished(result) => {
                    let elapsed_ms = self.elapsed_ms(now);
                    match &result {
                        Some(Ok(_)) => {
                            tracing::debug!(target: "smallest", parent: &self.span, attempts = self.retries.attempts, elapsed_ms, "done")
                        }
                        Some(Err(e)) => {
                            tracing::debug!(target: "smallest", parent: &self.span, attempts = self.retries.attempts, elapsed_ms, error = kind(e), "failed")
                        }
                        None => {}
                    }
                    self.state = State::Finished(None);
                    return match result {
                        Some(Ok(output)) => Next::Done(output),
                        Some(Err(e)) => Next::Fail(e),
                        None => Next::Fail(misuse("the call already ended")),
                    };
                }
                state @ (State::Sent | State::Reading { .. }) => {
                    self.state = state;
                    return Next::Fail(misuse(
                        "the transport asked for the next step before reporting the attempt",
                    ));
                }
            }
        }
    }

    /// What the wait of [`Next::TakeSlot`] gave (a [`TtsPermit`] converts too). The
    /// machine holds a TTS slot until it ends; a token is spent by the next attempt; a
    /// refused token makes the machine sleep and ask again; an error (the limits
    /// cannot be reached) ends the call with it.
    pub fn slot_taken(&mut self, outcome: impl Into<Result<Grant, Error>>) {
        match (
            std::mem::replace(&mut self.state, State::Sent),
            outcome.into(),
        ) {
            (State::NeedSlot(request), Ok(Grant::Slot(slot))) => {
                tracing::debug!(target: "smallest", parent: &self.span, "TTS slot taken");
                self.slot = Some(slot);
                self.state = State::Ready(Some(request));
            }
            (State::NeedToken(request), Ok(Grant::Rate(Rate::Granted))) => {
                tracing::debug!(target: "smallest", parent: &self.span, "STT request token taken");
                self.token = true;
                self.state = State::Ready(request);
            }
            (State::NeedToken(request), Ok(Grant::Rate(Rate::RetryIn(delay)))) => {
                tracing::debug!(
                    target: "smallest",
                    parent: &self.span,
                    delay_ms = delay.as_millis() as u64,
                    "STT request rate used up: waiting"
                );
                self.state = State::TokenBackoff(request, delay);
            }
            (State::NeedSlot(_) | State::NeedToken(_), Err(e)) => self.finish(Err(e)),
            (state, _) => {
                // Not asked for: give it straight back (and leave the state as it was).
                self.state = state;
            }
        }
    }

    /// The limits of the attempt in flight.
    pub fn limits(&self) -> AttemptLimits {
        self.retries.limits()
    }

    /// The response head arrived. Returns the most body bytes to read (stop there and
    /// pass what arrived to [`handle_body`](Self::handle_body)), or `None` when the
    /// body must not be read: the call is decided by the head (a stream starts, or a
    /// `Content-Length` over the limit); ask [`poll`](Self::poll) next.
    pub fn handle_head(&mut self, head: Parts) -> Option<u64> {
        if !matches!(self.state, State::Sent) {
            return None;
        }
        tracing::debug!(
            target: "smallest",
            parent: &self.span,
            status = head.status.as_u16(),
            request_id = head.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
            "response head"
        );
        if let Some(output) = self.op.decide_from_head(&head) {
            self.finish(Ok(output));
            return None;
        }
        if !head.status.is_success() {
            self.state = State::Reading { head, limit: None };
            // One byte more than is kept, so the error can tell the body was longer.
            return Some(MAX_ERROR_BODY as u64 + 1);
        }
        let kind = self.op.body_kind();
        if kind == BodyKind::Evidence {
            self.state = State::Reading { head, limit: None };
            return Some(MAX_ERROR_BODY as u64 + 1);
        }
        let limit = kind.limit(self.retries.options.body_limits());
        let announced = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|len| len > limit) {
            self.finish(Err(kind.too_large(limit)));
            return None;
        }
        self.state = State::Reading {
            head,
            limit: Some(limit),
        };
        Some(limit.saturating_add(1))
    }

    /// The body (at most what [`handle_head`](Self::handle_head) allowed) arrived whole.
    pub fn handle_body(&mut self, body: Bytes, now: Instant, wall: SystemTime) {
        let (head, limit) = match std::mem::replace(&mut self.state, State::Sent) {
            State::Reading { head, limit } => (head, limit),
            // No body is due: ignored, the state is left as it was.
            state => {
                self.state = state;
                return;
            }
        };
        if let Some(limit) = limit
            && body.len() as u64 > limit
        {
            let e = self.op.body_kind().too_large(limit);
            return self.finish(Err(e));
        }
        match self.op.parse_response(Response::from_parts(head, body)) {
            Ok(output) => self.finish(Ok(output)),
            Err(e) => self.failed(e, now, wall),
        }
    }

    /// The outcome of an exchange that read the whole response at once (an
    /// [`HttpSend`]-style client): the head and at most the allowed part of the body go
    /// to [`handle_head`](Self::handle_head) and [`handle_body`](Self::handle_body), a
    /// failure to [`handle_failure`](Self::handle_failure).
    ///
    /// [`HttpSend`]: https://docs.rs/smallest-blocking/latest/smallest_blocking/trait.HttpSend.html
    pub fn handle_response(
        &mut self,
        result: Result<Response<Bytes>, Error>,
        now: Instant,
        wall: SystemTime,
    ) {
        match result {
            Ok(response) => {
                let (head, body) = response.into_parts();
                if let Some(max) = self.handle_head(head) {
                    let max = usize::try_from(max).unwrap_or(usize::MAX);
                    self.handle_body(body.slice(..body.len().min(max)), now, wall);
                }
            }
            Err(e) => self.handle_failure(e, now, wall),
        }
    }

    /// The attempt failed: a connection error, a time limit, a body cut short.
    pub fn handle_failure(&mut self, error: Error, now: Instant, wall: SystemTime) {
        if matches!(self.state, State::Sent | State::Reading { .. }) {
            self.failed(error, now, wall);
        }
    }

    fn failed(&mut self, error: Error, now: Instant, wall: SystemTime) {
        let what = kind(&error);
        match self.retries.after(error, now, wall) {
            Ok(delay) => {
                tracing::info!(
                    target: "smallest",
                    parent: &self.span,
                    attempt = self.retries.attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = what,
                    "retrying"
                );
                self.state = State::Backoff(delay);
            }
            Err(e) => self.finish(Err(e)),
        }
    }

    fn finish(&mut self, result: Result<O::Output, Error>) {
        // Whatever the server wrote into an error loses the key it may have echoed.
        let result = result.map_err(|e| self.config.redact(e));
        if result.is_err() {
            // A failed call gives its TTS slot back at once; a successful one keeps it
            // for the stream it opened ([`take_slot`](Self::take_slot)) or until dropped.
            self.slot = None;
        }
        self.state = State::Finished(Some(result));
    }

    fn elapsed_ms(&self, now: Instant) -> u64 {
        self.started
            .map_or(0, |s| now.saturating_duration_since(s).as_millis() as u64)
    }

    /// Hands over the TTS slot the call holds (a stream keeps it after the call opened it).
    pub fn take_slot(&mut self) -> Option<TtsPermit> {
        self.slot.take()
    }

    /// The attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.retries.attempts
    }
}

impl<O: Operation> fmt::Debug for Call<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Start => "start",
            State::NeedSlot(_) => "waiting for a TTS slot",
            State::NeedToken(_) | State::TokenBackoff(..) => "waiting for an STT request token",
            State::Ready(_) => "ready to send",
            State::Sent => "sent",
            State::Reading { .. } => "reading the body",
            State::Backoff(_) => "backing off",
            State::Finished(_) => "finished",
        };
        f.debug_struct("Call")
            .field("state", &state)
            .field("attempts", &self.retries.attempts)
            .field("holds_slot", &self.slot.is_some())
            .finish()
    }
}

/// What kind of failure, for events: never the server's text (which may quote the key).
pub(crate) fn kind(e: &Error) -> String {
    match e {
        Error::Api(a) => format!("api {}", a.status().as_u16()),
        Error::Timeout { phase, .. } => format!("timeout: {phase}"),
        Error::Transport { request_sent, .. } => {
            format!("transport (request sent: {request_sent})")
        }
        Error::BodyLimit { limit, .. } => format!("body over {limit} bytes"),
        Error::Validation(v) => format!("invalid {}", v.field()),
        Error::Decode { what, .. } => format!("decode {what}"),
        Error::Stream { .. } => "stream".to_owned(),
        Error::Config(_) => "config".to_owned(),
        Error::Limits { backend, .. } => format!("limits at {backend} unreachable"),
    }
}

fn misuse(what: &str) -> Error {
    Error::Config(format!("call machine misused: {what}").into())
}

impl BodyKind {
    /// This kind's limit among `limits`.
    pub fn limit(self, limits: &crate::options::BodyLimits) -> u64 {
        match self {
            BodyKind::Json => limits.json,
            BodyKind::Audio => limits.audio,
            _ => MAX_ERROR_BODY as u64,
        }
    }

    /// The error of a body of this kind over `limit`, naming the alternative.
    pub fn too_large(self, limit: u64) -> Error {
        match self {
            BodyKind::Json => Error::BodyLimit {
                what: "JSON answer",
                limit,
                alternative: "no answer of the API is documented to be that large; raise \
                              ClientBuilder::max_json_bytes if this one is expected",
            },
            BodyKind::Audio => Error::BodyLimit {
                what: "synthesized audio",
                limit,
                alternative: "stream long audio with synthesize_stream (constant memory) \
                              or raise ClientBuilder::max_audio_bytes",
            },
            _ => Error::BodyLimit {
                what: "error body",
                limit,
                alternative: "only the first bytes of an error body are kept",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiKey, TtsRequest};

    fn config() -> Config {
        Config::new(ApiKey::new("sk_call_test_0123456789").unwrap())
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> Parts {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_tts_call_takes_a_slot_and_retries_a_503_then_returns_the_audio() {
        let options = ClientOptions::default();
        let request = TtsRequest::new("Hello.", "meher");
        let config = config();
        let mut call = Call::new(&request, &config, &options, 7);
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let Next::TakeSlot(mut wait) = call.poll(now, wall) else {
            panic!("a TTS call needs a slot first")
        };
        let waker = std::task::Waker::noop();
        let std::task::Poll::Ready(slot) =
            std::pin::Pin::new(&mut wait).poll(&mut std::task::Context::from_waker(waker))
        else {
            panic!("a slot is free")
        };
        drop(wait);
        call.slot_taken(slot);
        assert_eq!(options.tts_limiter().available(), 0);
        assert!(matches!(call.poll(now, wall), Next::Send(_)));
        assert_eq!(call.handle_head(head(503, &[])), Some(4097));
        call.handle_body(Bytes::from_static(b"{}"), now, wall);
        let Next::Sleep(delay) = call.poll(now, wall) else {
            panic!("503 is retried")
        };
        assert!(delay > Duration::ZERO);
        assert!(matches!(call.poll(now, wall), Next::Send(_)));
        let limit = call.handle_head(head(200, &[("content-type", "audio/wav")]));
        assert_eq!(limit, Some(crate::options::DEFAULT_MAX_AUDIO_BYTES + 1));
        call.handle_body(Bytes::from_static(b"RIFF....WAVE"), now, wall);
        assert!(matches!(call.poll(now, wall), Next::Done(_)));
        drop(call);
        assert_eq!(options.tts_limiter().available(), 1, "the slot is returned");
    }

    #[test]
    fn a_body_over_the_limit_is_refused_from_its_length_or_its_bytes() {
        let options = ClientOptions::default();
        let config = config();
        let mut call = Call::new(&crate::GetVoiceCatalog, &config, &options, 1);
        let (now, wall) = (Instant::now(), SystemTime::UNIX_EPOCH);
        assert!(matches!(call.poll(now, wall), Next::Send(_)));
        let huge = (500u64 << 20).to_string();
        assert_eq!(
            call.handle_head(head(200, &[("content-length", huge.as_str())])),
            None
        );
        let Next::Fail(e) = call.poll(now, wall) else {
            panic!("over the limit")
        };
        assert!(e.is_body_limit(), "{e}");
        assert!(e.to_string().contains("33554432"), "{e}");

        let mut call = Call::new(&crate::GetVoiceCatalog, &config, &options, 1);
        assert!(matches!(call.poll(now, wall), Next::Send(_)));
        let max = call.handle_head(head(200, &[])).unwrap();
        call.handle_body(Bytes::from(vec![b' '; max as usize]), now, wall);
        let Next::Fail(e) = call.poll(now, wall) else {
            panic!("over the limit")
        };
        assert!(e.is_body_limit(), "{e}");
    }

    #[test]
    fn an_invalid_request_fails_before_taking_a_slot() {
        let options = ClientOptions::default();
        let config = config();
        let request = TtsRequest::new("Hello.", "meher").sample_rate(3);
        let mut call = Call::new(&request, &config, &options, 1);
        let Next::Fail(e) = call.poll(Instant::now(), SystemTime::UNIX_EPOCH) else {
            panic!("invalid")
        };
        assert!(e.validation().is_some());
        assert_eq!(options.tts_limiter().available(), 1);
    }

    #[test]
    fn no_retry_starts_past_the_total_deadline() {
        let options = crate::options::ClientBuilder::<Probe>::new(config())
            .total_timeout(Duration::from_millis(100))
            .build()
            .unwrap()
            .0;
        let config = config();
        let mut call = Call::new(&crate::GetVoiceCatalog, &config, &options, 3);
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        assert!(matches!(call.poll(start, wall), Next::Send(_)));
        assert_eq!(
            call.limits().deadline.map(|d| d.at),
            Some(start + Duration::from_millis(100))
        );
        // A connect failure is retryable, but the backoff (≥ 250 ms) passes the deadline.
        call.handle_failure(Error::transport(false, "refused"), start, wall);
        assert!(matches!(call.poll(start, wall), Next::Fail(_)));
    }

    struct Probe(ClientOptions);
    impl crate::options::FromOptions for Probe {
        fn from_options(_: Config, options: ClientOptions) -> Result<Self, Error> {
            Ok(Probe(options))
        }
    }
}
