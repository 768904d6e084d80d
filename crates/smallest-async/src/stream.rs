//! Streaming on any executor: text-to-speech over Server-Sent Events (`POST
//! /waves/v1/tts/live`) and speech-to-text uploads streamed from a file or any
//! `futures-io` reader, both in constant memory.
//!
//! The decisions are the core's machines ([`StreamState`], [`UploadCounter`]): this
//! module polls the body, arms one runtime timer at the instant the machine names and
//! feeds bytes. An [`AudioStream`] polls the hyper body itself, on the caller's task.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncSeek, AsyncWrite};
use futures_util::io::{AllowStdIo, AsyncSeekExt as _, AsyncWriteExt as _};
use hyper::body::Incoming;
use smallest_core::AudioChunk;
use smallest_core::audio::WavSizes;
use smallest_core::call::output_error;
use smallest_core::call::{Call, StreamState, UploadOp};
use smallest_net::body::{StreamBody, UploadBody, UploadSource};

use crate::runtime::{Runtime, Sleep};
use crate::{Audio, Client, Error, Outgoing, TranscribeRequest, Transcription, TtsRequest};
pub use smallest_core::call::ProgressHook;
pub use smallest_core::stt::Progress;

impl Client {
    /// `POST /waves/v1/tts/live`: synthesizes speech and returns its audio as it is
    /// generated, as an [`AudioStream`] of [`AudioChunk`]s.
    ///
    /// First waits for a TTS slot ([`TtsLimiter`](crate::TtsLimiter)); the stream holds
    /// it until it ends or is dropped. The request is retried under the client's
    /// [`RetryPolicy`](crate::RetryPolicy) until the response head says 2xx; once the
    /// stream is returned nothing is retried. The idle limit bounds each silence of the
    /// body, the total limit the whole call, body included.
    pub async fn synthesize_stream(&self, request: &TtsRequest) -> Result<AudioStream, Error> {
        let started = Instant::now();
        let call = Call::stream(
            request,
            &self.inner.config,
            &self.options,
            smallest_net::seed(),
        );
        let (decoder, body, call) = self.drive(call, |b| Ok(Outgoing::whole(b))).await?;
        let (body, lease) =
            body.ok_or_else(|| Error::Config("the stream opened without a body".into()))?;
        Ok(AudioStream {
            body: StreamBody::new(body),
            lease,
            state: call.into_stream(decoder, started),
            runtime: self.inner.runtime.clone(),
        })
    }

    /// `POST /waves/v1/stt/`: transcribes an audio file, streamed from disk: its length
    /// is read from the file's metadata and sent as `Content-Length`, and the file is
    /// never held in memory whole. The pieces are read with `std::fs` on the caller's
    /// task as the connection takes them (a local disk read; for a slow filesystem,
    /// give your runtime's async file to [`transcribe_reader`](Self::transcribe_reader)).
    ///
    /// `request` is a template: its model, language and options are used and its
    /// `source` is ignored, except for a `content_type` set on a bytes source. Without
    /// one, the type is guessed from the file's extension. A failed upload is retried
    /// under the client's [`RetryPolicy`](crate::RetryPolicy) (reopening the file;
    /// `progress` then starts again from 0).
    pub async fn transcribe_file(
        &self,
        path: impl AsRef<Path>,
        request: &TranscribeRequest,
        progress: Option<ProgressHook>,
    ) -> Result<Transcription, Error> {
        let path = path.as_ref();
        let (call, len) =
            smallest_net::file_upload(path, request, &self.inner.config, &self.options)?;
        let open = |_| {
            let file = smallest_net::open_upload(path)?;
            Ok(upload(AllowStdIo::new(file), Some(len), progress.clone()))
        };
        self.drive(call, open).await.map(|(output, _, _)| output)
    }

    /// `POST /waves/v1/stt/`: transcribes audio streamed from `reader` (any
    /// `futures-io` reader), `len` bytes of it when the length is known (sent as
    /// `Content-Length`; exactly `len` bytes are read), otherwise with chunked transfer
    /// until the reader ends. A reader cannot be rewound, so the upload is never retried.
    pub async fn transcribe_reader<R>(
        &self,
        reader: R,
        len: Option<u64>,
        request: &TranscribeRequest,
        progress: Option<ProgressHook>,
    ) -> Result<Transcription, Error>
    where
        R: AsyncRead + Send + 'static,
    {
        let seed = smallest_net::seed();
        let call = UploadOp::reader_call(request, len, &self.inner.config, &self.options, seed);
        let mut reader = Some(reader);
        let take = |_| match reader.take() {
            Some(reader) => Ok(upload(reader, len, progress.clone())),
            None => Err(Error::Config("a reader can be uploaded only once".into())),
        };
        self.drive(call, take).await.map(|(output, _, _)| output)
    }
}

/// A `futures-io` reader as the source of an upload.
struct FuturesSource<R>(Pin<Box<R>>);

impl<R: AsyncRead + Send + 'static> UploadSource for FuturesSource<R> {
    fn poll_fill(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}

/// The body of one upload attempt over `reader`.
fn upload<R: AsyncRead + Send + 'static>(
    reader: R,
    len: Option<u64>,
    progress: Option<ProgressHook>,
) -> Outgoing {
    let (body, sent, failure) = UploadBody::new(FuturesSource(Box::pin(reader)), len, progress);
    Outgoing {
        body: http_body_util::BodyExt::boxed_unsync(body),
        sent: Some(sent),
        failure,
    }
}

/// The audio of [`Client::synthesize_stream`], chunk by chunk, as the server generates it.
///
/// A [`Stream`] of `Result<AudioChunk, Error>` that polls the response body itself:
/// bytes are decoded as they arrive and handed over at once, so memory stays flat
/// however long the audio is. The stream ends (`None`) only after the server's `done`
/// frame; a body cut before it, a connection failure, a silence longer than the idle
/// limit, the total limit, or an error frame from the server is an `Err` item, after
/// which the stream ends. Dropping the stream closes the connection and frees the TTS
/// slot.
pub struct AudioStream {
    body: StreamBody<Incoming>,
    /// The stream's connection, driven while the body is polled (never reused).
    lease: crate::conn::Lease,
    state: StreamState,
    runtime: Arc<dyn Runtime>,
}

/// The stream's state, from the core: its info, format, sample rate, timings and
/// whether it is complete.
impl std::ops::Deref for AudioStream {
    type Target = StreamState;

    fn deref(&self) -> &StreamState {
        &self.state
    }
}

impl AudioStream {
    /// The next chunk: what `StreamExt::next` returns, without needing a futures crate.
    pub async fn next_chunk(&mut self) -> Option<Result<AudioChunk, Error>> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Reads the whole stream into one [`Audio`] (memory grows with the audio: prefer
    /// [`write_to`](Self::write_to) for long syntheses).
    pub async fn collect(mut self) -> Result<Audio, Error> {
        let mut data = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await {
            data.extend_from_slice(chunk?.data());
        }
        Ok(self.state.audio(data.freeze()))
    }

    /// Copies the audio into `out` as it arrives, flushes it, and returns the number of
    /// bytes written. On an error `out` holds the audio received until then.
    pub async fn write_to<W: AsyncWrite + Unpin>(mut self, mut out: W) -> Result<u64, Error> {
        let mut written = 0u64;
        while let Some(chunk) = self.next_chunk().await {
            let chunk = chunk?;
            out.write_all(chunk.data()).await.map_err(output_error)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(output_error)?;
        Ok(written)
    }

    /// Writes the audio as a WAV file into `out` (anything seekable) as it arrives, and
    /// returns the file's length: `pcm`, `ulaw` and `alaw` get a 44-byte header first,
    /// `wav` keeps the server's; the sizes are placeholders patched once the stream is
    /// complete. MP3 is refused before anything is written.
    pub async fn write_wav<W>(mut self, mut out: W) -> Result<u64, Error>
    where
        W: AsyncWrite + AsyncSeek + Unpin,
    {
        let (header, mut sizes) = WavSizes::start(self.format(), self.sample_rate())?;
        let start = out
            .seek(io::SeekFrom::Current(0))
            .await
            .map_err(output_error)?;
        if let Some(header) = header {
            out.write_all(&header).await.map_err(output_error)?;
        }
        while let Some(chunk) = self.next_chunk().await {
            let chunk = chunk?;
            out.write_all(chunk.data()).await.map_err(output_error)?;
            sizes.wrote(chunk.data());
        }
        for (at, value) in sizes.patches()? {
            out.seek(io::SeekFrom::Start(start + at))
                .await
                .map_err(output_error)?;
            out.write_all(&value).await.map_err(output_error)?;
        }
        out.seek(io::SeekFrom::Start(start + sizes.written()))
            .await
            .map_err(output_error)?;
        out.flush().await.map_err(output_error)?;
        Ok(sizes.written())
    }

    /// Creates (or truncates) the file at `path` and [`write_wav`](Self::write_wav)s the
    /// audio into it (with `std::fs`, on the caller's task).
    pub async fn save_wav(self, path: impl AsRef<Path>) -> Result<u64, Error> {
        WavSizes::start(self.format(), self.sample_rate())?;
        let file = std::fs::File::create(path.as_ref()).map_err(output_error)?;
        self.write_wav(AllowStdIo::new(file)).await
    }

    /// The raw audio bytes as a `futures-io` [`AsyncRead`]. A stream error becomes an
    /// [`io::Error`] whose inner error is the [`Error`].
    pub fn into_async_read(self) -> AudioReader {
        AudioReader {
            stream: self,
            current: Bytes::new(),
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<AudioChunk, Error>>> {
        let AudioStream {
            body,
            lease,
            state,
            runtime,
        } = self;
        body.poll_chunk(
            state,
            cx,
            |cx| lease.poll_driver(cx),
            |at| Box::pin(Sleep::until(runtime.as_ref(), at)),
        )
    }
}

impl Stream for AudioStream {
    type Item = Result<AudioChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.state.is_done() {
            (0, Some(0))
        } else {
            (0, None)
        }
    }
}

impl fmt::Debug for AudioStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioStream")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The raw audio of an [`AudioStream`] as a `futures-io` [`AsyncRead`].
pub struct AudioReader {
    stream: AudioStream,
    current: Bytes,
}

impl AudioReader {
    /// The stream being read.
    pub fn stream(&self) -> &AudioStream {
        &self.stream
    }
}

impl AsyncRead for AudioReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        while this.current.is_empty() {
            match ready!(this.stream.poll_chunk(cx)) {
                None => return Poll::Ready(Ok(0)),
                Some(Ok(chunk)) => this.current = chunk.into_data(),
                Some(Err(e)) => return Poll::Ready(Err(io::Error::from(e))),
            }
        }
        let n = buf.len().min(this.current.len());
        buf[..n].copy_from_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(n))
    }
}

impl fmt::Debug for AudioReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioReader")
            .field("stream", &self.stream)
            .field("buffered", &self.current.len())
            .finish()
    }
}
