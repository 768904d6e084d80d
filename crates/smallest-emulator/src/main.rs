//! `smallest-emulator`: serves the Waves API emulator on loopback until Ctrl-C.
//!
//! ```text
//! smallest-emulator [--port N] [--tls [--ca-out FILE]] [--key KEY]... [--forbidden-key KEY]...
//!                   [--tts-concurrency N] [--tts-latency-ms MS] [--max-upload-bytes N]
//! ```
//!
//! Prints the base URL on the first line of standard output, so scripts can read it.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use smallest_emulator::{Emulator, EmulatorBuilder};

const USAGE: &str = "\
usage: smallest-emulator [options]

Serves a local emulator of the Smallest AI Waves API on 127.0.0.1 until Ctrl-C.

options:
  --port N                 port to listen on (default: any free port)
  --tls                    serve HTTPS with a certificate from a fresh local CA
  --ca-out FILE            with --tls: write the CA certificate (PEM) to FILE
  --key KEY                accept this API key (repeatable; default: accept any bearer token)
  --forbidden-key KEY      a valid key that gets 403 on TTS and STT (repeatable)
  --tts-concurrency N      in-flight TTS requests per key before 429 (default 1)
  --tts-latency-ms MS      extra processing time per TTS request (default 0)
  --max-upload-bytes N     STT upload limit (default 262144000 = 250 MB)
  --stt-rpm N              STT transcriptions per model per key in any 60 s before 429 (default: no limit)
  -h, --help               show this help";

struct Options {
    builder: EmulatorBuilder,
    ca_out: Option<String>,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut builder = Emulator::builder();
    let mut ca_out = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        builder = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                let v = value("--port")?;
                builder.port(v.parse().map_err(|_| format!("--port: not a port: {v}"))?)
            }
            "--tls" => builder.tls(true),
            "--ca-out" => {
                ca_out = Some(value("--ca-out")?);
                builder
            }
            "--key" => builder.key(value("--key")?),
            "--forbidden-key" => builder.forbidden_key(value("--forbidden-key")?),
            "--tts-concurrency" => {
                let n = number("--tts-concurrency", value("--tts-concurrency")?)?;
                builder.tts_concurrency(usize::try_from(n).unwrap_or(usize::MAX))
            }
            "--tts-latency-ms" => {
                let n = number("--tts-latency-ms", value("--tts-latency-ms")?)?;
                builder.tts_latency(Duration::from_millis(n))
            }
            "--stt-rpm" => {
                let n = number("--stt-rpm", value("--stt-rpm")?)?;
                builder.stt_rpm(u32::try_from(n).unwrap_or(u32::MAX))
            }
            "--max-upload-bytes" => builder
                .max_upload_bytes(number("--max-upload-bytes", value("--max-upload-bytes")?)?),
            other => return Err(format!("unknown option: {other}")),
        };
    }
    Ok(Some(Options { builder, ca_out }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("smallest-emulator: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let emulator = match options.builder.start().await {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("smallest-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(path), Some(pem)) = (&options.ca_out, emulator.ca_certificate_pem())
        && let Err(e) = std::fs::write(path, pem)
    {
        eprintln!("smallest-emulator: cannot write {path}: {e}");
        return ExitCode::FAILURE;
    }
    println!("{}", emulator.base_url());
    let _ = std::io::stdout().flush();
    eprintln!("smallest-emulator: serving the Waves API; Ctrl-C stops it");
    match emulator.serve_until_ctrl_c().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smallest-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}
