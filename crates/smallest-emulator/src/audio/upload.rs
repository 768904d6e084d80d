//! Decoding of STT uploads: sniffs the container from the first bytes, then streams the audio into
//! the speech decoder as it arrives. Bounded memory: only a partial chunk header, a partial sample
//! frame and the speech decoder's current tone burst are ever held.
//!
//! Understood: WAV (PCM 8/16/24/32-bit, IEEE float 32/64, A-law, μ-law, WAVE_FORMAT_EXTENSIBLE;
//! channels are downmixed), MP3, and headerless data (s16le by default, or the legacy route's
//! `encoding` hint). Other containers (FLAC, Ogg, MP4, WebM) are accepted and transcribe as empty
//! text, as does anything unrecognisable: the real service is lenient, and so is the emulator.

use super::g711;
use super::mp3::Mp3Input;
use crate::speech::{self, Decoder};

/// Encoding of a headerless upload (legacy `encoding` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawEncoding {
    /// Signed 16-bit little-endian (the default for headerless data).
    Linear16,
    /// Signed 32-bit little-endian.
    Linear32,
    /// G.711 μ-law.
    Mulaw,
    /// G.711 A-law.
    Alaw,
}

impl RawEncoding {
    fn bytes_per_sample(self) -> usize {
        match self {
            Self::Linear16 => 2,
            Self::Linear32 => 4,
            Self::Mulaw | Self::Alaw => 1,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match (self, b) {
            (Self::Linear16, [a, b, ..]) => f32::from(i16::from_le_bytes([*a, *b])),
            (Self::Linear32, [a, b, c, d, ..]) => {
                i32::from_le_bytes([*a, *b, *c, *d]) as f32 / 65536.0
            }
            (Self::Mulaw, [a, ..]) => f32::from(g711::ulaw_to_linear(*a)),
            (Self::Alaw, [a, ..]) => f32::from(g711::alaw_to_linear(*a)),
            _ => 0.0,
        }
    }
}

/// What the upload turned out to contain.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transcript {
    pub(crate) text: String,
    pub(crate) words: Vec<speech::Word>,
    pub(crate) duration_secs: f64,
    /// The rate the audio turned out to have (read by tests; kept for the streaming routes).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) sample_rate: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct WavFormat {
    /// 1 PCM, 3 float, 6 A-law, 7 μ-law (extensible resolved to its sub-format).
    tag: u16,
    channels: usize,
    rate: u32,
    bits: u16,
    frame_len: usize,
}

impl WavFormat {
    fn parse(b: &[u8]) -> Option<Self> {
        let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
        let u32_at = |i: usize| {
            b.get(i..i + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        let mut tag = u16_at(0)?;
        let channels = usize::from(u16_at(2)?);
        let rate = u32_at(4)?;
        let block_align = usize::from(u16_at(12)?);
        let bits = u16_at(14)?;
        if tag == 0xFFFE {
            tag = u16_at(24)?;
        }
        let bytes_per_sample = usize::from(bits).div_ceil(8);
        let supported = matches!(
            (tag, bits),
            (1, 8 | 16 | 24 | 32) | (3, 32 | 64) | (6 | 7, 8)
        );
        if !supported || channels == 0 || channels > 64 || rate == 0 || rate > 1_000_000 {
            return None;
        }
        let frame_len = block_align.max(bytes_per_sample * channels);
        Some(Self {
            tag,
            channels,
            rate,
            bits,
            frame_len,
        })
    }

    fn sample(&self, b: &[u8]) -> f32 {
        match (self.tag, self.bits, b) {
            (1, 8, [a, ..]) => (f32::from(*a) - 128.0) * 256.0,
            (1, 16, [a, b, ..]) => f32::from(i16::from_le_bytes([*a, *b])),
            (1, 24, [a, b, c, ..]) => (i32::from_le_bytes([0, *a, *b, *c]) >> 8) as f32 / 256.0,
            (1, 32, [a, b, c, d, ..]) => i32::from_le_bytes([*a, *b, *c, *d]) as f32 / 65536.0,
            (3, 32, [a, b, c, d, ..]) => {
                f32::from_le_bytes([*a, *b, *c, *d]).clamp(-1.0, 1.0) * 32767.0
            }
            (3, 64, [a, b, c, d, e, f, g, h, ..]) => {
                f64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]).clamp(-1.0, 1.0) as f32
                    * 32767.0
            }
            (6, 8, [a, ..]) => f32::from(g711::alaw_to_linear(*a)),
            (7, 8, [a, ..]) => f32::from(g711::ulaw_to_linear(*a)),
            _ => 0.0,
        }
    }

    /// Mono sample of one frame (all channels averaged).
    fn frame(&self, frame: &[u8]) -> f32 {
        let step = usize::from(self.bits).div_ceil(8);
        let sum: f32 = (0..self.channels)
            .map(|c| frame.get(c * step..).map_or(0.0, |b| self.sample(b)))
            .sum();
        sum / self.channels as f32
    }
}

#[derive(Debug)]
enum WavState {
    /// Collecting an 8-byte chunk header.
    ChunkHeader,
    /// Collecting the `fmt ` chunk body (this many bytes).
    Fmt(usize),
    /// Skipping this many bytes of an uninteresting chunk.
    Skip(u64),
    /// Streaming sample frames; `None` = until the end of the upload.
    Data(Option<u64>),
    /// Nothing more to decode.
    Done,
}

#[derive(Debug)]
struct WavReader {
    state: WavState,
    buf: Vec<u8>,
    format: Option<WavFormat>,
}

/// Largest `fmt ` chunk accepted (the real ones are 16–40 bytes).
const MAX_FMT_LEN: usize = 1024;

impl WavReader {
    fn new() -> Self {
        Self {
            state: WavState::ChunkHeader,
            buf: Vec::new(),
            format: None,
        }
    }

    /// Consumes `input`, emitting mono samples; returns the format once known.
    fn feed(&mut self, mut input: &[u8], sink: &mut dyn FnMut(&WavFormat, &[f32])) {
        while !input.is_empty() {
            match self.state {
                WavState::Done => return,
                WavState::ChunkHeader => {
                    let need = 8 - self.buf.len();
                    let take = need.min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() < 8 {
                        return;
                    }
                    let id = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                    let size =
                        u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
                    self.buf.clear();
                    let padded = u64::from(size) + u64::from(size & 1);
                    self.state = match &id {
                        b"fmt " if (size as usize) <= MAX_FMT_LEN => WavState::Fmt(padded as usize),
                        b"data" => match self.format {
                            None => WavState::Done,
                            Some(_) if size == 0 || size == u32::MAX => WavState::Data(None),
                            // The pad byte of an odd-sized chunk ends up in the discarded
                            // partial frame.
                            Some(_) => WavState::Data(Some(padded)),
                        },
                        _ => WavState::Skip(padded),
                    };
                }
                WavState::Fmt(len) => {
                    let need = len - self.buf.len();
                    let take = need.min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() == len {
                        self.format = WavFormat::parse(&self.buf);
                        self.buf.clear();
                        self.state = if self.format.is_some() {
                            WavState::ChunkHeader
                        } else {
                            WavState::Done
                        };
                    }
                }
                WavState::Skip(n) => {
                    let take = n.min(input.len() as u64) as usize;
                    input = &input[take..];
                    self.state = if n - take as u64 == 0 {
                        WavState::ChunkHeader
                    } else {
                        WavState::Skip(n - take as u64)
                    };
                }
                WavState::Data(remaining) => {
                    let Some(format) = self.format else {
                        self.state = WavState::Done;
                        return;
                    };
                    let take =
                        remaining.map_or(input.len(), |r| r.min(input.len() as u64) as usize);
                    let (data, rest) = input.split_at(take);
                    input = rest;
                    self.emit_frames(&format, data, sink);
                    self.state = match remaining {
                        Some(r) if r - take as u64 == 0 => {
                            // A partial last frame is dropped; `buf` now collects a chunk header.
                            self.buf.clear();
                            WavState::ChunkHeader
                        }
                        Some(r) => WavState::Data(Some(r - take as u64)),
                        None => WavState::Data(None),
                    };
                }
            }
        }
    }

    fn emit_frames(
        &mut self,
        format: &WavFormat,
        mut data: &[u8],
        sink: &mut dyn FnMut(&WavFormat, &[f32]),
    ) {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            let need = format.frame_len - self.buf.len();
            let take = need.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < format.frame_len {
                return;
            }
            out.push(format.frame(&self.buf));
            self.buf.clear();
        }
        let mut frames = data.chunks_exact(format.frame_len);
        out.extend(frames.by_ref().map(|f| format.frame(f)));
        self.buf.extend_from_slice(frames.remainder());
        if !out.is_empty() {
            sink(format, &out);
        }
    }
}

#[derive(Debug)]
enum Stage {
    Sniff(Vec<u8>),
    Wav(WavReader),
    Mp3(Box<Mp3Input>),
    Raw {
        encoding: RawEncoding,
        carry: Vec<u8>,
    },
    Opaque,
}

/// Bytes needed to tell the containers apart.
const SNIFF_LEN: usize = 12;

/// Streams an uploaded file into the speech decoder.
#[derive(Debug)]
pub(crate) struct UploadDecoder {
    stage: Stage,
    hint: Option<RawEncoding>,
    speech: Option<Decoder>,
    samples: u64,
    rate: Option<u32>,
}

fn looks_like_mp3(b: &[u8]) -> bool {
    if b.starts_with(b"ID3") {
        return true;
    }
    match b {
        [0xFF, b1, b2, ..] => {
            let version = (b1 >> 3) & 0x03;
            let layer = (b1 >> 1) & 0x03;
            let bitrate = b2 >> 4;
            let rate = (b2 >> 2) & 0x03;
            b1 & 0xE0 == 0xE0
                && version != 1
                && layer == 1
                && bitrate != 0
                && bitrate != 15
                && rate != 3
        }
        _ => false,
    }
}

fn is_other_container(b: &[u8]) -> bool {
    b.starts_with(b"fLaC")
        || b.starts_with(b"OggS")
        || b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
        || b.starts_with(b"RIFX")
        || b.starts_with(b"FORM")
        || b.get(4..8) == Some(b"ftyp")
}

impl UploadDecoder {
    /// `hint`: the encoding of headerless data, when the caller declared one.
    pub(crate) fn new(hint: Option<RawEncoding>) -> Self {
        Self {
            stage: Stage::Sniff(Vec::with_capacity(SNIFF_LEN)),
            hint,
            speech: None,
            samples: 0,
            rate: None,
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if let Stage::Sniff(buf) = &mut self.stage {
            let take = (SNIFF_LEN - buf.len()).min(bytes.len());
            buf.extend_from_slice(&bytes[..take]);
            if buf.len() < SNIFF_LEN {
                return;
            }
            let head = std::mem::take(buf);
            let skip = self.choose_stage(&head);
            self.process(&head[skip..]);
            self.process(&bytes[take..]);
            return;
        }
        self.process(bytes);
    }

    /// Picks the decoder for the upload; returns how many bytes of `head` the container header took.
    fn choose_stage(&mut self, head: &[u8]) -> usize {
        if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
            self.stage = Stage::Wav(WavReader::new());
            return SNIFF_LEN;
        }
        self.stage = if self.hint.is_none() && looks_like_mp3(head) {
            Stage::Mp3(Box::new(Mp3Input::new()))
        } else if self.hint.is_none() && is_other_container(head) {
            Stage::Opaque
        } else {
            self.speech = Some(Decoder::with_unknown_rate());
            Stage::Raw {
                encoding: self.hint.unwrap_or(RawEncoding::Linear16),
                carry: Vec::new(),
            }
        };
        0
    }

    fn process(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let speech = &mut self.speech;
        let samples = &mut self.samples;
        let rate = &mut self.rate;
        match &mut self.stage {
            Stage::Sniff(_) | Stage::Opaque => {}
            Stage::Wav(reader) => {
                reader.feed(bytes, &mut |format, mono| {
                    let decoder = speech.get_or_insert_with(|| Decoder::new(format.rate));
                    rate.get_or_insert(format.rate);
                    *samples += mono.len() as u64;
                    decoder.feed_f32(mono);
                });
            }
            Stage::Mp3(input) => {
                input.push(bytes, &mut |frame_rate, mono| {
                    let decoder = speech.get_or_insert_with(|| Decoder::new(frame_rate));
                    rate.get_or_insert(frame_rate);
                    *samples += mono.len() as u64;
                    decoder.feed_f32(mono);
                });
            }
            Stage::Raw { encoding, carry } => {
                let width = encoding.bytes_per_sample();
                let mut mono = Vec::with_capacity(bytes.len() / width + 1);
                let mut input = bytes;
                if !carry.is_empty() {
                    let take = (width - carry.len()).min(input.len());
                    carry.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if carry.len() == width {
                        mono.push(encoding.decode(carry));
                        carry.clear();
                    }
                }
                let mut frames = input.chunks_exact(width);
                mono.extend(frames.by_ref().map(|f| encoding.decode(f)));
                carry.extend_from_slice(frames.remainder());
                *samples += mono.len() as u64;
                if let Some(decoder) = speech.as_mut() {
                    decoder.feed_f32(&mono);
                }
            }
        }
    }

    /// Ends the upload and returns what was heard.
    pub(crate) fn finish(mut self) -> Transcript {
        if let Stage::Sniff(buf) = &mut self.stage {
            let head = std::mem::take(buf);
            if !head.is_empty() {
                let skip = self.choose_stage(&head);
                self.process(&head[skip..]);
            }
        }
        if let Stage::Mp3(input) = &mut self.stage {
            let speech = &mut self.speech;
            let samples = &mut self.samples;
            input.finish(&mut |frame_rate, mono| {
                let decoder = speech.get_or_insert_with(|| Decoder::new(frame_rate));
                *samples += mono.len() as u64;
                decoder.feed_f32(mono);
            });
            self.rate = self.rate.or(input.sample_rate());
        }
        let Some(mut decoder) = self.speech else {
            return Transcript::default();
        };
        decoder.finish();
        let rate = self.rate.or(decoder.sample_rate());
        let duration_secs = self.samples as f64 / f64::from(rate.unwrap_or(16_000).max(1));
        Transcript {
            text: decoder.transcript(),
            words: decoder.words(),
            duration_secs,
            sample_rate: rate,
        }
    }
}
