//! Hot spots on the demo city's year of reports: Gi* z-scores equal PySAL esda's
//! (`G_Local(transform="B", star=True)`, tests/reference/gi_star.py) to 1e-6 on the same counts
//! and neighbours, permutation p-values and FDR classes are consistent, a street's analysis
//! covers its grids only, and bad parameters are named.

use crate::support::{demo_app, repo_dir};
use axum::http::StatusCode;
use gridwatch::tiles::TileFilter;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

fn esda(input: &Value, permutations: usize) -> Value {
    let python = repo_dir().join("tests/.venv/bin/python");
    assert!(
        python.exists(),
        "tests/.venv is missing: run scripts/setup --with-browser"
    );
    let mut child = Command::new(python)
        .arg(repo_dir().join("tests/reference/gi_star.py"))
        .args(["--permutations", &permutations.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the esda reference failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn gi_star_z_scores_equal_esda_and_the_classes_follow_the_fdr_threshold() {
    let app = demo_app().await;
    gridwatch::demo::load(&app.gw).await.unwrap();

    // Flying-lead charging gathers in the old compounds of a few problem estates, blocks of
    // neighbouring grids: the demo's clearest hot spots.
    let (status, answer) = app
        .get("/api/v1/hotspots?category=flying_lead_charging&seed=3")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let grids = answer["grids"].as_array().unwrap();
    assert_eq!(grids.len(), 704);

    // The same counts and neighbours, through esda.
    let areas = app
        .gw
        .db
        .grid_counts(
            None,
            &TileFilter {
                categories: vec!["flying_lead_charging".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let position: HashMap<&str, usize> = areas
        .iter()
        .enumerate()
        .map(|(i, a)| (a.code.as_str(), i))
        .collect();
    let input = json!({
        "y": areas.iter().map(|a| a.reports).collect::<Vec<_>>(),
        "neighbours": areas.iter().map(|a| a.touching.iter().map(|c| position[c.as_str()]).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let reference = esda(&input, 0);
    let z_ref = reference["z"].as_array().unwrap();
    let mut worst = 0.0f64;
    for (i, g) in grids.iter().enumerate() {
        assert_eq!(g["code"], areas[i].code.as_str());
        assert_eq!(g["reports"], areas[i].reports);
        let ours = g["z"].as_f64().unwrap();
        let theirs = z_ref[i].as_f64().unwrap();
        worst = worst.max((ours - theirs).abs());
    }
    println!("largest |z − z_esda| over 704 grids: {worst:e}");
    assert!(worst < 1e-6, "{worst}");
    // Every grid of the demo touches another.
    assert!(areas.iter().all(|a| !a.touching.is_empty()));

    // The classes follow the FDR threshold and the sign of z.
    let threshold = answer["fdr_threshold"]
        .as_f64()
        .expect("some grid is significant");
    assert!(threshold <= 0.05);
    let (mut hot, mut cold) = (0, 0);
    for g in grids {
        let p = g["p_sim"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{g}");
        let class = g["class"].as_str().unwrap();
        match class {
            "hot" => {
                hot += 1;
                assert!(p <= threshold && g["z"].as_f64().unwrap() > 0.0, "{g}");
            }
            "cold" => {
                cold += 1;
                assert!(p <= threshold && g["z"].as_f64().unwrap() < 0.0, "{g}");
            }
            _ => assert!(p > threshold, "{g}"),
        }
    }
    assert!(hot > 0, "no hot spot of flying leads");
    println!(
        "flying leads: {hot} hot and {cold} cold grids at FDR 0.05 (threshold p ≤ {threshold})"
    );
    // An empty grid among empty neighbours is what chance gives most often: never a cold spot
    // (counting ties as "more extreme", as esda's p_sim does, would make it one).
    for (g, area) in grids.iter().zip(&areas) {
        let empty = area.reports == 0
            && area
                .touching
                .iter()
                .all(|c| areas[position[c.as_str()]].reports == 0);
        if empty {
            assert_ne!(g["class"], "cold", "{g}");
            assert!(g["p_sim"].as_f64().unwrap() > threshold, "{g}");
        }
    }
    assert_eq!(answer["hot"], hot);
    assert_eq!(answer["cold"], cold);
    // The permutations' p-values agree with those from esda's simulations, ties counted on both
    // sides as gridwatch does, in what they find (not to the digit: the draws differ).
    let reference = esda(&input, 999);
    let p_ref = reference["p_ties"].as_array().unwrap();
    let agree = grids
        .iter()
        .zip(p_ref)
        .filter(|(g, p)| (g["p_sim"].as_f64().unwrap() <= 0.01) == (p.as_f64().unwrap() <= 0.01))
        .count();
    println!("p_sim ≤ 0.01 agrees with esda on {agree} of 704 grids");
    assert!(agree >= 680, "{agree}");

    // One street: its grids only, with neighbours among them.
    let street = "150302003";
    let (status, s) = app
        .get(&format!("/api/v1/hotspots?parent={street}&permutations=99"))
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["parent"]["name"], "凤凰岭街道");
    let codes: Vec<&str> = s["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["code"].as_str().unwrap())
        .collect();
    assert!(codes.len() > 10 && codes.iter().all(|c| c.starts_with(street)));

    for (uri, status, field) in [
        (
            "/api/v1/hotspots?permutations=10000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "permutations",
        ),
        (
            "/api/v1/hotspots?alpha=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "alpha",
        ),
        (
            "/api/v1/hotspots?parent=150302003002016",
            StatusCode::UNPROCESSABLE_ENTITY,
            "parent",
        ),
        (
            "/api/v1/hotspots?parent=150302999",
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "/api/v1/hotspots?category=noise",
            StatusCode::UNPROCESSABLE_ENTITY,
            "category",
        ),
        (
            "/api/v1/hotspots?to=2000-01-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
    ] {
        let (got, body) = app.get(uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        if !field.is_empty() {
            assert_eq!(body["error"]["field"], field, "{uri}");
        }
    }
}

#[tokio::test]
async fn emerging_lists_a_grid_whose_complaints_jumped_first_and_steady_ones_as_not_rising() {
    let app = demo_app().await;
    // 育才社区第16网格 and a point in another grid of the demo
    let jump = (106.8415, 39.664);
    let (_, other) = app.get("/api/v1/locate?lon=106.8120&lat=39.6731").await;
    let steady_code = other["grid"]["code"]
        .as_str()
        .expect("a grid there")
        .to_owned();
    let mut file = Vec::new();
    // the week of Monday 2026-11-09: 8 oil-smoke reports in the first grid, 3 in the other
    for day in 0..8 {
        file.push((jump, format!("2026-11-{:02}T12:00:00+08:00", 9 + day % 7)));
    }
    for day in 0..3 {
        file.push((
            (106.8120, 39.6731),
            format!("2026-11-{:02}T09:00:00+08:00", 10 + day),
        ));
    }
    // the week before: 1 and 3; a year before: 0 and 2
    file.push((jump, "2026-11-03T12:00:00+08:00".into()));
    for day in 0..3 {
        file.push((
            (106.8120, 39.6731),
            format!("2026-11-{:02}T09:00:00+08:00", 3 + day),
        ));
    }
    for day in 0..2 {
        file.push((
            (106.8120, 39.6731),
            format!("2025-11-{:02}T09:00:00+08:00", 10 + day),
        ));
    }
    for ((lon, lat), at) in file {
        let (status, body) = app
            .post(
                "/api/v1/reports",
                &json!({"category": "oil_smoke", "lon": lon, "lat": lat, "source": "hotline", "reported_at": at}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, e) = app.get("/api/v1/emerging?period=week&at=2026-11-12").await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(
        e["current"],
        json!({"from": "2026-11-09", "to": "2026-11-15"})
    );
    assert_eq!(
        e["previous"],
        json!({"from": "2026-11-02", "to": "2026-11-08"})
    );
    assert_eq!(
        e["last_year"],
        json!({"from": "2025-11-09", "to": "2025-11-15"})
    );
    assert_eq!(e["rising"], 1);
    let rows = e["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["grid"]["code"], "150302003002016");
    assert_eq!(
        (
            rows[0]["current"].as_i64(),
            rows[0]["previous"].as_i64(),
            rows[0]["last_year"].as_i64()
        ),
        (Some(8), Some(1), Some(0))
    );
    assert_eq!(rows[0]["rising"], true);
    assert!(rows[0]["p"].as_f64().unwrap() < 0.01);
    assert_eq!(rows[1]["grid"]["code"], steady_code.as_str());
    assert_eq!(
        (
            rows[1]["current"].as_i64(),
            rows[1]["previous"].as_i64(),
            rows[1]["last_year"].as_i64()
        ),
        (Some(3), Some(3), Some(2))
    );
    assert_eq!(rows[1]["rising"], false);

    // By month, within one street, other categories only: nothing.
    let (status, m) = app
        .get("/api/v1/emerging?period=month&at=2026-11-30&region=150302003&category=fire_lane_blocked")
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(
        m["current"],
        json!({"from": "2026-11-01", "to": "2026-11-30"})
    );
    assert_eq!(m["region"]["name"], "凤凰岭街道");
    assert!(m["rows"].as_array().unwrap().is_empty());

    for (uri, status, field) in [
        (
            "/api/v1/emerging?period=year",
            StatusCode::UNPROCESSABLE_ENTITY,
            "period",
        ),
        (
            "/api/v1/emerging?at=12/11/2026",
            StatusCode::UNPROCESSABLE_ENTITY,
            "at",
        ),
        (
            "/api/v1/emerging?category=noise",
            StatusCode::UNPROCESSABLE_ENTITY,
            "category",
        ),
        (
            "/api/v1/emerging?region=150302999",
            StatusCode::NOT_FOUND,
            "",
        ),
    ] {
        let (got, body) = app.get(uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        if !field.is_empty() {
            assert_eq!(body["error"]["field"], field, "{uri}");
        }
    }
}
