//! Metric distances for small extents: a local equirectangular frame around the query point,
//! accurate to a fraction of a percent over the few hundred metres where "near" matters.

/// Metres per degree of latitude (mean, WGS-84).
pub const METRES_PER_DEG_LAT: f64 = 111_132.954;

/// Metres per degree of longitude at `lat`.
pub fn metres_per_deg_lon(lat: f64) -> f64 {
    111_319.488 * lat.to_radians().cos()
}

/// Approximate ground distance between two lon/lat positions in metres (haversine).
pub fn metres_between(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    const R: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().asin()
}

/// Squared distance in the local metric frame from a point to a segment, with the frame's
/// scale factors `kx`, `ky` (metres per degree).
pub fn segment_distance_sq(p: (f64, f64), a: (f64, f64), b: (f64, f64), kx: f64, ky: f64) -> f64 {
    let (px, py) = ((p.0 - a.0) * kx, (p.1 - a.1) * ky);
    let (bx, by) = ((b.0 - a.0) * kx, (b.1 - a.1) * ky);
    let len_sq = bx * bx + by * by;
    let t = if len_sq > 0.0 {
        ((px * bx + py * by) / len_sq).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (px - t * bx, py - t * by);
    dx * dx + dy * dy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude() {
        let d = metres_between(106.8, 39.0, 106.8, 40.0);
        assert!((d - 111_000.0).abs() < 300.0, "{d}");
    }

    #[test]
    fn segment_distance_cases() {
        let (kx, ky) = (1.0, 1.0);
        // perpendicular foot inside the segment
        assert_eq!(
            segment_distance_sq((1.0, 1.0), (0.0, 0.0), (2.0, 0.0), kx, ky),
            1.0
        );
        // beyond an end: distance to the end point
        assert_eq!(
            segment_distance_sq((3.0, 0.0), (0.0, 0.0), (2.0, 0.0), kx, ky),
            1.0
        );
        // degenerate segment
        assert_eq!(
            segment_distance_sq((0.0, 2.0), (0.0, 0.0), (0.0, 0.0), kx, ky),
            4.0
        );
        // on the segment
        assert_eq!(
            segment_distance_sq((1.0, 0.0), (0.0, 0.0), (2.0, 0.0), kx, ky),
            0.0
        );
    }
}
