//! Conversions between WGS-84, GCJ-02 (the obfuscated "Mars" system of Chinese map SDKs) and
//! BD-09 (Baidu). GCJ-02 has no closed-form inverse; [`gcj02_to_wgs84`] inverts the forward
//! transform by fixed-point iteration to well under a centimetre.
//!
//! ```
//! use gridwatch::spatial::crs::{gcj02_to_wgs84, wgs84_to_gcj02};
//! let (lon, lat) = (106.8254, 39.6735);
//! let (gx, gy) = wgs84_to_gcj02(lon, lat);
//! let (x, y) = gcj02_to_wgs84(gx, gy);
//! assert!((x - lon).abs() < 1e-8 && (y - lat).abs() < 1e-8);
//! ```

use std::f64::consts::PI;

/// Krasovsky 1940 semi-major axis and eccentricity squared, as the GCJ-02 algorithm uses them.
const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;
const X_PI: f64 = PI * 3000.0 / 180.0;

/// GCJ-02 is only applied inside this box; elsewhere it equals WGS-84.
pub fn out_of_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// The GCJ-02 offset (dlon, dlat) in degrees at a WGS-84 position.
fn gcj_delta(lon: f64, lat: f64) -> (f64, f64) {
    let dlat = transform_lat(lon - 105.0, lat - 35.0);
    let dlon = transform_lon(lon - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad_lat.sin().powi(2);
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    (dlon, dlat)
}

/// WGS-84 → GCJ-02.
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = gcj_delta(lon, lat);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 → WGS-84, by iterating the forward transform until it reproduces the input
/// (converges in a handful of steps; the offset's gradient is tiny).
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = gcj_delta(lon, lat);
    let (mut x, mut y) = (lon - dlon, lat - dlat);
    for _ in 0..10 {
        let (gx, gy) = wgs84_to_gcj02(x, y);
        let (ex, ey) = (lon - gx, lat - gy);
        x += ex;
        y += ey;
        if ex.abs() < 1e-11 && ey.abs() < 1e-11 {
            break;
        }
    }
    (x, y)
}

/// GCJ-02 → BD-09.
pub fn gcj02_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let z = (lon * lon + lat * lat).sqrt() + 0.00002 * (lat * X_PI).sin();
    let theta = lat.atan2(lon) + 0.000003 * (lon * X_PI).cos();
    (z * theta.cos() + 0.0065, z * theta.sin() + 0.006)
}

/// BD-09 → GCJ-02 (Baidu's published inverse, good to a few centimetres).
pub fn bd09_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    let x = lon - 0.0065;
    let y = lat - 0.006;
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * X_PI).cos();
    (z * theta.cos(), z * theta.sin())
}

/// BD-09 → WGS-84.
pub fn bd09_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    let (x, y) = bd09_to_gcj02(lon, lat);
    gcj02_to_wgs84(x, y)
}

/// WGS-84 → BD-09.
pub fn wgs84_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let (x, y) = wgs84_to_gcj02(lon, lat);
    gcj02_to_bd09(x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::distance::metres_between;

    #[test]
    fn gcj_offset_near_wuhai_is_hundreds_of_metres() {
        let (lon, lat) = (106.8254, 39.6735);
        let (gx, gy) = wgs84_to_gcj02(lon, lat);
        let d = metres_between(lon, lat, gx, gy);
        assert!((100.0..1000.0).contains(&d), "offset {d} m");
    }

    #[test]
    fn gcj_roundtrip_is_sub_centimetre_across_china() {
        let mut worst: f64 = 0.0;
        for i in 0..60 {
            for j in 0..40 {
                let lon = 73.0 + i as f64 * 1.07;
                let lat = 18.0 + j as f64 * 0.91;
                let (gx, gy) = wgs84_to_gcj02(lon, lat);
                let (x, y) = gcj02_to_wgs84(gx, gy);
                worst = worst.max(metres_between(lon, lat, x, y));
            }
        }
        assert!(worst < 0.01, "worst round trip {worst} m");
    }

    #[test]
    fn bd_roundtrip_is_sub_metre() {
        let (lon, lat) = (106.71, 39.51);
        let (bx, by) = wgs84_to_bd09(lon, lat);
        let (x, y) = bd09_to_wgs84(bx, by);
        assert!(metres_between(lon, lat, x, y) < 0.1);
    }

    #[test]
    fn outside_china_is_identity() {
        assert_eq!(wgs84_to_gcj02(2.35, 48.85), (2.35, 48.85));
        assert_eq!(gcj02_to_wgs84(-74.0, 40.7), (-74.0, 40.7));
    }
}
