//! The live TTS and STT sessions fed arbitrary frames: no panic, and the sans-IO
//! loop verbs keep working afterwards.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use smallest_core::{SttLanguage, SttLiveConfig, SttLiveSession, TtsLiveConfig, TtsLiveSession, WsMessage};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let frame = |i: usize, chunk: &[u8]| match i % 3 {
        0 => WsMessage::Text(String::from_utf8_lossy(chunk).into_owned()),
        1 => WsMessage::Binary(Bytes::copy_from_slice(chunk)),
        _ => WsMessage::Text(format!("{{\"status\":\"chunk\",\"data\":{}}}", String::from_utf8_lossy(chunk))),
    };
    if let Ok(mut tts) = TtsLiveSession::new(TtsLiveConfig::new("magnus"), now) {
        let _ = tts.send_text("Hello", now);
        for (i, chunk) in data.chunks(64).enumerate() {
            let _ = tts.handle_message(frame(i, chunk), now + Duration::from_millis(i as u64));
            while tts.poll_event().is_some() {}
            while tts.poll_outgoing().is_some() {}
        }
        if let Some(t) = tts.poll_timeout() {
            tts.handle_timeout(t);
        }
    }
    if let Ok(mut stt) = SttLiveSession::new(SttLiveConfig::new(SttLanguage::En), now) {
        let _ = stt.send_audio(Bytes::copy_from_slice(data), now);
        for (i, chunk) in data.chunks(64).enumerate() {
            let _ = stt.handle_message(frame(i + 1, chunk), now);
            while stt.poll_event().is_some() {}
            while stt.poll_outgoing().is_some() {}
        }
    }
});
