//! `WSS /waves/v1/stt/live?model=pulse&…`: Pulse live speech-to-text (API.md §4.2,
//! §12.5), and the legacy `WSS /waves/v1/pulse/get_text` (§4.3).
//!
//! [`SttLiveConfig`] holds every query parameter, typed and validated, and builds the
//! upgrade request (all session settings travel in the query string; there is no init
//! message). [`SttLiveSession`] is the sans-IO state machine of one connection: audio
//! goes up as binary frames, `{"type":"finalize"}` asks for a final transcript of what
//! was heard so far, `{"type":"close_stream"}` ends the stream; transcripts, VAD events
//! and errors come back as JSON text.
//!
//! The protocol has no documented idle timeout; [`SttLiveSession::set_keepalive`] can
//! still send WebSocket pings through proxies that drop quiet connections.
//!
//! ```
//! use std::time::Instant;
//! use smallest_core::stt::SttLanguage;
//! use smallest_core::stt_live::{SttLiveConfig, SttLiveEvent, SttLiveSession};
//! use smallest_core::ws::{CloseFrame, WsMessage};
//!
//! # fn main() -> Result<(), smallest_core::Error> {
//! let live = SttLiveConfig::new(SttLanguage::En).word_timestamps(true);
//! assert_eq!(
//!     live.query(),
//!     "model=pulse&language=en&sample_rate=16000&encoding=linear16&word_timestamps=true"
//! );
//! let now = Instant::now();
//! let mut session = SttLiveSession::new(live, now)?;
//! // Two binary frames, 4096 + 1904 bytes; the stream position is 6000 bytes
//! // (3000 samples of linear16 at 16 kHz: 0.1875 s of audio sent).
//! assert_eq!(session.send_audio(vec![0u8; 6000], now)?, 6000);
//! session.close_stream(now)?;
//! assert!(matches!(session.poll_outgoing(), Some(WsMessage::Binary(b)) if b.len() == 4096));
//! assert!(matches!(session.poll_outgoing(), Some(WsMessage::Binary(b)) if b.len() == 1904));
//! assert_eq!(session.poll_outgoing(), Some(WsMessage::Text(r#"{"type":"close_stream"}"#.into())));
//!
//! session.handle_message(WsMessage::Text(
//!     r#"{"type":"transcription","transcript":"Hi.","is_final":true,"is_last":true}"#.into()), now)?;
//! session.handle_message(WsMessage::Close(Some(CloseFrame::new(1000, ""))), now)?;
//! let Some(SttLiveEvent::Transcript(t)) = session.poll_event() else { unreachable!() };
//! assert_eq!((t.text.as_str(), t.is_last), ("Hi.", true));
//! assert!(matches!(session.poll_event(), Some(SttLiveEvent::Closed { after_last: true, .. })));
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::config::Config;
use crate::error::{Error, ValidationError};
use crate::macros::string_enum;
use crate::stt::{Query, SttLanguage, SttModel, Utterance, Word};
use crate::tts::validate_correlation_id;
use crate::ws::{
    CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CloseFrame, Upgrade, WsMessage, deadline, error_fields,
    handshake_request,
};

pub mod resume;

pub use resume::SttReconnect;
use resume::{Kept2, Resume};

/// The path of live transcription.
pub const STT_LIVE_PATH: &str = "/waves/v1/stt/live";

/// The path of the legacy live transcription (no `model`).
pub const LEGACY_STT_LIVE_PATH: &str = "/waves/v1/pulse/get_text";

/// The sample rates live STT accepts. The server does not resample: state the real rate.
pub const STT_LIVE_SAMPLE_RATES: [u32; 6] = [8000, 16000, 22050, 24000, 44100, 48000];

/// The sample rate sent when none is set.
pub const DEFAULT_STT_LIVE_SAMPLE_RATE: u32 = 16000;

/// The largest binary frame [`SttLiveSession::send_audio`] sends by default: the
/// 4096 bytes the API recommends.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4096;

/// The most keywords a session accepts.
pub const MAX_KEYWORDS: usize = 10_000;

string_enum! {
    /// The encoding of the audio sent up (`encoding`).
    #[derive(Default)]
    SttEncoding {
        /// Signed 16-bit little-endian PCM (the default).
        #[default]
        Linear16 = "linear16",
        /// Signed 32-bit little-endian PCM.
        Linear32 = "linear32",
        /// G.711 A-law (pair with 8000 Hz).
        Alaw = "alaw",
        /// G.711 μ-law (pair with 8000 Hz).
        Mulaw = "mulaw",
        /// Raw Opus packets, one per frame.
        Opus = "opus",
        /// An Ogg/Opus stream.
        OggOpus = "ogg_opus",
    }
}

/// Which live STT route a configuration connects to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SttLiveRoute {
    /// `/waves/v1/stt/live` (current; sends `model`).
    #[default]
    Live,
    /// `/waves/v1/pulse/get_text` (legacy; no `model`, `word_timestamps` defaults to
    /// `true` on the server).
    LegacyGetText,
}

/// Every query parameter of a live transcription (API.md §4.2.2), typed.
///
/// Booleans are `Option<bool>`: `None` leaves the server's default, `Some(b)` sends
/// `"true"`/`"false"` (so `endpointing(false)` or `punctuate(false)` can turn a
/// default-on feature off). `sample_rate` and `encoding` are always sent, because the
/// server does not detect them and does not resample.
///
/// ```
/// use smallest_core::stt::{SttLanguage, SttModel};
/// use smallest_core::stt_live::SttLiveConfig;
/// let live = SttLiveConfig::new(SttLanguage::Hi).keyword("Smallest", Some(2.0));
/// assert!(live.validate().is_ok());
/// let err = live.clone().model(SttModel::PulsePro).validate().unwrap_err();
/// assert!(err.to_string().contains("POST /waves/v1/stt/?model=pulse-pro"));
/// assert!(live.clone().sample_rate(32000).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SttLiveConfig {
    /// The route (current or legacy).
    pub route: SttLiveRoute,
    /// The model: `pulse` (Pulse Pro has no streaming transport).
    pub model: SttModel,
    /// The language; must be a streaming code ([`SttLanguage::is_streaming`]).
    pub language: SttLanguage,
    /// The audio's real sample rate.
    pub sample_rate: u32,
    /// The audio's encoding.
    pub encoding: SttEncoding,
    /// `words[]` on transcripts.
    pub word_timestamps: Option<bool>,
    /// `utterances[]` on transcripts.
    pub sentence_timestamps: Option<bool>,
    /// Speaker labels on words and utterances.
    pub diarize: Option<bool>,
    /// `speech_started` / `speech_ended` events.
    pub vad_events: Option<bool>,
    /// The older alias of `vad_events` (`vad_events` wins when both are set).
    pub vad: Option<bool>,
    /// Finalize on trailing silence (server default `true`).
    pub endpointing: Option<bool>,
    /// Silence before a final, 100–10000 ms (server default 800).
    pub eou_timeout_ms: Option<u32>,
    /// `false` turns off punctuation, capitalization and ITN (server default `true`).
    pub format: Option<bool>,
    /// Punctuation (server default `true`).
    pub punctuate: Option<bool>,
    /// Capitalization (server default `true`).
    pub capitalize: Option<bool>,
    /// Spoken → written forms on finals ("twenty five dollars" → "$25").
    pub itn_normalize: Option<bool>,
    /// Word-count auto-finalize (server default `true`).
    pub finalize_on_words: Option<bool>,
    /// Force a final after this many words (≥ 1).
    pub max_words: Option<u32>,
    /// Replace personal data with tokens (en, hi; finals only).
    pub redact_pii: Option<bool>,
    /// Replace payment data with tokens (en, hi; finals only).
    pub redact_pci: Option<bool>,
    /// A cumulative `full_transcript` on each event.
    pub full_transcript: Option<bool>,
    /// Boosted words and phrases with an optional non-negative intensifier (server
    /// default 1.0; 1–3 recommended, above 5 hallucinates), sent as `Word:2,Plain`.
    pub keywords: Vec<(String, Option<f32>)>,
    /// Your id for analytics (`^[a-zA-Z0-9_\-.]+$`, ≤128; not echoed).
    pub external_session_id: Option<String>,
    /// Reconnect when the connection drops mid-session (off by default; see
    /// [`reconnect`](Self::reconnect)). Local: not sent to the server.
    pub reconnect: Option<SttReconnect>,
    /// Send `x-expire-content: true` on the upgrade (Enterprise).
    pub expire_content: bool,
}

impl SttLiveConfig {
    /// Live Pulse transcription of 16 kHz `linear16` audio in `language`.
    pub fn new(language: SttLanguage) -> Self {
        SttLiveConfig {
            route: SttLiveRoute::Live,
            model: SttModel::Pulse,
            language,
            sample_rate: DEFAULT_STT_LIVE_SAMPLE_RATE,
            encoding: SttEncoding::Linear16,
            word_timestamps: None,
            sentence_timestamps: None,
            diarize: None,
            vad_events: None,
            vad: None,
            endpointing: None,
            eou_timeout_ms: None,
            format: None,
            punctuate: None,
            capitalize: None,
            itn_normalize: None,
            finalize_on_words: None,
            max_words: None,
            redact_pii: None,
            redact_pci: None,
            full_transcript: None,
            keywords: Vec::new(),
            external_session_id: None,
            reconnect: None,
            expire_content: false,
        }
    }

    /// The same on the legacy route `/waves/v1/pulse/get_text`.
    pub fn legacy(language: SttLanguage) -> Self {
        SttLiveConfig {
            route: SttLiveRoute::LegacyGetText,
            ..Self::new(language)
        }
    }

    /// Sets the model (only `pulse` streams).
    pub fn model(mut self, model: SttModel) -> Self {
        self.model = model;
        self
    }

    /// Sets the sample rate in Hz.
    pub fn sample_rate(mut self, hz: u32) -> Self {
        self.sample_rate = hz;
        self
    }

    /// Sets the encoding.
    pub fn encoding(mut self, encoding: SttEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Word timestamps.
    pub fn word_timestamps(mut self, on: bool) -> Self {
        self.word_timestamps = Some(on);
        self
    }

    /// Sentence (utterance) timestamps.
    pub fn sentence_timestamps(mut self, on: bool) -> Self {
        self.sentence_timestamps = Some(on);
        self
    }

    /// Speaker diarization.
    pub fn diarize(mut self, on: bool) -> Self {
        self.diarize = Some(on);
        self
    }

    /// Speech start/end events.
    pub fn vad_events(mut self, on: bool) -> Self {
        self.vad_events = Some(on);
        self
    }

    /// The `vad` alias of `vad_events`.
    pub fn vad(mut self, on: bool) -> Self {
        self.vad = Some(on);
        self
    }

    /// Finalize on trailing silence.
    pub fn endpointing(mut self, on: bool) -> Self {
        self.endpointing = Some(on);
        self
    }

    /// Silence before a final, 100–10000 ms.
    pub fn eou_timeout_ms(mut self, ms: u32) -> Self {
        self.eou_timeout_ms = Some(ms);
        self
    }

    /// Formatting as a whole (punctuation, capitalization, ITN).
    pub fn format(mut self, on: bool) -> Self {
        self.format = Some(on);
        self
    }

    /// Punctuation.
    pub fn punctuate(mut self, on: bool) -> Self {
        self.punctuate = Some(on);
        self
    }

    /// Capitalization.
    pub fn capitalize(mut self, on: bool) -> Self {
        self.capitalize = Some(on);
        self
    }

    /// Inverse text normalization on finals.
    pub fn itn_normalize(mut self, on: bool) -> Self {
        self.itn_normalize = Some(on);
        self
    }

    /// Word-count auto-finalize.
    pub fn finalize_on_words(mut self, on: bool) -> Self {
        self.finalize_on_words = Some(on);
        self
    }

    /// Force a final after `n` words.
    pub fn max_words(mut self, n: u32) -> Self {
        self.max_words = Some(n);
        self
    }

    /// PII redaction.
    pub fn redact_pii(mut self, on: bool) -> Self {
        self.redact_pii = Some(on);
        self
    }

    /// PCI redaction.
    pub fn redact_pci(mut self, on: bool) -> Self {
        self.redact_pci = Some(on);
        self
    }

    /// Cumulative `full_transcript` on each event.
    pub fn full_transcript(mut self, on: bool) -> Self {
        self.full_transcript = Some(on);
        self
    }

    /// Adds a keyword (or phrase) with an optional intensifier.
    pub fn keyword(mut self, word: impl Into<String>, intensifier: Option<f32>) -> Self {
        self.keywords.push((word.into(), intensifier));
        self
    }

    /// Sets your analytics id.
    pub fn external_session_id(mut self, id: impl Into<String>) -> Self {
        self.external_session_id = Some(id.into());
        self
    }

    /// Reconnects when the connection drops or closes with a retryable code
    /// mid-session: bounded attempts with the client's retry backoff, the audio since
    /// the last final replayed from a bounded buffer, times kept on the session's
    /// timeline, no final delivered twice, and one [`SttLiveEvent::Reconnected`]
    /// instead of an error. Needs `linear16`, `linear32`, `alaw` or `mulaw` audio, and
    /// asks the server for word timestamps (removed from transcripts unless you asked
    /// for them). See the [`resume`] module.
    pub fn reconnect(mut self, settings: SttReconnect) -> Self {
        self.reconnect = Some(settings);
        self
    }

    /// Asks the server to delete the transcript after 7 days (Enterprise).
    pub fn expire_content(mut self, on: bool) -> Self {
        self.expire_content = on;
        self
    }

    /// Whether transcripts will carry `words[]`: the explicit setting, else the
    /// route's default (`false` on `/stt/live`, `true` on the legacy route).
    pub fn effective_word_timestamps(&self) -> bool {
        self.word_timestamps
            .unwrap_or(self.route == SttLiveRoute::LegacyGetText)
    }

    /// Checks every parameter against what the API accepts.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match &self.model {
            SttModel::Pulse => {}
            SttModel::PulsePro => {
                return Err(ValidationError::new(
                    "model",
                    "pulse-pro",
                    "Pulse Pro has no streaming transport: use model pulse here, or send the \
                     recording to POST /waves/v1/stt/?model=pulse-pro",
                ));
            }
            SttModel::Other(m) if self.route == SttLiveRoute::Live && !m.trim().is_empty() => {}
            other => {
                return Err(ValidationError::new(
                    "model",
                    other.as_str(),
                    "allowed: pulse",
                ));
            }
        }
        let language_ok = match &self.language {
            SttLanguage::Other(code) => !code.trim().is_empty(),
            known => known.is_streaming(),
        };
        if !language_ok {
            return Err(ValidationError::new(
                "language",
                self.language.as_str(),
                format!(
                    "live STT accepts: {}",
                    SttLanguage::list(SttLanguage::is_streaming)
                ),
            ));
        }
        if !STT_LIVE_SAMPLE_RATES.contains(&self.sample_rate) {
            return Err(ValidationError::new(
                "sample_rate",
                self.sample_rate,
                "allowed: 8000, 16000, 22050, 24000, 44100, 48000 (the audio's real rate: the \
                 server does not resample)",
            ));
        }
        if let SttEncoding::Other(e) = &self.encoding
            && e.trim().is_empty()
        {
            return Err(ValidationError::new(
                "encoding",
                e,
                format!("allowed: {}", SttEncoding::allowed()),
            ));
        }
        if let Some(ms) = self.eou_timeout_ms
            && !(100..=10_000).contains(&ms)
        {
            return Err(ValidationError::new(
                "eou_timeout_ms",
                ms,
                "allowed: 100 to 10000 milliseconds (server default 800)",
            ));
        }
        if self.max_words == Some(0) {
            return Err(ValidationError::new("max_words", 0, "at least 1 word"));
        }
        if self.keywords.len() > MAX_KEYWORDS {
            return Err(ValidationError::new(
                "keywords",
                format!("{} keywords", self.keywords.len()),
                "at most 10000 keywords per session",
            ));
        }
        for (word, intensifier) in &self.keywords {
            if word.trim().is_empty() || word.contains([',', ':']) {
                return Err(ValidationError::new(
                    "keywords",
                    word,
                    "each keyword is a non-empty word or phrase without `,` or `:` (they \
                     separate keywords and intensifiers on the wire)",
                ));
            }
            if let Some(x) = intensifier
                && !(x.is_finite() && *x >= 0.0)
            {
                return Err(ValidationError::new(
                    "keywords",
                    format!("{word}:{x}"),
                    "an intensifier is a finite number ≥ 0 (1–3 recommended)",
                ));
            }
        }
        if let Some(id) = &self.external_session_id {
            validate_correlation_id("external_session_id", id)?;
        }
        if let Some(reconnect) = &self.reconnect {
            reconnect.validate(&self.encoding)?;
        }
        Ok(())
    }

    /// The `keywords` value: `Word:2,Phrase with spaces,Plain` (before URL-encoding).
    pub fn keywords_param(&self) -> String {
        self.keywords
            .iter()
            .map(|(word, intensifier)| match intensifier {
                Some(x) => format!("{}:{x}", word.trim()),
                None => word.trim().to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The query string, parameters in API.md §4.2.2 order, values percent-encoded.
    pub fn query(&self) -> String {
        let mut q = Query::default();
        if self.route == SttLiveRoute::Live {
            q.push("model", self.model.as_str());
        }
        q.push("language", self.language.as_str());
        q.push("sample_rate", &self.sample_rate.to_string());
        q.push("encoding", self.encoding.as_str());
        let flag = |q: &mut Query, key: &str, value: Option<bool>| {
            if let Some(on) = value {
                q.push(key, if on { "true" } else { "false" });
            }
        };
        // A reconnecting session cuts its replay at the last final word's end.
        let words = match self.word_timestamps {
            None if self.reconnect.is_some() && !self.effective_word_timestamps() => Some(true),
            words => words,
        };
        flag(&mut q, "word_timestamps", words);
        flag(&mut q, "sentence_timestamps", self.sentence_timestamps);
        flag(&mut q, "diarize", self.diarize);
        flag(&mut q, "vad_events", self.vad_events);
        flag(&mut q, "vad", self.vad);
        flag(&mut q, "endpointing", self.endpointing);
        if let Some(ms) = self.eou_timeout_ms {
            q.push("eou_timeout_ms", &ms.to_string());
        }
        flag(&mut q, "format", self.format);
        flag(&mut q, "punctuate", self.punctuate);
        flag(&mut q, "capitalize", self.capitalize);
        flag(&mut q, "itn_normalize", self.itn_normalize);
        flag(&mut q, "finalize_on_words", self.finalize_on_words);
        if let Some(n) = self.max_words {
            q.push("max_words", &n.to_string());
        }
        flag(&mut q, "redact_pii", self.redact_pii);
        flag(&mut q, "redact_pci", self.redact_pci);
        flag(&mut q, "full_transcript", self.full_transcript);
        if !self.keywords.is_empty() {
            q.push("keywords", &self.keywords_param());
        }
        if let Some(id) = &self.external_session_id {
            q.push("external_session_id", id);
        }
        q.finish()
    }

    /// The route's path and the query string.
    pub fn path_and_query(&self) -> String {
        let path = match self.route {
            SttLiveRoute::Live => STT_LIVE_PATH,
            SttLiveRoute::LegacyGetText => LEGACY_STT_LIVE_PATH,
        };
        format!("{path}?{}", self.query())
    }

    /// Validates the parameters and builds the upgrade request, with the [`Upgrade`] that
    /// checks the server's answer to it (see
    /// [`ws::handshake_request`](crate::ws::handshake_request)); `key` is 16 random
    /// bytes from the transport, given here only.
    pub fn handshake(
        &self,
        config: &Config,
        key: [u8; 16],
    ) -> Result<(Request<()>, Upgrade), Error> {
        self.validate()?;
        handshake_request(config, &self.path_and_query(), key, self.expire_content)
    }
}

/// One transcription message: an interim (`is_final: false`), a final, or the terminal
/// final of the stream (`is_last: true`).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Transcript {
    /// The segment's text (`transcript`, or `transcription` when only that is sent).
    pub text: String,
    /// `false` for an interim that may still be revised.
    pub is_final: bool,
    /// The terminal message after `close_stream`: nothing more will be transcribed.
    ///
    /// Its `text` may be empty. The terminal message is the server's flush of what it
    /// heard since the previous final, so it carries the stream's last words when some
    /// were pending and nothing when all the audio was already finalized (or held no
    /// speech): an empty terminal final is then normal (the emulator sends one; a
    /// `finalize` with nothing pending is documented to answer with an empty
    /// transcript too). So neither skip it because its text is empty (test `is_last`,
    /// not the text, to know the stream ended) nor drop its text because it is the
    /// last (handle it like any final).
    pub is_last: bool,
    /// This final answers a client `finalize`.
    pub from_finalize: bool,
    /// The server's id of the connection.
    pub session_id: Option<String>,
    /// The detected or pinned language (finals only).
    pub language: Option<SttLanguage>,
    /// Every detected language (finals only).
    pub languages: Vec<SttLanguage>,
    /// The cumulative transcript, with `full_transcript=true`.
    pub full_transcript: Option<String>,
    /// Words, with `word_timestamps=true` (speakers with `diarize=true`).
    pub words: Vec<Word>,
    /// Utterances, with `sentence_timestamps=true`.
    pub utterances: Vec<Utterance>,
    /// Redaction tokens used, e.g. `[CREDITCARDCVV_1]`.
    pub redacted_entities: Vec<String>,
}

/// What happened on a live STT connection.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SttLiveEvent {
    /// A transcription message.
    Transcript(Transcript),
    /// Speech began (`vad_events=true`), seconds from the first audio frame.
    SpeechStarted {
        /// Seconds from the first audio frame.
        timestamp: f64,
    },
    /// Speech ended (`vad_events=true`; needs trailing silence).
    SpeechEnded {
        /// Seconds from the first audio frame.
        timestamp: f64,
    },
    /// The server reported an error.
    Error {
        /// The server's `error_code` (e.g. `LANGUAGE_NOT_ENABLED_IN_REGION`), when sent.
        code: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The connection dropped and a new one took over (with
    /// [`SttLiveConfig::reconnect`]): the audio since the last final was sent again,
    /// and the transcripts that follow continue the session's timeline.
    Reconnected {
        /// Reconnections so far in this session (1 for the first).
        reconnects: u32,
        /// Audio bytes sent again.
        replayed_bytes: u64,
        /// Where the new connection's audio starts on the session's timeline, seconds.
        offset: f64,
    },
    /// The connection closed. Nothing more will happen on this session.
    Closed {
        /// The close code, if the close frame had one.
        code: Option<u16>,
        /// The close reason (may be empty).
        reason: String,
        /// What the code means.
        outcome: CloseOutcome,
        /// Whether the terminal `is_last` transcript arrived first. A close without it
        /// lost the end of the stream (East Asian languages on the India host close
        /// this way without a single transcript, API.md §4.2.6).
        after_last: bool,
    },
    /// A message with a `type` this SDK does not know (never an error).
    Unknown {
        /// The message as received.
        raw: String,
    },
}

/// What the close code of a live STT connection means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseOutcome {
    /// 1000: a normal close (after `is_last`, or after the client's close).
    Normal,
    /// 1008: refused by policy — the account is over its concurrent-session limit
    /// (100 on the Standard plan).
    PolicyViolation,
    /// No close status (a bare close frame, or a dropped connection reported as
    /// `Close(None)`).
    NoStatus,
    /// Any other close code.
    Other(u16),
}

impl CloseOutcome {
    /// The outcome of a close code.
    pub fn from_code(code: Option<u16>) -> Self {
        match code {
            Some(CLOSE_NORMAL) => CloseOutcome::Normal,
            Some(CLOSE_POLICY_VIOLATION) => CloseOutcome::PolicyViolation,
            Some(other) => CloseOutcome::Other(other),
            None => CloseOutcome::NoStatus,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Audio may be sent.
    Streaming,
    /// `close_stream` was sent; waiting for `is_last`.
    Draining,
    /// `is_last` arrived; waiting for the server's close.
    Finished,
    /// The client sent a close frame.
    Closing,
    Closed,
}

/// The sans-IO state machine of one live STT connection.
///
/// Feed it audio and controls (`send_audio`, `finalize`, `close_stream`) and the
/// server's messages (`handle_message`); take what to send from `poll_outgoing` and
/// what happened from `poll_event`; sleep until `poll_timeout` and then call
/// `handle_timeout`. It never blocks and never reads a clock.
#[derive(Debug)]
pub struct SttLiveSession {
    config: SttLiveConfig,
    state: State,
    max_frame_len: Option<usize>,
    keepalive: Option<Duration>,
    last_activity: Instant,
    saw_last: bool,
    /// Audio bytes taken by `send_audio` so far.
    audio_sent: u64,
    /// `finalize` calls whose final transcript has not arrived yet.
    finalizes: usize,
    outgoing: VecDeque<WsMessage>,
    events: VecDeque<SttLiveEvent>,
    resume: Option<Resume>,
}

impl SttLiveSession {
    /// A session on a connection opened at `now` with `config` (validated again here).
    ///
    /// Audio is split into frames of at most [`DEFAULT_MAX_FRAME_LEN`] bytes, except
    /// for `opus`, whose frames are packets and are sent as given.
    pub fn new(config: SttLiveConfig, now: Instant) -> Result<Self, Error> {
        config.validate()?;
        let resume = config.reconnect.clone().map(|settings| {
            Resume::new(
                settings,
                &config.encoding,
                config.sample_rate,
                config.effective_word_timestamps(),
            )
        });
        Ok(SttLiveSession {
            resume,
            state: State::Streaming,
            max_frame_len: match config.encoding {
                SttEncoding::Opus => None,
                _ => Some(DEFAULT_MAX_FRAME_LEN),
            },
            config,
            keepalive: None,
            last_activity: now,
            saw_last: false,
            audio_sent: 0,
            finalizes: 0,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The parameters of the connection (fixed by the upgrade request).
    pub fn config(&self) -> &SttLiveConfig {
        &self.config
    }

    /// The largest binary frame `send_audio` sends; `None` sends each call's audio as
    /// one frame. A zero length means `None`.
    pub fn set_max_frame_len(&mut self, len: Option<usize>) {
        self.max_frame_len = len.filter(|&n| n > 0);
    }

    /// Sends a WebSocket `Ping` after every `interval` without client traffic; `None`
    /// (or a zero interval) turns keepalive off.
    pub fn set_keepalive(&mut self, interval: Option<Duration>) {
        self.keepalive = interval.filter(|d| !d.is_zero());
    }

    /// Queues audio (in the configured encoding and rate) as binary frames, split at
    /// the frame length without copying. Empty audio sends nothing.
    ///
    /// Returns the stream position: the audio bytes sent in this session so far,
    /// including this chunk (the same as [`audio_sent`](Self::audio_sent) afterwards).
    /// With the sample rate and the bytes per sample of the encoding it is the audio
    /// time sent: for `linear16` (2 bytes per sample, mono) `position / (2 *
    /// sample_rate)` seconds, the scale of the transcripts' word times, which count
    /// seconds from the stream's start (`linear32` has 4 bytes per sample, `alaw` and `mulaw` 1; `opus` has no fixed
    /// rate). A refused call (the stream has ended) counts nothing.
    pub fn send_audio(&mut self, audio: impl Into<Bytes>, now: Instant) -> Result<u64, Error> {
        self.ensure_streaming("send_audio")?;
        let audio: Bytes = audio.into();
        if audio.is_empty() {
            return Ok(self.audio_sent);
        }
        let start = self.audio_sent;
        self.audio_sent = self.audio_sent.saturating_add(audio.len() as u64);
        self.last_activity = now;
        if let Some(resume) = &mut self.resume {
            resume.keep_audio(start, audio.clone());
            if !resume.is_up() {
                // Sent with the replay once a new connection is up.
                return Ok(self.audio_sent);
            }
        }
        self.queue_audio(audio);
        Ok(self.audio_sent)
    }

    fn queue_audio(&mut self, mut audio: Bytes) {
        match self.max_frame_len {
            Some(max) => {
                while audio.len() > max {
                    let frame = audio.split_to(max);
                    self.outgoing.push_back(WsMessage::Binary(frame));
                }
                self.outgoing.push_back(WsMessage::Binary(audio));
            }
            None => self.outgoing.push_back(WsMessage::Binary(audio)),
        }
    }

    /// The audio bytes [`send_audio`](Self::send_audio) took in this session so far
    /// (the stream position it returned last; 0 before any audio).
    pub fn audio_sent(&self) -> u64 {
        self.audio_sent
    }

    /// Asks for a final transcript of everything heard so far (`{"type":"finalize"}`);
    /// the stream stays open. The answer is a final with `from_finalize: true`
    /// (possibly empty).
    pub fn finalize(&mut self, now: Instant) -> Result<(), Error> {
        self.ensure_streaming("finalize")?;
        self.control("finalize", now);
        self.finalizes += 1;
        Ok(())
    }

    /// Ends the stream (`{"type":"close_stream"}`): the server flushes, sends the
    /// terminal transcript with `is_last: true`, then closes (1000). No audio may
    /// follow.
    pub fn close_stream(&mut self, now: Instant) -> Result<(), Error> {
        self.ensure_streaming("close_stream")?;
        self.control("close_stream", now);
        self.state = State::Draining;
        Ok(())
    }

    /// Abandons the stream: queues a close frame (1000) without waiting for the
    /// remaining transcripts. Prefer [`close_stream`](Self::close_stream).
    pub fn close(&mut self, now: Instant) -> Result<(), Error> {
        let _ = now;
        if matches!(self.state, State::Closing | State::Closed) {
            return Err(closed_error("close"));
        }
        self.outgoing
            .push_back(WsMessage::Close(Some(CloseFrame::new(CLOSE_NORMAL, ""))));
        self.state = State::Closing;
        Ok(())
    }

    /// Whether the server owes an answer: a final transcript for a `finalize`, or the
    /// terminal transcript after `close_stream`. (Silence is normal otherwise: the
    /// server speaks when it hears speech.)
    pub fn awaiting_answer(&self) -> bool {
        if self.is_disconnected() {
            return false;
        }
        match self.state {
            State::Draining => true,
            State::Streaming => self.finalizes > 0,
            _ => false,
        }
    }

    /// Whether the terminal `is_last` transcript has arrived.
    pub fn is_finished(&self) -> bool {
        self.saw_last
    }

    /// Whether the connection has closed ([`SttLiveEvent::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Handles one message from the server.
    ///
    /// A frame that is not JSON, a binary frame or a known message missing its fields
    /// is an [`Error::Decode`]; the session stays usable. Server error messages are
    /// events, not errors. Pings and pongs are ignored (the transport answers pings).
    pub fn handle_message(&mut self, message: WsMessage, now: Instant) -> Result<(), Error> {
        let _ = now;
        if self.state == State::Closed {
            return Ok(());
        }
        match message {
            WsMessage::Text(text) => self.handle_text(text),
            WsMessage::Binary(data) => Err(Error::decode(
                "STT WebSocket message",
                format!(
                    "unexpected binary frame of {} bytes (the server sends JSON text)",
                    data.len()
                ),
            )),
            WsMessage::Ping(_) | WsMessage::Pong(_) => Ok(()),
            WsMessage::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (Some(f.code), f.reason),
                    None => (None, String::new()),
                };
                if self.reconnects_after(code, now) {
                    return Ok(());
                }
                self.state = State::Closed;
                self.outgoing.clear();
                self.events.push_back(SttLiveEvent::Closed {
                    code,
                    reason,
                    outcome: CloseOutcome::from_code(code),
                    after_last: self.saw_last,
                });
                Ok(())
            }
        }
    }

    /// The next message to send, if any.
    pub fn poll_outgoing(&mut self) -> Option<WsMessage> {
        self.outgoing.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SttLiveEvent> {
        self.events.pop_front()
    }

    /// When the next keepalive ping is due; `None` without keepalive or once the
    /// stream has finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(at) = self.resume.as_ref().and_then(Resume::poll_timeout) {
            return Some(at);
        }
        if self.is_disconnected() {
            return None;
        }
        self.keepalive_due()
    }

    fn keepalive_due(&self) -> Option<Instant> {
        match self.state {
            State::Streaming | State::Draining => deadline(self.last_activity, self.keepalive?),
            State::Finished | State::Closing | State::Closed => None,
        }
    }

    /// Queues a keepalive ping when one is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(resume) = &mut self.resume {
            resume.handle_timeout(now);
        }
        if !self.is_disconnected() && self.keepalive_due().is_some_and(|due| due <= now) {
            self.outgoing.push_back(WsMessage::Ping(Bytes::new()));
            self.last_activity = now;
        }
    }

    /// Whether the session is between connections (reconnecting).
    pub fn is_disconnected(&self) -> bool {
        self.resume.as_ref().is_some_and(|r| !r.is_up()) && self.state != State::Closed
    }

    /// Whether the transport must open a new connection now and then call
    /// [`handle_connected`](Self::handle_connected) (or
    /// [`handle_connect_failed`](Self::handle_connect_failed)).
    pub fn wants_connection(&self) -> bool {
        self.state != State::Closed && self.resume.as_ref().is_some_and(Resume::wants_connection)
    }

    /// A new connection is up: queues the replay and reports
    /// [`SttLiveEvent::Reconnected`]. An error (the replay buffer overflowed) ends the
    /// session.
    pub fn handle_connected(&mut self, now: Instant) -> Result<(), Error> {
        let Some(resume) = &mut self.resume else {
            return Ok(());
        };
        match resume.connected() {
            Ok((frames, replayed_bytes, offset)) => {
                let reconnects = resume.reconnects;
                self.outgoing.clear();
                self.finalizes = 0;
                for frame in frames {
                    match frame {
                        Kept2::Audio(audio) => self.queue_audio(audio),
                        Kept2::Finalize => {
                            self.finalizes += 1;
                            self.control_frame("finalize");
                        }
                        Kept2::CloseStream => self.control_frame("close_stream"),
                    }
                }
                if self.state == State::Closing {
                    self.outgoing
                        .push_back(WsMessage::Close(Some(CloseFrame::new(CLOSE_NORMAL, ""))));
                }
                self.last_activity = now;
                tracing::info!(target: "smallest", reconnects, replayed_bytes, "live STT session reconnected");
                self.events.push_back(SttLiveEvent::Reconnected {
                    reconnects,
                    replayed_bytes,
                    offset,
                });
                Ok(())
            }
            Err(e) => {
                self.end(None, "the session could not be resumed".into());
                Err(e)
            }
        }
    }

    /// Opening the new connection failed: `Ok` when another attempt follows, else
    /// the error that ends the session.
    pub fn handle_connect_failed(&mut self, error: Error, now: Instant) -> Result<(), Error> {
        let Some(resume) = &mut self.resume else {
            return Err(error);
        };
        if resume.connect_failed(now) {
            tracing::debug!(target: "smallest", error = %error, "live STT reconnect attempt failed");
            return Ok(());
        }
        let error = resume.give_up(&error);
        self.end(None, "reconnect attempts used up".into());
        Err(error)
    }

    /// The connection failed with `error` (or dropped: `None`): `true` when the session
    /// reconnects (the error is absorbed).
    pub fn handle_connection_lost(&mut self, error: Option<&Error>, now: Instant) -> bool {
        let retryable = match error {
            None => true,
            Some(e) => matches!(e, Error::Transport { .. } | Error::Timeout { .. }),
        };
        retryable && self.reconnects_after(None, now)
    }

    /// The client's retry policy (the reconnect backoff) and a jitter seed.
    pub fn set_retry_policy(&mut self, policy: &crate::retry::RetryPolicy, seed: u64) {
        if let Some(resume) = &mut self.resume {
            resume.set_policy(policy, seed);
        }
    }

    /// Whether a close with `code` (`None`: no close frame) starts a reconnect.
    fn reconnects_after(&mut self, code: Option<u16>, now: Instant) -> bool {
        let Some(resume) = &mut self.resume else {
            return false;
        };
        if !matches!(self.state, State::Streaming | State::Draining) {
            return false;
        }
        // Going away, abnormal, internal error, restart, try again later, bad gateway.
        let retryable = matches!(code, None | Some(1001 | 1006 | 1011 | 1012 | 1013 | 1014));
        if !retryable {
            return false;
        }
        match resume.lost(now) {
            Some(wait) => {
                tracing::info!(target: "smallest", ?code, wait_ms = wait.as_millis() as u64, "live STT connection lost: reconnecting");
                self.outgoing.clear();
                true
            }
            None => false,
        }
    }

    fn end(&mut self, code: Option<u16>, reason: String) {
        self.state = State::Closed;
        self.outgoing.clear();
        self.events.push_back(SttLiveEvent::Closed {
            code,
            reason,
            outcome: CloseOutcome::from_code(code),
            after_last: self.saw_last,
        });
    }

    fn ensure_streaming(&self, verb: &'static str) -> Result<(), Error> {
        match self.state {
            State::Streaming => Ok(()),
            State::Draining | State::Finished => Err(Error::Stream {
                code: None,
                message: format!(
                    "{verb}: the stream was ended with close_stream; open a new session to \
                     send more audio"
                ),
            }),
            State::Closing | State::Closed => Err(closed_error(verb)),
        }
    }

    fn control(&mut self, kind: &str, now: Instant) {
        self.last_activity = now;
        if let Some(resume) = &mut self.resume {
            resume.keep_control(kind == "finalize", self.audio_sent);
            if !resume.is_up() {
                return;
            }
        }
        self.control_frame(kind);
    }

    fn control_frame(&mut self, kind: &str) {
        self.outgoing
            .push_back(WsMessage::Text(format!(r#"{{"type":"{kind}"}}"#)));
    }

    fn handle_text(&mut self, text: String) -> Result<(), Error> {
        const WHAT: &str = "STT WebSocket message";
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::decode(WHAT, e))?;
        let Some(obj) = value.as_object() else {
            self.events.push_back(SttLiveEvent::Unknown { raw: text });
            return Ok(());
        };
        if let Some(resume) = &mut self.resume {
            resume.heard();
        }
        let kind = obj.get("type").and_then(Value::as_str);
        // The legacy examples carry no `type`: recognise them by their fields.
        let kind = kind.or_else(|| {
            if obj.get("status").and_then(Value::as_str) == Some("error")
                || obj.contains_key("error_code")
            {
                Some("error")
            } else if obj.contains_key("transcript") || obj.contains_key("transcription") {
                Some("transcription")
            } else {
                None
            }
        });
        match kind {
            Some("transcription") => {
                let raw: RawTranscript =
                    serde_json::from_value(value).map_err(|e| Error::decode(WHAT, e))?;
                let mut transcript = raw.into_transcript();
                if let Some(resume) = &mut self.resume
                    && !resume.transcript(&mut transcript)
                {
                    tracing::debug!(target: "smallest", "a final heard before the reconnect: not delivered twice");
                    return Ok(());
                }
                if transcript.from_finalize {
                    self.finalizes = self.finalizes.saturating_sub(1);
                }
                if transcript.is_last {
                    self.saw_last = true;
                    if matches!(self.state, State::Streaming | State::Draining) {
                        self.state = State::Finished;
                    }
                }
                self.events.push_back(SttLiveEvent::Transcript(transcript));
            }
            Some(kind @ ("speech_started" | "speech_ended")) => {
                let mut timestamp =
                    obj.get("timestamp")
                        .and_then(Value::as_f64)
                        .ok_or_else(|| {
                            Error::decode(WHAT, format!("a `{kind}` message without `timestamp`"))
                        })?;
                if let Some(resume) = &self.resume {
                    timestamp = resume.shift(timestamp);
                }
                self.events.push_back(if kind == "speech_started" {
                    SttLiveEvent::SpeechStarted { timestamp }
                } else {
                    SttLiveEvent::SpeechEnded { timestamp }
                });
            }
            Some("error") => {
                let (code, message) = error_fields(obj, &text);
                self.events.push_back(SttLiveEvent::Error { code, message });
            }
            _ => self.events.push_back(SttLiveEvent::Unknown { raw: text }),
        }
        Ok(())
    }
}

fn closed_error(verb: &str) -> Error {
    Error::Stream {
        code: None,
        message: format!("{verb}: the STT WebSocket session is closed (or closing)"),
    }
}

/// The wire shape of a transcription message; `null` reads as absent everywhere.
#[derive(Deserialize)]
struct RawTranscript {
    #[serde(default)]
    transcript: Option<String>,
    #[serde(default)]
    transcription: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    is_final: bool,
    #[serde(default, deserialize_with = "null_default")]
    is_last: bool,
    #[serde(default, deserialize_with = "null_default")]
    from_finalize: bool,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    language: Option<SttLanguage>,
    #[serde(default, deserialize_with = "null_default")]
    languages: Vec<SttLanguage>,
    #[serde(default)]
    full_transcript: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    words: Vec<Word>,
    #[serde(default, deserialize_with = "null_default")]
    utterances: Vec<Utterance>,
    #[serde(default, deserialize_with = "null_default")]
    redacted_entities: Vec<String>,
}

impl RawTranscript {
    fn into_transcript(self) -> Transcript {
        Transcript {
            text: self.transcript.or(self.transcription).unwrap_or_default(),
            is_final: self.is_final,
            is_last: self.is_last,
            from_finalize: self.from_finalize,
            session_id: self.session_id,
            language: self.language,
            languages: self.languages,
            full_transcript: self.full_transcript,
            words: self.words,
            utterances: self.utterances,
            redacted_entities: self.redacted_entities,
        }
    }
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_audio_returns_the_stream_position() {
        let t0 = Instant::now();
        let config = SttLiveConfig::new(SttLanguage::En).sample_rate(8000);
        let mut s = SttLiveSession::new(config, t0).unwrap();
        assert_eq!(s.config().sample_rate, 8000);
        assert_eq!(s.audio_sent(), 0);
        // Frame splitting does not change the count: 9000 bytes are three frames.
        assert_eq!(s.send_audio(vec![0u8; 9000], t0).unwrap(), 9000);
        assert_eq!(s.send_audio(vec![0u8; 7], t0).unwrap(), 9007);
        // Empty audio sends nothing and returns the position unchanged.
        assert_eq!(s.send_audio(Vec::new(), t0).unwrap(), 9007);
        assert_eq!(s.send_audio(vec![0u8; 993], t0).unwrap(), 10_000);
        assert_eq!(s.audio_sent(), 10_000);
        let frames: Vec<usize> = std::iter::from_fn(|| s.poll_outgoing())
            .map(|m| match m {
                WsMessage::Binary(b) => b.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(frames, [4096, 4096, 808, 7, 993]);
        assert_eq!(frames.iter().sum::<usize>() as u64, s.audio_sent());
        // 10 000 bytes of linear16 at 8 kHz: 5000 samples, 0.625 s of audio.
        let seconds = s.audio_sent() as f64 / (2.0 * f64::from(s.config().sample_rate));
        assert_eq!(seconds, 0.625);
        // Once the stream has ended, audio is refused and not counted.
        s.close_stream(t0).unwrap();
        assert!(s.send_audio(vec![0u8; 10], t0).is_err());
        assert_eq!(s.audio_sent(), 10_000);
    }
}
