//! Region endpoints: list (GeoJSON), detail, import, locate.

use super::error::{ApiError, ApiResult};
use super::extract::{body_bytes, json_body, query};
use super::AppState;
use crate::domain::Level;
use crate::workflow::intake::{parse_crs, Located, PointInput};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most points in one batch locate request.
pub const MAX_BATCH: usize = 10_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    level: Option<String>,
    /// only the current children of this region
    parent: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/regions",
    operation_id = "regions_list",
    tag = "regions",
    summary = "Current regions as a GeoJSON FeatureCollection",
    params(ListQuery),
    responses(
        (status = 200, description = "FeatureCollection of regions", body = serde_json::Value),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn list(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: ListQuery = query(raw)?;
    let level = q
        .level
        .map(|l| {
            l.parse::<Level>()
                .map_err(|e| ApiError::invalid("level", e.to_string()))
        })
        .transpose()?;
    let shapes = s.gw.db.region_shapes(level, q.parent.as_deref()).await?;
    let features: Vec<Value> = shapes
        .into_iter()
        .map(|r| {
            json!({
                "type": "Feature",
                "id": r.code,
                "properties": {
                    "code": r.code,
                    "name": r.name,
                    "level": r.level,
                    "parent_code": r.parent_code,
                    "version": r.version,
                    "synthetic": r.synthetic,
                },
                "geometry": geojson::Geometry::new(geojson::GeometryValue::from(&r.geom)),
            })
        })
        .collect();
    Ok(Json(
        json!({"type": "FeatureCollection", "features": features}),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/regions/{code}",
    operation_id = "regions_detail",
    tag = "regions",
    summary = "One region with its chain, children and versions",
    params(("code" = String, Path, description = "region code (12 digits, or 15 for a micro-grid)")),
    responses(
        (status = 200, description = "the region", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn detail(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let detail =
        s.gw.db
            .region_detail(&code)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no region with code {code}")))?;
    Ok(Json(
        serde_json::to_value(detail).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    crs: Option<String>,
    synthetic: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/api/v1/regions/import",
    operation_id = "regions_import",
    tag = "regions",
    summary = "Import a FeatureCollection of regions (all or nothing)",
    params(ImportQuery),
    request_body(content = serde_json::Value, description = "GeoJSON FeatureCollection with code, name, level, parent_code properties", content_type = "application/json"),
    responses(
        (status = 200, description = "what was imported", body = serde_json::Value),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn import(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let q: ImportQuery = query(raw)?;
    let crs = parse_crs(q.crs.as_deref(), "crs")?;
    let bytes = body_bytes(body)?;
    let summary =
        s.gw.import_regions(&bytes, crs, q.synthetic.unwrap_or(false))
            .await?;
    Ok(Json(json!({ "imported": summary })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LocateQuery {
    #[param(minimum = -180.0, maximum = 180.0, example = 106.8415)]
    lon: f64,
    #[param(minimum = -90.0, maximum = 90.0, example = 39.664)]
    lat: f64,
    crs: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/locate",
    operation_id = "regions_locate_one",
    tag = "regions",
    summary = "Which district, street, community, grid and micro-grid a point is in",
    params(LocateQuery),
    responses(
        (status = 200, description = "the assignment", body = Located),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn locate_one(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Located>> {
    let q: LocateQuery = query(raw)?;
    let crs = parse_crs(q.crs.as_deref(), "crs")?;
    Ok(Json(s.gw.locate(q.lon, q.lat, crs)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BatchQuery {
    crs: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/locate",
    operation_id = "regions_locate_batch",
    tag = "regions",
    summary = "Locate up to 10,000 points at once",
    params(BatchQuery),
    request_body = Vec<PointInput>,
    responses(
        (status = 200, description = "one assignment per point, in order", body = Vec<Located>),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn locate_batch(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Vec<Located>>> {
    let q: BatchQuery = query(raw)?;
    let default_crs = q.crs;
    let points: Vec<PointInput> = json_body(body)?;
    if points.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "",
            format!(
                "at most {MAX_BATCH} points per request, got {}",
                points.len()
            ),
        ));
    }
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let crs = parse_crs(
                p.crs.as_deref().or(default_crs.as_deref()),
                &format!("[{i}].crs"),
            )?;
            s.gw.locate(p.lon, p.lat, crs)
                .map_err(|e| match ApiError::from(e) {
                    ApiError::Invalid { message, field } => ApiError::Invalid {
                        message,
                        field: format!("[{i}].{field}"),
                    },
                    other => other,
                })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

/// Checks a redraw of the region's children: codes matched or allocated, the change per child,
/// the coverage issues, whether it can be published. Nothing is written.
#[utoipa::path(
    post,
    path = "/api/v1/regions/{code}/redraw/check",
    operation_id = "regions_redraw_check",
    tag = "regions",
    summary = "Check a redraw of a region's children; nothing is written",
    params(("code" = String, Path, description = "region code (12 digits, or 15 for a micro-grid)")),
    request_body(content = serde_json::Value, description = "FeatureCollection of the new children", content_type = "application/json"),
    responses(
        (status = 200, description = "the plan: matched codes, changes, issues", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn redraw_check(
    State(s): State<AppState>,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let doc: Value = json_body(body)?;
    let request = crate::workflow::redraw::parse_request(&doc)?;
    let plan = s.gw.check_redraw(&code, request).await?;
    let mut out = serde_json::to_value(&plan).map_err(|e| ApiError::Internal(e.to_string()))?;
    out["features"] = plan.features();
    Ok(Json(out))
}

/// Publishes a redraw of the region's children as new boundary versions (201), or refuses it
/// with every blocking problem (422) and writes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/regions/{code}/redraw",
    operation_id = "regions_redraw_publish",
    tag = "regions",
    summary = "Publish a redraw as new boundary versions",
    params(("code" = String, Path, description = "region code (12 digits, or 15 for a micro-grid)")),
    request_body(content = serde_json::Value, description = "FeatureCollection of the new children", content_type = "application/json"),
    responses(
        (status = 201, description = "the publication", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 409, description = "conflicts with the current state", body = crate::http::error::ErrorBody),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn redraw_publish(
    State(s): State<AppState>,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let doc: Value = json_body(body)?;
    let request = crate::workflow::redraw::parse_request(&doc)?;
    let published = s.gw.publish_redraw(&code, request).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::to_value(&published).map_err(|e| ApiError::Internal(e.to_string()))?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PublicationsQuery {
    parent: Option<String>,
}

/// Past publications, newest first, with the per-child changes they made.
#[utoipa::path(
    get,
    path = "/api/v1/publications",
    operation_id = "regions_publications",
    tag = "regions",
    summary = "Past boundary publications, newest first",
    params(PublicationsQuery),
    responses(
        (status = 200, description = "publications", body = Vec<serde_json::Value>),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn publications(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: PublicationsQuery = query(raw)?;
    Ok(Json(Value::Array(
        s.gw.db.publications(q.parent.as_deref()).await?,
    )))
}
