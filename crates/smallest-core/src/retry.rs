//! When to try a failed call again, and how long to wait first: pure maths.
//!
//! [`RetryPolicy::decide`] takes the attempt number, what happened, how long the call
//! has taken so far, the time now (for `Retry-After` dates) and a jitter value in
//! `[0, 1)`, and answers [`RetryDecision::RetryAfter`] or [`RetryDecision::GiveUp`].
//! Transports only sleep and resend; they never read a clock or draw a random number
//! for this module, so every decision is reproducible in a test.
//!
//! What is retried (API.md §8.4): 408, 429 (concurrency, and per-minute limits), 500,
//! 502, 503, 504, and transport failures that happened before the request was sent. Not
//! retried: anything the caller must fix (400, 401, 403, 404, 410, 413), a 429 that is a
//! plan or quota refusal rather than a momentary limit, a failure after the request may
//! have been processed, and anything at all once the first byte of a streamed body has
//! reached the user.

use std::time::{Duration, SystemTime};

use crate::error::{ApiError, Error, TimeoutPhase};

/// How failed calls are retried.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 switches retrying off).
    pub max_retries: u32,
    /// The first backoff; it doubles with each retry.
    pub initial_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` that is honoured; longer ones are clamped to it.
    pub max_retry_after: Duration,
    /// No retry starts once the call has taken this long (waits included).
    pub budget: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 3 retries, 500 ms doubling to 30 s (the API's advice), `Retry-After` up to 60 s, a
    /// 2-minute budget.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            budget: Some(Duration::from_secs(120)),
        }
    }
}

/// The answer of [`RetryPolicy::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then send the request again.
    RetryAfter(Duration),
    /// Return the error to the caller.
    GiveUp,
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The same policy with another retry count.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Decides what to do after attempt number `attempt` (1 for the first) failed with
    /// `error`. `elapsed` is the time since the call started, `now` the wall-clock time
    /// (only used for `Retry-After` dates) and `jitter` a number in `[0, 1)`.
    ///
    /// Nothing is ever retried once some of a streamed body reached the user: the call
    /// machines ([`crate::call`]) never ask then.
    pub fn decide(
        &self,
        attempt: u32,
        error: &Error,
        elapsed: Duration,
        now: SystemTime,
        jitter: f64,
    ) -> RetryDecision {
        if attempt > self.max_retries || !is_retryable(error) {
            return RetryDecision::GiveUp;
        }
        let delay = match error.api().and_then(ApiError::retry_after) {
            Some(after) => after.delay_from(now).min(self.max_retry_after),
            None => self.backoff(attempt, jitter),
        };
        if let Some(budget) = self.budget
            && elapsed.saturating_add(delay) > budget
        {
            return RetryDecision::GiveUp;
        }
        RetryDecision::RetryAfter(delay)
    }

    /// The backoff before retry number `attempt` (1-based): half of the exponential
    /// step fixed, half scaled by `jitter`, so waits never collapse to zero and clients
    /// that failed together do not retry together.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let step = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        step / 2 + step.mul_f64(jitter) / 2
    }
}

/// Maps a 64-bit seed to a jitter value in `[0, 1)`, with SplitMix64 so nearby seeds
/// scatter. The call machines step a seed the transport drew from the OS.
pub(crate) fn jitter_from_seed(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a failure is worth another attempt, under the rules of the module docs
/// ([`Error::is_retryable`]).
pub(crate) fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Api(e) => match e.status().as_u16() {
            429 => !is_plan_refusal(e),
            408 | 500 | 502 | 503 | 504 => true,
            _ => false,
        },
        // A proxy that refused the tunnel (403, 407 …) refuses it again.
        Error::Transport {
            request_sent,
            source,
        } => {
            !request_sent
                && crate::proxy::ProxyError::find(source.as_ref())
                    .is_none_or(crate::proxy::ProxyError::is_retryable)
        }
        Error::Timeout { phase, .. } => *phase == TimeoutPhase::Connect,
        _ => false,
    }
}

/// A 429 that no amount of waiting fixes soon: quota, credits, billing or trial limits.
/// A body that speaks of concurrency or a rate is a momentary limit, whatever else it
/// suggests (e.g. "raise the plan's concurrency").
fn is_plan_refusal(e: &ApiError) -> bool {
    let text = format!("{} {}", e.code().unwrap_or_default(), e.message()).to_ascii_lowercase();
    let momentary = ["concurren", "rate limit", "too many requests", "retry"]
        .iter()
        .any(|word| text.contains(word));
    !momentary
        && [
            "quota",
            "credit",
            "trial",
            "upgrade",
            "billing",
            "exhausted",
        ]
        .iter()
        .any(|word| text.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    fn api(status: u16, body: &str, retry_after: Option<&str>) -> Error {
        let mut headers = HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert("retry-after", HeaderValue::from_str(v).unwrap());
        }
        ApiError::from_parts(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
        )
        .into()
    }

    fn decide(policy: &RetryPolicy, attempt: u32, e: &Error) -> RetryDecision {
        policy.decide(attempt, e, Duration::ZERO, SystemTime::UNIX_EPOCH, 0.5)
    }

    #[test]
    fn retries_the_momentary_failures_only() {
        let p = RetryPolicy::default();
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    decide(&p, 1, &api(status, "{}", None)),
                    RetryDecision::RetryAfter(_)
                ),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(
                decide(&p, 1, &api(status, "{}", None)),
                RetryDecision::GiveUp,
                "{status}"
            );
        }
        let quota = api(
            429,
            r#"{"error":"Monthly credit quota exhausted, upgrade your plan"}"#,
            None,
        );
        assert_eq!(decide(&p, 1, &quota), RetryDecision::GiveUp);
        let unsent = Error::transport(false, "connection refused");
        let sent = Error::transport(true, "connection reset");
        assert!(matches!(
            decide(&p, 1, &unsent),
            RetryDecision::RetryAfter(_)
        ));
        assert_eq!(decide(&p, 1, &sent), RetryDecision::GiveUp);
    }

    #[test]
    fn jitter_is_in_range_and_scattered() {
        let values: Vec<f64> = (0..1000).map(jitter_from_seed).collect();
        assert!(values.iter().all(|j| (0.0..1.0).contains(j)));
        let mean = values.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(250));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(500));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(1500));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(30));
        assert_eq!(p.backoff(u32::MAX, f64::NAN), Duration::from_secs(15));
    }

    #[test]
    fn retry_after_is_honoured_in_both_forms_and_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(
            decide(&p, 1, &api(429, "{}", Some("7"))),
            RetryDecision::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            decide(&p, 1, &api(503, "{}", Some("3600"))),
            RetryDecision::RetryAfter(Duration::from_secs(60))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(12));
        let e = api(429, "{}", Some(&date));
        assert_eq!(
            p.decide(1, &e, Duration::ZERO, now, 0.0),
            RetryDecision::RetryAfter(Duration::from_secs(12))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        let e = api(429, "{}", Some(&past));
        assert_eq!(
            p.decide(1, &e, Duration::ZERO, now, 0.0),
            RetryDecision::RetryAfter(Duration::ZERO)
        );
    }

    #[test]
    fn gives_up_after_the_count_or_the_budget() {
        let p = RetryPolicy::default().with_max_retries(2);
        let e = api(503, "{}", None);
        assert!(matches!(decide(&p, 2, &e), RetryDecision::RetryAfter(_)));
        assert_eq!(decide(&p, 3, &e), RetryDecision::GiveUp);
        assert_eq!(decide(&RetryPolicy::none(), 1, &e), RetryDecision::GiveUp);
        let late = p.decide(
            1,
            &e,
            Duration::from_millis(119_600),
            SystemTime::UNIX_EPOCH,
            1.0,
        );
        assert_eq!(late, RetryDecision::GiveUp);
    }
}
