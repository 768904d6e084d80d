//! A faithful local emulator of the Smallest AI Waves HTTP API, served on loopback.
//!
//! It is a real server (hyper on tokio; HTTP/1.1 and HTTP/2; optional TLS with a throwaway CA) that
//! behaves like the Waves API as the project's API notes describe it — the same routes, validation,
//! error bodies, status codes, headers and per-key TTS concurrency rule — so SDKs, CLIs and
//! applications can be tested offline. Its audio is real and deterministic: text-to-speech renders
//! a signal that *encodes* the text (see [`speech`]), and speech-to-text decodes it back, so a
//! TTS → STT round trip returns the original text.
//!
//! # Example
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let emulator = smallest_emulator::Emulator::builder()
//!     .key("sk_test")
//!     .spawn()?;
//! assert!(emulator.base_url().starts_with("http://127.0.0.1:"));
//!
//! // Any HTTP client works; here, a bare HTTP/1.1 exchange.
//! let mut tcp = std::net::TcpStream::connect(emulator.addr())?;
//! tcp.write_all(b"GET /waves/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
//! let mut reply = String::new();
//! tcp.read_to_string(&mut reply)?;
//! assert!(reply.starts_with("HTTP/1.1 200 OK"));
//! assert!(reply.contains(r#""status":"ok""#));
//!
//! assert_eq!(emulator.requests()[0].path, "/waves/v1/health");
//! emulator.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Routes
//!
//! | Method and path | Behaviour |
//! |---|---|
//! | `GET /waves/v1/health` | `200 {"status":"ok",…}`, no auth |
//! | `POST /waves/v1/tts` | synthesis in `pcm` / `wav` / `ulaw` / `alaw` / `mp3`, zod-style `400`s, `429` over the key's concurrency |
//! | `POST /waves/v1/stt/` | Pulse and Pulse Pro transcription of uploads or fixture URLs, `413` over the upload limit |
//! | `POST /waves/v1/pulse/get_text` | the legacy transcription route and its error shape |
//! | `GET /waves/v1/lightning-v3.1/get_voices` | the seed voice catalog |
//! | `/waves/v1/lightning-v2/*`, `/waves/v1/lightning-large*`, `/waves/v1/prof-voice-cloning/*` | `410 MODEL_DEPRECATED` |
//! | anything else under `/waves/` | `404` (`405` for a known path with the wrong method) |
//! | `GET /_emulator/speech.wav?text=…[&sample_rate=…][&speed=…]` | a WAV of emulator speech (text ≤ 1 KiB, rate 8–48 kHz, default 16 kHz), no auth; also usable as an STT URL |
//! | `GET <path>` of a fixture registered by path | the fixture's bytes, no auth |
//!
//! Every route but the health probe and the `/_emulator` helpers requires
//! `Authorization: Bearer <key>`: without the header the answer is
//! `401 {"message":"Unauthorized: No tokens provided"}`, with an unknown key
//! `401 {"error":"unauthorized"}`. When no key was configured with [`EmulatorBuilder::key`], any
//! non-empty bearer token is accepted. Every response carries an `x-request-id`.
//!
//! Not emulated (yet): the SSE and WebSocket transports, voice cloning, pronunciation dictionaries,
//! webhook delivery (Pulse Pro with `webhook_url` answers `{"status":"processing",…}` and stops).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

mod audio;
mod auth;
mod body;
mod catalog;
mod errors;
mod routes;
mod server;
pub mod speech;
mod state;
mod tls;

use state::{Settings, State};

/// The audio URL of the vendor's own STT example. It is pre-registered as a fixture: in URL mode
/// it "contains" emulator speech (16 kHz WAV) saying [`SAMPLE_AUDIO_TEXT`].
pub const SAMPLE_AUDIO_URL: &str = "https://github.com/smallest-inc/cookbook/raw/main/speech-to-text/getting-started/samples/audio.wav";

/// What the emulator transcribes [`SAMPLE_AUDIO_URL`] as.
pub const SAMPLE_AUDIO_TEXT: &str =
    "This is a sample audio file for testing speech to text transcription with the Pulse API.";

/// Default upload limit of the STT routes: 250 MB (250 × 1024 × 1024 bytes).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 250 * 1024 * 1024;

/// Entry point: `Emulator::builder()…spawn()` (or `.start().await`).
#[derive(Debug, Clone, Copy)]
pub struct Emulator;

impl Emulator {
    /// A builder with every option at its default.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Options of an emulator. Every option has a default; the `Debug` output never shows keys.
#[derive(Clone)]
pub struct EmulatorBuilder {
    keys: Vec<String>,
    forbidden_keys: Vec<String>,
    tts_concurrency: usize,
    tts_latency: Duration,
    max_upload_bytes: u64,
    port: u16,
    tls: bool,
    fixtures: Vec<(String, Bytes)>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            forbidden_keys: Vec::new(),
            tts_concurrency: 1,
            tts_latency: Duration::ZERO,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            port: 0,
            tls: false,
            fixtures: Vec::new(),
        }
    }
}

impl std::fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fixtures: Vec<(&str, usize)> = self
            .fixtures
            .iter()
            .map(|(url, bytes)| (url.as_str(), bytes.len()))
            .collect();
        f.debug_struct("EmulatorBuilder")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field(
                "forbidden_keys",
                &format_args!("<{} redacted>", self.forbidden_keys.len()),
            )
            .field("tts_concurrency", &self.tts_concurrency)
            .field("tts_latency", &self.tts_latency)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("fixtures", &fixtures)
            .finish()
    }
}

impl EmulatorBuilder {
    /// Accepts `key` as a valid API key (repeatable). When no key is added at all, **any** non-empty
    /// bearer token is accepted.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Accepts `key` as a valid key that lacks access to TTS and STT: those routes answer `403`.
    pub fn forbidden_key(mut self, key: impl Into<String>) -> Self {
        self.forbidden_keys.push(key.into());
        self
    }

    /// In-flight TTS requests allowed per key (default 1, the documented account limit); one more
    /// gets `429`. Values below 1 are treated as 1.
    pub fn tts_concurrency(mut self, n: usize) -> Self {
        self.tts_concurrency = n.max(1);
        self
    }

    /// Processing delay added to every valid TTS request while it holds its concurrency slot
    /// (default none), so tests can provoke `429`.
    pub fn tts_latency(mut self, d: Duration) -> Self {
        self.tts_latency = d;
        self
    }

    /// Largest STT upload (default [`DEFAULT_MAX_UPLOAD_BYTES`]). Larger uploads get `413` on
    /// `/waves/v1/stt/` and `400 "Audio data too large"` on the legacy route.
    pub fn max_upload_bytes(mut self, n: u64) -> Self {
        self.max_upload_bytes = n;
        self
    }

    /// Port on 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serves HTTPS with a certificate for `localhost` and `127.0.0.1`, signed by a CA made for this
    /// emulator (see [`RunningEmulator::ca_certificate_der`]). HTTP/1.1 and HTTP/2 via ALPN.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Makes `bytes` the audio at `url` for STT URL mode (any host; the network is never used).
    /// A `url` that is a path (starting with `/`) is also served by the emulator itself, without
    /// auth, at `{base_url}{path}`.
    pub fn fixture(mut self, url: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.fixtures.push((url.into(), bytes.into()));
        self
    }

    fn into_parts(self, addr: SocketAddr) -> State {
        let mut fixtures: HashMap<String, Bytes> = HashMap::new();
        let sample = speech::synthesize_pcm(SAMPLE_AUDIO_TEXT, 16_000, 1.0);
        fixtures.insert(
            SAMPLE_AUDIO_URL.to_owned(),
            Bytes::from(audio::wav_file(16_000, &sample)),
        );
        fixtures.extend(self.fixtures);
        let settings = Settings {
            keys: self.keys.into_iter().collect::<HashSet<_>>(),
            forbidden_keys: self.forbidden_keys.into_iter().collect::<HashSet<_>>(),
            tts_concurrency: self.tts_concurrency,
            tts_latency: self.tts_latency,
            max_upload_bytes: self.max_upload_bytes,
        };
        State::new(settings, fixtures, addr)
    }

    /// Starts the emulator on the caller's tokio runtime.
    pub async fn start(self) -> io::Result<RunningEmulator> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).await?;
        let addr = listener.local_addr()?;
        let material = if self.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let state = Arc::new(self.into_parts(addr));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let acceptor = material.as_ref().map(|m| m.acceptor.clone());
        tokio::spawn(server::serve(
            listener,
            acceptor,
            Arc::clone(&state),
            shutdown_rx,
            stopped_tx,
        ));
        Ok(RunningEmulator::new(
            addr,
            material,
            state,
            shutdown_tx,
            stopped_rx,
            None,
        ))
    }

    /// Starts the emulator on a thread of its own, with its own tokio runtime. Works from plain
    /// `#[test]` functions and from inside any async runtime alike.
    pub fn spawn(self) -> io::Result<RunningEmulator> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, self.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let material = if self.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let state = Arc::new(self.into_parts(addr));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let acceptor = material.as_ref().map(|m| m.acceptor.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("smallest-emulator".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("smallest-emulator-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let _ = ready_tx.send(Ok(()));
                            server::serve(
                                listener,
                                acceptor,
                                thread_state,
                                shutdown_rx,
                                stopped_tx,
                            )
                            .await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::other(
                    "the emulator thread exited during start-up",
                ));
            }
        }
        Ok(RunningEmulator::new(
            addr,
            material,
            state,
            shutdown_tx,
            stopped_rx,
            Some(thread),
        ))
    }
}

/// A running emulator. Dropping it shuts the server down.
pub struct RunningEmulator {
    addr: SocketAddr,
    ca_der: Option<Vec<u8>>,
    ca_pem: Option<String>,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("base_url", &self.base_url())
            .field("tls", &self.ca_der.is_some())
            .field("own_thread", &self.thread.is_some())
            .finish()
    }
}

impl RunningEmulator {
    fn new(
        addr: SocketAddr,
        material: Option<tls::TlsMaterial>,
        state: Arc<State>,
        shutdown: watch::Sender<bool>,
        stopped: watch::Receiver<bool>,
        thread: Option<std::thread::JoinHandle<()>>,
    ) -> Self {
        let (ca_der, ca_pem) = match material {
            Some(m) => (Some(m.ca_der), Some(m.ca_pem)),
            None => (None, None),
        };
        Self {
            addr,
            ca_der,
            ca_pem,
            state,
            shutdown,
            stopped,
            thread,
        }
    }

    /// `http://127.0.0.1:PORT` or, with TLS, `https://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_der.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The socket address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// With TLS: the DER of the CA certificate that signed the server's certificate, for clients to
    /// trust.
    pub fn ca_certificate_der(&self) -> Option<Vec<u8>> {
        self.ca_der.clone()
    }

    /// With TLS: the same CA certificate, PEM-encoded.
    pub fn ca_certificate_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Every request seen so far, oldest first (the most recent 10 000). `Authorization` values
    /// are scrubbed to `Bearer <redacted>`: keys are never stored.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Stops accepting connections and lets open ones finish (up to about two seconds). On its own
    /// thread ([`EmulatorBuilder::spawn`]) this waits until the server has stopped; on the caller's
    /// runtime ([`EmulatorBuilder::start`]) it only signals — await
    /// [`RunningEmulator::shutdown_gracefully`] to wait.
    pub fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops the server and waits until it has stopped.
    pub async fn shutdown_gracefully(mut self) {
        let _ = self.shutdown.send(true);
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
        if let Some(thread) = self.thread.take() {
            // The server has stopped; the thread only has its runtime left to drop.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Serves until Ctrl-C, then stops gracefully (for `smallest emulator`-style commands).
    pub async fn serve_until_ctrl_c(self) -> io::Result<()> {
        let mut stopped = self.stopped.clone();
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                self.shutdown_gracefully().await;
                signal
            }
            _ = stopped.wait_for(|s| *s) => Ok(()),
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        // Signal only: blocking here could stall the runtime a drop happens on.
        let _ = self.shutdown.send(true);
    }
}

/// One request the emulator received (see [`RunningEmulator::requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/waves/v1/tts`.
    pub path: String,
    /// The raw query string, if any (values of `token`, `api_key` and `key` scrubbed).
    pub query: Option<String>,
    /// Every header, names lowercased; `Authorization` reads `Bearer <redacted>`.
    pub headers: Vec<(String, String)>,
    /// Bytes of the body the emulator read; for a body it refused unread, the declared
    /// `Content-Length` (0 when there was none).
    pub body_len: usize,
    /// The response status (0 while the request is still being handled).
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
