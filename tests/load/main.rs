#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report
//! Under load and through faults (their own test binary, so that cargo runs them after the
//! integration tests, with the machine to itself; one at a time), against a real
//! `gridwatch serve`:
//! - 200 concurrent clients file reports for 60 s, each with an Idempotency-Key and retrying
//!   until answered; half-way the server is killed with SIGKILL and started again on the same
//!   database and port. Afterwards every acknowledged report is in the database exactly once,
//!   with its case, and nothing else is.
//! - PostgreSQL is stopped for 10 s under load: the service answers 503 with Retry-After at
//!   once (no 500, no hang), `/readyz` says so, and it heals by itself when the database is back.
//! - 10,000 escalation deadlines fall due across a SIGKILL and a restart: each fires once.
//!
//! The figures (throughput, latency, the outage) are printed, never asserted.

#[allow(dead_code)] // the integration tests' helpers; this binary uses a few
#[path = "../integration/support.rs"]
mod support;

use gridwatch::storage::cluster::ManagedCluster;
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{fresh_db, repo_dir, url_of, Child};

/// One fault test at a time: each wants the machine to itself.
static MACHINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLIENTS: usize = 200;
const RUN: Duration = Duration::from_secs(60);
const CRASH_AFTER: Duration = Duration::from_secs(30);

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Idempotency-Key → the report id the server acknowledged
    acknowledged: HashMap<String, i64>,
    /// latencies of requests answered at the first attempt, in ms
    latencies: Vec<f64>,
    /// from the first attempt to the acknowledgement, retries included, in ms
    end_to_end: Vec<f64>,
    /// attempts answered with a 5xx (retried)
    server_errors: usize,
    /// attempts that failed (connection refused or reset, 5xx) and were retried
    retries: usize,
    /// answers that were replays of an earlier attempt (the first answer was lost)
    replays: usize,
}

use gridwatch::bench_dispatch::percentile;

/// The demo city's regions imported into the database at `url`, as an operator does, and a
/// hotline client's key (issued keys are not rate-limited like anonymous callers): the key.
fn regions_and_key(url: &str) -> String {
    let cli = |args: &[&str]| {
        let out = support::gridwatch_cli_blocking(args, url);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let regions = repo_dir().join("geodata/wuhai-regions.geojson");
    cli(&["regions", "import", regions.to_str().unwrap()]);
    cli(&["apikey", "create", "load test"])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn every_acknowledged_report_survives_load_and_a_crash_exactly_once() {
    let _machine = MACHINE.lock().await;
    let (db, options) = fresh_db().await;
    let url = url_of(&options);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let key = regions_and_key(&url);
    let serve = || {
        Child::serve(
            &["--listen", &listen],
            &[("DATABASE_URL", &url), ("RUST_LOG", "warn")],
        )
    };
    let mut server = serve();
    let base = server.base.clone();
    let before: i64 = sqlx::query_scalar("select count(*) from report")
        .fetch_one(db.pool())
        .await
        .unwrap();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (http, base, key, seen) = (http.clone(), base.clone(), key.clone(), seen.clone());
        clients.spawn(async move {
            let mut n = 0usize;
            while started.elapsed() < RUN {
                n += 1;
                let idem = format!("load-{c}-{n}");
                let (dx, dy) = {
                    let mut rng = rand::rng();
                    (rng.random_range(-6e-4..6e-4), rng.random_range(-6e-4..6e-4))
                };
                let body = serde_json::json!({
                    "category": "fire_lane_blocked", "lon": 106.8405 + dx, "lat": 39.672 + dy,
                    "source": "hotline", "description": format!("load {idem}"),
                });
                let mut attempt = 0;
                let first = Instant::now();
                // Retry with the same key until the server answers: a report is never dropped.
                loop {
                    attempt += 1;
                    let t = Instant::now();
                    let answer = http
                        .post(format!("{base}/api/v1/reports"))
                        .bearer_auth(&key)
                        .header("idempotency-key", &idem)
                        .json(&body)
                        .send()
                        .await;
                    let ok = match answer {
                        Ok(r) if r.status().as_u16() == 201 || r.status().as_u16() == 200 => {
                            let replay = r.status().as_u16() == 200;
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            let id = v["id"].as_i64().expect("an acknowledged report has an id");
                            let ms = t.elapsed().as_secs_f64() * 1e3;
                            let mut s = seen.lock().unwrap();
                            assert!(s.acknowledged.insert(idem.clone(), id).is_none());
                            if attempt == 1 {
                                s.latencies.push(ms);
                            }
                            s.end_to_end.push(first.elapsed().as_secs_f64() * 1e3);
                            if replay {
                                s.replays += 1;
                            }
                            true
                        }
                        Ok(r) if r.status().is_server_error() => {
                            seen.lock().unwrap().server_errors += 1;
                            false
                        }
                        Ok(r) => panic!("{idem}: answered {}", r.status()),
                        Err(_) => false, // refused or reset: the server is down
                    };
                    if ok {
                        break;
                    }
                    seen.lock().unwrap().retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }

    tokio::time::sleep(CRASH_AFTER).await;
    let acknowledged_before_crash = seen.lock().unwrap().acknowledged.len();
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no drain
    server.child.wait().unwrap();
    let down = Instant::now();
    drop(server);
    server = serve();
    let outage = down.elapsed();
    while let Some(client) = clients.join_next().await {
        client.expect("a client failed");
    }
    let elapsed = started.elapsed();
    assert!(server.terminate().success());

    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    let ids: Vec<i64> = seen.acknowledged.values().copied().collect();
    let keys: Vec<String> = seen.acknowledged.keys().cloned().collect();
    let mut latencies = seen.latencies.clone();
    latencies.sort_by(f64::total_cmp);
    let mut end_to_end = seen.end_to_end.clone();
    end_to_end.sort_by(f64::total_cmp);
    println!(
        "load: {CLIENTS} clients for {:.1} s, {} reports acknowledged ({:.0}/s), first-attempt latency p50 {:.1} ms, p99 {:.1} ms; \
         until acknowledged p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms; SIGKILL after {} acknowledged, back in {:.1} s; \
         {} retried attempts ({} answered 5xx), {} answers replayed",
        elapsed.as_secs_f64(),
        ids.len(),
        ids.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&end_to_end, 0.5),
        percentile(&end_to_end, 0.99),
        percentile(&end_to_end, 1.0),
        acknowledged_before_crash,
        outage.as_secs_f64(),
        seen.retries,
        seen.server_errors,
        seen.replays,
    );
    assert!(
        ids.len() > CLIENTS,
        "too little got through to test anything"
    );
    assert!(seen.retries > 0, "the crash was not seen by any client");

    // Every acknowledged report is there once, under its key, and no report is there unasked.
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "two keys were answered with one report"
    );
    let stored: i64 = sqlx::query_scalar("select count(*) from report")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(
        stored - before,
        ids.len() as i64,
        "reports stored vs acknowledged"
    );
    let (by_key, matching): (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where i.report_id = a.id)
           from unnest($1::text[], $2::bigint[]) a(key, id)
           join report_idempotency i on i.key = a.key",
    )
    .bind(&keys)
    .bind(&ids)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!((by_key, matching), (ids.len() as i64, ids.len() as i64));
    // No half-made case: each report has its case (one at most: report_id is unique) with its
    // opening event.
    let (without_case, without_event): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where c.id is null),
                count(*) filter (where c.id is not null and not exists
                    (select 1 from case_event e where e.case_id = c.id))
           from report r left join dispatch_case c on c.report_id = r.id
          where r.id = any($1)",
    )
    .bind(&ids)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!((without_case, without_event), (0, 0));
}

/// A cluster of the test's own, stopped when the test ends however it ends.
struct OwnCluster {
    dir: std::path::PathBuf,
    running: Option<ManagedCluster>,
}

impl OwnCluster {
    async fn start(dir: std::path::PathBuf) -> OwnCluster {
        let mut c = OwnCluster { dir, running: None };
        c.restart().await;
        c
    }

    async fn restart(&mut self) {
        let dir = self.dir.clone();
        let cluster = tokio::task::spawn_blocking(move || ManagedCluster::start(&dir))
            .await
            .unwrap()
            .expect("start the test's own PostgreSQL cluster");
        self.running = Some(cluster);
    }

    async fn stop(&mut self) {
        if let Some(c) = self.running.take() {
            tokio::task::spawn_blocking(move || c.stop())
                .await
                .unwrap()
                .expect("stop PostgreSQL");
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if let Some(c) = self.running.take() {
            let _ = c.stop();
        }
    }
}

/// A fresh database `name` on the test's own cluster with the demo regions and a hotline key,
/// and `gridwatch serve` on it: (its URL, the key, the server).
async fn serve_on(pg: &OwnCluster, name: &str) -> (String, String, Child) {
    let cluster = pg.running.as_ref().unwrap();
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = cluster.connect_options("postgres").connect().await.unwrap();
        sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    }
    let url = cluster.url(name);
    let key = regions_and_key(&url);
    let server = Child::serve(
        &["--listen", "127.0.0.1:0"],
        &[("DATABASE_URL", &url), ("RUST_LOG", "warn")],
    );
    (url, key, server)
}

/// PostgreSQL's disk fills up under a client filing reports: no report is acknowledged that
/// was not saved, the refusals are 503s that say why, and filing works again once there is
/// room.
#[tokio::test]
async fn a_full_database_disk_acknowledges_nothing_it_did_not_save() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting a small file system needs root");
        return;
    }
    let _machine = MACHINE.lock().await;
    // Declared before the cluster, so dropped after it: the cluster stops, then the unmount.
    let disk = support::SmallDisk::mount(support::tmp_dir().join("pg-disk-full"), "192m");
    let mut pg = OwnCluster::start(disk.0.join("pg")).await;
    let (url, key, server) = serve_on(&pg, "gw_disk_full").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let file = |n: usize| {
        let (http, base, key) = (http.clone(), server.base.clone(), key.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/reports"))
                .bearer_auth(&key)
                .header("idempotency-key", format!("disk-{n}"))
                .json(&serde_json::json!({
                    "category": "fire_lane_blocked", "lon": 106.8405, "lat": 39.672,
                    "source": "hotline", "description": format!("磁盘写满测试 {n} {}", "消防通道".repeat(40)),
                }))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().contains_key("retry-after");
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            (status, retry_after, v)
        }
    };
    let (status, _, v) = file(0).await;
    assert_eq!(status, 201, "{v}");
    let mut acknowledged: HashMap<String, i64> = HashMap::new();
    acknowledged.insert("disk-0".into(), v["id"].as_i64().unwrap());

    let filler = disk.fill();
    // File until the database refuses 20 in a row (the pages it has may take a few first).
    let started = Instant::now();
    let (mut refused, mut in_a_row, mut n) = (Vec::new(), 0, 0);
    while in_a_row < 20 && started.elapsed() < Duration::from_secs(60) {
        n += 1;
        let (status, retry_after, v) = file(n).await;
        match status {
            201 => {
                in_a_row = 0;
                acknowledged.insert(format!("disk-{n}"), v["id"].as_i64().unwrap());
            }
            503 => {
                assert!(retry_after, "a 503 without Retry-After: {v}");
                in_a_row += 1;
                refused.push((
                    n,
                    v["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
            other => panic!("report {n}: answered {other} {v}"),
        }
    }
    assert!(
        in_a_row >= 20,
        "the database kept taking reports on a full disk"
    );
    let disk_full = refused
        .iter()
        .filter(|(_, m)| m.contains("disk is full"))
        .count();
    println!(
        "disk full: {} reports acknowledged before the database refused, {} refused ({} saying the disk is full: {:?})",
        acknowledged.len(),
        refused.len(),
        disk_full,
        refused.first().map(|r| &r.1)
    );
    assert!(disk_full > 0, "no refusal named the full disk: {refused:?}");

    // Room again: the refused reports go through when their clients retry.
    std::fs::remove_file(&filler).unwrap();
    let healed = Instant::now();
    for (n, _) in &refused {
        loop {
            let (status, _, v) = file(*n).await;
            if status == 201 {
                acknowledged.insert(format!("disk-{n}"), v["id"].as_i64().unwrap());
                break;
            }
            assert_eq!(status, 503, "{v}");
            assert!(
                healed.elapsed() < Duration::from_secs(60),
                "filing did not recover"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // Exactly what was acknowledged is stored, each with its case.
    let db = gridwatch::storage::Db::connect(url.parse().unwrap())
        .await
        .unwrap();
    let keys: Vec<String> = acknowledged.keys().cloned().collect();
    let ids: Vec<i64> = acknowledged.values().copied().collect();
    let (stored, matching, cases): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from report),
                (select count(*) from unnest($1::text[], $2::bigint[]) a(key, id)
                   join report_idempotency i on i.key = a.key and i.report_id = a.id),
                (select count(*) from dispatch_case)",
    )
    .bind(&keys)
    .bind(&ids)
    .fetch_one(db.pool())
    .await
    .unwrap();
    db.pool().close().await;
    let n = ids.len() as i64;
    assert_eq!((stored, matching, cases), (n, n, n));
    assert!(server.terminate().success());
    pg.stop().await;
    drop(disk);
}

/// What the outage test's clients saw, each answer with when it came (s since the start).
#[derive(Default)]
struct Answers {
    acknowledged: HashMap<String, i64>,
    /// (at, status, latency in ms, Retry-After present)
    answers: Vec<(f64, u16, f64, bool)>,
    /// requests that got no HTTP answer at all (refused, reset, timed out)
    unanswered: Vec<String>,
}

#[tokio::test]
async fn a_database_outage_is_answered_503_at_once_and_heals_by_itself() {
    const OUTAGE_CLIENTS: usize = 50;
    const STOP_AT: Duration = Duration::from_secs(5);
    const OUTAGE: Duration = Duration::from_secs(10);
    const AFTER: Duration = Duration::from_secs(10);
    let _machine = MACHINE.lock().await;
    let mut pg = OwnCluster::start(support::tmp_dir().join("pg-outage")).await;
    let (url, key, mut server) = serve_on(&pg, "gw_outage").await;
    let base = server.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let started = Instant::now();
    let end = STOP_AT + OUTAGE + AFTER;
    let seen: Arc<Mutex<Answers>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..OUTAGE_CLIENTS {
        let (http, base, key, seen) = (http.clone(), base.clone(), key.clone(), seen.clone());
        clients.spawn(async move {
            let mut n = 0usize;
            while started.elapsed() < end {
                n += 1;
                let idem = format!("outage-{c}-{n}");
                let body = serde_json::json!({
                    "category": "flying_lead_charging", "lon": 106.8405, "lat": 39.672,
                    "source": "hotline", "description": format!("outage {idem}"),
                });
                // Retried with the same key until acknowledged, or until the run ends.
                while started.elapsed() < end + Duration::from_secs(5) {
                    let t = Instant::now();
                    let answer = http
                        .post(format!("{base}/api/v1/reports"))
                        .bearer_auth(&key)
                        .header("idempotency-key", &idem)
                        .json(&body)
                        .send()
                        .await;
                    let at = started.elapsed().as_secs_f64();
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let r = match answer {
                        Ok(r) => r,
                        Err(e) => {
                            seen.lock().unwrap().unanswered.push(format!("{idem}: {e}"));
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let status = r.status().as_u16();
                    let retry_after = r.headers().contains_key("retry-after");
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    let acknowledged = {
                        let mut s = seen.lock().unwrap();
                        s.answers.push((at, status, ms, retry_after));
                        match status {
                            200 | 201 => {
                                let id =
                                    v["id"].as_i64().expect("an acknowledged report has an id");
                                assert!(s.acknowledged.insert(idem.clone(), id).is_none());
                                true
                            }
                            503 => false,
                            other => panic!("{idem}: answered {other} {v}"),
                        }
                    };
                    if acknowledged {
                        break;
                    }
                    // Retry-After is honoured by real clients; these come back sooner to see
                    // the recovery closely.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
    // Readiness and liveness, watched throughout: (at, /readyz status, /healthz status).
    let probes: Arc<Mutex<Vec<(f64, u16, u16)>>> = Arc::default();
    let prober = {
        let (http, base, probes) = (http.clone(), base.clone(), probes.clone());
        tokio::spawn(async move {
            while started.elapsed() < end {
                let status =
                    |r: reqwest::Result<reqwest::Response>| r.map_or(0, |r| r.status().as_u16());
                let ready = status(http.get(format!("{base}/readyz")).send().await);
                let live = status(http.get(format!("{base}/healthz")).send().await);
                probes
                    .lock()
                    .unwrap()
                    .push((started.elapsed().as_secs_f64(), ready, live));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    tokio::time::sleep(STOP_AT).await;
    pg.stop().await;
    let stopped_at = started.elapsed().as_secs_f64();
    tokio::time::sleep(OUTAGE / 2).await;
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    tokio::time::sleep(OUTAGE - OUTAGE / 2).await;
    pg.restart().await;
    let back_at = started.elapsed().as_secs_f64();
    while let Some(client) = clients.join_next().await {
        client.expect("a client failed");
    }
    prober.await.unwrap();
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died in the outage"
    );

    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    let probes = Arc::try_unwrap(probes).ok().unwrap().into_inner().unwrap();
    let during: Vec<&(f64, u16, f64, bool)> = seen
        .answers
        .iter()
        // sent after the database had stopped, answered before it was back
        .filter(|a| a.0 - a.2 / 1e3 > stopped_at && a.0 < back_at)
        .collect();
    let mut refused_ms: Vec<f64> = seen
        .answers
        .iter()
        .filter(|a| a.1 == 503)
        .map(|a| a.2)
        .collect();
    refused_ms.sort_by(f64::total_cmp);
    let first_ack_after = seen
        .answers
        .iter()
        .filter(|a| a.0 > back_at && a.1 == 201)
        .map(|a| a.0 - back_at)
        .fold(f64::INFINITY, f64::min);
    let ready_again = probes
        .iter()
        .filter(|p| p.0 > back_at && p.1 == 200)
        .map(|p| p.0 - back_at)
        .fold(f64::INFINITY, f64::min);
    println!(
        "outage: PostgreSQL stopped at {stopped_at:.1} s for {:.1} s under {OUTAGE_CLIENTS} clients; {} answers, {} of them 503 \
         (latency p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms); {} answers during the outage; \
         /readyz 200 again {ready_again:.2} s and the first report acknowledged {first_ack_after:.2} s after PostgreSQL was back; \
         {} reports acknowledged",
        back_at - stopped_at,
        seen.answers.len(),
        refused_ms.len(),
        percentile(&refused_ms, 0.5),
        percentile(&refused_ms, 0.99),
        percentile(&refused_ms, 1.0),
        during.len(),
        seen.acknowledged.len(),
    );

    // The server answered every request, 503 with Retry-After while the database was away,
    // and none of them hung: the slowest refusal is within the pool's acquire timeout.
    assert!(
        seen.unanswered.is_empty(),
        "requests without an answer: {:?}",
        &seen.unanswered[..seen.unanswered.len().min(5)]
    );
    assert!(
        !during.is_empty(),
        "no request was answered during the outage"
    );
    assert!(
        during.iter().all(|a| a.1 == 503),
        "only 503 while the database is down"
    );
    assert!(
        seen.answers.iter().filter(|a| a.1 == 503).all(|a| a.3),
        "every 503 says when to retry"
    );
    let bound = gridwatch::storage::ACQUIRE_TIMEOUT.as_secs_f64() * 1e3 + 2000.0;
    assert!(
        percentile(&refused_ms, 1.0) < bound,
        "a refusal took {:.0} ms",
        percentile(&refused_ms, 1.0)
    );
    // Health tells the truth: live throughout, not ready while the database is away, ready
    // again once it is back; /metrics still answers, with the database down.
    assert!(probes.iter().all(|p| p.2 == 200), "/healthz failed");
    assert!(
        probes
            .iter()
            .any(|p| p.0 > stopped_at + 1.0 && p.0 < back_at && p.1 == 503),
        "/readyz never said the database was down"
    );
    assert!(ready_again.is_finite(), "/readyz never said ready again");
    assert_eq!(probes.last().unwrap().1, 200);
    assert!(
        metrics.contains("gridwatch_database_up 0"),
        "/metrics during the outage:\n{metrics}"
    );
    // Healed without help: reports are acknowledged again, and each acknowledged one is
    // stored once.
    assert!(
        first_ack_after.is_finite(),
        "no report acknowledged after the outage"
    );
    let ids: Vec<i64> = seen.acknowledged.values().copied().collect();
    let keys: Vec<String> = seen.acknowledged.keys().cloned().collect();
    let db = gridwatch::storage::Db::connect(url.parse().unwrap())
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar("select count(*) from report")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let matching: i64 = sqlx::query_scalar(
        "select count(*) from unnest($1::text[], $2::bigint[]) a(key, id)
           join report_idempotency i on i.key = a.key and i.report_id = a.id",
    )
    .bind(&keys)
    .bind(&ids)
    .fetch_one(db.pool())
    .await
    .unwrap();
    db.pool().close().await;
    assert_eq!(
        (stored, matching),
        (ids.len() as i64, ids.len() as i64),
        "reports stored and matching their keys vs acknowledged"
    );
    assert!(server.terminate().success());
    pg.stop().await;
}

/// Fired deadlines, escalation events, and events that repeat a (case, step).
async fn escalation_counts(db: &gridwatch::storage::Db) -> (i64, i64, i64) {
    sqlx::query_as(
        "select (select count(*) from escalation_deadline where fired_at is not null),
                (select count(*) from case_event where action = 'escalate'),
                (select count(*) from (select 1 from case_event where action = 'escalate'
                   group by case_id, data->>'step' having count(*) > 1) d)",
    )
    .fetch_one(db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn ten_thousand_escalation_deadlines_fire_once_each_across_a_crash() {
    const WHISTLES: usize = 2_500; // four steps each: 10,000 deadlines
    let _machine = MACHINE.lock().await;
    let app = Arc::new(support::demo_app().await);
    let db = app.gw.db.clone();
    let url = url_of(&db.options());
    let token = app.token.clone().unwrap();

    // 2,500 cases, accepted and whistled through the API, as dispatchers do.
    let setup = Instant::now();
    let categories: Vec<String> = app.gw.categories().keys().cloned().collect();
    let inputs: Vec<gridwatch::workflow::intake::ReportInput> =
        gridwatch::bench::random_points(&app.gw, WHISTLES, 7)
            .into_iter()
            .enumerate()
            .map(|(i, (lon, lat))| gridwatch::workflow::intake::ReportInput {
                category: categories[i % categories.len()].clone(),
                lon,
                lat,
                source: "grid_worker".into(),
                ..Default::default()
            })
            .collect();
    let mut cases = Vec::with_capacity(WHISTLES);
    for chunk in inputs.chunks(500) {
        let filed = app.gw.file_reports(chunk).await.unwrap();
        cases.extend(filed.into_iter().map(|f| f.case_id));
    }
    let queue = Arc::new(Mutex::new(cases));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (app, queue) = (app.clone(), queue.clone());
        workers.spawn(async move {
            loop {
                let Some(id) = queue.lock().unwrap().pop() else {
                    return;
                };
                for action in [
                    serde_json::json!({"action": "accept", "difficulty": "complex",
                                       "lead_department": "urban_management"}),
                    serde_json::json!({"action": "whistle"}),
                ] {
                    let (status, v) = app
                        .post(&format!("/api/v1/cases/{id}/actions"), &action)
                        .await;
                    assert_eq!(status, 200, "case {id}: {action} → {v}");
                }
            }
        });
    }
    while let Some(w) = workers.join_next().await {
        w.unwrap();
    }
    let deadlines: i64 = sqlx::query_scalar("select count(*) from escalation_deadline")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(deadlines, 4 * WHISTLES as i64);
    let setup = setup.elapsed();

    let args = ["--listen", "127.0.0.1:0", "--controllable-clock"];
    let envs = [("DATABASE_URL", url.as_str()), ("RUST_LOG", "warn")];
    let http = reqwest::Client::new();
    let advance = |base: String, minutes: u32| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/clock/advance"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "minutes": minutes }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };

    // Five hours on, the first three steps of every whistle are due; the service is killed
    // while it fires them.
    let mut first = Child::serve(&args, &envs);
    advance(first.base.clone(), 300).await;
    let mut at_kill = (0, 0, 0);
    for _ in 0..3000 {
        at_kill = escalation_counts(&db).await;
        if at_kill.0 >= (WHISTLES + WHISTLES / 2) as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    let after_kill = escalation_counts(&db).await;

    // Restarted (its clock back at the system time), then moved a day on: everything is due.
    let second = Child::serve(&args, &envs);
    let restarted = Instant::now();
    advance(second.base.clone(), 24 * 60).await;
    let mut counts = (0, 0, 0);
    for _ in 0..1200 {
        counts = escalation_counts(&db).await;
        if counts.0 >= deadlines {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caught_up = restarted.elapsed();
    assert!(second.terminate().success());
    // Once more, two days on: nothing fires again.
    let third = Child::serve(&args, &envs);
    advance(third.base.clone(), 2 * 24 * 60).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(third.terminate().success());
    let end = escalation_counts(&db).await;

    println!(
        "timers: {deadlines} deadlines of {WHISTLES} whistles set up in {:.1} s; SIGKILL with {} fired ({} events), \
         {} fired after the kill; all {} fired {:.1} s after the restart; at the end {} fired, {} escalation events, {} doubled",
        setup.as_secs_f64(),
        at_kill.0,
        at_kill.1,
        after_kill.0,
        counts.0,
        caught_up.as_secs_f64(),
        end.0,
        end.1,
        end.2,
    );
    assert!(
        after_kill.0 < deadlines,
        "everything had fired before the kill: nothing crossed the restart"
    );
    // None missed, none doubled, none early; every whistle ended on its red card.
    assert_eq!(end, (deadlines, deadlines, 0));
    let (early, cancelled, not_red): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from escalation_deadline where fired_at < due_at),
                (select count(*) from escalation_deadline where cancelled_at is not null),
                (select count(*) from case_whistle where card is distinct from 'red')",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!((early, cancelled, not_red), (0, 0, 0));
}
