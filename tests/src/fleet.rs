//! Fleets of `fleet_worker` processes sharing one account's limits through Redis: the
//! runs of `tests/fleet.rs` and of the measurements (`tests/measure.rs`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smallest_emulator::RunningEmulator;

/// One worker process and the lines it printed, each with when it was read.
pub struct Worker {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Worker {
    /// Starts `exe` (the `fleet_worker` binary) with `args`.
    pub fn spawn(exe: &Path, args: &[String]) -> Worker {
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fleet_worker starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Worker {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `limit`) for a line that starts with `prefix`; when it came.
    pub fn wait_for(&mut self, prefix: &str, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        if let Some((at, _)) = self.seen.iter().find(|(_, l)| l.starts_with(prefix)) {
            return Some(*at);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let found = line.starts_with(prefix);
                    self.seen.push((at, line));
                    if found {
                        return Some(at);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits (at most `limit`) for the process to end; its lines and whether it exited 0.
    /// A process still running then is killed, and counts as failed.
    pub fn finish(mut self, limit: Duration) -> (Vec<(Instant, String)>, bool) {
        let deadline = Instant::now() + limit;
        let ok = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break false;
                }
            }
        };
        // The reader thread ends with the pipe.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (self.seen, ok)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arguments of a worker.
pub fn worker_args(
    emu: &RunningEmulator,
    redis: Option<&str>,
    mode: &str,
    count: usize,
) -> Vec<String> {
    vec![
        "--base-url".into(),
        emu.base_url(),
        "--redis".into(),
        redis.unwrap_or("none").into(),
        "--mode".into(),
        mode.into(),
        "--count".into(),
        count.to_string(),
    ]
}

/// The durations (ms) of the `ok <ms>` lines.
pub fn durations(lines: &[(Instant, String)]) -> Vec<f64> {
    lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("ok ")?.trim().parse().ok())
        .collect()
}

/// The median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// What a fleet run of TTS calls gave.
#[derive(Debug)]
pub struct TtsFleetReport {
    /// Calls that succeeded, over all workers.
    pub calls: usize,
    /// Workers that exited with an error.
    pub failed_workers: usize,
    /// TTS requests the emulator answered `429`.
    pub refused: usize,
    /// The whole run.
    pub elapsed: Duration,
    /// The sum over all calls of one uncontended call's time of its kind, divided by
    /// the account's concurrency.
    pub ideal: Duration,
}

/// The median time of one uncontended call of `mode` (after one warm-up), with the
/// limits of this process only.
pub fn service_time(exe: &Path, emu: &RunningEmulator, mode: &str) -> f64 {
    let worker = Worker::spawn(exe, &worker_args(emu, None, mode, 9));
    let (lines, ok) = worker.finish(Duration::from_secs(60));
    assert!(ok, "the service-time worker of {mode} failed: {lines:?}");
    median(&durations(&lines)[1..])
}

/// `workers` processes, worker `i` making `count` calls of `modes[i % modes.len()]`,
/// all through the Redis at `redis` with the account's concurrency `concurrency`
/// (what the emulator allows too).
pub fn tts_fleet(
    exe: &Path,
    emu: &RunningEmulator,
    redis: &str,
    concurrency: usize,
    workers: usize,
    count: usize,
    modes: &[&str],
) -> TtsFleetReport {
    let mut service = Vec::new();
    for mode in modes {
        service.push(service_time(exe, emu, mode));
    }
    let before = emu.requests().len();
    let started = Instant::now();
    let spawned: Vec<Worker> = (0..workers)
        .map(|i| {
            let mut args = worker_args(emu, Some(redis), modes[i % modes.len()], count);
            args.extend(["--tts-concurrency".into(), concurrency.to_string()]);
            Worker::spawn(exe, &args)
        })
        .collect();
    let mut calls = 0;
    let mut failed_workers = 0;
    for worker in spawned {
        let (lines, ok) = worker.finish(Duration::from_secs(300));
        calls += durations(&lines).len();
        if !ok {
            failed_workers += 1;
            eprintln!("a worker failed: {lines:?}");
        }
    }
    let elapsed = started.elapsed();
    let refused = emu
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.path.starts_with("/waves/v1/tts") && r.status == 429)
        .count();
    let total_ms: f64 = (0..workers)
        .map(|i| service[i % modes.len()] * count as f64)
        .sum();
    TtsFleetReport {
        calls,
        failed_workers,
        refused,
        elapsed,
        ideal: Duration::from_secs_f64(total_ms / 1000.0 / concurrency as f64),
    }
}

/// The most requests of `times` (sorted) inside any `window`.
pub fn most_in_any_window(times: &[Instant], window: Duration) -> usize {
    let mut most = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}
