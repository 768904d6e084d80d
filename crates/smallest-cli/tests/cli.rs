//! The `smallest` binary against a real emulator on loopback: the seed's two calls,
//! the demo, the emulator command, and the error paths (the key never printed).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use smallest_emulator::{Emulator, RunningEmulator, SAMPLE_AUDIO_TEXT, SAMPLE_AUDIO_URL};

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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smallest"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("SMALLEST_API_KEY")
        .env_remove("SMALLEST_BASE_URL")
        .env_remove("SMALLEST_CA_CERT");
    if let Some(emulator) = emulator {
        cmd.env("SMALLEST_BASE_URL", emulator.base_url());
    }
    if let Some(key) = key {
        cmd.env("SMALLEST_API_KEY", key);
    }
    let out = cmd.output().unwrap();
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
