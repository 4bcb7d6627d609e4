//! The sketch API: upload, control points and fit, overlay, vectorise — on a generated sample.

use crate::support::{demo_app, repo_dir, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

const BOUNDARY: &str = "gridwatch-test-boundary";

/// A multipart field: name, file name (for a file), content.
type Field<'a> = (&'a str, Option<&'a str>, &'a [u8]);

fn multipart(fields: &[Field<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in fields {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub(crate) async fn upload(app: &TestApp, fields: &[Field<'_>]) -> (StatusCode, Value) {
    let (status, _, bytes) = app
        .raw(
            "POST",
            "/api/v1/sketches",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(fields),
        )
        .await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(crate) fn sample(name: &str) -> (Vec<u8>, Value) {
    let dir = repo_dir().join("geodata/sketches");
    let image = std::fs::read(dir.join(format!("{name}.jpg"))).unwrap();
    let gcps: Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.gcps.json"))).unwrap())
            .unwrap();
    (image, gcps)
}

#[tokio::test]
async fn upload_fit_overlay_and_vectorise_a_sample() {
    let app = demo_app().await;
    let (image, gcps) = sample("kangle-pencil");
    let (status, sketch) = upload(
        &app,
        &[
            ("image", Some("kangle.jpg"), &image),
            ("title", None, "康乐社区手绘网格图".as_bytes()),
            ("region_code", None, b"150302001001"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sketch}");
    assert_eq!(
        (sketch["width"].as_i64(), sketch["height"].as_i64()),
        (Some(1600), Some(1200))
    );
    assert_eq!(sketch["format"], "jpeg");
    let id = sketch["id"].as_i64().unwrap();

    // Vectorising before any control points are set is refused, naming them.
    let (status, err) = app
        .post(&format!("/api/v1/sketches/{id}/vectorise"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "gcps");

    let (status, fitted) = app
        .call(
            "PUT",
            &format!("/api/v1/sketches/{id}/gcps"),
            Some(serde_json::to_vec(&json!({"gcps": gcps})).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fitted}");
    assert_eq!(fitted["fit"]["points"], 5);
    assert_eq!(fitted["fit"]["residuals"].as_array().unwrap().len(), 5);
    assert!(fitted["fit"]["rmse_m"].as_f64().unwrap() < 2.0, "{fitted}");
    let fp = fitted["footprint"].as_array().unwrap();
    assert!(
        (106.8..106.9).contains(&fp[0].as_f64().unwrap())
            && (39.6..39.7).contains(&fp[1].as_f64().unwrap())
    );
    // Reopening the sketch gives the same footprint for its overlay.
    let (_, reopened) = app.get(&format!("/api/v1/sketches/{id}")).await;
    assert_eq!(reopened["footprint"], fitted["footprint"], "{reopened}");

    // Bad control points: 422 and the stored fit is untouched.
    let put = |body: Value| {
        let app = &app;
        async move {
            app.call(
                "PUT",
                &format!("/api/v1/sketches/{id}/gcps"),
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
        }
    };
    let one = json!({"gcps": [gcps[0]]});
    let collinear = json!({"gcps": [{"px": 0, "py": 0, "lon": 106.8, "lat": 39.6}, {"px": 10, "py": 10, "lon": 106.801, "lat": 39.601}, {"px": 20, "py": 20, "lon": 106.802, "lat": 39.602}], "transform": "affine"});
    let outside = json!({"gcps": [{"px": 5000, "py": 0, "lon": 106.8, "lat": 39.6}, gcps[1]]});
    let bad_lat = json!({"gcps": [{"px": 1, "py": 1, "lon": 106.8, "lat": 91}, gcps[1]]});
    let bad_kind = json!({"gcps": gcps, "transform": "rubber-sheet"});
    for (what, body, field) in [
        ("one point", one, "gcps"),
        ("collinear", collinear, "gcps"),
        ("outside the image", outside, "gcps[0]"),
        ("latitude", bad_lat, "gcps[0].lat"),
        ("unknown transform", bad_kind, "transform"),
    ] {
        let (status, err) = put(body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {err}");
        assert_eq!(err["error"]["field"], field, "{what}: {err}");
    }
    let (_, stored) = app.get(&format!("/api/v1/sketches/{id}")).await;
    assert_eq!(stored["gcps"].as_array().unwrap().len(), 5);

    // The overlay: a north-up PNG with the sketch opaque and the rest transparent.
    let (status, ct, png) = app
        .raw(
            "GET",
            &format!("/api/v1/sketches/{id}/overlay.png"),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "image/png");
    let img = image::load_from_memory(&png).unwrap().to_rgba8();
    let opaque = img.pixels().filter(|p| p[3] == 255).count();
    let clear = img.pixels().filter(|p| p[3] == 0).count();
    assert!(
        opaque > clear && clear > 0,
        "{opaque} opaque, {clear} transparent"
    );

    // Vectorise: the 18 areas drawn, each a WGS-84 polygon with a confidence.
    let (status, fc) = app
        .post(&format!("/api/v1/sketches/{id}/vectorise"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{fc}");
    let features = fc["features"].as_array().unwrap();
    assert_eq!(features.len(), 18, "{}", fc["problems"]);
    for f in features {
        assert!(f["properties"]["confidence"].as_f64().unwrap() > 0.0);
        assert!(f["properties"]["area_m2"].as_f64().unwrap() > 5_000.0);
        assert_eq!(f["geometry"]["type"], "MultiPolygon");
    }

    let (_, list) = app.get("/api/v1/sketches").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, ct, upright) = app
        .raw("GET", &format!("/api/v1/sketches/{id}/image"), "", vec![])
        .await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "image/jpeg"));
    assert_eq!(upright, image);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_nothing_is_stored() {
    let app = demo_app().await;
    let (image, _) = sample("pingan-pencil");
    let cases: Vec<(&str, Vec<Field<'_>>, StatusCode, &str)> = vec![
        (
            "not an image",
            vec![("image", Some("a.txt"), b"hello, sketch")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "image",
        ),
        (
            "truncated JPEG",
            vec![("image", Some("a.jpg"), &image[..2000])],
            StatusCode::UNPROCESSABLE_ENTITY,
            "image",
        ),
        (
            "no image",
            vec![("title", None, b"x")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "image",
        ),
        (
            "unknown field",
            vec![("photo", Some("a.jpg"), &image)],
            StatusCode::BAD_REQUEST,
            "photo",
        ),
        (
            "bad region code",
            vec![
                ("image", Some("a.jpg"), &image),
                ("region_code", None, b"1503"),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "region_code",
        ),
        (
            "unknown region",
            vec![
                ("image", Some("a.jpg"), &image),
                ("region_code", None, b"150399"),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "region_code",
        ),
    ];
    for (what, fields, status, field) in cases {
        let (got, err) = upload(&app, &fields).await;
        assert_eq!(got, status, "{what}: {err}");
        assert_eq!(err["error"]["field"], field, "{what}: {err}");
    }
    let (status, _, err) = app
        .raw(
            "POST",
            "/api/v1/sketches",
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(app.scalar_i64("select count(*) from sketch").await, 0);
    let (status, _) = app.get("/api/v1/sketches/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/api/v1/sketches/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Uploads a sample with its control points and vectorises it; returns the sketch id.
pub(crate) async fn vectorised_sample(app: &TestApp, name: &str, region: &str) -> i64 {
    let (image, gcps) = sample(name);
    let (status, sketch) = upload(
        app,
        &[
            ("image", Some("s.jpg"), &image),
            ("region_code", None, region.as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sketch}");
    let id = sketch["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            "PUT",
            &format!("/api/v1/sketches/{id}/gcps"),
            Some(serde_json::to_vec(&json!({"gcps": gcps})).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(&format!("/api/v1/sketches/{id}/vectorise"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    id
}

/// The review cleans the candidates into a coverage of the community; PostGIS is the judge:
/// every polygon valid, no overlaps, union area equal to the community's within 0.1 %.
#[tokio::test]
async fn review_cleans_the_candidates_into_a_coverage_of_the_community() {
    let app = demo_app().await;
    let id = vectorised_sample(&app, "pingan-pencil", "150303001001").await;
    let (status, review) = app
        .call("POST", &format!("/api/v1/sketches/{id}/review"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{review}");
    assert_eq!(review["parent"]["code"], "150303001001");
    let fixes = review["fixes"].as_array().unwrap();
    assert!(
        !fixes.is_empty(),
        "a hand drawing never matches the registry edge for edge"
    );
    for f in fixes {
        assert!(
            f["area_m2"].as_f64().unwrap() >= 0.0 && f["rule"].is_string(),
            "{f}"
        );
    }
    let remaining: Vec<&Value> = review["remaining"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "overlap")
        .collect();
    assert!(remaining.is_empty(), "{remaining:?}");
    let features = review["candidates"]["features"].as_array().unwrap();
    assert_eq!(features.len(), 20);

    let geoms: Vec<String> = features.iter().map(|f| f["geometry"].to_string()).collect();
    let (invalid, overlap_m2, union_m2, parent_m2): (i64, f64, f64, f64) = sqlx::query_as(
        "with c as (select i, st_setsrid(st_geomfromgeojson(g), 4326) as geom
                      from unnest($1::text[]) with ordinality as t(g, i)),
              p as (select geom from region_version where region_code = '150303001001' and valid_to is null)
         select (select count(*) from c where not st_isvalid(geom)),
                (select coalesce(sum(st_area(st_intersection(a.geom, b.geom)::geography)), 0)
                   from c a join c b on a.i < b.i and a.geom && b.geom),
                (select st_area(st_union(geom)::geography) from c),
                (select st_area(geom::geography) from p)",
    )
    .bind(&geoms)
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert_eq!(invalid, 0);
    assert!(overlap_m2 < 1.0, "overlap {overlap_m2} m²");
    let diff = (union_m2 - parent_m2).abs() / parent_m2;
    assert!(
        diff < 0.001,
        "union {union_m2} m² vs community {parent_m2} m² ({:.3} %)",
        diff * 100.0
    );

    // Without a vectorisation, or with a bad rule: 422 naming the field.
    let (image, _) = sample("pingan-pencil");
    let (_, fresh) = upload(&app, &[("image", Some("s.jpg"), &image)]).await;
    let fresh = fresh["id"].as_i64().unwrap();
    let (status, err) = app
        .post(
            &format!("/api/v1/sketches/{fresh}/review"),
            &json!({"parent_code": "150303001001"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("vectorised"))
    );
    let (status, err) = app
        .post(&format!("/api/v1/sketches/{fresh}/review"), &json!({}))
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("parent_code"))
    );
    let (status, err) = app
        .post(
            &format!("/api/v1/sketches/{id}/review"),
            &json!({"rule": "coin_toss"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("rule"))
    );
}
