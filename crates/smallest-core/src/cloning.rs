//! `POST /waves/v1/voice-cloning` ([`CreateVoiceClone`]) and `GET
//! /waves/v1/voice-cloning` ([`ListVoiceClones`]): instant voice cloning (API.md §6).
//!
//! A clone is made from 5–15 seconds of clean speech (at most 5 MB). The upload is a
//! `multipart/form-data` body that this module builds byte for byte. A multipart body
//! needs a boundary that does not occur in its content; since the core never draws
//! random numbers, **the caller supplies it**: a fresh random boundary per request,
//! e.g. [`boundary_from_random`] over 16 random bytes. A boundary that occurs in the
//! file is refused (draw another one).
//!
//! The new clone's [`VoiceClone::id`] (`voice_…`) is then a TTS `voice_id` for the
//! matching TTS model (`lightning_v3.1` or `lightning_v3.1_pro`).
//!
//! **There is no way to delete a clone with an API key** (§6.3, §11 #37): the old
//! `DELETE /waves/v1/lightning-large` answers `410`, and `POST
//! /waves/v1/voice-cloning/delete` accepts only a console session token. Delete clones
//! from the Smallest AI dashboard.
//!
//! ```
//! use smallest_core::cloning::{CreateVoiceClone, boundary_from_random};
//! use smallest_core::{ApiKey, Config, Endpoint, Language};
//! let config = Config::new(ApiKey::new("sk_example").unwrap());
//! let wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec(); // your recording
//! let random = [7u8; 16]; // from your random number generator
//! let request = CreateVoiceClone::new("my voice", wav, "sample.wav")
//!     .language(Language::En)
//!     .boundary(boundary_from_random(random));
//! let http = request.to_http_request(&config).unwrap();
//! assert_eq!(http.uri(), "https://api.smallest.ai/waves/v1/voice-cloning");
//! ```

use std::fmt;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::endpoint::{Endpoint, check_status};
use crate::error::{Error, ValidationError};
use crate::macros::string_enum;
use crate::tts::{Language, TtsModel, validate_language};
use crate::voices::{get_request, json_object, null_default, opt_string, string_list};

/// The path of voice cloning (create and list).
pub const VOICE_CLONING_PATH: &str = "/waves/v1/voice-cloning";

/// The largest accepted recording: 5 MB (5 × 1024 × 1024 bytes).
pub const MAX_CLONE_FILE_BYTES: usize = 5 * 1024 * 1024;

/// The longest accepted `displayName`, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 500;

/// The content types the API accepts for the recording.
pub const CLONE_AUDIO_TYPES: [&str; 8] = [
    "audio/mpeg",
    "audio/mpeg-3",
    "audio/wav",
    "audio/wave",
    "audio/webm",
    "video/webm",
    "audio/mp4",
    "video/mp4",
];

const ALLOWED_MODELS: &str = "allowed: lightning-v3.1 (default), lightning-v3.1-pro";

string_enum! {
    /// The state of a voice clone (`status`).
    CloneStatus {
        /// Queued.
        Pending = "pending",
        /// Being built.
        Processing = "processing",
        /// Ready to synthesize with.
        Completed = "completed",
        /// Building the clone failed.
        Failed = "failed",
    }
}

string_enum! {
    /// How a clone was made (`cloningType`).
    CloningType {
        /// From a short recording, through this API.
        Instant = "instant",
        /// Professional cloning (made through the dashboard).
        Professional = "professional",
    }
}

/// A multipart boundary from 16 random bytes: `smallest-rs-` and 32 hex digits.
///
/// The core draws no random numbers: take the bytes from your generator (`rand`,
/// `getrandom`, the OS) for each request. Never reuse a fixed boundary for real
/// uploads: a boundary that happens to occur in the file is refused.
pub fn boundary_from_random(random: [u8; 16]) -> String {
    let mut boundary = String::with_capacity(44);
    boundary.push_str("smallest-rs-");
    for b in random {
        boundary.push(char::from(HEX[usize::from(b >> 4)]));
        boundary.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    boundary
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The content type of a recording, recognised from its first bytes: RIFF/WAVE →
/// `audio/wav`; an ID3 tag or an MPEG audio frame header → `audio/mpeg`; EBML
/// (`1A 45 DF A3`) → `audio/webm`; `ftyp` at offset 4 → `audio/mp4`. `None` otherwise.
pub fn sniff_audio_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        return Some("audio/wav");
    }
    if bytes.starts_with(b"ID3") {
        return Some("audio/mpeg");
    }
    if let [0xff, b1, ..] = bytes {
        // 11 sync bits; version `01` and layer `00` are reserved (layer 00 is AAC ADTS).
        let version = (b1 >> 3) & 0b11;
        let layer = (b1 >> 1) & 0b11;
        if b1 & 0xe0 == 0xe0 && version != 0b01 && layer != 0b00 {
            return Some("audio/mpeg");
        }
    }
    if bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return Some("audio/webm");
    }
    if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
        return Some("audio/mp4");
    }
    None
}

/// `POST /waves/v1/voice-cloning`: creates an instant voice clone from a recording.
///
/// The body is `multipart/form-data` with the parts, in order: `displayName`,
/// `description`, `accent`, `tags` (comma-joined), `language`, `model` (hyphenated,
/// e.g. `lightning-v3.1`) and `file`; parts that are not set are left out. Checked
/// before anything is sent: the display name (1–500 characters), the file (non-empty,
/// ≤ 5 MB, a content type the API accepts — recognised from the bytes when not given),
/// the file name (no `"`, `\`, CR, LF or other control characters), the tags (no
/// commas, not empty), the model (`lightning-v3.1` or `lightning-v3.1-pro`), the
/// language (one the model speaks) and the boundary.
///
/// The boundary is required: see [`boundary`](Self::boundary).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct CreateVoiceClone {
    /// `displayName`: 1–500 characters.
    pub display_name: String,
    /// The recording: 5–15 s of clean speech recommended, ≤ 5 MB.
    pub file: Bytes,
    /// The file name sent with the recording, e.g. `sample.wav`.
    pub file_name: String,
    /// The recording's content type; recognised from the bytes when `None`.
    pub content_type: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `accent`, e.g. `general`, `indian`.
    pub accent: Option<String>,
    /// `tags`, sent comma-separated.
    pub tags: Vec<String>,
    /// `language` of the recording (recommended); must be one the model speaks.
    pub language: Option<Language>,
    /// `model`: `lightning-v3.1` (the server's default) or `lightning-v3.1-pro`.
    pub model: Option<TtsModel>,
    /// The multipart boundary: required, fresh and random for each request.
    pub boundary: Option<String>,
}

impl fmt::Debug for CreateVoiceClone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateVoiceClone")
            .field("display_name", &self.display_name)
            .field("file", &format_args!("<{} bytes>", self.file.len()))
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("description", &self.description)
            .field("accent", &self.accent)
            .field("tags", &self.tags)
            .field("language", &self.language)
            .field("model", &self.model)
            .field("boundary", &self.boundary)
            .finish()
    }
}

impl CreateVoiceClone {
    /// A clone named `display_name` from the recording `file`, uploaded as `file_name`.
    pub fn new(
        display_name: impl Into<String>,
        file: impl Into<Bytes>,
        file_name: impl Into<String>,
    ) -> Self {
        CreateVoiceClone {
            display_name: display_name.into(),
            file: file.into(),
            file_name: file_name.into(),
            content_type: None,
            description: None,
            accent: None,
            tags: Vec::new(),
            language: None,
            model: None,
            boundary: None,
        }
    }

    /// Sets the multipart boundary. Required.
    ///
    /// Use a fresh random value for every request ([`boundary_from_random`]): 1–70
    /// characters from `A–Z a–z 0–9 ' ( ) + _ , - . / : = ?` and space, not ending with
    /// a space, and not occurring anywhere in the content.
    pub fn boundary(mut self, boundary: impl Into<String>) -> Self {
        self.boundary = Some(boundary.into());
        self
    }

    /// This request with a boundary made from 16 random bytes, unless it has one.
    pub fn with_random_boundary(&self, random: [u8; 16]) -> Self {
        match self.boundary {
            Some(_) => self.clone(),
            None => self.clone().boundary(boundary_from_random(random)),
        }
    }

    /// Sets the recording's content type (one of [`CLONE_AUDIO_TYPES`]).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the accent.
    pub fn accent(mut self, accent: impl Into<String>) -> Self {
        self.accent = Some(accent.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds several tags.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets the language of the recording.
    pub fn language(mut self, language: Language) -> Self {
        self.language = Some(language);
        self
    }

    /// Sets the model.
    pub fn model(mut self, model: TtsModel) -> Self {
        self.model = Some(model);
        self
    }

    /// The content type the file is sent with: the given one (its lowercase essence),
    /// else the one recognised from the bytes.
    pub fn effective_content_type(&self) -> Result<String, ValidationError> {
        match &self.content_type {
            Some(given) => {
                let essence = given
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                if CLONE_AUDIO_TYPES.contains(&essence.as_str()) {
                    Ok(essence)
                } else {
                    Err(ValidationError::new(
                        "content_type",
                        given,
                        format!("allowed: {}", CLONE_AUDIO_TYPES.join(", ")),
                    ))
                }
            }
            None => sniff_audio_type(&self.file)
                .map(str::to_owned)
                .ok_or_else(|| {
                    let head = &self.file[..self.file.len().min(12)];
                    ValidationError::new(
                        "file",
                        format!("{} bytes starting {head:02x?}", self.file.len()),
                        format!(
                            "not recognised as WAV, MP3, WebM or MP4; set the content type \
                         to one of: {}",
                            CLONE_AUDIO_TYPES.join(", ")
                        ),
                    )
                }),
        }
    }

    /// Checks every field, and returns the file's content type and the boundary.
    fn validated(&self) -> Result<(String, &str), ValidationError> {
        let chars = self.display_name.chars().count();
        if self.display_name.trim().is_empty() || chars > MAX_DISPLAY_NAME_CHARS {
            return Err(ValidationError::new(
                "displayName",
                &self.display_name,
                "1–500 characters, not only whitespace",
            ));
        }
        if self.file.is_empty() {
            return Err(ValidationError::new(
                "file",
                "0 bytes",
                "a recording of 5–15 s of clean speech, at most 5 MB",
            ));
        }
        if self.file.len() > MAX_CLONE_FILE_BYTES {
            return Err(ValidationError::new(
                "file",
                format!("{} bytes", self.file.len()),
                "at most 5 MB (5242880 bytes); 5–15 s of speech is enough",
            ));
        }
        if self.file_name.trim().is_empty()
            || self
                .file_name
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(ValidationError::new(
                "file_name",
                &self.file_name,
                "a non-empty file name without `\"`, `\\`, CR, LF or other control characters",
            ));
        }
        let content_type = self.effective_content_type()?;
        for tag in &self.tags {
            if tag.trim().is_empty() || tag.contains(',') {
                return Err(ValidationError::new(
                    "tags",
                    tag,
                    "each tag non-empty and without commas (tags are sent comma-separated)",
                ));
            }
        }
        let model = self.model.clone().unwrap_or_default();
        if let TtsModel::Other(name) = &model {
            let allowed = if name.replace('_', "-").starts_with("lightning-v2") {
                format!(
                    "Voice cloning for lightning-v2 is deprecated. Please use lightning-v3.1; {ALLOWED_MODELS}"
                )
            } else {
                ALLOWED_MODELS.to_owned()
            };
            return Err(ValidationError::new("model", name, allowed));
        }
        if let Some(language) = &self.language {
            validate_language("language", &model, language)?;
        }
        let boundary = self.boundary.as_deref().ok_or_else(|| {
            ValidationError::new(
                "boundary",
                "none",
                "a fresh random multipart boundary for each request, e.g. \
                 boundary_from_random(16 random bytes)",
            )
        })?;
        validate_boundary(boundary)?;
        for (name, content) in self.text_parts(&model) {
            if contains(content.as_bytes(), boundary.as_bytes()) {
                return Err(ValidationError::new(
                    "boundary",
                    boundary,
                    format!("a boundary that does not occur in `{name}`; draw a new random one"),
                ));
            }
        }
        if contains(&self.file, boundary.as_bytes()) {
            return Err(ValidationError::new(
                "boundary",
                boundary,
                "a boundary that does not occur inside the file; draw a new random one",
            ));
        }
        Ok((content_type, boundary))
    }

    /// The text parts in wire order, with their values.
    fn text_parts(&self, model: &TtsModel) -> Vec<(&'static str, String)> {
        let mut parts = vec![("displayName", self.display_name.clone())];
        if let Some(d) = &self.description {
            parts.push(("description", d.clone()));
        }
        if let Some(a) = &self.accent {
            parts.push(("accent", a.clone()));
        }
        if !self.tags.is_empty() {
            parts.push(("tags", self.tags.join(",")));
        }
        if let Some(l) = &self.language {
            parts.push(("language", l.as_str().to_owned()));
        }
        if self.model.is_some() {
            parts.push(("model", model.path_segment()));
        }
        parts
    }

    /// The `Content-Type` header of the request, quoting the boundary when it needs it.
    fn header_value(boundary: &str) -> String {
        let token = boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'+_-.".contains(&b));
        if token {
            format!("multipart/form-data; boundary={boundary}")
        } else {
            format!("multipart/form-data; boundary=\"{boundary}\"")
        }
    }
}

impl Endpoint for CreateVoiceClone {
    type Output = VoiceClone;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        let (content_type, boundary) = self.validated()?;
        let model = self.model.clone().unwrap_or_default();
        let text = self.text_parts(&model);
        let mut body = Vec::with_capacity(self.file.len() + 512);
        for (name, value) in &text {
            body.extend_from_slice(b"--");
            body.extend_from_slice(boundary.as_bytes());
            body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(b"\"\r\n\r\n");
            body.extend_from_slice(value.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"");
        body.extend_from_slice(self.file_name.as_bytes());
        body.extend_from_slice(b"\"\r\nContent-Type: ");
        body.extend_from_slice(content_type.as_bytes());
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(&self.file);
        body.extend_from_slice(b"\r\n--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"--\r\n");
        Request::builder()
            .method(Method::POST)
            .uri(config.uri(VOICE_CLONING_PATH)?)
            .header(header::CONTENT_TYPE, Self::header_value(boundary))
            .body(Bytes::from(body))
            .map_err(|e| Error::Config(format!("cannot build request: {e}").into()))
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<VoiceClone, Error> {
        let response = check_status(response)?;
        let envelope: CreateEnvelope = json_object("voice clone response", response.body())?;
        let mut clone = envelope.data;
        clone.message = envelope.message;
        Ok(clone)
    }
}

/// RFC 2046: 1–70 of `DIGIT ALPHA ' ( ) + _ , - . / : = ?` and space, not ending in space.
fn validate_boundary(boundary: &str) -> Result<(), ValidationError> {
    let ok = (1..=70).contains(&boundary.len())
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "boundary",
            boundary,
            "1–70 characters from A–Z a–z 0–9 ' ( ) + _ , - . / : = ? and space, \
             not ending with a space",
        ))
    }
}

/// Whether `needle` (non-empty) occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return false;
    };
    let mut start = 0;
    while let Some(offset) = haystack
        .get(start..)
        .and_then(|h| h.iter().position(|&b| b == first))
    {
        let at = start + offset;
        match haystack.get(at + 1..at + 1 + rest.len()) {
            Some(window) if window == rest => return true,
            Some(_) => start = at + 1,
            None => return false,
        }
    }
    false
}

#[derive(Deserialize)]
struct CreateEnvelope {
    #[serde(default, deserialize_with = "opt_string")]
    message: Option<String>,
    data: VoiceClone,
}

/// A clone just created (the `data` of the `POST /waves/v1/voice-cloning` answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VoiceClone {
    /// `voiceId`, e.g. `voice_dLP5T67Qw7`: the TTS `voice_id` of the clone.
    #[serde(rename = "voiceId")]
    pub id: String,
    /// `displayName`.
    #[serde(rename = "displayName", default, deserialize_with = "null_default")]
    pub display_name: String,
    /// `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CloneStatus>,
    /// `language`, e.g. `en`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub language: Option<String>,
    /// `model`: sent as a string (`"lightning-v3.1"`) by the spec and as an object
    /// (`{"_id", "modelName"}`) by the guide (§11 #38); both read into a [`CloneModel`]
    /// whose [`TtsModel`] can be passed straight to a TTS request.
    #[serde(
        default,
        deserialize_with = "clone_model",
        skip_serializing_if = "Option::is_none"
    )]
    pub model: Option<CloneModel>,
    /// `audioFileNames`: the uploaded file names.
    #[serde(rename = "audioFileNames", default, deserialize_with = "string_list")]
    pub audio_file_names: Vec<String>,
    /// `createdAt`, an ISO 8601 date-time, kept as sent.
    #[serde(
        rename = "createdAt",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<String>,
    /// `organizationId`.
    #[serde(
        rename = "organizationId",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub organization_id: Option<String>,
    /// `samples`: sentences synthesized with the new clone.
    #[serde(default, deserialize_with = "null_default")]
    pub samples: Vec<CloneSample>,
    /// The answer's top-level `message`, e.g. `Voice clone created successfully`.
    #[serde(skip)]
    pub message: Option<String>,
}

/// The model of a clone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CloneModel {
    /// The model, from `modelName` or the bare string.
    #[serde(rename = "modelName")]
    pub model: TtsModel,
    /// `_id`, when the model came as an object.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
}

fn clone_model<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CloneModel>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.trim().is_empty() => Some(CloneModel {
            model: TtsModel::parse(&s),
            object_id: None,
        }),
        Value::Object(obj) => {
            let text = |k: &str| {
                obj.get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            };
            text("modelName")
                .or_else(|| text("name"))
                .map(|name| CloneModel {
                    model: TtsModel::parse(name),
                    object_id: text("_id").map(str::to_owned),
                })
        }
        _ => None,
    })
}

/// A sample synthesized with a new clone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CloneSample {
    /// The sentence spoken.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub text: Option<String>,
    /// `audioUrl`: a signed URL of the audio.
    #[serde(
        rename = "audioUrl",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub audio_url: Option<String>,
}

/// `GET /waves/v1/voice-cloning`: the clones of the organization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListVoiceClones;

impl Endpoint for ListVoiceClones {
    type Output = Vec<ClonedVoice>;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        get_request(config, VOICE_CLONING_PATH)
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<Vec<ClonedVoice>, Error> {
        let response = check_status(response)?;
        let list: CloneList = json_object("voice clone list", response.body())?;
        Ok(list.data)
    }
}

#[derive(Deserialize)]
struct CloneList {
    #[serde(deserialize_with = "null_default")]
    data: Vec<ClonedVoice>,
}

/// A clone of the organization (an item of `GET /waves/v1/voice-cloning`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClonedVoice {
    /// `_id`: the database id (not the id to synthesize with).
    #[serde(
        rename = "_id",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub object_id: Option<String>,
    /// `voiceId`: the TTS `voice_id` of the clone.
    #[serde(rename = "voiceId")]
    pub id: String,
    /// `displayName`.
    #[serde(rename = "displayName", default, deserialize_with = "null_default")]
    pub display_name: String,
    /// `description`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// `accent`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub accent: Option<String>,
    /// `tags`.
    #[serde(default, deserialize_with = "string_list")]
    pub tags: Vec<String>,
    /// `language`, e.g. `en`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub language: Option<String>,
    /// `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CloneStatus>,
    /// `cloningType`: `instant` or `professional`.
    #[serde(
        rename = "cloningType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloning_type: Option<CloningType>,
    /// `modelIds`, e.g. `["lightning-v3.1"]`. Old clones say `["lightning-large"]`:
    /// they synthesize near-empty audio on v3.1.
    #[serde(rename = "modelIds", default, deserialize_with = "string_list")]
    pub model_ids: Vec<String>,
    /// `createdAt`, an ISO 8601 date-time, kept as sent.
    #[serde(
        rename = "createdAt",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<String>,
}

impl ClonedVoice {
    /// The first of [`model_ids`](Self::model_ids) that is a current TTS model, to
    /// synthesize with; `None` for clones of retired models only (`lightning-large`).
    pub fn tts_model(&self) -> Option<TtsModel> {
        self.model_ids
            .iter()
            .map(|id| TtsModel::parse(id))
            .find(TtsModel::is_known)
    }
}
