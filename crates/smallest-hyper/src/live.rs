//! Live WebSocket sessions: Lightning TTS over `WSS /waves/v1/tts/live` and Pulse STT
//! over `WSS /waves/v1/stt/live`.
//!
//! This module only moves frames. The protocol lives in the core's sans-IO sessions
//! ([`smallest_core::tts_live`], [`smallest_core::stt_live`]) and everything a driving
//! loop decides (the slot, the idle limit while an answer is due, the close handshake,
//! decode errors, the end) in the core's [`LiveDriver`]; the tungstenite glue is
//! `smallest-net`'s.
//!
//! The public documentation (example, concurrency design, how a connection ends,
//! time limits) is on [`TtsLive`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use rustls_pki_types::ServerName;
use smallest_core::live::LiveDriver;
use smallest_core::stt_live::SttLiveSession;
use smallest_core::tts_live::TtsLiveSession;
use smallest_core::ws::Upgrade;
use smallest_core::{Error, TimeoutPhase};
use smallest_net::upgrade_error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub use smallest_core::stt_live::{
    CloseOutcome, SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveRoute, SttReconnect, Transcript,
};
pub use smallest_core::tts_live::{CloseReason, ContextId, Redial, TtsLiveConfig, TtsLiveEvent};

use crate::{Client, with_limit};

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
        let permit = self.options.limits().tts_slot().await?;
        let (request, upgrade) = config.handshake(&self.inner.config, smallest_net::nonce16())?;
        let socket = self.connect_websocket(request, &upgrade).await?;
        let session = TtsLiveSession::new(config, Instant::now())?;
        let driver = LiveDriver::new(session, Some(permit), &self.options)
            .seeded(&self.options, smallest_net::seed())
            .redacting(&self.inner.config);
        let (conn, inner) = open(socket, driver, self.clone());
        Ok(TtsLive {
            sender: TtsLiveSender { conn },
            receiver: TtsLiveReceiver { inner },
        })
    }

    /// Opens a live STT connection (`WSS /waves/v1/stt/live?…`, or the legacy
    /// `/waves/v1/pulse/get_text` for [`SttLiveConfig::legacy`]).
    ///
    /// `config` is validated first (Pulse Pro, which has no streaming transport, is
    /// refused locally). A refused upgrade is the server's error ([`Error::Api`]).
    pub async fn stt_live(&self, config: SttLiveConfig) -> Result<SttLive, Error> {
        config.validate()?;
        // One of the account's live STT sessions, held until the connection ends.
        let permit = self.options.limits().stt_session().await?;
        let (request, upgrade) = config.handshake(&self.inner.config, smallest_net::nonce16())?;
        let socket = self.connect_websocket(request, &upgrade).await?;
        let session = SttLiveSession::new(config, Instant::now())?;
        let driver = LiveDriver::new(session, Some(permit), &self.options)
            .seeded(&self.options, smallest_net::seed())
            .redacting(&self.inner.config);
        let (conn, inner) = open(socket, driver, self.clone());
        Ok(SttLive {
            sender: SttLiveSender { conn },
            receiver: SttLiveReceiver { inner },
        })
    }

    /// TCP, TLS for `wss` and the upgrade, all within the connect limit; the wait for
    /// the upgrade's answer also within the response limit.
    async fn connect_websocket(
        &self,
        request: http::Request<()>,
        expected: &Upgrade,
    ) -> Result<Ws, Error> {
        let (host, port, tls) = smallest_net::ws_target(&request)?;
        let limits = self.options.time_limits();
        let started = tokio::time::Instant::now();
        let connect = async {
            let uri = request.uri();
            let tcp = match self.options.proxy_for(uri) {
                None => TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| Error::transport(false, e))?,
                Some(proxy) => {
                    let mut tcp = TcpStream::connect((proxy.host(), proxy.port()))
                        .await
                        .map_err(|e| Error::transport(false, e))?;
                    crate::open_tunnel(&mut tcp, proxy.tunnel(&host, port)).await?;
                    tcp
                }
            };
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
        let socket = with_limit(limits.connect, TimeoutPhase::Connect, connect).await??;
        let (wait, timed_out) = smallest_net::upgrade_wait(limits, started.elapsed());
        let config = smallest_net::ws_config(self.options.live_write_buffer());
        let upgrade = tokio_tungstenite::client_async_with_config(request, socket, Some(config));
        let (ws, _response) = match wait {
            None => upgrade.await,
            Some(wait) => tokio::time::timeout(wait, upgrade)
                .await
                .map_err(|_| timed_out)?,
        }
        .map_err(|e| {
            self.inner
                .config
                .redact(upgrade_error(e, expected, limits.connect))
        })?;
        Ok(ws)
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
}

type Ws = WebSocketStream<Socket>;

/// The engine's view of this crate: tokio-tungstenite's halves and tokio's timers.
/// The live engine's transport: tokio's timer, and the client for new connections.
struct Tokio(Client);

impl smallest_net::live::Transport for Tokio {
    type Write = SplitSink<Ws, Message>;
    type Read = SplitStream<Ws>;

    fn sleep_until(&self, deadline: Instant) -> smallest_net::live::Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn connect(
        &self,
        request: http::Request<()>,
        upgrade: Upgrade,
    ) -> smallest_net::live::Connecting<Self> {
        let client = self.0.clone();
        Box::pin(async move { Ok(client.connect_websocket(request, &upgrade).await?.split()) })
    }

    fn config(&self) -> &smallest_core::Config {
        &self.0.inner.config
    }
}

type Conn<S> = smallest_net::live::Conn<S, Tokio>;
type Receiver<S> = smallest_net::live::Receiver<S, Tokio>;

/// The halves of an upgraded connection.
fn open<S: smallest_net::live::Session>(
    ws: Ws,
    driver: LiveDriver<S>,
    client: Client,
) -> (Arc<Conn<S>>, Receiver<S>) {
    let (write, read) = ws.split();
    Conn::open(write, read, driver, Tokio(client))
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
/// The same on every transport, decided by the core's
/// [`LiveDriver`](smallest_core::live::LiveDriver): the connect limit covers TCP, TLS
/// and the whole upgrade (a shorter response limit ends the wait for the 101 instead).
/// The idle limit applies while the server owes an answer (an open TTS request, an STT
/// `finalize` or `close_stream`): a silence that long is `Err(Error::Timeout { phase:
/// Idle, .. })`, then `Closed`. With nothing outstanding a live session may be quiet for
/// as long as the server keeps it (the TTS server closes an idle connection itself, see
/// [`TtsLiveConfig::timeout_secs`]). A write may stall for the idle limit (30 s without
/// one) and the write buffer is bounded, so a server that stops reading ends the session
/// with that same error instead of hanging it or growing its memory. The answer to a
/// close frame is awaited for [`close_timeout`](smallest_core::ClientBuilder::close_timeout).
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

smallest_net::receiver_impls!(TtsLiveReceiver, TtsLiveEvent);

smallest_net::live_methods!(async: [async], await: [.await]);

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

smallest_net::receiver_impls!(SttLiveReceiver, SttLiveEvent);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn halves_move_between_tasks() {
        assert_send::<TtsLiveSender>();
        assert_send::<TtsLiveReceiver>();
        assert_send::<SttLiveSender>();
        assert_send::<SttLiveReceiver>();
    }
}
