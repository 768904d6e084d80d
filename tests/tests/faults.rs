//! The fault matrix: every fault the emulator can inject × every transport × the
//! operations it applies to → the expected typed error or a recovered success, each
//! case bounded in time. `cargo test -p smallest-tests --test faults -- --nocapture`
//! prints the matrix as a table.

use std::time::{Duration, Instant};

use smallest_async::BuildOn as _;
use smallest_core::retry::RetryPolicy;
use smallest_core::{
    Error, OutputFormat, SttLanguage, TimeoutPhase, TranscribeRequest, TtsRequest,
};
use smallest_emulator::{Fault, FaultRule, RunningEmulator};
use smallest_tests::{KEY, config_for, emulator};

/// Retries fast enough for tests: 3 retries, 20 ms doubling, Retry-After up to 2 s.
fn policy() -> RetryPolicy {
    let mut p = RetryPolicy::default().with_max_retries(3);
    p.initial_backoff = Duration::from_millis(20);
    p.max_backoff = Duration::from_millis(200);
    p.max_retry_after = Duration::from_secs(2);
    p.budget = Some(Duration::from_secs(8));
    p
}

/// One operation on one transport, reduced to a word the matrix can compare.
type Run = Box<dyn Fn(&RunningEmulator) -> Result<(), Error>>;

fn outcome(result: &Result<(), Error>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(Error::Api(e)) => format!("api {}", e.status().as_u16()),
        Err(Error::Timeout { phase, .. }) => match phase {
            TimeoutPhase::Connect => "timeout connect".into(),
            TimeoutPhase::ResponseHead => "timeout head".into(),
            TimeoutPhase::Idle => "timeout idle".into(),
            TimeoutPhase::Total => "timeout total".into(),
            _ => "timeout".into(),
        },
        Err(Error::Transport {
            request_sent: true, ..
        }) => "transport (sent)".into(),
        Err(Error::Transport {
            request_sent: false,
            ..
        }) => "transport (unsent)".into(),
        Err(Error::Decode { .. }) => "decode".into(),
        Err(Error::Stream { .. }) => "stream".into(),
        Err(other) => format!("other: {other}"),
    }
}

fn tts() -> TtsRequest {
    TtsRequest::new("Fault tolerance.", "magnus")
        .sample_rate(8000)
        .output_format(OutputFormat::Pcm)
}

fn wav() -> Vec<u8> {
    let samples = smallest_emulator::speech::synthesize_pcm("Fault tolerance.", 8000, 1.0);
    let mut f = smallest_core::audio::wav_header(
        smallest_core::audio::WavEncoding::Pcm16,
        8000,
        (samples.len() * 2) as u64,
    )
    .to_vec();
    f.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    f
}

/// A WAV file of emulator speech on disk, for the streamed uploads.
fn upload_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("smallest-faults-{}.wav", std::process::id()));
    if !path.exists() {
        std::fs::write(&path, wav()).unwrap();
    }
    path
}

fn runs() -> Vec<(&'static str, &'static str, Run)> {
    let hyper = |e: &RunningEmulator| {
        smallest_hyper::Client::builder(config_for(e, KEY))
            .retry_policy(policy())
            .response_timeout(Duration::from_millis(700))
            .idle_timeout(Duration::from_millis(700))
            .total_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let blocking = |e: &RunningEmulator| {
        smallest_blocking::Client::builder(config_for(e, KEY))
            .retry_policy(policy())
            .response_timeout(Duration::from_millis(700))
            .idle_timeout(Duration::from_millis(700))
            .total_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let smol = |e: &RunningEmulator| {
        smallest_async::Client::builder(config_for(e, KEY))
            .retry_policy(policy())
            .response_timeout(Duration::from_millis(700))
            .idle_timeout(Duration::from_millis(700))
            .total_timeout(Duration::from_secs(10))
            .build_on(smallest_async::SmolRuntime)
            .unwrap()
    };
    let upload = || TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En);
    vec![
        (
            "hyper",
            "tts",
            Box::new(move |e| rt().block_on(hyper(e).synthesize(&tts())).map(drop)),
        ),
        (
            "hyper",
            "stt",
            Box::new(move |e| {
                rt().block_on(
                    hyper(e).transcribe(&TranscribeRequest::from_bytes(wav(), SttLanguage::En)),
                )
                .map(drop)
            }),
        ),
        (
            "hyper",
            "stream",
            Box::new(move |e| {
                rt().block_on(async {
                    hyper(e)
                        .synthesize_stream(&tts())
                        .await?
                        .collect()
                        .await
                        .map(drop)
                })
            }),
        ),
        (
            "hyper",
            "upload",
            Box::new(move |e| {
                rt().block_on(hyper(e).transcribe_file(upload_file(), &upload(), None))
                    .map(drop)
            }),
        ),
        (
            "blocking",
            "tts",
            Box::new(move |e| blocking(e).synthesize(&tts()).map(drop)),
        ),
        (
            "blocking",
            "stt",
            Box::new(move |e| {
                blocking(e)
                    .transcribe(&TranscribeRequest::from_bytes(wav(), SttLanguage::En))
                    .map(drop)
            }),
        ),
        (
            "blocking",
            "stream",
            Box::new(move |e| blocking(e).synthesize_stream(&tts())?.collect().map(drop)),
        ),
        (
            "blocking",
            "upload",
            Box::new(move |e| {
                blocking(e)
                    .transcribe_file(upload_file(), &upload(), None)
                    .map(drop)
            }),
        ),
        (
            "smol",
            "tts",
            Box::new(move |e| smol::block_on(smol(e).synthesize(&tts())).map(drop)),
        ),
        (
            "smol",
            "stt",
            Box::new(move |e| {
                smol::block_on(
                    smol(e).transcribe(&TranscribeRequest::from_bytes(wav(), SttLanguage::En)),
                )
                .map(drop)
            }),
        ),
        (
            "smol",
            "stream",
            Box::new(move |e| {
                smol::block_on(async {
                    smol(e)
                        .synthesize_stream(&tts())
                        .await?
                        .collect()
                        .await
                        .map(drop)
                })
            }),
        ),
        (
            "smol",
            "upload",
            Box::new(move |e| {
                smol::block_on(smol(e).transcribe_file(upload_file(), &upload(), None)).map(drop)
            }),
        ),
    ]
}

struct Case {
    name: &'static str,
    rule: fn(&str) -> FaultRule,
    /// The expected outcome per operation (`tts`, `stt`, `stream`, `upload`).
    expect: fn(&str) -> &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "latency 300 ms",
            rule: |p| FaultRule::new(p, Fault::Latency(Duration::from_millis(300))),
            expect: |_| "ok",
        },
        Case {
            name: "429 ×2 with Retry-After: 1",
            rule: |p| FaultRule::new(p, Fault::too_many_requests(Some("1"))).times(2),
            expect: |_| "ok",
        },
        Case {
            name: "429 ×2 without Retry-After",
            rule: |p| FaultRule::new(p, Fault::too_many_requests(None)).times(2),
            expect: |_| "ok",
        },
        Case {
            name: "429 always",
            rule: |p| FaultRule::new(p, Fault::too_many_requests(None)),
            expect: |_| "api 429",
        },
        Case {
            name: "500 ×1",
            rule: |p| FaultRule::new(p, Fault::status(500)).times(1),
            expect: |_| "ok",
        },
        Case {
            name: "502 ×1",
            rule: |p| FaultRule::new(p, Fault::status(502)).times(1),
            expect: |_| "ok",
        },
        Case {
            name: "503 ×3",
            rule: |p| FaultRule::new(p, Fault::status(503)).times(3),
            expect: |_| "ok",
        },
        Case {
            name: "504 always",
            rule: |p| FaultRule::new(p, Fault::status(504)),
            expect: |_| "api 504",
        },
        Case {
            name: "reset before the head",
            rule: |p| FaultRule::new(p, Fault::ResetBeforeHead).times(1),
            expect: |_| "transport (sent)",
        },
        Case {
            name: "reset mid-body",
            rule: |p| FaultRule::new(p, Fault::ResetMidBody { after_bytes: 100 }).times(1),
            expect: |_| "transport (sent)",
        },
        Case {
            name: "stalled head (2 s)",
            rule: |p| FaultRule::new(p, Fault::StallHead(Duration::from_secs(2))).times(1),
            expect: |_| "timeout head",
        },
        Case {
            name: "stalled body (2 s)",
            rule: |p| {
                FaultRule::new(
                    p,
                    Fault::StallBody {
                        after_bytes: 64,
                        duration: Duration::from_secs(2),
                    },
                )
                .times(1)
            },
            expect: |_| "timeout idle",
        },
        Case {
            name: "malformed JSON",
            rule: |p| FaultRule::new(p, Fault::MalformedJson).times(1),
            expect: |_| "decode",
        },
        Case {
            name: "wrong content type",
            rule: |p| FaultRule::new(p, Fault::WrongContentType).times(1),
            expect: |_| "decode",
        },
        Case {
            name: "huge error body (5 MB 500)",
            rule: |p| {
                FaultRule::new(
                    p,
                    Fault::HugeErrorBody {
                        status: 500,
                        bytes: 5 << 20,
                    },
                )
            },
            expect: |_| "api 500",
        },
        Case {
            name: "SSE cut before `done`",
            rule: |p| FaultRule::new(p, Fault::SseCutBeforeDone).times(1),
            expect: |op| if op == "stream" { "stream" } else { "ok" },
        },
        Case {
            name: "trickle body (64 B / 2 ms)",
            rule: |p| {
                FaultRule::new(
                    p,
                    Fault::TrickleBody {
                        chunk_bytes: 64,
                        interval: Duration::from_millis(2),
                    },
                )
                .times(1)
            },
            expect: |_| "ok",
        },
    ]
}

#[test]
fn every_fault_gives_the_expected_typed_error_or_a_recovered_success() {
    let runs = runs();
    let mut table = String::from("| fault |");
    for (transport, op, _) in &runs {
        table.push_str(&format!(" {transport} {op} |"));
    }
    table.push_str(&format!("\n|---|{}\n", "---|".repeat(runs.len())));
    let mut wrong = Vec::new();
    for case in cases() {
        table.push_str(&format!("| {} |", case.name));
        for (transport, op, run) in &runs {
            // An exact route: `/waves/v1/tts` as a prefix would also fault the SSE route.
            let path = match *op {
                "tts" => "/waves/v1/tts",
                "stream" => "/waves/v1/tts/live",
                _ => "/waves/v1/stt",
            };
            let emulator = emulator().fault((case.rule)(path)).spawn().unwrap();
            let started = Instant::now();
            let result = run(&emulator);
            let took = started.elapsed();
            let got = outcome(&result);
            let expected = (case.expect)(op);
            if let Err(e) = &result
                && let Some(api) = e.api()
            {
                assert!(
                    api.raw_body().len() <= smallest_core::error::MAX_ERROR_BODY,
                    "unbounded evidence"
                );
            }
            assert!(
                took < Duration::from_secs(12),
                "{} {transport} {op}: took {took:?}",
                case.name
            );
            table.push_str(&format!(" {got} ({} ms) |", took.as_millis()));
            if got != expected {
                wrong.push(format!(
                    "{} / {transport} {op}: expected {expected}, got {got}: {result:?}",
                    case.name
                ));
            }
        }
        table.push('\n');
    }
    println!("{table}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
