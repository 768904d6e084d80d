//! Live STT that survives a dropped connection: the replay buffer, the session
//! timeline and the reconnect schedule of an [`SttLiveSession`](super::SttLiveSession).
//!
//! Every frame sent since the end of the last final transcript is kept (audio, and the
//! `finalize` / `close_stream` controls in their place). When the connection drops or
//! closes with a retryable code, the session waits the retry policy's backoff, asks the
//! transport for a new connection, and replays those frames on it, the first audio
//! frame cut at the sample where the last final's last word ended. The new
//! connection's times start at zero at that sample; adding the cut's position puts
//! them back on the session's timeline, and a final that ends where an earlier one
//! already ended is not delivered twice.
//!
//! The cut needs the final's word timings, so a reconnecting session always asks the
//! server for `word_timestamps` and removes `words` from transcripts when the user did
//! not ask for them. It needs a fixed number of bytes per second too: reconnecting is
//! for `linear16`, `linear32`, `alaw` and `mulaw` audio.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, ValidationError};
use crate::retry::RetryPolicy;
use crate::stt_live::{SttEncoding, Transcript};

/// How a live STT session reconnects (see [`SttLiveConfig::reconnect`](super::SttLiveConfig::reconnect)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SttReconnect {
    /// Connection attempts after each drop before the session gives up (≥ 1).
    pub max_attempts: u32,
    /// The most audio kept for replay, in bytes: the audio sent since the end of the
    /// last final must fit (4 MiB by default: 131 s of `linear16` at 16 kHz).
    pub buffer_bytes: usize,
}

impl Default for SttReconnect {
    fn default() -> Self {
        SttReconnect {
            max_attempts: 5,
            buffer_bytes: 4 << 20,
        }
    }
}

impl SttReconnect {
    /// Sets the attempts per drop.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets the replay buffer's size in bytes.
    pub fn buffer_bytes(mut self, n: usize) -> Self {
        self.buffer_bytes = n;
        self
    }

    pub(super) fn validate(&self, encoding: &SttEncoding) -> Result<(), ValidationError> {
        if self.max_attempts == 0 {
            return Err(ValidationError::new(
                "reconnect.max_attempts",
                0,
                "at least 1 (or leave reconnect off)",
            ));
        }
        if self.buffer_bytes < 4096 {
            return Err(ValidationError::new(
                "reconnect.buffer_bytes",
                self.buffer_bytes,
                "at least 4096 bytes",
            ));
        }
        if bytes_per_sample(encoding).is_none() {
            return Err(ValidationError::new(
                "encoding",
                encoding.as_str(),
                "reconnecting needs audio with a fixed number of bytes per second: \
                 linear16, linear32, alaw or mulaw",
            ));
        }
        Ok(())
    }
}

/// The bytes of one sample, for the encodings a replay can be cut in.
fn bytes_per_sample(encoding: &SttEncoding) -> Option<u64> {
    match encoding {
        SttEncoding::Linear16 => Some(2),
        SttEncoding::Linear32 => Some(4),
        SttEncoding::Alaw | SttEncoding::Mulaw => Some(1),
        _ => None,
    }
}

/// One frame kept for replay.
#[derive(Debug)]
enum Kept {
    /// Audio that starts at this stream position.
    Audio(u64, Bytes),
    /// A `finalize` sent at this stream position.
    Finalize(u64),
    CloseStream,
}

/// The state of the connection under the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Up,
    /// Waiting for the backoff to pass.
    Waiting(Instant),
    /// The transport must connect now.
    Wanted,
}

/// What a reconnecting session knows beyond one connection.
#[derive(Debug)]
pub(super) struct Resume {
    settings: SttReconnect,
    policy: RetryPolicy,
    /// Bytes of one sample, and of one second.
    sample: u64,
    per_second: u64,
    kept: VecDeque<Kept>,
    kept_bytes: usize,
    /// Audio was dropped from the front of the buffer (it outgrew its size).
    overflowed: bool,
    /// The stream position the current connection's audio starts at.
    base: u64,
    /// The stream position the finals delivered so far cover (a sample boundary).
    covered: u64,
    /// The end of the last delivered final, seconds on the session's timeline.
    last_final_end: f64,
    link: Link,
    /// Attempts since the last drop.
    attempt: u32,
    /// Whether the user asked for `words` (else they are removed).
    user_words: bool,
    /// The finals' text of the connections before this one (for `full_transcript`).
    earlier_text: String,
    connection_text: String,
    seed: u64,
    pub(super) reconnects: u32,
}

impl Resume {
    pub(super) fn new(
        settings: SttReconnect,
        encoding: &SttEncoding,
        sample_rate: u32,
        user_words: bool,
    ) -> Self {
        let sample = bytes_per_sample(encoding).unwrap_or(2);
        Resume {
            settings,
            policy: RetryPolicy::default(),
            sample,
            per_second: sample * u64::from(sample_rate.max(1)),
            kept: VecDeque::new(),
            kept_bytes: 0,
            overflowed: false,
            base: 0,
            covered: 0,
            last_final_end: 0.0,
            link: Link::Up,
            attempt: 0,
            user_words,
            earlier_text: String::new(),
            connection_text: String::new(),
            seed: 0x9E37_79B9_7F4A_7C15,
            reconnects: 0,
        }
    }

    pub(super) fn set_policy(&mut self, policy: &RetryPolicy, seed: u64) {
        self.policy = *policy;
        self.seed = seed | 1;
    }

    pub(super) fn is_up(&self) -> bool {
        self.link == Link::Up
    }

    pub(super) fn wants_connection(&self) -> bool {
        self.link == Link::Wanted
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match self.link {
            Link::Waiting(at) => Some(at),
            _ => None,
        }
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if let Link::Waiting(at) = self.link
            && at <= now
        {
            self.link = Link::Wanted;
        }
    }

    /// Keeps `audio`, which starts at stream position `start`.
    pub(super) fn keep_audio(&mut self, start: u64, audio: Bytes) {
        self.kept_bytes += audio.len();
        self.kept.push_back(Kept::Audio(start, audio));
        while self.kept_bytes > self.settings.buffer_bytes {
            match self.kept.pop_front() {
                Some(Kept::Audio(_, a)) => {
                    self.kept_bytes -= a.len();
                    self.overflowed = true;
                }
                Some(_) => {}
                None => break,
            }
        }
    }

    pub(super) fn keep_control(&mut self, finalize: bool, position: u64) {
        self.kept.push_back(if finalize {
            Kept::Finalize(position)
        } else {
            Kept::CloseStream
        });
    }

    /// The connection is gone. `Some(wait)`: reconnect after `wait`; `None`: give up
    /// (no attempts left).
    pub(super) fn lost(&mut self, now: Instant) -> Option<Duration> {
        if self.link != Link::Up {
            return Some(Duration::ZERO);
        }
        self.schedule(now)
    }

    fn schedule(&mut self, now: Instant) -> Option<Duration> {
        if self.attempt >= self.settings.max_attempts {
            return None;
        }
        self.attempt += 1;
        let jitter = self.jitter();
        let wait = self.policy.backoff(self.attempt, jitter);
        self.link = Link::Waiting(now + wait);
        Some(wait)
    }

    /// Opening a connection failed: `true` when another attempt is scheduled.
    pub(super) fn connect_failed(&mut self, now: Instant) -> bool {
        self.link = Link::Up;
        self.schedule(now).is_some()
    }

    /// The attempts are used up, or the buffer outgrew its size: why the session ends.
    pub(super) fn give_up(&self, cause: &Error) -> Error {
        Error::Stream {
            code: None,
            message: format!(
                "the live STT connection was lost and {} reconnect attempt(s) failed \
                 (last: {cause}); raise reconnect.max_attempts or check the network",
                self.settings.max_attempts
            ),
        }
    }

    /// A new connection is up: the frames to send on it first, and what to report.
    pub(super) fn connected(&mut self) -> Result<(Vec<Kept2>, u64, f64), Error> {
        if self.overflowed {
            return Err(Error::Stream {
                code: None,
                message: format!(
                    "cannot resume the live STT session: the audio since the last final \
                     transcript outgrew the replay buffer (reconnect.buffer_bytes = {} \
                     bytes); raise it, or send finalize more often",
                    self.settings.buffer_bytes
                ),
            });
        }
        self.link = Link::Up;
        self.reconnects += 1;
        self.base = self.covered;
        self.earlier_text.push_str(&self.connection_text);
        self.connection_text.clear();
        let mut frames = Vec::with_capacity(self.kept.len());
        let mut replayed = 0u64;
        for kept in &self.kept {
            match kept {
                Kept::Audio(start, audio) => {
                    let skip = self.covered.saturating_sub(*start).min(audio.len() as u64);
                    let audio = audio.slice(skip as usize..);
                    if !audio.is_empty() {
                        replayed += audio.len() as u64;
                        frames.push(Kept2::Audio(audio));
                    }
                }
                Kept::Finalize(_) => frames.push(Kept2::Finalize),
                Kept::CloseStream => frames.push(Kept2::CloseStream),
            }
        }
        Ok((frames, replayed, self.offset()))
    }

    /// The first answer on a new connection: the next drop gets its attempts afresh.
    pub(super) fn heard(&mut self) {
        self.attempt = 0;
    }

    /// The current connection's start on the session's timeline, in seconds.
    fn offset(&self) -> f64 {
        self.base as f64 / self.per_second as f64
    }

    /// Puts `seconds` of the current connection on the session's timeline.
    pub(super) fn shift(&self, seconds: f64) -> f64 {
        seconds + self.offset()
    }

    /// Puts a transcript on the session's timeline. `false`: a final already
    /// delivered (its end is not past the last final's), to be dropped.
    pub(super) fn transcript(&mut self, t: &mut Transcript) -> bool {
        let offset = self.offset();
        for w in &mut t.words {
            w.start += offset;
            w.end += offset;
        }
        for u in &mut t.utterances {
            u.start += offset;
            u.end += offset;
        }
        let end = t.words.iter().map(|w| w.end).fold(f64::NAN, f64::max);
        if t.is_final {
            if self.reconnects > 0 && end.is_finite() && end <= self.last_final_end + 1e-6 {
                return false;
            }
            if t.from_finalize
                && let Some(p) = self
                    .kept
                    .iter()
                    .position(|k| matches!(k, Kept::Finalize(_)))
            {
                self.kept.remove(p);
            }
            if end.is_finite() {
                self.last_final_end = self.last_final_end.max(end);
                self.cover(end);
            }
            if !t.text.is_empty() {
                if !self.connection_text.is_empty() || !self.earlier_text.is_empty() {
                    self.connection_text.push(' ');
                }
                self.connection_text.push_str(&t.text);
            }
        }
        if let Some(full) = &mut t.full_transcript
            && !self.earlier_text.is_empty()
        {
            *full = format!("{} {}", self.earlier_text.trim_end(), full.trim_start());
        }
        if !self.user_words {
            t.words.clear();
        }
        true
    }

    /// The finals cover the stream up to `end` seconds: forget the audio before it.
    fn cover(&mut self, end: f64) {
        let bytes = (end * self.per_second as f64).floor().max(0.0) as u64;
        let covered = bytes - bytes % self.sample;
        if covered <= self.covered {
            return;
        }
        self.covered = covered;
        // Audio wholly before the cut, and the `finalize`s sent there (their finals
        // are in), are done with.
        loop {
            match self.kept.front() {
                Some(Kept::Audio(start, audio)) if start + audio.len() as u64 <= covered => {
                    self.kept_bytes -= audio.len();
                }
                Some(Kept::Finalize(at)) if *at <= covered => {}
                _ => break,
            }
            self.kept.pop_front();
        }
    }

    fn jitter(&mut self) -> f64 {
        // xorshift64: a jitter in [0, 1) from the transport's seed.
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A frame to replay.
#[derive(Debug)]
pub(super) enum Kept2 {
    Audio(Bytes),
    Finalize,
    CloseStream,
}
