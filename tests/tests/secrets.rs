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

/// A server on 127.0.0.1 that answers every request with a 401 whose body, request id
/// and error code quote the `Authorization` header it received: the key must still not
/// reach the caller's error, on either transport.
#[test]
fn a_server_that_echoes_the_key_does_not_get_it_into_the_error() {
    use std::io::{BufRead, BufReader, Write};
    const ECHO_KEY: &str = "sk_test_echoed_canary_31337";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        // One connection per transport (hyper, blocking, smol), each bounded in time.
        for _ in 0..3 {
            let Ok((socket, _)) = listener.accept() else {
                return;
            };
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(socket.try_clone().unwrap());
            let mut auth = String::new();
            for _ in 0..100 {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_owned();
                }
            }
            let body = format!(r#"{{"message":"invalid: {auth}","code":"{auth}"}}"#);
            let reply = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                 x-request-id: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut socket = socket;
            let _ = socket.write_all(reply.as_bytes());
        }
    });
    let config = smallest_core::Config::new(smallest_core::ApiKey::new(ECHO_KEY).unwrap())
        .with_base_url(&url)
        .unwrap();
    for api in smallest_tests::clients_with(config, None, smallest_tests::Limits::default()) {
        let e = api.voices().expect_err("a 401");
        assert!(e.is_auth(), "{}: {e}", api.name());
        let raw = e
            .api()
            .map(|a| String::from_utf8_lossy(a.raw_body()).into_owned());
        for text in [format!("{e}"), format!("{e:?}"), raw.unwrap_or_default()] {
            assert!(!text.contains(ECHO_KEY), "{}: {text}", api.name());
            assert!(text.contains("<redacted>"), "{}: {text}", api.name());
        }
    }
    server.join().unwrap();
}
