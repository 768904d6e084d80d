//! The configured API key, removed from everything a server wrote before the SDK hands
//! it over: error messages, error bodies, stream and WebSocket error frames, unknown
//! messages, close reasons. A server that echoes the key (a 401 body that quotes the
//! header, a proxy's error page) must not put it on a user's terminal or into a log.
//!
//! The call machines and the live driver apply it themselves; [`Config::redact`] is
//! there for code that drives the core by hand.
//!
//! [`Config::redact`]: crate::Config::redact

use std::borrow::Cow;

use bytes::Bytes;

use crate::auth::ApiKey;
use crate::error::{ApiError, Error};
use crate::stt_live::SttLiveEvent;
use crate::tts_live::TtsLiveEvent;

/// What stands where the key was.
pub const REDACTED: &str = "<redacted>";

/// `text` with control characters replaced by `?` and cut to `max` characters (`…`
/// marks the cut): a server's words safe to put in an error message.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Something a server wrote, which may quote the key.
pub trait Redact {
    /// The same, with every occurrence of `key` replaced by [`REDACTED`].
    fn redact(self, key: &ApiKey) -> Self;
}

impl Redact for String {
    fn redact(self, key: &ApiKey) -> String {
        match key.scrub(&self) {
            Cow::Borrowed(_) => self,
            Cow::Owned(clean) => clean,
        }
    }
}

impl Redact for Option<String> {
    fn redact(self, key: &ApiKey) -> Self {
        self.map(|s| s.redact(key))
    }
}

impl Redact for Bytes {
    fn redact(self, key: &ApiKey) -> Bytes {
        match key.scrub_bytes(&self) {
            Some(clean) => Bytes::from(clean),
            None => self,
        }
    }
}

impl Redact for Error {
    fn redact(self, key: &ApiKey) -> Error {
        match self {
            Error::Api(e) => Error::Api(Box::new((*e).redact(key))),
            Error::Decode { what, message } => Error::Decode {
                what,
                message: message.redact(key),
            },
            Error::Limits {
                backend,
                message,
                remedy,
            } => Error::Limits {
                backend: key.scrub(&backend).into_owned(),
                message: key.scrub(&message).into_owned(),
                remedy,
            },
            Error::Stream { code, message } => Error::Stream {
                code: code.redact(key),
                message: message.redact(key),
            },
            Error::Config(message) => match key.scrub(&message) {
                Cow::Borrowed(_) => Error::Config(message),
                Cow::Owned(clean) => Error::Config(clean.into()),
            },
            Error::Transport {
                request_sent,
                source,
            } => {
                // A library's error may quote what the server sent; keep its type unless
                // it does, then keep only its (clean) text.
                let text = source.to_string();
                match key.scrub(&text) {
                    Cow::Borrowed(_) => Error::Transport {
                        request_sent,
                        source,
                    },
                    Cow::Owned(clean) => Error::transport(request_sent, clean),
                }
            }
            other => other,
        }
    }
}

impl Redact for ApiError {
    fn redact(self, key: &ApiKey) -> ApiError {
        self.map_text(|text| text.redact(key), |body| body.redact(key))
    }
}

impl Redact for TtsLiveEvent {
    fn redact(self, key: &ApiKey) -> Self {
        match self {
            TtsLiveEvent::Error {
                request_index,
                context,
                code,
                message,
            } => TtsLiveEvent::Error {
                request_index,
                context,
                code: code.redact(key),
                message: message.redact(key),
            },
            TtsLiveEvent::Closed { code, reason, why } => TtsLiveEvent::Closed {
                code,
                reason: reason.redact(key),
                why,
            },
            TtsLiveEvent::Unknown { raw } => TtsLiveEvent::Unknown {
                raw: raw.redact(key),
            },
            other => other,
        }
    }
}

impl Redact for SttLiveEvent {
    fn redact(self, key: &ApiKey) -> Self {
        match self {
            SttLiveEvent::Error { code, message } => SttLiveEvent::Error {
                code: code.redact(key),
                message: message.redact(key),
            },
            SttLiveEvent::Closed {
                code,
                reason,
                outcome,
                after_last,
            } => SttLiveEvent::Closed {
                code,
                reason: reason.redact(key),
                outcome,
                after_last,
            },
            SttLiveEvent::Unknown { raw } => SttLiveEvent::Unknown {
                raw: raw.redact(key),
            },
            SttLiveEvent::Transcript(mut t) => {
                t.text = t.text.redact(key);
                SttLiveEvent::Transcript(t)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Call, Next};
    use crate::live::{LiveDriver, LiveItem};
    use crate::options::ClientOptions;
    use crate::ws::WsMessage;
    use crate::{Config, TtsLiveConfig, TtsLiveSession};
    use std::time::{Instant, SystemTime};

    const KEY: &str = "sk_redact_canary_0123456789";

    fn config() -> Config {
        Config::new(ApiKey::new(KEY).unwrap())
    }

    #[test]
    fn an_error_body_that_echoes_the_key_is_scrubbed_everywhere() {
        let config = config();
        let options = ClientOptions::default().with_retry_policy(crate::retry::RetryPolicy::none());
        let mut call = Call::new(&crate::GetVoiceCatalog, &config, &options, 1);
        let (now, wall) = (Instant::now(), SystemTime::UNIX_EPOCH);
        assert!(matches!(call.poll(now, wall), Next::Send(_)));
        let head = http::Response::builder()
            .status(401)
            .header("x-request-id", format!("req-{KEY}"))
            .body(())
            .unwrap()
            .into_parts()
            .0;
        call.handle_head(head);
        let body = format!(r#"{{"message":"Invalid key Bearer {KEY}","code":"{KEY}"}}"#);
        call.handle_body(Bytes::from(body), now, wall);
        let Next::Fail(e) = call.poll(now, wall) else {
            panic!("401")
        };
        for text in [format!("{e}"), format!("{e:?}")] {
            assert!(!text.contains(KEY), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
        let api = e.api().unwrap();
        assert!(!String::from_utf8_lossy(api.raw_body()).contains(KEY));
        assert!(e.is_auth());
    }

    #[test]
    fn a_websocket_error_frame_that_echoes_the_key_is_scrubbed() {
        let config = config();
        let now = Instant::now();
        let session = TtsLiveSession::new(TtsLiveConfig::new("magnus"), now).unwrap();
        let mut driver =
            LiveDriver::new(session, None, &ClientOptions::default()).redacting(&config);
        let frame = format!(r#"{{"status":"error","message":"bad token {KEY}"}}"#);
        driver.handle_frame(WsMessage::Text(frame), now);
        driver.handle_frame(WsMessage::Text(format!("not json {KEY}")), now);
        let mut seen = String::new();
        for _ in 0..4 {
            match driver.poll_item() {
                Some(LiveItem::Event(e)) => seen.push_str(&format!("{e:?}")),
                Some(LiveItem::Error(e)) => seen.push_str(&format!("{e} {e:?}")),
                _ => break,
            }
        }
        assert!(seen.contains(REDACTED), "{seen}");
        assert!(!seen.contains(KEY), "{seen}");
    }

    #[test]
    fn text_without_the_key_is_left_alone() {
        let key = ApiKey::new(KEY).unwrap();
        assert!(matches!(key.scrub("nothing here"), Cow::Borrowed(_)));
        assert_eq!(key.scrub_bytes(b"nothing"), None);
        assert_eq!(
            key.scrub_bytes(format!("a{KEY}b{KEY}").as_bytes()).unwrap(),
            b"a<redacted>b<redacted>"
        );
    }
}
