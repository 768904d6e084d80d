//! Pulse speech-to-text, pre-recorded: `POST /waves/v1/stt/` (API.md §4.1) and the
//! legacy `POST /waves/v1/pulse/get_text` (§4.3).
//!
//! Audio goes up as raw bytes or as a URL the server fetches. Both response shapes
//! (Pulse and Pulse Pro) and the asynchronous `processing` answer of a webhook request
//! parse into one [`Transcription`].

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::Config;
use crate::endpoint::{Endpoint, check_status, json_body};
use crate::error::{Error, ValidationError};
use crate::macros::string_enum;

/// The path of unified pre-recorded STT (with its trailing slash).
pub const STT_PATH: &str = "/waves/v1/stt/";

/// The path of the legacy pre-recorded STT.
pub const LEGACY_STT_PATH: &str = "/waves/v1/pulse/get_text";

/// The largest upload the API accepts: 250 MB.
pub const MAX_UPLOAD_BYTES: u64 = 250 * 1024 * 1024;

string_enum! {
    /// A Pulse STT model (the `model` query parameter).
    #[derive(Default)]
    SttModel {
        /// `pulse`: many languages, diarization, HTTP and WebSocket.
        #[default]
        Pulse = "pulse",
        /// `pulse-pro`: English, pre-recorded only, plan-gated.
        PulsePro = "pulse-pro",
    }
}

string_enum! {
    /// An STT language code (§4.4): pre-recorded and streaming codes in one type.
    SttLanguage {
        /// English.
        En = "en",
        /// Hindi.
        Hi = "hi",
        /// German.
        De = "de",
        /// Spanish.
        Es = "es",
        /// Russian.
        Ru = "ru",
        /// Italian.
        It = "it",
        /// French.
        Fr = "fr",
        /// Dutch.
        Nl = "nl",
        /// Portuguese.
        Pt = "pt",
        /// Ukrainian.
        Uk = "uk",
        /// Polish.
        Pl = "pl",
        /// Czech.
        Cs = "cs",
        /// Slovak.
        Sk = "sk",
        /// Latvian.
        Lv = "lv",
        /// Estonian.
        Et = "et",
        /// Romanian.
        Ro = "ro",
        /// Finnish.
        Fi = "fi",
        /// Swedish.
        Sv = "sv",
        /// Bulgarian.
        Bg = "bg",
        /// Hungarian.
        Hu = "hu",
        /// Danish.
        Da = "da",
        /// Lithuanian.
        Lt = "lt",
        /// Maltese.
        Mt = "mt",
        /// Chinese.
        Zh = "zh",
        /// Japanese.
        Ja = "ja",
        /// Korean.
        Ko = "ko",
        /// Cantonese (streaming only).
        Yue = "yue",
        /// Gujarati (streaming only).
        Gu = "gu",
        /// Marathi (streaming only).
        Mr = "mr",
        /// Odia (streaming only).
        Or = "or",
        /// Bengali (streaming only).
        Bn = "bn",
        /// Tamil (streaming only).
        Ta = "ta",
        /// Telugu (streaming only).
        Te = "te",
        /// Kannada (streaming only).
        Kn = "kn",
        /// Malayalam (streaming only).
        Ml = "ml",
        /// European languages + English (pre-recorded only).
        MultiEu = "multi-eu",
        /// Chinese, Korean, Japanese + English.
        MultiAsian = "multi-asian",
        /// English, Hindi, Gujarati, Marathi, Bengali, Odia (pre-recorded only).
        MultiIndic = "multi-indic",
        /// English, Hindi, Gujarati, Marathi, Bengali, Odia (streaming only).
        NorthIndic = "north_indic",
        /// Tamil, Telugu, Kannada, Malayalam + English (streaming only).
        MultiSouthIndic = "multi-south-indic",
    }
}

impl SttLanguage {
    /// Whether pre-recorded STT (`/stt/`, `/pulse/get_text`) accepts this code.
    pub fn is_prerecorded(&self) -> bool {
        use SttLanguage::*;
        matches!(
            self,
            En | Hi
                | De
                | Es
                | Ru
                | It
                | Fr
                | Nl
                | Pt
                | Uk
                | Pl
                | Cs
                | Sk
                | Lv
                | Et
                | Ro
                | Fi
                | Sv
                | Bg
                | Hu
                | Da
                | Lt
                | Mt
                | Zh
                | Ja
                | Ko
                | MultiEu
                | MultiAsian
                | MultiIndic
        )
    }

    /// Whether live STT (`/stt/live`) accepts this code.
    pub fn is_streaming(&self) -> bool {
        use SttLanguage::*;
        matches!(
            self,
            En | Hi
                | De
                | Es
                | Ru
                | It
                | Fr
                | Nl
                | Pt
                | Zh
                | Yue
                | Ja
                | Ko
                | Gu
                | Mr
                | Or
                | Bn
                | Ta
                | Te
                | Kn
                | Ml
                | NorthIndic
                | MultiAsian
                | MultiSouthIndic
        )
    }

    pub(crate) fn list(pred: fn(&SttLanguage) -> bool) -> String {
        Self::ALL
            .iter()
            .filter(|l| pred(l))
            .map(SttLanguage::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where the audio to transcribe comes from.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum AudioSource {
    /// The file's bytes, uploaded as the body. The container is detected by the server.
    Bytes {
        /// The audio file (WAV, MP3, FLAC, OGG, M4A, WebM …).
        data: Bytes,
        /// The `Content-Type` to send; `application/octet-stream` when `None`.
        content_type: Option<String>,
    },
    /// A public URL the server downloads (Pulse only).
    Url(String),
}

impl std::fmt::Debug for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioSource::Bytes { data, content_type } => f
                .debug_struct("Bytes")
                .field("len", &data.len())
                .field("content_type", content_type)
                .finish(),
            AudioSource::Url(url) => f.debug_tuple("Url").field(url).finish(),
        }
    }
}

/// The HTTP method of a webhook delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookMethod {
    /// `POST` (the default).
    Post,
    /// `GET`.
    Get,
}

/// A pre-recorded transcription: `POST /waves/v1/stt/?model=…&language=…`.
///
/// ```
/// use smallest_core::stt::{SttLanguage, SttModel, TranscribeRequest};
/// let request = TranscribeRequest::from_url("https://example.com/call.wav", SttLanguage::En)
///     .word_timestamps(true)
///     .diarize(true);
/// assert!(request.validate().is_ok());
/// // Pulse Pro cannot fetch URLs:
/// assert!(request.model(SttModel::PulsePro).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TranscribeRequest {
    /// The audio.
    pub source: AudioSource,
    /// The model (sent explicitly; `pulse` unless set).
    pub model: SttModel,
    /// The language (required by the API).
    pub language: SttLanguage,
    /// Fill `words` and `utterances`.
    pub word_timestamps: bool,
    /// Speaker labels on words and utterances (Pulse only).
    pub diarize: bool,
    /// Answer at once with `processing` and deliver the result here (Pulse Pro).
    pub webhook_url: Option<String>,
    /// How the webhook is called.
    pub webhook_method: Option<WebhookMethod>,
    /// `key:value,key2:value2` returned with the webhook payload.
    pub webhook_extra: Option<String>,
    /// Replace personal data with tokens such as `[FIRSTNAME_1]` (en, hi).
    pub redact_pii: bool,
    /// Replace payment data with tokens such as `[CREDITCARDCVV_1]` (en, hi).
    pub redact_pci: bool,
    /// Add an `emotions` score map.
    pub emotion_detection: bool,
    /// Add the speaker's `gender` (Pulse).
    pub gender_detection: bool,
    /// Sends `x-expire-content: true` (Enterprise: delete the transcript after 7 days).
    pub expire_content: bool,
}

impl TranscribeRequest {
    /// Transcribes `source` in `language` with Pulse.
    pub fn new(source: AudioSource, language: SttLanguage) -> Self {
        TranscribeRequest {
            source,
            model: SttModel::Pulse,
            language,
            word_timestamps: false,
            diarize: false,
            webhook_url: None,
            webhook_method: None,
            webhook_extra: None,
            redact_pii: false,
            redact_pci: false,
            emotion_detection: false,
            gender_detection: false,
            expire_content: false,
        }
    }

    /// Transcribes the bytes of an audio file.
    pub fn from_bytes(data: impl Into<Bytes>, language: SttLanguage) -> Self {
        Self::new(
            AudioSource::Bytes {
                data: data.into(),
                content_type: None,
            },
            language,
        )
    }

    /// Transcribes the audio at a public URL (Pulse only).
    pub fn from_url(url: impl Into<String>, language: SttLanguage) -> Self {
        Self::new(AudioSource::Url(url.into()), language)
    }

    /// Sets the model.
    pub fn model(mut self, model: SttModel) -> Self {
        self.model = model;
        self
    }

    /// Sets the `Content-Type` of a byte upload (e.g. `audio/wav`).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        if let AudioSource::Bytes {
            content_type: ct, ..
        } = &mut self.source
        {
            *ct = Some(content_type.into());
        }
        self
    }

    /// Word and utterance timestamps.
    pub fn word_timestamps(mut self, on: bool) -> Self {
        self.word_timestamps = on;
        self
    }

    /// Speaker diarization.
    pub fn diarize(mut self, on: bool) -> Self {
        self.diarize = on;
        self
    }

    /// Asynchronous delivery to a webhook.
    pub fn webhook(mut self, url: impl Into<String>, method: WebhookMethod) -> Self {
        self.webhook_url = Some(url.into());
        self.webhook_method = Some(method);
        self
    }

    /// Extra `key:value` pairs for the webhook payload.
    pub fn webhook_extra(mut self, extra: impl Into<String>) -> Self {
        self.webhook_extra = Some(extra.into());
        self
    }

    /// PII redaction.
    pub fn redact_pii(mut self, on: bool) -> Self {
        self.redact_pii = on;
        self
    }

    /// PCI redaction.
    pub fn redact_pci(mut self, on: bool) -> Self {
        self.redact_pci = on;
        self
    }

    /// Emotion scores.
    pub fn emotion_detection(mut self, on: bool) -> Self {
        self.emotion_detection = on;
        self
    }

    /// Gender detection.
    pub fn gender_detection(mut self, on: bool) -> Self {
        self.gender_detection = on;
        self
    }

    /// Content expiry (Enterprise).
    pub fn expire_content(mut self, on: bool) -> Self {
        self.expire_content = on;
        self
    }

    /// Checks the request against what the API accepts.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_params()?;
        self.validate_source()?;
        if self.model == SttModel::PulsePro && matches!(self.source, AudioSource::Url(_)) {
            return Err(ValidationError::new(
                "model",
                self.model.as_str(),
                "a URL source needs model pulse: Pulse Pro transcribes uploaded bytes only, so \
                 upload the file instead",
            ));
        }
        Ok(())
    }

    /// Everything but the audio source: model, language, webhook.
    fn validate_params(&self) -> Result<(), ValidationError> {
        if self.model.is_known() && !self.language.is_prerecorded() {
            return Err(ValidationError::new(
                "language",
                self.language.as_str(),
                format!(
                    "pre-recorded STT accepts: {}",
                    SttLanguage::list(SttLanguage::is_prerecorded)
                ),
            ));
        }
        if let SttModel::Other(m) = &self.model
            && m.trim().is_empty()
        {
            return Err(ValidationError::new(
                "model",
                m,
                "allowed: pulse, pulse-pro",
            ));
        }
        if let Some(url) = &self.webhook_url {
            validate_http_url("webhook_url", url)?;
        }
        Ok(())
    }

    fn validate_source(&self) -> Result<(), ValidationError> {
        match &self.source {
            AudioSource::Bytes { data, .. } => validate_upload_len(data.len() as u64),
            AudioSource::Url(url) => validate_http_url("url", url),
        }
    }

    /// The query string, every parameter in API.md §4.1 order.
    pub fn query(&self) -> String {
        let mut q = Query::default();
        q.push("model", self.model.as_str());
        q.push("language", self.language.as_str());
        q.flag("word_timestamps", self.word_timestamps);
        q.flag("diarize", self.diarize);
        if let Some(url) = &self.webhook_url {
            q.push("webhook_url", url);
        }
        if let Some(method) = self.webhook_method {
            q.push(
                "webhook_method",
                match method {
                    WebhookMethod::Get => "GET",
                    WebhookMethod::Post => "POST",
                },
            );
        }
        if let Some(extra) = &self.webhook_extra {
            q.push("webhook_extra", extra);
        }
        q.flag("redact_pii", self.redact_pii);
        q.flag("redact_pci", self.redact_pci);
        q.flag("emotion_detection", self.emotion_detection);
        q.flag("gender_detection", self.gender_detection);
        q.finish()
    }

    /// The request head for an upload whose body the transport streams itself (from a
    /// file or a reader): method, URI, `Content-Type` and, when known, `Content-Length`.
    /// The body of `self.source` is ignored.
    pub fn upload_head(
        &self,
        config: &Config,
        content_length: Option<u64>,
        content_type: Option<&str>,
    ) -> Result<Request<()>, Error> {
        if let Some(len) = content_length {
            validate_upload_len(len)?;
        }
        // The body is streamed by the transport: only the parameters are checked here.
        self.validate_params()?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(config.uri(&format!("{STT_PATH}?{}", self.query()))?)
            .header(
                header::CONTENT_TYPE,
                content_type.unwrap_or("application/octet-stream"),
            );
        if let Some(len) = content_length {
            builder = builder.header(header::CONTENT_LENGTH, len);
        }
        if self.expire_content {
            builder = builder.header("x-expire-content", "true");
        }
        builder
            .body(())
            .map_err(|e| Error::Config(format!("cannot build request: {e}").into()))
    }
}

impl TranscribeRequest {
    /// [`upload_head`](Self::upload_head) ready to send: with `Authorization` (marked
    /// sensitive), `User-Agent` and `X-Source`, added by the one function that adds them
    /// to every request of the SDK.
    pub fn prepare_upload(
        &self,
        config: &Config,
        content_length: Option<u64>,
        content_type: Option<&str>,
    ) -> Result<Request<()>, Error> {
        let mut head = self.upload_head(config, content_length, content_type)?;
        config.apply_headers(&mut head, true);
        Ok(head)
    }

    /// The `Content-Type` of a streamed upload: the one set on the request's byte
    /// source, else one guessed from the file's extension (`.wav`, `.mp3`, `.flac`,
    /// `.ogg`, `.m4a`, `.webm` …), else `application/octet-stream` (the server detects
    /// the container either way).
    pub fn upload_content_type(&self, file: Option<&std::path::Path>) -> String {
        if let AudioSource::Bytes {
            content_type: Some(content_type),
            ..
        } = &self.source
        {
            return content_type.clone();
        }
        let extension = file
            .and_then(std::path::Path::extension)
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("wav" | "wave") => "audio/wav",
            Some("mp3") => "audio/mpeg",
            Some("flac") => "audio/flac",
            Some("ogg" | "oga" | "opus") => "audio/ogg",
            Some("m4a" | "mp4") => "audio/mp4",
            Some("webm") => "audio/webm",
            _ => "application/octet-stream",
        }
        .to_owned()
    }
}

impl Endpoint for TranscribeRequest {
    type Output = Transcription;

    fn stt_model(&self) -> Option<&str> {
        Some(self.model.as_str())
    }

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        self.validate()?;
        let uri = config.uri(&format!("{STT_PATH}?{}", self.query()))?;
        source_request(uri, &self.source, self.expire_content)
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<Transcription, Error> {
        let response = check_status(response)?;
        parse_transcription(response.body())
    }
}

/// How far an upload has got: reported by the transports as its bytes are handed to
/// the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes of the audio sent so far.
    pub sent: u64,
    /// The whole upload, when its length is known (always for a file).
    pub total: Option<u64>,
}

impl Progress {
    /// The progress of `sent` bytes out of `total`.
    pub fn new(sent: u64, total: Option<u64>) -> Self {
        Progress { sent, total }
    }

    /// `sent / total`, between 0 and 1, when the total is known (and not zero).
    pub fn fraction(&self) -> Option<f64> {
        self.total
            .filter(|t| *t > 0)
            .map(|t| (self.sent as f64 / t as f64).min(1.0))
    }
}

/// The legacy pre-recorded transcription, `POST /waves/v1/pulse/get_text` — the call
/// of the vendor's getting-started page: `?language=en` and `{"url": …}`, answering
/// `{"transcription": …}`. No `model`: it cannot reach Pulse Pro. Prefer
/// [`TranscribeRequest`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LegacyTranscribeRequest {
    /// The audio.
    pub source: AudioSource,
    /// The language; the server picks its default when `None`.
    pub language: Option<SttLanguage>,
    /// Fill `words` and `utterances`.
    pub word_timestamps: bool,
    /// Speaker labels.
    pub diarize: bool,
}

impl LegacyTranscribeRequest {
    /// Transcribes `source`.
    pub fn new(source: AudioSource) -> Self {
        LegacyTranscribeRequest {
            source,
            language: None,
            word_timestamps: false,
            diarize: false,
        }
    }

    /// Transcribes the audio at a public URL.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self::new(AudioSource::Url(url.into()))
    }

    /// Transcribes the bytes of an audio file.
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        Self::new(AudioSource::Bytes {
            data: data.into(),
            content_type: None,
        })
    }

    /// Sets the language.
    pub fn language(mut self, language: SttLanguage) -> Self {
        self.language = Some(language);
        self
    }

    /// Word and utterance timestamps.
    pub fn word_timestamps(mut self, on: bool) -> Self {
        self.word_timestamps = on;
        self
    }

    /// Speaker diarization.
    pub fn diarize(mut self, on: bool) -> Self {
        self.diarize = on;
        self
    }
}

impl Endpoint for LegacyTranscribeRequest {
    type Output = Transcription;

    /// The legacy route names no model: it is Pulse's (API.md §4.3).
    fn stt_model(&self) -> Option<&str> {
        Some("pulse")
    }

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        if let Some(language) = &self.language
            && language.is_known()
            && !language.is_prerecorded()
        {
            return Err(ValidationError::new(
                "language",
                language.as_str(),
                format!(
                    "pre-recorded STT accepts: {}",
                    SttLanguage::list(SttLanguage::is_prerecorded)
                ),
            )
            .into());
        }
        match &self.source {
            AudioSource::Bytes { data, .. } => validate_upload_len(data.len() as u64)?,
            AudioSource::Url(url) => validate_http_url("url", url)?,
        }
        let mut q = Query::default();
        if let Some(language) = &self.language {
            q.push("language", language.as_str());
        }
        if self.word_timestamps {
            q.push("word_timestamps", "true");
        }
        if self.diarize {
            q.push("diarize", "true");
        }
        let query = q.finish();
        let path = if query.is_empty() {
            LEGACY_STT_PATH.to_owned()
        } else {
            format!("{LEGACY_STT_PATH}?{query}")
        };
        source_request(config.uri(&path)?, &self.source, false)
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<Transcription, Error> {
        let response = check_status(response)?;
        parse_transcription(response.body())
    }
}

/// A transcription is a JSON object; serde would also take an array for a struct.
fn parse_transcription(body: &[u8]) -> Result<Transcription, Error> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => json_body("transcription response", body),
        _ => Err(Error::decode(
            "transcription response",
            "expected a JSON object",
        )),
    }
}

fn source_request(
    uri: http::Uri,
    source: &AudioSource,
    expire_content: bool,
) -> Result<Request<Bytes>, Error> {
    let (content_type, body) = match source {
        AudioSource::Bytes { data, content_type } => (
            content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            data.clone(),
        ),
        AudioSource::Url(url) => (
            "application/json".to_owned(),
            Bytes::from(
                serde_json::to_vec(&UrlBody { url })
                    .map_err(|e| Error::decode("request body", e))?,
            ),
        ),
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type);
    if expire_content {
        builder = builder.header("x-expire-content", "true");
    }
    builder
        .body(body)
        .map_err(|e| Error::Config(format!("cannot build request: {e}").into()))
}

#[derive(Serialize)]
struct UrlBody<'a> {
    url: &'a str,
}

pub(crate) fn validate_upload_len(len: u64) -> Result<(), ValidationError> {
    if len == 0 {
        return Err(ValidationError::new(
            "audio",
            "0 bytes",
            "an audio file of 1 byte to 250 MB",
        ));
    }
    if len > MAX_UPLOAD_BYTES {
        return Err(ValidationError::new(
            "audio",
            format!("{len} bytes"),
            "at most 250 MB (262144000 bytes); split longer recordings",
        ));
    }
    Ok(())
}

fn validate_http_url(field: &'static str, url: &str) -> Result<(), ValidationError> {
    let ok = url
        .parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if ok.is_none() {
        return Err(ValidationError::new(
            field,
            url,
            "an absolute http:// or https:// URL",
        ));
    }
    Ok(())
}

/// Characters left unescaped in query values: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A query-string builder: `key=value` pairs, values percent-encoded.
#[derive(Default)]
pub(crate) struct Query(String);

impl Query {
    pub(crate) fn push(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.extend(utf8_percent_encode(value, QUERY_VALUE));
    }

    /// Sends `key=true` only when `on`: the API's defaults are all `false`.
    pub(crate) fn flag(&mut self, key: &str, on: bool) {
        if on {
            self.push(key, "true");
        }
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// A transcription: the Pulse shape, the Pulse Pro shape, or the `processing` answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Transcription {
    /// `success`, `processing` (webhook requests) or, in webhook payloads, `failed`.
    #[serde(default)]
    pub status: String,
    /// The text (empty while `processing`).
    #[serde(default)]
    pub transcription: String,
    /// Words, when `word_timestamps` was set.
    #[serde(default)]
    pub words: Vec<Word>,
    /// Utterances (Pulse, with `word_timestamps`).
    #[serde(default)]
    pub utterances: Vec<Utterance>,
    /// The detected or pinned language (Pulse Pro).
    #[serde(default)]
    pub language: Option<String>,
    /// Durations and sizes.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Bytes received (Pulse Pro).
    #[serde(default, rename = "totalBytes")]
    pub total_bytes: Option<u64>,
    /// The server's request id (Pulse Pro, `processing`).
    #[serde(default)]
    pub request_id: Option<String>,
    /// `male` or `female`, with `gender_detection`.
    #[serde(default)]
    pub gender: Option<String>,
    /// Label → score, with `emotion_detection`.
    #[serde(default)]
    pub emotions: Option<BTreeMap<String, f64>>,
    /// Audio length in seconds (legacy endpoint).
    #[serde(default)]
    pub audio_length: Option<f64>,
}

impl Transcription {
    /// The request was accepted for asynchronous (webhook) delivery; the result is not here.
    pub fn is_processing(&self) -> bool {
        self.status == "processing"
    }
}

/// One recognized word.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Word {
    /// The word as written (with punctuation).
    #[serde(default)]
    pub word: String,
    /// Start, seconds.
    #[serde(default)]
    pub start: f64,
    /// End, seconds.
    #[serde(default)]
    pub end: f64,
    /// 0–1.
    #[serde(default)]
    pub confidence: Option<f64>,
    /// The 0-based speaker, with `diarize`.
    #[serde(default, deserialize_with = "speaker")]
    pub speaker: Option<u32>,
    /// 0–1, with `diarize`.
    #[serde(default)]
    pub speaker_confidence: Option<f64>,
}

/// One utterance (a sentence-like span).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Utterance {
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Start, seconds.
    #[serde(default)]
    pub start: f64,
    /// End, seconds.
    #[serde(default)]
    pub end: f64,
    /// The 0-based speaker, with `diarize`.
    #[serde(default, deserialize_with = "speaker")]
    pub speaker: Option<u32>,
}

/// Facts about the audio and the processing.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// Audio duration, seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Bytes of the file (Pulse).
    #[serde(default, rename = "fileSize")]
    pub file_size: Option<u64>,
    /// The file name (legacy endpoint, URL mode).
    #[serde(default)]
    pub filename: Option<String>,
    /// Processing time (Pulse Pro).
    #[serde(default)]
    pub processing_time_ms: Option<f64>,
    /// Real-time factor (Pulse Pro).
    #[serde(default)]
    pub rtfx: Option<f64>,
    /// Chunks processed (Pulse Pro).
    #[serde(default)]
    pub num_chunks: Option<u32>,
}

/// Speakers are integers in the API specs and `"speaker_0"` strings on some pages;
/// accept both (API.md §11 #24).
fn speaker<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u32),
        Float(f64),
        Text(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Int(n)) => Some(n),
        Some(Raw::Float(f)) if f >= 0.0 && f.fract() == 0.0 && f <= f64::from(u32::MAX) => {
            Some(f as u32)
        }
        Some(Raw::Float(_)) => None,
        Some(Raw::Text(s)) => s.trim_start_matches("speaker_").parse().ok(),
    })
}
