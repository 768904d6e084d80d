//! Voices, the voice catalog, voice cloning and pronunciation dictionaries, over loopback with a
//! raw hyper client.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use smallest_emulator::{Emulator, RunningEmulator};

const KEY: &str = "sk_test_voices_A";
const OTHER: &str = "sk_test_voices_B";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

struct Http {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    fn new(emulator: &RunningEmulator) -> Self {
        Self {
            base: emulator.base_url(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `target` is a path on the emulator or an absolute URL.
    async fn send(
        &self,
        method: Method,
        target: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Reply {
        let uri = if target.starts_with("http") {
            target.to_owned()
        } else {
            format!("{}{target}", self.base)
        };
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self
            .client
            .request(req.body(Full::new(body.into())).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, target: &str, key: &str) -> Reply {
        self.send(Method::GET, target, Some(key), None, Bytes::new())
            .await
    }

    async fn json(&self, method: Method, path: &str, key: &str, body: Value) -> Reply {
        self.send(
            method,
            path,
            Some(key),
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    async fn tts(&self, key: &str, body: Value) -> Reply {
        self.json(Method::POST, "/waves/v1/tts", key, body).await
    }

    /// What the emulator's STT hears in `audio`.
    async fn transcribe(&self, audio: Bytes) -> String {
        let r = self
            .send(
                Method::POST,
                "/waves/v1/stt/?model=pulse&language=en",
                Some(KEY),
                Some("audio/wav"),
                audio,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.json()["transcription"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// TTS of `text` as WAV, then STT of the result.
    async fn round_trip(&self, key: &str, mut tts: Value) -> String {
        tts["output_format"] = json!("wav");
        tts["sample_rate"] = json!(16000);
        let r = self.tts(key, tts).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        self.transcribe(r.body).await
    }

    async fn clone_voice(&self, key: &str, form: &Form) -> Reply {
        let (ct, body) = form.encode();
        self.send(
            Method::POST,
            "/waves/v1/voice-cloning",
            Some(key),
            Some(&ct),
            body,
        )
        .await
    }
}

/// A `multipart/form-data` body, built byte for byte.
#[derive(Clone)]
struct Form {
    boundary: String,
    quote_boundary: bool,
    fields: Vec<(String, String)>,
    file: Option<(String, Option<String>, Vec<u8>)>,
}

impl Form {
    fn new(display_name: &str, file: Vec<u8>) -> Self {
        Self {
            boundary: "----smallest-test-7d3f9a".to_owned(),
            quote_boundary: false,
            fields: vec![("displayName".to_owned(), display_name.to_owned())],
            file: Some(("sample.wav".to_owned(), Some("audio/wav".to_owned()), file)),
        }
    }

    fn field(mut self, name: &str, value: &str) -> Self {
        self.fields.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without_field(mut self, name: &str) -> Self {
        self.fields.retain(|(n, _)| n != name);
        self
    }

    fn file_type(mut self, mime: Option<&str>) -> Self {
        if let Some(file) = self.file.as_mut() {
            file.1 = mime.map(str::to_owned);
        }
        self
    }

    fn encode(&self) -> (String, Vec<u8>) {
        let b = &self.boundary;
        let mut body = b"ignored preamble\r\n".to_vec();
        for (name, value) in &self.fields {
            body.extend_from_slice(
                format!(
                    "--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        if let Some((filename, mime, bytes)) = &self.file {
            body.extend_from_slice(
                format!(
                    "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                )
                .as_bytes(),
            );
            if let Some(mime) = mime {
                body.extend_from_slice(format!("Content-Type: {mime}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        let ct = if self.quote_boundary {
            format!("multipart/form-data; boundary=\"{b}\"")
        } else {
            format!("multipart/form-data; boundary={b}")
        };
        (ct, body)
    }
}

async fn emulator(clone_limit: usize) -> (RunningEmulator, Http) {
    let emu = Emulator::builder()
        .key(KEY)
        .key(OTHER)
        .clone_limit(clone_limit)
        .start()
        .await
        .expect("start");
    let http = Http::new(&emu);
    (emu, http)
}

/// A WAV of emulator speech saying `text`, fetched from the emulator itself.
async fn speech_wav(http: &Http, text: &str) -> Bytes {
    let r = http
        .send(
            Method::GET,
            &format!("/_emulator/speech.wav?text={}", text.replace(' ', "%20")),
            None,
            None,
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

fn is_object_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_timestamp(v: &Value) -> bool {
    // 2026-04-20T09:42:17.103Z
    v.as_str().is_some_and(|s| {
        let b = s.as_bytes();
        s.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && s.ends_with('Z')
    })
}

#[tokio::test]
async fn voice_list_and_catalog() {
    let (_emu, http) = emulator(10).await;
    let r = http.get("/waves/v1/lightning-v3.1/get_voices", KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    let voices = r.json()["voices"].as_array().cloned().unwrap_or_default();
    assert!(voices.len() >= 60, "{}", voices.len());
    let avery = voices.iter().find(|v| v["voiceId"] == "avery");
    assert_eq!(
        avery,
        Some(
            &json!({"voiceId":"avery","displayName":"Avery","tags":{"language":["english"],"accent":"american","gender":"female","age":"young","emotions":[],"usecases":["conversational"]}})
        )
    );
    for v in &voices {
        let tags = &v["tags"];
        assert!(v["voiceId"].is_string() && v["displayName"].is_string());
        assert!(tags["language"].as_array().is_some_and(|l| !l.is_empty()
            && l.iter().all(|n| {
                n.as_str()
                    .is_some_and(|n| n.len() > 2 && n == n.to_lowercase())
            })));
        for field in ["accent", "gender", "age"] {
            assert!(tags[field].is_string(), "{v}");
        }
        assert!(tags["emotions"].is_array() && tags["usecases"].is_array());
    }
    assert!(
        voices.iter().any(
            |v| v["voiceId"] == "meher" && v["tags"]["language"] == json!(["english", "hindi"])
        )
    );
    assert!(voices.iter().any(|v| v["tags"]["age"] == "middle aged"));

    // Only `lightning-v3.1`; the retired models are 410 as everywhere.
    for model in ["lightning-v3.1-pro", "lightning_v3.1", "nope"] {
        let r = http
            .get(&format!("/waves/v1/{model}/get_voices"), KEY)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{model}");
        let v = r.json();
        assert_eq!(v["error"], "Bad Request");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains(model) && m.contains("lightning-v3.1")),
            "{v}"
        );
    }
    let r = http.get("/waves/v1/lightning-v2/get_voices", KEY).await;
    assert_eq!(r.status, StatusCode::GONE);
    let r = http
        .send(
            Method::POST,
            "/waves/v1/lightning-v3.1/get_voices",
            Some(KEY),
            None,
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = http
        .send(
            Method::GET,
            "/waves/v1/lightning-v3.1/get_voices",
            None,
            None,
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({"message": "Unauthorized: No tokens provided"})
    );

    // The catalog.
    let r = http.get("/waves/v1/voice/get-all-models", KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    let catalog = r.json()["voices"].as_array().cloned().unwrap_or_default();
    assert_eq!(catalog.len(), voices.len());
    let mut ids = std::collections::HashSet::new();
    for v in &catalog {
        assert!(is_object_id(&v["_id"]), "{v}");
        assert!(ids.insert(v["_id"].clone()), "duplicate _id {v}");
        assert!(v["description"].as_str().is_some_and(|d| d.ends_with('.')));
        let keys: Vec<&str> = v["tags"]
            .as_object()
            .map(|t| t.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["age", "emotions", "language"]);
    }
    let mishka = catalog.iter().find(|v| v["voiceId"] == "mishka");
    let mishka = mishka.cloned().unwrap_or_default();
    assert_eq!(mishka["displayName"], "Mishka");
    assert_eq!(mishka["tags"]["language"], json!(["english", "hindi"]));
    // The preview is real audio, fetchable without a key, and says who it is.
    let preview = mishka["audioPreview"].as_str().unwrap_or_default();
    assert!(preview.starts_with(&http.base), "{preview}");
    let audio = http
        .send(Method::GET, preview, None, None, Bytes::new())
        .await;
    assert_eq!(audio.status, StatusCode::OK);
    assert_eq!(
        audio
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("audio/wav")
    );
    assert_eq!(&audio.body[..4], b"RIFF");
    assert_eq!(http.transcribe(audio.body).await, "Hi, I am Mishka.");
    // And usable as an STT URL.
    let r = http
        .json(
            Method::POST,
            "/waves/v1/stt/?model=pulse&language=en",
            KEY,
            json!({ "url": preview }),
        )
        .await;
    assert_eq!(r.json()["transcription"], "Hi, I am Mishka.");
}

#[tokio::test]
async fn clone_create_list_synthesize_and_isolation() {
    let (_emu, http) = emulator(10).await;
    let recording = speech_wav(&http, "This is my own voice for cloning").await;
    let form = Form::new("My Voice", recording.to_vec())
        .field("description", "Calm narrator")
        .field("accent", "indian")
        .field("tags", " en, tone-test ,")
        .field("language", "hi")
        .field("model", "lightning-v3.1");
    let mut quoted = form.clone();
    quoted.quote_boundary = true;
    let r = http.clone_voice(KEY, &quoted).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["message"], "Voice clone created successfully");
    let data = &v["data"];
    let voice_id = data["voiceId"].as_str().unwrap_or_default().to_owned();
    assert!(
        voice_id.len() == 16
            && voice_id.starts_with("voice_")
            && voice_id[6..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{voice_id}"
    );
    assert_eq!(data["displayName"], "My Voice");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["language"], "hi");
    assert_eq!(data["model"]["modelName"], "lightning-v3.1");
    assert!(is_object_id(&data["model"]["_id"]));
    assert_eq!(data["audioFileNames"], json!(["sample.wav"]));
    assert!(is_timestamp(&data["createdAt"]), "{data}");
    assert!(is_object_id(&data["organizationId"]));
    let sample = &data["samples"][0];
    let sample_text = sample["text"].as_str().unwrap_or_default().to_owned();
    let sample_audio = http
        .send(
            Method::GET,
            sample["audioUrl"].as_str().unwrap_or_default(),
            None,
            None,
            Bytes::new(),
        )
        .await;
    assert_eq!(sample_audio.status, StatusCode::OK);
    assert_eq!(http.transcribe(sample_audio.body).await, sample_text);

    // A second clone (unquoted boundary, pro model, no language → en).
    let second = Form::new("Second", recording.to_vec()).field("model", "lightning-v3.1-pro");
    let r = http.clone_voice(KEY, &second).await;
    assert_eq!(r.status, StatusCode::OK);
    let second = r.json()["data"].clone();
    assert_eq!(second["language"], "en");
    assert_eq!(second["model"]["modelName"], "lightning-v3.1-pro");
    assert_eq!(second["organizationId"], data["organizationId"]);

    // Listed for its key, oldest first.
    let r = http.get("/waves/v1/voice-cloning", KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json()["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2);
    let first = &list[0];
    assert!(is_object_id(&first["_id"]));
    assert_eq!(first["voiceId"], voice_id.as_str());
    assert_eq!(first["displayName"], "My Voice");
    assert_eq!(first["description"], "Calm narrator");
    assert_eq!(first["accent"], "indian");
    assert_eq!(first["tags"], json!(["en", "tone-test"]));
    assert_eq!(first["language"], "hi");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["cloningType"], "instant");
    assert_eq!(first["modelIds"], json!(["lightning-v3.1"]));
    assert_eq!(first["createdAt"], data["createdAt"]);
    assert_eq!(list[1]["modelIds"], json!(["lightning-v3.1-pro"]));

    // In the voice list of its key.
    let voices = http
        .get("/waves/v1/lightning-v3.1/get_voices", KEY)
        .await
        .json();
    let mine = voices["voices"].as_array().and_then(|vs| {
        vs.iter()
            .find(|v| v["voiceId"] == voice_id.as_str())
            .cloned()
    });
    let mine = mine.unwrap_or_default();
    assert_eq!(mine["displayName"], "My Voice");
    assert_eq!(mine["tags"]["language"], json!(["hindi"]));
    assert_eq!(mine["tags"]["accent"], "indian");

    // A TTS voice of its key: synthesis round-trips.
    let text = "Spoken by my clone.";
    assert_eq!(
        http.round_trip(KEY, json!({"text": text, "voice_id": voice_id}))
            .await,
        text
    );

    // Key B sees none of it and cannot use it.
    let r = http.get("/waves/v1/voice-cloning", OTHER).await;
    assert_eq!(r.json(), json!({"data": []}));
    let voices_b = http
        .get("/waves/v1/lightning-v3.1/get_voices", OTHER)
        .await
        .json();
    assert!(
        voices_b["voices"]
            .as_array()
            .is_some_and(|vs| vs.iter().all(|v| v["voiceId"] != voice_id.as_str()))
    );
    let r = http
        .tts(OTHER, json!({"text": "hi", "voice_id": voice_id}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"error": [{"code": "custom", "path": ["voice_id"], "message": "Invalid Voice ID"}]})
    );
}

#[tokio::test]
async fn clone_validation_errors() {
    let (_emu, http) = emulator(2).await;
    let wav = speech_wav(&http, "clone me").await.to_vec();
    let ok = Form::new("Voice", wav.clone());
    let error_of = |r: Reply| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        let v = r.json();
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
        v["error"].as_str().unwrap_or_default().to_owned()
    };

    let mut no_file = ok.clone();
    no_file.file = None;
    assert_eq!(
        error_of(http.clone_voice(KEY, &no_file).await),
        "No file provided"
    );
    // A JSON body carries no file.
    let r = http
        .json(
            Method::POST,
            "/waves/v1/voice-cloning",
            KEY,
            json!({"displayName": "x"}),
        )
        .await;
    assert_eq!(error_of(r), "No file provided");
    let r = http
        .send(
            Method::POST,
            "/waves/v1/voice-cloning",
            Some(KEY),
            Some("multipart/form-data"),
            "x",
        )
        .await;
    assert_eq!(error_of(r), "Multipart: Boundary not found");
    let r = http
        .send(
            Method::POST,
            "/waves/v1/voice-cloning",
            Some(KEY),
            Some("multipart/form-data; boundary=abc"),
            "--abc\r\nContent-Disposition: form-data; name=\"displayName\"\r\n\r\nunterminated",
        )
        .await;
    assert_eq!(
        error_of(r),
        "Malformed multipart/form-data body: unexpected end of form"
    );

    assert_eq!(
        error_of(
            http.clone_voice(KEY, &ok.clone().without_field("displayName"))
                .await
        ),
        "displayName is required"
    );
    assert_eq!(
        error_of(
            http.clone_voice(
                KEY,
                &ok.clone()
                    .without_field("displayName")
                    .field("displayName", &"n".repeat(501))
            )
            .await
        ),
        "displayName must be at most 500 characters"
    );
    let mut big = ok.clone();
    if let Some(file) = big.file.as_mut() {
        file.2 = vec![0u8; 5 * 1024 * 1024 + 1];
    }
    assert_eq!(
        error_of(http.clone_voice(KEY, &big).await),
        "File too large. Maximum size is 5MB"
    );
    // A body over 6 MB is refused without being read.
    if let Some(file) = big.file.as_mut() {
        file.2 = vec![0u8; 7 * 1024 * 1024];
    }
    assert_eq!(
        error_of(http.clone_voice(KEY, &big).await),
        "File too large. Maximum size is 5MB"
    );
    for mime in [Some("text/plain"), Some("audio/ogg"), None] {
        let message = error_of(http.clone_voice(KEY, &ok.clone().file_type(mime)).await);
        assert!(
            message.starts_with("Invalid file type")
                && message.contains("audio/mpeg, audio/mpeg-3, audio/wav, audio/wave, audio/webm, video/webm, audio/mp4, video/mp4"),
            "{message}"
        );
    }
    assert_eq!(
        error_of(
            http.clone_voice(KEY, &ok.clone().field("model", "lightning-v2"))
                .await
        ),
        "Voice cloning for lightning-v2 is deprecated. Please use lightning-v3.1"
    );
    assert!(
        error_of(
            http.clone_voice(KEY, &ok.clone().field("model", "lightning-large"))
                .await
        )
        .starts_with("Invalid model 'lightning-large'")
    );
    let message = error_of(
        http.clone_voice(KEY, &ok.clone().field("language", "ja"))
            .await,
    );
    assert!(
        message.starts_with("Invalid language. Supported: en, hi, mr,")
            && !message.contains("ja")
            && message.contains("ml"),
        "{message}"
    );
    // Every other MIME type of the list is accepted; the limit (2) is per key.
    let r = http
        .clone_voice(KEY, &ok.clone().file_type(Some("audio/mpeg")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = http
        .clone_voice(KEY, &ok.clone().file_type(Some("Video/MP4")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        error_of(http.clone_voice(KEY, &ok).await),
        "clone limit exceeded, consider upgrading"
    );
    assert_eq!(http.clone_voice(OTHER, &ok).await.status, StatusCode::OK);

    // Wrong method.
    let r = http
        .send(
            Method::PUT,
            "/waves/v1/voice-cloning",
            Some(KEY),
            None,
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // No key.
    let (ct, body) = ok.encode();
    let r = http
        .send(
            Method::POST,
            "/waves/v1/voice-cloning",
            None,
            Some(&ct),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn clones_cannot_be_deleted_with_a_key() {
    let (_emu, http) = emulator(10).await;
    let r = http
        .json(
            Method::POST,
            "/waves/v1/voice-cloning/delete",
            KEY,
            json!({"voiceId": "voice_abc"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let v = r.json();
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("requires a console session")),
        "{v}"
    );
    let r = http
        .json(
            Method::DELETE,
            "/waves/v1/lightning-large",
            KEY,
            json!({"voiceId": "voice_abc"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.json()["error_code"], "MODEL_DEPRECATED");
}

#[tokio::test]
async fn dictionaries_respell_tts_and_support_crud() {
    let (_emu, http) = emulator(10).await;
    const PATH: &str = "/waves/v1/pronunciation-dicts";
    let r = http.get(PATH, KEY).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!([])));

    let r = http
        .json(
            Method::POST,
            PATH,
            KEY,
            json!({"items": [{"word": "mysql", "pronunciation": "my-sequel"}, {"word": "nginx", "pronunciation": "engine-x"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let dict = r.json();
    let id = dict["id"].as_str().unwrap_or_default().to_owned();
    assert!(is_object_id(&dict["id"]), "{dict}");
    assert!(is_timestamp(&dict["createdAt"]), "{dict}");
    assert_eq!(
        dict["items"],
        json!([{"word": "mysql", "pronunciation": "my-sequel"}, {"word": "nginx", "pronunciation": "engine-x"}])
    );
    assert_eq!(
        std::str::from_utf8(&r.body)
            .ok()
            .map(|s| s.starts_with(r#"{"id":"#)),
        Some(true)
    );
    let r = http.get(PATH, KEY).await;
    assert_eq!(r.json(), json!([dict]));

    // TTS respells whole, case-sensitive words before synthesis: STT hears the respelling.
    let text = "I run mysql behind nginx, not MySQL or mysqld.";
    assert_eq!(
        http.round_trip(
            KEY,
            json!({"text": text, "voice_id": "magnus", "pronunciation_dicts": [id]})
        )
        .await,
        "I run my-sequel behind engine-x, not MySQL or mysqld."
    );
    assert_eq!(
        http.round_trip(KEY, json!({"text": text, "voice_id": "magnus"}))
            .await,
        text
    );

    // Several dictionaries apply in the order given.
    let r = http
        .json(
            Method::POST,
            PATH,
            KEY,
            json!({"items": [{"word": "my", "pronunciation": "mai"}]}),
        )
        .await;
    let second = r.json()["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        http.round_trip(
            KEY,
            json!({"text": "mysql", "voice_id": "magnus", "pronunciation_dicts": [id, second]})
        )
        .await,
        "mai-sequel"
    );
    assert_eq!(
        http.round_trip(
            KEY,
            json!({"text": "mysql", "voice_id": "magnus", "pronunciation_dicts": [second, id]})
        )
        .await,
        "my-sequel"
    );

    // PUT replaces the items; its answer has no createdAt.
    let r = http
        .json(
            Method::PUT,
            PATH,
            KEY,
            json!({"id": id, "items": [{"word": "SQL", "pronunciation": "sequel"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"id": id, "items": [{"word": "SQL", "pronunciation": "sequel"}]})
    );
    let list = http.get(PATH, KEY).await.json();
    assert_eq!(
        list[0]["items"],
        json!([{"word": "SQL", "pronunciation": "sequel"}])
    );
    assert_eq!(list[0]["createdAt"], dict["createdAt"]);
    assert_eq!(
        http.round_trip(
            KEY,
            json!({"text": "mysql and SQL", "voice_id": "magnus", "pronunciation_dicts": [id]})
        )
        .await,
        "mysql and sequel"
    );
    // Empty items are allowed on PUT.
    let r = http
        .json(Method::PUT, PATH, KEY, json!({"id": second, "items": []}))
        .await;
    assert_eq!(r.json(), json!({"id": second, "items": []}));

    // DELETE with a JSON body; then the id is unknown everywhere.
    let r = http
        .json(Method::DELETE, PATH, KEY, json!({"id": id}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"id": id, "deleted": true}));
    assert_eq!(
        std::str::from_utf8(&r.body).ok(),
        Some(format!(r#"{{"id":"{id}","deleted":true}}"#).as_str())
    );
    let not_found = json!({"error": "Dictionary not found"});
    let r = http
        .json(Method::DELETE, PATH, KEY, json!({"id": id}))
        .await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    let r = http
        .json(Method::PUT, PATH, KEY, json!({"id": id, "items": []}))
        .await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    let r = http
        .json(
            Method::PUT,
            PATH,
            KEY,
            json!({"id": "64f1234567890abcdef12345", "items": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = http
        .tts(
            KEY,
            json!({"text": "hi", "voice_id": "magnus", "pronunciation_dicts": [second, id]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"error": [{"code": "custom", "path": ["pronunciation_dicts", 1],
                          "message": format!("Pronunciation dictionary '{id}' not found")}]})
    );
    let r = http.get(PATH, KEY).await.json();
    assert_eq!(r.as_array().map(Vec::len), Some(1));

    let r = http
        .send(Method::PATCH, PATH, Some(KEY), None, Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn dictionary_validation_is_zod_shaped() {
    let (_emu, http) = emulator(10).await;
    const PATH: &str = "/waves/v1/pronunciation-dicts";
    let invalid = |r: Reply| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let v = r.json();
        assert_eq!(v["error"], "Invalid request body");
        v["details"].clone()
    };
    let r = http
        .json(
            Method::POST,
            PATH,
            KEY,
            json!({"items": [{"pronunciation": "my-sequel"}]}),
        )
        .await;
    assert!(
        std::str::from_utf8(&r.body)
            .is_ok_and(|s| s.starts_with(r#"{"error":"Invalid request body","details":["#))
    );
    assert_eq!(
        invalid(r),
        json!([{"code":"invalid_type","expected":"string","received":"undefined","path":["items",0,"word"],"message":"Required"}])
    );
    assert_eq!(
        invalid(
            http.json(Method::POST, PATH, KEY, json!({"items": []}))
                .await
        ),
        json!([{"code":"too_small","minimum":1,"type":"array","inclusive":true,"exact":false,"path":["items"],"message":"Array must contain at least 1 element(s)"}])
    );
    let details = invalid(
        http.json(
            Method::POST,
            PATH,
            KEY,
            json!({"items": [{"word": "", "pronunciation": null}]}),
        )
        .await,
    );
    assert_eq!(details[0]["code"], "too_small");
    assert_eq!(details[0]["type"], "string");
    assert_eq!(details[0]["path"], json!(["items", 0, "word"]));
    assert_eq!(details[1]["message"], "Expected string, received null");
    assert_eq!(
        invalid(http.json(Method::POST, PATH, KEY, json!({})).await)[0]["path"],
        json!(["items"])
    );
    let details = invalid(http.json(Method::PUT, PATH, KEY, json!({"id": ""})).await);
    assert_eq!(details[0]["path"], json!(["id"]));
    assert_eq!(details[0]["code"], "too_small");
    assert_eq!(details[1]["path"], json!(["items"]));
    assert_eq!(details[1]["message"], "Required");
    // DELETE without a body.
    let r = http
        .send(Method::DELETE, PATH, Some(KEY), None, Bytes::new())
        .await;
    assert_eq!(
        invalid(r),
        json!([{"code":"invalid_type","expected":"string","received":"undefined","path":["id"],"message":"Required"}])
    );
    let r = http
        .send(
            Method::POST,
            PATH,
            Some(KEY),
            Some("application/json"),
            "{not json",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "Invalid request body");
    // Nothing was created.
    assert_eq!(http.get(PATH, KEY).await.json(), json!([]));
    // A dictionary item of a TTS request must be a string (schema check).
    let r = http
        .tts(
            KEY,
            json!({"text": "hi", "voice_id": "magnus", "pronunciation_dicts": [7]}),
        )
        .await;
    assert_eq!(
        r.json()["error"][0]["path"],
        json!(["pronunciation_dicts", 0])
    );
}

#[tokio::test]
async fn dictionaries_are_per_key() {
    let (_emu, http) = emulator(10).await;
    const PATH: &str = "/waves/v1/pronunciation-dicts";
    let r = http
        .json(
            Method::POST,
            PATH,
            KEY,
            json!({"items": [{"word": "a", "pronunciation": "b"}]}),
        )
        .await;
    let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(http.get(PATH, OTHER).await.json(), json!([]));
    let not_found = (
        StatusCode::NOT_FOUND,
        json!({"error": "Dictionary not found"}),
    );
    let r = http
        .json(Method::PUT, PATH, OTHER, json!({"id": id, "items": []}))
        .await;
    assert_eq!((r.status, r.json()), not_found);
    let r = http
        .json(Method::DELETE, PATH, OTHER, json!({"id": id}))
        .await;
    assert_eq!((r.status, r.json()), not_found);
    let r = http
        .tts(
            OTHER,
            json!({"text": "a", "voice_id": "magnus", "pronunciation_dicts": [id]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error"][0]["path"],
        json!(["pronunciation_dicts", 0])
    );
    // Still there for its owner.
    assert_eq!(http.get(PATH, KEY).await.json()[0]["id"], id.as_str());
    let r = http.get(PATH, "sk_unknown").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
