//! Audio helpers: WAV headers for the headerless formats, and finding a WAV's samples.
//!
//! Pure byte manipulation; no files. The streaming writers in the transports patch
//! the header's sizes at the end with [`wav_header`] and [`WAV_HEADER_LEN`].

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
