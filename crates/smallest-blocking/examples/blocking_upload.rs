//! Speech to text on plain threads: a file streamed from disk (never held in memory
//! whole) with upload progress, and the transcript printed with its word timings.
//!
//! ```sh
//! SMALLEST_API_KEY=sk_test SMALLEST_BASE_URL=http://127.0.0.1:PORT \
//!     cargo run -p smallest-blocking --example blocking_upload -- recording.wav
//! ```

use std::sync::Arc;

use smallest_blocking::{Client, Progress, ProgressHook, SttLanguage, TranscribeRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: blocking_upload FILE (wav, mp3, flac …)")?;
    let client = Client::from_env()?;
    let progress: ProgressHook = Arc::new(|p: Progress| match p.fraction() {
        Some(f) => println!("uploaded {} bytes ({:.0}%)", p.sent, f * 100.0),
        None => println!("uploaded {} bytes", p.sent),
    });
    // A template: its language and options are used, the file is the source.
    let template = TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En).word_timestamps(true);
    let transcript = client.transcribe_file(&path, &template, Some(progress))?;
    println!("transcript: {}", transcript.transcription);
    for word in &transcript.words {
        println!("  {:>6.2}–{:<6.2} {}", word.start, word.end, word.word);
    }
    if transcript.transcription.trim().is_empty() {
        return Err("the transcript is empty".into());
    }
    Ok(())
}
