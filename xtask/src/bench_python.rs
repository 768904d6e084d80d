//! `cargo xtask bench python`: our two transports against the vendor's official Python
//! SDK (`pip install smallestai`), on the same local emulator: sequential synchronous
//! TTS, measuring each client's CPU time per request and peak RSS.
//!
//! Each client runs as its own process — `tts_bench_client` (tests crate) for
//! `smallest-hyper` and `smallest-blocking`, `xtask/bench/python_tts.py` for the SDK —
//! and the emulator runs as another, so a client's numbers are its own: its process CPU
//! clock (user + system) around the timed requests, and its `VmHWM`. Both programs
//! print the same `key=value` line, parsed here.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{cargo, step};

/// The request every client sends: the vendor's own cURL example's text, at its sample
/// rate and format (WAV, which the Python SDK also asks for with `Accept: audio/wav`).
const TEXT: &str = "Hello from Waves TTS.";
const VOICE: &str = "meher";
const SAMPLE_RATE: &str = "24000";

/// Untimed requests before each timed loop (the clients take it as `--warmup`).
const WARMUP: &str = "50";

/// Any `sk_` key: the emulator is started without `--key`, so it accepts every token.
const KEY: &str = "sk_bench_python_comparison";

/// What pip installs. Unpinned on purpose: the comparison is with the SDK users get
/// today; the table names the version that was measured.
const PYTHON_SDK: &str = "smallestai";

/// The options of `cargo xtask bench python`.
pub(crate) struct PythonBench {
    requests: u32,
    runs: u32,
}

impl Default for PythonBench {
    fn default() -> Self {
        // Best of 3 runs of 2,000 calls: long enough that a run takes seconds of wall
        // time per client, short enough that the whole comparison takes about a minute.
        PythonBench {
            requests: 2000,
            runs: 3,
        }
    }
}

impl PythonBench {
    pub(crate) fn parse(args: &[&str]) -> Result<Self, String> {
        let mut options = PythonBench::default();
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            let value = args
                .next()
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("{arg} needs a positive number"))?;
            match arg {
                "--requests" => options.requests = value,
                "--runs" => options.runs = value,
                other => return Err(format!("bench python: unknown option {other}")),
            }
        }
        Ok(options)
    }
}

/// The clients, in the order they run in each round.
#[derive(Clone, Copy, PartialEq)]
enum Client {
    Hyper,
    HyperCurrentThread,
    Smol,
    Blocking,
    Python,
}

impl Client {
    const ALL: [Client; 5] = [
        Client::Hyper,
        Client::HyperCurrentThread,
        Client::Smol,
        Client::Blocking,
        Client::Python,
    ];

    fn label(self) -> &'static str {
        match self {
            Client::Hyper => "`smallest-hyper` (tokio multi-thread runtime)",
            Client::HyperCurrentThread => "`smallest-hyper` (tokio current-thread runtime)",
            Client::Smol => "`smallest-async` (smol)",
            Client::Blocking => "`smallest-blocking` (ureq)",
            Client::Python => "Python `smallestai` (`SmallestAI().waves.synthesize_tts`)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Client::Hyper => "hyper",
            Client::HyperCurrentThread => "hyper-current-thread",
            Client::Smol => "smol",
            Client::Blocking => "blocking",
            Client::Python => "python",
        }
    }
}

/// One run of one client, as its `key=value` line reports it.
#[derive(Clone, Copy)]
struct Sample {
    cpu_ns: u64,
    wall_ns: u64,
    peak_rss_kib: u64,
    audio_bytes: u64,
}

impl Sample {
    fn parse(line: &str, requests: u32) -> Result<Sample, String> {
        let field = |name: &str| -> Result<u64, String> {
            line.split_whitespace()
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no {name} in the client's output {line:?}"))
        };
        if field("requests")? != u64::from(requests) {
            return Err(format!(
                "the client ran another number of requests: {line:?}"
            ));
        }
        Ok(Sample {
            cpu_ns: field("cpu_ns")?,
            wall_ns: field("wall_ns")?,
            peak_rss_kib: field("peak_rss_kib")?,
            audio_bytes: field("audio_bytes")?,
        })
    }
}

/// Builds the two binaries, prepares the venv, starts the emulator, runs every client
/// `runs` times (round-robin, so that a machine that drifts affects all of them alike)
/// and prints the table.
pub(crate) fn bench_python(options: &PythonBench) -> Result<(), String> {
    step(
        "bench python: build",
        &[
            "build",
            "--release",
            "-p",
            "smallest-emulator",
            "--bin",
            "smallest-emulator",
            "-p",
            "smallest-tests",
            "--bin",
            "tts_bench_client",
        ],
        &[],
    )?;
    let root = workspace_root();
    let target = target_dir()?;
    let release = target.join("release");
    let venv = target.join("bench-venv");
    let python = ensure_venv(&venv)?;
    let python_version = capture(
        Command::new(&python).args(["-c", "import platform; print(platform.python_version())"]),
    )?;
    let sdk_version = capture(Command::new(&python).args([
        "-c",
        "import importlib.metadata as m; print(m.version('smallestai'))",
    ]))?;

    let emulator = EmulatorProcess::start(
        &release.join("smallest-emulator"),
        // The clients run one request at a time, but a client may start its next
        // request before the server has released the previous one's slot: room
        // for several keeps a 429 (and a client's retry) out of the numbers.
        &["--tts-concurrency", "16"],
    )?;
    let base_url = emulator.base_url.clone();
    let requests = options.requests.to_string();
    let common = [
        "--base-url",
        base_url.as_str(),
        "--requests",
        requests.as_str(),
        "--warmup",
        WARMUP,
        "--text",
        TEXT,
        "--voice",
        VOICE,
        "--sample-rate",
        SAMPLE_RATE,
    ];
    let script = root.join("xtask/bench/python_tts.py");
    let command = |client: Client| {
        let mut command = match client {
            Client::Python => {
                let mut c = Command::new(&python);
                c.arg(&script);
                c
            }
            rust => {
                let mut c = Command::new(release.join("tts_bench_client"));
                c.args(["--transport", rust.short()]);
                c
            }
        };
        command
            .args(common)
            .env("SMALLEST_API_KEY", KEY)
            // The SDK's telemetry belongs to its CLI, but make sure nothing of it runs.
            .env("SMALLESTAI_TELEMETRY", "0")
            .env("DO_NOT_TRACK", "1");
        command
    };

    println!(
        "==> bench python: {} runs of {} sequential requests per client after {WARMUP} warm-up requests (load average {})",
        options.runs,
        options.requests,
        load_average()
    );
    let mut samples: Vec<(Client, Vec<Sample>)> =
        Client::ALL.iter().map(|&c| (c, Vec::new())).collect();
    for run in 1..=options.runs {
        for (client, runs) in &mut samples {
            let line = capture(&mut command(*client))?;
            let sample = Sample::parse(&line, options.requests)?;
            println!(
                "    run {run}/{}: {:<8} {:>8.1} µs/request CPU, {:>6.1} MiB peak RSS",
                options.runs,
                client.short(),
                per_request_us(sample.cpu_ns, options.requests),
                mib(sample.peak_rss_kib)
            );
            runs.push(sample);
        }
    }
    drop(emulator);

    // The same request must have given the same audio to every client; otherwise the
    // clients did not do the same work and the comparison means nothing.
    let audio_bytes = samples[0].1[0].audio_bytes;
    if let Some((client, _)) = samples
        .iter()
        .find(|(_, runs)| runs.iter().any(|s| s.audio_bytes != audio_bytes))
    {
        return Err(format!(
            "{} received another audio length than {audio_bytes} bytes",
            client.short()
        ));
    }

    print_table(
        options,
        &samples,
        audio_bytes,
        &sdk_version,
        &python_version,
    );
    Ok(())
}

fn print_table(
    options: &PythonBench,
    samples: &[(Client, Vec<Sample>)],
    audio_bytes: u64,
    sdk_version: &str,
    python_version: &str,
) {
    // Best of the runs: the least disturbed run of each client is the closest to what
    // the client itself costs on a shared machine.
    let best = |runs: &[Sample], f: fn(&Sample) -> u64| runs.iter().map(f).min().unwrap_or(0);
    let cpu_us = |runs: &[Sample]| per_request_us(best(runs, |s| s.cpu_ns), options.requests);
    let rss_mib = |runs: &[Sample]| mib(best(runs, |s| s.peak_rss_kib));
    let python = samples
        .iter()
        .find(|(c, _)| *c == Client::Python)
        .map(|(_, runs)| (cpu_us(runs), rss_mib(runs)))
        .unwrap_or((0.0, 0.0));

    println!();
    println!(
        "Sequential sync TTS (`POST /waves/v1/tts`), {TEXT:?} in voice `{VOICE}`, {SAMPLE_RATE} Hz WAV \
({audio_bytes} bytes); {} requests after {WARMUP} warm-up, best of {} runs; \
smallestai {sdk_version} on Python {python_version}. CPU = the client process's user + system time.",
        options.requests, options.runs
    );
    println!();
    println!(
        "| client | CPU per request | all runs (µs) | wall per request | peak RSS | Python CPU ÷ this | Python RSS ÷ this |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (client, runs) in samples {
        let all: Vec<String> = runs
            .iter()
            .map(|s| format!("{:.0}", per_request_us(s.cpu_ns, options.requests)))
            .collect();
        println!(
            "| {} | {:.1} µs | {} | {:.1} µs | {:.1} MiB | {:.1}× | {:.1}× |",
            client.label(),
            cpu_us(runs),
            all.join(", "),
            per_request_us(best(runs, |s| s.wall_ns), options.requests),
            rss_mib(runs),
            python.0 / cpu_us(runs),
            python.1 / rss_mib(runs),
        );
    }
    println!();
    println!(
        "Target (issue): each Rust transport at most 1/10 of Python's CPU per request (ratio ≥ 10×) and 1/5 of its peak RSS (ratio ≥ 5×)."
    );
    for (client, runs) in samples.iter().filter(|(c, _)| *c != Client::Python) {
        let (cpu, rss) = (python.0 / cpu_us(runs), python.1 / rss_mib(runs));
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "- {}: CPU {cpu:.1}× ({}), RSS {rss:.1}× ({})",
            client.short(),
            verdict(cpu >= 10.0),
            verdict(rss >= 5.0)
        );
    }
}

fn per_request_us(total_ns: u64, requests: u32) -> f64 {
    total_ns as f64 / 1000.0 / f64::from(requests)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The emulator in its own process, killed when dropped (also on an early `?` return),
/// so no run leaves a server behind.
pub(crate) struct EmulatorProcess {
    child: Child,
    pub(crate) base_url: String,
}

impl EmulatorProcess {
    /// Starts `binary` with `args` and reads the base URL it prints first.
    pub(crate) fn start(binary: &Path, args: &[&str]) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let first_line = child.stdout.take().and_then(|stdout| {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).ok()?;
            Some(line.trim().to_owned())
        });
        let emulator = EmulatorProcess {
            child,
            base_url: first_line.unwrap_or_default(),
        };
        if !emulator.base_url.starts_with("http://") {
            return Err(format!(
                "the emulator did not print its base URL (got {:?})",
                emulator.base_url
            ));
        }
        Ok(emulator)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv's interpreter, after creating the venv and installing the SDK when either is
/// missing. `BENCH_PYTHON` chooses the interpreter that creates the venv (default
/// `python3`).
fn ensure_venv(venv: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let base = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        println!("==> bench python: {base} -m venv {}", venv.display());
        let status = Command::new(&base)
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .map_err(|e| {
                format!(
                    "cannot run {base} ({e}): the Python comparison needs Python 3.9 or newer \
with its venv module; install it or set BENCH_PYTHON to an interpreter"
                )
            })?;
        if !status.success() || !python.exists() {
            return Err(format!(
                "`{base} -m venv {}` failed ({status}); on Debian or Ubuntu, install python3-venv",
                venv.display()
            ));
        }
    }
    let has_sdk = Command::new(&python)
        .args(["-c", "import smallestai"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        println!("==> bench python: pip install {PYTHON_SDK}");
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                PYTHON_SDK,
            ])
            .status()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        if !status.success() {
            return Err(format!(
                "pip install {PYTHON_SDK} failed ({status}); remove {} to start over",
                venv.display()
            ));
        }
    }
    Ok(python)
}

/// Runs `command` and returns its standard output, trimmed; its standard error only
/// when it failed.
fn capture(command: &mut Command) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if !output.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The workspace root: the parent of this crate's directory, wherever cargo was run.
pub(crate) fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Cargo's target directory as cargo itself resolves it (`CARGO_TARGET_DIR`, config
/// files, or `target/`), from `cargo metadata`.
pub(crate) fn target_dir() -> Result<PathBuf, String> {
    let metadata = capture(Command::new(cargo()).current_dir(workspace_root()).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    // xtask has no dependencies; the one field needed is a plain JSON string.
    let key = "\"target_directory\":\"";
    let start = metadata
        .find(key)
        .map(|i| i + key.len())
        .ok_or("no target_directory in cargo metadata")?;
    let end = metadata[start..]
        .find('"')
        .ok_or("no target_directory in cargo metadata")?;
    let path = &metadata[start..start + end];
    if path.contains('\\') {
        return Err(format!(
            "target directory {path:?} has escaped characters; set CARGO_TARGET_DIR to a plain path"
        ));
    }
    Ok(PathBuf::from(path))
}

/// The 1-minute load average, to tell how busy the shared machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
