//! Text to speech streamed over Server-Sent Events on tokio: each chunk is printed as
//! it arrives, and the audio is saved as a WAV file whose sizes are patched at the end.
//!
//! ```sh
//! SMALLEST_API_KEY=sk_test SMALLEST_BASE_URL=http://127.0.0.1:PORT \
//!     cargo run -p smallest-hyper --example tokio_sse -- streamed.wav
//! ```

use futures_util::StreamExt;
use smallest_hyper::{Client, OutputFormat, TtsRequest};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "streamed.wav".to_owned());
    let client = Client::from_env()?;
    let request = TtsRequest::new(
        "Streaming speech arrives chunk by chunk. The first audio comes long before the last.",
        "magnus",
    )
    .sample_rate(24000)
    .output_format(OutputFormat::Pcm);

    // Chunk by chunk: a cut stream is an error item, never a short success.
    let mut stream = client.synthesize_stream(&request).await?;
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        println!(
            "chunk: {} bytes at offset {}",
            chunk.len(),
            chunk.offset_bytes()
        );
    }
    println!(
        "{bytes} bytes; first audio after {:?}",
        stream.time_to_first_chunk().unwrap_or_default()
    );

    // Or straight into a WAV file, in constant memory.
    let written = client
        .synthesize_stream(&request)
        .await?
        .save_wav(&path)
        .await?;
    println!("wrote {path}: {written} bytes");
    Ok(())
}
