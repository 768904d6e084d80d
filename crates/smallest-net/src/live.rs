//! The live-session engine of the async transports, written once: the two halves of a
//! live connection over any WebSocket `Sink`/`Stream` of tungstenite messages
//! (tokio-tungstenite, async-tungstenite) and any timer.
//!
//! The decisions are the core's [`LiveDriver`]; this moves frames. No task, no runtime
//! lock: the session sits behind a short `std::sync::Mutex` never held across an
//! `.await`, the write half behind `futures::lock::Mutex`, the read half is the
//! receiver's, and the receiver runs the timers (keepalive pings, the idle limit, the
//! close handshake) while it is polled.
//!
//! - A sender verb ([`Conn::act`]) updates the session, then takes the write half and
//!   writes everything queued, in order, within the driver's write limit. A frame is
//!   taken from the session only once the socket is ready for it, so cancelling a verb
//!   never loses a frame.
//! - The [`Receiver`] hands out the driver's items, writes what a timeout queued, and
//!   waits for the first of a frame, the driver's timeout, or a sender's wake-up
//!   ([`Conn::set_keepalive`]).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_util::lock::Mutex as AsyncMutex;
use futures_util::sink::Sink;
use futures_util::task::AtomicWaker;
use smallest_core::live::{LiveDriver, LiveItem};
use smallest_core::ws::{LiveSession, Upgrade};
use smallest_core::{Error, TimeoutPhase};
use tungstenite::{Error as WsError, Message};

use crate::{ReadError, from_tungstenite, read_error, to_tungstenite};

/// A timer future, boxed.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The opening of a new connection, boxed: its two halves.
pub type Connecting<T> = Pin<
    Box<
        dyn Future<Output = Result<(<T as Transport>::Write, <T as Transport>::Read), Error>>
            + Send,
    >,
>;

/// What an async transport gives the engine: the halves of its WebSocket and a timer.
pub trait Transport: Send + Sync + 'static {
    /// The write half.
    type Write: Sink<Message, Error = WsError> + Unpin + Send + 'static;
    /// The read half.
    type Read: Stream<Item = Result<Message, WsError>> + Unpin + Send + 'static;

    /// A future that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;

    /// Opens a new connection with this upgrade request (a session that reconnects
    /// or redials), within the client's connect limit.
    fn connect(&self, request: http::Request<()>, upgrade: Upgrade) -> Connecting<Self>;

    /// The client's settings (the key the new handshake carries).
    fn config(&self) -> &smallest_core::Config;
}

/// A core live session the engine can drive: its verbs, movable between threads.
pub trait Session: LiveSession<Event: Send + 'static> + Send + 'static {}

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

/// What both halves share: the driver, the write half, the timer.
pub struct Conn<S: Session, T: Transport> {
    driver: Mutex<LiveDriver<S>>,
    write: AsyncMutex<T::Write>,
    wake: Wake,
    transport: T,
}

impl<S: Session, T: Transport> Conn<S, T> {
    /// The halves of a connection: the shared part (for the senders) and the receiver.
    pub fn open(
        write: T::Write,
        read: T::Read,
        driver: LiveDriver<S>,
        transport: T,
    ) -> (Arc<Self>, Receiver<S, T>) {
        let conn = Arc::new(Conn {
            driver: Mutex::new(driver),
            write: AsyncMutex::new(write),
            wake: Wake::default(),
            transport,
        });
        let reader = Reader {
            conn: conn.clone(),
            read,
        };
        (
            conn,
            Receiver {
                reader: Some(reader),
                pending: None,
            },
        )
    }

    /// Runs `f` on the driver (never across an `.await`).
    fn drive<R>(&self, f: impl FnOnce(&mut LiveDriver<S>) -> R) -> R {
        f(&mut self.driver.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` on the session.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.drive(|d| f(d.session_mut()))
    }

    /// Keepalive pings after `interval` without client traffic (`None`: off); the
    /// receiver is woken to recompute its deadline.
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.with(|s| s.set_keepalive(interval));
        self.wake.notify();
    }

    /// A sender verb: update the session, then write what it queued.
    pub async fn act<R>(
        &self,
        f: impl FnOnce(&mut S, Instant) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let out = self.with(|s| f(s, Instant::now()))?;
        if self.drive(|d| d.is_disconnected()) {
            // The receiver opens the new connection; the frames wait for it.
            self.wake.notify();
            return Ok(out);
        }
        let mut write = self.write.lock().await;
        if let Err(e) = self.write_queued(&mut write).await {
            // A session that reconnects replays what was sent: the verb succeeded.
            self.drive(|d| d.handle_write_failure(e, Instant::now()))?;
            self.wake.notify();
        }
        Ok(out)
    }

    /// Writes every frame the driver has, in order, then flushes, within the write
    /// limit.
    async fn write_queued(&self, write: &mut T::Write) -> Result<(), Error> {
        let limit = self.drive(|d| d.write_limit());
        let writing = async {
            let mut wrote = false;
            while self.drive(|d| d.has_outgoing()) {
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
        self.within(limit, writing)
            .await?
            .map_err(|e| crate::write_error(e, limit))
    }

    /// Flushes what tungstenite queued itself (pongs, the answer to a close) within
    /// `limit`: a server that never reads fails the session instead of growing it.
    async fn flush(&self, limit: Duration) -> Result<(), Error> {
        let flushing = async {
            let mut write = self.write.lock().await;
            poll_fn(|cx| Pin::new(&mut *write).poll_flush(cx)).await
        };
        self.within(limit, flushing)
            .await?
            .map_err(|e| crate::write_error(e, limit))
    }

    /// `future` within `limit` (an idle-phase timeout). The timer is made only when the
    /// future has to wait; once it exists it is asked first: a write that did not finish
    /// by the deadline on its own wake-ups has stalled.
    async fn within<F: Future>(&self, limit: Duration, future: F) -> Result<F::Output, Error> {
        let deadline = Instant::now() + limit;
        let mut future = std::pin::pin!(future);
        let mut timer: Option<Sleep> = None;
        poll_fn(|cx| {
            if let Some(timer) = &mut timer
                && timer.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Err(Error::Timeout {
                    phase: TimeoutPhase::Idle,
                    limit,
                }));
            }
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            if timer.is_none() {
                let mut armed = self.transport.sleep_until(deadline);
                if armed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(Error::Timeout {
                        phase: TimeoutPhase::Idle,
                        limit,
                    }));
                }
                timer = Some(armed);
            }
            Poll::Pending
        })
        .await
    }
}

/// The reading side: reads and feeds the driver, sleeps until its timeout.
struct Reader<S: Session, T: Transport> {
    conn: Arc<Conn<S, T>>,
    read: T::Read,
}

/// What woke the receiver.
enum Woke {
    Read(Option<Result<Message, WsError>>),
    Timeout,
    Notified,
}

impl<S: Session, T: Transport> Reader<S, T> {
    async fn next(&mut self) -> Option<Result<S::Event, Error>> {
        let conn = self.conn.clone();
        loop {
            let (item, outgoing) = conn.drive(|d| (d.poll_item(), d.has_outgoing()));
            match item {
                Some(LiveItem::Event(event)) => return Some(Ok(event)),
                Some(LiveItem::Error(error)) => return Some(Err(error)),
                Some(LiveItem::End) => return None,
                Some(LiveItem::Connect) => {
                    self.reconnect().await;
                    continue;
                }
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
            let (deadline, disconnected) =
                conn.drive(|d| (d.poll_timeout(Instant::now()), d.is_disconnected()));
            // The timer is made only when the read has to wait.
            let mut timer: Option<Sleep> = None;
            let woke = poll_fn(|cx| {
                // Between connections the old read half is not read.
                if !disconnected
                    && let Poll::Ready(message) = Pin::new(&mut self.read).poll_next(cx)
                {
                    return Poll::Ready(Woke::Read(message));
                }
                if let Some(deadline) = deadline {
                    let timer = timer.get_or_insert_with(|| conn.transport.sleep_until(deadline));
                    if timer.as_mut().poll(cx).is_ready() {
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

    /// Opens the new connection the session asked for and puts it in place of the
    /// old one (dropped with its halves).
    async fn reconnect(&mut self) {
        let conn = self.conn.clone();
        let handshake = conn.drive(|d| d.handshake(conn.transport.config(), crate::nonce16()));
        let opened = match handshake {
            Ok((request, upgrade)) => conn.transport.connect(request, upgrade).await,
            Err(e) => Err(e),
        };
        match opened {
            Ok((write, read)) => {
                *conn.write.lock().await = write;
                self.read = read;
                conn.drive(|d| d.handle_connected(Instant::now()));
            }
            Err(e) => conn.drive(|d| d.handle_connect_failed(e, Instant::now())),
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

type Next<S, T> = (
    Reader<S, T>,
    Option<Result<<S as LiveSession>::Event, Error>>,
);

/// The stored `next` of a receiver.
type Pending<S, T> = Pin<Box<dyn Future<Output = Next<S, T>> + Send>>;

/// The receiving half: the reader's `next` runs as one stored future, so a cancelled
/// `recv` resumes where it stopped instead of losing a frame.
pub struct Receiver<S: Session, T: Transport> {
    reader: Option<Reader<S, T>>,
    pending: Option<Pending<S, T>>,
}

impl<S: Session, T: Transport> Receiver<S, T> {
    /// The next event, or `None` after the `Closed` event.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<S::Event, Error>>> {
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

/// `recv`, `Stream` and `Debug` of a transport's receiver type `$receiver` (a struct
/// with an `inner: smallest_net::live::Receiver<..>` field) of `$event`s.
#[macro_export]
macro_rules! receiver_impls {
    ($receiver:ident, $event:ty) => {
        impl $receiver {
            /// The next event, or `None` after the `Closed` event. Cancel-safe.
            pub async fn recv(&mut self) -> Option<Result<$event, Error>> {
                std::future::poll_fn(|cx| self.inner.poll_next(cx)).await
            }
        }

        impl futures_core::Stream for $receiver {
            type Item = Result<$event, Error>;

            fn poll_next(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
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
