//! Whether the database can be reached, as a circuit breaker: while it is known to be down,
//! requests that need it are answered 503 at once instead of each waiting out the pool's acquire
//! timeout, and a watcher probes it until it answers again.
//!
//! Only the watcher's probe decides; it runs on a connection of its own, so a pool busy with
//! load does not pass for a database that is down. A request that fails with a connection
//! error merely wakes the watcher ([`DbHealth::suspect`]), so one dropped connection does not
//! open the breaker, and a database that is back closes it within one probe interval.

use super::Db;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How long a probe may take before the database counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the database is probed while it answers.
pub const PROBE_WHILE_UP: Duration = Duration::from_secs(2);
/// How often the database is probed while it does not.
pub const PROBE_WHILE_DOWN: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct DbHealth {
    down: AtomicBool,
    /// when the current outage was first seen
    since: Mutex<Option<Instant>>,
    wake: Notify,
}

impl DbHealth {
    /// True while the last probe failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// How long the database has been down, when it is.
    pub fn down_for(&self) -> Option<Duration> {
        self.since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|t| t.elapsed())
    }

    /// A request saw a connection error: probe now rather than at the next interval.
    pub fn suspect(&self) {
        self.wake.notify_one();
    }

    fn record(&self, up: bool) -> Transition {
        let was_down = self.down.swap(!up, Ordering::AcqRel);
        let mut since = self
            .since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (was_down, up) {
            (false, false) => {
                *since = Some(Instant::now());
                Transition::WentDown
            }
            (true, true) => {
                let outage = since.take().map(|t| t.elapsed()).unwrap_or_default();
                Transition::CameBack(outage)
            }
            _ => Transition::Same,
        }
    }
}

enum Transition {
    Same,
    WentDown,
    CameBack(Duration),
}

/// One probe on the watcher's own connection, made (again) when there is none: a pool whose
/// connections are all busy is load, not an outage, so the probe never waits for the pool.
async fn probe(db: &Db, conn: &mut Option<sqlx::PgConnection>) -> bool {
    use sqlx::{ConnectOptions, Connection};
    let answered = tokio::time::timeout(PROBE_TIMEOUT, async {
        if conn.is_none() {
            *conn = Some(db.options().connect().await?);
        }
        match conn.as_mut() {
            Some(c) => c.ping().await,
            None => Ok(()),
        }
    })
    .await;
    let up = matches!(answered, Ok(Ok(())));
    if !up {
        // A broken or timed-out connection is not reused.
        if let Some(c) = conn.take() {
            drop(tokio::time::timeout(PROBE_TIMEOUT, c.close()).await);
        }
    }
    up
}

/// Probes the database until `stop` turns true, keeping `db.health()` true to what it sees.
pub async fn watch(db: Db, mut stop: watch::Receiver<bool>) {
    let mut conn: Option<sqlx::PgConnection> = None;
    loop {
        let up = probe(&db, &mut conn).await;
        match db.health().record(up) {
            Transition::WentDown => tracing::error!(
                "the database does not answer; requests that need it get 503 until it does"
            ),
            Transition::CameBack(outage) => tracing::warn!(
                outage_s = outage.as_secs_f64(),
                "the database answers again"
            ),
            Transition::Same => {}
        }
        let interval = if up { PROBE_WHILE_UP } else { PROBE_WHILE_DOWN };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = db.health().wake.notified(), if up => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    if let Some(c) = conn {
        use sqlx::Connection;
        drop(tokio::time::timeout(PROBE_TIMEOUT, c.close()).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_reported_and_the_outage_is_timed() {
        let h = DbHealth::default();
        assert!(!h.is_down());
        assert!(matches!(h.record(true), Transition::Same));
        assert!(matches!(h.record(false), Transition::WentDown));
        assert!(h.is_down());
        assert!(h.down_for().is_some());
        assert!(matches!(h.record(false), Transition::Same));
        assert!(matches!(h.record(true), Transition::CameBack(_)));
        assert!(!h.is_down());
        assert!(h.down_for().is_none());
    }
}
