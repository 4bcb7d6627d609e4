//! `gridwatch bench scale`: how the in-memory region index grows with the number of grids, for
//! the scale-out plan (ARCHITECTURE.md, "Scale-out"). For each size a synthetic city is made —
//! a jittered lattice of grids with shared, many-vertex edges, grouped 8 × 8 into communities,
//! streets and districts, with the codes of the real hierarchy — and measured:
//! - the heap the index holds (exact: the process's allocator counts every byte, see
//!   [`crate::HEAP`]) and the time to build it;
//! - the latency of one `locate` (p50/p99 of single calls) over random points;
//! - the peer in the same run: the same grid polygons in a PostGIS table with a GiST index,
//!   its size on disk, and the latency of one point query through a pooled connection. The
//!   grid both sides give each point is compared, and every disagreement is printed.
//!
//! Figures are printed, never asserted.

use crate::bench_dispatch::{in_scratch_db, percentile};
use crate::domain::Level;
use crate::spatial::{LocateStatus, RegionIndex, RegionRecord};
use crate::storage::Db;
use anyhow::Context;
use geo::{Coord, LineString, MultiPolygon, Polygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::time::Instant;

const BENCH_DB: &str = "gridwatch_bench_scale";
/// Grids per community side, communities per street side, streets per district side.
const BLOCK: usize = 8;
/// Points between two lattice corners on every edge (so a grid has 16 vertices).
const EDGE_POINTS: usize = 3;
/// A grid's side, in metres.
const GRID_M: f64 = 300.0;
const LON0: f64 = 106.0;
const LAT0: f64 = 38.5;

#[derive(Debug, Clone)]
pub struct Options {
    /// grid counts to measure (each rounded to a full lattice)
    pub grids: Vec<usize>,
    /// random points timed in memory
    pub points: usize,
    /// random points queried from PostGIS
    pub queries: usize,
}

/// A lattice city of `cols × rows` grids and the communities, streets and districts they make.
pub struct SyntheticCity {
    pub cols: usize,
    pub rows: usize,
    pub records: Vec<RegionRecord>,
    /// lon/lat extent of the lattice
    pub extent: (f64, f64, f64, f64),
}

/// A 64-bit mix of the arguments (splitmix64), for jitter that depends only on where it is.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A value in [-1, 1) from a position key.
fn jitter(seed: u64, parts: [u64; 4]) -> f64 {
    let h = parts.iter().fold(mix(seed), |acc, &p| {
        mix(acc ^ p.wrapping_mul(0xA24B_AED4_963E_E407))
    });
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

struct Lattice {
    seed: u64,
    dx: f64,
    dy: f64,
}

impl Lattice {
    /// Lattice corner (i, j), moved by up to a fifth of a grid.
    fn corner(&self, i: usize, j: usize) -> Coord<f64> {
        let (i64_, j64) = (i as u64, j as u64);
        Coord {
            x: LON0 + (i as f64 + 0.2 * jitter(self.seed, [i64_, j64, 0, 0])) * self.dx,
            y: LAT0 + (j as f64 + 0.2 * jitter(self.seed, [i64_, j64, 1, 0])) * self.dy,
        }
    }

    /// The points inside the edge from corner (i, j) east (`east`) or north, in that direction,
    /// each moved across the edge by up to a tenth of a grid.
    fn edge(&self, i: usize, j: usize, east: bool) -> [Coord<f64>; EDGE_POINTS] {
        let a = self.corner(i, j);
        let b = if east {
            self.corner(i + 1, j)
        } else {
            self.corner(i, j + 1)
        };
        std::array::from_fn(|k| {
            let t = (k + 1) as f64 / (EDGE_POINTS + 1) as f64;
            let off = 0.1 * jitter(self.seed, [i as u64, j as u64, 2 + east as u64, k as u64]);
            let (x, y) = (a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t);
            if east {
                Coord {
                    x,
                    y: y + off * self.dy,
                }
            } else {
                Coord {
                    x: x + off * self.dx,
                    y,
                }
            }
        })
    }

    /// The outline of lattice cells [i0, i1) × [j0, j1), counter-clockwise, through every
    /// corner and edge point on it: the same vertices its neighbours and children use.
    fn outline(&self, i0: usize, i1: usize, j0: usize, j1: usize) -> MultiPolygon<f64> {
        let mut ring = Vec::with_capacity(2 * ((i1 - i0) + (j1 - j0)) * (EDGE_POINTS + 1) + 1);
        for i in i0..i1 {
            ring.push(self.corner(i, j0));
            ring.extend(self.edge(i, j0, true));
        }
        for j in j0..j1 {
            ring.push(self.corner(i1, j));
            ring.extend(self.edge(i1, j, false));
        }
        for i in (i0..i1).rev() {
            ring.push(self.corner(i + 1, j1));
            ring.extend(self.edge(i, j1, true).into_iter().rev());
        }
        for j in (j0..j1).rev() {
            ring.push(self.corner(i0, j + 1));
            ring.extend(self.edge(i0, j, false).into_iter().rev());
        }
        ring.push(ring[0]);
        MultiPolygon(vec![Polygon::new(LineString(ring), vec![])])
    }
}

/// A city of about `grids` grids (a square lattice, `ceil(sqrt(grids))` a side).
pub fn synthetic_city(grids: usize, seed: u64) -> SyntheticCity {
    let cols = (grids as f64).sqrt().ceil().max(1.0) as usize;
    let rows = grids.div_ceil(cols).max(1);
    let dy = GRID_M / crate::spatial::distance::METRES_PER_DEG_LAT;
    let dx = GRID_M / crate::spatial::distance::metres_per_deg_lon(LAT0 + rows as f64 * dy / 2.0);
    let lattice = Lattice { seed, dx, dy };
    let mut records = Vec::new();
    let mut version = 0i64;
    // Blocks of each level: (level, cells a side, code of the block holding cell (i, j)).
    let sizes = [
        (Level::District, BLOCK * BLOCK * BLOCK),
        (Level::Street, BLOCK * BLOCK),
        (Level::Community, BLOCK),
        (Level::Grid, 1),
    ];
    let code_of = |i: usize, j: usize, depth: usize| -> String {
        // District number from its block; below it, the child's place in its parent's block.
        let (_, s0) = sizes[0];
        let d = (j / s0) * cols.div_ceil(s0) + i / s0 + 1;
        let mut code = format!("15{d:04}");
        for &(_, side) in &sizes[1..=depth] {
            let parent_side = side * BLOCK;
            let (li, lj) = ((i % parent_side) / side, (j % parent_side) / side);
            code.push_str(&format!("{:03}", lj * BLOCK + li + 1));
        }
        code
    };
    for (depth, &(level, side)) in sizes.iter().enumerate() {
        for bj in 0..rows.div_ceil(side) {
            for bi in 0..cols.div_ceil(side) {
                let (i0, j0) = (bi * side, bj * side);
                let (i1, j1) = ((i0 + side).min(cols), (j0 + side).min(rows));
                let code = code_of(i0, j0, depth);
                let parent_code = (depth > 0).then(|| code_of(i0, j0, depth - 1));
                version += 1;
                records.push(RegionRecord {
                    name: format!("{}{}", level.name_zh(), &code[code.len() - 3..]),
                    code,
                    level,
                    parent_code,
                    version_id: version,
                    geom: lattice.outline(i0, i1, j0, j1),
                    party_branch: None,
                });
            }
        }
    }
    SyntheticCity {
        cols,
        rows,
        records,
        extent: (
            LON0 - dx,
            LAT0 - dy,
            LON0 + (cols + 1) as f64 * dx,
            LAT0 + (rows + 1) as f64 * dy,
        ),
    }
}

/// Uniform random points over a city's extent (min lon, min lat, max lon, max lat).
pub fn random_points(extent: (f64, f64, f64, f64), n: usize, seed: u64) -> Vec<(f64, f64)> {
    let (x0, y0, x1, y1) = extent;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            (
                x0 + rng.random::<f64>() * (x1 - x0),
                y0 + rng.random::<f64>() * (y1 - y0),
            )
        })
        .collect()
}

/// One size's figures.
#[derive(Debug, Clone)]
pub struct Measured {
    pub grids: usize,
    pub regions: usize,
    pub index_bytes: usize,
    pub geometry_bytes: usize,
    pub build_s: f64,
    pub locate_p50_us: f64,
    pub locate_p99_us: f64,
    pub postgis_load_s: f64,
    pub postgis_table_bytes: i64,
    pub postgis_index_bytes: i64,
    pub postgis_p50_us: f64,
    pub postgis_p99_us: f64,
    pub compared: usize,
    pub disagreements: usize,
}

pub async fn run(opts: Options, database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!opts.grids.is_empty(), "--grids needs at least one size");
    anyhow::ensure!(
        opts.grids.iter().all(|&g| g > 0),
        "--grids sizes must be positive"
    );
    anyhow::ensure!(
        opts.points > 0 && opts.queries > 0,
        "--points and --queries must be positive"
    );
    in_scratch_db(BENCH_DB, database_url, data_dir, |db| run_with(db, opts)).await
}

async fn run_with(db: Db, opts: Options) -> anyhow::Result<()> {
    println!(
        "scale benchmark: the in-memory index vs a PostGIS GiST table of the same grids; \
         {} located in memory and {} queried from PostGIS per size",
        opts.points, opts.queries
    );
    let mut all = Vec::new();
    for &grids in &opts.grids {
        let m = measure(&db, grids, &opts).await?;
        println!(
            "{:>9} grids ({} regions): index {:.1} MiB ({:.0} B/grid; geometry {:.1} MiB), built in {:.2} s; \
             locate p50 {:.2} µs p99 {:.2} µs | PostGIS table {:.1} MiB + GiST {:.1} MiB, loaded and indexed in {:.1} s; \
             query p50 {:.0} µs p99 {:.0} µs ({:.0}x the in-memory p50); {} of {} points agree",
            m.grids,
            m.regions,
            mib(m.index_bytes as f64),
            m.index_bytes as f64 / m.grids as f64,
            mib(m.geometry_bytes as f64),
            m.build_s,
            m.locate_p50_us,
            m.locate_p99_us,
            mib(m.postgis_table_bytes as f64),
            mib(m.postgis_index_bytes as f64),
            m.postgis_load_s,
            m.postgis_p50_us,
            m.postgis_p99_us,
            m.postgis_p50_us / m.locate_p50_us,
            m.compared - m.disagreements,
            m.compared,
        );
        all.push(m);
    }
    println!("\n| grids | index heap | per grid | build | locate p50 / p99 | PostGIS table + GiST | query p50 / p99 | ratio p50 |");
    println!("|---|---|---|---|---|---|---|---|");
    for m in &all {
        println!(
            "| {} | {:.1} MiB | {:.0} B | {:.2} s | {:.2} / {:.2} µs | {:.1} + {:.1} MiB | {:.0} / {:.0} µs | {:.0}x |",
            m.grids,
            mib(m.index_bytes as f64),
            m.index_bytes as f64 / m.grids as f64,
            m.build_s,
            m.locate_p50_us,
            m.locate_p99_us,
            mib(m.postgis_table_bytes as f64),
            mib(m.postgis_index_bytes as f64),
            m.postgis_p50_us,
            m.postgis_p99_us,
            m.postgis_p50_us / m.locate_p50_us
        );
    }
    let disagreements: usize = all.iter().map(|m| m.disagreements).sum();
    println!("disagreements between the index and PostGIS: {disagreements}");
    Ok(())
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

async fn measure(db: &Db, grids: usize, opts: &Options) -> anyhow::Result<Measured> {
    let before = crate::HEAP.allocated();
    let city = synthetic_city(grids, 7);
    let geometry_bytes = crate::HEAP.allocated().saturating_sub(before);
    let grids = city.cols * city.rows;
    let regions = city.records.len();
    let t = Instant::now();
    let index = RegionIndex::new(city.records, 50.0);
    let build_s = t.elapsed().as_secs_f64();
    let index_bytes = crate::HEAP.allocated().saturating_sub(before);

    // In memory: one call timed at a time (the clock read costs some tens of ns of each).
    let points = random_points(city.extent, opts.points, 11);
    let mut micros = Vec::with_capacity(points.len());
    let mut inside = 0usize;
    for &(x, y) in &points {
        let t = Instant::now();
        let a = index.locate(x, y);
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        inside += usize::from(a.status == LocateStatus::Inside);
        std::hint::black_box(a);
    }
    micros.sort_by(f64::total_cmp);
    anyhow::ensure!(inside > 0, "no random point fell in a grid");

    // PostGIS: the grids alone, as a locate by SQL would use them.
    sqlx::query("drop table if exists scale_grid")
        .execute(db.pool())
        .await?;
    sqlx::query("create unlogged table scale_grid (code text not null, geom geometry(Polygon, 4326) not null)")
        .execute(db.pool())
        .await?;
    let t = Instant::now();
    {
        let mut conn = db.pool().acquire().await?;
        let mut copy = conn
            .copy_in_raw("copy scale_grid (code, geom) from stdin")
            .await
            .context("starting the COPY of the grids")?;
        let mut text = String::new();
        for r in index.records().filter(|r| r.level == Level::Grid) {
            text.push_str(&r.code);
            text.push_str("\tSRID=4326;POLYGON((");
            for (k, c) in r.geom.0[0].exterior().coords().enumerate() {
                if k > 0 {
                    text.push(',');
                }
                text.push_str(&format!("{} {}", c.x, c.y));
            }
            text.push_str("))\n");
            if text.len() > 1 << 20 {
                copy.send(text.as_bytes()).await?;
                text.clear();
            }
        }
        copy.send(text.as_bytes()).await?;
        copy.finish().await.context("copying the grids")?;
    }
    sqlx::query("create index scale_grid_geom on scale_grid using gist (geom)")
        .execute(db.pool())
        .await?;
    sqlx::query("analyze scale_grid").execute(db.pool()).await?;
    let postgis_load_s = t.elapsed().as_secs_f64();
    let (postgis_table_bytes, postgis_index_bytes): (i64, i64) = sqlx::query_as(
        "select pg_total_relation_size('scale_grid') - pg_relation_size('scale_grid_geom'),
                pg_relation_size('scale_grid_geom')",
    )
    .fetch_one(db.pool())
    .await?;

    let queries = random_points(city.extent, opts.queries, 13);
    let mut pg_micros = Vec::with_capacity(queries.len());
    let mut disagreements = 0usize;
    for &(x, y) in &queries {
        let t = Instant::now();
        let theirs: Option<String> = sqlx::query_scalar(
            "select code from scale_grid
              where st_intersects(geom, st_setsrid(st_makepoint($1, $2), 4326))
              order by code limit 1",
        )
        .bind(x)
        .bind(y)
        .fetch_optional(db.pool())
        .await?;
        pg_micros.push(t.elapsed().as_secs_f64() * 1e6);
        let a = index.locate(x, y);
        let ours = (a.status == LocateStatus::Inside)
            .then(|| index.at_level(&a, Level::Grid).map(|r| r.code.clone()))
            .flatten();
        if ours != theirs {
            disagreements += 1;
            println!("  disagree at ({x}, {y}): index {ours:?}, PostGIS {theirs:?}");
        }
    }
    pg_micros.sort_by(f64::total_cmp);
    sqlx::query("drop table scale_grid")
        .execute(db.pool())
        .await?;
    drop(index);
    Ok(Measured {
        grids,
        regions,
        index_bytes,
        geometry_bytes,
        build_s,
        locate_p50_us: percentile(&micros, 0.5),
        locate_p99_us: percentile(&micros, 0.99),
        postgis_load_s,
        postgis_table_bytes,
        postgis_index_bytes,
        postgis_p50_us: percentile(&pg_micros, 0.5),
        postgis_p99_us: percentile(&pg_micros, 0.99),
        compared: queries.len(),
        disagreements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_nests_and_its_neighbours_share_edges() {
        let city = synthetic_city(200, 3);
        assert_eq!((city.cols, city.rows), (15, 14));
        let count = |l: Level| city.records.iter().filter(|r| r.level == l).count();
        assert_eq!(count(Level::Grid), 15 * 14);
        assert_eq!(count(Level::Community), 2 * 2);
        assert_eq!((count(Level::Street), count(Level::District)), (1, 1));
        let by_code: std::collections::HashMap<&str, &RegionRecord> =
            city.records.iter().map(|r| (r.code.as_str(), r)).collect();
        for r in &city.records {
            assert_eq!(r.code.len(), r.level.code_len(), "{}", r.code);
            if let Some(p) = &r.parent_code {
                assert!(r.code.starts_with(p.as_str()), "{} under {p}", r.code);
                assert!(by_code.contains_key(p.as_str()), "{p} exists");
            }
        }
        // Every grid is valid, and the grids tile their community exactly (areas add up).
        use geo::{Area, Validation};
        for r in &city.records {
            assert!(r.geom.is_valid(), "{} is valid", r.code);
        }
        let community = by_code["150001001001"];
        let children: f64 = city
            .records
            .iter()
            .filter(|r| r.parent_code.as_deref() == Some("150001001001"))
            .map(|r| r.geom.unsigned_area())
            .sum();
        let whole = community.geom.unsigned_area();
        assert!(
            (children - whole).abs() < whole * 1e-9,
            "{children} vs {whole}"
        );
        // So every point inside the lattice is inside exactly one grid.
        let index = RegionIndex::new(city.records.clone(), 50.0);
        let c = by_code["150001001001001"].geom.0[0].exterior().0[0];
        let a = index.locate(c.x + 1e-5, c.y + 1e-5);
        assert_eq!(a.status, LocateStatus::Inside);
    }
}
