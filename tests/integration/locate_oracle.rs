//! The in-memory index checked against PostGIS as an independent oracle on the demo grids.

use crate::support::demo_app;
use gridwatch::domain::Level;
use gridwatch::spatial::LocateStatus;
use std::collections::HashMap;

#[tokio::test]
async fn agrees_with_st_covers_on_random_points() {
    let app = demo_app().await;
    let points = gridwatch::bench::random_points(&app.gw, 20_000, 7);
    let index = app.gw.index();
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    // Every grid and micro-grid that covers each point, by PostGIS.
    let rows: Vec<(i32, String, String)> = sqlx::query_as(
        "select t.i::int, r.code, r.level
           from unnest($1::float8[], $2::float8[]) with ordinality as t(x, y, i)
           join region_version v on v.valid_to is null
                and st_covers(v.geom, st_setsrid(st_makepoint(t.x, t.y), 4326))
           join region r on r.code = v.region_code and r.level in ('grid', 'micro_grid')",
    )
    .bind(&xs)
    .bind(&ys)
    .fetch_all(app.gw.db.pool())
    .await
    .unwrap();
    let mut covering: HashMap<(usize, String), Vec<String>> = HashMap::new();
    for (i, code, level) in rows {
        covering
            .entry((i as usize - 1, level))
            .or_default()
            .push(code);
    }
    let (mut inside, mut compared_micro) = (0, 0);
    for (i, &(x, y)) in points.iter().enumerate() {
        let a = index.locate(x, y);
        let ours = index.at_level(&a, Level::Grid).map(|r| r.code.clone());
        match covering.get(&(i, "grid".into())) {
            Some(pg) if pg.len() == 1 => {
                assert_eq!(a.status, LocateStatus::Inside, "point {i} ({x}, {y})");
                assert_eq!(
                    ours.as_deref(),
                    Some(pg[0].as_str()),
                    "point {i} ({x}, {y})"
                );
                inside += 1;
                if let Some(m) = covering
                    .get(&(i, "micro_grid".into()))
                    .filter(|m| m.len() == 1)
                {
                    assert_eq!(
                        index
                            .at_level(&a, Level::MicroGrid)
                            .map(|r| r.code.as_str()),
                        Some(m[0].as_str())
                    );
                    compared_micro += 1;
                }
            }
            // on a shared boundary: ours must pick one of the covering grids
            Some(pg) => assert!(pg.contains(ours.as_ref().unwrap()), "point {i}"),
            None => assert_ne!(
                a.status,
                LocateStatus::Inside,
                "point {i} ({x}, {y}) is in no grid"
            ),
        }
    }
    assert!(inside > 15_000, "{inside} points compared inside grids");
    println!("agreement on {inside} points inside grids and {compared_micro} in micro-grids: 100%");
}

#[tokio::test]
async fn near_assignment_matches_postgis_distance() {
    let app = demo_app().await;
    let index = app.gw.index();
    let points = gridwatch::bench::random_points(&app.gw, 20_000, 11);
    let near: Vec<(f64, f64, String, f64)> = points
        .iter()
        .filter_map(|&(x, y)| {
            let a = index.locate(x, y);
            (a.status == LocateStatus::Near).then(|| {
                (
                    x,
                    y,
                    index.at_level(&a, Level::Grid).unwrap().code.clone(),
                    a.distance_m.unwrap(),
                )
            })
        })
        .collect();
    assert!(near.len() > 20, "only {} near points", near.len());
    for (x, y, code, d) in near {
        // The nearest grid by geodesic distance, and the geodesic distance to the grid we chose:
        // several grids may be equally near (a shared vertex), so compare distances, not codes.
        let (min_d, ours_d): (f64, f64) = sqlx::query_as(
            "with p as (select st_setsrid(st_makepoint($1, $2), 4326) as g)
             select min(st_distance(v.geom::geography, p.g::geography)),
                    min(st_distance(v.geom::geography, p.g::geography)) filter (where v.region_code = $3)
               from region_version v join region r on r.code = v.region_code, p
              where v.valid_to is null and r.level = 'grid' and st_dwithin(v.geom::geography, p.g::geography, 200)",
        )
        .bind(x)
        .bind(y)
        .bind(&code)
        .fetch_one(app.gw.db.pool())
        .await
        .unwrap();
        assert!(
            min_d <= 50.5,
            "({x}, {y}): PostGIS says the nearest grid is {min_d} m away"
        );
        assert!(
            (d - ours_d).abs() < 0.01 * ours_d + 0.5,
            "({x}, {y}): {d} m vs PostGIS {ours_d} m"
        );
        assert!(
            ours_d - min_d < 0.01 * min_d + 0.5,
            "({x}, {y}): chose {code} at {ours_d} m, nearest is {min_d} m"
        );
    }
}

#[tokio::test]
async fn points_on_shared_edges_go_to_exactly_one_grid() {
    let app = demo_app().await;
    let index = app.gw.index();
    // Midpoints of every segment of every grid ring: on the boundary shared with a neighbour
    // (or on the coverage's outer edge).
    let grids: Vec<_> = index
        .records()
        .filter(|r| r.level == Level::Grid)
        .cloned()
        .collect();
    let mut checked = 0;
    for g in &grids {
        for line in g.geom.0[0].exterior().lines() {
            let (x, y) = (
                (line.start.x + line.end.x) / 2.0,
                (line.start.y + line.end.y) / 2.0,
            );
            let a = index.locate(x, y);
            assert_eq!(a, index.locate(x, y), "not deterministic at ({x}, {y})");
            // A point on a boundary is inside or near, never unassigned.
            assert_ne!(a.status, LocateStatus::Outside, "({x}, {y})");
            checked += 1;
        }
    }
    assert!(checked > 5000);
}

#[tokio::test]
async fn raster_caches_change_no_answer() {
    let app = demo_app().await;
    let index = app.gw.index();
    let mut points = gridwatch::bench::random_points(&app.gw, 200_000, 23);
    // plus every vertex and edge midpoint of every grid: the hardest cases for a raster
    for r in index
        .records()
        .filter(|r| r.level == Level::Grid || r.level == Level::MicroGrid)
    {
        for line in r.geom.0[0].exterior().lines() {
            points.push((line.start.x, line.start.y));
            points.push((
                (line.start.x + line.end.x) / 2.0,
                (line.start.y + line.end.y) / 2.0,
            ));
        }
    }
    // and a coarse sweep over the whole city, deserts included
    for i in 0..200 {
        for j in 0..400 {
            points.push((106.60 + i as f64 * 0.0027, 39.03 + j as f64 * 0.0022));
        }
    }
    let differ: Vec<_> = points
        .iter()
        .filter(|&&(x, y)| index.locate(x, y) != index.locate_exact(x, y))
        .take(5)
        .collect();
    assert!(
        differ.is_empty(),
        "cached and exact locate differ at {differ:?}"
    );
}
