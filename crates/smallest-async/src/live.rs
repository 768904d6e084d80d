//! Live WebSocket sessions on any executor: Lightning TTS over `WSS
//! /waves/v1/tts/live` and Pulse STT over `WSS /waves/v1/stt/live`.
//!
//! This module only moves frames (async-tungstenite over the runtime's stream, TLS by
//! futures-rustls). The protocol is the core's sans-IO sessions, everything a driving
//! loop decides the core's [`LiveDriver`], the tungstenite glue `smallest-net`'s. The
//! halves need no task and no runtime lock: the write half sits behind a
//! `futures::lock::Mutex`, the session behind a short `std::sync::Mutex`.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use bytes::Bytes;
use futures_util::lock::Mutex as AsyncMutex;
use futures_util::sink::Sink;
use futures_util::stream::StreamExt;
use futures_util::task::AtomicWaker;
use smallest_core::live::{LiveDriver, LiveItem};
use smallest_core::stt_live::SttLiveSession;
use smallest_core::tts_live::TtsLiveSession;
use smallest_core::ws::LiveSession;
use smallest_core::{Error, TimeoutPhase};
use smallest_net::{ReadError, from_tungstenite, read_error, to_tungstenite, upgrade_error};

pub use smallest_core::stt_live::{
    CloseOutcome, SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveRoute, Transcript,
};
pub use smallest_core::tts_live::{CloseReason, TtsLiveConfig, TtsLiveEvent};

use crate::conn::{self, Target};
use crate::runtime::{AsyncIo, Runtime, Sleep, far_or, with_limit};
use crate::{Client, runtime};

impl Client {
    /// Opens a live TTS connection (`WSS /waves/v1/tts/live`).
    ///
    /// `config` is validated first. **A live TTS connection occupies one of the
    /// account's TTS slots** (the client's [`TtsLimiter`](crate::TtsLimiter)) for its
    /// whole lifetime: this call waits for a free slot, freed when the receiver has
    /// seen the connection close, or when both halves are dropped. A refused upgrade is
    /// the server's error ([`Error::Api`]).
    pub async fn tts_live(&self, config: TtsLiveConfig) -> Result<TtsLive, Error> {
        config.validate()?;
        let permit = self.options.tts_limiter().acquire().await;
        let key = smallest_net::nonce16();
        let (request, upgrade) = config.handshake(&self.inner.config, key)?;
        let ws = self.connect_websocket(request, &upgrade).await?;
        let session = TtsLiveSession::new(config, Instant::now())?;
        let driver =
            LiveDriver::new(session, Some(permit), &self.options).redacting(&self.inner.config);
        let (conn, reader) = Conn::open(ws, driver, self.inner.runtime.clone());
        Ok(TtsLive {
            sender: TtsLiveSender { conn },
            receiver: TtsLiveReceiver {
                inner: Receiver::new(reader),
            },
        })
    }

    /// Opens a live STT connection (`WSS /waves/v1/stt/live?…`, or the legacy
    /// `/waves/v1/pulse/get_text` for [`SttLiveConfig::legacy`]). `config` is
    /// validated first; a refused upgrade is the server's error ([`Error::Api`]).
    pub async fn stt_live(&self, config: SttLiveConfig) -> Result<SttLive, Error> {
        config.validate()?;
        let key = smallest_net::nonce16();
        let (request, upgrade) = config.handshake(&self.inner.config, key)?;
        let ws = self.connect_websocket(request, &upgrade).await?;
        let session = SttLiveSession::new(config, Instant::now())?;
        let driver = LiveDriver::new(session, None, &self.options).redacting(&self.inner.config);
        let (conn, reader) = Conn::open(ws, driver, self.inner.runtime.clone());
        Ok(SttLive {
            sender: SttLiveSender { conn },
            receiver: SttLiveReceiver {
                inner: Receiver::new(reader),
            },
        })
    }

    /// TCP (or the proxy tunnel), TLS for `wss` and the upgrade, all within the connect
    /// limit; the wait for the upgrade's answer also within the response limit.
    async fn connect_websocket(
        &self,
        request: http::Request<()>,
        expected: &smallest_core::ws::Upgrade,
    ) -> Result<Ws, Error> {
        let rt = self.runtime();
        let target = Target::of(request.uri())?;
        let limits = self.options.time_limits();
        let started = Instant::now();
        let connect = conn::open(rt, &self.options, &self.inner.ws_tls, &target);
        let io = with_limit(rt, limits.connect, TimeoutPhase::Connect, connect).await??;
        let (wait, timed_out) = smallest_net::upgrade_wait(limits, started.elapsed());
        let config = smallest_net::ws_config(self.options.live_write_buffer());
        let upgrade = async_tungstenite::client_async_with_config(request, io, Some(config));
        let result = match wait {
            None => upgrade.await,
            Some(wait) => runtime::race(rt, upgrade, far_or(Instant::now().checked_add(wait)))
                .await
                .ok_or(timed_out)?,
        };
        let (ws, _response) = result.map_err(|e| {
            self.inner
                .config
                .redact(upgrade_error(e, expected, limits.connect))
        })?;
        Ok(ws)
    }
}

type Ws = WebSocketStream<Box<dyn AsyncIo>>;
type WriteHalf = async_tungstenite::WebSocketSender<Box<dyn AsyncIo>>;

/// A core live session this transport can drive: the core's [`LiveSession`] verbs,
/// movable between threads.
trait Session: LiveSession<Event: Send + 'static> + Send + 'static {}

impl<S: LiveSession<Event: Send + 'static> + Send + 'static> Session for S {}

/// A flag that wakes the receiver (a new keepalive interval: recompute the deadline).
#[derive(Default)]
struct Wake {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Wake {
    fn notify(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.swap(false, Ordering::SeqCst) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.set.swap(false, Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What both halves share.
struct Conn<S: Session> {
    driver: Mutex<LiveDriver<S>>,
    write: AsyncMutex<WriteHalf>,
    wake: Wake,
    runtime: Arc<dyn Runtime>,
}

impl<S: Session> Conn<S> {
    fn open(ws: Ws, driver: LiveDriver<S>, runtime: Arc<dyn Runtime>) -> (Arc<Self>, Reader<S>) {
        let (write, read) = ws.split();
        let conn = Arc::new(Conn {
            driver: Mutex::new(driver),
            write: AsyncMutex::new(write),
            wake: Wake::default(),
            runtime,
        });
        let reader = Reader {
            conn: conn.clone(),
            read,
        };
        (conn, reader)
    }

    /// Runs `f` on the driver (never across an `.await`).
    fn drive<R>(&self, f: impl FnOnce(&mut LiveDriver<S>) -> R) -> R {
        f(&mut self.driver.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` on the session.
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.drive(|d| f(d.session_mut()))
    }

    /// Keepalive pings after `interval` without client traffic (`None`: off).
    fn set_keepalive(&self, interval: Option<Duration>) {
        self.with(|s| s.set_keepalive(interval));
        self.wake.notify();
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

    /// Writes every frame the driver has, in order, then flushes, within the write
    /// limit. A frame is taken only once the socket is ready for it, so cancelling this
    /// future never loses one.
    async fn write_queued(&self, write: &mut WriteHalf) -> Result<(), Error> {
        let limit = self.drive(|d| d.write_limit());
        let writing = async {
            let mut wrote = false;
            loop {
                poll_fn(|cx| Pin::new(&mut *write).poll_ready(cx)).await?;
                let Some(frame) = self.drive(|d| d.poll_transmit(Instant::now())) else {
                    break;
                };
                Pin::new(&mut *write).start_send(to_tungstenite(frame))?;
                wrote = true;
            }
            if wrote {
                poll_fn(|cx| Pin::new(&mut *write).poll_flush(cx)).await?;
            }
            Ok::<_, WsError>(())
        };
        with_limit(
            self.runtime.as_ref(),
            Some(limit),
            TimeoutPhase::Idle,
            writing,
        )
        .await?
        .map_err(|e| smallest_net::write_error(e, limit))
    }

    /// Flushes what tungstenite queued itself (pongs, the answer to a close) within
    /// `limit`.
    async fn flush(&self, limit: Duration) -> Result<(), Error> {
        let flushing = async {
            let mut write = self.write.lock().await;
            poll_fn(|cx| Pin::new(&mut *write).poll_flush(cx)).await
        };
        with_limit(
            self.runtime.as_ref(),
            Some(limit),
            TimeoutPhase::Idle,
            flushing,
        )
        .await?
        .map_err(|e| smallest_net::write_error(e, limit))
    }
}

/// The receiving side: reads and feeds the driver, sleeps until its timeout.
struct Reader<S: Session> {
    conn: Arc<Conn<S>>,
    read: async_tungstenite::WebSocketReceiver<Box<dyn AsyncIo>>,
}

/// What woke the receiver.
enum Woke {
    Read(Option<Result<Message, WsError>>),
    Timeout,
    Notified,
}

impl<S: Session> Reader<S> {
    async fn next(&mut self) -> Option<Result<S::Event, Error>> {
        let conn = self.conn.clone();
        loop {
            let (item, outgoing) = conn.drive(|d| (d.poll_item(), d.has_outgoing()));
            match item {
                Some(LiveItem::Event(event)) => return Some(Ok(event)),
                Some(LiveItem::Error(error)) => return Some(Err(error)),
                Some(LiveItem::End) => return None,
                None => {}
            }
            if outgoing {
                // Keepalive pings the session queued on a timeout.
                let mut write = conn.write.lock().await;
                if let Err(e) = conn.write_queued(&mut write).await {
                    conn.drive(|d| d.handle_failure(e, Instant::now()));
                }
                continue;
            }
            let deadline = conn.drive(|d| d.poll_timeout(Instant::now()));
            // The timer is made only when the read has to wait.
            let mut timer: Option<Sleep> = None;
            let woke = poll_fn(|cx| {
                if let Poll::Ready(message) = self.read.poll_next_unpin(cx) {
                    return Poll::Ready(Woke::Read(message));
                }
                if let Some(deadline) = deadline {
                    let timer =
                        timer.get_or_insert_with(|| Sleep::until(conn.runtime.as_ref(), deadline));
                    if Pin::new(timer).poll(cx).is_ready() {
                        return Poll::Ready(Woke::Timeout);
                    }
                }
                conn.wake.poll(cx).map(|()| Woke::Notified)
            })
            .await;
            match woke {
                Woke::Read(message) => self.on_read(message).await,
                Woke::Timeout => conn.drive(|d| d.handle_timeout(Instant::now())),
                Woke::Notified => {}
            }
        }
    }

    async fn on_read(&mut self, message: Option<Result<Message, WsError>>) {
        let now = Instant::now();
        match message {
            Some(Ok(message)) => {
                let Some(message) = from_tungstenite(message) else {
                    return;
                };
                let close = matches!(message, smallest_core::ws::WsMessage::Close(_));
                self.conn.drive(|d| d.handle_frame(message, now));
                let limit = self.conn.drive(|d| {
                    if close {
                        d.close_timeout()
                    } else {
                        d.write_limit()
                    }
                });
                // Send what tungstenite answered (a pong, the close reply). A stalled
                // reply to a close only ends the wait; any other stall fails the session.
                if let Err(e) = self.conn.flush(limit).await
                    && !close
                {
                    self.conn.drive(|d| d.handle_failure(e, Instant::now()));
                }
            }
            None => self.conn.drive(|d| d.handle_dropped(now)),
            Some(Err(e)) => match read_error(e) {
                ReadError::Dropped | ReadError::WouldBlock => {
                    self.conn.drive(|d| d.handle_dropped(now));
                }
                ReadError::Failed(e) => self.conn.drive(|d| d.handle_failure(e, now)),
            },
        }
    }
}

type Next<S> = (Reader<S>, Option<Result<<S as LiveSession>::Event, Error>>);

/// A receiver as a `Stream`: the reader's `next` runs as one stored future, so a
/// cancelled `recv` resumes where it stopped instead of losing a frame.
struct Receiver<S: Session> {
    reader: Option<Reader<S>>,
    pending: Option<Pin<Box<dyn Future<Output = Next<S>> + Send>>>,
}

impl<S: Session> Receiver<S> {
    fn new(reader: Reader<S>) -> Self {
        Receiver {
            reader: Some(reader),
            pending: None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<S::Event, Error>>> {
        if self.pending.is_none() {
            let Some(mut reader) = self.reader.take() else {
                return Poll::Ready(None);
            };
            self.pending = Some(Box::pin(async move {
                let item = reader.next().await;
                (reader, item)
            }));
        }
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let (reader, item) = std::task::ready!(pending.as_mut().poll(cx));
        self.pending = None;
        self.reader = Some(reader);
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

/// A live TTS connection, from [`Client::tts_live`]: the same halves, events, ending
/// and time limits as `smallest_hyper::TtsLive` (see there), on any executor.
/// [`split`](Self::split) it to write text from one task while another reads the
/// audio, or use it whole from one task.
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

smallest_net::live_methods!(async: [async], await: [.await]);

/// A live STT connection, from [`Client::stt_live`]. Its halves work like those of
/// [`TtsLive`].
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
