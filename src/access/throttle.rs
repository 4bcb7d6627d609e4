//! Fixed-window counters per key (a client address, a username): public submissions and login
//! attempts. In memory and per process: a replica behind a load balancer counts its own share,
//! which bounds abuse without a shared store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` events per `window` for each key.
pub struct Throttle {
    limit: u32,
    window: Duration,
    /// most keys tracked at once; the oldest windows are dropped first when full
    capacity: usize,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        Throttle {
            limit,
            window,
            capacity,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an event for `key`: `Ok` while under the limit, else `Err(retry after)`.
    pub fn hit(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= self.capacity && !counts.contains_key(key) {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            if counts.len() >= self.capacity {
                // Still full of live windows: drop the oldest half.
                let mut starts: Vec<Instant> = counts.values().map(|(s, _)| *s).collect();
                starts.sort();
                let cut = starts[starts.len() / 2];
                counts.retain(|_, (start, _)| *start > cut);
            }
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Forgets `key` (a successful login clears its failures).
    pub fn clear(&self, key: &str) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Whether `key` is at its limit now, without counting.
    pub fn is_blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (start, n) = counts.get(key)?;
        let age = now.duration_since(*start);
        (age < self.window && *n >= self.limit).then(|| self.window.saturating_sub(age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_per_key_and_resets_after_the_window() {
        let t = Throttle::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(t.hit("a", t0).is_ok());
        }
        let wait = t.hit("a", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.is_blocked("a", t0).is_some());
        assert!(t.hit("b", t0).is_ok());
        assert!(t.hit("a", t0 + Duration::from_secs(61)).is_ok());
        t.clear("a");
        assert!(t.is_blocked("a", t0).is_none());
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let t = Throttle::new(1, Duration::from_secs(60), 1000);
        let t0 = Instant::now();
        for i in 0..10_000 {
            let _ = t.hit(&format!("client-{i}"), t0 + Duration::from_millis(i));
        }
        assert!(t.counts.lock().unwrap().len() <= 1000);
    }
}
