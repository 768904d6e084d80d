//! A transcription whose audio the transport streams from a file or a reader
//! (`POST /waves/v1/stt/`), as a [`Call`] plus an [`UploadCounter`] for the body.
//!
//! The counter decides how much to read next, counts what was handed over, reports
//! progress, and turns a source that ends before its declared length into an error
//! (a short body would otherwise look like a complete upload to the server).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

use super::{Call, Operation};
use crate::config::Config;
use crate::endpoint::{BodyKind, Endpoint};
use crate::error::Error;
use crate::options::ClientOptions;
use crate::retry::RetryPolicy;
use crate::stt::{Progress, TranscribeRequest, Transcription};

/// How much of the source one piece of an upload carries.
pub const UPLOAD_CHUNK: usize = 64 * 1024;

/// Called with the [`Progress`] of an upload after each piece is handed to the
/// connection: keep it quick.
pub type ProgressHook = Arc<dyn Fn(Progress) + Send + Sync>;

/// The operation of a streamed upload: the request head of [`TranscribeRequest`]'s
/// `upload_head`, with the identity headers; the transport sends the source as the body.
#[derive(Clone, Debug)]
pub struct UploadOp {
    template: TranscribeRequest,
    len: Option<u64>,
    content_type: String,
}

impl UploadOp {
    /// An upload of `len` bytes (chunked when `None`) of `content_type` audio, with the
    /// model, language and options of `template` (its source is ignored).
    pub fn new(template: &TranscribeRequest, len: Option<u64>, content_type: &str) -> Self {
        UploadOp {
            template: template.clone(),
            len,
            content_type: content_type.to_owned(),
        }
    }

    /// An upload of the file at `path`, `len` bytes long (its metadata's length; the
    /// transport reads the file), typed from the template or the file's extension, and
    /// its call: a file can be reopened, so the upload is retried like any call.
    pub fn file_call(
        template: &TranscribeRequest,
        path: &Path,
        len: u64,
        config: &Config,
        options: &ClientOptions,
        seed: u64,
    ) -> Call<UploadOp> {
        let content_type = template.upload_content_type(Some(path));
        UploadOp::new(template, Some(len), &content_type).call(config, options, true, seed)
    }

    /// An upload from a reader that cannot be rewound (never retried), `len` bytes when
    /// known, typed from the template (else `application/octet-stream`), and its call.
    pub fn reader_call(
        template: &TranscribeRequest,
        len: Option<u64>,
        config: &Config,
        options: &ClientOptions,
        seed: u64,
    ) -> Call<UploadOp> {
        let content_type = template.upload_content_type(None);
        UploadOp::new(template, len, &content_type).call(config, options, false, seed)
    }

    /// The declared length.
    pub fn declared_len(&self) -> Option<u64> {
        self.len
    }

    /// The call of this upload. A source that can be read again (a file, reopened for
    /// each attempt) is retried under the client's policy; one that cannot (a reader)
    /// never is.
    pub fn call(
        self,
        config: &Config,
        options: &ClientOptions,
        rewindable: bool,
        seed: u64,
    ) -> Call<UploadOp> {
        if rewindable {
            Call::of(self, config, options, seed)
        } else {
            Call::of(
                self,
                config,
                &options.with_retry_policy(RetryPolicy::none()),
                seed,
            )
        }
    }
}

impl Operation for UploadOp {
    type Output = Transcription;

    fn uses_tts_slot(&self) -> bool {
        false
    }

    fn stt_model(&self) -> Option<&str> {
        Some(self.template.model.as_str())
    }

    fn request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        let head = self
            .template
            .prepare_upload(config, self.len, Some(&self.content_type))?;
        Ok(head.map(|()| Bytes::new()))
    }

    fn body_kind(&self) -> BodyKind {
        BodyKind::Json
    }

    fn parse_response(&self, response: Response<Bytes>) -> Result<Transcription, Error> {
        self.template.from_http_response(response)
    }
}

/// The bookkeeping of an upload body: what to read next, what was sent, progress.
pub struct UploadCounter {
    sent: u64,
    total: Option<u64>,
    hook: Option<ProgressHook>,
    done: bool,
}

impl UploadCounter {
    /// A counter for a body of `total` bytes (unknown: `None`).
    pub fn new(total: Option<u64>, hook: Option<ProgressHook>) -> Self {
        UploadCounter {
            sent: 0,
            total,
            hook,
            done: total == Some(0),
        }
    }

    /// How many bytes to read from the source next: 0 when the body is complete.
    pub fn want(&self) -> usize {
        if self.done {
            return 0;
        }
        match self.total {
            Some(total) => {
                UPLOAD_CHUNK.min(usize::try_from(total - self.sent).unwrap_or(UPLOAD_CHUNK))
            }
            None => UPLOAD_CHUNK,
        }
    }

    /// A read of the source returned `n` bytes (0 at its end), which are handed over.
    /// Fails when the source ended before its declared length.
    pub fn handle_read(&mut self, n: usize) -> Result<(), Error> {
        if n == 0 {
            self.done = true;
            if let Some(total) = self.total
                && self.sent < total
            {
                return Err(self.source_error(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the source ended before its declared length of {total} bytes"),
                )));
            }
            return Ok(());
        }
        self.sent += n as u64;
        if self.total.is_some_and(|total| self.sent >= total) {
            self.done = true;
        }
        if let Some(hook) = &self.hook {
            hook(Progress::new(self.sent, self.total));
        }
        Ok(())
    }

    /// Reading the source failed.
    pub fn source_error(&self, e: io::Error) -> Error {
        Error::transport(
            true,
            io::Error::new(
                e.kind(),
                format!("reading the upload failed after {} bytes: {e}", self.sent),
            ),
        )
    }

    /// Whether the whole body was handed over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The progress so far.
    pub fn progress(&self) -> Progress {
        Progress::new(self.sent, self.total)
    }
}

impl fmt::Debug for UploadCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadCounter")
            .field("sent", &self.sent)
            .field("total", &self.total)
            .field("done", &self.done)
            .finish()
    }
}

/// A local file that cannot be read: nothing was sent.
pub fn file_error(path: &Path, e: io::Error) -> Error {
    Error::transport(
        false,
        io::Error::new(
            e.kind(),
            format!("cannot read the upload {}: {e}", path.display()),
        ),
    )
}

/// A failure to write audio where the caller asked (a file, a socket …).
pub fn output_error(e: io::Error) -> Error {
    Error::transport(
        true,
        io::Error::new(e.kind(), format!("cannot write the audio: {e}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn counts_reports_and_refuses_a_short_source() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let hook: ProgressHook = Arc::new(move |p| log.lock().unwrap().push(p.sent));
        let mut c = UploadCounter::new(Some(100_000), Some(hook));
        assert_eq!(c.want(), UPLOAD_CHUNK);
        c.handle_read(UPLOAD_CHUNK).unwrap();
        assert_eq!(c.want(), 100_000 - UPLOAD_CHUNK);
        c.handle_read(10).unwrap();
        let e = c.handle_read(0).unwrap_err();
        assert!(e.to_string().contains("declared length of 100000"), "{e}");
        assert_eq!(*seen.lock().unwrap(), vec![65536, 65546]);

        let mut c = UploadCounter::new(Some(3), None);
        assert_eq!(c.want(), 3);
        c.handle_read(3).unwrap();
        assert!(c.is_done());
        assert_eq!(c.want(), 0);

        let mut c = UploadCounter::new(None, None);
        c.handle_read(5).unwrap();
        c.handle_read(0).unwrap();
        assert!(c.is_done());
    }
}
