//! Live WebSocket sessions on any executor: Lightning TTS over `WSS
//! /waves/v1/tts/live` and Pulse STT over `WSS /waves/v1/stt/live`.
//!
//! This module only moves frames (async-tungstenite over the runtime's stream, TLS by
//! futures-rustls). The protocol is the core's sans-IO sessions, everything a driving
//! loop decides the core's [`LiveDriver`], the tungstenite glue `smallest-net`'s. The
//! halves need no task and no runtime lock: the write half sits behind a
//! `futures::lock::Mutex`, the session behind a short `std::sync::Mutex`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use smallest_core::live::LiveDriver;
use smallest_core::stt_live::SttLiveSession;
use smallest_core::tts_live::TtsLiveSession;
use smallest_core::{Error, TimeoutPhase};
use smallest_net::upgrade_error;

pub use smallest_core::stt_live::{
    CloseOutcome, SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveRoute, SttReconnect, Transcript,
};
pub use smallest_core::tts_live::{CloseReason, ContextId, Redial, TtsLiveConfig, TtsLiveEvent};

use crate::conn::{self, Target};
use crate::runtime::{AsyncIo, Sleep, far_or, with_limit};
use crate::{Client, runtime};

impl Client {
    /// Opens a live TTS connection (`WSS /waves/v1/tts/live`).
    ///
    /// `config` is validated first. **A live TTS connection occupies one of the
    /// account's TTS slots** (the client's [`TtsLimiter`](crate::TtsLimiter)) for its
    /// whole lifetime: this call waits for a free slot, freed when the receiver has
    /// seen the connection close, or when both halves are dropped. A refused upgrade is
    /// the server's error ([`Error::Api`]).
    pub async fn tts_live(&self, config: TtsLiveConfig) -> Result<TtsLive, Error> {
        config.validate()?;
        let permit = self.options.limits().tts_slot().await?;
        let key = smallest_net::nonce16();
        let (request, upgrade) = config.handshake(&self.inner.config, key)?;
        let ws = self.connect_websocket(request, &upgrade).await?;
        let session = TtsLiveSession::new(config, Instant::now())?;
        let driver = LiveDriver::new(session, Some(permit), &self.options)
            .seeded(&self.options, smallest_net::seed())
            .redacting(&self.inner.config);
        let (conn, inner) = open(ws, driver, self.clone());
        Ok(TtsLive {
            sender: TtsLiveSender { conn },
            receiver: TtsLiveReceiver { inner },
        })
    }

    /// Opens a live STT connection (`WSS /waves/v1/stt/live?…`, or the legacy
    /// `/waves/v1/pulse/get_text` for [`SttLiveConfig::legacy`]). `config` is
    /// validated first; a refused upgrade is the server's error ([`Error::Api`]).
    pub async fn stt_live(&self, config: SttLiveConfig) -> Result<SttLive, Error> {
        config.validate()?;
        // One of the account's live STT sessions, held until the connection ends.
        let permit = self.options.limits().stt_session().await?;
        let key = smallest_net::nonce16();
        let (request, upgrade) = config.handshake(&self.inner.config, key)?;
        let ws = self.connect_websocket(request, &upgrade).await?;
        let session = SttLiveSession::new(config, Instant::now())?;
        let driver = LiveDriver::new(session, Some(permit), &self.options)
            .seeded(&self.options, smallest_net::seed())
            .redacting(&self.inner.config);
        let (conn, inner) = open(ws, driver, self.clone());
        Ok(SttLive {
            sender: SttLiveSender { conn },
            receiver: SttLiveReceiver { inner },
        })
    }

    /// TCP (or the proxy tunnel), TLS for `wss` and the upgrade, all within the connect
    /// limit; the wait for the upgrade's answer also within the response limit.
    async fn connect_websocket(
        &self,
        request: http::Request<()>,
        expected: &smallest_core::ws::Upgrade,
    ) -> Result<Ws, Error> {
        let rt = self.runtime();
        let target = Target::of(request.uri())?;
        let limits = self.options.time_limits();
        let started = Instant::now();
        let connect = conn::open(rt, &self.options, &self.inner.ws_tls, &target);
        let io = with_limit(rt, limits.connect, TimeoutPhase::Connect, connect).await??;
        let (wait, timed_out) = smallest_net::upgrade_wait(limits, started.elapsed());
        let config = smallest_net::ws_config(self.options.live_write_buffer());
        let upgrade = async_tungstenite::client_async_with_config(request, io, Some(config));
        let result = match wait {
            None => upgrade.await,
            Some(wait) => runtime::race(rt, upgrade, far_or(Instant::now().checked_add(wait)))
                .await
                .ok_or(timed_out)?,
        };
        let (ws, _response) = result.map_err(|e| {
            self.inner
                .config
                .redact(upgrade_error(e, expected, limits.connect))
        })?;
        Ok(ws)
    }
}

type Ws = WebSocketStream<Box<dyn AsyncIo>>;

/// The engine's view of this crate: async-tungstenite's halves and the runtime's timers.
/// The live engine's transport: the runtime's timer, and the client for new
/// connections.
struct Async(Client);

impl smallest_net::live::Transport for Async {
    type Write = async_tungstenite::WebSocketSender<Box<dyn AsyncIo>>;
    type Read = async_tungstenite::WebSocketReceiver<Box<dyn AsyncIo>>;

    fn sleep_until(&self, deadline: Instant) -> smallest_net::live::Sleep {
        Box::pin(Sleep::until(self.0.inner.runtime.as_ref(), deadline))
    }

    fn connect(
        &self,
        request: http::Request<()>,
        upgrade: smallest_core::ws::Upgrade,
    ) -> smallest_net::live::Connecting<Self> {
        let client = self.0.clone();
        Box::pin(async move { Ok(client.connect_websocket(request, &upgrade).await?.split()) })
    }

    fn config(&self) -> &smallest_core::Config {
        &self.0.inner.config
    }
}

type Conn<S> = smallest_net::live::Conn<S, Async>;
type Receiver<S> = smallest_net::live::Receiver<S, Async>;

/// The halves of an upgraded connection.
fn open<S: smallest_net::live::Session>(
    ws: Ws,
    driver: LiveDriver<S>,
    client: Client,
) -> (Arc<Conn<S>>, Receiver<S>) {
    let (write, read) = ws.split();
    Conn::open(write, read, driver, Async(client))
}

/// A live TTS connection, from [`Client::tts_live`]: the same halves, events, ending
/// and time limits as `smallest_hyper::TtsLive` (see there), on any executor.
/// [`split`](Self::split) it to write text from one task while another reads the
/// audio, or use it whole from one task.
#[derive(Debug)]
pub struct TtsLive {
    sender: TtsLiveSender,
    receiver: TtsLiveReceiver,
}

/// The writing half of a live TTS connection. Clones share the connection.
#[derive(Clone)]
pub struct TtsLiveSender {
    conn: Arc<Conn<TtsLiveSession>>,
}

/// The reading half of a live TTS connection: a `Stream` of [`TtsLiveEvent`]s that
/// ends after the `Closed` event.
pub struct TtsLiveReceiver {
    inner: Receiver<TtsLiveSession>,
}

smallest_net::receiver_impls!(TtsLiveReceiver, TtsLiveEvent);

smallest_net::live_methods!(async: [async], await: [.await]);

/// A live STT connection, from [`Client::stt_live`]. Its halves work like those of
/// [`TtsLive`].
#[derive(Debug)]
pub struct SttLive {
    sender: SttLiveSender,
    receiver: SttLiveReceiver,
}

/// The writing half of a live STT connection. Clones share the connection.
#[derive(Clone)]
pub struct SttLiveSender {
    conn: Arc<Conn<SttLiveSession>>,
}

/// The reading half of a live STT connection: a `Stream` of [`SttLiveEvent`]s that
/// ends after the `Closed` event.
pub struct SttLiveReceiver {
    inner: Receiver<SttLiveSession>,
}

smallest_net::receiver_impls!(SttLiveReceiver, SttLiveEvent);
