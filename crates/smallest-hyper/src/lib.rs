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
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;

pub use smallest_core::{
    self as core, ApiKey, Audio, AudioSource, Config, Endpoint, Error, HealthStatus, Language,
    LegacyTranscribeRequest, OutputFormat, SttLanguage, SttModel, TimeoutPhase, TranscribeRequest,
    Transcription, TtsModel, TtsRequest,
};

type Connector = HttpsConnector<HttpConnector>;

/// An async Waves API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HyperClient<Connector, Full<Bytes>>,
    config: Config,
    timeouts: Timeouts,
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
    extra_roots: Vec<CertificateDer<'static>>,
    timeouts: Timeouts,
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
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Runs any operation the core describes: builds the request, sends it, reads the
    /// whole body and parses the answer.
    pub async fn send<E: Endpoint>(&self, endpoint: &E) -> Result<E::Output, Error> {
        let request = smallest_core::prepare(endpoint, &self.inner.config)?;
        let response = self.execute(request).await?;
        endpoint.from_http_response(response)
    }

    /// `POST /waves/v1/tts`: synthesizes speech in one piece.
    pub async fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.send(request).await
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

    /// `GET /waves/v1/health`.
    pub async fn health(&self) -> Result<HealthStatus, Error> {
        self.send(&smallest_core::Health).await
    }

    /// Sends a prepared request and reads the whole response, within the time limits.
    pub async fn execute(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let timeouts = self.inner.timeouts;
        let exchange = async {
            let pending = self.inner.http.request(request.map(Full::new));
            let response = with_limit(timeouts.response, TimeoutPhase::ResponseHead, pending)
                .await?
                .map_err(|e| classify(e, timeouts.connect))?;
            let (parts, mut body) = response.into_parts();
            let mut collected = BytesMut::new();
            loop {
                let frame = with_limit(timeouts.idle, TimeoutPhase::Idle, body.frame()).await?;
                match frame {
                    None => break,
                    Some(Err(e)) => return Err(Error::transport(true, e)),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            collected.extend_from_slice(&data);
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

    /// Builds the client. Needs no runtime; the first request does.
    pub fn build(self) -> Result<Client, Error> {
        let tls = tls_config(&self.extra_roots)?;
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
            }),
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
