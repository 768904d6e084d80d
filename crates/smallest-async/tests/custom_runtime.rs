//! The custom runtime of the `thread_runtime` example (the code of the guide,
//! `docs/custom-runtime.md`) running the whole client against the emulator: one-shot
//! calls, an SSE stream, a streamed upload, both live sessions, retries and a time limit.

#[path = "../examples/thread_runtime/runtime.rs"]
mod runtime;

use std::time::{Duration, Instant};

use futures::StreamExt;
use runtime::ThreadRuntime;
use smallest_async::{
    ApiKey, BuildOn, Client, Config, Error, OutputFormat, RetryPolicy, SttLanguage, SttLiveConfig,
    SttLiveEvent, TimeoutPhase, TranscribeRequest, TtsLiveConfig, TtsLiveEvent, TtsRequest,
};
use smallest_emulator::{Emulator, Fault, FaultRule, RunningEmulator};

const KEY: &str = "sk_test_custom_runtime_0123";
const TEXT: &str = "Any executor will do.";
const VOICES: &str = "/waves/v1/lightning-v3.1/get_voices";

fn config(emulator: &RunningEmulator) -> Config {
    Config::new(ApiKey::new(KEY).unwrap())
        .with_base_url(&emulator.base_url())
        .unwrap()
}

fn client(emulator: &RunningEmulator) -> Client {
    Client::builder(config(emulator))
        .without_proxy()
        .idle_timeout(Duration::from_secs(10))
        .build_on(ThreadRuntime)
        .unwrap()
}

#[test]
fn every_kind_of_call_runs_on_a_runtime_of_ones_own() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let client = client(&emulator);
    futures::executor::block_on(async {
        let request = TtsRequest::new(TEXT, "magnus")
            .sample_rate(16000)
            .output_format(OutputFormat::Pcm);
        let audio = client.synthesize(&request).await.unwrap();
        let wav = audio.to_wav().unwrap();
        let text = client
            .transcribe(&TranscribeRequest::from_bytes(
                wav.to_vec(),
                SttLanguage::En,
            ))
            .await
            .unwrap();
        assert_eq!(text.transcription.trim(), TEXT);

        // The SSE stream gives the same audio as the one-shot call.
        let mut stream = client.synthesize_stream(&request).await.unwrap();
        let mut streamed = Vec::new();
        while let Some(chunk) = stream.next().await {
            streamed.extend_from_slice(chunk.unwrap().data());
        }
        assert_eq!(streamed, audio.bytes().as_ref());

        // A streamed upload from a file.
        let path =
            std::env::temp_dir().join(format!("smallest-custom-rt-{}.wav", std::process::id()));
        std::fs::write(&path, &wav).unwrap();
        let template = TranscribeRequest::from_bytes(Vec::new(), SttLanguage::En);
        let uploaded = client.transcribe_file(&path, &template, None).await;
        let _ = std::fs::remove_file(&path);
        assert_eq!(uploaded.unwrap().transcription.trim(), TEXT);

        // Live TTS: the audio of the whole request, then Complete.
        let (tx, mut rx) = client
            .tts_live(TtsLiveConfig::new("magnus").sample_rate(16000))
            .await
            .unwrap()
            .split();
        let index = tx.speak(TEXT).await.unwrap();
        let mut live_audio = 0;
        loop {
            match rx.recv().await.expect("an event").unwrap() {
                TtsLiveEvent::Audio { data, .. } => live_audio += data.len(),
                TtsLiveEvent::Complete { request_index, .. } if request_index == index => break,
                _ => {}
            }
        }
        assert!(live_audio > 0);
        tx.close().await.unwrap();

        // Live STT of the same audio, sent from another thread.
        let (tx, mut rx) = client
            .stt_live(SttLiveConfig::new(SttLanguage::En).sample_rate(16000))
            .await
            .unwrap()
            .split();
        let pcm = audio.bytes().clone();
        let sender = std::thread::spawn(move || {
            futures::executor::block_on(async {
                let mut position = 0;
                for frame in pcm.chunks(4096) {
                    position = tx.send_audio(frame).await?;
                }
                tx.close_stream().await?;
                Ok::<_, Error>(position)
            })
        });
        let mut finals = Vec::new();
        while let Some(event) = rx.recv().await {
            if let SttLiveEvent::Transcript(t) = event.unwrap()
                && t.is_final
                && !t.text.trim().is_empty()
            {
                finals.push(t.text.trim().to_owned());
            }
        }
        assert_eq!(sender.join().unwrap().unwrap(), audio.bytes().len() as u64);
        assert_eq!(finals.join(" "), TEXT);
    });
}

#[test]
fn retries_and_time_limits_use_the_runtimes_timers() {
    let emulator = Emulator::builder().key(KEY).spawn().unwrap();
    let client = client(&emulator);
    futures::executor::block_on(async {
        // Two 429s with Retry-After: 1, then success: two waits on the runtime's timers.
        emulator.inject(FaultRule::new(VOICES, Fault::too_many_requests(Some("1"))).times(2));
        let started = Instant::now();
        assert!(!client.voices().await.unwrap().is_empty());
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        // A server slower than the response limit.
        emulator.inject(FaultRule::new(
            VOICES,
            Fault::Latency(Duration::from_secs(3)),
        ));
        let impatient = Client::builder(config(&emulator))
            .without_proxy()
            .retry_policy(RetryPolicy::none())
            .response_timeout(Duration::from_millis(300))
            .build_on(ThreadRuntime)
            .unwrap();
        let started = Instant::now();
        let e = impatient.voices().await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Timeout {
                    phase: TimeoutPhase::ResponseHead,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    });
}
