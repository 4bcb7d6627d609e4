//! The figures of a street leader's dashboard: one region's reports and cases in total, by
//! category and per grid, under the same filter and with the same definitions as the grid tiles.

use super::tiles::{area_arguments, case_figures, grid_figure_ctes, REPORT_FILTER};
use super::{db, Db, Result};
use crate::tiles::TileFilter;
use chrono::{DateTime, Utc};

/// A region's totals. Reports count by the deepest region they were assigned to, so reports that
/// lie in the region but in none of its grids count here and in no grid row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Totals {
    pub reports: i64,
    pub cases: i64,
    pub closed: i64,
    /// cases not rejected: the denominator of the closure rate
    pub accountable: i64,
    pub rated: i64,
    pub satisfied: i64,
    pub overdue: i64,
}

/// One current grid of the region with its figures; `geometry` is GeoJSON text when asked for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GridFigures {
    pub code: String,
    pub name: String,
    pub community_code: Option<String>,
    pub community_name: Option<String>,
    pub reports: i64,
    pub area_km2: f64,
    pub cases: i64,
    pub closed: i64,
    pub accountable: i64,
    pub rated: i64,
    pub satisfied: i64,
    pub overdue: i64,
    pub geometry: Option<String>,
}

impl Db {
    /// The totals of the region with code `prefix` (and everything below it) under `filter`.
    pub async fn region_totals(
        &self,
        prefix: &str,
        filter: &TileFilter,
        now: DateTime<Utc>,
    ) -> Result<Totals> {
        let sql = format!(
            "with f as (select rp.id from report rp
                         where rp.region_code like $1 || '%' and {REPORT_FILTER})
             select (select count(*) from f) as reports, cs.*
               from (select {figures}
                       from dispatch_case c join f on f.id = c.report_id
                      where c.state <> 'merged') cs",
            figures = case_figures()
        );
        sqlx::query_as_with(&sql, area_arguments(Some(prefix), filter, now)?)
            .fetch_one(&self.pool)
            .await
            .map_err(db("totalling a region's figures"))
    }

    /// The region's reports per category under `filter`, most first; categories without reports
    /// are left out.
    pub async fn region_categories(
        &self,
        prefix: &str,
        filter: &TileFilter,
    ) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "select rp.category, count(*) as reports
               from report rp
              where rp.region_code like $1 || '%' and {REPORT_FILTER}
              group by rp.category
              order by reports desc, rp.category"
        );
        sqlx::query_as_with(&sql, area_arguments(Some(prefix), filter, Utc::now())?)
            .fetch_all(&self.pool)
            .await
            .map_err(db("counting a region's reports by category"))
    }

    /// The region's current grids with their figures, most reports first, with their boundary as
    /// GeoJSON when `geometry`.
    pub async fn region_grids(
        &self,
        prefix: &str,
        filter: &TileFilter,
        now: DateTime<Utc>,
        geometry: bool,
    ) -> Result<Vec<GridFigures>> {
        let sql = format!(
            "with g as (
                 select r.code, r.name, r.level, r.parent_code, v.geom,
                        st_area(v.geom::geography) / 1e6 as area_km2
                   from region r
                   join region_version v on v.region_code = r.code and v.valid_to is null
                  where r.level = 'grid' and r.code like $1 || '%'),
             {figures}
             select g.code, g.name, p.code as community_code, p.name as community_name,
                    coalesce(rep.reports, 0) as reports, g.area_km2::float8 as area_km2,
                    coalesce(cs.cases, 0) as cases, coalesce(cs.closed, 0) as closed,
                    coalesce(cs.accountable, 0) as accountable, coalesce(cs.rated, 0) as rated,
                    coalesce(cs.satisfied, 0) as satisfied, coalesce(cs.overdue, 0) as overdue,
                    case when $10 then st_asgeojson(g.geom, 7) end as geometry
               from g
               left join region p on p.code = g.parent_code
               left join rep on rep.code = g.code
               left join cs on cs.code = g.code
              order by reports desc, g.code",
            figures = grid_figure_ctes()
        );
        let mut args = area_arguments(Some(prefix), filter, now)?;
        sqlx::Arguments::add(&mut args, geometry)
            .map_err(|e| super::StorageError::Db(sqlx::Error::Encode(e), "encoding a query"))?;
        sqlx::query_as_with(&sql, args)
            .fetch_all(&self.pool)
            .await
            .map_err(db("figuring a region's grids"))
    }
}
