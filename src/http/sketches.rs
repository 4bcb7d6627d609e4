//! Sketch endpoints: upload a photographed hand-drawn grid map, set its ground control points
//! (the fit is returned with its residuals), get it back as a georeferenced overlay, vectorise it.

use super::error::{ApiError, ApiResult};
use super::extract::json_body;
use super::AppState;
use crate::domain::{GridCode, Wgs84Point};
use crate::sketch::image_input::{decode, ImageError};
use crate::sketch::transform::{fit, Fit, Gcp, Requested};
use crate::sketch::vectorise::VectoriseOptions;
use crate::sketch::{pipeline, warp};
use crate::storage::sketches::{NewSketch, SketchRow};
use crate::workflow::intake::parse_crs;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest accepted upload.
pub const SKETCH_BODY_LIMIT: usize = 40 * 1024 * 1024;

fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("sketch id {id:?} is not a number"), Some("id")))
}

async fn load(s: &AppState, id: &str) -> ApiResult<SketchRow> {
    let id = parse_id(id)?;
    s.gw.db
        .sketch(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no sketch with id {id}")))
}

fn image_error(e: ImageError) -> ApiError {
    ApiError::invalid("image", e.to_string())
}

/// Makes an image off the async threads (decoding and warping take a while) and answers with
/// it as PNG.
async fn png_response(
    make: impl FnOnce() -> Result<image::DynamicImage, ApiError> + Send + 'static,
) -> ApiResult<Response> {
    let png = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        make()?
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// Decodes an upload off the async threads (a large JPEG takes a while).
async fn decode_blocking(bytes: Bytes) -> ApiResult<crate::sketch::image_input::SketchImage> {
    tokio::task::spawn_blocking(move || decode(&bytes))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(image_error)
}

#[utoipa::path(
    post,
    path = "/api/v1/sketches",
    operation_id = "sketches_upload",
    tag = "sketches",
    summary = "Upload a photographed hand-drawn grid map",
    request_body(content = SketchUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "the sketch", body = SketchRow),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 415, description = "unsupported media type", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn upload(
    State(s): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<SketchRow>)> {
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(e.body_text(), None))?;
    let (mut image, mut title, mut region) = (None, String::new(), None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge(format!(
                    "at most {} MiB per sketch",
                    SKETCH_BODY_LIMIT >> 20
                )))
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    format!("bad multipart body: {}", e.body_text()),
                    None,
                ))
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
                "at most {} MiB per sketch",
                SKETCH_BODY_LIMIT >> 20
            )),
            _ => ApiError::bad_request(
                format!("reading field {name:?}: {}", e.body_text()),
                Some(&name),
            ),
        })?;
        match name.as_str() {
            "image" => image = Some(data),
            "title" => {
                title = String::from_utf8_lossy(&data)
                    .trim()
                    .chars()
                    .take(200)
                    .collect()
            }
            "region_code" => {
                let text = String::from_utf8_lossy(&data).trim().to_owned();
                if !text.is_empty() {
                    let code = GridCode::parse(&text)
                        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
                    region = Some(code.as_str().to_owned());
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    format!("unknown field {other:?}: expected image, title, region_code"),
                    Some(other),
                ))
            }
        }
    }
    let bytes = image.ok_or_else(|| ApiError::invalid("image", "the upload has no image field"))?;
    if let Some(code) = &region {
        if s.gw.db.region_detail(code).await?.is_none() {
            return Err(ApiError::invalid(
                "region_code",
                format!("no region with code {code}"),
            ));
        }
    }
    let decoded = decode_blocking(bytes.clone()).await?;
    let row =
        s.gw.db
            .insert_sketch(&NewSketch {
                title: &title,
                region_code: region.as_deref(),
                format: decoded.format,
                width: decoded.width,
                height: decoded.height,
                exif_orientation: decoded.exif_orientation,
                image: &bytes,
            })
            .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[utoipa::path(
    get,
    path = "/api/v1/sketches",
    operation_id = "sketches_list",
    tag = "sketches",
    summary = "Uploaded sketches",
    responses(
        (status = 200, description = "sketches", body = Vec<SketchRow>)
    )
)]
pub(super) async fn list(State(s): State<AppState>) -> ApiResult<Json<Vec<SketchRow>>> {
    Ok(Json(s.gw.db.sketches().await?))
}

/// One sketch, with the footprint of its current fit (`null` before control points are set).
#[utoipa::path(
    get,
    path = "/api/v1/sketches/{id}",
    operation_id = "sketches_get_one",
    tag = "sketches",
    summary = "One sketch with the footprint of its fit",
    params(("id" = i64, Path, description = "sketch id")),
    responses(
        (status = 200, description = "the sketch", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = load(&s, &id).await?;
    let footprint = fit_stored(&row)
        .ok()
        .and_then(|f| warp::footprint(&f, row.width as u32, row.height as u32));
    let mut out = serde_json::to_value(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
    out["footprint"] = serde_json::to_value(footprint).unwrap_or(Value::Null);
    Ok(Json(out))
}

/// The sketch upright, as PNG (orientation applied, so pixel coordinates match the GCPs).
#[utoipa::path(
    get,
    path = "/api/v1/sketches/{id}/image",
    operation_id = "sketches_image",
    tag = "sketches",
    summary = "The sketch image, upright",
    params(("id" = i64, Path, description = "sketch id")),
    responses(
        (status = 200, description = "the image", content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"))),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn image(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = load(&s, &id).await?;
    let bytes = s.gw.db.sketch_image(row.id).await?.unwrap_or_default();
    if row.exif_orientation == 1 {
        let mime = if row.format == "png" {
            "image/png"
        } else {
            "image/jpeg"
        };
        return Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response());
    }
    png_response(move || Ok(decode(&bytes).map_err(image_error)?.image)).await
}

/// The multipart form of `POST /sketches` (documentation only: the handler reads the parts).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SketchUpload {
    /// the photographed sketch, JPEG or PNG
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    title: Option<String>,
    /// the region the sketch subdivides
    region_code: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GcpInput {
    px: f64,
    py: f64,
    lon: f64,
    lat: f64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GcpsInput {
    gcps: Vec<GcpInput>,
    /// the coordinate system of the control points' lon/lat
    #[serde(default)]
    crs: Option<String>,
    #[serde(default)]
    transform: Option<String>,
    #[serde(default)]
    tolerance_m: Option<f64>,
}

fn fit_stored(row: &SketchRow) -> ApiResult<Fit> {
    let gcps: Vec<Gcp> =
        serde_json::from_value(row.gcps.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let requested: Requested = row.transform.parse().unwrap_or_default();
    fit(&gcps, requested, 5.0).map_err(|e| {
        ApiError::invalid(
            "gcps",
            format!(
                "{e}; set control points with PUT /api/v1/sketches/{}/gcps",
                row.id
            ),
        )
    })
}

fn fit_response(row: &SketchRow, f: &Fit) -> Value {
    json!({
        "sketch": row.id,
        "fit": f.report(),
        "image_warnings": f.image_warnings(row.width as u32, row.height as u32),
        "footprint": warp::footprint(f, row.width as u32, row.height as u32),
        "overlay": format!("/api/v1/sketches/{}/overlay.png", row.id),
    })
}

/// Sets the control points; answers with the fit, or 422 (too few, degenerate) without storing.
#[utoipa::path(
    put,
    path = "/api/v1/sketches/{id}/gcps",
    operation_id = "sketches_put_gcps",
    tag = "sketches",
    summary = "Set ground control points; answers with the fit",
    params(("id" = i64, Path, description = "sketch id")),
    request_body = GcpsInput,
    responses(
        (status = 200, description = "the fit and its residuals", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn put_gcps(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let row = load(&s, &id).await?;
    let input: GcpsInput = json_body(body)?;
    let crs = parse_crs(input.crs.as_deref(), "crs")?;
    let transform = input.transform.unwrap_or_else(|| "auto".into());
    let requested: Requested =
        transform
            .parse()
            .map_err(|e: crate::sketch::transform::UnknownTransform| {
                ApiError::invalid("transform", e.to_string())
            })?;
    let tolerance = input.tolerance_m.unwrap_or(5.0);
    if !(tolerance.is_finite() && tolerance > 0.0) {
        return Err(ApiError::invalid(
            "tolerance_m",
            "must be a positive number of metres",
        ));
    }
    let mut gcps = Vec::with_capacity(input.gcps.len());
    for (i, g) in input.gcps.iter().enumerate() {
        let p = Wgs84Point::from_crs(g.lon, g.lat, crs)
            .map_err(|e| ApiError::invalid(format!("gcps[{i}].{}", e.field()), e.to_string()))?;
        let inside = g.px.is_finite()
            && g.py.is_finite()
            && g.px >= 0.0
            && g.py >= 0.0
            && g.px <= row.width as f64
            && g.py <= row.height as f64;
        if !inside {
            return Err(ApiError::invalid(
                format!("gcps[{i}]"),
                format!(
                    "pixel ({}, {}) is outside the {}×{} sketch",
                    g.px, g.py, row.width, row.height
                ),
            ));
        }
        gcps.push(Gcp {
            px: g.px,
            py: g.py,
            lon: p.lon(),
            lat: p.lat(),
        });
    }
    let f =
        fit(&gcps, requested, tolerance).map_err(|e| ApiError::invalid("gcps", e.to_string()))?;
    let stored = serde_json::to_value(&gcps).map_err(|e| ApiError::Internal(e.to_string()))?;
    let report = serde_json::to_value(f.report()).map_err(|e| ApiError::Internal(e.to_string()))?;
    s.gw.db
        .set_sketch_fit(row.id, &stored, &transform, &report)
        .await?;
    Ok(Json(fit_response(&row, &f)))
}

/// The georeferenced sketch, north up, for a MapLibre image source over `footprint`.
#[utoipa::path(
    get,
    path = "/api/v1/sketches/{id}/overlay.png",
    operation_id = "sketches_overlay",
    tag = "sketches",
    summary = "The georeferenced sketch, north up",
    params(("id" = i64, Path, description = "sketch id")),
    responses(
        (status = 200, description = "PNG for an image source over the footprint", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn overlay(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = load(&s, &id).await?;
    let f = fit_stored(&row)?;
    let bytes = s.gw.db.sketch_image(row.id).await?.unwrap_or_default();
    png_response(move || {
        let img = decode(&bytes).map_err(image_error)?;
        let bounds = warp::footprint(&f, img.width, img.height).ok_or_else(|| {
            ApiError::invalid(
                "gcps",
                "the fit does not map the whole sketch onto the map (projective horizon)",
            )
        })?;
        let warped = warp::warp(&img.image.to_rgb8(), &f, bounds, 1600, 255);
        Ok(image::DynamicImage::ImageRgba8(warped))
    })
    .await
}

/// Vectorises the sketch with its control points: candidate polygons in WGS-84 with confidence
/// and problems, stored for review.
#[utoipa::path(
    post,
    path = "/api/v1/sketches/{id}/vectorise",
    operation_id = "sketches_vectorise",
    tag = "sketches",
    summary = "Vectorise the sketch into candidate polygons",
    params(("id" = i64, Path, description = "sketch id")),
    responses(
        (status = 200, description = "candidates with confidence and problems", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn vectorise(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = load(&s, &id).await?;
    let gcps: Vec<Gcp> =
        serde_json::from_value(row.gcps.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    fit_stored(&row)?;
    let requested: Requested = row.transform.parse().unwrap_or_default();
    let bytes = s.gw.db.sketch_image(row.id).await?.unwrap_or_default();
    let result = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let img = decode(&bytes).map_err(image_error)?;
        let outcome = pipeline::run(
            &img.image,
            &gcps,
            requested,
            5.0,
            &VectoriseOptions::default(),
        )
        .map_err(|e| ApiError::invalid("gcps", e.to_string()))?;
        Ok(pipeline::to_geojson(&outcome))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    s.gw.db.set_sketch_vectorised(row.id, &result).await?;
    Ok(Json(result))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewInput {
    /// the region the candidates must tile; defaults to the sketch's region
    #[serde(default)]
    parent_code: Option<String>,
    #[serde(default)]
    snap_m: Option<f64>,
    #[serde(default)]
    gap_width_m: Option<f64>,
    /// longest_border (default), largest_area or smallest_area
    #[serde(default)]
    rule: Option<String>,
}

/// Validates and cleans the last vectorisation as a coverage of its parent region and answers
/// with a reviewable diff: the issues found, every fix (area, who received it, by which rule),
/// what remains, and the cleaned candidates. Nothing is written.
#[utoipa::path(
    post,
    path = "/api/v1/sketches/{id}/review",
    operation_id = "sketches_review",
    tag = "sketches",
    summary = "Validate and clean the candidates as a coverage of the parent region",
    params(("id" = i64, Path, description = "sketch id")),
    request_body = Option<ReviewInput>,
    responses(
        (status = 200, description = "issues, fixes and cleaned candidates", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn review(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    use crate::coverage::clean::{clean, CleanOptions, MergeRule};
    use crate::coverage::validate::{validate, ValidateOptions};
    let row = load(&s, &id).await?;
    let input: ReviewInput = match body {
        Ok(b) if b.is_empty() => ReviewInput::default(),
        other => json_body(other)?,
    };
    let parent_code = input
        .parent_code
        .or(row.region_code.clone())
        .ok_or_else(|| {
            ApiError::invalid(
                "parent_code",
                "the sketch has no region: name the parent region to tile",
            )
        })?;
    let index = s.gw.index();
    let parent = index.get(&parent_code).ok_or_else(|| {
        ApiError::invalid(
            "parent_code",
            format!("no current region with code {parent_code}"),
        )
    })?;
    let (parent_name, parent_geom) = (parent.name.clone(), parent.geom.clone());
    let mut opts = CleanOptions::default();
    for (field, value, slot) in [
        ("snap_m", input.snap_m, &mut opts.snap_m),
        ("gap_width_m", input.gap_width_m, &mut opts.gap_width_m),
    ] {
        if let Some(v) = value {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return Err(ApiError::invalid(field, "must be between 0 and 100 metres"));
            }
            *slot = v;
        }
    }
    opts.rule = match input.rule.as_deref() {
        None | Some("longest_border") => MergeRule::LongestBorder,
        Some("largest_area") => MergeRule::LargestArea,
        Some("smallest_area") => MergeRule::SmallestArea,
        Some(other) => {
            return Err(ApiError::invalid(
                "rule",
                format!("unknown rule {other:?}: longest_border, largest_area or smallest_area"),
            ))
        }
    };
    let vectorised = s.gw.db.sketch_vectorised(row.id).await?.ok_or_else(|| {
        ApiError::invalid(
            "vectorised",
            format!(
                "vectorise the sketch first: POST /api/v1/sketches/{}/vectorise",
                row.id
            ),
        )
    })?;
    let mut candidates = Vec::new();
    for f in vectorised["features"].as_array().into_iter().flatten() {
        let face = f["properties"]["face"].as_u64().unwrap_or_default();
        // Our own vectorisation, stored by us: a parse failure is a bug, not bad input.
        let geom =
            crate::spatial::geojson::parse_geometry(&f["geometry"], crate::domain::Crs::Wgs84)
                .map_err(ApiError::Internal)?;
        candidates.push((format!("face-{face:03}"), geom));
    }
    let validate_opts = ValidateOptions {
        gap_width_m: opts.gap_width_m,
        snap_m: opts.snap_m,
        ..ValidateOptions::default()
    };
    let result = tokio::task::spawn_blocking(move || {
        let issues = validate(&candidates, Some(&parent_geom), &validate_opts);
        let cleaned = clean(&candidates, Some(&parent_geom), &opts);
        (issues, cleaned)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (issues, cleaned) = result;
    let features: Vec<Value> = cleaned
        .polygons
        .iter()
        .map(|(name, geom)| {
            json!({
                "type": "Feature",
                "properties": {
                    "candidate": name,
                    "changed": cleaned.changed.contains(name),
                    "area_m2": (geo::GeodesicArea::geodesic_area_unsigned(geom) * 10.0).round() / 10.0,
                },
                "geometry": geojson::Geometry::new(geojson::GeometryValue::from(geom)),
            })
        })
        .collect();
    Ok(Json(json!({
        "sketch": row.id,
        "parent": {"code": parent_code, "name": parent_name},
        "issues": issues,
        "fixes": cleaned.fixes,
        "remaining": cleaned.remaining,
        "candidates": {"type": "FeatureCollection", "features": features},
    })))
}
