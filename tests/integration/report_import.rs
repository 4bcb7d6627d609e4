//! `gridwatch reports import` against a real database: a hotline CSV with Chinese headers and a
//! GeoJSON file, good and bad rows, the reject file, ticket numbers making a re-import load
//! nothing twice, and a file refused as a whole writing nothing.

use crate::support::{fresh_db, tmp_dir, url_of};
use gridwatch::storage::Db;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `gridwatch reports import FILE ARGS…` against the test database. No regions are loaded: every
/// report is assigned `outside`, which is still a report.
fn run(url: &str, args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .args(["reports", "import"])
        .arg(file)
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = tmp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

const HOTLINE: &str = "\u{feff}工单编号,受理时间,经度,纬度,诉求类别,诉求内容
12345-0001,2026-11-03 08:15,106.8415,39.6640,消防通道堵塞,小区消防通道被车辆占用
12345-0002,2026/11/03 09:40:00,106.8120,39.6731,电动车飞线充电,楼道里有人从三楼拉线给电动车充电
12345-0003,2026-11-04,106.8390,39.6655,油烟,烧烤店油烟直排
12345-0004,2026-11-04 10:00,106.8400,39.6650,广场舞扰民,与任何类别都不相符
12345-0005,昨天下午,106.8400,39.6650,油烟,时间写错了
12345-0006,2026-11-05 11:00,206.8400,39.6650,油烟,经度超出范围
12345-0001,2026-11-05 12:00,106.8400,39.6650,油烟,工单编号重复
12345-0008,2026-11-05 13:00,,,油烟,只有地址没有坐标
";

#[tokio::test]
async fn a_hotline_csv_loads_its_good_rows_rejects_the_rest_and_reimports_nothing_twice() {
    let (db, options) = fresh_db().await;
    let url = url_of(&options);
    let d = dir("hotline");
    let file = d.join("12345.csv");
    std::fs::write(&file, HOTLINE).unwrap();
    let rejects = d.join("12345.rejects.csv");

    // --check: the same verdicts and reject file, and nothing in the database.
    let out = run(&url, &["--source", "hotline", "--check"], &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("8 rows checked; 3 valid, 5 rejected; nothing was written"),
        "{stdout}"
    );
    assert_eq!(count(&db, "select count(*) from report").await, 0);
    let checked = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(
        checked.lines().count(),
        6,
        "a header and five rows: {checked}"
    );
    std::fs::remove_file(&rejects).unwrap();

    let out = run(&url, &["--source", "hotline"], &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("8 rows; 3 loaded, 0 already loaded before, 5 rejected"),
        "{stdout}"
    );
    // Each rejected line is named with its reason.
    for (line, reason) in [
        ("line 5", "广场舞扰民"),
        ("line 6", "昨天下午"),
        ("line 7", "lon"),
        ("line 8", "appears earlier in the file"),
        ("line 9", "coordinates"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(line) && l.contains(reason)),
            "{line} / {reason} not in:\n{stderr}"
        );
    }
    assert_eq!(count(&db, "select count(*) from report").await, 3);
    assert_eq!(
        count(
            &db,
            "select count(*) from report where source = 'hotline' and external_ref in \
             ('12345-0001', '12345-0002', '12345-0003')"
        )
        .await,
        3
    );
    // The categories were matched from the hotline's wording.
    assert_eq!(
        count(
            &db,
            "select count(*) from report where external_ref = '12345-0002' \
             and category = 'flying_lead_charging'"
        )
        .await,
        1
    );
    // 08:15 China time is 00:15 UTC.
    assert_eq!(
        count(
            &db,
            "select count(*) from report where external_ref = '12345-0001' \
             and reported_at = '2026-11-03T00:15:00Z'"
        )
        .await,
        1
    );

    // The reject file: the original columns of the five rows, with their line and reason.
    let mut reader = csv::Reader::from_path(&rejects).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert!(header.contains(&"工单编号".to_owned()), "{header:?}");
    assert!(header.contains(&"import_line".to_owned()), "{header:?}");
    assert!(header.contains(&"import_error".to_owned()), "{header:?}");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    let refs: Vec<&str> = rows
        .iter()
        .map(|r| &r[header.iter().position(|h| h == "工单编号").unwrap()])
        .collect();
    assert_eq!(
        refs,
        [
            "12345-0004",
            "12345-0005",
            "12345-0006",
            "12345-0001",
            "12345-0008"
        ]
    );

    // The same file again: the ticket numbers are known, nothing is loaded twice.
    let out = run(&url, &["--source", "hotline"], &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("8 rows; 0 loaded, 3 already loaded before, 5 rejected"),
        "{stdout}"
    );
    assert_eq!(count(&db, "select count(*) from report").await, 3);

    // Fixing the rejected rows and importing the reject file loads them.
    let fixed = std::fs::read_to_string(&rejects)
        .unwrap()
        .replace("广场舞扰民", "油烟")
        .replace("昨天下午", "2026-11-04 15:00")
        .replace("206.8400", "106.8400");
    let fixed_file = d.join("fixed.csv");
    std::fs::write(&fixed_file, fixed).unwrap();
    let out = run(&url, &["--source", "hotline"], &fixed_file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 0001 is already loaded and 0008 still has no coordinates.
    assert!(
        stdout.contains("5 rows; 3 loaded, 1 already loaded before, 1 rejected"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&db, "select count(*) from report").await, 6);
}

#[tokio::test]
async fn a_geojson_file_loads_and_a_bad_file_writes_nothing() {
    let (db, options) = fresh_db().await;
    let url = url_of(&options);
    let d = dir("geojson-import");
    let file = d.join("reports.geojson");
    std::fs::write(
        &file,
        r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","properties":{"category":"oil_smoke","reported_at":"2026-11-02T10:00:00+08:00","description":"油烟","external_ref":"g-1"},
           "geometry":{"type":"Point","coordinates":[106.8415,39.664]}},
          {"type":"Feature","properties":{"category":"fire_lane_blocked","reported_at":"2026-11-02T11:00:00+08:00","external_ref":"g-2"},
           "geometry":{"type":"Point","coordinates":[106.8120,39.6731]}},
          {"type":"Feature","properties":{"category":"oil_smoke","reported_at":"2026-11-02T12:00:00+08:00","external_ref":"g-3"},
           "geometry":{"type":"LineString","coordinates":[[106.8,39.6],[106.9,39.7]]}}
        ]}"#,
    )
    .unwrap();
    let out = run(&url, &[], &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 rows; 2 loaded"), "{stdout}");
    assert!(
        stderr.contains("feature 3: the geometry is not a Point"),
        "{stderr}"
    );
    let rejects: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("reports.rejects.geojson")).unwrap()).unwrap();
    assert_eq!(rejects["features"].as_array().unwrap().len(), 1);
    assert_eq!(rejects["features"][0]["properties"]["external_ref"], "g-3");
    assert!(rejects["features"][0]["properties"]["import_error"].is_string());
    assert_eq!(count(&db, "select count(*) from report").await, 2);

    // A GBK export is refused as a whole, with the conversion to use; nothing is written.
    let gbk = d.join("gbk.csv");
    // "受理时间,诉求类别" in GBK
    let mut bytes = vec![0xCA, 0xDC, 0xC0, 0xED, 0xCA, 0xB1, 0xBC, 0xE4, b','];
    bytes.extend_from_slice(&[0xCB, 0xDF, 0xC7, 0xF3, 0xC0, 0xE0, 0xB1, 0xF0, b'\n']);
    std::fs::write(&gbk, bytes).unwrap();
    let out = run(&url, &[], &gbk);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not UTF-8") && stderr.contains("iconv"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(count(&db, "select count(*) from report").await, 2);
}

/// Without foreign keys on a report's references, the bulk path checks them itself: a row naming
/// a region or category that does not exist fails the whole load, naming it, and writes nothing.
#[tokio::test]
async fn a_bulk_load_naming_unknown_regions_or_categories_writes_nothing() {
    use gridwatch::storage::bulk::CopyRows;
    use gridwatch::storage::reports::NewReport;
    let (db, _options) = fresh_db().await;
    let row = |category: &str, grid: Option<&str>| NewReport {
        category: category.into(),
        lon: 106.84,
        lat: 39.66,
        input_lon: 106.84,
        input_lat: 39.66,
        input_crs: "wgs84",
        description: String::new(),
        source: "hotline",
        reported_at: chrono::Utc::now(),
        locate_status: "outside",
        district_code: None,
        street_code: None,
        community_code: None,
        grid_code: grid.map(str::to_owned),
        micro_grid_code: None,
        region_code: grid.map(str::to_owned),
        region_version_id: None,
        distance_m: None,
        open311: None,
        idempotency: None,
        photos: Vec::new(),
        reporter: None,
    };
    let good = || {
        let mut rows = CopyRows::default();
        rows.push(&row("oil_smoke", None), Some("ok-1"));
        rows
    };
    let mut unknown_version = row("oil_smoke", None);
    unknown_version.region_version_id = Some(987_654);
    for (bad, named) in [
        (
            row("oil_smoke", Some("150302099099099")),
            "region 150302099099099",
        ),
        (row("no_such_category", None), "category no_such_category"),
        (unknown_version, "region version 987654"),
    ] {
        let mut rows = good();
        rows.push(&bad, None);
        let err = db.copy_reports([rows]).await.unwrap_err().to_string();
        assert!(err.contains(named), "{err}");
        assert_eq!(count(&db, "select count(*) from report").await, 0);
    }
    assert_eq!(db.copy_reports([good()]).await.unwrap(), 1);
    // A ticket number loaded before fails a load that did not skip it, naming the cause.
    let mut again = CopyRows::default();
    again.push(&row("wall_leak", None), Some("ok-2"));
    let err = db
        .copy_reports([again, good()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ticket number (external_ref)"), "{err}");
    assert_eq!(count(&db, "select count(*) from report").await, 1);
}

/// A bulk load sends COPY's binary format: every value comes back as it was given, text with
/// tabs, newlines and backslashes (which the text format would have to escape), times to the
/// microsecond, NULLs and numbers; and a load into an empty table leaves it analysed.
#[tokio::test]
async fn a_bulk_load_stores_each_value_exactly() {
    use chrono::TimeZone;
    use gridwatch::storage::bulk::CopyRows;
    use gridwatch::storage::reports::NewReport;
    let (db, _options) = fresh_db().await;
    let reported_at = chrono::Utc.with_ymd_and_hms(2026, 10, 5, 7, 8, 9).unwrap()
        + chrono::Duration::microseconds(123_456);
    let description = "油烟\t直排\n二楼 \\N 窗口 \"引号\"";
    let row = NewReport {
        category: "oil_smoke".into(),
        lon: 106.812345,
        lat: 39.654321,
        input_lon: 106.818,
        input_lat: 39.6555,
        input_crs: "gcj02",
        description: description.into(),
        source: "hotline",
        reported_at,
        locate_status: "near",
        district_code: None,
        street_code: None,
        community_code: None,
        grid_code: None,
        micro_grid_code: None,
        region_code: None,
        region_version_id: None,
        distance_m: Some(12.5),
        open311: None,
        idempotency: None,
        photos: Vec::new(),
        reporter: None,
    };
    let mut rows = CopyRows::default();
    rows.push(&row, Some("12345-0001"));
    rows.push(&row, None);
    assert_eq!(db.copy_reports([rows]).await.unwrap(), 2);
    #[derive(Debug, PartialEq, sqlx::FromRow)]
    struct Stored {
        category: String,
        x: f64,
        y: f64,
        input_lon: f64,
        input_lat: f64,
        input_crs: String,
        description: String,
        source: String,
        reported_at: chrono::DateTime<chrono::Utc>,
        locate_status: String,
        grid_code: Option<String>,
        region_version_id: Option<i64>,
        distance_m: Option<f64>,
        external_ref: Option<String>,
    }
    let stored: Vec<Stored> = sqlx::query_as(
        "select category, st_x(geom) as x, st_y(geom) as y, input_lon, input_lat, input_crs,
                description, source, reported_at, locate_status, grid_code, region_version_id,
                distance_m, external_ref
           from report order by id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let expected = |external_ref: Option<&str>| Stored {
        category: "oil_smoke".into(),
        x: 106.812345,
        y: 39.654321,
        input_lon: 106.818,
        input_lat: 39.6555,
        input_crs: "gcj02".into(),
        description: description.into(),
        source: "hotline".into(),
        reported_at,
        locate_status: "near".into(),
        grid_code: None,
        region_version_id: None,
        distance_m: Some(12.5),
        external_ref: external_ref.map(str::to_owned),
    };
    assert_eq!(stored, vec![expected(Some("12345-0001")), expected(None)]);
    let srid: i32 = sqlx::query_scalar("select distinct st_srid(geom) from report")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(srid, 4326);
    let analysed: bool = sqlx::query_scalar(
        "select last_analyze is not null from pg_stat_user_tables where relname = 'report'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(analysed, "a load into an empty table is analysed at once");
}
