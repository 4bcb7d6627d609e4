//! `gridwatch bench`: assigns random points to the demo grids with the in-memory index and with
//! the equivalent PostGIS join on the same data, in the same run, and prints both rates and
//! their ratio. Timings are printed, never asserted.

use crate::domain::Level;
use crate::server::Database;
use crate::spatial::{Assignment, LocateStatus};
use crate::workflow::Gridwatch;
use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::time::Instant;

/// Random points over the urban cores: uniform in the bounding box of a random street,
/// widened by 5 %, so most fall in grids and some near or outside them.
/// The service over the demo city's regions (no incidents), as every benchmark starts.
pub async fn demo_city(db: crate::storage::Db) -> anyhow::Result<Gridwatch> {
    let gw = Gridwatch::open(db, 50.0).await?;
    gw.import_regions(
        crate::demo::REGIONS_GEOJSON.as_bytes(),
        crate::domain::Crs::Wgs84,
        true,
    )
    .await
    .context("loading the demo regions")?;
    Ok(gw)
}

pub fn random_points(gw: &Gridwatch, n: usize, seed: u64) -> Vec<(f64, f64)> {
    let index = gw.index();
    let boxes: Vec<geo::Rect<f64>> = index
        .records()
        .filter(|r| r.level == Level::Street)
        .filter_map(|r| geo::BoundingRect::bounding_rect(&r.geom))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let b = boxes[rng.random_range(0..boxes.len())];
            let (w, h) = (b.width() * 1.05, b.height() * 1.05);
            let (x0, y0) = (b.center().x - w / 2.0, b.center().y - h / 2.0);
            (x0 + rng.random::<f64>() * w, y0 + rng.random::<f64>() * h)
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(n: usize, database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(n > 0, "--points must be positive");
    let database = Database::open(database_url, data_dir).await?;
    let result = run_with(&database, n).await;
    database.close().await;
    result
}

async fn run_with(database: &Database, n: usize) -> anyhow::Result<()> {
    let gw = demo_city(database.db.clone()).await?;
    let index = gw.index();
    let points = random_points(&gw, n, 42);
    println!(
        "locate benchmark: {n} random points over {} grids and {} micro-grids of the Wuhai demo",
        index.count(Level::Grid),
        index.count(Level::MicroGrid)
    );

    // In memory, one thread: the full locate (inside / near / district fallback). The machine is
    // shared and noisy, so each side is timed several times and the median is compared.
    let mut ours: Vec<Assignment> = Vec::with_capacity(n);
    let mut runs = Vec::new();
    for _ in 0..5 {
        ours.clear();
        let t = Instant::now();
        for &(x, y) in &points {
            ours.push(index.locate(x, y));
        }
        runs.push(t.elapsed().as_secs_f64());
    }
    let mem_s = median(&mut runs);
    let mem_rate = n as f64 / mem_s;
    let mut statuses = [0usize; 3];
    for a in &ours {
        statuses[a.status as usize] += 1;
    }
    println!(
        "in-memory index (1 thread, median of 5): {mem_s:.3} s, {mem_rate:.0} points/s (inside {}, near {}, outside {}; raster caches {:.1} MiB)",
        statuses[0],
        statuses[1],
        statuses[2],
        index.raster_bytes() as f64 / 1048576.0
    );
    for status in [
        LocateStatus::Inside,
        LocateStatus::Near,
        LocateStatus::Outside,
    ] {
        let subset: Vec<(f64, f64)> = points
            .iter()
            .zip(&ours)
            .filter(|(_, a)| a.status == status)
            .map(|(p, _)| *p)
            .collect();
        let t = Instant::now();
        let mut check = 0usize;
        for &(x, y) in &subset {
            check += index.locate(x, y).status as usize;
        }
        let per = t.elapsed().as_secs_f64() / subset.len().max(1) as f64;
        println!(
            "  {:>7}: {:>4.0} ns/point ({} points, check {check})",
            status.as_str(),
            per * 1e9,
            subset.len()
        );
    }
    let t = Instant::now();
    let exact: Vec<Assignment> = points
        .iter()
        .map(|&(x, y)| index.locate_exact(x, y))
        .collect();
    let exact_s = t.elapsed().as_secs_f64();
    let differ = exact.iter().zip(&ours).filter(|(a, b)| a != b).count();
    println!(
        "  without the raster caches (R-tree + exact PIP only): {exact_s:.3} s, {:.0} points/s; answers differing: {differ}",
        n as f64 / exact_s
    );

    // PostGIS: the same points in a table, joined to the current grid boundaries (GiST index),
    // one worker so that both sides use one core.
    let pool = gw.db.pool();
    let mut conn = pool.acquire().await?;
    sqlx::query("drop table if exists bench_point")
        .execute(&mut *conn)
        .await?;
    sqlx::query("create unlogged table bench_point (id integer primary key, geom geometry(Point, 4326) not null)")
        .execute(&mut *conn)
        .await?;
    let t = Instant::now();
    for (k, chunk) in points.chunks(50_000).enumerate() {
        let ids: Vec<i32> = (0..chunk.len()).map(|i| (k * 50_000 + i) as i32).collect();
        let xs: Vec<f64> = chunk.iter().map(|p| p.0).collect();
        let ys: Vec<f64> = chunk.iter().map(|p| p.1).collect();
        sqlx::query(
            "insert into bench_point select id, st_setsrid(st_makepoint(x, y), 4326)
               from unnest($1::int[], $2::float8[], $3::float8[]) as t(id, x, y)",
        )
        .bind(&ids)
        .bind(&xs)
        .bind(&ys)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("create index on bench_point using gist (geom)")
        .execute(&mut *conn)
        .await?;
    sqlx::query("analyze bench_point")
        .execute(&mut *conn)
        .await?;
    println!(
        "  (loading and indexing the points in PostGIS took {:.3} s, not counted)",
        t.elapsed().as_secs_f64()
    );
    sqlx::query("set max_parallel_workers_per_gather = 0")
        .execute(&mut *conn)
        .await?;
    // The plain spatial join, planner's choice: with both sides indexed it walks the 704 grids and
    // probes the points' GiST index, reusing each prepared polygon (its fastest plan here).
    let join = "select p.id, v.region_code
                  from region_version v
                  join region r on r.code = v.region_code and r.level = 'grid'
                  join bench_point p on st_covers(v.geom, p.geom)
                 where v.valid_to is null";
    let mut runs = Vec::new();
    let mut matched = 0i64;
    for _ in 0..3 {
        let t = Instant::now();
        matched = sqlx::query_scalar(&format!("select count(*) from ({join}) j"))
            .fetch_one(&mut *conn)
            .await?;
        runs.push(t.elapsed().as_secs_f64());
    }
    let pg_s = median(&mut runs);
    let pg_rate = n as f64 / pg_s;
    println!(
        "PostGIS join (ST_Covers, GiST on both sides, 1 worker, median of 3): {pg_s:.3} s, {pg_rate:.0} points/s ({matched} point-grid pairs)"
    );
    println!("ratio in-memory / PostGIS: {:.1}x", mem_rate / pg_rate);

    // Agreement (not timed): same grid for every point PostGIS puts in exactly one grid.
    let rows: Vec<(i32, String)> = sqlx::query_as(join).fetch_all(&mut *conn).await?;
    // A point exactly on a shared edge is covered by two grids (random points practically never
    // are); keep the smaller code so the comparison is deterministic.
    let mut pg: Vec<Option<&str>> = vec![None; n];
    for (id, code) in &rows {
        let slot = &mut pg[*id as usize];
        if slot.is_none_or(|c| code.as_str() < c) {
            *slot = Some(code.as_str());
        }
    }
    let disagree = ours
        .iter()
        .zip(&pg)
        .filter(|(a, p)| {
            let grid = (a.status == LocateStatus::Inside)
                .then(|| index.at_level(a, Level::Grid))
                .flatten()
                .map(|r| r.code.as_str());
            grid != **p
        })
        .count();
    println!(
        "agreement with PostGIS on the grid of each point: {} of {n} differ",
        disagree
    );
    sqlx::query("drop table bench_point")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
