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
//! [`Client::builder`] adds time and body limits, retries, TTS slots and extra trusted
//! roots (a private CA, or the certificate of a local emulator served over TLS): the
//! core's [`ClientBuilder`], the same on every transport, whose meaning and defaults
//! are in [`smallest_core::options`]. TLS is rustls with the ring
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
//! [`send_with`] runs any operation, with the retries, slots and limits of the core's
//! call machine, over anything that implements [`HttpSend`], including a closure:
//!
//! ```
//! use bytes::Bytes;
//! use smallest_blocking::{ApiKey, ClientOptions, Config, Error, HealthStatus, core::Health};
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
//! let status: HealthStatus = smallest_blocking::send_with(&my_client, &config, &ClientOptions::default(), &Health)?;
//! assert!(status.healthy);
//! # Ok(()) }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response};
use smallest_core::call::{AttemptLimits, Call, Driven, Next, Operation};
use smallest_core::options::FromOptions;
use smallest_core::proxy::Proxy;
use ureq::Agent;
use ureq::config::{AutoHeaderValue, IpFamily};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    ConnectionDetails, Connector, NextTimeout, RustlsConnector, TcpConnector, Transport,
    TransportAdapter,
};

mod live;
pub use live::{
    BURST_SLICE, BURST_WINDOW, CloseOutcome, CloseReason, ContextId, READ_SLICE, Redial,
    SttEncoding, SttLive, SttLiveConfig, SttLiveEvent, SttLiveReceiver, SttLiveRoute,
    SttLiveSender, SttReconnect, Transcript, TtsContext, TtsLive, TtsLiveConfig, TtsLiveEvent,
    TtsLiveReceiver, TtsLiveSender,
};

pub use smallest_core::{
    self as core, ApiKey, Audio, AudioSource, CatalogVoice, ClientOptions, ClonedVoice, Config,
    CreateDict, CreateVoiceClone, DeleteDict, DeletedDict, Endpoint, Error, GetVoiceCatalog,
    GetVoices, HealthStatus, Language, LegacyTranscribeRequest, ListDicts, ListVoiceClones,
    OutputFormat, PronunciationDict, PronunciationItem, RetryHook, RetryNotice, SttLanguage,
    SttModel, TimeoutPhase, TranscribeRequest, Transcription, TtsLimiter, TtsModel, TtsPermit,
    TtsRequest, UpdateDict, Voice, VoiceClone, VoiceFilter, options::DEFAULT_CONNECT_TIMEOUT,
    retry::RetryPolicy,
};

mod stream;
pub use stream::{AudioReader, AudioStream, Progress, ProgressHook};

/// Builds a [`Client`]: the core's builder, with the same setters on every transport.
pub type ClientBuilder = smallest_core::ClientBuilder<Client>;

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

/// Runs any operation over any [`HttpSend`] with the retries, TTS slots and total
/// deadline of `options`: the same call machine [`Client`] runs.
pub fn send_with<S, E>(
    client: &S,
    config: &Config,
    options: &ClientOptions,
    endpoint: &E,
) -> Result<E::Output, Error>
where
    S: HttpSend + ?Sized,
    E: Endpoint + ?Sized,
{
    let mut call = Call::new(endpoint, config, options, smallest_net::seed());
    loop {
        match call.poll(Instant::now(), SystemTime::now()) {
            Next::TakeSlot(wait) => call.slot_taken(block_on(wait)),
            Next::Send(request) => {
                let result = client.send_http(request);
                call.handle_response(result, Instant::now(), SystemTime::now());
            }
            Next::Sleep(delay) => std::thread::sleep(delay),
            Next::Done(output) => return Ok(output),
            Next::Fail(error) => return Err(error),
        }
    }
}

/// Waits on this thread for a future of the core (a TTS slot): parks until woken.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// A blocking Waves API client. Cheap to clone: clones share one connection pool and
/// one set of TTS slots.
///
/// Safe to share between threads; each call blocks only the thread that makes it, and
/// no call spawns a thread.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    options: ClientOptions,
}

struct Inner {
    agent: Agent,
    config: Config,
    /// The TLS settings of live WebSocket connections: the same roots as HTTP.
    ws_tls: Arc<rustls::ClientConfig>,
}

/// A request body for ureq: in memory, or streamed from a source.
enum Outgoing<'a> {
    Bytes(Bytes),
    Reader(stream::UploadReader<'a>),
}

impl Outgoing<'_> {
    fn whole(bytes: Bytes) -> Self {
        Outgoing::Bytes(bytes)
    }
}

smallest_net::client_basics!();

impl Client {
    /// Interprets a call machine. `body` makes the body of each attempt from the
    /// request's. Returns the output and, when the head decided the call (a stream that
    /// starts), the unread body.
    fn drive<'a, O: Operation>(
        &self,
        mut call: Call<O>,
        mut body: impl FnMut(Bytes) -> Result<Outgoing<'a>, Error>,
    ) -> Result<Driven<O, ureq::Body>, Error> {
        let mut unread = None;
        loop {
            match call.poll(Instant::now(), SystemTime::now()) {
                Next::TakeSlot(wait) => call.slot_taken(block_on(wait)),
                Next::Send(request) => {
                    let limits = call.limits();
                    let (head, bytes) = request.into_parts();
                    let attempt = body(bytes).and_then(|outgoing| {
                        self.exchange(Request::from_parts(head, outgoing), &limits)
                    });
                    let outcome = attempt.and_then(|response| {
                        let (parts, incoming) = response.into_parts();
                        match call.handle_head(parts) {
                            None => Ok((None, Some(incoming))),
                            Some(max) => read_body(incoming, max, &limits).map(|b| (Some(b), None)),
                        }
                    });
                    let (now, wall) = (Instant::now(), SystemTime::now());
                    match outcome {
                        Ok((Some(body), _)) => call.handle_body(body, now, wall),
                        Ok((None, incoming)) => unread = incoming,
                        Err(e) => call.handle_failure(e, now, wall),
                    }
                }
                Next::Sleep(delay) => std::thread::sleep(delay),
                Next::Done(output) => return Ok((output, unread, call)),
                Next::Fail(error) => return Err(error),
            }
        }
    }

    /// One exchange up to the response head, within the attempt's limits (the total
    /// deadline as ureq's global limit of this request).
    fn exchange(
        &self,
        request: Request<Outgoing<'_>>,
        limits: &AttemptLimits,
    ) -> Result<Response<ureq::Body>, Error> {
        smallest_net::refuse_if_trace_would_log_the_key(
            request.headers(),
            &[
                smallest_net::UREQ_PROTO_DUMP,
                smallest_net::TUNGSTENITE_DUMP,
            ],
        )?;
        let agent = &self.inner.agent;
        let (parts, outgoing) = request.into_parts();
        let global = limits.deadline.map(|d| d.remaining(Instant::now()));
        let failure = match &outgoing {
            Outgoing::Reader(reader) => Some(reader.failure()),
            Outgoing::Bytes(_) => None,
        };
        // Only a call with a total limit pays for a per-request configuration.
        macro_rules! run {
            ($request:expr) => {{
                let request = $request;
                match global {
                    None => agent.run(request),
                    Some(left) => agent.run(
                        agent
                            .configure_request(request)
                            .timeout_global(Some(left))
                            .build(),
                    ),
                }
            }};
        }
        let result = match outgoing {
            Outgoing::Bytes(bytes)
                if bytes.is_empty() && matches!(parts.method, Method::GET | Method::HEAD) =>
            {
                run!(Request::from_parts(parts, ()))
            }
            Outgoing::Bytes(bytes) => run!(Request::from_parts(parts, bytes.as_ref())),
            Outgoing::Reader(mut reader) => {
                run!(Request::from_parts(
                    parts,
                    ureq::SendBody::from_reader(&mut reader)
                ))
            }
        };
        result.map_err(|e| match failure.and_then(|f| f.take()) {
            // Reading the source failed: say so, rather than what ureq made of it.
            Some(read) => read,
            None => classify(e, Stage::Exchange, limits),
        })
    }
}

impl Client {
    smallest_net::endpoint_methods!(async: [], await: []);
}

impl HttpSend for Client {
    /// One exchange over this client's pool, within its limits; the body is read whole
    /// up to the larger of the body limits.
    fn send_http(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let limits = AttemptLimits::of(&self.options);
        let bodies = self.options.body_limits();
        let (parts, incoming) = self
            .exchange(request.map(Outgoing::Bytes), &limits)?
            .into_parts();
        let body = read_body(
            incoming,
            bodies.json.max(bodies.audio).saturating_add(1),
            &limits,
        )?;
        Ok(Response::from_parts(parts, body))
    }
}

impl FromOptions for Client {
    fn from_options(config: Config, options: ClientOptions) -> Result<Client, Error> {
        let ws_tls = Arc::new(smallest_net::tls_config(options.extra_roots())?);
        let tls = TlsConfig::builder()
            .root_certs(root_certs(options.extra_roots())?)
            .build();
        let t = options.time_limits();
        let agent_config = Agent::config_builder()
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
            .timeout_recv_response(t.response_head)
            .timeout_per_read(t.idle)
            .timeout_per_write(t.idle)
            .build();
        let proxy = options.proxy().cloned().map(Arc::new);
        // TCP (to the API, or to the proxy), the tunnel through the proxy, then TLS.
        let connector = ()
            .chain(TcpConnector::default())
            .chain(Tunneling {
                proxy: proxy.clone(),
                connect: t.connect,
            })
            .chain(RustlsConnector::default());
        let resolver = Literal {
            names: DefaultResolver::default(),
            proxy,
        };
        let agent = Agent::with_parts(agent_config, connector, resolver);
        Ok(Client {
            inner: Arc::new(Inner {
                agent,
                config,
                ws_tls,
            }),
            options,
        })
    }
}

/// ureq resolves the host of every request, pooled connection or not, and with a time
/// limit does each lookup on a new thread. An IP literal needs no lookup: answer it
/// here, so a warm client spawns nothing; names keep ureq's resolver and its limit.
///
/// A connection through the proxy resolves the proxy's host instead: the proxy
/// resolves the API's name, which the client may not be able to.
#[derive(Debug)]
struct Literal {
    names: DefaultResolver,
    proxy: Option<Arc<Proxy>>,
}

impl Resolver for Literal {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let proxied;
        let uri = match Proxy::for_uri(self.proxy.as_deref(), uri) {
            None => uri,
            Some(proxy) => {
                let host = proxy.host();
                let authority = if host.contains(':') {
                    format!("[{host}]:{}", proxy.port())
                } else {
                    format!("{host}:{}", proxy.port())
                };
                proxied = http::Uri::builder()
                    .scheme("http")
                    .authority(authority)
                    .path_and_query("/")
                    .build()
                    .map_err(|_| ureq::Error::InvalidProxyUrl)?;
                &proxied
            }
        };
        let Some(addr) = literal_addr(uri) else {
            return self.names.resolve(uri, config, timeout);
        };
        let wanted = match config.ip_family() {
            IpFamily::Ipv4Only => addr.is_ipv4(),
            IpFamily::Ipv6Only => addr.is_ipv6(),
            _ => true,
        };
        if !wanted {
            return Err(ureq::Error::HostNotFound);
        }
        let mut addrs = self.empty();
        addrs.push(addr);
        Ok(addrs)
    }
}

/// Between TCP and TLS: for a connection the proxy applies to (TCP then reached the
/// proxy, see [`Literal`]), the `CONNECT` exchange that turns it into a tunnel to the
/// API.
#[derive(Debug)]
struct Tunneling {
    proxy: Option<Arc<Proxy>>,
    connect: Option<std::time::Duration>,
}

impl<In: Transport> Connector<In> for Tunneling {
    type Out = In;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<In>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        let Some(proxy) = Proxy::for_uri(self.proxy.as_deref(), details.uri) else {
            return Ok(Some(transport));
        };
        let target = smallest_core::proxy::Target::of(details.uri)
            .map_err(|e| ureq::Error::Other(Box::new(e)))?;
        let (host, port) = (target.host.as_str(), target.port);
        let mut io = TransportAdapter::new(transport, details.current_time.clone());
        io.set_timeout(details.timeout);
        let connect = self.connect;
        smallest_net::open_tunnel(&mut io, proxy.tunnel(host, port), |e| match connect {
            Some(limit)
                if e.kind() == std::io::ErrorKind::TimedOut || smallest_net::is_would_block(&e) =>
            {
                Error::Timeout {
                    phase: TimeoutPhase::Connect,
                    limit,
                }
            }
            _ => Error::transport(false, e),
        })
        .map_err(|e| ureq::Error::Other(Box::new(e)))?;
        Ok(Some(io.into_inner()))
    }
}

fn literal_addr(uri: &http::Uri) -> Option<SocketAddr> {
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = authority.port_u16().or(match uri.scheme_str()? {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some(SocketAddr::new(ip, port))
}

/// The roots to trust, as `smallest_net::tls_config` trusts them: the Mozilla roots
/// (`webpki-roots`) as full certificates (ureq's `RootCerts::Specific` takes
/// certificates, not trust anchors), the platform's (`native-roots`), then each extra
/// root. `tls_config` checks them first (ureq would silently skip an unusable one, and
/// it reports having no root at all).
fn root_certs(extra: &[Vec<u8>]) -> Result<RootCerts, Error> {
    smallest_net::tls_config(extra)?;
    #[cfg(all(feature = "webpki-roots", not(feature = "native-roots")))]
    if extra.is_empty() {
        return Ok(RootCerts::WebPki);
    }
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    #[cfg(feature = "webpki-roots")]
    certs.extend(
        webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| Certificate::from_der(c.as_ref())),
    );
    #[cfg(feature = "native-roots")]
    certs.extend(
        // As `tls_config`: a platform without roots is fine when others are trusted.
        smallest_net::native_roots()
            .unwrap_or_default()
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned()),
    );
    certs.extend(
        extra
            .iter()
            .map(|der| Certificate::from_der(der).to_owned()),
    );
    Ok(RootCerts::from(certs))
}

/// Reads at most `max` bytes of a body (the machine judges whether that was too much).
fn read_body(body: ureq::Body, max: u64, limits: &AttemptLimits) -> Result<Bytes, Error> {
    // Reserve what the body announces, up to 1 MiB: a lying length must not allocate.
    let reserve = body.content_length().unwrap_or(0).min(max).min(1 << 20);
    let mut out = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    body.into_reader()
        .take(max)
        .read_to_end(&mut out)
        .map_err(|e| classify(ureq::Error::from(e), Stage::Body, limits))?;
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
fn classify(e: ureq::Error, stage: Stage, limits: &AttemptLimits) -> Error {
    use ureq::Error as U;
    // The tunnel's own errors (see `Tunneling`) pass through as they are.
    let e = match e {
        U::Other(inner) => match inner.downcast::<Error>() {
            Ok(ours) => return *ours,
            Err(inner) => U::Other(inner),
        },
        e => e,
    };
    if let U::Timeout(which) = &e {
        use ureq::Timeout as T;
        let phase = match which {
            T::Resolve | T::Connect => TimeoutPhase::Connect,
            T::RecvResponse => TimeoutPhase::ResponseHead,
            T::PerRead | T::PerWrite => TimeoutPhase::Idle,
            _ => TimeoutPhase::Total,
        };
        return limits.timeout(phase);
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
            U::Io(io) => !smallest_net::never_sent(io),
            _ => true,
        };
    Error::transport(request_sent, e)
}
