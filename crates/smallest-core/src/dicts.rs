//! `GET`, `POST`, `PUT` and `DELETE /waves/v1/pronunciation-dicts` ([`ListDicts`],
//! [`CreateDict`], [`UpdateDict`], [`DeleteDict`]): pronunciation dictionaries (API.md §7).
//!
//! A dictionary maps words to plain respellings (`mysql` → `my-sequel`, not IPA).
//! Matching is case-sensitive, so words are kept exactly as written. Pass a
//! dictionary's id to a TTS request with
//! [`TtsRequest::pronunciation_dict`](crate::tts::TtsRequest::pronunciation_dict).
//!
//! All four operations share one path: the id travels in the JSON body, also for
//! `DELETE`. Items are checked locally against the schema (`word` and `pronunciation`
//! at least one character; at least one item on create); a refusal names the same
//! path the server would (`items.0.word`).
//!
//! ```
//! use smallest_core::dicts::{CreateDict, PronunciationItem};
//! # fn main() -> Result<(), smallest_core::ValidationError> {
//! let create = CreateDict::new([PronunciationItem::new("mysql", "my-sequel")?])
//!     .item("nginx", "engine-x");
//! assert_eq!(create.items.len(), 2);
//! # Ok(()) }
//! ```

use bytes::Bytes;
use http::{Method, Request, Response};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::endpoint::{Endpoint, check_status};
use crate::error::{Error, ValidationError};
use crate::voices::{get_request, json_array, json_object, json_request, null_default, opt_string};

/// The path of every dictionary operation.
pub const PRONUNCIATION_DICTS_PATH: &str = "/waves/v1/pronunciation-dicts";

/// One entry of a dictionary: how to say a word.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PronunciationItem {
    /// The word as it appears in the text; matched case-sensitively.
    #[serde(default, deserialize_with = "null_default")]
    pub word: String,
    /// How to say it, as a plain respelling (`my-sequel`).
    #[serde(default, deserialize_with = "null_default")]
    pub pronunciation: String,
}

impl PronunciationItem {
    /// An entry; both strings must be non-empty (they are kept verbatim, not trimmed).
    pub fn new(
        word: impl Into<String>,
        pronunciation: impl Into<String>,
    ) -> Result<Self, ValidationError> {
        let item = PronunciationItem {
            word: word.into(),
            pronunciation: pronunciation.into(),
        };
        item.check(None)?;
        Ok(item)
    }

    /// Checks both strings; `index` names the item in the error's field path.
    fn check(&self, index: Option<usize>) -> Result<(), ValidationError> {
        for (name, value) in [("word", &self.word), ("pronunciation", &self.pronunciation)] {
            if value.is_empty() {
                let field = match index {
                    Some(i) => format!("items.{i}.{name}"),
                    None => name.to_owned(),
                };
                return Err(ValidationError::new(field, value, "at least one character"));
            }
        }
        Ok(())
    }
}

/// A dictionary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PronunciationDict {
    /// The id, e.g. `64f1234567890abcdef12345`.
    pub id: String,
    /// The entries.
    #[serde(default, deserialize_with = "null_default")]
    pub items: Vec<PronunciationItem>,
    /// `createdAt`, an ISO 8601 date-time kept as sent; the update answer has none.
    #[serde(
        rename = "createdAt",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<String>,
}

/// The answer to a deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeletedDict {
    /// The id of the deleted dictionary.
    pub id: String,
    /// `deleted`: `true` (a success answer without the field also reads as `true`).
    pub deleted: bool,
}

fn validate_id(id: &str) -> Result<(), ValidationError> {
    if id.trim().is_empty() {
        return Err(ValidationError::new(
            "id",
            id,
            "a dictionary id, e.g. 64f1234567890abcdef12345",
        ));
    }
    Ok(())
}

fn validate_items(items: &[PronunciationItem]) -> Result<(), ValidationError> {
    items
        .iter()
        .enumerate()
        .try_for_each(|(i, item)| item.check(Some(i)))
}

/// `GET /waves/v1/pronunciation-dicts`: every dictionary of the account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListDicts;

impl Endpoint for ListDicts {
    type Output = Vec<PronunciationDict>;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        get_request(config, PRONUNCIATION_DICTS_PATH)
    }

    fn from_http_response(
        &self,
        response: Response<Bytes>,
    ) -> Result<Vec<PronunciationDict>, Error> {
        let response = check_status(response)?;
        json_array("dictionary list", response.body())
    }
}

/// `POST /waves/v1/pronunciation-dicts`: creates a dictionary of at least one entry.
///
/// Body `{"items":[{"word","pronunciation"}…]}`; the answer (`200`) is the new
/// [`PronunciationDict`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateDict {
    /// The entries: at least one.
    pub items: Vec<PronunciationItem>,
}

impl CreateDict {
    /// A dictionary of these entries.
    pub fn new(items: impl IntoIterator<Item = PronunciationItem>) -> Self {
        CreateDict {
            items: items.into_iter().collect(),
        }
    }

    /// Adds an entry (checked when the request is built).
    pub fn item(mut self, word: impl Into<String>, pronunciation: impl Into<String>) -> Self {
        self.items.push(PronunciationItem {
            word: word.into(),
            pronunciation: pronunciation.into(),
        });
        self
    }
}

#[derive(Serialize)]
struct ItemsBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    items: &'a [PronunciationItem],
}

impl Endpoint for CreateDict {
    type Output = PronunciationDict;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        if self.items.is_empty() {
            return Err(ValidationError::new(
                "items",
                "[]",
                "at least one {word, pronunciation} entry",
            )
            .into());
        }
        validate_items(&self.items)?;
        let body = ItemsBody {
            id: None,
            items: &self.items,
        };
        json_request(config, Method::POST, PRONUNCIATION_DICTS_PATH, &body)
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<PronunciationDict, Error> {
        let response = check_status(response)?;
        json_object("dictionary", response.body())
    }
}

/// `PUT /waves/v1/pronunciation-dicts`: sets the entries of a dictionary.
///
/// Body `{"id","items"}`; `items` may be empty. The answer is `{"id","items"}` (no
/// `createdAt`). Whether the server replaces or merges the entries is not documented
/// (§11 #40): send the complete list you want and read the answer's `items`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdateDict {
    /// The dictionary to update.
    pub id: String,
    /// Its entries.
    pub items: Vec<PronunciationItem>,
}

impl UpdateDict {
    /// Sets the entries of dictionary `id`.
    pub fn new(id: impl Into<String>, items: impl IntoIterator<Item = PronunciationItem>) -> Self {
        UpdateDict {
            id: id.into(),
            items: items.into_iter().collect(),
        }
    }

    /// Adds an entry (checked when the request is built).
    pub fn item(mut self, word: impl Into<String>, pronunciation: impl Into<String>) -> Self {
        self.items.push(PronunciationItem {
            word: word.into(),
            pronunciation: pronunciation.into(),
        });
        self
    }
}

impl Endpoint for UpdateDict {
    type Output = PronunciationDict;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        validate_id(&self.id)?;
        validate_items(&self.items)?;
        let body = ItemsBody {
            id: Some(&self.id),
            items: &self.items,
        };
        json_request(config, Method::PUT, PRONUNCIATION_DICTS_PATH, &body)
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<PronunciationDict, Error> {
        let response = check_status(response)?;
        json_object("dictionary", response.body())
    }
}

/// `DELETE /waves/v1/pronunciation-dicts`: deletes a dictionary.
///
/// The id travels in a JSON body (`{"id":…}`), not in the path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteDict {
    /// The dictionary to delete.
    pub id: String,
}

impl DeleteDict {
    /// Deletes dictionary `id`.
    pub fn new(id: impl Into<String>) -> Self {
        DeleteDict { id: id.into() }
    }
}

#[derive(Serialize)]
struct IdBody<'a> {
    id: &'a str,
}

#[derive(Deserialize)]
struct DeletedBody {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default)]
    deleted: Option<bool>,
}

impl Endpoint for DeleteDict {
    type Output = DeletedDict;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        validate_id(&self.id)?;
        json_request(
            config,
            Method::DELETE,
            PRONUNCIATION_DICTS_PATH,
            &IdBody { id: &self.id },
        )
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<DeletedDict, Error> {
        let response = check_status(response)?;
        let body: DeletedBody = json_object("dictionary deletion", response.body())?;
        Ok(DeletedDict {
            id: body.id.unwrap_or_else(|| self.id.clone()),
            deleted: body.deleted.unwrap_or(true),
        })
    }
}
