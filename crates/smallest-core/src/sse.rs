//! A generic, incremental decoder for `text/event-stream` bodies (Server-Sent Events).
//!
//! It turns the bytes of a body, fed in pieces of any size, into [`SseEvent`]s, following
//! the [WHATWG event-stream interpretation] rules. It must never do I/O, never panic on
//! any input, never give a different result for a different split of the same bytes,
//! and never let a hostile stream grow its memory without bound: a line or an event
//! larger than [`SseDecoder::max_event_bytes`] is an error.
//!
//! The shape is the one every decoder of this crate has: [`feed`](SseDecoder::feed)
//! bytes, pull with [`next_event`](SseDecoder::next_event) until it returns `None`, and
//! when the body ends call [`finish`](SseDecoder::finish) until it returns `Ok(None)`.
//!
//! ```
//! use smallest_core::sse::SseDecoder;
//!
//! let mut decoder = SseDecoder::new();
//! decoder.feed(b"event: audio\r\ndata: {\"audio\":");
//! assert!(decoder.next_event().is_none()); // the event is not complete yet
//! decoder.feed(b" \"AAA=\"}\r\n\r\ndata: {\"done\": true}");
//! let event = decoder.next_event().unwrap().unwrap();
//! assert_eq!(event.event.as_deref(), Some("audio"));
//! assert_eq!(event.data, r#"{"audio": "AAA="}"#);
//! assert!(decoder.next_event().is_none());
//! // The last event had no blank line after it; the end of the body dispatches it.
//! let last = decoder.finish().unwrap().unwrap();
//! assert_eq!(last.data, r#"{"done": true}"#);
//! assert_eq!(last.event_type(), "message");
//! assert!(decoder.finish().unwrap().is_none());
//! ```
//!
//! Where this decoder differs from a browser's `EventSource`, on purpose:
//!
//! - the final event of a body that ends without its blank line is dispatched by
//!   [`finish`](SseDecoder::finish) (a browser drops it), so that a terminator frame
//!   written without its trailing blank line is not mistaken for a cut stream;
//! - an `id:` field with an empty value clears the last event id (reported as `None`);
//! - a `retry:` value too large for a `u64` saturates at `u64::MAX`.
//!
//! Invalid UTF-8 becomes U+FFFD replacement characters, exactly as decoding the whole
//! body at once would produce (line ends are ASCII, so no sequence spans two lines).
//!
//! [WHATWG event-stream interpretation]: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

use std::borrow::Cow;
use std::fmt;

use crate::error::Error;

/// The default of [`SseDecoder::max_event_bytes`]: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// What [`Error::Decode`] names when the event stream itself is malformed.
const WHAT: &str = "event stream";

/// The UTF-8 byte order mark, stripped once from the start of the stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched Server-Sent Event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, as sent; `None` when there was none (or it was empty), which
    /// means the event type is `message`.
    pub event: Option<String>,
    /// The `data:` lines of the event, joined with `\n`.
    pub data: String,
    /// The last event id at the time of the event: the most recent `id:` field of the
    /// stream so far (it persists across events), `None` if there was none or it was
    /// cleared by an empty `id:`.
    pub id: Option<String>,
    /// The `retry:` field that arrived with this event, in milliseconds.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The event type: the `event:` field, or `message` when there was none.
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// An incremental `text/event-stream` decoder. See the [module docs](self).
pub struct SseDecoder {
    lines: Lines,
    builder: Builder,
    /// Set once an error was returned; the message is repeated by [`SseDecoder::finish`].
    failed: Option<String>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SseDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseDecoder")
            .field("buffered", &(self.lines.buf.len() - self.lines.pos))
            .field("ended", &self.lines.eof)
            .field("failed", &self.failed)
            .field("last_event_id", &self.builder.last_id)
            .field("retry", &self.builder.retry)
            .finish()
    }
}

impl SseDecoder {
    /// A decoder that refuses lines and events larger than [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that refuses any line, and any event's data, larger than `max` bytes.
    pub fn with_max_event_bytes(max: usize) -> Self {
        SseDecoder {
            lines: Lines {
                buf: Vec::new(),
                pos: 0,
                scan: 0,
                skip_lf: false,
                bom_done: false,
                eof: false,
                max,
            },
            builder: Builder {
                data: String::new(),
                has_data: false,
                event_type: None,
                event_retry: None,
                last_id: None,
                retry: None,
                max,
            },
            failed: None,
        }
    }

    /// The largest line, or event data, this decoder accepts, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.lines.max
    }

    /// The last event id seen so far (the value a reconnecting client would send as
    /// `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.builder.last_id.as_deref()
    }

    /// The most recent valid `retry:` value seen so far, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.builder.retry
    }

    /// Whether the decoder has failed: it returned an error and yields nothing more.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Appends the next bytes of the body. Nothing is decoded until
    /// [`next_event`](Self::next_event) is called; call it until it returns `None`
    /// before feeding more, or the undecoded bytes accumulate.
    ///
    /// Bytes fed after [`finish`](Self::finish), or after an error, are ignored.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() || self.lines.eof {
            return;
        }
        self.lines.feed(bytes);
    }

    /// The next complete event, `None` when more bytes are needed.
    ///
    /// An error (a line or an event larger than the limit) is returned once; the decoder
    /// then yields nothing more.
    pub fn next_event(&mut self) -> Option<Result<SseEvent, Error>> {
        if self.failed.is_some() {
            return None;
        }
        let eof = self.lines.eof;
        loop {
            let line = match self.lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) if eof => {
                    // The end of the body ends the last event, blank line or not.
                    return self.builder.dispatch().map(Ok);
                }
                Ok(None) => return None,
                Err(message) => return Some(Err(self.fail(message))),
            };
            match self.builder.line(line) {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => {}
                Err(message) => return Some(Err(self.fail(message))),
            }
        }
    }

    /// Tells the decoder the body ended and returns the next event that is left: the
    /// final event when the body did not end with a blank line, or events not yet
    /// pulled with [`next_event`](Self::next_event). Call it until it returns
    /// `Ok(None)`.
    ///
    /// After an error it returns an error again (never a quiet end).
    pub fn finish(&mut self) -> Result<Option<SseEvent>, Error> {
        if let Some(message) = &self.failed {
            return Err(Error::Decode {
                what: WHAT,
                message: format!("the stream already failed: {message}"),
            });
        }
        self.lines.eof = true;
        self.next_event().transpose()
    }

    fn fail(&mut self, message: String) -> Error {
        self.failed = Some(message.clone());
        // Nothing more will be read; let the memory go.
        self.lines.buf = Vec::new();
        self.lines.pos = 0;
        self.lines.scan = 0;
        self.builder.data = String::new();
        Error::Decode {
            what: WHAT,
            message,
        }
    }
}

/// The line splitter: a buffer of undecoded bytes and where the next line starts.
struct Lines {
    buf: Vec<u8>,
    /// The start of the first line not yet returned.
    pos: usize,
    /// `buf[pos..scan]` holds no line end: searching resumes at `scan`, so a long line
    /// fed in many pieces is scanned once.
    scan: usize,
    /// The last line ended with a CR at the end of the buffer: an LF right after it is
    /// the second half of a CRLF, not an empty line.
    skip_lf: bool,
    bom_done: bool,
    eof: bool,
    max: usize,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            // Do not keep a huge allocation around after one huge event.
            if self.buf.capacity() > 1 << 20 {
                self.buf.shrink_to(64 * 1024);
            }
            self.pos = 0;
            self.scan = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() - self.pos {
            // Move the unread tail to the front only when more was consumed than is left,
            // so each byte is moved O(1) times on average.
            self.buf.drain(..self.pos);
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, without its line end. At the end of the body, an
    /// unterminated last line is returned as a line.
    fn next_line(&mut self) -> Result<Option<&[u8]>, String> {
        let len = self.buf.len();
        if !self.bom_done {
            let head = &self.buf[self.pos..];
            if head.len() < BOM.len() && BOM.starts_with(head) && !self.eof {
                return Ok(None); // maybe a BOM split across two pieces
            }
            if head.starts_with(BOM) {
                self.pos += BOM.len();
                self.scan = self.scan.max(self.pos);
            }
            self.bom_done = true;
        }
        if self.skip_lf && self.pos < len {
            if self.buf[self.pos] == b'\n' {
                self.pos += 1;
                self.scan = self.scan.max(self.pos);
            }
            self.skip_lf = false;
        }
        let from = self.scan.max(self.pos);
        match memchr::memchr2(b'\n', b'\r', &self.buf[from..]) {
            Some(i) => {
                let start = self.pos;
                let end = from + i;
                let mut next = end + 1;
                if self.buf[end] == b'\r' {
                    if next < len {
                        if self.buf[next] == b'\n' {
                            next += 1;
                        }
                    } else {
                        self.skip_lf = true;
                    }
                }
                if end - start > self.max {
                    return Err(too_long("a line", self.max));
                }
                self.pos = next;
                self.scan = next;
                Ok(Some(&self.buf[start..end]))
            }
            None => {
                self.scan = len;
                if len - self.pos > self.max {
                    return Err(too_long("a line", self.max));
                }
                if self.eof && self.pos < len {
                    let start = self.pos;
                    self.pos = len;
                    return Ok(Some(&self.buf[start..]));
                }
                Ok(None)
            }
        }
    }
}

/// The event being assembled from its field lines.
struct Builder {
    data: String,
    /// Whether any `data:` line arrived (an event with only `data:` lines that are
    /// empty has empty data but is still dispatched).
    has_data: bool,
    event_type: Option<String>,
    /// The `retry:` of the event being assembled.
    event_retry: Option<u64>,
    /// The last event id buffer: persists across events.
    last_id: Option<String>,
    /// The latest `retry:` of the stream.
    retry: Option<u64>,
    max: usize,
}

impl Builder {
    /// Interprets one line; a blank line may dispatch an event.
    fn line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, String> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(0) => return Ok(None), // a comment
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                let value = lossy(value);
                let size = self.data.len() + usize::from(self.has_data) + value.len();
                if size > self.max {
                    return Err(too_long("an event's data", self.max));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => {
                self.event_type = Some(lossy(value).into_owned()).filter(|t| !t.is_empty());
            }
            // An id with a NUL is ignored (the spec's rule).
            b"id" if !value.contains(&0) => {
                self.last_id = Some(lossy(value).into_owned()).filter(|t| !t.is_empty());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.event_retry = Some(ms);
                self.retry = Some(ms);
            }
            _ => {} // unknown fields, and invalid `id`/`retry` values, are ignored
        }
        Ok(None)
    }

    /// Ends the event being assembled: returns it if it had data, resets the per-event
    /// buffers either way.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let retry = self.event_retry.take();
        let event = self.event_type.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
            retry,
        })
    }
}

/// UTF-8 with replacement characters; the check for valid text (the usual case) is
/// faster than `String::from_utf8_lossy`'s chunk walk.
fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// The message does not include the size seen: it depends on how the body was split.
fn too_long(what: &str, max: usize) -> String {
    format!("{what} is longer than the limit of {max} bytes")
}
