//! Redraw and publish: a planner's new drawing of one region's children (a community's grids, a
//! grid's micro-grids) is checked as a coverage of the parent, matched to the current children
//! so codes stay stable, compared with the current boundaries (symmetric difference per child),
//! and published as new boundary versions; the locate index then switches atomically.
//!
//! The request is the same for the check and the publication:
//! `{"features": [Feature…], "crs"?: "wgs84", "sketch_id"?: 7}`; each feature may name the
//! `code` of the current child it redraws, a `name`, and a client `key` echoed back.

use super::{Gridwatch, Result, WorkflowError};
use crate::coverage::validate::{validate, IssueKind, ValidateOptions};
use crate::domain::{Crs, GridCode, Level, Problem, RegionFeature};
use crate::spatial::geojson::parse_geometry;
use crate::storage::redraw::{
    ChildRow, Publication, PublishOutcome, PublishPlan, PublishSummary, RedrawContext,
};
use chrono::Utc;
use geo::{BooleanOps, BoundingRect, Coord, GeodesicArea, Intersects, MultiPolygon};
use rstar::primitives::GeomWithData;
use rstar::RTree;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// A feature IoU at least this large with a current child redraws that child (keeps its code).
pub const MATCH_IOU: f64 = 0.5;
/// Vertices this close (degrees, ~1 cm) to a current vertex are taken to be that vertex:
/// clients that round coordinates (map editors keep 9 decimals or fewer) do not create changes.
const RESTORE_DEG: f64 = 1e-7;
/// Most features in one redraw.
pub const MAX_FEATURES: usize = 2000;
const MAX_NAME_CHARS: usize = 100;

/// One drawn child as the client sent it.
#[derive(Debug, Clone)]
pub struct RedrawFeature {
    pub index: usize,
    pub code: Option<String>,
    pub name: Option<String>,
    pub key: Option<String>,
    pub geom: MultiPolygon<f64>,
}

#[derive(Debug, Clone)]
pub struct RedrawRequest {
    pub features: Vec<RedrawFeature>,
    pub sketch_id: Option<i64>,
}

/// Parses a redraw request; every wrong value is named by its field.
pub fn parse_request(doc: &Value) -> Result<RedrawRequest> {
    let obj = doc.as_object().ok_or_else(|| {
        WorkflowError::invalid("body", "expected a JSON object with \"features\"")
    })?;
    for k in obj.keys() {
        if !["type", "features", "crs", "sketch_id"].contains(&k.as_str()) {
            return Err(WorkflowError::invalid(
                k.clone(),
                format!("unknown field {k:?}: expected features, crs, sketch_id"),
            ));
        }
    }
    let crs = match obj.get("crs") {
        None | Some(Value::Null) => Crs::Wgs84,
        Some(Value::String(s)) => super::intake::parse_crs(Some(s), "crs")?,
        Some(_) => return Err(WorkflowError::invalid("crs", "must be a string")),
    };
    let sketch_id = match obj.get("sketch_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|id| *id > 0)
                .ok_or_else(|| WorkflowError::invalid("sketch_id", "must be a sketch id"))?,
        ),
    };
    let items = obj
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            WorkflowError::invalid("features", "must be an array of GeoJSON Features")
        })?;
    if items.len() > MAX_FEATURES {
        return Err(WorkflowError::invalid(
            "features",
            format!(
                "{} features; at most {MAX_FEATURES} per redraw",
                items.len()
            ),
        ));
    }
    let mut features = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let field = |f: &str| format!("features[{i}].{f}");
        if item.get("type").and_then(Value::as_str) != Some("Feature") {
            return Err(WorkflowError::invalid(
                format!("features[{i}]"),
                "must be a GeoJSON Feature",
            ));
        }
        let geometry = item
            .get("geometry")
            .filter(|g| !g.is_null())
            .ok_or_else(|| WorkflowError::invalid(field("geometry"), "missing"))?;
        let geom = parse_geometry(geometry, crs)
            .map_err(|e| WorkflowError::invalid(field("geometry"), e))?;
        let props = item.get("properties").cloned().unwrap_or(Value::Null);
        let code = match props.get("code") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                let code = GridCode::parse(s.trim())
                    .map_err(|e| WorkflowError::invalid(field("properties.code"), e.to_string()))?;
                if !seen.insert(code.as_str().to_owned()) {
                    return Err(WorkflowError::invalid(
                        field("properties.code"),
                        format!("{code} is given to two features"),
                    ));
                }
                Some(code.as_str().to_owned())
            }
            Some(_) => {
                return Err(WorkflowError::invalid(
                    field("properties.code"),
                    "must be a string",
                ))
            }
        };
        let name = match props.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    None
                } else if s.chars().count() > MAX_NAME_CHARS {
                    return Err(WorkflowError::invalid(
                        field("properties.name"),
                        format!("longer than {MAX_NAME_CHARS} characters"),
                    ));
                } else {
                    Some(s.to_owned())
                }
            }
            Some(_) => {
                return Err(WorkflowError::invalid(
                    field("properties.name"),
                    "must be a string",
                ))
            }
        };
        let key = match props.get("key") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(WorkflowError::invalid(
                    field("properties.key"),
                    "must be a string or a number",
                ))
            }
        };
        features.push(RedrawFeature {
            index: i,
            code,
            name,
            key,
            geom,
        });
    }
    Ok(RedrawRequest {
        features,
        sketch_id,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildStatus {
    Unchanged,
    Changed,
    New,
    Retired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// the feature named the code
    Given,
    /// the feature overlaps the child by IoU ≥ [`MATCH_IOU`]
    Overlap,
    /// no current child matched: a new code
    New,
    /// a grid whose micro-grids were drawn: its boundary is their union
    MicroGrids,
}

/// One child after the redraw, or one retired by it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChild {
    /// index of the feature in the request; `None` for a retired child
    pub feature: Option<usize>,
    pub key: Option<String>,
    pub code: String,
    pub parent_code: String,
    pub level: Level,
    pub name: String,
    pub status: ChildStatus,
    pub matched_by: Option<MatchedBy>,
    /// area after the redraw (before, for a retired child), m²
    pub area_m2: f64,
    pub old_area_m2: Option<f64>,
    pub old_version: Option<i32>,
    /// area of the symmetric difference between the old and new boundary, m²
    pub sym_diff_m2: Option<f64>,
    /// `sym_diff_m2` as a percentage of the old area
    pub sym_diff_pct: Option<f64>,
    #[serde(skip)]
    pub geom: Option<MultiPolygon<f64>>,
    #[serde(skip)]
    pub synthetic: bool,
}

/// A coverage issue, or a redraw problem, and whether it stops the publication.
#[derive(Debug, Clone, Serialize)]
pub struct PlanIssue {
    pub kind: String,
    pub codes: Vec<String>,
    pub area_m2: Option<f64>,
    pub location: Option<(f64, f64)>,
    pub message: String,
    pub blocking: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParentInfo {
    pub code: String,
    pub name: String,
    pub level: Level,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedrawPlan {
    pub parent: ParentInfo,
    pub child_level: Level,
    pub publishable: bool,
    pub issues: Vec<PlanIssue>,
    /// the children after the redraw (and the micro-grids drawn with them), then those retired
    pub children: Vec<PlannedChild>,
    /// grids redrawn through their micro-grids, whose tiling PostGIS checks too
    #[serde(skip)]
    pub tile: Vec<String>,
}

impl RedrawPlan {
    /// The proposed children as a FeatureCollection for the map.
    pub fn features(&self) -> Value {
        let features: Vec<Value> = self
            .children
            .iter()
            .filter_map(|c| {
                let g = c.geom.as_ref()?;
                Some(json!({
                    "type": "Feature",
                    "properties": {
                        "code": c.code, "name": c.name, "status": c.status, "key": c.key,
                        "level": c.level, "parent_code": c.parent_code,
                        "sym_diff_pct": c.sym_diff_pct,
                    },
                    "geometry": geojson::Geometry::new(geojson::GeometryValue::from(g)),
                }))
            })
            .collect();
        json!({"type": "FeatureCollection", "features": features})
    }

    fn blocking_problems(&self) -> Vec<Problem> {
        self.issues
            .iter()
            .filter(|i| i.blocking)
            .map(|i| {
                let mut p = Problem::new("coverage", format!("{}: {}", i.kind, i.message));
                p.code = i.codes.first().cloned();
                p.field = Some("features".into());
                p
            })
            .collect()
    }
}

/// Moves every vertex within [`RESTORE_DEG`] of a current vertex (of the children or the
/// parent) exactly onto it.
fn restore_vertices(features: &mut [RedrawFeature], ctx: &RedrawContext) {
    let mut points: Vec<[f64; 2]> = Vec::new();
    for mp in std::iter::once(&ctx.parent.geom).chain(ctx.children.iter().map(|c| &c.geom)) {
        for p in &mp.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                points.extend(r.0.iter().map(|c| [c.x, c.y]));
            }
        }
    }
    let tree: RTree<GeomWithData<[f64; 2], ()>> = RTree::bulk_load(
        points
            .into_iter()
            .map(|p| GeomWithData::new(p, ()))
            .collect(),
    );
    for f in features {
        for p in &mut f.geom.0 {
            let fix = |ring: &mut geo::LineString<f64>| {
                for c in ring.0.iter_mut() {
                    if let Some(n) = tree.nearest_neighbor(&[c.x, c.y]) {
                        let q = n.geom();
                        if (q[0] - c.x).abs() <= RESTORE_DEG && (q[1] - c.y).abs() <= RESTORE_DEG {
                            *c = Coord { x: q[0], y: q[1] };
                        }
                    }
                }
            };
            p.exterior_mut(fix);
            p.interiors_mut(|rings| {
                for r in rings {
                    fix(r);
                }
            });
        }
    }
}

/// Inserts into every feature's edges the vertices of other features that lie on them (within
/// ~0.1 mm), so that where one piece's new border meets a neighbour, the neighbour has the
/// vertex too and shared edges are identical vertex for vertex (a split adds such points).
fn node_vertices(features: &mut [RedrawFeature]) {
    const ON_EDGE_DEG: f64 = 1e-9;
    let mut points: Vec<GeomWithData<[f64; 2], usize>> = Vec::new();
    for (i, f) in features.iter().enumerate() {
        for p in &f.geom.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                points.extend(r.0.iter().map(|c| GeomWithData::new([c.x, c.y], i)));
            }
        }
    }
    let tree = RTree::bulk_load(points);
    for (i, f) in features.iter_mut().enumerate() {
        for p in &mut f.geom.0 {
            let node = |ring: &mut geo::LineString<f64>| {
                let mut out: Vec<Coord<f64>> = Vec::with_capacity(ring.0.len());
                for w in ring.0.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    out.push(a);
                    let d = b - a;
                    let len2 = d.x * d.x + d.y * d.y;
                    if len2 == 0.0 {
                        continue;
                    }
                    let env = rstar::AABB::from_corners(
                        [a.x.min(b.x) - ON_EDGE_DEG, a.y.min(b.y) - ON_EDGE_DEG],
                        [a.x.max(b.x) + ON_EDGE_DEG, a.y.max(b.y) + ON_EDGE_DEG],
                    );
                    let mut on: Vec<(f64, Coord<f64>)> = Vec::new();
                    for q in tree.locate_in_envelope(&env) {
                        if q.data == i {
                            continue;
                        }
                        let c = Coord {
                            x: q.geom()[0],
                            y: q.geom()[1],
                        };
                        let t = ((c.x - a.x) * d.x + (c.y - a.y) * d.y) / len2;
                        if t <= 1e-9 || t >= 1.0 - 1e-9 || c == a || c == b {
                            continue;
                        }
                        let off = ((c.x - a.x) * d.y - (c.y - a.y) * d.x).abs() / len2.sqrt();
                        if off <= ON_EDGE_DEG {
                            on.push((t, c));
                        }
                    }
                    on.sort_by(|x, y| x.0.total_cmp(&y.0));
                    on.dedup_by(|x, y| x.1 == y.1);
                    out.extend(on.into_iter().map(|(_, c)| c));
                }
                if let Some(&last) = ring.0.last() {
                    out.push(last);
                }
                ring.0 = out;
            };
            p.exterior_mut(node);
            p.interiors_mut(|rings| {
                for r in rings {
                    node(r);
                }
            });
        }
    }
}

fn area(mp: &MultiPolygon<f64>) -> f64 {
    mp.geodesic_area_unsigned()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn iou(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> f64 {
    match (a.bounding_rect(), b.bounding_rect()) {
        (Some(ra), Some(rb)) if ra.intersects(&rb) => {}
        _ => return 0.0,
    }
    let inter = area(&a.intersection(b));
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The next free codes under `parent`: never one used before, retired ones included.
fn allocate_codes(
    parent: &str,
    child_level: Level,
    used: &[String],
    n: usize,
) -> Result<Vec<String>> {
    let digits = child_level.code_len() - parent.len();
    let max = used
        .iter()
        .filter_map(|c| c.strip_prefix(parent))
        .filter_map(|s| s.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let limit = 10u64.pow(digits as u32) - 1;
    if max + n as u64 > limit {
        return Err(WorkflowError::invalid(
            "features",
            format!(
                "{parent} has no free {} codes left ({} used, {limit} possible)",
                child_level.as_str(),
                max
            ),
        ));
    }
    Ok((1..=n as u64)
        .map(|i| format!("{parent}{:0width$}", max + i, width = digits))
        .collect())
}

fn default_name(ctx: &RedrawContext, child_level: Level, code: &str) -> String {
    let n: u64 = code[ctx.parent.code.len()..].parse().unwrap_or(0);
    match child_level {
        Level::MicroGrid => format!("{}第{n}微网格", ctx.parent.name),
        Level::Grid => format!("{}第{n}网格", ctx.parent.name),
        _ => format!("{}{code}", child_level.name_zh()),
    }
}

fn kind_name(kind: IssueKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The old and new boundary of one child compared: (status, old area, sym diff m², %).
fn compare(old: &MultiPolygon<f64>, new: &MultiPolygon<f64>) -> (ChildStatus, f64, f64, f64) {
    let old_area = area(old);
    if old == new {
        return (ChildStatus::Unchanged, old_area, 0.0, 0.0);
    }
    let sym = area(&old.xor(new));
    let pct = if old_area > 0.0 {
        (sym / old_area * 10_000.0).round() / 100.0
    } else {
        0.0
    };
    (ChildStatus::Changed, old_area, sym, pct)
}

/// A child that exists now, redrawn as `geom`.
fn redrawn(
    old: &ChildRow,
    parent_code: &str,
    level: Level,
    f: Option<&RedrawFeature>,
    by: MatchedBy,
    geom: MultiPolygon<f64>,
) -> PlannedChild {
    let (status, old_area, sym, pct) = compare(&old.geom, &geom);
    PlannedChild {
        feature: f.map(|f| f.index),
        key: f.and_then(|f| f.key.clone()),
        code: old.code.clone(),
        parent_code: parent_code.to_owned(),
        level,
        name: f
            .and_then(|f| f.name.clone())
            .unwrap_or_else(|| old.name.clone()),
        status,
        matched_by: Some(by),
        area_m2: round1(area(&geom)),
        old_area_m2: Some(round1(old_area)),
        old_version: Some(old.version),
        sym_diff_m2: Some(round1(sym)),
        sym_diff_pct: Some(pct),
        // An unchanged child keeps its stored boundary bit for bit.
        geom: Some(if status == ChildStatus::Unchanged {
            old.geom.clone()
        } else {
            geom
        }),
        synthetic: old.synthetic,
    }
}

fn retired(old: &ChildRow, parent_code: &str, level: Level) -> PlannedChild {
    PlannedChild {
        feature: None,
        key: None,
        code: old.code.clone(),
        parent_code: parent_code.to_owned(),
        level,
        name: old.name.clone(),
        status: ChildStatus::Retired,
        matched_by: None,
        area_m2: round1(area(&old.geom)),
        old_area_m2: Some(round1(area(&old.geom))),
        old_version: Some(old.version),
        sym_diff_m2: None,
        sym_diff_pct: Some(100.0),
        geom: None,
        synthetic: old.synthetic,
    }
}

fn coverage_issues(
    drawn: &[(String, MultiPolygon<f64>)],
    parent: &MultiPolygon<f64>,
    context: Option<&str>,
) -> Vec<PlanIssue> {
    validate(drawn, Some(parent), &ValidateOptions::default())
        .into_iter()
        .map(|i| PlanIssue {
            // Neighbours that run side by side without sharing vertices are worth a look,
            // but the coverage is still sound.
            blocking: i.kind != IssueKind::MismatchedEdge,
            kind: kind_name(i.kind),
            codes: i.codes,
            area_m2: i.area_m2.map(round1),
            location: i.location,
            message: match context {
                Some(c) => format!("{c}: {}", i.message),
                None => i.message,
            },
        })
        .collect()
}

/// Greedy one-to-one matching by IoU ≥ [`MATCH_IOU`] of the unassigned features to the
/// candidates; returns (feature, candidate) pairs.
fn match_by_overlap(
    features: &[RedrawFeature],
    free_feature: &[bool],
    candidates: &[&ChildRow],
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (fi, f) in features.iter().enumerate() {
        if !free_feature[fi] {
            continue;
        }
        for (ci, c) in candidates.iter().enumerate() {
            let v = iou(&f.geom, &c.geom);
            if v >= MATCH_IOU {
                pairs.push((v, fi, ci));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut used_f, mut used_c) = (HashSet::new(), HashSet::new());
    let mut out = Vec::new();
    for (_, fi, ci) in pairs {
        if !used_f.contains(&fi) && !used_c.contains(&ci) {
            used_f.insert(fi);
            used_c.insert(ci);
            out.push((fi, ci));
        }
    }
    out
}

/// Plans a redraw against `ctx`: codes matched or allocated, changes measured, the coverage
/// validated. Pure; the same request against the same context gives the same plan.
///
/// Features are matched to the current children (by a given code, else by overlap). A
/// drawing may also show a grid's micro-grids instead of the grid (a community sketch often
/// does): features that match micro-grids of an otherwise unmatched grid redraw those
/// micro-grids, and the grid's new boundary is their union. A redrawn grid whose micro-grids
/// are not drawn must still hold them; otherwise that is a blocking issue.
pub fn plan(ctx: &RedrawContext, mut features: Vec<RedrawFeature>) -> Result<RedrawPlan> {
    let child_level = ctx.parent.level.child().ok_or_else(|| {
        WorkflowError::invalid(
            "parent",
            format!(
                "{} is a micro-grid: it has no children to draw",
                ctx.parent.code
            ),
        )
    })?;
    if child_level == Level::Street || child_level == Level::Community {
        return Err(WorkflowError::invalid(
            "parent",
            format!(
                "{} is a {}: redraws are for a community's grids or a grid's micro-grids",
                ctx.parent.code,
                ctx.parent.level.as_str()
            ),
        ));
    }
    let grand_level = child_level.child();
    restore_vertices(&mut features, ctx);
    node_vertices(&mut features);

    // Where each feature goes: (child index, Some(grandchild index) or None, how).
    let mut assigned: Vec<Option<(usize, Option<usize>, MatchedBy)>> = vec![None; features.len()];
    let mut claimed = vec![false; ctx.children.len()];
    let mut claimed_grand: HashSet<(usize, usize)> = HashSet::new();
    let by_code: HashMap<&str, (usize, Option<usize>)> = ctx
        .children
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| {
            std::iter::once((c.code.as_str(), (ci, None))).chain(
                c.children
                    .iter()
                    .enumerate()
                    .map(move |(gi, g)| (g.code.as_str(), (ci, Some(gi)))),
            )
        })
        .collect();
    for (fi, f) in features.iter().enumerate() {
        if let Some(code) = &f.code {
            let &(ci, gi) = by_code.get(code.as_str()).ok_or_else(|| {
                WorkflowError::invalid(
                    format!("features[{}].properties.code", f.index),
                    format!(
                        "{code} is not a current {} of {}; leave the code out for a new one",
                        child_level.as_str(),
                        ctx.parent.code
                    ),
                )
            })?;
            assigned[fi] = Some((ci, gi, MatchedBy::Given));
            match gi {
                None => claimed[ci] = true,
                Some(gi) => {
                    claimed_grand.insert((ci, gi));
                }
            }
        }
    }
    // A child named by code cannot also be redrawn through its micro-grids.
    for (fi, a) in assigned.iter().enumerate() {
        if let Some((ci, Some(_), _)) = a {
            if claimed[*ci] {
                return Err(WorkflowError::invalid(
                    format!("features[{}].properties.code", features[fi].index),
                    format!(
                        "{} is drawn itself and through its micro-grids; draw one or the other",
                        ctx.children[*ci].code
                    ),
                ));
            }
        }
    }
    let free: Vec<bool> = assigned.iter().map(Option::is_none).collect();
    let open: Vec<usize> = (0..ctx.children.len())
        .filter(|&ci| !claimed[ci] && !claimed_grand.iter().any(|(c, _)| *c == ci))
        .collect();
    let candidates: Vec<&ChildRow> = open.iter().map(|&ci| &ctx.children[ci]).collect();
    for (fi, k) in match_by_overlap(&features, &free, &candidates) {
        assigned[fi] = Some((open[k], None, MatchedBy::Overlap));
        claimed[open[k]] = true;
    }
    // Then the micro-grids of grids still unclaimed.
    let free: Vec<bool> = assigned.iter().map(Option::is_none).collect();
    let grand: Vec<(usize, usize)> = (0..ctx.children.len())
        .filter(|&ci| !claimed[ci])
        .flat_map(|ci| (0..ctx.children[ci].children.len()).map(move |gi| (ci, gi)))
        .filter(|k| !claimed_grand.contains(k))
        .collect();
    let candidates: Vec<&ChildRow> = grand
        .iter()
        .map(|&(ci, gi)| &ctx.children[ci].children[gi])
        .collect();
    for (fi, k) in match_by_overlap(&features, &free, &candidates) {
        let (ci, gi) = grand[k];
        assigned[fi] = Some((ci, Some(gi), MatchedBy::Overlap));
        claimed_grand.insert((ci, gi));
    }

    let new_count = assigned.iter().filter(|a| a.is_none()).count();
    let mut new_codes =
        allocate_codes(&ctx.parent.code, child_level, &ctx.used_codes, new_count)?.into_iter();
    let mut children = Vec::with_capacity(features.len() + ctx.children.len());
    let mut micro = Vec::new();
    let mut issues = Vec::new();
    for (fi, f) in features.iter().enumerate() {
        match assigned[fi] {
            Some((ci, None, by)) => children.push(redrawn(
                &ctx.children[ci],
                &ctx.parent.code,
                child_level,
                Some(f),
                by,
                f.geom.clone(),
            )),
            Some((ci, Some(gi), by)) => micro.push(redrawn(
                &ctx.children[ci].children[gi],
                &ctx.children[ci].code,
                grand_level.unwrap_or(Level::MicroGrid),
                Some(f),
                by,
                f.geom.clone(),
            )),
            None => {
                let code = new_codes.next().unwrap_or_default();
                children.push(PlannedChild {
                    feature: Some(f.index),
                    key: f.key.clone(),
                    name: f
                        .name
                        .clone()
                        .unwrap_or_else(|| default_name(ctx, child_level, &code)),
                    code,
                    parent_code: ctx.parent.code.clone(),
                    level: child_level,
                    status: ChildStatus::New,
                    matched_by: Some(MatchedBy::New),
                    area_m2: round1(area(&f.geom)),
                    old_area_m2: None,
                    old_version: None,
                    sym_diff_m2: None,
                    sym_diff_pct: None,
                    geom: Some(f.geom.clone()),
                    synthetic: ctx.parent.synthetic,
                })
            }
        }
    }
    let mut tile = Vec::new();
    for (ci, c) in ctx.children.iter().enumerate() {
        let drawn_micro: Vec<&PlannedChild> =
            micro.iter().filter(|m| m.parent_code == c.code).collect();
        if !claimed[ci] && !drawn_micro.is_empty() {
            // Redrawn through its micro-grids: the grid is their union.
            let parts: Vec<MultiPolygon<f64>> =
                drawn_micro.iter().filter_map(|m| m.geom.clone()).collect();
            let union = if parts.len() == 1 {
                Some(parts[0].clone())
            } else {
                crate::coverage::edit::merge(&parts)
                    .ok()
                    .map(|p| MultiPolygon(vec![p]))
            };
            match union {
                Some(geom) => {
                    children.push(redrawn(
                        c,
                        &ctx.parent.code,
                        child_level,
                        None,
                        MatchedBy::MicroGrids,
                        geom.clone(),
                    ));
                    let drawn: Vec<(String, MultiPolygon<f64>)> = drawn_micro
                        .iter()
                        .filter_map(|m| Some((m.code.clone(), m.geom.clone()?)))
                        .collect();
                    let context = format!("micro-grids of {}", c.code);
                    issues.extend(coverage_issues(&drawn, &geom, Some(&context)));
                }
                None => issues.push(PlanIssue {
                    kind: "micro_grids_apart".into(),
                    codes: drawn_micro.iter().map(|m| m.code.clone()).collect(),
                    area_m2: None,
                    location: None,
                    message: format!(
                        "the micro-grids drawn for {} ({}) do not form one area",
                        c.code, c.name
                    ),
                    blocking: true,
                }),
            }
            for (gi, g) in c.children.iter().enumerate() {
                if !claimed_grand.contains(&(ci, gi)) {
                    micro.push(retired(g, &c.code, grand_level.unwrap_or(Level::MicroGrid)));
                }
            }
            tile.push(c.code.clone());
        } else if claimed[ci] {
            // Redrawn itself: its micro-grids, not drawn, must still tile it.
            let planned = children
                .iter()
                .find(|p| p.code == c.code)
                .and_then(|p| p.geom.clone());
            if let (Some(geom), true) = (planned, !c.children.is_empty()) {
                if geom != c.geom {
                    let current: Vec<(String, MultiPolygon<f64>)> = c
                        .children
                        .iter()
                        .map(|g| (g.code.clone(), g.geom.clone()))
                        .collect();
                    let context = format!(
                        "{} is redrawn but its current micro-grids no longer fit it (draw them, or redraw them after publishing)",
                        c.code
                    );
                    issues.extend(
                        coverage_issues(&current, &geom, Some(&context))
                            .into_iter()
                            .filter(|i| i.blocking),
                    );
                }
            }
        } else {
            if c.has_children {
                issues.push(PlanIssue {
                    kind: "retired_with_children".into(),
                    codes: vec![c.code.clone()],
                    area_m2: None,
                    location: None,
                    message: format!(
                        "{} ({}) would be retired but still has current micro-grids: draw it, or retire them first",
                        c.code, c.name
                    ),
                    blocking: true,
                });
            }
            children.push(retired(c, &ctx.parent.code, child_level));
        }
    }
    let drawn: Vec<(String, MultiPolygon<f64>)> = children
        .iter()
        .filter_map(|c| Some((c.code.clone(), c.geom.clone()?)))
        .collect();
    if !drawn.is_empty() {
        let mut found = coverage_issues(&drawn, &ctx.parent.geom, None);
        found.append(&mut issues);
        issues = found;
    }
    children.extend(micro);
    let publishable = !issues.iter().any(|i| i.blocking)
        && children.iter().any(|c| c.status != ChildStatus::Unchanged);
    Ok(RedrawPlan {
        parent: ParentInfo {
            code: ctx.parent.code.clone(),
            name: ctx.parent.name.clone(),
            level: ctx.parent.level,
        },
        child_level,
        publishable,
        issues,
        children,
        tile,
    })
}

fn to_features(plan: &RedrawPlan) -> std::result::Result<Vec<RegionFeature>, Vec<Problem>> {
    let mut out = Vec::new();
    for (i, c) in plan.children.iter().enumerate() {
        let Some(geom) = &c.geom else { continue };
        let parse = |code: &str| {
            GridCode::parse(code)
                .map_err(|e| vec![Problem::new("bad_code", e.to_string()).at(i, Some(code))])
        };
        out.push(RegionFeature {
            index: c.feature.unwrap_or(i),
            code: parse(&c.code)?,
            name: c.name.clone(),
            level: c.level,
            parent_code: Some(parse(&c.parent_code)?),
            geom: geom.clone(),
            party_branch: None,
            staff: None,
            synthetic: c.synthetic,
        });
    }
    Ok(out)
}

/// What a publication did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub publication: Publication,
    pub children: Vec<PlannedChild>,
    pub summary: PublishSummary,
}

impl Gridwatch {
    async fn context(&self, parent: &str) -> Result<RedrawContext> {
        self.db
            .redraw_context(parent)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no current region with code {parent}")))
    }

    /// Checks a redraw of `parent`'s children without writing anything.
    pub async fn check_redraw(&self, parent: &str, request: RedrawRequest) -> Result<RedrawPlan> {
        let ctx = self.context(parent).await?;
        tokio::task::spawn_blocking(move || plan(&ctx, request.features))
            .await
            .map_err(|e| WorkflowError::invalid("features", format!("planning failed: {e}")))?
    }

    /// Publishes a redraw of `parent`'s children as new boundary versions, then switches the
    /// locate index. Refused, with nothing written, while a blocking issue remains.
    pub async fn publish_redraw(&self, parent: &str, request: RedrawRequest) -> Result<Published> {
        if let Some(id) = request.sketch_id {
            if self.db.sketch(id).await?.is_none() {
                return Err(WorkflowError::invalid(
                    "sketch_id",
                    format!("no sketch with id {id}"),
                ));
            }
        }
        let mut planned: Option<std::result::Result<RedrawPlan, WorkflowError>> = None;
        let outcome = self
            .db
            .publish_redraw(parent, request.sketch_id, Utc::now(), |ctx| {
                let p = match plan(ctx, request.features.clone()) {
                    Ok(p) => p,
                    Err(e) => {
                        planned = Some(Err(e));
                        return Err(Vec::new());
                    }
                };
                if !p.publishable {
                    let mut problems = p.blocking_problems();
                    if problems.is_empty() {
                        problems.push(
                            Problem::new("no_change", "the redraw changes nothing")
                                .field("features"),
                        );
                    }
                    return Err(problems);
                }
                let features = to_features(&p)?;
                let retire = p
                    .children
                    .iter()
                    .filter(|c| c.status == ChildStatus::Retired)
                    .map(|c| c.code.clone())
                    .collect();
                let children = serde_json::to_value(&p.children).unwrap_or(Value::Null);
                let tile = p.tile.clone();
                planned = Some(Ok(p));
                Ok(PublishPlan {
                    features,
                    retire,
                    children,
                    tile,
                })
            })
            .await?
            .ok_or_else(|| {
                WorkflowError::NotFound(format!("no current region with code {parent}"))
            })?;
        match outcome {
            PublishOutcome::Rejected(problems) => match planned {
                Some(Err(e)) => Err(e),
                _ => Err(WorkflowError::Rejected(problems)),
            },
            PublishOutcome::Published(publication, summary) => {
                self.reload().await?;
                let children = match planned {
                    Some(Ok(p)) => p.children,
                    _ => Vec::new(),
                };
                tracing::info!(
                    parent,
                    publication = publication.id,
                    new_versions = summary.import.new_versions,
                    created = summary.import.created,
                    retired = summary.retired,
                    "redraw published"
                );
                Ok(Published {
                    publication,
                    children,
                    summary,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::redraw::ParentRow;
    use geo::polygon;

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![
            (x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)
        ]])
    }

    /// A grid 0.004° square split into two micro-grids down the middle.
    fn ctx() -> RedrawContext {
        let child = |code: &str, geom| ChildRow {
            code: code.into(),
            name: format!("微网格{code}"),
            synthetic: false,
            version_id: 1,
            version: 1,
            geom,
            has_children: false,
            children: Vec::new(),
        };
        RedrawContext {
            parent: ParentRow {
                code: "150302001001008".into(),
                name: "华庭御品小区".into(),
                level: Level::Grid,
                synthetic: false,
                geom: rect(106.8, 39.6, 106.804, 39.604),
            },
            children: vec![
                child("15030200100100801", rect(106.8, 39.6, 106.802, 39.604)),
                child("15030200100100802", rect(106.802, 39.6, 106.804, 39.604)),
            ],
            used_codes: vec![
                "15030200100100801".into(),
                "15030200100100802".into(),
                "15030200100100803".into(),
            ],
        }
    }

    fn feature(i: usize, code: Option<&str>, geom: MultiPolygon<f64>) -> RedrawFeature {
        RedrawFeature {
            index: i,
            code: code.map(str::to_owned),
            name: None,
            key: Some(format!("k{i}")),
            geom,
        }
    }

    #[test]
    fn a_moved_border_keeps_codes_and_measures_the_change() {
        let ctx = ctx();
        let p = plan(
            &ctx,
            vec![
                feature(0, None, rect(106.8, 39.6, 106.803, 39.604)),
                feature(1, None, rect(106.803, 39.6, 106.804, 39.604)),
            ],
        )
        .unwrap();
        assert!(p.publishable, "{:?}", p.issues);
        assert_eq!(p.child_level, Level::MicroGrid);
        let codes: Vec<&str> = p.children.iter().map(|c| c.code.as_str()).collect();
        // The first piece overlaps 01 by IoU 2/3; the second overlaps 02 by 1/2.
        assert_eq!(codes, ["15030200100100801", "15030200100100802"]);
        assert!(p.children.iter().all(|c| c.status == ChildStatus::Changed));
        // 01 grew by half its area; 02 lost half.
        let pct: Vec<f64> = p.children.iter().map(|c| c.sym_diff_pct.unwrap()).collect();
        assert!(
            (pct[0] - 50.0).abs() < 0.5 && (pct[1] - 50.0).abs() < 0.5,
            "{pct:?}"
        );
    }

    #[test]
    fn new_pieces_get_fresh_codes_and_unclaimed_children_retire() {
        let ctx = ctx();
        // Three strips: none overlaps an old half by IoU ≥ 0.5 except... the first third and
        // 01: IoU = (1/3)/(1/2) = 2/3, so it keeps 01.
        let third = 0.004 / 3.0;
        let p = plan(
            &ctx,
            vec![
                feature(0, None, rect(106.8, 39.6, 106.8 + third, 39.604)),
                feature(
                    1,
                    None,
                    rect(106.8 + third, 39.6, 106.8 + 2.0 * third, 39.604),
                ),
                feature(
                    2,
                    Some("15030200100100802"),
                    rect(106.8 + 2.0 * third, 39.6, 106.804, 39.604),
                ),
            ],
        )
        .unwrap();
        assert!(p.publishable, "{:?}", p.issues);
        let got: Vec<(&str, ChildStatus)> = p
            .children
            .iter()
            .map(|c| (c.code.as_str(), c.status))
            .collect();
        assert_eq!(
            got,
            [
                ("15030200100100801", ChildStatus::Changed),
                // 03 was used before (retired): never reused.
                ("15030200100100804", ChildStatus::New),
                ("15030200100100802", ChildStatus::Changed),
            ]
        );
        assert_eq!(p.children[1].name, "华庭御品小区第4微网格");
        assert_eq!(p.children[2].matched_by, Some(MatchedBy::Given));
    }

    #[test]
    fn gaps_overlaps_and_spill_block_and_retiring_a_parent_of_micro_grids_blocks() {
        let ctx = ctx();
        let p = plan(
            &ctx,
            vec![
                feature(0, None, rect(106.8, 39.6, 106.8025, 39.604)),
                feature(1, None, rect(106.802, 39.6, 106.805, 39.604)),
            ],
        )
        .unwrap();
        assert!(!p.publishable);
        let kinds: Vec<&str> = p.issues.iter().map(|i| i.kind.as_str()).collect();
        assert!(
            kinds.contains(&"overlap") && kinds.contains(&"outside_parent"),
            "{kinds:?}"
        );

        // Whichever half the whole grid is matched to, the other retires with its children.
        let mut ctx = ctx;
        ctx.children[0].has_children = true;
        ctx.children[1].has_children = true;
        let p = plan(
            &ctx,
            vec![feature(0, None, rect(106.8, 39.6, 106.804, 39.604))],
        )
        .unwrap();
        assert!(!p.publishable);
        assert!(p.issues.iter().any(|i| i.kind == "retired_with_children"));
    }

    #[test]
    fn rounded_coordinates_come_back_unchanged_and_nothing_changed_is_not_publishable() {
        let ctx = ctx();
        let round = |mp: &MultiPolygon<f64>| {
            use geo::MapCoords;
            mp.map_coords(|c| Coord {
                x: (c.x * 1e7).round() / 1e7 + 3e-8,
                y: (c.y * 1e7).round() / 1e7,
            })
        };
        let p = plan(
            &ctx,
            vec![
                feature(0, None, round(&ctx.children[0].geom)),
                feature(1, None, round(&ctx.children[1].geom)),
            ],
        )
        .unwrap();
        assert!(p
            .children
            .iter()
            .all(|c| c.status == ChildStatus::Unchanged));
        assert!(
            !p.publishable,
            "a redraw that changes nothing is not a publication"
        );
    }

    #[test]
    fn a_split_neighbour_gets_the_cut_points_on_its_border() {
        let ctx = ctx();
        // 02 is cut across; 01 keeps its geometry but borders the cut point at x = 106.802.
        let line = geo::LineString::from(vec![(106.801, 39.602), (106.805, 39.602)]);
        let pieces = crate::coverage::edit::split(&ctx.children[1].geom, &line).unwrap();
        let mut features = vec![feature(0, None, ctx.children[0].geom.clone())];
        for (i, p) in pieces.into_iter().enumerate() {
            features.push(feature(i + 1, None, MultiPolygon(vec![p])));
        }
        let p = plan(&ctx, features).unwrap();
        assert!(p.publishable, "{:?}", p.issues);
        assert!(p.issues.is_empty(), "no mismatched edges: {:?}", p.issues);
        let first = &p.children[0];
        assert_eq!(first.code, "15030200100100801");
        assert_eq!(first.status, ChildStatus::Changed, "it gained a vertex");
        assert_eq!(first.sym_diff_m2, Some(0.0));
    }

    /// A community with grid 001 (two micro-grids) west of grid 002.
    fn community() -> RedrawContext {
        let row = |code: &str, geom, children: Vec<ChildRow>| ChildRow {
            code: code.into(),
            name: code.into(),
            synthetic: false,
            version_id: 1,
            version: 1,
            geom,
            has_children: !children.is_empty(),
            children,
        };
        RedrawContext {
            parent: ParentRow {
                code: "150302001001".into(),
                name: "康乐社区".into(),
                level: Level::Community,
                synthetic: false,
                geom: rect(106.8, 39.6, 106.808, 39.604),
            },
            children: vec![
                row(
                    "150302001001001",
                    rect(106.8, 39.6, 106.804, 39.604),
                    vec![
                        row(
                            "15030200100100101",
                            rect(106.8, 39.6, 106.804, 39.602),
                            vec![],
                        ),
                        row(
                            "15030200100100102",
                            rect(106.8, 39.602, 106.804, 39.604),
                            vec![],
                        ),
                    ],
                ),
                row(
                    "150302001001002",
                    rect(106.804, 39.6, 106.808, 39.604),
                    vec![],
                ),
            ],
            used_codes: vec!["150302001001001".into(), "150302001001002".into()],
        }
    }

    #[test]
    fn a_drawing_of_micro_grids_redraws_their_grid_as_their_union() {
        let ctx = community();
        // The border between the grids moves east by 0.0005°; 001 is drawn as its micro-grids.
        let p = plan(
            &ctx,
            vec![
                feature(0, None, rect(106.8, 39.6, 106.8045, 39.602)),
                feature(1, None, rect(106.8, 39.602, 106.8045, 39.604)),
                feature(2, None, rect(106.8045, 39.6, 106.808, 39.604)),
            ],
        )
        .unwrap();
        assert!(p.publishable, "{:?}", p.issues);
        let got: Vec<(&str, &str, Level, Option<MatchedBy>)> = p
            .children
            .iter()
            .map(|c| {
                (
                    c.code.as_str(),
                    c.parent_code.as_str(),
                    c.level,
                    c.matched_by,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "150302001001002",
                    "150302001001",
                    Level::Grid,
                    Some(MatchedBy::Overlap)
                ),
                (
                    "150302001001001",
                    "150302001001",
                    Level::Grid,
                    Some(MatchedBy::MicroGrids)
                ),
                (
                    "15030200100100101",
                    "150302001001001",
                    Level::MicroGrid,
                    Some(MatchedBy::Overlap)
                ),
                (
                    "15030200100100102",
                    "150302001001001",
                    Level::MicroGrid,
                    Some(MatchedBy::Overlap)
                ),
            ]
        );
        let grid = &p.children[1];
        assert_eq!(grid.feature, None);
        assert!((grid.sym_diff_pct.unwrap() - 12.5).abs() < 0.2, "{grid:?}");
        assert_eq!(p.tile, ["150302001001001"]);
        let features = to_features(&p).unwrap();
        assert_eq!(features.len(), 4);
        assert_eq!(
            features[2].parent_code.as_ref().unwrap().as_str(),
            "150302001001001"
        );
    }

    #[test]
    fn a_grid_redrawn_alone_must_still_hold_its_micro_grids() {
        let ctx = community();
        let p = plan(
            &ctx,
            vec![
                feature(0, None, rect(106.8, 39.6, 106.8035, 39.604)),
                feature(1, None, rect(106.8035, 39.6, 106.808, 39.604)),
            ],
        )
        .unwrap();
        assert!(!p.publishable);
        assert!(
            p.issues.iter().any(|i| i.blocking
                && i.kind == "outside_parent"
                && i.message.contains("no longer fit")),
            "{:?}",
            p.issues
        );
    }

    #[test]
    fn a_code_that_is_not_a_child_is_named() {
        let err = plan(
            &ctx(),
            vec![feature(
                0,
                Some("15030200100100901"),
                rect(106.8, 39.6, 106.804, 39.604),
            )],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("features[0].properties.code"),
            "{err}"
        );
    }

    #[test]
    fn requests_name_their_bad_fields() {
        let parse = |body: &str| parse_request(&serde_json::from_str(body).unwrap());
        let bad = |body: &str| parse(body).unwrap_err().to_string();
        assert!(bad("[]").starts_with("body"));
        assert!(bad(r#"{"features": 3}"#).starts_with("features"));
        assert!(bad(r#"{"features": [], "color": 1}"#).starts_with("color"));
        assert!(bad(r#"{"features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [1, 2]}}]}"#)
            .starts_with("features[0].geometry"));
        let sq = r#"{"type": "Polygon", "coordinates": [[[106.8, 39.6], [106.81, 39.6], [106.81, 39.61], [106.8, 39.6]]]}"#;
        assert!(bad(&format!(r#"{{"features": [{{"type": "Feature", "properties": {{"code": "12x"}}, "geometry": {sq}}}]}}"#))
            .starts_with("features[0].properties.code"));
        assert!(bad(&format!(r#"{{"features": [{{"type": "Feature", "properties": {{"code": "150302001001008"}}, "geometry": {sq}}}, {{"type": "Feature", "properties": {{"code": "150302001001008"}}, "geometry": {sq}}}]}}"#))
            .contains("two features"));
        let ok = parse(&format!(r#"{{"features": [{{"type": "Feature", "properties": {{"key": 7, "name": " 一号楼 "}}, "geometry": {sq}}}], "sketch_id": 3}}"#))
        .unwrap();
        assert_eq!(ok.sketch_id, Some(3));
        assert_eq!(ok.features[0].key.as_deref(), Some("7"));
        assert_eq!(ok.features[0].name.as_deref(), Some("一号楼"));
    }
}
