//! `smallest tts --stream` (speech over Server-Sent Events, written as it arrives) and
//! the streamed upload of `smallest stt FILE` (constant memory, with upload progress).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use smallest_core::stt::{TranscribeRequest, Transcription};
use smallest_core::tts::{OutputFormat, TtsRequest};
use smallest_hyper::{AudioStream, Client, Progress, ProgressHook};

use crate::explain;
use crate::output::{AudioFile, Container};
use crate::progress;

/// Uploads at least this large show a bar on a terminal (smaller ones only the
/// spinner).
const SHOW_UPLOAD_FROM: u64 = 1_000_000;

/// `tts --stream`: synthesizes with `POST /waves/v1/tts/live` and writes the audio to
/// `FILE.part` as it arrives, renamed onto `output` once the server's `done` frame
/// arrived. With `wav` the audio is asked for as 16-bit PCM and written as a WAV whose
/// sizes are patched at the end; otherwise the bytes are written as they come.
///
/// A stream cut before its end is an error (the audio is incomplete): the part file is
/// removed and `output` is not touched, so a short file never passes for the whole.
/// So is Ctrl-C.
pub(crate) async fn tts_stream(
    client: &Client,
    request: TtsRequest,
    output: &Path,
    wav: bool,
) -> Result<ExitCode, String> {
    let request = if wav {
        request.output_format(OutputFormat::Pcm)
    } else {
        request
    };
    let status = progress::spinner("synthesizing…");
    // One wait for the signals from the first request on: none can slip between two.
    let mut interrupt = std::pin::pin!(crate::signal::terminated());
    let started = tokio::select! {
        started = client.synthesize_stream(&request) => started.map_err(|e| explain(&e)),
        _ = &mut interrupt => Err(format!("interrupted: {} was not written", output.display())),
    };
    let mut stream = started.inspect_err(|_| status.finish_and_clear())?;
    let format = stream.format();
    let sample_rate = stream.sample_rate();
    let container = if wav {
        Container::Wav {
            format,
            sample_rate,
        }
    } else {
        Container::Raw
    };
    let mut out =
        AudioFile::create(output, container).inspect_err(|_| status.finish_and_clear())?;
    status.set_message("receiving…");
    // The seconds of audio received; `None` for MP3, whose chunks do not say.
    let mut seconds = Some(Duration::ZERO);
    loop {
        let next = tokio::select! {
            next = stream.next_chunk() => next,
            _ = &mut interrupt => {
                status.finish_and_clear();
                return Err(incomplete("interrupted", &out, seconds, output));
            }
        };
        let Some(chunk) = next else { break };
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                status.finish_and_clear();
                return Err(incomplete(&explain(&e), &out, seconds, output));
            }
        };
        out.write(chunk.data())
            .inspect_err(|_| status.finish_and_clear())?;
        seconds = seconds.zip(chunk.duration()).map(|(a, b)| a + b);
        status.set_message(format!("receiving: {}", received(&stream, &out, seconds)));
    }
    status.finish_and_clear();
    if !stream.is_complete() {
        // `next_chunk` ends only after the `done` frame; never trust a short stream.
        return Err(incomplete(
            "the stream ended before its `done` frame",
            &out,
            seconds,
            output,
        ));
    }
    let summary = received(&stream, &out, seconds);
    let len = out.finish()?;
    let what = if wav {
        "WAV, 16-bit PCM".to_owned()
    } else {
        format.to_string()
    };
    eprintln!(
        "wrote {} ({what}, {sample_rate} Hz, {len} bytes; {summary})",
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `3.42 s of audio, 109.4 KB, first audio after 0.21 s`.
fn received(stream: &AudioStream, out: &AudioFile, seconds: Option<Duration>) -> String {
    let mut text = String::new();
    if let Some(seconds) = seconds {
        text.push_str(&format!("{} of audio, ", progress::secs(seconds)));
    }
    text.push_str(&progress::bytes(out.audio_bytes()));
    if let Some(first) = stream.time_to_first_chunk() {
        text.push_str(&format!(", first audio after {}", progress::secs(first)));
    }
    text
}

/// The error of a stream that broke: says that the audio is incomplete, how much
/// arrived, and that nothing was written to `output` (the part file goes when `out`
/// is dropped).
fn incomplete(why: &str, out: &AudioFile, seconds: Option<Duration>, output: &Path) -> String {
    let got = match seconds {
        Some(s) => format!(
            "{} ({})",
            progress::secs(s),
            progress::bytes(out.audio_bytes())
        ),
        None => progress::bytes(out.audio_bytes()),
    };
    format!(
        "the audio is incomplete: {why}\n  the stream broke after {got} of audio; the partial \
         audio was removed and {} was not written",
        output.display()
    )
}

/// `stt FILE`: uploads the file streamed from disk (never held in memory whole). On a
/// terminal a spinner shows while the transcript is waited for; a file of 1 MB or more
/// shows a bar of its upload first (bytes, rate, ETA), which turns into the spinner
/// once the whole file is sent.
pub(crate) async fn transcribe_file(
    client: &Client,
    path: &str,
    request: &TranscribeRequest,
) -> Result<Transcription, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a file"));
    }
    let name = crate::file_name(path);
    let (status, hook) = if meta.len() >= SHOW_UPLOAD_FROM {
        let bar = progress::upload(meta.len(), format!("uploading {name}"));
        let hook = (!bar.is_hidden()).then(|| upload_hook(&bar, &name));
        (bar, hook)
    } else {
        (progress::spinner(format!("transcribing {name}…")), None)
    };
    let result = crate::signal::unless_interrupted(
        || "interrupted: the transcription was stopped".to_owned(),
        async {
            client
                .transcribe_file(path, request, hook)
                .await
                .map_err(|e| explain(&e))
        },
    )
    .await;
    status.finish_and_clear();
    result
}

/// Moves `bar` with the upload; once all is sent, turns it into the "transcribing"
/// spinner (and back into a bar if a retry sends the file again).
fn upload_hook(bar: &ProgressBar, name: &str) -> ProgressHook {
    let bar = bar.clone();
    let name = name.to_owned();
    let sent_all = AtomicBool::new(false);
    Arc::new(move |p: Progress| {
        let done = p.total.is_some_and(|total| p.sent >= total);
        if done != sent_all.swap(done, Ordering::SeqCst) {
            if done {
                let message = format!(
                    "uploaded {name} ({}); transcribing…",
                    progress::bytes(p.sent)
                );
                progress::to_spinner(&bar, message);
            } else {
                progress::to_upload(&bar, format!("uploading {name} again"));
            }
        }
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        bar.set_position(p.sent);
    })
}
