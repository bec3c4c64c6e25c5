use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use time::OffsetDateTime;

/// When to retry a token request: 429, 5xx, `temporarily_unavailable`, timeouts and connection failures.
///
/// Waits grow exponentially from `initial_backoff` to `max_backoff` with jitter; a `Retry-After` header is
/// honoured (plus a little jitter). Nothing is retried past `deadline` after the first request: if the next wait
/// would cross it, the call gives up at once with [`Error::GaveUp`](crate::Error::GaveUp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests at most (1 = no retries).
    pub max_attempts: u32,
    /// First wait.
    pub initial_backoff: Duration,
    /// Longest computed wait (a longer `Retry-After` is still honoured, within the deadline).
    pub max_backoff: Duration,
    /// Total time budget, measured on the client's [`Clock`](crate::Clock).
    pub deadline: Duration,
    /// Timeout of each HTTP request (also bounded by what is left of the deadline).
    pub request_timeout: Duration,
    /// Randomise waits (on by default: many scripts starting together should not retry in step).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            deadline: Duration::from_secs(90),
            request_timeout: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The wait after failed attempt number `attempt` (1-based), `Retry-After` taking precedence.
    pub(crate) fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            // Honour the server; add up to 10 % (at most 1 s) so a crowd does not come back in the same instant.
            let extra =
                if self.jitter { random_up_to((after / 10).min(Duration::from_secs(1))) } else { Duration::ZERO };
            return after + extra;
        }
        let exp = attempt.saturating_sub(1).min(20);
        let base = self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff);
        if self.jitter {
            // "Equal jitter": half fixed, half random.
            base / 2 + random_up_to(base / 2)
        } else {
            base
        }
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some((when - now).try_into().unwrap_or(Duration::ZERO))
}

/// A uniformly random duration in `[0, max]`, from the standard library's per-process random hash keys.
fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    let r = h.finish();
    let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(r % (nanos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            jitter: false,
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (1..=5).map(|a| p.wait(a, None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(p.wait(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
    }

    #[test]
    fn jitter_stays_in_range() {
        let p = RetryPolicy { initial_backoff: Duration::from_secs(4), ..RetryPolicy::default() };
        for _ in 0..100 {
            let w = p.wait(1, None);
            assert!(w >= Duration::from_secs(2) && w <= Duration::from_secs(4), "{w:?}");
            let w = p.wait(1, Some(Duration::from_secs(20)));
            assert!(w >= Duration::from_secs(20) && w <= Duration::from_secs(21), "{w:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = OffsetDateTime::from_unix_timestamp(1_445_412_470).unwrap(); // 2015-10-21 07:27:50 UTC
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
