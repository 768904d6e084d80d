//! The HTTP bodies of the async transports, written once over `http-body`: a streamed
//! upload (one piece read only when the connection asks for more) and the polling of
//! an SSE response body into the core's [`StreamState`]. The decisions are the core's
//! ([`UploadCounter`], [`StreamState`]); each transport brings only its reader's I/O
//! trait ([`UploadSource`]) and its timer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use smallest_core::call::{ProgressHook, StreamEvent, StreamState, UploadCounter};
use smallest_core::{AudioChunk, BoxError, Error};

use crate::live::Sleep;

/// The source of an upload, in the I/O trait of its transport (tokio's or futures-io's
/// `AsyncRead`): read into `buf`, `Ok(0)` at its end.
pub trait UploadSource: Send + 'static {
    /// Reads some bytes into `buf`.
    fn poll_fill(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>;
}

/// What the exchange learns from an upload's body: why reading its source failed (the
/// connection's own error only says the body failed) and when it last took a piece.
#[derive(Clone)]
pub struct UploadWatch(Arc<Mutex<(Option<Error>, Instant)>>);

impl Default for UploadWatch {
    fn default() -> Self {
        UploadWatch(Arc::new(Mutex::new((None, Instant::now()))))
    }
}

impl UploadWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<Error>, Instant)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why reading the source failed, once.
    pub fn take(&self) -> Option<Error> {
        self.lock().0.take()
    }

    /// When the body last handed the connection a piece.
    pub fn last_progress(&self) -> Instant {
        self.lock().1
    }
}

/// Word that an upload's body was handed over whole.
#[derive(Clone, Default)]
pub struct UploadSent(Arc<Mutex<(bool, Option<Waker>)>>);

impl UploadSent {
    fn mark(&self) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = true;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }

    /// Ready once the whole body was handed over.
    pub fn poll_sent(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 {
            return Poll::Ready(());
        }
        state.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A streamed upload body: reads one piece only when the connection asks for more (so
/// at most a few pieces are ever in memory); the counter decides how much and when it
/// is complete.
pub struct UploadBody<R> {
    reader: Pin<Box<R>>,
    buf: BytesMut,
    counter: UploadCounter,
    failure: UploadWatch,
    sent: UploadSent,
}

impl<R: UploadSource> UploadBody<R> {
    /// The body of one attempt over `reader` (`len` bytes of it when known), with what
    /// the exchange watches: the end of the body and the source's failure.
    pub fn new(
        reader: R,
        len: Option<u64>,
        progress: Option<ProgressHook>,
    ) -> (Self, UploadSent, UploadWatch) {
        let sent = UploadSent::default();
        let failure = UploadWatch::default();
        let body = UploadBody {
            reader: Box::pin(reader),
            buf: BytesMut::new(),
            counter: UploadCounter::new(len, progress),
            failure: failure.clone(),
            sent: sent.clone(),
        };
        (body, sent, failure)
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let message = e.to_string();
        self.failure.lock().0 = Some(e);
        Poll::Ready(Some(Err(io::Error::other(message).into())))
    }
}

impl<R: UploadSource> Body for UploadBody<R> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let want = this.counter.want();
        if want == 0 {
            this.sent.mark();
            return Poll::Ready(None);
        }
        this.buf.clear();
        this.buf.resize(want, 0);
        match ready!(this.reader.as_mut().poll_fill(cx, &mut this.buf[..])) {
            Err(e) => {
                let e = this.counter.source_error(e);
                this.fail(e)
            }
            Ok(n) => {
                if let Err(e) = this.counter.handle_read(n) {
                    return this.fail(e);
                }
                this.failure.lock().1 = Instant::now();
                if this.counter.is_done() {
                    this.sent.mark();
                }
                if n == 0 {
                    return Poll::Ready(None);
                }
                this.buf.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.counter.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        let p = self.counter.progress();
        match p.total {
            Some(total) => SizeHint::with_exact(total.saturating_sub(p.sent)),
            None => SizeHint::default(),
        }
    }
}

/// An SSE response body read into a [`StreamState`]: the body is polled while the
/// machine asks for bytes, and one timer is armed at the instant it names.
pub struct StreamBody<B> {
    body: B,
    timer: Option<(Instant, Sleep)>,
}

impl<B> StreamBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Reads `body`.
    pub fn new(body: B) -> Self {
        StreamBody { body, timer: None }
    }

    /// The next chunk, the end, or the failure `state` decides on. `drive` runs before
    /// each read of the body (a transport that drives its connection itself does it
    /// there); `sleep_until` makes the timer.
    pub fn poll_chunk(
        &mut self,
        state: &mut StreamState,
        cx: &mut Context<'_>,
        mut drive: impl FnMut(&mut Context<'_>),
        sleep_until: impl Fn(Instant) -> Sleep,
    ) -> Poll<Option<Result<AudioChunk, Error>>> {
        loop {
            let wake = match state.poll(Instant::now()) {
                StreamEvent::Chunk(chunk) => return Poll::Ready(Some(Ok(chunk))),
                StreamEvent::End => {
                    self.timer = None;
                    return Poll::Ready(None);
                }
                StreamEvent::Fail(e) => {
                    self.timer = None;
                    return Poll::Ready(Some(Err(e)));
                }
                StreamEvent::Read(wake) => wake,
            };
            drive(cx);
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => state.handle_end(),
                Poll::Ready(Some(Err(e))) => state.handle_error(Error::transport(true, e)),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        state.handle_data(&data);
                    }
                }
                Poll::Pending => {
                    let Some(at) = wake else {
                        return Poll::Pending;
                    };
                    let timer = match &mut self.timer {
                        Some((armed, sleep)) if *armed == at => sleep,
                        slot => &mut slot.insert((at, sleep_until(at))).1,
                    };
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}
