//! Text-to-speech on both transports, over HTTP and TLS, against the emulator.

use smallest_core::audio::{wav_data, wav_info};
use smallest_core::tts::ContentExpiry;
use smallest_core::{OutputFormat, SttLanguage, TranscribeRequest, TtsModel, TtsRequest};
use smallest_tests::{emulator, on_every_transport};

const TEXT: &str = "Hello from Smallest AI.";

fn request(format: OutputFormat, rate: u32) -> TtsRequest {
    TtsRequest::new(TEXT, "meher")
        .model(TtsModel::LightningV31Pro)
        .sample_rate(rate)
        .output_format(format)
}

#[test]
fn the_seed_call_gives_a_24khz_mono_16bit_wav_that_transcribes_back() {
    on_every_transport(emulator(), |s| {
        let audio = s
            .api
            .synthesize(&request(OutputFormat::Wav, 24000))
            .unwrap();
        assert_eq!(audio.format(), OutputFormat::Wav, "{s}");
        assert_eq!(audio.sample_rate(), 24000, "{s}");
        let info = wav_info(audio.bytes()).unwrap_or_else(|| panic!("{s}: not a WAV"));
        assert_eq!(
            (
                info.format_tag,
                info.channels,
                info.sample_rate,
                info.bits_per_sample
            ),
            (1, 1, 24000, 16),
            "{s}"
        );
        assert!(audio.duration().unwrap().as_secs_f64() > 0.2, "{s}");
        let text = s
            .api
            .transcribe(&TranscribeRequest::from_bytes(
                audio.into_bytes(),
                SttLanguage::En,
            ))
            .unwrap();
        assert_eq!(text.transcription, TEXT, "{s}");
    });
}

#[test]
fn every_format_at_every_rate_carries_the_same_speech() {
    on_every_transport(emulator(), |s| {
        for rate in [8000, 16000, 24000, 44100] {
            let pcm = s.api.synthesize(&request(OutputFormat::Pcm, rate)).unwrap();
            assert_eq!(
                pcm.bytes().len() % 2,
                0,
                "{s}: pcm at {rate} Hz has half a sample"
            );
            let samples = pcm.bytes().len() / 2;

            let wav = s.api.synthesize(&request(OutputFormat::Wav, rate)).unwrap();
            assert_eq!(wav_info(wav.bytes()).unwrap().sample_rate, rate, "{s}");
            assert_eq!(
                wav_data(wav.bytes()).unwrap(),
                &pcm.bytes()[..],
                "{s}: wav and pcm at {rate} Hz differ"
            );

            for format in [OutputFormat::Ulaw, OutputFormat::Alaw] {
                let g711 = s.api.synthesize(&request(format, rate)).unwrap();
                assert_eq!(g711.bytes().len(), samples, "{s}: {format} at {rate} Hz");
                // A WAV made from the headerless bytes transcribes back to the text.
                let wav = g711.to_wav().unwrap();
                let text = s
                    .api
                    .transcribe(&TranscribeRequest::from_bytes(wav, SttLanguage::En))
                    .unwrap();
                assert_eq!(text.transcription, TEXT, "{s}: {format} at {rate} Hz");
            }

            let from_pcm = s
                .api
                .transcribe(&TranscribeRequest::from_bytes(
                    pcm.to_wav().unwrap(),
                    SttLanguage::En,
                ))
                .unwrap();
            assert_eq!(from_pcm.transcription, TEXT, "{s}: pcm at {rate} Hz");
        }
    });
}

#[test]
fn mp3_is_mpeg_audio_frames() {
    on_every_transport(emulator(), |s| {
        for rate in [16000, 24000, 44100] {
            let mp3 = s.api.synthesize(&request(OutputFormat::Mp3, rate)).unwrap();
            let bytes = mp3.bytes();
            let start = if bytes.starts_with(b"ID3") {
                // Skip an ID3v2 tag: 10-byte header + syncsafe size.
                10 + bytes[6..10]
                    .iter()
                    .fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f))
            } else {
                0
            };
            assert!(
                bytes.len() > start + 4 && bytes[start] == 0xFF && bytes[start + 1] & 0xE0 == 0xE0,
                "{s}: no MPEG frame sync at {rate} Hz"
            );
            assert!(mp3.duration().is_none());
            assert!(mp3.to_wav().is_err(), "{s}: mp3 has no WAV form");
        }
    });
}

#[test]
fn response_headers_echo_ids_and_content_expiry() {
    on_every_transport(emulator(), |s| {
        let plain = s
            .api
            .synthesize(&request(OutputFormat::Pcm, 16000))
            .unwrap();
        assert!(plain.info().session_id.is_some(), "{s}");
        assert!(plain.info().request_id.is_some(), "{s}");
        assert_eq!(plain.info().external_session_id, None, "{s}");
        assert_eq!(plain.info().content_expiry, None, "{s}");

        let tagged = s
            .api
            .synthesize(
                &request(OutputFormat::Pcm, 16000)
                    .session_id("my-session-123")
                    .request_id("my-request.456")
                    .expire_content(true),
            )
            .unwrap();
        let info = tagged.info();
        assert_eq!(
            info.external_session_id.as_deref(),
            Some("my-session-123"),
            "{s}"
        );
        assert_eq!(
            info.external_request_id.as_deref(),
            Some("my-request.456"),
            "{s}"
        );
        assert_eq!(info.content_expiry, Some(ContentExpiry::Applied), "{s}");
    });
}

#[test]
fn speed_changes_the_length_of_the_audio() {
    on_every_transport(emulator(), |s| {
        let len = |speed: f32| {
            s.api
                .synthesize(&request(OutputFormat::Pcm, 16000).speed(speed))
                .unwrap()
                .bytes()
                .len()
        };
        let (slow, normal, fast) = (len(0.5), len(1.0), len(2.0));
        assert!(
            slow > normal && normal > fast,
            "{s}: {slow} {normal} {fast}"
        );
    });
}

#[test]
fn the_default_request_is_pcm_at_44100() {
    on_every_transport(emulator(), |s| {
        let audio = s.api.synthesize(&TtsRequest::new(TEXT, "magnus")).unwrap();
        assert_eq!(
            (audio.format(), audio.sample_rate()),
            (OutputFormat::Pcm, 44100),
            "{s}"
        );
        assert!(
            !audio.bytes().starts_with(b"RIFF"),
            "{s}: pcm is headerless"
        );
    });
}

#[test]
fn a_long_text_is_synthesized_in_sentence_chunks_and_joined_in_order() {
    let sentence = "This sentence is one of many in a long text.";
    let text = vec![sentence; 14].join(" ");
    assert!(text.len() > 600);
    on_every_transport(emulator(), |s| {
        let request = TtsRequest::new(text.as_str(), "magnus")
            .sample_rate(8000)
            .output_format(OutputFormat::Wav);
        let audio = s.api.synthesize_long(&request).unwrap();
        assert_eq!(wav_info(audio.bytes()).unwrap().sample_rate, 8000, "{s}");
        let chunks = s
            .emulator
            .requests()
            .iter()
            .filter(|r| r.path == "/waves/v1/tts")
            .count();
        assert!(
            chunks >= 3,
            "{s}: {chunks} requests for {} characters",
            text.len()
        );
        let heard = s
            .api
            .transcribe(&TranscribeRequest::from_bytes(
                audio.into_bytes(),
                SttLanguage::En,
            ))
            .unwrap()
            .transcription;
        assert_eq!(heard, text, "{s}");
    });
}

#[test]
fn tls_is_verified_unless_the_root_is_added() {
    let emulator = emulator().tls(true).spawn().unwrap();
    let config = smallest_tests::config_for(&emulator, smallest_tests::KEY);
    let hyper = smallest_hyper::Client::builder(config.clone())
        .retry_policy(smallest_core::retry::RetryPolicy::none())
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime.block_on(hyper.health()).unwrap_err();
    assert!(
        matches!(
            err,
            smallest_core::Error::Transport {
                request_sent: false,
                ..
            }
        ),
        "{err:?}"
    );
    let blocking = smallest_blocking::Client::builder(config)
        .retry_policy(smallest_core::retry::RetryPolicy::none())
        .build()
        .unwrap();
    let err = blocking.health().unwrap_err();
    assert!(
        matches!(
            err,
            smallest_core::Error::Transport {
                request_sent: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        emulator.requests().is_empty(),
        "a request reached an untrusted server"
    );
}
