#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;

mod config;
mod tls;

pub use config::{Error, HttpConfig};
pub use tls::{TlsFailure, TlsFailureKind, find_tls_failure, tls_failure};

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
    /// Randomise each backoff between 50% and 100% of its value, and add up to 10% (at most 1 s) to a
    /// `Retry-After` (spreads out clients retrying together).
    pub jitter: bool,
    /// Timeout of each single request (also bounded by what is left of the deadline).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 16,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            deadline: Duration::from_secs(300),
            jitter: true,
            request_timeout: Duration::from_secs(30),
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
            request_timeout: Duration::from_secs(5),
        }
    }

    /// The timeout for one request when `elapsed` of the deadline is spent (at least 100 ms).
    pub fn request_timeout_after(&self, elapsed: Duration) -> Duration {
        self.request_timeout.min(self.deadline.saturating_sub(elapsed)).max(Duration::from_millis(100))
    }

    /// Set the deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1), given the server's `Retry-After`.
    /// A `Retry-After` is honoured as given (the deadline still bounds the whole operation).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            let extra = if self.jitter {
                (after / 10).min(Duration::from_secs(1)).mul_f64(random_unit())
            } else {
                Duration::ZERO
            };
            return after + extra;
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

/// How a retried operation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryStats {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Time spent, waits included.
    pub elapsed: Duration,
    /// The classifier still wanted a retry, but attempts or the deadline ran out.
    pub gave_up: bool,
}

/// Run `op` until the classifier says [`Verdict::Done`], attempts run out, or the next wait would pass
/// the deadline. Returns the last outcome; `on_retry` sees every wait. Time and waits come from the system.
pub async fn with_retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    op: F,
    classify: impl Fn(&Result<T, E>) -> Verdict,
    on_retry: impl FnMut(&RetryEvent),
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    with_retry_on(&SystemClock, policy, op, classify, on_retry).await.0
}

/// [`with_retry`] on a given [`Clock`] (tests use [`ManualClock`] and never wait), also returning
/// [`RetryStats`] so a caller can report "gave up after N attempts".
pub async fn with_retry_on<T, E, F, Fut>(
    clock: &dyn Clock,
    policy: &RetryPolicy,
    mut op: F,
    classify: impl Fn(&Result<T, E>) -> Verdict,
    mut on_retry: impl FnMut(&RetryEvent),
) -> (Result<T, E>, RetryStats)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    with_retry_attempts(clock, policy, |attempt| op(attempt.number), classify, |event, _| on_retry(event)).await
}

/// One try of a retried operation, as [`with_retry_attempts`] hands it to the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// From 1.
    pub number: u32,
    /// The limit for this try's request: the policy's `request_timeout`, capped by what is left of its
    /// deadline (at least 100 ms), so no single request outlives the operation. Give it to
    /// `reqwest::RequestBuilder::timeout`.
    pub timeout: Duration,
}

/// [`with_retry_on`], telling the operation each [`Attempt`]'s request timeout, and `on_retry` the failed
/// outcome it is about to retry as well as the wait. HTTP clients use this one.
pub async fn with_retry_attempts<T, E, F, Fut>(
    clock: &dyn Clock,
    policy: &RetryPolicy,
    mut op: F,
    classify: impl Fn(&Result<T, E>) -> Verdict,
    mut on_retry: impl FnMut(&RetryEvent, &Result<T, E>),
) -> (Result<T, E>, RetryStats)
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = clock.now();
    let elapsed = || Duration::try_from(clock.now() - start).unwrap_or(Duration::ZERO);
    let mut attempt = 1;
    loop {
        let outcome = op(Attempt { number: attempt, timeout: policy.request_timeout_after(elapsed()) }).await;
        let Verdict::Retry { after, reason } = classify(&outcome) else {
            return (outcome, RetryStats { attempts: attempt, elapsed: elapsed(), gave_up: false });
        };
        let wait = policy.backoff(attempt, after);
        let spent = elapsed();
        if attempt >= policy.max_attempts || spent + wait > policy.deadline {
            tracing::debug!(attempt, ?spent, %reason, "giving up: retry budget spent");
            let gave_up = policy.max_attempts > 1;
            return (outcome, RetryStats { attempts: attempt, elapsed: spent, gave_up });
        }
        let event = RetryEvent { attempt, wait, reason, elapsed: spent };
        tracing::debug!(attempt, ?wait, reason = %event.reason, "retrying");
        on_retry(&event, &outcome);
        clock.sleep(wait).await;
        attempt += 1;
    }
}

/// Parse `Retry-After` (delta-seconds, or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?, time::OffsetDateTime::now_utc())
}

/// Parse a `Retry-After` value (delta-seconds, or an HTTP date relative to `now`; a past date means now).
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// Whether a status is worth retrying on its own: 408, 429 and 5xx except 501/505.
pub fn is_transient_status(status: reqwest::StatusCode) -> bool {
    status.as_u16() == 408
        || status.as_u16() == 429
        || (status.is_server_error() && ![501, 505].contains(&status.as_u16()))
}

/// Whether a transport error is worth retrying (timeouts, connection resets). A refused server certificate
/// ([`tls_failure`]) is not, although reqwest reports it as a connect error: it fails the same way every time.
///
/// A refused connection is not either: nothing listens at that address (a wrong URL, a proxy that is down, a
/// simulator that is not running), and waiting minutes for it helps no one. Every client fails at once on it.
pub fn is_transient_error(error: &reqwest::Error) -> bool {
    (error.is_timeout() || error.is_connect() || error.is_request())
        && tls_failure(error).is_none()
        && !is_connection_refused(error)
}

/// Whether the connection was refused (an `io::ErrorKind::ConnectionRefused` somewhere in the chain).
pub fn is_connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        source = e.source();
    }
    false
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

/// A future returned by [`Clock::sleep`].
pub type Sleep = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where time comes from: timestamps, expiry, retry deadlines and the waits between tries.
///
/// [`SystemClock`] is the real one; [`ManualClock`] lets tests jump through retries and polling without waiting.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time (UTC).
    fn now(&self) -> time::OffsetDateTime;
    /// Wait for `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The system clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to, or when something sleeps on it (the sleep returns at once and moves
/// the clock forward). It records every sleep, so tests can check backoff and `Retry-After` handling.
#[derive(Debug, Clone)]
pub struct ManualClock {
    state: std::sync::Arc<std::sync::Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: time::OffsetDateTime,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: time::OffsetDateTime) -> ManualClock {
        ManualClock {
            state: std::sync::Arc::new(std::sync::Mutex::new(ManualState { now: start, sleeps: Vec::new() })),
        }
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        self.lock().now += by;
    }

    /// Set the time.
    pub fn set(&self, now: time::OffsetDateTime) {
        self.lock().now = now;
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A panic elsewhere must not hide the clock from the test's assertions.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> time::OffsetDateTime {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        {
            let mut s = self.lock();
            s.now += duration;
            s.sleeps.push(duration);
        }
        Box::pin(std::future::ready(()))
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
        assert_eq!(p.backoff(1, Some(Duration::from_secs(600))), Duration::from_secs(600), "the server knows best");
        let j = RetryPolicy::default();
        for _ in 0..50 {
            let w = j.backoff(3, None);
            assert!(w >= Duration::from_secs(2) && w <= Duration::from_secs(4), "{w:?}");
            let w = j.backoff(1, Some(Duration::from_secs(20)));
            assert!(w >= Duration::from_secs(20) && w <= Duration::from_secs(21), "{w:?}");
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
        let now = time::OffsetDateTime::from_unix_timestamp(1_445_412_470).unwrap(); // 2015-10-21 07:27:50 UTC
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(10)));
    }

    #[tokio::test]
    async fn manual_clock_retries_without_waiting_and_reports_stats() {
        let clock = ManualClock::new(time::OffsetDateTime::UNIX_EPOCH);
        let p = RetryPolicy { jitter: false, deadline: Duration::from_secs(10), ..RetryPolicy::default() };
        let started = std::time::Instant::now();
        let (out, stats): (Result<u32, u32>, _) = with_retry_on(
            &clock,
            &p,
            |a| async move { Err(a) },
            |_| Verdict::Retry { after: None, reason: "503".into() },
            |_| {},
        )
        .await;
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(clock.sleeps(), [1, 2, 4].map(Duration::from_secs), "1+2+4 = 7 s; 8 more would pass 10 s");
        assert_eq!(out, Err(4));
        assert_eq!(stats, RetryStats { attempts: 4, elapsed: Duration::from_secs(7), gave_up: true });
    }

    #[tokio::test]
    async fn each_attempt_gets_what_is_left_of_the_deadline_and_on_retry_sees_the_failure() {
        let clock = ManualClock::new(time::OffsetDateTime::UNIX_EPOCH);
        let p = RetryPolicy {
            jitter: false,
            deadline: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let mut timeouts = Vec::new();
        let mut failures = Vec::new();
        let (out, _): (Result<u32, u32>, _) = with_retry_attempts(
            &clock,
            &p,
            |a| {
                timeouts.push(a.timeout.as_secs());
                async move { Err(a.number) }
            },
            |_| Verdict::Retry { after: None, reason: "503".into() },
            |_, outcome| failures.push(*outcome),
        )
        .await;
        assert_eq!(out, Err(4));
        assert_eq!(timeouts, [5, 5, 5, 3], "tries at 0, 1, 3 and 7 s of a 10 s deadline");
        assert_eq!(failures, [Err(1), Err(2), Err(3)]);
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
        let p = RetryPolicy::fast();
        assert_eq!(p.request_timeout_after(Duration::from_secs(9)), Duration::from_secs(1));
        assert_eq!(p.request_timeout_after(Duration::from_secs(11)), Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_millis(200));
    }
}
