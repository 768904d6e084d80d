//! Bearer-key authentication (API.md §2.2, §8.2). Keys are compared, never logged or echoed.

use http::header::AUTHORIZATION;
use http::{HeaderMap, Response};

use crate::body::Body;
use crate::errors;
use crate::state::State;

/// The key a request authenticated with.
pub(crate) struct Caller {
    key: String,
    forbidden: bool,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("key", &"<redacted>")
            .field("forbidden", &self.forbidden)
            .finish()
    }
}

impl Caller {
    /// The key itself, for per-key accounting (concurrency).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Refuses keys that may not use TTS/STT (`403`).
    pub(crate) fn require_product_access(
        &self,
        request_id: &str,
    ) -> Result<(), Box<Response<Body>>> {
        if self.forbidden {
            Err(Box::new(errors::forbidden(request_id)))
        } else {
            Ok(())
        }
    }
}

/// Checks `Authorization: Bearer <key>`.
pub(crate) fn authenticate(
    state: &State,
    headers: &HeaderMap,
) -> Result<Caller, Box<Response<Body>>> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Box::new(errors::no_token()));
    };
    let value = value
        .to_str()
        .map_err(|_| Box::new(errors::bad_token()))?
        .trim();
    if value.is_empty() {
        return Err(Box::new(errors::no_token()));
    }
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(Box::new(errors::bad_token())),
    };
    if token.is_empty() {
        return Err(Box::new(errors::no_token()));
    }
    let forbidden = state.settings.forbidden_keys.contains(token);
    let known = state.settings.keys.contains(token);
    if forbidden || known || state.settings.keys.is_empty() {
        Ok(Caller {
            key: token.to_owned(),
            forbidden,
        })
    } else {
        Err(Box::new(errors::bad_token()))
    }
}
