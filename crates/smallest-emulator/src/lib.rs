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
//! | `POST /waves/v1/tts/live` | the same synthesis as Server-Sent Events: `event: audio` frames of [`EmulatorBuilder::sse_chunk_bytes`] raw bytes (base64), then `data: {"status": "200", "done": true}`; optional real-time pacing ([`EmulatorBuilder::realtime_factor`]) |
//! | `GET /waves/v1/tts/live` (WebSocket upgrade) | streaming synthesis: JSON requests buffered with `continue`/`flush`, base64 PCM `chunk` frames, `word_timestamp` frames, `complete`; continuation contexts (`context_id`, below); `?timeout=N` idle timeout; shares the key's TTS concurrency (5 sockets per unit). See [`EmulatorBuilder::ws_complete_backoff`], [`EmulatorBuilder::ws_close_after_complete`], [`EmulatorBuilder::ws_echo_context_id`] |
//! | `GET /waves/v1/stt/live`, `GET /waves/v1/pulse/get_text` (WebSocket upgrades) | live transcription of binary audio frames (`linear16`, `linear32`, `alaw`, `mulaw`): interims, finals at utterance ends / silence / `finalize`, `close_stream` → `is_last` and close `1000`, VAD events; `400` before the upgrade for a bad query (`pulse-pro` included); over [`EmulatorBuilder::stt_ws_limit`] → close `1008` |
//! | `POST /waves/v1/stt/` | Pulse and Pulse Pro transcription of uploads or fixture URLs, `413` over the upload limit |
//! | `POST /waves/v1/pulse/get_text` | the legacy transcription route and its error shape |
//! | `GET /waves/v1/lightning-v3.1/get_voices` | the seed voices and the caller's clones (any other model: `400`) |
//! | `GET /waves/v1/voice/get-all-models` | the voice catalog, with previews served by the emulator |
//! | `POST`, `GET /waves/v1/voice-cloning` | instant clones from a `multipart/form-data` upload, per key (limit: [`EmulatorBuilder::clone_limit`]); a clone id is a TTS `voice_id` of its key |
//! | `POST /waves/v1/voice-cloning/delete` | `401`: deleting needs a console session, not an API key |
//! | `GET`, `POST`, `PUT`, `DELETE /waves/v1/pronunciation-dicts` | per-key dictionaries; TTS `pronunciation_dicts` respells whole words before synthesis |
//! | `/waves/v1/lightning-v2/*`, `/waves/v1/lightning-large*`, `/waves/v1/prof-voice-cloning/*` | `410 MODEL_DEPRECATED` |
//! | anything else under `/waves/` | `404` (`405` for a known path with the wrong method) |
//! | `GET /_emulator/speech.wav?text=…[&sample_rate=…][&speed=…]` | a WAV of emulator speech (text ≤ 1 KiB, rate 8–48 kHz, default 16 kHz), no auth; also usable as an STT URL |
//! | `GET <path>` of a fixture registered by path | the fixture's bytes, no auth |
//! | `GET`, `POST`, `DELETE /_emulator/faults` | fault injection control (below), no auth, loopback clients only |
//!
//! Every route but the health probe and the `/_emulator` helpers requires
//! `Authorization: Bearer <key>`: without the header the answer is
//! `401 {"message":"Unauthorized: No tokens provided"}`, with an unknown key
//! `401 {"error":"unauthorized"}`. When no key was configured with [`EmulatorBuilder::key`], any
//! non-empty bearer token is accepted. Every response carries an `x-request-id`.
//!
//! Not emulated (yet):
//! webhook delivery (Pulse Pro with `webhook_url` answers `{"status":"processing",…}` and stops).
//!
//! # Fault injection
//!
//! To test how clients cope with failures, [`FaultRule`]s make chosen requests fail: a [`Fault`]
//! (latency, an error status with or without `Retry-After`, a TCP reset before the head or in the
//! middle of the body, a stall, a trickling body, malformed JSON, a wrong content type, a huge
//! error body, an SSE stream without its `done` frame, a live session reset, closed or stalled
//! after N messages) applied to the requests whose path starts
//! with a prefix (optionally: with one method, after skipping the first `after`, at most `times`
//! times). Rules come from [`EmulatorBuilder::fault`], [`RunningEmulator::inject`], or the control
//! endpoint: `POST /_emulator/faults` with one rule or an array of them as JSON, `GET` to list them
//! with their `matched`/`applied` counters, `DELETE` to remove them all
//! ([`RunningEmulator::clear_faults`]). Each request's fault is recorded in
//! [`RecordedRequest::fault`].
//!
//! ```
//! use smallest_emulator::{Emulator, Fault, FaultRule};
//!
//! let emulator = Emulator::builder()
//!     // The first TTS request gets `503`, the next ones are served.
//!     .fault(FaultRule::new("/waves/v1/tts", Fault::status(503)).times(1))
//!     .spawn()?;
//! // The same, at run time (or `POST /_emulator/faults` with
//! // `{"path_prefix":"/waves/v1/stt","times":1,"fault":{"kind":"reset_before_head"}}`).
//! emulator.inject(FaultRule::new("/waves/v1/stt", Fault::ResetBeforeHead).times(1));
//! assert_eq!(emulator.faults().len(), 2);
//! emulator.clear_faults();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Live sessions fail with [`Fault::WsDrop`] (TCP reset after N handled client messages or M ms),
//! [`Fault::WsClose`] (a close frame with a chosen code after N messages) and [`Fault::WsStall`]
//! (silence after the upgrade). Such a rule only matches WebSocket upgrades, so
//! `FaultRule::new("/waves/v1/stt/live", Fault::WsDrop { after_messages: 20, after_ms: None })
//! .times(2)` drops the first two sessions mid-stream and serves the later ones normally.
//!
//! # TTS WebSocket continuations
//!
//! A message with a string `context_id` is a fragment of a continuation context (API.md §3.5.1):
//! the full TTS config, `text`, `context_id`, `continue` (default `false`) and optionally
//! `max_buffer_delay_ms` (integer 0–10000; the range is the emulator's choice). Fragments of one
//! context are joined verbatim; the buffer is released up to its last sentence boundary (`.`,
//! `!`, `?` followed by whitespace or at the end) as soon as there is one, entirely after
//! `max_buffer_delay_ms` without one, on `flush: true`, and what remains on `continue: false`
//! (which closes the context; a whitespace-only rest is not synthesised). Each release is
//! synthesised as a request: `chunk`s, `word_timestamp`s with ids and times restarting at 0, one
//! `complete`, a `request_id` of its own, and `"context_id"` on every frame (unless
//! [`EmulatorBuilder::ws_echo_context_id`] is off). So a context gives one `complete` per release,
//! none marked final, and the audio of its releases concatenated transcribes as the joined text.
//! Contexts on a socket are served one at a time in order of their first fragment; the next
//! starts once the current one is closed and released. `{"context_id":"<id>","cancel_request":true}`
//! (the emulator's choice of shape; the real one is unverified) stops a context at once — no
//! further frame of it, its TTS slot freed, later fragments with its id ignored — and is a no-op
//! for unknown or finished contexts. A whitespace-only `text` with `continue: true` and no
//! `context_id` is a keepalive: it only restarts the idle timer.

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
mod faults;
mod library;
mod multipart;
mod routes;
mod server;
pub mod speech;
mod state;
mod tls;
mod ws;

pub use faults::{Fault, FaultRule};
use state::{Settings, State};

/// The audio URL of the vendor's own STT example. It is pre-registered as a fixture: in URL mode
/// it "contains" emulator speech (16 kHz WAV) saying [`SAMPLE_AUDIO_TEXT`].
pub const SAMPLE_AUDIO_URL: &str = "https://github.com/smallest-inc/cookbook/raw/main/speech-to-text/getting-started/samples/audio.wav";

/// What the emulator transcribes [`SAMPLE_AUDIO_URL`] as.
pub const SAMPLE_AUDIO_TEXT: &str =
    "This is a sample audio file for testing speech to text transcription with the Pulse API.";

/// Default number of voice clones a key may create ([`EmulatorBuilder::clone_limit`]).
pub const DEFAULT_CLONE_LIMIT: usize = 10;

/// Default raw audio bytes per SSE `audio` event ([`EmulatorBuilder::sse_chunk_bytes`]).
pub const DEFAULT_SSE_CHUNK_BYTES: usize = 1024;

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
    clone_limit: usize,
    port: u16,
    tls: bool,
    fixtures: Vec<(String, Bytes)>,
    sse_chunk_bytes: usize,
    realtime_factor: f64,
    sse_stop_before_done: bool,
    text_repeat: usize,
    faults: Vec<FaultRule>,
    ws: ws::WsSettings,
    stt_rate: Option<(u32, Duration)>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            forbidden_keys: Vec::new(),
            tts_concurrency: 1,
            tts_latency: Duration::ZERO,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            clone_limit: DEFAULT_CLONE_LIMIT,
            port: 0,
            tls: false,
            fixtures: Vec::new(),
            sse_chunk_bytes: DEFAULT_SSE_CHUNK_BYTES,
            realtime_factor: 0.0,
            sse_stop_before_done: false,
            text_repeat: 1,
            faults: Vec::new(),
            ws: ws::WsSettings::default(),
            stt_rate: None,
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
            .field("clone_limit", &self.clone_limit)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("fixtures", &fixtures)
            .field("sse_chunk_bytes", &self.sse_chunk_bytes)
            .field("realtime_factor", &self.realtime_factor)
            .field("sse_stop_before_done", &self.sse_stop_before_done)
            .field("text_repeat", &self.text_repeat)
            .field("faults", &self.faults)
            .field("stt_rate", &self.stt_rate)
            .field("ws", &self.ws)
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

    /// Voice clones each key may create over the emulator's life (default
    /// [`DEFAULT_CLONE_LIMIT`]); one more gets `400 {"error":"clone limit exceeded, consider
    /// upgrading"}`. Clones cannot be deleted with an API key, so the count never goes down.
    pub fn clone_limit(mut self, n: usize) -> Self {
        self.clone_limit = n;
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

    /// Raw audio bytes per SSE `audio` event (default [`DEFAULT_SSE_CHUNK_BYTES`]; the last event
    /// may be shorter). Any size is allowed (0 is treated as 1): with an odd size, 16-bit PCM
    /// samples straddle two events, as clients must expect.
    pub fn sse_chunk_bytes(mut self, n: usize) -> Self {
        self.sse_chunk_bytes = n.max(1);
        self
    }

    /// Pacing of SSE audio events: `0.0` (the default) sends them as fast as the client reads;
    /// `1.0` sends each event once the audio it ends with would have been played (real time);
    /// `2.0` twice as fast, and so on. Negative or non-finite values mean `0.0`.
    pub fn realtime_factor(mut self, factor: f64) -> Self {
        self.realtime_factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            0.0
        };
        self
    }

    /// Ends every SSE stream cleanly but without its final `data: {"status": "200", "done": true}`
    /// frame (default `false`), to test clients' handling of truncated streams. For single
    /// requests, see [`Fault::SseCutBeforeDone`].
    pub fn sse_stop_before_done(mut self, on: bool) -> Self {
        self.sse_stop_before_done = on;
        self
    }

    /// Synthesizes the text of every TTS request (sync and SSE) `n` times back to back (default 1;
    /// 0 is treated as 1; the repeated text is capped at 256 MiB), to get large responses from
    /// short requests: each byte of text is 50 ms of audio, so at 44.1 kHz PCM one byte gives
    /// 4 410 bytes and `"a"` repeated 250 000 times about 1.03 GiB. The audio is rendered as it is
    /// sent, never buffered whole. An STT round trip returns the repeated text.
    pub fn text_repeat(mut self, n: usize) -> Self {
        self.text_repeat = n.max(1);
        self
    }

    /// How long the TTS WebSocket waits after a request's last audio before `complete` when the
    /// request did not say (`complete_backoff_ms`). Default: no wait, so tests run fast; the real
    /// service waits 4 s (its documented `complete_backoff_ms` default).
    pub fn ws_complete_backoff(mut self, wait: Duration) -> Self {
        self.ws.complete_backoff = wait;
        self
    }

    /// Closes the TTS WebSocket (`1000`) after each `complete` (default `false`: the socket takes
    /// further requests, as integrations use it). The service's own spec says it closes; its
    /// integration guides reuse the socket (API.md §11 #11).
    pub fn ws_close_after_complete(mut self, close: bool) -> Self {
        self.ws.close_after_complete = close;
        self
    }

    /// Whether every frame of a TTS WebSocket continuation context (`chunk`, `word_timestamp`,
    /// `complete`, and error frames about it) carries `"context_id": "<id>"` (default `true`).
    /// `false` emulates a server that does not echo it (API.md §3.5.1 leaves it open), so
    /// clients can be tested correlating frames by the context they have open.
    pub fn ws_echo_context_id(mut self, echo: bool) -> Self {
        self.ws.echo_context_id = echo;
        self
    }

    /// Live STT sessions one key may have open at once (default 100, the Standard plan's limit).
    /// The session over the limit is accepted, then closed with `1008` and a reason.
    pub fn stt_ws_limit(mut self, n: usize) -> Self {
        self.ws.stt_limit = n;
        self
    }

    /// At most `per_minute` STT transcriptions (`POST /waves/v1/stt`) per model and per key in
    /// any 60 s, as the API's plans limit them (the Standard plan: 25, API.md §8.4). A request
    /// over the rate is answered `429` with `{"error", "request_id"}` and `Retry-After`, and
    /// does not count. Off by default.
    pub fn stt_rpm(self, per_minute: u32) -> Self {
        self.stt_rate(per_minute, Duration::from_secs(60))
    }

    /// At most `limit` STT transcriptions per model and per key in any `window` (a short
    /// window makes a rate test take seconds instead of minutes). See
    /// [`stt_rpm`](Self::stt_rpm).
    pub fn stt_rate(mut self, limit: u32, window: Duration) -> Self {
        self.stt_rate = Some((limit.max(1), window.max(Duration::from_millis(1))));
        self
    }

    /// Adds a fault rule in place from the start (repeatable; see [`FaultRule`] and the crate
    /// documentation).
    pub fn fault(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
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
            clone_limit: self.clone_limit,
            tls: self.tls,
            sse_chunk_bytes: self.sse_chunk_bytes,
            realtime_factor: self.realtime_factor,
            sse_stop_before_done: self.sse_stop_before_done,
            text_repeat: self.text_repeat,
            faults: self.faults,
            ws: self.ws,
            stt_rate: self.stt_rate,
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

    /// Adds a fault rule, effective for the next request (after the rules already in place).
    pub fn inject(&self, rule: FaultRule) {
        self.state.faults.push(rule);
    }

    /// Removes every fault rule (requests already being faulted carry on).
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// The fault rules in place, in the order they are tried.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.state.faults.rules()
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
    /// The `x-request-id` the emulator answered with (correlates a client's view with
    /// this log; the log's order is the order requests arrived in).
    pub request_id: String,
    /// The injected fault applied to this request, if any ([`RunningEmulator::inject`]).
    pub fault: Option<Fault>,
    /// When the request's head arrived (what a rate limit counts).
    pub received: std::time::Instant,
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
