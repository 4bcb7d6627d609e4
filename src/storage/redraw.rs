//! Redraws: what a planner's redraw of one region's children is planned against (the parent,
//! its current children, every code ever used under it) and the publication that writes it as
//! new boundary versions in one transaction.

use super::regions::{coverage_problems, write_regions, ImportSummary};
use super::{db, multipolygon_from_wkb, Db, Result};
use crate::domain::{Level, Problem, RegionFeature};
use chrono::{DateTime, Utc};
use geo::MultiPolygon;
use serde::Serialize;
use serde_json::Value;

/// The children's union may differ from the parent's area by this fraction (0.1%).
const TILING_TOLERANCE: f64 = 0.001;

#[derive(Debug, Clone)]
pub struct ParentRow {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub synthetic: bool,
    pub geom: MultiPolygon<f64>,
}

/// A current child of the parent being redrawn.
#[derive(Debug, Clone)]
pub struct ChildRow {
    pub code: String,
    pub name: String,
    pub synthetic: bool,
    /// the `region_version` row of its current boundary
    pub version_id: i64,
    pub version: i32,
    pub geom: MultiPolygon<f64>,
    /// it has current children of its own (a grid with micro-grids)
    pub has_children: bool,
    /// those current children (a grid's micro-grids), which a redraw may draw too
    pub children: Vec<ChildRow>,
}

#[derive(Debug, Clone)]
pub struct RedrawContext {
    pub parent: ParentRow,
    pub children: Vec<ChildRow>,
    /// every code ever given to a child of the parent, retired ones included: never reused
    pub used_codes: Vec<String>,
}

/// What a publication writes, decided by the caller from a fresh [`RedrawContext`].
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// every child that stays or is created, with its boundary (unchanged ones included)
    pub features: Vec<RegionFeature>,
    /// current children that end now
    pub retire: Vec<String>,
    /// the per-child record kept with the publication
    pub children: Value,
    /// children (grids redrawn with their micro-grids) whose own children must tile them too
    pub tile: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Publication {
    pub id: i64,
    pub parent_code: String,
    pub sketch_id: Option<i64>,
    pub published_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishSummary {
    #[serde(flatten)]
    pub import: ImportSummary,
    pub retired: usize,
}

#[derive(Debug)]
pub enum PublishOutcome {
    Published(Publication, PublishSummary),
    Rejected(Vec<Problem>),
}

#[derive(sqlx::FromRow)]
struct ParentSql {
    code: String,
    name: String,
    level: String,
    synthetic: bool,
    wkb: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct ChildSql {
    code: String,
    name: String,
    synthetic: bool,
    version_id: i64,
    version: i32,
    wkb: Vec<u8>,
    has_children: bool,
}

async fn read_children(conn: &mut sqlx::PgConnection, parent: &str) -> Result<Vec<ChildRow>> {
    let rows: Vec<ChildSql> = sqlx::query_as(
        "select r.code, r.name, r.synthetic, v.id as version_id, v.version,
                st_asbinary(v.geom) as wkb,
                exists (select 1 from region c
                          join region_version cv on cv.region_code = c.code and cv.valid_to is null
                         where c.parent_code = r.code) as has_children
           from region r join region_version v on v.region_code = r.code and v.valid_to is null
          where r.parent_code = $1
          order by r.code",
    )
    .bind(parent)
    .fetch_all(&mut *conn)
    .await
    .map_err(db("reading the current children"))?;
    let mut children = Vec::with_capacity(rows.len());
    for r in rows {
        children.push(ChildRow {
            geom: multipolygon_from_wkb(&r.wkb)?,
            code: r.code,
            name: r.name,
            synthetic: r.synthetic,
            version_id: r.version_id,
            version: r.version,
            has_children: r.has_children,
            children: Vec::new(),
        });
    }
    Ok(children)
}

async fn read_context(
    conn: &mut sqlx::PgConnection,
    parent: &str,
) -> Result<Option<RedrawContext>> {
    let Some(p): Option<ParentSql> = sqlx::query_as(
        "select r.code, r.name, r.level, r.synthetic, st_asbinary(v.geom) as wkb
           from region r join region_version v on v.region_code = r.code and v.valid_to is null
          where r.code = $1",
    )
    .bind(parent)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db("reading the parent region"))?
    else {
        return Ok(None);
    };
    let mut children = read_children(&mut *conn, parent).await?;
    for c in children.iter_mut().filter(|c| c.has_children) {
        c.children = read_children(&mut *conn, &c.code).await?;
    }
    let used_codes: Vec<String> =
        sqlx::query_scalar("select code from region where parent_code = $1 order by code")
            .bind(parent)
            .fetch_all(&mut *conn)
            .await
            .map_err(db("reading the codes in use"))?;
    Ok(Some(RedrawContext {
        parent: ParentRow {
            geom: multipolygon_from_wkb(&p.wkb)?,
            // The table's check constraint admits only the five level names.
            level: p.level.parse().unwrap_or(Level::Community),
            code: p.code,
            name: p.name,
            synthetic: p.synthetic,
        },
        children,
        used_codes,
    }))
}

impl Db {
    /// The parent and its current children as they are now; `None` when the parent has no
    /// current boundary.
    pub async fn redraw_context(&self, parent: &str) -> Result<Option<RedrawContext>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("connecting for a redraw"))?;
        read_context(&mut conn, parent).await
    }

    /// Publishes a redraw of `parent`'s children in one transaction. Concurrent publications
    /// of the same parent are serialised; `plan` is called with the context read under that
    /// lock, so it plans against what is current at the moment of writing. Either everything
    /// is written (new versions valid from `now`, retired children closed at `now`, the
    /// publication recorded) or nothing is, and every problem found is returned. PostGIS checks
    /// the result: valid geometry, children inside the parent, no sibling overlaps, and the
    /// children's union within 0.1% of the parent's area.
    pub async fn publish_redraw(
        &self,
        parent: &str,
        sketch_id: Option<i64>,
        now: DateTime<Utc>,
        plan: impl FnOnce(&RedrawContext) -> std::result::Result<PublishPlan, Vec<Problem>>,
    ) -> Result<Option<PublishOutcome>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a publication"))?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('gridwatch.redraw:' || $1))")
            .bind(parent)
            .execute(&mut *tx)
            .await
            .map_err(db("locking the region for a publication"))?;
        let Some(ctx) = read_context(&mut tx, parent).await? else {
            return Ok(None);
        };
        let plan = match plan(&ctx) {
            Ok(p) => p,
            Err(problems) => return Ok(Some(PublishOutcome::Rejected(problems))),
        };
        let (id, published_at): (i64, DateTime<Utc>) = sqlx::query_as(
            "insert into publication (parent_code, sketch_id, published_at, children)
             values ($1, $2, $3, $4) returning id, published_at",
        )
        .bind(parent)
        .bind(sketch_id)
        .bind(now)
        .bind(&plan.children)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("recording the publication"))?;
        let import = match write_regions(&mut tx, &plan.features, now).await? {
            Ok(summary) => summary,
            Err(problems) => return Ok(Some(PublishOutcome::Rejected(problems))),
        };
        let retired = sqlx::query(
            "update region_version set valid_to = $2
              where region_code = any($1) and valid_to is null",
        )
        .bind(&plan.retire)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("retiring children"))?
        .rows_affected() as usize;
        let codes: Vec<&str> = plan.features.iter().map(|f| f.code.as_str()).collect();
        sqlx::query(
            "update region_version set publication_id = $1
              where region_code = any($2) and valid_to is null and valid_from = $3",
        )
        .bind(id)
        .bind(&codes)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("linking the new versions to the publication"))?;
        let mut problems = coverage_problems(&mut tx).await?;
        problems.extend(tiling_problems(&mut tx, parent).await?);
        for code in &plan.tile {
            problems.extend(tiling_problems(&mut tx, code).await?);
        }
        if !problems.is_empty() {
            return Ok(Some(PublishOutcome::Rejected(problems)));
        }
        if let Some(sketch) = sketch_id {
            sqlx::query("update sketch set published_at = $2, updated_at = now() where id = $1")
                .bind(sketch)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db("marking the sketch published"))?;
        }
        tx.commit()
            .await
            .map_err(db("committing the publication"))?;
        Ok(Some(PublishOutcome::Published(
            Publication {
                id,
                parent_code: parent.to_owned(),
                sketch_id,
                published_at,
            },
            PublishSummary { import, retired },
        )))
    }

    /// Publications of `parent` (all when `None`), newest first.
    pub async fn publications(&self, parent: Option<&str>) -> Result<Vec<Value>> {
        sqlx::query_scalar(
            "select json_build_object('id', id, 'parent_code', parent_code, 'sketch_id', sketch_id,
                                      'published_at', published_at, 'children', children)::jsonb
               from publication
              where $1::text is null or parent_code = $1
              order by published_at desc, id desc
              limit 200",
        )
        .bind(parent)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing publications"))
    }
}

/// The parent's current children must cover it: their union's area within 0.1% of the parent's.
async fn tiling_problems(tx: &mut sqlx::PgConnection, parent: &str) -> Result<Vec<Problem>> {
    let areas: Option<(f64, Option<f64>)> = sqlx::query_as(
        "select st_area(p.geom::geography),
                (select st_area(st_union(c.geom)::geography)
                   from region r
                   join region_version c on c.region_code = r.code and c.valid_to is null
                  where r.parent_code = $1)
           from region_version p
          where p.region_code = $1 and p.valid_to is null",
    )
    .bind(parent)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db("checking the children tile their parent"))?;
    let Some((parent_m2, union_m2)) = areas else {
        return Ok(Vec::new());
    };
    let union_m2 = union_m2.unwrap_or(0.0);
    if union_m2 == 0.0 {
        // Every child retired: the parent is simply not subdivided any more.
        return Ok(Vec::new());
    }
    let off = (union_m2 - parent_m2).abs() / parent_m2.max(1.0);
    if off > TILING_TOLERANCE {
        return Ok(vec![Problem::new(
            "not_tiling_parent",
            format!(
                "the children of {parent} cover {union_m2:.0} m² of its {parent_m2:.0} m² ({:.2}% off; at most {:.1}% allowed)",
                off * 100.0,
                TILING_TOLERANCE * 100.0
            ),
        )
        .field("features")]);
    }
    Ok(Vec::new())
}
