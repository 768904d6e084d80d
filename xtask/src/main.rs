//! Repository automation, in Rust rather than shell: `cargo xtask <task>`.
//!
//! - `ci`: exactly what `.ci/run` runs — fmt, clippy `-D warnings`, the README's test
//!   command (`cargo test --workspace`: unit, integration and doc tests), rustdoc with
//!   warnings denied, and the dependency-purity checks.
//! - `purity`: only the dependency-purity checks.
//! - `bench`: the benchmarks (release builds): decode throughput, then the `#[ignore]`d
//!   measurement tests of the scenarios crate (time to first chunk, peak memory of long
//!   streams and large uploads, live latencies), which print their numbers, then
//!   `bench python`.
//! - `bench python [--requests N] [--runs N]`: only the comparison with the vendor's
//!   Python SDK (see [`mod@bench_python`]); installs it into a venv in the target directory.
//! - `fuzz [SECONDS]`: every cargo-fuzz target for SECONDS each (default 60), on the
//!   nightly toolchain; installs cargo-fuzz when it is missing.

use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench_python;
use bench_python::{PythonBench, bench_python};

/// The README's test command. `.ci/run` reaches it through `cargo xtask ci`.
const TEST_COMMAND: &[&str] = &["test", "--workspace"];

/// Crates that must never appear in the normal dependency tree of `smallest-core`.
const CORE_FORBIDDEN: &[&str] = &["tokio", "hyper", "ureq", "mio", "socket2", "tungstenite"];

/// Crates that must never appear in the normal dependency tree of `smallest-blocking`.
const BLOCKING_FORBIDDEN: &[&str] = &["tokio", "mio"];

const USAGE: &str = "usage: cargo xtask <ci | purity | bench | bench python [--requests N] [--runs N] | fuzz [SECONDS]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["ci"] => ci(),
        ["purity"] => purity(),
        ["bench"] => bench(),
        ["bench", "python", options @ ..] => match PythonBench::parse(options) {
            Ok(options) => bench_python(&options),
            Err(message) => Err(format!("{message}\n{USAGE}")),
        },
        ["fuzz"] => fuzz("60"),
        ["fuzz", seconds] => fuzz(seconds),
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
    step(
        "rustdoc",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    purity()
}

/// The fuzz targets in `fuzz/fuzz_targets`.
const FUZZ_TARGETS: &[&str] = &["sse", "error_body", "stt_response", "ws_message"];

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

fn fuzz(seconds: &str) -> Result<(), String> {
    let seconds: u32 = seconds
        .parse()
        .map_err(|_| format!("fuzz takes a number of seconds, got {seconds:?}"))?;
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
    for target in FUZZ_TARGETS {
        let status = Command::new("cargo")
            .current_dir("fuzz")
            .args([
                "+nightly",
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
            ])
            .status()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!("fuzz target {target} failed ({status})"));
        }
    }
    Ok(())
}

fn purity() -> Result<(), String> {
    check_tree("smallest-core", CORE_FORBIDDEN)?;
    check_tree("smallest-blocking", BLOCKING_FORBIDDEN)?;
    check_tree("smallest-net", BLOCKING_FORBIDDEN)?;
    println!(
        "purity: ok (smallest-core free of {CORE_FORBIDDEN:?}; smallest-blocking and \
         smallest-net free of {BLOCKING_FORBIDDEN:?})"
    );
    Ok(())
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
