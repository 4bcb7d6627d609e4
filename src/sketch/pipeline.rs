//! The whole sketch flow on one image: fit the control points, vectorise, map every face to
//! WGS-84. Used by `gridwatch sketch`, the HTTP API and the accuracy benchmark.

use super::transform::{fit, Fit, FitError, Gcp, Requested};
use super::vectorise::{to_wgs84, vectorise, Face, SketchProblem, VectoriseOptions};
use geo::{GeodesicArea, MultiPolygon};
use image::DynamicImage;
use serde_json::{json, Value};

/// A candidate polygon in WGS-84.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub face: Face,
    pub geom: MultiPolygon<f64>,
    pub area_m2: f64,
}

pub struct Outcome {
    pub fit: Fit,
    /// fit warnings that depend on the image (extrapolation, fold-over across the image)
    pub image_warnings: Vec<String>,
    pub candidates: Vec<Candidate>,
    pub problems: Vec<SketchProblem>,
    pub scale: f64,
}

/// Fits `gcps`, vectorises `image` and maps the faces to WGS-84.
pub fn run(
    image: &DynamicImage,
    gcps: &[Gcp],
    requested: Requested,
    tolerance_m: f64,
    opts: &VectoriseOptions,
) -> Result<Outcome, FitError> {
    let fitted = fit(gcps, requested, tolerance_m)?;
    let image_warnings = fitted.image_warnings(image.width(), image.height());
    let v = vectorise(image, opts);
    let candidates = v
        .faces
        .into_iter()
        .map(|face| {
            let geom = to_wgs84(&face, |x, y| fitted.to_lonlat(x, y));
            let area_m2 = geom.geodesic_area_unsigned();
            Candidate {
                face,
                geom,
                area_m2,
            }
        })
        .collect();
    Ok(Outcome {
        fit: fitted,
        image_warnings,
        candidates,
        problems: v.problems,
        scale: v.scale,
    })
}

/// Candidates as a GeoJSON FeatureCollection (WGS-84), with the fit report and problems.
pub fn to_geojson(o: &Outcome) -> Value {
    let features: Vec<Value> = o
        .candidates
        .iter()
        .map(|c| {
            json!({
                "type": "Feature",
                "properties": {
                    "face": c.face.id,
                    "confidence": c.face.confidence,
                    "area_m2": (c.area_m2 * 10.0).round() / 10.0,
                    "problems": c.face.problems,
                },
                "geometry": geojson::Geometry::new(geojson::GeometryValue::from(&c.geom)),
            })
        })
        .collect();
    json!({
        "type": "FeatureCollection",
        "features": features,
        "fit": o.fit.report(),
        "fit_warnings": o.image_warnings,
        "problems": o.problems,
    })
}
