//! Audio containers and codecs: the WAV header, G.711, MP3, the TTS output encoder and the STT upload
//! decoder. Everything here works incrementally, so no request ever holds a whole file in memory.

pub(crate) mod g711;
pub(crate) mod mp3;
mod upload;

pub(crate) use upload::{RawEncoding, Transcript, UploadDecoder};

/// A TTS `output_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// Headerless signed 16-bit little-endian mono PCM (the server default).
    Pcm,
    /// A 44-byte RIFF/WAVE header followed by 16-bit PCM.
    Wav,
    /// Headerless G.711 μ-law, one byte per sample.
    Ulaw,
    /// Headerless G.711 A-law, one byte per sample.
    Alaw,
    /// MPEG Layer III frames.
    Mp3,
}

impl OutputFormat {
    /// The wire names, in the order the real service lists them in its validation message.
    pub(crate) const NAMES: [&'static str; 5] = ["wav", "ulaw", "alaw", "pcm", "mp3"];

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "pcm" => Self::Pcm,
            "wav" => Self::Wav,
            "ulaw" => Self::Ulaw,
            "alaw" => Self::Alaw,
            "mp3" => Self::Mp3,
            _ => return None,
        })
    }

    /// The exact body length for `samples` samples, when it is known in advance (not for MP3).
    pub(crate) fn exact_len(self, samples: usize) -> Option<u64> {
        let samples = samples as u64;
        match self {
            Self::Pcm => Some(samples * 2),
            Self::Wav => Some(WAV_HEADER_LEN as u64 + samples * 2),
            Self::Ulaw | Self::Alaw => Some(samples),
            Self::Mp3 => None,
        }
    }
}

/// Length of the canonical WAV header.
pub(crate) const WAV_HEADER_LEN: usize = 44;

/// The canonical 44-byte header of a mono 16-bit PCM WAV file with `data_len` bytes of samples.
pub(crate) fn wav_header(sample_rate: u32, data_len: u64) -> [u8; WAV_HEADER_LEN] {
    let data_len = u32::try_from(data_len).unwrap_or(u32::MAX - 36);
    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_len.saturating_add(36)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&sample_rate.saturating_mul(2).to_le_bytes()); // byte rate
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A complete mono 16-bit WAV file.
pub(crate) fn wav_file(sample_rate: u32, pcm: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(WAV_HEADER_LEN + pcm.len() * 2);
    out.extend_from_slice(&wav_header(sample_rate, pcm.len() as u64 * 2));
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Turns PCM chunks into the bytes of one `output_format`.
#[derive(Debug)]
pub(crate) struct OutputEncoder {
    format: OutputFormat,
    wav_header: Option<[u8; WAV_HEADER_LEN]>,
    mp3: Option<mp3::Mp3Stream>,
}

impl OutputEncoder {
    /// `None` when the format cannot carry this sample rate (MP3 has a fixed set of rates).
    pub(crate) fn new(
        format: OutputFormat,
        sample_rate: u32,
        total_samples: usize,
    ) -> Option<Self> {
        let mp3 = match format {
            OutputFormat::Mp3 => Some(mp3::Mp3Stream::new(sample_rate)?),
            _ => None,
        };
        let wav_header = (format == OutputFormat::Wav)
            .then(|| wav_header(sample_rate, total_samples as u64 * 2));
        Some(Self {
            format,
            wav_header,
            mp3,
        })
    }

    pub(crate) fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        if let Some(header) = self.wav_header.take() {
            out.extend_from_slice(&header);
        }
        match self.format {
            OutputFormat::Pcm | OutputFormat::Wav => {
                out.reserve(pcm.len() * 2);
                for s in pcm {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            OutputFormat::Ulaw => out.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s))),
            OutputFormat::Alaw => out.extend(pcm.iter().map(|&s| g711::linear_to_alaw(s))),
            OutputFormat::Mp3 => {
                if let Some(mp3) = self.mp3.as_mut() {
                    mp3.push(pcm, out);
                }
            }
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(header) = self.wav_header.take() {
            out.extend_from_slice(&header);
        }
        if let Some(mp3) = self.mp3.as_mut() {
            mp3.finish(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech;

    fn encode_all(format: OutputFormat, text: &str, rate: u32) -> Vec<u8> {
        let synth = speech::Synthesizer::new(text, rate, 1.0);
        let mut enc = OutputEncoder::new(format, rate, synth.total_samples()).expect("rate");
        let mut out = Vec::new();
        for chunk in synth {
            enc.encode(&chunk, &mut out);
        }
        enc.finish(&mut out);
        out
    }

    fn transcribe_upload(bytes: &[u8], chunk: usize) -> upload::Transcript {
        let mut dec = UploadDecoder::new(None);
        for c in bytes.chunks(chunk.max(1)) {
            dec.feed(c);
        }
        dec.finish()
    }

    #[test]
    fn wav_header_layout() {
        let h = wav_header(24000, 1000);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([h[4], h[5], h[6], h[7]]), 1036);
        assert_eq!(u32::from_le_bytes([h[24], h[25], h[26], h[27]]), 24000);
        assert_eq!(u32::from_le_bytes([h[28], h[29], h[30], h[31]]), 48000);
        assert_eq!(u32::from_le_bytes([h[40], h[41], h[42], h[43]]), 1000);
    }

    #[test]
    fn every_output_format_transcribes_back() {
        let text = "Formats all round trip.";
        for rate in [8000, 16000, 24000, 44100] {
            let samples = speech::synthesized_len(text, rate, 1.0);
            for format in [OutputFormat::Wav, OutputFormat::Pcm] {
                let bytes = encode_all(format, text, rate);
                assert_eq!(Some(bytes.len() as u64), format.exact_len(samples));
                for chunk in [1, 333, 1 << 20] {
                    let t = transcribe_upload(&bytes, chunk);
                    assert_eq!(t.text, text, "{format:?} {rate} chunk {chunk}");
                    assert!((t.duration_secs - samples as f64 / f64::from(rate)).abs() < 1e-3);
                }
            }
            // Headerless G.711 needs the `encoding` hint (legacy route); the rate is found by the codec.
            for (format, enc) in [
                (OutputFormat::Ulaw, RawEncoding::Mulaw),
                (OutputFormat::Alaw, RawEncoding::Alaw),
            ] {
                let bytes = encode_all(format, text, rate);
                assert_eq!(bytes.len(), samples);
                let mut dec = UploadDecoder::new(Some(enc));
                dec.feed(&bytes);
                assert_eq!(dec.finish().text, text, "{format:?} {rate}");
            }
        }
    }

    #[test]
    fn mp3_is_real_mpeg_audio_that_transcribes_back() {
        let text = "MP3 too.";
        for (rate, first_two) in [
            (8000, 0xFFE3u16),
            (16000, 0xFFF3),
            (24000, 0xFFF3),
            (44100, 0xFFFB),
        ] {
            let bytes = encode_all(OutputFormat::Mp3, text, rate);
            assert_eq!(
                u16::from_be_bytes([bytes[0], bytes[1]]),
                first_two,
                "rate {rate}"
            );
            let header =
                rusty_mp3::header::FrameHeader::parse([bytes[0], bytes[1], bytes[2], bytes[3]])
                    .expect("frame header");
            assert_eq!(header.sample_rate, rate);
            assert_eq!(header.bitrate_kbps, 128);
            let t = transcribe_upload(&bytes, 1000);
            assert_eq!(t.sample_rate, Some(rate));
            assert_eq!(t.text, text, "rate {rate}");
        }
    }

    #[test]
    fn wav_variants_decode() {
        let text = "variants";
        let pcm = speech::synthesize_pcm(text, 16000, 1.0);
        // Stereo 16-bit with an extra chunk before `data`.
        let mut stereo = Vec::new();
        let data_len = pcm.len() as u32 * 4;
        stereo.extend_from_slice(b"RIFF");
        stereo.extend_from_slice(&(data_len + 36 + 12).to_le_bytes());
        stereo.extend_from_slice(b"WAVEfmt ");
        stereo.extend_from_slice(&16u32.to_le_bytes());
        stereo.extend_from_slice(&1u16.to_le_bytes());
        stereo.extend_from_slice(&2u16.to_le_bytes());
        stereo.extend_from_slice(&16000u32.to_le_bytes());
        stereo.extend_from_slice(&64000u32.to_le_bytes());
        stereo.extend_from_slice(&4u16.to_le_bytes());
        stereo.extend_from_slice(&16u16.to_le_bytes());
        stereo.extend_from_slice(b"LIST");
        stereo.extend_from_slice(&3u32.to_le_bytes());
        stereo.extend_from_slice(b"abc\0"); // odd size + pad byte
        stereo.extend_from_slice(b"data");
        stereo.extend_from_slice(&data_len.to_le_bytes());
        for s in &pcm {
            stereo.extend_from_slice(&s.to_le_bytes());
            stereo.extend_from_slice(&s.to_le_bytes());
        }
        assert_eq!(transcribe_upload(&stereo, 7).text, text);

        // 8-bit μ-law WAV (format 7).
        let mut ulaw = Vec::new();
        ulaw.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        ulaw.extend_from_slice(&18u32.to_le_bytes());
        ulaw.extend_from_slice(&7u16.to_le_bytes());
        ulaw.extend_from_slice(&1u16.to_le_bytes());
        ulaw.extend_from_slice(&16000u32.to_le_bytes());
        ulaw.extend_from_slice(&16000u32.to_le_bytes());
        ulaw.extend_from_slice(&1u16.to_le_bytes());
        ulaw.extend_from_slice(&8u16.to_le_bytes());
        ulaw.extend_from_slice(&0u16.to_le_bytes());
        ulaw.extend_from_slice(b"data");
        ulaw.extend_from_slice(&u32::MAX.to_le_bytes()); // streamed WAV: unknown length
        ulaw.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s)));
        assert_eq!(transcribe_upload(&ulaw, 100).text, text);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 7u64;
        for len in [0usize, 1, 3, 11, 12, 44, 45, 1000, 50_000] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            for prefix in [
                &b""[..],
                b"RIFF\xff\xff\xff\xffWAVE",
                b"ID3\x04",
                b"\xff\xfb\x90\x00",
                b"fLaC",
            ] {
                let mut input = prefix.to_vec();
                input.extend_from_slice(&bytes);
                let t = transcribe_upload(&input, 17);
                assert!(t.duration_secs >= 0.0);
            }
        }
        // A data chunk that ends inside a (wide) frame, followed by another chunk.
        let mut odd = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        odd.extend_from_slice(&1u16.to_le_bytes());
        odd.extend_from_slice(&8u16.to_le_bytes()); // 8 channels
        odd.extend_from_slice(&16000u32.to_le_bytes());
        odd.extend_from_slice(&(16000u32 * 32).to_le_bytes());
        odd.extend_from_slice(&32u16.to_le_bytes()); // 32-byte frames
        odd.extend_from_slice(&32u16.to_le_bytes());
        odd.extend_from_slice(b"data\x15\0\0\0");
        odd.extend_from_slice(&[1; 22]); // 21 bytes + pad
        odd.extend_from_slice(b"LIST\x04\0\0\0abcd");
        odd.extend_from_slice(b"data\x40\0\0\0");
        odd.extend_from_slice(&[0; 64]);
        for chunk in [1, 3, 9, 100] {
            let t = transcribe_upload(&odd, chunk);
            assert_eq!(t.text, "");
            assert!(
                (t.duration_secs - 2.0 / 16000.0).abs() < 1e-9,
                "{}",
                t.duration_secs
            );
        }
        // A WAV header claiming absurd parameters.
        let mut bad = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        bad.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        bad.extend_from_slice(b"data\x10\0\0\0");
        bad.extend_from_slice(&[0; 16]);
        assert_eq!(transcribe_upload(&bad, 5).text, "");
    }
}
