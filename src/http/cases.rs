//! Case endpoints of the dispatcher's console: the queue, one case, actions on it, its photos
//! and notices, and the live stream of changes.

use super::error::{ApiError, ApiResult};
use super::extract::{comma_list, json_body, query};
use super::AppState;
use crate::access::Grant;
use crate::domain::GridCode;
use crate::storage::dispatch::{CaseFilter, NoticeRow};
use crate::workflow::dispatch::{ActionInput, CaseDetail, CaseSummary};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;
/// Largest action body: an answer with its photos, base64-encoded.
pub const ACTION_BODY_LIMIT: usize = 72 * 1024 * 1024;

pub(super) fn parse_id(what: &str, s: &str) -> ApiResult<i64> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{what} id {s:?} is not a number"), Some("id")))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CaseQuery {
    state: Option<String>,
    street: Option<String>,
    region: Option<String>,
    category: Option<String>,
    overdue: Option<bool>,
    limit: Option<i64>,
    cursor: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CasePage {
    cases: Vec<CaseSummary>,
    next_cursor: Option<i64>,
    counts: BTreeMap<String, i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/cases",
    operation_id = "cases_list",
    tag = "cases",
    summary = "The case queue with counts by state",
    params(CaseQuery),
    responses(
        (status = 200, description = "a page of cases", body = CasePage),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn list(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<CasePage>> {
    let q: CaseQuery = query(raw)?;
    let states = comma_list(&q.state);
    if let Some(bad) = states.iter().find(|st| {
        !crate::domain::case::CaseState::ALL
            .iter()
            .any(|c| c.as_str() == st.as_str())
    }) {
        return Err(ApiError::invalid(
            "state",
            format!("unknown state {bad:?}: expected reported, accepted, whistled, acknowledged, resolved, closed, evaluated, rejected or merged"),
        ));
    }
    let categories = comma_list(&q.category);
    let known = s.gw.categories();
    if let Some(c) = categories.iter().find(|c| !known.contains_key(c.as_str())) {
        return Err(ApiError::invalid(
            "category",
            format!("unknown category {c:?}"),
        ));
    }
    let code = |field: &str, v: &Option<String>| -> ApiResult<Option<String>> {
        v.as_deref()
            .map(|r| {
                GridCode::parse(r)
                    .map(|c| c.as_str().to_owned())
                    .map_err(|e| ApiError::invalid(field, e.to_string()))
            })
            .transpose()
    };
    let street = code("street", &q.street)?;
    if street.as_ref().is_some_and(|c| c.len() != 9) {
        return Err(ApiError::invalid("street", "a street code has 9 digits"));
    }
    let region = code("region", &q.region)?;
    // A street asked for outside the caller's region is refused like a region would be.
    if let Some(st) = &street {
        grant.narrow(Some(st))?;
    }
    let filter = CaseFilter {
        states,
        street,
        region: grant.narrow(region.as_deref())?,
        categories,
        overdue_only: q.overdue.unwrap_or(false),
        department: grant.department().map(str::to_owned),
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let now = s.gw.clock.now();
    let rows = s.gw.db.cases(now, &filter, q.cursor, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last().map(|c| c.id)
    } else {
        None
    };
    let cases = s.gw.summaries(rows).await?;
    let (by_state, overdue) = s.gw.db.case_counts(now, &filter).await?;
    let mut counts: BTreeMap<String, i64> = crate::domain::case::CaseState::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), 0))
        .collect();
    counts.extend(by_state);
    counts.insert("overdue".into(), overdue);
    Ok(Json(CasePage {
        cases,
        next_cursor,
        counts,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}",
    operation_id = "cases_get_one",
    tag = "cases",
    summary = "One case with its events, staff, duplicates, photos and reporter",
    params(("id" = i64, Path, description = "case id")),
    responses(
        (status = 200, description = "the case", body = CaseDetail),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn get_one(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> ApiResult<Json<CaseDetail>> {
    let id = parse_id("case", &id)?;
    let mut detail = s.gw.case_detail(id).await?;
    disclose(&s, &grant, &mut detail).await?;
    Ok(Json(detail))
}

/// Shows the reporter's name and phone only to roles that read personal data, and writes
/// down that they did; everyone else gets the case without them.
async fn disclose(s: &AppState, grant: &Grant, detail: &mut CaseDetail) -> ApiResult<()> {
    if detail.reporter.is_none() {
        return Ok(());
    }
    if grant.sees_personal_data() {
        s.gw.audit(
            &grant.caller,
            "personal_data.view",
            &format!("case:{}", detail.summary.id),
            serde_json::json!({"report_id": detail.summary.report_id}),
        )
        .await?;
    } else {
        detail.reporter = None;
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/actions",
    operation_id = "cases_act",
    tag = "cases",
    summary = "Act on a case: accept, reject, merge, whistle, acknowledge, resolve, close, evaluate, reopen",
    params(("id" = i64, Path, description = "case id")),
    request_body = ActionInput,
    responses(
        (status = 200, description = "the case after the action", body = CaseDetail),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 409, description = "conflicts with the current state", body = crate::http::error::ErrorBody),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn act(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<CaseDetail>> {
    let id = parse_id("case", &id)?;
    let mut input: ActionInput = json_body(body)?;
    if let Ok(action) = serde_json::from_value::<crate::domain::case::Action>(
        serde_json::Value::String(input.action.clone()),
    ) {
        if !grant.may_take(action) {
            let role = grant
                .caller
                .principal()
                .map(|p| p.role.as_str())
                .unwrap_or("caller");
            return Err(ApiError::Forbidden(format!(
                "a {role} may not {action} a case"
            )));
        }
    }
    // A responder answers for their own department only.
    if let Some(own) = grant.department() {
        match input.department.as_deref() {
            None => input.department = Some(own.to_owned()),
            Some(d) if d == own => {}
            Some(d) => {
                return Err(ApiError::Forbidden(format!(
                    "you answer for {own}, not for {d}"
                )))
            }
        }
    }
    // The history names who acted: the logged-in user, not what the client claims.
    if let Some(p) = grant.caller.principal() {
        input.actor = Some(p.display_name.clone());
    }
    let mut detail = s.gw.act(id, &input, &grant.caller).await?;
    disclose(&s, &grant, &mut detail).await?;
    Ok(Json(detail))
}

#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}/photos/{n}",
    operation_id = "cases_photo",
    tag = "cases",
    summary = "A photo attached to a case's answer",
    params(("id" = i64, Path, description = "case id"), ("n" = i32, Path, description = "photo number")),
    responses(
        (status = 200, description = "the photo", content_type = "image/*", body = Vec<u8>),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn photo(
    State(s): State<AppState>,
    Path((id, n)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("case", &id)?;
    let n: i32 = n.parse().map_err(|_| {
        ApiError::bad_request(format!("photo number {n:?} is not a number"), Some("n"))
    })?;
    let (ct, data) =
        s.gw.db
            .case_photo(id, n)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("case {id} has no photo {n}")))?;
    Ok(([(header::CONTENT_TYPE, ct)], data))
}

#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}/notices",
    operation_id = "cases_notices",
    tag = "cases",
    summary = "Notices sent about a case",
    params(("id" = i64, Path, description = "case id")),
    responses(
        (status = 200, description = "notices", body = Vec<NoticeRow>),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn notices(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<NoticeRow>>> {
    let id = parse_id("case", &id)?;
    // An unknown case is a 404, not an empty list.
    s.gw.db
        .case(s.gw.clock.now(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case with id {id}")))?;
    Ok(Json(s.gw.db.case_notices(id).await?))
}

/// Server-sent events: `event: case` with `{id, state, action}` for every change; a `lagged`
/// event tells a slow reader it missed some and should reload.
#[utoipa::path(
    get,
    path = "/api/v1/cases/stream",
    operation_id = "cases_stream",
    tag = "cases",
    summary = "Server-sent events: `case` with {id, state, action} on every change; `lagged` when some were missed",
    responses(
        (status = 200, description = "event stream", content_type = "text/event-stream", body = String)
    )
)]
pub(super) async fn stream(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.gw.subscribe();
    let stop = s.gw.stopping();
    let seen = (s.clone(), grant);
    let events =
        futures_util::stream::unfold((rx, stop, seen), |(mut rx, mut stop, seen)| async move {
            use tokio::sync::broadcast::error::RecvError;
            let received = loop {
                if *stop.borrow() {
                    return None;
                }
                let r = tokio::select! {
                    r = rx.recv() => r,
                    _ = stop.changed() => return None,
                };
                // Only changes of cases the caller can see.
                if let Ok(change) = &r {
                    if seen.1.scope != crate::access::Scope::All {
                        let placement = seen.0.gw.db.case_placement(change.id).await.ok().flatten();
                        let visible = placement.is_some_and(|p| seen.1.sees(&p));
                        if !visible {
                            continue;
                        }
                    }
                }
                break r;
            };
            let event = match received {
                Ok(change) => Event::default()
                    .event("case")
                    .json_data(&change)
                    .unwrap_or_else(|_| Event::default().event("lagged").data("{}")),
                Err(RecvError::Lagged(n)) => Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (rx, stop, seen)))
        });
    Sse::new(events).keep_alive(KeepAlive::default())
}
