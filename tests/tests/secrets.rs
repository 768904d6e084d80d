//! A canary key, run through every operation and error path on both transports: it
//! never appears in a `Debug` or `Display` of a client, a result or an error, and the
//! emulator's request log holds it scrubbed.

use serde_json::json;
use smallest_core::{LegacyTranscribeRequest, SttLanguage, TranscribeRequest, TtsRequest};
use smallest_tests::{RawCall, clients};

const CANARY: &str = "sk_canary_7f3a9c1e5b";

#[test]
fn the_key_never_appears_in_any_output() {
    for tls in [false, true] {
        let emulator = smallest_emulator::Emulator::builder()
            .key(CANARY)
            .max_upload_bytes(1024)
            .tls(tls)
            .spawn()
            .unwrap();
        for api in clients(&emulator, CANARY) {
            let mut seen = vec![api.client_debug()];
            let mut record = |debug: String, display: Option<String>| {
                seen.push(debug);
                seen.extend(display);
            };
            let ok = api.synthesize(&TtsRequest::new("Canary.", "magnus"));
            record(format!("{ok:?}"), None);
            let wav = ok.unwrap().to_wav().unwrap();
            let ok = api.transcribe(&TranscribeRequest::from_bytes(wav, SttLanguage::En));
            record(format!("{ok:?}"), None);
            let errors = [
                api.synthesize(&TtsRequest::new("Canary.", "nobody"))
                    .map(drop),
                api.synthesize(&TtsRequest::new("", "magnus")).map(drop),
                api.transcribe(&TranscribeRequest::from_bytes(
                    vec![1u8; 4096],
                    SttLanguage::En,
                ))
                .map(drop),
                api.transcribe_legacy(&LegacyTranscribeRequest::from_url(
                    "https://nowhere.invalid/a.wav",
                ))
                .map(drop),
                api.call(&RawCall::post(
                    "/waves/v1/lightning-large/get_speech",
                    json!({}),
                ))
                .map(drop),
                api.call(&RawCall::post("/waves/v1/nope", json!({})))
                    .map(drop),
            ];
            for result in errors {
                let e = result.expect_err("each of these fails");
                record(format!("{e:?}"), Some(e.to_string()));
            }
            for text in &seen {
                assert!(
                    !text.contains(CANARY),
                    "{}: the key leaked into {text}",
                    api.name()
                );
            }
        }
        let log = format!("{:?}", emulator.requests());
        assert!(
            !log.contains(CANARY),
            "the emulator's request log holds the key"
        );
    }
}
