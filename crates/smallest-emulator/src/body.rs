//! Request and response bodies: bounded reading of uploads, lingering drains, and the boxed response
//! body type every route returns.

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};

/// The body type of every emulator response.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete, in-memory response body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// How long, and how much, a rejected upload is still read (and discarded) after the response was
/// sent, so that a client still writing it sees the response instead of a connection reset (what
/// nginx calls a lingering close).
const DRAIN_TIME: Duration = Duration::from_secs(30);
const DRAIN_BYTES: u64 = 1 << 30;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// More than the limit arrived.
    TooLarge,
    /// The connection failed while reading.
    Broken,
}

/// The request body as a route sees it: read on demand, never all at once unless asked with a limit.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    consumed: u64,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming) -> Self {
        Self {
            inner: Some(inner),
            consumed: 0,
        }
    }

    /// Bytes read so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next data chunk; `None` at the end of the body.
    pub(crate) async fn chunk(&mut self) -> Option<Result<Bytes, ReadError>> {
        loop {
            let body = self.inner.as_mut()?;
            match body.frame().await {
                None => {
                    self.inner = None;
                    return None;
                }
                Some(Err(_)) => {
                    self.inner = None;
                    return Some(Err(ReadError::Broken));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.consumed += data.len() as u64;
                        return Some(Ok(data));
                    }
                }
            }
        }
    }

    /// Reads the whole body, failing as soon as it exceeds `limit` bytes.
    pub(crate) async fn read_to_limit(&mut self, limit: usize) -> Result<Bytes, ReadError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > limit {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Keeps reading (and discarding) whatever the client still sends, in the background.
    pub(crate) fn drain_in_background(mut self) {
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        tokio::spawn(async move {
            let drain = async {
                let mut seen = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(data) = frame.data_ref() {
                        seen += data.len() as u64;
                    }
                    if seen > DRAIN_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
}
