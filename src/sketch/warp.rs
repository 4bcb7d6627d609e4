//! The georeferenced sketch as a north-up image for a map overlay: every output pixel (a lon/lat)
//! is mapped back into the sketch through the fit's inverse and sampled bilinearly. The inverse
//! is evaluated exactly on a coarse lattice and interpolated between (as GDAL's approximate
//! transformer does), which keeps thin-plate splines fast.

use super::transform::Fit;
use image::{RgbImage, Rgba, RgbaImage};

/// Output lattice spacing, in output pixels, for exact inverse evaluations.
const STEP: u32 = 8;

/// Bounds (west, south, east, north) of the sketch's footprint, from points along its border.
pub fn footprint(fit: &Fit, width: u32, height: u32) -> Option<[f64; 4]> {
    let (w, h) = (width as f64, height as f64);
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for i in 0..=64 {
        let t = i as f64 / 64.0;
        for (x, y) in [(t * w, 0.0), (t * w, h), (0.0, t * h), (w, t * h)] {
            let (lon, lat) = fit.try_to_lonlat(x, y)?;
            b = [b[0].min(lon), b[1].min(lat), b[2].max(lon), b[3].max(lat)];
        }
    }
    b.iter().all(|v| v.is_finite()).then_some(b)
}

/// Warps `img` into a north-up RGBA image of at most `max_side` pixels covering `bounds`;
/// outside the sketch is transparent.
pub fn warp(img: &RgbImage, fit: &Fit, bounds: [f64; 4], max_side: u32, opacity: u8) -> RgbaImage {
    let [west, south, east, north] = bounds;
    // Keep ground proportions: degrees of longitude are shorter than degrees of latitude.
    let k = ((south + north) / 2.0).to_radians().cos();
    let (gw, gh) = ((east - west) * k, north - south);
    let (ow, oh) = if gw >= gh {
        (
            max_side,
            ((max_side as f64) * gh / gw).round().max(1.0) as u32,
        )
    } else {
        (
            ((max_side as f64) * gw / gh).round().max(1.0) as u32,
            max_side,
        )
    };
    let lon_of = |x: f64| west + (east - west) * x / ow as f64;
    let lat_of = |y: f64| north - (north - south) * y / oh as f64;
    let (cols, rows) = (ow / STEP + 2, oh / STEP + 2);
    let lattice: Vec<Option<(f64, f64)>> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (c, r)))
        .map(|(c, r)| fit.to_pixel(lon_of((c * STEP) as f64), lat_of((r * STEP) as f64)))
        .collect();
    let (sw, sh) = (img.width() as f64, img.height() as f64);
    let mut out = RgbaImage::new(ow, oh);
    for y in 0..oh {
        for x in 0..ow {
            let (c, r) = ((x / STEP) as usize, (y / STEP) as usize);
            let (fx, fy) = (
                (x % STEP) as f64 / STEP as f64,
                (y % STEP) as f64 / STEP as f64,
            );
            let at = |dc: usize, dr: usize| lattice[(r + dr) * cols as usize + c + dc];
            let (Some(a), Some(b), Some(cc), Some(d)) = (at(0, 0), at(1, 0), at(0, 1), at(1, 1))
            else {
                continue;
            };
            let px =
                (a.0 * (1.0 - fx) + b.0 * fx) * (1.0 - fy) + (cc.0 * (1.0 - fx) + d.0 * fx) * fy;
            let py =
                (a.1 * (1.0 - fx) + b.1 * fx) * (1.0 - fy) + (cc.1 * (1.0 - fx) + d.1 * fx) * fy;
            if !(px >= 0.0 && py >= 0.0 && px < sw - 1.0 && py < sh - 1.0) {
                continue;
            }
            let (x0, y0) = (px.floor() as u32, py.floor() as u32);
            let (tx, ty) = (px - x0 as f64, py - y0 as f64);
            let mut rgb = [0.0f64; 3];
            for (dx, dy, wgt) in [
                (0, 0, (1.0 - tx) * (1.0 - ty)),
                (1, 0, tx * (1.0 - ty)),
                (0, 1, (1.0 - tx) * ty),
                (1, 1, tx * ty),
            ] {
                let p = img.get_pixel(x0 + dx, y0 + dy);
                for (ch, v) in rgb.iter_mut().zip(p.0) {
                    *ch += wgt * v as f64;
                }
            }
            out.put_pixel(
                x,
                y,
                Rgba([rgb[0] as u8, rgb[1] as u8, rgb[2] as u8, opacity]),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::transform::{fit, Gcp, Requested};

    #[test]
    fn a_north_up_sketch_warps_onto_its_footprint() {
        // 200×100 px at about 1 m per pixel, north up, west edge at lon 106.8.
        let k = crate::spatial::distance::metres_per_deg_lon(39.6);
        let m = crate::spatial::distance::METRES_PER_DEG_LAT;
        let g = |px: f64, py: f64| Gcp {
            px,
            py,
            lon: 106.8 + px / k,
            lat: 39.6 - py / m,
        };
        let f = fit(
            &[g(0.0, 0.0), g(200.0, 0.0), g(200.0, 100.0), g(0.0, 100.0)],
            Requested::Auto,
            1.0,
        )
        .unwrap();
        let b = footprint(&f, 200, 100).unwrap();
        assert!((b[0] - 106.8).abs() < 1e-7 && (b[3] - 39.6).abs() < 1e-7);
        let img = RgbImage::from_fn(200, 100, |x, _| {
            if x < 100 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let out = warp(&img, &f, b, 400, 200);
        assert_eq!((out.width(), out.height()), (400, 200));
        assert_eq!(out.get_pixel(50, 100).0, [255, 0, 0, 200]);
        assert_eq!(out.get_pixel(350, 100).0, [0, 0, 255, 200]);
    }
}
