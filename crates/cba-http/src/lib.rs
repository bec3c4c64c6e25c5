#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;

/// How hard to try before giving up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff when the server gives no `Retry-After`.
    pub initial_backoff: Duration,
    /// The longest single wait (also caps `Retry-After`).
    pub max_backoff: Duration,
    /// The whole operation, waits included, ends by then.
    pub deadline: Duration,
    /// Randomise each backoff between 50% and 100% of its value (spreads out clients retrying together).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 16,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            deadline: Duration::from_secs(300),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// Same shape, scaled down for tests and the simulator: 10 ms doubling to 200 ms, 10 s deadline.
    pub fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 16,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            deadline: Duration::from_secs(10),
            jitter: false,
        }
    }

    /// Set the deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1), given the server's `Retry-After`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_backoff);
        }
        let exp = self.initial_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        if self.jitter { capped.mul_f64(0.5 + 0.5 * random_unit()) } else { capped }
    }
}

fn random_unit() -> f64 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// What the caller's classifier says about one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stop here (success, or a failure retrying cannot fix).
    Done,
    /// Try again, after the server's `Retry-After` if it gave one.
    Retry {
        /// The server's `Retry-After`.
        after: Option<Duration>,
        /// Why, for logs and progress lines ("429 throttled", "503", "AADSTS700016: not replicated yet").
        reason: String,
    },
}

/// Reported before each wait.
#[derive(Debug, Clone)]
pub struct RetryEvent {
    /// The attempt that just failed (from 1).
    pub attempt: u32,
    /// How long we wait now.
    pub wait: Duration,
    /// The classifier's reason.
    pub reason: String,
    /// Time spent so far.
    pub elapsed: Duration,
}

/// Run `op` until the classifier says [`Verdict::Done`], attempts run out, or the next wait would pass
/// the deadline. Returns the last outcome; `on_retry` sees every wait.
pub async fn with_retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    mut op: F,
    classify: impl Fn(&Result<T, E>) -> Verdict,
    mut on_retry: impl FnMut(&RetryEvent),
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = tokio::time::Instant::now();
    let mut attempt = 1;
    loop {
        let outcome = op(attempt).await;
        let Verdict::Retry { after, reason } = classify(&outcome) else { return outcome };
        let wait = policy.backoff(attempt, after);
        let elapsed = start.elapsed();
        if attempt >= policy.max_attempts || elapsed + wait > policy.deadline {
            tracing::debug!(attempt, ?elapsed, %reason, "giving up: retry budget spent");
            return outcome;
        }
        let event = RetryEvent { attempt, wait, reason, elapsed };
        tracing::debug!(attempt, ?wait, reason = %event.reason, "retrying");
        on_retry(&event);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Parse `Retry-After` (delta-seconds, or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(value, &format).ok()?;
    let delta = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// Whether a status is worth retrying on its own: 408, 429 and 5xx except 501/505.
pub fn is_transient_status(status: reqwest::StatusCode) -> bool {
    status.as_u16() == 408
        || status.as_u16() == 429
        || (status.is_server_error() && ![501, 505].contains(&status.as_u16()))
}

/// Whether a transport error is worth retrying (timeouts, connection resets).
pub fn is_transient_error(error: &reqwest::Error) -> bool {
    error.is_timeout() || error.is_connect() || error.is_request()
}

/// Refused endpoint URL.
#[derive(Debug, thiserror::Error)]
#[error("{url} is not allowed: {reason}")]
pub struct InsecureEndpoint {
    /// The URL as given.
    pub url: String,
    /// Why.
    pub reason: &'static str,
}

/// HTTPS only, except loopback hosts (127.0.0.0/8, ::1, `localhost`), where the simulator runs.
pub fn check_endpoint(url: &str) -> Result<url::Url, InsecureEndpoint> {
    let parsed = url::Url::parse(url).map_err(|_| InsecureEndpoint {
        url: url.to_string(),
        reason: "not an absolute URL (e.g. https://login.microsoftonline.com)",
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err(InsecureEndpoint {
            url: url.to_string(),
            reason: "plain http is only accepted for loopback hosts (127.0.0.1, ::1, localhost); use https",
        }),
        _ => Err(InsecureEndpoint { url: url.to_string(), reason: "only https URLs are accepted" }),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A fresh `client-request-id` (GUID).
pub fn client_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The time source: the system clock, or a fixed offset from it (tests, the simulator's skew knob).
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset_secs: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system clock shifted by `secs` (positive: ahead).
    pub fn offset(secs: i64) -> Clock {
        Clock { offset_secs: secs }
    }

    /// Now, per this clock.
    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_secs)
    }
}

/// A boxed error from a [`TokenSource`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a client gets its bearer token. Called before every request, so implementations cache and renew
/// (a long Exchange listing outlives a token). `cba-token` implements it for certificate credentials.
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// A token valid for at least the next few minutes.
    fn token(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>>;

    /// The service rejected the last token as expired or invalid: forget any cached copy.
    fn invalidate(&self) {}
}

/// A fixed token (an admin's `CBA_GRAPH_TOKEN`, a test). `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// Wrap a token.
    pub fn new(token: impl Into<String>) -> StaticToken {
        StaticToken(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken([redacted])")
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// Redact a bearer token or assertion for logs: the first 8 characters and a length.
pub fn redact(secret: &str) -> String {
    let head: String = secret.chars().take(8).collect();
    format!("{head}…[redacted, {} chars]", secret.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_honours_retry_after() {
        let p = RetryPolicy { jitter: false, ..RetryPolicy::default() };
        let waits: Vec<u64> = (1..=8).map(|a| p.backoff(a, None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.backoff(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(p.backoff(1, Some(Duration::from_secs(600))), Duration::from_secs(60));
        let j = RetryPolicy::default();
        for _ in 0..50 {
            let w = j.backoff(3, None);
            assert!(w >= Duration::from_secs(2) && w <= Duration::from_secs(4), "{w:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "12".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn endpoints() {
        assert!(check_endpoint("https://login.microsoftonline.com").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://127.5.5.5").is_ok());
        assert!(check_endpoint("http://[::1]:99").is_ok());
        assert!(check_endpoint("http://localhost:1").is_ok());
        assert!(check_endpoint("http://login.microsoftonline.com").is_err());
        assert!(check_endpoint("http://10.0.0.1").is_err());
        assert!(check_endpoint("ftp://127.0.0.1").is_err());
        assert!(check_endpoint("login.microsoftonline.com").is_err());
    }

    #[tokio::test]
    async fn with_retry_stops_on_done_attempts_and_deadline() {
        let p = RetryPolicy::fast();
        let mut seen = Vec::new();
        let out: Result<u32, u32> = with_retry(
            &p,
            |a| async move { if a < 3 { Err(a) } else { Ok(a) } },
            |r| if r.is_err() { Verdict::Retry { after: None, reason: "e".into() } } else { Verdict::Done },
            |e| seen.push(e.attempt),
        )
        .await;
        assert_eq!(out, Ok(3));
        assert_eq!(seen, [1, 2]);

        let p = RetryPolicy { max_attempts: 4, ..RetryPolicy::fast() };
        let out: Result<u32, u32> =
            with_retry(&p, |a| async move { Err(a) }, |_| Verdict::Retry { after: None, reason: "e".into() }, |_| {})
                .await;
        assert_eq!(out, Err(4), "the last outcome after max_attempts");

        let p = RetryPolicy { deadline: Duration::from_millis(30), ..RetryPolicy::fast() };
        let started = std::time::Instant::now();
        let out: Result<u32, u32> = with_retry(
            &p,
            |a| async move { Err(a) },
            |_| Verdict::Retry { after: Some(Duration::from_millis(20)), reason: "429".into() },
            |_| {},
        )
        .await;
        assert_eq!(out, Err(2), "a third attempt would pass the deadline");
        assert!(started.elapsed() < Duration::from_millis(200));
    }
}
