//! Quadkeys: a report's place as the Z-order (Morton) code of the zoom-31 Web Mercator tile that
//! holds it, stored with the report (`report.tile_key`) and indexed in B-tree order.
//!
//! Every tile, and every aggregation cell, is one contiguous range of keys: the reports of a tile
//! are read from the index alone (no heap page per report, as the spatial index needs), and the
//! cell a report falls in is its key shifted right. A heavy tile at 10 million reports reads some
//! megabytes of index in order instead of a page of the table per report.
//!
//! The bit layout is Bing's quadkey as an integer: x in the even bits, y (from the north) in the
//! odd ones, so a key's first `2z` bits are the zoom-`z` tile's quadkey.

use super::{TileId, BUFFER, EXTENT, RAW_FROM_ZOOM};
use geozero::mvt::{tile, Message, Tile};
use std::collections::HashMap;

/// The zoom of the tiles the keys address (about 2 cm at Wuhai's latitude).
pub const KEY_ZOOM: u8 = 31;
/// Web Mercator's latitude limit, in degrees.
const MAX_LAT: f64 = 85.051_128_779_806_59;

/// The zoom-[`KEY_ZOOM`] tile column and row holding `lon`, `lat` (clamped to the map).
pub fn key_tile(lon: f64, lat: f64) -> (u32, u32) {
    let n = (1u64 << KEY_ZOOM) as f64;
    let lat = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    let x = (lon + 180.0) / 360.0 * n;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
    let clamp = |v: f64| v.floor().clamp(0.0, n - 1.0) as u32;
    (clamp(x), clamp(y))
}

/// The key of `lon`, `lat`: what `report.tile_key` holds. Migration 0017's `gw_tile_key` is the
/// same formula in SQL, for the rows it found.
pub fn tile_key(lon: f64, lat: f64) -> i64 {
    let (x, y) = key_tile(lon, lat);
    interleave(x, y) as i64
}

fn spread(v: u32) -> u64 {
    let mut v = u64::from(v);
    v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
    v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v << 2)) & 0x3333_3333_3333_3333;
    (v | (v << 1)) & 0x5555_5555_5555_5555
}

fn compact(v: u64) -> u32 {
    let mut v = v & 0x5555_5555_5555_5555;
    v = (v | (v >> 1)) & 0x3333_3333_3333_3333;
    v = (v | (v >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((v | (v >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

fn interleave(x: u32, y: u32) -> u64 {
    spread(x) | (spread(y) << 1)
}

/// The keys of the zoom-`z` tile `x`, `y`: `[lo, hi)`.
fn range(z: u8, x: u32, y: u32) -> (i64, i64) {
    let shift = 2 * u32::from(KEY_ZOOM - z);
    let k = interleave(x, y);
    ((k << shift) as i64, ((k + 1) << shift) as i64)
}

/// How many zooms below a tile its buffer's width is: the buffer ([`BUFFER`] of [`EXTENT`]) is
/// exactly one tile of zoom `z + 6` wide.
const BUFFER_ZOOMS: u8 = (EXTENT / BUFFER).trailing_zeros() as u8;

/// The key ranges `[lo, hi)` covering a tile and its buffer, in key order, adjacent ones
/// merged: the tile's own range and the ring of zoom-`z + 6` tiles around it (at most 261
/// ranges; fewer at the edges of the map, which does not wrap).
pub fn ranges(t: TileId) -> Vec<(i64, i64)> {
    let mut out = vec![range(t.z, t.x, t.y)];
    let z = t.z + BUFFER_ZOOMS;
    let n = 1i64 << BUFFER_ZOOMS;
    let (x0, y0) = (i64::from(t.x) * n, i64::from(t.y) * n);
    let side = 1i64 << z;
    let mut ring = Vec::with_capacity(4 * n as usize + 4);
    for i in -1..=n {
        ring.push((x0 + i, y0 - 1));
        ring.push((x0 + i, y0 + n));
    }
    for j in 0..n {
        ring.push((x0 - 1, y0 + j));
        ring.push((x0 + n, y0 + j));
    }
    out.extend(
        ring.into_iter()
            .filter(|&(x, y)| (0..side).contains(&x) && (0..side).contains(&y))
            .map(|(x, y)| range(z, x as u32, y as u32)),
    );
    out.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(out.len());
    for (lo, hi) in out {
        match merged.last_mut() {
            Some(last) if last.1 == lo => last.1 = hi,
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// The zoom whose tiles are a tile's aggregation cells: [`super::CELLS_PER_SIDE`] (2⁷) a side
/// below the raw zoom, twice as many (fine cells) from it on.
pub fn cell_zoom(t: TileId) -> u8 {
    let per_side = if t.z < RAW_FROM_ZOOM { 7 } else { 8 };
    t.z + per_side
}

/// How far right a key shifts to become its cell's key at `cell_zoom`.
pub fn cell_shift(cell_zoom: u8) -> i32 {
    2 * i32::from(KEY_ZOOM - cell_zoom)
}

/// An incidents tile of weighted cells from `(cell key, count)` pairs (keys shifted by
/// [`cell_shift`] of [`cell_zoom`]): each cell a point at its centre with its `count`, as
/// `ST_AsMVT` would write it. Cells whose centre falls outside the tile's buffer are left
/// out; no cell at all gives an empty body.
pub fn cells_mvt(t: TileId, cells: &[(i64, i64)]) -> Vec<u8> {
    let cz = cell_zoom(t);
    let dz = u32::from(cz - t.z);
    let cell_px = (EXTENT >> dz) as i64;
    let (x0, y0) = (i64::from(t.x) << dz, i64::from(t.y) << dz);
    let (low, high) = (-(BUFFER as i64), (EXTENT + BUFFER) as i64);
    let mut values: Vec<tile::Value> = Vec::new();
    let mut value_of: HashMap<i64, u32> = HashMap::new();
    let mut features = Vec::with_capacity(cells.len());
    for &(key, n) in cells {
        let key = key as u64;
        let (cx, cy) = (i64::from(compact(key)), i64::from(compact(key >> 1)));
        let px = (cx - x0) * cell_px + cell_px / 2;
        let py = (cy - y0) * cell_px + cell_px / 2;
        if !(low..=high).contains(&px) || !(low..=high).contains(&py) {
            continue;
        }
        let v = *value_of.entry(n).or_insert_with(|| {
            values.push(tile::Value {
                uint_value: Some(n as u64),
                ..Default::default()
            });
            (values.len() - 1) as u32
        });
        features.push(tile::Feature {
            id: None,
            tags: vec![0, v],
            r#type: Some(tile::GeomType::Point as i32),
            // MoveTo once, then the point zigzag-encoded
            geometry: vec![(1 << 3) | 1, zigzag(px), zigzag(py)],
        });
    }
    if features.is_empty() {
        return Vec::new();
    }
    Tile {
        layers: vec![tile::Layer {
            version: 2,
            name: "incidents".into(),
            features,
            keys: vec!["count".into()],
            values,
            extent: Some(EXTENT),
        }],
    }
    .encode_to_vec()
}

fn zigzag(v: i64) -> u32 {
    ((v << 1) ^ (v >> 63)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiles::CELLS_PER_SIDE;

    #[test]
    fn interleaving_round_trips_and_orders_like_quadkeys() {
        for (x, y) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (12345, 67890),
            (u32::MAX >> 1, u32::MAX >> 1),
        ] {
            let k = interleave(x, y);
            assert_eq!((compact(k), compact(k >> 1)), (x, y));
        }
        // Bing's quadkey digits: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
        assert_eq!(interleave(1, 1), 3);
        assert!(tile_key(106.8, 39.6) > 0, "keys stay positive as int8");
    }

    #[test]
    fn a_point_key_lies_in_its_tiles_range_at_every_zoom() {
        for (lon, lat) in [
            (106.8415, 39.664),
            (-73.98, 40.75),
            (151.2, -33.87),
            (0.0, 0.0),
        ] {
            let key = tile_key(lon, lat);
            for z in 0..=crate::tiles::MAX_ZOOM {
                let t = TileId::containing(z, lon, lat);
                let (lo, hi) = range(t.z, t.x, t.y);
                assert!((lo..hi).contains(&key), "{lon},{lat} at z{z}");
            }
        }
    }

    /// Every point inside the buffered tile has its key in one of the ranges, and none outside
    /// does (points within a key tile's width of the edge are let off).
    #[test]
    fn ranges_cover_the_buffered_tile_and_nothing_else() {
        let t = TileId::containing(16, 106.8415, 39.664);
        let r = ranges(t);
        assert!(
            r.len() <= 261 && r.windows(2).all(|w| w[0].1 < w[1].0),
            "{}",
            r.len()
        );
        let [west, south, east, north] = t.bounds();
        let margin = BUFFER as f64 / EXTENT as f64;
        let (dx, dy) = ((east - west) * margin, (north - south) * margin);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut inside, mut outside) = (0, 0);
        for _ in 0..20_000 {
            // within two tile widths of the tile
            let lon = west - (east - west) + 3.0 * (east - west) * next();
            let lat = south - (north - south) + 3.0 * (north - south) * next();
            let key = tile_key(lon, lat);
            let covered = r.iter().any(|&(lo, hi)| (lo..hi).contains(&key));
            // the buffer is an exact ring in Web Mercator; in latitude it is nearly even
            let near = |v: f64, edge: f64, d: f64| (v - edge).abs() < d * 0.05;
            if near(lon, west - dx, dx)
                || near(lon, east + dx, dx)
                || near(lat, south - dy, dy)
                || near(lat, north + dy, dy)
            {
                continue;
            }
            let expected =
                lon > west - dx && lon < east + dx && lat > south - dy && lat < north + dy;
            assert_eq!(covered, expected, "{lon},{lat}");
            if expected {
                inside += 1
            } else {
                outside += 1
            }
        }
        assert!(inside > 1000 && outside > 1000, "{inside} {outside}");
    }

    #[test]
    fn the_ranges_stop_at_the_edge_of_the_map() {
        let corner = TileId::new(3, 0, 0).unwrap();
        let r = ranges(corner);
        assert_eq!(r[0].0, 0, "starts at the first key");
        // the tile (one range) and 64 + 64 + 1 ring tiles to the east and south, some merged
        assert!(r.len() < 130, "{}", r.len());
    }

    #[test]
    fn cells_come_out_at_their_centres_with_their_counts() {
        let t = TileId::new(10, 829, 387).unwrap();
        let cz = cell_zoom(t);
        assert_eq!(cz, 17);
        let shift = cell_shift(cz);
        let cell_key = |cx: u32, cy: u32| interleave(cx, cy) as i64;
        let x0 = t.x << 7;
        let y0 = t.y << 7;
        let cells = vec![
            (cell_key(x0, y0), 5),
            (cell_key(x0 + 127, y0 + 3), 2),
            (cell_key(x0 - 1, y0), 7), // in the buffer: centre at -16
            (cell_key(x0 - 3, y0), 9), // beyond it: left out
            (cell_key(x0 + 1, y0 + 1), 5),
        ];
        assert_eq!(shift, 28);
        let mvt = cells_mvt(t, &cells);
        let tile = Tile::decode(mvt.as_slice()).unwrap();
        let l = &tile.layers[0];
        assert_eq!(
            (l.name.as_str(), l.extent, l.version),
            ("incidents", Some(4096), 2)
        );
        let cell_px = (EXTENT / CELLS_PER_SIDE) as i64;
        let got: Vec<(i64, i64, u64)> = l
            .features
            .iter()
            .map(|f| {
                let unzig = |v: u32| ((v >> 1) as i64) ^ -((v & 1) as i64);
                assert_eq!(f.geometry[0], 9);
                let n = l.values[f.tags[1] as usize].uint_value.unwrap();
                (unzig(f.geometry[1]), unzig(f.geometry[2]), n)
            })
            .collect();
        let h = cell_px / 2;
        assert_eq!(
            got,
            vec![
                (h, h, 5),
                (127 * cell_px + h, 3 * cell_px + h, 2),
                (-h, h, 7),
                (cell_px + h, cell_px + h, 5)
            ]
        );
        assert_eq!(l.values.len(), 3, "equal counts share a value");
        assert!(cells_mvt(t, &[]).is_empty());
    }

    #[test]
    fn fine_cells_from_the_raw_zoom_on() {
        let t = TileId::new(u32::from(RAW_FROM_ZOOM), 0, 0).unwrap();
        assert_eq!(cell_zoom(t), RAW_FROM_ZOOM + 8);
        assert_eq!(cell_shift(cell_zoom(t)), 2 * (31 - 23));
    }
}
