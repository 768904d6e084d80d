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

/// Whether the capture takes ureq-proto's TRACE records too (its raw byte dumps).
static UREQ_PROTO_TRACE: AtomicBool = AtomicBool::new(false);

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        UREQ_PROTO_TRACE.load(Ordering::SeqCst)
            || !(metadata.target().starts_with("ureq_proto")
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
    UREQ_PROTO_TRACE.store(false, Ordering::SeqCst);
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
