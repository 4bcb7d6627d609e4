//! Coverage validation: checks that a set of sibling polygons (the grids of one community, the
//! micro-grids of one grid) tile their parent, in the manner of JTS/GEOS `CoverageValidator`.
//! Pure geometry over `geo` types: no I/O, no database, no knowledge of wire formats.
//!
//! Reported ([`IssueKind`]): invalid rings, overlaps, narrow gaps, neighbours whose shared
//! boundary does not have identical vertices, parts outside the parent, and parent area that no
//! polygon covers.
//!
//! # How
//!
//! * Tolerances and areas are metres. Coordinates are put into a local east/north frame about the
//!   centre of the coverage's bounding box ([`Frame`]), and every input vertex keeps its original
//!   lon/lat beside its metric position, so a vertex that nothing moves is written back
//!   bit-for-bit (the cleaner in [`super::clean`] relies on this).
//! * Vertices are interned: equal lon/lat is one vertex id, so "two neighbours share this edge"
//!   is a combinatorial fact rather than a float comparison.
//! * The rings are noded (proper crossings and vertices within 1 µm of an edge become shared
//!   vertices) and their edges form a planar arrangement. Every face of the arrangement knows
//!   which polygons cover it, from the winding carried by its boundary edges, with a
//!   point-in-polygon test only for polygons that do not touch the face's boundary (a polygon
//!   nested inside another). Overlaps are faces covered twice, gaps are uncovered faces,
//!   outside-parent parts are covered faces the parent does not cover. The cleaner edits this
//!   same decomposition, so what validate reports is exactly what clean can repair.
//! * A gap is *narrow* when its largest inscribed circle has a diameter below `gap_width_m`, i.e.
//!   it vanishes under an inward buffer of `gap_width_m / 2` (the JTS definition). An area /
//!   perimeter estimate would call a 6 m square hole "3 m wide"; the inscribed circle does not.
//!   It is found with a polylabel-style cell search that stops as soon as the answer is known.
//! * Invalid polygons are reported and then made valid for the rest of the analysis (non-zero
//!   winding union, original vertices restored), so one bow-tie does not hide its neighbours'
//!   overlaps.
//!
//! ```
//! use geo::{polygon, MultiPolygon};
//! use gridwatch::coverage::validate::{validate, IssueKind, ValidateOptions};
//!
//! let a = MultiPolygon(vec![polygon![
//!     (x: 106.800, y: 39.600), (x: 106.801, y: 39.600), (x: 106.801, y: 39.601),
//!     (x: 106.800, y: 39.601), (x: 106.800, y: 39.600)
//! ]]);
//! // b's west side bulges about 1.7 m into a
//! let b = MultiPolygon(vec![polygon![
//!     (x: 106.801, y: 39.600), (x: 106.802, y: 39.600), (x: 106.802, y: 39.601),
//!     (x: 106.801, y: 39.601), (x: 106.80098, y: 39.6005), (x: 106.801, y: 39.600)
//! ]]);
//! let polys = vec![("a".to_string(), a), ("b".to_string(), b)];
//! let issues = validate(&polys, None, &ValidateOptions::default());
//! assert_eq!(issues.len(), 1);
//! assert_eq!(issues[0].kind, IssueKind::Overlap);
//! assert_eq!(issues[0].codes, vec!["a", "b"]);
//! assert!((issues[0].area_m2.unwrap() - 95.0).abs() < 1.0);
//! //! ```

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use geo::algorithm::bool_ops::FillRule;
use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo::{BooleanOps, Coord, Line, LineString, MultiPolygon, Polygon, Validation};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};
use serde::Serialize;

use crate::spatial::distance::{metres_per_deg_lon, METRES_PER_DEG_LAT};

/// One problem found in a coverage.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageIssue {
    pub kind: IssueKind,
    /// The polygon(s) involved, sorted. Empty when only the parent is involved.
    pub codes: Vec<String>,
    /// Area of the offending piece in m², where the issue has an area.
    pub area_m2: Option<f64>,
    /// (lon, lat) of a representative point: inside the piece for areal issues.
    pub location: Option<(f64, f64)>,
    pub message: String,
}

/// What kind of problem a [`CoverageIssue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// A ring that self-intersects, has fewer than 4 points, is unclosed, has zero area or a
    /// non-finite coordinate (also: holes outside their shell, overlapping parts).
    InvalidRing,
    /// Two or more polygons cover the same area.
    Overlap,
    /// An uncovered area narrower than `gap_width_m`: between polygons, or between polygons and
    /// the parent's boundary (inside the parent when one is given).
    Gap,
    /// Two neighbours' boundaries run within `snap_m` of each other without sharing vertices.
    MismatchedEdge,
    /// Part of a polygon lies outside the parent.
    OutsideParent,
    /// Part of the parent covered by no polygon and wider than `gap_width_m`.
    ParentNotCovered,
}

/// Tolerances of [`validate`]; all in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidateOptions {
    /// Uncovered areas narrower than this are gaps (default 5 m).
    pub gap_width_m: f64,
    /// Vertices this close to a neighbour's boundary should be on it (default 1 m).
    pub snap_m: f64,
    /// Overlaps, gaps and outside parts below this area (m²) are not reported (default 0.01).
    pub min_area_m2: f64,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            gap_width_m: 5.0,
            snap_m: 1.0,
            min_area_m2: 0.01,
        }
    }
}

/// Checks `polys` as a coverage of `parent` (or just as a coverage when `parent` is `None`).
///
/// Without a parent, only holes of the union can be gaps, and wide holes are not issues (they
/// may be intended). With a parent, every uncovered part of it is either a `Gap` (narrow) or
/// `ParentNotCovered` (wide). Issues come sorted by kind, then codes.
pub fn validate(
    polys: &[(String, MultiPolygon<f64>)],
    parent: Option<&MultiPolygon<f64>>,
    opts: &ValidateOptions,
) -> Vec<CoverageIssue> {
    let (mut topo, problems) = Topo::build(polys, parent);
    let codes: Vec<&str> = polys.iter().map(|(c, _)| c.as_str()).collect();
    let mut issues = Vec::new();

    for p in problems {
        let (codes, who) = match codes.get(p.owner as usize) {
            Some(c) => (vec![c.to_string()], c.to_string()),
            None => (Vec::new(), "parent".to_string()),
        };
        issues.push(CoverageIssue {
            kind: IssueKind::InvalidRing,
            codes,
            area_m2: None,
            location: p.location.map(|c| (c.x, c.y)),
            message: format!("{who}: {}", p.message),
        });
    }

    issues.extend(mismatch_issues(&topo, &codes, opts.snap_m));

    node(&mut topo);
    let arr = Arrangement::build(&topo);
    issues.extend(face_issues(&topo, &arr, &codes, opts));

    issues.sort_by(|a, b| (a.kind, &a.codes).cmp(&(b.kind, &b.codes)));
    issues
}

/// Vertices within `snap_m` of another polygon's vertex or edge without being on it, grouped
/// per pair of polygons.
fn mismatch_issues(topo: &Topo, codes: &[&str], snap_m: f64) -> Vec<CoverageIssue> {
    if snap_m <= 0.0 {
        return Vec::new();
    }
    let owners = vertex_owners(topo, true);
    // (owner, owner) → (count, max distance, first vertex)
    let mut pairs: HashMap<(u32, u32), (usize, f64, Vid)> = HashMap::new();
    let mut note = |p: u32, q: u32, d: f64, v: Vid| {
        let key = if p < q { (p, q) } else { (q, p) };
        let e = pairs.entry(key).or_insert((0, 0.0, v));
        e.0 += 1;
        e.1 = e.1.max(d);
    };
    for nv in near_vertices(topo, snap_m, true) {
        for &p in &owners[nv.v as usize] {
            for &q in &owners[nv.w as usize] {
                note(p, q, nv.dist, nv.v);
            }
        }
    }
    for ne in near_edges(topo, snap_m, -1.0, true) {
        let q = topo.rings[ne.ring].owner;
        for &p in &owners[ne.v as usize] {
            note(p, q, ne.dist, ne.v);
        }
    }
    let name = |o: u32| codes.get(o as usize).copied();
    pairs
        .into_iter()
        .map(|((p, q), (count, max_d, v))| {
            let mut involved: Vec<String> = [p, q]
                .iter()
                .filter_map(|&o| name(o).map(str::to_string))
                .collect();
            involved.sort();
            let with = if involved.len() == 2 {
                format!("{} and {}", involved[0], involved[1])
            } else {
                format!("{} and the parent", involved.join(""))
            };
            let c = topo.lonlat(v);
            CoverageIssue {
                kind: IssueKind::MismatchedEdge,
                codes: involved,
                area_m2: None,
                location: Some((c.x, c.y)),
                message: format!(
                    "{with}: {count} {} within {snap_m} m of the other's boundary {} not on it \
                     (up to {max_d:.2} m off); shared edges must have identical vertices",
                    if count == 1 { "vertex" } else { "vertices" },
                    if count == 1 { "is" } else { "are" },
                ),
            }
        })
        .collect()
}

/// Overlaps, gaps, outside-parent parts and uncovered parent area, from the faces.
fn face_issues(
    topo: &Topo,
    arr: &Arrangement,
    codes: &[&str],
    opts: &ValidateOptions,
) -> Vec<CoverageIssue> {
    let mut issues = Vec::new();
    let named = |owners: &mut dyn Iterator<Item = u32>| -> Vec<String> {
        let mut v: Vec<String> = owners
            .filter_map(|o| codes.get(o as usize).map(|c| c.to_string()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    // polygon → (area outside, largest face)
    let mut outside: HashMap<u32, (f64, usize, f64)> = HashMap::new();
    for (f, face) in arr.faces.iter().enumerate() {
        if face.area <= opts.min_area_m2 {
            continue;
        }
        if face.cover.len() >= 2 {
            let involved = named(&mut face.cover.iter().copied());
            issues.push(CoverageIssue {
                kind: IssueKind::Overlap,
                message: format!("{} overlap by {:.2} m²", involved.join(" and "), face.area),
                codes: involved,
                area_m2: Some(face.area),
                location: Some(arr.face_location(topo, f)),
            });
        }
        if topo.has_parent && !face.in_parent {
            for &o in &face.cover {
                let e = outside.entry(o).or_insert((0.0, f, 0.0));
                e.0 += face.area;
                if face.area > e.2 {
                    e.1 = f;
                    e.2 = face.area;
                }
            }
        }
        let uncovered_here = face.cover.is_empty() && (!topo.has_parent || face.in_parent);
        if uncovered_here {
            let rings = arr.face_rings(topo, f);
            let narrow = !inscribed_radius_at_least(&rings, opts.gap_width_m / 2.0);
            let mut borders = arr
                .face_borders(f)
                .into_iter()
                .filter(|&(g, _)| g != NO_FACE)
                .flat_map(|(g, _)| arr.faces[g as usize].cover.iter().copied());
            let involved = named(&mut borders);
            if narrow {
                issues.push(CoverageIssue {
                    kind: IssueKind::Gap,
                    message: format!(
                        "gap of {:.2} m² narrower than {} m between {}",
                        face.area,
                        opts.gap_width_m,
                        if involved.is_empty() {
                            "the parent's boundary".to_string()
                        } else {
                            involved.join(", ")
                        }
                    ),
                    codes: involved,
                    area_m2: Some(face.area),
                    location: Some(arr.face_location(topo, f)),
                });
            } else if topo.has_parent {
                issues.push(CoverageIssue {
                    kind: IssueKind::ParentNotCovered,
                    message: format!("{:.2} m² of the parent is covered by no polygon", face.area),
                    codes: involved,
                    area_m2: Some(face.area),
                    location: Some(arr.face_location(topo, f)),
                });
            }
        }
    }
    for (o, (area, f, _)) in outside {
        if area <= opts.min_area_m2 {
            continue;
        }
        let involved = named(&mut std::iter::once(o));
        issues.push(CoverageIssue {
            kind: IssueKind::OutsideParent,
            message: format!("{}: {:.2} m² outside the parent", involved.join(""), area),
            codes: involved,
            area_m2: Some(area),
            location: Some(arr.face_location(topo, f)),
        });
    }
    issues
}

// ---------------------------------------------------------------------------------------------
// Shared machinery (also used by the cleaner): local frame, vertex-id topology, snapping
// candidates, noding, the face arrangement, and the inscribed-circle search.
// ---------------------------------------------------------------------------------------------

/// A vertex id in a [`Topo`].
pub(crate) type Vid = u32;
/// A point in the local metric frame (east, north metres).
pub(crate) type P2 = [f64; 2];
/// Face id of the unbounded face.
pub(crate) const NO_FACE: u32 = u32::MAX;
/// Vertices closer than this to an edge or vertex are noded onto it. Well below the 1 cm
/// resolution of 7-decimal lon/lat, well above the frame's rounding (~1e-10 m).
pub(crate) const NODE_EPS_M: f64 = 1e-6;
/// A vertex coming back from the (integer-snapping) overlay within this distance of an input
/// vertex is that input vertex. i_overlay's grid is ~1e-7 m for polygons of a few hundred metres.
const RESTORE_EPS_M: f64 = 1e-5;

/// Local equirectangular frame: east/north metres about (`lon0`, `lat0`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    lon0: f64,
    lat0: f64,
    kx: f64,
    ky: f64,
}

impl Frame {
    /// Frame about the centre of the bounding box of all finite coordinates.
    pub(crate) fn around<'a>(geoms: impl IntoIterator<Item = &'a MultiPolygon<f64>>) -> Frame {
        let (mut x0, mut y0) = (f64::INFINITY, f64::INFINITY);
        let (mut x1, mut y1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for mp in geoms {
            for c in mp.iter().flat_map(poly_rings).flat_map(|r| r.0.iter()) {
                if c.x.is_finite() && c.y.is_finite() {
                    x0 = x0.min(c.x);
                    y0 = y0.min(c.y);
                    x1 = x1.max(c.x);
                    y1 = y1.max(c.y);
                }
            }
        }
        let (lon0, lat0) = if x0 <= x1 {
            ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        } else {
            (0.0, 0.0)
        };
        Frame {
            lon0,
            lat0,
            // metres_per_deg_lon is 0 at the poles; keep the frame invertible
            kx: metres_per_deg_lon(lat0).abs().max(1e-3),
            ky: METRES_PER_DEG_LAT,
        }
    }

    pub(crate) fn to_m(self, c: Coord<f64>) -> P2 {
        [(c.x - self.lon0) * self.kx, (c.y - self.lat0) * self.ky]
    }

    pub(crate) fn to_lonlat(self, p: P2) -> Coord<f64> {
        Coord {
            x: self.lon0 + p[0] / self.kx,
            y: self.lat0 + p[1] / self.ky,
        }
    }

    /// Area in m² of a lon/lat geometry (the frame is linear, so this is exact in the frame).
    pub(crate) fn area_m2(self, mp: &MultiPolygon<f64>) -> f64 {
        use geo::Area;
        mp.unsigned_area() * self.kx * self.ky
    }
}

pub(crate) fn poly_rings(p: &Polygon<f64>) -> impl Iterator<Item = &LineString<f64>> {
    std::iter::once(p.exterior()).chain(p.interiors())
}

/// One ring of a polygon (or of the parent) as vertex ids, open (no repeated closing vertex),
/// oriented with the polygon's interior on the left: shells counter-clockwise, holes clockwise.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ring {
    /// Index of the polygon in the input; `n` is the parent.
    pub owner: u32,
    /// Index of the part in the owner's `MultiPolygon`.
    pub part: u32,
    pub hole: bool,
    pub ids: Vec<Vid>,
}

/// A coverage (and its parent) as rings over shared, interned vertices.
#[derive(Debug, Clone)]
pub(crate) struct Topo {
    pub frame: Frame,
    pub xy: Vec<P2>,
    /// The input lon/lat of a vertex; `None` for vertices made here (crossings, projections).
    pub orig: Vec<Option<Coord<f64>>>,
    pub rings: Vec<Ring>,
    /// Number of coverage polygons; owner `n` is the parent.
    pub n: usize,
    pub has_parent: bool,
    lookup: HashMap<(u64, u64), Vid>,
}

/// An invalid ring found while building a [`Topo`].
pub(crate) struct RingProblem {
    pub owner: u32,
    pub message: String,
    pub location: Option<Coord<f64>>,
}

impl Topo {
    /// Interns every polygon (owners `0..n`) and the parent (owner `n`); invalid polygons are
    /// reported and replaced by a valid repair that keeps their original vertices.
    pub(crate) fn build(
        polys: &[(String, MultiPolygon<f64>)],
        parent: Option<&MultiPolygon<f64>>,
    ) -> (Topo, Vec<RingProblem>) {
        let frame = Frame::around(polys.iter().map(|(_, g)| g).chain(parent));
        let mut topo = Topo {
            frame,
            xy: Vec::new(),
            orig: Vec::new(),
            rings: Vec::new(),
            n: polys.len(),
            has_parent: parent.is_some(),
            lookup: HashMap::new(),
        };
        let mut problems = Vec::new();
        for (o, mp) in polys.iter().map(|(_, g)| g).chain(parent).enumerate() {
            let found = check_polygon(mp, frame);
            if found.is_empty() {
                topo.add_valid(o as u32, mp);
            } else {
                topo.add_repaired(o as u32, mp);
                problems.extend(found.into_iter().map(|(message, location)| RingProblem {
                    owner: o as u32,
                    message,
                    location,
                }));
            }
        }
        (topo, problems)
    }

    pub(crate) fn parent_owner(&self) -> u32 {
        self.n as u32
    }

    fn intern(&mut self, c: Coord<f64>) -> Vid {
        // + 0.0 folds -0.0 into 0.0 so they intern together
        let key = ((c.x + 0.0).to_bits(), (c.y + 0.0).to_bits());
        if let Some(&v) = self.lookup.get(&key) {
            return v;
        }
        let v = self.xy.len() as Vid;
        self.xy.push(self.frame.to_m(c));
        self.orig.push(Some(c));
        self.lookup.insert(key, v);
        v
    }

    /// A new vertex at a metric position (a crossing, a projection).
    pub(crate) fn add_vertex(&mut self, p: P2) -> Vid {
        let v = self.xy.len() as Vid;
        self.xy.push(p);
        self.orig.push(None);
        v
    }

    /// Output lon/lat of a vertex: the input value when it has one, so untouched vertices
    /// round-trip bit-for-bit.
    pub(crate) fn lonlat(&self, v: Vid) -> Coord<f64> {
        match self.orig.get(v as usize).copied().flatten() {
            Some(c) => c,
            None => self.frame.to_lonlat(self.pt(v)),
        }
    }

    pub(crate) fn pt(&self, v: Vid) -> P2 {
        self.xy
            .get(v as usize)
            .copied()
            .unwrap_or([f64::NAN, f64::NAN])
    }

    /// Signed area (m², counter-clockwise positive) of a ring of ids.
    pub(crate) fn ring_area(&self, ids: &[Vid]) -> f64 {
        ring_area_pts(ids.iter().map(|&v| self.pt(v)))
    }

    /// Cleans, orients and stores a ring; degenerate rings are dropped.
    fn push_ring(&mut self, owner: u32, part: u32, hole: bool, ids: Vec<Vid>) {
        let mut ids = cleanup_ring(ids);
        if ids.len() < 3 {
            return;
        }
        let a = self.ring_area(&ids);
        if a == 0.0 {
            return;
        }
        if (a < 0.0) != hole {
            ids.reverse();
        }
        self.rings.push(Ring {
            owner,
            part,
            hole,
            ids,
        });
    }

    fn add_valid(&mut self, owner: u32, mp: &MultiPolygon<f64>) {
        for (part, poly) in mp.iter().enumerate() {
            for (k, ring) in poly_rings(poly).enumerate() {
                let ids = ring.0.iter().map(|&c| self.intern(c)).collect();
                self.push_ring(owner, part as u32, k > 0, ids);
            }
        }
    }

    /// Makes an invalid polygon valid (non-zero winding union of its oriented rings, so both
    /// lobes of a bow-tie survive) and maps the overlay's output back onto the input vertices.
    fn add_repaired(&mut self, owner: u32, mp: &MultiPolygon<f64>) {
        let mut originals = Vec::new();
        let mut metric = Vec::new();
        for poly in mp.iter() {
            let mut rings = Vec::new();
            for (k, ring) in poly_rings(poly).enumerate() {
                let mut pts: Vec<P2> = Vec::new();
                for &c in ring.0.iter().filter(|c| c.x.is_finite() && c.y.is_finite()) {
                    let v = self.intern(c);
                    let p = self.pt(v);
                    originals.push(GeomWithData::new(p, v));
                    if pts.last() != Some(&p) {
                        pts.push(p);
                    }
                }
                if pts.len() < 3 {
                    if k == 0 {
                        break; // no shell, so the holes mean nothing
                    }
                    continue;
                }
                let a = ring_area_pts(pts.iter().copied());
                if (a < 0.0) != (k > 0) {
                    pts.reverse();
                }
                rings.push(LineString::from(
                    pts.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>(),
                ));
            }
            if let Some((ext, holes)) = rings.split_first() {
                metric.push(Polygon::new(ext.clone(), holes.to_vec()));
            }
        }
        let fixed = MultiPolygon::new(metric)
            .union_with_fill_rule(&MultiPolygon::new(Vec::new()), FillRule::NonZero);
        let tree = RTree::bulk_load(originals);
        for (part, poly) in fixed.iter().enumerate() {
            for (k, ring) in poly_rings(poly).enumerate() {
                let ids = ring
                    .0
                    .iter()
                    .map(|c| {
                        let p = [c.x, c.y];
                        match tree.nearest_neighbor(&p) {
                            Some(o) if dist2(*o.geom(), p) <= RESTORE_EPS_M * RESTORE_EPS_M => {
                                o.data
                            }
                            _ => self.add_vertex(p),
                        }
                    })
                    .collect();
                self.push_ring(owner, part as u32, k > 0, ids);
            }
        }
    }

    /// Ring indices per owner (`n + 1` entries, the last the parent's).
    pub(crate) fn owner_rings(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.n + 1];
        for (i, r) in self.rings.iter().enumerate() {
            if let Some(v) = out.get_mut(r.owner as usize) {
                v.push(i);
            }
        }
        out
    }

    /// An owner's current rings as a lon/lat `MultiPolygon` (parts as in the input).
    pub(crate) fn owner_geometry(&self, owner: u32) -> MultiPolygon<f64> {
        // (part index, shell, holes)
        type Part = (u32, Option<LineString<f64>>, Vec<LineString<f64>>);
        let mut parts: Vec<Part> = Vec::new();
        for r in self.rings.iter().filter(|r| r.owner == owner) {
            let ls = self.ring_lonlat(&r.ids);
            let i = match parts.iter().position(|p| p.0 == r.part) {
                Some(i) => i,
                None => {
                    parts.push((r.part, None, Vec::new()));
                    parts.len() - 1
                }
            };
            if r.hole {
                parts[i].2.push(ls);
            } else {
                parts[i].1 = Some(ls);
            }
        }
        MultiPolygon::new(
            parts
                .into_iter()
                .filter_map(|(_, ext, holes)| ext.map(|e| Polygon::new(e, holes)))
                .collect(),
        )
    }

    /// A closed lon/lat ring from ids.
    pub(crate) fn ring_lonlat(&self, ids: &[Vid]) -> LineString<f64> {
        let mut cs: Vec<Coord<f64>> = ids.iter().map(|&v| self.lonlat(v)).collect();
        if let Some(&first) = cs.first() {
            cs.push(first);
        }
        LineString(cs)
    }
}

fn dist2(a: P2, b: P2) -> f64 {
    let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
    dx * dx + dy * dy
}

/// Signed shoelace area, relative to the first point to keep precision.
fn ring_area_pts(pts: impl Iterator<Item = P2>) -> f64 {
    let mut it = pts;
    let Some(o) = it.next() else { return 0.0 };
    let mut prev = [0.0, 0.0];
    let mut s = 0.0;
    for p in it {
        let q = [p[0] - o[0], p[1] - o[1]];
        s += prev[0] * q[1] - q[0] * prev[1];
        prev = q;
    }
    s / 2.0
}

/// Removes repeated vertices and spikes (a, b, a), cyclically. Returns an empty ring when fewer
/// than 3 vertices remain.
pub(crate) fn cleanup_ring(ids: Vec<Vid>) -> Vec<Vid> {
    let mut r = ids;
    loop {
        let mut out: Vec<Vid> = Vec::with_capacity(r.len());
        for &v in &r {
            if out.last() == Some(&v) {
                continue;
            }
            if out.len() >= 2 && out[out.len() - 2] == v {
                out.pop(); // a, b, a → a
                continue;
            }
            out.push(v);
        }
        while out.len() >= 2 && out.first() == out.last() {
            out.pop();
        }
        let m = out.len();
        if m >= 3 {
            if out[m - 2] == out[0] {
                out.pop(); // spike at the last vertex
            } else if out[m - 1] == out[1] {
                out.remove(0); // spike at the first vertex
            }
        }
        if out.len() < 3 {
            return Vec::new();
        }
        if out == r {
            return out;
        }
        r = out;
    }
}

/// Ring problems of one polygon: (message, location).
fn check_polygon(mp: &MultiPolygon<f64>, frame: Frame) -> Vec<(String, Option<Coord<f64>>)> {
    let mut found = Vec::new();
    let multi = mp.0.len() > 1;
    for (pi, poly) in mp.iter().enumerate() {
        for (k, ring) in poly_rings(poly).enumerate() {
            let role = match (multi, k) {
                (false, 0) => "exterior ring".to_string(),
                (false, k) => format!("hole {k}"),
                (true, 0) => format!("part {pi} exterior ring"),
                (true, k) => format!("part {pi} hole {k}"),
            };
            let first = ring.0.first().copied();
            if let Some(c) = ring
                .0
                .iter()
                .find(|c| !(c.x.is_finite() && c.y.is_finite()))
            {
                found.push((
                    format!("{role} has a non-finite coordinate ({}, {})", c.x, c.y),
                    None,
                ));
                continue;
            }
            if ring.0.first() != ring.0.last() {
                found.push((format!("{role} is not closed"), first));
            }
            let mut distinct: Vec<Coord<f64>> = Vec::new();
            for &c in &ring.0 {
                if distinct.last() != Some(&c) {
                    distinct.push(c);
                }
            }
            while distinct.len() >= 2 && distinct.first() == distinct.last() {
                distinct.pop();
            }
            if distinct.len() < 3 {
                found.push((format!("{role} has fewer than 4 points"), first));
                continue;
            }
            // a symmetric bow-tie also sums to zero: that one is a self-intersection, which
            // geo reports below
            let area = ring_area_pts(distinct.iter().map(|&c| frame.to_m(c)));
            if area.abs() < 1e-6 && find_self_crossing(ring).is_none() {
                found.push((format!("{role} has zero area"), first));
            }
        }
    }
    if !found.is_empty() {
        return found;
    }
    // geo's checks: self-intersections, holes outside shells, overlapping parts. Repeated
    // consecutive points are valid, so drop them first rather than let them look like a
    // self-touching ring.
    let mut deduped = mp.clone();
    for poly in deduped.iter_mut() {
        let fix = |ls: &mut LineString<f64>| ls.0.dedup();
        poly.exterior_mut(fix);
        poly.interiors_mut(|hs| hs.iter_mut().for_each(fix));
    }
    for err in deduped.validation_errors() {
        use geo::algorithm::validation::{InvalidMultiPolygon as M, InvalidPolygon as P};
        let (part, at) = match &err {
            M::InvalidPolygon(gi, P::SelfIntersection(role)) => {
                let ring = deduped.0.get(gi.0).and_then(|p| match role {
                    geo::algorithm::validation::RingRole::Exterior => Some(p.exterior()),
                    geo::algorithm::validation::RingRole::Interior(i) => p.interiors().get(*i),
                });
                (gi.0, ring.and_then(find_self_crossing))
            }
            M::InvalidPolygon(gi, _) => (gi.0, None),
            M::ElementsOverlaps(gi, _) | M::ElementsTouchOnALine(gi, _) => (gi.0, None),
        };
        let at = at.or_else(|| {
            deduped
                .0
                .get(part)
                .and_then(|p| p.exterior().0.first().copied())
        });
        found.push((err.to_string(), at));
    }
    found
}

/// A point where two non-adjacent segments of a ring meet.
fn find_self_crossing(ring: &LineString<f64>) -> Option<Coord<f64>> {
    let lines: Vec<Line<f64>> = ring.lines().collect();
    let n = lines.len();
    for i in 0..n {
        for j in i + 1..n {
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            if adjacent {
                continue;
            }
            match geo::algorithm::line_intersection::line_intersection(lines[i], lines[j]) {
                Some(geo::LineIntersection::SinglePoint { intersection, .. }) => {
                    return Some(intersection)
                }
                Some(geo::LineIntersection::Collinear { intersection }) => {
                    return Some(intersection.start)
                }
                None => {}
            }
        }
    }
    None
}

/// Owners of every vertex (empty for unused ids), sorted. Without `with_parent` the parent's
/// rings are ignored.
pub(crate) fn vertex_owners(topo: &Topo, with_parent: bool) -> Vec<Vec<u32>> {
    let mut owners = vec![Vec::new(); topo.xy.len()];
    for r in considered(topo, with_parent) {
        for &v in &r.ids {
            if let Some(o) = owners.get_mut(v as usize) {
                if !o.contains(&r.owner) {
                    o.push(r.owner);
                }
            }
        }
    }
    for o in owners.iter_mut() {
        o.sort_unstable();
    }
    owners
}

fn considered(topo: &Topo, with_parent: bool) -> impl Iterator<Item = &Ring> {
    let parent = topo.parent_owner();
    topo.rings
        .iter()
        .filter(move |r| with_parent || r.owner != parent)
}

fn disjoint(a: &[u32], b: &[u32]) -> bool {
    !a.iter().any(|x| b.contains(x))
}

/// Two vertices of different polygons (no polygon uses both) within the snap distance.
pub(crate) struct NearVertex {
    pub v: Vid,
    pub w: Vid,
    pub dist: f64,
}

/// A vertex within the snap distance of another polygon's edge (and farther than that from the
/// edge's ends, which are vertex snaps). `t` is the position of the foot along the segment.
pub(crate) struct NearEdge {
    pub v: Vid,
    pub ring: usize,
    pub seg: usize,
    pub t: f64,
    pub dist: f64,
}

/// All vertex pairs that [`NearVertex`] describes, `v < w`, sorted.
pub(crate) fn near_vertices(topo: &Topo, snap_m: f64, with_parent: bool) -> Vec<NearVertex> {
    let owners = vertex_owners(topo, with_parent);
    let used: Vec<Vid> = (0..owners.len() as Vid)
        .filter(|&v| !owners[v as usize].is_empty())
        .collect();
    let tree = RTree::bulk_load(
        used.iter()
            .map(|&v| GeomWithData::new(topo.pt(v), v))
            .collect(),
    );
    let mut out = Vec::new();
    for &v in &used {
        let p = topo.pt(v);
        for w in tree.locate_within_distance(p, snap_m * snap_m) {
            let w = w.data;
            if w > v && disjoint(&owners[v as usize], &owners[w as usize]) {
                out.push(NearVertex {
                    v,
                    w,
                    dist: dist2(p, topo.pt(w)).sqrt(),
                });
            }
        }
    }
    out.sort_by_key(|n| (n.v, n.w));
    out
}

/// All vertex-to-edge snaps that [`NearEdge`] describes, the nearest edge per (vertex, owner),
/// sorted by vertex, ring and segment; only those farther than `min_m` from the edge.
pub(crate) fn near_edges(topo: &Topo, snap_m: f64, min_m: f64, with_parent: bool) -> Vec<NearEdge> {
    let owners = vertex_owners(topo, with_parent);
    let mut edge_owners: HashMap<(Vid, Vid), Vec<u32>> = HashMap::new();
    let mut segs = Vec::new();
    for (ri, r) in topo.rings.iter().enumerate() {
        if !with_parent && r.owner == topo.parent_owner() {
            continue;
        }
        let m = r.ids.len();
        for i in 0..m {
            let (a, b) = (r.ids[i], r.ids[(i + 1) % m]);
            edge_owners.entry(ekey(a, b)).or_default().push(r.owner);
            let (pa, pb) = (topo.pt(a), topo.pt(b));
            segs.push(GeomWithData::new(
                Rectangle::from_corners(pa, pb),
                (ri as u32, i as u32),
            ));
        }
    }
    let tree = RTree::bulk_load(segs);
    let parent = topo.parent_owner();
    let mut best: HashMap<(Vid, u32), NearEdge> = HashMap::new();
    for (v, pv) in owners.iter().enumerate() {
        if pv.is_empty() {
            continue;
        }
        let v = v as Vid;
        let p = topo.pt(v);
        let env = AABB::from_corners(
            [p[0] - snap_m, p[1] - snap_m],
            [p[0] + snap_m, p[1] + snap_m],
        );
        for s in tree.locate_in_envelope_intersecting(&env) {
            let (ri, i) = (s.data.0 as usize, s.data.1 as usize);
            let r = &topo.rings[ri];
            if pv.contains(&r.owner) {
                continue;
            }
            let m = r.ids.len();
            let (a, b) = (r.ids[i], r.ids[(i + 1) % m]);
            if a == v || b == v {
                continue;
            }
            // an edge the vertex's own polygon also has is shared already
            if edge_owners
                .get(&ekey(a, b))
                .is_some_and(|os| !disjoint(os, pv))
            {
                continue;
            }
            let (pa, pb) = (topo.pt(a), topo.pt(b));
            let (d, t) = seg_dist(p, pa, pb);
            let s2 = snap_m * snap_m;
            if d > snap_m || d <= min_m || dist2(p, pa) <= s2 || dist2(p, pb) <= s2 {
                continue;
            }
            // A child's vertex on the parent's edge (or the parent's on a child's) is how a
            // finer coverage meets a coarser boundary; only vertices off it need snapping.
            if (r.owner == parent || pv.contains(&parent)) && d <= NODE_EPS_M {
                continue;
            }
            let e = best.entry((v, r.owner)).or_insert(NearEdge {
                v,
                ring: ri,
                seg: i,
                t,
                dist: d,
            });
            if d < e.dist {
                *e = NearEdge {
                    v,
                    ring: ri,
                    seg: i,
                    t,
                    dist: d,
                };
            }
        }
    }
    let mut out: Vec<NearEdge> = best.into_values().collect();
    out.sort_by_key(|n| (n.v, n.ring, n.seg));
    out
}

pub(crate) fn ekey(a: Vid, b: Vid) -> (Vid, Vid) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Distance from `p` to segment `ab` and the parameter of the foot.
pub(crate) fn seg_dist(p: P2, a: P2, b: P2) -> (f64, f64) {
    let (bx, by) = (b[0] - a[0], b[1] - a[1]);
    let (px, py) = (p[0] - a[0], p[1] - a[1]);
    let len2 = bx * bx + by * by;
    let t = if len2 > 0.0 {
        ((px * bx + py * by) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (px - t * bx, py - t * by);
    ((dx * dx + dy * dy).sqrt(), t)
}

/// Nodes all rings: merges vertices closer than `NODE_EPS_M`, inserts vertices lying on edges
/// and the crossing points of properly crossing edges into both edges, until nothing changes
/// (a crossing point computed in floating point can land a hair off its edges, so a second pass
/// may merge or insert it again; eight passes is far more than that ever needs).
pub(crate) fn node(topo: &mut Topo) {
    for _ in 0..8 {
        if !node_pass(topo) {
            break;
        }
    }
}

fn used_vertices(topo: &Topo) -> Vec<Vid> {
    let mut used: Vec<Vid> = topo
        .rings
        .iter()
        .flat_map(|r| r.ids.iter().copied())
        .collect();
    used.sort_unstable();
    used.dedup();
    used
}

fn orient(a: P2, b: P2, c: P2) -> Orientation {
    let co = |p: P2| Coord { x: p[0], y: p[1] };
    RobustKernel::orient2d(co(a), co(b), co(c))
}

fn opposite(a: Orientation, b: Orientation) -> bool {
    matches!(
        (a, b),
        (Orientation::Clockwise, Orientation::CounterClockwise)
            | (Orientation::CounterClockwise, Orientation::Clockwise)
    )
}

fn node_pass(topo: &mut Topo) -> bool {
    let eps2 = NODE_EPS_M * NODE_EPS_M;
    let used = used_vertices(topo);

    // 1. vertices closer than eps become the lower id (input vertices have the lower ids)
    let tree = RTree::bulk_load(
        used.iter()
            .map(|&v| GeomWithData::new(topo.pt(v), v))
            .collect(),
    );
    let mut merge: HashMap<Vid, Vid> = HashMap::new();
    for &v in &used {
        let mut target = v;
        for w in tree.locate_within_distance(topo.pt(v), eps2) {
            if w.data < v {
                let root = merge.get(&w.data).copied().unwrap_or(w.data);
                target = target.min(root);
            }
        }
        if target != v {
            merge.insert(v, target);
        }
    }
    if !merge.is_empty() {
        for r in topo.rings.iter_mut() {
            for v in r.ids.iter_mut() {
                if let Some(&t) = merge.get(v) {
                    *v = t;
                }
            }
            r.ids = cleanup_ring(std::mem::take(&mut r.ids));
        }
        topo.rings.retain(|r| !r.ids.is_empty());
        return true;
    }

    // 2. unique undirected edges
    let mut index: HashMap<(Vid, Vid), u32> = HashMap::new();
    let mut keys: Vec<(Vid, Vid)> = Vec::new();
    for r in &topo.rings {
        let m = r.ids.len();
        for i in 0..m {
            let k = ekey(r.ids[i], r.ids[(i + 1) % m]);
            index.entry(k).or_insert_with(|| {
                keys.push(k);
                (keys.len() - 1) as u32
            });
        }
    }
    let seg_tree = RTree::bulk_load(
        keys.iter()
            .enumerate()
            .map(|(i, &(a, b))| {
                GeomWithData::new(Rectangle::from_corners(topo.pt(a), topo.pt(b)), i as u32)
            })
            .collect(),
    );
    let mut inserts: HashMap<u32, Vec<(f64, Vid)>> = HashMap::new();

    // 2a. vertices on edges
    for &v in &used {
        let p = topo.pt(v);
        let env = AABB::from_corners(
            [p[0] - NODE_EPS_M, p[1] - NODE_EPS_M],
            [p[0] + NODE_EPS_M, p[1] + NODE_EPS_M],
        );
        for s in seg_tree.locate_in_envelope_intersecting(&env) {
            let (a, b) = keys[s.data as usize];
            if a == v || b == v {
                continue;
            }
            let (d, t) = seg_dist(p, topo.pt(a), topo.pt(b));
            if d <= NODE_EPS_M && t > 0.0 && t < 1.0 {
                inserts.entry(s.data).or_default().push((t, v));
            }
        }
    }

    // 2b. proper crossings
    let mut crossings = Vec::new();
    for (i, &(a, b)) in keys.iter().enumerate() {
        let (pa, pb) = (topo.pt(a), topo.pt(b));
        let env = AABB::from_corners(
            [pa[0].min(pb[0]), pa[1].min(pb[1])],
            [pa[0].max(pb[0]), pa[1].max(pb[1])],
        );
        for s in seg_tree.locate_in_envelope_intersecting(&env) {
            let j = s.data as usize;
            if j <= i {
                continue;
            }
            let (c, d) = keys[j];
            if a == c || a == d || b == c || b == d {
                continue;
            }
            let (pc, pd) = (topo.pt(c), topo.pt(d));
            if !opposite(orient(pa, pb, pc), orient(pa, pb, pd))
                || !opposite(orient(pc, pd, pa), orient(pc, pd, pb))
            {
                continue;
            }
            let (r, q) = (
                [pb[0] - pa[0], pb[1] - pa[1]],
                [pd[0] - pc[0], pd[1] - pc[1]],
            );
            let denom = r[0] * q[1] - r[1] * q[0];
            if denom == 0.0 {
                continue;
            }
            let ca = [pc[0] - pa[0], pc[1] - pa[1]];
            let t = ((ca[0] * q[1] - ca[1] * q[0]) / denom).clamp(0.0, 1.0);
            let u = ((ca[0] * r[1] - ca[1] * r[0]) / denom).clamp(0.0, 1.0);
            crossings.push((
                i as u32,
                j as u32,
                t,
                u,
                [pa[0] + t * r[0], pa[1] + t * r[1]],
            ));
        }
    }
    for (i, j, t, u, p) in crossings {
        let x = topo.add_vertex(p);
        inserts.entry(i).or_default().push((t, x));
        inserts.entry(j).or_default().push((u, x));
    }
    if inserts.is_empty() {
        return false;
    }
    for list in inserts.values_mut() {
        list.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        list.dedup_by_key(|x| x.1);
    }
    for r in topo.rings.iter_mut() {
        let m = r.ids.len();
        let mut out = Vec::with_capacity(m + 4);
        for i in 0..m {
            let (a, b) = (r.ids[i], r.ids[(i + 1) % m]);
            out.push(a);
            let Some(list) = index.get(&ekey(a, b)).and_then(|k| inserts.get(k)) else {
                continue;
            };
            // the list runs from the lower id to the higher one
            let fwd = a < b;
            let mut push = |v: Vid| {
                if v != a && v != b && out.last() != Some(&v) {
                    out.push(v);
                }
            };
            if fwd {
                list.iter().for_each(|&(_, v)| push(v));
            } else {
                list.iter().rev().for_each(|&(_, v)| push(v));
            }
        }
        r.ids = cleanup_ring(out);
    }
    topo.rings.retain(|r| !r.ids.is_empty());
    true
}

/// A bounded face of the arrangement.
#[derive(Debug, Clone)]
pub(crate) struct Face {
    /// Half-edge cycles with the face on their left: the outer boundary (counter-clockwise)
    /// first, then holes.
    pub cycles: Vec<Vec<u32>>,
    /// Area in m², holes subtracted.
    pub area: f64,
    /// Coverage polygons covering the face, ascending (the parent is not listed).
    pub cover: Vec<u32>,
    /// Whether the parent covers the face (false when there is no parent).
    pub in_parent: bool,
    /// min x, min y, max x, max y of the outer boundary.
    pub bbox: [f64; 4],
}

/// The planar arrangement of all noded rings: edges (with each owner's winding change),
/// half-edges (`2e` runs from the lower vertex id to the higher, `2e + 1` back), faces.
pub(crate) struct Arrangement {
    pub ends: Vec<[Vid; 2]>,
    /// Per edge: (owner, left winding minus right winding along `ends[0] → ends[1]`).
    pub nets: Vec<Vec<(u32, i32)>>,
    pub len: Vec<f64>,
    /// Outgoing half-edges grouped by origin vertex, counter-clockwise by angle.
    out: Vec<u32>,
    out_start: Vec<u32>,
    /// Position of each half-edge in `out`.
    pos: Vec<u32>,
    /// Face on the left of each half-edge (`NO_FACE` for the unbounded face).
    pub he_face: Vec<u32>,
    pub faces: Vec<Face>,
}

impl Arrangement {
    pub(crate) fn build(topo: &Topo) -> Arrangement {
        let mut index: HashMap<(Vid, Vid), usize> = HashMap::new();
        let mut ends: Vec<[Vid; 2]> = Vec::new();
        let mut nets: Vec<Vec<(u32, i32)>> = Vec::new();
        for r in &topo.rings {
            let m = r.ids.len();
            for i in 0..m {
                let (a, b) = (r.ids[i], r.ids[(i + 1) % m]);
                if a == b {
                    continue;
                }
                let k = ekey(a, b);
                let e = *index.entry(k).or_insert_with(|| {
                    ends.push([k.0, k.1]);
                    nets.push(Vec::new());
                    ends.len() - 1
                });
                let dir = if a < b { 1 } else { -1 };
                match nets[e].iter_mut().find(|x| x.0 == r.owner) {
                    Some(x) => x.1 += dir,
                    None => nets[e].push((r.owner, dir)),
                }
            }
        }
        // edges whose windings cancel (a ring doubling back, two parts of one polygon meeting)
        // bound nothing
        type Nets = Vec<(u32, i32)>;
        let (ends, nets): (Vec<[Vid; 2]>, Vec<Nets>) = ends
            .into_iter()
            .zip(nets)
            .filter_map(|(e, mut n)| {
                n.retain(|x| x.1 != 0);
                (!n.is_empty()).then_some((e, n))
            })
            .collect();
        let len: Vec<f64> = ends
            .iter()
            .map(|e| dist2(topo.pt(e[0]), topo.pt(e[1])).sqrt())
            .collect();

        // outgoing half-edges per vertex, sorted counter-clockwise
        let nv = topo.xy.len();
        let nh = ends.len() * 2;
        let mut deg = vec![0u32; nv + 1];
        let org = |h: usize| ends[h >> 1][h & 1];
        for h in 0..nh {
            deg[org(h) as usize] += 1;
        }
        let mut out_start = vec![0u32; nv + 1];
        for v in 0..nv {
            out_start[v + 1] = out_start[v] + deg[v];
        }
        let mut fill = out_start.clone();
        let mut out = vec![0u32; nh];
        for h in 0..nh {
            let v = org(h) as usize;
            out[fill[v] as usize] = h as u32;
            fill[v] += 1;
        }
        let angle = |h: u32| {
            let (a, b) = (topo.pt(org(h as usize)), topo.pt(org(h as usize ^ 1)));
            (b[1] - a[1]).atan2(b[0] - a[0])
        };
        let mut pos = vec![0u32; nh];
        for v in 0..nv {
            let (s, e) = (out_start[v] as usize, out_start[v + 1] as usize);
            let slice = &mut out[s..e];
            slice.sort_by(|&x, &y| angle(x).total_cmp(&angle(y)).then(x.cmp(&y)));
            for (k, &h) in slice.iter().enumerate() {
                pos[h as usize] = (s + k) as u32;
            }
        }
        let mut arr = Arrangement {
            ends,
            nets,
            len,
            out,
            out_start,
            pos,
            he_face: vec![NO_FACE; nh],
            faces: Vec::new(),
        };
        arr.trace_faces(topo);
        arr.compute_cover(topo);
        arr
    }

    pub(crate) fn org(&self, h: u32) -> Vid {
        self.ends[(h >> 1) as usize][(h & 1) as usize]
    }

    /// The next outgoing half-edge clockwise around the origin of `h`.
    pub(crate) fn cw_next(&self, h: u32) -> u32 {
        let v = self.org(h) as usize;
        let (s, e) = (self.out_start[v], self.out_start[v + 1]);
        let p = self.pos[h as usize];
        let q = if p == s { e - 1 } else { p - 1 };
        self.out[q as usize]
    }

    /// The next half-edge around the face on the left of `h`.
    pub(crate) fn face_next(&self, h: u32) -> u32 {
        self.cw_next(h ^ 1)
    }

    /// The half-edges leaving `v`, counter-clockwise.
    pub(crate) fn outgoing(&self, v: Vid) -> &[u32] {
        let v = v as usize;
        match (self.out_start.get(v), self.out_start.get(v + 1)) {
            (Some(&s), Some(&e)) => &self.out[s as usize..e as usize],
            _ => &[],
        }
    }

    pub(crate) fn degree(&self, v: Vid) -> u32 {
        let v = v as usize;
        self.out_start[v + 1] - self.out_start[v]
    }

    fn cycle_pts(&self, topo: &Topo, cycle: &[u32]) -> Vec<P2> {
        cycle.iter().map(|&h| topo.pt(self.org(h))).collect()
    }

    fn trace_faces(&mut self, topo: &Topo) {
        let nh = self.he_face.len();
        let mut seen = vec![false; nh];
        let mut pos_cycles: Vec<(Vec<u32>, f64)> = Vec::new();
        let mut neg_cycles: Vec<Vec<u32>> = Vec::new();
        for h0 in 0..nh as u32 {
            if seen[h0 as usize] {
                continue;
            }
            let mut cycle = Vec::new();
            let mut h = h0;
            loop {
                seen[h as usize] = true;
                cycle.push(h);
                h = self.face_next(h);
                if h == h0 || seen[h as usize] || cycle.len() > nh {
                    break;
                }
            }
            let a = ring_area_pts(cycle.iter().map(|&h| topo.pt(self.org(h))));
            if a > 0.0 {
                pos_cycles.push((cycle, a));
            } else {
                neg_cycles.push(cycle);
            }
        }
        // A negative cycle is the outside of a connected component: it is a hole of the
        // smallest face of another component around it, or part of the unbounded face.
        let mut comp: Vec<u32> = (0..topo.xy.len() as u32).collect();
        fn find(c: &mut [u32], mut x: u32) -> u32 {
            while c[x as usize] != x {
                c[x as usize] = c[c[x as usize] as usize];
                x = c[x as usize];
            }
            x
        }
        for e in &self.ends {
            let (a, b) = (find(&mut comp, e[0]), find(&mut comp, e[1]));
            if a != b {
                comp[a.max(b) as usize] = a.min(b);
            }
        }
        let mut holes: Vec<Vec<Vec<u32>>> = vec![Vec::new(); pos_cycles.len()];
        if neg_cycles.len() > 1 {
            let boxes: Vec<[f64; 4]> = pos_cycles
                .iter()
                .map(|(c, _)| bbox_of(&self.cycle_pts(topo, c)))
                .collect();
            let tree = RTree::bulk_load(
                boxes
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        GeomWithData::new(Rectangle::from_corners([b[0], b[1]], [b[2], b[3]]), i)
                    })
                    .collect(),
            );
            for cycle in neg_cycles {
                let Some(&h) = cycle.first() else { continue };
                let v = self.org(h);
                let p = topo.pt(v);
                let cv = find(&mut comp, v);
                let mut best: Option<(usize, f64)> = None;
                for cand in tree.locate_all_at_point(&p) {
                    let i = cand.data;
                    let (c, area) = &pos_cycles[i];
                    let Some(&h1) = c.first() else { continue };
                    if find(&mut comp, self.org(h1)) == cv {
                        continue;
                    }
                    if best.is_some_and(|(_, a)| *area >= a) {
                        continue;
                    }
                    if point_in_ring(p, &self.cycle_pts(topo, c)) {
                        best = Some((i, *area));
                    }
                }
                if let Some((i, _)) = best {
                    holes[i].push(cycle);
                }
            }
        }
        for (i, ((outer, area), hs)) in pos_cycles.into_iter().zip(holes).enumerate() {
            let bbox = bbox_of(&self.cycle_pts(topo, &outer));
            let hole_area: f64 = hs
                .iter()
                .map(|c| ring_area_pts(c.iter().map(|&h| topo.pt(self.org(h)))))
                .sum();
            let mut cycles = vec![outer];
            cycles.extend(hs);
            for c in &cycles {
                for &h in c {
                    self.he_face[h as usize] = i as u32;
                }
            }
            self.faces.push(Face {
                cycles,
                area: area + hole_area,
                cover: Vec::new(),
                in_parent: false,
                bbox,
            });
        }
    }

    /// Which owners cover each face: from the winding of its boundary edges, and for owners
    /// that do not touch its boundary, by a point-in-polygon test of an edge midpoint (which is
    /// then not on that owner's boundary, the rings being noded).
    fn compute_cover(&mut self, topo: &Topo) {
        let owner_rings = topo.owner_rings();
        let mut boxes = Vec::new();
        for (o, rings) in owner_rings.iter().enumerate() {
            let pts: Vec<P2> = rings
                .iter()
                .flat_map(|&r| topo.rings[r].ids.iter().map(|&v| topo.pt(v)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let b = bbox_of(&pts);
            boxes.push(GeomWithData::new(
                Rectangle::from_corners([b[0], b[1]], [b[2], b[3]]),
                o as u32,
            ));
        }
        let tree = RTree::bulk_load(boxes);
        let parent = topo.parent_owner();
        for f in 0..self.faces.len() {
            let mut cover: Vec<u32> = Vec::new();
            let mut touching: Vec<u32> = Vec::new();
            for c in &self.faces[f].cycles {
                for &h in c {
                    let sign = if h & 1 == 0 { 1 } else { -1 };
                    for &(o, net) in &self.nets[(h >> 1) as usize] {
                        if !touching.contains(&o) {
                            touching.push(o);
                        }
                        if net * sign > 0 && !cover.contains(&o) {
                            cover.push(o);
                        }
                    }
                }
            }
            let b = self.faces[f].bbox;
            let env = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
            let probe = self.faces[f]
                .cycles
                .first()
                .and_then(|c| c.first())
                .map(|&h| {
                    let (p, q) = (topo.pt(self.org(h)), topo.pt(self.org(h ^ 1)));
                    [(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0]
                });
            if let Some(probe) = probe {
                for cand in tree.locate_in_envelope_intersecting(&env) {
                    let o = cand.data;
                    if touching.contains(&o) {
                        continue;
                    }
                    let inside = owner_rings[o as usize].iter().fold(false, |acc, &r| {
                        let pts: Vec<P2> = topo.rings[r].ids.iter().map(|&v| topo.pt(v)).collect();
                        acc ^ point_in_ring(probe, &pts)
                    });
                    if inside {
                        cover.push(o);
                    }
                }
            }
            let in_parent = topo.has_parent && cover.contains(&parent);
            cover.retain(|&o| o != parent);
            cover.sort_unstable();
            self.faces[f].cover = cover;
            self.faces[f].in_parent = in_parent;
        }
    }

    /// The face's rings in metric coordinates (outer first).
    pub(crate) fn face_rings(&self, topo: &Topo, f: usize) -> Vec<Vec<P2>> {
        self.faces
            .get(f)
            .map(|face| {
                face.cycles
                    .iter()
                    .map(|c| self.cycle_pts(topo, c))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The face as a lon/lat polygon (input vertices keep their exact values).
    pub(crate) fn face_lonlat(&self, topo: &Topo, f: usize) -> MultiPolygon<f64> {
        let Some(face) = self.faces.get(f) else {
            return MultiPolygon::new(Vec::new());
        };
        let mut rings = face.cycles.iter().map(|c| {
            let ids: Vec<Vid> = c.iter().map(|&h| self.org(h)).collect();
            topo.ring_lonlat(&ids)
        });
        match rings.next() {
            Some(ext) => MultiPolygon::new(vec![Polygon::new(ext, rings.collect())]),
            None => MultiPolygon::new(Vec::new()),
        }
    }

    /// (neighbouring face, shared boundary length in m), one entry per neighbour.
    pub(crate) fn face_borders(&self, f: usize) -> Vec<(u32, f64)> {
        let mut out: Vec<(u32, f64)> = Vec::new();
        let Some(face) = self.faces.get(f) else {
            return out;
        };
        for c in &face.cycles {
            for &h in c {
                let g = self.he_face[(h ^ 1) as usize];
                let l = self.len[(h >> 1) as usize];
                match out.iter_mut().find(|x| x.0 == g) {
                    Some(x) => x.1 += l,
                    None => out.push((g, l)),
                }
            }
        }
        out
    }

    /// A point well inside the face, as (lon, lat).
    pub(crate) fn face_location(&self, topo: &Topo, f: usize) -> (f64, f64) {
        let rings = self.face_rings(topo, f);
        let (p, _) = pole_of_inaccessibility(&rings);
        let c = topo.frame.to_lonlat(p);
        (c.x, c.y)
    }
}

pub(crate) fn bbox_of(pts: &[P2]) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for p in pts {
        b[0] = b[0].min(p[0]);
        b[1] = b[1].min(p[1]);
        b[2] = b[2].max(p[0]);
        b[3] = b[3].max(p[1]);
    }
    b
}

/// Crossing-number test against one open ring.
pub(crate) fn point_in_ring(p: P2, ring: &[P2]) -> bool {
    let n = ring.len();
    let mut inside = false;
    for i in 0..n {
        let (a, b) = (ring[i], ring[(i + 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// Distance from `p` to the rings' boundary, positive inside (even-odd), negative outside.
fn signed_dist(p: P2, rings: &[Vec<P2>]) -> f64 {
    let mut inside = false;
    let mut best = f64::INFINITY;
    for ring in rings {
        let n = ring.len();
        for i in 0..n {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            if (a[1] > p[1]) != (b[1] > p[1]) {
                let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
                if p[0] < x {
                    inside = !inside;
                }
            }
            best = best.min(seg_dist(p, a, b).0);
        }
    }
    if inside {
        best
    } else {
        -best
    }
}

/// A square cell of the inscribed-circle search.
struct Cell {
    c: P2,
    /// half the side
    h: f64,
    /// signed distance of the centre to the boundary
    d: f64,
    /// the most any point of the cell can have
    max: f64,
}

impl Cell {
    fn new(c: P2, h: f64, rings: &[Vec<P2>]) -> Cell {
        let d = signed_dist(c, rings);
        Cell {
            c,
            h,
            d,
            max: d + h * std::f64::consts::SQRT_2,
        }
    }
}

impl PartialEq for Cell {
    fn eq(&self, o: &Self) -> bool {
        self.max == o.max
    }
}
impl Eq for Cell {}
impl PartialOrd for Cell {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cell {
    fn cmp(&self, o: &Self) -> Ordering {
        self.max.total_cmp(&o.max)
    }
}

/// Cells covering the bounding box; at most ~10 000 even for very elongated shapes.
fn initial_cells(rings: &[Vec<P2>]) -> Option<(BinaryHeap<Cell>, [f64; 4])> {
    let b = bbox_of(rings.first()?);
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    if !(w > 0.0 && h > 0.0) {
        return None;
    }
    let size = w.min(h).max((w * h / 10_000.0).sqrt());
    let half = size / 2.0;
    let mut heap = BinaryHeap::new();
    let mut x = b[0];
    while x < b[2] {
        let mut y = b[1];
        while y < b[3] {
            heap.push(Cell::new([x + half, y + half], half, rings));
            y += size;
        }
        x += size;
    }
    Some((heap, b))
}

/// Whether a circle of radius `r` fits inside the rings (even-odd area): the polylabel search,
/// stopped as soon as a centre at distance ≥ r is found or no cell could hold one.
pub(crate) fn inscribed_radius_at_least(rings: &[Vec<P2>], r: f64) -> bool {
    let Some((mut heap, _)) = initial_cells(rings) else {
        return false;
    };
    let mut budget = 200_000;
    while let Some(cell) = heap.pop() {
        if cell.max < r {
            return false;
        }
        if cell.d >= r {
            return true;
        }
        budget -= 1;
        // cells this small cannot change the answer by more than a micrometre
        if budget == 0 || cell.h < 1e-6 {
            return cell.d >= r - 1e-6;
        }
        let h = cell.h / 2.0;
        for (dx, dy) in [(-h, -h), (h, -h), (-h, h), (h, h)] {
            heap.push(Cell::new([cell.c[0] + dx, cell.c[1] + dy], h, rings));
        }
    }
    false
}

/// The pole of inaccessibility (polylabel, Agafonkin 2016): the interior point farthest from
/// the boundary, to 1/50 of the shape's smaller side; with its distance.
pub(crate) fn pole_of_inaccessibility(rings: &[Vec<P2>]) -> (P2, f64) {
    let fallback = rings
        .first()
        .and_then(|r| r.first())
        .copied()
        .unwrap_or([0.0, 0.0]);
    let Some((mut heap, b)) = initial_cells(rings) else {
        return (fallback, 0.0);
    };
    let precision = ((b[2] - b[0]).min(b[3] - b[1]) / 50.0).max(1e-6);
    let mut best = Cell::new([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0], 0.0, rings);
    let mut budget = 20_000;
    while let Some(cell) = heap.pop() {
        if cell.d > best.d {
            best = Cell::new(cell.c, 0.0, rings);
        }
        budget -= 1;
        if budget == 0 {
            break;
        }
        if cell.max - best.d <= precision {
            continue;
        }
        let h = cell.h / 2.0;
        for (dx, dy) in [(-h, -h), (h, -h), (-h, h), (h, h)] {
            heap.push(Cell::new([cell.c[0] + dx, cell.c[1] + dy], h, rings));
        }
    }
    (best.c, best.d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use geo::Area;

    /// Fixture coordinates: metres east/north of (106.8, 39.6) to lon/lat.
    pub(crate) fn ll(x: f64, y: f64) -> Coord<f64> {
        Coord {
            x: 106.8 + x / metres_per_deg_lon(39.6),
            y: 39.6 + y / METRES_PER_DEG_LAT,
        }
    }

    /// A polygon from metre coordinates (closed automatically).
    pub(crate) fn poly_m(pts: &[(f64, f64)]) -> MultiPolygon<f64> {
        let ring: Vec<Coord<f64>> = pts.iter().map(|&(x, y)| ll(x, y)).collect();
        MultiPolygon::new(vec![Polygon::new(LineString(ring), vec![])])
    }

    /// Counter-clockwise rectangle in metres.
    pub(crate) fn rect_m(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon<f64> {
        poly_m(&[(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    }

    pub(crate) fn named(items: Vec<(&str, MultiPolygon<f64>)>) -> Vec<(String, MultiPolygon<f64>)> {
        items.into_iter().map(|(c, g)| (c.to_string(), g)).collect()
    }

    /// 3×3 tiling of 100 m squares, codes g11..g33 (column, row).
    pub(crate) fn tiling() -> Vec<(String, MultiPolygon<f64>)> {
        let mut out = Vec::new();
        for i in 0..3 {
            for j in 0..3 {
                let (x, y) = (i as f64 * 100.0, j as f64 * 100.0);
                out.push((
                    format!("g{}{}", i + 1, j + 1),
                    rect_m(x, y, x + 100.0, y + 100.0),
                ));
            }
        }
        out
    }

    pub(crate) fn area_m2(mp: &MultiPolygon<f64>) -> f64 {
        mp.unsigned_area() * metres_per_deg_lon(39.6) * METRES_PER_DEG_LAT
    }

    fn kinds(issues: &[CoverageIssue]) -> Vec<IssueKind> {
        issues.iter().map(|i| i.kind).collect()
    }

    #[test]
    fn clean_tiling_has_no_issues() {
        let polys = tiling();
        let opts = ValidateOptions::default();
        assert!(validate(&polys, None, &opts).is_empty());
        let parent = rect_m(0.0, 0.0, 300.0, 300.0);
        let issues = validate(&polys, Some(&parent), &opts);
        assert!(issues.is_empty(), "{issues:#?}");
    }

    #[test]
    fn empty_coverage() {
        assert!(validate(&[], None, &ValidateOptions::default()).is_empty());
        let parent = rect_m(0.0, 0.0, 100.0, 100.0);
        let issues = validate(&[], Some(&parent), &ValidateOptions::default());
        assert_eq!(kinds(&issues), vec![IssueKind::ParentNotCovered]);
        let a = issues[0].area_m2.unwrap_or(0.0);
        assert!((a - 10_000.0).abs() < 10.0, "{a}");
    }

    #[test]
    fn overlap_sliver_is_reported_with_its_area() {
        // b's left side bulges 2 m into a: a triangle of 100 × 2 / 2 = 100 m²
        let polys = named(vec![
            ("a", rect_m(0.0, 0.0, 100.0, 100.0)),
            (
                "b",
                poly_m(&[
                    (100.0, 0.0),
                    (200.0, 0.0),
                    (200.0, 100.0),
                    (100.0, 100.0),
                    (98.0, 50.0),
                ]),
            ),
        ]);
        let issues = validate(&polys, None, &ValidateOptions::default());
        assert_eq!(kinds(&issues), vec![IssueKind::Overlap], "{issues:#?}");
        assert_eq!(issues[0].codes, vec!["a", "b"]);
        let a = issues[0].area_m2.unwrap_or(0.0);
        assert!((a - 100.0).abs() < 0.5, "{a}");
        let (lon, lat) = issues[0].location.unwrap_or((0.0, 0.0));
        let (x, y) = (
            (lon - 106.8) * metres_per_deg_lon(39.6),
            (lat - 39.6) * METRES_PER_DEG_LAT,
        );
        assert!(
            (98.0..100.0).contains(&x) && (20.0..80.0).contains(&y),
            "{x} {y}"
        );
    }

    /// a | gap | b side by side, c above and d below closing the gap into a hole.
    pub(crate) fn with_gap(width: f64) -> Vec<(String, MultiPolygon<f64>)> {
        let x = 100.0 + width;
        named(vec![
            ("a", rect_m(0.0, 0.0, 100.0, 100.0)),
            ("b", rect_m(x, 0.0, x + 100.0, 100.0)),
            (
                "c",
                poly_m(&[
                    (0.0, 100.0),
                    (100.0, 100.0),
                    (x, 100.0),
                    (x + 100.0, 100.0),
                    (x + 100.0, 150.0),
                    (0.0, 150.0),
                ]),
            ),
            (
                "d",
                poly_m(&[
                    (0.0, -50.0),
                    (x + 100.0, -50.0),
                    (x + 100.0, 0.0),
                    (x, 0.0),
                    (100.0, 0.0),
                    (0.0, 0.0),
                ]),
            ),
        ])
    }

    #[test]
    fn narrow_gap_is_a_gap() {
        let polys = with_gap(2.0);
        let issues = validate(&polys, None, &ValidateOptions::default());
        assert_eq!(kinds(&issues), vec![IssueKind::Gap], "{issues:#?}");
        assert_eq!(issues[0].codes, vec!["a", "b", "c", "d"]);
        let a = issues[0].area_m2.unwrap_or(0.0);
        assert!((a - 200.0).abs() < 1.0, "{a}");
        // the same inside a parent
        let parent = rect_m(0.0, -50.0, 202.0, 150.0);
        let issues = validate(&polys, Some(&parent), &ValidateOptions::default());
        assert_eq!(kinds(&issues), vec![IssueKind::Gap], "{issues:#?}");
    }

    #[test]
    fn wide_gap_is_parent_not_covered_or_nothing_without_parent() {
        let polys = with_gap(20.0);
        let opts = ValidateOptions::default();
        assert!(validate(&polys, None, &opts).is_empty());
        let parent = rect_m(0.0, -50.0, 220.0, 150.0);
        let issues = validate(&polys, Some(&parent), &opts);
        assert_eq!(
            kinds(&issues),
            vec![IssueKind::ParentNotCovered],
            "{issues:#?}"
        );
        let a = issues[0].area_m2.unwrap_or(0.0);
        assert!((a - 2000.0).abs() < 5.0, "{a}");
        // a 4.9 m wide gap is narrow, a 5.1 m wide one is not
        assert_eq!(
            kinds(&validate(&with_gap(4.9), None, &opts)),
            vec![IssueKind::Gap]
        );
        assert!(validate(&with_gap(5.1), None, &opts).is_empty());
    }

    #[test]
    fn vertices_half_a_metre_apart_are_mismatched() {
        // a and b both have a vertex in the middle of their common side, 0.5 m apart along it
        let polys = named(vec![
            (
                "a",
                poly_m(&[
                    (0.0, 0.0),
                    (100.0, 0.0),
                    (100.0, 50.0),
                    (100.0, 100.0),
                    (0.0, 100.0),
                ]),
            ),
            (
                "b",
                poly_m(&[
                    (100.0, 0.0),
                    (200.0, 0.0),
                    (200.0, 100.0),
                    (100.0, 100.0),
                    (100.0, 50.5),
                ]),
            ),
        ]);
        let issues = validate(&polys, None, &ValidateOptions::default());
        assert!(
            kinds(&issues).contains(&IssueKind::MismatchedEdge),
            "{issues:#?}"
        );
        let m = issues.iter().find(|i| i.kind == IssueKind::MismatchedEdge);
        assert_eq!(
            m.map(|i| i.codes.clone()),
            Some(vec!["a".into(), "b".into()])
        );
        // with a tolerance below the offset the two vertices are no pair, but each still lies
        // on the other's edge without being a vertex of it
        let opts = ValidateOptions {
            snap_m: 0.4,
            ..Default::default()
        };
        let issues = validate(&polys, None, &opts);
        assert_eq!(
            kinds(&issues),
            vec![IssueKind::MismatchedEdge],
            "{issues:#?}"
        );
        assert!(
            issues[0].message.contains("2 vertices"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn outside_parent() {
        let polys = named(vec![
            ("a", rect_m(0.0, 0.0, 100.0, 100.0)),
            ("b", rect_m(100.0, 0.0, 210.0, 100.0)),
        ]);
        let parent = rect_m(0.0, 0.0, 200.0, 100.0);
        let issues = validate(&polys, Some(&parent), &ValidateOptions::default());
        assert_eq!(
            kinds(&issues),
            vec![IssueKind::OutsideParent],
            "{issues:#?}"
        );
        assert_eq!(issues[0].codes, vec!["b"]);
        let a = issues[0].area_m2.unwrap_or(0.0);
        assert!((a - 1000.0).abs() < 2.0, "{a}");
    }

    #[test]
    fn bow_tie_is_an_invalid_ring() {
        let polys = named(vec![(
            "x",
            poly_m(&[(0.0, 0.0), (100.0, 100.0), (100.0, 0.0), (0.0, 100.0)]),
        )]);
        let issues = validate(&polys, None, &ValidateOptions::default());
        assert_eq!(kinds(&issues), vec![IssueKind::InvalidRing], "{issues:#?}");
        assert_eq!(issues[0].codes, vec!["x"]);
        // reported where the ring crosses itself
        let (lon, lat) = issues[0].location.unwrap_or((0.0, 0.0));
        let c = ll(50.0, 50.0);
        assert!(
            (lon - c.x).abs() < 1e-7 && (lat - c.y).abs() < 1e-7,
            "{issues:#?} {c:?}"
        );
    }

    #[test]
    fn degenerate_rings_are_invalid() {
        let flat = poly_m(&[(0.0, 0.0), (100.0, 0.0), (50.0, 0.0)]);
        let nan = MultiPolygon::new(vec![Polygon::new(
            LineString(vec![
                ll(0.0, 0.0),
                ll(10.0, 0.0),
                Coord {
                    x: f64::NAN,
                    y: 39.6,
                },
            ]),
            vec![],
        )]);
        let polys = named(vec![
            ("flat", flat),
            ("nan", nan),
            ("ok", rect_m(500.0, 0.0, 600.0, 100.0)),
        ]);
        let issues = validate(&polys, None, &ValidateOptions::default());
        assert_eq!(
            kinds(&issues),
            vec![IssueKind::InvalidRing, IssueKind::InvalidRing],
            "{issues:#?}"
        );
        assert_eq!(issues[0].codes, vec!["flat"]);
        assert_eq!(issues[1].codes, vec!["nan"]);
    }

    #[test]
    fn nested_polygon_overlaps_its_container() {
        let polys = named(vec![
            ("big", rect_m(0.0, 0.0, 100.0, 100.0)),
            ("small", rect_m(40.0, 40.0, 60.0, 60.0)),
        ]);
        let issues = validate(&polys, None, &ValidateOptions::default());
        assert_eq!(kinds(&issues), vec![IssueKind::Overlap], "{issues:#?}");
        assert!((issues[0].area_m2.unwrap_or(0.0) - 400.0).abs() < 1.0);
    }

    #[test]
    fn cleanup_ring_cases() {
        assert_eq!(cleanup_ring(vec![1, 2, 2, 3, 1]), vec![1, 2, 3]);
        assert_eq!(cleanup_ring(vec![1, 2, 3, 2, 4]), vec![1, 2, 4]);
        assert_eq!(cleanup_ring(vec![5, 1, 2, 3, 1]), vec![1, 2, 3]);
        assert_eq!(cleanup_ring(vec![1, 2, 1]), Vec::<Vid>::new());
    }

    #[test]
    fn inscribed_circle() {
        let sq = |w: f64, h: f64| vec![vec![[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]];
        assert!(inscribed_radius_at_least(&sq(6.0, 6.0), 2.5));
        assert!(!inscribed_radius_at_least(&sq(4.0, 300.0), 2.5));
        assert!(inscribed_radius_at_least(&sq(5.2, 300.0), 2.5));
        // a thin diagonal strip in a big bounding box
        let strip = vec![vec![
            [0.0, 0.0],
            [2.0, 0.0],
            [300.0, 298.0],
            [300.0, 300.0],
            [298.0, 300.0],
            [0.0, 2.0],
        ]];
        assert!(!inscribed_radius_at_least(&strip, 2.5));
        let (p, d) = pole_of_inaccessibility(&sq(10.0, 4.0));
        assert!(
            (d - 2.0).abs() < 0.1 && (p[1] - 2.0).abs() < 0.1,
            "{p:?} {d}"
        );
    }
}
