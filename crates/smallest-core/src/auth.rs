//! The API key: held in a [`SecretString`], readable by exactly one function.
//!
//! [`ApiKey`] has no `Display`, no `PartialEq` and a `Debug` that prints nothing of the
//! key. The only place the secret is read is [`ApiKey::authorization_header`], which
//! builds `Authorization: Bearer …` and marks the header sensitive, so HTTP libraries
//! that honour the flag (hyper, h2, ureq) keep it out of their logs and HPACK tables.

use std::fmt;

use http::HeaderValue;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// The environment variable the key is read from.
pub const API_KEY_ENV: &str = "SMALLEST_API_KEY";

/// A Smallest AI API key.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps a key. Refuses an empty key and characters that cannot appear in an HTTP
    /// header; the error never repeats the key.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = SecretString::from(key.into());
        let trimmed = key.expose_secret().trim();
        if trimmed.is_empty() {
            return Err(Error::Config(
                "the API key is empty: set SMALLEST_API_KEY to a key from the Smallest AI console"
                    .into(),
            ));
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(
                "the API key contains spaces or non-ASCII characters; copy it again from the console"
                    .into(),
            ));
        }
        let key = if trimmed.len() == key.expose_secret().len() {
            key
        } else {
            SecretString::from(trimmed.to_owned())
        };
        Ok(ApiKey(key))
    }

    /// Reads the key from `SMALLEST_API_KEY`.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var(API_KEY_ENV) {
            Ok(key) => Self::new(key),
            Err(std::env::VarError::NotPresent) => Err(Error::Config(
                "SMALLEST_API_KEY is not set: export SMALLEST_API_KEY=<your key> (create one on \
                 the API Keys page of the Smallest AI console)"
                    .into(),
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config(
                "SMALLEST_API_KEY is not valid Unicode".into(),
            )),
        }
    }

    /// The `Authorization` header value, `Bearer <key>`, marked sensitive.
    ///
    /// This is the only function that reads the secret.
    pub fn authorization_header(&self) -> HeaderValue {
        let mut bearer = String::with_capacity(7 + self.0.expose_secret().len());
        bearer.push_str("Bearer ");
        bearer.push_str(self.0.expose_secret());
        // `new` admitted only visible ASCII, which is always a valid header value.
        let mut value = HeaderValue::from_str(&bearer)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        // Wipe our copy; the HeaderValue is the one the transport sends.
        bearer.zeroize();
        value.set_sensitive(true);
        value
    }
}

impl ApiKey {
    /// `text` with every occurrence of the key replaced by
    /// [`REDACTED`](crate::redact::REDACTED) (borrowed when there is none). With
    /// [`authorization_header`](Self::authorization_header), the only functions that
    /// read the secret: this one compares it, and never returns it.
    pub(crate) fn scrub<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let secret = self.0.expose_secret();
        if text.contains(secret) {
            std::borrow::Cow::Owned(text.replace(secret, crate::redact::REDACTED))
        } else {
            std::borrow::Cow::Borrowed(text)
        }
    }

    /// A name for the account this key belongs to that does not reveal the key: the first
    /// 16 bytes of SHA-256 over a domain-separation prefix and the key, in hex. Processes
    /// that share a key get the same name (e.g. the Redis key prefix of `smallest-redis`).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(b"smallest-rs account fingerprint v1\0");
        hash.update(self.0.expose_secret().as_bytes());
        hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// [`scrub`](Self::scrub) for bytes: `None` when the key is not in them.
    pub(crate) fn scrub_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let secret = self.0.expose_secret().as_bytes();
        let first = memchr::memmem::find(bytes, secret)?;
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        let mut at = Some(first);
        while let Some(i) = at {
            out.extend_from_slice(&rest[..i]);
            out.extend_from_slice(crate::redact::REDACTED.as_bytes());
            rest = &rest[i + secret.len()..];
            at = memchr::memmem::find(rest, secret);
        }
        out.extend_from_slice(rest);
        Some(out)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_bearer_and_sensitive() {
        let key = ApiKey::new(" sk_live_abc123 ").unwrap();
        let header = key.authorization_header();
        assert!(header.is_sensitive());
        assert_eq!(header.as_bytes(), b"Bearer sk_live_abc123");
        // HeaderValue's own Debug hides sensitive values too.
        assert!(!format!("{header:?}").contains("sk_live"));
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
    }

    #[test]
    fn refuses_empty_and_unprintable_keys_without_echoing_them() {
        assert!(ApiKey::new("   ").is_err());
        let err = ApiKey::new("sk_secret with space").unwrap_err();
        assert!(!err.to_string().contains("sk_secret"));
        assert!(!format!("{err:?}").contains("sk_secret"));
    }
}
