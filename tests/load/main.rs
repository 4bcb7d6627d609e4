#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report
//! Under load and through a crash (its own test binary, so that cargo runs it after the
//! integration tests, with the machine to itself): 200 concurrent clients file reports for 60 s against a real
//! `gridwatch serve`, each with an Idempotency-Key and retrying until answered; half-way the
//! server is killed with SIGKILL and started again on the same database and port. Afterwards
//! every acknowledged report is in the database exactly once, with its case, and nothing else
//! is. The figures (throughput, latency, the outage) are printed, never asserted.

#[allow(dead_code)] // the integration tests' helpers; this binary uses a few
#[path = "../integration/support.rs"]
mod support;

use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{fresh_db, repo_dir, url_of, Child};

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
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
    let (db, options) = fresh_db().await;
    let url = url_of(&options);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cli = |args: &[&str]| {
        let out = support::gridwatch_cli_blocking(args, &url);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // The demo city's regions, as an operator imports them; and a hotline client's key
    // (issued keys are not rate-limited like anonymous callers).
    let regions = repo_dir().join("geodata/wuhai-regions.geojson");
    cli(&["regions", "import", regions.to_str().unwrap()]);
    let key = cli(&["apikey", "create", "load test"]);
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
