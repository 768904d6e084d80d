//! `tts_bench_client`: sequential synchronous TTS through one of our clients, for
//! `cargo xtask bench python`, which compares it with the vendor's Python SDK.
//!
//! ```text
//! SMALLEST_API_KEY=sk_... tts_bench_client --transport hyper|blocking --base-url URL
//!     --requests N [--warmup N] [--text TEXT] [--voice VOICE] [--sample-rate HZ]
//! ```
//!
//! It sends `--warmup` untimed requests, then `--requests` timed ones, one after
//! another, each a `client.synthesize(..)` of the same WAV request, and prints one line:
//!
//! ```text
//! requests=2000 cpu_ns=… wall_ns=… peak_rss_kib=… audio_bytes=…
//! ```
//!
//! `cpu_ns` is this process's CPU time (user + system, every thread) spent in the timed
//! requests only; `peak_rss_kib` is the process's peak resident set (`VmHWM`) at the
//! end. The emulator runs in another process, so neither number includes the server.
//! `xtask/bench/python_tts.py` prints the same line for the Python SDK.

use std::process::ExitCode;
use std::time::Instant;

use smallest_core::{ApiKey, Audio, Config, Error, OutputFormat, TtsRequest};

/// What the run was asked to do.
struct Options {
    transport: Transport,
    base_url: String,
    requests: u64,
    warmup: u64,
    text: String,
    voice: String,
    sample_rate: u32,
}

#[derive(Clone, Copy)]
enum Transport {
    Hyper,
    /// The same client on a current-thread runtime: what a sequential caller picks.
    HyperCurrentThread,
    /// `smallest-async` on smol (`smol::block_on`, smol's reactor thread).
    Smol,
    Blocking,
}

const USAGE: &str = "usage: tts_bench_client --transport hyper|hyper-current-thread|smol|blocking --base-url URL --requests N \
[--warmup N] [--text TEXT] [--voice VOICE] [--sample-rate HZ]  (key: SMALLEST_API_KEY)";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        transport: Transport::Hyper,
        base_url: String::new(),
        requests: 0,
        warmup: 50,
        text: "Hello from Waves TTS.".to_owned(),
        voice: "meher".to_owned(),
        sample_rate: 24_000,
    };
    let mut transport = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--transport" => {
                transport = Some(match value()?.as_str() {
                    "hyper" => Transport::Hyper,
                    "hyper-current-thread" => Transport::HyperCurrentThread,
                    "smol" => Transport::Smol,
                    "blocking" => Transport::Blocking,
                    other => {
                        return Err(format!(
                            "--transport: hyper, hyper-current-thread, smol or blocking, not {other}"
                        ));
                    }
                });
            }
            "--base-url" => options.base_url = value()?,
            "--requests" => options.requests = number(&arg, &value()?)?,
            "--warmup" => options.warmup = number(&arg, &value()?)?,
            "--text" => options.text = value()?,
            "--voice" => options.voice = value()?,
            "--sample-rate" => options.sample_rate = number(&arg, &value()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    options.transport = transport.ok_or("--transport is required")?;
    if options.base_url.is_empty() || options.requests == 0 {
        return Err("--base-url and --requests (> 0) are required".to_owned());
    }
    Ok(options)
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{name}: not a number: {value}"))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("tts_bench_client: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tts_bench_client: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<String, String> {
    let config = Config::new(ApiKey::from_env().map_err(|e| e.to_string())?)
        .with_base_url(&options.base_url)
        .map_err(|e| e.to_string())?;
    let request = TtsRequest::new(options.text.as_str(), options.voice.as_str())
        .sample_rate(options.sample_rate)
        .output_format(OutputFormat::Wav);
    // Both clients as users build them: default retry policy, time limits and TTS
    // limiter. A failed request ends the run: a number made of errors is no number.
    match options.transport {
        Transport::Hyper => {
            let client = smallest_hyper::Client::builder(config)
                .build()
                .map_err(|e| e.to_string())?;
            // What `#[tokio::main]` gives an application: the multi-threaded runtime
            // with one worker per core. Its idle workers' wake-ups are part of the
            // cost a user pays, so they are measured too.
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
            measure(options, || runtime.block_on(client.synthesize(&request)))
        }
        Transport::HyperCurrentThread => {
            let client = smallest_hyper::Client::builder(config)
                .build()
                .map_err(|e| e.to_string())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
            measure(options, || runtime.block_on(client.synthesize(&request)))
        }
        Transport::Smol => {
            use smallest_async::BuildOn as _;
            let client = smallest_async::Client::builder(config)
                .build_on(smallest_async::SmolRuntime)
                .map_err(|e| e.to_string())?;
            measure(options, || smol::block_on(client.synthesize(&request)))
        }
        Transport::Blocking => {
            let client = smallest_blocking::Client::builder(config)
                .build()
                .map_err(|e| e.to_string())?;
            measure(options, || client.synthesize(&request))
        }
    }
}

/// Warms up, then times `options.requests` calls of `synthesize` and formats the line.
fn measure(
    options: &Options,
    mut synthesize: impl FnMut() -> Result<Audio, Error>,
) -> Result<String, String> {
    let mut audio_bytes = None;
    let mut once = || -> Result<(), String> {
        let audio = synthesize().map_err(|e| format!("synthesize failed: {e}"))?;
        let len = audio.bytes().len();
        // The same request must give the same audio every time; xtask also checks
        // that every client got the same number of bytes.
        match audio_bytes {
            None if len > 0 => audio_bytes = Some(len),
            Some(first) if first == len => {}
            _ => return Err(format!("unexpected audio length {len} ({audio_bytes:?})")),
        }
        Ok(())
    };
    // The warm-up opens the pooled connection and lets the allocator and the runtime
    // reach their steady state, so the timed loop sees only per-request cost.
    for _ in 0..options.warmup {
        once()?;
    }
    let cpu_before = process_cpu_ns();
    let wall = Instant::now();
    for _ in 0..options.requests {
        once()?;
    }
    let wall_ns = wall.elapsed().as_nanos();
    let cpu_ns = process_cpu_ns() - cpu_before;
    let peak_rss_kib = peak_rss_kib()?;
    Ok(format!(
        "requests={} cpu_ns={cpu_ns} wall_ns={wall_ns} peak_rss_kib={peak_rss_kib} audio_bytes={}",
        options.requests,
        audio_bytes.unwrap_or(0)
    ))
}

/// User + system CPU time of the whole process (all threads, also ones that exited), in
/// nanoseconds: `CLOCK_PROCESS_CPUTIME_ID`, the same counter `getrusage(RUSAGE_SELF)`
/// reports in microseconds and `/proc/self/stat` in 10 ms ticks, far too coarse for a
/// run of a few hundred milliseconds. Python's `time.process_time_ns()` reads it too.
fn process_cpu_ns() -> i128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// The process's peak resident set size, `VmHWM` in `/proc/self/status`, in KiB.
fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_owned())
}
