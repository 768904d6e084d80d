//! Voice-agent features of the live routes over real loopback sockets, with `tokio-tungstenite` as
//! the client: TTS WebSocket continuations (`context_id`), cancellation and keepalives, the
//! live-session faults (`WsDrop`, `WsClose`, `WsStall`), and live STT resumed from a word
//! boundary. Every test is bounded in time; every loop is bounded in count.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use smallest_emulator::{Emulator, EmulatorBuilder, Fault, FaultRule, RunningEmulator, speech};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

mod common;

use common::{Ws, bounded, next_json, next_within, send, try_connect};

const KEY: &str = "sk_test_voice_0123456789";
const TTS: &str = "/waves/v1/tts/live";
const STT: &str = "/waves/v1/stt/live?model=pulse&language=en&sample_rate=16000&encoding=linear16";

async fn start(builder: EmulatorBuilder) -> RunningEmulator {
    builder.key(KEY).start().await.expect("start")
}

async fn connect(emu: &RunningEmulator, path: &str) -> Ws {
    try_connect(emu, path, Some(KEY)).await.expect("connect")
}

/// Asserts that no text frame arrives within `wait`.
async fn silent_for(ws: &mut Ws, wait: Duration) {
    if let Some(frame) = next_within(ws, wait).await {
        panic!("unexpected frame: {frame}");
    }
}

/// Frames through the next `complete` (included); no error frame on the way.
async fn release(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    for _ in 0..100_000 {
        let frame = next_json(ws).await;
        assert_ne!(frame["status"], "error", "{frame}");
        let done = frame["status"] == "complete";
        frames.push(frame);
        if done {
            return frames;
        }
    }
    panic!("no complete frame");
}

fn audio_of(frames: &[Value]) -> Vec<i16> {
    let mut pcm = Vec::new();
    for f in frames.iter().filter(|f| f["status"] == "chunk") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(f["data"]["audio"].as_str().expect("audio"))
            .expect("base64");
        pcm.extend(bytes);
    }
    pcm.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn words_of(frames: &[Value]) -> Vec<(u64, String, f64, f64)> {
    frames
        .iter()
        .filter(|f| f["status"] == "word_timestamp")
        .map(|f| {
            let d = &f["data"];
            (
                d["id"].as_u64().expect("id"),
                d["word"].as_str().expect("word").to_owned(),
                d["start"].as_f64().expect("start"),
                d["end"].as_f64().expect("end"),
            )
        })
        .collect()
}

/// A continuation fragment with the full config.
fn fragment(context: &str, text: &str, cont: bool) -> Value {
    json!({
        "voice_id": "meher",
        "model": "lightning_v3.1",
        "sample_rate": 16000,
        "speed": 1.0,
        "language": "en",
        "word_timestamps": true,
        "text": text,
        "context_id": context,
        "continue": cont,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_of_one_context_give_one_continuous_audio() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        send(&mut ws, fragment("turn-1", "Hel", true)).await;
        send(&mut ws, fragment("turn-1", "lo wor", true)).await;
        // Nothing to release yet: no sentence boundary, no delay.
        silent_for(&mut ws, Duration::from_millis(200)).await;
        send(&mut ws, fragment("turn-1", "ld. How are", true)).await;
        // The first sentence is released before the context closes.
        let first = release(&mut ws).await;
        send(&mut ws, fragment("turn-1", " you?", false)).await;
        let second = release(&mut ws).await;
        silent_for(&mut ws, Duration::from_millis(300)).await;

        for f in first.iter().chain(&second) {
            assert_eq!(f["context_id"], "turn-1", "{f}");
            assert!(
                f["session_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("ws_"))
            );
            assert!(
                f["request_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("task_"))
            );
        }
        // One request id per release.
        assert_ne!(first[0]["request_id"], second[0]["request_id"]);
        assert!(
            first
                .iter()
                .all(|f| f["request_id"] == first[0]["request_id"])
        );
        // Each release is synthesised like a request: its text alone.
        assert_eq!(
            speech::transcribe_pcm(&audio_of(&first), 16_000),
            "Hello world."
        );
        let mut whole = audio_of(&first);
        whole.extend(audio_of(&second));
        assert_eq!(
            speech::transcribe_pcm(&whole, 16_000),
            "Hello world. How are you?"
        );
        // Word timestamps restart with every release (ids and times).
        let w1 = words_of(&first);
        let w2 = words_of(&second);
        let labels = |w: &[(u64, String, f64, f64)]| {
            w.iter()
                .map(|(id, word, _, _)| format!("{id}:{word}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(&w1), ["0:Hello", "1:world."]);
        assert_eq!(labels(&w2), ["0:How", "1:are", "2:you?"]);
        assert!(w2[0].2 < w1[1].3, "{w1:?} {w2:?}");
        // " How" starts after the lead-in, the start marker and the space symbol.
        assert!((w2[0].2 - 0.16).abs() < 0.01, "{w2:?}");
        let len2 = audio_of(&second).len() as f64 / 16_000.0;
        assert!(w2.iter().all(|w| w.2 < w.3 && w.3 <= len2), "{w2:?}");
        // Word frames come after the chunk that completes their audio, before `complete`.
        assert_eq!(
            second.last().map(|f| &f["status"]),
            Some(&json!("complete"))
        );
        assert!(second.last().is_some_and(|f| f.get("data").is_none()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_buffer_delay_releases_text_without_a_boundary() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        let mut first = fragment("c", "no boundary here", true);
        first["max_buffer_delay_ms"] = json!(300);
        let sent = Instant::now();
        send(&mut ws, first).await;
        let frames = release(&mut ws).await;
        let waited = sent.elapsed();
        assert!(
            waited >= Duration::from_millis(280) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        assert_eq!(
            speech::transcribe_pcm(&audio_of(&frames), 16_000),
            "no boundary here"
        );
        // The window applies to later fragments too (the context's setting is kept).
        send(&mut ws, fragment("c", " and more", true)).await;
        let again = release(&mut ws).await;
        // The release keeps the fragment's leading space (verbatim joining).
        assert_eq!(
            speech::transcribe_pcm(&audio_of(&again), 16_000),
            " and more"
        );
        // `flush: true` releases what is buffered at once, boundary or not.
        let mut flushed = fragment("c", " now", true);
        flushed["flush"] = json!(true);
        let sent = Instant::now();
        send(&mut ws, flushed).await;
        let now = release(&mut ws).await;
        assert!(sent.elapsed() < Duration::from_millis(250), "{:?}", sent.elapsed());
        assert_eq!(speech::transcribe_pcm(&audio_of(&now), 16_000), " now");
        // A whitespace-only rest at the close is not synthesised: no frame at all.
        send(&mut ws, fragment("c", "  ", false)).await;
        silent_for(&mut ws, Duration::from_millis(500)).await;

        // Out of range: an error frame naming the field, the value and the range.
        for bad in [json!(10_001), json!(-1), json!(2.5)] {
            let mut f = fragment("d", "x", true);
            f["max_buffer_delay_ms"] = bad.clone();
            send(&mut ws, f).await;
            let error = next_json(&mut ws).await;
            assert_eq!(error["status"], "error");
            assert_eq!(error["context_id"], "d");
            assert_eq!(
                error["message"],
                format!(
                    "Invalid request: max_buffer_delay_ms: Expected an integer from 0 to 10000, received {bad}"
                )
            );
        }
        // The same validation as legacy messages.
        let mut f = fragment("d", "x", true);
        f["voice_id"] = json!("nobody");
        send(&mut ws, f).await;
        let error = next_json(&mut ws).await;
        assert_eq!(error["message"], "Invalid request: voice_id: Invalid Voice ID");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_are_served_one_at_a_time_in_order() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        send(&mut ws, fragment("a", "First one.", true)).await;
        send(&mut ws, fragment("b", "Second", true)).await;
        send(&mut ws, fragment("c", "Third one.", false)).await;
        send(&mut ws, fragment("b", " one.", false)).await;
        let a1 = release(&mut ws).await;
        assert!(a1.iter().all(|f| f["context_id"] == "a"));
        // `a` is still open: `b` and `c` wait, however complete their text.
        silent_for(&mut ws, Duration::from_millis(300)).await;
        send(&mut ws, fragment("a", " Still first.", false)).await;
        let a2 = release(&mut ws).await;
        let b = release(&mut ws).await;
        let c = release(&mut ws).await;
        silent_for(&mut ws, Duration::from_millis(300)).await;
        for (frames, id, text) in [
            (&a2, "a", "Still first."),
            (&b, "b", "Second one."),
            (&c, "c", "Third one."),
        ] {
            assert!(frames.iter().all(|f| f["context_id"] == id), "{id}");
            assert_eq!(
                speech::transcribe_pcm(&audio_of(frames), 16_000).trim(),
                text
            );
        }
        // A closed context takes no more fragments while its audio is pending; once finished,
        // its id may start a new context.
        send(&mut ws, fragment("a", "Again.", false)).await;
        let again = release(&mut ws).await;
        assert_eq!(speech::transcribe_pcm(&audio_of(&again), 16_000), "Again.");
        // Legacy requests keep working on the same socket.
        send(
            &mut ws,
            json!({"voice_id": "meher", "text": "Legacy.", "sample_rate": 16000}),
        )
        .await;
        let legacy = release(&mut ws).await;
        assert!(legacy.iter().all(|f| f.get("context_id").is_none()));
        assert_eq!(
            speech::transcribe_pcm(&audio_of(&legacy), 16_000),
            "Legacy."
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_context_at_once_and_the_next_one_is_clean() {
    bounded(90, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, TTS).await;
        // A long release (about 17.6 million samples, 35 MB of PCM): far more than the socket
        // buffers hold, so the cancel arrives while it is being sent.
        let long = format!("{}.", "a".repeat(8000));
        let full_samples = speech::synthesized_len(&long, 44_100, 1.0);
        let mut first = fragment("long", &long, true);
        first["sample_rate"] = json!(44_100);
        send(&mut ws, first).await;
        send(&mut ws, fragment("next", "Next context.", false)).await;
        send(&mut ws, fragment("queued", "Never spoken.", false)).await;
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["context_id"], "long");
        // A queued context is removed (before `long` ends, so it surely has not started);
        // unknown contexts are no-ops.
        let cancels = [
            json!({"context_id": "queued", "cancel_request": true, "text": "x"}),
            json!({"context_id": "nobody", "cancel_request": true}),
            json!({"context_id": "long", "cancel_request": true}),
        ];
        for cancel in cancels {
            send(&mut ws, cancel).await;
        }
        // A fragment that crossed the cancellation is ignored.
        send(&mut ws, fragment("long", " More.", false)).await;

        let mut long_samples = 0;
        let mut next = Vec::new();
        for _ in 0..100_000 {
            let f = next_json(&mut ws).await;
            assert_ne!(f["status"], "error", "{f}");
            match f["context_id"].as_str() {
                Some("long") => {
                    assert!(
                        next.is_empty(),
                        "a frame of the cancelled context after the next one's"
                    );
                    assert_ne!(f["status"], "complete", "the cancelled context completed");
                    long_samples += audio_of(std::slice::from_ref(&f)).len();
                }
                Some("next") => {
                    let done = f["status"] == "complete";
                    next.push(f);
                    if done {
                        break;
                    }
                }
                other => panic!("frame of {other:?}: {f}"),
            }
        }
        assert!(
            long_samples < full_samples / 2,
            "{long_samples} of {full_samples}"
        );
        assert_eq!(
            speech::transcribe_pcm(&audio_of(&next), 16_000),
            "Next context."
        );
        silent_for(&mut ws, Duration::from_millis(400)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_the_latency_and_the_slot_is_freed() {
    bounded(60, async {
        let emu = start(Emulator::builder().tts_latency(Duration::from_millis(400))).await;
        let mut ws = connect(&emu, TTS).await;
        send(&mut ws, fragment("a", "Held.", true)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The release holds the key's only TTS slot during its latency: HTTP gets 429.
        assert_eq!(http_tts_status(&emu).await, 429);
        send(&mut ws, json!({"context_id": "a", "cancel_request": true})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Cancelled: the slot is free again, and nothing of `a` is ever sent.
        assert_eq!(http_tts_status(&emu).await, 200);
        silent_for(&mut ws, Duration::from_millis(700)).await;
        send(&mut ws, fragment("b", "Fresh.", false)).await;
        let b = release(&mut ws).await;
        assert!(b.iter().all(|f| f["context_id"] == "b"));
        assert_eq!(speech::transcribe_pcm(&audio_of(&b), 16_000), "Fresh.");
    })
    .await;
}

/// The status of a plain (not upgrading) authenticated `GET`.
async fn http_get_status(emu: &RunningEmulator, path: &str) -> u16 {
    let mut tcp = TcpStream::connect(emu.addr()).await.expect("tcp");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).await.expect("read");
    String::from_utf8_lossy(&reply)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The status of a small `POST /waves/v1/tts`.
async fn http_tts_status(emu: &RunningEmulator) -> u16 {
    let mut tcp = TcpStream::connect(emu.addr()).await.expect("tcp");
    let body = json!({"voice_id": "magnus", "text": "x", "sample_rate": 8000}).to_string();
    let request = format!(
        "POST /waves/v1/tts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).await.expect("read");
    String::from_utf8_lossy(&reply)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_echo_frames_carry_no_context_id() {
    bounded(60, async {
        let emu = start(Emulator::builder().ws_echo_context_id(false)).await;
        let mut ws = connect(&emu, TTS).await;
        send(&mut ws, fragment("quiet", "Hi there. Bye", false)).await;
        let one = release(&mut ws).await;
        let two = release(&mut ws).await;
        for f in one.iter().chain(&two) {
            assert!(f.get("context_id").is_none(), "{f}");
        }
        let mut pcm = audio_of(&one);
        pcm.extend(audio_of(&two));
        assert_eq!(speech::transcribe_pcm(&pcm, 16_000), "Hi there. Bye");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_is_a_no_op_that_resets_the_idle_timer() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, "/waves/v1/tts/live?timeout=1").await;
        let started = Instant::now();
        // Pipecat's keepalive, with and without the config: no frame, no error.
        for i in 0..4 {
            let keepalive = if i % 2 == 0 {
                json!({"text": " ", "continue": true, "voice_id": "magnus", "sample_rate": 16000})
            } else {
                json!({"text": " ", "continue": true})
            };
            send(&mut ws, keepalive).await;
            silent_for(&mut ws, Duration::from_millis(600)).await;
        }
        // 2.4 s without a timeout; then, without keepalives, it comes.
        let quiet = Instant::now();
        let frame = next_json(&mut ws).await;
        assert_eq!(
            frame,
            json!({"status": "error", "message": "Connection timed out after 1 seconds of inactivity"})
        );
        assert!(started.elapsed() >= Duration::from_millis(2400));
        assert!(quiet.elapsed() >= Duration::from_millis(300), "{:?}", quiet.elapsed());
    })
    .await;
}

/// Reads until the connection ends; `Ok(code)` for a close frame, `Err` for how it ended
/// otherwise.
async fn end_of(ws: &mut Ws) -> Result<(CloseCode, String), String> {
    for _ in 0..100_000 {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the connection did not end within 10 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return Ok((frame.code, frame.reason.as_str().to_owned()));
            }
            Some(Ok(Message::Close(None))) => return Ok((CloseCode::Status, String::new())),
            Some(Ok(_)) => {}
            Some(Err(WsError::Io(e))) => return Err(format!("io: {:?}", e.kind())),
            Some(Err(e)) => return Err(format!("{e}")),
            None => return Err("end".to_owned()),
        }
    }
    panic!("endless stream");
}

/// Sends `audio` as binary frames of 4096 bytes, the recommended size.
async fn send_audio(ws: &mut Ws, audio: &[u8]) {
    for frame in audio.chunks(4096) {
        ws.send(Message::binary(frame.to_vec()))
            .await
            .expect("send");
    }
}

fn pcm_bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_drop_resets_the_first_two_sessions_then_lets_them_be() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        emu.inject(
            FaultRule::new(
                "/waves/v1/stt/live",
                Fault::WsDrop {
                    after_messages: 3,
                    after_ms: None,
                },
            )
            .times(2),
        );
        // A plain HTTP request on the prefix neither matches nor uses the rule up.
        assert_eq!(http_get_status(&emu, "/waves/v1/stt/live").await, 426);
        let text = "Dropped twice, then heard.";
        let pcm = pcm_bytes(&speech::synthesize_pcm(text, 16_000, 1.0));
        for attempt in 0..2 {
            let mut ws = connect(&emu, STT).await;
            for frame in pcm.chunks(4096).take(5) {
                // Writes after the reset may fail; the read below tells what happened.
                let _ = ws.send(Message::binary(frame.to_vec())).await;
            }
            assert_eq!(
                end_of(&mut ws).await,
                Err("io: ConnectionReset".to_owned()),
                "attempt {attempt}"
            );
        }
        // The third session is served normally.
        let mut ws = connect(&emu, STT).await;
        send_audio(&mut ws, &pcm).await;
        send(&mut ws, json!({"type": "close_stream"})).await;
        let mut finals = Vec::new();
        for _ in 0..10_000 {
            let f = next_json(&mut ws).await;
            if f["is_final"] == true {
                finals.push(f["transcript"].as_str().unwrap_or("").to_owned());
                if f["is_last"] == true {
                    break;
                }
            }
        }
        assert_eq!(finals.join(" ").trim(), text);
        // Upgrades used the rule up.
        let rules: Value = {
            let mut tcp = TcpStream::connect(emu.addr()).await.expect("tcp");
            tcp.write_all(
                b"GET /_emulator/faults HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("write");
            let mut reply = Vec::new();
            tcp.read_to_end(&mut reply).await.expect("read");
            let reply = String::from_utf8_lossy(&reply).into_owned();
            let body = reply
                .split_once("\r\n\r\n")
                .map_or("", |(_, b)| b)
                .to_owned();
            serde_json::from_str(&body).expect("JSON")
        };
        assert_eq!(rules["faults"][0]["applied"], 2, "{rules}");
        assert_eq!(rules["faults"][0]["matched"], 3, "{rules}");
        assert_eq!(rules["faults"][0]["fault"]["kind"], "ws_drop");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_drop_after_ms_from_the_control_endpoint() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let rule = r#"{"path_prefix":"/waves/v1/tts/live","times":1,"fault":{"kind":"ws_drop","after_ms":1000}}"#;
        let mut tcp = TcpStream::connect(emu.addr()).await.expect("tcp");
        let request = format!(
            "POST /_emulator/faults HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{rule}",
            rule.len()
        );
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut reply = Vec::new();
        tcp.read_to_end(&mut reply).await.expect("read");
        assert!(reply.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&reply));
        assert_eq!(
            emu.faults()[0].fault,
            Fault::WsDrop {
                after_messages: u32::MAX,
                after_ms: Some(1000)
            }
        );
        let started = Instant::now();
        let mut ws = connect(&emu, TTS).await;
        // Messages are served until the timer strikes.
        send(&mut ws, fragment("c", "Before the drop.", false)).await;
        let frames = release(&mut ws).await;
        assert_eq!(
            speech::transcribe_pcm(&audio_of(&frames), 16_000),
            "Before the drop."
        );
        assert_eq!(end_of(&mut ws).await, Err("io: ConnectionReset".to_owned()));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(280) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert_eq!(
            emu.requests().last().and_then(|r| r.fault.clone()),
            Some(Fault::WsDrop {
                after_messages: u32::MAX,
                after_ms: Some(1000)
            })
        );
        // `times: 1`: the next socket is normal.
        let mut ws = connect(&emu, TTS).await;
        send(&mut ws, fragment("c", "After.", false)).await;
        release(&mut ws).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_close_sends_the_code_after_n_messages() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        emu.inject(
            FaultRule::new(
                TTS,
                Fault::WsClose {
                    code: 1011,
                    after_messages: 1,
                },
            )
            .times(1),
        );
        let mut ws = connect(&emu, TTS).await;
        // The first message is handled (and answered) in full…
        send(
            &mut ws,
            json!({"voice_id": "magnus", "text": "Only this.", "sample_rate": 16000}),
        )
        .await;
        let frames = release(&mut ws).await;
        assert_eq!(
            speech::transcribe_pcm(&audio_of(&frames), 16_000),
            "Only this."
        );
        // …then the close comes instead of the second.
        assert_eq!(
            end_of(&mut ws).await,
            Ok((CloseCode::Error, "emulated fault".to_owned()))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_stall_after_the_upgrade() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        emu.inject(FaultRule::new("/waves/v1/stt/live", Fault::WsStall).times(1));
        let mut ws = connect(&emu, STT).await;
        let pcm = pcm_bytes(&speech::synthesize_pcm("Anyone there?", 16_000, 1.0));
        send_audio(&mut ws, &pcm).await;
        send(&mut ws, json!({"type": "finalize"})).await;
        ws.send(Message::Ping(b"hello".to_vec().into()))
            .await
            .expect("ping");
        // No transcription, no pong, no close: nothing at all.
        let got = tokio::time::timeout(Duration::from_millis(800), ws.next()).await;
        assert!(got.is_err(), "{got:?}");
        drop(ws);
        // The next session is normal.
        let mut ws = connect(&emu, STT).await;
        send_audio(&mut ws, &pcm).await;
        send(&mut ws, json!({"type": "finalize"})).await;
        let mut text = String::new();
        for _ in 0..10_000 {
            let f = next_json(&mut ws).await;
            if f["is_final"] == true {
                text.push_str(f["transcript"].as_str().unwrap_or(""));
                if f["from_finalize"] == true {
                    break;
                }
                text.push(' ');
            }
        }
        assert_eq!(text.trim(), "Anyone there?");
    })
    .await;
}

/// Finals of an STT session until `is_last` (after `close_stream`), or until `finals` were seen.
async fn finals(ws: &mut Ws, stop_after: Option<usize>) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let f = next_json(ws).await;
        assert_eq!(f["type"], "transcription", "{f}");
        if f["is_final"] == true {
            let last = f["is_last"] == true;
            out.push(f);
            if last || stop_after == Some(out.len()) {
                return out;
            }
        }
    }
    panic!("too many frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_resumed_from_the_last_final_word_gives_the_rest() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let text = "The first part of the sentence and then the rest of it.";
        let words: Vec<&str> = text.split_whitespace().collect();
        let pcm = speech::synthesize_pcm(text, 16_000, 1.0);
        let query = format!("{STT}&word_timestamps=true&max_words=4");

        // The first connection hears about half of the sentence: one final of four words.
        let mut ws = connect(&emu, &query).await;
        let half = pcm_bytes(&pcm[..pcm.len() * 30 / 56]);
        send_audio(&mut ws, &half).await;
        let first = finals(&mut ws, Some(1)).await.remove(0);
        assert_eq!(first["transcript"], "The first part of");
        let last_end = first["words"][3]["end"].as_f64().expect("end");
        // The connection dies (the client drops it without a close).
        drop(ws);

        // The second connection replays the audio from the end of the last final word.
        let cut = ((last_end * 16_000.0).round() as usize).min(pcm.len());
        let mut ws = connect(&emu, &query).await;
        send_audio(&mut ws, &pcm_bytes(&pcm[cut..])).await;
        send(&mut ws, json!({"type": "close_stream"})).await;
        let rest = finals(&mut ws, None).await;
        let heard: Vec<String> = rest
            .iter()
            .flat_map(|f| {
                f["transcript"]
                    .as_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(heard, words[4..], "{rest:?}");
        // Word times count from the start of this connection's audio.
        let w0 = &rest[0]["words"][0];
        assert_eq!(w0["word"], "the");
        let start = w0["start"].as_f64().expect("start");
        assert!(start < 0.1, "{w0}");
        let expected = (cut as f64) / 16_000.0;
        assert!(start + expected > last_end, "{w0} {last_end}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_audio_after_a_finalize_is_transcribed() {
    bounded(60, async {
        let emu = start(Emulator::builder()).await;
        let mut ws = connect(&emu, &format!("{STT}&word_timestamps=true")).await;
        let one = speech::synthesize_pcm("Before finalize.", 16_000, 1.0);
        let two = speech::synthesize_pcm("After it.", 16_000, 1.0);
        send_audio(&mut ws, &pcm_bytes(&one)).await;
        send(&mut ws, json!({"type": "finalize"})).await;
        send_audio(&mut ws, &pcm_bytes(&two)).await;
        send(&mut ws, json!({"type": "close_stream"})).await;
        let all = finals(&mut ws, None).await;
        let texts: Vec<&str> = all
            .iter()
            .map(|f| f["transcript"].as_str().unwrap_or(""))
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(texts.join(" "), "Before finalize. After it.");
        // The second utterance's words are timed from the start of the connection's audio.
        let after = all
            .iter()
            .find(|f| f["transcript"] == "After it.")
            .expect("final of the second utterance");
        let start = after["words"][0]["start"].as_f64().expect("start");
        assert!(start > one.len() as f64 / 16_000.0, "{after}");
    })
    .await;
}
