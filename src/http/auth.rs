//! Who is calling, and the gate every `/api/v1` request passes: the caller comes from the
//! session cookie or an `Authorization: Bearer` token, the route's rule from
//! [`crate::access::rule`], and the resource in the path is checked against the caller's region
//! before the handler runs. Handlers receive the [`Grant`] as an extension.
//!
//! Also the session endpoints (log in, log out, who am I, change password), the users and audit
//! endpoints for admins, and the rate limits on public submissions and login attempts.

use super::error::{ApiError, ApiResult};
use super::extract::{json_body, query};
use super::AppState;
use crate::access::throttle::Throttle;
use crate::access::{rule, Caller, Denied, Grant, Placement, Principal, Resource, Role};
use crate::storage::accounts::{AccountRow, AuditRow};
use crate::workflow::accounts::{LoginError, NewUser, SESSION_HOURS};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, MatchedPath, Path, RawPathParams, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gw_session";

/// Failed logins per username, and per client address, within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES_PER_USER: u32 = 5;
pub const LOGIN_FAILURES_PER_CLIENT: u32 = 20;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Reports and photos an anonymous client may submit within [`PUBLIC_WINDOW`].
pub const PUBLIC_SUBMISSIONS: u32 = 30;
pub const PUBLIC_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The throttles of one process.
pub struct Limits {
    login_user: Throttle,
    login_client: Throttle,
    public: Throttle,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_user: Throttle::new(LOGIN_FAILURES_PER_USER, LOGIN_WINDOW, 100_000),
            login_client: Throttle::new(LOGIN_FAILURES_PER_CLIENT, LOGIN_WINDOW, 100_000),
            public: Throttle::new(PUBLIC_SUBMISSIONS, PUBLIC_WINDOW, 100_000),
        }
    }
}

impl Limits {
    /// Counts one submission of a client that is not logged in (a resident's report or photo,
    /// an Open311 request under the public demo key); 429 once they have sent too many.
    pub fn public_submission(&self, client: &str) -> ApiResult<()> {
        self.public.hit(client, Instant::now()).map_err(|wait| {
            ApiError::TooManyRequests(
                format!(
                    "too many submissions from {client}: at most {PUBLIC_SUBMISSIONS} in {} minutes without logging in",
                    PUBLIC_WINDOW.as_secs() / 60
                ),
                wait.as_secs(),
            )
        })
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unauthenticated(m) => ApiError::Unauthenticated(m),
            Denied::Forbidden(m) => ApiError::Forbidden(m),
            Denied::Hidden(m) => ApiError::NotFound(m),
        }
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The peer address, for rate limits and the audit log ("local" in-process).
pub(super) fn client_of(req_ext: &axum::http::Extensions) -> String {
    req_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".into())
}

/// The caller of a request: a token wins over a cookie. An unknown token is refused (401)
/// rather than treated as anonymous, so a client with a revoked key learns it at once.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
) -> ApiResult<Caller> {
    if let Some(token) = bearer(headers) {
        return state.gw.token_caller(token).await?.ok_or_else(|| {
            ApiError::Unauthenticated("the API token is unknown or revoked".into())
        });
    }
    if let Some(session) = session_cookie(headers) {
        if let Some(p) = state.gw.session_principal(&session).await? {
            return Ok(Caller::User(p));
        }
    }
    Ok(Caller::Anonymous {
        client: client_of(ext),
    })
}

/// The gate of `/api/v1`: runs after routing (`route_layer`), so the matched route and its path
/// parameters are known.
pub async fn guard(
    State(state): State<AppState>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let params: Vec<(String, String)> = params
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if let Err(e) = admit(&state, &params, &mut req).await {
        return e.into_response();
    }
    let changes = audited_change(&req, &params);
    let response = next.run(req).await;
    if let Some((caller, action, subject, detail)) = changes {
        if response.status().is_success() {
            if let Err(e) = state.gw.audit(&caller, action, &subject, detail).await {
                // The change is made; a lost audit line is logged, not turned into a failure.
                tracing::error!(error = %e, subject, "could not write the audit log");
            }
        }
    }
    response
}

/// The audit entry a successful request will need: changes to grids, dispatch settings and the
/// clock. (Case actions, users and sessions write their own, with more detail.)
fn audited_change(
    req: &Request,
    params: &[(String, String)],
) -> Option<(Caller, &'static str, String, serde_json::Value)> {
    use crate::access::Capability::*;
    let grant = req.extensions().get::<Grant>()?;
    if req.method() == axum::http::Method::GET {
        return None;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()?
        .as_str()
        .trim_start_matches("/api/v1");
    let rule = rule(req.method().as_str(), route)?;
    let action = match rule.capability {
        // computations that write nothing
        EditGrids
            if route.starts_with("/geometry")
                || route.ends_with("/check")
                || route.ends_with("/vectorise")
                || route.ends_with("/review") =>
        {
            return None
        }
        EditGrids => "grid.change",
        ConfigureDispatch => "dispatch.change",
        ControlClock => "clock.advance",
        _ => return None,
    };
    let subject = match params.first() {
        Some((k, v)) if k == "code" => format!("region:{v}"),
        Some((_, v)) => format!(
            "{}:{v}",
            route
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("")
        ),
        None => route.trim_start_matches('/').to_owned(),
    };
    Some((
        grant.caller.clone(),
        action,
        subject,
        serde_json::json!({"method": req.method().as_str(), "route": route}),
    ))
}

async fn admit(state: &AppState, params: &[(String, String)], req: &mut Request) -> ApiResult<()> {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().trim_start_matches("/api/v1").to_owned())
        .unwrap_or_default();
    let Some(rule) = rule(&method, &route) else {
        return Err(ApiError::Forbidden(format!(
            "{method} {route} has no access rule"
        )));
    };
    if rule.resource == Resource::Photo && uploader_key_fits(state, params, req.uri()) {
        // The photo's uploader, whoever they are; the photo handlers need no grant.
        return Ok(());
    }
    let caller = caller(state, req.headers(), req.extensions()).await?;
    let grant = Grant::permit(caller, rule)?;
    if rule.capability == crate::access::Capability::FileReport {
        if let Caller::Anonymous { client } = &grant.caller {
            state.limits.public_submission(client)?;
        }
    }
    let param = |name: &str| -> Option<String> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // City-wide staff see every case, report and photo: no need to look up where one is.
    let placed = grant.scope != crate::access::Scope::All;
    match rule.resource {
        Resource::None => {}
        Resource::Case | Resource::Report | Resource::Photo if !placed => {}
        Resource::Case => {
            if let Some(id) = param("id").and_then(|s| s.parse::<i64>().ok()) {
                check_case(state, &grant, id).await?;
            }
        }
        Resource::Report => {
            if let Some(id) = param("id").and_then(|s| s.parse::<i64>().ok()) {
                check_report(state, &grant, id).await?;
            }
        }
        Resource::Photo => {
            if let Some(id) = param("id") {
                match state.gw.db.photo_report(&id).await? {
                    None => {} // the handler answers 404
                    Some(Some(report)) => check_report(state, &grant, report)
                        .await
                        .map_err(|_| ApiError::NotFound(format!("no photo {id}")))?,
                    // on no report yet: only city-wide staff, who do not get here
                    Some(None) => return Err(ApiError::NotFound(format!("no photo {id}"))),
                }
            }
        }
        Resource::EditedRegion => {
            if let Some(code) = param("code") {
                if !grant.edits(&code) {
                    return Err(ApiError::Forbidden(format!(
                        "region {code} is outside the region you plan"
                    )));
                }
            }
        }
    }
    req.extensions_mut().insert(grant);
    Ok(())
}

/// True when the request carries the uploader key (`?key=`) of the photo its path names. A key
/// that does not fit changes nothing: the route's rule applies as without one.
fn uploader_key_fits(state: &AppState, params: &[(String, String)], uri: &axum::http::Uri) -> bool {
    let Some((_, id)) = params.iter().find(|(k, _)| k == "id") else {
        return false;
    };
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "key" && state.gw.is_photo_key(id, &v))
}

async fn check_case(state: &AppState, grant: &Grant, id: i64) -> ApiResult<()> {
    match state.gw.db.case_placement(id).await? {
        Some(placement) if !grant.sees(&placement) => {
            Err(ApiError::NotFound(format!("no case with id {id}")))
        }
        _ => Ok(()), // visible, or missing: the handler answers 404
    }
}

async fn check_report(state: &AppState, grant: &Grant, id: i64) -> ApiResult<()> {
    let Some(region) = state.gw.db.report_placement(id).await? else {
        return Ok(()); // the handler answers 404
    };
    let departments = match (grant.department(), state.gw.db.case_id_of_report(id).await?) {
        (Some(_), Some(case)) => state
            .gw
            .db
            .case_placement(case)
            .await?
            .map(|p| p.departments)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if grant.sees(&Placement {
        region,
        departments,
    }) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no report with id {id}")))
    }
}

/// What `GET /session` answers: the logged-in user, their role and region.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    #[serde(flatten)]
    pub principal: Principal,
    pub role_name: String,
    /// the name of the scope region
    pub scope_name: Option<String>,
}

fn session_view(state: &AppState, p: Principal) -> SessionView {
    let scope_name = p
        .scope
        .as_ref()
        .and_then(|c| state.gw.index().get(c.as_str()).map(|r| r.name.clone()));
    SessionView {
        role_name: p.role.name_zh().into(),
        scope_name,
        principal: p,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/session",
    operation_id = "session_get",
    tag = "access",
    summary = "The logged-in user",
    responses(
        (status = 200, description = "the user, role and region", body = SessionView),
        (status = 401, description = "not logged in", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn whoami(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> ApiResult<Json<SessionView>> {
    let p = grant
        .caller
        .principal()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("not logged in".into()))?;
    Ok(Json(session_view(&s, p)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/session",
    operation_id = "session_log_in",
    tag = "access",
    summary = "Log in: sets the HttpOnly session cookie",
    request_body = LoginInput,
    responses(
        (status = 200, description = "logged in", body = SessionView),
        (status = 401, description = "wrong username or password", body = crate::http::error::ErrorBody),
        (status = 429, description = "too many failed attempts; Retry-After says when to try again", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn log_in(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let input: LoginInput = json_body(body)?;
    let client = match &grant.caller {
        Caller::Anonymous { client } => client.clone(),
        other => other.actor(),
    };
    let now = Instant::now();
    let user_key = input.username.to_lowercase();
    for (throttle, key) in [
        (&s.limits.login_user, &user_key),
        (&s.limits.login_client, &client),
    ] {
        if let Some(wait) = throttle.is_blocked(key, now) {
            return Err(ApiError::TooManyRequests(
                format!(
                    "too many failed logins; try again in {} minutes",
                    wait.as_secs().div_ceil(60)
                ),
                wait.as_secs(),
            ));
        }
    }
    match s
        .gw
        .log_in(&input.username, &input.password, s.gw.clock.now())
        .await
    {
        Ok((session, principal)) => {
            s.limits.login_user.clear(&user_key);
            let _ =
                s.gw.audit(
                    &Caller::User(principal.clone()),
                    "session.log_in",
                    &format!("user:{}", principal.username),
                    serde_json::json!({"client": client}),
                )
                .await;
            let secure = s.config.secure_cookies
                || headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let cookie = format!(
                "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
                SESSION_HOURS * 3600,
                if secure { "; Secure" } else { "" }
            );
            let mut resp = Json(session_view(&s, principal)).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
            );
            Ok(resp)
        }
        Err(LoginError::Wrong) => {
            let _ = s.limits.login_user.hit(&user_key, now);
            let _ = s.limits.login_client.hit(&client, now);
            let _ =
                s.gw.audit(
                    &grant.caller,
                    "session.log_in_failed",
                    &format!("user:{user_key}"),
                    serde_json::json!({"client": client}),
                )
                .await;
            Err(ApiError::Unauthenticated(
                "wrong username or password".into(),
            ))
        }
        Err(LoginError::Workflow(e)) => Err(e.into()),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/session",
    operation_id = "session_log_out",
    tag = "access",
    summary = "Log out: ends the session and clears the cookie",
    responses((status = 204, description = "logged out"))
)]
pub(super) async fn log_out(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(session) = session_cookie(&headers) {
        s.gw.log_out(&session).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("gw_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    pub current_password: String,
    pub new_password: String,
}

#[utoipa::path(
    put,
    path = "/api/v1/session/password",
    operation_id = "session_change_password",
    tag = "access",
    summary = "Change your password (ends your other sessions)",
    request_body = PasswordInput,
    responses(
        (status = 204, description = "changed"),
        (status = 401, description = "not logged in", body = crate::http::error::ErrorBody),
        (status = 422, description = "wrong current password or a weak new one", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn change_password(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let input: PasswordInput = json_body(body)?;
    let p = grant
        .caller
        .principal()
        .ok_or_else(|| ApiError::Unauthenticated("not logged in".into()))?;
    s.gw.change_password(
        p,
        &input.current_password,
        &input.new_password,
        session_cookie(&headers).as_deref(),
    )
    .await?;
    s.gw.audit(
        &grant.caller,
        "user.password",
        &format!("user:{}", p.username),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "users_list",
    tag = "access",
    summary = "All accounts (admins)",
    responses(
        (status = 200, description = "accounts", body = Vec<AccountRow>),
        (status = 403, description = "not an admin", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn users(State(s): State<AppState>) -> ApiResult<Json<Vec<AccountRow>>> {
    Ok(Json(s.gw.db.accounts().await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub username: String,
    pub display_name: Option<String>,
    #[schema(value_type = String, example = "street_leader")]
    pub role: String,
    /// a region code: required for street and community leaders, grid workers and planners
    pub scope: Option<String>,
    /// a department code: required for responders
    pub department: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedUser {
    pub user: AccountRow,
    /// shown once; the user must change it at first login
    pub one_time_password: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    operation_id = "users_add",
    tag = "access",
    summary = "Add a user with a one-time password (admins)",
    request_body = UserInput,
    responses(
        (status = 201, description = "the user and their one-time password", body = CreatedUser),
        (status = 409, description = "the username is taken", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn add_user(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let input: UserInput = json_body(body)?;
    let role = Role::parse(&input.role).map_err(|e| ApiError::invalid(e.field, e.message))?;
    let (user, one_time_password) =
        s.gw.add_user(NewUser {
            username: input.username,
            display_name: input.display_name,
            role,
            scope: input.scope,
            department: input.department,
            password: None,
        })
        .await?;
    s.gw.audit(
        &grant.caller,
        "user.add",
        &format!("user:{}", user.username),
        serde_json::json!({"role": user.role, "scope": user.scope_code, "department": user.department}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user,
            one_time_password,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{username}/disable",
    operation_id = "users_disable",
    tag = "access",
    summary = "Disable a user: ends their sessions and revokes their tokens (admins)",
    params(("username" = String, Path, description = "the user")),
    responses(
        (status = 204, description = "disabled"),
        (status = 404, description = "no such user", body = crate::http::error::ErrorBody),
        (status = 409, description = "an admin cannot disable themselves", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn disable_user(
    State(s): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    if grant
        .caller
        .principal()
        .is_some_and(|p| p.username == username)
    {
        return Err(ApiError::Conflict("you cannot disable yourself".into()));
    }
    if !s.gw.disable_user(&username).await? {
        return Err(ApiError::NotFound(format!("no user {username:?}")));
    }
    s.gw.audit(
        &grant.caller,
        "user.disable",
        &format!("user:{username}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// e.g. `case:12`, `region:150302001`, `user:xinhua`
    subject: Option<String>,
    /// a username
    actor: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "audit_list",
    tag = "access",
    summary = "The audit log, newest first (admins)",
    params(AuditQuery),
    responses(
        (status = 200, description = "entries", body = Vec<AuditRow>),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn audit(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<AuditRow>>> {
    let q: AuditQuery = query(raw)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    Ok(Json(
        s.gw.db
            .audit_events(q.subject.as_deref(), q.actor.as_deref(), limit)
            .await?,
    ))
}
