//! `gridwatch bench import`: `reports import` of a generated 12345-hotline CSV (Chinese headers
//! and category names, China times, ticket numbers) over the demo city, against its peer in the
//! same run: PostgreSQL's COPY of the same rows already checked and assigned, the floor any
//! loader stands on. Target: ≥ 100,000 rows/s including the assignment to grids.
//!
//! Works in a database of its own (`gridwatch_bench_import`), created and dropped by the run.

use crate::storage::bulk::CopyRows;
use crate::storage::Db;
use crate::workflow::report_import::{ImportFormat, ImportOptions, CHUNK};
use crate::workflow::Gridwatch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

const BENCH_DB: &str = "gridwatch_bench_import";

/// A hotline export of `n` rows over the demo's urban cores, with one bad row in a thousand.
pub fn hotline_csv(gw: &Gridwatch, n: usize, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let points = crate::bench::random_points(gw, n, seed);
    let names: Vec<String> = gw
        .categories()
        .values()
        .map(|c| c.name_zh.clone())
        .collect();
    let mut out = String::with_capacity(n * 120);
    out.push_str("工单编号,受理时间,诉求类别,经度,纬度,事发地址,诉求内容\n");
    for (i, (lon, lat)) in points.into_iter().enumerate() {
        let day = rng.random_range(1..=28);
        let (h, m) = (rng.random_range(0..24), rng.random_range(0..60));
        let name = &names[rng.random_range(0..names.len())];
        if i % 1000 == 999 {
            // a row a hotline clerk got wrong
            let _ = writeln!(
                out,
                "12345-{i:08},2026-10-{day:02} {h:02}:{m:02}:00,{name},,,海勃湾区某小区,只有地址"
            );
            continue;
        }
        let _ = writeln!(
            out,
            "12345-{i:08},2026-10-{day:02} {h:02}:{m:02}:00,{name},{lon:.6},{lat:.6},海勃湾区,\"市民来电反映：{name}，请尽快处理\""
        );
    }
    out
}

pub async fn run(rows: usize, database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(rows >= 1000, "--rows must be at least 1000");
    crate::bench_dispatch::in_scratch_db(BENCH_DB, database_url, data_dir, |db| run_with(db, rows))
        .await
}

async fn run_with(db: Db, rows: usize) -> anyhow::Result<()> {
    let gw = crate::bench::demo_city(db.clone()).await?;
    let csv = hotline_csv(&gw, rows, 7);
    println!(
        "import benchmark: {rows} hotline rows ({:.1} MB of CSV) over {} regions of the Wuhai demo",
        csv.len() as f64 / 1e6,
        gw.index().len()
    );

    // gridwatch's own part: everything but the load (`reports import --check`).
    let started = Instant::now();
    let checked = gw
        .import_reports(
            csv.as_bytes(),
            ImportFormat::Csv,
            &ImportOptions {
                check_only: true,
                ..ImportOptions::default()
            },
            |_, _| {},
        )
        .await?;
    let check = started.elapsed().as_secs_f64();
    println!(
        "  gridwatch's part alone (parse, check, assign to grids, COPY rows; --check): {:.2} s, {:.0} rows/s ({} rejected)",
        check,
        rows as f64 / check,
        checked.rejected.len()
    );

    let started = Instant::now();
    let outcome = gw
        .import_reports(
            csv.as_bytes(),
            ImportFormat::Csv,
            &ImportOptions::default(),
            |_, _| {},
        )
        .await?;
    let ours = started.elapsed().as_secs_f64();
    let inside: i64 = sqlx::query_scalar("select count(*) from report where grid_code is not null")
        .fetch_one(db.pool())
        .await?;
    println!(
        "  reports import: {:.2} s, {:.0} rows/s ({} loaded, {} in a grid, {} rejected)",
        ours,
        rows as f64 / ours,
        outcome.loaded.inserted,
        inside,
        outcome.rejected.len()
    );

    // The peer: the same rows, checked and assigned beforehand (not timed), COPYed in.
    let now = gw.clock.now();
    let mut prepared = Vec::with_capacity(rows / CHUNK + 1);
    let mut rows = CopyRows::with_capacity(CHUNK);
    for r in sqlx::query_as::<
        _,
        (
            String,
            f64,
            f64,
            String,
            String,
            chrono::DateTime<chrono::Utc>,
        ),
    >(
        "select category, input_lon, input_lat, description, external_ref, reported_at from report",
    )
    .fetch_all(db.pool())
    .await?
    {
        let input = crate::workflow::intake::ReportInput {
            category: r.0,
            lon: r.1,
            lat: r.2,
            description: Some(r.3),
            source: "hotline".into(),
            reported_at: Some(r.5),
            ..Default::default()
        };
        let (row, _) = gw.prepare_report(&input, now)?;
        rows.push(&row, Some(&format!("peer-{}", r.4)));
        if rows.len() as usize == CHUNK {
            prepared.push(std::mem::replace(&mut rows, CopyRows::with_capacity(CHUNK)));
        }
    }
    prepared.push(rows);
    let started = Instant::now();
    let loaded = db.copy_reports(prepared).await?;
    let peer = started.elapsed().as_secs_f64();
    println!(
        "  peer, COPY of the same rows checked and assigned beforehand: {:.2} s, {:.0} rows/s ({} loaded)",
        peer,
        loaded as f64 / peer,
        loaded
    );
    println!(
        "  ratio: the whole import (parse, check, assign, load) takes {:.2}× the time of the bare COPY",
        ours / peer
    );
    Ok(())
}
