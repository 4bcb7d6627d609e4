//! `GET /api/v1/emerging`: per grid and category, this week's or month's reports against the
//! period before and the same period last year, with the "rising" ones first.

use super::error::{ApiError, ApiResult};
use super::extract::{comma_list, query, region_link};
use super::reports::china;
use super::AppState;
use crate::analysis::emerging::rising;
use crate::workflow::intake::Link;
use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Most rows answered.
pub const MAX_ROWS: usize = 200;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EmergingQuery {
    /// a region code: its grids only (default: the whole city)
    region: Option<String>,
    /// week (from Monday, default) or month, in China time
    period: Option<String>,
    /// a day (YYYY-MM-DD) in the period to look at (default: today, China time)
    at: Option<String>,
    /// comma-separated category codes
    category: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Window {
    #[schema(value_type = String, format = Date)]
    from: NaiveDate,
    /// the last day in the window
    #[schema(value_type = String, format = Date)]
    to: NaiveDate,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EmergingRow {
    grid: Link,
    category: String,
    current: i64,
    previous: i64,
    last_year: i64,
    /// P(X ≥ current) for a Poisson count with the larger baseline as its mean
    p: f64,
    rising: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Emerging {
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Link>,
    period: String,
    current: Window,
    previous: Window,
    last_year: Window,
    /// how many rows are rising (all of them are listed first)
    rising: usize,
    rows: Vec<EmergingRow>,
}

fn start_of(d: NaiveDate) -> DateTime<Utc> {
    china()
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

#[utoipa::path(
    get,
    path = "/api/v1/emerging",
    operation_id = "emerging",
    tag = "reports",
    summary = "Rising problems: per grid and category, this period against the one before and the same one last year",
    params(EmergingQuery),
    responses(
        (status = 200, description = "the windows compared and the grids' counts, rising ones first", body = Emerging),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn emerging(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Emerging>> {
    let q: EmergingQuery = query(raw)?;
    let period = q.period.as_deref().unwrap_or("week");
    let at = match q.at.as_deref() {
        None => s.gw.clock.now().with_timezone(&china()).date_naive(),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid("at", format!("{v:?} is not a date (YYYY-MM-DD)")))?,
    };
    let (cur_from, cur_to, prev_from) = match period {
        "week" => {
            let monday = at - Duration::days(at.weekday().num_days_from_monday() as i64);
            (
                monday,
                monday + Duration::days(7),
                monday - Duration::days(7),
            )
        }
        "month" => {
            let first = at.with_day(1).unwrap_or(at);
            let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
            let before = first.checked_sub_months(Months::new(1)).unwrap_or(first);
            (first, next, before)
        }
        other => {
            return Err(ApiError::invalid(
                "period",
                format!("{other:?}: expected week or month"),
            ))
        }
    };
    let year_back = |d: NaiveDate| d.checked_sub_months(Months::new(12)).unwrap_or(d);
    let (ly_from, ly_to) = (year_back(cur_from), year_back(cur_to));
    let categories = comma_list(&q.category);
    let known = s.gw.categories();
    if let Some(c) = categories.iter().find(|c| !known.contains_key(c.as_str())) {
        return Err(ApiError::invalid(
            "category",
            format!("unknown category {c:?}"),
        ));
    }
    let region = q
        .region
        .as_deref()
        .map(|code| region_link(&s.gw, code))
        .transpose()?;
    let counts =
        s.gw.db
            .window_counts(
                region.as_ref().map(|r| r.code.as_str()),
                &categories,
                start_of(prev_from),
                start_of(cur_from),
                start_of(cur_to),
                start_of(ly_from),
                start_of(ly_to),
            )
            .await?;
    let mut rows: Vec<EmergingRow> = counts
        .into_iter()
        .map(|c| {
            let (is_rising, p) = rising(c.current, c.previous, c.last_year);
            EmergingRow {
                grid: Link {
                    code: c.grid_code,
                    name: c.grid_name,
                },
                category: c.category,
                current: c.current,
                previous: c.previous,
                last_year: c.last_year,
                p,
                rising: is_rising,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.rising
            .cmp(&a.rising)
            .then(a.p.total_cmp(&b.p))
            .then(b.current.cmp(&a.current))
            .then(a.grid.code.cmp(&b.grid.code))
    });
    let rising_count = rows.iter().filter(|r| r.rising).count();
    rows.truncate(MAX_ROWS);
    let last_day = |d: NaiveDate| d - Duration::days(1);
    Ok(Json(Emerging {
        region,
        period: period.to_owned(),
        current: Window {
            from: cur_from,
            to: last_day(cur_to),
        },
        previous: Window {
            from: prev_from,
            to: last_day(cur_from),
        },
        last_year: Window {
            from: ly_from,
            to: last_day(ly_to),
        },
        rising: rising_count,
        rows,
    }))
}
