//! The sizes of a WAV file written from a stream: the header goes first with placeholder
//! sizes (`0xFFFFFFFF`, the convention for a stream of unknown length), and the real sizes
//! are patched in once the stream ends. Pure bookkeeping, no I/O; the writer seeks.
//!
//! (The hyper crate has the same file: the logic is transport-free but too small to
//! be worth a public API in the core.)

use smallest_core::audio::{WAV_HEADER_LEN, WavEncoding, wav_header};
use smallest_core::{Error, OutputFormat, ValidationError};

/// How far into a `wav` stream the `data` chunk's header is looked for.
const MAX_HEADER_SCAN: usize = 64 * 1024;

/// Where the sizes of a WAV file being written are.
#[derive(Debug)]
pub(crate) struct WavSizes {
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
    pub(crate) fn start(
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
    pub(crate) fn wrote(&mut self, bytes: &[u8]) {
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
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// What to write where once the stream ended: the RIFF size at offset 4 and the
    /// `data` size, little-endian, each clamped to `u32::MAX` past 4 GiB.
    pub(crate) fn patches(&self) -> Result<[(u64, [u8; 4]); 2], Error> {
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
