//! Synthetic photographed hand-drawn grid maps 手绘网格图 with ground truth, and the accuracy metric
//! the vectoriser is held to.
//!
//! A sample takes a real layout from the embedded demo regions (a community's grids, optionally
//! with one compound grid drawn as its micro-grids), draws every edge once as a hand stroke with
//! the faults a grid worker's pen makes (wobble, gaps, overshoots at corners, double tracing), adds
//! marks that are *not* areas (handwritten-looking labels with little closed "口" boxes, hatching,
//! doodles, a title and a north arrow), and then "photographs" the page: slight rotation, a mild
//! perspective, uneven light, vignetting, blur, sensor noise and JPEG compression. Everything is
//! drawn from a `ChaCha8Rng` seeded by the spec, so the bytes are the same on every run.
//!
//! Coordinates: image pixels are continuous with x right, y down and the origin at the top-left
//! corner of the image, so pixel `(i, j)` covers `[i, i+1) × [j, j+1)` and has its centre at
//! `(i + 0.5, j + 0.5)`. Truth pixel polygons and GCP pixels use this convention.
//!
//! This module renders and scores; it does not vectorise, and its only I/O is [`write_samples`].

use crate::sketch::transform::Gcp;
use anyhow::{anyhow, bail, Context, Result};
use geo::{Area, BooleanOps, BoundingRect, Coord, LineString, MapCoords, MultiPolygon, Polygon};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A rendered sample: the photographed sketch and what it shows.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    /// The image exactly as written to `NAME.jpg` (decoded from the same JPEG bytes).
    pub image: RgbImage,
    pub truth: Vec<TruthArea>,
    pub gcps: Vec<Gcp>,
    pub width: u32,
    pub height: u32,
}

/// One drawn area: a real polygon of the demo registry and where it lies in the image.
#[derive(Debug, Clone)]
pub struct TruthArea {
    /// The region code in the demo registry (15-digit grid or 17-digit micro-grid).
    pub label: String,
    /// WGS-84.
    pub geom: geo::MultiPolygon<f64>,
    /// The same area in image pixels (forward-mapped, so edges are exact, not traced).
    pub pixel: geo::Polygon<f64>,
}

/// An area to draw, before rendering.
#[derive(Debug, Clone)]
pub struct TruthSource {
    /// Region code, carried to [`TruthArea::label`].
    pub label: String,
    /// Region name, written to the truth GeoJSON for people reading it.
    pub name: String,
    /// WGS-84.
    pub geom: MultiPolygon<f64>,
}

/// The instrument the sketch was drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pen {
    /// Grey, grainy, 2–3 px, lighter at the ends of strokes.
    Pencil,
    /// Dark blue, nearly uniform, 2–4 px.
    Ballpoint,
}

/// How one sample is made. All randomness comes from `seed`; the other knobs are explicit so that
/// a reader can see what makes a sample hard.
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    pub name: &'static str,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub pen: Pen,
    /// 12-digit code of the community whose grids are drawn.
    pub community: &'static str,
    /// 15-digit code of one of its compound grids to draw as its micro-grids instead.
    pub split: Option<&'static str>,
    /// Rotation of the photo against the page, degrees (positive = counter-clockwise on screen).
    pub rotate_deg: f64,
    /// Perspective: the far edge of the page shrinks by about this fraction of its length.
    pub tilt: f64,
    /// How much darker the darkest corner is than the brightest (before vignetting), 0..1.
    pub shade: f64,
    /// Breaks in the drawn lines (3–8 px each).
    pub gaps: usize,
    /// Areas filled with hatching.
    pub hatched: usize,
    /// Ground control points, 4–6.
    pub gcps: usize,
}

/// The demo samples: three pencil and three ballpoint sketches, one of them large (3000×2000) for
/// the speed benchmark. Two draw a compound grid as its four micro-grids.
pub const SPECS: &[SampleSpec] = &[
    SampleSpec {
        name: "kangle-pencil",
        seed: 0x6b61_6e67_6c65,
        width: 1600,
        height: 1200,
        pen: Pen::Pencil,
        community: "150302001001",
        split: Some("150302001001008"),
        rotate_deg: -4.0,
        tilt: 0.06,
        shade: 0.35,
        gaps: 5,
        hatched: 1,
        gcps: 5,
    },
    SampleSpec {
        name: "xinhua-ballpoint",
        seed: 0x7869_6e68_7561,
        width: 1600,
        height: 1200,
        pen: Pen::Ballpoint,
        community: "150302002002",
        split: None,
        rotate_deg: 6.5,
        tilt: 0.08,
        shade: 0.32,
        gaps: 4,
        hatched: 2,
        gcps: 4,
    },
    SampleSpec {
        name: "shengshi-ballpoint",
        seed: 0x7368_656e_6773,
        width: 1600,
        height: 1200,
        pen: Pen::Ballpoint,
        community: "150302002003",
        split: Some("150302002003002"),
        rotate_deg: -7.0,
        tilt: 0.05,
        shade: 0.38,
        gaps: 6,
        hatched: 1,
        gcps: 6,
    },
    SampleSpec {
        name: "changqing-pencil",
        seed: 0x6368_616e_6771,
        width: 1600,
        height: 1200,
        pen: Pen::Pencil,
        community: "150302003001",
        split: None,
        rotate_deg: 3.5,
        tilt: 0.09,
        shade: 0.40,
        gaps: 6,
        hatched: 2,
        gcps: 5,
    },
    SampleSpec {
        name: "pingan-pencil",
        seed: 0x7069_6e67_616e,
        width: 1600,
        height: 1200,
        pen: Pen::Pencil,
        community: "150303001001",
        split: None,
        rotate_deg: -5.5,
        tilt: 0.07,
        shade: 0.30,
        gaps: 4,
        hatched: 1,
        gcps: 4,
    },
    SampleSpec {
        name: "yijingyuan-ballpoint-large",
        seed: 0x7969_6a69_6e67,
        width: 3000,
        height: 2000,
        pen: Pen::Ballpoint,
        community: "150304002001",
        split: None,
        rotate_deg: 4.5,
        tilt: 0.06,
        shade: 0.36,
        gaps: 7,
        hatched: 2,
        gcps: 6,
    },
];

/// File extension of the written images: phone photos are JPEG, and paper noise makes PNGs of
/// photos five times larger.
pub const IMAGE_EXT: &str = "jpg";

/// JPEG quality of the written images; high enough that faint pencil survives.
const JPEG_QUALITY: u8 = 90;

// ---------------------------------------------------------------------------------------------
// Demo areas

/// One feature of the demo registry, as much of it as the samples need.
struct DemoFeature {
    code: String,
    name: String,
    level: String,
    parent: String,
    geom: MultiPolygon<f64>,
}

fn parse_geometry(g: &Value) -> Result<MultiPolygon<f64>> {
    crate::spatial::geojson::parse_geometry(g, crate::domain::Crs::Wgs84).map_err(|e| anyhow!(e))
}

fn demo_features() -> Result<Vec<DemoFeature>> {
    let doc: Value = serde_json::from_str(crate::demo::REGIONS_GEOJSON)
        .context("the embedded demo regions are not JSON")?;
    let features = doc["features"]
        .as_array()
        .ok_or_else(|| anyhow!("the embedded demo regions have no features"))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    features
        .iter()
        .map(|f| {
            let p = &f["properties"];
            Ok(DemoFeature {
                code: text(&p["code"]),
                name: text(&p["name"]),
                level: text(&p["level"]),
                parent: text(&p["parent_code"]),
                geom: parse_geometry(&f["geometry"])
                    .with_context(|| format!("demo region {}", text(&p["code"])))?,
            })
        })
        .collect()
}

fn areas_from(features: &[DemoFeature], spec: &SampleSpec) -> Result<Vec<TruthSource>> {
    let source = |f: &DemoFeature| TruthSource {
        label: f.code.clone(),
        name: f.name.clone(),
        geom: f.geom.clone(),
    };
    let mut grids: Vec<&DemoFeature> = features
        .iter()
        .filter(|f| f.level == "grid" && f.parent == spec.community)
        .collect();
    grids.sort_by(|a, b| a.code.cmp(&b.code));
    if grids.is_empty() {
        bail!(
            "sample {}: community {} has no grids in the demo",
            spec.name,
            spec.community
        );
    }
    let mut out = Vec::new();
    for g in grids {
        if spec.split == Some(g.code.as_str()) {
            let mut micro: Vec<&DemoFeature> = features
                .iter()
                .filter(|f| f.level == "micro_grid" && f.parent == g.code)
                .collect();
            if micro.is_empty() {
                bail!("sample {}: grid {} has no micro-grids", spec.name, g.code);
            }
            micro.sort_by(|a, b| a.code.cmp(&b.code));
            out.extend(micro.into_iter().map(source));
        } else {
            out.push(source(g));
        }
    }
    if let Some(split) = spec.split {
        if !out
            .iter()
            .any(|a| a.label.starts_with(split) && a.label.len() > split.len())
        {
            bail!(
                "sample {}: grid {split} is not in community {}",
                spec.name,
                spec.community
            );
        }
    }
    Ok(out)
}

/// The truth areas of one spec, taken from the embedded demo regions.
pub fn demo_areas(spec: &SampleSpec) -> Result<Vec<TruthSource>> {
    areas_from(&demo_features()?, spec)
}

/// Every sample of [`SPECS`], rendered from the embedded demo regions.
pub fn demo_samples() -> Result<Vec<Sample>> {
    let features = demo_features()?;
    SPECS
        .iter()
        .map(|spec| render(spec, &areas_from(&features, spec)?))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Geometry helpers

type P = [f64; 2];

fn sub(a: P, b: P) -> P {
    [a[0] - b[0], a[1] - b[1]]
}
fn add(a: P, b: P) -> P {
    [a[0] + b[0], a[1] + b[1]]
}
fn mul(a: P, k: f64) -> P {
    [a[0] * k, a[1] * k]
}
fn dot(a: P, b: P) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}
fn cross(a: P, b: P) -> f64 {
    a[0] * b[1] - a[1] * b[0]
}
fn norm(a: P) -> f64 {
    dot(a, a).sqrt()
}
fn unit(a: P) -> P {
    let n = norm(a);
    if n > 0.0 {
        mul(a, 1.0 / n)
    } else {
        [1.0, 0.0]
    }
}
fn rot(a: P, deg: f64) -> P {
    let (s, c) = deg.to_radians().sin_cos();
    [a[0] * c - a[1] * s, a[0] * s + a[1] * c]
}

fn point_segment_dist(p: P, a: P, b: P) -> f64 {
    let ab = sub(b, a);
    let l2 = dot(ab, ab);
    let t = if l2 > 0.0 {
        (dot(sub(p, a), ab) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    norm(sub(p, add(a, mul(ab, t))))
}

fn segments_cross(a: P, b: P, c: P, d: P) -> bool {
    let d1 = cross(sub(b, a), sub(c, a));
    let d2 = cross(sub(b, a), sub(d, a));
    let d3 = cross(sub(d, c), sub(a, c));
    let d4 = cross(sub(d, c), sub(b, c));
    (d1 > 0.0) != (d2 > 0.0) && (d3 > 0.0) != (d4 > 0.0)
}

fn segment_segment_dist(a: P, b: P, c: P, d: P) -> f64 {
    if segments_cross(a, b, c, d) {
        return 0.0;
    }
    point_segment_dist(a, c, d)
        .min(point_segment_dist(b, c, d))
        .min(point_segment_dist(c, a, b))
        .min(point_segment_dist(d, a, b))
}

/// Edges of a closed ring given without its closing point.
fn ring_edges(ring: &[P]) -> impl Iterator<Item = (P, P)> + '_ {
    ring.iter()
        .enumerate()
        .map(move |(i, &a)| (a, ring[(i + 1) % ring.len()]))
}

fn point_in_ring(p: P, ring: &[P]) -> bool {
    let mut inside = false;
    for (a, b) in ring_edges(ring) {
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if x > p[0] {
                inside = !inside;
            }
        }
    }
    inside
}

fn dist_to_ring(p: P, ring: &[P]) -> f64 {
    ring_edges(ring)
        .map(|(a, b)| point_segment_dist(p, a, b))
        .fold(f64::INFINITY, f64::min)
}

/// Axis-aligned rectangle in paper units: `[x0, y0, x1, y1]`.
type Rect = [f64; 4];

fn rect_corners(r: Rect) -> [P; 4] {
    [[r[0], r[1]], [r[2], r[1]], [r[2], r[3]], [r[0], r[3]]]
}

fn rects_near(a: Rect, b: Rect, margin: f64) -> bool {
    a[0] - margin < b[2] && b[0] - margin < a[2] && a[1] - margin < b[3] && b[1] - margin < a[3]
}

/// Whether `r` lies inside `ring` with at least `clearance` between it and the ring.
fn rect_fits(ring: &[P], r: Rect, clearance: f64) -> bool {
    let c = rect_corners(r);
    if !point_in_ring(c[0], ring) {
        return false;
    }
    let clear = ring_edges(&c)
        .all(|(a, b)| ring_edges(ring).all(|(p, q)| segment_segment_dist(a, b, p, q) >= clearance));
    clear
}

/// A 3×3 projective transform of the plane, row-major.
#[derive(Debug, Clone, Copy)]
struct M3([f64; 9]);

impl M3 {
    fn translate(dx: f64, dy: f64) -> M3 {
        M3([1.0, 0.0, dx, 0.0, 1.0, dy, 0.0, 0.0, 1.0])
    }
    fn scale(sx: f64, sy: f64) -> M3 {
        M3([sx, 0.0, 0.0, 0.0, sy, 0.0, 0.0, 0.0, 1.0])
    }
    fn rotate_about(c: P, deg: f64) -> M3 {
        // Image y points down, so a positive angle turns counter-clockwise on screen.
        let (s, co) = (-deg).to_radians().sin_cos();
        let r = M3([co, -s, 0.0, s, co, 0.0, 0.0, 0.0, 1.0]);
        M3::translate(c[0], c[1])
            .then_after(&r)
            .then_after(&M3::translate(-c[0], -c[1]))
    }
    /// `self ∘ other`: apply `other` first, then `self`.
    fn then_after(&self, other: &M3) -> M3 {
        let (a, b) = (&self.0, &other.0);
        let mut m = [0.0; 9];
        for r in 0..3 {
            for c in 0..3 {
                m[r * 3 + c] = (0..3).map(|k| a[r * 3 + k] * b[k * 3 + c]).sum();
            }
        }
        M3(m)
    }
    fn apply(&self, p: P) -> P {
        let m = &self.0;
        let w = m[6] * p[0] + m[7] * p[1] + m[8];
        [
            (m[0] * p[0] + m[1] * p[1] + m[2]) / w,
            (m[3] * p[0] + m[4] * p[1] + m[5]) / w,
        ]
    }
    /// The homography taking each `src[i]` to `dst[i]`.
    fn from_quads(src: [P; 4], dst: [P; 4]) -> Result<M3> {
        let mut a = [[0.0f64; 9]; 8];
        for (i, (s, d)) in src.iter().zip(dst.iter()).enumerate() {
            let ([x, y], [u, v]) = (*s, *d);
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        // Gaussian elimination with partial pivoting on the 8×8 system.
        for col in 0..8 {
            let pivot = (col..8)
                .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
                .unwrap_or(col);
            if a[pivot][col].abs() < 1e-12 {
                bail!("degenerate perspective quadrilateral");
            }
            a.swap(col, pivot);
            let pr = a[col];
            for (r, row) in a.iter_mut().enumerate() {
                if r != col {
                    let f = row[col] / pr[col];
                    for (x, p) in row.iter_mut().zip(pr.iter()) {
                        *x -= f * p;
                    }
                }
            }
        }
        let mut m = [0.0; 9];
        for (i, row) in a.iter().enumerate() {
            m[i] = row[8] / row[i];
        }
        m[8] = 1.0;
        Ok(M3(m))
    }
}

/// Local metric frame (equirectangular about a centre): metres east and north.
#[derive(Debug, Clone, Copy)]
struct Frame {
    lon0: f64,
    lat0: f64,
    kx: f64,
    ky: f64,
}

impl Frame {
    fn around(lon0: f64, lat0: f64) -> Frame {
        Frame {
            lon0,
            lat0,
            kx: 111_320.0 * lat0.to_radians().cos(),
            ky: 110_574.0,
        }
    }
    fn to_m(self, lon: f64, lat: f64) -> P {
        [(lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky]
    }
}

// ---------------------------------------------------------------------------------------------
// The drawn edges

/// A vertex key: coordinates quantised to 1e-7°, the precision of the demo data, so that edges
/// shared by two areas are recognised as one.
type Key = (i64, i64);

fn key(c: Coord<f64>) -> Key {
    ((c.x * 1e7).round() as i64, (c.y * 1e7).round() as i64)
}

/// Every edge of the areas once, with the vertex positions.
struct EdgeGraph {
    pos: BTreeMap<Key, Coord<f64>>,
    adj: BTreeMap<Key, Vec<Key>>,
}

impl EdgeGraph {
    fn build(areas: &[TruthSource]) -> EdgeGraph {
        let mut pos = BTreeMap::new();
        let mut edges = BTreeSet::new();
        for a in areas {
            for poly in &a.geom {
                for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                    for l in ring.lines() {
                        let (ka, kb) = (key(l.start), key(l.end));
                        if ka == kb {
                            continue;
                        }
                        pos.entry(ka).or_insert(l.start);
                        pos.entry(kb).or_insert(l.end);
                        edges.insert((ka.min(kb), ka.max(kb)));
                    }
                }
            }
        }
        let mut adj: BTreeMap<Key, Vec<Key>> = BTreeMap::new();
        for &(a, b) in &edges {
            adj.entry(a).or_default().push(b);
            adj.entry(b).or_default().push(a);
        }
        EdgeGraph { pos, adj }
    }

    /// Chains of edges a hand would draw in one stroke: they run through vertices where the line
    /// goes straight on and stop at junctions and at sharp corners (where people lift the pen).
    fn polylines(&self, frame: Frame, max_turn_deg: f64) -> Vec<Vec<Key>> {
        let m = |k: &Key| self.pos.get(k).map_or([0.0, 0.0], |c| frame.to_m(c.x, c.y));
        let breaks: BTreeSet<Key> = self
            .adj
            .iter()
            .filter(|(k, n)| {
                if n.len() != 2 {
                    return true;
                }
                let (a, v, b) = (m(&n[0]), m(k), m(&n[1]));
                let (d1, d2) = (unit(sub(v, a)), unit(sub(b, v)));
                dot(d1, d2).clamp(-1.0, 1.0).acos().to_degrees() > max_turn_deg
            })
            .map(|(k, _)| *k)
            .collect();
        let mut used = BTreeSet::new();
        let mut out = Vec::new();
        let norm_edge = |a: Key, b: Key| (a.min(b), a.max(b));
        let walk = |start: Key, next: Key, used: &mut BTreeSet<(Key, Key)>| {
            let mut path = vec![start, next];
            used.insert(norm_edge(start, next));
            let (mut prev, mut cur) = (start, next);
            while !breaks.contains(&cur) && cur != start {
                let Some(n) = self.adj.get(&cur) else { break };
                let Some(&nx) = n
                    .iter()
                    .find(|&&x| x != prev && !used.contains(&norm_edge(cur, x)))
                else {
                    break;
                };
                used.insert(norm_edge(cur, nx));
                path.push(nx);
                prev = cur;
                cur = nx;
            }
            path
        };
        for &b in &breaks {
            for &n in self.adj.get(&b).map(Vec::as_slice).unwrap_or_default() {
                if !used.contains(&norm_edge(b, n)) {
                    out.push(walk(b, n, &mut used));
                }
            }
        }
        // Rings with no junction or corner at all (a lone smooth area) start anywhere.
        for (&a, ns) in &self.adj {
            for &n in ns {
                if !used.contains(&norm_edge(a, n)) {
                    out.push(walk(a, n, &mut used));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Hand strokes

/// How a pen puts ink on paper.
#[derive(Debug, Clone, Copy)]
struct Ink {
    /// Fraction of light each channel reflects under full coverage.
    rgb: [f32; 3],
    width: (f64, f64),
    width_var: f64,
    width_range: (f64, f64),
    alpha: (f64, f64),
    alpha_var: f64,
    /// Strength of the paper-tooth graininess (pencil skips over the fibres).
    grain: f32,
    /// Pencil strokes are lighter where the pencil lands and lifts.
    end_fade: f64,
}

fn ink_for(pen: Pen) -> Ink {
    match pen {
        Pen::Pencil => Ink {
            rgb: [0.30, 0.30, 0.32],
            width: (2.2, 2.6),
            width_var: 0.35,
            width_range: (2.0, 3.0),
            alpha: (0.62, 0.80),
            alpha_var: 0.10,
            grain: 0.4,
            end_fade: 0.2,
        },
        Pen::Ballpoint => Ink {
            rgb: [0.12, 0.16, 0.46],
            width: (2.6, 3.2),
            width_var: 0.55,
            width_range: (2.0, 4.0),
            alpha: (0.88, 0.95),
            alpha_var: 0.05,
            grain: 0.10,
            end_fade: 0.1,
        },
    }
}

/// Low-frequency displacement of a hand-drawn line: two sine terms per axis.
#[derive(Debug, Clone, Copy)]
struct Wobble {
    terms: [(f64, f64, f64, f64, f64); 2],
}

impl Wobble {
    /// `amp`: peak displacement; `lambda`: wavelength of the main term.
    fn new(rng: &mut ChaCha8Rng, amp: f64, lambda: (f64, f64)) -> Wobble {
        let tau = std::f64::consts::TAU;
        let mut term = |share: (f64, f64), lam: (f64, f64)| {
            (
                amp * rng.random_range(share.0..share.1),
                amp * rng.random_range(share.0..share.1),
                rng.random_range(lam.0..lam.1),
                rng.random_range(0.0..tau),
                rng.random_range(0.0..tau),
            )
        };
        let main = term((0.45, 0.7), lambda);
        let fine = term((0.15, 0.3), (lambda.0 * 0.25, lambda.1 * 0.25));
        Wobble {
            terms: [main, fine],
        }
    }
    fn at(&self, s: f64) -> P {
        let tau = std::f64::consts::TAU;
        self.terms
            .iter()
            .fold([0.0, 0.0], |acc, &(ax, ay, lam, px, py)| {
                let ph = tau * s / lam;
                [acc[0] + ax * (ph + px).sin(), acc[1] + ay * (ph + py).sin()]
            })
    }
}

/// The character of one stroke: its wobble, pressure (width) and ink density along its length.
#[derive(Debug, Clone, Copy)]
struct Hand {
    wobble: Wobble,
    width: f64,
    width_amp: f64,
    width_lambda: f64,
    width_phase: f64,
    alpha: f64,
    alpha_amp: f64,
    alpha_lambda: f64,
    alpha_phase: f64,
}

impl Hand {
    fn new(rng: &mut ChaCha8Rng, ink: &Ink, wobble: f64, lambda: (f64, f64), thin: f64) -> Hand {
        let tau = std::f64::consts::TAU;
        Hand {
            wobble: Wobble::new(rng, wobble, lambda),
            width: rng.random_range(ink.width.0..ink.width.1) * thin,
            width_amp: ink.width_var * rng.random_range(0.5..1.0) * thin,
            width_lambda: rng.random_range(50.0..180.0),
            width_phase: rng.random_range(0.0..tau),
            alpha: rng.random_range(ink.alpha.0..ink.alpha.1),
            alpha_amp: ink.alpha_var * rng.random_range(0.5..1.0),
            alpha_lambda: rng.random_range(40.0..160.0),
            alpha_phase: rng.random_range(0.0..tau),
        }
    }
}

/// A stroke ready to rasterise: centre-line points in paper units with width and opacity.
#[derive(Debug, Clone, Default)]
struct Stroke {
    pts: Vec<P>,
    width: Vec<f64>,
    alpha: Vec<f64>,
}

/// A path resampled at a fixed step, with arc length and left normal at each point.
struct Dense {
    p: Vec<P>,
    s: Vec<f64>,
    n: Vec<P>,
    len: f64,
}

fn densify(path: &[P], step: f64) -> Dense {
    let mut d = Dense {
        p: Vec::new(),
        s: Vec::new(),
        n: Vec::new(),
        len: 0.0,
    };
    let mut s0 = 0.0;
    for w in path.windows(2) {
        let (a, b) = (w[0], w[1]);
        let l = norm(sub(b, a));
        if l <= 0.0 {
            continue;
        }
        let t = unit(sub(b, a));
        let k = (l / step).ceil().max(1.0) as usize;
        for j in 0..k {
            let f = j as f64 / k as f64;
            d.p.push(add(a, mul(sub(b, a), f)));
            d.s.push(s0 + l * f);
            d.n.push([-t[1], t[0]]);
        }
        s0 += l;
    }
    if let (Some(&last), Some(&n)) = (path.last(), d.n.last()) {
        d.p.push(last);
        d.s.push(s0);
        d.n.push(n);
    }
    d.len = s0;
    d
}

/// Options of [`hand_stroke`] beyond the path and the hand.
#[derive(Debug, Clone, Default)]
struct Trace {
    /// Constant offset along the left normal (for the second line of a double trace).
    offset: f64,
    /// Extra wobble on top of the hand's (a second trace does not follow the first exactly).
    extra: Option<Wobble>,
    /// Drawn part of the path, as arc lengths.
    span: Option<(f64, f64)>,
    /// Breaks, as arc-length intervals.
    gaps: Vec<(f64, f64)>,
}

fn hand_stroke(d: &Dense, hand: &Hand, ink: &Ink, tr: &Trace) -> Vec<Stroke> {
    let tau = std::f64::consts::TAU;
    let (from, to) = tr.span.unwrap_or((0.0, d.len));
    let (from, to) = (from.max(0.0), to.min(d.len));
    let span = (to - from).max(1e-9);
    // The drawn pieces: the span minus the breaks, cut at exact arc lengths so that a break is
    // as wide as asked whatever the sampling step.
    let mut pieces = vec![(from, to)];
    for &(g0, g1) in &tr.gaps {
        pieces = pieces
            .into_iter()
            .flat_map(|(a, b)| [(a, b.min(g0)), (a.max(g1), b)])
            .filter(|(a, b)| b > a)
            .collect();
    }
    let at = |s: f64| -> (P, P) {
        let i =
            d.s.partition_point(|&x| x <= s)
                .clamp(1, d.s.len().max(2) - 1)
                - 1;
        let (s0, s1) = (d.s[i], d.s[(i + 1).min(d.s.len() - 1)]);
        let f = if s1 > s0 {
            ((s - s0) / (s1 - s0)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let p1 = d.p[(i + 1).min(d.p.len() - 1)];
        (add(d.p[i], mul(sub(p1, d.p[i]), f)), d.n[i])
    };
    let mut out = Vec::new();
    for (a, b) in pieces {
        if d.p.len() < 2 || b - a < 0.5 {
            continue;
        }
        let mut st = Stroke::default();
        let inner = d.s.iter().copied().filter(|&s| s > a && s < b);
        for s in std::iter::once(a).chain(inner).chain(std::iter::once(b)) {
            let (p, n) = at(s);
            // The wobble fades towards the ends of the span because a hand aims at the corner it
            // draws to; it runs on through breaks, which are lifts of the pen, not new lines.
            let u = (s - from) / span;
            let env = 0.3 + 0.7 * (std::f64::consts::PI * u).sin().max(0.0).sqrt();
            let mut off = mul(hand.wobble.at(s), env);
            if let Some(x) = &tr.extra {
                off = add(off, x.at(s));
            }
            off = add(off, mul(n, tr.offset));
            let w = (hand.width
                + hand.width_amp * (tau * s / hand.width_lambda + hand.width_phase).sin())
            .clamp(ink.width_range.0, ink.width_range.1);
            let end = (s - a).min(b - s);
            let fade = 1.0 - ink.end_fade * (1.0 - (end / 5.0).min(1.0));
            let alpha = (hand.alpha
                + hand.alpha_amp * (tau * s / hand.alpha_lambda + hand.alpha_phase).sin())
                * fade;
            st.pts.push(add(p, off));
            st.width.push(w);
            st.alpha.push(alpha.clamp(0.05, 1.0));
        }
        out.push(st);
    }
    out
}

/// Short, small-wobble strokes for writing and doodles.
fn pen_marks(rng: &mut ChaCha8Rng, ink: &Ink, paths: &[Vec<P>], thin: f64, out: &mut Vec<Stroke>) {
    for path in paths {
        let hand = Hand::new(rng, ink, 0.35, (20.0, 50.0), thin);
        let d = densify(path, 1.0);
        out.extend(hand_stroke(&d, &hand, ink, &Trace::default()));
    }
}

// ---------------------------------------------------------------------------------------------
// Writing and doodles (all "not an area")

/// One handwritten-looking character in the box at `(x0, y0)` of side `h`: a few strokes in the
/// directions Chinese strokes take, often split into two components as most characters are, or a
/// "口" (a small closed box that is not a drawn area).
fn glyph(rng: &mut ChaCha8Rng, x0: f64, y0: f64, h: f64, boxy: bool) -> Vec<Vec<P>> {
    if boxy {
        let s = h * rng.random_range(0.55..0.75);
        let l = x0 + (h - s) * rng.random_range(0.3..0.7);
        let t = y0 + (h - s) * rng.random_range(0.3..0.7);
        return kou(rng, l, t, s);
    }
    let roll = rng.random_range(0.0..1.0);
    let f = rng.random_range(0.35..0.5);
    let parts: Vec<Rect> = if roll < 0.4 {
        vec![[x0, y0, x0 + h, y0 + h]]
    } else if roll < 0.8 {
        vec![
            [x0, y0, x0 + h * f, y0 + h],
            [x0 + h * (f + 0.08), y0, x0 + h, y0 + h],
        ]
    } else {
        vec![
            [x0, y0, x0 + h, y0 + h * f],
            [x0, y0 + h * (f + 0.08), x0 + h, y0 + h],
        ]
    };
    let single = parts.len() == 1;
    let mut paths = Vec::new();
    for r in parts {
        if !single && rng.random_bool(0.15) {
            // 口 as a component (吃, 和, 品 …)
            let s = (r[2] - r[0]).min(r[3] - r[1]) * 0.8;
            paths.extend(kou(
                rng,
                r[0] + (r[2] - r[0] - s) * 0.5,
                r[1] + (r[3] - r[1] - s) * 0.5,
                s,
            ));
            continue;
        }
        let n = if single {
            rng.random_range(3..=6)
        } else {
            rng.random_range(2..=4)
        };
        for _ in 0..n {
            paths.push(brush_stroke(rng, r));
        }
    }
    paths
}

/// A closed little box with its top-left at `(l, t)`, written as 口 is: left stroke, top and right
/// in one, bottom; they overlap at the corners so the box is closed.
fn kou(rng: &mut ChaCha8Rng, l: f64, t: f64, s: f64) -> Vec<Vec<P>> {
    let mut u = |a: f64, b: f64| rng.random_range(a..b);
    let (r, b) = (l + s * u(0.85, 1.1), t + s);
    vec![
        vec![[l, t - 0.5], [l + u(-0.6, 0.6), b + 1.5]],
        vec![
            [l - 1.0, t],
            [r, t + u(-0.8, 0.8)],
            [r + u(-0.8, 0.8), b + 1.2],
        ],
        vec![[l - 0.5, b], [r + 1.5, b + u(-0.6, 0.6)]],
    ]
}

/// One stroke of a character inside the box `r`.
fn brush_stroke(rng: &mut ChaCha8Rng, r: Rect) -> Vec<P> {
    let kind = rng.random_range(0..6);
    let mut u = |a: f64, b: f64| rng.random_range(a..b);
    let at = |fx: f64, fy: f64| [r[0] + (r[2] - r[0]) * fx, r[1] + (r[3] - r[1]) * fy];
    match kind {
        // 横
        0 => {
            let y = u(0.1, 0.9);
            vec![at(u(0.0, 0.2), y), at(u(0.8, 1.0), y - u(0.0, 0.08))]
        }
        // 竖, sometimes with a hook
        1 => {
            let x = u(0.25, 0.75);
            let mut v = vec![at(x, u(0.0, 0.15)), at(x + u(-0.04, 0.04), u(0.85, 1.0))];
            if u(0.0, 1.0) < 0.3 {
                v.push(at(x - 0.15, 0.9));
            }
            v
        }
        // 撇
        2 => {
            let (sx, sy) = (u(0.4, 0.8), u(0.0, 0.3));
            let (ex, ey) = (u(0.0, 0.2), u(0.7, 1.0));
            vec![
                at(sx, sy),
                at((sx + ex) * 0.5 + 0.08, (sy + ey) * 0.5),
                at(ex, ey),
            ]
        }
        // 捺
        3 => vec![at(u(0.3, 0.5), u(0.2, 0.5)), at(u(0.8, 1.0), u(0.8, 1.0))],
        // 点
        4 => {
            let (x, y) = (u(0.2, 0.8), u(0.0, 0.6));
            vec![at(x, y), at(x + 0.12, y + 0.15)]
        }
        // 横折
        _ => {
            let (a, b, c, d) = (u(0.0, 0.25), u(0.05, 0.4), u(0.75, 1.0), u(0.7, 1.0));
            vec![at(a, b), at(c, b - 0.03), at(c - 0.05, d)]
        }
    }
}

/// A line of handwriting with `n` characters of height `h`, its top-left at `(x0, y0)`, leaning a
/// little as handwriting does.
fn text(rng: &mut ChaCha8Rng, x0: f64, y0: f64, h: f64, n: usize, boxes: f64) -> Vec<Vec<P>> {
    let mut out = Vec::new();
    let mut x = x0;
    let lean = rng.random_range(-0.12..0.08);
    for _ in 0..n {
        let y = y0 + h * rng.random_range(-0.05..0.05);
        let boxy = rng.random_range(0.0..1.0) < boxes;
        let size = h * rng.random_range(0.9..1.0);
        for path in glyph(rng, x, y, size, boxy) {
            out.push(
                path.iter()
                    .map(|p| [p[0] + (p[1] - y0 - h * 0.5) * lean, p[1]])
                    .collect(),
            );
        }
        x += h * rng.random_range(1.0..1.15);
    }
    out
}

fn text_width(h: f64, n: usize) -> f64 {
    h * 1.15 * n as f64
}

/// An arrow from `a` to `b` with a two-stroke head.
fn arrow(a: P, b: P, head: f64) -> Vec<Vec<P>> {
    let back = mul(unit(sub(a, b)), head);
    vec![
        vec![a, b],
        vec![add(b, rot(back, 28.0)), b],
        vec![b, add(b, rot(back, -28.0))],
    ]
}

/// A little tree (crown and trunk), as grid workers mark green space.
fn tree(rng: &mut ChaCha8Rng, c: P, r: f64) -> Vec<Vec<P>> {
    let start: f64 = rng.random_range(0.0..360.0);
    // A bit more than one turn so the crown closes, as a drawn circle does.
    let crown: Vec<P> = (0..=28)
        .map(|i| {
            let a = (start + i as f64 * 13.5).to_radians();
            let rr = r * (1.0 + 0.06 * (3.0 * a).sin());
            [c[0] + rr * a.cos(), c[1] + rr * a.sin()]
        })
        .collect();
    vec![crown, vec![[c[0], c[1] + r], [c[0] + 0.5, c[1] + r * 2.2]]]
}

// ---------------------------------------------------------------------------------------------
// Raster

/// Ink coverage of the whole image. Within one stroke coverage is the maximum (a stroke does not
/// darken where its own segments overlap); different strokes combine like layered ink.
struct Canvas {
    w: usize,
    h: usize,
    done: Vec<f32>,
    cur: Vec<f32>,
    owner: Vec<u32>,
    id: u32,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            done: vec![0.0; w * h],
            cur: vec![0.0; w * h],
            owner: vec![0; w * h],
            id: 0,
        }
    }

    fn draw(&mut self, pts: &[P], width: &[f64], alpha: &[f64]) {
        self.id += 1;
        let n = pts.len();
        for i in 0..n.saturating_sub(1) {
            self.segment(
                (pts[i], pts[i + 1]),
                (width[i], width[i + 1]),
                (alpha[i], alpha[i + 1]),
            );
        }
    }

    fn segment(&mut self, (a, b): (P, P), (wa, wb): (f64, f64), (aa, ab): (f64, f64)) {
        let r = wa.max(wb) * 0.5 + 1.0;
        let x0 = (a[0].min(b[0]) - r).floor().max(0.0) as usize;
        let y0 = (a[1].min(b[1]) - r).floor().max(0.0) as usize;
        let x1 = ((a[0].max(b[0]) + r).ceil().max(0.0) as usize).min(self.w);
        let y1 = ((a[1].max(b[1]) + r).ceil().max(0.0) as usize).min(self.h);
        let ab_v = sub(b, a);
        let l2 = dot(ab_v, ab_v);
        for y in y0..y1 {
            for x in x0..x1 {
                let p = [x as f64 + 0.5, y as f64 + 0.5];
                let t = if l2 > 0.0 {
                    (dot(sub(p, a), ab_v) / l2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = norm(sub(p, add(a, mul(ab_v, t))));
                let w = wa + (wb - wa) * t;
                // Box-filtered coverage of a pixel by a line of width w: linear ramp over 1 px.
                let cov = (w * 0.5 + 0.5 - d).clamp(0.0, 1.0) * (aa + (ab - aa) * t);
                if cov > 0.0 {
                    self.put(y * self.w + x, cov as f32);
                }
            }
        }
    }

    fn put(&mut self, i: usize, a: f32) {
        if self.owner[i] == self.id {
            self.cur[i] = self.cur[i].max(a);
        } else {
            self.done[i] = 1.0 - (1.0 - self.done[i]) * (1.0 - self.cur[i]);
            self.cur[i] = a;
            self.owner[i] = self.id;
        }
    }

    fn finish(self) -> Vec<f32> {
        self.done
            .iter()
            .zip(&self.cur)
            .map(|(d, c)| 1.0 - (1.0 - d) * (1.0 - c))
            .collect()
    }
}

/// Deterministic per-pixel noise in [0, 1) (splitmix64), cheaper than an RNG call per pixel.
fn hash01(seed: u64, x: usize, y: usize, k: u64) -> f32 {
    let mut z = seed
        ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ k.wrapping_mul(0x1656_67B1_9E37_79F9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in [0, 1) with features about `cell` pixels across (paper fibres, blotches).
struct ValueNoise {
    gw: usize,
    cell: f32,
    v: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut ChaCha8Rng, w: usize, h: usize, cell: f32) -> ValueNoise {
        let gw = (w as f32 / cell) as usize + 2;
        let gh = (h as f32 / cell) as usize + 2;
        let v = (0..gw * gh).map(|_| rng.random::<f32>()).collect();
        ValueNoise { gw, cell, v }
    }
    fn at(&self, x: usize, y: usize) -> f32 {
        let fx = x as f32 / self.cell;
        let fy = y as f32 / self.cell;
        let (ix, iy) = (fx as usize, fy as usize);
        let (tx, ty) = (fx - ix as f32, fy - iy as f32);
        let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let g = |i: usize, j: usize| self.v[j * self.gw + i];
        let top = g(ix, iy) + (g(ix + 1, iy) - g(ix, iy)) * sx;
        let bot = g(ix, iy + 1) + (g(ix + 1, iy + 1) - g(ix, iy + 1)) * sx;
        top + (bot - top) * sy
    }
}

/// Separable [1 2 1]/4 blur of an RGB float image: the softness of a phone lens.
fn blur(img: &mut [f32], w: usize, h: usize) {
    let mut tmp = vec![0.0f32; img.len()];
    for y in 0..h {
        for x in 0..w {
            let (l, r) = (x.saturating_sub(1), (x + 1).min(w - 1));
            for c in 0..3 {
                let i = |xx: usize| img[(y * w + xx) * 3 + c];
                tmp[(y * w + x) * 3 + c] = 0.25 * i(l) + 0.5 * i(x) + 0.25 * i(r);
            }
        }
    }
    for y in 0..h {
        let (u, d) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            for c in 0..3 {
                let i = |yy: usize| tmp[(yy * w + x) * 3 + c];
                img[(y * w + x) * 3 + c] = 0.25 * i(u) + 0.5 * i(y) + 0.25 * i(d);
            }
        }
    }
}

/// Paper, ink and light: the photo of the page.
fn photograph(rng: &mut ChaCha8Rng, spec: &SampleSpec, ink: &Ink, cov: &[f32]) -> RgbImage {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let seed = rng.random::<u64>();
    // Off-white, slightly different sheets.
    let base = match spec.pen {
        Pen::Pencil => [
            rng.random_range(236.0..242.0f32),
            rng.random_range(232.0..237.0f32),
            rng.random_range(220.0..228.0f32),
        ],
        Pen::Ballpoint => [
            rng.random_range(233.0..239.0f32),
            rng.random_range(233.0..238.0f32),
            rng.random_range(226.0..232.0f32),
        ],
    };
    let fine = ValueNoise::new(rng, w, h, 2.5);
    let coarse = ValueNoise::new(rng, w, h, 70.0);
    let mut img = vec![0.0f32; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let tex = 1.0
                + 0.024 * (fine.at(x, y) - 0.5)
                + 0.03 * (coarse.at(x, y) - 0.5)
                + 0.008 * (hash01(seed, x, y, 1) - 0.5);
            let mut a = cov[i];
            if a > 0.0 {
                a *= 1.0 - ink.grain * hash01(seed, x, y, 2).max(hash01(seed, x / 2, y / 2, 3));
            }
            for c in 0..3 {
                img[i * 3 + c] = base[c] * tex * (1.0 - a * (1.0 - ink.rgb[c]));
            }
        }
    }
    blur(&mut img, w, h);

    // Light: a linear fall-off towards one corner, vignetting, a warm or cool cast.
    let corner = rng.random_range(0..4usize);
    let bright: P = [
        if corner % 2 == 0 { 0.0 } else { w as f64 },
        if corner < 2 { 0.0 } else { h as f64 },
    ];
    let dark: P = [w as f64 - bright[0], h as f64 - bright[1]];
    let dir = sub(dark, bright);
    let dd = dot(dir, dir);
    let vig = rng.random_range(0.10..0.16f32);
    let cast = [
        1.0f32,
        rng.random_range(0.975..0.995),
        rng.random_range(0.93..0.97),
    ];
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.5);
    let r2max = cx * cx + cy * cy;
    let mut out = RgbImage::new(spec.width, spec.height);
    for (i, px) in out.pixels_mut().enumerate() {
        let (x, y) = ((i % w) as f64 + 0.5, (i / w) as f64 + 0.5);
        let t = (dot(sub([x, y], bright), dir) / dd).clamp(0.0, 1.0);
        let light = 1.0 - spec.shade * t.powf(1.3);
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let v = 1.0 - vig * (dx * dx + dy * dy) / r2max;
        let (xi, yi) = (i % w, i / w);
        let noise = (hash01(seed, xi, yi, 4) + hash01(seed, xi, yi, 5) - 1.0) * 2.6;
        for c in 0..3 {
            let val = img[i * 3 + c] * light as f32 * v * cast[c] + noise;
            px.0[c] = val.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Renders one sample of `areas` (WGS-84) as a photographed sketch.
pub fn render(spec: &SampleSpec, areas: &[TruthSource]) -> Result<Sample> {
    render_encoded(spec, areas).map(|(s, _)| s)
}

/// Where each area lies on the page, in paper units (≈ image pixels).
struct Page {
    frame: Frame,
    /// metric → paper
    a: M3,
    rings: Vec<Vec<P>>,
    /// Top and right edge of the drawing's bounding box.
    top: f64,
    right: f64,
}

fn layout(areas: &[TruthSource], w: f64, h: f64) -> Result<Page> {
    let mut bb: Option<geo::Rect<f64>> = None;
    for a in areas {
        if let Some(r) = a.geom.bounding_rect() {
            bb = Some(match bb {
                None => r,
                Some(b) => geo::Rect::new(
                    Coord {
                        x: b.min().x.min(r.min().x),
                        y: b.min().y.min(r.min().y),
                    },
                    Coord {
                        x: b.max().x.max(r.max().x),
                        y: b.max().y.max(r.max().y),
                    },
                ),
            });
        }
    }
    let bb = bb.ok_or_else(|| anyhow!("no areas to draw"))?;
    let frame = Frame::around(bb.center().x, bb.center().y);
    let lo = frame.to_m(bb.min().x, bb.min().y);
    let hi = frame.to_m(bb.max().x, bb.max().y);
    let (mw, mh) = (hi[0] - lo[0], hi[1] - lo[1]);
    if mw <= 0.0 || mh <= 0.0 {
        bail!("the areas have no extent");
    }
    // The drawing fills the sheet below a band kept for the title and the north arrow.
    let (bx0, bx1, by0, by1) = (0.08 * w, 0.92 * w, 0.15 * h, 0.94 * h);
    let s = ((bx1 - bx0) / mw).min((by1 - by0) / mh);
    let (ox, oy) = ((bx0 + bx1) * 0.5, (by0 + by1) * 0.5);
    // North up: metric y grows north, paper y grows down.
    let a = M3([s, 0.0, ox, 0.0, -s, oy, 0.0, 0.0, 1.0]);
    let rings = areas
        .iter()
        .map(|ar| {
            let poly = largest(&ar.geom);
            let mut ring: Vec<P> = poly
                .map(|p| {
                    p.exterior()
                        .coords()
                        .map(|c| a.apply(frame.to_m(c.x, c.y)))
                        .collect()
                })
                .unwrap_or_default();
            if ring.len() > 1 && ring.first() == ring.last() {
                ring.pop();
            }
            ring
        })
        .collect();
    Ok(Page {
        frame,
        a,
        rings,
        top: oy - s * mh * 0.5,
        right: ox + s * mw * 0.5,
    })
}

fn largest(mp: &MultiPolygon<f64>) -> Option<&Polygon<f64>> {
    mp.0.iter()
        .max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))
}

/// The photo's view of the page: rotation about the centre, then a keystone as from a camera
/// held at a slight angle, with one side of the page farther away.
fn camera(rng: &mut ChaCha8Rng, spec: &SampleSpec, w: f64, h: f64) -> Result<M3> {
    let r = M3::rotate_about([w * 0.5, h * 0.5], spec.rotate_deg);
    let far = rng.random_range(0..4usize);
    let src = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]];
    let mut dst = src;
    for (i, d) in dst.iter_mut().enumerate() {
        // Small independent jitter of every corner, then the far side pulled in along itself.
        d[0] += (if d[0] > 0.0 { -1.0 } else { 1.0 }) * w * rng.random_range(0.0..0.015);
        d[1] += (if d[1] > 0.0 { -1.0 } else { 1.0 }) * h * rng.random_range(0.0..0.015);
        let on_far = match far {
            0 => i < 2,
            1 => i == 1 || i == 2,
            2 => i >= 2,
            _ => i == 0 || i == 3,
        };
        if on_far {
            let k = spec.tilt * rng.random_range(0.35..0.5);
            if far % 2 == 0 {
                d[0] += if i == 0 || i == 3 { w * k } else { -w * k };
            } else {
                d[1] += if i < 2 { h * k } else { -h * k };
            }
        }
    }
    Ok(M3::from_quads(src, dst)?.then_after(&r))
}

/// Every edge of the areas once, as hand strokes with breaks, overshoots and double tracing.
/// Lengths are in paper units, which the photo maps to 0.9–1.2 image pixels: a 3–6.5 unit break
/// shows as about 3–7.5 px.
fn draw_edges(
    rng: &mut ChaCha8Rng,
    spec: &SampleSpec,
    ink: &Ink,
    page: &Page,
    graph: &EdgeGraph,
) -> Vec<Stroke> {
    let mut strokes = Vec::new();
    let paper_of = |k: &Key| {
        graph
            .pos
            .get(k)
            .map_or([0.0, 0.0], |c| page.a.apply(page.frame.to_m(c.x, c.y)))
    };
    let mut lines: Vec<Vec<P>> = graph
        .polylines(page.frame, 35.0)
        .iter()
        .map(|pl| pl.iter().map(paper_of).collect())
        .collect();
    for l in &mut lines {
        if rng.random_bool(0.5) {
            l.reverse();
        }
    }
    let lens: Vec<f64> = lines.iter().map(|l| densify(l, 4.0).len).collect();
    let long: Vec<usize> = (0..lines.len()).filter(|&i| lens[i] > 70.0).collect();
    let mut gap_at: BTreeMap<usize, (bool, f64)> = BTreeMap::new();
    for g in 0..spec.gaps.min(long.len()) {
        // Distinct polylines; the first break is an undershoot at a junction, the rest mid-line.
        let mut tries = 0;
        loop {
            let i = long[rng.random_range(0..long.len())];
            tries += 1;
            if !gap_at.contains_key(&i) || tries > 50 {
                gap_at.insert(i, (g == 0, rng.random_range(3.0..6.5)));
                break;
            }
        }
    }
    for (i, path) in lines.iter().enumerate() {
        let mut path = path.clone();
        let gap = gap_at.get(&i).copied();
        // Overshoots: the line runs on past the corner it aims at.
        let over = |rng: &mut ChaCha8Rng| {
            if rng.random_bool(0.4) {
                rng.random_range(5.0..13.0)
            } else {
                0.0
            }
        };
        let (o0, o1) = (over(rng), over(rng));
        let o1 = if matches!(gap, Some((true, _))) {
            0.0
        } else {
            o1
        };
        if path.len() >= 2 {
            if o0 > 0.0 {
                let t = rot(unit(sub(path[0], path[1])), rng.random_range(-6.0..6.0));
                path.insert(0, add(path[0], mul(t, o0)));
            }
            let n = path.len();
            if o1 > 0.0 {
                let t = rot(
                    unit(sub(path[n - 1], path[n - 2])),
                    rng.random_range(-6.0..6.0),
                );
                path.push(add(path[n - 1], mul(t, o1)));
            }
        }
        let d = densify(&path, 1.5);
        let amp = rng.random_range(2.0..3.4);
        let hand = Hand::new(rng, ink, amp, (140.0, 380.0), 1.0);
        let mut tr = Trace::default();
        match gap {
            // The visible break is `g`: this stroke's round cap and half the width of the line it
            // stops short of would otherwise eat into it.
            Some((true, g)) => tr.span = Some((0.0, d.len - g - hand.width - 0.5)),
            Some((false, g)) => {
                // Round caps reach half a width into the break from each side.
                let len = g + hand.width;
                let at = rng.random_range(o0 + 20.0..(d.len - o1 - 20.0 - len).max(o0 + 21.0));
                tr.gaps.push((at, at + len));
            }
            None => {}
        }
        strokes.extend(hand_stroke(&d, &hand, ink, &tr));
        // Double tracing: the worker went over part of the line again, 1–3 px beside it.
        if gap.is_none() && rng.random_bool(0.12) && d.len > 40.0 {
            let f0 = rng.random_range(0.0..0.4);
            let f1 = rng.random_range(f0 + 0.3..1.0f64.max(f0 + 0.31));
            let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let second = Trace {
                offset: side * rng.random_range(1.0..3.0),
                extra: Some(Wobble::new(rng, 0.5, (40.0, 120.0))),
                span: Some((d.len * f0, d.len * f1.min(1.0))),
                gaps: Vec::new(),
            };
            strokes.extend(hand_stroke(&d, &hand, ink, &second));
        }
    }
    strokes
}

/// Parallel strokes filling `ring`, kept `clearance` away from its edges.
fn draw_hatching(
    rng: &mut ChaCha8Rng,
    ink: &Ink,
    ring: &[P],
    ts: f64,
    clearance: f64,
) -> Vec<Stroke> {
    let mut strokes = Vec::new();
    if ring.len() < 3 {
        return strokes;
    }
    let ang: f64 = if rng.random_bool(0.5) {
        rng.random_range(35.0..55.0)
    } else {
        rng.random_range(125.0..145.0)
    };
    let dir = rot([1.0, 0.0], ang);
    let nrm = [-dir[1], dir[0]];
    let spacing = rng.random_range(11.0..15.0) * ts.max(1.0);
    let proj: Vec<f64> = ring.iter().map(|p| dot(*p, nrm)).collect();
    let (lo, hi) = proj
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let hand = Hand::new(rng, ink, 0.6, (60.0, 150.0), 0.85);
    let mut c = lo + spacing * rng.random_range(0.3..1.0);
    while c < hi {
        let mut cuts: Vec<f64> = Vec::new();
        for (a, b) in ring_edges(ring) {
            let (da, db) = (dot(a, nrm) - c, dot(b, nrm) - c);
            if (da < 0.0) != (db < 0.0) {
                let p = add(a, mul(sub(b, a), da / (da - db)));
                cuts.push(dot(p, dir));
            }
        }
        cuts.sort_by(f64::total_cmp);
        for pair in cuts.chunks_exact(2) {
            let at = |t: f64| add(mul(nrm, c), mul(dir, t));
            let clr0 = clearance + rng.random_range(0.0..5.0);
            let clr1 = clearance + rng.random_range(0.0..5.0);
            let (mut t0, mut t1) = (pair[0], pair[1]);
            while t0 < t1 && dist_to_ring(at(t0), ring) < clr0 {
                t0 += 1.0;
            }
            while t1 > t0 && dist_to_ring(at(t1), ring) < clr1 {
                t1 -= 1.0;
            }
            if t1 - t0 > 8.0 {
                let d = densify(&[at(t0), at(t1)], 1.5);
                let mut hd = hand;
                hd.alpha *= 0.85;
                hd.wobble = Wobble::new(rng, 0.6, (60.0, 150.0));
                strokes.extend(hand_stroke(&d, &hd, ink, &Trace::default()));
            }
        }
        c += spacing * rng.random_range(0.9..1.1);
    }
    strokes
}

/// Writing and doodles inside the areas: a label in most unhatched areas, a tree and an arrow
/// pointing at a two-character note, each `clearance` away from the edges and from each other.
fn draw_notes(
    rng: &mut ChaCha8Rng,
    page: &Page,
    hatched: &BTreeSet<usize>,
    ts: f64,
    clearance: f64,
) -> Vec<Vec<P>> {
    let mut marks: Vec<Vec<P>> = Vec::new();
    let n = page.rings.len();
    let mut occupied: Vec<Vec<Rect>> = vec![Vec::new(); n];
    for (i, (ring, occ)) in page.rings.iter().zip(occupied.iter_mut()).enumerate() {
        if hatched.contains(&i) || ring.len() < 3 || rng.random_bool(0.12) {
            continue;
        }
        let poly = Polygon::new(
            LineString::from(ring.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>()),
            vec![],
        );
        let c = geo::Centroid::centroid(&poly).map_or(ring[0], |c| [c.x(), c.y()]);
        let mut chars = rng.random_range(3..=5usize);
        let mut ch = rng.random_range(18.0..28.0) * ts;
        let jitter = [rng.random_range(-0.1..0.1), rng.random_range(-0.1..0.1)];
        while chars >= 2 {
            let tw = text_width(ch, chars);
            let x0 = c[0] - tw * 0.5 + jitter[0] * tw;
            let y0 = c[1] - ch * 0.5 + jitter[1] * tw;
            let r = [x0 - 2.0, y0 - 0.2 * ch, x0 + tw + 2.0, y0 + 1.25 * ch];
            if rect_fits(ring, r, clearance) {
                marks.extend(text(rng, x0, y0, ch, chars, 0.1));
                occ.push(r);
                break;
            }
            if ch > 13.0 * ts {
                ch *= 0.85;
            } else {
                chars -= 1;
            }
        }
    }
    let place = |rng: &mut ChaCha8Rng, occ: &mut Vec<Vec<Rect>>, sw: f64, sh: f64| {
        for _ in 0..60 {
            let i = rng.random_range(0..n);
            let ring = &page.rings[i];
            if hatched.contains(&i) || ring.len() < 3 {
                continue;
            }
            let (lo, hi) = ring.iter().fold(
                ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]),
                |(lo, hi), p| {
                    (
                        [lo[0].min(p[0]), lo[1].min(p[1])],
                        [hi[0].max(p[0]), hi[1].max(p[1])],
                    )
                },
            );
            if hi[0] - lo[0] <= sw || hi[1] - lo[1] <= sh {
                continue;
            }
            let x0 = rng.random_range(lo[0]..hi[0] - sw);
            let y0 = rng.random_range(lo[1]..hi[1] - sh);
            let r = [x0, y0, x0 + sw, y0 + sh];
            if rect_fits(ring, r, clearance) && occ[i].iter().all(|o| !rects_near(*o, r, 8.0)) {
                occ[i].push(r);
                return Some(r);
            }
        }
        None
    };
    let tr = rng.random_range(9.0..13.0) * ts;
    if let Some(r) = place(rng, &mut occupied, 2.0 * tr, 3.2 * tr) {
        marks.extend(tree(rng, [r[0] + tr, r[1] + tr], tr));
    }
    let ch = 16.0 * ts;
    let alen = rng.random_range(40.0..60.0) * ts;
    if let Some(r) = place(rng, &mut occupied, alen + text_width(ch, 2) + 6.0, ch * 1.3) {
        let y = r[1] + ch * 0.6;
        marks.extend(text(rng, r[0], r[1], ch, 2, 0.5));
        let x = r[0] + text_width(ch, 2) + 4.0;
        marks.extend(arrow(
            [x, y],
            [x + alen, y + rng.random_range(-4.0..4.0)],
            9.0 * ts,
        ));
    }
    marks
}

/// A title over the drawing and a north arrow at its top-right corner, in the band kept free.
fn draw_margin(rng: &mut ChaCha8Rng, page: &Page, ts: f64, w: f64, h: f64) -> Vec<Vec<P>> {
    let mut marks: Vec<Vec<P>> = Vec::new();
    let th = rng.random_range(24.0..30.0) * ts;
    let tn = rng.random_range(5..=7usize);
    let tx = w * 0.5 - text_width(th, tn) * 0.5 + w * rng.random_range(-0.1..0.1);
    let ty = (page.top - th - 0.05 * h).max(0.025 * h);
    marks.extend(text(rng, tx, ty, th, tn, 0.15));
    let nx = page.right.clamp(0.8 * w, 0.94 * w) - w * rng.random_range(0.0..0.02);
    let nb = page.top - 0.03 * h;
    let nt = (nb - 0.085 * h).max(0.02 * h);
    marks.extend(arrow(
        [nx, nb],
        [nx + rng.random_range(-3.0..3.0), nt],
        10.0 * ts,
    ));
    let nh = 14.0 * ts;
    let ny = (nb + nt - nh) * 0.5;
    let nl = nx - 12.0 * ts - nh * 0.7;
    marks.push(vec![
        [nl, ny + nh],
        [nl, ny],
        [nl + nh * 0.7, ny + nh],
        [nl + nh * 0.7, ny],
    ]);
    marks
}

fn render_encoded(spec: &SampleSpec, areas: &[TruthSource]) -> Result<(Sample, Vec<u8>)> {
    if areas.is_empty() {
        bail!("sample {}: no areas", spec.name);
    }
    if spec.width < 64 || spec.height < 64 {
        bail!("sample {}: image too small", spec.name);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (w, h) = (spec.width as f64, spec.height as f64);
    let ink = ink_for(spec.pen);
    // Writing scales with the photo's resolution, within reason.
    let ts = (w * h / (1600.0 * 1200.0)).sqrt().clamp(0.6, 2.0);
    let page = layout(areas, w, h)?;
    let graph = EdgeGraph::build(areas);

    let mut strokes = draw_edges(&mut rng, spec, &ink, &page, &graph);
    // Hatching, labels and doodles keep this far (paper units) from the truth edges, so that even
    // where a drawn line wobbles towards them ~9 px of paper remains in the photo, more than the
    // widest break in a line: closing those breaks cannot join them to an edge.
    let clearance = 18.0;
    let mut order: Vec<usize> = (0..areas.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let hatched: BTreeSet<usize> = order.iter().take(spec.hatched).copied().collect();
    for &i in &hatched {
        strokes.extend(draw_hatching(&mut rng, &ink, &page.rings[i], ts, clearance));
    }
    let mut marks = draw_notes(&mut rng, &page, &hatched, ts, clearance);
    marks.extend(draw_margin(&mut rng, &page, ts, w, h));
    pen_marks(&mut rng, &ink, &marks, 0.85, &mut strokes);

    // -- The photo: camera, then fit everything drawn into the frame with a small border.
    let cam = camera(&mut rng, spec, w, h)?;
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in strokes.iter().flat_map(|s| s.pts.iter()) {
        let q = cam.apply(*p);
        lo = [lo[0].min(q[0]), lo[1].min(q[1])];
        hi = [hi[0].max(q[0]), hi[1].max(q[1])];
    }
    let border = 0.025 * w.min(h) + 4.0;
    let s = ((w - 2.0 * border) / (hi[0] - lo[0])).min((h - 2.0 * border) / (hi[1] - lo[1]));
    if !(s.is_finite() && s > 0.0) {
        bail!("sample {}: nothing drawn", spec.name);
    }
    let fit = M3::translate(w * 0.5, h * 0.5)
        .then_after(&M3::scale(s, s))
        .then_after(&M3::translate(
            -(lo[0] + hi[0]) * 0.5,
            -(lo[1] + hi[1]) * 0.5,
        ));
    let photo = fit.then_after(&cam);
    let forward = photo.then_after(&page.a);
    let to_px = |c: Coord<f64>| {
        let p = forward.apply(page.frame.to_m(c.x, c.y));
        Coord { x: p[0], y: p[1] }
    };

    // -- Truth and control points.
    let truth: Vec<TruthArea> = areas
        .iter()
        .map(|a| TruthArea {
            label: a.label.clone(),
            geom: a.geom.clone(),
            pixel: largest(&a.geom).map_or_else(
                || Polygon::new(LineString::new(vec![]), vec![]),
                |p| p.map_coords(to_px),
            ),
        })
        .collect();
    let gcps = pick_gcps(&graph, page.frame, spec.gcps.clamp(4, 6))
        .into_iter()
        .map(|c| {
            let p = to_px(c);
            Gcp {
                px: p.x + rng.random_range(-1.0..1.0),
                py: p.y + rng.random_range(-1.0..1.0),
                lon: c.x,
                lat: c.y,
            }
        })
        .collect();

    // -- Raster, paper, light, JPEG.
    let mut canvas = Canvas::new(spec.width as usize, spec.height as usize);
    for st in &strokes {
        let pts: Vec<P> = st.pts.iter().map(|p| photo.apply(*p)).collect();
        canvas.draw(&pts, &st.width, &st.alpha);
    }
    let cov = canvas.finish();
    let raw = photograph(&mut rng, spec, &ink, &cov);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&raw)
        .with_context(|| format!("sample {}: JPEG encoding", spec.name))?;
    let image = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
        .with_context(|| format!("sample {}: JPEG decoding", spec.name))?
        .to_rgb8();
    Ok((
        Sample {
            name: spec.name.to_string(),
            image,
            truth,
            gcps,
            width: spec.width,
            height: spec.height,
        },
        jpeg,
    ))
}

/// Control points a planner would pin: the four outer corners of the drawing, then junctions of
/// streets well away from the points already chosen.
fn pick_gcps(graph: &EdgeGraph, frame: Frame, n: usize) -> Vec<Coord<f64>> {
    let verts: Vec<(Key, P, usize)> = graph
        .pos
        .iter()
        .map(|(k, c)| {
            (
                *k,
                frame.to_m(c.x, c.y),
                graph.adj.get(k).map_or(0, Vec::len),
            )
        })
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    for dir in [[-1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]] {
        let best = (0..verts.len())
            .filter(|i| !chosen.contains(i))
            .max_by(|&a, &b| dot(verts[a].1, dir).total_cmp(&dot(verts[b].1, dir)));
        if let Some(b) = best {
            chosen.push(b);
        }
    }
    while chosen.len() < n {
        let far = (0..verts.len())
            .filter(|i| !chosen.contains(i) && verts[*i].2 >= 3)
            .map(|i| {
                let d = chosen
                    .iter()
                    .map(|&j| norm(sub(verts[i].1, verts[j].1)))
                    .fold(f64::INFINITY, f64::min);
                (i, d)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match far {
            Some((i, _)) => chosen.push(i),
            None => break,
        }
    }
    chosen
        .into_iter()
        .filter_map(|i| graph.pos.get(&verts[i].0).copied())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Files

fn truth_features(sample: &Sample, areas: &[TruthSource]) -> Vec<Value> {
    sample
        .truth
        .iter()
        .zip(areas)
        .map(|(t, a)| {
            let polys: Vec<Value> = t
                .geom
                .0
                .iter()
                .map(|p| {
                    let ring = |l: &LineString<f64>| -> Value {
                        l.coords().map(|c| json!([c.x, c.y])).collect()
                    };
                    std::iter::once(ring(p.exterior()))
                        .chain(p.interiors().iter().map(ring))
                        .collect()
                })
                .collect();
            json!({
                "type": "Feature",
                "properties": { "label": t.label, "name": a.name },
                "geometry": { "type": "MultiPolygon", "coordinates": polys },
            })
        })
        .collect()
}

fn write_one(dir: &Path, spec: &SampleSpec, areas: &[TruthSource]) -> Result<Sample> {
    let (sample, jpeg) = render_encoded(spec, areas)?;
    let with_ext = |ext: &str| dir.join(format!("{}.{ext}", spec.name));
    std::fs::write(with_ext(IMAGE_EXT), &jpeg)
        .with_context(|| format!("writing {}", with_ext(IMAGE_EXT).display()))?;
    // One feature a line: small diffs when a sample changes, still readable.
    let features = truth_features(&sample, areas)
        .iter()
        .map(serde_json::to_string)
        .collect::<serde_json::Result<Vec<_>>>()?;
    let truth = format!(
        "{{\"type\":\"FeatureCollection\",\"features\":[\n{}\n]}}\n",
        features.join(",\n")
    );
    std::fs::write(with_ext("truth.geojson"), truth)
        .with_context(|| format!("writing {}", with_ext("truth.geojson").display()))?;
    let gcps = serde_json::to_string_pretty(&sample.gcps)?;
    std::fs::write(with_ext("gcps.json"), gcps + "\n")
        .with_context(|| format!("writing {}", with_ext("gcps.json").display()))?;
    Ok(sample)
}

/// Writes `NAME.jpg`, `NAME.truth.geojson` (WGS-84 polygons, properties `label` = region code and
/// `name`) and `NAME.gcps.json` (`[{px, py, lon, lat}]`) for every spec; returns how many samples.
pub fn write_samples(dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let features = demo_features()?;
    for spec in SPECS {
        write_one(dir, spec, &areas_from(&features, spec)?)?;
    }
    Ok(SPECS.len())
}

// ---------------------------------------------------------------------------------------------
// Accuracy

/// How well a set of found polygons reproduces the drawn areas.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accuracy {
    /// Truth areas.
    pub drawn: usize,
    /// Found polygons.
    pub found: usize,
    /// Truth areas matched with IoU ≥ 0.5.
    pub recovered: usize,
    /// Mean IoU over the truth areas, 0 for an unmatched one.
    pub mean_iou: f64,
    /// IoU of each truth area with its match, in truth order.
    pub per_area: Vec<(String, f64)>,
}

/// Scores found WGS-84 polygons against the truth: pairs are matched one-to-one greedily by
/// descending IoU (IoU = area(A∩B) / area(A∪B) in a local metric frame), so an extra found
/// polygon never lowers the mean and a found polygon covering two areas counts for only one.
pub fn evaluate(found: &[geo::MultiPolygon<f64>], truth: &[TruthArea]) -> Accuracy {
    let centre = truth
        .iter()
        .filter_map(|t| t.geom.bounding_rect())
        .chain(found.iter().filter_map(|f| f.bounding_rect()))
        .next()
        .map_or(Coord { x: 0.0, y: 0.0 }, |r| r.center());
    let frame = Frame::around(centre.x, centre.y);
    let project = |mp: &MultiPolygon<f64>| {
        mp.map_coords(|c| {
            let p = frame.to_m(c.x, c.y);
            Coord { x: p[0], y: p[1] }
        })
    };
    let prep = |mp: &MultiPolygon<f64>| {
        let m = project(mp);
        let a = m.unsigned_area();
        let bb = m.bounding_rect();
        (m, a, bb)
    };
    let t: Vec<_> = truth.iter().map(|x| prep(&x.geom)).collect();
    let f: Vec<_> = found.iter().map(prep).collect();
    let mut pairs = Vec::new();
    for (i, (tm, ta, tb)) in t.iter().enumerate() {
        for (j, (fm, fa, fb)) in f.iter().enumerate() {
            let (Some(tb), Some(fb)) = (tb, fb) else {
                continue;
            };
            if tb.max().x < fb.min().x
                || fb.max().x < tb.min().x
                || tb.max().y < fb.min().y
                || fb.max().y < tb.min().y
            {
                continue;
            }
            let inter = tm.intersection(fm).unsigned_area();
            let union = ta + fa - inter;
            if inter > 0.0 && union > 0.0 {
                pairs.push((inter / union, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut iou = vec![0.0; truth.len()];
    let (mut t_used, mut f_used) = (vec![false; truth.len()], vec![false; found.len()]);
    for (v, i, j) in pairs {
        if !t_used[i] && !f_used[j] {
            t_used[i] = true;
            f_used[j] = true;
            iou[i] = v;
        }
    }
    let recovered = iou.iter().filter(|&&v| v >= 0.5).count();
    let mean_iou = if truth.is_empty() {
        0.0
    } else {
        iou.iter().sum::<f64>() / truth.len() as f64
    };
    Accuracy {
        drawn: truth.len(),
        found: found.len(),
        recovered,
        mean_iou,
        per_area: truth.iter().map(|t| t.label.clone()).zip(iou).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// A small variant of a compound-split sample, quick to render in a debug build.
    fn small_spec() -> SampleSpec {
        SampleSpec {
            name: "test-small",
            seed: 42,
            width: 600,
            height: 400,
            pen: Pen::Pencil,
            community: "150302001001",
            split: Some("150302001001008"),
            rotate_deg: 5.0,
            tilt: 0.07,
            shade: 0.35,
            gaps: 4,
            hatched: 1,
            gcps: 6,
        }
    }

    fn small() -> &'static (Sample, Vec<TruthSource>) {
        static CELL: OnceLock<(Sample, Vec<TruthSource>)> = OnceLock::new();
        CELL.get_or_init(|| {
            let areas = demo_areas(&small_spec()).unwrap();
            (render(&small_spec(), &areas).unwrap(), areas)
        })
    }

    /// A square of `side` degrees with its south-west corner at `(lon, lat)` near Wuhai.
    fn square(lon: f64, lat: f64, side: f64) -> MultiPolygon<f64> {
        MultiPolygon::new(vec![Polygon::new(
            LineString::from(vec![
                (lon, lat),
                (lon + side, lat),
                (lon + side, lat + side),
                (lon, lat + side),
                (lon, lat),
            ]),
            vec![],
        )])
    }

    fn truth_of(geoms: &[MultiPolygon<f64>]) -> Vec<TruthArea> {
        geoms
            .iter()
            .enumerate()
            .map(|(i, g)| TruthArea {
                label: format!("a{i}"),
                geom: g.clone(),
                pixel: g.0[0].clone(),
            })
            .collect()
    }

    #[test]
    fn identical_polygons_score_one() {
        let g = vec![square(106.80, 39.66, 0.002), square(106.803, 39.66, 0.002)];
        let acc = evaluate(&g, &truth_of(&g));
        assert_eq!((acc.drawn, acc.found, acc.recovered), (2, 2, 2));
        assert!((acc.mean_iou - 1.0).abs() < 1e-9, "{acc:?}");
    }

    #[test]
    fn square_shifted_by_half_scores_one_third() {
        let t = truth_of(&[square(106.80, 39.66, 0.002)]);
        let acc = evaluate(&[square(106.801, 39.66, 0.002)], &t);
        assert!((acc.mean_iou - 1.0 / 3.0).abs() < 1e-6, "{acc:?}");
        assert_eq!(acc.recovered, 0, "1/3 is below the 0.5 threshold");
    }

    #[test]
    fn a_missing_area_counts_zero() {
        let g = vec![square(106.80, 39.66, 0.002), square(106.803, 39.66, 0.002)];
        let acc = evaluate(&g[..1], &truth_of(&g));
        assert_eq!((acc.drawn, acc.found, acc.recovered), (2, 1, 1));
        assert!((acc.mean_iou - 0.5).abs() < 1e-9);
        assert_eq!(acc.per_area[1], ("a1".to_string(), 0.0));
    }

    #[test]
    fn extra_found_polygons_do_not_lower_the_mean() {
        let g = vec![square(106.80, 39.66, 0.002)];
        let found = vec![
            square(106.8005, 39.6605, 0.0005), // a small blob inside (a label box)
            g[0].clone(),
            square(106.81, 39.67, 0.001), // far away
        ];
        let acc = evaluate(&found, &truth_of(&g));
        assert_eq!((acc.found, acc.recovered), (3, 1));
        assert!((acc.mean_iou - 1.0).abs() < 1e-9);
    }

    #[test]
    fn one_found_polygon_matches_only_one_area() {
        let g = vec![square(106.80, 39.66, 0.002), square(106.802, 39.66, 0.002)];
        let both = g[0].union(&g[1]);
        let acc = evaluate(&[both], &truth_of(&g));
        assert_eq!(acc.per_area.iter().filter(|(_, v)| *v > 0.0).count(), 1);
        assert!((acc.mean_iou - 0.25).abs() < 1e-6, "{acc:?}");
    }

    #[test]
    fn specs_draw_real_demo_areas() {
        let features = demo_features().unwrap();
        assert!(SPECS.iter().any(|s| (s.width, s.height) == (3000, 2000)));
        for spec in SPECS {
            let areas = areas_from(&features, spec).unwrap();
            assert!(
                (12..=25).contains(&areas.len()),
                "{}: {}",
                spec.name,
                areas.len()
            );
            for a in &areas {
                let f = features.iter().find(|f| f.code == a.label).unwrap();
                assert_eq!(f.geom, a.geom);
            }
            if let Some(split) = spec.split {
                assert!(!areas.iter().any(|a| a.label == split));
                assert_eq!(
                    areas.iter().filter(|a| a.label.starts_with(split)).count(),
                    4
                );
            }
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        let spec = small_spec();
        let areas = demo_areas(&spec).unwrap();
        let (a, ja) = render_encoded(&spec, &areas).unwrap();
        let (b, jb) = render_encoded(&spec, &areas).unwrap();
        assert_eq!(ja, jb, "JPEG bytes differ between runs");
        assert_eq!(a.image.as_raw(), b.image.as_raw());
        assert_eq!(a.gcps, b.gcps);
        let px = |s: &Sample| s.truth.iter().map(|t| t.pixel.clone()).collect::<Vec<_>>();
        assert_eq!(px(&a), px(&b));
        // And it is the same as the cached render other tests look at.
        assert_eq!(a.image.as_raw(), small().0.image.as_raw());
    }

    #[test]
    fn truth_pixel_polygons_lie_inside_the_image() {
        let (s, areas) = small();
        assert_eq!(s.truth.len(), areas.len());
        assert_eq!((s.image.width(), s.image.height()), (600, 400));
        for t in &s.truth {
            assert!(t.pixel.exterior().coords().count() >= 4, "{}", t.label);
            for c in t.pixel.exterior().coords() {
                assert!(
                    c.x > 0.0 && c.x < 600.0 && c.y > 0.0 && c.y < 400.0,
                    "{}: {c:?}",
                    t.label
                );
            }
            // The mapping preserves orientation up to a sign: areas are not degenerate.
            assert!(t.pixel.unsigned_area() > 100.0, "{}", t.label);
        }
    }

    #[test]
    fn gcps_are_truth_vertices_at_their_pixels() {
        let (s, _) = small();
        assert_eq!(s.gcps.len(), 6);
        for g in &s.gcps {
            let hit = s.truth.iter().find_map(|t| {
                let ring = t.geom.0[0].exterior();
                ring.coords()
                    .position(|c| c.x == g.lon && c.y == g.lat)
                    .map(|i| t.pixel.exterior().0[i])
            });
            let px = hit.unwrap_or_else(|| panic!("{g:?} is not a truth vertex"));
            assert!(
                (px.x - g.px).abs() <= 1.0 && (px.y - g.py).abs() <= 1.0,
                "{g:?} vs {px:?}"
            );
        }
    }

    fn luma(img: &RgbImage, x: f64, y: f64, r: i64) -> f64 {
        // Darkest pixel near (x, y): the drawn line wobbles a few pixels about the truth edge.
        let mut best = f64::INFINITY;
        for dy in -r..=r {
            for dx in -r..=r {
                let (px, py) = (x as i64 + dx, y as i64 + dy);
                if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                    let p = img.get_pixel(px as u32, py as u32).0;
                    let l = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
                    best = best.min(l);
                }
            }
        }
        best
    }

    #[test]
    fn ink_lies_along_the_truth_edges() {
        let (s, _) = small();
        let (mut on, mut n_on) = (0.0, 0);
        for t in &s.truth {
            for l in t.pixel.exterior().lines() {
                for k in 1..10 {
                    let f = k as f64 / 10.0;
                    on += luma(
                        &s.image,
                        l.start.x + (l.end.x - l.start.x) * f,
                        l.start.y + (l.end.y - l.start.y) * f,
                        3,
                    );
                    n_on += 1;
                }
            }
        }
        // Paper: a regular lattice of points, each as far as possible from any edge sampled.
        let (mut off, mut n_off) = (0.0, 0);
        let edges: Vec<_> = s
            .truth
            .iter()
            .flat_map(|t| t.pixel.exterior().lines())
            .collect();
        for y in (10..400).step_by(20) {
            for x in (10..600).step_by(20) {
                let p = [x as f64, y as f64];
                let near = edges.iter().any(|l| {
                    point_segment_dist(p, [l.start.x, l.start.y], [l.end.x, l.end.y]) < 12.0
                });
                if !near {
                    off += luma(&s.image, p[0], p[1], 3);
                    n_off += 1;
                }
            }
        }
        let (on, off) = (on / n_on as f64, off / n_off as f64);
        assert!(on < off * 0.8, "edges {on:.1} vs paper {off:.1}");
    }

    #[test]
    fn written_files_read_back() {
        let dir = std::env::temp_dir().join(format!("gridwatch-samples-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = small_spec();
        let areas = demo_areas(&spec).unwrap();
        let sample = write_one(&dir, &spec, &areas).unwrap();
        let img = image::open(dir.join("test-small.jpg")).unwrap().to_rgb8();
        assert_eq!(img.as_raw(), sample.image.as_raw());
        let gcps: Vec<Gcp> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("test-small.gcps.json")).unwrap(),
        )
        .unwrap();
        // serde_json parses floats to within an ulp, not exactly.
        assert_eq!(gcps.len(), sample.gcps.len());
        for (a, b) in gcps.iter().zip(&sample.gcps) {
            assert!((a.px - b.px).abs() < 1e-9 && (a.py - b.py).abs() < 1e-9);
            assert_eq!((a.lon, a.lat), (b.lon, b.lat));
        }
        let truth: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("test-small.truth.geojson")).unwrap(),
        )
        .unwrap();
        let feats = truth["features"].as_array().unwrap();
        assert_eq!(feats.len(), areas.len());
        for (f, a) in feats.iter().zip(&areas) {
            assert_eq!(f["properties"]["label"], a.label.as_str());
            assert_eq!(parse_geometry(&f["geometry"]).unwrap(), a.geom);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The committed files are what `gridwatch samples generate` makes today, byte for byte.
    #[test]
    fn committed_samples_match_a_fresh_generation() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("geodata/sketches");
        let tmp = std::env::temp_dir().join(format!("gridwatch-sketches-{}", std::process::id()));
        let n = write_samples(&tmp).unwrap();
        assert_eq!(n, SPECS.len());
        for spec in SPECS {
            for file in [
                format!("{}.{IMAGE_EXT}", spec.name),
                format!("{}.truth.geojson", spec.name),
                format!("{}.gcps.json", spec.name),
            ] {
                let fresh = std::fs::read(tmp.join(&file)).unwrap();
                let old = std::fs::read(committed.join(&file)).unwrap();
                assert!(
                    fresh == old,
                    "{file} differs from a fresh `gridwatch samples generate`"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
