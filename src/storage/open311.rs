//! Open311 storage: API clients (by the SHA-256 of their key) and the reads of GeoReport v2's
//! `requests`. The Open311 row of a request is written with its report, in
//! [`super::dispatch`]'s filing statement.

use super::{db, Db, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What an Open311 request carries beyond its report (written beside it, never shown publicly
/// except the token and the media URL).
#[derive(Debug, Clone, Serialize)]
pub struct Open311Extra {
    pub token: String,
    pub api_client_id: i64,
    pub jurisdiction_id: Option<String>,
    pub attributes: serde_json::Value,
    pub reporter: serde_json::Value,
    pub address_string: Option<String>,
    pub media_url: Option<String>,
}

/// A request as GeoReport v2 lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: i64,
    pub category: String,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub reported_at: DateTime<Utc>,
    pub state: String,
    pub updated_at: DateTime<Utc>,
    pub agency: String,
    pub deadline: Option<DateTime<Utc>>,
    pub next_due: Option<DateTime<Utc>>,
    pub address: String,
    pub grid_code: Option<String>,
    pub media_url: Option<String>,
    pub token: Option<String>,
}

/// The filters of `GET requests`; empty lists mean "any".
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub ids: Vec<i64>,
    pub categories: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub states: Vec<String>,
}

impl Db {
    /// The client whose key hashes to `key_sha256`, unless revoked: (id, name).
    pub async fn api_client(&self, key_sha256: &str) -> Result<Option<(i64, String)>> {
        sqlx::query_as(
            "select id, name from api_client
              where key_sha256 = $1 and revoked_at is null and purpose = 'reports'",
        )
        .bind(key_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up an API key"))
    }

    /// Registers a client key (its hash); an existing hash is left as it is. Returns the id.
    pub async fn add_api_client(&self, name: &str, key_sha256: &str, purpose: &str) -> Result<i64> {
        sqlx::query_scalar(
            "insert into api_client (name, key_sha256, purpose) values ($1, $2, $3)
             on conflict (key_sha256) do update set name = api_client.name
             returning id",
        )
        .bind(name)
        .bind(key_sha256)
        .bind(purpose)
        .fetch_one(&self.pool)
        .await
        .map_err(db("adding an API client"))
    }

    /// Requests newest first, `offset` and `limit` for paging.
    pub async fn open311_requests(
        &self,
        f: &RequestFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RequestRow>> {
        sqlx::query_as(
            "select r.id, r.category, r.description, st_x(r.geom) as lon, st_y(r.geom) as lat,
                    r.reported_at, c.state, c.updated_at,
                    coalesce(ld.name_zh, rl.name_zh, lr.name, c.routed_lead) as agency,
                    c.deadline,
                    (select min(e.due_at) from escalation_deadline e
                       join case_whistle w on w.id = e.whistle_id
                      where w.case_id = c.id and e.fired_at is null and e.cancelled_at is null) as next_due,
                    concat_ws(' ', sr.name, cr.name, gr.name) as address, c.grid_code,
                    o.media_url, o.token
               from report r
               join dispatch_case c on c.report_id = r.id
               left join open311_request o on o.report_id = r.id
               left join department ld on ld.code = c.lead_department
               left join department rl on c.routed_kind = 'department' and rl.code = c.routed_lead
               left join region lr on c.routed_kind = 'territory' and lr.code = c.routed_lead
               left join region sr on sr.code = c.street_code
               left join region cr on cr.code = c.community_code
               left join region gr on gr.code = c.grid_code
              where (cardinality($1::int8[]) = 0 or r.id = any($1))
                and (cardinality($2::text[]) = 0 or r.category = any($2))
                and ($3::timestamptz is null or r.reported_at >= $3)
                and ($4::timestamptz is null or r.reported_at <= $4)
                and (cardinality($5::text[]) = 0 or c.state = any($5))
              order by r.reported_at desc, r.id desc
              limit $6 offset $7",
        )
        .bind(&f.ids)
        .bind(&f.categories)
        .bind(f.start)
        .bind(f.end)
        .bind(&f.states)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing Open311 requests"))
    }

    /// The request a token stands for.
    pub async fn open311_token(&self, token: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("select report_id from open311_request where token = $1")
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("looking up a token"))
    }
}
