//! `GET /waves/v1/{model}/get_voices` (API.md §5.1) — the union of the standard and Pro seed voices
//! plus the caller's clones — and `GET /waves/v1/voice/get-all-models` (§5.2), the catalog with
//! previews. Previews are URLs of the emulator's own speech generator, so they are really fetchable
//! (and usable as STT URLs).

use http::{Method, Response, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use crate::auth::Caller;
use crate::body::Body;
use crate::catalog::{Pool, VOICES, Voice};
use crate::errors;
use crate::state::{SPEECH_PATH, State};

/// The only `{model}` of the voice list.
const VOICES_MODEL: &str = "lightning-v3.1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VoiceOut {
    voice_id: String,
    display_name: String,
    tags: Tags,
}

#[derive(Serialize)]
struct Tags {
    language: Vec<&'static str>,
    accent: String,
    gender: &'static str,
    age: &'static str,
    emotions: &'static [&'static str],
    usecases: &'static [&'static str],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CatalogVoice {
    #[serde(rename = "_id")]
    id: String,
    voice_id: &'static str,
    display_name: String,
    description: String,
    audio_preview: String,
    tags: CatalogTags,
}

#[derive(Serialize)]
struct CatalogTags {
    age: &'static str,
    emotions: &'static [&'static str],
    language: &'static [&'static str],
}

fn display_name(id: &str) -> String {
    let mut chars = id.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Seed data: the age of a voice (API.md §5.1 names `young`, `middle aged`, `senior`).
fn age_of(id: &str) -> &'static str {
    const MIDDLE_AGED: [&str; 10] = [
        "magnus", "daniel", "william", "kartik", "nilesh", "srihari", "benedict", "henry", "max",
        "jack",
    ];
    const SENIOR: [&str; 3] = ["jeevan", "pranav", "sam"];
    if MIDDLE_AGED.contains(&id) {
        "middle aged"
    } else if SENIOR.contains(&id) {
        "senior"
    } else {
        "young"
    }
}

/// Seed data: the emotions a voice is tagged with (Pro voices are more expressive).
fn emotions_of(v: &Voice) -> &'static [&'static str] {
    match v.pool {
        Pool::Standard => &[],
        Pool::Pro => &["neutral", "happy", "calm"],
    }
}

fn usecases_of(v: &Voice) -> &'static [&'static str] {
    match v.pool {
        Pool::Standard => &["conversational"],
        Pool::Pro => &["conversational", "narration"],
    }
}

/// The lowercase name of a `lightning-v3.1` language code, as voice tags spell languages.
pub(super) fn language_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "en" => "english",
        "es" => "spanish",
        "fr" => "french",
        "de" => "german",
        "it" => "italian",
        "nl" => "dutch",
        "sv" => "swedish",
        "pt" => "portuguese",
        "pl" => "polish",
        "ru" => "russian",
        "hi" => "hindi",
        "mr" => "marathi",
        "gu" => "gujarati",
        "pa" => "punjabi",
        "bn" => "bengali",
        "or" => "odia",
        "ta" => "tamil",
        "te" => "telugu",
        "kn" => "kannada",
        "ml" => "malayalam",
        _ => return None,
    })
}

/// `http://127.0.0.1:PORT` (or `https://…`): the emulator's own base URL.
pub(super) fn base_url(state: &State) -> String {
    let scheme = if state.settings.tls { "https" } else { "http" };
    format!("{scheme}://{}", state.addr)
}

/// An absolute URL of the emulator's speech generator saying `text` (fetchable without auth).
pub(super) fn speech_url(state: &State, text: &str) -> String {
    format!(
        "{}{SPEECH_PATH}?text={}",
        base_url(state),
        utf8_percent_encode(text, NON_ALPHANUMERIC)
    )
}

/// A stable ObjectId-shaped id for a seed voice (FNV-1a of its voice id).
fn seed_object_id(id: &str) -> String {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("6a0b3c06{hash:016x}")
}

fn description_of(v: &Voice) -> String {
    let age = age_of(v.id);
    let article = if age.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "An"
    } else {
        "A"
    };
    let mut accent = display_name(v.accent);
    if accent.is_empty() {
        accent.push_str("Neutral");
    }
    let style = match v.pool {
        Pool::Standard => "a clear, friendly tone suited to conversation",
        Pool::Pro => "an expressive, natural delivery for conversation and narration",
    };
    format!("{article} {age} {accent} {} voice with {style}.", v.gender)
}

/// The path's `{model}` when `path` is `/waves/v1/{model}/get_voices`.
pub(super) fn get_voices_model(path: &str) -> Option<&str> {
    let model = path
        .strip_prefix("/waves/v1/")?
        .strip_suffix("/get_voices")?;
    (!model.is_empty() && !model.contains('/')).then_some(model)
}

/// `GET /waves/v1/{model}/get_voices`.
pub(super) fn get_voices(ctx: &Ctx<'_>, caller: &Caller, model: &str) -> Response<Body> {
    let method = &ctx.parts.method;
    if method != Method::GET {
        return errors::method_not_allowed(method, ctx.parts.uri.path(), "GET");
    }
    if model != VOICES_MODEL {
        return errors::json(
            StatusCode::BAD_REQUEST,
            &json!({
                "error": "Bad Request",
                "message": format!("Invalid model '{model}'. Supported models: {VOICES_MODEL}"),
            }),
        );
    }
    let mut voices: Vec<VoiceOut> = VOICES
        .iter()
        .map(|v| VoiceOut {
            voice_id: v.id.to_owned(),
            display_name: display_name(v.id),
            tags: Tags {
                language: v.languages.to_vec(),
                accent: v.accent.to_owned(),
                gender: v.gender,
                age: age_of(v.id),
                emotions: emotions_of(v),
                usecases: usecases_of(v),
            },
        })
        .collect();
    voices.extend(
        ctx.state
            .library
            .clones(caller.key())
            .into_iter()
            .map(|c| VoiceOut {
                voice_id: c.voice_id,
                display_name: c.spec.display_name,
                tags: Tags {
                    language: language_name(&c.spec.language).into_iter().collect(),
                    accent: c.spec.accent,
                    gender: "",
                    age: "",
                    emotions: &[],
                    usecases: &[],
                },
            }),
    );
    errors::json(StatusCode::OK, &json!({ "voices": voices }))
}

/// `GET /waves/v1/voice/get-all-models`.
pub(super) fn get_all_models(ctx: &Ctx<'_>) -> Response<Body> {
    let voices: Vec<CatalogVoice> = VOICES
        .iter()
        .map(|v| {
            let name = display_name(v.id);
            CatalogVoice {
                id: seed_object_id(v.id),
                voice_id: v.id,
                audio_preview: speech_url(ctx.state, &format!("Hi, I am {name}.")),
                description: description_of(v),
                display_name: name,
                tags: CatalogTags {
                    age: age_of(v.id),
                    emotions: emotions_of(v),
                    language: v.languages,
                },
            }
        })
        .collect();
    errors::json(StatusCode::OK, &json!({ "voices": voices }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_segment() {
        assert_eq!(
            get_voices_model("/waves/v1/lightning-v3.1/get_voices"),
            Some("lightning-v3.1")
        );
        assert_eq!(get_voices_model("/waves/v1/x/y/get_voices"), None);
        assert_eq!(get_voices_model("/waves/v1//get_voices"), None);
        assert_eq!(get_voices_model("/waves/v1/get_voices"), None);
    }

    #[test]
    fn seed_text() {
        assert_eq!(seed_object_id("magnus").len(), 24);
        assert_ne!(seed_object_id("magnus"), seed_object_id("olivia"));
        let magnus = VOICES.iter().find(|v| v.id == "magnus");
        assert_eq!(
            magnus.map(description_of).as_deref(),
            Some(
                "A middle aged American male voice with a clear, friendly tone suited to conversation."
            )
        );
        assert_eq!(language_name("or"), Some("odia"));
        assert_eq!(language_name("ja"), None);
    }
}
