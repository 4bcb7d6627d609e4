//! The API's one error format: `{"error": {"code", "message", "field"?, "problems"?}}`.
//! 4xx name what is wrong; 5xx say "internal error" and log the cause inside the request span.

use crate::domain::Problem;
use crate::storage::StorageError;
use crate::workflow::WorkflowError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

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
        if let StorageError::Db(sqlx_err, _) = &e {
            match sqlx_err {
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                    return ApiError::Unavailable(e.to_string());
                }
                sqlx::Error::Database(d) => {
                    // Constraint violations are the client's doing: name the constraint.
                    if let Some(code) = d.code() {
                        if code == "23503" || code == "23514" || code == "23505" {
                            return ApiError::invalid(
                                d.constraint().unwrap_or("request"),
                                d.message().to_owned(),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest { message, field } => (
                StatusCode::BAD_REQUEST,
                json!({"code": "bad_request", "message": message, "field": field}),
            ),
            ApiError::Invalid { message, field } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "code": "invalid",
                    // Say which field even to a reader who ignores `field`.
                    "message": if message.starts_with(&field) || field.is_empty() {
                        message
                    } else {
                        format!("{field}: {message}")
                    },
                    "field": field,
                }),
            ),
            ApiError::Problems(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "code": "rejected",
                    "message": format!("{} problem(s) found; nothing was written", problems.len()),
                    "problems": problems,
                }),
            ),
            ApiError::NotFound(message) => (
                StatusCode::NOT_FOUND,
                json!({"code": "not_found", "message": message}),
            ),
            ApiError::Illegal(t) => (
                StatusCode::CONFLICT,
                json!({
                    "code": "illegal_transition",
                    "message": t.to_string(),
                    "state": t.from,
                    "action": t.action,
                    "allowed": t.allowed,
                }),
            ),
            ApiError::Conflict(message) => (
                StatusCode::CONFLICT,
                json!({"code": "conflict", "message": message}),
            ),
            ApiError::PayloadTooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"code": "payload_too_large", "message": message}),
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"code": "unsupported_media_type", "message": message}),
            ),
            ApiError::ServiceUnavailable(message) => {
                let mut resp = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": {"code": "unavailable", "message": message}})),
                )
                    .into_response();
                resp.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("30"));
                return resp;
            }
            ApiError::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                let mut resp = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": {"code": "unavailable", "message": "the database is unavailable; try again shortly"}})),
                )
                    .into_response();
                resp.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("5"));
                return resp;
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"code": "internal", "message": "internal error"}),
                )
            }
        };
        let mut body = body;
        if let Some(obj) = body.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        (status, Json(json!({ "error": body }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
