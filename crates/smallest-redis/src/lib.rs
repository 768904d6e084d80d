//! The account limits of the Smallest AI Waves API shared by every process that uses one
//! key, through Redis.
//!
//! The API's limits are per **account** (API.md §8.4): one concurrent TTS request by
//! default, across every model, transport and machine; Pulse STT 25 requests per minute
//! per model on the Standard plan; 100 concurrent live STT sessions. A process keeps
//! itself inside them with `smallest-core`'s [`LocalLimits`]; a fleet (pods, workers, CLI
//! runs on several machines) needs them shared. [`RedisLimits`] is a
//! [`Limits`] implementation that every client of every transport takes:
//!
//! ```no_run
//! use std::sync::Arc;
//! use smallest_redis::RedisLimits;
//!
//! # fn main() -> Result<(), smallest_core::Error> {
//! let config = smallest_core::Config::from_env()?;
//! let limits = RedisLimits::builder("redis://127.0.0.1:6379/0")
//!     .tts_concurrency(2)
//!     .stt_rpm(25)
//!     .build_for(config.api_key())?;
//! // The same on smallest-hyper and smallest-async.
//! let client = smallest_blocking::Client::builder(config)
//!     .limits(Arc::new(limits))
//!     .build()?;
//! # let _ = client;
//! # Ok(())
//! # }
//! ```
//!
//! - **TTS slots** and **live STT sessions** are fair (FIFO across processes)
//!   distributed semaphores with **leases**: a holder's lease is renewed while it holds;
//!   a process that dies (even `kill -9`) loses its slots when the lease ends
//!   ([`RedisLimitsBuilder::lease_ttl`], default 5 s); a dropped or cancelled call gives
//!   its slot back at once and wakes the waiters of every process (a Redis publish).
//! - **STT requests per minute per model**: a sliding window counted on Redis's clock
//!   (`TIME` inside the scripts), never on the clients' clocks.
//! - Every decision is one Lua script, so it is atomic; all keys of an account live under
//!   `smallest:{account}:` (one Redis Cluster hash slot). The account is the name given
//!   to [`RedisLimitsBuilder::account`], or the key's
//!   [`fingerprint`](smallest_core::ApiKey::fingerprint) — never the key itself.
//! - **Redis unreachable**: the call fails with [`Error::Limits`], which names the Redis
//!   URL (without its password) and what to do — by default. With
//!   [`RedisLimitsBuilder::fallback_local`] the process falls back to its own
//!   [`LocalLimits`] instead, and logs a warning each time. Limits are never skipped
//!   silently.
//!
//! No async runtime: the Redis connections live on this crate's own two threads (one
//! for the scripts, one subscribed to the release channel), and each answer wakes the
//! future that waits for it. tokio, `smallest-blocking`, smol or any other executor use
//! the same limits.
//!
//! `docs/fleet.md` in the repository says when a fleet needs this, how to configure it,
//! and what happens on each failure.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::thread;
use std::time::{Duration, Instant};

use smallest_core::limits::{LimitFuture, Limits, LocalLimits, Permit, Rate};
use smallest_core::{ApiKey, Error};

mod oneshot;
mod scripts;

/// The environment variable with the Redis URL, e.g. `redis://127.0.0.1:6379/0`.
pub const REDIS_URL_ENV: &str = "SMALLEST_REDIS_URL";
/// The environment variable with the account's TTS concurrency (default 1).
pub const TTS_CONCURRENCY_ENV: &str = "SMALLEST_TTS_CONCURRENCY";
/// The environment variable with the STT requests per minute per model (default 25).
pub const STT_RPM_ENV: &str = "SMALLEST_STT_RPM";
/// The environment variable with the concurrent live STT sessions (default 100).
pub const STT_SESSIONS_ENV: &str = "SMALLEST_STT_SESSIONS";
/// The environment variable with the account name of the keys in Redis (default: the
/// API key's fingerprint).
pub const ACCOUNT_ENV: &str = "SMALLEST_REDIS_ACCOUNT";
/// The environment variable that, set to `local`, falls back to local limits when Redis
/// cannot be reached.
pub const FALLBACK_ENV: &str = "SMALLEST_REDIS_FALLBACK";

/// The default lease of a held slot: a holder that stops renewing (a dead process) loses
/// it this long after its last renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// The default window of the STT rate: a minute plus one second, the time between a
/// client counting a request and the server counting it.
pub const DEFAULT_STT_WINDOW: Duration = smallest_core::limits::DEFAULT_STT_WINDOW;
/// The default time limit of one Redis command (connecting included).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a [`RedisLimits`]; see [`RedisLimits::builder`].
#[derive(Clone)]
pub struct RedisLimitsBuilder {
    url: String,
    account: Option<String>,
    tts_concurrency: usize,
    stt_rpm: u32,
    stt_window: Duration,
    stt_sessions: usize,
    lease_ttl: Duration,
    timeout: Duration,
    fallback: Option<LocalLimits>,
}

impl fmt::Debug for RedisLimitsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimitsBuilder")
            .field("url", &display_url(&self.url))
            .field("account", &self.account)
            .field("tts_concurrency", &self.tts_concurrency)
            .field("stt_rpm", &self.stt_rpm)
            .field("stt_window", &self.stt_window)
            .field("stt_sessions", &self.stt_sessions)
            .field("lease_ttl", &self.lease_ttl)
            .field("timeout", &self.timeout)
            .field("fallback_local", &self.fallback.is_some())
            .finish()
    }
}

impl RedisLimitsBuilder {
    /// The account name of the Redis keys (`smallest:{account}:…`): any name the fleet
    /// agrees on (not the API key). Without one, [`build_for`](Self::build_for) uses
    /// the key's fingerprint.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// The account's concurrent TTS requests (default 1; at least 1).
    pub fn tts_concurrency(mut self, n: usize) -> Self {
        self.tts_concurrency = n.max(1);
        self
    }

    /// STT requests per minute per model (default 25; at least 1), counted in a window
    /// of [`DEFAULT_STT_WINDOW`].
    pub fn stt_rpm(mut self, per_minute: u32) -> Self {
        self.stt_rpm = per_minute.max(1);
        self.stt_window = DEFAULT_STT_WINDOW;
        self
    }

    /// At most `limit` STT requests per model in any `window` (for plans and tests with
    /// other windows than a minute).
    pub fn stt_window(mut self, limit: u32, window: Duration) -> Self {
        self.stt_rpm = limit.max(1);
        self.stt_window = window.max(Duration::from_millis(1));
        self
    }

    /// The account's concurrent live STT sessions (default 100; at least 1).
    pub fn stt_sessions(mut self, n: usize) -> Self {
        self.stt_sessions = n.max(1);
        self
    }

    /// The lease of a held slot (default [`DEFAULT_LEASE_TTL`], 300 ms to 10 min): renewed
    /// every third of it while held; a process that dies loses its slots this long after
    /// its last renewal.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.clamp(Duration::from_millis(300), Duration::from_secs(600));
        self
    }

    /// The time limit of one Redis command, connecting included (default
    /// [`DEFAULT_REDIS_TIMEOUT`]; 10 ms to 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(10), Duration::from_secs(60));
        self
    }

    /// When Redis cannot be reached, take the limit from `local` (this process's own
    /// limits) instead of failing the call, with a warning each time. Off by default:
    /// a fleet that falls back may exceed the account's limits together.
    pub fn fallback_local(mut self, local: LocalLimits) -> Self {
        self.fallback = Some(local);
        self
    }

    /// The limits, for an account named with [`account`](Self::account). Connects
    /// lazily: an unreachable Redis is reported by the first call that needs a limit.
    pub fn build(self) -> Result<RedisLimits, Error> {
        let Some(account) = self.account.clone() else {
            return Err(Error::Config(
                "RedisLimits needs an account name (RedisLimitsBuilder::account) or the API key (build_for)"
                    .into(),
            ));
        };
        self.start(account)
    }

    /// The limits for the account of `key`: the name given to
    /// [`account`](Self::account), else the key's fingerprint.
    pub fn build_for(self, key: &ApiKey) -> Result<RedisLimits, Error> {
        let account = self.account.clone().unwrap_or_else(|| key.fingerprint());
        self.start(account)
    }

    fn start(self, account: String) -> Result<RedisLimits, Error> {
        check_account(&account)?;
        let shown = display_url(&self.url);
        let client = redis::Client::open(self.url.as_str()).map_err(|e| Error::Limits {
            backend: shown.clone(),
            message: format!("not a Redis URL: {}", scrub(&e.to_string(), &self.url)),
            remedy: format!(
                "set {REDIS_URL_ENV} to a URL like redis://127.0.0.1:6379/0 (or rediss:// for TLS)"
            )
            .into(),
        })?;
        let prefix = format!("smallest:{{{account}}}");
        let semaphores = [
            Semaphore::new(&prefix, "tts", self.tts_concurrency),
            Semaphore::new(&prefix, "stt-live", self.stt_sessions),
        ];
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            url: self.url.clone(),
            shown: shown.clone(),
            timeout: self.timeout,
        });
        let worker = Worker {
            shared: shared.clone(),
            client: client.clone(),
            conn: None,
            rx,
            tx: tx.clone(),
            semaphores: semaphores.clone(),
            held: [HashSet::new(), HashSet::new()],
            waiting: Vec::new(),
            prefix: prefix.clone(),
            rate_limit: self.stt_rpm,
            rate_window: self.stt_window,
            ttl: self.lease_ttl,
            stop: stop.clone(),
            ids: Ids::new(),
            down: None,
            orphans: Vec::new(),
        };
        thread::Builder::new()
            .name("smallest-redis".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::Config(format!("could not start the Redis thread: {e}").into()))?;
        let subscriber = Subscriber {
            shared: shared.clone(),
            client,
            channel: format!("{prefix}:wake"),
            tx: tx.clone(),
            stop: stop.clone(),
        };
        if let Err(e) = thread::Builder::new()
            .name("smallest-redis-wake".into())
            .spawn(move || subscriber.run())
        {
            // The first thread stops too.
            stop.store(true, Ordering::Relaxed);
            let _ = tx.send(Command::Wake);
            return Err(Error::Config(
                format!("could not start the Redis thread: {e}").into(),
            ));
        }
        Ok(RedisLimits {
            inner: Arc::new(Inner {
                tx,
                shared,
                account,
                tts_concurrency: self.tts_concurrency,
                stt_rpm: self.stt_rpm,
                stt_window: self.stt_window,
                stt_sessions: self.stt_sessions,
                lease_ttl: self.lease_ttl,
                fallback: self.fallback,
                stop,
            }),
        })
    }
}

/// The account's limits in Redis, shared by every process that uses the same Redis and
/// account name. Clones share one connection pair. See the [crate docs](crate).
#[derive(Clone)]
pub struct RedisLimits {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    account: String,
    tts_concurrency: usize,
    stt_rpm: u32,
    stt_window: Duration,
    stt_sessions: usize,
    lease_ttl: Duration,
    fallback: Option<LocalLimits>,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    /// Stops the threads once every held slot is given back. Waits (at most a second)
    /// for the releases already sent to reach Redis, so that a process that exits
    /// right after its last call does not leave its slot to expire.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// What both threads know of the server.
struct Shared {
    url: String,
    shown: String,
    timeout: Duration,
}

impl Shared {
    fn error(&self, e: &redis::RedisError) -> Error {
        let message = scrub(&e.to_string(), &self.url);
        let remedy = if e.is_connection_refusal() || e.is_io_error() || e.is_timeout() {
            format!(
                "start Redis there or point {REDIS_URL_ENV} at a running one; or unset it (each process then keeps only its own limits), or set {FALLBACK_ENV}=local to fall back to them when Redis is down"
            )
        } else {
            "check that the URL, password and database are right and that the server is Redis 6.2 or later".to_owned()
        };
        Error::Limits {
            backend: self.shown.clone(),
            message,
            remedy: remedy.into(),
        }
    }
}

impl fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl RedisLimits {
    /// A builder for the Redis at `url` (`redis://[:password@]host:port/db`, `rediss://`
    /// for TLS, `redis+unix:///path`).
    pub fn builder(url: impl Into<String>) -> RedisLimitsBuilder {
        RedisLimitsBuilder {
            url: url.into(),
            account: None,
            tts_concurrency: 1,
            stt_rpm: 25,
            stt_window: DEFAULT_STT_WINDOW,
            stt_sessions: 100,
            lease_ttl: DEFAULT_LEASE_TTL,
            timeout: DEFAULT_REDIS_TIMEOUT,
            fallback: None,
        }
    }

    /// The limits the environment asks for: `None` when [`REDIS_URL_ENV`] is not set;
    /// else the Redis there, with [`TTS_CONCURRENCY_ENV`] (default 1), [`STT_RPM_ENV`]
    /// (default 25), [`STT_SESSIONS_ENV`] (default 100), [`ACCOUNT_ENV`] (default: the
    /// key's fingerprint) and [`FALLBACK_ENV`]` = local`. A variable that is set but not
    /// a number is an error that names it.
    pub fn from_env(key: &ApiKey) -> Result<Option<RedisLimits>, Error> {
        RedisLimits::from_lookup(key, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `lookup` (a CLI that
    /// also reads a `.env` file, a test).
    pub fn from_lookup(
        key: &ApiKey,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RedisLimits>, Error> {
        let env = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let env_number = |name: &str| env_number(name, env(name));
        let Some(url) = env(REDIS_URL_ENV) else {
            return Ok(None);
        };
        let url = url.trim().to_owned();
        let mut builder = RedisLimits::builder(url);
        if let Some(n) = env_number(TTS_CONCURRENCY_ENV)? {
            builder = builder.tts_concurrency(n as usize);
        }
        if let Some(n) = env_number(STT_RPM_ENV)? {
            builder = builder.stt_rpm(u32::try_from(n).unwrap_or(u32::MAX));
        }
        if let Some(n) = env_number(STT_SESSIONS_ENV)? {
            builder = builder.stt_sessions(n as usize);
        }
        if let Some(account) = env(ACCOUNT_ENV) {
            builder = builder.account(account);
        }
        match env(FALLBACK_ENV).as_deref() {
            None | Some("none") => {}
            Some("local") => {
                let mut local =
                    LocalLimits::new(smallest_core::TtsLimiter::new(builder.tts_concurrency))
                        .with_stt_window(smallest_core::limits::SttWindow::new(
                            builder.stt_rpm,
                            builder.stt_window,
                        ));
                local = local.with_stt_sessions(builder.stt_sessions);
                builder = builder.fallback_local(local);
            }
            Some(other) => {
                return Err(Error::Config(
                    format!("{FALLBACK_ENV} is {other:?}; allowed: \"local\" or \"none\"").into(),
                ));
            }
        }
        builder.build_for(key).map(Some)
    }

    /// The account name of the keys in Redis.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The Redis URL, without its password.
    pub fn display_url(&self) -> &str {
        &self.inner.shared.shown
    }

    fn send(&self, command: Command) {
        // The worker keeps the channel open; should the send fail all the same, the
        // waiting future sees its sender dropped.
        let _ = self.inner.tx.send(command);
    }

    /// Sends the command `make` builds around an answer channel, and waits for the
    /// answer. When Redis failed, the limit comes from the local fallback (`local`)
    /// if there is one, with a warning that names `what` was taken there.
    fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
        what: &'static str,
        local: impl FnOnce(&LocalLimits) -> LimitFuture<T> + Send + 'static,
    ) -> LimitFuture<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        let fallback = self.inner.fallback.clone();
        let shown = self.inner.shared.shown.clone();
        Box::pin(async move {
            let error = match rx.await {
                Some(Ok(answer)) => return Ok(answer),
                Some(Err(e)) => e,
                None => Error::Limits {
                    backend: shown,
                    message: "the Redis thread stopped".to_owned(),
                    remedy: "build new limits".into(),
                },
            };
            match fallback {
                Some(fallback) => {
                    tracing::warn!(target: "smallest", error = %error, "Redis unreachable: {what} from this process's own limits");
                    local(&fallback).await
                }
                None => Err(error),
            }
        })
    }
}

impl Limits for RedisLimits {
    fn tts_slot(&self) -> LimitFuture<Permit> {
        self.ask(
            |tx| Command::Acquire { which: TTS, tx },
            "a TTS slot",
            LocalLimits::tts_slot,
        )
    }

    fn stt_request(&self, model: &str, now: Instant) -> LimitFuture<Rate> {
        let owned = model.to_owned();
        self.ask(
            |tx| Command::Rate {
                model: model.to_owned(),
                tx,
            },
            "an STT request counted",
            move |local| local.stt_request(&owned, now),
        )
    }

    fn stt_session(&self) -> LimitFuture<Permit> {
        self.ask(
            |tx| Command::Acquire {
                which: STT_LIVE,
                tx,
            },
            "a live STT session",
            LocalLimits::stt_session,
        )
    }

    fn describe(&self) -> String {
        format!(
            "Redis {} account {} (TTS concurrency {}, STT {} per {:?} per model, live STT sessions {}, lease {:?}{})",
            self.inner.shared.shown,
            self.inner.account,
            self.inner.tts_concurrency,
            self.inner.stt_rpm,
            self.inner.stt_window,
            self.inner.stt_sessions,
            self.inner.lease_ttl,
            if self.inner.fallback.is_some() {
                ", local fallback"
            } else {
                ""
            }
        )
    }
}

/// The scripts, hashed once (`EVALSHA`, loaded again after a Redis restart).
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(&scripts::acquire()));
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(scripts::RELEASE));
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(&scripts::renew()));
static RATE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(&scripts::rate()));

/// The index of the TTS semaphore.
const TTS: usize = 0;
/// The index of the live STT session semaphore.
const STT_LIVE: usize = 1;

/// The keys of one semaphore.
#[derive(Clone)]
struct Semaphore {
    holders: String,
    queue: String,
    waiting: String,
    ticket: String,
    wake: String,
    limit: usize,
}

impl Semaphore {
    fn new(prefix: &str, name: &str, limit: usize) -> Self {
        Semaphore {
            holders: format!("{prefix}:{name}:holders"),
            queue: format!("{prefix}:{name}:queue"),
            waiting: format!("{prefix}:{name}:waiting"),
            ticket: format!("{prefix}:{name}:ticket"),
            wake: format!("{prefix}:wake"),
            limit,
        }
    }
}

enum Command {
    /// Wait for a slot of semaphore `which`.
    Acquire {
        which: usize,
        tx: oneshot::Sender<Result<Permit, Error>>,
    },
    /// Give back (or stop waiting for) the slot `id` of semaphore `which`.
    Release { which: usize, id: String },
    /// One STT request token of `model`.
    Rate {
        model: String,
        tx: oneshot::Sender<Result<Rate, Error>>,
    },
    /// A slot was released somewhere in the fleet: ask again.
    Wake,
    /// Answer once every command sent before this one is done.
    Flush(mpsc::SyncSender<()>),
}

/// A held slot: dropping it gives the slot back.
struct Lease {
    which: usize,
    id: String,
    tx: mpsc::Sender<Command>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Release {
            which: self.which,
            id: std::mem::take(&mut self.id),
        });
    }
}

/// Unique ids of holders and requests: this process, this instance, a counter.
struct Ids {
    base: String,
    next: AtomicU64,
}

impl Ids {
    /// 128 random bits (from the standard library's per-process hash keys, mixed with
    /// the process id and the time): ids of processes in different containers, which
    /// often share a process id, do not collide.
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut random = [0u64; 2];
        for (i, r) in random.iter_mut().enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            h.write_usize(i);
            *r = h.finish();
        }
        Ids {
            base: format!("{:016x}{:016x}", random[0], random[1]),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        format!(
            "{}-{}",
            self.base,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// A call waiting for a slot.
struct Waiter {
    which: usize,
    id: String,
    tx: oneshot::Sender<Result<Permit, Error>>,
}

/// The thread that runs the scripts.
struct Worker {
    shared: Arc<Shared>,
    client: redis::Client,
    conn: Option<redis::Connection>,
    rx: mpsc::Receiver<Command>,
    tx: mpsc::Sender<Command>,
    semaphores: [Semaphore; 2],
    /// The ids of this process's held slots, per semaphore (renewed every third of the
    /// lease).
    held: [HashSet<String>; 2],
    /// In order of arrival.
    waiting: Vec<Waiter>,
    prefix: String,
    rate_limit: u32,
    rate_window: Duration,
    ttl: Duration,
    stop: Arc<AtomicBool>,
    ids: Ids,
    /// Redis failed at this instant, with this error: commands fail at once for
    /// [`DOWN_FOR`] instead of each waiting for its own connect limit.
    down: Option<(Instant, Error)>,
    /// Ids whose ask failed (a reply lost to a timeout may have granted them): given
    /// back once Redis answers again, so that no slot waits for its lease.
    orphans: Vec<(usize, String)>,
}

/// How long commands fail at once after Redis failed.
const DOWN_FOR: Duration = Duration::from_millis(250);

impl Worker {
    fn run(mut self) {
        let renew_every = self.ttl / 3;
        // Waiters ask again at least this often: a lease that ended without a release
        // (a dead holder) frees its slot without a publish.
        let ask_every = (self.ttl / 4).min(Duration::from_millis(250));
        let mut renewed = Instant::now();
        let mut asked = Instant::now();
        loop {
            let now = Instant::now();
            let next_renew = renewed.checked_add(renew_every).unwrap_or(now);
            let next_ask = if self.waiting.is_empty() {
                next_renew
            } else {
                asked.checked_add(ask_every).unwrap_or(now)
            };
            let timeout = next_renew.min(next_ask).saturating_duration_since(now);
            let mut ask = false;
            match self.rx.recv_timeout(timeout) {
                Ok(command) => ask |= self.handle(command),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // `self.tx` keeps the channel open, so this does not happen: the stop
                // flag ends the loop.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(command) = self.rx.try_recv() {
                ask |= self.handle(command);
                if renewed.elapsed() >= renew_every {
                    // A long backlog does not hold up the leases.
                    self.renew();
                    renewed = Instant::now();
                }
            }
            if renewed.elapsed() >= renew_every {
                self.renew();
                renewed = Instant::now();
            }
            if ask || (!self.waiting.is_empty() && asked.elapsed() >= ask_every) {
                self.ask();
                asked = Instant::now();
            }
            if self.stop.load(Ordering::Relaxed)
                && self.waiting.is_empty()
                && self.held.iter().all(HashSet::is_empty)
            {
                break;
            }
        }
    }

    /// RELEASE of `id` in semaphore `which`.
    fn release(&mut self, which: usize, id: &str) -> Result<i64, Error> {
        let s = &self.semaphores[which];
        let mut invocation = RELEASE.key(&s.holders);
        invocation
            .key(&s.queue)
            .key(&s.waiting)
            .key(&s.wake)
            .arg(id);
        self.run_script::<i64>(&invocation)
    }

    /// Handles one command; `true` when the waiters should ask again.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Acquire { which, tx } => {
                self.waiting.push(Waiter {
                    which,
                    id: self.ids.next(),
                    tx,
                });
                true
            }
            Command::Release { which, id } => {
                self.held[which].remove(&id);
                if let Err(e) = self.release(which, &id) {
                    // Given back when Redis answers again, or its lease ends first.
                    tracing::warn!(target: "smallest", error = %e, "could not give a slot back to Redis; trying again when it answers");
                    self.orphans.push((which, id));
                }
                true
            }
            Command::Rate { model, tx } => {
                let key = format!("{}:stt-rate:{model}", self.prefix);
                let mut invocation = RATE.key(&key);
                invocation
                    .arg(self.rate_limit)
                    .arg(self.rate_window.as_millis() as u64)
                    .arg(self.ids.next());
                let answer = match self.run_script::<i64>(&invocation) {
                    Ok(0) => Ok(Rate::Granted),
                    Ok(ms) => Ok(Rate::RetryIn(Duration::from_millis(ms.max(1) as u64))),
                    Err(e) => Err(e),
                };
                let _ = tx.send(answer);
                false
            }
            Command::Wake => true,
            Command::Flush(ack) => {
                let _ = ack.try_send(());
                false
            }
        }
    }

    /// Every waiter asks for its slot (in order of arrival); the ones that get it are
    /// answered, the ones whose call is gone leave the queue.
    fn ask(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        let mut still = Vec::with_capacity(waiting.len());
        let mut failed: Option<Error> = None;
        for w in waiting {
            if let Some(e) = &failed {
                self.orphans.push((w.which, w.id));
                let _ = w.tx.send(Err(e.clone_limits()));
                continue;
            }
            if w.tx.is_closed() {
                if self.release(w.which, &w.id).is_err() {
                    self.orphans.push((w.which, w.id));
                }
                continue;
            }
            let s = &self.semaphores[w.which];
            let mut invocation = ACQUIRE.key(&s.holders);
            invocation
                .key(&s.queue)
                .key(&s.waiting)
                .key(&s.ticket)
                .arg(&w.id)
                .arg(s.limit)
                .arg(self.ttl.as_millis() as u64);
            match self.run_script::<i64>(&invocation) {
                Ok(0) => {
                    self.held[w.which].insert(w.id.clone());
                    let permit = Permit::from_guard(Lease {
                        which: w.which,
                        id: w.id,
                        tx: self.tx.clone(),
                    });
                    // A call that went away meanwhile drops the permit: its lease
                    // sends the release.
                    let _ = w.tx.send(Ok(permit));
                }
                Ok(_) => still.push(w),
                Err(error) => {
                    // The script may have run with its answer lost: give the id back
                    // when Redis answers again.
                    self.orphans.push((w.which, w.id));
                    let _ = w.tx.send(Err(error.clone_limits()));
                    failed = Some(error);
                }
            }
        }
        self.waiting = still;
    }

    /// Extends the leases of the held slots, and gives back the orphans.
    fn renew(&mut self) {
        for (which, id) in std::mem::take(&mut self.orphans) {
            if self.release(which, &id).is_err() {
                self.orphans.push((which, id));
            }
        }
        for which in [TTS, STT_LIVE] {
            if self.held[which].is_empty() {
                continue;
            }
            let mut invocation = RENEW.key(&self.semaphores[which].holders);
            invocation
                .arg(self.ttl.as_millis() as u64)
                .arg(self.semaphores[which].limit);
            for id in &self.held[which] {
                invocation.arg(id);
            }
            match self.run_script::<Vec<String>>(&invocation) {
                Ok(lost) => {
                    for id in lost {
                        tracing::warn!(target: "smallest", holder = %id, "a slot's lease ended before its call did (the process stalled longer than the lease, or Redis lost its data) and the slot was taken meanwhile; the account may be over its limit until the call ends");
                        self.held[which].remove(&id);
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "smallest", error = %e, "could not renew the leases of held slots");
                }
            }
        }
    }

    /// Runs one script. A cached connection that fails with a connection error
    /// (Redis restarted, an idle connection closed by Redis or the network) is replaced
    /// and the script run once more: every script may be repeated for the same ids.
    /// After a failure, scripts fail at once for [`DOWN_FOR`].
    fn run_script<T: redis::FromRedisValue>(
        &mut self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        if let Some((at, error)) = &self.down {
            if at.elapsed() < DOWN_FOR {
                return Err(error.clone_limits());
            }
            self.down = None;
        }
        let cached = self.conn.is_some();
        let result = self.invoke(invocation);
        let result = match result {
            Err(e) if cached && (e.is_connection_dropped() || e.is_io_error()) => {
                self.invoke(invocation)
            }
            other => other,
        };
        result.map_err(|e| {
            let error = self.shared.error(&e);
            if e.is_connection_dropped()
                || e.is_io_error()
                || e.is_timeout()
                || e.is_connection_refusal()
            {
                self.down = Some((Instant::now(), error.clone_limits()));
            }
            error
        })
    }

    fn invoke<T: redis::FromRedisValue>(
        &mut self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, redis::RedisError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self
                .conn
                .insert(connect(&self.client, self.shared.timeout)?),
        };
        let result = invocation.invoke(conn);
        if result.is_err() {
            // Reconnect for the next command.
            self.conn = None;
        }
        result
    }
}

fn connect(
    client: &redis::Client,
    timeout: Duration,
) -> Result<redis::Connection, redis::RedisError> {
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// The thread subscribed to the account's release channel: each message makes the
/// waiters ask again at once.
struct Subscriber {
    shared: Arc<Shared>,
    client: redis::Client,
    channel: String,
    tx: mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            if let Err(e) = self.listen() {
                tracing::debug!(target: "smallest", error = %self.shared.error(&e), "the Redis release channel is down; waiters ask every 250 ms meanwhile");
                thread::sleep(Duration::from_millis(250));
            }
        }
    }

    fn listen(&self) -> Result<(), redis::RedisError> {
        let mut conn = connect(&self.client, self.shared.timeout)?;
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&self.channel)?;
        // Wake up now and then to see whether the limits are gone.
        pubsub.set_read_timeout(Some(Duration::from_millis(500)))?;
        while !self.stop.load(Ordering::Relaxed) {
            match pubsub.get_message() {
                Ok(_) => {
                    if self.tx.send(Command::Wake).is_err() {
                        return Ok(());
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

trait CloneLimits {
    fn clone_limits(&self) -> Error;
}

impl CloneLimits for Error {
    /// A copy of an [`Error::Limits`] for each waiter it fails.
    fn clone_limits(&self) -> Error {
        match self {
            Error::Limits {
                backend,
                message,
                remedy,
            } => Error::Limits {
                backend: backend.clone(),
                message: message.clone(),
                remedy: remedy.clone(),
            },
            other => Error::Config(other.to_string().into()),
        }
    }
}

/// An account name fits a Redis key: 1 to 64 characters, letters, digits, `-`, `_`, `.`.
fn check_account(account: &str) -> Result<(), Error> {
    let ok = !account.is_empty()
        && account.len() <= 64
        && account
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(
            format!(
                "the Redis account name {:?} is not allowed: 1 to 64 ASCII letters, digits, '-', '_' or '.'",
                account.chars().take(80).collect::<String>()
            )
            .into(),
        ))
    }
}

/// `url` without a password (`redis://user:secret@host` → `redis://user:***@host`).
fn display_url(url: &str) -> String {
    let mut shown = url.to_owned();
    for secret in secrets_of(url) {
        shown = shown.replace(&secret, "***");
    }
    shown
}

/// `text` with the URL's password removed, should a Redis error repeat it.
fn scrub(text: &str, url: &str) -> String {
    let mut clean = text.to_owned();
    for secret in secrets_of(url) {
        clean = clean.replace(&secret, "***");
    }
    clean
}

/// The secrets of a Redis URL: the password of `user:password@` (up to the last `@`,
/// so a `/` or `@` inside it does not end it early) and the values of `pass=` and
/// `password=` in the query (`redis+unix:///s.sock?pass=…`).
fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    if let Some((userinfo, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        secrets.push(password.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && matches!(name.to_ascii_lowercase().as_str(), "pass" | "password")
                && !value.is_empty()
            {
                secrets.push(value.to_owned());
            }
        }
    }
    // Longest first: a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// The number in variable `name` (at least 1), if it is set.
pub fn env_number(name: &str, value: Option<String>) -> Result<Option<u64>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(Error::Config(
            format!(
                "{name} is {:?}; allowed: a whole number of at least 1",
                value.chars().take(40).collect::<String>()
            )
            .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            display_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            display_url("rediss://me:hunter2@cache.internal/3"),
            "rediss://me:***@cache.internal/3"
        );
        assert_eq!(
            display_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            scrub("auth failed for hunter2", "redis://:hunter2@h/0"),
            "auth failed for ***"
        );
        assert_eq!(
            display_url("redis://:pa/ss@word@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            display_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(display_url("not a url"), "not a url");
    }

    #[test]
    fn account_names_are_checked() {
        assert!(check_account("team-a.prod_1").is_ok());
        for bad in ["", "a b", "{x}", &"a".repeat(65)] {
            let e = check_account(bad).unwrap_err().to_string();
            assert!(e.contains("not allowed"), "{e}");
        }
    }

    #[test]
    fn a_bad_url_is_an_error_that_names_it() {
        let e = RedisLimits::builder("http://:pw@nowhere")
            .account("a")
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://:***@nowhere"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
        assert!(e.contains(REDIS_URL_ENV), "{e}");
    }
}
