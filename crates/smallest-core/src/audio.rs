//! Audio helpers: WAV headers for the headerless formats, finding a WAV's samples, and
//! the size bookkeeping of a WAV file written from a stream.
//!
//! Pure byte manipulation; no files. The streaming writers in the transports patch
//! the header's sizes at the end with [`wav_header`] and [`WAV_HEADER_LEN`].

use crate::error::{Error, ValidationError};
use crate::tts::OutputFormat;

/// The length of the canonical WAV header [`wav_header`] writes.
pub const WAV_HEADER_LEN: usize = 44;

/// The sample encodings a WAV header can describe here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WavEncoding {
    /// Signed 16-bit little-endian PCM (format tag 1).
    Pcm16,
    /// G.711 A-law, 8 bits (format tag 6).
    ALaw,
    /// G.711 μ-law, 8 bits (format tag 7).
    MuLaw,
}

impl WavEncoding {
    fn tag_and_bits(self) -> (u16, u16) {
        match self {
            WavEncoding::Pcm16 => (1, 16),
            WavEncoding::ALaw => (6, 8),
            WavEncoding::MuLaw => (7, 8),
        }
    }
}

/// A 44-byte mono WAV header for `data_len` bytes of audio. Sizes that do not fit in
/// 32 bits are written as `u32::MAX` (the convention for streams of unknown length).
pub fn wav_header(encoding: WavEncoding, sample_rate: u32, data_len: u64) -> [u8; WAV_HEADER_LEN] {
    let (tag, bits) = encoding.tag_and_bits();
    let block_align = bits / 8;
    let byte_rate = sample_rate.saturating_mul(u32::from(block_align));
    let data_len32 = u32::try_from(data_len).unwrap_or(u32::MAX);
    let riff_len = data_len32.saturating_add(36);
    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff_len.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&tag.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&bits.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len32.to_le_bytes());
    h
}

/// The `fmt ` facts of a WAV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    /// The format tag (1 = PCM, 6 = A-law, 7 = μ-law, 3 = float …).
    pub format_tag: u16,
    /// Channels.
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
}

/// Reads the `fmt ` chunk of a RIFF/WAVE file; `None` if it is not one.
pub fn wav_info(file: &[u8]) -> Option<WavInfo> {
    let fmt = find_chunk(file, b"fmt ")?;
    if fmt.len() < 16 {
        return None;
    }
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    Some(WavInfo {
        format_tag: u16_at(0),
        channels: u16_at(2),
        sample_rate: u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]),
        bits_per_sample: u16_at(14),
    })
}

/// The bytes of the `data` chunk of a RIFF/WAVE file (clamped to what is present);
/// `None` if it is not one.
pub fn wav_data(file: &[u8]) -> Option<&[u8]> {
    find_chunk(file, b"data")
}

fn find_chunk<'a>(file: &'a [u8], id: &[u8; 4]) -> Option<&'a [u8]> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    while at.checked_add(8)? <= file.len() {
        let len =
            u32::from_le_bytes([file[at + 4], file[at + 5], file[at + 6], file[at + 7]]) as usize;
        let start = at + 8;
        if &file[at..at + 4] == id {
            let end = start.saturating_add(len).min(file.len());
            return Some(&file[start..end]);
        }
        // Chunks are padded to an even length.
        at = start.checked_add(len)?.checked_add(len & 1)?;
    }
    None
}

/// How far into a `wav` stream the `data` chunk's header is looked for.
const MAX_HEADER_SCAN: usize = 64 * 1024;

/// The sizes of a WAV file written from a stream: the header goes first with
/// placeholder sizes (`0xFFFFFFFF`, the convention for a stream of unknown length), and
/// the real sizes are patched in once the stream ends. Pure bookkeeping: the writer
/// (a transport's `write_wav`, or yours) does the I/O and the seeking.
#[derive(Debug)]
pub struct WavSizes {
    /// Bytes written so far, header included.
    written: u64,
    /// The offset of the `data` chunk's size field and of its first byte, once known.
    data: Option<(u64, u64)>,
    /// For a `wav` stream: its first bytes, kept until the `data` chunk's header arrived.
    prefix: Option<Vec<u8>>,
}

impl WavSizes {
    /// Starts a WAV file for a stream of `format` audio: the header to write first
    /// (`None` for `wav`, whose own header is in the stream). MP3 has no WAV form.
    pub fn start(
        format: OutputFormat,
        sample_rate: u32,
    ) -> Result<(Option<[u8; WAV_HEADER_LEN]>, WavSizes), Error> {
        let encoding = match format {
            OutputFormat::Wav => {
                let sizes = WavSizes {
                    written: 0,
                    data: None,
                    prefix: Some(Vec::new()),
                };
                return Ok((None, sizes));
            }
            OutputFormat::Pcm => WavEncoding::Pcm16,
            OutputFormat::Ulaw => WavEncoding::MuLaw,
            OutputFormat::Alaw => WavEncoding::ALaw,
            other => {
                return Err(Error::Validation(ValidationError::new(
                    "output_format",
                    other.as_str(),
                    "a WAV file can be made from pcm, wav, ulaw or alaw audio",
                )));
            }
        };
        let header = wav_header(encoding, sample_rate, u64::MAX);
        let sizes = WavSizes {
            written: WAV_HEADER_LEN as u64,
            data: Some((40, WAV_HEADER_LEN as u64)),
            prefix: None,
        };
        Ok((Some(header), sizes))
    }

    /// Notes that `bytes` of the stream were written (after the header, if any).
    pub fn wrote(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        let Some(prefix) = &mut self.prefix else {
            return;
        };
        prefix.extend_from_slice(&bytes[..bytes.len().min(MAX_HEADER_SCAN + 8)]);
        match find_data_chunk(prefix) {
            Scan::Found(size_at, start) => {
                self.data = Some((size_at, start));
                self.prefix = None;
            }
            Scan::NeedMore if prefix.len() <= MAX_HEADER_SCAN => {}
            Scan::NeedMore | Scan::NotWav => self.prefix = None,
        }
    }

    /// The total number of bytes written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// What to write where once the stream ended: the RIFF size at offset 4 and the
    /// `data` size, little-endian, each clamped to `u32::MAX` past 4 GiB.
    pub fn patches(&self) -> Result<[(u64, [u8; 4]); 2], Error> {
        let Some((size_at, start)) = self.data else {
            return Err(Error::Decode {
                what: "TTS stream",
                message: "the `wav` stream does not start with a RIFF/WAVE header with a \
                          `data` chunk, so its sizes cannot be written"
                    .to_owned(),
            });
        };
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        Ok([
            (4, clamp(self.written.saturating_sub(8))),
            (size_at, clamp(self.written.saturating_sub(start))),
        ])
    }
}

enum Scan {
    /// The offset of the `data` chunk's size field, and of its first byte.
    Found(u64, u64),
    NeedMore,
    NotWav,
}

/// Walks the RIFF chunks at the start of a WAV file to its `data` chunk.
fn find_data_chunk(file: &[u8]) -> Scan {
    if file.len() < 12 {
        return Scan::NeedMore;
    }
    if &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Scan::NotWav;
    }
    let mut at = 12usize;
    while let Some(header) = file.get(at..at + 8) {
        if &header[0..4] == b"data" {
            return Scan::Found(at as u64 + 4, at as u64 + 8);
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        // Chunks are padded to an even length.
        at = at
            .saturating_add(8)
            .saturating_add(len)
            .saturating_add(len & 1);
    }
    Scan::NeedMore
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut file = wav_header(WavEncoding::Pcm16, 24000, 6).to_vec();
        file.extend_from_slice(&[1, 0, 2, 0, 3, 0]);
        let info = wav_info(&file).unwrap();
        assert_eq!(
            info,
            WavInfo {
                format_tag: 1,
                channels: 1,
                sample_rate: 24000,
                bits_per_sample: 16
            }
        );
        assert_eq!(wav_data(&file).unwrap(), &[1, 0, 2, 0, 3, 0]);
        assert_eq!(&file[28..32], &48000u32.to_le_bytes());
        let ulaw = wav_header(WavEncoding::MuLaw, 8000, 10);
        assert_eq!(u16::from_le_bytes([ulaw[20], ulaw[21]]), 7);
        assert_eq!(u16::from_le_bytes([ulaw[34], ulaw[35]]), 8);
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        assert!(wav_info(b"RIFF").is_none());
        assert!(
            wav_data(b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff")
                .unwrap()
                .is_empty()
        );
        let huge = wav_header(WavEncoding::Pcm16, 8000, u64::MAX);
        assert_eq!(&huge[40..44], &u32::MAX.to_le_bytes());
        for n in 0..60 {
            let f = wav_header(WavEncoding::Pcm16, 8000, 4);
            let _ = (wav_info(&f[..n.min(44)]), wav_data(&f[..n.min(44)]));
        }
    }
}

#[cfg(test)]
mod wav_sizes_tests {
    use super::*;

    #[test]
    fn pcm_gets_a_placeholder_header_and_exact_sizes() {
        let (header, mut sizes) = WavSizes::start(OutputFormat::Pcm, 24000).unwrap();
        let header = header.unwrap();
        assert_eq!(&header[4..8], &u32::MAX.to_le_bytes());
        assert_eq!(&header[40..44], &u32::MAX.to_le_bytes());
        sizes.wrote(&[0; 1000]);
        sizes.wrote(&[0; 24]);
        assert_eq!(sizes.written(), 1068);
        let [(4, riff), (40, data)] = sizes.patches().unwrap() else {
            panic!("unexpected offsets");
        };
        assert_eq!(u32::from_le_bytes(riff), 1060);
        assert_eq!(u32::from_le_bytes(data), 1024);
    }

    #[test]
    fn a_wav_stream_keeps_its_header_split_anywhere() {
        let mut file = wav_header(WavEncoding::Pcm16, 16000, u64::MAX).to_vec();
        file.extend_from_slice(&[1; 100]);
        for split in 0..file.len() {
            let (header, mut sizes) = WavSizes::start(OutputFormat::Wav, 16000).unwrap();
            assert!(header.is_none());
            sizes.wrote(&file[..split]);
            sizes.wrote(&file[split..]);
            let [(4, riff), (40, data)] = sizes.patches().unwrap() else {
                panic!("unexpected offsets at {split}");
            };
            assert_eq!(u32::from_le_bytes(riff), 136);
            assert_eq!(u32::from_le_bytes(data), 100);
        }
    }

    #[test]
    fn mp3_and_non_wav_streams_are_refused() {
        assert!(WavSizes::start(OutputFormat::Mp3, 24000).is_err());
        let (_, mut sizes) = WavSizes::start(OutputFormat::Wav, 16000).unwrap();
        sizes.wrote(b"ID3\x04\0\0\0\0\0\0\0\0\0\0");
        assert!(sizes.patches().is_err());
    }
}
