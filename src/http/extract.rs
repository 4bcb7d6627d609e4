//! Request parsing that answers in the API's error format and names the offending field,
//! instead of axum's plain-text rejections.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

/// Parses a JSON body, naming the field at fault.
pub fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body_bytes(body)?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && path != "?").then_some(path);
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            inner.to_string()
        };
        ApiError::BadRequest { message, field }
    })
}

/// The raw body, with a too-large body answered by 413.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(inner) if inner.to_string().contains("length limit") => {
            ApiError::PayloadTooLarge(format!("request body too large: {inner}"))
        }
        other if other.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(other.body_text())
        }
        other => ApiError::bad_request(other.body_text(), None),
    })
}

/// Parses a query string, naming the parameter at fault.
pub fn query<T: DeserializeOwned>(raw: Option<String>) -> Result<T, ApiError> {
    let raw = raw.unwrap_or_default();
    if let Some((name, _)) =
        form_urlencoded::parse(raw.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(ApiError::bad_request(
            format!("parameter {name:?} contains a NUL character (%00)"),
            Some(&name),
        ));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && path != "?").then_some(path);
        ApiError::BadRequest {
            message: format!("bad query string: {}", e.into_inner()),
            field,
        }
    })
}

/// A comma-separated list parameter (`category=a,b`): trimmed, empty items dropped.
pub fn comma_list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The region a `region`/`parent` parameter names, as a link; 404 when there is none.
pub fn region_link(
    gw: &crate::workflow::Gridwatch,
    code: &str,
) -> Result<crate::workflow::intake::Link, ApiError> {
    gw.index()
        .get(code)
        .map(|r| crate::workflow::intake::Link {
            code: code.to_owned(),
            name: r.name.clone(),
        })
        .ok_or_else(|| ApiError::NotFound(format!("no region with code {code}")))
}
