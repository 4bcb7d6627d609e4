//! Region import: all-or-nothing, problems named per feature, versions on redraw.

use crate::support::{spawn_app, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
}

fn feature(code: &str, level: &str, parent: Option<&str>, geometry: Value) -> Value {
    json!({"type": "Feature", "properties": {"code": code, "name": format!("区域{code}"), "level": level, "parent_code": parent}, "geometry": geometry})
}

fn fc(features: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": "FeatureCollection", "features": features})).unwrap()
}

/// District → street → community → two grids side by side, the left one with two micro-grids.
fn base_features() -> Vec<Value> {
    let mut grid = feature(
        "150302001001001",
        "grid",
        Some("150302001001"),
        rect(106.80, 39.60, 106.81, 39.61),
    );
    grid["properties"]["party_branch"] =
        json!({"name": "一号网格党支部", "secretary": "王芳", "contact": "0473-0000001"});
    grid["properties"]["staff"] = json!([
        {"role": "grid_leader", "name": "李强"},
        {"role": "police_officer", "name": "赵刚", "phone": "0473-0000002"},
        {"role": "full_time_worker", "name": "孙丽"},
        {"role": "part_time_worker", "name": "周明"}
    ]);
    vec![
        feature("150302", "district", None, rect(106.7, 39.5, 106.9, 39.7)),
        feature(
            "150302001",
            "street",
            Some("150302"),
            rect(106.80, 39.60, 106.82, 39.61),
        ),
        feature(
            "150302001001",
            "community",
            Some("150302001"),
            rect(106.80, 39.60, 106.82, 39.61),
        ),
        grid,
        feature(
            "150302001001002",
            "grid",
            Some("150302001001"),
            rect(106.81, 39.60, 106.82, 39.61),
        ),
        feature(
            "15030200100100101",
            "micro_grid",
            Some("150302001001001"),
            rect(106.80, 39.60, 106.805, 39.61),
        ),
        feature(
            "15030200100100102",
            "micro_grid",
            Some("150302001001001"),
            rect(106.805, 39.60, 106.81, 39.61),
        ),
    ]
}

async fn import(app: &TestApp, body: Vec<u8>) -> (StatusCode, Value) {
    app.call("POST", "/api/v1/regions/import", Some(body)).await
}

async fn counts(app: &TestApp) -> (i64, i64) {
    (
        app.scalar_i64("select count(*) from region").await,
        app.scalar_i64("select count(*) from region_version").await,
    )
}

#[tokio::test]
async fn accepted_import_is_idempotent_and_locatable() {
    let app = spawn_app().await;
    let (status, body) = import(&app, fc(base_features())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["imported"]["created"], 7);
    let (status, again) = import(&app, fc(base_features())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["imported"]["created"], 0);
    assert_eq!(again["imported"]["new_versions"], 0);
    assert_eq!(again["imported"]["unchanged_boundaries"], 7);
    assert_eq!(counts(&app).await, (7, 7));

    let (_, at) = app.get("/api/v1/locate?lon=106.803&lat=39.605").await;
    assert_eq!(at["status"], "inside");
    assert_eq!(at["micro_grid"]["code"], "15030200100100101");
    assert_eq!(at["party_branch"]["secretary"], "王芳");
    // exactly on the edge shared by the two grids: one of them, the same every time
    let (_, e1) = app.get("/api/v1/locate?lon=106.81&lat=39.605").await;
    let (_, e2) = app.get("/api/v1/locate?lon=106.81&lat=39.605").await;
    assert_eq!(e1["status"], "inside");
    assert_eq!(e1["grid"], e2["grid"]);
    // 30 m east of the right grid, still in the district: near
    let (_, near) = app.get("/api/v1/locate?lon=106.82035&lat=39.605").await;
    assert_eq!(near["status"], "near", "{near}");
    assert_eq!(near["grid"]["code"], "150302001001002");
    let d = near["distance_m"].as_f64().unwrap();
    assert!((25.0..35.0).contains(&d), "{d}");
}

#[tokio::test]
async fn a_redraw_creates_a_version_and_old_reports_keep_theirs() {
    let app = spawn_app().await;
    assert_eq!(import(&app, fc(base_features())).await.0, StatusCode::OK);
    let (status, filed) = app
        .post(
            "/api/v1/reports",
            &json!({"category": "wall_leak", "lon": 106.8075, "lat": 39.605, "source": "resident"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(filed["assignment"]["grid"]["code"], "150302001001001");

    // Move the shared edge west from 106.81 to 106.807: the point now lies in grid 002.
    let mut redrawn = base_features();
    redrawn[3]["geometry"] = rect(106.80, 39.60, 106.807, 39.61);
    redrawn[4]["geometry"] = rect(106.807, 39.60, 106.82, 39.61);
    redrawn[6]["geometry"] = rect(106.805, 39.60, 106.807, 39.61);
    let (status, body) = import(&app, fc(redrawn)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["imported"]["new_versions"], 3);
    assert_eq!(counts(&app).await, (7, 10));

    let (_, now) = app.get("/api/v1/locate?lon=106.8075&lat=39.605").await;
    assert_eq!(now["grid"]["code"], "150302001001002");
    let (_, old) = app.get(&format!("/api/v1/reports/{}", filed["id"])).await;
    assert_eq!(old["grid_code"], "150302001001001");
    assert_eq!(old["micro_grid_code"], "15030200100100102");
    assert_eq!(old["region_version"], 1);
    let (_, detail) = app.get("/api/v1/regions/150302001001001").await;
    assert_eq!(detail["version"]["version"], 2);
    let versions: Vec<i64> = detail["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    assert!(detail["versions"][1]["valid_to"].is_string());
    // The old boundary is still queryable.
    let old_area: f64 = sqlx::query_scalar(
        "select st_area(geom::geography) from region_version where region_code = '150302001001001' and version = 1",
    )
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert!(old_area > 900_000.0, "{old_area}");
}

#[tokio::test]
async fn every_problem_is_named_and_nothing_is_written() {
    let app = spawn_app().await;
    assert_eq!(import(&app, fc(base_features())).await.0, StatusCode::OK);
    let before = counts(&app).await;

    let bowtie = json!({"type": "Polygon", "coordinates": [[[106.80, 39.60], [106.81, 39.61], [106.81, 39.60], [106.80, 39.61], [106.80, 39.60]]]});
    let cases: Vec<(&str, Vec<Value>, &str, usize)> = vec![
        (
            "unknown parent",
            vec![feature(
                "150302002001",
                "community",
                Some("150302002"),
                rect(106.80, 39.60, 106.81, 39.61),
            )],
            "unknown_parent",
            0,
        ),
        (
            "self-intersecting ring",
            vec![feature(
                "150302001001003",
                "grid",
                Some("150302001001"),
                bowtie,
            )],
            "invalid_geometry",
            0,
        ),
        (
            "child outside its parent",
            vec![feature(
                "150302001001003",
                "grid",
                Some("150302001001"),
                rect(106.815, 39.605, 106.83, 39.615),
            )],
            "outside_parent",
            0,
        ),
        (
            "overlapping siblings",
            vec![feature(
                "150302001001003",
                "grid",
                Some("150302001001"),
                rect(106.805, 39.60, 106.815, 39.61),
            )],
            "overlapping_siblings",
            0,
        ),
        (
            "one bad feature among good ones",
            vec![
                feature("150303", "district", None, rect(106.7, 39.3, 106.9, 39.45)),
                feature(
                    "150303001",
                    "street",
                    Some("150303"),
                    rect(106.75, 39.35, 106.8, 39.4),
                ),
                feature(
                    "150303001001",
                    "community",
                    Some("150303001"),
                    rect(106.70, 39.35, 106.8, 39.4),
                ),
            ],
            "outside_parent",
            2,
        ),
    ];
    for (what, features, kind, index) in cases {
        let (status, err) = import(&app, fc(features)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {err}");
        let problems = err["error"]["problems"].as_array().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p["kind"] == kind && p["feature"] == index),
            "{what}: expected {kind} at feature {index}, got {err}"
        );
        assert_eq!(counts(&app).await, before, "{what}: something was written");
    }
    // A redrawn parent that would leave an existing child outside is refused too.
    let mut shrunk = base_features();
    shrunk.truncate(3);
    shrunk[2]["geometry"] = rect(106.80, 39.60, 106.815, 39.61);
    let (status, err) = import(&app, fc(shrunk)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["error"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "outside_parent" && p["code"] == "150302001001002"),
        "{err}"
    );
    assert_eq!(counts(&app).await, before);
}

#[tokio::test]
async fn structural_problems_and_bad_files() {
    let app = spawn_app().await;
    let (status, err) = import(&app, b"not json".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["problems"][0]["kind"], "malformed_json");
    let mut f = base_features();
    f[3]["properties"]["staff"] = json!([{"role": "mayor", "name": "x"}]);
    f[4]["properties"]["level"] = json!("community");
    let (status, err) = import(&app, fc(f)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let kinds: Vec<(i64, String)> = err["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["feature"].as_i64().unwrap(),
                p["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(kinds.contains(&(3, "bad_staff".into())), "{kinds:?}");
    assert!(kinds.contains(&(4, "level_mismatch".into())), "{kinds:?}");
    assert_eq!(counts(&app).await, (0, 0));
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/regions/import?crs=mars",
            Some(fc(base_features())),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn gcj02_files_are_converted_on_import() {
    let app = spawn_app().await;
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/regions/import?crs=gcj02",
            Some(fc(base_features()[..1].to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let x: f64 =
        sqlx::query_scalar("select st_xmin(geom) from region_version where region_code = '150302'")
            .fetch_one(app.gw.db.pool())
            .await
            .unwrap();
    // GCJ-02 lies a few hundred metres east of WGS-84 here, so the stored edge moved west.
    assert!(x < 106.7 - 0.003 && x > 106.7 - 0.01, "{x}");
}
