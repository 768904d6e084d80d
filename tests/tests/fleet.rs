//! One account's limits shared by a fleet of processes through a real `redis-server`
//! (`smallest-redis`): TTS slots across processes and transports, a killed holder, the
//! STT request rate, and Redis going away mid-run.
//!
//! Every process is a `fleet_worker` (`src/bin/fleet_worker.rs`) against one emulator
//! in this process. The tests need `redis-server`: outside CI they are skipped with the
//! reason when it cannot be started; in CI (`CI` set) they fail instead. Times are
//! printed; the time-versus-ideal target is checked by `cargo xtask bench`
//! (`tests/measure.rs`), not here.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use smallest_core::limits::{Limits, Rate};
use smallest_emulator::{Emulator, RunningEmulator};
use smallest_redis::RedisLimits;
use smallest_tests::fleet::{Worker, durations, most_in_any_window, tts_fleet, worker_args};
use smallest_tests::redis::RedisServer;

const EXE: &str = env!("CARGO_BIN_EXE_fleet_worker");

fn exe() -> &'static std::path::Path {
    std::path::Path::new(EXE)
}

fn tts_emulator(concurrency: usize) -> RunningEmulator {
    Emulator::builder()
        .tts_concurrency(concurrency)
        .tts_latency(Duration::from_millis(60))
        .spawn()
        .expect("emulator")
}

/// 6 processes x 40 TTS calls of `modes` through Redis, account and emulator
/// concurrency 2: every call succeeds and none is refused.
fn six_processes_share_two_slots(test: &str, modes: &[&str]) {
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let emu = tts_emulator(2);
    let report = tts_fleet(exe(), &emu, &redis.url(), 2, 6, 40, modes);
    eprintln!(
        "6 processes x 40 TTS calls ({}), concurrency 2: {} calls, {} refused (429), {:.2} s vs ideal {:.2} s ({:.3}x)",
        modes.join(", "),
        report.calls,
        report.refused,
        report.elapsed.as_secs_f64(),
        report.ideal.as_secs_f64(),
        report.elapsed.as_secs_f64() / report.ideal.as_secs_f64()
    );
    assert_eq!(report.failed_workers, 0, "{report:?}");
    assert_eq!(report.calls, 240, "{report:?}");
    assert_eq!(report.refused, 0, "{report:?}");
}

#[test]
fn six_processes_share_two_tts_slots_without_a_429() {
    six_processes_share_two_slots("six_processes_share_two_tts_slots_without_a_429", &["sync"]);
}

#[test]
fn sync_sse_and_live_tts_processes_share_two_slots_without_a_429() {
    six_processes_share_two_slots(
        "sync_sse_and_live_tts_processes_share_two_slots",
        &["sync", "sse", "live"],
    );
}

/// Without shared limits the same fleet is refused: the test above can fail.
#[test]
fn without_redis_the_same_fleet_is_refused() {
    let emu = tts_emulator(2);
    let before = emu.requests().len();
    let workers: Vec<Worker> = (0..6)
        .map(|_| {
            let mut args = worker_args(&emu, None, "sync", 10);
            args.extend(["--tts-concurrency".into(), "2".into()]);
            Worker::spawn(exe(), &args)
        })
        .collect();
    for w in workers {
        // The retries of 429s may or may not get every call through: only the refusals
        // matter here.
        let _ = w.finish(Duration::from_secs(120));
    }
    let refused = emu
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.path == "/waves/v1/tts" && r.status == 429)
        .count();
    eprintln!("6 processes x 10 sync TTS calls, local limits only: {refused} refused (429)");
    assert!(
        refused > 0,
        "six processes with two local slots each must collide"
    );
}

#[test]
fn a_killed_holder_loses_its_slots_within_the_lease() {
    let Some(redis) = RedisServer::start("a_killed_holder_loses_its_slots_within_the_lease") else {
        return;
    };
    let emu = tts_emulator(2);
    let lease = Duration::from_millis(2000);
    let common = |mode: &str, count: usize| {
        let mut args = worker_args(&emu, Some(&redis.url()), mode, count);
        args.extend([
            "--tts-concurrency".into(),
            "2".into(),
            "--lease-ms".into(),
            lease.as_millis().to_string(),
        ]);
        args
    };
    let mut holder = Worker::spawn(exe(), &common("hold", 2));
    assert!(
        holder.wait_for("held", Duration::from_secs(20)).is_some(),
        "the holder took both slots"
    );
    let mut others: Vec<Worker> = (0..2)
        .map(|_| Worker::spawn(exe(), &common("sync", 3)))
        .collect();
    // Both slots are held: nobody gets through while the holder lives (and renews).
    std::thread::sleep(lease + Duration::from_millis(500));
    for w in &mut others {
        assert!(
            w.wait_for("ok", Duration::ZERO).is_none(),
            "a call got through while both slots were held"
        );
    }
    let killed = Instant::now();
    holder.kill();
    let mut recovered = Vec::new();
    for w in &mut others {
        let at = w
            .wait_for("ok", lease + Duration::from_secs(10))
            .expect("the others continue after the holder dies");
        recovered.push(at.duration_since(killed));
    }
    let first = recovered.iter().min().copied().unwrap_or_default();
    eprintln!(
        "kill -9 of the holder of both slots (lease {lease:?}): the first call after it ended {:.0} ms later; both workers {:?}",
        first.as_secs_f64() * 1000.0,
        recovered
    );
    assert!(
        first <= lease + Duration::from_secs(1),
        "recovery took {first:?}, more than the lease {lease:?} + 1 s"
    );
    for w in others {
        let (lines, ok) = w.finish(Duration::from_secs(30));
        assert!(ok, "{lines:?}");
        assert_eq!(durations(&lines).len(), 3, "{lines:?}");
    }
}

/// The accepted STT requests' arrival times.
fn accepted_stt(emu: &RunningEmulator) -> (Vec<Instant>, usize) {
    let requests = emu.requests();
    let stt = requests
        .iter()
        .filter(|r| r.path.starts_with("/waves/v1/stt"));
    let mut accepted: Vec<Instant> = stt
        .clone()
        .filter(|r| r.status == 200)
        .map(|r| r.received)
        .collect();
    accepted.sort();
    (accepted, stt.filter(|r| r.status == 429).count())
}

fn stt_fleet(
    emu: &RunningEmulator,
    redis: Option<&str>,
    rate: (u32, Duration),
    workers: usize,
    count: usize,
) -> (usize, Duration) {
    let started = Instant::now();
    let spawned: Vec<Worker> = (0..workers)
        .map(|_| {
            let mut args = worker_args(emu, redis, "stt", count);
            args.extend([
                "--stt-rate".into(),
                rate.0.to_string(),
                "--stt-window-ms".into(),
                rate.1.as_millis().to_string(),
            ]);
            Worker::spawn(exe(), &args)
        })
        .collect();
    let mut calls = 0;
    for w in spawned {
        let (lines, ok) = w.finish(Duration::from_secs(120));
        assert!(ok, "{lines:?}");
        calls += durations(&lines).len();
    }
    (calls, started.elapsed())
}

#[test]
fn sixty_stt_calls_from_four_processes_at_120_rpm() {
    let Some(redis) = RedisServer::start("sixty_stt_calls_from_four_processes_at_120_rpm") else {
        return;
    };
    let emu = Emulator::builder().stt_rpm(120).spawn().expect("emulator");
    let (calls, elapsed) = stt_fleet(
        &emu,
        Some(&redis.url()),
        (120, Duration::from_secs(61)),
        4,
        15,
    );
    let (accepted, refused) = accepted_stt(&emu);
    let most = most_in_any_window(&accepted, Duration::from_secs(60));
    eprintln!(
        "60 STT calls from 4 processes at 120 RPM: {calls} calls in {:.2} s, {refused} refused (429), at most {most} in any 60 s",
        elapsed.as_secs_f64()
    );
    assert_eq!(calls, 60);
    assert_eq!(refused, 0);
    assert!(most <= 120, "{most}");
}

/// The same with a rate that binds: 40 calls at 10 per 2 s take four windows, and the
/// emulator (counting 10 per 2 s on arrival) never refuses one.
#[test]
fn a_binding_stt_rate_is_kept_by_four_processes() {
    let Some(redis) = RedisServer::start("a_binding_stt_rate_is_kept_by_four_processes") else {
        return;
    };
    let window = Duration::from_secs(2);
    let emu = Emulator::builder()
        .stt_rate(10, window)
        .spawn()
        .expect("emulator");
    // The limiter's window is longer by the margin between counting a request (before
    // it is sent) and the server counting it (when it arrives).
    let (calls, elapsed) = stt_fleet(
        &emu,
        Some(&redis.url()),
        (10, window + Duration::from_millis(200)),
        4,
        10,
    );
    let (accepted, refused) = accepted_stt(&emu);
    let most = most_in_any_window(&accepted, window);
    eprintln!(
        "40 STT calls from 4 processes at 10 per 2 s: {calls} calls in {:.2} s, {refused} refused (429), at most {most} in any 2 s",
        elapsed.as_secs_f64()
    );
    assert_eq!(calls, 40);
    assert_eq!(refused, 0);
    assert!(most <= 10, "{most}");
    // Four windows at least: the rate was kept by waiting, not by luck.
    assert!(elapsed >= window * 3, "{elapsed:?}");
}

#[test]
fn redis_stopped_mid_run_is_the_typed_error_or_the_local_fallback() {
    let Some(mut redis) = RedisServer::start("redis_stopped_mid_run") else {
        return;
    };
    let emu = tts_emulator(2);
    let url = redis.url();
    let args = |fallback: bool| {
        let mut args = worker_args(&emu, Some(&url), "sync", 40);
        args.extend(["--tts-concurrency".into(), "2".into()]);
        if fallback {
            args.push("--fallback".into());
        }
        args
    };
    let mut strict = Worker::spawn(exe(), &args(false));
    let mut lenient = Worker::spawn(exe(), &args(true));
    assert!(strict.wait_for("ok", Duration::from_secs(20)).is_some());
    assert!(lenient.wait_for("ok", Duration::from_secs(20)).is_some());
    let stopped = Instant::now();
    redis.stop();
    let (lines, ok) = strict.finish(Duration::from_secs(30));
    let error = lines
        .iter()
        .find_map(|(at, l)| l.strip_prefix("error: ").map(|e| (*at, e.to_owned())));
    let (at, error) = error.unwrap_or_else(|| panic!("the strict worker fails: {lines:?}"));
    eprintln!(
        "Redis stopped: the strict worker failed {:.0} ms later with: {error}",
        at.duration_since(stopped).as_secs_f64() * 1000.0
    );
    assert!(!ok);
    assert!(
        error.contains(&url),
        "the error names the Redis URL: {error}"
    );
    assert!(
        error.contains("SMALLEST_REDIS_URL"),
        "and says what to do: {error}"
    );
    let (lines, ok) = lenient.finish(Duration::from_secs(120));
    assert!(ok, "the fallback worker finishes its calls: {lines:?}");
    assert_eq!(durations(&lines).len(), 40);
}

/// Polls `future` to completion on this thread (the limits' thread wakes it), giving up
/// after `limit`.
fn wait<F: Future>(future: F, limit: Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
    None
}

#[test]
fn slots_are_first_come_first_served_and_a_dropped_waiter_leaves_the_queue() {
    let Some(redis) = RedisServer::start("slots_are_first_come_first_served") else {
        return;
    };
    let a = RedisLimits::builder(redis.url())
        .account("fifo")
        .build()
        .expect("limits");
    let b = RedisLimits::builder(redis.url())
        .account("fifo")
        .build()
        .expect("limits");
    let held = wait(a.tts_slot(), Duration::from_secs(5))
        .expect("free slot")
        .expect("no error");
    // b's first waiter asks, then is dropped (a cancelled call); a second b waiter and
    // an a waiter queue behind it.
    let mut gone = b.tts_slot();
    assert!(wait(gone.as_mut(), Duration::from_millis(300)).is_none());
    drop(gone);
    let mut second = b.tts_slot();
    assert!(wait(second.as_mut(), Duration::from_millis(300)).is_none());
    let mut third = a.tts_slot();
    assert!(wait(third.as_mut(), Duration::from_millis(300)).is_none());
    drop(held);
    // The slot goes to the earliest waiter still there: b's second, not a's.
    let got = wait(second, Duration::from_secs(5))
        .expect("the next waiter gets the slot")
        .expect("no error");
    assert!(wait(third.as_mut(), Duration::from_millis(300)).is_none());
    drop(got);
    let last = wait(third, Duration::from_secs(5))
        .expect("then the last one")
        .expect("no error");
    drop(last);
    // The STT rate: one model's budget is shared, another's is separate.
    let rate = RedisLimits::builder(redis.url())
        .account("rate")
        .stt_window(2, Duration::from_secs(30))
        .build()
        .expect("limits");
    let now = Instant::now();
    for _ in 0..2 {
        assert_eq!(
            wait(rate.stt_request("pulse", now), Duration::from_secs(5)).map(Result::ok),
            Some(Some(Rate::Granted))
        );
    }
    match wait(rate.stt_request("pulse", now), Duration::from_secs(5)) {
        Some(Ok(Rate::RetryIn(d))) => assert!(d > Duration::from_secs(25), "{d:?}"),
        other => panic!("the third request waits: {other:?}"),
    }
    assert_eq!(
        wait(rate.stt_request("pulse-pro", now), Duration::from_secs(5)).map(Result::ok),
        Some(Some(Rate::Granted))
    );
    // Live STT sessions: a semaphore of their own, shared the same way.
    let sessions = RedisLimits::builder(redis.url())
        .account("sessions")
        .stt_sessions(1)
        .build()
        .expect("limits");
    let other = RedisLimits::builder(redis.url())
        .account("sessions")
        .stt_sessions(1)
        .build()
        .expect("limits");
    let open = wait(sessions.stt_session(), Duration::from_secs(5))
        .expect("a free session")
        .expect("no error");
    // TTS slots of the same account are not taken by sessions.
    let tts = wait(other.tts_slot(), Duration::from_secs(5))
        .expect("a free TTS slot")
        .expect("no error");
    let mut next = other.stt_session();
    assert!(wait(next.as_mut(), Duration::from_millis(300)).is_none());
    drop(open);
    assert!(wait(next, Duration::from_secs(5)).is_some_and(|r| r.is_ok()));
    drop(tts);
    // Nothing of the URL's password, nor the account's key, in Debug.
    let debug = format!(
        "{:?}",
        RedisLimits::builder("redis://:hunter2@127.0.0.1:1/0").account("x")
    );
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn a_restarted_redis_is_used_again_and_held_leases_come_back() {
    let Some(mut redis) = RedisServer::start("a_restarted_redis_is_used_again") else {
        return;
    };
    let lease = Duration::from_millis(600);
    let holder = RedisLimits::builder(redis.url())
        .account("restart")
        .lease_ttl(lease)
        .build()
        .expect("limits");
    let other = RedisLimits::builder(redis.url())
        .account("restart")
        .lease_ttl(lease)
        .build()
        .expect("limits");
    let held = wait(holder.tts_slot(), Duration::from_secs(5))
        .expect("a free slot")
        .expect("no error");
    // Redis restarts empty: both processes' connections are dead.
    redis.restart();
    // The holder's next renewal (a third of the lease) puts its slot back.
    std::thread::sleep(lease);
    // The other process reconnects on its own (no error), and waits for the slot
    // that is held again.
    let mut next = other.tts_slot();
    assert!(
        wait(next.as_mut(), Duration::from_millis(500)).is_none(),
        "the held slot was restored after the restart"
    );
    drop(held);
    assert!(
        wait(next, Duration::from_secs(5)).is_some_and(|r| r.is_ok()),
        "then it is given back and taken"
    );
}
