//! Live WebSocket sessions in the harness: both clients' `tts_live` and `stt_live`, in
//! blocking form, each half usable from its own thread.
//!
//! The hyper halves are driven with `Handle::block_on` on the client's runtime, so a
//! sender half on one thread and a receiver half on another poll the same connection
//! at the same time, as two tasks would. Nothing here mocks a transport.

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use smallest_core::TtsRequest;
use smallest_core::{
    Audio, Config, Error, SttLiveConfig, SttLiveEvent, TtsLiveConfig, TtsLiveEvent,
};
use smallest_emulator::{EmulatorBuilder, RunningEmulator};
use tokio::runtime::{Handle, Runtime};

use smallest_async::BuildOn as _;

use crate::{Builders, KEY, Limits, builders, config_for};

/// The writing half of a live TTS connection.
pub trait TtsTx: Send + Sync {
    /// `send_text`.
    fn send_text(&self, text: &str) -> Result<u64, Error>;
    /// `flush`.
    fn flush(&self) -> Result<u64, Error>;
    /// `finish`.
    fn finish(&self) -> Result<u64, Error>;
    /// `speak`.
    fn speak(&self, text: &str) -> Result<u64, Error>;
    /// `close`.
    fn close(&self) -> Result<(), Error>;
    /// `set_keepalive`.
    fn set_keepalive(&self, interval: Option<Duration>);
    /// `context(id).push(text)`.
    fn push(&self, context: &str, text: &str) -> Result<u64, Error>;
    /// `context(id).finish()`.
    fn finish_context(&self, context: &str) -> Result<u64, Error>;
    /// `context(id).cancel()`.
    fn cancel(&self, context: &str) -> Result<bool, Error>;
    /// `context(id).cancel_hard()`.
    fn cancel_hard(&self, context: &str) -> Result<bool, Error>;
}

/// The reading half of a live TTS connection.
pub trait TtsRx: Send {
    /// The next event, `None` after `Closed`.
    fn recv(&mut self) -> Option<Result<TtsLiveEvent, Error>>;
}

/// The writing half of a live STT connection.
pub trait SttTx: Send + Sync {
    /// `send_audio`: the stream position (audio bytes sent so far, this chunk included).
    fn send_audio(&self, audio: &[u8]) -> Result<u64, Error>;
    /// `finalize`.
    fn finalize(&self) -> Result<(), Error>;
    /// `close_stream`.
    fn close_stream(&self) -> Result<(), Error>;
    /// `close`.
    fn close(&self) -> Result<(), Error>;
}

/// The reading half of a live STT connection.
pub trait SttRx: Send {
    /// The next event, `None` after `Closed`.
    fn recv(&mut self) -> Option<Result<SttLiveEvent, Error>>;
}

/// A live TTS connection, split.
pub type TtsHalves = (Box<dyn TtsTx>, Box<dyn TtsRx>);

/// A live STT connection, split.
pub type SttHalves = (Box<dyn SttTx>, Box<dyn SttRx>);

/// What both clients offer for live sessions, in blocking form.
pub trait LiveApi: Send + Sync {
    /// `hyper` or `blocking`.
    fn name(&self) -> &'static str;
    /// `POST /waves/v1/tts` (the one-shot reference).
    fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error>;
    /// `client.tts_live(config)`, split.
    fn tts_live(&self, config: TtsLiveConfig) -> Result<TtsHalves, Error>;
    /// `client.stt_live(config)`, split.
    fn stt_live(&self, config: SttLiveConfig) -> Result<SttHalves, Error>;
    /// TTS slots free on the client's limiter.
    fn tts_slots_available(&self) -> usize;
}

/// How an async client's futures are run from a thread: on the tokio runtime's
/// handle (hyper), or with `smol::block_on` (smallest-async).
trait BlockOn: Clone + Send + Sync + 'static {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output;
}

impl BlockOn for Handle {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        Handle::block_on(self, future)
    }
}

/// `smol::block_on`.
#[derive(Clone, Copy)]
struct Smol;

impl BlockOn for Smol {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }
}

/// The live halves of an async client crate (`$krate`), each driven from its thread
/// by a [`BlockOn`], and its [`LiveApi`].
macro_rules! async_live {
    ($api:ident, $name:literal, $krate:ident, $tts_tx:ident, $tts_rx:ident, $stt_tx:ident, $stt_rx:ident) => {
        struct $tts_tx<B>(B, $krate::TtsLiveSender);
        struct $tts_rx<B>(B, $krate::TtsLiveReceiver);
        struct $stt_tx<B>(B, $krate::SttLiveSender);
        struct $stt_rx<B>(B, $krate::SttLiveReceiver);

        impl<B: BlockOn> TtsTx for $tts_tx<B> {
            fn send_text(&self, text: &str) -> Result<u64, Error> {
                self.0.block_on(self.1.send_text(text))
            }
            fn flush(&self) -> Result<u64, Error> {
                self.0.block_on(self.1.flush())
            }
            fn finish(&self) -> Result<u64, Error> {
                self.0.block_on(self.1.finish())
            }
            fn speak(&self, text: &str) -> Result<u64, Error> {
                self.0.block_on(self.1.speak(text))
            }
            fn close(&self) -> Result<(), Error> {
                self.0.block_on(self.1.close())
            }
            fn set_keepalive(&self, interval: Option<Duration>) {
                self.1.set_keepalive(interval);
            }
            fn push(&self, context: &str, text: &str) -> Result<u64, Error> {
                let ctx = self.1.context(context)?;
                self.0.block_on(ctx.push(text))
            }
            fn finish_context(&self, context: &str) -> Result<u64, Error> {
                let ctx = self.1.context(context)?;
                self.0.block_on(ctx.finish())
            }
            fn cancel(&self, context: &str) -> Result<bool, Error> {
                let ctx = self.1.context(context)?;
                self.0.block_on(ctx.cancel())
            }
            fn cancel_hard(&self, context: &str) -> Result<bool, Error> {
                let ctx = self.1.context(context)?;
                self.0.block_on(ctx.cancel_hard())
            }
        }

        impl<B: BlockOn> TtsRx for $tts_rx<B> {
            fn recv(&mut self) -> Option<Result<TtsLiveEvent, Error>> {
                self.0.block_on(self.1.recv())
            }
        }

        impl<B: BlockOn> SttTx for $stt_tx<B> {
            fn send_audio(&self, audio: &[u8]) -> Result<u64, Error> {
                self.0.block_on(self.1.send_audio(audio))
            }
            fn finalize(&self) -> Result<(), Error> {
                self.0.block_on(self.1.finalize())
            }
            fn close_stream(&self) -> Result<(), Error> {
                self.0.block_on(self.1.close_stream())
            }
            fn close(&self) -> Result<(), Error> {
                self.0.block_on(self.1.close())
            }
        }

        impl<B: BlockOn> SttRx for $stt_rx<B> {
            fn recv(&mut self) -> Option<Result<SttLiveEvent, Error>> {
                self.0.block_on(self.1.recv())
            }
        }

        impl LiveApi for $api {
            fn name(&self) -> &'static str {
                $name
            }
            fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
                self.blocker().block_on(self.client.synthesize(request))
            }
            fn tts_live(&self, config: TtsLiveConfig) -> Result<TtsHalves, Error> {
                let on = self.blocker();
                let (tx, rx) = on.block_on(self.client.tts_live(config))?.split();
                Ok((Box::new($tts_tx(on.clone(), tx)), Box::new($tts_rx(on, rx))))
            }
            fn stt_live(&self, config: SttLiveConfig) -> Result<SttHalves, Error> {
                let on = self.blocker();
                let (tx, rx) = on.block_on(self.client.stt_live(config))?.split();
                Ok((Box::new($stt_tx(on.clone(), tx)), Box::new($stt_rx(on, rx))))
            }
            fn tts_slots_available(&self) -> usize {
                self.client.tts_limiter().available()
            }
        }
    };
}

/// The hyper client, driven from threads on its tokio runtime.
pub struct HyperLive {
    runtime: Runtime,
    client: smallest_hyper::Client,
}

impl HyperLive {
    fn blocker(&self) -> Handle {
        self.runtime.handle().clone()
    }
}

/// `smallest-async` on smol, driven from threads.
pub struct SmolLive {
    client: smallest_async::Client,
}

impl SmolLive {
    fn blocker(&self) -> Smol {
        Smol
    }
}

async_live!(
    HyperLive,
    "hyper",
    smallest_hyper,
    HyperTtsTx,
    HyperTtsRx,
    HyperSttTx,
    HyperSttRx
);
async_live!(
    SmolLive,
    "smol",
    smallest_async,
    SmolTtsTx,
    SmolTtsRx,
    SmolSttTx,
    SmolSttRx
);

/// The blocking client.
pub struct BlockingLive {
    client: smallest_blocking::Client,
}

impl TtsTx for smallest_blocking::TtsLiveSender {
    fn send_text(&self, text: &str) -> Result<u64, Error> {
        smallest_blocking::TtsLiveSender::send_text(self, text)
    }
    fn flush(&self) -> Result<u64, Error> {
        smallest_blocking::TtsLiveSender::flush(self)
    }
    fn finish(&self) -> Result<u64, Error> {
        smallest_blocking::TtsLiveSender::finish(self)
    }
    fn speak(&self, text: &str) -> Result<u64, Error> {
        smallest_blocking::TtsLiveSender::speak(self, text)
    }
    fn close(&self) -> Result<(), Error> {
        smallest_blocking::TtsLiveSender::close(self)
    }
    fn set_keepalive(&self, interval: Option<Duration>) {
        smallest_blocking::TtsLiveSender::set_keepalive(self, interval);
    }
    fn push(&self, context: &str, text: &str) -> Result<u64, Error> {
        self.context(context)?.push(text)
    }
    fn finish_context(&self, context: &str) -> Result<u64, Error> {
        self.context(context)?.finish()
    }
    fn cancel(&self, context: &str) -> Result<bool, Error> {
        self.context(context)?.cancel()
    }
    fn cancel_hard(&self, context: &str) -> Result<bool, Error> {
        self.context(context)?.cancel_hard()
    }
}

impl TtsRx for smallest_blocking::TtsLiveReceiver {
    fn recv(&mut self) -> Option<Result<TtsLiveEvent, Error>> {
        smallest_blocking::TtsLiveReceiver::recv(self)
    }
}

impl SttTx for smallest_blocking::SttLiveSender {
    fn send_audio(&self, audio: &[u8]) -> Result<u64, Error> {
        smallest_blocking::SttLiveSender::send_audio(self, audio)
    }
    fn finalize(&self) -> Result<(), Error> {
        smallest_blocking::SttLiveSender::finalize(self)
    }
    fn close_stream(&self) -> Result<(), Error> {
        smallest_blocking::SttLiveSender::close_stream(self)
    }
    fn close(&self) -> Result<(), Error> {
        smallest_blocking::SttLiveSender::close(self)
    }
}

impl SttRx for smallest_blocking::SttLiveReceiver {
    fn recv(&mut self) -> Option<Result<SttLiveEvent, Error>> {
        smallest_blocking::SttLiveReceiver::recv(self)
    }
}

impl LiveApi for BlockingLive {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
        self.client.synthesize(request)
    }
    fn tts_live(&self, config: TtsLiveConfig) -> Result<TtsHalves, Error> {
        let (tx, rx) = self.client.tts_live(config)?.split();
        Ok((Box::new(tx), Box::new(rx)))
    }
    fn stt_live(&self, config: SttLiveConfig) -> Result<SttHalves, Error> {
        let (tx, rx) = self.client.stt_live(config)?.split();
        Ok((Box::new(tx), Box::new(rx)))
    }
    fn tts_slots_available(&self) -> usize {
        self.client.tts_limiter().available()
    }
}

/// Every client for `emulator`, authenticated with `key`, trusting its CA when it has
/// one, with retries off and a 10 s response limit.
pub fn live_clients(emulator: &RunningEmulator, key: &str) -> Vec<Box<dyn LiveApi>> {
    live_clients_with(emulator, key, Duration::from_secs(10))
}

/// [`live_clients`] with another response limit (which bounds the upgrade).
pub fn live_clients_with(
    emulator: &RunningEmulator,
    key: &str,
    limit: Duration,
) -> Vec<Box<dyn LiveApi>> {
    live_clients_for_config(
        config_for(emulator, key),
        emulator.ca_certificate_der(),
        limit,
    )
}

/// Every client for `config`, trusting `ca` when given, with retries off and `limit`
/// as the response limit.
pub fn live_clients_for_config(
    config: Config,
    ca: Option<Vec<u8>>,
    limit: Duration,
) -> Vec<Box<dyn LiveApi>> {
    let limits = Limits {
        response: Some(limit),
        ..Limits::default()
    };
    live_clients_with_limits(config, ca, limits)
}

/// Every client for `config` (hyper first), with retries off, trusting `ca` when given,
/// with `limits` set.
pub fn live_clients_with_limits(
    config: Config,
    ca: Option<Vec<u8>>,
    limits: Limits,
) -> Vec<Box<dyn LiveApi>> {
    live_clients_from(builders(config, ca, limits))
}

/// Every client from its builder (hyper, blocking, smol).
pub fn live_clients_from(b: Builders) -> Vec<Box<dyn LiveApi>> {
    let Builders {
        hyper,
        blocking,
        smol,
    } = b;
    vec![
        Box::new(HyperLive {
            runtime: crate::runtime(),
            client: hyper.build().expect("hyper client"),
        }),
        Box::new(BlockingLive {
            client: blocking.build().expect("blocking client"),
        }),
        Box::new(SmolLive {
            client: smol
                .build_on(smallest_async::SmolRuntime)
                .expect("smol client"),
        }),
    ]
}

/// Where a live scenario runs: one emulator, one transport, plain or TLS.
pub struct LiveSetup<'a> {
    /// The client under test.
    pub api: &'a dyn LiveApi,
    /// The emulator it talks to.
    pub emulator: &'a RunningEmulator,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl fmt::Display for LiveSetup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} over {}",
            self.api.name(),
            if self.tls { "wss" } else { "ws" }
        )
    }
}

/// Runs `scenario` on every transport, over plain and TLS WebSockets, each set
/// against a fresh emulator built by `builder`; each run must end within `limit`.
pub fn on_every_live_transport(
    builder: EmulatorBuilder,
    limit: Duration,
    scenario: impl Fn(&LiveSetup<'_>) + Send + Sync + 'static,
) {
    let scenario = Arc::new(scenario);
    for tls in [false, true] {
        let emulator = Arc::new(builder.clone().tls(tls).spawn().expect("emulator starts"));
        for index in 0..3 {
            let scenario = scenario.clone();
            let emulator = emulator.clone();
            within(limit, move || {
                let apis = live_clients(&emulator, KEY);
                let setup = LiveSetup {
                    api: apis[index].as_ref(),
                    emulator: &emulator,
                    tls,
                };
                scenario(&setup);
            });
        }
    }
}

/// Runs `f` on a thread of its own and fails the test if it does not end within
/// `limit` (a hung socket must not hang the test suite).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match result.recv_timeout(limit) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("the scenario ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the scenario took longer than {limit:?}"),
    }
}
