use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

/// A future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where time comes from: assertion timestamps, token expiry, retry deadlines and the waits between tries.
///
/// [`SystemClock`] is the real one; [`ManualClock`] lets tests jump through retries and polling without waiting.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time (UTC).
    fn now(&self) -> OffsetDateTime;
    /// Wait for `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The system clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to, or when something sleeps on it (the sleep returns at once and moves
/// the clock forward). It records every sleep, so tests can check backoff and `Retry-After` handling.
#[derive(Debug, Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: OffsetDateTime,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> ManualClock {
        ManualClock { state: Arc::new(Mutex::new(ManualState { now: start, sleeps: Vec::new() })) }
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut s = self.lock();
        s.now += by;
    }

    /// Set the time.
    pub fn set(&self, now: OffsetDateTime) {
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
    fn now(&self) -> OffsetDateTime {
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
