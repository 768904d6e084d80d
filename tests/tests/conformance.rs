//! The conformance suite: every hostile server of [`smallest_tests::hostile`] against
//! both transports, over real sockets on 127.0.0.1. Each case is a misbehaving server
//! and the one typed error a client must turn it into, within the limit that covers it:
//! the same error on `smallest-hyper` and on `smallest-blocking`, no later than the
//! limit plus [`SLACK`] and, where a limit is what ends the call, not before it. The
//! cases that flood the client also bound its peak memory: those run the client in a
//! child process (this test binary again, selecting `conformance_child`, as
//! `tests/streaming.rs` does for its memory measurements), so that the peak it reports
//! (`VmHWM`) is the client's alone, and so that a client that does not stop a flood
//! is killed before it takes the machine down.
//!
//! ```text
//! cargo test -p smallest-tests --test conformance -- --nocapture
//! ```
//!
//! prints the conformance table, a markdown row per case and transport, as the cases
//! run; the test then fails if any row did. `CONFORMANCE_CASES=1,7a,9` runs only the
//! cases named. The cases run one after the other, never in parallel with each other,
//! so that the time each takes is the client's and not the machine's.
//!
//! Every case is bounded: each call runs on a thread (or in a child) that is given up
//! on [`GRACE`] after the latest time a pass allows; the server is then dropped, which
//! closes its sockets, and what the client says after that is shown too. Every server
//! thread ends by itself (see [`smallest_tests::hostile`]).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use smallest_core::{ApiKey, Config, Error, TimeoutPhase, TtsLiveConfig, TtsRequest};
use smallest_tests::hostile::{Behaviour, Body, HostileServer, head};
use smallest_tests::live::{LiveApi, TtsRx, live_clients_with_limits};
use smallest_tests::{Api, Limits, clients_with};

const KEY: &str = "sk_test_conformance_0123456789";

/// The transports, in the order the harness builds them.
const TRANSPORTS: [&str; 3] = ["hyper", "blocking", "smol"];

/// How late a limit may fire and still pass.
const SLACK: Duration = Duration::from_secs(1);

/// How early a limit may fire (timer and scheduling granularity).
const EARLY: Duration = Duration::from_millis(100);

/// How long past the latest passing time a call is waited for before it is given up.
const GRACE: Duration = Duration::from_secs(4);

/// How long a given-up call is waited for once its server is gone, to report what it
/// says then.
const AFTER_STOP: Duration = Duration::from_secs(3);

/// The limit on a flooded client's peak memory, HTTP bodies (case 7 and 8).
const MAX_RSS_BODY_KIB: u64 = 300 * 1024;

/// The limit on a flooded client's peak memory, the WebSocket ping flood (case 9).
const MAX_RSS_WS_KIB: u64 = 200 * 1024;

/// A child above this much memory is killed: it has failed, and it must not go on.
const KILL_RSS_KIB: u64 = 1024 * 1024;

/// The environment variable that makes `conformance_child` run a case's client.
const CHILD_ENV: &str = "SMALLEST_CONFORMANCE_CHILD";

/// How the child's report line starts.
const CHILD_REPORT: &str = "conformance-child:";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

/// What a call ended with, and how long it took by the operation's own clock.
struct Timed {
    /// `Ok` describes an end without an error (which no case expects).
    result: Result<String, Error>,
    elapsed: Duration,
}

fn timed(f: impl FnOnce() -> Result<String, Error>) -> Timed {
    let started = Instant::now();
    let result = f();
    Timed {
        result,
        elapsed: started.elapsed(),
    }
}

/// The client call of a case.
#[derive(Clone, Copy)]
enum Op {
    Http(fn(&dyn Api) -> Timed),
    Live(fn(&dyn LiveApi) -> Timed),
}

/// What the server is, and how the client reaches it.
#[derive(Clone, Copy)]
struct Server {
    make: fn() -> std::io::Result<HostileServer>,
    /// `https` against a plain listener is a server that never answers the ClientHello.
    scheme: &'static str,
}

/// One row pair of the table.
#[derive(Clone, Copy)]
struct Case {
    id: &'static str,
    title: &'static str,
    server: Server,
    limits: Limits,
    op: Op,
    /// The error the client must report.
    expect: Expect,
    /// The earliest and latest elapsed times a pass allows.
    window: (Duration, Duration),
    /// When set, the client runs in a child process whose peak memory must stay below this.
    max_rss_kib: Option<u64>,
}

/// Limits: connect, response, idle, total (seconds; `None`: the client's default).
fn limits(
    connect: Option<f64>,
    response: Option<f64>,
    idle: Option<f64>,
    total: Option<f64>,
) -> Limits {
    Limits {
        connect: connect.map(secs),
        response: response.map(secs),
        idle: idle.map(secs),
        total: total.map(secs),
    }
}

/// The error a case expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Timeout(TimeoutPhase),
    BodyLimit,
}

impl Expect {
    /// As [`kind`] names it.
    fn name(self) -> String {
        match self {
            Expect::Timeout(phase) => format!("Timeout({phase:?})"),
            Expect::BodyLimit => "BodyLimit".into(),
        }
    }
}

/// A pass lands in `[limit - EARLY, limit + SLACK]`.
fn around(limit: f64) -> (Duration, Duration) {
    (secs(limit) - EARLY, secs(limit) + SLACK)
}

fn audio_head(extra: (&str, &str)) -> String {
    head("200 OK", &[("content-type", "audio/wav"), extra])
}

const GIB2: u64 = 2 << 30;

fn cases() -> Vec<Case> {
    let plain_silent = Server {
        make: || HostileServer::plain(Behaviour::Silent),
        scheme: "http",
    };
    vec![
        Case {
            id: "1",
            title: "HTTPS: TCP accepted, ClientHello never answered",
            server: Server {
                make: || HostileServer::plain(Behaviour::Silent),
                scheme: "https",
            },
            // The response limit is longer, so a connect limit that does not cover the
            // handshake shows as the response limit firing instead.
            limits: limits(Some(1.0), Some(5.0), Some(5.0), None),
            op: Op::Http(synthesize),
            expect: Expect::Timeout(TimeoutPhase::Connect),
            window: around(1.0),
            max_rss_kib: None,
        },
        Case {
            id: "1b",
            title: "HTTPS: handshake completed, then silent",
            server: Server {
                make: || HostileServer::tls(Behaviour::Silent),
                scheme: "https",
            },
            // The counterpart of case 1: once the handshake is done, the connect limit
            // (shorter here) must no longer apply; the response limit does.
            limits: limits(Some(1.0), Some(3.0), Some(5.0), None),
            op: Op::Http(synthesize),
            expect: Expect::Timeout(TimeoutPhase::ResponseHead),
            window: around(3.0),
            max_rss_kib: None,
        },
        Case {
            id: "2",
            title: "HTTP: request read, never answered",
            server: plain_silent,
            limits: limits(Some(5.0), Some(1.0), Some(5.0), None),
            op: Op::Http(synthesize),
            expect: Expect::Timeout(TimeoutPhase::ResponseHead),
            window: around(1.0),
            max_rss_kib: None,
        },
        Case {
            id: "3",
            title: "response head never completes",
            server: Server {
                make: || {
                    HostileServer::plain(Behaviour::PartialHead(
                        b"HTTP/1.1 200 OK\r\nContent-Ty".to_vec(),
                    ))
                },
                scheme: "http",
            },
            limits: limits(Some(5.0), Some(1.0), Some(5.0), None),
            op: Op::Http(synthesize),
            expect: Expect::Timeout(TimeoutPhase::ResponseHead),
            window: around(1.0),
            max_rss_kib: None,
        },
        Case {
            id: "4",
            title: "100 Continue every 200 ms, forever",
            server: Server {
                make: || {
                    HostileServer::plain(Behaviour::ContinueForever {
                        every: Duration::from_millis(200),
                    })
                },
                scheme: "http",
            },
            limits: limits(Some(5.0), Some(1.0), Some(5.0), None),
            op: Op::Http(synthesize),
            expect: Expect::Timeout(TimeoutPhase::ResponseHead),
            window: around(1.0),
            max_rss_kib: None,
        },
        Case {
            id: "5",
            title: "body: 1 byte every 3 s",
            server: Server {
                make: || {
                    HostileServer::plain(Behaviour::Trickle {
                        head: audio_head(("transfer-encoding", "chunked")),
                        chunked: true,
                        every: Duration::from_secs(3),
                    })
                },
                scheme: "http",
            },
            limits: limits(Some(5.0), Some(5.0), Some(1.0), None),
            op: Op::Http(synthesize),
            expect: Expect::Timeout(TimeoutPhase::Idle),
            window: around(1.0),
            max_rss_kib: None,
        },
        Case {
            id: "6",
            title: "body: 1 byte every 100 ms, total limit",
            server: Server {
                make: || {
                    HostileServer::plain(Behaviour::Trickle {
                        head: audio_head(("transfer-encoding", "chunked")),
                        chunked: true,
                        every: Duration::from_millis(100),
                    })
                },
                scheme: "http",
            },
            limits: limits(Some(5.0), Some(5.0), Some(5.0), Some(2.0)),
            op: Op::Http(synthesize),
            expect: Expect::Timeout(TimeoutPhase::Total),
            window: around(2.0),
            max_rss_kib: None,
        },
        Case {
            id: "7a",
            title: "sync TTS: 2 GiB chunked body, no length",
            server: Server {
                make: || {
                    HostileServer::plain(Behaviour::Flood {
                        head: audio_head(("transfer-encoding", "chunked")),
                        body: Body::zeros(GIB2, true),
                    })
                },
                scheme: "http",
            },
            // Default limits: the body limit alone must stop it. Reading up to the
            // 256 MiB limit takes a second or two in a debug build.
            limits: Limits::default(),
            op: Op::Http(synthesize),
            expect: Expect::BodyLimit,
            window: (Duration::ZERO, secs(15.0)),
            max_rss_kib: Some(MAX_RSS_BODY_KIB),
        },
        Case {
            id: "7b",
            title: "sync TTS: Content-Length 2147483648",
            server: Server {
                make: || {
                    HostileServer::plain(Behaviour::Flood {
                        head: audio_head(("content-length", "2147483648")),
                        body: Body::zeros(GIB2, false),
                    })
                },
                scheme: "http",
            },
            // The announced length is over the limit: refused at the head, at once.
            limits: Limits::default(),
            op: Op::Http(synthesize),
            expect: Expect::BodyLimit,
            window: (Duration::ZERO, SLACK),
            max_rss_kib: Some(MAX_RSS_BODY_KIB),
        },
        Case {
            id: "8",
            title: "voices(): 500 MB JSON, chunked",
            server: Server {
                make: || {
                    HostileServer::plain(Behaviour::Flood {
                        head: head(
                            "200 OK",
                            &[
                                ("content-type", "application/json"),
                                ("transfer-encoding", "chunked"),
                            ],
                        ),
                        body: Body::voice_list(500_000_000, true),
                    })
                },
                scheme: "http",
            },
            limits: Limits::default(),
            op: Op::Http(voices),
            expect: Expect::BodyLimit,
            window: (Duration::ZERO, secs(15.0)),
            max_rss_kib: Some(MAX_RSS_BODY_KIB),
        },
        Case {
            id: "9",
            title: "WebSocket: ping flood, server never reads",
            server: Server {
                make: || HostileServer::plain(Behaviour::WsPingFlood),
                scheme: "http",
            },
            // Timed from before the upgrade: the flood starts right after the 101, and a
            // write can stall only after the buffers on both sides are full.
            limits: limits(Some(5.0), Some(5.0), Some(2.0), None),
            op: Op::Live(live_recv),
            expect: Expect::Timeout(TimeoutPhase::Idle),
            window: around(2.0),
            max_rss_kib: Some(MAX_RSS_WS_KIB),
        },
        Case {
            id: "10",
            title: "WebSocket: silent after 101",
            server: Server {
                make: || HostileServer::plain(Behaviour::WsSilent),
                scheme: "http",
            },
            limits: limits(Some(5.0), Some(5.0), Some(2.0), None),
            op: Op::Live(live_speak_recv),
            expect: Expect::Timeout(TimeoutPhase::Idle),
            window: around(2.0),
            max_rss_kib: None,
        },
        Case {
            id: "11",
            title: "WebSocket: upgrade never answered",
            server: plain_silent,
            // The response limit is longer: the connect limit covers the whole upgrade.
            limits: limits(Some(1.0), Some(5.0), Some(5.0), None),
            op: Op::Live(live_open),
            expect: Expect::Timeout(TimeoutPhase::Connect),
            window: around(1.0),
            max_rss_kib: None,
        },
        Case {
            id: "12",
            title: "streamed upload: server stops reading after the head",
            server: Server {
                make: || HostileServer::plain(Behaviour::Deaf),
                scheme: "http",
            },
            // The response limit only starts once the upload was sent: the stalled
            // write is the idle limit's.
            limits: limits(Some(5.0), Some(5.0), Some(1.0), None),
            op: Op::Http(upload_file),
            expect: Expect::Timeout(TimeoutPhase::Idle),
            // The socket buffers fill first (a few MiB on loopback).
            window: (secs(1.0) - EARLY, secs(3.0)),
            max_rss_kib: None,
        },
    ]
}

// ---------------------------------------------------------------------------------------
// The client calls
// ---------------------------------------------------------------------------------------

fn tts_request() -> TtsRequest {
    TtsRequest::new("Hello.", "magnus")
}

fn synthesize(api: &dyn Api) -> Timed {
    timed(|| {
        api.synthesize(&tts_request())
            .map(|audio| format!("{} bytes of audio", audio.bytes().len()))
    })
}

/// A 64 MiB file uploaded to a server that never reads it.
fn upload_file(api: &dyn Api) -> Timed {
    let path = std::env::temp_dir().join(format!(
        "smallest-conformance-upload-{}.wav",
        std::process::id()
    ));
    let made = std::fs::write(&path, vec![0u8; 64 << 20]);
    let template =
        smallest_core::TranscribeRequest::from_bytes(Vec::new(), smallest_core::SttLanguage::En);
    let timed = timed(|| {
        made.map_err(|e| Error::transport(false, e))?;
        api.transcribe_file(&path, &template)
            .map(|t| format!("transcribed: {:?}", t.transcription))
    });
    let _ = std::fs::remove_file(&path);
    timed
}

fn voices(api: &dyn Api) -> Timed {
    timed(|| api.voices().map(|v| format!("{} voices", v.len())))
}

fn live_open(api: &dyn LiveApi) -> Timed {
    timed(|| {
        api.tts_live(TtsLiveConfig::new("magnus"))
            .map(|_| "the upgrade succeeded".to_owned())
    })
}

/// Calls `recv` until an error or the end, at most a bounded number of times. An end
/// without an error lists the events that came (shortened), to show what the client
/// made of the misbehaviour.
fn recv_until_end(rx: &mut dyn TtsRx) -> Result<String, Error> {
    let mut events = Vec::new();
    while events.len() < 10_000 {
        match rx.recv() {
            None => {
                return Ok(format!(
                    "recv() ended without an error after {} events: {}",
                    events.len(),
                    events.join(", ")
                ));
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(event)) => events.push(cell(&format!("{event:?}"), 100)),
        }
    }
    Ok(format!("{} events and still open", events.len()))
}

/// Case 9: open, then only receive (the client answers each Ping with a Pong).
fn live_recv(api: &dyn LiveApi) -> Timed {
    timed(|| {
        // The sender is kept until the end: dropping it might close the connection.
        let (_tx, mut rx) = api.tts_live(TtsLiveConfig::new("magnus"))?;
        recv_until_end(rx.as_mut())
    })
}

/// Case 10: open, then `speak` and receive, timed from `speak`.
fn live_speak_recv(api: &dyn LiveApi) -> Timed {
    let opening = Instant::now();
    let (tx, mut rx) = match api.tts_live(TtsLiveConfig::new("magnus")) {
        Ok(halves) => halves,
        Err(e) => {
            return Timed {
                result: Err(e),
                elapsed: opening.elapsed(),
            };
        }
    };
    timed(|| {
        tx.speak("Hello.")?;
        recv_until_end(rx.as_mut())
    })
}

// ---------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------

/// The error's kind, as the table and the expectations name it.
fn kind(result: &Result<String, Error>) -> String {
    match result {
        Ok(_) => "no error".into(),
        Err(Error::Timeout { phase, .. }) => format!("Timeout({phase:?})"),
        Err(Error::BodyLimit { .. }) => "BodyLimit".into(),
        Err(Error::Transport { request_sent, .. }) => {
            format!("Transport(request_sent={request_sent})")
        }
        Err(Error::Api(e)) => format!("Api({})", e.status()),
        Err(Error::Decode { .. }) => "Decode".into(),
        Err(Error::Stream { .. }) => "Stream".into(),
        Err(Error::Config(_)) => "Config".into(),
        Err(Error::Validation(_)) => "Validation".into(),
        Err(_) => "another error".into(),
    }
}

/// The error's message with its sources, on one line.
fn detail(result: &Result<String, Error>) -> String {
    match result {
        Ok(what) => what.clone(),
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(": ");
                    text.push_str(&s_text);
                }
                source = s.source();
            }
            text.replace(['\n', '\r', '\t'], " ")
        }
    }
}

/// What a row shows.
struct Outcome {
    kind: String,
    detail: String,
    elapsed: Duration,
    peak_rss_kib: Option<u64>,
}

/// Builds the client `index` of `case` for `base_url` and runs its call.
fn run_call(case: &Case, index: usize, base_url: &str, ca: Option<Vec<u8>>) -> Timed {
    let config = Config::new(ApiKey::new(KEY).expect("test key"))
        .with_base_url(base_url)
        .expect("hostile base URL");
    match case.op {
        Op::Http(op) => {
            let api = clients_with(config, ca, case.limits).swap_remove(index);
            assert_eq!(api.name(), TRANSPORTS[index]);
            op(api.as_ref())
        }
        Op::Live(op) => {
            let api = live_clients_with_limits(config, ca, case.limits).swap_remove(index);
            assert_eq!(api.name(), TRANSPORTS[index]);
            op(api.as_ref())
        }
    }
}

/// Runs the call on a thread of its own; gives up on it past the window plus [`GRACE`],
/// then drops the server and reports what the client says after that.
fn in_process(case: &Case, index: usize) -> Outcome {
    let server = (case.server.make)().expect("hostile server");
    let base_url = server.url(case.server.scheme);
    let ca = server.ca_der();
    let (done, result) = mpsc::channel();
    let call = *case;
    let started = Instant::now();
    std::thread::spawn(move || {
        let timed = run_call(&call, index, &base_url, ca);
        let _ = done.send((kind(&timed.result), detail(&timed.result), timed.elapsed));
    });
    let patience = case.window.1 + GRACE;
    match result.recv_timeout(patience) {
        Ok((kind, detail, elapsed)) => Outcome {
            kind,
            detail,
            elapsed,
            peak_rss_kib: None,
        },
        Err(_) => {
            drop(server);
            let after = match result.recv_timeout(AFTER_STOP) {
                Ok((kind, detail, _)) => format!(
                    "after the server closed ({:.1} s): {kind}: {detail}",
                    started.elapsed().as_secs_f64()
                ),
                Err(_) => "still no answer after the server closed".to_owned(),
            };
            Outcome {
                kind: "no answer".into(),
                detail: format!("nothing within {:.0} s; {after}", patience.as_secs_f64()),
                elapsed: patience,
                peak_rss_kib: None,
            }
        }
    }
}

/// The peak resident set size of process `pid` (`self` for this one), in KiB.
fn peak_rss_kib(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs the call in a child process, watching its peak memory: killed above
/// [`KILL_RSS_KIB`] or past the window plus [`GRACE`].
fn in_child(case: &Case, index: usize) -> Outcome {
    let server = (case.server.make)().expect("hostile server");
    assert!(
        server.ca_der().is_none(),
        "a child case has no way to get a CA"
    );
    let task = format!("{} {index} {}", case.id, server.url(case.server.scheme));
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["conformance_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, task)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("child process");
    let pid = child.id().to_string();
    let started = Instant::now();
    let patience = case.window.1 + GRACE;
    let mut peak = 0;
    let mut killed = None;
    loop {
        if let Some(now) = peak_rss_kib(&pid) {
            peak = peak.max(now);
        }
        if child.try_wait().expect("child status").is_some() {
            break;
        }
        let reason = if peak > KILL_RSS_KIB {
            Some(format!("killed at a peak RSS of {} MiB", peak / 1024))
        } else if started.elapsed() > patience {
            Some(format!(
                "killed: nothing within {:.0} s",
                patience.as_secs_f64()
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            // Our own child, by its handle.
            let _ = child.kill();
            killed = Some((reason, started.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("child output");
    // How much of the flood the client took (kernel buffers included) before it stopped.
    let served = format!("server wrote {} MiB", server.bytes_written() >> 20);
    drop(server);
    if let Some((reason, elapsed)) = killed {
        return Outcome {
            kind: "killed".into(),
            detail: format!("{reason}; {served}"),
            elapsed,
            peak_rss_kib: Some(peak),
        };
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(report) = stdout.lines().find_map(|l| l.strip_prefix(CHILD_REPORT)) else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        return Outcome {
            kind: "child failed".into(),
            detail: format!("{}: {tail}; {served}", output.status),
            elapsed: started.elapsed(),
            peak_rss_kib: Some(peak),
        };
    };
    let field = |name: &str| {
        report
            .split('\t')
            .find_map(|f| f.trim().strip_prefix(name))
            .unwrap_or_default()
            .to_owned()
    };
    let reported_peak = field("peak_rss_kib=").parse().unwrap_or(0);
    Outcome {
        kind: field("kind="),
        detail: format!("{}; {served}", field("detail=")),
        elapsed: Duration::from_millis(field("elapsed_ms=").parse().unwrap_or(0)),
        peak_rss_kib: Some(peak.max(reported_peak)),
    }
}

/// The client side of the child cases; does nothing unless a parent started it.
#[test]
#[ignore = "the child process of the conformance cases that measure memory"]
fn conformance_child() {
    let Ok(task) = std::env::var(CHILD_ENV) else {
        println!("conformance_child: run by the conformance test");
        return;
    };
    let words: Vec<&str> = task.split(' ').collect();
    let [id, index, base_url] = words[..] else {
        panic!("bad task {task:?}");
    };
    let case = cases()
        .into_iter()
        .find(|c| c.id == id)
        .expect("known case");
    let index: usize = index.parse().expect("transport index");
    let timed = run_call(&case, index, base_url, None);
    println!(
        "{CHILD_REPORT} kind={}\telapsed_ms={}\tpeak_rss_kib={}\tdetail={}",
        kind(&timed.result),
        timed.elapsed.as_millis(),
        peak_rss_kib("self").unwrap_or(0),
        detail(&timed.result)
    );
}

/// Whether `outcome` passes `case`; the reasons it does not otherwise.
fn judge(case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut wrong = Vec::new();
    if outcome.kind != case.expect.name() {
        wrong.push(format!(
            "expected {}, got {}",
            case.expect.name(),
            outcome.kind
        ));
    }
    let (earliest, latest) = case.window;
    if outcome.elapsed > latest {
        wrong.push(format!("took longer than {:.1} s", latest.as_secs_f64()));
    } else if outcome.elapsed < earliest {
        wrong.push(format!("ended before {:.1} s", earliest.as_secs_f64()));
    }
    if let (Some(max), Some(peak)) = (case.max_rss_kib, outcome.peak_rss_kib)
        && peak > max
    {
        wrong.push(format!(
            "peak RSS {} MiB over {} MiB",
            peak / 1024,
            max / 1024
        ));
    }
    wrong
}

fn cell(text: &str, max: usize) -> String {
    let mut text = text.replace('|', "\\|");
    if text.chars().count() > max {
        text = text.chars().take(max - 1).collect::<String>() + "…";
    }
    text
}

/// The conformance table: every case on both transports, one after the other.
#[test]
fn conformance() {
    let only: Option<Vec<String>> = std::env::var("CONFORMANCE_CASES")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    println!();
    println!("| case | transport | result | expected | actual | elapsed | peak RSS | detail |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for case in cases() {
        if only
            .as_ref()
            .is_some_and(|ids| !ids.iter().any(|id| id == case.id))
        {
            continue;
        }
        let mut kinds = Vec::new();
        for (index, transport) in TRANSPORTS.iter().enumerate() {
            let outcome = if case.max_rss_kib.is_some() {
                in_child(&case, index)
            } else {
                in_process(&case, index)
            };
            let wrong = judge(&case, &outcome);
            println!(
                "| {} {} | {transport} | {} | {} | {} | {:.2} s | {} | {} |",
                case.id,
                cell(case.title, 60),
                if wrong.is_empty() {
                    "pass".to_owned()
                } else {
                    format!("**FAIL**: {}", wrong.join("; "))
                },
                case.expect.name(),
                outcome.kind,
                outcome.elapsed.as_secs_f64(),
                outcome
                    .peak_rss_kib
                    .map(|k| format!("{} MiB", k / 1024))
                    .unwrap_or_else(|| "-".into()),
                cell(&outcome.detail, 240),
            );
            if !wrong.is_empty() {
                failures.push(format!(
                    "case {} on {transport}: {}",
                    case.id,
                    wrong.join("; ")
                ));
            }
            kinds.push(outcome.kind);
        }
        if kinds[0] != kinds[1] {
            failures.push(format!(
                "case {}: the transports differ: hyper {}, blocking {}",
                case.id, kinds[0], kinds[1]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The hostile servers themselves, seen from a raw socket: each does what its case says
// it does (so that a pass above is not a server that failed to misbehave), and each
// stops promptly when dropped, even with a client still connected.
// ---------------------------------------------------------------------------------------

mod servers {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use smallest_tests::hostile::{Behaviour, Body, HostileServer, head};

    const REQUEST: &[u8] = b"GET /waves/v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

    fn connect(server: &HostileServer) -> TcpStream {
        let url = server.url("tcp");
        let tcp = TcpStream::connect(url.trim_start_matches("tcp://")).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        tcp
    }

    /// Everything that arrives within `window`, stopping early once `done` says so.
    fn read_until(tcp: &mut TcpStream, window: Duration, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let until = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        while Instant::now() < until && !done(&got) {
            match tcp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {} // the read timeout: look at the clock
            }
        }
        got
    }

    /// Everything that arrives within `window`.
    fn read_for(tcp: &mut TcpStream, window: Duration) -> Vec<u8> {
        read_until(tcp, window, |_| false)
    }

    /// Drops `server` and checks that it stopped its threads promptly.
    fn stops_promptly(server: HostileServer) {
        let started = Instant::now();
        drop(server);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the server took {:?} to stop",
            started.elapsed()
        );
    }

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    }

    #[test]
    fn silent_says_nothing() {
        let server = HostileServer::plain(Behaviour::Silent).unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(REQUEST).unwrap();
        assert!(read_for(&mut tcp, Duration::from_millis(400)).is_empty());
        assert_eq!(server.connections(), 1);
        stops_promptly(server);
    }

    #[test]
    fn partial_head_stops_mid_header() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Ty".to_vec();
        let server = HostileServer::plain(Behaviour::PartialHead(bytes.clone())).unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(REQUEST).unwrap();
        assert_eq!(read_for(&mut tcp, Duration::from_millis(400)), bytes);
        stops_promptly(server);
    }

    #[test]
    fn continue_forever_repeats() {
        let every = Duration::from_millis(100);
        let server = HostileServer::plain(Behaviour::ContinueForever { every }).unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(REQUEST).unwrap();
        let got = read_for(&mut tcp, Duration::from_millis(550));
        let n = count(&got, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!((3..=7).contains(&n), "{n} interim responses");
        assert_eq!(got.len(), n * 25, "nothing but interim responses");
        stops_promptly(server);
    }

    #[test]
    fn trickle_sends_one_chunk_per_gap() {
        let head = head("200 OK", &[("transfer-encoding", "chunked")]);
        let server = HostileServer::plain(Behaviour::Trickle {
            head: head.clone(),
            chunked: true,
            every: Duration::from_millis(100),
        })
        .unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(REQUEST).unwrap();
        let got = read_for(&mut tcp, Duration::from_millis(550));
        assert!(got.starts_with(head.as_bytes()));
        let n = count(&got[head.len()..], b"1\r\n\0\r\n");
        assert!((3..=6).contains(&n), "{n} chunks");
        stops_promptly(server);
    }

    #[test]
    fn flood_sends_the_whole_chunked_body() {
        let head = head("200 OK", &[("transfer-encoding", "chunked")]);
        let body = Body::zeros(3 << 20, true);
        let server = HostileServer::plain(Behaviour::Flood {
            head: head.clone(),
            body,
        })
        .unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(REQUEST).unwrap();
        let got = read_until(&mut tcp, Duration::from_secs(5), |got| {
            got.ends_with(b"\r\n0\r\n\r\n")
        });
        assert!(got.starts_with(head.as_bytes()));
        // Decode the chunked framing: the payload is exactly the body, then the end.
        let mut rest = &got[head.len()..];
        let mut payload = 0usize;
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16)
                .expect("hex chunk size");
            rest = &rest[line_end + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n");
                break;
            }
            assert!(rest[..size].iter().all(|&b| b == 0));
            assert_eq!(&rest[size..size + 2], b"\r\n");
            payload += size;
            rest = &rest[size + 2..];
        }
        assert_eq!(payload, 3 << 20);
        stops_promptly(server);
    }

    #[test]
    fn voice_list_is_valid_json_of_the_size_asked() {
        let body = Body::voice_list(100_000, false);
        let len = body.len();
        assert!((99_000..=100_000).contains(&len), "{len} bytes");
        let server = HostileServer::plain(Behaviour::Flood {
            head: head("200 OK", &[("content-length", &len.to_string())]),
            body,
        })
        .unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(REQUEST).unwrap();
        let got = read_until(&mut tcp, Duration::from_secs(5), |got| got.ends_with(b"]}"));
        let start = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let json: serde_json::Value = serde_json::from_slice(&got[start..]).expect("JSON");
        assert!(json["voices"].as_array().unwrap().len() > 1000);
        stops_promptly(server);
    }

    /// The upgrade request of RFC 6455 §1.3, whose accept key is known.
    const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n\
        connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        sec-websocket-version: 13\r\n\r\n";

    #[test]
    fn ping_flood_upgrades_then_pings_and_stops_with_a_stalled_client() {
        let server = HostileServer::plain(Behaviour::WsPingFlood).unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(UPGRADE).unwrap();
        let got = read_until(&mut tcp, Duration::from_secs(2), |got| got.len() >= 4096);
        let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let answer = String::from_utf8_lossy(&got[..end]);
        assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
        assert!(answer.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert_eq!(&got[end..end + 2], [0x89, 125]);
        assert_eq!(&got[end + 2..end + 127], [b'p'; 125]);
        assert_eq!(got[end + 127], 0x89);
        // Stop reading: the server's writes stall, and it must still stop when dropped.
        std::thread::sleep(Duration::from_millis(300));
        stops_promptly(server);
    }

    #[test]
    fn ws_silent_upgrades_then_says_nothing() {
        let server = HostileServer::plain(Behaviour::WsSilent).unwrap();
        let mut tcp = connect(&server);
        tcp.write_all(UPGRADE).unwrap();
        let got = read_for(&mut tcp, Duration::from_millis(500));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "nothing after the 101: {text}");
        // It keeps reading what the client sends (a masked text frame here).
        tcp.write_all(&[0x81, 0x80, 1, 2, 3, 4]).unwrap();
        assert!(read_for(&mut tcp, Duration::from_millis(300)).is_empty());
        stops_promptly(server);
    }
}
