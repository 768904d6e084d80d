//! The executor, reached through one small trait in the shape of quinn's `Runtime`:
//! open a TCP connection, make a timer. Nothing else of the executor is used — not even
//! spawning: every connection is driven by the call that uses it, on the caller's task.
//! The rest: every decision is the core's, the HTTP, TLS and WebSocket code is
//! executor-neutral (hyper's connection API, futures-rustls, async-tungstenite, all
//! over `futures-io`).
//!
//! Implement [`Runtime`] for an executor of your own in a few lines: see
//! `docs/custom-runtime.md` and the `thread_runtime` example of this crate, which runs
//! the whole client on `futures::executor` with a thread per connection.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use smallest_core::{Error, TimeoutPhase};

/// A boxed future the runtime can run on any thread.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A byte stream of the runtime (a TCP connection): futures-io's traits, `Send`.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncIo for T {}

/// What the client needs of an executor.
///
/// - [`connect`](Self::connect): a TCP connection to `host:port` (resolving the name;
///   set `TCP_NODELAY`: live sessions send small frames). The client bounds it with its
///   connect limit.
/// - [`new_timer`](Self::new_timer): a timer that fires at an instant, and can be reset.
///
/// Nothing is spawned: a call, a stream or a live session moves its connection's bytes
/// on the task that polls it.
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// Opens a TCP connection to `host:port`.
    fn connect(&self, host: &str, port: u16) -> BoxFuture<io::Result<Box<dyn AsyncIo>>>;

    /// A timer that fires at `deadline`.
    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>>;
}

/// A timer of a [`Runtime`].
pub trait AsyncTimer: Send + fmt::Debug + 'static {
    /// Moves the timer to `deadline` (earlier or later).
    fn reset(self: Pin<&mut Self>, deadline: Instant);

    /// Ready once the deadline has passed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// A timer as a future.
pub(crate) struct Sleep(Pin<Box<dyn AsyncTimer>>);

impl Sleep {
    pub(crate) fn until(rt: &dyn Runtime, deadline: Instant) -> Sleep {
        Sleep(rt.new_timer(deadline))
    }

    pub(crate) fn after(rt: &dyn Runtime, delay: Duration) -> Sleep {
        Sleep::until(rt, far_or(Instant::now().checked_add(delay)))
    }

    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.0.as_mut().reset(deadline);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// An instant that does not overflow: `at`, or a year from now.
pub(crate) fn far_or(at: Option<Instant>) -> Instant {
    at.unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600))
}

/// `future`, unless `limit` passes first: then [`Error::Timeout`] of `phase`.
pub(crate) async fn with_limit<F: Future>(
    rt: &dyn Runtime,
    limit: Option<Duration>,
    phase: TimeoutPhase,
    future: F,
) -> Result<F::Output, Error> {
    let Some(limit) = limit else {
        return Ok(future.await);
    };
    let deadline = far_or(Instant::now().checked_add(limit));
    race(rt, future, deadline)
        .await
        .ok_or(Error::Timeout { phase, limit })
}

/// `future`, or `None` once `deadline` passed first. The timer is made only when the
/// future has to wait (a write that completes at once costs no timer: a reactor's
/// timers are not free). Once it exists it is asked first: a future that did not
/// finish by the deadline on its own wake-ups has run out of time, even if polling it
/// once more would now succeed.
pub(crate) async fn race<F: Future>(
    rt: &dyn Runtime,
    future: F,
    deadline: Instant,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer: Option<Sleep> = None;
    std::future::poll_fn(|cx| {
        if let Some(timer) = &mut timer
            && Pin::new(timer).poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if timer.is_none() {
            let mut armed = Sleep::until(rt, deadline);
            if Pin::new(&mut armed).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            timer = Some(armed);
        }
        Poll::Pending
    })
    .await
}

#[cfg(feature = "tokio")]
pub use self::tokio_runtime::TokioRuntime;

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use super::*;

    /// The [`Runtime`] of a tokio runtime (its handle: connections and timers belong
    /// to it whichever thread creates them).
    #[derive(Clone, Debug)]
    pub struct TokioRuntime(tokio::runtime::Handle);

    impl TokioRuntime {
        /// The runtime the caller runs in.
        ///
        /// # Errors
        /// [`Error::Config`] outside a tokio runtime.
        pub fn current() -> Result<Self, Error> {
            tokio::runtime::Handle::try_current()
                .map(TokioRuntime)
                .map_err(|e| Error::Config(format!("no tokio runtime here: {e}").into()))
        }

        /// The runtime of `handle`.
        pub fn from_handle(handle: tokio::runtime::Handle) -> Self {
            TokioRuntime(handle)
        }
    }

    impl Runtime for TokioRuntime {
        fn connect(&self, host: &str, port: u16) -> BoxFuture<io::Result<Box<dyn AsyncIo>>> {
            let host = host.to_owned();
            let handle = self.0.clone();
            Box::pin(async move {
                let connecting = {
                    let _context = handle.enter();
                    tokio::net::TcpStream::connect((host, port))
                };
                let tcp = connecting.await?;
                tcp.set_nodelay(true)?;
                Ok(Box::new(Compat(tcp)) as Box<dyn AsyncIo>)
            })
        }

        fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
            let _context = self.0.enter();
            Box::pin(TokioTimer(Box::pin(tokio::time::sleep_until(
                deadline.into(),
            ))))
        }
    }

    #[derive(Debug)]
    struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

    impl AsyncTimer for TokioTimer {
        fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
            self.0.as_mut().reset(deadline.into());
        }

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.as_mut().poll(cx)
        }
    }

    /// A tokio stream with futures-io's traits.
    struct Compat(tokio::net::TcpStream);

    impl AsyncRead for Compat {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let mut read = tokio::io::ReadBuf::new(buf);
            std::task::ready!(tokio::io::AsyncRead::poll_read(
                Pin::new(&mut self.0),
                cx,
                &mut read
            ))?;
            Poll::Ready(Ok(read.filled().len()))
        }
    }

    impl AsyncWrite for Compat {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
        }
    }
}

#[cfg(feature = "smol")]
pub use self::smol_runtime::SmolRuntime;

#[cfg(feature = "smol")]
mod smol_runtime {
    use super::*;

    /// The [`Runtime`] of smol: `smol::net` connections and `smol::Timer`s.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct SmolRuntime;

    impl Runtime for SmolRuntime {
        fn connect(&self, host: &str, port: u16) -> BoxFuture<io::Result<Box<dyn AsyncIo>>> {
            let host = host.to_owned();
            Box::pin(async move {
                let tcp = smol::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                Ok(Box::new(tcp) as Box<dyn AsyncIo>)
            })
        }

        fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
            Box::pin(SmolTimer(smol::Timer::at(deadline)))
        }
    }

    #[derive(Debug)]
    struct SmolTimer(smol::Timer);

    impl AsyncTimer for SmolTimer {
        fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
            self.0.set_at(deadline);
        }

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            Pin::new(&mut self.0).poll(cx).map(|_| ())
        }
    }
}
