//! The `smallest` binary against a real emulator on loopback: the seed's two calls,
//! the demo, the emulator command, and the error paths (the key never printed).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use smallest_core::tts::{RECOMMENDED_MAX_CHARS, TTS_PATH, split_text};
use smallest_emulator::{
    Emulator, Fault, FaultRule, RunningEmulator, SAMPLE_AUDIO_TEXT, SAMPLE_AUDIO_URL,
};

const KEY: &str = "sk_cli_test_canary_4711";

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smallest-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn smallest(
    dir: &PathBuf,
    emulator: Option<&RunningEmulator>,
    key: Option<&str>,
    args: &[&str],
) -> Output {
    smallest_with_stdin(dir, emulator, key, args, None)
}

/// Runs the binary with `stdin` piped in (`None`: no stdin at all).
fn smallest_with_stdin(
    dir: &PathBuf,
    emulator: Option<&RunningEmulator>,
    key: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    smallest_with_env(dir, emulator, key, args, stdin, &[])
}

/// Runs the binary with `stdin` piped in and `env` set.
fn smallest_with_env(
    dir: &PathBuf,
    emulator: Option<&RunningEmulator>,
    key: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smallest"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("SMALLEST_API_KEY")
        .env_remove("SMALLEST_BASE_URL")
        .env_remove("SMALLEST_CA_CERT")
        .env_remove("SMALLEST_REDIS_URL")
        .env_remove("SMALLEST_TTS_CONCURRENCY")
        .env_remove("SMALLEST_STT_RPM")
        .envs(env.iter().copied());
    if let Some(emulator) = emulator {
        cmd.env("SMALLEST_BASE_URL", emulator.base_url());
    }
    if let Some(key) = key {
        cmd.env("SMALLEST_API_KEY", key);
    }
    let out = match stdin {
        None => cmd.stdin(Stdio::null()).output().unwrap(),
        Some(input) => {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut pipe = child.stdin.take().unwrap();
            let input = input.to_owned();
            let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            out
        }
    };
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(KEY), "the key was printed: {all}");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[test]
fn the_seed_calls_write_a_24khz_wav_and_transcribe_it_back() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("seed");
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &[
            "tts",
            "Hello from Smallest AI.",
            "-o",
            "hello.wav",
            "--voice",
            "meher",
            "--model",
            "lightning_v3.1_pro",
            "--sample-rate",
            "24000",
            "--format",
            "wav",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reader = hound::WavReader::open(dir.join("hello.wav")).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (24000, 1, 16)
    );
    assert!(reader.duration() > 24000 / 4);

    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", "hello.wav", "--language", "en"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello from Smallest AI.");

    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", SAMPLE_AUDIO_URL, "--language", "en", "--legacy"],
    );
    assert_eq!(
        text(&out.stdout),
        SAMPLE_AUDIO_TEXT,
        "{}",
        text(&out.stderr)
    );

    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", "hello.wav", "--word-timestamps", "--json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["words"].as_array().map(Vec::len), Some(4));
}

#[test]
fn the_key_and_base_url_come_from_a_dotenv_file() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("dotenv");
    std::fs::write(
        dir.join(".env"),
        format!(
            "SMALLEST_API_KEY={KEY}\nSMALLEST_BASE_URL={}\n",
            emulator.base_url()
        ),
    )
    .unwrap();
    let out = smallest(&dir, None, None, &["tts", "From dotenv.", "-o", "a.pcm"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("pcm"), "{}", text(&out.stderr));
}

#[test]
fn errors_go_to_stderr_with_the_fix_and_a_failing_exit() {
    let emulator = Emulator::builder().key("sk_other").spawn().unwrap();
    let dir = workdir("errors");
    let out = smallest(&dir, Some(&emulator), None, &["tts", "Hi.", "-o", "x.wav"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("SMALLEST_API_KEY is not set"),
        "{}",
        text(&out.stderr)
    );

    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "Hi.", "-o", "x.wav"],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("set SMALLEST_API_KEY"),
        "{stderr}"
    );

    let out = smallest(
        &dir,
        Some(&emulator),
        Some("sk_other"),
        &["tts", "Hi.", "-o", "x.wav", "--format", "mulaw"],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("ulaw"), "{}", text(&out.stderr));

    let out = smallest(
        &dir,
        Some(&emulator),
        Some("sk_other"),
        &["tts", "Hi.", "-o", "x.wav", "--sample-rate", "22050"],
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("sample_rate") && stderr.contains("22050") && stderr.contains("24000"),
        "{stderr}"
    );
}

#[test]
fn the_demo_round_trips_without_a_key() {
    let dir = workdir("demo");
    let out = smallest(&dir, None, None, &["demo", "-o", "demo.wav"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("round trip:  ok"), "{stdout}");
    assert!(dir.join("demo.wav").exists());
}

#[test]
fn the_emulator_command_prints_its_base_url_first() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smallest"))
        .args(["emulator", "--port", "0", "--key", KEY])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let dir = workdir("emucmd");
    let out = Command::new(env!("CARGO_BIN_EXE_smallest"))
        .current_dir(&dir)
        .args(["health", "--base-url", &url])
        .env_remove("SMALLEST_API_KEY")
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok"), "{}", text(&out.stdout));
}

#[test]
fn voices_clones_and_dictionaries_from_the_command_line() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("manage");
    let run = |args: &[&str]| {
        let out = smallest(&dir, Some(&emulator), Some(KEY), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };

    let table = run(&["voices", "--language", "hindi", "--gender", "female"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("LANGUAGES"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .skip(1)
            .all(|l| l.contains("female") && l.contains("hindi")),
        "{table}"
    );
    assert!(table.lines().count() > 1, "{table}");

    run(&[
        "tts",
        "My voice sample.",
        "-o",
        "sample.wav",
        "--sample-rate",
        "16000",
    ]);
    let clone_id = run(&[
        "clone",
        "create",
        "sample.wav",
        "--name",
        "Mine",
        "--language",
        "en",
    ]);
    assert!(clone_id.starts_with("voice_"), "{clone_id}");
    assert!(run(&["clone", "list"]).contains(&clone_id));
    run(&["tts", "Cloned.", "-o", "cloned.wav", "--voice", &clone_id]);

    let dict_id = run(&["dicts", "create", "mysql=my-sequel"]);
    assert!(run(&["dicts", "list"]).contains("mysql=my-sequel"));
    std::fs::write(
        dir.join("items.json"),
        r#"[{"word": "mysql", "pronunciation": "my-s-q-l"}]"#,
    )
    .unwrap();
    run(&["dicts", "update", &dict_id, "--file", "items.json"]);
    assert!(run(&["dicts", "list"]).contains("mysql=my-s-q-l"));
    run(&["dicts", "delete", &dict_id]);
    assert!(!run(&["dicts", "list"]).contains(&dict_id));

    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["dicts", "create", "no-equals-sign"],
    );
    assert!(!out.status.success() && text(&out.stderr).contains("word=pronunciation"));
}

/// Runs a command that must succeed; returns its stdout, trimmed.
fn ok(dir: &PathBuf, emulator: &RunningEmulator, args: &[&str]) -> String {
    let out = smallest(dir, Some(emulator), Some(KEY), args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A WAV file's (sample rate, channels, bits, samples), checking that its header's
/// sizes match its length.
fn wav_facts(path: &std::path::Path) -> (u32, u16, u16, u32) {
    let len = std::fs::metadata(path).unwrap().len();
    let reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let samples = reader.duration();
    assert_eq!(
        44 + u64::from(samples) * 2,
        len,
        "the data size in the header of {} does not match its length",
        path.display()
    );
    let file = std::fs::read(path).unwrap();
    assert_eq!(
        u64::from(u32::from_le_bytes([file[4], file[5], file[6], file[7]])),
        len - 8,
        "RIFF size"
    );
    (
        spec.sample_rate,
        spec.channels,
        spec.bits_per_sample,
        samples,
    )
}

#[test]
fn tts_stream_writes_a_patched_wav_that_transcribes_back() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("stream");
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &[
            "tts",
            "Streaming speech arrives in pieces.",
            "-o",
            "streamed.wav",
            "--stream",
            "--sample-rate",
            "24000",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    // Not a terminal: one summary line, no progress.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains('\r'), "{stderr}");
    assert!(
        stderr.starts_with("wrote streamed.wav (WAV, 16-bit PCM, 24000 Hz")
            && stderr.contains(" s of audio")
            && stderr.contains("first audio after"),
        "{stderr}"
    );
    let (rate, channels, bits, samples) = wav_facts(&dir.join("streamed.wav"));
    assert_eq!((rate, channels, bits), (24000, 1, 16));
    assert!(samples > 24000, "{samples}");
    assert!(!dir.join("streamed.wav.part").exists());
    assert_eq!(
        ok(&dir, &emulator, &["stt", "streamed.wav"]),
        "Streaming speech arrives in pieces."
    );

    // Other formats: the bytes as they come (raw PCM, no header).
    ok(
        &dir,
        &emulator,
        &["tts", "Raw bytes.", "-o", "raw.pcm", "--stream"],
    );
    let raw = std::fs::read(dir.join("raw.pcm")).unwrap();
    assert!(raw.len() > 1000 && raw.len().is_multiple_of(2) && !raw.starts_with(b"RIFF"));

    // The same audio as the one-shot call.
    ok(
        &dir,
        &emulator,
        &["tts", "Raw bytes.", "-o", "whole.pcm", "--format", "pcm"],
    );
    assert_eq!(std::fs::read(dir.join("whole.pcm")).unwrap(), raw);
}

#[test]
fn a_cut_stream_fails_and_writes_nothing() {
    let emulator = Emulator::builder()
        .key(KEY)
        .sse_stop_before_done(true)
        .spawn()
        .unwrap();
    let dir = workdir("cut");
    std::fs::write(dir.join("kept.wav"), b"the previous file").unwrap();
    for file in ["cut.wav", "kept.wav", "cut.mp3"] {
        let out = smallest(
            &dir,
            Some(&emulator),
            Some(KEY),
            &["tts", "This stream is cut short.", "-o", file, "--stream"],
        );
        assert!(!out.status.success(), "{file}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("the audio is incomplete")
                && stderr.contains(&format!("{file} was not written")),
            "{stderr}"
        );
        assert!(!dir.join(format!("{file}.part")).exists());
    }
    assert!(!dir.join("cut.wav").exists());
    assert!(!dir.join("cut.mp3").exists());
    assert_eq!(
        std::fs::read(dir.join("kept.wav")).unwrap(),
        b"the previous file"
    );
}

#[test]
fn stt_streams_a_big_file_from_disk() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("big");
    let long = "Streaming uploads keep memory flat however long the recording is. \
                The file is read from disk in pieces and sent as it is read. \
                A progress line shows how much was sent on a terminal. \
                Scripts see only the transcription on standard output.";
    ok(
        &dir,
        &emulator,
        &["tts", long, "-o", "big.wav", "--sample-rate", "44100"],
    );
    let size = std::fs::metadata(dir.join("big.wav")).unwrap().len();
    assert!(size >= 1_048_576, "{size}");
    let out = smallest(&dir, Some(&emulator), Some(KEY), &["stt", "big.wav"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), long);
    // Not a terminal: no progress.
    assert_eq!(text(&out.stderr), "");
    // The upload went out with its length (streamed, not chunked).
    let upload = emulator
        .requests()
        .into_iter()
        .rfind(|r| r.path.starts_with("/waves/v1/stt"))
        .unwrap();
    assert_eq!(
        upload.header("content-length"),
        Some(size.to_string().as_str())
    );

    let out = smallest(&dir, Some(&emulator), Some(KEY), &["stt", "missing.wav"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read missing.wav"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stt_live_prints_the_finals() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("sttlive");
    ok(
        &dir,
        &emulator,
        &[
            "tts",
            "Hello from Smallest AI.",
            "-o",
            "hello16.wav",
            "--sample-rate",
            "16000",
        ],
    );
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", "--live", "hello16.wav", "--pace", "0"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello from Smallest AI.");
    assert_eq!(text(&out.stderr), "");

    // Real-time pacing, twice as fast: at least half the audio's duration.
    let (rate, _, _, samples) = wav_facts(&dir.join("hello16.wav"));
    let audio = Duration::from_secs_f64(f64::from(samples) / f64::from(rate));
    let started = Instant::now();
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", "--live", "hello16.wav", "--pace", "2"],
    );
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello from Smallest AI.");
    assert!(
        took >= audio.mul_f64(0.45),
        "{took:?} for {audio:?} of audio at pace 2"
    );

    // A 44.1 kHz file is streamed at its own rate.
    ok(
        &dir,
        &emulator,
        &["tts", "At its own rate.", "-o", "hello44.wav"],
    );
    assert_eq!(
        ok(
            &dir,
            &emulator,
            &["stt", "--live", "hello44.wav", "--pace", "0"]
        ),
        "At its own rate."
    );

    // Not 16-bit PCM mono: refused with the fix.
    ok(
        &dir,
        &emulator,
        &["tts", "Mu-law.", "-o", "ulaw.wav", "--format", "ulaw"],
    );
    std::fs::write(dir.join("notwav.wav"), b"not a wav file at all").unwrap();
    for file in ["ulaw.wav", "notwav.wav", "missing.wav"] {
        let out = smallest(
            &dir,
            Some(&emulator),
            Some(KEY),
            &["stt", "--live", file, "--pace", "0"],
        );
        assert!(!out.status.success(), "{file}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("16-bit PCM mono") || stderr.contains("cannot read"),
            "{stderr}"
        );
    }
}

#[test]
fn stt_live_over_the_session_limit_fails_with_the_reason() {
    let emulator = Emulator::builder()
        .key(KEY)
        .stt_ws_limit(0)
        .spawn()
        .unwrap();
    let dir = workdir("sttlimit");
    ok(
        &dir,
        &emulator,
        &[
            "tts",
            "Over the limit.",
            "-o",
            "a.wav",
            "--sample-rate",
            "16000",
        ],
    );
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", "--live", "a.wav", "--pace", "0"],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("1008") && stderr.contains("limit"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn tts_live_speaks_the_lines_of_stdin() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("ttslive");
    let out = smallest_with_stdin(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "--live", "-o", "live.wav", "--sample-rate", "24000"],
        Some("Hello from\n\nthe live socket.\r\nOne more line.\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("wrote live.wav (WAV, 16-bit PCM, 24000 Hz")
            && stderr.contains("3 lines of text"),
        "{stderr}"
    );
    let (rate, channels, bits, samples) = wav_facts(&dir.join("live.wav"));
    assert_eq!((rate, channels, bits), (24000, 1, 16));
    assert!(samples > 24000);
    assert!(!dir.join("live.wav.part").exists());
    assert_eq!(
        ok(&dir, &emulator, &["stt", "live.wav"]),
        "Hello from the live socket. One more line."
    );

    // Raw PCM for another extension.
    let out = smallest_with_stdin(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "--live", "-o", "live.pcm"],
        Some("Raw."),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let raw = std::fs::read(dir.join("live.pcm")).unwrap();
    assert!(raw.len() > 1000 && !raw.starts_with(b"RIFF"));

    // No text: an error, and no file.
    let out = smallest_with_stdin(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "--live", "-o", "empty.wav"],
        Some("\n  \n"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no text on stdin"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("empty.wav").exists() && !dir.join("empty.wav.part").exists());

    // Live audio is PCM: MP3 is refused before connecting.
    let out = smallest_with_stdin(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "--live", "-o", "x.mp3", "--format", "mp3"],
        Some("Hi."),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--format wav or pcm"));
}

#[test]
fn tts_live_legacy_mode_and_stt_live_reconnect() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("voiceagent");
    // --no-continue: the pieces of one legacy request, the same words.
    let out = smallest_with_stdin(
        &dir,
        Some(&emulator),
        Some(KEY),
        &[
            "tts",
            "--live",
            "--no-continue",
            "-o",
            "legacy.wav",
            "--sample-rate",
            "16000",
        ],
        Some("The legacy mode.\nStill works fine.\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        ok(&dir, &emulator, &["stt", "legacy.wav"]),
        "The legacy mode. Still works fine."
    );
    // The emulator drops the live STT socket once mid-file: --reconnect goes on, says
    // so on stderr, and the transcript is whole.
    emulator.inject(
        FaultRule::new(
            "/waves/v1/stt/live",
            Fault::WsDrop {
                after_messages: 3,
                after_ms: None,
            },
        )
        .times(1),
    );
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", "--live", "legacy.wav", "--pace", "0", "--reconnect"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "The legacy mode. Still works fine.");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the connection dropped: reconnected (1)"),
        "{stderr}"
    );
    // Without --reconnect the same drop fails the command: the transcript is incomplete.
    emulator.inject(
        FaultRule::new(
            "/waves/v1/stt/live",
            Fault::WsDrop {
                after_messages: 3,
                after_ms: None,
            },
        )
        .times(1),
    );
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["stt", "--live", "legacy.wav", "--pace", "0"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("incomplete"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smallest"))
        .args(["voices"])
        .env("SMALLEST_API_KEY", KEY)
        .env("SMALLEST_BASE_URL", emulator.base_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once, as `smallest voices | head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A server on 127.0.0.1 that accepts connections, reads what arrives and never
/// answers; it stops when the test's process ends (the thread is bounded in time).
fn silent_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let mut held = Vec::new();
        while Instant::now() < until && held.len() < 16 {
            if let Ok((socket, _)) = listener.accept() {
                held.push(socket);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    url
}

#[test]
fn a_silent_server_ends_the_command_at_the_timeout_instead_of_hanging() {
    let dir = workdir("silent");
    let url = silent_server();
    for (args, limit) in [
        (vec!["voices", "--timeout", "1", "--max-retries", "0"], 1.0),
        (
            vec![
                "tts",
                "Hi.",
                "-o",
                "x.wav",
                "--total-timeout",
                "1",
                "--max-retries",
                "0",
            ],
            1.0,
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--base-url", url.as_str()]);
        let started = Instant::now();
        let out = smallest(&dir, None, Some(KEY), &all);
        let took = started.elapsed().as_secs_f64();
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{all:?}: {err}");
        assert!(err.contains("timed out"), "{all:?}: {err}");
        assert!(took < limit + 3.0, "{all:?} took {took:.1} s: {err}");
        assert!(!err.contains(KEY));
    }
    let help = text(&smallest(&dir, None, None, &["tts", "--help"]).stdout);
    assert!(
        help.contains("--timeout") && help.contains("10 s"),
        "{help}"
    );
}

#[test]
fn a_quoted_dotenv_key_with_a_comment_works_and_an_empty_variable_does_not_hide_it() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("dotenv-quoted");
    std::fs::write(
        dir.join(".env"),
        format!(
            "SMALLEST_API_KEY=\"{KEY}\" # from the console\nexport SMALLEST_BASE_URL='{}'\n",
            emulator.base_url()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smallest"))
        .current_dir(&dir)
        .args(["voices", "--json"])
        .env("SMALLEST_API_KEY", "")
        .env_remove("SMALLEST_BASE_URL")
        .env_remove("SMALLEST_CA_CERT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains(KEY));
}

/// A server on 127.0.0.1 that answers every request (at most 4, for 30 s) with `reply`.
fn canned_server(reply: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let mut served = 0;
        while Instant::now() < until && served < 4 {
            let Ok((socket, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            served += 1;
            socket.set_nonblocking(false).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(socket.try_clone().unwrap());
            for _ in 0..100 {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let mut socket = socket;
            let _ = socket.write_all(reply.as_bytes());
        }
    });
    url
}

#[test]
fn server_text_reaches_the_terminal_with_its_control_characters_escaped() {
    let dir = workdir("escapes");
    let body = r#"{"message":"bad key \u001b[2J\u0007\r forged line"}"#;
    let url = canned_server(format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    ));
    let out = smallest(&dir, None, Some(KEY), &["voices", "--base-url", &url]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("bad key"), "{err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}') && !err.contains('\r'),
        "{err:?}"
    );
    assert!(err.contains("\\u{1b}"), "{err:?}");
}

#[test]
fn a_connection_failure_shows_its_cause_the_server_and_the_fix() {
    let dir = workdir("causes");
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("http://127.0.0.1:{port}");
    let out = smallest(
        &dir,
        None,
        Some(KEY),
        &["voices", "--base-url", &refused, "--max-retries", "0"],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.to_ascii_lowercase().contains("refused"), "{err}");
    assert!(
        err.contains(&refused) && err.contains("--base-url"),
        "{err}"
    );

    let emulator = Emulator::builder().key(KEY).tls(true).spawn().unwrap();
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["voices", "--max-retries", "0"],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("certificate") && err.contains("--ca-cert"),
        "{err}"
    );
    assert!(!err.contains(KEY));
}

#[test]
fn quiet_results_say_so_and_timestamps_are_printed_without_json() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("quiet");
    ok(
        &dir,
        &emulator,
        &["tts", "Two words.", "-o", "two.wav", "--format", "wav"],
    );
    let words = ok(&dir, &emulator, &["stt", "two.wav", "--word-timestamps"]);
    let lines: Vec<&str> = words.lines().collect();
    assert!(lines.len() >= 3, "{words}");
    assert!(
        lines[1]
            .trim_start()
            .starts_with(|c: char| c.is_ascii_digit()),
        "{words}"
    );
    assert!(words.contains("Two") && words.contains("words"), "{words}");

    // One second of silence: nothing is recognized, and the command says so.
    let mut silence = hound::WavWriter::create(
        dir.join("silence.wav"),
        hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )
    .unwrap();
    for _ in 0..16000 {
        silence.write_sample(0i16).unwrap();
    }
    silence.finalize().unwrap();
    let out = smallest(&dir, Some(&emulator), Some(KEY), &["stt", "silence.wav"]);
    assert!(text(&out.stderr).contains("empty"), "{}", text(&out.stderr));

    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["voices", "--gender", "robot"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no voice matched"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_container_follows_the_file_name_and_dash_means_stdin_and_stdout() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("container");
    for format in ["pcm", "ulaw", "alaw"] {
        let file = format!("x-{format}.wav");
        let out = smallest(
            &dir,
            Some(&emulator),
            Some(KEY),
            &[
                "tts",
                "Hello.",
                "-o",
                &file,
                "--format",
                format,
                "--sample-rate",
                "16000",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("in a WAV file"),
            "{}",
            text(&out.stderr)
        );
        let reader = hound::WavReader::open(dir.join(&file));
        assert!(
            reader.is_ok() || format != "pcm",
            "{format}: {:?}",
            reader.err()
        );
        let bytes = std::fs::read(dir.join(&file)).unwrap();
        assert_eq!(&bytes[..4], b"RIFF", "{format}");
    }
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "Raw.", "-o", "x.pcm"],
    );
    assert!(text(&out.stderr).contains("raw"), "{}", text(&out.stderr));

    let out = smallest_with_stdin(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "-", "-o", "-"],
        Some("Text from stdin.\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(&out.stdout[..4], b"RIFF");
    std::fs::write(dir.join("piped.wav"), &out.stdout).unwrap();
    let heard = ok(&dir, &emulator, &["stt", "piped.wav"]);
    assert_eq!(heard.trim(), "Text from stdin.");
}

#[cfg(unix)]
#[test]
fn sigterm_and_sighup_leave_no_partial_file_and_exit_like_a_killed_process() {
    use smallest_emulator::{Fault, FaultRule};
    for (signal, status) in [("-TERM", 143), ("-HUP", 129), ("-INT", 130)] {
        let emulator = Emulator::builder()
            .key(KEY)
            .fault(FaultRule::new(
                "/waves/v1/tts/live",
                Fault::StallBody {
                    after_bytes: 2000,
                    duration: Duration::from_secs(20),
                },
            ))
            .spawn()
            .unwrap();
        let dir = workdir(&format!("signal{status}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_smallest"))
            .current_dir(&dir)
            .args([
                "tts",
                "A sentence that takes a while.",
                "-o",
                "out.wav",
                "--stream",
            ])
            .env("SMALLEST_API_KEY", KEY)
            .env("SMALLEST_BASE_URL", emulator.base_url())
            .env_remove("SMALLEST_CA_CERT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait (bounded) until the audio is being written to the part file.
        let started = Instant::now();
        while !dir.join("out.wav.part").exists() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dir.join("out.wav.part").exists(), "{signal}: no part file");
        let killed = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let waited = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            if waited.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("{signal}: the command did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(code, Some(status), "{signal}");
        assert!(
            !dir.join("out.wav.part").exists(),
            "{signal}: the part file stayed"
        );
        assert!(
            !dir.join("out.wav").exists(),
            "{signal}: a partial file took the name"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_stream_into_a_symlink_a_fifo_or_stdout_writes_through_and_replaces_nothing() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("through");
    // A symlink: the audio lands in the file it points at; the link stays a link.
    std::fs::write(dir.join("real.wav"), b"old").unwrap();
    let _ = std::fs::remove_file(dir.join("link.wav"));
    std::os::unix::fs::symlink(dir.join("real.wav"), dir.join("link.wav")).unwrap();
    ok(
        &dir,
        &emulator,
        &["tts", "Through a link.", "-o", "link.wav", "--stream"],
    );
    let link = std::fs::symlink_metadata(dir.join("link.wav")).unwrap();
    assert!(link.file_type().is_symlink());
    let real = std::fs::read(dir.join("real.wav")).unwrap();
    assert_eq!(&real[..4], b"RIFF");

    // A FIFO: read by another thread while the command writes; it stays a FIFO.
    let fifo = dir.join("pipe.wav");
    let _ = std::fs::remove_file(&fifo);
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(
        &dir,
        &emulator,
        &["tts", "Through a pipe.", "-o", "pipe.wav", "--stream"],
    );
    let piped = reader.join().unwrap();
    assert_eq!(&piped[..4], b"RIFF");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    // `-`: stdout.
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "To stdout.", "-o", "-", "--stream"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(&out.stdout[..4], b"RIFF");
    assert!(!dir.join("-").exists() && !dir.join("-.part").exists());
}

#[test]
fn pronunciation_dicts_insecure_http_and_unknown_voices_from_the_command_line() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("flags");
    let id = ok(&dir, &emulator, &["dicts", "create", "mysql=my-sequel"]);
    let id = id.trim();
    ok(
        &dir,
        &emulator,
        &[
            "tts",
            "I use mysql.",
            "-o",
            "d.wav",
            "--pronunciation-dict",
            id,
        ],
    );
    // The emulator speaks the respelled text: its transcript shows the dictionary applied.
    let heard = ok(&dir, &emulator, &["stt", "d.wav"]);
    assert!(heard.contains("my-sequel"), "{heard}");
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &[
            "tts",
            "Hi.",
            "-o",
            "e.wav",
            "--pronunciation-dict",
            "no_such_dict",
        ],
    );
    assert!(
        text(&out.stderr).contains("no_such_dict"),
        "{}",
        text(&out.stderr)
    );

    // The core's advice names the CLI's flag.
    let out = smallest(
        &dir,
        None,
        Some(KEY),
        &["voices", "--base-url", "http://10.0.0.1:9"],
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("--allow-insecure-http") && !err.contains("Config::"),
        "{err}"
    );

    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "Hi.", "-o", "v.wav", "--voice", "nobody_at_all"],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("smallest voices"), "{err}");
}

#[test]
fn a_refused_value_is_named_by_the_flag_that_set_it() {
    let dir = workdir("flag-names");
    let out = smallest(
        &dir,
        None,
        Some(KEY),
        &["tts", "Hi.", "-o", "a.wav", "--sample-rate", "12345"],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--sample-rate") && err.contains("12345"),
        "{err}"
    );
    assert!(!err.contains("`sample_rate`"), "{err}");
}

#[test]
fn verbose_shows_each_call_and_attempt_and_never_the_key_or_the_text() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("verbose");
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "-v", "Secret words.", "-o", "v.wav"],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("smallest.call") && err.contains("attempt=1") && err.contains("status=200"),
        "{err}"
    );
    assert!(!err.contains(KEY) && !err.contains("Secret words"), "{err}");
    let quiet = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "Quiet.", "-o", "q.wav"],
    );
    assert!(!text(&quiet.stderr).contains("smallest.call"));
}

#[test]
fn the_emulator_command_takes_every_flag_of_the_emulator_binary() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smallest"))
        .args([
            "emulator",
            "--port",
            "0",
            "--key",
            KEY,
            "--forbidden-key",
            "sk_forbidden_cli_0001",
            "--tts-concurrency",
            "2",
            "--tts-latency-ms",
            "1",
            "--max-upload-bytes",
            "1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().to_owned();
    let dir = workdir("emuflags");
    let run = |key: &str, args: &[&str]| {
        // The client flags after the command's name, where they belong.
        let mut all = args.to_vec();
        all.extend_from_slice(&["--base-url", url.as_str(), "--max-retries", "0"]);
        smallest(&dir, None, Some(key), &all)
    };
    let forbidden = run("sk_forbidden_cli_0001", &["tts", "Hi.", "-o", "f.wav"]);
    let big = {
        std::fs::write(dir.join("big.wav"), vec![0u8; 4000]).unwrap();
        run(KEY, &["stt", "big.wav"])
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        text(&forbidden.stderr).contains("403"),
        "{}",
        text(&forbidden.stderr)
    );
    assert!(text(&big.stderr).contains("413"), "{}", text(&big.stderr));
}

/// About 900 characters in fifteen sentences: more than one request's worth of text.
fn long_text() -> String {
    (1..=15)
        .map(|i| format!("Sentence number {i} of the long text says a little more."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many synthesis requests (`POST /waves/v1/tts`) the emulator has seen.
fn tts_requests(emulator: &RunningEmulator) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == TTS_PATH)
        .count()
}

/// Fails if `out`'s stderr holds any part of a progress display: a redraw in place
/// (`\r`), an escape sequence, or the words a spinner or a bar shows.
fn assert_no_progress(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains("\u{1b}["),
        "{what}: a progress display reached a stderr that is not a terminal: {stderr:?}"
    );
    for word in [
        "synthesizing",
        "chunk",
        "uploading",
        "transcribing",
        "receiving",
        "ETA",
    ] {
        assert!(!stderr.contains(word), "{what}: {word:?} in {stderr:?}");
    }
}

#[test]
fn no_progress_is_drawn_on_a_stderr_that_is_not_a_terminal() {
    // Slow enough for a spinner to turn a few times, were it drawn.
    let emulator = Emulator::builder()
        .key(KEY)
        .tts_latency(Duration::from_millis(150))
        .spawn()
        .unwrap();
    let dir = workdir("no-progress");
    // A terminal type that draws: only the piped stderr keeps the display off.
    let env = [("TERM", "xterm-256color"), ("COLUMNS", "100")];
    let run = |args: &[&str]| {
        let out = smallest_with_env(&dir, Some(&emulator), Some(KEY), args, None, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        out
    };

    let out = run(&["tts", "A short text.", "-o", "short.wav"]);
    assert_no_progress("tts", &out);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("wrote short.wav") && !stderr.contains("requests"),
        "{stderr}"
    );

    let long = long_text();
    let out = run(&["tts", &long, "-o", "long.wav", "--sample-rate", "16000"]);
    assert_no_progress("tts, a long text", &out);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Over 1 MB: the upload that shows a bar on a terminal.
    assert!(std::fs::metadata(dir.join("long.wav")).unwrap().len() >= 1_000_000);
    let out = run(&["stt", "long.wav"]);
    assert_no_progress("stt FILE", &out);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), long);

    let out = run(&["stt", "long.wav", "--json"]);
    assert_no_progress("stt --json", &out);

    let out = run(&["tts", "Streamed.", "-o", "streamed.wav", "--stream"]);
    assert_no_progress("tts --stream", &out);
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_long_text_is_spoken_in_chunks_of_at_most_250_characters_and_joined_into_one_wav() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let dir = workdir("long");
    let long = long_text();
    assert!(long.chars().count() > 3 * RECOMMENDED_MAX_CHARS, "{long}");
    let pieces = split_text(&long, RECOMMENDED_MAX_CHARS);
    assert!(pieces.len() >= 4, "{pieces:?}");

    let before = tts_requests(&emulator);
    let out = smallest(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", &long, "-o", "long.wav", "--sample-rate", "16000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("wrote long.wav (wav as sent, 16000 Hz")
            && stderr.ends_with(&format!(") in {} requests", pieces.len())),
        "{stderr}"
    );
    assert_eq!(tts_requests(&emulator) - before, pieces.len());
    // Every request carried at most 250 characters of text (JSON bodies, a little more).
    let sizes: Vec<usize> = emulator
        .requests()
        .iter()
        .filter(|r| r.path == TTS_PATH)
        .skip(before)
        .map(|r| r.body_len)
        .collect();
    assert!(
        sizes.iter().all(|&n| n < RECOMMENDED_MAX_CHARS + 200),
        "{sizes:?}"
    );

    // One valid WAV, as long as its pieces spoken one by one.
    let (rate, channels, bits, samples) = wav_facts(&dir.join("long.wav"));
    assert_eq!((rate, channels, bits), (16000, 1, 16));
    let mut sum = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let file = format!("piece{i}.wav");
        ok(
            &dir,
            &emulator,
            &["tts", piece, "-o", &file, "--sample-rate", "16000"],
        );
        sum += wav_facts(&dir.join(&file)).3;
    }
    assert_eq!(samples, sum);
    // In order: it transcribes back to the whole text.
    assert_eq!(ok(&dir, &emulator, &["stt", "long.wav"]), long);

    // Raw PCM into a .wav file: joined the same way, then given its header.
    ok(
        &dir,
        &emulator,
        &[
            "tts",
            &long,
            "-o",
            "long-pcm.wav",
            "--format",
            "pcm",
            "--sample-rate",
            "16000",
        ],
    );
    assert_eq!(wav_facts(&dir.join("long-pcm.wav")).3, samples);

    // Refused before any request: an empty text, a bad value in a long text.
    let before = tts_requests(&emulator);
    for (args, says) in [
        (vec!["tts", "   ", "-o", "empty.wav"], "the text"),
        (
            vec!["tts", long.as_str(), "-o", "fast.wav", "--speed", "9"],
            "--speed",
        ),
    ] {
        let out = smallest(&dir, Some(&emulator), Some(KEY), &args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(tts_requests(&emulator), before, "a request was made");
    assert!(!dir.join("empty.wav").exists() && !dir.join("fast.wav").exists());
}

#[cfg(unix)]
#[test]
fn a_signal_during_a_long_text_writes_nothing_and_exits_like_a_killed_process() {
    let emulator = Emulator::builder()
        .key(KEY)
        .tts_latency(Duration::from_millis(800))
        .spawn()
        .unwrap();
    let dir = workdir("long-signal");
    let mut child = Command::new(env!("CARGO_BIN_EXE_smallest"))
        .current_dir(&dir)
        .args(["tts", &long_text(), "-o", "out.wav"])
        .env("SMALLEST_API_KEY", KEY)
        .env("SMALLEST_BASE_URL", emulator.base_url())
        .env_remove("SMALLEST_CA_CERT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the second chunk's request is under way.
    let started = Instant::now();
    while tts_requests(&emulator) < 2 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(tts_requests(&emulator) >= 2, "the requests did not start");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let waited = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if waited.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the command did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("out.wav was not written"),
        "{stderr}"
    );
    assert!(!dir.join("out.wav").exists());
}

/// Runs the binary on a pseudo-terminal `cols` columns wide (through util-linux
/// `script`), with `COLUMNS` saying 200, and returns what the terminal received
/// (stdout and stderr). `None` when `script` is not there to run it.
#[cfg(unix)]
fn on_a_terminal(
    dir: &PathBuf,
    emulator: &RunningEmulator,
    cols: u16,
    args: &[&str],
) -> Option<String> {
    // The arguments travel in the environment: no shell quoting to get wrong.
    let mut command = format!("stty cols {cols} rows 24 && exec \"$SMALLEST_BIN\"");
    let mut cmd = Command::new("script");
    for (i, arg) in args.iter().enumerate() {
        command.push_str(&format!(" \"$ARG{i}\""));
        cmd.env(format!("ARG{i}"), arg);
    }
    cmd.args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .env("SMALLEST_BIN", env!("CARGO_BIN_EXE_smallest"))
        .env("SHELL", "/bin/sh")
        .env("TERM", "xterm")
        .env("COLUMNS", "200")
        .env("SMALLEST_API_KEY", KEY)
        .env("SMALLEST_BASE_URL", emulator.base_url())
        .env_remove("SMALLEST_CA_CERT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        eprintln!("skipped: util-linux `script` is not installed");
        return None;
    };
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut all);
        all
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{args:?} on a terminal did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let all = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(!all.contains(KEY), "the key was printed: {all}");
    assert!(status.success(), "{args:?} on a terminal: {all:?}");
    Some(all)
}

/// The pieces of terminal output between redraws: split at `\r`, `\n` and escape
/// sequences, blank ones dropped.
fn drawn_pieces(all: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut chars = all.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => pieces.push(String::new()),
            '\u{1b}' => {
                // CSI: ESC [ parameters, then one final letter.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                pieces.push(String::new());
            }
            c => pieces.last_mut().unwrap().push(c),
        }
    }
    pieces.retain(|p| !p.trim().is_empty());
    pieces
}

#[cfg(unix)]
#[test]
fn on_a_terminal_progress_is_drawn_at_its_real_width_and_cleared_before_the_summary() {
    use smallest_emulator::{Fault, FaultRule};
    let emulator = Emulator::builder()
        .key(KEY)
        .tts_latency(Duration::from_millis(200))
        // The transcript comes slowly after the upload: time for the spinner to show.
        .fault(FaultRule::new(
            "/waves/v1/stt",
            Fault::TrickleBody {
                chunk_bytes: 64,
                interval: Duration::from_millis(20),
            },
        ))
        .spawn()
        .unwrap();
    let dir = workdir("tty");
    let long = long_text();
    let n = split_text(&long, RECOMMENDED_MAX_CHARS).len();
    let Some(all) = on_a_terminal(
        &dir,
        &emulator,
        50,
        &["tts", &long, "-o", "long.wav", "--sample-rate", "16000"],
    ) else {
        return;
    };
    assert!(
        all.contains("synthesizing chunk 1/") && all.contains(&format!("chunk {n}/{n}")),
        "{all:?}"
    );
    assert!(all.contains("ETA"), "{all:?}");
    // Drawn in place, each frame within the terminal's 50 columns (not COLUMNS=200).
    assert!(all.contains("\r\u{1b}[2K"), "{all:?}");
    for piece in drawn_pieces(&all) {
        if !piece.starts_with("wrote ") {
            assert!(piece.chars().count() <= 50, "{piece:?} is wider than 50");
        }
    }
    // Cleared before the summary, which starts on an empty line.
    let summary = all.find("wrote long.wav").expect("no summary");
    assert!(all[..summary].ends_with("\u{1b}[2K"), "{all:?}");
    assert!(
        all[summary..].contains(&format!("in {n} requests")),
        "{all:?}"
    );

    // The upload of a file over 1 MB: a bar, then the spinner, then the transcript.
    let Some(all) = on_a_terminal(&dir, &emulator, 80, &["stt", "long.wav"]) else {
        return;
    };
    let bar = all.find("uploading long.wav").expect("no upload bar");
    let waiting = all.rfind("transcribing").expect("no spinner");
    let transcript = all.find(&long).expect("no transcript");
    assert!(bar < waiting && waiting < transcript, "{all:?}");
    assert!(all[..transcript].ends_with("\u{1b}[2K"), "{all:?}");
    let size = std::fs::metadata(dir.join("long.wav")).unwrap().len();
    let total = format!("/{:.2} MB", size as f64 / 1e6);
    assert!(
        all.contains("MB/s") && all.contains(&total),
        "{total}: {all:?}"
    );
}

#[test]
fn client_flags_are_only_on_the_commands_that_call_the_api() {
    let dir = workdir("flags-where");
    let help = |args: &[&str]| {
        let out = smallest(&dir, None, None, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let client_flags = [
        "--base-url",
        "--ca-cert",
        "--max-retries",
        "--timeout",
        "--total-timeout",
        "--allow-insecure-http",
        "--proxy",
    ];
    for command in [
        &["demo", "--help"][..],
        &["emulator", "--help"],
        &["--help"],
    ] {
        let shown = help(command);
        for flag in client_flags {
            assert!(!shown.contains(flag), "{command:?} lists {flag}: {shown}");
        }
    }
    assert!(!help(&["emulator", "--help"]).contains("--verbose"));
    assert!(help(&["demo", "--help"]).contains("--verbose"));
    for command in [
        &["tts", "--help"][..],
        &["stt", "--help"],
        &["voices", "--help"],
        &["health", "--help"],
        &["clone", "--help"],
        &["clone", "list", "--help"],
        &["clone", "create", "--help"],
        &["dicts", "--help"],
        &["dicts", "update", "--help"],
    ] {
        let shown = help(command);
        for flag in client_flags.iter().chain(&["--verbose"]) {
            assert!(shown.contains(flag), "{command:?} lacks {flag}: {shown}");
        }
    }

    // Where a flag does not apply, clap refuses it (exit status 2).
    for args in [
        &["emulator", "--base-url", "x"][..],
        &["emulator", "-v"],
        &["demo", "--max-retries", "0"],
        &["--base-url", "x", "tts", "Hi.", "-o", "x.wav"],
    ] {
        let out = smallest(&dir, None, Some(KEY), args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("unexpected argument"),
            "{args:?}"
        );
    }

    // After the command's name they work; on clone and dicts, around the subcommand
    // too. SMALLEST_BASE_URL points at nothing: only the flag reaches the emulator.
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let url = emulator.base_url();
    let nowhere = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    };
    let env = [("SMALLEST_BASE_URL", nowhere.as_str())];
    for args in [
        &["tts", "Hi.", "-o", "flag.wav", "--base-url", &url][..],
        &["voices", "--base-url", &url, "--max-retries", "0"],
        &["health", "--base-url", &url],
        &["clone", "list", "--base-url", &url],
        &["clone", "--base-url", &url, "list"],
        &["dicts", "--base-url", &url, "--timeout", "5", "list"],
    ] {
        let out = smallest_with_env(&dir, None, Some(KEY), args, None, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let out = smallest(&dir, None, None, &["demo", "-v", "-o", "demo-v.wav"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("smallest.call"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `smallest tts` against a TLS emulator with `env` set (the proxy variables
/// cleared first) and `--ca-cert`.
fn tts_with_env(
    dir: &PathBuf,
    emulator: &RunningEmulator,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Output {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emulator.ca_certificate_pem().unwrap()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smallest"));
    cmd.current_dir(dir)
        .args(["tts", "Through a proxy.", "-o", "proxied.wav", "--ca-cert"])
        .arg(&ca)
        .args(extra)
        .env("SMALLEST_API_KEY", KEY)
        .env("SMALLEST_BASE_URL", emulator.base_url())
        .stdin(Stdio::null());
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn https_goes_through_the_proxy_of_the_environment_or_of_the_flag() {
    use smallest_tests::proxy::{Behaviour, ConnectProxy};
    let dir = workdir("proxy");
    let emulator = Emulator::builder().key(KEY).tls(true).spawn().unwrap();
    let proxy = ConnectProxy::start(Behaviour::Open);
    let target = format!("127.0.0.1:{}", emulator.addr().port());

    let out = tts_with_env(&dir, &emulator, &[("HTTPS_PROXY", &proxy.url())], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("proxied.wav").exists());
    let connects = proxy.connects();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert_eq!(connects[0].target, target);

    // NO_PROXY and `--proxy none` connect directly.
    let out = tts_with_env(
        &dir,
        &emulator,
        &[("https_proxy", &proxy.url()), ("NO_PROXY", "127.0.0.1")],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tts_with_env(
        &dir,
        &emulator,
        &[("HTTPS_PROXY", &proxy.url())],
        &["--proxy", "none"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(proxy.connects().len(), 1);

    // `--proxy` wins over the environment; a refusal is explained, once.
    let refusing = ConnectProxy::start(Behaviour::RequireAuth("Basic x".into()));
    let out = tts_with_env(
        &dir,
        &emulator,
        &[("HTTPS_PROXY", &proxy.url())],
        &["--proxy", &refusing.url()],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("407") && err.contains("user:password@"),
        "{err}"
    );
    assert_eq!(refusing.connects().len(), 1, "a 407 is not retried: {err}");
    assert_eq!(proxy.connects().len(), 1);

    // A bad proxy URL names where it came from, without its password.
    let out = tts_with_env(
        &dir,
        &emulator,
        &[("HTTPS_PROXY", "socks5://u:hunter2@x:1")],
        &[],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("HTTPS_PROXY") && !err.contains("hunter2"),
        "{err}"
    );
    let out = tts_with_env(&dir, &emulator, &[], &["--proxy", "https://u:hunter2@x:1"]);
    let err = text(&out.stderr);
    assert!(err.contains("--proxy") && !err.contains("hunter2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tts_processes_share_the_account_through_redis() {
    let Some(redis) =
        smallest_tests::redis::RedisServer::start("tts_processes_share_the_account_through_redis")
    else {
        return;
    };
    // One slot on the server; three processes at once, each with a long text (three
    // calls): without shared limits they collide.
    let emulator = Emulator::builder()
        .key(KEY)
        .tts_latency(Duration::from_millis(100))
        .spawn()
        .unwrap();
    let dir = workdir("fleet");
    let url = redis.url();
    let long = "One. ".repeat(120).trim().to_owned();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|i| {
                let (dir, emulator, url, long) = (&dir, &emulator, &url, &long);
                scope.spawn(move || {
                    let file = format!("fleet{i}.wav");
                    smallest_with_env(
                        dir,
                        Some(emulator),
                        Some(KEY),
                        &["tts", long, "-o", &file],
                        None,
                        &[
                            ("SMALLEST_REDIS_URL", url),
                            ("SMALLEST_TTS_CONCURRENCY", "1"),
                        ],
                    )
                })
            })
            .collect();
        for run in runs {
            let out = run.join().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(
                !text(&out.stderr).contains("retrying"),
                "{}",
                text(&out.stderr)
            );
        }
    });
    let tts: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|r| r.path == TTS_PATH)
        .collect();
    assert_eq!(tts.len(), 9, "three chunks per process");
    assert!(tts.iter().all(|r| r.status == 200), "a 429 got through");

    // Redis down: a clear error naming the URL and the way out, and nothing sent.
    let before = emulator.requests().len();
    let out = smallest_with_env(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "Hello.", "-o", "down.wav"],
        None,
        &[("SMALLEST_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("redis://:***@127.0.0.1:1/0"), "{stderr}");
    assert!(stderr.contains("SMALLEST_REDIS_FALLBACK=local"), "{stderr}");
    assert!(
        !stderr.contains("hunter2") && !stderr.contains(KEY),
        "{stderr}"
    );
    assert_eq!(emulator.requests().len(), before);

    // A number that is not one names the variable.
    let out = smallest_with_env(
        &dir,
        Some(&emulator),
        Some(KEY),
        &["tts", "Hello.", "-o", "bad.wav"],
        None,
        &[("SMALLEST_TTS_CONCURRENCY", "two")],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("SMALLEST_TTS_CONCURRENCY"), "{stderr}");
}
