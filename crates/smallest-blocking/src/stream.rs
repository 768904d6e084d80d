//! Streaming on plain threads: text-to-speech over Server-Sent Events
//! (`POST /waves/v1/tts/live`) and speech-to-text uploads streamed from a file or any
//! [`Read`], both in constant memory.
//!
//! The decisions are the core's machines ([`StreamState`], [`UploadCounter`]): this
//! module reads the body, feeds bytes and writes the upload as it is told. Time limits
//! are enforced by ureq on every read and write (the idle limit) and on the whole call
//! (the total deadline, set per request).

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use smallest_core::AudioChunk;
use smallest_core::call::output_error;
use smallest_core::call::{AttemptLimits, Call, StreamEvent, StreamState, UploadCounter, UploadOp};

use crate::{
    Audio, Client, Error, Outgoing, Stage, TranscribeRequest, Transcription, TtsRequest, classify,
};
use smallest_core::audio::WavSizes;
pub use smallest_core::call::ProgressHook;
pub use smallest_core::stt::Progress;

/// How much of the response body one read asks for.
const READ_CHUNK: usize = 16 * 1024;

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
        let call = Call::stream(
            request,
            &self.inner.config,
            &self.options,
            smallest_net::seed(),
        );
        let (decoder, body, call) = self.drive(call, |b| Ok(Outgoing::whole(b)))?;
        let body = body.ok_or_else(|| Error::Config("the stream opened without a body".into()))?;
        let limits = call.limits();
        Ok(AudioStream {
            reader: body.into_reader(),
            state: call.into_stream(decoder, started),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            limits,
        })
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
        let (call, len) =
            smallest_net::file_upload(path, request, &self.inner.config, &self.options)?;
        let open = |_| {
            Ok(Outgoing::Reader(UploadReader::new(
                Box::new(smallest_net::open_upload(path)?),
                Some(len),
                progress.clone(),
            )))
        };
        self.drive(call, open).map(|(output, _, _)| output)
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
        let seed = smallest_net::seed();
        let call = UploadOp::reader_call(request, len, &self.inner.config, &self.options, seed);
        let mut reader = Some(reader);
        let take = |_| match reader.take() {
            Some(reader) => Ok(Outgoing::Reader(UploadReader::new(
                Box::new(reader),
                len,
                progress.clone(),
            ))),
            None => Err(Error::Config("a reader can be uploaded only once".into())),
        };
        self.drive(call, take).map(|(output, _, _)| output)
    }
}

/// Where reading an upload's source failed, shared with the exchange that reports it.
#[derive(Clone, Default)]
pub(crate) struct SourceFailure(Arc<Mutex<Option<Error>>>);

impl SourceFailure {
    pub(crate) fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The body of a streamed upload as ureq reads it: the counter decides how much, counts,
/// reports progress and refuses a short source; the source's own error is kept.
pub(crate) struct UploadReader<'a> {
    inner: Box<dyn Read + 'a>,
    counter: UploadCounter,
    failure: SourceFailure,
}

impl<'a> UploadReader<'a> {
    fn new(inner: Box<dyn Read + 'a>, len: Option<u64>, progress: Option<ProgressHook>) -> Self {
        UploadReader {
            inner,
            counter: UploadCounter::new(len, progress),
            failure: SourceFailure::default(),
        }
    }

    pub(crate) fn failure(&self) -> SourceFailure {
        self.failure.clone()
    }

    fn fail(&mut self, e: Error) -> io::Error {
        let io = io::Error::other(e.to_string());
        *self
            .failure
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(e);
        io
    }
}

impl Read for UploadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.counter.want().min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        match self.inner.read(&mut buf[..want]) {
            Ok(n) => match self.counter.handle_read(n) {
                Ok(()) => Ok(n),
                Err(e) => Err(self.fail(e)),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let e = self.counter.source_error(e);
                Err(self.fail(e))
            }
        }
    }
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
    state: StreamState,
    buf: Box<[u8]>,
    limits: AttemptLimits,
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
    /// Reads the whole stream into one [`Audio`] (memory grows with the audio: prefer
    /// [`write_to`](Self::write_to) for long syntheses).
    pub fn collect(mut self) -> Result<Audio, Error> {
        let mut data = BytesMut::new();
        for chunk in &mut self {
            data.extend_from_slice(chunk?.data());
        }
        Ok(self.state.audio(data.freeze()))
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
}

impl Iterator for AudioStream {
    type Item = Result<AudioChunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.state.poll(Instant::now()) {
                StreamEvent::Chunk(chunk) => return Some(Ok(chunk)),
                StreamEvent::End => return None,
                StreamEvent::Fail(e) => return Some(Err(e)),
                // ureq enforces the idle and total limits on the read itself.
                StreamEvent::Read(_) => {}
            }
            match self.reader.read(&mut self.buf) {
                Ok(0) => self.state.handle_end(),
                Ok(n) => self.state.handle_data(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let error = classify(ureq::Error::from(e), Stage::Body, &self.limits);
                    self.state.handle_error(error);
                }
            }
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

/// The raw audio of an [`AudioStream`] as a [`Read`] (see [`AudioStream::into_reader`]).
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
    fn uploads_read_exactly_the_declared_length_and_refuse_a_short_source() {
        let mut upload = UploadReader::new(Box::new(&b"abcdefgh"[..]), Some(5), None);
        let mut sent = Vec::new();
        upload.read_to_end(&mut sent).unwrap();
        assert_eq!(sent, b"abcde");
        let mut short = UploadReader::new(Box::new(&b"abc"[..]), Some(5), None);
        let e = short.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("declared length of 5"), "{e}");
        assert!(short.failure().take().is_some());
    }
}
