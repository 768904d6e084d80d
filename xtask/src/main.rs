//! Repository automation, in Rust rather than shell: `cargo xtask <task>`.
//!
//! - `ci`: exactly what `.ci/run` runs — fmt, clippy `-D warnings`, the README's test
//!   command (`cargo test --workspace`: unit, integration and doc tests), every example
//!   against the emulator, rustdoc with warnings denied, `cargo package` of every
//!   publishable crate, and the dependency-purity checks.
//! - `purity`: only the dependency-purity checks (incl. smallest-async on smol: no
//!   tokio runtime, no mio).
//! - `examples`: only the examples, each run against the emulator.
//! - `bench`: the benchmarks (release builds): decode throughput, then the `#[ignore]`d
//!   measurement tests of the scenarios crate (time to first chunk, peak memory of long
//!   streams and large uploads, live latencies), which print their numbers, then
//!   `bench python`.
//! - `bench python [--requests N] [--runs N]`: only the comparison with the vendor's
//!   Python SDK (see [`mod@bench_python`]); installs it into a venv in the target directory.
//! - `fuzz [SECONDS]`: every cargo-fuzz target for 1,000,000 executions each (stopping
//!   early at SECONDS per target when given), on the nightly toolchain, then a table of
//!   executions, time and outcome per target; installs cargo-fuzz when it is missing.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod bench_python;
mod examples;
use bench_python::{PythonBench, bench_python};

/// The README's test command. `.ci/run` reaches it through `cargo xtask ci`.
const TEST_COMMAND: &[&str] = &["test", "--workspace"];

/// Crates that must never appear in the normal dependency tree of `smallest-core`.
const CORE_FORBIDDEN: &[&str] = &["tokio", "hyper", "ureq", "mio", "socket2", "tungstenite"];

/// Crates that must never appear in the normal dependency tree of `smallest-blocking`.
const BLOCKING_FORBIDDEN: &[&str] = &["tokio", "mio"];

const USAGE: &str = "usage: cargo xtask <ci | purity | examples | bench | bench python [--requests N] [--runs N] | fuzz [SECONDS]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["ci"] => ci(),
        ["purity"] => purity(),
        ["examples"] => examples::examples(),
        ["bench"] => bench(),
        ["bench", "python", options @ ..] => match PythonBench::parse(options) {
            Ok(options) => bench_python(&options),
            Err(message) => Err(format!("{message}\n{USAGE}")),
        },
        ["fuzz"] => fuzz(None),
        ["fuzz", seconds] => fuzz(Some(seconds)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> Result<(), String> {
    step("fmt", &["fmt", "--all", "--", "--check"], &[])?;
    step(
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    step("test", TEST_COMMAND, &[])?;
    examples::examples()?;
    step(
        "rustdoc",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    package()?;
    purity()
}

/// The fuzz targets in `fuzz/fuzz_targets`.
const FUZZ_TARGETS: &[&str] = &[
    "sse",
    "error_body",
    "stt_response",
    "ws_message",
    "call",
    "live_driver",
    "upload_counter",
];

/// The executions of each target in `cargo xtask fuzz`.
const FUZZ_RUNS: u64 = 1_000_000;

fn bench() -> Result<(), String> {
    step(
        "decode",
        &["bench", "-p", "smallest-core", "--bench", "decode"],
        &[],
    )?;
    step(
        "measurements",
        &[
            "test",
            "--release",
            "-p",
            "smallest-tests",
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ],
        &[],
    )?;
    bench_python(&PythonBench::default())
}

/// Runs every target for [`FUZZ_RUNS`] executions (or until `cap` seconds per target),
/// then prints executions, wall time and outcome per target. Fails if any target
/// crashed, or fell short of its executions without a cap.
fn fuzz(cap: Option<&str>) -> Result<(), String> {
    let cap: Option<u32> = cap
        .map(|s| s.parse())
        .transpose()
        .map_err(|_| format!("fuzz takes a time cap in seconds, got {cap:?}"))?;
    let installed = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        step(
            "install cargo-fuzz",
            &["install", "cargo-fuzz", "--locked"],
            &[],
        )?;
    }
    // Build every target first, so that the times below are the fuzzing's alone.
    let status = Command::new("cargo")
        .current_dir("fuzz")
        .args(["+nightly", "fuzz", "build"])
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    if !status.success() {
        return Err(format!("cargo fuzz build failed ({status})"));
    }
    let mut results = Vec::new();
    for target in FUZZ_TARGETS {
        let mut args = vec![
            "+nightly".to_owned(),
            "fuzz".to_owned(),
            "run".to_owned(),
            (*target).to_owned(),
            "--".to_owned(),
            format!("-runs={FUZZ_RUNS}"),
        ];
        if let Some(seconds) = cap {
            args.push(format!("-max_total_time={seconds}"));
        }
        println!("==> fuzz {target}: cargo {}", args.join(" "));
        let started = Instant::now();
        let mut child = Command::new("cargo")
            .current_dir("fuzz")
            .args(&args)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        // libFuzzer reports on stderr: pass it through, keeping its count of executions
        // ("Done N runs in …" at the end, "#N …" on the way, for a crash).
        let mut runs = None;
        if let Some(stderr) = child.stderr.take() {
            for line in BufReader::new(stderr).lines() {
                let line = line.map_err(|e| format!("cannot read cargo fuzz: {e}"))?;
                eprintln!("{line}");
                let count = match line.strip_prefix("Done ") {
                    Some(rest) => rest.split_whitespace().next(),
                    None => line
                        .strip_prefix('#')
                        .and_then(|r| r.split_whitespace().next()),
                };
                if let Some(n) = count.and_then(|n| n.parse::<u64>().ok()) {
                    runs = Some(n);
                }
            }
        }
        let status = child
            .wait()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let outcome = if !status.success() {
            format!("FAILED ({status}): see fuzz/artifacts/{target}/")
        } else if runs.is_some_and(|n| n >= FUZZ_RUNS) {
            "ok".to_owned()
        } else {
            "ok, stopped by the time cap".to_owned()
        };
        println!(
            "<== fuzz {target}: {} executions in {seconds:.1} s: {outcome}",
            runs.map_or("?".to_owned(), |n| n.to_string())
        );
        results.push((*target, runs, seconds, status.success()));
    }
    println!("\n| target | executions | wall time | outcome |\n|---|---:|---:|---|");
    for (target, runs, seconds, ok) in &results {
        let runs = runs.map_or("?".to_owned(), |n| n.to_string());
        let outcome = if *ok { "no crash" } else { "CRASH" };
        println!("| {target} | {runs} | {seconds:.1} s | {outcome} |");
    }
    let crashed: Vec<&str> = results.iter().filter(|r| !r.3).map(|r| r.0).collect();
    if !crashed.is_empty() {
        return Err(format!("fuzz targets failed: {crashed:?}"));
    }
    let short: Vec<&str> = results
        .iter()
        .filter(|r| r.1.is_none_or(|n| n < FUZZ_RUNS))
        .map(|r| r.0)
        .collect();
    if cap.is_none() && !short.is_empty() {
        return Err(format!(
            "fuzz targets ran fewer than {FUZZ_RUNS} executions: {short:?}"
        ));
    }
    Ok(())
}

/// Packages every publishable crate the way `cargo publish` would (workspace packaging,
/// so the path dependencies between our crates resolve before any is published). Not
/// verified by a rebuild: the test step already built every crate.
fn package() -> Result<(), String> {
    let args = [
        "package",
        "--workspace",
        "--exclude",
        "smallest-tests",
        "--exclude",
        "xtask",
        "--no-verify",
        // What is checked is the manifests and what goes into each package, not
        // whether the work tree is committed (a developer runs this before committing).
        "--allow-dirty",
    ];
    step("package", &args, &[])
}

fn purity() -> Result<(), String> {
    check_tree("smallest-core", CORE_FORBIDDEN)?;
    check_tree("smallest-blocking", BLOCKING_FORBIDDEN)?;
    check_tree("smallest-net", BLOCKING_FORBIDDEN)?;
    check_tree("smallest-redis", BLOCKING_FORBIDDEN)?;
    check_smol_build()?;
    println!(
        "purity: ok (smallest-core free of {CORE_FORBIDDEN:?}; smallest-blocking, \
         smallest-net and smallest-redis free of {BLOCKING_FORBIDDEN:?}; smallest-async with `smol` free of mio \
         and of tokio's runtime (`rt`, `net`))"
    );
    Ok(())
}

/// `smallest-async` built for smol alone: no `mio`, and tokio (which hyper uses for its
/// `sync` primitives) without its runtime or its sockets.
fn check_smol_build() -> Result<(), String> {
    let args = [
        "tree",
        "-p",
        "smallest-async",
        "--no-default-features",
        "--features",
        "smol,webpki-roots",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p} [{f}]",
    ];
    let output = Command::new(cargo())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let mut found = Vec::new();
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let features = line
            .rsplit_once('[')
            .map(|(_, f)| f.trim_end_matches(']'))
            .unwrap_or_default();
        let runtime = features
            .split(',')
            .any(|f| matches!(f.trim(), "rt" | "rt-multi-thread" | "net"));
        if name == "mio" || (name == "tokio" && runtime) {
            found.push(line.to_owned());
        }
    }
    found.dedup();
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "smallest-async (feature smol) pulls in a tokio runtime or mio: {found:?}"
        ))
    }
}

/// Fails if any crate named in `forbidden` is in `package`'s normal dependency tree.
fn check_tree(package: &str, forbidden: &[&str]) -> Result<(), String> {
    let output = Command::new(cargo())
        .args([
            "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree -p {package} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            forbidden
                .iter()
                .any(|f| name == f || name.starts_with(&format!("{f}-")))
        })
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("{package} depends on forbidden crates: {found:?}"))
    }
}

fn step(name: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    println!("==> {name}: cargo {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(cargo())
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    println!(
        "<== {name}: {status} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("step `{name}` failed ({status})"))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
