//! Regions and their versioned boundaries.

use super::{db, multipolygon_from_wkb, to_wkb, Db, Result};
use crate::domain::{Level, PartyBranch, Problem, RegionFeature, StaffMember};
use crate::spatial::index::{PartyBranchInfo, RegionRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Overlaps and spill-outs smaller than this (m²) are floating-point noise, not drawing errors.
const AREA_TOLERANCE_M2: f64 = 1.0;

/// What an accepted import changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportSummary {
    /// regions that did not exist before
    pub created: usize,
    /// regions whose boundary changed: a new version was created
    pub new_versions: usize,
    /// regions whose boundary was identical (name, branch and staff may still be updated)
    pub unchanged_boundaries: usize,
}

#[derive(Debug)]
pub enum ImportOutcome {
    Accepted(ImportSummary),
    Rejected(Vec<Problem>),
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainLink {
    pub code: String,
    pub name: String,
    pub level: Level,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: i32,
    pub valid_from: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryCount {
    pub category: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportCounts {
    pub total: i64,
    pub by_category: Vec<CategoryCount>,
}

/// Everything the map page shows for a clicked region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionDetail {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent_code: Option<String>,
    pub synthetic: bool,
    pub chain: Vec<ChainLink>,
    pub party_branch: Option<PartyBranch>,
    pub staff: Vec<StaffMember>,
    pub version: VersionInfo,
    pub versions: Vec<VersionInfo>,
    pub report_counts: ReportCounts,
}

/// A region boundary for map display.
#[derive(Debug, Clone)]
pub struct RegionShape {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent_code: Option<String>,
    pub version: i32,
    pub synthetic: bool,
    pub geom: geo::MultiPolygon<f64>,
}

#[derive(sqlx::FromRow)]
struct CurrentRow {
    code: String,
    name: String,
    level: String,
    parent_code: Option<String>,
    version_id: i64,
    wkb: Vec<u8>,
    pb_name: Option<String>,
    secretary: Option<String>,
    contact: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ShapeRow {
    code: String,
    name: String,
    level: String,
    parent_code: Option<String>,
    version: i32,
    synthetic: bool,
    wkb: Vec<u8>,
}

fn parse_level(s: &str) -> Level {
    // The table's check constraint admits only the five names.
    s.parse().unwrap_or(Level::Grid)
}

impl Db {
    /// The current boundaries with what the locate index needs.
    pub async fn current_regions(&self) -> Result<Vec<RegionRecord>> {
        let rows: Vec<CurrentRow> = sqlx::query_as(
            "select r.code, r.name, r.level, r.parent_code, v.id as version_id, st_asbinary(v.geom) as wkb,
                    pb.name as pb_name, pb.secretary, pb.contact
               from region r
               join region_version v on v.region_code = r.code and v.valid_to is null
               left join party_branch pb on pb.region_code = r.code",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading current regions"))?;
        rows.into_iter()
            .map(|row| {
                Ok(RegionRecord {
                    party_branch: row.pb_name.map(|name| {
                        Arc::new(PartyBranchInfo {
                            region_code: row.code.clone(),
                            name,
                            secretary: row.secretary,
                            contact: row.contact,
                        })
                    }),
                    level: parse_level(&row.level),
                    geom: multipolygon_from_wkb(&row.wkb)?,
                    code: row.code,
                    name: row.name,
                    parent_code: row.parent_code,
                    version_id: row.version_id,
                })
            })
            .collect()
    }

    /// Current boundaries for display, optionally of one level.
    /// Current boundaries, optionally only of one level and/or only the children of `parent`.
    pub async fn region_shapes(
        &self,
        level: Option<Level>,
        parent: Option<&str>,
    ) -> Result<Vec<RegionShape>> {
        let rows: Vec<ShapeRow> = sqlx::query_as(
            "select r.code, r.name, r.level, r.parent_code, v.version, r.synthetic, st_asbinary(v.geom) as wkb
               from region r
               join region_version v on v.region_code = r.code and v.valid_to is null
              where ($1::text is null or r.level = $1)
                and ($2::text is null or r.parent_code = $2)
              order by r.code",
        )
        .bind(level.map(Level::as_str))
        .bind(parent)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing regions"))?;
        rows.into_iter()
            .map(|row| {
                Ok(RegionShape {
                    level: parse_level(&row.level),
                    geom: multipolygon_from_wkb(&row.wkb)?,
                    code: row.code,
                    name: row.name,
                    parent_code: row.parent_code,
                    version: row.version,
                    synthetic: row.synthetic,
                })
            })
            .collect()
    }

    /// One region's detail, `None` when the code is unknown.
    pub async fn region_detail(&self, code: &str) -> Result<Option<RegionDetail>> {
        let row: Option<(String, String, String, Option<String>, bool)> = sqlx::query_as(
            "select code, name, level, parent_code, synthetic from region where code = $1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("loading a region"))?;
        let Some((code, name, level, parent_code, synthetic)) = row else {
            return Ok(None);
        };
        // Ancestors are the prefixes of the code that exist as regions.
        let chain: Vec<(String, String, String)> = sqlx::query_as(
            "with recursive up as (
                 select code, name, level, parent_code, 0 as depth from region where code = $1
                 union all
                 select r.code, r.name, r.level, r.parent_code, up.depth + 1
                   from region r join up on r.code = up.parent_code
                  where up.depth < 8)
             select code, name, level from up order by depth desc",
        )
        .bind(&code)
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading a region's chain"))?;
        let party_branch: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "select name, secretary, contact from party_branch where region_code = $1",
        )
        .bind(&code)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("loading a party branch"))?;
        let staff: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "select role, name, phone from grid_staff where region_code = $1 order by id",
        )
        .bind(&code)
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading grid staff"))?;
        let versions: Vec<(i32, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "select version, valid_from, valid_to from region_version
              where region_code = $1 order by version desc",
        )
        .bind(&code)
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading region versions"))?;
        let by_category: Vec<(String, i64)> = sqlx::query_as(
            "select category, count(*) from report
              where region_code like $1 || '%'
              group by category order by count(*) desc, category",
        )
        .bind(&code)
        .fetch_all(&self.pool)
        .await
        .map_err(db("counting reports"))?;
        let versions: Vec<VersionInfo> = versions
            .into_iter()
            .map(|(version, valid_from, valid_to)| VersionInfo {
                version,
                valid_from,
                valid_to,
            })
            .collect();
        let current = versions
            .iter()
            .find(|v| v.valid_to.is_none())
            .or(versions.first())
            .cloned()
            .ok_or_else(|| {
                super::StorageError::Geometry(format!("region {code} has no boundary"))
            })?;
        Ok(Some(RegionDetail {
            level: parse_level(&level),
            chain: chain
                .into_iter()
                .map(|(code, name, level)| ChainLink {
                    code,
                    name,
                    level: parse_level(&level),
                })
                .collect(),
            party_branch: party_branch.map(|(name, secretary, contact)| PartyBranch {
                name,
                secretary,
                contact,
            }),
            staff: staff
                .into_iter()
                .filter_map(|(role, name, phone)| {
                    let role = serde_json::from_value(serde_json::Value::String(role)).ok()?;
                    Some(StaffMember { role, name, phone })
                })
                .collect(),
            version: current,
            versions,
            report_counts: ReportCounts {
                total: by_category.iter().map(|(_, n)| n).sum(),
                by_category: by_category
                    .into_iter()
                    .map(|(category, count)| CategoryCount { category, count })
                    .collect(),
            },
            code,
            name,
            parent_code,
            synthetic,
        }))
    }

    /// Imports regions in one transaction: either every feature is accepted, or nothing is
    /// written and every problem found is returned. A boundary that differs from the current one
    /// closes that version and opens a new one at `now`; an identical one is left alone.
    pub async fn import_regions(
        &self,
        features: &[RegionFeature],
        now: DateTime<Utc>,
    ) -> Result<ImportOutcome> {
        let mut tx = self.pool.begin().await.map_err(db("starting the import"))?;
        let summary = match write_regions(&mut tx, features, now).await? {
            Ok(summary) => summary,
            Err(problems) => return Ok(ImportOutcome::Rejected(problems)),
        };
        let problems = coverage_problems(&mut tx).await?;
        if !problems.is_empty() {
            return Ok(ImportOutcome::Rejected(problems));
        }
        tx.commit().await.map_err(db("committing the import"))?;
        Ok(ImportOutcome::Accepted(summary))
    }
}

/// Writes `features` inside the caller's transaction: regions upserted, changed boundaries
/// closed at `now` and new versions opened, party branches and staff replaced where given.
/// Structural problems (unknown parents, invalid geometry) come back as `Err` before anything
/// is written; the caller checks the coverage afterwards with [`coverage_problems`].
pub(crate) async fn write_regions(
    tx: &mut sqlx::PgConnection,
    features: &[RegionFeature],
    now: DateTime<Utc>,
) -> Result<std::result::Result<ImportSummary, Vec<Problem>>> {
    sqlx::query(
        "create temp table import_region (
                 ord integer, code text, level text, name text, parent_code text,
                 synthetic boolean, geom geometry(MultiPolygon, 4326)
             ) on commit drop",
    )
    .execute(&mut *tx)
    .await
    .map_err(db("creating the import table"))?;
    let ord: Vec<i32> = features.iter().map(|f| f.index as i32).collect();
    let code: Vec<&str> = features.iter().map(|f| f.code.as_str()).collect();
    let level: Vec<&str> = features.iter().map(|f| f.level.as_str()).collect();
    let name: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
    let parent: Vec<Option<&str>> = features
        .iter()
        .map(|f| f.parent_code.as_ref().map(|c| c.as_str()))
        .collect();
    let synthetic: Vec<bool> = features.iter().map(|f| f.synthetic).collect();
    let wkb: Vec<Vec<u8>> = features
        .iter()
        .map(|f| to_wkb(&geo::Geometry::MultiPolygon(f.geom.clone())))
        .collect();
    sqlx::query(
            "insert into import_region
             select o, c, l, n, p, s, st_multi(st_geomfromwkb(w, 4326))
               from unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bytea[])
                    as t(o, c, l, n, p, s, w)",
        )
        .bind(&ord)
        .bind(&code)
        .bind(&level)
        .bind(&name)
        .bind(&parent)
        .bind(&synthetic)
        .bind(&wkb)
        .execute(&mut *tx)
        .await
        .map_err(db("loading the import table"))?;

    let mut problems = Vec::new();
    let unknown: Vec<(i32, String, String)> = sqlx::query_as(
        "select i.ord, i.code, i.parent_code from import_region i
              where i.parent_code is not null
                and not exists (select 1 from region r where r.code = i.parent_code)
                and not exists (select 1 from import_region p where p.code = i.parent_code)
              order by i.ord",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db("checking parents"))?;
    for (ord, code, parent) in unknown {
        problems.push(
            Problem::new(
                "unknown_parent",
                format!("parent {parent} of {code} is neither in the file nor in the registry"),
            )
            .at(ord as usize, Some(&code))
            .field("properties.parent_code"),
        );
    }
    let invalid: Vec<(i32, String, String)> = sqlx::query_as(
        "select ord, code, st_isvalidreason(geom) from import_region
              where not st_isvalid(geom) order by ord",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db("validating geometry"))?;
    for (ord, code, reason) in invalid {
        problems.push(
            Problem::new(
                "invalid_geometry",
                format!("geometry of {code} is invalid: {reason}"),
            )
            .at(ord as usize, Some(&code))
            .field("geometry"),
        );
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }

    let before: HashMap<String, ()> = sqlx::query_scalar::<_, String>(
        "select r.code from region r join import_region i using (code)",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db("reading existing regions"))?
    .into_iter()
    .map(|c| (c, ()))
    .collect();
    sqlx::query(
            "insert into region (code, level, name, parent_code, synthetic)
             select code, level, name, parent_code, synthetic from import_region order by length(code)
             on conflict (code) do update
                set name = excluded.name, synthetic = excluded.synthetic, updated_at = now()",
        )
        .execute(&mut *tx)
        .await
        .map_err(db("writing regions"))?;
    let closed = sqlx::query(
        "update region_version v set valid_to = $1
               from import_region i
              where v.region_code = i.code and v.valid_to is null
                and not st_orderingequals(v.geom, i.geom)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db("closing replaced boundaries"))?
    .rows_affected() as usize;
    let opened = sqlx::query(
            "insert into region_version (region_code, version, geom, valid_from)
             select i.code,
                    coalesce((select max(version) from region_version v where v.region_code = i.code), 0) + 1,
                    i.geom, $1
               from import_region i
              where not exists (select 1 from region_version v
                                 where v.region_code = i.code and v.valid_to is null)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("writing boundaries"))?
        .rows_affected() as usize;

    for f in features {
        if let Some(branch) = &f.party_branch {
            sqlx::query("delete from party_branch where region_code = $1")
                .bind(f.code.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db("replacing a party branch"))?;
            if let Some(b) = branch {
                sqlx::query(
                    "insert into party_branch (region_code, name, secretary, contact)
                         values ($1, $2, $3, $4)",
                )
                .bind(f.code.as_str())
                .bind(&b.name)
                .bind(&b.secretary)
                .bind(&b.contact)
                .execute(&mut *tx)
                .await
                .map_err(db("writing a party branch"))?;
            }
        }
    }
    let staff_regions: Vec<&str> = features
        .iter()
        .filter(|f| f.staff.is_some())
        .map(|f| f.code.as_str())
        .collect();
    sqlx::query("delete from grid_staff where region_code = any($1)")
        .bind(&staff_regions)
        .execute(&mut *tx)
        .await
        .map_err(db("replacing grid staff"))?;
    let mut s_region = Vec::new();
    let mut s_role = Vec::new();
    let mut s_name = Vec::new();
    let mut s_phone = Vec::new();
    for f in features {
        for m in f.staff.iter().flatten() {
            s_region.push(f.code.as_str());
            s_role.push(m.role.as_str());
            s_name.push(m.name.as_str());
            s_phone.push(m.phone.as_deref());
        }
    }
    sqlx::query(
        "insert into grid_staff (region_code, role, name, phone)
             select * from unnest($1::text[], $2::text[], $3::text[], $4::text[])",
    )
    .bind(&s_region)
    .bind(&s_role)
    .bind(&s_name)
    .bind(&s_phone)
    .execute(&mut *tx)
    .await
    .map_err(db("writing grid staff"))?;

    let created = features
        .iter()
        .filter(|f| !before.contains_key(f.code.as_str()))
        .count();
    Ok(Ok(ImportSummary {
        created,
        new_versions: closed,
        unchanged_boundaries: features.len() - opened,
    }))
}

/// Checks the state after the import's writes, inside its transaction: every affected region
/// lies inside its parent and does not overlap a sibling.
pub(crate) async fn coverage_problems(tx: &mut sqlx::PgConnection) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    // Imported regions and the current children of imported regions (a redrawn parent may
    // leave an old child outside).
    let outside: Vec<(Option<i32>, String, String, f64)> = sqlx::query_as(
        "with affected as (
             select code from import_region
             union
             select r.code from region r join import_region i on r.parent_code = i.code)
         select i.ord, r.code, r.parent_code,
                st_area(st_difference(c.geom, p.geom)::geography) as outside_m2
           from affected a
           join region r on r.code = a.code
           join region_version c on c.region_code = r.code and c.valid_to is null
           join region_version p on p.region_code = r.parent_code and p.valid_to is null
           left join import_region i on i.code = r.code
          where not st_coveredby(c.geom, p.geom)
            and st_area(st_difference(c.geom, p.geom)::geography) > $1
          order by i.ord nulls last, r.code",
    )
    .bind(AREA_TOLERANCE_M2)
    .fetch_all(&mut *tx)
    .await
    .map_err(db("checking children lie inside their parents"))?;
    for (ord, code, parent, area) in outside {
        let p = Problem::new(
            "outside_parent",
            format!("{code} extends {area:.1} m² outside its parent {parent}"),
        )
        .field("geometry");
        problems.push(match ord {
            Some(o) => p.at(o as usize, Some(&code)),
            None => Problem {
                code: Some(code),
                ..p
            },
        });
    }
    let overlaps: Vec<(i32, String, String, f64)> = sqlx::query_as(
        "select i.ord, i.code, s.region_code,
                st_area(st_intersection(i.geom, s.geom)::geography) as overlap_m2
           from import_region i
           join region ri on ri.code = i.code
           join region rs on rs.parent_code is not distinct from ri.parent_code and rs.code <> i.code
           join region_version s on s.region_code = rs.code and s.valid_to is null
          where s.geom && i.geom
            and st_intersects(s.geom, i.geom)
            and st_area(st_intersection(i.geom, s.geom)::geography) > $1
            -- report a pair of imported features once
            and (i.code < rs.code or not exists (select 1 from import_region j where j.code = rs.code))
          order by i.ord, s.region_code",
    )
    .bind(AREA_TOLERANCE_M2)
    .fetch_all(&mut *tx)
    .await
    .map_err(db("checking siblings do not overlap"))?;
    for (ord, code, other, area) in overlaps {
        problems.push(
            Problem::new(
                "overlapping_siblings",
                format!("{code} overlaps its sibling {other} by {area:.1} m²"),
            )
            .at(ord as usize, Some(&code))
            .field("geometry"),
        );
    }
    Ok(problems)
}
