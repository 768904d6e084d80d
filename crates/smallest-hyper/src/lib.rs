//! # smallest-hyper
//!
//! The async client of the Smallest AI Waves API, on tokio, hyper 1 and rustls. It
//! interprets the call machines of the sans-IO [`smallest_core`]: the core builds each
//! request, decides retries, limits and TTS slots, and parses each answer; this crate
//! only moves bytes, pools connections (HTTP/1.1 and HTTP/2 by ALPN) and keeps time.
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
//! The options ([`ClientBuilder`]: time limits, body limits, retries, TTS slots, extra
//! roots) are the core's, the same on every transport; their meaning and defaults are
//! in [`smallest_core::options`]. The blocking sibling, `smallest-blocking`, has the same
//! methods without `.await`.
//!
//! ## Bring your own HTTP client
//!
//! [`send_with`] runs any operation, with the client's retries, slots and limits, over
//! anything that implements [`HttpSend`] (an async function from `http::Request<Bytes>`
//! to `http::Response<Bytes>`).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use smallest_core::call::{AttemptLimits, Call, Driven, Next, Operation};
use smallest_core::options::FromOptions;

pub use smallest_core::{
    self as core, ApiKey, Audio, AudioSource, CatalogVoice, ClientOptions, ClonedVoice, Config,
    CreateDict, CreateVoiceClone, DeleteDict, DeletedDict, Endpoint, Error, GetVoiceCatalog,
    GetVoices, HealthStatus, Language, LegacyTranscribeRequest, ListDicts, ListVoiceClones,
    OutputFormat, PronunciationDict, PronunciationItem, RetryHook, RetryNotice, SttLanguage,
    SttModel, TimeoutPhase, TranscribeRequest, Transcription, TtsLimiter, TtsModel, TtsPermit,
    TtsRequest, UpdateDict, Voice, VoiceClone, VoiceFilter, retry::RetryPolicy,
};

mod live;
pub use live::{
    CloseOutcome, CloseReason, ContextId, Redial, SttEncoding, SttLive, SttLiveConfig,
    SttLiveEvent, SttLiveReceiver, SttLiveRoute, SttLiveSender, SttReconnect, Transcript,
    TtsContext, TtsLive, TtsLiveConfig, TtsLiveEvent, TtsLiveReceiver, TtsLiveSender,
};

mod stream;
pub use stream::{AudioReader, AudioStream, Progress, ProgressHook};

/// Builds a [`Client`]: the core's builder, with the same setters on every transport.
pub type ClientBuilder = smallest_core::ClientBuilder<Client>;

/// The request body of every call: a whole body or a streamed upload.
type HttpBody = UnsyncBoxBody<Bytes, smallest_core::BoxError>;

/// A request body that is already in memory.
fn full_body(bytes: Bytes) -> HttpBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Any async HTTP client that can send one request and return the whole response.
///
/// The request is complete as the core built it, `Authorization` included (marked
/// sensitive). Report failures with [`Error::transport`], saying whether the request
/// may have reached the server, and time limits with [`Error::Timeout`].
pub trait HttpSend {
    /// Sends `request` and returns the response with its whole body, whatever its status.
    fn send_http(
        &self,
        request: Request<Bytes>,
    ) -> impl Future<Output = Result<Response<Bytes>, Error>> + Send;
}

/// Runs any operation over any [`HttpSend`], with the retries, TTS slots and total
/// deadline of `options`: the same machine [`Client`] runs.
pub async fn send_with<S, E>(
    client: &S,
    config: &Config,
    options: &ClientOptions,
    endpoint: &E,
) -> Result<E::Output, Error>
where
    S: HttpSend + ?Sized,
    E: Endpoint + Sync + ?Sized,
{
    let mut call = Call::new(endpoint, config, options, smallest_net::seed());
    loop {
        match call.poll(Instant::now(), SystemTime::now()) {
            Next::TakeSlot(wait) => call.slot_taken(wait.await),
            Next::Send(request) => {
                let deadline = call.limits().deadline;
                let result = within(deadline, client.send_http(request)).await;
                call.handle_response(result, Instant::now(), SystemTime::now());
            }
            Next::Sleep(delay) => tokio::time::sleep(delay).await,
            Next::Done(output) => return Ok(output),
            Next::Fail(error) => return Err(error),
        }
    }
}

/// An async Waves API client. Cheap to clone: clones share one connection pool and
/// one set of TTS slots.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    options: ClientOptions,
}

struct Inner {
    http: HyperClient<Connector, HttpBody>,
    config: Config,
    /// The TLS settings of live WebSocket connections: the same roots as HTTP, no ALPN.
    ws_tls: Arc<rustls::ClientConfig>,
}

smallest_net::client_basics!();

impl Client {
    /// Interprets a call machine. `body` makes the body of each attempt from the
    /// request's (a whole body, or a fresh upload). Returns the output and, when the
    /// head decided the call (a stream that starts), the unread body.
    async fn drive<O: Operation>(
        &self,
        mut call: Call<O>,
        mut body: impl FnMut(Bytes) -> Result<Outgoing, Error>,
    ) -> Result<Driven<O, Incoming>, Error> {
        let mut unread = None;
        loop {
            match call.poll(Instant::now(), SystemTime::now()) {
                Next::TakeSlot(wait) => call.slot_taken(wait.await),
                Next::Send(request) => {
                    let limits = call.limits();
                    let (head, bytes) = request.into_parts();
                    let attempt = async {
                        let outgoing = body(bytes)?;
                        let response = self.head(Request::from_parts(head, outgoing), &limits);
                        let (parts, incoming) = response.await?.into_parts();
                        match call.handle_head(parts) {
                            None => Ok((None, Some(incoming))),
                            Some(max) => Ok((Some(read_body(incoming, max, &limits).await?), None)),
                        }
                    };
                    let result = within(limits.deadline, attempt).await;
                    let (now, wall) = (Instant::now(), SystemTime::now());
                    match result {
                        Ok((Some(body), _)) => call.handle_body(body, now, wall),
                        Ok((None, incoming)) => unread = incoming,
                        Err(e) => call.handle_failure(e, now, wall),
                    }
                }
                Next::Sleep(delay) => tokio::time::sleep(delay).await,
                Next::Done(output) => return Ok((output, unread, call)),
                Next::Fail(error) => return Err(error),
            }
        }
    }

    /// Sends a request and waits for its head: the response limit (and the idle limit,
    /// which bounds every silence once the request is out) starts when the whole body
    /// was handed over.
    async fn head(
        &self,
        request: Request<Outgoing>,
        limits: &AttemptLimits,
    ) -> Result<Response<Incoming>, Error> {
        let (head, outgoing) = request.into_parts();
        let pending = self
            .inner
            .http
            .request(Request::from_parts(head, outgoing.body));
        let mut pending = std::pin::pin!(pending);
        if let Some(sent) = &outgoing.sent {
            // An upload: the response limit starts once it was handed over whole, and an
            // early answer (a 413 before the body was read) ends the wait. Meanwhile the
            // idle limit bounds each stall of the body (hyper takes a piece only when
            // the connection can write it).
            let progress = outgoing.failure.clone();
            let mut stall = limits
                .idle
                .map(|limit| (limit, Box::pin(tokio::time::sleep(limit))));
            let early = std::future::poll_fn(|cx| {
                if let Poll::Ready(result) = pending.as_mut().poll(cx) {
                    return Poll::Ready(Ok(Some(result)));
                }
                if sent.poll_sent(cx).is_ready() {
                    return Poll::Ready(Ok(None));
                }
                if let Some((limit, timer)) = &mut stall {
                    while timer.as_mut().poll(cx).is_ready() {
                        let due = progress.last_progress() + *limit;
                        if due <= std::time::Instant::now() {
                            let limit = *limit;
                            return Poll::Ready(Err(Error::Timeout {
                                phase: TimeoutPhase::Idle,
                                limit,
                            }));
                        }
                        timer.as_mut().reset(due.into());
                    }
                }
                Poll::Pending
            })
            .await?;
            if let Some(result) = early {
                return result.map_err(|e| classify(e, &outgoing.failure));
            }
        }
        let (limit, phase) = head_limit(limits);
        with_limit(limit, phase, pending)
            .await?
            .map_err(|e| classify(e, &outgoing.failure))
    }
}

impl Client {
    smallest_net::endpoint_methods!(async: [async], await: [.await]);
}

impl HttpSend for Client {
    /// One exchange over this client's pool, within its limits; the body is read whole
    /// up to the larger of the body limits.
    async fn send_http(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let limits = AttemptLimits::of(&self.options);
        let bodies = self.options.body_limits();
        let max_body = bodies.json.max(bodies.audio).saturating_add(1);
        let (parts, incoming) = self
            .head(request.map(Outgoing::whole), &limits)
            .await?
            .into_parts();
        let body = read_body(incoming, max_body, &limits).await?;
        Ok(Response::from_parts(parts, body))
    }
}

impl FromOptions for Client {
    fn from_options(config: Config, options: ClientOptions) -> Result<Client, Error> {
        let tls = smallest_net::tls_config(options.extra_roots())?;
        let ws_tls = Arc::new(tls.clone());
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            // `Config` already refused http:// for anything but loopback (or an opt-in).
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(Tunneling {
                tcp,
                proxy: options.proxy().cloned().map(Arc::new),
            });
        let connector = Connector {
            inner: https,
            limit: options.time_limits().connect,
        };
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                config,
                ws_tls,
            }),
            options,
        })
    }
}

/// The body of one attempt, and for an upload, word of when it was handed over whole
/// and why reading its source failed.
struct Outgoing {
    body: HttpBody,
    sent: Option<smallest_net::body::UploadSent>,
    failure: smallest_net::body::UploadWatch,
}

impl Outgoing {
    fn whole(bytes: Bytes) -> Self {
        Outgoing {
            body: full_body(bytes),
            sent: None,
            failure: smallest_net::body::UploadWatch::default(),
        }
    }
}

/// The connect limit over TCP *and* TLS: hyper-util's own limit stops at TCP, so a
/// server that accepts and never answers the TLS ClientHello would hang a call.
#[derive(Clone)]
struct Connector {
    inner: HttpsConnector<Tunneling>,
    limit: Option<Duration>,
}

/// TCP to the API, or through a `CONNECT` tunnel of the client's proxy (TLS then runs
/// over the tunnel, to the API's name).
#[derive(Clone)]
struct Tunneling {
    tcp: HttpConnector,
    proxy: Option<Arc<smallest_core::proxy::Proxy>>,
}

impl tower_service::Service<Uri> for Tunneling {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = smallest_core::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let proxy = smallest_core::proxy::Proxy::for_uri(self.proxy.as_deref(), &uri);
        let Some(proxy) = proxy else {
            let connecting = self.tcp.call(uri);
            return Box::pin(async move { connecting.await.map_err(Into::into) });
        };
        let tunnel = match smallest_core::proxy::Target::of(&uri) {
            Ok(target) => proxy.tunnel(&target.host, target.port),
            Err(e) => return Box::pin(async move { Err(e.into()) }),
        };
        let (proxy_host, proxy_port) = (proxy.host().to_owned(), proxy.port());
        Box::pin(async move {
            let mut tcp = tokio::net::TcpStream::connect((proxy_host.as_str(), proxy_port))
                .await
                .map_err(|e| tunnel.unreachable(e))?;
            let _ = tcp.set_nodelay(true);
            open_tunnel(&mut tcp, tunnel).await?;
            Ok(TokioIo::new(tcp))
        })
    }
}

/// Writes the `CONNECT` and reads the proxy's answer (the caller's connect limit
/// bounds the whole).
pub(crate) async fn open_tunnel(
    tcp: &mut tokio::net::TcpStream,
    mut tunnel: smallest_core::proxy::Tunnel,
) -> Result<(), Error> {
    use smallest_core::proxy::TunnelState;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(tunnel.request())
        .await
        .map_err(|e| Error::transport(false, e))?;
    let mut buf = [0u8; 1024];
    loop {
        let n = tcp
            .read(&mut buf)
            .await
            .map_err(|e| Error::transport(false, e))?;
        if n == 0 {
            return Err(tunnel.handle_eof());
        }
        if tunnel.handle_input(&buf[..n])? == TunnelState::Open {
            return Ok(());
        }
    }
}

/// The connect limit ran out (found in the error's source chain by [`classify`]).
#[derive(Debug)]
struct ConnectTimedOut(Duration);

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TCP + TLS did not complete within {:?}", self.0)
    }
}

impl std::error::Error for ConnectTimedOut {}

type Connection = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Connection;
    type Error = smallest_core::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                None => connecting.await,
                Some(limit) => tokio::time::timeout(limit, connecting)
                    .await
                    .map_err(|_| ConnectTimedOut(limit))?,
            }
        })
    }
}

/// Reads at most `max` bytes of a body, each wait within the idle limit.
async fn read_body(mut body: Incoming, max: u64, limits: &AttemptLimits) -> Result<Bytes, Error> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut out = BytesMut::new();
    while out.len() < max {
        let frame = with_limit(limits.idle, TimeoutPhase::Idle, body.frame()).await?;
        match frame {
            None => break,
            Some(Err(e)) => return Err(Error::transport(true, e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = max - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
    }
    Ok(out.freeze())
}

/// The wait for a head is a silence too: the shorter of the response and idle limits
/// bounds it, reported as that limit's phase.
fn head_limit(limits: &AttemptLimits) -> (Option<Duration>, TimeoutPhase) {
    match (limits.response_head, limits.idle) {
        (Some(r), Some(i)) if i < r => (Some(i), TimeoutPhase::Idle),
        (Some(r), _) => (Some(r), TimeoutPhase::ResponseHead),
        (None, Some(i)) => (Some(i), TimeoutPhase::Idle),
        (None, None) => (None, TimeoutPhase::ResponseHead),
    }
}

async fn with_limit<F: Future>(
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

/// Runs `attempt` within the call's total deadline.
async fn within<T>(
    deadline: Option<smallest_core::call::Deadline>,
    attempt: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match deadline {
        None => attempt.await,
        Some(d) => tokio::time::timeout_at(d.at.into(), attempt)
            .await
            .map_err(|_| d.error())?,
    }
}

/// Sorts a hyper-util error into a connect timeout, "never sent" (connect, DNS, TLS)
/// and "maybe sent"; an upload whose source failed reports that failure.
fn classify(
    e: hyper_util::client::legacy::Error,
    failure: &smallest_net::body::UploadWatch,
) -> Error {
    if let Some(read) = failure.take() {
        return read;
    }
    let chain = || {
        std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
    };
    if let Some(timeout) = chain().find_map(|s| s.downcast_ref::<ConnectTimedOut>()) {
        return Error::Timeout {
            phase: TimeoutPhase::Connect,
            limit: timeout.0,
        };
    }
    Error::transport(!e.is_connect(), e)
}
