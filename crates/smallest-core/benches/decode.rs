//! Decode throughput: the TTS SSE decoder against a plain base64 decode of the same
//! audio, on the same machine, in one run. `cargo bench -p smallest-core --bench decode`
//! (or `cargo xtask bench`). Prints MB/s of SSE input; no assertions: benchmarks are
//! never tests.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use smallest_core::sse::SseDecoder;
use smallest_core::tts::OutputFormat;
use smallest_core::tts_stream::TtsStreamDecoder;

/// 64 MiB of PCM in ~1 KB chunks, framed exactly as `/waves/v1/tts/live` frames it.
fn fixture() -> (Vec<u8>, Vec<String>) {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut body = Vec::new();
    let mut payloads = Vec::new();
    for _ in 0..(64 << 20) / 1024 {
        let chunk: Vec<u8> = (0..1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let b64 = STANDARD.encode(&chunk);
        body.extend_from_slice(b"event: audio\ndata: {\"audio\": \"");
        body.extend_from_slice(b64.as_bytes());
        body.extend_from_slice(b"\", \"done\": false, \"status\": \"206\"}\n\n");
        payloads.push(b64);
    }
    body.extend_from_slice(b"data: {\"status\": \"200\", \"done\": true}\n\n");
    (body, payloads)
}

fn measure(name: &str, input_bytes: usize, mut run: impl FnMut() -> usize) {
    run(); // warm up
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..5 {
        let started = Instant::now();
        out = black_box(run());
        best = best.min(started.elapsed());
    }
    let mbps = input_bytes as f64 / 1e6 / best.as_secs_f64();
    println!(
        "{name:<44} {mbps:>9.0} MB/s of SSE input  ({} MB in {best:.2?}, {out} bytes out)",
        input_bytes / 1_000_000
    );
}

fn main() {
    let (body, payloads) = fixture();
    let n = body.len();
    println!(
        "fixture: {} bytes of SSE, {} audio events",
        n,
        payloads.len()
    );

    measure("base64 decode of the same payloads", n, || {
        let mut buf = Vec::with_capacity(2048);
        let mut total = 0;
        for p in &payloads {
            buf.clear();
            STANDARD.decode_vec(p, &mut buf).unwrap_or_default();
            total += buf.len();
        }
        total
    });

    measure("SseDecoder (events only), 16 KiB reads", n, || {
        let mut d = SseDecoder::new();
        let mut total = 0;
        for piece in body.chunks(16 << 10) {
            d.feed(piece);
            while let Some(Ok(e)) = d.next_event() {
                total += e.data.len();
            }
        }
        total
    });

    for read in [1500usize, 16 << 10] {
        measure(
            &format!("TtsStreamDecoder (audio out), {read} B reads"),
            n,
            || {
                let mut d = TtsStreamDecoder::new(OutputFormat::Pcm, 24000);
                let mut total = 0;
                for piece in body.chunks(read) {
                    d.feed(piece);
                    while let Some(Ok(c)) = d.next_chunk() {
                        total += c.len();
                    }
                }
                while let Ok(Some(c)) = d.finish() {
                    total += c.len();
                }
                total
            },
        );
    }
}
