//! A `.env` reader: `KEY=value` lines from the working directory, consulted for the
//! CLI's own variables when the environment does not set them (the environment wins).
//! The process environment is never modified.

use std::path::Path;

/// The variables the CLI reads from `.env`; nothing else is imported.
const KNOWN: &[&str] = &[
    "SMALLEST_API_KEY",
    "SMALLEST_BASE_URL",
    "SMALLEST_CA_CERT",
    "SMALLEST_MAX_RETRIES",
    "SMALLEST_TIMEOUT",
    "SMALLEST_REDIS_URL",
    "SMALLEST_REDIS_ACCOUNT",
    "SMALLEST_REDIS_FALLBACK",
    "SMALLEST_TTS_CONCURRENCY",
    "SMALLEST_STT_RPM",
    "SMALLEST_STT_SESSIONS",
];

/// Parses `.env` text into `(key, value)` pairs with `dotenvy` (the parser other tools
/// share: `export`, `#` comments after a value, single and double quotes, escapes). A
/// line it cannot parse is skipped.
pub(crate) fn parse(text: &str) -> Vec<(String, String)> {
    dotenvy::from_read_iter(text.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// The environment, with `.env` from the working directory as a fallback.
#[derive(Default)]
pub(crate) struct Env {
    dotenv: Vec<(String, String)>,
}

impl Env {
    /// Reads `.env` in `dir` (if any). Only the CLI's own variables are taken from it.
    pub(crate) fn load(dir: &Path) -> Env {
        let dotenv = std::fs::read_to_string(dir.join(".env"))
            .map(|text| parse(&text))
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| KNOWN.contains(&k.as_str()))
            .collect();
        Env { dotenv }
    }

    /// The variable from the environment, else from `.env`. An empty value counts as
    /// unset in either place, so `SMALLEST_API_KEY=` in the shell does not hide `.env`.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let set = |v: &String| !v.trim().is_empty();
        std::env::var(key).ok().filter(set).or_else(|| {
            self.dotenv
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .filter(set)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_the_usual_forms() {
        let pairs = parse(
            "# comment\nSMALLEST_API_KEY=sk_1\nexport SMALLEST_BASE_URL=\"http://127.0.0.1:9\"\n\
             X='a b'\nY=plain # trailing\nnot a pair\nZ=\"quoted\" # comment\n",
        );
        assert_eq!(
            pairs,
            vec![
                ("SMALLEST_API_KEY".into(), "sk_1".into()),
                ("SMALLEST_BASE_URL".into(), "http://127.0.0.1:9".into()),
                ("X".into(), "a b".into()),
                ("Y".into(), "plain".into()),
                ("Z".into(), "quoted".into()),
            ]
        );
    }
}
