//! Open311 GeoReport v2 at `/open311/v2`: `discovery`, `services`, `services/{code}`,
//! `requests` (GET and form-encoded POST), `requests/{id}` and `tokens/{token}`, each as `.json`
//! or `.xml`, with the specification's error format (`[{code, description}]`).
//!
//! Extensions, documented in the README: `page` and `page_size` on `GET requests`; `crs`
//! (wgs84, gcj02, bd09) and `source` on `POST requests`.

use super::error::ApiError;
use super::extract::body_bytes;
use super::AppState;
use crate::storage::open311::RequestFilter;
use crate::workflow::open311::{
    attributes, Open311Error, RequestInput, JURISDICTION, MAX_REQUESTS,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

/// Splits `requests/12.json` into its segments and format.
fn parse_path(path: &str) -> Result<(Vec<String>, Format), Open311Error> {
    let (stem, format) = if let Some(s) = path.strip_suffix(".json") {
        (s, Format::Json)
    } else if let Some(s) = path.strip_suffix(".xml") {
        (s, Format::Xml)
    } else {
        return Err(Open311Error::not_found(format!(
            "/open311/v2/{path}: add the format, .json or .xml"
        )));
    };
    Ok((stem.split('/').map(str::to_owned).collect(), format))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The XML element name of one item of a list named `list`.
fn item_name(list: &str) -> &str {
    match list {
        "service_requests" => "request",
        "services" => "service",
        "attributes" => "attribute",
        "values" => "value",
        "endpoints" => "endpoint",
        "formats" => "format",
        "errors" => "error",
        other => other.strip_suffix('s').unwrap_or(other),
    }
}

fn xml_value(name: &str, v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::Object(o) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in o {
                xml_value(k, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Array(items) => {
            out.push_str(&format!("<{name}>"));
            let item = item_name(name);
            for v in items {
                xml_value(item, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

/// `value` as the format asks; `root` names the XML document element.
fn respond(status: StatusCode, format: Format, root: &str, value: Value) -> Response {
    match format {
        Format::Json => (status, axum::Json(value)).into_response(),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
            xml_value(root, &value, &mut out);
            (
                status,
                [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
                out,
            )
                .into_response()
        }
    }
}

fn error(format: Format, e: Open311Error) -> Response {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = respond(
        status,
        format,
        "errors",
        json!([{"code": e.code, "description": e.description}]),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
        if e.description == crate::workflow::open311::DATABASE_UNAVAILABLE {
            response
                .extensions_mut()
                .insert(super::error::DatabaseUnavailable);
        }
    }
    response
}

/// The 503 the database gate answers while the database is down, in the format `path` (what
/// follows `/open311/v2/`) asks for.
pub(super) fn database_unavailable(path: &str) -> Response {
    let format = parse_path(path).map_or(Format::Json, |(_, f)| f);
    error(
        format,
        Open311Error {
            code: 503,
            description: crate::workflow::open311::DATABASE_UNAVAILABLE.into(),
        },
    )
}

/// Query or form pairs, with repeated keys kept.
fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn single<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn comma_list(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// A w3 datetime (or a date) as the specification's dates are given.
fn parse_date(name: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, Open311Error> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            Open311Error::bad(format!(
                "{name}: {v:?} is not a w3 datetime such as 2026-01-01T00:00:00Z"
            ))
        })
}

fn positive(name: &str, v: Option<&str>, default: i64, max: i64) -> Result<i64, Open311Error> {
    match v {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                Open311Error::bad(format!(
                    "{name}: {s:?} must be a whole number from 1 to {max}"
                ))
            }),
    }
}

pub(super) async fn handle(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
    RawQuery(raw): RawQuery,
    extensions: axum::http::Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (segments, format) = match parse_path(&path) {
        Ok(p) => p,
        Err(e) => return error(Format::Json, e),
    };
    let query = pairs(raw.as_deref().unwrap_or_default().as_bytes());
    let client = super::auth::client_of(&extensions);
    let result = route(
        &s, &method, &headers, &segments, format, &query, &client, body,
    )
    .await;
    match result {
        Ok(r) => r,
        Err(e) => error(format, e),
    }
}

#[allow(clippy::too_many_arguments)] // the parts of one request, each used by some routes
async fn route(
    s: &AppState,
    method: &Method,
    headers: &HeaderMap,
    segments: &[String],
    format: Format,
    query: &[(String, String)],
    client: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Open311Error> {
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    if seg.as_slice() != ["requests"] || method != Method::POST {
        s.gw.check_jurisdiction(single(query, "jurisdiction_id"))?;
    }
    match (method.clone(), seg.as_slice()) {
        (Method::GET, ["discovery"]) => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            let url = format!("http://{host}/open311/v2");
            Ok(respond(StatusCode::OK, format, "discovery", json!({
                "changeset": "2026-12-02T00:00:00Z",
                "contact": "乌海市综治中心 gridwatch",
                "key_service": "API keys are issued by the operator: gridwatch apikey create NAME",
                "endpoints": [{
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": url,
                    "changeset": "2026-12-02T00:00:00Z",
                    "type": "production",
                    "formats": ["application/json", "text/xml"],
                }],
            })))
        }
        (Method::GET, ["services"]) => {
            let services: Vec<Value> = s
                .gw
                .db
                .categories()
                .await
                .map_err(|e| Open311Error::from(crate::workflow::WorkflowError::from(e)))?
                .into_iter()
                .map(|c| {
                    json!({
                        "service_code": c.code,
                        "service_name": c.name_zh,
                        "description": format!("{} ({})", c.name_en, c.event_class.name_en),
                        "metadata": !attributes(&c.code).is_empty(),
                        "type": "realtime",
                        "keywords": format!("{},{}", c.event_class.code, c.event_class.name_zh),
                        "group": c.event_class.name_zh,
                    })
                })
                .collect();
            Ok(respond(StatusCode::OK, format, "services", Value::Array(services)))
        }
        (Method::GET, ["services", code]) => {
            if !s.gw.categories().contains_key(*code) {
                return Err(Open311Error::not_found(format!("service_code {code:?} not found")));
            }
            Ok(respond(StatusCode::OK, format, "service_definition", json!({
                "service_code": code,
                "attributes": attributes(code),
            })))
        }
        (Method::POST, ["requests"]) => {
            let bytes = body_bytes(body).map_err(|e| match e {
                ApiError::PayloadTooLarge(m) => Open311Error { code: 413, description: m },
                _ => Open311Error::bad("the request body could not be read"),
            })?;
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let mut input = RequestInput::default();
            let form = if content_type.starts_with("multipart/form-data") {
                let (fields, media) = multipart(content_type, bytes).await?;
                input.media = media;
                fields
            } else {
                pairs(&bytes)
            };
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            input.base_url = format!("http://{host}");
            for (k, v) in form.iter().chain(query.iter()) {
                let v = v.clone();
                match k.as_str() {
                    "api_key" => input.api_key = Some(v),
                    "jurisdiction_id" => input.jurisdiction_id = Some(v),
                    "service_code" => input.service_code = Some(v),
                    "lat" => input.lat = Some(v),
                    "long" => input.long = Some(v),
                    "address_string" => input.address_string = Some(v),
                    "address_id" => input.address_id = Some(v),
                    "description" => input.description = Some(v),
                    "media_url" => input.media_url = Some(v),
                    "crs" => input.crs = Some(v),
                    "source" => input.source = Some(v),
                    "email" | "device_id" | "account_id" | "first_name" | "last_name" | "phone" => {
                        if !v.is_empty() {
                            input.reporter.insert(k.clone(), v);
                        }
                    }
                    other => {
                        let Some(code) = other.strip_prefix("attribute[").and_then(|r| r.strip_suffix(']')) else {
                            return Err(Open311Error::bad(format!("unknown parameter {other:?}")));
                        };
                        // attribute[code][] is the multivaluelist form.
                        let code = code.trim_end_matches("][");
                        input.attributes.entry(code.to_owned()).or_default().push(v);
                    }
                }
            }
            // The demo's key is public, so its requests count like anonymous reports.
            if input.api_key.as_deref() == Some(crate::workflow::open311::DEMO_API_KEY) {
                if let Err(ApiError::TooManyRequests(description, _)) =
                    s.limits.public_submission(client)
                {
                    return Err(Open311Error {
                        code: 429,
                        description,
                    });
                }
            }
            let created = s.gw.open311_submit(input).await?;
            Ok(respond(StatusCode::CREATED, format, "service_requests", json!([created])))
        }
        (Method::GET, ["requests"]) => {
            let known = ["jurisdiction_id", "service_request_id", "service_code", "start_date", "end_date", "status", "page", "page_size"];
            if let Some((k, _)) = query.iter().find(|(k, _)| !known.contains(&k.as_str())) {
                return Err(Open311Error::bad(format!("unknown parameter {k:?}")));
            }
            let ids = comma_list(single(query, "service_request_id"))
                .into_iter()
                .map(|id| id.parse::<i64>().map_err(|_| Open311Error::bad(format!("service_request_id: {id:?} is not a request id"))))
                .collect::<Result<Vec<_>, _>>()?;
            let filter = RequestFilter {
                ids,
                categories: comma_list(single(query, "service_code")),
                start: parse_date("start_date", single(query, "start_date"))?,
                end: parse_date("end_date", single(query, "end_date"))?,
                states: Vec::new(),
            };
            let page_size = positive("page_size", single(query, "page_size"), MAX_REQUESTS, MAX_REQUESTS)?;
            let page = positive("page", single(query, "page"), 1, 1_000_000)?;
            let statuses = comma_list(single(query, "status"));
            let rows = s.gw.open311_requests(filter, &statuses, page_size, page).await?;
            Ok(respond(StatusCode::OK, format, "service_requests", json!(rows)))
        }
        (Method::GET, ["requests", id]) => {
            let n: i64 = id.parse().map_err(|_| Open311Error::not_found(format!("service_request_id {id:?} not found")))?;
            let filter = RequestFilter { ids: vec![n], ..RequestFilter::default() };
            let rows = s.gw.open311_requests(filter, &[], 1, 1).await?;
            if rows.is_empty() {
                return Err(Open311Error::not_found(format!("service_request_id {id} not found")));
            }
            Ok(respond(StatusCode::OK, format, "service_requests", json!(rows)))
        }
        (Method::GET, ["tokens", token]) => {
            let id = s.gw.open311_token(token).await?;
            Ok(respond(StatusCode::OK, format, "service_requests", json!([{
                "service_request_id": id.to_string(), "token": token,
            }])))
        }
        (m, _) if m != Method::GET && m != Method::POST => Err(Open311Error {
            code: 405,
            description: format!("{m} is not supported; GeoReport v2 uses GET and POST"),
        }),
        _ => Err(Open311Error::not_found(format!(
            "no GeoReport v2 resource at /open311/v2/{}; see discovery.json (jurisdiction {JURISDICTION})",
            segments.join("/")
        ))),
    }
}

/// The text fields of a multipart/form-data body, and its `media` file (the extension for photo
/// uploads) with the part's Content-Type.
async fn multipart(
    content_type: &str,
    body: Bytes,
) -> Result<(Vec<(String, String)>, Option<(Vec<u8>, Option<String>)>), Open311Error> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| Open311Error::bad(format!("multipart/form-data without a boundary: {e}")))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    let mut media = None;
    let bad = |e: multer::Error| Open311Error::bad(format!("malformed multipart/form-data: {e}"));
    while let Some(field) = parts.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "media" {
            if media.is_some() {
                return Err(Open311Error::bad("one media file per request"));
            }
            let declared = field.content_type().map(|m| m.essence_str().to_owned());
            let bytes = field.bytes().await.map_err(bad)?;
            media = Some((bytes.to_vec(), declared));
        } else {
            fields.push((name, field.text().await.map_err(bad)?));
        }
    }
    Ok((fields, media))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_follows_the_specification_s_element_names() {
        let mut out = String::new();
        xml_value(
            "service_requests",
            &json!([{"service_request_id": "7", "media_url": null, "lat": 39.672, "note": "a<b & c"}]),
            &mut out,
        );
        assert_eq!(
            out,
            "<service_requests><request><lat>39.672</lat><media_url/><note>a&lt;b &amp; c</note>\
             <service_request_id>7</service_request_id></request></service_requests>"
        );
        let mut out = String::new();
        xml_value(
            "service_definition",
            &json!({"attributes": [{"values": [{"key": "k"}]}]}),
            &mut out,
        );
        assert_eq!(out, "<service_definition><attributes><attribute><values><value><key>k</key></value></values></attribute></attributes></service_definition>");
    }

    #[test]
    fn paths_need_a_format() {
        assert_eq!(
            parse_path("requests/12.xml").unwrap(),
            (vec!["requests".into(), "12".into()], Format::Xml)
        );
        assert_eq!(parse_path("services.json").unwrap().1, Format::Json);
        assert_eq!(parse_path("services").unwrap_err().code, 404);
    }
}
