//! Vector tiles of incidents and grids: tile addressing in Web Mercator, the filters a tile
//! request may carry, how incidents are aggregated at each zoom, and the bounded cache of built
//! tiles with its invalidation by area, and the reports' quadkeys ([`quadkey`]) with the MVT of
//! weighted cells. Pure: the tiles' reports are read by `storage::tiles`, and tiles are served by
//! `http::tiles`.

pub mod cache;
pub mod quadkey;

use chrono::{DateTime, Utc};
use std::fmt;

/// Deepest zoom served.
pub const MAX_ZOOM: u8 = 22;
/// From this zoom on, incidents are raw points; below it, weighted cells.
pub const RAW_FROM_ZOOM: u8 = 15;
/// Cells per tile side when incidents are aggregated: at most 128² = 16,384 features a tile.
pub const CELLS_PER_SIDE: u32 = 128;
/// A raw tile with more incidents than this is sent as fine cells instead (256² at most).
pub const MAX_RAW_FEATURES: usize = 50_000;
/// The public (not logged-in) map: no cell or grid figure from fewer reports than this.
pub const PUBLIC_MIN_COUNT: i64 = 3;
/// The public map's smallest cell, in Web Mercator metres (about 150 m on the ground in Wuhai):
/// locations are never shown finer than that.
pub const PUBLIC_CELL_M: f64 = 200.0;
/// MVT extent (coordinate units per tile side) and the buffer around a tile, in those units.
pub const EXTENT: u32 = 4096;
pub const BUFFER: u32 = 64;

/// Half the Web Mercator world's width, in metres.
const ORIGIN_SHIFT: f64 = 20_037_508.342_789_244;

/// A tile address `z/x/y` (XYZ scheme, y from the north), checked to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTile(pub String);

impl fmt::Display for BadTile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TileId {
    pub fn new(z: u32, x: u32, y: u32) -> Result<Self, BadTile> {
        if z > MAX_ZOOM as u32 {
            return Err(BadTile(format!(
                "zoom {z} is above the deepest, {MAX_ZOOM}"
            )));
        }
        let n = 1u64 << z;
        if x as u64 >= n || y as u64 >= n {
            return Err(BadTile(format!(
                "tile {z}/{x}/{y} does not exist: at zoom {z} x and y are below {n}"
            )));
        }
        Ok(TileId { z: z as u8, x, y })
    }

    /// The tile's width in Web Mercator metres.
    pub fn width_m(self) -> f64 {
        2.0 * ORIGIN_SHIFT / (1u64 << self.z) as f64
    }

    /// The edge of an aggregation cell at this zoom, in Web Mercator metres (`None`: raw points).
    pub fn cell_m(self) -> Option<f64> {
        (self.z < RAW_FROM_ZOOM).then(|| self.width_m() / CELLS_PER_SIDE as f64)
    }

    /// Bounds in lon/lat degrees: `[west, south, east, north]`.
    pub fn bounds(self) -> [f64; 4] {
        let w = self.width_m();
        let x0 = -ORIGIN_SHIFT + self.x as f64 * w;
        let y1 = ORIGIN_SHIFT - self.y as f64 * w;
        let (west, north) = mercator_to_lonlat(x0, y1);
        let (east, south) = mercator_to_lonlat(x0 + w, y1 - w);
        [west, south, east, north]
    }

    /// The tile at zoom `z` holding a point.
    pub fn containing(z: u8, lon: f64, lat: f64) -> TileId {
        let n = (1u64 << z) as f64;
        let lat = lat.clamp(-85.051_128_78, 85.051_128_78).to_radians();
        let x = ((lon + 180.0) / 360.0 * n).floor().clamp(0.0, n - 1.0);
        let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n)
            .floor()
            .clamp(0.0, n - 1.0);
        TileId {
            z,
            x: x as u32,
            y: y as u32,
        }
    }

    /// Whether the tile (with its buffer, as features near an edge are drawn in both tiles)
    /// meets a lon/lat box.
    pub fn meets(self, bbox: [f64; 4]) -> bool {
        let [w, s, e, n] = self.bounds();
        let pad_x = (e - w) * BUFFER as f64 / EXTENT as f64;
        let pad_y = (n - s) * BUFFER as f64 / EXTENT as f64;
        bbox[0] <= e + pad_x && bbox[2] >= w - pad_x && bbox[1] <= n + pad_y && bbox[3] >= s - pad_y
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = x / ORIGIN_SHIFT * 180.0;
    let lat = (2.0 * (y / ORIGIN_SHIFT * std::f64::consts::PI).exp().atan()
        - std::f64::consts::FRAC_PI_2)
        .to_degrees();
    (lon, lat)
}

/// What a tile request selects: each list empty means "all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileFilter {
    pub categories: Vec<String>,
    pub sources: Vec<String>,
    /// case states (`reported`, `whistled`, …)
    pub states: Vec<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TileFilter {
    /// Sorts and deduplicates the lists, so equal filters give equal cache keys.
    pub fn normalised(mut self) -> Self {
        for list in [&mut self.categories, &mut self.sources, &mut self.states] {
            list.sort();
            list.dedup();
        }
        self
    }

    /// The filter as a canonical query string (also what TileJSON's tile URLs carry).
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (name, list) in [
            ("category", &self.categories),
            ("source", &self.sources),
            ("state", &self.states),
        ] {
            if !list.is_empty() {
                parts.push(format!("{name}={}", list.join(",")));
            }
        }
        for (name, t) in [("from", self.from), ("to", self.to)] {
            if let Some(t) = t {
                parts.push(format!(
                    "{name}={}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
        }
        parts.join("&")
    }
}

/// The two layers served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// reports as points (high zoom) or weighted cells (`count`)
    Incidents,
    /// current grids and micro-grids with their figures under the filter
    Grids,
}

impl Layer {
    pub fn parse(s: &str) -> Option<Layer> {
        match s {
            "incidents" => Some(Layer::Incidents),
            "grids" => Some(Layer::Grids),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Incidents => "incidents",
            Layer::Grids => "grids",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_outside_the_pyramid_are_refused_by_name() {
        assert!(TileId::new(0, 0, 0).is_ok());
        assert!(TileId::new(3, 7, 7).is_ok());
        assert!(TileId::new(3, 8, 0).unwrap_err().0.contains("below 8"));
        assert!(TileId::new(23, 0, 0).unwrap_err().0.contains("zoom 23"));
    }

    #[test]
    fn bounds_and_containing_tile_agree() {
        // Haibowan, Wuhai
        let (lon, lat) = (106.8415, 39.664);
        for z in [0, 5, 10, 13, 16, 22] {
            let t = TileId::containing(z, lon, lat);
            let [w, s, e, n] = t.bounds();
            assert!(
                w <= lon && lon < e && s <= lat && lat < n,
                "{t}: {w} {s} {e} {n}"
            );
        }
        let t = TileId::containing(10, lon, lat);
        assert_eq!((t.x, t.y), (815, 388));
        let [w, s, e, n] = TileId::new(0, 0, 0).unwrap().bounds();
        assert!((w + 180.0).abs() < 1e-9 && (e - 180.0).abs() < 1e-9);
        assert!((n - 85.051_128_78).abs() < 1e-6 && (s + 85.051_128_78).abs() < 1e-6);
    }

    #[test]
    fn cells_shrink_with_zoom_and_stop_at_the_raw_zoom() {
        let z10 = TileId::containing(10, 106.84, 39.66).cell_m().unwrap();
        let z14 = TileId::containing(14, 106.84, 39.66).cell_m().unwrap();
        assert!((z10 / z14 - 16.0).abs() < 1e-9);
        assert!((z14 - 19.109).abs() < 0.01, "{z14}");
        assert_eq!(
            TileId::containing(RAW_FROM_ZOOM, 106.84, 39.66).cell_m(),
            None
        );
    }

    #[test]
    fn a_tile_meets_boxes_over_it_and_at_its_buffer_only() {
        let t = TileId::containing(14, 106.8415, 39.664);
        let [w, s, e, n] = t.bounds();
        assert!(t.meets([106.8415, 39.664, 106.8415, 39.664]));
        // just past the east edge, inside the buffer
        let pad = (e - w) * 0.5 * BUFFER as f64 / EXTENT as f64;
        assert!(t.meets([e + pad, s, e + pad, s]));
        assert!(!t.meets([e + (e - w) * 0.1, s, e + (e - w) * 0.2, n]));
        assert!(t.meets([-180.0, -85.0, 180.0, 85.0]));
    }

    #[test]
    fn equal_filters_have_one_query() {
        let a = TileFilter {
            categories: vec![
                "oil_smoke".into(),
                "fire_lane_blocked".into(),
                "oil_smoke".into(),
            ],
            ..Default::default()
        }
        .normalised();
        let b = TileFilter {
            categories: vec!["fire_lane_blocked".into(), "oil_smoke".into()],
            ..Default::default()
        }
        .normalised();
        assert_eq!(a.query(), b.query());
        assert_eq!(a.query(), "category=fire_lane_blocked,oil_smoke");
        assert_eq!(TileFilter::default().query(), "");
    }
}
