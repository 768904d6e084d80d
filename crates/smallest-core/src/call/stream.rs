//! The SSE synthesis (`POST /waves/v1/tts/live`) as machines: a [`Call`] opens it
//! (slot, retries until the head says 2xx), then [`StreamState`] runs the body.
//!
//! Once a 2xx head arrived nothing is retried: audio may already have reached the
//! user. What a cut body means (an error, never an early end), the idle and total limits
//! and when the TTS slot is returned are decided here.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::response::Parts;
use http::{Request, Response};

use super::{AttemptLimits, Call, Deadline, Operation};
use crate::config::Config;
use crate::endpoint::BodyKind;
use crate::error::{Error, TimeoutPhase};
use crate::limiter::TtsPermit;
use crate::options::ClientOptions;
use crate::tts::{OutputFormat, ResponseInfo, TtsRequest};
use crate::tts_stream::{AudioChunk, TtsStreamDecoder, TtsStreamRequest, TtsStreamStart};

impl Operation for TtsStreamRequest {
    type Output = TtsStreamDecoder;

    fn uses_tts_slot(&self) -> bool {
        true
    }

    fn request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        self.prepare(config)
    }

    fn decide_from_head(&self, head: &Parts) -> Option<TtsStreamDecoder> {
        match self.start(head) {
            TtsStreamStart::Stream(decoder) => Some(decoder),
            TtsStreamStart::Failed(_) => None,
        }
    }

    fn body_kind(&self) -> BodyKind {
        BodyKind::Evidence
    }

    fn parse_response(&self, response: Response<Bytes>) -> Result<TtsStreamDecoder, Error> {
        let (head, body) = response.into_parts();
        match self.start(&head) {
            TtsStreamStart::Failed(failed) => Err(failed.into_error(&body)),
            TtsStreamStart::Stream(decoder) => Ok(decoder),
        }
    }
}

impl Call<TtsStreamRequest> {
    /// The call that opens an SSE synthesis of `request`.
    pub fn stream(
        request: &TtsRequest,
        config: &Config,
        options: &ClientOptions,
        seed: u64,
    ) -> Self {
        Call::of(
            TtsStreamRequest::new(request.clone()),
            config,
            options,
            seed,
        )
    }

    /// The body phase of the stream this call opened: it takes over the TTS slot and
    /// the limits. `started` is when the caller began the call (for the time to the
    /// first chunk).
    pub fn into_stream(mut self, decoder: TtsStreamDecoder, started: Instant) -> StreamState {
        let limits = self.limits();
        let mut state = StreamState::new(decoder, self.take_slot(), limits, started);
        state.key = Some(self.config.api_key().clone());
        state
    }
}

/// What [`StreamState::poll`] tells the transport.
#[derive(Debug)]
#[must_use]
pub enum StreamEvent {
    /// Hand this chunk to the caller.
    Chunk(AudioChunk),
    /// Read more of the body ([`handle_data`](StreamState::handle_data),
    /// [`handle_end`](StreamState::handle_end) or
    /// [`handle_error`](StreamState::handle_error)); if nothing arrives, poll again at
    /// this instant (a time limit ends there).
    Read(Option<Instant>),
    /// The stream is complete: the server's `done` frame arrived.
    End,
    /// The stream failed; nothing follows.
    Fail(Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Streaming,
    Finishing,
    Done,
}

/// The body of an SSE synthesis: decoding, limits, completeness, the TTS slot.
#[derive(Debug)]
pub struct StreamState {
    decoder: TtsStreamDecoder,
    slot: Option<TtsPermit>,
    idle: Option<Duration>,
    deadline: Option<Deadline>,
    /// When the current wait for bytes began (the idle limit counts from there).
    waiting_since: Option<Instant>,
    phase: Phase,
    failure: Option<Error>,
    started: Instant,
    first_chunk: Option<Duration>,
    /// Removed from the server's error frames.
    key: Option<crate::auth::ApiKey>,
}

impl StreamState {
    /// The body phase of a stream, holding `slot` until it ends.
    pub fn new(
        decoder: TtsStreamDecoder,
        slot: Option<TtsPermit>,
        limits: AttemptLimits,
        started: Instant,
    ) -> Self {
        StreamState {
            decoder,
            slot,
            idle: limits.idle,
            deadline: limits.deadline,
            waiting_since: None,
            phase: Phase::Streaming,
            failure: None,
            started,
            first_chunk: None,
            key: None,
        }
    }

    /// What to do next. Call it again after each `handle_*`, and when the instant of
    /// [`StreamEvent::Read`] is reached.
    pub fn poll(&mut self, now: Instant) -> StreamEvent {
        loop {
            if let Some(e) = self.failure.take() {
                return self.fail(e);
            }
            match self.phase {
                Phase::Done => return StreamEvent::End,
                Phase::Finishing => {
                    return match self.decoder.finish() {
                        Ok(Some(chunk)) => self.deliver(chunk, now),
                        Ok(None) => {
                            self.end();
                            StreamEvent::End
                        }
                        Err(e) => self.fail(e),
                    };
                }
                Phase::Streaming => {}
            }
            match self.decoder.next_chunk() {
                Some(Ok(chunk)) => return self.deliver(chunk, now),
                Some(Err(e)) => return self.fail(e),
                None => {}
            }
            if self.decoder.is_done() {
                // The `done` frame arrived: the audio is complete whether or not the
                // server closes the body (one that keeps it open must not hang us).
                self.phase = Phase::Finishing;
                continue;
            }
            if let Some(deadline) = self.deadline
                && now >= deadline.at
            {
                self.failure = Some(deadline.error());
                continue;
            }
            // The idle limit measures the server's silence, not the caller's: it starts
            // when a read finds nothing, not when the last chunk was handed over.
            let since = *self.waiting_since.get_or_insert(now);
            let idle_at = self.idle.and_then(|idle| since.checked_add(idle));
            if let (Some(at), Some(limit)) = (idle_at, self.idle)
                && now >= at
            {
                self.failure = Some(Error::Timeout {
                    phase: TimeoutPhase::Idle,
                    limit,
                });
                continue;
            }
            let wake = match (idle_at, self.deadline.map(|d| d.at)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return StreamEvent::Read(wake);
        }
    }

    /// Bytes of the body arrived.
    pub fn handle_data(&mut self, data: &[u8]) {
        self.waiting_since = None;
        self.decoder.feed(data);
    }

    /// The body ended: the decoder says whether the audio is complete.
    pub fn handle_end(&mut self) {
        if self.phase == Phase::Streaming {
            self.phase = Phase::Finishing;
        }
    }

    /// Reading the body failed (a reset, a TLS error …): the stream fails with it.
    pub fn handle_error(&mut self, error: Error) {
        if self.phase != Phase::Done {
            self.failure = Some(error);
        }
    }

    fn deliver(&mut self, chunk: AudioChunk, now: Instant) -> StreamEvent {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(now.saturating_duration_since(self.started));
        }
        StreamEvent::Chunk(chunk)
    }

    /// The stream is over: free the slot now rather than when the stream is dropped.
    fn end(&mut self) {
        if self.phase != Phase::Done {
            tracing::debug!(
                target: "smallest",
                chunks = self.decoder.chunks(),
                audio_bytes = self.decoder.audio_bytes(),
                complete = self.decoder.is_done() && !self.decoder.is_failed(),
                "stream ended"
            );
        }
        self.phase = Phase::Done;
        self.slot = None;
    }

    fn fail(&mut self, error: Error) -> StreamEvent {
        self.end();
        match &self.key {
            Some(key) => StreamEvent::Fail(crate::redact::Redact::redact(error, key)),
            None => StreamEvent::Fail(error),
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

    /// `data`, the audio of this stream read whole, as an [`Audio`](crate::Audio) with
    /// the stream's format, rate and response ids (what a transport's `collect` returns).
    pub fn audio(&self, data: Bytes) -> crate::Audio {
        crate::Audio::new(data, self.format(), self.sample_rate(), self.info().clone())
    }

    /// From the start of the call (slot wait included) to the first chunk handed over.
    pub fn time_to_first_chunk(&self) -> Option<Duration> {
        self.first_chunk
    }

    /// Audio bytes handed over so far.
    pub fn audio_bytes(&self) -> u64 {
        self.decoder.audio_bytes()
    }

    /// Chunks handed over so far.
    pub fn chunks(&self) -> u64 {
        self.decoder.chunks()
    }

    /// Whether the stream ended with the server's `done` frame: all the audio arrived.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Done && self.decoder.is_done() && !self.decoder.is_failed()
    }

    /// Whether the stream is over (complete or failed).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether the stream still holds its TTS slot.
    pub fn holds_slot(&self) -> bool {
        self.slot.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::TtsLimiter;
    use crate::options::ClientBuilder;
    use crate::tts_stream::TtsStreamDecoder;

    fn limits(idle: Option<Duration>, total: Option<(Instant, Duration)>) -> AttemptLimits {
        AttemptLimits {
            connect: None,
            response_head: None,
            idle,
            deadline: total.map(|(at, limit)| Deadline { at, limit }),
        }
    }

    const FRAME: &[u8] =
        b"event: audio\ndata: {\"audio\": \"AQIDBA==\", \"done\": false, \"status\": \"206\"}\n\n";
    const DONE: &[u8] = b"data: {\"status\": \"200\", \"done\": true}\n\n";

    #[test]
    fn a_cut_stream_is_an_error_and_a_complete_one_frees_its_slot() {
        let limiter = TtsLimiter::new(1);
        let t0 = Instant::now();
        let decoder = TtsStreamDecoder::new(OutputFormat::Pcm, 24000);
        let mut s = StreamState::new(decoder, limiter.try_acquire(), limits(None, None), t0);
        assert!(matches!(s.poll(t0), StreamEvent::Read(None)));
        s.handle_data(FRAME);
        assert!(matches!(s.poll(t0), StreamEvent::Chunk(_)));
        s.handle_end();
        assert!(matches!(
            s.poll(t0),
            StreamEvent::Fail(Error::Stream { .. })
        ));
        assert_eq!(limiter.available(), 1);

        let decoder = TtsStreamDecoder::new(OutputFormat::Pcm, 24000);
        let mut s = StreamState::new(decoder, limiter.try_acquire(), limits(None, None), t0);
        s.handle_data(FRAME);
        s.handle_data(DONE);
        assert!(matches!(s.poll(t0), StreamEvent::Chunk(_)));
        s.handle_end();
        assert!(matches!(s.poll(t0), StreamEvent::End));
        assert!(s.is_complete());
        assert_eq!(limiter.available(), 1);
    }

    #[test]
    fn idle_counts_from_the_first_empty_read_and_total_from_the_deadline() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(1);
        let decoder = TtsStreamDecoder::new(OutputFormat::Pcm, 24000);
        let mut s = StreamState::new(decoder, None, limits(Some(idle), None), t0);
        // The caller came back late: the silence starts now, not at t0.
        let late = t0 + Duration::from_secs(10);
        assert!(matches!(s.poll(late), StreamEvent::Read(Some(at)) if at == late + idle));
        assert!(matches!(
            s.poll(late + idle),
            StreamEvent::Fail(Error::Timeout {
                phase: TimeoutPhase::Idle,
                ..
            })
        ));

        let total = Duration::from_secs(2);
        let decoder = TtsStreamDecoder::new(OutputFormat::Pcm, 24000);
        let mut s = StreamState::new(
            decoder,
            None,
            limits(Some(idle), Some((t0 + total, total))),
            t0,
        );
        for i in 0..20u32 {
            let now = t0 + Duration::from_millis(100) * i;
            assert!(matches!(s.poll(now), StreamEvent::Read(Some(_))));
            s.handle_data(b":");
        }
        assert!(matches!(
            s.poll(t0 + total),
            StreamEvent::Fail(Error::Timeout {
                phase: TimeoutPhase::Total,
                ..
            })
        ));
    }

    #[test]
    fn a_failed_head_is_retried_and_then_reported_with_its_body() {
        struct Probe(ClientOptions);
        impl crate::options::FromOptions for Probe {
            fn from_options(_: Config, options: ClientOptions) -> Result<Self, Error> {
                Ok(Probe(options))
            }
        }
        let config = Config::new(crate::ApiKey::new("sk_stream_test_012345").unwrap());
        let options = ClientBuilder::<Probe>::new(config.clone())
            .retry_policy(crate::retry::RetryPolicy::default().with_max_retries(1))
            .build()
            .unwrap()
            .0;
        let request = TtsRequest::new("Hi.", "meher");
        let mut call = Call::stream(&request, &config, &options, 9);
        let (now, wall) = (Instant::now(), std::time::SystemTime::UNIX_EPOCH);
        let super::super::Next::TakeSlot(wait) = call.poll(now, wall) else {
            panic!("slot first")
        };
        drop(wait);
        call.slot_taken(options.tts_limiter().try_acquire().unwrap());
        let mut outcome = None;
        for _ in 0..3 {
            assert!(matches!(call.poll(now, wall), super::super::Next::Send(_)));
            let head = Response::builder()
                .status(500)
                .body(())
                .unwrap()
                .into_parts()
                .0;
            assert_eq!(call.handle_head(head), Some(4097));
            call.handle_body(Bytes::from_static(br#"{"message":"boom"}"#), now, wall);
            match call.poll(now, wall) {
                super::super::Next::Sleep(_) => continue,
                other => {
                    outcome = Some(other);
                    break;
                }
            }
        }
        let Some(super::super::Next::Fail(e)) = outcome else {
            panic!("gave up after one retry")
        };
        assert_eq!(call.attempts(), 2);
        assert_eq!(e.api().map(|a| a.status().as_u16()), Some(500), "{e}");
        drop(call);
        assert_eq!(options.tts_limiter().available(), 1);
    }
}
