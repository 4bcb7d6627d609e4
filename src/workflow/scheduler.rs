//! The escalation scheduler: fires the steps of every whistle as they fall due. The deadlines
//! are rows in PostgreSQL, not timers in memory, so memory does not grow with the number of open
//! deadlines, and a crash or restart misses nothing: a step is fired in the same transaction
//! that marks it fired, so it fires exactly once, late rather than never.

use super::Gridwatch;
use std::time::Duration;
use tokio::sync::watch;

/// How often the scheduler looks for due steps when nothing wakes it earlier.
pub const TICK: Duration = Duration::from_millis(500);
/// How often uploads that no report took are looked for.
pub const PHOTO_SWEEP: Duration = Duration::from_secs(3600);

/// Runs until `stop` turns true. Advancing a controllable clock wakes it at once.
pub async fn run(gw: Gridwatch, mut stop: watch::Receiver<bool>) {
    let mut last_sweep: Option<tokio::time::Instant> = None;
    loop {
        // Uploads no report took are forgotten now and then.
        if last_sweep.is_none_or(|t| t.elapsed() >= PHOTO_SWEEP) {
            last_sweep = Some(tokio::time::Instant::now());
            match gw.sweep_photos().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(photos = n, "unattached photos removed"),
                Err(e) => tracing::warn!("photo sweep failed: {e}"),
            }
        }
        match gw.escalate_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(steps = n, "escalation steps fired"),
            Err(e) => tracing::warn!("escalation run failed, retrying: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = gw.clock.advanced() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
