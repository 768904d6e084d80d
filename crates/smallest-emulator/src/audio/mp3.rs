//! MP3 (MPEG-1/2/2.5 Layer III) through `rusty_mp3`, a pure-Rust codec.
//!
//! Encoding uses the frame-level engine directly: constant 128 kbps frames with no bit reservoir
//! and no Info/Xing tag frame, so the stream can be produced frame by frame in bounded memory and
//! begins with an ordinary audio frame (as the real service's `fff3…` bytes do at 24 kHz).

use rusty_mp3::header::FrameHeader;
use rusty_mp3::{Mp3Decoder, Mp3Encode};

/// Bitrate of the emulator's MP3 output (the real service sends 128 kbps at 24 kHz).
const BITRATE_KBPS: u32 = 128;

/// Streaming mono MP3 encoder.
pub(crate) struct Mp3Stream {
    engine: Mp3Encode,
    header: FrameHeader,
    samples_per_frame: usize,
    pending: Vec<f32>,
}

impl std::fmt::Debug for Mp3Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Stream")
            .field("sample_rate", &self.header.sample_rate)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Mp3Stream {
    /// `None` when MPEG audio has no such sample rate.
    pub(crate) fn new(sample_rate: u32) -> Option<Self> {
        let header = rusty_mp3::encoder_header(sample_rate, 1, BITRATE_KBPS).ok()?;
        let samples_per_frame = header.version.samples_per_frame();
        Some(Self {
            engine: Mp3Encode::new(),
            header,
            samples_per_frame,
            pending: Vec::with_capacity(samples_per_frame),
        })
    }

    /// Encodes `pcm`, appending every completed frame to `out`.
    pub(crate) fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        for &s in pcm {
            self.pending.push(f32::from(s) / 32768.0);
            if self.pending.len() == self.samples_per_frame {
                self.encode_pending(out);
            }
        }
    }

    fn encode_pending(&mut self, out: &mut Vec<u8>) {
        if let Ok(frame) = self
            .engine
            .encode_frame(&self.header, &[&self.pending[..]], None)
        {
            out.extend_from_slice(&frame);
        }
        self.pending.clear();
    }

    /// Pads the last frame and adds two frames of silence, so a decoder's delay line releases every
    /// input sample.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let spf = self.samples_per_frame;
        let silence = vec![0i16; spf];
        if !self.pending.is_empty() {
            let missing = spf - self.pending.len();
            self.push(&silence[..missing], out);
        }
        self.push(&silence, out);
        self.push(&silence, out);
    }
}

/// Streaming MP3 decoder to mono samples in 16-bit scale.
pub(crate) struct Mp3Input {
    decoder: Mp3Decoder,
    failed: bool,
    sample_rate: Option<u32>,
}

impl std::fmt::Debug for Mp3Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Input")
            .field("failed", &self.failed)
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

impl Mp3Input {
    pub(crate) fn new() -> Self {
        Self {
            decoder: Mp3Decoder::new(),
            failed: false,
            sample_rate: None,
        }
    }

    /// Feeds compressed bytes; calls `sink(sample_rate, mono)` for every decoded frame.
    pub(crate) fn push(&mut self, bytes: &[u8], sink: &mut dyn FnMut(u32, &[f32])) {
        if self.failed {
            return;
        }
        // The decoder treats input as hostile and documents no panics, but uploads are arbitrary
        // bytes: a panic here must become "no transcription", never a dead connection task.
        let decoder = &mut self.decoder;
        let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.push(bytes)));
        if pushed.is_err() {
            self.failed = true;
            return;
        }
        self.drain(sink);
    }

    pub(crate) fn finish(&mut self, sink: &mut dyn FnMut(u32, &[f32])) {
        if self.failed {
            return;
        }
        self.decoder.flush();
        self.drain(sink);
    }

    fn drain(&mut self, sink: &mut dyn FnMut(u32, &[f32])) {
        while let Ok(frame) = self.decoder.next_frame() {
            let channels = usize::from(frame.channels.max(1));
            self.sample_rate.get_or_insert(frame.sample_rate);
            let mono: Vec<f32> = frame
                .samples
                .chunks(channels)
                .map(|c| c.iter().sum::<f32>() / channels as f32 * 32768.0)
                .collect();
            sink(frame.sample_rate, &mono);
        }
    }

    pub(crate) fn sample_rate(&self) -> Option<u32> {
        self.sample_rate
    }
}
