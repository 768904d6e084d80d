//! `GET /waves/v1/lightning-v3.1/get_voices` — the voice list (API.md §5.1): the union of the
//! standard and Pro seed voices.

use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::Body;
use crate::catalog::{Pool, VOICES};
use crate::errors;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VoiceOut {
    voice_id: &'static str,
    display_name: String,
    tags: Tags,
}

#[derive(Serialize)]
struct Tags {
    language: &'static [&'static str],
    accent: &'static str,
    gender: &'static str,
    age: &'static str,
    emotions: [&'static str; 0],
    usecases: &'static [&'static str],
}

fn display_name(id: &str) -> String {
    let mut chars = id.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub(super) fn get_voices() -> Response<Body> {
    let voices: Vec<VoiceOut> = VOICES
        .iter()
        .map(|v| VoiceOut {
            voice_id: v.id,
            display_name: display_name(v.id),
            tags: Tags {
                language: v.languages,
                accent: v.accent,
                gender: v.gender,
                age: "young",
                emotions: [],
                usecases: match v.pool {
                    Pool::Standard => &["conversational"],
                    Pool::Pro => &["conversational", "narration"],
                },
            },
        })
        .collect();
    errors::json(StatusCode::OK, &serde_json::json!({ "voices": voices }))
}
