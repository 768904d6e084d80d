//! The WebSocket half of the core: the frame vocabulary the transports translate, the
//! upgrade request, and the check of the server's answer to it (RFC 6455 §4).
//!
//! The live APIs ([`crate::tts_live`], [`crate::stt_live`]) are application protocols
//! on top of WebSocket frames. Framing, masking, TLS and the automatic replies of the
//! framing layer (a `Pong` to every `Ping`, the echo of a `Close`) belong to the
//! transport (tungstenite does all of them); this module and the session machines
//! never touch a socket, never read a clock and never draw a random number: the
//! `Sec-WebSocket-Key` is 16 random bytes the transport passes in, and time is the
//! `now: Instant` argument of every verb.
//!
//! # The upgrade
//!
//! The transport gives the key once. [`handshake_request`] (or the `handshake` method
//! of [`TtsLiveConfig`](crate::tts_live::TtsLiveConfig) and
//! [`SttLiveConfig`](crate::stt_live::SttLiveConfig), which build the path and query)
//! returns the request to send and an [`Upgrade`]: the answer that request expects (the
//! `Sec-WebSocket-Accept` derived from the key). [`Upgrade::check`] then judges the
//! server's answer: `Ok` for a proper `101 Switching Protocols`, the server's
//! [`Error::Api`] for a refusal (`400`, `401` …), [`Error::Decode`] for a broken `101`.
//! The key cannot be passed twice, so it cannot be passed wrong the second time.
//!
//! # The driving loop a transport writes
//!
//! Every live session has the same verbs (quinn / Firezone style), the [`LiveSession`]
//! trait: `handle_message`, `poll_outgoing`, `poll_event`, `poll_timeout`,
//! `handle_timeout`. A blocking transport over tungstenite looks like this (an async one
//! replaces the read timeout with `tokio::select!` over the socket, a sleep until
//! `poll_timeout` and the user's input):
//!
//! ```text
//! let (request, upgrade) = live_config.handshake(&config, random_bytes())?;
//! let (mut socket, _) = tungstenite::client(request, tls_stream)  // on Error::Http(resp):
//!     .map_err(|e| /* upgrade.check(resp.status(), resp.headers(), body) */)?;
//! let mut session = TtsLiveSession::new(live_config, Instant::now())?;
//! session.speak("Hello there.", Instant::now())?;
//! loop {
//!     while let Some(frame) = session.poll_outgoing() { socket.send(to_tungstenite(frame))?; }
//!     while let Some(event) = session.poll_event() { deliver(event); }
//!     if session.is_closed() { break; }
//!     let wait = session.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
//!     set_read_timeout(&socket, wait);                             // None = block
//!     match socket.read() {
//!         Ok(frame) => session.handle_message(from_tungstenite(frame), Instant::now())?,
//!         Err(would_block_or_timed_out) => session.handle_timeout(Instant::now()),
//!         Err(closed_or_reset) => session.handle_message(WsMessage::Close(None), Instant::now())?,
//!     }
//! }
//! ```
//!
//! [`live::LiveDriver`](crate::live::LiveDriver) wraps a session with what every such
//! loop decides beyond the protocol (the TTS slot, the idle and close limits, the end).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{ApiError, Error};

/// The close code of a normal closure.
pub const CLOSE_NORMAL: u16 = 1000;

/// The close code of a policy violation (the STT concurrent-session limit).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;

/// The close code of an unexpected server condition.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// The GUID RFC 6455 appends to the key before hashing it.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// One WebSocket message, as the session machines see it.
///
/// The transports translate this to and from their library's type (e.g.
/// `tungstenite::Message`); it exists so that the core depends on no WebSocket crate.
/// Fragmentation is the transport's business: a message here is always complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsMessage {
    /// A UTF-8 text message (every message of the Waves live APIs but audio).
    Text(String),
    /// A binary message (STT audio going up).
    Binary(Bytes),
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A close frame. `None` is a close without a status code; transports also pass
    /// `Close(None)` when the connection ended without any close frame.
    Close(Option<CloseFrame>),
}

/// The status of a close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close code, e.g. 1000 (normal) or 1008 (policy violation).
    pub code: u16,
    /// The reason text (may be empty).
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// The `Sec-WebSocket-Key` header value for 16 random bytes: their base64.
pub fn sec_websocket_key(key: [u8; 16]) -> String {
    BASE64.encode(key)
}

/// The `Sec-WebSocket-Accept` a server must answer to a `Sec-WebSocket-Key` header
/// value: base64(SHA-1(key + the RFC 6455 GUID)).
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     smallest_core::ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(sec_websocket_key: &str) -> String {
    let mut input = Vec::with_capacity(sec_websocket_key.len() + ACCEPT_GUID.len());
    input.extend_from_slice(sec_websocket_key.as_bytes());
    input.extend_from_slice(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha1(&input))
}

/// The upgrade request of a WebSocket API, `GET wss://…{path_and_query}`, and the
/// [`Upgrade`] that checks the server's answer to it.
///
/// The request carries the five headers a WebSocket client library insists on when
/// handed a ready request (`Host`, `Connection: Upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Key` = base64 of `sec_websocket_key`),
/// the headers of every request (`Authorization`, marked sensitive, `User-Agent`,
/// `X-Source`) and, when `expire_content`, `x-expire-content: true` (API.md §2.3).
///
/// `sec_websocket_key` is 16 random bytes from the transport, given here only: the
/// [`Upgrade`] remembers the `Sec-WebSocket-Accept` it implies.
///
/// `path_and_query` starts with `/` and is already percent-encoded. The scheme is
/// `wss` for an `https` base URL and `ws` for an `http` (loopback) one. Prefer the
/// `handshake` method of [`TtsLiveConfig`](crate::tts_live::TtsLiveConfig) and
/// [`SttLiveConfig`](crate::stt_live::SttLiveConfig), which build `path_and_query`.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use smallest_core::{ApiKey, Config, ws};
///
/// # fn main() -> Result<(), smallest_core::Error> {
/// let config = Config::new(ApiKey::new("sk_example")?);
/// let (request, upgrade) =
///     ws::handshake_request(&config, "/waves/v1/tts/live", *b"the sample nonce", false)?;
/// assert_eq!(request.headers()["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(upgrade.expected_accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
///
/// // A refusal before the upgrade is the server's error.
/// let err = upgrade.check(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b"").unwrap_err();
/// assert!(err.is_auth());
/// # Ok(()) }
/// ```
pub fn handshake_request(
    config: &Config,
    path_and_query: &str,
    sec_websocket_key: [u8; 16],
    expire_content: bool,
) -> Result<(Request<()>, Upgrade), Error> {
    let uri = config.ws_uri(path_and_query)?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| Error::Config(format!("the WebSocket URI {uri} has no host").into()))?;
    let key = self::sec_websocket_key(sec_websocket_key);
    let upgrade = Upgrade {
        accept: accept_key(&key),
    };
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(HOST, host)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header("sec-websocket-version", "13")
        .header(SEC_WEBSOCKET_KEY, key);
    if expire_content {
        builder = builder.header("x-expire-content", "true");
    }
    let mut request = builder
        .body(())
        .map_err(|e| Error::Config(format!("cannot build the upgrade request: {e}").into()))?;
    config.apply_headers(&mut request, true);
    Ok((request, upgrade))
}

/// What the server must answer to one upgrade request: made by [`handshake_request`]
/// together with the request, it holds the `Sec-WebSocket-Accept` the request's key
/// implies, so the key is given once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    accept: String,
}

impl Upgrade {
    /// The `Sec-WebSocket-Accept` value a `101` must carry.
    pub fn expected_accept(&self) -> &str {
        &self.accept
    }

    /// Checks the server's answer to the upgrade request.
    ///
    /// `101 Switching Protocols` with `Upgrade: websocket`, a `Connection` header
    /// naming `upgrade` and the right `Sec-WebSocket-Accept` is `Ok`. Any other status
    /// is the server refusing before the upgrade (a `400` for `model=pulse-pro` or a
    /// missing model, a `401` for a bad key …): its body is parsed into [`Error::Api`]
    /// like any HTTP error. A `101` with wrong headers is [`Error::Decode`].
    ///
    /// Transports over tungstenite call this with the `Error::Http(response)` of a
    /// refused handshake (tungstenite checks the accept value of a `101` itself).
    pub fn check(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<(), Error> {
        const WHAT: &str = "WebSocket upgrade response";
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return Err(ApiError::from_parts(status, headers, body).into());
        }
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        match header(UPGRADE) {
            Some(v) if v.trim().eq_ignore_ascii_case("websocket") => {}
            other => {
                return Err(Error::decode(
                    WHAT,
                    format!("the `Upgrade` header is {other:?}, expected \"websocket\""),
                ));
            }
        }
        let connection_upgrades = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        if !connection_upgrades {
            return Err(Error::decode(
                WHAT,
                format!(
                    "the `Connection` header is {:?}, expected it to name \"Upgrade\"",
                    header(CONNECTION)
                ),
            ));
        }
        let expected = &self.accept;
        match header(SEC_WEBSOCKET_ACCEPT) {
            Some(got) if got.trim() == expected => Ok(()),
            Some(got) => Err(Error::decode(
                WHAT,
                format!(
                    "`Sec-WebSocket-Accept` is {got:?}, expected {expected:?} for the key sent \
                     (a proxy rewrote the handshake, or answered for another request)"
                ),
            )),
            None => Err(Error::decode(
                WHAT,
                "the `Sec-WebSocket-Accept` header is missing",
            )),
        }
    }
}

/// The code and message of a server error frame, whatever its shape:
/// `{"status":"error","message":…}`, `{"status":"error","error":{"message","code"}}`,
/// `{"type":"error","error_code":…,"message":…}`, `{"error":"…"}`.
pub(crate) fn error_fields(obj: &Map<String, Value>, raw: &str) -> (Option<String>, String) {
    fn text(v: Option<&Value>) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    let nested = obj.get("error").and_then(Value::as_object);
    let code = text(obj.get("error_code"))
        .or_else(|| nested.and_then(|e| text(e.get("code"))))
        .or_else(|| text(obj.get("code")));
    let message = text(obj.get("message"))
        .or_else(|| nested.and_then(|e| text(e.get("message"))))
        .or_else(|| obj.get("error").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| text(obj.get("errors")))
        .unwrap_or_else(|| raw.to_owned());
    (code, message)
}

/// `start + d`, or `None` when it cannot be represented (a deadline that never comes).
pub(crate) fn deadline(
    start: std::time::Instant,
    d: std::time::Duration,
) -> Option<std::time::Instant> {
    start.checked_add(d)
}

/// SHA-1 of `data` (RFC 6455 needs it for the accept key only), from `sha1_smol`: pure
/// Rust, no I/O, no dependencies.
fn sha1(data: &[u8]) -> [u8; 20] {
    sha1_smol::Sha1::from(data).digest().bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_test_vectors() {
        // FIPS 180 / RFC 3174 vectors, plus lengths around the padding boundaries.
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(b"The quick brown fox jumps over the lazy dog")),
            "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
        );
        assert_eq!(
            hex(&sha1(&vec![b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
        // 55, 56 and 64 bytes: one block, two blocks, exactly one block of data.
        assert_eq!(
            hex(&sha1(&[b'a'; 55])),
            "c1c8bbdc22796e28c0e15163d20899b65621d65a"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 56])),
            "c2db330f6083854c99d4b5bfb6e8f29f201be699"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 64])),
            "0098ba824b5c16427bd7a1122a5a442a25ec644d"
        );
    }

    #[test]
    fn error_fields_of_every_shape() {
        let parse = |raw: &str| {
            let v: Value = serde_json::from_str(raw).unwrap();
            error_fields(v.as_object().unwrap(), raw)
        };
        assert_eq!(
            parse(r#"{"status":"error","message":"boom"}"#),
            (None, "boom".into())
        );
        assert_eq!(
            parse(r#"{"status":"error","error":{"message":"bad voice","code":"INVALID_VOICE"}}"#),
            (Some("INVALID_VOICE".into()), "bad voice".into())
        );
        assert_eq!(
            parse(r#"{"status":"error","error":{"message":"x","code":429}}"#),
            (Some("429".into()), "x".into())
        );
        assert_eq!(
            parse(
                r#"{"type":"error","error_code":"LANGUAGE_NOT_ENABLED_IN_REGION","message":"m"}"#
            ),
            (Some("LANGUAGE_NOT_ENABLED_IN_REGION".into()), "m".into())
        );
        assert_eq!(parse(r#"{"error":"nope"}"#), (None, "nope".into()));
        assert_eq!(
            parse(r#"{"status":"error"}"#),
            (None, r#"{"status":"error"}"#.into())
        );
    }
}

/// The sans-IO verbs both live sessions share ([`TtsLiveSession`](crate::TtsLiveSession),
/// [`SttLiveSession`](crate::SttLiveSession)): the whole contract between a transport
/// and a live protocol. A transport's driving loop is written once against it: send
/// what [`poll_outgoing`](Self::poll_outgoing) gives, deliver what
/// [`poll_event`](Self::poll_event) gives, read a frame into
/// [`handle_message`](Self::handle_message), and wake at
/// [`poll_timeout`](Self::poll_timeout) to call [`handle_timeout`](Self::handle_timeout).
pub trait LiveSession {
    /// What the session reports to its user.
    type Event;
    /// Takes one frame from the server.
    fn handle_message(&mut self, message: WsMessage, now: std::time::Instant) -> Result<(), Error>;
    /// The next frame to send, if any.
    fn poll_outgoing(&mut self) -> Option<WsMessage>;
    /// The next event for the user, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    fn poll_timeout(&self) -> Option<std::time::Instant>;
    /// Advances the session's timers to `now`.
    fn handle_timeout(&mut self, now: std::time::Instant);
    /// Whether the connection is over (closed, or the close was sent and received).
    fn is_closed(&self) -> bool;
    /// Whether the server owes an answer (the idle limit applies only then).
    fn awaiting_answer(&self) -> bool;
    /// Keepalive pings after `interval` without client traffic; `None` turns them off.
    fn set_keepalive(&mut self, interval: Option<std::time::Duration>);
    /// `event` with `key` removed from what the server wrote into it.
    fn redact_event(event: Self::Event, key: &crate::ApiKey) -> Self::Event;
    /// Whether the session is between connections: nothing is read or written until
    /// it [wants a connection](Self::wants_connection) and gets one.
    fn is_disconnected(&self) -> bool;
    /// Whether the transport must open a new connection now (the same handshake), then
    /// call [`handle_connected`](Self::handle_connected) or
    /// [`handle_connect_failed`](Self::handle_connect_failed).
    fn wants_connection(&self) -> bool;
    /// A new connection is up. An error ends the session.
    fn handle_connected(&mut self, now: std::time::Instant) -> Result<(), Error>;
    /// Opening a new connection failed: `Ok` when the session tries again later.
    fn handle_connect_failed(&mut self, error: Error, now: std::time::Instant)
    -> Result<(), Error>;
    /// The connection failed with `error`, or ended without a close frame (`None`):
    /// `true` when the session reconnects (and the error is absorbed).
    fn handle_connection_lost(&mut self, error: Option<&Error>, now: std::time::Instant) -> bool;
    /// The client's retry policy (backoffs between connection attempts) and a seed
    /// for their jitter.
    fn set_retry_policy(&mut self, policy: &crate::retry::RetryPolicy, seed: u64);
    /// The upgrade request of a new connection for this session (the settings it was
    /// opened with), and the check of the server's answer.
    fn handshake(
        &self,
        config: &crate::Config,
        key: [u8; 16],
    ) -> Result<(http::Request<()>, Upgrade), Error>;
}

macro_rules! live_session {
    ($session:ty, $event:ty) => {
        impl LiveSession for $session {
            type Event = $event;
            fn handle_message(
                &mut self,
                message: WsMessage,
                now: std::time::Instant,
            ) -> Result<(), Error> {
                <$session>::handle_message(self, message, now)
            }
            fn poll_outgoing(&mut self) -> Option<WsMessage> {
                <$session>::poll_outgoing(self)
            }
            fn poll_event(&mut self) -> Option<Self::Event> {
                <$session>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<std::time::Instant> {
                <$session>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: std::time::Instant) {
                <$session>::handle_timeout(self, now)
            }
            fn is_closed(&self) -> bool {
                <$session>::is_closed(self)
            }
            fn awaiting_answer(&self) -> bool {
                <$session>::awaiting_answer(self)
            }
            fn set_keepalive(&mut self, interval: Option<std::time::Duration>) {
                <$session>::set_keepalive(self, interval)
            }
            fn redact_event(event: Self::Event, key: &crate::ApiKey) -> Self::Event {
                crate::redact::Redact::redact(event, key)
            }
            fn is_disconnected(&self) -> bool {
                <$session>::is_disconnected(self)
            }
            fn wants_connection(&self) -> bool {
                <$session>::wants_connection(self)
            }
            fn handle_connected(&mut self, now: std::time::Instant) -> Result<(), Error> {
                <$session>::handle_connected(self, now)
            }
            fn handle_connect_failed(
                &mut self,
                error: Error,
                now: std::time::Instant,
            ) -> Result<(), Error> {
                <$session>::handle_connect_failed(self, error, now)
            }
            fn handle_connection_lost(
                &mut self,
                error: Option<&Error>,
                now: std::time::Instant,
            ) -> bool {
                <$session>::handle_connection_lost(self, error, now)
            }
            fn set_retry_policy(&mut self, policy: &crate::retry::RetryPolicy, seed: u64) {
                <$session>::set_retry_policy(self, policy, seed)
            }
            fn handshake(
                &self,
                config: &crate::Config,
                key: [u8; 16],
            ) -> Result<(http::Request<()>, Upgrade), Error> {
                self.config().handshake(config, key)
            }
        }
    };
}

live_session!(crate::TtsLiveSession, crate::TtsLiveEvent);
live_session!(crate::SttLiveSession, crate::SttLiveEvent);
