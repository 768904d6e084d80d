//! Streaming on plain threads: text-to-speech over Server-Sent Events
//! (`POST /waves/v1/tts/live`) and speech-to-text uploads streamed from a file or any
//! [`Read`], both in constant memory.
//!
//! All protocol logic is the core's ([`smallest_core::tts_stream`]): this module only
//! moves bytes and never lets a cut stream pass for a complete one. Time limits are
//! ureq's, set on the agent ([`ClientBuilder`](crate::ClientBuilder)): the idle limit
//! applies to every read of the body and every write of an upload, the total limit to
//! the whole exchange.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::Request;
use smallest_core::AudioChunk;
use smallest_core::tts::ResponseInfo;
use smallest_core::tts_stream::{TtsStreamDecoder, TtsStreamRequest, TtsStreamStart};
use ureq::SendBody;

use crate::{
    Audio, Client, Endpoint, Error, OutputFormat, Stage, Timeouts, TranscribeRequest,
    Transcription, TtsPermit, TtsRequest, classify,
};
use smallest_core::audio::WavSizes;
pub use smallest_core::stt::Progress;

/// How much of the response body one read asks for.
const READ_CHUNK: usize = 16 * 1024;

/// Called with the [`Progress`] of an upload, on the calling thread, after each piece of
/// the upload is handed to the connection: keep it quick.
pub type ProgressHook = Arc<dyn Fn(Progress) + Send + Sync>;

impl Client {
    /// `POST /waves/v1/tts/live`: synthesizes speech and returns its audio as it is
    /// generated, as an [`AudioStream`] (an iterator of [`AudioChunk`]s).
    ///
    /// First waits for a TTS slot ([`TtsLimiter`](crate::TtsLimiter)); the stream holds
    /// it until it ends or is dropped. The request is retried under the client's
    /// [`RetryPolicy`](crate::RetryPolicy) until the response head says 2xx; once the
    /// stream is returned nothing is retried.
    ///
    /// ```no_run
    /// use smallest_blocking::{Client, OutputFormat, TtsRequest};
    ///
    /// # fn main() -> Result<(), smallest_blocking::Error> {
    /// let client = Client::from_env()?;
    /// let request = TtsRequest::new("Hello, streaming.", "meher").output_format(OutputFormat::Pcm);
    /// let mut stream = client.synthesize_stream(&request)?;
    /// for chunk in &mut stream {
    ///     let chunk = chunk?; // a cut stream ends with an error, never early
    ///     println!("{} bytes at offset {}", chunk.len(), chunk.offset_bytes());
    /// }
    /// println!("first audio after {:?}", stream.time_to_first_chunk());
    /// # Ok(()) }
    /// ```
    pub fn synthesize_stream(&self, request: &TtsRequest) -> Result<AudioStream, Error> {
        let started = Instant::now();
        let stream_request = TtsStreamRequest::new(request.clone());
        // Refuse an invalid request before queueing for a slot.
        stream_request.prepare(&self.inner.config)?;
        let slot = self.inner.tts_slots.acquire();
        // Retried only until the head says 2xx: nothing has reached the user before that.
        let (reader, decoder) = self.retrying(|| self.open_tts_stream(&stream_request))?;
        Ok(AudioStream {
            reader,
            decoder,
            phase: Phase::Streaming,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            limits: self.inner.timeouts,
            started,
            first_chunk: None,
            slot: Some(slot),
        })
    }

    /// One attempt: sends the request and reads the head. A 2xx event stream comes back
    /// as its body reader and decoder; anything else is an error.
    fn open_tts_stream(
        &self,
        request: &TtsStreamRequest,
    ) -> Result<(ureq::BodyReader<'static>, TtsStreamDecoder), Error> {
        let limits = &self.inner.timeouts;
        let (parts, body) = request.prepare(&self.inner.config)?.into_parts();
        crate::refuse_if_trace_would_log_the_key(&parts.headers)?;
        let response = self
            .inner
            .agent
            .run(Request::from_parts(parts, body.as_ref()))
            .map_err(|e| classify(e, Stage::Exchange, limits))?;
        let (parts, body) = response.into_parts();
        match request.start(&parts) {
            TtsStreamStart::Stream(decoder) => Ok((body.into_reader(), decoder)),
            TtsStreamStart::Failed(failed) => {
                let mut evidence = Vec::new();
                // A body that fails part way is still evidence: keep what arrived.
                let _ = body
                    .into_reader()
                    .take(failed.max_body_bytes() as u64)
                    .read_to_end(&mut evidence);
                Err(failed.into_error(&evidence))
            }
        }
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
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use smallest_blocking::{Client, SttLanguage, TranscribeRequest};
    ///
    /// # fn main() -> Result<(), smallest_blocking::Error> {
    /// let client = Client::from_env()?;
    /// let template = TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En);
    /// let text = client.transcribe_file(
    ///     "meeting.wav",
    ///     &template,
    ///     Some(Arc::new(|p: smallest_blocking::Progress| eprintln!("{:?}", p.fraction()))),
    /// )?;
    /// println!("{}", text.transcription);
    /// # Ok(()) }
    /// ```
    pub fn transcribe_file(
        &self,
        path: impl AsRef<Path>,
        request: &TranscribeRequest,
        progress: Option<ProgressHook>,
    ) -> Result<Transcription, Error> {
        let path = path.as_ref();
        let content_type = request.upload_content_type(Some(path));
        // A path can be reopened, so the whole upload is retried like any call.
        self.retrying(|| {
            File::open(path)
                .and_then(|file| Ok((file.metadata()?.len(), file)))
                .map_err(|e| file_error(path, e))
                .and_then(|(len, file)| {
                    self.upload(file, Some(len), request, &content_type, progress.as_ref())
                })
        })
    }

    /// `POST /waves/v1/stt/`: transcribes audio streamed from `reader`, `len` bytes of
    /// it when the length is known (sent as `Content-Length`; exactly `len` bytes are
    /// read), otherwise with chunked transfer until the reader ends.
    ///
    /// `request` is a template, as for [`transcribe_file`](Self::transcribe_file)
    /// (`application/octet-stream` unless it sets a content type). A reader cannot be
    /// rewound, so the upload is never retried.
    pub fn transcribe_reader<R: Read>(
        &self,
        reader: R,
        len: Option<u64>,
        request: &TranscribeRequest,
        progress: Option<ProgressHook>,
    ) -> Result<Transcription, Error> {
        let content_type = request.upload_content_type(None);
        self.upload(reader, len, request, &content_type, progress.as_ref())
    }

    /// One upload attempt.
    fn upload<R: Read>(
        &self,
        reader: R,
        len: Option<u64>,
        request: &TranscribeRequest,
        content_type: &str,
        progress: Option<&ProgressHook>,
    ) -> Result<Transcription, Error> {
        let config = &self.inner.config;
        let limits = &self.inner.timeouts;
        let mut head = request.upload_head(config, len, Some(content_type))?;
        config.apply_headers(&mut head, true);
        let mut upload = UploadReader {
            inner: reader,
            sent: 0,
            total: len,
            progress,
            failure: None,
        };
        let (parts, ()) = head.into_parts();
        crate::refuse_if_trace_would_log_the_key(&parts.headers)?;
        let result = self.inner.agent.run(Request::from_parts(
            parts,
            SendBody::from_reader(&mut upload),
        ));
        let response = match (result, upload.failure.take()) {
            // Reading the source failed: say so, rather than what ureq made of it.
            (Err(_), Some(read)) => return Err(Error::transport(true, read)),
            (Err(e), None) => return Err(classify(e, Stage::Exchange, limits)),
            (Ok(response), _) => response,
        };
        let (parts, body) = response.into_parts();
        let mut data = Vec::new();
        body.into_reader()
            .read_to_end(&mut data)
            .map_err(|e| classify(ureq::Error::from(e), Stage::Body, limits))?;
        request.from_http_response(http::Response::from_parts(parts, Bytes::from(data)))
    }
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

/// The body of a streamed upload as ureq reads it: counts, reports progress, reads
/// exactly the declared length, and keeps the source's own error.
struct UploadReader<'a, R> {
    inner: R,
    sent: u64,
    total: Option<u64>,
    progress: Option<&'a ProgressHook>,
    failure: Option<io::Error>,
}

impl<R: Read> UploadReader<'_, R> {
    fn fail(&mut self, e: io::Error) -> io::Error {
        let message = format!("reading the upload failed after {} bytes: {e}", self.sent);
        self.failure = Some(io::Error::new(e.kind(), message.clone()));
        io::Error::new(e.kind(), message)
    }
}

impl<R: Read> Read for UploadReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = match self.total {
            Some(total) if self.sent >= total => return Ok(0),
            Some(total) => buf
                .len()
                .min(usize::try_from(total - self.sent).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        if want == 0 {
            return Ok(0);
        }
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => match self.total {
                Some(total) => Err(self.fail(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the source ended before its declared length of {total} bytes"),
                ))),
                None => Ok(0),
            },
            Ok(n) => {
                self.sent += n as u64;
                if let Some(progress) = self.progress {
                    progress(Progress::new(self.sent, self.total));
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(self.fail(e)),
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

/// The audio of [`Client::synthesize_stream`], chunk by chunk, as the server generates it.
///
/// An [`Iterator`] of `Result<AudioChunk, Error>` that reads the response body in 16 KiB
/// reads and hands each decoded chunk over at once, so memory stays flat however long
/// the audio is. It ends (`None`) only after the server's `done` frame; a body cut
/// before it, a connection failure ([`Error::Transport`] with `request_sent: true`), a
/// read that waits longer than the idle limit ([`Error::Timeout`] with
/// [`TimeoutPhase::Idle`](crate::TimeoutPhase::Idle)), the total limit, or an error
/// frame from the server is an `Err` item, after which it ends. Dropping the stream
/// closes the connection and frees the TTS slot.
///
/// Besides iterating it, [`collect`](Self::collect) it, copy it with
/// [`write_to`](Self::write_to), save it as WAV with [`write_wav`](Self::write_wav) or
/// [`save_wav`](Self::save_wav), or read it with [`into_reader`](Self::into_reader).
pub struct AudioStream {
    reader: ureq::BodyReader<'static>,
    decoder: TtsStreamDecoder,
    phase: Phase,
    buf: Box<[u8]>,
    limits: Timeouts,
    started: Instant,
    first_chunk: Option<Duration>,
    slot: Option<TtsPermit>,
}

impl AudioStream {
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

    /// Reads the whole stream into one [`Audio`] (memory grows with the audio: prefer
    /// [`write_to`](Self::write_to) for long syntheses).
    pub fn collect(mut self) -> Result<Audio, Error> {
        let mut data = BytesMut::new();
        for chunk in &mut self {
            data.extend_from_slice(chunk?.data());
        }
        Ok(Audio::new(
            data.freeze(),
            self.format(),
            self.sample_rate(),
            self.info().clone(),
        ))
    }

    /// Copies the audio into `out` as it arrives (wrap a file in a [`BufWriter`]),
    /// flushes it, and returns the number of bytes written. On an error `out` holds the
    /// audio received until then.
    pub fn write_to<W: Write>(mut self, mut out: W) -> Result<u64, Error> {
        let mut written = 0u64;
        for chunk in &mut self {
            let chunk = chunk?;
            out.write_all(chunk.data()).map_err(output_error)?;
            written += chunk.len() as u64;
        }
        out.flush().map_err(output_error)?;
        Ok(written)
    }

    /// Writes the audio as a WAV file into `out` (a file, or anything seekable) as it
    /// arrives, and returns the file's length. `pcm`, `ulaw` and `alaw` get a 44-byte
    /// header first, `wav` keeps the server's; the header's sizes are written as
    /// `0xFFFFFFFF` placeholders, then patched (by seeking back) once the stream is
    /// complete. MP3 is refused before anything is written. On an error the file keeps
    /// the placeholders.
    pub fn write_wav<W: Write + Seek>(mut self, mut out: W) -> Result<u64, Error> {
        let (header, mut sizes) = WavSizes::start(self.format(), self.sample_rate())?;
        let start = out.stream_position().map_err(output_error)?;
        if let Some(header) = header {
            out.write_all(&header).map_err(output_error)?;
        }
        for chunk in &mut self {
            let chunk = chunk?;
            out.write_all(chunk.data()).map_err(output_error)?;
            sizes.wrote(chunk.data());
        }
        for (at, value) in sizes.patches()? {
            out.seek(SeekFrom::Start(start + at))
                .map_err(output_error)?;
            out.write_all(&value).map_err(output_error)?;
        }
        out.seek(SeekFrom::Start(start + sizes.written()))
            .map_err(output_error)?;
        out.flush().map_err(output_error)?;
        Ok(sizes.written())
    }

    /// Creates (or truncates) the file at `path` and [`write_wav`](Self::write_wav)s the
    /// audio into it, buffered.
    pub fn save_wav(self, path: impl AsRef<Path>) -> Result<u64, Error> {
        // Refuse MP3 before creating the file.
        WavSizes::start(self.format(), self.sample_rate())?;
        let file = File::create(path.as_ref()).map_err(output_error)?;
        self.write_wav(BufWriter::with_capacity(64 * 1024, file))
    }

    /// The raw audio bytes as a [`Read`]. A stream error becomes an [`io::Error`] (kind
    /// `TimedOut` for a time limit, `UnexpectedEof` for a cut stream, `Other`
    /// otherwise) whose inner error is the [`Error`]: get it back with
    /// `e.get_ref().and_then(|e| e.downcast_ref::<smallest_blocking::Error>())`.
    pub fn into_reader(self) -> AudioReader {
        AudioReader {
            stream: self,
            current: Bytes::new(),
        }
    }

    fn deliver(&mut self, chunk: AudioChunk) -> Option<Result<AudioChunk, Error>> {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(self.started.elapsed());
        }
        Some(Ok(chunk))
    }

    /// The stream is over: free the slot now rather than when the stream is dropped.
    fn end(&mut self) {
        self.phase = Phase::Done;
        self.slot = None;
    }

    fn fail(&mut self, error: Error) -> Option<Result<AudioChunk, Error>> {
        self.end();
        Some(Err(error))
    }
}

impl Iterator for AudioStream {
    type Item = Result<AudioChunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Finishing => {
                    return match self.decoder.finish() {
                        Ok(Some(chunk)) => self.deliver(chunk),
                        Ok(None) => {
                            self.end();
                            None
                        }
                        Err(e) => self.fail(e),
                    };
                }
                Phase::Streaming => {}
            }
            match self.decoder.next_chunk() {
                Some(Ok(chunk)) => return self.deliver(chunk),
                Some(Err(e)) => return self.fail(e),
                None => {}
            }
            match self.reader.read(&mut self.buf) {
                Ok(0) => self.phase = Phase::Finishing,
                Ok(n) => self.decoder.feed(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let error = classify(ureq::Error::from(e), Stage::Body, &self.limits);
                    return self.fail(error);
                }
            }
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

/// The raw audio of an [`AudioStream`] as a [`Read`] (see [`AudioStream::into_reader`]).
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

impl Read for AudioReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.stream.next() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk.into_data(),
                Some(Err(e)) => return Err(io::Error::from(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
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
    fn streams_can_move_between_threads() {
        assert_send::<AudioStream>();
        assert_send::<AudioReader>();
    }

    #[test]
    fn uploads_read_exactly_the_declared_length_and_report_progress() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hook: ProgressHook = {
            let seen = seen.clone();
            Arc::new(move |p: Progress| seen.lock().unwrap().push(p))
        };
        let source = [7u8; 100];
        let mut upload = UploadReader {
            inner: &source[..],
            sent: 0,
            total: Some(60),
            progress: Some(&hook),
            failure: None,
        };
        let mut out = Vec::new();
        upload.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 60);
        let last = *seen.lock().unwrap().last().unwrap();
        assert_eq!(last, Progress::new(60, Some(60)));

        // A source shorter than declared is an error, kept for the caller.
        let mut short = UploadReader {
            inner: &source[..10],
            sent: 0,
            total: Some(60),
            progress: None,
            failure: None,
        };
        let e = short.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(short.failure.is_some());
    }

    #[test]
    fn content_type_comes_from_the_template_or_the_extension() {
        let template = TranscribeRequest::from_bytes(Vec::new(), crate::SttLanguage::En);
        assert_eq!(
            &template.upload_content_type(Some(Path::new("a/b.WAV"))),
            "audio/wav"
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
