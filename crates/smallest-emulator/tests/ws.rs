//! The live WebSocket routes over real loopback sockets (plain and TLS), driven by
//! `tokio-tungstenite` as the client. Every test is bounded in time.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use smallest_emulator::{Emulator, EmulatorBuilder, RunningEmulator, speech};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

mod common;

use common::{Ws, bounded, next_json, send, try_connect};

const KEY: &str = "sk_test_ws_0123456789";

async fn start(builder: EmulatorBuilder) -> RunningEmulator {
    builder.key(KEY).start().await.expect("start")
}

async fn connect(emu: &RunningEmulator, path: &str) -> Ws {
    try_connect(emu, path, Some(KEY)).await.expect("connect")
}

/// The status of a refused upgrade.
async fn refused(emu: &RunningEmulator, path: &str, key: Option<&str>) -> u16 {
    match try_connect(emu, path, key).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the upgrade of {path} was accepted"),
    }
}

/// A hand-written upgrade request, read to the end: the status and JSON body of a refusal.
async fn raw_upgrade(emu: &RunningEmulator, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut tcp = TcpStream::connect(emu.addr()).await.expect("tcp");
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).await.expect("read");
    let reply = String::from_utf8_lossy(&reply);
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Reads until the close frame; returns its code and reason.
async fn closed(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no close within 10 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code, frame.reason.as_str().to_owned());
            }
            Some(Ok(Message::Close(None))) => return (CloseCode::Status, String::new()),
            Some(Ok(Message::Text(text))) => panic!("unexpected frame before close: {text}"),
            Some(Ok(_)) => {}
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    }
}

/// Every frame of one TTS request, through `complete` (which is included).
async fn tts_frames(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_json(ws).await;
        let status = frame["status"].as_str().unwrap_or("").to_owned();
        assert_ne!(status, "error", "{frame}");
        frames.push(frame);
        if status == "complete" {
            return frames;
        }
    }
}

/// The PCM of the `chunk` frames.
fn audio_of(frames: &[Value]) -> Vec<u8> {
    let mut pcm = Vec::new();
    for f in frames.iter().filter(|f| f["status"] == "chunk") {
        let b64 = f["data"]["audio"].as_str().expect("audio");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert!(!bytes.is_empty() && bytes.len() <= 4096, "{}", bytes.len());
        pcm.extend(bytes);
    }
    pcm
}

fn samples(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// `POST /waves/v1/tts` over a bare HTTP/1.1 connection: status and body.
async fn http_tts(emu: &RunningEmulator, body: &Value) -> (u16, Vec<u8>) {
    let mut tcp = TcpStream::connect(emu.addr()).await.expect("tcp");
    let body = body.to_string();
    let request = format!(
        "POST /waves/v1/tts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).await.expect("read");
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    (status, reply[split + 4..].to_vec())
}

const TTS: &str = "/waves/v1/tts/live";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tts_pieces_with_continue_then_flush_equal_the_http_audio() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        let config = json!({"voice_id": "magnus", "sample_rate": 24000, "speed": 1.25, "session_id": "my-session-1"});
        let pieces = ["Hello from ", "the WebSocket", " route, in pieces."];
        for piece in pieces {
            let mut message = config.clone();
            message["text"] = json!(piece);
            message["continue"] = json!(true);
            message["output_format"] = json!("mp3"); // ignored on WS
            send(&mut ws, message).await;
        }
        let mut flush = config.clone();
        flush["text"] = json!("");
        flush["flush"] = json!(true);
        send(&mut ws, flush).await;
        let frames = tts_frames(&mut ws).await;

        let whole: String = pieces.concat();
        let (status, http_pcm) = http_tts(
            &emu,
            &json!({"text": whole, "voice_id": "magnus", "sample_rate": 24000, "speed": 1.25, "output_format": "pcm"}),
        )
        .await;
        assert_eq!(status, 200);
        let ws_pcm = audio_of(&frames);
        assert_eq!(ws_pcm.len(), http_pcm.len());
        assert!(ws_pcm == http_pcm, "the WS audio differs from the HTTP audio");
        assert_eq!(speech::transcribe_pcm(&samples(&ws_pcm), 24000), whole);

        // Frame shapes: server ids, the echoed external session id, no external request id.
        let session = frames[0]["session_id"].as_str().unwrap_or_default();
        let task = frames[0]["request_id"].as_str().unwrap_or_default();
        assert!(session.starts_with("ws_"), "{session}");
        assert!(task.starts_with("task_"), "{task}");
        for f in &frames {
            assert_eq!(f["session_id"], session);
            assert_eq!(f["request_id"], task);
            assert_eq!(f["external_session_id"], "my-session-1");
            assert!(f.get("external_request_id").is_none(), "{f}");
        }
        let complete = frames.last().cloned().unwrap_or_default();
        assert_eq!(complete["status"], "complete");
        assert!(complete.get("data").is_none(), "{complete}");
        // Magnus has no word timestamps, asked for or not.
        assert!(frames.iter().all(|f| f["status"] != "word_timestamp"));
        // A validation error is a frame, and the socket stays open.
        send(&mut ws, json!({"text": "x", "voice_id": "nobody"})).await;
        let error = next_json(&mut ws).await;
        assert_eq!(error, json!({"status": "error", "message": "Invalid request: voice_id: Invalid Voice ID"}));
        send(&mut ws, json!({"text": "ok", "voice_id": "magnus", "sample_rate": 8000})).await;
        let frames = tts_frames(&mut ws).await;
        assert_eq!(speech::transcribe_pcm(&samples(&audio_of(&frames)), 8000), "ok");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_timestamps_for_supported_voices_only() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        let text = "Pay  $100 on the 25th, नमस्ते friends.";
        send(
            &mut ws,
            json!({"text": text, "voice_id": "meher", "sample_rate": 16000, "word_timestamps": true, "request_id": "r-1"}),
        )
        .await;
        let frames = tts_frames(&mut ws).await;
        assert!(frames.iter().all(|f| f["external_request_id"] == "r-1"));
        let words: Vec<&Value> = frames
            .iter()
            .filter(|f| f["status"] == "word_timestamp")
            .collect();
        let texts: Vec<&str> = words
            .iter()
            .map(|w| w["data"]["word"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(texts, text.split_whitespace().collect::<Vec<_>>());
        let mut last_end = 0.0;
        for (i, w) in words.iter().enumerate() {
            assert_eq!(w["data"]["id"], i);
            let start = w["data"]["start"].as_f64().unwrap_or(-1.0);
            let end = w["data"]["end"].as_f64().unwrap_or(-1.0);
            assert!(start >= last_end && end > start, "{w}");
            last_end = end;
        }
        // Each word's time matches the codec's own decoding of the audio.
        let pcm = samples(&audio_of(&frames));
        let mut decoder = speech::Decoder::new(16000);
        decoder.feed(&pcm);
        decoder.finish();
        for (w, decoded) in words.iter().zip(decoder.words()) {
            let start = w["data"]["start"].as_f64().unwrap_or(-1.0);
            let end = w["data"]["end"].as_f64().unwrap_or(-1.0);
            assert!((start - decoded.start).abs() < 0.01, "{w} {decoded:?}");
            assert!((end - decoded.end).abs() < 0.015, "{w} {decoded:?}");
        }
        // Interleaved in audio order: the first word comes before the last chunk.
        let first_word = frames.iter().position(|f| f["status"] == "word_timestamp");
        let last_chunk = frames.iter().rposition(|f| f["status"] == "chunk");
        assert!(first_word < last_chunk, "{first_word:?} {last_chunk:?}");
        // Without the flag, or with another voice family: no word frames.
        for message in [
            json!({"text": "no words", "voice_id": "meher"}),
            json!({"text": "no words", "voice_id": "magnus", "word_timestamps": true}),
            json!({"text": "no words", "voice_id": "jeevan", "word_timestamps": true}),
        ] {
            send(&mut ws, message).await;
            let frames = tts_frames(&mut ws).await;
            assert!(frames.iter().all(|f| f["status"] != "word_timestamp"));
            assert!(frames.iter().any(|f| f["status"] == "chunk"));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_on_one_socket_are_served_in_order() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        send(
            &mut ws,
            json!({"text": "first request", "voice_id": "olivia", "sample_rate": 8000}),
        )
        .await;
        send(
            &mut ws,
            json!({"text": "second one", "voice_id": "olivia", "sample_rate": 8000}),
        )
        .await;
        let first = tts_frames(&mut ws).await;
        let second = tts_frames(&mut ws).await;
        assert_eq!(
            speech::transcribe_pcm(&samples(&audio_of(&first)), 8000),
            "first request"
        );
        assert_eq!(
            speech::transcribe_pcm(&samples(&audio_of(&second)), 8000),
            "second one"
        );
        assert_eq!(first[0]["session_id"], second[0]["session_id"]);
        assert_ne!(first[0]["request_id"], second[0]["request_id"]);
        // The socket is still open: the close is ours.
        ws.close(None).await.expect("close");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_buffer_flush_ms_synthesises_buffered_text_without_ending_the_request() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        let config = json!({"voice_id": "avery", "sample_rate": 8000, "word_timestamps": true, "max_buffer_flush_ms": 100});
        let mut piece = config.clone();
        piece["text"] = json!("timed flush ");
        piece["continue"] = json!(true);
        send(&mut ws, piece).await;
        // No flush and no end: the buffer is synthesised after 100 ms, without `complete`.
        let mut first = Vec::new();
        while first.iter().filter(|f: &&Value| f["status"] == "word_timestamp").count() < 2 {
            let frame = next_json(&mut ws).await;
            assert_ne!(frame["status"], "complete", "{frame}");
            assert_ne!(frame["status"], "error", "{frame}");
            first.push(frame);
        }
        let mut last = config.clone();
        last["text"] = json!("then the end");
        send(&mut ws, last).await;
        let rest = tts_frames(&mut ws).await;
        // One request: the same request id throughout, word ids and times continue.
        assert!(first.iter().chain(&rest).all(|f| f["request_id"] == first[0]["request_id"]));
        let words: Vec<(u64, String, f64)> = first
            .iter()
            .chain(&rest)
            .filter(|f| f["status"] == "word_timestamp")
            .map(|f| {
                (
                    f["data"]["id"].as_u64().unwrap_or(99),
                    f["data"]["word"].as_str().unwrap_or("?").to_owned(),
                    f["data"]["start"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect();
        let ids: Vec<u64> = words.iter().map(|w| w.0).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert_eq!(words[2].1, "then");
        let first_len = speech::synthesized_len("timed flush ", 8000, 1.0) as f64 / 8000.0;
        assert!(words[2].2 > first_len, "{words:?}");
        // Two utterances of emulator speech, back to back.
        let mut pcm = audio_of(&first);
        pcm.extend(audio_of(&rest));
        assert_eq!(
            speech::transcribe_pcm(&samples(&pcm), 8000),
            "timed flush then the end"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_complete_and_complete_backoff() {
    bounded(60, async {
        let emu = start(
            Emulator::builder()
                .ws_close_after_complete(true)
                .ws_complete_backoff(Duration::from_millis(300)),
        )
        .await;
        let mut ws = connect(&emu, TTS).await;
        send(&mut ws, json!({"text": "bye", "voice_id": "olivia", "sample_rate": 8000})).await;
        let started = tokio::time::Instant::now();
        let frames = tts_frames(&mut ws).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(frames.len() >= 2);
        assert_eq!(closed(&mut ws).await.0, CloseCode::Normal);

        // The client's own `complete_backoff_ms` wins over the emulator's default.
        let mut ws = connect(&emu, TTS).await;
        send(&mut ws, json!({"text": "quick", "voice_id": "olivia", "sample_rate": 8000, "complete_backoff_ms": 0})).await;
        let started = tokio::time::Instant::now();
        tts_frames(&mut ws).await;
        assert!(started.elapsed() < Duration::from_millis(300));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_sends_the_error_frame_then_closes() {
    bounded(30, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, "/waves/v1/tts/live?timeout=1").await;
        let started = tokio::time::Instant::now();
        let frame = next_json(&mut ws).await;
        assert_eq!(
            frame,
            json!({"status": "error", "message": "Connection timed out after 1 seconds of inactivity"})
        );
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!(closed(&mut ws).await.0, CloseCode::Normal);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_limits_are_checked_before_the_upgrade() {
    bounded(60, async {
        let emu = start(Emulator::builder().forbidden_key("sk_forbidden")).await;
        let (status, body) = raw_upgrade(&emu, TTS, None).await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "Unauthorized: No tokens provided"}))
        );
        let (status, body) = raw_upgrade(&emu, TTS, Some("Bearer sk_wrong")).await;
        assert_eq!((status, body), (401, json!({"error": "unauthorized"})));
        assert_eq!(refused(&emu, TTS, None).await, 401);
        assert_eq!(
            refused(
                &emu,
                "/waves/v1/stt/live?model=pulse&language=en",
                Some("sk_wrong")
            )
            .await,
            401
        );
        assert_eq!(refused(&emu, TTS, Some("sk_forbidden")).await, 403);
        assert_eq!(
            refused(&emu, "/waves/v1/tts/live?timeout=0", Some(KEY)).await,
            400
        );
        assert_eq!(
            refused(&emu, "/waves/v1/tts/live?timeout=soon", Some(KEY)).await,
            400
        );

        // Five sockets per concurrency unit (the default concurrency is 1).
        let mut open = Vec::new();
        for _ in 0..5 {
            open.push(connect(&emu, TTS).await);
        }
        let (status, body) = raw_upgrade(&emu, TTS, Some(&format!("Bearer {KEY}"))).await;
        assert_eq!(status, 429);
        assert_eq!(body["error"], "Too many connections");
        // Closing one frees its place.
        let mut one = open.pop().expect("socket");
        one.close(None).await.expect("close");
        let _ = closed_or_end(&mut one).await;
        let mut again = None;
        for _ in 0..100 {
            if let Ok(ws) = try_connect(&emu, TTS, Some(KEY)).await {
                again = Some(ws);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "the freed place was not reusable");
        // Accepted upgrades are recorded with status 101.
        assert!(
            emu.requests()
                .iter()
                .any(|r| r.path == TTS && r.status == 101)
        );
    })
    .await;
}

/// Waits for the end of a socket the client closed.
async fn closed_or_end(ws: &mut Ws) -> Option<()> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tts_concurrency_is_shared_with_http() {
    bounded(60, async {
        let emu = start(Emulator::builder().tts_latency(Duration::from_millis(1500))).await;
        let mut ws = connect(&emu, TTS).await;
        let http = tokio::spawn({
            let addr = emu.addr();
            async move {
                let body = json!({"text": "slow", "voice_id": "magnus", "sample_rate": 8000}).to_string();
                let mut tcp = TcpStream::connect(addr).await.expect("tcp");
                let request = format!(
                    "POST /waves/v1/tts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                tcp.write_all(request.as_bytes()).await.expect("write");
                let mut reply = Vec::new();
                tcp.read_to_end(&mut reply).await.expect("read");
                String::from_utf8_lossy(&reply[..12.min(reply.len())]).into_owned()
            }
        });
        // Wait until the HTTP request holds the slot.
        for _ in 0..200 {
            if emu.requests().iter().any(|r| r.path == "/waves/v1/tts") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        send(&mut ws, json!({"text": "blocked", "voice_id": "magnus", "sample_rate": 8000})).await;
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["status"], "error");
        let message = frame["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Too many concurrent requests"), "{message}");
        assert_eq!(http.await.expect("join"), "HTTP/1.1 200");
        // The socket stayed open, and the slot is free again (the WS synthesis waits the latency too).
        send(&mut ws, json!({"text": "now", "voice_id": "magnus", "sample_rate": 8000})).await;
        let frames = tts_frames(&mut ws).await;
        assert_eq!(speech::transcribe_pcm(&samples(&audio_of(&frames)), 8000), "now");
    })
    .await;
}

fn pcm_frames(text: &str, rate: u32) -> Vec<Vec<u8>> {
    let pcm: Vec<u8> = speech::synthesize_pcm(text, rate, 1.0)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    pcm.chunks(4096).map(<[u8]>::to_vec).collect()
}

/// Reads `transcription` frames until a final; returns the interims seen and the final.
async fn until_final(ws: &mut Ws) -> (Vec<Value>, Value) {
    let mut interims = Vec::new();
    loop {
        let frame = next_json(ws).await;
        assert_eq!(frame["type"], "transcription", "{frame}");
        if frame["is_final"] == true {
            return (interims, frame);
        }
        interims.push(frame);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_streams_interims_and_finals_then_closes_on_close_stream() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let text = "Streaming speech, in frames of 4 KiB.";
        let mut ws = connect(
            &emu,
            "/waves/v1/stt/live?model=pulse&language=en&sample_rate=16000&encoding=linear16&word_timestamps=true&full_transcript=true",
        )
        .await;
        for frame in pcm_frames(text, 16000) {
            ws.send(Message::binary(frame)).await.expect("send");
        }
        let (interims, last) = until_final(&mut ws).await;
        assert!(!interims.is_empty());
        for i in &interims {
            assert_eq!(i["is_last"], false);
            assert!(i.get("language").is_none(), "{i}");
            let partial = i["transcript"].as_str().unwrap_or_default();
            assert!(text.starts_with(partial), "{partial:?}");
            assert_eq!(i["transcription"], i["transcript"]);
        }
        assert_eq!(last["transcript"], text);
        assert_eq!(last["transcription"], text);
        assert_eq!(last["status"], "success");
        assert_eq!(last["is_last"], false);
        assert_eq!(last["language"], "en");
        assert_eq!(last["full_transcript"], text);
        assert!(last.get("from_finalize").is_none());
        let session = last["session_id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(session.len(), 36, "{session}");
        let words: Vec<&str> = last["words"]
            .as_array()
            .map(|w| w.iter().map(|w| w["word"].as_str().unwrap_or("?")).collect())
            .unwrap_or_default();
        assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
        assert!(last.get("utterances").is_none());

        send(&mut ws, json!({"type": "close_stream"})).await;
        let (_, terminal) = until_final(&mut ws).await;
        assert_eq!(terminal["is_last"], true);
        assert_eq!(terminal["transcript"], "");
        assert_eq!(terminal["session_id"], session.as_str());
        let (code, _) = closed(&mut ws).await;
        assert_eq!(code, CloseCode::Normal);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_finalize_and_unknown_messages() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(
            &emu,
            "/waves/v1/stt/live?model=pulse&language=en&sample_rate=8000&encoding=mulaw",
        )
        .await;
        // Nothing pending: still exactly one (empty) final.
        send(&mut ws, json!({"type": "finalize"})).await;
        let (_, empty) = until_final(&mut ws).await;
        assert_eq!(empty["transcript"], "");
        assert_eq!(empty["from_finalize"], true);
        // Half an utterance, then finalize: the text so far.
        let text = "finalize me now please";
        let ulaw: Vec<u8> = speech::synthesize_pcm(text, 8000, 1.0)
            .iter()
            .map(|&s| linear_to_ulaw(s))
            .collect();
        let half = ulaw.len() / 2;
        for chunk in ulaw[..half].chunks(2048) {
            ws.send(Message::binary(chunk.to_vec()))
                .await
                .expect("send");
        }
        // Unknown text frames get an error and the socket stays open.
        send(&mut ws, json!({"type": "flush"})).await;
        let mut partial = None;
        let mut saw_error = false;
        send(&mut ws, json!({"type": "finalize"})).await;
        while partial.is_none() {
            let frame = next_json(&mut ws).await;
            if frame["type"] == "error" {
                assert_eq!(frame["status"], "error");
                assert!(frame["message"].is_string());
                saw_error = true;
            } else if frame["is_final"] == true {
                partial = Some(frame);
            }
        }
        assert!(saw_error);
        let partial = partial.unwrap_or_default();
        assert_eq!(partial["from_finalize"], true);
        let got = partial["transcript"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!got.is_empty() && text.starts_with(&got), "{got:?}");
        // The rest of the audio, then close: the rest of the text.
        for chunk in ulaw[half..].chunks(2048) {
            ws.send(Message::binary(chunk.to_vec()))
                .await
                .expect("send");
        }
        send(&mut ws, json!({"type": "close_stream"})).await;
        let mut texts = vec![got];
        loop {
            let (_, f) = until_final(&mut ws).await;
            texts.push(f["transcript"].as_str().unwrap_or_default().to_owned());
            if f["is_last"] == true {
                break;
            }
        }
        let joined: String = texts.concat();
        assert_eq!(joined.replace(' ', ""), text.replace(' ', ""), "{texts:?}");
        assert_eq!(closed(&mut ws).await.0, CloseCode::Normal);
    })
    .await;
}

/// G.711 μ-law, as a client would encode it.
fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = (s + BIAS).min(32635 + BIAS);
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_vad_events_and_the_legacy_path() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        // The legacy path: no model; word timestamps on by default.
        let mut ws = connect(
            &emu,
            "/waves/v1/pulse/get_text?language=en&vad_events=true&sample_rate=24000",
        )
        .await;
        let mut audio: Vec<u8> = vec![0; 24000 * 2 / 2]; // 0.5 s of silence first
        audio.extend(
            speech::synthesize_pcm("voice activity", 24000, 1.0)
                .iter()
                .flat_map(|s| s.to_le_bytes()),
        );
        audio.extend(vec![0u8; 24000 * 2]); // then 1 s of silence
        for chunk in audio.chunks(4096) {
            ws.send(Message::binary(chunk.to_vec()))
                .await
                .expect("send");
        }
        let mut frames = Vec::new();
        loop {
            let f = next_json(&mut ws).await;
            let done = f["type"] == "speech_ended";
            frames.push(f);
            if done {
                break;
            }
        }
        let started = frames
            .iter()
            .find(|f| f["type"] == "speech_started")
            .cloned()
            .unwrap_or_default();
        let ended = frames.last().cloned().unwrap_or_default();
        let t0 = started["timestamp"].as_f64().unwrap_or(-1.0);
        let t1 = ended["timestamp"].as_f64().unwrap_or(-1.0);
        assert!((t0 - 0.51).abs() < 0.01, "{started}");
        let speech_len = speech::synthesized_len("voice activity", 24000, 1.0) as f64 / 24000.0;
        assert!((t1 - (0.5 + speech_len - 0.03)).abs() < 0.02, "{ended}");
        assert!(started["session_id"].is_string());
        // The speech_started frame comes before any transcription.
        assert_eq!(frames[0]["type"], "speech_started");
        let (_, last) = until_final(&mut ws).await;
        assert_eq!(last["transcript"], "voice activity");
        assert_eq!(last["words"].as_array().map(Vec::len), Some(2));
        // No VAD frames without the flag.
        let mut quiet = connect(
            &emu,
            "/waves/v1/stt/live?model=pulse&language=en&sample_rate=24000",
        )
        .await;
        for chunk in audio.chunks(4096) {
            quiet
                .send(Message::binary(chunk.to_vec()))
                .await
                .expect("send");
        }
        let (interims, last) = until_final(&mut quiet).await;
        assert!(interims.iter().all(|f| f["type"] == "transcription"));
        assert!(last.get("words").is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_query_is_validated_before_the_upgrade() {
    bounded(30, async {
        let emu = start(Emulator::builder()).await;
        let auth = format!("Bearer {KEY}");
        let (status, body) =
            raw_upgrade(&emu, "/waves/v1/stt/live?model=pulse-pro&language=en", Some(&auth)).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"],
            "Pulse Pro has no streaming transport. Use POST /waves/v1/stt/?model=pulse-pro instead."
        );
        assert!(body["request_id"].is_string());
        for query in [
            "language=en",
            "model=pulse",
            "model=pulse&language=klingon",
            "model=pulse&language=en&sample_rate=11025",
            "model=pulse&language=en&encoding=mp3",
            "model=pulse&language=en&eou_timeout_ms=20000",
            "model=pulse&language=en&word_timestamps=maybe",
        ] {
            let path = format!("/waves/v1/stt/live?{query}");
            assert_eq!(refused(&emu, &path, Some(KEY)).await, 400, "{query}");
        }
        // A plain GET is told to upgrade.
        let mut tcp = TcpStream::connect(emu.addr()).await.expect("tcp");
        tcp.write_all(
            format!("GET /waves/v1/stt/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut reply = String::new();
        tcp.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.1 426"), "{reply}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_sessions_over_the_limit_are_closed_with_1008() {
    bounded(30, async {
        let emu = start(Emulator::builder().stt_ws_limit(1)).await;
        let path = "/waves/v1/stt/live?model=pulse&language=hi";
        let mut first = connect(&emu, path).await;
        let mut second = connect(&emu, path).await;
        let (code, reason) = closed(&mut second).await;
        assert_eq!(code, CloseCode::Policy);
        assert!(reason.contains("limit"), "{reason}");
        // The first session works on.
        send(&mut first, json!({"type": "finalize"})).await;
        let (_, f) = until_final(&mut first).await;
        assert_eq!(f["language"], "hi");
        send(&mut first, json!({"type": "close_stream"})).await;
        until_final(&mut first).await;
        assert_eq!(closed(&mut first).await.0, CloseCode::Normal);
        // Its place is free again.
        let mut third = None;
        for _ in 0..100 {
            let mut ws = connect(&emu, path).await;
            let _ = ws.send(Message::text(r#"{"type":"finalize"}"#)).await;
            match ws.next().await {
                Some(Ok(Message::Text(_))) => {
                    third = Some(ws);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert!(third.is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_round_trip_tts_to_stt() {
    bounded(60, async {
        let emu = start(Emulator::builder().tls(true)).await;
        let text = "Over TLS, both ways.";
        let mut tts = connect(&emu, TTS).await;
        send(&mut tts, json!({"text": text, "voice_id": "liam", "sample_rate": 16000, "word_timestamps": true})).await;
        let frames = tts_frames(&mut tts).await;
        assert_eq!(frames.iter().filter(|f| f["status"] == "word_timestamp").count(), 4);
        let pcm = audio_of(&frames);
        let mut stt = connect(&emu, "/waves/v1/stt/live?model=pulse&language=en&sample_rate=16000").await;
        for chunk in pcm.chunks(4096) {
            stt.send(Message::binary(chunk.to_vec())).await.expect("send");
        }
        send(&mut stt, json!({"type": "close_stream"})).await;
        let mut finals = Vec::new();
        loop {
            let (_, f) = until_final(&mut stt).await;
            finals.push(f["transcript"].as_str().unwrap_or_default().to_owned());
            if f["is_last"] == true {
                break;
            }
        }
        assert_eq!(finals.concat(), text);
        assert_eq!(closed(&mut stt).await.0, CloseCode::Normal);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_sockets_with_1001() {
    bounded(30, async {
        let emu = start(Emulator::builder()).await;
        let mut tts = connect(&emu, TTS).await;
        let mut stt = connect(&emu, "/waves/v1/stt/live?model=pulse&language=en").await;
        let stopping = tokio::spawn(emu.shutdown_gracefully());
        assert_eq!(closed(&mut tts).await.0, CloseCode::Away);
        assert_eq!(closed(&mut stt).await.0, CloseCode::Away);
        stopping.await.expect("join");
    })
    .await;
}
