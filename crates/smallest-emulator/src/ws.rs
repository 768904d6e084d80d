//! WebSocket glue shared by the live routes (`/waves/v1/tts/live`, `/waves/v1/stt/live` and the
//! legacy `/waves/v1/pulse/get_text`): recognising an upgrade request, answering `101 Switching
//! Protocols` with the computed `Sec-WebSocket-Accept`, running a session on the connection hyper
//! hands over, per-key connection counters, and the shutdown signal that closes open sessions.
//!
//! Only the HTTP/1.1 upgrade is served (what every client uses); TLS, when on, was already
//! terminated by the server's acceptor, so sessions see plain bytes either way.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::body::{Body, full};
use crate::errors;
use crate::faults::{AppliedFault, ConnControl, Fault, sendable_close_code};

/// The raw WebSocket of an upgraded connection.
type RawSocket = WebSocketStream<TokioIo<Upgraded>>;

/// A server-side WebSocket on an upgraded connection: the session reads messages from it
/// ([`Stream`]) and writes messages to it ([`Sink`]). An injected [`Fault::WsDrop`] or
/// [`Fault::WsClose`] strikes here, when the session asks for the message after the ones it was
/// allowed to handle.
pub(crate) struct Socket {
    inner: RawSocket,
    strike: Option<Strike>,
    /// Text and binary messages handed to the session so far.
    handled: u32,
    closing: Option<Closing>,
    /// Set once a fault ended the stream.
    dead: bool,
}

/// A fault that strikes after a number of handled messages.
enum Strike {
    Drop {
        after: u32,
        conn: Option<Arc<ConnControl>>,
    },
    Close {
        after: u32,
        code: u16,
    },
}

/// Progress of a fault's close handshake.
enum Closing {
    Send(u16),
    Flush,
    Drain(Pin<Box<Sleep>>),
}

impl Socket {
    fn new(inner: RawSocket, fault: Option<&Fault>, conn: Option<Arc<ConnControl>>) -> Self {
        let strike = match fault {
            Some(&Fault::WsDrop { after_messages, .. }) if after_messages != u32::MAX => {
                Some(Strike::Drop {
                    after: after_messages,
                    conn,
                })
            }
            Some(&Fault::WsClose {
                code,
                after_messages,
            }) => Some(Strike::Close {
                after: after_messages,
                code: if sendable_close_code(code) {
                    code
                } else {
                    1011
                },
            }),
            _ => None,
        };
        Self {
            inner,
            strike,
            handled: 0,
            closing: None,
            dead: false,
        }
    }

    /// Sends the fault's close frame, then waits (at most [`CLOSE_WAIT`]) for the client's.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        loop {
            let Some(state) = self.closing.as_mut() else {
                return Poll::Ready(None);
            };
            match state {
                Closing::Send(code) => {
                    let code = *code;
                    let sent = ready!(Pin::new(&mut self.inner).poll_ready(cx)).and_then(|()| {
                        Pin::new(&mut self.inner).start_send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: "emulated fault".into(),
                        })))
                    });
                    self.closing = sent.is_ok().then_some(Closing::Flush);
                }
                Closing::Flush => {
                    let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
                    self.closing = flushed
                        .is_ok()
                        .then(|| Closing::Drain(Box::pin(tokio::time::sleep(CLOSE_WAIT))));
                }
                Closing::Drain(sleep) => {
                    if sleep.as_mut().poll(cx).is_ready() {
                        self.closing = None;
                        continue;
                    }
                    match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                        Some(Ok(_)) => {}
                        None | Some(Err(_)) => self.closing = None,
                    }
                }
            }
        }
    }
}

impl Stream for Socket {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            return this.poll_closing(cx);
        }
        if this.dead {
            return Poll::Ready(None);
        }
        match this.strike.take() {
            Some(Strike::Drop { after, conn }) if this.handled >= after => {
                this.dead = true;
                if let Some(conn) = conn {
                    conn.kill();
                }
                let reset = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by a fault",
                );
                return Poll::Ready(Some(Err(WsError::Io(reset))));
            }
            Some(Strike::Close { after, code }) if this.handled >= after => {
                this.dead = true;
                this.closing = Some(Closing::Send(code));
                return this.poll_closing(cx);
            }
            other => this.strike = other,
        }
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        if let Some(Ok(Message::Text(_) | Message::Binary(_))) = &item {
            this.handled = this.handled.saturating_add(1);
        }
        Poll::Ready(item)
    }
}

impl Sink<Message> for Socket {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().inner).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        Pin::new(&mut self.get_mut().inner).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// How long a closing session waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The WebSocket options of the builder, frozen at start.
#[derive(Debug, Clone)]
pub(crate) struct WsSettings {
    /// Wait before `complete` on the TTS socket when the client did not send
    /// `complete_backoff_ms` (the real service: 4 s; the emulator's default: none).
    pub(crate) complete_backoff: Duration,
    /// Whether the TTS socket is closed after each `complete` (API.md §11 #11).
    pub(crate) close_after_complete: bool,
    /// Live STT sessions allowed per key; the next one is accepted, then closed with `1008`.
    pub(crate) stt_limit: usize,
    /// Whether TTS frames of a continuation context carry its `context_id`.
    pub(crate) echo_context_id: bool,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            complete_backoff: Duration::ZERO,
            close_after_complete: false,
            stt_limit: 100,
            echo_context_id: true,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Open connections per key, of one kind.
#[derive(Default, Clone)]
struct Counter(Arc<Mutex<HashMap<String, usize>>>);

impl Counter {
    fn try_open(&self, key: &str, limit: usize) -> Option<Lease> {
        let mut open = lock(&self.0);
        let count = open.entry(key.to_owned()).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                open.remove(key);
            }
            return None;
        }
        *count += 1;
        Some(Lease {
            counter: self.clone(),
            key: key.to_owned(),
        })
    }
}

/// One open connection of a key; dropping it frees its place, however the session ended.
pub(crate) struct Lease {
    counter: Counter,
    key: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut open = lock(&self.counter.0);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Live WebSocket sessions of one emulator: per-key counts and the shutdown signal.
pub(crate) struct Hub {
    /// `true` once the server stops. Every session holds a receiver, so the sender also tells
    /// when the last session is gone.
    shutdown: watch::Sender<bool>,
    tts: Counter,
    stt: Counter,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            shutdown: watch::Sender::new(false),
            tts: Counter::default(),
            stt: Counter::default(),
        }
    }
}

impl Hub {
    /// Takes a place among the key's TTS sockets, if fewer than `limit` are open.
    pub(crate) fn try_open_tts(&self, key: &str, limit: usize) -> Option<Lease> {
        self.tts.try_open(key, limit)
    }

    /// Takes a place among the key's live STT sessions, if fewer than `limit` are open.
    pub(crate) fn try_open_stt(&self, key: &str, limit: usize) -> Option<Lease> {
        self.stt.try_open(key, limit)
    }

    /// A receiver that turns `true` when the server shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every open session to close (`1001 Going Away`).
    pub(crate) fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once every session has ended.
    pub(crate) async fn closed(&self) {
        self.shutdown.closed().await;
    }
}

/// Whether any comma-separated value of header `name` is `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether the request asks for a WebSocket: `GET` with `Upgrade: websocket`.
pub(crate) fn is_upgrade(parts: &Parts) -> bool {
    parts.method == Method::GET && has_token(&parts.headers, UPGRADE, "websocket")
}

fn bad_handshake(status: StatusCode, message: &str) -> Response<Body> {
    let error = status.canonical_reason().unwrap_or("Bad Request");
    errors::json(status, &json!({ "error": error, "message": message }))
}

/// `426` for a plain request to a WebSocket-only path.
pub(crate) fn upgrade_required() -> Response<Body> {
    let mut resp = bad_handshake(
        StatusCode::UPGRADE_REQUIRED,
        "This endpoint only accepts WebSocket connections: send a GET with `Connection: Upgrade` \
         and `Upgrade: websocket` over HTTP/1.1.",
    );
    resp.headers_mut()
        .insert(UPGRADE, HeaderValue::from_static("websocket"));
    resp
}

/// A checked upgrade request, ready to be accepted.
pub(crate) struct Handshake {
    accept_key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// A live-session fault chosen for this upgrade.
    fault: Option<Fault>,
    conn: Option<Arc<ConnControl>>,
}

impl Handshake {
    /// Checks the RFC 6455 handshake headers of an upgrade request.
    pub(crate) fn check(parts: &Parts) -> Result<Self, Box<Response<Body>>> {
        if !has_token(&parts.headers, CONNECTION, "upgrade") {
            return Err(Box::new(bad_handshake(
                StatusCode::BAD_REQUEST,
                "A WebSocket handshake needs `Connection: Upgrade`.",
            )));
        }
        let version_ok = parts
            .headers
            .get(SEC_WEBSOCKET_VERSION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "13");
        if !version_ok {
            let mut resp = bad_handshake(
                StatusCode::UPGRADE_REQUIRED,
                "Unsupported WebSocket version: send `Sec-WebSocket-Version: 13`.",
            );
            resp.headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return Err(Box::new(resp));
        }
        let key = parts
            .headers
            .get(SEC_WEBSOCKET_KEY)
            .map(|k| k.as_bytes())
            .filter(|k| !k.is_empty() && k.len() <= 64);
        let Some(key) = key else {
            return Err(Box::new(bad_handshake(
                StatusCode::BAD_REQUEST,
                "A WebSocket handshake needs a `Sec-WebSocket-Key`.",
            )));
        };
        let accept_key = HeaderValue::from_str(&derive_accept_key(key)).map_err(|_| {
            Box::new(bad_handshake(
                StatusCode::BAD_REQUEST,
                "Invalid `Sec-WebSocket-Key`.",
            ))
        })?;
        // Present on HTTP/1.1 connections served with upgrades; absent on HTTP/2.
        let Some(on_upgrade) = parts.extensions.get::<OnUpgrade>().cloned() else {
            return Err(Box::new(upgrade_required()));
        };
        let fault = parts
            .extensions
            .get::<AppliedFault>()
            .map(|f| f.0.clone())
            .filter(Fault::is_ws);
        Ok(Self {
            accept_key,
            on_upgrade,
            fault,
            conn: parts.extensions.get::<Arc<ConnControl>>().cloned(),
        })
    }

    /// Answers `101 Switching Protocols` and runs `session` on the WebSocket once hyper has handed
    /// the connection over. Whatever `session` captures (leases included) lives until it ends.
    ///
    /// `hub` counts the session as open from this moment, before the client sees the 101: a
    /// shutdown that comes between the 101 and the session's start still waits for the session
    /// (which then closes with `1001` at once) instead of cutting the connection without a close.
    pub(crate) fn accept<F, Fut>(
        self,
        hub: &Hub,
        config: WebSocketConfig,
        session: F,
    ) -> Response<Body>
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        let mut open = hub.shutdown_signal();
        let fault = self.fault;
        let conn = self.conn;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut io = TokioIo::new(upgraded);
            if let Some(Fault::WsStall) = fault {
                // Nothing is read as WebSocket frames nor written; reading the raw bytes only
                // tells when the client goes away. The session (and its leases) lives on unused.
                let _session = session;
                let mut sink = vec![0u8; 4096];
                loop {
                    tokio::select! {
                        n = io.read(&mut sink) => match n {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        },
                        () = shut_down(&mut open) => return,
                    }
                }
            }
            let drop_at = match fault {
                Some(Fault::WsDrop {
                    after_ms: Some(ms), ..
                }) => Some(tokio::time::Instant::now() + Duration::from_millis(ms)),
                _ => None,
            };
            let raw = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            let socket = Socket::new(raw, fault.as_ref(), conn.clone());
            let killed = async {
                match &conn {
                    Some(conn) => conn.killed().await,
                    None => std::future::pending().await,
                }
            };
            // Kills before it resolves: `select!` drops the session (and closes its socket) before
            // running a branch's handler.
            let timer = async {
                match (drop_at, &conn) {
                    (Some(at), Some(conn)) => {
                        tokio::time::sleep_until(at).await;
                        conn.kill();
                    }
                    _ => std::future::pending().await,
                }
            };
            // A reset (by a fault) drops the session, its socket and with it the connection,
            // which closes with a TCP reset (`crate::faults::KillableTcp`).
            tokio::select! {
                () = session(socket) => {}
                () = killed => {}
                () = timer => {}
            }
            drop(open);
        });
        let mut resp = Response::new(full(bytes::Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = resp.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(SEC_WEBSOCKET_ACCEPT, self.accept_key);
        resp
    }
}

/// Limits of one socket's incoming messages.
pub(crate) fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Sends `value` as a JSON text frame. `Err` means the connection is gone.
pub(crate) async fn send_json<T: Serialize + ?Sized>(
    socket: &mut Socket,
    value: &T,
) -> Result<(), ()> {
    let text = serde_json::to_string(value).map_err(|_| ())?;
    socket.send(Message::text(text)).await.map_err(|_| ())
}

/// Sends a close frame and waits (briefly) for the client's, reading and dropping anything else.
pub(crate) async fn close(socket: &mut Socket, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

/// Waits until `signal` reads `true` (or its sender is gone).
pub(crate) async fn shut_down(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}
