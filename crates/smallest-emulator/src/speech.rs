//! The emulator's speech codec: deterministic audio that *encodes* text, so that speech-to-text of
//! audio the emulator synthesized returns the original text exactly.
//!
//! It is not speech a person would understand; it is a modem-like signal that survives everything the
//! API does to audio: 16-bit quantisation, G.711 μ-law and A-law, MP3 at 128 kbps, every sample rate
//! of the API (8 000 – 48 000 Hz), any `speed`, and being cut into arbitrary chunks.
//!
//! # Signal layout (durations at `speed` 1.0; every duration is divided by the speed)
//!
//! | piece | duration | content |
//! |---|---|---|
//! | lead-in | 10 ms | silence |
//! | start marker | 80 ms tone + 20 ms gap | a single 1 850 Hz tone |
//! | one per UTF-8 byte of the text | 40 ms tone + 10 ms gap | two tones: low nibble → `350 + 90·n` Hz, high nibble → `2 200 + 90·n` Hz |
//! | end marker | 40 ms tone | a single 2 050 Hz tone |
//! | tail | 30 ms | silence |
//!
//! Every tone has a 10 ms raised-cosine fade in and out (no clicks). All frequencies lie between
//! 350 Hz and 3 550 Hz, inside the telephone band, so 8 kHz audio carries them.
//!
//! # Decoding
//!
//! The [`Decoder`] needs no clock: it cuts the signal into tone bursts wherever a sliding 2 ms energy
//! window falls quiet, measures each burst with Goertzel filters at the 34 frequencies, and keeps the
//! strongest low and high tone of each data burst. The start marker's length tells it the symbol
//! duration (so it can split bursts an encoder smeared together), and, when the sample rate is
//! unknown (headerless uploads), candidate decoders at every common rate race to recognise the start
//! marker's frequency; the one that does fixes the rate. A stream may hold several utterances (each
//! with its own start marker); their texts are joined with a space (none is added when one of
//! the two texts has whitespace at the boundary). At a known rate, audio that starts in the middle
//! of an utterance — PCM cut between two symbols, e.g. at the end of a decoded word, as a client
//! resuming a live stream replays it — decodes from the first whole symbol on: two consecutive
//! clean data bursts of the same length open an utterance without a start marker.
//!
//! The decoder is incremental: [`Decoder::feed`] any number of samples at a time, read
//! [`Decoder::transcript`] whenever you like, and call [`Decoder::finish`] at the end of the audio.
//! Memory stays bounded by the longest tone burst plus the decoded text.

use std::f64::consts::PI;

const LOW_BASE_HZ: f64 = 350.0;
const HIGH_BASE_HZ: f64 = 2200.0;
const STEP_HZ: f64 = 90.0;
const START_HZ: f64 = 1850.0;
const END_HZ: f64 = 2050.0;

const LEAD_MS: f64 = 10.0;
const START_MS: f64 = 80.0;
const START_GAP_MS: f64 = 20.0;
const TONE_MS: f64 = 40.0;
const GAP_MS: f64 = 10.0;
const FADE_MS: f64 = 10.0;
const END_MS: f64 = 40.0;
const TAIL_MS: f64 = 30.0;

/// Peak amplitude of each of the two tones of a data symbol (the sum peaks at 0.7 of full scale).
const DATA_AMPLITUDE: f64 = 0.35 * 32767.0;
/// Peak amplitude of the start and end markers.
const MARKER_AMPLITUDE: f64 = 0.5 * 32767.0;

/// The sample rates a decoder with an unknown rate tries (every rate the API's STT routes accept).
pub const CANDIDATE_RATES: [u32; 9] =
    [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

/// The smallest and largest `speed` the codec honours; other values are clamped (non-finite → 1.0).
pub const SPEED_RANGE: (f32, f32) = (0.25, 4.0);

fn clamp_speed(speed: f32) -> f64 {
    if !speed.is_finite() || speed <= 0.0 {
        1.0
    } else {
        f64::from(speed.clamp(SPEED_RANGE.0, SPEED_RANGE.1))
    }
}

fn low_hz(nibble: u8) -> f64 {
    LOW_BASE_HZ + STEP_HZ * f64::from(nibble & 0x0F)
}

fn high_hz(nibble: u8) -> f64 {
    HIGH_BASE_HZ + STEP_HZ * f64::from(nibble & 0x0F)
}

/// Piece lengths in samples for one (rate, speed) pair.
#[derive(Debug, Clone, Copy)]
struct Layout {
    lead: usize,
    start: usize,
    start_gap: usize,
    tone: usize,
    gap: usize,
    fade: usize,
    end: usize,
    tail: usize,
}

impl Layout {
    fn new(sample_rate: u32, speed: f64) -> Self {
        let n = |ms: f64| (ms * f64::from(sample_rate) / 1000.0 / speed).round() as usize;
        Self {
            lead: n(LEAD_MS),
            start: n(START_MS),
            start_gap: n(START_GAP_MS),
            tone: n(TONE_MS),
            gap: n(GAP_MS),
            fade: n(FADE_MS),
            end: n(END_MS),
            tail: n(TAIL_MS),
        }
    }

    fn total(&self, bytes: usize) -> usize {
        self.lead
            + self.start
            + self.start_gap
            + bytes * (self.tone + self.gap)
            + self.end
            + self.tail
    }
}

/// Appends one faded tone burst (the sum of `tones`, each `(frequency, amplitude)`) to `out`.
fn render_tone(out: &mut Vec<i16>, tones: &[(f64, f64)], len: usize, fade: usize, rate: u32) {
    let fade = fade.min(len / 2);
    let rate = f64::from(rate);
    out.reserve(len);
    for i in 0..len {
        let envelope = if i < fade {
            0.5 - 0.5 * (PI * i as f64 / fade as f64).cos()
        } else if i >= len - fade {
            0.5 - 0.5 * (PI * (len - 1 - i) as f64 / fade as f64).cos()
        } else {
            1.0
        };
        let t = i as f64 / rate;
        let value: f64 = tones
            .iter()
            .map(|&(freq, amp)| amp * (2.0 * PI * freq * t).sin())
            .sum();
        out.push((value * envelope).round().clamp(-32768.0, 32767.0) as i16);
    }
}

fn render_silence(out: &mut Vec<i16>, len: usize) {
    out.resize(out.len() + len, 0);
}

/// Lazily renders the speech for one text, one symbol at a time.
///
/// Each item is the mono 16-bit PCM of one piece of the signal (the lead-in with the start marker,
/// one byte of text, or the end marker with the tail), so a response body can stream audio of any
/// length in bounded memory. Concatenating the items gives exactly [`synthesize_pcm`]'s output.
#[derive(Debug, Clone)]
pub struct Synthesizer {
    bytes: Vec<u8>,
    rate: u32,
    layout: Layout,
    step: usize,
}

impl Synthesizer {
    /// Prepares the speech for `text` at `sample_rate` Hz; `speed` 2.0 makes it half as long
    /// (clamped to [`SPEED_RANGE`]). Rates below 8 000 Hz cannot carry the upper tones.
    pub fn new(text: &str, sample_rate: u32, speed: f32) -> Self {
        Self {
            bytes: text.as_bytes().to_vec(),
            rate: sample_rate,
            layout: Layout::new(sample_rate, clamp_speed(speed)),
            step: 0,
        }
    }

    /// The exact number of samples the whole utterance has (known before rendering any).
    pub fn total_samples(&self) -> usize {
        if self.rate == 0 {
            return 0;
        }
        self.layout.total(self.bytes.len())
    }

    /// The sample rate this synthesizer renders at.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }
}

impl Iterator for Synthesizer {
    type Item = Vec<i16>;

    fn next(&mut self) -> Option<Vec<i16>> {
        let l = self.layout;
        let n = self.bytes.len();
        if self.rate == 0 || self.step > n + 1 {
            return None;
        }
        let mut out = Vec::new();
        if self.step == 0 {
            render_silence(&mut out, l.lead);
            render_tone(
                &mut out,
                &[(START_HZ, MARKER_AMPLITUDE)],
                l.start,
                l.fade,
                self.rate,
            );
            render_silence(&mut out, l.start_gap);
        } else if self.step <= n {
            let byte = self.bytes[self.step - 1];
            let tones = [
                (low_hz(byte & 0x0F), DATA_AMPLITUDE),
                (high_hz(byte >> 4), DATA_AMPLITUDE),
            ];
            render_tone(&mut out, &tones, l.tone, l.fade, self.rate);
            render_silence(&mut out, l.gap);
        } else {
            render_tone(
                &mut out,
                &[(END_HZ, MARKER_AMPLITUDE)],
                l.end,
                l.fade,
                self.rate,
            );
            render_silence(&mut out, l.tail);
        }
        self.step += 1;
        Some(out)
    }
}

/// Renders `text` as emulator speech: mono signed 16-bit PCM at `sample_rate` Hz.
///
/// `speed` scales every duration (2.0 = half as long; clamped to [`SPEED_RANGE`]). The output is
/// deterministic: the same arguments always give the same samples.
pub fn synthesize_pcm(text: &str, sample_rate: u32, speed: f32) -> Vec<i16> {
    let synth = Synthesizer::new(text, sample_rate, speed);
    let mut out = Vec::with_capacity(synth.total_samples());
    for piece in synth {
        out.extend_from_slice(&piece);
    }
    out
}

/// The exact number of samples [`synthesize_pcm`] returns for these arguments.
pub fn synthesized_len(text: &str, sample_rate: u32, speed: f32) -> usize {
    Synthesizer::new(text, sample_rate, speed).total_samples()
}

/// Decodes emulator speech in `samples` (mono PCM at `sample_rate` Hz) back to its text.
///
/// Audio that holds no emulator speech gives an empty string; several utterances are joined with
/// a space.
pub fn transcribe_pcm(samples: &[i16], sample_rate: u32) -> String {
    let mut decoder = Decoder::new(sample_rate);
    decoder.feed(samples);
    decoder.finish();
    decoder.transcript()
}

/// One decoded word: a run of bytes between whitespace, with its position in the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word as decoded (invalid UTF-8 becomes U+FFFD).
    pub text: String,
    /// Seconds from the start of the audio to the start of the word's first symbol.
    pub start: f64,
    /// Seconds from the start of the audio to the end of the word's last symbol.
    pub end: f64,
    /// Detection confidence in `0.5..=1.0`: how clearly the strongest tones of the word's weakest
    /// symbol stood out from their neighbours.
    pub confidence: f64,
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    byte: u8,
    start: u64,
    end: u64,
    confidence: f64,
}

#[derive(Debug, Clone, Default)]
struct Message {
    symbols: Vec<Symbol>,
    /// Sample index where the start marker began.
    start: u64,
    /// Sample index where the utterance ended (end of its end marker, the next start marker, or the
    /// end of the audio); `None` while it is open.
    end: Option<u64>,
}

impl Message {
    fn text(&self) -> String {
        let bytes: Vec<u8> = self.symbols.iter().map(|s| s.byte).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Below this windowed RMS (in 16-bit units) a signal never starts a tone burst.
const ABSOLUTE_ON_RMS: f64 = 150.0;
/// A normalised Goertzel power above this marks a start or end marker.
const MARKER_POWER: f64 = 0.6;
/// Each tone of a data symbol must carry at least this normalised power.
const DATA_POWER: f64 = 0.10;
/// Longest tone burst kept for analysis, in seconds (longer bursts are not emulator speech).
const MAX_BURST_SECS: u32 = 2;

/// Normalised Goertzel power of `freq` in `x`: 1.0 for a steady pure tone, about 0.5 for each of
/// two equal tones, near 0 for an absent frequency.
fn tone_power(x: &[f32], freq: f64, rate: u32, energy: f64) -> f64 {
    if x.is_empty() || energy <= 0.0 {
        return 0.0;
    }
    let w = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    (2.0 * power / (x.len() as f64 * energy)).max(0.0)
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// Strongest frequency of a group: (index, power, confidence).
fn strongest(x: &[f32], rate: u32, energy: f64, freq: impl Fn(u8) -> f64) -> (u8, f64, f64) {
    let mut best = (0u8, 0.0f64);
    let mut second = 0.0f64;
    for n in 0..16u8 {
        let p = tone_power(x, freq(n), rate, energy);
        if p > best.1 {
            second = best.1;
            best = (n, p);
        } else if p > second {
            second = p;
        }
    }
    let confidence = if best.1 > 0.0 {
        (1.0 - second / best.1).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (best.0, best.1, confidence)
}

/// One decoder at one sample rate.
#[derive(Debug, Clone)]
struct Track {
    rate: u32,
    /// Samples per 1 ms analysis block.
    block: usize,
    /// Whether to decode data symbols (false while this track only races to recognise a start).
    decode_data: bool,
    /// Absolute index of the next sample.
    pos: u64,
    block_buf: Vec<f32>,
    prev_block_energy: f64,
    prev_block_len: usize,
    in_burst: bool,
    burst: Vec<f32>,
    burst_start: u64,
    burst_len: u64,
    burst_peak_rms: f64,
    /// Set once a start marker was recognised.
    locked: bool,
    in_message: bool,
    /// Measured length of a data tone burst, from the start marker (in samples).
    tone_estimate: f64,
    /// RMS of the last start marker (sets the onset threshold).
    reference_rms: f64,
    /// Before any start marker: a data burst waiting for a second one of the same length (with
    /// its length and RMS), which would open an utterance heard from the middle.
    candidate: Option<(Symbol, f64, f64)>,
    messages: Vec<Message>,
}

impl Track {
    fn new(rate: u32, decode_data: bool) -> Self {
        Self {
            rate,
            block: (rate as usize / 1000).max(1),
            decode_data,
            pos: 0,
            block_buf: Vec::new(),
            prev_block_energy: 0.0,
            prev_block_len: 0,
            in_burst: false,
            burst: Vec::new(),
            burst_start: 0,
            burst_len: 0,
            burst_peak_rms: 0.0,
            locked: false,
            in_message: false,
            tone_estimate: 0.0,
            reference_rms: 0.0,
            candidate: None,
            messages: Vec::new(),
        }
    }

    fn max_burst(&self) -> usize {
        self.rate as usize * MAX_BURST_SECS as usize
    }

    fn feed(&mut self, samples: &[f32]) {
        for &s in samples {
            self.block_buf.push(s);
            if self.block_buf.len() == self.block {
                self.process_block();
            }
        }
    }

    fn process_block(&mut self) {
        let block = std::mem::take(&mut self.block_buf);
        let e = energy(&block);
        let window_len = (block.len() + self.prev_block_len).max(1);
        let rms = ((e + self.prev_block_energy) / window_len as f64).sqrt();
        let block_start = self.pos;
        self.pos += block.len() as u64;
        self.prev_block_energy = e;
        self.prev_block_len = block.len();

        if self.in_burst {
            let off = (0.15 * self.burst_peak_rms).max(ABSOLUTE_ON_RMS * 0.5);
            if rms < off {
                self.end_burst();
            } else {
                self.burst_peak_rms = self.burst_peak_rms.max(rms);
                self.append_burst(&block);
            }
        } else {
            let on = if self.locked {
                (0.2 * self.reference_rms).max(ABSOLUTE_ON_RMS)
            } else {
                ABSOLUTE_ON_RMS
            };
            if rms >= on {
                self.in_burst = true;
                self.burst.clear();
                self.burst_start = block_start;
                self.burst_len = 0;
                self.burst_peak_rms = rms;
                self.append_burst(&block);
            }
        }
        // Reuse the allocation.
        self.block_buf = block;
        self.block_buf.clear();
    }

    fn append_burst(&mut self, block: &[f32]) {
        self.burst_len += block.len() as u64;
        let room = self.max_burst().saturating_sub(self.burst.len());
        self.burst
            .extend_from_slice(&block[..block.len().min(room)]);
    }

    fn end_burst(&mut self) {
        self.in_burst = false;
        if self.burst_len as usize > self.burst.len() {
            // Too long to be emulator speech: ignore it.
            self.burst.clear();
            return;
        }
        let burst = std::mem::take(&mut self.burst);
        self.classify(&burst, self.burst_start);
        self.burst = burst;
        self.burst.clear();
    }

    fn classify(&mut self, x: &[f32], start: u64) {
        let rate = self.rate;
        let e = energy(x);
        let len = x.len() as f64;
        let min_marker = f64::from(rate) * 0.008;
        let start_power = tone_power(x, START_HZ, rate, e);
        if start_power >= MARKER_POWER
            && len >= min_marker
            && (!self.in_message || len > 1.5 * self.tone_estimate)
        {
            self.close_message(start);
            self.candidate = None;
            self.locked = true;
            self.in_message = true;
            self.tone_estimate = len / 2.0;
            self.reference_rms = (e / len).sqrt();
            self.messages.push(Message {
                start,
                ..Message::default()
            });
            return;
        }
        if !self.locked && self.decode_data {
            self.join_midway(x, start, e);
            return;
        }
        if !self.in_message || !self.decode_data {
            return;
        }
        if tone_power(x, END_HZ, rate, e) >= MARKER_POWER {
            self.close_message(start + x.len() as u64);
            return;
        }
        let tone = self.tone_estimate.max(1.0);
        if len < 0.4 * tone {
            return;
        }
        // A burst much longer than one symbol is several symbols whose gaps an encoder smeared.
        let period = tone * (TONE_MS + GAP_MS) / TONE_MS;
        let gap = period - tone;
        let parts = if len > 1.6 * tone {
            (((len + gap) / period).round() as usize).max(1)
        } else {
            1
        };
        let part_len = x.len() / parts;
        if part_len == 0 {
            return;
        }
        for p in 0..parts {
            let from = p * part_len;
            let to = if p + 1 == parts {
                x.len()
            } else {
                from + part_len
            };
            let part = &x[from..to];
            let pe = energy(part);
            let (lo, lo_power, lo_conf) = strongest(part, rate, pe, low_hz);
            let (hi, hi_power, hi_conf) = strongest(part, rate, pe, high_hz);
            if lo_power < DATA_POWER || hi_power < DATA_POWER {
                continue;
            }
            let symbol = Symbol {
                byte: (hi << 4) | lo,
                start: start + from as u64,
                end: start + to as u64,
                confidence: 0.5 + 0.5 * lo_conf.min(hi_conf),
            };
            if let Some(message) = self.messages.last_mut() {
                message.symbols.push(symbol);
            }
        }
    }

    /// Audio that starts in the middle of an utterance (a client resuming a stream from a word
    /// boundary) has no start marker: two consecutive clean data bursts of about the same length,
    /// one symbol period apart, open an utterance there, the first of them being its first symbol.
    /// Only at a known rate and before any start marker was seen.
    fn join_midway(&mut self, x: &[f32], start: u64, e: f64) {
        let rate = self.rate;
        let len = x.len() as f64;
        // A data tone lasts 40 ms / speed, speed within `SPEED_RANGE` (with margins). Shorter
        // bursts (the faded tail of a symbol cut at its end, clicks) are skipped.
        if len < f64::from(rate) * 0.006 {
            return;
        }
        let (lo, lo_power, lo_conf) = strongest(x, rate, e, low_hz);
        let (hi, hi_power, hi_conf) = strongest(x, rate, e, high_hz);
        // Stricter than inside an utterance: each of two equal tones carries about 0.5.
        if len > f64::from(rate) * 0.2 || lo_power < 0.3 || hi_power < 0.3 {
            self.candidate = None;
            return;
        }
        let symbol = Symbol {
            byte: (hi << 4) | lo,
            start,
            end: start + x.len() as u64,
            confidence: 0.5 + 0.5 * lo_conf.min(hi_conf),
        };
        let rms = (e / len).sqrt();
        match self.candidate.take() {
            Some((first, first_len, first_rms))
                if (len - first_len).abs() <= 0.15 * len.max(first_len)
                    && start.saturating_sub(first.end) as f64 <= first_len =>
            {
                self.locked = true;
                self.in_message = true;
                self.tone_estimate = (len + first_len) / 2.0;
                self.reference_rms = first_rms.max(rms);
                self.messages.push(Message {
                    symbols: vec![first, symbol],
                    start: first.start,
                    end: None,
                });
            }
            _ => self.candidate = Some((symbol, len, rms)),
        }
    }

    fn close_message(&mut self, at: u64) {
        if self.in_message
            && let Some(message) = self.messages.last_mut()
        {
            message.end = Some(at);
        }
        self.in_message = false;
    }

    fn finish(&mut self) {
        if !self.block_buf.is_empty() {
            self.process_block();
        }
        if self.in_burst {
            self.end_burst();
        }
        self.close_message(self.pos);
    }
}

/// Incremental decoder of emulator speech.
///
/// ```
/// use smallest_emulator::speech::{Decoder, synthesize_pcm};
/// let pcm = synthesize_pcm("hello there", 16_000, 1.0);
/// let mut decoder = Decoder::new(16_000);
/// for chunk in pcm.chunks(777) {
///     decoder.feed(chunk);
/// }
/// decoder.finish();
/// assert_eq!(decoder.transcript(), "hello there");
/// assert_eq!(decoder.words().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    /// One track when the rate is known; one per candidate rate until a start marker fixes it.
    tracks: Vec<Track>,
    finished: bool,
}

impl Decoder {
    /// A decoder for audio at a known sample rate.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            tracks: vec![Track::new(sample_rate.max(1), true)],
            finished: false,
        }
    }

    /// A decoder for audio whose sample rate is unknown (headerless uploads): it tries every rate in
    /// [`CANDIDATE_RATES`] and keeps the one at which it recognises a start marker.
    pub fn with_unknown_rate() -> Self {
        Self {
            tracks: CANDIDATE_RATES
                .iter()
                .map(|&r| Track::new(r, false))
                .collect(),
            finished: false,
        }
    }

    /// The sample rate, once known (always, for [`Decoder::new`]).
    pub fn sample_rate(&self) -> Option<u32> {
        match self.tracks.as_slice() {
            [one] => Some(one.rate),
            _ => None,
        }
    }

    /// Samples fed so far.
    pub fn samples_seen(&self) -> u64 {
        self.tracks
            .first()
            .map_or(0, |t| t.pos + t.block_buf.len() as u64)
    }

    /// Feeds 16-bit samples.
    pub fn feed(&mut self, samples: &[i16]) {
        let floats: Vec<f32> = samples.iter().map(|&s| f32::from(s)).collect();
        self.feed_f32(&floats);
    }

    /// Feeds samples already in 16-bit scale (`-32768.0..=32767.0`), e.g. from a float decoder.
    pub fn feed_f32(&mut self, samples: &[f32]) {
        if self.finished {
            return;
        }
        if self.tracks.len() == 1 {
            if let Some(track) = self.tracks.first_mut() {
                track.feed(samples);
            }
            return;
        }
        // Racing candidate rates: feed in small steps so the winner is found as early as possible.
        let mut done = 0;
        while done < samples.len() {
            let end = (done + 256).min(samples.len());
            for track in &mut self.tracks {
                track.feed(&samples[done..end]);
            }
            done = end;
            if let Some(i) = self.tracks.iter().position(|t| t.locked) {
                let mut winner = self.tracks.swap_remove(i);
                winner.decode_data = true;
                winner.feed(&samples[done..]);
                self.tracks = vec![winner];
                return;
            }
        }
    }

    /// Marks the end of the audio: flushes the last burst and closes the current utterance.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for track in &mut self.tracks {
            track.finish();
        }
        if self.tracks.len() > 1 {
            // No rate was recognised; keep one track so the accessors stay cheap.
            self.tracks.truncate(1);
        }
    }

    fn messages(&self) -> &[Message] {
        match self.tracks.as_slice() {
            [one] => &one.messages,
            _ => &[],
        }
    }

    /// Whether the decoder is inside an utterance (after a start marker, before its end marker).
    pub fn in_utterance(&self) -> bool {
        matches!(self.tracks.as_slice(), [one] if one.in_message)
    }

    /// Number of utterances (start markers) seen so far.
    pub fn utterances(&self) -> usize {
        self.messages().len()
    }

    /// Start and end of each utterance seen so far, in seconds from the first sample fed: from the
    /// beginning of its start marker to the end of its end marker (or to the next start marker, or
    /// to the end of the audio at [`Decoder::finish`]); the end is `None` while the utterance is open.
    pub fn utterance_times(&self) -> Vec<(f64, Option<f64>)> {
        let rate = f64::from(self.sample_rate().unwrap_or(16_000));
        self.messages()
            .iter()
            .map(|m| (m.start as f64 / rate, m.end.map(|e| e as f64 / rate)))
            .collect()
    }

    /// Number of text bytes decoded so far.
    pub fn decoded_bytes(&self) -> usize {
        self.messages().iter().map(|m| m.symbols.len()).sum()
    }

    /// Everything decoded so far; utterances are joined with a single space.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for message in self.messages() {
            let text = message.text();
            if text.is_empty() {
                continue;
            }
            let boundary_space =
                out.ends_with(char::is_whitespace) || text.starts_with(char::is_whitespace);
            if !out.is_empty() && !boundary_space {
                out.push(' ');
            }
            out.push_str(&text);
        }
        out
    }

    /// The decoded words with their timings (seconds from the first sample fed).
    pub fn words(&self) -> Vec<Word> {
        let rate = f64::from(self.sample_rate().unwrap_or(16_000));
        let mut words = Vec::new();
        for message in self.messages() {
            for run in message
                .symbols
                .split(|s| s.byte.is_ascii_whitespace())
                .filter(|run| !run.is_empty())
            {
                let bytes: Vec<u8> = run.iter().map(|s| s.byte).collect();
                let (Some(first), Some(last)) = (run.first(), run.last()) else {
                    continue;
                };
                words.push(Word {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    start: first.start as f64 / rate,
                    end: last.end as f64 / rate,
                    confidence: run.iter().map(|s| s.confidence).fold(1.0, f64::min),
                });
            }
        }
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::g711;

    const RATES: [u32; 4] = [8000, 16000, 24000, 44100];

    fn roundtrip(text: &str, rate: u32, speed: f32) -> String {
        transcribe_pcm(&synthesize_pcm(text, rate, speed), rate)
    }

    #[test]
    fn audio_cut_at_a_word_end_decodes_the_remaining_words() {
        let text = "The quick brown fox jumps over 13 lazy dogs.";
        let words: Vec<&str> = text.split_whitespace().collect();
        for rate in [8000, 16_000, 44_100] {
            for speed in [0.75, 1.0, 1.5] {
                let pcm = synthesize_pcm(text, rate, speed);
                let mut whole = Decoder::new(rate);
                whole.feed(&pcm);
                whole.finish();
                let decoded = whole.words();
                assert_eq!(decoded.len(), words.len());
                for (i, w) in decoded.iter().enumerate().take(words.len() - 1) {
                    // The end time as a live final reports it (milliseconds), back to a sample.
                    let end = (w.end * 1000.0).round() / 1000.0;
                    let cut = ((end * f64::from(rate)).round() as usize).min(pcm.len());
                    let rest = transcribe_pcm(&pcm[cut..], rate);
                    assert_eq!(
                        rest.split_whitespace().collect::<Vec<_>>(),
                        words[i + 1..],
                        "rate {rate} speed {speed} cut after word {i}"
                    );
                }
            }
        }
        // Noise, a lone tone and silence still decode as nothing.
        let tone: Vec<i16> = (0..8000)
            .map(|i| ((i as f64 * 0.3).sin() * 9000.0) as i16)
            .collect();
        assert_eq!(transcribe_pcm(&tone, 16_000), "");
        assert_eq!(transcribe_pcm(&vec![0; 16_000], 16_000), "");
    }

    #[test]
    fn round_trips_at_every_rate_and_speed() {
        let text = "Hello, world! The quick brown fox jumps over 13 lazy dogs.";
        for rate in RATES {
            for speed in [0.5, 1.0, 2.0] {
                assert_eq!(
                    roundtrip(text, rate, speed),
                    text,
                    "rate {rate} speed {speed}"
                );
            }
        }
    }

    #[test]
    fn round_trips_every_byte_value_via_non_ascii_text() {
        let text = "héllo wörld — नमस्ते दुनिया — 你好，世界 🎉 ñ ß Ω";
        for rate in RATES {
            assert_eq!(roundtrip(text, rate, 1.0), text, "rate {rate}");
        }
    }

    #[test]
    fn distinguishes_all_256_byte_values() {
        for rate in [8000, 44100] {
            let mut synth = Synthesizer::new("", rate, 2.0);
            synth.bytes = (0..=255u8).collect();
            let pcm: Vec<i16> = synth.flatten().collect();
            let mut decoder = Decoder::new(rate);
            decoder.feed(&pcm);
            decoder.finish();
            let got: Vec<u8> = decoder.messages()[0]
                .symbols
                .iter()
                .map(|s| s.byte)
                .collect();
            assert_eq!(got, (0..=255u8).collect::<Vec<_>>(), "rate {rate}");
        }
    }

    #[test]
    fn survives_mu_law_and_a_law() {
        let text = "Through the telephone: ulaw & alaw, 123.";
        for rate in RATES {
            for speed in [0.5, 1.0, 2.0] {
                let pcm = synthesize_pcm(text, rate, speed);
                let ulaw: Vec<i16> = pcm
                    .iter()
                    .map(|&s| g711::ulaw_to_linear(g711::linear_to_ulaw(s)))
                    .collect();
                let alaw: Vec<i16> = pcm
                    .iter()
                    .map(|&s| g711::alaw_to_linear(g711::linear_to_alaw(s)))
                    .collect();
                assert_eq!(transcribe_pcm(&ulaw, rate), text, "ulaw {rate} {speed}");
                assert_eq!(transcribe_pcm(&alaw, rate), text, "alaw {rate} {speed}");
            }
        }
    }

    #[test]
    fn speed_scales_duration() {
        let one = synthesized_len("abcdefgh", 24000, 1.0);
        let two = synthesized_len("abcdefgh", 24000, 2.0);
        let half = synthesized_len("abcdefgh", 24000, 0.5);
        assert!((one as f64 / two as f64 - 2.0).abs() < 0.01, "{one} {two}");
        assert!(
            (half as f64 / one as f64 - 2.0).abs() < 0.01,
            "{half} {one}"
        );
        // About 50 ms per byte at speed 1.
        let per_byte =
            (synthesized_len("ab", 24000, 1.0) - synthesized_len("a", 24000, 1.0)) as f64;
        assert!((per_byte / 24000.0 - 0.050).abs() < 0.001);
        assert_eq!(synthesize_pcm("abcdefgh", 24000, 1.0).len(), one);
    }

    #[test]
    fn deterministic_and_bounded() {
        let a = synthesize_pcm("same", 16000, 1.0);
        assert_eq!(a, synthesize_pcm("same", 16000, 1.0));
        let peak = a.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 16000 && peak < 32767, "{peak}");
        // Starts and ends silent (no clicks).
        assert_eq!(a.first(), Some(&0));
        assert_eq!(a.last(), Some(&0));
    }

    #[test]
    fn decodes_any_chunking() {
        let text = "chunk boundaries never matter";
        let pcm = synthesize_pcm(text, 16000, 1.5);
        let mut seed = 12345u64;
        for _ in 0..5 {
            let mut decoder = Decoder::new(16000);
            let mut i = 0;
            while i < pcm.len() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = 1 + (seed >> 33) as usize % 900;
                let end = (i + n).min(pcm.len());
                decoder.feed(&pcm[i..end]);
                i = end;
            }
            decoder.finish();
            assert_eq!(decoder.transcript(), text);
        }
        // One sample at a time, too.
        let mut decoder = Decoder::new(16000);
        for s in &pcm {
            decoder.feed(std::slice::from_ref(s));
        }
        decoder.finish();
        assert_eq!(decoder.transcript(), text);
    }

    #[test]
    fn transcript_grows_while_feeding() {
        let text = "growing buffer";
        let pcm = synthesize_pcm(text, 8000, 1.0);
        let mut decoder = Decoder::new(8000);
        decoder.feed(&pcm[..pcm.len() / 2]);
        let partial = decoder.transcript();
        assert!(
            !partial.is_empty() && text.starts_with(&partial),
            "{partial:?}"
        );
        assert!(decoder.in_utterance());
        decoder.feed(&pcm[pcm.len() / 2..]);
        assert_eq!(decoder.transcript(), text);
        assert!(
            !decoder.in_utterance(),
            "the end marker closes the utterance"
        );
    }

    #[test]
    fn detects_unknown_rate() {
        for rate in RATES.iter().copied().chain([22050, 48000, 32000]) {
            let text = "which rate am I?";
            let pcm = synthesize_pcm(text, rate, 1.0);
            let mut decoder = Decoder::with_unknown_rate();
            for chunk in pcm.chunks(1000) {
                decoder.feed(chunk);
            }
            decoder.finish();
            assert_eq!(decoder.sample_rate(), Some(rate));
            assert_eq!(decoder.transcript(), text, "rate {rate}");
        }
    }

    #[test]
    fn utterance_times_follow_the_markers() {
        let rate = 16_000;
        let first = synthesize_pcm("first", rate, 1.0);
        let mut pcm = first.clone();
        pcm.extend(std::iter::repeat_n(0, 8000));
        let second_at = pcm.len();
        pcm.extend(synthesize_pcm("second", rate, 1.0));
        let mut decoder = Decoder::new(rate);
        decoder.feed(&pcm[..first.len()]);
        let times = decoder.utterance_times();
        assert_eq!(times.len(), 1);
        // Starts after the 10 ms lead-in; ends at the end of the end marker (before the 30 ms tail).
        assert!((times[0].0 - 0.010).abs() < 0.003, "{times:?}");
        let end = times[0].1.unwrap_or_default();
        let expected_end = (first.len() as f64 / f64::from(rate)) - 0.030;
        assert!((end - expected_end).abs() < 0.005, "{times:?}");
        decoder.feed(&pcm[first.len()..]);
        assert!(!decoder.in_utterance());
        decoder.finish();
        let times = decoder.utterance_times();
        assert_eq!(times.len(), 2, "{times:?}");
        let second_start = second_at as f64 / f64::from(rate) + 0.010;
        assert!((times[1].0 - second_start).abs() < 0.003, "{times:?}");
        assert!(times[1].1.is_some());
    }

    #[test]
    fn several_utterances_are_joined() {
        let mut pcm = synthesize_pcm("first part", 16000, 1.0);
        pcm.extend(synthesize_pcm("second", 16000, 2.0));
        pcm.extend(synthesize_pcm(" third", 16000, 1.0));
        assert_eq!(transcribe_pcm(&pcm, 16000), "first part second third");
    }

    #[test]
    fn word_timestamps_follow_the_audio() {
        let pcm = synthesize_pcm("one two  three", 24000, 1.0);
        let mut decoder = Decoder::new(24000);
        decoder.feed(&pcm);
        decoder.finish();
        let words = decoder.words();
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        let mut last_end = 0.0;
        for w in &words {
            assert!(w.start >= last_end && w.end > w.start, "{w:?}");
            assert!(w.confidence > 0.9 && w.confidence <= 1.0, "{w:?}");
            last_end = w.end;
        }
        // "one" starts after the lead-in and start marker (~0.11 s) and lasts ~3 symbols.
        assert!((words[0].start - 0.11).abs() < 0.01, "{:?}", words[0]);
        assert!(
            (words[0].end - words[0].start - 0.14).abs() < 0.02,
            "{:?}",
            words[0]
        );
        assert!(last_end < pcm.len() as f64 / 24000.0);
    }

    #[test]
    fn silence_noise_and_empty_give_nothing() {
        assert_eq!(transcribe_pcm(&[], 16000), "");
        assert_eq!(transcribe_pcm(&[0; 16000], 16000), "");
        let mut seed = 99u64;
        let noise: Vec<i16> = (0..48000)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 48) as i16
            })
            .collect();
        assert_eq!(transcribe_pcm(&noise, 16000), "");
        let mut decoder = Decoder::with_unknown_rate();
        decoder.feed(&noise);
        decoder.finish();
        assert_eq!(decoder.transcript(), "");
        // A steady tone (e.g. a test beep) is not speech either.
        let beep = synthesize_pcm("", 16000, 1.0);
        assert_eq!(transcribe_pcm(&beep, 16000), "");
        // Empty text still has markers and decodes to nothing.
        assert!(!beep.is_empty());
    }

    #[test]
    fn odd_arguments_do_not_panic() {
        assert!(synthesize_pcm("x", 0, 1.0).is_empty());
        assert_eq!(roundtrip("nan speed", 16000, f32::NAN), "nan speed");
        assert_eq!(roundtrip("slow", 8000, 0.01), "slow");
        assert_eq!(roundtrip("fast", 16000, 100.0), "fast");
        assert_eq!(transcribe_pcm(&[i16::MAX; 100], 0), "");
    }
}
