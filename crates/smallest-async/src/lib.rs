//! # smallest-async
//!
//! The async client of the Smallest AI Waves API for **any executor**: smol
//! ([`SmolRuntime`], feature `smol`), tokio ([`TokioRuntime`], feature `tokio`), or a
//! runtime of your own behind the two methods of [`Runtime`] (open a TCP connection,
//! make a timer; nothing is spawned). Everything else — HTTP/1.1 (hyper's connection API),
//! TLS (futures-rustls, the roots of every transport), WebSockets (async-tungstenite),
//! the proxy tunnel — is executor-neutral, over `futures-io`. Every decision (retries,
//! TTS slots, time and body limits, stream and upload states, the live-session driver)
//! is the sans-IO [`smallest_core`]'s; this crate moves bytes.
//!
//! ```no_run
//! # #[cfg(feature = "smol")]
//! # fn main() -> Result<(), smallest_async::Error> {
//! use smallest_async::{Client, TtsRequest};
//!
//! smol::block_on(async {
//!     let client = Client::from_env()?; // SMALLEST_API_KEY (and SMALLEST_BASE_URL), on smol
//!     let audio = client.synthesize(&TtsRequest::new("Hello from smol.", "meher")).await?;
//!     std::fs::write("hello.wav", audio.bytes()).expect("write hello.wav");
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "smol"))]
//! # fn main() {}
//! ```
//!
//! The methods, their documentation and the options ([`ClientBuilder`]) are those of
//! `smallest-hyper` and `smallest-blocking`. [`Client::new`] and [`Client::from_env`]
//! take the runtime of the enabled feature (smol first); with another runtime, build
//! with [`BuildOn::build_on`]:
//!
//! ```no_run
//! use smallest_async::{BuildOn, Client, Config, Runtime};
//! # fn run(my_runtime: impl Runtime, config: Config) -> Result<(), smallest_async::Error> {
//! let client = Client::builder(config)
//!     .tts_concurrency(2)
//!     .build_on(my_runtime)?;
//! # Ok(()) }
//! ```
//!
//! `docs/custom-runtime.md` walks through the three ways in: this client on smol or
//! tokio, [`Runtime`] for another executor (a complete example over
//! `futures::executor`, with a thread per connection), and `smallest-core` driven by
//! an HTTP client of your own.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
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

mod conn;
mod live;
pub mod runtime;
mod stream;

pub use live::{
    CloseOutcome, CloseReason, ContextId, Redial, SttEncoding, SttLive, SttLiveConfig,
    SttLiveEvent, SttLiveReceiver, SttLiveRoute, SttLiveSender, SttReconnect, Transcript,
    TtsContext, TtsLive, TtsLiveConfig, TtsLiveEvent, TtsLiveReceiver, TtsLiveSender,
};
#[cfg(feature = "smol")]
pub use runtime::SmolRuntime;
#[cfg(feature = "tokio")]
pub use runtime::TokioRuntime;
pub use runtime::{AsyncIo, AsyncTimer, BoxFuture, Runtime};
pub use stream::{AudioReader, AudioStream, Progress, ProgressHook};

use conn::{Pool, Target};
use runtime::{Sleep, with_limit};

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

/// An async Waves API client on a [`Runtime`]. Cheap to clone: clones share one
/// connection pool and one set of TTS slots.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    options: ClientOptions,
}

struct Inner {
    runtime: Arc<dyn Runtime>,
    pool: Pool,
    config: Config,
    /// The TLS settings of HTTP connections (ALPN `http/1.1`).
    tls: Arc<rustls::ClientConfig>,
    /// The TLS settings of live WebSocket connections: the same roots, no ALPN.
    ws_tls: Arc<rustls::ClientConfig>,
}

smallest_net::client_basics!();

/// Builds a client on a runtime of your choice (the builder's `build` takes the
/// runtime of the enabled feature).
pub trait BuildOn {
    /// Builds the client on `runtime`. Opens no connection.
    ///
    /// # Errors
    /// As [`ClientBuilder::build`](smallest_core::ClientBuilder::build).
    fn build_on(self, runtime: impl Runtime) -> Result<Client, Error>;
}

impl BuildOn for ClientBuilder {
    fn build_on(self, runtime: impl Runtime) -> Result<Client, Error> {
        let runtime: Arc<dyn Runtime> = Arc::new(runtime);
        self.build_with(|config, options| Client::on(runtime, config, options))
    }
}

impl FromOptions for Client {
    /// The client on the runtime of the enabled feature: [`SmolRuntime`] (feature
    /// `smol`), else [`TokioRuntime::current`] (feature `tokio`; it must be called
    /// inside a tokio runtime). Without either, use [`BuildOn::build_on`].
    fn from_options(config: Config, options: ClientOptions) -> Result<Client, Error> {
        Client::on(default_runtime()?, config, options)
    }
}

#[cfg(feature = "smol")]
fn default_runtime() -> Result<Arc<dyn Runtime>, Error> {
    Ok(Arc::new(SmolRuntime))
}

#[cfg(all(feature = "tokio", not(feature = "smol")))]
fn default_runtime() -> Result<Arc<dyn Runtime>, Error> {
    Ok(Arc::new(TokioRuntime::current()?))
}

#[cfg(not(any(feature = "tokio", feature = "smol")))]
fn default_runtime() -> Result<Arc<dyn Runtime>, Error> {
    Err(Error::Config(
        "smallest-async has no runtime of its own without the `smol` or `tokio` feature: \
         build the client with `BuildOn::build_on(runtime)`"
            .into(),
    ))
}

impl Client {
    /// A client for `config` on `runtime`, with the default options.
    ///
    /// # Errors
    /// As [`ClientBuilder::build`](smallest_core::ClientBuilder::build).
    pub fn with_runtime(config: Config, runtime: impl Runtime) -> Result<Client, Error> {
        Client::builder(config).build_on(runtime)
    }

    fn on(
        runtime: Arc<dyn Runtime>,
        config: Config,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let ws_tls = smallest_net::tls_config(options.extra_roots())?;
        let mut tls = ws_tls.clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            inner: Arc::new(Inner {
                runtime,
                pool: Pool::default(),
                config,
                tls: Arc::new(tls),
                ws_tls: Arc::new(ws_tls),
            }),
            options,
        })
    }

    /// The runtime this client runs on.
    pub fn runtime(&self) -> &dyn Runtime {
        self.inner.runtime.as_ref()
    }

    /// Interprets a call machine. `body` makes the body of each attempt from the
    /// request's (a whole body, or a fresh upload). Returns the output and, when the
    /// head decided the call (a stream that starts), the unread body.
    async fn drive<O: Operation>(
        &self,
        mut call: Call<O>,
        mut body: impl FnMut(Bytes) -> Result<Outgoing, Error>,
    ) -> Result<Driven<O, (Incoming, conn::Lease)>, Error> {
        let rt = self.runtime();
        let mut unread = None;
        loop {
            match call.poll(Instant::now(), SystemTime::now()) {
                Next::TakeSlot(wait) => call.slot_taken(wait.await),
                Next::Send(request) => {
                    let limits = call.limits();
                    let (head, bytes) = request.into_parts();
                    let attempt = async {
                        let outgoing = body(bytes)?;
                        let (response, mut lease) = self
                            .head(Request::from_parts(head, outgoing), &limits)
                            .await?;
                        let (parts, incoming) = response.into_parts();
                        match call.handle_head(parts) {
                            None => Ok((None, Some((incoming, lease)))),
                            Some(max) => {
                                let (body, ended) =
                                    read_body(rt, &mut lease, incoming, max, &limits).await?;
                                if ended {
                                    self.inner.pool.checkin(lease);
                                }
                                Ok((Some(body), None))
                            }
                        }
                    };
                    let result = within(rt, limits.deadline, attempt).await;
                    let (now, wall) = (Instant::now(), SystemTime::now());
                    match result {
                        Ok((Some(body), _)) => call.handle_body(body, now, wall),
                        Ok((None, incoming)) => unread = incoming,
                        Err(e) => call.handle_failure(e, now, wall),
                    }
                }
                Next::Sleep(delay) => Sleep::after(rt, delay).await,
                Next::Done(output) => return Ok((output, unread, call)),
                Next::Fail(error) => return Err(error),
            }
        }
    }

    /// A connection to `target`: an idle one of the pool, or a new one within the
    /// connect limit (TCP, the proxy tunnel, TLS and the HTTP handshake).
    async fn connection(
        &self,
        target: &Target,
        limits: &AttemptLimits,
        reuse: bool,
    ) -> Result<(conn::Lease, bool), Error> {
        while reuse && let Some(mut lease) = self.inner.pool.checkout(target) {
            if lease.ready().await {
                return Ok((lease, true));
            }
        }
        let rt = self.runtime();
        let connecting = async {
            let io = conn::open(rt, &self.options, &self.inner.tls, target).await?;
            conn::handshake(target, io).await
        };
        let lease = with_limit(rt, limits.connect, TimeoutPhase::Connect, connecting).await??;
        Ok((lease, false))
    }

    /// Sends a request and waits for its head: the response limit (and the idle limit,
    /// which bounds every silence once the request is out) starts when the whole body
    /// was handed over. A pooled connection the server had closed is replaced once,
    /// when hyper gives the request back unsent.
    async fn head(
        &self,
        request: Request<Outgoing>,
        limits: &AttemptLimits,
    ) -> Result<(Response<Incoming>, conn::Lease), Error> {
        let rt = self.runtime();
        let target = Target::of(request.uri())?;
        let (mut parts, outgoing) = request.into_parts();
        origin_form(&mut parts, &target)?;
        let mut request = Request::from_parts(parts, outgoing.body);
        let mut fresh_tried = false;
        let (lease, response) = loop {
            let (mut lease, reused) = self.connection(&target, limits, !fresh_tried).await?;
            fresh_tried |= !reused;
            let wrote = lease.write_clock();
            let sending = lease.sender.try_send_request(request);
            // The connection is driven by this wait itself (see `conn::Lease`).
            let pending = Box::pin(lease.drive(sending));
            let result = match &outgoing.sent {
                None => self.head_wait(limits, pending).await?,
                Some(sent) => match upload_wait(rt, pending, sent, &wrote, limits).await? {
                    UploadWait::Answered(result) => result,
                    UploadWait::Sent(pending) => self.head_wait(limits, pending).await?,
                },
            };
            match result {
                Ok(response) => break (lease, response),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    unsent => {
                        if let Some(failure) = outgoing.failure.take() {
                            return Err(failure);
                        }
                        return Err(Error::transport(unsent.is_none(), e.into_error()));
                    }
                },
            }
            // A closed pooled connection took nothing: the loop drops it and tries a
            // new one.
        };
        Ok((response, lease))
    }

    /// The wait for the head of a request sent whole, within the head limit.
    async fn head_wait<F: Future>(
        &self,
        limits: &AttemptLimits,
        pending: F,
    ) -> Result<F::Output, Error> {
        let (limit, phase) = head_limit(limits);
        with_limit(self.runtime(), limit, phase, pending).await
    }
}

/// What an upload's wait for its head came to.
enum UploadWait<T, F> {
    /// The server answered before the body was handed over whole (e.g. a 413).
    Answered(T),
    /// The body was handed over whole: the head is still to come.
    Sent(F),
}

/// Waits while an upload is written: for an early answer, for the end of the body, or
/// until its source stalls longer than the idle limit.
async fn upload_wait<F: Future + Unpin>(
    rt: &dyn Runtime,
    mut pending: F,
    sent: &smallest_net::body::UploadSent,
    wrote: &conn::WriteClock,
    limits: &AttemptLimits,
) -> Result<UploadWait<F::Output, F>, Error> {
    let mut stall = limits.idle.map(|limit| (limit, Sleep::after(rt, limit)));
    std::future::poll_fn(|cx| {
        // A stall is the socket taking nothing: the upload's own reads are no measure
        // (hyper takes a piece into its buffer whenever the connection is driven). It
        // is judged before the upload is polled again.
        if let Some((limit, timer)) = &mut stall {
            while Pin::new(&mut *timer).poll(cx).is_ready() {
                let due = wrote.last() + *limit;
                if due <= Instant::now() {
                    return Poll::Ready(Err(Error::Timeout {
                        phase: TimeoutPhase::Idle,
                        limit: *limit,
                    }));
                }
                timer.reset(due);
            }
        }
        if let Poll::Ready(result) = Pin::new(&mut pending).poll(cx) {
            return Poll::Ready(Ok(Some(result)));
        }
        if sent.poll_sent(cx).is_ready() {
            return Poll::Ready(Ok(None));
        }
        Poll::Pending
    })
    .await
    .map(|early| match early {
        Some(result) => UploadWait::Answered(result),
        None => UploadWait::Sent(pending),
    })
}

/// The request line of HTTP/1.1 to an origin server: the path and query only, the
/// authority in `Host` (hyper's connection API writes the URI as it is given).
fn origin_form(parts: &mut http::request::Parts, target: &Target) -> Result<(), Error> {
    if !parts.headers.contains_key(http::header::HOST) {
        let default_port = if target.tls { 443 } else { 80 };
        let host = if target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.clone()
        };
        let host = if target.port == default_port {
            host
        } else {
            format!("{host}:{}", target.port)
        };
        let value = HeaderValue::from_str(&host).map_err(|e| {
            Error::Config(format!("{host:?} is not a valid Host header: {e}").into())
        })?;
        parts.headers.insert(http::header::HOST, value);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    parts.uri = path
        .parse()
        .map_err(|e| Error::Config(format!("{path:?} is not a request path: {e}").into()))?;
    Ok(())
}

impl Client {
    smallest_net::endpoint_methods!(async: [async], await: [.await]);
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

impl HttpSend for Client {
    /// One exchange over this client's pool, within its limits; the body is read whole
    /// up to the larger of the body limits.
    async fn send_http(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let limits = AttemptLimits::of(&self.options);
        let bodies = self.options.body_limits();
        let max_body = bodies.json.max(bodies.audio).saturating_add(1);
        let (response, mut lease) = self.head(request.map(Outgoing::whole), &limits).await?;
        let (parts, incoming) = response.into_parts();
        let (body, ended) =
            read_body(self.runtime(), &mut lease, incoming, max_body, &limits).await?;
        if ended {
            self.inner.pool.checkin(lease);
        }
        Ok(Response::from_parts(parts, body))
    }
}

/// Runs any operation over any [`HttpSend`], with the retries, TTS slots and total
/// deadline of `options`, sleeping on `runtime`: the same machine [`Client`] runs.
pub async fn send_with<S, E>(
    runtime: &dyn Runtime,
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
                let result = within(runtime, deadline, client.send_http(request)).await;
                call.handle_response(result, Instant::now(), SystemTime::now());
            }
            Next::Sleep(delay) => Sleep::after(runtime, delay).await,
            Next::Done(output) => return Ok(output),
            Next::Fail(error) => return Err(error),
        }
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

/// Reads at most `max` bytes of a body, each wait within the idle limit; says whether
/// the body was read to its end (only then can its connection take another request).
async fn read_body(
    rt: &dyn Runtime,
    lease: &mut conn::Lease,
    mut body: Incoming,
    max: u64,
    limits: &AttemptLimits,
) -> Result<(Bytes, bool), Error> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut out = BytesMut::new();
    let mut ended = false;
    while out.len() < max {
        let frame = with_limit(
            rt,
            limits.idle,
            TimeoutPhase::Idle,
            lease.drive(body.frame()),
        )
        .await?;
        match frame {
            None => {
                ended = true;
                break;
            }
            Some(Err(e)) => return Err(Error::transport(true, e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = max - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
    }
    Ok((out.freeze(), ended || http_body::Body::is_end_stream(&body)))
}

/// The wait for a head is a silence too: the shorter of the response and idle limits
/// bounds it, reported as that limit's phase.
fn head_limit(limits: &AttemptLimits) -> (Option<std::time::Duration>, TimeoutPhase) {
    match (limits.response_head, limits.idle) {
        (Some(r), Some(i)) if i < r => (Some(i), TimeoutPhase::Idle),
        (Some(r), _) => (Some(r), TimeoutPhase::ResponseHead),
        (None, Some(i)) => (Some(i), TimeoutPhase::Idle),
        (None, None) => (None, TimeoutPhase::ResponseHead),
    }
}

/// Runs `attempt` within the call's total deadline.
async fn within<T>(
    rt: &dyn Runtime,
    deadline: Option<smallest_core::call::Deadline>,
    attempt: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match deadline {
        None => attempt.await,
        Some(d) => runtime::race(rt, attempt, d.at)
            .await
            .unwrap_or_else(|| Err(d.error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn clients_streams_and_halves_move_between_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Client>();
        assert_send::<AudioStream>();
        assert_send::<AudioReader>();
        assert_send::<TtsLiveSender>();
        assert_send::<TtsLiveReceiver>();
        assert_send::<SttLiveSender>();
        assert_send::<SttLiveReceiver>();
        // The futures of the calls can be spawned (created, never polled).
        fn spawnable<F: Future + Send>(_: &F) {}
        #[derive(Debug)]
        struct Never;
        impl Runtime for Never {
            fn connect(&self, _: &str, _: u16) -> BoxFuture<std::io::Result<Box<dyn AsyncIo>>> {
                unreachable!()
            }
            fn new_timer(&self, _: Instant) -> Pin<Box<dyn AsyncTimer>> {
                unreachable!()
            }
        }
        let config = Config::new(ApiKey::new("sk_test_0123456789abcdef").unwrap());
        let client = Client::with_runtime(config, Never).unwrap();
        let tts = TtsRequest::new("a", "meher");
        spawnable(&client.synthesize(&tts));
        spawnable(&client.synthesize_stream(&tts));
        let template = TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En);
        spawnable(&client.transcribe_file("a.wav", &template, None));
        spawnable(&client.tts_live(TtsLiveConfig::new("meher")));
    }
}
