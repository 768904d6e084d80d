//! Streaming on tokio: text-to-speech over Server-Sent Events (`POST /waves/v1/tts/live`)
//! and speech-to-text uploads streamed from a file or any `AsyncRead`, both in constant
//! memory.
//!
//! The decisions are the core's machines ([`StreamState`], [`UploadCounter`]): this
//! module polls the body, arms one timer at the instant the machine names and feeds
//! bytes. It spawns no tasks: an [`AudioStream`] polls the hyper body itself, on the
//! caller's task.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use hyper::body::Incoming;
use smallest_core::AudioChunk;
use smallest_core::call::output_error;
use smallest_core::call::{Call, StreamState, UploadOp};
use smallest_net::body::{StreamBody, UploadBody, UploadSource};
use tokio::io::{AsyncRead, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::{Audio, Client, Error, Outgoing, TranscribeRequest, Transcription, TtsRequest};
use smallest_core::audio::WavSizes;
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
        let call = Call::stream(
            request,
            &self.inner.config,
            &self.options,
            smallest_net::seed(),
        );
        let (decoder, body, call) = self.drive(call, |b| Ok(Outgoing::whole(b))).await?;
        let body = body.ok_or_else(|| Error::Config("the stream opened without a body".into()))?;
        Ok(AudioStream {
            body: StreamBody::new(body),
            state: call.into_stream(decoder, started),
        })
    }

    /// `POST /waves/v1/stt/`: transcribes an audio file, streamed from disk: its length
    /// is read from the file's metadata and sent as `Content-Length`, and the file is
    /// never held in memory whole.
    ///
    /// `request` is a template: its model, language and options are used and its
    /// `source` is ignored, except for a `content_type` set on a bytes source (make the
    /// template with `TranscribeRequest::from_bytes(Vec::new(), language)`). Without
    /// one, the type is guessed from the file's extension.
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
        let (call, len) =
            smallest_net::file_upload(path, request, &self.inner.config, &self.options)?;
        let open = |_| {
            Ok(upload(
                tokio::fs::File::from_std(smallest_net::open_upload(path)?),
                Some(len),
                progress.clone(),
            ))
        };
        self.drive(call, open).await.map(|(output, _, _)| output)
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

/// A tokio reader as the source of an upload.
struct TokioSource<R>(Pin<Box<R>>);

impl<R: AsyncRead + Send + 'static> UploadSource for TokioSource<R> {
    fn poll_fill(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = ReadBuf::new(buf);
        ready!(self.0.as_mut().poll_read(cx, &mut read))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

/// The body of one upload attempt over `reader`.
fn upload<R: AsyncRead + Send + 'static>(
    reader: R,
    len: Option<u64>,
    progress: Option<ProgressHook>,
) -> Outgoing {
    let (body, sent, failure) = UploadBody::new(TokioSource(Box::pin(reader)), len, progress);
    Outgoing {
        body: http_body_util::BodyExt::boxed_unsync(body),
        sent: Some(sent),
        failure,
    }
}

/// The audio of [`Client::synthesize_stream`], chunk by chunk, as the server generates it.
///
/// A [`Stream`] of `Result<AudioChunk, Error>` that polls the response body itself (no
/// spawned task): bytes are decoded as they arrive and handed over at once, so memory
/// stays flat however long the audio is. The stream ends (`None`) only after the
/// server's `done` frame; a body cut before it, a connection failure
/// ([`Error::Transport`] with `request_sent: true`), a silence longer than the idle limit
/// ([`Error::Timeout`] with [`TimeoutPhase::Idle`](crate::TimeoutPhase::Idle)), the total
/// limit, or an error frame from the server is an `Err` item, after which the stream
/// ends. Dropping the stream closes the connection and frees the TTS slot.
///
/// Besides polling it, [`collect`](Self::collect) it, copy it with
/// [`write_to`](Self::write_to), save it as WAV with [`write_wav`](Self::write_wav) or
/// [`save_wav`](Self::save_wav), or read it with
/// [`into_async_read`](Self::into_async_read).
pub struct AudioStream {
    body: StreamBody<Incoming>,
    state: StreamState,
}

/// The stream's state, from the core: its [`info`](StreamState::info), [`format`](StreamState::format),
/// [`sample_rate`](StreamState::sample_rate), [`time_to_first_chunk`](StreamState::time_to_first_chunk),
/// [`audio_bytes`](StreamState::audio_bytes) and whether it [`is_complete`](StreamState::is_complete).
impl std::ops::Deref for AudioStream {
    type Target = StreamState;

    fn deref(&self) -> &StreamState {
        &self.state
    }
}

impl AudioStream {
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

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<AudioChunk, Error>>> {
        self.body.poll_chunk(
            &mut self.state,
            cx,
            |_| {},
            |at| Box::pin(tokio::time::sleep_until(at.into())),
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

/// The raw audio of an [`AudioStream`] as a [`tokio::io::AsyncRead`] (see
/// [`AudioStream::into_async_read`]).
pub struct AudioReader {
    stream: AudioStream,
    current: Bytes,
}

impl AudioReader {
    /// The stream being read (for its [`info`](smallest_core::call::StreamState::info) and timings).
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
        assert_send::<UploadBody<TokioSource<tokio::io::Empty>>>();
        fn shared<T: Send + Sync>() {}
        shared::<Client>();
        // The futures of the calls can be spawned (created, never polled).
        fn spawnable<F: Future + Send>(_: &F) {}
        let config = crate::Config::new(crate::ApiKey::new("sk_test_0123456789abcdef").unwrap());
        let client = Client::new(config).unwrap();
        let tts = TtsRequest::new("a", "meher");
        spawnable(&client.synthesize_stream(&tts));
        spawnable(&client.synthesize(&tts));
        let template = TranscribeRequest::from_bytes(Vec::new(), crate::SttLanguage::En);
        spawnable(&client.transcribe_file("a.wav", &template, None));
        spawnable(&client.transcribe_reader(tokio::io::empty(), None, &template, None));
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
