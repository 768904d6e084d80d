//! Live WebSocket sessions: Lightning TTS over `WSS /waves/v1/tts/live` and Pulse STT
//! over `WSS /waves/v1/stt/live`.
//!
//! This module only moves frames. Everything that is protocol (the upgrade request,
//! the JSON messages, the attribution of audio to requests, close codes, the idle
//! deadline, keepalive pings) lives in the sans-IO sessions of the core,
//! [`smallest_core::tts_live`] and [`smallest_core::stt_live`]; every message goes
//! through them.
//!
//! The public documentation (example, concurrency design, how a connection ends,
//! time limits) is on [`TtsLive`].

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::sink::Sink;
use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use rustls_pki_types::ServerName;
use smallest_core::stt_live::SttLiveSession;
use smallest_core::tts_live::TtsLiveSession;
use smallest_core::ws::LiveSession;
use smallest_core::ws::{CloseFrame, WsMessage, check_upgrade};
use smallest_core::{Error, TimeoutPhase};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;

pub use smallest_core::stt_live::{
    CloseOutcome, SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveRoute, Transcript,
};
pub use smallest_core::tts_live::{CloseReason, TtsLiveConfig, TtsLiveEvent};

use crate::{Client, TtsPermit, entropy, with_limit};

/// What is decoded when an upgrade answer or a server frame is not what RFC 6455 says.
const UPGRADE: &str = "WebSocket upgrade response";

/// The longest the receiver waits to send its answer to the server's close frame.
const CLOSE_REPLY_LIMIT: Duration = Duration::from_secs(2);

impl Client {
    /// Opens a live TTS connection (`WSS /waves/v1/tts/live`).
    ///
    /// `config` is validated first (nothing is sent when it is refused). **A live TTS
    /// connection occupies one of the account's TTS slots** (the client's
    /// [`TtsLimiter`](crate::TtsLimiter)) for its whole lifetime: this call waits for
    /// a free slot, and the slot is freed when the receiver has seen the connection
    /// close, or when both halves are dropped. With the default concurrency of 1, any
    /// other TTS call of the client (`synthesize`, another `tts_live`) waits meanwhile.
    /// A refused upgrade is the server's error ([`Error::Api`]: 401 for a
    /// bad key, 400 for a bad parameter …).
    pub async fn tts_live(&self, config: TtsLiveConfig) -> Result<TtsLive, Error> {
        config.validate()?;
        let permit = self.inner.tts_slots.acquire().await;
        let key = websocket_key();
        let request = config.handshake(&self.inner.config, key)?;
        let socket = self.connect_websocket(request, key).await?;
        let session = TtsLiveSession::new(config, Instant::now())?;
        let (conn, driver) = Conn::open(socket, session, Some(permit));
        Ok(TtsLive {
            sender: TtsLiveSender { conn },
            receiver: TtsLiveReceiver {
                inner: Receiver::new(driver),
            },
        })
    }

    /// Opens a live STT connection (`WSS /waves/v1/stt/live?…`, or the legacy
    /// `/waves/v1/pulse/get_text` for [`SttLiveConfig::legacy`]).
    ///
    /// `config` is validated first (Pulse Pro, which has no streaming transport, is
    /// refused locally). A refused upgrade is the server's error ([`Error::Api`]).
    pub async fn stt_live(&self, config: SttLiveConfig) -> Result<SttLive, Error> {
        config.validate()?;
        let key = websocket_key();
        let request = config.handshake(&self.inner.config, key)?;
        let socket = self.connect_websocket(request, key).await?;
        let session = SttLiveSession::new(&config, Instant::now())?;
        let (conn, driver) = Conn::open(socket, session, None);
        Ok(SttLive {
            sender: SttLiveSender { conn },
            receiver: SttLiveReceiver {
                inner: Receiver::new(driver),
            },
        })
    }

    /// TCP (and TLS for `wss`) within the connect limit, then the upgrade within the
    /// response limit.
    async fn connect_websocket(
        &self,
        request: http::Request<()>,
        key: [u8; 16],
    ) -> Result<Ws, Error> {
        crate::refuse_if_trace_would_log_the_key(request.headers())?;
        let timeouts = self.inner.timeouts;
        let uri = request.uri();
        let tls = uri.scheme_str() == Some("wss");
        let host = uri
            .host()
            .ok_or_else(|| Error::Config(format!("the WebSocket URI {uri} has no host").into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let connect = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| Error::transport(false, e))?;
            // Small frames (text pieces, audio frames) must not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            if !tls {
                return Ok(Socket::Plain(tcp));
            }
            let name = ServerName::try_from(host.clone()).map_err(|e| {
                Error::Config(format!("{host:?} is not a valid TLS server name: {e}").into())
            })?;
            let stream = TlsConnector::from(self.inner.ws_tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| Error::transport(false, e))?;
            Ok::<_, Error>(Socket::Tls(Box::new(stream)))
        };
        let socket = with_limit(timeouts.connect, TimeoutPhase::Connect, connect).await??;
        let upgrade = tokio_tungstenite::client_async(request, socket);
        let (ws, _response) = with_limit(timeouts.response, TimeoutPhase::ResponseHead, upgrade)
            .await?
            .map_err(|e| upgrade_error(e, key))?;
        Ok(ws)
    }
}

/// 16 fresh bytes for `Sec-WebSocket-Key` (a nonce, not a secret).
fn websocket_key() -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&entropy().to_le_bytes());
    key[8..].copy_from_slice(&entropy().to_le_bytes());
    key
}

/// A refused or broken upgrade as the SDK's error: a non-101 answer is parsed by the
/// core like any HTTP error (401 → `is_auth`, 400 → the server's message …).
fn upgrade_error(e: WsError, key: [u8; 16]) -> Error {
    match e {
        WsError::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            match check_upgrade(response.status(), response.headers(), body, key) {
                Err(e) => e,
                Ok(()) => Error::Decode {
                    what: UPGRADE,
                    message: "the server accepted the upgrade, but the handshake failed".into(),
                },
            }
        }
        WsError::Protocol(e) => Error::Decode {
            what: UPGRADE,
            message: e.to_string(),
        },
        other => Error::transport(true, other),
    }
}

/// The connection under the WebSocket framing: plain TCP (loopback `ws://`) or TLS.
enum Socket {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Plain(s) => s.is_write_vectored(),
            Socket::Tls(s) => s.is_write_vectored(),
        }
    }
}

type Ws = WebSocketStream<Socket>;
type WriteHalf = SplitSink<Ws, Message>;

/// A core live session this transport can drive on its own: the core's
/// [`LiveSession`] verbs, movable between threads.
trait Session: LiveSession<Event: Send + 'static> + Send + 'static {}

impl<S: LiveSession<Event: Send + 'static> + Send + 'static> Session for S {}

/// A core frame as a tungstenite message.
fn to_tungstenite(message: WsMessage) -> Message {
    match message {
        WsMessage::Text(text) => Message::Text(text.into()),
        WsMessage::Binary(data) => Message::Binary(data),
        WsMessage::Ping(data) => Message::Ping(data),
        WsMessage::Pong(data) => Message::Pong(data),
        WsMessage::Close(frame) => Message::Close(frame.map(|f| WsCloseFrame {
            code: f.code.into(),
            reason: f.reason.into(),
        })),
    }
}

/// A tungstenite message as a core frame (`None` for a raw frame, which reading never
/// yields).
fn from_tungstenite(message: Message) -> Option<WsMessage> {
    Some(match message {
        Message::Text(text) => WsMessage::Text(text.as_str().to_owned()),
        Message::Binary(data) => WsMessage::Binary(data),
        Message::Ping(data) => WsMessage::Ping(data),
        Message::Pong(data) => WsMessage::Pong(data),
        Message::Close(frame) => {
            WsMessage::Close(frame.map(|f| CloseFrame::new(u16::from(f.code), f.reason.as_str())))
        }
        Message::Frame(_) => return None,
    })
}

/// Whether a read error is the connection ending without a close frame (reported as
/// the session's `Closed` event without a code, not as an error).
fn is_dropped(e: &WsError) -> bool {
    match e {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
        WsError::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

/// What both halves share.
struct Conn<S> {
    session: Mutex<S>,
    write: tokio::sync::Mutex<WriteHalf>,
    /// Tells the receiver to recompute its deadline (a new keepalive interval).
    wake: tokio::sync::Notify,
    /// The TTS slot, held until the session closes.
    permit: Mutex<Option<TtsPermit>>,
}

impl<S: Session> Conn<S> {
    fn open(ws: Ws, session: S, permit: Option<TtsPermit>) -> (Arc<Self>, Driver<S>) {
        let (write, read) = ws.split();
        let conn = Arc::new(Conn {
            session: Mutex::new(session),
            write: tokio::sync::Mutex::new(write),
            wake: tokio::sync::Notify::new(),
            permit: Mutex::new(permit),
        });
        let driver = Driver {
            conn: conn.clone(),
            read,
            ping_due: false,
            error: None,
        };
        (conn, driver)
    }

    /// Runs `f` on the session (never across an `.await`).
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.session.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A sender verb: update the session, then write what it queued.
    async fn act<R>(
        &self,
        f: impl FnOnce(&mut S, Instant) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let out = self.with(|s| f(s, Instant::now()))?;
        let mut write = self.write.lock().await;
        self.write_queued(&mut write).await?;
        Ok(out)
    }

    /// Writes every frame the session has queued, in order, then flushes. A frame is
    /// taken from the session only once the socket is ready for it, so cancelling
    /// this future never loses one.
    async fn write_queued(&self, write: &mut WriteHalf) -> Result<(), Error> {
        let mut wrote = false;
        loop {
            poll_fn(|cx| Pin::new(&mut *write).poll_ready(cx))
                .await
                .map_err(send_error)?;
            let Some(frame) = self.with(S::poll_outgoing) else {
                break;
            };
            Pin::new(&mut *write)
                .start_send(to_tungstenite(frame))
                .map_err(send_error)?;
            wrote = true;
        }
        if wrote {
            poll_fn(|cx| Pin::new(&mut *write).poll_flush(cx))
                .await
                .map_err(send_error)?;
        }
        Ok(())
    }

    fn release_permit(&self) {
        self.permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

fn send_error(e: WsError) -> Error {
    Error::transport(true, e)
}

/// The receiving side: reads, feeds the session, runs its timers.
struct Driver<S> {
    conn: Arc<Conn<S>>,
    read: SplitStream<Ws>,
    /// The session may have queued a keepalive ping.
    ping_due: bool,
    /// An error to hand out before the next event.
    error: Option<Error>,
}

impl<S: Session> Driver<S> {
    async fn next(&mut self) -> Option<Result<S::Event, Error>> {
        loop {
            if let Some(error) = self.error.take() {
                return Some(Err(error));
            }
            let (event, closed, deadline) = self
                .conn
                .with(|s| (s.poll_event(), s.is_closed(), s.poll_timeout()));
            if let Some(event) = event {
                return Some(Ok(event));
            }
            if closed {
                self.conn.release_permit();
                return None;
            }
            let conn = self.conn.clone();
            tokio::select! {
                biased;
                write = conn.write.lock(), if self.ping_due => {
                    self.ping_due = false;
                    let mut write = write;
                    if let Err(e) = conn.write_queued(&mut write).await {
                        self.fail(e);
                    }
                }
                message = self.read.next() => self.on_read(message).await,
                () = sleep_until(deadline) => {
                    conn.with(|s| s.handle_timeout(Instant::now()));
                    self.ping_due = true;
                }
                () = conn.wake.notified() => {}
            }
        }
    }

    async fn on_read(&mut self, message: Option<Result<Message, WsError>>) {
        match message {
            Some(Ok(message)) => {
                let Some(message) = from_tungstenite(message) else {
                    return;
                };
                let close = matches!(message, WsMessage::Close(_));
                if let Err(e) = self
                    .conn
                    .with(|s| s.handle_message(message, Instant::now()))
                {
                    self.error = Some(e);
                }
                if close {
                    // tungstenite queued the answer to the server's close: send it.
                    let conn = self.conn.clone();
                    let reply = async {
                        let mut write = conn.write.lock().await;
                        poll_fn(|cx| Pin::new(&mut *write).poll_flush(cx)).await
                    };
                    let _ = tokio::time::timeout(CLOSE_REPLY_LIMIT, reply).await;
                }
            }
            None => self.dropped(),
            Some(Err(e)) if is_dropped(&e) => self.dropped(),
            Some(Err(e)) => self.fail(Error::transport(true, e)),
        }
    }

    /// The connection ended without a close frame: the session's `Closed` event.
    fn dropped(&mut self) {
        let closed = self
            .conn
            .with(|s| s.handle_message(WsMessage::Close(None), Instant::now()));
        if let Err(e) = closed {
            self.error.get_or_insert(e);
        }
    }

    /// The connection failed: the error, then the session's `Closed` event.
    fn fail(&mut self, error: Error) {
        self.error = Some(error);
        self.dropped();
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

type Next<S> = (Driver<S>, Option<Result<<S as LiveSession>::Event, Error>>);

/// A receiver as a `Stream`: the driver's `next` runs as one stored future, so a
/// cancelled `recv` resumes where it stopped instead of losing a frame.
struct Receiver<S: Session> {
    driver: Option<Driver<S>>,
    pending: Option<Pin<Box<dyn Future<Output = Next<S>> + Send>>>,
}

impl<S: Session> Receiver<S> {
    fn new(driver: Driver<S>) -> Self {
        Receiver {
            driver: Some(driver),
            pending: None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<S::Event, Error>>> {
        if self.pending.is_none() {
            let Some(mut driver) = self.driver.take() else {
                return Poll::Ready(None);
            };
            self.pending = Some(Box::pin(async move {
                let item = driver.next().await;
                (driver, item)
            }));
        }
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let (driver, item) = std::task::ready!(pending.as_mut().poll(cx));
        self.pending = None;
        self.driver = Some(driver);
        Poll::Ready(item)
    }
}

macro_rules! receiver_impls {
    ($receiver:ident, $event:ty) => {
        impl $receiver {
            /// The next event, or `None` after the `Closed` event. Cancel-safe.
            pub async fn recv(&mut self) -> Option<Result<$event, Error>> {
                poll_fn(|cx| self.inner.poll_next(cx)).await
            }
        }

        impl futures_core::Stream for $receiver {
            type Item = Result<$event, Error>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.get_mut().inner.poll_next(cx)
            }
        }

        impl std::fmt::Debug for $receiver {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($receiver))
                    .finish_non_exhaustive()
            }
        }
    };
}

/// A live TTS connection, from [`Client::tts_live`].
///
/// [`split`](Self::split) it to write text from one task while another plays the
/// audio; or use it whole from one task (send, then [`recv`](Self::recv)): the
/// sender's calls write directly, so nothing needs the receiver to be polled first.
///
/// ```no_run
/// use smallest_hyper::{Client, TtsLiveConfig, TtsLiveEvent};
///
/// # async fn run() -> Result<(), smallest_hyper::Error> {
/// let client = Client::from_env()?;
/// let live = client.tts_live(TtsLiveConfig::new("magnus").sample_rate(24000)).await?;
/// let (sender, mut receiver) = live.split();
/// let writer = tokio::spawn(async move {
///     for piece in ["Hello, ", "world. ", "How are you?"] {
///         sender.send_text(piece).await?;
///     }
///     sender.finish().await?;
///     Ok::<_, smallest_hyper::Error>(sender)
/// });
/// let mut pcm = Vec::new();
/// while let Some(event) = receiver.recv().await {
///     match event? {
///         TtsLiveEvent::Audio { data, .. } => pcm.extend_from_slice(&data),
///         TtsLiveEvent::Complete { .. } => break,
///         _ => {}
///     }
/// }
/// writer.await.expect("writer task")?.close().await?;
/// # Ok(()) }
/// ```
///
/// # Concurrency design
///
/// A live connection splits into a **sender** (any number of tasks may share it: its
/// methods take `&self` and it is `Clone`) and a **receiver** (one task; a
/// [`Stream`](futures_core::Stream) and an `async fn recv`). No task is spawned: the
/// socket is split into its write half, shared behind an async mutex, and its read
/// half, owned by the receiver; the core session sits behind a short-lived
/// `std::sync::Mutex` that is never held across an `.await`.
///
/// - A sender call updates the session (which validates and queues the frames), then
///   takes the write half and writes everything the session has queued, in order. It
///   returns once the frames are handed to the socket, so a sender sees the
///   back-pressure of the connection and the error of the write it caused. Frames are
///   taken from the session only while the write half is held and only once the
///   socket is ready for them, so the order is the session's order, and cancelling a
///   sender call never loses a frame (an unsent frame goes out with the next call).
/// - The receiver reads frames, feeds them to the session and hands out the session's
///   events. It also sleeps until the session's `poll_timeout` (the idle deadline of
///   TTS, keepalive pings): **keepalive pings and the idle-timeout bookkeeping run
///   while the receiver is being polled**, which is what a program that listens for
///   audio or transcripts does anyway.
///
/// The alternative the design notes prefer — a sender that only pushes commands into
/// a channel the receiver drains — would make every send wait for the receiver to be
/// polled and hide write errors and back-pressure from the caller; writing from the
/// sender avoids both without a background task.
///
/// # How a connection ends
///
/// The receiver's last event is always the session's `Closed` event, after which it
/// yields `None`:
///
/// - a close frame from the server (1000 after `close_stream` or after the client's
///   `close`, 1008 over the STT session limit, the TTS idle timeout …) is answered
///   and becomes `Closed` with the core's typed reason ([`CloseReason`] for TTS,
///   [`CloseOutcome`] for STT);
/// - **a connection that ends without a close frame** (EOF, reset) is the
///   `Closed` event with no code ([`CloseReason::NoStatus`],
///   [`CloseOutcome::NoStatus`]), **not** an error;
/// - any other failure of the connection (a TLS or WebSocket protocol error) is one
///   `Err(Error::Transport { .. })` item, followed by that same `Closed` event.
///
/// A server message the session cannot decode is an `Err(Error::Decode { .. })`
/// item; the session stays usable and the receiver goes on.
///
/// Dropping both halves without [`close`](TtsLiveSender::close) drops the TCP
/// connection without a close frame.
///
/// # Time limits
///
/// The client's connect limit covers TCP and TLS, its response limit covers the
/// upgrade request and the server's answer. A live session has no idle or total
/// limit: it is quiet by design between messages (the TTS server closes an idle
/// connection itself, see [`TtsLiveConfig::timeout_secs`]).
#[derive(Debug)]
pub struct TtsLive {
    sender: TtsLiveSender,
    receiver: TtsLiveReceiver,
}

/// The writing half of a live TTS connection. Clones share the connection.
#[derive(Clone)]
pub struct TtsLiveSender {
    conn: Arc<Conn<TtsLiveSession>>,
}

/// The reading half of a live TTS connection: a `Stream` of [`TtsLiveEvent`]s that
/// ends after the `Closed` event.
pub struct TtsLiveReceiver {
    inner: Receiver<TtsLiveSession>,
}

receiver_impls!(TtsLiveReceiver, TtsLiveEvent);

impl TtsLive {
    /// The two halves, for two tasks.
    pub fn split(self) -> (TtsLiveSender, TtsLiveReceiver) {
        (self.sender, self.receiver)
    }

    /// The writing half.
    pub fn sender(&self) -> &TtsLiveSender {
        &self.sender
    }

    /// Sends one piece of text of the current request (opening one if none is being
    /// written); returns the request's index. See [`TtsLiveSender::send_text`].
    pub async fn send_text(&self, text: &str) -> Result<u64, Error> {
        self.sender.send_text(text).await
    }

    /// Forces synthesis of the text sent so far, keeping the request open.
    pub async fn flush(&self) -> Result<u64, Error> {
        self.sender.flush().await
    }

    /// Ends the request being written; its audio and `Complete` follow.
    pub async fn finish(&self) -> Result<u64, Error> {
        self.sender.finish().await
    }

    /// Sends `text` as a whole request (or as the last piece of the one being written).
    pub async fn speak(&self, text: &str) -> Result<u64, Error> {
        self.sender.speak(text).await
    }

    /// Starts closing the connection (close frame 1000).
    pub async fn close(&self) -> Result<(), Error> {
        self.sender.close().await
    }

    /// Turns keepalive pings on (`Some(interval)`) or off.
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.sender.set_keepalive(interval);
    }

    /// The next event, or `None` after the `Closed` event.
    pub async fn recv(&mut self) -> Option<Result<TtsLiveEvent, Error>> {
        self.receiver.recv().await
    }
}

impl TtsLiveSender {
    /// Sends one piece of text of the current request (`"continue": true`), opening a
    /// request if none is being written. Returns the request's index (0 for the first
    /// request of the connection), which the events of its audio carry. An empty piece
    /// sends nothing.
    pub async fn send_text(&self, text: &str) -> Result<u64, Error> {
        self.conn.act(|s, now| s.send_text(text, now)).await
    }

    /// Forces synthesis of the text sent so far, keeping the request open.
    pub async fn flush(&self) -> Result<u64, Error> {
        self.conn.act(|s, now| s.flush(now)).await
    }

    /// Ends the request being written (`"continue": false, "flush": true`): its audio
    /// and `Complete` follow.
    pub async fn finish(&self) -> Result<u64, Error> {
        self.conn.act(|s, now| s.finish_request(now)).await
    }

    /// Sends `text` as a whole request in one message, or as the last piece of the
    /// request being written.
    pub async fn speak(&self, text: &str) -> Result<u64, Error> {
        self.conn.act(|s, now| s.speak(text, now)).await
    }

    /// Starts closing the connection: sends a close frame (1000). The receiver then
    /// ends with `Closed` ([`CloseReason::Normal`]) once the server answers.
    pub async fn close(&self) -> Result<(), Error> {
        self.conn.act(|s, now| s.close(now)).await
    }

    /// Replaces the settings of the messages sent from now on (another voice or
    /// model for the next request); the idle timeout keeps the upgrade's value.
    pub fn set_config(&self, config: TtsLiveConfig) -> Result<(), Error> {
        self.conn.with(|s| s.set_config(config))?;
        Ok(())
    }

    /// Sends a WebSocket ping after every `interval` without client traffic; `None`
    /// turns keepalive off. The pings are sent while the receiver is polled. Whether
    /// the server counts a ping against its idle timeout is not documented: see
    /// [`smallest_core::tts_live`].
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.conn.with(|s| s.set_keepalive(interval));
        self.conn.wake.notify_one();
    }

    /// Requests sent and not yet completed.
    pub fn open_requests(&self) -> usize {
        self.conn.with(|s| s.open_requests())
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.conn.with(|s| s.is_closed())
    }
}

impl std::fmt::Debug for TtsLiveSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtsLiveSender")
            .field("open_requests", &self.open_requests())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A live STT connection, from [`Client::stt_live`]. Its halves work like those of
/// [`TtsLive`] (concurrency, the end of the connection, time limits).
///
/// [`split`](Self::split) it to send audio from one task while another reads the
/// transcripts, or use it whole from one task.
#[derive(Debug)]
pub struct SttLive {
    sender: SttLiveSender,
    receiver: SttLiveReceiver,
}

/// The writing half of a live STT connection. Clones share the connection.
#[derive(Clone)]
pub struct SttLiveSender {
    conn: Arc<Conn<SttLiveSession>>,
}

/// The reading half of a live STT connection: a `Stream` of [`SttLiveEvent`]s that
/// ends after the `Closed` event.
pub struct SttLiveReceiver {
    inner: Receiver<SttLiveSession>,
}

receiver_impls!(SttLiveReceiver, SttLiveEvent);

impl SttLive {
    /// The two halves, for two tasks.
    pub fn split(self) -> (SttLiveSender, SttLiveReceiver) {
        (self.sender, self.receiver)
    }

    /// The writing half.
    pub fn sender(&self) -> &SttLiveSender {
        &self.sender
    }

    /// Sends audio (in the configured encoding and rate) as binary frames of at most
    /// 4096 bytes.
    pub async fn send_audio(&self, audio: &[u8]) -> Result<(), Error> {
        self.sender.send_audio(audio).await
    }

    /// Asks for a final transcript of everything heard so far.
    pub async fn finalize(&self) -> Result<(), Error> {
        self.sender.finalize().await
    }

    /// Ends the stream: the last transcript (`is_last`) and a close 1000 follow.
    pub async fn close_stream(&self) -> Result<(), Error> {
        self.sender.close_stream().await
    }

    /// Abandons the stream with a close frame (1000).
    pub async fn close(&self) -> Result<(), Error> {
        self.sender.close().await
    }

    /// Turns keepalive pings on (`Some(interval)`) or off.
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.sender.set_keepalive(interval);
    }

    /// The next event, or `None` after the `Closed` event.
    pub async fn recv(&mut self) -> Option<Result<SttLiveEvent, Error>> {
        self.receiver.recv().await
    }
}

impl SttLiveSender {
    /// Sends audio (in the configured encoding and rate) as binary frames of at most
    /// 4096 bytes (opus packets as given). The caller paces real-time audio.
    pub async fn send_audio(&self, audio: &[u8]) -> Result<(), Error> {
        let audio = Bytes::copy_from_slice(audio);
        self.conn.act(|s, now| s.send_audio(audio, now)).await
    }

    /// Asks for a final transcript of everything heard so far (`{"type":"finalize"}`);
    /// the stream stays open.
    pub async fn finalize(&self) -> Result<(), Error> {
        self.conn.act(|s, now| s.finalize(now)).await
    }

    /// Ends the stream (`{"type":"close_stream"}`): the server flushes, sends the
    /// terminal transcript (`is_last: true`) and closes (1000). No audio may follow.
    pub async fn close_stream(&self) -> Result<(), Error> {
        self.conn.act(|s, now| s.close_stream(now)).await
    }

    /// Abandons the stream: a close frame (1000) without waiting for the remaining
    /// transcripts. Prefer [`close_stream`](Self::close_stream).
    pub async fn close(&self) -> Result<(), Error> {
        self.conn.act(|s, now| s.close(now)).await
    }

    /// Sends a WebSocket ping after every `interval` without client traffic; `None`
    /// turns keepalive off. The pings are sent while the receiver is polled.
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.conn.with(|s| s.set_keepalive(interval));
        self.conn.wake.notify_one();
    }

    /// Whether the terminal `is_last` transcript has arrived.
    pub fn is_finished(&self) -> bool {
        self.conn.with(|s| s.is_finished())
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.conn.with(|s| s.is_closed())
    }
}

impl std::fmt::Debug for SttLiveSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SttLiveSender")
            .field("finished", &self.is_finished())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_translate_both_ways() {
        let frames = [
            WsMessage::Text("{\"a\":1}".into()),
            WsMessage::Binary(Bytes::from_static(&[1, 2, 3])),
            WsMessage::Ping(Bytes::from_static(b"p")),
            WsMessage::Pong(Bytes::new()),
            WsMessage::Close(None),
            WsMessage::Close(Some(CloseFrame::new(1008, "too many sessions"))),
        ];
        for frame in frames {
            assert_eq!(from_tungstenite(to_tungstenite(frame.clone())), Some(frame));
        }
    }

    #[test]
    fn a_connection_ending_without_close_is_not_an_error() {
        assert!(is_dropped(&WsError::ConnectionClosed));
        assert!(is_dropped(&WsError::Protocol(
            ProtocolError::ResetWithoutClosingHandshake
        )));
        assert!(is_dropped(&WsError::Io(
            io::ErrorKind::UnexpectedEof.into()
        )));
        assert!(!is_dropped(&WsError::Protocol(
            ProtocolError::ReceivedAfterClosing
        )));
    }

    #[test]
    fn a_refused_upgrade_is_the_servers_error() {
        let key = [7u8; 16];
        let response = http::Response::builder()
            .status(401)
            .body(Some(br#"{"message":"Invalid API key"}"#.to_vec()))
            .unwrap();
        let e = upgrade_error(WsError::Http(Box::new(response)), key);
        assert!(e.is_auth(), "{e:?}");
        let e = upgrade_error(
            WsError::Protocol(ProtocolError::SecWebSocketAcceptKeyMismatch),
            key,
        );
        assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    }

    #[test]
    fn keys_differ() {
        assert_ne!(websocket_key(), websocket_key());
    }
}
