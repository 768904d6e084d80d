//! The live WebSocket commands: `smallest stt --live FILE` (a WAV file streamed at
//! real-time pace, transcripts as they come) and `smallest tts --live -o FILE` (lines
//! of text from stdin, speech written as it arrives).

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget};
use smallest_core::Error;
use smallest_core::audio::{wav_data, wav_info};
use smallest_core::stt::{SttLanguage, SttModel};
use smallest_core::stt_live::{STT_LIVE_SAMPLE_RATES, SttReconnect};
use smallest_core::tts::{Language, OutputFormat, TtsModel};
use smallest_hyper::{
    Client, CloseOutcome, CloseReason, SttEncoding, SttLiveConfig, SttLiveEvent, SttLiveSender,
    Transcript, TtsContext, TtsLiveConfig, TtsLiveEvent, TtsLiveSender,
};
use tokio::sync::mpsc;

use crate::output::{AudioFile, Container};
use crate::progress;
use crate::{SttArgs, TtsArgs, explain};

/// Bytes of audio per frame sent: the 4096 the API recommends (128 ms at 16 kHz).
const FRAME_BYTES: usize = 4096;

/// The exit status after Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// The slowest `--pace` (other than 0) and the fastest.
const PACE_RANGE: (f64, f64) = (0.1, 100.0);

// ---------------------------------------------------------------------------------
// stt --live
// ---------------------------------------------------------------------------------

/// `stt --live FILE`: streams the samples of a 16-bit PCM mono WAV file to
/// `WSS /waves/v1/stt/live` at `--pace` times real time, then ends the stream.
///
/// Finals are printed on stdout, one a line. Interims are drawn on one line updated in
/// place: on stdout when it is a terminal, else on stderr when that is one, else not at
/// all (so a script reading stdout gets only the finals). Succeeds once the terminal
/// (`is_last`) transcript arrived and nothing failed. Ctrl-C stops sending and ends the
/// stream, so the transcript of what was sent still arrives (exit status 130).
pub(crate) async fn stt_live(client: &Client, args: &SttArgs) -> Result<ExitCode, String> {
    let path = args.input.trim();
    if crate::is_url(path) {
        return Err(
            "--live streams a local WAV file at real-time pace; to transcribe a URL, drop --live"
                .to_owned(),
        );
    }
    let pace = args.pace;
    if !(pace == 0.0 || (PACE_RANGE.0..=PACE_RANGE.1).contains(&pace)) {
        return Err(format!(
            "--pace must be 0 (as fast as possible) or from {} to {} (times real time), got {pace}",
            PACE_RANGE.0, PACE_RANGE.1
        ));
    }
    let file = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let (sample_rate, pcm) = pcm16_mono(&file, path)?;

    let language = SttLanguage::from_wire(args.language.trim());
    let mut config = if args.legacy {
        SttLiveConfig::legacy(language)
    } else {
        SttLiveConfig::new(language).model(SttModel::from_wire(args.model.trim()))
    };
    config = config
        .sample_rate(sample_rate)
        .encoding(SttEncoding::Linear16);
    if args.word_timestamps {
        config = config.word_timestamps(true);
    }
    if args.diarize {
        config = config.diarize(true);
    }
    if args.reconnect {
        config = config.reconnect(SttReconnect::default());
    }
    let live = client.stt_live(config).await.map_err(|e| explain(&e))?;
    let (sender, mut receiver) = live.split();
    let closer = sender.clone();
    let mut sending = tokio::spawn(send_paced(sender, pcm.to_vec(), sample_rate, pace));
    let mut sending_done = false;

    let mut shown = Transcripts::new();
    let mut problems = Vec::new();
    let mut closed = None;
    // The first Ctrl-C stops the audio and ends the stream (its last transcripts still
    // come); a second one quits at once.
    let mut interrupted = false;
    let mut interrupt = Box::pin(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut interrupt => {
                if interrupted {
                    shown.clear();
                    return Ok(ExitCode::from(INTERRUPTED));
                }
                interrupted = true;
                interrupt = Box::pin(tokio::signal::ctrl_c());
                if !sending_done {
                    sending.abort();
                    sending_done = true;
                }
                shown.clear();
                eprintln!("interrupted: ending the stream (Ctrl-C again to quit now)");
                if let Err(e) = closer.close_stream().await {
                    problems.push(format!("ending the stream failed: {}", explain(&e)));
                    let _ = closer.close().await;
                }
            }
            event = receiver.recv() => {
                let Some(event) = event else { break };
                match event {
                    Ok(SttLiveEvent::Transcript(t)) => shown.show(&t),
                    Ok(SttLiveEvent::Reconnected { reconnects, replayed_bytes, offset }) => {
                        shown.clear();
                        eprintln!(
                            "the connection dropped: reconnected ({reconnects}), sending the \
                             {replayed_bytes} bytes of audio from {offset:.2} s again"
                        );
                    }
                    Ok(SttLiveEvent::Error { code, message }) => {
                        problems.push(server_error(code.as_deref(), &message));
                    }
                    Ok(SttLiveEvent::Closed { code, reason, outcome, after_last }) => {
                        closed = Some((code, reason, outcome, after_last));
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(explain(&e)),
                }
            }
            result = &mut sending, if !sending_done => {
                sending_done = true;
                let failure = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("sending the audio failed: {}", explain(&e))),
                    Err(e) => Some(format!("sending the audio failed: {e}")),
                };
                if let Some(failure) = failure {
                    problems.push(failure);
                    let _ = closer.close().await;
                }
            }
        }
    }
    if !sending_done {
        // The connection is over: nothing more can be sent.
        sending.abort();
    }
    shown.clear();

    let (code, reason, outcome, after_last) =
        closed.unwrap_or((None, String::new(), CloseOutcome::NoStatus, false));
    let ending = match outcome {
        CloseOutcome::PolicyViolation => Some(format!(
            "the server refused the live session ({}): the account is over its limit of \
             concurrent live transcriptions; end other sessions or try again later",
            close_status(code, &reason)
        )),
        _ if !after_last => Some(format!(
            "the connection closed ({}) before the last transcript: the transcript is incomplete",
            close_status(code, &reason)
        )),
        _ => None,
    };
    let failures: Vec<String> = ending.into_iter().chain(problems).collect();
    if interrupted && failures.is_empty() {
        eprintln!("interrupted: the rest of {path} was not sent");
        Ok(ExitCode::from(INTERRUPTED))
    } else if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(report(failures))
    }
}

/// The sample rate and the samples of a 16-bit PCM mono WAV file.
fn pcm16_mono<'a>(file: &'a [u8], path: &str) -> Result<(u32, &'a [u8]), String> {
    let convert =
        format!("convert it with `ffmpeg -i {path} -ac 1 -ar 16000 -c:a pcm_s16le converted.wav`");
    let info = wav_info(file).ok_or_else(|| {
        format!("{path} is not a WAV file: --live streams 16-bit PCM mono WAV; {convert}")
    })?;
    // 1: PCM; 0xFFFE: WAVE_FORMAT_EXTENSIBLE (PCM for 16-bit audio in practice).
    let pcm = matches!(info.format_tag, 1 | 0xFFFE);
    if !pcm || info.bits_per_sample != 16 || info.channels != 1 {
        return Err(format!(
            "{path} holds {} channel(s) of {}-bit audio (WAV format tag {}): --live streams \
             16-bit PCM mono; {convert}",
            info.channels, info.bits_per_sample, info.format_tag
        ));
    }
    if !STT_LIVE_SAMPLE_RATES.contains(&info.sample_rate) {
        let rates = STT_LIVE_SAMPLE_RATES.map(|r| r.to_string()).join(", ");
        return Err(format!(
            "{path} is sampled at {} Hz; live transcription takes {rates} Hz; {convert}",
            info.sample_rate
        ));
    }
    let data = wav_data(file).ok_or_else(|| format!("{path} has no `data` chunk"))?;
    // Whole 16-bit samples only.
    let data = &data[..data.len() & !1];
    if data.is_empty() {
        return Err(format!("{path} holds no audio"));
    }
    Ok((info.sample_rate, data))
}

/// Sends `audio` in frames of [`FRAME_BYTES`], each due when the audio before it would
/// have been played at `pace` times real time (`0`: no waiting), then `close_stream`.
/// Frames are scheduled from the start, so the pace does not drift.
async fn send_paced(
    sender: SttLiveSender,
    audio: Vec<u8>,
    sample_rate: u32,
    pace: f64,
) -> Result<(), Error> {
    let start = tokio::time::Instant::now();
    let bytes_per_second = f64::from(sample_rate) * 2.0;
    let mut sent = 0usize;
    for frame in audio.chunks(FRAME_BYTES) {
        sender.send_audio(frame).await?;
        sent += frame.len();
        if pace > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / bytes_per_second / pace);
            tokio::time::sleep_until(start + due).await;
        }
    }
    sender.close_stream().await
}

/// Shows transcripts: finals on stdout, one a line; the latest interim on one line
/// drawn in place on a terminal (see [`stt_live`]).
struct Transcripts {
    /// Where interims are drawn: stdout when it is a terminal, else stderr (which
    /// draws nothing when it is not one either).
    stdout: bool,
    /// The interim shown, if one is.
    interim: Option<ProgressBar>,
}

impl Transcripts {
    fn new() -> Self {
        Transcripts {
            stdout: std::io::stdout().is_terminal(),
            interim: None,
        }
    }

    fn show(&mut self, t: &Transcript) {
        let text = t.text.trim();
        if t.is_final {
            self.clear();
            if !text.is_empty() {
                outln!("{}", crate::output::safe_line(text));
            }
        } else if !text.is_empty() {
            let stdout = self.stdout;
            self.interim
                .get_or_insert_with(|| {
                    progress::tail_line(if stdout {
                        ProgressDrawTarget::stdout()
                    } else {
                        ProgressDrawTarget::stderr()
                    })
                })
                .set_message(crate::output::safe_line(text).into_owned());
        }
    }

    fn clear(&mut self) {
        if let Some(interim) = self.interim.take() {
            interim.finish_and_clear();
        }
    }
}

// ---------------------------------------------------------------------------------
// tts --live
// ---------------------------------------------------------------------------------

/// `tts --live -o FILE`: opens `WSS /waves/v1/tts/live`, sends each line of stdin as a
/// piece of one request (joined with spaces), ends the request at EOF, and writes the
/// PCM audio to `FILE.part` as it arrives (a WAV when `FILE` ends in `.wav` or with
/// `--format wav`, its sizes patched at the end; else raw 16-bit PCM). The part file
/// is renamed onto `FILE` once the request completed; on any failure it is removed
/// and the command fails, saying the audio is incomplete.
pub(crate) async fn tts_live(client: &Client, args: &TtsArgs) -> Result<ExitCode, String> {
    let wav = live_is_wav(&args.output, args.format.as_deref())?;
    let mut config = TtsLiveConfig::new(args.voice.trim());
    if let Some(model) = &args.model {
        config = config.model(TtsModel::parse(model));
    }
    if let Some(hz) = args.sample_rate {
        config = config.sample_rate(hz);
    }
    if let Some(speed) = args.speed {
        config = config.speed(speed);
    }
    if let Some(language) = &args.language {
        config = config.language(Language::from_wire(language.trim()));
    }
    for id in &args.pronunciation_dicts {
        config = config.pronunciation_dict(id.trim());
    }
    let sample_rate = config.effective_sample_rate();
    config.validate().map_err(|e| e.to_string())?;
    let container = if wav {
        Container::Wav {
            format: OutputFormat::Pcm,
            sample_rate,
        }
    } else {
        Container::Raw
    };
    // Before connecting: an unwritable path fails at once (and a failed connection
    // removes the empty part file).
    let mut out = AudioFile::create(&args.output, container)?;
    let started = Instant::now();
    let live = client.tts_live(config).await.map_err(|e| explain(&e))?;
    let (sender, mut receiver) = live.split();
    let closer = sender.clone();
    let stdin_is_terminal = std::io::stdin().is_terminal();
    if stdin_is_terminal {
        eprintln!("type the text to speak, line by line; end it with Ctrl-D");
    }
    // One continuation context (the default), or the legacy request.
    let context = if args.no_continue {
        None
    } else {
        Some(sender.context(CLI_CONTEXT).map_err(|e| explain(&e))?)
    };
    let mut writing = tokio::spawn(send_lines(sender, context.clone(), read_lines()?));
    let mut writing_done = false;
    // Shown once audio arrives (and never while the text is being typed).
    let mut status: Option<ProgressBar> = None;
    let mut first_audio = None;
    let mut complete = false;
    let mut lines = 0;
    let mut problems = Vec::new();
    let mut closed = None;
    let mut interrupt = std::pin::pin!(crate::signal::terminated());
    loop {
        tokio::select! {
            _ = &mut interrupt => {
                clear(&mut status);
                return Err(format!(
                    "interrupted: the audio is incomplete; {} was not written",
                    args.output.display()
                ));
            }
            event = receiver.recv() => {
                let Some(event) = event else { break };
                match event {
                    Ok(TtsLiveEvent::Audio { data, .. }) => {
                        out.write(&data)?;
                        first_audio.get_or_insert_with(|| started.elapsed());
                        // Never draw over what is being typed.
                        if writing_done || !stdin_is_terminal {
                            status
                                .get_or_insert_with(|| progress::spinner("receiving…"))
                                .set_message(format!(
                                    "receiving: {}",
                                    pcm_summary(out.audio_bytes(), sample_rate, first_audio)
                                ));
                        }
                    }
                    Ok(TtsLiveEvent::ContextDone { cancelled: false, .. }) => {
                        // The context was closed at EOF, and its last audio came.
                        complete = true;
                        let _ = closer.close().await;
                    }
                    Ok(TtsLiveEvent::Complete { context: Some(_), .. }) => {
                        // One release of the context: more may follow.
                    }
                    Ok(TtsLiveEvent::Complete { .. }) => {
                        // Complete only counts once all of stdin was sent and finished:
                        // an early `complete` would otherwise pass for the whole text.
                        if writing_done || writing.is_finished() {
                            complete = true;
                        } else {
                            problems.push(
                                "the server completed the request before all the text was sent"
                                    .to_owned(),
                            );
                        }
                        let _ = closer.close().await;
                    }
                    Ok(TtsLiveEvent::Error { code, message, .. }) => {
                        problems.push(server_error(code.as_deref(), &message));
                        let _ = closer.close().await;
                    }
                    Ok(TtsLiveEvent::Closed { code, reason, why }) => {
                        closed = Some((code, reason, why));
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(explain(&e)),
                }
            }
            result = &mut writing, if !writing_done => {
                writing_done = true;
                match result {
                    Ok(Ok(n)) => lines = n,
                    Ok(Err(Stop::NoText)) => {
                        let _ = closer.close().await;
                        return Err(
                            "no text on stdin: pipe the text in (`echo 'Hello.' | smallest tts \
                             --live -o hello.wav`) or type it, then Ctrl-D"
                                .to_owned(),
                        );
                    }
                    Ok(Err(Stop::Failed(e))) => {
                        problems.push(e);
                        let _ = closer.close().await;
                    }
                    Err(e) => {
                        problems.push(format!("reading the text failed: {e}"));
                        let _ = closer.close().await;
                    }
                }
            }
        }
    }
    if !writing_done {
        writing.abort();
    }
    clear(&mut status);

    if !complete {
        let (code, reason, why) = closed.unwrap_or((None, String::new(), CloseReason::NoStatus));
        problems.push(tts_close_problem(code, &reason, why));
    }
    let summary = pcm_summary(out.audio_bytes(), sample_rate, first_audio);
    if !problems.is_empty() {
        let arrived = if out.audio_bytes() == 0 {
            "no audio had arrived".to_owned()
        } else {
            format!("{summary} had arrived; the partial audio was removed")
        };
        return Err(format!(
            "the audio is incomplete: {}\n  {arrived}, and {} was not written",
            report(problems),
            args.output.display()
        ));
    }
    let len = out.finish()?;
    let what = if wav {
        "WAV, 16-bit PCM"
    } else {
        "raw 16-bit PCM"
    };
    eprintln!(
        "wrote {} ({what}, {sample_rate} Hz, {len} bytes; {lines} line{} of text, {summary})",
        args.output.display(),
        if lines == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Clears the progress shown, if any.
fn clear(status: &mut Option<ProgressBar>) {
    if let Some(bar) = status.take() {
        bar.finish_and_clear();
    }
}

/// Whether `tts --live` writes a WAV: `--format wav`, or a `.wav` file without
/// `--format`. Live audio is always 16-bit PCM, so other formats are refused.
fn live_is_wav(output: &Path, format: Option<&str>) -> Result<bool, String> {
    match format.map(|f| f.trim().to_ascii_lowercase()).as_deref() {
        Some("wav") => Ok(true),
        Some("pcm") => Ok(false),
        Some(other) => Err(format!(
            "--live audio is 16-bit PCM: use --format wav or pcm (got {other:?}), or drop \
             --live for {other}"
        )),
        None => Ok(output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))),
    }
}

/// Why the text writer stopped early.
enum Stop {
    /// Stdin ended without a line of text.
    NoText,
    /// Reading or sending failed.
    Failed(String),
}

/// Reads stdin line by line on a thread of its own (a blocked read must not keep the
/// process from exiting).
fn read_lines() -> Result<mpsc::Receiver<std::io::Result<String>>, String> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("stdin".to_owned())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let failed = line.is_err();
                if tx.blocking_send(line).is_err() || failed {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start reading stdin: {e}"))?;
    Ok(rx)
}

/// Sends each non-blank line as a piece of one request (the second and later with a
/// space before them, so the pieces join into one text), then ends the request.
/// Returns the number of lines sent.
/// The id of the context `tts --live` speaks stdin in.
const CLI_CONTEXT: &str = "stdin";

async fn send_lines(
    sender: TtsLiveSender,
    context: Option<TtsContext>,
    mut lines: mpsc::Receiver<std::io::Result<String>>,
) -> Result<u64, Stop> {
    let mut sent = 0u64;
    while let Some(line) = lines.recv().await {
        let line = line.map_err(|e| Stop::Failed(format!("cannot read the text on stdin: {e}")))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let piece = if sent == 0 {
            line.to_owned()
        } else {
            format!(" {line}")
        };
        match &context {
            Some(ctx) => ctx.push(&piece).await,
            None => sender.send_text(&piece).await,
        }
        .map_err(|e| Stop::Failed(explain(&e)))?;
        sent += 1;
    }
    if sent == 0 {
        return Err(Stop::NoText);
    }
    match &context {
        Some(ctx) => ctx.finish().await,
        None => sender.finish().await,
    }
    .map_err(|e| Stop::Failed(explain(&e)))?;
    Ok(sent)
}

/// Why a TTS connection that closed before `complete` closed.
fn tts_close_problem(code: Option<u16>, reason: &str, why: CloseReason) -> String {
    let status = close_status(code, reason);
    match why {
        CloseReason::IdleTimeout => format!(
            "the server closed the connection ({status}) after its idle timeout: no text arrived \
             for too long"
        ),
        CloseReason::PolicyViolation => format!(
            "the server refused the connection ({status}): too many connections for the account"
        ),
        CloseReason::ServerError => {
            format!("the server closed the connection ({status}) after an error")
        }
        _ => format!("the connection closed ({status}) before the audio was complete"),
    }
}

/// `2.35 s of audio, 112.8 KB, first audio after 0.31 s`.
fn pcm_summary(bytes: u64, sample_rate: u32, first_audio: Option<Duration>) -> String {
    let seconds = Duration::from_secs_f64(bytes as f64 / (f64::from(sample_rate.max(1)) * 2.0));
    let mut text = format!(
        "{} of audio, {}",
        progress::secs(seconds),
        progress::bytes(bytes)
    );
    if let Some(first) = first_audio {
        text.push_str(&format!(", first audio after {}", progress::secs(first)));
    }
    text
}

// ---------------------------------------------------------------------------------
// Both
// ---------------------------------------------------------------------------------

/// What went wrong, one thing a line, each said once (a server repeats its error for
/// every message it refused).
fn report(problems: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for problem in problems {
        if !seen.contains(&problem) {
            seen.push(problem);
        }
    }
    seen.join("\n  ")
}

/// A server error frame, for people.
fn server_error(code: Option<&str>, message: &str) -> String {
    match code {
        Some(code) => format!("the server reported an error ({code}): {message}"),
        None => format!("the server reported an error: {message}"),
    }
}

/// `close 1000`, `close 1008: too many sessions`, `no close status`.
fn close_status(code: Option<u16>, reason: &str) -> String {
    match (code, reason.trim()) {
        (Some(code), "") => format!("close {code}"),
        (Some(code), reason) => format!("close {code}: {reason}"),
        (None, _) => "no close status".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallest_core::audio::{WavEncoding, wav_header};

    #[test]
    fn only_16_bit_pcm_mono_at_a_live_rate_is_streamed() {
        let mut file = wav_header(WavEncoding::Pcm16, 16000, 5).to_vec();
        file.extend_from_slice(&[1, 2, 3, 4, 5]);
        let (rate, pcm) = pcm16_mono(&file, "a.wav").unwrap();
        assert_eq!((rate, pcm), (16000, &[1u8, 2, 3, 4][..]));

        let ulaw = wav_header(WavEncoding::MuLaw, 8000, 0);
        let err = pcm16_mono(&ulaw, "u.wav").unwrap_err();
        assert!(
            err.contains("16-bit PCM mono") && err.contains("ffmpeg"),
            "{err}"
        );

        let odd_rate = wav_header(WavEncoding::Pcm16, 11025, 0);
        let err = pcm16_mono(&odd_rate, "r.wav").unwrap_err();
        assert!(err.contains("11025") && err.contains("16000"), "{err}");

        let err = pcm16_mono(b"ID3 not a wav", "x.mp3").unwrap_err();
        assert!(err.contains("not a WAV file"), "{err}");

        let empty = wav_header(WavEncoding::Pcm16, 16000, 0);
        assert!(
            pcm16_mono(&empty, "e.wav")
                .unwrap_err()
                .contains("no audio")
        );
    }

    #[test]
    fn live_tts_writes_wav_or_pcm_only() {
        assert!(live_is_wav(Path::new("a.wav"), None).unwrap());
        assert!(live_is_wav(Path::new("a.WAV"), None).unwrap());
        assert!(!live_is_wav(Path::new("a.pcm"), None).unwrap());
        assert!(!live_is_wav(Path::new("a.wav"), Some("pcm")).unwrap());
        assert!(live_is_wav(Path::new("a.raw"), Some("wav")).unwrap());
        assert!(live_is_wav(Path::new("a.mp3"), Some("mp3")).is_err());
    }

    #[test]
    fn close_statuses_and_summaries_read_well() {
        assert_eq!(close_status(Some(1000), ""), "close 1000");
        assert_eq!(
            close_status(Some(1008), "too many sessions"),
            "close 1008: too many sessions"
        );
        assert_eq!(close_status(None, "x"), "no close status");
        assert_eq!(
            pcm_summary(48_000, 24000, Some(Duration::from_millis(310))),
            "1.00 s of audio, 48.0 KB, first audio after 0.31 s"
        );
        assert!(
            tts_close_problem(Some(1000), "", CloseReason::IdleTimeout).contains("idle timeout")
        );
        assert_eq!(report(vec!["a".into(), "b".into(), "a".into()]), "a\n  b");
    }
}
