//! The one shape every operation has: build an `http::Request`, parse an `http::Response`.
//!
//! A transport needs nothing else to run any operation of this crate:
//!
//! ```no_run
//! # use bytes::Bytes;
//! # use smallest_core::{Config, Endpoint, Error};
//! fn run<E: Endpoint>(
//!     endpoint: &E,
//!     config: &Config,
//!     send: impl FnOnce(http::Request<Bytes>) -> Result<http::Response<Bytes>, Error>,
//! ) -> Result<E::Output, Error> {
//!     let request = smallest_core::prepare(endpoint, config)?;
//!     endpoint.from_http_response(send(request)?)
//! }
//! ```

use bytes::Bytes;
use http::{Request, Response};

use crate::config::Config;
use crate::error::{ApiError, Error};

/// An operation of the Waves API, described without doing any I/O.
pub trait Endpoint {
    /// What a successful call returns.
    type Output;

    /// Whether the request carries the API key. Only the health check does not.
    const AUTHENTICATED: bool = true;

    /// Whether the call occupies one of the account's concurrent TTS slots (API.md §8.4:
    /// one by default, shared by sync, SSE and WebSocket TTS). Transports queue such
    /// calls behind a limiter instead of provoking 429s.
    const USES_TTS_SLOT: bool = false;

    /// The STT model whose requests-per-minute limit this request counts against
    /// (API.md §8.4), if any.
    fn stt_model(&self) -> Option<&str> {
        None
    }

    /// What a successful answer's body is, for the limit on reading it whole
    /// ([`BodyLimits`](crate::options::BodyLimits)).
    const BODY_KIND: BodyKind = BodyKind::Json;

    /// Validates the operation and builds its request: method, URI, headers and body.
    ///
    /// The request has no `Authorization`, `User-Agent` or `X-Source` yet; [`prepare`]
    /// adds them. Endpoints never see the key.
    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error>;

    /// Parses the response: an error status becomes [`Error::Api`], a success the output.
    ///
    /// It takes `&self` because the request decides how the answer reads (a synthesis
    /// knows the format and sample rate it asked for).
    #[allow(clippy::wrong_self_convention)]
    fn from_http_response(&self, response: Response<Bytes>) -> Result<Self::Output, Error>;
}

/// What a body read whole into memory is, for its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyKind {
    /// A JSON answer ([`BodyLimits::json`](crate::options::BodyLimits::json)).
    Json,
    /// Audio ([`BodyLimits::audio`](crate::options::BodyLimits::audio)).
    Audio,
    /// Read only as the evidence of a failure: at most
    /// [`MAX_ERROR_BODY`](crate::error::MAX_ERROR_BODY) bytes are kept.
    Evidence,
}

/// Builds the request of an endpoint with every header it needs to be sent as is.
pub fn prepare<E: Endpoint + ?Sized>(
    endpoint: &E,
    config: &Config,
) -> Result<Request<Bytes>, Error> {
    let mut request = endpoint.to_http_request(config)?;
    config.apply_headers(&mut request, E::AUTHENTICATED);
    Ok(request)
}

/// Returns the response if its status is a success, its [`ApiError`] otherwise.
pub fn check_status(response: Response<Bytes>) -> Result<Response<Bytes>, Error> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(ApiError::from_response(&response).into())
    }
}

/// Parses a JSON success body into `T`, naming `what` and the JSON path on failure.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    what: &'static str,
    body: &[u8],
) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::decode(what, e))
}
