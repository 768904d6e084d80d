//! The emulator's shared state: settings, per-key concurrency, the request log, fixtures and ids.
//! One `Arc<State>` per running emulator; every lock is held only for a few instructions.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use crate::RecordedRequest;
use crate::audio;
use crate::speech;

/// Most requests kept in the log; older ones are dropped first.
pub(crate) const REQUEST_LOG_CAPACITY: usize = 10_000;

/// Builder options, frozen at start.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) keys: HashSet<String>,
    pub(crate) forbidden_keys: HashSet<String>,
    pub(crate) tts_concurrency: usize,
    pub(crate) tts_latency: Duration,
    pub(crate) max_upload_bytes: u64,
    /// Raw audio bytes per SSE `audio` event.
    pub(crate) sse_chunk_bytes: usize,
    /// SSE pacing: 0 = as fast as possible, 1.0 = real time, 2.0 = twice real time.
    pub(crate) realtime_factor: f64,
    /// Whether SSE streams end without their `done` frame.
    pub(crate) sse_stop_before_done: bool,
    /// How many times TTS synthesizes each request's text, back to back.
    pub(crate) text_repeat: usize,
    /// Fault rules in place at start.
    pub(crate) faults: Vec<crate::faults::FaultRule>,
    /// Voice clones one key may create (`400 clone limit exceeded` beyond).
    pub(crate) clone_limit: usize,
    /// Whether the server speaks HTTPS (for absolute URLs into the emulator itself).
    pub(crate) tls: bool,
    /// Options of the live WebSocket routes.
    pub(crate) ws: crate::ws::WsSettings,
    /// STT transcriptions per model and key: at most `.0` in any `.1`.
    pub(crate) stt_rate: Option<(u32, std::time::Duration)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// UUID-shaped ids: a per-emulator random seed mixed with a counter.
struct IdGen {
    seed: u64,
    counter: AtomicU64,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl IdGen {
    fn new() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x736d_616c_6c65_7374);
        Self {
            seed: hasher.finish(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let a = splitmix(self.seed ^ n);
        let b = splitmix(a ^ self.seed.rotate_left(17));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0x0FFF,
            ((b >> 48) & 0x3FFF) | 0x8000,
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

#[derive(Default)]
struct RequestLog {
    next_seq: u64,
    entries: VecDeque<(u64, RecordedRequest)>,
}

/// Audio behind a URL in STT URL mode.
pub(crate) struct UrlAudio {
    pub(crate) bytes: Bytes,
    /// The last path segment, reported as `metadata.filename` by the legacy route.
    pub(crate) filename: String,
}

/// Shared state of one running emulator.
pub(crate) struct State {
    pub(crate) settings: Settings,
    fixtures: HashMap<String, Bytes>,
    pub(crate) addr: SocketAddr,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Accepted STT transcriptions per (key, model), oldest first, within the rate's window.
    stt_accepted: Mutex<HashMap<(String, String), VecDeque<std::time::Instant>>>,
    log: Mutex<RequestLog>,
    ids: IdGen,
    /// Injected faults (`crate::faults`).
    pub(crate) faults: crate::faults::FaultPlan,
    /// Voice clones and pronunciation dictionaries, per key.
    pub(crate) library: crate::library::Library,
    /// Open WebSocket sessions: per-key counts and the shutdown signal.
    pub(crate) ws: crate::ws::Hub,
}

impl State {
    pub(crate) fn new(
        settings: Settings,
        fixtures: HashMap<String, Bytes>,
        addr: SocketAddr,
    ) -> Self {
        let faults = crate::faults::FaultPlan::new(settings.faults.clone());
        Self {
            settings,
            fixtures,
            addr,
            in_flight: Mutex::new(HashMap::new()),
            stt_accepted: Mutex::new(HashMap::new()),
            log: Mutex::new(RequestLog::default()),
            ids: IdGen::new(),
            faults,
            library: crate::library::Library::default(),
            ws: crate::ws::Hub::default(),
        }
    }

    /// A fresh UUID-shaped id.
    pub(crate) fn new_id(&self) -> String {
        self.ids.next()
    }

    /// Appends a request to the log; returns its sequence number for [`State::finish_record`].
    pub(crate) fn record(&self, request: RecordedRequest) -> u64 {
        let mut log = lock(&self.log);
        let seq = log.next_seq;
        log.next_seq += 1;
        if log.entries.len() == REQUEST_LOG_CAPACITY {
            log.entries.pop_front();
        }
        log.entries.push_back((seq, request));
        seq
    }

    /// Fills in what is only known once the request was answered.
    pub(crate) fn finish_record(&self, seq: u64, status: u16, body_len: usize) {
        let mut log = lock(&self.log);
        if let Some((_, entry)) = log.entries.iter_mut().rev().find(|(s, _)| *s == seq) {
            entry.status = status;
            entry.body_len = body_len;
        }
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log)
            .entries
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Counts one STT transcription of `model` by `key` arrived at `at` against the rate
    /// ([`Settings::stt_rate`]): `Err(wait)` when the rate is used up (the request does not
    /// count), with how long until the oldest counted one leaves the window.
    pub(crate) fn take_stt_request(
        &self,
        key: &str,
        model: &str,
        at: std::time::Instant,
    ) -> Result<(), (u32, std::time::Duration)> {
        let Some((limit, window)) = self.settings.stt_rate else {
            return Ok(());
        };
        let mut all = lock(&self.stt_accepted);
        let times = all.entry((key.to_owned(), model.to_owned())).or_default();
        while times
            .front()
            .is_some_and(|t| at.saturating_duration_since(*t) >= window)
        {
            times.pop_front();
        }
        if times.len() < limit as usize {
            times.push_back(at);
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(at);
        Err((limit, (oldest + window).saturating_duration_since(at)))
    }

    /// Takes one of the key's TTS concurrency slots, if one is free.
    pub(crate) fn try_acquire_tts(self: &Arc<Self>, key: &str) -> Option<TtsSlot> {
        let mut in_flight = lock(&self.in_flight);
        let count = in_flight.entry(key.to_owned()).or_insert(0);
        if *count >= self.settings.tts_concurrency {
            return None;
        }
        *count += 1;
        Some(TtsSlot {
            state: Arc::clone(self),
            key: key.to_owned(),
        })
    }

    /// Resolves a URL given in STT URL mode, without any network access: registered fixtures,
    /// fixtures registered by path and reached through this emulator's own address, and the
    /// `/_emulator/speech.wav?text=…` generator.
    pub(crate) fn lookup_url(&self, url: &str) -> Option<UrlAudio> {
        let url = url.trim();
        let filename = |path: &str| {
            let path = path.split(['?', '#']).next().unwrap_or("");
            path.rsplit('/').next().unwrap_or("").to_owned()
        };
        if let Some(bytes) = self.fixtures.get(url) {
            let path = url.split_once("://").map_or(url, |(_, rest)| rest);
            return Some(UrlAudio {
                bytes: bytes.clone(),
                filename: filename(path),
            });
        }
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let port = self.addr.port().to_string();
        let is_self = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|host| authority.eq_ignore_ascii_case(&format!("{host}:{port}")));
        if !is_self {
            return None;
        }
        let bytes = self.local_resource(path)?;
        Some(UrlAudio {
            bytes,
            filename: filename(path),
        })
    }

    /// Audio this emulator serves itself at `path_and_query` (`GET`, no auth).
    pub(crate) fn local_resource(&self, path_and_query: &str) -> Option<Bytes> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        if path == SPEECH_PATH {
            return speech_wav(query);
        }
        self.fixtures.get(path).cloned()
    }
}

/// Longest `text` the speech generator renders (bytes); longer asks are "not found".
pub(crate) const MAX_GENERATED_TEXT: usize = 1024;

/// Path of the built-in speech generator.
pub(crate) const SPEECH_PATH: &str = "/_emulator/speech.wav";

/// `text` (required), `sample_rate` (default 16000), `speed` (default 1.0) → a WAV of emulator speech.
fn speech_wav(query: &str) -> Option<Bytes> {
    let params = crate::routes::parse_query(query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let text = get("text")?;
    let rate = get("sample_rate")
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|r| (8000..=48000).contains(r))
        .unwrap_or(16_000);
    let speed = get("speed")
        .and_then(|v| v.parse::<f32>().ok())
        .unwrap_or(1.0);
    // Bound the work one URL can ask for (under a minute of audio at speed 1).
    if text.len() > MAX_GENERATED_TEXT {
        return None;
    }
    let pcm = speech::synthesize_pcm(text, rate, speed);
    Some(Bytes::from(audio::wav_file(rate, &pcm)))
}

/// One in-flight TTS request of a key; dropping it frees the slot, however the request ended.
pub(crate) struct TtsSlot {
    state: Arc<State>,
    key: String,
}

impl Drop for TtsSlot {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.state.in_flight);
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_uuids_and_differ() {
        let ids = IdGen::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parts: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        }
    }
}
