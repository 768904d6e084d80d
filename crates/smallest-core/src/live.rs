//! The live-session driver: everything a transport's WebSocket loop decides, decided
//! once. It wraps a [`LiveSession`] (TTS or STT) and owns what is not the protocol's
//! but every transport needs:
//!
//! - the TTS slot of a live TTS connection, returned when the connection ends;
//! - the idle limit, which applies only while the server owes an answer
//!   ([`LiveSession::awaiting_answer`]): a live connection is quiet by design otherwise;
//! - the close handshake: after the client's close frame went out, the server has
//!   [`close_timeout`](crate::options::ClientOptions::close_timeout) to answer, after
//!   which the connection counts as closed;
//! - the policy after a frame the session cannot decode: the error is handed out once,
//!   in order, and the session goes on;
//! - the end: a failure is handed out, then the session's `Closed` event, then the end.
//!
//! The loop of a transport, on each wake-up (a frame, a timer, a sender's call):
//!
//! ```text
//! loop {
//!     while let Some(frame) = driver.poll_transmit(now) { write(frame) }   // then flush
//!     match driver.poll_item() {
//!         Some(LiveItem::Event(e)) => return Some(Ok(e)),
//!         Some(LiveItem::Error(e)) => return Some(Err(e)),
//!         Some(LiveItem::End) => return None,
//!         None => {}
//!     }
//!     wait for (a frame | driver.poll_timeout(now) | a sender's wake-up):
//!         frame            => driver.handle_frame(frame, now)
//!         EOF / reset      => driver.handle_dropped(now)
//!         other failure    => driver.handle_failure(error, now)
//!         the timeout      => driver.handle_timeout(now)
//!     a write that stalls past driver.write_limit() => driver.handle_failure(Timeout Idle)
//! }
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{Error, TimeoutPhase};
use crate::limiter::TtsPermit;
use crate::options::ClientOptions;
use crate::ws::{LiveSession, WsMessage};

/// The longest a write of a live connection may stall when no idle limit is set: a
/// server that stops reading must not hang a session or grow its memory.
pub const DEFAULT_WRITE_STALL: Duration = Duration::from_secs(30);

/// What [`LiveDriver::poll_item`] hands the receiver.
#[derive(Debug)]
pub enum LiveItem<E> {
    /// An event of the session.
    Event(E),
    /// A failure (or a frame that could not be decoded); more may follow.
    Error(Error),
    /// Open a new connection with the same handshake, then call
    /// [`LiveDriver::handle_connected`] (or [`LiveDriver::handle_connect_failed`]).
    Connect,
    /// The connection is over; nothing follows.
    End,
}

/// A live session with its slot, limits and close handshake. See the [module docs](self).
pub struct LiveDriver<S: LiveSession> {
    session: S,
    slot: Option<TtsPermit>,
    idle: Option<Duration>,
    close_timeout: Duration,
    /// When the current wait for the server began, while it owes an answer.
    waiting_since: Option<Instant>,
    /// When the client's close frame was handed to the transport.
    close_sent: Option<Instant>,
    errors: std::collections::VecDeque<Error>,
    /// A frame taken from the session by [`has_outgoing`](Self::has_outgoing).
    pending: Option<WsMessage>,
    /// Removed from what the server wrote ([`redacting`](Self::redacting)).
    key: Option<crate::auth::ApiKey>,
    ended: bool,
}

impl<S: LiveSession> LiveDriver<S> {
    /// Drives `session`, holding `slot` (a live TTS connection's) until it ends.
    pub fn new(mut session: S, slot: Option<TtsPermit>, options: &ClientOptions) -> Self {
        session.set_retry_policy(options.retry_policy(), 0x2545_F491_4F6C_DD1D);
        LiveDriver {
            session,
            slot,
            idle: options.time_limits().idle,
            close_timeout: options.close_timeout(),
            waiting_since: None,
            close_sent: None,
            errors: std::collections::VecDeque::new(),
            pending: None,
            key: None,
            ended: false,
        }
    }

    /// Seeds the jitter of the reconnect backoff (a transport's random `u64`).
    pub fn seeded(mut self, options: &ClientOptions, seed: u64) -> Self {
        self.session.set_retry_policy(options.retry_policy(), seed);
        self
    }

    /// Removes `config`'s key from every event and error the server's frames make (an
    /// error frame that echoes the key must not reach a terminal). Transports always
    /// call it.
    pub fn redacting(mut self, config: &crate::Config) -> Self {
        self.key = Some(config.api_key().clone());
        self
    }

    /// The session.
    pub fn session(&self) -> &S {
        &self.session
    }

    /// The session, for its sender verbs (`speak`, `send_audio` …); then write what
    /// [`poll_transmit`](Self::poll_transmit) gives.
    pub fn session_mut(&mut self) -> &mut S {
        &mut self.session
    }

    /// The longest a write may stall: the idle limit, or [`DEFAULT_WRITE_STALL`].
    pub fn write_limit(&self) -> Duration {
        self.idle.unwrap_or(DEFAULT_WRITE_STALL)
    }

    /// How long to wait for the server's answer to its close frame, or to flush the
    /// answer to the server's.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Whether the session has frames to send.
    pub fn has_outgoing(&mut self) -> bool {
        if self.session.is_disconnected() {
            return false;
        }
        if self.session.is_closed() {
            // The session dropped its queue when the connection closed; so does the driver.
            self.pending = None;
            return false;
        }
        if self.pending.is_some() {
            return true;
        }
        match self.session.poll_outgoing() {
            None => false,
            Some(frame) => {
                // Put it back in front: the session has no peek, so hold it here.
                self.pending = Some(frame);
                true
            }
        }
    }

    /// The next frame to write, in the session's order. A client close starts the
    /// close-handshake limit.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<WsMessage> {
        if self.session.is_disconnected() {
            return None;
        }
        if self.session.is_closed() {
            self.pending = None;
            return None;
        }
        let frame = self
            .pending
            .take()
            .or_else(|| self.session.poll_outgoing())?;
        if matches!(frame, WsMessage::Close(_)) && self.close_sent.is_none() {
            tracing::debug!(target: "smallest", "live session: close sent");
            self.close_sent = Some(now);
        }
        Some(frame)
    }

    /// The next thing for the receiver, or `None` when it must wait for the connection.
    pub fn poll_item(&mut self) -> Option<LiveItem<S::Event>> {
        if self.ended {
            return Some(LiveItem::End);
        }
        if let Some(e) = self.errors.pop_front() {
            return Some(LiveItem::Error(match &self.key {
                Some(key) => crate::redact::Redact::redact(e, key),
                None => e,
            }));
        }
        if let Some(event) = self.session.poll_event() {
            return Some(LiveItem::Event(match &self.key {
                Some(key) => S::redact_event(event, key),
                None => event,
            }));
        }
        if self.session.wants_connection() {
            return Some(LiveItem::Connect);
        }
        if self.session.is_closed() {
            self.ended = true;
            tracing::debug!(target: "smallest", holds_slot = self.slot.is_some(), "live session ended");
            self.slot = None;
            return Some(LiveItem::End);
        }
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if self.session.is_disconnected() {
            self.waiting_since = None;
            return self.session.poll_timeout();
        }
        if self.session.awaiting_answer() && self.idle.is_some() {
            self.waiting_since.get_or_insert(now);
        } else {
            self.waiting_since = None;
        }
        let idle = self
            .waiting_since
            .zip(self.idle)
            .and_then(|(since, idle)| since.checked_add(idle));
        let close = self
            .close_sent
            .and_then(|sent| sent.checked_add(self.close_timeout));
        [self.session.poll_timeout(), idle, close]
            .into_iter()
            .flatten()
            .min()
    }

    /// Advances the timers: the session's (keepalive pings, its idle deadline), the idle
    /// limit, the close handshake.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        if let (Some(since), Some(limit)) = (self.waiting_since, self.idle)
            && since.checked_add(limit).is_some_and(|at| now >= at)
        {
            self.waiting_since = None;
            self.handle_failure(
                Error::Timeout {
                    phase: TimeoutPhase::Idle,
                    limit,
                },
                now,
            );
            return;
        }
        if let Some(sent) = self.close_sent
            && sent
                .checked_add(self.close_timeout)
                .is_some_and(|at| now >= at)
        {
            // The server never answered the close: the connection is over all the same.
            tracing::debug!(target: "smallest", "live session: no answer to the close");
            self.close_sent = None;
            self.handle_dropped(now);
        }
    }

    /// A frame arrived. A frame the session cannot decode is handed out as an error,
    /// and the session goes on.
    pub fn handle_frame(&mut self, frame: WsMessage, now: Instant) {
        self.waiting_since = None;
        if let Err(e) = self.session.handle_message(frame, now) {
            self.errors.push_back(e);
        }
    }

    /// The connection ended without a close frame (EOF, reset): the session's `Closed`
    /// event without a code, not an error.
    pub fn handle_dropped(&mut self, now: Instant) {
        if self.session.is_closed() {
            return;
        }
        if self.session.is_disconnected() || self.session.handle_connection_lost(None, now) {
            self.lost_connection();
            return;
        }
        tracing::debug!(target: "smallest", "live session: the connection ended");
        if let Err(e) = self.session.handle_message(WsMessage::Close(None), now) {
            self.errors.push_back(e);
        }
    }

    /// The connection failed (or a limit ran out): the error, then the `Closed` event.
    pub fn handle_failure(&mut self, error: Error, now: Instant) {
        if self.session.is_closed() && self.ended {
            return;
        }
        if !self.session.is_closed()
            && (self.session.is_disconnected()
                || self.session.handle_connection_lost(Some(&error), now))
        {
            tracing::info!(target: "smallest", error = crate::call::kind(&error), "live connection lost");
            self.lost_connection();
            return;
        }
        tracing::info!(target: "smallest", error = crate::call::kind(&error), "live session failed");
        self.errors.push_back(error);
        self.handle_dropped(now);
    }

    /// Whether the connection is over for the transport (drop the socket).
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Whether nothing is to be read or written now (between connections).
    pub fn is_disconnected(&self) -> bool {
        self.session.is_disconnected()
    }

    /// The new connection the driver asked for with [`LiveItem::Connect`] is up.
    pub fn handle_connected(&mut self, now: Instant) {
        self.lost_connection();
        if let Err(e) = self.session.handle_connected(now) {
            self.errors.push_back(e);
        }
    }

    /// Opening the connection asked for with [`LiveItem::Connect`] failed.
    pub fn handle_connect_failed(&mut self, error: Error, now: Instant) {
        if let Err(e) = self.session.handle_connect_failed(error, now) {
            self.errors.push_back(e);
        }
    }

    /// The upgrade request of the new connection [`LiveItem::Connect`] asks for
    /// (`key`: 16 random bytes), and the check of the answer.
    pub fn handshake(
        &self,
        config: &crate::Config,
        key: [u8; 16],
    ) -> Result<(http::Request<()>, crate::ws::Upgrade), Error> {
        self.session.handshake(config, key)
    }

    /// A sender's write failed with `error`: `Ok` when the session reconnects (what it
    /// sent is replayed on the new connection), else the error for the sender.
    pub fn handle_write_failure(&mut self, error: Error, now: Instant) -> Result<(), Error> {
        if !self.session.is_closed()
            && (self.session.is_disconnected()
                || self.session.handle_connection_lost(Some(&error), now))
        {
            tracing::info!(target: "smallest", error = crate::call::kind(&error), "live connection lost while writing");
            self.lost_connection();
            return Ok(());
        }
        Err(error)
    }

    /// Forgets what belonged to the connection that is gone.
    fn lost_connection(&mut self) {
        self.waiting_since = None;
        self.close_sent = None;
        self.pending = None;
    }

    /// Whether the driver still holds a TTS slot.
    pub fn holds_slot(&self) -> bool {
        self.slot.is_some()
    }
}

impl<S: LiveSession> fmt::Debug for LiveDriver<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveDriver")
            .field("closed", &self.session.is_closed())
            .field("awaiting_answer", &self.session.awaiting_answer())
            .field("holds_slot", &self.slot.is_some())
            .field("errors", &self.errors.len())
            .finish_non_exhaustive()
    }
}
