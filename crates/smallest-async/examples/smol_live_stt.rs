//! Live speech to text on smol: a 16-bit PCM mono WAV file streamed over the live
//! WebSocket (as fast as the connection takes it), the transcripts printed as they come.
//! One task sends, another receives: the halves of a split session need no runtime lock.
//!
//! ```sh
//! cargo run -p smallest-async --features smol --example smol_tts -- hello.wav
//! cargo run -p smallest-async --features smol --example smol_live_stt -- hello.wav
//! ```

use smallest_async::{Client, SttLanguage, SttLiveConfig, SttLiveEvent};
use smallest_core::audio::{wav_data, wav_info};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: smol_live_stt FILE.wav (16-bit PCM, mono)")?;
    let file = std::fs::read(&path)?;
    let info = wav_info(&file).ok_or("not a WAV file")?;
    if info.format_tag != 1 || info.bits_per_sample != 16 || info.channels != 1 {
        return Err(format!("{path}: expected 16-bit PCM mono, got {info:?}").into());
    }
    let pcm = wav_data(&file).ok_or("no data chunk")?.to_vec();
    smol::block_on(async {
        let client = Client::from_env()?;
        let config = SttLiveConfig::new(SttLanguage::En).sample_rate(info.sample_rate);
        let (sender, mut receiver) = client.stt_live(config).await?.split();
        let sending = smol::spawn(async move {
            for frame in pcm.chunks(4096) {
                sender.send_audio(frame).await?;
            }
            sender.close_stream().await?;
            Ok::<_, smallest_async::Error>(())
        });
        let mut finals = Vec::new();
        while let Some(event) = receiver.recv().await {
            match event? {
                SttLiveEvent::Transcript(t) if t.is_final && !t.text.trim().is_empty() => {
                    println!("final: {}", t.text.trim());
                    finals.push(t.text.trim().to_owned());
                }
                SttLiveEvent::Transcript(t) if t.is_final => {}
                SttLiveEvent::Transcript(t) => println!("interim: {}", t.text.trim()),
                SttLiveEvent::Closed { code, .. } => println!("closed ({code:?})"),
                _ => {}
            }
        }
        sending.await?;
        if finals.is_empty() {
            return Err("no transcript came back".into());
        }
        println!("transcript: {}", finals.join(" "));
        Ok(())
    })
}
