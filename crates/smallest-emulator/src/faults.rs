//! Fault injection: a scriptable plan of [`FaultRule`]s that make chosen requests fail in the ways
//! real networks and gateways fail (latency, error statuses, resets, stalls, garbage bodies), so
//! that client retry, timeout and parsing logic can be tested against a real socket.
//!
//! Rules are set with [`EmulatorBuilder::fault`](crate::EmulatorBuilder::fault), at run time with
//! [`RunningEmulator::inject`](crate::RunningEmulator::inject), or over HTTP on
//! `/_emulator/faults` (see the crate documentation). This module holds the rule types, the plan
//! that picks a rule for each request, the per-connection kill switch used to reset TCP
//! connections, and the response-body shapers (reset, stall, trickle, huge bodies).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Sleep;

use crate::body::Body;

/// One way to make a response fail. See [`FaultRule`] for choosing the requests it applies to.
///
/// In the JSON of the control endpoint a fault is an object tagged by `kind` (the variant name in
/// `snake_case`); durations are whole milliseconds:
///
/// | Variant | JSON |
/// |---|---|
/// | `Latency(d)` | `{"kind":"latency","ms":250}` |
/// | `Status{..}` | `{"kind":"status","status":429,"retry_after":"2","body":"…"}` (last two optional) |
/// | `ResetBeforeHead` | `{"kind":"reset_before_head"}` |
/// | `ResetMidBody{..}` | `{"kind":"reset_mid_body","after_bytes":1000}` |
/// | `SseCutBeforeDone` | `{"kind":"sse_cut_before_done"}` |
/// | `StallHead(d)` | `{"kind":"stall_head","ms":5000}` |
/// | `StallBody{..}` | `{"kind":"stall_body","after_bytes":1000,"ms":5000}` |
/// | `MalformedJson` | `{"kind":"malformed_json"}` |
/// | `WrongContentType` | `{"kind":"wrong_content_type"}` |
/// | `HugeErrorBody{..}` | `{"kind":"huge_error_body","status":500,"bytes":5000000}` |
/// | `TrickleBody{..}` | `{"kind":"trickle_body","chunk_bytes":3,"interval_ms":20}` |
/// | `WsDrop{..}` | `{"kind":"ws_drop","after_messages":20}`, `{"kind":"ws_drop","after_ms":500}` or both |
/// | `WsClose{..}` | `{"kind":"ws_close","code":1011,"after_messages":3}` |
/// | `WsStall` | `{"kind":"ws_stall"}` |
///
/// The three `Ws*` faults act on live sessions (`/waves/v1/tts/live`, `/waves/v1/stt/live`,
/// `/waves/v1/pulse/get_text`): a rule with one of them only matches WebSocket upgrade requests
/// (so `.times(n)` counts upgrades, not the HTTP requests sharing the prefix), and the upgrade
/// itself succeeds; the fault strikes on the open socket. "After N messages" counts the client's
/// text and binary messages the session has handled (pings, pongs and close frames do not count):
/// the session handles N messages normally, then the next time it looks for a message the fault
/// strikes instead (whether message N + 1 was sent or not). Live STT and legacy TTS requests have
/// answered message N in full by then; TTS continuation contexts look for messages between two
/// frames of a release, so the fault may cut a release short. With `after_messages: 0` it strikes
/// right after the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FaultWire", into = "FaultWire")]
#[non_exhaustive]
pub enum Fault {
    /// Waits this long before the request is handled at all (so the response head comes at least
    /// that much later); the request is then answered normally.
    Latency(Duration),
    /// Answers with this status instead of handling the request (the request is not handled: no
    /// TTS slot is taken, nothing is transcribed).
    Status {
        /// The HTTP status, 200–599 (anything else is answered as 500).
        status: u16,
        /// A `Retry-After` header value (`"2"`, an HTTP date, or anything — sent verbatim when it is
        /// a valid header value).
        retry_after: Option<String>,
        /// The body, sent verbatim (as JSON when it parses as JSON, else as `text/plain`). When
        /// absent: the emulator's own JSON error body for the status — for 429 the TTS concurrency
        /// body, for 500 the API's `InternalServerError` body, for 502/503/504 similar JSON.
        body: Option<String>,
    },
    /// Closes the TCP connection with a reset (`SO_LINGER` 0) without sending anything back. On
    /// HTTP/2 every stream of the connection dies with it.
    ResetBeforeHead,
    /// Sends the response head and the first `after_bytes` bytes of the body, then resets the TCP
    /// connection. When the body is shorter, the reset comes instead of its end (a chunked body then
    /// lacks its terminating chunk; a body with a `Content-Length` is complete but the connection
    /// still dies).
    ResetMidBody {
        /// Body bytes delivered before the reset.
        after_bytes: u64,
    },
    /// On `POST /waves/v1/tts/live`: the event stream ends cleanly but without its final `done`
    /// frame. Other routes answer normally.
    SseCutBeforeDone,
    /// Handles the request normally (a TTS request keeps its concurrency slot), then holds the
    /// response head back this long.
    StallHead(Duration),
    /// Sends the head and the first `after_bytes` body bytes, then nothing for `duration`, then the
    /// rest.
    StallBody {
        /// Body bytes delivered before the stall.
        after_bytes: u64,
        /// How long nothing is sent.
        duration: Duration,
    },
    /// `200` with `Content-Type: application/json` and a truncated JSON body: the route's own JSON
    /// cut in half when it answered JSON, else a canned truncated object.
    MalformedJson,
    /// `200` with the wrong media type, instead of handling the request: on TTS routes
    /// (`/waves/v1/tts…`) `application/json` `{"ok":true}` instead of audio, elsewhere a `text/html`
    /// page (what a captive portal or a misrouted load balancer sends).
    WrongContentType,
    /// Answers `status` with a JSON-looking error body of exactly `bytes` bytes, generated lazily.
    HugeErrorBody {
        /// The HTTP status (200–599; anything else is answered as 500).
        status: u16,
        /// The body length.
        bytes: u64,
    },
    /// Handles the request normally but releases the body `chunk_bytes` at a time, one piece every
    /// `interval`.
    TrickleBody {
        /// Bytes per piece (0 is treated as 1).
        chunk_bytes: usize,
        /// Pause between pieces.
        interval: Duration,
    },
    /// On a live-session upgrade: after the session has handled `after_messages` client messages,
    /// or `after_ms` milliseconds after the upgrade (whichever comes first; `u32::MAX` messages
    /// means no message limit), the TCP connection is reset (`SO_LINGER` 0): no close frame, the
    /// client reads a connection reset.
    WsDrop {
        /// Client messages handled before the reset (`u32::MAX`: no limit).
        after_messages: u32,
        /// Milliseconds after the upgrade before the reset, when set.
        after_ms: Option<u64>,
    },
    /// On a live-session upgrade: after the session has handled `after_messages` client messages,
    /// the server sends a close frame with `code` and the reason `emulated fault`, waits briefly
    /// for the client's close, and closes the connection. Codes a server may not send (below
    /// 1000, 1004–1006, 1015–2999, 5000 and above) are sent as 1011.
    WsClose {
        /// The close code, e.g. 1011 (internal error) or 1001 (going away).
        code: u16,
        /// Client messages handled before the close.
        after_messages: u32,
    },
    /// On a live-session upgrade: the upgrade completes (`101`), then the server never reads a
    /// WebSocket message nor writes anything again (no answers, no pongs, no close); it holds the
    /// socket open until the client goes away or the emulator shuts down.
    WsStall,
}

impl Fault {
    /// Whether the fault acts on live sessions (it then only matches WebSocket upgrades).
    pub(crate) fn is_ws(&self) -> bool {
        matches!(
            self,
            Self::WsDrop { .. } | Self::WsClose { .. } | Self::WsStall
        )
    }

    /// `Status` with the default body and no `Retry-After`.
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            retry_after: None,
            body: None,
        }
    }

    /// `Status` 429 with the default body, and `Retry-After: retry_after` when given.
    pub fn too_many_requests(retry_after: Option<&str>) -> Self {
        Self::Status {
            status: 429,
            retry_after: retry_after.map(str::to_owned),
            body: None,
        }
    }
}

/// The JSON form of [`Fault`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum FaultWire {
    Latency {
        ms: u64,
    },
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    ResetBeforeHead,
    ResetMidBody {
        after_bytes: u64,
    },
    SseCutBeforeDone,
    StallHead {
        ms: u64,
    },
    StallBody {
        after_bytes: u64,
        ms: u64,
    },
    MalformedJson,
    WrongContentType,
    HugeErrorBody {
        status: u16,
        bytes: u64,
    },
    TrickleBody {
        chunk_bytes: usize,
        interval_ms: u64,
    },
    WsDrop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_messages: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_ms: Option<u64>,
    },
    WsClose {
        code: u16,
        after_messages: u32,
    },
    WsStall,
}

/// Whether a server may send close `code` (RFC 6455 §7.4).
pub(crate) fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn check_status(status: u16) -> Result<u16, String> {
    if (200..=599).contains(&status) {
        Ok(status)
    } else {
        Err(format!("status must be within 200..=599, got {status}"))
    }
}

impl TryFrom<FaultWire> for Fault {
    type Error = String;

    fn try_from(w: FaultWire) -> Result<Self, String> {
        Ok(match w {
            FaultWire::Latency { ms } => Self::Latency(Duration::from_millis(ms)),
            FaultWire::Status {
                status,
                retry_after,
                body,
            } => Self::Status {
                status: check_status(status)?,
                retry_after,
                body,
            },
            FaultWire::ResetBeforeHead => Self::ResetBeforeHead,
            FaultWire::ResetMidBody { after_bytes } => Self::ResetMidBody { after_bytes },
            FaultWire::SseCutBeforeDone => Self::SseCutBeforeDone,
            FaultWire::StallHead { ms } => Self::StallHead(Duration::from_millis(ms)),
            FaultWire::StallBody { after_bytes, ms } => Self::StallBody {
                after_bytes,
                duration: Duration::from_millis(ms),
            },
            FaultWire::MalformedJson => Self::MalformedJson,
            FaultWire::WrongContentType => Self::WrongContentType,
            FaultWire::HugeErrorBody { status, bytes } => Self::HugeErrorBody {
                status: check_status(status)?,
                bytes,
            },
            FaultWire::TrickleBody {
                chunk_bytes,
                interval_ms,
            } => Self::TrickleBody {
                chunk_bytes,
                interval: Duration::from_millis(interval_ms),
            },
            FaultWire::WsDrop {
                after_messages,
                after_ms,
            } => {
                if after_messages.is_none() && after_ms.is_none() {
                    return Err("ws_drop needs after_messages, after_ms or both".to_owned());
                }
                Self::WsDrop {
                    after_messages: after_messages.unwrap_or(u32::MAX),
                    after_ms,
                }
            }
            FaultWire::WsClose {
                code,
                after_messages,
            } => {
                if !sendable_close_code(code) {
                    return Err(format!(
                        "code must be a close code a server may send (1000-1003, 1007-1014, \
                         3000-4999), got {code}"
                    ));
                }
                Self::WsClose {
                    code,
                    after_messages,
                }
            }
            FaultWire::WsStall => Self::WsStall,
        })
    }
}

impl From<Fault> for FaultWire {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Latency(d) => Self::Latency { ms: millis(d) },
            Fault::Status {
                status,
                retry_after,
                body,
            } => Self::Status {
                status,
                retry_after,
                body,
            },
            Fault::ResetBeforeHead => Self::ResetBeforeHead,
            Fault::ResetMidBody { after_bytes } => Self::ResetMidBody { after_bytes },
            Fault::SseCutBeforeDone => Self::SseCutBeforeDone,
            Fault::StallHead(d) => Self::StallHead { ms: millis(d) },
            Fault::StallBody {
                after_bytes,
                duration,
            } => Self::StallBody {
                after_bytes,
                ms: millis(duration),
            },
            Fault::MalformedJson => Self::MalformedJson,
            Fault::WrongContentType => Self::WrongContentType,
            Fault::HugeErrorBody { status, bytes } => Self::HugeErrorBody { status, bytes },
            Fault::TrickleBody {
                chunk_bytes,
                interval,
            } => Self::TrickleBody {
                chunk_bytes,
                interval_ms: millis(interval),
            },
            Fault::WsDrop {
                after_messages,
                after_ms,
            } => Self::WsDrop {
                after_messages: (after_messages != u32::MAX || after_ms.is_none())
                    .then_some(after_messages),
                after_ms,
            },
            Fault::WsClose {
                code,
                after_messages,
            } => Self::WsClose {
                code,
                after_messages,
            },
            Fault::WsStall => Self::WsStall,
        }
    }
}

/// Which requests get a [`Fault`]: those whose path starts with `path_prefix` (and, when set, whose
/// method is `method`), skipping the first `after` of them, then at most `times` of them (every
/// one when `None`).
///
/// Each rule counts the requests it matches on its own. For each request the rules are tried in the
/// order they were added and the first one that is due is applied (one fault per request); a rule
/// that matched but was not due (still skipping, or used up) does not stop the search. The control
/// endpoint `/_emulator/faults` itself is never faulted.
///
/// JSON form (control endpoint): `{"path_prefix": "/waves/v1/tts", "method": "POST", "times": 2,
/// "after": 0, "fault": {"kind": "status", "status": 503}}` — only `fault` is required;
/// `path_prefix` defaults to `""` (every path), `times` to `null` (always), `after` to 0.
///
/// ```
/// use std::time::Duration;
/// use smallest_emulator::{Fault, FaultRule};
///
/// // The second and third POSTs to TTS get a 429 with `Retry-After: 1`.
/// let rule = FaultRule::new("/waves/v1/tts", Fault::too_many_requests(Some("1")))
///     .method("POST")
///     .after(1)
///     .times(2);
/// assert_eq!(rule.times, Some(2));
/// # let _ = Duration::ZERO;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FaultRule {
    /// Requests whose path starts with this (`""` or `"/"`: every request).
    #[serde(default)]
    pub path_prefix: String,
    /// Only requests with this method (case-insensitive), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Apply to at most this many matching requests (after the skipped ones); `None`: no limit.
    #[serde(default)]
    pub times: Option<u32>,
    /// Let this many matching requests through untouched first.
    #[serde(default)]
    pub after: u32,
    /// What happens to the chosen requests.
    pub fault: Fault,
}

impl FaultRule {
    /// `fault` for every request whose path starts with `path_prefix`, forever.
    pub fn new(path_prefix: impl Into<String>, fault: Fault) -> Self {
        Self {
            path_prefix: path_prefix.into(),
            method: None,
            times: None,
            after: 0,
            fault,
        }
    }

    /// `fault` for every request.
    pub fn any(fault: Fault) -> Self {
        Self::new("", fault)
    }

    /// Only requests with this method (`"POST"`, `"GET"`, …; case-insensitive).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Only the next `n` matching requests (after the skipped ones).
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Skips the first `n` matching requests.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }

    fn matches(&self, method: &str, path: &str, upgrade: bool) -> bool {
        (upgrade || !self.fault.is_ws())
            && path.starts_with(self.path_prefix.as_str())
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct PlanEntry {
    rule: FaultRule,
    matched: u64,
    applied: u64,
}

/// A rule with its counters, as the control endpoint lists it.
#[derive(Serialize)]
pub(crate) struct ListedRule {
    #[serde(flatten)]
    rule: FaultRule,
    /// Requests the rule matched so far (whether or not it was applied).
    matched: u64,
    /// Requests the fault was applied to.
    applied: u64,
}

/// The fault rules of one emulator, in the order they were added.
pub(crate) struct FaultPlan {
    entries: Mutex<Vec<PlanEntry>>,
}

impl FaultPlan {
    pub(crate) fn new(rules: Vec<FaultRule>) -> Self {
        let plan = Self {
            entries: Mutex::new(Vec::new()),
        };
        for rule in rules {
            plan.push(rule);
        }
        plan
    }

    pub(crate) fn push(&self, rule: FaultRule) {
        lock(&self.entries).push(PlanEntry {
            rule,
            matched: 0,
            applied: 0,
        });
    }

    /// Removes every rule; returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut entries = lock(&self.entries);
        let n = entries.len();
        entries.clear();
        n
    }

    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        lock(&self.entries).iter().map(|e| e.rule.clone()).collect()
    }

    pub(crate) fn listed(&self) -> Vec<ListedRule> {
        lock(&self.entries)
            .iter()
            .map(|e| ListedRule {
                rule: e.rule.clone(),
                matched: e.matched,
                applied: e.applied,
            })
            .collect()
    }

    /// Counts the request against every matching rule and returns the fault of the first rule that
    /// is due, if any. `upgrade`: the request asks for a WebSocket (only those match `Ws*` faults).
    pub(crate) fn select(&self, method: &str, path: &str, upgrade: bool) -> Option<Fault> {
        let mut entries = lock(&self.entries);
        let mut chosen = None;
        for entry in entries.iter_mut() {
            if !entry.rule.matches(method, path, upgrade) {
                continue;
            }
            entry.matched += 1;
            if chosen.is_some() || entry.matched <= u64::from(entry.rule.after) {
                continue;
            }
            if entry
                .rule
                .times
                .is_some_and(|t| entry.applied >= u64::from(t))
            {
                continue;
            }
            entry.applied += 1;
            chosen = Some(entry.rule.fault.clone());
        }
        chosen
    }
}

/// The fault chosen for a request, stored in its extensions for the routes that act on it.
#[derive(Debug, Clone)]
pub(crate) struct AppliedFault(pub(crate) Fault);

/// Per-connection control, shared by the connection task, its I/O wrapper and its requests (through
/// the request extensions): who the peer is, and a switch that resets the connection.
#[derive(Debug)]
pub(crate) struct ConnControl {
    peer: Option<SocketAddr>,
    killed: AtomicBool,
    kill_on_flush: AtomicBool,
    notify: Notify,
}

impl ConnControl {
    pub(crate) fn new(peer: Option<SocketAddr>) -> Arc<Self> {
        Arc::new(Self {
            peer,
            killed: AtomicBool::new(false),
            kill_on_flush: AtomicBool::new(false),
            notify: Notify::new(),
        })
    }

    /// The client's address, when known.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Resets the connection: the connection task drops it, and the socket closes with `RST`.
    pub(crate) fn kill(&self) {
        if !self.killed.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Resets the connection as soon as what was written so far has been flushed to the socket.
    pub(crate) fn kill_after_flush(&self) {
        self.kill_on_flush.store(true, Ordering::Release);
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once [`ConnControl::kill`] was called.
    pub(crate) async fn killed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }
}

/// The TCP stream of one connection, under its [`ConnControl`]: once killed it refuses to write,
/// and closing it sends a reset instead of a FIN.
#[derive(Debug)]
pub(crate) struct KillableTcp {
    inner: TcpStream,
    control: Arc<ConnControl>,
}

impl KillableTcp {
    pub(crate) fn new(inner: TcpStream, control: Arc<ConnControl>) -> Self {
        Self { inner, control }
    }
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset by a fault",
    )
}

impl AsyncRead for KillableTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.control.is_killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.control.is_killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.control.is_killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.control.is_killed() {
            return Poll::Ready(Err(reset_error()));
        }
        let flushed = ready!(Pin::new(&mut this.inner).poll_flush(cx));
        if flushed.is_ok() && this.control.kill_on_flush.load(Ordering::Acquire) {
            this.control.kill();
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.control.is_killed() {
            // A killed connection ends with the RST of its drop, never a FIN first (a
            // client would read a clean end of stream instead of a reset).
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl Drop for KillableTcp {
    fn drop(&mut self) {
        if self.control.is_killed() {
            // Zero linger: closing discards anything unsent and sends RST (it does not block).
            let _ = self.inner.set_zero_linger();
        }
    }
}

/// How a [`ShapedBody`] releases the body it wraps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// The first `n` bytes, then a connection reset.
    ResetAfter(u64),
    /// The first `after` bytes, a pause, then the rest.
    StallAfter { after: u64, duration: Duration },
    /// `chunk` bytes at a time, `interval` apart.
    Trickle { chunk: usize, interval: Duration },
}

/// How long a reset waits for the flush that should trigger it before resetting anyway.
const RESET_FALLBACK: Duration = Duration::from_millis(250);

/// A response body released according to a [`Shape`].
pub(crate) struct ShapedBody {
    inner: Body,
    shape: Shape,
    control: Option<Arc<ConnControl>>,
    sent: u64,
    pending: Bytes,
    inner_done: bool,
    stalled: bool,
    resetting: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ShapedBody {
    pub(crate) fn new(inner: Body, shape: Shape, control: Option<Arc<ConnControl>>) -> Self {
        Self {
            inner,
            shape,
            control,
            sent: 0,
            pending: Bytes::new(),
            inner_done: false,
            stalled: false,
            resetting: false,
            sleep: None,
        }
    }

    fn emit(&mut self, n: usize) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        let n = n.min(self.pending.len());
        let data = self.pending.split_to(n);
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

fn remaining_before(limit: u64, sent: u64) -> usize {
    usize::try_from(limit.saturating_sub(sent)).unwrap_or(usize::MAX)
}

impl hyper::body::Body for ShapedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
                if this.resetting {
                    // The flush that should have triggered the reset did not come: reset now.
                    match &this.control {
                        Some(control) => {
                            control.kill();
                            return Poll::Pending;
                        }
                        None => return Poll::Ready(None),
                    }
                }
            }
            if this.resetting {
                return Poll::Pending;
            }
            if this.pending.is_empty() {
                if this.inner_done {
                    if let Shape::ResetAfter(_) = this.shape {
                        this.start_reset();
                        continue;
                    }
                    return Poll::Ready(None);
                }
                match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                    None => this.inner_done = true,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => this.pending = data,
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    },
                    Some(Err(never)) => match never {},
                }
                continue;
            }
            match this.shape {
                Shape::ResetAfter(limit) => {
                    if this.sent >= limit {
                        this.start_reset();
                        continue;
                    }
                    return this.emit(remaining_before(limit, this.sent));
                }
                Shape::StallAfter { after, duration } => {
                    if this.stalled {
                        return this.emit(this.pending.len());
                    }
                    if this.sent >= after {
                        this.stalled = true;
                        this.sleep = Some(Box::pin(tokio::time::sleep(duration)));
                        continue;
                    }
                    return this.emit(remaining_before(after, this.sent));
                }
                Shape::Trickle { chunk, interval } => {
                    this.sleep = Some(Box::pin(tokio::time::sleep(interval)));
                    return this.emit(chunk.max(1));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !matches!(self.shape, Shape::ResetAfter(_))
            && self.pending.is_empty()
            && self.sleep.is_none()
            && (self.inner_done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let extra = self.pending.len() as u64;
        match inner.exact() {
            Some(n) => SizeHint::with_exact(n.saturating_add(extra)),
            None => {
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(extra));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(extra));
                }
                hint
            }
        }
    }
}

impl ShapedBody {
    fn start_reset(&mut self) {
        self.resetting = true;
        if let Some(control) = &self.control {
            control.kill_after_flush();
        }
        self.sleep = Some(Box::pin(tokio::time::sleep(RESET_FALLBACK)));
    }
}

/// Size of each frame of a [`PatternBody`].
const PATTERN_FRAME: usize = 64 * 1024;

/// A body of exactly `len` bytes, generated as it is read: `prefix`, filler `x`s, `suffix` (cut to
/// `len` when shorter than both).
pub(crate) struct PatternBody {
    prefix: Bytes,
    suffix: Bytes,
    len: u64,
    offset: u64,
}

impl PatternBody {
    pub(crate) fn new(prefix: impl Into<Bytes>, suffix: impl Into<Bytes>, len: u64) -> Self {
        Self {
            prefix: prefix.into(),
            suffix: suffix.into(),
            len,
            offset: 0,
        }
    }

    fn byte_at(&self, i: u64) -> u8 {
        let prefix_len = self.prefix.len() as u64;
        let suffix_len = self.suffix.len() as u64;
        if i < prefix_len {
            return self.prefix[i as usize];
        }
        if self.len >= prefix_len + suffix_len && i >= self.len - suffix_len {
            return self.suffix[(i - (self.len - suffix_len)) as usize];
        }
        b'x'
    }
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.offset >= this.len {
            return Poll::Ready(None);
        }
        let n = usize::try_from(this.len - this.offset)
            .unwrap_or(PATTERN_FRAME)
            .min(PATTERN_FRAME);
        let start = this.offset;
        let chunk: Vec<u8> = (0..n as u64).map(|i| this.byte_at(start + i)).collect();
        this.offset += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn json_round_trip_and_defaults() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"path_prefix":"/waves/v1/tts","method":"POST","times":2,"after":1,
                "fault":{"kind":"status","status":429,"retry_after":"3"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rule,
            FaultRule::new("/waves/v1/tts", Fault::too_many_requests(Some("3")))
                .method("POST")
                .times(2)
                .after(1)
        );
        let minimal: FaultRule = serde_json::from_str(r#"{"fault":{"kind":"reset_before_head"}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(minimal, FaultRule::any(Fault::ResetBeforeHead));
        for fault in [
            Fault::Latency(Duration::from_millis(20)),
            Fault::StallBody {
                after_bytes: 5,
                duration: Duration::from_millis(30),
            },
            Fault::TrickleBody {
                chunk_bytes: 3,
                interval: Duration::from_millis(1),
            },
            Fault::HugeErrorBody {
                status: 500,
                bytes: 10,
            },
            Fault::SseCutBeforeDone,
            Fault::WsDrop {
                after_messages: 20,
                after_ms: None,
            },
            Fault::WsDrop {
                after_messages: u32::MAX,
                after_ms: Some(300),
            },
            Fault::WsDrop {
                after_messages: 2,
                after_ms: Some(300),
            },
            Fault::WsClose {
                code: 1011,
                after_messages: 3,
            },
            Fault::WsStall,
        ] {
            let rule = FaultRule::any(fault);
            let text = serde_json::to_string(&rule).unwrap_or_default();
            let back: FaultRule = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, rule, "{text}");
        }
        assert!(
            serde_json::from_str::<FaultRule>(r#"{"fault":{"kind":"status","status":99}}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<FaultRule>(r#"{"fault":{"kind":"nope"}}"#).is_err());
        let drop: FaultRule =
            serde_json::from_str(r#"{"fault":{"kind":"ws_drop","after_ms":250}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            drop.fault,
            Fault::WsDrop {
                after_messages: u32::MAX,
                after_ms: Some(250)
            }
        );
        assert!(serde_json::from_str::<FaultRule>(r#"{"fault":{"kind":"ws_drop"}}"#).is_err());
        assert!(
            serde_json::from_str::<FaultRule>(
                r#"{"fault":{"kind":"ws_close","code":1006,"after_messages":1}}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<FaultRule>(r#"{"fault":{"kind":"latency","ms":1,"x":2}}"#)
                .is_err()
        );
    }

    #[test]
    fn plan_honours_after_times_method_and_order() {
        let plan = FaultPlan::new(vec![
            FaultRule::new("/a", Fault::status(500)).after(1).times(2),
            FaultRule::new("/a", Fault::status(503)).method("get"),
        ]);
        let picks: Vec<Option<u16>> = (0..5)
            .map(|_| match plan.select("GET", "/a/b", false) {
                Some(Fault::Status { status, .. }) => Some(status),
                _ => None,
            })
            .collect();
        assert_eq!(
            picks,
            [Some(503), Some(500), Some(500), Some(503), Some(503)]
        );
        assert_eq!(plan.select("POST", "/a", false), None);
        assert_eq!(plan.select("GET", "/b", false), None);
        let listed = serde_json::to_value(plan.listed()).unwrap_or_default();
        assert_eq!(listed[0]["matched"], 6);
        assert_eq!(listed[0]["applied"], 2);
        assert_eq!(listed[1]["applied"], 3);
        assert_eq!(plan.clear(), 2);
        // WebSocket faults match upgrades only.
        plan.push(FaultRule::new("/ws", Fault::WsStall).times(1));
        assert_eq!(plan.select("POST", "/ws", false), None);
        assert_eq!(plan.select("GET", "/ws", true), Some(Fault::WsStall));
        assert_eq!(plan.select("GET", "/ws", true), None);
        plan.clear();
        assert_eq!(plan.select("GET", "/a", false), None);
    }

    #[tokio::test]
    async fn pattern_body_has_the_exact_length() {
        for len in [0u64, 3, 20, 70_000] {
            let body = PatternBody::new(&b"{\"error\":\"x\",\"message\":\""[..], &b"\"}"[..], len);
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            assert_eq!(bytes.len() as u64, len);
            if len >= 70_000 {
                assert!(bytes.starts_with(b"{\"error\""));
                assert!(bytes.ends_with(b"\"}"));
            }
        }
    }

    #[tokio::test]
    async fn trickle_and_stall_keep_every_byte() {
        let data: Vec<u8> = (0..100u8).collect();
        for shape in [
            Shape::Trickle {
                chunk: 7,
                interval: Duration::from_millis(1),
            },
            Shape::StallAfter {
                after: 10,
                duration: Duration::from_millis(5),
            },
        ] {
            let inner = crate::body::full(data.clone());
            let mut body = ShapedBody::new(inner, shape, None);
            let mut got = Vec::new();
            let mut frames = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(d) = frame.into_data() {
                    got.extend_from_slice(&d);
                    frames += 1;
                }
            }
            assert_eq!(got, data);
            assert!(frames >= 2, "{shape:?}");
        }
    }
}
