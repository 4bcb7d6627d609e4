//! The cache of built tiles: bounded by bytes, least recently used out first, keyed by layer,
//! tile and filter, and invalidated by area when reports or cases change there.
//!
//! A tile built while a change arrived may already be stale; `generation()` is read before the
//! build and `insert` refuses the tile if any invalidation happened since.

use super::{Layer, TileId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileKey {
    pub layer: Layer,
    pub tile: TileId,
    /// the canonical filter query (`TileFilter::query`)
    pub filter: String,
}

/// A built tile: the gzip-compressed MVT, its entity tag, and when it was built.
#[derive(Debug, Clone)]
pub struct CachedTile {
    pub gzip: Arc<Vec<u8>>,
    pub etag: String,
    pub built: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TileKey, (CachedTile, u64)>,
    /// last use → key, for eviction
    by_use: BTreeMap<u64, TileKey>,
    bytes: usize,
    tick: u64,
}

impl Inner {
    fn remove(&mut self, key: &TileKey) {
        if let Some((tile, used)) = self.entries.remove(key) {
            self.by_use.remove(&used);
            self.bytes -= tile.gzip.len();
        }
    }
}

pub struct TileCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters for tests and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl TileCache {
    pub fn new(max_bytes: usize) -> Self {
        TileCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &TileKey) -> Option<CachedTile> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let Some((tile, used)) = inner.entries.get_mut(key) else {
            drop(inner);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let old = std::mem::replace(used, tick);
        let tile = tile.clone();
        inner.by_use.remove(&old);
        inner.by_use.insert(tick, key.clone());
        drop(inner);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(tile)
    }

    /// Read before building a tile; pass to `insert`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps a tile built at `generation`, unless something was invalidated since; evicts the
    /// least recently used tiles to stay within the byte bound.
    pub fn insert(&self, key: TileKey, tile: CachedTile, generation: u64) {
        if tile.gzip.len() > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        // Checked under the lock that invalidation takes too.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        inner.remove(&key);
        inner.tick += 1;
        let tick = inner.tick;
        inner.bytes += tile.gzip.len();
        inner.by_use.insert(tick, key.clone());
        inner.entries.insert(key, (tile, tick));
        while inner.bytes > self.max_bytes {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some((t, _)) = inner.entries.remove(&oldest) {
                inner.bytes -= t.gzip.len();
            }
        }
    }

    /// Reports or cases changed inside `bbox` (lon/lat): drops the incident tiles that meet it,
    /// and every grid tile (a grid's figures show in every tile the grid crosses).
    pub fn invalidate_area(&self, bbox: [f64; 4]) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let stale: Vec<TileKey> = inner
            .entries
            .keys()
            .filter(|k| k.layer == Layer::Grids || k.tile.meets(bbox))
            .cloned()
            .collect();
        for key in stale {
            inner.remove(&key);
        }
    }

    /// Drops every tile of `layer` (boundaries were redrawn), or all (the change feed was lost).
    pub fn invalidate_layer(&self, layer: Option<Layer>) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let stale: Vec<TileKey> = inner
            .entries
            .keys()
            .filter(|k| layer.is_none_or(|l| k.layer == l))
            .cloned()
            .collect();
        for key in stale {
            inner.remove(&key);
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            entries: inner.entries.len(),
            bytes: inner.bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(layer: Layer, z: u8, lon: f64, lat: f64, filter: &str) -> TileKey {
        TileKey {
            layer,
            tile: TileId::containing(z, lon, lat),
            filter: filter.into(),
        }
    }

    fn tile(bytes: usize) -> CachedTile {
        CachedTile {
            gzip: Arc::new(vec![0; bytes]),
            etag: format!("\"{bytes}\""),
            built: std::time::Instant::now(),
        }
    }

    #[test]
    fn the_least_recently_used_tile_goes_first() {
        let cache = TileCache::new(300);
        let a = key(Layer::Incidents, 14, 106.84, 39.66, "");
        let b = key(Layer::Incidents, 14, 106.90, 39.66, "");
        let c = key(Layer::Incidents, 14, 106.96, 39.66, "");
        let g = cache.generation();
        cache.insert(a.clone(), tile(100), g);
        cache.insert(b.clone(), tile(100), g);
        assert!(cache.get(&a).is_some()); // a is now newer than b
        cache.insert(c.clone(), tile(150), g);
        assert!(cache.get(&a).is_some());
        assert!(cache.get(&b).is_none());
        assert!(cache.get(&c).is_some());
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes), (2, 250));
        assert_eq!((s.hits, s.misses), (3, 1));
    }

    #[test]
    fn a_change_drops_the_incident_tiles_over_it_and_every_grid_tile() {
        let cache = TileCache::new(1 << 20);
        let here = key(Layer::Incidents, 14, 106.84, 39.66, "");
        let here_filtered = key(Layer::Incidents, 14, 106.84, 39.66, "category=oil_smoke");
        let above = key(Layer::Incidents, 8, 106.84, 39.66, "");
        let elsewhere = key(Layer::Incidents, 14, 107.5, 39.66, "");
        let grids_elsewhere = key(Layer::Grids, 14, 107.5, 39.66, "");
        let g = cache.generation();
        for k in [&here, &here_filtered, &above, &elsewhere, &grids_elsewhere] {
            cache.insert(k.clone(), tile(10), g);
        }
        cache.invalidate_area([106.8401, 39.6601, 106.8402, 39.6602]);
        assert!(cache.get(&here).is_none());
        assert!(cache.get(&here_filtered).is_none());
        assert!(cache.get(&above).is_none());
        assert!(cache.get(&grids_elsewhere).is_none());
        assert!(cache.get(&elsewhere).is_some());
    }

    #[test]
    fn a_tile_built_across_a_change_is_not_kept() {
        let cache = TileCache::new(1 << 20);
        let k = key(Layer::Incidents, 14, 106.84, 39.66, "");
        let before = cache.generation();
        cache.invalidate_area([0.0, 0.0, 0.1, 0.1]);
        cache.insert(k.clone(), tile(10), before);
        assert!(cache.get(&k).is_none());
        cache.insert(k.clone(), tile(10), cache.generation());
        assert!(cache.get(&k).is_some());
        cache.invalidate_layer(None);
        assert!(cache.get(&k).is_none());
    }
}
