//! Report endpoints: the category catalogue, filing, listing and the heat layer.

use super::error::{ApiError, ApiResult};
use super::extract::{json_body, query};
use super::AppState;
use crate::domain::GridCode;
use crate::storage::reports::{Category, ReportFilter, ReportRow};
use crate::workflow::intake::{Filed, ReportInput};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset, NaiveDate, Offset, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

/// The catalogue, each category with its duplicate and packaging settings.
#[utoipa::path(
    get,
    path = "/api/v1/categories",
    operation_id = "reports_categories",
    tag = "reports",
    summary = "The report categories with their duplicate and packaging settings",
    responses(
        (status = 200, description = "categories", body = Vec<serde_json::Value>)
    )
)]
pub(super) async fn categories(State(s): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let settings: std::collections::HashMap<String, _> =
        s.gw.db.category_dispatch().await?.into_iter().collect();
    let categories: Vec<Category> = s.gw.db.categories().await?;
    Ok(Json(
        categories
            .into_iter()
            .map(|c| {
                let mut v = json!(c);
                if let (Some(o), Some(d)) = (v.as_object_mut(), settings.get(&c.code)) {
                    o.insert("dispatch".into(), json!(d));
                }
                v
            })
            .collect(),
    ))
}

/// `POST /reports`; with an `Idempotency-Key` header a retried submission returns the report
/// filed the first time (200, `Idempotent-Replayed: true`) instead of filing it again.
#[utoipa::path(
    post,
    path = "/api/v1/reports",
    operation_id = "reports_create",
    tag = "reports",
    summary = "File a report; it is located, routed and opens a case",
    params(("Idempotency-Key" = Option<String>, Header, description = "client-chosen key; a retry with the same key and body returns the first report")),
    request_body = ReportInput,
    responses(
        (status = 201, description = "filed", body = Filed),
        (status = 200, description = "replayed: the report filed the first time with this Idempotency-Key", body = Filed),
        (status = 409, description = "conflicts with the current state", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn create(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let input: ReportInput = json_body(body)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))
        })
        .transpose()?;
    let Some(key) = key else {
        let filed = s.gw.file_report(&input).await?;
        return Ok((StatusCode::CREATED, Json(filed)).into_response());
    };
    let (filed, replayed) = s.gw.file_report_once(&input, &key).await?;
    if replayed {
        Ok((
            StatusCode::OK,
            [("idempotent-replayed", "true")],
            Json(filed),
        )
            .into_response())
    } else {
        Ok((StatusCode::CREATED, Json(filed)).into_response())
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/{id}",
    operation_id = "reports_get_one",
    tag = "reports",
    summary = "One report",
    params(("id" = i64, Path, description = "report id")),
    responses(
        (status = 200, description = "the report", body = ReportRow),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReportRow>> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("report id {id:?} is not a number"), Some("id"))
    })?;
    s.gw.db
        .report(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no report with id {id}")))
}

/// Query parameters shared by the list and the heat layer.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FilterQuery {
    /// min lon, min lat, max lon, max lat
    bbox: Option<String>,
    region: Option<String>,
    /// comma-separated category codes
    category: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<i64>,
}

/// Calendar dates are days in China Standard Time, where the users are.
pub(super) fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// A date (`2026-03-01`, start of that day; with `end`, start of the next) or an RFC 3339 time.
pub(super) fn parse_time(field: &str, s: &str, end: bool) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(
            field,
            format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"),
        )
    })?;
    let date = if end {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    china()
        .from_local_datetime(&midnight)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| ApiError::invalid(field, format!("{s:?} is not a valid date")))
}

impl FilterQuery {
    fn to_filter(&self) -> ApiResult<ReportFilter> {
        let bbox = match &self.bbox {
            None => None,
            Some(b) => {
                let parts: Vec<f64> = b
                    .split(',')
                    .map(|x| x.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        ApiError::invalid(
                            "bbox",
                            "expected four numbers: min_lon,min_lat,max_lon,max_lat",
                        )
                    })?;
                let ok = parts.len() == 4
                    && parts.iter().all(|v| v.is_finite())
                    && (-180.0..=180.0).contains(&parts[0])
                    && (-180.0..=180.0).contains(&parts[2])
                    && (-90.0..=90.0).contains(&parts[1])
                    && (-90.0..=90.0).contains(&parts[3])
                    && parts[0] <= parts[2]
                    && parts[1] <= parts[3];
                if !ok {
                    return Err(ApiError::invalid(
                        "bbox",
                        "expected min_lon,min_lat,max_lon,max_lat in degrees with min <= max",
                    ));
                }
                Some([parts[0], parts[1], parts[2], parts[3]])
            }
        };
        let region = self
            .region
            .as_deref()
            .map(|r| GridCode::parse(r).map_err(|e| ApiError::invalid("region", e.to_string())))
            .transpose()?
            .map(|c| c.as_str().to_owned());
        let categories: Vec<String> = self
            .category
            .as_deref()
            .map(|c| {
                c.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let from = self
            .from
            .as_deref()
            .map(|s| parse_time("from", s, false))
            .transpose()?;
        let to = self
            .to
            .as_deref()
            .map(|s| parse_time("to", s, true))
            .transpose()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(ApiError::invalid("to", "must be after from"));
            }
        }
        Ok(ReportFilter {
            bbox,
            region,
            categories,
            from,
            to,
        })
    }
}

fn check_categories(s: &AppState, filter: &ReportFilter) -> ApiResult<()> {
    let known = s.gw.categories();
    match filter
        .categories
        .iter()
        .find(|c| !known.contains_key(c.as_str()))
    {
        Some(c) => Err(ApiError::invalid(
            "category",
            format!("unknown category {c:?}"),
        )),
        None => Ok(()),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReportPage {
    reports: Vec<ReportRow>,
    /// pass as `cursor` to get the next page; absent on the last page
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/reports",
    operation_id = "reports_list",
    tag = "reports",
    summary = "Reports, newest first, paginated by cursor",
    params(FilterQuery),
    responses(
        (status = 200, description = "a page of reports", body = ReportPage),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn list(
    State(s): State<AppState>,
    axum::Extension(grant): axum::Extension<crate::access::Grant>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ReportPage>> {
    let q: FilterQuery = query(raw)?;
    let mut filter = q.to_filter()?;
    filter.region = grant.narrow(filter.region.as_deref())?;
    check_categories(&s, &filter)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let reports = s.gw.db.reports(&filter, q.cursor, limit).await?;
    let next_cursor = (reports.len() as i64 == limit)
        .then(|| reports.last().map(|r| r.id))
        .flatten();
    Ok(Json(ReportPage {
        reports,
        next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/heat",
    operation_id = "reports_heat",
    tag = "reports",
    summary = "Report points as GeoJSON for the heat layer",
    params(FilterQuery),
    responses(
        (status = 200, description = "FeatureCollection of points with their category", body = serde_json::Value),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn heat(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: FilterQuery = query(raw)?;
    if q.limit.is_some() || q.cursor.is_some() {
        return Err(ApiError::invalid(
            "limit",
            "the heat layer is not paginated",
        ));
    }
    let filter = q.to_filter()?;
    check_categories(&s, &filter)?;
    let points = s.gw.db.heat_points(&filter).await?;
    let count = points.len();
    let features: Vec<Value> = points
        .into_iter()
        .map(|(lon, lat, category)| {
            json!({
                "type": "Feature",
                "properties": {"category": category},
                "geometry": {"type": "Point", "coordinates": [round6(lon), round6(lat)]},
            })
        })
        .collect();
    Ok(Json(
        json!({"type": "FeatureCollection", "count": count, "features": features}),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TrendQuery {
    /// a region code: that region and everything below it (default: the whole city)
    region: Option<String>,
    /// day, week (from Monday) or month (default), in China time
    interval: Option<String>,
    /// comma-separated category codes
    category: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Most buckets one trend answers.
pub const MAX_BUCKETS: i64 = 2000;

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Trend {
    /// the region asked for, absent for the whole city
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<crate::workflow::intake::Link>,
    interval: String,
    buckets: Vec<crate::storage::reports::TrendBucket>,
    /// Without logging in: every count below this many is given as 0, so a bucket never tells
    /// of one or two reports (or closures).
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed_below: Option<i64>,
}

/// The public form of a trend: counts below `min` become 0.
fn suppress_small(buckets: &mut [crate::storage::reports::TrendBucket], min: i64) {
    for b in buckets {
        if b.reports < min {
            b.reports = 0;
        }
        if b.closed < min {
            b.closed = 0;
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/trend",
    operation_id = "reports_trend",
    tag = "reports",
    summary = "Reports per day, week or month, of a region or the whole city, with how many of their cases are closed",
    params(TrendQuery),
    responses(
        (status = 200, description = "every bucket from the first to the last, empty ones included", body = Trend),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn trend(
    State(s): State<AppState>,
    axum::Extension(grant): axum::Extension<crate::access::Grant>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Trend>> {
    use crate::storage::reports::Interval;
    let q: TrendQuery = query(raw)?;
    let interval_name = q.interval.as_deref().unwrap_or("month");
    let interval = Interval::parse(interval_name).ok_or_else(|| {
        ApiError::invalid(
            "interval",
            format!("{interval_name:?}: expected day, week or month"),
        )
    })?;
    let filter = FilterQuery {
        region: q.region.clone(),
        category: q.category.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        ..Default::default()
    }
    .to_filter()?;
    check_categories(&s, &filter)?;
    let region = filter
        .region
        .as_deref()
        .map(|code| super::extract::region_link(&s.gw, code))
        .transpose()?;
    if let (Some(f), Some(t)) = (filter.from, filter.to) {
        let days = (t - f).num_days();
        let buckets = match interval {
            Interval::Day => days,
            Interval::Week => days / 7,
            Interval::Month => days / 28,
        };
        if buckets > MAX_BUCKETS {
            return Err(ApiError::invalid(
                "interval",
                format!("{buckets} buckets of a {interval_name} from {} to {}: at most {MAX_BUCKETS}; choose a longer interval or a shorter span", q.from.unwrap_or_default(), q.to.unwrap_or_default()),
            ));
        }
    }
    let mut buckets = s.gw.db.trend(&filter, interval).await?;
    let suppressed_below = grant.is_public().then_some(crate::tiles::PUBLIC_MIN_COUNT);
    if let Some(min) = suppressed_below {
        suppress_small(&mut buckets, min);
    }
    Ok(Json(Trend {
        region,
        interval: interval.as_str().to_owned(),
        buckets,
        suppressed_below,
    }))
}

/// Six decimals is 0.1 m: plenty for a heatmap, and a third of the bytes.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_trends_hide_counts_below_the_minimum() {
        use crate::storage::reports::TrendBucket;
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let mut buckets = vec![
            TrendBucket {
                start: day(1),
                reports: 2,
                closed: 1,
            },
            TrendBucket {
                start: day(2),
                reports: 3,
                closed: 2,
            },
            TrendBucket {
                start: day(3),
                reports: 40,
                closed: 3,
            },
        ];
        suppress_small(&mut buckets, 3);
        let counts: Vec<(i64, i64)> = buckets.iter().map(|b| (b.reports, b.closed)).collect();
        assert_eq!(counts, [(0, 0), (3, 0), (40, 3)]);
    }

    #[test]
    fn dates_are_china_days() {
        let from = parse_time("from", "2026-03-01", false).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-02-28T16:00:00+00:00");
        let to = parse_time("to", "2026-03-01", true).unwrap();
        assert_eq!(to.to_rfc3339(), "2026-03-01T16:00:00+00:00");
        assert!(parse_time("from", "yesterday", false).is_err());
        assert!(parse_time("from", "2026-02-30", false).is_err());
    }

    #[test]
    fn bbox_is_checked() {
        let q = FilterQuery {
            bbox: Some("106,39,107,40".into()),
            ..Default::default()
        };
        assert_eq!(
            q.to_filter().unwrap().bbox,
            Some([106.0, 39.0, 107.0, 40.0])
        );
        for bad in [
            "1,2,3",
            "107,39,106,40",
            "a,b,c,d",
            "0,0,0,NaN",
            "0,-91,1,1",
        ] {
            let q = FilterQuery {
                bbox: Some(bad.into()),
                ..Default::default()
            };
            assert!(q.to_filter().is_err(), "{bad}");
        }
    }
}
