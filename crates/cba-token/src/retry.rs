//! The token client's retry settings: cba-http's one policy, with a shorter deadline than Graph's.

use std::time::Duration;

use cba_http::RetryPolicy;

/// 6 attempts, 0.5 s doubling to 30 s, 90 s in all: a script waiting for a token should not hang for minutes.
pub(crate) fn default_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(30),
        deadline: Duration::from_secs(90),
        request_timeout: Duration::from_secs(30),
        jitter: true,
    }
}
