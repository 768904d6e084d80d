//! # smallest-hyper
//!
//! The async client of the Smallest AI Waves API, on tokio, hyper 1 and rustls. It runs
//! the sans-IO [`smallest_core`]: the core builds each request and parses each
//! response; this crate only moves bytes, pools connections (HTTP/1.1 and HTTP/2 by
//! ALPN) and enforces time limits.
//!
//! ```no_run
//! use smallest_hyper::{Client, OutputFormat, TtsModel, TtsRequest};
//!
//! # async fn run() -> Result<(), smallest_hyper::Error> {
//! let client = Client::from_env()?; // SMALLEST_API_KEY (and SMALLEST_BASE_URL)
//! let audio = client
//!     .synthesize(
//!         &TtsRequest::new("Hello from Smallest AI.", "meher")
//!             .model(TtsModel::LightningV31Pro)
//!             .sample_rate(24000)
//!             .output_format(OutputFormat::Wav),
//!     )
//!     .await?;
//! std::fs::write("hello.wav", audio.bytes()).expect("write hello.wav");
//! # Ok(()) }
//! ```
//!
//! The blocking sibling, `smallest-blocking`, has the same methods without `.await`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
pub use smallest_core::retry::RetryPolicy;
use smallest_core::retry::{AttemptContext, RetryDecision};

pub use smallest_core::{
    self as core, ApiKey, Audio, AudioSource, CatalogVoice, ClonedVoice, Config, CreateDict,
    CreateVoiceClone, DeleteDict, DeletedDict, Endpoint, Error, GetVoiceCatalog, GetVoices,
    HealthStatus, Language, LegacyTranscribeRequest, ListDicts, ListVoiceClones, OutputFormat,
    PronunciationDict, PronunciationItem, SttLanguage, SttModel, TimeoutPhase, TranscribeRequest,
    Transcription, TtsModel, TtsRequest, UpdateDict, Voice, VoiceClone, VoiceFilter,
};

mod live;
pub use live::{
    CloseOutcome, CloseReason, SttEncoding, SttLive, SttLiveConfig, SttLiveEvent, SttLiveReceiver,
    SttLiveRoute, SttLiveSender, Transcript, TtsLive, TtsLiveConfig, TtsLiveEvent, TtsLiveReceiver,
    TtsLiveSender,
};

mod stream;
pub use stream::{AudioReader, AudioStream, Progress, ProgressHook};

type Connector = HttpsConnector<HttpConnector>;

/// The request body of every call: a whole body ([`full_body`]) or a streamed upload.
type HttpBody = UnsyncBoxBody<Bytes, smallest_core::BoxError>;

/// A request body that is already in memory.
fn full_body(bytes: Bytes) -> HttpBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An async Waves API client. Cheap to clone: clones share one connection pool and
/// one TTS limiter.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    retry: RetryPolicy,
}

struct Inner {
    http: HyperClient<Connector, HttpBody>,
    config: Config,
    timeouts: Timeouts,
    tts_slots: TtsLimiter,
    on_retry: Option<RetryHook>,
    /// The TLS settings of live WebSocket connections: the same roots as HTTP, no ALPN.
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
/// instead of provoking a 429; a dropped or cancelled call gives its place back.
///
/// Clones share the slots: hand one limiter to every client of the same account.
#[derive(Clone, Debug)]
pub struct TtsLimiter {
    slots: Arc<tokio::sync::Semaphore>,
    size: usize,
}

impl TtsLimiter {
    /// A limiter for an account with `concurrency` TTS slots (at least 1).
    pub fn new(concurrency: usize) -> Self {
        let size = concurrency.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        TtsLimiter {
            slots: Arc::new(tokio::sync::Semaphore::new(size)),
            size,
        }
    }

    /// The number of slots.
    pub fn concurrency(&self) -> usize {
        self.size
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// Waits for a slot (FIFO). The slot is held until the permit is dropped.
    pub async fn acquire(&self) -> TtsPermit {
        // The semaphore is never closed, so acquiring cannot fail; if it ever were,
        // running without a slot is the safe fallback (the server still enforces).
        TtsPermit(self.slots.clone().acquire_owned().await.ok())
    }
}

/// A held TTS slot; dropping it frees the slot.
#[derive(Debug)]
pub struct TtsPermit(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

/// Time limits, per phase; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Timeouts {
    connect: Option<Duration>,
    response: Option<Duration>,
    idle: Option<Duration>,
    total: Option<Duration>,
}

/// Builds a [`Client`] with extra trusted roots, time limits, retries and TTS slots.
pub struct ClientBuilder {
    config: Config,
    extra_roots: Vec<CertificateDer<'static>>,
    timeouts: Timeouts,
    retry: RetryPolicy,
    tts_slots: Option<TtsLimiter>,
    on_retry: Option<RetryHook>,
}

impl Client {
    /// A client for `config`, trusting the Mozilla (webpki) roots.
    pub fn new(config: Config) -> Result<Client, Error> {
        Client::builder(config).build()
    }

    /// A client configured from `SMALLEST_API_KEY` and `SMALLEST_BASE_URL`.
    pub fn from_env() -> Result<Client, Error> {
        Client::new(Config::from_env()?)
    }

    /// A builder, for extra roots and time limits.
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            config,
            extra_roots: Vec::new(),
            timeouts: Timeouts {
                connect: Some(Duration::from_secs(10)),
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
    pub async fn send<E: Endpoint>(&self, endpoint: &E) -> Result<E::Output, Error> {
        let _slot = if E::USES_TTS_SLOT {
            Some(self.inner.tts_slots.acquire().await)
        } else {
            None
        };
        self.retrying(|| async {
            let request = smallest_core::prepare(endpoint, &self.inner.config)?;
            let response = self.execute(request).await?;
            endpoint.from_http_response(response)
        })
        .await
    }

    /// Runs `attempt` until it succeeds or the client's [`RetryPolicy`] gives up,
    /// telling the retry hook and sleeping between attempts. Every retry loop of this
    /// crate is this one; the decisions are the core's.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let started = Instant::now();
        let mut number = 1;
        loop {
            let error = match attempt().await {
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
            tokio::time::sleep(delay).await;
            number += 1;
        }
    }

    /// `POST /waves/v1/tts`: synthesizes speech in one piece.
    pub async fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.send(request).await
    }

    /// Synthesizes a text of any length: split at sentence ends into requests of at most
    /// 250 characters (the API's recommended size), synthesized one after another through
    /// the TTS limiter, and joined in order into one [`Audio`].
    pub async fn synthesize_long(&self, request: &TtsRequest) -> Result<Audio, Error> {
        request.validate()?;
        let mut parts = Vec::new();
        for piece in request.split() {
            parts.push(self.synthesize(&piece).await?);
        }
        Audio::concat(parts)
    }

    /// `POST /waves/v1/stt/`: transcribes a recording (bytes or URL).
    pub async fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error> {
        self.send(request).await
    }

    /// `POST /waves/v1/pulse/get_text`: the legacy transcription endpoint.
    pub async fn transcribe_legacy(
        &self,
        request: &LegacyTranscribeRequest,
    ) -> Result<Transcription, Error> {
        self.send(request).await
    }

    /// `GET /waves/v1/lightning-v3.1/get_voices`: the voices of the default model
    /// (standard and Pro catalogs, plus your clones). Filter them with
    /// [`VoiceFilter`]; other models via [`send`](Self::send)
    /// with a [`GetVoices`].
    pub async fn voices(&self) -> Result<Vec<Voice>, Error> {
        self.send(&GetVoices::default()).await
    }

    /// `GET /waves/v1/voice/get-all-models`: the voice catalog with audio previews.
    pub async fn voice_catalog(&self) -> Result<Vec<CatalogVoice>, Error> {
        self.send(&GetVoiceCatalog).await
    }

    /// `POST /waves/v1/voice-cloning`: creates an instant voice clone from a 5–15 s
    /// recording. A fresh random multipart boundary is chosen when the request has none.
    /// (There is no API-key delete for clones: remove them in the console.)
    pub async fn create_voice_clone(
        &self,
        request: &CreateVoiceClone,
    ) -> Result<VoiceClone, Error> {
        if request.boundary.is_some() {
            return self.send(request).await;
        }
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&entropy().to_le_bytes());
        random[8..].copy_from_slice(&entropy().to_le_bytes());
        let request = request
            .clone()
            .boundary(smallest_core::cloning::boundary_from_random(random));
        self.send(&request).await
    }

    /// `GET /waves/v1/voice-cloning`: the clones of your organization.
    pub async fn list_voice_clones(&self) -> Result<Vec<ClonedVoice>, Error> {
        self.send(&ListVoiceClones).await
    }

    /// `GET /waves/v1/pronunciation-dicts`: your pronunciation dictionaries.
    pub async fn list_dicts(&self) -> Result<Vec<PronunciationDict>, Error> {
        self.send(&ListDicts).await
    }

    /// `POST /waves/v1/pronunciation-dicts`: creates a dictionary.
    pub async fn create_dict(&self, request: &CreateDict) -> Result<PronunciationDict, Error> {
        self.send(request).await
    }

    /// `PUT /waves/v1/pronunciation-dicts`: replaces a dictionary's items.
    pub async fn update_dict(&self, request: &UpdateDict) -> Result<PronunciationDict, Error> {
        self.send(request).await
    }

    /// `DELETE /waves/v1/pronunciation-dicts`: deletes a dictionary.
    pub async fn delete_dict(&self, request: &DeleteDict) -> Result<DeletedDict, Error> {
        self.send(request).await
    }

    /// `GET /waves/v1/health`.
    pub async fn health(&self) -> Result<HealthStatus, Error> {
        self.send(&smallest_core::Health).await
    }

    /// Sends a prepared request and reads the whole response, within the time limits.
    pub async fn execute(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let timeouts = self.inner.timeouts;
        let exchange = async {
            let pending = self.inner.http.request(request.map(full_body));
            let response = with_limit(timeouts.response, TimeoutPhase::ResponseHead, pending)
                .await?
                .map_err(|e| classify(e, timeouts.connect))?;
            let (parts, mut body) = response.into_parts();
            // An error body is evidence, kept bounded (the core keeps MAX_ERROR_BODY bytes
            // and notes that there were more); a success body is the answer, kept whole.
            let cap = if parts.status.is_success() {
                usize::MAX
            } else {
                smallest_core::error::MAX_ERROR_BODY + 1
            };
            let mut collected = BytesMut::new();
            while collected.len() < cap {
                let frame = with_limit(timeouts.idle, TimeoutPhase::Idle, body.frame()).await?;
                match frame {
                    None => break,
                    Some(Err(e)) => return Err(Error::transport(true, e)),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            let room = cap - collected.len();
                            collected.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                }
            }
            Ok(Response::from_parts(parts, collected.freeze()))
        };
        with_limit(timeouts.total, TimeoutPhase::Total, exchange).await?
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
    /// Trusts this DER certificate in addition to the Mozilla roots (for a private CA
    /// or a local emulator's TLS).
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(CertificateDer::from(der.into()));
        self
    }

    /// The limit on opening a connection (TCP + TLS). Default 10 s.
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.connect = Some(limit);
        self
    }

    /// The limit from sending the request to receiving the response head.
    pub fn response_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.response = Some(limit);
        self
    }

    /// The limit on the gap between two chunks of a response body.
    pub fn idle_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.idle = Some(limit);
        self
    }

    /// The limit on a whole call.
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

    /// Builds the client. Needs no runtime; the first request does.
    pub fn build(self) -> Result<Client, Error> {
        let tls = tls_config(&self.extra_roots)?;
        let ws_tls = Arc::new(tls.clone());
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(self.timeouts.connect);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            // `Config` already refused http:// for anything but loopback (or an opt-in).
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
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
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A rustls configuration with the ring provider, the Mozilla roots and `extra` roots.
pub fn tls_config(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| {
            Error::Config(format!("cannot trust the extra root certificate: {e}").into())
        })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(format!("TLS setup failed: {e}").into()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

async fn with_limit<F: std::future::Future>(
    limit: Option<Duration>,
    phase: TimeoutPhase,
    future: F,
) -> Result<F::Output, Error> {
    match limit {
        None => Ok(future.await),
        Some(limit) => tokio::time::timeout(limit, future)
            .await
            .map_err(|_| Error::Timeout { phase, limit }),
    }
}

/// Sorts a hyper-util error into "never sent" (connect, DNS, TLS) and "maybe sent".
fn classify(e: hyper_util::client::legacy::Error, connect_limit: Option<Duration>) -> Error {
    if e.is_connect() {
        // hyper-util reports its own connect timeout as io::ErrorKind::TimedOut.
        let timed_out = source_chain(&e).any(|s| {
            s.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        });
        if let (true, Some(limit)) = (timed_out, connect_limit) {
            return Error::Timeout {
                phase: TimeoutPhase::Connect,
                limit,
            };
        }
        return Error::transport(false, e);
    }
    Error::transport(true, e)
}

fn source_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
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

/// The log target under which tungstenite dumps the raw WebSocket upgrade request,
/// `Authorization` included, at TRACE. (hyper and rustls never log header values.)
const RAW_DUMP_TARGET: &str = "tungstenite::handshake::client";

/// Refuses to send a request that carries the key while the process logger would
/// record tungstenite's TRACE dump of the raw upgrade request: that dump would put the
/// API key into the log. Turning a silent leak into an error that names the fix is the
/// only safe choice a library has; every other target may log at TRACE freely.
pub(crate) fn refuse_if_trace_would_log_the_key(headers: &http::HeaderMap) -> Result<(), Error> {
    if headers.contains_key(http::header::AUTHORIZATION)
        && log::log_enabled!(target: RAW_DUMP_TARGET, log::Level::Trace)
    {
        return Err(Error::Config(
            "refusing to send the API key: the logger records TRACE output of \
             `tungstenite::handshake::client`, which dumps the raw upgrade request including \
             the Authorization header; lower that target to DEBUG (e.g. \
             RUST_LOG=trace,tungstenite=debug)"
                .into(),
        ));
    }
    Ok(())
}
