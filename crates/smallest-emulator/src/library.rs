//! Per-key voice clones and pronunciation dictionaries (API.md §6, §7), kept for the life of the
//! emulator process.
//!
//! Every key sees only what it made itself: another key's clone is an unknown voice and another
//! key's dictionary an unknown id. The store never logs or echoes the keys it is indexed by.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::state::State;

/// One entry of a pronunciation dictionary (serialised as the API's `{word, pronunciation}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Item {
    pub(crate) word: String,
    pub(crate) pronunciation: String,
}

/// A pronunciation dictionary.
#[derive(Debug, Clone)]
pub(crate) struct Dict {
    pub(crate) id: String,
    pub(crate) items: Vec<Item>,
    pub(crate) created_at: String,
}

/// What a create request asked for, once validated.
#[derive(Debug, Clone)]
pub(crate) struct NewClone {
    pub(crate) display_name: String,
    pub(crate) description: String,
    pub(crate) accent: String,
    pub(crate) tags: Vec<String>,
    pub(crate) language: String,
    /// `lightning-v3.1` or `lightning-v3.1-pro`.
    pub(crate) model: &'static str,
    pub(crate) file_name: String,
}

/// A voice clone (always `completed`: instant cloning finishes within the request here).
#[derive(Debug, Clone)]
pub(crate) struct VoiceClone {
    pub(crate) object_id: String,
    pub(crate) voice_id: String,
    pub(crate) organization_id: String,
    pub(crate) created_at: String,
    pub(crate) spec: NewClone,
}

#[derive(Default)]
struct KeyData {
    organization_id: Option<String>,
    clones: Vec<VoiceClone>,
    dicts: Vec<Dict>,
}

/// The key's clone limit was reached.
#[derive(Debug)]
pub(crate) struct LimitExceeded;

/// The store: one entry per key that ever created something.
pub(crate) struct Library {
    keys: Mutex<HashMap<String, KeyData>>,
    seed: u64,
    counter: AtomicU64,
}

impl Default for Library {
    fn default() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x766f_6963_6573_2121);
        Self {
            keys: Mutex::new(HashMap::new()),
            seed: hasher.finish(),
            counter: AtomicU64::new(0),
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Library {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, KeyData>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn random(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        mix(self.seed ^ mix(n))
    }

    /// A Mongo-ObjectId-shaped id: 8 hex digits of Unix time, then 16 of randomness.
    fn object_id(&self) -> String {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{:08x}{:016x}", secs & 0xFFFF_FFFF, self.random())
    }

    /// `voice_` and 10 letters or digits, like `voice_dLP5T67Qw7`.
    fn voice_id(&self) -> String {
        let mut r = self.random();
        let mut id = String::from("voice_");
        for _ in 0..10 {
            id.push(char::from(ALNUM[(r % 62) as usize]));
            r /= 62;
        }
        id
    }

    /// Records a new clone for `key`, unless the key already made `limit` clones.
    pub(crate) fn create_clone(
        &self,
        key: &str,
        spec: NewClone,
        limit: usize,
    ) -> Result<VoiceClone, LimitExceeded> {
        let object_id = self.object_id();
        let voice_id = self.voice_id();
        let fresh_org = self.object_id();
        let mut keys = self.lock();
        let data = keys.entry(key.to_owned()).or_default();
        if data.clones.len() >= limit {
            return Err(LimitExceeded);
        }
        let organization_id = data.organization_id.get_or_insert(fresh_org).clone();
        let clone = VoiceClone {
            object_id,
            voice_id,
            organization_id,
            created_at: now_iso8601(),
            spec,
        };
        data.clones.push(clone.clone());
        Ok(clone)
    }

    /// The key's clones, oldest first.
    pub(crate) fn clones(&self, key: &str) -> Vec<VoiceClone> {
        self.lock()
            .get(key)
            .map(|d| d.clones.clone())
            .unwrap_or_default()
    }

    /// Whether `voice_id` is one of the key's clones.
    pub(crate) fn has_clone(&self, key: &str, voice_id: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|d| d.clones.iter().any(|c| c.voice_id == voice_id))
    }

    /// Creates a dictionary for `key`.
    pub(crate) fn create_dict(&self, key: &str, items: Vec<Item>) -> Dict {
        let dict = Dict {
            id: self.object_id(),
            items,
            created_at: now_iso8601(),
        };
        self.lock()
            .entry(key.to_owned())
            .or_default()
            .dicts
            .push(dict.clone());
        dict
    }

    /// The key's dictionaries, oldest first.
    pub(crate) fn dicts(&self, key: &str) -> Vec<Dict> {
        self.lock()
            .get(key)
            .map(|d| d.dicts.clone())
            .unwrap_or_default()
    }

    /// Replaces the items of the key's dictionary `id`; `false` when the key has no such dictionary.
    pub(crate) fn update_dict(&self, key: &str, id: &str, items: Vec<Item>) -> bool {
        let mut keys = self.lock();
        let Some(dict) = keys
            .get_mut(key)
            .and_then(|d| d.dicts.iter_mut().find(|d| d.id == id))
        else {
            return false;
        };
        dict.items = items;
        true
    }

    /// Deletes the key's dictionary `id`; `false` when the key has no such dictionary.
    pub(crate) fn delete_dict(&self, key: &str, id: &str) -> bool {
        let mut keys = self.lock();
        let Some(data) = keys.get_mut(key) else {
            return false;
        };
        let before = data.dicts.len();
        data.dicts.retain(|d| d.id != id);
        data.dicts.len() != before
    }

    /// Whether `id` is one of the key's dictionaries.
    pub(crate) fn has_dict(&self, key: &str, id: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|d| d.dicts.iter().any(|d| d.id == id))
    }

    /// `text` with the key's dictionaries `ids` applied, in the order given (unknown ids skipped).
    pub(crate) fn respell(&self, key: &str, text: String, ids: &[String]) -> String {
        if ids.is_empty() {
            return text;
        }
        let keys = self.lock();
        let Some(data) = keys.get(key) else {
            return text;
        };
        let mut text = text;
        for id in ids {
            if let Some(dict) = data.dicts.iter().find(|d| &d.id == id) {
                for item in &dict.items {
                    text = replace_word(&text, &item.word, &item.pronunciation);
                }
            }
        }
        text
    }
}

/// A caller's view of the store, for validating and rewriting TTS requests on any transport.
pub(crate) struct Scope<'a> {
    owner: Option<(&'a Library, &'a str)>,
}

impl<'a> Scope<'a> {
    /// The view of the key `key`.
    pub(crate) fn of(state: &'a State, key: &'a str) -> Self {
        Self {
            owner: Some((&state.library, key)),
        }
    }

    /// A view with no clones and no dictionaries.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self { owner: None }
    }

    /// Whether `voice_id` is one of the caller's clones.
    pub(crate) fn has_clone(&self, voice_id: &str) -> bool {
        self.owner
            .is_some_and(|(lib, key)| lib.has_clone(key, voice_id))
    }

    /// Whether `id` is one of the caller's dictionaries.
    pub(crate) fn has_dict(&self, id: &str) -> bool {
        self.owner.is_some_and(|(lib, key)| lib.has_dict(key, id))
    }

    /// `text` with the caller's dictionaries `ids` applied in order.
    pub(crate) fn respell(&self, text: String, ids: &[String]) -> String {
        match self.owner {
            Some((lib, key)) => lib.respell(key, text, ids),
            None => text,
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Replaces every whole-word, case-sensitive occurrence of `word` in `text`: an occurrence counts
/// when no letter, digit or `_` touches it on either side. Replacements are not rescanned.
pub(crate) fn replace_word(text: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let start = from + found;
        let end = start + word.len();
        let before_ok = !text[..start].chars().next_back().is_some_and(is_word_char);
        let after_ok = !text[end..].chars().next().is_some_and(is_word_char);
        if before_ok && after_ok {
            out.push_str(&text[rest..start]);
            out.push_str(with);
            rest = end;
            from = end;
        } else {
            // Step one character past the start of this occurrence.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&text[rest..]);
    out
}

/// The current time as `2026-04-20T09:42:17.103Z`.
pub(crate) fn now_iso8601() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    iso8601(since.as_secs(), since.subsec_millis())
}

/// Unix seconds and milliseconds as an ISO-8601 UTC timestamp with milliseconds.
fn iso8601(secs: u64, millis: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only_and_case_sensitive() {
        assert_eq!(
            replace_word("I use mysql, not MySQL or mysqld.", "mysql", "my-sequel"),
            "I use my-sequel, not MySQL or mysqld."
        );
        assert_eq!(replace_word("mysql mysql", "mysql", "x"), "x x");
        assert_eq!(replace_word("a_mysql b", "mysql", "x"), "a_mysql b");
        assert_eq!(
            replace_word("C++ and C", "C++", "see plus plus"),
            "see plus plus and C"
        );
        assert_eq!(replace_word("éa a", "a", "b"), "éa b");
        assert_eq!(replace_word("aa", "a", "aa"), "aa");
        assert_eq!(replace_word("", "a", "b"), "");
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso8601(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_776_678_137, 103), "2026-04-20T09:42:17.103Z");
        assert_eq!(iso8601(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    }

    #[test]
    fn ids_have_the_api_shapes() {
        let lib = Library::default();
        let v = lib.voice_id();
        assert_eq!(v.len(), 16);
        assert!(v.starts_with("voice_"));
        assert!(v[6..].bytes().all(|b| b.is_ascii_alphanumeric()));
        let o = lib.object_id();
        assert_eq!(o.len(), 24);
        assert!(o.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(lib.object_id(), o);
    }

    #[test]
    fn keys_are_isolated() {
        let lib = Library::default();
        let d = lib.create_dict(
            "a",
            vec![Item {
                word: "x".into(),
                pronunciation: "y".into(),
            }],
        );
        assert!(lib.has_dict("a", &d.id));
        assert!(!lib.has_dict("b", &d.id));
        assert!(!lib.update_dict("b", &d.id, Vec::new()));
        assert!(!lib.delete_dict("b", &d.id));
        assert_eq!(
            lib.respell("b", "x".into(), std::slice::from_ref(&d.id)),
            "x"
        );
        assert_eq!(
            lib.respell("a", "x".into(), std::slice::from_ref(&d.id)),
            "y"
        );
        assert!(lib.delete_dict("a", &d.id));
        assert!(lib.dicts("a").is_empty());
    }
}
