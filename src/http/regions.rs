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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    level: Option<String>,
    /// only the current children of this region
    parent: Option<String>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    crs: Option<String>,
    synthetic: Option<bool>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocateQuery {
    lon: f64,
    lat: f64,
    crs: Option<String>,
}

pub(super) async fn locate_one(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Located>> {
    let q: LocateQuery = query(raw)?;
    let crs = parse_crs(q.crs.as_deref(), "crs")?;
    Ok(Json(s.gw.locate(q.lon, q.lat, crs)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchQuery {
    crs: Option<String>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicationsQuery {
    parent: Option<String>,
}

/// Past publications, newest first, with the per-child changes they made.
pub(super) async fn publications(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: PublicationsQuery = query(raw)?;
    Ok(Json(Value::Array(
        s.gw.db.publications(q.parent.as_deref()).await?,
    )))
}
