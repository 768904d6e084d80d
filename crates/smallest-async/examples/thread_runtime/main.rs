//! The whole client on an executor of your own: `futures::executor::block_on` and the
//! [`ThreadRuntime`] of `runtime.rs` (thread-per-connection I/O, one timer thread).
//! A synthesis, its transcription, and a live STT session of the same audio.
//!
//! ```sh
//! SMALLEST_API_KEY=sk_test SMALLEST_BASE_URL=http://127.0.0.1:PORT \
//!     cargo run -p smallest-async --example thread_runtime
//! ```

mod runtime;

use runtime::ThreadRuntime;
use smallest_async::{
    Client, Config, OutputFormat, SttLanguage, SttLiveConfig, SttLiveEvent, TranscribeRequest,
    TtsRequest,
};

const TEXT: &str = "Any executor will do.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::with_runtime(Config::from_env()?, ThreadRuntime)?;
    futures::executor::block_on(async {
        let request = TtsRequest::new(TEXT, "magnus")
            .sample_rate(16000)
            .output_format(OutputFormat::Pcm);
        let audio = client.synthesize(&request).await?;
        println!("synthesized {} bytes of 16 kHz PCM", audio.bytes().len());

        let wav = audio.to_wav()?;
        let transcript = client
            .transcribe(&TranscribeRequest::from_bytes(wav, SttLanguage::En))
            .await?;
        println!("transcribed: {}", transcript.transcription);

        let (sender, mut receiver) = client
            .stt_live(SttLiveConfig::new(SttLanguage::En).sample_rate(16000))
            .await?
            .split();
        // The sending half on a thread of its own, as a second task would run.
        let pcm = audio.bytes().clone();
        let sending = std::thread::spawn(move || {
            futures::executor::block_on(async {
                for frame in pcm.chunks(4096) {
                    sender.send_audio(frame).await?;
                }
                sender.close_stream().await
            })
        });
        let mut finals = Vec::new();
        while let Some(event) = receiver.recv().await {
            if let SttLiveEvent::Transcript(t) = event?
                && t.is_final
                && !t.text.trim().is_empty()
            {
                finals.push(t.text.trim().to_owned());
            }
        }
        sending
            .join()
            .map_err(|_| "the sending thread panicked")??;
        println!("live: {}", finals.join(" "));
        if transcript.transcription.trim() != TEXT || finals.join(" ") != TEXT {
            return Err("the round trip did not return the text".into());
        }
        Ok(())
    })
}
