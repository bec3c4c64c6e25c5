//! The sim's notion of "now": the system clock plus an adjustable offset, so tests can move time
//! (replication, expiry, device codes) without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

#[derive(Debug)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn new(offset: Duration) -> Clock {
        Clock { offset_ms: AtomicI64::new(offset.whole_milliseconds() as i64) }
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        // An absurd offset (set over HTTP) must not panic: stay at the system time instead.
        now.checked_add(Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))).unwrap_or(now)
    }

    /// Milliseconds since the Unix epoch, as the sim sees it.
    pub(crate) fn now_ms(&self) -> i64 {
        (self.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    pub(crate) fn now_secs(&self) -> i64 {
        self.now().unix_timestamp()
    }

    pub(crate) fn advance(&self, by: Duration) {
        let by = by.whole_milliseconds().clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        let _ = self.offset_ms.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| Some(old.saturating_add(by)));
    }
}
