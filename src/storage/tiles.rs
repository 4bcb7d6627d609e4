//! Mapbox Vector Tiles of incidents and grids: incident cells counted from the quadkey index and
//! written here, raw points and grids with their figures built by PostGIS (`ST_AsMVT`).

use super::dispatch::SATISFIED_AT_LEAST;
use super::{db, Db, Result, StorageError};
use crate::tiles::{
    quadkey, TileFilter, TileId, BUFFER, CELLS_PER_SIDE, EXTENT, MAX_RAW_FEATURES, PUBLIC_CELL_M,
    PUBLIC_MIN_COUNT,
};
use chrono::{DateTime, Utc};

/// The filter on reports `rp`: `$4` categories, `$5` from, `$6` to, `$7` sources, `$8` case states
/// (each null for "all").
pub(super) const REPORT_FILTER: &str = "($4::text[] is null or rp.category = any($4))
    and ($5::timestamptz is null or rp.reported_at >= $5)
    and ($6::timestamptz is null or rp.reported_at < $6)
    and ($7::text[] is null or rp.source = any($7))
    and ($8::text[] is null or exists (select 1 from dispatch_case sc
                                        where sc.report_id = rp.id and sc.state = any($8)))";

pub(super) fn list(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// Binds the tile (`$1..$3`) and the report filter (`$4..$8`) to any sqlx query (scalar or
/// rows: they share no trait for `bind`).
macro_rules! bind_tile {
    ($q:expr, $tile:expr, $filter:expr $(,)?) => {{
        let (tile, filter): (TileId, &TileFilter) = ($tile, $filter);
        $q.bind(tile.z as i32)
            .bind(tile.x as i32)
            .bind(tile.y as i32)
            .bind(list(&filter.categories))
            .bind(filter.from)
            .bind(filter.to)
            .bind(list(&filter.sources))
            .bind(list(&filter.states))
    }};
}

/// The tile envelope in Web Mercator (`e`), and in lon/lat with the buffer (`b`), for `$1..$3`.
fn envelope() -> String {
    let margin = BUFFER as f64 / EXTENT as f64;
    format!(
        "box as (select st_tileenvelope($1, $2, $3) as e,
                        st_transform(st_tileenvelope($1, $2, $3, margin => {margin}), 4326) as b)"
    )
}

/// The statements an incidents tile is built with, over the tile `$1..$3` and the report filter
/// `$4..$8`.
///
/// PostGIS's own way, through the spatial index (`report_geom`): `count` (the tile's reports,
/// up to [`MAX_RAW_FEATURES`] + 1), `cells` (cells of `$9` metres with their `count`) and `raw`
/// (points with `id`, `category`, `source`, `state`, `reported_at` in epoch seconds and `count`
/// 1). Public so that `gridwatch bench tiles` can give its peer the PostGIS statements a tile
/// server over this table would run.
///
/// gridwatch's way for cells, through the quadkey index (`report_tile_key`, see
/// [`crate::tiles::quadkey`]): `keyed_cells` (each cell's key and count, for the key ranges
/// `$9`/`$10` and cells `$11` bits up the key) and `raw_unless_crowded` (the raw tile, or null
/// when the key ranges hold more than [`MAX_RAW_FEATURES`] reports).
pub struct IncidentQueries {
    pub count: String,
    pub cells: String,
    /// cells of the public view: small counts left out
    pub public_cells: String,
    pub raw: String,
    pub keyed_cells: String,
    pub raw_unless_crowded: String,
}

pub fn incident_queries() -> &'static IncidentQueries {
    static QUERIES: std::sync::LazyLock<IncidentQueries> =
        std::sync::LazyLock::new(build_incident_queries);
    &QUERIES
}

fn build_incident_queries() -> IncidentQueries {
    let env = envelope();
    let few = format!(
        "select count(*) from (
             select 1 from report rp, box
              where rp.geom && box.b and {REPORT_FILTER}
              limit {}) few",
        MAX_RAW_FEATURES + 1
    );
    // cells of `$9` metres, `having` left to the caller
    let cells = |having: &str| {
        format!(
            "with cells as (
                 -- Web Mercator by its formula: twice as fast as st_transform on every point
                 select floor(6378137 * radians(st_x(rp.geom)) / $9) as cx,
                        floor(6378137 * ln(tan(pi() / 4 + radians(st_y(rp.geom)) / 2)) / $9) as cy,
                        count(*) as n
                   from report rp, box
                  where rp.geom && box.b and {REPORT_FILTER}
                  group by 1, 2 {having})
             select coalesce((select st_asmvt(t, 'incidents', {EXTENT}, 'geom') from (
                 select st_asmvtgeom(st_setsrid(st_makepoint((cx + 0.5) * $9, (cy + 0.5) * $9), 3857),
                                     box.e, {EXTENT}, {BUFFER}, true) as geom,
                        n::int4 as count
                   from cells, box) t where geom is not null), ''::bytea)"
        )
    };
    let raw = format!(
        "select coalesce((select st_asmvt(t, 'incidents', {EXTENT}, 'geom') from (
             select st_asmvtgeom(st_transform(rp.geom, 3857), box.e, {EXTENT}, {BUFFER}, true) as geom,
                    rp.id, rp.category, rp.source, c.state,
                    extract(epoch from rp.reported_at)::int8 as reported_at, 1::int4 as count
               from report rp
               cross join box
               left join dispatch_case c on c.report_id = rp.id
              where rp.geom && box.b and {REPORT_FILTER}) t where geom is not null), ''::bytea)"
    );
    // The reports under the filter in the key ranges `$9`/`$10`, read range by range from the
    // quadkey index (a lateral subquery the planner keeps as it is: one index-only scan a range).
    let keyed = format!(
        "unnest($9::int8[], $10::int8[]) kr(lo, hi)
         cross join lateral (
             select rp.tile_key from report rp
              where rp.tile_key >= kr.lo and rp.tile_key < kr.hi and {REPORT_FILTER}
             offset 0) rp"
    );
    IncidentQueries {
        count: format!("with {env} {few}"),
        cells: format!("with {env} select ({})", cells("")),
        public_cells: format!(
            "with {env} select ({})",
            cells(&format!("having count(*) >= {PUBLIC_MIN_COUNT}"))
        ),
        raw: format!("with {env} {raw}"),
        keyed_cells: format!(
            "select coalesce(array_agg(k), '{{}}'), coalesce(array_agg(n), '{{}}') from (
                 select rp.tile_key >> $11 as k, count(*) as n from {keyed} group by 1) c"
        ),
        // Scalar subqueries in a CASE run only when their branch is taken.
        raw_unless_crowded: format!(
            "with {env} select case when (select count(*) from (select 1 from {keyed} limit {})
                                           few) <= {MAX_RAW_FEATURES} then ({raw}) end",
            MAX_RAW_FEATURES + 1
        ),
    }
}

impl Db {
    /// The incidents of a tile: weighted cells ([`CELLS_PER_SIDE`] a side) below the raw zoom;
    /// at and above it raw points, or fine cells (twice as many a side) when there would be more
    /// than [`MAX_RAW_FEATURES`]. Cells are counted from the quadkey index and written as MVT
    /// here ([`quadkey::cells_mvt`]); raw points come from PostGIS (see [`incident_queries`]).
    ///
    /// `public`: the view without logging in: cells of at least [`PUBLIC_CELL_M`] at every zoom
    /// (never a raw point) and no cell with fewer than [`PUBLIC_MIN_COUNT`] reports.
    pub async fn incidents_tile(
        &self,
        tile: TileId,
        filter: &TileFilter,
        public: bool,
    ) -> Result<Vec<u8>> {
        let queries = incident_queries();
        if public {
            let cell = tile
                .cell_m()
                .unwrap_or(tile.width_m() / (2 * CELLS_PER_SIDE) as f64)
                .max(PUBLIC_CELL_M);
            return bind_tile!(sqlx::query_scalar(&queries.public_cells), tile, filter)
                .bind(cell)
                .fetch_one(&self.pool)
                .await
                .map_err(db("building a public incidents tile"));
        }
        let ranges = quadkey::ranges(tile);
        let lows: Vec<i64> = ranges.iter().map(|r| r.0).collect();
        let highs: Vec<i64> = ranges.iter().map(|r| r.1).collect();
        if tile.cell_m().is_none() {
            let raw: Option<Vec<u8>> = bind_tile!(
                sqlx::query_scalar(&queries.raw_unless_crowded),
                tile,
                filter,
            )
            .bind(&lows)
            .bind(&highs)
            .fetch_one(&self.pool)
            .await
            .map_err(db("building an incidents tile"))?;
            if let Some(raw) = raw {
                return Ok(raw);
            }
        }
        let (keys, counts): (Vec<i64>, Vec<i64>) =
            bind_tile!(sqlx::query_as(&queries.keyed_cells), tile, filter)
                .bind(&lows)
                .bind(&highs)
                .bind(quadkey::cell_shift(quadkey::cell_zoom(tile)))
                .fetch_one(&self.pool)
                .await
                .map_err(db("counting an incidents tile's cells"))?;
        let cells: Vec<(i64, i64)> = keys.into_iter().zip(counts).collect();
        Ok(quadkey::cells_mvt(tile, &cells))
    }

    /// The current grids and micro-grids of a tile, each with its figures for the reports under
    /// the filter: `reports`, `density_km2`, `area_km2`, `cases`, `closure_rate` (closed of the
    /// cases not rejected), `overdue` (open past a deadline or with an unanswered card) and
    /// `satisfaction_rate` (rated 4 or 5 of those rated), as in the dispatch figures.
    ///
    /// `public`: figures of a grid with fewer than [`PUBLIC_MIN_COUNT`] reports (or cases) are
    /// left out, so a single resident's report cannot be read off the map.
    pub async fn grids_tile(
        &self,
        tile: TileId,
        filter: &TileFilter,
        now: DateTime<Utc>,
        public: bool,
    ) -> Result<Vec<u8>> {
        let sql = format!(
            "with {env},
             g as (
                 select r.code, r.name, r.level, v.geom, st_area(v.geom::geography) / 1e6 as area_km2
                   from region r
                   join region_version v on v.region_code = r.code and v.valid_to is null
                  cross join box
                  where r.level in ('grid', 'micro_grid') and v.geom && box.b),
             {figures}
             select coalesce((select st_asmvt(t, 'grids', {EXTENT}, 'geom') from (
                 select st_asmvtgeom(st_transform(g.geom, 3857), box.e, {EXTENT}, {BUFFER}, true) as geom,
                        g.code, g.name, g.level,
                        case when shown.reports then coalesce(rep.reports, 0)::int4 end as reports,
                        case when shown.reports then (coalesce(rep.reports, 0) / nullif(g.area_km2, 0))::float8 end as density_km2,
                        g.area_km2::float8 as area_km2,
                        case when shown.cases then coalesce(cs.cases, 0)::int4 end as cases,
                        case when shown.cases then (cs.closed::float8 / nullif(cs.accountable, 0)) end as closure_rate,
                        case when shown.cases then coalesce(cs.overdue, 0)::int4 end as overdue,
                        case when shown.cases then (cs.satisfied::float8 / nullif(cs.rated, 0)) end as satisfaction_rate
                   from g cross join box
                   left join rep on rep.code = g.code
                   left join cs on cs.code = g.code
                   cross join lateral (select
                       not $10 or coalesce(rep.reports, 0) >= {PUBLIC_MIN_COUNT} or coalesce(rep.reports, 0) = 0 as reports,
                       not $10 or coalesce(cs.cases, 0) >= {PUBLIC_MIN_COUNT} or coalesce(cs.cases, 0) = 0 as cases) shown
                   ) t where geom is not null), ''::bytea)",
            env = envelope(),
            figures = grid_figure_ctes()
        );
        bind_tile!(sqlx::query_scalar(&sql), tile, filter)
            .bind(now)
            .bind(public)
            .fetch_one(&self.pool)
            .await
            .map_err(db("building a grids tile"))
    }
}

/// `rep` (reports per area) and `cs` (case figures per area) over the areas of a CTE `g` (with
/// `code` and `level`: a grid counts by its reports' grid, a micro-grid by their micro-grid),
/// under the report filter `$4..$8`, overdue at `$9`. Shared by the grid tiles and the dashboard,
/// so a grid's figures are the same on the map and in the leader's table.
pub(super) fn grid_figure_ctes() -> String {
    format!(
        "rep as (
                 select g.code, count(*) as reports
                   from g join report rp
                     on (case when g.level = 'grid' then rp.grid_code else rp.micro_grid_code end) = g.code
                  where {REPORT_FILTER}
                  group by g.code),
             cs as (
                 select g.code, {case_figures}
                   from g
                   join dispatch_case c
                     on (case when g.level = 'grid' then c.grid_code else c.micro_grid_code end) = g.code
                   join report rp on rp.id = c.report_id
                  where c.state <> 'merged' and {REPORT_FILTER}
                  group by g.code)",
        case_figures = case_figures()
    )
}

/// The figures of the cases `c` in a group: `cases`, `closed`, `accountable` (not rejected),
/// `rated`, `satisfied` and `overdue` (open past its deadline at `$9`, or with an unanswered
/// card), as in the dispatch figures.
pub(super) fn case_figures() -> String {
    format!(
        "count(*) as cases,
         count(*) filter (where c.state in ('closed', 'evaluated')) as closed,
         count(*) filter (where c.state <> 'rejected') as accountable,
         count(c.satisfaction) as rated,
         count(*) filter (where c.satisfaction >= {SATISFIED_AT_LEAST}) as satisfied,
         count(*) filter (where c.state in ('accepted', 'whistled', 'acknowledged')
                            and (coalesce(c.deadline < $9, false)
                                 or exists (select 1 from case_whistle w
                                             where w.case_id = c.id
                                               and w.acknowledged_at is null
                                               and w.card is not null))) as overdue"
    )
}

/// The arguments of an area query: `$1` a code prefix (null: everywhere), `$2` and `$3` unused
/// (the tiles' places), the report filter `$4..$8` and the time `$9` that overdue is judged at.
pub(super) fn area_arguments(
    prefix: Option<&str>,
    filter: &TileFilter,
    now: DateTime<Utc>,
) -> Result<sqlx::postgres::PgArguments> {
    use sqlx::Arguments;
    let mut args = sqlx::postgres::PgArguments::default();
    let encode = |e| StorageError::Db(sqlx::Error::Encode(e), "encoding an area query");
    args.add(prefix.map(str::to_owned)).map_err(encode)?;
    args.add(0i32).map_err(encode)?;
    args.add(0i32).map_err(encode)?;
    args.add(list(&filter.categories)).map_err(encode)?;
    args.add(filter.from).map_err(encode)?;
    args.add(filter.to).map_err(encode)?;
    args.add(list(&filter.sources)).map_err(encode)?;
    args.add(list(&filter.states)).map_err(encode)?;
    args.add(now).map_err(encode)?;
    Ok(args)
}

impl Db {
    /// A connection listening on `channels`, outside the pool's connections.
    pub async fn listen(&self, channels: &[&str]) -> Result<sqlx::postgres::PgListener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(db("connecting the change feed"))?;
        listener
            .listen_all(channels.iter().copied())
            .await
            .map_err(db("listening to the change feed"))?;
        Ok(listener)
    }

    /// `[west, south, east, north]` of the current boundaries; `None` with no regions.
    pub async fn current_bounds(&self) -> Result<Option<[f64; 4]>> {
        let row: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
            "select st_xmin(b), st_ymin(b), st_xmax(b), st_ymax(b)
               from (select st_extent(geom)::geometry as b from region_version where valid_to is null) e",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("measuring the map's bounds"))?;
        Ok(match row {
            (Some(w), Some(s), Some(e), Some(n)) => Some([w, s, e, n]),
            _ => None,
        })
    }
}

/// One area of a hot-spot analysis: its code, name, the reports in it under the filter, and the
/// codes of the areas that touch it (queen contiguity: a shared edge or corner).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AreaCount {
    pub code: String,
    pub name: String,
    pub reports: i64,
    pub touching: Vec<String>,
}

/// The counts as values and the neighbours as positions in `areas`, for `analysis::hotspots`.
pub fn values_and_neighbours(areas: &[AreaCount]) -> (Vec<f64>, Vec<Vec<usize>>) {
    let position: std::collections::HashMap<&str, usize> = areas
        .iter()
        .enumerate()
        .map(|(i, a)| (a.code.as_str(), i))
        .collect();
    let y = areas.iter().map(|a| a.reports as f64).collect();
    let neighbours = areas
        .iter()
        .map(|a| {
            a.touching
                .iter()
                .filter_map(|c| position.get(c.as_str()).copied())
                .collect()
        })
        .collect();
    (y, neighbours)
}

impl Db {
    /// The current grids (under `parent`, by code prefix, when given) with their report counts
    /// under `filter` and their neighbours.
    pub async fn grid_counts(
        &self,
        parent: Option<&str>,
        filter: &TileFilter,
    ) -> Result<Vec<AreaCount>> {
        let sql = format!(
            "with g as (
                 select r.code, r.name, v.geom
                   from region r
                   join region_version v on v.region_code = r.code and v.valid_to is null
                  where r.level = 'grid' and ($1::text is null or r.code like $1 || '%')),
             n as (
                 select g.code, coalesce(array_agg(h.code order by h.code)
                                             filter (where h.code is not null), '{{}}') as touching
                   from g left join g h
                     on h.code <> g.code and h.geom && g.geom and st_intersects(h.geom, g.geom)
                  group by g.code),
             c as (
                 select rp.grid_code as code, count(*) as reports
                   from report rp
                  where rp.grid_code in (select code from g) and {REPORT_FILTER}
                  group by rp.grid_code)
             select g.code, g.name, coalesce(c.reports, 0) as reports, n.touching
               from g join n on n.code = g.code left join c on c.code = g.code
              order by g.code"
        );
        sqlx::query_as_with(&sql, area_arguments(parent, filter, Utc::now())?)
            .fetch_all(&self.pool)
            .await
            .map_err(db("counting reports per grid for hot spots"))
    }
}
