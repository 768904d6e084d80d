//! A bare HTTP/1.1 client on one fresh TCP connection per request (hyper's `client::conn`), so tests
//! see exactly what the emulator does to a connection: head timing, each body frame as it arrives,
//! and connection errors.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const KEY: &str = "sk_test_key_0123456789";

/// Every test's bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one request on a new connection; the error is the connection's (or the handshake's).
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Response<Incoming>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(body.into()))
        .map_err(|e| format!("request: {e}"))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("response: {e}"))
}

/// A JSON POST with the test key.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &Value,
) -> Result<Response<Incoming>, String> {
    let auth = format!("Bearer {KEY}");
    send(
        addr,
        Method::POST,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads the whole response; panics on connection errors.
pub async fn reply(resp: Result<Response<Incoming>, String>) -> Reply {
    let resp = resp.unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("body: {e}"))
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// Body frames with their arrival times, and the error that ended the body, if any.
pub struct Frames {
    pub frames: Vec<(Instant, Bytes)>,
    pub error: Option<String>,
}

impl Frames {
    pub fn bytes(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|(_, b)| b.to_vec()).collect()
    }

    pub fn len(&self) -> usize {
        self.frames.iter().map(|(_, b)| b.len()).sum()
    }
}

pub async fn frames(resp: Response<Incoming>) -> Frames {
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    let error = loop {
        match body.frame().await {
            None => break None,
            Some(Err(e)) => break Some(e.to_string()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    frames.push((Instant::now(), data));
                }
            }
        }
    };
    Frames { frames, error }
}

/// Parses an SSE body strictly per API.md §3.4: the decoded audio of each `event: audio` frame, in
/// order, and whether the body ended with the `done` frame. Panics on any deviation.
pub fn parse_sse(body: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let text = std::str::from_utf8(body).unwrap_or_else(|e| panic!("SSE is not UTF-8: {e}"));
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "SSE must end with a blank line"
    );
    let mut events: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(events.pop(), Some(""), "text after the last blank line");
    let mut chunks = Vec::new();
    let mut done = false;
    for event in events {
        assert!(!done, "an event after the done frame: {event:?}");
        if event == r#"data: {"status": "200", "done": true}"# {
            done = true;
            continue;
        }
        let b64 = event
            .strip_prefix("event: audio\ndata: {\"audio\": \"")
            .and_then(|rest| rest.strip_suffix(r#"", "done": false, "status": "206"}"#))
            .unwrap_or_else(|| panic!("not an audio event: {event:?}"));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|e| panic!("bad base64 in {event:?}: {e}"));
        chunks.push(raw);
    }
    (chunks, done)
}

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("test timed out after {TEST_TIMEOUT:?}"));
}
