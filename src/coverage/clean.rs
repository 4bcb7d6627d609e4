//! Coverage cleaning: repairs a set of sibling polygons into a coverage of their parent, like
//! JTS/GEOS `CoverageCleaner` and mapshaper `-clean`, and says what it did to which polygon so a
//! reviewer can check every edit on a map. Pure geometry over `geo` types, no I/O.
//!
//! # Steps
//!
//! 1. **Repair** invalid polygons (non-zero winding union, original vertices kept) — the same
//!    repair [`super::validate`] analyses with.
//! 2. **Snap** (`snap_m`): a vertex within `snap_m` of another polygon's vertex moves onto it
//!    (vertices are taken in order of how many polygons already use them, so a corner shared by
//!    three grids stays and the odd one out moves; ties go to the smaller code; the parent's
//!    vertices never move). Then a vertex within `snap_m` of another polygon's edge (and farther
//!    than `snap_m` from its ends) is inserted into that edge, so both polygons carry it; a
//!    vertex near the parent's boundary is instead projected onto it (when clipping).
//! 3. **Node** all rings and build the face arrangement (see [`super::validate`]).
//! 4. **Assign** every face to exactly one polygon: a face claimed by several polygons (an
//!    overlap) goes to one of them by [`MergeRule`]; with `clip_to_parent`, covered faces outside
//!    the parent go to nobody; an uncovered face inside the parent (or a hole of the union when
//!    there is no parent) whose largest inscribed circle is narrower than `gap_width_m` goes to
//!    one of the polygons around it by the same rule. Wider gaps are left and reported.
//!    Border lengths for the rule are measured on the input decomposition (overlaps) or after
//!    overlaps are assigned (gaps), so the result does not depend on the order of the faces.
//! 5. **Rebuild** only the polygons whose faces changed, that snapping moved, that have a
//!    neighbour's vertex exactly on an edge (a T-junction), or whose edge a rebuilt neighbour now
//!    runs through at a crossing point, by tracing the boundary of their faces. Every vertex is
//!    an input vertex with its original lon/lat (or a new crossing / projection point), so
//!    vertices away from the edits keep their exact values, rings keep their start vertex and
//!    orientation, and a polygon no fix touched is returned as given, bit-for-bit. Neighbours
//!    share edges exactly because both are traced from the same arrangement edges; collinear
//!    noding points that no neighbour needs are left out (the winner of an overlap keeps its
//!    own vertex list).
//! 6. **Repeat** while validation still finds something cleaning can fix (a crossing point of
//!    step 4 can land within `snap_m` of a third polygon): at most three rounds, in practice one.
//!
//! ```
//! use geo::{polygon, MultiPolygon};
//! use gridwatch::coverage::clean::{clean, CleanOptions, FixKind};
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
//! let polys = vec![("a".to_string(), a.clone()), ("b".to_string(), b)];
//! let cleaned = clean(&polys, None, &CleanOptions::default());
//! assert_eq!(cleaned.fixes.len(), 1);
//! assert_eq!(cleaned.fixes[0].kind, FixKind::OverlapResolved);
//! // the sliver lies against a on its two long sides, against b only on its base
//! assert_eq!(cleaned.fixes[0].to.as_deref(), Some("a"));
//! assert_eq!(cleaned.polygons[0].1, a); // a keeps its exact coordinates
//! assert_eq!(cleaned.changed, vec!["b"]); // b loses its bulge vertex, nothing else
//! assert_eq!(cleaned.polygons[1].1 .0[0].exterior().0.len(), 5);
//! assert!(cleaned.remaining.is_empty());
//! //! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use geo::{BooleanOps, MultiPolygon, Polygon};
use serde::{Serialize, Serializer};

use super::validate::{
    cleanup_ring, inscribed_radius_at_least, near_edges, near_vertices, node, point_in_ring,
    seg_dist, validate, vertex_owners, Arrangement, CoverageIssue, IssueKind, Topo,
    ValidateOptions, Vid, NODE_EPS_M, NO_FACE, P2,
};

/// Tolerances and policy of [`clean`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanOptions {
    /// Vertices this close (m) to a neighbour's vertex or edge are snapped onto it (default 1).
    pub snap_m: f64,
    /// Gaps narrower than this (m) are filled (default 5).
    pub gap_width_m: f64,
    /// Who receives an overlap or a gap.
    pub rule: MergeRule,
    /// Cut away parts outside the parent, and snap to the parent's boundary (default true; no
    /// effect without a parent).
    pub clip_to_parent: bool,
    /// Area (m²) below which [`Cleaned::remaining`] ignores overlaps and gaps (default 0.01).
    /// Cleaning itself resolves every overlap and narrow gap, however small.
    pub min_area_m2: f64,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            snap_m: 1.0,
            gap_width_m: 5.0,
            rule: MergeRule::LongestBorder,
            clip_to_parent: true,
            min_area_m2: 0.01,
        }
    }
}

/// Who receives an overlap (among the polygons claiming it) or a gap (among the polygons around
/// it). Ties go to the smaller code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRule {
    /// The polygon sharing the longest border with the piece (like `CoverageCleaner`).
    #[default]
    LongestBorder,
    LargestArea,
    SmallestArea,
}

/// What a [`Fix`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixKind {
    /// An area claimed by several polygons was given to one (`to`) and removed from the others.
    OverlapResolved,
    /// A narrow uncovered area was merged into `to`.
    GapFilled,
    /// `from[0]` had vertices moved onto, or inserted from, the neighbours `from[1..]` (or was
    /// noded where a neighbour's boundary meets it). `to` is `None`.
    Snapped,
    /// An area outside the parent was cut away from `from`. `to` is `None`.
    ClippedToParent,
    /// `from[0]` was not a valid polygon and was made valid (non-zero winding). `to` is `None`.
    RingRepaired,
}

/// One edit, for the reviewer.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    pub kind: FixKind,
    /// Area of the piece in m² (for `Snapped`/`RingRepaired`: the area between old and new).
    pub area_m2: f64,
    /// The polygons that claimed the piece (overlap, clip) or bordered it (gap), sorted; see
    /// [`FixKind`] for the others.
    pub from: Vec<String>,
    /// Who received the piece; `None` when it was cut away or nothing was handed over.
    pub to: Option<String>,
    /// Why `to`, e.g. "longest shared border (412.3 m)".
    pub rule: String,
    /// (lon, lat) of a point inside the piece.
    pub location: (f64, f64),
    /// The piece in WGS-84, serialised as a GeoJSON geometry for the reviewer's map.
    #[serde(serialize_with = "geojson_geometry")]
    pub geometry: MultiPolygon<f64>,
}

fn geojson_geometry<S: Serializer>(mp: &MultiPolygon<f64>, s: S) -> Result<S::Ok, S::Error> {
    geojson::Geometry::new(geojson::GeometryValue::from(mp)).serialize(s)
}

/// The result of [`clean`].
#[derive(Debug, Clone)]
pub struct Cleaned {
    /// Same order and codes as the input.
    pub polygons: Vec<(String, MultiPolygon<f64>)>,
    pub fixes: Vec<Fix>,
    /// Codes whose geometry differs from the input, in input order.
    pub changed: Vec<String>,
    /// What [`validate`] still reports after cleaning (wide gaps, for instance).
    pub remaining: Vec<CoverageIssue>,
}

/// Cleans `polys` into a coverage of `parent` (or just into a coverage); see the module docs.
///
/// Snapping happens before the overlaps and gaps are resolved, so resolving them can leave a
/// new vertex (a crossing point) within `snap_m` of a neighbour's boundary; when validation
/// still finds something cleaning can fix, the result is cleaned again (at most three rounds,
/// and only while a round changes something). Later rounds touch only what is still wrong.
pub fn clean(
    polys: &[(String, MultiPolygon<f64>)],
    parent: Option<&MultiPolygon<f64>>,
    opts: &CleanOptions,
) -> Cleaned {
    const MAX_ROUNDS: usize = 3;
    let vopts = ValidateOptions {
        gap_width_m: opts.gap_width_m,
        snap_m: opts.snap_m,
        min_area_m2: opts.min_area_m2,
    };
    let mut fixes = Vec::new();
    let (mut current, round_fixes) = clean_round(polys, parent, opts);
    let mut progressed = !round_fixes.is_empty();
    fixes.extend(round_fixes);
    let mut remaining = validate(&current, parent, &vopts);
    for _ in 1..MAX_ROUNDS {
        let fixable = remaining.iter().any(|i| {
            matches!(
                i.kind,
                IssueKind::MismatchedEdge | IssueKind::Overlap | IssueKind::Gap
            )
        });
        if !fixable || !progressed {
            break;
        }
        let (next, round_fixes) = clean_round(&current, parent, opts);
        progressed = !round_fixes.is_empty();
        fixes.extend(round_fixes);
        current = next;
        remaining = validate(&current, parent, &vopts);
    }
    let changed = polys
        .iter()
        .zip(&current)
        .filter(|((_, a), (_, b))| !same_bits(a, b))
        .map(|((c, _), _)| c.clone())
        .collect();
    Cleaned {
        polygons: current,
        fixes,
        changed,
        remaining,
    }
}

/// One round of cleaning: the output polygons and the fixes made.
fn clean_round(
    polys: &[(String, MultiPolygon<f64>)],
    parent: Option<&MultiPolygon<f64>>,
    opts: &CleanOptions,
) -> (Vec<(String, MultiPolygon<f64>)>, Vec<Fix>) {
    let n = polys.len();
    let codes: Vec<&str> = polys.iter().map(|(c, _)| c.as_str()).collect();
    let rank = code_ranks(&codes);
    let clip = opts.clip_to_parent && parent.is_some();

    let (mut topo, problems) = Topo::build(polys, parent);
    let built = topo.clone();
    let areas = owner_areas(&built);
    let mut fixes = Vec::new();

    let repaired: BTreeSet<u32> = problems
        .iter()
        .map(|p| p.owner)
        .filter(|&o| (o as usize) < n)
        .collect();
    for &o in &repaired {
        let why = problems
            .iter()
            .find(|p| p.owner == o)
            .map(|p| p.message.clone())
            .unwrap_or_default();
        let before = &polys[o as usize].1;
        let after = built.owner_geometry(o);
        fixes.push(change_fix(
            FixKind::RingRepaired,
            &built,
            before,
            &after,
            vec![codes[o as usize].to_string()],
            format!("made valid (non-zero winding): {why}"),
        ));
    }

    let log = snap(&mut topo, opts.snap_m, clip, &rank);
    for (o, l) in &log {
        // the log only holds coverage polygons; the parent never moves
        let Some(code) = codes.get(*o as usize) else {
            continue;
        };
        let before = built.owner_geometry(*o);
        let after = topo.owner_geometry(*o);
        let mut from = vec![code.to_string()];
        let mut partners: Vec<&str> = l
            .partners
            .iter()
            .filter_map(|&p| codes.get(p as usize).copied())
            .collect();
        partners.sort();
        from.extend(partners.into_iter().map(str::to_string));
        let mut rule = Vec::new();
        if l.moved > 0 {
            rule.push(format!(
                "moved {} vertices onto neighbours' vertices or the parent's boundary",
                l.moved
            ));
        }
        if l.inserted > 0 {
            rule.push(format!(
                "inserted {} neighbours' vertices into its edges",
                l.inserted
            ));
        }
        let mut fix = change_fix(
            FixKind::Snapped,
            &topo,
            &before,
            &after,
            from,
            format!(
                "{} (within {} m, up to {:.2} m)",
                rule.join(", "),
                opts.snap_m,
                l.max_d
            ),
        );
        if let Some(v) = l.at {
            let c = topo.lonlat(v);
            fix.location = (c.x, c.y);
        }
        fixes.push(fix);
    }

    node(&mut topo);
    let arr = Arrangement::build(&topo);
    let owner = assign_faces(&topo, &arr, opts, clip, &areas, &rank, &codes, &mut fixes);

    // which polygons need rebuilding
    let (built_rings, topo_rings) = (built.owner_rings(), topo.owner_rings());
    let vertex_set = |t: &Topo, index: &[Vec<usize>], o: usize| -> HashSet<Vid> {
        index
            .get(o)
            .into_iter()
            .flatten()
            .flat_map(|&r| t.rings[r].ids.iter().copied())
            .collect()
    };
    // each polygon's own vertices, as built from the input (after repair)
    let inputs: Vec<HashSet<Vid>> = (0..n)
        .map(|o| vertex_set(&built, &built_rings, o))
        .collect();
    // vertices snapping or noding put on each polygon's edges
    let inserted: Vec<Vec<Vid>> = (0..n)
        .map(|o| {
            let mut v: Vec<Vid> = vertex_set(&topo, &topo_rings, o)
                .into_iter()
                .filter(|v| !inputs[o].contains(v))
                .collect();
            v.sort_unstable();
            v
        })
        .collect();
    let mut input_of: HashMap<Vid, Vec<u32>> = HashMap::new();
    for (o, set) in inputs.iter().enumerate() {
        for &v in set {
            input_of.entry(v).or_default().push(o as u32);
        }
    }

    let mut dirty = vec![false; n];
    for &o in repaired.iter().chain(log.keys()) {
        if let Some(d) = dirty.get_mut(o as usize) {
            *d = true;
        }
    }
    for (f, face) in arr.faces.iter().enumerate() {
        for &q in &face.cover {
            if owner[f] != Some(q) {
                dirty[q as usize] = true;
            }
        }
        if let Some(q) = owner[f] {
            if !face.cover.contains(&q) {
                dirty[q as usize] = true;
            }
        }
    }
    // a neighbour's vertex exactly on the edge (a T-junction noding found): the edge must get it
    for (o, ins) in inserted.iter().enumerate() {
        if ins.iter().any(|v| {
            input_of
                .get(v)
                .is_some_and(|os| os.iter().any(|&q| q != o as u32))
        }) {
            dirty[o] = true;
        }
    }

    // A polygon whose faces are unchanged still needs rebuilding when a rebuilt neighbour now
    // runs through a vertex that noding put on its edge (a crossing point, say): otherwise the
    // neighbour would end in the middle of its edge.
    let ctx = Rebuild {
        topo: &topo,
        arr: &arr,
        owner: &owner,
        inputs: &inputs,
    };
    let mut rebuilt: Vec<Option<(MultiPolygon<f64>, Vec<Vid>)>> = vec![None; n];
    loop {
        let mut used: HashSet<Vid> = HashSet::new();
        for o in (0..n).filter(|&o| dirty[o]) {
            let (_, ids) = rebuilt[o].get_or_insert_with(|| ctx.polygon(o as u32, &polys[o].1));
            used.extend(ids.iter().copied());
        }
        let mut more = false;
        for o in 0..n {
            if !dirty[o] && inserted[o].iter().any(|v| used.contains(v)) {
                dirty[o] = true;
                more = true;
            }
        }
        if !more {
            break;
        }
    }

    let mut polygons = Vec::with_capacity(n);
    for ((code, input), out) in polys.iter().zip(rebuilt) {
        let Some((out, _)) = out else {
            polygons.push((code.clone(), input.clone()));
            continue;
        };
        if !same_bits(&out, input) {
            let explained = fixes
                .iter()
                .any(|f| f.from.contains(code) || f.to.as_ref() == Some(code));
            if !explained {
                // only noding touched it: a neighbour's vertex or crossing on its edge
                fixes.push(change_fix(
                    FixKind::Snapped,
                    &topo,
                    input,
                    &out,
                    vec![code.clone()],
                    "noded: vertices inserted where neighbours' boundaries meet it".to_string(),
                ));
            }
        }
        polygons.push((code.clone(), out));
    }

    (polygons, fixes)
}

/// Position of each code in sorted order (ties: input order), for "ties → smaller code".
fn code_ranks(codes: &[&str]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..codes.len()).collect();
    order.sort_by(|&a, &b| codes[a].cmp(codes[b]).then(a.cmp(&b)));
    let mut rank = vec![0; codes.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    rank
}

/// Area (m²) of every owner's rings as built (shells minus holes).
fn owner_areas(topo: &Topo) -> Vec<f64> {
    let mut areas = vec![0.0; topo.n + 1];
    for r in &topo.rings {
        if let Some(a) = areas.get_mut(r.owner as usize) {
            *a += topo.ring_area(&r.ids);
        }
    }
    areas
}

fn input_is_ccw(mp: &MultiPolygon<f64>) -> bool {
    use geo::Area;
    mp.0.first()
        .map(|p| Polygon::new(p.exterior().clone(), vec![]).signed_area() >= 0.0)
        .unwrap_or(true)
}

/// Coordinate-for-coordinate identity, by bits (so 0.0 ≠ -0.0 and NaN = NaN).
pub(crate) fn same_bits(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> bool {
    let bits = |mp: &MultiPolygon<f64>| -> Vec<Vec<Vec<(u64, u64)>>> {
        mp.iter()
            .map(|p| {
                super::validate::poly_rings(p)
                    .map(|r| r.0.iter().map(|c| (c.x.to_bits(), c.y.to_bits())).collect())
                    .collect()
            })
            .collect()
    };
    bits(a) == bits(b)
}

/// A fix describing a whole-polygon change: the piece is the symmetric difference.
fn change_fix(
    kind: FixKind,
    topo: &Topo,
    before: &MultiPolygon<f64>,
    after: &MultiPolygon<f64>,
    from: Vec<String>,
    rule: String,
) -> Fix {
    let geometry = before.xor(after);
    let location = geometry
        .0
        .first()
        .and_then(|p| p.exterior().0.first())
        .or_else(|| after.0.first().and_then(|p| p.exterior().0.first()))
        .map(|c| (c.x, c.y))
        .unwrap_or((f64::NAN, f64::NAN));
    Fix {
        kind,
        area_m2: topo.frame.area_m2(&geometry),
        from,
        to: None,
        rule,
        location,
        geometry,
    }
}

/// What snapping did to one polygon.
#[derive(Debug, Default)]
struct SnapLog {
    moved: usize,
    inserted: usize,
    max_d: f64,
    partners: BTreeSet<u32>,
    at: Option<Vid>,
}

impl SnapLog {
    fn note(&mut self, d: f64, at: Vid, partners: &[u32], n: u32) {
        self.max_d = self.max_d.max(d);
        self.at.get_or_insert(at);
        self.partners
            .extend(partners.iter().copied().filter(|&p| p < n));
    }
}

/// Snaps vertices onto nearby vertices, then onto nearby edges (see the module docs). The
/// parent (when `with_parent`) is a fixed reference: its vertices are anchors and never move.
fn snap(topo: &mut Topo, snap_m: f64, with_parent: bool, rank: &[usize]) -> BTreeMap<u32, SnapLog> {
    let mut log: BTreeMap<u32, SnapLog> = BTreeMap::new();
    if snap_m.is_nan() || snap_m <= 0.0 {
        return log;
    }
    let parent = topo.parent_owner();
    let n = topo.n as u32;

    // 1. vertex onto vertex
    let owners = vertex_owners(topo, with_parent);
    let pairs = near_vertices(topo, snap_m, with_parent);
    if !pairs.is_empty() {
        let mut adj: HashMap<Vid, Vec<(Vid, f64)>> = HashMap::new();
        for p in &pairs {
            adj.entry(p.v).or_default().push((p.w, p.dist));
            adj.entry(p.w).or_default().push((p.v, p.dist));
        }
        let prio = |v: Vid| {
            let o = &owners[v as usize];
            let best_code = o
                .iter()
                .filter(|&&x| x != parent)
                .filter_map(|&x| rank.get(x as usize).copied())
                .min()
                .unwrap_or(usize::MAX);
            (Reverse(o.contains(&parent)), Reverse(o.len()), best_code, v)
        };
        let mut order: Vec<Vid> = adj.keys().copied().collect();
        order.sort_by_key(|&v| prio(v));
        let mut anchors: HashSet<Vid> = HashSet::new();
        let mut moved: HashMap<Vid, Vid> = HashMap::new();
        for v in order {
            if moved.contains_key(&v) {
                continue;
            }
            anchors.insert(v);
            let mut claimed = owners[v as usize].clone();
            let mut cands = adj.get(&v).cloned().unwrap_or_default();
            cands.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            for (u, d) in cands {
                let ou = &owners[u as usize];
                // one vertex per polygon onto an anchor, or that polygon's ring would pinch
                if anchors.contains(&u)
                    || moved.contains_key(&u)
                    || ou.contains(&parent)
                    || ou.iter().any(|x| claimed.contains(x))
                {
                    continue;
                }
                moved.insert(u, v);
                claimed.extend_from_slice(ou);
                for &o in ou {
                    let l = log.entry(o).or_default();
                    l.moved += 1;
                    l.note(d, v, &owners[v as usize], n);
                }
            }
        }
        for r in topo.rings.iter_mut().filter(|r| r.owner != parent) {
            for id in r.ids.iter_mut() {
                if let Some(&t) = moved.get(id) {
                    *id = t;
                }
            }
            r.ids = cleanup_ring(std::mem::take(&mut r.ids));
        }
        topo.rings.retain(|r| !r.ids.is_empty());
    }

    // 2. vertex onto edge
    // exact T-junctions are left to noding: nothing moves there
    let edges = near_edges(topo, snap_m, NODE_EPS_M, with_parent);
    if edges.is_empty() {
        return log;
    }
    let owners = vertex_owners(topo, with_parent);
    let mut replace: HashMap<Vid, Vid> = HashMap::new();
    let mut ins: HashMap<(usize, usize), Vec<(f64, Vid)>> = HashMap::new();
    let ends = |topo: &Topo, ring: usize, seg: usize| -> (P2, P2) {
        let ids = &topo.rings[ring].ids;
        let (a, b) = (ids[seg], ids[(seg + 1) % ids.len()]);
        (topo.pt(a), topo.pt(b))
    };
    let (to_parent, to_polys): (Vec<_>, Vec<_>) = edges
        .iter()
        .partition(|e| topo.rings[e.ring].owner == parent);
    for ne in to_parent {
        // near the parent's boundary: the vertex moves onto it (the parent is the reference)
        if replace.contains_key(&ne.v) {
            continue;
        }
        let (a, b) = ends(topo, ne.ring, ne.seg);
        let foot = [a[0] + ne.t * (b[0] - a[0]), a[1] + ne.t * (b[1] - a[1])];
        let nv = topo.add_vertex(foot);
        replace.insert(ne.v, nv);
        ins.entry((ne.ring, ne.seg)).or_default().push((ne.t, nv));
        for &o in &owners[ne.v as usize] {
            let l = log.entry(o).or_default();
            l.moved += 1;
            l.note(ne.dist, nv, &[], n);
        }
    }
    for ne in to_polys {
        let v = replace.get(&ne.v).copied().unwrap_or(ne.v);
        let (a, b) = ends(topo, ne.ring, ne.seg);
        let (_, t) = seg_dist(topo.pt(v), a, b);
        ins.entry((ne.ring, ne.seg)).or_default().push((t, v));
        let q = topo.rings[ne.ring].owner;
        let l = log.entry(q).or_default();
        l.inserted += 1;
        l.note(ne.dist, v, &owners[ne.v as usize], n);
    }
    for (ri, r) in topo.rings.iter_mut().enumerate() {
        let is_parent = r.owner == parent;
        let m = r.ids.len();
        let mut out = Vec::with_capacity(m + 2);
        for i in 0..m {
            let a = r.ids[i];
            let a = if is_parent {
                a
            } else {
                replace.get(&a).copied().unwrap_or(a)
            };
            out.push(a);
            if let Some(list) = ins.get_mut(&(ri, i)) {
                list.sort_by(|x, y| x.0.total_cmp(&y.0));
                for &(_, v) in list.iter() {
                    if out.last() != Some(&v) {
                        out.push(v);
                    }
                }
            }
        }
        r.ids = cleanup_ring(out);
    }
    topo.rings.retain(|r| !r.ids.is_empty());
    log
}

/// Gives every face at most one owner (see the module docs), recording the fixes.
#[allow(clippy::too_many_arguments)]
fn assign_faces(
    topo: &Topo,
    arr: &Arrangement,
    opts: &CleanOptions,
    clip: bool,
    areas: &[f64],
    rank: &[usize],
    codes: &[&str],
    fixes: &mut Vec<Fix>,
) -> Vec<Option<u32>> {
    let nf = arr.faces.len();
    let mut owner: Vec<Option<u32>> = vec![None; nf];
    let names = |os: &[u32]| -> Vec<String> {
        let mut v: Vec<String> = os.iter().map(|&o| codes[o as usize].to_string()).collect();
        v.sort();
        v
    };
    let piece = |kind, f: usize, from: &[u32], to: Option<u32>, rule: String| Fix {
        kind,
        area_m2: arr.faces[f].area,
        from: names(from),
        to: to.map(|o| codes[o as usize].to_string()),
        rule,
        location: arr.face_location(topo, f),
        geometry: arr.face_lonlat(topo, f),
    };

    // covered faces: clip, then overlaps by the border with each claimant's input faces
    for (f, face) in arr.faces.iter().enumerate() {
        if face.cover.is_empty() {
            continue;
        }
        if clip && !face.in_parent {
            fixes.push(piece(
                FixKind::ClippedToParent,
                f,
                &face.cover,
                None,
                "outside the parent".to_string(),
            ));
            continue;
        }
        if let [only] = face.cover[..] {
            owner[f] = Some(only);
            continue;
        }
        let mut border: Vec<(u32, f64)> = face.cover.iter().map(|&o| (o, 0.0)).collect();
        for (g, l) in arr.face_borders(f) {
            if g == NO_FACE {
                continue;
            }
            for q in &arr.faces[g as usize].cover {
                if let Some(b) = border.iter_mut().find(|b| b.0 == *q) {
                    b.1 += l;
                }
            }
        }
        let (w, why) = choose(opts.rule, &border, areas, rank);
        owner[f] = Some(w);
        fixes.push(piece(
            FixKind::OverlapResolved,
            f,
            &face.cover,
            Some(w),
            why,
        ));
    }

    // narrow gaps, by the border with the polygons around them as just assigned
    for (f, face) in arr.faces.iter().enumerate() {
        if !face.cover.is_empty() || (topo.has_parent && !face.in_parent) {
            continue;
        }
        if inscribed_radius_at_least(&arr.face_rings(topo, f), opts.gap_width_m / 2.0) {
            continue;
        }
        let mut border: Vec<(u32, f64)> = Vec::new();
        for (g, l) in arr.face_borders(f) {
            let Some(q) = owner.get(g as usize).copied().flatten() else {
                continue;
            };
            match border.iter_mut().find(|b| b.0 == q) {
                Some(b) => b.1 += l,
                None => border.push((q, l)),
            }
        }
        if border.is_empty() {
            continue; // nobody around it (only the parent's boundary): left, and reported
        }
        let (w, why) = choose(opts.rule, &border, areas, rank);
        owner[f] = Some(w);
        let around: Vec<u32> = border.iter().map(|b| b.0).collect();
        fixes.push(piece(FixKind::GapFilled, f, &around, Some(w), why));
    }
    owner
}

/// The candidate the rule prefers (ties → smaller code), and the reason in words.
fn choose(rule: MergeRule, cands: &[(u32, f64)], areas: &[f64], rank: &[usize]) -> (u32, String) {
    let area = |o: u32| areas.get(o as usize).copied().unwrap_or(0.0);
    let rk = |o: u32| rank.get(o as usize).copied().unwrap_or(usize::MAX);
    let key = |c: &(u32, f64)| match rule {
        MergeRule::LongestBorder => c.1,
        MergeRule::LargestArea => area(c.0),
        MergeRule::SmallestArea => -area(c.0),
    };
    let mut best = cands.first().copied().unwrap_or((0, 0.0));
    for &c in cands.iter().skip(1) {
        let (kc, kb) = (key(&c), key(&best));
        // within a nanometre (or a square one) is a tie: float noise must not pick the winner
        let tie = (kc - kb).abs() <= 1e-9 * kc.abs().max(kb.abs()).max(1.0);
        if (!tie && kc > kb) || (tie && rk(c.0) < rk(best.0)) {
            best = c;
        }
    }
    let why = match rule {
        MergeRule::LongestBorder => format!("longest shared border ({:.1} m)", best.1),
        MergeRule::LargestArea => format!("largest area ({:.0} m²)", area(best.0)),
        MergeRule::SmallestArea => format!("smallest area ({:.0} m²)", area(best.0)),
    };
    (best.0, why)
}

/// What [`Rebuild::polygon`] needs: the arrangement, the final owner of every face, and each
/// polygon's input vertices.
struct Rebuild<'a> {
    topo: &'a Topo,
    arr: &'a Arrangement,
    owner: &'a [Option<u32>],
    inputs: &'a [HashSet<Vid>],
}

impl Rebuild<'_> {
    fn face_owner(&self, f: u32) -> Option<u32> {
        self.owner.get(f as usize).copied().flatten()
    }

    /// Whether `v` (between `prev` and `next` on `o`'s new ring) can be left out: a vertex
    /// noding put on one of `o`'s edges, that no polygon's own vertex list has and that no third
    /// boundary meets (so no neighbour ends there), lying on the straight line through its
    /// neighbours. Keeps the winner of a piece free of its corners.
    fn removable(&self, o: u32, v: Vid, prev: Vid, next: Vid) -> bool {
        if self.inputs.get(o as usize).is_none_or(|s| s.contains(&v)) {
            return false;
        }
        let mut active = 0;
        for &h in self.arr.outgoing(v) {
            let l = self.face_owner(self.arr.he_face[h as usize]);
            let r = self.face_owner(self.arr.he_face[(h ^ 1) as usize]);
            if l != r {
                active += 1;
                let other = if l == Some(o) { r } else { l };
                if let Some(x) = other {
                    if self.inputs.get(x as usize).is_some_and(|s| s.contains(&v)) {
                        return false;
                    }
                }
            }
        }
        let t = self.topo;
        active == 2 && seg_dist(t.pt(v), t.pt(prev), t.pt(next)).0 <= NODE_EPS_M
    }

    /// Traces the boundary of the faces owned by `o` into rings and makes a lon/lat polygon of
    /// them, starting each ring where the input ring started and keeping the input's
    /// orientation. Also returns the vertex ids used.
    fn polygon(&self, o: u32, input: &MultiPolygon<f64>) -> (MultiPolygon<f64>, Vec<Vid>) {
        let (topo, arr) = (self.topo, self.arr);
        let mine = |f: u32| f != NO_FACE && self.face_owner(f) == Some(o);
        let boundary =
            |h: u32| mine(arr.he_face[h as usize]) && !mine(arr.he_face[(h ^ 1) as usize]);
        let mut used: HashSet<u32> = HashSet::new();
        let mut rings: Vec<Vec<Vid>> = Vec::new();
        for face in arr
            .faces
            .iter()
            .enumerate()
            .filter(|(f, _)| mine(*f as u32))
            .map(|(_, face)| face)
        {
            for &h0 in face.cycles.iter().flatten() {
                if !boundary(h0) || used.contains(&h0) {
                    continue;
                }
                let mut ids = Vec::new();
                let mut h = h0;
                loop {
                    used.insert(h);
                    ids.push(arr.org(h));
                    // turn as sharply left as the region allows: the first boundary half-edge
                    // clockwise from the way back, so rings touching at a vertex stay separate
                    let mut k = arr.face_next(h);
                    let mut steps = 0;
                    while !boundary(k) && steps <= arr.degree(arr.org(k)) {
                        k = arr.cw_next(k);
                        steps += 1;
                    }
                    if !boundary(k) || k == h0 || used.contains(&k) {
                        break;
                    }
                    h = k;
                }
                let m = ids.len();
                let mut kept: Vec<Vid> = Vec::with_capacity(m);
                for i in 0..m {
                    let prev = kept.last().copied().unwrap_or(ids[(i + m - 1) % m]);
                    if m <= 3 || !self.removable(o, ids[i], prev, ids[(i + 1) % m]) {
                        kept.push(ids[i]);
                    }
                }
                let ids = cleanup_ring(kept);
                if !ids.is_empty() {
                    rings.push(ids);
                }
            }
        }
        let used_ids: Vec<Vid> = rings.iter().flatten().copied().collect();

        // shells and holes; each hole goes into the smallest shell around it
        let mut shells: Vec<(Vec<Vid>, f64, Vec<Vec<Vid>>)> = Vec::new();
        let mut holes: Vec<Vec<Vid>> = Vec::new();
        for r in rings {
            let a = topo.ring_area(&r);
            if a > 0.0 {
                shells.push((r, a, Vec::new()));
            } else if a < 0.0 {
                holes.push(r);
            }
        }
        let pts = |ids: &[Vid]| -> Vec<P2> { ids.iter().map(|&v| topo.pt(v)).collect() };
        for hole in holes {
            let probe = match hole.as_slice() {
                [a, b, ..] => {
                    let (p, q) = (topo.pt(*a), topo.pt(*b));
                    [(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0]
                }
                _ => continue,
            };
            let best = if shells.len() == 1 {
                Some(0)
            } else {
                shells
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| point_in_ring(probe, &pts(&s.0)))
                    .min_by(|x, y| x.1 .1.total_cmp(&y.1 .1))
                    .map(|(i, _)| i)
            };
            if let Some(i) = best {
                shells[i].2.push(hole);
            }
        }

        // the input's ring starts, orientation and order of parts, where its vertices survive
        let mut input_pos: HashMap<(u64, u64), usize> = HashMap::new();
        for (i, c) in input
            .iter()
            .flat_map(super::validate::poly_rings)
            .flat_map(|r| r.0.iter())
            .enumerate()
        {
            input_pos
                .entry(((c.x + 0.0).to_bits(), (c.y + 0.0).to_bits()))
                .or_insert(i);
        }
        let pos_of = |v: Vid| {
            let c = topo.lonlat(v);
            input_pos
                .get(&((c.x + 0.0).to_bits(), (c.y + 0.0).to_bits()))
                .copied()
        };
        let reverse = !input_is_ccw(input);
        let orient = |mut ids: Vec<Vid>| -> (Vec<Vid>, usize) {
            if reverse {
                ids.reverse();
            }
            let start = ids
                .iter()
                .enumerate()
                .filter_map(|(i, &v)| pos_of(v).map(|p| (p, i)))
                .min();
            match start {
                Some((p, i)) => {
                    ids.rotate_left(i);
                    (ids, p)
                }
                None => (ids, usize::MAX),
            }
        };
        let mut parts: Vec<(usize, f64, Polygon<f64>)> = shells
            .into_iter()
            .map(|(shell, area, hs)| {
                let (shell, p) = orient(shell);
                let hs = hs
                    .into_iter()
                    .map(|h| topo.ring_lonlat(&orient(h).0))
                    .collect();
                (p, area, Polygon::new(topo.ring_lonlat(&shell), hs))
            })
            .collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        (
            MultiPolygon::new(parts.into_iter().map(|p| p.2).collect()),
            used_ids,
        )
    }
}

/// Lon/lat of the vertices of a geometry (test helper and for reviewers' checks).
#[cfg(test)]
fn coords(mp: &MultiPolygon<f64>) -> Vec<geo::Coord<f64>> {
    mp.iter()
        .flat_map(super::validate::poly_rings)
        .flat_map(|r| r.0.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::validate::tests::{area_m2, ll, named, poly_m, rect_m, tiling, with_gap};
    use super::*;
    use crate::spatial::distance::{metres_per_deg_lon, METRES_PER_DEG_LAT};
    use geo::{Area, Coord, Validation};

    fn bits(c: Coord<f64>) -> (u64, u64) {
        (c.x.to_bits(), c.y.to_bits())
    }

    fn has_vertex(mp: &MultiPolygon<f64>, c: Coord<f64>) -> bool {
        coords(mp).iter().any(|&d| bits(d) == bits(c))
    }

    fn union_area(polys: &[(String, MultiPolygon<f64>)]) -> f64 {
        let u = geo::unary_union(polys.iter().map(|(_, g)| g));
        area_m2(&u)
    }

    fn sum_area(polys: &[(String, MultiPolygon<f64>)]) -> f64 {
        polys.iter().map(|(_, g)| area_m2(g)).sum()
    }

    /// Every output polygon valid, no overlap, areas add up.
    fn assert_coverage(polys: &[(String, MultiPolygon<f64>)]) {
        for (c, g) in polys {
            assert!(g.is_valid(), "{c}: {:?}", g.validation_errors());
        }
        let (s, u) = (sum_area(polys), union_area(polys));
        assert!(
            (s - u).abs() <= 0.01 + 1e-6 * u,
            "overlap: sum {s} union {u}"
        );
    }

    fn kinds(fixes: &[Fix]) -> Vec<FixKind> {
        fixes.iter().map(|f| f.kind).collect()
    }

    /// The modules' doc examples, as unit tests (they run with `cargo test --lib`).
    #[test]
    fn doc_examples() {
        let a = MultiPolygon::new(vec![Polygon::new(
            geo::LineString::from(vec![
                (106.800, 39.600),
                (106.801, 39.600),
                (106.801, 39.601),
                (106.800, 39.601),
                (106.800, 39.600),
            ]),
            vec![],
        )]);
        let b = MultiPolygon::new(vec![Polygon::new(
            geo::LineString::from(vec![
                (106.801, 39.600),
                (106.802, 39.600),
                (106.802, 39.601),
                (106.801, 39.601),
                (106.80098, 39.6005),
                (106.801, 39.600),
            ]),
            vec![],
        )]);
        let polys = vec![("a".to_string(), a.clone()), ("b".to_string(), b)];
        let issues = super::super::validate::validate(&polys, None, &Default::default());
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert_eq!(issues[0].kind, IssueKind::Overlap);
        assert_eq!(issues[0].codes, vec!["a", "b"]);
        assert!((issues[0].area_m2.unwrap_or(0.0) - 95.0).abs() < 1.0);
        let cleaned = clean(&polys, None, &CleanOptions::default());
        assert_eq!(kinds(&cleaned.fixes), vec![FixKind::OverlapResolved]);
        assert_eq!(cleaned.fixes[0].to.as_deref(), Some("a"));
        assert_eq!(cleaned.polygons[0].1, a);
        assert_eq!(cleaned.changed, vec!["b"]);
        assert_eq!(cleaned.polygons[1].1 .0[0].exterior().0.len(), 5);
        assert!(cleaned.remaining.is_empty());
    }

    #[test]
    fn clean_tiling_is_returned_bit_for_bit() {
        let polys = tiling();
        let parent = rect_m(0.0, 0.0, 300.0, 300.0);
        for p in [None, Some(&parent)] {
            let out = clean(&polys, p, &CleanOptions::default());
            assert!(out.fixes.is_empty(), "{:#?}", out.fixes);
            assert!(out.changed.is_empty());
            assert!(out.remaining.is_empty());
            assert_eq!(out.polygons.len(), polys.len());
            for ((c0, g0), (c1, g1)) in polys.iter().zip(&out.polygons) {
                assert_eq!(c0, c1);
                assert!(same_bits(g0, g1), "{c0}");
            }
        }
    }

    fn bulge() -> Vec<(String, MultiPolygon<f64>)> {
        // b's left side bulges 2 m into a: a 100 m² triangle
        named(vec![
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
        ])
    }

    #[test]
    fn overlap_goes_to_the_longest_border() {
        let polys = bulge();
        let out = clean(&polys, None, &CleanOptions::default());
        assert_eq!(kinds(&out.fixes), vec![FixKind::OverlapResolved]);
        let fix = &out.fixes[0];
        assert_eq!(fix.from, vec!["a", "b"]);
        // the triangle's two long sides are b's edges with a beyond them (2 × 50.04 m), its
        // base is a's edge with b beyond (100 m): a borders it longest
        assert_eq!(fix.to.as_deref(), Some("a"));
        assert!((fix.area_m2 - 100.0).abs() < 0.5, "{}", fix.area_m2);
        assert!(
            fix.rule.starts_with("longest shared border (100.1"),
            "{}",
            fix.rule
        );
        assert!((area_m2(&fix.geometry) - 100.0).abs() < 0.5);
        assert_eq!(out.changed, vec!["b"]);
        assert!(same_bits(&out.polygons[0].1, &polys[0].1));
        // b lost exactly its bulge vertex; the others are the input's, in the input's order
        let b: Vec<_> = coords(&out.polygons[1].1).into_iter().map(bits).collect();
        let want: Vec<_> = coords(&polys[1].1)
            .into_iter()
            .filter(|&c| bits(c) != bits(ll(98.0, 50.0)))
            .map(bits)
            .collect();
        assert_eq!(b, want);
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
        assert_coverage(&out.polygons);
    }

    #[test]
    fn overlap_by_area_rules() {
        let polys = bulge(); // b is 10 100 m², a 10 000 m²
        let largest = CleanOptions {
            rule: MergeRule::LargestArea,
            ..Default::default()
        };
        let out = clean(&polys, None, &largest);
        assert_eq!(out.fixes[0].to.as_deref(), Some("b"));
        assert_eq!(out.changed, vec!["a"]);
        // a now has b's bulge vertex, with b's exact coordinates, so their edges match
        assert!(has_vertex(&out.polygons[0].1, ll(98.0, 50.0)));
        assert!(same_bits(&out.polygons[1].1, &polys[1].1));
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
        assert_coverage(&out.polygons);

        let smallest = CleanOptions {
            rule: MergeRule::SmallestArea,
            ..Default::default()
        };
        let out = clean(&polys, None, &smallest);
        assert_eq!(out.fixes[0].to.as_deref(), Some("a"));
    }

    #[test]
    fn narrow_gap_is_filled() {
        let polys = with_gap(2.0);
        let total = sum_area(&polys);
        for parent in [None, Some(rect_m(0.0, -50.0, 202.0, 150.0))] {
            let out = clean(&polys, parent.as_ref(), &CleanOptions::default());
            assert_eq!(
                kinds(&out.fixes),
                vec![FixKind::GapFilled],
                "{:#?}",
                out.fixes
            );
            let fix = &out.fixes[0];
            assert_eq!(fix.from, vec!["a", "b", "c", "d"]);
            // a and b border it for 100 m each: the tie goes to the smaller code
            assert_eq!(fix.to.as_deref(), Some("a"));
            assert!((fix.area_m2 - 200.0).abs() < 1.0);
            assert_eq!(out.changed, vec!["a"]);
            for (got, want) in out.polygons.iter().zip(&polys).skip(1) {
                assert!(same_bits(&got.1, &want.1));
            }
            assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
            assert_coverage(&out.polygons);
            let u = union_area(&out.polygons);
            assert!((u - total - 200.0).abs() < 1.0, "{u}");
        }
    }

    #[test]
    fn wide_gap_is_reported_not_filled() {
        let polys = with_gap(20.0);
        let parent = rect_m(0.0, -50.0, 220.0, 150.0);
        let out = clean(&polys, Some(&parent), &CleanOptions::default());
        assert!(out.fixes.is_empty(), "{:#?}", out.fixes);
        assert!(out.changed.is_empty());
        let kinds: Vec<_> = out.remaining.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, vec![IssueKind::ParentNotCovered]);
        // a wider gap_width makes it a gap, and it is filled
        let wide = CleanOptions {
            gap_width_m: 25.0,
            ..Default::default()
        };
        let out = clean(&polys, Some(&parent), &wide);
        assert_eq!(out.fixes.len(), 1);
        assert_eq!(out.fixes[0].kind, FixKind::GapFilled);
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
    }

    #[test]
    fn mismatched_vertices_are_snapped_and_edges_become_identical() {
        // a has a vertex at (100, 50); b has one 0.5 m up the same side and one 0.4 m off it
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
                    (100.4, 30.0),
                ]),
            ),
        ]);
        let before = super::super::validate::validate(&polys, None, &Default::default());
        assert!(before.iter().any(|i| i.kind == IssueKind::MismatchedEdge));
        let out = clean(&polys, None, &CleanOptions::default());
        assert!(
            out.fixes.iter().all(|f| f.kind == FixKind::Snapped),
            "{:#?}",
            out.fixes
        );
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
        // b's vertex moved onto a's (a smaller code, both used by one polygon); a received b's
        // off-line vertex
        let (a, b) = (&out.polygons[0].1, &out.polygons[1].1);
        assert!(has_vertex(b, ll(100.0, 50.0)) && !has_vertex(b, ll(100.0, 50.5)));
        assert!(has_vertex(a, ll(100.4, 30.0)));
        // the shared boundary is the same chain of coordinates in both, reversed
        let edges = |mp: &MultiPolygon<f64>| -> HashSet<((u64, u64), (u64, u64))> {
            mp.iter()
                .flat_map(|p| p.exterior().lines())
                .map(|l| (bits(l.start), bits(l.end)))
                .collect()
        };
        let (ea, eb) = (edges(a), edges(b));
        let shared: Vec<_> = ea.iter().filter(|(s, e)| eb.contains(&(*e, *s))).collect();
        assert_eq!(shared.len(), 3, "{shared:?}");
        // no a edge runs along b without being one of b's edges
        let near_x100 = |c: (u64, u64)| {
            let x = (f64::from_bits(c.0) - 106.8) * metres_per_deg_lon(39.6);
            x > 99.0 && x < 101.0
        };
        for (s, e) in &ea {
            if near_x100(*s) && near_x100(*e) {
                assert!(eb.contains(&(*e, *s)));
            }
        }
        assert_coverage(&out.polygons);
    }

    #[test]
    fn outside_parent_is_clipped() {
        let polys = named(vec![
            ("a", rect_m(0.0, 0.0, 100.0, 100.0)),
            ("b", rect_m(100.0, 0.0, 210.0, 100.0)),
        ]);
        // the parent's corners are not the polygons' corners: they must come out exact
        let parent = rect_m(0.0, 0.0, 200.0, 100.0);
        let out = clean(&polys, Some(&parent), &CleanOptions::default());
        assert_eq!(kinds(&out.fixes), vec![FixKind::ClippedToParent]);
        let fix = &out.fixes[0];
        assert_eq!(fix.from, vec!["b"]);
        assert_eq!(fix.to, None);
        assert!((fix.area_m2 - 1000.0).abs() < 1.0, "{}", fix.area_m2);
        assert_eq!(out.changed, vec!["b"]);
        assert!(same_bits(&out.polygons[0].1, &polys[0].1));
        let b = &out.polygons[1].1;
        assert!(has_vertex(b, ll(200.0, 0.0)) && has_vertex(b, ll(200.0, 100.0)));
        assert!(has_vertex(b, ll(100.0, 0.0)) && has_vertex(b, ll(100.0, 100.0)));
        assert_eq!(coords(b).len(), 5);
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
        let (u, p) = (union_area(&out.polygons), area_m2(&parent));
        assert!((u - p).abs() < p * 1e-3, "{u} vs {p}");
        assert_coverage(&out.polygons);

        // without clipping, b stays and the issue remains
        let keep = CleanOptions {
            clip_to_parent: false,
            ..Default::default()
        };
        let out = clean(&polys, Some(&parent), &keep);
        assert!(out.fixes.is_empty());
        assert_eq!(out.remaining.len(), 1);
        assert_eq!(out.remaining[0].kind, IssueKind::OutsideParent);
    }

    #[test]
    fn bow_tie_is_repaired() {
        let polys = named(vec![(
            "x",
            poly_m(&[(0.0, 0.0), (100.0, 100.0), (100.0, 0.0), (0.0, 100.0)]),
        )]);
        let out = clean(&polys, None, &CleanOptions::default());
        assert_eq!(kinds(&out.fixes), vec![FixKind::RingRepaired]);
        let x = &out.polygons[0].1;
        assert!(x.is_valid(), "{:?}", x.validation_errors());
        // both lobes survive: 2 × 100 × 50 / 2
        assert!((area_m2(x) - 5000.0).abs() < 1.0, "{}", area_m2(x));
        for c in [
            ll(0.0, 0.0),
            ll(100.0, 100.0),
            ll(100.0, 0.0),
            ll(0.0, 100.0),
        ] {
            assert!(has_vertex(x, c));
        }
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
    }

    /// 4 × 4 cells of 100 m, each ring through its corners and edge midpoints.
    fn lattice() -> Vec<(String, MultiPolygon<f64>)> {
        let mut out = Vec::new();
        for i in 0..4 {
            for j in 0..4 {
                let (x, y) = (i as f64 * 100.0, j as f64 * 100.0);
                out.push((
                    format!("c{i}{j}"),
                    poly_m(&[
                        (x, y),
                        (x + 50.0, y),
                        (x + 100.0, y),
                        (x + 100.0, y + 50.0),
                        (x + 100.0, y + 100.0),
                        (x + 50.0, y + 100.0),
                        (x, y + 100.0),
                        (x, y + 50.0),
                    ]),
                ));
            }
        }
        out
    }

    /// Moves the vertex at `at` (metres) by `by` in the polygon `code` only.
    fn perturb(
        polys: &mut [(String, MultiPolygon<f64>)],
        code: &str,
        at: Coord<f64>,
        by: (f64, f64),
    ) {
        let (kx, ky) = (metres_per_deg_lon(39.6), METRES_PER_DEG_LAT);
        for (c, g) in polys.iter_mut() {
            if c != code {
                continue;
            }
            for p in g.iter_mut() {
                p.exterior_mut(|r| {
                    for v in r.0.iter_mut() {
                        if bits(*v) == bits(at) {
                            v.x += by.0 / kx;
                            v.y += by.1 / ky;
                        }
                    }
                });
            }
        }
    }

    #[test]
    fn untouched_neighbours_keep_their_vertices() {
        let input = lattice();
        let mut polys = input.clone();
        // the corner shared by c11, c21, c12, c22, moved 3 m east and 2 m north in c11 only
        let corner = ll(200.0, 200.0);
        perturb(&mut polys, "c11", corner, (3.0, 2.0));
        let issues = super::super::validate::validate(&polys, None, &Default::default());
        assert!(!issues.is_empty());
        let out = clean(&polys, None, &CleanOptions::default());
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
        assert_coverage(&out.polygons);
        let (u, want) = (union_area(&out.polygons), 400.0 * 400.0);
        assert!((u - want).abs() < want * 1e-6, "{u}");
        let involved: HashSet<&String> = out
            .fixes
            .iter()
            .flat_map(|f| f.from.iter().chain(f.to.iter()))
            .collect();
        assert!(involved.len() < 5, "{involved:?}");
        let (kx, ky) = (metres_per_deg_lon(39.6), METRES_PER_DEG_LAT);
        let far = |c: &Coord<f64>| {
            let (dx, dy) = ((c.x - corner.x) * kx, (c.y - corner.y) * ky);
            dx.hypot(dy) > 10.0
        };
        for ((code, before), (_, after)) in polys.iter().zip(&out.polygons) {
            if !involved.contains(code) {
                assert!(same_bits(before, after), "{code} changed without a fix");
                continue;
            }
            // away from the edit, the vertices are the input's, bit-for-bit, in order
            let b: Vec<_> = coords(before)
                .iter()
                .filter(|c| far(c))
                .map(|&c| bits(c))
                .collect();
            let a: Vec<_> = coords(after)
                .iter()
                .filter(|c| far(c))
                .map(|&c| bits(c))
                .collect();
            assert_eq!(a, b, "{code}");
        }
    }

    #[test]
    fn annular_gap_around_an_island_is_filled() {
        // a donut with a 40 m hole and an island 2 m short of the hole's edge all round
        let ring = |x0: f64, y0: f64, x1: f64, y1: f64| {
            geo::LineString(vec![
                ll(x0, y0),
                ll(x1, y0),
                ll(x1, y1),
                ll(x0, y1),
                ll(x0, y0),
            ])
        };
        let donut = MultiPolygon::new(vec![Polygon::new(
            ring(0.0, 0.0, 100.0, 100.0),
            vec![ring(30.0, 30.0, 70.0, 70.0)],
        )]);
        let polys = named(vec![
            ("donut", donut),
            ("island", rect_m(32.0, 32.0, 68.0, 68.0)),
        ]);
        let issues = super::super::validate::validate(&polys, None, &Default::default());
        let ks: Vec<_> = issues.iter().map(|i| i.kind).collect();
        assert_eq!(ks, vec![IssueKind::Gap], "{issues:#?}");
        assert_eq!(issues[0].codes, vec!["donut", "island"]);
        let a = issues[0].area_m2.unwrap_or(0.0);
        assert!((a - (1600.0 - 1296.0)).abs() < 1.0, "{a}");

        let out = clean(&polys, None, &CleanOptions::default());
        assert_eq!(kinds(&out.fixes), vec![FixKind::GapFilled]);
        // the donut borders the annulus for 160 m, the island for 144 m
        assert_eq!(out.fixes[0].to.as_deref(), Some("donut"));
        assert_eq!(out.changed, vec!["donut"]);
        let d = &out.polygons[0].1;
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].interiors().len(), 1);
        // the new hole is the island's ring, coordinate for coordinate
        let hole: HashSet<_> = d.0[0].interiors()[0].0.iter().map(|&c| bits(c)).collect();
        let island: HashSet<_> = coords(&polys[1].1).into_iter().map(bits).collect();
        assert_eq!(hole, island);
        // and the shell is untouched, from the same start vertex
        assert!(d.0[0].exterior() == polys[0].1 .0[0].exterior());
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
        assert_coverage(&out.polygons);
    }

    #[test]
    fn clockwise_input_stays_clockwise() {
        let mut polys = bulge();
        for (_, g) in polys.iter_mut() {
            for p in g.iter_mut() {
                p.exterior_mut(|r| r.0.reverse());
            }
        }
        let largest = CleanOptions {
            rule: MergeRule::LargestArea,
            ..Default::default()
        };
        let out = clean(&polys, None, &largest);
        assert_eq!(out.changed, vec!["a"]);
        let a = &out.polygons[0].1;
        assert!(a.signed_area() < 0.0);
        // it starts where the input started
        assert_eq!(
            bits(a.0[0].exterior().0[0]),
            bits(polys[0].1 .0[0].exterior().0[0])
        );
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
    }

    #[test]
    fn multipolygon_parts_are_kept() {
        let mut two = rect_m(0.0, 0.0, 100.0, 100.0);
        two.0.extend(rect_m(300.0, 0.0, 400.0, 100.0).0);
        // b overlaps the second part by 10 m
        let polys = named(vec![("a", two), ("b", rect_m(390.0, 0.0, 500.0, 100.0))]);
        let out = clean(&polys, None, &CleanOptions::default());
        assert_eq!(
            kinds(&out.fixes),
            vec![FixKind::OverlapResolved],
            "{:#?}",
            out.fixes
        );
        assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
        let loser = out.fixes[0]
            .to
            .as_deref()
            .map(|w| if w == "a" { 1 } else { 0 });
        assert!(loser.is_some());
        // a keeps two parts, in the input order, whoever lost the strip
        assert_eq!(out.polygons[0].1 .0.len(), 2);
        assert!(
            out.polygons[0].1 .0[0].exterior() == polys[0].1 .0[0].exterior(),
            "the untouched part is unchanged"
        );
        assert_coverage(&out.polygons);
    }

    #[test]
    fn empty_and_degenerate_input() {
        let out = clean(&[], None, &CleanOptions::default());
        assert!(out.polygons.is_empty() && out.fixes.is_empty() && out.remaining.is_empty());
        let polys = named(vec![
            ("flat", poly_m(&[(0.0, 0.0), (100.0, 0.0), (50.0, 0.0)])),
            ("ok", rect_m(0.0, 0.0, 100.0, 100.0)),
        ]);
        let out = clean(&polys, None, &CleanOptions::default());
        assert_eq!(out.polygons.len(), 2);
        assert!(out.polygons[0].1 .0.is_empty());
        assert!(same_bits(&out.polygons[1].1, &polys[1].1));
    }

    #[test]
    fn fix_serialises_its_piece_as_geojson() {
        let out = clean(&bulge(), None, &CleanOptions::default());
        let v = serde_json::to_value(&out.fixes[0]).unwrap_or_default();
        assert_eq!(v["kind"], "overlap_resolved");
        assert_eq!(v["geometry"]["type"], "MultiPolygon");
        assert_eq!(v["to"], "a");
    }

    // ---- the demo grids -----------------------------------------------------------------

    struct Community {
        code: String,
        boundary: MultiPolygon<f64>,
        grids: Vec<(String, MultiPolygon<f64>)>,
    }

    fn parse_geometry(g: &serde_json::Value) -> MultiPolygon<f64> {
        let ring = |r: &serde_json::Value| -> geo::LineString<f64> {
            geo::LineString(
                r.as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| Coord {
                        x: p[0].as_f64().unwrap_or(f64::NAN),
                        y: p[1].as_f64().unwrap_or(f64::NAN),
                    })
                    .collect(),
            )
        };
        let polygon = |p: &serde_json::Value| -> Polygon<f64> {
            let rings: Vec<_> = p.as_array().into_iter().flatten().map(ring).collect();
            let mut it = rings.into_iter();
            let ext = it.next().unwrap_or_else(|| geo::LineString(vec![]));
            Polygon::new(ext, it.collect())
        };
        match g["type"].as_str() {
            Some("Polygon") => MultiPolygon::new(vec![polygon(&g["coordinates"])]),
            Some("MultiPolygon") => MultiPolygon::new(
                g["coordinates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(polygon)
                    .collect(),
            ),
            other => panic!("unexpected geometry {other:?}"),
        }
    }

    /// The community's grids as if each were drawn on its own: every vertex moved by up to
    /// `metres` along each axis, so neighbours no longer share their edges.
    fn drawn_independently(
        c: &Community,
        rng: &mut rand_chacha::ChaCha8Rng,
        metres: f64,
    ) -> Vec<(String, MultiPolygon<f64>)> {
        use rand::Rng;
        let (kx, ky) = (metres_per_deg_lon(39.6), METRES_PER_DEG_LAT);
        c.grids
            .iter()
            .map(|(code, g)| {
                let mut g = g.clone();
                for p in g.iter_mut() {
                    p.exterior_mut(|r| {
                        for v in r.0.iter_mut() {
                            v.x += rng.random_range(-metres..metres) / kx;
                            v.y += rng.random_range(-metres..metres) / ky;
                        }
                        r.0.pop();
                        r.close();
                    });
                }
                (code.clone(), g)
            })
            .collect()
    }

    fn demo_communities() -> Vec<Community> {
        let v: serde_json::Value =
            serde_json::from_str(crate::demo::REGIONS_GEOJSON).expect("demo geojson parses");
        let features = v["features"].as_array().expect("features");
        let mut out: Vec<Community> = Vec::new();
        for f in features {
            let p = &f["properties"];
            if p["level"] == "community" {
                out.push(Community {
                    code: p["code"].as_str().unwrap_or_default().to_string(),
                    boundary: parse_geometry(&f["geometry"]),
                    grids: Vec::new(),
                });
            }
        }
        for f in features {
            let p = &f["properties"];
            if p["level"] != "grid" {
                continue;
            }
            let parent = p["parent_code"].as_str().unwrap_or_default();
            if let Some(c) = out.iter_mut().find(|c| c.code == parent) {
                c.grids.push((
                    p["code"].as_str().unwrap_or_default().to_string(),
                    parse_geometry(&f["geometry"]),
                ));
            }
        }
        out
    }

    #[test]
    fn demo_community_validates_then_is_repaired_after_a_perturbation() {
        let communities = demo_communities();
        let c = communities
            .iter()
            .max_by_key(|c| c.grids.len())
            .expect("a community");
        assert!(c.grids.len() >= 15);
        let issues =
            super::super::validate::validate(&c.grids, Some(&c.boundary), &Default::default());
        assert!(issues.is_empty(), "{issues:#?}");
        let out = clean(&c.grids, Some(&c.boundary), &CleanOptions::default());
        assert!(
            out.fixes.is_empty() && out.changed.is_empty(),
            "{:#?}",
            out.fixes
        );

        // a vertex used by exactly two grids and not on the community boundary
        let boundary: HashSet<(u64, u64)> = coords(&c.boundary).into_iter().map(bits).collect();
        let mut uses: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
        for (i, (_, g)) in c.grids.iter().enumerate() {
            let mut seen = HashSet::new();
            for v in coords(g) {
                if seen.insert(bits(v)) {
                    uses.entry(bits(v)).or_default().push(i);
                }
            }
        }
        let mut shared: Vec<_> = uses
            .iter()
            .filter(|(v, gs)| gs.len() == 2 && !boundary.contains(v))
            .collect();
        shared.sort();
        let (&v, gs) = shared[shared.len() / 2];
        let at = Coord {
            x: f64::from_bits(v.0),
            y: f64::from_bits(v.1),
        };
        // moved 3 m square to the shared edge, into the neighbour (overlap) or away (gap)
        let code = c.grids[gs[0]].0.clone();
        let ring = &c.grids[gs[0]].1 .0[0].exterior().0;
        let k = ring
            .iter()
            .position(|&p| bits(p) == v)
            .expect("vertex in ring");
        let m = ring.len() - 1; // closed ring
        let (prev, next) = (ring[(k + m - 1) % m], ring[(k + 1) % m]);
        let (kx, ky) = (metres_per_deg_lon(39.6), METRES_PER_DEG_LAT);
        let (dx, dy) = ((next.x - prev.x) * kx, (next.y - prev.y) * ky);
        let len = dx.hypot(dy);
        for (side, expect) in [(-3.0, IssueKind::Overlap), (3.0, IssueKind::Gap)] {
            // the ring is counter-clockwise: the right-hand normal points out of it
            let by = (side * -dy / len, side * dx / len);
            let mut polys = c.grids.clone();
            perturb(&mut polys, &code, at, by);
            let issues =
                super::super::validate::validate(&polys, Some(&c.boundary), &Default::default());
            assert!(issues.iter().any(|i| i.kind == expect), "{issues:#?}");

            let out = clean(&polys, Some(&c.boundary), &CleanOptions::default());
            assert!(out.remaining.is_empty(), "{:#?}", out.remaining);
            assert!(!out.fixes.is_empty());
            assert_coverage(&out.polygons);
            let (u, p) = (union_area(&out.polygons), area_m2(&c.boundary));
            assert!((u - p).abs() < p * 1e-3, "{u} vs {p}");
            let involved: HashSet<&String> = out
                .fixes
                .iter()
                .flat_map(|f| f.from.iter().chain(f.to.iter()))
                .collect();
            for ((code, before), (_, after)) in polys.iter().zip(&out.polygons) {
                if !involved.contains(code) {
                    assert!(same_bits(before, after), "{code}");
                }
            }
            assert!(out.changed.len() <= 2, "{:?}", out.changed);
        }
    }

    /// Like a vectorised sketch: every grid of a community drawn on its own, each vertex off by
    /// up to 1.5 m in each direction, so neighbours share no vertex at all.
    #[test]
    fn demo_community_drawn_independently_is_cleaned() {
        use rand::SeedableRng;
        let communities = demo_communities();
        let c = communities
            .iter()
            .max_by_key(|c| c.grids.len())
            .expect("a community");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let polys = drawn_independently(c, &mut rng, 1.5);
        let issues =
            super::super::validate::validate(&polys, Some(&c.boundary), &Default::default());
        assert!(issues.len() > polys.len(), "{}", issues.len());
        let out = clean(&polys, Some(&c.boundary), &CleanOptions::default());
        let kinds: Vec<_> = out
            .remaining
            .iter()
            .map(|i| (i.kind, i.message.clone()))
            .collect();
        assert!(out.remaining.is_empty(), "{kinds:#?}");
        assert_coverage(&out.polygons);
        let (u, p) = (union_area(&out.polygons), area_m2(&c.boundary));
        assert!((u - p).abs() < p * 1e-3, "{u} vs {p}");
    }

    /// Every community drawn independently with up to 3 m of error per vertex and axis: the
    /// result is always a valid coverage; what remains are gaps wider than 5 m.
    #[test]
    fn sloppy_demo_sketches_clean_into_valid_coverages() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut spent, mut fixes) = (std::time::Duration::ZERO, 0);
        for c in demo_communities() {
            let polys = drawn_independently(&c, &mut rng, 3.0);
            let t = std::time::Instant::now();
            let out = clean(&polys, Some(&c.boundary), &CleanOptions::default());
            spent += t.elapsed();
            fixes += out.fixes.len();
            assert!(
                out.remaining
                    .iter()
                    .all(|i| i.kind == IssueKind::ParentNotCovered),
                "{}: {:#?}",
                c.code,
                out.remaining
            );
            assert_coverage(&out.polygons);
            let uncovered: f64 = out.remaining.iter().filter_map(|i| i.area_m2).sum();
            let (u, p) = (union_area(&out.polygons), area_m2(&c.boundary));
            assert!(
                (u + uncovered - p).abs() < p * 1e-3,
                "{}: {u} + {uncovered} vs {p}",
                c.code
            );
        }
        println!(
            "sloppy demo sketches: 704 grids, {fixes} fixes, clean {:.1} ms",
            spent.as_secs_f64() * 1e3
        );
    }

    /// Prints the time to validate and clean every community of the demo (704 grids); asserts
    /// only that the demo is a clean coverage.
    #[test]
    fn demo_timing() {
        let communities = demo_communities();
        let grids: usize = communities.iter().map(|c| c.grids.len()).sum();
        assert_eq!(grids, 704);
        let t = std::time::Instant::now();
        for c in &communities {
            let issues =
                super::super::validate::validate(&c.grids, Some(&c.boundary), &Default::default());
            assert!(issues.is_empty(), "{}: {issues:#?}", c.code);
        }
        let tv = t.elapsed();
        let t = std::time::Instant::now();
        for c in &communities {
            let out = clean(&c.grids, Some(&c.boundary), &CleanOptions::default());
            assert!(out.changed.is_empty(), "{}", c.code);
        }
        let tc = t.elapsed();
        println!(
            "demo coverage by community: {} communities, {grids} grids: validate {:.1} ms, \
             clean {:.1} ms",
            communities.len(),
            tv.as_secs_f64() * 1e3,
            tc.as_secs_f64() * 1e3
        );
        // all 704 grids as one coverage (no parent: they lie in four separate urban cores)
        let all: Vec<(String, MultiPolygon<f64>)> =
            communities.into_iter().flat_map(|c| c.grids).collect();
        let t = std::time::Instant::now();
        let issues = super::super::validate::validate(&all, None, &Default::default());
        let tv = t.elapsed();
        assert!(issues.is_empty(), "{issues:#?}");
        let t = std::time::Instant::now();
        let out = clean(&all, None, &CleanOptions::default());
        let tc = t.elapsed();
        assert!(out.changed.is_empty());
        println!(
            "demo coverage as one: {} grids: validate {:.1} ms, clean {:.1} ms",
            all.len(),
            tv.as_secs_f64() * 1e3,
            tc.as_secs_f64() * 1e3
        );
    }
}
