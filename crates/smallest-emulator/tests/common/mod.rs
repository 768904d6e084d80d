//! The WebSocket client helpers of the live-route tests (`ws.rs`, `voice.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use smallest_emulator::RunningEmulator;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Runs a test body under a deadline.
pub(crate) async fn bounded<F: Future<Output = ()>>(secs: u64, body: F) {
    tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .expect("the test took too long");
}

/// `ws://` or `wss://` (when the emulator serves TLS) to `path`.
pub(crate) fn url(emu: &RunningEmulator, path: &str) -> String {
    let scheme = if emu.ca_certificate_der().is_some() {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{}{path}", emu.addr())
}

/// Opens a WebSocket to `path` with `key` as the bearer token (none: no header),
/// trusting the emulator's CA when it serves TLS.
pub(crate) async fn try_connect(
    emu: &RunningEmulator,
    path: &str,
    key: Option<&str>,
) -> Result<Ws, WsError> {
    let mut request = url(emu, path).into_client_request()?;
    if let Some(key) = key {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
    }
    let connector = emu.ca_certificate_der().map(|der| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der.into()).expect("CA certificate");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Connector::Rustls(Arc::new(config))
    });
    let (ws, response) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await?;
    assert_eq!(response.status(), 101);
    Ok(ws)
}

pub(crate) async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// The next text frame as JSON within `wait` (control frames skipped); `None` when none
/// came. Panics on a close or a binary frame.
pub(crate) async fn next_within(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match message.expect("the socket ended").expect("socket error") {
            Message::Text(text) => {
                return Some(serde_json::from_str(text.as_str()).expect("JSON frame"));
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            Message::Binary(_) => panic!("the server sent a binary frame"),
            _ => {}
        }
    }
}

/// The next text frame as JSON, within 10 s.
pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    next_within(ws, Duration::from_secs(10))
        .await
        .expect("no frame within 10 s")
}
