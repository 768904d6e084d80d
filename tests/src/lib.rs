//! The harness of the cross-crate scenarios: every scenario runs on **both** transports
//! (`smallest-hyper`, `smallest-blocking`) against a real emulator on loopback, over
//! plain HTTP and over TLS with a CA the clients are told to trust.
//!
//! [`Api`] is the common surface of the two clients, in blocking form: the hyper
//! client runs on its own tokio runtime and is driven with `block_on`, so one scenario
//! body serves both. Nothing here mocks a transport: each call goes through the real
//! client, a real socket and the real emulator.
//!
//! [`hostile`] has the opposite of the emulator: raw-socket servers that misbehave on
//! purpose (silence, stalls, floods), for the conformance suite (`tests/conformance.rs`).

pub mod fleet;
pub mod hostile;
pub mod live;
pub mod proxy;
pub mod redis;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use smallest_async::BuildOn as _;
use smallest_core::ClientBuilder;
use smallest_core::options::FromOptions;
use smallest_core::retry::RetryPolicy;
use smallest_core::{
    ApiKey, Audio, CatalogVoice, ClonedVoice, Config, CreateDict, CreateVoiceClone, DeleteDict,
    DeletedDict, Endpoint, Error, HealthStatus, LegacyTranscribeRequest, PronunciationDict,
    TranscribeRequest, Transcription, TtsRequest, UpdateDict, Voice, VoiceClone,
};
use smallest_emulator::{EmulatorBuilder, RunningEmulator};

/// The key the scenarios' emulators accept.
pub const KEY: &str = "sk_test_scenarios_0123456789";

/// A valid key the emulator refuses with 403.
pub const FORBIDDEN_KEY: &str = "sk_test_forbidden_0123456789";

/// The operations every transport offers, in blocking form.
pub trait Api: Send + Sync {
    /// `hyper` or `blocking`.
    fn name(&self) -> &'static str;
    /// `POST /waves/v1/tts`.
    fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error>;
    /// Long text in sentence chunks, joined.
    fn synthesize_long(&self, request: &TtsRequest) -> Result<Audio, Error>;
    /// `POST /waves/v1/stt/`.
    fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error>;
    /// `POST /waves/v1/stt/`, the audio streamed from a file.
    fn transcribe_file(
        &self,
        path: &std::path::Path,
        request: &TranscribeRequest,
    ) -> Result<Transcription, Error>;
    /// `POST /waves/v1/pulse/get_text`.
    fn transcribe_legacy(&self, request: &LegacyTranscribeRequest) -> Result<Transcription, Error>;
    /// `GET /waves/v1/health`.
    fn health(&self) -> Result<HealthStatus, Error>;
    /// Any request, through the transport's generic `send`.
    fn call(&self, call: &RawCall) -> Result<http::Response<Bytes>, Error>;
    /// The client's `Debug` output.
    fn client_debug(&self) -> String;
    /// The voices, the catalog, clones and pronunciation dictionaries.
    fn voices(&self) -> Result<Vec<Voice>, Error>;
    /// `GET /waves/v1/voice/get-all-models`.
    fn voice_catalog(&self) -> Result<Vec<CatalogVoice>, Error>;
    /// `POST /waves/v1/voice-cloning`.
    fn create_voice_clone(&self, request: &CreateVoiceClone) -> Result<VoiceClone, Error>;
    /// `GET /waves/v1/voice-cloning`.
    fn list_voice_clones(&self) -> Result<Vec<ClonedVoice>, Error>;
    /// `GET /waves/v1/pronunciation-dicts`.
    fn list_dicts(&self) -> Result<Vec<PronunciationDict>, Error>;
    /// `POST /waves/v1/pronunciation-dicts`.
    fn create_dict(&self, request: &CreateDict) -> Result<PronunciationDict, Error>;
    /// `PUT /waves/v1/pronunciation-dicts`.
    fn update_dict(&self, request: &UpdateDict) -> Result<PronunciationDict, Error>;
    /// `DELETE /waves/v1/pronunciation-dicts`.
    fn delete_dict(&self, request: &DeleteDict) -> Result<DeletedDict, Error>;
}

/// A request the SDK has no operation for (a retired or unknown route), sent through
/// the generic `send` of each transport: the core's [`Endpoint`] trait is public so
/// users can describe such calls themselves.
#[derive(Clone, Debug)]
pub struct RawCall {
    /// The method.
    pub method: http::Method,
    /// The path and query.
    pub path: String,
    /// A JSON body.
    pub body: serde_json::Value,
}

impl RawCall {
    /// `POST path` with a JSON body.
    pub fn post(path: &str, body: serde_json::Value) -> Self {
        RawCall {
            method: http::Method::POST,
            path: path.to_owned(),
            body,
        }
    }
}

impl Endpoint for RawCall {
    type Output = http::Response<Bytes>;

    fn to_http_request(&self, config: &Config) -> Result<http::Request<Bytes>, Error> {
        Ok(http::Request::builder()
            .method(self.method.clone())
            .uri(config.uri(&self.path)?)
            .header("content-type", "application/json")
            .body(Bytes::from(self.body.to_string()))
            .expect("raw request"))
    }

    fn from_http_response(&self, response: http::Response<Bytes>) -> Result<Self::Output, Error> {
        smallest_core::check_status(response)
    }
}

/// The async client, driven from blocking code on tokio.
pub struct HyperApi {
    runtime: tokio::runtime::Runtime,
    client: smallest_hyper::Client,
}

/// `smallest-async` on smol, driven from blocking code.
pub struct SmolApi {
    client: smallest_async::Client,
}

/// The [`Api`] of an async client: every method is the client's, run to completion by
/// `$block_on(self, future)`.
macro_rules! async_api {
    ($api:ident, $name:literal, $block_on:path) => {
        impl Api for $api {
            fn name(&self) -> &'static str {
                $name
            }
            fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
                $block_on(self, self.client.synthesize(request))
            }
            fn synthesize_long(&self, request: &TtsRequest) -> Result<Audio, Error> {
                $block_on(self, self.client.synthesize_long(request))
            }
            fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error> {
                $block_on(self, self.client.transcribe(request))
            }
            fn transcribe_file(
                &self,
                path: &std::path::Path,
                request: &TranscribeRequest,
            ) -> Result<Transcription, Error> {
                $block_on(self, self.client.transcribe_file(path, request, None))
            }
            fn transcribe_legacy(
                &self,
                request: &LegacyTranscribeRequest,
            ) -> Result<Transcription, Error> {
                $block_on(self, self.client.transcribe_legacy(request))
            }
            fn health(&self) -> Result<HealthStatus, Error> {
                $block_on(self, self.client.health())
            }
            fn call(&self, call: &RawCall) -> Result<http::Response<Bytes>, Error> {
                $block_on(self, self.client.send(call))
            }
            fn client_debug(&self) -> String {
                format!("{:?}", self.client)
            }
            fn voices(&self) -> Result<Vec<Voice>, Error> {
                $block_on(self, self.client.voices())
            }
            fn voice_catalog(&self) -> Result<Vec<CatalogVoice>, Error> {
                $block_on(self, self.client.voice_catalog())
            }
            fn create_voice_clone(&self, request: &CreateVoiceClone) -> Result<VoiceClone, Error> {
                $block_on(self, self.client.create_voice_clone(request))
            }
            fn list_voice_clones(&self) -> Result<Vec<ClonedVoice>, Error> {
                $block_on(self, self.client.list_voice_clones())
            }
            fn list_dicts(&self) -> Result<Vec<PronunciationDict>, Error> {
                $block_on(self, self.client.list_dicts())
            }
            fn create_dict(&self, request: &CreateDict) -> Result<PronunciationDict, Error> {
                $block_on(self, self.client.create_dict(request))
            }
            fn update_dict(&self, request: &UpdateDict) -> Result<PronunciationDict, Error> {
                $block_on(self, self.client.update_dict(request))
            }
            fn delete_dict(&self, request: &DeleteDict) -> Result<DeletedDict, Error> {
                $block_on(self, self.client.delete_dict(request))
            }
        }
    };
}

fn on_tokio<F: std::future::Future>(api: &HyperApi, future: F) -> F::Output {
    api.runtime.block_on(future)
}

fn on_smol<F: std::future::Future>(_: &SmolApi, future: F) -> F::Output {
    smol::block_on(future)
}

async_api!(HyperApi, "hyper", on_tokio);
async_api!(SmolApi, "smol", on_smol);

/// The blocking client.
pub struct BlockingApi {
    client: smallest_blocking::Client,
}

impl Api for BlockingApi {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.client.synthesize(request)
    }
    fn synthesize_long(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.client.synthesize_long(request)
    }
    fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error> {
        self.client.transcribe(request)
    }
    fn transcribe_file(
        &self,
        path: &std::path::Path,
        request: &TranscribeRequest,
    ) -> Result<Transcription, Error> {
        self.client.transcribe_file(path, request, None)
    }
    fn transcribe_legacy(&self, request: &LegacyTranscribeRequest) -> Result<Transcription, Error> {
        self.client.transcribe_legacy(request)
    }
    fn health(&self) -> Result<HealthStatus, Error> {
        self.client.health()
    }
    fn call(&self, call: &RawCall) -> Result<http::Response<Bytes>, Error> {
        self.client.send(call)
    }
    fn client_debug(&self) -> String {
        format!("{:?}", self.client)
    }
    fn voices(&self) -> Result<Vec<Voice>, Error> {
        self.client.voices()
    }
    fn voice_catalog(&self) -> Result<Vec<CatalogVoice>, Error> {
        self.client.voice_catalog()
    }
    fn create_voice_clone(&self, request: &CreateVoiceClone) -> Result<VoiceClone, Error> {
        self.client.create_voice_clone(request)
    }
    fn list_voice_clones(&self) -> Result<Vec<ClonedVoice>, Error> {
        self.client.list_voice_clones()
    }
    fn list_dicts(&self) -> Result<Vec<PronunciationDict>, Error> {
        self.client.list_dicts()
    }
    fn create_dict(&self, request: &CreateDict) -> Result<PronunciationDict, Error> {
        self.client.create_dict(request)
    }
    fn update_dict(&self, request: &UpdateDict) -> Result<PronunciationDict, Error> {
        self.client.update_dict(request)
    }
    fn delete_dict(&self, request: &DeleteDict) -> Result<DeletedDict, Error> {
        self.client.delete_dict(request)
    }
}

/// Where a scenario runs: one emulator, one transport, plain or TLS.
pub struct Setup<'a> {
    /// The client under test.
    pub api: &'a dyn Api,
    /// The emulator it talks to.
    pub emulator: &'a RunningEmulator,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl fmt::Display for Setup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} over {}",
            self.api.name(),
            if self.tls { "https" } else { "http" }
        )
    }
}

/// The configuration of a client for `emulator` with `key`.
pub fn config_for(emulator: &RunningEmulator, key: &str) -> Config {
    Config::new(ApiKey::new(key).expect("test key"))
        .with_base_url(&emulator.base_url())
        .expect("emulator base URL")
}

/// Every client for `emulator`, authenticated with `key`, trusting its CA when it has
/// one, with retries off so that scenarios see each answer as the server gave it.
pub fn clients(emulator: &RunningEmulator, key: &str) -> Vec<Box<dyn Api>> {
    clients_with(
        config_for(emulator, key),
        emulator.ca_certificate_der(),
        Limits::default(),
    )
}

/// The time limits a scenario sets on a client; `None` keeps the client's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// `connect_timeout`.
    pub connect: Option<Duration>,
    /// `response_timeout`.
    pub response: Option<Duration>,
    /// `idle_timeout`.
    pub idle: Option<Duration>,
    /// `total_timeout`.
    pub total: Option<Duration>,
}

impl Limits {
    /// Sets these limits on a client builder of any transport.
    pub fn on<C: FromOptions>(&self, mut b: ClientBuilder<C>) -> ClientBuilder<C> {
        if let Some(d) = self.connect {
            b = b.connect_timeout(d);
        }
        if let Some(d) = self.response {
            b = b.response_timeout(d);
        }
        if let Some(d) = self.idle {
            b = b.idle_timeout(d);
        }
        if let Some(d) = self.total {
            b = b.total_timeout(d);
        }
        b
    }
}

/// The builders of the three clients, in the order the harness runs them.
pub struct Builders {
    /// `smallest-hyper` (tokio).
    pub hyper: smallest_hyper::ClientBuilder,
    /// `smallest-blocking`.
    pub blocking: smallest_blocking::ClientBuilder,
    /// `smallest-async` on smol.
    pub smol: smallest_async::ClientBuilder,
}

/// The builders of every client for `config`, with retries off, trusting `ca` when
/// given, with `limits` set.
pub fn builders(config: Config, ca: Option<Vec<u8>>, limits: Limits) -> Builders {
    fn make<C: FromOptions>(
        b: ClientBuilder<C>,
        ca: &Option<Vec<u8>>,
        limits: Limits,
    ) -> ClientBuilder<C> {
        let b = limits.on(b).retry_policy(RetryPolicy::none());
        match ca {
            Some(der) => b.add_root_certificate_der(der.clone()),
            None => b,
        }
    }
    Builders {
        hyper: make(smallest_hyper::Client::builder(config.clone()), &ca, limits),
        blocking: make(
            smallest_blocking::Client::builder(config.clone()),
            &ca,
            limits,
        ),
        smol: make(smallest_async::Client::builder(config), &ca, limits),
    }
}

/// The tokio runtime a hyper client of the harness runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Every client for `config` (hyper first), with retries off, trusting `ca` when given,
/// with `limits` set.
pub fn clients_with(config: Config, ca: Option<Vec<u8>>, limits: Limits) -> Vec<Box<dyn Api>> {
    clients_from(builders(config, ca, limits))
}

/// Every client from its builder (hyper, blocking, smol).
pub fn clients_from(b: Builders) -> Vec<Box<dyn Api>> {
    let Builders {
        hyper,
        blocking,
        smol,
    } = b;
    vec![
        Box::new(HyperApi {
            runtime: runtime(),
            client: hyper.build().expect("hyper client"),
        }),
        Box::new(BlockingApi {
            client: blocking.build().expect("blocking client"),
        }),
        Box::new(SmolApi {
            client: smol
                .build_on(smallest_async::SmolRuntime)
                .expect("smol client"),
        }),
    ]
}

/// The emulator every scenario starts from: [`KEY`] accepted, [`FORBIDDEN_KEY`] refused.
pub fn emulator() -> EmulatorBuilder {
    smallest_emulator::Emulator::builder()
        .key(KEY)
        .forbidden_key(FORBIDDEN_KEY)
}

/// Runs `scenario` on every transport, over plain HTTP and over TLS, each TLS/plain
/// pair against a fresh emulator built by `builder`.
pub fn on_every_transport(builder: EmulatorBuilder, scenario: impl Fn(&Setup<'_>)) {
    for tls in [false, true] {
        let emulator = builder.clone().tls(tls).spawn().expect("emulator starts");
        for api in clients(&emulator, KEY) {
            let setup = Setup {
                api: api.as_ref(),
                emulator: &emulator,
                tls,
            };
            scenario(&setup);
        }
    }
}

/// The API error inside `result`, failing the test with `setup` in the message otherwise.
pub fn api_error<T: fmt::Debug>(
    setup: &Setup<'_>,
    result: Result<T, Error>,
) -> smallest_core::ApiError {
    match result {
        Err(Error::Api(e)) => *e,
        other => panic!("{setup}: expected an API error, got {other:?}"),
    }
}

/// The README's examples, compiled as doc tests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[allow(dead_code)]
mod readme {}
