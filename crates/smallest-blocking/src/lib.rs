//! # smallest-blocking
//!
//! The blocking client of the [Smallest AI](https://smallest.ai) Waves API: plain
//! threads, [ureq] 3 and rustls (ring), and no async runtime anywhere in its dependency
//! tree. It runs the sans-IO [`smallest_core`]: the core validates and builds each
//! request and parses each response; this crate only moves the bytes, pools
//! connections and enforces time limits.
//!
//! The async sibling, `smallest-hyper`, has the same vocabulary: moving between the two
//! is adding or removing `.await`.
//!
//! ## Synthesize, then transcribe
//!
//! ```no_run
//! use smallest_blocking::{Client, OutputFormat, SttLanguage, TranscribeRequest, TtsModel, TtsRequest};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Reads SMALLEST_API_KEY (and SMALLEST_BASE_URL, e.g. an emulator's address).
//!     let client = Client::from_env()?;
//!
//!     let audio = client.synthesize(
//!         &TtsRequest::new("Hello from Smallest AI.", "meher")
//!             .model(TtsModel::LightningV31Pro)
//!             .sample_rate(24000)
//!             .output_format(OutputFormat::Wav),
//!     )?;
//!     std::fs::write("hello.wav", audio.bytes())?;
//!
//!     let text = client.transcribe(
//!         &TranscribeRequest::from_bytes(audio.into_bytes(), SttLanguage::En).content_type("audio/wav"),
//!     )?;
//!     println!("{}", text.transcription);
//!     Ok(())
//! }
//! ```
//!
//! ## Configuration
//!
//! [`Client::builder`] adds time limits and extra trusted roots (a private CA, or the
//! certificate of a local emulator served over TLS). TLS is rustls with the ring
//! provider and the Mozilla roots (if the application installed a process-wide rustls
//! `CryptoProvider`, ureq uses that one instead). Only loopback hosts may use plain
//! `http://` unless [`Config::allow_insecure_http`] was called; redirects are never
//! followed, so the key never travels to another host.
//!
//! ```no_run
//! use std::time::Duration;
//! use smallest_blocking::{ApiKey, Client, Config};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::new(ApiKey::new("sk_your_key")?).with_base_url("https://127.0.0.1:8443")?;
//! let ca_der: Vec<u8> = std::fs::read("emulator-ca.der")?;
//! let client = Client::builder(config)
//!     .add_root_certificate_der(ca_der)
//!     .connect_timeout(Duration::from_secs(5))
//!     .response_timeout(Duration::from_secs(60))
//!     .total_timeout(Duration::from_secs(300))
//!     .build()?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! ## Errors
//!
//! Every method returns [`Error`]. An error status from the server is [`Error::Api`]
//! (with the status, code, message and request id); a failure to reach the server is
//! [`Error::Transport`], whose `request_sent` says whether any of the request may have
//! reached the server (`false` for DNS failures, refused connections and TLS handshake
//! failures, so the call is safe to retry); a time limit is [`Error::Timeout`]. Neither
//! errors nor `Debug` output ever contain the API key.
//!
//! ## Bring your own HTTP client
//!
//! [`send_with`] runs any operation over anything that implements [`HttpSend`],
//! including a closure:
//!
//! ```
//! use bytes::Bytes;
//! use smallest_blocking::{ApiKey, Config, Error, HealthStatus, core::Health};
//!
//! # fn main() -> Result<(), Error> {
//! let config = Config::new(ApiKey::new("sk_example")?);
//! let my_client = |request: http::Request<Bytes>| -> Result<http::Response<Bytes>, Error> {
//!     assert_eq!(request.uri(), "https://api.smallest.ai/waves/v1/health");
//!     // … send `request` with any blocking HTTP client; here, a canned answer:
//!     http::Response::builder()
//!         .status(200)
//!         .body(Bytes::from_static(br#"{"status":"ok"}"#))
//!         .map_err(|e| Error::transport(true, e))
//! };
//! let status: HealthStatus = smallest_blocking::send_with(&my_client, &config, &Health)?;
//! assert!(status.healthy);
//! # Ok(()) }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response};
use rustls_pki_types::CertificateDer;
use ureq::Agent;
use ureq::config::AutoHeaderValue;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

mod live;
pub use live::{
    CloseOutcome, CloseReason, READ_SLICE, SttEncoding, SttLive, SttLiveConfig, SttLiveEvent,
    SttLiveReceiver, SttLiveRoute, SttLiveSender, Transcript, TtsLive, TtsLiveConfig, TtsLiveEvent,
    TtsLiveReceiver, TtsLiveSender,
};

pub use smallest_core::retry::RetryPolicy;
use smallest_core::retry::{AttemptContext, RetryDecision};

pub use smallest_core::{
    self as core, ApiKey, Audio, AudioSource, CatalogVoice, ClonedVoice, Config, CreateDict,
    CreateVoiceClone, DeleteDict, DeletedDict, Endpoint, Error, GetVoiceCatalog, GetVoices,
    HealthStatus, Language, LegacyTranscribeRequest, ListDicts, ListVoiceClones, OutputFormat,
    PronunciationDict, PronunciationItem, SttLanguage, SttModel, TimeoutPhase, TranscribeRequest,
    Transcription, TtsModel, TtsRequest, UpdateDict, Voice, VoiceClone, VoiceFilter,
};

mod stream;
pub use stream::{AudioReader, AudioStream, Progress, ProgressHook};

/// The default limit on opening a connection (DNS, TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this much memory is reserved up front for a body that announces its length;
/// longer bodies are still read whole, the buffer just grows as they arrive.
const MAX_PREALLOCATION: u64 = 64 << 20;

/// Any blocking HTTP client that can send one request and return the whole response.
///
/// [`Client`] implements it over ureq; every closure
/// `Fn(http::Request<Bytes>) -> Result<http::Response<Bytes>, Error>` does too, so
/// another client plugs in with a few lines (see [`send_with`]).
///
/// The request is complete as the core built it, `Authorization` included (marked
/// sensitive): send its method, URI, headers and body as they are. Report failures with
/// [`Error::transport`], saying whether the request may have reached the server.
pub trait HttpSend {
    /// Sends `request` and returns the response with its whole body, whatever its status.
    fn send_http(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error>;
}

impl<F> HttpSend for F
where
    F: Fn(Request<Bytes>) -> Result<Response<Bytes>, Error> + ?Sized,
{
    fn send_http(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        self(request)
    }
}

/// Runs any operation the core describes over any [`HttpSend`]: builds the request with
/// [`smallest_core::prepare`] (which adds `Authorization`, `User-Agent` and `X-Source`),
/// sends it, and parses the response with [`Endpoint::from_http_response`].
pub fn send_with<S, E>(client: &S, config: &Config, endpoint: &E) -> Result<E::Output, Error>
where
    S: HttpSend + ?Sized,
    E: Endpoint,
{
    let request = smallest_core::prepare(endpoint, config)?;
    let response = client.send_http(request)?;
    endpoint.from_http_response(response)
}

/// A blocking Waves API client. Cheap to clone: clones share one connection pool.
///
/// Safe to share between threads; each call blocks only the thread that makes it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    retry: RetryPolicy,
}

struct Inner {
    agent: Agent,
    config: Config,
    timeouts: Timeouts,
    tts_slots: TtsLimiter,
    on_retry: Option<RetryHook>,
    /// The TLS settings of live WebSocket connections: the same roots as HTTP.
    ws_tls: Arc<rustls::ClientConfig>,
}

/// Called before each retry wait, e.g. to tell a user why the call is slow.
pub type RetryHook = Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>;

/// What [`RetryHook`] is told.
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

/// The account's concurrent-TTS slots (API.md §8.4: one by default, shared by sync,
/// SSE and WebSocket TTS). A TTS call waits for a slot, first come first served,
/// instead of provoking a 429.
///
/// Clones share the slots: hand one limiter to every client of the same account.
#[derive(Clone)]
pub struct TtsLimiter {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    size: usize,
}

/// Tickets make the queue FIFO: a caller proceeds only when its ticket is served.
#[derive(Debug)]
struct Queue {
    free: usize,
    next_ticket: u64,
    now_serving: u64,
}

impl TtsLimiter {
    /// A limiter for an account with `concurrency` TTS slots (at least 1).
    pub fn new(concurrency: usize) -> Self {
        let size = concurrency.max(1);
        TtsLimiter {
            shared: Arc::new((
                Mutex::new(Queue {
                    free: size,
                    next_ticket: 0,
                    now_serving: 0,
                }),
                Condvar::new(),
            )),
            size,
        }
    }

    /// The number of slots.
    pub fn concurrency(&self) -> usize {
        self.size
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.shared
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free
    }

    /// Calls waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        let queue = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        usize::try_from(queue.next_ticket - queue.now_serving).unwrap_or(usize::MAX)
    }

    /// Blocks until a slot is free and every earlier caller has had one.
    pub fn acquire(&self) -> TtsPermit {
        let (lock, ready) = &*self.shared;
        let mut queue = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        while !(queue.now_serving == ticket && queue.free > 0) {
            queue = ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        queue.free -= 1;
        queue.now_serving += 1;
        ready.notify_all();
        TtsPermit(self.shared.clone())
    }
}

impl fmt::Debug for TtsLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtsLimiter")
            .field("concurrency", &self.size)
            .field("available", &self.available())
            .finish()
    }
}

/// A held TTS slot; dropping it frees the slot.
pub struct TtsPermit(Arc<(Mutex<Queue>, Condvar)>);

impl Drop for TtsPermit {
    fn drop(&mut self) {
        let (lock, ready) = &*self.0;
        lock.lock().unwrap_or_else(PoisonError::into_inner).free += 1;
        ready.notify_all();
    }
}

impl fmt::Debug for TtsPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TtsPermit")
    }
}

/// Time limits, per phase; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Timeouts {
    connect: Option<Duration>,
    response: Option<Duration>,
    idle: Option<Duration>,
    total: Option<Duration>,
}

/// Builds a [`Client`] with extra trusted roots or time limits.
pub struct ClientBuilder {
    config: Config,
    extra_roots: Vec<Vec<u8>>,
    timeouts: Timeouts,
    retry: RetryPolicy,
    tts_slots: Option<TtsLimiter>,
    on_retry: Option<RetryHook>,
}

impl Client {
    /// A client for `config`, trusting the Mozilla (webpki) roots, with the default
    /// connect limit ([`DEFAULT_CONNECT_TIMEOUT`]) and no other time limit.
    pub fn new(config: Config) -> Result<Client, Error> {
        Client::builder(config).build()
    }

    /// A client configured from `SMALLEST_API_KEY` and, when set, `SMALLEST_BASE_URL`.
    pub fn from_env() -> Result<Client, Error> {
        Client::new(Config::from_env()?)
    }

    /// A builder, for extra roots and time limits.
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            config,
            extra_roots: Vec::new(),
            timeouts: Timeouts {
                connect: Some(DEFAULT_CONNECT_TIMEOUT),
                ..Timeouts::default()
            },
            retry: RetryPolicy::default(),
            tts_slots: None,
            on_retry: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The same client (same pool, same TTS slots) with another retry policy, e.g.
    /// `client.with_retry_policy(RetryPolicy::none())` for one call without retries.
    pub fn with_retry_policy(&self, policy: RetryPolicy) -> Client {
        Client {
            inner: self.inner.clone(),
            retry: policy,
        }
    }

    /// The account's TTS slots this client queues on.
    pub fn tts_limiter(&self) -> &TtsLimiter {
        &self.inner.tts_slots
    }

    /// Runs any operation the core describes: waits for a TTS slot when the operation
    /// needs one, builds the request, sends it, reads the whole body and parses the
    /// answer, retrying under the client's [`RetryPolicy`].
    pub fn send<E: Endpoint>(&self, endpoint: &E) -> Result<E::Output, Error> {
        let _slot = E::USES_TTS_SLOT.then(|| self.inner.tts_slots.acquire());
        self.retrying(|| send_with(self, &self.inner.config, endpoint))
    }

    /// Runs `attempt` until it succeeds or the client's [`RetryPolicy`] gives up,
    /// telling the retry hook and sleeping between attempts. Every retry loop of this
    /// crate is this one; the decisions are the core's.
    pub(crate) fn retrying<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let mut number = 1;
        loop {
            let error = match attempt() {
                Ok(output) => return Ok(output),
                Err(error) => error,
            };
            let decision = self.retry.decide(
                number,
                &error,
                AttemptContext::default(),
                started.elapsed(),
                SystemTime::now(),
                jitter(),
            );
            let RetryDecision::RetryAfter(delay) = decision else {
                return Err(error);
            };
            if let Some(hook) = &self.inner.on_retry {
                hook(&RetryNotice {
                    attempt: number,
                    delay,
                    error: &error,
                });
            }
            std::thread::sleep(delay);
            number += 1;
        }
    }

    /// `POST /waves/v1/tts`: synthesizes speech in one piece.
    ///
    /// The audio is returned whole, however long it is.
    pub fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.send(request)
    }

    /// Synthesizes a text of any length: split at sentence ends into requests of at most
    /// 250 characters (the API's recommended size), synthesized one after another through
    /// the TTS limiter, and joined in order into one [`Audio`].
    pub fn synthesize_long(&self, request: &TtsRequest) -> Result<Audio, Error> {
        request.validate()?;
        let mut parts = Vec::new();
        for piece in request.split() {
            parts.push(self.synthesize(&piece)?);
        }
        Audio::concat(parts)
    }

    /// `POST /waves/v1/stt/`: transcribes a recording (bytes or URL).
    pub fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error> {
        self.send(request)
    }

    /// `POST /waves/v1/pulse/get_text`: the legacy transcription endpoint.
    pub fn transcribe_legacy(
        &self,
        request: &LegacyTranscribeRequest,
    ) -> Result<Transcription, Error> {
        self.send(request)
    }

    /// `GET /waves/v1/lightning-v3.1/get_voices`: the voices of the default model
    /// (standard and Pro catalogs, plus your clones). Filter them with
    /// [`VoiceFilter`]; other models via [`send`](Self::send)
    /// with a [`GetVoices`].
    pub fn voices(&self) -> Result<Vec<Voice>, Error> {
        self.send(&GetVoices::default())
    }

    /// `GET /waves/v1/voice/get-all-models`: the voice catalog with audio previews.
    pub fn voice_catalog(&self) -> Result<Vec<CatalogVoice>, Error> {
        self.send(&GetVoiceCatalog)
    }

    /// `POST /waves/v1/voice-cloning`: creates an instant voice clone from a 5–15 s
    /// recording. A fresh random multipart boundary is chosen when the request has none.
    /// (There is no API-key delete for clones: remove them in the console.)
    pub fn create_voice_clone(&self, request: &CreateVoiceClone) -> Result<VoiceClone, Error> {
        if request.boundary.is_some() {
            return self.send(request);
        }
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&entropy().to_le_bytes());
        random[8..].copy_from_slice(&entropy().to_le_bytes());
        let request = request
            .clone()
            .boundary(smallest_core::cloning::boundary_from_random(random));
        self.send(&request)
    }

    /// `GET /waves/v1/voice-cloning`: the clones of your organization.
    pub fn list_voice_clones(&self) -> Result<Vec<ClonedVoice>, Error> {
        self.send(&ListVoiceClones)
    }

    /// `GET /waves/v1/pronunciation-dicts`: your pronunciation dictionaries.
    pub fn list_dicts(&self) -> Result<Vec<PronunciationDict>, Error> {
        self.send(&ListDicts)
    }

    /// `POST /waves/v1/pronunciation-dicts`: creates a dictionary.
    pub fn create_dict(&self, request: &CreateDict) -> Result<PronunciationDict, Error> {
        self.send(request)
    }

    /// `PUT /waves/v1/pronunciation-dicts`: replaces a dictionary's items.
    pub fn update_dict(&self, request: &UpdateDict) -> Result<PronunciationDict, Error> {
        self.send(request)
    }

    /// `DELETE /waves/v1/pronunciation-dicts`: deletes a dictionary.
    pub fn delete_dict(&self, request: &DeleteDict) -> Result<DeletedDict, Error> {
        self.send(request)
    }

    /// `GET /waves/v1/health` (needs no key). A `503` with the documented body is an
    /// unhealthy [`HealthStatus`], not an error.
    pub fn health(&self) -> Result<HealthStatus, Error> {
        self.send(&smallest_core::Health)
    }

    /// Sends a prepared request (see [`smallest_core::prepare`]) and reads the whole
    /// response, whatever its status, within the time limits.
    pub fn execute(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        refuse_if_trace_would_log_the_key(request.headers())?;
        let limits = &self.inner.timeouts;
        let (parts, body) = request.into_parts();
        let bodiless = body.is_empty() && matches!(parts.method, Method::GET | Method::HEAD);
        let result = if bodiless {
            self.inner.agent.run(Request::from_parts(parts, ()))
        } else {
            self.inner
                .agent
                .run(Request::from_parts(parts, body.as_ref()))
        };
        let response = result.map_err(|e| classify(e, Stage::Exchange, limits))?;
        let (parts, body) = response.into_parts();
        // An error body is evidence, kept bounded (the core keeps MAX_ERROR_BODY bytes and
        // notes that there were more); a success body is the answer, kept whole.
        let cap = if parts.status.is_success() {
            u64::MAX
        } else {
            smallest_core::error::MAX_ERROR_BODY as u64 + 1
        };
        let body = read_body(body, cap).map_err(|e| classify(e, Stage::Body, limits))?;
        Ok(Response::from_parts(parts, body))
    }
}

impl HttpSend for Client {
    fn send_http(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        self.execute(request)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("timeouts", &self.inner.timeouts)
            .field("retry", &self.retry)
            .field("tts_concurrency", &self.inner.tts_slots.concurrency())
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Trusts this DER-encoded certificate in addition to the Mozilla (webpki) roots:
    /// for a private CA, or the certificate of a local emulator served over TLS.
    ///
    /// [`build`](Self::build) fails with [`Error::Config`] if it is not a certificate
    /// that can serve as a trust anchor.
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(der.into());
        self
    }

    /// The limit on opening a connection: resolving the host name, then connecting and
    /// completing the TLS handshake (each step has this limit). Default
    /// [`DEFAULT_CONNECT_TIMEOUT`]. Exceeding it is
    /// [`Error::Timeout`] with [`TimeoutPhase::Connect`]; nothing was sent.
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.connect = Some(limit);
        self
    }

    /// The limit from the end of the request to the whole response head: the time the
    /// server takes to start answering (a synthesis is made before its answer starts).
    /// Exceeding it is [`Error::Timeout`] with [`TimeoutPhase::ResponseHead`]. No limit
    /// by default.
    pub fn response_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.response = Some(limit);
        self
    }

    /// The limit on any single wait for the connection once it is open: the gap between
    /// two chunks of the response body, a stalled write of the request, and, because
    /// ureq applies it to every read, also each wait for bytes of the response head.
    /// Keep it longer than the server's time to first byte when a response limit is
    /// also set. Exceeding it is [`Error::Timeout`] with [`TimeoutPhase::Idle`]. No
    /// limit by default.
    pub fn idle_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.idle = Some(limit);
        self
    }

    /// The limit on a whole call, from resolving the host to the last byte of the
    /// body. Exceeding it is [`Error::Timeout`] with [`TimeoutPhase::Total`]. No limit
    /// by default.
    pub fn total_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.total = Some(limit);
        self
    }

    /// How failed calls are retried (default: [`RetryPolicy::default`]; switch off with
    /// [`RetryPolicy::none`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The account's TTS concurrency (default 1). Ignored when a shared
    /// [`tts_limiter`](Self::tts_limiter) is given.
    pub fn tts_concurrency(mut self, concurrency: usize) -> Self {
        self.tts_slots = Some(TtsLimiter::new(concurrency));
        self
    }

    /// Queues TTS calls on a limiter shared with other clients of the same account.
    pub fn tts_limiter(mut self, limiter: TtsLimiter) -> Self {
        self.tts_slots = Some(limiter);
        self
    }

    /// Called before each retry wait.
    pub fn on_retry(mut self, hook: impl Fn(&RetryNotice<'_>) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Builds the client. Opens no connection; the first request does.
    pub fn build(self) -> Result<Client, Error> {
        let ws_tls = live::tls_config(&self.extra_roots)?;
        let tls = TlsConfig::builder()
            .root_certs(root_certs(&self.extra_roots)?)
            .build();
        let t = self.timeouts;
        let agent: Agent = Agent::config_builder()
            // Error statuses are answers the core parses, not transport failures.
            .http_status_as_error(false)
            // Redirects are returned to the core (which reports them), never followed:
            // the key must not travel to another host.
            .max_redirects(0)
            // The core sets User-Agent; ureq must not add its own.
            .user_agent(AutoHeaderValue::None)
            .tls_config(tls)
            .timeout_resolve(t.connect)
            .timeout_connect(t.connect)
            .timeout_recv_response(t.response)
            .timeout_per_read(t.idle)
            .timeout_per_write(t.idle)
            .timeout_global(t.total)
            .build()
            .into();
        Ok(Client {
            inner: Arc::new(Inner {
                agent,
                config: self.config,
                timeouts: self.timeouts,
                tts_slots: self.tts_slots.unwrap_or_else(|| TtsLimiter::new(1)),
                on_retry: self.on_retry,
                ws_tls,
            }),
            retry: self.retry,
        })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("extra_roots", &self.extra_roots.len())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// The roots to trust: the Mozilla roots alone, or the Mozilla roots as full
/// certificates (ureq's `RootCerts::Specific` takes certificates, not trust anchors)
/// followed by each extra root, each checked to be a usable trust anchor first (ureq
/// would silently skip one that is not).
fn root_certs(extra: &[Vec<u8>]) -> Result<RootCerts, Error> {
    if extra.is_empty() {
        return Ok(RootCerts::WebPki);
    }
    let mut check = rustls::RootCertStore::empty();
    for (i, der) in extra.iter().enumerate() {
        check
            .add(CertificateDer::from(der.as_slice()))
            .map_err(|e| {
                Error::Config(
                    format!(
                        "extra root certificate #{} is not a usable DER certificate: {e}",
                        i + 1
                    )
                    .into(),
                )
            })?;
    }
    let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()));
    let extra = extra
        .iter()
        .map(|der| Certificate::from_der(der).to_owned());
    Ok(RootCerts::from(mozilla.chain(extra)))
}

/// Reads a whole body, however long: no 10 MB cap for audio.
fn read_body(body: ureq::Body, cap: u64) -> Result<Bytes, ureq::Error> {
    let reserve = body
        .content_length()
        .unwrap_or(0)
        .min(MAX_PREALLOCATION)
        .min(cap);
    let mut out = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    body.into_reader().take(cap).read_to_end(&mut out)?;
    Ok(Bytes::from(out))
}

/// Where in the call a ureq error arose.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// In `Agent::run`: connecting, sending, or receiving the response head.
    Exchange,
    /// Reading the response body: the request was sent whole.
    Body,
}

/// Sorts a ureq error into a time limit, a failure before anything was sent, or a
/// failure after (part of) the request may have reached the server.
fn classify(e: ureq::Error, stage: Stage, limits: &Timeouts) -> Error {
    use ureq::Error as U;
    if let U::Timeout(which) = &e
        && let Some(timeout) = timeout_error(*which, limits)
    {
        return timeout;
    }
    let request_sent = stage == Stage::Body
        || match &e {
            U::HostNotFound
            | U::ConnectionFailed
            | U::BadUri(_)
            | U::Http(_)
            | U::InvalidProxyUrl
            | U::ConnectProxyFailed(_)
            | U::RequireHttpsOnly(_)
            | U::TlsRequired
            | U::Tls(_)
            | U::Pem(_)
            | U::Rustls(_) => false,
            U::Timeout(which) => !matches!(which, ureq::Timeout::Resolve | ureq::Timeout::Connect),
            U::Io(io) => !io_before_sending(io),
            _ => true,
        };
    Error::transport(request_sent, e)
}

/// The ureq timeouts this crate sets, as the phase they limit.
fn timeout_error(which: ureq::Timeout, limits: &Timeouts) -> Option<Error> {
    use ureq::Timeout as T;
    let (phase, limit) = match which {
        T::Resolve | T::Connect => (TimeoutPhase::Connect, limits.connect),
        T::RecvResponse => (TimeoutPhase::ResponseHead, limits.response),
        T::PerRead | T::PerWrite => (TimeoutPhase::Idle, limits.idle),
        T::Global | T::PerCall => (TimeoutPhase::Total, limits.total),
        _ => return None,
    };
    Some(Error::Timeout {
        phase,
        limit: limit?,
    })
}

/// A failed host name lookup, as std reports it: a custom error on Unix, a
/// `WSAHOST_NOT_FOUND`-family code on Windows. Neither has a stable `ErrorKind`.
fn is_dns_failure(e: &io::Error) -> bool {
    if cfg!(windows) && matches!(e.raw_os_error(), Some(11001..=11004)) {
        return true;
    }
    e.raw_os_error().is_none()
        && e.to_string()
            .starts_with("failed to lookup address information")
}

/// An I/O error from `Agent::run` that can only happen while connecting: refused or
/// unreachable addresses, and TLS handshake failures (ureq completes the handshake
/// before it writes the request).
fn io_before_sending(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionRefused
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::AddrNotAvailable
            | K::AddrInUse
            | K::InvalidInput
            | K::PermissionDenied
    ) || is_dns_failure(e)
    {
        return true;
    }
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return false;
    };
    use rustls::AlertDescription as A;
    use rustls::Error as R;
    match tls {
        R::InvalidCertificate(_)
        | R::NoCertificatesPresented
        | R::UnsupportedNameType
        | R::PeerIncompatible(_)
        | R::InappropriateHandshakeMessage { .. }
        | R::HandshakeNotComplete
        | R::NoApplicationProtocol
        | R::InvalidCertRevocationList(_)
        | R::InvalidEncryptedClientHello(_) => true,
        R::AlertReceived(alert) => matches!(
            alert,
            A::HandshakeFailure
                | A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::ProtocolVersion
                | A::InsufficientSecurity
                | A::UnrecognisedName
                | A::NoApplicationProtocol
                | A::IllegalParameter
        ),
        _ => false,
    }
}

/// 64 bits that differ on every call: the clock's nanoseconds mixed with a counter
/// (for retry jitter and multipart boundaries; not for secrets).
fn entropy() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = smallest_core::retry::jitter_from_seed(nanos ^ n.rotate_left(32));
    (mixed * (1u64 << 53) as f64) as u64 ^ nanos.rotate_left(17) ^ n
}

/// A jitter value in `[0, 1)` for the retry maths.
fn jitter() -> f64 {
    smallest_core::retry::jitter_from_seed(entropy())
}

/// Log targets that record raw request bytes, `Authorization` included, at TRACE:
/// ureq-proto's hex dump of every request head it writes, and tungstenite's dump of the
/// WebSocket upgrade request.
const RAW_DUMP_TARGETS: [&str; 2] = ["ureq_proto::util", "tungstenite::handshake::client"];

/// Refuses to send a request that carries the key while the process logger would
/// record a library's TRACE dump of the raw request: that dump would put the API key
/// into the log. Turning a silent leak into an error that names the fix is the only
/// safe choice a library has; every other target may log at TRACE freely.
pub(crate) fn refuse_if_trace_would_log_the_key(headers: &http::HeaderMap) -> Result<(), Error> {
    if !headers.contains_key(http::header::AUTHORIZATION) {
        return Ok(());
    }
    for target in RAW_DUMP_TARGETS {
        if log::log_enabled!(target: target, log::Level::Trace) {
            return Err(Error::Config(
                format!(
                    "refusing to send the API key: the logger records TRACE output of `{target}`, \
                     which dumps raw request bytes including the Authorization header; lower \
                     that target to DEBUG (e.g. RUST_LOG=trace,ureq_proto=debug,tungstenite=debug)"
                )
                .into(),
            ));
        }
    }
    Ok(())
}
