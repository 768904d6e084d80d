//! Pre-recorded speech-to-text on both transports, over HTTP and TLS: bytes and URL,
//! unified and legacy paths, Pulse and Pulse Pro.

use smallest_core::{
    LegacyTranscribeRequest, OutputFormat, SttLanguage, SttModel, TranscribeRequest, TtsRequest,
};
use smallest_emulator::SAMPLE_AUDIO_URL;
use smallest_tests::{Setup, emulator, on_every_transport};

const TEXT: &str = "Speech to text, from bytes and from a URL.";
const SAMPLE_TEXT: &str =
    "This is a sample audio file for testing speech to text transcription with the Pulse API.";

fn speech(s: &Setup<'_>, text: &str) -> bytes::Bytes {
    s.api
        .synthesize(
            &TtsRequest::new(text, "magnus")
                .sample_rate(16000)
                .output_format(OutputFormat::Wav),
        )
        .unwrap()
        .into_bytes()
}

#[test]
fn bytes_transcribe_on_the_unified_path() {
    on_every_transport(emulator(), |s| {
        let result = s
            .api
            .transcribe(&TranscribeRequest::from_bytes(
                speech(s, TEXT),
                SttLanguage::En,
            ))
            .unwrap();
        assert_eq!(result.status, "success", "{s}");
        assert_eq!(result.transcription, TEXT, "{s}");
        assert!(
            result.words.is_empty() && result.utterances.is_empty(),
            "{s}"
        );
        let meta = result.metadata.unwrap();
        assert!(
            meta.duration.unwrap() > 0.0 && meta.file_size.unwrap() > 44,
            "{s}"
        );
    });
}

#[test]
fn word_timestamps_and_diarization_fill_words_and_utterances() {
    on_every_transport(emulator(), |s| {
        let result = s
            .api
            .transcribe(
                &TranscribeRequest::from_bytes(speech(s, TEXT), SttLanguage::En)
                    .word_timestamps(true)
                    .diarize(true),
            )
            .unwrap();
        let words: Vec<&str> = result.words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(words, TEXT.split(' ').collect::<Vec<_>>(), "{s}");
        assert!(
            result.words.windows(2).all(|w| w[0].end <= w[1].start),
            "{s}: words out of order"
        );
        assert!(result.words.iter().all(|w| w.speaker == Some(0)), "{s}");
        assert!(!result.utterances.is_empty(), "{s}");
    });
}

#[test]
fn pulse_pro_answers_in_its_own_shape() {
    on_every_transport(emulator(), |s| {
        let result = s
            .api
            .transcribe(
                &TranscribeRequest::from_bytes(speech(s, TEXT), SttLanguage::En)
                    .model(SttModel::PulsePro)
                    .word_timestamps(true),
            )
            .unwrap();
        assert_eq!(result.transcription, TEXT, "{s}");
        assert_eq!(result.language.as_deref(), Some("en"), "{s}");
        assert!(
            result.request_id.is_some() && result.total_bytes.is_some(),
            "{s}"
        );
        assert!(result.utterances.is_empty(), "{s}");
        assert!(result.words.iter().all(|w| w.speaker.is_none()), "{s}");
    });
}

#[test]
fn a_url_transcribes_on_the_unified_and_the_legacy_path() {
    on_every_transport(emulator(), |s| {
        let unified = s
            .api
            .transcribe(&TranscribeRequest::from_url(
                SAMPLE_AUDIO_URL,
                SttLanguage::En,
            ))
            .unwrap();
        assert_eq!(unified.transcription, SAMPLE_TEXT, "{s}");
        // The seed's call, exactly: POST /waves/v1/pulse/get_text?language=en {"url": …}.
        let legacy = s
            .api
            .transcribe_legacy(
                &LegacyTranscribeRequest::from_url(SAMPLE_AUDIO_URL).language(SttLanguage::En),
            )
            .unwrap();
        assert_eq!(legacy.transcription, SAMPLE_TEXT, "{s}");
    });
}

#[test]
fn registered_fixtures_are_reachable_by_url() {
    let clip = "https://example.com/clips/greeting.wav";
    let audio = smallest_emulator::speech::synthesize_pcm("Fixtures work.", 16000, 1.0);
    let mut wav = smallest_core::audio::wav_header(
        smallest_core::audio::WavEncoding::Pcm16,
        16000,
        (audio.len() * 2) as u64,
    )
    .to_vec();
    wav.extend(audio.iter().flat_map(|s| s.to_le_bytes()));
    on_every_transport(emulator().fixture(clip, wav.clone()), |s| {
        let result = s
            .api
            .transcribe(&TranscribeRequest::from_url(clip, SttLanguage::En))
            .unwrap();
        assert_eq!(result.transcription, "Fixtures work.", "{s}");
    });
}

#[test]
fn legacy_bytes_transcribe() {
    on_every_transport(emulator(), |s| {
        let result = s
            .api
            .transcribe_legacy(&LegacyTranscribeRequest::from_bytes(speech(s, TEXT)))
            .unwrap();
        assert_eq!(result.transcription, TEXT, "{s}");
    });
}

#[test]
fn health_needs_no_key() {
    on_every_transport(emulator(), |s| {
        let health = s.api.health().unwrap();
        assert!(health.healthy, "{s}");
        assert_eq!(
            health.services.get("mongo").map(String::as_str),
            Some("connected"),
            "{s}"
        );
    });
}
