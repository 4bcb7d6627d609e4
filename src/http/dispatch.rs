//! Dispatch reference data and figures: departments, routing rules and their preview, the
//! escalation policy, per-category duplicate settings, figures (JSON or CSV), packages, and the
//! service clock.

use super::cases::parse_id;
use super::error::{ApiError, ApiResult};
use super::extract::{json_body, query};
use super::reports::parse_time;
use super::AppState;
use crate::domain::case::EscalationPolicy;
use crate::storage::dispatch::{
    CategoryDispatch, Department, PackageProposal, PackageRow, StatsBy, StatsRow,
};
use crate::workflow::dispatch::{PackageInput, RuleInput, RuleView};
use crate::workflow::intake::{parse_crs, Located};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[utoipa::path(
    get,
    path = "/api/v1/departments",
    operation_id = "dispatch_departments",
    tag = "dispatch",
    summary = "Functional departments cases can be whistled to",
    responses(
        (status = 200, description = "departments", body = Vec<Department>)
    )
)]
pub(super) async fn departments(State(s): State<AppState>) -> Json<Vec<Department>> {
    Json(s.gw.departments())
}

#[utoipa::path(
    get,
    path = "/api/v1/routing-rules",
    operation_id = "dispatch_rules",
    tag = "dispatch",
    summary = "Routing rules",
    responses(
        (status = 200, description = "rules", body = Vec<RuleView>)
    )
)]
pub(super) async fn rules(State(s): State<AppState>) -> ApiResult<Json<Vec<RuleView>>> {
    Ok(Json(s.gw.rules().await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/routing-rules",
    operation_id = "dispatch_create_rule",
    tag = "dispatch",
    summary = "Add a routing rule",
    request_body = RuleInput,
    responses(
        (status = 201, description = "the rule", body = RuleView),
        (status = 409, description = "conflicts with the current state", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn create_rule(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let input: RuleInput = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(s.gw.save_rule(None, &input).await?),
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/routing-rules/{id}",
    operation_id = "dispatch_update_rule",
    tag = "dispatch",
    summary = "Change a routing rule",
    params(("id" = i64, Path, description = "rule id")),
    request_body = RuleInput,
    responses(
        (status = 200, description = "the rule", body = RuleView),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 409, description = "conflicts with the current state", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn update_rule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RuleView>> {
    let id = parse_id("rule", &id)?;
    let input: RuleInput = json_body(body)?;
    Ok(Json(s.gw.save_rule(Some(id), &input).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/routing-rules/{id}",
    operation_id = "dispatch_delete_rule",
    tag = "dispatch",
    summary = "Delete a routing rule",
    params(("id" = i64, Path, description = "rule id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn delete_rule(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.gw.delete_rule(parse_id("rule", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    #[param(minimum = -180.0, maximum = 180.0, example = 106.8415)]
    lon: f64,
    #[param(minimum = -90.0, maximum = 90.0, example = 39.664)]
    lat: f64,
    #[param(example = "fire_lane_blocked")]
    category: String,
    crs: Option<String>,
}

/// Where a report of `category` at a point would go, and why.
#[utoipa::path(
    get,
    path = "/api/v1/routing/preview",
    operation_id = "dispatch_preview",
    tag = "dispatch",
    summary = "Where a report of a category at a point would go, and why",
    params(PreviewQuery),
    responses(
        (status = 200, description = "`{located, routing}`", body = serde_json::Value),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn preview(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: PreviewQuery = query(raw)?;
    if !s.gw.categories().contains_key(&q.category) {
        return Err(ApiError::invalid(
            "category",
            format!("unknown category {:?}", q.category),
        ));
    }
    let crs = parse_crs(q.crs.as_deref(), "crs")?;
    let located: Located = s.gw.locate(q.lon, q.lat, crs)?;
    let routed = s.gw.route(&q.category, &located);
    let routing = s.gw.routing_view(&routed, &located);
    Ok(Json(json!({"located": located, "routing": routing})))
}

#[utoipa::path(
    get,
    path = "/api/v1/escalation-policy",
    operation_id = "dispatch_policy",
    tag = "dispatch",
    summary = "The escalation policy",
    responses(
        (status = 200, description = "the policy", body = EscalationPolicy)
    )
)]
pub(super) async fn policy(State(s): State<AppState>) -> ApiResult<Json<EscalationPolicy>> {
    Ok(Json(s.gw.escalation_policy().await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/escalation-policy",
    operation_id = "dispatch_put_policy",
    tag = "dispatch",
    summary = "Replace the escalation policy",
    request_body = EscalationPolicy,
    responses(
        (status = 200, description = "the policy now in force", body = EscalationPolicy),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn put_policy(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<EscalationPolicy>> {
    let p: EscalationPolicy = json_body(body)?;
    s.gw.set_escalation_policy(&p).await?;
    Ok(Json(s.gw.escalation_policy().await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/categories/{code}/dispatch",
    operation_id = "dispatch_put_category_dispatch",
    tag = "dispatch",
    summary = "Set a category's duplicate and packaging settings",
    params(("code" = String, Path, description = "category code")),
    request_body = CategoryDispatch,
    responses(
        (status = 200, description = "`{code, dispatch}`", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn put_category_dispatch(
    State(s): State<AppState>,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let settings: CategoryDispatch = json_body(body)?;
    s.gw.set_category_dispatch(&code, &settings).await?;
    Ok(Json(json!({"code": code, "dispatch": settings})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Stats {
    by: String,
    rows: Vec<StatsRow>,
}

/// The CSV columns, in order.
const STATS_COLUMNS: [&str; 14] = [
    "code",
    "name",
    "cases",
    "closed",
    "closure_rate",
    "whistles",
    "acknowledged_on_time",
    "on_time_rate",
    "mean_ack_minutes",
    "mean_resolve_hours",
    "rated",
    "satisfied",
    "satisfaction_rate",
    "overdue",
];

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn stats_csv(rows: &[StatsRow]) -> String {
    let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let mut out = STATS_COLUMNS.join(",");
    out.push('\n');
    for r in rows {
        let fields = [
            csv_field(&r.code),
            csv_field(&r.name),
            r.cases.to_string(),
            r.closed.to_string(),
            num(r.closure_rate),
            r.whistles.to_string(),
            r.acknowledged_on_time.to_string(),
            num(r.on_time_rate),
            num(r.mean_ack_minutes),
            num(r.mean_resolve_hours),
            r.rated.to_string(),
            r.satisfied.to_string(),
            num(r.satisfaction_rate),
            r.overdue.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[utoipa::path(
    get,
    path = "/api/v1/dispatch/stats",
    operation_id = "dispatch_stats",
    tag = "dispatch",
    summary = "Figures by department, street or grid (JSON or CSV)",
    params(StatsQuery),
    responses(
        (status = 200, description = "figures", content((Stats = "application/json"), (String = "text/csv"))),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn stats(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q: StatsQuery = query(raw)?;
    let by_name = q.by.unwrap_or_else(|| "department".into());
    let by = match by_name.as_str() {
        "department" => StatsBy::Department,
        "street" => StatsBy::Street,
        "grid" => StatsBy::Grid,
        other => {
            return Err(ApiError::invalid(
                "by",
                format!("{other:?}: expected department, street or grid"),
            ))
        }
    };
    let from = q
        .from
        .as_deref()
        .map(|v| parse_time("from", v, false))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|v| parse_time("to", v, true))
            .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(ApiError::invalid("to", "must be after from"));
        }
    }
    let rows =
        s.gw.db
            .dispatch_stats(s.gw.clock.now(), by, from, to)
            .await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(Stats { by: by_name, rows }).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"gridwatch-figures-by-{by_name}.csv\""),
                ),
            ],
            // A BOM, so spreadsheet programs read the Chinese names as UTF-8.
            format!("\u{feff}{}", stats_csv(&rows)),
        )
            .into_response()),
        Some(other) => Err(ApiError::invalid(
            "format",
            format!("{other:?}: expected json or csv"),
        )),
    }
}

fn proposal_json(p: PackageProposal) -> Value {
    json!({
        "street": {"code": p.street_code, "name": p.street_name},
        "category": p.category, "count": p.count, "window_days": p.window_days,
        "case_ids": p.case_ids,
    })
}

fn package_json(p: PackageRow) -> Value {
    json!({
        "id": p.id, "street": {"code": p.street_code, "name": p.street_name},
        "category": p.category, "note": p.note, "actor": p.actor, "created_at": p.created_at,
        "case_ids": p.case_ids,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/packages/proposals",
    operation_id = "dispatch_package_proposals",
    tag = "dispatch",
    summary = "Streets and categories with enough cases to report upward as a package",
    responses(
        (status = 200, description = "proposals", body = Vec<serde_json::Value>)
    )
)]
pub(super) async fn package_proposals(State(s): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let proposals = s.gw.db.package_proposals(s.gw.clock.now()).await?;
    Ok(Json(proposals.into_iter().map(proposal_json).collect()))
}

#[utoipa::path(
    get,
    path = "/api/v1/packages",
    operation_id = "dispatch_packages",
    tag = "dispatch",
    summary = "Packages created so far",
    responses(
        (status = 200, description = "packages", body = Vec<serde_json::Value>)
    )
)]
pub(super) async fn packages(State(s): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let packages = s.gw.db.packages(None).await?;
    Ok(Json(packages.into_iter().map(package_json).collect()))
}

#[utoipa::path(
    post,
    path = "/api/v1/packages",
    operation_id = "dispatch_create_package",
    tag = "dispatch",
    summary = "Create a package (打包) of a street's proposed cases",
    request_body = PackageInput,
    responses(
        (status = 201, description = "the package", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 409, description = "conflicts with the current state", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn create_package(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: PackageInput = json_body(body)?;
    let created = s.gw.create_package(&input).await?;
    Ok((StatusCode::CREATED, Json(package_json(created))))
}

fn clock_json(s: &AppState) -> Value {
    json!({
        "now": s.gw.clock.now(),
        "controllable": s.gw.clock.is_controllable(),
        "offset_minutes": s.gw.clock.offset().num_seconds() as f64 / 60.0,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/clock",
    operation_id = "dispatch_clock",
    tag = "dispatch",
    summary = "The service clock",
    responses(
        (status = 200, description = "`{now, controllable, offset_minutes}`", body = serde_json::Value)
    )
)]
pub(super) async fn clock(State(s): State<AppState>) -> Json<Value> {
    Json(clock_json(&s))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Advance {
    minutes: f64,
}

#[utoipa::path(
    post,
    path = "/api/v1/clock/advance",
    operation_id = "dispatch_advance_clock",
    tag = "dispatch",
    summary = "Move a controllable clock forward (demo and tests only)",
    request_body = Advance,
    responses(
        (status = 200, description = "the clock", body = serde_json::Value),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn advance_clock(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    if !s.gw.clock.is_controllable() {
        return Err(ApiError::NotFound(
            "the clock is the system clock; POST /clock/advance exists only with --controllable-clock".into(),
        ));
    }
    let a: Advance = json_body(body)?;
    if !a.minutes.is_finite() {
        return Err(ApiError::invalid("minutes", "must be a number"));
    }
    s.gw.clock
        .advance(Duration::milliseconds((a.minutes * 60_000.0) as i64))
        .map_err(|e| ApiError::invalid("minutes", e.to_string()))?;
    Ok(Json(clock_json(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("新华街道"), "新华街道");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let row = StatsRow {
            code: "fire_rescue".into(),
            name: "消防救援大队".into(),
            cases: 4,
            closed: 3,
            closure_rate: Some(0.75),
            whistles: 4,
            acknowledged_on_time: 2,
            on_time_rate: Some(0.5),
            mean_ack_minutes: Some(42.0),
            mean_resolve_hours: None,
            rated: 1,
            satisfied: 1,
            satisfaction_rate: Some(1.0),
            overdue: 1,
        };
        let csv = stats_csv(&[row]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], STATS_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "fire_rescue,消防救援大队,4,3,0.7500,4,2,0.5000,42.0000,,1,1,1.0000,1"
        );
    }
}
