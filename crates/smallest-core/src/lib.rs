//! # smallest-core
//!
//! The sans-IO core of the Rust SDK for the [Smallest AI](https://smallest.ai) Waves API:
//! Lightning text-to-speech and Pulse speech-to-text.
//!
//! This crate builds [`http::Request`] values and parses [`http::Response`] values. It
//! never opens a socket, never spawns a thread, never reads a clock and never draws a
//! random number, so it runs under any executor and any HTTP client. The transports
//! that ship with it are `smallest-hyper` (tokio) and `smallest-blocking` (plain
//! threads); anything else can drive it in a few lines.
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
