//! Bulk report loading with COPY straight into `report`, in one transaction (every valid row or
//! none). Loads run one at a time (an advisory lock), so the ticket numbers (`external_ref`) a
//! load finds already there at its start stay the only ones it must skip; a report's references
//! (migration 0010 has no foreign keys for them) are checked set-wise from what the rows named.

use super::reports::NewReport;
use super::{db, Db, Result, StorageError};
use sqlx::{Postgres, Transaction};
use std::collections::HashSet;

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
                       external_ref, tile_key";

/// The start of COPY's binary format: signature, flags, header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end of COPY's binary format: a tuple of -1 fields.
const BINARY_TRAILER: &[u8] = &[0xff, 0xff];
/// PostgreSQL's timestamps count microseconds from 2000-01-01 00:00 UTC.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

fn opt_text(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => field(out, v.as_bytes()),
        None => null(out),
    }
}

/// Reports in COPY's binary format for [`Db::copy_reports`] (no text for PostgreSQL to parse:
/// the point goes as EWKB, the time as microseconds), with the categories, regions and boundary
/// versions they name and the box they cover, so the load checks those references once per name
/// and tells the tile caches where it wrote.
#[derive(Debug, Default)]
pub struct CopyRows {
    tuples: Vec<u8>,
    rows: u64,
    categories: HashSet<String>,
    regions: HashSet<String>,
    versions: HashSet<i64>,
    /// min lon, min lat, max lon, max lat
    bbox: Option<[f64; 4]>,
}

impl CopyRows {
    /// Room for about `rows` rows.
    pub fn with_capacity(rows: usize) -> CopyRows {
        CopyRows {
            tuples: Vec::with_capacity(rows * 240),
            ..CopyRows::default()
        }
    }

    pub fn len(&self) -> u64 {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds one report.
    pub fn push(&mut self, r: &NewReport, external_ref: Option<&str>) {
        let out = &mut self.tuples;
        out.extend_from_slice(&19i16.to_be_bytes());
        field(out, r.category.as_bytes());
        // EWKB: little-endian point with an SRID, 4326
        let mut point = [0u8; 25];
        point[..9].copy_from_slice(&[0x01, 0x01, 0x00, 0x00, 0x20, 0xE6, 0x10, 0x00, 0x00]);
        point[9..17].copy_from_slice(&r.lon.to_le_bytes());
        point[17..].copy_from_slice(&r.lat.to_le_bytes());
        field(out, &point);
        field(out, &r.input_lon.to_be_bytes());
        field(out, &r.input_lat.to_be_bytes());
        field(out, r.input_crs.as_bytes());
        field(out, r.description.as_bytes());
        field(out, r.source.as_bytes());
        let micros = r.reported_at.timestamp_micros() - PG_EPOCH_UNIX_MICROS;
        field(out, &micros.to_be_bytes());
        field(out, r.locate_status.as_bytes());
        for code in [
            &r.district_code,
            &r.street_code,
            &r.community_code,
            &r.grid_code,
            &r.micro_grid_code,
            &r.region_code,
        ] {
            opt_text(out, code.as_deref());
            if let Some(code) = code {
                if !self.regions.contains(code) {
                    self.regions.insert(code.clone());
                }
            }
        }
        match r.region_version_id {
            Some(v) => {
                field(out, &v.to_be_bytes());
                self.versions.insert(v);
            }
            None => null(out),
        }
        match r.distance_m {
            Some(d) => field(out, &d.to_be_bytes()),
            None => null(out),
        }
        opt_text(out, external_ref);
        field(
            out,
            &crate::tiles::quadkey::tile_key(r.lon, r.lat).to_be_bytes(),
        );
        if !self.categories.contains(&r.category) {
            self.categories.insert(r.category.clone());
        }
        let b = self.bbox.get_or_insert([r.lon, r.lat, r.lon, r.lat]);
        *b = [
            b[0].min(r.lon),
            b[1].min(r.lat),
            b[2].max(r.lon),
            b[3].max(r.lat),
        ];
        self.rows += 1;
    }

    /// Takes in what `other` names and covers (not its tuples).
    fn merge_names(&mut self, other: &mut CopyRows) {
        self.rows += other.rows;
        self.categories.extend(other.categories.drain());
        self.regions.extend(other.regions.drain());
        self.versions.extend(other.versions.drain());
        if let Some(o) = other.bbox {
            let b = self.bbox.get_or_insert(o);
            *b = [
                b[0].min(o[0]),
                b[1].min(o[1]),
                b[2].max(o[2]),
                b[3].max(o[3]),
            ];
        }
    }
}

/// A bulk load under way: its transaction, holding the turn of bulk loads.
pub struct BulkLoad {
    db: Db,
    tx: Transaction<'static, Postgres>,
    /// the planner's estimate of `report`'s rows when the load began (-1: never analysed)
    rows_before: f64,
}

impl BulkLoad {
    /// Those of `refs` that reports already carry (a file imported before, or partly).
    pub async fn loaded_refs(&mut self, refs: &[&str]) -> Result<HashSet<String>> {
        if refs.is_empty() {
            return Ok(HashSet::new());
        }
        let found: Vec<String> = sqlx::query_scalar(
            "select r.external_ref from unnest($1::text[]) as f(external_ref)
               join report r on r.external_ref = f.external_ref",
        )
        .bind(refs)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db("looking up loaded ticket numbers"))?;
        Ok(found.into_iter().collect())
    }

    /// COPYs `chunks` into `report`, checks what they name, and commits. Returns the rows loaded.
    /// When the load added a tenth or more to the table, the planner's statistics of `report`
    /// are refreshed before it returns, so the next queries plan for the rows now there (a
    /// dashboard over a freshly loaded table took 5 s instead of 0.5 s); a smaller load leaves
    /// them to autovacuum, as it would any other write.
    pub async fn copy(mut self, chunks: impl IntoIterator<Item = CopyRows>) -> Result<u64> {
        let mut copy = self
            .tx
            .copy_in_raw(&format!(
                "copy report ({COLUMNS}) from stdin with (format binary)"
            ))
            .await
            .map_err(db("starting COPY"))?;
        let mut named = CopyRows::default();
        let tuples = chunks.into_iter().map(|mut chunk| {
            named.merge_names(&mut chunk);
            chunk.tuples
        });
        let stream = std::iter::once(BINARY_HEADER.to_vec())
            .chain(tuples)
            .chain(std::iter::once(BINARY_TRAILER.to_vec()));
        for bytes in stream {
            if let Err(e) = copy.send(bytes).await {
                let _ = copy.abort("send failed").await;
                return Err(db("sending COPY data")(e));
            }
        }
        let inserted = match copy.finish().await {
            Ok(n) => n,
            Err(e) => {
                let e = StorageError::Db(e, "loading reports with COPY");
                if e.is_unique_violation("report_external_ref") {
                    return Err(StorageError::Inconsistent(format!(
                        "a ticket number (external_ref) of these rows is loaded already: {e}"
                    )));
                }
                return Err(e);
            }
        };
        // A report's references have no foreign keys (migration 0010): check each name once.
        let regions: Vec<String> = named.regions.into_iter().collect();
        let categories: Vec<String> = named.categories.into_iter().collect();
        let versions: Vec<i64> = named.versions.into_iter().collect();
        let unknown: Vec<String> = sqlx::query_scalar(
            "select what from (
                 select 'region ' || n.code as what from unnest($1::text[]) n(code)
                  where not exists (select 1 from region r where r.code = n.code)
                 union all
                 select 'category ' || n.code from unnest($2::text[]) n(code)
                  where not exists (select 1 from category c where c.code = n.code)
                 union all
                 select 'region version ' || n.id from unnest($3::int8[]) n(id)
                  where not exists (select 1 from region_version v where v.id = n.id)
             ) missing order by what limit 5",
        )
        .bind(&regions)
        .bind(&categories)
        .bind(&versions)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db("checking the loaded rows' references"))?;
        if !unknown.is_empty() {
            return Err(StorageError::Inconsistent(format!(
                "imported rows name what does not exist: {}",
                unknown.join(", ")
            )));
        }
        // One notification for the whole load, so listening servers drop the tiles under it.
        if let Some([w, s, e, n]) = named.bbox {
            sqlx::query(
                "select pg_notify('gridwatch_tiles', json_build_object('table', 'report',
                         'bbox', json_build_array($1::float8, $2::float8, $3::float8, $4::float8))::text)",
            )
            .bind(w)
            .bind(s)
            .bind(e)
            .bind(n)
            .execute(&mut *self.tx)
            .await
            .map_err(db("announcing the loaded rows"))?;
        }
        self.tx
            .commit()
            .await
            .map_err(db("committing a bulk load"))?;
        // The rows are committed now: a failed refresh must not make the load look failed (a
        // retry would add the rows without ticket numbers twice); autovacuum will do it later.
        if inserted > 0 && (self.rows_before < 0.0 || inserted as f64 * 10.0 >= self.rows_before) {
            if let Err(e) = sqlx::query("analyze report").execute(&self.db.pool).await {
                tracing::warn!(error = %e, "analysing the reports after a bulk load failed");
            }
        }
        Ok(inserted)
    }
}

impl Db {
    /// Refreshes the planner's statistics of the reports and their cases after the demo's load,
    /// so the next queries plan for the rows now there rather than for the empty tables autovacuum
    /// last saw (a dashboard over a freshly loaded demo took 5 s instead of 0.5 s).
    pub async fn analyze_reports(&self) -> Result<()> {
        sqlx::query("analyze report, dispatch_case, case_event, escalation_deadline")
            .execute(&self.pool)
            .await
            .map_err(db("analysing the reports"))?;
        Ok(())
    }

    /// Starts a bulk load, waiting for any other to end first.
    pub async fn begin_bulk_load(&self) -> Result<BulkLoad> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a bulk load"))?;
        // named like the other advisory locks (redraw, packages)
        sqlx::query("select pg_advisory_xact_lock(hashtext('gridwatch.bulk_load'))")
            .execute(&mut *tx)
            .await
            .map_err(db("waiting for another bulk load to end"))?;
        let rows_before: f32 =
            sqlx::query_scalar("select reltuples from pg_class where oid = 'report'::regclass")
                .fetch_one(&mut *tx)
                .await
                .map_err(db("estimating the reports' number"))?;
        Ok(BulkLoad {
            db: self.clone(),
            tx,
            rows_before: rows_before.into(),
        })
    }

    /// Loads `chunks` as reports in one transaction ([`BulkLoad::copy`]). Rows must not repeat a
    /// loaded ticket number (see [`BulkLoad::loaded_refs`]).
    pub async fn copy_reports(&self, chunks: impl IntoIterator<Item = CopyRows>) -> Result<u64> {
        self.begin_bulk_load().await?.copy(chunks).await
    }
}
