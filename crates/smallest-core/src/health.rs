//! `GET /waves/v1/health`: the liveness probe (API.md §8.6). No key needed.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::Value;

use crate::config::Config;
use crate::endpoint::{Endpoint, check_status};
use crate::error::Error;

/// The path of the health check.
pub const HEALTH_PATH: &str = "/waves/v1/health";

/// The health check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health;

/// What the health check reported. A `503` with the documented body is a report of an
/// unhealthy service, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthStatus {
    /// `true` for `200` with `"status":"ok"`.
    pub healthy: bool,
    /// The top-level `status`, e.g. `ok`.
    pub status: String,
    /// Each backing service and its status, e.g. `mongo → connected`.
    pub services: BTreeMap<String, String>,
}

impl Endpoint for Health {
    type Output = HealthStatus;
    const AUTHENTICATED: bool = false;

    fn to_http_request(&self, config: &Config) -> Result<Request<Bytes>, Error> {
        Request::builder()
            .method(Method::GET)
            .uri(config.uri(HEALTH_PATH)?)
            .body(Bytes::new())
            .map_err(|e| Error::Config(format!("cannot build request: {e}").into()))
    }

    fn from_http_response(&self, response: Response<Bytes>) -> Result<HealthStatus, Error> {
        let unavailable = response.status() == StatusCode::SERVICE_UNAVAILABLE;
        let parsed = serde_json::from_slice::<Value>(response.body()).ok();
        let Some(Value::Object(obj)) =
            parsed.filter(|_| unavailable || response.status().is_success())
        else {
            return Err(match check_status(response) {
                Err(e) => e,
                Ok(_) => Error::decode("health response", "expected a JSON object"),
            });
        };
        let status = obj
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let services = obj
            .iter()
            .filter_map(|(name, v)| {
                let s = v.as_object()?.get("status")?.as_str()?;
                Some((name.clone(), s.to_owned()))
            })
            .collect();
        Ok(HealthStatus {
            healthy: !unavailable && status == "ok",
            status,
            services,
        })
    }
}
