//! # smallest-net
//!
//! The I/O glue every smallest-rs transport shares, written once: the rustls client
//! configuration (ring, the Mozilla roots plus the client's extra roots), the
//! translation between tungstenite's messages and the core's [`WsMessage`], what a
//! tungstenite error means for a live session, the bounded WebSocket configuration,
//! random nonces from the operating system, and the guard that refuses to send the API
//! key while a dependency would dump it at TRACE.
//!
//! It depends on no async runtime: `smallest-blocking` (sync tungstenite) and
//! `smallest-hyper` (tokio-tungstenite, the same tungstenite engine) both use it. It
//! decides nothing about the protocol; that is `smallest-core`'s. Its two macros write
//! the public vocabulary both transports share once ([`endpoint_methods!`],
//! [`live_methods!`]).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use smallest_core::ws::{CloseFrame, Upgrade, WsMessage};
use smallest_core::{Error, TimeoutPhase};
use tungstenite::Message;
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::protocol::CloseFrame as WsCloseFrame;
use tungstenite::protocol::WebSocketConfig;

pub use smallest_core as core;
pub use tungstenite;

mod api;
pub mod body;
pub mod live;

/// What is decoded when an upgrade answer is not what RFC 6455 says.
const UPGRADE: &str = "WebSocket upgrade response";

/// The rustls client configuration of every transport: the ring provider, safe
/// protocol versions, the roots of the enabled features — the Mozilla (webpki) roots
/// (`webpki-roots`, default), the platform's (`native-roots`) — and `extra` DER roots.
/// No ALPN: an HTTP client adds its own, a WebSocket upgrade is HTTP/1.1.
///
/// # Errors
/// [`Error::Config`] when an extra root is not a usable certificate, or when there is
/// no root at all (no roots feature and no extra root, or `native-roots` alone and the
/// platform's roots could not be loaded).
pub fn tls_config(extra: &[Vec<u8>]) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Certificates the platform lists but rustls cannot use are skipped, as every
    // rustls client does. A platform without roots is an error only when nothing else
    // is trusted (the Mozilla roots, or extra roots, still check servers).
    #[cfg(feature = "native-roots")]
    match native_roots() {
        Ok(certs) => {
            let _ = roots.add_parsable_certificates(certs);
        }
        Err(e) if roots.is_empty() && extra.is_empty() => return Err(e),
        Err(_) => {}
    }
    for (i, der) in extra.iter().enumerate() {
        roots
            .add(CertificateDer::from(der.as_slice()).into_owned())
            .map_err(|e| {
                Error::Config(
                    format!(
                        "extra root certificate #{} is not a usable DER certificate: {e}",
                        i + 1
                    )
                    .into(),
                )
            })?;
    }
    if roots.is_empty() {
        return Err(Error::Config(
            "no root certificates to check servers with: enable the `webpki-roots` or \
             `native-roots` feature, or add a root certificate (add_root_certificate_der)"
                .into(),
        ));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}").into()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// The platform's root certificates (`rustls-native-certs`: the system store, or the
/// file and directory named by `SSL_CERT_FILE` / `SSL_CERT_DIR`).
///
/// # Errors
/// [`Error::Config`] when none could be loaded, with what went wrong.
#[cfg(feature = "native-roots")]
pub fn native_roots() -> Result<Vec<CertificateDer<'static>>, Error> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Config(
            format!(
                "the platform's root certificates could not be loaded ({}); set SSL_CERT_FILE \
                 to a PEM bundle, or use the `webpki-roots` feature",
                if why.is_empty() { "none found" } else { &why }
            )
            .into(),
        ));
    }
    Ok(found.certs)
}

/// Opens a `CONNECT` tunnel over a blocking stream to the proxy: writes the request
/// and reads the answer, the stream's own timeouts bounding each step (`io_error`
/// sorts an I/O failure, e.g. a timeout into the connect limit).
///
/// # Errors
/// What [`Tunnel::handle_input`](smallest_core::proxy::Tunnel::handle_input) reports,
/// the proxy closing early, or `io_error` of a failed read or write.
pub fn open_tunnel<S: io::Read + io::Write>(
    stream: &mut S,
    mut tunnel: smallest_core::proxy::Tunnel,
    io_error: impl Fn(io::Error) -> Error,
) -> Result<(), Error> {
    use smallest_core::proxy::TunnelState;
    stream.write_all(tunnel.request()).map_err(&io_error)?;
    stream.flush().map_err(&io_error)?;
    let mut buf = [0u8; 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(tunnel.handle_eof()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e)),
        };
        if tunnel.handle_input(&buf[..n])? == TunnelState::Open {
            return Ok(());
        }
    }
}

/// The WebSocket configuration of a live connection: the write buffer bounded at
/// `max_write_buffer` bytes, so a server that floods pings and never reads cannot grow
/// the client's memory (tungstenite's default is unbounded).
pub fn ws_config(max_write_buffer: usize) -> WebSocketConfig {
    // tungstenite requires the maximum to be larger than the batching size.
    let batch = (max_write_buffer / 8).min(128 << 10);
    WebSocketConfig::default()
        .write_buffer_size(batch)
        .max_write_buffer_size(max_write_buffer.max(batch + 1))
}

/// A core frame as a tungstenite message.
pub fn to_tungstenite(message: WsMessage) -> Message {
    match message {
        WsMessage::Text(text) => Message::Text(text.into()),
        WsMessage::Binary(data) => Message::Binary(data),
        WsMessage::Ping(data) => Message::Ping(data),
        WsMessage::Pong(data) => Message::Pong(data),
        WsMessage::Close(frame) => Message::Close(frame.map(|f| WsCloseFrame {
            code: f.code.into(),
            reason: f.reason.into(),
        })),
    }
}

/// A tungstenite message as a core frame (`None` for a raw frame, which reading never
/// yields).
pub fn from_tungstenite(message: Message) -> Option<WsMessage> {
    Some(match message {
        Message::Text(text) => WsMessage::Text(text.as_str().to_owned()),
        Message::Binary(data) => WsMessage::Binary(data),
        Message::Ping(data) => WsMessage::Ping(data),
        Message::Pong(data) => WsMessage::Pong(data),
        Message::Close(frame) => {
            WsMessage::Close(frame.map(|f| CloseFrame::new(u16::from(f.code), f.reason.as_str())))
        }
        Message::Frame(_) => return None,
    })
}

/// What a tungstenite read error means for a live session.
#[derive(Debug)]
pub enum ReadError {
    /// The connection ended without a close frame (EOF, reset): the session's `Closed`
    /// event without a code, not an error.
    Dropped,
    /// Nothing arrived within the socket's read timeout: not a failure.
    WouldBlock,
    /// The connection failed.
    Failed(Error),
}

/// Sorts a tungstenite read error.
pub fn read_error(e: WsError) -> ReadError {
    match e {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ReadError::Dropped,
        WsError::Io(io) if is_would_block(&io) => ReadError::WouldBlock,
        WsError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            ReadError::Dropped
        }
        other => ReadError::Failed(Error::transport(true, other)),
    }
}

/// A write (or flush) failure: a stalled write past `idle` is the idle limit; a full
/// write buffer means the server stopped reading.
pub fn write_error(e: WsError, idle: std::time::Duration) -> Error {
    match e {
        WsError::Io(io) if is_would_block(&io) => Error::Timeout {
            phase: TimeoutPhase::Idle,
            limit: idle,
        },
        WsError::WriteBufferFull(_) => Error::Timeout {
            phase: TimeoutPhase::Idle,
            limit: idle,
        },
        other => Error::transport(true, other),
    }
}

/// A socket time limit ran out (`WouldBlock` on Unix, `TimedOut` on Windows).
pub fn is_would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A refused or broken upgrade as the SDK's error: a non-101 answer is judged by the
/// request's [`Upgrade`] (from the core's handshake), which parses it like any HTTP
/// error (401 → `is_auth`, 400 → the server's message …). `Err(io)` with a timeout is
/// the connect limit (which covers the whole upgrade).
pub fn upgrade_error(e: WsError, upgrade: &Upgrade, connect: Option<std::time::Duration>) -> Error {
    match e {
        WsError::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            match upgrade.check(response.status(), response.headers(), body) {
                Err(e) => e,
                Ok(()) => Error::Decode {
                    what: UPGRADE,
                    message: "the server accepted the upgrade, but the handshake failed".into(),
                },
            }
        }
        WsError::Protocol(e) => Error::Decode {
            what: UPGRADE,
            message: e.to_string(),
        },
        WsError::Io(io) if is_would_block(&io) => match connect {
            Some(limit) => Error::Timeout {
                phase: TimeoutPhase::Connect,
                limit,
            },
            None => Error::transport(true, io),
        },
        other => Error::transport(true, other),
    }
}

/// Where a WebSocket upgrade goes: the host (brackets of an IPv6 literal removed), the
/// port and whether TLS is due (`wss`). Refuses to go on, with an error naming the fix,
/// while a dependency would log the key (see [`refuse_if_trace_would_log_the_key`]).
pub fn ws_target(request: &http::Request<()>) -> Result<(String, u16, bool), Error> {
    refuse_if_trace_would_log_the_key(request.headers(), &[TUNGSTENITE_DUMP])?;
    let target = smallest_core::proxy::Target::of(request.uri())?;
    Ok((target.host, target.port, target.tls))
}

/// How long the wait for the upgrade's answer may last once the connection is open,
/// `elapsed` into the connect limit: what is left of it, or the response limit when
/// that is shorter. `Err` is the timeout to report when it runs out (with the
/// configured limit, not what was left of it); `None` waits without a limit.
pub fn upgrade_wait(
    limits: &smallest_core::TimeLimits,
    elapsed: std::time::Duration,
) -> (Option<std::time::Duration>, Error) {
    let left = limits.connect.map(|l| l.saturating_sub(elapsed));
    let (wait, phase, limit) = match (left, limits.connect, limits.response_head) {
        (Some(c), _, Some(r)) if r < c => (Some(r), TimeoutPhase::ResponseHead, Some(r)),
        (Some(c), l, _) => (Some(c), TimeoutPhase::Connect, l),
        (None, _, r) => (r, TimeoutPhase::ResponseHead, r),
    };
    let error = match limit {
        Some(limit) => Error::Timeout { phase, limit },
        None => Error::transport(true, "the WebSocket upgrade was interrupted"),
    };
    (wait, error)
}

/// The first steps of a file upload, the same on every transport: the file's length
/// from its metadata, and the core's call that sends it (a file can be reopened, so the
/// call retries). An unreadable file is the error that names it.
pub fn file_upload(
    path: &std::path::Path,
    request: &smallest_core::stt::TranscribeRequest,
    config: &smallest_core::Config,
    options: &smallest_core::ClientOptions,
) -> Result<
    (
        smallest_core::call::Call<smallest_core::call::UploadOp>,
        u64,
    ),
    Error,
> {
    let len = std::fs::metadata(path)
        .map_err(|e| smallest_core::call::file_error(path, e))?
        .len();
    let call =
        smallest_core::call::UploadOp::file_call(request, path, len, config, options, seed());
    Ok((call, len))
}

/// Opens the file of a [`file_upload`] for one attempt.
pub fn open_upload(path: &std::path::Path) -> Result<std::fs::File, Error> {
    std::fs::File::open(path).map_err(|e| smallest_core::call::file_error(path, e))
}

/// 64 random bits from the operating system (for retry jitter seeds and multipart
/// boundaries; nonces, not secrets). If the OS source fails, the clock's nanoseconds
/// mixed with a counter stand in: jitter never needs to be unguessable.
pub fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos
        ^ COUNTER
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .rotate_left(29)
}

/// 16 fresh bytes for `Sec-WebSocket-Key` or a multipart boundary.
pub fn nonce16() -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&seed().to_le_bytes());
    key[8..].copy_from_slice(&seed().to_le_bytes());
    key
}

/// The log target under which ureq-proto hex-dumps every request head it writes.
pub const UREQ_PROTO_DUMP: &str = "ureq_proto::util";

/// The log target under which tungstenite dumps the raw WebSocket upgrade request.
pub const TUNGSTENITE_DUMP: &str = "tungstenite::handshake::client";

/// Refuses to send a request that carries the key while the process logger would
/// record one of `targets`' TRACE dumps of the raw request: that dump would put the API
/// key into the log. A library cannot filter a dependency's log, so turning a silent
/// leak into an error that names the fix is the only safe choice; every other target
/// may log at TRACE freely. (hyper, h2 and rustls never log header values.)
pub fn refuse_if_trace_would_log_the_key(
    headers: &http::HeaderMap,
    targets: &[&str],
) -> Result<(), Error> {
    if !headers.contains_key(http::header::AUTHORIZATION) {
        return Ok(());
    }
    for &target in targets {
        if log::log_enabled!(target: target, log::Level::Trace) {
            return Err(Error::Config(
                format!(
                    "refusing to send the API key: the logger records TRACE output of `{target}`, \
                     which dumps raw request bytes including the Authorization header; lower \
                     that target to DEBUG (e.g. RUST_LOG=trace,ureq_proto=debug,tungstenite=debug)"
                )
                .into(),
            ));
        }
    }
    Ok(())
}

/// A failed host name lookup, as std reports it: a custom error on Unix, a
/// `WSAHOST_NOT_FOUND`-family code on Windows. Neither has a stable `ErrorKind`.
fn is_dns_failure(e: &io::Error) -> bool {
    if cfg!(windows) && matches!(e.raw_os_error(), Some(11001..=11004)) {
        return true;
    }
    e.raw_os_error().is_none()
        && e.to_string()
            .starts_with("failed to lookup address information")
}

/// An I/O error that can only happen while connecting, so nothing of the request was
/// sent: refused or unreachable addresses, a failed lookup, and TLS handshake failures
/// (a client completes the handshake before it writes the request).
pub fn never_sent(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionRefused
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::AddrNotAvailable
            | K::AddrInUse
            | K::InvalidInput
            | K::PermissionDenied
    ) || is_dns_failure(e)
    {
        return true;
    }
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return false;
    };
    use rustls::AlertDescription as A;
    use rustls::Error as R;
    match tls {
        R::InvalidCertificate(_)
        | R::NoCertificatesPresented
        | R::UnsupportedNameType
        | R::PeerIncompatible(_)
        | R::InappropriateHandshakeMessage { .. }
        | R::HandshakeNotComplete
        | R::NoApplicationProtocol
        | R::InvalidCertRevocationList(_)
        | R::InvalidEncryptedClientHello(_) => true,
        R::AlertReceived(alert) => matches!(
            alert,
            A::HandshakeFailure
                | A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::ProtocolVersion
                | A::InsufficientSecurity
                | A::UnrecognisedName
                | A::NoApplicationProtocol
                | A::IllegalParameter
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn frames_translate_both_ways() {
        let frames = [
            WsMessage::Text("{\"a\":1}".into()),
            WsMessage::Binary(Bytes::from_static(&[1, 2, 3])),
            WsMessage::Ping(Bytes::from_static(b"p")),
            WsMessage::Pong(Bytes::new()),
            WsMessage::Close(None),
            WsMessage::Close(Some(CloseFrame::new(1008, "too many sessions"))),
        ];
        for frame in frames {
            assert_eq!(from_tungstenite(to_tungstenite(frame.clone())), Some(frame));
        }
    }

    #[test]
    fn a_connection_ending_without_close_is_not_an_error() {
        assert!(matches!(
            read_error(WsError::ConnectionClosed),
            ReadError::Dropped
        ));
        assert!(matches!(
            read_error(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            ReadError::Dropped
        ));
        assert!(matches!(
            read_error(WsError::Io(io::ErrorKind::UnexpectedEof.into())),
            ReadError::Dropped
        ));
        assert!(matches!(
            read_error(WsError::Io(io::ErrorKind::WouldBlock.into())),
            ReadError::WouldBlock
        ));
        assert!(matches!(
            read_error(WsError::Protocol(ProtocolError::ReceivedAfterClosing)),
            ReadError::Failed(_)
        ));
    }

    #[test]
    fn a_refused_upgrade_is_the_servers_error() {
        let config = smallest_core::Config::new(smallest_core::ApiKey::new("sk_test").unwrap());
        let (_, upgrade) =
            smallest_core::ws::handshake_request(&config, "/waves/v1/tts/live", [7u8; 16], false)
                .unwrap();
        let response = http::Response::builder()
            .status(401)
            .body(Some(br#"{"message":"Invalid API key"}"#.to_vec()))
            .unwrap();
        let e = upgrade_error(WsError::Http(Box::new(response)), &upgrade, None);
        assert!(e.is_auth(), "{e:?}");
        let e = upgrade_error(
            WsError::Protocol(ProtocolError::SecWebSocketAcceptKeyMismatch),
            &upgrade,
            None,
        );
        assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    }

    #[test]
    fn nonces_differ_and_roots_are_checked() {
        assert_ne!(nonce16(), nonce16());
        assert_ne!(seed(), seed());
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        assert!(tls_config(&[cert.cert.der().to_vec()]).is_ok());
        let err = tls_config(&[vec![0x30, 0x03, 0x01, 0x02]]).unwrap_err();
        assert!(err.to_string().contains("#1"), "{err}");
    }

    #[test]
    fn the_write_buffer_is_bounded() {
        let config = ws_config(1 << 20);
        assert_eq!(config.max_write_buffer_size, 1 << 20);
        assert!(config.write_buffer_size < config.max_write_buffer_size);
    }
}
