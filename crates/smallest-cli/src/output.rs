//! Audio written to a file as it arrives, for `tts --stream` and `tts --live`.
//!
//! The bytes go to `FILE.part` next to the target as they arrive, and the part file is
//! renamed onto `FILE` only once the audio is known to be complete. An unfinished
//! [`AudioFile`] (an error, a cut stream, an early return) removes its part file when
//! dropped, so a short file never takes the target's name and an existing `FILE` is
//! left as it was.
//!
//! As a WAV, the header goes first with placeholder sizes (`0xFFFFFFFF`), and the real
//! sizes are patched in (by seeking back) before the rename: the core's [`WavSizes`]
//! does the bookkeeping.
//!
//! A target that exists and is not a regular file (`/dev/stdout`, a FIFO, a symlink) or
//! `-` (stdout) is written straight to, never replaced: a WAV there keeps its
//! placeholder sizes (players read them as "until the end").

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use smallest_core::audio::WavSizes;
use smallest_core::tts::OutputFormat;

/// How the audio is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Container {
    /// The bytes as they come.
    Raw,
    /// A WAV file of `format` audio (`pcm`, `ulaw`, `alaw`: a header is written first;
    /// `wav`: the stream's own header is kept).
    Wav {
        format: OutputFormat,
        sample_rate: u32,
    },
}

/// A file being written from a stream; see the module documentation.
pub(crate) struct AudioFile {
    path: PathBuf,
    part: PathBuf,
    /// `None` once finished (renamed) or abandoned.
    file: Option<Out>,
    sizes: Option<WavSizes>,
    audio_bytes: u64,
    /// Bytes written, header included (what a stream's length is).
    written: u64,
}

/// Where the bytes go: a part file renamed at the end, or straight to the target.
enum Out {
    Part(File),
    Straight(Box<dyn Write + Send>),
}

impl std::fmt::Debug for AudioFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioFile")
            .field("path", &self.path)
            .field("straight", &matches!(self.file, Some(Out::Straight(_))))
            .field("audio_bytes", &self.audio_bytes)
            .finish()
    }
}

/// Whether `path` is to be written straight to: `-`, or an existing target that is not
/// a regular file (a device, a FIFO, a symlink), which a rename would replace.
fn straight(path: &Path) -> bool {
    path.as_os_str() == "-"
        || std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file())
}

impl AudioFile {
    /// Creates `FILE.part` for the target `path` (and writes a WAV header, if any).
    pub(crate) fn create(path: &Path, container: Container) -> Result<Self, String> {
        let (header, sizes) = match container {
            Container::Raw => (None, None),
            Container::Wav {
                format,
                sample_rate,
            } => {
                let (header, sizes) =
                    WavSizes::start(format, sample_rate).map_err(|e| e.to_string())?;
                (header, Some(sizes))
            }
        };
        let part = part_path(path);
        let out = if path.as_os_str() == "-" {
            Out::Straight(Box::new(std::io::stdout()))
        } else if straight(path) {
            let target = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Out::Straight(Box::new(target))
        } else {
            Out::Part(
                File::create(&part)
                    .map_err(|e| format!("cannot create {}: {e}", part.display()))?,
            )
        };
        let mut this = AudioFile {
            path: path.to_owned(),
            part,
            file: Some(out),
            sizes,
            audio_bytes: 0,
            written: 0,
        };
        if let Some(header) = header {
            this.write_all(&header)?;
        }
        Ok(this)
    }

    /// Appends audio bytes.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), String> {
        self.write_all(data)?;
        if let Some(sizes) = &mut self.sizes {
            sizes.wrote(data);
        }
        self.audio_bytes += data.len() as u64;
        Ok(())
    }

    /// Audio bytes written so far (a header written here not counted).
    pub(crate) fn audio_bytes(&self) -> u64 {
        self.audio_bytes
    }

    /// The audio is complete: patches the WAV sizes, flushes, and renames the part file
    /// onto the target. Returns the file's length.
    pub(crate) fn finish(mut self) -> Result<u64, String> {
        let mut file = match self.file.take() {
            None => return Err(format!("{} was already closed", self.part.display())),
            Some(Out::Straight(mut out)) => {
                out.flush()
                    .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
                return Ok(self.written);
            }
            Some(Out::Part(file)) => file,
        };
        let result = self.complete(&mut file);
        drop(file);
        match result {
            Ok(len) => {
                std::fs::rename(&self.part, &self.path).map_err(|e| {
                    let _ = std::fs::remove_file(&self.part);
                    format!(
                        "cannot rename {} to {}: {e}",
                        self.part.display(),
                        self.path.display()
                    )
                })?;
                Ok(len)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.part);
                Err(e)
            }
        }
    }

    fn complete(&self, file: &mut File) -> Result<u64, String> {
        let error = |e: std::io::Error| format!("cannot write {}: {e}", self.part.display());
        let len = match &self.sizes {
            None => file.stream_position().map_err(error)?,
            Some(sizes) => {
                for (at, value) in sizes.patches().map_err(|e| e.to_string())? {
                    file.seek(SeekFrom::Start(at)).map_err(error)?;
                    file.write_all(&value).map_err(error)?;
                }
                sizes.written()
            }
        };
        file.flush().map_err(error)?;
        file.sync_all().map_err(error)?;
        Ok(len)
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        let result = match &mut self.file {
            None => return Err(format!("{} was already closed", self.part.display())),
            Some(Out::Part(file)) => file.write_all(data),
            Some(Out::Straight(out)) => out.write_all(data),
        };
        self.written += data.len() as u64;
        result.map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

impl Drop for AudioFile {
    /// Unfinished: the partial audio is removed.
    fn drop(&mut self) {
        if let Some(Out::Part(file)) = self.file.take() {
            drop(file);
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

/// `dir/out.wav` → `dir/out.wav.part`.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "audio".into());
    name.push(".part");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("smallest-cli-out-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_finished_wav_has_its_sizes_and_takes_the_name() {
        let dir = dir("wav");
        let path = dir.join("a.wav");
        let mut out = AudioFile::create(
            &path,
            Container::Wav {
                format: OutputFormat::Pcm,
                sample_rate: 16000,
            },
        )
        .unwrap();
        assert!(dir.join("a.wav.part").exists());
        out.write(&[0, 1, 2, 3]).unwrap();
        out.write(&[4, 5]).unwrap();
        assert_eq!(out.audio_bytes(), 6);
        assert_eq!(out.finish().unwrap(), 50);
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len(), 50);
        assert_eq!(u32::from_le_bytes([file[4], file[5], file[6], file[7]]), 42);
        assert_eq!(
            u32::from_le_bytes([file[40], file[41], file[42], file[43]]),
            6
        );
        assert!(!dir.join("a.wav.part").exists());
    }

    #[test]
    fn an_unfinished_file_is_removed_and_the_old_one_kept() {
        let dir = dir("cut");
        let path = dir.join("b.pcm");
        std::fs::write(&path, b"old").unwrap();
        let mut out = AudioFile::create(&path, Container::Raw).unwrap();
        out.write(b"new audio").unwrap();
        assert!(dir.join("b.pcm.part").exists());
        drop(out);
        assert!(!dir.join("b.pcm.part").exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn mp3_cannot_be_a_wav() {
        let err = AudioFile::create(
            &dir("mp3").join("c.wav"),
            Container::Wav {
                format: OutputFormat::Mp3,
                sample_rate: 24000,
            },
        )
        .unwrap_err();
        assert!(err.contains("pcm, wav, ulaw or alaw"), "{err}");
    }
}

/// Text a server wrote, made safe for a terminal: every control character (ESC, BEL,
/// CR, a newline …) is shown escaped (`\u{1b}`), so a message, a transcript or a voice
/// name cannot move the cursor, recolour the terminal or forge a line.
pub(crate) fn safe_line(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |_| true)
}

/// [`safe_line`] for a whole message of ours that quotes a server: line breaks and tabs
/// stay, every other control character is escaped.
pub(crate) fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |c| c != '\n' && c != '\t')
}

fn escape_controls(text: &str, escape: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && escape(c);
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod safe_tests {
    use super::{safe, safe_line};

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(safe_line("plain text"), "plain text");
        assert_eq!(
            safe_line("a\x1b[31mb\x07\r\n"),
            "a\\u{1b}[31mb\\u{7}\\u{d}\\u{a}"
        );
        assert_eq!(
            safe("line one\nline\x1b two\t!"),
            "line one\nline\\u{1b} two\t!"
        );
    }
}
