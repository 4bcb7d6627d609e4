//! Region import: a GeoJSON FeatureCollection becomes validated [`RegionFeature`]s, then is
//! written in one transaction by storage. Structural problems (codes, levels, parents implied by
//! codes, coordinates, rings) are found here; the geometric ones that need the whole registry
//! (validity, containment, overlaps) by PostGIS inside the import transaction.

use super::{Gridwatch, Result, WorkflowError};
use crate::domain::{Crs, GridCode, Level, PartyBranch, Problem, RegionFeature, StaffMember};
pub use crate::spatial::geojson::parse_geometry;
use crate::storage::regions::{ImportOutcome, ImportSummary};
use chrono::Utc;
use serde_json::Value;
use std::collections::HashSet;

/// Longest accepted region name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// Parses an import file. Returns every feature that passed, and every problem found; the
/// caller must not write anything unless the problem list is empty.
pub fn parse_feature_collection(
    bytes: &[u8],
    crs: Crs,
    synthetic_default: bool,
) -> std::result::Result<Vec<RegionFeature>, Vec<Problem>> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        vec![Problem::new(
            "malformed_json",
            format!("the file is not valid JSON: {e}"),
        )]
    })?;
    if doc.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(vec![Problem::new(
            "not_a_feature_collection",
            "expected a GeoJSON FeatureCollection (\"type\": \"FeatureCollection\")",
        )
        .field("type")]);
    }
    let Some(items) = doc.get("features").and_then(Value::as_array) else {
        return Err(vec![Problem::new(
            "no_features",
            "\"features\" must be an array",
        )
        .field("features")]);
    };
    if items.is_empty() {
        return Err(vec![Problem::new(
            "no_features",
            "the FeatureCollection has no features",
        )
        .field("features")]);
    }
    let mut problems = Vec::new();
    let mut features = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        match parse_feature(i, item, crs, synthetic_default) {
            Ok(f) => {
                if !seen.insert(f.code.clone()) {
                    problems.push(
                        Problem::new(
                            "duplicate_code",
                            format!("code {} appears more than once", f.code),
                        )
                        .at(i, Some(f.code.as_str()))
                        .field("properties.code"),
                    );
                }
                features.push(f);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(features)
    } else {
        Err(problems)
    }
}

fn parse_feature(
    i: usize,
    item: &Value,
    crs: Crs,
    synthetic_default: bool,
) -> std::result::Result<RegionFeature, Vec<Problem>> {
    let code_str = item
        .pointer("/properties/code")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let code_ref = code_str.as_deref();
    let problem = |kind: &'static str, field: &str, msg: String| {
        Problem::new(kind, msg).at(i, code_ref).field(field)
    };
    if item.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err(vec![problem(
            "not_a_feature",
            "type",
            format!("feature {i} is not a GeoJSON Feature"),
        )]);
    }
    let Some(props) = item.get("properties").and_then(Value::as_object) else {
        return Err(vec![problem(
            "missing_properties",
            "properties",
            format!("feature {i} has no properties object"),
        )]);
    };
    let mut problems = Vec::new();

    let code = match props.get("code") {
        Some(Value::String(s)) => match GridCode::parse(s) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(problem("bad_code", "properties.code", e.to_string()));
                None
            }
        },
        _ => {
            problems.push(problem(
                "bad_code",
                "properties.code",
                format!("feature {i} needs a string code"),
            ));
            None
        }
    };
    let level = match props.get("level").and_then(Value::as_str) {
        Some(s) => match s.parse::<Level>() {
            Ok(l) => Some(l),
            Err(e) => {
                problems.push(problem("bad_level", "properties.level", e.to_string()));
                None
            }
        },
        None => {
            problems.push(problem(
                "bad_level",
                "properties.level",
                format!("feature {i} needs a level"),
            ));
            None
        }
    };
    if let (Some(c), Some(l)) = (&code, level) {
        if c.level() != l {
            problems.push(problem(
                "level_mismatch",
                "properties.level",
                format!(
                    "code {c} has {} digits, which is a {}, not a {l}",
                    c.as_str().len(),
                    c.level()
                ),
            ));
        }
    }
    let name = match props.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS => n.to_owned(),
        _ => {
            problems.push(problem(
                "bad_name",
                "properties.name",
                format!("feature {i} needs a name of 1 to {MAX_NAME_CHARS} characters"),
            ));
            String::new()
        }
    };
    let parent_code = match props.get("parent_code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match GridCode::parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(problem(
                    "bad_parent_code",
                    "properties.parent_code",
                    e.to_string(),
                ));
                None
            }
        },
        Some(_) => {
            problems.push(problem(
                "bad_parent_code",
                "properties.parent_code",
                "parent_code must be a string".into(),
            ));
            None
        }
    };
    if let Some(c) = &code {
        match (c.implied_parent(), &parent_code) {
            (None, Some(p)) => problems.push(problem(
                "bad_parent_code",
                "properties.parent_code",
                format!("{c} is a district and has no parent, but parent_code is {p}"),
            )),
            (Some(implied), None) => problems.push(problem(
                "missing_parent_code",
                "properties.parent_code",
                format!("{c} needs parent_code {implied}"),
            )),
            (Some(implied), Some(p)) if &implied != p => problems.push(problem(
                "bad_parent_code",
                "properties.parent_code",
                format!("parent_code {p} does not match the code {c}, whose parent is {implied}"),
            )),
            _ => {}
        }
    }
    let geom = match item.get("geometry") {
        Some(g) if !g.is_null() => match parse_geometry(g, crs) {
            Ok(mp) => Some(mp),
            Err(msg) => {
                problems.push(problem("invalid_geometry", "geometry", msg));
                None
            }
        },
        _ => {
            problems.push(problem(
                "invalid_geometry",
                "geometry",
                format!("feature {i} has no geometry"),
            ));
            None
        }
    };
    let party_branch = match props.get("party_branch") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match serde_json::from_value::<PartyBranch>(v.clone()) {
            Ok(b) if !b.name.trim().is_empty() => Some(Some(b)),
            Ok(_) => {
                problems.push(problem(
                    "bad_party_branch",
                    "properties.party_branch.name",
                    "the party branch needs a name".into(),
                ));
                None
            }
            Err(e) => {
                problems.push(problem(
                    "bad_party_branch",
                    "properties.party_branch",
                    e.to_string(),
                ));
                None
            }
        },
    };
    let staff = match props.get("staff") {
        None | Some(Value::Null) => None,
        Some(v) => match serde_json::from_value::<Vec<StaffMember>>(v.clone()) {
            Ok(list) if list.iter().all(|m| !m.name.trim().is_empty()) => Some(list),
            Ok(_) => {
                problems.push(problem(
                    "bad_staff",
                    "properties.staff",
                    "every staff member needs a name".into(),
                ));
                None
            }
            Err(e) => {
                problems.push(problem(
                    "bad_staff",
                    "properties.staff",
                    format!("{e} (roles: grid_leader, police_officer, full_time_worker, part_time_worker)"),
                ));
                None
            }
        },
    };
    let synthetic = props
        .get("synthetic")
        .and_then(Value::as_bool)
        .unwrap_or(synthetic_default);
    match (code, level, geom) {
        (Some(code), Some(level), Some(geom)) if problems.is_empty() => Ok(RegionFeature {
            index: i,
            code,
            name,
            level,
            parent_code,
            geom,
            party_branch,
            staff,
            synthetic,
        }),
        _ => Err(problems),
    }
}

impl Gridwatch {
    /// Validates and imports a FeatureCollection; on success the locate index is rebuilt.
    pub async fn import_regions(
        &self,
        bytes: &[u8],
        crs: Crs,
        synthetic_default: bool,
    ) -> Result<ImportSummary> {
        let features = parse_feature_collection(bytes, crs, synthetic_default)
            .map_err(WorkflowError::Rejected)?;
        match self.db.import_regions(&features, Utc::now()).await? {
            ImportOutcome::Accepted(summary) => {
                self.reload().await?;
                Ok(summary)
            }
            ImportOutcome::Rejected(problems) => Err(WorkflowError::Rejected(problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn square(x: f64, y: f64) -> Value {
        json!({"type": "Polygon", "coordinates": [[[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]]})
    }

    fn fc(features: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": "FeatureCollection", "features": features})).unwrap()
    }

    fn feature(code: &str, level: &str, parent: Option<&str>, geometry: Value) -> Value {
        json!({"type": "Feature", "properties": {"code": code, "name": "某网格", "level": level, "parent_code": parent}, "geometry": geometry})
    }

    #[test]
    fn accepts_a_valid_grid_with_branch_and_staff() {
        let mut f = feature(
            "150302001001001",
            "grid",
            Some("150302001001"),
            square(106.8, 39.6),
        );
        f["properties"]["party_branch"] = json!({"name": "第一网格党支部", "secretary": "王芳"});
        f["properties"]["staff"] =
            json!([{"role": "grid_leader", "name": "李强", "phone": "13800000000"}]);
        let out = parse_feature_collection(&fc(vec![f]), Crs::Wgs84, false).unwrap();
        assert_eq!(out[0].level, Level::Grid);
        assert_eq!(out[0].staff.as_ref().unwrap().len(), 1);
        assert_eq!(
            out[0]
                .party_branch
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .secretary
                .as_deref(),
            Some("王芳")
        );
    }

    #[test]
    fn names_every_problem_with_its_feature() {
        let open_ring = json!({"type": "Polygon", "coordinates": [[[106.8, 39.6], [106.81, 39.6], [106.81, 39.61], [106.8, 39.61]]]});
        let features = vec![
            feature(
                "150302001001001",
                "grid",
                Some("150302001001"),
                square(106.8, 39.6),
            ),
            feature(
                "150302001001001",
                "grid",
                Some("150302001001"),
                square(106.9, 39.6),
            ),
            feature(
                "1503020010010",
                "grid",
                Some("150302001001"),
                square(106.8, 39.6),
            ),
            feature(
                "150302001001002",
                "community",
                Some("150302001001"),
                square(106.8, 39.6),
            ),
            feature(
                "150302001001003",
                "grid",
                Some("150302001002"),
                square(106.8, 39.6),
            ),
            feature("150302001001004", "grid", Some("150302001001"), open_ring),
            feature("150302001001005", "grid", None, square(106.8, 39.6)),
            feature(
                "150302001001006",
                "grid",
                Some("150302001001"),
                json!({"type": "Point", "coordinates": [1, 2]}),
            ),
        ];
        let problems = parse_feature_collection(&fc(features), Crs::Wgs84, false).unwrap_err();
        let kinds: Vec<(Option<usize>, &str)> =
            problems.iter().map(|p| (p.feature, p.kind)).collect();
        assert!(kinds.contains(&(Some(1), "duplicate_code")), "{kinds:?}");
        assert!(kinds.contains(&(Some(2), "bad_code")));
        assert!(kinds.contains(&(Some(3), "level_mismatch")));
        assert!(kinds.contains(&(Some(4), "bad_parent_code")));
        assert!(kinds.contains(&(Some(5), "invalid_geometry")));
        assert!(kinds.contains(&(Some(6), "missing_parent_code")));
        assert!(kinds.contains(&(Some(7), "invalid_geometry")));
    }

    #[test]
    fn rejects_non_collections_and_bad_json() {
        assert_eq!(
            parse_feature_collection(b"{", Crs::Wgs84, false).unwrap_err()[0].kind,
            "malformed_json"
        );
        assert_eq!(
            parse_feature_collection(br#"{"type":"Feature"}"#, Crs::Wgs84, false).unwrap_err()[0]
                .kind,
            "not_a_feature_collection"
        );
        assert_eq!(
            parse_feature_collection(
                br#"{"type":"FeatureCollection","features":[]}"#,
                Crs::Wgs84,
                false
            )
            .unwrap_err()[0]
                .kind,
            "no_features"
        );
    }

    #[test]
    fn out_of_range_coordinates_are_named() {
        let g = json!({"type": "Polygon", "coordinates": [[[106.8, 39.6], [206.8, 39.6], [106.8, 39.7], [106.8, 39.6]]]});
        let err = parse_geometry(&g, Crs::Wgs84).unwrap_err();
        assert!(err.contains("position 1") && err.contains("lon"), "{err}");
    }

    #[test]
    fn gcj02_input_is_converted() {
        let mp = parse_geometry(&square(106.8, 39.6), Crs::Gcj02).unwrap();
        let first = mp.0[0].exterior().0[0];
        assert!((first.x - 106.8).abs() > 1e-4, "GCJ-02 offset applied");
    }
}
