//! The API's one error format: `{"error": {"code", "message", "field"?, "problems"?}}`.
//! 4xx name what is wrong; 5xx say "internal error" and log the cause inside the request span.

use crate::domain::Problem;
use crate::storage::StorageError;
use crate::workflow::WorkflowError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request cannot be read (bad JSON, bad query string)
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// 422: well-formed, but a value is wrong
    Invalid {
        message: String,
        field: String,
    },
    /// 422: an import was refused, with every problem found
    Problems(Vec<Problem>),
    NotFound(String),
    /// 401: log in or send a token
    Unauthenticated(String),
    /// 403: the caller may not do this
    Forbidden(String),
    /// 429: too many requests from this client; retry after this many seconds
    TooManyRequests(String, u64),
    /// 409: the action is not allowed in the case's state; the allowed ones are listed
    Illegal(crate::domain::case::IllegalTransition),
    /// 409: conflicts with what exists
    Conflict(String),
    PayloadTooLarge(String),
    /// 415: the body is not of a type the endpoint takes
    UnsupportedMediaType(String),
    /// 503 naming what does not work (not the database), with Retry-After
    ServiceUnavailable(String),
    /// 503: the database does not answer
    Unavailable(String),
    /// 503: the database is known to be down (`storage::health`); the watcher logged the
    /// outage once, so the refusal itself is not logged
    DatabaseDown(String),
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, field: Option<&str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::Invalid { field, message } => ApiError::Invalid { message, field },
            WorkflowError::Rejected(problems) => ApiError::Problems(problems),
            WorkflowError::NotFound(message) => ApiError::NotFound(message),
            WorkflowError::Illegal(t) => ApiError::Illegal(t),
            WorkflowError::Conflict(message) => ApiError::Conflict(message),
            WorkflowError::TooLarge(message) => ApiError::PayloadTooLarge(message),
            WorkflowError::Unsupported(message) => ApiError::UnsupportedMediaType(message),
            WorkflowError::Unavailable(message) => ApiError::ServiceUnavailable(message),
            WorkflowError::Storage(s) => s.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if e.is_unavailable() {
            return ApiError::Unavailable(e.to_string());
        }
        if e.is_disk_full() {
            tracing::error!("{e}");
            return ApiError::ServiceUnavailable(crate::workflow::DATABASE_DISK_FULL.into());
        }
        if let StorageError::Db(sqlx::Error::Database(d), _) = &e {
            // Constraint violations are the client's doing: name the constraint.
            if let Some(code) = d.code() {
                // Text PostgreSQL cannot store (a NUL character): the client's.
                if code == "22021" || code == "22P05" {
                    return ApiError::bad_request(
                        "text with a NUL character (U+0000) cannot be stored or searched",
                        None,
                    );
                }
                if code == "23503" || code == "23514" || code == "23505" {
                    return ApiError::invalid(
                        d.constraint().unwrap_or("request"),
                        d.message().to_owned(),
                    );
                }
            }
        }
        ApiError::Internal(e.to_string())
    }
}

/// The body of every error answer: what clients read and what the OpenAPI document shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One error. `code` is for programs, `message` for people; `field` names the value at fault.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// the request field or parameter at fault (`[3].lat` inside a list)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `rejected`: every problem found in an import or redraw
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub problems: Option<Vec<Problem>>,
    /// `illegal_transition`: the case's state, the action tried and the actions allowed
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub state: Option<crate::domain::case::CaseState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub action: Option<crate::domain::case::Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed: Option<Vec<crate::domain::case::Action>>,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request cannot be read
    BadRequest,
    /// 422: a value is wrong
    Invalid,
    /// 422: an import or redraw refused, with every problem
    Rejected,
    /// 404 (also a case, report or photo outside the caller's region)
    NotFound,
    /// 401: no session or token, or an unknown one
    Unauthenticated,
    /// 403: the caller's role or region does not allow it
    Forbidden,
    /// 429, with Retry-After
    TooManyRequests,
    /// 409: the action is not allowed in the case's state
    IllegalTransition,
    /// 409: conflicts with what exists
    Conflict,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 503, with Retry-After
    Unavailable,
    /// 500: the cause is in the server's log
    Internal,
}

impl ErrorDetail {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorDetail {
            code,
            message: message.into(),
            field: None,
            problems: None,
            state: None,
            action: None,
            allowed: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use ErrorCode as C;
        let mut retry_seconds: Option<String> = None;
        let database_down = matches!(self, ApiError::Unavailable(_));
        let (status, detail, retry_after) = match self {
            ApiError::Unauthenticated(message) => (
                StatusCode::UNAUTHORIZED,
                ErrorDetail::new(C::Unauthenticated, message),
                None,
            ),
            ApiError::Forbidden(message) => (
                StatusCode::FORBIDDEN,
                ErrorDetail::new(C::Forbidden, message),
                None,
            ),
            ApiError::TooManyRequests(message, seconds) => {
                retry_seconds = Some(seconds.max(1).to_string());
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorDetail::new(C::TooManyRequests, message),
                    None,
                )
            }
            ApiError::BadRequest { message, field } => (
                StatusCode::BAD_REQUEST,
                ErrorDetail {
                    field,
                    ..ErrorDetail::new(C::BadRequest, message)
                },
                None,
            ),
            ApiError::Invalid { message, field } => {
                // Say which field even to a reader who ignores `field`.
                let message = if message.starts_with(&field) || field.is_empty() {
                    message
                } else {
                    format!("{field}: {message}")
                };
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorDetail {
                        field: Some(field),
                        ..ErrorDetail::new(C::Invalid, message)
                    },
                    None,
                )
            }
            ApiError::Problems(problems) => {
                let message = format!("{} problem(s) found; nothing was written", problems.len());
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorDetail {
                        problems: Some(problems),
                        ..ErrorDetail::new(C::Rejected, message)
                    },
                    None,
                )
            }
            ApiError::NotFound(message) => (
                StatusCode::NOT_FOUND,
                ErrorDetail::new(C::NotFound, message),
                None,
            ),
            ApiError::Illegal(t) => {
                let message = t.to_string();
                (
                    StatusCode::CONFLICT,
                    ErrorDetail {
                        state: Some(t.from),
                        action: Some(t.action),
                        allowed: Some(t.allowed),
                        ..ErrorDetail::new(C::IllegalTransition, message)
                    },
                    None,
                )
            }
            ApiError::Conflict(message) => (
                StatusCode::CONFLICT,
                ErrorDetail::new(C::Conflict, message),
                None,
            ),
            ApiError::PayloadTooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorDetail::new(C::PayloadTooLarge, message),
                None,
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorDetail::new(C::UnsupportedMediaType, message),
                None,
            ),
            ApiError::ServiceUnavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorDetail::new(C::Unavailable, message),
                Some("30"),
            ),
            ApiError::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorDetail::new(
                        C::Unavailable,
                        "the database is unavailable; try again shortly",
                    ),
                    Some("5"),
                )
            }
            ApiError::DatabaseDown(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorDetail::new(C::Unavailable, message),
                Some("5"),
            ),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorDetail::new(C::Internal, "internal error"),
                    None,
                )
            }
        };
        let mut resp = (status, Json(ErrorBody { error: detail })).into_response();
        if let Some(seconds) = retry_after {
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static(seconds));
        }
        if let Some(v) = retry_seconds.and_then(|s| axum::http::HeaderValue::from_str(&s).ok()) {
            resp.headers_mut().insert("retry-after", v);
        }
        if database_down {
            resp.extensions_mut().insert(DatabaseUnavailable);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer realm=\"gridwatch\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Marks a response that failed because the database could not be reached, so that the
/// database gate can have the breaker probe at once (see `storage::health`).
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUnavailable;
