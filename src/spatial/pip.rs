//! Exact point-in-polygon for a prepared `MultiPolygon`, with a deterministic rule for points
//! on the boundary.
//!
//! Crossing-number test with half-open edges: an edge counts when `y0 <= y < y1` (edges stored
//! with `y0 < y1`, horizontal edges dropped) and it lies strictly to the right of the point.
//! Because an edge shared by two polygons is stored identically in both (normalised by its end
//! points), the two polygons compute the same crossing abscissa, so a point exactly on the
//! shared edge is inside exactly one of them. Edges are bucketed into horizontal bands so a
//! district boundary with hundreds of vertices costs a few comparisons per query.
//!
//! ```
//! use geo::polygon;
//! use gridwatch::spatial::pip::PreparedPolygon;
//! let square = geo::MultiPolygon(vec![polygon![
//!     (x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0), (x: 0.0, y: 1.0), (x: 0.0, y: 0.0)
//! ]]);
//! let p = PreparedPolygon::new(&square);
//! assert!(p.contains(0.5, 0.5));
//! assert!(!p.contains(1.5, 0.5));
//! ```

use geo::{BoundingRect, MultiPolygon, Rect};

#[derive(Debug, Clone, Copy)]
struct Edge {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Edge {
    /// Half-open crossing test of the ray from (x, y) towards +x.
    #[inline]
    fn crosses(&self, x: f64, y: f64) -> bool {
        if y < self.y0 || y >= self.y1 {
            return false;
        }
        // Fast reject/accept on the edge's x extent before the division.
        let (lo, hi) = if self.x0 < self.x1 {
            (self.x0, self.x1)
        } else {
            (self.x1, self.x0)
        };
        if x >= hi {
            return false;
        }
        if x < lo {
            return true;
        }
        let xi = self.x0 + (y - self.y0) * (self.x1 - self.x0) / (self.y1 - self.y0);
        x < xi
    }
}

/// A boundary segment: start and end (lon, lat).
pub type Segment = ((f64, f64), (f64, f64));

/// Below this many edges a linear scan beats the band lookup.
const LINEAR_MAX: usize = 24;

/// A polygon prepared for repeated containment tests.
#[derive(Debug, Clone)]
pub struct PreparedPolygon {
    edges: Vec<Edge>,
    /// For each band, the indices into `edges` of the edges overlapping it.
    bands: Vec<Vec<u32>>,
    min_y: f64,
    band_height: f64,
    bbox: Option<Rect<f64>>,
    /// All segments including horizontal ones, for distance queries.
    segments: Vec<Segment>,
}

impl PreparedPolygon {
    pub fn new(mp: &MultiPolygon<f64>) -> Self {
        let mut edges = Vec::new();
        let mut segments = Vec::new();
        for poly in &mp.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for line in ring.lines() {
                    let (a, b) = (line.start, line.end);
                    if a == b {
                        continue;
                    }
                    segments.push(((a.x, a.y), (b.x, b.y)));
                    if a.y == b.y {
                        continue;
                    }
                    // Normalise so that both polygons sharing this edge store the same numbers.
                    let (lo, hi) = if a.y < b.y { (a, b) } else { (b, a) };
                    edges.push(Edge {
                        x0: lo.x,
                        y0: lo.y,
                        x1: hi.x,
                        y1: hi.y,
                    });
                }
            }
        }
        let bbox = mp.bounding_rect();
        let mut prepared = PreparedPolygon {
            edges,
            bands: Vec::new(),
            min_y: 0.0,
            band_height: 1.0,
            bbox,
            segments,
        };
        prepared.build_bands();
        prepared
    }

    fn build_bands(&mut self) {
        let Some(bbox) = self.bbox else { return };
        if self.edges.len() <= LINEAR_MAX {
            return;
        }
        let n = (self.edges.len() / 4).clamp(2, 1024);
        let height = bbox.height() / n as f64;
        if height <= 0.0 || !height.is_finite() {
            return;
        }
        self.min_y = bbox.min().y;
        self.band_height = height;
        let mut bands = vec![Vec::new(); n];
        for (i, e) in self.edges.iter().enumerate() {
            let first = band_index(e.y0, self.min_y, height, n);
            let last = band_index(e.y1, self.min_y, height, n);
            for band in &mut bands[first..=last] {
                band.push(i as u32);
            }
        }
        self.bands = bands;
    }

    #[inline]
    fn band_of(&self, y: f64) -> usize {
        band_index(y, self.min_y, self.band_height, self.bands.len())
    }

    /// Every boundary segment, horizontal ones included.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn bbox(&self) -> Option<Rect<f64>> {
        self.bbox
    }

    /// True when (x, y) is inside by the half-open rule described in the module docs.
    #[inline]
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let Some(bbox) = self.bbox else { return false };
        if x < bbox.min().x || x > bbox.max().x || y < bbox.min().y || y > bbox.max().y {
            return false;
        }
        let mut inside = false;
        if self.bands.is_empty() {
            for e in &self.edges {
                inside ^= e.crosses(x, y);
            }
        } else {
            for &i in &self.bands[self.band_of(y)] {
                inside ^= self.edges[i as usize].crosses(x, y);
            }
        }
        inside
    }

    /// Distance in metres from (x, y) to the polygon's boundary, in a local metric frame.
    pub fn boundary_distance_m(&self, x: f64, y: f64) -> f64 {
        let kx = super::distance::metres_per_deg_lon(y);
        let ky = super::distance::METRES_PER_DEG_LAT;
        self.segments
            .iter()
            .map(|&(a, b)| super::distance::segment_distance_sq((x, y), a, b, kx, ky))
            .fold(f64::INFINITY, f64::min)
            .sqrt()
    }
}

/// The band of `y` among `n` bands of `height` starting at `min_y`, clamped to the ends.
#[inline]
fn band_index(y: f64, min_y: f64, height: f64, n: usize) -> usize {
    let b = ((y - min_y) / height) as isize;
    b.clamp(0, n as isize - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, Contains, MultiPolygon};

    fn mp(p: geo::Polygon<f64>) -> MultiPolygon<f64> {
        MultiPolygon(vec![p])
    }

    fn square(x0: f64, y0: f64, s: f64) -> geo::Polygon<f64> {
        polygon![(x: x0, y: y0), (x: x0 + s, y: y0), (x: x0 + s, y: y0 + s), (x: x0, y: y0 + s), (x: x0, y: y0)]
    }

    #[test]
    fn empty_polygon_contains_nothing() {
        let p = PreparedPolygon::new(&MultiPolygon::<f64>(vec![]));
        assert!(!p.contains(0.0, 0.0));
        assert!(p.boundary_distance_m(0.0, 0.0).is_infinite());
    }

    #[test]
    fn hole_is_outside() {
        let outer = square(0.0, 0.0, 10.0);
        let hole = square(4.0, 4.0, 2.0);
        let poly = geo::Polygon::new(outer.exterior().clone(), vec![hole.exterior().clone()]);
        let p = PreparedPolygon::new(&mp(poly));
        assert!(p.contains(1.0, 1.0));
        assert!(!p.contains(5.0, 5.0));
    }

    #[test]
    fn winding_order_does_not_matter() {
        let ccw = square(0.0, 0.0, 1.0);
        let mut cw = ccw.clone();
        cw.exterior_mut(|r| r.0.reverse());
        let (a, b) = (
            PreparedPolygon::new(&mp(ccw)),
            PreparedPolygon::new(&mp(cw)),
        );
        for (x, y) in [(0.5, 0.5), (0.1, 0.9), (1.1, 0.5), (-0.1, 0.5)] {
            assert_eq!(a.contains(x, y), b.contains(x, y));
        }
    }

    #[test]
    fn shared_edge_points_belong_to_exactly_one_neighbour() {
        // Four squares around (1, 1), sharing edges and the centre vertex.
        let squares: Vec<_> = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
            .iter()
            .map(|&(x, y)| PreparedPolygon::new(&mp(square(x, y, 1.0))))
            .collect();
        for &(x, y) in &[(1.0, 0.5), (1.0, 1.5), (0.5, 1.0), (1.5, 1.0), (1.0, 1.0)] {
            let owners = squares.iter().filter(|s| s.contains(x, y)).count();
            assert_eq!(owners, 1, "point ({x}, {y}) owned by {owners}");
        }
    }

    #[test]
    fn shared_slanted_edge_has_one_owner() {
        let left = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.7, y: 3.0), (x: 0.0, y: 3.0), (x: 0.0, y: 0.0)];
        let right = polygon![(x: 1.0, y: 0.0), (x: 3.0, y: 0.0), (x: 3.0, y: 3.0), (x: 1.7, y: 3.0), (x: 1.0, y: 0.0)];
        let (l, r) = (
            PreparedPolygon::new(&mp(left)),
            PreparedPolygon::new(&mp(right)),
        );
        for i in 0..300 {
            let t = i as f64 / 300.0;
            let (x, y) = (1.0 + 0.7 * t, 3.0 * t);
            assert_eq!(l.contains(x, y) as u8 + r.contains(x, y) as u8, 1, "t={t}");
        }
    }

    #[test]
    fn agrees_with_geo_contains_on_a_many_sided_polygon() {
        // A star with 200 points exercises the band index.
        let n = 200;
        let ring: Vec<(f64, f64)> = (0..=n)
            .map(|i| {
                let a = (i % n) as f64 / n as f64 * std::f64::consts::TAU;
                let r = if i % 2 == 0 { 1.0 } else { 0.6 };
                (r * a.cos(), r * a.sin())
            })
            .collect();
        let poly = geo::Polygon::new(ring.into(), vec![]);
        let p = PreparedPolygon::new(&mp(poly.clone()));
        assert!(!p.bands.is_empty());
        let mut state = 12345u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.4 - 1.2;
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let y = ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.4 - 1.2;
            let pt = geo::Point::new(x, y);
            assert_eq!(p.contains(x, y), poly.contains(&pt), "({x}, {y})");
        }
    }

    #[test]
    fn boundary_distance() {
        let p = PreparedPolygon::new(&mp(square(106.0, 39.0, 0.01)));
        // 0.001 degrees of latitude south of the bottom edge, about 111 m
        let d = p.boundary_distance_m(106.005, 38.999);
        assert!((d - 111.1).abs() < 1.0, "{d}");
    }
}
