//! Open311 GeoReport v2 as use cases: services are the report categories (with the attributes
//! their definitions ask for), a request is a report and its case, a client is known by its API
//! key. Wire formats (JSON, XML) are the http layer's business.

use super::{Gridwatch, Result, WorkflowError};
use crate::access::password::sha256_hex;
use crate::storage::open311::{Open311Extra, RequestFilter, RequestRow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The jurisdiction this service answers for: 乌海市 (GB/T 2260 code).
pub const JURISDICTION: &str = "150300";
/// The key the demo accepts (`serve --demo`), so that clients can try it at once.
pub const DEMO_API_KEY: &str = "demo";
/// Most requests in one answer (the specification's default cap).
pub const MAX_REQUESTS: i64 = 1000;
/// `start_date` to `end_date` may span at most this many days; without them, the last 90 days.
pub const MAX_SPAN_DAYS: i64 = 90;

/// An Open311 failure: its HTTP status and description, as the specification reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open311Error {
    pub code: u16,
    pub description: String,
}

impl Open311Error {
    pub fn bad(description: impl Into<String>) -> Self {
        Open311Error {
            code: 400,
            description: description.into(),
        }
    }

    pub fn forbidden(description: impl Into<String>) -> Self {
        Open311Error {
            code: 403,
            description: description.into(),
        }
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        Open311Error {
            code: 404,
            description: description.into(),
        }
    }
}

/// The description of a 503 for want of the database.
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable; try again shortly";

impl From<WorkflowError> for Open311Error {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::Invalid { field, message } => {
                Open311Error::bad(format!("{field}: {message}"))
            }
            WorkflowError::NotFound(m) => Open311Error::not_found(m),
            WorkflowError::TooLarge(m) => Open311Error {
                code: 413,
                description: m,
            },
            WorkflowError::Unsupported(m) => Open311Error {
                code: 415,
                description: m,
            },
            WorkflowError::Unavailable(m) => Open311Error {
                code: 503,
                description: m,
            },
            WorkflowError::Storage(s) if s.is_disk_full() => {
                tracing::error!("open311: {s}");
                Open311Error {
                    code: 503,
                    description: super::DATABASE_DISK_FULL.into(),
                }
            }
            WorkflowError::Storage(s) if s.is_unavailable() => {
                tracing::error!("open311: {s}");
                Open311Error {
                    code: 503,
                    description: DATABASE_UNAVAILABLE.into(),
                }
            }
            other => {
                tracing::error!("open311: {other}");
                Open311Error {
                    code: 500,
                    description: "internal error".into(),
                }
            }
        }
    }
}

/// One attribute of a service definition.
#[derive(Debug, Clone, Serialize)]
pub struct Attribute {
    pub variable: bool,
    pub code: &'static str,
    pub datatype: &'static str,
    pub required: bool,
    pub datatype_description: &'static str,
    pub order: u32,
    pub description: &'static str,
    pub values: Vec<AttributeValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributeValue {
    pub key: &'static str,
    pub name: &'static str,
}

fn values(pairs: &[(&'static str, &'static str)]) -> Vec<AttributeValue> {
    pairs
        .iter()
        .map(|(key, name)| AttributeValue { key, name })
        .collect()
}

/// The questions a category's service definition asks, in order.
pub fn attributes(category: &str) -> Vec<Attribute> {
    let attr =
        |code, datatype, required, order, description, vals: &[(&'static str, &'static str)]| {
            Attribute {
                variable: true,
                code,
                datatype,
                required,
                datatype_description: "",
                order,
                description,
                values: values(vals),
            }
        };
    match category {
        "fire_lane_blocked" => vec![attr(
            "obstruction",
            "singlevaluelist",
            true,
            1,
            "堵塞物 What blocks the lane",
            &[
                ("vehicle", "车辆 vehicle"),
                ("ebike", "电动车 e-bike"),
                ("goods", "杂物 goods"),
            ],
        )],
        "flying_lead_charging" | "water_supply" => {
            vec![attr("floor", "number", false, 1, "楼层 Floor", &[])]
        }
        "oil_smoke" => vec![attr(
            "business_name",
            "string",
            false,
            1,
            "商户名称 Business name",
            &[],
        )],
        "sewer_blockage" => vec![attr(
            "overflowing",
            "singlevaluelist",
            true,
            1,
            "是否外溢 Is it overflowing",
            &[("yes", "是 yes"), ("no", "否 no")],
        )],
        _ => Vec::new(),
    }
}

/// Checks submitted `attribute[code]` values against the definition; returns them as JSON.
pub fn check_attributes(
    category: &str,
    given: &BTreeMap<String, Vec<String>>,
) -> std::result::Result<Value, Open311Error> {
    let defs = attributes(category);
    let mut out = serde_json::Map::new();
    for code in given.keys() {
        if !defs.iter().any(|d| d.code == code) {
            return Err(Open311Error::bad(format!(
                "attribute[{code}]: service {category} has no such attribute"
            )));
        }
    }
    for d in &defs {
        let vals: Vec<&String> = given
            .get(d.code)
            .map(|v| v.iter().filter(|s| !s.trim().is_empty()).collect())
            .unwrap_or_default();
        if vals.is_empty() {
            if d.required {
                return Err(Open311Error::bad(format!(
                    "attribute[{}]: required ({})",
                    d.code, d.description
                )));
            }
            continue;
        }
        let one = || -> std::result::Result<&String, Open311Error> {
            match vals.as_slice() {
                [v] => Ok(v),
                _ => Err(Open311Error::bad(format!(
                    "attribute[{}]: takes one value",
                    d.code
                ))),
            }
        };
        let v = match d.datatype {
            "number" => {
                let s = one()?;
                let n: f64 = s.trim().parse().map_err(|_| {
                    Open311Error::bad(format!("attribute[{}]: {s:?} is not a number", d.code))
                })?;
                json!(n)
            }
            "singlevaluelist" => {
                let s = one()?;
                if !d.values.iter().any(|x| x.key == s.as_str()) {
                    let keys: Vec<&str> = d.values.iter().map(|x| x.key).collect();
                    return Err(Open311Error::bad(format!(
                        "attribute[{}]: {s:?} is not one of {}",
                        d.code,
                        keys.join(", ")
                    )));
                }
                json!(s)
            }
            _ => {
                let s = one()?;
                if s.chars().count() > 500 {
                    return Err(Open311Error::bad(format!(
                        "attribute[{}]: longer than 500 characters",
                        d.code
                    )));
                }
                json!(s.trim())
            }
        };
        out.insert(d.code.to_owned(), v);
    }
    Ok(Value::Object(out))
}

/// A `POST requests` as parsed from the form.
#[derive(Debug, Clone, Default)]
pub struct RequestInput {
    pub api_key: Option<String>,
    pub jurisdiction_id: Option<String>,
    pub service_code: Option<String>,
    pub lat: Option<String>,
    pub long: Option<String>,
    pub address_string: Option<String>,
    pub address_id: Option<String>,
    pub description: Option<String>,
    pub media_url: Option<String>,
    /// email, device_id, account_id, first_name, last_name, phone: private
    pub reporter: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    /// extension: wgs84 (default), gcj02 or bd09
    pub crs: Option<String>,
    /// extension: grid_worker, rider, resident (default) or hotline
    pub source: Option<String>,
    /// extension: a photo sent as the `media` part of a multipart/form-data POST, with its
    /// Content-Type; kept like a snap-and-report photo, and `media_url` then points to it
    pub media: Option<(Vec<u8>, Option<String>)>,
    /// `http://host` of the request, for the `media_url` of an uploaded photo
    pub base_url: String,
}

/// What `POST requests` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub service_request_id: String,
    pub token: String,
    pub service_notice: String,
    pub account_id: Option<String>,
}

/// A request as `GET requests` shows it: public, so the reporter is never in it and the
/// location is rounded to about 100 m.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub service_request_id: String,
    pub status: &'static str,
    pub status_notes: String,
    pub service_name: String,
    pub service_code: String,
    pub description: String,
    pub agency_responsible: String,
    pub service_notice: Option<String>,
    pub requested_datetime: DateTime<Utc>,
    pub updated_datetime: DateTime<Utc>,
    pub expected_datetime: Option<DateTime<Utc>>,
    pub address: String,
    pub address_id: Option<String>,
    pub zipcode: Option<String>,
    pub lat: f64,
    pub long: f64,
    pub media_url: Option<String>,
}

/// The case states that Open311 calls closed.
const CLOSED: [&str; 4] = ["closed", "evaluated", "rejected", "merged"];
const OPEN: [&str; 5] = [
    "reported",
    "accepted",
    "whistled",
    "acknowledged",
    "resolved",
];

fn state_zh(state: &str) -> &'static str {
    match state {
        "reported" => "待受理",
        "accepted" => "已受理",
        "whistled" => "已吹哨",
        "acknowledged" => "已应哨",
        "resolved" => "已答卷",
        "closed" => "已办结",
        "evaluated" => "已评价",
        "rejected" => "不予受理",
        "merged" => "已合并",
        _ => "",
    }
}

/// About 100 m: three decimals of a degree.
fn public_coordinate(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Gridwatch {
    /// Registers an API key for a machine client (only its hash is stored).
    pub async fn add_api_key(
        &self,
        name: &str,
        key: &str,
        purpose: crate::access::ClientPurpose,
    ) -> Result<i64> {
        if name.trim().is_empty() {
            return Err(WorkflowError::invalid("name", "is required"));
        }
        Ok(self
            .db
            .add_api_client(name.trim(), &sha256_hex(key), purpose.as_str())
            .await?)
    }

    pub fn check_jurisdiction(&self, j: Option<&str>) -> std::result::Result<(), Open311Error> {
        match j {
            None | Some("") | Some(JURISDICTION) => Ok(()),
            Some(other) => Err(Open311Error::not_found(format!(
                "jurisdiction_id {other:?} is not served here; this endpoint serves {JURISDICTION} (乌海市)"
            ))),
        }
    }

    /// `POST requests`: files the report (and opens its case) for a client with a valid key.
    pub async fn open311_submit(
        &self,
        input: RequestInput,
    ) -> std::result::Result<Created, Open311Error> {
        let key = input
            .api_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Open311Error::forbidden("api_key is required to file a request"))?;
        let (client_id, _) = self
            .db
            .api_client(&sha256_hex(key))
            .await
            .map_err(WorkflowError::from)?
            .ok_or_else(|| Open311Error::forbidden("api_key is not valid"))?;
        self.check_jurisdiction(input.jurisdiction_id.as_deref())?;
        let code = input
            .service_code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Open311Error::bad("service_code is required"))?;
        if !self.categories().contains_key(code) {
            return Err(Open311Error::not_found(format!(
                "service_code {code:?} not found; see GET services"
            )));
        }
        let (lat, long) = match (input.lat.as_deref(), input.long.as_deref()) {
            (Some(lat), Some(long)) => {
                let parse = |name: &str, v: &str| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| Open311Error::bad(format!("{name}: {v:?} is not a number")))
                };
                (parse("lat", lat)?, parse("long", long)?)
            }
            (None, None) if input.address_string.is_some() || input.address_id.is_some() => {
                return Err(Open311Error::bad("lat and long are required: this endpoint locates requests by coordinates and does not geocode address_string or address_id"));
            }
            _ => return Err(Open311Error::bad("lat and long are required")),
        };
        let attributes = check_attributes(code, &input.attributes)?;
        let media_url = match input
            .media_url
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            Some(m) if m.starts_with("http://") || m.starts_with("https://") => Some(m.to_owned()),
            Some(m) => {
                return Err(Open311Error::bad(format!(
                    "media_url: {m:?} is not an http(s) URL"
                )))
            }
            None => None,
        };
        if media_url.is_some() && input.media.is_some() {
            return Err(Open311Error::bad(
                "media_url and a media upload were both given; send one",
            ));
        }
        let (photos, media_url) = match input.media.clone() {
            Some((bytes, declared)) => {
                let (photo, _) = self.upload_photo(bytes, declared).await?;
                let url = format!("{}{}", input.base_url, photo.url);
                (vec![photo.id], Some(url))
            }
            None => (Vec::new(), media_url),
        };
        let report = super::intake::ReportInput {
            category: code.to_owned(),
            lon: long,
            lat,
            crs: input.crs.clone(),
            description: input.description.clone(),
            source: input.source.clone().unwrap_or_else(|| "resident".into()),
            reported_at: None,
            photos,
            ..Default::default()
        };
        let token = {
            use rand::Rng;
            let bytes: [u8; 12] = rand::rng().random();
            hex::encode(bytes)
        };
        let extra = Open311Extra {
            token: token.clone(),
            api_client_id: client_id,
            jurisdiction_id: input.jurisdiction_id.clone().filter(|j| !j.is_empty()),
            attributes,
            reporter: json!(input.reporter),
            address_string: input.address_string.clone(),
            media_url,
        };
        let filed = self.file_report_with(&report, Some(extra)).await?;
        Ok(Created {
            service_request_id: filed.id.to_string(),
            token,
            service_notice: filed.routing.why_zh.clone(),
            account_id: input.reporter.get("account_id").cloned(),
        })
    }

    /// `GET requests` (and `requests/{id}`): the filter as given, or the last 90 days.
    pub async fn open311_requests(
        &self,
        mut filter: RequestFilter,
        statuses: &[String],
        page_size: i64,
        page: i64,
    ) -> std::result::Result<Vec<RequestView>, Open311Error> {
        for s in statuses {
            match s.as_str() {
                "open" => filter.states.extend(OPEN.iter().map(|s| (*s).to_owned())),
                "closed" => filter.states.extend(CLOSED.iter().map(|s| (*s).to_owned())),
                other => {
                    return Err(Open311Error::bad(format!(
                        "status {other:?}: expected open or closed"
                    )))
                }
            }
        }
        for c in &filter.categories {
            if !self.categories().contains_key(c) {
                return Err(Open311Error::not_found(format!(
                    "service_code {c:?} not found"
                )));
            }
        }
        if filter.ids.is_empty() {
            let span = chrono::Duration::days(MAX_SPAN_DAYS);
            match (filter.start, filter.end) {
                (Some(s), Some(e)) if e < s => {
                    return Err(Open311Error::bad("end_date is before start_date"))
                }
                (Some(s), Some(e)) if e - s > span => {
                    return Err(Open311Error::bad(format!(
                        "start_date to end_date may not span more than {MAX_SPAN_DAYS} days"
                    )))
                }
                (Some(s), None) => filter.end = Some(s + span),
                (None, Some(e)) => filter.start = Some(e - span),
                (None, None) => filter.start = Some(self.clock.now() - span),
                _ => {}
            }
        }
        let rows = self
            .db
            .open311_requests(&filter, page_size, (page - 1) * page_size)
            .await
            .map_err(WorkflowError::from)?;
        Ok(rows.into_iter().map(|r| self.request_view(r)).collect())
    }

    fn request_view(&self, r: RequestRow) -> RequestView {
        let closed = CLOSED.contains(&r.state.as_str());
        let service_name = self
            .categories()
            .get(&r.category)
            .map_or_else(|| r.category.clone(), |c| c.name_zh.clone());
        RequestView {
            service_request_id: r.id.to_string(),
            status: if closed { "closed" } else { "open" },
            status_notes: format!("{} {}", r.state, state_zh(&r.state)),
            service_name,
            service_code: r.category,
            description: r.description,
            agency_responsible: r.agency,
            service_notice: None,
            requested_datetime: r.reported_at,
            updated_datetime: r.updated_at,
            // When the department must answer next (the escalation policy), or the agreed deadline.
            expected_datetime: if closed {
                None
            } else {
                r.deadline.or(r.next_due)
            },
            address: r.address,
            address_id: r.grid_code,
            zipcode: None,
            lat: public_coordinate(r.lat),
            long: public_coordinate(r.lon),
            media_url: r.media_url,
        }
    }

    /// `GET tokens/{token}`.
    pub async fn open311_token(&self, token: &str) -> std::result::Result<i64, Open311Error> {
        self.db
            .open311_token(token)
            .await
            .map_err(WorkflowError::from)?
            .ok_or_else(|| Open311Error::not_found(format!("token {token:?} not found")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            m.entry((*k).to_owned()).or_default().push((*v).to_owned());
        }
        m
    }

    #[test]
    fn attributes_are_checked_against_the_definition() {
        assert_eq!(
            check_attributes("fire_lane_blocked", &given(&[("obstruction", "ebike")])).unwrap(),
            json!({"obstruction": "ebike"})
        );
        let e = check_attributes("fire_lane_blocked", &given(&[])).unwrap_err();
        assert!(
            e.description
                .starts_with("attribute[obstruction]: required"),
            "{e:?}"
        );
        let e =
            check_attributes("fire_lane_blocked", &given(&[("obstruction", "boat")])).unwrap_err();
        assert!(e.description.contains("vehicle, ebike, goods"), "{e:?}");
        let e = check_attributes("oil_smoke", &given(&[("colour", "x")])).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            check_attributes("water_supply", &given(&[("floor", "17")])).unwrap(),
            json!({"floor": 17.0})
        );
        assert!(check_attributes("water_supply", &given(&[("floor", "top")])).is_err());
        assert!(
            check_attributes("water_supply", &given(&[("floor", "1"), ("floor", "2")])).is_err()
        );
        assert_eq!(
            check_attributes("neighbour_dispute", &given(&[])).unwrap(),
            json!({})
        );
    }

    #[test]
    fn public_locations_are_rounded_to_about_100_m() {
        assert_eq!(public_coordinate(106.840_549), 106.841);
        assert_eq!(public_coordinate(39.671_96), 39.672);
    }

    #[test]
    fn keys_are_kept_as_sha256() {
        assert_eq!(
            sha256_hex("demo"),
            "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"
        );
    }
}
