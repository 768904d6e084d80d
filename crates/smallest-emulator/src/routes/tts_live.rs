//! `POST /waves/v1/tts/live` — synthesis as Server-Sent Events (API.md §3.4).
//!
//! The request goes through exactly the sync route's path (auth, product access, body limit, zod
//! validation, the key's concurrency slot, the configured latency, lazy synthesis); only the framing
//! differs. The raw audio in the requested `output_format` is cut into chunks of
//! `sse_chunk_bytes` (default 1024, so 16-bit PCM samples may straddle two chunks when the size is
//! odd), each sent as
//!
//! ```text
//! event: audio
//! data: {"audio": "<base64>", "done": false, "status": "206"}
//!
//! ```
//!
//! and the stream ends with `data: {"status": "200", "done": true}` and a blank line (unless the
//! emulator was told to stop before it). Audio is rendered as the client reads, so memory stays
//! bounded whatever the length; the concurrency slot is held until the last frame is produced or
//! the client goes away.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::Ctx;
use super::tts::{self, AudioBody};
use crate::audio::OutputFormat;
use crate::auth::Caller;
use crate::body::Body;
use crate::faults::{AppliedFault, Fault};
use crate::state::TtsSlot;

/// Without pacing, raw audio packed into one body frame (several events).
const BATCH_RAW_BYTES: usize = 16 * 1024;

/// What ends each audio event.
const EVENT_TAIL: &[u8] = b"\", \"done\": false, \"status\": \"206\"}\n\n";
/// What starts each audio event.
const EVENT_HEAD: &[u8] = b"event: audio\ndata: {\"audio\": \"";
/// The final frame.
const DONE_FRAME: &[u8] = b"data: {\"status\": \"200\", \"done\": true}\n\n";

/// Bytes of encoded audio per second of speech in `format` at `sample_rate`.
fn bytes_per_second(format: OutputFormat, sample_rate: u32) -> f64 {
    match format {
        OutputFormat::Pcm | OutputFormat::Wav => 2.0 * f64::from(sample_rate),
        OutputFormat::Ulaw | OutputFormat::Alaw => f64::from(sample_rate),
        // The emulator's MP3 is constant 128 kbps.
        OutputFormat::Mp3 => 16_000.0,
    }
}

pub(super) async fn stream(ctx: &mut Ctx<'_>, caller: &Caller) -> Response<Body> {
    let mut job = match tts::prepare(ctx, caller).await {
        Ok(job) => job,
        Err(resp) => return *resp,
    };
    let settings = &ctx.state.settings;
    let cut = settings.sse_stop_before_done
        || matches!(
            ctx.parts.extensions.get::<AppliedFault>(),
            Some(AppliedFault(Fault::SseCutBeforeDone))
        );
    let factor = settings.realtime_factor;
    let secs_per_byte = (factor.is_finite() && factor > 0.0)
        .then(|| 1.0 / (bytes_per_second(job.params.format, job.params.sample_rate) * factor));
    let slot = job.audio.take_slot();
    let body = SseBody {
        audio: job.audio,
        slot,
        pending: BytesMut::new(),
        audio_done: false,
        chunk: settings.sse_chunk_bytes.max(1),
        secs_per_byte,
        start: None,
        emitted: 0,
        cut_before_done: cut,
        finished: false,
        sleep: None,
    };
    let mut resp = Response::new(body.boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    tts::put_id_headers(ctx, &job.params, headers);
    resp
}

/// The event stream of one request, produced as the client reads it.
struct SseBody {
    audio: AudioBody,
    /// Held until the final frame is produced (or the body is dropped when the client leaves).
    slot: Option<TtsSlot>,
    /// Encoded audio not sent yet (at most about two synthesizer frames).
    pending: BytesMut,
    audio_done: bool,
    chunk: usize,
    /// Pacing: seconds of (scaled) real time per byte of audio; `None` = as fast as possible.
    secs_per_byte: Option<f64>,
    start: Option<Instant>,
    /// Raw audio bytes sent so far.
    emitted: u64,
    cut_before_done: bool,
    finished: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

fn push_event(out: &mut Vec<u8>, raw: &[u8]) {
    out.extend_from_slice(EVENT_HEAD);
    let at = out.len();
    out.resize(at + base64::encoded_len(raw.len(), true).unwrap_or(0), 0);
    let written = STANDARD.encode_slice(raw, &mut out[at..]).unwrap_or(0);
    out.truncate(at + written);
    out.extend_from_slice(EVENT_TAIL);
}

impl SseBody {
    /// Pulls synthesized audio until `want` bytes are pending or the audio is over.
    fn fill(&mut self, want: usize, cx: &mut Context<'_>) -> Poll<()> {
        while !self.audio_done && self.pending.len() < want {
            match ready!(Pin::new(&mut self.audio).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
                Some(Err(never)) => match never {},
                None => self.audio_done = true,
            }
        }
        Poll::Ready(())
    }
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let start = *this.start.get_or_insert_with(Instant::now);
        let batch = if this.secs_per_byte.is_some() {
            this.chunk
        } else {
            BATCH_RAW_BYTES.max(this.chunk)
        };
        let mut out: Vec<u8> = Vec::new();
        let mut batched = 0;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }
            if this.fill(this.chunk, cx).is_pending() {
                if out.is_empty() {
                    return Poll::Pending;
                }
                break;
            }
            if this.pending.is_empty() {
                // All audio is out.
                if !out.is_empty() {
                    break;
                }
                this.finished = true;
                this.slot = None;
                if this.cut_before_done {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DONE_FRAME)))));
            }
            let take = this.chunk.min(this.pending.len());
            if let Some(secs_per_byte) = this.secs_per_byte {
                // A chunk is due once the audio it ends with would have been spoken.
                let due_secs = (this.emitted + take as u64) as f64 * secs_per_byte;
                let due = start + Duration::from_secs_f64(due_secs.min(1e9));
                if Instant::now() < due {
                    if !out.is_empty() {
                        break;
                    }
                    this.sleep = Some(Box::pin(tokio::time::sleep_until(due)));
                    continue;
                }
            }
            let raw = this.pending.split_to(take);
            push_event(&mut out, &raw);
            this.emitted += take as u64;
            batched += take;
            if batched >= batch {
                break;
            }
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_framing_is_exact() {
        let mut out = Vec::new();
        push_event(&mut out, b"\x01\x02\x03");
        assert_eq!(
            out,
            b"event: audio\ndata: {\"audio\": \"AQID\", \"done\": false, \"status\": \"206\"}\n\n"
        );
        assert_eq!(bytes_per_second(OutputFormat::Pcm, 24_000), 48_000.0);
    }
}
