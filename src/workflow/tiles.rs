//! Serving vector tiles: from the cache, or built in PostGIS, gzip-compressed and tagged; and the
//! task that follows the database's change feed to drop what changed: the tiles over each area
//! named on `gridwatch_tiles` (migration 0011), the remembered credentials on `gridwatch_accounts`
//! (migration 0015).

use super::{Gridwatch, Result};
use crate::tiles::cache::{CachedTile, TileCache, TileKey};
use crate::tiles::{Layer, TileFilter, TileId};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of compressed tiles kept.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The notification channel of migration 0011.
pub const CHANNEL: &str = "gridwatch_tiles";
/// The notification channel of migration 0015.
pub const ACCOUNTS_CHANNEL: &str = "gridwatch_accounts";
/// Grid figures count cases overdue by the clock, which moves without any write: a grid tile is
/// rebuilt after this long even if nothing changed.
pub const GRID_TILE_TTL: Duration = Duration::from_secs(60);

/// A tile ready to send.
#[derive(Debug, Clone)]
pub struct Tile {
    pub gzip: Arc<Vec<u8>>,
    pub etag: String,
    pub from_cache: bool,
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 2 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(bytes)?;
    enc.finish()
}

impl Gridwatch {
    /// One tile of `layer` under `filter` (normalised by the caller).
    /// `public`: the view for callers who are not logged in (see [`crate::tiles::PUBLIC_MIN_COUNT`]).
    pub async fn tile(
        &self,
        layer: Layer,
        tile: TileId,
        filter: &TileFilter,
        public: bool,
    ) -> Result<Tile> {
        let key = TileKey {
            layer,
            tile,
            filter: if public {
                format!("public;{}", filter.query())
            } else {
                filter.query()
            },
        };
        if let Some(hit) = self.tiles.get(&key) {
            let fresh = layer != Layer::Grids || hit.built.elapsed() < GRID_TILE_TTL;
            if fresh {
                return Ok(Tile {
                    gzip: hit.gzip,
                    etag: hit.etag,
                    from_cache: true,
                });
            }
        }
        let generation = self.tiles.generation();
        let mvt = match layer {
            Layer::Incidents => self.db.incidents_tile(tile, filter, public).await?,
            Layer::Grids => {
                self.db
                    .grids_tile(tile, filter, self.clock.now(), public)
                    .await?
            }
        };
        let (gzip, etag) = tokio::task::spawn_blocking(move || {
            let digest = Sha256::digest(&mvt);
            let etag = hex::encode(&digest[..12]);
            gzip(&mvt).map(|g| (g, format!("\"{etag}\"")))
        })
        .await
        .map_err(|e| super::WorkflowError::Unavailable(format!("compressing a tile: {e}")))?
        .map_err(|e| super::WorkflowError::Unavailable(format!("compressing a tile: {e}")))?;
        let gzip = Arc::new(gzip);
        self.tiles.insert(
            key,
            CachedTile {
                gzip: gzip.clone(),
                etag: etag.clone(),
                built: Instant::now(),
            },
            generation,
        );
        Ok(Tile {
            gzip,
            etag,
            from_cache: false,
        })
    }

    /// The lon/lat box of the current boundaries, for TileJSON.
    pub async fn map_bounds(&self) -> Result<Option<[f64; 4]>> {
        Ok(self.db.current_bounds().await?)
    }
}

/// Applies one notification payload of migration 0011 to the cache.
pub fn apply_change(cache: &TileCache, payload: &str) {
    #[derive(serde::Deserialize)]
    struct Change {
        table: String,
        bbox: Option<[f64; 4]>,
    }
    match serde_json::from_str::<Change>(payload) {
        Ok(Change {
            bbox: Some(bbox), ..
        }) => cache.invalidate_area(bbox),
        Ok(Change { table, bbox: None }) if table == "region_version" => {
            cache.invalidate_layer(Some(Layer::Grids))
        }
        // Something unexpected: forget everything rather than serve a stale tile.
        _ => cache.invalidate_layer(None),
    }
}

/// Drops what one notification names: tiles over an area, or every remembered credential.
fn apply_notification(gw: &Gridwatch, channel: &str, payload: &str) {
    if channel == ACCOUNTS_CHANNEL {
        gw.credentials.invalidate_all();
    } else {
        apply_change(&gw.tiles, payload);
    }
}

/// Forgets everything a missed notification could have changed.
fn forget_all(gw: &Gridwatch) {
    gw.tiles.invalidate_layer(None);
    gw.credentials.invalidate_all();
}

/// Follows the change feed until `stop`: each notification drops the tiles over its area, or the
/// remembered credentials. When the feed is lost (and so notifications may have been missed) the
/// whole tile cache and every credential are dropped.
pub async fn follow_changes(gw: Gridwatch, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let mut listener = match gw.db.listen(&[CHANNEL, ACCOUNTS_CHANNEL]).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("change feed unavailable, retrying: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        // Whatever was cached before listening may have missed a change.
        forget_all(&gw);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                n = listener.try_recv() => match n {
                    Ok(Some(n)) => apply_notification(&gw, n.channel(), n.payload()),
                    Ok(None) => {
                        tracing::warn!("change feed reconnected; dropping all cached tiles and credentials");
                        forget_all(&gw);
                    }
                    Err(e) => {
                        tracing::warn!("change feed lost: {e}");
                        forget_all(&gw);
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_drop_what_they_name() {
        let cache = TileCache::new(1 << 20);
        let here = TileKey {
            layer: Layer::Incidents,
            tile: TileId::containing(14, 106.84, 39.66),
            filter: String::new(),
        };
        let grid = TileKey {
            layer: Layer::Grids,
            ..here.clone()
        };
        let put = |k: &TileKey| {
            cache.insert(
                k.clone(),
                CachedTile {
                    gzip: Arc::new(vec![1]),
                    etag: "\"x\"".into(),
                    built: Instant::now(),
                },
                cache.generation(),
            )
        };
        put(&here);
        put(&grid);
        apply_change(&cache, r#"{"table": "region_version"}"#);
        assert!(cache.get(&here).is_some() && cache.get(&grid).is_none());
        put(&grid);
        apply_change(&cache, r#"{"table": "report", "bbox": [120, 30, 121, 31]}"#);
        assert!(cache.get(&here).is_some() && cache.get(&grid).is_none());
        apply_change(
            &cache,
            r#"{"table": "report", "bbox": [106.84, 39.66, 106.84, 39.66]}"#,
        );
        assert!(cache.get(&here).is_none());
        put(&here);
        apply_change(&cache, "not json");
        assert!(cache.get(&here).is_none());
    }
}
