//! The street leader's dashboard on the demo city's year of reports: its totals, categories and
//! grid rows equal counts taken straight from the tables, a filter narrows all of them, the CSV
//! and GeoJSON exports carry the same rows, and wrong regions and values are named.

use crate::support::{demo_app, TestApp};
use axum::http::StatusCode;
use serde_json::Value;

/// 凤凰岭街道, a street of 海勃湾区.
const STREET: &str = "150302003";

async fn count(app: &TestApp, sql: &str, prefix: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(prefix)
        .fetch_one(app.gw.db.pool())
        .await
        .unwrap()
}

async fn csv(app: &TestApp, uri: &str) -> (StatusCode, String, String) {
    let (status, content_type, body) = app.raw("GET", uri, "text/plain", Vec::new()).await;
    (status, content_type, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn a_streets_figures_equal_the_tables_and_a_filter_narrows_them() {
    let app = demo_app().await;
    gridwatch::demo::load(&app.gw).await.unwrap();

    let (status, d) = app.get(&format!("/api/v1/dashboard?region={STREET}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["region"]["name"], "凤凰岭街道");
    assert_eq!(d["level"], "street");
    let totals = &d["totals"];

    // Totals: every report assigned inside the street, and their cases.
    let reports = count(
        &app,
        "select count(*) from report where region_code like $1 || '%'",
        STREET,
    )
    .await;
    assert!(reports > 100, "{reports} reports in the street");
    assert_eq!(totals["reports"], reports);
    let cases_sql = |what: &str| {
        format!(
            "select count(*) from dispatch_case c join report r on r.id = c.report_id
              where r.region_code like $1 || '%' and c.state <> 'merged' and ({what})"
        )
    };
    let cases = count(&app, &cases_sql("true"), STREET).await;
    let closed = count(
        &app,
        &cases_sql("c.state in ('closed', 'evaluated')"),
        STREET,
    )
    .await;
    let accountable = count(&app, &cases_sql("c.state <> 'rejected'"), STREET).await;
    let rated = count(&app, &cases_sql("c.satisfaction is not null"), STREET).await;
    let satisfied = count(&app, &cases_sql("c.satisfaction >= 4"), STREET).await;
    assert_eq!(totals["cases"], cases);
    assert_eq!(totals["closed"], closed);
    assert_eq!(totals["accountable"], accountable);
    assert_eq!(totals["rated"], rated);
    assert_eq!(totals["satisfied"], satisfied);
    assert!(
        closed > 0 && rated > 0,
        "the demo has closed and rated cases"
    );
    let closure = totals["closure_rate"].as_f64().unwrap();
    assert!((closure - closed as f64 / accountable as f64).abs() < 1e-12);
    let satisfaction = totals["satisfaction_rate"].as_f64().unwrap();
    assert!((satisfaction - satisfied as f64 / rated as f64).abs() < 1e-12);
    // The demo's live cases include some past their deadline.
    let overdue = totals["overdue"].as_i64().unwrap();
    assert!(overdue >= 0 && overdue <= accountable - closed, "{overdue}");

    // Categories: they sum to the total and each equals its count.
    let categories = d["categories"].as_array().unwrap();
    let sum: i64 = categories
        .iter()
        .map(|c| c["reports"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, reports);
    for c in categories {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from report where region_code like $1 || '%' and category = $2",
        )
        .bind(STREET)
        .bind(c["code"].as_str().unwrap())
        .fetch_one(app.gw.db.pool())
        .await
        .unwrap();
        assert_eq!(c["reports"], n, "{c}");
        assert!(!c["name"].as_str().unwrap().is_empty() && c["name_en"] != c["name"]);
    }
    let most: Vec<i64> = categories
        .iter()
        .map(|c| c["reports"].as_i64().unwrap())
        .collect();
    assert!(most.windows(2).all(|w| w[0] >= w[1]), "{most:?}");

    // Grids: every current grid of the street, each with its own reports, most first.
    let grids = d["grids"].as_array().unwrap();
    let current = count(
        &app,
        "select count(*) from region r join region_version v
             on v.region_code = r.code and v.valid_to is null
          where r.level = 'grid' and r.code like $1 || '%'",
        STREET,
    )
    .await;
    assert_eq!(grids.len() as i64, current);
    assert_eq!(totals["grids"], current);
    let mut area = 0.0;
    for g in grids {
        let code = g["code"].as_str().unwrap();
        assert!(code.starts_with(STREET) && code.len() == 15, "{code}");
        let n = count(
            &app,
            "select count(*) from report where grid_code = $1",
            code,
        )
        .await;
        assert_eq!(g["reports"], n, "{code}");
        assert!(
            g["community"]["name"].as_str().unwrap().ends_with("社区"),
            "{g}"
        );
        let a = g["area_km2"].as_f64().unwrap();
        area += a;
        let density = g["density_km2"].as_f64().unwrap();
        assert!((density * a - n as f64).abs() < 1e-6, "{code}");
    }
    assert!((totals["area_km2"].as_f64().unwrap() - area).abs() < 1e-9);
    let order: Vec<i64> = grids
        .iter()
        .map(|g| g["reports"].as_i64().unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] >= w[1]), "{order:?}");
    let in_grids = count(
        &app,
        "select count(*) from report where grid_code like $1 || '%'",
        STREET,
    )
    .await;
    assert_eq!(order.iter().sum::<i64>(), in_grids);

    // A filter narrows every part: one category in one month.
    let category = categories[0]["code"].as_str().unwrap();
    let uri = format!(
        "/api/v1/dashboard?region={STREET}&category={category}&from=2026-06-01&to=2026-06-30"
    );
    let (status, f) = app.get(&uri).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    let narrowed: i64 = sqlx::query_scalar(
        "select count(*) from report where region_code like $1 || '%' and category = $2
            and reported_at >= '2026-06-01T00:00:00+08' and reported_at < '2026-07-01T00:00:00+08'",
    )
    .bind(STREET)
    .bind(category)
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert!(narrowed > 0 && narrowed < reports, "{narrowed}");
    assert_eq!(f["totals"]["reports"], narrowed);
    assert_eq!(f["categories"].as_array().unwrap().len(), 1);
    assert_eq!(f["categories"][0]["reports"], narrowed);
    let grid_sum: i64 = f["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["reports"].as_i64().unwrap())
        .sum();
    assert!(grid_sum <= narrowed && grid_sum > 0);
    assert_eq!(f["totals"]["grids"], current, "a filter keeps every grid");

    // A community: its grids only.
    let community = grids[0]["community"]["code"].as_str().unwrap();
    let (status, c) = app
        .get(&format!("/api/v1/dashboard?region={community}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["level"], "community");
    let codes: Vec<&str> = c["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["code"].as_str().unwrap())
        .collect();
    assert!(!codes.is_empty() && codes.iter().all(|g| g.starts_with(community)));
    assert!(codes.len() < grids.len());
}

#[tokio::test]
async fn the_exports_carry_the_same_rows_and_wrong_values_are_named() {
    let app = demo_app().await;
    gridwatch::demo::load(&app.gw).await.unwrap();
    let (_, d) = app.get(&format!("/api/v1/dashboard?region={STREET}")).await;
    let grids = d["grids"].as_array().unwrap();

    let (status, content_type, body) = csv(
        &app,
        &format!("/api/v1/dashboard?region={STREET}&format=csv"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let body = body
        .strip_prefix('\u{feff}')
        .expect("a BOM for spreadsheets");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "code,name,community_code,community_name,reports,density_km2,area_km2,cases,closure_rate,overdue,satisfaction_rate"
    );
    assert_eq!(lines.len(), grids.len() + 1);
    for (line, g) in lines[1..].iter().zip(grids) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], g["code"].as_str().unwrap());
        assert_eq!(fields[1], g["name"].as_str().unwrap());
        assert_eq!(fields[4], g["reports"].to_string());
        assert_eq!(fields[7], g["cases"].to_string());
    }

    let (status, content_type, body) = csv(
        &app,
        &format!("/api/v1/dashboard?region={STREET}&format=geojson"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/geo+json");
    let fc: Value = serde_json::from_str(&body).unwrap();
    let features = fc["features"].as_array().unwrap();
    assert_eq!(features.len(), grids.len());
    for (f, g) in features.iter().zip(grids) {
        assert_eq!(f["id"], g["code"]);
        assert_eq!(f["properties"]["reports"], g["reports"]);
        assert!(matches!(
            f["geometry"]["type"].as_str(),
            Some("Polygon" | "MultiPolygon")
        ));
    }
    // The export parses as GeoJSON.
    let parsed: geojson::GeoJson = body.parse().unwrap();
    assert!(matches!(parsed, geojson::GeoJson::FeatureCollection(_)));

    for (uri, status, field) in [
        (
            "/api/v1/dashboard?region=150302003001001",
            StatusCode::UNPROCESSABLE_ENTITY,
            "region",
        ),
        (
            "/api/v1/dashboard?region=150302003&format=xlsx",
            StatusCode::UNPROCESSABLE_ENTITY,
            "format",
        ),
        (
            "/api/v1/dashboard?region=150302003&category=nonsense",
            StatusCode::UNPROCESSABLE_ENTITY,
            "category",
        ),
        (
            "/api/v1/dashboard?region=150302003&from=2026-13-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "from",
        ),
    ] {
        let (got, body) = app.get(uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert_eq!(body["error"]["field"], field, "{uri}: {body}");
    }
    let (got, body) = app.get("/api/v1/dashboard").await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("region"), "{body}");
    let (got, body) = app.get("/api/v1/dashboard?region=150399").await;
    assert_eq!(got, StatusCode::NOT_FOUND, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("150399"), "{body}");
}
