//! Adaptive binarisation of a photographed sketch: estimate the paper's brightness everywhere
//! (tolerant of uneven light and shadows), then call a pixel ink when it is clearly darker than
//! the paper around it. Works for faint pencil as for ballpoint.

use super::mask::Mask;
use image::GrayImage;

/// Side of the blocks over which the paper brightness is estimated, in working pixels.
const BLOCK: usize = 32;

/// Ink when darker than this fraction of the local paper brightness…
pub const DEFAULT_INK_RATIO: f64 = 0.80;
/// …and at least this many grey levels darker (so dark, noisy corners are not all ink).
const MIN_CONTRAST: f64 = 18.0;

/// The brightness of the paper at each block: a high percentile of the block, then the maximum
/// over the 3×3 neighbourhood (a block wholly covered by hatching borrows from its neighbours).
fn paper_levels(gray: &GrayImage) -> (Vec<f64>, usize, usize) {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let (bw, bh) = (w.div_ceil(BLOCK), h.div_ceil(BLOCK));
    let raw = gray.as_raw();
    let mut levels = vec![0.0; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let mut hist = [0u32; 256];
            let mut n = 0u32;
            for y in by * BLOCK..((by + 1) * BLOCK).min(h) {
                for &v in &raw[y * w + bx * BLOCK..y * w + ((bx + 1) * BLOCK).min(w)] {
                    hist[v as usize] += 1;
                    n += 1;
                }
            }
            // 90th percentile: robust to the few ink pixels a block holds
            let target = (n as f64 * 0.9) as u32;
            let mut acc = 0;
            let mut level = 255;
            for (v, &c) in hist.iter().enumerate() {
                acc += c;
                if acc > target {
                    level = v;
                    break;
                }
            }
            levels[by * bw + bx] = level as f64;
        }
    }
    let mut spread = levels.clone();
    for by in 0..bh {
        for bx in 0..bw {
            let mut m: f64 = 0.0;
            for ny in by.saturating_sub(1)..=(by + 1).min(bh - 1) {
                for nx in bx.saturating_sub(1)..=(bx + 1).min(bw - 1) {
                    m = m.max(levels[ny * bw + nx]);
                }
            }
            // Blend: keep local shading, but never trust a block far darker than its neighbours.
            spread[by * bw + bx] = levels[by * bw + bx].max(0.85 * m);
        }
    }
    (spread, bw, bh)
}

/// Ink mask of a greyscale image.
pub fn binarise(gray: &GrayImage, ink_ratio: f64) -> Mask {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let mut mask = Mask::new(w, h);
    if w == 0 || h == 0 {
        return mask;
    }
    let (levels, bw, bh) = paper_levels(gray);
    let raw = gray.as_raw();
    // Bilinear interpolation between block centres.
    let at = |bx: isize, by: isize| {
        let bx = bx.clamp(0, bw as isize - 1) as usize;
        let by = by.clamp(0, bh as isize - 1) as usize;
        levels[by * bw + bx]
    };
    for y in 0..h {
        let fy = (y as f64 + 0.5) / BLOCK as f64 - 0.5;
        let by = fy.floor() as isize;
        let ty = fy - by as f64;
        for x in 0..w {
            let fx = (x as f64 + 0.5) / BLOCK as f64 - 0.5;
            let bx = fx.floor() as isize;
            let tx = fx - bx as f64;
            let paper = (at(bx, by) * (1.0 - tx) + at(bx + 1, by) * tx) * (1.0 - ty)
                + (at(bx, by + 1) * (1.0 - tx) + at(bx + 1, by + 1) * tx) * ty;
            let v = raw[y * w + x] as f64;
            mask.data[y * w + x] = v < paper * ink_ratio && paper - v > MIN_CONTRAST;
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_faint_lines_under_uneven_light() {
        // Paper brightening from 150 (left, in shadow) to 240 (right); a pencil line 30 % darker
        // than the paper around it at x = 20 and x = 180.
        let img = GrayImage::from_fn(200, 100, |x, _| {
            let paper = 150.0 + 90.0 * x as f64 / 200.0;
            let v = if x == 20 || x == 180 {
                paper * 0.7
            } else {
                paper
            };
            image::Luma([v as u8])
        });
        let m = binarise(&img, DEFAULT_INK_RATIO);
        assert!(m.get(20, 50) && m.get(180, 50));
        assert_eq!(m.count(), 200, "only the two lines are ink");
    }

    #[test]
    fn blank_and_empty_images() {
        let blank = GrayImage::from_pixel(64, 64, image::Luma([230]));
        assert_eq!(binarise(&blank, DEFAULT_INK_RATIO).count(), 0);
        let empty = GrayImage::new(0, 0);
        assert_eq!(binarise(&empty, DEFAULT_INK_RATIO).count(), 0);
    }
}
