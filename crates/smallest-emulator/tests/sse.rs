//! `POST /waves/v1/tts/live` (Server-Sent Events) over real sockets, parsed by hand.

mod raw;

use std::time::Duration;

use http::StatusCode;
use raw::{KEY, bounded, frames, parse_sse, post_json, reply};
use serde_json::json;
use smallest_emulator::{Emulator, RunningEmulator, speech};
use tokio::time::Instant;

const LIVE: &str = "/waves/v1/tts/live";

async fn start(builder: smallest_emulator::EmulatorBuilder) -> RunningEmulator {
    builder.key(KEY).start().await.expect("start")
}

#[tokio::test]
async fn wire_format_is_exact() {
    bounded(async {
        let emu = start(Emulator::builder()).await;
        let body = json!({"text": "Hi", "voice_id": "magnus", "sample_rate": 8000,
                          "session_id": "sess.1"});
        let r = reply(post_json(emu.addr(), LIVE, &body).await).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert!(r.header("x-session-id").is_some_and(|v| v.len() == 36));
        assert!(r.header("x-request-id").is_some_and(|v| v.len() == 36));
        assert_eq!(r.header("x-external-session-id"), Some("sess.1"));
        assert_eq!(r.header("x-external-request-id"), Some(""));
        assert!(r.header("content-length").is_none());

        // By hand, without the helper: the first event and the last frame, byte for byte.
        let text = std::str::from_utf8(&r.body).expect("utf-8");
        assert!(
            text.starts_with("event: audio\ndata: {\"audio\": \""),
            "{}",
            &text[..60.min(text.len())]
        );
        let first_end = text.find("\n\n").expect("first event");
        assert!(
            text[..first_end].ends_with("\", \"done\": false, \"status\": \"206\"}"),
            "{}",
            &text[..first_end]
        );
        assert_eq!(text[..first_end].lines().count(), 2);
        assert!(text.ends_with(
            "\", \"done\": false, \"status\": \"206\"}\n\ndata: {\"status\": \"200\", \"done\": true}\n\n"
        ));

        let (chunks, done) = parse_sse(&r.body);
        assert!(done);
        // "Hi" at 8 kHz: 280 ms = 2 240 samples = 4 480 bytes → 4 chunks of 1 024 and one of 384.
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1024, 1024, 1024, 1024, 384]);
        let pcm: Vec<i16> = chunks
            .concat()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(pcm, speech::synthesize_pcm("Hi", 8000, 1.0));
        assert_eq!(emu.requests()[0].status, 200);
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn chunks_concatenate_to_the_sync_body() {
    bounded(async {
        let emu = start(Emulator::builder()).await;
        for (format, rate) in [
            ("pcm", 24000),
            ("mp3", 24000),
            ("wav", 16000),
            ("ulaw", 8000),
        ] {
            let body = json!({"text": "Streams and sync agree.", "voice_id": "magnus",
                              "sample_rate": rate, "output_format": format, "speed": 1.5});
            let sync = reply(post_json(emu.addr(), "/waves/v1/tts", &body).await).await;
            assert_eq!(sync.status, StatusCode::OK, "{format}");
            let live = reply(post_json(emu.addr(), LIVE, &body).await).await;
            assert_eq!(live.status, StatusCode::OK, "{format}");
            let (chunks, done) = parse_sse(&live.body);
            assert!(done, "{format}");
            assert!(chunks.len() > 2, "{format}");
            assert!(
                chunks[..chunks.len() - 1].iter().all(|c| c.len() == 1024),
                "{format}"
            );
            assert_eq!(chunks.concat(), sync.body.to_vec(), "{format}");
        }
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn odd_chunk_size_splits_samples_and_still_round_trips() {
    bounded(async {
        let emu = start(Emulator::builder().sse_chunk_bytes(1023)).await;
        let text = "odd chunks";
        let body = json!({"text": text, "voice_id": "magnus", "sample_rate": 16000});
        let r = reply(post_json(emu.addr(), LIVE, &body).await).await;
        let (chunks, done) = parse_sse(&r.body);
        assert!(done);
        assert!(chunks.len() > 3);
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == 1023));
        // The second chunk starts with the high byte of a sample split by the first.
        let joined = chunks.concat();
        assert_eq!(joined[1023], chunks[1][0]);
        let pcm: Vec<i16> = joined
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(speech::transcribe_pcm(&pcm, 16000), text);
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn stop_before_done_ends_cleanly_without_the_done_frame() {
    bounded(async {
        let emu = start(Emulator::builder().sse_stop_before_done(true)).await;
        let body = json!({"text": "no end", "voice_id": "magnus", "sample_rate": 8000});
        let resp = post_json(emu.addr(), LIVE, &body).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let got = frames(resp).await;
        assert!(got.error.is_none(), "{:?}", got.error);
        let (chunks, done) = parse_sse(&got.bytes());
        assert!(!done);
        assert_eq!(
            chunks.concat().len(),
            speech::synthesize_pcm("no end", 8000, 1.0).len() * 2
        );
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn realtime_factor_paces_events() {
    bounded(async {
        // "abc" at 8 kHz is 330 ms of audio (5 280 bytes); at twice real time the last event is
        // due 165 ms after the stream starts.
        let emu = start(Emulator::builder().realtime_factor(2.0)).await;
        let body = json!({"text": "abc", "voice_id": "magnus", "sample_rate": 8000});
        let sent = Instant::now();
        let resp = post_json(emu.addr(), LIVE, &body).await.expect("response");
        let got = frames(resp).await;
        let (chunks, done) = parse_sse(&got.bytes());
        assert!(done);
        assert_eq!(chunks.len(), 6);
        // One event per frame, arriving in order and spread out.
        assert!(got.frames.len() >= 6);
        let times: Vec<Instant> = got.frames.iter().map(|(t, _)| *t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let last = *times.last().expect("frames");
        assert!(
            last - sent >= Duration::from_millis(150),
            "{:?}",
            last - sent
        );
        // The first chunk (64 ms of audio) is due after 32 ms; the last one 133 ms later.
        assert!(
            last - times[0] >= Duration::from_millis(100),
            "{:?}",
            last - times[0]
        );

        // Pacing changes the timing only.
        let fast = start(Emulator::builder()).await;
        let r = reply(post_json(fast.addr(), LIVE, &body).await).await;
        assert_eq!(parse_sse(&r.body).0.concat(), chunks.concat());
        emu.shutdown_gracefully().await;
        fast.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn errors_before_streaming_are_json() {
    bounded(async {
        let emu = start(Emulator::builder().realtime_factor(1.0)).await;
        let addr = emu.addr();
        // 400: the zod issue array, as on the sync route.
        let r =
            reply(post_json(addr, LIVE, &json!({"text": "x", "voice_id": "nobody"})).await).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(r.json()["error"][0]["message"], "Invalid Voice ID");
        // 401 without a key.
        let r = reply(
            raw::send(
                addr,
                http::Method::POST,
                LIVE,
                &[],
                json!({"text": "x"}).to_string(),
            )
            .await,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.json(),
            json!({"message": "Unauthorized: No tokens provided"})
        );

        // 429 while a stream holds the key's only slot (paced, so it lasts ~4 s).
        let long = json!({"text": "x".repeat(80), "voice_id": "magnus", "sample_rate": 8000});
        let holding = post_json(addr, LIVE, &long).await.expect("response");
        assert_eq!(holding.status(), StatusCode::OK);
        let r = reply(post_json(addr, LIVE, &long).await).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.json()["error"], "Too many concurrent requests");
        let r = reply(post_json(addr, "/waves/v1/tts", &long).await).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "shared with sync TTS"
        );
        // Hanging up frees the slot.
        drop(holding);
        let mut freed = false;
        for _ in 0..100 {
            let r = post_json(addr, LIVE, &json!({"text": "y", "voice_id": "magnus"}))
                .await
                .expect("response");
            if r.status() == StatusCode::OK {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(freed, "the slot was not released after the client hung up");
        emu.shutdown_gracefully().await;
    })
    .await;
}

#[tokio::test]
async fn a_gibibyte_stream_is_rendered_lazily() {
    bounded(async {
        // "a" × 250 000 at 44.1 kHz PCM: 1.03 GiB of raw audio (1.37 GiB of events).
        let emu = start(Emulator::builder().text_repeat(250_000)).await;
        let addr = emu.addr();
        let body = json!({"text": "a", "voice_id": "magnus"});
        let started = Instant::now();
        let resp = post_json(addr, LIVE, &body).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        // The stream holds the key's slot.
        let sync = post_json(addr, "/waves/v1/tts", &body)
            .await
            .expect("response");
        assert_eq!(sync.status(), StatusCode::TOO_MANY_REQUESTS);
        let mut body_stream = resp.into_body();
        let mut seen = 0usize;
        while seen < 4 << 20 {
            use http_body_util::BodyExt;
            match body_stream.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                other => panic!("stream ended early: {:?}", other.map(|f| f.is_ok())),
            }
        }
        // 4 MiB in: far from the end, and quick because nothing is rendered ahead of the reader.
        assert!(started.elapsed() < Duration::from_secs(30));
        drop(body_stream);
        // Hanging up frees the slot; the sync route announces the full length up front.
        let mut sync_len = None;
        for _ in 0..250 {
            let r = post_json(addr, "/waves/v1/tts", &body)
                .await
                .expect("response");
            if r.status() == StatusCode::OK {
                sync_len = r
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let expected = speech::synthesized_len(&"a".repeat(250_000), 44_100, 1.0) as u64 * 2;
        assert_eq!(sync_len, Some(expected));
        assert!(expected >= 1 << 30);
        emu.shutdown_gracefully().await;
    })
    .await;
}
