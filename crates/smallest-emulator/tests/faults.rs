//! Injected faults, observed by a raw client over real sockets.

mod raw;

use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use raw::{KEY, bounded, frames, parse_sse, post_json, reply, send};
use serde_json::{Value, json};
use smallest_emulator::{Emulator, Fault, FaultRule, RunningEmulator, SAMPLE_AUDIO_URL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const HEALTH: &str = "/waves/v1/health";
const TTS: &str = "/waves/v1/tts";
const LIVE: &str = "/waves/v1/tts/live";
const STT: &str = "/waves/v1/stt/?model=pulse&language=en";
/// The path of [`STT`] (rules match paths, not queries).
const STT_PATH: &str = "/waves/v1/stt/";

async fn start() -> RunningEmulator {
    Emulator::builder().key(KEY).start().await.expect("start")
}

fn tts_body() -> Value {
    json!({"text": "hello there", "voice_id": "magnus", "sample_rate": 8000})
}

async fn health(emu: &RunningEmulator) -> raw::Reply {
    reply(send(emu.addr(), Method::GET, HEALTH, &[], "").await).await
}

#[tokio::test]
async fn status_faults_with_and_without_retry_after() {
    bounded(async {
        let emu = start().await;
        emu.inject(FaultRule::new(TTS, Fault::too_many_requests(Some("2"))).times(1));
        emu.inject(FaultRule::new(TTS, Fault::status(429)).after(1).times(1));
        let r = reply(post_json(emu.addr(), TTS, &tts_body()).await).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.json()["error"], "Too many concurrent requests");
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert!(r.header("x-request-id").is_some());
        let r = reply(post_json(emu.addr(), TTS, &tts_body()).await).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.header("retry-after"), None);
        assert_eq!(r.json()["error"], "Too many concurrent requests");
        let r = reply(post_json(emu.addr(), TTS, &tts_body()).await).await;
        assert_eq!(r.status, StatusCode::OK);
        emu.clear_faults();

        for (status, error) in [
            (500, "InternalServerError"),
            (502, "BadGateway"),
            (503, "ServiceUnavailable"),
            (504, "GatewayTimeout"),
        ] {
            emu.inject(
                FaultRule::new(STT_PATH, Fault::status(status))
                    .method("POST")
                    .times(1),
            );
            let r =
                reply(post_json(emu.addr(), STT, &json!({"url": SAMPLE_AUDIO_URL})).await).await;
            assert_eq!(r.status.as_u16(), status);
            assert_eq!(r.json()["error"], error);
            assert!(r.json()["message"].is_string());
        }
        // A `GET` does not match a `POST` rule; the prefix covers the query-less path.
        emu.inject(
            FaultRule::new(
                "/waves/v1/stt",
                Fault::Status {
                    status: 503,
                    retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
                    body: Some("<html>upstream down</html>".to_owned()),
                },
            )
            .method("post"),
        );
        let r = reply(send(emu.addr(), Method::GET, "/waves/v1/stt", &[], "").await).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = reply(post_json(emu.addr(), STT, &json!({"url": SAMPLE_AUDIO_URL})).await).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.header("retry-after"),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(&r.body[..], b"<html>upstream down</html>");
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn reset_before_head_is_a_tcp_reset() {
    bounded(async {
        let emu = Emulator::builder()
            .key(KEY)
            .fault(FaultRule::new(HEALTH, Fault::ResetBeforeHead).times(2))
            .start()
            .await
            .expect("start");
        // A bare socket sees the reset itself.
        let mut tcp = tokio::net::TcpStream::connect(emu.addr())
            .await
            .expect("connect");
        tcp.write_all(b"GET /waves/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut buf = vec![0u8; 4096];
        let read = tcp.read(&mut buf).await;
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{read:?}"
        );
        // An HTTP client gets no response at all.
        let err = send(emu.addr(), Method::GET, HEALTH, &[], "").await.err();
        assert!(err.is_some_and(|e| e.starts_with("response:")));
        // The rule is used up.
        assert_eq!(health(&emu).await.status, StatusCode::OK);
        let log = emu.requests();
        assert_eq!(log.len(), 3);
        assert_eq!(log[0].fault, Some(Fault::ResetBeforeHead));
        assert_eq!(log[2].fault, None);
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn reset_mid_body_cuts_after_n_bytes() {
    bounded(async {
        let emu = start().await;
        emu.inject(FaultRule::new(TTS, Fault::ResetMidBody { after_bytes: 1000 }).times(1));
        let resp = post_json(emu.addr(), TTS, &tts_body()).await.expect("head");
        assert_eq!(resp.status(), StatusCode::OK);
        let announced: usize = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(announced > 5000);
        let got = frames(resp).await;
        assert_eq!(got.len(), 1000);
        assert!(got.error.is_some());

        // The same on the chunked event stream: the body stops mid-event.
        emu.inject(FaultRule::new(LIVE, Fault::ResetMidBody { after_bytes: 3000 }).times(1));
        let resp = post_json(emu.addr(), LIVE, &tts_body())
            .await
            .expect("head");
        assert_eq!(resp.status(), StatusCode::OK);
        let got = frames(resp).await;
        assert_eq!(got.len(), 3000);
        assert!(got.error.is_some());
        // Whatever arrived is the start of the full stream.
        let full = reply(post_json(emu.addr(), LIVE, &tts_body()).await).await;
        assert_eq!(&full.body[..3000], &got.bytes()[..]);
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn stalls_make_client_timeouts_fire_then_resume() {
    bounded(async {
        let emu = start().await;
        let expected = health(&emu).await.body;

        emu.inject(
            FaultRule::new(
                HEALTH,
                Fault::StallBody {
                    after_bytes: 10,
                    duration: Duration::from_millis(300),
                },
            )
            .times(1),
        );
        let resp = send(emu.addr(), Method::GET, HEALTH, &[], "")
            .await
            .expect("head");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while got.len() < 10 {
            match body.frame().await {
                Some(Ok(frame)) => got.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
                other => panic!("body ended: {:?}", other.map(|f| f.is_ok())),
            }
        }
        assert_eq!(got.len(), 10);
        let stalled_at = Instant::now();
        // An idle timeout shorter than the stall fires…
        assert!(
            tokio::time::timeout(Duration::from_millis(100), body.frame())
                .await
                .is_err()
        );
        // …and the rest comes after the stall.
        while let Some(Ok(frame)) = body.frame().await {
            got.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d));
        }
        assert!(stalled_at.elapsed() >= Duration::from_millis(150));
        assert_eq!(got, expected.to_vec());

        emu.inject(FaultRule::new(HEALTH, Fault::StallHead(Duration::from_millis(250))).times(2));
        // A response timeout shorter than the stall fires…
        assert!(
            tokio::time::timeout(
                Duration::from_millis(100),
                send(emu.addr(), Method::GET, HEALTH, &[], "")
            )
            .await
            .is_err()
        );
        // …a patient client gets the answer.
        let sent = Instant::now();
        let r = health(&emu).await;
        assert!(sent.elapsed() >= Duration::from_millis(250));
        assert_eq!(r.body, expected);
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn latency_delays_the_head() {
    bounded(async {
        let emu = start().await;
        emu.inject(FaultRule::new(TTS, Fault::Latency(Duration::from_millis(200))).times(1));
        let sent = Instant::now();
        let r = reply(post_json(emu.addr(), TTS, &tts_body()).await).await;
        assert!(sent.elapsed() >= Duration::from_millis(200));
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            emu.requests()[0].fault,
            Some(Fault::Latency(Duration::from_millis(200)))
        );
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_json_and_wrong_content_types() {
    bounded(async {
        let emu = start().await;
        emu.inject(FaultRule::new(STT_PATH, Fault::MalformedJson).times(1));
        emu.inject(FaultRule::new(HEALTH, Fault::MalformedJson).times(1));
        let stt_ok = json!({"url": SAMPLE_AUDIO_URL});
        let r = reply(post_json(emu.addr(), STT, &stt_ok).await).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert!(serde_json::from_slice::<Value>(&r.body).is_err());
        let whole = reply(post_json(emu.addr(), STT, &stt_ok).await).await;
        assert!(whole.body.starts_with(&r.body));
        assert!(whole.body.len() > r.body.len());
        let r = health(&emu).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.len() > 10);
        assert!(health(&emu).await.body.starts_with(&r.body));
        assert!(serde_json::from_slice::<Value>(&r.body).is_err());

        emu.inject(FaultRule::new("/waves/v1/", Fault::WrongContentType).times(3));
        let r = reply(post_json(emu.addr(), TTS, &tts_body()).await).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(r.json(), json!({"ok": true}));
        let r = reply(post_json(emu.addr(), LIVE, &tts_body()).await).await;
        assert_eq!(r.json(), json!({"ok": true}));
        let r = reply(post_json(emu.addr(), STT, &stt_ok).await).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(r.body.starts_with(b"<!DOCTYPE html>"));
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn huge_error_body_has_the_announced_length() {
    bounded(async {
        let emu = start().await;
        emu.inject(
            FaultRule::new(
                "/waves/v1/stt",
                Fault::HugeErrorBody {
                    status: 500,
                    bytes: 5_000_000,
                },
            )
            .times(1),
        );
        let r = reply(post_json(emu.addr(), STT, &json!({"url": SAMPLE_AUDIO_URL})).await).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.header("content-length"), Some("5000000"));
        assert_eq!(r.body.len(), 5_000_000);
        assert!(
            r.body
                .starts_with(br#"{"error":"InternalServerError","message":"xxx"#)
        );
        assert!(r.body.ends_with(br#"xxx"}"#));
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn trickle_body_arrives_a_few_bytes_at_a_time() {
    bounded(async {
        let emu = start().await;
        let expected = health(&emu).await.body;
        emu.inject(
            FaultRule::new(
                HEALTH,
                Fault::TrickleBody {
                    chunk_bytes: 7,
                    interval: Duration::from_millis(5),
                },
            )
            .times(1),
        );
        let sent = Instant::now();
        let resp = send(emu.addr(), Method::GET, HEALTH, &[], "")
            .await
            .expect("head");
        let got = frames(resp).await;
        assert!(got.error.is_none());
        assert_eq!(got.bytes(), expected.to_vec());
        assert!(got.frames.iter().all(|(_, f)| f.len() <= 7));
        let pieces = expected.len().div_ceil(7);
        assert!(got.frames.len() >= pieces);
        assert!(sent.elapsed() >= Duration::from_millis(5 * (pieces as u64 - 1)));
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn sse_cut_before_done_per_request() {
    bounded(async {
        let emu = start().await;
        emu.inject(FaultRule::new(LIVE, Fault::SseCutBeforeDone).times(1));
        let cut = reply(post_json(emu.addr(), LIVE, &tts_body()).await).await;
        let (cut_chunks, done) = parse_sse(&cut.body);
        assert!(!done);
        let whole = reply(post_json(emu.addr(), LIVE, &tts_body()).await).await;
        let (chunks, done) = parse_sse(&whole.body);
        assert!(done);
        assert_eq!(cut_chunks, chunks);
        // On other routes the fault changes nothing.
        emu.inject(FaultRule::any(Fault::SseCutBeforeDone).times(1));
        assert_eq!(health(&emu).await.status, StatusCode::OK);
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn after_and_times_are_honoured_and_logged() {
    bounded(async {
        let emu = Emulator::builder()
            .key(KEY)
            .fault(FaultRule::new(HEALTH, Fault::status(503)).after(1).times(2))
            .start()
            .await
            .expect("start");
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(health(&emu).await.status.as_u16());
        }
        assert_eq!(statuses, [200, 503, 503, 200, 200]);
        let faults: Vec<bool> = emu.requests().iter().map(|r| r.fault.is_some()).collect();
        assert_eq!(faults, [false, true, true, false, false]);
        assert_eq!(emu.faults().len(), 1);
        emu.clear_faults();
        assert!(emu.faults().is_empty());
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn control_endpoint_round_trip() {
    bounded(async {
        let emu = start().await;
        let addr = emu.addr();
        let control = "/_emulator/faults";
        let post = |body: String| send(addr, Method::POST, control, &[], body);

        let r = reply(
            post(
                json!({"path_prefix": HEALTH, "method": "GET", "times": 1,
                       "fault": {"kind": "status", "status": 429, "retry_after": "1"}})
                .to_string(),
            )
            .await,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.json()["added"], 1);
        let listed = reply(send(addr, Method::GET, control, &[], "").await).await;
        assert_eq!(
            listed.json(),
            json!({"faults": [{"path_prefix": HEALTH, "method": "GET", "times": 1, "after": 0,
                               "fault": {"kind": "status", "status": 429, "retry_after": "1"},
                               "matched": 0, "applied": 0}]})
        );
        assert_eq!(
            emu.faults(),
            [FaultRule::new(HEALTH, Fault::too_many_requests(Some("1")))
                .method("GET")
                .times(1)]
        );
        let r = health(&emu).await;
        assert_eq!((r.status.as_u16(), r.header("retry-after")), (429, Some("1")));
        let listed = reply(send(addr, Method::GET, control, &[], "").await).await;
        assert_eq!(listed.json()["faults"][0]["applied"], 1);

        // Several at once; even a catch-all reset leaves the control endpoint alone.
        let r = reply(
            post(
                json!([{"fault": {"kind": "reset_before_head"}},
                       {"path_prefix": "/x", "fault": {"kind": "trickle_body", "chunk_bytes": 1, "interval_ms": 1}}])
                .to_string(),
            )
            .await,
        )
        .await;
        assert_eq!(r.json()["added"], 2);
        assert!(send(addr, Method::GET, HEALTH, &[], "").await.is_err());
        let r = reply(send(addr, Method::DELETE, control, &[], "").await).await;
        assert_eq!(r.json(), json!({"cleared": 3}));
        assert_eq!(health(&emu).await.status, StatusCode::OK);

        // Bad input.
        let r = reply(post("{".to_owned()).await).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = reply(post(json!({"fault": {"kind": "explode"}}).to_string()).await).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("explode")));
        let r = reply(post(json!({"fault": {"kind": "status", "status": 42}}).to_string()).await).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = reply(send(addr, Method::PUT, control, &[], "").await).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(emu.faults().is_empty());
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn resets_work_under_tls_and_http2() {
    use std::sync::Arc;

    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    bounded(async {
        let emu = Emulator::builder()
            .key(KEY)
            .tls(true)
            .start()
            .await
            .expect("start");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(emu.ca_certificate_der().expect("CA").into())
            .expect("CA certificate");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http2()
            .build();
        let client: Client<_, http_body_util::Full<bytes::Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let url = format!("{}{HEALTH}", emu.base_url());
        let get = || {
            let req = http::Request::get(url.as_str())
                .body(http_body_util::Full::default())
                .expect("request");
            client.request(req)
        };

        emu.inject(FaultRule::new(HEALTH, Fault::ResetBeforeHead).times(1));
        assert!(get().await.is_err());

        emu.inject(FaultRule::new(HEALTH, Fault::ResetMidBody { after_bytes: 10 }).times(1));
        let resp = get().await.expect("head");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let mut got = 0;
        let error = loop {
            match body.frame().await {
                Some(Ok(frame)) => got += frame.data_ref().map_or(0, |d| d.len()),
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        assert!(error.is_some());
        assert!(got <= 10, "{got}");

        // The client reconnects and is served normally.
        let resp = get().await.expect("head");
        assert_eq!(resp.status(), StatusCode::OK);
        emu.shutdown_gracefully().await;
    })
    .await;
}
