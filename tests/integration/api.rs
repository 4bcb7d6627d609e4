//! The HTTP API against a real database: reports, filters, pagination, bad input, versions.

use crate::support::{demo_app, spawn_app, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// A point inside 盛世社区第15网格 of the demo (WGS-84).
const IN_GRID: (f64, f64) = (106.84, 39.672);

async fn file(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post("/api/v1/reports", &body).await
}

#[tokio::test]
async fn health_and_categories() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, cats) = app.get("/api/v1/categories").await;
    assert_eq!(status, StatusCode::OK);
    let cats = cats.as_array().unwrap();
    assert_eq!(cats.len(), 12);
    let fire = cats
        .iter()
        .find(|c| c["code"] == "fire_lane_blocked")
        .unwrap();
    assert_eq!(fire["name_zh"], "消防通道堵塞");
    assert_eq!(fire["event_class"]["name_zh"], "街面秩序");
    for code in [
        "flying_lead_charging",
        "oil_smoke",
        "sewer_blockage",
        "neighbour_dispute",
    ] {
        assert!(cats.iter().any(|c| c["code"] == code), "{code}");
    }
}

#[tokio::test]
async fn a_report_is_assigned_stored_and_listed() {
    let app = demo_app().await;
    let (status, filed) = file(
        &app,
        json!({"category": "flying_lead_charging", "lon": IN_GRID.0, "lat": IN_GRID.1,
               "source": "grid_worker", "description": "3号楼飞线充电", "reported_at": "2026-05-01T10:00:00+08:00"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    let a = &filed["assignment"];
    assert_eq!(a["status"], "inside");
    assert_eq!(a["district"]["code"], "150302");
    let grid = a["grid"]["code"].as_str().unwrap().to_owned();
    assert_eq!(grid.len(), 15);
    assert!(a["party_branch"]["name"]
        .as_str()
        .unwrap()
        .ends_with("党支部"));

    let id = filed["id"].as_i64().unwrap();
    let (status, stored) = app.get(&format!("/api/v1/reports/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["grid_code"], grid.as_str());
    assert_eq!(stored["region_version"], 1);
    assert_eq!(stored["description"], "3号楼飞线充电");
    assert_eq!(stored["reported_at"], "2026-05-01T02:00:00Z");

    // filters: each one that matches and one that does not
    for (query, expect) in [
        ("category=flying_lead_charging", 1),
        ("category=oil_smoke", 0),
        (&*format!("region={grid}"), 1),
        ("region=150304", 0),
        ("bbox=106.83,39.66,106.85,39.68", 1),
        ("bbox=106.60,39.40,106.61,39.41", 0),
        ("from=2026-05-01&to=2026-05-01", 1),
        ("from=2026-05-02", 0),
        ("to=2026-04-30", 0),
    ] {
        let (status, page) = app.get(&format!("/api/v1/reports?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(page["reports"].as_array().unwrap().len(), expect, "{query}");
    }
    let (_, heat) = app
        .get("/api/v1/reports/heat?category=flying_lead_charging")
        .await;
    assert_eq!(heat["count"], 1);
    assert_eq!(
        heat["features"][0]["properties"]["category"],
        "flying_lead_charging"
    );
}

#[tokio::test]
async fn gcj02_and_bd09_inputs_are_converted_and_kept() {
    let app = demo_app().await;
    let (gx, gy) = gridwatch::spatial::crs::wgs84_to_gcj02(IN_GRID.0, IN_GRID.1);
    let (_, from_gcj) = file(
        &app,
        json!({"category": "oil_smoke", "lon": gx, "lat": gy, "crs": "gcj02", "source": "rider"}),
    )
    .await;
    let (bx, by) = gridwatch::spatial::crs::wgs84_to_bd09(IN_GRID.0, IN_GRID.1);
    let (_, from_bd) = file(
        &app,
        json!({"category": "oil_smoke", "lon": bx, "lat": by, "crs": "bd09", "source": "resident"}),
    )
    .await;
    let (_, from_wgs) = file(
        &app,
        json!({"category": "oil_smoke", "lon": IN_GRID.0, "lat": IN_GRID.1, "source": "hotline"}),
    )
    .await;
    for r in [&from_gcj, &from_bd] {
        assert_eq!(r["assignment"]["grid"], from_wgs["assignment"]["grid"]);
        assert!((r["assignment"]["lon"].as_f64().unwrap() - IN_GRID.0).abs() < 1e-6);
    }
    let (_, stored) = app
        .get(&format!("/api/v1/reports/{}", from_gcj["id"]))
        .await;
    assert_eq!(stored["input_crs"], "gcj02");
    assert!((stored["input_lon"].as_f64().unwrap() - gx).abs() < 1e-12);
}

#[tokio::test]
async fn pagination_walks_every_report_once() {
    let app = demo_app().await;
    for i in 0..25 {
        let (s, _) = file(&app, json!({"category": "random_piling", "lon": IN_GRID.0 + i as f64 * 1e-4, "lat": IN_GRID.1, "source": "resident"})).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v1/reports?limit=10".to_owned();
    loop {
        let (status, page) = app.get(&uri).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(
            page["reports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_i64() {
            Some(c) => uri = format!("/api/v1/reports?limit=10&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seen.len(), 25);
    assert_eq!(sorted.len(), 25);
}

#[tokio::test]
async fn bad_reports_are_refused_by_field_and_nothing_is_written() {
    let app = demo_app().await;
    let ok =
        json!({"category": "oil_smoke", "lon": IN_GRID.0, "lat": IN_GRID.1, "source": "resident"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        serde_json::to_vec(&b).unwrap()
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        serde_json::to_vec(&b).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, StatusCode, Option<&str>)> = vec![
        (
            "malformed JSON",
            b"{\"category\": \"oil_smoke\",".to_vec(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "not an object",
            b"[1, 2]".to_vec(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "unknown category",
            with("category", json!("ufo")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("category"),
        ),
        (
            "bad category code",
            with("category", json!("Oil Smoke")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("category"),
        ),
        (
            "lat out of range",
            with("lat", json!(91.0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("lat"),
        ),
        (
            "lon out of range",
            with("lon", json!(-181)),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("lon"),
        ),
        (
            "lon is a string",
            with("lon", json!("106.8")),
            StatusCode::BAD_REQUEST,
            Some("lon"),
        ),
        (
            "lat is null",
            with("lat", Value::Null),
            StatusCode::BAD_REQUEST,
            Some("lat"),
        ),
        (
            "missing source",
            without("source"),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "unknown source",
            with("source", json!("pigeon")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("source"),
        ),
        (
            "unknown crs",
            with("crs", json!("utm50")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("crs"),
        ),
        (
            "unknown field",
            with("colour", json!("red")),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "future time",
            with("reported_at", json!("2099-01-01T00:00:00Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reported_at"),
        ),
        (
            "bad time",
            with("reported_at", json!("yesterday")),
            StatusCode::BAD_REQUEST,
            Some("reported_at"),
        ),
        (
            "description too long",
            with("description", json!("长".repeat(4001))),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("description"),
        ),
        (
            "oversized body",
            with("description", json!("x".repeat(2 * 1024 * 1024))),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
    ];
    for (what, body, status, field) in cases {
        let (got, err) = app.call("POST", "/api/v1/reports", Some(body)).await;
        assert_eq!(got, status, "{what}: {err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: no message in {err}");
        if let Some(field) = field {
            assert_eq!(err["error"]["field"], field, "{what}: {err}");
        }
    }
    // "missing source" names the field in the message
    let (_, err) = app
        .call("POST", "/api/v1/reports", Some(without("source")))
        .await;
    assert!(
        err["error"]["message"].as_str().unwrap().contains("source"),
        "{err}"
    );
    assert_eq!(app.scalar_i64("select count(*) from report").await, 0);
}

#[tokio::test]
async fn bad_queries_are_named() {
    let app = demo_app().await;
    for (uri, status, field) in [
        (
            "/api/v1/locate?lon=abc&lat=39.6",
            StatusCode::BAD_REQUEST,
            "lon",
        ),
        ("/api/v1/locate?lat=39.6", StatusCode::BAD_REQUEST, ""),
        (
            "/api/v1/locate?lon=NaN&lat=39.6",
            StatusCode::UNPROCESSABLE_ENTITY,
            "lon",
        ),
        (
            "/api/v1/locate?lon=106.8&lat=39.6&crs=xyz",
            StatusCode::UNPROCESSABLE_ENTITY,
            "crs",
        ),
        (
            "/api/v1/reports?bbox=1,2,3",
            StatusCode::UNPROCESSABLE_ENTITY,
            "bbox",
        ),
        (
            "/api/v1/reports?region=12",
            StatusCode::UNPROCESSABLE_ENTITY,
            "region",
        ),
        (
            "/api/v1/reports?category=ufo",
            StatusCode::UNPROCESSABLE_ENTITY,
            "category",
        ),
        (
            "/api/v1/reports?from=2026-13-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "from",
        ),
        (
            "/api/v1/reports?from=2026-05-02&to=2026-05-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "to",
        ),
        (
            "/api/v1/reports?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            "/api/v1/reports?limit=ten",
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        ("/api/v1/reports?page=2", StatusCode::BAD_REQUEST, ""),
        // found by schemathesis: a NUL reached PostgreSQL and came back as a 500
        (
            "/api/v1/publications?parent=ab%00c",
            StatusCode::BAD_REQUEST,
            "parent",
        ),
        ("/api/v1/regions/1503%0002", StatusCode::BAD_REQUEST, ""),
        (
            "/api/v1/regions?level=village",
            StatusCode::UNPROCESSABLE_ENTITY,
            "level",
        ),
        ("/api/v1/reports/abc", StatusCode::BAD_REQUEST, "id"),
    ] {
        let (got, err) = app.get(uri).await;
        assert_eq!(got, status, "{uri}: {err}");
        if !field.is_empty() {
            assert_eq!(err["error"]["field"], field, "{uri}: {err}");
        }
    }
    let (status, err) = app.get("/api/v1/reports/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
    let (status, err) = app.get("/api/v1/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
    let (status, _) = app.get("/api/v1/regions/150399").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn locate_single_batch_and_statuses() {
    let app = demo_app().await;
    let (status, one) = app
        .get(&format!(
            "/api/v1/locate?lon={}&lat={}",
            IN_GRID.0, IN_GRID.1
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["status"], "inside");
    assert_eq!(one["community"]["name"], "盛世社区");

    // Far out in Wuda's desert: outside every grid, the district takes it (属地兜底).
    let (_, out) = app.get("/api/v1/locate?lon=106.70&lat=39.60").await;
    assert_eq!(out["status"], "outside");
    assert_eq!(out["district"]["code"], "150304");
    assert!(out["grid"].is_null());
    // Beijing: in no district at all.
    let (_, none) = app.get("/api/v1/locate?lon=116.4&lat=39.9").await;
    assert_eq!(none["status"], "outside");
    assert!(none["district"].is_null());

    let (status, batch) = app
        .post(
            "/api/v1/locate",
            &json!([{"lon": IN_GRID.0, "lat": IN_GRID.1}, {"lon": 106.70, "lat": 39.60}, {"lon": 116.4, "lat": 39.9, "crs": "gcj02"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(batch[0], one);
    assert_eq!(batch[1]["status"], "outside");
    let (status, err) = app
        .post(
            "/api/v1/locate",
            &json!([{"lon": 1, "lat": 2}, {"lon": 1, "lat": 200}]),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "[1].lat");
    let many: Vec<Value> = (0..10_001).map(|_| json!({"lon": 1, "lat": 2})).collect();
    let (status, _) = app.post("/api/v1/locate", &json!(many)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn region_listing_and_detail() {
    let app = demo_app().await;
    let (status, grids) = app.get("/api/v1/regions?level=grid").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(grids["features"].as_array().unwrap().len(), 704);
    let (_, all) = app.get("/api/v1/regions").await;
    assert_eq!(all["features"].as_array().unwrap().len(), 765);
    let (status, d) = app.get("/api/v1/regions/150302002003015").await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["level"], "grid");
    let chain: Vec<&str> = d["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        ["150302", "150302002", "150302002003", "150302002003015"]
    );
    assert_eq!(d["staff"].as_array().unwrap().len(), 5);
    assert!(d["staff"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["role"] == "police_officer"));
    assert_eq!(d["version"]["version"], 1);
    assert_eq!(d["report_counts"]["total"], 0);
}

/// A real socket, not only the in-process router.
#[tokio::test]
async fn serves_on_a_bound_port() {
    let app = demo_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let resp = client
        .post(format!("http://{addr}/api/v1/reports"))
        .json(&json!({"category": "sewer_blockage", "lon": IN_GRID.0, "lat": IN_GRID.1, "source": "hotline"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert!(body["id"].as_i64().unwrap() > 0);
}

/// POSTs a report with an Idempotency-Key header; the status, the replay header and the body.
async fn file_once(app: &TestApp, key: &str, body: &Value) -> (StatusCode, bool, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/reports")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .header(
            "authorization",
            format!("Bearer {}", app.token.as_deref().unwrap_or_default()),
        )
        .body(axum::body::Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, replayed, serde_json::from_slice(&bytes).unwrap())
}

/// A retried submission with the same Idempotency-Key never files a second report, even when the
/// retries race each other; the same key with another body is refused.
#[tokio::test]
async fn an_idempotency_key_files_a_report_once() {
    let app = demo_app().await;
    let body = json!({"category": "road_hazard", "lon": IN_GRID.0, "lat": IN_GRID.1, "source": "rider",
                      "description": "井盖缺失"});
    let (status, replayed, first) = file_once(&app, "k-0001", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let (status, replayed, again) = file_once(&app, "k-0001", &body).await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["case_id"], first["case_id"]);
    assert_eq!(again["assignment"], first["assignment"]);
    assert_eq!(again["routing"], first["routing"]);
    assert_eq!(app.scalar_i64("select count(*) from report").await, 1);

    let other =
        json!({"category": "road_hazard", "lon": IN_GRID.0, "lat": IN_GRID.1, "source": "rider"});
    let (status, _, err) = file_once(&app, "k-0001", &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "Idempotency-Key");
    let (status, _, err) = file_once(&app, "", &body).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key"))
    );

    // Eight retries at once: one report, every answer names it.
    let tries = (0..8).map(|_| file_once(&app, "k-0002", &body));
    let answers = futures_util::future::join_all(tries).await;
    let ids: std::collections::BTreeSet<i64> = answers
        .iter()
        .map(|(_, _, v)| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|(s, _, _)| *s == StatusCode::CREATED)
            .count(),
        1
    );
    assert_eq!(app.scalar_i64("select count(*) from report").await, 2);
    assert_eq!(
        app.scalar_i64("select count(*) from dispatch_case").await,
        2
    );
}
