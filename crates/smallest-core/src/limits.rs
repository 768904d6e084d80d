//! The account's limits as one pluggable piece: TTS slots, STT requests per minute per
//! model, live STT sessions (API.md §8.4).
//!
//! The call machines decide *when* a call needs a limit ([`Call`](crate::call::Call)
//! asks for a TTS slot once, and for an STT request token before every attempt) and
//! when it gives it back (a [`Permit`] returns its slot when it is dropped, so a
//! cancelled or dropped call returns it at once). *How* a limit is taken is a
//! [`Limits`] implementation:
//!
//! - [`LocalLimits`] (the default): one process. TTS slots are today's FIFO
//!   [`TtsLimiter`]; STT requests per model go through a sliding window
//!   (off unless [`ClientBuilder::stt_rpm`](crate::options::ClientBuilder::stt_rpm)
//!   sets it); live STT sessions are counted by another FIFO of slots (off unless
//!   [`ClientBuilder::live_stt_sessions`](crate::options::ClientBuilder::live_stt_sessions)
//!   sets it). A client given no limits behaves as before they existed.
//! - `smallest-redis`'s `RedisLimits`: a fleet of processes that share one account.
//!
//! The trait is object-safe and runtime-free: each verb returns a boxed [`Future`]
//! that tokio awaits, any other executor polls, and the blocking transport parks on.
//! An implementation that does I/O keeps it on its own threads and wakes the future's
//! waker when the answer is in. No clock is read here: an STT rate decision is made at
//! the `now` it is given, and a refusal says how long to wait ([`Rate::RetryIn`]),
//! which the call machine turns into a [`Next::Sleep`](crate::call::Next::Sleep).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::limiter::TtsLimiter;

/// What a limit verb returns: a future of the limit, or of the error that says why it
/// cannot be had (for Redis: the server is unreachable, and what to do).
pub type LimitFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'static>>;

/// The answer to a request for an STT request token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// The request may be sent now; it counts against the model's rate.
    Granted,
    /// The model's rate is used up: ask again after this long.
    RetryIn(Duration),
}

/// The account's limits, taken and returned by the call machines. See the
/// [module docs](self).
pub trait Limits: Send + Sync + 'static {
    /// Waits for one of the account's concurrent TTS slots (sync, SSE and live TTS
    /// share them). The slot is held until the [`Permit`] is dropped.
    fn tts_slot(&self) -> LimitFuture<Permit>;

    /// One STT request of `model` (`pulse`, `pulse-pro` …) at `now`: granted, or how
    /// long to wait before asking again.
    fn stt_request(&self, model: &str, now: Instant) -> LimitFuture<Rate>;

    /// Waits for one of the account's concurrent live STT sessions, held until the
    /// [`Permit`] is dropped.
    fn stt_session(&self) -> LimitFuture<Permit>;

    /// A short description for `Debug` output (never a secret).
    fn describe(&self) -> String {
        "custom limits".to_owned()
    }
}

/// A held limit (a TTS slot, a live STT session); dropping it gives it back at once.
pub struct Permit {
    inner: PermitInner,
}

enum PermitInner {
    /// Nothing to give back (an unlimited kind).
    None,
    /// A slot of a local [`TtsLimiter`].
    Local(TtsLimiter),
    /// Anything whose `Drop` gives the limit back (a Redis lease …).
    Custom(#[allow(dead_code)] Box<dyn Send + Sync>),
}

impl Permit {
    /// A permit that holds nothing (the kind of limit is off).
    pub fn unlimited() -> Self {
        Permit {
            inner: PermitInner::None,
        }
    }

    /// A permit that gives its limit back when `guard` is dropped: what a
    /// [`Limits`] implementation returns.
    pub fn from_guard(guard: impl Send + Sync + 'static) -> Self {
        Permit {
            inner: PermitInner::Custom(Box::new(guard)),
        }
    }

    pub(crate) fn local(limiter: TtsLimiter) -> Self {
        Permit {
            inner: PermitInner::Local(limiter),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let PermitInner::Local(limiter) = std::mem::replace(&mut self.inner, PermitInner::None) {
            limiter.release();
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.inner {
            PermitInner::None => "Permit(unlimited)",
            PermitInner::Local(_) => "Permit(local)",
            PermitInner::Custom(_) => "Permit",
        })
    }
}

/// What a [`Next::TakeSlot`](crate::call::Next::TakeSlot) waits for; hand its output
/// to [`Call::slot_taken`](crate::call::Call::slot_taken).
#[must_use = "a limit is only taken when the future is awaited"]
pub struct LimitWait {
    inner: WaitInner,
}

enum WaitInner {
    Slot(LimitFuture<Permit>),
    Rate(LimitFuture<Rate>),
}

/// What a [`LimitWait`] got.
#[derive(Debug)]
pub enum Grant {
    /// A TTS slot (or a live STT session).
    Slot(Permit),
    /// The answer to an STT request token.
    Rate(Rate),
}

impl LimitWait {
    /// A wait for a slot.
    pub fn slot(future: LimitFuture<Permit>) -> Self {
        LimitWait {
            inner: WaitInner::Slot(future),
        }
    }

    /// A wait for an STT request token.
    pub fn rate(future: LimitFuture<Rate>) -> Self {
        LimitWait {
            inner: WaitInner::Rate(future),
        }
    }
}

impl Future for LimitWait {
    type Output = Result<Grant, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.inner {
            WaitInner::Slot(f) => f.as_mut().poll(cx).map(|r| r.map(Grant::Slot)),
            WaitInner::Rate(f) => f.as_mut().poll(cx).map(|r| r.map(Grant::Rate)),
        }
    }
}

impl fmt::Debug for LimitWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.inner {
            WaitInner::Slot(_) => "LimitWait(slot)",
            WaitInner::Rate(_) => "LimitWait(rate)",
        })
    }
}

impl From<Permit> for Result<Grant, Error> {
    fn from(permit: Permit) -> Self {
        Ok(Grant::Slot(permit))
    }
}

/// The default window of an STT rate: a minute, plus one second for the difference
/// between when a client counts a request (before it is sent) and when the server does
/// (when it arrives), so a burst never reaches the server inside its own window.
pub const DEFAULT_STT_WINDOW: Duration = Duration::from_secs(61);

/// Requests per window per model, counted over a sliding window: at most `limit`
/// grants in any `window`. No clock: decisions are made at the `now` given.
#[derive(Clone)]
pub struct SttWindow {
    limit: u32,
    window: Duration,
    granted: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl SttWindow {
    /// At most `per_minute` (at least 1) requests per model in any
    /// [`DEFAULT_STT_WINDOW`].
    pub fn per_minute(per_minute: u32) -> Self {
        SttWindow::new(per_minute, DEFAULT_STT_WINDOW)
    }

    /// At most `limit` (at least 1) requests per model in any `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        SttWindow {
            limit: limit.max(1),
            window,
            granted: Arc::default(),
        }
    }

    /// The most requests per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// One request of `model` at `now`.
    pub fn take(&self, model: &str, now: Instant) -> Rate {
        let mut all = self.granted.lock().unwrap_or_else(PoisonError::into_inner);
        let times = all.entry(model.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.limit as usize {
            times.push_back(now);
            return Rate::Granted;
        }
        let oldest = times.front().copied().unwrap_or(now);
        let wait = (oldest + self.window).saturating_duration_since(now);
        Rate::RetryIn(wait.max(Duration::from_millis(1)))
    }
}

impl fmt::Debug for SttWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SttWindow")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish()
    }
}

/// The limits of one process: FIFO TTS slots, an optional STT rate per model, an
/// optional number of live STT sessions. Clones share everything.
#[derive(Clone, Debug)]
pub struct LocalLimits {
    tts: TtsLimiter,
    stt_rate: Option<SttWindow>,
    stt_sessions: Option<TtsLimiter>,
}

impl Default for LocalLimits {
    /// One TTS slot (API.md's default), STT unlimited.
    fn default() -> Self {
        LocalLimits::new(TtsLimiter::new(1))
    }
}

impl LocalLimits {
    /// TTS slots from `tts`; STT requests and sessions unlimited.
    pub fn new(tts: TtsLimiter) -> Self {
        LocalLimits {
            tts,
            stt_rate: None,
            stt_sessions: None,
        }
    }

    /// With at most `per_minute` STT requests per model (see [`SttWindow`]).
    pub fn with_stt_rpm(self, per_minute: u32) -> Self {
        self.with_stt_window(SttWindow::per_minute(per_minute))
    }

    /// With this STT request window.
    pub fn with_stt_window(mut self, window: SttWindow) -> Self {
        self.stt_rate = Some(window);
        self
    }

    /// With at most `sessions` concurrent live STT sessions (waiting, first come first
    /// served, for one to end).
    pub fn with_stt_sessions(mut self, sessions: usize) -> Self {
        self.stt_sessions = Some(TtsLimiter::new(sessions));
        self
    }

    /// The TTS slots.
    pub fn tts(&self) -> &TtsLimiter {
        &self.tts
    }

    pub(crate) fn set_tts(&mut self, tts: TtsLimiter) {
        self.tts = tts;
    }

    /// The STT request window, if any.
    pub fn stt_window(&self) -> Option<&SttWindow> {
        self.stt_rate.as_ref()
    }

    /// The live STT session slots, if limited.
    pub fn stt_sessions(&self) -> Option<&TtsLimiter> {
        self.stt_sessions.as_ref()
    }
}

impl Limits for LocalLimits {
    fn tts_slot(&self) -> LimitFuture<Permit> {
        let wait = self.tts.acquire();
        Box::pin(async move { Ok(wait.await) })
    }

    fn stt_request(&self, model: &str, now: Instant) -> LimitFuture<Rate> {
        let rate = self
            .stt_rate
            .as_ref()
            .map_or(Rate::Granted, |w| w.take(model, now));
        Box::pin(std::future::ready(Ok(rate)))
    }

    fn stt_session(&self) -> LimitFuture<Permit> {
        match &self.stt_sessions {
            None => Box::pin(std::future::ready(Ok(Permit::unlimited()))),
            Some(sessions) => {
                let wait = sessions.acquire();
                Box::pin(async move { Ok(wait.await) })
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "local (TTS concurrency {}, STT {}, live STT sessions {})",
            self.tts.concurrency(),
            self.stt_rate
                .as_ref()
                .map_or("unlimited".to_owned(), |w| format!(
                    "{} per {:?} per model",
                    w.limit, w.window
                )),
            self.stt_sessions
                .as_ref()
                .map_or("unlimited".to_owned(), |s| s.concurrency().to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stt_window_grants_its_limit_then_names_the_wait() {
        let w = SttWindow::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(w.take("pulse", t0), Rate::Granted);
        assert_eq!(w.take("pulse", t0 + Duration::from_secs(10)), Rate::Granted);
        assert_eq!(
            w.take("pulse", t0 + Duration::from_secs(20)),
            Rate::RetryIn(Duration::from_secs(40))
        );
        // Another model has its own window.
        assert_eq!(w.take("pulse-pro", t0), Rate::Granted);
        assert_eq!(w.take("pulse", t0 + Duration::from_secs(60)), Rate::Granted);
    }

    #[test]
    fn local_permits_return_their_slot_on_drop() {
        let limits = LocalLimits::default().with_stt_sessions(1);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let Poll::Ready(Ok(p)) = limits.stt_session().as_mut().poll(&mut cx) else {
            panic!("free")
        };
        assert!(limits.stt_session().as_mut().poll(&mut cx).is_pending());
        drop(p);
        assert!(limits.stt_session().as_mut().poll(&mut cx).is_ready());
    }
}
