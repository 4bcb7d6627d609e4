//! Report photos: upload (the raw image as the body), and the stored copy and its thumbnail.

use super::error::{ApiError, ApiResult};
use super::extract::body_bytes;
use super::AppState;
use crate::workflow::photos::{PhotoFile, PhotoView};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Largest upload body: a little above the photo limit, so the limit itself is answered with a
/// message that names it.
pub const PHOTO_BODY_LIMIT: usize = crate::media::MAX_UPLOAD_BYTES + 64 * 1024;

/// `POST /photos`: 201 with the photo (its EXIF location, if any), or 200 with the photo made
/// from the same bytes before.
#[utoipa::path(
    post,
    path = "/api/v1/photos",
    operation_id = "photos_upload",
    tag = "photos",
    summary = "Upload a report photo (JPEG or PNG as the raw body); EXIF is read, then stripped",
    request_body(description = "the image", content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"))),
    responses(
        (status = 201, description = "stored", body = PhotoView),
        (status = 200, description = "the same bytes were uploaded before", body = PhotoView),
        (status = 503, description = "the photo folder cannot be written", body = crate::http::error::ErrorBody),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 415, description = "unsupported media type", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn upload(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<PhotoView>)> {
    let bytes = body_bytes(body)?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if declared
        .as_deref()
        .is_some_and(|d| d.starts_with("multipart/"))
    {
        return Err(ApiError::UnsupportedMediaType(
            "send the image itself as the body (Content-Type image/jpeg or image/png), not a form"
                .into(),
        ));
    }
    let (photo, created) = s.gw.upload_photo(bytes.to_vec(), declared).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(photo)))
}

#[utoipa::path(
    get,
    path = "/api/v1/photos/{id}",
    operation_id = "photos_full",
    tag = "photos",
    summary = "A stored photo (JPEG, no metadata)",
    params(
        ("id" = String, Path, description = "photo id"),
        ("key" = Option<String>, Query, description = "the uploader's key, from the upload's answer: reads the photo without logging in")
    ),
    responses(
        (status = 200, description = "the photo", content_type = "image/jpeg", body = Vec<u8>),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn full(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&s, &id, PhotoFile::Full, &headers).await
}

#[utoipa::path(
    get,
    path = "/api/v1/photos/{id}/thumbnail",
    operation_id = "photos_thumbnail",
    tag = "photos",
    summary = "A photo's 320 px thumbnail",
    params(
        ("id" = String, Path, description = "photo id"),
        ("key" = Option<String>, Query, description = "the uploader's key, from the upload's answer: reads the photo without logging in")
    ),
    responses(
        (status = 200, description = "the thumbnail", content_type = "image/jpeg", body = Vec<u8>),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn thumbnail(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&s, &id, PhotoFile::Thumbnail, &headers).await
}

async fn serve(
    s: &AppState,
    id: &str,
    file: PhotoFile,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    // A photo never changes: its id (and which file) is its entity tag.
    let etag = match file {
        PhotoFile::Full => format!("\"{id}\""),
        PhotoFile::Thumbnail => format!("\"{id}-thumb\""),
    };
    let (_, bytes) = s.gw.photo_file(id, file).await?;
    let cache = [
        (header::CONTENT_TYPE, "image/jpeg".to_owned()),
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable".to_owned(),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((cache, bytes).into_response())
}
