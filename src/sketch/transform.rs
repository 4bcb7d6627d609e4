//! Georeferencing a photographed sketch: fit a transform from sketch pixels (x right, y down) to
//! WGS-84 from ground control points, as QGIS's Georeferencer and GDAL do, and report how well it
//! fits — residuals, leave-one-out errors, outliers, fold-over.
//!
//! Owns the four transform kinds (Helmert similarity, affine, projective, thin-plate spline), the
//! automatic choice between them ([`Requested::Auto`]) and the [`FitReport`]. It does no I/O and
//! knows nothing of images beyond pixel coordinates; callers that know the image size ask
//! [`Fit::image_warnings`] about fold-over and extrapolation near its edges.
//!
//! Every fit happens in a local metric frame: metres east/north of the control points' centroid
//! (local equirectangular). That frame is affine in lon/lat, so it costs the affine, projective
//! and spline fits no accuracy; it only gives residuals their unit and the Helmert fit its meaning
//! ("similar in metres"). Pixel and metric coordinates are both centred and scaled (Hartley's
//! normalisation) before solving so that the systems stay well conditioned. The frame assumes the
//! control points do not straddle the antimeridian.
//!
//! ```
//! use gridwatch::sketch::transform::{fit, Gcp, Requested, TransformKind};
//! use gridwatch::spatial::distance::{metres_per_deg_lon, METRES_PER_DEG_LAT};
//!
//! // The corners of a 1000 × 800 px sketch of Wuhai, 1 m per pixel, north up.
//! let corner = |px: f64, py: f64| Gcp {
//!     px,
//!     py,
//!     lon: 106.8 + (px - 500.0) / metres_per_deg_lon(39.6),
//!     lat: 39.6 - (py - 400.0) / METRES_PER_DEG_LAT,
//! };
//! let gcps = [corner(0.0, 0.0), corner(1000.0, 0.0), corner(1000.0, 800.0), corner(0.0, 800.0)];
//!
//! let fit = fit(&gcps, Requested::Auto, 1.0)?;
//! assert_eq!(fit.kind(), TransformKind::Helmert);
//! assert!((fit.report().metres_per_pixel - 1.0).abs() < 1e-6);
//!
//! let (lon, lat) = fit.to_lonlat(250.0, 100.0);
//! let (px, py) = fit.to_pixel(lon, lat).ok_or("no inverse")?;
//! assert!((px - 250.0).abs() < 1e-6 && (py - 100.0).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::f64::consts::SQRT_2;
use std::fmt;
use std::str::FromStr;

use nalgebra::{DMatrix, Matrix3, SMatrix, SVector};
use serde::{Deserialize, Serialize};

use crate::spatial::distance::{metres_per_deg_lon, METRES_PER_DEG_LAT};

/// A ground control point: a pixel of the sketch (x right, y down, origin top-left, after EXIF
/// orientation) and the WGS-84 position it shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gcp {
    pub px: f64,
    pub py: f64,
    pub lon: f64,
    pub lat: f64,
}

/// The result of fitting.
pub type Result<T, E = FitError> = std::result::Result<T, E>;

/// Two control points closer than this (in pixels, or in degrees) are the same point.
const COINCIDENT: f64 = 1e-9;
/// A point set whose spread across its main axis is below this fraction of its spread along it
/// is on one line. Rounding alone leaves about 1e-8, so the threshold sits well above that.
const COLLINEAR: f64 = 1e-6;
/// Below this fraction the set is usable but the scale across the line is poorly determined.
const NEAR_COLLINEAR: f64 = 0.05;
/// Two control points closer than this fraction of the set's diameter are probably one landmark
/// clicked twice.
const NEAR_REPEAT: f64 = 0.01;
/// Tolerances below a millimetre are treated as a millimetre: below that, residuals are rounding.
const MIN_TOLERANCE_M: f64 = 1e-3;
/// A point is an outlier when its error exceeds this many times the median of the others.
const OUTLIER_FACTOR: f64 = 3.0;
/// Samples per axis when looking for a sign change of the Jacobian.
const FOLD_SAMPLES: usize = 21;
/// An image corner further outside the control points' hull than this fraction of the hull's
/// diameter is extrapolated "far".
const FAR_OUTSIDE: f64 = 0.5;

/// The kind of transform from sketch pixels to the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformKind {
    /// Similarity: uniform scale, rotation and translation (4 parameters), least squares.
    Helmert,
    /// Scale and shear on each axis plus translation (6 parameters), least squares.
    Affine,
    /// Homography (8 parameters): a flat sketch photographed at an angle.
    Projective,
    /// Thin-plate spline: exact at every control point, smooth between them.
    ThinPlateSpline,
}

impl TransformKind {
    /// All kinds, simplest first.
    pub const ALL: [TransformKind; 4] = [
        TransformKind::Helmert,
        TransformKind::Affine,
        TransformKind::Projective,
        TransformKind::ThinPlateSpline,
    ];

    /// The fewest control points that determine this kind.
    pub fn min_points(self) -> usize {
        match self {
            TransformKind::Helmert => 2,
            TransformKind::Affine => 3,
            TransformKind::Projective => 4,
            TransformKind::ThinPlateSpline => 3,
        }
    }

    /// The wire name (the same as serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            TransformKind::Helmert => "helmert",
            TransformKind::Affine => "affine",
            TransformKind::Projective => "projective",
            TransformKind::ThinPlateSpline => "thin_plate_spline",
        }
    }
}

impl fmt::Display for TransformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transform name that [`TransformKind`] or [`Requested`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transform {given:?}: expected {expected}")]
pub struct UnknownTransform {
    pub given: String,
    pub expected: &'static str,
}

impl FromStr for TransformKind {
    type Err = UnknownTransform;

    fn from_str(s: &str) -> Result<Self, UnknownTransform> {
        match s.trim().to_ascii_lowercase().as_str() {
            "helmert" => Ok(TransformKind::Helmert),
            "affine" => Ok(TransformKind::Affine),
            "projective" => Ok(TransformKind::Projective),
            "tps" | "thin_plate_spline" => Ok(TransformKind::ThinPlateSpline),
            _ => Err(UnknownTransform {
                given: s.to_owned(),
                expected: "helmert, affine, projective, tps or thin_plate_spline",
            }),
        }
    }
}

/// What the caller asked for: one kind, or the simplest kind that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requested {
    #[default]
    Auto,
    Kind(TransformKind),
}

impl fmt::Display for Requested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requested::Auto => f.write_str("auto"),
            Requested::Kind(kind) => kind.fmt(f),
        }
    }
}

impl FromStr for Requested {
    type Err = UnknownTransform;

    fn from_str(s: &str) -> Result<Self, UnknownTransform> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Requested::Auto);
        }
        s.parse()
            .map(Requested::Kind)
            .map_err(|_| UnknownTransform {
                given: s.to_owned(),
                expected: "auto, helmert, affine, projective, tps or thin_plate_spline",
            })
    }
}

/// Why no transform could be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("{kind} needs at least {need} control points, got {got}")]
    TooFewPoints {
        kind: &'static str,
        need: usize,
        got: usize,
    },
    /// Not finite, or lon/lat out of range.
    #[error("control point {index}: {message}")]
    BadPoint { index: usize, message: String },
    /// Coincident points, all points on one line (except for Helmert), a singular system, or a
    /// result that is not finite.
    #[error("the control points are degenerate: {0}")]
    Degenerate(String),
}

/// How far one control point is from where the fitted transform puts it.
#[derive(Debug, Clone, Serialize)]
pub struct Residual {
    /// Index into the control points as given.
    pub index: usize,
    pub metres: f64,
    /// `metres` divided by the report's `metres_per_pixel`.
    pub pixels: f64,
    /// Error (the leave-one-out error for a thin-plate spline, which is exact at every point)
    /// more than 3× the median of the others' and more than the tolerance.
    pub outlier: bool,
    /// Refit without this point, predict it: the honest accuracy measure. Present when there
    /// are more points than the kind needs and the others are not degenerate on their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leave_one_out_m: Option<f64>,
}

/// How the fit went.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    pub kind: TransformKind,
    pub requested: Requested,
    pub points: usize,
    pub residuals: Vec<Residual>,
    pub rmse_m: f64,
    pub rmse_px: f64,
    /// `points - kind.min_points()`.
    pub dof: usize,
    /// `sqrt(Σ r² / dof)` in metres; `None` when `dof == 0`.
    pub rmse_per_dof_m: Option<f64>,
    /// Mean ground size of a pixel (the square root of the Jacobian's determinant, averaged over
    /// the control points).
    pub metres_per_pixel: f64,
    /// Human-readable problems worth showing to whoever placed the control points.
    pub warnings: Vec<String>,
}

/// A fitted transform and its report.
#[derive(Debug, Clone)]
pub struct Fit {
    frame: Frame,
    model: Model,
    /// Convex hull of the control points' pixels, for extrapolation warnings.
    hull: Vec<P2>,
    hull_diameter: f64,
    report: FitReport,
}

impl Fit {
    pub fn report(&self) -> &FitReport {
        &self.report
    }

    pub fn kind(&self) -> TransformKind {
        self.report.kind
    }

    /// WGS-84 (lon, lat) of a pixel. `(NaN, NaN)` where the transform is undefined, which only
    /// happens on the horizon of a projective transform; [`Fit::try_to_lonlat`] says so instead.
    pub fn to_lonlat(&self, px: f64, py: f64) -> (f64, f64) {
        self.try_to_lonlat(px, py).unwrap_or((f64::NAN, f64::NAN))
    }

    /// WGS-84 (lon, lat) of a pixel, `None` where undefined (on a projective horizon).
    pub fn try_to_lonlat(&self, px: f64, py: f64) -> Option<(f64, f64)> {
        let q = self.model.forward(self.frame.pixel_to_norm(px, py))?;
        finite(self.frame.norm_to_lonlat(q))
    }

    /// The pixel showing a WGS-84 position. Analytic for Helmert, affine and projective (`None`
    /// for a position on the projective horizon). For a thin-plate spline a second spline fitted
    /// in the reverse direction (as GDAL does) gives the estimate, and Newton's method on the
    /// forward spline then polishes it, so that `to_pixel` inverts `to_lonlat` exactly wherever
    /// the forward mapping is locally invertible.
    pub fn to_pixel(&self, lon: f64, lat: f64) -> Option<(f64, f64)> {
        let p = self.model.inverse(self.frame.lonlat_to_norm(lon, lat))?;
        finite(self.frame.norm_to_pixel(p))
    }

    /// How far a pixel is outside the convex hull of the control points, in pixels (0 inside).
    pub fn outside_hull_px(&self, px: f64, py: f64) -> f64 {
        hull_distance(&self.hull, (px, py))
    }

    /// Warnings that need the image size: fold-over anywhere in the image, and image corners far
    /// beyond the control points (positions there are extrapolated).
    pub fn image_warnings(&self, width: u32, height: u32) -> Vec<String> {
        let (w, h) = (f64::from(width), f64::from(height));
        let mut warnings = Vec::new();
        if let Some(p) = find_fold(&self.model, &self.frame, (0.0, 0.0), (w, h)) {
            warnings.push(fold_message(p));
        }
        // Distance to a convex set is convex, so the worst point of the image is a corner.
        let worst = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
            .into_iter()
            .map(|c| (c, self.outside_hull_px(c.0, c.1)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some(((x, y), d)) = worst {
            if d > FAR_OUTSIDE * self.hull_diameter {
                warnings.push(format!(
                    "the image reaches {d:.0} px beyond the control points near pixel \
                     ({x:.0}, {y:.0}); positions there are extrapolated, so add control points \
                     near the edges"
                ));
            }
        }
        warnings
    }
}

/// Fits a transform from sketch pixels to WGS-84.
///
/// `tolerance_m` is the RMSE (metres) that [`Requested::Auto`] accepts, and the least error an
/// outlier must have. With `Auto`, Helmert, affine and projective are tried in that order (those
/// with enough points) and the first with RMSE ≤ tolerance and no outlier wins; otherwise a
/// thin-plate spline (n ≥ 3) or Helmert (n = 2, or all points on one line, where nothing else is
/// determined) is used, with a warning.
pub fn fit(gcps: &[Gcp], requested: Requested, tolerance_m: f64) -> Result<Fit> {
    validate(gcps)?;
    let n = gcps.len();
    let (kind_name, need) = match requested {
        Requested::Auto => ("helmert", TransformKind::Helmert.min_points()),
        Requested::Kind(kind) => (kind.as_str(), kind.min_points()),
    };
    if n < need {
        return Err(FitError::TooFewPoints {
            kind: kind_name,
            need,
            got: n,
        });
    }
    check_coincident(gcps)?;

    let mut warnings = Vec::new();
    let tolerance_m = if tolerance_m.is_nan() || tolerance_m < 0.0 {
        warnings.push(format!(
            "tolerance {tolerance_m} m is not a distance; using {MIN_TOLERANCE_M} m"
        ));
        MIN_TOLERANCE_M
    } else {
        tolerance_m.max(MIN_TOLERANCE_M)
    };

    let frame = Frame::new(gcps)?;
    let src: Vec<P2> = gcps
        .iter()
        .map(|g| frame.pixel_to_norm(g.px, g.py))
        .collect();
    let dst: Vec<P2> = gcps
        .iter()
        .map(|g| frame.lonlat_to_norm(g.lon, g.lat))
        .collect();
    warn_near_repeats(&src, "pixel", &mut warnings);
    warn_near_repeats(&dst, "position", &mut warnings);
    let spread_px = spread(&src);
    let spread_map = spread(&dst);
    let collinear = spread_px < COLLINEAR || spread_map < COLLINEAR;

    let chosen = match requested {
        Requested::Kind(kind) => {
            if collinear && kind != TransformKind::Helmert {
                return Err(FitError::Degenerate(format!(
                    "all control points are on one line in {}; {kind} needs points spread in \
                     two directions (helmert works with points on a line)",
                    if spread_px < COLLINEAR {
                        "the sketch"
                    } else {
                        "the map"
                    }
                )));
            }
            evaluate(kind, &frame, &src, &dst, tolerance_m)?
        }
        Requested::Auto => choose(&frame, &src, &dst, tolerance_m, collinear, &mut warnings)?,
    };

    if chosen.kind != TransformKind::Helmert {
        for (spread, space) in [(spread_px, "the sketch"), (spread_map, "the map")] {
            if spread < NEAR_COLLINEAR {
                warnings.push(format!(
                    "the control points are nearly on one line in {space} (spread across it is \
                     {:.1}% of the spread along it), so the scale across that line is poorly \
                     determined",
                    spread * 100.0
                ));
            }
        }
    }
    Ok(finish(chosen, requested, frame, gcps, &src, warnings))
}

/// `Requested::Auto`: the simplest kind that fits within tolerance without outliers.
fn choose(
    frame: &Frame,
    src: &[P2],
    dst: &[P2],
    tolerance_m: f64,
    collinear: bool,
    warnings: &mut Vec<String>,
) -> Result<Candidate> {
    let n = src.len();
    if collinear || n == 2 {
        let helmert = evaluate(TransformKind::Helmert, frame, src, dst, tolerance_m)?;
        // Two points are always on a line; only say so when more points could have helped.
        if collinear && n > 2 {
            warnings.push(
                "all control points are on one line, so only a helmert transform is determined"
                    .to_owned(),
            );
        }
        if !helmert.acceptable(tolerance_m) {
            warnings.push(format!(
                "the helmert transform does not fit within {tolerance_m} m (RMSE {:.2} m); add \
                 control points off the line",
                helmert.rmse_m
            ));
        }
        return Ok(helmert);
    }
    let mut tried = Vec::new();
    // Points that every simpler kind calls an outlier: a spline would bend to pass through them.
    let mut always_outliers: Option<Vec<usize>> = None;
    for kind in [
        TransformKind::Helmert,
        TransformKind::Affine,
        TransformKind::Projective,
    ] {
        if n < kind.min_points() {
            continue;
        }
        match evaluate(kind, frame, src, dst, tolerance_m) {
            Ok(c) if c.acceptable(tolerance_m) => return Ok(c),
            Ok(c) => {
                let outliers: Vec<usize> = c
                    .residuals
                    .iter()
                    .filter(|r| r.outlier)
                    .map(|r| r.index)
                    .collect();
                tried.push(match outliers.len() {
                    0 => format!("{kind}: RMSE {:.2} m", c.rmse_m),
                    k => format!("{kind}: RMSE {:.2} m, {k} outlier(s)", c.rmse_m),
                });
                always_outliers = Some(match always_outliers {
                    None => outliers,
                    Some(before) => before
                        .into_iter()
                        .filter(|i| outliers.contains(i))
                        .collect(),
                });
            }
            Err(e) => tried.push(format!("{kind}: {e}")),
        }
    }
    let tps = evaluate(TransformKind::ThinPlateSpline, frame, src, dst, tolerance_m)?;
    warnings.push(format!(
        "no simpler transform fits within {tolerance_m} m without outliers ({}); using a \
         thin-plate spline, which passes through every control point, so judge it by the \
         leave-one-out errors",
        tried.join("; ")
    ));
    for i in always_outliers.unwrap_or_default() {
        warnings.push(format!(
            "control point {i} is an outlier under every simpler transform; fix or remove it \
             rather than let the spline bend to pass through it"
        ));
    }
    Ok(tps)
}

/// Builds the report for the chosen candidate.
fn finish(
    chosen: Candidate,
    requested: Requested,
    frame: Frame,
    gcps: &[Gcp],
    src: &[P2],
    mut warnings: Vec<String>,
) -> Fit {
    let n = gcps.len();
    let kind = chosen.kind;
    let dof = n - kind.min_points();
    let sum_sq: f64 = chosen.residuals.iter().map(|r| r.metres * r.metres).sum();

    for r in chosen.residuals.iter().filter(|r| r.outlier) {
        let (what, error) = match (kind, r.leave_one_out_m) {
            (TransformKind::ThinPlateSpline, Some(loo)) => ("the others predict it", loo),
            _ => ("the transform puts it", r.metres),
        };
        warnings.push(format!(
            "control point {} looks like an outlier: it is {error:.1} m from where {what}, more \
             than {OUTLIER_FACTOR}× the median of the other points; check it",
            r.index
        ));
    }
    warnings.extend(chosen.notes);
    if dof == 0 {
        warnings.push(format!(
            "with exactly {n} control points the {kind} transform passes through all of them, so \
             its accuracy cannot be checked; add control points"
        ));
    }

    let (mut min, mut max) = (
        (f64::INFINITY, f64::INFINITY),
        (f64::NEG_INFINITY, f64::NEG_INFINITY),
    );
    for g in gcps {
        min = (min.0.min(g.px), min.1.min(g.py));
        max = (max.0.max(g.px), max.1.max(g.py));
    }
    if let Some(p) = find_fold(&chosen.model, &frame, min, max) {
        warnings.push(fold_message(p));
    } else if chosen
        .model
        .jacobian((0.0, 0.0))
        .is_some_and(|j| det2(j) < 0.0)
    {
        // The normalised frame has y up on both sides, so a proper photograph has a positive
        // Jacobian; negative means the sketch is seen mirrored.
        warnings.push(
            "the transform mirrors the sketch: is the photo flipped, or are two control points' \
             positions swapped?"
                .to_owned(),
        );
    }

    let pixels: Vec<P2> = gcps.iter().map(|g| (g.px, g.py)).collect();
    let hull = convex_hull(&pixels);
    let hull_diameter = diameter(src) / frame.ps;
    let rmse_px = chosen.rmse_m / chosen.metres_per_pixel;
    Fit {
        frame,
        model: chosen.model,
        hull,
        hull_diameter,
        report: FitReport {
            kind,
            requested,
            points: n,
            residuals: chosen.residuals,
            rmse_m: chosen.rmse_m,
            rmse_px,
            dof,
            rmse_per_dof_m: (dof > 0).then(|| (sum_sq / dof as f64).sqrt()),
            metres_per_pixel: chosen.metres_per_pixel,
            warnings,
        },
    }
}

fn fold_message((x, y): P2) -> String {
    format!("the transform folds over near pixel ({x:.0}, {y:.0})")
}

// ---------------------------------------------------------------------------------------------
// Input checks

fn validate(gcps: &[Gcp]) -> Result<()> {
    for (index, g) in gcps.iter().enumerate() {
        let message = if !(g.px.is_finite() && g.py.is_finite()) {
            format!("pixel ({}, {}) is not finite", g.px, g.py)
        } else if !(g.lon.is_finite() && g.lat.is_finite()) {
            format!("position ({}, {}) is not finite", g.lon, g.lat)
        } else if !(-180.0..=180.0).contains(&g.lon) {
            format!("longitude {} is outside -180..180", g.lon)
        } else if !(-90.0..=90.0).contains(&g.lat) {
            format!("latitude {} is outside -90..90", g.lat)
        } else {
            continue;
        };
        return Err(FitError::BadPoint { index, message });
    }
    Ok(())
}

fn check_coincident(gcps: &[Gcp]) -> Result<()> {
    let same =
        |a: f64, b: f64, c: f64, d: f64| (a - c).abs() <= COINCIDENT && (b - d).abs() <= COINCIDENT;
    for (i, a) in gcps.iter().enumerate() {
        for (j, b) in gcps.iter().enumerate().skip(i + 1) {
            if same(a.px, a.py, b.px, b.py) {
                return Err(FitError::Degenerate(format!(
                    "control points {i} and {j} are at the same pixel ({}, {})",
                    a.px, a.py
                )));
            }
            if same(a.lon, a.lat, b.lon, b.lat) {
                return Err(FitError::Degenerate(format!(
                    "control points {i} and {j} are at the same position ({}, {})",
                    a.lon, a.lat
                )));
            }
        }
    }
    Ok(())
}

/// Pairs much closer than the set's size: usually one landmark clicked twice.
fn warn_near_repeats(points: &[P2], what: &str, warnings: &mut Vec<String>) {
    let limit = NEAR_REPEAT * diameter(points);
    for (i, a) in points.iter().enumerate() {
        for (j, b) in points.iter().enumerate().skip(i + 1) {
            if dist(*a, *b) < limit {
                warnings.push(format!(
                    "control points {i} and {j} are at nearly the same {what}; if they are one \
                     landmark placed twice, remove one"
                ));
            }
        }
    }
}

/// Spread across the points' main axis divided by the spread along it: 0 on a line, 1 for a
/// round cloud.
fn spread(points: &[P2]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for p in points {
        let (dx, dy) = (p.0 - mx, p.1 - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    let half_trace = (sxx + syy) / 2.0;
    let root = (((sxx - syy) / 2.0).powi(2) + sxy * sxy).sqrt();
    let major = half_trace + root;
    if major <= 0.0 {
        return 0.0;
    }
    // det / major rather than half_trace − root: the subtraction loses everything on a line.
    let minor = ((sxx * syy - sxy * sxy) / major).max(0.0);
    (minor / major).sqrt()
}

// ---------------------------------------------------------------------------------------------
// The local frames

type P2 = (f64, f64);

fn dist(a: P2, b: P2) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

fn diameter(points: &[P2]) -> f64 {
    let mut d: f64 = 0.0;
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            d = d.max(dist(*a, *b));
        }
    }
    d
}

fn finite(p: P2) -> Option<P2> {
    (p.0.is_finite() && p.1.is_finite()).then_some(p)
}

fn det2(j: [f64; 4]) -> f64 {
    j[0] * j[3] - j[1] * j[2]
}

/// Normalised coordinates on both sides. Pixels: centred on the control points' centroid, y
/// flipped to point up (so that a photograph of a north-up map is a rotation, not a reflection),
/// scaled so the mean distance from the centroid is √2. Map: metres east/north of the control
/// points' centroid, scaled the same way.
#[derive(Debug, Clone, Copy)]
struct Frame {
    lon0: f64,
    lat0: f64,
    /// Metres per degree of longitude and latitude at `lat0`.
    kx: f64,
    ky: f64,
    pcx: f64,
    pcy: f64,
    /// Normalised units per pixel.
    ps: f64,
    /// Normalised units per metre.
    ms: f64,
}

impl Frame {
    fn new(gcps: &[Gcp]) -> Result<Frame> {
        let n = gcps.len() as f64;
        let mean = |f: fn(&Gcp) -> f64| gcps.iter().map(f).sum::<f64>() / n;
        let (lon0, lat0) = (mean(|g| g.lon), mean(|g| g.lat));
        let (pcx, pcy) = (mean(|g| g.px), mean(|g| g.py));
        let kx = metres_per_deg_lon(lat0);
        let ky = METRES_PER_DEG_LAT;
        let pixel_spread = gcps
            .iter()
            .map(|g| (g.px - pcx).hypot(g.py - pcy))
            .sum::<f64>()
            / n;
        let metre_spread = gcps
            .iter()
            .map(|g| ((g.lon - lon0) * kx).hypot((g.lat - lat0) * ky))
            .sum::<f64>()
            / n;
        let frame = Frame {
            lon0,
            lat0,
            kx,
            ky,
            pcx,
            pcy,
            ps: SQRT_2 / pixel_spread,
            ms: SQRT_2 / metre_spread,
        };
        let usable = [kx, frame.ps, frame.ms]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0);
        if !usable {
            return Err(FitError::Degenerate(
                "the control points have no extent to fit a transform to".to_owned(),
            ));
        }
        Ok(frame)
    }

    fn pixel_to_norm(&self, px: f64, py: f64) -> P2 {
        ((px - self.pcx) * self.ps, (self.pcy - py) * self.ps)
    }

    fn norm_to_pixel(&self, (u, v): P2) -> P2 {
        (self.pcx + u / self.ps, self.pcy - v / self.ps)
    }

    fn lonlat_to_norm(&self, lon: f64, lat: f64) -> P2 {
        (
            (lon - self.lon0) * self.kx * self.ms,
            (lat - self.lat0) * self.ky * self.ms,
        )
    }

    fn norm_to_lonlat(&self, (e, n): P2) -> P2 {
        (
            self.lon0 + e / (self.kx * self.ms),
            self.lat0 + n / (self.ky * self.ms),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Models, all from normalised pixels (u, v) to normalised map coordinates (x, y)

#[derive(Debug, Clone)]
enum Model {
    /// x = a u − b v + c, y = b u + a v + d: rotation and uniform scale, never a reflection.
    Helmert { a: f64, b: f64, c: f64, d: f64 },
    /// x = m0 + m1 u + m2 v, y = m3 + m4 u + m5 v.
    Affine([f64; 6]),
    /// Homogeneous (x w, y w, w) = h (u, v, 1), with h₃₃ = 1.
    Projective { h: Matrix3<f64>, inv: Matrix3<f64> },
    /// `reverse` maps back; it is skipped for leave-one-out refits, which only predict forward.
    Tps { forward: Tps, reverse: Option<Tps> },
}

impl Model {
    fn fit(kind: TransformKind, src: &[P2], dst: &[P2], with_reverse: bool) -> Result<Model> {
        match kind {
            TransformKind::Helmert => fit_helmert(src, dst),
            TransformKind::Affine => fit_affine(src, dst),
            TransformKind::Projective => fit_projective(src, dst),
            TransformKind::ThinPlateSpline => Ok(Model::Tps {
                forward: Tps::fit(src, dst)?,
                reverse: if with_reverse {
                    Some(Tps::fit(dst, src)?)
                } else {
                    None
                },
            }),
        }
    }

    fn forward(&self, (u, v): P2) -> Option<P2> {
        match self {
            Model::Helmert { a, b, c, d } => Some((a * u - b * v + c, b * u + a * v + d)),
            Model::Affine(m) => Some((m[0] + m[1] * u + m[2] * v, m[3] + m[4] * u + m[5] * v)),
            Model::Projective { h, .. } => apply_homography(h, (u, v)),
            Model::Tps { forward, .. } => Some(forward.eval((u, v))),
        }
    }

    /// [∂x/∂u, ∂x/∂v, ∂y/∂u, ∂y/∂v] at a normalised pixel.
    fn jacobian(&self, (u, v): P2) -> Option<[f64; 4]> {
        match self {
            Model::Helmert { a, b, .. } => Some([*a, -b, *b, *a]),
            Model::Affine(m) => Some([m[1], m[2], m[4], m[5]]),
            Model::Projective { h, .. } => {
                let (x, y) = apply_homography(h, (u, v))?;
                let w = h[(2, 0)] * u + h[(2, 1)] * v + h[(2, 2)];
                Some([
                    (h[(0, 0)] - x * h[(2, 0)]) / w,
                    (h[(0, 1)] - x * h[(2, 1)]) / w,
                    (h[(1, 0)] - y * h[(2, 0)]) / w,
                    (h[(1, 1)] - y * h[(2, 1)]) / w,
                ])
            }
            Model::Tps { forward, .. } => Some(forward.jacobian((u, v))),
        }
    }

    fn inverse(&self, (x, y): P2) -> Option<P2> {
        match self {
            Model::Helmert { a, b, c, d } => {
                let (x, y, s) = (x - c, y - d, a * a + b * b);
                finite(((a * x + b * y) / s, (a * y - b * x) / s))
            }
            Model::Affine(m) => {
                let (x, y) = (x - m[0], y - m[3]);
                let det = m[1] * m[5] - m[2] * m[4];
                finite(((m[5] * x - m[2] * y) / det, (m[1] * y - m[4] * x) / det))
            }
            Model::Projective { inv, .. } => apply_homography(inv, (x, y)),
            Model::Tps { forward, reverse } => {
                let guess = reverse.as_ref()?.eval((x, y));
                finite(polish_inverse(forward, (x, y), guess))
            }
        }
    }
}

fn fit_helmert(src: &[P2], dst: &[P2]) -> Result<Model> {
    let n = src.len();
    let a = DMatrix::from_fn(2 * n, 4, |r, c| {
        let (u, v) = src[r / 2];
        let row = if r % 2 == 0 {
            [u, -v, 1.0, 0.0]
        } else {
            [v, u, 0.0, 1.0]
        };
        row[c]
    });
    let b = DMatrix::from_fn(2 * n, 1, |r, _| {
        let (x, y) = dst[r / 2];
        if r % 2 == 0 {
            x
        } else {
            y
        }
    });
    let s = least_squares(a, b, TransformKind::Helmert)?;
    Ok(Model::Helmert {
        a: s[(0, 0)],
        b: s[(1, 0)],
        c: s[(2, 0)],
        d: s[(3, 0)],
    })
}

fn fit_affine(src: &[P2], dst: &[P2]) -> Result<Model> {
    let n = src.len();
    let a = DMatrix::from_fn(n, 3, |r, c| [1.0, src[r].0, src[r].1][c]);
    let b = DMatrix::from_fn(n, 2, |r, c| if c == 0 { dst[r].0 } else { dst[r].1 });
    let s = least_squares(a, b, TransformKind::Affine)?;
    let m = [
        s[(0, 0)],
        s[(1, 0)],
        s[(2, 0)],
        s[(0, 1)],
        s[(1, 1)],
        s[(2, 1)],
    ];
    if (m[1] * m[5] - m[2] * m[4]).abs()
        <= 1e-12 * (m[1].abs() + m[2].abs()) * (m[4].abs() + m[5].abs())
    {
        return Err(FitError::Degenerate(
            "the affine fit collapses the sketch onto a line".to_owned(),
        ));
    }
    Ok(Model::Affine(m))
}

/// Least squares through the SVD, refusing rank-deficient systems rather than returning the
/// minimum-norm solution, which would silently invent the missing parameters.
fn least_squares(a: DMatrix<f64>, b: DMatrix<f64>, kind: TransformKind) -> Result<DMatrix<f64>> {
    let svd = a.svd(true, true);
    let (largest, smallest) = (svd.singular_values.max(), svd.singular_values.min());
    if !(largest.is_finite() && smallest > 1e-12 * largest) {
        return Err(FitError::Degenerate(format!(
            "the {kind} system is singular"
        )));
    }
    let s = svd
        .solve(&b, 0.0)
        .map_err(|e| FitError::Degenerate(format!("the {kind} system: {e}")))?;
    if s.iter().all(|v| v.is_finite()) {
        Ok(s)
    } else {
        Err(FitError::Degenerate(format!(
            "the {kind} solution is not finite"
        )))
    }
}

/// Direct linear transform on normalised points, then Levenberg–Marquardt on the distances in
/// the map (which is what the residuals measure; the DLT minimises an algebraic error).
fn fit_projective(src: &[P2], dst: &[P2]) -> Result<Model> {
    let n = src.len();
    // At least 9 rows, so that the SVD's V holds the null vector even for exactly 4 points.
    let mut a = DMatrix::<f64>::zeros((2 * n).max(9), 9);
    for (i, (&(u, v), &(x, y))) in src.iter().zip(dst).enumerate() {
        let rows = [
            [-u, -v, -1.0, 0.0, 0.0, 0.0, x * u, x * v, x],
            [0.0, 0.0, 0.0, -u, -v, -1.0, y * u, y * v, y],
        ];
        for (k, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                a[(2 * i + k, c)] = *value;
            }
        }
    }
    let svd = a.svd(false, true);
    let v_t = svd
        .v_t
        .ok_or_else(|| FitError::Degenerate("the projective SVD failed".to_owned()))?;
    let sv = &svd.singular_values;
    let mut order: Vec<usize> = (0..sv.len()).collect();
    order.sort_by(|&i, &j| sv[i].total_cmp(&sv[j]));
    let (smallest, second, largest) = (order[0], order[1], order[order.len() - 1]);
    if !(sv[largest].is_finite() && sv[second] > 1e-10 * sv[largest]) {
        return Err(FitError::Degenerate(
            "no unique homography fits these control points (are three of them on one line?)"
                .to_owned(),
        ));
    }
    let mut h = Matrix3::from_fn(|r, c| v_t[(smallest, 3 * r + c)]);
    // The centroid of the control points is the origin, so h₃₃ is its w; zero would put the
    // middle of the sketch on the horizon.
    if h[(2, 2)].abs() <= 1e-12 * h.norm() {
        return Err(FitError::Degenerate(
            "the fitted homography puts the middle of the sketch at infinity".to_owned(),
        ));
    }
    h /= h[(2, 2)];
    if n > 4 {
        h = refine_homography(h, src, dst);
    }
    let singular = h.determinant().abs() <= 1e-12 * h.norm().powi(3);
    let inv = h
        .try_inverse()
        .filter(|_| !singular)
        .ok_or_else(|| FitError::Degenerate("the fitted homography is singular".to_owned()))?;
    if h.iter().chain(inv.iter()).all(|v| v.is_finite()) {
        Ok(Model::Projective { h, inv })
    } else {
        Err(FitError::Degenerate(
            "the fitted homography is not finite".to_owned(),
        ))
    }
}

fn apply_homography(h: &Matrix3<f64>, (u, v): P2) -> Option<P2> {
    let terms = [h[(2, 0)] * u, h[(2, 1)] * v, h[(2, 2)]];
    let w: f64 = terms.iter().sum();
    // Relative to the size of its terms: rounding leaves ~1e-16 of them on the horizon itself.
    if w.abs() <= 1e-10 * terms.iter().map(|t| t.abs()).sum::<f64>() {
        return None;
    }
    let x = (h[(0, 0)] * u + h[(0, 1)] * v + h[(0, 2)]) / w;
    let y = (h[(1, 0)] * u + h[(1, 1)] * v + h[(1, 2)]) / w;
    finite((x, y))
}

fn refine_homography(start: Matrix3<f64>, src: &[P2], dst: &[P2]) -> Matrix3<f64> {
    type Params = SVector<f64, 8>;
    let to_matrix = |p: &Params| Matrix3::new(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], 1.0);
    let cost = |p: &Params| -> f64 {
        let h = to_matrix(p);
        src.iter()
            .zip(dst)
            .map(|(&s, &d)| match apply_homography(&h, s) {
                Some(q) => (q.0 - d.0).powi(2) + (q.1 - d.1).powi(2),
                None => f64::INFINITY,
            })
            .sum()
    };
    let mut p = Params::from_fn(|i, _| start[(i / 3, i % 3)]);
    let mut current = cost(&p);
    let mut lambda = 1e-3;
    for _ in 0..100 {
        let mut jtj = SMatrix::<f64, 8, 8>::zeros();
        let mut jtr = Params::zeros();
        for (&(u, v), &(x, y)) in src.iter().zip(dst) {
            let w = p[6] * u + p[7] * v + 1.0;
            let px = (p[0] * u + p[1] * v + p[2]) / w;
            let py = (p[3] * u + p[4] * v + p[5]) / w;
            let jx = Params::from_column_slice(&[
                u / w,
                v / w,
                1.0 / w,
                0.0,
                0.0,
                0.0,
                -px * u / w,
                -px * v / w,
            ]);
            let jy = Params::from_column_slice(&[
                0.0,
                0.0,
                0.0,
                u / w,
                v / w,
                1.0 / w,
                -py * u / w,
                -py * v / w,
            ]);
            jtj += jx * jx.transpose() + jy * jy.transpose();
            jtr += jx * (px - x) + jy * (py - y);
        }
        let mut improved = false;
        while lambda < 1e12 {
            let mut damped = jtj;
            for i in 0..8 {
                damped[(i, i)] *= 1.0 + lambda;
            }
            let Some(step) = damped.cholesky().map(|c| c.solve(&(-jtr))) else {
                lambda *= 10.0;
                continue;
            };
            let next = p + step;
            let next_cost = cost(&next);
            if next_cost < current {
                let gain = current - next_cost;
                p = next;
                current = next_cost;
                lambda = (lambda / 10.0).max(1e-12);
                improved = gain > 1e-15 * current.max(1e-300);
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    to_matrix(&p)
}

/// Thin-plate spline f(p) = a₀ + a₁ p.x + a₂ p.y + Σ wᵢ U(|p − cᵢ|), U(r) = r² ln r, with no
/// regularisation: it passes exactly through every control point.
#[derive(Debug, Clone)]
struct Tps {
    centres: Vec<P2>,
    weights: Vec<P2>,
    affine: [P2; 3],
}

/// U(r) = r² ln r = ½ r² ln r², written on r² to avoid a square root.
fn tps_kernel(dx: f64, dy: f64) -> f64 {
    let r2 = dx * dx + dy * dy;
    if r2 > 0.0 {
        0.5 * r2 * r2.ln()
    } else {
        0.0
    }
}

impl Tps {
    fn fit(src: &[P2], dst: &[P2]) -> Result<Tps> {
        let n = src.len();
        let m = n + 3;
        let mut l = DMatrix::<f64>::zeros(m, m);
        let mut rhs = DMatrix::<f64>::zeros(m, 2);
        for (i, &(ux, uy)) in src.iter().enumerate() {
            for (j, &(vx, vy)) in src.iter().enumerate() {
                l[(i, j)] = tps_kernel(ux - vx, uy - vy);
            }
            for (k, value) in [1.0, ux, uy].into_iter().enumerate() {
                l[(i, n + k)] = value;
                l[(n + k, i)] = value;
            }
            rhs[(i, 0)] = dst[i].0;
            rhs[(i, 1)] = dst[i].1;
        }
        let s = l.full_piv_lu().solve(&rhs).ok_or_else(|| {
            FitError::Degenerate("the thin-plate spline system is singular".to_owned())
        })?;
        if !s.iter().all(|v| v.is_finite()) {
            return Err(FitError::Degenerate(
                "the thin-plate spline solution is not finite".to_owned(),
            ));
        }
        Ok(Tps {
            centres: src.to_vec(),
            weights: (0..n).map(|i| (s[(i, 0)], s[(i, 1)])).collect(),
            affine: [
                (s[(n, 0)], s[(n, 1)]),
                (s[(n + 1, 0)], s[(n + 1, 1)]),
                (s[(n + 2, 0)], s[(n + 2, 1)]),
            ],
        })
    }

    fn eval(&self, (x, y): P2) -> P2 {
        let [a0, a1, a2] = self.affine;
        let mut out = (a0.0 + a1.0 * x + a2.0 * y, a0.1 + a1.1 * x + a2.1 * y);
        for (c, w) in self.centres.iter().zip(&self.weights) {
            let k = tps_kernel(x - c.0, y - c.1);
            out.0 += w.0 * k;
            out.1 += w.1 * k;
        }
        out
    }

    /// ∇U = (ln r² + 1)(p − c), which tends to 0 at the centre.
    fn jacobian(&self, (x, y): P2) -> [f64; 4] {
        let [_, a1, a2] = self.affine;
        let mut j = [a1.0, a2.0, a1.1, a2.1];
        for (c, w) in self.centres.iter().zip(&self.weights) {
            let (dx, dy) = (x - c.0, y - c.1);
            let r2 = dx * dx + dy * dy;
            if r2 > 0.0 {
                let g = r2.ln() + 1.0;
                j[0] += w.0 * g * dx;
                j[1] += w.0 * g * dy;
                j[2] += w.1 * g * dx;
                j[3] += w.1 * g * dy;
            }
        }
        j
    }
}

/// Newton's method on the forward spline from the reverse spline's estimate. The reverse spline
/// alone is exact only at the control points; this makes `to_pixel` the inverse of `to_lonlat`.
/// Steps are halved until they help, because near a fold a full step can overshoot; if nothing
/// helps, the best point so far (at worst the estimate) is kept.
fn polish_inverse(forward: &Tps, target: P2, start: P2) -> P2 {
    let error = |p: P2| {
        let f = forward.eval(p);
        (f.0 - target.0).hypot(f.1 - target.1)
    };
    let (mut best, mut best_error) = (start, error(start));
    for _ in 0..30 {
        if best_error.is_nan() || best_error <= 1e-14 {
            break;
        }
        let j = forward.jacobian(best);
        let det = det2(j);
        if !(det.is_finite() && det.abs() > 1e-12) {
            break;
        }
        let f = forward.eval(best);
        let r = (f.0 - target.0, f.1 - target.1);
        let step = (
            (j[3] * r.0 - j[1] * r.1) / det,
            (j[0] * r.1 - j[2] * r.0) / det,
        );
        let mut t = 1.0;
        let mut improved = false;
        for _ in 0..20 {
            let p = (best.0 - t * step.0, best.1 - t * step.1);
            let e = error(p);
            if e < best_error {
                (best, best_error, improved) = (p, e, true);
                break;
            }
            t *= 0.5;
        }
        if !improved {
            break;
        }
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Evaluating a kind: residuals, leave-one-out, outliers

struct Candidate {
    kind: TransformKind,
    model: Model,
    residuals: Vec<Residual>,
    rmse_m: f64,
    metres_per_pixel: f64,
    /// Warnings that only matter if this candidate is chosen.
    notes: Vec<String>,
}

impl Candidate {
    fn acceptable(&self, tolerance_m: f64) -> bool {
        self.rmse_m <= tolerance_m && !self.residuals.iter().any(|r| r.outlier)
    }
}

fn evaluate(
    kind: TransformKind,
    frame: &Frame,
    src: &[P2],
    dst: &[P2],
    tolerance_m: f64,
) -> Result<Candidate> {
    let n = src.len();
    let model = Model::fit(kind, src, dst, true)?;
    let metres_per_norm = 1.0 / frame.ms;

    let mut scale = 0.0;
    for &p in src {
        let j = model.jacobian(p).unwrap_or([f64::NAN; 4]);
        scale += det2(j).abs().sqrt() / n as f64;
    }
    // Normalised map units per normalised pixel unit → metres per pixel.
    let metres_per_pixel = scale * frame.ps / frame.ms;
    if !(metres_per_pixel.is_finite() && metres_per_pixel > 0.0) {
        return Err(FitError::Degenerate(format!(
            "the fitted {kind} transform collapses the sketch"
        )));
    }

    let mut metres = Vec::with_capacity(n);
    for (i, (&p, &q)) in src.iter().zip(dst).enumerate() {
        let m = model
            .forward(p)
            .map(|f| dist(f, q) * metres_per_norm)
            .filter(|m| m.is_finite())
            .ok_or_else(|| {
                FitError::Degenerate(format!(
                    "control point {i} is on the horizon of the fitted {kind} transform"
                ))
            })?;
        metres.push(m);
    }

    let mut notes = Vec::new();
    let loo: Vec<Option<f64>> = if n > kind.min_points() {
        (0..n)
            .map(|i| {
                let e = leave_one_out(kind, src, dst, i).map(|d| d * metres_per_norm);
                if e.is_none() {
                    notes.push(format!(
                        "no leave-one-out error for control point {i}: the others alone are \
                         degenerate for {kind}"
                    ));
                }
                e
            })
            .collect()
    } else {
        vec![None; n]
    };

    let measure: Vec<Option<f64>> = if kind == TransformKind::ThinPlateSpline {
        loo.clone()
    } else {
        metres.iter().copied().map(Some).collect()
    };
    let outliers = flag_outliers(&measure, tolerance_m);

    let sum_sq: f64 = metres.iter().map(|m| m * m).sum();
    let rmse_m = (sum_sq / n as f64).sqrt();
    if !rmse_m.is_finite() {
        return Err(FitError::Degenerate(format!(
            "the {kind} residuals are not finite"
        )));
    }
    let residuals = metres
        .iter()
        .zip(loo)
        .zip(outliers)
        .enumerate()
        .map(|(index, ((&m, leave_one_out_m), outlier))| Residual {
            index,
            metres: m,
            pixels: m / metres_per_pixel,
            outlier,
            leave_one_out_m,
        })
        .collect();
    Ok(Candidate {
        kind,
        model,
        residuals,
        rmse_m,
        metres_per_pixel,
        notes,
    })
}

/// Refit without point `i` and predict it; the distance in normalised map units.
fn leave_one_out(kind: TransformKind, src: &[P2], dst: &[P2], i: usize) -> Option<f64> {
    let others = |points: &[P2]| -> Vec<P2> {
        points
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, p)| *p)
            .collect()
    };
    let model = Model::fit(kind, &others(src), &others(dst), false).ok()?;
    let predicted = model.forward(src[i])?;
    Some(dist(predicted, dst[i])).filter(|d| d.is_finite())
}

/// A point is an outlier when its error is over 3× the median of the others' and over the
/// tolerance (which keeps exact fits, where every error is rounding, free of outliers).
fn flag_outliers(measure: &[Option<f64>], tolerance_m: f64) -> Vec<bool> {
    measure
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let Some(m) = *m else { return false };
            let mut others: Vec<f64> = measure
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .filter_map(|(_, o)| *o)
                .collect();
            if others.is_empty() {
                return false;
            }
            others.sort_by(f64::total_cmp);
            let k = others.len();
            let median = if k % 2 == 1 {
                others[k / 2]
            } else {
                (others[k / 2 - 1] + others[k / 2]) / 2.0
            };
            m > OUTLIER_FACTOR * median && m > tolerance_m
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Fold-over and the control points' hull

/// A pixel in the rectangle `min`–`max` where the Jacobian's sign differs from most of the
/// rectangle (or is undefined: a projective horizon), sampled on a grid. Helmert and affine
/// transforms have a constant Jacobian and cannot fold.
fn find_fold(model: &Model, frame: &Frame, min: P2, max: P2) -> Option<P2> {
    if matches!(model, Model::Helmert { .. } | Model::Affine(_)) {
        return None;
    }
    let last = (FOLD_SAMPLES - 1) as f64;
    let samples: Vec<(P2, Option<f64>)> = (0..FOLD_SAMPLES * FOLD_SAMPLES)
        .map(|k| {
            let (ix, iy) = ((k % FOLD_SAMPLES) as f64, (k / FOLD_SAMPLES) as f64);
            let p = (
                min.0 + (max.0 - min.0) * ix / last,
                min.1 + (max.1 - min.1) * iy / last,
            );
            let det = model
                .jacobian(frame.pixel_to_norm(p.0, p.1))
                .map(det2)
                .filter(|d| d.is_finite());
            (p, det)
        })
        .collect();
    if let Some((p, _)) = samples.iter().find(|(_, d)| d.is_none()) {
        return Some(*p);
    }
    let dets = || samples.iter().filter_map(|(p, d)| d.map(|d| (*p, d)));
    // Ignore samples where the determinant is merely rounding around zero.
    let eps = 1e-9 * dets().map(|(_, d)| d.abs()).fold(0.0, f64::max);
    let positive = dets().filter(|(_, d)| *d > eps).count();
    let negative = dets().filter(|(_, d)| *d < -eps).count();
    if positive == 0 || negative == 0 {
        return None;
    }
    let minority_sign = if positive < negative { 1.0 } else { -1.0 };
    dets()
        .find(|(_, d)| d * minority_sign > eps)
        .map(|(p, _)| p)
}

/// Andrew's monotone chain; collinear points give the two ends.
fn convex_hull(points: &[P2]) -> Vec<P2> {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: P2, a: P2, b: P2| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut hull: Vec<P2> = Vec::with_capacity(2 * pts.len());
    for pass in [pts.clone(), pts.iter().rev().copied().collect()] {
        let floor = hull.len();
        for p in pass {
            while hull.len() >= floor + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        // The last point of each chain starts the next one.
        hull.pop();
    }
    hull
}

fn hull_distance(hull: &[P2], p: P2) -> f64 {
    match hull {
        [] => f64::INFINITY,
        [only] => dist(*only, p),
        _ => {
            let edges = || hull.iter().zip(hull.iter().cycle().skip(1));
            let inside = hull.len() >= 3
                && edges()
                    .all(|(a, b)| (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0) >= 0.0);
            if inside {
                return 0.0;
            }
            edges()
                .map(|(a, b)| segment_distance(p, *a, *b))
                .fold(f64::INFINITY, f64::min)
        }
    }
}

fn segment_distance(p: P2, a: P2, b: P2) -> f64 {
    let (bx, by) = (b.0 - a.0, b.1 - a.1);
    let len_sq = bx * bx + by * by;
    let t = if len_sq > 0.0 {
        (((p.0 - a.0) * bx + (p.1 - a.1) * by) / len_sq).clamp(0.0, 1.0)
    } else {
        0.0
    };
    dist(p, (a.0 + t * bx, a.1 + t * by))
}

#[cfg(test)]
mod tests {
    /// A synthetic pixel → map mapping, and a way to spoil a control point.
    type Warp = fn(f64, f64) -> (f64, f64);
    type Spoil = fn(&mut Gcp);

    use super::*;

    // Synthetic truths near Wuhai. Each maps pixels to metres east/north of (LON0, LAT0) with the
    // pixel (500, 500) at the origin; the grids below are symmetric about that pixel, so for the
    // similarity the control points' centroid is (LON0, LAT0) and "metres" mean the same thing
    // in the truth and in the fit.
    const LON0: f64 = 106.8;
    const LAT0: f64 = 39.6;

    fn lonlat(e: f64, n: f64) -> (f64, f64) {
        (
            LON0 + e / metres_per_deg_lon(LAT0),
            LAT0 + n / METRES_PER_DEG_LAT,
        )
    }

    fn metres_apart(a: (f64, f64), b: (f64, f64)) -> f64 {
        ((a.0 - b.0) * metres_per_deg_lon(LAT0)).hypot((a.1 - b.1) * METRES_PER_DEG_LAT)
    }

    /// Centred pixel coordinates with y up.
    fn centred(px: f64, py: f64) -> (f64, f64) {
        (px - 500.0, 500.0 - py)
    }

    /// 1 m per pixel, rotated 10°.
    fn similarity(px: f64, py: f64) -> (f64, f64) {
        let (x, y) = centred(px, py);
        let (s, c) = 10f64.to_radians().sin_cos();
        lonlat(c * x - s * y, s * x + c * y)
    }

    fn shear(px: f64, py: f64) -> (f64, f64) {
        let (x, y) = centred(px, py);
        lonlat(1.1 * x + 0.35 * y + 12.0, -0.05 * x + 0.9 * y - 7.0)
    }

    fn perspective(px: f64, py: f64) -> (f64, f64) {
        let (x, y) = centred(px, py);
        let w = 1.0 + 2.5e-4 * x + 1.5e-4 * y;
        lonlat(
            (0.98 * x - 0.17 * y + 5.0) / w,
            (0.17 * x + 0.98 * y - 3.0) / w,
        )
    }

    /// Smooth but nothing like a projective transform: a hand-drawn map's wobble.
    fn warp(px: f64, py: f64) -> (f64, f64) {
        let (x, y) = centred(px, py);
        lonlat(x + 25.0 * (y / 150.0).sin(), y + 25.0 * (x / 170.0).sin())
    }

    /// An n × n grid of pixels from 100 to 900, symmetric about (500, 500).
    fn grid(n: usize) -> Vec<(f64, f64)> {
        let step = 800.0 / (n - 1) as f64;
        (0..n * n)
            .map(|k| (100.0 + step * (k % n) as f64, 100.0 + step * (k / n) as f64))
            .collect()
    }

    fn gcps(pixels: &[(f64, f64)], truth: fn(f64, f64) -> (f64, f64)) -> Vec<Gcp> {
        pixels
            .iter()
            .map(|&(px, py)| {
                let (lon, lat) = truth(px, py);
                Gcp { px, py, lon, lat }
            })
            .collect()
    }

    /// Every 100 px over the whole 1000 × 1000 sketch, including outside the control points.
    fn samples() -> impl Iterator<Item = (f64, f64)> {
        (0..=10).flat_map(|i| (0..=10).map(move |j| (100.0 * i as f64, 100.0 * j as f64)))
    }

    fn worst_error_m(fit: &Fit, truth: fn(f64, f64) -> (f64, f64)) -> f64 {
        samples()
            .map(|(px, py)| metres_apart(fit.to_lonlat(px, py), truth(px, py)))
            .fold(0.0, f64::max)
    }

    fn fit_ok(gcps: &[Gcp], requested: Requested, tolerance_m: f64) -> Fit {
        match fit(gcps, requested, tolerance_m) {
            Ok(fit) => fit,
            Err(e) => panic!("fit failed: {e}"),
        }
    }

    fn degenerate_message(result: Result<Fit>) -> String {
        match result {
            Err(FitError::Degenerate(message)) => message,
            other => panic!("expected Degenerate, got {other:?}"),
        }
    }

    #[test]
    fn recovers_a_similarity() {
        let fit = fit_ok(
            &gcps(&grid(3), similarity),
            Requested::Kind(TransformKind::Helmert),
            1.0,
        );
        let report = fit.report();
        assert!(worst_error_m(&fit, similarity) < 0.01);
        assert!(report.rmse_m < 1e-6, "{}", report.rmse_m);
        assert!((report.metres_per_pixel - 1.0).abs() < 1e-6);
        assert_eq!(report.dof, 7);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn recovers_a_similarity_from_two_points() {
        let fit = fit_ok(
            &gcps(&[(100.0, 100.0), (900.0, 900.0)], similarity),
            Requested::Kind(TransformKind::Helmert),
            1.0,
        );
        assert!(worst_error_m(&fit, similarity) < 0.01);
        assert_eq!(fit.report().dof, 0);
        assert_eq!(fit.report().rmse_per_dof_m, None);
        // Nothing to check it against: say so.
        assert!(fit
            .report()
            .warnings
            .iter()
            .any(|w| w.contains("cannot be checked")));
    }

    #[test]
    fn recovers_an_affine() {
        let fit = fit_ok(
            &gcps(&grid(3), shear),
            Requested::Kind(TransformKind::Affine),
            1.0,
        );
        assert!(worst_error_m(&fit, shear) < 0.01);
        assert!(fit.report().rmse_m < 1e-6);
    }

    #[test]
    fn recovers_a_homography_from_four_points_and_from_many() {
        let corners = [
            (100.0, 100.0),
            (900.0, 100.0),
            (900.0, 900.0),
            (100.0, 900.0),
        ];
        for pixels in [corners.to_vec(), grid(5)] {
            let fit = fit_ok(
                &gcps(&pixels, perspective),
                Requested::Kind(TransformKind::Projective),
                1.0,
            );
            // ~1e-6 relative over a sketch about 1 km across.
            let worst = worst_error_m(&fit, perspective);
            assert!(worst < 1e-3, "{} points: {worst} m", pixels.len());
        }
    }

    #[test]
    fn refinement_reduces_the_geometric_error_of_the_dlt() {
        // With noise the DLT's algebraic optimum is not the least-squares one in metres.
        let mut points = gcps(&grid(4), perspective);
        for (k, g) in points.iter_mut().enumerate() {
            let (e, n) = ((k as f64 * 1.7).sin() * 2.0, (k as f64 * 2.3).cos() * 2.0);
            g.lon += e / metres_per_deg_lon(LAT0);
            g.lat += n / METRES_PER_DEG_LAT;
        }
        let frame = Frame::new(&points).map_err(|e| e.to_string());
        let Ok(frame) = frame else {
            panic!("{frame:?}")
        };
        let src: Vec<P2> = points
            .iter()
            .map(|g| frame.pixel_to_norm(g.px, g.py))
            .collect();
        let dst: Vec<P2> = points
            .iter()
            .map(|g| frame.lonlat_to_norm(g.lon, g.lat))
            .collect();
        let sse = |h: &Matrix3<f64>| -> f64 {
            src.iter()
                .zip(&dst)
                .map(|(&s, &d)| {
                    apply_homography(h, s).map_or(f64::INFINITY, |q| dist(q, d).powi(2))
                })
                .sum()
        };
        // The four corners of the 4 × 4 grid.
        let corners = |points: &[P2]| [points[0], points[3], points[12], points[15]];
        let Ok(Model::Projective { h: refined, .. }) = fit_projective(&src, &dst) else {
            panic!("projective fit failed")
        };
        let Ok(Model::Projective { h: dlt, .. }) = fit_projective(&corners(&src), &corners(&dst))
        else {
            panic!("projective fit failed")
        };
        // The 4-point DLT is exact on its own points, worse on the rest than the refined fit.
        assert!(sse(&refined) < sse(&dlt));
    }

    #[test]
    fn thin_plate_spline_is_exact_at_control_points_and_smooth_between() {
        let fit = fit_ok(
            &gcps(&grid(5), warp),
            Requested::Kind(TransformKind::ThinPlateSpline),
            1.0,
        );
        let report = fit.report();
        assert!(report.residuals.iter().all(|r| r.metres < 1e-6));
        // Between the control points (200 px apart) it follows the 25 m wobble to a few metres,
        // where the best affine is off by tens.
        let affine = fit_ok(
            &gcps(&grid(5), warp),
            Requested::Kind(TransformKind::Affine),
            1.0,
        );
        let (mut tps_sum, mut affine_sum) = (0.0, 0.0);
        for (px, py) in [
            (200.0, 200.0),
            (400.0, 600.0),
            (600.0, 400.0),
            (800.0, 800.0),
        ] {
            let e = metres_apart(fit.to_lonlat(px, py), warp(px, py));
            assert!(e < 3.0, "({px}, {py}): {e} m");
            tps_sum += e;
            affine_sum += metres_apart(affine.to_lonlat(px, py), warp(px, py));
        }
        assert!(tps_sum < 0.2 * affine_sum, "{tps_sum} vs {affine_sum}");
        // Smooth: along a row the position changes by about a metre per pixel with no jumps.
        let row: Vec<(f64, f64)> = (0..=80)
            .map(|i| fit.to_lonlat(100.0 + 10.0 * i as f64, 333.0))
            .collect();
        for w in row.windows(3) {
            let second = metres_apart(((w[0].0 + w[2].0) / 2.0, (w[0].1 + w[2].1) / 2.0), w[1]);
            assert!(second < 0.1, "second difference {second} m");
        }
    }

    #[test]
    fn thin_plate_spline_on_three_points_is_the_affine() {
        let pixels = [(100.0, 100.0), (900.0, 200.0), (400.0, 900.0)];
        let tps = fit_ok(
            &gcps(&pixels, shear),
            Requested::Kind(TransformKind::ThinPlateSpline),
            1.0,
        );
        assert!(worst_error_m(&tps, shear) < 0.01);
    }

    #[test]
    fn auto_chooses_the_simplest_kind_that_fits() {
        let cases: [(Warp, TransformKind); 4] = [
            (similarity, TransformKind::Helmert),
            (shear, TransformKind::Affine),
            (perspective, TransformKind::Projective),
            (warp, TransformKind::ThinPlateSpline),
        ];
        for (truth, expected) in cases {
            let fit = fit_ok(&gcps(&grid(4), truth), Requested::Auto, 1.0);
            assert_eq!(fit.kind(), expected);
            assert_eq!(fit.report().requested, Requested::Auto);
            let says_tps = fit
                .report()
                .warnings
                .iter()
                .any(|w| w.contains("thin-plate spline"));
            assert_eq!(
                says_tps,
                expected == TransformKind::ThinPlateSpline,
                "{:?}",
                fit.report().warnings
            );
        }
        // With two points there is only helmert.
        let two = fit_ok(
            &gcps(&[(0.0, 0.0), (10.0, 0.0)], warp),
            Requested::Auto,
            1.0,
        );
        assert_eq!(two.kind(), TransformKind::Helmert);
        assert!(!two.report().warnings.iter().any(|w| w.contains("one line")));
    }

    #[test]
    fn auto_on_collinear_points_uses_helmert_and_says_why() {
        let pixels = [(100.0, 100.0), (500.0, 500.0), (900.0, 900.0)];
        let fit = fit_ok(&gcps(&pixels, similarity), Requested::Auto, 1.0);
        assert_eq!(fit.kind(), TransformKind::Helmert);
        assert!(fit.report().warnings.iter().any(|w| w.contains("one line")));
        assert!(worst_error_m(&fit, similarity) < 0.01);
    }

    #[test]
    fn too_few_points_for_each_kind() {
        let pixels = [
            (100.0, 100.0),
            (900.0, 100.0),
            (900.0, 900.0),
            (100.0, 900.0),
        ];
        let all = gcps(&pixels, similarity);
        for kind in TransformKind::ALL {
            let got = kind.min_points() - 1;
            match fit(&all[..got], Requested::Kind(kind), 1.0) {
                Err(FitError::TooFewPoints {
                    kind: name,
                    need,
                    got: g,
                }) => {
                    assert_eq!((name, need, g), (kind.as_str(), kind.min_points(), got));
                }
                other => panic!("{kind}: {other:?}"),
            }
        }
        assert!(matches!(
            fit(&all[..1], Requested::Auto, 1.0),
            Err(FitError::TooFewPoints {
                need: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            fit(&[], Requested::Auto, 1.0),
            Err(FitError::TooFewPoints { got: 0, .. })
        ));
        let message = fit(&all[..3], Requested::Kind(TransformKind::Projective), 1.0)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err("projective needs at least 4 control points, got 3".to_owned())
        );
    }

    #[test]
    fn coincident_points_are_degenerate() {
        let mut points = gcps(&grid(3), similarity);
        // Same pixel, different position.
        let mut same_pixel = points.clone();
        same_pixel[4].px = same_pixel[1].px;
        same_pixel[4].py = same_pixel[1].py;
        let message = degenerate_message(fit(&same_pixel, Requested::Auto, 1.0));
        assert!(
            message.contains("1 and 4") && message.contains("pixel"),
            "{message}"
        );
        // Same position, different pixel.
        points[7].lon = points[2].lon;
        points[7].lat = points[2].lat;
        let message = degenerate_message(fit(&points, Requested::Kind(TransformKind::Affine), 1.0));
        assert!(
            message.contains("2 and 7") && message.contains("position"),
            "{message}"
        );
        // Helmert's minimum of two, the same point twice.
        let twice = gcps(&[(300.0, 300.0), (300.0, 300.0)], similarity);
        let message = degenerate_message(fit(&twice, Requested::Kind(TransformKind::Helmert), 1.0));
        assert!(message.contains("0 and 1"), "{message}");
    }

    #[test]
    fn collinear_points_are_degenerate_except_for_helmert() {
        let line = [
            (100.0, 100.0),
            (300.0, 300.0),
            (500.0, 500.0),
            (700.0, 700.0),
            (900.0, 900.0),
        ];
        let points = gcps(&line, similarity);
        for kind in [
            TransformKind::Affine,
            TransformKind::Projective,
            TransformKind::ThinPlateSpline,
        ] {
            let message = degenerate_message(fit(&points, Requested::Kind(kind), 1.0));
            assert!(message.contains("one line in the sketch"), "{message}");
        }
        assert!(fit(&points, Requested::Kind(TransformKind::Helmert), 1.0).is_ok());
        // Spread in the sketch, but all on one road on the map.
        let on_road = gcps(&grid(3), |px, py| {
            lonlat(px + 3.7 * py, 0.5 * (px + 3.7 * py))
        });
        let message =
            degenerate_message(fit(&on_road, Requested::Kind(TransformKind::Affine), 1.0));
        assert!(message.contains("one line in the map"), "{message}");
        // Four points with three on a line admit no unique homography.
        let three_on_a_line = [
            (100.0, 100.0),
            (500.0, 100.0),
            (900.0, 100.0),
            (500.0, 900.0),
        ];
        let message = degenerate_message(fit(
            &gcps(&three_on_a_line, perspective),
            Requested::Kind(TransformKind::Projective),
            1.0,
        ));
        assert!(message.contains("homography"), "{message}");
    }

    #[test]
    fn nearly_collinear_and_nearly_repeated_points_warn() {
        let thin = [
            (100.0, 100.0),
            (500.0, 110.0),
            (900.0, 100.0),
            (300.0, 95.0),
            (700.0, 104.0),
        ];
        let fit = fit_ok(
            &gcps(&thin, shear),
            Requested::Kind(TransformKind::Affine),
            1.0,
        );
        assert!(fit
            .report()
            .warnings
            .iter()
            .any(|w| w.contains("nearly on one line in the sketch")));

        let mut pixels = grid(3);
        pixels.push((100.5, 100.5));
        let fit = fit_ok(&gcps(&pixels, similarity), Requested::Auto, 1.0);
        assert!(
            fit.report()
                .warnings
                .iter()
                .any(|w| w.contains("0 and 9") && w.contains("nearly the same pixel")),
            "{:?}",
            fit.report().warnings
        );
    }

    #[test]
    fn non_finite_or_out_of_range_is_a_bad_point() {
        let good = gcps(&grid(2), similarity);
        let cases: [(usize, Spoil); 5] = [
            (1, |g| g.px = f64::NAN),
            (2, |g| g.py = f64::INFINITY),
            (0, |g| g.lat = f64::NAN),
            (3, |g| g.lon = 200.0),
            (1, |g| g.lat = -91.0),
        ];
        for (index, spoil) in cases {
            let mut points = good.clone();
            spoil(&mut points[index]);
            match fit(&points, Requested::Auto, 1.0) {
                Err(FitError::BadPoint { index: i, .. }) => assert_eq!(i, index),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_displaced_control_point_is_an_outlier() {
        let mut points = gcps(&grid(4), similarity);
        points[5].lon += 50.0 / metres_per_deg_lon(LAT0);
        for kind in [
            TransformKind::Helmert,
            TransformKind::Affine,
            TransformKind::Projective,
        ] {
            let fit = fit_ok(&points, Requested::Kind(kind), 1.0);
            let flagged: Vec<usize> = fit
                .report()
                .residuals
                .iter()
                .filter(|r| r.outlier)
                .map(|r| r.index)
                .collect();
            assert_eq!(flagged, [5], "{kind}");
            assert!(fit
                .report()
                .warnings
                .iter()
                .any(|w| w.contains("control point 5 looks like an outlier")));
            // Its leave-one-out error is the displacement itself: the others agree on the truth.
            let loo = fit.report().residuals[5]
                .leave_one_out_m
                .unwrap_or(f64::NAN);
            assert!((loo - 50.0).abs() < 1.0, "{kind}: {loo}");
        }
        // Auto cannot accept any simple kind, and the spline flags it by leave-one-out.
        let fit = fit_ok(&points, Requested::Auto, 1.0);
        assert_eq!(fit.kind(), TransformKind::ThinPlateSpline);
        assert!(fit.report().residuals[5].outlier);
        assert!(fit
            .report()
            .warnings
            .iter()
            .any(|w| w.contains("control point 5 is an outlier under every simpler transform")));
        // Below the tolerance nothing is an outlier.
        let fit = fit_ok(&points, Requested::Kind(TransformKind::Helmert), 100.0);
        assert!(fit.report().residuals.iter().all(|r| !r.outlier));
    }

    #[test]
    fn leave_one_out_errors_are_finite_when_there_are_spare_points() {
        for kind in TransformKind::ALL {
            let fit = fit_ok(&gcps(&grid(3), warp), Requested::Kind(kind), 1.0);
            for r in &fit.report().residuals {
                let loo = r.leave_one_out_m.unwrap_or(f64::NAN);
                assert!(loo.is_finite() && loo >= 0.0, "{kind}: {r:?}");
                assert!(r.metres.is_finite() && r.pixels.is_finite());
            }
            let report = fit.report();
            assert!(report.rmse_m.is_finite() && report.rmse_px.is_finite());
            assert!(report.rmse_per_dof_m.is_some_and(f64::is_finite));
        }
        // Exactly the minimum: nothing to leave out.
        let corners = [
            (100.0, 100.0),
            (900.0, 100.0),
            (900.0, 900.0),
            (100.0, 900.0),
        ];
        let fit = fit_ok(
            &gcps(&corners, perspective),
            Requested::Kind(TransformKind::Projective),
            1.0,
        );
        assert!(fit
            .report()
            .residuals
            .iter()
            .all(|r| r.leave_one_out_m.is_none()));
    }

    #[test]
    fn to_pixel_inverts_to_lonlat() {
        let cases: [(Warp, TransformKind); 3] = [
            (similarity, TransformKind::Helmert),
            (shear, TransformKind::Affine),
            (perspective, TransformKind::Projective),
        ];
        for (truth, kind) in cases {
            let fit = fit_ok(&gcps(&grid(3), truth), Requested::Kind(kind), 1.0);
            for (px, py) in samples() {
                let (lon, lat) = fit.to_lonlat(px, py);
                let back = fit.to_pixel(lon, lat).unwrap_or((f64::NAN, f64::NAN));
                assert!(
                    dist(back, (px, py)) < 1e-6,
                    "{kind}: ({px}, {py}) → {back:?}"
                );
            }
        }
        let fit = fit_ok(
            &gcps(&grid(5), warp),
            Requested::Kind(TransformKind::ThinPlateSpline),
            1.0,
        );
        for (gx, gy) in grid(5) {
            for (dx, dy) in [(0.0, 0.0), (3.0, -2.0), (-5.0, 4.0)] {
                let (px, py) = (gx + dx, gy + dy);
                let (lon, lat) = fit.to_lonlat(px, py);
                let back = fit.to_pixel(lon, lat).unwrap_or((f64::NAN, f64::NAN));
                assert!(dist(back, (px, py)) < 0.05, "({px}, {py}) → {back:?}");
            }
        }
    }

    #[test]
    fn the_reverse_spline_alone_is_exact_at_and_close_near_the_control_points() {
        // GDAL's inverse, before Newton's polish.
        let points = gcps(&grid(5), warp);
        let fit = fit_ok(
            &points,
            Requested::Kind(TransformKind::ThinPlateSpline),
            1.0,
        );
        let Model::Tps {
            reverse: Some(reverse),
            ..
        } = &fit.model
        else {
            panic!("not a spline")
        };
        let raw = |lon: f64, lat: f64| {
            fit.frame
                .norm_to_pixel(reverse.eval(fit.frame.lonlat_to_norm(lon, lat)))
        };
        for g in &points {
            assert!(dist(raw(g.lon, g.lat), (g.px, g.py)) < 1e-6);
            let (px, py) = (g.px + 2.0, g.py - 1.0);
            let (lon, lat) = fit.to_lonlat(px, py);
            let back = raw(lon, lat);
            assert!(dist(back, (px, py)) < 0.05, "({px}, {py}) → {back:?}");
        }
    }

    #[test]
    fn crossed_control_points_fold_over() {
        // A square and its centre with two adjacent corners' positions swapped.
        let pixels = [
            (100.0, 100.0),
            (900.0, 100.0),
            (900.0, 900.0),
            (100.0, 900.0),
            (500.0, 500.0),
        ];
        let mut points = gcps(&pixels, similarity);
        let (a, b) = (
            (points[0].lon, points[0].lat),
            (points[1].lon, points[1].lat),
        );
        (points[0].lon, points[0].lat, points[1].lon, points[1].lat) = (b.0, b.1, a.0, a.1);
        let fit = fit_ok(
            &points,
            Requested::Kind(TransformKind::ThinPlateSpline),
            1.0,
        );
        assert!(
            fit.report()
                .warnings
                .iter()
                .any(|w| w.contains("folds over near pixel")),
            "{:?}",
            fit.report().warnings
        );
        // A clean spline does not.
        let clean = fit_ok(
            &gcps(&grid(5), warp),
            Requested::Kind(TransformKind::ThinPlateSpline),
            1.0,
        );
        assert!(!clean.report().warnings.iter().any(|w| w.contains("folds")));
        assert!(
            clean.image_warnings(1000, 1000).is_empty(),
            "{:?}",
            clean.image_warnings(1000, 1000)
        );
    }

    #[test]
    fn a_mirrored_sketch_is_noticed() {
        let fit = fit_ok(
            &gcps(&grid(3), |px, py| similarity(1000.0 - px, py)),
            Requested::Auto,
            1.0,
        );
        assert_eq!(fit.kind(), TransformKind::Affine);
        assert!(fit.report().warnings.iter().any(|w| w.contains("mirrors")));
    }

    #[test]
    fn the_projective_horizon_is_undefined_not_nan() {
        let fit = fit_ok(
            &gcps(&grid(3), perspective),
            Requested::Kind(TransformKind::Projective),
            1.0,
        );
        // w = 1 + 2.5e-4 x + 1.5e-4 y vanishes at x = -4000, y = 0: pixel (-3500, 500),
        // and crosses the image's left edge near pixel (0, 6333).
        assert_eq!(fit.try_to_lonlat(-3500.0, 500.0), None);
        assert!(fit.to_lonlat(-3500.0, 500.0).0.is_nan());
        // Far out, the horizon runs through the rectangle and the image check says so.
        let far = fit.image_warnings(8000, 8000);
        assert!(far.iter().any(|w| w.contains("folds over")), "{far:?}");
    }

    #[test]
    fn image_warnings_flag_extrapolation() {
        let small = [
            (450.0, 450.0),
            (550.0, 450.0),
            (550.0, 550.0),
            (450.0, 550.0),
            (500.0, 520.0),
        ];
        let fit = fit_ok(&gcps(&small, similarity), Requested::Auto, 1.0);
        assert_eq!(fit.outside_hull_px(500.0, 500.0), 0.0);
        assert!((fit.outside_hull_px(600.0, 500.0) - 50.0).abs() < 1e-9);
        let warnings = fit.image_warnings(1000, 1000);
        assert!(
            warnings.iter().any(|w| w.contains("extrapolated")),
            "{warnings:?}"
        );
        let wide = fit_ok(&gcps(&grid(3), similarity), Requested::Auto, 1.0);
        assert!(wide.image_warnings(1000, 1000).is_empty());
    }

    #[test]
    fn kinds_and_requests_parse_and_serialise() {
        for kind in TransformKind::ALL {
            assert_eq!(kind.as_str().parse::<TransformKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_string(&kind).ok(),
                Some(format!("\"{kind}\""))
            );
        }
        assert_eq!("tps".parse(), Ok(TransformKind::ThinPlateSpline));
        assert_eq!(" Affine ".parse(), Ok(TransformKind::Affine));
        assert!("auto".parse::<TransformKind>().is_err());
        assert_eq!("auto".parse(), Ok(Requested::Auto));
        assert_eq!(
            "tps".parse(),
            Ok(Requested::Kind(TransformKind::ThinPlateSpline))
        );
        assert!("similarity".parse::<Requested>().is_err());
        assert_eq!(Requested::default(), Requested::Auto);
        assert_eq!(
            TransformKind::ALL.map(TransformKind::min_points),
            [2, 3, 4, 3]
        );
    }

    #[test]
    fn report_serialises_without_absent_leave_one_out() {
        let two = fit_ok(
            &gcps(&[(0.0, 0.0), (100.0, 0.0)], similarity),
            Requested::Auto,
            1.0,
        );
        let json = serde_json::to_value(two.report()).unwrap_or_default();
        assert_eq!(json["kind"], "helmert");
        assert_eq!(json["requested"], "auto");
        assert!(json["residuals"][0].get("leave_one_out_m").is_none());
        let many = fit_ok(
            &gcps(&grid(3), similarity),
            Requested::Kind(TransformKind::Affine),
            1.0,
        );
        let json = serde_json::to_value(many.report()).unwrap_or_default();
        assert_eq!(json["requested"], serde_json::json!({"kind": "affine"}));
        assert!(json["residuals"][0]["leave_one_out_m"].is_number());
    }

    #[test]
    fn a_nan_tolerance_is_replaced_and_reported() {
        let fit = fit_ok(&gcps(&grid(3), similarity), Requested::Auto, f64::NAN);
        assert_eq!(fit.kind(), TransformKind::Helmert);
        assert!(fit
            .report()
            .warnings
            .iter()
            .any(|w| w.contains("tolerance")));
    }

    #[test]
    fn the_module_example_runs() {
        // The same as the `//!` example, so `cargo test --lib` checks it too.
        let corner = |px: f64, py: f64| Gcp {
            px,
            py,
            lon: 106.8 + (px - 500.0) / metres_per_deg_lon(39.6),
            lat: 39.6 - (py - 400.0) / METRES_PER_DEG_LAT,
        };
        let gcps = [
            corner(0.0, 0.0),
            corner(1000.0, 0.0),
            corner(1000.0, 800.0),
            corner(0.0, 800.0),
        ];
        let fit = fit_ok(&gcps, Requested::Auto, 1.0);
        assert_eq!(fit.kind(), TransformKind::Helmert);
        assert!((fit.report().metres_per_pixel - 1.0).abs() < 1e-6);
        let (lon, lat) = fit.to_lonlat(250.0, 100.0);
        let back = fit.to_pixel(lon, lat).unwrap_or((f64::NAN, f64::NAN));
        assert!(dist(back, (250.0, 100.0)) < 1e-6);
    }
}
