//! Streaming on both transports, over HTTP and TLS, against the emulator: TTS over
//! Server-Sent Events (`synthesize_stream`) and STT uploads streamed from a file or a
//! reader (`transcribe_file`, `transcribe_reader`).
//!
//! The `#[ignore]`d `memory_*` tests stream 1 GiB of audio and upload 200 MB, and report
//! the client's peak memory. They are benchmarks, not timed tests; run them in release:
//!
//! ```text
//! cargo test -p smallest-tests --release --test streaming -- --ignored --nocapture
//! ```
//!
//! Each runs the client in a child process (this test binary again, selecting the
//! `memory_child` test), so the peak memory it reports (`VmHWM`) is the client's alone,
//! not the emulator's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smallest_async::BuildOn as _;
use smallest_core::audio::{wav_data, wav_info};
use smallest_core::retry::RetryPolicy;
use smallest_core::{
    Audio, Error, OutputFormat, SttLanguage, TimeoutPhase, TranscribeRequest, Transcription,
    TtsRequest,
};
use smallest_emulator::{EmulatorBuilder, Fault, FaultRule, RunningEmulator};
use smallest_tests::{KEY, config_for};

const TEXT: &str = "Streaming speech arrives in pieces, and every piece counts.";

/// Everything a stream handed over, read to its end.
#[derive(Debug)]
struct Outcome {
    data: Vec<u8>,
    chunks: u64,
    /// The `Err` item, if the stream ended with one.
    error: Option<Error>,
    /// Items after the error (there must be none).
    after_error: usize,
    complete: bool,
    time_to_first_chunk: Option<Duration>,
    request_id: Option<String>,
}

/// Progress calls an upload made: `(sent, total)`.
type Calls = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

/// The streaming operations, in blocking form, for both transports.
trait Streaming {
    fn name(&self) -> &'static str;
    fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error>;
    /// Iterates the stream to its end, checking the chunks' offsets as it goes.
    fn stream(&self, request: &TtsRequest) -> Result<Outcome, Error>;
    fn collect(&self, request: &TtsRequest) -> Result<Audio, Error>;
    /// The stream through its `Read` / `AsyncRead` adapter.
    fn read_all(&self, request: &TtsRequest) -> Result<Vec<u8>, std::io::Error>;
    fn save_wav(&self, request: &TtsRequest, path: &Path) -> Result<u64, Error>;
    fn write_to_sink(&self, request: &TtsRequest) -> Result<u64, Error>;
    /// Opens a stream, checks that it holds the only TTS slot, drops it unread, and
    /// returns the slots free before and after the drop.
    fn slot_while_open(&self, request: &TtsRequest) -> Result<(usize, usize), Error>;
    fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error>;
    fn transcribe_file(
        &self,
        path: &Path,
        template: &TranscribeRequest,
        calls: &Calls,
    ) -> Result<Transcription, Error>;
    fn transcribe_reader(
        &self,
        data: Vec<u8>,
        len: Option<u64>,
        template: &TranscribeRequest,
        calls: &Calls,
    ) -> Result<Transcription, Error>;
}

/// Adds one item of a stream to `outcome`, checking each chunk against the bytes before it.
fn record(outcome: &mut Outcome, item: Result<smallest_core::AudioChunk, Error>) {
    match (item, outcome.error.is_some()) {
        (_, true) => outcome.after_error += 1,
        (Ok(chunk), false) => {
            assert_eq!(chunk.index(), outcome.chunks, "chunk index");
            assert_eq!(
                chunk.offset_bytes(),
                outcome.data.len() as u64,
                "chunk offset"
            );
            assert!(!chunk.is_empty());
            outcome.chunks += 1;
            outcome.data.extend_from_slice(chunk.data());
        }
        (Err(e), false) => outcome.error = Some(e),
    }
}

fn outcome() -> Outcome {
    Outcome {
        data: Vec::new(),
        chunks: 0,
        error: None,
        after_error: 0,
        complete: false,
        time_to_first_chunk: None,
        request_id: None,
    }
}

fn recorder(calls: &Calls) -> impl Fn(u64, Option<u64>) + Send + Sync + 'static {
    let calls = calls.clone();
    move |sent, total| calls.lock().unwrap().push((sent, total))
}

struct HyperStreaming {
    runtime: tokio::runtime::Runtime,
    client: smallest_hyper::Client,
}

impl HyperStreaming {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// `smallest-async` on smol.
struct SmolStreaming {
    client: smallest_async::Client,
}

impl SmolStreaming {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }
}

/// The [`Streaming`] of an async client crate: its futures run by `self.block_on`, its
/// readers and writers those of its I/O traits.
macro_rules! async_streaming {
    ($ty:ident, $name:literal, $krate:ident, $read_ext:path, $sink:expr, $cursor:path) => {
        impl Streaming for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
                self.block_on(self.client.synthesize(request))
            }
            fn stream(&self, request: &TtsRequest) -> Result<Outcome, Error> {
                self.block_on(async {
                    let mut stream = self.client.synthesize_stream(request).await?;
                    let mut out = outcome();
                    out.request_id = stream.info().request_id.clone();
                    while let Some(item) = stream.next_chunk().await {
                        record(&mut out, item);
                    }
                    out.complete = stream.is_complete();
                    out.time_to_first_chunk = stream.time_to_first_chunk();
                    Ok(out)
                })
            }
            fn collect(&self, request: &TtsRequest) -> Result<Audio, Error> {
                self.block_on(async {
                    self.client
                        .synthesize_stream(request)
                        .await?
                        .collect()
                        .await
                })
            }
            fn read_all(&self, request: &TtsRequest) -> Result<Vec<u8>, std::io::Error> {
                use $read_ext;
                self.block_on(async {
                    let stream = self
                        .client
                        .synthesize_stream(request)
                        .await
                        .map_err(std::io::Error::other)?;
                    let mut out = Vec::new();
                    stream.into_async_read().read_to_end(&mut out).await?;
                    Ok(out)
                })
            }
            fn save_wav(&self, request: &TtsRequest, path: &Path) -> Result<u64, Error> {
                self.block_on(async {
                    self.client
                        .synthesize_stream(request)
                        .await?
                        .save_wav(path)
                        .await
                })
            }
            fn write_to_sink(&self, request: &TtsRequest) -> Result<u64, Error> {
                self.block_on(async {
                    self.client
                        .synthesize_stream(request)
                        .await?
                        .write_to($sink)
                        .await
                })
            }
            fn slot_while_open(&self, request: &TtsRequest) -> Result<(usize, usize), Error> {
                self.block_on(async {
                    let stream = self.client.synthesize_stream(request).await?;
                    let open = self.client.tts_limiter().available();
                    drop(stream);
                    Ok((open, self.client.tts_limiter().available()))
                })
            }
            fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error> {
                self.block_on(self.client.transcribe(request))
            }
            fn transcribe_file(
                &self,
                path: &Path,
                template: &TranscribeRequest,
                calls: &Calls,
            ) -> Result<Transcription, Error> {
                let record = recorder(calls);
                let hook: $krate::ProgressHook =
                    Arc::new(move |p: $krate::Progress| record(p.sent, p.total));
                self.block_on(self.client.transcribe_file(path, template, Some(hook)))
            }
            fn transcribe_reader(
                &self,
                data: Vec<u8>,
                len: Option<u64>,
                template: &TranscribeRequest,
                calls: &Calls,
            ) -> Result<Transcription, Error> {
                let record = recorder(calls);
                let hook: $krate::ProgressHook =
                    Arc::new(move |p: $krate::Progress| record(p.sent, p.total));
                let reader = $cursor(data);
                self.block_on(
                    self.client
                        .transcribe_reader(reader, len, template, Some(hook)),
                )
            }
        }
    };
}

async_streaming!(
    HyperStreaming,
    "hyper",
    smallest_hyper,
    tokio::io::AsyncReadExt,
    tokio::io::sink(),
    std::io::Cursor::new
);
async_streaming!(
    SmolStreaming,
    "smol",
    smallest_async,
    futures_util::AsyncReadExt,
    futures_util::io::sink(),
    futures_util::io::Cursor::new
);

struct BlockingStreaming {
    client: smallest_blocking::Client,
}

impl Streaming for BlockingStreaming {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.client.synthesize(request)
    }
    fn stream(&self, request: &TtsRequest) -> Result<Outcome, Error> {
        let mut stream = self.client.synthesize_stream(request)?;
        let mut out = outcome();
        out.request_id = stream.info().request_id.clone();
        for item in &mut stream {
            record(&mut out, item);
        }
        out.complete = stream.is_complete();
        out.time_to_first_chunk = stream.time_to_first_chunk();
        Ok(out)
    }
    fn collect(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.client.synthesize_stream(request)?.collect()
    }
    fn read_all(&self, request: &TtsRequest) -> Result<Vec<u8>, std::io::Error> {
        use std::io::Read;
        let stream = self
            .client
            .synthesize_stream(request)
            .map_err(std::io::Error::other)?;
        let mut out = Vec::new();
        stream.into_reader().read_to_end(&mut out)?;
        Ok(out)
    }
    fn save_wav(&self, request: &TtsRequest, path: &Path) -> Result<u64, Error> {
        self.client.synthesize_stream(request)?.save_wav(path)
    }
    fn write_to_sink(&self, request: &TtsRequest) -> Result<u64, Error> {
        self.client
            .synthesize_stream(request)?
            .write_to(std::io::sink())
    }
    fn slot_while_open(&self, request: &TtsRequest) -> Result<(usize, usize), Error> {
        let stream = self.client.synthesize_stream(request)?;
        let open = self.client.tts_limiter().available();
        drop(stream);
        Ok((open, self.client.tts_limiter().available()))
    }
    fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error> {
        self.client.transcribe(request)
    }
    fn transcribe_file(
        &self,
        path: &Path,
        template: &TranscribeRequest,
        calls: &Calls,
    ) -> Result<Transcription, Error> {
        let record = recorder(calls);
        let hook: smallest_blocking::ProgressHook =
            Arc::new(move |p: smallest_blocking::Progress| record(p.sent, p.total));
        self.client.transcribe_file(path, template, Some(hook))
    }
    fn transcribe_reader(
        &self,
        data: Vec<u8>,
        len: Option<u64>,
        template: &TranscribeRequest,
        calls: &Calls,
    ) -> Result<Transcription, Error> {
        let record = recorder(calls);
        let hook: smallest_blocking::ProgressHook =
            Arc::new(move |p: smallest_blocking::Progress| record(p.sent, p.total));
        self.client
            .transcribe_reader(&data[..], len, template, Some(hook))
    }
}

/// Time limits that bound every call of a test.
#[derive(Clone, Copy)]
struct Limits {
    idle: Duration,
    total: Duration,
    retry: bool,
}

const LIMITS: Limits = Limits {
    idle: Duration::from_secs(20),
    total: Duration::from_secs(120),
    retry: false,
};

/// Every client for `emulator`, trusting its CA when it has one.
fn clients(emulator: &RunningEmulator, limits: Limits) -> Vec<Box<dyn Streaming>> {
    let ca = emulator.ca_certificate_der();
    // Retry-After: 0 in the retry scenarios keeps them quick; otherwise no retries, so
    // each answer is seen as the server gave it.
    let policy = if limits.retry {
        RetryPolicy::default()
    } else {
        RetryPolicy::none()
    };
    let mut hyper = smallest_hyper::Client::builder(config_for(emulator, KEY))
        .retry_policy(policy)
        .response_timeout(limits.total)
        .idle_timeout(limits.idle)
        .total_timeout(limits.total);
    let mut blocking = smallest_blocking::Client::builder(config_for(emulator, KEY))
        .retry_policy(policy)
        .response_timeout(limits.total)
        .idle_timeout(limits.idle)
        .total_timeout(limits.total);
    let mut smol = smallest_async::Client::builder(config_for(emulator, KEY))
        .retry_policy(policy)
        .response_timeout(limits.total)
        .idle_timeout(limits.idle)
        .total_timeout(limits.total);
    if let Some(der) = ca {
        hyper = hyper.add_root_certificate_der(der.clone());
        blocking = blocking.add_root_certificate_der(der.clone());
        smol = smol.add_root_certificate_der(der);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    vec![
        Box::new(HyperStreaming {
            runtime,
            client: hyper.build().expect("hyper client"),
        }),
        Box::new(BlockingStreaming {
            client: blocking.build().expect("blocking client"),
        }),
        Box::new(SmolStreaming {
            client: smol
                .build_on(smallest_async::SmolRuntime)
                .expect("smol client"),
        }),
    ]
}

/// Where a scenario runs.
struct Setup<'a> {
    api: &'a dyn Streaming,
    emulator: &'a RunningEmulator,
    tls: bool,
}

impl std::fmt::Display for Setup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{} over {scheme}", self.api.name())
    }
}

/// Runs `scenario` on both transports, over plain HTTP and TLS.
fn on_every_transport(builder: EmulatorBuilder, limits: Limits, scenario: impl Fn(&Setup<'_>)) {
    for tls in [false, true] {
        let emulator = builder.clone().tls(tls).spawn().expect("emulator starts");
        for api in clients(&emulator, limits) {
            scenario(&Setup {
                api: api.as_ref(),
                emulator: &emulator,
                tls,
            });
        }
    }
}

/// A file in the temporary directory, deleted when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempFile(std::env::temp_dir().join(format!(
            "smallest-streaming-{}-{n}-{name}",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The scenarios' emulator, with server-side TTS slots to spare: a stream a client
/// drops or gives up on may hold its slot for a moment after the client moved on.
fn emulator() -> EmulatorBuilder {
    smallest_tests::emulator().tts_concurrency(8)
}

fn tts(text: &str, format: OutputFormat, sample_rate: u32) -> TtsRequest {
    TtsRequest::new(text, "magnus")
        .sample_rate(sample_rate)
        .output_format(format)
}

fn template() -> TranscribeRequest {
    TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En)
}

fn u32_at(file: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(file[at..at + 4].try_into().unwrap())
}

#[test]
fn streamed_audio_equals_the_synchronous_audio() {
    // An odd event size: 16-bit samples straddle events, and must come out whole.
    on_every_transport(emulator().sse_chunk_bytes(1001), LIMITS, |s| {
        for format in [
            OutputFormat::Pcm,
            OutputFormat::Mp3,
            OutputFormat::Wav,
            OutputFormat::Ulaw,
        ] {
            let request = tts(TEXT, format, 24000);
            let sync = s.api.synthesize(&request).unwrap();
            let streamed = s.api.stream(&request).unwrap();
            assert!(
                streamed.error.is_none(),
                "{s} {format}: {:?}",
                streamed.error
            );
            assert!(streamed.complete, "{s} {format}");
            assert!(
                streamed.chunks > 2,
                "{s} {format}: {} chunks",
                streamed.chunks
            );
            assert_eq!(
                streamed.data.len(),
                sync.bytes().len(),
                "{s} {format}: length"
            );
            assert!(
                streamed.data == sync.bytes()[..],
                "{s} {format}: bytes differ"
            );
            assert!(streamed.request_id.is_some(), "{s} {format}");
            assert!(streamed.time_to_first_chunk.is_some(), "{s} {format}");
        }
        // The other ways to read a stream give the same bytes.
        let request = tts(TEXT, OutputFormat::Pcm, 16000);
        let sync = s.api.synthesize(&request).unwrap();
        let collected = s.api.collect(&request).unwrap();
        assert_eq!(collected.bytes(), sync.bytes(), "{s}: collect");
        assert_eq!(collected.format(), OutputFormat::Pcm, "{s}");
        assert_eq!(collected.sample_rate(), 16000, "{s}");
        assert!(collected.info().request_id.is_some(), "{s}");
        let read = s.api.read_all(&request).unwrap();
        assert!(read == sync.bytes()[..], "{s}: reader");
        let copied = s.api.write_to_sink(&request).unwrap();
        assert_eq!(copied, sync.bytes().len() as u64, "{s}: write_to");
    });
}

#[test]
fn time_to_first_chunk_is_reported() {
    // Paced at 20× real time, so the audio really arrives over a while.
    on_every_transport(emulator().realtime_factor(20.0), LIMITS, |s| {
        let started = Instant::now();
        let streamed = s.api.stream(&tts(TEXT, OutputFormat::Pcm, 8000)).unwrap();
        let elapsed = started.elapsed();
        assert!(streamed.complete, "{s}: {:?}", streamed.error);
        let first = streamed.time_to_first_chunk.expect("time to first chunk");
        assert!(first <= elapsed, "{s}: {first:?} > {elapsed:?}");
    });
}

#[test]
fn write_wav_patches_the_sizes_and_the_file_transcribes_back() {
    on_every_transport(emulator(), LIMITS, |s| {
        // pcm gets our header; wav keeps the server's.
        for format in [OutputFormat::Pcm, OutputFormat::Wav] {
            let file = TempFile::new("speech.wav");
            let request = tts(TEXT, format, 16000);
            let written = s.api.save_wav(&request, &file.0).unwrap();
            let bytes = std::fs::read(&file.0).unwrap();
            assert_eq!(written, bytes.len() as u64, "{s} {format}");
            assert_eq!(&bytes[0..4], b"RIFF", "{s} {format}");
            assert_eq!(u32_at(&bytes, 4) as usize, bytes.len() - 8, "{s} {format}");
            let data = wav_data(&bytes).unwrap();
            assert_eq!(data.len(), bytes.len() - 44, "{s} {format}");
            assert_eq!(u32_at(&bytes, 40) as usize, data.len(), "{s} {format}");
            let info = wav_info(&bytes).unwrap();
            assert_eq!(
                (info.format_tag, info.channels, info.sample_rate),
                (1, 1, 16000),
                "{s} {format}"
            );
            let pcm = s
                .api
                .synthesize(&tts(TEXT, OutputFormat::Pcm, 16000))
                .unwrap();
            assert!(*data == pcm.bytes()[..], "{s} {format}: samples differ");
            let reader = hound::WavReader::open(&file.0).unwrap();
            assert_eq!(reader.spec().sample_rate, 16000, "{s} {format}");
            assert_eq!(reader.len() as usize, data.len() / 2, "{s} {format}");

            let text = s
                .api
                .transcribe_file(&file.0, &template(), &Calls::default())
                .unwrap();
            assert_eq!(text.transcription, TEXT, "{s} {format}");
        }
        // MP3 has no WAV form: refused, and no file is created.
        let file = TempFile::new("speech-mp3.wav");
        let e = s
            .api
            .save_wav(&tts(TEXT, OutputFormat::Mp3, 24000), &file.0)
            .unwrap_err();
        assert!(matches!(e, Error::Validation(_)), "{s}: {e:?}");
        assert!(!file.0.exists(), "{s}");
    });
}

#[test]
fn a_stream_cut_before_done_is_an_error_item() {
    on_every_transport(emulator().sse_stop_before_done(true), LIMITS, |s| {
        let request = tts(TEXT, OutputFormat::Pcm, 24000);
        let cut = s.api.stream(&request).unwrap();
        assert!(
            !cut.data.is_empty(),
            "{s}: the audio before the cut arrives"
        );
        assert!(!cut.complete, "{s}");
        assert_eq!(cut.after_error, 0, "{s}: nothing after the error");
        match &cut.error {
            Some(Error::Stream { message, .. }) => {
                assert!(message.contains("done"), "{s}: {message}")
            }
            other => panic!("{s}: expected a stream error, got {other:?}"),
        }
        // Every consumer sees it: none returns the short audio as a success.
        assert!(s.api.collect(&request).is_err(), "{s}: collect");
        assert!(s.api.write_to_sink(&request).is_err(), "{s}: write_to");
        let e = s.api.read_all(&request).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{s}: {e}");
        let inner = e.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert!(matches!(inner, Some(Error::Stream { .. })), "{s}: {e:?}");
        let file = TempFile::new("cut.wav");
        assert!(s.api.save_wav(&request, &file.0).is_err(), "{s}: save_wav");
    });
}

#[test]
fn a_connection_reset_mid_stream_is_a_transport_error_item() {
    let fault = FaultRule::new(
        "/waves/v1/tts/live",
        Fault::ResetMidBody { after_bytes: 3000 },
    );
    on_every_transport(emulator().fault(fault), LIMITS, |s| {
        let cut = s.api.stream(&tts(TEXT, OutputFormat::Pcm, 24000)).unwrap();
        assert!(!cut.complete, "{s}");
        assert!(!cut.data.is_empty(), "{s}");
        assert!(
            matches!(
                cut.error,
                Some(Error::Transport {
                    request_sent: true,
                    ..
                })
            ),
            "{s}: {:?}",
            cut.error
        );
    });
}

#[test]
fn a_stall_mid_stream_is_an_idle_timeout_item() {
    let fault = FaultRule::new(
        "/waves/v1/tts/live",
        Fault::StallBody {
            after_bytes: 3000,
            duration: Duration::from_secs(5),
        },
    );
    let limits = Limits {
        idle: Duration::from_millis(500),
        ..LIMITS
    };
    on_every_transport(emulator().fault(fault), limits, |s| {
        let started = Instant::now();
        let cut = s.api.stream(&tts(TEXT, OutputFormat::Pcm, 24000)).unwrap();
        assert!(!cut.complete, "{s}");
        assert!(
            matches!(
                cut.error,
                Some(Error::Timeout {
                    phase: TimeoutPhase::Idle,
                    ..
                })
            ),
            "{s}: {:?}",
            cut.error
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{s}");
    });
}

#[test]
fn failures_before_the_stream_are_errors_of_the_call() {
    on_every_transport(emulator(), LIMITS, |s| {
        // Refused locally.
        let e = s
            .api
            .stream(&tts(TEXT, OutputFormat::Pcm, 12345))
            .unwrap_err();
        assert!(matches!(e, Error::Validation(_)), "{s}: {e:?}");
        // A 2xx that is not an event stream.
        s.emulator
            .inject(FaultRule::new("/waves/v1/tts/live", Fault::WrongContentType).times(1));
        let e = s
            .api
            .stream(&tts(TEXT, OutputFormat::Pcm, 24000))
            .unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{s}: {e:?}");
        // A huge error body: only its first 4 KiB are read.
        s.emulator.inject(
            FaultRule::new(
                "/waves/v1/tts/live",
                Fault::HugeErrorBody {
                    status: 500,
                    bytes: 50 << 20,
                },
            )
            .times(1),
        );
        let e = s
            .api
            .stream(&tts(TEXT, OutputFormat::Pcm, 24000))
            .unwrap_err();
        let api = e.api().unwrap_or_else(|| panic!("{s}: {e:?}"));
        assert_eq!(api.status(), 500, "{s}");
        assert!(api.body_truncated(), "{s}");
        // The slot is held while the stream is open, and freed when it is dropped.
        let (open, dropped) = s
            .api
            .slot_while_open(&tts(TEXT, OutputFormat::Pcm, 24000))
            .unwrap();
        assert_eq!((open, dropped), (0, 1), "{s}");
    });
}

#[test]
fn a_stream_is_retried_until_its_head_says_2xx() {
    let fault = FaultRule::new(
        "/waves/v1/tts/live",
        Fault::Status {
            status: 503,
            retry_after: Some("0".into()),
            body: None,
        },
    )
    .times(1);
    let limits = Limits {
        retry: true,
        ..LIMITS
    };
    on_every_transport(emulator(), limits, |s| {
        s.emulator.inject(fault.clone());
        let streamed = s.api.stream(&tts(TEXT, OutputFormat::Pcm, 24000)).unwrap();
        assert!(streamed.complete, "{s}: {:?}", streamed.error);
        let attempts = s
            .emulator
            .requests()
            .iter()
            .filter(|r| r.path == "/waves/v1/tts/live")
            .map(|r| r.status)
            .collect::<Vec<_>>();
        assert_eq!(attempts[attempts.len() - 2..], [503, 200], "{s}");
    });
}

/// A WAV of emulator speech saying `text`, in a temporary file.
fn speech_file(s: &Setup<'_>, text: &str) -> (TempFile, Vec<u8>) {
    let audio = s
        .api
        .synthesize(&tts(text, OutputFormat::Wav, 16000))
        .unwrap();
    let file = TempFile::new("upload.wav");
    std::fs::write(&file.0, audio.bytes()).unwrap();
    (file, audio.bytes().to_vec())
}

fn last_upload(emulator: &RunningEmulator) -> smallest_emulator::RecordedRequest {
    emulator
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/waves/v1/stt/")
        .expect("an upload")
}

#[test]
fn a_streamed_upload_transcribes_like_the_same_bytes() {
    on_every_transport(emulator(), LIMITS, |s| {
        let (file, bytes) = speech_file(s, TEXT);
        let len = bytes.len() as u64;
        let expected = s
            .api
            .transcribe(&TranscribeRequest::from_bytes(
                bytes.clone(),
                SttLanguage::En,
            ))
            .unwrap();
        assert_eq!(expected.transcription, TEXT, "{s}");

        let calls = Calls::default();
        let from_file = s
            .api
            .transcribe_file(&file.0, &template().word_timestamps(true), &calls)
            .unwrap();
        assert_eq!(from_file.transcription, expected.transcription, "{s}");
        assert_eq!(from_file.metadata, expected.metadata, "{s}");
        assert!(
            !from_file.words.is_empty(),
            "{s}: the template's options are sent"
        );
        let upload = last_upload(s.emulator);
        assert_eq!(upload.body_len as u64, len, "{s}");
        assert_eq!(upload.header("content-type"), Some("audio/wav"), "{s}");
        if !s.tls {
            // HTTP/1.1 (TLS negotiates HTTP/2, which has no such header).
            assert_eq!(
                upload.header("content-length"),
                Some(len.to_string().as_str()),
                "{s}"
            );
        }
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls.last(),
            Some(&(len, Some(len))),
            "{s}: progress reaches the total"
        );
        assert!(
            calls.windows(2).all(|w| w[0].0 < w[1].0),
            "{s}: progress grows"
        );

        for declared in [Some(len), None] {
            let calls = Calls::default();
            let from_reader = s
                .api
                .transcribe_reader(bytes.clone(), declared, &template(), &calls)
                .unwrap();
            assert_eq!(from_reader.transcription, TEXT, "{s} {declared:?}");
            assert_eq!(last_upload(s.emulator).body_len as u64, len, "{s}");
            assert_eq!(
                calls.lock().unwrap().last(),
                Some(&(len, declared)),
                "{s} {declared:?}"
            );
        }
        if !s.tls {
            assert_eq!(
                last_upload(s.emulator).header("transfer-encoding"),
                Some("chunked"),
                "{s}: an unknown length is sent chunked"
            );
        }
    });
}

#[test]
fn an_upload_over_the_limit_is_a_413() {
    let limit = 64 * 1024;
    on_every_transport(emulator().max_upload_bytes(limit), LIMITS, |s| {
        let file = TempFile::new("big.wav");
        let bytes = vec![0u8; 3 * limit as usize];
        std::fs::write(&file.0, &bytes).unwrap();
        let e = s
            .api
            .transcribe_file(&file.0, &template(), &Calls::default())
            .unwrap_err();
        assert_eq!(
            e.api().map(|a| a.status().as_u16()),
            Some(413),
            "{s}: {e:?}"
        );
        // Without a length the server counts, and refuses as soon as it is over.
        let e = s
            .api
            .transcribe_reader(bytes, None, &template(), &Calls::default())
            .unwrap_err();
        assert_eq!(
            e.api().map(|a| a.status().as_u16()),
            Some(413),
            "{s}: {e:?}"
        );
    });
}

#[test]
fn a_file_upload_is_retried_and_a_reader_upload_is_not() {
    let fault = FaultRule::new(
        "/waves/v1/stt/",
        Fault::Status {
            status: 503,
            retry_after: Some("0".into()),
            body: None,
        },
    )
    .times(1);
    let limits = Limits {
        retry: true,
        ..LIMITS
    };
    on_every_transport(emulator(), limits, |s| {
        let (file, bytes) = speech_file(s, TEXT);
        s.emulator.inject(fault.clone());
        let calls = Calls::default();
        let text = s.api.transcribe_file(&file.0, &template(), &calls).unwrap();
        assert_eq!(text.transcription, TEXT, "{s}");
        let len = bytes.len() as u64;
        assert_eq!(calls.lock().unwrap().last(), Some(&(len, Some(len))), "{s}");

        s.emulator.inject(fault.clone());
        let e = s
            .api
            .transcribe_reader(bytes, Some(len), &template(), &Calls::default())
            .unwrap_err();
        assert_eq!(
            e.api().map(|a| a.status().as_u16()),
            Some(503),
            "{s}: {e:?}"
        );
    });
}

#[test]
fn a_missing_file_is_an_error_before_anything_is_sent() {
    let limits = Limits {
        retry: false,
        ..LIMITS
    };
    on_every_transport(emulator(), limits, |s| {
        let missing = TempFile::new("missing.wav");
        let e = s
            .api
            .transcribe_file(&missing.0, &template(), &Calls::default())
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Transport {
                    request_sent: false,
                    ..
                }
            ),
            "{s}: {e:?}"
        );
        assert!(e.to_string().contains("missing.wav"), "{s}: {e}");
    });
}

// ---------------------------------------------------------------------------------------
// Memory: `#[ignore]`d benchmarks. Each parent runs the emulator and re-runs this test
// binary as a child that runs only `memory_child`, which streams with the client and
// reports its own peak memory.
// ---------------------------------------------------------------------------------------

/// Audio bytes the TTS memory test streams at least.
const GIB: u64 = 1 << 30;

/// Bytes the upload memory test sends.
const UPLOAD_BYTES: u64 = 200 * 1000 * 1000;

/// The child's peak memory may not exceed this: far below what it moves.
const MAX_PEAK_RSS_KIB: u64 = 64 * 1024;

const CHILD_ENV: &str = "SMALLEST_MEMORY_CHILD";

/// The peak resident set size of this process, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `memory_child` in a child process with `task` and returns the peak RSS it reports.
fn run_child(task: &str) -> u64 {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["memory_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, task)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = stdout
        .lines()
        .find(|l| l.starts_with("memory:"))
        .unwrap_or_else(|| panic!("no report from the child:\n{stdout}\n{stderr}"));
    println!("{report}");
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    report
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
#[ignore = "benchmark: streams 1 GiB of audio; run in release with --ignored --nocapture"]
fn memory_tts_stream_of_a_gibibyte() {
    // 44.1 kHz PCM: each byte of text is 4 410 bytes of audio.
    let emulator = emulator()
        .text_repeat(250_000)
        .sse_chunk_bytes(16 * 1024)
        .spawn()
        .unwrap();
    for transport in ["hyper", "blocking"] {
        let peak = run_child(&format!("tts {transport} {}", emulator.base_url()));
        assert!(peak < MAX_PEAK_RSS_KIB, "{transport}: peak RSS {peak} KiB");
    }
}

#[test]
#[ignore = "benchmark: uploads 200 MB from a file; run in release with --ignored --nocapture"]
fn memory_upload_of_200_megabytes() {
    let emulator = emulator().spawn().unwrap();
    let file = TempFile::new("upload-200mb.wav");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file.0).unwrap());
        let data = UPLOAD_BYTES - 44;
        out.write_all(&smallest_core::audio::wav_header(
            smallest_core::audio::WavEncoding::Pcm16,
            16000,
            data,
        ))
        .unwrap();
        let silence = vec![0u8; 1 << 20];
        let mut left = data;
        while left > 0 {
            let n = left.min(silence.len() as u64) as usize;
            out.write_all(&silence[..n]).unwrap();
            left -= n as u64;
        }
        out.flush().unwrap();
    }
    for transport in ["hyper", "blocking"] {
        let peak = run_child(&format!(
            "upload {transport} {} {}",
            emulator.base_url(),
            file.0.display()
        ));
        assert!(peak < MAX_PEAK_RSS_KIB, "{transport}: peak RSS {peak} KiB");
    }
}

/// The client side of the memory tests; does nothing unless a parent started it.
#[test]
#[ignore = "the child process of the memory_* tests"]
fn memory_child() {
    let Ok(task) = std::env::var(CHILD_ENV) else {
        println!(
            "memory_child: run by memory_tts_stream_of_a_gibibyte and memory_upload_of_200_megabytes"
        );
        return;
    };
    let words: Vec<&str> = task.split(' ').collect();
    let config = smallest_core::Config::new(smallest_core::ApiKey::new(KEY).unwrap())
        .with_base_url(words[2])
        .unwrap();
    let started = Instant::now();
    let (what, bytes) = match (words[0], words[1]) {
        ("tts", transport) => {
            let request = tts("a", OutputFormat::Pcm, 44100);
            let bytes = if transport == "hyper" {
                let client = smallest_hyper::Client::new(config).unwrap();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    client
                        .synthesize_stream(&request)
                        .await?
                        .write_to(tokio::io::sink())
                        .await
                })
            } else {
                let client = smallest_blocking::Client::new(config).unwrap();
                client
                    .synthesize_stream(&request)
                    .and_then(|s| s.write_to(std::io::sink()))
            }
            .unwrap();
            assert!(bytes >= GIB, "{bytes} bytes");
            ("tts stream write_to(sink)", bytes)
        }
        ("upload", transport) => {
            let path = Path::new(words[3]);
            let sent = Arc::new(AtomicU64::new(0));
            let text = if transport == "hyper" {
                let client = smallest_hyper::Client::new(config).unwrap();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let sent = sent.clone();
                let hook: smallest_hyper::ProgressHook =
                    Arc::new(move |p: smallest_hyper::Progress| {
                        sent.store(p.sent, Ordering::Relaxed)
                    });
                runtime.block_on(client.transcribe_file(path, &template(), Some(hook)))
            } else {
                let client = smallest_blocking::Client::new(config).unwrap();
                let sent = sent.clone();
                let hook: smallest_blocking::ProgressHook =
                    Arc::new(move |p: smallest_blocking::Progress| {
                        sent.store(p.sent, Ordering::Relaxed)
                    });
                client.transcribe_file(path, &template(), Some(hook))
            }
            .unwrap();
            let bytes = sent.load(Ordering::Relaxed);
            assert_eq!(bytes, UPLOAD_BYTES);
            let file_size = text.metadata.and_then(|m| m.file_size);
            assert_eq!(file_size, Some(UPLOAD_BYTES));
            ("transcribe_file", bytes)
        }
        other => panic!("unknown task {other:?}"),
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "memory: {} {what}: bytes={bytes} ({:.2} GiB) secs={secs:.1} MiB/s={:.0} peak_rss_kib={}",
        words[1],
        bytes as f64 / GIB as f64,
        bytes as f64 / (1 << 20) as f64 / secs,
        peak_rss_kib()
    );
}
