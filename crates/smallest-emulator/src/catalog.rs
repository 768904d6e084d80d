//! Static facts of the API: models, languages and the seed voice catalog (API.md §3.2, §4.1, §5.3).

/// TTS models (`model` in the TTS body).
pub(crate) const TTS_MODELS: [&str; 2] = ["lightning_v3.1", "lightning_v3.1_pro"];

/// The TTS `language` enum, in the spec's order.
pub(crate) const TTS_LANGUAGES: [&str; 32] = [
    "auto", "en", "hi", "mr", "kn", "ta", "bn", "gu", "te", "ml", "pa", "or", "es", "de", "fr",
    "it", "nl", "sv", "pt", "ru", "el", "fi", "no", "pl", "ar", "zh", "id", "ja", "ko", "ms", "tr",
    "vi",
];

/// Languages `lightning_v3.1` accepts besides `auto`.
const V31_LANGUAGES: [&str; 20] = [
    "en", "es", "fr", "de", "it", "nl", "sv", "pt", "pl", "ru", "hi", "mr", "gu", "pa", "bn", "or",
    "ta", "te", "kn", "ml",
];

/// Languages only `lightning_v3.1_pro` accepts.
const PRO_ONLY_LANGUAGES: [&str; 11] = [
    "el", "fi", "no", "zh", "ja", "ko", "id", "ms", "vi", "tr", "ar",
];

/// Whether `model` accepts `language` (`auto` is accepted by both).
pub(crate) fn tts_language_supported(model: &str, language: &str) -> bool {
    language == "auto"
        || V31_LANGUAGES.contains(&language)
        || (model == "lightning_v3.1_pro" && PRO_ONLY_LANGUAGES.contains(&language))
}

/// The languages of `model`, in the enum's order, for the validation message.
pub(crate) fn tts_languages_of(model: &str) -> Vec<&'static str> {
    TTS_LANGUAGES
        .iter()
        .copied()
        .filter(|l| *l != "auto" && tts_language_supported(model, l))
        .collect()
}

/// TTS sample rates.
pub(crate) const TTS_SAMPLE_RATES: [u32; 4] = [8000, 16000, 24000, 44100];

/// STT models (`model` query parameter of `/waves/v1/stt/`).
pub(crate) const STT_MODELS: [&str; 2] = ["pulse", "pulse-pro"];

/// Pre-recorded STT languages (spec enum: 26 codes and 3 aggregators).
pub(crate) const STT_LANGUAGES: [&str; 29] = [
    "en",
    "hi",
    "de",
    "es",
    "ru",
    "it",
    "fr",
    "nl",
    "pt",
    "uk",
    "pl",
    "cs",
    "sk",
    "lv",
    "et",
    "ro",
    "fi",
    "sv",
    "bg",
    "hu",
    "da",
    "lt",
    "mt",
    "zh",
    "ja",
    "ko",
    "multi-eu",
    "multi-asian",
    "multi-indic",
];

/// Which catalog a seed voice belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    Standard,
    Pro,
}

/// A seed voice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Voice {
    pub(crate) id: &'static str,
    pub(crate) pool: Pool,
    pub(crate) languages: &'static [&'static str],
    pub(crate) accent: &'static str,
    pub(crate) gender: &'static str,
}

const EN: &[&str] = &["english"];
const EN_HI: &[&str] = &["english", "hindi"];

macro_rules! voices {
    ($($id:literal $pool:ident $langs:expr, $accent:literal $gender:literal;)*) => {
        &[$(Voice { id: $id, pool: Pool::$pool, languages: $langs, accent: $accent, gender: $gender }),*]
    };
}

/// The voice ids the emulator knows (both pools; the examples of API.md §5.3). Genders and accents
/// are illustrative seed data.
pub(crate) const VOICES: &[Voice] = voices! {
    "magnus" Standard EN, "american" "male";
    "olivia" Standard EN, "american" "female";
    "jordan" Standard EN, "american" "male";
    "lauren" Standard EN, "american" "female";
    "quinn" Standard EN, "american" "female";
    "mia" Standard EN, "american" "female";
    "daniel" Standard EN, "american" "male";
    "rachel" Standard EN, "american" "female";
    "avery" Standard EN, "american" "female";
    "liam" Standard EN, "american" "male";
    "william" Standard EN, "canadian" "male";
    "erica" Standard EN, "canadian" "female";
    "chloe" Standard EN, "australian" "female";
    "devansh" Standard EN_HI, "indian" "male";
    "sunidhi" Standard EN_HI, "indian" "female";
    "aarush" Standard EN_HI, "indian" "male";
    "maithili" Standard EN_HI, "indian" "female";
    "kartik" Standard EN_HI, "indian" "male";
    "neel" Standard EN_HI, "indian" "male";
    "sakshi" Standard EN_HI, "indian" "female";
    "jeevan" Standard &["tamil"], "indian" "male";
    "rajeshwari" Standard &["tamil"], "indian" "female";
    "srihari" Standard &["telugu"], "indian" "male";
    "padmaja" Standard &["telugu"], "indian" "female";
    "pranav" Standard &["kannada"], "indian" "male";
    "deepashri" Standard &["kannada"], "indian" "female";
    "vaisakh" Standard &["malayalam"], "indian" "male";
    "shibi" Standard &["malayalam"], "indian" "female";
    "rupali" Standard &["marathi"], "indian" "female";
    "nilesh" Standard &["marathi"], "indian" "male";
    "niharika" Standard &["gujarati"], "indian" "female";
    "dhruvit" Standard &["gujarati"], "indian" "male";
    "marcos" Standard &["spanish"], "spanish" "male";
    "daniella" Standard &["spanish"], "spanish" "female";
    "camilla" Standard &["spanish"], "spanish" "female";
    "meher" Pro EN_HI, "indian" "female";
    "rhea" Pro EN_HI, "indian" "female";
    "mishka" Pro EN_HI, "indian" "female";
    "aviraj" Pro EN_HI, "indian" "male";
    "vyom" Pro EN_HI, "indian" "male";
    "sophie" Pro EN, "british" "female";
    "ellie" Pro EN, "british" "female";
    "sam" Pro EN, "british" "male";
    "benedict" Pro EN, "british" "male";
    "henry" Pro EN, "british" "male";
    "kaitlyn" Pro EN, "american" "female";
    "savannah" Pro EN, "american" "female";
    "blake" Pro EN, "american" "male";
    "austin" Pro EN, "american" "male";
    "jack" Pro EN, "american" "male";
    "malar" Pro &["tamil"], "indian" "female";
    "mrunal" Pro &["marathi"], "indian" "female";
    "hanna" Pro &["german"], "german" "female";
    "max" Pro &["german"], "german" "male";
    "manon" Pro &["french"], "french" "female";
    "martina" Pro &["spanish"], "spanish" "female";
    "aria" Pro &["japanese"], "japanese" "female";
    "hazel" Pro &["mandarin"], "chinese" "female";
    "layla" Pro &["arabic"], "arabic" "female";
    "katerina" Pro &["greek"], "greek" "female";
    "solveig" Pro &["norwegian"], "norwegian" "female";
};

/// Whether `id` is a known voice (in either pool: a pool mismatch is not rejected, API.md §3.1).
pub(crate) fn voice_exists(id: &str) -> bool {
    VOICES.iter().any(|v| v.id == id)
}
