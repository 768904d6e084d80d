//! Client configuration: the key, the base URL and the identifying headers.
//!
//! A [`Config`] is plain data. It never opens a connection; the transports read it.

use std::fmt;
use std::net::IpAddr;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue, USER_AGENT};
use http::{Request, Uri};

use crate::auth::ApiKey;
use crate::error::Error;

/// The production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.smallest.ai";

/// The environment variable that overrides the base URL.
pub const BASE_URL_ENV: &str = "SMALLEST_BASE_URL";

/// `User-Agent` sent on every request and WebSocket handshake.
pub const USER_AGENT_VALUE: &str = concat!("smallest-rs/", env!("CARGO_PKG_VERSION"));

/// `X-Source` sent on every request (attribution; the server ignores it otherwise).
pub const X_SOURCE_VALUE: &str = "smallest-rs";

/// Where and as whom to talk to the Waves API.
#[derive(Clone)]
pub struct Config {
    api_key: ApiKey,
    base: BaseUrl,
    allow_insecure_http: bool,
}

/// A validated base URL: scheme, authority and an optional path prefix without a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BaseUrl {
    https: bool,
    authority: String,
    host: String,
    prefix: String,
}

impl Config {
    /// A configuration for the production API with this key.
    pub fn new(api_key: ApiKey) -> Self {
        Config {
            api_key,
            base: BaseUrl {
                https: true,
                authority: "api.smallest.ai".into(),
                host: "api.smallest.ai".into(),
                prefix: String::new(),
            },
            allow_insecure_http: false,
        }
    }

    /// Reads `SMALLEST_API_KEY` and, when set, `SMALLEST_BASE_URL`.
    pub fn from_env() -> Result<Self, Error> {
        let config = Config::new(ApiKey::from_env()?);
        match std::env::var(BASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => config.with_base_url(url.trim()),
            _ => Ok(config),
        }
    }

    /// Uses another base URL, e.g. `https://api.us.smallest.ai` or an emulator's
    /// `http://127.0.0.1:PORT`.
    ///
    /// `http://` is accepted only for loopback hosts (`localhost`, `127.0.0.0/8`, `::1`)
    /// unless [`allow_insecure_http`](Self::allow_insecure_http) was called first: the
    /// key would otherwise cross the network in clear text.
    pub fn with_base_url(mut self, url: &str) -> Result<Self, Error> {
        self.base = BaseUrl::parse(url, self.allow_insecure_http)?;
        Ok(self)
    }

    /// Permits `http://` base URLs on non-loopback hosts. Call before
    /// [`with_base_url`](Self::with_base_url). Only for trusted networks.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// The base URL, e.g. `https://api.smallest.ai`.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.base.https { "https" } else { "http" },
            self.base.authority,
            self.base.prefix
        )
    }

    /// The host of the base URL (without port).
    pub fn host(&self) -> &str {
        &self.base.host
    }

    /// The URI of an API path (`path` starts with `/`) with an already-encoded query.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, Error> {
        self.uri_with_scheme(
            if self.base.https { "https" } else { "http" },
            path_and_query,
        )
    }

    /// The `ws://` / `wss://` URI of an API path, for WebSocket handshakes.
    pub fn ws_uri(&self, path_and_query: &str) -> Result<Uri, Error> {
        self.uri_with_scheme(if self.base.https { "wss" } else { "ws" }, path_and_query)
    }

    fn uri_with_scheme(&self, scheme: &str, path_and_query: &str) -> Result<Uri, Error> {
        let text = format!(
            "{scheme}://{}{}{path_and_query}",
            self.base.authority, self.base.prefix
        );
        text.parse::<Uri>()
            .map_err(|e| Error::Config(format!("cannot build a URI from {text:?}: {e}").into()))
    }

    /// Adds what every request carries: `User-Agent`, `X-Source` and, when `auth` is
    /// true, the sensitive `Authorization` header. The one function that does: every
    /// shape reaches it ([`crate::prepare`], `TtsStreamRequest::prepare`,
    /// `TranscribeRequest::prepare_upload`, the live `handshake`s).
    pub(crate) fn apply_headers<B>(&self, request: &mut Request<B>, auth: bool) {
        let headers = request.headers_mut();
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        headers.insert(
            HeaderName::from_static("x-source"),
            HeaderValue::from_static(X_SOURCE_VALUE),
        );
        if auth {
            headers.insert(AUTHORIZATION, self.api_key.authorization_header());
        }
    }
}

impl Config {
    /// `error` with this configuration's key removed from everything the server wrote
    /// into it (messages, codes, the raw body). The call machines and the live driver
    /// do this themselves; code that parses responses by hand calls it.
    pub fn redact(&self, error: Error) -> Error {
        crate::redact::Redact::redact(error, &self.api_key)
    }

    /// The API key (whose `Debug` and `Display` never show it).
    pub fn api_key(&self) -> &ApiKey {
        &self.api_key
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url())
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

impl BaseUrl {
    fn parse(url: &str, allow_insecure_http: bool) -> Result<Self, Error> {
        // Users paste keys into URLs (`https://sk_…@host`): never echo the userinfo.
        let shown = redact_userinfo(url);
        let bad = |why: &str| {
            Error::Config(
                format!("invalid base URL {shown:?}: {why}; expected e.g. {DEFAULT_BASE_URL}")
                    .into(),
            )
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be https:// (or http:// for loopback)")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not supported; use the API key",
            ));
        }
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed"));
        }
        let host = authority.host().to_owned();
        if !https && !allow_insecure_http && !is_loopback(&host) {
            return Err(Error::Config(
                format!(
                    "refusing http:// base URL {shown:?}: the API key would travel unencrypted; \
                     use https://, a loopback host, or Config::allow_insecure_http()"
                )
                .into(),
            ));
        }
        Ok(BaseUrl {
            https,
            authority: authority.as_str().to_owned(),
            host,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// `url` with anything before an `@` in its authority replaced by `<redacted>`.
fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority = &url[start..];
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    match authority[..end].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &url[..start], &authority[at..]),
        None => url.to_owned(),
    }
}

/// `localhost`, `*.localhost`, `127.0.0.0/8` and `::1`.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey::new("sk_config_test_key").unwrap()
    }

    #[test]
    fn default_and_custom_base_urls() {
        let c = Config::new(key());
        assert_eq!(c.base_url(), "https://api.smallest.ai");
        assert_eq!(
            c.uri("/waves/v1/tts").unwrap().to_string(),
            "https://api.smallest.ai/waves/v1/tts"
        );
        let c = c.with_base_url("https://api.us.smallest.ai/").unwrap();
        assert_eq!(
            c.ws_uri("/waves/v1/stt/live?model=pulse")
                .unwrap()
                .to_string(),
            "wss://api.us.smallest.ai/waves/v1/stt/live?model=pulse"
        );
        let c = Config::new(key())
            .with_base_url("http://127.0.0.1:8080/proxy/")
            .unwrap();
        assert_eq!(
            c.uri("/waves/v1/health").unwrap().to_string(),
            "http://127.0.0.1:8080/proxy/waves/v1/health"
        );
        assert!(Config::new(key()).with_base_url("http://[::1]:9/").is_ok());
        assert!(
            Config::new(key())
                .with_base_url("http://localhost:9")
                .is_ok()
        );
    }

    #[test]
    fn plain_http_needs_loopback_or_opt_in() {
        let err = Config::new(key())
            .with_base_url("http://api.smallest.ai")
            .unwrap_err();
        assert!(err.to_string().contains("unencrypted"), "{err}");
        assert!(
            Config::new(key())
                .allow_insecure_http()
                .with_base_url("http://10.0.0.5:8000")
                .is_ok()
        );
        assert!(Config::new(key()).with_base_url("ftp://x").is_err());
        assert!(
            Config::new(key())
                .with_base_url("https://u:p@host")
                .is_err()
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let c = Config::new(key());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk_config_test_key"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
