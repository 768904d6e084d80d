//! One process of a fleet that shares one account's limits through Redis
//! (`tests/fleet.rs`): makes `--count` calls of one kind, one after the other, against
//! the emulator, and prints a line per call as it ends.
//!
//! ```text
//! fleet_worker --base-url URL --redis URL|none --mode sync|sse|live|stt|hold --count N
//!              [--tts-concurrency N] [--stt-rate N --stt-window-ms MS] [--lease-ms MS]
//!              [--fallback] [--account NAME]
//! ```
//!
//! - `sync`: `synthesize` on smallest-blocking; `sse`: `synthesize_stream` on
//!   smallest-hyper; `live`: one live TTS connection per call on smallest-hyper;
//!   `stt`: `transcribe` of the emulator's sample URL on smallest-blocking.
//! - `hold`: takes `--count` TTS slots straight from the limits, prints `held`, and
//!   sleeps (at most two minutes) until it is killed.
//!
//! Output: `ok <ms>` per call (its duration), `error: <message>` and exit 1 on the first
//! failure, `done` and exit 0 at the end.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallest_core::limits::{Limits, LocalLimits};
use smallest_core::stt::{AudioSource, SttLanguage, TranscribeRequest};
use smallest_core::{ApiKey, Config, TtsLiveConfig, TtsLiveEvent, TtsRequest};
use smallest_redis::RedisLimits;

struct Args {
    base_url: String,
    redis: Option<String>,
    mode: String,
    count: usize,
    tts_concurrency: usize,
    stt_rate: Option<(u32, Duration)>,
    lease: Option<Duration>,
    fallback: bool,
    account: String,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        base_url: String::new(),
        redis: None,
        mode: String::new(),
        count: 1,
        tts_concurrency: 1,
        stt_rate: None,
        lease: None,
        fallback: false,
        account: "fleet-test".to_owned(),
    };
    let mut window = Duration::from_secs(60);
    let mut rate = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("not a number: {v}"));
        match arg.as_str() {
            "--base-url" => args.base_url = value()?,
            "--redis" => {
                let v = value()?;
                args.redis = (v != "none").then_some(v);
            }
            "--mode" => args.mode = value()?,
            "--count" => args.count = number(value()?)? as usize,
            "--tts-concurrency" => args.tts_concurrency = number(value()?)? as usize,
            "--stt-rate" => rate = Some(number(value()?)? as u32),
            "--stt-window-ms" => window = Duration::from_millis(number(value()?)?),
            "--lease-ms" => args.lease = Some(Duration::from_millis(number(value()?)?)),
            "--fallback" => args.fallback = true,
            "--account" => args.account = value()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    args.stt_rate = rate.map(|r| (r, window));
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fleet_worker: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => {
            println!("done");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn local(args: &Args) -> LocalLimits {
    let mut local = LocalLimits::new(smallest_core::TtsLimiter::new(args.tts_concurrency));
    if let Some((limit, window)) = args.stt_rate {
        local = local.with_stt_window(smallest_core::limits::SttWindow::new(limit, window));
    }
    local
}

fn limits(args: &Args) -> Result<Arc<dyn Limits>, smallest_core::Error> {
    let Some(url) = &args.redis else {
        return Ok(Arc::new(local(args)));
    };
    let mut builder = RedisLimits::builder(url.as_str())
        .account(args.account.as_str())
        .tts_concurrency(args.tts_concurrency);
    if let Some((limit, window)) = args.stt_rate {
        builder = builder.stt_window(limit, window);
    }
    if let Some(lease) = args.lease {
        builder = builder.lease_ttl(lease);
    }
    if args.fallback {
        builder = builder.fallback_local(local(args));
    }
    Ok(Arc::new(builder.build()?))
}

fn run(args: &Args) -> Result<(), smallest_core::Error> {
    let config = Config::new(ApiKey::new("sk_fleet_test")?)
        .allow_insecure_http()
        .with_base_url(&args.base_url)?;
    let limits = limits(args)?;
    let text = "A fleet shares one account.";
    let say = |started: Instant| {
        println!("ok {:.3}", started.elapsed().as_secs_f64() * 1000.0);
        let _ = std::io::stdout().flush();
    };
    match args.mode.as_str() {
        "hold" => {
            let mut held = Vec::new();
            for _ in 0..args.count {
                held.push(smallest_blocking::block_on(limits.tts_slot())?);
            }
            println!("held");
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_secs(120));
            drop(held);
        }
        "sync" | "stt" => {
            let client = smallest_blocking::Client::builder(config)
                .without_proxy()
                .limits(limits)
                .build()?;
            for _ in 0..args.count {
                let started = Instant::now();
                if args.mode == "sync" {
                    client.synthesize(&TtsRequest::new(text, "magnus"))?;
                } else {
                    client.transcribe(&TranscribeRequest::new(
                        AudioSource::Url(smallest_emulator::SAMPLE_AUDIO_URL.to_owned()),
                        SttLanguage::En,
                    ))?;
                }
                say(started);
            }
        }
        "sse" | "live" => {
            let client = smallest_hyper::Client::builder(config)
                .without_proxy()
                .limits(limits)
                .build()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| smallest_core::Error::Config(e.to_string().into()))?;
            runtime.block_on(async {
                for _ in 0..args.count {
                    let started = Instant::now();
                    if args.mode == "sse" {
                        client
                            .synthesize_stream(&TtsRequest::new(text, "magnus"))
                            .await?
                            .collect()
                            .await?;
                    } else {
                        let (tx, mut rx) =
                            client.tts_live(TtsLiveConfig::new("magnus")).await?.split();
                        tx.speak(text).await?;
                        while let Some(event) = rx.recv().await {
                            if let TtsLiveEvent::Complete { .. } = event? {
                                break;
                            }
                        }
                        tx.close().await?;
                        while let Some(event) = rx.recv().await {
                            event?;
                        }
                    }
                    say(started);
                }
                Ok::<(), smallest_core::Error>(())
            })?;
        }
        other => {
            return Err(smallest_core::Error::Config(
                format!("unknown mode {other}").into(),
            ));
        }
    }
    Ok(())
}
