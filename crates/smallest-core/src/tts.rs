//! Lightning text-to-speech: `POST /waves/v1/tts` (API.md §3.1–§3.3, §3.6).
//!
//! [`TtsRequest`] is the body shared by every TTS transport (sync, SSE, WebSocket). It
//! is validated locally before anything is sent: empty text, an unknown output format
//! (`mulaw` is not one; `ulaw` is), a sample rate outside {8000, 16000, 24000, 44100},
//! a speed outside 0.5–2.0, a language the model does not speak, or a malformed
//! correlation id each get an error that names the field, the value and what is allowed.

use bytes::Bytes;
use http::{Method, Request, Response, header};
use serde::Serialize;

use crate::audio;
use crate::config::Config;
use crate::endpoint::{Endpoint, check_status};
use crate::error::{Error, ValidationError, header_str};
use crate::macros::string_enum;

/// The path of synchronous synthesis.
pub const TTS_PATH: &str = "/waves/v1/tts";

/// The sample rates every TTS transport accepts.
pub const SAMPLE_RATES: [u32; 4] = [8000, 16000, 24000, 44100];

/// The server's default sample rate.
pub const DEFAULT_SAMPLE_RATE: u32 = 44100;

string_enum! {
    /// A Lightning TTS model.
    ///
    /// The TTS body spells models with underscores (`lightning_v3.1`); the voice-list
    /// path and voice cloning use hyphens (`lightning-v3.1`). [`as_str`](Self::as_str)
    /// gives the body form, [`path_segment`](Self::path_segment) the hyphenated one.
    #[derive(Default)]
    TtsModel {
        /// `lightning_v3.1`: the default model, 20 languages + `auto`.
        #[default]
        LightningV31 = "lightning_v3.1",
        /// `lightning_v3.1_pro`: 31 languages + `auto`.
        LightningV31Pro = "lightning_v3.1_pro",
    }
}

impl TtsModel {
    /// Parses either spelling (`lightning_v3.1_pro` or `lightning-v3.1-pro`).
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "lightning_v3.1" | "lightning-v3.1" => TtsModel::LightningV31,
            "lightning_v3.1_pro" | "lightning-v3.1-pro" => TtsModel::LightningV31Pro,
            other => TtsModel::Other(other.to_owned()),
        }
    }

    /// The hyphenated spelling used in paths and by voice cloning (`lightning-v3.1`).
    pub fn path_segment(&self) -> String {
        match self {
            TtsModel::LightningV31 => "lightning-v3.1".into(),
            TtsModel::LightningV31Pro => "lightning-v3.1-pro".into(),
            TtsModel::Other(s) => s.replace('_', "-"),
        }
    }

    /// The languages this model accepts, or `None` for a model this SDK does not know.
    pub fn languages(&self) -> Option<&'static [Language]> {
        match self {
            TtsModel::LightningV31 => Some(V31_LANGUAGES),
            TtsModel::LightningV31Pro => Some(V31_PRO_LANGUAGES),
            TtsModel::Other(_) => None,
        }
    }
}

string_enum! {
    /// A TTS language code (`language`, `number_pronunciation_language`), API.md §3.2.
    Language {
        /// Route by the input text.
        Auto = "auto",
        /// English.
        En = "en",
        /// Hindi.
        Hi = "hi",
        /// Marathi.
        Mr = "mr",
        /// Kannada.
        Kn = "kn",
        /// Tamil.
        Ta = "ta",
        /// Bengali.
        Bn = "bn",
        /// Gujarati.
        Gu = "gu",
        /// Telugu.
        Te = "te",
        /// Malayalam.
        Ml = "ml",
        /// Punjabi.
        Pa = "pa",
        /// Odia.
        Or = "or",
        /// Spanish.
        Es = "es",
        /// German.
        De = "de",
        /// French.
        Fr = "fr",
        /// Italian.
        It = "it",
        /// Dutch.
        Nl = "nl",
        /// Swedish.
        Sv = "sv",
        /// Portuguese.
        Pt = "pt",
        /// Russian.
        Ru = "ru",
        /// Greek.
        El = "el",
        /// Finnish.
        Fi = "fi",
        /// Norwegian.
        No = "no",
        /// Polish.
        Pl = "pl",
        /// Arabic.
        Ar = "ar",
        /// Chinese (Mandarin).
        Zh = "zh",
        /// Indonesian.
        Id = "id",
        /// Japanese.
        Ja = "ja",
        /// Korean.
        Ko = "ko",
        /// Malay.
        Ms = "ms",
        /// Turkish.
        Tr = "tr",
        /// Vietnamese.
        Vi = "vi",
    }
}

use Language as L;

/// `lightning_v3.1`: `auto` + 20 languages.
const V31_LANGUAGES: &[Language] = &[
    L::Auto,
    L::En,
    L::Es,
    L::Fr,
    L::De,
    L::It,
    L::Nl,
    L::Sv,
    L::Pt,
    L::Pl,
    L::Ru,
    L::Hi,
    L::Mr,
    L::Gu,
    L::Pa,
    L::Bn,
    L::Or,
    L::Ta,
    L::Te,
    L::Kn,
    L::Ml,
];

/// `lightning_v3.1_pro`: `auto` + 31 languages.
const V31_PRO_LANGUAGES: &[Language] = &[
    L::Auto,
    L::En,
    L::Es,
    L::Fr,
    L::De,
    L::It,
    L::Nl,
    L::Sv,
    L::Pt,
    L::Pl,
    L::Ru,
    L::Hi,
    L::Mr,
    L::Gu,
    L::Pa,
    L::Bn,
    L::Or,
    L::Ta,
    L::Te,
    L::Kn,
    L::Ml,
    L::El,
    L::Fi,
    L::No,
    L::Zh,
    L::Ja,
    L::Ko,
    L::Id,
    L::Ms,
    L::Vi,
    L::Tr,
    L::Ar,
];

/// The audio encoding of a synthesis (`output_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputFormat {
    /// Headerless signed 16-bit little-endian PCM, mono (the server's default).
    #[default]
    Pcm,
    /// A RIFF/WAVE file: 44-byte header + 16-bit PCM.
    Wav,
    /// MPEG audio frames.
    Mp3,
    /// G.711 μ-law, 8 bits per sample, headerless. (`mulaw` is not a format name.)
    Ulaw,
    /// G.711 A-law, 8 bits per sample, headerless.
    Alaw,
}

impl OutputFormat {
    /// Every format, in the order the API lists them.
    pub const ALL: [OutputFormat; 5] = [
        OutputFormat::Wav,
        OutputFormat::Ulaw,
        OutputFormat::Alaw,
        OutputFormat::Pcm,
        OutputFormat::Mp3,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Pcm => "pcm",
            OutputFormat::Wav => "wav",
            OutputFormat::Mp3 => "mp3",
            OutputFormat::Ulaw => "ulaw",
            OutputFormat::Alaw => "alaw",
        }
    }

    /// A file extension for audio in this format.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Pcm => "pcm",
            OutputFormat::Wav => "wav",
            OutputFormat::Mp3 => "mp3",
            OutputFormat::Ulaw => "ulaw",
            OutputFormat::Alaw => "alaw",
        }
    }

    /// Bytes per sample for the sample-based formats; `None` for MP3.
    pub fn bytes_per_sample(self) -> Option<usize> {
        match self {
            OutputFormat::Pcm | OutputFormat::Wav => Some(2),
            OutputFormat::Ulaw | OutputFormat::Alaw => Some(1),
            OutputFormat::Mp3 => None,
        }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "pcm" => OutputFormat::Pcm,
            "wav" => OutputFormat::Wav,
            "mp3" => OutputFormat::Mp3,
            "ulaw" => OutputFormat::Ulaw,
            "alaw" => OutputFormat::Alaw,
            "mulaw" | "mu-law" | "u-law" => {
                return Err(ValidationError::new(
                    "output_format",
                    s,
                    "the API names μ-law `ulaw`; allowed: wav, ulaw, alaw, pcm, mp3",
                ));
            }
            _ => {
                return Err(ValidationError::new(
                    "output_format",
                    s,
                    "allowed: wav, ulaw, alaw, pcm, mp3",
                ));
            }
        })
    }
}

impl Serialize for OutputFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

string_enum! {
    /// The `x-content-expiry` answer to an `x-expire-content: true` request (§2.3).
    ContentExpiry {
        /// The request's free text will be deleted after 7 days.
        Applied = "applied",
        /// The plan lacks the feature; the content is retained.
        NotEntitled = "not-entitled",
        /// The entitlement check failed; the content is retained and a retry is safe.
        Unavailable = "unavailable",
    }
}

/// A synthesis request: the body of `POST /waves/v1/tts`, `/waves/v1/tts/live` (SSE)
/// and of each WebSocket message.
///
/// ```
/// use smallest_core::tts::{OutputFormat, TtsModel, TtsRequest};
/// let request = TtsRequest::new("Hello from Smallest AI.", "meher")
///     .model(TtsModel::LightningV31Pro)
///     .sample_rate(24000)
///     .output_format(OutputFormat::Wav);
/// assert!(request.validate().is_ok());
/// assert!(TtsRequest::new("", "meher").validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TtsRequest {
    /// The text to speak. Required, non-empty; ≤250 characters per request is recommended.
    pub text: String,
    /// A catalog voice id (`meher`, `magnus` …) or a clone id (`voice_…`).
    pub voice_id: String,
    /// The model; the server's default is `lightning_v3.1`.
    pub model: Option<TtsModel>,
    /// 8000, 16000, 24000 or 44100 (default 44100).
    pub sample_rate: Option<u32>,
    /// 0.5 to 2.0 (default 1.0).
    pub speed: Option<f32>,
    /// The synthesis language, checked against the model's list.
    pub language: Option<Language>,
    /// The language numbers, currency, times and years are read in.
    pub number_pronunciation_language: Option<Language>,
    /// Read digit-flanked operators as words.
    pub math_notation: Option<bool>,
    /// The audio encoding (default `pcm`).
    pub output_format: Option<OutputFormat>,
    /// Pronunciation dictionary ids to apply.
    pub pronunciation_dicts: Vec<String>,
    /// Your correlation id, echoed as `X-External-Session-Id`.
    pub session_id: Option<String>,
    /// Your correlation id, echoed as `X-External-Request-Id`.
    pub request_id: Option<String>,
    /// Sends `x-expire-content: true` (Enterprise: delete the text after 7 days).
    pub expire_content: bool,
}

impl TtsRequest {
    /// A request for `text` in `voice_id`, with every option at the server's default.
    pub fn new(text: impl Into<String>, voice_id: impl Into<String>) -> Self {
        TtsRequest {
            text: text.into(),
            voice_id: voice_id.into(),
            model: None,
            sample_rate: None,
            speed: None,
            language: None,
            number_pronunciation_language: None,
            math_notation: None,
            output_format: None,
            pronunciation_dicts: Vec::new(),
            session_id: None,
            request_id: None,
            expire_content: false,
        }
    }

    /// Sets the model.
    pub fn model(mut self, model: TtsModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Sets the sample rate in Hz.
    pub fn sample_rate(mut self, hz: u32) -> Self {
        self.sample_rate = Some(hz);
        self
    }

    /// Sets the speed (0.5–2.0).
    pub fn speed(mut self, speed: f32) -> Self {
        self.speed = Some(speed);
        self
    }

    /// Sets the language.
    pub fn language(mut self, language: Language) -> Self {
        self.language = Some(language);
        self
    }

    /// Sets the language for numbers, currency, times and years.
    pub fn number_pronunciation_language(mut self, language: Language) -> Self {
        self.number_pronunciation_language = Some(language);
        self
    }

    /// Reads math operators between digits as words.
    pub fn math_notation(mut self, on: bool) -> Self {
        self.math_notation = Some(on);
        self
    }

    /// Sets the output format.
    pub fn output_format(mut self, format: OutputFormat) -> Self {
        self.output_format = Some(format);
        self
    }

    /// Adds a pronunciation dictionary.
    pub fn pronunciation_dict(mut self, id: impl Into<String>) -> Self {
        self.pronunciation_dicts.push(id.into());
        self
    }

    /// Sets your session correlation id (`^[a-zA-Z0-9_\-.]+$`, ≤128 characters).
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Sets your request correlation id (`^[a-zA-Z0-9_\-.]+$`, ≤128 characters).
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Asks the server to delete this request's text after 7 days (Enterprise).
    pub fn expire_content(mut self, on: bool) -> Self {
        self.expire_content = on;
        self
    }

    /// The format the audio will come back in.
    pub fn effective_format(&self) -> OutputFormat {
        self.output_format.unwrap_or_default()
    }

    /// The sample rate the audio will come back at.
    pub fn effective_sample_rate(&self) -> u32 {
        self.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    /// Checks every field against what the API accepts.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.text.trim().is_empty() {
            return Err(ValidationError::new(
                "text",
                &self.text,
                "the text must contain at least one non-whitespace character",
            ));
        }
        validate_voice_id(&self.voice_id)?;
        if let Some(hz) = self.sample_rate {
            validate_sample_rate("sample_rate", hz)?;
        }
        if let Some(speed) = self.speed
            && !(speed.is_finite() && (0.5..=2.0).contains(&speed))
        {
            return Err(ValidationError::new(
                "speed",
                speed,
                "allowed: a number from 0.5 to 2.0",
            ));
        }
        let model = self.model.clone().unwrap_or_default();
        for (field, language) in [
            ("language", &self.language),
            (
                "number_pronunciation_language",
                &self.number_pronunciation_language,
            ),
        ] {
            if let Some(language) = language {
                validate_language(field, &model, language)?;
            }
        }
        for id in &self.pronunciation_dicts {
            if id.trim().is_empty() {
                return Err(ValidationError::new(
                    "pronunciation_dicts",
                    id,
                    "each dictionary id must be non-empty",
                ));
            }
        }
        if let Some(id) = &self.session_id {
            validate_correlation_id("session_id", id)?;
        }
        if let Some(id) = &self.request_id {
            validate_correlation_id("request_id", id)?;
        }
        Ok(())
    }

    /// The JSON body as sent over HTTP: every field that is set, plus the output
    /// format and sample rate always stated explicitly, so the audio that comes back
    /// is described exactly whatever the server's defaults become.
    pub(crate) fn http_body(&self) -> TtsBody<'_> {
        TtsBody {
            text: &self.text,
            voice_id: &self.voice_id,
            model: self.model.as_ref(),
            sample_rate: Some(self.effective_sample_rate()),
            speed: self.speed,
            language: self.language.as_ref(),
            number_pronunciation_language: self.number_pronunciation_language.as_ref(),
            math_notation: self.math_notation,
            output_format: Some(self.effective_format()),
            pronunciation_dicts: &self.pronunciation_dicts,
            session_id: self.session_id.as_deref(),
            request_id: self.request_id.as_deref(),
        }
    }

    /// Builds a request for `path` (sync or SSE) with this body.
    pub(crate) fn http_request(
        &self,
        config: &Config,
        path: &str,
        accept: &'static str,
    ) -> Result<Request<Bytes>, Error> {
        self.validate()?;
        let body = serde_json::to_vec(&self.http_body())
            .map_err(|e| Error::decode("TTS request body", e))?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(config.uri(path)?)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept);
        if self.expire_content {
            builder = builder.header("x-expire-content", "true");
        }
        builder
            .body(Bytes::from(body))
            .map_err(|e| Error::Config(format!("cannot build request: {e}").into()))
    }
}

/// The serialized TTS body. Field order follows API.md §3.1.
#[derive(Serialize)]
pub(crate) struct TtsBody<'a> {
    pub(crate) text: &'a str,
    pub(crate) voice_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<&'a TtsModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) speed: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) language: Option<&'a Language>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) number_pronunciation_language: Option<&'a Language>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) math_notation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_format: Option<OutputFormat>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(crate) pronunciation_dicts: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<&'a str>,
}

impl Endpoint for TtsRequest {
    type Output = Audio;
    const USES_TTS_SLOT: bool = true;
    const BODY_KIND: crate::endpoint::BodyKind = crate::endpoint::BodyKind::Audio;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        self.http_request(config, TTS_PATH, "audio/wav")
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<Audio, Error> {
        let response = check_status(response)?;
        let info = ResponseInfo::from_headers(response.headers());
        let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
        let encoding = header_str(response.headers(), "content-encoding");
        let body = response.into_body();
        if content_type.starts_with("application/json") {
            let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(Error::decode(
                "synthesis response",
                format!("expected audio, got a JSON body: {shown}"),
            ));
        }
        if body.is_empty() {
            return Err(Error::decode(
                "synthesis response",
                "the server returned an empty audio body",
            ));
        }
        check_audio_body(
            self.effective_format(),
            &content_type,
            encoding.as_deref(),
            &body,
        )?;
        Ok(Audio {
            data: body,
            format: self.effective_format(),
            sample_rate: self.effective_sample_rate(),
            info,
        })
    }
}

/// The identifying headers of a successful TTS response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseInfo {
    /// `X-Session-Id`: the server's session id.
    pub session_id: Option<String>,
    /// `X-Request-Id`: the server's request id.
    pub request_id: Option<String>,
    /// `X-External-Session-Id`: your `session_id` echoed (empty when you sent none).
    pub external_session_id: Option<String>,
    /// `X-External-Request-Id`: your `request_id` echoed (empty when you sent none).
    pub external_request_id: Option<String>,
    /// `x-content-expiry`, present only when `expire_content` was requested.
    pub content_expiry: Option<ContentExpiry>,
}

impl ResponseInfo {
    /// Reads the headers of a TTS response (sync or SSE).
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let non_empty = |name: &str| header_str(headers, name).filter(|v| !v.is_empty());
        ResponseInfo {
            session_id: non_empty("x-session-id"),
            request_id: non_empty("x-request-id"),
            external_session_id: non_empty("x-external-session-id"),
            external_request_id: non_empty("x-external-request-id"),
            content_expiry: non_empty("x-content-expiry").map(|v| ContentExpiry::from_wire(&v)),
        }
    }
}

/// Synthesized audio, with the format and sample rate it was asked for.
#[derive(Clone, PartialEq)]
pub struct Audio {
    data: Bytes,
    format: OutputFormat,
    sample_rate: u32,
    info: ResponseInfo,
}

impl Audio {
    /// Audio from parts (for tests, or for audio assembled from a stream).
    pub fn new(data: Bytes, format: OutputFormat, sample_rate: u32, info: ResponseInfo) -> Self {
        Audio {
            data,
            format,
            sample_rate,
            info,
        }
    }

    /// The bytes exactly as the server sent them.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// The bytes, by value.
    pub fn into_bytes(self) -> Bytes {
        self.data
    }

    /// The encoding of [`bytes`](Self::bytes).
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The response's ids and content-expiry answer.
    pub fn info(&self) -> &ResponseInfo {
        &self.info
    }

    /// The duration, for sample-based formats (not MP3).
    pub fn duration(&self) -> Option<std::time::Duration> {
        let payload = match self.format {
            OutputFormat::Wav => audio::wav_data(&self.data).map_or(0, <[u8]>::len),
            OutputFormat::Mp3 => return None,
            _ => self.data.len(),
        };
        let samples = payload / self.format.bytes_per_sample()?;
        // `try_`: a zero sample rate (possible through `Audio::new`) must not panic.
        std::time::Duration::try_from_secs_f64(samples as f64 / f64::from(self.sample_rate)).ok()
    }

    /// A playable WAV file: `wav` as received, `pcm` with a 44-byte header prepended,
    /// `ulaw`/`alaw` as G.711 WAV (format tags 7 and 6). MP3 has no WAV form.
    pub fn to_wav(&self) -> Result<Bytes, Error> {
        let encoding = match self.format {
            OutputFormat::Wav => return Ok(self.data.clone()),
            OutputFormat::Pcm => audio::WavEncoding::Pcm16,
            OutputFormat::Ulaw => audio::WavEncoding::MuLaw,
            OutputFormat::Alaw => audio::WavEncoding::ALaw,
            OutputFormat::Mp3 => {
                return Err(Error::Validation(ValidationError::new(
                    "output_format",
                    "mp3",
                    "a WAV file can be made from pcm, wav, ulaw or alaw audio",
                )));
            }
        };
        let mut out = Vec::with_capacity(audio::WAV_HEADER_LEN + self.data.len());
        out.extend_from_slice(&audio::wav_header(
            encoding,
            self.sample_rate,
            self.data.len() as u64,
        ));
        out.extend_from_slice(&self.data);
        Ok(Bytes::from(out))
    }
}

impl Audio {
    /// Joins the audio of consecutive syntheses of the same format and rate into one,
    /// as if it had been synthesized at once: raw formats and MP3 frames are
    /// concatenated; WAV files are re-wrapped under one header. The ids are the first
    /// part's.
    pub fn concat(parts: Vec<Audio>) -> Result<Audio, Error> {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Err(Error::Validation(ValidationError::new(
                "audio",
                "no parts",
                "at least one synthesized part",
            )));
        };
        let (format, sample_rate, info) = (first.format, first.sample_rate, first.info.clone());
        let mut payload = Vec::with_capacity(first.data.len());
        for part in std::iter::once(first).chain(parts) {
            if (part.format, part.sample_rate) != (format, sample_rate) {
                return Err(Error::Validation(ValidationError::new(
                    "audio",
                    format!("{} at {} Hz", part.format, part.sample_rate),
                    format!("parts of one format and rate ({format} at {sample_rate} Hz)"),
                )));
            }
            match format {
                OutputFormat::Wav => {
                    payload.extend_from_slice(audio::wav_data(&part.data).ok_or_else(|| {
                        Error::decode("synthesis response", "a `wav` part is not a WAV file")
                    })?)
                }
                _ => payload.extend_from_slice(&part.data),
            }
        }
        let data = if format == OutputFormat::Wav {
            let mut file = Vec::with_capacity(audio::WAV_HEADER_LEN + payload.len());
            file.extend_from_slice(&audio::wav_header(
                audio::WavEncoding::Pcm16,
                sample_rate,
                payload.len() as u64,
            ));
            file.extend_from_slice(&payload);
            file
        } else {
            payload
        };
        Ok(Audio::new(Bytes::from(data), format, sample_rate, info))
    }
}

/// The longest text the API recommends per request (API.md §8.5).
pub const RECOMMENDED_MAX_CHARS: usize = 250;

/// Splits a long text into pieces of at most `max_chars` characters, at sentence ends
/// where it can, else at the last space, else (one very long word) at `max_chars`.
/// Joining the pieces with nothing between them gives back the text minus the
/// whitespace at the cuts; no character is lost or reordered.
pub fn split_text(text: &str, max_chars: usize) -> Vec<&str> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
            pieces.push(rest);
            break;
        };
        let window = &rest[..limit];
        let sentence_end = window
            .char_indices()
            .filter(|&(i, c)| {
                matches!(c, '.' | '!' | '?' | '。' | '।' | '؟')
                    && rest[i + c.len_utf8()..].starts_with(char::is_whitespace)
            })
            .map(|(i, c)| i + c.len_utf8())
            .next_back();
        let cut = sentence_end
            .or_else(|| window.rfind(char::is_whitespace).filter(|&i| i > 0))
            .unwrap_or(limit);
        pieces.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

impl TtsRequest {
    /// This request split into requests of at most [`RECOMMENDED_MAX_CHARS`] characters
    /// of text each (see [`split_text`]), with every other field kept. Synthesize them
    /// in order and join the results with [`Audio::concat`].
    pub fn split(&self) -> Vec<TtsRequest> {
        split_text(&self.text, RECOMMENDED_MAX_CHARS)
            .into_iter()
            .map(|piece| TtsRequest {
                text: piece.to_owned(),
                ..self.clone()
            })
            .collect()
    }
}

impl std::fmt::Debug for Audio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audio")
            .field("format", &self.format)
            .field("sample_rate", &self.sample_rate)
            .field("len", &self.data.len())
            .field("info", &self.info)
            .finish()
    }
}

pub(crate) fn validate_sample_rate(field: &'static str, hz: u32) -> Result<(), ValidationError> {
    if SAMPLE_RATES.contains(&hz) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            hz,
            "allowed: 8000, 16000, 24000, 44100",
        ))
    }
}

pub(crate) fn validate_voice_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty()
        || id.len() > 128
        || !id.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c))
    {
        return Err(ValidationError::new(
            "voice_id",
            id,
            "a voice id from the voice list (e.g. \"meher\") or a clone id (\"voice_…\"): \
             1–128 letters, digits, `_`, `-` or `.`",
        ));
    }
    Ok(())
}

pub(crate) fn validate_language(
    field: &'static str,
    model: &TtsModel,
    language: &Language,
) -> Result<(), ValidationError> {
    let Some(allowed) = model.languages() else {
        return Ok(());
    };
    if allowed.contains(language) {
        return Ok(());
    }
    let list = allowed
        .iter()
        .map(Language::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Err(ValidationError::new(
        field,
        language.as_str(),
        format!("the {model} model accepts: {list}"),
    ))
}

/// Checks a correlation id against `^[a-zA-Z0-9_\-.]+$` and a length of 1–128.
pub(crate) fn validate_correlation_id(
    field: &'static str,
    id: &str,
) -> Result<(), ValidationError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(ValidationError::new(
            field,
            id,
            "1–128 characters from a-z, A-Z, 0-9, `_`, `-` and `.`",
        ));
    }
    Ok(())
}

/// Refuses a 2xx body that is not the audio that was asked for: a captive portal's HTML
/// page, a `text/plain` note, a compressed blob, a WAV without its RIFF header, an MP3
/// without a frame sync or ID3 tag, 16-bit PCM of odd length. Saving such a body as
/// `out.wav` would be a silent failure; the error quotes its first bytes, escaped.
fn check_audio_body(
    format: OutputFormat,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> Result<(), Error> {
    let problem = if let Some(encoding) = encoding.filter(|e| !e.eq_ignore_ascii_case("identity")) {
        Some(format!(
            "a `{encoding}`-encoded body (the SDK asks for plain audio)"
        ))
    } else if content_type.starts_with("text/") {
        Some(format!("a `{content_type}` body"))
    } else {
        match format {
            OutputFormat::Wav
                if !(body.len() >= 12 && &body[..4] == b"RIFF" && &body[8..12] == b"WAVE") =>
            {
                Some("a body without a RIFF/WAVE header".to_owned())
            }
            OutputFormat::Mp3
                if !(body.starts_with(b"ID3")
                    || (body.len() >= 2 && body[0] == 0xFF && body[1] & 0xE0 == 0xE0)) =>
            {
                Some("a body without an MP3 frame sync or ID3 tag".to_owned())
            }
            OutputFormat::Pcm if !body.len().is_multiple_of(2) => Some(format!(
                "{} bytes, an odd length for 16-bit PCM",
                body.len()
            )),
            _ => None,
        }
    };
    match problem {
        None => Ok(()),
        Some(problem) => {
            let start = String::from_utf8_lossy(&body[..body.len().min(48)]).into_owned();
            Err(Error::decode(
                "synthesis response",
                format!("expected {format} audio, got {problem}; it starts with {start:?}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_text_cuts_at_sentences_then_spaces_and_loses_nothing() {
        let text = "One sentence here. Another one follows! And a third? Yes.";
        assert_eq!(
            split_text(text, 25),
            vec![
                "One sentence here.",
                "Another one follows!",
                "And a third? Yes."
            ]
        );
        assert_eq!(split_text("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(split_text("aaa bbb ccc", 5), vec!["aaa", "bbb", "ccc"]);
        assert_eq!(split_text("  short  ", 250), vec!["short"]);
        assert!(split_text("   ", 250).is_empty());
        let long: String = "Word ".repeat(400);
        let pieces = split_text(&long, RECOMMENDED_MAX_CHARS);
        assert!(
            pieces
                .iter()
                .all(|p| p.chars().count() <= RECOMMENDED_MAX_CHARS)
        );
        let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(squeeze(&pieces.join(" ")), squeeze(&long));
        let hindi = "नमस्ते दुनिया। यह एक परीक्षण है। ".repeat(20);
        for p in split_text(&hindi, 40) {
            assert!(p.chars().count() <= 40);
        }
    }

    #[test]
    fn concat_joins_raw_and_wav_parts() {
        let part = |data: &'static [u8], format| {
            Audio::new(
                Bytes::from_static(data),
                format,
                16000,
                ResponseInfo::default(),
            )
        };
        let raw = Audio::concat(vec![
            part(b"\x01\x00", OutputFormat::Pcm),
            part(b"\x02\x00", OutputFormat::Pcm),
        ])
        .unwrap();
        assert_eq!(raw.bytes().as_ref(), b"\x01\x00\x02\x00");
        let wav = |pcm: &[u8]| {
            let mut f =
                audio::wav_header(audio::WavEncoding::Pcm16, 16000, pcm.len() as u64).to_vec();
            f.extend_from_slice(pcm);
            Audio::new(
                Bytes::from(f),
                OutputFormat::Wav,
                16000,
                ResponseInfo::default(),
            )
        };
        let joined = Audio::concat(vec![wav(&[1, 0]), wav(&[2, 0, 3, 0])]).unwrap();
        assert_eq!(
            audio::wav_data(joined.bytes()).unwrap(),
            &[1, 0, 2, 0, 3, 0]
        );
        assert_eq!(audio::wav_info(joined.bytes()).unwrap().sample_rate, 16000);
        assert!(Audio::concat(vec![]).is_err());
        assert!(
            Audio::concat(vec![
                part(b"\x01\x00", OutputFormat::Pcm),
                part(b"\x01", OutputFormat::Ulaw)
            ])
            .is_err()
        );
    }
}
