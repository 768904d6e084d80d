//! `smallest`: text-to-speech, speech-to-text and a local emulator of the Smallest AI
//! Waves API, on `smallest-hyper`.
//!
//! The key comes from `SMALLEST_API_KEY` (or a `.env` file in the working directory),
//! never from an argument, so it does not show in shell history or `ps`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use smallest_core::stt::{
    AudioSource, LegacyTranscribeRequest, SttLanguage, SttModel, TranscribeRequest, Transcription,
};
use smallest_core::tts::{
    Audio, Language, OutputFormat, RECOMMENDED_MAX_CHARS, TtsModel, TtsRequest,
};
use smallest_core::{ApiKey, Config, Endpoint, Error};
use smallest_emulator::Emulator;
use smallest_hyper::{Client, RetryPolicy};
use smallest_redis::RedisLimits;

/// `println!` for a command-line tool: when stdout is a closed pipe (`smallest voices |
/// head`), exit quietly with the shell's SIGPIPE status instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(141);
            }
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

mod dotenv;
mod live;
mod manage;
mod output;
mod progress;
mod signal;
mod stream;

use dotenv::Env;

/// The Smallest AI Waves API from the command line.
#[derive(Parser, Debug)]
#[command(name = "smallest", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The flags of the commands that call the API (and build a client to do it): they
/// come after the command's name, `smallest tts --base-url URL …`. On `clone` and
/// `dicts` they may come before or after the subcommand.
#[derive(Args, Debug)]
#[command(next_help_heading = "Client options")]
struct ClientArgs {
    /// The API base URL [env: SMALLEST_BASE_URL] (default `https://api.smallest.ai`).
    #[arg(long, global = true)]
    base_url: Option<String>,
    /// A PEM file of extra root certificates to trust, e.g. an emulator's CA
    /// [env: SMALLEST_CA_CERT].
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Retries of a failed call (429, 5xx, connection failures before sending)
    /// [env: SMALLEST_MAX_RETRIES] (default 3; 0 switches retrying off).
    #[arg(long, global = true)]
    max_retries: Option<u32>,
    /// The longest the server may stay silent while an answer is due, and the longest a
    /// write may stall, in seconds [env: SMALLEST_TIMEOUT] (default 60). Connecting
    /// (TCP + TLS, or a WebSocket upgrade) has its own limit of 10 s.
    #[arg(long, global = true, value_name = "SECS")]
    timeout: Option<f64>,
    /// The longest a whole call may take, retries included, in seconds (default: none).
    #[arg(long, global = true, value_name = "SECS")]
    total_timeout: Option<f64>,
    /// Allow a plain `http://` base URL that is not loopback: the key then travels
    /// unencrypted. Only for a trusted network (a local proxy, a test rig).
    #[arg(long, global = true)]
    allow_insecure_http: bool,
    /// An HTTP proxy that tunnels the https:// and wss:// connections (CONNECT):
    /// `http://[user:password@]host:port`, or `none` to connect directly
    /// [env: HTTPS_PROXY; NO_PROXY lists the hosts that connect directly].
    #[arg(long, global = true, value_name = "URL")]
    proxy: Option<String>,
    #[command(flatten)]
    verbose: Verbose,
}

/// `-v`: on every command whose calls go through the SDK (all but `emulator`).
#[derive(Args, Debug)]
struct Verbose {
    /// Show what the SDK does on stderr: `-v` each call, attempt, retry and slot wait;
    /// `-vv` more. Never the key, the text or the audio.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Synthesize speech to a file.
    Tts(TtsArgs),
    /// Transcribe an audio file or URL.
    Stt(SttArgs),
    /// List the voices, as a table (filter by language, gender, accent).
    Voices(manage::VoicesArgs),
    /// Create and list voice clones.
    Clone(manage::CloneArgs),
    /// Manage pronunciation dictionaries.
    Dicts(manage::DictsArgs),
    /// Check that the API answers (no key needed).
    Health {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Serve a local emulator of the API on 127.0.0.1 until interrupted.
    Emulator(EmulatorArgs),
    /// Start the embedded emulator and run a text → speech → text round trip. No key needed.
    Demo(DemoArgs),
}

impl Command {
    /// The `-v` count of the command (0 for `emulator`, which has no `-v`).
    fn verbose(&self) -> u8 {
        match self {
            Command::Tts(args) => args.client.verbose.verbose,
            Command::Stt(args) => args.client.verbose.verbose,
            Command::Voices(args) => args.client.verbose.verbose,
            Command::Clone(args) => args.client.verbose.verbose,
            Command::Dicts(args) => args.client.verbose.verbose,
            Command::Health { client } => client.verbose.verbose,
            Command::Emulator(_) => 0,
            Command::Demo(args) => args.verbose.verbose,
        }
    }
}

#[derive(Args, Debug)]
struct TtsArgs {
    /// The text to speak; `-` reads it from stdin (with --live: none, the lines of stdin
    /// are spoken).
    #[arg(required_unless_present = "live", conflicts_with = "live")]
    text: Option<String>,
    /// Where to write the audio; `-` is stdout. A `.wav` name gets a WAV file whatever
    /// the --format (pcm, ulaw and alaw get a header); `.pcm`, `.raw`, `.ulaw`, `.alaw`
    /// get the bytes as they are.
    #[arg(short, long)]
    output: PathBuf,
    /// Stream the audio over Server-Sent Events and write it as it arrives, with
    /// progress on a terminal. A WAV gets its sizes patched at the end. The audio goes
    /// to FILE.part, renamed to FILE once complete: a cut stream fails and leaves no
    /// partial file.
    #[arg(long)]
    stream: bool,
    /// Speak the lines of stdin over the live WebSocket and write the 16-bit PCM as it
    /// arrives: a WAV for a .wav file or --format wav, else raw PCM. The lines are one
    /// continuation context (joined with spaces into one generation, released at
    /// sentence ends, so speech starts before EOF and keeps its prosody), closed by EOF.
    #[arg(long, conflicts_with = "stream")]
    live: bool,
    /// With --live: the legacy mode instead of a continuation context (the lines are
    /// pieces of one request with `continue`/`flush`; synthesis starts at EOF).
    #[arg(long, requires = "live")]
    no_continue: bool,
    /// The voice id (a catalog voice or a clone `voice_…`).
    #[arg(long, default_value = "magnus")]
    voice: String,
    /// lightning_v3.1 (default) or lightning_v3.1_pro.
    #[arg(long)]
    model: Option<String>,
    /// 8000, 16000, 24000 or 44100.
    #[arg(long)]
    sample_rate: Option<u32>,
    /// wav, pcm, mp3, ulaw or alaw (default: from the output file's extension, else wav).
    #[arg(long)]
    format: Option<String>,
    /// 0.5 to 2.0.
    #[arg(long)]
    speed: Option<f32>,
    /// A pronunciation dictionary to apply (an id from `smallest dicts create`); repeat
    /// for several.
    #[arg(long = "pronunciation-dict", value_name = "ID")]
    pronunciation_dicts: Vec<String>,
    /// A language code the model speaks (e.g. en, hi, auto).
    #[arg(long)]
    language: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
struct SttArgs {
    /// An audio file, or an http(s):// URL the server fetches.
    input: String,
    /// pulse (default) or pulse-pro.
    #[arg(long, default_value = "pulse")]
    model: String,
    /// The language code.
    #[arg(long, default_value = "en")]
    language: String,
    /// Word and utterance timestamps.
    #[arg(long)]
    word_timestamps: bool,
    /// Speaker labels.
    #[arg(long)]
    diarize: bool,
    /// Use the legacy endpoint /waves/v1/pulse/get_text (a file is then read into memory
    /// rather than streamed; with --live, the legacy WebSocket route).
    #[arg(long)]
    legacy: bool,
    /// Print the whole JSON response instead of the text (the file is then read into
    /// memory rather than streamed).
    #[arg(long, conflicts_with = "live")]
    json: bool,
    /// Stream a 16-bit PCM mono WAV file over the live WebSocket at real-time pace:
    /// finals are printed one a line, interims shown in place on a terminal.
    #[arg(long)]
    live: bool,
    /// With --live: how many times real time to send the audio (0: as fast as possible).
    #[arg(long, default_value_t = 1.0, requires = "live")]
    pace: f64,
    /// With --live: when the connection drops mid-stream, reconnect and send the audio
    /// since the last final transcript again (said on stderr); the transcript goes on
    /// without repeats.
    #[arg(long, requires = "live")]
    reconnect: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
struct EmulatorArgs {
    /// The port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// An API key to accept (repeatable). Default: the key in SMALLEST_API_KEY, if set;
    /// otherwise any key.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Serve HTTPS with a fresh local CA (its PEM path is printed on stderr).
    #[arg(long)]
    tls: bool,
    /// With --tls: also write the CA certificate (PEM) to FILE.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_out: Option<PathBuf>,
    /// A valid key that gets 403 on TTS and STT (repeatable).
    #[arg(long = "forbidden-key", value_name = "KEY")]
    forbidden_keys: Vec<String>,
    /// In-flight TTS requests per key before a 429.
    #[arg(long, value_name = "N", default_value_t = 1)]
    tts_concurrency: usize,
    /// Extra processing time per TTS request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    tts_latency_ms: u64,
    /// The STT upload limit in bytes (default 262144000 = 250 MB).
    #[arg(long, value_name = "N")]
    max_upload_bytes: Option<u64>,
    /// STT transcriptions per model per key in any 60 s before a 429 (default: no limit).
    #[arg(long, value_name = "N")]
    stt_rpm: Option<u32>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Where to write the WAV file (default: smallest-demo.wav in the temp directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    verbose: Verbose,
}

/// `-v`/`-vv`: the SDK's events (target `smallest`, which carries no key and no
/// content) to stderr. The libraries' own logs stay off, so the TRACE key-leak guard is
/// never tripped by a verbose run.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt as _;
    let level = match verbose {
        0 => return,
        1 => tracing_subscriber::filter::LevelFilter::DEBUG,
        _ => tracing_subscriber::filter::LevelFilter::TRACE,
    };
    let filter = tracing_subscriber::filter::Targets::new().with_target("smallest", level);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .finish()
        .with(filter);
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.command.verbose());
    let env = Env::load(Path::new("."));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, env)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {}", output::safe(&message));
            // Ended by a signal: say which, the way a killed process does.
            signal::exit_status().map_or(ExitCode::FAILURE, ExitCode::from)
        }
    }
}

async fn run(cli: Cli, env: Env) -> Result<ExitCode, String> {
    match cli.command {
        Command::Tts(args) => tts(&client(&args.client, &env)?, args).await,
        Command::Stt(args) => stt(&client(&args.client, &env)?, args).await,
        Command::Voices(args) => manage::voices(&client(&args.client, &env)?, args).await,
        Command::Clone(args) => manage::clone(&client(&args.client, &env)?, args.command).await,
        Command::Dicts(args) => manage::dicts(&client(&args.client, &env)?, args.command).await,
        Command::Health { client } => health(&client, &env).await,
        Command::Emulator(args) => emulator(args, &env).await,
        Command::Demo(args) => demo(args).await,
    }
}

/// The client the commands use: key, base URL and extra roots from flags, the
/// environment or `.env`.
fn client(flags: &ClientArgs, env: &Env) -> Result<Client, String> {
    let key = env.get("SMALLEST_API_KEY").ok_or(
        "SMALLEST_API_KEY is not set: export SMALLEST_API_KEY=<your key> (from the API Keys page \
         of the Smallest AI console), or put it in a .env file here. To try the CLI without a \
         key, run `smallest demo`.",
    )?;
    let key = ApiKey::new(key).map_err(|e| e.to_string())?;
    build_client(Config::new(key), flags, env)
}

/// The account's limits this process keeps: shared through Redis when
/// `SMALLEST_REDIS_URL` is set, else its own (`SMALLEST_TTS_CONCURRENCY`,
/// `SMALLEST_STT_RPM`).
enum AccountLimits {
    Shared(RedisLimits),
    Local {
        tts: Option<usize>,
        stt_rpm: Option<u32>,
    },
}

fn account_limits(config: &Config, env: &Env) -> Result<AccountLimits, String> {
    let shared = RedisLimits::from_lookup(config.api_key(), |name| env.get(name))
        .map_err(|e| e.to_string())?;
    if let Some(limits) = shared {
        return Ok(AccountLimits::Shared(limits));
    }
    let number = |name: &str| {
        smallest_redis::env_number(name, env.get(name).filter(|v| !v.trim().is_empty()))
            .map_err(|e| e.to_string())
    };
    Ok(AccountLimits::Local {
        tts: number(smallest_redis::TTS_CONCURRENCY_ENV)?.map(|n| n as usize),
        stt_rpm: number(smallest_redis::STT_RPM_ENV)?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
    })
}

fn build_client(config: Config, flags: &ClientArgs, env: &Env) -> Result<Client, String> {
    let mut config = config;
    if flags.allow_insecure_http {
        config = config.allow_insecure_http();
    }
    if let Some(url) = flags
        .base_url
        .clone()
        .or_else(|| env.get("SMALLEST_BASE_URL"))
    {
        config = config.with_base_url(url.trim()).map_err(|e| {
            e.to_string()
                .replace("Config::allow_insecure_http()", "--allow-insecure-http")
        })?;
    }
    let max_retries = match flags.max_retries {
        Some(n) => n,
        None => match env.get("SMALLEST_MAX_RETRIES") {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("SMALLEST_MAX_RETRIES must be a whole number, got {v:?}"))?,
            None => RetryPolicy::default().max_retries,
        },
    };
    let seconds = |name: &str, v: f64| {
        Duration::try_from_secs_f64(v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{name} must be a positive number of seconds, got {v}"))
    };
    let idle = match flags.timeout {
        Some(v) => seconds("--timeout", v)?,
        None => match env.get("SMALLEST_TIMEOUT") {
            Some(v) => {
                let n = v.trim().parse::<f64>().map_err(|_| {
                    format!("SMALLEST_TIMEOUT must be a number of seconds, got {v:?}")
                })?;
                seconds("SMALLEST_TIMEOUT", n)?
            }
            None => Duration::from_secs(60),
        },
    };
    let _ = SERVER.set(config.base_url().to_owned());
    let limits = account_limits(&config, env)?;
    let mut builder = Client::builder(config)
        .idle_timeout(idle)
        .retry_policy(RetryPolicy::default().with_max_retries(max_retries))
        .on_retry(|notice| {
            // One line: the first line of the error, control characters escaped.
            let error = notice.error.to_string();
            let error = error.lines().next().unwrap_or_default();
            eprintln!(
                "retrying in {:.1} s (attempt {} failed: {})",
                notice.delay.as_secs_f64(),
                notice.attempt,
                output::safe_line(error)
            );
        });
    let ca = flags
        .ca_cert
        .clone()
        .or_else(|| env.get("SMALLEST_CA_CERT").map(PathBuf::from));
    if let Some(path) = ca {
        for der in read_pem_certificates(&path)? {
            builder = builder.add_root_certificate_der(der);
        }
    }
    if let Some(total) = flags.total_timeout {
        builder = builder.total_timeout(seconds("--total-timeout", total)?);
    }
    builder = match limits {
        AccountLimits::Shared(limits) => builder.limits(Arc::new(limits)),
        AccountLimits::Local { tts, stt_rpm } => {
            if let Some(n) = tts {
                builder = builder.tts_concurrency(n);
            }
            match stt_rpm {
                Some(n) => builder.stt_rpm(n),
                None => builder,
            }
        }
    };
    match flags.proxy.as_deref().map(str::trim) {
        // The library reads HTTPS_PROXY and NO_PROXY itself.
        None => {}
        Some("none" | "") => builder = builder.without_proxy(),
        Some(url) => {
            let no_proxy = std::env::var("NO_PROXY")
                .or_else(|_| std::env::var("no_proxy"))
                .unwrap_or_default();
            let proxy = smallest_core::proxy::Proxy::new(url)
                .map_err(|e| e.to_string().replace("proxy URL", "--proxy"))?
                .no_proxy(&no_proxy);
            builder = builder.proxy(proxy);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

fn read_pem_certificates(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Renders an SDK error for a person: the message (with the API's hint) and the
/// field-level detail of a validation body.
/// The base URL the command talks to, for errors that happen before an answer.
static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The flag of the CLI that sets an API field, for messages about it.
fn flag_for(field: &str) -> Option<&'static str> {
    Some(match field {
        "sample_rate" => "--sample-rate",
        "voice_id" => "--voice",
        "speed" => "--speed",
        "language" => "--language",
        "model" => "--model",
        "output_format" => "--format",
        "text" => "the text",
        "display_name" | "name" => "--name",
        "pronunciation_dicts" => "--pronunciation-dict",
        "keywords" => "--keyword",
        "encoding" => "--encoding",
        _ => return None,
    })
}

fn explain(e: &Error) -> String {
    let mut out = match e.validation() {
        // Refused locally: name the flag the user typed, not the API's field.
        Some(v) => match flag_for(v.field()) {
            Some(flag) => format!(
                "invalid {flag} (the API's {}): {}; {}",
                v.field(),
                v.value(),
                v.allowed()
            ),
            None => e.to_string(),
        },
        None => e.to_string(),
    };
    // A transport failure says little by itself ("client error (Connect)"): add each
    // cause once, then what to do about the usual ones.
    let mut source = std::error::Error::source(e);
    let mut seen = vec![out.clone()];
    while let Some(cause) = source {
        let text = cause.to_string();
        if !seen.iter().any(|s| s.contains(&text)) {
            out.push_str(": ");
            out.push_str(&text);
            seen.push(text);
        }
        source = cause.source();
    }
    if matches!(e, Error::Transport { .. } | Error::Timeout { .. })
        && let Some(server) = SERVER.get()
    {
        out.push_str(&format!(" (server: {server})"));
    }
    let lower = out.to_ascii_lowercase();
    if e.api().is_some_and(|a| {
        a.message().to_ascii_lowercase().contains("voice")
            || a.issues().iter().any(|i| i.path.contains("voice"))
    }) {
        out.push_str("\n  list the voices you can use with `smallest voices`");
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        out.push_str(
            "\n  the server's certificate is not trusted: for a private CA or a local emulator, \
             pass its certificate with --ca-cert FILE (or SMALLEST_CA_CERT)",
        );
    } else if lower.contains("connection refused") {
        out.push_str(
            "\n  nothing listens at that address: check --base-url (or SMALLEST_BASE_URL)",
        );
    } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
        out.push_str("\n  that port does not speak TLS: try http:// for a plain-HTTP server");
    }
    if let Some(api) = e.api() {
        for issue in api.issues() {
            if !issue.options.is_empty() {
                out.push_str(&format!(
                    "\n  {}: allowed values: {}",
                    issue.path,
                    issue.options.join(", ")
                ));
            }
        }
    }
    out
}

fn format_for(path: &Path, flag: Option<&str>) -> Result<OutputFormat, String> {
    if let Some(flag) = flag {
        return flag.parse::<OutputFormat>().map_err(|e| e.to_string());
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match ext.to_ascii_lowercase().as_str() {
        "pcm" | "raw" => OutputFormat::Pcm,
        "mp3" => OutputFormat::Mp3,
        "ulaw" | "mulaw" | "ul" => OutputFormat::Ulaw,
        "alaw" | "al" => OutputFormat::Alaw,
        _ => OutputFormat::Wav,
    })
}

/// The last part of a path, for a progress display (the whole of it when it has none).
fn file_name(path: &str) -> std::borrow::Cow<'_, str> {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.into(), |n| n.to_string_lossy())
}

/// Whether the input of `stt` is a URL the server fetches.
fn is_url(input: &str) -> bool {
    input.starts_with("http://") || input.starts_with("https://")
}

async fn tts(client: &Client, args: TtsArgs) -> Result<ExitCode, String> {
    if args.live {
        return live::tts_live(client, &args).await;
    }
    let Some(text) = args.text else {
        return Err(
            "give the text to speak: smallest tts \"Hello.\" -o hello.wav (or --live to \
                    speak the lines of stdin)"
                .to_owned(),
        );
    };
    let text = if text == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("cannot read the text from stdin: {e}"))?;
        text
    } else {
        text
    };
    let format = format_for(&args.output, args.format.as_deref())?;
    let mut request = TtsRequest::new(text.trim(), args.voice).output_format(format);
    if let Some(model) = &args.model {
        request = request.model(TtsModel::parse(model));
    }
    if let Some(hz) = args.sample_rate {
        request = request.sample_rate(hz);
    }
    if let Some(speed) = args.speed {
        request = request.speed(speed);
    }
    if let Some(language) = &args.language {
        request = request.language(Language::from_wire(language.trim()));
    }
    for id in &args.pronunciation_dicts {
        request = request.pronunciation_dict(id.trim());
    }
    if args.stream {
        // A WAV file from `--format wav` (or a .wav file), or PCM into a .wav file.
        let wav_file = args
            .output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        let wav = format == OutputFormat::Wav
            || (wav_file
                && matches!(
                    format,
                    OutputFormat::Pcm | OutputFormat::Ulaw | OutputFormat::Alaw
                ));
        return stream::tts_stream(client, request, &args.output, wav).await;
    }
    let (audio, requests) = synthesize(client, request, &args.output).await?;
    // The container follows the file name: headerless audio into a `.wav` gets a header.
    let wav_file = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    let (bytes, container) = match audio.format() {
        OutputFormat::Pcm | OutputFormat::Ulaw | OutputFormat::Alaw if wav_file => {
            (audio.to_wav().map_err(|e| explain(&e))?, "in a WAV file")
        }
        OutputFormat::Wav | OutputFormat::Mp3 => (audio.bytes().clone(), "as sent"),
        _ => (audio.bytes().clone(), "raw, no header"),
    };
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write the audio to stdout: {e}"))?;
    } else {
        std::fs::write(&args.output, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    }
    let duration = audio
        .duration()
        .map(|d| format!(", {:.2} s", d.as_secs_f64()))
        .unwrap_or_default();
    eprintln!(
        "wrote {} ({} {container}, {} Hz{duration}, {} bytes){}",
        if to_stdout {
            "stdout".to_owned()
        } else {
            args.output.display().to_string()
        },
        audio.format(),
        audio.sample_rate(),
        bytes.len(),
        progress::requests_note(requests)
    );
    Ok(ExitCode::SUCCESS)
}

/// Synthesizes `request` with a spinner on a terminal; a text longer than the API's
/// recommended 250 characters is split at sentence ends and spoken in that many
/// requests, one after another, with a bar of them, then joined into one audio.
/// Returns the audio and the number of requests made.
async fn synthesize(
    client: &Client,
    request: TtsRequest,
    output: &Path,
) -> Result<(Audio, usize), String> {
    // Refused here, before any request: an empty text, a bad voice id, rate or speed.
    request
        .validate()
        .map_err(|e| explain(&Error::Validation(e)))?;
    let pieces = if request.text.chars().count() > RECOMMENDED_MAX_CHARS {
        request.split()
    } else {
        vec![request]
    };
    let n = pieces.len();
    let status = if n > 1 {
        progress::chunks(n as u64)
    } else {
        progress::spinner("synthesizing…")
    };
    let work = async {
        let mut parts = Vec::with_capacity(n);
        for (i, piece) in pieces.iter().enumerate() {
            if n > 1 {
                status.set_message(progress::chunk_message(i + 1, n));
            }
            parts.push(client.synthesize(piece).await.map_err(|e| {
                let error = explain(&e);
                if n > 1 {
                    format!(
                        "{error}\n  (at chunk {} of {n} of the text; nothing was written)",
                        i + 1
                    )
                } else {
                    error
                }
            })?);
            status.inc(1);
        }
        Audio::concat(parts).map_err(|e| explain(&e))
    };
    let result = signal::unless_interrupted(
        || format!("interrupted: {} was not written", output.display()),
        work,
    )
    .await;
    status.finish_and_clear();
    Ok((result?, n))
}

async fn stt(client: &Client, args: SttArgs) -> Result<ExitCode, String> {
    if args.live {
        return live::stt_live(client, &args).await;
    }
    let input = args.input.trim();
    let language = SttLanguage::from_wire(args.language.trim());
    if !is_url(input) && !args.legacy && !args.json {
        // A file: streamed from disk (constant memory), with progress on a terminal.
        let template = TranscribeRequest::from_bytes(Vec::new(), language)
            .model(SttModel::from_wire(args.model.trim()))
            .word_timestamps(args.word_timestamps)
            .diarize(args.diarize);
        let transcription = stream::transcribe_file(client, input, &template).await?;
        print_transcription(&transcription);
        return Ok(ExitCode::SUCCESS);
    }
    let source = if is_url(input) {
        AudioSource::Url(input.to_owned())
    } else {
        let data = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
        AudioSource::Bytes {
            data: data.into(),
            content_type: None,
        }
    };
    let status = progress::spinner(if is_url(input) {
        "transcribing (the server fetches the URL)…".to_owned()
    } else {
        format!("transcribing {}…", file_name(input))
    });
    let interrupted = || "interrupted: the transcription was stopped".to_owned();
    let (request, response) = if args.legacy {
        let request = LegacyTranscribeRequest::new(source)
            .language(language)
            .word_timestamps(args.word_timestamps)
            .diarize(args.diarize);
        let response =
            signal::unless_interrupted(interrupted, raw_exchange(client, &request)).await;
        status.finish_and_clear();
        let response = response?;
        (request.from_http_response(response.clone()), response)
    } else {
        let request = TranscribeRequest::new(source, language)
            .model(SttModel::from_wire(args.model.trim()))
            .word_timestamps(args.word_timestamps)
            .diarize(args.diarize);
        let response =
            signal::unless_interrupted(interrupted, raw_exchange(client, &request)).await;
        status.finish_and_clear();
        let response = response?;
        (request.from_http_response(response.clone()), response)
    };
    let transcription = request.map_err(|e| explain(&e))?;
    if args.json {
        let value: serde_json::Value = serde_json::from_slice(response.body())
            .map_err(|e| format!("the response is not JSON: {e}"))?;
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
        );
    } else {
        print_transcription(&transcription);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_transcription(transcription: &Transcription) {
    if transcription.is_processing() {
        outln!(
            "accepted for asynchronous processing (request id {})",
            transcription.request_id.as_deref().unwrap_or("unknown")
        );
    } else if !transcription.utterances.is_empty()
        && transcription.utterances.iter().any(|u| u.speaker.is_some())
    {
        // --diarize: who said what, when.
        for u in &transcription.utterances {
            let who = u.speaker.map_or("?".to_owned(), |s| s.to_string());
            outln!(
                "[{:>7.2}–{:>7.2}] speaker {who}: {}",
                u.start,
                u.end,
                output::safe_line(&u.text)
            );
        }
    } else if !transcription.words.is_empty() {
        // --word-timestamps: one word a line, with its times.
        outln!("{}", output::safe_line(&transcription.transcription));
        for w in &transcription.words {
            let who = w
                .speaker
                .map(|s| format!("  speaker {s}"))
                .unwrap_or_default();
            outln!(
                "{:>8.2} {:>8.2}  {}{who}",
                w.start,
                w.end,
                output::safe_line(&w.word)
            );
        }
    } else if transcription.transcription.trim().is_empty() {
        eprintln!(
            "warning: the transcript is empty: no speech was recognized (is the file audio, in \
             the language given with --language?)"
        );
    } else {
        outln!("{}", output::safe_line(&transcription.transcription));
    }
}

/// Sends an endpoint and keeps the raw response, so `--json` prints exactly what the
/// server said.
async fn raw_exchange<E: Endpoint>(
    client: &Client,
    endpoint: &E,
) -> Result<http::Response<bytes::Bytes>, String> {
    let request = smallest_core::prepare(endpoint, client.config()).map_err(|e| explain(&e))?;
    smallest_hyper::HttpSend::send_http(client, request)
        .await
        .map_err(|e| explain(&e))
}

async fn health(flags: &ClientArgs, env: &Env) -> Result<ExitCode, String> {
    // The health check needs no key; use the real one when there is one.
    let key = env
        .get("SMALLEST_API_KEY")
        .unwrap_or_else(|| "sk_unused".to_owned());
    let key = ApiKey::new(key).map_err(|e| e.to_string())?;
    let client = build_client(Config::new(key), flags, env)?;
    let status = client.health().await.map_err(|e| explain(&e))?;
    let services = status
        .services
        .iter()
        .map(|(name, s)| format!("{name}: {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    outln!("{} ({services})", status.status);
    Ok(if status.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn emulator(args: EmulatorArgs, env: &Env) -> Result<ExitCode, String> {
    let mut builder = Emulator::builder()
        .port(args.port)
        .tls(args.tls)
        .tts_concurrency(args.tts_concurrency)
        .tts_latency(Duration::from_millis(args.tts_latency_ms));
    if let Some(max) = args.max_upload_bytes {
        builder = builder.max_upload_bytes(max);
    }
    if let Some(rpm) = args.stt_rpm {
        builder = builder.stt_rpm(rpm);
    }
    for key in &args.forbidden_keys {
        builder = builder.forbidden_key(key.clone());
    }
    let mut keys = args.keys;
    if keys.is_empty()
        && let Some(key) = env.get("SMALLEST_API_KEY")
    {
        keys.push(key);
    }
    let any_key = keys.is_empty();
    for key in keys {
        builder = builder.key(key);
    }
    let running = builder
        .start()
        .await
        .map_err(|e| format!("cannot start the emulator: {e}"))?;
    // The first line on stdout is the base URL, for scripts.
    outln!("{}", running.base_url());
    if let Some(pem) = running.ca_certificate_pem() {
        let path = std::env::temp_dir().join(format!(
            "smallest-emulator-ca-{}.pem",
            running.addr().port()
        ));
        std::fs::write(&path, &pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if let Some(out) = &args.ca_out {
            std::fs::write(out, &pem)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        }
        eprintln!(
            "TLS: trust the emulator's CA with --ca-cert {0} (or SMALLEST_CA_CERT={0})",
            path.display()
        );
    }
    eprintln!(
        "emulator listening on {} ({}); Ctrl-C to stop",
        running.base_url(),
        if any_key {
            "any API key accepted"
        } else {
            "only the configured keys accepted"
        }
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    running.shutdown();
    Ok(ExitCode::SUCCESS)
}

const DEMO_TEXT: &str = "Hello from Smallest AI.";
const DEMO_KEY: &str = "sk_demo_emulator_key";

async fn demo(args: DemoArgs) -> Result<ExitCode, String> {
    let running = Emulator::builder()
        .key(DEMO_KEY)
        .start()
        .await
        .map_err(|e| format!("cannot start the embedded emulator: {e}"))?;
    outln!(
        "emulator:    {} (embedded, on loopback; no API key needed)",
        running.base_url()
    );
    let config = Config::new(ApiKey::new(DEMO_KEY).map_err(|e| e.to_string())?)
        .with_base_url(&running.base_url())
        .map_err(|e| e.to_string())?;
    let client = Client::new(config).map_err(|e| e.to_string())?;

    let request = TtsRequest::new(DEMO_TEXT, "meher")
        .model(TtsModel::LightningV31Pro)
        .sample_rate(24000)
        .output_format(OutputFormat::Wav);
    let audio = client.synthesize(&request).await.map_err(|e| explain(&e))?;
    let path = args
        .output
        .unwrap_or_else(|| std::env::temp_dir().join("smallest-demo.wav"));
    std::fs::write(&path, audio.bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let shown = std::fs::canonicalize(&path).unwrap_or(path);
    outln!("text:        {DEMO_TEXT:?}");
    outln!(
        "speech:      {} ({} Hz mono 16-bit WAV, {:.2} s, {} bytes)",
        shown.display(),
        audio.sample_rate(),
        audio.duration().unwrap_or_default().as_secs_f64(),
        audio.bytes().len()
    );

    let transcription = client
        .transcribe(
            &TranscribeRequest::from_bytes(audio.into_bytes(), SttLanguage::En)
                .content_type("audio/wav"),
        )
        .await
        .map_err(|e| explain(&e))?;
    outln!("transcribed: {:?}", transcription.transcription);
    running.shutdown();
    if transcription.transcription == DEMO_TEXT {
        outln!("round trip:  ok");
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("round trip:  MISMATCH");
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("smallest").chain(args.iter().copied()))
    }

    #[test]
    fn client_flags_reach_the_commands_that_call_the_api() {
        let cli = parse(&["tts", "Hi.", "-o", "a.wav", "--base-url", "http://x", "-vv"]).unwrap();
        let Command::Tts(args) = &cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.client.base_url.as_deref(), Some("http://x"));
        assert_eq!(cli.command.verbose(), 2);
        // As the README writes it: `-v` then `-` (the text from stdin).
        let cli = parse(&["tts", "-v", "-", "-o", "-", "--format", "pcm"]).unwrap();
        let Command::Tts(args) = &cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(
            (args.text.as_deref(), cli.command.verbose()),
            (Some("-"), 1)
        );

        // Before or after the subcommand of clone and dicts.
        for args in [
            &["clone", "--max-retries", "7", "list"][..],
            &["clone", "list", "--max-retries", "7"],
        ] {
            let cli = parse(args).unwrap();
            let Command::Clone(clone) = &cli.command else {
                panic!("{cli:?}")
            };
            assert_eq!(clone.client.max_retries, Some(7), "{args:?}");
        }
        let cli = parse(&["dicts", "delete", "d1", "--timeout", "2.5", "-v"]).unwrap();
        let Command::Dicts(dicts) = &cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(dicts.client.timeout, Some(2.5));
        assert_eq!(cli.command.verbose(), 1);
        let cli = parse(&["health", "--allow-insecure-http"]).unwrap();
        assert!(matches!(cli.command, Command::Health { client } if client.allow_insecure_http));
    }

    #[test]
    fn the_emulator_and_the_demo_take_no_client_flags() {
        for args in [
            &["emulator", "--base-url", "http://x"][..],
            &["emulator", "--timeout", "1"],
            &["emulator", "-v"],
            &["demo", "--ca-cert", "ca.pem"],
            &["--base-url", "http://x", "voices"],
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{args:?}"
            );
        }
        let cli = parse(&["demo", "-v"]).unwrap();
        assert_eq!(cli.command.verbose(), 1);
        assert_eq!(parse(&["emulator"]).unwrap().command.verbose(), 0);
    }
}
