//! Text to speech on smol, saved as a WAV file.
//!
//! ```sh
//! smallest emulator &   # or a real key: SMALLEST_API_KEY=sk_...
//! SMALLEST_API_KEY=sk_test SMALLEST_BASE_URL=http://127.0.0.1:PORT \
//!     cargo run -p smallest-async --features smol --example smol_tts -- hello.wav "Hello from smol."
//! ```

use smallest_async::{Client, OutputFormat, TtsRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "smol-hello.wav".to_owned());
    let text = args.next().unwrap_or_else(|| "Hello from smol.".to_owned());
    smol::block_on(async {
        // SMALLEST_API_KEY and SMALLEST_BASE_URL; the runtime is smol's (feature `smol`).
        let client = Client::from_env()?;
        let request = TtsRequest::new(text, "magnus")
            .sample_rate(16000)
            .output_format(OutputFormat::Wav);
        let audio = client.synthesize(&request).await?;
        std::fs::write(&path, audio.bytes())?;
        println!(
            "wrote {path}: {} bytes, {:.2} s of audio",
            audio.bytes().len(),
            audio.duration().map_or(0.0, |d| d.as_secs_f64())
        );
        Ok(())
    })
}
