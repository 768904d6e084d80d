//! The blocking client against a real HTTP/1.1 server on loopback: a few lines of
//! `std::net` that record each request and answer with canned bytes (or stall, or
//! hang up), so every byte the client sends and receives crosses a real socket.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallest_blocking::{
    ApiKey, Client, ClientOptions, Config, Error, HttpSend, LegacyTranscribeRequest, OutputFormat,
    SttLanguage, TimeoutPhase, TranscribeRequest, TtsRequest, core::Health, send_with,
};

const KEY: &str = "sk_test_blocking_0123456789";

/// One request as the server read it off the socket.
#[derive(Debug)]
struct Recorded {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "header {name} sent twice: {self:?}");
        first
    }
}

/// What the server does with one connection after reading its request.
enum Reply {
    /// A whole response: status, extra headers and body, with `Content-Length` and
    /// `Connection: close`.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Says nothing for this long, then hangs up.
    Stall(Duration),
    /// A head announcing `announced` bytes, then `sent`, then silence for `then`, then
    /// a hang-up.
    Partial {
        announced: usize,
        sent: Vec<u8>,
        then: Duration,
    },
}

impl Reply {
    fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("content-type", content_type.to_owned())],
            body: body.into(),
        }
    }

    fn json(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// A loopback server that serves one connection per reply, in order, then stops.
struct TestServer {
    addr: SocketAddr,
    tls: bool,
    handle: JoinHandle<Vec<Recorded>>,
}

impl TestServer {
    fn start(replies: Vec<Reply>) -> TestServer {
        Self::start_inner(replies, None)
    }

    fn start_tls(replies: Vec<Reply>, tls: Arc<rustls::ServerConfig>) -> TestServer {
        Self::start_inner(replies, Some(tls))
    }

    fn start_inner(replies: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let is_tls = tls.is_some();
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let Some(tcp) = accept_within(&listener, Duration::from_secs(20)) else {
                    break;
                };
                tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                tcp.set_write_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let recorded = match &tls {
                    None => serve_one(tcp, reply),
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                        serve_one(rustls::StreamOwned::new(conn, tcp), reply)
                    }
                };
                seen.extend(recorded);
            }
            seen
        });
        TestServer {
            addr,
            tls: is_tls,
            handle,
        }
    }

    fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    fn config(&self) -> Config {
        Config::new(ApiKey::new(KEY).unwrap())
            .with_base_url(&self.base_url())
            .unwrap()
    }

    /// Waits for the server to serve every reply; returns the requests it read.
    fn finish(self) -> Vec<Recorded> {
        self.handle.join().unwrap()
    }
}

fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false).unwrap();
                return Some(tcp);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
}

/// Reads one request and answers it. `None` when the client gave up first (e.g. a
/// failed TLS handshake).
fn serve_one<S: Read + Write>(mut stream: S, reply: Reply) -> Option<Recorded> {
    let recorded = read_request(&mut stream).ok()?;
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                reason(status),
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            // The client may hang up early (a timeout test); that is not a server failure.
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body))
                .and_then(|()| stream.flush());
        }
        Reply::Stall(d) => thread::sleep(d),
        Reply::Partial {
            announced,
            sent,
            then,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ncontent-length: {announced}\r\n\r\n"
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&sent))
                .and_then(|()| stream.flush());
            thread::sleep(then);
        }
    }
    Some(recorded)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn read_request(stream: &mut impl Read) -> io::Result<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")),
        "the client should send a Content-Length: {headers:?}"
    );
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Recorded {
        request_line,
        headers,
        body,
    })
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn assert_common_headers(r: &Recorded) {
    let ua = r.header("user-agent").unwrap();
    assert!(ua.starts_with("smallest-rs/"), "{ua}");
    assert_eq!(r.header("x-source"), Some("smallest-rs"));
}

#[test]
fn synthesize_sends_the_request_the_core_built_and_returns_the_audio() {
    let wav = smallest_core_wav(24000, 480);
    let server = TestServer::start(vec![Reply::Full {
        status: 200,
        headers: vec![
            ("content-type", "audio/wav".to_owned()),
            ("x-request-id", "req-123".to_owned()),
        ],
        body: wav.clone(),
    }]);
    let config = server.config();
    let request = TtsRequest::new("Hello from Smallest AI.", "meher")
        .sample_rate(24000)
        .output_format(OutputFormat::Wav)
        .request_id("my-req.1");
    let expected = smallest_blocking::core::prepare(&request, &config).unwrap();
    let client = Client::new(config).unwrap();

    let audio = client.synthesize(&request).unwrap();
    assert_eq!(audio.bytes().as_ref(), wav.as_slice());
    assert_eq!(audio.format(), OutputFormat::Wav);
    assert_eq!(audio.sample_rate(), 24000);
    assert_eq!(audio.info().request_id.as_deref(), Some("req-123"));

    let seen = server.finish();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.request_line, "POST /waves/v1/tts HTTP/1.1");
    assert_common_headers(r);
    assert_eq!(r.header("authorization"), Some(&*format!("Bearer {KEY}")));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("audio/wav"));
    assert_eq!(
        r.header("content-length"),
        Some(&*expected.body().len().to_string())
    );
    assert_eq!(r.body, expected.body().as_ref());
    let host = r.header("host").unwrap();
    assert_eq!(host, server_host(&client));
}

#[test]
fn health_is_a_get_without_a_body_or_a_key() {
    let server = TestServer::start(vec![
        Reply::json(200, r#"{"status":"ok","mongo":{"status":"connected"}}"#),
        Reply::json(
            503,
            r#"{"status":"error","mongo":{"status":"disconnected"}}"#,
        ),
    ]);
    let client = Client::new(server.config()).unwrap();
    let healthy = client.health().unwrap();
    assert!(healthy.healthy);
    assert_eq!(healthy.services["mongo"], "connected");
    let unhealthy = client.health().unwrap();
    assert!(!unhealthy.healthy);

    let seen = server.finish();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(r.request_line, "GET /waves/v1/health HTTP/1.1");
        assert_common_headers(r);
        assert_eq!(r.header("authorization"), None);
        assert!(r.body.is_empty());
        assert!(r.header("content-length").is_none_or(|v| v == "0"), "{r:?}");
    }
}

#[test]
fn transcribe_uploads_the_bytes_and_parses_the_transcription() {
    let server = TestServer::start(vec![
        Reply::json(
            200,
            r#"{"status":"success","transcription":"hello world","words":[{"word":"hello","start":0.0,"end":0.4}]}"#,
        ),
        Reply::json(200, r#"{"status":"success","transcription":"legacy text"}"#),
    ]);
    let config = server.config();
    let audio = smallest_core_wav(16000, 1600);
    let request = TranscribeRequest::from_bytes(audio.clone(), SttLanguage::En)
        .content_type("audio/wav")
        .word_timestamps(true);
    let expected = smallest_blocking::core::prepare(&request, &config).unwrap();
    let legacy =
        LegacyTranscribeRequest::from_url("https://example.com/call.wav").language(SttLanguage::En);
    let expected_legacy = smallest_blocking::core::prepare(&legacy, &config).unwrap();
    let client = Client::new(config).unwrap();

    let text = client.transcribe(&request).unwrap();
    assert_eq!(text.transcription, "hello world");
    assert_eq!(text.words.len(), 1);
    let text = client.transcribe_legacy(&legacy).unwrap();
    assert_eq!(text.transcription, "legacy text");

    let seen = server.finish();
    let r = &seen[0];
    assert_eq!(
        r.request_line,
        format!("POST {} HTTP/1.1", expected.uri().path_and_query().unwrap())
    );
    assert!(r.request_line.contains("language=en"), "{}", r.request_line);
    assert_common_headers(r);
    assert_eq!(r.header("authorization"), Some(&*format!("Bearer {KEY}")));
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.body, audio);

    let r = &seen[1];
    assert_eq!(
        r.request_line,
        format!(
            "POST {} HTTP/1.1",
            expected_legacy.uri().path_and_query().unwrap()
        )
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, expected_legacy.body().as_ref());
}

#[test]
fn a_401_json_body_becomes_an_auth_api_error_without_the_key() {
    let server = TestServer::start(vec![Reply::Full {
        status: 401,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("x-request-id", "req-401".to_owned()),
        ],
        body: br#"{"error":"Unauthorized","message":"Bearer token is missing or invalid."}"#
            .to_vec(),
    }]);
    let client = Client::new(server.config()).unwrap();
    let err = client
        .synthesize(&TtsRequest::new("Hello.", "meher"))
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    let api = err.api().unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.message(), "Bearer token is missing or invalid.");
    assert_eq!(api.request_id(), Some("req-401"));
    assert!(!err.is_retryable());
    for text in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(!text.contains(KEY), "{text}");
    }
    server.finish();
}

#[test]
fn audio_longer_than_ten_megabytes_is_returned_whole() {
    let len = 12 * 1024 * 1024 + 7;
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    // μ-law: 8-bit samples, so an odd length is whole audio (16-bit PCM must be even).
    let server = TestServer::start(vec![Reply::ok("audio/basic", body.clone())]);
    let client = Client::new(server.config()).unwrap();
    let audio = client
        .synthesize(&TtsRequest::new("A long story.", "meher").output_format(OutputFormat::Ulaw))
        .unwrap();
    assert_eq!(audio.bytes().len(), len);
    assert!(audio.bytes().as_ref() == body.as_slice());
    server.finish();
}

#[test]
fn a_refused_connection_was_never_sent() {
    let addr = closed_port();
    let config = Config::new(ApiKey::new(KEY).unwrap())
        .with_base_url(&format!("http://{addr}"))
        .unwrap();
    let client = Client::new(config).unwrap();
    let err = client
        .synthesize(&TtsRequest::new("Hello.", "meher"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                request_sent: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(!format!("{err:?}").contains(KEY));
}

#[test]
fn a_slow_response_head_is_a_response_timeout() {
    let server = TestServer::start(vec![Reply::Stall(Duration::from_secs(2))]);
    let limit = Duration::from_millis(200);
    let client = Client::builder(server.config())
        .response_timeout(limit)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .synthesize(&TtsRequest::new("Hello.", "meher"))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1800));
    match err {
        Error::Timeout { phase, limit: l } => {
            assert_eq!(phase, TimeoutPhase::ResponseHead);
            assert_eq!(l, limit);
        }
        other => panic!("{other:?}"),
    }
    // The request did reach the server before the limit ran out.
    assert_eq!(server.finish().len(), 1);
}

/// A head announcing 1000 bytes, 10 of them, then silence.
fn stalled_body() -> Reply {
    Reply::Partial {
        announced: 1000,
        sent: vec![1; 10],
        then: Duration::from_secs(2),
    }
}

#[test]
fn a_stalled_body_is_an_idle_timeout() {
    let server = TestServer::start(vec![stalled_body()]);
    let limit = Duration::from_millis(200);
    let client = Client::builder(server.config())
        .idle_timeout(limit)
        .build()
        .unwrap();
    let err = client
        .synthesize(&TtsRequest::new("Hello.", "meher"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { phase: TimeoutPhase::Idle, limit: l } if l == limit),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    server.finish();
}

#[test]
fn a_call_longer_than_the_total_limit_is_a_total_timeout() {
    let server = TestServer::start(vec![stalled_body()]);
    let limit = Duration::from_millis(300);
    let client = Client::builder(server.config())
        .total_timeout(limit)
        .build()
        .unwrap();
    let err = client
        .synthesize(&TtsRequest::new("Hello.", "meher"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { phase: TimeoutPhase::Total, limit: l } if l == limit),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    server.finish();
}

#[test]
fn a_body_cut_short_is_a_transport_error_after_sending() {
    let server = TestServer::start(vec![Reply::Partial {
        announced: 1000,
        sent: vec![1; 10],
        then: Duration::ZERO,
    }]);
    let client = Client::new(server.config()).unwrap();
    let err = client
        .synthesize(&TtsRequest::new("Hello.", "meher"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                request_sent: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    server.finish();
}

#[test]
fn redirects_are_reported_not_followed() {
    let server = TestServer::start(vec![Reply::Full {
        status: 307,
        headers: vec![("location", "http://127.0.0.1:9/elsewhere".to_owned())],
        body: Vec::new(),
    }]);
    let client = Client::new(server.config()).unwrap();
    let err = client
        .synthesize(&TtsRequest::new("Hello.", "meher"))
        .unwrap_err();
    assert_eq!(err.api().map(|e| e.status().as_u16()), Some(307), "{err:?}");
    assert_eq!(server.finish().len(), 1);
}

#[test]
fn an_extra_root_certificate_is_trusted_and_nothing_else_is() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let server = TestServer::start_tls(
        vec![
            Reply::json(200, r#"{"status":"ok"}"#),
            Reply::json(200, r#"{"status":"ok"}"#),
        ],
        Arc::new(tls),
    );

    let trusting = Client::builder(server.config())
        .add_root_certificate_der(cert.cert.der().to_vec())
        .build()
        .unwrap();
    assert!(trusting.health().unwrap().healthy);

    // No retries: the one-connection test server is gone after the first attempt.
    let default_roots = Client::builder(server.config())
        .retry_policy(smallest_blocking::RetryPolicy::none())
        .build()
        .unwrap();
    let err = default_roots.health().unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(
        matches!(
            err,
            Error::Transport {
                request_sent: false,
                ..
            }
        ),
        "{err:?}"
    );
    let seen = server.finish();
    assert_eq!(seen.len(), 1, "only the trusting client got through");
    assert_eq!(seen[0].request_line, "GET /waves/v1/health HTTP/1.1");
}

#[test]
fn a_broken_root_certificate_is_refused_at_build() {
    let config = Config::new(ApiKey::new(KEY).unwrap());
    let err = Client::builder(config)
        .add_root_certificate_der(b"not a certificate".to_vec())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[test]
fn clones_share_the_client_across_threads() {
    let replies = (0..4)
        .map(|_| Reply::json(200, r#"{"status":"ok"}"#))
        .collect();
    let server = TestServer::start(replies);
    let client = Client::new(server.config()).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || client.health().unwrap().healthy)
        })
        .collect();
    for worker in workers {
        assert!(worker.join().unwrap());
    }
    assert_eq!(server.finish().len(), 4);
}

#[test]
fn any_blocking_client_plugs_in_through_http_send() {
    let config = Config::new(ApiKey::new(KEY).unwrap());
    let plugged = |request: http::Request<Bytes>| -> Result<http::Response<Bytes>, Error> {
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "https://api.smallest.ai/waves/v1/tts");
        let auth = &request.headers()["authorization"];
        assert!(auth.is_sensitive());
        assert_eq!(auth.as_bytes(), format!("Bearer {KEY}").as_bytes());
        Ok(http::Response::builder()
            .status(200)
            .header("content-type", "audio/pcm")
            .body(Bytes::from_static(&[0, 0, 1, 0]))
            .unwrap())
    };
    let audio = send_with(
        &plugged,
        &config,
        &ClientOptions::default(),
        &TtsRequest::new("Hi.", "meher"),
    )
    .unwrap();
    assert_eq!(audio.bytes().len(), 4);

    // As a trait object too; validation runs before the client is called.
    let dynamic: &dyn HttpSend = &plugged;
    let err = send_with(
        dynamic,
        &config,
        &ClientOptions::default(),
        &TtsRequest::new("", "meher"),
    )
    .unwrap_err();
    assert_eq!(err.validation().map(|v| v.field()), Some("text"));

    // The transport's own client is an HttpSend as well.
    let server = TestServer::start(vec![Reply::json(200, r#"{"status":"ok"}"#)]);
    let client = Client::new(server.config()).unwrap();
    let status = send_with(&client, client.config(), client.options(), &Health).unwrap();
    assert!(status.healthy);
    server.finish();
}

/// A small valid WAV file: 16-bit mono silence.
fn smallest_core_wav(sample_rate: u32, samples: u32) -> Vec<u8> {
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(44 + data_len as usize, 0);
    out
}

fn server_host(client: &Client) -> String {
    client
        .config()
        .base_url()
        .trim_start_matches("http://")
        .to_owned()
}
