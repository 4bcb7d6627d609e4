//! Vector tiles: `GET /tiles/{layer}/{z}/{x}/{y}.mvt` and TileJSON `GET /tiles/{layer}.json`
//! for the layers `incidents` and `grids`, with the filters `category`, `source`, `state` (comma
//! lists), `from` and `to` (China dates or RFC 3339 times). Tiles are gzip-compressed, tagged
//! (`ETag`, `If-None-Match` → 304) and cached; the cache drops a tile when reports or cases
//! change inside it.

use super::error::{ApiError, ApiResult};
use super::extract::{comma_list, query};
use super::reports::parse_time;
use super::AppState;
use crate::domain::case::CaseState;
use crate::domain::ReportSource;
use crate::tiles::{Layer, TileFilter, TileId, MAX_ZOOM, RAW_FROM_ZOOM};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::io::Read;

pub const MVT_TYPE: &str = "application/vnd.mapbox-vector-tile";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TileQuery {
    category: Option<String>,
    source: Option<String>,
    state: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn filter_of(s: &AppState, raw: Option<String>) -> ApiResult<TileFilter> {
    let q: TileQuery = query(raw)?;
    filter_from_parts(s, &q.category, &q.source, &q.state, &q.from, &q.to)
}

/// The filter of tiles and hot spots from its query parameters, each value checked.
pub(super) fn filter_from_parts(
    s: &AppState,
    category: &Option<String>,
    source: &Option<String>,
    state: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
) -> ApiResult<TileFilter> {
    let categories = comma_list(category);
    let known = s.gw.categories();
    if let Some(c) = categories.iter().find(|c| !known.contains_key(c.as_str())) {
        return Err(ApiError::invalid(
            "category",
            format!("unknown category {c:?}"),
        ));
    }
    let sources = comma_list(source);
    if let Some(bad) = sources.iter().find(|v| ReportSource::parse(v).is_err()) {
        return Err(ApiError::invalid(
            "source",
            format!("unknown source {bad:?}: expected grid_worker, rider, resident or hotline"),
        ));
    }
    let states = comma_list(state);
    if let Some(bad) = states
        .iter()
        .find(|st| !CaseState::ALL.iter().any(|c| c.as_str() == st.as_str()))
    {
        return Err(ApiError::invalid(
            "state",
            format!("unknown state {bad:?}: expected reported, accepted, whistled, acknowledged, resolved, closed, evaluated, rejected or merged"),
        ));
    }
    let from = from
        .as_deref()
        .map(|v| parse_time("from", v, false))
        .transpose()?;
    let to = to
        .as_deref()
        .map(|v| parse_time("to", v, true))
        .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(ApiError::invalid("to", "must be after from"));
        }
    }
    Ok(TileFilter {
        categories,
        sources,
        states,
        from,
        to,
    }
    .normalised())
}

fn layer_of(name: &str) -> ApiResult<Layer> {
    Layer::parse(name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no tile layer {name:?}: the layers are incidents and grids"
        ))
    })
}

fn number(field: &str, s: &str) -> ApiResult<u32> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{field} {s:?} is not a number"), Some(field)))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// A cached tile's bytes as a response body.
struct SharedTile(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedTile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `GET /tiles/{layer}/{z}/{x}/{y}.mvt`
pub(super) async fn tile(
    State(s): State<AppState>,
    Path((layer, z, x, y)): Path<(String, String, String, String)>,
    RawQuery(raw): RawQuery,
    // read in place: the `HeaderMap` and `Extensions` extractors would copy both
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    let headers = &parts.headers;
    // Staff see the map at full resolution; everyone else the public view.
    let public = super::auth::caller(&s, headers, &parts.extensions)
        .await?
        .principal()
        .is_none_or(|p| p.must_change_password);
    let layer = layer_of(&layer)?;
    let Some(y) = y.strip_suffix(".mvt") else {
        return Err(ApiError::NotFound(format!(
            "tiles end in .mvt: /tiles/{}/{z}/{x}/{y}.mvt",
            layer.as_str()
        )));
    };
    let id = TileId::new(number("z", &z)?, number("x", &x)?, number("y", y)?)
        .map_err(|e| ApiError::NotFound(e.to_string()))?;
    let filter = filter_of(&s, raw)?;
    let built = s.gw.tile(layer, id, &filter, public).await?;
    let etag = HeaderValue::from_str(&built.etag)
        .map_err(|e| ApiError::Internal(format!("a tile's entity tag: {e}")))?;
    let cache_headers = [
        (header::ETAG, etag),
        // Revalidate every time: the server knows when a tile changes, the browser does not.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, Cookie, Authorization"),
        ),
        (
            header::HeaderName::from_static("x-tile-cache"),
            HeaderValue::from_static(if built.from_cache { "hit" } else { "miss" }),
        ),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == built.etag || t.trim() == "*")
        });
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache_headers).into_response());
    }
    let mut resp = if accepts_gzip(headers) {
        // the cached bytes themselves, not a copy
        let body = axum::body::Bytes::from_owner(SharedTile(built.gzip.clone()));
        let mut resp = (cache_headers, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        resp
    } else {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(built.gzip.as_slice())
            .read_to_end(&mut plain)
            .map_err(|e| ApiError::Internal(format!("decompressing a cached tile: {e}")))?;
        (cache_headers, plain).into_response()
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MVT_TYPE));
    Ok(resp)
}

/// `GET /tiles/{layer}.json`: TileJSON 3.0 naming the tile URL with the same filter.
pub(super) async fn tilejson(
    State(s): State<AppState>,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let Some(name) = file.strip_suffix(".json") else {
        return Err(ApiError::NotFound(format!(
            "no tile document {file:?}: TileJSON is at /tiles/incidents.json and /tiles/grids.json"
        )));
    };
    let layer = layer_of(name)?;
    let filter = filter_of(&s, raw)?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let query = filter.query();
    let suffix = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let bounds =
        s.gw.map_bounds()
            .await?
            .unwrap_or([-180.0, -85.0, 180.0, 85.0]);
    let fields = match layer {
        Layer::Incidents => json!({
            "count": "Number: reports in the cell (1 for a raw point)",
            "id": "Number: report id (raw points only)",
            "category": "String: category code (raw points only)",
            "source": "String: grid_worker, rider, resident or hotline (raw points only)",
            "state": "String: the case's state (raw points only)",
            "reported_at": "Number: epoch seconds (raw points only)",
        }),
        Layer::Grids => json!({
            "code": "String: grid code", "name": "String", "level": "String: grid or micro_grid",
            "reports": "Number", "density_km2": "Number: reports per km²", "area_km2": "Number",
            "cases": "Number", "closure_rate": "Number: 0–1", "overdue": "Number",
            "satisfaction_rate": "Number: 0–1",
        }),
    };
    Ok(Json(json!({
        "tilejson": "3.0.0",
        "name": format!("gridwatch {}", layer.as_str()),
        "description": match layer {
            Layer::Incidents => format!("reports: weighted cells below zoom {RAW_FROM_ZOOM}, raw points from it"),
            Layer::Grids => "current grids and micro-grids with their figures".to_owned(),
        },
        "scheme": "xyz",
        "tiles": [format!("{scheme}://{host}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt{suffix}", layer.as_str())],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0, 11],
        "vector_layers": [{"id": layer.as_str(), "fields": fields, "minzoom": 0, "maxzoom": MAX_ZOOM}],
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_only_to_those_who_take_it() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&h("*")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
