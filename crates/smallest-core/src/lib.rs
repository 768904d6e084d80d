//! # smallest-core
//!
//! The sans-IO core of the Rust SDK for the [Smallest AI](https://smallest.ai) Waves API:
//! Lightning text-to-speech and Pulse speech-to-text.
//!
//! This crate builds [`http::Request`] values and parses [`http::Response`] values. It
//! never opens a socket, never spawns a thread, never reads a clock and never draws a
//! random number, so it runs under any executor and any HTTP client. The transports
//! that ship with it are `smallest-hyper` (tokio), `smallest-blocking` (plain threads)
//! and `smallest-async` (any executor: smol, tokio, or yours behind a two-method
//! `Runtime` trait); anything else can drive it in a few lines.
//!
//! `docs/custom-runtime.md` in the repository is the guide to the three ways in (the
//! smol/tokio client, a `Runtime` for your executor, this crate with any HTTP client);
//! its facts in short:
//!
//! - a raw HTTP/1.1 writer adds what an HTTP library adds itself: the origin-form
//!   target (`uri.path_and_query()`) on the request line, `Host` (the URI's authority)
//!   and `Content-Length`; the core sets `Authorization` (marked sensitive),
//!   `User-Agent`, `X-Source` and `Content-Type`;
//! - a call is the [`call::Call`] loop (its docs have it in full): take the TTS slot,
//!   send, sleep a backoff, done or fail, with failures reported as
//!   [`Error::transport`]`(request_sent, source)` or [`Error::Timeout`];
//! - a live session is the [`live::LiveDriver`] loop (its docs have it): write what
//!   `poll_transmit` gives within `write_limit`, hand out `poll_item`, wait for a frame
//!   (`handle_frame`; an undecodable frame becomes an error item and the session goes
//!   on), the `poll_timeout` instant (`handle_timeout`), EOF without a close frame
//!   (`handle_dropped`: `Closed` without a code, not an error) or a failure
//!   (`handle_failure`); close with the session's `close`, then keep reading until the
//!   server's close frame or `close_timeout`;
//! - halves without tokio: the driver behind a `std::sync::Mutex` never held across an
//!   `.await`, the socket's write half behind any async mutex, the read half owned by
//!   the receiver, which also runs the timers.
//!
//! ## Concepts
//!
//! - [`Config`] holds the [`ApiKey`] (a [`secrecy::SecretString`] that is read in one
//!   function only) and the base URL.
//! - Every operation implements [`Endpoint`]: [`Endpoint::to_http_request`] validates
//!   and builds the request, [`Endpoint::from_http_response`] parses the answer. Error
//!   statuses become an [`ApiError`] inside [`Error::Api`].
//! - [`prepare`] adds the headers every request carries (`Authorization`,
//!   `User-Agent`, `X-Source`).
//! - Every decision a call makes is a machine here, which a transport interprets:
//!   [`call::Call`] (retries, backoff, the total deadline, body limits, the TTS slot of
//!   [`TtsLimiter`]), [`call::StreamState`] (an SSE synthesis), [`call::UploadOp`] and
//!   [`call::UploadCounter`] (streamed uploads), [`live::LiveDriver`] (a live
//!   WebSocket session). Their settings are one [`ClientOptions`], set with one
//!   [`ClientBuilder`], with the same meaning on every transport ([`options`]).
//! - The live WebSocket APIs are sans-IO sessions: [`TtsLiveSession`] and
//!   [`SttLiveSession`] speak the protocols, [`ws::handshake_request`] builds the
//!   upgrade (with the [`ws::Upgrade`] that checks its answer). [`LiveSession`] is
//!   their common interface (frames in and out, events, timers): the trait
//!   [`live::LiveDriver`] drives, so one driving loop serves both.
//!
//! ## Bring your own HTTP client
//!
//! ```
//! use bytes::Bytes;
//! use smallest_core::{ApiKey, Config, Endpoint, Error, tts::{OutputFormat, TtsRequest}};
//!
//! # fn main() -> Result<(), Error> {
//! let config = Config::new(ApiKey::new("sk_example")?);
//! let request = TtsRequest::new("Hello from Smallest AI.", "meher")
//!     .sample_rate(24000)
//!     .output_format(OutputFormat::Wav);
//! let http_request: http::Request<Bytes> = smallest_core::prepare(&request, &config)?;
//! assert_eq!(http_request.uri(), "https://api.smallest.ai/waves/v1/tts");
//! assert!(http_request.headers()["authorization"].is_sensitive());
//!
//! // … send it with any client, then:
//! let response = http::Response::builder()
//!     .status(200)
//!     .header("content-type", "audio/wav")
//!     .body(Bytes::from_static(b"RIFF....WAVE"))
//!     .unwrap();
//! let audio = request.from_http_response(response)?;
//! assert_eq!(audio.sample_rate(), 24000);
//! # Ok(()) }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod macros;

pub mod audio;
pub mod auth;
pub mod call;
pub mod cloning;
pub mod config;
pub mod dicts;
pub mod endpoint;
pub mod error;
pub mod health;
pub mod limiter;
pub mod limits;
pub mod live;
pub mod options;
pub mod proxy;
pub mod redact;
pub mod retry;
pub mod sse;
pub mod stt;
pub mod stt_live;
pub mod tts;
pub mod tts_live;
pub mod tts_stream;
pub mod voices;
pub mod ws;

pub use auth::{API_KEY_ENV, ApiKey};
pub use config::{BASE_URL_ENV, Config, DEFAULT_BASE_URL};
pub use endpoint::{BodyKind, Endpoint, check_status, prepare};
pub use error::{
    ApiError, ApiErrorKind, BoxError, Error, RetryAfter, TimeoutPhase, ValidationError,
};
pub use health::{Health, HealthStatus};
pub use limiter::{TtsLimiter, TtsPermit};
pub use limits::{LimitFuture, Limits, LocalLimits, Permit, Rate};
pub use options::{
    BodyLimits, ClientBuilder, ClientOptions, FromOptions, RetryHook, RetryNotice, TimeLimits,
};
pub use sse::{SseDecoder, SseEvent};
pub use stt::{
    AudioSource, LegacyTranscribeRequest, SttLanguage, SttModel, TranscribeRequest, Transcription,
};
pub use stt_live::{SttLiveConfig, SttLiveEvent, SttLiveSession};
pub use tts::{Audio, Language, OutputFormat, TtsModel, TtsRequest};
pub use tts_live::{TtsLiveConfig, TtsLiveEvent, TtsLiveSession};
pub use tts_stream::{
    AudioChunk, FailedResponse, TtsStreamDecoder, TtsStreamRequest, TtsStreamStart,
};
pub use ws::{CloseFrame, LiveSession, WsMessage};

// Voices, voice cloning and pronunciation dictionaries.
pub use cloning::{
    CloneStatus, ClonedVoice, CloningType, CreateVoiceClone, ListVoiceClones, VoiceClone,
};
pub use dicts::{
    CreateDict, DeleteDict, DeletedDict, ListDicts, PronunciationDict, PronunciationItem,
    UpdateDict,
};
pub use voices::{CatalogVoice, GetVoiceCatalog, GetVoices, Voice, VoiceFilter, VoiceTags};
