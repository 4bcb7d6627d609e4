//! Thinning (Zhang–Suen) of ink to one-pixel skeletons, and snapping of dangling line ends:
//! a stroke that stops short of the line it was meant to meet is extended along its own
//! direction to the first ink it reaches within the snap distance.

use super::mask::Mask;

const NEIGHBOURS: [(isize, isize); 8] = [
    (0, -1),
    (1, -1),
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
];

/// Zhang–Suen thinning.
pub fn thin(m: &Mask) -> Mask {
    let mut s = m.clone();
    let (w, h) = (s.width as isize, s.height as isize);
    let mut candidates: Vec<usize> = (0..s.data.len()).filter(|&i| s.data[i]).collect();
    loop {
        let mut changed = false;
        for step in 0..2 {
            let mut remove = Vec::new();
            for &i in &candidates {
                if !s.data[i] {
                    continue;
                }
                let (x, y) = ((i % s.width) as isize, (i / s.width) as isize);
                let mut p = [false; 8];
                for (k, &(dx, dy)) in NEIGHBOURS.iter().enumerate() {
                    let (nx, ny) = (x + dx, y + dy);
                    p[k] = nx >= 0 && ny >= 0 && nx < w && ny < h && s.data[(ny * w + nx) as usize];
                }
                let b = p.iter().filter(|&&v| v).count();
                if !(2..=6).contains(&b) {
                    continue;
                }
                let a = (0..8).filter(|&k| !p[k] && p[(k + 1) % 8]).count();
                if a != 1 {
                    continue;
                }
                // p[0]=N, p[2]=E, p[4]=S, p[6]=W
                let ok = if step == 0 {
                    !(p[2] && p[4] && (p[0] || p[6]))
                } else {
                    !(p[0] && p[6] && (p[2] || p[4]))
                };
                if ok {
                    remove.push(i);
                }
            }
            for &i in &remove {
                s.data[i] = false;
            }
            changed |= !remove.is_empty();
        }
        if !changed {
            break;
        }
        candidates.retain(|&i| s.data[i]);
    }
    s
}

fn skeleton_neighbours(s: &Mask, x: usize, y: usize) -> Vec<(usize, usize)> {
    NEIGHBOURS
        .iter()
        .filter_map(|&(dx, dy)| {
            let (nx, ny) = (x as isize + dx, y as isize + dy);
            s.get_i(nx, ny).then_some((nx as usize, ny as usize))
        })
        .collect()
}

/// Skeleton pixels with exactly one neighbour.
pub fn endpoints(s: &Mask) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for y in 0..s.height {
        for x in 0..s.width {
            if s.get(x, y) && skeleton_neighbours(s, x, y).len() == 1 {
                out.push((x, y));
            }
        }
    }
    out
}

/// A dangling end and where it was joined to.
#[derive(Debug, Clone, PartialEq)]
pub struct Snap {
    pub from: (usize, usize),
    /// `None` when nothing was found within the snap distance: the line stays open
    pub to: Option<(usize, usize)>,
}

/// Follows the skeleton back from an end for up to `len` pixels; returns the pixels walked and
/// whether the walk ran the full length without meeting a junction.
fn trace_back(s: &Mask, start: (usize, usize), len: usize) -> (Vec<(usize, usize)>, bool) {
    let mut path = vec![start];
    let mut prev = start;
    let mut cur = start;
    for _ in 0..len {
        let next: Vec<_> = skeleton_neighbours(s, cur.0, cur.1)
            .into_iter()
            .filter(|&p| p != prev && !path.contains(&p))
            .collect();
        if next.len() != 1 {
            return (path, false);
        }
        prev = cur;
        cur = next[0];
        path.push(cur);
    }
    (path, true)
}

/// Extends every dangling stroke end of `ink` (whose skeleton is `skeleton`) that points at
/// other ink within `snap_px`, drawing the bridge into `ink`. Ends of short stubs (text,
/// scribbles) are left alone.
pub fn snap_dangling_ends(
    ink: &mut Mask,
    skeleton: &Mask,
    snap_px: f64,
    min_stroke_px: usize,
) -> Vec<Snap> {
    let mut snaps = Vec::new();
    for end in endpoints(skeleton) {
        let (path, long_enough) = trace_back(skeleton, end, min_stroke_px);
        if !long_enough {
            continue;
        }
        let Some(&back) = path.last() else { continue };
        let (dx, dy) = (end.0 as f64 - back.0 as f64, end.1 as f64 - back.1 as f64);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            continue;
        }
        let (ux, uy) = (dx / len, dy / len);
        // Ink of this stroke's own end (its width) must not count as a hit: start beyond it.
        let own_width = {
            let mut t = 1.0;
            while t < snap_px
                && ink.get_i(
                    (end.0 as f64 + ux * t).round() as isize,
                    (end.1 as f64 + uy * t).round() as isize,
                )
            {
                t += 1.0;
            }
            t
        };
        let mut hit = None;
        'search: for step in (own_width as usize + 1)..=(snap_px as usize) {
            let t = step as f64;
            // A narrow cone: straight ahead first, then up to about ±12°.
            for &offset in &[0.0, 0.1, -0.1, 0.2, -0.2] {
                let (cx, cy) = (ux - uy * offset, uy + ux * offset);
                let (px, py) = (
                    (end.0 as f64 + cx * t).round() as isize,
                    (end.1 as f64 + cy * t).round() as isize,
                );
                if ink.get_i(px, py) {
                    hit = Some((px as usize, py as usize));
                    break 'search;
                }
            }
        }
        if let Some(to) = hit {
            ink.draw_line(
                (end.0 as isize, end.1 as isize),
                (to.0 as isize, to.1 as isize),
                1,
            );
        }
        snaps.push(Snap { from: end, to: hit });
    }
    snaps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(m: &mut Mask, x0: usize, x1: usize, y0: usize, y1: usize) {
        for y in y0..y1 {
            for x in x0..x1 {
                m.set(x, y, true);
            }
        }
    }

    #[test]
    fn thinning_gives_one_pixel_lines() {
        let mut m = Mask::new(40, 20);
        bar(&mut m, 5, 35, 8, 13);
        let s = thin(&m);
        assert!(s.count() > 20 && s.count() < 40, "{}", s.count());
        for x in 10..30 {
            assert_eq!((0..20).filter(|&y| s.get(x, y)).count(), 1, "column {x}");
        }
        assert_eq!(endpoints(&s).len(), 2);
    }

    #[test]
    fn a_stroke_stopping_short_is_joined_to_the_line_ahead() {
        // A vertical wall at x = 50..53 and a horizontal stroke ending 15 px before it.
        let mut m = Mask::new(80, 40);
        bar(&mut m, 50, 53, 0, 40);
        bar(&mut m, 5, 35, 19, 22);
        let s = thin(&m);
        let snaps = snap_dangling_ends(&mut m, &s, 25.0, 8);
        assert!(snaps.iter().any(|s| s.to.is_some()), "{snaps:?}");
        assert!(m.get(42, 20), "the gap is bridged");
        // the free left end found nothing
        assert!(snaps.iter().any(|s| s.to.is_none()));
    }

    #[test]
    fn distant_ends_stay_open() {
        let mut m = Mask::new(100, 40);
        bar(&mut m, 90, 93, 0, 40);
        bar(&mut m, 5, 35, 19, 22);
        let s = thin(&m);
        let snaps = snap_dangling_ends(&mut m, &s, 25.0, 8);
        assert!(snaps.iter().all(|s| s.to.is_none()));
        assert!(!m.get(60, 20));
    }
}
