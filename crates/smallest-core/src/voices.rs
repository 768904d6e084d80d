//! `GET /waves/v1/{model}/get_voices` ([`GetVoices`]) and `GET
//! /waves/v1/voice/get-all-models` ([`GetVoiceCatalog`]): the voices to synthesize with
//! (API.md §5).
//!
//! Both lists are parsed tolerantly: the API says any tag "may be empty", so a missing,
//! `null` or empty field reads as absent (`None`, an empty list) rather than failing the
//! whole list. Only a voice without a `voiceId` is an error, since it cannot be used.
//!
//! The voice list tags languages with lowercase **names** (`"english"`, `"hindi"`),
//! while TTS requests take **codes** (`en`, `hi`); [`VoiceFilter::language`] accepts
//! either, and [`language_name`] / [`language_from_name`] convert between them.
//!
//! ```
//! use smallest_core::voices::{Voice, VoiceFilter, GetVoices};
//! # fn voices() -> Vec<Voice> { Vec::new() }
//! let request = GetVoices::default(); // GET /waves/v1/lightning-v3.1/get_voices
//! let voices: Vec<Voice> = voices(); // … request.from_http_response(response)?
//! let filter = VoiceFilter::new().language("hi").gender("female");
//! for voice in filter.filter(&voices) {
//!     println!("{} ({})", voice.display_name, voice.id);
//! }
//! ```
//!
//! This module never does I/O; it builds requests and parses responses.

use bytes::Bytes;
use http::{Method, Request, Response};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::endpoint::{Endpoint, check_status};
use crate::error::{Error, ValidationError};
use crate::tts::{Language, TtsModel};

/// The path of the voice catalog.
pub const VOICE_CATALOG_PATH: &str = "/waves/v1/voice/get-all-models";

/// `GET /waves/v1/{model}/get_voices`: the voices of a model (standard and Pro together).
///
/// The model goes into the path **hyphenated** (`lightning-v3.1`, see
/// [`TtsModel::path_segment`]). The API documents only `lightning-v3.1`, the default,
/// which returns the union of the standard and Pro voices (§11 #39); other models are
/// sent as asked.
///
/// ```
/// use smallest_core::{ApiKey, Config, Endpoint, voices::GetVoices};
/// let config = Config::new(ApiKey::new("sk_example").unwrap());
/// let request = GetVoices::default().to_http_request(&config).unwrap();
/// assert_eq!(request.uri(), "https://api.smallest.ai/waves/v1/lightning-v3.1/get_voices");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetVoices {
    /// The model whose voices to list (default `lightning_v3.1`).
    pub model: TtsModel,
}

impl GetVoices {
    /// The voices of the default model, `lightning_v3.1`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists the voices of another model.
    pub fn model(mut self, model: TtsModel) -> Self {
        self.model = model;
        self
    }

    /// The request path, e.g. `/waves/v1/lightning-v3.1/get_voices`.
    pub fn path(&self) -> Result<String, ValidationError> {
        let segment = self.model.path_segment();
        let safe = !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            && segment != "."
            && segment != "..";
        if !safe {
            return Err(ValidationError::new(
                "model",
                self.model.as_str(),
                "a model name of letters, digits, `-`, `_` and `.`, e.g. lightning-v3.1",
            ));
        }
        Ok(format!("/waves/v1/{segment}/get_voices"))
    }
}

impl Endpoint for GetVoices {
    type Output = Vec<Voice>;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        get_request(config, &self.path()?)
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<Vec<Voice>, Error> {
        let response = check_status(response)?;
        let list: VoiceList<Voice> = json_object("voice list", response.body())?;
        Ok(list.voices)
    }
}

/// `GET /waves/v1/voice/get-all-models`: the voice catalog, with descriptions and
/// audio previews.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetVoiceCatalog;

impl Endpoint for GetVoiceCatalog {
    type Output = Vec<CatalogVoice>;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        get_request(config, VOICE_CATALOG_PATH)
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<Vec<CatalogVoice>, Error> {
        let response = check_status(response)?;
        let list: VoiceList<CatalogVoice> = json_object("voice catalog", response.body())?;
        Ok(list.voices)
    }
}

#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct VoiceList<T> {
    #[serde(deserialize_with = "null_default")]
    voices: Vec<T>,
}

/// A voice of the voice list: pass [`id`](Self::id) as a TTS `voice_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Voice {
    /// `voiceId`: the id to synthesize with, e.g. `avery`.
    #[serde(rename = "voiceId")]
    pub id: String,
    /// `displayName`, e.g. `Avery` (empty when the server sent none).
    #[serde(rename = "displayName", default, deserialize_with = "null_default")]
    pub display_name: String,
    /// What the voice sounds like.
    #[serde(default, deserialize_with = "lenient_tags")]
    pub tags: VoiceTags,
}

impl Voice {
    /// A voice with no tags (for tests, or for lists assembled by hand).
    pub fn new(id: impl Into<String>, display_name: impl Into<String>) -> Self {
        Voice {
            id: id.into(),
            display_name: display_name.into(),
            tags: VoiceTags::default(),
        }
    }

    /// Replaces the tags.
    pub fn with_tags(mut self, tags: VoiceTags) -> Self {
        self.tags = tags;
        self
    }
}

/// The tags of a voice. Every field may be absent; empty strings read as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VoiceTags {
    /// `language`: lowercase language names (`english`, `hindi`), not codes.
    #[serde(rename = "language", default, deserialize_with = "string_list")]
    pub languages: Vec<String>,
    /// `accent`, e.g. `american`, `british`, `indian`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub accent: Option<String>,
    /// `gender`: `male` or `female`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub gender: Option<String>,
    /// `age`: `young`, `middle aged` or `senior`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub age: Option<String>,
    /// `emotions` the voice can express.
    #[serde(default, deserialize_with = "string_list")]
    pub emotions: Vec<String>,
    /// `usecases`, e.g. `conversational`, `narration`.
    #[serde(rename = "usecases", default, deserialize_with = "string_list")]
    pub use_cases: Vec<String>,
}

impl VoiceTags {
    /// Tags with every field empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a language name (`english`).
    pub fn language(mut self, name: impl Into<String>) -> Self {
        self.languages.push(name.into());
        self
    }

    /// Sets the accent.
    pub fn accent(mut self, accent: impl Into<String>) -> Self {
        self.accent = Some(accent.into());
        self
    }

    /// Sets the gender.
    pub fn gender(mut self, gender: impl Into<String>) -> Self {
        self.gender = Some(gender.into());
        self
    }

    /// Sets the age.
    pub fn age(mut self, age: impl Into<String>) -> Self {
        self.age = Some(age.into());
        self
    }

    /// Adds an emotion.
    pub fn emotion(mut self, emotion: impl Into<String>) -> Self {
        self.emotions.push(emotion.into());
        self
    }

    /// Adds a use case.
    pub fn use_case(mut self, use_case: impl Into<String>) -> Self {
        self.use_cases.push(use_case.into());
        self
    }
}

/// A voice of the catalog (`GET /waves/v1/voice/get-all-models`).
///
/// The catalog tags carry `age`, `emotions` and `language`; the other fields of
/// [`VoiceTags`] stay empty unless the server starts sending them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CatalogVoice {
    /// `_id`: the catalog's database id (not the id to synthesize with).
    #[serde(
        rename = "_id",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub object_id: Option<String>,
    /// `voiceId`: the id to synthesize with, e.g. `mishka`.
    #[serde(rename = "voiceId")]
    pub id: String,
    /// `displayName`, e.g. `Mishka`.
    #[serde(rename = "displayName", default, deserialize_with = "null_default")]
    pub display_name: String,
    /// A sentence describing the voice.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// `audioPreview`: the URL of a sample.
    #[serde(
        rename = "audioPreview",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub audio_preview: Option<String>,
    /// `age`, `emotions` and `language`.
    #[serde(default, deserialize_with = "lenient_tags")]
    pub tags: VoiceTags,
}

/// TTS language codes and the lowercase names the voice list uses for them. The first
/// name is the one the API is documented to send; the others are accepted spellings.
const LANGUAGE_NAMES: &[(&str, &[&str])] = &[
    ("en", &["english"]),
    ("hi", &["hindi"]),
    ("mr", &["marathi"]),
    ("kn", &["kannada"]),
    ("ta", &["tamil"]),
    ("bn", &["bengali", "bangla"]),
    ("gu", &["gujarati"]),
    ("te", &["telugu"]),
    ("ml", &["malayalam"]),
    ("pa", &["punjabi"]),
    ("or", &["odia", "oriya"]),
    ("es", &["spanish"]),
    ("de", &["german"]),
    ("fr", &["french"]),
    ("it", &["italian"]),
    ("nl", &["dutch"]),
    ("sv", &["swedish"]),
    ("pt", &["portuguese"]),
    ("ru", &["russian"]),
    ("el", &["greek"]),
    ("fi", &["finnish"]),
    ("no", &["norwegian"]),
    ("pl", &["polish"]),
    ("ar", &["arabic"]),
    ("zh", &["chinese", "mandarin"]),
    ("id", &["indonesian"]),
    ("ja", &["japanese"]),
    ("ko", &["korean"]),
    ("ms", &["malay"]),
    ("tr", &["turkish"]),
    ("vi", &["vietnamese"]),
];

/// The lowercase name the voice list uses for a TTS language code: `en` → `english`,
/// `hi` → `hindi`, `ta` → `tamil` … `None` for `auto` and unknown codes.
pub fn language_name(language: &Language) -> Option<&'static str> {
    LANGUAGE_NAMES
        .iter()
        .find(|(code, _)| *code == language.as_str())
        .and_then(|(_, names)| names.first().copied())
}

/// The TTS language of a voice-list language name (`english` → `en`), ignoring case.
pub fn language_from_name(name: &str) -> Option<Language> {
    let name = normalize(name);
    LANGUAGE_NAMES
        .iter()
        .find(|(_, names)| names.contains(&name.as_str()))
        .map(|(code, _)| Language::from_wire(code))
}

/// A filter over voices: every criterion set must match.
///
/// Comparisons ignore case, surrounding whitespace, and the difference between spaces,
/// `-` and `_` (`middle-aged` matches `middle aged`). Setting a criterion twice keeps the
/// last value.
///
/// ```
/// use smallest_core::voices::{Voice, VoiceFilter, VoiceTags};
/// let avery = Voice::new("avery", "Avery")
///     .with_tags(VoiceTags::new().language("english").gender("female").accent("american"));
/// assert!(VoiceFilter::new().language("en").gender("Female").matches(&avery));
/// assert!(VoiceFilter::new().language("english").matches(&avery));
/// assert!(!VoiceFilter::new().language("hi").matches(&avery));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VoiceFilter {
    /// Normalized names (and the code) a voice's `language` may contain.
    languages: Option<Vec<String>>,
    gender: Option<String>,
    accent: Option<String>,
    age: Option<String>,
    use_case: Option<String>,
    emotion: Option<String>,
}

impl VoiceFilter {
    /// A filter that matches every voice.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps voices that speak a language, given as a TTS code (`en`, `hi`, `ta`) or as
    /// the name the voice list uses (`english`, `hindi`, `tamil`).
    pub fn language(mut self, language: &str) -> Self {
        let wanted = normalize(language);
        let entry = LANGUAGE_NAMES
            .iter()
            .find(|(code, names)| *code == wanted || names.contains(&wanted.as_str()));
        self.languages = Some(match entry {
            Some((code, names)) => std::iter::once(*code)
                .chain(names.iter().copied())
                .map(str::to_owned)
                .collect(),
            None => vec![wanted],
        });
        self
    }

    /// Keeps voices of a gender (`male`, `female`).
    pub fn gender(mut self, gender: &str) -> Self {
        self.gender = Some(normalize(gender));
        self
    }

    /// Keeps voices with an accent (`american`, `british`, `indian` …).
    pub fn accent(mut self, accent: &str) -> Self {
        self.accent = Some(normalize(accent));
        self
    }

    /// Keeps voices of an age (`young`, `middle aged`, `senior`).
    pub fn age(mut self, age: &str) -> Self {
        self.age = Some(normalize(age));
        self
    }

    /// Keeps voices tagged with a use case (`conversational`, `narration` …).
    pub fn use_case(mut self, use_case: &str) -> Self {
        self.use_case = Some(normalize(use_case));
        self
    }

    /// Keeps voices tagged with an emotion.
    pub fn emotion(mut self, emotion: &str) -> Self {
        self.emotion = Some(normalize(emotion));
        self
    }

    /// Whether a voice passes every criterion.
    pub fn matches(&self, voice: &Voice) -> bool {
        self.matches_tags(&voice.tags)
    }

    /// Whether a set of tags passes every criterion (use it for [`CatalogVoice`]s).
    pub fn matches_tags(&self, tags: &VoiceTags) -> bool {
        let one = |wanted: &Option<String>, have: &Option<String>| match wanted {
            None => true,
            Some(w) => have.as_deref().is_some_and(|h| normalize(h) == *w),
        };
        let any = |wanted: &Option<String>, have: &[String]| match wanted {
            None => true,
            Some(w) => have.iter().any(|h| normalize(h) == *w),
        };
        let language = match &self.languages {
            None => true,
            Some(accepted) => tags
                .languages
                .iter()
                .any(|l| accepted.contains(&normalize(l))),
        };
        language
            && one(&self.gender, &tags.gender)
            && one(&self.accent, &tags.accent)
            && one(&self.age, &tags.age)
            && any(&self.use_case, &tags.use_cases)
            && any(&self.emotion, &tags.emotions)
    }

    /// The voices that pass, in their original order.
    pub fn filter<'a, I>(&'a self, voices: I) -> impl Iterator<Item = &'a Voice> + 'a
    where
        I: IntoIterator<Item = &'a Voice>,
        I::IntoIter: 'a,
    {
        voices.into_iter().filter(move |v| self.matches(v))
    }
}

/// Lowercase, trimmed, with `-`, `_` and runs of whitespace turned into one space.
fn normalize(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

// ---------------------------------------------------------------------------
// Helpers shared by voices, cloning and dicts.
// ---------------------------------------------------------------------------

/// A bodiless `GET` of an API path.
pub(crate) fn get_request(config: &Config, path: &str) -> Result<Request<Bytes>, Error> {
    Request::builder()
        .method(Method::GET)
        .uri(config.uri(path)?)
        .body(Bytes::new())
        .map_err(|e| Error::Config(format!("cannot build request: {e}").into()))
}

/// A request with a JSON body.
pub(crate) fn json_request<T: Serialize>(
    config: &Config,
    method: Method,
    path: &str,
    body: &T,
) -> Result<Request<Bytes>, Error> {
    let body = serde_json::to_vec(body).map_err(|e| Error::decode("request body", e))?;
    Request::builder()
        .method(method)
        .uri(config.uri(path)?)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body))
        .map_err(|e| Error::Config(format!("cannot build request: {e}").into()))
}

/// Parses a body that must be a JSON object (serde would take an array for a struct).
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(
    what: &'static str,
    body: &[u8],
) -> Result<T, Error> {
    json_shaped(what, body, b'{', "expected a JSON object")
}

/// Parses a body that must be a JSON array.
pub(crate) fn json_array<T: serde::de::DeserializeOwned>(
    what: &'static str,
    body: &[u8],
) -> Result<T, Error> {
    json_shaped(what, body, b'[', "expected a JSON array")
}

fn json_shaped<T: serde::de::DeserializeOwned>(
    what: &'static str,
    body: &[u8],
    open: u8,
    expected: &'static str,
) -> Result<T, Error> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b) if *b == open => crate::endpoint::json_body(what, body),
        _ => Err(Error::decode(what, expected)),
    }
}

/// `null` reads as the default.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string that may be absent, `null`, empty or a number; anything else reads as absent.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(scalar_string(Value::deserialize(d)?))
}

/// A list of strings: an array (non-string scalars kept as text, empty and `null` items
/// dropped), a single comma-separated string, or `null`.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.into_iter().filter_map(scalar_string).collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    })
}

/// Tags that are not an object (`null`, a string …) read as no tags.
fn lenient_tags<'de, D: Deserializer<'de>>(d: D) -> Result<VoiceTags, D::Error> {
    match Value::deserialize(d)? {
        v @ Value::Object(_) => VoiceTags::deserialize(v).map_err(serde::de::Error::custom),
        _ => Ok(VoiceTags::default()),
    }
}

fn scalar_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
