//! Live WebSocket sessions: Lightning TTS over `WSS /waves/v1/tts/live` and Pulse STT
//! over `WSS /waves/v1/stt/live`, on plain threads.
//!
//! This module only moves frames. The protocol lives in the core's sans-IO sessions
//! ([`smallest_core::tts_live`], [`smallest_core::stt_live`]) and everything a driving
//! loop decides (the slot, the idle limit while an answer is due, the close handshake,
//! decode errors, the end) in the core's [`LiveDriver`]; the tungstenite glue is
//! `smallest-net`'s. WebSocket framing is tungstenite's (no async runtime); TCP and TLS
//! (rustls with ring, the Mozilla roots plus the client's extra roots) are this crate's.
//!
//! The public documentation (example, concurrency design, how a connection ends,
//! time limits) is on [`TtsLive`].

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;
use smallest_core::live::{LiveDriver, LiveItem};
use smallest_core::stt_live::SttLiveSession;
use smallest_core::tts_live::TtsLiveSession;
use smallest_core::ws::{LiveSession, Upgrade, WsMessage};
use smallest_core::{Error, TimeoutPhase};
use smallest_net::{ReadError, from_tungstenite, read_error, to_tungstenite, upgrade_error};
use tungstenite::WebSocket;
use tungstenite::handshake::HandshakeError;

pub use smallest_core::stt_live::{
    CloseOutcome, SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveRoute, SttReconnect, Transcript,
};
pub use smallest_core::tts_live::{CloseReason, ContextId, Redial, TtsLiveConfig, TtsLiveEvent};

use crate::Client;

/// The longest one socket read of a live receiver blocks: the longest a sender
/// waits for a receiver that is waiting for the server.
pub const READ_SLICE: Duration = Duration::from_millis(20);

/// The read slice while a sender is active (it wrote within [`BURST_WINDOW`]): text
/// streamed fragment by fragment from an LLM waits at most this long per fragment for
/// the receiver's read to end, instead of a whole [`READ_SLICE`].
pub const BURST_SLICE: Duration = Duration::from_millis(2);

/// How long after a sender's last write the receiver reads in [`BURST_SLICE`]s.
pub const BURST_WINDOW: Duration = Duration::from_millis(250);

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
    pub fn tts_live(&self, config: TtsLiveConfig) -> Result<TtsLive, Error> {
        config.validate()?;
        let permit = crate::block_on(self.options.limits().tts_slot())?;
        let (request, upgrade) = config.handshake(&self.inner.config, smallest_net::nonce16())?;
        let ws = self.connect_websocket(request, &upgrade)?;
        let session = TtsLiveSession::new(config, Instant::now())?;
        let driver = LiveDriver::new(session, Some(permit), &self.options)
            .seeded(&self.options, smallest_net::seed())
            .redacting(&self.inner.config);
        let shared = Shared::open(ws, driver, self.clone());
        Ok(TtsLive {
            sender: TtsLiveSender {
                conn: shared.clone(),
            },
            receiver: TtsLiveReceiver { conn: shared },
        })
    }

    /// Opens a live STT connection (`WSS /waves/v1/stt/live?…`, or the legacy
    /// `/waves/v1/pulse/get_text` for [`SttLiveConfig::legacy`]).
    ///
    /// `config` is validated first (Pulse Pro, which has no streaming transport, is
    /// refused locally). A refused upgrade is the server's error ([`Error::Api`]).
    pub fn stt_live(&self, config: SttLiveConfig) -> Result<SttLive, Error> {
        config.validate()?;
        // One of the account's live STT sessions, held until the connection ends.
        let permit = crate::block_on(self.options.limits().stt_session())?;
        let (request, upgrade) = config.handshake(&self.inner.config, smallest_net::nonce16())?;
        let ws = self.connect_websocket(request, &upgrade)?;
        let session = SttLiveSession::new(config, Instant::now())?;
        let driver = LiveDriver::new(session, Some(permit), &self.options)
            .seeded(&self.options, smallest_net::seed())
            .redacting(&self.inner.config);
        let shared = Shared::open(ws, driver, self.clone());
        Ok(SttLive {
            sender: SttLiveSender {
                conn: shared.clone(),
            },
            receiver: SttLiveReceiver { conn: shared },
        })
    }

    /// TCP, TLS for `wss` and the upgrade, all within one connect deadline; the wait
    /// for the upgrade's answer also within the response limit.
    fn connect_websocket(
        &self,
        request: http::Request<()>,
        expected: &Upgrade,
    ) -> Result<WebSocket<Socket>, Error> {
        let (host, port, tls) = smallest_net::ws_target(&request)?;
        let limits = self.options.time_limits();
        let started = Instant::now();
        // What is left of the connect limit (at least 1 ms: a zero socket timeout blocks).
        let left = || {
            limits.connect.map(|l| {
                l.saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1))
            })
        };

        let connect_error = |e: io::Error| match limits.connect {
            Some(limit) if smallest_net::is_would_block(&e) => Error::Timeout {
                phase: TimeoutPhase::Connect,
                limit,
            },
            _ => Error::transport(false, e),
        };
        let mut tcp = match self.options.proxy_for(request.uri()) {
            None => connect_tcp(&host, port, limits.connect)?,
            Some(proxy) => {
                let tunnel = proxy.tunnel(&host, port);
                let mut tcp = match connect_tcp(proxy.host(), proxy.port(), limits.connect) {
                    Err(Error::Transport { source, .. }) => Err(tunnel.unreachable(source)),
                    other => other,
                }?;
                set_timeouts(&tcp, left(), left())?;
                smallest_net::open_tunnel(&mut tcp, tunnel, connect_error)?;
                tcp
            }
        };
        let socket = if tls {
            let name = ServerName::try_from(host.clone()).map_err(|e| {
                Error::Config(format!("{host:?} is not a valid TLS server name: {e}").into())
            })?;
            let mut tls = ClientConnection::new(self.inner.ws_tls.clone(), name)
                .map_err(|e| Error::transport(false, e))?;
            while tls.is_handshaking() {
                set_timeouts(&tcp, left(), left())?;
                tls.complete_io(&mut tcp).map_err(connect_error)?;
            }
            Socket {
                io: Io::Tls(Box::new(StreamOwned::new(tls, tcp))),
                write_deadline: None,
            }
        } else {
            Socket::plain(tcp)
        };
        let (wait, timed_out) = smallest_net::upgrade_wait(limits, started.elapsed());
        let wait = wait.map(|w| w.max(Duration::from_millis(1)));
        set_timeouts(socket.tcp(), wait, wait)?;
        let config = smallest_net::ws_config(self.options.live_write_buffer());
        let upgrade = tungstenite::client::client_with_config(request, socket, Some(config));
        let (ws, _response) = upgrade.map_err(|e| match e {
            HandshakeError::Interrupted(_) => timed_out,
            HandshakeError::Failure(tungstenite::Error::Io(io))
                if smallest_net::is_would_block(&io) =>
            {
                timed_out
            }
            HandshakeError::Failure(e) => {
                self.inner
                    .config
                    .redact(upgrade_error(e, expected, limits.connect))
            }
        })?;
        // Reads and writes are sliced; the driver's limits bound silences and stalls.
        set_timeouts(ws.get_ref().tcp(), Some(READ_SLICE), Some(READ_SLICE))?;
        Ok(ws)
    }
}

/// Resolves and connects, trying each address within the connect limit.
fn connect_tcp(host: &str, port: u16, limit: Option<Duration>) -> Result<TcpStream, Error> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::transport(false, e))?;
    let mut last = None;
    for addr in addrs {
        let attempt = match limit.filter(|d| !d.is_zero()) {
            Some(limit) => TcpStream::connect_timeout(&addr, limit),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(tcp) => {
                // Small frames (text pieces, audio frames) must not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match (last, limit) {
        (Some(e), Some(limit)) if smallest_net::is_would_block(&e) => Error::Timeout {
            phase: TimeoutPhase::Connect,
            limit,
        },
        (Some(e), _) => Error::transport(false, e),
        (None, _) => Error::transport(false, format!("{host}:{port} resolved to no address")),
    })
}

/// Sets the socket's read and write limits (`None`, or zero, blocks).
fn set_timeouts(
    tcp: &TcpStream,
    read: Option<Duration>,
    write: Option<Duration>,
) -> Result<(), Error> {
    let nonzero = |d: Option<Duration>| d.filter(|d| !d.is_zero());
    tcp.set_read_timeout(nonzero(read))
        .and_then(|()| tcp.set_write_timeout(nonzero(write)))
        .map_err(|e| Error::transport(true, e))
}

/// The connection under the WebSocket framing: plain TCP (loopback `ws://`) or TLS,
/// with a deadline on writing. One `flush` of tungstenite may write many times, each
/// within the socket's write timeout: the deadline bounds them all, so a server that
/// stops reading stalls a write for the driver's limit, not for as long as the kernel
/// keeps accepting a few bytes at a time.
struct Socket {
    io: Io,
    write_deadline: Option<Instant>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Socket {
    fn plain(tcp: TcpStream) -> Self {
        Socket {
            io: Io::Plain(tcp),
            write_deadline: None,
        }
    }

    fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(tcp) => tcp,
            Io::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.io {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.write_deadline.is_some_and(|at| Instant::now() >= at) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match &mut self.io {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

/// A core live session this transport can drive on its own: the core's
/// [`LiveSession`] verbs, movable between threads.
trait Session: LiveSession<Event: Send + 'static> + Send + 'static {}

impl<S: LiveSession<Event: Send + 'static> + Send + 'static> Session for S {}

/// The socket and the driver, behind one lock.
struct Conn<S: Session> {
    ws: WebSocket<Socket>,
    driver: LiveDriver<S>,
    /// The socket's read timeout now (setting it is a system call: only on a change).
    read_timeout: Duration,
    /// For new connections (a session that reconnects or redials).
    client: Client,
    /// When a sender last wrote: reads are short for a [`BURST_WINDOW`] after it.
    sent: Option<Instant>,
}

impl<S: Session> Conn<S> {
    /// Writes every frame the driver has, in order, then flushes, within the write limit.
    fn write_queued(&mut self) -> Result<(), Error> {
        let limit = self.driver.write_limit();
        self.ws.get_mut().write_deadline = Instant::now().checked_add(limit);
        let mut wrote = false;
        while let Some(frame) = self.driver.poll_transmit(Instant::now()) {
            match self.ws.write(to_tungstenite(frame)) {
                // A write that would block has queued the frame: the flush sends it.
                Err(tungstenite::Error::Io(e)) if smallest_net::is_would_block(&e) => {}
                Err(e) => return Err(smallest_net::write_error(e, limit)),
                Ok(()) => {}
            }
            wrote = true;
        }
        if wrote {
            self.flush_within(limit)
        } else {
            Ok(())
        }
    }

    /// Flushes what is queued (the session's frames, tungstenite's pongs and close
    /// replies). The socket's write timeout is one [`READ_SLICE`], so a stalled write
    /// is retried until it has stalled for `limit` in all: then the server is not
    /// reading, and the session fails instead of hanging or growing.
    fn flush_within(&mut self, limit: Duration) -> Result<(), Error> {
        let started = Instant::now();
        self.ws.get_mut().write_deadline = started.checked_add(limit);
        loop {
            match self.ws.flush() {
                Ok(()) => return Ok(()),
                Err(tungstenite::Error::Io(e))
                    if smallest_net::is_would_block(&e) && started.elapsed() < limit => {}
                Err(e) => return Err(smallest_net::write_error(e, limit)),
            }
        }
    }

    /// One step of the receiver: an item if one is ready, else one bounded read
    /// (`None`: call again).
    fn step(&mut self) -> Option<Option<Result<S::Event, Error>>> {
        match self.driver.poll_item() {
            Some(LiveItem::Event(event)) => return Some(Some(Ok(event))),
            Some(LiveItem::Error(error)) => return Some(Some(Err(error))),
            Some(LiveItem::End) => return Some(None),
            Some(LiveItem::Connect) => {
                self.reconnect();
                return None;
            }
            None => {}
        }
        // Keepalive pings the session queued.
        if let Err(e) = self.write_queued() {
            self.driver.handle_failure(e, Instant::now());
            return None;
        }
        let now = Instant::now();
        let deadline = self.driver.poll_timeout(now);
        if deadline.is_some_and(|due| due <= now) {
            self.driver.handle_timeout(now);
            return None;
        }
        if self.driver.is_disconnected() {
            // Between connections: wait for the backoff, one slice at a time.
            let wait = deadline.map_or(READ_SLICE, |due| {
                due.saturating_duration_since(now).min(READ_SLICE)
            });
            std::thread::sleep(wait);
            return None;
        }
        let slice = if self
            .sent
            .is_some_and(|at| now.saturating_duration_since(at) < BURST_WINDOW)
        {
            BURST_SLICE
        } else {
            READ_SLICE
        };
        let wait = deadline
            .map_or(slice, |due| due.saturating_duration_since(now).min(slice))
            .max(Duration::from_millis(1));
        if wait != self.read_timeout {
            if let Err(e) = self.ws.get_ref().tcp().set_read_timeout(Some(wait)) {
                self.driver.handle_failure(Error::transport(true, e), now);
                return None;
            }
            self.read_timeout = wait;
        }
        // The pong or close reply tungstenite writes while reading waits one slice at most.
        self.ws.get_mut().write_deadline = now.checked_add(READ_SLICE);
        let read = self.ws.read();
        let now = Instant::now();
        match read {
            Ok(message) => {
                let message = from_tungstenite(message)?;
                let close = matches!(message, WsMessage::Close(_));
                self.driver.handle_frame(message, now);
                // Send what tungstenite answered (a pong, the close reply). A stalled
                // reply to a close only ends the wait; any other stall fails the session.
                let limit = if close {
                    self.driver.close_timeout()
                } else {
                    self.driver.write_limit()
                };
                if let Err(e) = self.flush_within(limit)
                    && !close
                {
                    self.driver.handle_failure(e, now);
                }
            }
            Err(e) => match read_error(e) {
                ReadError::WouldBlock => {}
                ReadError::Dropped => self.driver.handle_dropped(now),
                ReadError::Failed(e) => self.driver.handle_failure(e, now),
            },
        }
        None
    }
}

impl<S: Session> Conn<S> {
    /// Opens the new connection the session asked for in place of the old one.
    fn reconnect(&mut self) {
        let opened = self
            .driver
            .handshake(&self.client.inner.config, smallest_net::nonce16())
            .and_then(|(request, upgrade)| self.client.connect_websocket(request, &upgrade));
        let now = Instant::now();
        match opened {
            Ok(ws) => {
                self.ws = ws;
                // Unknown on the new socket: set on the next read.
                self.read_timeout = Duration::ZERO;
                self.driver.handle_connected(now);
            }
            Err(e) => self.driver.handle_connect_failed(e, now),
        }
    }
}

/// What both halves share.
struct Shared<S: Session> {
    conn: Mutex<Conn<S>>,
    /// Senders waiting for the lock; the receiver steps aside for them.
    waiting: AtomicUsize,
}

impl<S: Session> Shared<S> {
    fn open(ws: WebSocket<Socket>, driver: LiveDriver<S>, client: Client) -> Arc<Self> {
        Arc::new(Shared {
            conn: Mutex::new(Conn {
                ws,
                driver,
                read_timeout: READ_SLICE,
                client,
                sent: None,
            }),
            waiting: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Conn<S>> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks for a sender, announcing it so that the receiver steps aside.
    fn lock_for_send(&self) -> MutexGuard<'_, Conn<S>> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// A sender verb: update the session, then write what it queued.
    fn act<R>(&self, f: impl FnOnce(&mut S, Instant) -> Result<R, Error>) -> Result<R, Error> {
        let mut conn = self.lock_for_send();
        let now = Instant::now();
        conn.sent = Some(now);
        let out = f(conn.driver.session_mut(), now)?;
        if let Err(e) = conn.write_queued() {
            // A session that reconnects replays what was sent: the verb succeeded.
            conn.driver.handle_write_failure(e, Instant::now())?;
        }
        Ok(out)
    }

    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(self.lock_for_send().driver.session_mut())
    }

    /// Keepalive pings after `interval` without client traffic (`None`: off); the
    /// receiver sends them as it runs.
    fn set_keepalive(&self, interval: Option<Duration>) {
        self.with(|s| s.set_keepalive(interval));
    }

    /// The receiver: the next event, or `None` after the `Closed` event.
    fn next(&self) -> Option<Result<S::Event, Error>> {
        loop {
            {
                let mut conn = self.lock();
                // A sender that announced itself while this thread took the lock goes
                // first: a read now would make it wait a whole slice.
                if self.waiting.load(Ordering::SeqCst) == 0
                    && let Some(item) = conn.step()
                {
                    return item;
                }
            }
            // Let a waiting sender have the lock before reading again.
            self.step_aside();
        }
    }

    /// Waits until no sender waits for the lock.
    fn step_aside(&self) {
        let mut spins = 0u32;
        while self.waiting.load(Ordering::SeqCst) > 0 {
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
            spins = spins.saturating_add(1);
        }
    }
}

/// A live TTS connection, from [`Client::tts_live`].
///
/// [`split`](Self::split) it to write text from one thread while another plays the
/// audio; or use it whole from one thread (send, then [`recv`](Self::recv)): the
/// sender's calls write directly, so nothing needs the receiver to run first.
///
/// ```no_run
/// use smallest_blocking::{Client, TtsLiveConfig, TtsLiveEvent};
///
/// # fn main() -> Result<(), smallest_blocking::Error> {
/// let client = Client::from_env()?;
/// let live = client.tts_live(TtsLiveConfig::new("magnus").sample_rate(24000))?;
/// let (sender, receiver) = live.split();
/// let writer = std::thread::spawn(move || {
///     for piece in ["Hello, ", "world. ", "How are you?"] {
///         sender.send_text(piece)?;
///     }
///     sender.finish()?;
///     Ok::<_, smallest_blocking::Error>(sender)
/// });
/// let mut pcm = Vec::new();
/// for event in receiver {
///     match event? {
///         TtsLiveEvent::Audio { data, .. } => pcm.extend_from_slice(&data),
///         TtsLiveEvent::Complete { .. } => break,
///         _ => {}
///     }
/// }
/// writer.join().expect("writer thread")?.close()?;
/// # Ok(()) }
/// ```
///
/// # Concurrency design
///
/// A live connection splits into a **sender** (`Clone`, `Send + Sync`: any number of
/// threads may share it) and a **receiver** (an [`Iterator`] and `recv`, for one
/// thread). No thread is spawned. Both halves share one `Mutex` around the socket and
/// the core session:
///
/// - A sender call locks, updates the session (which validates and queues the
///   frames), writes everything the session queued, in order, and unlocks. It returns
///   once the frames are written, so it sees the back-pressure of the connection and
///   the error of the write it caused.
/// - The receiver locks, hands out a queued event if there is one, otherwise reads
///   with a short socket read timeout ([`READ_SLICE`], or the session's next deadline
///   if sooner), feeds what it read to the session, runs the session's timers
///   (keepalive pings, the TTS idle deadline) and unlocks. Between two reads it
///   steps aside for any sender waiting for the lock, so **a send waits at most one
///   read slice** for a receiver blocked in `read`. For a [`BURST_WINDOW`] after a
///   send the slice is a [`BURST_SLICE`]: the fragments of a streamed answer after the
///   first wait at most 2 ms each, and an idle connection still wakes only every
///   [`READ_SLICE`].
///
/// TLS has one state for both directions, so the socket cannot be split into a
/// reading and a writing half; a dedicated reader thread would still need the same
/// lock for writing, and would run even when nobody reads. Keepalive pings are sent
/// while the receiver is being iterated.
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
/// - **a connection that ends without a close frame** (EOF, reset) is the `Closed`
///   event with no code ([`CloseReason::NoStatus`], [`CloseOutcome::NoStatus`]),
///   **not** an error;
/// - any other failure of the connection (a TLS or WebSocket protocol error, a write
///   stalled past the idle limit) is one `Err(..)` item, followed by that same
///   `Closed` event.
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
pub struct TtsLive {
    sender: TtsLiveSender,
    receiver: TtsLiveReceiver,
}

/// The writing half of a live TTS connection. Clones share the connection.
#[derive(Clone)]
pub struct TtsLiveSender {
    conn: Arc<Shared<TtsLiveSession>>,
}

/// The reading half of a live TTS connection: an [`Iterator`] of [`TtsLiveEvent`]s
/// that ends after the `Closed` event.
pub struct TtsLiveReceiver {
    conn: Arc<Shared<TtsLiveSession>>,
}

smallest_net::live_methods!(async: [], await: []);

impl TtsLiveReceiver {
    /// The next event, or `None` after the `Closed` event.
    pub fn recv(&mut self) -> Option<Result<TtsLiveEvent, Error>> {
        self.conn.next()
    }
}

impl Iterator for TtsLiveReceiver {
    type Item = Result<TtsLiveEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.conn.next()
    }
}

/// A live STT connection, from [`Client::stt_live`]. Its halves work like those of
/// [`TtsLive`] (concurrency, the end of the connection, time limits).
///
/// [`split`](Self::split) it to send audio from one thread while another reads the
/// transcripts, or use it whole from one thread.
pub struct SttLive {
    sender: SttLiveSender,
    receiver: SttLiveReceiver,
}

/// The writing half of a live STT connection. Clones share the connection.
#[derive(Clone)]
pub struct SttLiveSender {
    conn: Arc<Shared<SttLiveSession>>,
}

/// The reading half of a live STT connection: an [`Iterator`] of [`SttLiveEvent`]s
/// that ends after the `Closed` event.
pub struct SttLiveReceiver {
    conn: Arc<Shared<SttLiveSession>>,
}

impl SttLiveReceiver {
    /// The next event, or `None` after the `Closed` event.
    pub fn recv(&mut self) -> Option<Result<SttLiveEvent, Error>> {
        self.conn.next()
    }
}

impl Iterator for SttLiveReceiver {
    type Item = Result<SttLiveEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.conn.next()
    }
}

macro_rules! debug_impls {
    ($($ty:ident),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    )*};
}

debug_impls!(TtsLive, TtsLiveReceiver, SttLive, SttLiveReceiver);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn halves_move_between_threads() {
        assert_send::<TtsLiveSender>();
        assert_send::<TtsLiveReceiver>();
        assert_send::<SttLiveSender>();
        assert_send::<SttLiveReceiver>();
    }
}
