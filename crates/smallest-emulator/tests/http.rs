//! The emulator over real loopback sockets, driven by a raw hyper client (plain HTTP, h2c and TLS).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use smallest_emulator::{Emulator, RunningEmulator, SAMPLE_AUDIO_TEXT, SAMPLE_AUDIO_URL, speech};

const KEY: &str = "sk_test_key_0123456789";

type BoxedBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

struct Reply {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
struct Http {
    base: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxedBody>,
}

impl Http {
    fn new(emulator: &RunningEmulator) -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match emulator.ca_certificate_der() {
            Some(der) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(der.into()).expect("CA certificate");
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
                builder
                    .with_tls_config(config)
                    .https_only()
                    .enable_http1()
                    .enable_http2()
                    .build()
            }
            None => {
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
                builder
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .build()
            }
        };
        Self {
            base: emulator.base_url(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn send_body(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: BoxedBody,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = self
            .client
            .request(req.body(body).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Reply {
            status,
            version,
            headers,
            body,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.send_body(method, path, headers, Full::new(body.into()).boxed_unsync())
            .await
    }

    async fn tts(&self, body: Value) -> Reply {
        let auth = format!("Bearer {KEY}");
        self.send(
            Method::POST,
            "/waves/v1/tts",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
    }

    async fn stt(&self, query: &str, content_type: &str, body: impl Into<Bytes>) -> Reply {
        let auth = format!("Bearer {KEY}");
        self.send(
            Method::POST,
            &format!("/waves/v1/stt/?{query}"),
            &[("authorization", &auth), ("content-type", content_type)],
            body,
        )
        .await
    }
}

async fn emulator() -> (RunningEmulator, Http) {
    let emu = Emulator::builder().key(KEY).start().await.expect("start");
    let http = Http::new(&emu);
    (emu, http)
}

#[tokio::test]
async fn health_needs_no_key_and_requests_are_recorded() {
    let (emu, http) = emulator().await;
    let r = http.send(Method::GET, "/waves/v1/health", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"status":"ok","mongo":{"status":"connected"},"redis":{"status":"connected"},"rabbitmq":{"status":"connected"}})
    );
    assert_eq!(r.header("x-request-id").map(str::len), Some(36));
    let log = emu.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
        ("GET", "/waves/v1/health", 200)
    );
    emu.shutdown_gracefully().await;
}

#[tokio::test]
async fn tts_wav_at_24k_has_a_correct_header_and_round_trips_through_stt() {
    let (emu, http) = emulator().await;
    let text = "Hello from the emulator, at 24 kHz.";
    let auth = format!("Bearer {KEY}");
    let r = http
        .send(
            Method::POST,
            "/waves/v1/tts",
            &[("authorization", &auth), ("x-expire-content", "true")],
            json!({"text": text, "voice_id": "magnus", "sample_rate": 24000, "output_format": "wav",
                   "session_id": "my-session.1", "language": "en"})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.header("x-external-session-id"), Some("my-session.1"));
    assert_eq!(r.header("x-external-request-id"), Some(""));
    assert_eq!(r.header("x-content-expiry"), Some("applied"));
    assert!(r.header("x-session-id").is_some_and(|s| s.len() == 36));
    let b = &r.body;
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(&b[8..16], b"WAVEfmt ");
    assert_eq!(
        (
            u16_at(20),
            u16_at(22),
            u32_at(24),
            u32_at(28),
            u16_at(32),
            u16_at(34)
        ),
        (1, 1, 24000, 48000, 2, 16)
    );
    assert_eq!(&b[36..40], b"data");
    assert_eq!(u32_at(40) as usize, b.len() - 44);
    assert_eq!(u32_at(4) as usize, b.len() - 8);
    assert_eq!(
        (b.len() - 44) / 2,
        speech::synthesized_len(text, 24000, 1.0)
    );

    let stt = http
        .stt(
            "model=pulse&language=en&word_timestamps=true&diarize=true",
            "audio/wav",
            r.body.clone(),
        )
        .await;
    assert_eq!(stt.status, StatusCode::OK);
    let v = stt.json();
    assert_eq!(v["status"], "success");
    assert_eq!(v["transcription"], text);
    assert_eq!(v["words"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["words"][0]["word"], "Hello");
    assert_eq!(v["words"][0]["speaker"], 0);
    assert_eq!(v["utterances"][0]["text"], text);
    assert_eq!(v["metadata"]["fileSize"], r.body.len());
    assert!(v.get("request_id").is_none() && v.get("language").is_none());
    // Without word_timestamps the arrays are empty; gender and emotions appear only when asked.
    let plain = http
        .stt(
            "model=pulse&language=en&gender_detection=true",
            "application/octet-stream",
            r.body.clone(),
        )
        .await
        .json();
    assert_eq!(plain["words"], json!([]));
    assert_eq!(plain["utterances"], json!([]));
    assert!(plain["gender"].is_string() && plain.get("emotions").is_none());

    // Pulse Pro: its own shape, no utterances.
    let pro = http
        .stt(
            "model=pulse-pro&language=en&word_timestamps=true",
            "application/octet-stream",
            r.body.clone(),
        )
        .await
        .json();
    assert_eq!(pro["transcription"], text);
    assert_eq!(pro["language"], "en");
    assert_eq!(pro["totalBytes"], r.body.len());
    assert!(pro.get("utterances").is_none());
    assert!(pro["words"][0].get("speaker").is_none());
    assert!(pro["metadata"]["num_chunks"].as_u64() == Some(1) && pro["request_id"].is_string());
    let pro_async = http
        .stt(
            "model=pulse-pro&language=en&webhook_url=http%3A%2F%2F127.0.0.1%3A9%2Fhook",
            "audio/wav",
            r.body.clone(),
        )
        .await
        .json();
    assert_eq!(pro_async["status"], "processing");
    emu.shutdown_gracefully().await;
}

#[tokio::test]
async fn tts_formats_and_round_trips() {
    let (_emu, http) = emulator().await;
    let text = "Every format.";
    for (format, rate) in [
        ("pcm", 16000),
        ("mp3", 24000),
        ("ulaw", 8000),
        ("alaw", 8000),
        ("mp3", 44100),
    ] {
        let r = http
            .tts(
                json!({"text": text, "voice_id": "meher", "model": "lightning_v3.1_pro",
                        "output_format": format, "sample_rate": rate, "speed": 1.5}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("audio/wav"), "{format}");
        let samples = speech::synthesized_len(text, rate, 1.5);
        match format {
            "pcm" => {
                assert_eq!(r.body.len(), samples * 2);
                let pcm: Vec<i16> = r
                    .body
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                assert_eq!(speech::transcribe_pcm(&pcm, rate), text);
            }
            "mp3" => {
                assert_eq!(r.body[0], 0xFF);
                assert_eq!(r.body[1] & 0xE6, 0xE2, "an MPEG Layer III frame sync");
                let back = http
                    .stt("model=pulse&language=en", "audio/mpeg", r.body.clone())
                    .await
                    .json();
                assert_eq!(back["transcription"], text, "mp3 at {rate}");
            }
            _ => assert_eq!(r.body.len(), samples),
        }
    }
    // Default: 44.1 kHz PCM.
    let r = http.tts(json!({"text": "x", "voice_id": "magnus"})).await;
    assert_eq!(r.body.len(), speech::synthesized_len("x", 44100, 1.0) * 2);
}

#[tokio::test]
async fn auth_failures_have_the_gateway_shapes() {
    let emu = Emulator::builder()
        .key(KEY)
        .forbidden_key("sk_no_access")
        .start()
        .await
        .expect("start");
    let http = Http::new(&emu);
    let body = json!({"text": "hi", "voice_id": "magnus"}).to_string();
    let none = http
        .send(Method::POST, "/waves/v1/tts", &[], body.clone())
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.json(),
        json!({"message": "Unauthorized: No tokens provided"})
    );
    let bad = http
        .send(
            Method::POST,
            "/waves/v1/tts",
            &[("authorization", "Bearer sk_wrong")],
            body.clone(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.json(), json!({"error": "unauthorized"}));
    let forbidden = http
        .send(
            Method::POST,
            "/waves/v1/tts",
            &[("authorization", "Bearer sk_no_access")],
            body.clone(),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(
        forbidden.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("lacks access"))
    );
    let stt = http
        .send(
            Method::POST,
            "/waves/v1/stt/?model=pulse&language=en",
            &[("authorization", "Bearer sk_no_access")],
            "x",
        )
        .await;
    assert_eq!(stt.status, StatusCode::FORBIDDEN);
    assert!(bad.header("x-request-id").is_some());

    // The log never holds a key.
    let log = emu.requests();
    assert_eq!(log.len(), 4);
    assert_eq!(log[1].header("authorization"), Some("Bearer <redacted>"));
    let dump = format!("{log:?} {emu:?} {:?}", Emulator::builder().key(KEY));
    assert!(
        !dump.contains("sk_wrong") && !dump.contains(KEY) && !dump.contains("sk_no_access"),
        "{dump}"
    );
}

#[tokio::test]
async fn any_token_is_accepted_when_no_key_is_configured() {
    let emu = Emulator::builder().start().await.expect("start");
    let http = Http::new(&emu);
    let ok = http
        .send(
            Method::GET,
            "/waves/v1/lightning-v3.1/get_voices",
            &[("authorization", "Bearer whatever")],
            "",
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(
        ok.json()["voices"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["voiceId"] == "magnus"))
    );
    let empty = http
        .send(
            Method::GET,
            "/waves/v1/lightning-v3.1/get_voices",
            &[("authorization", "Bearer ")],
            "",
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validation_errors_are_zod_issues() {
    let (_emu, http) = emulator().await;
    let r = http
        .tts(json!({"text": "hi", "voice_id": "magnus", "output_format": "mulaw"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        r.body,
        Bytes::from_static(br#"{"error":[{"received":"mulaw","code":"invalid_enum_value","options":["wav","ulaw","alaw","pcm","mp3"],"path":["output_format"],"message":"Invalid enum value. Expected 'wav' | 'ulaw' | 'alaw' | 'pcm' | 'mp3', received 'mulaw'"}]}"#)
    );
    let voice = http.tts(json!({"text": "hi", "voice_id": "nobody"})).await;
    assert_eq!(
        voice.json(),
        json!({"error": [{"code": "custom", "path": ["voice_id"], "message": "Invalid Voice ID"}]})
    );
    let auth = format!("Bearer {KEY}");
    let broken = http
        .send(
            Method::POST,
            "/waves/v1/tts",
            &[("authorization", &auth)],
            "{not json",
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.json()["error"], "InvalidRequest");
}

#[tokio::test]
async fn retired_unknown_and_wrong_method() {
    let (_emu, http) = emulator().await;
    let auth = format!("Bearer {KEY}");
    let h = [("authorization", auth.as_str())];
    for path in [
        "/waves/v1/lightning-v2/get_speech",
        "/waves/v1/lightning-large/stream",
        "/waves/v1/prof-voice-cloning/x",
    ] {
        let r = http.send(Method::POST, path, &h, "{}").await;
        assert_eq!(r.status, StatusCode::GONE, "{path}");
        assert_eq!(
            r.json(),
            json!({
                "status": "error",
                "error_code": "MODEL_DEPRECATED",
                "message": "This model is retired. Please migrate to lightning-v3.1 via /waves/v1/lightning-v3.1/get_speech.",
                "recommended_endpoint": "/waves/v1/lightning-v3.1/get_speech"
            })
        );
    }
    let r = http
        .send(
            Method::POST,
            "/waves/v1/lightning-v3.1/get_speech",
            &h,
            "{}",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "Not Found");
    let r = http.send(Method::GET, "/waves/v1/tts", &h, "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
}

/// A body that arrives in two chunks with no declared length.
struct Chunked(Vec<Bytes>);

impl hyper::body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
        }
    }
}

#[tokio::test]
async fn oversize_uploads() {
    let emu = Emulator::builder()
        .key(KEY)
        .max_upload_bytes(1000)
        .start()
        .await
        .expect("start");
    let http = Http::new(&emu);
    let big = vec![0u8; 2000];
    let r = http
        .stt(
            "model=pulse&language=en",
            "application/octet-stream",
            big.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json()["error"],
        "File size exceeds maximum limit of 1000 bytes."
    );
    assert!(r.json()["request_id"].is_string());
    // Without Content-Length: counted while reading.
    let auth = format!("Bearer {KEY}");
    let chunked = Chunked(vec![
        Bytes::from(vec![0u8; 600]),
        Bytes::from(vec![0u8; 600]),
    ]);
    let r = http
        .send_body(
            Method::POST,
            "/waves/v1/stt/?model=pulse&language=en",
            &[("authorization", &auth)],
            chunked.boxed_unsync(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let legacy = http
        .send(
            Method::POST,
            "/waves/v1/pulse/get_text",
            &[("authorization", &auth), ("content-type", "audio/wav")],
            big,
        )
        .await;
    assert_eq!(legacy.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        legacy.json(),
        json!({"errors": "Audio data too large", "status": "error", "message": "Error handling audio data"})
    );
    // The default limit reads 250MB.
    let (_emu2, http2) = emulator().await;
    let small = http2
        .stt(
            "model=pulse&language=en",
            "application/octet-stream",
            vec![0u8; 10],
        )
        .await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.json()["transcription"], "");
}

#[tokio::test]
async fn stt_query_validation() {
    let (_emu, http) = emulator().await;
    let r = http.stt("language=en", "audio/wav", "x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error"],
        "Missing required query param: model. Supported values: pulse | pulse-pro."
    );
    assert!(r.json()["request_id"].is_string());
    let r = http.stt("model=pulse", "audio/wav", "x").await;
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Missing required query param: language."))
    );
    let r = http
        .stt("model=whisper&language=en", "audio/wav", "x")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_tts_beyond_the_limit_gets_429() {
    let emu = Emulator::builder()
        .key(KEY)
        .key("sk_other")
        .tts_latency(Duration::from_millis(800))
        .start()
        .await
        .expect("start");
    let http = Http::new(&emu);
    let body = json!({"text": "slow", "voice_id": "magnus", "sample_rate": 8000});
    let first = tokio::spawn({
        let http = http.clone();
        let body = body.clone();
        async move { http.tts(body).await.status }
    });
    // Wait until the first request has arrived, then give it a moment to take its slot.
    for _ in 0..200 {
        if !emu.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = http.tts(body.clone()).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.json()["error"], "Too many concurrent requests");
    // Another key has its own slot.
    let other = http
        .send(
            Method::POST,
            "/waves/v1/tts",
            &[("authorization", "Bearer sk_other")],
            body.to_string(),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(first.await.expect("join"), StatusCode::OK);
    // The slot is free again.
    assert_eq!(http.tts(body).await.status, StatusCode::OK);
}

#[tokio::test]
async fn url_mode_resolves_fixtures_and_never_the_network() {
    let wav = {
        let pcm = speech::synthesize_pcm("from a fixture", 16000, 1.0);
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + pcm.len() as u32 * 2).to_le_bytes());
        v.extend_from_slice(
            b"WAVEfmt \x10\0\0\0\x01\0\x01\0\x80\x3e\0\0\0\x7d\0\0\x02\0\x10\0data",
        );
        v.extend_from_slice(&(pcm.len() as u32 * 2).to_le_bytes());
        pcm.iter()
            .for_each(|s| v.extend_from_slice(&s.to_le_bytes()));
        v
    };
    let emu = Emulator::builder()
        .key(KEY)
        .fixture("https://example.com/a.wav", wav.clone())
        .fixture("/files/b.wav", wav)
        .start()
        .await
        .expect("start");
    let http = Http::new(&emu);
    let url_body = |url: &str| json!({ "url": url }).to_string();
    let sample = http
        .stt(
            "model=pulse&language=en",
            "application/json",
            url_body(SAMPLE_AUDIO_URL),
        )
        .await;
    assert_eq!(sample.status, StatusCode::OK);
    assert_eq!(sample.json()["transcription"], SAMPLE_AUDIO_TEXT);
    let fixture = http
        .stt(
            "model=pulse&language=en",
            "application/json",
            url_body("https://example.com/a.wav"),
        )
        .await;
    assert_eq!(fixture.json()["transcription"], "from a fixture");
    let own = format!("{}/files/b.wav", emu.base_url());
    assert_eq!(
        http.stt(
            "model=pulse&language=en",
            "application/json",
            url_body(&own)
        )
        .await
        .json()["transcription"],
        "from a fixture"
    );
    let generated = format!("{}/_emulator/speech.wav?text=made+up%21", emu.base_url());
    assert_eq!(
        http.stt(
            "model=pulse&language=en",
            "application/json",
            url_body(&generated)
        )
        .await
        .json()["transcription"],
        "made up!"
    );
    // Served directly too, without a key.
    let direct = http.send(Method::GET, "/files/b.wav", &[], "").await;
    assert_eq!(
        (direct.status, &direct.body[0..4]),
        (StatusCode::OK, &b"RIFF"[..])
    );

    let unknown = http
        .stt(
            "model=pulse&language=en",
            "application/json",
            url_body("https://example.org/x.wav"),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("example.org"))
    );
    let pro = http
        .stt(
            "model=pulse-pro&language=en",
            "application/json",
            url_body(SAMPLE_AUDIO_URL),
        )
        .await;
    assert_eq!(pro.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn legacy_get_text() {
    let (_emu, http) = emulator().await;
    let auth = format!("Bearer {KEY}");
    let pcm = speech::synthesize_pcm("legacy route", 8000, 1.0);
    let ulaw: Vec<u8> = {
        // Headerless μ-law declared through `encoding`.
        let r = http.tts(json!({"text": "legacy route", "voice_id": "magnus", "sample_rate": 8000, "output_format": "ulaw"})).await;
        r.body.to_vec()
    };
    assert_eq!(ulaw.len(), pcm.len());
    let r = http
        .send(
            Method::POST,
            "/waves/v1/pulse/get_text?encoding=mulaw&word_timestamps=true&emotion_detection=true",
            &[
                ("authorization", &auth),
                ("content-type", "application/octet-stream"),
            ],
            ulaw,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["transcription"], "legacy route");
    assert!(
        v["audio_length"]
            .as_f64()
            .is_some_and(|d| (d - pcm.len() as f64 / 8000.0).abs() < 0.01)
    );
    assert_eq!(v["words"].as_array().map(Vec::len), Some(2));
    assert!(v["emotions"]["happiness"].is_number());

    let url = http
        .send(
            Method::POST,
            "/waves/v1/pulse/get_text",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            json!({"url": SAMPLE_AUDIO_URL}).to_string(),
        )
        .await
        .json();
    assert_eq!(url["transcription"], SAMPLE_AUDIO_TEXT);
    assert_eq!(url["metadata"]["filename"], "audio.wav");
    let bad = http
        .send(
            Method::POST,
            "/waves/v1/pulse/get_text",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            "{\"uri\": 1}",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json(),
        json!({"errors": "Invalid JSON data: missing or invalid 'url' field", "status": "error", "message": "Error handling audio data"})
    );
    let text = http
        .send(
            Method::POST,
            "/waves/v1/pulse/get_text",
            &[("authorization", &auth), ("content-type", "text/plain")],
            "x",
        )
        .await;
    assert_eq!(
        text.json()["errors"],
        "Invalid file format. Supported formats: audio/*"
    );
}

#[tokio::test]
async fn tls_with_http2_and_the_emulator_ca() {
    let emu = Emulator::builder()
        .key(KEY)
        .tls(true)
        .start()
        .await
        .expect("start");
    assert!(emu.base_url().starts_with("https://127.0.0.1:"));
    assert!(
        emu.ca_certificate_pem()
            .is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----"))
    );
    let http = Http::new(&emu);
    let r = http.send(Method::GET, "/waves/v1/health", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version, Version::HTTP_2);
    let tts = http
        .tts(json!({"text": "over tls", "voice_id": "magnus", "sample_rate": 16000}))
        .await;
    assert_eq!(tts.status, StatusCode::OK);
    assert_eq!(tts.version, Version::HTTP_2);
    let back = http
        .stt("model=pulse&language=en", "application/octet-stream", {
            // Raw headerless PCM: the rate is recovered from the speech itself.
            tts.body.clone()
        })
        .await;
    assert_eq!(back.json()["transcription"], "over tls");
    assert_eq!(emu.requests().len(), 3);
    emu.shutdown_gracefully().await;
}

#[tokio::test]
async fn cleartext_http2_works_too() {
    let (emu, _) = emulator().await;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let resp = client
        .get(
            format!("{}/waves/v1/health", emu.base_url())
                .parse()
                .expect("uri"),
        )
        .await
        .expect("h2c response");
    assert_eq!(
        (resp.status(), resp.version()),
        (StatusCode::OK, Version::HTTP_2)
    );
}

#[test]
fn spawn_works_from_a_plain_test_and_shuts_down() {
    use std::io::{Read, Write};
    let emu = Emulator::builder().spawn().expect("spawn");
    let addr = emu.addr();
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    emu.shutdown();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_works_inside_a_runtime() {
    let emu = Emulator::builder().key(KEY).spawn().expect("spawn");
    let http = Http::new(&emu);
    let r = http.tts(json!({"text": "threaded", "voice_id": "magnus", "sample_rate": 16000, "output_format": "wav"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let back = http
        .stt("model=pulse&language=en", "audio/wav", r.body)
        .await;
    assert_eq!(back.json()["transcription"], "threaded");
    drop(emu);
}

#[tokio::test]
async fn stt_rpm_refuses_the_request_over_the_rate_per_model_with_retry_after() {
    let emu = Emulator::builder()
        .key(KEY)
        .stt_rpm(2)
        .start()
        .await
        .expect("start");
    let http = Http::new(&emu);
    // A 16 kHz mono WAV of emulator speech, from the emulator's own generator.
    let wav = http
        .send(
            Method::GET,
            "/_emulator/speech.wav?text=Rate+limited.",
            &[],
            "",
        )
        .await;
    assert_eq!(wav.status, StatusCode::OK);
    let wav = wav.body;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = http
            .stt("model=pulse&language=en", "audio/wav", wav.clone())
            .await;
        statuses.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let v = r.json();
            let error = v["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("2 requests per minute for model pulse"),
                "{v}"
            );
            assert_eq!(v["request_id"].as_str().map(str::len), Some(36), "{v}");
            let wait: u64 = r
                .header("retry-after")
                .and_then(|s| s.parse().ok())
                .expect("Retry-After in seconds");
            assert!((1..=60).contains(&wait), "{wait}");
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Another model has its own budget; the refused request did not count.
    let pro = http
        .stt("model=pulse-pro&language=en", "audio/wav", wav.clone())
        .await;
    assert_eq!(pro.status, StatusCode::OK);
    // The log keeps each request's arrival, in order.
    let log = emu.requests();
    assert!(log.windows(2).all(|w| w[0].received <= w[1].received));
    emu.shutdown_gracefully().await;
}
