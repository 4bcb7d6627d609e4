//! Redraw and publish: a sketch's cleaned candidates published as new grid versions, a grid
//! split into micro-grids, and every refusal writing nothing. PostGIS judges the results.

use crate::sketches::vectorised_sample;
use crate::support::{demo_app, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

const KANGLE: &str = "150302001001";
/// A compound grid of 康乐社区 with four micro-grids in the demo data.
const COMPOUND: &str = "150302001001008";

async fn current_children(app: &TestApp, parent: &str) -> Vec<Value> {
    let (status, fc) = app.get(&format!("/api/v1/regions?parent={parent}")).await;
    assert_eq!(status, StatusCode::OK, "{fc}");
    fc["features"].as_array().unwrap().clone()
}

async fn version_rows(app: &TestApp) -> i64 {
    app.scalar_i64("select count(*) from region_version").await
}

/// A point inside the current boundary of `code`.
async fn point_in(app: &TestApp, code: &str) -> (f64, f64) {
    sqlx::query_as(
        "select st_x(p), st_y(p) from (select st_pointonsurface(geom) as p from region_version
          where region_code = $1 and valid_to is null) t",
    )
    .bind(code)
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap()
}

/// Checks the current children of `parent` in PostGIS: all valid, no pairwise overlap, union
/// area equal to the parent's within 0.1 %.
async fn assert_tiles(app: &TestApp, parent: &str) {
    let (invalid, overlap_m2, union_m2, parent_m2): (i64, f64, f64, f64) = sqlx::query_as(
        "with c as (select r.code, v.geom from region r
                      join region_version v on v.region_code = r.code and v.valid_to is null
                     where r.parent_code = $1),
              p as (select geom from region_version where region_code = $1 and valid_to is null)
         select (select count(*) from c where not st_isvalid(geom)),
                (select coalesce(sum(st_area(st_intersection(a.geom, b.geom)::geography)), 0)
                   from c a join c b on a.code < b.code and a.geom && b.geom),
                (select st_area(st_union(geom)::geography) from c),
                (select st_area(geom::geography) from p)",
    )
    .bind(parent)
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert_eq!(invalid, 0, "invalid children of {parent}");
    assert!(
        overlap_m2 < 1.0,
        "children of {parent} overlap by {overlap_m2} m²"
    );
    let off = (union_m2 - parent_m2).abs() / parent_m2;
    assert!(
        off < 0.001,
        "children of {parent}: union {union_m2} m² vs {parent_m2} m²"
    );
}

/// The planner's whole flow on a sample sketch: vectorise, review (clean), check, publish. The
/// grids keep their codes with a new version each, reports filed before keep the version they
/// were filed against, new reports get the new one, and the index answers with the new shapes.
#[tokio::test]
async fn a_reviewed_sketch_is_published_as_new_grid_versions() {
    let app = demo_app().await;
    let id = vectorised_sample(&app, "kangle-pencil", KANGLE).await;
    let (status, review) = app
        .call("POST", &format!("/api/v1/sketches/{id}/review"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{review}");
    let mut features: Vec<Value> = review["candidates"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            json!({"type": "Feature", "properties": {"key": f["properties"]["candidate"]},
                   "geometry": f["geometry"]})
        })
        .collect();
    let before = current_children(&app, KANGLE).await;
    let body = json!({"features": features, "sketch_id": id});
    let (status, check) = app
        .post(&format!("/api/v1/regions/{KANGLE}/redraw/check"), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["child_level"], "grid");
    let blocking: Vec<&Value> = check["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["blocking"] == true)
        .collect();
    assert!(blocking.is_empty(), "{blocking:?}");
    assert_eq!(check["publishable"], true, "{check}");
    let children = check["children"].as_array().unwrap();
    // The sketch redraws the registry's 15 grids, one of them (the compound) through its four
    // micro-grids: every candidate keeps an existing code.
    let grids: Vec<&Value> = children.iter().filter(|c| c["level"] == "grid").collect();
    let micro: Vec<&Value> = children
        .iter()
        .filter(|c| c["level"] == "micro_grid")
        .collect();
    assert_eq!(grids.len(), before.len(), "{children:?}");
    assert_eq!(micro.len(), 4, "{children:?}");
    for c in &grids {
        let by = if c["code"] == COMPOUND {
            "micro_grids"
        } else {
            "overlap"
        };
        assert_eq!(c["matched_by"], by, "{c}");
    }
    for c in &micro {
        assert_eq!(
            (&c["parent_code"], &c["matched_by"]),
            (&json!(COMPOUND), &json!("overlap")),
            "{c}"
        );
    }
    for c in children {
        assert_eq!(c["status"], "changed", "{c}");
        let pct = c["sym_diff_pct"].as_f64().unwrap();
        assert!(pct > 0.0 && pct < 50.0, "{c}");
    }
    assert_eq!(
        check["features"]["features"].as_array().unwrap().len(),
        before.len() + 4
    );
    let changed = before.len() + 4;

    // A grid to watch: the reports filed in it before the redraw.
    let grid = grids[0]["code"].as_str().unwrap().to_owned();
    let (lon, lat) = point_in(&app, &grid).await;
    let (status, filed) = app
        .post(
            "/api/v1/reports",
            &json!({"category": "flying_lead_charging", "lon": lon, "lat": lat, "source": "resident"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    assert_eq!(
        filed["assignment"]["grid"]["code"],
        grid.as_str(),
        "{filed}"
    );
    let old_version_id: i64 = app
        .scalar_i64(&format!(
            "select id from region_version where region_code = '{grid}' and valid_to is null"
        ))
        .await;
    let filed_before = app
        .scalar_i64(&format!(
            "select count(*) from report where region_version_id = {old_version_id}"
        ))
        .await;
    assert_eq!(filed_before, 1);

    let versions = version_rows(&app).await;
    let (status, published) = app
        .post(&format!("/api/v1/regions/{KANGLE}/redraw"), &body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    // The publication is in the audit log under the user who made it; the checks before are not.
    let (_, audit) = app
        .get(&format!("/api/v1/audit?subject=region:{KANGLE}"))
        .await;
    let changes: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "grid.change")
        .collect();
    assert_eq!(changes.len(), 1, "{audit}");
    assert_eq!(changes[0]["actor"], "admin", "{audit}");
    assert_eq!(
        published["summary"]["new_versions"].as_u64(),
        Some(changed as u64)
    );
    assert_eq!(published["summary"]["created"], 0);
    assert_eq!(published["summary"]["retired"], 0);
    assert_eq!(published["publication"]["sketch_id"], id);
    assert_eq!(
        version_rows(&app).await,
        versions + changed as i64,
        "one new version per grid and micro-grid"
    );
    assert_tiles(&app, KANGLE).await;
    assert_tiles(&app, COMPOUND).await;

    // Old reports keep the boundary they were filed against; it is closed now.
    assert_eq!(
        app.scalar_i64(&format!(
            "select count(*) from report where region_version_id = {old_version_id} and grid_code = '{grid}'"
        ))
        .await,
        filed_before
    );
    assert_eq!(
        app.scalar_i64(&format!(
            "select count(*) from region_version where id = {old_version_id} and valid_to is not null"
        ))
        .await,
        1
    );
    // The new versions point to the publication, and the sketch is marked published.
    let publication = published["publication"]["id"].as_i64().unwrap();
    assert_eq!(
        app.scalar_i64(&format!(
            "select count(*) from region_version where publication_id = {publication}"
        ))
        .await,
        changed as i64
    );
    let (_, sketch) = app.get(&format!("/api/v1/sketches/{id}")).await;
    assert!(sketch["published_at"].is_string(), "{sketch}");
    let (_, list) = app
        .get(&format!("/api/v1/publications?parent={KANGLE}"))
        .await;
    assert_eq!(list[0]["id"], publication);

    // The locate index switched: a point inside the new boundary of `grid` answers with it,
    // and a report filed there gets the new version.
    let (_, detail) = app.get(&format!("/api/v1/regions/{grid}")).await;
    assert_eq!(detail["version"]["version"], 2, "{detail}");
    let new_geom: String = sqlx::query_scalar(
        "select st_asgeojson(st_pointonsurface(geom)) from region_version
          where region_code = $1 and valid_to is null",
    )
    .bind(&grid)
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    let point: Value = serde_json::from_str(&new_geom).unwrap();
    let (lon, lat) = (
        point["coordinates"][0].as_f64().unwrap(),
        point["coordinates"][1].as_f64().unwrap(),
    );
    let (_, located) = app
        .get(&format!("/api/v1/locate?lon={lon}&lat={lat}"))
        .await;
    assert_eq!(located["grid"]["code"], grid.as_str(), "{located}");
    let (status, filed) = app
        .post(
            "/api/v1/reports",
            &json!({"category": "fire_lane_blocked", "lon": lon, "lat": lat, "source": "grid_worker"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    let new_id = filed["id"].as_i64().unwrap();
    assert_eq!(
        app.scalar_i64(&format!(
            "select count(*) from report r join region_version v on v.id = r.region_version_id
              where r.id = {new_id} and v.valid_to is null and v.version = 2"
        ))
        .await,
        1
    );

    // Publishing the same drawing again changes nothing: refused, nothing written.
    let versions = version_rows(&app).await;
    let (status, err) = app
        .post(&format!("/api/v1/regions/{KANGLE}/redraw"), &body)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["problems"][0]["kind"], "no_change");
    assert_eq!(version_rows(&app).await, versions);

    // Dropping a grid that has micro-grids would orphan them: refused.
    let compound_keys: Vec<Value> = micro.iter().map(|c| c["key"].clone()).collect();
    features.retain(|f| !compound_keys.contains(&f["properties"]["key"]));
    let (status, err) = app
        .post(
            &format!("/api/v1/regions/{KANGLE}/redraw"),
            &json!({"features": features}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err.to_string().contains("retired_with_children"), "{err}");
    assert_eq!(version_rows(&app).await, versions);
}

fn first_polygon_ring(geometry: &Value) -> Vec<(f64, f64)> {
    let ring = match geometry["type"].as_str() {
        Some("MultiPolygon") => &geometry["coordinates"][0][0],
        _ => &geometry["coordinates"][0],
    };
    ring.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

/// A grid without micro-grids split in two along a drawn line: two new micro-grid codes, and
/// locate answers with them. Edits are pure computations; only the publication writes.
#[tokio::test]
async fn a_grid_split_by_a_line_becomes_two_new_micro_grids() {
    let app = demo_app().await;
    let grid = "150302001001003";
    assert!(current_children(&app, grid).await.is_empty());
    let (_, grids) = app.get(&format!("/api/v1/regions?parent={KANGLE}")).await;
    let geometry = grids["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["code"] == grid)
        .map(|f| f["geometry"].clone())
        .unwrap();
    let ring = first_polygon_ring(&geometry);
    let (w, e) = ring
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (s, n) = ring
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let mid = (w + e) / 2.0;
    let line = json!({"type": "LineString", "coordinates": [[mid, s - 0.001], [mid, n + 0.001]]});
    let (status, split) = app
        .post(
            "/api/v1/geometry/split",
            &json!({"geometry": geometry, "line": line}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{split}");
    let pieces = split["pieces"].as_array().unwrap().clone();
    assert_eq!(pieces.len(), 2);

    // Merging the pieces gives the grid back (area within 0.01 %).
    let (status, merged) = app
        .post("/api/v1/geometry/merge", &json!({"geometries": pieces}))
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let (same,): (bool,) = sqlx::query_as(
        "select abs(st_area(st_geomfromgeojson($1)::geography) - st_area(st_geomfromgeojson($2)::geography))
                < 1e-4 * st_area(st_geomfromgeojson($2)::geography)",
    )
    .bind(merged["geometry"].to_string())
    .bind(geometry.to_string())
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert!(same);

    let features: Vec<Value> = pieces
        .iter()
        .enumerate()
        .map(|(i, g)| json!({"type": "Feature", "properties": {"key": format!("piece-{i}")}, "geometry": g}))
        .collect();
    let body = json!({"features": features});
    let (status, check) = app
        .post(&format!("/api/v1/regions/{grid}/redraw/check"), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["child_level"], "micro_grid");
    assert_eq!(check["publishable"], true, "{check}");
    let codes: Vec<&str> = check["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, [format!("{grid}01"), format!("{grid}02")]);

    // Two planners publish the same split at once: one wins, the other changes nothing.
    let uri = format!("/api/v1/regions/{grid}/redraw");
    let (a, b) = tokio::join!(app.post(&uri, &body), app.post(&uri, &body));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY],
        "{} / {}",
        a.1,
        b.1
    );
    assert_eq!(current_children(&app, grid).await.len(), 2);
    assert_tiles(&app, grid).await;

    // Locate a point inside the western piece: the new micro-grid, inside the grid.
    let (lon, lat) = ((w + mid) / 2.0, (s + n) / 2.0);
    let (_, located) = app
        .get(&format!("/api/v1/locate?lon={lon}&lat={lat}"))
        .await;
    if located["grid"]["code"] == grid {
        let code = located["micro_grid"]["code"].as_str().unwrap();
        assert!(
            code == format!("{grid}01") || code == format!("{grid}02"),
            "{located}"
        );
        let (_, detail) = app.get(&format!("/api/v1/regions/{code}")).await;
        assert_eq!(detail["level"], "micro_grid");
        assert!(
            detail["name"].as_str().unwrap().contains("微网格"),
            "{detail}"
        );
    } else {
        panic!("the point ({lon}, {lat}) should be in {grid}: {located}");
    }
}

/// Bad redraws are refused with the field named, and nothing is written.
#[tokio::test]
async fn bad_redraws_are_named_and_write_nothing() {
    let app = demo_app().await;
    let versions = version_rows(&app).await;
    let children = current_children(&app, COMPOUND).await;
    let feature = |code: Option<&str>, g: &Value| json!({"type": "Feature", "properties": {"code": code}, "geometry": g});
    let g0 = children[0]["geometry"].clone();
    let g1 = children[1]["geometry"].clone();
    let cases: Vec<(&str, String, Value, StatusCode, Option<&str>)> = vec![
        (
            "a code of another grid",
            COMPOUND.into(),
            json!({"features": [feature(Some("15030200100100901"), &g0)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("features[0].properties.code"),
        ),
        (
            "a point",
            COMPOUND.into(),
            json!({"features": [feature(None, &json!({"type": "Point", "coordinates": [106.8, 39.6]}))]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("features[0].geometry"),
        ),
        (
            "features missing",
            COMPOUND.into(),
            json!({"type": "FeatureCollection"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("features"),
        ),
        (
            "unknown parent",
            "150302001001999".into(),
            json!({"features": [feature(None, &g0)]}),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "a micro-grid has no children",
            children[0]["properties"]["code"].as_str().unwrap().into(),
            json!({"features": [feature(None, &g0)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("parent"),
        ),
        (
            "a sketch that does not exist",
            COMPOUND.into(),
            json!({"features": [feature(None, &g0)], "sketch_id": 999}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("sketch_id"),
        ),
    ];
    for (what, parent, body, status, field) in cases {
        let (got, err) = app
            .post(&format!("/api/v1/regions/{parent}/redraw"), &body)
            .await;
        assert_eq!(got, status, "{what}: {err}");
        if let Some(field) = field {
            assert_eq!(err["error"]["field"], field, "{what}: {err}");
        }
    }
    let (status, _, _) = app
        .raw(
            "POST",
            &format!("/api/v1/regions/{COMPOUND}/redraw"),
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Two micro-grids drawn over each other and the rest left out: the check names the overlap
    // and the gap, and the publication is refused with them.
    let body = json!({"features": [feature(None, &g0), feature(None, &g0), feature(None, &g1)]});
    let (status, check) = app
        .post(&format!("/api/v1/regions/{COMPOUND}/redraw/check"), &body)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check["publishable"], false);
    let kinds: Vec<&str> = check["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["blocking"] == true)
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"overlap"), "{kinds:?}");
    assert!(kinds.contains(&"parent_not_covered"), "{kinds:?}");
    let (status, err) = app
        .post(&format!("/api/v1/regions/{COMPOUND}/redraw"), &body)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["error"]["problems"].as_array().unwrap().len() >= 2,
        "{err}"
    );

    // Split and merge name what is wrong.
    let line_outside = json!({"type": "LineString", "coordinates": [[100.0, 30.0], [100.1, 30.1]]});
    let (status, err) = app
        .post(
            "/api/v1/geometry/split",
            &json!({"geometry": g0, "line": line_outside}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("line"))
    );
    let far = children
        .iter()
        .map(|c| c["geometry"].clone())
        .collect::<Vec<_>>();
    let (status, err) = app
        .post("/api/v1/geometry/merge", &json!({"geometries": [far[0]]}))
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("geometries"))
    );
    let (_, grids) = app.get("/api/v1/regions?level=grid").await;
    let distant = grids["features"].as_array().unwrap().last().unwrap()["geometry"].clone();
    let (status, err) = app
        .post(
            "/api/v1/geometry/merge",
            &json!({"geometries": [far[0], distant]}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("geometries")),
        "{err}"
    );

    assert_eq!(version_rows(&app).await, versions, "nothing was written");
    assert_eq!(app.scalar_i64("select count(*) from publication").await, 0);
}
