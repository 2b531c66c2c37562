//! Classification: what one attempt's result means for the export.
//!
//! The single place that decides retryable versus rejected. 2xx is delivered;
//! a network error, a timeout, 408, 429 and every 5xx are retryable; any other
//! status (400, 401, 403, 404, 413, a redirect, ...) is rejected and never retried.
//! `Retry-After` (delta-seconds or an HTTP date) counts on 429 and 503 only.

use std::time::{Duration, UNIX_EPOCH};

/// What one POST attempt produced, as the host observed it.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempt {
    /// The backend answered with this status; `retry_after` is the raw header value.
    Status { status: u16, retry_after: Option<String> },
    /// The request failed before a status arrived (refused, reset, DNS, TLS, ...).
    NetworkError,
    /// The attempt was aborted after the export timeout.
    Timeout,
}

/// The meaning of an attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Worth another try; not before `retry_after_ms` when the backend said so.
    Retryable { retry_after_ms: Option<u64>, timed_out: bool },
    Rejected { status: u16 },
}

/// Classifies an attempt made at `now_ms` (wall clock, for HTTP-date `Retry-After`).
pub fn classify(attempt: &Attempt, now_ms: u64) -> Verdict {
    match attempt {
        Attempt::NetworkError => Verdict::Retryable { retry_after_ms: None, timed_out: false },
        Attempt::Timeout => Verdict::Retryable { retry_after_ms: None, timed_out: true },
        Attempt::Status { status, retry_after } => match status {
            200..=299 => Verdict::Delivered,
            408 | 500..=599 => Verdict::Retryable {
                retry_after_ms: if *status == 503 { parse_retry_after(retry_after.as_deref(), now_ms) } else { None },
                timed_out: false,
            },
            429 => Verdict::Retryable {
                retry_after_ms: parse_retry_after(retry_after.as_deref(), now_ms),
                timed_out: false,
            },
            _ => Verdict::Rejected { status: *status },
        },
    }
}

/// Parses a `Retry-After` value into milliseconds from `now_ms`.
///
/// Accepts delta-seconds (`"120"`) and an HTTP date; a date in the past means 0.
/// Anything else is ignored (`None`), as a malformed header must not stall the drain.
pub fn parse_retry_after(value: Option<&str>, now_ms: u64) -> Option<u64> {
    let value = value?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurd values; the policy caps them later.
        return Some(value.parse::<u64>().unwrap_or(u64::MAX / 1000).saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64;
    Some(at_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Attempt {
        Attempt::Status { status, retry_after: None }
    }

    fn retryable(v: Verdict) -> bool {
        matches!(v, Verdict::Retryable { .. })
    }

    #[test]
    fn success_statuses_are_delivered() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(&status(s), 0), Verdict::Delivered, "{s}");
        }
    }

    #[test]
    fn transient_failures_are_retryable() {
        assert!(retryable(classify(&Attempt::NetworkError, 0)));
        assert_eq!(
            classify(&Attempt::Timeout, 0),
            Verdict::Retryable { retry_after_ms: None, timed_out: true }
        );
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retryable(classify(&status(s), 0)), "{s}");
        }
    }

    #[test]
    fn everything_else_is_rejected() {
        for s in [100, 301, 302, 304, 307, 400, 401, 403, 404, 409, 413, 415, 422, 451] {
            assert_eq!(classify(&status(s), 0), Verdict::Rejected { status: s }, "{s}");
        }
    }

    #[test]
    fn retry_after_counts_on_429_and_503_only() {
        let with = |s: u16| Attempt::Status { status: s, retry_after: Some("7".into()) };
        let after = |v: Verdict| match v {
            Verdict::Retryable { retry_after_ms, .. } => retry_after_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(after(classify(&with(429), 0)), Some(7_000));
        assert_eq!(after(classify(&with(503), 0)), Some(7_000));
        assert_eq!(after(classify(&with(500), 0)), None);
        assert_eq!(after(classify(&with(408), 0)), None);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch.
        let now = 784_111_777_000;
        assert_eq!(parse_retry_after(Some("0"), now), Some(0));
        assert_eq!(parse_retry_after(Some(" 120 "), now), Some(120_000));
        assert_eq!(parse_retry_after(Some("Sun, 06 Nov 1994 08:49:47 GMT"), now), Some(10_000));
        assert_eq!(parse_retry_after(Some("Sun, 06 Nov 1994 08:49:27 GMT"), now), Some(0), "past date");
        assert_eq!(parse_retry_after(Some("99999999999999999999999"), now), Some(u64::MAX / 1000 * 1000));
    }

    #[test]
    fn malformed_retry_after_is_ignored() {
        for bad in ["", "soon", "-5", "1.5", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(Some(bad), 0), None, "{bad:?}");
        }
        assert_eq!(parse_retry_after(None, 0), None);
    }
}
