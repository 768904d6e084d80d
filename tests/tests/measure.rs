//! Latency and client-overhead measurements, on both transports, against the emulator on
//! loopback over plain HTTP. `cargo xtask bench` runs them; by hand:
//!
//! ```text
//! cargo test --release -p smallest-tests --test measure -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Every test here is `#[ignore]`d: each one **prints** its numbers as markdown table
//! rows (`docs/benchmarks.md` keeps the last results) and asserts only that the answers
//! are correct, never how fast they came. Latencies are summarised over the timed runs
//! that follow the warm-up runs: median and 90th percentile (nearest rank), minimum and
//! maximum.
//!
//! - `tts_sse_time_to_first_chunk`: [`AudioStream::time_to_first_chunk`] of a
//!   one-sentence request, with the emulator sending as fast as the client reads
//!   (`realtime_factor(0.0)`) and paced in real time (`realtime_factor(1.0)`).
//! - `live_tts_last_text_to_first_audio`: from the call that ends a request on a live TTS
//!   connection (`finish()` after four `send_text` pieces, or a whole-request `speak`)
//!   to the first `Audio` event of that request.
//! - `live_stt_finalize_to_final_transcript`: from `finalize()`, after about 1 s of
//!   emulator speech sent as fast as possible, to the final transcript `from_finalize`.
//! - `hyper_client_overhead` and `blocking_client_overhead`: our `synthesize` (a client
//!   from `Client::new`, as users get it) against a raw client of the same HTTP stack
//!   sending the identical prepared request to the same emulator in the same run, in
//!   interleaved blocks.
//!
//! The live measurements run twice: with both halves used from one thread (send, then
//! read), and split, with the receiver on a thread of its own as an application that
//! plays audio while it writes text would use it. A split receiver is parked in `recv`
//! when the timed call is made (each live TTS request is sent [`PAUSE`] after the
//! previous one completed): the state an application's receiver is in between requests.
//!
//! [`AudioStream::time_to_first_chunk`]: smallest_hyper::AudioStream::time_to_first_chunk

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallest_core::retry::RetryPolicy;
use smallest_core::{
    Audio, OutputFormat, SttLanguage, SttLiveConfig, SttLiveEvent, TtsLiveConfig, TtsLiveEvent,
    TtsModel, TtsRequest,
};
use smallest_emulator::{EmulatorBuilder, RunningEmulator};
use smallest_tests::live::{LiveApi, SttRx, TtsRx, TtsTx, live_clients, within};
use smallest_tests::{KEY, config_for};

/// Every measurement must end within this (a hung socket must not hang `xtask bench`).
const LIMIT: Duration = Duration::from_secs(900);

/// The longest any single answer is waited for.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// Untimed runs before the timed ones of a latency measurement.
const WARMUP: usize = 5;

const VOICE: &str = "meher";
const RATE: u32 = 24000;

/// The one-sentence request of the time-to-first-chunk measurement.
const SENTENCE: &str = "Hello from Smallest AI.";

/// The pieces of a live TTS request, each sent with `send_text` before `finish()` (or
/// joined into one `speak`).
const PIECES: [&str; 4] = ["Hello from ", "Smallest AI, ", "spoken in ", "pieces."];

/// What the live STT measurement says (about 1 s of emulator speech).
const STT_TEXT: &str = "Finalize this now.";

/// The short TTS of the overhead measurement (about 1 s of audio).
const SHORT_TEXT: &str = "One second of audio.";

/// Requests per client in the overhead measurement, after its warm-up requests.
const OVERHEAD_REQUESTS: usize = 500;
const OVERHEAD_WARMUP: usize = 50;
/// The timed requests run in blocks, alternating between our client and the raw one,
/// so that a drift of the machine affects both alike.
const OVERHEAD_BLOCK: usize = 50;

// ---------------------------------------------------------------------------------------
// Statistics and printing
// ---------------------------------------------------------------------------------------

/// A summary of timed runs.
struct Summary {
    runs: usize,
    median: Duration,
    p90: Duration,
    min: Duration,
    max: Duration,
}

/// Median, 90th percentile (nearest rank), minimum and maximum of `samples`.
fn summarize(samples: &[Duration]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    let rank = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    Summary {
        runs: n,
        median: rank(0.5),
        p90: rank(0.9),
        min: sorted[0],
        max: sorted[n - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Prints a table title and the header of a latency table whose first columns are `cols`.
fn latency_header(title: &str, cols: &[&str]) {
    println!("\n#### {title}\n");
    println!("| {} | runs | median | p90 | min | max |", cols.join(" | "));
    println!("|{}---:|---:|---:|---:|---:|", "---|".repeat(cols.len()));
}

/// Prints one row of a latency table.
fn latency_row(cols: &[&str], samples: &[Duration]) {
    let s = summarize(samples);
    println!(
        "| {} | {} | {} | {} | {} | {} |",
        cols.join(" | "),
        s.runs,
        ms(s.median),
        ms(s.p90),
        ms(s.min),
        ms(s.max)
    );
}

/// Runs `once` `warmup` times untimed, then `runs` times, and returns what it measured.
fn measure(warmup: usize, runs: usize, mut once: impl FnMut() -> Duration) -> Vec<Duration> {
    for _ in 0..warmup {
        once();
    }
    (0..runs).map(|_| once()).collect()
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores, {} {}, {} build",
        std::env::consts::OS,
        std::env::consts::ARCH,
        if cfg!(debug_assertions) {
            "debug (numbers not representative: use --release)"
        } else {
            "release"
        }
    )
}

/// The emulator of every measurement: TTS slots to spare, so that a slot the server
/// frees a moment after the client has its answer never turns into a 429.
fn emulator() -> EmulatorBuilder {
    smallest_tests::emulator().tts_concurrency(8)
}

fn pcm_request(text: &str, sample_rate: u32) -> TtsRequest {
    TtsRequest::new(text, VOICE)
        .model(TtsModel::LightningV31Pro)
        .sample_rate(sample_rate)
        .output_format(OutputFormat::Pcm)
}

fn runtime() -> tokio::runtime::Runtime {
    // As the scenarios' harness: two workers, one per core.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------------------
// 1. TTS over SSE: time to first chunk
// ---------------------------------------------------------------------------------------

/// A stream read to its end.
struct Streamed {
    time_to_first_chunk: Duration,
    audio_bytes: u64,
    complete: bool,
}

/// `synthesize_stream` on one transport, in blocking form.
trait SseTts {
    fn name(&self) -> &'static str;
    fn synthesize(&self, request: &TtsRequest) -> Audio;
    /// Streams `request` to its end.
    fn stream(&self, request: &TtsRequest) -> Streamed;
}

struct HyperSse {
    runtime: tokio::runtime::Runtime,
    client: smallest_hyper::Client,
}

impl SseTts for HyperSse {
    fn name(&self) -> &'static str {
        "hyper"
    }
    fn synthesize(&self, request: &TtsRequest) -> Audio {
        self.runtime
            .block_on(self.client.synthesize(request))
            .expect("synthesize")
    }
    fn stream(&self, request: &TtsRequest) -> Streamed {
        self.runtime.block_on(async {
            let mut stream = self
                .client
                .synthesize_stream(request)
                .await
                .expect("synthesize_stream");
            while let Some(chunk) = stream.next_chunk().await {
                chunk.expect("a chunk");
            }
            Streamed {
                time_to_first_chunk: stream.time_to_first_chunk().expect("a first chunk"),
                audio_bytes: stream.audio_bytes(),
                complete: stream.is_complete(),
            }
        })
    }
}

struct BlockingSse {
    client: smallest_blocking::Client,
}

impl SseTts for BlockingSse {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn synthesize(&self, request: &TtsRequest) -> Audio {
        self.client.synthesize(request).expect("synthesize")
    }
    fn stream(&self, request: &TtsRequest) -> Streamed {
        let mut stream = self
            .client
            .synthesize_stream(request)
            .expect("synthesize_stream");
        for chunk in &mut stream {
            chunk.expect("a chunk");
        }
        Streamed {
            time_to_first_chunk: stream.time_to_first_chunk().expect("a first chunk"),
            audio_bytes: stream.audio_bytes(),
            complete: stream.is_complete(),
        }
    }
}

/// Both transports' streaming clients for `emulator`, retries off (an error must show).
fn sse_clients(emulator: &RunningEmulator) -> Vec<Box<dyn SseTts>> {
    let hyper = smallest_hyper::Client::builder(config_for(emulator, KEY))
        .retry_policy(RetryPolicy::none())
        .total_timeout(ANSWER_LIMIT)
        .build()
        .expect("hyper client");
    let blocking = smallest_blocking::Client::builder(config_for(emulator, KEY))
        .retry_policy(RetryPolicy::none())
        .total_timeout(ANSWER_LIMIT)
        .build()
        .expect("blocking client");
    vec![
        Box::new(HyperSse {
            runtime: runtime(),
            client: hyper,
        }),
        Box::new(BlockingSse { client: blocking }),
    ]
}

#[test]
#[ignore = "measurement: run with cargo xtask bench"]
fn tts_sse_time_to_first_chunk() {
    within(LIMIT, || {
        let request = pcm_request(SENTENCE, RATE);
        let first_event = smallest_emulator::DEFAULT_SSE_CHUNK_BYTES as f64 / (2.0 * RATE as f64);
        latency_header(
            &format!(
                "TTS over SSE: time to first chunk ({}; {SENTENCE:?}: {:.2} s of PCM at \
                 {RATE} Hz, in events of {} bytes, i.e. {:.1} ms of audio each)",
                machine(),
                speech_secs(SENTENCE, RATE),
                smallest_emulator::DEFAULT_SSE_CHUNK_BYTES,
                first_event * 1e3
            ),
            &["emulator pacing", "transport"],
        );
        // Paced runs take as long as their audio: fewer of them.
        for (factor, runs) in [(0.0, 100), (1.0, 30)] {
            let emulator = emulator()
                .realtime_factor(factor)
                .spawn()
                .expect("emulator");
            for client in sse_clients(&emulator) {
                let expected = client.synthesize(&request);
                let samples = measure(WARMUP, runs, || {
                    let streamed = client.stream(&request);
                    assert!(streamed.complete, "{}: incomplete stream", client.name());
                    assert_eq!(
                        streamed.audio_bytes,
                        expected.bytes().len() as u64,
                        "{}: streamed audio differs from the one-shot audio",
                        client.name()
                    );
                    streamed.time_to_first_chunk
                });
                latency_row(
                    &[&format!("`realtime_factor({factor:.1})`"), client.name()],
                    &samples,
                );
            }
        }
    });
}

/// Seconds of emulator speech for `text` at `rate`.
fn speech_secs(text: &str, rate: u32) -> f64 {
    smallest_emulator::speech::synthesize_pcm(text, rate, 1.0).len() as f64 / f64::from(rate)
}

// ---------------------------------------------------------------------------------------
// 2. Live TTS: the call that ends a request → its first audio
// ---------------------------------------------------------------------------------------

/// The untimed pause before each live TTS request: a split receiver is then waiting in
/// `recv`, as an application's is between two requests.
const PAUSE: Duration = Duration::from_millis(5);

/// How a live TTS request is ended.
#[derive(Clone, Copy)]
enum Ending {
    /// `send_text` for every piece, then `finish()`.
    Finish,
    /// The whole text in one `speak`.
    Speak,
}

impl Ending {
    fn label(self) -> &'static str {
        match self {
            Ending::Finish => "`finish()` after 4 `send_text` pieces",
            Ending::Speak => "one `speak(text)`",
        }
    }
}

/// Writes request `index` and returns the instant just before the call that ends it.
fn write_request(tx: &dyn TtsTx, ending: Ending, index: u64) -> Instant {
    match ending {
        Ending::Finish => {
            for piece in PIECES {
                assert_eq!(tx.send_text(piece).expect("send_text"), index);
            }
            let t0 = Instant::now();
            assert_eq!(tx.finish().expect("finish"), index);
            t0
        }
        Ending::Speak => {
            let whole = PIECES.concat();
            let t0 = Instant::now();
            assert_eq!(tx.speak(&whole).expect("speak"), index);
            t0
        }
    }
}

/// Reads request `index` up to its `Complete`: when its first audio arrived and how many
/// PCM bytes it had. `None` if the connection closed before any of it.
fn read_request(rx: &mut dyn TtsRx, index: u64) -> Option<(Instant, usize)> {
    let mut first = None;
    let mut bytes = 0;
    loop {
        match rx.recv() {
            Some(Ok(TtsLiveEvent::Audio {
                request_index,
                data,
                ..
            })) => {
                let now = Instant::now();
                assert_eq!(request_index, index, "audio of another request");
                first.get_or_insert(now);
                bytes += data.len();
            }
            Some(Ok(TtsLiveEvent::Complete { request_index, .. })) => {
                assert_eq!(request_index, index, "the end of another request");
                return Some((first.expect("audio before Complete"), bytes));
            }
            Some(Ok(TtsLiveEvent::WordTimestamp { .. })) => {}
            Some(Ok(TtsLiveEvent::Closed { .. })) | None if first.is_none() => return None,
            other => panic!("expected audio of request {index}, got {other:?}"),
        }
    }
}

/// The events left on a receiver once the connection was closed.
fn drain_tts(rx: &mut dyn TtsRx) {
    while let Some(event) = rx.recv() {
        event.expect("an event after close");
    }
}

/// One live TTS connection on `api`, `runs` requests (after the warm-up) ended by
/// `ending`, read on the same thread or on a receiver thread of its own.
fn live_tts_runs(
    api: &dyn LiveApi,
    ending: Ending,
    split: bool,
    expected: usize,
    runs: usize,
) -> Vec<Duration> {
    let config = TtsLiveConfig::new(VOICE)
        .model(TtsModel::LightningV31Pro)
        .sample_rate(RATE);
    let (tx, mut rx) = api.tts_live(config).expect("tts_live");
    let mut index = 0;
    if !split {
        let samples = measure(WARMUP, runs, || {
            std::thread::sleep(PAUSE);
            let t0 = write_request(tx.as_ref(), ending, index);
            let (first, bytes) = read_request(rx.as_mut(), index).expect("the request's audio");
            assert_eq!(bytes, expected, "live audio differs from one-shot audio");
            index += 1;
            first.duration_since(t0)
        });
        tx.close().expect("close");
        drain_tts(rx.as_mut());
        return samples;
    }
    let (done, heard) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut index = 0;
        while let Some(request) = read_request(rx.as_mut(), index) {
            if done.send(request).is_err() {
                break;
            }
            index += 1;
        }
        drain_tts(rx.as_mut());
    });
    let samples = measure(WARMUP, runs, || {
        std::thread::sleep(PAUSE);
        let t0 = write_request(tx.as_ref(), ending, index);
        let (first, bytes) = heard
            .recv_timeout(ANSWER_LIMIT)
            .expect("the request's audio");
        assert_eq!(bytes, expected, "live audio differs from one-shot audio");
        index += 1;
        first
            .checked_duration_since(t0)
            .expect("audio before the request ended")
    });
    tx.close().expect("close");
    reader.join().expect("the receiver thread");
    samples
}

#[test]
#[ignore = "measurement: run with cargo xtask bench"]
fn live_tts_last_text_to_first_audio() {
    within(LIMIT, || {
        let whole = PIECES.concat();
        latency_header(
            &format!(
                "Live TTS: from the call that ends a request to its first `Audio` event ({}; \
                 {whole:?}, PCM {RATE} Hz; one connection, each request sent {} ms after the \
                 previous one completed)",
                machine(),
                PAUSE.as_millis()
            ),
            &["request ended by", "halves", "transport"],
        );
        let emulator = emulator().spawn().expect("emulator");
        for api in live_clients(&emulator, KEY) {
            let expected = api
                .synthesize(&pcm_request(&whole, RATE))
                .expect("one-shot synthesis")
                .bytes()
                .len();
            for ending in [Ending::Finish, Ending::Speak] {
                for split in [false, true] {
                    let samples = live_tts_runs(api.as_ref(), ending, split, expected, 50);
                    let halves = if split {
                        "split: receiver thread"
                    } else {
                        "one thread"
                    };
                    latency_row(&[ending.label(), halves, api.name()], &samples);
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// 3. Live STT: finalize() → the final transcript it asked for
// ---------------------------------------------------------------------------------------

/// `text` as emulator speech: s16le bytes at 16 kHz.
fn speech(text: &str) -> Vec<u8> {
    smallest_emulator::speech::synthesize_pcm(text, 16000, 1.0)
        .iter()
        .flat_map(|sample| sample.to_le_bytes())
        .collect()
}

/// Reads until the final transcript that answers `finalize`: when it arrived and its text.
/// `None` if the connection closed first.
fn read_finalized(rx: &mut dyn SttRx) -> Option<(Instant, String)> {
    loop {
        match rx.recv() {
            Some(Ok(SttLiveEvent::Transcript(t))) if t.from_finalize => {
                let now = Instant::now();
                assert!(t.is_final, "a from_finalize transcript that is not final");
                return Some((now, t.text));
            }
            Some(Ok(SttLiveEvent::Closed { .. })) | None => return None,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("live STT error: {e}"),
        }
    }
}

fn drain_stt(rx: &mut dyn SttRx) {
    while let Some(event) = rx.recv() {
        event.expect("an event after close");
    }
}

/// One live STT session on `api`: sends `audio` at once, then measures `finalize()` to
/// the final transcript, read on the same thread or on a receiver thread.
fn live_stt_once(api: &dyn LiveApi, audio: &[u8], split: bool) -> Duration {
    let config = SttLiveConfig::new(SttLanguage::En).endpointing(false);
    let (tx, mut rx) = api.stt_live(config).expect("stt_live");
    let (elapsed, text) = if split {
        let (done, heard) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let finalized = read_finalized(rx.as_mut());
            let _ = done.send(finalized);
            drain_stt(rx.as_mut());
        });
        tx.send_audio(audio).expect("send_audio");
        let t0 = Instant::now();
        tx.finalize().expect("finalize");
        let (at, text) = heard
            .recv_timeout(ANSWER_LIMIT)
            .expect("an answer")
            .expect("the finalized transcript");
        tx.close().expect("close");
        reader.join().expect("the receiver thread");
        (
            at.checked_duration_since(t0)
                .expect("a final before finalize"),
            text,
        )
    } else {
        tx.send_audio(audio).expect("send_audio");
        let t0 = Instant::now();
        tx.finalize().expect("finalize");
        let (at, text) = read_finalized(rx.as_mut()).expect("the finalized transcript");
        tx.close().expect("close");
        drain_stt(rx.as_mut());
        (at.duration_since(t0), text)
    };
    assert_eq!(text.trim(), STT_TEXT, "{}: wrong transcript", api.name());
    elapsed
}

#[test]
#[ignore = "measurement: run with cargo xtask bench"]
fn live_stt_finalize_to_final_transcript() {
    within(LIMIT, || {
        let audio = speech(STT_TEXT);
        latency_header(
            &format!(
                "Live STT: from `finalize()` to the final transcript `from_finalize` ({}; \
                 {STT_TEXT:?} as {:.2} s of emulator speech, {} bytes of 16 kHz linear16 sent \
                 in one `send_audio` call, `endpointing=false`; a new session per run)",
                machine(),
                audio.len() as f64 / 32000.0,
                audio.len()
            ),
            &["halves", "transport"],
        );
        let emulator = emulator().spawn().expect("emulator");
        for api in live_clients(&emulator, KEY) {
            for split in [false, true] {
                let samples = measure(WARMUP, 50, || live_stt_once(api.as_ref(), &audio, split));
                let halves = if split {
                    "split: receiver thread"
                } else {
                    "one thread"
                };
                latency_row(&[halves, api.name()], &samples);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// 4. Client overhead: our synthesize vs a raw client of the same HTTP stack
// ---------------------------------------------------------------------------------------

/// Timed requests of one client.
#[derive(Default)]
struct Timed {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Timed {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Warms both up, then runs [`OVERHEAD_REQUESTS`] requests of each in alternating blocks
/// of [`OVERHEAD_BLOCK`] (which goes first alternates too), timing each request.
fn compare(mut ours: impl FnMut(), mut raw: impl FnMut()) -> (Timed, Timed) {
    for _ in 0..OVERHEAD_WARMUP {
        ours();
        raw();
    }
    let mut timed = (Timed::default(), Timed::default());
    let block = |once: &mut dyn FnMut(), into: &mut Timed| {
        let start = Instant::now();
        for _ in 0..OVERHEAD_BLOCK {
            let t0 = Instant::now();
            once();
            into.latencies.push(t0.elapsed());
        }
        into.wall += start.elapsed();
    };
    for round in 0..OVERHEAD_REQUESTS / OVERHEAD_BLOCK {
        if round % 2 == 0 {
            block(&mut ours, &mut timed.0);
            block(&mut raw, &mut timed.1);
        } else {
            block(&mut raw, &mut timed.1);
            block(&mut ours, &mut timed.0);
        }
    }
    timed
}

fn overhead_header(transport: &str, audio: &Audio) {
    println!(
        "\n#### Client overhead, {transport} ({}; {SHORT_TEXT:?}: {} bytes of PCM, {:.2} s at \
         {} Hz; sequential, {OVERHEAD_REQUESTS} requests each after {OVERHEAD_WARMUP} warm-up \
         requests, in alternating blocks of {OVERHEAD_BLOCK})\n",
        machine(),
        audio.bytes().len(),
        audio.duration().map_or(0.0, |d| d.as_secs_f64()),
        audio.sample_rate()
    );
    println!("| client | requests | requests/s | median latency | p90 latency | ours/raw |");
    println!("|---|---:|---:|---:|---:|---:|");
}

fn overhead_rows(ours_label: &str, raw_label: &str, ours: &Timed, raw: &Timed) {
    let ratio = ours.per_second() / raw.per_second();
    for (label, timed, ratio) in [
        (ours_label, ours, format!("{ratio:.3}")),
        (raw_label, raw, "1".to_owned()),
    ] {
        let s = summarize(&timed.latencies);
        println!(
            "| {label} | {} | {:.0} | {} | {} | {ratio} |",
            s.runs,
            timed.per_second(),
            ms(s.median),
            ms(s.p90)
        );
    }
}

#[test]
#[ignore = "measurement: run with cargo xtask bench"]
fn hyper_client_overhead() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client as RawClient;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    within(LIMIT, || {
        let emulator = emulator().spawn().expect("emulator");
        let config = config_for(&emulator, KEY);
        let request = TtsRequest::new(SHORT_TEXT, VOICE).sample_rate(8000);
        let runtime = runtime();
        // Ours as users get it: `Client::new`, default retries and time limits.
        let ours = smallest_hyper::Client::new(config.clone()).expect("hyper client");
        // The raw client: hyper-util's legacy client over the same connector settings
        // (TCP_NODELAY, as ours), sending the core's prepared request as it is.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let raw: RawClient<HttpConnector, Full<Bytes>> =
            RawClient::builder(TokioExecutor::new()).build(connector);
        let prepared = smallest_core::prepare(&request, &config).expect("prepared request");

        let audio = runtime
            .block_on(ours.synthesize(&request))
            .expect("synthesize");
        let raw_once = || {
            let (status, body) = runtime.block_on(async {
                let response = raw
                    .request(prepared.clone().map(Full::new))
                    .await
                    .expect("raw request");
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("raw body")
                    .to_bytes();
                (status, body)
            });
            assert_eq!(status, 200);
            body
        };
        assert_eq!(raw_once(), audio.bytes(), "raw and ours differ");
        let expected = audio.bytes().len();
        let (ours_timed, raw_timed) = compare(
            || {
                let got = runtime
                    .block_on(ours.synthesize(&request))
                    .expect("synthesize");
                assert_eq!(got.bytes().len(), expected);
            },
            || assert_eq!(raw_once().len(), expected),
        );
        overhead_header("hyper", &audio);
        overhead_rows(
            "`smallest_hyper::Client::synthesize`",
            "raw `hyper_util` legacy client",
            &ours_timed,
            &raw_timed,
        );
    });
}

#[test]
#[ignore = "measurement: run with cargo xtask bench"]
fn blocking_client_overhead() {
    within(LIMIT, || {
        let emulator = emulator().spawn().expect("emulator");
        let config = config_for(&emulator, KEY);
        let request = TtsRequest::new(SHORT_TEXT, VOICE).sample_rate(8000);
        // Ours as users get it: `Client::new`, default retries and time limits.
        let ours = smallest_blocking::Client::new(config.clone()).expect("blocking client");
        // The raw client: a default ureq agent, sending the core's prepared request.
        let agent = ureq::Agent::new_with_defaults();
        let prepared = smallest_core::prepare(&request, &config).expect("prepared request");

        let audio = ours.synthesize(&request).expect("synthesize");
        let raw_once = || {
            let body: &[u8] = prepared.body();
            let request = prepared.clone().map(|_| body);
            let response = agent.run(request).expect("raw request");
            assert_eq!(response.status(), 200);
            let mut out = Vec::new();
            response
                .into_body()
                .into_reader()
                .read_to_end(&mut out)
                .expect("raw body");
            out
        };
        assert_eq!(raw_once(), audio.bytes().as_ref(), "raw and ours differ");
        let expected = audio.bytes().len();
        let (ours_timed, raw_timed) = compare(
            || {
                assert_eq!(
                    ours.synthesize(&request).expect("synthesize").bytes().len(),
                    expected
                )
            },
            || assert_eq!(raw_once().len(), expected),
        );
        overhead_header("blocking", &audio);
        overhead_rows(
            "`smallest_blocking::Client::synthesize`",
            "raw `ureq::Agent::run`",
            &ours_timed,
            &raw_timed,
        );
    });
}

// ---------------------------------------------------------------------------------------
// 5. Voice agents: continuations vs the legacy mode, and barge-in
// ---------------------------------------------------------------------------------------

/// An LLM's answer as it streams: two sentences in token-sized fragments.
const FRAGMENTS: [&str; 8] = [
    "Sure, ",
    "I can ",
    "help with ",
    "that. ",
    "Your order ",
    "ships ",
    "on ",
    "Monday.",
];

/// The time between two fragments (an LLM's token rate).
const TOKEN_GAP: Duration = Duration::from_millis(25);

/// One streamed answer on a fresh connection: when the last fragment was sent and when
/// the first audio came, both from the first fragment.
fn streamed_answer(api: &dyn LiveApi, continuations: bool) -> (Duration, Duration) {
    let (tx, mut rx) = api.tts_live(live_config()).expect("tts_live");
    let tx: std::sync::Arc<dyn TtsTx> = std::sync::Arc::from(tx);
    let writer = {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            for (i, piece) in FRAGMENTS.iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(TOKEN_GAP);
                }
                if continuations {
                    tx.push("answer", piece).expect("push");
                } else {
                    tx.send_text(piece).expect("send_text");
                }
            }
            let last = t0.elapsed();
            if continuations {
                tx.finish_context("answer").expect("finish");
            } else {
                tx.finish().expect("finish");
            }
            (t0, last)
        })
    };
    let mut first = None;
    loop {
        match rx.recv().expect("an event").expect("no error") {
            TtsLiveEvent::Audio { .. } => {
                first.get_or_insert_with(Instant::now);
            }
            TtsLiveEvent::ContextDone { .. } => break,
            TtsLiveEvent::Complete { context: None, .. } => break,
            _ => {}
        }
    }
    let (t0, last) = writer.join().expect("the writer");
    tx.close().expect("close");
    while rx.recv().is_some() {}
    (last, first.expect("audio") - t0)
}

fn live_config() -> TtsLiveConfig {
    TtsLiveConfig::new("meher")
        .model(TtsModel::LightningV31Pro)
        .sample_rate(RATE)
}

#[test]
#[ignore = "a measurement: run by `cargo xtask bench`"]
fn live_tts_continuations_time_to_first_audio() {
    within(LIMIT, || {
        latency_header(
            &format!(
                "Live TTS, an answer streamed as {} fragments {} ms apart ({}; emulator with \
                 100 ms to first audio, paced in real time): time from the **last** fragment \
                 to the first audio (0: the audio had begun before the text ended), and from \
                 the first fragment",
                FRAGMENTS.len(),
                TOKEN_GAP.as_millis(),
                machine()
            ),
            &["mode", "measured from", "transport"],
        );
        let emulator = emulator()
            .tts_latency(Duration::from_millis(100))
            .realtime_factor(1.0)
            .spawn()
            .expect("emulator");
        for api in live_clients(&emulator, KEY) {
            for continuations in [true, false] {
                let mut from_last = Vec::new();
                let mut from_first = Vec::new();
                for run in 0..(WARMUP + 20) {
                    let (last, first_audio) = streamed_answer(api.as_ref(), continuations);
                    if run >= WARMUP {
                        from_last.push(first_audio.saturating_sub(last));
                        from_first.push(first_audio);
                    }
                }
                let mode = if continuations {
                    "continuation context"
                } else {
                    "legacy continue/flush"
                };
                latency_row(&[mode, "last fragment", api.name()], &from_last);
                latency_row(&[mode, "first fragment", api.name()], &from_first);
            }
        }
    });
}

/// One barge-in on a fresh connection: how long `cancel` (or `cancel_hard`) takes to
/// return, after which no audio of the context is delivered (checked: the audio read
/// afterwards is the next context's only).
/// One barge-in: how long `cancel` took to return (from then on no audio of the
/// context is delivered), and from `cancel` to the first audio of the next context.
fn barge_in(api: &dyn LiveApi, hard: bool) -> (Duration, Duration) {
    let (tx, mut rx) = api.tts_live(live_config()).expect("tts_live");
    tx.push(
        "long",
        "A long answer that the user will interrupt. It goes on. And on.",
    )
    .expect("push");
    tx.finish_context("long").expect("finish");
    let mut chunks = 0;
    while chunks < 2 {
        if let TtsLiveEvent::Audio { .. } = rx.recv().expect("an event").expect("no error") {
            chunks += 1;
        }
    }
    let t0 = Instant::now();
    let cancelled = if hard {
        tx.cancel_hard("long")
    } else {
        tx.cancel("long")
    };
    let took = t0.elapsed();
    assert!(cancelled.expect("cancel"));
    tx.push("next", "Okay.").expect("push");
    tx.finish_context("next").expect("finish");
    let mut next_audio = None;
    loop {
        match rx.recv().expect("an event").expect("no error") {
            TtsLiveEvent::Audio { context, .. } => {
                assert_eq!(context.as_ref().map(|c| c.as_str()), Some("next"));
                next_audio.get_or_insert_with(|| t0.elapsed());
            }
            TtsLiveEvent::ContextDone { context, .. } if context.as_str() == "next" => break,
            _ => {}
        }
    }
    tx.close().expect("close");
    while rx.recv().is_some() {}
    (took, next_audio.unwrap_or_default())
}

#[test]
#[ignore = "a measurement: run by `cargo xtask bench`"]
fn live_tts_cancel_to_silence() {
    within(LIMIT, || {
        latency_header(
            &format!(
                "Barge-in mid-generation: from `cancel()` to the guarantee that no audio of \
                 the context is delivered (the call's return), and to the first audio of \
                 the next context, pushed right after ({}; emulator paced in real time)",
                machine()
            ),
            &["cancel", "measured to", "transport"],
        );
        let emulator = emulator().realtime_factor(1.0).spawn().expect("emulator");
        for api in live_clients(&emulator, KEY) {
            for hard in [false, true] {
                let mut to_next = Vec::new();
                let samples = measure(WARMUP, 30, || {
                    let (took, next) = barge_in(api.as_ref(), hard);
                    to_next.push(next);
                    took
                });
                let to_next = &to_next[WARMUP..];
                let label = if hard {
                    "cancel_hard (new connection)"
                } else {
                    "cancel (message)"
                };
                latency_row(&[label, "cancel returns: silence", api.name()], &samples);
                latency_row(
                    &[label, "first audio of the next context", api.name()],
                    to_next,
                );
            }
        }
    });
}

/// The fleet target of `smallest-redis`: 6 processes x 40 TTS calls on one account with
/// two slots take at most 1.15 x the ideal (every call's uncontended time / 2), with
/// no 429; sync alone, then sync, SSE and live mixed.
#[test]
#[ignore = "measurement: run with --ignored --nocapture (cargo xtask bench)"]
fn fleet_tts_time_vs_ideal() {
    let Some(redis) = smallest_tests::redis::RedisServer::start("fleet_tts_time_vs_ideal") else {
        return;
    };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_fleet_worker"));
    println!(
        "\n#### Fleet: 6 processes x 40 TTS calls, one key, account and emulator concurrency 2, \
         Redis slots ({}; emulator 60 ms per request)\n",
        machine()
    );
    println!("| calls | 429s | total | ideal | ratio |\n|---|---:|---:|---:|---:|");
    for modes in [&["sync"][..], &["sync", "sse", "live"][..]] {
        let emu = smallest_emulator::Emulator::builder()
            .tts_concurrency(2)
            .tts_latency(Duration::from_millis(60))
            .spawn()
            .expect("emulator");
        let r = smallest_tests::fleet::tts_fleet(exe, &emu, &redis.url(), 2, 6, 40, modes);
        let ratio = r.elapsed.as_secs_f64() / r.ideal.as_secs_f64();
        println!(
            "| {} ({}) | {} | {:.2} s | {:.2} s | {ratio:.3} |",
            r.calls,
            modes.join(", "),
            r.refused,
            r.elapsed.as_secs_f64(),
            r.ideal.as_secs_f64()
        );
        assert_eq!((r.calls, r.refused, r.failed_workers), (240, 0, 0), "{r:?}");
        assert!(ratio <= 1.15, "{modes:?}: {ratio:.3} x the ideal");
    }
}

/// What a Redis slot adds to one call: the time to take a free slot (one script round
/// trip through the limits' thread), and a sync TTS call with Redis limits vs local ones.
#[test]
#[ignore = "measurement: run with --ignored --nocapture (cargo xtask bench)"]
fn redis_slot_overhead_per_call() {
    use smallest_core::limits::Limits;
    let Some(redis) = smallest_tests::redis::RedisServer::start("redis_slot_overhead_per_call")
    else {
        return;
    };
    latency_header(
        &format!(
            "The overhead of a Redis TTS slot ({}; redis-server on loopback)",
            machine()
        ),
        &["what"],
    );
    let limits = smallest_redis::RedisLimits::builder(redis.url())
        .account("overhead")
        .build()
        .expect("limits");
    let runtime = smallest_tests::runtime();
    let mut take = Vec::new();
    for i in 0..(WARMUP + 200) {
        let started = Instant::now();
        let permit = runtime.block_on(limits.tts_slot()).expect("slot");
        let took = started.elapsed();
        drop(permit);
        // The release is on its way; let it land so the next take finds the slot free.
        std::thread::sleep(Duration::from_millis(2));
        if i >= WARMUP {
            take.push(took);
        }
    }
    latency_row(&["take a free slot (acquire script, in process)"], &take);
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_fleet_worker"));
    let emu = smallest_emulator::Emulator::builder()
        .spawn()
        .expect("emulator");
    for (what, redis_url) in [
        ("sync TTS call, local slot", None),
        ("sync TTS call, Redis slot", Some(redis.url())),
    ] {
        let args =
            smallest_tests::fleet::worker_args(&emu, redis_url.as_deref(), "sync", WARMUP + 100);
        let (lines, ok) =
            smallest_tests::fleet::Worker::spawn(exe, &args).finish(Duration::from_secs(120));
        assert!(ok, "{lines:?}");
        let calls: Vec<Duration> = smallest_tests::fleet::durations(&lines)[WARMUP..]
            .iter()
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .collect();
        latency_row(&[what], &calls);
    }
}
