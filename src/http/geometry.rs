//! Geometry edits for the editor: split a polygon along a drawn line, merge neighbours. Pure
//! computations; nothing is written (the editor checks and publishes the result as a redraw).

use super::error::{ApiError, ApiResult};
use super::extract::json_body;
use crate::coverage::edit::{merge as merge_polygons, split as split_polygon, EditError};
use crate::spatial::geojson::{parse_geometry, parse_line};
use crate::workflow::intake::parse_crs;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::Json;
use geo::MultiPolygon;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most polygons merged at once.
const MAX_MERGE: usize = 200;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SplitInput {
    geometry: Value,
    line: Value,
    #[serde(default)]
    crs: Option<String>,
}

fn geometry(g: &geo::Polygon<f64>) -> Value {
    serde_json::to_value(geojson::Geometry::new(geojson::GeometryValue::from(g)))
        .unwrap_or(Value::Null)
}

/// `{"geometry": Polygon|MultiPolygon, "line": LineString}` → `{"pieces": [Polygon…]}`.
#[utoipa::path(
    post,
    path = "/api/v1/geometry/split",
    operation_id = "geometry_split",
    tag = "geometry",
    summary = "Split a polygon along a line",
    request_body = SplitInput,
    responses(
        (status = 200, description = "`{pieces: [Polygon…]}`", body = serde_json::Value),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn split(body: Result<Bytes, BytesRejection>) -> ApiResult<Json<Value>> {
    let input: SplitInput = json_body(body)?;
    let crs = parse_crs(input.crs.as_deref(), "crs")?;
    let poly =
        parse_geometry(&input.geometry, crs).map_err(|e| ApiError::invalid("geometry", e))?;
    let line = parse_line(&input.line, crs).map_err(|e| ApiError::invalid("line", e))?;
    let pieces =
        split_polygon(&poly, &line).map_err(|e| ApiError::invalid("line", e.to_string()))?;
    Ok(Json(
        json!({"pieces": pieces.iter().map(geometry).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeInput {
    geometries: Vec<Value>,
    #[serde(default)]
    crs: Option<String>,
}

/// `{"geometries": [Polygon|MultiPolygon…]}` → `{"geometry": Polygon}`.
#[utoipa::path(
    post,
    path = "/api/v1/geometry/merge",
    operation_id = "geometry_merge",
    tag = "geometry",
    summary = "Merge adjacent polygons into one",
    request_body = MergeInput,
    responses(
        (status = 200, description = "`{geometry: Polygon}`", body = serde_json::Value),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn merge(body: Result<Bytes, BytesRejection>) -> ApiResult<Json<Value>> {
    let input: MergeInput = json_body(body)?;
    let crs = parse_crs(input.crs.as_deref(), "crs")?;
    if input.geometries.len() > MAX_MERGE {
        return Err(ApiError::invalid(
            "geometries",
            format!("at most {MAX_MERGE} polygons per merge"),
        ));
    }
    let mut polys: Vec<MultiPolygon<f64>> = Vec::with_capacity(input.geometries.len());
    for (i, g) in input.geometries.iter().enumerate() {
        polys.push(
            parse_geometry(g, crs).map_err(|e| ApiError::invalid(format!("geometries[{i}]"), e))?,
        );
    }
    let merged = merge_polygons(&polys)
        .map_err(|e: EditError| ApiError::invalid("geometries", e.to_string()))?;
    Ok(Json(json!({"geometry": geometry(&merged)})))
}
