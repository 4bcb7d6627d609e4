//! Reports and the category catalogue.

use super::{db, Db, Result};
use crate::tiles::quadkey::tile_key;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventClass {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Category {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub event_class: EventClass,
}

/// A report ready to be written: validated, converted to WGS-84 and assigned.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub category: String,
    pub lon: f64,
    pub lat: f64,
    pub input_lon: f64,
    pub input_lat: f64,
    pub input_crs: &'static str,
    pub description: String,
    pub source: &'static str,
    pub reported_at: DateTime<Utc>,
    pub locate_status: &'static str,
    pub district_code: Option<String>,
    pub street_code: Option<String>,
    pub community_code: Option<String>,
    pub grid_code: Option<String>,
    pub micro_grid_code: Option<String>,
    pub region_code: Option<String>,
    pub region_version_id: Option<i64>,
    pub distance_m: Option<f64>,
    /// set when the report came through Open311
    pub open311: Option<Box<super::open311::Open311Extra>>,
    /// the client's Idempotency-Key and the SHA-256 of its submission
    pub idempotency: Option<(String, String)>,
    /// uploaded photos the report takes, in order
    pub photos: Vec<String>,
    /// who filed it, when they said (staff-only)
    pub reporter: Option<super::photos::Reporter>,
}

/// A stored report as the API lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ReportRow {
    pub id: i64,
    pub category: String,
    pub lon: f64,
    pub lat: f64,
    pub input_lon: f64,
    pub input_lat: f64,
    pub input_crs: String,
    pub description: String,
    pub source: String,
    pub reported_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub locate_status: String,
    pub district_code: Option<String>,
    pub street_code: Option<String>,
    pub community_code: Option<String>,
    pub grid_code: Option<String>,
    pub micro_grid_code: Option<String>,
    pub region_code: Option<String>,
    /// boundary version of the deepest region at filing time
    pub region_version: Option<i32>,
    pub distance_m: Option<f64>,
}

/// Filters shared by the report list and the heat layer. All optional.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// min lon, min lat, max lon, max lat (WGS-84)
    pub bbox: Option<[f64; 4]>,
    /// region code: the region and everything below it
    pub region: Option<String>,
    pub categories: Vec<String>,
    pub from: Option<DateTime<Utc>>,
    /// exclusive upper bound
    pub to: Option<DateTime<Utc>>,
}

const FILTER_SQL: &str =
    "($1::float8[] is null or r.geom && st_makeenvelope($1[1], $1[2], $1[3], $1[4], 4326))
       and ($2::text is null or r.region_code like $2 || '%')
       and (cardinality($3::text[]) = 0 or r.category = any($3))
       and ($4::timestamptz is null or r.reported_at >= $4)
       and ($5::timestamptz is null or r.reported_at < $5)";

impl Db {
    pub async fn categories(&self) -> Result<Vec<Category>> {
        let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
            "select c.code, c.name_zh, c.name_en, e.code, e.name_zh, e.name_en
               from category c join event_class e on e.code = c.event_class
              order by c.sort_order, c.code",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing categories"))?;
        Ok(rows
            .into_iter()
            .map(|(code, name_zh, name_en, ec, ec_zh, ec_en)| Category {
                code,
                name_zh,
                name_en,
                event_class: EventClass {
                    code: ec,
                    name_zh: ec_zh,
                    name_en: ec_en,
                },
            })
            .collect())
    }

    /// Writes reports in one statement (UNNEST arrays), returning their ids in input order.
    pub async fn insert_reports(&self, reports: &[NewReport]) -> Result<Vec<i64>> {
        let mut conn = self.pool.acquire().await.map_err(db("writing reports"))?;
        insert_reports(&mut conn, reports).await
    }

    pub async fn report(&self, id: i64) -> Result<Option<ReportRow>> {
        let sql = format!("{REPORT_SELECT} where r.id = $1");
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a report"))
    }

    /// Newest first; `before_id` continues a previous page.
    pub async fn reports(
        &self,
        filter: &ReportFilter,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ReportRow>> {
        let sql = format!(
            "{REPORT_SELECT} where {FILTER_SQL} and ($6::int8 is null or r.id < $6)
              order by r.id desc limit $7"
        );
        sqlx::query_as(&sql)
            .bind(filter.bbox.map(|b| b.to_vec()))
            .bind(&filter.region)
            .bind(&filter.categories)
            .bind(filter.from)
            .bind(filter.to)
            .bind(before_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing reports"))
    }

    /// Positions and categories of the matching reports, for the heatmap.
    pub async fn heat_points(&self, filter: &ReportFilter) -> Result<Vec<(f64, f64, String)>> {
        let sql = format!(
            "select st_x(r.geom), st_y(r.geom), r.category from report r where {FILTER_SQL}"
        );
        sqlx::query_as(&sql)
            .bind(filter.bbox.map(|b| b.to_vec()))
            .bind(&filter.region)
            .bind(&filter.categories)
            .bind(filter.from)
            .bind(filter.to)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing heat points"))
    }

    /// The report filed under an Idempotency-Key, and the hash of the submission it came with.
    pub async fn idempotent_report(&self, key: &str) -> Result<Option<(i64, String)>> {
        sqlx::query_as("select report_id, request_sha256 from report_idempotency where key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("looking up an idempotency key"))
    }

    pub async fn report_count(&self) -> Result<i64> {
        sqlx::query_scalar("select count(*) from report")
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting reports"))
    }
}

/// The bulk insert behind [`Db::insert_reports`], on any connection or transaction.
async fn insert_reports(conn: &mut sqlx::PgConnection, reports: &[NewReport]) -> Result<Vec<i64>> {
    let col = |f: fn(&NewReport) -> Option<String>| -> Vec<Option<String>> {
        reports.iter().map(f).collect()
    };
    let ids: Vec<i64> = sqlx::query_scalar(
        "insert into report (category, geom, input_lon, input_lat, input_crs, description, source,
                             reported_at, locate_status, district_code, street_code, community_code,
                             grid_code, micro_grid_code, region_code, region_version_id, distance_m,
                             tile_key)
         select cat, st_setsrid(st_makepoint(lon, lat), 4326), ilon, ilat, icrs, descr, src,
                rep_at, status, d, s, c, g, m, rc, rv, dist, tk
           from unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::text[],
                       $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::text[],
                       $13::text[], $14::text[], $15::text[], $16::text[], $17::int8[], $18::float8[],
                       $19::int8[])
                with ordinality
                as t(cat, lon, lat, ilon, ilat, icrs, descr, src, rep_at, status, d, s, c, g, m, rc, rv, dist, tk, ord)
          order by ord
         returning id",
    )
    .bind(reports.iter().map(|r| r.category.as_str()).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.lon).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.lat).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.input_lon).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.input_lat).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.input_crs).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.description.as_str()).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.source).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.reported_at).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.locate_status).collect::<Vec<_>>())
    .bind(col(|r| r.district_code.clone()))
    .bind(col(|r| r.street_code.clone()))
    .bind(col(|r| r.community_code.clone()))
    .bind(col(|r| r.grid_code.clone()))
    .bind(col(|r| r.micro_grid_code.clone()))
    .bind(col(|r| r.region_code.clone()))
    .bind(reports.iter().map(|r| r.region_version_id).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.distance_m).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| tile_key(r.lon, r.lat)).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(db("writing reports"))?;
    Ok(ids)
}

const REPORT_SELECT: &str = "select r.id, r.category, st_x(r.geom) as lon, st_y(r.geom) as lat,
        r.input_lon, r.input_lat, r.input_crs, r.description, r.source, r.reported_at, r.received_at,
        r.locate_status, r.district_code, r.street_code, r.community_code, r.grid_code,
        r.micro_grid_code, r.region_code, v.version as region_version, r.distance_m
   from report r left join region_version v on v.id = r.region_version_id";

/// The width of a trend's buckets, in China time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// One bucket of a trend: its first day (China time), the reports filed in it, and of the cases
/// they opened those closed (or evaluated) by now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TrendBucket {
    #[schema(value_type = String, format = Date)]
    pub start: chrono::NaiveDate,
    pub reports: i64,
    pub closed: i64,
}

impl Db {
    /// Reports per day, week (from Monday) or month under `filter` (bbox ignored), every bucket
    /// from the first report's to the last's (or `from` to `to` when given), empty ones included.
    pub async fn trend(
        &self,
        filter: &ReportFilter,
        interval: Interval,
    ) -> Result<Vec<TrendBucket>> {
        let sql = format!(
            "with r as (
                 select (r.reported_at at time zone 'Asia/Shanghai') as local,
                        c.state in ('closed', 'evaluated') as closed
                   from report r left join dispatch_case c on c.report_id = r.id
                  where {FILTER_SQL}),
             span as (
                 select date_trunc('{i}', coalesce($4 at time zone 'Asia/Shanghai', min(local))) as first,
                        date_trunc('{i}', coalesce(($5 at time zone 'Asia/Shanghai') - interval '1 microsecond',
                                                   max(local))) as last
                   from r),
             buckets as (
                 select generate_series(first, last, interval '1 {i}') as start from span
                  where first is not null)
             select b.start::date as start, count(r.local) as reports,
                    count(*) filter (where r.closed) as closed
               from buckets b
               left join r on date_trunc('{i}', r.local) = b.start
              group by b.start order by b.start",
            i = interval.as_str()
        );
        sqlx::query_as(&sql)
            .bind(None::<Vec<f64>>)
            .bind(filter.region.as_deref())
            .bind(&filter.categories)
            .bind(filter.from)
            .bind(filter.to)
            .fetch_all(&self.pool)
            .await
            .map_err(db("counting a trend"))
    }
}

/// A grid's reports of one category in three windows (see `analysis::emerging`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WindowCounts {
    pub grid_code: String,
    pub grid_name: String,
    pub category: String,
    pub current: i64,
    pub previous: i64,
    pub last_year: i64,
}

impl Db {
    /// Per grid (under `region`) and category: the reports in `[cur_from, cur_to)`,
    /// `[prev_from, cur_from)` and `[ly_from, ly_to)`, for the pairs with any in the current one.
    #[allow(clippy::too_many_arguments)]
    pub async fn window_counts(
        &self,
        region: Option<&str>,
        categories: &[String],
        prev_from: DateTime<Utc>,
        cur_from: DateTime<Utc>,
        cur_to: DateTime<Utc>,
        ly_from: DateTime<Utc>,
        ly_to: DateTime<Utc>,
    ) -> Result<Vec<WindowCounts>> {
        sqlx::query_as(
            "select r.grid_code, g.name as grid_name, r.category,
                    count(*) filter (where r.reported_at >= $4 and r.reported_at < $5) as current,
                    count(*) filter (where r.reported_at >= $3 and r.reported_at < $4) as previous,
                    count(*) filter (where r.reported_at >= $6 and r.reported_at < $7) as last_year
               from report r join region g on g.code = r.grid_code
              where ($1::text is null or r.region_code like $1 || '%')
                and (cardinality($2::text[]) = 0 or r.category = any($2))
                and ((r.reported_at >= $3 and r.reported_at < $5)
                     or (r.reported_at >= $6 and r.reported_at < $7))
              group by r.grid_code, g.name, r.category
             having count(*) filter (where r.reported_at >= $4 and r.reported_at < $5) > 0",
        )
        .bind(region)
        .bind(categories)
        .bind(prev_from)
        .bind(cur_from)
        .bind(cur_to)
        .bind(ly_from)
        .bind(ly_to)
        .fetch_all(&self.pool)
        .await
        .map_err(db("counting reports per period"))
    }
}
