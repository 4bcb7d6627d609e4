//! Accuracy of the sketch flow on the generated samples (geodata/sketches): each sample is
//! georeferenced with its control points, vectorised, and its polygons compared with the
//! registry polygons it was drawn from.

use super::pipeline;
use super::samples::{demo_samples, evaluate, Accuracy, SPECS};
use super::transform::Requested;
use super::vectorise::VectoriseOptions;
use crate::coverage::clean::{clean, CleanOptions};
use crate::coverage::validate::{validate, ValidateOptions};
use geo::MultiPolygon;
use image::DynamicImage;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct SampleResult {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub transform: String,
    pub accuracy: Accuracy,
    /// fit + vectorise + transform, milliseconds
    pub millis: f64,
    /// coverage validation + cleaning of the candidates against the drawn community, milliseconds
    pub clean_millis: f64,
    /// fixes the cleaning made
    pub fixes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub samples: Vec<SampleResult>,
    /// over all drawn areas of all samples
    pub mean_iou: f64,
    pub drawn: usize,
    pub recovered: usize,
}

/// Runs every sample through the pipeline with `opts`.
pub fn evaluate_samples(opts: &VectoriseOptions) -> anyhow::Result<Summary> {
    let parents = demo_polygons("community")?;
    let mut results = Vec::new();
    for (sample, spec) in demo_samples()?.into_iter().zip(SPECS) {
        let image = DynamicImage::ImageRgb8(sample.image.clone());
        let t = Instant::now();
        let outcome = pipeline::run(&image, &sample.gcps, Requested::Auto, 5.0, opts)?;
        let millis = t.elapsed().as_secs_f64() * 1000.0;
        let found: Vec<_> = outcome.candidates.iter().map(|c| c.geom.clone()).collect();
        // The cleaning a planner's review starts from: snap, resolve overlaps and narrow gaps,
        // clip to the community the sketch redraws.
        let parent = parents
            .iter()
            .find(|(code, _)| code == spec.community)
            .map(|(_, g)| g);
        let named: Vec<(String, MultiPolygon<f64>)> = found
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("face-{i:03}"), g.clone()))
            .collect();
        let t = Instant::now();
        let _issues = validate(&named, parent, &ValidateOptions::default());
        let cleaned = clean(&named, parent, &CleanOptions::default());
        let clean_millis = t.elapsed().as_secs_f64() * 1000.0;
        results.push(SampleResult {
            name: sample.name.clone(),
            width: sample.width,
            height: sample.height,
            transform: outcome.fit.kind().as_str().to_owned(),
            accuracy: evaluate(&found, &sample.truth),
            millis,
            clean_millis,
            fixes: cleaned.fixes.len(),
        });
    }
    let drawn: usize = results.iter().map(|r| r.accuracy.drawn).sum();
    let recovered: usize = results.iter().map(|r| r.accuracy.recovered).sum();
    let iou_sum: f64 = results
        .iter()
        .map(|r| r.accuracy.mean_iou * r.accuracy.drawn as f64)
        .sum();
    Ok(Summary {
        mean_iou: if drawn == 0 {
            0.0
        } else {
            iou_sum / drawn as f64
        },
        drawn,
        recovered,
        samples: results,
    })
}

/// The current demo polygons of one level, by code.
pub fn demo_polygons(level: &str) -> anyhow::Result<Vec<(String, MultiPolygon<f64>)>> {
    let doc: serde_json::Value = serde_json::from_str(crate::demo::REGIONS_GEOJSON)?;
    let mut out = Vec::new();
    for f in doc["features"].as_array().into_iter().flatten() {
        if f["properties"]["level"] != level {
            continue;
        }
        let code = f["properties"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let geom =
            crate::spatial::geojson::parse_geometry(&f["geometry"], crate::domain::Crs::Wgs84)
                .map_err(|e| anyhow::anyhow!("{code}: {e}"))?;
        out.push((code, geom));
    }
    Ok(out)
}

/// Validates and cleans the 704 demo grids, community by community; returns (milliseconds,
/// issues found, fixes made).
pub fn clean_demo_coverage() -> anyhow::Result<(f64, usize, usize)> {
    let grids = demo_polygons("grid")?;
    let communities = demo_polygons("community")?;
    let t = Instant::now();
    let (mut issues, mut fixes) = (0, 0);
    for (code, parent) in &communities {
        let children: Vec<_> = grids
            .iter()
            .filter(|(g, _)| g.starts_with(code.as_str()))
            .cloned()
            .collect();
        issues += validate(&children, Some(parent), &ValidateOptions::default()).len();
        fixes += clean(&children, Some(parent), &CleanOptions::default())
            .fixes
            .len();
    }
    Ok((t.elapsed().as_secs_f64() * 1000.0, issues, fixes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's targets, on all samples: mean IoU ≥ 0.90 and ≥ 95 % of drawn areas found.
    #[test]
    fn meets_the_accuracy_targets_on_the_samples() {
        let s = evaluate_samples(&VectoriseOptions::default()).unwrap();
        for r in &s.samples {
            println!(
                "{:<28} {}×{} {:<10} drawn {:>2} found {:>2} recovered {:>2} mean IoU {:.3}",
                r.name,
                r.width,
                r.height,
                r.transform,
                r.accuracy.drawn,
                r.accuracy.found,
                r.accuracy.recovered,
                r.accuracy.mean_iou
            );
        }
        println!(
            "all: mean IoU {:.3}, recovered {}/{}",
            s.mean_iou, s.recovered, s.drawn
        );
        assert!(s.mean_iou >= 0.90, "mean IoU {}", s.mean_iou);
        assert!(
            s.recovered as f64 >= 0.95 * s.drawn as f64,
            "{}/{}",
            s.recovered,
            s.drawn
        );
    }
}
