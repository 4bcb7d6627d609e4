//! The Wuhai demo: real district boundaries with generated (synthetic) streets, communities,
//! grids and micro-grids, and a year of generated incidents. The data files in `geodata/` are
//! embedded in the binary so `gridwatch serve --demo` works from any directory; they are
//! rebuilt by `gridwatch demo generate` (see [`generate`]).

pub mod generate;

use crate::domain::Crs;
use crate::workflow::intake::ReportInput;
use crate::workflow::{Gridwatch, WorkflowError};
use chrono::{DateTime, Utc};

/// The demo regions (WGS-84 GeoJSON FeatureCollection).
pub const REGIONS_GEOJSON: &str = include_str!("../../geodata/wuhai-regions.geojson");
/// The demo incidents (CSV: reported_at,category,lon,lat,crs,source,description).
pub const INCIDENTS_CSV: &str = include_str!("../../geodata/demo-incidents.csv");
/// Marker in the `meta` table; bump when the demo incidents change.
pub const DEMO_MARKER: &str = "demo_incidents_v1";

/// What `load` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLoad {
    pub regions_created: usize,
    pub incidents_loaded: usize,
}

/// Parses the incidents CSV into report inputs.
pub fn parse_incidents(csv: &str) -> Result<Vec<ReportInput>, String> {
    let mut out = Vec::new();
    for (n, line) in csv.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.splitn(7, ',').collect();
        let [at, category, lon, lat, crs, source, description] = cols[..] else {
            return Err(format!("line {}: expected 7 columns", n + 1));
        };
        let num = |s: &str, what: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("line {}: bad {what} {s:?}", n + 1))
        };
        let reported_at = DateTime::parse_from_rfc3339(at)
            .map_err(|e| format!("line {}: bad time {at:?}: {e}", n + 1))?
            .with_timezone(&Utc);
        out.push(ReportInput {
            category: category.to_owned(),
            lon: num(lon, "lon")?,
            lat: num(lat, "lat")?,
            crs: Some(crs.to_owned()),
            description: Some(description.to_owned()),
            source: source.to_owned(),
            reported_at: Some(reported_at),
        });
    }
    Ok(out)
}

/// Loads the demo regions and incidents unless already loaded. Idempotent: the regions import
/// leaves identical boundaries alone, and the incidents are written with their marker in one
/// transaction.
pub async fn load(gw: &Gridwatch) -> Result<DemoLoad, WorkflowError> {
    let summary = gw
        .import_regions(REGIONS_GEOJSON.as_bytes(), Crs::Wgs84, true)
        .await?;
    let mut loaded = 0;
    if gw.db.meta(DEMO_MARKER).await?.is_none() {
        let inputs = parse_incidents(INCIDENTS_CSV)
            .map_err(|e| WorkflowError::invalid("demo-incidents.csv", e))?;
        let now = Utc::now();
        let rows = inputs
            .iter()
            .map(|i| gw.prepare_report(i, now).map(|(row, _)| row))
            .collect::<Result<Vec<_>, _>>()?;
        if gw.db.insert_reports_once(&rows, DEMO_MARKER).await? {
            loaded = rows.len();
        }
    }
    Ok(DemoLoad {
        regions_created: summary.created,
        incidents_loaded: loaded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_incidents_parse() {
        let inputs = parse_incidents(INCIDENTS_CSV).unwrap();
        assert!(inputs.len() >= 15_000, "{}", inputs.len());
    }

    #[test]
    fn bad_csv_names_the_line() {
        let err = parse_incidents("h\n2026-01-01T00:00:00+08:00,oil_smoke,x,39,wgs84,rider,d\n")
            .unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = parse_incidents("h\na,b\n").unwrap_err();
        assert!(err.contains("7 columns"));
    }
}
