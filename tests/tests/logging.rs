//! The key never reaches a log line: every operation and error path on both transports
//! runs with every `log` and `tracing` record captured at TRACE — ours and those of the
//! HTTP, TLS and WebSocket libraries underneath — and the canary is searched for in all
//! of it, as text and split across ureq's 16-byte hex-dump rows.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde_json::json;
use smallest_core::{LegacyTranscribeRequest, SttLanguage, TranscribeRequest, TtsRequest};
use smallest_tests::{RawCall, clients};

const CANARY: &str = "sk_canary_log_5d1f0a";

static LOG: Mutex<String> = Mutex::new(String::new());

/// The targets whose TRACE records are raw request dumps (`RUST_LOG=trace,ureq_proto=debug,tungstenite=debug`).
const RAW_DUMP_TARGETS: [&str; 2] = ["ureq_proto", "tungstenite::handshake"];

/// Whether the capture takes those raw dumps too.
static UREQ_PROTO_TRACE: AtomicBool = AtomicBool::new(false);

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        UREQ_PROTO_TRACE.load(Ordering::SeqCst)
            || !(RAW_DUMP_TARGETS
                .iter()
                .any(|t| metadata.target().starts_with(t))
                && metadata.level() == log::Level::Trace)
    }
    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {} {}\n", record.level(), record.target(), record.args());
        LOG.lock().unwrap().push_str(&line);
    }
    fn flush(&self) {}
}

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_everything() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| Sink)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// The canary as ureq-proto's TRACE hex dump would show it: the ASCII column of each
/// 16-byte row holds a piece of it, so look for any 8-character window of the key.
fn leaks(log: &str) -> Option<String> {
    let key = CANARY.as_bytes();
    for window in key.windows(8) {
        let w = std::str::from_utf8(window).unwrap_or_default();
        if let Some(at) = log.find(w) {
            let from = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = log[at..].find('\n').map_or(log.len(), |i| at + i);
            return Some(log[from..to].to_owned());
        }
    }
    None
}

#[test]
fn the_key_is_in_no_log_record_at_trace_level() {
    capture_everything();
    // Phase 1: everything at TRACE except ureq-proto's raw dumps (RUST_LOG=trace,ureq_proto=debug).
    let _only_me = PHASE.lock().unwrap();
    UREQ_PROTO_TRACE.store(false, Ordering::SeqCst);
    for tls in [false, true] {
        let emulator = smallest_emulator::Emulator::builder()
            .key(CANARY)
            .max_upload_bytes(1 << 20)
            .tls(tls)
            .spawn()
            .unwrap();
        for api in clients(&emulator, CANARY) {
            let audio = api
                .synthesize(&TtsRequest::new("Log me.", "magnus"))
                .unwrap();
            api.transcribe(&TranscribeRequest::from_bytes(
                audio.to_wav().unwrap(),
                SttLanguage::En,
            ))
            .unwrap();
            let _ = api.synthesize(&TtsRequest::new("Log me.", "nobody"));
            let _ = api.transcribe(&TranscribeRequest::from_bytes(
                vec![1u8; 2 << 20],
                SttLanguage::En,
            ));
            let _ = api.transcribe_legacy(&LegacyTranscribeRequest::from_url(
                "https://nowhere.invalid/a.wav",
            ));
            let _ = api.call(&RawCall::post(
                "/waves/v1/lightning-large/get_speech",
                json!({}),
            ));
            let _ = api.health();
            let log = LOG.lock().unwrap().clone();
            assert!(
                log.len() > 1000,
                "{}: the libraries logged nothing: capture is not working",
                api.name()
            );
            if let Some(line) = leaks(&log) {
                panic!(
                    "{} over {}: the key leaked into a log record: {line}",
                    api.name(),
                    if tls { "https" } else { "http" }
                );
            }
            // The SDK's own events are in the capture too: a span per call, its attempts.
            assert!(
                log.contains("smallest.call") && log.contains("attempt=1"),
                "{}: no SDK event was recorded",
                api.name()
            );
        }
        streams_uploads_and_live_sessions(&emulator);
        for api in clients(&emulator, CANARY) {
            let log = LOG.lock().unwrap().clone();
            assert!(
                log.len() > 1000,
                "{}: the libraries logged nothing: capture is not working",
                api.name()
            );
            if let Some(line) = leaks(&log) {
                panic!(
                    "{} over {}: the key leaked into a log record: {line}",
                    api.name(),
                    if tls { "https" } else { "http" }
                );
            }
        }
    }
}

#[test]
fn the_blocking_client_refuses_to_send_the_key_into_a_raw_trace_dump() {
    capture_everything();
    let emulator = smallest_emulator::Emulator::builder()
        .key(CANARY)
        .spawn()
        .unwrap();
    let client =
        smallest_blocking::Client::new(smallest_tests::config_for(&emulator, CANARY)).unwrap();
    // Phase 2 runs inside a lock so the other test never sees ureq-proto's dumps enabled.
    let _only_me = PHASE.lock().unwrap();
    UREQ_PROTO_TRACE.store(true, Ordering::SeqCst);
    let result = client.synthesize(&TtsRequest::new("Refuse me.", "magnus"));
    let health = client.health();
    let stream = client
        .synthesize_stream(&TtsRequest::new("Refuse me.", "magnus"))
        .map(drop);
    let live = client
        .tts_live(smallest_core::TtsLiveConfig::new("magnus"))
        .map(drop);
    let hyper = smallest_hyper::Client::new(smallest_tests::config_for(&emulator, CANARY)).unwrap();
    let hyper_live = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(hyper.tts_live(smallest_core::TtsLiveConfig::new("magnus")))
        .map(drop);
    UREQ_PROTO_TRACE.store(false, Ordering::SeqCst);
    for refused in [stream, live, hyper_live] {
        let err = refused.unwrap_err();
        assert!(
            err.to_string().contains("refusing to send the API key"),
            "{err}"
        );
    }
    let err = result.unwrap_err();
    assert!(err.to_string().contains("ureq_proto"), "{err}");
    assert!(
        health.is_ok(),
        "a request without the key is sent: {health:?}"
    );
    assert!(
        emulator
            .requests()
            .iter()
            .all(|r| r.path != "/waves/v1/tts"),
        "the request was sent"
    );
    assert_eq!(leaks(&LOG.lock().unwrap()), None);
}

static PHASE: Mutex<()> = Mutex::new(());

/// Every other way the key goes out: SSE streams, streamed uploads and both live
/// WebSocket sessions, on both transports.
fn streams_uploads_and_live_sessions(emulator: &smallest_emulator::RunningEmulator) {
    use smallest_core::{SttLiveConfig, TtsLiveConfig};
    let hyper = {
        let mut b = smallest_hyper::Client::builder(smallest_tests::config_for(emulator, CANARY));
        if let Some(ca) = emulator.ca_certificate_der() {
            b = b.add_root_certificate_der(ca);
        }
        b.build().unwrap()
    };
    let blocking = {
        let mut b =
            smallest_blocking::Client::builder(smallest_tests::config_for(emulator, CANARY));
        if let Some(ca) = emulator.ca_certificate_der() {
            b = b.add_root_certificate_der(ca);
        }
        b.build().unwrap()
    };
    let wav = std::env::temp_dir().join(format!("smallest-logging-{}.wav", std::process::id()));
    let pcm = smallest_emulator::speech::synthesize_pcm("Logged.", 16000, 1.0);
    let mut file = smallest_core::audio::wav_header(
        smallest_core::audio::WavEncoding::Pcm16,
        16000,
        (pcm.len() * 2) as u64,
    )
    .to_vec();
    file.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
    std::fs::write(&wav, &file).unwrap();
    let template = TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En);
    let raw: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = hyper
            .synthesize_stream(&TtsRequest::new("Stream me.", "magnus"))
            .await
            .unwrap();
        stream.collect().await.unwrap();
        hyper.transcribe_file(&wav, &template, None).await.unwrap();
        let live = hyper.tts_live(TtsLiveConfig::new("magnus")).await.unwrap();
        let (tx, mut rx) = live.split();
        tx.speak("Live.").await.unwrap();
        while let Some(event) = rx.recv().await {
            if matches!(event, Ok(smallest_core::TtsLiveEvent::Complete { .. })) {
                break;
            }
        }
        tx.close().await.unwrap();
        let live = hyper
            .stt_live(SttLiveConfig::new(SttLanguage::En))
            .await
            .unwrap();
        let (tx, mut rx) = live.split();
        tx.send_audio(&raw).await.unwrap();
        tx.close_stream().await.unwrap();
        while rx.recv().await.is_some() {}
    });
    drop(runtime);
    blocking
        .synthesize_stream(&TtsRequest::new("Stream me.", "magnus"))
        .unwrap()
        .collect()
        .unwrap();
    blocking.transcribe_file(&wav, &template, None).unwrap();
    let (tx, mut rx) = blocking
        .tts_live(TtsLiveConfig::new("magnus"))
        .unwrap()
        .split();
    tx.speak("Live.").unwrap();
    while let Some(event) = rx.recv() {
        if matches!(event, Ok(smallest_core::TtsLiveEvent::Complete { .. })) {
            break;
        }
    }
    tx.close().unwrap();
    let (tx, mut rx) = blocking
        .stt_live(SttLiveConfig::new(SttLanguage::En))
        .unwrap()
        .split();
    tx.send_audio(&raw).unwrap();
    tx.close_stream().unwrap();
    while rx.recv().is_some() {}
}
