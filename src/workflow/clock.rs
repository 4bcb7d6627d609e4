//! The service's clock. Dispatch reads the time only from here, never from PostgreSQL's `now()`,
//! so that tests and demos can move time forward (a controllable clock) and watch escalation
//! cards fire, while production runs on the system clock.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// System time plus an offset that only a controllable clock lets anyone change. Cheap to clone.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    controllable: bool,
    offset_ms: AtomicI64,
    advanced: Notify,
}

/// The clock cannot be moved: it is the system clock, or the step was not forward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "the clock is the system clock; start the service with --controllable-clock to move it"
    )]
    NotControllable,
    #[error("the clock only moves forward, by at most a year at a time")]
    BadStep,
}

impl Clock {
    pub fn system() -> Self {
        Clock::new(false)
    }

    /// A clock that starts at system time and can be advanced with [`Clock::advance`].
    pub fn controllable() -> Self {
        Clock::new(true)
    }

    fn new(controllable: bool) -> Self {
        Clock {
            inner: Arc::new(Inner {
                controllable,
                offset_ms: AtomicI64::new(0),
                advanced: Notify::new(),
            }),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    pub fn is_controllable(&self) -> bool {
        self.inner.controllable
    }

    /// How far the clock is ahead of system time.
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.inner.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves a controllable clock forward by `by` and wakes whoever waits in [`Clock::advanced`].
    pub fn advance(&self, by: Duration) -> Result<DateTime<Utc>, ClockError> {
        if !self.inner.controllable {
            return Err(ClockError::NotControllable);
        }
        if by <= Duration::zero() || by > Duration::days(366) {
            return Err(ClockError::BadStep);
        }
        self.inner
            .offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
        self.inner.advanced.notify_waiters();
        Ok(self.now())
    }

    /// Resolves when the clock is next advanced (never, for the system clock).
    pub async fn advanced(&self) {
        self.inner.advanced.notified().await;
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_controllable_clock_moves_and_only_forward() {
        let system = Clock::system();
        assert_eq!(
            system.advance(Duration::hours(1)),
            Err(ClockError::NotControllable)
        );
        let c = Clock::controllable();
        let before = c.now();
        let after = c.advance(Duration::minutes(61)).unwrap();
        assert!(after - before >= Duration::minutes(61));
        assert_eq!(c.offset(), Duration::minutes(61));
        assert_eq!(c.advance(Duration::minutes(-5)), Err(ClockError::BadStep));
        assert_eq!(c.clone().offset(), Duration::minutes(61), "clones share it");
    }
}
