//! `cargo xtask examples` (and a step of `cargo xtask ci`): every runnable example of
//! the crates, against the emulator in its own process, as a user runs them
//! (`cargo run --example …` with `SMALLEST_API_KEY` and `SMALLEST_BASE_URL`). An
//! example that exits non-zero fails the step.

use std::process::Command;
use std::time::Instant;

use crate::bench_python::{EmulatorProcess, target_dir, workspace_root};
use crate::cargo;

/// The key the emulator accepts for the examples.
const KEY: &str = "sk_examples_0123456789";

/// `(package, features, example, arguments)`, in order: later examples read the WAV
/// file the first one writes (`{dir}` is the step's temporary directory).
const EXAMPLES: &[(&str, &str, &str, &[&str])] = &[
    (
        "smallest-async",
        "smol",
        "smol_tts",
        &["{dir}/hello.wav", "Examples run in CI."],
    ),
    (
        "smallest-async",
        "smol",
        "smol_live_stt",
        &["{dir}/hello.wav"],
    ),
    ("smallest-async", "", "thread_runtime", &[]),
    ("smallest-hyper", "", "tokio_sse", &["{dir}/streamed.wav"]),
    (
        "smallest-blocking",
        "",
        "blocking_upload",
        &["{dir}/hello.wav"],
    ),
    ("smallest-core", "", "own_http_client", &[]),
];

pub(crate) fn examples() -> Result<(), String> {
    let status = Command::new(cargo())
        .current_dir(workspace_root())
        .args([
            "build",
            "-q",
            "-p",
            "smallest-emulator",
            "--bin",
            "smallest-emulator",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the emulator failed".into());
    }
    let binary = target_dir()?.join("debug").join("smallest-emulator");
    let emulator = EmulatorProcess::start(&binary, &["--key", KEY])?;
    let dir = std::env::temp_dir().join(format!("smallest-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir_text = dir.display().to_string();
    let mut ran = Vec::new();
    for (package, features, example, args) in EXAMPLES {
        let mut command = Command::new(cargo());
        command.current_dir(workspace_root()).args([
            "run",
            "-q",
            "-p",
            package,
            "--example",
            example,
        ]);
        if !features.is_empty() {
            command.args(["--features", features]);
        }
        command
            .arg("--")
            .args(args.iter().map(|a| a.replace("{dir}", &dir_text)))
            .env("SMALLEST_API_KEY", KEY)
            .env("SMALLEST_BASE_URL", &emulator.base_url);
        println!("==> example {package} {example}");
        let started = Instant::now();
        let status = command
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("example {example} of {package} failed: {status}"));
        }
        ran.push(format!(
            "{example} ({:.1} s)",
            started.elapsed().as_secs_f64()
        ));
    }
    drop(emulator);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "examples: ok, {} against the emulator: {}",
        ran.len(),
        ran.join(", ")
    );
    Ok(())
}
