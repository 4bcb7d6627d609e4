//! A raster cache in front of the R-tree: the extent of one level's polygons cut into small
//! cells, each classified once as "wholly inside polygon k", "empty" (touched by no polygon, and
//! whether any polygon is within the near distance) or "mixed". A point in a wholly-inside or
//! empty cell is answered with two multiplications and a load; only points in mixed cells go to
//! the R-tree and exact point-in-polygon. The answers are identical by construction: a cell is
//! "inside k" only if no edge of any polygon touches it (closed, slightly widened) and k is the
//! only polygon covering it.
//!
//! ```
//! use geo::polygon;
//! use gridwatch::spatial::pip::PreparedPolygon;
//! use gridwatch::spatial::raster::{Cell, Raster};
//! let square = geo::MultiPolygon(vec![polygon![
//!     (x: 0.0, y: 0.0), (x: 0.01, y: 0.0), (x: 0.01, y: 0.01), (x: 0.0, y: 0.01), (x: 0.0, y: 0.0)
//! ]]);
//! let r = Raster::build(&[PreparedPolygon::new(&square)], &[0], 25.0, 50.0);
//! assert_eq!(r.cell(0.005, 0.005), Cell::Inside(0));
//! assert_eq!(r.cell(1.0, 1.0), Cell::Far);
//! ```

use super::distance::{metres_per_deg_lon, METRES_PER_DEG_LAT};
use super::pip::PreparedPolygon;
use std::collections::{HashMap, HashSet};

/// Most cells one raster may have (4 bytes each); coarser cells beyond that.
const MAX_CELLS: usize = 4_000_000;
/// Cell rectangles are widened by this many degrees (about 0.1 mm) when classified, so that
/// rounding in the cell arithmetic can never put a point in a cell it is not really in.
const SLACK: f64 = 1e-9;

const FAR: u32 = 0;
const FIRST_INSIDE: u32 = 1;

/// What a cell says about the points in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    /// in no polygon, and farther than the near distance from all of them
    Far,
    /// in no polygon, but these polygons (ids ascending) may lie within the near distance
    EmptyNear(&'a [u32]),
    /// an edge crosses the cell: the point may be in any of these polygons (ids ascending) or none
    Mixed(&'a [u32]),
    /// inside the polygon with this id, and no other
    Inside(u32),
}

/// Cells are stored in square tiles; a tile whose cells all say the same is stored as that one
/// value in the directory, so the empty desert between urban cores costs 4 bytes a tile and the
/// lookups of a city stay in cache.
const TILE: usize = 16;
/// Directory entries with this bit hold a uniform tile's value; without it, a tile's offset.
const UNIFORM: u32 = 1 << 31;
/// Cell values with this bit are mixed cells: the rest is an index into `lists`.
const LISTED: u32 = 1 << 30;
/// Cell values with this bit are empty cells near polygons: the rest is an index into `lists`.
const NEAR_LISTED: u32 = 1 << 29;

#[derive(Debug, Clone)]
pub struct Raster {
    x0: f64,
    y0: f64,
    dx: f64,
    dy: f64,
    cols: usize,
    rows: usize,
    tile_cols: usize,
    /// one entry a tile: `UNIFORM | value`, or the offset of its cells in `tiles`
    directory: Vec<u32>,
    tiles: Vec<u32>,
    /// candidate ids of mixed cells, as (start, len) into `ids`
    lists: Vec<(u32, u32)>,
    ids: Vec<u32>,
}

impl Raster {
    /// Classifies cells of about `cell_m` metres over the polygons' extent widened by `near_m`.
    /// `ids[i]` is the id reported for `polys[i]`.
    pub fn build(polys: &[PreparedPolygon], ids: &[u32], cell_m: f64, near_m: f64) -> Raster {
        let boxes: Vec<_> = polys.iter().filter_map(|p| p.bbox()).collect();
        let empty = Raster {
            x0: 0.0,
            y0: 0.0,
            dx: 1.0,
            dy: 1.0,
            cols: 0,
            rows: 0,
            tile_cols: 0,
            directory: Vec::new(),
            tiles: Vec::new(),
            lists: Vec::new(),
            ids: Vec::new(),
        };
        let Some(first) = boxes.first() else {
            return empty;
        };
        let (mut minx, mut miny, mut maxx, mut maxy) =
            (first.min().x, first.min().y, first.max().x, first.max().y);
        for b in &boxes {
            minx = minx.min(b.min().x);
            miny = miny.min(b.min().y);
            maxx = maxx.max(b.max().x);
            maxy = maxy.max(b.max().y);
        }
        let lat = (miny + maxy) / 2.0;
        let kx = metres_per_deg_lon(lat.abs().min(85.0));
        let ky = METRES_PER_DEG_LAT;
        // Widen by the near distance (at the extent's most poleward latitude) and a cell.
        let pole = miny.abs().max(maxy.abs()).min(85.0);
        let (mx, my) = (
            near_m / metres_per_deg_lon(pole) + 2.0 * cell_m / kx,
            near_m / ky + 2.0 * cell_m / ky,
        );
        let (minx, miny, maxx, maxy) = (minx - mx, miny - my, maxx + mx, maxy + my);
        let mut scale = 1.0;
        let (mut cols, mut rows);
        loop {
            let (dx, dy) = (cell_m * scale / kx, cell_m * scale / ky);
            cols = ((maxx - minx) / dx).ceil().max(1.0) as usize;
            rows = ((maxy - miny) / dy).ceil().max(1.0) as usize;
            if cols.saturating_mul(rows) <= MAX_CELLS {
                break;
            }
            scale *= 1.5;
        }
        let (dx, dy) = ((maxx - minx) / cols as f64, (maxy - miny) / rows as f64);
        // Whole tiles, so that every tile is full.
        let tile_cols = cols.div_ceil(TILE);
        let (cols, rows) = (tile_cols * TILE, rows.div_ceil(TILE) * TILE);
        let mut r = Raster {
            cols,
            rows,
            tile_cols,
            ..empty
        };
        r.x0 = minx;
        r.y0 = miny;
        r.dx = dx;
        r.dy = dy;
        let mut cells = vec![FAR; cols * rows];

        // The polygons touching each cell: crossing it, or covering it.
        // Sparse: only cells inside some polygon's box are ever touched.
        let mut touching: HashMap<usize, Vec<u32>> = HashMap::new();
        let mut crossing: HashSet<usize> = HashSet::new();
        // Polygons whose box, widened by the near distance, meets each cell.
        let mut near: HashMap<usize, Vec<u32>> = HashMap::new();
        for (p, &id) in polys.iter().zip(ids) {
            let Some(b) = p.bbox() else { continue };
            // Cells within the near distance of this polygon's box may have it as a near neighbour.
            let (nx, ny) = (
                near_m / metres_per_deg_lon(b.max().y.abs().max(b.min().y.abs()).min(85.0)),
                near_m / ky,
            );
            let (c0, r0, c1, r1) = r.span(
                b.min().x - nx,
                b.min().y - ny,
                b.max().x + nx,
                b.max().y + ny,
            );
            for row in r0..=r1 {
                for col in c0..=c1 {
                    near.entry(row * cols + col).or_default().push(id);
                }
            }
            // Cells crossed by an edge.
            let mut crossed: Vec<usize> = Vec::new();
            for &(a, bb) in p.segments() {
                let (c0, r0, c1, r1) =
                    r.span(a.0.min(bb.0), a.1.min(bb.1), a.0.max(bb.0), a.1.max(bb.1));
                for row in r0..=r1 {
                    for col in c0..=c1 {
                        let (x0, y0, x1, y1) = r.rect(col, row);
                        if segment_hits_rect(a, bb, x0, y0, x1, y1) {
                            crossed.push(row * cols + col);
                        }
                    }
                }
            }
            crossed.sort_unstable();
            crossed.dedup();
            for &k in &crossed {
                crossing.insert(k);
                touching.entry(k).or_default().push(id);
            }
            // Cells wholly inside: not crossed, centre inside.
            let (c0, r0, c1, r1) = r.span(b.min().x, b.min().y, b.max().x, b.max().y);
            for row in r0..=r1 {
                for col in c0..=c1 {
                    let k = row * cols + col;
                    if crossed.binary_search(&k).is_ok() {
                        continue;
                    }
                    let (x0, y0, x1, y1) = r.rect(col, row);
                    if p.contains((x0 + x1) / 2.0, (y0 + y1) / 2.0) {
                        touching.entry(k).or_default().push(id);
                    }
                }
            }
        }
        let mut list_index: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut intern = |r: &mut Raster, mut list: Vec<u32>| -> u32 {
            list.sort_unstable();
            list.dedup();
            let next = r.lists.len() as u32;
            *list_index.entry(list).or_insert_with_key(|list| {
                r.lists.push((r.ids.len() as u32, list.len() as u32));
                r.ids.extend_from_slice(list);
                next
            })
        };
        let mut touched: Vec<(usize, Vec<u32>)> = touching.into_iter().collect();
        // Deterministic list numbering whatever the hash order.
        touched.sort_unstable_by_key(|(k, _)| *k);
        for (k, list) in touched {
            cells[k] = if list.len() == 1
                && !crossing.contains(&k)
                && list[0] < NEAR_LISTED - FIRST_INSIDE
            {
                list[0] + FIRST_INSIDE
            } else {
                LISTED | intern(&mut r, list)
            };
        }
        let mut near: Vec<(usize, Vec<u32>)> = near.into_iter().collect();
        near.sort_unstable_by_key(|(k, _)| *k);
        for (k, list) in near {
            if cells[k] == FAR {
                cells[k] = NEAR_LISTED | intern(&mut r, list);
            }
        }
        // Tile the cells, keeping uniform tiles in the directory only.
        for tr in 0..rows / TILE {
            for tc in 0..tile_cols {
                let at = |i: usize, j: usize| cells[(tr * TILE + j) * cols + tc * TILE + i];
                let first = at(0, 0);
                let uniform = (0..TILE).all(|j| (0..TILE).all(|i| at(i, j) == first));
                if uniform && first & UNIFORM == 0 {
                    r.directory.push(UNIFORM | first);
                } else {
                    r.directory.push(r.tiles.len() as u32);
                    for j in 0..TILE {
                        for i in 0..TILE {
                            r.tiles.push(at(i, j));
                        }
                    }
                }
            }
        }
        r
    }

    /// The classification of the cell holding (x, y); `Far` outside the raster.
    #[inline]
    pub fn cell(&self, x: f64, y: f64) -> Cell<'_> {
        let c = (x - self.x0) / self.dx;
        let r = (y - self.y0) / self.dy;
        if !(c >= 0.0 && r >= 0.0) {
            return Cell::Far;
        }
        let (c, r) = (c as usize, r as usize);
        if c >= self.cols || r >= self.rows {
            return Cell::Far;
        }
        let entry = self.directory[(r / TILE) * self.tile_cols + c / TILE];
        let v = if entry & UNIFORM != 0 {
            entry & !UNIFORM
        } else {
            self.tiles[entry as usize + (r % TILE) * TILE + c % TILE]
        };
        let list = |i: u32| {
            let (start, len) = self.lists[i as usize];
            &self.ids[start as usize..(start + len) as usize]
        };
        match v {
            FAR => Cell::Far,
            v if v & LISTED != 0 => Cell::Mixed(list(v & !LISTED)),
            v if v & NEAR_LISTED != 0 => Cell::EmptyNear(list(v & !NEAR_LISTED)),
            v => Cell::Inside(v - FIRST_INSIDE),
        }
    }

    /// Bytes held by the directory, the stored tiles and the candidate lists.
    pub fn memory_bytes(&self) -> usize {
        4 * (self.directory.len() + self.tiles.len() + self.ids.len()) + 8 * self.lists.len()
    }

    /// Widened rectangle of a cell.
    fn rect(&self, col: usize, row: usize) -> (f64, f64, f64, f64) {
        let x0 = self.x0 + col as f64 * self.dx;
        let y0 = self.y0 + row as f64 * self.dy;
        (
            x0 - SLACK,
            y0 - SLACK,
            x0 + self.dx + SLACK,
            y0 + self.dy + SLACK,
        )
    }

    /// Column and row range of the cells meeting a box (widened by one cell for rounding).
    fn span(&self, minx: f64, miny: f64, maxx: f64, maxy: f64) -> (usize, usize, usize, usize) {
        let clamp_c = |v: f64| (v.floor().max(0.0) as usize).min(self.cols - 1);
        let clamp_r = |v: f64| (v.floor().max(0.0) as usize).min(self.rows - 1);
        (
            clamp_c((minx - self.x0) / self.dx - 1.0),
            clamp_r((miny - self.y0) / self.dy - 1.0),
            clamp_c((maxx - self.x0) / self.dx + 1.0),
            clamp_r((maxy - self.y0) / self.dy + 1.0),
        )
    }
}

/// True when the closed segment a–b meets the closed rectangle (Liang–Barsky clipping).
fn segment_hits_rect(a: (f64, f64), b: (f64, f64), x0: f64, y0: f64, x1: f64, y1: f64) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, MultiPolygon};

    #[test]
    fn segment_rect_cases() {
        // crossing, inside, touching a corner, missing, along an edge
        assert!(segment_hits_rect(
            (-1.0, 0.5),
            (2.0, 0.5),
            0.0,
            0.0,
            1.0,
            1.0
        ));
        assert!(segment_hits_rect(
            (0.2, 0.2),
            (0.3, 0.3),
            0.0,
            0.0,
            1.0,
            1.0
        ));
        assert!(segment_hits_rect(
            (1.0, 1.0),
            (2.0, 2.0),
            0.0,
            0.0,
            1.0,
            1.0
        ));
        assert!(!segment_hits_rect(
            (1.1, 0.0),
            (2.0, 1.0),
            0.0,
            0.0,
            1.0,
            1.0
        ));
        assert!(segment_hits_rect(
            (0.0, -1.0),
            (0.0, 2.0),
            0.0,
            0.0,
            1.0,
            1.0
        ));
        assert!(!segment_hits_rect(
            (-0.5, 0.0),
            (0.0, -0.5),
            0.0,
            0.0,
            1.0,
            1.0
        ));
    }

    #[test]
    fn cells_agree_with_point_in_polygon() {
        let a = MultiPolygon(vec![
            polygon![(x: 0.0, y: 0.0), (x: 0.01, y: 0.0), (x: 0.013, y: 0.01), (x: 0.0, y: 0.01), (x: 0.0, y: 0.0)],
        ]);
        let b = MultiPolygon(vec![
            polygon![(x: 0.01, y: 0.0), (x: 0.02, y: 0.0), (x: 0.02, y: 0.01), (x: 0.013, y: 0.01), (x: 0.01, y: 0.0)],
        ]);
        let polys = [PreparedPolygon::new(&a), PreparedPolygon::new(&b)];
        let r = Raster::build(&polys, &[7, 9], 25.0, 50.0);
        let mut seen_inside = 0;
        for i in 0..300 {
            for j in 0..150 {
                let (x, y) = (-0.005 + i as f64 * 0.0001, -0.004 + j as f64 * 0.000119);
                let truth: Vec<u32> = [7, 9]
                    .into_iter()
                    .zip(&polys)
                    .filter(|(_, p)| p.contains(x, y))
                    .map(|(id, _)| id)
                    .collect();
                match r.cell(x, y) {
                    Cell::Inside(id) => {
                        assert_eq!(truth, vec![id], "({x}, {y})");
                        seen_inside += 1;
                    }
                    Cell::Far | Cell::EmptyNear(_) => assert!(truth.is_empty(), "({x}, {y})"),
                    Cell::Mixed(ids) => {
                        assert!(truth.iter().all(|t| ids.contains(t)), "({x}, {y})")
                    }
                }
            }
        }
        assert!(seen_inside > 10_000, "{seen_inside}");
    }

    #[test]
    fn far_cells_are_far() {
        let a = MultiPolygon(vec![
            polygon![(x: 0.0, y: 0.0), (x: 0.01, y: 0.0), (x: 0.01, y: 0.01), (x: 0.0, y: 0.01), (x: 0.0, y: 0.0)],
        ]);
        let p = PreparedPolygon::new(&a);
        let r = Raster::build(std::slice::from_ref(&p), &[0], 25.0, 50.0);
        for i in 0..200 {
            for j in 0..200 {
                let (x, y) = (-0.003 + i as f64 * 0.00008, -0.003 + j as f64 * 0.00008);
                match r.cell(x, y) {
                    Cell::Far => assert!(
                        !p.contains(x, y) && p.boundary_distance_m(x, y) > 50.0,
                        "({x}, {y})"
                    ),
                    Cell::EmptyNear(ids) => assert_eq!(ids, &[0]),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn no_polygons_means_far_everywhere() {
        let r = Raster::build(&[], &[], 25.0, 50.0);
        assert_eq!(r.cell(0.0, 0.0), Cell::Far);
        assert_eq!(r.memory_bytes(), 0);
    }
}
