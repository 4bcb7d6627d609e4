//! `gridwatch bench dispatch`: the two dispatch targets, each beside its peer in the same run.
//!
//! 1. Intake: routing + case creation (report, case, first event, grid-staff notice in one
//!    durable transaction per report) against the plain report insert it extends, both with the
//!    same concurrent clients. Target: ≥ 2,000 reports/s sustained on 2 cores.
//! 2. The escalation scheduler with 100,000 open deadlines in PostgreSQL, against the obvious
//!    in-memory design (one timer task per deadline): how late each fires, and the memory held.
//!
//! It works in a database of its own (`gridwatch_bench_dispatch`), created and dropped by the run,
//! so it never touches the service's data. Timings are printed, never asserted.

use crate::domain::case::EscalationPolicy;
use crate::server::Database;
use crate::storage::dispatch::{History, PastWhistle};
use crate::storage::Db;
use crate::workflow::intake::ReportInput;
use crate::workflow::Gridwatch;
use anyhow::Context;
use chrono::{Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::ConnectOptions;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const BENCH_DB: &str = "gridwatch_bench_dispatch";

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub reports: usize,
    pub clients: usize,
    pub deadlines: usize,
    /// the deadlines fall due over this many seconds
    pub window_s: u64,
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The value at fraction `p` of `sorted` (nearest index; NaN for none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub async fn run(sizes: Sizes, database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        sizes.reports > 0 && sizes.clients > 0,
        "--reports and --clients must be positive"
    );
    anyhow::ensure!(sizes.deadlines >= 4, "--deadlines must be at least 4");
    in_scratch_db(BENCH_DB, database_url, data_dir, |db| run_with(db, sizes)).await
}

/// Runs `bench` in a database `name` of its own, created fresh and dropped afterwards.
pub(crate) async fn in_scratch_db<F, Fut>(
    name: &str,
    database_url: Option<&str>,
    data_dir: &Path,
    bench: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Db) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let database = Database::open(database_url, data_dir).await?;
    let options = database.db.options();
    let admin = options.clone().database("postgres");
    let drop_bench = || async {
        let mut conn = admin.connect().await?;
        sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&mut conn)
            .await?;
        anyhow::Ok(())
    };
    drop_bench()
        .await
        .context("dropping an old bench database")?;
    let db = Db::connect(options.clone().database(name)).await?;
    let result = bench(db.clone()).await;
    db.pool().close().await;
    drop_bench().await.context("dropping the bench database")?;
    database.close().await;
    result
}

async fn run_with(db: Db, sizes: Sizes) -> anyhow::Result<()> {
    let gw = crate::bench::demo_city(db.clone()).await?;
    crate::demo::seed_rules(&gw).await?;
    let (sync, fsync): (String, String) =
        sqlx::query_as("select current_setting('synchronous_commit'), current_setting('fsync')")
            .fetch_one(db.pool())
            .await?;
    println!(
        "dispatch benchmark: {} reports by {} concurrent clients; {} open deadlines (synchronous_commit={sync}, fsync={fsync})",
        sizes.reports, sizes.clients, sizes.deadlines
    );
    intake(&gw, sizes).await?;
    scheduler(&gw, sizes).await?;
    Ok(())
}

fn inputs(gw: &Gridwatch, n: usize, seed: u64) -> Vec<ReportInput> {
    let categories: Vec<String> = gw.categories().keys().cloned().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    crate::bench::random_points(gw, n, seed)
        .into_iter()
        .map(|(lon, lat)| ReportInput {
            category: categories[rng.random_range(0..categories.len())].clone(),
            lon,
            lat,
            crs: None,
            description: Some("基准测试".into()),
            source: "resident".into(),
            reported_at: None,
            ..Default::default()
        })
        .collect()
}

/// Runs `work` on every input from `clients` tasks; returns reports per second.
async fn concurrently<F, Fut>(
    inputs: Vec<ReportInput>,
    clients: usize,
    work: F,
) -> anyhow::Result<f64>
where
    F: Fn(ReportInput) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let n = inputs.len();
    let queue = Arc::new(std::sync::Mutex::new(inputs));
    let work = Arc::new(work);
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let queue = queue.clone();
        let work = work.clone();
        tasks.spawn(async move {
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                match next {
                    Some(input) => work(input).await?,
                    None => return anyhow::Ok(()),
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

async fn intake(gw: &Gridwatch, sizes: Sizes) -> anyhow::Result<()> {
    let n = sizes.reports;
    // The peer: the foundation's intake, a located report written in its own transaction.
    let plain = {
        let gw = gw.clone();
        concurrently(inputs(&gw, n, 7), sizes.clients, move |input| {
            let gw = gw.clone();
            async move {
                let (row, _) = gw.prepare_report(&input, Utc::now())?;
                gw.db.insert_reports(std::slice::from_ref(&row)).await?;
                Ok(())
            }
        })
        .await?
    };
    let before: i64 = gw.db.case_count().await?;
    let routed = {
        let gw = gw.clone();
        concurrently(inputs(&gw, n, 8), sizes.clients, move |input| {
            let gw = gw.clone();
            async move {
                gw.file_report(&input).await?;
                Ok(())
            }
        })
        .await?
    };
    let opened = gw.db.case_count().await? - before;
    anyhow::ensure!(opened == n as i64, "{opened} cases opened for {n} reports");
    // Batches of 200 reports a transaction, as an import of a day's hotline records would.
    let batched = {
        let all = inputs(gw, n, 9);
        let t = Instant::now();
        for chunk in all.chunks(200) {
            gw.file_reports(chunk).await?;
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    println!();
    println!(
        "intake ({} clients, each report answered after its durable commit):",
        sizes.clients
    );
    println!("  peer: report only (locate + insert, a commit each)   {plain:>8.0} reports/s");
    println!("  report + routing + case + event + notice (grouped)   {routed:>8.0} reports/s");
    println!(
        "  ratio routed / report only                           {:>8.2}",
        routed / plain
    );
    println!(
        "  target 2,000 reports/s                               {:>8}",
        if routed >= 2000.0 { "met" } else { "NOT met" }
    );
    println!("  one client filing batches of 200                     {batched:>8.0} reports/s");
    Ok(())
}

async fn scheduler(gw: &Gridwatch, sizes: Sizes) -> anyhow::Result<()> {
    let policy = EscalationPolicy::haibowan();
    let steps = policy.steps.len();
    let whistles = sizes.deadlines / steps;
    let total = whistles * steps;
    let window = Duration::seconds(sizes.window_s as i64);
    let lead = Duration::seconds(3);

    // The peer: one in-memory timer task per deadline, due over the same window.
    let rss0 = rss_mib();
    let start = Utc::now() + lead;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let offsets: Vec<Duration> = (0..total)
        .map(|_| Duration::milliseconds(rng.random_range(0..window.num_milliseconds().max(1))))
        .collect();
    let late = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let mut timers = tokio::task::JoinSet::new();
    for off in &offsets {
        let due = start + *off;
        let late = late.clone();
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        let at = tokio::time::Instant::now() + wait;
        timers.spawn(async move {
            tokio::time::sleep_until(at).await;
            let l = (Utc::now() - due).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            if let Ok(mut v) = late.lock() {
                v.push(l.max(0.0));
            }
        });
    }
    let peer_rss = rss_mib() - rss0;
    while timers.join_next().await.is_some() {}
    let mut peer: Vec<f64> = late.lock().map(|v| v.clone()).unwrap_or_default();
    peer.sort_by(f64::total_cmp);

    // Ours: the same deadlines as rows, fired by the scheduler loop.
    let cases = inputs(gw, whistles, 12);
    let t = Instant::now();
    let mut case_ids = Vec::with_capacity(whistles);
    for chunk in cases.chunks(2000) {
        case_ids.extend(gw.file_reports(chunk).await?.into_iter().map(|f| f.case_id));
    }
    let start = Utc::now() + lead + Duration::seconds(2);
    let policy_json = serde_json::to_value(&policy)?;
    let history = History {
        policy: policy_json,
        whistles: case_ids
            .iter()
            .enumerate()
            .map(|(i, id)| PastWhistle {
                case_id: *id,
                department: "urban_management".into(),
                role: "lead",
                whistled_at: start - Duration::hours(1),
                acknowledged_at: None,
                card: None,
                supervised: false,
                steps: (0..steps)
                    .map(|k| (k as i32, start + offsets[i * steps + k], None, None))
                    .collect(),
            })
            .collect(),
        ..History::default()
    };
    gw.db.write_history(&history).await?;
    let (open, _) = gw.db.pending_steps().await?;
    println!();
    println!(
        "scheduler: {open} open deadlines in PostgreSQL (set up in {:.1} s), due over {} s",
        t.elapsed().as_secs_f64(),
        sizes.window_s
    );
    let rss1 = rss_mib();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(crate::workflow::scheduler::run(gw.clone(), stop_rx));
    let mut peak = rss1;
    let deadline = Instant::now() + std::time::Duration::from_secs(sizes.window_s + 60);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        peak = peak.max(rss_mib());
        let (left, _) = gw.db.pending_steps().await?;
        if left == 0 || Instant::now() > deadline {
            break;
        }
    }
    let _ = stop_tx.send(true);
    task.await?;
    let rows: Vec<(f64,)> = sqlx::query_as(
        "select (extract(epoch from d.fired_at - d.due_at) * 1000)::float8
           from escalation_deadline d where d.fired_at is not null",
    )
    .fetch_all(gw.db.pool())
    .await?;
    let mut ours: Vec<f64> = rows.into_iter().map(|(l,)| l.max(0.0)).collect();
    ours.sort_by(f64::total_cmp);
    let events: i64 =
        sqlx::query_scalar("select count(*) from case_event where action = 'escalate'")
            .fetch_one(gw.db.pool())
            .await?;
    let (left, _) = gw.db.pending_steps().await?;
    println!(
        "  fired {} of {total}; escalation events {events} (each step once: {}); left {left}",
        ours.len(),
        if events as usize == ours.len() && ours.len() == total {
            "yes"
        } else {
            "NO"
        }
    );
    println!(
        "                                        p50 late    p99 late    max late    memory held"
    );
    println!(
        "  PostgreSQL rows + scheduler loop   {:>8.0} ms {:>8.0} ms {:>8.0} ms   {:>8.1} MiB",
        percentile(&ours, 0.5),
        percentile(&ours, 0.99),
        ours.last().copied().unwrap_or(f64::NAN),
        peak - rss1
    );
    println!(
        "  peer: a timer task per deadline    {:>8.0} ms {:>8.0} ms {:>8.0} ms   {:>8.1} MiB",
        percentile(&peer, 0.5),
        percentile(&peer, 0.99),
        peer.last().copied().unwrap_or(f64::NAN),
        peer_rss
    );
    println!(
        "  (the rows survive a restart and are shared by every scheduler; the timers do neither)"
    );
    Ok(())
}
