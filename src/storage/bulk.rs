//! Bulk report loading with COPY: the rows stream into a temporary table, then one
//! `insert … select` moves them into `report`, skipping records whose `external_ref` is loaded
//! already, all in one transaction (every valid row or none).

use super::reports::NewReport;
use super::{db, Db, Result, StorageError};
use std::fmt::Write;

/// What a bulk load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub inserted: u64,
    /// rows whose external_ref was loaded before
    pub already_loaded: u64,
}

const COLUMNS: &str = "category, geom, input_lon, input_lat, input_crs, description, source,
                       reported_at, locate_status, district_code, street_code, community_code,
                       grid_code, micro_grid_code, region_code, region_version_id, distance_m,
                       external_ref";

/// Escapes a value for COPY's text format.
fn text(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn opt(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) => text(out, v),
        None => out.push_str("\\N"),
    }
}

/// A WGS-84 point as hex EWKB, which PostGIS reads without parsing text.
fn ewkb_hex(out: &mut String, lon: f64, lat: f64) {
    out.push_str("0101000020E6100000");
    for b in lon.to_le_bytes().into_iter().chain(lat.to_le_bytes()) {
        let _ = write!(out, "{b:02X}");
    }
}

/// One row of COPY text.
pub fn copy_line(out: &mut String, r: &NewReport, external_ref: Option<&str>) {
    text(out, &r.category);
    out.push('\t');
    ewkb_hex(out, r.lon, r.lat);
    let _ = write!(out, "\t{}\t{}\t{}\t", r.input_lon, r.input_lat, r.input_crs);
    text(out, &r.description);
    let _ = write!(
        out,
        "\t{}\t{}\t{}\t",
        r.source,
        r.reported_at.to_rfc3339(),
        r.locate_status
    );
    for code in [
        &r.district_code,
        &r.street_code,
        &r.community_code,
        &r.grid_code,
        &r.micro_grid_code,
        &r.region_code,
    ] {
        opt(out, code.as_deref());
        out.push('\t');
    }
    match r.region_version_id {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("\\N"),
    }
    out.push('\t');
    match r.distance_m {
        Some(d) => {
            let _ = write!(out, "{d}");
        }
        None => out.push_str("\\N"),
    }
    out.push('\t');
    opt(out, external_ref);
    out.push('\n');
}

impl Db {
    /// Refreshes the planner's statistics of the reports and their cases after a bulk load, so
    /// the next queries plan for the rows now there rather than for the empty tables autovacuum
    /// last saw (a dashboard over a freshly loaded demo took 5 s instead of 0.5 s).
    pub async fn analyze_reports(&self) -> Result<()> {
        sqlx::query("analyze report, dispatch_case, case_event, escalation_deadline")
            .execute(&self.pool)
            .await
            .map_err(db("analysing the reports"))?;
        Ok(())
    }

    /// Loads `chunks` of COPY text (from [`copy_line`]) as reports, in one transaction.
    pub async fn copy_reports(&self, chunks: impl IntoIterator<Item = String>) -> Result<Loaded> {
        let mut tx = self.pool.begin().await.map_err(db("starting an import"))?;
        sqlx::query(
            "create temp table import_stage on commit drop as
               select category, geom, input_lon, input_lat, input_crs, description, source,
                      reported_at, locate_status, district_code, street_code, community_code,
                      grid_code, micro_grid_code, region_code, region_version_id, distance_m,
                      external_ref
                 from report limit 0",
        )
        .execute(&mut *tx)
        .await
        .map_err(db("creating the import table"))?;
        let mut copy = tx
            .copy_in_raw(&format!("copy import_stage ({COLUMNS}) from stdin"))
            .await
            .map_err(db("starting COPY"))?;
        for chunk in chunks {
            if let Err(e) = copy.send(chunk.into_bytes()).await {
                let _ = copy.abort("send failed").await;
                return Err(db("sending COPY data")(e));
            }
        }
        let staged = copy.finish().await.map_err(db("finishing COPY"))?;
        // A report's references have no foreign keys (migration 0010): check them all at once.
        let unknown: Vec<String> = sqlx::query_scalar(
            "select what from (
                 select 'region ' || code as what from (
                     select distinct unnest(array[district_code, street_code, community_code,
                                                  grid_code, micro_grid_code, region_code]) as code
                       from import_stage) codes
                  where code is not null
                    and not exists (select 1 from region r where r.code = codes.code)
                 union all
                 select distinct 'category ' || s.category from import_stage s
                  where not exists (select 1 from category c where c.code = s.category)
                 union all
                 select distinct 'region version ' || s.region_version_id from import_stage s
                  where s.region_version_id is not null
                    and not exists (select 1 from region_version v where v.id = s.region_version_id)
             ) missing order by what limit 5",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db("checking the imported rows' references"))?;
        if !unknown.is_empty() {
            return Err(StorageError::Inconsistent(format!(
                "imported rows name what does not exist: {}",
                unknown.join(", ")
            )));
        }
        let inserted = sqlx::query(&format!(
            "insert into report ({COLUMNS})
             select {COLUMNS} from import_stage
             on conflict (external_ref) where external_ref is not null do nothing"
        ))
        .execute(&mut *tx)
        .await
        .map_err(db("moving imported rows into report"))?
        .rows_affected();
        // One notification for the whole import, so listening servers drop the tiles over it.
        sqlx::query(
            "select pg_notify('gridwatch_tiles', json_build_object('table', 'report', 'bbox',
                     json_build_array(min(st_x(geom)), min(st_y(geom)), max(st_x(geom)), max(st_y(geom))))::text)
               from import_stage having count(*) > 0",
        )
        .execute(&mut *tx)
        .await
        .map_err(db("announcing the imported rows"))?;
        tx.commit().await.map_err(db("committing an import"))?;
        if inserted > 0 {
            self.analyze_reports().await?;
        }
        Ok(Loaded {
            inserted,
            already_loaded: staged - inserted,
        })
    }
}
