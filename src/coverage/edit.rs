//! Planner edits on a coverage: split a polygon along a drawn line, merge neighbours.
//!
//! Both keep vertices exact, so the results still share edges with their neighbours vertex for
//! vertex: a split inserts each cut point once and gives it to both pieces; a merge drops the
//! edges the inputs share and chains what is left, without re-computing any coordinate.
//! Coordinates are treated as planar (lon/lat over a few kilometres).

use geo::{Area, BooleanOps, Coord, LineString, MultiPolygon, Polygon};
use geo::{Contains, InteriorPoint};
use std::collections::{BTreeMap, HashMap};

/// Why an edit could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the line has fewer than two distinct points")]
    ShortLine,
    #[error(
        "the line does not cut the polygon into pieces: draw it across, from outside to outside"
    )]
    NoCut,
    #[error("merging needs at least two polygons")]
    TooFew,
    #[error("the polygons do not share a border, so they cannot be merged into one")]
    NotAdjacent,
}

/// A coordinate's exact bits, hashable.
type Key = (u64, u64);
/// An edge from one coordinate to another.
type Edge = (Coord<f64>, Coord<f64>);
/// Cut points on a segment: (parameter along it, point).
type Cuts = Vec<(f64, Coord<f64>)>;

/// A coordinate as a hashable key (exact bits).
fn key(c: Coord<f64>) -> Key {
    (c.x.to_bits(), c.y.to_bits())
}

fn cross(a: Coord<f64>, b: Coord<f64>) -> f64 {
    a.x * b.y - a.y * b.x
}

/// Where segment p→p2 meets q→q2, as (t on p, u on q), for a single crossing or touch; `None`
/// when they miss or are parallel (a line running along an edge does not cut it).
fn intersect(p: Coord<f64>, p2: Coord<f64>, q: Coord<f64>, q2: Coord<f64>) -> Option<(f64, f64)> {
    let r = p2 - p;
    let s = q2 - q;
    let denom = cross(r, s);
    let scale = (r.x.abs() + r.y.abs()) * (s.x.abs() + s.y.abs());
    if denom.abs() <= 1e-14 * scale {
        return None;
    }
    let qp = q - p;
    let t = cross(qp, s) / denom;
    let u = cross(qp, r) / denom;
    const EPS: f64 = 1e-9;
    if (-EPS..=1.0 + EPS).contains(&t) && (-EPS..=1.0 + EPS).contains(&u) {
        Some((t.clamp(0.0, 1.0), u.clamp(0.0, 1.0)))
    } else {
        None
    }
}

/// Splits every polygon of `mp` that `line` cuts across; polygons it misses are returned whole.
/// The pieces share the cut edges exactly. Fails with [`EditError::NoCut`] when nothing was cut.
pub fn split(
    mp: &MultiPolygon<f64>,
    line: &LineString<f64>,
) -> Result<Vec<Polygon<f64>>, EditError> {
    let mut pts: Vec<Coord<f64>> = Vec::with_capacity(line.0.len());
    for &c in &line.0 {
        if pts.last() != Some(&c) {
            pts.push(c);
        }
    }
    if pts.len() < 2 {
        return Err(EditError::ShortLine);
    }
    let mut out = Vec::new();
    let mut cut = false;
    for poly in &mp.0 {
        let pieces = split_polygon(poly, &pts);
        cut |= pieces.len() > 1;
        out.extend(pieces);
    }
    if cut {
        Ok(out)
    } else {
        Err(EditError::NoCut)
    }
}

/// Splits one polygon by the polyline `pts` (consecutive duplicates removed).
fn split_polygon(poly: &Polygon<f64>, pts: &[Coord<f64>]) -> Vec<Polygon<f64>> {
    let rings: Vec<&LineString<f64>> = std::iter::once(poly.exterior())
        .chain(poly.interiors())
        .collect();
    // Cut points per ring segment (ring, segment) → [(t, point)] and per line segment → [(u, point)].
    let mut on_ring: HashMap<(usize, usize), Cuts> = HashMap::new();
    let mut on_line: Vec<Cuts> = vec![Vec::new(); pts.len() - 1];
    for (ri, ring) in rings.iter().enumerate() {
        for (si, seg) in ring.0.windows(2).enumerate() {
            let (a, b) = (seg[0], seg[1]);
            for (li, l) in pts.windows(2).enumerate() {
                if let Some((t, u)) = intersect(a, b, l[0], l[1]) {
                    // Reuse the ring's own vertex when the cut lands on it.
                    let p = if t == 0.0 {
                        a
                    } else if t == 1.0 {
                        b
                    } else {
                        a + (b - a) * t
                    };
                    on_ring.entry((ri, si)).or_default().push((t, p));
                    on_line[li].push((u, p));
                }
            }
        }
    }
    if on_ring.is_empty() {
        return vec![poly.clone()];
    }
    // Undirected edges between exact coordinates.
    let mut edges: Vec<(Coord<f64>, Coord<f64>)> = Vec::new();
    let mut touched = vec![false; rings.len()];
    for (ri, ring) in rings.iter().enumerate() {
        if !on_ring.keys().any(|(r, _)| *r == ri) {
            continue;
        }
        touched[ri] = true;
        let mut seq: Vec<Coord<f64>> = Vec::new();
        for (si, seg) in ring.0.windows(2).enumerate() {
            seq.push(seg[0]);
            if let Some(cuts) = on_ring.get(&(ri, si)) {
                let mut cuts = cuts.clone();
                cuts.sort_by(|x, y| x.0.total_cmp(&y.0));
                seq.extend(cuts.into_iter().map(|(_, p)| p));
            }
        }
        seq.push(ring.0[0]);
        seq.dedup();
        edges.extend(seq.windows(2).map(|w| (w[0], w[1])));
    }
    let mut line_seq: Vec<Coord<f64>> = Vec::new();
    for (li, l) in pts.windows(2).enumerate() {
        line_seq.push(l[0]);
        let mut cuts = on_line[li].clone();
        cuts.sort_by(|x, y| x.0.total_cmp(&y.0));
        line_seq.extend(cuts.into_iter().map(|(_, p)| p));
    }
    line_seq.push(pts[pts.len() - 1]);
    line_seq.dedup();
    for w in line_seq.windows(2) {
        let mid = Coord {
            x: (w[0].x + w[1].x) / 2.0,
            y: (w[0].y + w[1].y) / 2.0,
        };
        if poly.contains(&geo::Point(mid)) {
            edges.push((w[0], w[1]));
        }
    }
    let faces = faces_of(&edges);
    let untouched_holes: Vec<&LineString<f64>> = poly
        .interiors()
        .iter()
        .enumerate()
        .filter(|(i, _)| !touched[i + 1])
        .map(|(_, h)| h)
        .collect();
    let mut pieces = Vec::new();
    for ring in faces {
        let face = Polygon::new(LineString::from(ring), vec![]);
        let Some(inner) = face.interior_point() else {
            continue;
        };
        // Faces inside a cut hole are not part of the polygon.
        if !poly.contains(&inner) {
            continue;
        }
        let holes = untouched_holes
            .iter()
            .filter(|h| face.contains(&geo::Point(h.0[0])))
            .map(|h| (*h).clone())
            .collect();
        pieces.push(Polygon::new(face.exterior().clone(), holes));
    }
    if pieces.len() < 2 {
        return vec![poly.clone()];
    }
    pieces
}

/// The bounded faces of a planar graph given as undirected edges (dangling edges pruned), as
/// counter-clockwise closed rings.
fn faces_of(edges: &[(Coord<f64>, Coord<f64>)]) -> Vec<Vec<Coord<f64>>> {
    let mut ids: HashMap<(u64, u64), usize> = HashMap::new();
    let mut nodes: Vec<Coord<f64>> = Vec::new();
    let mut id = |c: Coord<f64>, nodes: &mut Vec<Coord<f64>>| {
        *ids.entry(key(c)).or_insert_with(|| {
            nodes.push(c);
            nodes.len() - 1
        })
    };
    let mut adj: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(a, b) in edges {
        let (ia, ib) = (id(a, &mut nodes), id(b, &mut nodes));
        if ia == ib {
            continue;
        }
        let list = adj.entry(ia).or_default();
        if !list.contains(&ib) {
            list.push(ib);
            adj.entry(ib).or_default().push(ia);
        }
    }
    // Prune dangles: a line that ends inside the polygon adds nothing.
    loop {
        let leaves: Vec<usize> = adj
            .iter()
            .filter(|(_, v)| v.len() <= 1)
            .map(|(k, _)| *k)
            .collect();
        if leaves.is_empty() {
            break;
        }
        for n in leaves {
            if let Some(ns) = adj.remove(&n) {
                for m in ns {
                    if let Some(l) = adj.get_mut(&m) {
                        l.retain(|&x| x != n);
                    }
                }
            }
        }
    }
    // Outgoing half-edges sorted counter-clockwise by angle.
    for (&n, list) in adj.iter_mut() {
        let o = nodes[n];
        list.sort_by(|&a, &b| {
            let (da, db) = (nodes[a] - o, nodes[b] - o);
            da.y.atan2(da.x).total_cmp(&db.y.atan2(db.x))
        });
    }
    let mut used: HashMap<(usize, usize), bool> = HashMap::new();
    let mut faces = Vec::new();
    for (&start, list) in &adj {
        for &next in list {
            if used.contains_key(&(start, next)) {
                continue;
            }
            let mut ring = vec![nodes[start]];
            let (mut u, mut v) = (start, next);
            let mut steps = 0;
            while !used.contains_key(&(u, v)) && steps <= 4 * edges.len() + 4 {
                used.insert((u, v), true);
                ring.push(nodes[v]);
                // Arriving at v from u, leave by the edge just clockwise of v→u: the face is on
                // the left, so bounded faces come out counter-clockwise.
                let out = &adj[&v];
                let back = out.iter().position(|&w| w == u).unwrap_or(0);
                let w = out[(back + out.len() - 1) % out.len()];
                u = v;
                v = w;
                steps += 1;
            }
            if ring.len() >= 4 && ring.first() == ring.last() {
                let poly = Polygon::new(LineString::from(ring.clone()), vec![]);
                if poly.signed_area() > 0.0 {
                    faces.push(ring);
                }
            }
        }
    }
    faces
}

/// Merges neighbouring polygons into one. Edges the inputs share (vertex for vertex) are
/// dropped and the rest chained, so every other vertex stays exactly where it was; inputs whose
/// shared borders do not match vertex for vertex fall back to a boolean union.
pub fn merge(polys: &[MultiPolygon<f64>]) -> Result<Polygon<f64>, EditError> {
    if polys.len() < 2 {
        return Err(EditError::TooFew);
    }
    if let Some(p) = merge_exact(polys) {
        return Ok(p);
    }
    let mut acc = polys[0].clone();
    for p in &polys[1..] {
        acc = acc.union(p);
    }
    if acc.0.len() == 1 {
        Ok(acc.0.remove(0))
    } else {
        Err(EditError::NotAdjacent)
    }
}

fn merge_exact(polys: &[MultiPolygon<f64>]) -> Option<Polygon<f64>> {
    use geo::algorithm::orient::{Direction, Orient};
    let mut directed: HashMap<(Key, Key), Edge> = HashMap::new();
    for mp in polys {
        let mp = mp.orient(Direction::Default);
        for p in &mp.0 {
            for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                for w in ring.0.windows(2) {
                    if w[0] == w[1] {
                        continue;
                    }
                    let (a, b) = (key(w[0]), key(w[1]));
                    // A shared edge runs the other way in the neighbour: both go.
                    if directed.remove(&(b, a)).is_none() {
                        directed.insert((a, b), (w[0], w[1]));
                    }
                }
            }
        }
    }
    // Chain the remaining edges into rings.
    let mut from: HashMap<Key, Vec<Edge>> = HashMap::new();
    for (_, (a, b)) in directed {
        from.entry(key(a)).or_default().push((a, b));
    }
    let mut rings: Vec<LineString<f64>> = Vec::new();
    while let Some(start) = from
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| *k)
        .min()
    {
        let first = from.get_mut(&start)?.pop()?;
        let mut ring = vec![first.0, first.1];
        let mut at = first.1;
        while key(at) != start {
            // A pinch point with several ways on: the rings would not be simple.
            let next = from.get_mut(&key(at))?;
            if next.len() != 1 {
                return None;
            }
            let e = next.pop()?;
            ring.push(e.1);
            at = e.1;
            if ring.len() > 1_000_000 {
                return None;
            }
        }
        rings.push(LineString::from(ring));
    }
    let (shells, holes): (Vec<LineString<f64>>, Vec<LineString<f64>>) = rings
        .into_iter()
        .partition(|r| Polygon::new(r.clone(), vec![]).signed_area() > 0.0);
    if shells.len() != 1 {
        return None;
    }
    Some(Polygon::new(shells[0].clone(), holes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, Validation};

    fn square(x: f64, y: f64, s: f64) -> Polygon<f64> {
        polygon![(x: x, y: y), (x: x + s, y: y), (x: x + s, y: y + s), (x: x, y: y + s), (x: x, y: y)]
    }

    fn vertices(p: &Polygon<f64>) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = p.exterior().0.iter().map(|c| key(*c)).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn a_straight_cut_gives_two_halves_sharing_the_cut() {
        let sq = MultiPolygon(vec![square(0.0, 0.0, 1.0)]);
        let line = LineString::from(vec![(0.5, -1.0), (0.5, 2.0)]);
        let pieces = split(&sq, &line).unwrap();
        assert_eq!(pieces.len(), 2);
        let total: f64 = pieces.iter().map(|p| p.unsigned_area()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        for p in &pieces {
            assert!((p.unsigned_area() - 0.5).abs() < 1e-12);
            assert!(p.is_valid());
        }
        let shared: Vec<_> = vertices(&pieces[0])
            .into_iter()
            .filter(|v| vertices(&pieces[1]).contains(v))
            .collect();
        assert_eq!(shared.len(), 2, "both pieces hold the two cut points");
    }

    #[test]
    fn a_zigzag_line_makes_three_pieces_and_dangling_ends_are_ignored() {
        let sq = MultiPolygon(vec![square(0.0, 0.0, 3.0)]);
        // Enters at the bottom, leaves at the top, comes back in and leaves at the bottom.
        let line = LineString::from(vec![(1.0, -1.0), (1.0, 4.0), (2.0, 4.0), (2.0, -1.0)]);
        let pieces = split(&sq, &line).unwrap();
        assert_eq!(pieces.len(), 3);
        // A line that starts inside and leaves cuts nothing.
        let dangling = LineString::from(vec![(1.5, 1.5), (1.5, 5.0)]);
        assert_eq!(split(&sq, &dangling), Err(EditError::NoCut));
        let outside = LineString::from(vec![(5.0, 0.0), (6.0, 1.0)]);
        assert_eq!(split(&sq, &outside), Err(EditError::NoCut));
        assert_eq!(
            split(&sq, &LineString::from(vec![(1.0, 1.0), (1.0, 1.0)])),
            Err(EditError::ShortLine)
        );
    }

    #[test]
    fn a_cut_through_a_vertex_reuses_it() {
        let sq = MultiPolygon(vec![square(0.0, 0.0, 1.0)]);
        let diagonal = LineString::from(vec![(-1.0, -1.0), (2.0, 2.0)]);
        let pieces = split(&sq, &diagonal).unwrap();
        assert_eq!(pieces.len(), 2);
        for p in &pieces {
            assert_eq!(vertices(p).len(), 3, "a triangle: {p:?}");
        }
    }

    #[test]
    fn holes_go_to_the_piece_that_holds_them() {
        let outer = square(0.0, 0.0, 4.0);
        let hole = square(0.5, 0.5, 1.0).exterior().clone();
        let with_hole = Polygon::new(outer.exterior().clone(), vec![hole]);
        let line = LineString::from(vec![(3.0, -1.0), (3.0, 5.0)]);
        let pieces = split(&MultiPolygon(vec![with_hole.clone()]), &line).unwrap();
        assert_eq!(pieces.len(), 2);
        let total: f64 = pieces.iter().map(|p| p.unsigned_area()).sum();
        assert!((total - with_hole.unsigned_area()).abs() < 1e-12);
        assert_eq!(pieces.iter().map(|p| p.interiors().len()).sum::<usize>(), 1);
        // A cut through the hole: the hole's inside is no piece.
        let through = LineString::from(vec![(1.0, -1.0), (1.0, 5.0)]);
        let pieces = split(&MultiPolygon(vec![with_hole.clone()]), &through).unwrap();
        assert_eq!(pieces.len(), 2);
        let total: f64 = pieces.iter().map(|p| p.unsigned_area()).sum();
        assert!((total - with_hole.unsigned_area()).abs() < 1e-12);
    }

    #[test]
    fn merge_drops_the_shared_edge_and_keeps_every_other_vertex() {
        let a = MultiPolygon(vec![square(0.0, 0.0, 1.0)]);
        let line = LineString::from(vec![(0.3, -1.0), (0.6, 2.0)]);
        let halves = split(&a, &line).unwrap();
        let merged = merge(&[
            MultiPolygon(vec![halves[0].clone()]),
            MultiPolygon(vec![halves[1].clone()]),
        ])
        .unwrap();
        assert!((merged.unsigned_area() - 1.0).abs() < 1e-12);
        assert!(merged.is_valid());
        // The four corners plus the two former cut points (now collinear on the boundary).
        assert_eq!(vertices(&merged).len(), 6);
        for v in vertices(&square(0.0, 0.0, 1.0)) {
            assert!(vertices(&merged).contains(&v));
        }
    }

    #[test]
    fn merging_apart_polygons_is_refused() {
        let a = MultiPolygon(vec![square(0.0, 0.0, 1.0)]);
        let b = MultiPolygon(vec![square(3.0, 0.0, 1.0)]);
        assert_eq!(merge(&[a.clone(), b]), Err(EditError::NotAdjacent));
        assert_eq!(merge(&[a]), Err(EditError::TooFew));
    }

    #[test]
    fn merge_falls_back_to_a_union_when_vertices_do_not_match() {
        // b's left edge has no vertex where a's corners are: a T-junction.
        let a = MultiPolygon(vec![square(0.0, 0.0, 1.0)]);
        let b = MultiPolygon(vec![
            polygon![(x: 1.0, y: -1.0), (x: 2.0, y: -1.0), (x: 2.0, y: 2.0), (x: 1.0, y: 2.0), (x: 1.0, y: -1.0)],
        ]);
        let merged = merge(&[a, b]).unwrap();
        assert!((merged.unsigned_area() - 4.0).abs() < 1e-9);
    }
}
