//! From a label image to polygons whose shared edges are identical. Each face's boundary is
//! traced along pixel edges (cracks); the boundary is cut at junctions (lattice points where
//! three faces meet, or two meet diagonally) into chains, each shared by exactly two faces; each
//! chain is simplified once, in a canonical direction, so both faces get the very same vertices.

use super::faces::{Labels, OUTSIDE};
use std::collections::HashMap;

type V = (u32, u32);

/// A traced face: rings of lattice coordinates (pixel corners), outer rings with positive
/// shoelace area in image coordinates (y down), holes negative.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedFace {
    pub label: u32,
    pub rings: Vec<Vec<(f64, f64)>>,
}

fn label_at(l: &Labels, x: i64, y: i64) -> u32 {
    if x < 0 || y < 0 || x as usize >= l.width || y as usize >= l.height {
        OUTSIDE
    } else {
        l.data[y as usize * l.width + x as usize]
    }
}

/// True where three or more faces meet at a lattice point, or two meet only diagonally.
fn is_junction(l: &Labels, v: V) -> bool {
    let (x, y) = (v.0 as i64, v.1 as i64);
    let a = label_at(l, x - 1, y - 1);
    let b = label_at(l, x, y - 1);
    let c = label_at(l, x - 1, y);
    let d = label_at(l, x, y);
    let mut distinct = vec![a, b, c, d];
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() >= 3 || (distinct.len() == 2 && a == d && b == c)
}

/// Directed boundary edges of every face, clockwise around each pixel on screen, so the face
/// lies to the right of each edge.
fn boundary_edges(l: &Labels) -> HashMap<u32, HashMap<V, Vec<V>>> {
    let mut out: HashMap<u32, HashMap<V, Vec<V>>> = HashMap::new();
    for y in 0..l.height {
        for x in 0..l.width {
            let f = l.data[y * l.width + x];
            if f == OUTSIDE {
                continue;
            }
            let (xi, yi) = (x as i64, y as i64);
            let (x0, y0, x1, y1) = (x as u32, y as u32, x as u32 + 1, y as u32 + 1);
            let mut add = |a: V, b: V| out.entry(f).or_default().entry(a).or_default().push(b);
            if label_at(l, xi, yi - 1) != f {
                add((x0, y0), (x1, y0));
            }
            if label_at(l, xi + 1, yi) != f {
                add((x1, y0), (x1, y1));
            }
            if label_at(l, xi, yi + 1) != f {
                add((x1, y1), (x0, y1));
            }
            if label_at(l, xi - 1, yi) != f {
                add((x0, y1), (x0, y0));
            }
        }
    }
    out
}

/// Walks the directed edges into closed rings. At a vertex with two ways on, the walk turns
/// right (towards the face), which keeps diagonally touching parts in separate rings.
fn rings_of(mut edges: HashMap<V, Vec<V>>) -> Vec<Vec<V>> {
    let mut starts: Vec<V> = edges.keys().copied().collect();
    starts.sort_unstable();
    let mut rings = Vec::new();
    for start in starts {
        while edges.get(&start).is_some_and(|v| !v.is_empty()) {
            let mut ring = vec![start];
            let mut prev = start;
            let mut cur = match edges.get_mut(&start).and_then(|v| v.pop()) {
                Some(c) => c,
                None => break,
            };
            while cur != start {
                ring.push(cur);
                let Some(outs) = edges.get_mut(&cur) else {
                    break;
                };
                if outs.is_empty() {
                    break;
                }
                let dir = (cur.0 as i64 - prev.0 as i64, cur.1 as i64 - prev.1 as i64);
                // right turn on screen (y down): (dx, dy) → (-dy, dx)
                let right = (-dir.1, dir.0);
                let pick = outs
                    .iter()
                    .position(|n| (n.0 as i64 - cur.0 as i64, n.1 as i64 - cur.1 as i64) == right)
                    .unwrap_or(0);
                let next = outs.swap_remove(pick);
                prev = cur;
                cur = next;
            }
            if ring.len() >= 4 {
                rings.push(ring);
            }
        }
    }
    rings
}

fn perpendicular_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len == 0.0 {
        ((p.0 - a.0).powi(2) + (p.1 - a.1).powi(2)).sqrt()
    } else {
        ((p.0 - a.0) * dy - (p.1 - a.1) * dx).abs() / len
    }
}

/// Douglas–Peucker keeping both ends; iterative, so long chains cannot overflow the stack.
fn douglas_peucker(points: &[(f64, f64)], eps: f64) -> Vec<(f64, f64)> {
    if points.len() <= 2 {
        return points.to_vec();
    }
    let mut keep = vec![false; points.len()];
    keep[0] = true;
    keep[points.len() - 1] = true;
    let mut stack = vec![(0, points.len() - 1)];
    while let Some((a, b)) = stack.pop() {
        let mut worst = (0.0, 0);
        for i in a + 1..b {
            let d = perpendicular_distance(points[i], points[a], points[b]);
            if d > worst.0 {
                worst = (d, i);
            }
        }
        if worst.0 > eps {
            keep[worst.1] = true;
            stack.push((a, worst.1));
            stack.push((worst.1, b));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(p, _)| *p)
        .collect()
}

fn to_f(v: V) -> (f64, f64) {
    (v.0 as f64, v.1 as f64)
}

/// Simplifies an open chain in its canonical direction (from the smaller end vertex).
fn simplify_chain(chain: &[V], eps: f64) -> Vec<(f64, f64)> {
    let key = |v: V| (v.1, v.0);
    let n = chain.len();
    let reverse = key(chain[0]) > key(chain[n - 1])
        || (chain[0] == chain[n - 1] && n > 2 && key(chain[1]) > key(chain[n - 2]));
    let mut pts: Vec<(f64, f64)> = chain.iter().map(|&v| to_f(v)).collect();
    if reverse {
        pts.reverse();
    }
    let mut out = if chain[0] == chain[n - 1] && n > 3 {
        // A loop from a junction back to itself: split at the farthest point so both halves
        // are open chains.
        let far = (1..n - 1)
            .max_by(|&i, &j| {
                let d = |k: usize| (pts[k].0 - pts[0].0).powi(2) + (pts[k].1 - pts[0].1).powi(2);
                d(i).total_cmp(&d(j))
            })
            .unwrap_or(n / 2);
        let mut first = douglas_peucker(&pts[..=far], eps);
        let second = douglas_peucker(&pts[far..], eps);
        first.extend_from_slice(&second[1..]);
        first
    } else {
        douglas_peucker(&pts, eps)
    };
    if reverse {
        out.reverse();
    }
    out
}

/// Traces every face of `l`, simplifying shared chains with tolerance `eps` (pixels).
pub fn trace(l: &Labels, eps: f64) -> Vec<TracedFace> {
    let mut by_face: Vec<(u32, HashMap<V, Vec<V>>)> = boundary_edges(l).into_iter().collect();
    by_face.sort_unstable_by_key(|(f, _)| *f);
    let mut junction_cache: HashMap<V, bool> = HashMap::new();
    let mut out = Vec::new();
    for (label, edges) in by_face {
        let mut rings = Vec::new();
        for ring in rings_of(edges) {
            let cuts: Vec<usize> = (0..ring.len())
                .filter(|&i| {
                    *junction_cache
                        .entry(ring[i])
                        .or_insert_with(|| is_junction(l, ring[i]))
                })
                .collect();
            let simplified: Vec<(f64, f64)> = if cuts.is_empty() {
                // A ring with no junction (an island): canonical start at its smallest vertex.
                let key = |v: V| (v.1, v.0);
                let start = (0..ring.len()).min_by_key(|&i| key(ring[i])).unwrap_or(0);
                let mut chain: Vec<V> = ring[start..]
                    .iter()
                    .chain(&ring[..start])
                    .copied()
                    .collect();
                chain.push(chain[0]);
                let mut s = simplify_chain(&chain, eps);
                s.pop();
                s
            } else {
                let mut s = Vec::new();
                for k in 0..cuts.len() {
                    let (a, b) = (cuts[k], cuts[(k + 1) % cuts.len()]);
                    let chain: Vec<V> = if a < b {
                        ring[a..=b].to_vec()
                    } else {
                        ring[a..].iter().chain(&ring[..=b]).copied().collect()
                    };
                    let part = simplify_chain(&chain, eps);
                    s.extend_from_slice(&part[..part.len() - 1]);
                }
                s
            };
            if simplified.len() >= 3 {
                let mut closed = simplified;
                closed.push(closed[0]);
                rings.push(closed);
            }
        }
        if !rings.is_empty() {
            out.push(TracedFace { label, rings });
        }
    }
    out
}

/// Shoelace area of a closed ring in image coordinates (positive for outer rings).
pub fn signed_area(ring: &[(f64, f64)]) -> f64 {
    ring.windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum::<f64>()
        / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::faces::faces;
    use crate::sketch::mask::Mask;

    fn two_faces() -> Labels {
        let mut m = Mask::new(60, 40);
        m.draw_line((5, 5), (54, 5), 1);
        m.draw_line((54, 5), (54, 34), 1);
        m.draw_line((54, 34), (5, 34), 1);
        m.draw_line((5, 34), (5, 5), 1);
        m.draw_line((30, 5), (38, 34), 1);
        faces(&m, 50)
    }

    #[test]
    fn neighbours_share_identical_vertices() {
        let l = two_faces();
        let t = trace(&l, 1.0);
        assert_eq!(t.len(), 2);
        let a: Vec<_> = t[0].rings[0].clone();
        let b: Vec<_> = t[1].rings[0].clone();
        // vertices on the shared (slanted) boundary appear in both rings, bit for bit
        let shared: Vec<_> = a.iter().filter(|p| b.contains(p)).collect();
        assert!(shared.len() >= 2, "{shared:?}");
        for p in &shared {
            assert!(p.0 > 25.0 && p.0 < 45.0, "{p:?}");
        }
        // areas add up to the drawing's interior, to the middle of the 3 px frame line, give or
        // take the half pixel that ties in the flood decide
        let total: f64 = t.iter().map(|f| signed_area(&f.rings[0])).sum();
        assert!(
            (total - 49.0 * 29.0).abs() < 0.6 * 2.0 * (49.0 + 29.0),
            "{total}"
        );
        assert!(t.iter().all(|f| signed_area(&f.rings[0]) > 0.0));
    }

    #[test]
    fn an_island_gives_a_hole() {
        let mut m = Mask::new(80, 80);
        m.draw_line((5, 5), (74, 5), 1);
        m.draw_line((74, 5), (74, 74), 1);
        m.draw_line((74, 74), (5, 74), 1);
        m.draw_line((5, 74), (5, 5), 1);
        m.draw_line((30, 30), (50, 30), 1);
        m.draw_line((50, 30), (50, 50), 1);
        m.draw_line((50, 50), (30, 50), 1);
        m.draw_line((30, 50), (30, 30), 1);
        let l = faces(&m, 50);
        let t = trace(&l, 1.0);
        assert_eq!(t.len(), 2);
        let outer = t
            .iter()
            .find(|f| f.rings.len() == 2)
            .expect("the outer face has a hole");
        assert!(signed_area(&outer.rings[1]) < 0.0);
        let inner = t.iter().find(|f| f.rings.len() == 1).unwrap();
        // the hole is exactly the island's ring, reversed
        let mut hole = outer.rings[1].clone();
        hole.reverse();
        let island = &inner.rings[0];
        assert_eq!(hole.len(), island.len());
        assert!(island.iter().all(|p| hole.contains(p)));
    }

    #[test]
    fn douglas_peucker_cases() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 0.0)).collect();
        assert_eq!(douglas_peucker(&line, 0.5), vec![(0.0, 0.0), (9.0, 0.0)]);
        let corner = vec![(0.0, 0.0), (5.0, 0.0), (5.0, 5.0)];
        assert_eq!(douglas_peucker(&corner, 0.5), corner);
        assert_eq!(douglas_peucker(&[(1.0, 1.0)], 0.5), vec![(1.0, 1.0)]);
    }
}
