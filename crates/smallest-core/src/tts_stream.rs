//! `POST /waves/v1/tts/live`: text-to-speech streamed as Server-Sent Events (API.md §3.4).
//!
//! This module builds the request and decodes the streamed body into [`AudioChunk`]s. It
//! must never do I/O, never lose an error the server sends mid-stream, and never let a
//! cut stream look like a short success: a body that ends before its `done` frame is an
//! error, and so is one that ends in the middle of a 16-bit sample.
//!
//! The body is streamed, so [`TtsStreamRequest`] does not implement
//! [`Endpoint`](crate::Endpoint). A transport drives it in four steps:
//!
//! 1. send [`TtsStreamRequest::prepare`] (the request with every header it needs);
//! 2. give the response head to [`TtsStreamRequest::start`]. It answers
//!    [`TtsStreamStart::Stream`] with a decoder for a 2xx `text/event-stream`
//!    response, and [`TtsStreamStart::Failed`] for anything else: then read at most
//!    [`FailedResponse::max_body_bytes`] bytes of the body and return
//!    [`FailedResponse::into_error`] (an [`Error::Api`] for an error status);
//! 3. [`feed`](TtsStreamDecoder::feed) each piece of the body, and after each call
//!    [`next_chunk`](TtsStreamDecoder::next_chunk) until it returns `None`;
//! 4. when the body ends, call [`finish`](TtsStreamDecoder::finish) until it returns
//!    `Ok(None)`: that is the only proof the audio is complete.
//!
//! ```
//! use bytes::Bytes;
//! use smallest_core::tts::{OutputFormat, TtsRequest};
//! use smallest_core::tts_stream::{AudioChunk, TtsStreamRequest, TtsStreamStart};
//! use smallest_core::{ApiKey, Config, Error};
//!
//! /// Everything a transport writes: `head` is the response head, `body` yields the
//! /// body's pieces as they arrive.
//! fn stream(
//!     request: &TtsStreamRequest,
//!     head: &http::response::Parts,
//!     mut body: impl Iterator<Item = Bytes>,
//!     mut on_chunk: impl FnMut(AudioChunk),
//! ) -> Result<(), Error> {
//!     let mut decoder = match request.start(head) {
//!         TtsStreamStart::Stream(decoder) => decoder,
//!         TtsStreamStart::Failed(failed) => {
//!             let mut error_body = Vec::new();
//!             for piece in body.by_ref() {
//!                 error_body.extend_from_slice(&piece);
//!                 if error_body.len() >= failed.max_body_bytes() {
//!                     break;
//!                 }
//!             }
//!             return Err(failed.into_error(&error_body));
//!         }
//!     };
//!     for piece in body {
//!         decoder.feed(&piece);
//!         while let Some(chunk) = decoder.next_chunk() {
//!             on_chunk(chunk?);
//!         }
//!     }
//!     while let Some(chunk) = decoder.finish()? {
//!         on_chunk(chunk);
//!     }
//!     Ok(())
//! }
//!
//! # fn main() -> Result<(), Error> {
//! let config = Config::new(ApiKey::new("sk_example")?);
//! let request = TtsStreamRequest::new(
//!     TtsRequest::new("Hello.", "meher").sample_rate(24000).output_format(OutputFormat::Pcm),
//! );
//! let http_request = request.prepare(&config)?;
//! assert_eq!(http_request.uri(), "https://api.smallest.ai/waves/v1/tts/live");
//! assert_eq!(http_request.headers()["accept"], "text/event-stream");
//!
//! // What the server answers (split anywhere, even inside a line):
//! let (head, ()) = http::Response::builder()
//!     .status(200)
//!     .header("content-type", "text/event-stream")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let body = [
//!     &b"event: audio\ndata: {\"audio\": \"AQID\", \"done\": false, \"status\": \"206\"}\n\nev"[..],
//!     &b"ent: audio\ndata: {\"audio\": \"BA==\", \"done\": false, \"status\": \"206\"}\n\n"[..],
//!     &b"data: {\"status\": \"200\", \"done\": true}\n\n"[..],
//! ];
//! let mut audio = Vec::new();
//! stream(&request, &head, body.iter().copied().map(Bytes::from_static), |chunk| {
//!     assert_eq!(chunk.len() % 2, 0); // whole 16-bit samples only
//!     audio.extend_from_slice(chunk.data());
//! })?;
//! assert_eq!(audio, [1, 2, 3, 4]);
//!
//! // The same body cut before its `done` frame is an error, not a short success.
//! let cut = body[..2].iter().copied().map(Bytes::from_static);
//! let error = stream(&request, &head, cut, |_| {}).unwrap_err();
//! assert!(error.to_string().contains("before its `done` frame"));
//! # Ok(()) }
//! ```
//!
//! How frames are read (the wire format is API.md §3.4):
//!
//! - a frame whose JSON has `audio` (base64) is audio, whatever its `event:` name;
//! - a frame whose JSON has `"done": true` ends the stream: everything after it is
//!   ignored;
//! - `event: error`, a JSON `error` field, or a `status` other than `"206"`/`"200"` is
//!   the server reporting a failure: [`Error::Stream`] with its code and message;
//! - data that is not a JSON object, or an unnamed (or `audio`/`message`) frame with
//!   neither `audio` nor `done`, is an [`Error::Decode`] quoting what arrived;
//! - events with another name whose data has neither `audio` nor `done` are ignored, so
//!   the server can add event kinds without breaking this decoder;
//! - after the first error the decoder yields nothing more.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use crate::audio::WAV_HEADER_LEN;
use crate::config::Config;
use crate::error::{ApiError, Error, MAX_ERROR_BODY};
use crate::sse::{SseDecoder, SseEvent};
use crate::tts::{OutputFormat, ResponseInfo, TtsRequest};

/// The path of streamed synthesis (Server-Sent Events; the WebSocket shares it).
pub const TTS_STREAM_PATH: &str = "/waves/v1/tts/live";

/// The media type of the response body, also sent as `Accept`.
pub const EVENT_STREAM: &str = "text/event-stream";

/// What [`Error::Decode`] names for a malformed frame.
const WHAT: &str = "TTS stream event";

/// How much of a received frame an error message quotes, in characters.
const EXCERPT_CHARS: usize = 200;

/// Standard base64; padding optional, since each frame is encoded on its own and
/// encoders differ.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `POST /waves/v1/tts/live`: a synthesis whose audio arrives as it is generated.
///
/// The body is the same JSON as [`TtsRequest`]'s synchronous call. See the
/// [module docs](self) for how a transport runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct TtsStreamRequest {
    request: TtsRequest,
}

impl From<TtsRequest> for TtsStreamRequest {
    fn from(request: TtsRequest) -> Self {
        TtsStreamRequest::new(request)
    }
}

impl TtsStreamRequest {
    /// Streams the synthesis `request` describes.
    pub fn new(request: TtsRequest) -> Self {
        TtsStreamRequest { request }
    }

    /// The synthesis parameters.
    pub fn request(&self) -> &TtsRequest {
        &self.request
    }

    /// The synthesis parameters, by value.
    pub fn into_inner(self) -> TtsRequest {
        self.request
    }

    /// `POST /waves/v1/tts/live`: validates the synthesis and builds its request, with
    /// `Accept: text/event-stream`, but without `Authorization`, `User-Agent` and
    /// `X-Source` ([`prepare`](Self::prepare) adds them).
    pub fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        self.request
            .http_request(config, TTS_STREAM_PATH, EVENT_STREAM)
    }

    /// `POST /waves/v1/tts/live`: the request ready to send, with every header
    /// (the one function that adds them to every request).
    pub fn prepare(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        let mut request = self.to_http_request(config)?;
        config.apply_headers(&mut request, true);
        Ok(request)
    }

    /// Reads the response head: a decoder for a 2xx `text/event-stream` response,
    /// otherwise what to do with the body to report the failure.
    pub fn start(&self, head: &http::response::Parts) -> TtsStreamStart {
        self.start_with(head.status, &head.headers)
    }

    /// [`start`](Self::start) for a transport that has the status and headers but no
    /// [`http::response::Parts`].
    pub fn start_with(&self, status: StatusCode, headers: &HeaderMap) -> TtsStreamStart {
        let failed = |content_type: Option<String>| {
            TtsStreamStart::Failed(FailedResponse {
                status,
                headers: headers.clone(),
                content_type,
            })
        };
        if !status.is_success() {
            return failed(None);
        }
        // A missing `Content-Type` is tolerated (proxies drop it); a different one is not:
        // a JSON body on a 200 is not audio.
        if let Some(value) = headers.get(header::CONTENT_TYPE) {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let essence = value.split(';').next().unwrap_or_default().trim();
            if !essence.eq_ignore_ascii_case(EVENT_STREAM) {
                return failed(Some(value));
            }
        }
        TtsStreamStart::Stream(
            TtsStreamDecoder::new(
                self.request.effective_format(),
                self.request.effective_sample_rate(),
            )
            .with_response_info(ResponseInfo::from_headers(headers)),
        )
    }
}

/// What [`TtsStreamRequest::start`] makes of a response head.
// Made once per call and unpacked at once: boxing the decoder would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TtsStreamStart {
    /// A 2xx `text/event-stream` response: feed its body to this decoder.
    Stream(TtsStreamDecoder),
    /// An error status, or a 2xx that is not an event stream: read at most
    /// [`FailedResponse::max_body_bytes`] bytes of the body and return
    /// [`FailedResponse::into_error`].
    Failed(FailedResponse),
}

/// A response that will not stream: an error status, or a success with another
/// content type. Its body is the evidence: read some of it, then make the error.
#[derive(Clone, Debug)]
pub struct FailedResponse {
    status: StatusCode,
    headers: HeaderMap,
    /// `Some` for a 2xx with this (wrong) content type.
    content_type: Option<String>,
}

impl FailedResponse {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// How many bytes of the body to read: one more than [`ApiError`] keeps
    /// ([`MAX_ERROR_BODY`]), so the error can tell that the body was longer. Stop
    /// reading there; a shorter body (or a read that fails part way) is fine, pass
    /// what arrived.
    pub fn max_body_bytes(&self) -> usize {
        MAX_ERROR_BODY + 1
    }

    /// The error to report, given (up to [`max_body_bytes`](Self::max_body_bytes) of)
    /// the body: [`Error::Api`] for an error status, [`Error::Decode`] quoting the body
    /// for a success that is not an event stream.
    pub fn into_error(self, body: &[u8]) -> Error {
        match self.content_type {
            None => ApiError::from_parts(self.status, &self.headers, body).into(),
            Some(content_type) => Error::Decode {
                what: "TTS stream response",
                message: format!(
                    "expected `{EVENT_STREAM}`, got a {} `{content_type}` body: {}",
                    self.status.as_u16(),
                    excerpt(&String::from_utf8_lossy(body))
                ),
            },
        }
    }
}

/// A piece of streamed audio.
///
/// For `pcm` and `wav` every chunk holds whole 16-bit samples (the server may split a
/// sample across two frames; the decoder moves the odd byte to the next chunk), and
/// the first chunk(s) of `wav` carry the 44-byte RIFF header as the server sent it.
/// `ulaw`, `alaw` and `mp3` bytes pass through as they arrive.
#[derive(Clone, PartialEq, Eq)]
pub struct AudioChunk {
    data: Bytes,
    format: OutputFormat,
    sample_rate: u32,
    index: u64,
    offset_bytes: u64,
}

impl AudioChunk {
    /// The audio bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The audio bytes, by value.
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// The number of audio bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the chunk has no bytes (never true for a chunk from the decoder).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The encoding of the bytes.
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The position of this chunk in the stream, from 0.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Where this chunk's first byte is in the stream's audio (the chunks before it,
    /// concatenated, are this long).
    pub fn offset_bytes(&self) -> u64 {
        self.offset_bytes
    }

    /// How much audio this chunk holds, for the sample formats (not MP3); a `wav`
    /// header counts for nothing.
    pub fn duration(&self) -> Option<Duration> {
        let start = self.offset_bytes;
        let end = start + self.data.len() as u64;
        duration_of(self.format, self.sample_rate, start, end)
    }
}

impl fmt::Debug for AudioChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioChunk")
            .field("index", &self.index)
            .field("offset_bytes", &self.offset_bytes)
            .field("len", &self.data.len())
            .field("format", &self.format)
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

/// Where the decoder is in the stream.
#[derive(Debug)]
enum State {
    Streaming,
    /// The `done` frame arrived.
    Done,
    /// An error was returned; its code and message, repeated by `finish`.
    Failed(Option<String>, String),
}

/// Decodes the body of `POST /waves/v1/tts/live` into [`AudioChunk`]s.
///
/// Made by [`TtsStreamRequest::start`], or by [`new`](Self::new) for a body obtained
/// some other way. See the [module docs](self).
pub struct TtsStreamDecoder {
    sse: SseDecoder,
    format: OutputFormat,
    sample_rate: u32,
    info: ResponseInfo,
    state: State,
    /// The first byte of a 16-bit sample whose second byte has not arrived yet.
    carry: Option<u8>,
    /// Decoded audio is written here and split off, so one allocation serves many
    /// chunks while the caller drops them.
    buf: BytesMut,
    chunks: u64,
    bytes: u64,
}

impl fmt::Debug for TtsStreamDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtsStreamDecoder")
            .field("format", &self.format)
            .field("sample_rate", &self.sample_rate)
            .field("info", &self.info)
            .field("state", &self.state)
            .field("chunks", &self.chunks)
            .field("audio_bytes", &self.bytes)
            .finish()
    }
}

impl TtsStreamDecoder {
    /// A decoder for a stream of `format` audio at `sample_rate` Hz: what was asked
    /// for, since the frames do not say.
    pub fn new(format: OutputFormat, sample_rate: u32) -> Self {
        TtsStreamDecoder {
            sse: SseDecoder::new(),
            format,
            sample_rate,
            info: ResponseInfo::default(),
            state: State::Streaming,
            carry: None,
            buf: BytesMut::new(),
            chunks: 0,
            bytes: 0,
        }
    }

    /// Attaches the ids of the response (from its headers).
    pub fn with_response_info(mut self, info: ResponseInfo) -> Self {
        self.info = info;
        self
    }

    /// Refuses frames larger than `max` bytes (default
    /// [`DEFAULT_MAX_EVENT_BYTES`](crate::sse::DEFAULT_MAX_EVENT_BYTES)). Call it
    /// before feeding anything.
    pub fn with_max_event_bytes(mut self, max: usize) -> Self {
        self.sse = SseDecoder::with_max_event_bytes(max);
        self
    }

    /// The response's ids and content-expiry answer.
    pub fn info(&self) -> &ResponseInfo {
        &self.info
    }

    /// The encoding of the audio.
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// How many chunks were returned so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// How many audio bytes were returned so far.
    pub fn audio_bytes(&self) -> u64 {
        self.bytes
    }

    /// How much audio was returned so far, for the sample formats (not MP3).
    pub fn duration_so_far(&self) -> Option<Duration> {
        duration_of(self.format, self.sample_rate, 0, self.bytes)
    }

    /// Whether the `done` frame arrived (the stream is complete once
    /// [`finish`](Self::finish) agrees).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the decoder returned an error; it yields nothing more.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(..))
    }

    /// Appends the next bytes of the body. Call [`next_chunk`](Self::next_chunk) until
    /// it returns `None` after each call. Bytes after the `done` frame or an error are
    /// ignored.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Streaming) {
            self.sse.feed(bytes);
        }
    }

    /// The next chunk of audio; `None` when more bytes are needed (or the stream is
    /// over). An error is returned once, and then nothing more.
    pub fn next_chunk(&mut self) -> Option<Result<AudioChunk, Error>> {
        while matches!(self.state, State::Streaming) {
            let next = match self.sse.next_event()? {
                Ok(event) => self.frame(&event),
                Err(e) => Err(e),
            };
            match next {
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) => {}
                Err(e) => return Some(Err(self.fail(e))),
            }
        }
        None
    }

    /// The body ended: returns the audio still to come, one chunk per call (normally
    /// none), then `Ok(None)` once the stream is known to be complete. Call it until it
    /// returns `Ok(None)`.
    ///
    /// It fails with [`Error::Stream`] when the body ended before the `done` frame (the
    /// audio is incomplete) or in the middle of a 16-bit sample, and with the error
    /// frame's error if the last frame was one. After an error, it errs again.
    pub fn finish(&mut self) -> Result<Option<AudioChunk>, Error> {
        loop {
            match &self.state {
                State::Failed(code, message) => {
                    return Err(Error::Stream {
                        code: code.clone(),
                        message: format!("the stream already failed: {message}"),
                    });
                }
                State::Done => {
                    if self.carry.is_some() {
                        let e = Error::Stream {
                            code: None,
                            message: format!(
                                "the stream ended in the middle of a 16-bit sample (after {} \
                                 audio bytes): the {} audio is corrupt",
                                self.bytes + 1,
                                self.format
                            ),
                        };
                        return Err(self.fail(e));
                    }
                    return Ok(None);
                }
                State::Streaming => {}
            }
            // Complete events first (the caller may not have drained them), then what the
            // end of the body leaves: at most one event, whose blank line never came.
            let next = match self.sse.next_event() {
                Some(Ok(event)) => self.frame(&event),
                Some(Err(e)) => Err(e),
                None => match self.sse.finish() {
                    Ok(Some(event)) => self.frame(&event).map_err(|e| match e {
                        Error::Decode { message, .. } => Error::Stream {
                            code: None,
                            message: format!(
                                "the stream ended before its `done` frame, in a frame that is \
                                 cut short or malformed: the audio is incomplete ({message})"
                            ),
                        },
                        other => other,
                    }),
                    Ok(None) => Err(Error::Stream {
                        code: None,
                        message: format!(
                            "the stream ended before its `done` frame: the audio is incomplete \
                             ({} chunks, {} bytes received)",
                            self.chunks, self.bytes
                        ),
                    }),
                    Err(e) => Err(e),
                },
            };
            match next {
                Ok(Some(chunk)) => return Ok(Some(chunk)),
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    fn fail(&mut self, error: Error) -> Error {
        let code = match &error {
            Error::Stream { code, .. } => code.clone(),
            _ => None,
        };
        self.state = State::Failed(code, error.to_string());
        self.carry = None;
        error
    }

    /// Reads one event: maybe a chunk, maybe the end, maybe an error.
    fn frame(&mut self, event: &SseEvent) -> Result<Option<AudioChunk>, Error> {
        let strict = match event.event.as_deref() {
            None | Some("audio" | "message") => true,
            Some("error") => return Err(error_event(&event.data)),
            Some(_) => false,
        };
        let frame: Frame<'_> = match serde_json::from_str(&event.data) {
            Ok(frame) => frame,
            Err(_) if !strict => return Ok(None),
            Err(e) => {
                return Err(Error::decode(
                    WHAT,
                    format!(
                        "expected a JSON object with `audio` or `done` ({e}), got: {}",
                        excerpt(&event.data)
                    ),
                ));
            }
        };
        let done = frame.is_done();
        if !strict && frame.audio.is_none() && !done {
            return Ok(None);
        }
        if let Some(error) = frame.error(&event.data) {
            return Err(error);
        }
        let chunk = match &frame.audio {
            Some(audio) => self.audio(audio, &event.data)?,
            None if done => None,
            None => {
                return Err(Error::decode(
                    WHAT,
                    format!(
                        "a frame with neither `audio` nor `\"done\": true`: {}",
                        excerpt(&event.data)
                    ),
                ));
            }
        };
        if done {
            self.state = State::Done;
        }
        Ok(chunk)
    }

    /// Decodes the base64 of one frame into a chunk of whole samples.
    fn audio(&mut self, base64: &str, data: &str) -> Result<Option<AudioChunk>, Error> {
        let input = base64.as_bytes();
        let estimate = base64::decoded_len_estimate(input.len());
        self.buf.clear();
        if self.buf.capacity() < estimate + 1 {
            // Room for many frames at once; reclaimed when the chunks are dropped.
            self.buf.reserve((estimate + 1).max(64 * 1024));
        }
        if let Some(byte) = self.carry.take() {
            self.buf.put_u8(byte);
        }
        let start = self.buf.len();
        self.buf.resize(start + estimate, 0);
        let written = BASE64
            .decode_slice(input, &mut self.buf[start..])
            .map_err(|e| {
                Error::decode(
                    WHAT,
                    format!("the `audio` field is not base64 ({e}): {}", excerpt(data)),
                )
            })?;
        self.buf.truncate(start + written);
        if self.format.bytes_per_sample() == Some(2) && self.buf.len() % 2 == 1 {
            self.carry = self.buf.last().copied();
            self.buf.truncate(self.buf.len() - 1);
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let data = self.buf.split().freeze();
        let chunk = AudioChunk {
            format: self.format,
            sample_rate: self.sample_rate,
            index: self.chunks,
            offset_bytes: self.bytes,
            data,
        };
        self.chunks += 1;
        self.bytes += chunk.data.len() as u64;
        Ok(Some(chunk))
    }
}

/// The fields of a frame this decoder looks at; the rest are ignored.
#[derive(Deserialize)]
struct Frame<'a> {
    /// Borrowed: base64 has nothing to unescape.
    #[serde(borrow, default)]
    audio: Option<Cow<'a, str>>,
    #[serde(default)]
    done: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
}

impl Frame<'_> {
    fn is_done(&self) -> bool {
        match &self.done {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }

    /// The server's error, if this frame reports one: an `error` field, or a `status`
    /// other than 206 (partial) and 200 (done).
    fn error(&self, data: &str) -> Option<Error> {
        let status = match &self.status {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let bad_status = status
            .as_deref()
            .is_some_and(|s| !matches!(s, "200" | "206"));
        let has_error = !matches!(self.error, None | Some(Value::Null));
        if !bad_status && !has_error {
            return None;
        }
        let text = |v: &Option<Value>| match v {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let mut code = text(&self.error_code).or_else(|| text(&self.code));
        let mut message = text(&self.message);
        match &self.error {
            Some(Value::Object(obj)) => {
                let field = |k: &str| text(&obj.get(k).cloned());
                code = code.or_else(|| field("code"));
                message = message.or_else(|| field("message"));
            }
            Some(Value::String(e)) if !e.is_empty() => {
                // `{"error": "InvalidRequest", "message": …}`: an identifier is a code.
                if message.is_some() && !e.contains(' ') {
                    code = code.or_else(|| Some(e.clone()));
                } else if let Some(m) = message.take() {
                    message = Some(format!("{e}: {m}"));
                } else {
                    message = Some(e.clone());
                }
            }
            _ => {}
        }
        if let Some(s) = status.filter(|s| s != "error" && s != "200" && s != "206") {
            code = code.or(Some(s));
        }
        Some(Error::Stream {
            code,
            message: message
                .unwrap_or_else(|| format!("the server reported an error: {}", excerpt(data))),
        })
    }
}

/// The error an `event: error` frame reports, whatever its data looks like.
fn error_event(data: &str) -> Error {
    if let Ok(frame) = serde_json::from_str::<Frame<'_>>(data) {
        let mut frame = frame;
        if matches!(frame.status, None | Some(Value::Null)) {
            frame.status = Some(Value::String("error".into()));
        }
        if let Some(error) = frame.error(data) {
            return error;
        }
    }
    Error::Stream {
        code: None,
        message: if data.trim().is_empty() {
            "the server sent an `error` event".to_owned()
        } else {
            excerpt(data)
        },
    }
}

/// The first [`EXCERPT_CHARS`] characters of `s`, marked when cut.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The duration of the audio between byte offsets `start` and `end` of a stream; a
/// `wav` header counts for nothing. `None` for MP3 and a zero sample rate.
fn duration_of(format: OutputFormat, sample_rate: u32, start: u64, end: u64) -> Option<Duration> {
    let per_sample = format.bytes_per_sample()? as u64;
    if sample_rate == 0 {
        return None;
    }
    let payload = match format {
        OutputFormat::Wav => {
            let header = WAV_HEADER_LEN as u64;
            end.saturating_sub(header) - start.saturating_sub(header)
        }
        _ => end - start,
    };
    let samples = payload / per_sample;
    let rate = u64::from(sample_rate);
    Some(
        Duration::from_secs(samples / rate)
            + Duration::from_nanos((samples % rate) * 1_000_000_000 / rate),
    )
}
