//! Voices, the voice catalog, voice cloning and pronunciation dictionaries on both
//! transports, over HTTP and TLS, against the emulator.

use smallest_core::{
    CreateDict, CreateVoiceClone, DeleteDict, Language, OutputFormat, PronunciationItem,
    SttLanguage, TranscribeRequest, TtsModel, TtsRequest, UpdateDict, VoiceFilter,
};
use smallest_tests::{Setup, api_error, emulator, on_every_transport};

/// A short WAV recording to clone from: the emulator's own speech.
fn recording() -> Vec<u8> {
    let samples = smallest_emulator::speech::synthesize_pcm("My voice sample.", 16000, 1.0);
    let mut wav = smallest_core::audio::wav_header(
        smallest_core::audio::WavEncoding::Pcm16,
        16000,
        (samples.len() * 2) as u64,
    )
    .to_vec();
    wav.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    wav
}

fn round_trip(s: &Setup<'_>, request: &TtsRequest) -> String {
    let audio = s.api.synthesize(request).unwrap();
    s.api
        .transcribe(&TranscribeRequest::from_bytes(
            audio.to_wav().unwrap(),
            SttLanguage::En,
        ))
        .unwrap()
        .transcription
}

#[test]
fn voices_are_listed_typed_and_filterable() {
    on_every_transport(emulator(), |s| {
        let voices = s.api.voices().unwrap();
        assert!(voices.iter().any(|v| v.id == "meher"), "{s}");
        assert!(
            voices
                .iter()
                .all(|v| !v.id.is_empty() && !v.display_name.is_empty()),
            "{s}"
        );
        let filter = VoiceFilter::new().language("hi").gender("female");
        let hindi_women: Vec<_> = filter.filter(&voices).collect();
        assert!(!hindi_women.is_empty(), "{s}");
        assert!(
            hindi_women
                .iter()
                .all(|v| v.tags.gender.as_deref() == Some("female")
                    && v.tags.languages.iter().any(|l| l == "hindi")),
            "{s}"
        );
        let catalog = s.api.voice_catalog().unwrap();
        assert!(
            catalog.iter().all(|v| v
                .audio_preview
                .as_deref()
                .is_some_and(|u| u.starts_with("http"))),
            "{s}"
        );
    });
}

#[test]
fn a_clone_is_created_listed_and_speaks() {
    on_every_transport(emulator(), |s| {
        let clone = s
            .api
            .create_voice_clone(
                &CreateVoiceClone::new("My clone", recording(), "sample.wav")
                    .language(Language::En)
                    .model(TtsModel::LightningV31),
            )
            .unwrap();
        assert!(clone.id.starts_with("voice_"), "{s}: {}", clone.id);
        assert_eq!(clone.display_name, "My clone", "{s}");
        assert!(
            s.api
                .list_voice_clones()
                .unwrap()
                .iter()
                .any(|c| c.id == clone.id),
            "{s}"
        );
        assert!(
            s.api.voices().unwrap().iter().any(|v| v.id == clone.id),
            "{s}"
        );
        let text = "Spoken by my clone.";
        let heard = round_trip(
            s,
            &TtsRequest::new(text, &clone.id)
                .sample_rate(16000)
                .output_format(OutputFormat::Wav),
        );
        assert_eq!(heard, text, "{s}");
    });
}

#[test]
fn clone_validation_is_local_and_names_the_field() {
    on_every_transport(emulator(), |s| {
        let before = s.emulator.requests().len();
        let too_long = "x".repeat(501);
        for (request, field) in [
            (
                CreateVoiceClone::new("", recording(), "a.wav"),
                "displayName",
            ),
            (
                CreateVoiceClone::new(too_long.as_str(), recording(), "a.wav"),
                "displayName",
            ),
            (
                CreateVoiceClone::new("n", vec![0u8; 6 * 1024 * 1024], "a.wav"),
                "file",
            ),
            (
                CreateVoiceClone::new("n", b"plain text, not audio".to_vec(), "a.txt"),
                "file",
            ),
            (
                CreateVoiceClone::new("n", recording(), "a.wav")
                    .model(TtsModel::Other("lightning-v2".into())),
                "model",
            ),
        ] {
            let err = s.api.create_voice_clone(&request).unwrap_err();
            let v = err.validation().unwrap_or_else(|| panic!("{s}: {err:?}"));
            assert!(v.field().contains(field), "{s}: {} for {field}", v.field());
        }
        assert_eq!(
            s.emulator.requests().len(),
            before,
            "{s}: an invalid clone was sent"
        );
    });
}

#[test]
fn a_dictionary_respells_words_in_speech_and_can_be_updated_and_deleted() {
    on_every_transport(emulator(), |s| {
        let dict = s
            .api
            .create_dict(&CreateDict::new([PronunciationItem::new(
                "mysql",
                "my-sequel",
            )
            .unwrap()]))
            .unwrap();
        assert!(
            s.api.list_dicts().unwrap().iter().any(|d| d.id == dict.id),
            "{s}"
        );
        let request = TtsRequest::new("I like mysql a lot.", "magnus")
            .sample_rate(16000)
            .pronunciation_dict(&dict.id);
        assert_eq!(round_trip(s, &request), "I like my-sequel a lot.", "{s}");

        let updated = s
            .api
            .update_dict(&UpdateDict::new(
                &dict.id,
                [PronunciationItem::new("mysql", "my-s-q-l").unwrap()],
            ))
            .unwrap();
        assert_eq!(updated.items.len(), 1, "{s}");
        assert_eq!(round_trip(s, &request), "I like my-s-q-l a lot.", "{s}");

        let deleted = s.api.delete_dict(&DeleteDict::new(&dict.id)).unwrap();
        assert!(deleted.deleted && deleted.id == dict.id, "{s}");
        assert!(
            s.api.list_dicts().unwrap().iter().all(|d| d.id != dict.id),
            "{s}"
        );
        // Synthesizing with a deleted dictionary is the server's 400, naming the field.
        let e = api_error(s, s.api.synthesize(&request));
        assert_eq!(e.status(), 400, "{s}");
        assert!(
            e.issues()
                .iter()
                .any(|i| i.path.starts_with("pronunciation_dicts")),
            "{s}: {e}"
        );
        // Updating it is a 404.
        let e = api_error(s, s.api.update_dict(&UpdateDict::new(&dict.id, [])));
        assert_eq!(e.status(), 404, "{s}");
    });
}

#[test]
fn dictionary_items_are_validated_locally() {
    assert!(PronunciationItem::new("", "x").is_err());
    assert!(PronunciationItem::new("x", "").is_err());
    on_every_transport(emulator(), |s| {
        let err = s.api.create_dict(&CreateDict::new([])).unwrap_err();
        assert_eq!(
            err.validation().map(|v| v.field()),
            Some("items"),
            "{s}: {err:?}"
        );
    });
}
