//! Streamed TTS over Server-Sent Events (API.md §3.4): the request, the response head,
//! and the body decoder (whole samples, the `done` frame, mid-stream errors).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use proptest::prelude::*;
use smallest_core::tts::{OutputFormat, TtsRequest};
use smallest_core::tts_stream::{
    AudioChunk, TTS_STREAM_PATH, TtsStreamDecoder, TtsStreamRequest, TtsStreamStart,
};
use smallest_core::{ApiErrorKind, ApiKey, Config, Endpoint, Error};
use std::time::Duration;

const KEY: &str = "sk_canary_tts_stream_51f0";

fn config() -> Config {
    Config::new(ApiKey::new(KEY).unwrap())
}

fn audio_frame(bytes: &[u8]) -> String {
    format!(
        "event: audio\ndata: {{\"audio\": \"{}\", \"done\": false, \"status\": \"206\"}}\n\n",
        STANDARD.encode(bytes)
    )
}

const DONE: &str = "data: {\"status\": \"200\", \"done\": true}\n\n";

/// A deterministic pseudo-random byte source (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An SSE body carrying `audio` cut into frames of the given sizes, then `done`.
fn body_of(audio: &[u8], frame_sizes: &[usize], done: bool) -> String {
    let mut body = String::new();
    let mut rest = audio;
    for &n in frame_sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (frame, tail) = rest.split_at(n.clamp(1, rest.len()));
        body.push_str(&audio_frame(frame));
        rest = tail;
    }
    if done {
        body.push_str(DONE);
    }
    body
}

/// Feeds `pieces`, pulling after each; returns the chunks and the first error.
fn run(mut decoder: TtsStreamDecoder, pieces: &[&[u8]]) -> (Vec<AudioChunk>, Result<(), Error>) {
    let mut chunks = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        while let Some(item) = decoder.next_chunk() {
            match item {
                Ok(chunk) => chunks.push(chunk),
                Err(e) => {
                    assert!(decoder.next_chunk().is_none(), "nothing after an error");
                    assert!(
                        decoder.finish().is_err(),
                        "an error is never followed by a quiet end"
                    );
                    return (chunks, Err(e));
                }
            }
        }
    }
    loop {
        match decoder.finish() {
            Ok(Some(chunk)) => chunks.push(chunk),
            Ok(None) => return (chunks, Ok(())),
            Err(e) => {
                assert!(decoder.finish().is_err(), "finish keeps failing");
                return (chunks, Err(e));
            }
        }
    }
}

fn pcm(rate: u32) -> TtsStreamDecoder {
    TtsStreamDecoder::new(OutputFormat::Pcm, rate)
}

fn concat(chunks: &[AudioChunk]) -> Vec<u8> {
    chunks
        .iter()
        .flat_map(|c| c.data().iter().copied())
        .collect()
}

fn check_chunk_bookkeeping(chunks: &[AudioChunk]) {
    let mut offset = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.index(), i as u64);
        assert_eq!(chunk.offset_bytes(), offset);
        assert!(!chunk.is_empty());
        offset += chunk.len() as u64;
    }
}

fn stream_error(result: Result<(), Error>) -> (Option<String>, String) {
    match result {
        Err(Error::Stream { code, message }) => (code, message),
        other => panic!("expected Error::Stream, got {other:?}"),
    }
}

fn decode_error(result: Result<(), Error>) -> String {
    match result {
        Err(e @ Error::Decode { .. }) => e.to_string(),
        other => panic!("expected Error::Decode, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The request and the response head
// ---------------------------------------------------------------------------

#[test]
fn the_request_is_a_post_to_tts_live_with_the_sync_body() {
    let tts = TtsRequest::new("Hello there.", "meher")
        .sample_rate(24000)
        .output_format(OutputFormat::Mp3)
        .request_id("req-1")
        .expire_content(true);
    let stream = TtsStreamRequest::new(tts.clone());
    assert_eq!(stream.request(), &tts);
    let request = stream.to_http_request(&config()).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(TTS_STREAM_PATH, "/waves/v1/tts/live");
    assert_eq!(request.uri(), "https://api.smallest.ai/waves/v1/tts/live");
    assert_eq!(request.headers()["accept"], "text/event-stream");
    assert_eq!(request.headers()["content-type"], "application/json");
    assert_eq!(request.headers()["x-expire-content"], "true");
    assert!(request.headers().get("authorization").is_none());
    let sync = tts.to_http_request(&config()).unwrap();
    assert_eq!(
        request.body(),
        sync.body(),
        "the same JSON body as synchronous TTS"
    );

    let prepared = stream.prepare(&config()).unwrap();
    let auth = &prepared.headers()["authorization"];
    assert!(auth.is_sensitive());
    assert_eq!(auth, &format!("Bearer {KEY}"));
    assert!(prepared.headers().contains_key("user-agent"));
    assert!(prepared.headers().contains_key("x-source"));
    assert!(!format!("{stream:?}").contains(KEY));
}

#[test]
fn an_invalid_synthesis_is_refused_before_sending() {
    let stream = TtsStreamRequest::new(TtsRequest::new("hi", "meher").sample_rate(22050));
    let error = stream.to_http_request(&config()).unwrap_err();
    assert_eq!(error.validation().unwrap().field(), "sample_rate");
    assert!(stream.prepare(&config()).is_err());
}

fn head(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn stream_request() -> TtsStreamRequest {
    TtsStreamRequest::new(
        TtsRequest::new("Hello.", "meher")
            .sample_rate(16000)
            .output_format(OutputFormat::Wav),
    )
}

#[test]
fn a_200_event_stream_starts_a_decoder_with_the_request_and_response_facts() {
    let head = head(
        200,
        &[
            ("content-type", "text/event-stream; charset=utf-8"),
            ("x-request-id", "rid-7"),
            ("x-session-id", "sess-1"),
        ],
    );
    let TtsStreamStart::Stream(decoder) = stream_request().start(&head) else {
        panic!("a 200 event stream must stream");
    };
    assert_eq!(decoder.format(), OutputFormat::Wav);
    assert_eq!(decoder.sample_rate(), 16000);
    assert_eq!(decoder.info().request_id.as_deref(), Some("rid-7"));
    assert_eq!(decoder.info().session_id.as_deref(), Some("sess-1"));
    // Case-insensitive media type, and a missing one is tolerated.
    for headers in [&[("content-type", "Text/Event-Stream")][..], &[]] {
        assert!(matches!(
            stream_request().start(&self::head(200, headers)),
            TtsStreamStart::Stream(_)
        ));
    }
}

#[test]
fn a_200_with_a_json_body_is_an_error_that_quotes_it() {
    let head = head(200, &[("content-type", "application/json")]);
    let TtsStreamStart::Failed(failed) = stream_request().start(&head) else {
        panic!("a JSON 200 must not stream");
    };
    assert_eq!(failed.status(), 200);
    let error = failed.into_error(br#"{"audio_url": "https://example.com/a.wav"}"#);
    let message = error.to_string();
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
    assert!(message.contains("application/json"), "{message}");
    assert!(message.contains("audio_url"), "{message}");
    // Audio bytes on a 200 are not an event stream either.
    let head = self::head(200, &[("content-type", "audio/wav")]);
    assert!(matches!(
        stream_request().start(&head),
        TtsStreamStart::Failed(_)
    ));
}

#[test]
fn a_401_head_asks_for_the_body_and_becomes_an_api_error() {
    let head = head(
        401,
        &[
            ("content-type", "application/json"),
            ("x-request-id", "rid-401"),
        ],
    );
    let TtsStreamStart::Failed(failed) = stream_request().start(&head) else {
        panic!("a 401 must not stream");
    };
    assert_eq!(
        failed.max_body_bytes(),
        smallest_core::error::MAX_ERROR_BODY + 1
    );
    let error = failed
        .into_error(br#"{"error":"Unauthorized","message":"Bearer token is missing or invalid."}"#);
    assert!(error.is_auth());
    let api = error.api().unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.kind(), &ApiErrorKind::Unauthorized);
    assert_eq!(api.message(), "Bearer token is missing or invalid.");
    assert_eq!(api.request_id(), Some("rid-401"));
}

#[test]
fn a_429_and_a_500_are_api_errors_even_with_an_event_stream_content_type() {
    for status in [429, 500] {
        let head = head(status, &[("content-type", "text/event-stream")]);
        let TtsStreamStart::Failed(failed) = stream_request().start(&head) else {
            panic!("{status} must not stream");
        };
        let error = failed.into_error(b"");
        assert_eq!(error.api().unwrap().status(), status);
        assert!(error.is_retryable());
    }
}

// ---------------------------------------------------------------------------
// The body
// ---------------------------------------------------------------------------

#[test]
fn pcm_split_at_odd_lengths_comes_out_whole_and_exact() {
    let original = noise(7, 4000);
    // Odd and even frame sizes, including 1-byte frames that hold no whole sample.
    let body = body_of(&original, &[1, 3, 960, 1, 1, 77, 1024, 5], true);
    let (chunks, result) = run(pcm(24000), &[body.as_bytes()]);
    result.unwrap();
    assert_eq!(concat(&chunks), original);
    assert!(
        chunks.iter().all(|c| c.len() % 2 == 0),
        "every chunk holds whole samples"
    );
    check_chunk_bookkeeping(&chunks);
    assert!(
        chunks
            .iter()
            .all(|c| c.format() == OutputFormat::Pcm && c.sample_rate() == 24000)
    );
}

#[test]
fn counters_and_durations() {
    let original = noise(9, 48_000); // 1 s of 16-bit audio at 24 kHz
    let body = body_of(&original, &[999], true);
    let mut decoder = pcm(24000);
    decoder.feed(body.as_bytes());
    let mut total = Duration::ZERO;
    while let Some(chunk) = decoder.next_chunk() {
        let chunk = chunk.unwrap();
        total += chunk.duration().unwrap();
    }
    assert!(decoder.finish().unwrap().is_none());
    assert!(decoder.is_done());
    assert_eq!(decoder.audio_bytes(), 48_000);
    assert_eq!(decoder.chunks(), 49); // 48 frames of 999 bytes, then 48 bytes (+odd carries)
    assert_eq!(decoder.duration_so_far(), Some(Duration::from_secs(1)));
    // Each chunk's duration is rounded down to the nanosecond; together they make the
    // whole second.
    assert!(
        Duration::from_secs(1) - total < Duration::from_micros(1),
        "{total:?}"
    );

    // ulaw: one byte per sample.
    let mut decoder = TtsStreamDecoder::new(OutputFormat::Ulaw, 8000);
    decoder.feed(body_of(&noise(1, 4000), &[333], true).as_bytes());
    while decoder.next_chunk().is_some() {}
    assert_eq!(decoder.duration_so_far(), Some(Duration::from_millis(500)));
    // mp3 has no duration to compute.
    let mut decoder = TtsStreamDecoder::new(OutputFormat::Mp3, 24000);
    decoder.feed(audio_frame(&[0xff, 0xf3, 0xc4]).as_bytes());
    assert_eq!(decoder.next_chunk().unwrap().unwrap().duration(), None);
    assert_eq!(decoder.duration_so_far(), None);
}

#[test]
fn wav_keeps_its_header_and_whole_samples_after_it() {
    let mut original =
        smallest_core::audio::wav_header(smallest_core::audio::WavEncoding::Pcm16, 16000, 3200)
            .to_vec();
    original.extend(noise(3, 3200)); // 0.1 s at 16 kHz
    let body = body_of(&original, &[45, 3, 1000, 7], true);
    let (chunks, result) = run(
        TtsStreamDecoder::new(OutputFormat::Wav, 16000),
        &[body.as_bytes()],
    );
    result.unwrap();
    assert_eq!(concat(&chunks), original);
    assert!(chunks[0].data().starts_with(b"RIFF"));
    assert!(chunks.iter().all(|c| c.len() % 2 == 0));
    let total: Duration = chunks.iter().map(|c| c.duration().unwrap()).sum();
    assert_eq!(total, Duration::from_millis(100), "the header is not audio");
}

#[test]
fn mp3_ulaw_and_alaw_pass_through_frame_by_frame() {
    for format in [OutputFormat::Mp3, OutputFormat::Ulaw, OutputFormat::Alaw] {
        let original = noise(11, 2001);
        let sizes = [417, 1, 3, 1000];
        let body = body_of(&original, &sizes, true);
        let (chunks, result) = run(TtsStreamDecoder::new(format, 8000), &[body.as_bytes()]);
        result.unwrap();
        assert_eq!(concat(&chunks), original, "{format}");
        let lens: Vec<usize> = chunks.iter().map(AudioChunk::len).collect();
        assert_eq!(
            lens,
            [417, 1, 3, 1000, 417, 1, 3, 159],
            "{format}: odd frames kept as sent"
        );
        check_chunk_bookkeeping(&chunks);
    }
}

#[test]
fn a_stream_cut_before_done_is_an_error_at_finish_after_its_audio() {
    let original = noise(5, 3000);
    let body = body_of(&original, &[1000], false);
    let (chunks, result) = run(pcm(24000), &[body.as_bytes()]);
    assert_eq!(
        concat(&chunks),
        original,
        "the audio before the cut is delivered"
    );
    let (code, message) = stream_error(result);
    assert_eq!(code, None);
    assert!(message.contains("before its `done` frame"), "{message}");
    assert!(message.contains("incomplete"), "{message}");

    // Cut in the middle of a frame, and an empty body: the same.
    let cut = &body.as_bytes()[..body.len() - 10];
    stream_error(run(pcm(24000), &[cut]).1);
    stream_error(run(pcm(24000), &[]).1);
}

#[test]
fn a_done_frame_without_its_blank_line_still_completes() {
    let body = format!(
        "{}data: {{\"status\":\"200\",\"done\":true}}",
        audio_frame(&[1, 2])
    );
    let (chunks, result) = run(pcm(8000), &[body.as_bytes()]);
    result.unwrap();
    assert_eq!(concat(&chunks), [1, 2]);
}

#[test]
fn everything_after_done_is_ignored() {
    let body = format!(
        "{}{DONE}{}data: this is not JSON\n\nevent: error\ndata: boom\n\n",
        audio_frame(&[1, 2, 3, 4]),
        audio_frame(&[5, 6])
    );
    let mut decoder = pcm(8000);
    decoder.feed(body.as_bytes());
    assert_eq!(
        decoder.next_chunk().unwrap().unwrap().data(),
        &[1, 2, 3, 4][..]
    );
    assert!(decoder.next_chunk().is_none());
    assert!(decoder.is_done());
    decoder.feed(b"data: more\n\n");
    assert!(decoder.next_chunk().is_none());
    assert!(decoder.finish().unwrap().is_none());
    assert_eq!(decoder.audio_bytes(), 4);
}

#[test]
fn half_a_sample_at_the_end_is_an_error() {
    let body = format!("{}{}{DONE}", audio_frame(&[1, 2, 3]), audio_frame(&[4, 5]));
    let (chunks, result) = run(pcm(8000), &[body.as_bytes()]);
    assert_eq!(concat(&chunks), [1, 2, 3, 4]);
    let (_, message) = stream_error(result);
    assert!(message.contains("16-bit sample"), "{message}");
}

#[test]
fn error_frames_mid_stream_surface_after_the_earlier_chunks() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "data: {\"status\": \"error\", \"message\": \"Connection timed out\"}\n\n",
            None,
            "Connection timed out",
        ),
        (
            "data: {\"error\": \"InternalServerError\", \"message\": \"An unexpected error occurred.\"}\n\n",
            Some("InternalServerError"),
            "An unexpected error occurred.",
        ),
        (
            "data: {\"status\": \"error\", \"error\": {\"code\": \"E42\", \"message\": \"nested\"}}\n\n",
            Some("E42"),
            "nested",
        ),
        (
            "data: {\"status\": \"500\", \"done\": true, \"message\": \"synthesis failed\"}\n\n",
            Some("500"),
            "synthesis failed",
        ),
        (
            "data: {\"error\": \"the voice went away\"}\n\n",
            None,
            "the voice went away",
        ),
        (
            "event: error\ndata: plain text failure\n\n",
            None,
            "plain text failure",
        ),
        (
            "event: error\ndata: {\"message\": \"json failure\", \"error_code\": \"X\"}\n\n",
            Some("X"),
            "json failure",
        ),
        (
            "event: audio\ndata: {\"audio\": \"AAAA\", \"status\": \"429\"}\n\n",
            Some("429"),
            "the server reported an error",
        ),
    ];
    for (frame, code, message) in cases {
        let body = format!(
            "{}{}{frame}{}{DONE}",
            audio_frame(&[1, 2]),
            audio_frame(&[3, 4]),
            audio_frame(&[5, 6])
        );
        // Split anywhere: the error is never lost, and comes after exactly two chunks.
        for split in [0, body.len() / 2, body.len() - 3, body.len()] {
            let (a, b) = body.as_bytes().split_at(split);
            let (chunks, result) = run(pcm(8000), &[a, b]);
            assert_eq!(concat(&chunks), [1, 2, 3, 4], "{frame}");
            let (got_code, got_message) = stream_error(result);
            assert_eq!(got_code.as_deref(), *code, "{frame}");
            assert!(got_message.contains(message), "{frame}: {got_message}");
        }
    }
}

#[test]
fn an_error_is_returned_by_next_chunk_once_then_nothing() {
    let body = format!(
        "{}data: {{\"status\":\"error\",\"message\":\"x\"}}\n\n",
        audio_frame(&[1, 2])
    );
    let mut decoder = pcm(8000);
    decoder.feed(body.as_bytes());
    assert!(decoder.next_chunk().unwrap().is_ok());
    assert!(decoder.next_chunk().unwrap().is_err());
    assert!(decoder.is_failed());
    assert!(decoder.next_chunk().is_none());
    decoder.feed(audio_frame(&[3, 4]).as_bytes());
    assert!(decoder.next_chunk().is_none());
    let again = decoder.finish().unwrap_err().to_string();
    assert!(
        again.contains("already failed") && again.contains('x'),
        "{again}"
    );
}

#[test]
fn data_that_is_not_json_is_an_error_naming_what_arrived() {
    let junk = format!("<html>{}</html>", "gateway timeout ".repeat(50));
    let body = format!("{}data: {junk}\n\n{DONE}", audio_frame(&[1, 2]));
    let (chunks, result) = run(pcm(8000), &[body.as_bytes()]);
    assert_eq!(chunks.len(), 1);
    let message = decode_error(result);
    assert!(message.contains("<html>gateway timeout"), "{message}");
    assert!(
        message.len() < 600,
        "the quote is truncated: {} bytes",
        message.len()
    );
    assert!(message.contains('…'));
}

#[test]
fn json_without_audio_or_done_is_an_error() {
    for frame in [
        "data: {\"status\": \"206\", \"done\": false}\n\n",
        "event: audio\ndata: {\"foo\": 1}\n\n",
        "data: [1, 2, 3]\n\n",
        "data: \"audio\"\n\n",
        "data: {\"audio\": 12}\n\n",
    ] {
        let body = format!("{}{frame}{DONE}", audio_frame(&[1, 2]));
        let (chunks, result) = run(pcm(8000), &[body.as_bytes()]);
        assert_eq!(chunks.len(), 1, "{frame}");
        let message = decode_error(result);
        assert!(message.contains("TTS stream event"), "{frame}: {message}");
    }
}

#[test]
fn audio_that_is_not_base64_is_an_error() {
    let body = format!("data: {{\"audio\": \"@@not base64@@\"}}\n\n{DONE}");
    let message = decode_error(run(pcm(8000), &[body.as_bytes()]).1);
    assert!(message.contains("base64"), "{message}");
}

#[test]
fn unpadded_and_escaped_base64_decode_too() {
    let bytes = noise(2, 31);
    let body = format!(
        "data: {{\"audio\": \"{}\", \"done\": false}}\n\ndata: {{\"audio\": \"{}\"}}\n\n{DONE}",
        STANDARD_NO_PAD.encode(&bytes[..7]),
        STANDARD.encode(&bytes[7..]).replace('/', "\\/"),
    );
    let (chunks, result) = run(
        TtsStreamDecoder::new(OutputFormat::Mp3, 8000),
        &[body.as_bytes()],
    );
    result.unwrap();
    assert_eq!(concat(&chunks), bytes);
}

#[test]
fn unknown_events_with_audio_are_audio_other_unknown_events_are_ignored() {
    let body = format!(
        "event: chunk\ndata: {{\"audio\": \"{}\"}}\n\n\
         event: metrics\ndata: {{\"ttfb_ms\": 120}}\n\n\
         event: ping\ndata: not json at all\n\n\
         : keep-alive comment\n\n\
         event: message\ndata: {{\"audio\": \"{}\"}}\n\n\
         event: end\ndata: {{\"done\": true}}\n\n",
        STANDARD.encode([1, 2]),
        STANDARD.encode([3, 4]),
    );
    let (chunks, result) = run(pcm(8000), &[body.as_bytes()]);
    result.unwrap();
    assert_eq!(concat(&chunks), [1, 2, 3, 4]);
}

#[test]
fn empty_audio_frames_yield_no_chunk() {
    let body = format!(
        "data: {{\"audio\": \"\"}}\n\n{}{DONE}",
        audio_frame(&[9, 9])
    );
    let (chunks, result) = run(pcm(8000), &[body.as_bytes()]);
    result.unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].index(), 0);
}

#[test]
fn finish_returns_audio_left_undrained_instead_of_losing_it() {
    let body = format!("{}{}{DONE}", audio_frame(&[1, 2]), audio_frame(&[3, 4]));
    let mut decoder = pcm(8000);
    decoder.feed(body.as_bytes());
    assert_eq!(decoder.finish().unwrap().unwrap().data(), &[1, 2][..]);
    assert_eq!(decoder.finish().unwrap().unwrap().data(), &[3, 4][..]);
    assert!(decoder.finish().unwrap().is_none());
    assert!(decoder.finish().unwrap().is_none());
}

#[test]
fn an_oversized_frame_is_an_error() {
    let body = format!("{}{DONE}", audio_frame(&noise(4, 3000)));
    let decoder = pcm(8000).with_max_event_bytes(1000);
    decode_error(run(decoder, &[body.as_bytes()]).1);
}

#[test]
fn every_split_of_a_small_stream_gives_the_same_chunks() {
    let original = noise(21, 30);
    let body = body_of(&original, &[3, 4, 5], true);
    let bytes = body.as_bytes();
    let (whole, result) = run(pcm(8000), &[bytes]);
    result.unwrap();
    for i in 0..=bytes.len() {
        let (chunks, result) = run(pcm(8000), &[&bytes[..i], &bytes[i..]]);
        result.unwrap();
        assert_eq!(chunks, whole, "split at {i}");
    }
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(pcm(8000), &one_by_one).0, whole);
}

#[test]
fn debug_output_is_short() {
    let mut decoder = pcm(8000);
    decoder.feed(audio_frame(&noise(1, 5000)).as_bytes());
    let chunk = decoder.next_chunk().unwrap().unwrap();
    assert!(format!("{chunk:?}").len() < 200);
    assert!(format!("{decoder:?}").len() < 400);
    let data: Bytes = chunk.into_data();
    assert_eq!(data.len(), 5000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_pcm_in_random_frames_and_random_pieces_is_exact(
        seed in any::<u64>(),
        samples in 0usize..3000,
        frame_sizes in prop::collection::vec(1usize..1500, 1..8),
        piece_sizes in prop::collection::vec(1usize..4000, 1..8),
    ) {
        let original = noise(seed, samples * 2);
        let body = body_of(&original, &frame_sizes, true);
        let mut pieces = Vec::new();
        let mut rest = body.as_bytes();
        for &n in piece_sizes.iter().cycle() {
            if rest.is_empty() { break; }
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        let (chunks, result) = run(pcm(24000), &pieces);
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert_eq!(concat(&chunks), original);
        prop_assert!(chunks.iter().all(|c| c.len() % 2 == 0));
        check_chunk_bookkeeping(&chunks);
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        format in prop::sample::select(OutputFormat::ALL.to_vec()),
    ) {
        let mut decoder = TtsStreamDecoder::new(format, 24000);
        for piece in body.chunks(97) {
            decoder.feed(piece);
            while decoder.next_chunk().is_some() {}
        }
        for _ in 0..10_000 {
            match decoder.finish() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn arbitrary_frames_never_panic(
        data in "[ -~]{0,200}",
        event in prop::option::of("[a-z]{1,8}"),
    ) {
        let mut body = String::new();
        if let Some(event) = event {
            body.push_str(&format!("event: {event}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
        let (_, _) = run(pcm(8000), &[body.as_bytes()]);
    }
}
