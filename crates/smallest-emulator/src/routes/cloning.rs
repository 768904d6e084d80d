//! `POST /waves/v1/voice-cloning` (API.md §6.1), `GET /waves/v1/voice-cloning` (§6.2) and the
//! console-only `POST /waves/v1/voice-cloning/delete` (§6.3).
//!
//! The upload is `multipart/form-data`, parsed by [`crate::multipart`] from a body read under a
//! 6 MB cap (a declared larger body is refused before reading). Validation errors are the API's
//! `400 {"error": "…"}`. A clone is `completed` at once and belongs to the key that made it: its id
//! is a TTS `voice_id` for that key only.

use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::voices::speech_url;
use crate::auth::Caller;
use crate::body::{Body, ReadError};
use crate::catalog;
use crate::errors;
use crate::library::{NewClone, VoiceClone};
use crate::multipart::{self, Part};

/// Largest request body read; larger ones are refused (the file alone may be 5 MB).
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// Largest recording: 5 MB.
const MAX_FILE_BYTES: usize = 5 * 1024 * 1024;
/// Longest `displayName`, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 500;
/// The recording content types the API accepts.
const AUDIO_TYPES: [&str; 8] = [
    "audio/mpeg",
    "audio/mpeg-3",
    "audio/wav",
    "audio/wave",
    "audio/webm",
    "video/webm",
    "audio/mp4",
    "video/mp4",
];
/// The clone models (hyphenated, API.md §2.4).
const CLONE_MODELS: [&str; 2] = ["lightning-v3.1", "lightning-v3.1-pro"];
/// What the sample of a new clone says.
const SAMPLE_TEXT: &str = "Hello! This is a sample of what I sound like.";

fn bad_request(message: impl Into<String>) -> Response<Body> {
    errors::json(StatusCode::BAD_REQUEST, &json!({ "error": message.into() }))
}

fn too_large() -> Response<Body> {
    bad_request("File too large. Maximum size is 5MB")
}

fn model_object_id(model: &str) -> &'static str {
    if model == "lightning-v3.1-pro" {
        "6a0b3c06e6e0b1a48dee0312"
    } else {
        "6a0b3c06e6e0b1a48dee0031"
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    voice_id: &'a str,
    display_name: &'a str,
    status: &'static str,
    language: &'a str,
    model: ModelOut<'a>,
    audio_file_names: [&'a str; 1],
    created_at: &'a str,
    organization_id: &'a str,
    samples: [Sample; 1],
}

#[derive(Serialize)]
struct CreatedBody<'a> {
    message: &'static str,
    data: Created<'a>,
}

#[derive(Serialize)]
struct ModelOut<'a> {
    #[serde(rename = "_id")]
    id: &'static str,
    #[serde(rename = "modelName")]
    model_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sample {
    text: &'static str,
    audio_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    voice_id: &'a str,
    display_name: &'a str,
    description: &'a str,
    accent: &'a str,
    tags: &'a [String],
    language: &'a str,
    status: &'static str,
    cloning_type: &'static str,
    model_ids: [&'a str; 1],
    created_at: &'a str,
}

/// A text field: the first non-file part called `name`.
fn field(parts: &[Part], name: &str) -> Option<String> {
    parts
        .iter()
        .find(|p| p.name == name && p.filename.is_none())
        .map(Part::text)
}

/// Checks the fields of a parsed upload; the clone to create, or the error message.
fn validate(parts: &[Part]) -> Result<NewClone, String> {
    let Some(file) = parts
        .iter()
        .find(|p| p.name == "file" && p.filename.is_some())
    else {
        return Err("No file provided".to_owned());
    };
    if file.data.is_empty() {
        return Err("The uploaded file is empty".to_owned());
    }
    if file.data.len() > MAX_FILE_BYTES {
        return Err("File too large. Maximum size is 5MB".to_owned());
    }
    // RFC 7578 §4.4: a part without a content type is text/plain.
    let mime = file
        .content_type
        .as_deref()
        .unwrap_or("text/plain")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !AUDIO_TYPES.contains(&mime.as_str()) {
        return Err(format!(
            "Invalid file type '{mime}'. Allowed types: {}",
            AUDIO_TYPES.join(", ")
        ));
    }
    let display_name = field(parts, "displayName").unwrap_or_default();
    if display_name.trim().is_empty() {
        return Err("displayName is required".to_owned());
    }
    if display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(format!(
            "displayName must be at most {MAX_DISPLAY_NAME_CHARS} characters"
        ));
    }
    let model = field(parts, "model").unwrap_or_default();
    let model = match model.trim() {
        "" => CLONE_MODELS[0],
        "lightning-v2" => {
            return Err(
                "Voice cloning for lightning-v2 is deprecated. Please use lightning-v3.1"
                    .to_owned(),
            );
        }
        m => match CLONE_MODELS.iter().find(|known| **known == m) {
            Some(known) => known,
            None => {
                return Err(format!(
                    "Invalid model '{m}'. Supported: {}",
                    CLONE_MODELS.join(", ")
                ));
            }
        },
    };
    let supported = catalog::tts_languages_of("lightning_v3.1");
    let language = field(parts, "language").unwrap_or_default();
    let language = match language.trim() {
        "" => "en".to_owned(),
        l if supported.contains(&l) => l.to_owned(),
        _ => {
            return Err(format!(
                "Invalid language. Supported: {}",
                supported.join(", ")
            ));
        }
    };
    let tags = field(parts, "tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(NewClone {
        display_name,
        description: field(parts, "description").unwrap_or_default(),
        accent: field(parts, "accent").unwrap_or_default(),
        tags,
        language,
        model,
        file_name: file.filename.clone().unwrap_or_default(),
    })
}

/// `POST /waves/v1/voice-cloning`.
pub(super) async fn create(ctx: &mut Ctx<'_>, caller: &Caller) -> Response<Body> {
    let content_type = ctx
        .parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = multipart::boundary(content_type) else {
        // Like the service's upload middleware: a body that is not multipart carries no file.
        return if ctx.content_type().as_deref() == Some("multipart/form-data") {
            bad_request("Multipart: Boundary not found")
        } else {
            bad_request("No file provided")
        };
    };
    if ctx
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return too_large();
    }
    let body = match ctx.body.read_to_limit(MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(ReadError::TooLarge) => return too_large(),
        Err(ReadError::Broken) => return bad_request("The request body could not be read."),
    };
    let parts = match multipart::parse(&body, &boundary) {
        Ok(parts) => parts,
        Err(e) => return bad_request(format!("Malformed multipart/form-data body: {e}")),
    };
    let spec = match validate(&parts) {
        Ok(spec) => spec,
        Err(message) => return bad_request(message),
    };
    let clone =
        match ctx
            .state
            .library
            .create_clone(caller.key(), spec, ctx.state.settings.clone_limit)
        {
            Ok(clone) => clone,
            Err(_) => return bad_request("clone limit exceeded, consider upgrading"),
        };
    created(ctx, &clone)
}

fn created(ctx: &Ctx<'_>, c: &VoiceClone) -> Response<Body> {
    let data = Created {
        voice_id: &c.voice_id,
        display_name: &c.spec.display_name,
        status: "completed",
        language: &c.spec.language,
        model: ModelOut {
            id: model_object_id(c.spec.model),
            model_name: c.spec.model,
        },
        audio_file_names: [&c.spec.file_name],
        created_at: &c.created_at,
        organization_id: &c.organization_id,
        samples: [Sample {
            text: SAMPLE_TEXT,
            audio_url: speech_url(ctx.state, SAMPLE_TEXT),
        }],
    };
    errors::json(
        StatusCode::OK,
        &CreatedBody {
            message: "Voice clone created successfully",
            data,
        },
    )
}

/// `GET /waves/v1/voice-cloning`.
pub(super) fn list(ctx: &Ctx<'_>, caller: &Caller) -> Response<Body> {
    let clones = ctx.state.library.clones(caller.key());
    let data: Vec<Listed<'_>> = clones
        .iter()
        .map(|c| Listed {
            id: &c.object_id,
            voice_id: &c.voice_id,
            display_name: &c.spec.display_name,
            description: &c.spec.description,
            accent: &c.spec.accent,
            tags: &c.spec.tags,
            language: &c.spec.language,
            status: "completed",
            cloning_type: "instant",
            model_ids: [c.spec.model],
            created_at: &c.created_at,
        })
        .collect();
    errors::json(StatusCode::OK, &json!({ "data": data }))
}

/// `POST /waves/v1/voice-cloning/delete`: the service accepts only a console session here.
pub(super) fn delete_needs_session() -> Response<Body> {
    errors::json(
        StatusCode::UNAUTHORIZED,
        &json!({
            "error": "Unauthorized: deleting a voice clone requires a console session; API keys cannot delete clones. Delete it from the Smallest AI dashboard."
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn text_part(name: &str, value: &str) -> Part {
        Part {
            name: name.to_owned(),
            filename: None,
            content_type: None,
            data: Bytes::copy_from_slice(value.as_bytes()),
        }
    }

    fn file_part(mime: Option<&str>, len: usize) -> Part {
        Part {
            name: "file".to_owned(),
            filename: Some("a.wav".to_owned()),
            content_type: mime.map(str::to_owned),
            data: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn defaults_and_tags() {
        let parts = [
            text_part("displayName", "Me"),
            text_part("tags", " en, tone-test ,, x"),
            file_part(Some("Audio/WAV; rate=16000"), 10),
        ];
        let spec = validate(&parts);
        let spec = spec.as_ref().ok();
        assert_eq!(
            spec.map(|s| s.tags.clone()),
            Some(vec!["en".into(), "tone-test".into(), "x".into()])
        );
        assert_eq!(spec.map(|s| s.language.as_str()), Some("en"));
        assert_eq!(spec.map(|s| s.model), Some("lightning-v3.1"));
        assert_eq!(spec.map(|s| s.file_name.as_str()), Some("a.wav"));
    }

    #[test]
    fn errors_in_order() {
        let name = text_part("displayName", "Me");
        let wav = file_part(Some("audio/wav"), 10);
        let err = |parts: &[Part]| validate(parts).err().unwrap_or_default();
        assert_eq!(err(std::slice::from_ref(&name)), "No file provided");
        // A part called `file` without a filename is a text field.
        assert_eq!(
            err(&[name.clone(), text_part("file", "x")]),
            "No file provided"
        );
        assert_eq!(
            err(&[
                name.clone(),
                file_part(Some("audio/wav"), MAX_FILE_BYTES + 1)
            ]),
            "File too large. Maximum size is 5MB"
        );
        assert!(
            err(&[name.clone(), file_part(None, 1)])
                .starts_with("Invalid file type 'text/plain'. Allowed types: audio/mpeg,")
        );
        assert_eq!(err(std::slice::from_ref(&wav)), "displayName is required");
        assert_eq!(
            err(&[wav.clone(), text_part("displayName", &"x".repeat(501))]),
            "displayName must be at most 500 characters"
        );
        assert!(validate(&[wav.clone(), text_part("displayName", &"é".repeat(500))]).is_ok());
        assert_eq!(
            err(&[
                wav.clone(),
                name.clone(),
                text_part("model", "lightning-v2")
            ]),
            "Voice cloning for lightning-v2 is deprecated. Please use lightning-v3.1"
        );
        assert_eq!(
            err(&[
                wav.clone(),
                name.clone(),
                text_part("model", "lightning_v3.1")
            ]),
            "Invalid model 'lightning_v3.1'. Supported: lightning-v3.1, lightning-v3.1-pro"
        );
        assert!(
            err(&[wav.clone(), name.clone(), text_part("language", "ja")])
                .starts_with("Invalid language. Supported: en, hi, mr,")
        );
    }
}
