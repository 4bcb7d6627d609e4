//! Vector tiles against a real PostGIS: incidents as weighted cells below the raw zoom and as
//! points from it, grids with their figures, filters, gzip, ETag and 304, the cache and its
//! invalidation by the database's change feed, TileJSON, and bad requests named.

use crate::support::{demo_app, grid_point, TestApp};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use geozero::mvt::{Message, Tile};
use gridwatch::tiles::{TileFilter, TileId};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use tower::ServiceExt;

/// Inside 育才社区第16网格 of the demo.
const HERE: (f64, f64) = (106.8415, 39.664);

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn get(app: &TestApp, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().uri(uri);
    if let Some(t) = &app.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The features of a tile's one layer, each as its properties.
fn features(mvt: &[u8], layer: &str) -> Vec<HashMap<String, Value>> {
    if mvt.is_empty() {
        return Vec::new();
    }
    let tile = Tile::decode(mvt).expect("a vector tile");
    assert_eq!(tile.layers.len(), 1, "one layer");
    let l = &tile.layers[0];
    assert_eq!(l.name, layer);
    assert_eq!(l.extent, Some(4096));
    l.features
        .iter()
        .map(|f| {
            f.tags
                .chunks(2)
                .map(|kv| {
                    let v = &l.values[kv[1] as usize];
                    let value = if let Some(s) = &v.string_value {
                        json!(s)
                    } else if let Some(i) = v.int_value.or(v.sint_value) {
                        json!(i)
                    } else if let Some(u) = v.uint_value {
                        json!(u)
                    } else if let Some(d) = v.double_value {
                        json!(d)
                    } else if let Some(f) = v.float_value {
                        json!(f)
                    } else {
                        json!(v.bool_value)
                    };
                    (l.keys[kv[0] as usize].clone(), value)
                })
                .collect()
        })
        .collect()
}

fn total(features: &[HashMap<String, Value>]) -> i64 {
    features.iter().map(|f| f["count"].as_i64().unwrap()).sum()
}

async fn file(app: &TestApp, category: &str, lon: f64, lat: f64) -> i64 {
    let (status, body) = app
        .post(
            "/api/v1/reports",
            &json!({"category": category, "lon": lon, "lat": lat, "source": "grid_worker"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// 40 reports in a ~300 m square around HERE: 30 fire lanes, 10 oil smoke.
async fn file_forty(app: &TestApp) {
    for i in 0..40 {
        let (dx, dy) = ((i % 8) as f64 * 0.0004, (i / 8) as f64 * 0.0004);
        let category = if i % 4 == 3 {
            "oil_smoke"
        } else {
            "fire_lane_blocked"
        };
        file(app, category, HERE.0 - 0.0014 + dx, HERE.1 - 0.001 + dy).await;
    }
}

/// What PostGIS counts inside a tile (with its buffer), to check the tiles against.
async fn reports_in(app: &TestApp, t: TileId, category: Option<&str>) -> i64 {
    sqlx::query_scalar(
        "select count(*) from report
          where geom && st_transform(st_tileenvelope($1, $2, $3, margin => 0.015625), 4326)
            and ($4::text is null or category = $4)",
    )
    .bind(t.z as i32)
    .bind(t.x as i32)
    .bind(t.y as i32)
    .bind(category)
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap()
}

fn path(layer: &str, t: TileId) -> String {
    format!("/tiles/{layer}/{}/{}/{}.mvt", t.z, t.x, t.y)
}

#[tokio::test]
async fn incidents_come_as_weighted_cells_below_the_raw_zoom_and_as_points_from_it() {
    let app = demo_app().await;
    file_forty(&app).await;

    let z12 = TileId::containing(12, HERE.0, HERE.1);
    let a = get(&app, &path("incidents", z12), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        header(&a, "content-type"),
        "application/vnd.mapbox-vector-tile"
    );
    let cells = features(&a.body, "incidents");
    assert_eq!(total(&cells), reports_in(&app, z12, None).await);
    assert_eq!(total(&cells), 40);
    keys_agree_with_sql(&app).await;
    // ~76 m cells over a 300 m square: several cells, fewer than the reports
    assert!(cells.len() > 4 && cells.len() < 40, "{} cells", cells.len());
    assert!(cells.iter().all(|c| !c.contains_key("category")));

    let filtered = get(
        &app,
        &format!("{}?category=oil_smoke", path("incidents", z12)),
        &[],
    )
    .await;
    assert_eq!(total(&features(&filtered.body, "incidents")), 10);

    let z16 = TileId::containing(16, HERE.0, HERE.1);
    let points = features(
        &get(&app, &path("incidents", z16), &[]).await.body,
        "incidents",
    );
    assert_eq!(points.len() as i64, reports_in(&app, z16, None).await);
    assert!(!points.is_empty());
    for p in &points {
        assert_eq!(p["count"], 1);
        assert!(p["id"].as_i64().is_some() && p["reported_at"].as_i64().is_some());
        assert_eq!(p["source"], "grid_worker");
        assert_eq!(p["state"], "reported");
    }
    // A state filter: every case is still `reported`.
    let closed = get(
        &app,
        &format!("{}?state=closed", path("incidents", z12)),
        &[],
    )
    .await;
    assert!(features(&closed.body, "incidents").is_empty());
    // A time filter before any report: an empty tile, still a 200.
    let old = get(
        &app,
        &format!("{}?to=2020-01-01", path("incidents", z12)),
        &[],
    )
    .await;
    assert_eq!(old.status, StatusCode::OK);
    assert!(features(&old.body, "incidents").is_empty());
}

/// A tile at a raw zoom that would carry more than `MAX_RAW_FEATURES` points comes as fine cells
/// (1/256 of the tile) instead, the same cells PostGIS counts; one point fewer and they are points.
#[tokio::test]
async fn a_raw_zoom_tile_with_too_many_points_comes_as_fine_cells() {
    use gridwatch::storage::bulk::CopyRows;
    use gridwatch::tiles::MAX_RAW_FEATURES;
    let app = demo_app().await;
    let z16 = TileId::containing(16, HERE.0, HERE.1);
    let already = reports_in(&app, z16, None).await as usize;
    // points on a 300 × 170 lattice over the middle of the tile, kept off the cells' edges (a
    // point exactly on one may be counted on either side by PostGIS and by the quadkey)
    let [w, s, e, n] = z16.bounds();
    let load = |count: usize| {
        let mut rows = CopyRows::default();
        let now = app.gw.clock.now();
        for i in 0..count {
            let input = gridwatch::workflow::intake::ReportInput {
                category: "random_piling".into(),
                lon: w + (e - w) * (0.1 + 0.8 * ((i % 300) as f64 + 0.37) / 300.0),
                lat: s + (n - s) * (0.1 + 0.8 * ((i / 300) as f64 + 0.37) / 170.0),
                source: "hotline".into(),
                ..Default::default()
            };
            let (row, _) = app.gw.prepare_report(&input, now).unwrap();
            rows.push(&row, None);
        }
        rows
    };
    app.gw
        .db
        .copy_reports([load(MAX_RAW_FEATURES - already)])
        .await
        .unwrap();
    assert_eq!(reports_in(&app, z16, None).await as usize, MAX_RAW_FEATURES);
    let points = features(
        &get(&app, &path("incidents", z16), &[]).await.body,
        "incidents",
    );
    assert_eq!(points.len(), MAX_RAW_FEATURES, "exactly the limit: points");
    assert!(points
        .iter()
        .all(|p| p["count"] == 1 && p.contains_key("id")));

    app.gw.db.copy_reports([load(1)]).await.unwrap();
    app.gw.tiles.invalidate_layer(None);
    let cells = features(
        &get(&app, &path("incidents", z16), &[]).await.body,
        "incidents",
    );
    assert_eq!(total(&cells) as usize, MAX_RAW_FEATURES + 1);
    // ~2.4 m cells over points ~1.3 m apart: fewer features than points, several in a cell
    assert!(cells.len() < MAX_RAW_FEATURES, "{} cells", cells.len());
    assert!(cells.iter().any(|c| c["count"].as_i64().unwrap() > 1));
    assert!(cells.iter().all(|c| !c.contains_key("id")));
    // The cells come from the quadkey index and are written in Rust: PostGIS, counting the same
    // reports through the spatial index and writing them with ST_AsMVT, gives the same features.
    let ours = app
        .gw
        .db
        .incidents_tile(z16, &TileFilter::default(), false)
        .await
        .unwrap();
    let postgis: Vec<u8> = sqlx::query_scalar(&gridwatch::storage::tiles::incident_queries().cells)
        .bind(z16.z as i32)
        .bind(z16.x as i32)
        .bind(z16.y as i32)
        .bind(None::<Vec<String>>)
        .bind(None::<chrono::DateTime<chrono::Utc>>)
        .bind(None::<chrono::DateTime<chrono::Utc>>)
        .bind(None::<Vec<String>>)
        .bind(None::<Vec<String>>)
        .bind(z16.width_m() / 256.0)
        .fetch_one(app.gw.db.pool())
        .await
        .unwrap();
    let (ours, postgis) = (canonical(&ours), canonical(&postgis));
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|f| !b.contains(f)).cloned().collect()
    };
    assert!(
        ours == postgis,
        "{} features, {} from PostGIS; only ours: {:?}; only PostGIS's: {:?}",
        ours.len(),
        postgis.len(),
        only(&ours, &postgis),
        only(&postgis, &ours)
    );
    keys_agree_with_sql(&app).await;
}

#[tokio::test]
async fn grid_tiles_carry_each_grids_figures() {
    let app = demo_app().await;
    file_forty(&app).await;
    let z13 = TileId::containing(13, HERE.0, HERE.1);
    let grids = features(&get(&app, &path("grids", z13), &[]).await.body, "grids");
    assert!(grids.len() > 5, "{} grids", grids.len());
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "select grid_code, count(*) from report where grid_code is not null group by 1",
    )
    .fetch_all(app.gw.db.pool())
    .await
    .unwrap();
    assert!(!counted.is_empty());
    for (code, n) in &counted {
        let g = grids
            .iter()
            .find(|g| g["code"] == code.as_str())
            .unwrap_or_else(|| panic!("grid {code} not in the tile"));
        assert_eq!(g["reports"], *n, "{code}");
        assert_eq!(g["cases"], *n, "{code}");
        let density = g["density_km2"].as_f64().unwrap();
        let area = g["area_km2"].as_f64().unwrap();
        assert!((density * area - *n as f64).abs() < 1e-6, "{code}");
        // nothing closed or rated yet
        assert_eq!(g["closure_rate"], 0.0);
        assert!(!g.contains_key("satisfaction_rate"));
    }
    let empty = grids
        .iter()
        .find(|g| g["reports"] == 0)
        .expect("a grid with no reports");
    assert!(!empty.contains_key("closure_rate"));
    assert_eq!(empty["level"], "grid");
}

#[tokio::test]
async fn tiles_are_gzipped_tagged_cached_and_dropped_when_reports_arrive_in_them() {
    let app = demo_app().await;
    file_forty(&app).await;
    tokio::spawn(gridwatch::workflow::tiles::follow_changes(
        app.gw.clone(),
        app.gw.stopping(),
    ));
    // Connected, the feed drops the whole cache once (generation 1).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.gw.tiles.generation() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the change feed never connected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let z14 = TileId::containing(14, HERE.0, HERE.1);
    let uri = path("incidents", z14);

    let plain = get(&app, &uri, &[]).await;
    let gz = get(&app, &uri, &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_eq!(header(&plain, "content-encoding"), "");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(gz.body.as_slice())
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain.body);
    assert!(gz.body.len() < plain.body.len());
    let etag = header(&gz, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10);
    assert_eq!(etag, header(&plain, "etag"));

    let again = get(&app, &uri, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(header(&again, "x-tile-cache"), "hit");

    // Another tile, far from where the next report lands, stays cached. A build that overlaps
    // any invalidation is not kept (it may be stale), so ask until it is cached (≤ 10 builds).
    let far = TileId::containing(14, 106.70, 39.40);
    let far_uri = path("incidents", far);
    let mut builds = 0;
    loop {
        get(&app, &far_uri, &[]).await;
        builds += 1;
        if header(&get(&app, &far_uri, &[]).await, "x-tile-cache") == "hit" {
            break;
        }
        assert!(builds < 10, "the far tile was never kept in the cache");
    }

    // A report in the tile: the notification arrives after its commit; wait for it (≤ 10 s).
    let before = total(&features(&plain.body, "incidents"));
    file(&app, "fire_lane_blocked", HERE.0, HERE.1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let now = loop {
        let a = get(&app, &uri, &[("if-none-match", &etag)]).await;
        if a.status == StatusCode::OK {
            assert_ne!(header(&a, "etag"), etag);
            assert_eq!(header(&a, "x-tile-cache"), "miss");
            break total(&features(&a.body, "incidents"));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tile was never rebuilt after a new report in it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(now, before + 1);
    assert_eq!(now, reports_in(&app, z14, None).await);
    assert_eq!(
        header(&get(&app, &far_uri, &[]).await, "x-tile-cache"),
        "hit"
    );

    // A bulk import (as `gridwatch reports import` in another process would) reaches the cache
    // only through the database's notification: wait for it (≤ 10 s).
    let etag = header(&get(&app, &uri, &[]).await, "etag").to_owned();
    let csv = "工单编号,受理时间,经度,纬度,诉求类别\nT-1,2026-11-03 08:15,106.8415,39.6640,油烟\n";
    let opts = gridwatch::workflow::report_import::ImportOptions {
        crs: gridwatch::domain::Crs::Wgs84,
        source: gridwatch::domain::ReportSource::Hotline,
        check_only: false,
    };
    let outcome = app
        .gw
        .import_reports(
            csv.as_bytes(),
            gridwatch::workflow::report_import::ImportFormat::Csv,
            &opts,
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(outcome.loaded.inserted, 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let a = get(&app, &uri, &[("if-none-match", &etag)]).await;
        if a.status == StatusCode::OK {
            assert_eq!(total(&features(&a.body, "incidents")), now + 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tile was never rebuilt after an import into it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        header(&get(&app, &far_uri, &[]).await, "x-tile-cache"),
        "hit"
    );
}

#[tokio::test]
async fn tilejson_names_the_tiles_with_the_filter_and_bad_requests_are_named() {
    let app = demo_app().await;
    let a = get(
        &app,
        "/tiles/incidents.json?category=oil_smoke,fire_lane_blocked",
        &[("host", "gridwatch.example:8080")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(doc["tilejson"], "3.0.0");
    assert_eq!(
        doc["tiles"][0],
        "http://gridwatch.example:8080/tiles/incidents/{z}/{x}/{y}.mvt?category=fire_lane_blocked,oil_smoke"
    );
    let b = &doc["bounds"];
    assert!(
        b[0].as_f64().unwrap() > 106.0 && b[2].as_f64().unwrap() < 108.0,
        "{b}"
    );
    assert_eq!(doc["vector_layers"][0]["id"], "incidents");
    let g: Value = serde_json::from_slice(&get(&app, "/tiles/grids.json", &[]).await.body).unwrap();
    assert!(g["vector_layers"][0]["fields"]["closure_rate"].is_string());

    for (uri, status, needle) in [
        (
            "/tiles/incidents/23/0/0.mvt",
            StatusCode::NOT_FOUND,
            "zoom 23",
        ),
        (
            "/tiles/incidents/3/8/0.mvt",
            StatusCode::NOT_FOUND,
            "below 8",
        ),
        (
            "/tiles/heat/3/1/1.mvt",
            StatusCode::NOT_FOUND,
            "incidents and grids",
        ),
        ("/tiles/incidents/3/1/1.png", StatusCode::NOT_FOUND, ".mvt"),
        (
            "/tiles/incidents/3/a/1.mvt",
            StatusCode::BAD_REQUEST,
            "x \"a\"",
        ),
        (
            "/tiles/incidents/3/1/1.mvt?category=noise",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown category",
        ),
        (
            "/tiles/incidents/3/1/1.mvt?state=open",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown state",
        ),
        (
            "/tiles/incidents/3/1/1.mvt?from=2026-03-02&to=2026-03-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "after from",
        ),
        (
            "/tiles/incidents/3/1/1.mvt?colour=red",
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        ("/tiles/incidents.xml", StatusCode::NOT_FOUND, "TileJSON"),
    ] {
        let a = get(&app, uri, &[]).await;
        assert_eq!(a.status, status, "{uri}");
        let body: Value = serde_json::from_slice(&a.body).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{uri}: {message}");
    }
}

#[tokio::test]
async fn a_trend_counts_reports_per_bucket_in_china_time_with_the_empty_ones() {
    let app = demo_app().await;
    // 2026-03-01 23:30 China time is still 1 March there (15:30 UTC).
    for (at, category) in [
        ("2026-01-05T10:00:00+08:00", "oil_smoke"),
        ("2026-01-20T10:00:00+08:00", "fire_lane_blocked"),
        ("2026-03-01T23:30:00+08:00", "oil_smoke"),
        ("2026-03-31T16:30:00Z", "oil_smoke"), // 1 April, China time
    ] {
        let (status, body) = app
            .post(
                "/api/v1/reports",
                &json!({"category": category, "lon": HERE.0, "lat": HERE.1, "source": "hotline",
                        "reported_at": at}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, t) = app.get("/api/v1/reports/trend?interval=month").await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let buckets: Vec<(String, i64)> = t["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_owned(),
                b["reports"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        buckets,
        [
            ("2026-01-01".to_owned(), 2),
            ("2026-02-01".to_owned(), 0),
            ("2026-03-01".to_owned(), 1),
            ("2026-04-01".to_owned(), 1)
        ]
    );
    assert!(t.get("region").is_none());

    let grid = "150302003002016";
    let (_, t) = app
        .get(&format!(
            "/api/v1/reports/trend?region={grid}&interval=week&category=oil_smoke&from=2026-03-01&to=2026-03-14"
        ))
        .await;
    assert_eq!(t["region"]["code"], grid);
    assert_eq!(t["region"]["name"], "育才社区第16网格");
    let weeks: Vec<(&str, i64)> = t["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["start"].as_str().unwrap(), b["reports"].as_i64().unwrap()))
        .collect();
    // weeks start on Monday: 23 Feb (holding Sunday 1 March), 2 March, 9 March
    assert_eq!(
        weeks,
        [("2026-02-23", 1), ("2026-03-02", 0), ("2026-03-09", 0)]
    );

    for (uri, status) in [
        (
            "/api/v1/reports/trend?interval=hour",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/reports/trend?region=150302999",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/reports/trend?interval=day&from=2000-01-01&to=2026-01-01",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, body) = app.get(uri).await;
        assert_eq!(got, status, "{uri}: {body}");
    }
}

/// A tile's features, each as its geometry commands and sorted properties, in sorted order: equal
/// for two tiles with the same features in any order.
fn canonical(mvt: &[u8]) -> Vec<String> {
    if mvt.is_empty() {
        return Vec::new();
    }
    let tile = Tile::decode(mvt).expect("a vector tile");
    let props = features(mvt, &tile.layers[0].name);
    let mut out: Vec<String> = tile.layers[0]
        .features
        .iter()
        .zip(props)
        .map(|(f, p)| {
            let sorted: std::collections::BTreeMap<_, _> = p.into_iter().collect();
            format!("{:?} {:?} {}", f.r#type, f.geometry, json!(sorted))
        })
        .collect();
    out.sort();
    out
}

/// `gridwatch bench tiles` gives Martin the PostGIS statements (spatial index, `ST_AsMVT`) as a
/// function source: on the demo year its tiles hold the same features as the service's, whose
/// cells come from the quadkey index, at every zoom the benchmark asks for.
#[tokio::test]
async fn the_benchmarks_martin_function_builds_the_same_tiles() {
    let app = demo_app().await;
    gridwatch::demo::load(&app.gw).await.unwrap();
    gridwatch::bench_tiles::install_peer_function(&app.gw.db)
        .await
        .unwrap();
    let mut nonempty = 0;
    for z in [10u8, 13, 15, 16] {
        let t = TileId::containing(z, HERE.0, HERE.1);
        let ours = app
            .gw
            .db
            .incidents_tile(t, &TileFilter::default(), false)
            .await
            .unwrap();
        let peer: Vec<u8> = sqlx::query_scalar("select gw_bench_incidents($1, $2, $3)")
            .bind(t.z as i32)
            .bind(t.x as i32)
            .bind(t.y as i32)
            .fetch_one(app.gw.db.pool())
            .await
            .unwrap();
        assert_eq!(canonical(&ours), canonical(&peer), "z{z}");
        nonempty += usize::from(!features(&ours, "incidents").is_empty());
    }
    assert_eq!(nonempty, 4);
    keys_agree_with_sql(&app).await;
}

/// Every report's `tile_key`, written by Rust on its way in, is what migration 0017's
/// `gw_tile_key` computes from its point.
async fn keys_agree_with_sql(app: &TestApp) {
    let (reports, differing): (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where tile_key <> gw_tile_key(st_x(geom), st_y(geom)))
           from report",
    )
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert!(reports > 0);
    assert_eq!(differing, 0, "of {reports} reports");
}

#[tokio::test]
async fn without_logging_in_tiles_are_coarse_and_hide_small_counts() {
    let app = demo_app().await;
    file_forty(&app).await;
    // Two reports alone in a grid of 乌达区, far from the forty.
    let (lonely, lon, lat) = grid_point(&app, "150304").await;
    file(&app, "road_hazard", lon, lat).await;
    file(&app, "road_hazard", lon + 0.0001, lat).await;
    let public = app.as_caller(None);

    // Near the forty: only cells of at least 3 reports, no single report even at zoom 16.
    for z in [12, 14, 16] {
        let t = TileId::containing(z, HERE.0, HERE.1);
        let staff = features(
            &get(&app, &path("incidents", t), &[]).await.body,
            "incidents",
        );
        let a = get(&public, &path("incidents", t), &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        let cells = features(&a.body, "incidents");
        assert!(!cells.is_empty(), "z{z}: the forty show");
        for c in &cells {
            assert!(c["count"].as_i64().unwrap() >= 3, "z{z}: {c:?}");
            assert!(
                !c.contains_key("id") && !c.contains_key("category"),
                "z{z}: {c:?}"
            );
        }
        assert!(total(&cells) <= total(&staff), "z{z}");
        // 200 m cells over a ~300 m square: a handful, however far one zooms in.
        assert!(cells.len() <= 9, "z{z}: {} cells", cells.len());
        if z == 16 {
            assert_eq!(
                staff.len() as i64,
                reports_in(&app, t, None).await,
                "staff see points"
            );
        }
    }
    // The two lonely reports are in the staff's tile and nowhere in the public one.
    let t = TileId::containing(12, lon, lat);
    let staff = features(
        &get(&app, &path("incidents", t), &[]).await.body,
        "incidents",
    );
    assert_eq!(total(&staff), 2);
    let a = get(&public, &path("incidents", t), &[]).await;
    assert!(features(&a.body, "incidents").is_empty());
    // Public and staff tiles are cached apart: the staff's tile stays whole after a public read.
    let again = features(
        &get(&app, &path("incidents", t), &[]).await.body,
        "incidents",
    );
    assert_eq!(total(&again), 2);

    // Grid figures: the lonely grid's are left out for the public, the forty's grid keeps them.
    let t = TileId::containing(13, lon, lat);
    let find = |grids: &[HashMap<String, Value>], code: &str| {
        grids.iter().find(|g| g["code"] == code).cloned().unwrap()
    };
    let staff = features(&get(&app, &path("grids", t), &[]).await.body, "grids");
    assert_eq!(find(&staff, &lonely)["reports"], 2);
    let shown = features(&get(&public, &path("grids", t), &[]).await.body, "grids");
    let g = find(&shown, &lonely);
    for key in ["reports", "density_km2", "cases", "closure_rate", "overdue"] {
        assert!(!g.contains_key(key), "{key} of {lonely}: {g:?}");
    }
    assert!(g.contains_key("area_km2"));
    let t = TileId::containing(13, HERE.0, HERE.1);
    let shown = features(&get(&public, &path("grids", t), &[]).await.body, "grids");
    let busiest = shown
        .iter()
        .filter_map(|g| g.get("reports").and_then(Value::as_i64))
        .max();
    assert!(busiest.is_some_and(|n| n >= 3), "{busiest:?}");
    assert!(shown
        .iter()
        .filter_map(|g| g.get("reports").and_then(Value::as_i64))
        .all(|n| n == 0 || n >= 3));
}
