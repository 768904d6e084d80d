//! The settings every transport shares, each with one meaning, and the one builder
//! they are set with.
//!
//! A transport crate's `Client::builder(config)` is a [`ClientBuilder`] of that crate's
//! client: the setters below are the same on every transport, and so are their
//! defaults, which are stated here and nowhere else.
//!
//! # Time limits
//!
//! | limit | covers | default |
//! |---|---|---|
//! | [`connect`](ClientBuilder::connect_timeout) | TCP and TLS; for a WebSocket, TCP, TLS and the whole upgrade | 10 s |
//! | [`response head`](ClientBuilder::response_timeout) | from the end of the request to the complete response head | none |
//! | [`idle`](ClientBuilder::idle_timeout) | the longest silence between two reads while an answer is due, and the longest a write may stall | none |
//! | [`total`](ClientBuilder::total_timeout) | the whole call: every attempt, every wait between attempts, to the last byte | none |
//!
//! Each exceeded limit is [`Error::Timeout`] with the matching [`TimeoutPhase`]. "While
//! an answer is due" means: after a request was written (its head and body), and on a
//! live connection while a TTS request is open or an STT finalize is awaited; a live
//! connection with nothing outstanding may be silent for as long as the server keeps it.
//!
//! # Body limits
//!
//! Whole bodies read into memory are capped ([`BodyLimits`]): JSON answers at 32 MiB and
//! sync audio at 256 MiB by default. A larger body is [`Error::BodyLimit`], raised
//! before it is read when `Content-Length` says so, or as soon as the cap is passed.
//! Streaming calls (SSE synthesis, streamed uploads) are not capped: they hold one chunk
//! at a time.
//!
//! [`TimeoutPhase`]: crate::TimeoutPhase

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::limiter::TtsLimiter;
use crate::limits::{Limits, LocalLimits, SttWindow};
use crate::proxy::Proxy;
use crate::retry::RetryPolicy;

/// The default limit on opening a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default largest JSON answer read into memory (voices, transcriptions, dictionaries …).
pub const DEFAULT_MAX_JSON_BYTES: u64 = 32 << 20;

/// The default largest sync synthesis read into memory; longer audio should stream.
pub const DEFAULT_MAX_AUDIO_BYTES: u64 = 256 << 20;

/// The default number of bytes a live connection may have queued for the server and not
/// yet written; past it, a sender waits (or fails once a write stalls for the idle limit).
pub const DEFAULT_LIVE_WRITE_BUFFER: usize = 1 << 20;

/// How long a live connection waits for the server's answer to its close frame.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Time limits per phase; `None` is no limit. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeLimits {
    /// TCP + TLS (+ the WebSocket upgrade).
    pub connect: Option<Duration>,
    /// From the end of the request to the complete response head.
    pub response_head: Option<Duration>,
    /// Silence between reads while an answer is due; a stalled write.
    pub idle: Option<Duration>,
    /// The whole call, retries included.
    pub total: Option<Duration>,
}

impl Default for TimeLimits {
    /// Connect 10 s ([`DEFAULT_CONNECT_TIMEOUT`]); no other limit.
    fn default() -> Self {
        TimeLimits {
            connect: Some(DEFAULT_CONNECT_TIMEOUT),
            response_head: None,
            idle: None,
            total: None,
        }
    }
}

/// The largest bodies read whole into memory, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BodyLimits {
    /// JSON answers ([`DEFAULT_MAX_JSON_BYTES`]).
    pub json: u64,
    /// Sync synthesis audio ([`DEFAULT_MAX_AUDIO_BYTES`]).
    pub audio: u64,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            json: DEFAULT_MAX_JSON_BYTES,
            audio: DEFAULT_MAX_AUDIO_BYTES,
        }
    }
}

/// Called before each retry wait, e.g. to tell a user why the call is slow.
pub type RetryHook = Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>;

/// What a [`RetryHook`] is told.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryNotice<'a> {
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// How long the client waits before the next attempt.
    pub delay: Duration,
    /// Why the attempt failed.
    pub error: &'a Error,
}

/// Everything a client decides by, besides its [`Config`]: retries, the account's TTS
/// slots, time and body limits, extra trusted roots. Cheap to clone.
#[derive(Clone)]
pub struct ClientOptions {
    retry: RetryPolicy,
    time: TimeLimits,
    bodies: BodyLimits,
    local_limits: LocalLimits,
    /// Replaces `local_limits` when set ([`ClientBuilder::limits`]).
    limits: Option<Arc<dyn Limits>>,
    on_retry: Option<RetryHook>,
    extra_roots: Arc<[Vec<u8>]>,
    live_write_buffer: usize,
    close_timeout: Duration,
    proxy: Option<Arc<Proxy>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retry: RetryPolicy::default(),
            time: TimeLimits::default(),
            bodies: BodyLimits::default(),
            local_limits: LocalLimits::default(),
            limits: None,
            on_retry: None,
            extra_roots: Arc::from(Vec::new()),
            live_write_buffer: DEFAULT_LIVE_WRITE_BUFFER,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            proxy: None,
        }
    }
}

impl ClientOptions {
    /// How failed calls are retried.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The time limits.
    pub fn time_limits(&self) -> &TimeLimits {
        &self.time
    }

    /// The body limits.
    pub fn body_limits(&self) -> &BodyLimits {
        &self.bodies
    }

    /// The process's own TTS slots: the TTS limit of [`limits`](Self::limits) unless
    /// other limits were given ([`ClientBuilder::limits`]).
    pub fn tts_limiter(&self) -> &TtsLimiter {
        self.local_limits.tts()
    }

    /// The account's limits every call takes its TTS slot, STT request token and live
    /// STT session from: the ones given to [`ClientBuilder::limits`], else the local
    /// ones ([`LocalLimits`]: the TTS slots of [`tts_limiter`](Self::tts_limiter), STT
    /// as set by [`ClientBuilder::stt_rpm`] and [`ClientBuilder::live_stt_sessions`]).
    pub fn limits(&self) -> &dyn Limits {
        match &self.limits {
            Some(limits) => limits.as_ref(),
            None => &self.local_limits,
        }
    }

    /// The local limits (used when no others were given).
    pub fn local_limits(&self) -> &LocalLimits {
        &self.local_limits
    }

    /// The hook called before each retry wait.
    pub fn retry_hook(&self) -> Option<&RetryHook> {
        self.on_retry.as_ref()
    }

    /// DER certificates trusted in addition to the transport's default roots.
    pub fn extra_roots(&self) -> &[Vec<u8>] {
        &self.extra_roots
    }

    /// The most bytes a live connection may have queued and not yet written.
    pub fn live_write_buffer(&self) -> usize {
        self.live_write_buffer
    }

    /// How long a live connection waits for the answer to its close frame.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// The proxy encrypted connections go through (see [`crate::proxy`]).
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_deref()
    }

    /// The proxy a connection to `uri` goes through, if any: `None` for plain
    /// `http`/`ws` and for hosts in the proxy's `NO_PROXY` list.
    pub fn proxy_for(&self, uri: &http::Uri) -> Option<&Proxy> {
        Proxy::for_uri(self.proxy(), uri)
    }

    /// The same options with another retry policy.
    pub fn with_retry_policy(&self, policy: RetryPolicy) -> Self {
        ClientOptions {
            retry: policy,
            ..self.clone()
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("retry", &self.retry)
            .field("time", &self.time)
            .field("bodies", &self.bodies)
            .field("limits", &self.limits().describe())
            .field("on_retry", &self.on_retry.is_some())
            .field("extra_roots", &self.extra_roots.len())
            .field("live_write_buffer", &self.live_write_buffer)
            .field("close_timeout", &self.close_timeout)
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// A client that can be built from a [`Config`] and [`ClientOptions`]: what each
/// transport implements so that [`ClientBuilder`] builds it.
pub trait FromOptions: Sized {
    /// Builds the client. Opens no connection.
    fn from_options(config: Config, options: ClientOptions) -> Result<Self, Error>;
}

/// Builds a client of any transport (`C`) with extra trusted roots, time and body
/// limits, retries and TTS slots. The setters and their defaults are the same for
/// every transport.
pub struct ClientBuilder<C> {
    config: Config,
    options: ClientOptions,
    extra_roots: Vec<Vec<u8>>,
    /// `None`: read from the environment at `build`.
    proxy: Option<Option<Proxy>>,
    client: PhantomData<fn() -> C>,
}

impl<C: FromOptions> ClientBuilder<C> {
    /// A builder with the default options.
    pub fn new(config: Config) -> Self {
        ClientBuilder {
            config,
            options: ClientOptions::default(),
            extra_roots: Vec::new(),
            proxy: None,
            client: PhantomData,
        }
    }

    /// Trusts this DER certificate in addition to the default roots (a private CA, or
    /// a local emulator's TLS). [`build`](Self::build) fails with [`Error::Config`]
    /// if it cannot serve as a trust anchor.
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(der.into());
        self
    }

    /// The limit on opening a connection: TCP and TLS, and for a WebSocket the whole
    /// upgrade. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.options.time.connect = Some(limit);
        self
    }

    /// The limit from the end of the request to the complete response head (a
    /// synthesis is made before its answer starts). No limit by default.
    pub fn response_timeout(mut self, limit: Duration) -> Self {
        self.options.time.response_head = Some(limit);
        self
    }

    /// The longest silence between two reads while an answer is due, and the longest a
    /// write may stall. No limit by default.
    pub fn idle_timeout(mut self, limit: Duration) -> Self {
        self.options.time.idle = Some(limit);
        self
    }

    /// The limit on a whole call: every attempt and every wait between attempts, to the
    /// last byte of the body. No limit by default.
    pub fn total_timeout(mut self, limit: Duration) -> Self {
        self.options.time.total = Some(limit);
        self
    }

    /// All four time limits at once.
    pub fn time_limits(mut self, limits: TimeLimits) -> Self {
        self.options.time = limits;
        self
    }

    /// The largest JSON answer read into memory. Default [`DEFAULT_MAX_JSON_BYTES`].
    pub fn max_json_bytes(mut self, limit: u64) -> Self {
        self.options.bodies.json = limit;
        self
    }

    /// The largest sync synthesis read into memory. Default [`DEFAULT_MAX_AUDIO_BYTES`];
    /// longer audio streams (`synthesize_stream`) in constant memory.
    pub fn max_audio_bytes(mut self, limit: u64) -> Self {
        self.options.bodies.audio = limit;
        self
    }

    /// The most bytes a live connection may have queued and not yet written
    /// (default [`DEFAULT_LIVE_WRITE_BUFFER`]).
    pub fn live_write_buffer(mut self, bytes: usize) -> Self {
        self.options.live_write_buffer = bytes.max(64 << 10);
        self
    }

    /// How long a live connection waits for the answer to its close frame (default
    /// [`DEFAULT_CLOSE_TIMEOUT`]).
    pub fn close_timeout(mut self, limit: Duration) -> Self {
        self.options.close_timeout = limit;
        self
    }

    /// How failed calls are retried (default: [`RetryPolicy::default`]; switch off with
    /// [`RetryPolicy::none`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// The account's TTS concurrency (default 1): a new set of slots for this client.
    pub fn tts_concurrency(mut self, concurrency: usize) -> Self {
        self.options
            .local_limits
            .set_tts(TtsLimiter::new(concurrency));
        self
    }

    /// Queues TTS calls on a limiter shared with other clients of the same account.
    pub fn tts_limiter(mut self, limiter: TtsLimiter) -> Self {
        self.options.local_limits.set_tts(limiter);
        self
    }

    /// At most `per_minute` STT requests per model (HTTP transcriptions; every attempt
    /// counts) in this process, in any minute (plus a second of margin,
    /// [`DEFAULT_STT_WINDOW`](crate::limits::DEFAULT_STT_WINDOW)). A call over the rate
    /// waits instead of provoking a 429. Off by default; the Standard plan allows 25.
    pub fn stt_rpm(mut self, per_minute: u32) -> Self {
        self.options.local_limits = self
            .options
            .local_limits
            .with_stt_window(SttWindow::per_minute(per_minute));
        self
    }

    /// At most `sessions` live STT sessions open at once in this process; a connect
    /// waits for a session to end. Off by default; the Standard plan allows 100.
    pub fn live_stt_sessions(mut self, sessions: usize) -> Self {
        self.options.local_limits = self.options.local_limits.with_stt_sessions(sessions);
        self
    }

    /// Takes every limit (TTS slots, STT request tokens, live STT sessions) from
    /// `limits` instead of this process's own: e.g. `smallest-redis`'s `RedisLimits`,
    /// shared by every process of a fleet that uses one account.
    pub fn limits(mut self, limits: Arc<dyn Limits>) -> Self {
        self.options.limits = Some(limits);
        self
    }

    /// Called before each retry wait.
    pub fn on_retry(mut self, hook: impl Fn(&RetryNotice<'_>) + Send + Sync + 'static) -> Self {
        self.options.on_retry = Some(Arc::new(hook));
        self
    }

    /// Tunnels every encrypted connection (`https` calls, `wss` live sessions) through
    /// this proxy with `CONNECT`, except to the hosts of its `NO_PROXY` list. By
    /// default the proxy comes from the environment (`HTTPS_PROXY`, `NO_PROXY`; see
    /// [`crate::proxy`]).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(Some(proxy));
        self
    }

    /// Connects directly, whatever the environment says of proxies.
    pub fn without_proxy(mut self) -> Self {
        self.proxy = Some(None);
        self
    }

    /// Builds the client. Opens no connection; the first request does.
    ///
    /// # Errors
    /// [`Error::Config`] for an unusable extra root certificate, or a proxy variable of
    /// the environment that is not a usable proxy URL (when no proxy was chosen with
    /// [`proxy`](Self::proxy) or [`without_proxy`](Self::without_proxy)).
    pub fn build(self) -> Result<C, Error> {
        self.build_with(C::from_options)
    }

    /// Builds the client with `make` instead of [`FromOptions::from_options`], from the
    /// same configuration and finished options (extra roots collected, the proxy read
    /// from the environment unless chosen): for a transport that needs one more input,
    /// such as the runtime of `smallest-async`.
    ///
    /// # Errors
    /// As [`build`](Self::build), and what `make` returns.
    pub fn build_with(
        mut self,
        make: impl FnOnce(Config, ClientOptions) -> Result<C, Error>,
    ) -> Result<C, Error> {
        self.options.extra_roots = Arc::from(std::mem::take(&mut self.extra_roots));
        let proxy = match self.proxy.take() {
            Some(choice) => choice,
            None => Proxy::from_env()?,
        };
        self.options.proxy = proxy.map(Arc::new);
        make(self.config, self.options)
    }
}

impl<C> fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("options", &self.options)
            .field("extra_roots", &self.extra_roots.len())
            .field("proxy", &self.proxy)
            .finish()
    }
}
