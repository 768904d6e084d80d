//! Streaming on tokio: text-to-speech over Server-Sent Events (`POST /waves/v1/tts/live`)
//! and speech-to-text uploads streamed from a file or any `AsyncRead`, both in constant
//! memory.
//!
//! All protocol logic is the core's ([`smallest_core::tts_stream`]): this module only
//! moves bytes, keeps time and never lets a cut stream pass for a complete one. It spawns
//! no tasks: an [`AudioStream`] polls the hyper body itself, on the caller's task.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use smallest_core::tts::ResponseInfo;
use smallest_core::tts_stream::{TtsStreamDecoder, TtsStreamRequest, TtsStreamStart};
use smallest_core::{AudioChunk, BoxError};
use tokio::io::{AsyncRead, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use crate::{
    Audio, Client, Endpoint, Error, OutputFormat, TimeoutPhase, TranscribeRequest, Transcription,
    TtsPermit, TtsRequest, classify, with_limit,
};
use smallest_core::audio::WavSizes;
pub use smallest_core::stt::Progress;

/// How much of a file or reader one frame of an upload carries.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Called with the [`Progress`] of an upload, on the connection's task, after each piece
/// of the upload is handed over: keep it quick.
pub type ProgressHook = Arc<dyn Fn(Progress) + Send + Sync>;

impl Client {
    /// `POST /waves/v1/tts/live`: synthesizes speech and returns its audio as it is
    /// generated, as an [`AudioStream`] of [`AudioChunk`]s.
    ///
    /// First waits for a TTS slot ([`TtsLimiter`](crate::TtsLimiter)); the stream holds
    /// it until it ends or is dropped. The request is retried under the client's
    /// [`RetryPolicy`](crate::RetryPolicy) until the response head says 2xx; once the
    /// stream is returned nothing is retried. The response limit covers the wait for the
    /// head, the idle limit each gap between two pieces of the body, and the total
    /// limit the whole exchange of the attempt that succeeded, body included.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use smallest_hyper::{Client, OutputFormat, TtsRequest};
    ///
    /// # async fn run() -> Result<(), smallest_hyper::Error> {
    /// let client = Client::from_env()?;
    /// let request = TtsRequest::new("Hello, streaming.", "meher").output_format(OutputFormat::Pcm);
    /// let mut stream = client.synthesize_stream(&request).await?;
    /// while let Some(chunk) = stream.next().await {
    ///     let chunk = chunk?; // a cut stream ends with an error, never early
    ///     println!("{} bytes at offset {}", chunk.len(), chunk.offset_bytes());
    /// }
    /// println!("first audio after {:?}", stream.time_to_first_chunk());
    /// # Ok(()) }
    /// ```
    pub async fn synthesize_stream(&self, request: &TtsRequest) -> Result<AudioStream, Error> {
        let started = Instant::now();
        let stream_request = TtsStreamRequest::new(request.clone());
        // Refuse an invalid request before queueing for a slot.
        stream_request.prepare(&self.inner.config)?;
        let slot = self.inner.tts_slots.acquire().await;
        // Retried only until the head says 2xx: nothing has reached the user before that.
        let (body, decoder, deadline) = self
            .retrying(|| self.open_tts_stream(&stream_request))
            .await?;
        Ok(AudioStream::new(
            body,
            decoder,
            started,
            self.inner.timeouts.idle,
            deadline,
            slot,
        ))
    }

    /// One attempt: sends the request and reads the head. A 2xx event stream comes back
    /// with its decoder and the attempt's total deadline; anything else is an error.
    async fn open_tts_stream(
        &self,
        request: &TtsStreamRequest,
    ) -> Result<
        (
            Incoming,
            TtsStreamDecoder,
            Option<(Duration, tokio::time::Instant)>,
        ),
        Error,
    > {
        let timeouts = self.inner.timeouts;
        let deadline = timeouts
            .total
            .and_then(|limit| Some((limit, tokio::time::Instant::now().checked_add(limit)?)));
        let exchange = async {
            let http_request = request.prepare(&self.inner.config)?;
            let pending = self.inner.http.request(http_request.map(crate::full_body));
            let response = with_limit(timeouts.response, TimeoutPhase::ResponseHead, pending)
                .await?
                .map_err(|e| classify(e, timeouts.connect))?;
            let (parts, mut body) = response.into_parts();
            match request.start(&parts) {
                TtsStreamStart::Stream(decoder) => Ok((body, decoder)),
                TtsStreamStart::Failed(failed) => {
                    let evidence = read_at_most(&mut body, failed.max_body_bytes(), timeouts.idle)
                        .await
                        .unwrap_or_else(|(partial, _)| partial);
                    Err(failed.into_error(&evidence))
                }
            }
        };
        let (body, decoder) = match deadline {
            None => exchange.await?,
            Some((limit, at)) => {
                tokio::time::timeout_at(at, exchange)
                    .await
                    .map_err(|_| Error::Timeout {
                        phase: TimeoutPhase::Total,
                        limit,
                    })??
            }
        };
        Ok((body, decoder, deadline))
    }

    /// `POST /waves/v1/stt/`: transcribes an audio file, streamed from disk: its length
    /// is read from the file's metadata and sent as `Content-Length`, and the file is
    /// never held in memory whole.
    ///
    /// `request` is a template: its model, language and options are used and its
    /// `source` is ignored, except for a `content_type` set on a bytes source (make the
    /// template with `TranscribeRequest::from_bytes(Vec::new(), language)`). Without
    /// one, the type is guessed from the file's extension (`audio/wav`, `audio/mpeg`,
    /// `audio/flac`, `audio/ogg`, `audio/mp4`, `audio/webm`; else
    /// `application/octet-stream`).
    ///
    /// A file can be read again, so a failed upload is retried under the client's
    /// [`RetryPolicy`](crate::RetryPolicy) (reopening the file each time; `progress`
    /// then starts again from 0). `progress` is called as the bytes are handed to the
    /// connection, and reaches `sent == total` when the whole file was.
    pub async fn transcribe_file(
        &self,
        path: impl AsRef<Path>,
        request: &TranscribeRequest,
        progress: Option<ProgressHook>,
    ) -> Result<Transcription, Error> {
        let path = path.as_ref();
        let content_type = request.upload_content_type(Some(path));
        // A path can be reopened, so the whole upload is retried like any call.
        self.retrying(|| async {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| file_error(path, e))?;
            let len = file
                .metadata()
                .await
                .map_err(|e| file_error(path, e))?
                .len();
            self.upload(file, Some(len), request, &content_type, progress.clone())
                .await
        })
        .await
    }

    /// `POST /waves/v1/stt/`: transcribes audio streamed from `reader`, `len` bytes of
    /// it when the length is known (sent as `Content-Length`; exactly `len` bytes are
    /// read), otherwise with chunked transfer until the reader ends.
    ///
    /// `request` is a template, as for [`transcribe_file`](Self::transcribe_file)
    /// (`application/octet-stream` unless it sets a content type). A reader cannot be
    /// rewound, so the upload is never retried.
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
        let content_type = request.upload_content_type(None);
        self.upload(reader, len, request, &content_type, progress)
            .await
    }

    /// One upload attempt.
    async fn upload<R: AsyncRead + Send + 'static>(
        &self,
        reader: R,
        len: Option<u64>,
        request: &TranscribeRequest,
        content_type: &str,
        progress: Option<ProgressHook>,
    ) -> Result<Transcription, Error> {
        let config = &self.inner.config;
        let mut head = request.upload_head(config, len, Some(content_type))?;
        config.apply_headers(&mut head, true);
        let timeouts = self.inner.timeouts;
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
        let failure = Arc::new(Mutex::new(None));
        let body = UploadBody {
            reader: Box::pin(reader),
            buf: BytesMut::new(),
            sent: 0,
            total: len,
            progress,
            failure: failure.clone(),
            on_end: Some(sent_tx),
            done: false,
        };
        let http_request = head.map(|()| body.boxed_unsync());
        let exchange = async {
            let mut pending = std::pin::pin!(self.inner.http.request(http_request));
            // The response limit starts once the upload is sent, not while it is sent
            // (unless the server answers early, e.g. a 413 before reading the body).
            let mut sent_rx = sent_rx;
            let early = poll_fn(|cx| {
                if let Poll::Ready(result) = pending.as_mut().poll(cx) {
                    return Poll::Ready(Some(result));
                }
                Pin::new(&mut sent_rx).poll(cx).map(|_| None)
            })
            .await;
            let response = match early {
                Some(result) => result,
                None => with_limit(timeouts.response, TimeoutPhase::ResponseHead, pending).await?,
            };
            let response = response.map_err(|e| {
                let failed_read = failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                match failed_read {
                    Some(read) => Error::transport(true, read),
                    None => classify(e, timeouts.connect),
                }
            })?;
            let (parts, mut body) = response.into_parts();
            let body = read_at_most(&mut body, usize::MAX, timeouts.idle)
                .await
                .map_err(|(_, e)| e)?;
            Ok::<_, Error>(Response::from_parts(parts, Bytes::from(body)))
        };
        let response = with_limit(timeouts.total, TimeoutPhase::Total, exchange).await??;
        request.from_http_response(response)
    }
}

/// Reads at most `max` bytes of `body` with the idle limit between frames. `Err` carries
/// what arrived before the body failed or stalled, and why.
async fn read_at_most(
    body: &mut Incoming,
    max: usize,
    idle: Option<Duration>,
) -> Result<Vec<u8>, (Vec<u8>, Error)> {
    let mut out = Vec::new();
    while out.len() < max {
        match with_limit(idle, TimeoutPhase::Idle, body.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    let room = max - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Ok(Some(Err(e))) => return Err((out, Error::transport(true, e))),
            Err(timeout) => return Err((out, timeout)),
        }
    }
    Ok(out)
}

/// A local file that cannot be read: nothing was sent.
fn file_error(path: &Path, e: io::Error) -> Error {
    Error::transport(
        false,
        io::Error::new(
            e.kind(),
            format!("cannot read the upload {}: {e}", path.display()),
        ),
    )
}

/// A failure to write the audio where the caller asked (a file, a socket …).
fn output_error(e: io::Error) -> Error {
    Error::transport(
        true,
        io::Error::new(e.kind(), format!("cannot write the audio: {e}")),
    )
}

/// The request body of a streamed upload: reads `UPLOAD_CHUNK` bytes at a time, only
/// when hyper asks for more (so at most a few chunks are ever in memory), counts them,
/// and reports progress.
struct UploadBody {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    buf: BytesMut,
    sent: u64,
    total: Option<u64>,
    progress: Option<ProgressHook>,
    /// Why reading the source failed, for the error the caller sees (hyper's only says
    /// the body failed).
    failure: Arc<Mutex<Option<io::Error>>>,
    /// Told when the whole body was handed over.
    on_end: Option<tokio::sync::oneshot::Sender<()>>,
    done: bool,
}

impl UploadBody {
    fn fail(&mut self, e: io::Error) -> BoxError {
        self.done = true;
        let message = format!("reading the upload failed after {} bytes: {e}", self.sent);
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(io::Error::new(e.kind(), message.clone()));
        io::Error::new(e.kind(), message).into()
    }

    fn end(&mut self) {
        self.done = true;
        if let Some(tx) = self.on_end.take() {
            let _ = tx.send(());
        }
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let want = match this.total {
            Some(total) if this.sent >= total => {
                this.end();
                return Poll::Ready(None);
            }
            Some(total) => {
                UPLOAD_CHUNK.min(usize::try_from(total - this.sent).unwrap_or(usize::MAX))
            }
            None => UPLOAD_CHUNK,
        };
        this.buf.clear();
        this.buf.resize(want, 0);
        let mut read_buf = ReadBuf::new(&mut this.buf[..]);
        match this.reader.as_mut().poll_read(cx, &mut read_buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(this.fail(e)))),
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n == 0 {
                    if let Some(total) = this.total {
                        let e = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the source ended before its declared length of {total} bytes"),
                        );
                        return Poll::Ready(Some(Err(this.fail(e))));
                    }
                    this.end();
                    return Poll::Ready(None);
                }
                this.buf.truncate(n);
                let data = this.buf.split().freeze();
                this.sent += n as u64;
                if let Some(progress) = &this.progress {
                    progress(Progress::new(this.sent, this.total));
                }
                if this.total == Some(this.sent) {
                    this.end();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.total {
            Some(total) => SizeHint::with_exact(total.saturating_sub(self.sent)),
            None => SizeHint::default(),
        }
    }
}

/// Where an [`AudioStream`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading the body.
    Streaming,
    /// The body ended: the decoder says whether the audio is complete.
    Finishing,
    /// Complete, or failed (the error was returned).
    Done,
}

/// A limit and the timer that enforces it.
struct Timer {
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

/// The audio of [`Client::synthesize_stream`], chunk by chunk, as the server generates it.
///
/// A [`Stream`] of `Result<AudioChunk, Error>` that polls the response body itself (no
/// spawned task): bytes are decoded as they arrive and handed over at once, so memory
/// stays flat however long the audio is. The stream ends (`None`) only after the
/// server's `done` frame; a body cut before it, a connection failure
/// ([`Error::Transport`] with `request_sent: true`), a gap longer than the idle limit
/// ([`Error::Timeout`] with [`TimeoutPhase::Idle`]), the total limit, or an error frame
/// from the server is an `Err` item, after which the stream ends. Dropping the stream
/// closes the connection and frees the TTS slot.
///
/// Besides polling it, [`collect`](Self::collect) it, copy it with
/// [`write_to`](Self::write_to), save it as WAV with [`write_wav`](Self::write_wav) or
/// [`save_wav`](Self::save_wav), or read it with
/// [`into_async_read`](Self::into_async_read).
pub struct AudioStream {
    body: Incoming,
    decoder: TtsStreamDecoder,
    phase: Phase,
    idle: Option<Timer>,
    total: Option<Timer>,
    /// The idle timer runs: the last poll of the body was `Pending`.
    waiting: bool,
    started: Instant,
    first_chunk: Option<Duration>,
    slot: Option<TtsPermit>,
}

impl AudioStream {
    fn new(
        body: Incoming,
        decoder: TtsStreamDecoder,
        started: Instant,
        idle: Option<Duration>,
        deadline: Option<(Duration, tokio::time::Instant)>,
        slot: TtsPermit,
    ) -> Self {
        AudioStream {
            body,
            decoder,
            phase: Phase::Streaming,
            idle: idle.map(|limit| Timer {
                limit,
                sleep: Box::pin(tokio::time::sleep(limit)),
            }),
            total: deadline.map(|(limit, at)| Timer {
                limit,
                sleep: Box::pin(tokio::time::sleep_until(at)),
            }),
            waiting: false,
            started,
            first_chunk: None,
            slot: Some(slot),
        }
    }

    /// The response's ids (`X-Request-Id` …) and content-expiry answer.
    pub fn info(&self) -> &ResponseInfo {
        self.decoder.info()
    }

    /// The encoding of the audio (what was asked for).
    pub fn format(&self) -> OutputFormat {
        self.decoder.format()
    }

    /// Samples per second (what was asked for).
    pub fn sample_rate(&self) -> u32 {
        self.decoder.sample_rate()
    }

    /// How long it took from the call to [`Client::synthesize_stream`] (waiting for a
    /// TTS slot included) to the first chunk handed over; `None` before it.
    pub fn time_to_first_chunk(&self) -> Option<Duration> {
        self.first_chunk
    }

    /// How many audio bytes were handed over so far.
    pub fn audio_bytes(&self) -> u64 {
        self.decoder.audio_bytes()
    }

    /// Whether the stream ended with the server's `done` frame: all the audio arrived.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Done && self.decoder.is_done() && !self.decoder.is_failed()
    }

    /// The next chunk: what [`StreamExt::next`](futures_core::Stream) returns, without
    /// needing a futures crate.
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
        Ok(Audio::new(
            data.freeze(),
            self.format(),
            self.sample_rate(),
            self.info().clone(),
        ))
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

    /// Writes the audio as a WAV file into `out` (a file, or anything seekable) as it
    /// arrives, and returns the file's length. `pcm`, `ulaw` and `alaw` get a 44-byte
    /// header first, `wav` keeps the server's; the header's sizes are written as
    /// `0xFFFFFFFF` placeholders, then patched (by seeking back) once the stream is
    /// complete. MP3 is refused before anything is written. On an error the file keeps
    /// the placeholders.
    pub async fn write_wav<W>(mut self, mut out: W) -> Result<u64, Error>
    where
        W: AsyncWrite + AsyncSeek + Unpin,
    {
        let (header, mut sizes) = WavSizes::start(self.format(), self.sample_rate())?;
        let start = out.stream_position().await.map_err(output_error)?;
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
    /// audio into it.
    pub async fn save_wav(self, path: impl AsRef<Path>) -> Result<u64, Error> {
        // Refuse MP3 before creating the file.
        WavSizes::start(self.format(), self.sample_rate())?;
        let file = tokio::fs::File::create(path.as_ref())
            .await
            .map_err(output_error)?;
        self.write_wav(file).await
    }

    /// The raw audio bytes as a [`tokio::io::AsyncRead`]. A stream error becomes an
    /// [`io::Error`] (kind `TimedOut` for a time limit, `UnexpectedEof` for a cut
    /// stream, `Other` otherwise) whose inner error is the [`Error`]: get it back with
    /// `e.get_ref().and_then(|e| e.downcast_ref::<smallest_hyper::Error>())`.
    pub fn into_async_read(self) -> AudioReader {
        AudioReader {
            stream: self,
            current: Bytes::new(),
        }
    }

    fn deliver(&mut self, chunk: AudioChunk) -> AudioChunk {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(self.started.elapsed());
        }
        chunk
    }

    /// The stream is over: free the slot now rather than when the stream is dropped.
    fn end(&mut self) {
        self.phase = Phase::Done;
        self.slot = None;
        self.idle = None;
        self.total = None;
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<AudioChunk, Error>>> {
        self.end();
        Poll::Ready(Some(Err(error)))
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<AudioChunk, Error>>> {
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Finishing => {
                    return match self.decoder.finish() {
                        Ok(Some(chunk)) => Poll::Ready(Some(Ok(self.deliver(chunk)))),
                        Ok(None) => {
                            self.end();
                            Poll::Ready(None)
                        }
                        Err(e) => self.fail(e),
                    };
                }
                Phase::Streaming => {}
            }
            match self.decoder.next_chunk() {
                Some(Ok(chunk)) => return Poll::Ready(Some(Ok(self.deliver(chunk)))),
                Some(Err(e)) => return self.fail(e),
                None => {}
            }
            if let Some(total) = &mut self.total
                && total.sleep.as_mut().poll(cx).is_ready()
            {
                let limit = total.limit;
                return self.fail(Error::Timeout {
                    phase: TimeoutPhase::Total,
                    limit,
                });
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => self.phase = Phase::Finishing,
                Poll::Ready(Some(Err(e))) => return self.fail(Error::transport(true, e)),
                Poll::Ready(Some(Ok(frame))) => {
                    self.waiting = false;
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                    }
                }
                Poll::Pending => {
                    // The idle limit measures the server's silence, not the caller's: it
                    // starts when the body has nothing ready, not when a chunk was read.
                    if let Some(idle) = &mut self.idle {
                        if !self.waiting {
                            // A limit too large to add (Duration::MAX) means none.
                            let now = tokio::time::Instant::now();
                            let at = now.checked_add(idle.limit).unwrap_or_else(|| {
                                now + Duration::from_secs(60 * 60 * 24 * 365 * 30)
                            });
                            idle.sleep.as_mut().reset(at);
                            self.waiting = true;
                        }
                        if idle.sleep.as_mut().poll(cx).is_ready() {
                            let limit = idle.limit;
                            return self.fail(Error::Timeout {
                                phase: TimeoutPhase::Idle,
                                limit,
                            });
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Stream for AudioStream {
    type Item = Result<AudioChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.phase {
            Phase::Done => (0, Some(0)),
            _ => (0, None),
        }
    }
}

impl fmt::Debug for AudioStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioStream")
            .field("format", &self.format())
            .field("sample_rate", &self.sample_rate())
            .field("info", self.info())
            .field("phase", &self.phase)
            .field("chunks", &self.decoder.chunks())
            .field("audio_bytes", &self.decoder.audio_bytes())
            .field("time_to_first_chunk", &self.first_chunk)
            .finish_non_exhaustive()
    }
}

/// The raw audio of an [`AudioStream`] as a [`tokio::io::AsyncRead`] (see
/// [`AudioStream::into_async_read`]).
pub struct AudioReader {
    stream: AudioStream,
    current: Bytes,
}

impl AudioReader {
    /// The stream being read (for its [`info`](AudioStream::info) and timings).
    pub fn stream(&self) -> &AudioStream {
        &self.stream
    }
}

impl AsyncRead for AudioReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        while this.current.is_empty() {
            match ready!(this.stream.poll_chunk(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(chunk)) => this.current = chunk.into_data(),
                Some(Err(e)) => return Poll::Ready(Err(io::Error::from(e))),
            }
        }
        let n = buf.remaining().min(this.current.len());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn streams_and_uploads_can_move_between_tasks() {
        assert_send::<AudioStream>();
        assert_send::<AudioReader>();
        assert_send::<UploadBody>();
        fn shared<T: Send + Sync>() {}
        shared::<Client>();
        // The futures of the new calls can be spawned (created, never polled).
        fn spawnable<F: Future + Send>(_: &F) {}
        let config = crate::Config::new(crate::ApiKey::new("sk_test_0123456789abcdef").unwrap());
        let client = Client::new(config).unwrap();
        let tts = TtsRequest::new("a", "meher");
        spawnable(&client.synthesize_stream(&tts));
        let template = TranscribeRequest::from_bytes(Vec::new(), crate::SttLanguage::En);
        spawnable(&client.transcribe_file("a.wav", &template, None));
        spawnable(&client.transcribe_reader(tokio::io::empty(), None, &template, None));
    }

    #[test]
    fn progress_fraction() {
        let p = Progress::new(50, Some(200));
        assert_eq!(p.fraction(), Some(0.25));
        let unknown = Progress::new(5, None);
        assert_eq!(unknown.fraction(), None);
    }

    #[test]
    fn content_type_comes_from_the_template_or_the_extension() {
        let template = TranscribeRequest::from_bytes(Vec::new(), crate::SttLanguage::En);
        assert_eq!(
            &template.upload_content_type(Some(Path::new("a/b.WAV"))),
            "audio/wav"
        );
        assert_eq!(
            &template.upload_content_type(Some(Path::new("x.mp3"))),
            "audio/mpeg"
        );
        assert_eq!(
            &template.upload_content_type(None),
            "application/octet-stream"
        );
        let typed = template.content_type("audio/flac");
        assert_eq!(
            &typed.upload_content_type(Some(Path::new("x.mp3"))),
            "audio/flac"
        );
    }
}
