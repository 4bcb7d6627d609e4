//! `GET /api/v1/dashboard`: a street or community leader's figures for their region — totals,
//! reports by category and every grid's figures — as JSON, or the grids as CSV or GeoJSON for
//! export.

use super::dispatch::csv_field;
use super::error::{ApiError, ApiResult};
use super::extract::{query, region_link};
use super::AppState;
use crate::domain::Level;
use crate::storage::dashboard::GridFigures;
use crate::workflow::intake::Link;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DashboardQuery {
    /// a district, street or community code
    region: String,
    /// comma-separated category codes
    category: Option<String>,
    /// comma-separated sources
    source: Option<String>,
    /// comma-separated case states
    state: Option<String>,
    /// a date (YYYY-MM-DD, from its start, China time) or an RFC 3339 time
    from: Option<String>,
    /// a date (to its end, China time) or an RFC 3339 time
    to: Option<String>,
    /// json (default), csv (the grids) or geojson (the grids with their boundaries)
    format: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DashboardTotals {
    reports: i64,
    cases: i64,
    closed: i64,
    /// cases not rejected: those a closure is owed for
    accountable: i64,
    /// closed of the accountable cases; absent without such cases
    closure_rate: Option<f64>,
    /// closed cases the reporter rated
    rated: i64,
    /// rated satisfied (4 or 5)
    satisfied: i64,
    /// satisfied of those rated; absent without ratings
    satisfaction_rate: Option<f64>,
    /// open past a deadline or with an unanswered escalation card
    overdue: i64,
    grids: usize,
    area_km2: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CategoryCount {
    code: String,
    name: String,
    name_en: String,
    reports: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DashboardGrid {
    code: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    community: Option<Link>,
    reports: i64,
    density_km2: Option<f64>,
    area_km2: f64,
    cases: i64,
    closure_rate: Option<f64>,
    overdue: i64,
    satisfaction_rate: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Dashboard {
    region: Link,
    level: String,
    totals: DashboardTotals,
    /// categories with reports, most first
    categories: Vec<CategoryCount>,
    /// every current grid of the region, most reports first
    grids: Vec<DashboardGrid>,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn grid_row(g: &GridFigures) -> DashboardGrid {
    DashboardGrid {
        code: g.code.clone(),
        name: g.name.clone(),
        community: g.community_code.as_ref().map(|code| Link {
            code: code.clone(),
            name: g.community_name.clone().unwrap_or_default(),
        }),
        reports: g.reports,
        density_km2: (g.area_km2 > 0.0).then(|| g.reports as f64 / g.area_km2),
        area_km2: g.area_km2,
        cases: g.cases,
        closure_rate: rate(g.closed, g.accountable),
        overdue: g.overdue,
        satisfaction_rate: rate(g.satisfied, g.rated),
    }
}

/// The CSV and GeoJSON columns, in order.
const GRID_COLUMNS: [&str; 11] = [
    "code",
    "name",
    "community_code",
    "community_name",
    "reports",
    "density_km2",
    "area_km2",
    "cases",
    "closure_rate",
    "overdue",
    "satisfaction_rate",
];

/// A grid's row as flat properties, in [`GRID_COLUMNS`] order.
fn flat(row: &DashboardGrid) -> Vec<(&'static str, Value)> {
    let values = [
        json!(row.code),
        json!(row.name),
        json!(row.community.as_ref().map(|c| &c.code)),
        json!(row.community.as_ref().map(|c| &c.name)),
        json!(row.reports),
        json!(row.density_km2),
        json!(row.area_km2),
        json!(row.cases),
        json!(row.closure_rate),
        json!(row.overdue),
        json!(row.satisfaction_rate),
    ];
    GRID_COLUMNS.into_iter().zip(values).collect()
}

fn grids_csv(rows: &[DashboardGrid]) -> String {
    let mut out = GRID_COLUMNS.join(",");
    out.push('\n');
    for row in rows {
        let fields: Vec<String> = flat(row)
            .into_iter()
            .map(|(_, v)| match v {
                Value::Null => String::new(),
                Value::String(s) => csv_field(&s),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if !n.is_i64() => format!("{f:.4}"),
                    _ => n.to_string(),
                },
                other => csv_field(&other.to_string()),
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

fn grids_geojson(rows: &[DashboardGrid], figures: &[GridFigures]) -> ApiResult<Value> {
    let features = rows
        .iter()
        .zip(figures)
        .map(|(row, g)| {
            let geometry: Value = match &g.geometry {
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| ApiError::Internal(format!("grid {} boundary: {e}", g.code)))?,
                None => Value::Null,
            };
            let properties: serde_json::Map<String, Value> = flat(row)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            Ok(json!({"type": "Feature", "id": row.code, "geometry": geometry, "properties": properties}))
        })
        .collect::<ApiResult<Vec<Value>>>()?;
    Ok(json!({"type": "FeatureCollection", "features": features}))
}

fn attachment(content_type: &str, name: String, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/dashboard",
    operation_id = "dashboard",
    tag = "reports",
    summary = "A district's, street's or community's figures: totals, reports by category and every grid's figures, as JSON, or the grids as CSV or GeoJSON",
    params(DashboardQuery),
    responses(
        (status = 200, description = "the figures (JSON); with format=csv a CSV of the grids, with format=geojson a FeatureCollection of them", body = Dashboard),
        (status = 404, description = "no region with that code", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn dashboard(
    State(s): State<AppState>,
    axum::Extension(grant): axum::Extension<crate::access::Grant>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut q: DashboardQuery = query(raw)?;
    // A leader asking for more than their region gets their region; another region is refused.
    if let Some(own) = grant.narrow(Some(&q.region))? {
        if own != q.region && own.len() > 12 {
            return Err(ApiError::Forbidden(format!(
                "your region {own} is a grid: dashboards are for districts, streets and communities"
            )));
        }
        q.region = own;
    }
    let region = region_link(&s.gw, &q.region)?;
    let level = s.gw.index().get(&q.region).map(|r| r.level);
    let level = match level {
        Some(l @ (Level::District | Level::Street | Level::Community)) => l,
        Some(other) => {
            return Err(ApiError::invalid(
                "region",
                format!(
                    "{} is a {}: give a district, street or community",
                    q.region,
                    other.as_str()
                ),
            ))
        }
        None => {
            return Err(ApiError::NotFound(format!(
                "no region with code {}",
                q.region
            )))
        }
    };
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv" | "geojson") {
        return Err(ApiError::invalid(
            "format",
            format!("{format:?}: expected json, csv or geojson"),
        ));
    }
    let filter =
        super::tiles::filter_from_parts(&s, &q.category, &q.source, &q.state, &q.from, &q.to)?;
    let now = s.gw.clock.now();
    let figures =
        s.gw.db
            .region_grids(&region.code, &filter, now, format == "geojson")
            .await?;
    let grids: Vec<DashboardGrid> = figures.iter().map(grid_row).collect();
    match format {
        "csv" => {
            // A BOM, so spreadsheet programs read the Chinese names as UTF-8.
            let body = format!("\u{feff}{}", grids_csv(&grids));
            let name = format!("gridwatch-grids-{}.csv", region.code);
            return Ok(attachment("text/csv; charset=utf-8", name, body));
        }
        "geojson" => {
            let body = grids_geojson(&grids, &figures)?.to_string();
            let name = format!("gridwatch-grids-{}.geojson", region.code);
            return Ok(attachment("application/geo+json", name, body));
        }
        _ => {}
    }
    let totals = s.gw.db.region_totals(&region.code, &filter, now).await?;
    let known = s.gw.categories();
    let categories =
        s.gw.db
            .region_categories(&region.code, &filter)
            .await?
            .into_iter()
            .map(|(code, reports)| {
                let (name, name_en) = match known.get(&code) {
                    Some(c) => (c.name_zh.clone(), c.name_en.clone()),
                    None => (code.clone(), code.clone()),
                };
                CategoryCount {
                    code,
                    name,
                    name_en,
                    reports,
                }
            })
            .collect();
    Ok(Json(Dashboard {
        region,
        level: level.as_str().to_owned(),
        totals: DashboardTotals {
            reports: totals.reports,
            cases: totals.cases,
            closed: totals.closed,
            accountable: totals.accountable,
            closure_rate: rate(totals.closed, totals.accountable),
            rated: totals.rated,
            satisfied: totals.satisfied,
            satisfaction_rate: rate(totals.satisfied, totals.rated),
            overdue: totals.overdue,
            grids: grids.len(),
            area_km2: figures.iter().map(|g| g.area_km2).sum(),
        },
        categories,
        grids,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: &str, name: &str, closure: Option<f64>) -> DashboardGrid {
        DashboardGrid {
            code: code.into(),
            name: name.into(),
            community: Some(Link {
                code: "150302001001".into(),
                name: "新华社区".into(),
            }),
            reports: 7,
            density_km2: Some(14.0),
            area_km2: 0.5,
            cases: 6,
            closure_rate: closure,
            overdue: 1,
            satisfaction_rate: None,
        }
    }

    #[test]
    fn csv_has_the_columns_and_quotes_names_with_commas() {
        let csv = grids_csv(&[
            row("150302001001001", "第一网格", Some(0.5)),
            row("150302001001002", "A,B", None),
        ]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], GRID_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "150302001001001,第一网格,150302001001,新华社区,7,14.0000,0.5000,6,0.5000,1,"
        );
        assert_eq!(
            lines[2],
            "150302001001002,\"A,B\",150302001001,新华社区,7,14.0000,0.5000,6,,1,"
        );
    }

    #[test]
    fn rates_are_absent_without_a_denominator() {
        assert_eq!(rate(3, 0), None);
        assert_eq!(rate(3, 4), Some(0.75));
    }
}
