//! `gridwatch bench hotspots`: Gi* with permutations over the demo's grids and its year of
//! reports, against PySAL esda's `G_Local(transform="B", star=True)` on the same counts and
//! neighbours in the same run (tests/reference/gi_star.py, timed inside Python around G_Local
//! alone). Target: ≥ 10× esda at 999 permutations.
//!
//! Works in a database of its own (`gridwatch_bench_hotspots`), created and dropped by the run.

use crate::analysis::hotspots::gi_star;
use crate::storage::Db;
use crate::tiles::TileFilter;
use crate::workflow::Gridwatch;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const BENCH_DB: &str = "gridwatch_bench_hotspots";
const RUNS: usize = 5;

pub async fn run(
    permutations: usize,
    python: &Path,
    database_url: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        python.exists(),
        "{} not found: the comparison needs esda (scripts/setup --with-browser makes tests/.venv)",
        python.display()
    );
    let python = python.to_owned();
    crate::bench_dispatch::in_scratch_db(BENCH_DB, database_url, data_dir, move |db| {
        run_with(db, permutations, python)
    })
    .await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run_with(db: Db, permutations: usize, python: std::path::PathBuf) -> anyhow::Result<()> {
    let gw = Gridwatch::open(db.clone(), 50.0).await?;
    crate::demo::load(&gw).await.context("loading the demo")?;
    let areas = db.grid_counts(None, &TileFilter::default()).await?;
    let (y, neighbours) = crate::storage::tiles::values_and_neighbours(&areas);
    let links: usize = neighbours.iter().map(Vec::len).sum();
    println!(
        "hot-spot benchmark: Gi* over {} grids ({} reports, {:.1} neighbours each), {permutations} permutations",
        y.len(),
        y.iter().sum::<f64>(),
        links as f64 / y.len() as f64
    );

    let mut ours = Vec::new();
    let mut result = None;
    for run in 0..RUNS {
        let (y, w) = (y.clone(), neighbours.clone());
        let started = Instant::now();
        let r =
            tokio::task::spawn_blocking(move || gi_star(&y, &w, permutations, 0.05, run as u64))
                .await?
                .map_err(|e| anyhow::anyhow!(e.0))?;
        ours.push(started.elapsed().as_secs_f64());
        result = Some(r);
    }
    let result = result.context("no run")?;

    let input = serde_json::json!({"y": y, "neighbours": neighbours}).to_string();
    let mut theirs = Vec::new();
    let mut z_ref: Vec<f64> = Vec::new();
    for _ in 0..3 {
        let python = python.clone();
        let input = input.clone();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/gi_star.py");
        let out = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
            let mut child = Command::new(&python)
                .arg(&script)
                .args(["--permutations", &permutations.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("running {}", python.display()))?;
            child
                .stdin
                .take()
                .context("stdin")?
                .write_all(input.as_bytes())?;
            let out = child.wait_with_output()?;
            anyhow::ensure!(out.status.success(), "the esda reference failed");
            Ok(serde_json::from_slice(&out.stdout)?)
        })
        .await??;
        theirs.push(out["seconds"].as_f64().context("seconds")?);
        z_ref = out["z"]
            .as_array()
            .context("z")?
            .iter()
            .filter_map(|v| v.as_f64())
            .collect();
    }
    let worst = result
        .spots
        .iter()
        .zip(&z_ref)
        .map(|(s, r)| (s.z - r).abs())
        .fold(0.0f64, f64::max);
    let (ours, theirs) = (median(ours), median(theirs));
    let hot = result
        .spots
        .iter()
        .filter(|s| s.class == crate::analysis::hotspots::SpotClass::Hot)
        .count();
    println!(
        "  gridwatch gi_star (one thread): {:.1} ms (median of {RUNS})",
        ours * 1e3
    );
    println!(
        "  esda G_Local (same data, same run): {:.1} ms (median of 3)",
        theirs * 1e3
    );
    println!(
        "  ratio: esda takes {:.1}× the time of gridwatch",
        theirs / ours
    );
    println!("  largest |z − z_esda|: {worst:e}; {hot} hot grids at FDR 0.05 in the last run");
    Ok(())
}
