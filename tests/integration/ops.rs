//! Operations endpoints: `/readyz` tells whether the database answers, and `/metrics` is valid
//! Prometheus text (read by the Prometheus client's own parser) whose figures follow what the
//! service did: requests by route and status, reports filed, cases by state.

use crate::support::{demo_app, repo_dir, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// The samples of a metrics page as the Prometheus client parses them:
/// `[{name, labels, value}]`.
fn parse(text: &str) -> Vec<Value> {
    let python = repo_dir().join("tests/.venv/bin/python");
    assert!(
        python.exists(),
        "tests/.venv is missing: run scripts/setup --with-browser"
    );
    let script = "import json, sys\n\
from prometheus_client.parser import text_string_to_metric_families\n\
out = [{'name': s.name, 'labels': s.labels, 'value': s.value}\n\
       for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
json.dump(out, sys.stdout)\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn value(samples: &[Value], name: &str, labels: Value) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s["name"] == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &s["labels"][k] == v)
        })
        .map(|s| s["value"].as_f64().unwrap())
}

async fn scrape(app: &TestApp) -> Vec<Value> {
    let (status, content_type, body) = app.raw("GET", "/metrics", "text/plain", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse(&String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn readiness_and_metrics_follow_what_the_service_did() {
    let app = demo_app().await;
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["regions"], 765);

    let before = scrape(&app).await;
    assert_eq!(
        value(&before, "gridwatch_database_up", json!({})),
        Some(1.0)
    );
    assert_eq!(value(&before, "gridwatch_regions", json!({})), Some(765.0));
    assert_eq!(
        value(
            &before,
            "gridwatch_reports_ingested_total",
            json!({"way": "filed"})
        ),
        Some(0.0)
    );

    for _ in 0..3 {
        let (status, filed) = app
            .post(
                "/api/v1/reports",
                &json!({"category": "fire_lane_blocked", "lon": 106.8415, "lat": 39.664, "source": "resident"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{filed}");
    }
    let (status, _) = app.get("/api/v1/cases/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let after = scrape(&app).await;
    assert_eq!(
        value(
            &after,
            "gridwatch_reports_ingested_total",
            json!({"way": "filed"})
        ),
        Some(3.0)
    );
    let post = json!({"method": "POST", "route": "/api/v1/reports", "status": "201"});
    assert_eq!(
        value(&after, "gridwatch_http_requests_total", post),
        Some(3.0)
    );
    let missing = json!({"method": "GET", "route": "/api/v1/cases/{id}", "status": "404"});
    assert_eq!(
        value(&after, "gridwatch_http_requests_total", missing),
        Some(1.0)
    );
    let route = json!({"method": "POST", "route": "/api/v1/reports"});
    assert_eq!(
        value(
            &after,
            "gridwatch_http_request_duration_seconds_count",
            route.clone()
        ),
        Some(3.0)
    );
    let mut inf = route.clone();
    inf["le"] = json!("+Inf");
    assert_eq!(
        value(
            &after,
            "gridwatch_http_request_duration_seconds_bucket",
            inf
        ),
        Some(3.0)
    );
    // The cases the reports opened, by state, as the database has them.
    let cases: i64 = app.scalar_i64("select count(*) from dispatch_case").await;
    let by_state: f64 = after
        .iter()
        .filter(|s| s["name"] == "gridwatch_cases")
        .map(|s| s["value"].as_f64().unwrap())
        .sum();
    assert_eq!(by_state, cases as f64);
    assert!(cases >= 3);
    assert!(value(&after, "gridwatch_cases_overdue", json!({})).is_some());
    assert!(value(
        &after,
        "gridwatch_notices_undelivered",
        json!({"failing": "true"})
    )
    .is_some());
}

#[tokio::test]
async fn readiness_tells_the_truth_when_the_database_is_gone() {
    let app = demo_app().await;
    app.gw.db.pool().close().await;
    let (status, content_type, body) = app.raw("GET", "/readyz", "text/plain", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(content_type.starts_with("application/json"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["database"].as_str().unwrap().contains("database"),
        "{body}"
    );
    let request = axum::http::Request::get("/readyz")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "5");
    // Liveness is not readiness: the process still answers.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    // Metrics still come, saying the database is down.
    let samples = scrape(&app).await;
    assert_eq!(
        value(&samples, "gridwatch_database_up", json!({})),
        Some(0.0)
    );
}

/// `--log-format json`: every line the service logs is one JSON object with its time, level and
/// target, and shutdown reports that the requests were drained, then the outbox.
#[tokio::test]
async fn json_logs_are_one_object_per_line_through_to_the_drained_shutdown() {
    use std::io::{BufRead, BufReader, Read};
    let (_db, options) = crate::support::fresh_db().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("DATABASE_URL", crate::support::url_of(&options))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut all = String::new();
        stderr.read_to_string(&mut all).unwrap();
        all
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = stdout
            .next()
            .expect("gridwatch exited before serving")
            .unwrap();
        if let Some(rest) = line.strip_prefix("gridwatch is serving ") {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    let answer = reqwest::get(format!("{base}/api/v1/categories"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let logs = logs.join().unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{logs}");
    for l in &lines {
        assert!(
            l["timestamp"].is_string() && l["level"].is_string() && l["target"].is_string(),
            "{l}"
        );
    }
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    let drained = messages
        .iter()
        .position(|m| *m == "requests drained, shutting down")
        .unwrap_or_else(|| panic!("{messages:?}"));
    let outbox = lines
        .iter()
        .position(|l| l["message"] == "outbox drained")
        .unwrap_or_else(|| panic!("{messages:?}"));
    assert!(drained < outbox, "the outbox is drained after the requests");
    assert!(lines[outbox]["sent"].is_number(), "{}", lines[outbox]);
}
